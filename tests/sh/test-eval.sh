#!/usr/bin/env bash
# fz-eval: metrics against NumPy computations (confusion matrix by counting, ROC AUC by
# counting pairs), mode selection, the ROC file, real pipes, usage errors and bad streams.
. "$(dirname "$0")/lib.sh"
export OPENBLAS_NUM_THREADS=1
REF="$FZ_ROOT/tests/sh/eval_ref.py"
$PY -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
gen() { $PY "$REF" gen "$@" || fail "could not write the test stream $1"; }
check() { $PY "$REF" check "$@" || fail "TSV check failed: fz-eval ... $*"; }

gen "$T/s.npy" 1
# --- every metric against NumPy, TSV and JSON, truth from a field and from classes ---
expect_exit 0 fz-eval --tsv --truth anom "$T/s.npy"
check "$T/s.npy" "$T/out" --truth anom
grep -qx $'decision\tflag' "$T/out" || fail "the flag field should give the decision"
expect_exit 0 fz-eval --tsv --truth anom --threshold 0.3 "$T/s.npy"
check "$T/s.npy" "$T/out" --truth anom --threshold 0.3
expect_exit 0 fz-eval --tsv --anomaly-classes 'bird,3' "$T/s.npy"
check "$T/s.npy" "$T/out" --anomaly-classes 'bird,3'
grep -qx $'anomaly_skipped\t[1-9][0-9]*' "$T/out" || fail "rows with label -1 must be skipped"
expect_exit 0 fz-eval --json --truth anom --threshold -0.45 "$T/s.npy"
$PY "$REF" check-json "$T/s.npy" "$T/out" --truth anom --threshold -0.45 || fail "JSON check"
gen "$T/s2.npy" 7 --rows 1000
expect_exit 0 fz-eval --json --anomaly-classes cat "$T/s2.npy"
$PY "$REF" check-json "$T/s2.npy" "$T/out" --anomaly-classes cat || fail "JSON check, seed 7"
expect_exit 0 fz-eval --tsv --anomaly-classes dog --threshold 0.95 - <"$T/s2.npy"
check "$T/s2.npy" "$T/out" --anomaly-classes dog --threshold 0.95

# --- a score equal to the threshold is not flagged: score > T, as fz-fuzzy's flag ---
# (eval_ref.py counts score >= T, so the thresholds above are no score: scores are rounded
# to 0.1, and 0.3 as a float is above 0.3)
$PY - "$T/tie.npy" <<'EOF' || fail "could not write the tie stream"
import sys
import numpy as np
a = np.zeros(4, [("score", "<f4"), ("anom", "u1")])
a["score"] = [0.5, 0.5, 0.25, 0.75]
a["anom"] = [1, 0, 1, 0]
np.save(sys.argv[1], a)
EOF
expect_exit 0 fz-eval --tsv --truth anom --threshold 0.5 "$T/tie.npy"
grep -qx $'recall_at_threshold\t0' "$T/out" || fail "score == T flagged: $(cat "$T/out")"
grep -qx $'precision_at_threshold\t0' "$T/out" || fail "only 0.75 is above 0.5: $(cat "$T/out")"
expect_exit 0 fz-eval --tsv --truth anom --threshold 0.25 "$T/tie.npy"
grep -qx $'recall_at_threshold\t0.5' "$T/out" || fail "0.5 > 0.25 flags one anomaly: $(cat "$T/out")"
grep -qx $'precision_at_threshold\t0.3333333333' "$T/out" || fail "3 flagged above 0.25: $(cat "$T/out")"

# --- the ROC curve file: points, monotone, its trapezoid area is the AUC ---
expect_exit 0 fz-eval --truth anom --roc "$T/roc.tsv" "$T/s.npy"
$PY "$REF" check-roc "$T/s.npy" "$T/roc.tsv" --truth anom || fail "ROC file"
ls "$T" | grep -q 'roc.tsv.tmp' && fail "temporary ROC file left behind"
expect_exit 1 fz-eval --truth anom --roc "$T/no/such/dir/roc.tsv" "$T/s.npy"
expect_err "fz-eval: .*/no/such/dir/roc.tsv: No such file"

