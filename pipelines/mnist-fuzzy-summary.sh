#!/usr/bin/env bash
# mnist-fuzzy-summary.sh DIR "SEEDS" "TRAINING ARGUMENTS" ["ORDERS" ["WARMUPS"]] - the summary.md of the
# mnist-fuzzy pipeline (pipelines/mnist-fuzzy.mk): per seed and setting, the validation
# accuracy of the last epoch (from the training log) and the test accuracy (from fz-eval),
# then the mean and the sample standard deviation over the seeds. ORDERS gives the class
# terms' order on the circle per setting (fz-train --circle-order: index, the default, or
# data), as "10=data 12=index 10h=data"; missing ones are index. WARMUPS gives the epochs of
# learning-rate warm-up added to the schedule per setting, as "10=2 12=0 10h=2"; missing
# ones are 0.
set -euo pipefail
dir=$1 seeds=$2 args=$3 orders=${4:-} warmups=${5:-}
warmup_of() {
    local o
    for o in $warmups; do [ "${o%%=*}" = "$1" ] && { echo "${o#*=}"; return; }; done
    echo 0
}
with_warmup=
for k in 10 12 10h; do
    w=$(warmup_of $k)
    [ "$w" != 0 ] && with_warmup="$with_warmup${with_warmup:+, }$k ($w epochs)"
done
order_of() {
    local o
    for o in $orders; do [ "${o%%=*}" = "$1" ] && { echo "${o#*=}"; return; }; done
    echo index
}
order=$(order_of 10) order12=$(order_of 12)
with_data=
for k in 10 12 10h; do [ "$(order_of $k)" = data ] && with_data="$with_data${with_data:+, }$k"; done

