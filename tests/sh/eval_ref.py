"""NumPy side of the fz-eval tests: write streams with known answers, and check fz-eval's
TSV and JSON output against metrics computed here from their definitions (the confusion
matrix by counting, ROC AUC by counting pairs, AP over distinct thresholds).

    eval_ref.py gen FILE SEED [options]       write a test stream
    eval_ref.py check STREAM OUT.tsv [--truth F | --anomaly-classes L] [--threshold T]
    eval_ref.py check-json STREAM OUT.json [the same]
    eval_ref.py check-roc STREAM ROC.tsv --truth F
"""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stream_numpy import read_fz  # noqa: E402  (the reader of man/fz-stream.5)

CLASSES = ["cat", "dog", "bird", "two words"]


def gen(path, seed, args):
    rng = np.random.default_rng(seed)
    n = int(args.get("--rows", 500))
    K, Z = len(CLASSES), 3
    fields = [("id", "<u8"), ("label", "<i4"), ("pred", "<i4"),
              ("x", "<f4", (1, 3, 4)), ("xhat", "<f4", (1, 3, 4)),
              ("mu", "<f4", (Z,)), ("logvar", "<f4", (Z,)),
              ("score", "<f4"), ("flag", "|u1"), ("anom", "<i4")]
    keep = args.get("--fields")
    if keep:
        fields = [f for f in fields if f[0] in keep.split(",")]
    a = np.zeros(n, np.dtype(fields))
    names = a.dtype.names
    label = rng.integers(0, K, n)
    label[rng.random(n) < 0.05] = -1
    pred = np.where(rng.random(n) < 0.7, label.clip(0), rng.integers(0, K, n))
    x = rng.random((n, 1, 3, 4))
    xhat = np.clip(x + 0.1 * rng.standard_normal((n, 1, 3, 4)), 0, 1)
    if n > 5:
        xhat[:3] = x[:3]  # a few exact rows: their PSNR is infinite
        xhat[5, 0, 0, :2] = [0.0, 1.0]  # the log clamp at -100
        x[5, 0, 0, :2] = [1.0, 0.0]
    anom = (rng.random(n) < 0.2).astype(np.int32)
    if "--no-anomalies" in args:
        anom[:] = 0
    score = np.round(rng.standard_normal(n) + 1.2 * anom, 1)  # rounded: many ties
    for k, v in [("label", label), ("pred", pred), ("x", x), ("xhat", xhat),
                 ("mu", rng.standard_normal((n, Z))),
                 ("logvar", 0.5 * rng.standard_normal((n, Z))),
                 ("anom", anom), ("score", score), ("flag", score > 0.8)]:
        if k in names:
            a[k] = v
    if "id" in names:
        a["id"] = np.arange(n)
    with open(path, "wb") as f:
        if "--no-meta" not in args:
            np.save(f, np.frombuffer(json.dumps({"classes": CLASSES}).encode(), np.uint8))
        for s in range(0, max(n, 1), 128):
            np.save(f, a[s:s + 128])


def load(path):
    with open(path, "rb") as f:
        chunks = list(read_fz(f))
    return chunks[0][0], np.concatenate([c for _, c in chunks])


