#!/usr/bin/env bash
# Builds lowbit: installs missing packages, configures with Ninja and builds with all cores.
#
#   scripts/build.sh              Release build in build/
#   scripts/build.sh --debug      Debug build in build-debug/
#   scripts/build.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build in
#                                 build-asan/ (optimised, with debug info; add --debug for
#                                 an unoptimised one in build-asan-debug/)
# Safe to run again: it only installs what is missing and rebuilds what changed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/common.sh
source "$here/common.sh"

sanitize=0
debug=0
for arg in "$@"; do
  case $arg in
    --sanitize) sanitize=1 ;;
    --debug) debug=1 ;;
    -h|--help) lowbit_usage "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "build.sh: unknown option '$arg' (expected --sanitize or --debug)" >&2; exit 2 ;;
  esac
done

bash "$here/install-deps.sh"

build_dir=$(lowbit_build_dir "$sanitize" "$debug")
if [[ $sanitize -eq 1 ]]; then
  # RelWithDebInfo keeps the sanitized test suite fast; the sanitizers work at any -O level.
  build_type=$([[ $debug -eq 1 ]] && echo Debug || echo RelWithDebInfo)
  sanitize_flag=ON
  lowbit_sanitizer_env
else
  build_type=$([[ $debug -eq 1 ]] && echo Debug || echo Release)
  sanitize_flag=OFF
fi

echo "== configure $build_dir ($build_type, sanitizers $sanitize_flag)"
launcher=()
# ccache, when installed, makes rebuilds of several checkouts cheap; it is optional.
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$LOWBIT_ROOT" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" \
  -DLOWBIT_SANITIZE="$sanitize_flag" "${launcher[@]}"
echo "== build with $(nproc) jobs"
cmake --build "$build_dir" --parallel "$(nproc)"
