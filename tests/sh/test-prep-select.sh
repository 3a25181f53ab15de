#!/usr/bin/env bash
# fz-prep row selection and normalisation: seeded shuffle, complementary splits, keep/drop,
# skip/take, --shift, --standardize with statistics saved and reused.
. "$(dirname "$0")/lib.sh"
[ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
cat >"$T/fzr.py" <<'PY'
import json, sys, io
import numpy as np
from numpy.lib import format as npf

def load(path):
    f = open(path, "rb")
    meta, parts = {}, []
    while f.peek(1):
        v = npf.read_magic(f)
        shape, _, dt = (npf.read_array_header_1_0 if v == (1, 0) else npf.read_array_header_2_0)(f)
        a = np.frombuffer(f.read(int(np.prod(shape)) * dt.itemsize), dt).reshape(shape)
        if a.dtype == np.uint8 and a.ndim == 1 and a[:1].tobytes() == b"{":
            meta = json.loads(a.tobytes()); continue
        parts.append(a)
    return meta, np.concatenate(parts)
PY
export PYTHONPATH="$T"
M=$DATA/mnist-small.tgz
W=$DATA/wdbc-small.csv
prep() { fz-prep "$@" || fail "fz-prep $* failed"; }
check() { "$PY" -c "$@" || fail "check failed: $1"; }

prep mnist:train "$M" -o "$T/all.npy"
# shuffle: a permutation, the same for the same seed, another for another seed
prep --shuffle -s 7 mnist:train "$M" -o "$T/s7.npy"
prep --shuffle -s 7 mnist:train "$M" -o "$T/s7b.npy"
prep --shuffle -s 8 mnist:train "$M" -o "$T/s8.npy"
cmp -s "$T/s7.npy" "$T/s7b.npy" || fail "same seed, different output"
cmp -s "$T/s7.npy" "$T/s8.npy" && fail "different seeds, same output"
check '
import fzr, sys, numpy as np
a = fzr.load(sys.argv[1])[1]; s = fzr.load(sys.argv[2])[1]
assert sorted(s["id"]) == list(range(300)) and (s["id"] != np.arange(300)).any()
assert (a[s["id"]]["x"] == s["x"]).all() and (a[s["id"]]["label"] == s["label"]).all()' "$T/all.npy" "$T/s7.npy"

# split: complementary halves for one seed, in source order
prep --split 0.8:first -s 3 mnist:train "$M" -o "$T/first.npy"
prep --split 0.8:rest -s 3 mnist:train "$M" -o "$T/rest.npy"
prep --split 0.8:first -s 4 mnist:train "$M" -o "$T/first4.npy"
check '
import fzr, sys, numpy as np
f = fzr.load(sys.argv[1])[1]["id"]; r = fzr.load(sys.argv[2])[1]["id"]; f4 = fzr.load(sys.argv[3])[1]["id"]
assert len(f) == 240 and len(r) == 60, (len(f), len(r))
assert sorted(np.concatenate([f, r])) == list(range(300))
assert (np.diff(f) > 0).all() and (np.diff(r) > 0).all()
assert set(f) != set(f4)' "$T/first.npy" "$T/rest.npy" "$T/first4.npy"
# split then shuffle: the same rows, another order
prep --split 0.8:first --shuffle -s 3 mnist:train "$M" -o "$T/firsts.npy"
check '
import fzr, sys
a = fzr.load(sys.argv[1])[1]["id"]; b = fzr.load(sys.argv[2])[1]["id"]
assert sorted(a) == sorted(b) and list(a) != list(b)' "$T/first.npy" "$T/firsts.npy"

# keep / drop classes (names as in the metadata)
prep --keep 0,1,2 mnist:train "$M" -o "$T/keep.npy"
prep --drop 4 mnist:train "$M" -o "$T/drop.npy"
check '
import fzr, sys, numpy as np
a = fzr.load(sys.argv[1])[1]; k = fzr.load(sys.argv[2]); d = fzr.load(sys.argv[3])[1]
assert set(k[1]["label"]) == {0, 1, 2} and len(k[1]) == np.isin(a["label"], [0, 1, 2]).sum()
assert k[0]["classes"] == [str(i) for i in range(10)]
assert 4 not in set(d["label"]) and len(d) == (a["label"] != 4).sum()
assert (a[d["id"]]["x"] == d["x"]).all()' "$T/all.npy" "$T/keep.npy" "$T/drop.npy"
prep --keep M --label-col diagnosis "$W" -o "$T/m.npy"
check 'import fzr,sys; r=fzr.load(sys.argv[1])[1]; assert len(r)==36 and (r["label"]==1).all()' "$T/m.npy"

# skip / take come last
prep --skip 10 --take 5 mnist:train "$M" -o "$T/st.npy"
check 'import fzr,sys; r=fzr.load(sys.argv[1])[1]; assert list(r["id"]) == list(range(10, 15))' "$T/st.npy"
prep --skip 1000 mnist:train "$M" -o "$T/none.npy"
check 'import fzr,sys; m,r=fzr.load(sys.argv[1]); assert len(r)==0 and m["rows"]==0' "$T/none.npy"

# --shift: [-0.5, 0.5]
prep --shift mnist:train "$M" -o "$T/shift.npy"
check '
import fzr, sys, numpy as np
a = fzr.load(sys.argv[1])[1]; m, s = fzr.load(sys.argv[2])
assert m["norm"]["mode"] == "shift" and np.abs(s["x"] - (a["x"] - 0.5)).max() < 1e-6' "$T/all.npy" "$T/shift.npy"

# --standardize on the training split, statistics saved, then applied unchanged to the test split
prep --standardize --save-stats "$T/stats.json" --split 0.75:first mnist:train "$M" -o "$T/tr.npy"
prep --stats "$T/stats.json" mnist:test "$M" -o "$T/te.npy"
prep --raw mnist:train "$M" -o "$T/rawtr.npy"
prep --raw mnist:test "$M" -o "$T/rawte.npy"
check '
import fzr, sys, json, numpy as np
st = json.load(open(sys.argv[1]))
mt, tr = fzr.load(sys.argv[2]); me, te = fzr.load(sys.argv[3])
rtr = fzr.load(sys.argv[4])[1]; rte = fzr.load(sys.argv[5])[1]
assert st["fz_norm"] == 1 and st["mode"] == "standardize" and st["d"] == 784
raw = rtr[tr["id"]]["x"].reshape(len(tr), -1).astype(np.float64)
mean, std = raw.mean(0), raw.std(0)
assert np.allclose(st["offset"], mean, atol=1e-9)
sc = np.where(std > 1e-12 * (np.abs(mean) + 1), 1 / np.where(std > 0, std, 1), 1)
assert np.allclose(st["scale"], sc, rtol=1e-9)
assert np.allclose(tr["x"].reshape(len(tr), -1), (raw - mean) * sc, atol=1e-4)
assert np.allclose(te["x"].reshape(len(te), -1), (rte["x"].reshape(len(te), -1) - mean) * sc, atol=1e-4)
assert me["norm"]["mode"] == "standardize" and np.allclose(me["norm"]["offset"], st["offset"])
assert abs(rtr["x"].max() - 255) < 1e-6' \
    "$T/stats.json" "$T/tr.npy" "$T/te.npy" "$T/rawtr.npy" "$T/rawte.npy"

# CSV: raw by default; --standardize gives mean 0, std 1 per column; --unit gives [0, 1]
prep --standardize --label-col diagnosis "$W" -o "$T/cs.npy"
prep --unit --label-col diagnosis "$W" -o "$T/cu.npy"
check '
import fzr, sys, numpy as np
x = fzr.load(sys.argv[1])[1]["x"].astype(np.float64); u = fzr.load(sys.argv[2])[1]["x"]
assert np.abs(x.mean(0)).max() < 1e-5 and np.abs(x.std(0) - 1).max() < 1e-4
assert np.allclose(u.min(0), 0) and np.allclose(u.max(0), 1, atol=1e-6)' "$T/cs.npy" "$T/cu.npy"

# statistics of another shape or mode are refused
expect_exit 1 fz-prep --stats "$T/stats.json" --label-col diagnosis "$W"
expect_err '^fz-prep: .*stats.json: statistics for 784 features, the data has 30$'
expect_exit 2 fz-prep --stats "$T/stats.json" --shift mnist:test "$M"
expect_err 'statistics are for --norm standardize'
expect_exit 1 fz-prep --keep 11 mnist:train "$M"
expect_err "^fz-prep: --keep: no class named '11'"
exit 0
