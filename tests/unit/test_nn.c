/* test_nn - every layer's float forward against a double-precision reference (a naive
 * direct convolution for the convolutions), and its backward against central differences
 * of that double reference, for the input and the parameter gradients. */
#include <float.h>
#include <stdlib.h>

#include "check.h"
#include "blas.h"
#include "nn.h"
#include "rng.h"

/* ---- the double-precision reference forward ----------------------------------------- */

static double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }

/* y (B, out) from x (B, in) with the layer's hyper-parameters but double parameters
 * pd (weight then bias) and running statistics rm, rv (BatchNorm in eval). keep is the
 * Dropout mask of a training forward. Reads nothing else from L. */
static void ref_forward(const fz_layer *L, const double *pd, const double *rm, const double *rv,
                        const double *x, double *y, int B, int train, const unsigned char *keep)
{
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    int Ci = L->in.c, H = L->in.h, W = L->in.w, Co = L->out.c, Ho = L->out.h, Wo = L->out.w;
    int k = L->k, s = L->stride, p = L->pad;
    switch (L->kind) {
    case FZ_LINEAR: {
        const double *w = pd, *b = pd + (size_t)Ci * Co;
        for (int n = 0; n < B; n++)
            for (int o = 0; o < Co; o++) {
                double a = L->has_bias ? b[o] : 0.0;
                for (int i = 0; i < Ci; i++) a += w[(size_t)o * Ci + i] * x[n * in + i];
                y[n * out + o] = a;
            }
        break;
    }
    case FZ_CONV2D: {
        /* direct convolution: y[o,oh,ow] = b[o] + sum W[o,c,i,j] x[c, oh*s-p+i, ow*s-p+j] */
        const double *w = pd, *b = pd + (size_t)Co * Ci * k * k;
        for (int n = 0; n < B; n++)
            for (int o = 0; o < Co; o++)
                for (int oh = 0; oh < Ho; oh++)
                    for (int ow = 0; ow < Wo; ow++) {
                        double a = L->has_bias ? b[o] : 0.0;
                        for (int c = 0; c < Ci; c++)
                            for (int i = 0; i < k; i++)
                                for (int j = 0; j < k; j++) {
                                    int ih = oh * s - p + i, iw = ow * s - p + j;
                                    if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                    a += w[((size_t)(o * Ci + c) * k + i) * k + j] *
                                         x[n * in + ((size_t)c * H + ih) * W + iw];
                                }
                        y[n * out + ((size_t)o * Ho + oh) * Wo + ow] = a;
                    }
        break;
    }
    case FZ_CONVT2D: {
        /* every input pixel scatters W[c,o,:,:] * x onto the output at stride s */
        const double *w = pd, *b = pd + (size_t)Co * Ci * k * k;
        for (int n = 0; n < B; n++) {
            for (int o = 0; o < Co; o++)
                for (int j = 0; j < Ho * Wo; j++)
                    y[n * out + (size_t)o * Ho * Wo + j] = L->has_bias ? b[o] : 0.0;
            for (int c = 0; c < Ci; c++)
                for (int ih = 0; ih < H; ih++)
                    for (int iw = 0; iw < W; iw++)
                        for (int o = 0; o < Co; o++)
                            for (int i = 0; i < k; i++)
                                for (int j = 0; j < k; j++) {
                                    int oh = ih * s - p + i, ow = iw * s - p + j;
                                    if (oh < 0 || oh >= Ho || ow < 0 || ow >= Wo) continue;
                                    y[n * out + ((size_t)o * Ho + oh) * Wo + ow] +=
                                        w[((size_t)(c * Co + o) * k + i) * k + j] *
                                        x[n * in + ((size_t)c * H + ih) * W + iw];
                                }
        }
        break;
    }
    case FZ_BATCHNORM1D:
    case FZ_BATCHNORM2D: {
        size_t S = (size_t)H * W, cnt = (size_t)B * S;
        for (int c = 0; c < Ci; c++) {
            double mean = rm[c], var = rv[c];
            if (train) {
                mean = var = 0;
                for (int n = 0; n < B; n++)
                    for (size_t j = 0; j < S; j++) mean += x[n * in + c * S + j];
                mean /= cnt;
                for (int n = 0; n < B; n++)
                    for (size_t j = 0; j < S; j++) {
                        double d = x[n * in + c * S + j] - mean;
                        var += d * d;
                    }
                var /= cnt;
            }
            for (int n = 0; n < B; n++)
                for (size_t j = 0; j < S; j++)
                    y[n * in + c * S + j] = (x[n * in + c * S + j] - mean) /
                                                sqrt(var + (double)L->eps) * pd[c] + pd[Ci + c];
        }
        break;
    }
    case FZ_DROPOUT:
        for (size_t i = 0; i < B * in; i++)
            y[i] = !train || L->p == 0.0f ? x[i] : keep[i] ? x[i] / (1.0 - (double)L->p) : 0.0;
        break;
    case FZ_RELU:
        for (size_t i = 0; i < B * in; i++) y[i] = x[i] > 0 ? x[i] : 0.0;
        break;
    case FZ_LEAKYRELU:
        for (size_t i = 0; i < B * in; i++) y[i] = x[i] > 0 ? x[i] : (double)L->slope * x[i];
        break;
    case FZ_SILU:
        for (size_t i = 0; i < B * in; i++) y[i] = x[i] * sigm(x[i]);
        break;
    case FZ_SIGMOID:
        for (size_t i = 0; i < B * in; i++) y[i] = sigm(x[i]);
        break;
    case FZ_TANH:
        for (size_t i = 0; i < B * in; i++) y[i] = tanh(x[i]);
        break;
    case FZ_SOFTPLUS:
        for (size_t i = 0; i < B * in; i++) y[i] = x[i] > 20 ? x[i] : log1p(exp(x[i]));
        break;
    case FZ_FLATTEN:
    case FZ_UNFLATTEN:
        for (size_t i = 0; i < B * in; i++) y[i] = x[i];
        break;
    }
}

/* ---- the check ---------------------------------------------------------------------- */

static fz_rng rng;

static double urand(double lo, double hi) { return lo + (hi - lo) * fz_rng_uniform(&rng); }

/* sum r * ref_forward(...): the scalar whose derivatives backward must give */
static double ref_loss(const fz_layer *L, const double *pd, const double *rm, const double *rv,
                       const double *x, double *ybuf, const double *r, int B, int train,
                       const unsigned char *keep)
{
    ref_forward(L, pd, rm, rv, x, ybuf, B, train, keep);
    double s = 0;
    for (size_t i = 0; i < B * fz_layer_out_size(L); i++) s += r[i] * ybuf[i];
    return s;
}

/* Compare analytic (float) and numeric (double) gradient vectors: error relative to the
 * largest numeric entry (at least 1). Returns that relative error. */
static double grad_err(const float *ana, const double *num, size_t n)
{
    double scale = 1, worst = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(num[i]));
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(ana[i] - num[i]) / scale);
    return worst;
}

enum { X_UNIT, X_WIDE };

/* Forward and backward of L (already constructed) on a random batch of B: float forward vs
 * double reference, then dx and dparams vs central differences in double. xmode X_WIDE
 * draws inputs in [-30, 30] (Softplus threshold). */