# --- mode selection: automatic from the fields, or forced ---
expect_exit 0 fz-eval --tsv "$T/s.npy"
grep -q '^roc_auc' "$T/out" && fail "anomaly metrics without a truth"
check "$T/s.npy" "$T/out"
expect_exit 0 fz-eval --tsv --recon "$T/s.npy"
grep -q '^accuracy' "$T/out" && fail "--recon printed classification"
grep -q '^mse' "$T/out" || fail "--recon printed no MSE"
expect_exit 0 fz-eval --tsv --classes --truth anom "$T/s.npy"
grep -q '^mse' "$T/out" && fail "--classes printed reconstruction"
grep -q '^roc_auc' "$T/out" || fail "--truth should add the anomaly metrics"
gen "$T/c.npy" 2 --fields label,pred --no-meta
expect_exit 0 fz-eval --tsv "$T/c.npy"
check "$T/c.npy" "$T/out"
grep -qx $'confusion\t0\t3\t[0-9]*' "$T/out" || fail "classes without metadata are named by index"
gen "$T/r.npy" 3 --fields id,x,xhat
expect_exit 0 fz-eval --tsv "$T/r.npy"
check "$T/r.npy" "$T/out"
grep -q '^kl' "$T/out" && fail "KL without mu and logvar"
gen "$T/a.npy" 4 --fields score,anom
expect_exit 0 fz-eval --tsv --truth anom "$T/a.npy"
check "$T/a.npy" "$T/out" --truth anom

# --- the table: aligned, confusion matrix labelled by class names ---
expect_exit 0 fz-eval --truth anom "$T/s.npy"
grep -q 'confusion matrix (rows: true class, columns: predicted)' "$T/out" || fail "no confusion matrix"
grep -qE '^  true\\pred +cat +dog +bird +two words$' "$T/out" || fail "confusion header: $(cat "$T/out")"
cat_row=$(awk -F'\t' '$1 == "confusion" && $2 == "cat" { printf " +%s", $4 }' \
    <(fz-eval --tsv "$T/s.npy"))
grep -qE "^  cat$cat_row\$" "$T/out" || fail "confusion row of cat: want '$cat_row' in $(cat "$T/out")"
grep -qE '^  ROC AUC +0\.[0-9]+$' "$T/out" || fail "table ROC AUC"
grep -qE '^  PSNR \(mean of per-row PSNR\) +inf dB$' "$T/out" || fail "table per-row PSNR"

# --- undefined metrics: reported, not a crash ---
gen "$T/n.npy" 5 --fields score,anom --no-anomalies
expect_exit 0 fz-eval --tsv --truth anom "$T/n.npy"
grep -qx $'roc_auc\tnan' "$T/out" || fail "AUC with one class: $(grep roc_auc "$T/out")"
check "$T/n.npy" "$T/out" --truth anom
expect_exit 0 fz-eval --json --truth anom "$T/n.npy"
grep -q '"roc_auc":null' "$T/out" || fail "JSON AUC with one class: $(cat "$T/out")"
expect_exit 0 fz-eval --truth anom "$T/n.npy"
grep -qE '^  ROC AUC +undefined' "$T/out" || fail "table AUC with one class"
gen "$T/e.npy" 5 --rows 0
expect_exit 0 fz-eval --tsv --truth anom "$T/e.npy"
grep -qx $'accuracy\tnan' "$T/out" || fail "accuracy of no rows"

# --- real pipes: a trained VAE's reconstructions, checked against NumPy ---
if fz-prep mnist:test "$DATA/mnist-small.tgz" -o "$T/mnist.npy" 2>"$T/err" &&
    fz-train -a vae-mlp -m 1 -s 1 -o "$T/vae.st" "$T/mnist.npy" 2>"$T/err"; then
    fz-encode -k -i "$T/vae.st" "$T/mnist.npy" | fz-decode -i "$T/vae.st" | tee "$T/rec.npy" |
        fz-eval --tsv >"$T/out" 2>"$T/err" || fail "fz-encode | fz-decode | fz-eval: $(cat "$T/err")"
    check "$T/rec.npy" "$T/out"
    grep -q '^kl' "$T/out" || fail "no KL from a VAE's stream"
else
    fail "could not prepare and train the MNIST fixture: $(cat "$T/err")"
fi

