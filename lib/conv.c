/* conv.c - Conv2d and ConvTranspose2d through im2col/col2im and sgemm.
 *
 * im2col turns one image (C, H, W) into columns (C*k*k, Ho*Wo): row (c, ki, kj) holds, for
 * every output position (oh, ow), the input pixel (c, oh*s - p + ki, ow*s - p + kj) or 0
 * in the padding. Its row order matches the weight layout (out_c, in_c, k, k), so a
 * convolution is W (out_c, in_c*k*k) times the columns. col2im is its adjoint: it adds
 * every column entry back onto its pixel. A transposed convolution is the adjoint of a
 * convolution, so its forward is a gemm followed by col2im and its backward an im2col
 * followed by gemms.
 *
 * Two paths. Stride 1 (all of vae-conv's layers) folds the kernel rows into the products
 * and goes one sample at a time, on columns k times smaller (see "stride 1: kernel rows
 * folded into the products"). Other strides use the full columns, with the columns of the
 * m samples of a chunk laid side by side, (C*k*k, m*Ho*Wo), so that every product is one
 * sgemm with a wide N (or K, for the weight gradient) instead of m narrow ones. The price
 * is that the grid-sized operand of the product is channel-major over the chunk,
 * (C, m*Ho*Wo), while the tensors are sample-major, (m, C, Ho, Wo): one copy gathers or
 * scatters it, and that pass also adds the bias or sums its gradient.
 *
 * A third path: stride-1 layers with a 5x5 kernel and 16 channels or more on both sides
 * (vae-conv's four widest) run as Winograd F(2x2, 5x5), 36 multiply-adds per 2x2 outputs
 * and channel pair instead of 100, as 36 sgemm per chunk of samples (see "stride 1, k = 5:
 * Winograd F(2x2, 5x5)" and winograd.h; fz_conv_set_winograd(0) turns it off).
 *
 * Two cores. Most of these products are too small for OpenBLAS's own threads to pay (see
 * fz_gemm), and the gathers and scatters are ours: so with T threads (fz_blas_threads())
 * the batch is cut into groups of samples that T threads of the pool of threads.h take in
 * turn, each running its groups end to end on its own scratch and with single-threaded
 * products (see "A call split over T threads" below).
 */
#include <limits.h>
#include <stdatomic.h>
#include <string.h>

#include "blas.h"
#include "nn.h"
#include "threads.h"
#include "winograd.h"

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

/* d += b */
static inline void add_const_f(float *restrict d, float b, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++) d[i + t] += b;
    for (; i < n; i++) d[i] += b;
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

/* Whether a convolution runs with its kernel rows folded (see "stride 1: kernel rows
 * folded into the products"): every stride-1 one. (On vae-conv's thinnest layers, 1->8
 * and 8->1 with K = C*k = 5, that was still twice as fast as the full columns.) */
static int folds(const fz_layer *L) { return L->stride == 1; }

/* The weight seen as (grid channels G, image channels C, k, k). */
static void fold_dims(const fz_layer *L, int *G, int *C)
{
    *G = L->kind == FZ_CONV2D ? L->out.c : L->in.c;
    *C = L->kind == FZ_CONV2D ? L->in.c : L->out.c;
}

/* Whether a stride-1 convolution can run as Winograd F(2x2, 5x5) (see "stride 1, k = 5:
 * Winograd F(2x2, 5x5)"): a 5x5 kernel and at least 16 channels on both sides. With 8
 * channels on one side the products are too thin to pay for the transforms: on vae-conv
 * (bench-layers, bench/README.md "Winograd F(2x2,5x5)") Conv2d 8->16 and ConvTranspose2d
 * 16->8 took 1.3 and 1.5 times as long as Winograd as folded, while 16->32, 32->64, 64->32
 * and 32->16 ran 1.3 to 1.45 times as fast. */
#ifndef FZ_WINO_MIN_CHANNELS
#define FZ_WINO_MIN_CHANNELS 16
#endif

static int winograd_fits(const fz_layer *L)
{
    int G, C;
    fold_dims(L, &G, &C);
    return L->k == 5 && L->stride == 1 && G >= FZ_WINO_MIN_CHANNELS && C >= FZ_WINO_MIN_CHANNELS;
}

/* ... and whether it does now (fz_conv_set_winograd) */
static int winograd(const fz_layer *L) { return winograd_fits(L) && fz_conv_winograd(); }

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

/* Scratch of one thread on the folded path, one sample at a time: the folded columns of
 * the image and their gradient (C*k, Hp*Wo) each, and the weight gradient in folded
 * order. */
static size_t folded_region(const fz_layer *L)
{
    geom g = geometry(L);
    size_t cols = (size_t)g.C * g.k * (g.Ho + g.k - 1) * g.Wo;
    return 2 * cols + (size_t)L->in.c * L->out.c * g.k * g.k;
}

/* Winograd tiles of one sample: tH x tW = T tiles of 2x2 over the grid. */
static int wino_tiles(const fz_layer *L, int *tH, int *tW)
{
    geom g = geometry(L);
    *tH = (g.Ho + 1) / 2;
    *tW = (g.Wo + 1) / 2;
    return *tH * *tW;
}

/* Winograd scratch per sample: V (36, C, T) and M (36, G, T) (see wino_parts). */
static size_t wino_per_sample(const fz_layer *L)
{
    int G, C, tH, tW, T = wino_tiles(L, &tH, &tW);
    fold_dims(L, &G, &C);
    return (size_t)FZ_WINO_XI * (size_t)(C + G) * (size_t)T;
}

/* Samples per Winograd chunk: as many as FZ_WINO_SCRATCH floats hold (V and M in the L2
 * cache), at least one. */
#ifndef FZ_WINO_SCRATCH
#define FZ_WINO_SCRATCH ((size_t)1 << 18)
#endif

