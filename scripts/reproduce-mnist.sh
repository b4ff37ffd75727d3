#!/usr/bin/env bash
# Reproduces the MNIST rows of the BNN/QNN papers with the recipes in recipes/: the paper's
# binary MLP (784-3x4096-10, 1000 epochs), and 2-bit and 4-bit QNN MLPs. Each run trains,
# exports, evaluates with the integer runtime, and appends a row (command, wall time, machine,
# best epoch, test errors) to docs/results.md and prints the run's curve as a table. Runs can be
# stopped and continued: an existing run folder is resumed from its checkpoint.
#
#   scripts/reproduce-mnist.sh                     all three recipes, full length (days on a CPU)
#   scripts/reproduce-mnist.sh --only mnist-bnn    one recipe
#   scripts/reproduce-mnist.sh --epochs N          shorten every run (and its LR schedule)
#   scripts/reproduce-mnist.sh --runs DIR          where run folders go (default: runs/)
#   scripts/reproduce-mnist.sh --no-append         print rows instead of appending them
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/common.sh
source "$here/common.sh"

recipes=(mnist-bnn mnist-qnn-2bit mnist-qnn-4bit)
epochs=""
runs="$LOWBIT_ROOT/runs"
append=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --only) recipes=("${2:?--only needs a recipe name}"); shift 2 ;;
    --epochs) epochs=${2:?--epochs needs a number}; shift 2 ;;
    --runs) runs=${2:?--runs needs a folder}; shift 2 ;;
    --no-append) append=0; shift ;;
    -h|--help) lowbit_usage "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "reproduce-mnist.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done

bash "$here/build.sh" >/dev/null
lowbit="$(lowbit_build_dir 0 0)/lowbit"
cpu=$("$lowbit" info --json | sed -n 's/.*"brand": *"\([^"]*\)".*/\1/p' | head -n 1)
threads=$("$lowbit" info --json | sed -n 's/^  "threads": *\([0-9]*\).*/\1/p' | head -n 1)
results="$LOWBIT_ROOT/docs/results.md"

for name in "${recipes[@]}"; do
  recipe="recipes/$name.json"
  [[ -f "$LOWBIT_ROOT/$recipe" ]] || { echo "reproduce-mnist.sh: no recipe $recipe" >&2; exit 2; }
  dir="$runs/$name${epochs:+-e$epochs}"
  args=(train --recipe "$recipe" --out "$dir" --data data/mnist)
  [[ -n $epochs ]] && args+=(--epochs "$epochs")
  [[ -f "$dir/checkpoint.lbm" ]] && args+=(--resume)
  echo "== $name: lowbit ${args[*]}"
  start=$(date +%s)
  (cd "$LOWBIT_ROOT" && "$lowbit" "${args[@]}")
  elapsed=$(( $(date +%s) - start ))
  duration="$((elapsed / 60)) min $((elapsed % 60)) s"
  "$lowbit" export "$dir" --out "$dir/model.lbm" >/dev/null
  eval_json=$("$lowbit" eval "$dir/model.lbm" --data "$LOWBIT_ROOT/data/mnist" --json)
  row=$(python3 - "$dir/metrics.jsonl" "$eval_json" <<'PY'
import json, sys
hist = [json.loads(l) for l in open(sys.argv[1])]
best = min(hist, key=lambda h: (h["valid_error"], h["epoch"]))
ev = json.loads(sys.argv[2])
print(f"{len(hist)} | {best['epoch']} | {100 * best['valid_error']:.2f} % | {100 * best['test_error']:.2f} % | "
      f"{100 * ev['error']:.2f} %")
PY
)
  line="| $name | \`lowbit ${args[*]}\` | $duration (this invocation) | $cpu, $threads threads | $row |"
  if [[ $append -eq 1 ]]; then
    printf '%s\n' "$line" >> "$results"
    echo "appended to docs/results.md: $line"
  else
    echo "$line"
  fi
  # The curve as docs/results.md shows it: epochs 1, 2, 5, every 20th, the best and the last.
  python3 "$LOWBIT_ROOT/bench/plot_metrics.py" "$dir/metrics.jsonl" --table 20
done
