"""PyTorch reference implementations of the fz presets, for bench/run.sh.

The networks, losses and optimisers are those of lib/arch.c (the presets) and
fz_train_defaults() in lib/train.c; the data come from the same fz stream files, read with
NumPy (see fz-stream(5)). Everything a training epoch does is timed, as fz-train times it:
the shuffle, gathering each batch, forward, backward and the optimiser step.

usage:
  torch_ref.py train PRESET TRAIN TEST [options]   train, time, evaluate; one JSON line out
  torch_ref.py mse STREAM                          mean of (xhat - x)^2 over a stream
                                                   holding both fields (fz-decode output)

train options:
  --threads N     torch.set_num_threads (default 1)
  --epochs E      full epochs to train and time (default 3)
  --batches K     instead of epochs: time K batches after --warmup W batches (vae-conv)
  --warmup W      untimed batches before the K timed ones (default 3)
  --seed S        torch.manual_seed (default 0)
  --run I         run number, copied to the output
  --encode-batch  rows per encoder call when timing inference (default 1000)
  --encode-rows   test rows to encode (default all)
  --encode-reps   passes over them; the median pass is reported (default 5)
  --encode-stream OUT  also time the encoder as fz-encode runs it: read the test stream
                  file (NumPy's .npy reader), encode, write {fields but x, mu, logvar, z}
                  with np.save to OUT; the median of --encode-reps passes is reported as
                  encode_stream_per_s (the interpreter's start and imports are not in it)
  --no-denormal-flush   leave denormals on (they make Adam-trained MLPs slower)

Run it with OPENBLAS_CORETYPE=SkylakeX OMP_WAIT_POLICY=passive OMP_NUM_THREADS=N for
PyTorch's best speed on an AVX-512 machine (bench/run.sh does).
"""
import argparse
import json
import resource
import sys
import time

import numpy as np
from numpy.lib import format as npf


def read_fz(f):
    """Yield (metadata, rows) for each row chunk of stream f (as in fz-stream(5))."""
    meta = {}
    while f.peek(1):
        v = npf.read_magic(f)
        shape, _, dt = (npf.read_array_header_1_0 if v == (1, 0)
                        else npf.read_array_header_2_0)(f)
        a = np.frombuffer(f.read(int(np.prod(shape)) * dt.itemsize),
                          dt).reshape(shape)
        if a.dtype == np.uint8 and a.ndim == 1 and a[:1].tobytes() == b"{":
            meta = json.loads(a.tobytes())
            continue
        yield meta, a


def load_rows(path):
    with open(path, "rb") as f:
        chunks = [rows for _, rows in read_fz(f)]
    return np.concatenate(chunks)


def load_x(path):
    """Field x of every row as float32 (N, 1, 28, 28)."""
    rows = load_rows(path)
    x = np.ascontiguousarray(rows["x"], dtype=np.float32)
    return x.reshape(len(x), 1, 28, 28)


def encode_stream(torch, ref, src, dst, eb, limit):
    """Read stream src, encode its x in batches of eb rows (z = mu), write the rows with
    mu, logvar, z instead of x to dst with np.save: what fz-encode -B eb does."""
    rows = load_rows(src)
    if limit:
        rows = rows[:limit]
    n = len(rows)
    x = torch.from_numpy(np.ascontiguousarray(rows["x"], dtype=np.float32))
    x = x.reshape(n, 1, 28, 28) if ref.preset == "vae-conv" else x.reshape(n, 784)
    outs = []
    with torch.no_grad():
        for i in range(0, n, eb):
            outs.append(ref.enc(x[i:i + eb]))
    h = torch.cat(outs).numpy()
    keep = [(k, rows.dtype[k]) for k in rows.dtype.names if k != "x"]
    if ref.kind == "vae":
        z = h.shape[1] // 2
        mu, s = h[:, :z], h[:, z:]
        if ref.sigma == "logvar":
            lv = s
        else:  # sigma = softplus(s) + 1e-8
            lv = 2.0 * np.log(np.logaddexp(0.0, s) + 1e-8)
    else:
        z = h.shape[1]
        mu, lv = h, None
    dt = keep + [("mu", "<f4", (z,))] + ([("logvar", "<f4", (z,))] if lv is not None else []) + \
        [("z", "<f4", (z,))]
    out = np.empty(n, dtype=dt)
    for k, _ in keep:
        out[k] = rows[k]
    out["mu"] = mu
    if lv is not None:
        out["logvar"] = lv
    out["z"] = mu
    np.save(dst, out)


def cmd_mse(path):
    rows = load_rows(path)
    x = rows["x"].astype(np.float64).reshape(len(rows), -1)
    xhat = rows["xhat"].astype(np.float64).reshape(len(rows), -1)
    print("%.9g" % float(np.mean((xhat - x) ** 2)))


