/* nn.c - layer construction, parameters, and the forward/backward of the dense, norm,
 * dropout, activation and view layers. The convolutions live in conv.c. */
#include "nn.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "threads.h"

/* ---- construction ------------------------------------------------------------------- */

static int check_dim(int v, const char *what, fz_err *err)
{
    if (v < 1 || v > FZ_NN_MAX_DIM)
        return fz_fail(err, FZ_EUSAGE, "%s must be in [1, %d], got %d", what, FZ_NN_MAX_DIM, v);
    return 0;
}

static int check_shape(fz_shape s, const char *what, fz_err *err)
{
    char name[64];
    snprintf(name, sizeof name, "%s channels", what);
    if (check_dim(s.c, name, err)) return -1;
    snprintf(name, sizeof name, "%s height", what);
    if (check_dim(s.h, name, err)) return -1;
    snprintf(name, sizeof name, "%s width", what);
    if (check_dim(s.w, name, err)) return -1;
    /* each factor <= 2^16, so the product fits in 64 bits */
    unsigned long long n = (unsigned long long)s.c * (unsigned long long)s.h * (unsigned long long)s.w;
    if (n > FZ_NN_MAX_SAMPLE)
        return fz_fail(err, FZ_EUSAGE, "%s sample of %dx%dx%d = %llu floats exceeds the limit %d",
                       what, s.c, s.h, s.w, n, FZ_NN_MAX_SAMPLE);
    return 0;
}

static void clear(fz_layer *L, fz_layer_kind kind)
{
    memset(L, 0, sizeof *L);
    L->kind = kind;
}

static fz_shape vec(int d)
{
    fz_shape s = {d, 1, 1};
    return s;
}

int fz_linear_init(fz_layer *L, int in, int out, int bias, fz_err *err)
{
    clear(L, FZ_LINEAR);
    if (check_shape(vec(in), "Linear input", err) || check_shape(vec(out), "Linear output", err))
        return -1;
    if ((unsigned long long)in * (unsigned long long)out > FZ_NN_MAX_PARAMS)
        return fz_fail(err, FZ_EUSAGE, "Linear %d -> %d has more than %d weights", in, out,
                       FZ_NN_MAX_PARAMS);
    L->in = vec(in);
    L->out = vec(out);
    L->has_bias = bias != 0;
    return 0;
}

int fz_batchnorm2d_init(fz_layer *L, int c, int h, int w, fz_err *err)
{
    clear(L, FZ_BATCHNORM2D);
    fz_shape s = {c, h, w};
    if (check_shape(s, "BatchNorm2d", err)) return -1;
    L->in = L->out = s;
    L->momentum = 0.1f;
    L->eps = 1e-5f;
    return 0;
}

int fz_batchnorm1d_init(fz_layer *L, int features, fz_err *err)
{
    if (fz_batchnorm2d_init(L, features, 1, 1, err)) {
        L->kind = FZ_BATCHNORM1D;
        return -1;
    }
    L->kind = FZ_BATCHNORM1D;
    return 0;
}

int fz_dropout_init(fz_layer *L, fz_shape shape, float p, fz_err *err)
{
    clear(L, FZ_DROPOUT);
    if (check_shape(shape, "Dropout", err)) return -1;
    if (!(p >= 0.0f && p <= 1.0f))
        return fz_fail(err, FZ_EUSAGE, "Dropout probability must be in [0, 1], got %g", (double)p);
    L->in = L->out = shape;
    L->p = p;
    return 0;
}

int fz_act_init(fz_layer *L, fz_layer_kind kind, fz_shape shape, fz_err *err)
{
    clear(L, kind);
    if (kind != FZ_RELU && kind != FZ_SILU && kind != FZ_SIGMOID && kind != FZ_TANH &&
        kind != FZ_SOFTPLUS)
        return fz_fail(err, FZ_EUSAGE, "%s is not a parameter-free activation",
                       fz_layer_kind_name(kind));
    if (check_shape(shape, fz_layer_kind_name(kind), err)) return -1;
    L->in = L->out = shape;
    return 0;
}

int fz_leakyrelu_init(fz_layer *L, fz_shape shape, float slope, fz_err *err)
{
    clear(L, FZ_LEAKYRELU);
    if (check_shape(shape, "LeakyReLU", err)) return -1;
    if (!isfinite(slope))
        return fz_fail(err, FZ_EUSAGE, "LeakyReLU slope must be finite, got %g", (double)slope);
    L->in = L->out = shape;
    L->slope = slope;
    return 0;
}

int fz_flatten_init(fz_layer *L, int c, int h, int w, fz_err *err)
{
    clear(L, FZ_FLATTEN);
    fz_shape s = {c, h, w};
    if (check_shape(s, "Flatten", err)) return -1;
    L->in = s;
    L->out = vec(c * h * w);
    return 0;
}

int fz_unflatten_init(fz_layer *L, int c, int h, int w, fz_err *err)
{
    clear(L, FZ_UNFLATTEN);
    fz_shape s = {c, h, w};
    if (check_shape(s, "Unflatten", err)) return -1;
    L->in = vec(c * h * w);
    L->out = s;
    return 0;
}

const char *fz_layer_kind_name(fz_layer_kind kind)
{
    switch (kind) {
    case FZ_LINEAR: return "Linear";
    case FZ_CONV2D: return "Conv2d";
    case FZ_CONVT2D: return "ConvTranspose2d";
    case FZ_BATCHNORM1D: return "BatchNorm1d";
    case FZ_BATCHNORM2D: return "BatchNorm2d";
    case FZ_DROPOUT: return "Dropout";
    case FZ_RELU: return "ReLU";
    case FZ_LEAKYRELU: return "LeakyReLU";
    case FZ_SILU: return "SiLU";
    case FZ_SIGMOID: return "Sigmoid";
    case FZ_TANH: return "Tanh";
    case FZ_SOFTPLUS: return "Softplus";
    case FZ_FLATTEN: return "Flatten";
    case FZ_UNFLATTEN: return "Unflatten";
    }
    return "unknown";
}

/* ---- sizes, binding, initialisation ------------------------------------------------- */

static size_t shape_size(fz_shape s) { return (size_t)s.c * s.h * s.w; }
size_t fz_layer_in_size(const fz_layer *L) { return shape_size(L->in); }
size_t fz_layer_out_size(const fz_layer *L) { return shape_size(L->out); }

