/* conv.c - Conv2d and ConvTranspose2d through im2col/col2im and one sgemm per sample.
 *
 * im2col turns one image (C, H, W) into columns (C*k*k, Ho*Wo): row (c, ki, kj) holds, for
 * every output position (oh, ow), the input pixel (c, oh*s - p + ki, ow*s - p + kj) or 0
 * in the padding. Its row order matches the weight layout (out_c, in_c, k, k), so a
 * convolution is W (out_c, in_c*k*k) times the columns. col2im is its adjoint: it adds
 * every column entry back onto its pixel. A transposed convolution is the adjoint of a
 * convolution, so its forward is a gemm followed by col2im and its backward an im2col
 * followed by gemms. 1x1 kernels with stride 1 and no padding skip the columns entirely.
 */
#include <string.h>

#include "blas.h"
#include "nn.h"

/* An image of (C, H, W) seen by a k x k window with stride s and padding p at Ho x Wo
 * positions. */
typedef struct geom {
    int C, H, W, k, s, p, Ho, Wo;
} geom;

/* First and one-past-last output index o with 0 <= o*s - p + kk < n. */
static void valid_range(int n, int s, int p, int kk, int no, int *lo, int *hi)
{
    int a = p - kk; /* need o*s >= a */
    int l = a <= 0 ? 0 : (a + s - 1) / s;
    int b = n - 1 + p - kk; /* need o*s <= b */
    int h = b < 0 ? 0 : b / s + 1;
    if (h > no) h = no;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* img (C, H, W) -> col (C*k*k, Ho*Wo) */
static void im2col(const geom *g, const float *img, float *col)
{
    int k = g->k, s = g->s, Ho = g->Ho, Wo = g->Wo;
    for (int c = 0; c < g->C; c++)
        for (int ki = 0; ki < k; ki++) {
            int hlo, hhi;
            valid_range(g->H, s, g->p, ki, Ho, &hlo, &hhi);
            for (int kj = 0; kj < k; kj++) {
                int wlo, whi;
                valid_range(g->W, s, g->p, kj, Wo, &wlo, &whi);
                float *row = col + ((size_t)(c * k + ki) * k + kj) * Ho * Wo;
                for (int oh = 0; oh < Ho; oh++) {
                    float *r = row + (size_t)oh * Wo;
                    if (oh < hlo || oh >= hhi) {
                        memset(r, 0, (size_t)Wo * sizeof(float));
                        continue;
                    }
                    const float *src = img + ((size_t)c * g->H + (oh * s - g->p + ki)) * g->W;
                    int off = kj - g->p;
                    for (int ow = 0; ow < wlo; ow++) r[ow] = 0.0f;
                    if (s == 1)
                        memcpy(r + wlo, src + wlo + off, (size_t)(whi - wlo) * sizeof(float));
                    else
                        for (int ow = wlo; ow < whi; ow++) r[ow] = src[ow * s + off];
                    for (int ow = whi; ow < Wo; ow++) r[ow] = 0.0f;
                }
            }
        }
}

/* img (C, H, W) = sum of col (C*k*k, Ho*Wo) entries onto their pixels (img overwritten) */
static void col2im(const geom *g, const float *col, float *img)
{
    int k = g->k, s = g->s, Ho = g->Ho, Wo = g->Wo;
    memset(img, 0, (size_t)g->C * g->H * g->W * sizeof(float));
    for (int c = 0; c < g->C; c++)
        for (int ki = 0; ki < k; ki++) {
            int hlo, hhi;
            valid_range(g->H, s, g->p, ki, Ho, &hlo, &hhi);
            for (int kj = 0; kj < k; kj++) {
                int wlo, whi;
                valid_range(g->W, s, g->p, kj, Wo, &wlo, &whi);
                const float *row = col + ((size_t)(c * k + ki) * k + kj) * Ho * Wo;
                int off = kj - g->p;
                for (int oh = hlo; oh < hhi; oh++) {
                    const float *r = row + (size_t)oh * Wo;
                    float *dst = img + ((size_t)c * g->H + (oh * s - g->p + ki)) * g->W;
                    for (int ow = wlo; ow < whi; ow++) dst[ow * s + off] += r[ow];
                }
            }
        }
}

static int pointwise(const fz_layer *L)
{
    return L->k == 1 && L->stride == 1 && L->pad == 0 && L->out_pad == 0;
}

/* The window geometry: for Conv2d the input image sampled at the output grid; for
 * ConvTranspose2d the output image sampled at the input grid (it is the adjoint). */
static geom geometry(const fz_layer *L)
{
    geom g;
    const fz_shape *img = L->kind == FZ_CONV2D ? &L->in : &L->out;
    const fz_shape *grid = L->kind == FZ_CONV2D ? &L->out : &L->in;
    g.C = img->c;
    g.H = img->h;
    g.W = img->w;
    g.k = L->k;
    g.s = L->stride;
    g.p = L->pad;
    g.Ho = grid->h;
    g.Wo = grid->w;
    return g;
}

size_t fz_conv_scratch_floats(const fz_layer *L)
{
    if (pointwise(L)) return 0;
    geom g = geometry(L);
    return (size_t)g.C * g.k * g.k * g.Ho * g.Wo;
}

/* ---- construction ------------------------------------------------------------------- */

static int conv_check(const char *name, int in_c, int in_h, int in_w, int out_c, int k,
                      int stride, int pad, fz_err *err)
{
    int v[] = {in_c, in_h, in_w, out_c, k, stride};
    const char *what[] = {"input channels", "input height", "input width",
                          "output channels", "kernel size", "stride"};
    for (int i = 0; i < 6; i++)
        if (v[i] < 1 || v[i] > FZ_NN_MAX_DIM)
            return fz_fail(err, FZ_EUSAGE, "%s %s must be in [1, %d], got %d", name, what[i],
                           FZ_NN_MAX_DIM, v[i]);
    if (pad < 0 || pad > FZ_NN_MAX_DIM)
        return fz_fail(err, FZ_EUSAGE, "%s padding must be in [0, %d], got %d", name,
                       FZ_NN_MAX_DIM, pad);
    unsigned long long nw = (unsigned long long)in_c * out_c * k * k;
    if (nw > FZ_NN_MAX_PARAMS)
        return fz_fail(err, FZ_EUSAGE, "%s has %llu weights, over the limit %d", name, nw,
                       FZ_NN_MAX_PARAMS);
    return 0;
}

/* Sizes of the sample shapes and of the im2col matrix within the limits. */
static int conv_check_sizes(fz_layer *L, const char *name, fz_err *err)
{
    unsigned long long in = (unsigned long long)L->in.c * L->in.h * L->in.w;
    unsigned long long out = (unsigned long long)L->out.c * L->out.h * L->out.w;
    geom g = geometry(L);
    unsigned long long cols = (unsigned long long)g.C * g.k * g.k * g.Ho * g.Wo;
    if (in > FZ_NN_MAX_SAMPLE || out > FZ_NN_MAX_SAMPLE || cols > FZ_NN_MAX_SAMPLE)
        return fz_fail(err, FZ_EUSAGE,
                       "%s %dx%dx%d -> %dx%dx%d needs more than %d floats per sample", name,
                       L->in.c, L->in.h, L->in.w, L->out.c, L->out.h, L->out.w,
                       FZ_NN_MAX_SAMPLE);
    return 0;
}

int fz_conv2d_init(fz_layer *L, int in_c, int in_h, int in_w, int out_c, int k, int stride,
                   int pad, int bias, fz_err *err)
{
    memset(L, 0, sizeof *L);
    L->kind = FZ_CONV2D;
    if (conv_check("Conv2d", in_c, in_h, in_w, out_c, k, stride, pad, err)) return -1;
    if (in_h + 2 * pad < k || in_w + 2 * pad < k)
        return fz_fail(err, FZ_EUSAGE,
                       "Conv2d kernel %d larger than the padded input %dx%d (padding %d)", k,
                       in_h, in_w, pad);
    L->in = (fz_shape){in_c, in_h, in_w};
    L->out = (fz_shape){out_c, (in_h + 2 * pad - k) / stride + 1, (in_w + 2 * pad - k) / stride + 1};
    L->k = k;
    L->stride = stride;
    L->pad = pad;
    L->has_bias = bias != 0;
    return conv_check_sizes(L, "Conv2d", err);
}

int fz_convt2d_init(fz_layer *L, int in_c, int in_h, int in_w, int out_c, int k, int stride,
                    int pad, int out_pad, int bias, fz_err *err)
{
    memset(L, 0, sizeof *L);
    L->kind = FZ_CONVT2D;
    if (conv_check("ConvTranspose2d", in_c, in_h, in_w, out_c, k, stride, pad, err)) return -1;
    if (out_pad < 0 || out_pad >= stride)
        return fz_fail(err, FZ_EUSAGE,
                       "ConvTranspose2d output padding must be in [0, stride - 1 = %d], got %d",
                       stride - 1, out_pad);
    long long oh = (long long)(in_h - 1) * stride - 2LL * pad + k + out_pad;
    long long ow = (long long)(in_w - 1) * stride - 2LL * pad + k + out_pad;
    if (oh < 1 || ow < 1 || oh > FZ_NN_MAX_DIM || ow > FZ_NN_MAX_DIM)
        return fz_fail(err, FZ_EUSAGE,
                       "ConvTranspose2d output %lldx%lld out of [1, %d] (input %dx%d, kernel %d, "
                       "stride %d, padding %d)",
                       oh, ow, FZ_NN_MAX_DIM, in_h, in_w, k, stride, pad);
    L->in = (fz_shape){in_c, in_h, in_w};
    L->out = (fz_shape){out_c, (int)oh, (int)ow};
    L->k = k;
    L->stride = stride;
    L->pad = pad;
    L->out_pad = out_pad;
    L->has_bias = bias != 0;
    return conv_check_sizes(L, "ConvTranspose2d", err);
}

/* ---- compute ------------------------------------------------------------------------ */

/* y (C, S) rows set to the bias (or zero) */
static void fill_bias(const fz_layer *L, float *y, int C, size_t S)
{
    for (int c = 0; c < C; c++) {
        float b = L->has_bias ? L->bias[c] : 0.0f;
        for (size_t j = 0; j < S; j++) y[(size_t)c * S + j] = b;
    }
}

static void add_bias_grad(const fz_layer *L, const float *dy, int C, size_t S)
{
    if (!L->has_bias) return;
    for (int c = 0; c < C; c++) {
        float s = 0.0f;
        for (size_t j = 0; j < S; j++) s += dy[(size_t)c * S + j];
        L->dbias[c] += s;
    }
}

void fz_conv2d_forward(fz_layer *L, const float *x, float *y, int B)
{
    geom g = geometry(L);
    int O = L->out.c, CKK = g.C * g.k * g.k, S = g.Ho * g.Wo;
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    for (int n = 0; n < B; n++) {
        const float *xn = x + n * in; /* (C, H, W) */
        float *yn = y + n * out;      /* (O, Ho, Wo) */
        const float *col = xn;        /* (C*k*k, Ho*Wo) */
        if (!pointwise(L)) {
            im2col(&g, xn, L->scratch);
            col = L->scratch;
        }
        if (L->has_bias) fill_bias(L, yn, O, S);
        /* y_n (O, S) = W (O, CKK) * col (CKK, S) [+ bias] */
        fz_gemm(0, 0, O, S, CKK, 1.0f, L->weight, CKK, col, S, L->has_bias ? 1.0f : 0.0f, yn, S);
    }
}

void fz_conv2d_backward(fz_layer *L, const float *x, const float *dy, float *dx, int B)
{
    geom g = geometry(L);
    int O = L->out.c, CKK = g.C * g.k * g.k, S = g.Ho * g.Wo;
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    int pw = pointwise(L);
    for (int n = 0; n < B; n++) {
        const float *xn = x + n * in, *dyn = dy + n * out;
        const float *col = xn;
        if (!pw) {
            im2col(&g, xn, L->scratch);
            col = L->scratch;
        }
        /* dW (O, CKK) += dy_n (O, S) * col^T (S, CKK) */
        fz_gemm(0, 1, O, CKK, S, 1.0f, dyn, S, col, S, 1.0f, L->dweight, CKK);
        add_bias_grad(L, dyn, O, S);
        if (!dx) continue;
        /* dcol (CKK, S) = W^T (CKK, O) * dy_n (O, S), then summed back onto the pixels */
        float *dxn = dx + n * in;
        fz_gemm(1, 0, CKK, S, O, 1.0f, L->weight, CKK, dyn, S, 0.0f, pw ? dxn : L->scratch, S);
        if (!pw) col2im(&g, L->scratch, dxn);
    }
}

void fz_convt2d_forward(fz_layer *L, const float *x, float *y, int B)
{
    geom g = geometry(L); /* image = output (O, Ho, Wo), grid = input H x W */
    int Cin = L->in.c, O = L->out.c, OKK = O * g.k * g.k, HW = g.Ho * g.Wo;
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    size_t S = (size_t)L->out.h * L->out.w;
    for (int n = 0; n < B; n++) {
        const float *xn = x + n * in; /* (Cin, H, W) */
        float *yn = y + n * out;      /* (O, Ho, Wo) */
        if (pointwise(L)) {
            if (L->has_bias) fill_bias(L, yn, O, S);
            fz_gemm(1, 0, O, HW, Cin, 1.0f, L->weight, O, xn, HW, L->has_bias ? 1.0f : 0.0f,
                    yn, HW);
            continue;
        }
        /* col (OKK, HW) = W^T (OKK, Cin) * x_n (Cin, HW), scattered onto the output */
        fz_gemm(1, 0, OKK, HW, Cin, 1.0f, L->weight, OKK, xn, HW, 0.0f, L->scratch, HW);
        col2im(&g, L->scratch, yn);
        if (L->has_bias)
            for (int c = 0; c < O; c++)
                for (size_t j = 0; j < S; j++) yn[(size_t)c * S + j] += L->bias[c];
    }
}

void fz_convt2d_backward(fz_layer *L, const float *x, const float *dy, float *dx, int B)
{
    geom g = geometry(L);
    int Cin = L->in.c, O = L->out.c, OKK = O * g.k * g.k, HW = g.Ho * g.Wo;
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    size_t S = (size_t)L->out.h * L->out.w;
    for (int n = 0; n < B; n++) {
        const float *xn = x + n * in, *dyn = dy + n * out;
        const float *col = dyn; /* (OKK, HW) */
        if (!pointwise(L)) {
            im2col(&g, dyn, L->scratch);
            col = L->scratch;
        }
        /* dW (Cin, OKK) += x_n (Cin, HW) * col^T (HW, OKK) */
        fz_gemm(0, 1, Cin, OKK, HW, 1.0f, xn, HW, col, HW, 1.0f, L->dweight, OKK);
        add_bias_grad(L, dyn, O, S);
        /* dx_n (Cin, HW) = W (Cin, OKK) * col (OKK, HW) */
        if (dx) fz_gemm(0, 0, Cin, HW, OKK, 1.0f, L->weight, OKK, col, HW, 0.0f, dx + n * in, HW);
    }
}
