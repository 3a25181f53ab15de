/* layers - forward+backward time of every layer of the vae-conv network at one batch size,
 * against the time OpenBLAS needs for the same matrix products alone.
 *
 *   make build/libfz.a
 *   cc -std=c11 -O2 -D_DEFAULT_SOURCE -Ilib $(pkg-config --cflags openblas) \
 *      -o build/bench-layers bench/layers.c build/libfz.a \
 *      $(pkg-config --libs openblas libarchive libpng) -lz -lm -lpthread
 *   OPENBLAS_NUM_THREADS=1 build/bench-layers [-cqT] [-B batch] [-l name] [-r reps] [-t threads]
 *                                            [-W 0|1]
 *
 * For each layer: the best of reps runs of forward (training mode) and of backward (dx
 * computed except for the first layer, as a network runner does), and for the Linear and
 * convolution layers the best of reps runs of the products alone at the shapes of one
 * whole-batch sgemm each (forward, weight gradient, input gradient), on buffers that are
 * already in place. The ratio is products-alone time over layer time: 1.0 means the layer
 * costs nothing beyond its sgemm calls. The last lines sum the layers into the estimated
 * time per image of one training step (forward + backward of encoder and decoder; the
 * loss, the optimiser and the reparameterisation are not counted). -q prints only the
 * totals; -l times only the layers whose name contains the
 * string, without the products alone (for a profiler); -c measures CPU time instead of wall time (see now()). fz_blas_init() runs first, so with OPENBLAS_CORETYPE unset the core is the one fz
 * tools get.
 *
 * Threads: -t sets the thread count (fz_blas_set_threads, as the tools' -t; the default is
 * OpenBLAS's, OPENBLAS_NUM_THREADS): the convolutions split their chunks over that many
 * threads, the other products are threaded by OpenBLAS. -T compares one thread with that
 * count in the same process: every repetition times each layer, and its products alone,
 * on one thread and then on all, so that load from other processes hits both alike; it
 * prints each layer's time on 1 and N threads and its speed-up beside the speed-up
 * OpenBLAS itself gets on the same products at whole-batch shapes.
 *
 * -W 0 turns the Winograd path of the wide 5x5 convolutions off (fz_conv_set_winograd), so
 * that they run folded as the thin ones do; -W 1 (the default) leaves it on. The "ratio"
 * column then compares with the direct products, which Winograd needs fewer of. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "nn.h"
#include "winograd.h"

/* wall clock, or with -c the CPU time of the process: on a busy machine that is the
 * fairer measure of a single-threaded run (with two BLAS threads it adds them up) */
static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void die(const char *msg)
{
    fprintf(stderr, "bench-layers: %s\n", msg);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory");
    return p;
}

/* The products of one layer over the whole batch, each as (transA, transB, M, N, K). */
typedef struct prod {
    int ta, tb, M, N, K;
} prod;

static int layer_prods(const fz_layer *L, int B, int with_dx, prod *p)
{
    int n = 0;
    if (L->kind == FZ_LINEAR) {
        int in = L->in.c, out = L->out.c;
        p[n++] = (prod){0, 1, B, out, in};    /* y = x W^T */
        p[n++] = (prod){1, 0, out, in, B};    /* dW = dy^T x */
        if (with_dx) p[n++] = (prod){0, 0, B, in, out}; /* dx = dy W */
    } else if (L->kind == FZ_CONV2D) {
        int O = L->out.c, CKK = L->in.c * L->k * L->k, N = B * L->out.h * L->out.w;
        p[n++] = (prod){0, 0, O, N, CKK};     /* y = W col */
        p[n++] = (prod){0, 1, O, CKK, N};     /* dW = dy col^T */
        if (with_dx) p[n++] = (prod){1, 0, CKK, N, O}; /* dcol = W^T dy */
    } else if (L->kind == FZ_CONVT2D) {
        int C = L->in.c, OKK = L->out.c * L->k * L->k, N = B * L->in.h * L->in.w;
        p[n++] = (prod){1, 0, OKK, N, C};     /* col = W^T x */
        p[n++] = (prod){0, 1, C, OKK, N};     /* dW = x col^T */
        if (with_dx) p[n++] = (prod){0, 0, C, N, OKK}; /* dx = W col */
    }
    return n;
}

