#!/usr/bin/env bash
# Bit-exact conformance of lowbit's integer LSTM with TensorFlow Lite (LiteRT reference
# kernels): for every case in tests/data/litert/ (NAME.lbm, NAME.in.npy, NAME.out.npy; made by
# tests/litert/make_litert_goldens.py), `lowbit run NAME.lbm --input NAME.in.npy` must write
# exactly LiteRT's int8 outputs, with the scalar kernels, the AVX2 kernels and the best the CPU
# has, on one and on two threads, and with the scalar reference step (`--reference`) when lowbit
# has it.
#
# The comparison needs no Python: each .npy header is parsed here (version 1 to 3 headers;
# 'descr', 'fortran_order', 'shape'), the dtype and shape must agree, and the data bytes after
# the headers are compared with cmp. The two files may differ in header layout (padding,
# version) without failing the check; a mismatch names the case and the first differing
# element as [t, b, j] with both values.
# Usage: tests/litert_conformance.sh PATH/TO/lowbit SOURCE_DIR
set -euo pipefail

lowbit=${1:?usage: litert_conformance.sh LOWBIT SOURCE_DIR}
src=${2:?usage: litert_conformance.sh LOWBIT SOURCE_DIR}
# shellcheck source=tests/cli_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cli_lib.sh"

data=$src/tests/data/litert
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# npy_parse FILE: sets npy_descr (without byte-order mark), npy_shape ("6,3,8"), npy_data
# (byte offset of the data); returns 1 with a message in npy_error when FILE is no .npy.
npy_parse() {
  local f=$1 major hlen header
  npy_error=""
  if [[ $(head -c 6 "$f" | od -An -tx1 | tr -d ' \n') != 934e554d5059 ]]; then
    npy_error="$f: not a .npy file (no \\x93NUMPY magic)"; return 1
  fi
  major=$(od -An -tu1 -j6 -N1 "$f" | tr -d ' ')
  case $major in
    1) hlen=$(od -An -tu2 -j8 -N2 --endian=little "$f" | tr -d ' '); npy_data=$((10 + hlen)) ;;
    2|3) hlen=$(od -An -tu4 -j8 -N4 --endian=little "$f" | tr -d ' '); npy_data=$((12 + hlen)) ;;
    *) npy_error="$f: unsupported .npy version $major"; return 1 ;;
  esac
  header=$(head -c "$npy_data" "$f" | tail -c "$hlen")
  npy_descr=$(sed -n "s/.*'descr': *'[|<=]\{0,1\}\([a-z][0-9]*\)'.*/\1/p" <<<"$header")
  npy_shape=$(sed -n "s/.*'shape': *(\([0-9, ]*\)).*/\1/p" <<<"$header" | tr -d ' ' | sed 's/,$//')
  if [[ -z $npy_descr || -z $npy_shape ]]; then
    npy_error="$f: cannot read 'descr' and 'shape' from the header: $header"; return 1
  fi
  if [[ $header != *"'fortran_order': False"* ]]; then
    npy_error="$f: not in C order: $header"; return 1
  fi
}

