#!/usr/bin/env bash
# fz-score: a directory or archive of images scored in parallel batches, checked row by row
# against fz-fuzzy on the same images; resuming from the joblog; errors.
. "$(dirname "$0")/lib.sh"
command -v parallel >/dev/null || skip "GNU parallel is not installed"
command -v perl >/dev/null || skip "perl is not installed"
$PY -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
S=$FZ_ROOT/pipelines/fz-score
cd "$T" || fail "cd $T"

fz-prep mnist:train "$DATA/mnist-small.tgz" | fz-mask | fz-train -a fcvae-mlp -m 1 -o m.st 2>/dev/null ||
    fail "training the model"

# The fixtures (PNG and PGM in folders named by class), plus names with a space and a tab
cp -r "$DATA/images" img
cp img/4/t004.png "img/4/a b.png"
cp img/9/t007.pgm "img/9/t"$'\t'"b.pgm"
nfiles=$(find img -type f | wc -l)
[ "$nfiles" -eq 14 ] || fail "expected 14 fixture files, found $nfiles"

# --- one row per file, sorted by path, the same as fz-fuzzy's
expect_exit 0 "$S" -i m.st -N 4 -j 2 -o out.tsv img
[ ! -s "$T/err" ] || fail "stderr of a good run: $(head -c 300 "$T/err")"
[ ! -s "$T/out" ] || fail "-o given but standard output not empty"
[ ! -e out.tsv.work ] || fail "the default work directory is left after a good run"
[ "$(head -n 1 out.tsv)" = $'path\tclass\tmembership\tscore\tflag' ] || fail "header: $(head -n 1 out.tsv)"
[ "$(wc -l <out.tsv)" -eq $((nfiles + 1)) ] || fail "$(wc -l <out.tsv) lines for $nfiles files"
awk -F'\t' 'NR > 1 && NF != 5 { exit 1 }' out.tsv || fail "a row without 5 columns"
# paths: every file once, in byte order; the tab is written as \t
find img -type f | LC_ALL=C sort | sed 's/\t/\\t/' >want.paths
tail -n +2 out.tsv | cut -f1 >got.paths
cmp -s want.paths got.paths || fail "paths differ: $(diff want.paths got.paths | head -5)"
grep -q $'^img/4/a b.png\t' out.tsv || fail "no row for 'img/4/a b.png'"
# stdout gives the same table
expect_exit 0 "$S" -i m.st -N 4 img
cmp -s "$T/out" out.tsv || fail "standard output differs from -o"

# the oracle: fz-fuzzy on the whole directory in one process
fz-prep img | fz-fuzzy -i m.st -o ref.npy || fail "fz-fuzzy on img"
$PY - ref.npy out.tsv <<'EOF' || fail "rows differ from fz-fuzzy"
import sys, json, numpy as np
f = open(sys.argv[1], "rb")
chunks = []
while f.peek(1):
    chunks.append(np.load(f))
rows = np.concatenate([c for c in chunks[1:]])
ref = {r["path"].decode().replace("\t", "\\t"): r for r in rows}
lines = open(sys.argv[2]).read().splitlines()[1:]
assert len(lines) == len(ref) == 14, (len(lines), len(ref))
for line in lines:
    path, cls, mem, score, flag = line.split("\t")
    r = ref[path]
    assert cls == r["pred_name"].decode(), (path, cls, r["pred_name"])
    assert abs(float(mem) - r["maxmem"]) <= 1e-5 + 1e-5 * abs(r["maxmem"]), (path, mem, r["maxmem"])
    assert abs(float(score) - r["score"]) <= 1e-5, (path, score, r["score"])
    assert int(flag) == r["flag"], (path, flag, r["flag"])
EOF

# --- an archive: rows named by the member paths, the same values
tar -czf img.tgz img
expect_exit 0 "$S" -i m.st -N 5 img.tgz
cmp -s "$T/out" out.tsv || fail "tar.gz rows differ from the directory's: $(diff "$T/out" out.tsv | head -4)"
$PY -c 'import sys, zipfile, os
with zipfile.ZipFile("img.zip", "w") as z:
    for d, _, fs in os.walk("img"):
        for f in fs: z.write(os.path.join(d, f))'
expect_exit 0 "$S" -i m.st -N 5 img.zip
cmp -s "$T/out" out.tsv || fail "zip rows differ from the directory's"

# --- resuming: a second run with the joblog runs nothing and gives the same table
expect_exit 0 "$S" -i m.st -N 4 -j 1 -w W -o r1.tsv img
njobs=$(($(wc -l <W/joblog) - 1))
[ "$njobs" -eq 4 ] || fail "14 files in batches of 4 gave $njobs jobs, expected 4"
cmp -s r1.tsv out.tsv || fail "the -w run differs"
[ -d W ] || fail "-w directory removed"
expect_exit 0 "$S" -i m.st -N 4 -j 1 -w W -o r2.tsv --resume img
[ "$(($(wc -l <W/joblog) - 1))" -eq 4 ] || fail "--resume ran jobs again: $(cat W/joblog)"
cmp -s r2.tsv out.tsv || fail "the resumed table differs"
# an interrupted run: only job 1 finished; resuming runs the 3 others, not job 1
awk -F'\t' 'NR == 1 || $1 == 1' W/joblog >W/jl && mv W/jl W/joblog
rm -f W/out/2 W/out/3* W/out/4*
expect_exit 0 "$S" -i m.st -N 4 -j 1 -w W -o r3.tsv --resume img
cut -f1 W/joblog | tail -n +2 | sort -n | tr '\n' ' ' >seqs
[ "$(cat seqs)" = "1 2 3 4 " ] || fail "jobs in the joblog after resuming: $(cat seqs)"
cmp -s r3.tsv out.tsv || fail "the table after resuming differs"
# a run killed halfway (jobs slowed down by a wrapper of fz-fuzzy): --resume runs the
# rest, every job once, and the table is whole
mkdir slow
printf '#!/bin/sh\nsleep 0.3\nexec "%s" "$@"\n' "$(command -v fz-fuzzy)" >slow/fz-fuzzy
chmod +x slow/fz-fuzzy
set -m # the run gets a process group of its own, whose id is its pid
PATH=$T/slow:$PATH "$S" -i m.st -N 2 -j 1 -w K -o k.tsv img 2>k.err &
pid=$!
set +m
for _ in $(seq 100); do
    [ -f K/joblog ] && [ "$(wc -l <K/joblog)" -ge 3 ] && break
    sleep 0.1
