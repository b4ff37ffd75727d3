#!/usr/bin/env bash
# End-to-end checks of `lowbit energy`: the model that the eval checks export
# (RuntimeEval.WriteCliFixture), the small feedforward and integer LSTM files of the energy
# tests (EnergyCli.WriteFixture): text and JSON reports, --steps, and the one-line errors for a
# missing file, a file that is not a model, a model kind without a counter and a bad --steps.
# Usage: tests/energy_cli.sh PATH/TO/lowbit PATH/TO/lowbit_tests
set -euo pipefail

lowbit=${1:?usage: energy_cli.sh LOWBIT LOWBIT_TESTS}
tests=${2:?usage: energy_cli.sh LOWBIT LOWBIT_TESTS}
# shellcheck source=tests/cli_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
LOWBIT_EVAL_FIXTURE_DIR=$tmp/eval "$tests" --gtest_filter=RuntimeEval.WriteCliFixture >/dev/null
LOWBIT_ENERGY_FIXTURE_DIR=$tmp "$tests" --gtest_filter=EnergyCli.WriteFixture >/dev/null

# value KEY JSON: the number after "KEY": in pretty-printed JSON.
value() { printf '%s\n' "$2" | sed -n "s/^  \"$1\": \([-0-9.e+]*\),\{0,1\}$/\1/p" | head -1; }
# gt A B: A > B as numbers.
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 > b + 0) }'; }

# The exported MNIST-style network (dense codes 30->70 sign, dense bits 70->10 affine).
out=$("$lowbit" energy "$tmp/eval/model.lbm" --json)
for key in energy_pj float_energy_pj gain ops float_ops parts assumptions; do
  if [[ $out != *"\"$key\""* ]]; then fail "json lacks $key"; fi
done
e=$(value energy_pj "$out")
fe=$(value float_energy_pj "$out")
g=$(value gain "$out")
if [[ -n $e && -n $fe && -n $g ]] && gt "$g" 1 && gt "$fe" "$e" &&
   awk -v e="$e" -v f="$fe" -v g="$g" 'BEGIN { r = f / e; exit !(r > g * 0.999999 && r < g * 1.000001) }'; then
  pass "json: energy $e pJ, fp32 $fe pJ, gain $g"
else
  fail "json values: energy '$e' fp32 '$fe' gain '$g'"
fi
if [[ $out == *'"op": "popcount"'* && $out == *'"op": "multiply"'* && $out == *'"kind": "feedforward"'* ]]; then
  pass "json per-op breakdown"
else
  fail "json breakdown: $(printf '%s' "$out" | head -c 2000)"
fi

out=$("$lowbit" energy "$tmp/eval/model.lbm")
if [[ $out == *"model, by part:"*"layers.1"*"fp32 reference"*"gain (fp32 / model)"*"adder tree"* ]]; then
  pass "text report"
else
  fail "text report: $(printf '%s' "$out" | head -c 2000)"
fi

# The hand-built feedforward network and the integer LSTM; --steps scales the counts.
out=$("$lowbit" energy "$tmp/feedforward.lbm" --json)
g=$(value gain "$out")
if [[ -n $g ]] && gt "$g" 1; then pass "feedforward fixture: gain $g"; else fail "feedforward fixture: gain '$g'"; fi
one=$("$lowbit" energy "$tmp/lstm.lbm" --json)
ten=$("$lowbit" energy "$tmp/lstm.lbm" --json --steps 10)
e1=$(value energy_pj "$one")
e10=$(value energy_pj "$ten")
if [[ $one == *'"kind": "lstm"'* && -n $e1 && -n $e10 ]] &&
   awk -v a="$e1" -v b="$e10" 'BEGIN { exit !(b > 9.99999 * a && b < 10.00001 * a) }' &&
   awk -v a="$(value gain "$one")" -v b="$(value gain "$ten")" 'BEGIN { exit !(b > 0.999999 * a && b < 1.000001 * a) }'; then
  pass "lstm: --steps 10 is ten steps ($e1 -> $e10 pJ, same gain)"
else
  fail "lstm --steps: energy $e1 -> $e10, gain $(value gain "$one") -> $(value gain "$ten")"
fi
# Captured first: `lowbit ... | grep -q` under pipefail fails when grep exits before lowbit writes.
out=$("$lowbit" energy "$tmp/lstm.lbm")
if [[ $out == *"lstm.0 gate activations"* ]]; then pass "lstm text"; else fail "lstm text"; fi

out=$("$lowbit" energy --table)
if [[ $out == *"multiply   int      16     0.7874"*"popcount   int      64       0.45"* ]]; then pass "--table"; else fail "--table: $out"; fi

expect_error "no model" "a model file is required" "$lowbit" energy
expect_error "missing model" "no such model file" "$lowbit" energy "$tmp/absent.lbm"
expect_error "not a model" "not a lowbit model file" "$lowbit" energy "$tmp/eval/data/t10k-labels-idx1-ubyte"
expect_error "unknown kind" "no energy counter for model kind \"hopfield\"" "$lowbit" energy "$tmp/unknown.lbm"
expect_error "bad --steps" "--steps" "$lowbit" energy "$tmp/lstm.lbm" --steps 0

finish