static void gradcheck(const char *name, fz_layer *L, int B, int train, int xmode)
{
    size_t np = fz_layer_nparams(L), nb = fz_layer_nbuffers(L);
    size_t nin = B * fz_layer_in_size(L), nout = B * fz_layer_out_size(L);
    float *p = calloc(np + 1, sizeof *p), *g = calloc(np + 1, sizeof *g);
    float *buf = calloc(nb + 1, sizeof *buf);
    float *x = malloc(nin * sizeof *x), *y = malloc(nout * sizeof *y);
    float *dy = malloc(nout * sizeof *dy), *dx = malloc(nin * sizeof *dx);
    double *xd = malloc(nin * sizeof *xd), *yd = malloc(nout * sizeof *yd);
    double *r = malloc(nout * sizeof *r), *pd = malloc((np + 1) * sizeof *pd);
    double *num = malloc((nin + np + 1) * sizeof *num), *rmv = malloc((nb + 1) * sizeof *rmv);
    unsigned char *keep = malloc(nin);
    fz_err err = {0};

    fz_layer_bind(L, p, g, buf);
    fz_layer_init_params(L, &rng);
    if (nb) { /* BatchNorm: move away from the identity initialisation */
        int C = L->in.c;
        for (int c = 0; c < C; c++) {
            p[c] = (float)urand(0.5, 1.5);
            p[C + c] = (float)urand(-0.5, 0.5);
            buf[c] = (float)urand(-0.5, 0.5);
            buf[C + c] = (float)urand(0.5, 1.5);
        }
    }
    CHECK_EQ_INT(fz_layer_reserve(L, B, NULL, &err), 0);
    for (size_t i = 0; i < nin; i++) {
        double v;
        do v = xmode == X_WIDE ? urand(-30, 30) : urand(-1, 1);
        while (fabs(v) < 0.05 || fabs(v - 20) < 0.05); /* away from kinks */
        x[i] = (float)v;
        xd[i] = x[i];
    }
    for (size_t i = 0; i < nin; i++) keep[i] = fz_rng_uniform(&rng) < 0.6;
    if (L->kind == FZ_DROPOUT) fz_dropout_use_mask(L, keep);
    for (size_t i = 0; i < np; i++) pd[i] = p[i];
    for (size_t i = 0; i < nb; i++) rmv[i] = buf[i];
    const double *rm = rmv, *rv = rmv + nb / 2;

    /* forward */
    fz_layer_forward(L, x, y, B, train, &rng);
    ref_forward(L, pd, rm, rv, xd, yd, B, train, keep);
    double yscale = 1, yerr = 0;
    for (size_t i = 0; i < nout; i++) yscale = fmax(yscale, fabs(yd[i]));
    for (size_t i = 0; i < nout; i++) yerr = fmax(yerr, fabs(y[i] - yd[i]) / yscale);
    CHECK_MSG(yerr < 1e-5, "%s forward: relative error %g", name, yerr);

    if (nb && train) { /* running statistics: momentum 0.1, unbiased batch variance */
        int C = L->in.c;
        size_t S = (size_t)L->in.h * L->in.w, cnt = (size_t)B * S;
        for (int c = 0; c < C; c++) {
            double m = 0, v = 0;
            for (int n = 0; n < B; n++)
                for (size_t j = 0; j < S; j++) m += xd[n * (nin / B) + c * S + j];
            m /= cnt;
            for (int n = 0; n < B; n++)
                for (size_t j = 0; j < S; j++) v += pow(xd[n * (nin / B) + c * S + j] - m, 2);
            v /= cnt - 1;
            CHECK_NEAR(buf[c], 0.9 * rm[c] + 0.1 * m, 1e-6);
            CHECK_NEAR(buf[C + c], 0.9 * rv[c] + 0.1 * v, 1e-6);
        }
    }

    /* backward of loss = sum r * y */
    for (size_t i = 0; i < nout; i++) {
        dy[i] = (float)urand(-1, 1);
        r[i] = dy[i];
    }
    fz_layer_backward(L, x, y, dy, dx, B);
    const double h = 1e-6;
    for (size_t i = 0; i < nin; i++) {
        double keepv = xd[i];
        xd[i] = keepv + h;
        double lp = ref_loss(L, pd, rm, rv, xd, yd, r, B, train, keep);
        xd[i] = keepv - h;
        double lm = ref_loss(L, pd, rm, rv, xd, yd, r, B, train, keep);
        xd[i] = keepv;
        num[i] = (lp - lm) / (2 * h);
    }
    double ex = grad_err(dx, num, nin);
    CHECK_MSG(ex < 1e-4, "%s dx: relative error %g", name, ex);
    for (size_t i = 0; i < np; i++) {
        double keepv = pd[i];
        pd[i] = keepv + h;
        double lp = ref_loss(L, pd, rm, rv, xd, yd, r, B, train, keep);
        pd[i] = keepv - h;
        double lm = ref_loss(L, pd, rm, rv, xd, yd, r, B, train, keep);
        pd[i] = keepv;
        num[i] = (lp - lm) / (2 * h);
    }
    double ep = np ? grad_err(g, num, np) : 0;
    CHECK_MSG(ep < 1e-4, "%s dparams: relative error %g", name, ep);

    /* a second backward (without dx) adds the same parameter gradients again */
    float *g1 = malloc((np + 1) * sizeof *g1);
    memcpy(g1, g, np * sizeof *g);
    fz_layer_backward(L, x, y, dy, NULL, B);
    double eacc = 0;
    for (size_t i = 0; i < np; i++) eacc = fmax(eacc, fabs(g[i] - 2 * g1[i]) / (1 + fabs(g1[i])));
    CHECK_MSG(eacc < 1e-5, "%s: second backward does not accumulate (%g)", name, eacc);

    if (getenv("FZ_TEST_VERBOSE"))
        fprintf(stderr, "%-40s y %.2e  dx %.2e  dp %.2e\n", name, yerr, ex, ep);
    fz_layer_free(L);
    free(g1);
    free(p);
    free(g);
    free(buf);
    free(x);
    free(y);
    free(dy);
    free(dx);
    free(xd);
    free(yd);
    free(r);
    free(pd);
    free(num);
    free(rmv);
    free(keep);
}

/* ---- the cases ---------------------------------------------------------------------- */

static void test_linear(void)
{
    fz_layer L;
    fz_err err;
    CHECK_EQ_INT(fz_linear_init(&L, 7, 5, 1, &err), 0);
    CHECK_EQ_INT(fz_layer_nparams(&L), 7 * 5 + 5);
    gradcheck("Linear 7->5", &L, 3, 1, X_UNIT);
    CHECK_EQ_INT(fz_linear_init(&L, 1, 1, 0, &err), 0);
    CHECK_EQ_INT(fz_layer_nparams(&L), 1);
    gradcheck("Linear 1->1 no bias B=1", &L, 1, 1, X_UNIT);
    CHECK_EQ_INT(fz_linear_init(&L, 33, 17, 1, &err), 0);
    gradcheck("Linear 33->17", &L, 4, 0, X_UNIT);
}

