#!/usr/bin/env bash
# Every tool that reads a stream, on broken or hostile streams: cut at each part (nothing,
# the magic, the header, after the metadata, inside the rows), a header claiming 10^12
# rows, a field of 2^40 elements (structured and plain arrays), NaN and infinity in x, and
# a reader that closes the pipe early. A broken stream is exit 1 with one line naming the
# file, after little memory; a closed pipe is a quiet success.
. "$(dirname "$0")/lib.sh"
export OPENBLAS_NUM_THREADS=1
$PY -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
TIME=/usr/bin/time
[ -x $TIME ] || TIME=

fz-prep --label-col diagnosis --standardize "$DATA/wdbc-small.csv" -o "$T/w.npy" || fail "fz-prep"
fz-mask -o "$T/wm.npy" "$T/w.npy" || fail "fz-mask"
fz-train -q -a fcvae-mlp -m 1 -s 1 -o "$T/w.st" "$T/wm.npy" || fail "fz-train"
fz-encode -k -i "$T/w.st" "$T/w.npy" -o "$T/wz.npy" || fail "fz-encode"
fz-fuzzy -i "$T/w.st" "$T/w.npy" -o "$T/wf.npy" || fail "fz-fuzzy"

# readers: the commands reading a stream, one per line, {} standing for the input
readers() {
    cat <<EOF
fz-info {}
fz-mask {}
fz-encode -i $T/w.st {}
fz-fuzzy -i $T/w.st {}
fz-train -q -m 1 -o $T/t.st {}
EOF
}
# broken FILE PATTERN CMD...: exit 1, one line naming FILE and matching PATTERN, and (with
# GNU time) a peak RSS under 200 MB
broken() {
    local file=$1 pat=$2; shift 2
    if [ -n "$TIME" ]; then
        $TIME -f '%M' -o "$T/rss" "$@" >/dev/null 2>"$T/err"
    else
        "$@" >/dev/null 2>"$T/err"
    fi
    local rc=$?
    [ -n "$TIME" ] && { grep -v '^Command exited' "$T/err" >"$T/err2"; mv "$T/err2" "$T/err"; }
    [ $rc = 1 ] || fail "$*: exit $rc, expected 1 ($(head -c 300 "$T/err"))"
    expect_err "^${1%% *}: .*$(basename "$file"): $pat"
    [ -z "$TIME" ] || [ "$(tail -n 1 "$T/rss")" -lt 200000 ] ||
        fail "$*: peak RSS $(tail -n 1 "$T/rss") kB"
}
run_all() { # FILE PATTERN: every reader on FILE is broken() with PATTERN
    local file=$1 pat=$2 cmd
    while read -r cmd; do
        # shellcheck disable=SC2086
        broken "$file" "$pat" ${cmd//\{\}/$file}
    done < <(readers)
}

# --- truncation: every part of a stream ---
second=$(grep -abo $'\x93NUMPY' "$T/w.npy" | sed -n 2p | cut -d: -f1)
size=$(stat -c %s "$T/w.npy")
cuts=0
for cut in 0 5 9 40 "$second" $((second + 30)) $((size - 1)); do
    head -c "$cut" "$T/w.npy" >"$T/cut$cut.npy"
    case $cut in
    0) pat="empty stream" ;;
    "$second") pat="empty stream \(no row chunk after the metadata\)" ;;
    $((size - 1))) pat="truncated chunk at byte [0-9]+ \(expected [0-9]+ bytes of rows, got [0-9]+\)" ;;
    *) pat="truncated array header at byte [0-9]+ \(expected [0-9]+ bytes, got [0-9]+\)" ;;
    esac
    run_all "$T/cut$cut.npy" "$pat"
    cuts=$((cuts + 1))
done
# the tools reading other fields, cut inside their rows
for f in wz wf; do
    s=$(stat -c %s "$T/$f.npy")
    head -c $((s - 1)) "$T/$f.npy" >"$T/${f}cut.npy"
done
broken "$T/wzcut.npy" "truncated chunk" fz-decode -i "$T/w.st" "$T/wzcut.npy"
broken "$T/wfcut.npy" "truncated chunk" fz-eval "$T/wfcut.npy"

