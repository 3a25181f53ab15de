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

# -t: the rows as TSV, one column per value; the same values as the summary's statistics.
expect_exit 0 fz-info -t id,x "$T/s.npy"
[ "$(head -n 1 "$T/out")" = "$(printf 'id\tx[0]\tx[1]\tx[2]\tx[3]\tx[4]\tx[5]')" ] ||
    fail "-t header: $(head -n 1 "$T/out")"
[ "$(wc -l <"$T/out")" = 24 ] || fail "-t printed $(wc -l <"$T/out") lines, expected 24"
awk -F'\t' 'NR > 1 { for (i = 2; i <= 7; i++) { if (min == "" || $i < min) min = $i; if ($i > max) max = $i } }
             END { exit !(min == 0 && max == 16) }' "$T/out" || fail "-t values outside the summary's 0 to 16"
fz-info -t x - <"$T/s.npy" | cmp -s - <(cut -f2- "$T/out") || fail "-t x differs from the x columns of -t id,x"
expect_exit 1 fz-info -t id,nope "$T/s.npy"
expect_err "s.npy: no field 'nope'"
expect_exit 2 fz-info -t id "$T/s.npy" "$T/s.npy"
expect_err "-t takes one stream"

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