static void test_conv(void)
{
    /* in_c, h, w, out_c, k, stride, pad, bias */
    static const int cases[][8] = {
        {2, 5, 7, 3, 3, 1, 1, 1}, {2, 6, 9, 3, 3, 2, 1, 1}, {1, 6, 9, 2, 4, 2, 2, 1},
        {3, 4, 5, 2, 1, 1, 0, 1}, {2, 7, 8, 2, 2, 3, 0, 0}, {2, 5, 5, 3, 5, 2, 2, 1},
        {1, 3, 4, 2, 3, 1, 2, 1}, {2, 4, 4, 3, 1, 2, 1, 1},
        /* stride 1 rows of 8 and more floats (the vectorised copies), and vae-conv's k5 */
        {2, 6, 19, 3, 3, 1, 1, 1}, {2, 12, 12, 3, 5, 1, 0, 1},
        /* stride 1 with in_c * k >= 16: folded kernel rows, with and without padding, a
         * kernel as tall as the padded input, and no bias */
        {6, 5, 7, 4, 3, 1, 1, 1}, {4, 9, 8, 3, 5, 1, 0, 1}, {8, 4, 6, 2, 2, 1, 2, 0},
        {4, 3, 9, 2, 5, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *c = cases[i];
        fz_layer L;
        fz_err err;
        char name[96];
        CHECK_EQ_INT(fz_conv2d_init(&L, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], &err), 0);
        CHECK_EQ_INT(fz_layer_nparams(&L), c[3] * c[0] * c[4] * c[4] + (c[7] ? c[3] : 0));
        snprintf(name, sizeof name, "Conv2d %dx%dx%d->%d k%d s%d p%d -> %dx%d", c[0], c[1],
                 c[2], c[3], c[4], c[5], c[6], L.out.h, L.out.w);
        gradcheck(name, &L, 2, 1, X_UNIT);
        /* a batch of 5 in chunks of 2, 2 and 1 samples per product */
        L.chunk = 2;
        strcat(name, " chunks of 2");
        gradcheck(name, &L, 5, 1, X_UNIT);
    }
}

static void test_convt(void)
{
    /* in_c, h, w, out_c, k, stride, pad, out_pad, bias */
    static const int cases[][9] = {
        {3, 4, 5, 2, 4, 2, 1, 0, 1}, {2, 3, 4, 2, 3, 2, 1, 1, 1}, {2, 4, 3, 3, 3, 1, 2, 0, 1},
        {3, 3, 4, 2, 1, 1, 0, 0, 1}, {2, 3, 3, 2, 2, 3, 0, 2, 0}, {1, 3, 2, 2, 5, 2, 2, 1, 1},
        {2, 2, 3, 3, 3, 2, 0, 0, 1}, {2, 3, 12, 2, 3, 1, 0, 0, 1}, {2, 8, 8, 2, 5, 1, 0, 0, 1},
        /* stride 1 with out_c * k >= 16: folded kernel rows, with and without padding and
         * bias */
        {3, 4, 5, 6, 3, 1, 0, 0, 1}, {2, 3, 4, 4, 5, 1, 1, 0, 1}, {5, 2, 3, 8, 2, 1, 0, 0, 0},
        {3, 5, 4, 4, 5, 1, 2, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *c = cases[i];
        fz_layer L;
        fz_err err;
        char name[96];
        CHECK_EQ_INT(fz_convt2d_init(&L, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8],
                                     &err), 0);
        CHECK_EQ_INT(fz_layer_nparams(&L), c[0] * c[3] * c[4] * c[4] + (c[8] ? c[3] : 0));
        snprintf(name, sizeof name, "ConvT2d %dx%dx%d->%d k%d s%d p%d op%d -> %dx%d", c[0],
                 c[1], c[2], c[3], c[4], c[5], c[6], c[7], L.out.h, L.out.w);
        gradcheck(name, &L, 2, 1, X_UNIT);
        L.chunk = 2;
        strcat(name, " chunks of 2");
        gradcheck(name, &L, 5, 1, X_UNIT);
    }
}

/* 5x5 stride-1 layers with 16 channels or more on both sides run as Winograd F(2x2, 5x5)
 * (conv.c): small ones here, against central differences of the direct convolution, with
 * partial tiles (odd grids) and padding. test_winograd compares the path with the folded
 * one on larger shapes. */
static void test_winograd(void)
{
    fz_layer L;
    fz_err err;
    CHECK_EQ_INT(fz_conv2d_init(&L, 16, 4, 5, 16, 5, 1, 1, 1, &err), 0); /* grid 2x3 */
    gradcheck("Conv2d 16x4x5->16 k5 s1 p1 (Winograd)", &L, 2, 1, X_UNIT);
    CHECK_EQ_INT(fz_conv2d_init(&L, 16, 5, 5, 17, 5, 1, 2, 0, &err), 0); /* grid 5x5 */
    gradcheck("Conv2d 16x5x5->17 k5 s1 p2 no bias (Winograd)", &L, 1, 1, X_UNIT);
    CHECK_EQ_INT(fz_convt2d_init(&L, 16, 3, 2, 16, 5, 1, 1, 0, 1, &err), 0); /* out 5x4 */
    gradcheck("ConvT2d 16x3x2->16 k5 s1 p1 (Winograd)", &L, 2, 1, X_UNIT);
    CHECK_EQ_INT(fz_convt2d_init(&L, 16, 1, 1, 16, 5, 1, 0, 0, 1, &err), 0); /* out 5x5 */
    gradcheck("ConvT2d 16x1x1->16 k5 s1 p0 (Winograd)", &L, 2, 1, X_UNIT);
}

static void test_bn(void)
{
    fz_layer L;
    fz_err err;
    for (int train = 0; train <= 1; train++) {
        CHECK_EQ_INT(fz_batchnorm1d_init(&L, 4, &err), 0);
        CHECK_EQ_INT(fz_layer_nparams(&L), 8);
        CHECK_EQ_INT(fz_layer_nbuffers(&L), 8);
        gradcheck(train ? "BatchNorm1d train" : "BatchNorm1d eval", &L, 5, train, X_UNIT);
        CHECK_EQ_INT(fz_batchnorm2d_init(&L, 3, 3, 2, &err), 0);
        gradcheck(train ? "BatchNorm2d train" : "BatchNorm2d eval", &L, 2, train, X_UNIT);
    }
    /* channels and rows past the blocks of 8 the vectorised loops take */
    for (int train = 0; train <= 1; train++) {
        CHECK_EQ_INT(fz_batchnorm1d_init(&L, 19, &err), 0);
        gradcheck(train ? "BatchNorm1d 19 train" : "BatchNorm1d 19 eval", &L, 4, train, X_UNIT);
        CHECK_EQ_INT(fz_batchnorm2d_init(&L, 2, 3, 7, &err), 0);
        gradcheck(train ? "BatchNorm2d 2x3x7 train" : "BatchNorm2d 2x3x7 eval", &L, 3, train,
                  X_UNIT);
    }
    /* n = B*H*W = 2: the smallest batch with an unbiased variance */
    CHECK_EQ_INT(fz_batchnorm1d_init(&L, 3, &err), 0);
    gradcheck("BatchNorm1d train B=2", &L, 2, 1, X_UNIT);
}

