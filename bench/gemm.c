/* gemm - single-product sgemm throughput, OpenBLAS's own and through fz_gemm, and the core
 * OpenBLAS runs on.
 *
 *   cc -O2 -Ilib $(pkg-config --cflags openblas) -o build/bench-gemm bench/gemm.c \
 *      build/libfz.a $(pkg-config --libs openblas) -lm -lpthread
 *   OPENBLAS_NUM_THREADS=1 build/bench-gemm [M N K]...
 *   build/bench-gemm -t 2 [M N K]...
 *
 * Without operands it times 512x512x512 and 256x9216x625 (the shape of a batch-256
 * 3x3-conv im2col product on 96x96 images). fz_blas_init() runs first, so with
 * OPENBLAS_CORETYPE unset the printed core is the one fz tools get.
 *
 * -t N: the scaling. Each shape is timed on 1 thread, on N threads of OpenBLAS's own
 * (cblas_sgemm called directly) and through fz_gemm on N threads (which never uses
 * OpenBLAS's threads: it cuts products of 2^20 multiply-adds or more into one block per
 * thread of fz's pool, see blas.c), in turn, 7 rounds of about 0.3 s each, and the medians
 * and their ratios to one thread are printed: on a shared machine the load then hits all
 * alike. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "blas.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* GFLOP/s of repeated products for at least secs seconds, through fz_gemm or (own) straight
 * through cblas_sgemm with OpenBLAS's current thread count */
static double rate(int M, int N, int K, const float *A, const float *B, float *C, double secs,
                   int *reps_out, int own)
{
    double flop = 2.0 * M * N * K, t0 = now(), t;
    int reps = 0;
    do {
        if (own)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N,
                        0.0f, C, N);
        else
            fz_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        reps++;
        t = now() - t0;
    } while (t < secs);
    if (reps_out) *reps_out = reps;
    return flop * reps / t * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bench(int M, int N, int K, int threads)
{
    float *A = malloc((size_t)M * K * sizeof *A), *B = malloc((size_t)K * N * sizeof *B);
    float *C = malloc((size_t)M * N * sizeof *C);
    if (!A || !B || !C) {
        fprintf(stderr, "gemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)(i % 17) * 0.01f;
    for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)(i % 13) * 0.01f;
    fz_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N); /* warm up */
    if (threads >= 2) {
        enum { ROUNDS = 7 };
        double g1[ROUNDS], gn[ROUNDS], gf[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            fz_blas_set_threads(1);
            g1[r] = rate(M, N, K, A, B, C, 0.3, NULL, 1);
            fz_blas_set_threads(threads);
            gn[r] = rate(M, N, K, A, B, C, 0.3, NULL, 1);
            gf[r] = rate(M, N, K, A, B, C, 0.3, NULL, 0);
        }
        qsort(g1, ROUNDS, sizeof *g1, cmp_double);
        qsort(gn, ROUNDS, sizeof *gn, cmp_double);
        qsort(gf, ROUNDS, sizeof *gf, cmp_double);
        double one = g1[ROUNDS / 2];
        printf("%-12s %5dx%5dx%5d  1 thread %7.1f GFLOP/s; %d threads: OpenBLAS %7.1f (%.2fx), "
               "fz_gemm %7.1f (%.2fx)  (medians of %d rounds)\n",
               fz_blas_corename(), M, N, K, one, threads, gn[ROUNDS / 2], gn[ROUNDS / 2] / one,
               gf[ROUNDS / 2], gf[ROUNDS / 2] / one, ROUNDS);
    } else {
        int reps;
        double g = rate(M, N, K, A, B, C, 1.0, &reps, 0);
        printf("%-12s %5dx%5dx%5d  %8.1f GFLOP/s  (%d reps)\n", fz_blas_corename(), M, N, K,
               g, reps);
    }
    free(A);
    free(B);
    free(C);
}

int main(int argc, char **argv)
{
    int switched = fz_blas_init(argc, argv);
    fz_blas_ftz(1);
    int threads = 0;
    if (argc >= 3 && strcmp(argv[1], "-t") == 0) {
        threads = atoi(argv[2]);
        if (threads < 2 || threads > 64) {
            fprintf(stderr, "gemm: -t needs a thread count in [2, 64]\n");
            return 2;
        }
        argv += 2;
        argc -= 2;
    }
    const char *env = getenv("OPENBLAS_CORETYPE");
    printf("core %s (OPENBLAS_CORETYPE=%s%s)\n", fz_blas_corename(), env ? env : "unset",
           switched ? ", chosen by fz_blas_init" : "");
    if (switched) {
        fz_err err;
        if (fz_blas_selfcheck(&err) != 0) {
            fprintf(stderr, "gemm: %s\n", err.msg);
            return 1;
        }
    }
    if (argc >= 4) {
        for (int i = 1; i + 2 < argc; i += 3)
            bench(atoi(argv[i]), atoi(argv[i + 1]), atoi(argv[i + 2]), threads);
    } else {
        bench(512, 512, 512, threads);
        bench(256, 9216, 625, threads);
    }
    return 0;
}
