"""One training step of fz against the same step in PyTorch.

usage: torch_crosscheck.py HARNESS WORKDIR PRESET:BATCH[:SEED]...

HARNESS is build/tests/test_crosscheck. It writes a freshly initialised model of PRESET;
this script builds the same network in torch from the description stored in the file
(metadata "arch"), loads the same weights, draws a batch of MNIST-like images, the sampling
noise and the Dropout keep-masks with NumPy, and has both sides take one training step
with the settings fz uses for PRESET (read back from the harness output and checked
against the values the presets promise). Every tensor is compared:

    max |fz - torch| <= 1e-4 * max |torch|

for the encoder output h, z, xhat, the loss parts, every gradient (after clipping), the
gradient norm, every parameter after the optimiser step ("param."), the optimiser moments
and the BatchNorm running statistics. The optimiser step is also compared on its own
("delta.": the change fz made against the change torch's optimiser makes from fz's
gradients), which is sharper than "param." but not amplified by the first Adam step's
sensitivity to gradients near 0. Prints one line per tensor and exits 1 if any is outside
the tolerance. For the forward values and gradients two more columns say how far each side
is from the same step computed by torch in float64, which tells who carries an error.

The gradient of a bias that feeds a BatchNorm in training mode is zero in exact arithmetic
(the normalisation removes any constant shift), so both sides hold rounding noise there.
Such gradients are checked against the scale of their layer's weight gradient instead of
their own, and the parameter after torch's own step (an Adam step on the sign of noise) is
not compared, only the "delta." of the step from fz's gradient; the table marks them.
"""
import copy
import json
import math
import os
import struct
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TOL = 1e-4


def load_reader():
    """The NumPy safetensors reader documented in lib/safetensors.h, taken from there."""
    root = os.environ.get('FZ_ROOT', os.path.join(os.path.dirname(__file__), '..', '..'))
    lines, on = [], False
    for line in open(os.path.join(root, 'lib', 'safetensors.h')):
        if line.startswith(' *   import json, struct'):
            on = True
        if on:
            lines.append(line[len(' *   '):].rstrip('\n') if len(line) > 5 else '')
            if line.startswith(' *       return t, meta'):
                break
    ns = {}
    exec('\n'.join(lines), ns)
    return ns['load_safetensors']


load_safetensors = load_reader()


