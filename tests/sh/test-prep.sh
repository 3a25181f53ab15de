#!/usr/bin/env bash
# fz-prep on the committed fixtures: MNIST IDX from tar.gz/zip/raw/.gz, CSV, image trees
# (directory and archives); values compared with NumPy reading the sources directly.
. "$(dirname "$0")/lib.sh"
[ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"

# A stream reader (the one in fz-stream(5)) plus readers of the raw sources, for NumPy.
cat >"$T/fzr.py" <<'PY'
import gzip, json, sys, tarfile
import numpy as np
from numpy.lib import format as npf

def load(path):
    f = open(path, "rb") if path != "-" else sys.stdin.buffer
    f = f if hasattr(f, "peek") else __import__("io").BufferedReader(f)
    meta, parts = {}, []
    while f.peek(1):
        v = npf.read_magic(f)
        shape, _, dt = (npf.read_array_header_1_0 if v == (1, 0) else npf.read_array_header_2_0)(f)
        a = np.frombuffer(f.read(int(np.prod(shape)) * dt.itemsize), dt).reshape(shape)
        if a.dtype == np.uint8 and a.ndim == 1 and a[:1].tobytes() == b"{":
            meta = json.loads(a.tobytes()); continue
        parts.append(a)
    return meta, np.concatenate(parts)

def idx(tgz, member):
    b = tarfile.open(tgz).extractfile("package/data/" + member).read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b[4 + 4 * nd:], np.uint8).reshape(dims)
PY
export PYTHONPATH="$T"
D=$DATA

# MNIST training split from the tar.gz, through a pipe
fz-prep mnist:train "$D/mnist-small.tgz" | "$PY" /dev/fd/3 "$D/mnist-small.tgz" 3<<'PY' || fail "mnist:train from tar.gz"
import sys, numpy as np, fzr
meta, r = fzr.load("-")
im, lb = fzr.idx(sys.argv[1], "train-images-idx3-ubyte"), fzr.idx(sys.argv[1], "train-labels-idx1-ubyte")
assert r.dtype.names == ("id", "label", "x"), r.dtype
assert r.dtype["x"].shape == (1, 28, 28) and r.dtype["x"].base == np.dtype("<f4")
assert r.dtype["id"] == np.dtype("<u8") and r.dtype["label"] == np.dtype("<i4")
assert len(r) == 300, len(r)
assert (r["id"] == np.arange(300)).all()
assert (r["label"] == lb).all()
assert np.abs(r["x"][:, 0] - im / 255.0).max() < 1e-6
assert meta["fz_stream"] == 1 and meta["classes"] == [str(i) for i in range(10)], meta
assert meta["norm"]["mode"] == "unit" and abs(meta["norm"]["scale"] - 1 / 255) < 1e-12, meta
assert meta["rows"] == 300
PY

# test split from the zip, into a file with -o
fz-prep -o "$T/test.npy" mnist:test "$D/mnist-small.zip" || fail "mnist:test from zip"
"$PY" /dev/fd/3 "$T/test.npy" "$D/mnist-small.tgz" 3<<'PY' || fail "mnist:test values"
import sys, numpy as np, fzr
meta, r = fzr.load(sys.argv[1])
lb = fzr.idx(sys.argv[2], "t10k-labels-idx1-ubyte")
im = fzr.idx(sys.argv[2], "t10k-images-idx3-ubyte")
assert len(r) == 100 and (r["label"] == lb).all()
assert np.abs(r["x"][:, 0] - im / 255.0).max() < 1e-6
PY
fz-prep mnist:test "$D/mnist-small.tgz" >"$T/test2.npy" || fail "mnist:test from tar.gz"
"$PY" -c 'import fzr,sys; a=fzr.load(sys.argv[1]); b=fzr.load(sys.argv[2]); assert (a[1]==b[1]).all() and a[0]["classes"]==b[0]["classes"]' \
    "$T/test.npy" "$T/test2.npy" || fail "tar.gz and zip give different rows"
