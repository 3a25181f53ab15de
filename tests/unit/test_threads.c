/* test_threads - the worker pool (every part runs once, on a worker when there is one,
 * with the caller's flush-to-zero mode; nested calls run serially), and the convolutions
 * with their groups of samples split over two threads: forward, input and parameter gradients equal
 * to one thread's within float rounding, for odd batches, both layer kinds, strides and
 * padding, several chunk sizes (not bit for bit: OpenBLAS's kernels may round a column
 * differently in a product of another width); two runs on two threads bit-identical; the
 * scratch grows with the thread count. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "check.h"
#include "nn.h"
#include "rng.h"
#include "threads.h"
#include "train.h"

#if defined(__x86_64__) || defined(__i386__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#define HAVE_CSR 1
#else
#define HAVE_CSR 0
#endif

/* ---- the pool ------------------------------------------------------------------------ */

enum { MAXP = 8 };
typedef struct probe {
    int runs[MAXP];
    pthread_t who[MAXP];
    unsigned csr[MAXP];
    int nested_ok[MAXP];
} probe;

static void probe_part(void *arg, int i)
{
    probe *p = arg;
    p->runs[i]++;
    p->who[i] = pthread_self();
#if HAVE_CSR
    p->csr[i] = _mm_getcsr();
#endif
}

static void count_part(void *arg, int i) { ((int *)arg)[i]++; }

/* probe_part after about 0.2 ms of work */
static void slow_part(void *arg, int i)
{
    volatile double acc = 0;
    for (int k = 0; k < 200000; k++) acc += k * 1e-9;
    probe_part(arg, i);
}

/* each part calls the pool again: that runs serially on the part's own thread */
static void nested_part(void *arg, int i)
{
    probe *p = arg;
    int inner[3] = {0, 0, 0};
    fz_threads_run(3, count_part, inner);
    p->nested_ok[i] = inner[0] == 1 && inner[1] == 1 && inner[2] == 1;
}

static void test_pool(void)
{
    for (int n = 0; n <= 5; n++) {
        probe p;
        memset(&p, 0, sizeof p);
        fz_threads_run(n, probe_part, &p);
        int parts = n < 1 ? 1 : n;
        for (int i = 0; i < MAXP; i++) CHECK_EQ_INT(p.runs[i], i < parts ? 1 : 0);
        CHECK(pthread_equal(p.who[0], pthread_self()));
        if (n >= 2) CHECK(fz_threads_started() >= n - 1);
    }
    /* the caller runs the parts of workers that have not woken up yet; parts that take a
     * while do run on the workers */
    int on_worker = 0;
    for (int r = 0; r < 200 && on_worker < 10; r++) {
        probe q;
        memset(&q, 0, sizeof q);
        fz_threads_run(2, slow_part, &q);
        CHECK(q.runs[0] == 1 && q.runs[1] == 1);
        on_worker += !pthread_equal(q.who[1], pthread_self());
    }
    CHECK_EQ_INT(on_worker, 10);
    /* many calls in a row: no part lost or doubled, no thread started per call */
    int started = fz_threads_started(), cnt[4] = {0};
    for (int r = 0; r < 2000; r++) fz_threads_run(4, count_part, cnt);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(cnt[i], 2000);
    CHECK_EQ_INT(fz_threads_started(), started);

    probe p;
    memset(&p, 0, sizeof p);
    fz_threads_run(2, nested_part, &p);
    CHECK(p.nested_ok[0] && p.nested_ok[1]);

#if HAVE_CSR
    /* the workers compute with the caller's flush-to-zero / denormals-are-zero bits, both
     * ways, whatever they had before */
    unsigned ftz = _MM_FLUSH_ZERO_ON | _MM_DENORMALS_ZERO_ON, saved = _mm_getcsr();
    for (int on = 1; on >= 0; on--) {
        _mm_setcsr(on ? saved | ftz : saved & ~ftz);
        if ((_mm_getcsr() & ftz) != (on ? ftz : 0)) continue; /* not emulated (valgrind) */
        int r = 0;
        do { /* until part 1 ran on a worker */
            memset(&p, 0, sizeof p);
            fz_threads_run(2, slow_part, &p);
        } while (pthread_equal(p.who[1], pthread_self()) && ++r < 1000);
        CHECK(!pthread_equal(p.who[1], pthread_self()));
        CHECK_EQ_INT(p.csr[1] & ftz, on ? ftz : 0);
        CHECK_EQ_INT(p.csr[1], p.csr[0]);
    }
    _mm_setcsr(saved);
#endif
}