static int wino_chunk(const fz_layer *L, int max_batch)
{
    int tH, tW, T = wino_tiles(L, &tH, &tW);
    size_t n = FZ_WINO_SCRATCH / wino_per_sample(L);
    if (n > FZ_CONV_CHUNK) n = FZ_CONV_CHUNK;
    if (n > (size_t)INT_MAX / (size_t)T) n = (size_t)INT_MAX / (size_t)T; /* sgemm's N */
    if (n < 1) n = 1;
    if (max_batch >= 1 && (size_t)max_batch < n) n = (size_t)max_batch;
    return (int)n;
}

/* The rows of V and M are up to this many floats longer than the chunk's tiles (see
 * spread_ld). */
#define FZ_WINO_LD_SLACK 64

/* A thread's Winograd region: V and M of a chunk, the padded image channel and dU
 * (36, G, C). */
static size_t wino_region(const fz_layer *L, int chunk)
{
    int G, C, tH, tW, T = wino_tiles(L, &tH, &tW);
    fold_dims(L, &G, &C);
    return (size_t)FZ_WINO_XI * (size_t)(C + G) * ((size_t)chunk * T + FZ_WINO_LD_SLACK) +
           fz_wino_pad_floats(tH, tW) + (size_t)FZ_WINO_XI * G * C;
}

/* A thread's region on a stride-1 layer for shares of up to max_batch samples: room for
 * the folded path and, where Winograd fits, for that path too (so that
 * fz_conv_set_winograd may switch between them at any call). */
static size_t stride1_region(const fz_layer *L, int max_batch)
{
    size_t r = folded_region(L);
    if (winograd_fits(L)) {
        size_t w = wino_region(L, wino_chunk(L, max_batch));
        if (w > r) r = w;
    }
    return r;
}

