#!/usr/bin/env bash
# fz-mask through real pipes: one-hot targets and the loop/open attributes, pass-through and
# metadata, labeled fractions (per-row hash, the same whatever the chunking or order), exact
# and stratified counts, seeds, -1 labels, per-output options, --redraw, and the errors.
. "$(dirname "$0")/lib.sh"
[ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
cat >"$T/fzr.py" <<'PY'
import json
import numpy as np
from numpy.lib import format as npf

def load(path, chunks=False):
    f = open(path, "rb")
    meta, parts = {}, []
    while f.peek(1):
        v = npf.read_magic(f)
        shape, _, dt = (npf.read_array_header_1_0 if v == (1, 0) else npf.read_array_header_2_0)(f)
        a = np.frombuffer(f.read(int(np.prod(shape)) * dt.itemsize), dt).reshape(shape)
        if a.dtype == np.uint8 and a.ndim == 1 and a[:1].tobytes() == b"{":
            meta = json.loads(a.tobytes()); continue
        parts.append(a)
    return (meta, parts) if chunks else (meta, np.concatenate(parts))

def save(path, meta, rows, sizes=None):
    """Write rows as a stream: metadata (unless None), then chunks of the given sizes."""
    with open(path, "wb") as f:
        if meta is not None:
            np.save(f, np.frombuffer(json.dumps(meta).encode(), np.uint8))
        sizes = sizes or [len(rows)]
        at = 0
        for n in sizes:
            np.save(f, rows[at:at + n]); at += n
        assert at == len(rows)
PY
export PYTHONPATH="$T"
check() { "$PY" -c "$@" || fail "check failed: $1"; }
M=$DATA/mnist-small.tgz
LO=$FZ_ROOT/pipelines/loopopen.txt
fz-prep mnist:train "$M" -o "$T/all.npy" || fail "fz-prep failed"

# --- one-hot and attributes, through a pipe; every other field passes through ---
fz-prep mnist:train "$M" | fz-mask -a "$LO" >"$T/lo.npy" || fail "fz-mask -a failed"
check '
import fzr, sys, numpy as np
ma, a = fzr.load(sys.argv[1]); m, r = fzr.load(sys.argv[2])
assert r.dtype.names == ("id", "label", "x", "target", "mask"), r.dtype.names
assert r.dtype["target"] == np.dtype(("<f4", (12,))) and r.dtype["mask"] == np.dtype(("<f4", (12,)))
for k in ("id", "label", "x"): assert (r[k] == a[k]).all(), k
assert m["outputs"] == [str(d) for d in range(10)] + ["loop", "open"], m["outputs"]
assert m["attributes"] == {"loop": ["0", "6", "8", "9"], "open": ["1", "2", "3", "4", "5", "7"]}
for k in ma: assert m[k] == ma[k], k
t = r["target"]; lab = r["label"]
assert (t[:, :10] == np.eye(10, dtype=np.float32)[lab]).all()
loop = np.isin(lab, [0, 6, 8, 9])
assert (t[:, 10] == loop).all() and (t[:, 11] == ~loop).all()
assert (r["mask"] == 1).all()
assert len(set(lab)) == 10' "$T/all.npy" "$T/lo.npy"

# the same attributes given on the command line; then masking again replaces target/mask
fz-mask --attr 'loop: 0 6 8 9' --attr 'open: 1,2,3,4,5,7' "$T/all.npy" -o "$T/lo2.npy" || fail "--attr failed"
cmp -s "$T/lo.npy" "$T/lo2.npy" || fail "--attr and -a give different streams"
fz-mask "$T/lo.npy" | fz-mask --only 3 >"$T/re.npy" || fail "fz-mask of a masked stream failed"
check '
import fzr, sys, numpy as np
m, r = fzr.load(sys.argv[1])
assert r.dtype.names == ("id", "label", "x", "target", "mask"), r.dtype.names
assert r.dtype["target"].shape == (10,) and m["outputs"] == [str(d) for d in range(10)]
assert m["attributes"] == {}
assert (r["mask"][:, 3] == 1).all() and r["mask"][:, [0, 1, 2, 4, 5, 6, 7, 8, 9]].sum() == 0' "$T/re.npy"

# --- a labeled fraction: whole rows, about the fraction, seeded ---
fz-mask --labeled 0.5 -s 1 "$T/all.npy" -o "$T/f1.npy" || fail "--labeled failed"
fz-mask --labeled 0.5 -s 1 "$T/all.npy" -o "$T/f1b.npy"
fz-mask --labeled 0.5 -s 2 "$T/all.npy" -o "$T/f2.npy"
cmp -s "$T/f1.npy" "$T/f1b.npy" || fail "--labeled: same seed, different output"
cmp -s "$T/f1.npy" "$T/f2.npy" && fail "--labeled: different seeds, same output"
check '
import fzr, sys, numpy as np
r = fzr.load(sys.argv[1])[1]; r2 = fzr.load(sys.argv[2])[1]
k = r["mask"]
assert ((k == 0).all(1) | (k == 1).all(1)).all(), "a row is partly masked"
on = k[:, 0] == 1
assert 0.4 < on.mean() < 0.6, on.mean()
assert (r["target"] == np.eye(10, dtype=np.float32)[r["label"]]).all(), "unlabeled rows keep their target"
assert (on != (r2["mask"][:, 0] == 1)).any()' "$T/f1.npy" "$T/f2.npy"
# ... the same rows whatever the chunking and the order (the draw hashes seed and id)
check '
import fzr, sys
m, a = fzr.load(sys.argv[1])
fzr.save(sys.argv[2], m, a, [1, 7, 0, 100, 92, 100])' "$T/all.npy" "$T/chunked.npy"
fz-mask --labeled 0.5 -s 1 <"$T/chunked.npy" >"$T/fc.npy" || fail "--labeled on chunks failed"
fz-prep --shuffle -s 9 mnist:train "$M" | fz-mask --labeled 0.5 -s 1 >"$T/fs.npy" || fail "--labeled shuffled failed"
check '
import fzr, sys, numpy as np
r = fzr.load(sys.argv[1])[1]; c = fzr.load(sys.argv[2])[1]; s = fzr.load(sys.argv[3])[1]
assert (r["mask"] == c["mask"]).all()
assert (r["id"] != s["id"]).any()
assert (r["mask"][s["id"]] == s["mask"]).all()' "$T/f1.npy" "$T/fc.npy" "$T/fs.npy"
fz-mask --labeled 0 "$T/all.npy" | "$PY" -c '
import fzr, sys; assert (fzr.load("/dev/stdin")[1]["mask"] == 0).all()' || fail "--labeled 0 left a mask"

# --- an exact count, plain and stratified ---
fz-mask --labeled-count 100 -s 3 <"$T/all.npy" >"$T/c1.npy" || fail "--labeled-count failed"
fz-mask --labeled-count 100 -s 3 "$T/chunked.npy" >"$T/c1b.npy"
fz-mask --labeled-count 100 -s 4 "$T/all.npy" >"$T/c2.npy"
cmp -s "$T/c1.npy" "$T/c1b.npy" || fail "--labeled-count: same seed and rows, different output"
cmp -s "$T/c1.npy" "$T/c2.npy" && fail "--labeled-count: different seeds, same output"
fz-mask -a "$LO" --labeled-count 100 --stratify -s 3 "$T/all.npy" >"$T/st.npy" || fail "--stratify failed"
fz-mask --labeled 0.3 --stratify -s 3 "$T/all.npy" >"$T/stf.npy" || fail "--labeled --stratify failed"
check '
import fzr, sys, numpy as np
c = fzr.load(sys.argv[1])[1]; s = fzr.load(sys.argv[2])[1]; sf = fzr.load(sys.argv[3])[1]
on = c["mask"][:, 0] == 1
assert on.sum() == 100 and ((c["mask"] == 0).all(1) | (c["mask"] == 1).all(1)).all()
n = np.bincount(s["label"], minlength=10)
def quota(total):
    # largest remainder: floor(total n_c / N), one more to the largest remainders
    q = total * n // n.sum(); r = total * n % n.sum()
    for k in sorted(range(10), key=lambda k: (-r[k], k))[: total - q.sum()]: q[k] += 1
    return q
on = s["mask"][:, 0] == 1
assert (s["mask"][on] == 1).all() and (s["mask"][~on] == 0).all()
got = np.bincount(s["label"][on], minlength=10)
assert (got == quota(100)).all(), (got, quota(100))
on = sf["mask"][:, 0] == 1
got = np.bincount(sf["label"][on], minlength=10)
assert on.sum() == 90 and (got == quota(90)).all(), (got, quota(90))
assert (np.abs(got - 0.3 * n) <= 1).all()' "$T/c1.npy" "$T/st.npy" "$T/stf.npy"
expect_exit 1 fz-mask --labeled-count 301 "$T/all.npy"
expect_err "^fz-mask: .*all.npy: --labeled-count 301, but the stream has only 300 labeled rows$"

# --- -1 labels, and a stream whose metadata names no classes (-k) ---
check '
import fzr, sys, numpy as np
m, a = fzr.load(sys.argv[1])
a = a.copy(); a["label"][::3] = -1
fzr.save(sys.argv[2], m, a, [50, 250])
del m["classes"]; fzr.save(sys.argv[3], m, a)' "$T/all.npy" "$T/unk.npy" "$T/nocls.npy"
fz-mask -a "$LO" "$T/unk.npy" >"$T/u.npy" || fail "fz-mask with -1 labels failed"
fz-mask --labeled-count 150 -s 5 "$T/unk.npy" >"$T/uc.npy" || fail "--labeled-count with -1 labels failed"
expect_exit 1 fz-mask --labeled-count 201 "$T/unk.npy"
expect_err "--labeled-count 201, but the stream has only 200 labeled rows"
fz-mask -k 10 "$T/nocls.npy" >"$T/k.npy" || fail "fz-mask -k failed"
check '
import fzr, sys, numpy as np
u = fzr.load(sys.argv[1])[1]; c = fzr.load(sys.argv[2])[1]; mk, k = fzr.load(sys.argv[3])
unk = u["label"] == -1
assert unk.sum() == 100
assert (u["mask"][unk] == 0).all() and (u["target"][unk] == 0).all() and (u["mask"][~unk] == 1).all()
on = c["mask"][:, 0] == 1
assert on.sum() == 150 and not (on & (c["label"] == -1)).any()
assert mk["classes"] == [str(d) for d in range(10)] and mk["outputs"] == mk["classes"]
assert (k["mask"][k["label"] == -1] == 0).all() and k["mask"].sum() == 200 * 10' "$T/u.npy" "$T/uc.npy" "$T/k.npy"
expect_exit 1 fz-mask "$T/nocls.npy"
expect_err "^fz-mask: .*nocls.npy: the metadata names no classes \(give -k\)$"
expect_exit 1 fz-mask -k 3 "$T/all.npy"
expect_err "^fz-mask: .*all.npy: -k 3, but the metadata names 10 classes$"

# --- per-output masks ---
fz-mask -a "$LO" --only 0 "$T/all.npy" >"$T/only.npy" || fail "--only failed"
fz-mask -a "$LO" --negative 0 --off loop,open "$T/all.npy" >"$T/neg.npy" || fail "--negative failed"
fz-mask -a "$LO" --only loop --positive loop --hide 8 "$T/all.npy" >"$T/pos.npy" || fail "--positive failed"
check '
import fzr, sys, numpy as np
o = fzr.load(sys.argv[1])[1]; n = fzr.load(sys.argv[2])[1]; p = fzr.load(sys.argv[3])[1]
lab = o["label"]; zero = lab == 0
# --only 0: output 0 learns from every row (1 for zeros, 0 for the rest), nothing else does
assert (o["mask"][:, 0] == 1).all() and (o["mask"][:, 1:] == 0).all()
assert (o["target"][:, 0] == zero).all()
# --negative 0: the non-zeros say "surely not a 0"; the zeros say nothing about output 0
assert (n["mask"][~zero, 0] == 1).all() and (n["target"][~zero, 0] == 0).all()
assert (n["mask"][zero, 0] == 0).all()
assert (n["mask"][:, 1:10] == 1).all() and (n["mask"][:, 10:] == 0).all()
# --only loop --positive loop --hide 8: only loops teach, and 8s count as unlabeled
loop = np.isin(lab, [0, 6, 9])
assert (p["mask"][:, 10] == loop).all() and p["mask"][:, :10].sum() == 0 and p["mask"][:, 11].sum() == 0
assert (p["target"][lab == 8, 10] == 1).all()' "$T/only.npy" "$T/neg.npy" "$T/pos.npy"

# --- --redraw: full masks and the metadata entry ---
fz-mask --redraw 0.25 "$T/all.npy" | fz-info -H >"$T/info" || fail "--redraw failed"
grep -q '"mask_redraw":0.25' "$T/info" || fail "no mask_redraw in: $(cat "$T/info")"
fz-mask --redraw 0.25 "$T/all.npy" | fz-mask | fz-info -H | grep -q mask_redraw && fail "an old mask_redraw stayed"

# --- errors: spec lines, labels, fields, options ---
printf 'loop: 0 6 8 9\n# comment\nopen: 1 2 x\n' >"$T/bad.txt"
expect_exit 1 fz-mask -a "$T/bad.txt" "$T/all.npy"
expect_err "^fz-mask: .*bad.txt:3: attribute 'open': no class named 'x'$"
printf 'loop 0 6 8 9\n' >"$T/bad2.txt"
expect_exit 1 fz-mask -a "$T/bad2.txt" "$T/all.npy"
expect_err "bad2.txt:1: expected 'NAME: CLASS ...', got no ':'$"
printf 'loop: 0\n3: 4\n' >"$T/bad3.txt"
expect_exit 1 fz-mask -a "$T/bad3.txt" "$T/all.npy"
expect_err "bad3.txt:2: the name '3' is used twice$"
expect_exit 1 fz-mask --attr 'loop: 0 0' "$T/all.npy"
expect_err "^fz-mask: --attr:1: attribute 'loop': class '0' listed twice$"
expect_exit 1 fz-mask -a "$T/nonexistent.txt" "$T/all.npy"
expect_err "^fz-mask: .*nonexistent.txt: No such file"
expect_exit 1 fz-mask --only 0,ten "$T/all.npy"
expect_err "^fz-mask: --only: no output named 'ten'"
expect_exit 1 fz-mask --positive 1 --negative 1 "$T/all.npy"
expect_err "both name '1'"
check '
import fzr, sys, numpy as np
m, a = fzr.load(sys.argv[1])
a = a.copy(); a["label"][17] = 10; fzr.save(sys.argv[2], m, a)
a["label"][17] = -2; fzr.save(sys.argv[3], m, a)
b = np.zeros(3, [("id", "<u8"), ("label", "<f4")]); fzr.save(sys.argv[4], m, b)
c = np.zeros(3, [("id", "<u8"), ("x", "<f4", (2,))]); fzr.save(sys.argv[5], m, c)' \
    "$T/all.npy" "$T/big.npy" "$T/neg2.npy" "$T/flt.npy" "$T/nolab.npy"
expect_exit 1 fz-mask "$T/big.npy"
expect_err "^fz-mask: .*big.npy: row id 17: label 10 outside \[0, 10\) \(and not -1\)$"
expect_exit 1 fz-mask --labeled-count 5 "$T/neg2.npy"
expect_err "row id 17: label -2 outside"
expect_exit 1 fz-mask "$T/flt.npy"
expect_err "flt.npy: field 'label' must be an integer scalar, got 'f4'"
expect_exit 1 fz-mask "$T/nolab.npy"
expect_err "nolab.npy: no field 'label' in the stream$"
expect_exit 1 fz-mask "$T/missing.npy"
expect_err "^fz-mask: .*missing.npy: No such file"
for bad in "--labeled 1.5" "--labeled x" "--labeled-count -1" "--redraw 0" "--redraw 2" "-k 0" \
           "--bogus" "--labeled 0.5 --labeled-count 3" "--stratify" "-s" "$T/all.npy $T/all.npy"; do
    # shellcheck disable=SC2086
    expect_exit 2 fz-mask $bad "$T/all.npy"
    grep -q "usage: fz-mask" "$T/err" || fail "$bad: no usage line"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "$bad: more than one line on stderr"
done
fz-mask -h >"$T/help" || fail "-h failed"
grep -q "default: 1)" "$T/help" && grep -q "^Outputs:" "$T/help" || fail "-h: no grouped help with defaults"

# --- truncated input: an error naming the input, never a crash ---
check '
import fzr, sys, numpy as np
m, a = fzr.load(sys.argv[1])
small = np.zeros(4, [("id", "<u8"), ("label", "<i4"), ("x", "<f4", (3,))])
small["id"] = [5, 6, 7, 8]; small["label"] = [1, -1, 9, 0]
fzr.save(sys.argv[2], {"classes": m["classes"]}, small)' "$T/all.npy" "$T/small.npy"
size=$(wc -c <"$T/small.npy")
for cut in $(seq 0 "$((size - 1))"); do
    head -c "$cut" "$T/small.npy" >"$T/cut.npy"
    fz-mask --labeled-count 1 "$T/cut.npy" >"$T/cut.out" 2>"$T/err"
    rc=$?
    [ "$rc" -eq 1 ] || fail "cut at $cut of $size bytes: exit $rc ($(head -c 200 "$T/err"))"
    grep -q "cut.npy" "$T/err" || fail "cut at $cut: error does not name the file: $(cat "$T/err")"
done

# ... and a byte set to 0xff anywhere: a clean exit 0 or 1, never a crash
for at in $(seq 0 "$((size - 1))"); do
    cp "$T/small.npy" "$T/bad.npy"
    printf '\377' | dd of="$T/bad.npy" bs=1 seek="$at" conv=notrunc status=none
    fz-mask --labeled-count 1 "$T/bad.npy" >"$T/bad.out" 2>"$T/err"
    rc=$?
    [ "$rc" -le 1 ] || fail "0xff at byte $at: exit $rc ($(head -c 200 "$T/err"))"
    [ "$(wc -l <"$T/err")" -le 1 ] || fail "0xff at byte $at: more than one line: $(head -c 300 "$T/err")"
done

# --- a closed pipe is quiet, streaming and exact ---
for opts in "" "--labeled-count 10"; do
    # shellcheck disable=SC2086
    fz-mask $opts "$T/all.npy" 2>"$T/err" | head -c 100 >/dev/null
    [ "${PIPESTATUS[0]}" -eq 0 ] || fail "fz-mask $opts: nonzero exit on a closed pipe"
    [ -s "$T/err" ] && fail "fz-mask $opts: stderr on a closed pipe: $(cat "$T/err")"
done
exit 0
