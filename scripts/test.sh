#!/usr/bin/env bash
# Builds lowbit and runs every test: the unit tests, the command-line checks and the
# install check (install into a temporary prefix, then find_package(lowbit) from a separate
# project). Exits non-zero on any failure; the last lines are ctest's summary.
#
#   scripts/test.sh               Release build in build/
#   scripts/test.sh --sanitize    ASan + UBSan build in build-asan/, same tests
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/common.sh
source "$here/common.sh"

sanitize=0
for arg in "$@"; do
  case $arg in
    --sanitize) sanitize=1 ;;
    -h|--help) lowbit_usage "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "test.sh: unknown option '$arg' (expected --sanitize)" >&2; exit 2 ;;
  esac
done

build_args=()
if [[ $sanitize -eq 1 ]]; then
  build_args+=(--sanitize)
  lowbit_sanitizer_env
fi
bash "$here/build.sh" "${build_args[@]}"
build_dir=$(lowbit_build_dir "$sanitize" 0)

echo "== ctest in $build_dir"
cd "$build_dir"
ctest --output-on-failure -j2
