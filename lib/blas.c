#include "blas.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rng.h"
#include "threads.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <pmmintrin.h>
#include <xmmintrin.h>
#define FZ_X86 1
#else
#define FZ_X86 0
#endif

/* C = beta * C for the degenerate K == 0 product (cblas rejects lda < 1 there and would
 * print through xerbla, which lib/ must not do). */
static void scale_c(int M, int N, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float *c = &C[(size_t)i * ldc + j];
            *c = beta == 0.0f ? 0.0f : beta * *c;
        }
}

/* OpenBLAS's own threads are never used: with more than one thread allowed
 * (fz_blas_set_threads), a product of at least FZ_GEMM_SPLIT_MIN multiply-adds is cut into
 * one block of rows (or columns) of C per thread, each computed by single-threaded OpenBLAS
 * on a thread of fz's own pool (threads.h), whose workers spin between the layers' calls
 * instead of sleeping; smaller products run on the calling thread. Measured on a 2-core
 * AVX-512 Xeon (SkylakeX kernels): the cut runs the products of 0.5 M to 16 M multiply-adds
 * at 1.4-1.9x the one-thread rate, where OpenBLAS's threads lose against one thread
 * (ae-mlp's 64-row batches trained 1.5-2.5x slower with them), and the larger ones at
 * 1.05-1.10x OpenBLAS's two-thread rate. Mixing the two sets of threads was worse than
 * either: vae-mlp, whose products straddle 16 M, trained at 42-51 K samples/s with
 * OpenBLAS's threads above 16 M and the pool below, and at 50-52 K with the pool alone;
 * vae-conv at 656-691 against 711-736 images/s. Below about 2^20 the hand-over between the
 * two threads is a visible share of the product. */
#define FZ_GEMM_SPLIT_MIN 1048576.0

/* One product cut into pieces: piece [lo, hi) is those rows (by_rows) or columns of C,
 * the pieces whole multiples of 16 (the kernels' register blocks) but the last. The cut
 * depends only on the shape and the thread count, so a run repeats bit for bit with the
 * same thread count. */
typedef struct gemm_split {
    int transA, transB, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    int by_rows;
    const fz_gemm_epilogue *ep;
} gemm_split;

/* rows [r0, r1) x columns [c0, c1) of C start as the bias */
static void fill_bias(float *C, int ldc, const float *bias, int r0, int r1, int c0, int c1)
{
    for (int r = r0; r < r1; r++)
        memcpy(C + (size_t)r * ldc + c0, bias + c0, (size_t)(c1 - c0) * sizeof(float));
}

/* The block rows [r0, r1) x columns [c0, c1) of C, with the epilogue around it. */
static void gemm_block(const gemm_split *g, int r0, int r1, int c0, int c1)
{
    const fz_gemm_epilogue *ep = g->ep;
    if (ep && ep->bias) fill_bias(g->C, g->ldc, ep->bias, r0, r1, c0, c1);
    /* rows of op(A): A stored (M, K) -> row offset, stored (K, M) -> column offset;
     * columns of op(B): B stored (K, N) -> column offset, stored (N, K) -> row offset */
    const float *A = g->transA ? g->A + r0 : g->A + (size_t)r0 * g->lda;
    const float *B = g->transB ? g->B + (size_t)c0 * g->ldb : g->B + c0;
    cblas_sgemm(CblasRowMajor, g->transA ? CblasTrans : CblasNoTrans,
                g->transB ? CblasTrans : CblasNoTrans, r1 - r0, c1 - c0, g->K, g->alpha, A,
                g->lda, B, g->ldb, g->beta, g->C + (size_t)r0 * g->ldc + c0, g->ldc);
    if (ep && ep->fn) ep->fn(ep->ctx, r0, r1, c0, c1);
}

static void gemm_split_piece(void *arg, size_t k, size_t lo, size_t hi)
{
    const gemm_split *g = arg;
    (void)k;
    if (g->by_rows) gemm_block(g, (int)lo, (int)hi, 0, g->N);
    else gemm_block(g, 0, g->M, (int)lo, (int)hi);
}

/* How fz_gemm cuts a product over nt threads: returns the parts (1: not cut) and sets
 * *by_rows. Measured: by columns when A has few rows and a long inner dimension or a wide C
 * (the 64-row batches against 784 or 256 inputs: each part would pack all of B for 32
 * rows), or when C is at least 8 times as wide as it is tall (256 x 9216 x 625: 1.98x by
 * columns, 1.78x by rows); else by rows. A part is at least 16 rows or columns. */
