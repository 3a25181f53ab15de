#!/usr/bin/env bash
# fz-prep on bad input: every failure is exit 1 with one line naming the file, usage errors
# exit 2 with one usage line, a full disk is reported, a closed pipe is a quiet success.
. "$(dirname "$0")/lib.sh"
[ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
M=$DATA/mnist-small.tgz
W=$DATA/wdbc-small.csv

# usage errors
for args in "" "--bogus $W" "-s" "-s x $W" "--split 1.5:first $W" "--split 0.5 $W" \
            "--take -1 $W" "--norm zscore $W" "--kind foo $W" "mnist:valid $M" "a b c" \
            "--keep 1 --drop 2 $W"; do
    # shellcheck disable=SC2086
    expect_exit 2 fz-prep $args
    expect_err 'usage: fz-prep '
done

# missing files
expect_exit 1 fz-prep "$T/nope.csv"
expect_err "^fz-prep: $T/nope.csv: No such file or directory$"
expect_exit 1 fz-prep mnist:train "$T/nope.tgz"
expect_err "^fz-prep: $T/nope.tgz: "
expect_exit 1 fz-prep mnist:train "$W"
expect_err "^fz-prep: .*wdbc-small.csv: not an IDX file"

# small IDX files: 3 images of 4x4 and their labels
"$PY" - "$T" <<'PY' || fail "cannot write IDX files"
import sys, struct
d = sys.argv[1]
open(d + "/img.idx", "wb").write(struct.pack(">4B3I", 0, 0, 8, 3, 3, 4, 4) + bytes(range(48)))
open(d + "/lab.idx", "wb").write(struct.pack(">4BI", 0, 0, 8, 1, 3) + bytes([1, 2, 3]))
open(d + "/magic.idx", "wb").write(struct.pack(">4B3I", 0, 0, 9, 3, 3, 4, 4) + bytes(48))
open(d + "/big.idx", "wb").write(struct.pack(">4B3I", 0, 0, 8, 3, 0x7fffffff, 0x7fffffff, 0x7fffffff))
PY
fz-prep --idx-images "$T/img.idx" --idx-labels "$T/lab.idx" >/dev/null || fail "valid small IDX refused"
size=$(stat -c %s "$T/img.idx")
for ((cut = 0; cut < size; cut++)); do
    head -c $cut "$T/img.idx" >"$T/cut.idx"
    expect_exit 1 fz-prep --idx-images "$T/cut.idx" --idx-labels "$T/lab.idx"
    expect_err "^fz-prep: $T/cut.idx: .*(truncated|empty file)"
done
for ((cut = 0; cut < 11; cut++)); do
    head -c $cut "$T/lab.idx" >"$T/cut.idx"
    expect_exit 1 fz-prep --idx-images "$T/img.idx" --idx-labels "$T/cut.idx"
    expect_err "^fz-prep: $T/cut.idx: "
done
expect_exit 1 fz-prep --idx-images "$T/magic.idx"
expect_err "^fz-prep: $T/magic.idx: IDX type code 0x09"
expect_exit 1 fz-prep --idx-images "$T/big.idx"
expect_err "^fz-prep: $T/big.idx: IDX sizes overflow"
expect_exit 1 fz-prep --idx-images "$W" --kind idx
expect_err "not an IDX file"
"$PY" -c 'import struct,sys; open(sys.argv[1],"wb").write(struct.pack(">4BI",0,0,8,1,2)+bytes([1,2]))' "$T/lab2.idx"
expect_exit 1 fz-prep --idx-images "$T/img.idx" --idx-labels "$T/lab2.idx"
expect_err "2 labels for 3 images"

# truncated .gz and tar.gz: cut at several points
gzip -c "$T/img.idx" >"$T/img.gz"
gsize=$(stat -c %s "$T/img.gz")
for cut in 5 12 20 $((gsize / 2)) $((gsize - 8)) $((gsize - 1)); do
    head -c $cut "$T/img.gz" >"$T/cut.gz"
    expect_exit 1 fz-prep --idx-images "$T/cut.gz"
    expect_err "^fz-prep: $T/cut.gz: "
done
msize=$(stat -c %s "$M")
for cut in 100 1000 $((msize / 3)) $((msize / 2)) $((msize - 30)); do
    head -c $cut "$M" >"$T/cut.tgz"
    expect_exit 1 fz-prep mnist:train "$T/cut.tgz"
    expect_err "^fz-prep: $T/cut.tgz: "
done

# CSV with a bad cell, a missing cell, a short row, a missing label column
sed '12s/^M,17\.99/M,abc/; 12s/^\([MB]\),[^,]*/\1,abc/' "$W" >"$T/bad.csv"
expect_exit 1 fz-prep --label-col diagnosis "$T/bad.csv"
expect_err "^fz-prep: $T/bad.csv:12: column 'radius_mean': 'abc' is not a number$"
sed '5s/,[^,]*$/,/' "$W" >"$T/miss.csv"
expect_exit 1 fz-prep --label-col diagnosis "$T/miss.csv"
expect_err "^fz-prep: $T/miss.csv:5: column 'fractal_dimension_worst': missing value$"
sed '7s/,[^,]*$//' "$W" >"$T/short.csv"
expect_exit 1 fz-prep --label-col diagnosis "$T/short.csv"
expect_err "^fz-prep: $T/short.csv:7: expected 31 columns, got 30$"
expect_exit 1 fz-prep --label-col label "$W"
expect_err "no column named 'label'"
gzip -c "$T/bad.csv" >"$T/bad.csv.gz"
expect_exit 1 fz-prep --label-col diagnosis "$T/bad.csv.gz"
expect_err "bad.csv.gz:12: column 'radius_mean'"

# images: truncated or corrupted PNG/PGM, different sizes; in a directory and in an archive
mk() { rm -rf "$T/im" && cp -r "$DATA/images" "$T/im"; }
mk; head -c 100 "$DATA/images/7/t000.png" >"$T/im/7/t000.png"
expect_exit 1 fz-prep "$T/im"
expect_err "^fz-prep: $T/im/7/t000.png: bad PNG"
mk; printf 'X' | dd of="$T/im/4/t004.png" bs=1 seek=40 conv=notrunc 2>/dev/null
expect_exit 1 fz-prep "$T/im"
expect_err "^fz-prep: $T/im/4/t004.png: bad PNG"
mk; head -c 500 "$DATA/images/1/t005.pgm" >"$T/im/1/t005.pgm"
expect_exit 1 fz-prep "$T/im"
expect_err "^fz-prep: $T/im/1/t005.pgm: truncated P5 data \(expected 784 bytes, got"
mk; printf 'P2 2 2 255\n1 2 3 4\n' >"$T/im/9/small.pgm"
expect_exit 1 fz-prep "$T/im"
expect_err "^fz-prep: $T/im/9/small.pgm: image is 1x2x2 \(CxHxW\), expected 1x28x28"
mk; echo 'not an image' >"$T/im/0/x.png"
expect_exit 1 fz-prep "$T/im"
expect_err "^fz-prep: $T/im/0/x.png: not a PNG"
mk; head -c 100 "$DATA/images/7/t000.png" >"$T/im/7/t000.png"
tar -czf "$T/im.tgz" -C "$T" im
expect_exit 1 fz-prep --kind images "$T/im.tgz"
expect_err "^fz-prep: $T/im.tgz: im/7/t000.png: bad PNG"
mkdir -p "$T/empty"
expect_exit 1 fz-prep "$T/empty"
expect_err "no images"
expect_exit 1 fz-prep --gray "$T/empty"
mk; cp "$DATA/images-rgb/red/c0.png" "$T/im/0/"
expect_exit 1 fz-prep "$T/im"
expect_err "^fz-prep: $T/im/0/t003.pgm: image is 1x28x28 \(CxHxW\), expected 3x28x28 like $T/im/0/c0.png$"
fz-prep --gray "$T/im" >/dev/null || fail "--gray should make RGB and gray images agree"

# bad statistics file
echo '{"fz_norm":1,"mode":"unit"' >"$T/bad.json"
expect_exit 1 fz-prep --stats "$T/bad.json" mnist:test "$M"
expect_err "^fz-prep: $T/bad.json: "

# full disk; closed pipe
expect_exit 1 fz-prep -o /dev/full mnist:train "$M"
expect_err "^fz-prep: /dev/full: No space left on device$"
fz-prep mnist:train "$M" >/dev/full 2>"$T/err"
[ $? -eq 1 ] || fail "> /dev/full: exit status"
grep -q "No space left on device" "$T/err" || fail "> /dev/full: $(cat "$T/err")"
fz-prep mnist:train "$M" 2>"$T/err" | head -c 10 >/dev/null
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "closed pipe: exit ${PIPESTATUS[0]}"
[ -s "$T/err" ] && fail "closed pipe: stderr $(cat "$T/err")"
# a failed run leaves no output file
expect_exit 1 fz-prep -o "$T/out.npy" "$T/im"
[ -e "$T/out.npy" ] && fail "output file left after a failure"
ls "$T"/out.npy.tmp.* >/dev/null 2>&1 && fail "temporary file left after a failure"
exit 0