/* ---- convolutions on one and two threads --------------------------------------------- */

static fz_rng rng;

typedef struct cfg {
    int transposed, c, h, w, o, k, s, p, op;
} cfg;

/* The layer of configuration c, with a bias. */
static void layer_init(const cfg *c, fz_layer *L)
{
    fz_err err;
    int rc = c->transposed
                 ? fz_convt2d_init(L, c->c, c->h, c->w, c->o, c->k, c->s, c->p, c->op, 1, &err)
                 : fz_conv2d_init(L, c->c, c->h, c->w, c->o, c->k, c->s, c->p, 1, &err);
    CHECK_EQ_INT(rc, 0);
}

/* Forward and backward of the layer on x with threads threads and chunk samples per chunk
 * (0 = the default): y (B, out), dx (B, in), g (the parameter gradients, nparams). */
static void run(const cfg *c, int chunk, int threads, const float *params, const float *x,
                const float *dy, int B, float *y, float *dx, float *g)
{
    fz_layer L;
    fz_err err;
    layer_init(c, &L);
    L.chunk = chunk;
    fz_blas_set_threads(threads);
    size_t np = fz_layer_nparams(&L);
    float *p = malloc(np * sizeof *p);
    memcpy(p, params, np * sizeof *p);
    /* the gradient block starts non-zero: backward adds to it */
    for (size_t i = 0; i < np; i++) g[i] = 0.25f;
    fz_layer_bind(&L, p, g, NULL);
    CHECK_EQ_INT(fz_layer_reserve(&L, B, NULL, &err), 0);
    CHECK_EQ_INT(L.threads, threads);
    fz_layer_forward(&L, x, y, B, 1, NULL);
    fz_layer_backward(&L, x, y, dy, dx, B);
    fz_layer_free(&L);
    free(p);
}

/* max |a - b| over max(1, max |b|) */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, m = 1;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= d)) d = e; /* NaN counts */
        if (fabs(b[i]) > m) m = fabs(b[i]);
    }
    return d / m;
}