static void test_elementwise(void)
{
    fz_shape s = {3, 2, 2};
    fz_layer L;
    fz_err err;
    static const fz_layer_kind acts[] = {FZ_RELU, FZ_SILU, FZ_SIGMOID, FZ_TANH, FZ_SOFTPLUS};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        CHECK_EQ_INT(fz_act_init(&L, acts[i], s, &err), 0);
        CHECK_EQ_INT(fz_layer_nparams(&L), 0);
        gradcheck(fz_layer_kind_name(acts[i]), &L, 2, 1, X_UNIT);
        CHECK_EQ_INT(fz_act_init(&L, acts[i], s, &err), 0);
        gradcheck(fz_layer_kind_name(acts[i]), &L, 2, 1, X_WIDE);
    }
    CHECK_EQ_INT(fz_leakyrelu_init(&L, s, 0.01f, &err), 0);
    gradcheck("LeakyReLU 0.01", &L, 2, 1, X_UNIT);
    CHECK_EQ_INT(fz_leakyrelu_init(&L, s, 0.2f, &err), 0);
    gradcheck("LeakyReLU 0.2", &L, 2, 1, X_UNIT);
    CHECK_EQ_INT(fz_dropout_init(&L, s, 0.3f, &err), 0);
    gradcheck("Dropout 0.3 train", &L, 3, 1, X_UNIT);
    CHECK_EQ_INT(fz_dropout_init(&L, s, 0.3f, &err), 0);
    gradcheck("Dropout 0.3 eval", &L, 3, 0, X_UNIT);
    CHECK_EQ_INT(fz_dropout_init(&L, s, 0.0f, &err), 0);
    gradcheck("Dropout 0 train", &L, 3, 1, X_UNIT);
    CHECK_EQ_INT(fz_flatten_init(&L, 3, 2, 2, &err), 0);
    CHECK_EQ_INT(L.out.c, 12);
    gradcheck("Flatten", &L, 2, 1, X_UNIT);
    CHECK_EQ_INT(fz_unflatten_init(&L, 3, 2, 2, &err), 0);
    CHECK_EQ_INT(L.in.c, 12);
    gradcheck("Unflatten", &L, 2, 1, X_UNIT);
}


/* Output shapes follow PyTorch's formulas; impossible layers are refused with a reason. */
static void test_shapes(void)
{
    fz_layer L;
    fz_err err = {0};
    CHECK_EQ_INT(fz_conv2d_init(&L, 1, 28, 28, 32, 3, 2, 1, 1, &err), 0);
    CHECK(L.out.c == 32 && L.out.h == 14 && L.out.w == 14);
    CHECK_EQ_INT(fz_conv2d_init(&L, 3, 96, 96, 8, 4, 2, 1, 1, &err), 0);
    CHECK(L.out.h == 48 && L.out.w == 48);
    CHECK_EQ_INT(fz_conv2d_init(&L, 3, 7, 5, 8, 3, 1, 0, 1, &err), 0);
    CHECK(L.out.h == 5 && L.out.w == 3);
    CHECK_EQ_INT(fz_convt2d_init(&L, 32, 7, 7, 16, 4, 2, 1, 0, 1, &err), 0);
    CHECK(L.out.c == 16 && L.out.h == 14 && L.out.w == 14);
    CHECK_EQ_INT(fz_convt2d_init(&L, 32, 7, 7, 16, 3, 2, 1, 1, 1, &err), 0);
    CHECK(L.out.h == 14 && L.out.w == 14);
    CHECK_EQ_INT(fz_convt2d_init(&L, 16, 14, 14, 1, 3, 2, 1, 1, 1, &err), 0);
    CHECK(L.out.h == 28 && L.out.w == 28);
    CHECK_EQ_INT(fz_flatten_init(&L, 32, 7, 7, &err), 0);
    CHECK_EQ_INT(fz_layer_out_size(&L), 32 * 7 * 7);
    CHECK(fz_layer_is_view(&L));
    CHECK_STR(fz_layer_kind_name(FZ_CONVT2D), "ConvTranspose2d");

    CHECK_EQ_INT(fz_conv2d_init(&L, 1, 2, 2, 1, 5, 1, 1, 1, &err), -1);
    CHECK_CONTAINS(err.msg, "kernel 5");
    CHECK_EQ_INT(fz_conv2d_init(&L, 1, 8, 8, 1, 3, 0, 1, 1, &err), -1);
    CHECK_CONTAINS(err.msg, "stride");
    CHECK_EQ_INT(fz_conv2d_init(&L, 1, 8, 8, 1, 3, 1, -1, 1, &err), -1);
    CHECK_CONTAINS(err.msg, "padding");
    CHECK_EQ_INT(fz_convt2d_init(&L, 1, 8, 8, 1, 3, 2, 1, 2, 1, &err), -1);
    CHECK_CONTAINS(err.msg, "output padding");
    CHECK_EQ_INT(fz_convt2d_init(&L, 1, 1, 1, 1, 1, 1, 1, 0, 1, &err), -1);
    CHECK_CONTAINS(err.msg, "output -1x-1");
    CHECK_EQ_INT(fz_conv2d_init(&L, 65536, 65536, 2, 1, 1, 1, 0, 1, &err), -1);
    CHECK_CONTAINS(err.msg, "floats per sample");
    CHECK_EQ_INT(fz_conv2d_init(&L, 65536, 8, 8, 65536, 3, 1, 1, 1, &err), -1);
    CHECK_CONTAINS(err.msg, "weights");
    CHECK_EQ_INT(fz_linear_init(&L, 0, 3, 1, &err), -1);
    CHECK_CONTAINS(err.msg, "Linear input");
    CHECK_EQ_INT(fz_linear_init(&L, 65536, 65536, 1, &err), -1);
    CHECK_EQ_INT(fz_dropout_init(&L, (fz_shape){4, 1, 1}, 1.5f, &err), -1);
    CHECK_CONTAINS(err.msg, "[0, 1]");
    CHECK_EQ_INT(fz_dropout_init(&L, (fz_shape){4, 1, 1}, NAN, &err), -1);
    CHECK_EQ_INT(fz_act_init(&L, FZ_LINEAR, (fz_shape){4, 1, 1}, &err), -1);
    CHECK_EQ_INT(fz_act_init(&L, FZ_RELU, (fz_shape){4, 0, 1}, &err), -1);
    CHECK_EQ_INT(fz_leakyrelu_init(&L, (fz_shape){4, 1, 1}, INFINITY, &err), -1);
    CHECK_EQ_INT(fz_batchnorm2d_init(&L, 4, 100000, 1, &err), -1);
    CHECK_EQ_INT(fz_act_init(&L, FZ_RELU, (fz_shape){4, 1, 1}, &err), 0);
    CHECK_EQ_INT(fz_layer_reserve(&L, 0, NULL, &err), -1);
}

