/* test_winograd - the Winograd F(2x2, 5x5) path of the stride-1 5x5 convolutions against
 * the folded path (fz_conv_set_winograd(0)) on random data: forward, input gradient and
 * weight and bias gradients of Conv2d and ConvTranspose2d, over odd and even grid sizes,
 * padding 0 and 2, batches of 1 and 7, on 1 and 2 threads; and the same bits when a call
 * is repeated. (test_nn checks the path against central differences.) */
#include <stdlib.h>

#include "check.h"
#include "blas.h"
#include "nn.h"
#include "rng.h"
#include "winograd.h"

static fz_rng rng;

static double urand(double lo, double hi) { return lo + (hi - lo) * fz_rng_uniform(&rng); }

/* The results of one forward and one backward (with dx) of a layer. */
typedef struct run {
    float *y, *dx, *g; /* (B, out), (B, in), (nparams) */
} run;

/* Forward and backward of a copy of *proto with parameters p, on `threads` threads with
 * Winograd on or off. */
static run run_layer(const fz_layer *proto, const float *p, const float *x, const float *dy,
                     int B, int threads, int wino)
{
    fz_layer L = *proto;
    fz_err err = {0};
    size_t np = fz_layer_nparams(&L), nin = B * fz_layer_in_size(&L), nout = B * fz_layer_out_size(&L);
    float *pc = malloc(np * sizeof *pc);
    run r = {malloc(nout * sizeof(float)), malloc(nin * sizeof(float)), calloc(np, sizeof(float))};
    memcpy(pc, p, np * sizeof *pc);
    fz_blas_set_threads(threads);
    int prev = fz_conv_set_winograd(wino);
    fz_layer_bind(&L, pc, r.g, NULL);
    CHECK_EQ_INT(fz_layer_reserve(&L, B, NULL, &err), 0);
    fz_layer_forward(&L, x, r.y, B, 1, NULL);
    fz_layer_backward(&L, x, r.y, dy, r.dx, B);
    fz_layer_free(&L);
    fz_conv_set_winograd(prev);
    fz_blas_set_threads(1);
    free(pc);
    return r;
}

static void run_free(run *r)
{
    free(r->y);
    free(r->dx);
    free(r->g);
}

/* max |a - b| over max |b| */
static double rel_err(const float *a, const float *b, size_t n)
{
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - b[i]));
    return scale > 0 ? worst / scale : worst;
}

static void compare(const char *name, const fz_layer *L)
{
    static const int batches[] = {1, 7}, threads[] = {1, 2};
    size_t np = fz_layer_nparams(L), nw = np - (L->has_bias ? (size_t)L->out.c : 0);
    for (int bi = 0; bi < 2; bi++) {
        int B = batches[bi];
        size_t nin = B * fz_layer_in_size(L), nout = B * fz_layer_out_size(L);
        float *p = malloc(np * sizeof *p), *x = malloc(nin * sizeof *x), *dy = malloc(nout * sizeof *dy);
        for (size_t i = 0; i < np; i++) p[i] = (float)urand(-0.1, 0.1);
        for (size_t i = 0; i < nin; i++) x[i] = (float)urand(-1, 1);
        for (size_t i = 0; i < nout; i++) dy[i] = (float)urand(-1, 1);
        run ref = run_layer(L, p, x, dy, B, 1, 0);
        for (int ti = 0; ti < 2; ti++) {
            int T = threads[ti];
            run w = run_layer(L, p, x, dy, B, T, 1), again = run_layer(L, p, x, dy, B, T, 1);
            double ey = rel_err(w.y, ref.y, nout), ex = rel_err(w.dx, ref.dx, nin);
            double ew = rel_err(w.g, ref.g, nw), eb = np > nw ? rel_err(w.g + nw, ref.g + nw, np - nw) : 0;
            CHECK_MSG(ey < 1e-4, "%s B=%d T=%d forward: relative error %g", name, B, T, ey);
            CHECK_MSG(ex < 1e-4, "%s B=%d T=%d dx: relative error %g", name, B, T, ex);
            CHECK_MSG(ew < 1e-4, "%s B=%d T=%d dweight: relative error %g", name, B, T, ew);
            CHECK_MSG(eb < 1e-5, "%s B=%d T=%d dbias: relative error %g", name, B, T, eb);
            /* the path was taken (the bits differ from the folded path's) */
            CHECK_MSG(memcmp(w.y, ref.y, nout * sizeof(float)) != 0, "%s: same bits as folded", name);
            /* a repeated call gives the same bits */
            CHECK(memcmp(w.y, again.y, nout * sizeof(float)) == 0);
            CHECK(memcmp(w.dx, again.dx, nin * sizeof(float)) == 0);
            CHECK(memcmp(w.g, again.g, np * sizeof(float)) == 0);
            if (getenv("FZ_TEST_VERBOSE"))
                fprintf(stderr, "%-44s B=%d T=%d  y %.2e  dx %.2e  dw %.2e  db %.2e\n", name, B,
                        T, ey, ex, ew, eb);
            run_free(&w);
            run_free(&again);
        }
        run_free(&ref);
        free(p);
        free(x);
        free(dy);
    }
}

