#!/usr/bin/env bash
# fz-train survives interruptions: SIGINT, SIGTERM and SIGHUP stop it with status 130, 143
# and 129 and the checkpoint of the last complete epoch, also when they come while a
# checkpoint is written; kill -9 at random moments and at each step of writing a
# checkpoint (open, write, fsync, close, rename: hit exactly by the fault shim
# tests/faultshim.c) always leaves a complete model file that passes its checksum; and -R
# then ends with a file identical, byte for byte, to that of an uninterrupted run.
. "$(dirname "$0")/lib.sh"
export OPENBLAS_NUM_THREADS=1

VERIFY="$FZ_TESTS/test_safetensors"
[ -x "$VERIFY" ] || skip "no $VERIFY to verify model files"
fz-prep mnist:train "$DATA/mnist-small.tgz" -o "$T/train.npy" 2>/dev/null || fail "fz-prep train"

E=6 # epochs of every run
TRAIN=(fz-train -q -a ae-mlp -B 16 -s 7 -m $E)
"${TRAIN[@]}" -o "$T/ref.st" "$T/train.npy" || fail "the reference run failed"
"$VERIFY" verify "$T/ref.st" || fail "the reference model does not verify"
t0=$(date +%s%N) # the second run, with warm caches, gives the duration of a run
"${TRAIN[@]}" -o "$T/ref2.st" "$T/train.npy" || fail "the second reference run failed"
ms=$((($(date +%s%N) - t0) / 1000000))
cmp -s "$T/ref.st" "$T/ref2.st" || fail "two uninterrupted runs with the same seed differ"
san=0
ldd "$FZ_BIN/fz-train" | grep -q libasan && san=1

# The epoch a model file holds, from its metadata.
epoch_of() { head -c 4096 "$1" | grep -ao '"epoch":"[0-9]*"' | grep -o '[0-9][0-9]*'; }

# resume DIR WHAT: DIR/m.st, if there, passes its checksum; -R finishes the run; the result
# equals the uninterrupted one and no temporary file is left.
resume() {
    local d=$1 what=$2
    if [ -e "$d/m.st" ]; then
        "$VERIFY" verify "$d/m.st" >"$T/verr" 2>&1 || fail "$what: model does not verify: $(cat "$T/verr")"
    fi
    "${TRAIN[@]}" -R -o "$d/m.st" "$T/train.npy" 2>"$T/rerr" || fail "$what: -R failed: $(cat "$T/rerr")"
    cmp -s "$T/ref.st" "$d/m.st" || fail "$what: the resumed run differs from the uninterrupted one"
    ! ls "$d" | grep -q '\.tmp\.' || fail "$what: temporary files left: $(ls "$d")"
}

# A shell starts an asynchronous command with SIGINT ignored (so does this test when it
# runs in the background), and under nohup SIGHUP is ignored too; fz-train respects an
# ignored signal: env restores the defaults first wherever a test sends one.
env --default-signal=INT true 2>/dev/null || skip "env --default-signal is missing (coreutils < 8.31)"
BG=(env --default-signal=INT,TERM,HUP)

# --- kill -9 at the exact points of writing a checkpoint ---
shim_ok=0
if [ $san = 1 ]; then
    # AddressSanitizer's runtime must come first in the list of preloaded libraries (and
    # its check of that order sometimes fails all the same: it is turned off)
    asan=$(ldd "$FZ_BIN/fz-train" | awk '/libasan/ { print $3 }')
    cc -shared -fPIC -fsanitize=address -o "$T/shim.so" "$FZ_ROOT/tests/faultshim.c" -ldl 2>"$T/cc.err" &&
        SHIM=(env "LD_PRELOAD=$asan $T/shim.so"
              "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0") && shim_ok=1
else
    cc -std=c11 -Wall -Wextra -Werror -O2 -shared -fPIC -o "$T/shim.so" "$FZ_ROOT/tests/faultshim.c" \
        -ldl 2>"$T/cc.err" && SHIM=(env "LD_PRELOAD=$T/shim.so") && shim_ok=1
