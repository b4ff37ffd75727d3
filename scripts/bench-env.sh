#!/usr/bin/env bash
# Creates (or completes) the Python environment for the peer benchmarks under bench/:
# a virtual environment in .venv-bench/ at the repository root (ignored by git) on top of
# Debian's Python, with
#   - numpy and matplotlib from Debian (python3-numpy, python3-matplotlib), seen through
#     --system-site-packages;
#   - from PyPI, pinned: torch 2.15 (its x86 wheel uses MKL and oneDNN on the CPU, several
#     times faster than Debian's python3-torch 1.13 on OpenBLAS for small LSTMs, so it is the
#     peer; it brings the CUDA libraries along, about 4 GB installed, unused here),
#     tensorflow 2.16 + tf-keras 2.16 (Keras 2, which larq needs), larq,
#     larq-compute-engine 0.16 (built against TensorFlow 2.16: keep the two in step),
#     ai-edge-litert 1.4 (the LiteRT interpreter: integer LSTM peer and conformance goldens).
# Safe to run again: it installs only what is missing. Needs network access to the Debian
# archive and PyPI the first time (about 2 GB of wheels). Usage:
#   bash scripts/bench-env.sh           # then: .venv-bench/bin/python bench/bnn_mlp_peers.py
#   bash scripts/bench-env.sh --check   # only report what is installed; exit 1 if incomplete
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

venv="$LOWBIT_ROOT/.venv-bench"
py="$venv/bin/python"
check_only=0
case "${1:-}" in
  "") ;;
  --check) check_only=1 ;;
  -h|--help) lowbit_usage "${BASH_SOURCE[0]}"; exit 0 ;;
  *) echo "bench-env: unknown option '$1' (expected --check or nothing)" >&2; exit 2 ;;
esac

# The pinned PyPI set; bench/requirements.txt holds the same list for pip users.
requirements="$LOWBIT_ROOT/bench/requirements.txt"

debian_packages=(python3 python3-venv python3-pip python3-numpy python3-matplotlib)

missing=()
for p in "${debian_packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ $check_only -eq 1 ]]; then
    echo "bench-env: missing Debian packages: ${missing[*]}"
    exit 1
  fi
  echo "bench-env: installing Debian packages ${missing[*]}"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}"
fi

# Debian's python3 (not one found first on PATH): the Debian Python packages are installed for it.
system_python=/usr/bin/python3
if [[ ! -x $py ]]; then
  if [[ $check_only -eq 1 ]]; then
    echo "bench-env: no virtual environment at $venv"
    exit 1
  fi
  echo "bench-env: creating $venv"
  "$system_python" -m venv --system-site-packages "$venv"
fi

# Installed already? pip check of the pinned set, without touching the network.
if "$py" - "$requirements" <<'EOF'
import sys
from importlib import metadata
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
bad = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    req = Requirement(line)
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        bad.append(f"{req.name} (not installed)")
        continue
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        bad.append(f"{req.name} {version} (want {req.specifier})")
if bad:
    print("bench-env: to install: " + ", ".join(bad))
    sys.exit(1)
EOF
then
  echo "bench-env: pinned PyPI packages present"
else
  if [[ $check_only -eq 1 ]]; then exit 1; fi
  "$py" -m pip install --disable-pip-version-check -q -r "$requirements"
fi

# Show what the benchmark will use (also proves that every import works).
TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3 "$py" - <<'EOF'
import numpy, torch, matplotlib, tensorflow as tf, larq, larq_compute_engine as lce
from ai_edge_litert import interpreter as litert
from importlib import metadata
print("bench-env: numpy", numpy.__version__, "| torch", torch.__version__,
      "| tensorflow", tf.__version__, "| tf-keras", metadata.version("tf-keras"),
      "| larq", metadata.version("larq"),
      "| larq-compute-engine", metadata.version("larq-compute-engine"),
      "| ai-edge-litert", metadata.version("ai-edge-litert"),
      "| matplotlib", matplotlib.__version__)
EOF
echo "bench-env: ready; run .venv-bench/bin/python bench/bnn_mlp_peers.py --help"