/* Best time of reps runs of the products alone; flop is set to their sum. */
static double time_prods(const prod *p, int np, int reps, double *flop)
{
    size_t na = 0, nb = 0, nc = 0;
    *flop = 0;
    for (int i = 0; i < np; i++) {
        size_t a = (size_t)p[i].M * p[i].K, b = (size_t)p[i].K * p[i].N, c = (size_t)p[i].M * p[i].N;
        if (a > na) na = a;
        if (b > nb) nb = b;
        if (c > nc) nc = c;
        *flop += 2.0 * p[i].M * p[i].N * p[i].K;
    }
    float *A = xmalloc(na * sizeof *A), *Bm = xmalloc(nb * sizeof *Bm), *C = xmalloc(nc * sizeof *C);
    for (size_t i = 0; i < na; i++) A[i] = (float)(i % 17) * 0.01f - 0.08f;
    for (size_t i = 0; i < nb; i++) Bm[i] = (float)(i % 13) * 0.01f - 0.06f;
    memset(C, 0, nc * sizeof *C);
    double best = 1e30;
    for (int r = 0; r <= reps; r++) { /* run 0 warms up */
        double t0 = now();
        for (int i = 0; i < np; i++) {
            const prod *q = &p[i];
            int lda = q->ta ? q->M : q->K, ldb = q->tb ? q->K : q->N;
            /* the weight gradient accumulates (beta 1), the others overwrite */
            fz_gemm(q->ta, q->tb, q->M, q->N, q->K, 1.0f, A, lda, Bm, ldb, i == 1 ? 1.0f : 0.0f,
                    C, q->N);
        }
        double t = now() - t0;
        if (r && t < best) best = t;
    }
    free(A);
    free(Bm);
    free(C);
    return best;
}

typedef struct spec {
    const char *name;
    fz_layer L;
} spec;

/* -T: every layer (forward + backward) and its products alone on 1 and on nthr threads,
 * alternating within each repetition; best of reps for each. */
static void compare(spec *s, int n, int B, int reps, int nthr, int quiet, const char *only,
                    fz_rng *rng, float *P, float *G, float *Bf, float *scr, const float *x,
                    float *y, const float *dy, float *dx)
{
    double tl[2] = {0, 0}, tc[2] = {0, 0}, tg[2] = {0, 0}, tgc[2] = {0, 0};
    fz_err err;
    if (!quiet)
        printf("%-22s %9s %9s %7s %9s %9s %7s\n", "layer", "1 thr ms", "N thr ms", "speedup",
               "gemm 1", "gemm N", "speedup");
    size_t po = 0, bo = 0;
    for (int i = 0; i < n; i++) {
        fz_layer *L = &s[i].L;
        fz_layer_bind(L, P + po, G + po, Bf + bo);
        po += fz_layer_nparams(L);
        bo += fz_layer_nbuffers(L);
        if (only && !strstr(s[i].name, only)) continue;
        fz_layer_init_params(L, rng);
        /* reserved at nthr threads: on fewer, a convolution uses part of its scratch */
        if (fz_layer_reserve(L, B, scr, &err)) die(err.msg);
        int with_dx = i != 0;
        prod p[3];
        int npr = layer_prods(L, B, with_dx, p);
        double bl[2] = {1e30, 1e30}, bg[2] = {1e30, 1e30}, flop;
        for (int r = 0; r <= reps; r++)
            for (int k = 0; k < 2; k++) {
                fz_blas_set_threads(k ? nthr : 1);
                double t0 = now();
                fz_layer_forward(L, x, y, B, 1, rng);
                fz_layer_backward(L, x, y, dy, with_dx ? dx : NULL, B);
                double t = now() - t0;
                if (r && t < bl[k]) bl[k] = t;
                if (npr && r) {
                    double g = time_prods(p, npr, 1, &flop);
                    if (g < bg[k]) bg[k] = g;
                }
            }
        fz_blas_set_threads(nthr);
        int conv = L->kind == FZ_CONV2D || L->kind == FZ_CONVT2D;
        for (int k = 0; k < 2; k++) {
            tl[k] += bl[k];
            if (conv) tc[k] += bl[k];
            if (npr) tg[k] += bg[k];
            if (npr && conv) tgc[k] += bg[k];
        }
        if (!quiet) {
            if (npr)
                printf("%-22s %9.2f %9.2f %7.2f %9.2f %9.2f %7.2f\n", s[i].name, bl[0] * 1e3,
                       bl[1] * 1e3, bl[0] / bl[1], bg[0] * 1e3, bg[1] * 1e3, bg[0] / bg[1]);
            else
                printf("%-22s %9.2f %9.2f %7.2f %9s %9s %7s\n", s[i].name, bl[0] * 1e3,
                       bl[1] * 1e3, bl[0] / bl[1], "-", "-", "-");
        }
        fz_layer_free(L);
    }
    printf("all layers: %.1f ms on 1 thread, %.1f ms on %d (speed-up %.2f); "
           "their products alone: %.2f\n",
           tl[0] * 1e3, tl[1] * 1e3, nthr, tl[0] / tl[1], tg[1] > 0 ? tg[0] / tg[1] : 0);
    if (tc[1] > 0)
        printf("convolutions: %.1f ms on 1 thread, %.1f ms on %d (speed-up %.2f); "
               "their products alone: %.2f; layer speed-up / products' speed-up %.2f\n",
               tc[0] * 1e3, tc[1] * 1e3, nthr, tc[0] / tc[1], tgc[1] > 0 ? tgc[0] / tgc[1] : 0,
               tgc[1] > 0 ? (tc[0] / tc[1]) / (tgc[0] / tgc[1]) : 0);
    printf("one training step (layers only) on %d threads: %.3f ms per image (%.0f images/s)\n",
           nthr, tl[1] * 1e3 / B, B / tl[1]);
}