def build(preset):
    """(encoder, decoder, kind, sigma) of a preset; the encoder of a vae outputs [mu | s].
    The MLPs take rows (B, 784), the convolutional one images (B, 1, 28, 28)."""
    import torch.nn as nn

    if preset == "ae-mlp":
        z = 8
        enc = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64),
                            nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, z))
        dec = nn.Sequential(nn.Linear(z, 32), nn.ReLU(), nn.Linear(32, 64), nn.ReLU(),
                            nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 784), nn.Sigmoid())
        return enc, dec, "ae", None
    if preset == "vae-mlp":
        z = 2
        enc = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.BatchNorm1d(256),
                            nn.Dropout(0.3), nn.Linear(256, 128), nn.ReLU(), nn.BatchNorm1d(128),
                            nn.Dropout(0.3), nn.Linear(128, 2 * z))
        dec = nn.Sequential(nn.Linear(z, 128), nn.LeakyReLU(0.3), nn.BatchNorm1d(128),
                            nn.Dropout(0.3), nn.Linear(128, 256), nn.LeakyReLU(0.3),
                            nn.BatchNorm1d(256), nn.Dropout(0.3), nn.Linear(256, 784),
                            nn.Sigmoid())
        return enc, dec, "vae", "logvar"
    if preset == "vae-conv":
        z = 2
        # 28 -> 24 -> 20 -> 16 -> 12 with 5x5 kernels, stride 1, no padding
        enc = nn.Sequential(nn.Conv2d(1, 8, 5), nn.SiLU(), nn.Conv2d(8, 16, 5), nn.SiLU(),
                            nn.Conv2d(16, 32, 5), nn.SiLU(), nn.Conv2d(32, 64, 5),
                            nn.BatchNorm2d(64), nn.SiLU(), nn.Flatten(), nn.Linear(9216, 625),
                            nn.BatchNorm1d(625), nn.SiLU(), nn.Linear(625, 2 * z))
        dec = nn.Sequential(nn.Linear(z, 625), nn.BatchNorm1d(625), nn.SiLU(),
                            nn.Linear(625, 9216), nn.BatchNorm1d(9216), nn.SiLU(),
                            nn.Unflatten(1, (64, 12, 12)), nn.ConvTranspose2d(64, 32, 5),
                            nn.SiLU(), nn.ConvTranspose2d(32, 16, 5), nn.SiLU(),
                            nn.ConvTranspose2d(16, 8, 5), nn.SiLU(), nn.ConvTranspose2d(8, 1, 5),
                            nn.Sigmoid())
        return enc, dec, "vae", "softplus"
    raise SystemExit("torch_ref.py: unknown preset '%s'" % preset)


class Ref:
    """One preset: model, optimiser and the loss of fz_train_defaults()."""

    def __init__(self, preset):
        import torch

        self.torch = torch
        self.preset = preset
        self.enc, self.dec, self.kind, self.sigma = build(preset)
        self.params = list(self.enc.parameters()) + list(self.dec.parameters())
        if preset == "vae-conv":
            self.opt = torch.optim.AdamW(self.params, lr=2e-3, weight_decay=1e-2)
            self.clip = 1.0
        else:
            self.opt = torch.optim.Adam(self.params, lr=1e-3 if preset == "ae-mlp" else 1e-4)
            self.clip = None

    def loss(self, x, sample):
        """Loss of batch x, (B, 784) or (B, 1, 28, 28); z = mu when not sample."""
        torch, F = self.torch, self.torch.nn.functional
        h = self.enc(x)
        if self.kind == "ae":
            return F.mse_loss(self.dec(h), x, reduction="sum")  # sum of squares, whole batch
        mu, s = h.chunk(2, dim=1)  # (B, Z) each
        if self.sigma == "logvar":
            sigma = torch.exp(0.5 * s)
        else:
            sigma = F.softplus(s) + 1e-8
        z = mu + sigma * torch.randn_like(mu) if sample else mu
        # KL with s read as the log-variance (for softplus: as the published code does)
        kl = (-0.5 * (1 + s - mu * mu - torch.exp(s))).sum(dim=1).mean()
        xhat = self.dec(z)
        if self.preset == "vae-conv":
            bce = F.binary_cross_entropy(xhat, x, reduction="none")  # (B, 1, 28, 28)
            return bce.sum(dim=-1).mean() + kl  # sum over the last axis, mean over the rest
        # per-image BCE summed over the pixels, mean over the batch: (784 BCE + KL) / 2 / 784
        bce = F.binary_cross_entropy(xhat, x, reduction="sum") / len(x)
        return (bce + kl) / 1568.0

    def step(self, xb):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(xb, True)
        loss.backward()
        if self.clip:
            self.torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.opt.step()
        return loss

    def train_mode(self, on):
        self.enc.train(on)
        self.dec.train(on)