static size_t nweight(const fz_layer *L)
{
    switch (L->kind) {
    case FZ_LINEAR: return (size_t)L->in.c * L->out.c;
    case FZ_CONV2D:
    case FZ_CONVT2D: return (size_t)L->in.c * L->out.c * L->k * L->k;
    case FZ_BATCHNORM1D:
    case FZ_BATCHNORM2D: return (size_t)L->in.c;
    default: return 0;
    }
}

static size_t nbias(const fz_layer *L)
{
    switch (L->kind) {
    case FZ_LINEAR:
    case FZ_CONV2D:
    case FZ_CONVT2D: return L->has_bias ? (size_t)L->out.c : 0;
    case FZ_BATCHNORM1D:
    case FZ_BATCHNORM2D: return (size_t)L->in.c;
    default: return 0;
    }
}

size_t fz_layer_nparams(const fz_layer *L) { return nweight(L) + nbias(L); }

size_t fz_layer_nbuffers(const fz_layer *L)
{
    return (L->kind == FZ_BATCHNORM1D || L->kind == FZ_BATCHNORM2D) ? 2 * (size_t)L->in.c : 0;
}

size_t fz_layer_scratch_floats_for(const fz_layer *L, int max_batch)
{
    if (L->kind == FZ_CONV2D || L->kind == FZ_CONVT2D) return fz_conv_scratch_floats(L, max_batch);
    return 0;
}

size_t fz_layer_scratch_floats(const fz_layer *L) { return fz_layer_scratch_floats_for(L, 0); }

int fz_layer_is_view(const fz_layer *L) { return L->kind == FZ_FLATTEN || L->kind == FZ_UNFLATTEN; }

int fz_layer_is_act(const fz_layer *L)
{
    return L->kind == FZ_RELU || L->kind == FZ_LEAKYRELU || L->kind == FZ_SILU ||
           L->kind == FZ_SIGMOID || L->kind == FZ_TANH || L->kind == FZ_SOFTPLUS;
}

void fz_layer_bind(fz_layer *L, float *params, float *grads, float *buffers)
{
    size_t nw = nweight(L), nb = nbias(L);
    L->weight = nw ? params : NULL;
    L->bias = nb ? params + nw : NULL;
    L->dweight = nw && grads ? grads : NULL;
    L->dbias = nb && grads ? grads + nw : NULL;
    size_t nbuf = fz_layer_nbuffers(L);
    L->running_mean = nbuf ? buffers : NULL;
    L->running_var = nbuf ? buffers + nbuf / 2 : NULL;
}

void fz_layer_init_params(fz_layer *L, fz_rng *rng)
{
    size_t nw = nweight(L), nb = nbias(L);
    if (L->kind == FZ_BATCHNORM1D || L->kind == FZ_BATCHNORM2D) {
        for (size_t i = 0; i < nw; i++) {
            L->weight[i] = 1.0f;
            L->bias[i] = 0.0f;
            L->running_mean[i] = 0.0f;
            L->running_var[i] = 1.0f;
        }
        return;
    }
    if (!nw) return;
    /* kaiming_uniform(a = sqrt(5)): gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / fan_in)
     * = 1 / sqrt(fan_in); PyTorch takes fan_in from weight dim 1 times the kernel area,
     * which for ConvTranspose2d (in_c, out_c, k, k) is out_c * k * k. */
    size_t fan_in = L->kind == FZ_LINEAR   ? (size_t)L->in.c
                    : L->kind == FZ_CONV2D ? (size_t)L->in.c * L->k * L->k
                                           : (size_t)L->out.c * L->k * L->k;
    double bound = 1.0 / sqrt((double)fan_in);
    for (size_t i = 0; i < nw; i++)
        L->weight[i] = (float)((2.0 * fz_rng_uniform(rng) - 1.0) * bound);
    for (size_t i = 0; i < nb; i++)
        L->bias[i] = (float)((2.0 * fz_rng_uniform(rng) - 1.0) * bound);
}

/* ---- memory ------------------------------------------------------------------------- */

void fz_layer_free(fz_layer *L)
{
    free(L->owned);
    L->owned = NULL;
    L->mask = NULL;
    L->save_mean = L->save_invstd = NULL;
    L->stat = NULL;
    L->scratch = NULL;
    L->own_scratch = 0;
    L->max_batch = 0;
    L->threads = 0;
    L->last_mask = NULL;
}

int fz_layer_reserve(fz_layer *L, int max_batch, float *scratch, fz_err *err)
{
    fz_layer_free(L);
    if (max_batch < 1)
        return fz_fail(err, FZ_EUSAGE, "batch size must be at least 1, got %d", max_batch);
    /* one block: [stat doubles][scratch floats][save_mean, save_invstd floats][mask bytes],
     * the doubles first so that they are aligned */
    int bn = L->kind == FZ_BATCHNORM1D || L->kind == FZ_BATCHNORM2D;
    size_t nstat = bn ? 5 * (size_t)L->in.c : 0;
    size_t nscr = scratch ? 0 : fz_layer_scratch_floats_for(L, max_batch);
    size_t nsave = bn ? 2 * (size_t)L->in.c : 0;
    size_t nmask = 0, total;
    if (L->kind == FZ_DROPOUT && fz_mul_size(fz_layer_in_size(L), (size_t)max_batch, &nmask))
        return fz_fail(err, FZ_EUSAGE, "Dropout mask for batch %d overflows", max_batch);
    if (fz_mul_size(nscr + nsave, sizeof(float), &total) || fz_add_size(total, nmask, &total) ||
        fz_add_size(total, nstat * sizeof(double), &total))
        return fz_fail(err, FZ_ENOMEM, "%s workspace size overflows", fz_layer_kind_name(L->kind));
    if (total) {
        L->owned = fz_malloc(total, err);
        if (!L->owned) return -1;
    }
    if (nstat) L->stat = L->owned;
    float *f = (float *)((char *)L->owned + nstat * sizeof(double));
    if (nscr) {
        L->scratch = f;
        L->own_scratch = 1;
        f += nscr;
    } else {
        L->scratch = scratch;
    }
    if (nsave) {
        L->save_mean = f;
        L->save_invstd = f + L->in.c;
        f += nsave;
    }
    if (nmask) L->mask = (unsigned char *)f;
    L->max_batch = max_batch;
    if (L->kind == FZ_CONV2D || L->kind == FZ_CONVT2D) L->threads = fz_conv_threads();
    return 0;
}

