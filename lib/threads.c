/* threads.c - the persistent worker pool of threads.h.
 *
 * One job at a time: a generation counter under one mutex says that a new job is posted.
 * Part w (1-based, w < n) belongs to worker w, but it is run by whoever takes its slot
 * first under the mutex: the worker when it wakes up, or the caller once it has run part
 * 0. So a worker that the system wakes late (a busy machine: waking a thread can take
 * longer than a small part) never holds the caller up; with parts that take their work
 * from a shared counter (conv.c) the caller then finds nothing left to do. A worker that
 * took its slot counts itself in `pending`, and the caller waits for those. After a part,
 * a worker spins for a short while (FZ_SPIN_NS) watching for the next job before it
 * sleeps, and the caller spins as long for the workers before it sleeps: layers follow
 * each other closely, and a sleeping thread takes long to wake.
 * A second mutex, only ever try-locked, admits one caller: anyone else (another thread, or
 * a part that calls fz_threads_run again) runs its parts serially instead of waiting.
 */
#include "threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define FZ_X86 1
#define cpu_relax() _mm_pause()
#else
#define FZ_X86 0
#define cpu_relax() ((void)0)
#endif

/* How long a thread spins for the next event before it sleeps on a condition variable. */
#define FZ_SPIN_NS 200000L

static struct {
    pthread_mutex_t mu;        /* guards everything below */
    pthread_cond_t go, done;   /* a job is posted / the last worker part finished */
    pthread_mutex_t run;       /* held by the one caller using the pool */
    pthread_t tid[FZ_THREADS_MAX];
    unsigned start_gen[FZ_THREADS_MAX]; /* the generation a worker was started at */
    unsigned taken[FZ_THREADS_MAX];     /* the generation whose part w + 1 was taken */
    int nworkers;              /* started; worker w in 1..nworkers is tid[w - 1] */
    int quit;
    atomic_uint gen;           /* incremented per posted job (under mu; read by spinners) */
    int n;                     /* parts of the current job */
    atomic_int pending;        /* parts taken by workers and not finished (changed under mu) */
    void (*fn)(void *, int);
    void *arg;
    unsigned csr;              /* the caller's SSE control word (x86) */
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
          .go = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER,
          .run = PTHREAD_MUTEX_INITIALIZER};

/* A job started by fz_threads_start and not finished yet: only its owner (the thread
 * holding pool.run) reads or changes this. */
static struct {
    int active;
    pthread_t owner;
    unsigned gen;
    int nw;
    void (*fn)(void *, int);
    void *arg;
} bg;

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Spin until gen differs from seen (1) or FZ_SPIN_NS have passed (0). */
static int spin_for_job(unsigned seen)
{
    long long t0 = now_ns();
    for (int k = 0;; k++) {
        if (atomic_load_explicit(&pool.gen, memory_order_acquire) != seen) return 1;
        for (int p = 0; p < 16; p++) cpu_relax();
        if ((k & 15) == 15 && now_ns() - t0 > FZ_SPIN_NS) return 0;
    }
}

