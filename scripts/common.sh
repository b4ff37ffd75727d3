# Shared by the scripts in this folder; source it, do not run it.

# The repository root, whatever the caller's working directory.
LOWBIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export LOWBIT_ROOT

# lowbit_build_dir SANITIZE DEBUG: the build directory for a configuration.
lowbit_build_dir() {
  case "$1$2" in
    00) echo "$LOWBIT_ROOT/build" ;;
    01) echo "$LOWBIT_ROOT/build-debug" ;;
    10) echo "$LOWBIT_ROOT/build-asan" ;;
    11) echo "$LOWBIT_ROOT/build-asan-debug" ;;
  esac
}

# Sanitizer settings for running sanitized programs (the build runs the test binary too, to
# list its tests): any leak, address error or undefined behaviour stops the program.
# No leak suppressions are needed: oneDNN's JIT and the OpenMP runtime report no leaks.
lowbit_sanitizer_env() {
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
}

# lowbit_usage SCRIPT: prints the comment block at the top of SCRIPT (its usage).
lowbit_usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$1"
}
