#!/usr/bin/env bash
# fz-fuzzy through real pipes on a tiny fuzzy model trained on the small MNIST fixture:
# fields and shapes, the class decision against NumPy, thresholds (given, from the model's
# reference scores, from a reference stream), latent input = data input, the terms' geometry
# (--terms, --json, --at) and errors.
. "$(dirname "$0")/lib.sh"
export OPENBLAS_NUM_THREADS=1
$PY -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"

fz-prep mnist:train "$DATA/mnist-small.tgz" 2>/dev/null |
    fz-mask -a "$FZ_ROOT/pipelines/loopopen.txt" >"$T/train.npy" || fail "fz-prep | fz-mask"
fz-prep mnist:test "$DATA/mnist-small.tgz" -o "$T/test.npy" 2>/dev/null || fail "fz-prep test"
expect_exit 0 fz-train -a fcvae-mlp -m 3 -s 1 -o "$T/fc.st" "$T/train.npy"

# Python side: read streams (as in fz-stream(5)) and the model file.
cat >"$T/chk.py" <<'EOF'
import json, struct, sys
import numpy as np
from numpy.lib import format as npf

def read_fz(path):
    meta, rows = {}, []
    with open(path, "rb") as f:
        while f.peek(1):
            v = npf.read_magic(f)
            shape, _, dt = (npf.read_array_header_1_0 if v == (1, 0) else npf.read_array_header_2_0)(f)
            a = np.frombuffer(f.read(int(np.prod(shape)) * dt.itemsize), dt).reshape(shape)
            if a.dtype == np.uint8 and a.ndim == 1 and a[:1].tobytes() == b"{":
                meta = json.loads(a.tobytes())
            else:
                rows.append(a)
    return meta, np.concatenate(rows)

def read_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]

def st_tensor(path, name):
    h, data = read_st(path)
    t = h[name]
    a, e = t["data_offsets"]
    return np.frombuffer(data[a:e], "<f4").reshape(t["shape"])

def check(ok, msg):
    if not ok:
        sys.exit("FAIL: " + msg)

cmd = sys.argv[1]
if cmd == "decision":  # rows of fz-fuzzy: the class, its membership, the score
    meta, r = read_fz(sys.argv[2]); nc = int(sys.argv[3]); K = int(sys.argv[4])
    m = r["membership"]
    check(m.shape == (len(r), K), "membership shape %s" % (m.shape,))
    check(((m >= 0) & (m <= 1)).all(), "membership outside [0, 1]")
    check((r["pred"] == m[:, :nc].argmax(1)).all(), "pred is not the argmax of the class memberships")
    check((r["maxmem"] == m[:, :nc].max(1)).all(), "maxmem is not the largest class membership")
    check(np.allclose(r["score"], 1 - r["maxmem"], atol=1e-6, rtol=0), "score != 1 - maxmem")
    names = meta["classes"]
    check(all(n.decode() == names[p] for n, p in zip(r["pred_name"], r["pred"])), "pred_name")
    check(r.dtype["pred"] == np.dtype("<i4") and r.dtype["flag"] == np.dtype("u1") and
          r.dtype["score"] == np.dtype("<f4") and r.dtype["maxmem"] == np.dtype("<f4"), "dtypes %s" % r.dtype)
