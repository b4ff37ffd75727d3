#!/usr/bin/env bash
# Installs a build into a temporary prefix and uses it as an outside project would:
# PREFIX/bin/lowbit must run (its RPATH finds PREFIX/lib), and the consumer project in this
# folder must configure with find_package(lowbit), build, link lowbit::lowbit and run.
#
# Usage: tests/install/check.sh BUILD_DIR [CMAKE_CXX_COMPILER] [CMAKE_BUILD_TYPE]
set -euo pipefail

build_dir=$(cd "${1:?usage: check.sh BUILD_DIR [CXX_COMPILER] [BUILD_TYPE]}" && pwd)
cxx=${2:-c++}
build_type=${3:-Release}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

work=$(mktemp -d -t lowbit-install-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

echo "== cmake --install $build_dir --prefix $prefix"
cmake --install "$build_dir" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; exit 1; }

echo "== $prefix/bin/lowbit --version"
# Run without the build tree's library path so that only the installed RPATH can help.
env -u LD_LIBRARY_PATH "$prefix/bin/lowbit" --version
ldd "$prefix/bin/lowbit" | grep liblowbit | grep -qF "$prefix/" || {
  echo "installed lowbit does not load liblowbit.so from $prefix:" >&2
  ldd "$prefix/bin/lowbit" >&2
  exit 1
}

echo "== configure and build the consumer project against $prefix"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$here" -B "$work/consumer" "${generator[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE="$build_type" >"$work/configure.log" ||
  { cat "$work/configure.log"; exit 1; }
cmake --build "$work/consumer" >"$work/build.log" || { cat "$work/build.log"; exit 1; }

echo "== run the consumer"
"$work/consumer/consumer"
echo "install check passed"
