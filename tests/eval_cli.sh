#!/usr/bin/env bash
# End-to-end checks of `lowbit eval`: a small network built with the runtime API (by the test
# RuntimeEval.WriteCliFixture) on a synthetic IDX test split with a known error count, the JSON
# and text reports, --limit, and the one-line errors for bad input. Also loads the model with
# scripts/read_model.py when python3 and numpy are available.
# Usage: tests/eval_cli.sh PATH/TO/lowbit PATH/TO/lowbit_tests SOURCE_DIR
set -euo pipefail

lowbit=${1:?usage: eval_cli.sh LOWBIT LOWBIT_TESTS SOURCE_DIR}
tests=${2:?usage: eval_cli.sh LOWBIT LOWBIT_TESTS SOURCE_DIR}
src=${3:?usage: eval_cli.sh LOWBIT LOWBIT_TESTS SOURCE_DIR}
# shellcheck source=tests/cli_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
LOWBIT_EVAL_FIXTURE_DIR=$tmp "$tests" --gtest_filter=RuntimeEval.WriteCliFixture >/dev/null
expected=$(cat "$tmp/expected_errors")


# JSON report: every key, and the error count the fixture planted.
out=$("$lowbit" eval "$tmp/model.lbm" --data "$tmp/data" --json --batch 16)
for key in error images_per_second images_per_second_batch1 model_bytes float_bytes examples weight_bytes; do
  if [[ $out != *"\"$key\""* ]]; then fail "json lacks $key: $out"; fi
done
if [[ $out == *"\"errors\": $expected,"* && $out == *"\"examples\": 40,"* ]]; then
  pass "json: $expected errors of 40"
else
  fail "json: expected $expected errors of 40: $out"
fi
if command -v python3 >/dev/null; then
  if printf '%s' "$out" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert abs(j["error"] - int(sys.argv[1]) / 40) < 1e-12, j["error"]
assert j["images_per_second"] > 0 and j["images_per_second_batch1"] > 0
assert j["model_bytes"] > j["weight_bytes"] > 0 and j["float_bytes"] > j["weight_bytes"]
' "$expected"; then pass "json values"; else fail "json values: $out"; fi
fi

out=$("$lowbit" eval "$tmp/model.lbm" --data "$tmp/data" --limit 8 --json)
if [[ $out == *"\"examples\": 8,"* ]]; then pass "--limit"; else fail "--limit: $out"; fi
out=$("$lowbit" eval "$tmp/model.lbm" --data "$tmp/data")
if [[ $out == *"test error"*"throughput"*"images/s at batch 1"*"size"*"float32"* ]]; then pass "text report"; else fail "text report: $out"; fi

expect_error "missing model" "no such model file" "$lowbit" eval "$tmp/absent.lbm" --data "$tmp/data"
expect_error "not a model" "not a lowbit model file" "$lowbit" eval "$tmp/data/t10k-labels-idx1-ubyte" --data "$tmp/data"
expect_error "input shape" "model expects 7x7x1" "$lowbit" eval "$tmp/wrong_input.lbm" --data "$tmp/data"
cexpected=$(cat "$tmp/expected_cifar_errors")
out=$("$lowbit" eval "$tmp/cifar_real.lbm" --data "$tmp/cifar" --json)
if [[ $out == *"\"errors\": $cexpected,"* && $out == *"\"examples\": 12,"* && $out == *"\"dataset\": \"cifar10\""* ]]; then
  pass "cifar10 test batch: $cexpected errors of 12"
else
  fail "cifar10 test batch: expected $cexpected errors of 12: $out"
fi
expect_error "cifar10 model on a folder without CIFAR files" "test_batch.bin" "$lowbit" eval "$tmp/cifar.lbm" --data "$tmp/data"
expect_error "missing data" "nowhere" "$lowbit" eval "$tmp/model.lbm" --data "$tmp/nowhere"
expect_error "bad batch" "--batch" "$lowbit" eval "$tmp/model.lbm" --data "$tmp/data" --batch 0

if command -v python3 >/dev/null && python3 -c 'import numpy' 2>/dev/null; then
  out=$(python3 "$src/scripts/read_model.py" "$tmp/model.lbm")
  if [[ $out == *"layers.0.weight int8 [70, 30]"* && $out == *"layers.1.weight uint64 [10, 8]"* &&
        $out == *"layers.1.weight unpacked [10, 70]"* ]]; then
    pass "read_model.py"
  else
    fail "read_model.py: $out"
  fi
else
  echo "skip: read_model.py (python3 with numpy not found)"
fi

finish
