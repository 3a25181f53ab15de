# Sourced by the shell tests: helpers and a scratch directory removed on exit.
set -u
set -o pipefail
: "${FZ_ROOT:?run through tests/run.sh or make check}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
DATA="$FZ_ROOT/tests/data"
PY=/usr/bin/python3

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "$*"; exit 77; }
# expect_exit CODE cmd... : run, require the exit code, keep stderr in $T/err
expect_exit() {
    local want=$1; shift
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    [ "$got" -eq "$want" ] || fail "expected exit $want, got $got from: $* (stderr: $(head -c 300 "$T/err"))"
}
# expect_err PATTERN: stderr of the last expect_exit is one line matching PATTERN
expect_err() {
    grep -qE -- "$1" "$T/err" || fail "stderr '$(head -c 300 "$T/err")' does not match '$1'"
    [ "$(wc -l <"$T/err")" -le 1 ] || fail "stderr has more than one line: $(head -c 300 "$T/err")"
}
# shim_run ERRFILE cmd... : run cmd under the fault shim ("${SHIM[@]}", set by the test),
# stderr to ERRFILE. Under ASan the shim is preloaded after ASan's runtime, and ASan's check
# of that order still misfires now and then under load (exit 1, 'ASan runtime does not come
# first', before main: nothing is written): such a run says nothing of fz, and is made
# again, up to 5 times in all.
shim_run() {
    local err=$1; shift
    "${SHIM[@]}" "$@" 2>"$err"
    local rc=$? tries=1
    while [ $tries -lt 5 ] && grep -q 'ASan runtime does not come first' "$err"; do
        "${SHIM[@]}" "$@" 2>"$err"
        rc=$?
        tries=$((tries + 1))
    done
    return $rc
}
