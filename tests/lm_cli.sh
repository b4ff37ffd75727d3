#!/usr/bin/env bash
# End-to-end checks of `lowbit train` and `lowbit export` on a language-model recipe: a generated
# PTB-format corpus, one epoch, resume for the second, export to a float lstm_lm file; and the
# bad inputs (mistyped key, token ids beyond the vocabulary, empty corpus, export of a GRU),
# each of which must give one "lowbit: error: ..." line and a non-zero exit.
# Usage: tests/lm_cli.sh PATH/TO/lowbit
set -euo pipefail

lowbit=${1:?usage: lm_cli.sh LOWBIT}
# shellcheck source=tests/cli_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

corpus=$tmp/corpus
mkdir -p "$corpus"
words=(the cat sat on a mat and dog ran far away now)
make_part() {  # FILE SENTENCES SEED
  local s=$3 i k
  for ((i = 0; i < $2; i++)); do
    s=$(((s * 1103515245 + 12345) % 2147483648))
    local start=$(((s >> 8) % 12)) len=$((3 + (s >> 16) % 6)) line=""
    for ((k = 0; k < len; k++)); do line+=" ${words[$(((start + k) % 12))]}"; done
    echo "$line "
  done > "$1"
}
make_part "$corpus/ptb.train.txt" 120 1
make_part "$corpus/ptb.valid.txt" 30 2
make_part "$corpus/ptb.test.txt" 30 3

recipe=$tmp/lm.json
cat > "$recipe" <<'JSON'
{"name": "lm-cli", "task": "language_model",
 "data": {"dataset": "ptb", "path": "data/ptb"},
 "model": {"embedding_dim": 10, "dropout": 0.2, "layers": [{"type": "lstm", "units": 12}]},
 "optimizer": {"type": "sgd", "lr": 5, "schedule": "plateau", "decay": 2, "clip_grad_norm": 1.0},
 "training": {"epochs": 2, "batch_size": 4, "bptt": 8, "eval_batch_size": 2, "seed": 3}}
JSON

run=$tmp/run
out=$("$lowbit" train --recipe "$recipe" --out "$run" --data "$corpus" --stop-after 1)
if [[ $out == *"epoch 1/2"*"valid ppl"* && -f $run/checkpoint.lbm && -f $run/best.lbm ]]; then
  pass "train 1 epoch"
else
  fail "train 1 epoch: $out"
fi
# Not a terminal: plain progress lines within the epoch instead of a bar.
if [[ $out == *"epoch 1/2: "*" windows, loss "*"epoch ETA"* && $out != *$'\r'* ]]; then
  pass "progress lines in a log"
else
  fail "progress lines: $out"
fi
out=$("$lowbit" train --recipe "$recipe" --out "$run" --data "$corpus" --resume)
if [[ $out == *"resuming after epoch 1"*"epoch 2/2"* ]]; then pass "resume"; else fail "resume: $out"; fi
[[ $(wc -l < "$run/metrics.jsonl") -eq 2 ]] && pass "metrics.jsonl: 2 lines" || fail "metrics.jsonl"
grep -q '"valid_perplexity"' "$run/metrics.jsonl" && pass "perplexity in metrics" || fail "no valid_perplexity"
if command -v python3 >/dev/null; then
  out=$(python3 "$(dirname "${BASH_SOURCE[0]}")/../bench/plot_metrics.py" "$run/metrics.jsonl" --table 1)
  if [[ $out == *"| valid perplexity | test perplexity |"* && $(grep -c '^| [12]' <<< "$out") -eq 2 ]]; then
    pass "plot_metrics --table (perplexity)"
  else
    fail "plot_metrics --table: $out"
  fi
fi

out=$("$lowbit" export "$run" --out "$tmp/lm.lbm")
if [[ $out == *"lstm_lm"* && -f $tmp/lm.lbm ]]; then pass "export"; else fail "export: $out"; fi
grep -a -q '"kind":"lstm_lm"' "$tmp/lm.lbm" && pass "lstm_lm kind in the file" || fail "no lstm_lm kind"

sed 's/"eval_batch_size"/"eval_batch_sise"/' "$recipe" > "$tmp/typo.json"
expect_error "mistyped key" "'training.eval_batch_sise': unknown key" "$lowbit" train --recipe "$tmp/typo.json" --out "$tmp/r1" --data "$corpus"
sed 's/"embedding_dim": 10/"vocab_size": 5, "embedding_dim": 10/' "$recipe" > "$tmp/small.json"
expect_error "vocabulary too small" "out of range" "$lowbit" train --recipe "$tmp/small.json" --out "$tmp/r2" --data "$corpus"
mkdir -p "$tmp/empty" && : > "$tmp/empty/ptb.train.txt" && cp "$corpus/ptb.valid.txt" "$corpus/ptb.test.txt" "$tmp/empty/"
expect_error "empty corpus" "ptb.train.txt" "$lowbit" train --recipe "$recipe" --out "$tmp/r3" --data "$tmp/empty"
sed 's/"type": "lstm"/"type": "gru"/' "$recipe" > "$tmp/gru.json"
"$lowbit" train --recipe "$tmp/gru.json" --out "$tmp/gru" --data "$corpus" --stop-after 1 > /dev/null
expect_error "export of a GRU" "only LSTM" "$lowbit" export "$tmp/gru" --out "$tmp/gru.lbm"
expect_error "--max-windows on a classifier" "language-model" "$lowbit" train --recipe "$(dirname "${BASH_SOURCE[0]}")/data/train-tiny-mnist.json" --out "$tmp/r4" --max-windows 3

finish
