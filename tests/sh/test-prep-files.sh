#!/usr/bin/env bash
# fz-prep --files LIST: images named one per line in a file or on stdin, in list order,
# labelled by their parent folder. A list in sorted order gives the rows of the directory
# itself; a reversed list gives them reversed; errors name the list line and the path.
. "$(dirname "$0")/lib.sh"
$PY -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
IMG=$DATA/images

find "$IMG" -type f \( -name '*.png' -o -name '*.pgm' \) | LC_ALL=C sort >"$T/sorted.txt"
[ "$(wc -l <"$T/sorted.txt")" -ge 4 ] || fail "too few test images"
LC_ALL=C sort -r "$T/sorted.txt" >"$T/reversed.txt"
fz-prep "$IMG" -o "$T/dir.npy" || fail "fz-prep DIR"
fz-prep --files "$T/sorted.txt" -o "$T/sorted.npy" || fail "fz-prep --files"
fz-prep --files - <"$T/reversed.txt" >"$T/reversed.npy" || fail "fz-prep --files -"
# CR line ends and empty lines are allowed
{ echo; sed 's/$/\r/' "$T/sorted.txt"; echo; } >"$T/crlf.txt"
fz-prep --files "$T/crlf.txt" -o "$T/crlf.npy" || fail "fz-prep --files with CRLF"
# a path without a folder has no label
(cd "$IMG/7" && ls | head -n 1 | fz-prep --files - -o "$T/top.npy") || fail "fz-prep --files, no folder"

cat >"$T/chk.py" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from stream_numpy import read_fz

def load(path):
    meta, rows = {}, []
    with open(path, "rb") as f:
        for meta, a in read_fz(f):
            rows.append(a)
    return meta, np.concatenate(rows)

d = sys.argv[2]
md, dr = load(d + "/dir.npy")
ms, sr = load(d + "/sorted.npy")
mr, rr = load(d + "/reversed.npy")
mc, cr = load(d + "/crlf.npy")
mt, tr = load(d + "/top.npy")
lines = open(d + "/sorted.txt").read().split("\n")[:-1]
n = len(lines)
assert len(dr) == len(sr) == len(rr) == len(cr) == n, (len(dr), len(sr), len(rr), n)
# the sorted list is the directory: same rows, classes and normalisation
assert (sr == dr).all(), "sorted list != directory"
assert ms["classes"] == md["classes"] and ms["norm"] == md["norm"]
assert ms["source"].startswith("images:files:") and ms["source"].endswith("sorted.txt"), ms["source"]
assert mr["source"] == "images:files:<stdin>", mr["source"]
assert [p.decode() for p in sr["path"]] == lines
# the reversed list: ids follow the list, everything else is the sorted rows reversed
assert (rr["id"] == np.arange(n)).all()
for f in ("label", "x", "path"):
    assert (rr[f] == sr[f][::-1]).all(), f
assert (cr == sr).all(), "CRLF list differs"
# labels: the parent folder's name
for row in sr:
    assert md["classes"][row["label"]] == row["path"].decode().split("/")[-2]
assert len(tr) == 1 and tr["label"][0] == -1 and "classes" not in mt, (tr["label"], mt)
print("ok", n, "images")
EOF
$PY "$T/chk.py" "$FZ_ROOT/tests/sh" "$T" || fail "the rows of --files"

# errors: a missing file names the list line; a bad image; an empty list
{ head -n 2 "$T/sorted.txt"; echo "$T/nope.png"; } >"$T/bad.txt"
expect_exit 1 fz-prep --files "$T/bad.txt"
expect_err "^fz-prep: $T/bad.txt:3: $T/nope.png: No such file or directory$"
printf 'P5 2 2 255\n' >"$T/trunc.pgm"
expect_exit 1 fz-prep --files - <<<"$T/trunc.pgm"
expect_err "^fz-prep: <stdin>:1: $T/trunc.pgm: "
expect_exit 1 fz-prep --files "$T/nope.txt"
expect_err "^fz-prep: $T/nope.txt: No such file or directory$"
expect_exit 1 fz-prep --files - < <(printf '\n\n')
expect_err "^fz-prep: <stdin>: no image paths in the list$"
# usage: no operand with --files, and only --kind images
expect_exit 2 fz-prep --files "$T/sorted.txt" "$IMG"
expect_err "^fz-prep: --files takes no operand"
expect_exit 2 fz-prep --files "$T/sorted.txt" --kind csv
expect_err "^fz-prep: --files with --kind csv"
expect_exit 0 fz-prep --files "$T/sorted.txt" --kind images -o "$T/k.npy"
