#!/usr/bin/env bash
# Valgrind's memcheck over a short training and scoring run on the small WDBC table (and a
# few readers and error paths): no invalid access, no use of uninitialised values, no
# definitely or possibly lost block. About 25 s on a quiet machine; skipped without valgrind and in the
# sanitizer build (ASan and valgrind do not mix).
#
# The OpenBLAS core: valgrind does not emulate AVX-512 and hides it from CPUID, so both
# OpenBLAS and fz_cpu_features() (lib/blas.c) see an AVX2 machine and pick Haswell
# kernels; OPENBLAS_CORETYPE=SkylakeX forced through valgrind dies of SIGILL. fz may also
# re-execute itself with OPENBLAS_CORETYPE set when OpenBLAS falls back to an old core,
# and a re-executed program leaves valgrind unless children are traced. So the runs trace
# children, and on a CPU with AVX2 OPENBLAS_CORETYPE=Haswell is set (fz respects it and
# does not re-execute), replacing any value of the caller's.
. "$(dirname "$0")/lib.sh"
command -v valgrind >/dev/null || skip "valgrind is not installed"
[ "${SAN:-}" = 1 ] && skip "not under the sanitizers (SAN=1)"
ldd "$FZ_BIN/fz-train" | grep -q libasan && skip "the tools are built with AddressSanitizer"
export OPENBLAS_NUM_THREADS=1
if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
    export OPENBLAS_CORETYPE=Haswell
fi

runs=0
# vg WANT TOOL ARGS...: the tool under memcheck exits WANT (never 9, valgrind's error
# status), and its log says the run was checked to its end without an error.
vg() {
    local want=$1; shift
    local log="$T/vg.$runs.log"
    valgrind --trace-children=yes --leak-check=full --errors-for-leak-kinds=definite,possible \
        --error-exitcode=9 --log-file="$log" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    [ $rc != 9 ] || fail "memcheck errors in: $* $(grep -m 20 '==[0-9]*== ' "$log" | grep -v ' Memcheck\| Copyright\| Using Valgrind\| Command:')"
    [ $rc = "$want" ] || fail "expected exit $want, got $rc from: $* ($(head -c 300 "$T/err"))"
    grep -q 'ERROR SUMMARY: 0 errors' "$log" || fail "valgrind did not see the end of: $*"
    grep -q 'definitely lost: [1-9]\|possibly lost: [1-9]' "$log" && fail "leak in: $*"
    runs=$((runs + 1))
}

W=$DATA/wdbc-small.csv
# training and scoring: prep, mask, train, encode, fuzzy, eval, decode
vg 0 fz-prep --label-col diagnosis --standardize "$W" -o "$T/w.npy"
vg 0 fz-mask -o "$T/wm.npy" "$T/w.npy"
vg 0 fz-train -q -a fcvae-mlp -m 2 -s 1 -o "$T/w.st" "$T/wm.npy"
vg 0 fz-encode -k -i "$T/w.st" "$T/w.npy" -o "$T/wz.npy"
vg 0 fz-fuzzy -i "$T/w.st" "$T/w.npy" -o "$T/wf.npy"
vg 0 fz-eval "$T/wf.npy"
grep -q accuracy "$T/out" || fail "fz-eval printed no accuracy"
vg 0 fz-decode -i "$T/w.st" "$T/wz.npy" -o "$T/wd.npy"
vg 0 fz-decode -i "$T/w.st" --sample 5 -o "$T/ws.npy"
# standard input from a pipe
vg 0 fz-info - < <(fz-prep --label-col diagnosis "$W")
# the other readers: a tar.gz of IDX files, a list of PNG and PGM images
vg 0 fz-prep mnist:train "$DATA/mnist-small.tgz" -o "$T/m.npy"
vg 0 fz-prep --files - -o "$T/im.npy" < <(find "$DATA/images" -type f)
# error paths free what they hold too: a truncated stream, a missing model
head -c 3000 "$T/w.npy" >"$T/trunc.npy"
vg 1 fz-info "$T/trunc.npy"
vg 1 fz-encode -i "$T/nope.st" "$T/w.npy"
echo "memcheck clean over $runs runs (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset})"
