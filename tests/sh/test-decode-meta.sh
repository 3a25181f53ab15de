#!/usr/bin/env bash
# fz-decode's generators (--sample, --grid, --line, --path, --between) write the metadata a
# stream of data carries: fz_stream, a source naming the generator and the model, the row
# count, and the classes, features, norm, outputs and attributes the model brought from its
# training stream; xhat has the training rows' shape, so fz-plot draws the images.
. "$(dirname "$0")/lib.sh"
export OPENBLAS_NUM_THREADS=1
$PY -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"

fz-prep mnist:train "$DATA/mnist-small.tgz" 2>/dev/null |
    fz-mask -a "$FZ_ROOT/pipelines/loopopen.txt" >"$T/train.npy" || fail "fz-prep | fz-mask"
fz-train -q -a fcvae-mlp -z 2 -m 1 -s 1 -o "$T/m.st" "$T/train.npy" || fail "fz-train mnist"
fz-encode -i "$T/m.st" "$T/train.npy" >"$T/codes.npy" || fail "fz-encode"
fz-prep --label-col diagnosis --standardize "$DATA/wdbc-small.csv" -o "$T/w.npy" || fail "fz-prep wdbc"
fz-train -q -a vae-mlp -z 2 -m 1 -s 1 -o "$T/w.st" "$T/w.npy" || fail "fz-train wdbc"

gen() { # NAME MODEL ARGS...
    local name=$1 model=$2; shift 2
    fz-decode -i "$model" "$@" >"$T/$name.npy" || fail "fz-decode $*"
}
gen sample "$T/m.st" --sample 5 -s 3
gen grid "$T/m.st" --grid 3
gen line "$T/m.st" --line 0,0:1,-1 --steps 4
gen path "$T/m.st" --path 0,0:1,1:2,0 --steps 3
gen between "$T/m.st" --between 0,1 --steps 6 "$T/codes.npy"
gen wsample "$T/w.st" --sample 7

cat >"$T/chk.py" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from stream_numpy import read_fz

def load(path):
    meta, rows = {}, []
    with open(path, "rb") as f:
        for meta, a in read_fz(f):
            rows.append(a)
    return meta, np.concatenate(rows)

d = sys.argv[2]
mt, tr = load(d + "/train.npy")
mw, wr = load(d + "/w.npy")
cases = {"sample": (5, "fz-decode --sample 5 -s 3", mt, tr),
         "grid": (9, "fz-decode --grid 3", mt, tr),
         "line": (4, "fz-decode --line 0,0:1,-1 --steps 4", mt, tr),
         "path": (5, "fz-decode --path 0,0:1,1:2,0 --steps 3", mt, tr),
         "between": (6, "fz-decode --between 0,1 --steps 6", mt, tr),
         "wsample": (7, "fz-decode --sample 7 -s 0", mw, wr)}
for name, (n, src, ref, refrows) in cases.items():
    m, rows = load(d + "/" + name + ".npy")
    assert m.get("fz_stream") == 1, (name, m)
    model = "w.st" if name[0] == "w" else "m.st"
    assert m["source"] == src + " (model " + d + "/" + model + ")", (name, m["source"])
    assert m["rows"] == n == len(rows), (name, m["rows"], len(rows))
    for k in ("classes", "features", "norm", "outputs", "attributes"):
        assert m.get(k) == ref.get(k), (name, k, m.get(k), ref.get(k))
    assert rows.dtype["xhat"].shape == refrows.dtype["x"].shape, (name, rows.dtype)
    assert (rows["id"] == np.arange(n)).all()
# the keys that matter are really there (not two absent keys compared)
assert mt["classes"] and mt["norm"] and mt["outputs"] and mw["features"] and mw["norm"]
print("ok")
EOF
$PY "$T/chk.py" "$FZ_ROOT/tests/sh" "$T" || fail "metadata of the generated streams"

# the tools that read metadata: fz-info shows it, fz-plot draws the generated images
fz-info -H "$T/grid.npy" >"$T/info" || fail "fz-info"
grep -q '^metadata: {"fz_stream":1,"source":"fz-decode --grid 3 (model .*m.st)","rows":9,"classes":\["0",' "$T/info" ||
    fail "fz-info does not show the metadata: $(head -c 300 "$T/info")"
grep -Eq '^  xhat +f4 +\(1, 28, 28\)' "$T/info" || fail "xhat is not (1, 28, 28): $(cat "$T/info")"
fz-plot grid -f xhat "$T/grid.npy" "$T/grid.png" || fail "fz-plot grid of generated images"
[ "$(head -c 8 "$T/grid.png" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] || fail "no PNG written"
