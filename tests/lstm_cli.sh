#!/usr/bin/env bash
# End-to-end checks of `lowbit run`, `lowbit quantize` and `lowbit eval` on LSTM models, with
# files written by the test RuntimeLstm.WriteCliFixture: quantizing a float model gives the
# integer outputs the library computes, float and integer models run from .npy, a language model
# is quantized on a tiny PTB folder and evaluated, and bad input gives one-line errors.
# Usage: tests/lstm_cli.sh PATH/TO/lowbit PATH/TO/lowbit_tests
set -euo pipefail

lowbit=${1:?usage: lstm_cli.sh LOWBIT LOWBIT_TESTS}
tests=${2:?usage: lstm_cli.sh LOWBIT LOWBIT_TESTS}
# shellcheck source=tests/cli_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
LOWBIT_LSTM_FIXTURE_DIR=$tmp "$tests" --gtest_filter=RuntimeLstm.WriteCliFixture >/dev/null

"$lowbit" quantize "$tmp/lstm_float.lbm" --calib "$tmp/calib.npy" --out "$tmp/lstm_int.lbm" --verbose >"$tmp/q.txt"
if grep -q "cell_state" "$tmp/q.txt" && grep -q "zero_point" "$tmp/q.txt"; then pass "quantize --verbose"; else fail "quantize output: $(cat "$tmp/q.txt")"; fi
"$lowbit" run "$tmp/lstm_int.lbm" --input "$tmp/x_int8.npy" --output "$tmp/y.npy"
if cmp -s "$tmp/y.npy" "$tmp/expected_int8.npy"; then pass "run integer lstm = library result"; else fail "run integer lstm output differs"; fi
"$lowbit" run "$tmp/lstm_int.lbm" --input "$tmp/x_int8.npy" --output "$tmp/y_ref.npy" --reference
if cmp -s "$tmp/y_ref.npy" "$tmp/expected_int8.npy"; then pass "run --reference"; else fail "run --reference differs"; fi
"$lowbit" run "$tmp/lstm_float.lbm" --input "$tmp/x_f32.npy" --output "$tmp/yf.npy"
if [[ $(head -c 128 "$tmp/yf.npy" | tr -d '\0') == *"'<f4'"*"(7, 2, 4)"* ]]; then pass "run float lstm"; else fail "float output header"; fi

expect_error "width mismatch" "n_input = 5" "$lowbit" run "$tmp/lstm_int.lbm" --input "$tmp/wide_int8.npy" --output "$tmp/o.npy"
expect_error "empty sequence" "empty sequence" "$lowbit" run "$tmp/lstm_int.lbm" --input "$tmp/empty_int8.npy" --output "$tmp/o.npy"
expect_error "wrong dtype" "takes <f4" "$lowbit" run "$tmp/lstm_float.lbm" --input "$tmp/x_int8.npy" --output "$tmp/o.npy"
expect_error "not npy" "bad magic" "$lowbit" run "$tmp/lstm_int.lbm" --input "$tmp/q.txt" --output "$tmp/o.npy"
expect_error "empty calibration" "calibration set is empty" "$lowbit" quantize "$tmp/lstm_float.lbm" --calib "$tmp/empty_calib.npy" --out "$tmp/x.lbm"
expect_error "unsupported kind" "supports float LSTM models" "$lowbit" quantize "$tmp/other.lbm" --calib "$tmp/calib.npy" --out "$tmp/x.lbm"
expect_error "already integer" "already integer" "$lowbit" quantize "$tmp/lstm_int.lbm" --calib "$tmp/calib.npy" --out "$tmp/x.lbm"

"$lowbit" quantize "$tmp/lm_float.lbm" --calib "$tmp/ptb" --out "$tmp/lm_int.lbm" --calib-tokens 200 >/dev/null
"$lowbit" run "$tmp/lm_int.lbm" --input "$tmp/tokens.npy" --output "$tmp/logits.npy"
if [[ $(head -c 128 "$tmp/logits.npy" | tr -d '\0') == *"(2, 2, 12)"* ]]; then pass "run lstm_lm"; else fail "lm logits header"; fi
expect_error "token out of range" "out of range" "$lowbit" run "$tmp/lm_int.lbm" --input "$tmp/bad_tokens.npy" --output "$tmp/o.npy"
for m in lm_float lm_int; do
  out=$("$lowbit" eval "$tmp/$m.lbm" --data "$tmp/ptb" --json)
  ok=1
  for key in perplexity tokens tokens_per_second model_bytes; do [[ $out == *"\"$key\""* ]] || ok=0; done
  if [[ $ok -eq 1 && $out == *'"tokens": 209'* ]]; then pass "eval $m"; else fail "eval $m: $out"; fi
  eval "ppl_$m=\$(printf '%s' \"\$out\" | sed -n 's/.*\"perplexity\": \\([0-9.e+]*\\).*/\\1/p')"
done
if awk -v a="$ppl_lm_float" -v b="$ppl_lm_int" 'BEGIN { r = b / a; exit !(a > 1 && a < 50 && r > 0.9 && r < 1.1) }'; then
  pass "integer perplexity $ppl_lm_int within 10% of float $ppl_lm_float"
else
  fail "perplexities float $ppl_lm_float integer $ppl_lm_int"
fi
out=$("$lowbit" eval "$tmp/lm_int.lbm" --data "$tmp/ptb" --json --limit 50)
if [[ $out == *'"tokens": 50'* ]]; then pass "eval --limit"; else fail "eval --limit: $out"; fi

# Feed-forward networks: uint8 [N, features] -> float32 logits [N, classes] (the network of
# RuntimeEval.WriteCliFixture takes 6x5x1 images and has 10 classes).
mkdir -p "$tmp/ff"
LOWBIT_EVAL_FIXTURE_DIR=$tmp/ff "$tests" --gtest_filter=RuntimeEval.WriteCliFixture >/dev/null
"$lowbit" run "$tmp/ff/model.lbm" --input "$tmp/pixels_u8.npy" --output "$tmp/ff_logits.npy"
if [[ $(head -c 128 "$tmp/ff_logits.npy" | tr -d '\0') == *"'<f4'"*"(3, 10)"* ]]; then pass "run feed-forward"; else fail "feed-forward logits header"; fi
expect_error "feed-forward dtype" "uint8" "$lowbit" run "$tmp/ff/model.lbm" --input "$tmp/x_f32.npy" --output "$tmp/o.npy"

out=$("$lowbit" bench lstm --hidden 8,12 --steps 3 --min-time 0 --json)
ok=1
for key in '"impl": "f32"' '"impl": "int8"' '"hidden": 12' '"steps": 3' '"batch": 1' '"threads"' '"seconds"' '"weight_bytes"'; do
  [[ $out == *"$key"* ]] || ok=0
done
if [[ $ok -eq 1 ]]; then pass "bench lstm --json"; else fail "bench lstm --json: $out"; fi

finish