static int split_plan(int M, int N, int K, int nt, int *by_rows)
{
    *by_rows = !((M <= 64 && (K >= 256 || N >= 512)) || N >= 8 * M);
    int dim = *by_rows ? M : N;
    int parts = nt < dim / 16 ? nt : dim / 16;
    if (nt < 2 || K <= 0 || (double)M * N * K < FZ_GEMM_SPLIT_MIN || parts < 2) return 1;
    return parts;
}

int fz_gemm_parts(int M, int N, int K)
{
    int by_rows;
    if (M <= 0 || N <= 0) return 1;
    return split_plan(M, N, K, openblas_get_num_threads(), &by_rows);
}

void fz_gemm_ep(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc,
                const fz_gemm_epilogue *ep)
{
    if (M <= 0 || N <= 0) return;
    gemm_split g = {transA, transB, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, 1, ep};
    if (K <= 0) {
        if (ep && ep->bias) fill_bias(C, ldc, ep->bias, 0, M, 0, N);
        scale_c(M, N, beta, C, ldc);
        if (ep && ep->fn) ep->fn(ep->ctx, 0, M, 0, N);
        return;
    }
    int nt = openblas_get_num_threads();
    if (nt > 1) {
        openblas_set_num_threads(1);
        int parts = split_plan(M, N, K, nt, &g.by_rows);
        if (parts > 1) {
            int dim = g.by_rows ? M : N;
            size_t piece = ((size_t)(dim + parts - 1) / parts + 15) & ~(size_t)15;
            fz_threads_pieces(parts, (size_t)dim, piece, gemm_split_piece, &g);
            openblas_set_num_threads(nt);
            return;
        }
    }
    gemm_block(&g, 0, M, 0, N);
    if (nt > 1) openblas_set_num_threads(nt);
}

void fz_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
             int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    fz_gemm_ep(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}

/* Concurrent calls. Debian's OpenBLAS 0.3.21 is the pthreads build (USE_THREAD=1,
 * NUM_THREADS=64): there the library locks its shared state (the buffer pool of memory.c,
 * the thread server's queue) itself, and cblas_sgemm may be called from several threads
 * at once; the locking for concurrent callers was completed in 0.3.7 (OpenBLAS issues
 * #1851 and #2126; #4217: "OpenBLAS locks own critical structures when single-threaded
 * version is called concurrently"; single-threaded builds need USE_LOCKING=1 for this).
 * What is not safe is to change the thread count while another thread multiplies, and two
 * threaded products at once share the one thread server (they are serialised). So the
 * parts of a parallel loop call this, with the count set to one by the loop's caller:
 * OpenBLAS then computes each product on the thread that calls it (num_cpu_avail() reads
 * the global count per call), using one of its 128 buffers. */
void fz_gemm_serial(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                ldc);
}

int fz_blas_serial_begin(void)
{
    int nt = openblas_get_num_threads();
    if (nt > 1) openblas_set_num_threads(1);
    return nt;
}

void fz_blas_serial_end(int prev)
{
    if (prev > 1) openblas_set_num_threads(prev);
}

void fz_gemm_naive(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                double a = transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = transB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            /* beta == 0 must not read C, as BLAS promises */
            *c = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
    }
}

unsigned fz_cpu_features(void)
{
    unsigned flags = 0;
#if FZ_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx) return 0;
    /* XCR0 says which register states the OS saves on a context switch: bits 1-2 are
     * SSE/YMM, 5-7 are the AVX-512 opmask and ZMM halves. Without them the instructions
     * fault even if CPUID lists them. */
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    (void)xhi;
    if ((xlo & 0x6) != 0x6) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if ((b >> 5) & 1) flags |= FZ_CPU_AVX2;
    if (fma) flags |= FZ_CPU_FMA;
    unsigned need512 = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31); /* F DQ BW VL */
    if ((b & need512) == need512 && (xlo & 0xe0) == 0xe0) flags |= FZ_CPU_AVX512;
#endif
    return flags;
}

const char *fz_blas_pick_core(const char *corename, unsigned cpu_flags)
{
    /* Cores whose kernels predate AVX2+FMA: what OpenBLAS falls back to on a CPU it does
     * not recognise. */
    static const char *const weak[] = {"Prescott", "Nehalem",   "Core2",      "Penryn",
                                       "Dunnington", "Atom",    "Sandybridge", "Katmai",
                                       "Coppermine", "Northwood", "Banias",   "Barcelona",
                                       "Opteron",   "Bulldozer", "Piledriver"};
    if (!corename) return NULL;
    int is_weak = 0;
    for (size_t i = 0; i < sizeof weak / sizeof weak[0]; i++)
        if (strcasecmp(corename, weak[i]) == 0) is_weak = 1;
    if (!is_weak) return NULL;
    if (cpu_flags & FZ_CPU_AVX512) return "SkylakeX";
    if ((cpu_flags & FZ_CPU_AVX2) && (cpu_flags & FZ_CPU_FMA)) return "Haswell";
    return NULL;
}