void fz_dropout_use_mask(fz_layer *L, const unsigned char *keep) { L->ext_mask = keep; }

/* ---- Linear ------------------------------------------------------------------------- */

static void act_forward(const fz_layer *L, const float *x, float *y, size_t total);
static void act_backward(const fz_layer *L, const float *x, const float *y, const float *dy,
                         float *dx, size_t total);
static int act_threads(const fz_layer *L, size_t total, int backward);

/* An activation applied to a block of a Linear layer's output as the product's epilogue:
 * x, y (rows, ld) */
typedef struct act_block_job {
    const fz_layer *act;
    const float *x;
    float *y;
    int ld;
} act_block_job;

static void act_block(void *ctx, int r0, int r1, int c0, int c1)
{
    const act_block_job *j = ctx;
    for (int r = r0; r < r1; r++)
        act_forward(j->act, j->x + (size_t)r * j->ld + c0, j->y + (size_t)r * j->ld + c0,
                    (size_t)(c1 - c0));
}

/* y (B, out) = x (B, in; rows ldx apart) * W^T (in, out) [+ the bias], and, with act, ay =
 * act(y) (B, out), each block on the thread that computed it */
static void linear_forward_into(fz_layer *L, const float *x, size_t ldx, float *y, int B,
                                const fz_layer *act, float *ay)
{
    int in = L->in.c, out = L->out.c;
    act_block_job aj = {act, y, ay, out};
    fz_gemm_epilogue ep = {L->has_bias ? L->bias : NULL, act ? act_block : NULL, &aj};
    fz_gemm_ep(0, 1, B, out, in, 1.0f, x, (int)ldx, L->weight, in, L->has_bias ? 1.0f : 0.0f,
               y, out, &ep);
}

static void linear_forward(fz_layer *L, const float *x, float *y, int B)
{
    linear_forward_into(L, x, (size_t)L->in.c, y, B, NULL, NULL);
}

void fz_linear_forward_ld(fz_layer *L, const float *x, size_t ldx, float *y, int B)
{
    L->last_train = 0;
    linear_forward_into(L, x, ldx, y, B, NULL, NULL);
}

/* the activation over y[lo, hi) into y2 as a convolution's post hook */
static void act_range(void *ctx, size_t lo, size_t hi)
{
    const act_block_job *j = ctx;
    act_forward(j->act, j->x + lo, j->y + lo, hi - lo);
}

int fz_layer_forward_pair(fz_layer *L, fz_layer *next, const float *x, float *y, float *y2,
                          int B, int train)
{
    if (!fz_layer_is_act(next)) return 0;
    if (L->kind == FZ_CONV2D || L->kind == FZ_CONVT2D) {
        L->last_train = next->last_train = train != 0;
        act_block_job aj = {next, y, y2, 0};
        if (L->kind == FZ_CONV2D) fz_conv2d_forward(L, x, y, B, act_range, &aj);
        else fz_convt2d_forward(L, x, y, B, act_range, &aj);
        return 1;
    }
    if (L->kind != FZ_LINEAR) return 0;
    size_t total = (size_t)B * fz_layer_out_size(L);
    /* Where the product runs on the calling thread and the activation would be cut over
     * the threads, the two stay apart. */
    if (fz_gemm_parts(B, L->out.c, L->in.c) < 2 && act_threads(next, total, 0) > 1) return 0;
    L->last_train = next->last_train = train != 0;
    linear_forward_into(L, x, (size_t)L->in.c, y, B, next, y2);
    return 1;
}

/* the activation's backward over [lo, hi), in place in dy, as a convolution's pre hook */
typedef struct act_back_job {
    const fz_layer *act;
    const float *x, *y; /* the activation's input and output */
    float *dy;
} act_back_job;

static void act_back_range(void *ctx, size_t lo, size_t hi)
{
    const act_back_job *j = ctx;
    act_backward(j->act, j->x + lo, j->y + lo, j->dy + lo, j->dy + lo, hi - lo);
}

int fz_layer_backward_pair(fz_layer *L, fz_layer *next, const float *x, const float *y,
                           const float *y2, float *dy, float *dx, int B)
{
    if (!fz_layer_is_act(next) || (L->kind != FZ_CONV2D && L->kind != FZ_CONVT2D)) return 0;
    act_back_job j = {next, y, y2, dy};
    if (L->kind == FZ_CONV2D) fz_conv2d_backward(L, x, dy, dx, B, act_back_range, &j);
    else fz_convt2d_backward(L, x, dy, dx, B, act_back_range, &j);
    return 1;
}

/* dbias[o] += dy[n][o] over the batch, for the rows o of a block of the weight gradient
 * (once per row: the block that starts at column 0) */
typedef struct bias_grad_job {
    float *dbias;
    const float *dy; /* (B, out) */
    int B, out;
} bias_grad_job;

static void bias_grad_block(void *ctx, int r0, int r1, int c0, int c1)
{
    const bias_grad_job *j = ctx;
    (void)c1;
    if (c0 != 0) return;
    for (int n = 0; n < j->B; n++)
        for (int o = r0; o < r1; o++) j->dbias[o] += j->dy[(size_t)n * j->out + o];
}

static void linear_backward(fz_layer *L, const float *x, const float *dy, float *dx, int B)
{
    int in = L->in.c, out = L->out.c;
    /* dW (out, in) += dy^T (out, B) * x (B, in); the bias gradient, the sums of dy's
     * columns, with it: each part sums the rows of dW it computed */
    bias_grad_job bj = {L->dbias, dy, B, out};
    fz_gemm_epilogue ep = {NULL, bias_grad_block, &bj};
    fz_gemm_ep(1, 0, out, in, B, 1.0f, dy, out, x, in, 1.0f, L->dweight, in,
               L->has_bias ? &ep : NULL);
    /* dx (B, in) = dy (B, out) * W (out, in) */
    if (dx) fz_gemm(0, 0, B, in, out, 1.0f, dy, out, L->weight, in, 0.0f, dx, in);
}

/* Element-wise kernels are built for AVX-512, AVX2 and any x86-64 and picked when the
 * program starts (the Makefile lets the compiler vectorise nn.o with run-time alias
 * checks); -std=c11 keeps multiply-adds unfused, so every build gives the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FZ_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FZ_CLONES
#endif

/* ---- BatchNorm ---------------------------------------------------------------------- */