def batches(torch, n, bs, gen):
    perm = torch.randperm(n, generator=gen)
    for i in range(0, n, bs):
        yield perm[i:i + bs]


def cmd_train(a):
    import torch

    torch.set_num_threads(a.threads)
    if not a.no_denormal_flush:
        torch.set_flush_denormal(True)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    t0 = time.perf_counter()
    xtr = torch.from_numpy(load_x(a.train))
    xte = torch.from_numpy(load_x(a.test))
    if a.preset != "vae-conv":
        xtr, xte = xtr.view(len(xtr), 784), xte.view(len(xte), 784)
    load_s = time.perf_counter() - t0
    bs = {"ae-mlp": 64, "vae-mlp": 500, "vae-conv": 256}[a.preset]
    ref = Ref(a.preset)
    ref.train_mode(True)
    n = len(xtr)
    out = {"impl": "torch", "preset": a.preset, "config": "t%d" % a.threads, "run": a.run,
           "threads": a.threads, "batch": bs, "seed": a.seed,
           "torch": torch.__version__, "load_seconds": round(load_s, 3)}
    if a.batches:
        # A fixed number of batches from one shuffled epoch; the first W are not timed.
        it = batches(torch, n, bs, gen)
        for _ in range(a.warmup):
            ref.step(xtr[next(it)])
        t = time.perf_counter()
        samples = 0
        for _ in range(a.batches):
            idx = next(it)
            ref.step(xtr[idx])
            samples += len(idx)
        dt = time.perf_counter() - t
        out.update(method="%d batches after %d warm-up" % (a.batches, a.warmup),
                   timed_samples=samples, timed_seconds=round(dt, 3),
                   samples_per_s=samples / dt, epoch_seconds=n * dt / samples)
    else:
        times = []
        for _ in range(a.epochs):
            t = time.perf_counter()
            for idx in batches(torch, n, bs, gen):
                ref.step(xtr[idx])
            times.append(time.perf_counter() - t)
        med = float(np.median(times))
        out.update(method="%d full epoch(s)" % a.epochs, epoch_times=[round(v, 3) for v in times],
                   epoch_seconds=med, samples_per_s=n / med)
    ref.train_mode(False)
    with torch.no_grad():
        if not a.batches:
            # The test loss as fz-train -v computes it: per-batch losses (z = mu) at the
            # training batch size, weighted by batch size; and the mean squared error.
            tot, sq = 0.0, 0.0
            for i in range(0, len(xte), bs):
                xb = xte[i:i + bs]
                tot += float(ref.loss(xb, False)) * len(xb)
                if ref.kind == "ae":
                    sq += float(((ref.dec(ref.enc(xb)) - xb) ** 2).sum())
            out["test_loss"] = tot / len(xte)
            if ref.kind == "ae":
                out["test_mse"] = sq / xte.numel()
        # Encoder inference (with the [mu | s] head), batches of --encode-batch rows.
        xe = xte[:a.encode_rows] if a.encode_rows else xte
        eb = a.encode_batch
        ref.enc(xe[:eb])  # warm-up
        reps = []
        for _ in range(a.encode_reps):
            t = time.perf_counter()
            for i in range(0, len(xe), eb):
                ref.enc(xe[i:i + eb])
            reps.append(time.perf_counter() - t)
        out["encode_rows"] = len(xe)
        out["encode_batch"] = eb
        out["encode_per_s"] = len(xe) / float(np.median(reps))
        if a.encode_stream:
            # The same encoder with the stream read from its file and the latents written:
            # the work fz-encode's figure includes.
            reps = []
            for _ in range(a.encode_reps):
                t = time.perf_counter()
                encode_stream(torch, ref, a.test, a.encode_stream, eb, a.encode_rows)
                reps.append(time.perf_counter() - t)
            out["encode_stream_per_s"] = len(xe) / float(np.median(reps))
    out["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out))


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "mse":
        if len(sys.argv) != 3:
            raise SystemExit("usage: torch_ref.py mse STREAM")
        cmd_mse(sys.argv[2])
        return
    p = argparse.ArgumentParser(prog="torch_ref.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("preset", choices=["ae-mlp", "vae-mlp", "vae-conv"])
    t.add_argument("train")
    t.add_argument("test")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--batches", type=int, default=0)
    t.add_argument("--warmup", type=int, default=3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--run", type=int, default=1)
    t.add_argument("--encode-batch", type=int, default=1000)
    t.add_argument("--encode-rows", type=int, default=0)
    t.add_argument("--encode-reps", type=int, default=5)
    t.add_argument("--encode-stream", default="")
    t.add_argument("--no-denormal-flush", action="store_true")
    cmd_train(p.parse_args())


if __name__ == "__main__":
    main()