/* The transformed weights on a stride-1 layer: folded (k, G, C*k) or U (36, G, C). */
static size_t stride1_weights(const fz_layer *L)
{
    size_t n = (size_t)L->in.c * L->out.c * L->k * L->k;
    size_t u = (size_t)FZ_WINO_XI * L->in.c * L->out.c;
    return winograd_fits(L) && u > n ? u : n;
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

/* Threads the chunks of a call may be split over: OpenBLAS's thread count (the tools' -t),
 * within the pool's reach. */
int fz_conv_threads(void)
{
    int t = fz_blas_threads();
    return t < 1 ? 1 : t > FZ_THREADS_MAX ? FZ_THREADS_MAX : t;
}

/* With T threads each takes a contiguous share of at most ceil(max_batch / T) samples. */
static int share(int max_batch, int T) { return max_batch >= 1 ? (max_batch + T - 1) / T : 0; }

/* With T > 1 threads a batch is cut into this many groups per thread, which the threads
 * take in turn as they finish the previous one: a thread that the system pauses (a loaded
 * machine) then does fewer groups instead of holding the others up. */
#define FZ_CONV_GROUPS 4

static int groups_for(int T) { return T > 1 ? FZ_CONV_GROUPS * T : 1; }

/* Scratch of T threads: T regions of one chunk each, then the weight and bias gradients of
 * groups 1..G-1 (group 0 adds into the layer's own), then, with stride 1, the weights in
 * the order of the folded or the Winograd path. */
static size_t scratch_floats(const fz_layer *L, int max_batch, int T)
{
    size_t grads = fz_layer_nparams(L) * (size_t)(groups_for(T) - 1);
    if (folds(L))
        return stride1_region(L, share(max_batch, T)) * (size_t)T + grads + stride1_weights(L);
    return per_sample(L) * (size_t)max_chunk(L, share(max_batch, T)) * (size_t)T + grads;
}

size_t fz_conv_scratch_floats(const fz_layer *L, int max_batch)
{
    return scratch_floats(L, max_batch, fz_conv_threads());
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

/* A call split over T threads. The batch is cut into G groups of consecutive samples
 * (G = FZ_CONV_GROUPS * T, at most B; G = 1 on one thread), group g holding the samples
 * [B*g/G, B*(g+1)/G); each thread (part i of fz_threads_run) takes the next group not yet
 * taken, runs it end to end (gathers, products, scatters) in chunks of at most `cmax`
 * samples in its own region of the scratch (`region` floats each), then takes another.
 * What a group computes does not depend on the thread that runs it: its chunks, products
 * and sums are the same. The weight and bias gradients of group 0 are added into the
 * layer's own (as with one thread), those of group g > 0 go into gradient buffer g - 1
 * after the T regions, which reduce_grads() adds to the layer's in the order 1, 2, ...,
 * G-1 once all groups are done: the results depend on T, never on the timing of the
 * threads. With T == 1 the products go through fz_gemm (OpenBLAS may thread a large
 * one); with T > 1 each thread multiplies on its own (fz_gemm_serial, OpenBLAS set to one
 * thread around the parallel loop). */
typedef struct job {
    fz_layer *L;
    const float *x, *dy;
    float *y, *dx;
    int B, T, G, cmax;
    size_t region;
    atomic_int next; /* the next group to take */
    void (*group)(struct job *j, float *scratch, int grp); /* the work of one group */
    fz_conv_post post; /* forward: called on each finished chunk of y; backward: on each
                          chunk of dy before it is read; or NULL */
    void *post_ctx;
} job;

/* The hook on samples [n0, n0 + m): in a forward pass their y is final (the hook takes it
 * while it is in this thread's cache), in a backward pass their dy is about to be read
 * (the hook may write it). */
static void chunk_hook(const job *j, int n0, int m)
{
    size_t out = fz_layer_out_size(j->L);
    if (j->post) j->post(j->post_ctx, (size_t)n0 * out, (size_t)(n0 + m) * out);
}

static void job_init(job *j, fz_layer *L, const float *x, const float *dy, float *y,
                     float *dx, int B, fz_conv_post hook, void *hook_ctx)
{
    int Tr = L->threads < 1 ? 1 : L->threads; /* the scratch has room for Tr threads */
    int T = fz_conv_threads();
    if (T > Tr) T = Tr;
    if (T > B) T = B;
    if (T < 1) T = 1;
    j->L = L;
    j->x = x;
    j->dy = dy;
    j->y = y;
    j->dx = dx;
    j->post = hook;
    j->post_ctx = hook_ctx;
    j->B = B;
    j->T = T;
    j->G = groups_for(T) < B ? groups_for(T) : B;
    /* the region size and the chunk cap as reserved, whatever T is now */
    j->cmax = winograd_fits(L) ? wino_chunk(L, share(L->max_batch, Tr))
                               : max_chunk(L, share(L->max_batch, Tr));
    j->region = folds(L) ? stride1_region(L, share(L->max_batch, Tr)) : per_sample(L) * (size_t)j->cmax;
    atomic_init(&j->next, 0);
}

/* The next group for the calling thread, or -1 when all are taken. */
static int take_group(job *j)
{
    int g = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
    return g < j->G ? g : -1;
}

/* Group g's samples [*n0, *n1) and its chunk size. */
static void group_range(const job *j, int g, int *n0, int *n1, int *nb)
{
    *n0 = (int)((long long)j->B * g / j->G);
    *n1 = (int)((long long)j->B * (g + 1) / j->G);
    int len = *n1 - *n0, nchunks = (len + j->cmax - 1) / j->cmax;
    *nb = nchunks ? (len + nchunks - 1) / nchunks : 1; /* equal chunks of at most cmax */
}

/* Thread i's scratch region. */
static float *region(const job *j, int i) { return j->L->scratch + j->region * (size_t)i; }

/* The folded weights (k, G, C*k) or Winograd's U (36, G, C): after the regions and gradient buffers of the
 * threads the scratch was reserved for. */
static float *folded_weights(const job *j)
{
    const fz_layer *L = j->L;
    int Tr = L->threads < 1 ? 1 : L->threads;
    return L->scratch + j->region * (size_t)Tr + fz_layer_nparams(L) * (size_t)(groups_for(Tr) - 1);
}

static float *grad_buffer(const job *j, int g)
{
    return j->L->scratch + j->region * (size_t)j->T + fz_layer_nparams(j->L) * (size_t)(g - 1);
}

/* Where group g adds its weight gradient (*db: its bias gradient, or NULL without bias);
 * the buffers of groups g > 0 start at zero. */
static float *group_grads(const job *j, int g, float **db)
{
    fz_layer *L = j->L;
    if (g == 0) {
        *db = L->has_bias ? L->dbias : NULL;
        return L->dweight;
    }
    size_t np = fz_layer_nparams(L), nw = np - (L->has_bias ? (size_t)L->out.c : 0);
    float *buf = grad_buffer(j, g);
    memset(buf, 0, np * sizeof *buf);
    *db = L->has_bias ? buf + nw : NULL;
    return buf;
}

static void gemm(const job *j, int transA, int transB, int M, int N, int K, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (j->T > 1)
        fz_gemm_serial(transA, transB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    else
        fz_gemm(transA, transB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

/* Part i of T: take groups until none is left, each run in the part's own scratch region. */
static void run_part(void *arg, int i)
{
    job *j = arg;
    for (int g; (g = take_group(j)) >= 0;) j->group(j, region(j, i), g);
}

static void run_parts(job *j, void (*group)(job *, float *, int))
{
    j->group = group;
    if (j->T == 1) {
        run_part(j, 0);
        return;
    }
    int prev = fz_blas_serial_begin(); /* from this thread only: see fz_gemm_serial */
    fz_threads_run(j->T, run_part, j);
    fz_blas_serial_end(prev);
}

/* Add the gradient buffers of groups 1..G-1 to the layer's, in that order. */
static void reduce_grads(const job *j)
{
    fz_layer *L = j->L;
    size_t np = fz_layer_nparams(L), nw = np - (L->has_bias ? (size_t)L->out.c : 0);
    for (int g = 1; g < j->G; g++) {
        const float *buf = grad_buffer(j, g);
        for (size_t k = 0; k < nw; k++) L->dweight[k] += buf[k];
        for (size_t k = nw; k < np; k++) L->dbias[k - nw] += buf[k];
    }
}

/* ---- stride 1: kernel rows folded into the products ---------------------------------
 *
 * With stride 1, the im2col rows (c, ki, kj) and (c, ki + 1, kj) hold the same pixels one
 * image row apart, so the full columns repeat every pixel k*k times. This path builds only
 * the rows (c, kj), over every image row the windows touch (Hp = Ho + k - 1 rows of the
 * padded image), and runs k products, one per kernel row ki, each on the slice of those
 * columns that starts ki image rows down, S = Ho*Wo columns wide with rows Hp*Wo apart:
 *   xf (C*k, Hp*Wo)   xf[(c,kj), hp*Wo + ow] = img[c, hp - p, ow + kj - p] (0 off the image)
 *   slice_ki          xf[:, ki*Wo : ki*Wo + S]: column (oh, ow) holds img[c, oh+ki-p, ow+kj-p]
 *   wf (k, G, C*k)    wf[ki][o][(c,kj)] = W[o, c, ki, kj] for Conv2d (G = out_c), and
 *                     W[o, c, ki, kj] of ConvTranspose2d's (in_c, out_c, k, k) with G = in_c:
 *                     in both the weight seen as (grid channels, image channels, k, k)
 * so that a convolution is y (G, S) = sum over ki of wf[ki] * slice_ki, and its adjoint
 * (Conv2d's input gradient, ConvTranspose2d's forward) adds wf[ki]^T * y into slice_ki of
 * a zeroed xf and sums xf back onto the pixels. The columns are k times smaller than the
 * full ones, so they and the copies OpenBLAS packs of them stay in the L1 and L2 caches,
 * and each product keeps K = C*k (or K = S for the weight gradient). It runs one sample at
 * a time: on vae-conv's layers that was faster than wider products over several samples
 * (bench-layers, forward of 16->32 per batch of 256: 19 ms one sample at a time, 29 ms
 * with the samples of a 2 MB chunk interleaved column by column, 43 ms with the full
 * columns of chunks). */
static void im2col_folded(const geom *g, const float *img, float *xf)
{
    int k = g->k, p = g->p, Wo = g->Wo, Hp = g->Ho + k - 1;
    size_t ld = (size_t)Hp * Wo;
    for (int c = 0; c < g->C; c++)
        for (int kj = 0; kj < k; kj++) {
            int wlo, whi;
            valid_range(g->W, 1, p, kj, Wo, &wlo, &whi);
            float *row = xf + (size_t)(c * k + kj) * ld;
            for (int hp = 0; hp < Hp; hp++) {
                float *r = row + (size_t)hp * Wo;
                int h = hp - p;
                if (h < 0 || h >= g->H) {
                    memset(r, 0, (size_t)Wo * sizeof(float));
                    continue;
                }
                for (int ow = 0; ow < wlo; ow++) r[ow] = 0.0f;
                copy_f(r + wlo, img + ((size_t)c * g->H + h) * g->W + (kj - p) + wlo, whi - wlo);
                for (int ow = whi; ow < Wo; ow++) r[ow] = 0.0f;
            }
        }
}

/* img (C, H, W) = init + every xf entry added onto its pixel: the adjoint of
 * im2col_folded; init (C) is one value per channel, or NULL for zero. (With stride 1,
 * Hp = H + 2p: every image row h has its row h + p in xf.) */
static void col2im_folded(const geom *g, const float *xf, float *img, const float *init)
{
    int k = g->k, p = g->p, Wo = g->Wo, Hp = g->Ho + k - 1;
    size_t ld = (size_t)Hp * Wo, HW = (size_t)g->H * g->W;
    for (int c = 0; c < g->C; c++) {
        if (!init || init[c] == 0.0f) {
            memset(img + c * HW, 0, HW * sizeof(float));
            continue;
        }
        float *d = img + c * HW, v = init[c];
        size_t q = 0;
        for (; q + 8 <= HW; q += 8)
            for (int t = 0; t < 8; t++) d[q + t] = v;
        for (; q < HW; q++) d[q] = v;
    }
    for (int c = 0; c < g->C; c++)
        for (int kj = 0; kj < k; kj++) {
            int wlo, whi;
            valid_range(g->W, 1, p, kj, Wo, &wlo, &whi);
            const float *row = xf + (size_t)(c * k + kj) * ld;
            for (int h = 0; h < g->H; h++)
                add_f(img + ((size_t)c * g->H + h) * g->W + (kj - p) + wlo,
                      row + (size_t)(h + p) * Wo + wlo, whi - wlo);
        }
}

/* wf (k, G, C*k) from the layer's weight (G, C, k, k) */
static void fold_weights(const fz_layer *L, float *wf)
{
    int G, C, k = L->k;
    fold_dims(L, &G, &C);
    for (int ki = 0; ki < k; ki++)
        for (int o = 0; o < G; o++)
            for (int c = 0; c < C; c++)
                copy_f(wf + ((size_t)ki * G + o) * C * k + (size_t)c * k,
                       L->weight + (((size_t)o * C + c) * k + ki) * k, k);
}

/* dw (G, C, k, k) += dwf (k, G, C*k) */
static void unfold_add_weights(const fz_layer *L, const float *dwf, float *dw)
{
    int G, C, k = L->k;
    fold_dims(L, &G, &C);
    for (int ki = 0; ki < k; ki++)
        for (int o = 0; o < G; o++)
            for (int c = 0; c < C; c++)
                add_f(dw + (((size_t)o * C + c) * k + ki) * k,
                      dwf + ((size_t)ki * G + o) * C * k + (size_t)c * k, k);
}

/* A thread's region on the folded path: xf and dxf (C*k, Hp*Wo) each, then dwf (k, G, C*k)
 * (see folded_region). */
typedef struct folded {
    geom g;
    int G, Ck, S;
    size_t ld; /* Hp*Wo */
    const float *wf;
    float *xf, *dxf, *dwf;
} folded;

static folded folded_parts(const job *j, float *region)
{
    folded f;
    int C;
    f.g = geometry(j->L);
    fold_dims(j->L, &f.G, &C);
    f.Ck = C * f.g.k;
    f.S = f.g.Ho * f.g.Wo;
    f.ld = (size_t)(f.g.Ho + f.g.k - 1) * f.g.Wo;
    f.wf = folded_weights(j);
    f.xf = region;
    f.dxf = f.xf + (size_t)f.Ck * f.ld;
    f.dwf = f.dxf + (size_t)f.Ck * f.ld;
    return f;
}

/* y (G, S) = sum over ki of wf[ki] * slice_ki(xf) */
static void folded_conv(const job *j, const folded *f, float *y)
{
    for (int ki = 0; ki < f->g.k; ki++)
        gemm(j, 0, 0, f->G, f->S, f->Ck, f->wf + (size_t)ki * f->G * f->Ck, f->Ck,
             f->xf + (size_t)ki * f->g.Wo, (int)f->ld, ki ? 1.0f : 0.0f, y, f->S);
}

/* dxf = the adjoint of folded_conv applied to y (G, S): zero, then slice_ki += wf[ki]^T y */
static void folded_conv_adjoint(const job *j, const folded *f, const float *y)
{
    memset(f->dxf, 0, (size_t)f->Ck * f->ld * sizeof(float));
    for (int ki = 0; ki < f->g.k; ki++)
        gemm(j, 1, 0, f->Ck, f->S, f->G, f->wf + (size_t)ki * f->G * f->Ck, f->Ck, y, f->S, 1.0f,
             f->dxf + (size_t)ki * f->g.Wo, (int)f->ld);
}

/* dwf[ki] += y (G, S) * slice_ki(xf)^T */
static void folded_weight_grad(const job *j, const folded *f, const float *y)
{
    for (int ki = 0; ki < f->g.k; ki++)
        gemm(j, 0, 1, f->G, f->Ck, f->S, y, f->S, f->xf + (size_t)ki * f->g.Wo, (int)f->ld, 1.0f,
             f->dwf + (size_t)ki * f->G * f->Ck, f->Ck);
}

/* Conv2d forward: xf from x, y = folded_conv + bias */
static void conv2d_forward_folded(job *j, float *region, int grp)
{
    fz_layer *L = j->L;
    folded f = folded_parts(j, region);
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    int b0, b1, nb;
    group_range(j, grp, &b0, &b1, &nb);
    for (int n = b0; n < b1; n++) {
        float *yn = j->y + n * out;
        im2col_folded(&f.g, j->x + n * in, f.xf);
        folded_conv(j, &f, yn);
        if (L->has_bias)
            for (int o = 0; o < f.G; o++) add_const_f(yn + (size_t)o * f.S, L->bias[o], f.S);
        chunk_hook(j, n, 1);
    }
}

/* Conv2d backward: dW += dy * slices^T, db += row sums of dy, dx = col2im(adjoint(dy)) */
static void conv2d_backward_folded(job *j, float *region, int grp)
{
    fz_layer *L = j->L;
    folded f = folded_parts(j, region);
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    float *db, *dw = group_grads(j, grp, &db);
    int b0, b1, nb;
    group_range(j, grp, &b0, &b1, &nb);
    memset(f.dwf, 0, (size_t)f.g.k * f.G * f.Ck * sizeof(float));
    for (int n = b0; n < b1; n++) {
        chunk_hook(j, n, 1);
        const float *dyn = j->dy + n * out;
        if (db)
            for (int o = 0; o < f.G; o++) db[o] += sum_f(dyn + (size_t)o * f.S, f.S);
        im2col_folded(&f.g, j->x + n * in, f.xf);
        folded_weight_grad(j, &f, dyn);
        if (!j->dx) continue;
        folded_conv_adjoint(j, &f, dyn);
        col2im_folded(&f.g, f.dxf, j->dx + n * in, NULL);
    }
    unfold_add_weights(L, f.dwf, dw);
}

/* ConvTranspose2d forward, the adjoint of a convolution from y to x: y = col2im(adjoint(x))
 * over the bias */
static void convt2d_forward_folded(job *j, float *region, int grp)
{
    fz_layer *L = j->L;
    folded f = folded_parts(j, region);
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    int b0, b1, nb;
    group_range(j, grp, &b0, &b1, &nb);
    for (int n = b0; n < b1; n++) {
        folded_conv_adjoint(j, &f, j->x + n * in);
        col2im_folded(&f.g, f.dxf, j->y + n * out, L->has_bias ? L->bias : NULL);
        chunk_hook(j, n, 1);
    }
}

/* ConvTranspose2d backward: xf from dy, dx = folded_conv, dW += x * slices^T, db += sums of
 * dy */
static void convt2d_backward_folded(job *j, float *region, int grp)
{
    fz_layer *L = j->L;
    folded f = folded_parts(j, region);
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    size_t HW = (size_t)L->out.h * L->out.w;
    float *db, *dw = group_grads(j, grp, &db);
    int b0, b1, nb;
    group_range(j, grp, &b0, &b1, &nb);
    memset(f.dwf, 0, (size_t)f.g.k * f.G * f.Ck * sizeof(float));
    for (int n = b0; n < b1; n++) {
        chunk_hook(j, n, 1);
        const float *dyn = j->dy + n * out;
        if (db)
            for (int o = 0; o < L->out.c; o++) db[o] += sum_f(dyn + (size_t)o * HW, (int)HW);
        im2col_folded(&f.g, dyn, f.xf);
        folded_weight_grad(j, &f, j->x + n * in);
        if (j->dx) folded_conv(j, &f, j->dx + n * in);
    }
    unfold_add_weights(L, f.dwf, dw);
}

/* ---- stride 1, k = 5: Winograd F(2x2, 5x5) -----------------------------------------
 *
 * The layers where winograd() holds cut the grid into tiles of 2x2 and run each of the 36
 * positions xi of the 6x6 Winograd domain as one product over a chunk of samples (see
 * winograd.h for the transforms and the layout):
 *   U  (36, G, C)      Gk W[o, c] Gk^T, once per call (in the weights' place of the scratch)
 *   V  (36, C, m*T)    B^T d B of the image's 6x6 patches, the chunk's m samples side by side
 *   M  (36, G, m*T)    forward: M[xi] = U[xi] V[xi], then A^T M A onto the grid (G, Ho, Wo)
 *   Wt (36, G, m*T)    A g A^T of the grid's 2x2 tiles (in M's memory), for the adjoint
 *                      (V[xi] = U[xi]^T Wt[xi], then B V B^T added onto the image) and the
 *                      weight gradient (dU[xi] += Wt[xi] V[xi]^T, then dW += Gk^T dU Gk)
 * Each tile costs 36 multiply-adds per channel pair instead of 100. */

typedef struct wino {
    geom g;
    int G, C, tH, tW, T;
    int n;           /* tiles of the chunk: the columns of V and M */
    size_t ldv, ldm; /* their row strides */
    const float *U;
    float *V, *M, *pad, *dU;
} wino;

/* The row stride of a tile matrix of `rows` rows per position xi and n columns: the
 * smallest ld in [n, n + FZ_WINO_LD_SLACK) that spreads the 36 rows a transform writes at
 * once (xi = 0..35, rows * ld floats apart) over the most cache sets. With ld = n the
 * stride is a power of two on vae-conv (16 * 256 floats, 16 KB), all 36 rows fall into
 * the same set of the L1 cache and the transforms ran at a third of their speed. */
static size_t spread_ld(size_t n, int rows)
{
    size_t best = n;
    int most = 0;
    for (size_t ld = n; ld < n + FZ_WINO_LD_SLACK; ld++) {
        unsigned char used[64] = {0};
        int sets = 0;
        for (size_t xi = 0; xi < FZ_WINO_XI; xi++) {
            size_t set = xi * rows * ld * sizeof(float) / 64 % 64; /* 64 sets of 64 B lines */
            sets += !used[set];
            used[set] = 1;
        }
        if (sets > most) {
            most = sets;
            best = ld;
        }
    }
    return best;
}

/* A thread's region for chunks of up to nb samples: V, M, the padded image channel, dU. */
static wino wino_parts(const job *j, float *region, int nb)
{
    wino w;
    w.g = geometry(j->L);
    fold_dims(j->L, &w.G, &w.C);
    w.T = wino_tiles(j->L, &w.tH, &w.tW);
    w.U = folded_weights(j);
    size_t cols = (size_t)nb * w.T + FZ_WINO_LD_SLACK;
    w.V = region;
    w.M = w.V + (size_t)FZ_WINO_XI * w.C * cols;
    w.pad = w.M + (size_t)FZ_WINO_XI * w.G * cols;
    w.dU = w.pad + fz_wino_pad_floats(w.tH, w.tW);
    w.n = -1;
    return w;
}

/* Set up a chunk of m samples (the strides again only when m changed: the last chunk of a
 * group may be shorter). */
static void wino_chunk_of(wino *w, int m)
{
    if (m * w->T == w->n) return;
    w->n = m * w->T;
    w->ldv = spread_ld((size_t)w->n, w->C);
    w->ldm = spread_ld((size_t)w->n, w->G);
}

/* The m samples of a chunk: V from the images img[s] (C, H, W), `stride` floats apart */
static void wino_image_tiles(const wino *w, const float *img, size_t stride, int m)
{
    for (int s = 0; s < m; s++)
        fz_wino_image_tiles(img + s * stride, w->C, w->g.H, w->g.W, w->g.p, w->tH, w->tW, w->pad,
                            w->V + (size_t)s * w->T, w->ldv);
}

/* Wt (in M's memory) from the grids grid[s] (G, Ho, Wo) */
static void wino_grid_tiles(const wino *w, const float *grid, size_t stride, int m)
{
    for (int s = 0; s < m; s++)
        fz_wino_grid_tiles(grid + s * stride, w->G, w->g.Ho, w->g.Wo, w->tH, w->tW, w->pad,
                           w->M + (size_t)s * w->T, w->ldm);
}

/* M[xi] (G, n) = U[xi] (G, C) * V[xi] (C, n), then onto the grids (+ bias) */
static void wino_forward(const job *j, const wino *w, int m, const float *bias, float *grid,
                         size_t stride)
{
    size_t GC = (size_t)w->G * w->C;
    for (int xi = 0; xi < FZ_WINO_XI; xi++)
        gemm(j, 0, 0, w->G, w->n, w->C, w->U + xi * GC, w->C, w->V + xi * w->C * w->ldv,
             (int)w->ldv, 0.0f, w->M + xi * w->G * w->ldm, (int)w->ldm);
    for (int s = 0; s < m; s++)
        fz_wino_grid_untiles(w->M + (size_t)s * w->T, w->ldm, w->G, w->g.Ho, w->g.Wo, w->tH,
                             w->tW, w->pad, bias, grid + s * stride);
}

/* V[xi] (C, n) = U[xi]^T (C, G) * Wt[xi] (G, n), then onto the images over init */
static void wino_adjoint(const job *j, const wino *w, int m, const float *init, float *img,
                         size_t stride)
{
    size_t GC = (size_t)w->G * w->C;
    for (int xi = 0; xi < FZ_WINO_XI; xi++)
        gemm(j, 1, 0, w->C, w->n, w->G, w->U + xi * GC, w->C, w->M + xi * w->G * w->ldm,
             (int)w->ldm, 0.0f, w->V + xi * w->C * w->ldv, (int)w->ldv);
    for (int s = 0; s < m; s++)
        fz_wino_image_untiles(w->V + (size_t)s * w->T, w->ldv, w->C, w->g.H, w->g.W, w->g.p,
                              w->tH, w->tW, w->pad, init, img + s * stride);
}

/* dU[xi] (G, C) += Wt[xi] (G, n) * V[xi]^T (n, C) */
static void wino_weight_grad(const job *j, const wino *w)
{
    size_t GC = (size_t)w->G * w->C;
    for (int xi = 0; xi < FZ_WINO_XI; xi++)
        gemm(j, 0, 1, w->G, w->C, w->n, w->M + xi * w->G * w->ldm, (int)w->ldm,
             w->V + xi * w->C * w->ldv, (int)w->ldv, 1.0f, w->dU + xi * GC, w->C);
}

/* The forward of both kinds: a Conv2d takes V from x and writes y = A^T (U V) A + bias onto
 * the grid; a ConvTranspose2d, the adjoint from the grid x to the image y, takes Wt from x
 * and adds the adjoint onto the image over the bias. */
static void forward_wino(job *j, float *region, int grp)
{
    fz_layer *L = j->L;
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    const float *bias = L->has_bias ? L->bias : NULL;
    int b0, b1, nb;
    group_range(j, grp, &b0, &b1, &nb);
    wino w = wino_parts(j, region, nb);
    for (int n0 = b0; n0 < b1; n0 += nb) {
        int m = b1 - n0 < nb ? b1 - n0 : nb;
        wino_chunk_of(&w, m);
        if (L->kind == FZ_CONV2D) {
            wino_image_tiles(&w, j->x + n0 * in, in, m);
            wino_forward(j, &w, m, bias, j->y + n0 * out, out);
        } else {
            wino_grid_tiles(&w, j->x + n0 * in, in, m);
            wino_adjoint(j, &w, m, bias, j->y + n0 * out, out);
        }
        chunk_hook(j, n0, m);
    }
}

/* The backward of both kinds, the grid (G channels) and the image (C channels) being the
 * output and the input of a Conv2d and the other way round for a ConvTranspose2d:
 *   V from the image side (Conv2d: x, ConvTranspose2d: dy), Wt from the grid side (dy, x);
 *   dU += Wt V^T; db += the sums of dy (over its G or C channels);
 *   dx = the adjoint of the grid (Conv2d) or A^T (U V) A onto the grid (ConvTranspose2d, in
 *   M's memory once dU has it). */
static void backward_wino(job *j, float *region, int grp)
{
    fz_layer *L = j->L;
    int conv = L->kind == FZ_CONV2D;
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    int b0, b1, nb;
    group_range(j, grp, &b0, &b1, &nb);
    wino w = wino_parts(j, region, nb);
    int dyc = conv ? w.G : w.C;                                /* channels of dy */
    int dys = conv ? w.g.Ho * w.g.Wo : w.g.H * w.g.W;          /* and their size */
    float *db, *dw = group_grads(j, grp, &db);
    memset(w.dU, 0, (size_t)FZ_WINO_XI * w.G * w.C * sizeof(float));
    for (int n0 = b0; n0 < b1; n0 += nb) {
        int m = b1 - n0 < nb ? b1 - n0 : nb;
        wino_chunk_of(&w, m);
        chunk_hook(j, n0, m);
        const float *dy = j->dy + n0 * out, *x = j->x + n0 * in;
        if (db)
            for (int s = 0; s < m; s++)
                for (int o = 0; o < dyc; o++) db[o] += sum_f(dy + s * out + (size_t)o * dys, dys);
        wino_image_tiles(&w, conv ? x : dy, conv ? in : out, m);
        wino_grid_tiles(&w, conv ? dy : x, conv ? out : in, m);
        wino_weight_grad(j, &w);
        if (!j->dx) continue;
        if (conv) wino_adjoint(j, &w, m, NULL, j->dx + n0 * in, in);
        else wino_forward(j, &w, m, NULL, j->dx + n0 * in, in);
    }
    fz_wino_weights_grad_add(w.dU, w.G, w.C, dw);
}

/* Run a call on its path: Winograd (the weights transformed to U first), folded (the
 * weights in folded order first) or chunks of full columns; each path's work of one group. */
typedef void (*group_fn)(job *j, float *scratch, int grp);

static void run_path(job *j, group_fn wino_group, group_fn folded_group, group_fn columns_group)
{
    fz_layer *L = j->L;
    if (winograd(L)) {
        int G, C;
        fold_dims(L, &G, &C);
        fz_wino_weights(L->weight, G, C, folded_weights(j));
        run_parts(j, wino_group);
    } else if (folds(L)) {
        fold_weights(L, folded_weights(j));
        run_parts(j, folded_group);
    } else {
        run_parts(j, columns_group);
    }
}

/* Conv2d over a chunk of m samples, S = Ho*Wo grid positions, ld = m*S:
 *   col (C*k*k, ld)    im2col of the m inputs side by side
 *   t   (O, ld)        W (O, C*k*k) * col, then scattered to y (m, O, S) with the bias */
static void conv2d_forward_group(job *j, float *col, int grp)
{
    fz_layer *L = j->L;
    geom g = geometry(L);
    int O = L->out.c, CKK = g.C * g.k * g.k, S = g.Ho * g.Wo;
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    int b0, b1, nb;
    group_range(j, grp, &b0, &b1, &nb);
    float *t = col + (size_t)CKK * nb * S;
    const float *x = j->x;
    float *y = j->y;
    for (int n0 = b0; n0 < b1; n0 += nb) {
        int m = b1 - n0 < nb ? b1 - n0 : nb;
        size_t ld = (size_t)m * S;
        for (int s = 0; s < m; s++) im2col(&g, x + (n0 + s) * in, col + (size_t)s * S, ld);
        gemm(j, 0, 0, O, (int)ld, CKK, L->weight, CKK, col, (int)ld, 0.0f, t, (int)ld);
        for (int s = 0; s < m; s++)
            for (int o = 0; o < O; o++)
                copy_add_f(y + (n0 + s) * out + (size_t)o * S, t + o * ld + (size_t)s * S,
                           L->has_bias ? L->bias[o] : 0.0f, S);
        chunk_hook(j, n0, m);
    }
}

void fz_conv2d_forward(fz_layer *L, const float *x, float *y, int B, fz_conv_post post,
                       void *ctx)
{
    job j;
    job_init(&j, L, x, NULL, y, NULL, B, post, ctx);
    run_path(&j, forward_wino, conv2d_forward_folded, conv2d_forward_group);
}

/* dyt (O, ld) is dy of the chunk in channel-major order, gathered with the bias gradient:
 *   dW (O, C*k*k) += dyt * col^T
 *   dcol (C*k*k, ld) = W^T * dyt (into col's memory), summed back onto the pixels of dx */
static void conv2d_backward_group(job *j, float *col, int grp)
{
    fz_layer *L = j->L;
    geom g = geometry(L);
    int O = L->out.c, CKK = g.C * g.k * g.k, S = g.Ho * g.Wo;
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    int b0, b1, nb;
    group_range(j, grp, &b0, &b1, &nb);
    float *dyt = col + (size_t)CKK * nb * S;
    float *db, *dw = group_grads(j, grp, &db);
    const float *x = j->x, *dy = j->dy;
    float *dx = j->dx;
    for (int n0 = b0; n0 < b1; n0 += nb) {
        int m = b1 - n0 < nb ? b1 - n0 : nb;
        size_t ld = (size_t)m * S;
        chunk_hook(j, n0, m);
        for (int s = 0; s < m; s++) im2col(&g, x + (n0 + s) * in, col + (size_t)s * S, ld);
        for (int o = 0; o < O; o++) {
            float sb = 0.0f;
            for (int s = 0; s < m; s++)
                sb += copy_sum_f(dyt + o * ld + (size_t)s * S, dy + (n0 + s) * out + (size_t)o * S, S);
            if (db) db[o] += sb;
        }
        gemm(j, 0, 1, O, CKK, (int)ld, dyt, (int)ld, col, (int)ld, 1.0f, dw, CKK);
        if (!dx) continue;
        gemm(j, 1, 0, CKK, (int)ld, O, L->weight, CKK, dyt, (int)ld, 0.0f, col, (int)ld);
        for (int s = 0; s < m; s++) col2im(&g, col + (size_t)s * S, ld, dx + (n0 + s) * in, NULL);
    }
}

void fz_conv2d_backward(fz_layer *L, const float *x, const float *dy, float *dx, int B,
                        fz_conv_post pre, void *ctx)
{
    job j;
    job_init(&j, L, x, dy, NULL, dx, B, pre, ctx);
    run_path(&j, backward_wino, conv2d_backward_folded, conv2d_backward_group);
    reduce_grads(&j);
}

/* ConvTranspose2d over a chunk of m samples, HW = H*W input positions, ld = m*HW:
 *   xt  (Cin, ld)      x of the chunk in channel-major order
 *   col (O*k*k, ld)    W^T (O*k*k, Cin) * xt, summed onto the outputs over the bias */
static void convt2d_forward_group(job *j, float *col, int grp)
{
    fz_layer *L = j->L;
    geom g = geometry(L); /* image = output (O, Ho, Wo), grid = input H x W */
    int Cin = L->in.c, O = L->out.c, OKK = O * g.k * g.k, HW = g.Ho * g.Wo;
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    int b0, b1, nb;
    group_range(j, grp, &b0, &b1, &nb);
    float *xt = col + (size_t)OKK * nb * HW;
    const float *x = j->x;
    float *y = j->y;
    for (int n0 = b0; n0 < b1; n0 += nb) {
        int m = b1 - n0 < nb ? b1 - n0 : nb;
        size_t ld = (size_t)m * HW;
        for (int s = 0; s < m; s++)
            for (int c = 0; c < Cin; c++)
                copy_f(xt + c * ld + (size_t)s * HW, x + (n0 + s) * in + (size_t)c * HW, HW);
        gemm(j, 1, 0, OKK, (int)ld, Cin, L->weight, OKK, xt, (int)ld, 0.0f, col, (int)ld);
        for (int s = 0; s < m; s++)
            col2im(&g, col + (size_t)s * HW, ld, y + (n0 + s) * out, L->has_bias ? L->bias : NULL);
        chunk_hook(j, n0, m);
    }
}

void fz_convt2d_forward(fz_layer *L, const float *x, float *y, int B, fz_conv_post post,
                        void *ctx)
{
    job j;
    job_init(&j, L, x, NULL, y, NULL, B, post, ctx);
    run_path(&j, forward_wino, convt2d_forward_folded, convt2d_forward_group);
}

/* col (O*k*k, ld) is im2col of dy; xt (Cin, ld) x in channel-major order:
 *   dW (Cin, O*k*k) += xt * col^T
 *   dxt (Cin, ld) = W (Cin, O*k*k) * col (into xt's memory), scattered back to dx */
static void convt2d_backward_group(job *j, float *col, int grp)
{
    fz_layer *L = j->L;
    geom g = geometry(L);
    int Cin = L->in.c, O = L->out.c, OKK = O * g.k * g.k, HW = g.Ho * g.Wo;
    size_t in = fz_layer_in_size(L), out = fz_layer_out_size(L);
    int S = L->out.h * L->out.w;
    int b0, b1, nb;
    group_range(j, grp, &b0, &b1, &nb);
    float *xt = col + (size_t)OKK * nb * HW;
    float *db, *dw = group_grads(j, grp, &db);
    const float *x = j->x, *dy = j->dy;
    float *dx = j->dx;
    for (int n0 = b0; n0 < b1; n0 += nb) {
        int m = b1 - n0 < nb ? b1 - n0 : nb;
        size_t ld = (size_t)m * HW;
        chunk_hook(j, n0, m);
        for (int s = 0; s < m; s++) {
            const float *dyn = dy + (n0 + s) * out;
            im2col(&g, dyn, col + (size_t)s * HW, ld);
            if (db)
                for (int o = 0; o < O; o++) db[o] += sum_f(dyn + (size_t)o * S, S);
            for (int c = 0; c < Cin; c++)
                copy_f(xt + c * ld + (size_t)s * HW, x + (n0 + s) * in + (size_t)c * HW, HW);
        }
        gemm(j, 0, 1, Cin, OKK, (int)ld, xt, (int)ld, col, (int)ld, 1.0f, dw, OKK);
        if (!dx) continue;
        gemm(j, 0, 0, Cin, (int)ld, OKK, L->weight, OKK, col, (int)ld, 0.0f, xt, (int)ld);
        for (int s = 0; s < m; s++)
            for (int c = 0; c < Cin; c++)
                copy_f(dx + (n0 + s) * in + (size_t)c * HW, xt + c * ld + (size_t)s * HW, HW);
    }
}

void fz_convt2d_backward(fz_layer *L, const float *x, const float *dy, float *dx, int B,
                         fz_conv_post pre, void *ctx)
{
    job j;
    job_init(&j, L, x, dy, NULL, dx, B, pre, ctx);
    run_path(&j, backward_wino, convt2d_backward_folded, convt2d_backward_group);
    reduce_grads(&j);
}
