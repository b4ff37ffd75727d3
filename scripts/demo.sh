#!/usr/bin/env bash
# A tour of lowbit for a newcomer: builds it, shows what it found on this machine and what
# it will run, then exercises whatever the program offers so far. Each step is a function
# below, run in order by main(); a new step (train, export, evaluate a model) is one more
# function and one more line in main().
#
#   scripts/demo.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/common.sh
source "$here/common.sh"

for arg in "$@"; do
  case $arg in
    -h|--help) lowbit_usage "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "demo.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

lowbit="$(lowbit_build_dir 0 0)/lowbit"

heading() {
  printf '\n==============================================================================\n'
  printf '%s\n' "$1"
  printf '==============================================================================\n'
}

# Shows a command, then runs it.
show() {
  printf '\n$ %s\n' "$*"
  "$@"
}

step_build() {
  heading "1. Build (Release, in build/): installs missing packages, then compiles"
  bash "$here/build.sh"
}

step_info() {
  heading "2. What lowbit found on this machine: CPU features, the instruction-set cap,
   threads, and which kernel variant each operation will run"
  show "$lowbit" --version
  show "$lowbit" info
  echo
  echo "The same, capped to portable code (as LOWBIT_MAX_ISA=scalar would):"
  show "$lowbit" --max-isa scalar info
}

step_bench_gemm() {
  heading "3. Kernel speed: binary and int8 GEMM against float GEMM on small shapes"
  if ! "$lowbit" bench gemm --help >/dev/null 2>&1; then
    echo "(skipped: this build has no 'lowbit bench gemm' command yet)"
    return 0
  fi
  echo "One thread; binary counts one ±1 multiply-accumulate as 2 ops, like the others."
  show "$lowbit" --threads 1 bench gemm --shapes 256x4096x4096,1x4096x4096 --min-time 0.2
}

main() {
  step_build
  step_info
  step_bench_gemm
  heading "Done. Run 'bash scripts/test.sh' to run the tests; '$lowbit --help' lists the commands."
}

main
