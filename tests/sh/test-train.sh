#!/usr/bin/env bash
# fz-train, fz-encode and fz-decode through real pipes on the small MNIST fixture:
# training lowers the loss, checkpoints resume bit-identically, latents and reconstructions
# have the right fields and shapes, and bad input is refused with one clear line.
. "$(dirname "$0")/lib.sh"
export OPENBLAS_NUM_THREADS=1

fz-prep mnist:train "$DATA/mnist-small.tgz" -o "$T/train.npy" 2>/dev/null || fail "fz-prep train"
fz-prep mnist:test "$DATA/mnist-small.tgz" -o "$T/test.npy" 2>/dev/null || fail "fz-prep test"

# --- training lowers the loss, log and progress ---
expect_exit 0 fz-train -a ae-mlp -m 3 -o "$T/ae.st" -l "$T/ae.tsv" -v "$T/test.npy" "$T/train.npy"
[ "$(grep -c '^epoch [0-9]/3 loss' "$T/err")" = 3 ] || fail "one progress line per epoch expected: $(cat "$T/err")"
[ "$(wc -l <"$T/ae.tsv")" = 4 ] || fail "log should have a header and 3 rows"
awk -F'\t' 'NR == 2 { first = $2 } NR == 4 { last = $2 } END { exit !(last < 0.9 * first) }' "$T/ae.tsv" ||
    fail "training loss did not fall: $(cut -f1-2 "$T/ae.tsv" | tr '\n' ' ')"
awk -F'\t' 'NR > 1 && $5 == "" { exit 1 }' "$T/ae.tsv" || fail "validation loss missing in the log"

# --- resume: 2 epochs + 1 resumed epoch == 3 epochs, byte for byte ---
expect_exit 0 fz-train -a vae-mlp -r 1e-3 -m 3 -s 5 -o "$T/full.st" "$T/train.npy"
expect_exit 0 fz-train -a vae-mlp -r 1e-3 -m 2 -s 5 -o "$T/part.st" "$T/train.npy"
expect_exit 0 fz-train -a vae-mlp -r 1e-3 -m 3 -s 5 -R -o "$T/part.st" "$T/train.npy"
grep -q 'epochs 3..3' "$T/err" || fail "resume did not start at epoch 3: $(cat "$T/err")"
cmp -s "$T/full.st" "$T/part.st" || fail "resumed run differs from the uninterrupted one"
# resuming a finished run trains nothing and leaves the file alone
cp "$T/full.st" "$T/again.st"
expect_exit 0 fz-train -a vae-mlp -r 1e-3 -m 3 -s 5 -R -o "$T/again.st" "$T/train.npy"
cmp -s "$T/full.st" "$T/again.st" || fail "resuming a finished run changed the model"
# a different seed gives a different model
expect_exit 0 fz-train -a vae-mlp -r 1e-3 -m 1 -s 6 -o "$T/other.st" "$T/train.npy"
cmp -s "$T/other.st" "$T/part.st" && fail "seed has no effect"

# --- encode: latent fields, pass-through, eval mode is deterministic ---
fz-encode -i "$T/full.st" "$T/test.npy" >"$T/lat.npy" || fail "fz-encode"
fz-info -n 0 "$T/lat.npy" >"$T/info" || fail "fz-info on latents"
grep -q '^rows: *100$' "$T/info" || fail "encode rows: $(cat "$T/info")"
for f in id label mu logvar z; do grep -qE "^  $f " "$T/info" || fail "encode: no field $f"; done
grep -qE '^  x ' "$T/info" && fail "encode kept the input field without -k"
grep -qE '^  mu +f4 +\(2,\)' "$T/info" || fail "mu shape: $(grep '^  mu' "$T/info")"
fz-encode -i "$T/full.st" "$T/test.npy" | cmp -s - "$T/lat.npy" || fail "encoding is not deterministic"
fz-encode -i "$T/full.st" -S -s 3 -k "$T/test.npy" | fz-info -H >"$T/info" || fail "encode -S -k"
grep -qE '^  x ' "$T/info" || fail "-k did not keep x"
fz-encode -i "$T/ae.st" -d label "$T/test.npy" | fz-info -H >"$T/info"
grep -qE '^  label ' "$T/info" && fail "-d label did not drop label"
grep -qE '^  logvar ' "$T/info" && fail "an autoencoder has no logvar"