/* x, y (B, C, S) with S = H*W; statistics per channel over n = B*S values. The passes go
 * through memory in order, sample by sample: for BatchNorm1d (S == 1) a channel-by-channel
 * walk would touch one float per cache line.
 *
 * BatchNorm1d (the MLPs) works in float, as PyTorch's CPU kernel does: per-channel sums
 * over the batch are vector adds across the C channels of each sample (float32 sums of a
 * few hundred terms lose far less than the float32 data already carries). BatchNorm2d
 * sums each channel's rows of S values in double. Per-channel values live in L->stat
 * (5C doubles, or 10C floats in the float path). */

/* ---- BatchNorm1d: float, vectorised across channels ---- */

/* The element-wise layers split passes over at least this many floats over the threads
 * (fz_blas_threads(), as the convolutions): below it, waking a worker costs about what it
 * saves. */
#define FZ_PAR_MIN ((size_t)1 << 17)

static int par_threads(size_t n, size_t units)
{
    if (n < FZ_PAR_MIN) return 1;
    int t = fz_conv_threads();
    return (size_t)t > units ? (int)units : t;
}

/* acc[c] += x[c] */
FZ_CLONES
static void vadd_f(float *restrict acc, const float *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++) acc[i] += x[i];
}

/* acc[c] += (x[c] - mean[c])^2 */
FZ_CLONES
static void vadd_sq_f(float *restrict acc, const float *restrict x, const float *restrict mean,
                      size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float d = x[i] - mean[i];
        acc[i] += d * d;
    }
}

/* y[c] = x[c] * a[c] + b[c] */
FZ_CLONES
static void vaffine_f(float *restrict y, const float *restrict x, const float *restrict a,
                      const float *restrict b, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] * a[i] + b[i];
}

/* sdy[c] += dy[c], sdyx[c] += dy[c] * (x[c] - mean[c]) * invstd[c] */
FZ_CLONES
static void vdsums_f(const float *restrict x, const float *restrict dy, const float *restrict mean,
                     const float *restrict invstd, size_t n, float *restrict sdy,
                     float *restrict sdyx)
{
    for (size_t i = 0; i < n; i++) {
        sdy[i] += dy[i];
        sdyx[i] += dy[i] * ((x[i] - mean[i]) * invstd[i]);
    }
}

/* dx = g * (dy - mdy - xhat * mdyx), xhat = (x - mean) * invstd */
FZ_CLONES
static void vdx_f(float *restrict dx, const float *restrict x, const float *restrict dy,
                  const float *restrict mean, const float *restrict invstd,
                  const float *restrict g, const float *restrict mdy,
                  const float *restrict mdyx, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float xhat = (x[i] - mean[i]) * invstd[i];
        dx[i] = g[i] * (dy[i] - mdy[i] - xhat * mdyx[i]);
    }
}

/* BatchNorm1d over threads: part i of T takes a block of channels (a multiple of 16, so
 * that each part's loops vectorise as one thread's would) and every row of them. Each
 * channel is summed over the rows in the same order whatever T is: the same bits. */
typedef struct bn1d_job {
    fz_layer *L;
    const float *x, *dy;
    float *y, *dx;
    int B, train, T;
} bn1d_job;

/* part i's channels [*c0, *c1); returns their count (0 or less: none) */
static int bn1d_channels(const bn1d_job *j, int i, int *c0, int *c1)
{
    int C = j->L->in.c, blocks = (C + 15) / 16;
    *c0 = 16 * (int)((long long)blocks * i / j->T);
    *c1 = 16 * (int)((long long)blocks * (i + 1) / j->T);
    if (*c1 > C) *c1 = C;
    return *c1 - *c0;
}

static void bn1d_forward_part(void *arg, int i)
{
    const bn1d_job *j = arg;
    fz_layer *L = j->L;
    int B = j->B, C = L->in.c, c0, c1;
    int w = bn1d_channels(j, i, &c0, &c1);
    if (w <= 0) return;
    size_t n = (size_t)B;
    const float *x = j->x + c0;
    float *y = j->y + c0;
    float *mean = (float *)L->stat + c0, *sq = (float *)L->stat + C + c0;
    float *ca = (float *)L->stat + 2 * C + c0, *cb = (float *)L->stat + 3 * C + c0;
    if (j->train) {
        /* two passes: the mean, then the biased variance */
        for (int c = 0; c < w; c++) mean[c] = sq[c] = 0.0f;
        for (int b = 0; b < B; b++) vadd_f(mean, x + (size_t)b * C, (size_t)w);
        for (int c = 0; c < w; c++) mean[c] /= (float)n;
        for (int b = 0; b < B; b++) vadd_sq_f(sq, x + (size_t)b * C, mean, (size_t)w);
    }
    for (int c = c0; c < c1; c++) {
        float m, invstd;
        if (j->train) {
            m = mean[c - c0];
            float var = sq[c - c0] / (float)n;
            invstd = 1.0f / sqrtf(var + L->eps);
            float unbiased = n > 1 ? sq[c - c0] / (float)(n - 1) : var;
            float mo = L->momentum;
            L->running_mean[c] = (1.0f - mo) * L->running_mean[c] + mo * m;
            L->running_var[c] = (1.0f - mo) * L->running_var[c] + mo * unbiased;
        } else {
            m = L->running_mean[c];
            invstd = 1.0f / sqrtf(L->running_var[c] + L->eps);
        }
        L->save_mean[c] = m;
        L->save_invstd[c] = invstd;
        /* y = x * a + b with a = gamma * invstd, b = beta - mean * a */
        ca[c - c0] = L->weight[c] * invstd;
        cb[c - c0] = L->bias[c] - m * ca[c - c0];
    }
    for (int b = 0; b < B; b++)
        vaffine_f(y + (size_t)b * C, x + (size_t)b * C, ca, cb, (size_t)w);
}