int main(int argc, char **argv)
{
    int switched = fz_blas_init(argc, argv);
    fz_blas_ftz(1);
    int B = 256, reps = 5, quiet = 0, threads = 0, cmp = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-B") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-q")) quiet = 1;
        else if (!strcmp(argv[i], "-c")) clock_id = CLOCK_PROCESS_CPUTIME_ID;
        else if (!strcmp(argv[i], "-T")) cmp = 1;
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-l") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "-W") && i + 1 < argc && (!strcmp(argv[i + 1], "0") || !strcmp(argv[i + 1], "1")))
            fz_conv_set_winograd(argv[++i][0] == '1');
        else {
            fprintf(stderr, "usage: bench-layers [-cqT] [-B batch] [-l name] [-r reps] [-t threads] [-W 0|1]\n");
            return 2;
        }
    }
    if (B < 1 || B > 4096 || reps < 1 || reps > 1000) die("batch must be in [1, 4096], reps in [1, 1000]");
    if (threads < 0 || threads > 64) die("threads must be in [1, 64]");
    if (threads) fz_blas_set_threads(threads);
    int nthr = fz_blas_threads();
    if (cmp && nthr < 2) die("-T needs a thread count of at least 2 (-t or OPENBLAS_NUM_THREADS)");
    fz_err err;
    if (switched && fz_blas_selfcheck(&err) != 0) die(err.msg);
    const char *nt = getenv("OPENBLAS_NUM_THREADS"), *ct = getenv("OPENBLAS_CORETYPE");
    printf("core %s, OPENBLAS_CORETYPE=%s, OPENBLAS_NUM_THREADS=%s, threads %d%s, batch %d, "
           "best of %d, %s, Winograd %s\n",
           fz_blas_corename(), ct ? ct : "unset", nt ? nt : "unset", nthr,
           cmp ? " against 1 (interleaved)" : "", B, reps,
           clock_id == CLOCK_MONOTONIC ? "wall time" : "CPU time", fz_conv_winograd() ? "on" : "off");

    /* vae-conv with latent 2: the encoder, then the decoder */
    enum { NL = 33 };
    spec s[NL];
    int n = 0, rc = 0;
    fz_shape a = {8, 24, 24}, b2 = {16, 20, 20}, c3 = {32, 16, 16}, d4 = {64, 12, 12};