# --- decode: reconstructions, generators ---
fz-decode -i "$T/full.st" "$T/lat.npy" | fz-info -n 0 >"$T/info" || fail "fz-decode"
grep -qE '^  xhat +f4 +\(1, 28, 28\) +[0-9.e-]+ +[0-9.e-]+ ' "$T/info" || fail "xhat: $(grep xhat "$T/info")"
grep -qE '^  label ' "$T/info" || fail "decode did not pass label through"
fz-decode -i "$T/full.st" --grid 15 | fz-info -n 0 >"$T/info"
grep -q '^rows: *225$' "$T/info" || fail "15x15 grid rows"
grep -qE '^  z +f4 +\(2,\) +-1.64485 +1.64485' "$T/info" || fail "grid range: $(grep '^  z' "$T/info")"
fz-decode -i "$T/full.st" --line 0,0:1,1 --steps 11 | fz-info -n 0 | grep -q '^rows: *11$' || fail "line"
fz-decode -i "$T/full.st" --path 0,0:1,1:2,0 --steps 5 | fz-info -n 0 | grep -q '^rows: *9$' || fail "path"
fz-decode -i "$T/full.st" --between 0,1 --steps 11 "$T/lat.npy" | fz-info -n 11 >"$T/info"
grep -q '^rows: *11$' "$T/info" || fail "between"
fz-decode -i "$T/full.st" --sample 7 -s 1 | fz-info -n 0 | grep -q '^rows: *7$' || fail "sample"

# --- a 30-feature table trains with an MLP description as well ---
fz-prep "$DATA/wdbc-small.csv" --label-col diagnosis --standardize -o "$T/wdbc.npy" 2>/dev/null || fail "prep wdbc"
expect_exit 0 fz-train -a vae-mlp --loss mse -B 8 -m 2 -o "$T/wdbc.st" "$T/wdbc.npy"
fz-encode -i "$T/wdbc.st" "$T/wdbc.npy" | fz-decode -i "$T/wdbc.st" | fz-info -H | grep -qE '^  xhat +f4 +\(30,\)' ||
    fail "wdbc reconstruction shape"

# --- the conv network runs (a few rows, one epoch) and denoising ---
fz-prep mnist:train "$DATA/mnist-small.tgz" --take 24 -o "$T/tiny.npy" 2>/dev/null
expect_exit 0 fz-train -a vae-conv -B 8 -m 1 -o "$T/conv.st" "$T/tiny.npy"
fz-encode -i "$T/conv.st" "$T/tiny.npy" | fz-info -n 0 | grep -q '^rows: *24$' || fail "vae-conv encode"
expect_exit 0 fz-train -a ae-mlp --denoise flip:0.1 -m 1 -o "$T/dn.st" "$T/train.npy"

# --- the fuzzy CVAE: masked labels train a fuzzy layer on mu ---
fz-mask -a "$FZ_ROOT/pipelines/loopopen.txt" "$T/train.npy" >"$T/masked.npy" || fail "fz-mask"
expect_exit 0 fz-train -a fcvae-mlp -m 4 -r 5e-3 -l "$T/fc.tsv" -o "$T/fc.st" "$T/masked.npy"
grep -qE '^epoch 4/4 .* fuzzy [0-9.e-]+ acc [0-9.]+%' "$T/err" || fail "no fuzzy loss or accuracy: $(cat "$T/err")"
awk -F'\t' 'NR == 2 { a = $12 } NR == 5 { b = $12 } END { exit !(b < a) }' "$T/fc.tsv" ||
    fail "the fuzzy loss did not fall: $(cut -f1,12,13 "$T/fc.tsv" | tr '\n' ' ')"