elif cmd == "median":  # a score that occurs, so that > and >= differ
    s = np.sort(read_fz(sys.argv[2])[1]["score"])
    print(repr(float(s[len(s) // 2])))
elif cmd == "flags":  # flag == score > threshold
    r = read_fz(sys.argv[2])[1]; t = float(sys.argv[3])
    want = r["score"] > t
    check((r["score"] == np.float32(t)).any(), "no row has the score %r" % t)
    check(want.any() and not want.all(), "threshold %g splits nothing" % t)
    check((r["flag"] == want).all(), "flag != (score > %g)" % t)
elif cmd == "contam":  # threshold = (1 - C) quantile of the reference; share flagged = C
    meta, r = read_fz(sys.argv[2]); C = float(sys.argv[3]); ref = sys.argv[4]
    if ref.endswith(".st"):
        ref_scores = st_tensor(ref, "fuzzy.ref_scores")
    else:
        ref_scores = read_fz(ref)[1]["score"]
    t = meta["anomaly_threshold"]["threshold"]
    want = np.quantile(np.sort(ref_scores.astype(np.float64)), 1 - C)
    check(abs(t - want) < 1e-6, "threshold %r, NumPy's quantile %r" % (t, want))
    check(meta["anomaly_threshold"]["contamination"] == C, "contamination in metadata")
    share = r["flag"].mean()
    check(abs(share - C) <= 2.0 / len(r) + 0.005, "share flagged %g, contamination %g" % (share, C))
    check((r["flag"] == (r["score"] > t)).all(), "flag != score > threshold")
elif cmd == "same":  # two runs agree on the decision fields
    a = read_fz(sys.argv[2])[1]; b = read_fz(sys.argv[3])[1]
    check(len(a) == len(b), "row counts differ")
    check(np.allclose(a["membership"], b["membership"], atol=1e-6, rtol=0), "memberships differ")
    for f in ("pred", "pred_name", "flag", "label", "id"):
        check((a[f] == b[f]).all(), f + " differs")
    check(np.allclose(a["score"], b["score"], atol=1e-6, rtol=0), "scores differ")
elif cmd == "noflag":
    meta, r = read_fz(sys.argv[2])
    check(not r["flag"].any(), "rows flagged without a threshold")
    check(meta["anomaly_threshold"]["threshold"] is None, "threshold in metadata %r" % meta)
elif cmd == "accuracy":
    r = read_fz(sys.argv[2])[1]
    print("%.4f" % (r["pred"] == r["label"]).mean())
elif cmd == "json":  # the geometry of every term
    j = json.load(open(sys.argv[2])); names = sys.argv[3].split(",")
    check([t["name"] for t in j["terms"]] == names, "term names %s" % [t["name"] for t in j["terms"]])
    check(j["alpha"] == float(sys.argv[4]), "alpha")
    for t in j["terms"]:
        A, M = np.array(t["A"]), np.array(t["M"])
        lam, V, semi = np.array(t["eigenvalues"]), np.array(t["eigenvectors"]), np.array(t["semi_axes"])
        check((lam > 0).all(), "eigenvalues of %s not > 0: %s" % (t["name"], lam))
        check(np.allclose(M, A.T @ A, atol=1e-9), "M != A'A for " + t["name"])
        check(np.allclose(np.linalg.eigvalsh(M), lam, rtol=1e-9, atol=1e-12), "eigenvalues of " + t["name"])
        check(np.allclose(V @ M @ V.T, np.diag(lam), atol=1e-9), "eigenvectors of " + t["name"])
        check(np.allclose(semi, np.sqrt(t["level_r2"] / lam)), "semi-axes of " + t["name"])
        check(abs(t["level_r2"] + np.log(j["alpha"])) < 1e-12, "gauss level r2 = -ln(alpha)")
        # a point on the tip of a semi-axis lies on the boundary: r2 = level
        p = np.array(t["center"]) + semi[0] * V[0]
        check(abs((p - t["center"]) @ M @ (p - t["center"]) - t["level_r2"]) < 1e-9, "boundary")
elif cmd == "centre":
    j = json.load(open(sys.argv[2]))
    print(",".join(repr(v) for v in j["terms"][int(sys.argv[3])]["center"]))
elif cmd == "at":  # membership of term k at its own centre is 1
    j = json.load(open(sys.argv[2]))["at"]; k = int(sys.argv[3])
    check(abs(j["terms"][k]["membership"] - 1) < 1e-6, "membership at the centre %r" % j["terms"][k])
    check(j["terms"][k]["r2"] < 1e-10, "r2 at the centre %r" % j["terms"][k])
    others = [t["membership"] for i, t in enumerate(j["terms"]) if i != k]
    check(max(others) < 1, "another term is 1 at this centre")
    if k < 10:
        check(j["pred"] == k and abs(j["score"]) < 1e-6, "decision at a class centre %r" % j)
elif cmd == "strip":  # a copy of a model without its reference scores (or other tensors)
    h, data = read_st(sys.argv[2]); drop = sys.argv[4].split(",")
    meta = h.pop("__metadata__"); meta.pop("fz_checksum", None)
    for k in sys.argv[5:]:
        meta.pop(k, None)
    out, nh = b"", {"__metadata__": meta}
    for k, t in sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        if k in drop:
            continue
        a, e = t["data_offsets"]
        # no padding: safetensors' data must be tiled by the tensors, gap-free
        nh[k] = dict(t, data_offsets=[len(out), len(out) + e - a])
        out += data[a:e]
    hb = json.dumps(nh).encode(); hb += b" " * (-len(hb) % 8)
    open(sys.argv[3], "wb").write(struct.pack("<Q", len(hb)) + hb + out)
EOF
chk() { $PY "$T/chk.py" "$@" || fail "check '$1' failed"; }
NAMES=0,1,2,3,4,5,6,7,8,9,loop,open

# --- fields and shapes; x dropped unless -k; label and id pass through ---
fz-fuzzy -i "$T/fc.st" "$T/test.npy" >"$T/out.npy" || fail "fz-fuzzy"
fz-info -n 0 "$T/out.npy" >"$T/info" || fail "fz-info"
grep -q '^rows: *100$' "$T/info" || fail "rows: $(cat "$T/info")"
grep -qE '^  membership +f4 +\(12,\) ' "$T/info" || fail "membership: $(grep membership "$T/info")"
grep -qE '^  pred +i4 +\(\) ' "$T/info" || fail "pred"
grep -qE '^  pred_name +S1 +\(\) ' "$T/info" || fail "pred_name"
for f in maxmem score; do grep -qE "^  $f +f4 +\(\) " "$T/info" || fail "$f"; done
grep -qE '^  flag +u1 +\(\) ' "$T/info" || fail "flag"
for f in id label; do grep -qE "^  $f " "$T/info" || fail "$f not passed through"; done
grep -qE '^  x ' "$T/info" && fail "x kept without -k"
fz-fuzzy -k -d id -i "$T/fc.st" "$T/test.npy" | fz-info -H >"$T/info" || fail "-k"
grep -qE '^  x ' "$T/info" || fail "-k did not keep x"
grep -qE '^  id ' "$T/info" && fail "-d id did not drop id"
# the decision against NumPy: pred = argmax of the 10 class memberships, score = 1 - maxmem
chk decision "$T/out.npy" 10 12
# deterministic, and the batch size changes nothing but rounding
fz-fuzzy -i "$T/fc.st" <"$T/test.npy" | cmp -s - "$T/out.npy" || fail "not deterministic"
fz-fuzzy -B 7 -i "$T/fc.st" "$T/test.npy" >"$T/b7.npy" || fail "-B 7"
chk same "$T/out.npy" "$T/b7.npy"

# --- end to end with fz-eval: accuracy and the confusion matrix ---
fz-fuzzy -i "$T/fc.st" "$T/test.npy" | fz-eval >"$T/eval" || fail "fz-fuzzy | fz-eval"
acc=$(chk accuracy "$T/out.npy")
awk -v a="$acc" '/^  accuracy/ { n++; d = $2 - a } END { exit !(n == 1 && d * d < 1e-8) }' "$T/eval" || fail "fz-eval accuracy vs NumPy $acc: $(grep accuracy "$T/eval")"
grep -q 'confusion matrix' "$T/eval" || fail "no confusion matrix: $(cat "$T/eval")"
fz-fuzzy -i "$T/fc.st" "$T/test.npy" | fz-eval --anomaly-classes 1 >"$T/eval" || fail "anomaly eval"
grep -q 'ROC AUC' "$T/eval" || fail "no anomaly metrics: $(cat "$T/eval")"

# --- flags: a given threshold, contamination from the model's reference scores ---
med=$(chk median "$T/out.npy")
fz-fuzzy --threshold "$med" -i "$T/fc.st" "$T/test.npy" >"$T/thr.npy" || fail "--threshold"
chk flags "$T/thr.npy" "$med"
for C in 0.1 0.25; do
    fz-fuzzy --contamination $C -i "$T/fc.st" "$T/train.npy" >"$T/c.npy" || fail "--contamination $C"
    chk contam "$T/c.npy" $C "$T/fc.st"
done
# the default: 1% of the training rows' scores are above the threshold
fz-fuzzy -i "$T/fc.st" "$T/train.npy" >"$T/c.npy" || fail "default contamination"
chk contam "$T/c.npy" 0.01 "$T/fc.st"
# a reference stream scored the same way
fz-fuzzy --reference "$T/test.npy" --contamination 0.2 -i "$T/fc.st" "$T/test.npy" >"$T/c.npy" ||
    fail "--reference"
chk contam "$T/c.npy" 0.2 "$T/out.npy"

# --- latent input (mu, from fz-encode) gives the same result as x ---
fz-encode -i "$T/fc.st" "$T/test.npy" | fz-fuzzy -i "$T/fc.st" >"$T/lat.npy" || fail "latent input"
chk same "$T/out.npy" "$T/lat.npy"
chk decision "$T/lat.npy" 10 12
fz-info -H "$T/lat.npy" | grep -qE '^  mu +f4 +\(2,\)' || fail "mu should pass through"
# with both x and mu, mu is used; -f forces either
fz-encode -k -i "$T/fc.st" "$T/test.npy" >"$T/both.npy" || fail "fz-encode -k"
fz-fuzzy -i "$T/fc.st" -f x "$T/both.npy" >"$T/fx.npy" || fail "-f x"
chk same "$T/out.npy" "$T/fx.npy"
fz-fuzzy -i "$T/fc.st" -f mu "$T/both.npy" >"$T/fmu.npy" || fail "-f mu"
chk same "$T/out.npy" "$T/fmu.npy"
fz-info -H "$T/fmu.npy" | grep -qE '^  x ' || fail "x should pass through when mu is the input"

# --- terms: every output name, eigenvalues > 0, geometry checked in NumPy ---
expect_exit 0 fz-fuzzy -i "$T/fc.st" --terms
for n in ${NAMES//,/ }; do grep -q "^term [0-9]* '$n' " "$T/out" || fail "--terms lacks $n"; done
awk '/^  eigenvalues/ { for (i = 2; i <= NF; i++) if ($i + 0 <= 0) bad = 1; n++ }
     END { exit bad || n != 12 }' "$T/out" || fail "eigenvalues in --terms: $(grep eigenvalues "$T/out")"
grep -q "^term 11 'open' (attribute)" "$T/out" || fail "open is an attribute"
expect_exit 0 fz-fuzzy -i "$T/fc.st" --json --alpha 0.25 -o "$T/terms.json"
chk json "$T/terms.json" "$NAMES" 0.25
# --at a term's centre: its membership is 1
for k in 3 10; do
    expect_exit 0 fz-fuzzy -i "$T/fc.st" --json --terms -o "$T/t.json"
    c=$(chk centre "$T/t.json" $k)
    expect_exit 0 fz-fuzzy -i "$T/fc.st" --json --at="$c" -o "$T/at.json"
    chk at "$T/at.json" $k
done
expect_exit 0 fz-fuzzy -i "$T/fc.st" --at -0.5,1
grep -q '^point -0.5 1$' "$T/out" || fail "--at with a negative first value: $(head -1 "$T/out")"
grep -q '^pred [0-9] ' "$T/out" || fail "--at prints the decision: $(cat "$T/out")"
[ "$(grep -c '^ *[0-9]* ' "$T/out")" -ge 12 ] || fail "--at prints every term"

# --- a model without reference scores: no flag unless told, one warning ---
chk strip "$T/fc.st" "$T/noref.st" fuzzy.ref_scores
fz-fuzzy -i "$T/noref.st" "$T/test.npy" 2>"$T/err" >"$T/n.npy" || fail "model without reference scores"
[ "$(wc -l <"$T/err")" = 1 ] && grep -q 'no reference scores' "$T/err" || fail "warning: $(cat "$T/err")"
chk noflag "$T/n.npy"
expect_exit 1 fz-fuzzy -i "$T/noref.st" --contamination 0.1 "$T/test.npy"
expect_err "fz-fuzzy: .*noref.st has no reference scores"
expect_exit 0 fz-fuzzy -i "$T/noref.st" --threshold 0.5 "$T/test.npy"
[ -s "$T/err" ] && fail "a warning with --threshold: $(cat "$T/err")"
# without class names in the model or the stream: every output is a class, named by index
chk strip "$T/fc.st" "$T/nonames.st" fuzzy.ref_scores classes outputs attributes
fz-prep mnist:test "$DATA/mnist-small.tgz" 2>/dev/null | fz-fuzzy -i "$T/nonames.st" --threshold 0.9 >"$T/nn.npy" ||
    fail "model without names"
fz-fuzzy -i "$T/nonames.st" --terms | grep -q "^term 11 '11' (class)" || fail "index names"

# --- errors: one line naming the file, exit 1; usage exit 2 ---
expect_exit 0 fz-train -a vae-mlp -m 1 -o "$T/vae.st" "$T/train.npy"
expect_exit 1 fz-fuzzy -i "$T/vae.st" "$T/test.npy"
expect_err "^fz-fuzzy: .*vae.st has no fuzzy layer: train with a fuzzy preset \(fcvae-mlp, fcvae-conv\)"
expect_exit 1 fz-fuzzy -i "$T/vae.st" --terms
expect_err "no fuzzy layer"
fz-prep --label-col diagnosis "$DATA/wdbc-small.csv" -o "$T/table.npy" 2>/dev/null || fail "fz-prep csv"
expect_exit 1 fz-fuzzy -i "$T/fc.st" "$T/table.npy"
expect_err "table.npy: field 'x' has shape \(30,\), the model .*fc.st takes \(1, 28, 28\) or latent codes \(2,\)"
expect_exit 1 fz-fuzzy -i "$T/fc.st" -f nope "$T/test.npy"
expect_err "test.npy: no field 'nope'"
expect_exit 1 fz-fuzzy -i "$T/fc.st" -f label "$T/test.npy"
expect_err "field 'label' has shape \(\), the model"
expect_exit 1 fz-fuzzy -i "$T/fc.st" "$T/missing.npy"
expect_err "missing.npy"
expect_exit 1 fz-fuzzy -i "$T/missing.st" "$T/test.npy"
expect_err "missing.st"
expect_exit 1 fz-fuzzy -i "$T/fc.st" --reference "$T/table.npy" "$T/test.npy"
expect_err "table.npy: field 'x' has shape"
expect_exit 1 fz-fuzzy -i "$T/fc.st" --at 1,2,3
expect_err "--at has 3 values, the model .*fc.st has 2 latent"
expect_exit 1 fz-fuzzy -i "$T/fc.st" --terms -o "$T/no/such/dir/t.txt"
expect_err "no/such/dir/t.txt"
expect_exit 2 fz-fuzzy "$T/test.npy"
expect_exit 2 fz-fuzzy -i "$T/fc.st" --threshold 0.5 --contamination 0.1 "$T/test.npy"
expect_exit 2 fz-fuzzy -i "$T/fc.st" --contamination 1.5 "$T/test.npy"
expect_exit 2 fz-fuzzy -i "$T/fc.st" --alpha 0 --terms
expect_exit 2 fz-fuzzy -i "$T/fc.st" --at 1,x
expect_exit 2 fz-fuzzy -i "$T/fc.st" --terms "$T/test.npy"
expect_exit 2 fz-fuzzy -i "$T/fc.st" -B 0 "$T/test.npy"
expect_exit 2 fz-fuzzy -i "$T/fc.st" --reference - <"$T/test.npy"
expect_err "^fz-fuzzy: --reference and the input cannot both be standard input; usage: fz-fuzzy -i model"
expect_exit 2 fz-fuzzy -i "$T/fc.st" --bogus
grep -q '^usage: fz-fuzzy -i model' "$T/err" || fail "usage line: $(cat "$T/err")"
expect_exit 0 fz-fuzzy -h
grep -q 'default 0.01 when the model has reference scores' "$T/out" || fail "-h defaults"
grep -q 'default 256' "$T/out" || fail "-h batch default"

# --- bad input: truncated or corrupt streams and models give one line, never a crash ---
size=$(stat -c %s "$T/test.npy")
for cut in 1 10 64 127 128 200 1000 $((size / 2)) $((size - 1)); do
    head -c $cut "$T/test.npy" >"$T/cut.npy"
    fz-fuzzy -i "$T/fc.st" "$T/cut.npy" >/dev/null 2>"$T/err"
    rc=$?
    [ $rc = 1 ] || fail "cut at $cut: exit $rc (stderr: $(cat "$T/err"))"
    [ "$(wc -l <"$T/err")" = 1 ] || fail "cut at $cut: $(cat "$T/err")"
done
head -c 1000 "$T/test.npy" >"$T/cut.npy"
expect_exit 1 fz-fuzzy -i "$T/fc.st" --reference "$T/cut.npy" "$T/test.npy"
expect_err "cut.npy"
msize=$(stat -c %s "$T/fc.st")
for cut in 4 100 $((msize / 2)) $((msize - 1)); do
    head -c $cut "$T/fc.st" >"$T/cut.st"
    expect_exit 1 fz-fuzzy -i "$T/cut.st" "$T/test.npy"
    expect_err "cut.st"
done
cp "$T/fc.st" "$T/flip.st"
printf '\377' | dd of="$T/flip.st" bs=1 seek=$((msize - 100)) conv=notrunc 2>/dev/null
expect_exit 1 fz-fuzzy -i "$T/flip.st" "$T/test.npy"
expect_err "flip.st.*checksum"
# a NaN in x is refused with the row
$PY - "$T/test.npy" "$T/nan.npy" <<'EOF' || fail "writing the NaN stream"
import sys, numpy as np
from numpy.lib import format as npf
f = open(sys.argv[1], "rb"); out = open(sys.argv[2], "wb")
while f.peek(1):
    v = npf.read_magic(f)
    shape, _, dt = (npf.read_array_header_1_0 if v == (1, 0) else npf.read_array_header_2_0)(f)
    a = np.frombuffer(f.read(int(np.prod(shape)) * dt.itemsize), dt).reshape(shape).copy()
    if a.dtype.names and "x" in a.dtype.names:
        a["x"][5, 0, 3, 4] = np.nan
    np.save(out, a)
EOF
expect_exit 1 fz-fuzzy -i "$T/fc.st" "$T/nan.npy"
expect_err "nan.npy: row 5 has a non-finite value in 'x'"

# --- a closed pipe ends the run quietly ---
fz-fuzzy -k -i "$T/fc.st" "$T/train.npy" 2>"$T/err" | head -c 100 >/dev/null
[ -s "$T/err" ] && fail "closed pipe: $(cat "$T/err")"
exit 0