warmup_note() {
    [ -n "$with_warmup" ] || return 0
    cat <<EOF

A learning-rate warm-up (\`fz-train --schedule cos:20:0,warmup:2\`: the rate rises over the
first 2 epochs) for: $with_warmup, chosen on the validation split. With
\`fcvae-wide\` and half of the labels, one seed of three stalled without it (seed 1: 85.80%,
the digit 0 never predicted; seeds 0 and 2: 95.65% and 95.98%), while with it the three
reached 95.85%, 95.98% and 95.95%; with 10 classes it gave 97.07%, 96.93% and 97.22% against
97.02%, 96.95% and 96.97%; with 12 outputs 96.75%, 96.78% and 96.68% against 96.93%,
96.90% and 96.95%, so the 12 outputs train without it. A fuzzy loss averaged over the
labeled rows only (\`--fuzzy-norm labeled\`) did not help the stalled seed (85.68%), nor did
a fuzzy weight of 40 (85.95%).
EOF
}

# value of a key in an fz-eval --tsv table
metric() { awk -F'\t' -v k="$2" '$1 == k { print $2; exit }' "$1"; }
# validation accuracy of the last epoch of a training log
last_val() { awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "val_accuracy") c = i }
                         NR > 1 && c { v = $c } END { print v }' "$1"; }
# "mean ± sd (min to max)" of percentages given as fractions
stats() {
    awk '{ x[NR] = 100 * $1; s += x[NR] } END {
        m = s / NR; v = 0; for (i = 1; i <= NR; i++) v += (x[i] - m) ^ 2;
        sd = NR > 1 ? sqrt(v / (NR - 1)) : 0; lo = x[1]; hi = x[1];
        for (i = 1; i <= NR; i++) { if (x[i] < lo) lo = x[i]; if (x[i] > hi) hi = x[i] }
        printf "%.2f ± %.2f (%.2f to %.2f)", m, sd, lo, hi }'
}

cat <<EOF
# mnist-fuzzy: the fuzzy CVAE on MNIST, 10 classes and 12 outputs

Training: \`$args -s SEED\`${with_data:+ (with \`--circle-order data\` for: $with_data)}${with_warmup:+ (a learning-rate warm-up, \`,warmup:W\` on the schedule, for: $with_warmup)} on 54,000 training digits
(\`fz-prep mnist:train --split 0.9:first -s 1\`), validated on the other 6,000, tested on the
10,000 test digits. The 12 outputs are the digits then \`loop\` (0 6 8 9) and \`open\`
(1 2 3 4 5 7), \`fz-mask -a pipelines/loopopen.txt\`; \`10h\` is 10 classes with a fixed random
half of the training labels masked (\`fz-mask --labeled 0.5\`), validated and tested on all. Accuracy is the class of the largest
class membership (\`fz-fuzzy | fz-eval --classes\`).

| outputs | seed | validation accuracy (%) | test accuracy (%) |
|---|---:|---:|---:|
EOF
for k in 10 12 10h; do
    for s in $seeds; do
        printf '| %s | %s | %.2f | %.2f |\n' "$k" "$s" \
            "$(awk -v v="$(last_val "$dir/m$k-s$s.log.tsv")" 'BEGIN { print 100 * v }')" \
            "$(awk -v v="$(metric "$dir/m$k-s$s.test.tsv" accuracy)" 'BEGIN { print 100 * v }')"
    done
done
echo
echo "| outputs | validation, mean ± sd (range) | test, mean ± sd (range) |"
echo "|---|---|---|"
for k in 10 12 10h; do
    val=$(for s in $seeds; do last_val "$dir/m$k-s$s.log.tsv"; done | stats)
    test=$(for s in $seeds; do metric "$dir/m$k-s$s.test.tsv" accuracy; done | stats)
    echo "| $k | $val | $test |"
done
cat <<EOF

The article this follows reports 96.52% (10 classes) and 97.52% (12 outputs) with its
convolutional network after 50 epochs.

## Settings, and how they were chosen

EOF
if [ "$order" = data ]; then
    cat <<EOF
Class terms on the circle in **data** order (\`fz-train --circle-order data\`): the classes go
round the circle in the angular order of the untrained encoder's class means (taken in
training mode, as the first epoch sees the codes), so classes it maps close together start
close together. Chosen on the validation split (\`fcvae-cnn\`, 10 classes, the settings
above): in index order seeds 0 and 1 stalled at 70.10% and 78.83% after 6 epochs, 4 and 9
never predicted (seed 2: 97.43% after 5); in data order seeds 0, 1 and 2 reached 98.02%,
97.70% and 97.37% after 5 epochs. Class means taken in evaluation mode instead (an untrained
network's BatchNorm then normalises nothing) gave 97.65% and 97.60% for seeds 0 and 1 after 6
epochs, but seed 2 stalled at 87.82% after 8, the digit 3 never predicted. With
\`fcvae-wide\` (10 classes, 20 epochs, validation) index order gave 97.08%, 78.08% (seed 1
stalled) and 96.95%, data order 97.02%, 96.95% and 96.97%; with \`fcvae-mlp\`, which keeps
index order, index gave 96.88%, 96.83% and 96.93% against data's 96.77%, 96.82% and 96.73%.
EOF
    if [ "$order12" = index ]; then
        cat <<EOF

With 12 outputs the class terms start in **index** order, also chosen on the validation
split (20 epochs): the index order keeps each attribute's classes side by side on the
circle, where the data order does not; in data order seed 2 lost the digit 5 (validation
89.68%, seeds 0 and 1 97.28% and 97.13%), in index order the three seeds reached 97.83%,
97.68% and 97.75%.
EOF
    fi
    warmup_note
    cat <<EOF

The other settings are those of \`fcvae-mlp\`, chosen as follows.
EOF
else
    echo "Class terms on the circle in **index** order (\`fz-train --circle-order index\`, the default)."
    warmup_note
fi
echo
cat <<EOF
On the validation split only, seed 0, 20 epochs (fz(7), "What makes training robust"):
fuzzy weight 5, 20 and 50 reached 96.10%, 96.77% and 96.92% (20 keeps the reconstruction
closer); the article's membership form 96.55% against the Gaussian's 96.77%; centres drawn
from N(0, I) instead of the circle stalled at 39.7% (after 12 epochs); with 12 outputs, attribute terms
started on the circle like the digits stalled at 49.5% where attribute terms started over
their digits reached 96.45% (both after 11 epochs). The KL weight 1/28 restores the
per-image balance of reconstruction and KL under the article's reduction (fz-train(1)).

Pictures (first seed): [accuracy per epoch](curves.png), [loss per epoch](losses.png),
[10-class latent space](latent-10.png),
[12-output latent space](latent-12.png), [two paths from a 9 to a 4](paths-9-4.png) and
[the images along them](paths-9-4-strips.png).

Reproduce: \`make mnist-fuzzy\` (\`QUICK=1\`, \`SEEDS=\`, \`EPOCHS=\`, \`LATENT=\`, \`GAMMA=\`,
\`BETA=\`, \`ORDER=\`, \`WARMUP=\` change it).
EOF
