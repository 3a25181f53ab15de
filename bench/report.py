"""Summarise the measurements of bench/run.sh: a table on stdout and a TSV.

usage: report.py RAW.jsonl OUT.tsv

RAW.jsonl holds one JSON object per measurement run, written by bench/run.sh:
  {"impl": "machine", ...}                          date, CPU, cores, versions, mode
  {"impl": "fz", "preset": "prep", ...}             fz-prep timing
  {"impl": "fz"|"torch", "preset": P, "config": C, "run": i, metric: value, ...}
Metrics: samples_per_s, epoch_seconds, encode_per_s, encode_e2e_per_s, encode_cold_ms,
encode_stream_per_s (PyTorch), maxrss_kb, test_loss, test_mse, method, core. Every figure
is the median over the runs of one configuration; for each figure the best configuration of
each side is the one shown.

Encoding has two rows. "encode images/s (stream)" sets fz-encode (which reads the stream
file and writes the latents) against PyTorch doing the same work (encode_stream_per_s:
the stream read with NumPy, the latents written with np.save); its ratio is the like-for-
like one, and the one that counts for the small MLPs, where reading the data is a large
part of the work. "encode images/s (in memory)" sets the same fz figure against PyTorch's
encoder on tensors already in memory: no I/O on PyTorch's side. "cold start (ms)" is fz
only: the wall time of fz-encode on a one-row stream.
"""
import json
import statistics
import sys

PRESETS = ["ae-mlp", "vae-mlp", "vae-conv"]
# PyTorch 1.13.1 (Debian) on a 2-vCPU AVX-512 machine at its best (OPENBLAS_CORETYPE=SkylakeX,
# OMP_WAIT_POLICY=passive, best of 1 and 2 threads, denormals flushed): the lower ends of
# the ranges measured when this benchmark was designed.
REFERENCE = {
    ("ae-mlp", "samples_per_s"): 18600, ("ae-mlp", "encode_per_s"): 540000,
    ("vae-mlp", "samples_per_s"): 15100, ("vae-mlp", "encode_per_s"): 270000,
    ("vae-conv", "samples_per_s"): 175, ("vae-conv", "encode_per_s"): 2600,
}
FAIR = 0.85  # the reference script must reach 85% of those figures
# The performance target for fz-train's peak RSS: the training data as float32 (MNIST's
# 60,000 x 784) + 4 x the parameters' bytes + the largest per-layer workspace + 200 MB.
# The model's figures are fz-info's (params4_bytes, workspace_bytes); MB as in the table.
MB = 1 << 20
DATA_BYTES = 60000 * 784 * 4
SLACK_BYTES = 200 * MB


def load(path):
    recs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                recs.append(json.loads(line))
    return recs


def median_of(runs, key):
    v = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(v) if v else None


def by_config(recs, impl, preset):
    out = {}
    for r in recs:
        if r.get("impl") == impl and r.get("preset") == preset:
            out.setdefault(r["config"], []).append(r)
    return out


def best(configs, key, higher=True):
    """(config, median, runs) of the configuration with the best median of key."""
    cands = [(c, median_of(runs, key), runs) for c, runs in configs.items()]
    cands = [c for c in cands if c[1] is not None]
    if not cands:
        return None, None, []
    return (max if higher else min)(cands, key=lambda c: c[1])


def fmt(v, key=""):
    if v is None:
        return "-"
    if key == "maxrss_kb":
        return "%.0f" % (v / 1024.0)
    if key in ("test_loss", "test_mse"):
        return "%.5g" % v
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.3g" % v


def cfg_name(impl, config, runs):
    if impl == "torch":
        return config.replace("t", "") + " thread" + ("" if config == "t1" else "s")
    core = next((r.get("core") for r in runs if r.get("core")), "?")
    return "%s (%s)" % (config, core)