static void test_conv_threads(void)
{
    static const cfg cfgs[] = {
        {0, 3, 9, 8, 4, 3, 2, 1, 0},  /* Conv2d stride 2, padding 1, odd sizes */
        {0, 2, 7, 7, 5, 5, 1, 0, 0},  /* Conv2d 5x5 as in vae-conv */
        {0, 1, 6, 5, 3, 2, 3, 2, 0},  /* kernel smaller than the stride */
        {1, 4, 5, 5, 2, 3, 2, 1, 1},  /* ConvTranspose2d stride 2, output padding */
        {1, 3, 6, 4, 2, 4, 1, 2, 0},  /* ConvTranspose2d padding 2 */
        {1, 6, 5, 4, 4, 5, 1, 1, 0},  /* ConvTranspose2d stride 1 as in vae-conv */
    };
    static const int batches[] = {1, 3, 257};
    static const int chunks[] = {0, 1, 7};
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++) {
        const cfg *c = &cfgs[ci];
        fz_layer L;
        layer_init(c, &L);
        size_t in = fz_layer_in_size(&L), out = fz_layer_out_size(&L), np = fz_layer_nparams(&L);
        /* the scratch: per thread its chunk, plus a gradient buffer per extra thread */
        fz_blas_set_threads(1);
        size_t s1 = fz_layer_scratch_floats_for(&L, 4), s1any = fz_layer_scratch_floats(&L);
        fz_blas_set_threads(2);
        size_t s2 = fz_layer_scratch_floats_for(&L, 4), s2any = fz_layer_scratch_floats(&L);
        if (c->s == 1) {
            /* one sample at a time: a region per thread whatever the batch, the gradients of
             * 2 x 4 - 1 groups of samples beyond the first, and the weights once */
            size_t nw = np - (size_t)c->o; /* the bias has out_c entries */
            CHECK_EQ_INT(s1any, s1);
            CHECK_EQ_INT(s2any, s2);
            CHECK_EQ_INT(s2, 2 * (s1 - nw) + 7 * np + nw);
        } else {
            /* 2 threads x 2 samples = 1 thread x 4 samples, and the gradients of 2 x 4 - 1
             * groups of samples beyond the first */
            CHECK_EQ_INT(s2, s1 + 7 * np);
            CHECK_EQ_INT(s2any, 2 * s1any + 7 * np); /* any batch: a full chunk each */
        }
        int Bmax = 257;
        float *x = malloc(Bmax * in * sizeof *x), *dy = malloc(Bmax * out * sizeof *dy);
        float *par = malloc(np * sizeof *par);
        float *y1 = malloc(Bmax * out * sizeof *y1), *y2 = malloc(Bmax * out * sizeof *y2);
        float *y3 = malloc(Bmax * out * sizeof *y3);
        float *dx1 = malloc(Bmax * in * sizeof *dx1), *dx2 = malloc(Bmax * in * sizeof *dx2);
        float *dx3 = malloc(Bmax * in * sizeof *dx3);
        float *g1 = malloc(np * sizeof *g1), *g2 = malloc(np * sizeof *g2);
        float *g3 = malloc(np * sizeof *g3);
        for (size_t i = 0; i < Bmax * in; i++) x[i] = (float)(2 * fz_rng_uniform(&rng) - 1);
        for (size_t i = 0; i < Bmax * out; i++) dy[i] = (float)(2 * fz_rng_uniform(&rng) - 1);
        for (size_t i = 0; i < np; i++) par[i] = (float)(2 * fz_rng_uniform(&rng) - 1);
        for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++)
            for (size_t ki = 0; ki < sizeof chunks / sizeof chunks[0]; ki++) {
                int B = batches[bi], ch = chunks[ki];
                run(c, ch, 1, par, x, dy, B, y1, dx1, g1);
                run(c, ch, 2, par, x, dy, B, y2, dx2, g2);
                run(c, ch, 2, par, x, dy, B, y3, dx3, g3);
                double ey = rel_diff(y2, y1, B * out), ex = rel_diff(dx2, dx1, B * in),
                       eg = rel_diff(g2, g1, np);
                /* the same sums in another grouping: float rounding only */
                CHECK_MSG(ey <= 1e-5 && ex <= 1e-5 && eg <= 1e-5,
                          "config %zu batch %d chunk %d: y %g dx %g grads %g", ci, B, ch, ey, ex, eg);
                /* on two threads: bit for bit the same every time */
                CHECK_MSG(memcmp(y2, y3, B * out * sizeof *y2) == 0 &&
                              memcmp(dx2, dx3, B * in * sizeof *dx2) == 0 &&
                              memcmp(g2, g3, np * sizeof *g2) == 0,
                          "config %zu batch %d chunk %d: two runs differ", ci, B, ch);
            }
        free(x);
        free(dy);
        free(par);
        free(y1);
        free(y2);
        free(y3);
        free(dx1);
        free(dx2);
        free(dx3);
        free(g1);
        free(g2);
        free(g3);
    }
    /* a layer reserved for one thread stays on one when the count rises later (its
     * scratch has room for one chunk only), and one reserved for two runs on one when the
     * count falls */
    fz_layer L;
    fz_err err;
    CHECK_EQ_INT(fz_conv2d_init(&L, 2, 6, 6, 3, 3, 1, 1, 1, &err), 0);
    fz_blas_set_threads(1);
    size_t np = fz_layer_nparams(&L);
    float *p = calloc(np, sizeof *p), *g = calloc(np, sizeof *g);
    fz_layer_bind(&L, p, g, NULL);
    fz_layer_init_params(&L, &rng);
    size_t ns = fz_layer_scratch_floats_for(&L, 8);
    float *scr = malloc(ns * sizeof *scr);
    CHECK_EQ_INT(fz_layer_reserve(&L, 8, scr, &err), 0);
    CHECK_EQ_INT(L.threads, 1);
    fz_blas_set_threads(2);
    float x[8 * 72], y[8 * 108], y2[8 * 108];
    for (int i = 0; i < 8 * 72; i++) x[i] = (float)(2 * fz_rng_uniform(&rng) - 1);
    fz_layer_forward(&L, x, y, 8, 1, NULL);
    fz_layer_free(&L);
    CHECK_EQ_INT(fz_layer_reserve(&L, 8, NULL, &err), 0);
    CHECK_EQ_INT(L.threads, 2);
    fz_blas_set_threads(1);
    fz_layer_forward(&L, x, y2, 8, 1, NULL);
    CHECK(memcmp(y, y2, sizeof y) == 0);
    fz_layer_free(&L);
    free(scr);
    free(p);
    free(g);
}