/* PyTorch's default initialisation: bounds 1/sqrt(fan_in), BatchNorm identity. */
static void test_init(void)
{
    fz_layer L;
    fz_err err;
    float p[200];
    float buf[8];
    CHECK_EQ_INT(fz_linear_init(&L, 100, 1, 1, &err), 0);
    fz_layer_bind(&L, p, NULL, NULL);
    fz_layer_init_params(&L, &rng);
    double mx = 0, mean = 0;
    for (int i = 0; i < 100; i++) {
        mx = fmax(mx, fabs(p[i]));
        mean += p[i] / 100;
    }
    CHECK(mx <= 0.1 && mx > 0.09);
    CHECK(fabs(mean) < 0.02);
    CHECK(fabs(p[100]) <= 0.1 && L.bias == p + 100);
    /* ConvTranspose2d (in 8, out 2, 3x3): fan_in from weight dim 1 = 2*9 = 18 */
    CHECK_EQ_INT(fz_convt2d_init(&L, 8, 4, 4, 2, 3, 1, 0, 0, 1, &err), 0);
    CHECK_EQ_INT(fz_layer_nparams(&L), 8 * 2 * 9 + 2);
    fz_layer_bind(&L, p, NULL, NULL);
    fz_layer_init_params(&L, &rng);
    double b18 = 1 / sqrt(18.0);
    mx = 0;
    for (int i = 0; i < 144; i++) mx = fmax(mx, fabs(p[i]));
    CHECK(mx <= b18 && mx > 0.9 * b18);
    /* Conv2d (in 8, out 2, 3x3): fan_in 72 */
    CHECK_EQ_INT(fz_conv2d_init(&L, 8, 4, 4, 2, 3, 1, 0, 1, &err), 0);
    fz_layer_bind(&L, p, NULL, NULL);
    fz_layer_init_params(&L, &rng);
    mx = 0;
    for (int i = 0; i < 146; i++) mx = fmax(mx, fabs(p[i]));
    CHECK(mx <= 1 / sqrt(72.0) && mx > 0.9 / sqrt(72.0));
    /* same seed, same parameters */
    fz_rng a, b;
    float q[146];
    fz_rng_seed(&a, 7);
    fz_rng_seed(&b, 7);
    fz_layer_init_params(&L, &a);
    memcpy(q, p, sizeof q);
    fz_layer_init_params(&L, &b);
    CHECK(memcmp(p, q, sizeof q) == 0);

    CHECK_EQ_INT(fz_batchnorm2d_init(&L, 4, 2, 2, &err), 0);
    fz_layer_bind(&L, p, NULL, buf);
    fz_layer_init_params(&L, &rng);
    CHECK(L.weight == p && L.bias == p + 4 && L.running_mean == buf && L.running_var == buf + 4);
    for (int c = 0; c < 4; c++) {
        CHECK(p[c] == 1.0f && p[4 + c] == 0.0f);
        CHECK(buf[c] == 0.0f && buf[4 + c] == 1.0f);
    }
}

/* Dropout with its own mask: keep rate, scaling, backward through the same mask, p = 1. */
static void test_dropout(void)
{
    enum { D = 500, B = 20 };
    fz_layer L;
    fz_err err;
    float *x = malloc(B * D * sizeof *x), *y = malloc(B * D * sizeof *y);
    float *dx = malloc(B * D * sizeof *dx), *y2 = malloc(B * D * sizeof *y2);
    for (int i = 0; i < B * D; i++) x[i] = (float)urand(0.5, 1.5);
    CHECK_EQ_INT(fz_dropout_init(&L, (fz_shape){D, 1, 1}, 0.3f, &err), 0);
    CHECK_EQ_INT(fz_layer_reserve(&L, B, NULL, &err), 0);
    fz_rng r1;
    fz_rng_seed(&r1, 3);
    fz_layer_forward(&L, x, y, B, 1, &r1);
    int kept = 0, okscale = 1;
    for (int i = 0; i < B * D; i++) {
        if (y[i] != 0.0f) {
            kept++;
            okscale &= fabsf(y[i] - x[i] / 0.7f) < 1e-6f && L.mask[i];
        } else {
            okscale &= !L.mask[i];
        }
    }
    CHECK(okscale);
    CHECK_NEAR((double)kept / (B * D), 0.7, 0.02);
    fz_layer_backward(&L, x, y, x, dx, B); /* dy = x */
    int okb = 1;
    for (int i = 0; i < B * D; i++) okb &= dx[i] == y[i];
    CHECK(okb);
    fz_rng_seed(&r1, 3);
    fz_layer_forward(&L, x, y2, B, 1, &r1);
    CHECK(memcmp(y, y2, B * D * sizeof *y) == 0);
    fz_layer_forward(&L, x, y2, B, 0, NULL); /* eval: identity, no rng */
    CHECK(memcmp(x, y2, B * D * sizeof *y) == 0);
    fz_layer_backward(&L, x, y2, y, dx, B);
    CHECK(memcmp(dx, y, B * D * sizeof *y) == 0);
    /* in place: dx == dy */
    fz_layer_forward(&L, x, y, B, 1, &r1);
    memcpy(dx, x, B * D * sizeof *x);
    fz_layer_backward(&L, x, y, dx, dx, B);
    CHECK(memcmp(dx, y, B * D * sizeof *y) == 0);
    fz_layer_free(&L);
    CHECK_EQ_INT(fz_dropout_init(&L, (fz_shape){D, 1, 1}, 1.0f, &err), 0);
    CHECK_EQ_INT(fz_layer_reserve(&L, B, NULL, &err), 0);
    fz_layer_forward(&L, x, y, B, 1, &r1);
    int zero = 1;
    for (int i = 0; i < B * D; i++) zero &= y[i] == 0.0f;
    CHECK(zero);
    fz_layer_free(&L);
    free(x);
    free(y);
    free(dx);
    free(y2);
}

/* The counter-based keep mask behind Dropout: its keep rate, determinism, the ends. */
static void test_keep_mask(void)
{
    enum { N = 1 << 20 };
    unsigned char *m = malloc(N), *m2 = malloc(N);
    fz_rng r, r2;
    for (int k = 0; k < 3; k++) {
        double p = k == 0 ? 0.3 : k == 1 ? 0.05 : 0.9;
        fz_rng_seed(&r, 11 + k);
        fz_rng_keep_mask(&r, m, N, p);
        size_t kept = 0;
        for (size_t i = 0; i < N; i++) kept += m[i];
        /* binomial: sd = sqrt(N p (1-p)) < 512 of 2^20, i.e. 5e-4 */
        CHECK_NEAR((double)kept / N, 1 - p, 0.003);
        /* no long runs: neighbouring pairs agree as often as independent draws would */
        size_t same = 0;
        for (size_t i = 1; i < N; i++) same += m[i] == m[i - 1];
        CHECK_NEAR((double)same / (N - 1), p * p + (1 - p) * (1 - p), 0.005);
        fz_rng_seed(&r2, 11 + k);
        fz_rng_keep_mask(&r2, m2, N, p);
        CHECK(memcmp(m, m2, N) == 0);
        fz_rng_keep_mask(&r2, m2, N, p); /* the next call draws a new key */
        CHECK(memcmp(m, m2, N) != 0);
    }
    fz_rng_keep_mask(&r, m, 1001, 0);
    size_t ones = 0;
    for (int i = 0; i < 1001; i++) ones += m[i];
    CHECK_EQ_INT(ones, 1001);
    fz_rng_keep_mask(&r, m, 1001, 1);
    ones = 0;
    for (int i = 0; i < 1001; i++) ones += m[i];
    CHECK_EQ_INT(ones, 0);
    free(m);
    free(m2);
}

