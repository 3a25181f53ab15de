#!/usr/bin/env bash
# fz-info: options, usage errors, bad streams, closed pipes.
. "$(dirname "$0")/lib.sh"
"$FZ_TESTS/test_stream" write "$T/s.npy" 2>/dev/null || fail "could not write the sample stream"

expect_exit 0 fz-info -h
grep -q '^usage: fz-info' "$T/out" || fail "-h does not start with usage"
expect_exit 2 fz-info -z
expect_err '^usage: fz-info'
expect_exit 2 fz-info -n abc
expect_err "fz-info: -n: 'abc' is not an integer"

expect_exit 0 fz-info -n 1 "$T/s.npy"
grep -q '^rows: *23$' "$T/out" || fail "rows"
[ "$(grep -c '^  id=' "$T/out")" = 1 ] || fail "-n 1 printed $(grep -c '^  id=' "$T/out") rows"
grep -qE '^  x +f4 +\(1, 2, 3\) +0 +16 ' "$T/out" || fail "x stats: $(grep '^  x ' "$T/out")"
expect_exit 0 fz-info -H - <"$T/s.npy"
grep -q '^rows:' "$T/out" && fail "-H must not scan rows"

# Bad streams: one line naming the file, exit 1.
expect_exit 1 fz-info "$T/missing.npy"
expect_err "missing.npy: No such file"
echo "not a stream at all" >"$T/text"
expect_exit 1 fz-info "$T/text"
expect_err "text: bad magic at byte 0"
head -c 500 "$T/s.npy" >"$T/cut.npy"
expect_exit 1 fz-info -n 0 "$T/cut.npy"
grep -q 'cut.npy: truncated chunk at byte [0-9]* (expected [0-9]* bytes of rows, got [0-9]*)' "$T/err" ||
    fail "truncation message: $(cat "$T/err")"
: >"$T/empty"
expect_exit 1 fz-info "$T/empty"
expect_err "empty stream"

# A closed downstream pipe is not an error.
for i in 1 2 3 4 5 6; do cat "$T/s.npy"; done >"$T/big.npy"
fz-info -n 100000 "$T/big.npy" 2>"$T/err" | head -n 1 >/dev/null
[ ! -s "$T/err" ] || fail "closed pipe printed: $(cat "$T/err")"
exit 0
