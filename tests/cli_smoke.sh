#!/usr/bin/env bash
# End-to-end checks of the `lowbit` program: help, version, `info` as text and JSON, the
# instruction-set cap and thread count from the environment and options, and the one-line
# error contract. Usage: tests/cli_smoke.sh PATH/TO/lowbit
set -euo pipefail

lowbit=${1:?usage: cli_smoke.sh PATH/TO/lowbit}
# shellcheck source=tests/cli_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"


# Reads `lowbit info --json` from stdin and checks it against the expectations given as
# arguments: key=value pairs for cpu.max_isa and threads.
check_json() {
  python3 -c '
import json, sys
info = json.load(sys.stdin)
want = dict(a.split("=", 1) for a in sys.argv[1:])
problems = []
for key in ("version", "compiler", "onednn_version", "cpu", "threads", "kernels"):
    if key not in info:
        problems.append("missing key " + key)
cpu = info.get("cpu", {})
for key in ("brand", "features", "usable_features", "max_isa"):
    if key not in cpu:
        problems.append("missing key cpu." + key)
if not set(cpu.get("usable_features", [])) <= set(cpu.get("features", [])):
    problems.append("usable features are not a subset of the detected features")
if not isinstance(info.get("threads"), int) or info["threads"] < 1:
    problems.append("threads is not a positive integer")
for k in info.get("kernels", []):
    if not {"op", "chosen", "available"} <= set(k):
        problems.append("kernel entry lacks op/chosen/available: %r" % k)
    elif k["chosen"] not in k["available"]:
        problems.append("%s: chosen %s is not among the runnable variants" % (k["op"], k["chosen"]))
if "max_isa" in want:
    if cpu.get("max_isa") != want["max_isa"]:
        problems.append("cpu.max_isa is %r, expected %r" % (cpu.get("max_isa"), want["max_isa"]))
    if want["max_isa"] == "scalar":
        if set(cpu.get("usable_features", [])) - {"popcnt"}:
            problems.append("vector features usable under the scalar cap")
        # Variants are named after the instruction set they need (e.g. bgemm_avx512_...).
        for k in info.get("kernels", []):
            if "avx" in k["chosen"]:
                problems.append("%s: %s chosen under the scalar cap" % (k["op"], k["chosen"]))
if "threads" in want and info.get("threads") != int(want["threads"]):
    problems.append("threads is %r, expected %s" % (info.get("threads"), want["threads"]))
if problems:
    print("; ".join(problems), file=sys.stderr)
    sys.exit(1)
' "$@"
}

# --help lists the commands; --version prints the version.
help=$("$lowbit" --help) || fail "lowbit --help exited non-zero"
if [[ $help == *"info"* && $help == *"--threads"* && $help == *"--max-isa"* ]]; then pass "--help lists info, --threads, --max-isa"
else fail "--help output lacks info/--threads/--max-isa"; fi
version=$("$lowbit" --version) || fail "lowbit --version exited non-zero"
if [[ $version =~ ^lowbit\ [0-9]+\.[0-9]+\.[0-9]+$ ]]; then pass "--version: $version"; else fail "--version printed '$version'"; fi

# info as text.
text=$("$lowbit" info) || fail "lowbit info exited non-zero"
for word in "lowbit" "compiler" "oneDNN" "threads" "features" "max ISA" "usable features" "Kernels"; do
  [[ $text == *"$word"* ]] || fail "lowbit info lacks '$word'"
done
pass "lowbit info (text)"

# info as JSON, plain and under caps and thread counts from the environment and options.
if "$lowbit" info --json | check_json; then pass "lowbit info --json"; else fail "lowbit info --json"; fi
if LOWBIT_MAX_ISA=scalar "$lowbit" info --json | check_json max_isa=scalar; then pass "LOWBIT_MAX_ISA=scalar"
else fail "LOWBIT_MAX_ISA=scalar"; fi
if "$lowbit" --max-isa avx2 info --json | check_json max_isa=avx2; then pass "--max-isa avx2"; else fail "--max-isa avx2"; fi
if "$lowbit" info --max-isa scalar --json | check_json max_isa=scalar; then pass "--max-isa after the command"
else fail "--max-isa after the command"; fi
if LOWBIT_NUM_THREADS=3 "$lowbit" info --json | check_json threads=3; then pass "LOWBIT_NUM_THREADS=3"
else fail "LOWBIT_NUM_THREADS=3"; fi
if LOWBIT_NUM_THREADS=3 "$lowbit" --threads 2 info --json | check_json threads=2; then pass "--threads overrides LOWBIT_NUM_THREADS"
else fail "--threads 2"; fi

# Errors: one line, non-zero status.
expect_error "LOWBIT_MAX_ISA=bogus" "bogus" env LOWBIT_MAX_ISA=bogus "$lowbit" info
expect_error "--max-isa bogus" "bogus" "$lowbit" --max-isa bogus info
expect_error "--threads 0" "thread" "$lowbit" --threads 0 info
expect_error "LOWBIT_NUM_THREADS=zero" "LOWBIT_NUM_THREADS" env LOWBIT_NUM_THREADS=zero "$lowbit" info
expect_error "unknown command" "frobnicate" "$lowbit" frobnicate
expect_error "no command" "command" "$lowbit"
# --help after an unknown command must fail too: scripts probe for commands this way.
expect_error "unknown command with --help" "frobnicate" "$lowbit" frobnicate --help

# bench gemm: tiny awkward shapes, one JSON object with the documented fields.
if "$lowbit" --threads 1 bench gemm --shapes 3x5x7,1x17x65 --min-time 0 --min-runs 1 --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
rs = j["results"]
assert len(rs) == 8, len(rs)
for r in rs:
    for key in ("impl", "m", "n", "k", "threads", "seconds", "ops_per_second"):
        assert key in r, key
    assert r["impl"] in ("f32", "int8", "onednn_s8", "binary"), r["impl"]
    assert r["threads"] == 1 and r["seconds"] > 0
    assert abs(r["ops_per_second"] - 2.0 * r["m"] * r["n"] * r["k"] / r["seconds"]) <= 1e-6 * r["ops_per_second"]
assert {(r["m"], r["n"], r["k"]) for r in rs} == {(3, 5, 7), (1, 17, 65)}
'; then pass "bench gemm --json"; else fail "bench gemm --json"; fi
expect_error "bench gemm bad shape" "4x4" "$lowbit" bench gemm --shapes 4x4
expect_error "bench gemm zero size" "0x4x4" "$lowbit" bench gemm --shapes 0x4x4

finish
