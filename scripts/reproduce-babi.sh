#!/usr/bin/env bash
# Trains the five MemN2N configurations of the Q-MANN comparison on bAbI (float32, conventional
# 8-bit, Q-MANN 8-bit, conventional binary, Q-MANN binary; recipes/babi-*.json), one folder per
# configuration and task, and writes the per-task and mean test errors (mean over the runs, and
# the run with the lowest validation error) with the durations into docs/results.md (between the babi-table markers).
#
#   scripts/reproduce-babi.sh                         all 20 tasks, 10 runs, all five configurations
#   scripts/reproduce-babi.sh --tasks 1,2,3           some tasks
#   scripts/reproduce-babi.sh --runs N                runs (seeds) per task (default 10)
#   scripts/reproduce-babi.sh --configs float,qmann8  some configurations: float, conv8, qmann8,
#                                                     convbin, qmannbin, and conv8pq, qmann8pq (the
#                                                     8-bit pair with per-product re-quantization),
#                                                     conv8sat, qmann8sat, qmannbinsat (saturation-
#                                                     masked training, attention in fraction bits),
#                                                     conv8logit, qmann8logit (the 8-bit pair with
#                                                     the sat. mask and Q3.4 logits)
#   scripts/reproduce-babi.sh --epochs N              shorten every run
#   scripts/reproduce-babi.sh --data DIR              bAbI root with en-10k/ and en/ (default
#                                                     ../shared/data/babi, or LOWBIT_BABI_DATA)
#   scripts/reproduce-babi.sh --out DIR               run folders (default runs/babi)
#   scripts/reproduce-babi.sh --no-append             print the table instead of writing it
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/common.sh
source "$here/common.sh"

tasks=$(seq -s, 1 20)
runs=10
configs=float,conv8,qmann8,convbin,qmannbin
epochs=""
data=${LOWBIT_BABI_DATA:-$LOWBIT_ROOT/../shared/data/babi}
out="$LOWBIT_ROOT/runs/babi"
append=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --tasks) tasks=${2:?--tasks needs a list}; shift 2 ;;
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --configs) configs=${2:?--configs needs a list}; shift 2 ;;
    --epochs) epochs=${2:?--epochs needs a number}; shift 2 ;;
    --data) data=${2:?--data needs a folder}; shift 2 ;;
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --no-append) append=0; shift ;;
    -h|--help) lowbit_usage "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "reproduce-babi.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[[ -d $data ]] || { echo "reproduce-babi.sh: no bAbI folder at $data (give --data DIR)" >&2; exit 2; }

recipe_of() {
  case $1 in
    float) echo babi-memn2n-float ;;
    conv8) echo babi-conv-8bit ;;
    qmann8) echo babi-qmann-8bit ;;
    conv8pq) echo babi-conv-8bit-pq ;;
    qmann8pq) echo babi-qmann-8bit-pq ;;
    convbin) echo babi-conv-binary ;;
    qmannbin) echo babi-qmann-binary ;;
    conv8sat) echo babi-conv-8bit-sat ;;
    qmann8sat) echo babi-qmann-8bit-sat ;;
    qmannbinsat) echo babi-qmann-binary-sat ;;
    qmann8logit) echo babi-qmann-8bit-sat-logit ;;
    conv8logit) echo babi-conv-8bit-sat-logit ;;
    *) echo "reproduce-babi.sh: unknown configuration '$1'" >&2; exit 2 ;;
  esac
}

bash "$here/build.sh" >/dev/null
lowbit="$(lowbit_build_dir 0 0)/lowbit"
threads=$("$lowbit" info --json | sed -n 's/^  "threads": *\([0-9]*\).*/\1/p' | head -n 1)
extra=()
[[ -n $epochs ]] && extra+=(--epochs "$epochs")

IFS=, read -r -a task_list <<<"$tasks"
IFS=, read -r -a config_list <<<"$configs"
for t in "${task_list[@]}"; do
  for c in "${config_list[@]}"; do
    recipe=$(recipe_of "$c")
    dir="$out/$c/task-$(printf %02d "$t")"
    if [[ -f $dir/results.json ]] && grep -q '"mean_test_error"' "$dir/results.json"; then
      echo "== $c task $t: done before ($dir)"
      continue
    fi
    echo "== $c task $t ($recipe, $runs run(s))"
    start=$(date +%s)
    "$lowbit" train --recipe "$LOWBIT_ROOT/recipes/$recipe.json" --out "$dir" --data "$data" --task "$t" \
      --runs "$runs" "${extra[@]}" | tail -n 1
    echo "$(( $(date +%s) - start ))" > "$dir/wall_seconds"
  done