#define ADD(nm, call) do { s[n].name = nm; rc |= (call); n++; } while (0)
    ADD("enc conv 1->8", fz_conv2d_init(&s[n].L, 1, 28, 28, 8, 5, 1, 0, 1, &err));
    ADD("enc silu 8x24x24", fz_act_init(&s[n].L, FZ_SILU, a, &err));
    ADD("enc conv 8->16", fz_conv2d_init(&s[n].L, 8, 24, 24, 16, 5, 1, 0, 1, &err));
    ADD("enc silu 16x20x20", fz_act_init(&s[n].L, FZ_SILU, b2, &err));
    ADD("enc conv 16->32", fz_conv2d_init(&s[n].L, 16, 20, 20, 32, 5, 1, 0, 1, &err));
    ADD("enc silu 32x16x16", fz_act_init(&s[n].L, FZ_SILU, c3, &err));
    ADD("enc conv 32->64", fz_conv2d_init(&s[n].L, 32, 16, 16, 64, 5, 1, 0, 1, &err));
    ADD("enc bn2d 64x12x12", fz_batchnorm2d_init(&s[n].L, 64, 12, 12, &err));
    ADD("enc silu 64x12x12", fz_act_init(&s[n].L, FZ_SILU, d4, &err));
    ADD("enc linear 9216->625", fz_linear_init(&s[n].L, 9216, 625, 1, &err));
    ADD("enc bn1d 625", fz_batchnorm1d_init(&s[n].L, 625, &err));
    ADD("enc silu 625", fz_act_init(&s[n].L, FZ_SILU, (fz_shape){625, 1, 1}, &err));
    ADD("enc linear 625->4", fz_linear_init(&s[n].L, 625, 4, 1, &err));
    ADD("dec linear 2->625", fz_linear_init(&s[n].L, 2, 625, 1, &err));
    ADD("dec bn1d 625", fz_batchnorm1d_init(&s[n].L, 625, &err));
    ADD("dec silu 625", fz_act_init(&s[n].L, FZ_SILU, (fz_shape){625, 1, 1}, &err));
    ADD("dec linear 625->9216", fz_linear_init(&s[n].L, 625, 9216, 1, &err));
    ADD("dec bn1d 9216", fz_batchnorm1d_init(&s[n].L, 9216, &err));
    ADD("dec silu 9216", fz_act_init(&s[n].L, FZ_SILU, (fz_shape){9216, 1, 1}, &err));
    ADD("dec convt 64->32", fz_convt2d_init(&s[n].L, 64, 12, 12, 32, 5, 1, 0, 0, 1, &err));
    ADD("dec silu 32x16x16", fz_act_init(&s[n].L, FZ_SILU, c3, &err));
    ADD("dec convt 32->16", fz_convt2d_init(&s[n].L, 32, 16, 16, 16, 5, 1, 0, 0, 1, &err));
    ADD("dec silu 16x20x20", fz_act_init(&s[n].L, FZ_SILU, b2, &err));
    ADD("dec convt 16->8", fz_convt2d_init(&s[n].L, 16, 20, 20, 8, 5, 1, 0, 0, 1, &err));
    ADD("dec silu 8x24x24", fz_act_init(&s[n].L, FZ_SILU, a, &err));
    ADD("dec convt 8->1", fz_convt2d_init(&s[n].L, 8, 24, 24, 1, 5, 1, 0, 0, 1, &err));
    ADD("dec sigmoid 1x28x28", fz_act_init(&s[n].L, FZ_SIGMOID, (fz_shape){1, 28, 28}, &err));
