/* conv.c - Conv2d and ConvTranspose2d through im2col/col2im and one sgemm per product for
 * a whole chunk of samples.
 *
 * im2col turns one image (C, H, W) into columns (C*k*k, Ho*Wo): row (c, ki, kj) holds, for
 * every output position (oh, ow), the input pixel (c, oh*s - p + ki, ow*s - p + kj) or 0
 * in the padding. Its row order matches the weight layout (out_c, in_c, k, k), so a
 * convolution is W (out_c, in_c*k*k) times the columns. col2im is its adjoint: it adds
 * every column entry back onto its pixel. A transposed convolution is the adjoint of a
 * convolution, so its forward is a gemm followed by col2im and its backward an im2col
 * followed by gemms.
 *
 * The columns of the m samples of a chunk are laid side by side, (C*k*k, m*Ho*Wo), so
 * that every product is one sgemm with a wide N (or K, for the weight gradient) instead
 * of m narrow ones: OpenBLAS reaches its full rate only on such shapes. The price is that
 * the grid-sized operand of the product is channel-major over the chunk, (C, m*Ho*Wo),
 * while the tensors are sample-major, (m, C, Ho, Wo): one copy gathers or scatters it, and
 * that pass also adds the bias or sums its gradient.
 */
#include <limits.h>
#include <string.h>

#include "blas.h"
#include "nn.h"

/* Scratch budget of one layer in floats (2 MB): the chunk's columns are written by
 * im2col and read right away by the sgemm, and measured on vae-conv's layers a chunk that
 * stays in the L2 cache is as fast as or faster than one that spans the whole batch (the
 * products of a wide chunk run at the same rate, but im2col and col2im then stream through
 * main memory). Override at build time with -DFZ_CONV_SCRATCH=... ; FZ_CONV_CHUNK caps
 * the samples of a chunk. */
#ifndef FZ_CONV_SCRATCH
#define FZ_CONV_SCRATCH ((size_t)1 << 19)
#endif
#ifndef FZ_CONV_CHUNK
#define FZ_CONV_CHUNK 256
#endif

/* An image of (C, H, W) seen by a k x k window with stride s and padding p at Ho x Wo
 * positions. */
typedef struct geom {
    int C, H, W, k, s, p, Ho, Wo;
} geom;

/* ---- small vector loops ------------------------------------------------------------- */

/* Blocks of 8 with restrict pointers: gcc and clang vectorise these at -O2, where a plain
 * loop of unknown length is left scalar. The rows here are short (12 to 28 floats), so the
 * tails are fixed-size pieces too: a tail loop would be turned into a memcpy call, which
 * for 48 bytes costs more than the copy. */
static inline void copy_f(float *restrict d, const float *restrict s, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) memcpy(d + i, s + i, 8 * sizeof(float));
    if (n & 4) {
        memcpy(d + i, s + i, 4 * sizeof(float));
        i += 4;
    }
    if (n & 2) {
        memcpy(d + i, s + i, 2 * sizeof(float));
        i += 2;
    }
    if (n & 1) d[i] = s[i];
}

/* d += s */
static inline void add_f(float *restrict d, const float *restrict s, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++) d[i + t] += s[i + t];
    if (n & 4) {
        for (int t = 0; t < 4; t++) d[i + t] += s[i + t];
        i += 4;
    }
    if (n & 2) {
        d[i] += s[i];
        d[i + 1] += s[i + 1];
        i += 2;
    }
    if (n & 1) d[i] += s[i];
}

/* d = s + b */
static inline void copy_add_f(float *restrict d, const float *restrict s, float b, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++) d[i + t] = s[i + t] + b;
    for (; i < n; i++) d[i] = s[i] + b;
}

/* d = s, returning the sum of s */
static inline float copy_sum_f(float *restrict d, const float *restrict s, int n)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++) {
            d[i + t] = s[i + t];
            acc[t] += s[i + t];
        }
    float sum = 0.0f;
    for (; i < n; i++) {
        d[i] = s[i];
        sum += s[i];
    }
    for (int t = 0; t < 8; t++) sum += acc[t];
    return sum;
}