"$PY" - "$T/fc.st" <<'PY' || fail "fuzzy model file"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
meta = h["__metadata__"]
assert "fuzzy = gauss(12)" in meta["arch"], meta["arch"]   # 10 digits + loop/open
assert json.loads(meta["outputs"])[-2:] == ["loop", "open"], meta["outputs"]
assert h["fuzzy.centers"]["shape"] == [12, 2], h["fuzzy.centers"]
assert h["fuzzy.ref_scores"]["shape"] == [1001], h["fuzzy.ref_scores"]
PY
# freezing: the centres stay put while the rest trains; two steps per batch run
expect_exit 0 fz-train -i "$T/fc.st" --freeze centers -m 2 -r 5e-3 -o "$T/frz.st" "$T/masked.npy"
"$PY" - "$T/fc.st" "$T/frz.st" <<'PY' || fail "--freeze centers"
import json, struct, sys
def raw(p, name):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    o = h[name]["data_offsets"]
    return b[8 + n + o[0]:8 + n + o[1]]
assert raw(sys.argv[1], "fuzzy.centers") == raw(sys.argv[2], "fuzzy.centers")
assert raw(sys.argv[1], "fuzzy.scales") != raw(sys.argv[2], "fuzzy.scales")
assert raw(sys.argv[1], "encoder.1.weight") != raw(sys.argv[2], "encoder.1.weight")
PY
expect_exit 0 fz-train -a fcvae-mlp --two-step -m 1 -o "$T/two.st" "$T/masked.npy"
expect_exit 2 fz-train -a fcvae-mlp --freeze everything -o "$T/x.st" "$T/masked.npy"

# the fuzzy layer must match the stream's outputs; a redraw probability is honoured
fz-mask "$T/train.npy" >"$T/ten.npy"
expect_exit 1 fz-train -i "$T/fc.st" -m 1 -o "$T/fc2.st" "$T/ten.npy"
expect_err 'target and mask have 10 outputs, the model.s fuzzy layer 12'
fz-mask -a "$FZ_ROOT/pipelines/loopopen.txt" --redraw 0.5 "$T/train.npy" >"$T/redraw.npy"
expect_exit 0 fz-train -a fcvae-mlp -m 1 -o "$T/rd.st" "$T/redraw.npy"
"$PY" -c "
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
t = json.loads(json.loads(b[8:8 + n])['__metadata__']['train'])
assert t['redraw'] == 0.5, t" "$T/rd.st" || fail "mask_redraw not honoured"

# --circle-order: index (the default) or data, the order of the untrained encoder's class
# means round their centre; kept in the model's training settings, and a resumed run keeps
# the order its terms started in
expect_exit 0 fz-train -a fcvae-mlp -m 1 -s 3 -o "$T/ci.st" "$T/ten.npy"
expect_exit 0 fz-train -a fcvae-mlp -m 1 -s 3 --circle-order index -o "$T/ci2.st" "$T/ten.npy"
cmp -s "$T/ci.st" "$T/ci2.st" || fail "--circle-order index is not the default"
expect_exit 0 fz-train -a fcvae-mlp -m 1 -s 3 --circle-order data -o "$T/cd.st" "$T/ten.npy"
order=$(sed -n 's/^fz-train: class terms on the circle in the order of the untrained codes: //p' "$T/err")
[ "$(echo "$order" | tr ' ' '\n' | sort -n | tr '\n' ' ')" = "0 1 2 3 4 5 6 7 8 9 " ] ||
    fail "data order should name each class once: '$order' ($(cat "$T/err"))"
cp "$T/cd.st" "$T/cdr.st"
expect_exit 0 fz-train -m 2 -R -o "$T/cdr.st" "$T/ten.npy"
expect_exit 0 fz-train -a fcvae-mlp -m 1 --circle-order data -o "$T/cd12.st" "$T/masked.npy"
grep -q 'order of the untrained codes: .*; 2 attribute terms over their classes' "$T/err" ||
    fail "data order with attributes: $(cat "$T/err")"