static void *worker(void *p)
{
    int w = (int)(intptr_t)p;
    pthread_mutex_lock(&pool.mu);
    unsigned seen = pool.start_gen[w - 1];
    for (;;) {
        while (atomic_load(&pool.gen) == seen && !pool.quit) pthread_cond_wait(&pool.go, &pool.mu);
        if (pool.quit) break;
        seen = atomic_load(&pool.gen);
        if (w >= pool.n || pool.taken[w - 1] == seen) continue; /* no part, or the caller's */
        pool.taken[w - 1] = seen;
        atomic_fetch_add(&pool.pending, 1);
        void (*fn)(void *, int) = pool.fn;
        void *arg = pool.arg;
#if FZ_X86
        unsigned csr = pool.csr;
#endif
        pthread_mutex_unlock(&pool.mu);
#if FZ_X86
        /* flush-to-zero like the caller: denormals would make this part many times slower */
        if (_mm_getcsr() != csr) _mm_setcsr(csr);
#endif
        fn(arg, w);
        pthread_mutex_lock(&pool.mu);
        if (atomic_fetch_sub(&pool.pending, 1) == 1) pthread_cond_signal(&pool.done);
        pthread_mutex_unlock(&pool.mu);
        spin_for_job(seen);
        pthread_mutex_lock(&pool.mu);
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

/* At exit: stop and join the workers, so that nothing of them is left (valgrind counts a
 * live thread's memory as lost). Skipped when a job is running in another thread. */
static void stop_workers(void)
{
    if (pthread_mutex_trylock(&pool.run) != 0) return;
    pthread_mutex_lock(&pool.mu);
    pool.quit = 1;
    pthread_cond_broadcast(&pool.go);
    int n = pool.nworkers;
    pthread_mutex_unlock(&pool.mu);
    for (int i = 0; i < n; i++) pthread_join(pool.tid[i], NULL);
    pthread_mutex_lock(&pool.mu);
    pool.nworkers = 0;
    pool.quit = 0;
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.run);
}

/* In the child of a fork only the forking thread exists: forget the workers (their stacks
 * are not ours to free) and start over at the next call. */
static void after_fork_child(void)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pool.mu = m;
    pool.run = m;
    pool.go = c;
    pool.done = c;
    pool.nworkers = 0;
    pool.quit = 0;
    atomic_store(&pool.pending, 0);
    bg.active = 0;
}

static void install_hooks(void)
{
    atexit(stop_workers);
    pthread_atfork(NULL, NULL, after_fork_child);
}

/* Start workers until there are want of them (or as many as could be started); called
 * with pool.mu held and no job running. */
static void grow(int want)
{
    if (want > FZ_THREADS_MAX) want = FZ_THREADS_MAX;
    if (pool.nworkers >= want) return;
    pthread_once(&hooks_once, install_hooks);
    while (pool.nworkers < want) {
        int w = pool.nworkers + 1;
        pool.start_gen[w - 1] = atomic_load(&pool.gen);
        /* a new thread inherits the creator's SSE control word; each part sets it anyway */
        if (pthread_create(&pool.tid[w - 1], NULL, worker, (void *)(intptr_t)w) != 0) break;
        pool.nworkers = w;
    }
}

/* Post fn's parts 1..nw to the workers (caller holds pool.run); returns the generation. */
static unsigned post(int n, void (*fn)(void *arg, int i), void *arg, int *nw_out)
{
    pthread_mutex_lock(&pool.mu);
    grow(n - 1);
    int nw = pool.nworkers < n - 1 ? pool.nworkers : n - 1; /* parts 1..nw go to workers */
    pool.fn = fn;
    pool.arg = arg;
    pool.n = nw + 1;
#if FZ_X86
    pool.csr = _mm_getcsr();
#endif
    unsigned gen = atomic_load(&pool.gen) + 1;
    atomic_store_explicit(&pool.gen, gen, memory_order_release);
    if (nw) pthread_cond_broadcast(&pool.go);
    pthread_mutex_unlock(&pool.mu);
    *nw_out = nw;
    return gen;
}

/* After the caller's own part: the workers' parts that no worker has taken yet (the caller
 * runs them) and parts nw+1..n-1, then wait for the workers still running theirs. */
static void complete(unsigned gen, int nw, int n, void (*fn)(void *arg, int i), void *arg)
{
    for (int w = 1; w <= nw; w++) {
        pthread_mutex_lock(&pool.mu);
        int mine = pool.taken[w - 1] != gen;
        pool.taken[w - 1] = gen;
        pthread_mutex_unlock(&pool.mu);
        if (mine) fn(arg, w);
    }
    for (int i = nw + 1; i < n; i++) fn(arg, i);
    long long t0 = now_ns();
    for (int k = 0; atomic_load_explicit(&pool.pending, memory_order_acquire) > 0; k++) {
        for (int p = 0; p < 16; p++) cpu_relax();
        if ((k & 15) == 15 && now_ns() - t0 > FZ_SPIN_NS) break;
    }
    pthread_mutex_lock(&pool.mu);
    while (atomic_load(&pool.pending) > 0) pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
}