static inline float sum_f(const float *s, int n)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++) acc[t] += s[i + t];
    float sum = 0.0f;
    for (; i < n; i++) sum += s[i];
    for (int t = 0; t < 8; t++) sum += acc[t];
    return sum;
}

/* ---- im2col / col2im ---------------------------------------------------------------- */

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

/* img (C, H, W) -> col (C*k*k, Ho*Wo), rows ld floats apart (ld >= Ho*Wo: the columns of
 * several samples sit side by side in one matrix). */
static void im2col(const geom *g, const float *img, float *col, size_t ld)
{
    int k = g->k, s = g->s, Ho = g->Ho, Wo = g->Wo;
    for (int c = 0; c < g->C; c++)
        for (int ki = 0; ki < k; ki++) {
            int hlo, hhi;
            valid_range(g->H, s, g->p, ki, Ho, &hlo, &hhi);
            for (int kj = 0; kj < k; kj++) {
                int wlo, whi;
                valid_range(g->W, s, g->p, kj, Wo, &wlo, &whi);
                float *row = col + ((size_t)(c * k + ki) * k + kj) * ld;
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
                        copy_f(r + wlo, src + wlo + off, whi - wlo);
                    else
                        for (int ow = wlo; ow < whi; ow++) r[ow] = src[ow * s + off];
                    for (int ow = whi; ow < Wo; ow++) r[ow] = 0.0f;
                }
            }
        }
}

/* img (C, H, W) = init + the sum of the col (C*k*k, Ho*Wo) entries (rows ld floats apart)
 * onto their pixels; init (C) is one value per channel, or NULL for zero. */