/* The fused evaluation pass over ReLU, BatchNorm1d, Dropout and LeakyReLU gives the same
 * bits as the layers one after another. */
static void test_fused_eval(void)
{
    enum { D = 37, B = 13, K = 4 };
    fz_layer L[K];
    fz_err err;
    fz_shape sh = {D, 1, 1};
    CHECK_EQ_INT(fz_act_init(&L[0], FZ_RELU, sh, &err), 0);
    CHECK_EQ_INT(fz_batchnorm1d_init(&L[1], D, &err), 0);
    CHECK_EQ_INT(fz_dropout_init(&L[2], sh, 0.3f, &err), 0);
    CHECK_EQ_INT(fz_leakyrelu_init(&L[3], sh, 0.3f, &err), 0);
    size_t np = fz_layer_nparams(&L[1]), nb = fz_layer_nbuffers(&L[1]);
    float *p = malloc(np * sizeof *p), *buf = malloc(nb * sizeof *buf);
    for (size_t i = 0; i < np; i++) p[i] = (float)urand(-1, 1);
    for (size_t i = 0; i < nb; i++) buf[i] = (float)urand(0.2, 1.5); /* running mean, var */
    fz_layer_bind(&L[1], p, NULL, buf);
    for (int k = 0; k < K; k++) {
        CHECK_EQ_INT(fz_layer_reserve(&L[k], B, NULL, &err), 0);
        CHECK(fz_layer_eval_fusable(&L[k]));
    }
    float *x = malloc(B * D * sizeof *x), *a = malloc(B * D * sizeof *a);
    float *b = malloc(B * D * sizeof *b), *y = malloc(B * D * sizeof *y);
    for (int i = 0; i < B * D; i++) x[i] = (float)urand(-2, 2);
    fz_layer_forward(&L[0], x, a, B, 0, NULL);
    fz_layer_forward(&L[1], a, b, B, 0, NULL);
    fz_layer_forward(&L[2], b, a, B, 0, NULL);
    fz_layer_forward(&L[3], a, b, B, 0, NULL);
    fz_layers_eval_rows(L, K, x, y, B);
    CHECK(memcmp(b, y, B * D * sizeof *y) == 0);
    for (int k = 0; k < K; k++) fz_layer_free(&L[k]);
    free(p);
    free(buf);
    free(x);
    free(a);
    free(b);
    free(y);
}

/* Two convolutions sharing one caller scratch buffer give the same results as with their
 * own; views work in place; activations allow dx == dy. */
static void test_memory(void)
{
    fz_layer a, b, a2;
    fz_err err;
    /* the sizes below are those of one thread (test_threads checks them for two) */
    fz_blas_set_threads(1);
    CHECK_EQ_INT(fz_conv2d_init(&a, 2, 9, 9, 4, 3, 2, 1, 1, &err), 0);
    CHECK_EQ_INT(fz_convt2d_init(&b, 4, 5, 5, 2, 3, 2, 1, 0, 1, &err), 0);
    CHECK_EQ_INT(b.out.h, 9);
    size_t ns = fz_layer_scratch_floats(&a);
    if (fz_layer_scratch_floats(&b) > ns) ns = fz_layer_scratch_floats(&b);
    /* per sample: the columns (18, 25) and the (4, 25) channel-major operand; up to 256
     * samples per chunk, or max_batch */
    CHECK_EQ_INT(fz_layer_scratch_floats_for(&a, 1), (18 + 4) * 25);
    CHECK_EQ_INT(fz_layer_scratch_floats_for(&b, 3), 3 * (18 + 4) * 25);
    CHECK_EQ_INT(fz_layer_scratch_floats(&a), 256 * (18 + 4) * 25);
    CHECK_EQ_INT(fz_layer_scratch_floats(&b), 256 * (18 + 4) * 25);
    float *scr = malloc(ns * sizeof *scr);
    size_t npa = fz_layer_nparams(&a), npb = fz_layer_nparams(&b);
    float *p = malloc((npa + npb) * sizeof *p), *g = calloc(2 * (npa + npb), sizeof *g);
    fz_layer_bind(&a, p, g, NULL);
    fz_layer_bind(&b, p + npa, g + npa, NULL);
    fz_layer_init_params(&a, &rng);
    fz_layer_init_params(&b, &rng);
    a2 = a;
    fz_layer_bind(&a2, p, g + npa + npb, NULL);
    CHECK_EQ_INT(fz_layer_reserve(&a, 3, scr, &err), 0);
    CHECK_EQ_INT(fz_layer_reserve(&b, 3, scr, &err), 0);
    CHECK_EQ_INT(fz_layer_reserve(&a2, 3, NULL, &err), 0);
    CHECK(a.scratch == scr && a2.scratch != scr);
    enum { B = 3 };
    float x[B * 2 * 81], h[B * 4 * 25], h2[B * 4 * 25], y[B * 2 * 81];
    float dh[B * 4 * 25], dh2[B * 4 * 25], dx[B * 2 * 81], dx2[B * 2 * 81];
    for (int i = 0; i < B * 2 * 81; i++) x[i] = (float)urand(-1, 1);
    fz_layer_forward(&a, x, h, B, 1, NULL);
    fz_layer_forward(&b, h, y, B, 1, NULL);
    fz_layer_forward(&a2, x, h2, B, 1, NULL);
    CHECK(memcmp(h, h2, sizeof h) == 0);
    fz_layer_backward(&b, h, y, y, dh, B);
    memcpy(dh2, dh, sizeof dh);
    fz_layer_backward(&a, x, h, dh, dx, B);
    fz_layer_backward(&a2, x, h2, dh2, dx2, B);
    CHECK(memcmp(dx, dx2, sizeof dx) == 0);
    CHECK(memcmp(g, g + npa + npb, npa * sizeof *g) == 0);
    fz_layer_free(&a);
    fz_layer_free(&b);
    fz_layer_free(&a2);

    /* Flatten as a view: y == x leaves the data alone */
    fz_layer f;
    CHECK_EQ_INT(fz_flatten_init(&f, 2, 9, 9, &err), 0);
    CHECK_EQ_INT(fz_layer_reserve(&f, B, NULL, &err), 0);
    memcpy(dx2, x, sizeof x);
    fz_layer_forward(&f, dx2, dx2, B, 1, NULL);
    fz_layer_backward(&f, dx2, dx2, dx2, dx2, B);
    CHECK(memcmp(dx2, x, sizeof x) == 0);
    fz_layer_free(&f);

    /* Tanh backward in place */
    fz_layer t;
    CHECK_EQ_INT(fz_act_init(&t, FZ_TANH, (fz_shape){2, 9, 9}, &err), 0);
    CHECK_EQ_INT(fz_layer_reserve(&t, B, NULL, &err), 0);
    fz_layer_forward(&t, x, y, B, 1, NULL);
    for (int i = 0; i < B * 2 * 81; i++) dx[i] = 1.0f;
    fz_layer_backward(&t, x, y, dx, dx, B);
    double e = 0;
    for (int i = 0; i < B * 2 * 81; i++) e = fmax(e, fabs(dx[i] - (1 - tanh(x[i]) * tanh(x[i]))));
    CHECK(e < 1e-6);
    fz_layer_free(&t);
    free(scr);
    free(p);
    free(g);
}

