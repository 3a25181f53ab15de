#!/usr/bin/env bash
# A small archive cannot make fz allocate gigabytes (lib/archive_in.c, FZ_INPUT_FREE_BYTES
# and FZ_INPUT_MAX_RATIO in lib/input.h): a 10 KB sparse tar whose member has a 3 GiB
# hole, a tar header claiming 3 GB over a few bytes of data, and 71 KB of gzip or 82
# bytes of bzip2 that expand past 64 MiB all fail with one line and exit 1, with a peak
# RSS far below what they claim. Without the limit the sparse tar took 3 GB of RSS.
. "$(dirname "$0")/lib.sh"

# peak RSS in MB of a command, its exit status in $T/rc and stderr in $T/err
TIME=/usr/bin/time
[ -x $TIME ] || skip "no GNU time (/usr/bin/time) to measure the peak RSS"
peak() {
    $TIME -f '%M' -o "$T/rss" "$@" >/dev/null 2>"$T/err"
    echo $? >"$T/rc"
    grep -v '^Command exited' "$T/err" >"$T/err2"; mv "$T/err2" "$T/err"
    echo $(($(tail -n 1 "$T/rss") / 1024))
}
# the limit: a member gets 64 MiB whatever the archive size; a few hundred MB of ASan
# shadow and allocator slack are allowed for
MAXMB=400
checked=0

# --- sparse tar entries: holes read as zeros, with no byte behind them ---
if tar --version 2>/dev/null | grep -q GNU && truncate --version >/dev/null 2>&1; then
    mkdir "$T/sp"
    printf 'a,b\n1,2\n' >"$T/sp/big.csv"
    truncate -s 3G "$T/sp/big.csv" # a hole: no disk space is used
    printf '3,4\n' >>"$T/sp/big.csv"
    for fmt in gnu pax; do
        tar -C "$T/sp" -H $fmt --sparse -cf "$T/sparse-$fmt.tar" big.csv || fail "tar -H $fmt --sparse"
        size=$(stat -c %s "$T/sparse-$fmt.tar")
        [ "$size" -lt 100000 ] || fail "the sparse $fmt tar is not small: $size bytes"
        mb=$(peak fz-prep --kind csv "$T/sparse-$fmt.tar")
        [ "$(cat "$T/rc")" = 1 ] || fail "sparse $fmt tar: exit $(cat "$T/rc"), expected 1"
        expect_err "big\.csv: expands to over 67108864 bytes from $size bytes of input"
        [ "$mb" -lt $MAXMB ] || fail "sparse $fmt tar of $size bytes: peak RSS $mb MB"
        echo "sparse $fmt tar of $size bytes (3 GiB member): exit 1, peak RSS $mb MB"
        checked=$((checked + 1))
    done
    rm -f "$T/sp/big.csv"
else
    echo "no GNU tar or truncate: sparse entries not tested"
fi

# --- a tar header claiming 3 GB over 20 bytes of data ---
if [ -x "$PY" ]; then
    "$PY" - "$T/claim.tar" <<'PY' || fail "cannot write the tar"
import sys, tarfile
ti = tarfile.TarInfo("claim.csv")
ti.size = 3 * 10**9
with open(sys.argv[1], "wb") as f:
    f.write(ti.tobuf(format=tarfile.GNU_FORMAT))
    f.write(b"a,b\n1,2\n".ljust(512, b"0"))
PY
    mb=$(peak fz-prep --kind csv "$T/claim.tar")
    [ "$(cat "$T/rc")" = 1 ] || fail "tar claiming 3 GB: exit $(cat "$T/rc"), expected 1"
    expect_err "claim\.csv: .*(truncated|Truncated)"
    [ "$mb" -lt $MAXMB ] || fail "tar claiming 3 GB: peak RSS $mb MB"
    echo "tar header claiming 3 GB over 512 bytes: exit 1, peak RSS $mb MB"
    checked=$((checked + 1))
fi

# --- compressed data that expands more than 100 times, from a file and from a pipe ---
if command -v gzip >/dev/null && [ -x "$PY" ]; then
    # 70 MB of "0,0" lines: gzip -9 makes about 70 KB of them
    "$PY" -c 'import sys; sys.stdout.write("a,b\n" + "0,0\n" * (70 << 18))' |
        gzip -9 >"$T/bomb.csv.gz" || fail "gzip"
    size=$(stat -c %s "$T/bomb.csv.gz")
    mb=$(peak fz-prep --kind csv "$T/bomb.csv.gz")
    [ "$(cat "$T/rc")" = 1 ] || fail "gzip bomb: exit $(cat "$T/rc"), expected 1"
    expect_err "expands to over 67108864 bytes from $size bytes of input"
    [ "$mb" -lt $MAXMB ] || fail "gzip bomb: peak RSS $mb MB"
    mb=$(peak bash -c 'fz-prep --kind csv - <"$1"' - "$T/bomb.csv.gz")
    [ "$(cat "$T/rc")" = 1 ] || fail "gzip bomb on stdin: exit $(cat "$T/rc"), expected 1"
    expect_err "^fz-prep: <stdin>: .*expands to over 67108864 bytes from [0-9]+ bytes of input"
    echo "gzip of $size bytes expanding to 70 MB: exit 1 (file and pipe)"
    checked=$((checked + 1))
fi
if command -v bzip2 >/dev/null; then
    # bzip2 does better still: 70 MB of one letter in under 100 bytes
    head -c 70000000 /dev/zero | tr '\0' a | bzip2 -9 >"$T/bomb.csv.bz2" || fail "bzip2"
    size=$(stat -c %s "$T/bomb.csv.bz2")
    mb=$(peak fz-prep --kind csv "$T/bomb.csv.bz2")
    [ "$(cat "$T/rc")" = 1 ] || fail "bzip2 bomb: exit $(cat "$T/rc"), expected 1"
    expect_err "expands to over 67108864 bytes from $size bytes of input"
    [ "$mb" -lt $MAXMB ] || fail "bzip2 bomb: peak RSS $mb MB"
    echo "bzip2 of $size bytes expanding to 70 MB: exit 1, peak RSS $mb MB"
    checked=$((checked + 1))
fi

[ $checked -gt 0 ] || skip "no tar, python3 or gzip to build the archives"
