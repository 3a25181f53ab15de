/* gemm - single-product sgemm throughput through fz_gemm, and the core OpenBLAS runs on.
 *
 *   cc -O2 -Ilib $(pkg-config --cflags openblas) -o build/bench-gemm bench/gemm.c \
 *      build/libfz.a $(pkg-config --libs openblas) -lm -lpthread
 *   OPENBLAS_NUM_THREADS=1 build/bench-gemm [M N K]...
 *
 * Without operands it times 512x512x512 and 256x9216x625 (the shape of a batch-256
 * 3x3-conv im2col product on 96x96 images). fz_blas_init() runs first, so with
 * OPENBLAS_CORETYPE unset the printed core is the one fz tools get. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "blas.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void bench(int M, int N, int K)
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
    double flop = 2.0 * M * N * K, t0 = now(), t;
    int reps = 0;
    do {
        fz_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        reps++;
        t = now() - t0;
    } while (t < 1.0);
    printf("%-12s %5dx%5dx%5d  %8.1f GFLOP/s  (%d reps)\n", fz_blas_corename(), M, N, K,
           flop * reps / t * 1e-9, reps);
    free(A);
    free(B);
    free(C);
}

int main(int argc, char **argv)
{
    int switched = fz_blas_init(argc, argv);
    fz_blas_ftz(1);
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
            bench(atoi(argv[i]), atoi(argv[i + 1]), atoi(argv[i + 2]));
    } else {
        bench(512, 512, 512);
        bench(256, 9216, 625);
    }
    return 0;
}