done
kill -TERM -- -"$pid"
wait "$pid"
rc=$?
[ $rc -eq 130 ] || fail "killed run: exit $rc, expected 130: $(cat k.err)"
grep -q 'interrupted; run again with --resume' k.err || fail "killed run: $(cat k.err)"
[ ! -e k.tsv ] || fail "a killed run wrote its table"
n1=$(($(wc -l <K/joblog) - 1))
[ "$n1" -ge 2 ] && [ "$n1" -lt 7 ] || fail "killed run: $n1 of 7 jobs in the joblog"
expect_exit 0 "$S" -i m.st -N 2 -j 1 -w K -o k.tsv --resume img
cut -f1 K/joblog | tail -n +2 | sort -n | tr '\n' ' ' >seqs
[ "$(cat seqs)" = "1 2 3 4 5 6 7 " ] || fail "jobs in the joblog after resuming: $(cat seqs)"
cmp -s k.tsv out.tsv || fail "the table after a killed run and --resume differs"
# resuming with another -N is refused
expect_exit 1 "$S" -i m.st -N 3 -w W -o r4.tsv --resume img
expect_err "made for another source, model, -N or threshold"

# --- a corrupt image: its job names it, the good rows are kept, the command fails
mkdir -p bad/x
cp img/0/t003.pgm img/0/t010.png img/1/t002.png bad/x/
echo "not an image" >bad/x/broken.png
expect_exit 1 "$S" -i m.st -N 2 -w B -o bad.tsv bad
grep -q '^fz-score: bad/x/broken.png: not a PNG or PGM/PPM image$' "$T/err" ||
    fail "the bad file is not named: $(cat "$T/err")"
tail -n 1 "$T/err" | grep -q '^fz-score: 1 of 2 jobs failed or did not run .*--resume-failed$' ||
    fail "no summary line: $(cat "$T/err")"
[ "$(wc -l <"$T/err")" -eq 2 ] || fail "expected 2 lines on stderr: $(cat "$T/err")"
[ ! -e bad.tsv ] || fail "a table was written although a job failed"
# the failing job (files broken.png and t002.png) kept its good row
grep -q $'^bad/x/t002.png\t' B/out/1 || fail "the good file of the failing job lost its row"
# repaired, --resume-failed runs only the failed job
cp img/4/t004.png bad/x/broken.png
expect_exit 0 "$S" -i m.st -N 2 -w B -o bad.tsv --resume-failed bad
[ "$(wc -l <bad.tsv)" -eq 5 ] || fail "repaired table: $(cat bad.tsv)"
[ "$(awk -F'\t' 'NR > 1 && $1 == 2' B/joblog | wc -l)" -eq 1 ] || fail "job 2 ran again: $(cat B/joblog)"
grep -q $'^bad/x/broken.png\t4\t' bad.tsv || grep -q $'^bad/x/broken.png\t' bad.tsv ||
    fail "no row for the repaired file"

# --- errors: one line, exit 1 for data, 2 for usage
expect_exit 1 "$S" -i nosuch.st img
expect_err '^fz-score: nosuch.st: no such readable file$'
head -c 100 m.st >cut.st
expect_exit 1 "$S" -i cut.st img
expect_err '^fz-score: cut.st: '
mkdir empty
expect_exit 1 "$S" -i m.st empty
expect_err '^fz-score: empty: no images'
expect_exit 1 "$S" -i m.st nosuch
expect_err '^fz-score: nosuch: no such file or directory$'
echo hi >notes.txt
expect_exit 1 "$S" -i m.st notes.txt
expect_err '^fz-score: notes.txt: not a directory, nor a .tar'
expect_exit 2 "$S" -i m.st
expect_err '^fz-score: no source; usage: fz-score '
expect_exit 2 "$S" img
expect_err 'no model'
expect_exit 2 "$S" -i m.st -N 0 img
expect_err '^fz-score: -N: .0. is not a whole number'
expect_exit 2 "$S" -i m.st --threshold x img
expect_err 'is not a number'
expect_exit 2 "$S" -i m.st --resume img
expect_err 'needs -w or -o'
mkdir mine && touch mine/notes
expect_exit 1 "$S" -i m.st -w mine img
expect_err '^fz-score: .*/mine: not empty and not an fz-score work directory'
[ -f mine/notes ] || fail "a file of a foreign -w directory was removed"
expect_exit 0 "$S" -h
grep -q '^usage: fz-score ' "$T/out" || fail "-h prints no usage line"
exit 0