done

# The table: one row per task, mean (best) test error per configuration, and durations.
table=$(python3 - "$out" "$tasks" "$configs" "$runs" "${epochs:-recipe}" "$threads" <<'PY'
import json, os, sys
out, tasks, configs, runs, epochs, threads = sys.argv[1:7]
tasks = [int(t) for t in tasks.split(",")]
configs = configs.split(",")
names = {"float": "float32", "conv8": "conv. 8-bit", "qmann8": "Q-MANN 8-bit", "conv8pq": "conv. 8-bit, per product",
         "qmann8pq": "Q-MANN 8-bit, per product", "convbin": "conv. binary", "qmannbin": "Q-MANN binary",
         "conv8sat": "conv. 8-bit, sat. mask", "qmann8sat": "Q-MANN 8-bit, sat. mask", "qmannbinsat": "Q-MANN binary, sat. mask",
         "conv8logit": "conv. 8-bit, sat. mask, Q3.4 logits", "qmann8logit": "Q-MANN 8-bit, sat. mask, Q3.4 logits"}
order = [c for c in ["float", "conv8", "qmann8", "conv8pq", "qmann8pq", "conv8sat", "qmann8sat", "conv8logit", "qmann8logit", "convbin",
                     "qmannbin", "qmannbinsat"] if c in configs]
rows, sums, secs = [], {c: [0.0, 0.0, 0] for c in order}, {c: 0 for c in order}
for t in tasks:
    cells = []
    for c in order:
        p = os.path.join(out, c, "task-%02d" % t, "results.json")
        if not os.path.exists(p):
            cells.append("—"); continue
        r = json.load(open(p))
        if "mean_test_error" not in r:
            cells.append("—"); continue
        m, b = 100 * r["mean_test_error"], 100 * r["mean_best_test_error"]
        sums[c][0] += m; sums[c][1] += b; sums[c][2] += 1
        w = os.path.join(out, c, "task-%02d" % t, "wall_seconds")
        if os.path.exists(w): secs[c] += int(open(w).read())
        cells.append("%.1f (%.1f)" % (m, b))
    rows.append("| %d | %s |" % (t, " | ".join(cells)))
head = "| task | " + " | ".join(names[c] for c in order) + " |"
sep = "|---|" + "---|" * len(order)
mean = "| **mean** | " + " | ".join(
    ("**%.1f** (%.1f)" % (s[0] / s[2], s[1] / s[2])) if s[2] else "—" for s in (sums[c] for c in order)) + " |"
dur = "| duration | " + " | ".join("%d min %02d s" % (secs[c] // 60, secs[c] % 60) for c in order) + " |"
print("Test error in %% on bAbI (10k; task 3 from the 1k set), mean over %s run(s) per task, in "
      "parentheses the test error of the run with the lowest validation error; epochs: %s; %s threads; durations are wall time for all listed tasks." % (runs, epochs, threads))
print()
print("\n".join([head, sep] + rows + [mean, dur]))
PY
)
if [[ $append -eq 0 ]]; then
  echo "$table"
  exit 0
fi
results="$LOWBIT_ROOT/docs/results.md"
cmd="scripts/reproduce-babi.sh --tasks $tasks --runs $runs --configs $configs${epochs:+ --epochs $epochs}"
if [[ $out != "$LOWBIT_ROOT/runs/babi" ]]; then cmd+=" --out ${out#"$LOWBIT_ROOT"/}"; fi
python3 - "$results" "$cmd" "$table" <<'PY'
import sys, datetime
path, cmd, table = sys.argv[1:4]
text = open(path).read()
begin, end = "<!-- babi-table-begin -->", "<!-- babi-table-end -->"
block = "%s\n`%s` (%s)\n\n%s\n%s" % (begin, cmd, datetime.date.today().isoformat(), table, end)
if begin in text and end in text:
    text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n## bAbI, MemN2N and Q-MANN: `scripts/reproduce-babi.sh`\n\n" + block + "\n"
open(path, "w").write(text)
PY
echo "table written to docs/results.md"