def main():
    recs = load(sys.argv[1])
    out_tsv = sys.argv[2]
    mach = next((r for r in recs if r.get("impl") == "machine"), {})
    prep = [r for r in recs if r.get("preset") == "prep"]

    rows = []  # (preset, figure, fz, torch, ratio, fzcfg, tcfg, method, note)
    bounds = []  # (preset, params x4, workspace, bound, peak RSS), bytes
    fair_lines, notes = [], []
    # (fz key, PyTorch key, label, higher is better)
    figures = [
        ("samples_per_s", "samples_per_s", "train samples/s", True),
        ("epoch_seconds", "epoch_seconds", "train s/epoch (60,000)", False),
        ("encode_per_s", "encode_stream_per_s", "encode images/s (stream)", True),
        ("encode_per_s", "encode_per_s", "encode images/s (in memory)", True),
        ("encode_cold_ms", None, "cold start, 1 image (ms)", False),
        ("maxrss_kb", "maxrss_kb", "peak RSS (MB)", False),
    ]
    for p in PRESETS:
        fzc, tc = by_config(recs, "fz", p), by_config(recs, "torch", p)
        if not fzc and not tc:
            continue
        # the training figures (and RSS, quality) come from the faster training config
        fz_train = best(fzc, "samples_per_s")
        t_train = best(tc, "samples_per_s")
        for key, tkey, label, higher in figures:
            if key in ("samples_per_s", "encode_per_s", "encode_cold_ms"):
                f = best(fzc, key, higher)
                t = best(tc, tkey, higher) if tkey else (None, None, [])
            else:
                f, t = fz_train, t_train
            if tkey is None and not f[0]:
                continue
            fv = median_of(f[2], key) if f[0] else None
            tv = median_of(t[2], tkey) if t[0] else None
            if key == "maxrss_kb" and p == "vae-conv":
                rss = [r for r in recs if r.get("impl") == "fz-rss" and r.get("preset") == p]
                fv = median_of(rss, key) if rss else fv
            if key == "maxrss_kb" and fzc:
                runs = [r for c in fzc.values() for r in c]
                p4, ws = median_of(runs, "params4_bytes"), median_of(runs, "workspace_bytes")
                if p4 is not None and ws is not None:
                    bounds.append((p, p4, ws, DATA_BYTES + p4 + ws + SLACK_BYTES,
                                   fv * 1024 if fv else None))
            ratio = fv / tv if fv and tv else None
            if key == "encode_cold_ms":
                ratio = None
            method = ""
            runs = f[2] or t[2]
            if key in ("samples_per_s", "epoch_seconds"):
                fm = f[2][0].get("method", "") if f[0] else ""
                tm = t[2][0].get("method", "") if t[0] else ""
                method = "fz: %s; torch: %s; %d+%d runs" % (fm, tm, len(f[2]), len(t[2]))
            elif key == "encode_per_s":
                method = ("fz: fz-encode -B 1000 FILE -o FILE, wall(%d rows) - wall(1 row); "
                          "torch: %s, batch 1000" %
                          (runs[0].get("encode_rows", 10000) if runs else 10000,
                           "stream file read (NumPy), encoded, latents written (np.save)"
                           if tkey == "encode_stream_per_s" else "encoder on tensors in memory"))
            elif key == "encode_cold_ms":
                method = ("fz: median wall time of fz-encode -B 1000 on a one-row stream "
                          "(process start, model load, encode, write, exit)")
            else:
                method = ("fz: /usr/bin/time -v" if p != "vae-conv" else
                          "fz: VmHWM of a full-data run, stopped after a few batches") + \
                         "; torch: ru_maxrss of the whole python process"
            rows.append((p, label, fv, tv, ratio, cfg_name("fz", f[0], f[2]) if f[0] else "-",
                         cfg_name("torch", t[0], t[2]) if t[0] else "-", method, key))
            ref = REFERENCE.get((p, tkey))
            if ref and tv is not None:
                share = tv / ref
                verdict = "ok" if share >= FAIR else "NOT A FAIR BASELINE"
                fair_lines.append("  %-8s %-16s PyTorch %s vs reference %s (%.0f%%): %s" %
                                  (p, label, fmt(tv), fmt(ref), 100 * share, verdict))
        # quality after the same number of epochs
        for key, label in (("test_mse", "test MSE/pixel"), ("test_loss", "test loss")):
            if p == "ae-mlp" and key == "test_loss" or p == "vae-mlp" and key == "test_mse":
                continue
            fv = median_of(fz_train[2], key) if fz_train[0] else None
            tv = median_of(t_train[2], key) if t_train[0] else None
            if fv is None or tv is None:
                continue
            rel = (fv - tv) / tv
            verdict = "within 5%" if abs(rel) <= 0.05 else "DIFFERS by more than 5%"
            ep = (fz_train[2][0].get("method", "") or "").split(" full")[0].strip()
            rows.append((p, "%s (%s ep.)" % (label, ep), fv, tv, fv / tv,
                         cfg_name("fz", fz_train[0], fz_train[2]),
                         cfg_name("torch", t_train[0], t_train[2]),
                         "median over seeds; %+.1f%%: %s" % (100 * rel, verdict), key))

    w = sys.stdout.write
    w("fz vs PyTorch, %s\n" % mach.get("date", "?"))
    w("machine: %s, %s cores, %s; fz %s, PyTorch %s; OPENBLAS_CORETYPE in the environment: %s\n"
      % (mach.get("cpu", "?"), mach.get("cores", "?"), mach.get("os", "?"),
         mach.get("fz", "?"), mach.get("torch", "?"), mach.get("env_coretype") or "unset"))
    w("mode: %s; load average at start: %s, at end: %s\n\n" %
      (mach.get("mode", "?"), mach.get("load_start", "?"), mach.get("load_end", "?")))
    head = ("preset", "figure", "fz", "PyTorch", "fz/PyTorch", "fz config", "PyTorch config")
    table = [head] + [(r[0], r[1], fmt(r[2], r[8]), fmt(r[3], r[8]),
                       "%.2f" % r[4] if r[4] else "-", r[5], r[6]) for r in rows]
    widths = [max(len(str(t[i])) for t in table) for i in range(len(head))]
    for i, t in enumerate(table):
        w("  ".join(str(c).rjust(widths[j]) if j in (2, 3, 4) else str(c).ljust(widths[j])
                    for j, c in enumerate(t)).rstrip() + "\n")
        if i == 0:
            w("  ".join("-" * x for x in widths) + "\n")
    w("\nfz/PyTorch above 1 means fz is faster for rates, slower for seconds, bigger for memory.\n")
    w("methods:\n")
    seen = set()
    for r in rows:
        if (r[0], r[7]) not in seen and r[7]:
            seen.add((r[0], r[7]))
            w("  %-8s %-27s %s\n" % (r[0], r[1], r[7]))
    if prep:
        pv = median_of(prep, "prep_seconds")
        w("\nfz-prep mnist:train (60,000 images from the npm tarball into a stream): "
          "%.3f s median of %s runs, %s images/s\n" %
          (pv, prep[0].get("runs", "?"), fmt(60000 / pv) if pv else "-"))
    if bounds:
        w("\nfz-train's peak RSS against its bound, in MB: the training data as float32 "
          "(60,000 x 784 x 4)\n+ 4 x the parameters' bytes + the largest per-layer workspace "
          "(both from fz-info) + 200:\n")
        for p, p4, ws, bound, rss in bounds:
            verdict = "-" if rss is None else "within" if rss <= bound else "OVER"
            w("  %-8s %s + %s + %s + %s = %s; peak RSS %s: %s\n" %
              (p, fmt(DATA_BYTES / MB), fmt(p4 / MB), fmt(ws / MB), fmt(SLACK_BYTES / MB),
               fmt(bound / MB), fmt(rss / MB if rss else None), verdict))
    w("\nPyTorch against its reference figures (fair when >= %d%%):\n" % (100 * FAIR))
    for line in fair_lines:
        w(line + "\n")
    if any("NOT A FAIR" in line for line in fair_lines):
        w("  => not a fair baseline: PyTorch ran below its reference speed on this machine "
          "(other load?), so the ratios above flatter fz.\n")

    # every configuration, for the record
    w("\nall configurations (medians):\n")
    for p in PRESETS:
        for impl in ("fz", "torch"):
            for c, runs in sorted(by_config(recs, impl, p).items()):
                e2e = median_of(runs, "encode_e2e_per_s")
                cold = median_of(runs, "encode_cold_ms")
                stream = median_of(runs, "encode_stream_per_s")
                extra = (" (%s end to end, cold start %s ms)" % (fmt(e2e), fmt(cold)) if e2e
                         else " in memory, %s with the stream file" % fmt(stream) if stream
                         else "")
                w("  %-8s %-5s %-22s %s samples/s, %s s/epoch, encode %s images/s%s, "
                  "RSS %s MB, %d run(s)\n" %
                  (p, impl, cfg_name(impl, c, runs), fmt(median_of(runs, "samples_per_s")),
                   fmt(median_of(runs, "epoch_seconds")), fmt(median_of(runs, "encode_per_s")),
                   extra, fmt(median_of(runs, "maxrss_kb"), "maxrss_kb"), len(runs)))

    tmp = out_tsv + ".tmp"
    with open(tmp, "w") as f:
        f.write("# fz vs PyTorch\t%s\t%s\t%s cores\t%s\n" %
                (mach.get("date", "?"), mach.get("cpu", "?"), mach.get("cores", "?"),
                 mach.get("mode", "?")))
        f.write("preset\tfigure\tfz\tpytorch\tratio\tfz_config\tpytorch_config\tmethod\n")
        for r in rows:
            scale = 1024.0 if r[8] == "maxrss_kb" else 1.0  # kB -> MB
            f.write("\t".join([r[0], r[1], "%.6g" % (r[2] / scale) if r[2] is not None else "",
                               "%.6g" % (r[3] / scale) if r[3] is not None else "",
                               "%.4f" % r[4] if r[4] else "", r[5], r[6], r[7]]) + "\n")
        for p, p4, ws, bound, rss in bounds:
            f.write("%s\tfz-train peak RSS bound (MB)\t%.6g\t\t%s\t\t\t"
                    "data %.6g + 4 x params %.6g + workspace %.6g + 200 MB; peak RSS %s MB: %s\n" %
                    (p, bound / MB, "%.4f" % (rss / bound) if rss else "", DATA_BYTES / MB,
                     p4 / MB, ws / MB, "%.6g" % (rss / MB) if rss else "-",
                     "-" if rss is None else "within" if rss <= bound else "OVER"))
        if prep:
            f.write("prep\tfz-prep mnist:train seconds\t%.4f\t\t\t\t\tmedian of %s runs\n" %
                    (median_of(prep, "prep_seconds"), prep[0].get("runs", "?")))
    import os
    os.replace(tmp, out_tsv)


if __name__ == "__main__":
    main()
