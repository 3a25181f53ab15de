#!/usr/bin/env bash
# fz-plot on streams made by the real tools and by NumPy, and on TSV tables: picture sizes,
# pictures that are not blank and hold the expected colours, and the errors (bad options,
# missing fields, truncated streams, bad ellipse files, unwritable outputs).
. "$(dirname "$0")/lib.sh"
[ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"

# pngcheck.py FILE W H [COLOUR...]: the IHDR says W x H, 8-bit RGB; the picture is not blank
# (a one-colour picture filters to zero bytes after its first pixel); each COLOUR (rrggbb)
# is present, in the pixels decoded here with zlib and the PNG filters (no imaging library;
# slow in Python, so only when colours are asked). Prints the number of distinct colours.
cat >"$T/pngcheck.py" <<'PY'
import struct, sys, zlib
path, W, H = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = open(path, "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", d[16:29])
assert d[12:16] == b"IHDR", "no IHDR"
assert (w, h) == (W, H), "size %dx%d, expected %dx%d" % (w, h, W, H)
assert depth == 8 and ctype == 2 and interlace == 0, (depth, ctype, interlace)
at, idat = 8, b""
while at < len(d):
    n, = struct.unpack(">I", d[at:at + 4]); kind = d[at + 4:at + 8]
    if kind == b"IDAT": idat += d[at + 8:at + 8 + n]
    at += 12 + n
raw, stride, bpp = zlib.decompress(idat), w * 3, 3
assert len(raw) == h * (stride + 1), "IDAT holds %d bytes, expected %d" % (len(raw), h * (stride + 1))
assert len(raw) - raw.count(0) > 4 + h, "blank picture"
if len(sys.argv) == 4:
    print(0); sys.exit(0)
prev, px = bytearray(stride), bytearray()
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0; b = prev[i]; c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    px += line; prev = line
import os
if os.environ.get("DUMP"):  # the decoded RGB rows, for comparing pictures
    open(os.environ["DUMP"], "wb").write(bytes(px))
colours = {}
for i in range(0, len(px), 3):
    k = bytes(px[i:i + 3]); colours[k] = colours.get(k, 0) + 1
assert len(colours) > 1, "blank picture"
for want in sys.argv[4:]:
    k = bytes.fromhex(want)
    assert colours.get(k, 0) >= 20, "colour %s: %d pixels" % (want, colours.get(k, 0))
print(len(colours))
PY
png() { "$PY" "$T/pngcheck.py" "$@" >"$T/ncol" || fail "picture check failed: $*"; }

# --- grids and strips from fz-prep ---
fz-prep mnist:test "$DATA/mnist-small.tgz" -o "$T/t.npy" || fail "fz-prep failed"
fz-plot grid "$T/t.npy" "$T/g.png" || fail "grid failed"
# 10 columns of 28*2 px tiles with 2 px gaps and a 6 px margin: 10 + 10*58 = 590 square
png "$T/g.png" 590 590
fz-plot grid -n 12 --cols 6 "$T/t.npy" "$T/g12.png" || fail "grid -n 12 failed"
png "$T/g12.png" 358 126 000000 ffffff
# through a pipe, 15 columns, 30 tiles, captions and a title
fz-prep mnist:test "$DATA/mnist-small.tgz" |
    fz-plot grid -f x --cols 15 -n 30 --scale 1 --caption label -t "MNIST test" - "$T/g15.png" ||
    fail "grid from a pipe failed"
# 15 * 30 + 10 = 460 wide; 6 + 28 (title) + 2 rows of (28 + 2 + 20) + 4 = 138 tall
png "$T/g15.png" 460 138 222222
# to standard output
fz-plot grid -n 3 "$T/t.npy" - >"$T/stdout.png" || fail "grid to stdout failed"
png "$T/stdout.png" 184 68

# RGB images (3, H, W) and images stored flat (D,) with D a square, from NumPy
"$PY" - "$T" <<'PY' || fail "numpy fixture failed"
import json, sys, numpy as np
T = sys.argv[1]
rng = np.random.default_rng(0)
rgb = np.zeros(6, [("id", "<u8"), ("x", "<f4", (3, 8, 12))])
rgb["x"][:, 0] = 1.0            # pure red tiles
flat = np.zeros(4, [("xhat", "<f8", (784,))]); flat["xhat"] = 0.5
n, K = 600, 10
pts = np.zeros(n, [("id", "<u8"), ("label", "<i4"), ("mu", "<f4", (2,))])
pts["label"] = np.arange(n) % K; pts["label"][:30] = -1
a = 2 * np.pi * (pts["label"] % K) / K
pts["mu"][:, 0] = 4 * np.cos(a) + rng.normal(0, .5, n); pts["mu"][:, 1] = 4 * np.sin(a) + rng.normal(0, .5, n)
names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
def save(name, rows, meta=None):
    with open(f"{T}/{name}", "wb") as f:
        if meta is not None: np.save(f, np.frombuffer(json.dumps(meta).encode(), np.uint8))
        np.save(f, rows)
save("rgb.npy", rgb); save("flat.npy", flat); save("pts.npy", pts, {"classes": names})
save("pts-nometa.npy", pts)
PY
fz-plot grid --cols 3 --scale 3 "$T/rgb.npy" "$T/rgb.png" || fail "rgb grid failed"
png "$T/rgb.png" 124 62 ff0000
fz-plot grid -f xhat --range 0,2 "$T/flat.npy" "$T/flat.png" || fail "flat grid failed"
png "$T/flat.png" 242 68 404040
fz-plot strips -f x "$T/t.npy" -f x "$T/t.npy" -f xhat "$T/flat.npy" -L noisy,clean,denoised \
    -n 4 -t Strips "$T/s.png" || fail "strips failed"
png "$T/s.png" 306 242 000000 222222

# --- scatter: classes with names from the metadata, ellipses, paths ---
printf '# cx cy m00 m01 m10 m11 r2 name\n4 0 1 0.2 0.2 1 1 zero\n0 0 0.5 0 0 0.25 1\n' >"$T/ell.tsv"
printf 'x y\n-4 -4\n0 0\n4 4\n\n-4 4\n4 -4\n' >"$T/path.tsv"
fz-plot scatter -t "Latent means" --ellipses "$T/ell.tsv" --path "$T/path.tsv" "$T/pts.npy" \
    "$T/sc.png" || fail "scatter failed"
# tab10's ten colours for the ten classes, grey for unlabeled, black for the paths
png "$T/sc.png" 800 600 1f77b4 ff7f0e 2ca02c d62728 9467bd 8c564b e377c2 7f7f7f bcbd22 17becf \
    b0b0b0 000000
[ "$(cat "$T/ncol")" -gt 14 ] || fail "scatter has only $(cat "$T/ncol") colours"
printf '[{"center": [4, 0], "M": [[1, 0.2], [0.2, 1]], "r2": 1, "name": "three"}]' >"$T/ell.json"
fz-plot scatter -c none --size 640x480 --ellipses "$T/ell.json" --xlim -8,8 --ylim -8,8 \
    "$T/pts-nometa.npy" "$T/sc2.png" || fail "scatter -c none failed"
png "$T/sc2.png" 640 480
fz-plot scatter --size 400x300 "$T/pts-nometa.npy" "$T/sc3.png" || fail "scatter without class names failed"
DUMP="$T/sc3.rgb" png "$T/sc3.png" 400 300 17becf
# A domain far larger than the points (a broad attribute term) is cut at the frame: the axes,
# and so the tick labels below and left of the frame, stay those of the points alone.
printf '0 0 1e-4 0 0 1 1 broad\n' >"$T/big.tsv"
fz-plot scatter --size 400x300 --ellipses "$T/big.tsv" "$T/pts-nometa.npy" "$T/sc4.png" ||
    fail "scatter with a broad ellipse failed"
DUMP="$T/sc4.rgb" png "$T/sc4.png" 400 300 17becf
"$PY" - "$T/sc3.rgb" "$T/sc4.rgb" <<'PY' || fail "a broad ellipse changed the axes"
import sys
a, b = (open(p, "rb").read() for p in sys.argv[1:3])
W, H = 400, 300
row = lambda d, y: d[y * W * 3:(y + 1) * W * 3]
assert all(row(a, y) == row(b, y) for y in range(H - 40, H)), "x tick labels differ"
assert all(row(a, y)[:50 * 3] == row(b, y)[:50 * 3] for y in range(H)), "y tick labels differ"
assert a != b, "the ellipse is not drawn"
PY

# --- lines from TSV ---
"$PY" - "$T" <<'PY' || fail "TSV fixture failed"
import math, sys
T = sys.argv[1]
with open(f"{T}/log.tsv", "w") as f:
    f.write("epoch\tloss\trecon\tkl\tval_loss\tval_recon\tval_kl\tlr\n")
    for e in range(1, 41):
        l = 200 * math.exp(-e / 8) + 30
        f.write(f"{e}\t{l}\t{l*.8}\t{l*.2}\t{'' if e % 9 == 0 else l*1.1}\t\t\t0.001\n")
with open(f"{T}/roc.tsv", "w") as f:
    f.write("fpr\ttpr\tthreshold\n0\t0\tinf\n")
    for i in range(1, 101): f.write(f"{i/100}\t{(i/100)**0.25}\t{1-i/100}\n")
PY
fz-plot lines "$T/log.tsv" -x epoch -y loss,val_loss -t "Training" "$T/l.png" || fail "lines failed"
png "$T/l.png" 800 600
fz-plot lines --logy --size 400x300 "$T/log.tsv" -x epoch -y loss,kl "$T/l2.png" || fail "--logy failed"
png "$T/l2.png" 400 300 1f77b4 ff7f0e
fz-plot lines --diag -x fpr -y tpr --size 400x300 "$T/roc.tsv" "$T/roc.tsv" -L a,b "$T/roc.png" ||
    fail "roc failed"
png "$T/roc.png" 400 300 1f77b4 ff7f0e 999999

# --- the legend hides no line when a free place exists, else goes outside the frame ---
# Long segments whose points all lie outside the shown range: a line along the top and one
# along the right. Only the bottom left is free (counting points would call every corner
# free and take the top right, which both lines cross).
printf 'x\ty\n-0.5\t0.97\n1.5\t0.97\n' >"$T/h.tsv"
printf 'x\ty\n0.97\t-0.5\n0.97\t1.5\n' >"$T/v.tsv"
# a border and a cross (an empty cell breaks the line): no free place inside
printf 'x\ty\n0.02\t0.02\n0.98\t0.02\n0.98\t0.98\n0.02\t0.98\n0.02\t0.02\n' >"$T/box.tsv"
printf 'x\ty\n0.5\t0\n0.5\t1\n\t\n0\t0.5\n1\t0.5\n' >"$T/cross.tsv"
cat >"$T/legend.py" <<'PY'
# legend.py RGB W H bottom-left LINES.rgb...: the legend (its frame, aaaaaa) lies in the
# bottom left and covers no pixel of the lines, found in pictures of each line alone (one
# series draws no legend; the axes are fixed by --xlim and --ylim).
# legend.py RGB W H outside: the legend lies right of the frame (444444).
import sys
W, H, where = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def find(path, hexes):
    px, want = open(path, "rb").read(), {bytes.fromhex(h) for h in hexes}
    return [(i // 3 % W, i // 3 // W) for i in range(0, len(px), 3) if px[i:i + 3] in want]
frame = find(sys.argv[1], ["aaaaaa"])
assert frame, "no legend"
x0, x1 = min(p[0] for p in frame), max(p[0] for p in frame)
y0, y1 = min(p[1] for p in frame), max(p[1] for p in frame)
if where == "bottom-left":
    lines = [p for f in sys.argv[5:] for p in find(f, ["1f77b4"])]
    assert lines, "no line pixels"
    under = [p for p in lines if x0 - 3 <= p[0] <= x1 + 3 and y0 - 3 <= p[1] <= y1 + 3]
    assert not under, "legend at x %d..%d, y %d..%d covers %d line pixels" % (x0, x1, y0, y1, len(under))
    assert x0 < W / 3 and y0 > H / 2, "legend at x %d..%d, y %d..%d: not bottom left" % (x0, x1, y0, y1)
else:
    right = max(p[0] for p in find(sys.argv[1], ["444444"]))
    assert x0 > right, "legend at x %d..%d, the frame ends at %d" % (x0, x1, right)
PY
lim="-x x -y y --xlim 0,1 --ylim 0,1 --size 400x300"
fz-plot lines $lim "$T/h.tsv" "$T/v.tsv" "$T/free.png" || fail "lines with a free corner failed"
DUMP="$T/free.rgb" png "$T/free.png" 400 300 1f77b4 ff7f0e aaaaaa
for f in h v; do
    fz-plot lines $lim "$T/$f.tsv" "$T/$f.png" || fail "lines $f.tsv failed"
    DUMP="$T/$f.rgb" png "$T/$f.png" 400 300 1f77b4
done
"$PY" "$T/legend.py" "$T/free.rgb" 400 300 bottom-left "$T/h.rgb" "$T/v.rgb" ||
    fail "legend placement with a free corner"
fz-plot lines $lim --size 640x300 "$T/box.tsv" "$T/cross.tsv" "$T/full.png" ||
    fail "lines without a free place failed"
DUMP="$T/full.rgb" png "$T/full.png" 640 300 1f77b4 ff7f0e aaaaaa
"$PY" "$T/legend.py" "$T/full.rgb" 640 300 outside || fail "legend placement without a free place"

# --- help and usage ---
expect_exit 0 fz-plot -h
grep -q '^usage: fz-plot grid|strips|scatter|lines' "$T/out" || fail "-h has no usage line"
grep -q 'default 10' "$T/out" || fail "-h shows no defaults"
expect_exit 2 fz-plot
expect_err '^fz-plot: no mode given; usage: '
expect_exit 2 fz-plot pie "$T/t.npy" "$T/x.png"
expect_err "unknown mode 'pie'"
expect_exit 2 fz-plot grid --cols 0 "$T/t.npy" "$T/x.png"
expect_err -- '--cols'
expect_exit 2 fz-plot grid --logy "$T/t.npy" "$T/x.png"
expect_err "'--logy' does not apply"
expect_exit 2 fz-plot lines -x a
expect_err 'no output picture|no input'
expect_exit 2 fz-plot scatter --size 10x10 "$T/pts.npy" "$T/x.png"
expect_err -- '--size width'
expect_exit 2 fz-plot strips -f x -f x "$T/t.npy" "$T/x.png"
expect_err 'one -f'
expect_exit 2 fz-plot grid --range 1,0 "$T/t.npy" "$T/x.png"
expect_err 'LO must be below HI'

# --- data errors: one line naming the file; no picture left behind ---
expect_exit 1 fz-plot grid -f nope "$T/t.npy" "$T/x.png"
expect_err "t.npy: no field 'nope' \(fields: id, label, x\)"
expect_exit 1 fz-plot grid -f label "$T/t.npy" "$T/x.png"
expect_err "t.npy: field 'label' of shape \(\) is not an image"
expect_exit 1 fz-plot scatter -f label "$T/pts.npy" "$T/x.png"
expect_err "pts.npy: field 'label'"
expect_exit 1 fz-plot scatter -c mu "$T/pts.npy" "$T/x.png"
expect_err "class field 'mu'"
expect_exit 1 fz-plot grid "$T/nonexistent.npy" "$T/x.png"
expect_err 'nonexistent.npy'
expect_exit 1 fz-plot lines -x epoch -y nope "$T/log.tsv" "$T/x.png"
expect_err "log.tsv: no column 'nope' \(columns: epoch, loss"
expect_exit 1 fz-plot lines --logy -x epoch -y val_recon "$T/log.tsv" "$T/x.png"
expect_err "log.tsv: no positive values"
printf '0 0 1 0 0 -1 1 bad\n' >"$T/bad.tsv"
expect_exit 1 fz-plot scatter --ellipses "$T/bad.tsv" "$T/pts.npy" "$T/x.png"
expect_err 'bad.tsv: line 1: .*not positive definite'
printf '0 0 1 0\n' >"$T/short.tsv"
expect_exit 1 fz-plot scatter --ellipses "$T/short.tsv" "$T/pts.npy" "$T/x.png"
expect_err 'short.tsv: line 1: expected 7 numbers'
printf '[{"center": [0], "M": [[1, 0], [0, 1]]}]' >"$T/bad.json"
expect_exit 1 fz-plot scatter --ellipses "$T/bad.json" "$T/pts.npy" "$T/x.png"
expect_err 'bad.json: ellipse 1: expected "center"'
printf '[{"center": ' >"$T/trunc.json"
expect_exit 1 fz-plot scatter --ellipses "$T/trunc.json" "$T/pts.npy" "$T/x.png"
expect_err 'trunc.json: '
printf 'x y\n1 2\n3 z\n' >"$T/badpath.tsv"
expect_exit 1 fz-plot scatter --path "$T/badpath.tsv" "$T/pts.npy" "$T/x.png"
expect_err 'badpath.tsv: line 3: expected two numbers'
printf 'a\tb\n1\t2\t3\n' >"$T/wide.tsv"
expect_exit 1 fz-plot lines "$T/wide.tsv" "$T/x.png"
expect_err 'wide.tsv: line 2: more cells'
: >"$T/empty.tsv"
expect_exit 1 fz-plot lines "$T/empty.tsv" "$T/x.png"
expect_err 'empty.tsv: empty file'
[ ! -e "$T/x.png" ] || fail "a failed run left x.png"
# outputs that cannot be written
expect_exit 1 fz-plot grid -n 2 "$T/t.npy" "$T/no/such/dir/x.png"
expect_err 'no/such/dir/x.png: No such file or directory'
if [ -w /dev/full ]; then
    expect_exit 1 fz-plot grid -n 2 "$T/t.npy" /dev/full
    expect_err '/dev/full: No space left on device'
fi
# a failed run keeps the old picture whole, with no temporary file next to it
cp "$T/g.png" "$T/keep.png"
expect_exit 1 fz-plot grid -f nope "$T/t.npy" "$T/keep.png"
cmp -s "$T/g.png" "$T/keep.png" || fail "a failed run changed keep.png"
ls "$T" | grep -q '\.tmp' && fail "temporary files left: $(ls "$T" | grep '\.tmp')"

# --- truncated and corrupted streams: an error, never a crash ---
head -c 2000 "$T/pts.npy" >"$T/small.npy"
size=$(stat -c %s "$T/pts.npy")
for cut in 0 1 5 9 10 60 100 127 128 129 200 300 400 1000 $((size - 1)); do
    head -c "$cut" "$T/pts.npy" >"$T/cut.npy"
    fz-plot scatter "$T/cut.npy" "$T/cut.png" 2>"$T/err"
    rc=$?
    [ "$rc" -eq 1 ] || fail "cut at $cut bytes: exit $rc"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "cut at $cut: stderr not one line: $(cat "$T/err")"
done
tsize=$(stat -c %s "$T/t.npy")
for cut in 50 130 400 3000 $((tsize - 1)); do
    head -c "$cut" "$T/t.npy" | fz-plot grid - "$T/cut.png" 2>"$T/err"
    rc=$?
    [ "$rc" -eq 1 ] || fail "grid: cut at $cut bytes: exit $rc"
done
# every cut of a small stream (metadata + 3 rows), and of a JSON ellipse file
"$PY" -c '
import json, sys, numpy as np
r = np.zeros(3, [("label", "<i4"), ("mu", "<f4", (2,))]); r["label"] = [0, 1, -1]; r["mu"] = [[0, 1], [2, 3], [4, 5]]
with open(sys.argv[1], "wb") as f:
    np.save(f, np.frombuffer(json.dumps({"classes": ["a", "b"]}).encode(), np.uint8)); np.save(f, r)' "$T/tiny.npy"
fz-plot scatter "$T/tiny.npy" "$T/tiny.png" || fail "tiny stream failed"
tiny=$(stat -c %s "$T/tiny.npy")
for ((cut = 0; cut < tiny; cut++)); do
    head -c "$cut" "$T/tiny.npy" >"$T/cut.npy"
    fz-plot scatter "$T/cut.npy" "$T/cut.png" 2>"$T/err"
    rc=$?
    [ "$rc" -eq 1 ] || fail "tiny stream cut at $cut of $tiny bytes: exit $rc ($(cat "$T/err"))"
done
jsize=$(stat -c %s "$T/ell.json")
for ((cut = 0; cut < jsize; cut++)); do
    head -c "$cut" "$T/ell.json" >"$T/cut.json"
    fz-plot scatter --ellipses "$T/cut.json" "$T/tiny.npy" "$T/cut.png" 2>"$T/err"
    rc=$?
    # a cut file may still be valid text of numbers (the empty file is no ellipse at all)
    [ "$rc" -eq 1 ] || [ "$rc" -eq 0 ] || fail "ellipse file cut at $cut: exit $rc"
done
# a byte flipped in the header
"$PY" -c 'import sys; d = bytearray(open(sys.argv[1], "rb").read()); d[20] ^= 0x55; open(sys.argv[2], "wb").write(d)' \
    "$T/pts.npy" "$T/bad.npy"
fz-plot scatter "$T/bad.npy" "$T/bad.png" 2>"$T/err"
rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 1 ] || fail "corrupted header: exit $rc"
exit 0
