#!/usr/bin/env bash
# Installs the Debian packages needed to build and test lowbit, if any are missing.
# Does nothing (and needs no network or root) when everything is already installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build    # compiler and build tools
  libdnnl-dev                          # oneDNN: tuned float GEMM (and its OpenMP runtime)
  libgtest-dev libgmock-dev            # unit tests
  libbenchmark-dev                     # micro-benchmarks
  libcli11-dev nlohmann-json3-dev      # command-line program
  libfmt-dev
  python3 python3-numpy                # test helpers and model-file checks
  zlib1g-dev libpng-dev
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} required packages are installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "install-deps: not root and sudo is not available; please install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
echo "install-deps: done"