fi
# shim ARGS...: the command under the fault shim (lib.sh's shim_run), stderr to $T/err.
shim() { shim_run "$T/err" "$@"; }
exact=0
if [ $shim_ok = 1 ]; then
    for at in open:1 write:3 fsync:1 fsync+:1 close+:1 rename:1 rename+:1 \
              open:2 write:30 fsync:2 fsync+:2 close+:2 rename:2 rename+:2 rename:$E rename+:$E; do
        d="$T/x$exact"; mkdir "$d"
        shim FZ_SHIM_KILL_AT=$at FZ_SHIM_LOG="$d/log" \
            "${TRAIN[@]}" -o "$d/m.st" "$T/train.npy"
        rc=$?
        [ $rc = 137 ] || fail "kill at $at: exit $rc, expected 137 (SIGKILL): $(head -c 300 "$T/err")"
        tail -n 1 "$d/log" | grep -qx "kill ${at%:*}" || fail "kill at $at: the shim did not fire: $(tail -n 2 "$d/log")"
        mv "$d/log" "$T/log$exact"
        # the file holds the epoch of the last completed rename, or is absent before the first
        done_=$(grep -c '^rename+' "$T/log$exact")
        if [ "$done_" = 0 ]; then
            [ ! -e "$d/m.st" ] || fail "kill at $at: a model file before any rename"
        else
            [ "$(epoch_of "$d/m.st")" = "$done_" ] ||
                fail "kill at $at: the file holds epoch '$(epoch_of "$d/m.st")', expected $done_"
        fi
        # every point but rename+ leaves the temporary file behind: the window was hit
        case $at in
        rename+:*) ;;
        *) ls "$d" | grep -q '^m\.st\.tmp\.' || fail "kill at $at: no temporary file left: $(ls "$d")" ;;
        esac
        resume "$d" "kill at $at"
        exact=$((exact + 1))
    done

    # a signal during a save, and a second one right after: the save completes first
    d="$T/sig-save"; mkdir "$d"
    shim FZ_SHIM_KILL_AT=fsync:2:INT,rename:2:TERM \
        "${BG[@]}" "${TRAIN[@]}" -o "$d/m.st" "$T/train.npy"
    rc=$?
    [ $rc = 130 ] || fail "SIGINT while saving: exit $rc, expected 130 ($(cat "$T/err"))"
    expect_err "stopped by SIGINT; .*m\.st keeps the checkpoint of epoch 2$"
    [ "$(epoch_of "$d/m.st")" = 2 ] || fail "SIGINT while saving: the save of epoch 2 was not completed"
    resume "$d" "SIGINT and SIGTERM while saving"
else
    echo "the fault shim did not build, exact points not tested: $(head -c 300 "$T/cc.err")"
fi

# --- SIGINT and SIGTERM in the middle of a run ---
sigs=0
for sig in INT TERM HUP INT; do
    d="$T/s$sigs"; mkdir "$d"
    "${BG[@]}" "${TRAIN[@]}" -l "$d/log.tsv" -o "$d/m.st" "$T/train.npy" 2>"$T/err" &
    pid=$!
    for _ in $(seq 400); do [ -e "$d/m.st" ] && break; sleep 0.01; done
    sleep "0.0$((RANDOM % 6))"
    # stopped, it cannot finish before the signal arrives
    kill -STOP $pid 2>/dev/null || fail "SIG$sig: the run ended before it could be signalled"
    kill -$sig $pid
    kill -CONT $pid
    wait $pid
    rc=$?
    want=$((128 + $(kill -l $sig)))
    [ $rc = $want ] || fail "SIG$sig: exit $rc, expected $want ($(cat "$T/err"))"
    n=$(epoch_of "$d/m.st")
    expect_err "stopped by SIG$sig; .*m\.st keeps the checkpoint of epoch $n$"
    [ "$(wc -l <"$d/log.tsv")" = $((n + 1)) ] || fail "SIG$sig: the log does not end at epoch $n"
    "${TRAIN[@]}" -R -l "$d/log.tsv" -o "$d/m.st" "$T/train.npy" 2>"$T/rerr" || fail "-R after SIG$sig failed"
    cmp -s "$T/ref.st" "$d/m.st" || fail "SIG$sig at epoch $n: the resumed run differs"
    [ "$(cut -f1 "$d/log.tsv" | tr '\n' ' ')" = "epoch $(seq -s ' ' $E) " ] ||
        fail "SIG$sig: the log after -R is not one row per epoch: $(cut -f1 "$d/log.tsv" | tr '\n' ' ')"
    echo "SIG$sig at epoch $((n + 1)): exit $rc, resumed bit-identical"
    sigs=$((sigs + 1))
done
# a signal before the first checkpoint: nothing is written
"${BG[@]}" "${TRAIN[@]}" -o "$T/early.st" "$T/train.npy" 2>"$T/err" &
pid=$!
# not before the exec: the shell's child would run this script's exit trap
for _ in $(seq 400); do [ "$(cat /proc/$pid/comm 2>/dev/null)" = fz-train ] && break; sleep 0.01; done
kill -TERM $pid
wait $pid
rc=$?
[ $rc = 143 ] || fail "early SIGTERM: exit $rc, expected 143"
[ ! -e "$T/early.st" ] || fail "early SIGTERM: a model file was written"
! ls "$T" | grep -q '^early\.st\.tmp\.' || fail "early SIGTERM: a temporary file was left"

# --- kill -9 at random moments ---
TRIALS=${FZ_CRASH_TRIALS:-$((san ? 8 : 20))} # a run takes ten times longer under ASan
declare -A seen=()
for i in $(seq "$TRIALS"); do
    d="$T/r$i"; mkdir "$d"
    "${TRAIN[@]}" -o "$d/m.st" "$T/train.npy" 2>/dev/null &
    pid=$!
    us=$((RANDOM % (ms * 11 / 10 + 1) * 1000)) # up to 10% past the reference run's end
    sleep "$((us / 1000000)).$(printf %06d $((us % 1000000)))"
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
    state="epoch $( [ -e "$d/m.st" ] && epoch_of "$d/m.st" || echo 0)"
    ls "$d" | grep -q '\.tmp\.' && state="$state+save"
    seen[$state]=$((${seen[$state]:-0} + 1))
    resume "$d" "kill -9 trial $i ($state)"
done

echo "exact kill points: $exact, signals: $sigs + 1 early + 1 while saving, random kill -9: $TRIALS (run of $ms ms)"
for k in "${!seen[@]}"; do echo "  random kill at $k: ${seen[$k]}"; done | sort