static void bn1d_backward_part(void *arg, int i)
{
    const bn1d_job *j = arg;
    fz_layer *L = j->L;
    int B = j->B, C = L->in.c, c0, c1;
    int w = bn1d_channels(j, i, &c0, &c1);
    if (w <= 0) return;
    size_t n = (size_t)B;
    const float *x = j->x + c0, *dy = j->dy + c0;
    const float *mean = L->save_mean + c0, *invstd = L->save_invstd + c0;
    float *st = (float *)L->stat;
    float *sdy = st + c0, *sdyx = st + C + c0, *g = st + 2 * C + c0, *mdy = st + 3 * C + c0,
          *mdyx = st + 4 * C + c0;
    for (int c = 0; c < w; c++) sdy[c] = sdyx[c] = 0.0f;
    for (int b = 0; b < B; b++)
        vdsums_f(x + (size_t)b * C, dy + (size_t)b * C, mean, invstd, (size_t)w, sdy, sdyx);
    for (int c = 0; c < w; c++) {
        L->dweight[c0 + c] += sdyx[c];
        L->dbias[c0 + c] += sdy[c];
        g[c] = L->weight[c0 + c] * invstd[c];
        /* in training the batch statistics depend on x: dx = g * (dy - mean(dy) - xhat *
         * mean(dy*xhat)); in evaluation dx = g * dy */
        mdy[c] = L->last_train ? sdy[c] / (float)n : 0.0f;
        mdyx[c] = L->last_train ? sdyx[c] / (float)n : 0.0f;
    }
    if (!j->dx) return;
    float *dx = j->dx + c0;
    for (int b = 0; b < B; b++)
        vdx_f(dx + (size_t)b * C, x + (size_t)b * C, dy + (size_t)b * C, mean, invstd, g, mdy,
              mdyx, (size_t)w);
}

/* BatchNorm1d splits from 2^20 floats (vae-conv's 256 x 9216: 2.05 against 3.51 ms forward
 * and backward on two threads). Below that it does not pay: its input comes from a product
 * cut by rows, so each thread would read half its channels from the other core's cache
 * (vae-mlp's 500 x 256 and 500 x 128, split from 2^15 floats, trained 6% slower). */
#define FZ_BN1D_PAR_MIN ((size_t)1 << 20)

static int bn1d_threads(const fz_layer *L, int B)
{
    size_t n = (size_t)B * L->in.c;
    if (n < FZ_BN1D_PAR_MIN) return 1;
    int t = fz_conv_threads(), blocks = (L->in.c + 15) / 16;
    return t > blocks ? blocks : t;
}

static void bn1d_forward(fz_layer *L, const float *x, float *y, int B, int train)
{
    bn1d_job j = {L, x, NULL, y, NULL, B, train, bn1d_threads(L, B)};
    fz_threads_run(j.T, bn1d_forward_part, &j);
}

static void bn1d_backward(fz_layer *L, const float *x, const float *dy, float *dx, int B)
{
    bn1d_job j = {L, x, dy, NULL, dx, B, 1, bn1d_threads(L, B)};
    fz_threads_run(j.T, bn1d_backward_part, &j);
}

/* ---- BatchNorm2d: rows of S values summed in double ---- */

/* sum of x[j] over a row of n, and below of (x[j] - m)^2 */
static double row_sum_d(const float *restrict x, size_t n)
{
    double acc[8] = {0}, s = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++) acc[t] += x[i + t];
    for (; i < n; i++) s += x[i];
    for (int t = 0; t < 8; t++) s += acc[t];
    return s;
}

static double row_sq_d(const float *restrict x, double m, size_t n)
{
    double acc[8] = {0}, s = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++) {
            double d = x[i + t] - m;
            acc[t] += d * d;
        }
    for (; i < n; i++) s += (x[i] - m) * (x[i] - m);
    for (int t = 0; t < 8; t++) s += acc[t];
    return s;
}

/* y = x * a + b over a row */
static void row_affine(float *restrict y, const float *restrict x, float a, float b, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++) y[i + t] = x[i + t] * a + b;
    for (; i < n; i++) y[i] = x[i] * a + b;
}

/* BatchNorm2d over threads: part i of T takes the channels [C*i/T, C*(i+1)/T), every
 * sample of them, in the same order as one thread would: the same bits for any T. */
typedef struct bn_job {
    fz_layer *L;
    const float *x, *dy;
    float *y, *dx;
    int B, train, T;
} bn_job;

static void bn_forward_part(void *arg, int i)
{
    const bn_job *j = arg;
    fz_layer *L = j->L;
    const float *x = j->x;
    float *y = j->y;
    int B = j->B, train = j->train, C = L->in.c;
    int c0 = (int)((long long)C * i / j->T), c1 = (int)((long long)C * (i + 1) / j->T);
    size_t S = (size_t)L->in.h * L->in.w, n = (size_t)B * S;
    double *mean = L->stat, *sq = mean + C, *ca = sq + C, *cb = ca + C;
    if (train) {
        /* two passes: the mean, then the biased variance */
        for (int c = c0; c < c1; c++) mean[c] = sq[c] = 0;
        for (int b = 0; b < B; b++) {
            const float *xb = x + (size_t)b * C * S;
            for (int c = c0; c < c1; c++) mean[c] += row_sum_d(xb + c * S, S);
        }
        for (int c = c0; c < c1; c++) mean[c] /= (double)n;
        for (int b = 0; b < B; b++) {
            const float *xb = x + (size_t)b * C * S;
            for (int c = c0; c < c1; c++) sq[c] += row_sq_d(xb + c * S, mean[c], S);
        }
    }
    for (int c = c0; c < c1; c++) {
        double m, invstd;
        if (train) {
            m = mean[c];
            double var = sq[c] / (double)n;
            invstd = 1.0 / sqrt(var + L->eps);
            double unbiased = n > 1 ? sq[c] / (double)(n - 1) : var;
            float mo = L->momentum;
            L->running_mean[c] = (1.0f - mo) * L->running_mean[c] + mo * (float)m;
            L->running_var[c] = (1.0f - mo) * L->running_var[c] + mo * (float)unbiased;
        } else {
            m = L->running_mean[c];
            invstd = 1.0 / sqrt((double)L->running_var[c] + L->eps);
        }
        L->save_mean[c] = (float)m;
        L->save_invstd[c] = (float)invstd;
        /* y = x * a + b with a = gamma * invstd, b = beta - mean * a */
        ca[c] = (float)(L->weight[c] * invstd);
        cb[c] = (float)(L->bias[c] - m * L->weight[c] * invstd);
    }
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * C * S;
        float *yb = y + (size_t)b * C * S;
        for (int c = c0; c < c1; c++) row_affine(yb + c * S, xb + c * S, (float)ca[c], (float)cb[c], S);
    }
}