/* A Linear layer and the activation after it in one step (fz_layer_forward_pair): on two
 * threads, products cut by rows and by columns, forward and weight gradient, give the bits
 * of the layer computed as before the epilogues: C set to the bias and then the product
 * (fz_gemm, cut the same way), the activation over all of it, the bias gradient summed
 * over the batch on one thread. */
static void test_linear_pair(void)
{
    /* {B, in, out}: forward by columns and dW by rows; forward by columns; both by rows;
     * dW by columns (out <= 64 and in >= 512) */
    static const int shapes[][3] = {{64, 784, 128}, {64, 128, 784}, {200, 300, 100}, {64, 600, 48}};
    fz_layer_kind acts[2] = {FZ_RELU, FZ_SIGMOID};
    int prev = fz_blas_threads();
    fz_blas_set_threads(2);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int a = 0; a < 2; a++) {
            int B = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
            fz_layer L, A;
            fz_err err;
            CHECK_EQ_INT(fz_linear_init(&L, in, out, 1, &err), 0);
            CHECK_EQ_INT(fz_act_init(&A, acts[a], (fz_shape){out, 1, 1}, &err), 0);
            size_t np = fz_layer_nparams(&L), ny = (size_t)B * out;
            float *p = malloc(np * sizeof(float)), *g = calloc(np, sizeof(float));
            float *x = malloc((size_t)B * in * sizeof(float));
            float *y = malloc(ny * sizeof(float)), *y2 = malloc(ny * sizeof(float));
            float *ry = malloc(ny * sizeof(float)), *ry2 = malloc(ny * sizeof(float));
            float *dy = malloc(ny * sizeof(float)), *rdw = calloc((size_t)out * in, sizeof(float));
            float *rdb = calloc((size_t)out, sizeof(float));
            CHECK(p && g && x && y && y2 && ry && ry2 && dy && rdw && rdb);
            if (!p || !g || !x || !y || !y2 || !ry || !ry2 || !dy || !rdw || !rdb) return;
            for (size_t i = 0; i < np; i++) p[i] = (float)urand(-0.2, 0.2);
            for (size_t i = 0; i < (size_t)B * in; i++) x[i] = (float)urand(-1, 1);
            for (size_t i = 0; i < ny; i++) dy[i] = (float)urand(-1, 1);
            fz_layer_bind(&L, p, g, NULL);
            CHECK_EQ_INT(fz_layer_reserve(&L, B, NULL, &err), 0);
            CHECK_EQ_INT(fz_layer_reserve(&A, B, NULL, &err), 0);
            CHECK(fz_gemm_parts(B, out, in) == 2);
            CHECK_EQ_INT(fz_layer_forward_pair(&L, &A, x, y, y2, B, 1), 1);
            for (int n = 0; n < B; n++) memcpy(ry + (size_t)n * out, L.bias, out * sizeof(float));
            fz_gemm(0, 1, B, out, in, 1.0f, x, in, L.weight, in, 1.0f, ry, out);
            fz_layer_forward(&A, ry, ry2, B, 1, NULL);
            CHECK_MSG(memcmp(y, ry, ny * sizeof(float)) == 0 && memcmp(y2, ry2, ny * sizeof(float)) == 0,
                      "pair %dx%dx%d %s: forward differs", B, in, out, fz_layer_kind_name(acts[a]));
            /* the weight gradient and the bias gradient summed in its epilogue */
            fz_layer_backward(&L, x, y, dy, NULL, B);
            fz_gemm(1, 0, out, in, B, 1.0f, dy, out, x, in, 1.0f, rdw, in);
            for (int n = 0; n < B; n++)
                for (int o = 0; o < out; o++) rdb[o] += dy[(size_t)n * out + o];
            CHECK_MSG(memcmp(L.dweight, rdw, (size_t)out * in * sizeof(float)) == 0 &&
                          memcmp(L.dbias, rdb, out * sizeof(float)) == 0,
                      "pair %dx%dx%d: weight or bias gradient differs", B, in, out);
            /* not a Linear layer followed by an activation: nothing done */
            CHECK_EQ_INT(fz_layer_forward_pair(&A, &L, x, y, y2, B, 1), 0);
            fz_layer_free(&L);
            fz_layer_free(&A);
            free(p), free(g), free(x), free(y), free(y2), free(ry), free(ry2), free(dy);
            free(rdw), free(rdb);
        }
    fz_blas_set_threads(prev);
}

/* The sigmoid and SiLU against double precision over [-87, 88] (2,000,000 points): within 2
 * ulp (measured: 1.2 and 1.6); 0 below the exp's range, 1 and x far above it, NaN kept. */
static void test_act_accuracy(void)
{
    enum { ROWS = 2000, D = 1000, N = ROWS * D };
    fz_layer S, G;
    fz_err err;
    CHECK_EQ_INT(fz_act_init(&S, FZ_SILU, (fz_shape){D, 1, 1}, &err), 0);
    CHECK_EQ_INT(fz_act_init(&G, FZ_SIGMOID, (fz_shape){D, 1, 1}, &err), 0);
    CHECK_EQ_INT(fz_layer_reserve(&S, ROWS, NULL, &err), 0);
    CHECK_EQ_INT(fz_layer_reserve(&G, ROWS, NULL, &err), 0);
    float *x = malloc(N * sizeof(float)), *ys = malloc(N * sizeof(float));
    float *yg = malloc(N * sizeof(float));
    CHECK(x && ys && yg);
    if (!x || !ys || !yg) return;
    for (int i = 0; i < N; i++) x[i] = (float)(-87.0 + 175.0 * i / (N - 1));
    fz_layer_forward(&S, x, ys, ROWS, 1, NULL);
    fz_layer_forward(&G, x, yg, ROWS, 1, NULL);
    double worst_s = 0, worst_g = 0;
    for (int i = 0; i < N; i++) {
        double v = x[i], g = 1.0 / (1.0 + exp(-v)), si = v * g;
        if (fabs(si) > 1e-37) worst_s = fmax(worst_s, fabs(ys[i] - si) / fabs(si) / FLT_EPSILON);
        if (g > 1e-37) worst_g = fmax(worst_g, fabs(yg[i] - g) / g / FLT_EPSILON);
    }
    CHECK_MSG(worst_s <= 2.0 && worst_g <= 2.0, "SiLU within %.2f ulp, sigmoid within %.2f ulp",
              worst_s, worst_g);
    /* SiLU's backward (sigmoid(x) taken as y / x) with dy = 1 against the derivative
     * s (1 + x (1 - s)), in ulps of its larger term s (it crosses 0 near x = -1.28). 1 - s
     * cancels where s nears 1, in float whatever s is made from: measured 12 ulp at x near
     * 13.8 (with s = sigmoidf(x), 8 near 16.6). */
    float *ones = malloc(N * sizeof(float)), *dx = malloc(N * sizeof(float));
    CHECK(ones && dx);
    if (!ones || !dx) return;
    for (int i = 0; i < N; i++) ones[i] = 1.0f;
    fz_layer_backward(&S, x, ys, ones, dx, ROWS);
    double worst_d = 0;
    for (int i = 0; i < N; i++) {
        double v = x[i], g = 1.0 / (1.0 + exp(-v)), d = g * (1.0 + v * (1.0 - g));
        double scale = fmax(fabs(d), g);
        if (scale > 1e-30) worst_d = fmax(worst_d, fabs(dx[i] - d) / scale / FLT_EPSILON);
    }
    CHECK_MSG(worst_d <= 16.0, "SiLU's derivative within %.2f ulp", worst_d);
    free(ones);
    free(dx);
    /* one row whose first 8 values are the special ones */
    float ex[8] = {-100.0f, -88.0f, 89.0f, 100.0f, NAN, 0.0f, -INFINITY, INFINITY};
    for (int k = 0; k < 8; k++) x[k] = ex[k];
    fz_layer_forward(&G, x, yg, 1, 1, NULL);
    fz_layer_forward(&S, x, ys, 1, 1, NULL);
    CHECK_MSG(yg[0] == 0.0f && yg[1] < 1e-38f && yg[2] == 1.0f && yg[3] == 1.0f && isnan(yg[4]),
              "sigmoid at -100, -88, 89, 100, NaN: %g %g %g %g %g", yg[0], yg[1], yg[2], yg[3], yg[4]);
    CHECK(yg[5] == 0.5f && yg[6] == 0.0f && yg[7] == 1.0f);
    CHECK(ys[2] == 89.0f && ys[3] == 100.0f && isnan(ys[4]) && ys[5] == 0.0f && ys[0] == -0.0f);
    fz_layer_free(&S);
    fz_layer_free(&G);
    free(x);
    free(ys);
    free(yg);
}