/* ---- element-wise layers on one and two threads ---------------------------------- */

/* The activations and BatchNorm2d split elements or channels over the threads, each
 * computed as on one thread: the same bits. Sizes above the threshold (2^17 floats) so
 * that the split happens, and odd so that the parts are uneven. */
/* A BatchNorm layer L (made, not yet bound) on `threads` threads: parameters p (gamma then
 * beta, C each, set away from 1 and 0), gradients g from zero, running statistics buf;
 * training forward into y, backward into dx, evaluation forward into ev. */
static void run_batchnorm(fz_layer *L, int C, int B, int threads, float *p, float *g, float *buf,
                          const float *x, const float *dy, float *y, float *dx, float *ev)
{
    fz_err err;
    fz_layer_bind(L, p, g, buf);
    fz_layer_init_params(L, &rng);
    for (int c = 0; c < C; c++) {
        p[c] = 0.5f + (float)c / C;
        p[C + c] = (float)c / (2 * C) - 0.2f;
    }
    memset(g, 0, 2 * (size_t)C * sizeof *g);
    CHECK_EQ_INT(fz_layer_reserve(L, B, NULL, &err), 0);
    fz_blas_set_threads(threads);
    fz_layer_forward(L, x, y, B, 1, NULL);
    fz_layer_backward(L, x, y, dy, dx, B);
    fz_layer_forward(L, x, ev, B, 0, NULL);
    fz_layer_free(L);
}

static void test_elementwise_threads(void)
{
    enum { B = 37, C = 9, H = 21, W = 23 };
    size_t n = (size_t)B * C * H * W; /* 160,839 */
    float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy);
    float *y[2], *dx[2];
    for (int k = 0; k < 2; k++) {
        y[k] = malloc(n * sizeof *y[k]);
        dx[k] = malloc(n * sizeof *dx[k]);
    }
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)(6 * fz_rng_uniform(&rng) - 3);
        dy[i] = (float)(2 * fz_rng_uniform(&rng) - 1);
    }
    fz_err err;
    static const fz_layer_kind kinds[] = {FZ_SILU, FZ_SIGMOID, FZ_TANH, FZ_SOFTPLUS, FZ_RELU};
    /* 37 samples: above 2^17 floats, every activation splits; 5 samples (21,735 floats):
     * only the forward of the exp-based ones, from 2^14 on */
    static const int batches[] = {B, 5};
    for (int bi = 0; bi < 2; bi++)
        for (size_t ki = 0; ki < sizeof kinds / sizeof kinds[0]; ki++) {
            int Bb = batches[bi];
            size_t nb = (size_t)Bb * C * H * W;
            fz_layer L;
            CHECK_EQ_INT(fz_act_init(&L, kinds[ki], (fz_shape){C, H, W}, &err), 0);
            CHECK_EQ_INT(fz_layer_reserve(&L, Bb, NULL, &err), 0);
            for (int k = 0; k < 2; k++) {
                fz_blas_set_threads(k + 1);
                fz_layer_forward(&L, x, y[k], Bb, 1, NULL);
                fz_layer_backward(&L, x, y[k], dy, dx[k], Bb);
            }
            CHECK_MSG(memcmp(y[0], y[1], nb * sizeof(float)) == 0, "%s forward, batch %d",
                      fz_layer_kind_name(kinds[ki]), Bb);
            CHECK_MSG(memcmp(dx[0], dx[1], nb * sizeof(float)) == 0, "%s backward, batch %d",
                      fz_layer_kind_name(kinds[ki]), Bb);
            /* in place (dx == dy) on two threads too */
            memcpy(dx[1], dy, nb * sizeof(float));
            fz_layer_backward(&L, x, y[1], dx[1], dx[1], Bb);
            CHECK_MSG(memcmp(dx[0], dx[1], nb * sizeof(float)) == 0,
                      "%s backward in place, batch %d", fz_layer_kind_name(kinds[ki]), Bb);
            fz_layer_free(&L);
        }
    /* BatchNorm2d: training forward (batch statistics, running statistics), backward
     * (parameter and input gradients), evaluation forward */
    float p[2][2 * C], g[2][2 * C], buf[2][2 * C], *ev[2];
    for (int k = 0; k < 2; k++) {
        fz_layer L;
        ev[k] = malloc(n * sizeof *ev[k]);
        CHECK_EQ_INT(fz_batchnorm2d_init(&L, C, H, W, &err), 0);
        run_batchnorm(&L, C, B, k + 1, p[k], g[k], buf[k], x, dy, y[k], dx[k], ev[k]);
    }
    CHECK_MSG(memcmp(y[0], y[1], n * sizeof(float)) == 0, "BatchNorm2d training forward");
    CHECK_MSG(memcmp(dx[0], dx[1], n * sizeof(float)) == 0, "BatchNorm2d backward");
    CHECK_MSG(memcmp(ev[0], ev[1], n * sizeof(float)) == 0, "BatchNorm2d evaluation");
    free(ev[0]);
    free(ev[1]);
    CHECK(memcmp(g[0], g[1], sizeof g[0]) == 0);
    CHECK(memcmp(buf[0], buf[1], sizeof buf[0]) == 0);
    free(x);
    free(dy);
    for (int k = 0; k < 2; k++) {
        free(y[k]);
        free(dx[k]);
    }
}