static void bn_forward(fz_layer *L, const float *x, float *y, int B, int train)
{
    size_t S = (size_t)L->in.h * L->in.w;
    if (S == 1) {
        bn1d_forward(L, x, y, B, train);
        return;
    }
    bn_job j = {L, x, NULL, y, NULL, B, train, par_threads((size_t)B * L->in.c * S, L->in.c)};
    fz_threads_run(j.T, bn_forward_part, &j);
}

/* sdy += dy, sdyx += dy * (x - mean) * invstd over a row (one channel) */
static void row_dsums(const float *restrict x, const float *restrict dy, float mean, float invstd,
                      size_t n, double *sdy, double *sdyx)
{
    double a[8] = {0}, bq[8] = {0}, s = 0, sx = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++) {
            a[t] += dy[i + t];
            bq[t] += (double)dy[i + t] * ((x[i + t] - mean) * invstd);
        }
    for (; i < n; i++) {
        s += dy[i];
        sx += (double)dy[i] * ((x[i] - mean) * invstd);
    }
    for (int t = 0; t < 8; t++) {
        s += a[t];
        sx += bq[t];
    }
    *sdy += s;
    *sdyx += sx;
}

/* training: dx = g * (dy - mdy - xhat * mdyx), xhat = (x - mean) * invstd, over a row */
static void row_dx(float *restrict dx, const float *restrict x, const float *restrict dy,
                   float mean, float invstd, float g, float mdy, float mdyx, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++) {
            float xhat = (x[i + t] - mean) * invstd;
            dx[i + t] = g * (dy[i + t] - mdy - xhat * mdyx);
        }
    for (; i < n; i++) {
        float xhat = (x[i] - mean) * invstd;
        dx[i] = g * (dy[i] - mdy - xhat * mdyx);
    }
}

static void bn_backward_part(void *arg, int i)
{
    const bn_job *j = arg;
    fz_layer *L = j->L;
    const float *x = j->x, *dy = j->dy;
    float *dx = j->dx;
    int B = j->B, C = L->in.c;
    int c0 = (int)((long long)C * i / j->T), c1 = (int)((long long)C * (i + 1) / j->T);
    size_t S = (size_t)L->in.h * L->in.w, n = (size_t)B * S;
    const float *mean = L->save_mean, *invstd = L->save_invstd;
    double *sdy = L->stat, *sdyx = sdy + C, *g = sdyx + C, *mdy = g + C, *mdyx = mdy + C;
    for (int c = c0; c < c1; c++) sdy[c] = sdyx[c] = 0;
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * C * S, *dyb = dy + (size_t)b * C * S;
        for (int c = c0; c < c1; c++)
            row_dsums(xb + c * S, dyb + c * S, mean[c], invstd[c], S, &sdy[c], &sdyx[c]);
    }
    for (int c = c0; c < c1; c++) {
        L->dweight[c] += (float)sdyx[c];
        L->dbias[c] += (float)sdy[c];
        g[c] = L->weight[c] * invstd[c];
        mdy[c] = L->last_train ? (float)(sdy[c] / (double)n) : 0.0f;
        mdyx[c] = L->last_train ? (float)(sdyx[c] / (double)n) : 0.0f;
    }
    if (!dx) return;
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * C * S, *dyb = dy + (size_t)b * C * S;
        float *dxb = dx + (size_t)b * C * S;
        for (int c = c0; c < c1; c++)
            row_dx(dxb + c * S, xb + c * S, dyb + c * S, mean[c], invstd[c], (float)g[c],
                   (float)mdy[c], (float)mdyx[c], S);
    }
}

static void bn_backward(fz_layer *L, const float *x, const float *dy, float *dx, int B)
{
    size_t S = (size_t)L->in.h * L->in.w;
    if (S == 1) {
        bn1d_backward(L, x, dy, dx, B);
        return;
    }
    bn_job j = {L, x, dy, NULL, dx, B, 1, par_threads((size_t)B * L->in.c * S, L->in.c)};
    fz_threads_run(j.T, bn_backward_part, &j);
}

/* ---- Dropout ------------------------------------------------------------------------ */

/* y = keep ? x * scale : 0 (y may be x) */
FZ_CLONES
static void mask_scale(float *y, const float *x, const unsigned char *keep, float scale, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = keep[i] ? x[i] * scale : 0.0f;
}

/* Dropout over threads, from FZ_PAR_MIN / 4 values, in pieces of FZ_DROP_PIECE (even, so
 * that each piece's mask is its part of the one fz_rng_keep_mask would draw): a piece
 * draws its part of the mask and applies it while both are in the cache. */
#define FZ_DROP_PIECE ((size_t)16384)

typedef struct drop_job {
    const float *in;
    float *out;
    unsigned char *draw;      /* the mask to draw into, or NULL to use keep */
    const unsigned char *keep;
    uint64_t key;
    float p, scale;
} drop_job;

static void drop_piece(void *arg, size_t k, size_t lo, size_t hi)
{
    const drop_job *j = arg;
    (void)k;
    if (j->draw) fz_rng_keep_range(j->key, j->draw, lo, hi, j->p);
    mask_scale(j->out + lo, j->in + lo, j->keep + lo, j->scale, hi - lo);
}

static void drop_run(drop_job *j, size_t total)
{
    int T = total < FZ_PAR_MIN / 4 ? 1 : fz_conv_threads();
    fz_threads_pieces(T, total, FZ_DROP_PIECE, drop_piece, j);
}

static void dropout_forward(fz_layer *L, const float *x, float *y, size_t total, int train,
                            fz_rng *rng)
{
    if (!train || L->p == 0.0f) {
        L->last_mask = NULL;
        if (y != x) memcpy(y, x, total * sizeof(float));
        return;
    }
    drop_job j = {.in = x, .out = y, .p = L->p};
    j.scale = L->p < 1.0f ? 1.0f / (1.0f - L->p) : 0.0f;
    if (L->ext_mask) {
        j.keep = L->ext_mask;
    } else {
        j.key = fz_rng_u64(rng); /* the one draw of fz_rng_keep_mask */
        j.draw = L->mask;
        j.keep = L->mask;
    }
    L->last_mask = j.keep;
    drop_run(&j, total);
}

static void dropout_backward(fz_layer *L, const float *dy, float *dx, size_t total)
{
    if (!L->last_mask) {
        if (dx != dy) memcpy(dx, dy, total * sizeof(float));
        return;
    }
    drop_job j = {.in = dy, .out = dx, .keep = L->last_mask, .p = L->p};
    j.scale = L->p < 1.0f ? 1.0f / (1.0f - L->p) : 0.0f;
    drop_run(&j, total);
}