ls "$T"/test.npy.tmp.* >/dev/null 2>&1 && fail "temporary output left behind"

# --idx-images / --idx-labels on raw and gzip'd files
mkdir "$T/raw" && tar -xzf "$D/mnist-small.tgz" -C "$T/raw" || fail "cannot unpack the fixture"
R=$T/raw/package/data
gzip -c "$R/t10k-images-idx3-ubyte" >"$T/imgs.gz"
fz-prep --idx-images "$R/t10k-images-idx3-ubyte" --idx-labels "$R/t10k-labels-idx1-ubyte" \
    -o "$T/raw.npy" || fail "raw IDX files"
cmp -s <("$PY" -c 'import fzr,sys; m,r=fzr.load(sys.argv[1]); sys.stdout.buffer.write(r.tobytes())' "$T/raw.npy") \
       <("$PY" -c 'import fzr,sys; m,r=fzr.load(sys.argv[1]); sys.stdout.buffer.write(r.tobytes())' "$T/test.npy") ||
    fail "raw IDX rows differ from the archive's"
fz-prep --idx-images "$T/imgs.gz" --idx-labels "$R/t10k-labels-idx1-ubyte" -o "$T/gz.npy" || fail ".gz IDX"
"$PY" /dev/fd/3 "$T/gz.npy" "$T/test.npy" 3<<'PY' || fail ".gz IDX values"
import sys, numpy as np, fzr
a, b = fzr.load(sys.argv[1])[1], fzr.load(sys.argv[2])[1]
assert (a == b).all()
PY
# images without labels: label -1, no classes
fz-prep "$R/train-images-idx3-ubyte" | "$PY" -c '
import fzr; m, r = fzr.load("-")
assert len(r) == 300 and (r["label"] == -1).all() and "classes" not in m, m' || fail "IDX without labels"

# CSV with a label column; also gzip-compressed and inside a tar.gz
fz-prep --label-col diagnosis "$D/wdbc-small.csv" | "$PY" /dev/fd/3 "$D/wdbc-small.csv" 3<<'PY' || fail "CSV values"
import sys, numpy as np, fzr
meta, r = fzr.load("-")
hdr = open(sys.argv[1]).readline().strip().split(",")
lab = np.genfromtxt(sys.argv[1], delimiter=",", skip_header=1, usecols=[0], dtype=str)
x = np.genfromtxt(sys.argv[1], delimiter=",", skip_header=1)[:, 1:]
assert meta["classes"] == ["B", "M"], meta
assert meta["features"] == hdr[1:], meta["features"]
assert meta["norm"]["mode"] == "none"
assert r.dtype["x"].shape == (30,) and len(r) == 40
assert (r["label"] == (lab == "M")).all()
assert np.allclose(r["x"], x, rtol=1e-6)
PY
gzip -c "$D/wdbc-small.csv" >"$T/w.csv.gz"
mkdir -p "$T/t/tables" && cp "$D/wdbc-small.csv" "$T/t/tables/" && tar -czf "$T/w.tgz" -C "$T/t" tables
fz-prep --label-col diagnosis "$D/wdbc-small.csv" >"$T/c1.npy" || fail "csv"
fz-prep --label-col diagnosis "$T/w.csv.gz" >"$T/c2.npy" || fail "csv.gz"
fz-prep --kind csv --label-col diagnosis "$T/w.tgz" >"$T/c3.npy" || fail "csv in tar.gz"
for f in c2 c3; do
    "$PY" -c 'import fzr,sys; a=fzr.load(sys.argv[1]); b=fzr.load(sys.argv[2]); assert (a[1]==b[1]).all() and a[0]["classes"]==b[0]["classes"]' \
        "$T/c1.npy" "$T/$f.npy" || fail "$f.npy differs from the plain CSV's rows"
done