/* BatchNorm1d splits its channels over the threads from 2^20 values: 405 rows of 2,600
 * channels (blocks of 16 channels: 163, the last one short), on 1, 2 and 3 threads, the same
 * bits for the training forward, the running statistics, the backward and the evaluation
 * forward. */
static void test_bn1d_threads(void)
{
    enum { B = 405, C = 2600, NT = 3 };
    size_t n = (size_t)B * C;
    float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy);
    float *y[NT], *dx[NT], *ev[NT];
    static float p[NT][2 * C], g[NT][2 * C], buf[NT][2 * C];
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)(6 * fz_rng_uniform(&rng) - 3 + 0.001 * (i % C));
        dy[i] = (float)(2 * fz_rng_uniform(&rng) - 1);
    }
    fz_err err;
    for (int k = 0; k < NT; k++) {
        y[k] = malloc(n * sizeof *y[k]);
        dx[k] = malloc(n * sizeof *dx[k]);
        ev[k] = malloc(n * sizeof *ev[k]);
        fz_layer L;
        CHECK_EQ_INT(fz_batchnorm1d_init(&L, C, &err), 0);
        run_batchnorm(&L, C, B, k + 1, p[k], g[k], buf[k], x, dy, y[k], dx[k], ev[k]);
    }
    for (int k = 1; k < NT; k++) {
        CHECK_MSG(memcmp(y[0], y[k], n * sizeof(float)) == 0, "BatchNorm1d forward, %d threads", k + 1);
        CHECK_MSG(memcmp(dx[0], dx[k], n * sizeof(float)) == 0, "BatchNorm1d backward, %d threads", k + 1);
        CHECK_MSG(memcmp(ev[0], ev[k], n * sizeof(float)) == 0, "BatchNorm1d evaluation, %d threads", k + 1);
        CHECK_MSG(memcmp(g[0], g[k], sizeof g[0]) == 0, "BatchNorm1d parameter gradients, %d threads", k + 1);
        CHECK_MSG(memcmp(buf[0], buf[k], sizeof buf[0]) == 0, "BatchNorm1d running statistics, %d threads", k + 1);
    }
    /* and against the definition: channel 37's output has mean beta and variance gamma^2 */
    double m = 0, v = 0;
    for (int b = 0; b < B; b++) m += y[1][(size_t)b * C + 37];
    m /= B;
    for (int b = 0; b < B; b++) v += (y[1][(size_t)b * C + 37] - m) * (y[1][(size_t)b * C + 37] - m);
    v /= B;
    CHECK_MSG(fabs(m - p[1][C + 37]) < 1e-4, "channel 37 mean %g, beta %g", m, p[1][C + 37]);
    CHECK_MSG(fabs(v - (double)p[1][37] * p[1][37]) < 1e-3, "channel 37 variance %g, gamma^2 %g", v,
              (double)p[1][37] * p[1][37]);
    for (int k = 0; k < NT; k++) {
        free(y[k]);
        free(dx[k]);
        free(ev[k]);
    }
    free(x);
    free(dy);
}

/* Dropout draws and applies its mask over the threads from 32,768 values, in even pieces:
 * 405 rows of 99 (40,095 values, odd), on 1, 2 and 3 threads from the same generator
 * state, the same mask as fz_rng_keep_mask draws at once, the same outputs and input
 * gradients, and the generator left in the same state. */