# --- headers claiming too much: 10^12 rows, 2^40 elements in a row ---
"$PY" - "$T" <<'EOF' || fail "cannot write the crafted headers"
import struct, sys
def npy(descr, shape):
    h = "{'descr': %s, 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    h += " " * (63 - (10 + len(h)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode()
d, W = sys.argv[1], "[('id', '<u8'), ('label', '<i4'), ('x', '<f4', (30,))]"
open(d + "/rows.npy", "wb").write(npy(W, "(1000000000000,)") + bytes(1320))
open(d + "/plainrows.npy", "wb").write(npy("'<f4'", "(1000000000000, 30)") + bytes(1320))
open(d + "/field.npy", "wb").write(npy("[('id', '<u8'), ('x', '<f4', (1048576, 1048576))]", "(1,)") + bytes(4096))
open(d + "/plainfield.npy", "wb").write(npy("'<f4'", "(1, 1099511627776)") + bytes(4096))
EOF
run_all "$T/rows.npy" "array at byte 0 claims 1000000000000 rows \(at most 4294967296 per chunk\)"
run_all "$T/plainrows.npy" "array at byte 0 claims 1000000000000 rows"
run_all "$T/field.npy" "array at byte 0: field 'x': row larger than 1073741824 bytes"
run_all "$T/plainfield.npy" "field 'x': dimension 0 is 1099511627776 \(row larger than 1073741824 bytes\)"

# --- NaN and infinity in x: counted by fz-info, refused by the models unless dropped ---
"$PY" - "$FZ_ROOT/tests/sh" "$T" <<'EOF' || fail "cannot write the NaN stream"
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from stream_numpy import read_fz
d = sys.argv[2]
with open(d + "/wm.npy", "rb") as f:
    parts = list(read_fz(f))
meta, r = parts[0][0], np.concatenate([a for _, a in parts]).copy()
r["x"][3, 7] = np.nan
r["x"][5, 0] = np.inf
with open(d + "/nan.npy", "wb") as f:
    np.save(f, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    np.save(f, r)
EOF
fz-info "$T/nan.npy" >"$T/info" || fail "fz-info on NaN"
grep -Eq '^  x +f4 +\(30,\) .* 2$' "$T/info" || fail "fz-info does not count 2 non-finite values: $(grep '^  x' "$T/info")"
broken "$T/nan.npy" "row 3 has a non-finite value in 'x' at index 7" fz-encode -i "$T/w.st" "$T/nan.npy"
broken "$T/nan.npy" "row 3 has a non-finite value in 'x' at index 7" fz-fuzzy -i "$T/w.st" "$T/nan.npy"
broken "$T/nan.npy" "row with id 3 has a non-finite value in 'x' at index 7" \
    fz-train -q -m 1 -o "$T/n.st" "$T/nan.npy"
expect_exit 0 fz-train -q -m 1 --drop-nonfinite -o "$T/n.st" "$T/nan.npy"
expect_err "dropped 2 training rows with NaN or infinity"

# --- a reader that goes away: quiet success ---
for _ in $(seq 40); do cat "$T/w.npy"; done >"$T/w40.npy"
fz-encode -k -i "$T/w.st" "$T/w40.npy" -o "$T/wz40.npy" || fail "fz-encode 40"
closed=0
while read -r cmd; do
    # shellcheck disable=SC2086
    ${cmd//\{\}/$T/w40.npy} 2>"$T/err" | head -c 100 >/dev/null
    rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] && [ ! -s "$T/err" ] || fail "$cmd | head -c 100: exit $rc, stderr '$(head -c 200 "$T/err")'"
    closed=$((closed + 1))
done <<EOF
fz-prep --label-col diagnosis $DATA/wdbc-small.csv
fz-info -n 500 -w 100 {}
fz-mask {}
fz-encode -k -i $T/w.st {}
fz-fuzzy -i $T/w.st {}
fz-decode -i $T/w.st $T/wz40.npy
fz-decode -i $T/w.st --sample 5000
EOF
echo "cuts: $cuts positions x $(readers | wc -l) readers, crafted headers: 4, closed pipes: $closed"