const char *fz_blas_corename(void)
{
    const char *s = openblas_get_corename();
    return s ? s : "unknown";
}

int fz_blas_init(int argc, char **argv)
{
    if (getenv("OPENBLAS_CORETYPE")) {
        /* Set either by the user (respected as is) or by our own re-exec below. */
        if (getenv("FZ_BLAS_REEXEC")) {
            /* Not passed on: a child of this program sees a plain user setting. */
            unsetenv("FZ_BLAS_REEXEC");
            return 1;
        }
        return 0;
    }
    if (getenv("FZ_BLAS_REEXEC")) return 0; /* tried once already */
    const char *pick = fz_blas_pick_core(fz_blas_corename(), fz_cpu_features());
    if (!pick || argc < 1 || !argv || !argv[0]) return 0;
    if (setenv("OPENBLAS_CORETYPE", pick, 1) != 0 || setenv("FZ_BLAS_REEXEC", "1", 1) != 0) {
        unsetenv("OPENBLAS_CORETYPE");
        unsetenv("FZ_BLAS_REEXEC");
        return 0;
    }
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc, say): carry on with the library's own choice */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("FZ_BLAS_REEXEC");
    return 0;
}

int fz_blas_selfcheck(fz_err *err)
{
    static const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {64, 70, 129},
                                    {129, 31, 257}};
    fz_rng rng;
    fz_rng_seed(&rng, 12345);
    int rc = 0;
    size_t maxn = 129 * 257;
    float *A = fz_malloc(maxn * sizeof(float), err);
    float *B = fz_malloc(maxn * sizeof(float), err);
    float *C = fz_malloc(maxn * sizeof(float), err);
    float *R = fz_malloc(maxn * sizeof(float), err);
    if (!A || !B || !C || !R) {
        rc = -1;
        goto out;
    }
    for (size_t i = 0; i < maxn; i++) {
        A[i] = (float)(2.0 * fz_rng_uniform(&rng) - 1.0);
        B[i] = (float)(2.0 * fz_rng_uniform(&rng) - 1.0);
    }
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0] && rc == 0; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int t = 0; t < 4 && rc == 0; t++) {
            int ta = t & 1, tb = t >> 1;
            int lda = ta ? M : K, ldb = tb ? K : N;
            for (int i = 0; i < M * N; i++) C[i] = R[i] = (float)(i % 7) - 3.0f;
            fz_gemm(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, 0.5f, C, N);
            fz_gemm_naive(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, 0.5f, R, N);
            /* entries in [-1, 1]: the float rounding error grows at most ~K * eps * K;
             * a wrong kernel is off by O(1) */
            double tol = 1e-5 * K + 1e-5;
            for (int i = 0; i < M * N; i++) {
                if (!(fabs((double)C[i] - (double)R[i]) <= tol)) {
                    rc = fz_fail(err, FZ_EDATA,
                                 "BLAS self-check failed on core %s: sgemm %dx%dx%d trans %d%d "
                                 "element %d: %g vs reference %g",
                                 fz_blas_corename(), M, N, K, ta, tb, i, (double)C[i],
                                 (double)R[i]);
                    break;
                }
            }
        }
    }
out:
    free(A);
    free(B);
    free(C);
    free(R);
    return rc;
}

/* The pthreads OpenBLAS stops its worker threads with this (it does so before a fork) and
 * starts them again at its next threaded call. Weak: other builds may not have it. */
extern int blas_thread_shutdown_(void) __attribute__((weak));

void fz_blas_ftz(int on)
{
#if FZ_X86
    _MM_SET_FLUSH_ZERO_MODE(on ? _MM_FLUSH_ZERO_ON : _MM_FLUSH_ZERO_OFF);
    _MM_SET_DENORMALS_ZERO_MODE(on ? _MM_DENORMALS_ZERO_ON : _MM_DENORMALS_ZERO_OFF);
    /* OpenBLAS started its worker threads when it loaded, before main() could set the
     * mode, and (built without CONSISTENT_FPCSR, as Debian's is) never copies the caller's
     * MXCSR to them: their share of a product would run on denormals, up to 100 times
     * slower. A thread starts with its creator's MXCSR, so let them be started anew. */
    if (blas_thread_shutdown_) blas_thread_shutdown_();
#else
    (void)on;
#endif
}

void fz_blas_set_threads(int n)
{
    if (n >= 1) openblas_set_num_threads(n);
}

int fz_blas_threads(void) { return openblas_get_num_threads(); }
