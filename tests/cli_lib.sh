# Shared by the end-to-end scripts of the `lowbit` program (cli_smoke.sh, eval_cli.sh,
# train_cli.sh): counting failures, and the one-line error contract of the CLI.
# Source it; then end the script with `finish`.

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# expect_error WHAT NEEDLE COMMAND...: COMMAND must exit non-zero and print exactly one stderr
# line, "lowbit: error: ...", containing NEEDLE.
expect_error() {
  local what=$1 needle=$2; shift 2
  local err status=0
  err=$("$@" 2>&1 >/dev/null) || status=$?
  if [[ $status -eq 0 ]]; then fail "$what: exit status 0"; return; fi
  if [[ $(printf '%s\n' "$err" | wc -l) -ne 1 ]]; then fail "$what: expected one stderr line, got: $err"; return; fi
  if [[ $err != "lowbit: error: "* ]]; then fail "$what: stderr is not 'lowbit: error: ...': $err"; return; fi
  if [[ $err != *"$needle"* ]]; then fail "$what: stderr lacks '$needle': $err"; return; fi
  pass "$what (status $status: $err)"
}

finish() {
  if [[ $failures -ne 0 ]]; then
    echo "$failures check(s) failed" >&2
    exit 1
  fi
  echo "all checks passed"
}
