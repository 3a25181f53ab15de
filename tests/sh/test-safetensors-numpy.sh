# safetensors files written by fz read correctly in NumPy with the reader documented in
# lib/safetensors.h (taken from the header itself, so the documentation is what is tested),
# and files written by Python's standard library load in fz. Also: a full disk leaves the
# old file in place.
. "$FZ_ROOT/tests/sh/lib.sh"

ST="$FZ_TESTS/test_safetensors"
[ -x "$ST" ] || fail "$ST not built"
$PY -c 'import numpy' 2>/dev/null || skip "python3 numpy not installed"

# The reader from the comment in safetensors.h, " *   " stripped.
sed -n '/^ \*   import json, struct/,/^ \*       return t, meta/p' "$FZ_ROOT/lib/safetensors.h" |
    sed 's/^ \*   //' >"$T/reader.py"
[ "$(wc -l <"$T/reader.py")" -ge 8 ] || fail "reader not found in safetensors.h"

# 1. fz writes, NumPy reads.
"$ST" write "$T/m.st" || fail "writing the sample model"
cat "$T/reader.py" - >"$T/check.py" <<'EOF'
import sys, zlib
t, meta = load_safetensors(sys.argv[1])
w = np.arange(12, dtype=np.float32).reshape(3, 4) * np.float32(0.25) - np.float32(1)
assert t['enc.0.weight'].dtype == np.float32 and t['enc.0.weight'].shape == (3, 4)
assert np.array_equal(t['enc.0.weight'], w), t['enc.0.weight']
assert np.array_equal(t['enc.0.bias'], np.float32(1) / np.arange(1, 5, dtype=np.float32))
assert np.array_equal(t['d'], 1.0 / 3.0 + np.arange(4.0).reshape(2, 2))
assert t['step'].shape == () and int(t['step']) == 1234567890123
assert t['i'].tolist() == [-7, 2147483647]
assert t['mask'].tolist() == [0, 1, 2, 254, 255]
assert t['empty'].shape == (0, 3)
assert meta['arch'] == '3-4'
assert meta['quote'] == 'he said "hi"\n\tand left \\ /'
assert meta['unicode'] == '\u00fcn\u00efc\u00f8d\u00e9 \u20ac \U0001F600'
b = open(sys.argv[1], 'rb').read()
n = int.from_bytes(b[:8], 'little')
assert (8 + n) % 8 == 0, n
assert meta['fz_checksum'] == 'crc32:%08x' % zlib.crc32(b[8 + n:]), meta['fz_checksum']
print('ok')
EOF
[ "$($PY "$T/check.py" "$T/m.st")" = ok ] || fail "NumPy reader disagrees with the writer"

# 2. Python's standard library writes (no padding, no checksum, odd offsets), fz reads.
cat >"$T/write.py" <<'EOF'
import json, struct, sys
import numpy as np
u = np.array([7, 8, 9], dtype=np.uint8)
x = np.array([[1.5, -2.0], [3.25, 1e-3]], dtype='<f4')
k = np.array([-1, 2**40], dtype='<i8')
h = {'u': {'dtype': 'U8', 'shape': [3], 'data_offsets': [0, 3]},
     'x': {'dtype': 'F32', 'shape': [2, 2], 'data_offsets': [3, 19]},
     'k': {'dtype': 'I64', 'shape': [2], 'data_offsets': [19, 35]},
     '__metadata__': {'format': 'pt', 'note': 'caf\u00e9'}}
if len(sys.argv) > 2:  # corrupt: make x overlap u
    h['x']['data_offsets'] = [2, 18]
s = json.dumps(h).encode()
with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<Q', len(s)) + s + u.tobytes() + x.tobytes() + k.tobytes())
EOF
$PY "$T/write.py" "$T/py.st" || fail "python writer"
"$ST" dump "$T/py.st" >"$T/dump" 2>"$T/err" || fail "loading the python file: $(cat "$T/err")"
cat >"$T/want" <<'EOF'
u U8 (3) 7 8 9
x F32 (2, 2) 1.5 -2 3.25 0.00100000005
k I64 (2) -1 1099511627776
meta format=pt
meta note=café
EOF
diff "$T/want" "$T/dump" >&2 || fail "dump of the python file differs"
expect_exit 1 "$ST" verify "$T/py.st"
expect_err "py.st: no fz_checksum in the metadata"

$PY "$T/write.py" "$T/bad.st" overlap
expect_exit 1 "$ST" dump "$T/bad.st"
expect_err "bad.st: tensor 'x' \(bytes \[2, 18\)\) overlaps tensor 'u' \(bytes \[0, 3\)\)"

# 3. A flipped bit in the data is caught by the checksum.
$PY - "$T/m.st" "$T/flip.st" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
b[-3] ^= 4
open(sys.argv[2], 'wb').write(b)
EOF
expect_exit 1 "$ST" verify "$T/flip.st"
expect_err "flip.st: checksum mismatch \(header crc32:[0-9a-f]{8}, data crc32:[0-9a-f]{8}\), file is corrupt"
expect_exit 0 "$ST" verify "$T/m.st"

# 4. Disk full (a tiny tmpfs; needs root and mount): the old file stays, no temp file.
full="$T/full"
mkdir "$full"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=64k fz-test "$full" 2>/dev/null; then
    trap 'umount "$full" 2>/dev/null; rm -rf "$T"' EXIT
    cp "$T/m.st" "$full/m.st"
    dd if=/dev/zero of="$full/fill" bs=4k 2>/dev/null
    expect_exit 1 "$ST" write "$full/m.st"
    expect_err "^test_safetensors: $full/m.st: No space left on device$"
    cmp -s "$T/m.st" "$full/m.st" || fail "the old file changed after a failed write"
    ls "$full" | grep -q '\.tmp\.' && fail "temporary file left behind: $(ls "$full")"
    rm "$full/fill"
    expect_exit 0 "$ST" write "$full/m.st"
    umount "$full"
else
    echo "note: disk-full case not run (needs root and tmpfs)" >&2
fi
exit 0
