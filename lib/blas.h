/* blas.h - the one matrix-multiply entry point, its plain-loop oracle, and the choice of
 * OpenBLAS core type.
 *
 * All matrices are float32, row-major. fz_gemm computes
 *
 *     C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C
 *
 * where op(X) is X when transX == 0 and X^T otherwise. lda/ldb/ldc are the row strides of
 * the matrices as stored: A is stored (M, K) with lda >= K when transA == 0, and (K, M) with
 * lda >= M when transA != 0; likewise B is stored (K, N) or (N, K); C is (M, N), ldc >= N.
 * When beta == 0, C is only written, never read (NaNs in it do not propagate).
 *
 * Core type. Debian's OpenBLAS is built with DYNAMIC_ARCH: at load time it picks kernels
 * for the CPU it recognises, and on CPUs newer than the library it may fall back to slow
 * SSE3 kernels ("Prescott") although the CPU has AVX2 or AVX-512. The environment variable
 * OPENBLAS_CORETYPE overrides the choice but is only read when the library loads, so
 * fz_blas_init() re-executes the program once with it set (see below). A user-set
 * OPENBLAS_CORETYPE is always respected.
 *
 * Typical tool main():
 *
 *     int main(int argc, char **argv) {
 *         int switched = fz_blas_init(argc, argv);   // may not return (re-exec)
 *         fz_blas_ftz(1);
 *         if (switched && fz_blas_selfcheck(&err) != 0) die(err.msg);
 *         ...
 */
#ifndef FZ_BLAS_H
#define FZ_BLAS_H

#include "util.h"

/* C (M, N) = alpha * op(A) * op(B) + beta * C through OpenBLAS cblas_sgemm. OpenBLAS's own
 * threads are never used. From 2^20 multiply-adds (M * N * K) on, when more than one thread
 * is allowed (fz_blas_set_threads), the product is cut into one block of rows or columns of
 * C per thread, each computed by single-threaded OpenBLAS on a thread of the pool of
 * threads.h; smaller products run on the calling thread. The results depend on the thread count a
 * product runs with, so runs repeat bit for bit with a fixed thread count. Not to be
 * called from inside a part of fz_threads_run (use fz_gemm_serial there). */
void fz_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
             int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* What the parts of a product do around their block of C, on the thread that computes the
 * block and while it is in that thread's cache: before the product, each of the block's
 * rows is set to bias (N floats; the product then adds to it: give beta 1); after it, fn
 * (if not NULL) is called on rows [row0, row1) and columns [col0, col1) of C. Blocks cover
 * C once; a block with col0 == 0 holds whole rows' starts, so work per row of C (a sum
 * over a row range) is done once by taking only those. On one thread: one block, all of
 * C. */
typedef struct fz_gemm_epilogue {
    const float *bias;
    void (*fn)(void *ctx, int row0, int row1, int col0, int col1);
    void *ctx;
} fz_gemm_epilogue;

/* The number of blocks fz_gemm cuts an M x N x K product into with the current thread
 * count (1: it runs on the calling thread). */
int fz_gemm_parts(int M, int N, int K);

/* fz_gemm with an epilogue (NULL: none). The bias set before the product gives the bits of
 * setting all of C to it first. */
void fz_gemm_ep(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc,
                const fz_gemm_epilogue *ep);

/* The same product on the calling thread, for parts of a parallel loop (threads.h) running
 * concurrently: it never changes OpenBLAS's thread count (fz_gemm does, for small
 * products, and two threads doing so at once would race). Call it between
 * fz_blas_serial_begin() and fz_blas_serial_end() on the thread that started the loop, so
 * that OpenBLAS runs each product on the thread that calls it. */
void fz_gemm_serial(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Set OpenBLAS to one thread, returning the previous count for fz_blas_serial_end(), which
 * restores it. */
int fz_blas_serial_begin(void);
void fz_blas_serial_end(int prev);

/* The same product with plain loops and double accumulation: slow, kept as the oracle the
 * tests and fz_blas_selfcheck compare fz_gemm with. */
void fz_gemm_naive(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* CPU features relevant to the core choice. FZ_CPU_AVX512 is set only when AVX-512 F, BW,
 * DQ and VL are all present AND the operating system saves the AVX-512 register state
 * (XCR0 bits 5-7); FZ_CPU_AVX2/FMA likewise require the OS to save the YMM state. */
enum { FZ_CPU_AVX2 = 1, FZ_CPU_FMA = 2, FZ_CPU_AVX512 = 4 };
/* The flags of the running CPU (0 on non-x86 machines). */
unsigned fz_cpu_features(void);

/* The pure selection rule: given the core OpenBLAS chose and the CPU flags, return the core
 * type to ask for instead, or NULL to keep the library's choice. A weak fallback core
 * (Prescott, Nehalem, Core2, Penryn, Dunnington, Atom, Sandybridge, Katmai, Coppermine,
 * Northwood, Banias, Barcelona, Opteron, Bulldozer, Piledriver) becomes "SkylakeX" when the
 * flags have FZ_CPU_AVX512, else "Haswell" when they have FZ_CPU_AVX2 and FZ_CPU_FMA, else
 * it is kept. An AVX-512 core is never returned without FZ_CPU_AVX512 (emulators such as
 * valgrind do not run AVX-512 code). Any other core name is kept. */
const char *fz_blas_pick_core(const char *corename, unsigned cpu_flags);

/* Call first thing in main(). If OPENBLAS_CORETYPE is unset and fz_blas_pick_core() wants a
 * different core, sets OPENBLAS_CORETYPE and FZ_BLAS_REEXEC=1 and re-executes
 * /proc/self/exe with the same argv (argv[argc] must be NULL, as main() gets it); this is
 * tried once, and if exec fails the environment is restored and the program continues on
 * the library's choice. Returns 1 in the re-executed program (the core was chosen here, so
 * the caller may want fz_blas_selfcheck()), 0 otherwise. Never prints. */
int fz_blas_init(int argc, char **argv);

/* The core OpenBLAS runs on, e.g. "Haswell" (for logs). */
const char *fz_blas_corename(void);

/* Multiply a few odd-shaped random matrices with fz_gemm and fz_gemm_naive for all four
 * transpose combinations and compare. Returns 0, or -1 with a reason naming the shape. */
int fz_blas_selfcheck(fz_err *err);

/* Flush-to-zero and denormals-are-zero on (1) or off (0) for the calling thread's SSE unit:
 * denormal floats make training many times slower and carry no useful signal. OpenBLAS's
 * worker threads (pthreads build) are stopped so that its next threaded product starts
 * them again from the calling thread, with the same setting; call it from the thread that
 * will call fz_gemm, before the first product. Other threads keep their own setting. */
void fz_blas_ftz(int on);

/* Threads OpenBLAS may use (n >= 1); the tools' -t option. */
void fz_blas_set_threads(int n);
int fz_blas_threads(void);

#endif
