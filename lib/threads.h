/* threads.h - a small persistent pool of worker threads for the layers' own parallel loops.
 *
 * fz_threads_run(n, fn, arg) calls fn(arg, i) once for every part i in [0, n): part 0 on the
 * calling thread, parts 1..n-1 on worker threads, and returns when all are done. The work a
 * part does must depend only on i and n, never on which thread runs it: when workers are
 * missing (they could not be started, the pool is in use by another thread, or the call is
 * nested inside a part) the calling thread runs the remaining parts itself, one after the
 * other, with the same results; it also runs, after part 0, the parts of workers that have
 * not woken up by then. Parts that share their work through a counter (each taking the
 * next unit until none is left) thus never wait for a late worker.
 *
 *     static void part(void *arg, int i) { job *j = arg; ... samples [lo(i), hi(i)) ... }
 *     fz_threads_run(fz_blas_threads(), part, &j);
 *
 * The workers are started at the first call that needs them (n - 1 of them, more later if
 * a larger n comes) and then wait on a condition variable between calls: no thread is
 * created and nothing is allocated per call. Each part starts with the caller's SSE control
 * word (flush-to-zero and denormals-are-zero, see fz_blas_ftz in blas.h), so a worker
 * computes with the same floating-point mode as the caller. The workers are stopped and
 * joined at exit (atexit), and forgotten in the child of a fork (only the forking thread
 * survives there; the pool starts anew at the next call).
 *
 * Never prints, never exits; cannot fail (the fallback above is the failure path).
 */
#ifndef FZ_THREADS_H
#define FZ_THREADS_H

#include <stddef.h>

/* The most worker threads the pool starts (plus the caller): parts beyond them run on the
 * calling thread. */
#define FZ_THREADS_MAX 64

/* Run fn(arg, i) for every i in [0, n) (n < 1 counts as 1) as described above. */
void fz_threads_run(int n, void (*fn)(void *arg, int i), void *arg);

/* Call fn(arg, k, lo, hi) for every piece k of [0, n) cut into pieces of `piece` elements
 * ([lo, hi) = [k piece, min(n, (k + 1) piece))), on T threads (fz_threads_run), part i
 * taking a contiguous share of the pieces in order (part 0, the caller, the first); T <= 1
 * runs them on the caller in order. The pieces
 * do not depend on T, so work that keeps a result per piece (a partial sum added in piece
 * order afterwards) has the same bits on any thread count. */
void fz_threads_pieces(int T, size_t n, size_t piece,
                       void (*fn)(void *arg, size_t k, size_t lo, size_t hi), void *arg);

/* A two-part job whose parts run at different times: part 1 starts on a worker now and
 * fz_threads_start returns at once; part 0 runs on the caller when it calls
 * fz_threads_finish, which then waits for part 1 (or runs it too, if no worker has taken
 * it). Parts that take their work from a shared counter let the caller's part 0 take what
 * the worker has not done by then. Meanwhile the pool belongs to the job: the caller's own
 * fz_threads_run (or fz_threads_start) finishes it first; other threads run their parts
 * serially. Returns 0 when started, -1 when it was not (the pool is busy, or no worker
 * could be started): then nothing runs, and the caller does the work itself.
 * fz_threads_finish does nothing when no job of the caller's is running. */
int fz_threads_start(void (*fn)(void *arg, int i), void *arg);
void fz_threads_finish(void);

/* Worker threads started so far (for tests and benchmarks). */
int fz_threads_started(void);

#endif