static void test_dropout_threads(void)
{
    enum { B = 405, D = 99, NT = 3 };
    size_t n = (size_t)B * D;
    float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy);
    float *y[NT], *dx[NT];
    unsigned char *mask = malloc(n);
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)(2 * fz_rng_uniform(&rng) - 1);
        dy[i] = (float)(2 * fz_rng_uniform(&rng) - 1);
    }
    fz_rng seeded, after[NT];
    fz_rng_seed(&seeded, 77);
    fz_rng ref = seeded;
    fz_rng_keep_mask(&ref, mask, n, 0.3);
    fz_err err;
    for (int k = 0; k < NT; k++) {
        y[k] = malloc(n * sizeof *y[k]);
        dx[k] = malloc(n * sizeof *dx[k]);
        fz_layer L;
        CHECK_EQ_INT(fz_dropout_init(&L, (fz_shape){1, 1, D}, 0.3f, &err), 0);
        CHECK_EQ_INT(fz_layer_reserve(&L, B, NULL, &err), 0);
        fz_blas_set_threads(k + 1);
        after[k] = seeded;
        fz_layer_forward(&L, x, y[k], B, 1, &after[k]);
        fz_layer_backward(&L, x, y[k], dy, dx[k], B);
        size_t wrong = 0;
        for (size_t i = 0; i < n; i++)
            wrong += y[k][i] != (mask[i] ? x[i] * (1.0f / 0.7f) : 0.0f);
        CHECK_MSG(wrong == 0, "Dropout on %d threads: %zu outputs not those of the mask", k + 1, wrong);
        fz_layer_free(&L);
    }
    for (int k = 1; k < NT; k++) {
        CHECK_MSG(memcmp(y[0], y[k], n * sizeof(float)) == 0, "Dropout forward, %d threads", k + 1);
        CHECK_MSG(memcmp(dx[0], dx[k], n * sizeof(float)) == 0, "Dropout backward, %d threads", k + 1);
        CHECK(memcmp(after[k].s, ref.s, sizeof ref.s) == 0);
    }
    CHECK(memcmp(after[0].s, ref.s, sizeof ref.s) == 0);
    /* a piece from an even start, of odd and even lengths, is that part of the whole mask */
    unsigned char *piece = malloc(n);
    uint64_t key = fz_rng_u64(&seeded);
    for (size_t lo = 0; lo < 300; lo += 62)
        for (size_t len = 1; len <= 101; len += 25) {
            memset(piece, 2, n);
            fz_rng_keep_range(key, piece, lo, lo + len, 0.3);
            CHECK_MSG(memcmp(piece + lo, mask + lo, len) == 0 && piece[lo + len] == 2 &&
                          (lo == 0 || piece[lo - 1] == 2),
                      "keep mask piece [%zu, %zu)", lo, lo + len);
        }
    free(piece);
    for (int k = 0; k < NT; k++) {
        free(y[k]);
        free(dx[k]);
    }
    free(mask);
    free(x);
    free(dy);
}

/* A batch's rows gathered over the threads (from 2^17 floats): the rows of a shuffled
 * order, 333 rows of 784 floats (261,072), on one and on two threads, each row where it
 * belongs; and a small gather (one thread whatever the count). */
static void test_gather(void)
{
    enum { ROWS = 1000, D = 784, N = 333 };
    float *src = malloc(sizeof(float) * ROWS * D), *dst[2];
    size_t idx[N];
    for (size_t i = 0; i < (size_t)ROWS * D; i++) src[i] = (float)i;
    for (int b = 0; b < N; b++) idx[b] = (size_t)(b * 397 + 11) % ROWS;
    for (int k = 0; k < 2; k++) {
        dst[k] = malloc(sizeof(float) * N * D);
        fz_blas_set_threads(k + 1);
        fz_gather_rows(dst[k], src, idx, N, D);
    }
    int bad = 0;
    for (int b = 0; b < N; b++)
        if (memcmp(dst[1] + (size_t)b * D, src + idx[b] * D, D * sizeof(float)) != 0) bad++;
    CHECK_MSG(bad == 0, "%d of %d rows gathered wrong on two threads", bad, N);
    CHECK(memcmp(dst[0], dst[1], sizeof(float) * N * D) == 0);
    fz_gather_rows(dst[1], src, idx + 5, 3, D);
    CHECK(memcmp(dst[1], src + idx[5] * D, D * sizeof(float)) == 0);
    CHECK(memcmp(dst[1] + 2 * D, src + idx[7] * D, D * sizeof(float)) == 0);
    fz_blas_set_threads(1);
    free(src);
    free(dst[0]);
    free(dst[1]);
}