static void test_conv2d(void)
{
    /* in_c, h, w, out_c, pad, bias: vae-conv's 16->32 and 32->64, odd grids (5x4, 7x9,
     * 1x1, 3x11, and 4x21: 11 tiles a row, more than the 8 lanes of a pass), padding 0,
     * 1 and 2 */
    static const int cases[][6] = {
        {16, 20, 20, 32, 0, 1}, {32, 16, 16, 64, 0, 1}, {16, 9, 8, 16, 0, 1},
        {16, 7, 9, 17, 2, 0},   {20, 5, 5, 16, 0, 1},   {16, 3, 11, 24, 2, 1},
        {16, 6, 23, 16, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *c = cases[i];
        fz_layer L;
        fz_err err;
        char name[96];
        CHECK_EQ_INT(fz_conv2d_init(&L, c[0], c[1], c[2], c[3], 5, 1, c[4], c[5], &err), 0);
        snprintf(name, sizeof name, "Conv2d %dx%dx%d->%d p%d -> %dx%d", c[0], c[1], c[2], c[3],
                 c[4], L.out.h, L.out.w);
        compare(name, &L);
    }
}

static void test_convt2d(void)
{
    /* in_c, h, w, out_c, pad, bias: vae-conv's 64->32 and 32->16, odd grids (the input:
     * 5x7, 7x3, 1x1, 6x5, and 4x19: 10 tiles a row), padding 0, 1 and 2 */
    static const int cases[][6] = {
        {64, 12, 12, 32, 0, 1}, {32, 16, 16, 16, 0, 1}, {16, 5, 7, 16, 0, 1},
        {17, 7, 3, 16, 2, 0},   {16, 1, 1, 20, 0, 1},   {24, 6, 5, 16, 2, 1},
        {16, 4, 19, 16, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *c = cases[i];
        fz_layer L;
        fz_err err;
        char name[96];
        CHECK_EQ_INT(fz_convt2d_init(&L, c[0], c[1], c[2], c[3], 5, 1, c[4], 0, c[5], &err), 0);
        snprintf(name, sizeof name, "ConvT2d %dx%dx%d->%d p%d -> %dx%d", c[0], c[1], c[2], c[3],
                 c[4], L.out.h, L.out.w);
        compare(name, &L);
    }
}

/* The switch: on by default, returns the previous setting. */
static void test_switch(void)
{
    CHECK_EQ_INT(fz_conv_winograd(), 1);
    CHECK_EQ_INT(fz_conv_set_winograd(0), 1);
    CHECK_EQ_INT(fz_conv_winograd(), 0);
    CHECK_EQ_INT(fz_conv_set_winograd(1), 0);
}

int main(void)
{
    fz_rng_seed(&rng, 7);
    test_switch();
    test_conv2d();
    test_convt2d();
    return check_report("test_winograd");
}