# image tree: labels from folders, paths kept, values equal the MNIST test digits
fz-prep "$D/images" >"$T/img.npy" || fail "image directory"
"$PY" /dev/fd/3 "$T/img.npy" "$D/mnist-small.tgz" 3<<'PY' || fail "image directory values"
import sys, re, numpy as np, fzr
meta, r = fzr.load(sys.argv[1])
im = fzr.idx(sys.argv[2], "t10k-images-idx3-ubyte")
lb = fzr.idx(sys.argv[2], "t10k-labels-idx1-ubyte")
assert len(r) == 12 and r.dtype["x"].shape == (1, 28, 28), r.dtype
assert r.dtype["path"].kind == "S"
paths = [p.decode() for p in r["path"]]
assert paths == sorted(paths), paths
assert meta["classes"] == sorted(set(str(v) for v in lb[:12])), meta["classes"]
for row, p in zip(r, paths):
    k = int(re.search(r"t(\d+)\.p", p).group(1))
    folder = p.split("/")[-2]
    assert meta["classes"][row["label"]] == folder == str(lb[k]), (p, row["label"])
    assert np.abs(row["x"][0] - im[k] / 255.0).max() < 1e-6, p
assert (r["id"] == np.arange(12)).all()
PY
# the same tree in a tar.gz and a zip: same rows except the path
(cd "$D/images" && tar -czf "$T/img.tgz" . && "$PY" -c '
import zipfile, os, sys
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for d, _, fs in sorted(os.walk(".")):
        for f in sorted(fs): z.write(os.path.join(d, f), os.path.join("digits", d, f))' "$T/img.zip") ||
    fail "cannot make image archives"
for a in img.tgz img.zip; do
    fz-prep --kind images "$T/$a" >"$T/a.npy" || fail "images from $a"
    "$PY" /dev/fd/3 "$T/a.npy" "$T/img.npy" 3<<'PY' || fail "images from $a differ from the directory's"
import sys, fzr
(ma, a), (mb, b) = fzr.load(sys.argv[1]), fzr.load(sys.argv[2])
assert ma["classes"] == mb["classes"]
assert (a["label"] == b["label"]).all() and (a["x"] == b["x"]).all()
assert [p.decode().split("/")[-1] for p in a["path"]] == [p.decode().split("/")[-1] for p in b["path"]]
PY
done

# top-level images have no label; hidden members are skipped
mkdir -p "$T/flat/sub" && cp "$D/images/7/t000.png" "$T/flat/a.png" && cp "$D/images/1/t002.png" "$T/flat/sub/b.png" &&
    echo junk >"$T/flat/sub/._b.png" && tar -czf "$T/flat.tgz" -C "$T/flat" . || fail "cannot make flat.tgz"
for s in "$T/flat" "$T/flat.tgz"; do
    fz-prep --kind images "$s" | "$PY" -c '
import fzr; m, r = fzr.load("-")
assert len(r) == 2 and list(r["label"]) == [-1, 0] and m["classes"] == ["sub"], (r["label"], m)' ||
        fail "labels of $s"
done

# RGB stays 3 channels; --gray makes one
fz-prep "$D/images-rgb" | "$PY" -c '
import fzr, numpy as np; m, r = fzr.load("-")
assert r.dtype["x"].shape == (3, 28, 28) and m["classes"] == ["blue", "red"]
assert np.allclose(r["x"][:, 2], 200 / 255.0)' || fail "RGB images"
fz-prep --gray "$D/images-rgb" | "$PY" -c '
import fzr; m, r = fzr.load("-")
assert r.dtype["x"].shape == (1, 28, 28)' || fail "--gray"

# help: grouped, with defaults, exit 0
fz-prep -h >"$T/help" || fail "-h exit status"
for g in Source: Selection Normalisation Output: "default: 1)"; do
    grep -q "$g" "$T/help" || fail "help lacks '$g'"
done
exit 0