/* fz_threads_pieces: every element of [0, n) in exactly one piece, piece k being
 * [k piece, min(n, (k + 1) piece)), on one thread and on three; n not a multiple. */
typedef struct piece_rec {
    unsigned char *seen; /* (n) times each element was covered */
    size_t piece, n;
    int bad;
} piece_rec;

static void piece_fn(void *arg, size_t k, size_t lo, size_t hi)
{
    piece_rec *r = arg;
    size_t want_hi = (k + 1) * r->piece < r->n ? (k + 1) * r->piece : r->n;
    if (lo != k * r->piece || hi != want_hi) r->bad = 1; /* racy flag, set only on error */
    for (size_t i = lo; i < hi; i++) r->seen[i]++;
}

static void test_pieces(void)
{
    for (int T = 1; T <= 3; T += 2) {
        piece_rec r = {calloc(100003, 1), 4096, 100003, 0};
        fz_threads_pieces(T, r.n, r.piece, piece_fn, &r);
        size_t wrong = 0;
        for (size_t i = 0; i < r.n; i++) wrong += r.seen[i] != 1;
        CHECK_MSG(wrong == 0 && !r.bad, "T %d: %zu elements not covered once, bad %d", T, wrong,
                  r.bad);
        free(r.seen);
    }
}

/* A started job (fz_threads_start): part 1 runs on a worker while the caller goes on,
 * part 0 on the caller at fz_threads_finish; each exactly once. The caller's own
 * fz_threads_run finishes it first; another thread's call runs its parts serially
 * meanwhile; finish without a job does nothing. */
typedef struct other_job {
    probe p;
    int done;
} other_job;

static void *other_thread(void *arg)
{
    other_job *o = arg;
    fz_threads_run(3, probe_part, &o->p);
    o->done = 1;
    return NULL;
}

static void test_started(void)
{
    fz_threads_finish(); /* nothing running: nothing happens */
    probe p;
    memset(&p, 0, sizeof p);
    CHECK_EQ_INT(fz_threads_start(slow_part, &p), 0);
    /* meanwhile another thread's call runs serially on that thread */
    other_job o;
    memset(&o, 0, sizeof o);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, other_thread, &o) == 0);
    pthread_join(th, NULL);
    CHECK(o.done && o.p.runs[0] == 1 && o.p.runs[1] == 1 && o.p.runs[2] == 1);
    CHECK(pthread_equal(o.p.who[1], th) && pthread_equal(o.p.who[2], th));
    CHECK_EQ_INT(p.runs[0], 0); /* the caller's part waits for finish */
    fz_threads_finish();
    CHECK(p.runs[0] == 1 && p.runs[1] == 1);
    CHECK(pthread_equal(p.who[0], pthread_self()));
    /* the caller's fz_threads_run finishes the started job before its own */
    probe q, r;
    memset(&q, 0, sizeof q);
    memset(&r, 0, sizeof r);
    CHECK_EQ_INT(fz_threads_start(probe_part, &q), 0);
    fz_threads_run(2, probe_part, &r);
    CHECK(q.runs[0] == 1 && q.runs[1] == 1 && r.runs[0] == 1 && r.runs[1] == 1);
    fz_threads_finish(); /* already finished: nothing more */
    CHECK(q.runs[0] == 1 && q.runs[1] == 1);
    /* a start while one is running finishes the first */
    memset(&q, 0, sizeof q);
    memset(&r, 0, sizeof r);
    CHECK_EQ_INT(fz_threads_start(probe_part, &q), 0);
    CHECK_EQ_INT(fz_threads_start(probe_part, &r), 0);
    CHECK(q.runs[0] == 1 && q.runs[1] == 1);
    fz_threads_finish();
    CHECK(r.runs[0] == 1 && r.runs[1] == 1);
}

int main(void)
{
    fz_blas_ftz(1);
    fz_rng_seed(&rng, 7);
    test_pool();
    test_started();
    test_conv_threads();
    test_elementwise_threads();
    test_bn1d_threads();
    test_dropout_threads();
    test_gather();
    test_pieces();
    return check_report("test_threads");
}
