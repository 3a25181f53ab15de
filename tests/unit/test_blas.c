/* test_blas - fz_gemm against the plain-loop oracle, the core-type choice, FTZ. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "check.h"
#include "rng.h"
#include "threads.h"

/* Compare fz_gemm with fz_gemm_naive on one shape/transpose/stride combination. Padded
 * leading dimensions check that the strides are honoured; NaN in C with beta == 0 checks
 * that C is not read. */
static void one(fz_rng *r, int ta, int tb, int M, int N, int K, int pad, float alpha,
                float beta)
{
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb;
    size_t nc = (size_t)M * ldc;
    float *A = malloc((na + 1) * sizeof *A), *B = malloc((nb + 1) * sizeof *B);
    float *C = malloc((nc + 1) * sizeof *C), *R = malloc((nc + 1) * sizeof *R);
    for (size_t i = 0; i < na; i++) A[i] = (float)(2 * fz_rng_uniform(r) - 1);
    for (size_t i = 0; i < nb; i++) B[i] = (float)(2 * fz_rng_uniform(r) - 1);
    for (size_t i = 0; i < nc; i++)
        C[i] = R[i] = beta == 0.0f ? NAN : (float)(2 * fz_rng_uniform(r) - 1);
    fz_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    fz_gemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc);
    double worst = 0;
    int bad = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double c = C[(size_t)i * ldc + j], ref = R[(size_t)i * ldc + j];
            if (!(fabs(c - ref) <= 1e-5 * (K + 1))) bad++;
            if (fabs(c - ref) > worst) worst = fabs(c - ref);
        }
    CHECK_MSG(bad == 0, "trans %d%d %dx%dx%d pad %d alpha %g beta %g: %d bad, worst %g", ta,
              tb, M, N, K, pad, (double)alpha, (double)beta, bad, worst);
    /* padding columns of C are untouched */
    for (int i = 0; i < M && pad; i++)
        CHECK(isnan(C[(size_t)i * ldc + N]) == isnan(R[(size_t)i * ldc + N]));
    free(A);
    free(B);
    free(C);
    free(R);
}