#undef ADD
    if (rc) die(err.msg);

    /* one parameter block, one gradient block, one buffer block, one shared scratch */
    size_t np = 0, nbuf = 0, nscr = 0, widest = 0;
    for (int i = 0; i < n; i++) {
        np += fz_layer_nparams(&s[i].L);
        nbuf += fz_layer_nbuffers(&s[i].L);
        size_t sc = fz_layer_scratch_floats(&s[i].L);
        if (sc > nscr) nscr = sc;
        size_t w = fz_layer_in_size(&s[i].L);
        if (fz_layer_out_size(&s[i].L) > w) w = fz_layer_out_size(&s[i].L);
        if (w > widest) widest = w;
    }
    float *P = xmalloc(np * sizeof *P), *G = xmalloc(np * sizeof *G);
    float *Bf = xmalloc(nbuf * sizeof *Bf), *scr = xmalloc(nscr * sizeof *scr);
    size_t act = (size_t)B * widest;
    float *x = xmalloc(act * sizeof *x), *y = xmalloc(act * sizeof *y);
    float *dy = xmalloc(act * sizeof *dy), *dx = xmalloc(act * sizeof *dx);
    memset(G, 0, np * sizeof *G);
    fz_rng rng;
    fz_rng_seed(&rng, 1);
    for (size_t i = 0; i < act; i++) {
        x[i] = (float)(2 * fz_rng_uniform(&rng) - 1);
        dy[i] = (float)(2 * fz_rng_uniform(&rng) - 1) * 1e-3f;
    }
    printf("shared scratch %zu floats (%.1f MB)\n", nscr, nscr * 4.0 / 1048576);
    if (cmp) {
        compare(s, n, B, reps, nthr, quiet, only, &rng, P, G, Bf, scr, x, y, dy, dx);
        goto out;
    }
    if (!quiet)
        printf("%-22s %8s %8s %8s %9s %9s %6s %9s\n", "layer", "fwd ms", "bwd ms", "MFLOP",
               "GFLOP/s", "gemm ms", "ratio", "scratch");
    double tot = 0, tot_gemm = 0, tot_flop = 0;
    size_t po = 0, bo = 0;
    for (int i = 0; i < n; i++) {
        fz_layer *L = &s[i].L;
        fz_layer_bind(L, P + po, G + po, Bf + bo);
        po += fz_layer_nparams(L);
        bo += fz_layer_nbuffers(L);
        if (only && !strstr(s[i].name, only)) continue;
        fz_layer_init_params(L, &rng);
        if (fz_layer_reserve(L, B, scr, &err)) die(err.msg);
        int with_dx = i != 0;
        double tf = 1e30, tb = 1e30;
        for (int r = 0; r <= reps; r++) {
            double t0 = now();
            fz_layer_forward(L, x, y, B, 1, &rng);
            double t1 = now();
            fz_layer_backward(L, x, y, dy, with_dx ? dx : NULL, B);
            double t2 = now();
            if (r && t1 - t0 < tf) tf = t1 - t0;
            if (r && t2 - t1 < tb) tb = t2 - t1;
        }
        prod p[3];
        int npr = layer_prods(L, B, with_dx, p);
        double flop = 0, tg = 0;
        for (int j = 0; j < npr; j++) flop += 2.0 * p[j].M * p[j].N * p[j].K;
        if (npr && !only) tg = time_prods(p, npr, reps, &flop);
        tot += tf + tb;
        tot_gemm += tg;
        tot_flop += flop;
        if (!quiet) {
            if (npr)
                printf("%-22s %8.2f %8.2f %8.0f %9.1f %9.2f %6.2f %9zu\n", s[i].name, tf * 1e3,
                       tb * 1e3, flop * 1e-6, flop / (tf + tb) * 1e-9, tg * 1e3, tg / (tf + tb),
                       fz_layer_scratch_floats(L));
            else
                printf("%-22s %8.2f %8.2f %8s %9s %9s %6s %9s\n", s[i].name, tf * 1e3, tb * 1e3,
                       "-", "-", "-", "-", "-");
        }
        fz_layer_free(L);
    }
    printf("total: %.1f ms per batch of %d = %.3f ms per image (%.0f images/s), "
           "%.1f GFLOP/s; products alone %.1f ms (ratio %.2f)\n",
           tot * 1e3, B, tot * 1e3 / B, B / tot, tot_flop / tot * 1e-9, tot_gemm * 1e3,
           tot_gemm / tot);
    printf("estimated epoch of 60000 images: %.0f s (layers only)\n", tot / B * 60000);
out:
    free(P);
    free(G);
    free(Bf);
    free(scr);
    free(x);
    free(y);
    free(dy);
    free(dx);
    return 0;
}