/* A convolution and the activation after it in one step (fz_layer_forward_pair: the
 * activation applied to each chunk of samples as the convolution finishes it;
 * fz_layer_backward_pair: the activation's backward on each chunk of dy just before the
 * convolution's backward reads it): the bits of the two layers one after the other, on one
 * and two threads, for the Winograd, folded and column paths of both kinds. */
static void test_conv_pair(void)
{
    /* kind (0 Conv2d, 1 ConvTranspose2d), in_c, h, w, out_c, k, stride, pad */
    static const int cases[][8] = {{0, 16, 12, 12, 32, 5, 1, 0}, {0, 1, 14, 14, 8, 5, 1, 0},
                                   {0, 3, 11, 9, 4, 3, 2, 1},   {1, 32, 8, 8, 16, 5, 1, 0},
                                   {1, 8, 10, 10, 1, 5, 1, 0},  {1, 4, 5, 6, 3, 3, 2, 1}};
    fz_layer_kind acts[2] = {FZ_SILU, FZ_SIGMOID};
    int prev = fz_blas_threads();
    for (int T = 1; T <= 2; T++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            const int *k = cases[c];
            enum { B = 7 };
            fz_layer L, A;
            fz_err err;
            fz_blas_set_threads(T);
            if (k[0] == 0)
                CHECK_EQ_INT(fz_conv2d_init(&L, k[1], k[2], k[3], k[4], k[5], k[6], k[7], 1, &err), 0);
            else
                CHECK_EQ_INT(fz_convt2d_init(&L, k[1], k[2], k[3], k[4], k[5], k[6], k[7], 0, 1, &err), 0);
            CHECK_EQ_INT(fz_act_init(&A, acts[c % 2], L.out, &err), 0);
            size_t np = fz_layer_nparams(&L), nx = B * fz_layer_in_size(&L), ny = B * fz_layer_out_size(&L);
            size_t ns = fz_layer_scratch_floats_for(&L, B);
            float *p = malloc(np * sizeof(float)), *x = malloc(nx * sizeof(float));
            float *sc = malloc((ns ? ns : 1) * sizeof(float));
            float *y = malloc(ny * sizeof(float)), *y2 = malloc(ny * sizeof(float));
            float *ry = malloc(ny * sizeof(float)), *ry2 = malloc(ny * sizeof(float));
            CHECK(p && x && sc && y && y2 && ry && ry2);
            if (!p || !x || !sc || !y || !y2 || !ry || !ry2) return;
            for (size_t i = 0; i < np; i++) p[i] = (float)urand(-0.3, 0.3);
            for (size_t i = 0; i < nx; i++) x[i] = (float)urand(-1, 1);
            fz_layer_bind(&L, p, NULL, NULL);
            CHECK_EQ_INT(fz_layer_reserve(&L, B, sc, &err), 0);
            CHECK_EQ_INT(fz_layer_reserve(&A, B, NULL, &err), 0);
            fz_layer_forward(&L, x, ry, B, 1, NULL);
            fz_layer_forward(&A, ry, ry2, B, 1, NULL);
            CHECK_EQ_INT(fz_layer_forward_pair(&L, &A, x, y, y2, B, 1), 1);
            CHECK_MSG(memcmp(y, ry, ny * sizeof(float)) == 0 && memcmp(y2, ry2, ny * sizeof(float)) == 0,
                      "conv pair %zu on %d threads differs", c, T);
            /* backward: the activation's backward in place in dy, chunk by chunk inside the
             * convolution's, against the two layers one after the other */
            float *g = calloc(np, sizeof(float)), *rg = malloc(np * sizeof(float));
            float *dy = malloc(ny * sizeof(float)), *dya = malloc(ny * sizeof(float));
            float *dx = malloc(nx * sizeof(float)), *rdx = malloc(nx * sizeof(float));
            CHECK(g && rg && dy && dya && dx && rdx);
            if (!g || !rg || !dy || !dya || !dx || !rdx) return;
            for (size_t i = 0; i < ny; i++) dy[i] = (float)urand(-1, 1);
            fz_layer_bind(&L, p, g, NULL);
            fz_layer_backward(&A, ry, ry2, dy, dya, B);
            fz_layer_backward(&L, x, ry, dya, rdx, B);
            memcpy(rg, g, np * sizeof(float));
            memset(g, 0, np * sizeof(float));
            CHECK_EQ_INT(fz_layer_backward_pair(&L, &A, x, y, y2, dy, dx, B), 1);
            CHECK_MSG(memcmp(dy, dya, ny * sizeof(float)) == 0 && memcmp(dx, rdx, nx * sizeof(float)) == 0 &&
                          memcmp(g, rg, np * sizeof(float)) == 0,
                      "conv pair %zu on %d threads: backward differs", c, T);
            free(g), free(rg), free(dy), free(dya), free(dx), free(rdx);
            fz_layer_free(&L);
            fz_layer_free(&A);
            free(p), free(x), free(sc), free(y), free(y2), free(ry), free(ry2);
        }
    fz_blas_set_threads(prev);
}

int main(void)
{
    test_keep_mask();
    test_fused_eval();
    fz_rng_seed(&rng, 42);
    test_linear();
    test_linear_pair();
    test_conv_pair();
    test_conv();
    test_convt();
    test_winograd();
    test_bn();
    test_elementwise();
    test_act_accuracy();
    test_shapes();
    test_init();
    test_dropout();
    test_memory();
    return check_report("test_nn");
}