# --- --recon-score and --norm-score: per-row scores computed here, against NumPy's ---
$PY - "$T/s.npy" "$T/rs.npy" <<'EOF' || fail "could not write the score stream"
import sys
import numpy as np
import os
sys.path.insert(0, os.environ["FZ_ROOT"] + "/tests/sh")
from stream_numpy import read_fz
chunks = list(read_fz(open(sys.argv[1], "rb")))
a = np.concatenate([c for _, c in chunks])
n = len(a)
out = np.zeros(n, [("label", "<i4"), ("anom", "<i4"), ("rs", "<f4"), ("ns", "<f4")])
out["label"], out["anom"] = a["label"], a["anom"]
x, h = a["x"].reshape(n, -1).astype(np.float64), a["xhat"].reshape(n, -1).astype(np.float64)
out["rs"] = ((h - x) ** 2).mean(1)
out["ns"] = (a["mu"].astype(np.float64) ** 2).sum(1)
np.save(sys.argv[2], out)
EOF
an() { grep -E '^(anomaly_rows|anomalies|roc_auc|average_precision|best_f1|best_threshold)' "$T/out"; }
expect_exit 0 fz-eval --tsv --truth anom --recon-score --roc "$T/roc1.tsv" "$T/s.npy"
got=$(an)
expect_exit 0 fz-eval --tsv --truth anom --score rs --roc "$T/roc2.tsv" "$T/rs.npy"
[ "$got" = "$(an)" ] || fail "--recon-score: $got, want $(an)"
cmp -s "$T/roc1.tsv" "$T/roc2.tsv" || fail "--recon-score: the ROC curves differ"
expect_exit 0 fz-eval --tsv --anomaly-classes 'bird,3' --norm-score mu "$T/s.npy"
got=$(an)
expect_exit 0 fz-eval --tsv --anomaly-classes '2,3' --score ns "$T/rs.npy"
[ "$got" = "$(an)" ] || fail "--norm-score: $got, want $(an)"
expect_exit 2 fz-eval --recon-score "$T/s.npy"
expect_err "--recon-score needs the anomaly truth"
expect_exit 2 fz-eval --truth anom --recon-score --norm-score mu "$T/s.npy"
expect_err "more than one of --recon-score, --norm-score and --knn-score"
expect_exit 1 fz-eval --truth anom --recon-score "$T/a.npy"
expect_err "a.npy: no field 'x'"
expect_exit 1 fz-eval --truth anom --norm-score nothere "$T/s.npy"
expect_err "s.npy: no field 'nothere'"