# same_int8_npy WHAT EXPECTED ACTUAL: passes when both hold the same int8 array.
same_int8_npy() {
  local what=$1 want=$2 got=$3 want_shape want_data first idx t b j dims
  if ! npy_parse "$want"; then fail "$what: $npy_error"; return; fi
  if [[ $npy_descr != i1 ]]; then fail "$what: expected file is not int8 ($npy_descr)"; return; fi
  want_shape=$npy_shape want_data=$npy_data
  if ! npy_parse "$got"; then fail "$what: $npy_error"; return; fi
  if [[ $npy_descr != i1 ]]; then fail "$what: lowbit wrote dtype $npy_descr, expected int8"; return; fi
  if [[ $npy_shape != "$want_shape" ]]; then
    fail "$what: lowbit wrote shape ($npy_shape), LiteRT ($want_shape)"; return
  fi
  tail -c +$((want_data + 1)) "$want" >"$tmp/want.bin"
  tail -c +$((npy_data + 1)) "$got" >"$tmp/got.bin"
  if [[ $(wc -c <"$tmp/want.bin") -ne $(wc -c <"$tmp/got.bin") ]]; then
    fail "$what: data sizes differ ($(wc -c <"$tmp/got.bin") bytes, LiteRT $(wc -c <"$tmp/want.bin"))"
    return
  fi
  if first=$(cmp "$tmp/want.bin" "$tmp/got.bin" 2>&1); then
    pass "$what: $(wc -c <"$tmp/want.bin") int8 values equal"
    return
  fi
  # "cmp: ... differ: byte N, line L" (N counts from 1).
  idx=$(sed -n 's/.*differ: \(char\|byte\) \([0-9]*\).*/\2/p' <<<"$first")
  if [[ -z $idx ]]; then fail "$what: cmp failed: $first"; return; fi
  idx=$((idx - 1))
  local got_value want_value count where
  got_value=$(od -An -td1 -j"$idx" -N1 "$tmp/got.bin" | tr -d ' ')
  want_value=$(od -An -td1 -j"$idx" -N1 "$tmp/want.bin" | tr -d ' ')
  count=$({ cmp -l "$tmp/want.bin" "$tmp/got.bin" || true; } | wc -l)
  where="element $idx"
  IFS=, read -r -a dims <<<"$want_shape"
  if [[ ${#dims[@]} -eq 3 ]]; then
    t=$((idx / (dims[1] * dims[2]))) b=$((idx / dims[2] % dims[1])) j=$((idx % dims[2]))
    where="[t=$t, b=$b, j=$j]"
  fi
  fail "$what: first difference at $where: lowbit $got_value, LiteRT $want_value;" \
       "$count of $(wc -c <"$tmp/want.bin") values differ"
}

if ! run_help=$("$lowbit" run --help 2>&1); then
  echo "SKIP: this lowbit has no 'run' command"
  exit 77
fi
# Configurations: "label|global options|run options".
# (--max-isa caps the kernels: on a CPU without AVX2 the avx2 run uses what there is.)
configs=("scalar, 1 thread|--max-isa scalar --threads 1|" "avx2, 1 thread|--max-isa avx2 --threads 1|"
         "native, 1 thread|--max-isa native --threads 1|" "native, 2 threads|--max-isa native --threads 2|")
if [[ $run_help == *--reference* ]]; then
  configs+=("reference step|--threads 1|--reference")
fi

# The comparison itself: equal files pass, one changed value is found and located.
shopt -s nullglob
models=("$data"/*.lbm)
if [[ ${#models[@]} -eq 0 ]]; then
  fail "no cases in $data"
  finish
fi
probe=${models[0]%.lbm}.out.npy
cp "$probe" "$tmp/changed.npy"
last=$(($(wc -c <"$probe") - 1))
old=$(od -An -tu1 -j"$last" -N1 "$probe" | tr -d ' ')
printf "$(printf '\\%03o' $(((old + 1) % 256)))" | dd of="$tmp/changed.npy" bs=1 seek="$last" conv=notrunc 2>/dev/null
saved_failures=$failures
same_int8_npy "self-check" "$probe" "$tmp/changed.npy" 2>"$tmp/selfcheck.err"
if [[ $failures -eq $((saved_failures + 1)) ]] && grep -q "first difference" "$tmp/selfcheck.err"; then
  failures=$saved_failures
  pass "comparison finds a changed value: $(cat "$tmp/selfcheck.err")"
else
  failures=$((saved_failures + 1))
  echo "FAIL: comparison missed a changed value in $probe" >&2
fi

listed=$(grep -c '"model":' "$data/manifest.json" || true)
if [[ $listed -ne ${#models[@]} ]]; then
  fail "manifest.json lists $listed cases, $data has ${#models[@]} models"
fi

for model in "${models[@]}"; do
  name=$(basename "$model" .lbm)
  for config in "${configs[@]}"; do
    IFS='|' read -r label global_opts run_opts <<<"$config"
    out=$tmp/$name.out.npy
    rm -f "$out"
    # shellcheck disable=SC2086  # the option lists are split on purpose
    if ! err=$("$lowbit" $global_opts run "$model" --input "$data/$name.in.npy" --output "$out" \
                 $run_opts 2>&1 >/dev/null); then
      fail "$name ($label): lowbit run failed: $err"
      continue
    fi
    same_int8_npy "$name ($label)" "$data/$name.out.npy" "$out"
  done
done
finish