/* ---- activations -------------------------------------------------------------------- */

/* exp(x) in float without a call, so that loops of it vectorise: x = n ln2 + r with
 * |r| <= ln2/2 (ln2 in two parts), e^r by the Cephes expf polynomial in fused multiply-adds,
 * times 2^n built in the exponent bits (within about 1 ulp of expf; test_nn). Below -87.3
 * it gives 0 (expf's result there is denormal, flushed to zero anyway), above 88.7 +inf;
 * NaN stays NaN. fmaf is one instruction in the AVX2 and AVX-512 builds (correctly
 * rounded in every build: the same bits). SiLU and the sigmoid are bound by this
 * arithmetic, not by memory: with the multiply-adds (instead of a multiply and an add each)
 * and 2^n's halves by a shift, SiLU's forward went from 0.79 to 0.57 ns an element on one
 * thread, and vae-conv trained 4.8% faster. */
/* always inlined: called as a function it would be the baseline build, fmaf a library call */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline float exp_v(float x)
{
    float xc = x < -87.33654f ? -87.33654f : x > 88.72283f ? 88.72283f : x;
    float fn = floorf(fmaf(xc, 1.44269504088896341f, 0.5f));
    float r = fmaf(fn, -0.693359375f, xc);
    r = fmaf(fn, 2.12194440e-4f, r);
    float y = 1.9875691500e-4f;
    y = fmaf(y, r, 1.3981999507e-3f);
    y = fmaf(y, r, 8.3334519073e-3f);
    y = fmaf(y, r, 4.1665795894e-2f);
    y = fmaf(y, r, 1.6666665459e-1f);
    y = fmaf(y, r, 5.0000001201e-1f);
    y = fmaf(y, r * r, r) + 1.0f;
    int n = (int)fn; /* in [-126, 128] */
    /* 2^n as two factors so that n = 128 does not overflow the exponent field; n >> 1 is
     * the floor of n / 2 (arithmetic shift: gcc's documented behaviour) */
    int n1 = n >> 1, n2 = n - n1;
    uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
    float p1, p2;
    memcpy(&p1, &b1, 4);
    memcpy(&p2, &b2, 4);
    float e = y * p1 * p2;
    e = x < -87.33654f ? 0.0f : e;
    e = x > 88.72283f ? INFINITY : e;
    return x != x ? x : e;
}

static inline float sigmoidf(float v) { return 1.0f / (1.0f + exp_v(-v)); }

/* The cheap activations and their gradients as vectorisable loops; y may be x and dx may
 * be dy (in place), element i being read before it is written. */