"$PY" - "$T/ci.st" "$T/cd.st" "$T/cdr.st" <<'PY' || fail "--circle-order in the model's training settings"
import json, struct, sys
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    o = h["fuzzy.centers"]["data_offsets"]
    return json.loads(h["__metadata__"]["train"]), b[8 + n + o[0]:8 + n + o[1]]
(ti, ci), (td, cd), (tr, _) = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
assert ti["circle_order"] == "index", ti
assert td["circle_order"] == "data", td
assert tr["circle_order"] == "data", tr
assert ci != cd, "the data order left the centres where the index order puts them"
PY
fz-info "$T/cd.st" | sed -n '/^training:/,/^trained:/p' | grep -q ' circle_order data$' ||
    fail "fz-info does not report the circle order"
expect_exit 2 fz-train -a fcvae-mlp --circle-order sideways -o "$T/x.st" "$T/ten.npy"
expect_err '^fz-train: --circle-order: expected index or data$'
expect_exit 2 fz-train -a vae-mlp --circle-order data -o "$T/x.st" "$T/train.npy"
expect_err 'circle-order data: the model has no fuzzy layer started on a circle'
expect_exit 1 fz-train -a fcvae-mlp --circle-order data -o "$T/x.st" "$T/train.npy"
expect_err 'stream has 0 outputs with target and mask'
[ -e "$T/x.st" ] && fail "a refused run wrote a model"
fz-train -h | grep -q -- '--circle-order index|data' || fail "-h does not list --circle-order"

# --- confidence: how many standard deviations from the training latents' Gaussian ---
fz-encode -i "$T/full.st" -c diag "$T/train.npy" >"$T/conf.npy" || fail "fz-encode -c diag"
"$PY" - "$T/conf.npy" <<'PY' || fail "sigmas of the training data are not standardised"
import sys
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
import numpy as np
from numpy.lib import format as npf
f = open(sys.argv[1], "rb")
rows = []
while f.peek(1):
    v = npf.read_magic(f)
    shape, _, dt = npf.read_array_header_1_0(f)
    a = np.frombuffer(f.read(int(np.prod(shape)) * dt.itemsize), dt)
    if a.dtype.names: rows.append(a)
s = np.concatenate(rows)["sigmas"].astype(np.float64)
assert np.allclose(s.mean(0), 0, atol=1e-3), s.mean(0)
assert np.allclose(s.std(0), 1, atol=1e-3), s.std(0)
PY
expect_exit 2 fz-encode -i "$T/full.st" -c both "$T/test.npy"

# --- the VAE-plus-classifier and its training strategies ---
fz-mask "$T/wdbc.npy" >"$T/wdbcm.npy" || fail "fz-mask wdbc"
# The learning rate falls to 0 over the 40 epochs, so the last epochs settle instead of
# moving from batch to batch; the fit is judged in evaluation mode, on the model written.
expect_exit 0 fz-train -a vaec-mlp --loss mse -B 8 -m 40 -r 1e-2 --schedule cos:40:0 --strategy classifier -o "$T/cls.st" "$T/wdbcm.npy"
acc=$(fz-fuzzy -i "$T/cls.st" "$T/wdbcm.npy" | fz-eval --classes --tsv | awk -F'\t' '$1 == "accuracy" { print $2 }')
awk -v a="$acc" 'BEGIN { exit !(a >= 0.975) }' ||
    fail "the classifier did not fit 40 rows: accuracy ${acc:-missing} in evaluation mode ($(tail -n 1 "$T/err"))"
expect_exit 0 fz-train -i "$T/cls.st" --strategy head -m 3 -r 1e-2 -o "$T/head.st" "$T/wdbcm.npy"
"$PY" - "$T/cls.st" "$T/head.st" <<'PY' || fail "strategy head changed the encoder, or not the head"
import json, struct, sys
import numpy as np
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    h.pop("__metadata__")
    return {k: np.frombuffer(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], "u1")
            for k, v in h.items()}