static void test_gemm(void)
{
    fz_rng r;
    fz_rng_seed(&r, 1);
    static const int shapes[][3] = {{1, 1, 1}, {1, 17, 3}, {5, 1, 9}, {3, 7, 1},
                                    {13, 11, 7}, {31, 33, 65}, {64, 64, 64}, {97, 45, 130}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            one(&r, t & 1, t >> 1, M, N, K, 0, 1.0f, 0.0f);
            one(&r, t & 1, t >> 1, M, N, K, 3, -0.5f, 1.0f);
            one(&r, t & 1, t >> 1, M, N, K, 1, 2.0f, 0.25f);
        }
    /* the naive oracle itself on a hand-computed product:
     * [1 2; 3 4] * [5 6; 7 8] = [19 22; 43 50] */
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {1, 1, 1, 1};
    fz_gemm_naive(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 1.0f, c, 2);
    CHECK_NEAR(c[0], 20, 0);
    CHECK_NEAR(c[1], 23, 0);
    CHECK_NEAR(c[2], 44, 0);
    CHECK_NEAR(c[3], 51, 0);
    /* A^T B^T: A^T = [1 3; 2 4], B^T = [5 7; 6 8] -> [23 31; 34 46] */
    fz_gemm_naive(1, 1, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    CHECK_NEAR(c[0], 23, 0);
    CHECK_NEAR(c[1], 31, 0);
    CHECK_NEAR(c[2], 34, 0);
    CHECK_NEAR(c[3], 46, 0);
    fz_gemm(1, 1, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    CHECK_NEAR(c[3], 46, 1e-6);
    /* K == 0 is C = beta * C */
    float d[2] = {2, 4};
    fz_gemm(0, 0, 1, 2, 0, 1.0f, a, 1, b, 2, 0.5f, d, 2);
    CHECK_NEAR(d[0], 1, 0);
    CHECK_NEAR(d[1], 2, 0);
}

/* Products of 2^20 multiply-adds or more (here 1.5 M to 24 M) are cut into blocks of rows
 * or columns over fz's own threads when more than one thread is allowed: both cuts, every
 * transpose, sizes that are not multiples of 16, padded strides, beta 0 (C not read) and
 * beta 1. Each is
 * checked against the oracle, and run twice for the same bits (the cut depends only on the
 * shape and the thread count). */
static void test_split(void)
{
    int prev = fz_blas_threads();
    fz_blas_set_threads(2);
    fz_rng r;
    fz_rng_seed(&r, 7);
    /* by columns: few rows, long inner dimension or wide output; by rows: the rest */
    static const int shapes[][3] = {{64, 128, 784}, {64, 784, 128}, {50, 130, 300},
                                    {784, 128, 64}, {128, 784, 64}, {257, 99, 61},
                                    {500, 128, 256}, {300, 400, 200}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            one(&r, t & 1, t >> 1, M, N, K, 0, 1.0f, 0.0f);
            one(&r, t & 1, t >> 1, M, N, K, 5, -0.5f, 1.0f);
        }
    int M = 200, N = 300, K = 100;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
    for (int i = 0; i < M * K; i++) A[i] = (float)fz_rng_normal(&r);
    for (int i = 0; i < K * N; i++) B[i] = (float)fz_rng_normal(&r);
    fz_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
    fz_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N);
    CHECK(memcmp(C1, C2, sizeof(float) * M * N) == 0);
    /* the pool was used (the cut ran on a worker) and the thread count is kept */
    CHECK(fz_threads_started() >= 1);
    CHECK_EQ_INT(fz_blas_threads(), 2);
    free(A);
    free(B);
    free(C1);
    free(C2);
    fz_blas_set_threads(prev);
}

static void test_pick(void)
{
    unsigned all = FZ_CPU_AVX2 | FZ_CPU_FMA | FZ_CPU_AVX512, avx2 = FZ_CPU_AVX2 | FZ_CPU_FMA;
    CHECK_STR(fz_blas_pick_core("Prescott", all), "SkylakeX");
    CHECK_STR(fz_blas_pick_core("Nehalem", all), "SkylakeX");
    CHECK_STR(fz_blas_pick_core("Core2", avx2), "Haswell");
    CHECK_STR(fz_blas_pick_core("prescott", avx2), "Haswell");
    CHECK_STR(fz_blas_pick_core("Sandybridge", avx2), "Haswell");
    /* never an AVX-512 core without AVX-512 (with its OS support folded into the flag) */
    CHECK_STR(fz_blas_pick_core("Prescott", avx2), "Haswell");
    CHECK(fz_blas_pick_core("Prescott", FZ_CPU_AVX2) == NULL); /* no FMA */
    CHECK(fz_blas_pick_core("Prescott", 0) == NULL);
    CHECK(fz_blas_pick_core("Sandybridge", 0) == NULL);
    /* good or unknown cores are kept */
    CHECK(fz_blas_pick_core("Haswell", all) == NULL);
    CHECK(fz_blas_pick_core("SkylakeX", all) == NULL);
    CHECK(fz_blas_pick_core("Cooperlake", all) == NULL);
    CHECK(fz_blas_pick_core("Zen", avx2) == NULL);
    CHECK(fz_blas_pick_core(NULL, all) == NULL);
    /* the running CPU: AVX-512 implies AVX2 on every real CPU */
    unsigned f = fz_cpu_features();
    CHECK(!(f & FZ_CPU_AVX512) || (f & FZ_CPU_AVX2));
}

static void test_misc(void)
{
    fz_err err = {0};
    CHECK_EQ_INT(fz_blas_selfcheck(&err), 0);
    CHECK(fz_blas_corename()[0] != '\0');
    /* with OPENBLAS_CORETYPE set (run.sh or the user) init keeps it and does not exec */
    if (getenv("OPENBLAS_CORETYPE") && !getenv("FZ_BLAS_REEXEC")) {
        char *argv[] = {"test_blas", NULL};
        CHECK_EQ_INT(fz_blas_init(1, argv), 0);
    }
    /* FTZ: a denormal result becomes 0 with it on and stays denormal with it off */
    volatile float tiny = FLT_MIN, half = 0.5f;
    fz_blas_ftz(1);
    float z = tiny * half;
    CHECK(z == 0.0f);
    fz_blas_ftz(0);
    z = tiny * half;
    CHECK(z > 0.0f && z < FLT_MIN);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_gemm();
    test_split();
    test_pick();
    test_misc();
    return check_report("test_blas");
}
