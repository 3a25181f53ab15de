#!/usr/bin/env bash
# Runs every unit-test binary and every shell test; prints one line per test and a closing
# "N passed, N failed, N skipped" line. A shell test exits 0 (pass), 77 (skip, with its
# reason as its last line of output) or anything else (fail).
set -u
cd "$(dirname "$0")/.."
: "${FZ_BIN:?FZ_BIN must point at the built tools}" "${FZ_TESTS:?}"
export FZ_BIN FZ_TESTS PATH="$FZ_BIN:$PATH" FZ_ROOT="$PWD"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
pass=0 fail=0 skip=0
failed=()
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

run_one() { # name, command...
    local name=$1; shift
    local t0=$SECONDS out="$log/out"
    "$@" >"$out" 2>&1
    local rc=$?
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1)); printf 'PASS %-40s %3ds\n' "$name" $((SECONDS - t0))
    elif [ $rc -eq 77 ]; then
        skip=$((skip + 1)); printf 'SKIP %-40s %s\n' "$name" "$(tail -n 1 "$out")"
    else
        fail=$((fail + 1)); failed+=("$name")
        printf 'FAIL %-40s (exit %d)\n' "$name" $rc
        sed 's/^/    /' "$out" | tail -n 40
    fi
}

for t in "$FZ_TESTS"/test_*; do
    [ -x "$t" ] || continue
    run_one "unit/$(basename "$t")" "$t"
done
for t in tests/sh/test-*.sh; do
    [ -f "$t" ] || continue
    run_one "sh/$(basename "$t" .sh)" bash "$t"
done

[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