def save_safetensors(path, tensors):
    """tensors: name -> numpy array (float32 or uint8), written in order, no metadata."""
    dt = {np.dtype('<f4'): 'F32', np.dtype('u1'): 'U8'}
    header, blobs, off = {}, [], 0
    for k, v in tensors.items():
        b = np.ascontiguousarray(v).tobytes()
        header[k] = {'dtype': dt[v.dtype], 'shape': list(v.shape),
                     'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


# ---- the network from its description ------------------------------------------------------

class MaskedDropout(nn.Module):
    """Dropout whose keep-mask (B, D) is given: x * mask / (1 - p), as torch's dropout."""

    def __init__(self, p):
        super().__init__()
        self.p = p
        self.mask = None

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        noise = self.mask.to(x.dtype).reshape(x.shape) / (1 - self.p)
        return x * noise


def parse_arch(text):
    a = {}
    for line in text.replace(';', '\n').split('\n'):
        line = line.split('#')[0].strip()
        if line:
            k, v = line.split('=', 1)
            a[k.strip()] = v.strip()
    return a


def tokens(value):
    out, depth, cur = [], 0, ''
    for ch in value:
        if ch.isspace() and depth == 0:
            if cur:
                out.append(cur)
            cur = ''
            continue
        depth += (ch == '(') - (ch == ')')
        if not ch.isspace():
            cur += ch
    if cur:
        out.append(cur)
    return out


def build(value, shape, latent, in_count):
    """nn.Sequential of exactly the tokens of value, for per-sample input shape (C, H, W)
    or (D,). Returns (module, output shape, [(index, token)])."""
    def size(s):
        return {'z': latent, '2z': 2 * latent, 'in': in_count}.get(s) or int(s)
    mods, toks = [], tokens(value)
    for tok in toks:
        name, _, rest = tok.partition('(')
        args = [s for s in rest.rstrip(')').split(',') if s] if rest else []
        if name == 'linear':
            assert len(shape) == 1, tok
            n = size(args[0])
            mods.append(nn.Linear(shape[0], n))
            shape = (n,)
        elif name in ('conv2d', 'convt2d'):
            n, k = size(args[0]), int(args[1])
            st = int(args[2]) if len(args) > 2 else 1
            pad = int(args[3]) if len(args) > 3 else 0
            c, h, w = shape
            if name == 'conv2d':
                mods.append(nn.Conv2d(c, n, k, st, pad))
                shape = (n, (h + 2 * pad - k) // st + 1, (w + 2 * pad - k) // st + 1)
            else:
                op = int(args[4]) if len(args) > 4 else 0
                mods.append(nn.ConvTranspose2d(c, n, k, st, pad, op))
                shape = (n, (h - 1) * st - 2 * pad + k + op, (w - 1) * st - 2 * pad + k + op)
        elif name == 'bn':
            mods.append(nn.BatchNorm1d(shape[0]) if len(shape) == 1 else nn.BatchNorm2d(shape[0]))
        elif name == 'dropout':
            mods.append(MaskedDropout(float(args[0])))
        elif name == 'relu':
            mods.append(nn.ReLU())
        elif name == 'leakyrelu':
            mods.append(nn.LeakyReLU(float(args[0]) if args else 0.01))
        elif name == 'silu':
            mods.append(nn.SiLU())
        elif name == 'sigmoid':
            mods.append(nn.Sigmoid())
        elif name == 'tanh':
            mods.append(nn.Tanh())
        elif name == 'softplus':
            mods.append(nn.Softplus())
        elif name == 'flatten':
            mods.append(nn.Flatten())
            shape = (int(np.prod(shape)),)
        elif name == 'unflatten':
            c, h, w = (int(s) for s in args)
            mods.append(nn.Unflatten(1, (c, h, w)))
            shape = (c, h, w)
        else:
            raise SystemExit('unknown layer token %r' % tok)
    return nn.Sequential(*mods), shape, toks


def zero_grad_biases(seq, prefix):
    """Names of biases of layers directly followed by a BatchNorm: their exact gradient is 0."""
    out = {}
    for i in range(len(seq) - 1):
        if isinstance(seq[i + 1], (nn.BatchNorm1d, nn.BatchNorm2d)) and \
                getattr(seq[i], 'bias', None) is not None:
            out['%s.%d.bias' % (prefix, i)] = '%s.%d.weight' % (prefix, i)
    return out


# ---- data --------------------------------------------------------------------------------------

def mnist_like(rng, B, h, w):
    """B images (B, 1, h, w) in [0, 1] of 2 to 4 soft strokes: mostly exact zeros, some exact
    ones, grey edges, like handwritten digits."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    x = np.zeros((B, 1, h, w))
    for b in range(B):
        img = np.zeros((h, w))
        for _ in range(rng.integers(2, 5)):
            p0 = rng.uniform(5, h - 5, 2)
            p1 = np.clip(p0 + rng.normal(0, 7, 2), 3, h - 3)
            for t in np.linspace(0, 1, 12):
                cy, cx = p0 + t * (p1 - p0)
                img = np.maximum(img, 1.6 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0))
        img[img < 0.05] = 0
        x[b, 0] = np.minimum(img, 1)
    return x.astype(np.float32)


# ---- the step ----------------------------------------------------------------------------------

def expected_conf(preset):
    """What fz_train_defaults promises for the presets checked here."""
    if preset == 'vae-conv':
        return dict(optim='adamw', lr=2e-3, weight_decay=1e-2, clip=1.0, recon='bce',
                    reduction='rows', recon_weight=1.0, beta=1.0, kl='logvar')
    if preset == 'vae-mlp':
        return dict(optim='adam', lr=1e-4, weight_decay=0.0, clip=0.0, recon='bce',
                    reduction='batch', recon_weight=1 / 1568, beta=1 / 1568, kl='logvar')
    raise SystemExit('no expected settings for preset %s' % preset)


def make_optim(params, conf):
    if conf['optim'] == 'adamw':
        return torch.optim.AdamW(params, lr=conf['lr'], weight_decay=conf['weight_decay'])
    return torch.optim.Adam(params, lr=conf['lr'], weight_decay=conf['weight_decay'])


def torch_update(model, grads, conf):
    """The change torch's optimiser makes to the parameters of model given the gradients
    grads (name -> numpy array): the optimiser step on its own, free of the gradient's
    rounding, which the first Adam step amplifies by up to lr / eps where a gradient is
    near 0."""
    p0 = {k: p.detach().clone() for k, p in model.named_parameters()}
    for k, p in model.named_parameters():
        p.grad = torch.from_numpy(np.array(grads[k]))
    make_optim(list(model.parameters()), conf).step()
    return {'delta.' + k: (p.detach() - p0[k]).numpy() for k, p in model.named_parameters()}


def first_step(g, p, conf):
    """The change of the first Adam/AdamW step from gradient g at parameters p, float64."""
    g = np.asarray(g, np.float64)
    p = np.asarray(p, np.float64)
    if conf['optim'] == 'adamw':
        return -p * conf['lr'] * conf['weight_decay'] - conf['lr'] * g / (np.abs(g) + 1e-8)
    g = g + conf['weight_decay'] * p
    return -conf['lr'] * g / (np.abs(g) + 1e-8)


def torch_step(model, arch, conf, x, eps, masks, in_shape):
    """One training step as fz's trainer does it. Returns a dict of named numpy arrays."""
    enc, dec = model.encoder, model.decoder
    for (part, i), m in masks.items():
        getattr(model, part)[i].mask = torch.from_numpy(m)
    Z = int(arch['latent'])
    B = x.shape[0]
    model.train()
    xt = torch.from_numpy(x)
    h = enc(xt)
    mu, s = h[:, :Z], h[:, Z:]
    if arch.get('sigma', 'logvar') == 'softplus':
        sigma = F.softplus(s) + 1e-8
    else:
        sigma = torch.exp(0.5 * s)
    z = mu + sigma * torch.from_numpy(eps)
    xhat = dec(z).reshape(x.shape)
    D = int(np.prod(in_shape))
    div = {'sum': 1, 'mean': B * D, 'batch': B, 'rows': B * D / in_shape[-1]}[conf['reduction']]
    assert conf['recon'] == 'bce' and conf['kl'] == 'logvar'
    recon = F.binary_cross_entropy(xhat, xt, reduction='sum') / div
    kl = -0.5 * torch.sum(1 + s - mu * mu - torch.exp(s)) / B
    loss = conf['recon_weight'] * recon + conf['beta'] * kl
    params = list(model.parameters())
    opt = make_optim(params, conf)
    opt.zero_grad()
    loss.backward()
    # clip_grad_norm_ with the norm accumulated in float64: torch 1.13's float32 norm of a
    # tensor of millions of values is off by some 1e-4 relative (printed as a note).
    norm32 = float(torch.norm(torch.stack([torch.norm(p.grad) for p in params])))
    norm = math.sqrt(sum(float(torch.sum(p.grad.double() ** 2)) for p in params))
    if conf['clip'] > 0:
        coef = torch.tensor(min(conf['clip'] / (norm + 1e-6), 1.0), dtype=torch.float32)
        for p in params:
            p.grad.mul_(coef)
    out = {'h': h, 'z': z, 'xhat': xhat, 'loss': loss, 'recon': recon, 'kl': kl,
           'grad_norm': torch.tensor(norm, dtype=torch.float64),
           'note.torch_norm32': torch.tensor(norm32, dtype=torch.float64)}
    for k, p in model.named_parameters():
        out['grad.' + k] = p.grad
    opt.step()
    for k, v in model.state_dict().items():
        out['param.' + k] = v
    out['optim.m'] = torch.cat([opt.state[p]['exp_avg'].reshape(-1) for p in params])
    out['optim.v'] = torch.cat([opt.state[p]['exp_avg_sq'].reshape(-1) for p in params])
    return {k: v.detach().numpy() for k, v in out.items()}


def main():
    if len(sys.argv) < 4 or not all(':' in a for a in sys.argv[3:]):
        raise SystemExit(__doc__.split('\n\n')[1])
    harness, work = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    status = 0
    for arg in sys.argv[3:]:
        preset, B, seed = (arg.split(':') + ['1'])[:3]
        status |= check(harness, preset, int(B), int(seed), os.path.join(work, preset))
    return status


def check(harness, preset, B, seed, work):
    torch.manual_seed(0)
    os.makedirs(work, exist_ok=True)
    model_path = os.path.join(work, 'model0.st')
    subprocess.run([harness, 'init', preset, '0', str(seed), model_path], check=True)

    tensors, meta = load_safetensors(model_path)
    arch = parse_arch(meta['arch'])
    in_shape = tuple(json.loads(meta['input_shape']))
    in_count = int(np.prod(in_shape))
    Z = int(arch['latent'])
    enc, eshape, _ = build(arch['encoder'], in_shape, Z, in_count)
    dec, dshape, _ = build(arch['decoder'], (Z,), Z, in_count)
    assert eshape == (2 * Z,), eshape
    assert int(np.prod(dshape)) == in_count, dshape
    model = nn.Module()
    model.encoder, model.decoder = enc, dec
    sd = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
    model.load_state_dict(sd, strict=True)   # every name and shape as PyTorch has them

    rng = np.random.default_rng(seed)
    x = mnist_like(rng, B, in_shape[1], in_shape[2])
    eps = rng.standard_normal((B, Z)).astype(np.float32)
    inputs = {'x': x, 'eps': eps}
    masks = {}
    for part, seq in (('encoder', enc), ('decoder', dec)):
        shape = in_shape if part == 'encoder' else (Z,)
        cur = torch.zeros((1,) + tuple(shape))
        for i, m in enumerate(seq):
            if isinstance(m, MaskedDropout) and m.p > 0:
                keep = (rng.random((B, cur[0].numel())) >= m.p).astype(np.uint8)
                masks[(part, i)] = keep
                inputs['mask.%s.%d' % (part, i)] = keep
            if not isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, MaskedDropout)):
                cur = m(cur)
    in_path = os.path.join(work, 'in.st')
    save_safetensors(in_path, inputs)
    subprocess.run([harness, 'step', preset, model_path, in_path, work], check=True)

    fz_out, out_meta = load_safetensors(os.path.join(work, 'out.st'))
    fz_model, _ = load_safetensors(os.path.join(work, 'model.st'))
    fz_grads, _ = load_safetensors(os.path.join(work, 'grads.st'))
    conf = json.loads(out_meta['train'])
    want = expected_conf(preset)
    for k, v in want.items():
        ok = conf[k] == v if isinstance(v, str) else abs(conf[k] - v) <= 1e-12 * max(1, abs(v))
        if not ok:
            raise SystemExit('fz trains %s with %s = %r, expected %r' % (preset, k, conf[k], v))

    model_copy = copy.deepcopy(model)
    model64 = copy.deepcopy(model).double()
    ref = torch_step(model, arch, conf, x, eps, masks, in_shape)
    ref64 = torch_step(model64, arch, conf, x.astype(np.float64), eps.astype(np.float64), masks,
                       in_shape)
    ref.update(torch_update(model_copy, fz_grads, conf))
    zero = {}
    zero.update(zero_grad_biases(enc, 'encoder'))
    zero.update(zero_grad_biases(dec, 'decoder'))

    fz = {k: fz_out[k] for k in ('h', 'z', 'xhat', 'loss', 'recon', 'kl', 'grad_norm')}
    names = [k for k, _ in model.named_parameters()]
    for k in names:
        fz['grad.' + k] = fz_grads[k]
        fz['delta.' + k] = fz_model[k] - tensors[k]
    for k in model.state_dict():
        fz['param.' + k] = fz_model[k]
    state = fz_model['optim.state']
    fz['optim.m'], fz['optim.v'] = state[:state.size // 2], state[state.size // 2:]

    print('%s, batch %d: %d parameters, %s lr %g wd %g clip %g' % (
        preset, B, sum(p.numel() for p in model.parameters()), conf['optim'], conf['lr'],
        conf['weight_decay'], conf['clip']))
    print('%-32s %10s %10s %9s %9s %9s' % ('tensor', 'max|diff|', 'max|torch|', 'ratio',
                                           'fz:f64', 'torch:f64'))
    n32 = float(ref.pop('note.torch_norm32'))
    bad, worst = [], {}
    for k, r in ref.items():
        f = np.asarray(fz[k])
        if f.shape != r.shape and f.size == r.size:
            f = f.reshape(r.shape)
        if f.shape != r.shape:
            bad.append(k)
            print('%-32s shape %s, torch %s' % (k, f.shape, r.shape))
            continue
        if f.dtype.kind == 'i':
            ok = np.array_equal(f, r)
            print('%-32s %10s %10d' % (k, 'exact' if ok else 'DIFFERS', int(r)))
            if not ok:
                bad.append(k)
            continue
        d = np.abs(f.astype(np.float64) - r.astype(np.float64))
        scale = float(np.max(np.abs(r)))
        note = ''
        base = k.split('.', 1)[1] if '.' in k else k
        if k.startswith('grad.') and base in zero:
            # zero in exact arithmetic: compare with the layer's weight gradient
            scale = float(np.max(np.abs(ref['grad.' + zero[base]])))
            note = ' (exactly 0: vs weight grad)'
        if k.startswith('param.') and base in names:
            # Where a gradient is within its rounding of 0, the first Adam step
            # (lr * g / (|g| + eps)) turns the two sides' rounding into up to lr: subtract
            # what the measured gradient difference explains (the step itself is "delta.").
            allow = np.abs(first_step(fz_grads[base], tensors[base], conf) -
                           first_step(ref['grad.' + base], tensors[base], conf))
            n = int(np.sum(d > TOL * scale))
            d = np.maximum(d - 1.001 * allow, 0)
            if n:
                note = ' (%d values moved by the first step on a near-0 gradient)' % n
        diff = float(np.max(d))
        ratio = diff / scale if scale > 0 else (0.0 if diff == 0 else float('inf'))
        cls = k.split('.')[0] if '.' in k else 'forward/loss'
        worst[cls] = max(worst.get(cls, 0.0), ratio)
        flag = '' if ratio <= TOL else '  <-- FAIL'
        acc = ''
        if not k.startswith(('param.', 'delta.', 'optim.')):
            # who carries the error: each side against torch in float64 (for information)
            r64 = np.asarray(ref64[k], np.float64)
            s64 = float(np.max(np.abs(ref64['grad.' + zero[base]] if note else r64))) or 1.0
            acc = '%9.2e %9.2e' % (float(np.max(np.abs(f - r64))) / s64,
                                  float(np.max(np.abs(r - r64))) / s64)
        print('%-32s %10.3g %10.3g %9.2e %s%s%s' % (k, diff, scale, ratio, acc, note, flag))
        if ratio > TOL:
            bad.append(k)
    print('note: torch\'s own float32 gradient norm %.9g is off by %.2e relative '
          '(float64 %.9g)' % (n32, abs(n32 - ref['grad_norm']) / ref['grad_norm'],
                              ref['grad_norm']))
    print('worst ratio per class: ' + ', '.join('%s %.2e' % kv for kv in worst.items()))
    if bad:
        print('%s: %d tensors differ by more than %g relative: %s' % (
            preset, len(bad), TOL, ' '.join(bad)))
        return 1
    print('%s: all %d tensors agree within %g relative' % (preset, len(ref), TOL))
    return 0


if __name__ == '__main__':
    sys.exit(main())