FZ_CLONES
static void relu_fwd(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

FZ_CLONES
static void lrelu_fwd(float *y, const float *x, float s, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : s * x[i];
}

FZ_CLONES
static void relu_bwd(float *dx, const float *x, const float *dy, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

FZ_CLONES
static void lrelu_bwd(float *dx, const float *x, const float *dy, float s, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : s * dy[i];
}

FZ_CLONES
static void sigmoid_fwd(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = sigmoidf(x[i]);
}

FZ_CLONES
static void silu_fwd(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] * sigmoidf(x[i]);
}

FZ_CLONES
static void silu_bwd(float *dx, const float *x, const float *y, const float *dy, size_t n)
{
    /* sigmoid(x) as y / x, the forward's output over its input: a division instead of the
     * exp and a division (SiLU's backward took 0.60 ns an element, bound by them); within
     * about 1 ulp of sigmoidf(x) (the rounding of y = x * s). At x = 0 it is 1/2; where s
     * flushed to 0, y / x is 0 too. */
    for (size_t i = 0; i < n; i++) {
        float s = x[i] == 0.0f ? 0.5f : y[i] / x[i];
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

FZ_CLONES
static void sigmoid_bwd(float *dx, const float *y, const float *dy, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

FZ_CLONES
static void tanh_bwd(float *dx, const float *y, const float *dy, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

static void act_forward(const fz_layer *L, const float *x, float *y, size_t total)
{
    switch (L->kind) {
    case FZ_RELU: relu_fwd(y, x, total); break;
    case FZ_LEAKYRELU: lrelu_fwd(y, x, L->slope, total); break;
    case FZ_SILU: silu_fwd(y, x, total); break;
    case FZ_SIGMOID: sigmoid_fwd(y, x, total); break;
    case FZ_TANH:
        for (size_t i = 0; i < total; i++) y[i] = tanhf(x[i]);
        break;
    case FZ_SOFTPLUS:
        /* PyTorch's threshold 20: above it log1p(exp(x)) == x in float anyway */
        for (size_t i = 0; i < total; i++) y[i] = x[i] > 20.0f ? x[i] : log1pf(expf(x[i]));
        break;
    default: break;
    }
}

/* dx may be dy (in place); x and y are read before dx[i] is written. */
static void act_backward(const fz_layer *L, const float *x, const float *y, const float *dy,
                         float *dx, size_t total)
{
    switch (L->kind) {
    case FZ_RELU: relu_bwd(dx, x, dy, total); break;
    case FZ_LEAKYRELU: lrelu_bwd(dx, x, dy, L->slope, total); break;
    case FZ_SILU: silu_bwd(dx, x, y, dy, total); break;
    case FZ_SIGMOID: sigmoid_bwd(dx, y, dy, total); break;
    case FZ_TANH: tanh_bwd(dx, y, dy, total); break;
    case FZ_SOFTPLUS:
        for (size_t i = 0; i < total; i++) dx[i] = x[i] > 20.0f ? dy[i] : dy[i] * sigmoidf(x[i]);
        break;
    default: break;
    }
}

/* Activations over threads: the elements are cut into pieces of FZ_ACT_PIECE floats
 * (64 KB), contiguous shares of them per thread; element-wise, so the same bits for any T.
 * The cheap passes are split from FZ_ACT_MIN floats: ae-mlp's output sigmoid's backward
 * over 64 x 784 floats took 20 us of its step on one thread. The activations built on exp
 * (sigmoid, SiLU, tanh, softplus) cost about ten times what ReLU does per element, so their
 * forward pass is split from FZ_ACT_EXP_MIN floats on, in pieces of FZ_ACT_EXP_PIECE:
 * ae-mlp's output sigmoid (64 x 784 per batch) was a tenth of its two-thread step on one
 * thread. */
#define FZ_ACT_MIN ((size_t)1 << 15)
#define FZ_ACT_PIECE ((size_t)16384)
#define FZ_ACT_EXP_MIN ((size_t)1 << 14)
#define FZ_ACT_EXP_PIECE ((size_t)4096)

typedef struct act_job {
    const fz_layer *L;
    const float *x, *y, *dy;
    float *out; /* y of the forward, dx of the backward */
    int backward;
} act_job;

static void act_piece(void *arg, size_t k, size_t lo, size_t hi)
{
    const act_job *j = arg;
    (void)k;
    const float *x = j->x ? j->x + lo : NULL, *y = j->y ? j->y + lo : NULL;
    if (j->backward)
        act_backward(j->L, x, y, j->dy + lo, j->out + lo, hi - lo);
    else
        act_forward(j->L, x, j->out + lo, hi - lo);
}

static int act_costly(const fz_layer *L, int backward)
{
    return !backward && (L->kind == FZ_SIGMOID || L->kind == FZ_SILU || L->kind == FZ_TANH ||
                         L->kind == FZ_SOFTPLUS);
}

/* the threads act_run cuts total elements over */
static int act_threads(const fz_layer *L, size_t total, int backward)
{
    int costly = act_costly(L, backward);
    size_t piece = costly ? FZ_ACT_EXP_PIECE : FZ_ACT_PIECE;
    size_t min = costly ? FZ_ACT_EXP_MIN : FZ_ACT_MIN;
    return total < min ? 1 : par_threads(FZ_PAR_MIN, total / piece + 1);
}

static void act_run(const fz_layer *L, const float *x, const float *y, const float *dy,
                    float *out, size_t total, int backward)
{
    size_t piece = act_costly(L, backward) ? FZ_ACT_EXP_PIECE : FZ_ACT_PIECE;
    int T = act_threads(L, total, backward);
    act_job j = {L, x, y, dy, out, backward};
    if (T == 1) piece = total; /* one call over everything */
    fz_threads_pieces(T, total, piece, act_piece, &j);
}

/* ---- evaluation of element-wise runs ------------------------------------------------ */

int fz_layer_eval_fusable(const fz_layer *L)
{
    return L->kind == FZ_RELU || L->kind == FZ_LEAKYRELU || L->kind == FZ_DROPOUT ||
           L->kind == FZ_BATCHNORM1D;
}

void fz_layers_eval_rows(fz_layer *L, int k, const float *x, float *y, int B)
{
    size_t D = fz_layer_in_size(&L[0]);
    /* BatchNorm1d with its running statistics: y = x * a + b, a and b as bn1d_forward
     * computes them, so that the result has the same bits as layer by layer */
    for (int j = 0; j < k; j++) {
        L[j].last_train = 0;
        if (L[j].kind == FZ_DROPOUT) L[j].last_mask = NULL;
        if (L[j].kind != FZ_BATCHNORM1D) continue;
        float *ca = (float *)L[j].stat + 2 * D, *cb = ca + D;
        for (size_t c = 0; c < D; c++) {
            float m = L[j].running_mean[c], invstd = 1.0f / sqrtf(L[j].running_var[c] + L[j].eps);
            L[j].save_mean[c] = m;
            L[j].save_invstd[c] = invstd;
            ca[c] = L[j].weight[c] * invstd;
            cb[c] = L[j].bias[c] - m * ca[c];
        }
    }
    for (int b = 0; b < B; b++) {
        const float *src = x + (size_t)b * D;
        float *dst = y + (size_t)b * D;
        for (int j = 0; j < k; j++) {
            switch (L[j].kind) {
            case FZ_RELU: relu_fwd(dst, src, D); break;
            case FZ_LEAKYRELU: lrelu_fwd(dst, src, L[j].slope, D); break;
            case FZ_BATCHNORM1D: {
                const float *ca = (const float *)L[j].stat + 2 * D;
                vaffine_f(dst, src, ca, ca + D, D);
                break;
            }
            default: /* Dropout in evaluation: the identity */
                if (dst != src) memcpy(dst, src, D * sizeof(float));
                break;
            }
            src = dst; /* the row stays in L1 between the layers */
        }
    }
}

/* ---- dispatch ----------------------------------------------------------------------- */

void fz_layer_forward(fz_layer *L, const float *x, float *y, int B, int train, fz_rng *rng)
{
    size_t total = (size_t)B * fz_layer_out_size(L);
    L->last_train = train != 0;
    switch (L->kind) {
    case FZ_LINEAR: linear_forward(L, x, y, B); break;
    case FZ_CONV2D: fz_conv2d_forward(L, x, y, B, NULL, NULL); break;
    case FZ_CONVT2D: fz_convt2d_forward(L, x, y, B, NULL, NULL); break;
    case FZ_BATCHNORM1D:
    case FZ_BATCHNORM2D: bn_forward(L, x, y, B, train); break;
    case FZ_DROPOUT: dropout_forward(L, x, y, total, train, rng); break;
    case FZ_FLATTEN:
    case FZ_UNFLATTEN:
        if (y != x) memcpy(y, x, total * sizeof(float));
        break;
    default: act_run(L, x, NULL, NULL, y, total, 0); break;
    }
}

void fz_layer_backward(fz_layer *L, const float *x, const float *y, const float *dy,
                       float *dx, int B)
{
    size_t total = (size_t)B * fz_layer_in_size(L);
    switch (L->kind) {
    case FZ_LINEAR: linear_backward(L, x, dy, dx, B); break;
    case FZ_CONV2D: fz_conv2d_backward(L, x, dy, dx, B, NULL, NULL); break;
    case FZ_CONVT2D: fz_convt2d_backward(L, x, dy, dx, B, NULL, NULL); break;
    case FZ_BATCHNORM1D:
    case FZ_BATCHNORM2D: bn_backward(L, x, dy, dx, B); break;
    case FZ_DROPOUT:
        if (dx) dropout_backward(L, dy, dx, total);
        break;
    case FZ_FLATTEN:
    case FZ_UNFLATTEN:
        if (dx && dx != dy) memcpy(dx, dy, total * sizeof(float));
        break;
    default:
        if (dx) act_run(L, x, y, dy, dx, total, 1);
        break;
    }
}