static void col2im(const geom *g, const float *col, size_t ld, float *img, const float *init)
{
    int k = g->k, s = g->s, Ho = g->Ho, Wo = g->Wo;
    size_t HW = (size_t)g->H * g->W;
    for (int c = 0; c < g->C; c++) {
        float v = init ? init[c] : 0.0f;
        for (size_t j = 0; j < HW; j++) img[c * HW + j] = v;
    }
    for (int c = 0; c < g->C; c++)
        for (int ki = 0; ki < k; ki++) {
            int hlo, hhi;
            valid_range(g->H, s, g->p, ki, Ho, &hlo, &hhi);
            for (int kj = 0; kj < k; kj++) {
                int wlo, whi;
                valid_range(g->W, s, g->p, kj, Wo, &wlo, &whi);
                const float *row = col + ((size_t)(c * k + ki) * k + kj) * ld;
                int off = kj - g->p;
                for (int oh = hlo; oh < hhi; oh++) {
                    const float *r = row + (size_t)oh * Wo;
                    float *dst = img + ((size_t)c * g->H + (oh * s - g->p + ki)) * g->W;
                    if (s == 1)
                        add_f(dst + wlo + off, r + wlo, whi - wlo);
                    else
                        for (int ow = wlo; ow < whi; ow++) dst[ow * s + off] += r[ow];
                }
            }
        }
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

/* ---- scratch and chunks ------------------------------------------------------------- */

/* The products run over chunks of samples at once: the columns of a chunk sit side by side
 * in one matrix, so each product is one large sgemm instead of one small one per sample.
 * Scratch per sample: the columns (rows x grid) and the layer's grid-sized operand in
 * channel-major order (Conv2d: dy or the product's output, (out_c, grid); ConvTranspose2d:
 * x or dx, (in_c, grid)). */
static size_t per_sample(const fz_layer *L)
{
    geom g = geometry(L);
    size_t grid = (size_t)g.Ho * g.Wo;
    int other = L->kind == FZ_CONV2D ? L->out.c : L->in.c;
    return ((size_t)g.C * g.k * g.k + (size_t)other) * grid;
}

/* Samples per chunk for batches of up to max_batch: L->chunk when set, else as many as fit
 * in FZ_CONV_SCRATCH floats (at least one) and no more than FZ_CONV_CHUNK. */
static int max_chunk(const fz_layer *L, int max_batch)
{
    size_t per = per_sample(L), n = per ? FZ_CONV_SCRATCH / per : 1;
    if (n > FZ_CONV_CHUNK) n = FZ_CONV_CHUNK;
    if (L->chunk > 0) n = (size_t)L->chunk;
    /* a chunk's columns are one matrix of n * grid columns, an int for sgemm */
    geom g = geometry(L);
    size_t grid = (size_t)g.Ho * g.Wo;
    if (n > (size_t)INT_MAX / grid) n = (size_t)INT_MAX / grid;
    if (n < 1) n = 1;
    if (max_batch >= 1 && (size_t)max_batch < n) n = (size_t)max_batch;
    return (int)n;
}

size_t fz_conv_scratch_floats(const fz_layer *L, int max_batch)
{
    return per_sample(L) * (size_t)max_chunk(L, max_batch);
}

/* Chunk size for a batch of B: B split into equal chunks of at most the reserved size. */
static int chunk_for(const fz_layer *L, int B)
{
    int c = max_chunk(L, L->max_batch);
    int nchunks = (B + c - 1) / c;
    return (B + nchunks - 1) / nchunks;
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

/* Conv2d over a chunk of m samples, S = Ho*Wo grid positions, ld = m*S:
 *   col (C*k*k, ld)    im2col of the m inputs side by side
 *   t   (O, ld)        W (O, C*k*k) * col, then scattered to y (m, O, S) with the bias */
void fz_conv2d_forward(fz_layer *L, const float *x, float *y, int B)
{
    geom g = geometry(L);
    int O = L->out.c, CKK = g.C * g.k * g.k, S = g.Ho * g.Wo;
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    int nb = chunk_for(L, B);
    float *col = L->scratch, *t = col + (size_t)CKK * nb * S;
    for (int n0 = 0; n0 < B; n0 += nb) {
        int m = B - n0 < nb ? B - n0 : nb;
        size_t ld = (size_t)m * S;
        for (int j = 0; j < m; j++) im2col(&g, x + (n0 + j) * in, col + (size_t)j * S, ld);
        fz_gemm(0, 0, O, (int)ld, CKK, 1.0f, L->weight, CKK, col, (int)ld, 0.0f, t, (int)ld);
        for (int j = 0; j < m; j++)
            for (int o = 0; o < O; o++)
                copy_add_f(y + (n0 + j) * out + (size_t)o * S, t + o * ld + (size_t)j * S,
                           L->has_bias ? L->bias[o] : 0.0f, S);
    }
}

/* dyt (O, ld) is dy of the chunk in channel-major order, gathered with the bias gradient:
 *   dW (O, C*k*k) += dyt * col^T
 *   dcol (C*k*k, ld) = W^T * dyt (into col's memory), summed back onto the pixels of dx */
void fz_conv2d_backward(fz_layer *L, const float *x, const float *dy, float *dx, int B)
{
    geom g = geometry(L);
    int O = L->out.c, CKK = g.C * g.k * g.k, S = g.Ho * g.Wo;
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    int nb = chunk_for(L, B);
    float *col = L->scratch, *dyt = col + (size_t)CKK * nb * S;
    for (int n0 = 0; n0 < B; n0 += nb) {
        int m = B - n0 < nb ? B - n0 : nb;
        size_t ld = (size_t)m * S;
        for (int j = 0; j < m; j++) im2col(&g, x + (n0 + j) * in, col + (size_t)j * S, ld);
        for (int o = 0; o < O; o++) {
            float sb = 0.0f;
            for (int j = 0; j < m; j++)
                sb += copy_sum_f(dyt + o * ld + (size_t)j * S, dy + (n0 + j) * out + (size_t)o * S, S);
            if (L->has_bias) L->dbias[o] += sb;
        }
        fz_gemm(0, 1, O, CKK, (int)ld, 1.0f, dyt, (int)ld, col, (int)ld, 1.0f, L->dweight, CKK);
        if (!dx) continue;
        fz_gemm(1, 0, CKK, (int)ld, O, 1.0f, L->weight, CKK, dyt, (int)ld, 0.0f, col, (int)ld);
        for (int j = 0; j < m; j++) col2im(&g, col + (size_t)j * S, ld, dx + (n0 + j) * in, NULL);
    }
}

/* ConvTranspose2d over a chunk of m samples, HW = H*W input positions, ld = m*HW:
 *   xt  (Cin, ld)      x of the chunk in channel-major order
 *   col (O*k*k, ld)    W^T (O*k*k, Cin) * xt, summed onto the outputs over the bias */
void fz_convt2d_forward(fz_layer *L, const float *x, float *y, int B)
{
    geom g = geometry(L); /* image = output (O, Ho, Wo), grid = input H x W */
    int Cin = L->in.c, O = L->out.c, OKK = O * g.k * g.k, HW = g.Ho * g.Wo;
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    int nb = chunk_for(L, B);
    float *col = L->scratch, *xt = col + (size_t)OKK * nb * HW;
    for (int n0 = 0; n0 < B; n0 += nb) {
        int m = B - n0 < nb ? B - n0 : nb;
        size_t ld = (size_t)m * HW;
        for (int j = 0; j < m; j++)
            for (int c = 0; c < Cin; c++)
                copy_f(xt + c * ld + (size_t)j * HW, x + (n0 + j) * in + (size_t)c * HW, HW);
        fz_gemm(1, 0, OKK, (int)ld, Cin, 1.0f, L->weight, OKK, xt, (int)ld, 0.0f, col, (int)ld);
        for (int j = 0; j < m; j++)
            col2im(&g, col + (size_t)j * HW, ld, y + (n0 + j) * out, L->has_bias ? L->bias : NULL);
    }
}

/* col (O*k*k, ld) is im2col of dy; xt (Cin, ld) x in channel-major order:
 *   dW (Cin, O*k*k) += xt * col^T
 *   dxt (Cin, ld) = W (Cin, O*k*k) * col (into xt's memory), scattered back to dx */
void fz_convt2d_backward(fz_layer *L, const float *x, const float *dy, float *dx, int B)
{
    geom g = geometry(L);
    int Cin = L->in.c, O = L->out.c, OKK = O * g.k * g.k, HW = g.Ho * g.Wo;
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    int S = L->out.h * L->out.w;
    int nb = chunk_for(L, B);
    float *col = L->scratch, *xt = col + (size_t)OKK * nb * HW;
    for (int n0 = 0; n0 < B; n0 += nb) {
        int m = B - n0 < nb ? B - n0 : nb;
        size_t ld = (size_t)m * HW;
        for (int j = 0; j < m; j++) {
            const float *dyn = dy + (n0 + j) * out;
            im2col(&g, dyn, col + (size_t)j * HW, ld);
            if (L->has_bias)
                for (int o = 0; o < O; o++) L->dbias[o] += sum_f(dyn + (size_t)o * S, S);
            for (int c = 0; c < Cin; c++)
                copy_f(xt + c * ld + (size_t)j * HW, x + (n0 + j) * in + (size_t)c * HW, HW);
        }
        fz_gemm(0, 1, Cin, OKK, (int)ld, 1.0f, xt, (int)ld, col, (int)ld, 1.0f, L->dweight, OKK);
        if (!dx) continue;
        fz_gemm(0, 0, Cin, (int)ld, OKK, 1.0f, L->weight, OKK, col, (int)ld, 0.0f, xt, (int)ld);
        for (int j = 0; j < m; j++)
            for (int c = 0; c < Cin; c++)
                copy_f(dx + (n0 + j) * in + (size_t)c * HW, xt + c * ld + (size_t)j * HW, HW);
    }
}
