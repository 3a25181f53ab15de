#!/usr/bin/env bash
# Every reader's fuzzing harness on the committed corpus (tests/fuzz/corpus/<harness>/),
# built with the ordinary compiler (under SAN=1: ASan+UBSan), so a fixed crash stays fixed.
. "$(dirname "$0")/lib.sh"

FUZZ_BIN="$FZ_TESTS/../fuzz"
CORPUS="$FZ_ROOT/tests/fuzz/corpus"
n=0
for h in stream model idx csv image json archive; do
    bin="$FUZZ_BIN/replay-$h"
    [ -x "$bin" ] || fail "$bin missing: build with 'make tests'"
    [ -n "$(ls -A "$CORPUS/$h" 2>/dev/null)" ] || fail "corpus $CORPUS/$h is empty"
    # The readers print nothing; a sanitizer report or a crash is a failure.
    OPENBLAS_NUM_THREADS=1 "$bin" "$CORPUS/$h" >"$T/out" 2>"$T/err" \
        || fail "replay-$h: exit $?: $(head -c 2000 "$T/err")"
    [ ! -s "$T/err" ] || fail "replay-$h wrote to stderr: $(head -c 2000 "$T/err")"
    grep -qE '^replay: [1-9][0-9]* inputs$' "$T/out" || fail "replay-$h: $(cat "$T/out")"
    n=$((n + $(sed -E 's/replay: ([0-9]+) inputs/\1/' "$T/out")))
done

# The replay must notice a harness that fails: a missing file is an error, not a pass.
expect_exit 1 "$FUZZ_BIN/replay-json" "$T/does-not-exist"
echo "$n corpus inputs replayed"