a, b = load(sys.argv[1]), load(sys.argv[2])
for k in a:
    if k.startswith(("encoder.", "decoder.")) and "num_batches" not in k:
        assert (a[k] == b[k]).all(), k
assert any((a[k] != b[k]).any() for k in a if k.startswith("head.")), "head did not train"
PY
expect_exit 2 fz-train -a vaec-mlp --strategy nothing -o "$T/x.st" "$T/wdbcm.npy"

# --- bad input: one line, exit 1 ---
expect_exit 1 fz-encode -i "$T/wdbc.st" "$T/test.npy"
expect_err 'has shape \(1, 28, 28\), the model .* takes \(30,\)'
head -c 3000 "$T/full.st" >"$T/cut.st"
expect_exit 1 fz-encode -i "$T/cut.st" "$T/test.npy"
expect_err 'cut.st'
cp "$T/full.st" "$T/flip.st"
# flip every bit of one byte of the tensor data (writing a fixed byte may leave it unchanged)
off=$(( $(stat -c %s "$T/flip.st") - 100 ))
byte=$(od -An -tu1 -j "$off" -N1 "$T/flip.st" | tr -d ' ')
printf "\\$(printf %03o $(( byte ^ 255 )))" | dd of="$T/flip.st" bs=1 seek="$off" conv=notrunc 2>/dev/null
cmp -s "$T/full.st" "$T/flip.st" && fail "the model was not changed"
expect_exit 1 fz-decode -i "$T/flip.st" --grid 2
expect_err 'checksum'
head -c 5000 "$T/test.npy" >"$T/cut.npy"
expect_exit 1 fz-encode -i "$T/full.st" "$T/cut.npy"
expect_err 'cut.npy: truncated chunk'
"$PY" - "$T/nan.npy" <<'PY' || fail "could not write the NaN stream"
import sys, numpy as np
a = np.zeros(10, [("id", "<u8"), ("x", "<f4", (1, 28, 28))])
a["id"] = np.arange(10) + 100
a["x"][3, 0, 5, 5] = np.nan
np.save(open(sys.argv[1], "wb"), a)
PY
expect_exit 1 fz-train -a ae-mlp -m 1 -o "$T/nan.st" "$T/nan.npy"
expect_err 'row with id 103 has a non-finite value'
[ -e "$T/nan.st" ] && fail "a failed run left a model file"
expect_exit 0 fz-train -a ae-mlp -m 1 --drop-nonfinite -o "$T/nan.st" "$T/nan.npy"
grep -q 'dropped 1 training rows' "$T/err" || fail "dropped rows not counted: $(cat "$T/err")"
# a diverging run stops with a clear message and keeps the last good checkpoint
expect_exit 0 fz-train -a vae-mlp -m 1 -o "$T/v1.st" "$T/train.npy"
expect_exit 1 fz-train -i "$T/v1.st" --optim sgd -r 10 --recon-weight 1e6 -m 5 -o "$T/div.st" "$T/train.npy"
grep -qE 'loss became (NaN|infinite)|gradient became non-finite' "$T/err" || fail "no divergence message: $(cat "$T/err")"
fz-encode -i "$T/div.st" "$T/test.npy" >/dev/null || fail "checkpoint after divergence is not loadable"

# --- usage errors: exit 2 ---
expect_exit 2 fz-train "$T/train.npy"
expect_err 'no output model'
expect_exit 2 fz-train -o "$T/x.st" -m zero "$T/train.npy"
expect_exit 2 fz-encode "$T/test.npy"
expect_exit 2 fz-decode -i "$T/full.st" --line 0,0:1
expect_exit 0 fz-train -h
expect_exit 0 fz-encode -h
expect_exit 0 fz-decode -h
exit 0
