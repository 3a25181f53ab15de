#!/usr/bin/env bash
# fz-info: options, usage errors, bad streams, closed pipes.
. "$(dirname "$0")/lib.sh"
"$FZ_TESTS/test_stream" write "$T/s.npy" 2>/dev/null || fail "could not write the sample stream"

expect_exit 0 fz-info -h
grep -q '^usage: fz-info' "$T/out" || fail "-h does not start with usage"
expect_exit 2 fz-info -z
expect_err '^usage: fz-info'
expect_exit 2 fz-info -n abc
expect_err "fz-info: -n: 'abc' is not an integer"

expect_exit 0 fz-info -n 1 "$T/s.npy"
grep -q '^rows: *23$' "$T/out" || fail "rows"
[ "$(grep -c '^  id=' "$T/out")" = 1 ] || fail "-n 1 printed $(grep -c '^  id=' "$T/out") rows"
grep -qE '^  x +f4 +\(1, 2, 3\) +0 +16 ' "$T/out" || fail "x stats: $(grep '^  x ' "$T/out")"
expect_exit 0 fz-info -H - <"$T/s.npy"
grep -q '^rows:' "$T/out" && fail "-H must not scan rows"

# -t: the rows as TSV, one column per value; the same values as the summary's statistics.
expect_exit 0 fz-info -t id,x "$T/s.npy"
[ "$(head -n 1 "$T/out")" = "$(printf 'id\tx[0]\tx[1]\tx[2]\tx[3]\tx[4]\tx[5]')" ] ||
    fail "-t header: $(head -n 1 "$T/out")"
[ "$(wc -l <"$T/out")" = 24 ] || fail "-t printed $(wc -l <"$T/out") lines, expected 24"
awk -F'\t' 'NR > 1 { for (i = 2; i <= 7; i++) { if (min == "" || $i < min) min = $i; if ($i > max) max = $i } }
             END { exit !(min == 0 && max == 16) }' "$T/out" || fail "-t values outside the summary's 0 to 16"
fz-info -t x - <"$T/s.npy" | cmp -s - <(cut -f2- "$T/out") || fail "-t x differs from the x columns of -t id,x"
expect_exit 1 fz-info -t id,nope "$T/s.npy"
expect_err "s.npy: no field 'nope'"
expect_exit 2 fz-info -t id "$T/s.npy" "$T/s.npy"
expect_err "-t takes one stream"

# Bad streams: one line naming the file, exit 1.
expect_exit 1 fz-info "$T/missing.npy"
expect_err "missing.npy: No such file"
echo "not a stream at all" >"$T/text"
expect_exit 1 fz-info "$T/text"
expect_err "text: bad magic at byte 0"
head -c 500 "$T/s.npy" >"$T/cut.npy"
expect_exit 1 fz-info -n 0 "$T/cut.npy"
grep -q 'cut.npy: truncated chunk at byte [0-9]* (expected [0-9]* bytes of rows, got [0-9]*)' "$T/err" ||
    fail "truncation message: $(cat "$T/err")"
: >"$T/empty"
expect_exit 1 fz-info "$T/empty"
expect_err "empty stream"

# Models: a tiny fuzzy model and a tiny convolutional one, each described; the counts it
# prints agree with the tensors of the file as Python's json and struct read them.
export OPENBLAS_NUM_THREADS=1
fz-prep --take 64 mnist:train "$DATA/mnist-small.tgz" 2>/dev/null |
    fz-mask -a "$FZ_ROOT/pipelines/loopopen.txt" >"$T/m64.npy" || fail "fz-prep | fz-mask"
fz-train -q -a fcvae-mlp -m 1 -s 1 -o "$T/fc.st" "$T/m64.npy" || fail "fz-train fcvae-mlp"
arch='kind = ae; latent = 2; encoder = conv2d(4,3,2,1) relu bn flatten linear(z); decoder = linear(in) sigmoid'
fz-train -q -a "$arch" -B 16 -m 1 -s 1 -o "$T/conv.st" "$T/m64.npy" || fail "fz-train conv"
cat >"$T/st.py" <<'PY'
import json, math, re, struct, sys, zlib
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
meta = h.pop('__metadata__')
size = lambda v: math.prod(v['shape'])
par = re.compile(r'^((encoder|decoder|head)\.\d+\.(weight|bias)|'
                 r'fuzzy\.(centers|scales|lower|b_raw|S|t|consequents))$')