static int bg_mine(void) { return bg.active && pthread_equal(bg.owner, pthread_self()); }

void fz_threads_run(int n, void (*fn)(void *arg, int i), void *arg)
{
    if (bg_mine()) fz_threads_finish(); /* the pool is needed now: the started job first */
    if (n <= 1 || pthread_mutex_trylock(&pool.run) != 0) {
        for (int i = 0; i < (n < 1 ? 1 : n); i++) fn(arg, i);
        return;
    }
    int nw;
    unsigned gen = post(n, fn, arg, &nw);
    fn(arg, 0);
    complete(gen, nw, n, fn, arg);
    pthread_mutex_unlock(&pool.run);
}

int fz_threads_start(void (*fn)(void *arg, int i), void *arg)
{
    if (bg_mine()) fz_threads_finish();
    if (pthread_mutex_trylock(&pool.run) != 0) return -1;
    int nw;
    unsigned gen = post(2, fn, arg, &nw);
    if (nw < 1) { /* no worker could be started: nothing was posted to anyone */
        pthread_mutex_unlock(&pool.run);
        return -1;
    }
    bg.active = 1;
    bg.owner = pthread_self();
    bg.gen = gen;
    bg.nw = nw;
    bg.fn = fn;
    bg.arg = arg;
    return 0;
}

void fz_threads_finish(void)
{
    if (!bg_mine()) return;
    bg.active = 0;
    bg.fn(bg.arg, 0);
    complete(bg.gen, bg.nw, 2, bg.fn, bg.arg);
    pthread_mutex_unlock(&pool.run);
}

/* fz_threads_pieces: part i takes the pieces [P i / T, P (i + 1) / T), in order. Contiguous
 * shares rather than pieces in turn from a shared counter: the data a pass reads were
 * mostly written by the pass before it, cut the same way (a product cut into blocks of
 * rows, part 0 on the caller), so each thread finds its share in its own core's cache. A
 * late worker still never holds the caller up: fz_threads_run gives its untaken part to
 * the caller. */
typedef struct pieces_job {
    void (*fn)(void *arg, size_t k, size_t lo, size_t hi);
    void *arg;
    size_t n, piece, pieces;
    int T;
} pieces_job;

static void pieces_part(void *arg, int i)
{
    const pieces_job *j = arg;
    size_t k0 = j->pieces * (size_t)i / (size_t)j->T, k1 = j->pieces * (size_t)(i + 1) / (size_t)j->T;
    for (size_t k = k0; k < k1; k++) {
        size_t lo = k * j->piece;
        j->fn(j->arg, k, lo, j->n - lo < j->piece ? j->n : lo + j->piece);
    }
}

void fz_threads_pieces(int T, size_t n, size_t piece,
                       void (*fn)(void *arg, size_t k, size_t lo, size_t hi), void *arg)
{
    if (n == 0) return;
    if (piece == 0) piece = n;
    size_t pieces = (n + piece - 1) / piece;
    if (T > FZ_THREADS_MAX) T = FZ_THREADS_MAX;
    if (T > 1 && (size_t)T > pieces) T = (int)pieces;
    if (T < 1) T = 1;
    pieces_job j = {fn, arg, n, piece, pieces, T};
    if (T > 1)
        fz_threads_run(T, pieces_part, &j);
    else
        pieces_part(&j, 0);
}

int fz_threads_started(void)
{
    pthread_mutex_lock(&pool.mu);
    int n = pool.nworkers;
    pthread_mutex_unlock(&pool.mu);
    return n;
}