# --- fz-fuzzy's flag and fz-eval --threshold decide alike, also at a tied score ---
if fz-prep mnist:train "$DATA/mnist-small.tgz" 2>"$T/err" | fz-mask -o "$T/fm.npy" 2>>"$T/err" &&
    fz-train -q -a fcvae-mlp -m 1 -s 1 -o "$T/fc.st" "$T/fm.npy" 2>>"$T/err"; then
    fz-fuzzy -i "$T/fc.st" --threshold 0 "$T/mnist.npy" -o "$T/sc.npy" 2>"$T/err" ||
        fail "fz-fuzzy: $(cat "$T/err")"
    # the threshold: the score of row 10 as a float, so that row ties with it
    t=$($PY -c 'import sys; sys.path.insert(0, sys.argv[1]); from stream_numpy import read_fz
import numpy as np
a = np.concatenate([c for _, c in read_fz(open(sys.argv[2], "rb"))])
print(repr(float(a["score"][10])))' "$FZ_ROOT/tests/sh" "$T/sc.npy") || fail "reading the scores"
    fz-fuzzy -i "$T/fc.st" --threshold "$t" "$T/mnist.npy" -o "$T/sc2.npy" 2>"$T/err" ||
        fail "fz-fuzzy: $(cat "$T/err")"
    expect_exit 0 fz-eval --tsv --anomaly-classes 7 "$T/sc2.npy"
    grep -qx $'decision\tflag' "$T/out" || fail "no flag decision: $(cat "$T/out")"
    flag=$(grep '_at_threshold' "$T/out")
    expect_exit 0 fz-eval --tsv --anomaly-classes 7 --threshold "$t" "$T/sc2.npy"
    [ "$flag" = "$(grep '_at_threshold' "$T/out")" ] ||
        fail "the flag at $t ($flag) and --threshold $t ($(grep _at_threshold "$T/out")) differ"
else
    fail "could not train the fuzzy fixture: $(cat "$T/err")"
fi

# --- --per-feature: MSE, variance and R^2 of every value against NumPy ---
$PY - "$T" <<'EOF' || fail "could not write the per-feature streams"
import json, sys
import numpy as np
t = sys.argv[1]
rng = np.random.default_rng(3)
n = 200
a = np.zeros(n, [("x", "<f4", (3,)), ("xhat", "<f4", (3,))])
a["x"] = rng.standard_normal((n, 3)) * [1, 2, 0] + [0, 100, 7]
a["xhat"] = a["x"] + rng.standard_normal((n, 3)) * [0.1, 3, 0.5]
with open(t + "/pf.npy", "wb") as f:
    np.save(f, np.frombuffer(json.dumps({"features": ["alpha", "b c", "const"]}).encode(), np.uint8))
    np.save(f, a[:77])
    np.save(f, a[77:])
np.save(t + "/pf-nometa.npy", a)
x, h = a["x"].astype(np.float64), a["xhat"].astype(np.float64)
mse, var = ((h - x) ** 2).mean(0), x.var(0)
with open(t + "/pf.want", "w") as f:
    for name, m, v in zip(["alpha", "b c", "const"], mse, var):
        f.write("%s\t%r\t%r\t%s\n" % (name, m, v, repr(1 - m / v) if v > 0 else "nan"))
EOF
expect_exit 0 fz-eval --tsv --per-feature "$T/pf.npy"
grep -q '^mse' "$T/out" || fail "--per-feature implies the reconstruction metrics"
awk -F'\t' '$1 == "feature" { print $2 "\t" $3 "\t" $4 "\t" $5 }' "$T/out" >"$T/pf.got"
paste "$T/pf.got" "$T/pf.want" | awk -F'\t' '
    function off(a, b,   t) { if ((a == "nan") != (b == "nan")) return 1; if (a == "nan") return 0
        t = 1e-6 * (1 + (b < 0 ? -b : b)); return a - b > t || b - a > t }
    $1 != $5 || off($2, $6) || off($3, $7) || off($4, $8) { print "feature line " NR ": " $0; bad = 1 }
    END { exit bad || NR != 3 }' || fail "per-feature values: $(cat "$T/pf.got")"
expect_exit 0 fz-eval --tsv --per-feature "$T/pf-nometa.npy"
[ "$(awk -F'\t' '$1 == "feature" { printf "%s,", $2 }' "$T/out")" = "0,1,2," ] ||
    fail "features without names are numbered: $(grep ^feature "$T/out")"
expect_exit 0 fz-eval --json --per-feature "$T/pf.npy"
grep -q '"features":\[{"name":"alpha","mse":' "$T/out" || fail "JSON features: $(cat "$T/out")"
grep -q '"name":"const","mse":[^}]*"r2":null' "$T/out" || fail "JSON R^2 of a constant feature: $(cat "$T/out")"
expect_exit 0 fz-eval --per-feature "$T/pf.npy"
grep -qE '^  const +[0-9.e-]+ +0 +undefined$' "$T/out" || fail "table per feature: $(cat "$T/out")"
expect_exit 1 fz-eval --per-feature "$T/c.npy"
expect_err "c.npy: no field 'x'"

# --- --knn: the vote of the nearest labeled reference rows, against a NumPy vote ---
$PY - "$T" <<'EOF' || fail "could not write the k-NN streams"
import json, sys
import numpy as np
t = sys.argv[1]
rng = np.random.default_rng(4)
meta = np.frombuffer(json.dumps({"classes": ["a", "b", "c"]}).encode(), np.uint8)
def make(n, labeled):
    a = np.zeros(n, [("id", "<u8"), ("label", "<i4"), ("mu", "<f4", (2,)), ("mask", "<f4", (3,))])
    a["id"] = np.arange(n)
    a["label"] = rng.integers(0, 3, n)
    # class centres 1.5 apart with unit noise, on a grid of 0.5 so that distances tie
    c = np.stack([a["label"] * 1.5, -a["label"]], 1)
    a["mu"] = np.round((c + rng.standard_normal((n, 2))) * 2) / 2
    a["mask"][labeled] = 1
    return a
ref = make(400, rng.random(400) < 0.3)
ref["label"][:5] = -1           # no label at all, whatever the mask
ref["mask"][:5] = 1
test = make(300, slice(None))
test["label"][:7] = -1          # skipped in the metrics
with open(t + "/ref.npy", "wb") as f:
    np.save(f, meta); np.save(f, ref[:100]); np.save(f, ref[100:])
with open(t + "/q.npy", "wb") as f:
    np.save(f, meta); np.save(f, test)
use = (ref["label"] >= 0) & (ref["mask"] != 0).any(1)
R, Y = ref["mu"][use].astype(np.float64), ref["label"][use]
for k in (1, 4, 15):
    cm = np.zeros((3, 3), int)
    for row in test[test["label"] >= 0]:
        d = ((R - row["mu"]) ** 2).sum(1)
        near = Y[np.argsort(d, kind="stable")[:k]]
        votes = np.bincount(near, minlength=3)
        win = [c for c in near if votes[c] == votes.max()][0]
        cm[row["label"], win] += 1
    open("%s/knn%d.want" % (t, k), "w").write(
        "accuracy %r\n" % (np.trace(cm) / cm.sum()) + "".join(
            "confusion %s %s %d\n" % ("abc"[i], "abc"[j], cm[i, j])
            for i in range(3) for j in range(3)))
print(use.sum(), file=open(t + "/knn.used", "w"))
EOF
for k in 1 4 15; do
    expect_exit 0 fz-eval --tsv --knn $k --reference "$T/ref.npy" "$T/q.npy"
    grep -qx $'class_skipped\t7' "$T/out" || fail "k-NN: rows with label -1 are skipped"
    awk -F'\t' '$1 == "accuracy" { print "accuracy", $2 } $1 == "confusion" { print $1, $2, $3, $4 }' \
        "$T/out" >"$T/knn.got"
    awk 'function key(   k, i) { k = $1; for (i = 2; i < NF; i++) k = k " " $i; return k }
         NR == FNR { want[key()] = $NF; n++; next }
         { k = key()
           if (!(k in want)) { print "extra " $0; bad = 1 }
           else if (want[k] - $NF > 1e-9 || $NF - want[k] > 1e-9) { print k ": " $NF " want " want[k]; bad = 1 }
           got++ }
         END { exit bad || got != n }' "$T/knn$k.want" "$T/knn.got" || fail "k-NN K=$k: $(cat "$T/knn.got")"
done
expect_exit 0 fz-eval --knn 3 --reference "$T/ref.npy" "$T/q.npy"
grep -q "vote of the 3 nearest of $(cat "$T/knn.used") labeled reference rows on mu" "$T/out" ||
    fail "k-NN table: $(head -5 "$T/out")"
# --field: another field; the sizes must match
expect_exit 0 fz-eval --tsv --knn 1 --field mask --reference "$T/ref.npy" "$T/q.npy"
grep -q '^accuracy' "$T/out" || fail "k-NN on the field mask"
expect_exit 1 fz-eval --knn 1 --field mu --reference "$T/ref.npy" "$T/s.npy"
expect_err "ref.npy: field 'mu' is \(2,\), the input's is \(3,\): expected the same size"
expect_exit 1 fz-eval --knn 1 --field logvar --reference "$T/ref.npy" "$T/s.npy"
expect_err "ref.npy: no field 'logvar'"
$PY -c 'import sys, numpy as np
a = np.zeros(3, [("label", "<i4"), ("mu", "<f4", (2,)), ("mask", "<f4", (3,))])
a["label"] = [-1, 0, 1]
np.save(sys.argv[1], a)' "$T/unlab.npy" || fail "could not write the unlabeled reference"
expect_exit 1 fz-eval --knn 1 --reference "$T/unlab.npy" "$T/q.npy"
expect_err "unlab.npy: no labeled rows"
expect_exit 2 fz-eval --knn 3 "$T/q.npy"
expect_err "--knn needs the labeled rows: --reference FILE; usage: fz-eval"
expect_exit 2 fz-eval --reference "$T/ref.npy" "$T/q.npy"
expect_err "--reference is for --knn K or --knn-score K"
expect_exit 2 fz-eval --knn 0 --reference "$T/ref.npy" "$T/q.npy"
expect_err "--knn"

# --- --knn-score: distance to the K-th nearest reference row, against NumPy's ---
# The reference is a ring of radius 3 (no labels: none are needed); the queries are points
# on the ring (normal) and near its empty centre (anomalies), which is where the ring's mean
# is: a k-NN density must flag the centre, the squared distance from the mean (--norm-score)
# flags the ring instead.
$PY - "$T" <<'EOF' || fail "could not write the ring streams"
import sys
import numpy as np
t = sys.argv[1]
rng = np.random.default_rng(8)
def ring(n, r, sd):
    a = rng.uniform(0, 2 * np.pi, n)
    rad = r + sd * rng.standard_normal(n)
    return np.stack([rad * np.cos(a), rad * np.sin(a)], 1)
ref = np.zeros(900, [("mu", "<f4", (2,))])
ref["mu"] = ring(900, 3, 0.2)
with open(t + "/ring.npy", "wb") as f:
    np.save(f, ref[:400]); np.save(f, ref[400:])
n_on, n_in = 150, 30
q = np.zeros(n_on + n_in, [("label", "<i4"), ("anom", "<i4"), ("mu", "<f4", (2,)), ("ks", "<f4")])
q["mu"][:n_on] = ring(n_on, 3, 0.2)
q["mu"][n_on:] = 0.4 * rng.standard_normal((n_in, 2))
q["anom"][n_on:] = 1
q["label"] = q["anom"]
R = ref["mu"].astype(np.float64)
for k in (1, 7):
    for i in range(len(q)):
        d = np.sqrt(((R - q["mu"][i].astype(np.float64)) ** 2).sum(1))
        q["ks"][i] = np.sort(d)[k - 1]
    np.save("%s/ringq%d.npy" % (t, k), q)
EOF
for k in 1 7; do
    expect_exit 0 fz-eval --tsv --truth anom --knn-score $k --reference "$T/ring.npy" --roc "$T/roc1.tsv" "$T/ringq$k.npy"
    got=$(an)
    expect_exit 0 fz-eval --tsv --truth anom --score ks --roc "$T/roc2.tsv" "$T/ringq$k.npy"
    [ "$got" = "$(an)" ] || fail "--knn-score $k: $got, want $(an)"
    cmp -s "$T/roc1.tsv" "$T/roc2.tsv" || fail "--knn-score $k: the ROC curves (and thresholds) differ from NumPy's"
    grep -qx $'roc_auc\t1' "$T/out" || fail "--knn-score $k: the empty centre does not score above the ring: $(an)"
done
expect_exit 0 fz-eval --tsv --truth anom --norm-score mu "$T/ringq1.npy"
awk -F'\t' '$1 == "roc_auc" && $2 < 0.1 { ok = 1 } END { exit !ok }' "$T/out" ||
    fail "the distance from the centre should invert on a ring: $(an)"
# --knn and --knn-score share the reference pass; the vote is unchanged by it
expect_exit 0 fz-eval --tsv --knn 4 --reference "$T/ref.npy" "$T/q.npy"
grep '^accuracy' "$T/out" >"$T/acc1"
expect_exit 0 fz-eval --tsv --knn 4 --knn-score 3 --anomaly-classes c --reference "$T/ref.npy" "$T/q.npy"
grep '^accuracy' "$T/out" | cmp -s - "$T/acc1" || fail "--knn with --knn-score: another vote"
grep -q '^roc_auc' "$T/out" || fail "--knn with --knn-score: no anomaly metrics"
expect_exit 2 fz-eval --truth anom --knn-score 3 "$T/ringq1.npy"
expect_err "--knn-score needs the rows to measure distances to: --reference FILE; usage: fz-eval"
expect_exit 2 fz-eval --knn-score 3 --reference "$T/ring.npy" "$T/ringq1.npy"
expect_err "--knn-score needs the anomaly truth"
expect_exit 2 fz-eval --truth anom --knn-score 3 --norm-score mu --reference "$T/ring.npy" "$T/ringq1.npy"
expect_err "more than one of"
expect_exit 2 fz-eval --truth anom --knn-score 0 --reference "$T/ring.npy" "$T/ringq1.npy"
expect_err "--knn-score"
expect_exit 1 fz-eval --truth anom --knn-score 2 --field ks --reference "$T/ring.npy" "$T/ringq1.npy"
expect_err "ring.npy: no field 'ks'"
expect_exit 1 fz-eval --truth anom --knn-score 2 --reference "$T/ring.npy" "$T/s.npy"
expect_err "ring.npy: field 'mu' is \(2,\), the input's is \(3,\)"

# --- usage errors: one line, exit 2 ---
expect_exit 0 fz-eval -h
grep -q '^usage: fz-eval' "$T/out" || fail "-h does not start with usage"
grep -q 'default: score' "$T/out" || fail "-h shows no defaults"
expect_exit 2 fz-eval --bogus "$T/s.npy"
expect_err '^fz-eval: unknown option .--bogus.; usage: fz-eval'
expect_exit 2 fz-eval --tsv --json "$T/s.npy"
expect_err 'usage: fz-eval'
expect_exit 2 fz-eval --truth anom --anomaly-classes 1 "$T/s.npy"
expect_err 'together'
expect_exit 2 fz-eval --anomaly "$T/s.npy"
expect_err '--anomaly needs the truth'
expect_exit 2 fz-eval --roc "$T/x.tsv" "$T/s.npy"
expect_err '--roc needs the anomaly truth'
expect_exit 2 fz-eval --truth anom --threshold abc "$T/s.npy"
expect_err "--threshold"
expect_exit 2 fz-eval --range 0 "$T/s.npy"
expect_exit 2 fz-eval --truth
expect_err "needs a value"
expect_exit 2 fz-eval "$T/s.npy" "$T/s.npy"
expect_err "too many operands"

# --- bad streams: one line naming the file, exit 1 ---
expect_exit 1 fz-eval "$T/missing.npy"
expect_err "fz-eval: .*missing.npy: No such file"
: >"$T/empty"
expect_exit 1 fz-eval "$T/empty"
expect_err "empty"
expect_exit 1 fz-eval --classes "$T/r.npy"
expect_err "r.npy: no field 'label'"
gen "$T/nopred.npy" 1 --fields label,x
expect_exit 1 fz-eval --classes "$T/nopred.npy"
expect_err "nopred.npy: no field 'pred': give a stream from fz-fuzzy"
expect_exit 1 fz-eval --recon "$T/c.npy"
expect_err "c.npy: no field 'x'"
expect_exit 1 fz-eval --truth anom "$T/c.npy"
expect_err "c.npy: no field 'score'"
expect_exit 1 fz-eval --truth nothere "$T/s.npy"
expect_err "s.npy: no field 'nothere'"
expect_exit 1 fz-eval --score x --truth anom "$T/s.npy"
expect_err "field 'x' is f4 \(1, 3, 4\), expected one number per row"
expect_exit 1 fz-eval "$T/a.npy"
expect_err "a.npy: nothing to evaluate"
expect_exit 1 fz-eval --anomaly-classes mouse "$T/s.npy"
expect_err "'mouse' is neither a class name of the stream nor an index from 0 to 3"
expect_exit 1 fz-eval --anomaly-classes 4 "$T/s.npy"
expect_err "'4' is neither"

# Values no metric can take, written by NumPy.
$PY - "$T" <<'EOF' || fail "could not write the bad streams"
import json, sys
import numpy as np
t = sys.argv[1]
def save(name, a, classes=("a", "b", "c")):
    with open("%s/%s" % (t, name), "wb") as f:
        np.save(f, np.frombuffer(json.dumps({"classes": list(classes)}).encode(), np.uint8))
        np.save(f, a)
dt = np.dtype([("label", "<i4"), ("pred", "<i4")])
save("pred7.npy", np.array([(0, 0), (1, 7)], dt))
save("label-3.npy", np.array([(0, 0), (1, 1), (-3, 1)], dt))
fdt = np.dtype([("label", "<f4"), ("pred", "<f4")])
save("half.npy", np.array([(0, 0), (1.5, 1)], fdt))
sdt = np.dtype([("score", "<f4"), ("anom", "u1")])
save("nan.npy", np.array([(0.5, 0), (np.nan, 1)], sdt))
rdt = np.dtype([("x", "<f4", (3,)), ("xhat", "<f4", (3,))])
save("inf.npy", np.array([([0, 0, 0], [0, 0, 0]), ([0, 0, 0], [0, np.inf, 0])], rdt))
save("shape.npy", np.zeros(2, np.dtype([("x", "<f4", (3,)), ("xhat", "<f4", (4,))])))
save("outside.npy", np.array([([0, 0, 1], [0, 0.5, 1.5])], rdt))
EOF
expect_exit 1 fz-eval "$T/pred7.npy"
expect_err "pred7.npy: row 1: prediction 7 is not a class \(expected 0 to 2\)"
expect_exit 1 fz-eval "$T/label-3.npy"
expect_err "label-3.npy: row 2: label is -3, expected a class index or -1"
expect_exit 1 fz-eval "$T/half.npy"
expect_err "half.npy: row 1: label is 1.5, expected a class index"
expect_exit 1 fz-eval --truth anom "$T/nan.npy"
expect_err "nan.npy: row 1: score is nan"
expect_exit 1 fz-eval "$T/inf.npy"
expect_err "inf.npy: row 1: xhat\[1\] is inf, expected a finite number"
expect_exit 1 fz-eval "$T/shape.npy"
expect_err "shape.npy: fields 'x' \(3,\) and 'xhat' \(4,\): expected the same"
expect_exit 0 fz-eval --tsv "$T/outside.npy"
grep -qx $'bce\tnan' "$T/out" || fail "BCE with xhat outside [0, 1] should be undefined"
expect_exit 0 fz-eval "$T/outside.npy"
grep -q 'undefined (1 values of xhat outside \[0, 1\])' "$T/out" || fail "table BCE note"

# Cut at every byte of a small stream: an error naming the file, never a crash.
gen "$T/small.npy" 9 --rows 3 --fields label,pred,score,anom
size=$(wc -c <"$T/small.npy")
for ((i = 0; i < size; i++)); do
    head -c "$i" "$T/small.npy" >"$T/cut.npy"
    fz-eval --truth anom "$T/cut.npy" >/dev/null 2>"$T/err"
    rc=$?
    [ $rc -eq 1 ] || fail "cut at byte $i of $size: exit $rc ($(cat "$T/err"))"
    grep -q '^fz-eval: .*cut.npy' "$T/err" || fail "cut at byte $i: $(cat "$T/err")"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "cut at byte $i: $(cat "$T/err")"
done
# Corrupted bytes: exit 0 or 1 with one line, never a crash.
$PY -c 'import sys
b = open(sys.argv[1], "rb").read()
for i in range(0, len(b), 3):
    open("%s/bad%d.npy" % (sys.argv[2], i), "wb").write(b[:i] + bytes([b[i] ^ 0xa5]) + b[i + 1:])' \
    "$T/small.npy" "$T" || fail "could not write the corrupted streams"
for ((i = 0; i < size; i += 3)); do
    fz-eval --truth anom "$T/bad$i.npy" >/dev/null 2>"$T/err"
    rc=$?
    [ $rc -le 1 ] || fail "corrupt byte $i: exit $rc ($(cat "$T/err"))"
    [ "$(wc -l <"$T/err")" -le 1 ] || fail "corrupt byte $i: $(cat "$T/err")"
done

# --- a closed downstream pipe is not an error ---
$PY - "$T/many.npy" <<'EOF' || fail "could not write the many-class stream"
import sys
import numpy as np
a = np.zeros(3000, [("label", "<i4"), ("pred", "<i4")])
a["label"] = np.arange(3000) % 300
a["pred"] = (np.arange(3000) * 7) % 300
np.save(sys.argv[1], a)
EOF
fz-eval --tsv "$T/many.npy" 2>"$T/err" | head -n 1 >/dev/null
[ ! -s "$T/err" ] || fail "closed pipe printed: $(cat "$T/err")"
fz-eval "$T/many.npy" >"$T/out" || fail "300 classes"
grep -q 'confusion matrix: 300 classes, see --tsv or --json' "$T/out" || fail "big confusion in the table"
exit 0