print('params', sum(size(v) for k, v in h.items() if par.match(k)))
print('buffers', sum(size(v) for k, v in h.items() if k.endswith(('.running_mean', '.running_var'))))
print('tensors', len(h), len(b) - 8 - n)
print('crc', 'crc32:%08x' % zlib.crc32(b[8 + n:]), meta['epoch'], meta['step'])
PY
for m in fc conv; do
    expect_exit 0 fz-info "$T/$m.st"
    [ ! -s "$T/err" ] || fail "$m: stderr: $(cat "$T/err")"
    $PY "$T/st.py" "$T/$m.st" >"$T/want" || fail "$m: reading the file in Python"
    tr -d , <"$T/out" >"$T/got"
    read -r _ p < <(grep '^params' "$T/want")
    grep -q "^parameters: $p floats $((4 * p)) bytes" "$T/got" ||
        fail "$m: printed '$(grep '^param' "$T/got")', the file's weights and biases hold $p"
    read -r _ nb < <(grep '^buffers' "$T/want")
    grep -q "^buffers: *$nb floats" "$T/got" || fail "$m: buffers: $(grep '^buffers' "$T/got"), expected $nb"
    read -r _ nt data < <(grep '^tensors' "$T/want")
    grep -q "^file: *$nt tensors $data bytes" "$T/got" || fail "$m: file line: $(grep '^file' "$T/got")"
    read -r _ crc ep step < <(grep '^crc' "$T/want")
    grep -q "^checksum: *$crc of the tensor bytes, verified$" "$T/out" || fail "$m: checksum line"
    grep -q "^trained: *epoch $ep, step $step$" "$T/out" || fail "$m: trained line"
    # the layers' counts add up to their net's, and the nets' and the fuzzy layer's to p
    awk -v p="$p" '/^(encoder|decoder|head):/ { net = $1; tot[net] = $(NF - 1); sum += $(NF - 1) }
        /^fuzzy:/ && $2 != "none" { sum += $(NF - 1) }
        /^ +[0-9]+  / { layers[net] += $NF }
        END { for (k in tot) if (tot[k] != layers[k]) exit 1; exit sum != p }' "$T/got" ||
        fail "$m: per-layer and per-net parameter counts do not add up to $p"
    # training memory: 4 x the parameter bytes; the lines add up to the total
    grep -q "^  4 x parameters *$((16 * p)) bytes" "$T/got" || fail "$m: 4 x parameters"
    awk '/^  4 x parameters / { s += $4 } /^  largest workspace / { s += $3 }
         /^  activations / { s += $2 } /^  total / { t = $2 }
         END { exit !(t == s && t > 0) }' "$T/got" || fail "$m: memory lines do not add up"
done
fz-info "$T/fc.st" >"$T/out"
grep -q '^fuzzy: *gauss, 12 terms (12 active) on 2 latent dimensions' "$T/out" ||
    fail "fuzzy line: $(grep '^fuzzy' "$T/out")"
grep -q '^outputs: *12: 0, 1, .*, 9, loop, open$' "$T/out" || fail "outputs: $(grep '^outputs' "$T/out")"
grep -q '^training: *preset fcvae-mlp .* batch 256 ' "$T/out" || fail "training configuration"
grep -q '^  fuzzy = gauss(12)$' "$T/out" || fail "the stored description"
fz-info "$T/conv.st" >"$T/out"
grep -q '^ *0  Conv2d k3 s2 p1 *(4, 14, 14) *40$' "$T/out" || fail "conv layer line"
grep -q '^ *2  BatchNorm2d *(4, 14, 14) *8$' "$T/out" || fail "batchnorm layer line"

# The batch of the memory figure: the stored one (16) by default; activations grow with it.
mem() { fz-info "$@" | tr -d , | awk '$1 == "training" { print $5 } /^  activations / { print $2 }' | paste -sd' '; }
read -r b16 a16 < <(mem "$T/conv.st")
read -r b48 a48 < <(mem -B 48 "$T/conv.st")
[ "$b16 $b48" = "16 48" ] || fail "batch of the memory figure: '$b16' '$b48'"
[ "$a48" = $((3 * a16)) ] || fail "activations at batch 48 ($a48) are not 3 x those at 16 ($a16)"
grep -qE '^  largest workspace *[1-9][0-9,]* bytes .*: encoder layer 0, Conv2d' "$T/out" ||
    fail "the convolution's workspace: $(grep workspace "$T/out")"
grep -q '^  largest workspace *0 bytes' <(fz-info "$T/fc.st") || fail "an MLP needs no workspace"
expect_exit 2 fz-info -B 0 "$T/fc.st"
expect_err "^fz-info: -B: "

# A stream and a model in one call; -t refuses a model.
expect_exit 0 fz-info -n 0 "$T/s.npy" "$T/fc.st"
grep -q '^rows: *23$' "$T/out" && grep -q '^model: ' "$T/out" || fail "a stream then a model"
expect_exit 1 fz-info -t id "$T/fc.st"
expect_err "fc.st: a model, not a stream"

# Broken models: exit 1, one line naming the file, never a crash.
size=$(stat -c %s "$T/fc.st")
for n in 0 5 8 9 200 $((size / 2)) $((size - 1)); do
    head -c "$n" "$T/fc.st" >"$T/cut-$n.st"
    expect_exit 1 fz-info "$T/cut-$n.st"
    expect_err "^fz-info: .*cut-$n\.st: (truncated|header length|tensor)"
done
head -c 300 "$T/fc.st" >"$T/cutmodel"
expect_exit 1 fz-info "$T/cutmodel"
expect_err "^fz-info: .*cutmodel: header length [0-9]+ exceeds the rest of the file"
flip() { # FILE OFFSET: $T/flip.st, FILE with one bit of that byte flipped
    $PY -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[int(sys.argv[2])] ^= 4
open(sys.argv[3], "wb").write(b)' "$1" "$2" "$T/flip.st" || fail "flip"
}
flip "$T/fc.st" $((size - 100))
expect_exit 1 fz-info "$T/flip.st"
expect_err "^fz-info: .*flip\.st: checksum mismatch"
n=$($PY -c 'import struct, sys; print(struct.unpack("<Q", open(sys.argv[1], "rb").read(8))[0])' "$T/fc.st")
for off in 2 9 $((8 + n / 2)) $((8 + n - 3)); do
    flip "$T/fc.st" "$off"
    fz-info "$T/flip.st" >/dev/null 2>"$T/err"
    rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 1 ] || fail "flipped byte $off: exit $rc"
    [ "$rc" = 0 ] || expect_err "^fz-info: .*flip\.st: "
done

# A closed downstream pipe is not an error.
for i in 1 2 3 4 5 6; do cat "$T/s.npy"; done >"$T/big.npy"
fz-info -n 100000 "$T/big.npy" 2>"$T/err" | head -n 1 >/dev/null
[ ! -s "$T/err" ] || fail "closed pipe printed: $(cat "$T/err")"
exit 0