def expected(path, args):
    meta, a = load(path)
    names = a.dtype.names
    e, classes = {"rows": len(a)}, []
    if "label" in names and "pred" in names:
        lab = a["label"] >= 0
        t, p = a["label"][lab].astype(int), a["pred"][lab].astype(int)
        K = len(meta.get("classes", [])) or int(max(t.max(), p.max())) + 1
        classes = meta.get("classes") or [str(i) for i in range(K)]
        cm = np.zeros((K, K), np.int64)
        np.add.at(cm, (t, p), 1)
        sup, prd, tp = cm.sum(1), cm.sum(0), np.diag(cm)
        P = np.where(prd > 0, tp / np.maximum(prd, 1), 0.0)
        R = np.where(sup > 0, tp / np.maximum(sup, 1), 0.0)
        F = np.where(P + R > 0, 2 * P * R / np.where(P + R > 0, P + R, 1), 0.0)
        used = (sup > 0) | (prd > 0)
        e.update(class_rows=int(lab.sum()), class_skipped=int((~lab).sum()),
                 accuracy=tp.sum() / lab.sum(), macro_precision=P[used].mean(),
                 macro_recall=R[used].mean(), macro_f1=F[used].mean())
        e["per_class"] = {classes[i]: (P[i], R[i], F[i], int(sup[i])) for i in range(K)}
        e["confusion"] = cm
    if "x" in names and "xhat" in names:
        n = len(a)
        x = a["x"].reshape(n, -1).astype(np.float64)
        h = a["xhat"].reshape(n, -1).astype(np.float64)
        with np.errstate(divide="ignore"):
            bce = -(x * np.maximum(np.log(h), -100) + (1 - x) * np.maximum(np.log(1 - h), -100))
            row_mse = ((h - x) ** 2).mean(1)
            row_psnr = 10 * np.log10(1 / row_mse)
        mse = ((h - x) ** 2).mean()
        e.update(recon_rows=n, recon_values=x.shape[1], mse=mse, bce=bce.mean(),
                 psnr=10 * math.log10(1 / mse), psnr_rows=row_psnr.mean(),
                 elbo_bce=bce.sum(1).mean())
        if "mu" in names and "logvar" in names:
            mu, lv = a["mu"].astype(np.float64), a["logvar"].astype(np.float64)
            kl = (-0.5 * (1 + lv - mu ** 2 - np.exp(lv)).sum(1)).mean()
            e.update(kl=kl, neg_elbo=e["elbo_bce"] + kl)
    truth = None
    if "--truth" in args:
        keep = np.ones(len(a), bool)
        truth = a[args["--truth"]] != 0
    elif "--anomaly-classes" in args:
        idx = [classes.index(c) if c in classes else int(c)
               for c in args["--anomaly-classes"].split(",")]
        keep = a["label"] >= 0
        truth = np.isin(a["label"], idx)[keep]
    if truth is not None:
        s = a["score"][keep].astype(np.float64)
        pos, neg = s[truth], s[~truth]
        e.update(anomaly_rows=len(s), anomaly_skipped=int((~keep).sum()),
                 anomalies=int(truth.sum()))
        if len(pos) and len(neg):
            gt = (pos[:, None] > neg[None, :]).sum()
            eq = (pos[:, None] == neg[None, :]).sum()
            e["roc_auc"] = (gt + 0.5 * eq) / (len(pos) * len(neg))
        else:
            e["roc_auc"] = math.nan
        ap, r0, best, best_t = 0.0, 0.0, -1.0, math.nan
        P = truth.sum()
        for t in np.unique(s)[::-1]:
            tp = (truth & (s >= t)).sum()
            fp = (~truth & (s >= t)).sum()
            if P:
                r = tp / P
                ap += (r - r0) * tp / (tp + fp)
                r0 = r
                f1 = 2 * tp / (tp + fp + P)
                if f1 > best:
                    best, best_t = f1, t
        e.update(average_precision=ap if P else math.nan,
                 best_f1=best if P else math.nan, best_threshold=best_t)
        if "--threshold" in args:
            pred = s > float(args["--threshold"])  # flagged above the threshold, as fz-fuzzy
            e["threshold"] = float(args["--threshold"])
        elif "flag" in names:
            pred = a["flag"][keep] != 0
        else:
            pred = None
        if pred is not None:
            tp, fp, fn = (pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()
            e.update(precision_at_threshold=tp / (tp + fp) if tp + fp else 0.0,
                     recall_at_threshold=tp / (tp + fn) if tp + fn else 0.0,
                     f1_at_threshold=2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return e, classes


def close(got, want, name, json_null=False):
    """got (a number, or None for JSON's null) against want; NaN and inf are printed as nan
    and inf in TSV and as null in JSON."""
    if isinstance(want, float) and not math.isfinite(want):
        if json_null:
            ok = got is None
        else:
            ok = got is not None and (got == want or (math.isnan(got) and math.isnan(want)))
    elif isinstance(want, (int, np.integer)) and not isinstance(want, bool):
        ok = got is not None and float(got) == float(want)
    else:
        ok = got is not None and math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-9)
    if not ok:
        sys.exit("%s: got %r, want %r" % (name, got, want))


def scalars(e):
    return {k: v for k, v in e.items() if k not in ("per_class", "confusion")}


def check_tsv(path, out, args):
    e, classes = expected(path, args)
    got, per_class, conf = {}, {}, {}
    for line in open(out):
        f = line.rstrip("\n").split("\t")
        if f[0] == "class":
            per_class[f[1]] = [float(v) for v in f[2:]]
        elif f[0] == "confusion":
            conf[(f[1], f[2])] = int(f[3])
        elif len(f) == 2:
            got[f[0]] = f[1] if f[0] == "decision" else float(f[1])
        else:
            sys.exit("bad TSV line %r" % line)
    for k, v in scalars(e).items():
        close(got.get(k), v, k)
    extra = set(got) - set(scalars(e)) - {"decision"}
    if extra:
        sys.exit("unexpected metrics %s" % sorted(extra))
    if "per_class" in e:
        if set(per_class) != set(e["per_class"]):
            sys.exit("classes %s, want %s" % (sorted(per_class), sorted(e["per_class"])))
        for c, want in e["per_class"].items():
            for g, w, what in zip(per_class[c], want, ("precision", "recall", "f1", "support")):
                close(g, w, "%s of class %s" % (what, c))
        cm = e["confusion"]
        if len(conf) != cm.size:
            sys.exit("%d confusion cells, want %d" % (len(conf), cm.size))
        for i, ci in enumerate(classes):
            for j, cj in enumerate(classes):
                close(conf.get((ci, cj)), int(cm[i, j]), "confusion[%s][%s]" % (ci, cj))
    elif per_class or conf:
        sys.exit("per-class rows without classification")


def check_json(path, out, args):
    e, classes = expected(path, args)
    j = json.load(open(out))
    close(j["rows"], e["rows"], "rows")
    if "accuracy" in e:
        c = j["classification"]
        close(c["rows"], e["class_rows"], "classification.rows")
        close(c["accuracy"], e["accuracy"], "accuracy")
        close(c["macro"]["f1"], e["macro_f1"], "macro f1")
        if [k["name"] for k in c["classes"]] != classes:
            sys.exit("class names %r" % [k["name"] for k in c["classes"]])
        for k in c["classes"]:
            close(k["f1"], e["per_class"][k["name"]][2], "f1 of " + k["name"])
        if not np.array_equal(np.array(c["confusion"]), e["confusion"]):
            sys.exit("confusion %r" % c["confusion"])
    elif "classification" in j:
        sys.exit("classification without label and pred")
    if "mse" in e:
        r = j["reconstruction"]
        for k in ("mse", "bce", "psnr", "psnr_rows", "elbo_bce", "kl", "neg_elbo"):
            if k in e:
                close(r.get(k), e[k], k, json_null=True)
    if "roc_auc" in e:
        a = j["anomaly"]
        close(a["anomalies"], e["anomalies"], "anomalies")
        for k in ("roc_auc", "average_precision", "best_f1", "best_threshold",
                  "f1_at_threshold"):
            if k in e:
                close(a.get(k), e[k], k, json_null=True)


def check_roc(path, roc, args):
    e, _ = expected(path, args)
    lines = open(roc).read().splitlines()
    if lines[0] != "fpr\ttpr\tthreshold":
        sys.exit("ROC header %r" % lines[0])
    pts = np.array([[float(v) for v in l.split("\t")] for l in lines[1:]])
    _, a = load(path)
    if len(pts) != len(np.unique(a["score"])) + 1:
        sys.exit("%d ROC points for %d distinct scores" % (len(pts), len(np.unique(a["score"]))))
    if not (pts[0, 0] == 0 and pts[0, 1] == 0 and np.isinf(pts[0, 2])):
        sys.exit("first ROC point %r" % pts[0])
    if not (pts[-1, 0] == 1 and pts[-1, 1] == 1):
        sys.exit("last ROC point %r" % pts[-1])
    if (np.diff(pts[:, 0]) < 0).any() or (np.diff(pts[:, 1]) < 0).any() or \
            (np.diff(pts[1:, 2]) >= 0).any():
        sys.exit("ROC points not monotone")
    area = ((pts[1:, 0] - pts[:-1, 0]) * (pts[1:, 1] + pts[:-1, 1]) / 2).sum()
    close(area, e["roc_auc"], "area under the written ROC curve")


def opts(argv):
    d, i = {}, 0
    while i < len(argv):
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            d[argv[i]] = argv[i + 1]
            i += 2
        else:
            d[argv[i]] = True
            i += 1
    return d


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "gen":
        gen(sys.argv[2], int(sys.argv[3]), opts(sys.argv[4:]))
    elif mode == "check":
        check_tsv(sys.argv[2], sys.argv[3], opts(sys.argv[4:]))
    elif mode == "check-json":
        check_json(sys.argv[2], sys.argv[3], opts(sys.argv[4:]))
    elif mode == "check-roc":
        check_roc(sys.argv[2], sys.argv[3], opts(sys.argv[4:]))
    else:
        sys.exit("unknown mode " + mode)
