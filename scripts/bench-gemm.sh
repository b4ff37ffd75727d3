#!/usr/bin/env bash
# Measures the GEMM kernels as docs/performance.md reports them: `lowbit bench gemm --json`
# with 1 and 2 threads on the default shapes, then one Markdown table with the ratios the
# targets are stated in (binary vs float, binary vs our int8, our int8 vs oneDNN's, and
# 2-thread over 1-thread scaling). All numbers in a row come from the same program run.
#
#   scripts/bench-gemm.sh [OUT_DIR]     (default: bench-results/, ignored by git)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
out=${1:-$root/bench-results}
mkdir -p "$out"
bash "$here/build.sh" >/dev/null
lowbit="$root/build/lowbit"
for t in 1 2; do
  echo "== lowbit --threads $t bench gemm --json" >&2
  "$lowbit" --threads "$t" bench gemm --json >"$out/gemm-t$t.json"
done
python3 "$root/bench/gemm_table.py" "$out/gemm-t1.json" "$out/gemm-t2.json"
