/* loss.c - losses and the reparameterised sampling step (see loss.h). */
#include "loss.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "blas.h"
#include "optim.h"
#include "threads.h"

/* ---- Reductions ------------------------------------------------------------------------ */

int fz_reduction_check(fz_reduction red, size_t D, size_t last_axis, fz_err *err)
{
    switch (red) {
    case FZ_RED_SUM:
    case FZ_RED_MEAN:
    case FZ_RED_MEAN_BATCH:
        return 0;
    case FZ_RED_ROWS:
        if (last_axis == 0)
            return fz_fail(err, FZ_EUSAGE, "reduction 'rows' needs a last-axis length >= 1");
        if (D % last_axis != 0)
            return fz_fail(err, FZ_EUSAGE,
                           "reduction 'rows': last-axis length %zu does not divide the %zu "
                           "features of a row",
                           last_axis, D);
        return 0;
    }
    return fz_fail(err, FZ_EUSAGE, "unknown reduction %d", (int)red);
}

double fz_reduction_divisor(fz_reduction red, size_t B, size_t D, size_t last_axis)
{
    if (fz_reduction_check(red, D, last_axis, NULL) != 0) return 0;
    switch (red) {
    case FZ_RED_SUM: return 1;
    case FZ_RED_MEAN: return (double)B * (double)D;
    case FZ_RED_MEAN_BATCH: return (double)B;
    case FZ_RED_ROWS: return (double)B * (double)(D / last_axis);
    }
    return 0;
}

static const char *const red_names[] = {"sum", "mean", "batch", "rows"};

int fz_reduction_parse(const char *s, fz_reduction *out, fz_err *err)
{
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, red_names[i]) == 0) {
            *out = (fz_reduction)i;
            return 0;
        }
    return fz_fail(err, FZ_EUSAGE,
                   "unknown reduction '%s' (expected sum, mean, batch or rows)", s ? s : "");
}

const char *fz_reduction_name(fz_reduction red)
{
    return (unsigned)red < 4 ? red_names[red] : "?";
}

/* ---- Binary cross-entropy --------------------------------------------------------------- */

/* Built for AVX-512, AVX2 and any x86-64, picked when the program starts; -std=c11 keeps
 * multiply-adds unfused unless written as fmaf, so all give the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FZ_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FZ_CLONES
#endif

/* log(x) in float without a call, so that a loop of them vectorises: x = 2^e * m with m in
 * [sqrt(1/2), sqrt(2)), log(1 + f) by the Cephes logf polynomial in fused multiply-adds
 * (fmaf: one instruction in the AVX2 and AVX-512 builds, correctly rounded in all; within
 * about 1 ulp of logf, tested in test_loss). 0 and denormals (zero under DAZ) give -inf, +inf gives +inf, x < 0 and NaN give
 * NaN. */
/* always inlined: called as a function it would be the baseline build, fmaf a library call */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline float log_v(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    int ex = (int)((u >> 23) & 0xffu);
    uint32_t mu = (u & 0x007fffffu) | 0x3f000000u; /* m in [0.5, 1) */
    float m;
    memcpy(&m, &mu, 4);
    int lo = m < 0.70710678118654752f;
    float e = (float)(ex - 126 - lo);
    float f = lo ? m + m - 1.0f : m - 1.0f;
    float z = f * f;
    float y = 7.0376836292e-2f;
    y = fmaf(y, f, -1.1514610310e-1f);
    y = fmaf(y, f, 1.1676998740e-1f);
    y = fmaf(y, f, -1.2420140846e-1f);
    y = fmaf(y, f, 1.4249322787e-1f);
    y = fmaf(y, f, -1.6668057665e-1f);
    y = fmaf(y, f, 2.0000714765e-1f);
    y = fmaf(y, f, -2.4999993993e-1f);
    y = fmaf(y, f, 3.3333331174e-1f);
    y = y * f * z;
    y = fmaf(-2.12194440e-4f, e, y);
    y = fmaf(-0.5f, z, y);
    float r = f + y;
    r = fmaf(0.693359375f, e, r);
    r = ex == 0 ? -INFINITY : r;           /* 0 and denormals */
    r = ex == 255 ? x + x : r;             /* +inf, NaN (and -inf, caught below) */
    r = x < 0.0f || x != x ? NAN : r;      /* outside the domain */
    return r;
}

/* sum over i of t log p + (1 - t) log(1 - p), each log clamped at -100, in double: 8
 * interleaved partial sums (lane k takes i = k mod 8), the same order in every build */
FZ_CLONES
static double bce_sum(const float *p, const float *t, size_t n)
{
    double acc[8] = {0}, s = 0;
    size_t i = 0;
    /* 16 logs at a time (one AVX-512 vector of floats), then added as two rounds of 8. A
     * block whose 16 targets are all 0 (the background of images) skips log p: its term
     * 0 * log p is 0 for any p in [0, 1] (the clamp keeps log p finite), so lp = 0 gives
     * the same sums; a p below 0 or NaN takes the full path and its NaN. */
    for (; i + 16 <= n; i += 16) {
        float lp[16], lq[16];
        int background = 1;
        for (int k = 0; k < 16; k++) background &= (t[i + k] == 0.0f) & (p[i + k] >= 0.0f);
        for (int k = 0; k < 16; k++) {
            /* the logs in float, as PyTorch takes them; PyTorch clamps each at -100 so
             * p = 0 or 1 costs at most 100 per element. Not fmaxf: it would turn the NaN
             * of a p outside [0, 1] into -100. */
            lq[k] = log_v(1.0f - p[i + k]);
            lq[k] = lq[k] < -100.0f ? -100.0f : lq[k];
        }
        if (background) {
            for (int k = 0; k < 16; k++) lp[k] = 0.0f;
        } else {
            for (int k = 0; k < 16; k++) {
                lp[k] = log_v(p[i + k]);
                lp[k] = lp[k] < -100.0f ? -100.0f : lp[k];
            }
        }
        for (int h = 0; h < 16; h += 8)
            for (int k = 0; k < 8; k++) {
                double ti = t[i + h + k];
                acc[k] += ti * lp[h + k] + (1.0 - ti) * lq[h + k];
            }
    }
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            float lp = log_v(p[i + k]), lq = log_v(1.0f - p[i + k]);
            lp = lp < -100.0f ? -100.0f : lp;
            lq = lq < -100.0f ? -100.0f : lq;
            double ti = t[i + k];
            acc[k] += ti * lp + (1.0 - ti) * lq;
        }
    for (; i < n; i++) {
        float lp = log_v(p[i]), lq = log_v(1.0f - p[i]);
        lp = lp < -100.0f ? -100.0f : lp;
        lq = lq < -100.0f ? -100.0f : lq;
        double ti = t[i];
        s += ti * lp + (1.0 - ti) * lq;
    }
    for (int k = 0; k < 8; k++) s += acc[k];
    return s;
}

/* grad += scale * (p - t) / max((1 - p) p, 1e-12), in float as PyTorch computes it:
 * dividing by the clamped product instead of the exact derivative keeps it finite where
 * the log was clamped. The comparison keeps fmaxf's answer for a NaN product (1e-12). */
FZ_CLONES
static void bce_grad(const float *p, const float *t, float scale, float *grad, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float den = (1.0f - p[i]) * p[i];
        den = den > 1e-12f ? den : 1e-12f;
        grad[i] += scale * (p[i] - t[i]) / den;
    }
}

/* ---- Squared error ---------------------------------------------------------------------- */

/* grad += scale * (x - t) in double; t may be NULL (zero), tested once and not per
 * element. (The sum of (x - t)^2 is fz_sum_sq_diff of optim.h.) */
FZ_CLONES
static void sq_grad(const float *x, const float *t, double scale, float *grad, size_t n)
{
    if (t)
        for (size_t i = 0; i < n; i++) grad[i] += (float)(scale * ((double)x[i] - (double)t[i]));
    else
        for (size_t i = 0; i < n; i++) grad[i] += (float)(scale * (double)x[i]);
}

/* ---- The element-wise losses in pieces over the threads ---------------------------------- */

/* A loss over n elements is cut into pieces of FZ_LOSS_PIECE floats (more when n would
 * need over FZ_LOSS_MAX_PIECES: the size depends on n only); each piece's sum and gradient
 * are computed as above, and the sums are added in piece order, so the loss has the same
 * bits on any number of threads, and the gradient, element-wise, is the same as in one
 * pass. From FZ_LOSS_PAR_MIN elements the threads (fz_blas_threads()) take contiguous
 * shares of the pieces: vae-mlp's BCE over 500 x 784 values a batch was 6% of its
 * two-thread training time on one core, and pieces of 8 K floats cut ae-mlp's squared error
 * over 64 x 784 too (39 -> 21 us a step with the 32-lane sums of fz_sum_sq_diff). */
#define FZ_LOSS_PIECE ((size_t)1 << 13)
#define FZ_LOSS_MAX_PIECES 256
#define FZ_LOSS_PAR_MIN ((size_t)1 << 14)

typedef struct loss_job {
    int bce;              /* 1: binary cross-entropy, 0: squared error */
    const float *p, *t;   /* (n) predictions or inputs, targets (t may be NULL for sq) */
    float *grad;          /* (n) added to, or NULL */
    float fscale;         /* bce gradient scale */
    double dscale;        /* squared-error gradient scale */
    size_t n;
    double *sums;         /* (pieces) */
} loss_job;

static void loss_piece(void *arg, size_t k, size_t lo, size_t hi)
{
    loss_job *j = arg;
    const float *p = j->p + lo, *t = j->t ? j->t + lo : NULL;
    float *g = j->grad ? j->grad + lo : NULL;
    if (j->bce) {
        j->sums[k] = bce_sum(p, t, hi - lo);
        if (g) bce_grad(p, t, j->fscale, g, hi - lo);
    } else {
        j->sums[k] = fz_sum_sq_diff(p, t, hi - lo);
        if (g) sq_grad(p, t, j->dscale, g, hi - lo);
    }
}

/* The sum over all pieces (and the gradients), in piece order. */
static double loss_run(loss_job *j)
{
    double sums[FZ_LOSS_MAX_PIECES];
    size_t piece = FZ_LOSS_PIECE;
    if (j->n > piece * FZ_LOSS_MAX_PIECES)
        piece = (j->n + FZ_LOSS_MAX_PIECES - 1) / FZ_LOSS_MAX_PIECES;
    j->sums = sums;
    fz_threads_pieces(j->n >= FZ_LOSS_PAR_MIN ? fz_blas_threads() : 1, j->n, piece, loss_piece, j);
    double total = 0;
    for (size_t k = 0; k * piece < j->n; k++) total += sums[k];
    return total;
}

double fz_bce(const float *p, const float *t, size_t B, size_t D, fz_reduction red,
              size_t last_axis, float weight, float *grad)
{
    if (fz_reduction_check(red, D, last_axis, NULL) != 0) return NAN;
    if (B * D == 0) return 0;
    double div = fz_reduction_divisor(red, B, D, last_axis);
    loss_job j = {.bce = 1, .p = p, .t = t, .grad = grad,
                  .fscale = (float)((double)weight / div), .n = B * D};
    return -loss_run(&j) / div;
}

double fz_sqerr(const float *x, const float *t, size_t B, size_t D, fz_reduction red,
                size_t last_axis, float weight, float *grad)
{
    if (fz_reduction_check(red, D, last_axis, NULL) != 0) return NAN;
    if (B * D == 0) return 0;
    double div = fz_reduction_divisor(red, B, D, last_axis);
    loss_job j = {.bce = 0, .p = x, .t = t, .grad = grad, .dscale = 2.0 * weight / div,
                  .n = B * D};
    return loss_run(&j) / div;
}

/* ---- KL divergences to N(0, I) ---------------------------------------------------------- */

double fz_kl_logvar(const float *mu, const float *lv, size_t B, size_t Z, fz_reduction red,
                    size_t last_axis, float beta, float *dmu, float *dlv)
{
    if (fz_reduction_check(red, Z, last_axis, NULL) != 0) return NAN;
    if (B * Z == 0) return 0;
    double div = fz_reduction_divisor(red, B, Z, last_axis);
    size_t n = B * Z;
    double sum = 0;
    double scale = beta / div;
    for (size_t i = 0; i < n; i++) {
        double m = mu[i], l = lv[i], e = exp(l);
        sum += 0.5 * (m * m + e - 1.0 - l);
        if (dmu) dmu[i] += (float)(scale * m);
        if (dlv) dlv[i] += (float)(scale * 0.5 * (e - 1.0));
    }
    return sum / div;
}

/* PyTorch's softplus (beta 1, threshold 20): linear above the threshold, where
 * log1p(exp(x)) equals x in float anyway. */
static double softplus(double x) { return x > 20.0 ? x : log1p(exp(x)); }
static double softplus_grad(double x) { return x > 20.0 ? 1.0 : 1.0 / (1.0 + exp(-x)); }

#define FZ_SIGMA_FLOOR 1e-8 /* keeps log(sigma) finite when softplus underflows */

double fz_sigma(fz_sigma_kind kind, double s)
{
    return kind == FZ_SIGMA_SOFTPLUS ? softplus(s) + FZ_SIGMA_FLOOR : exp(0.5 * s);
}

double fz_sigma_grad(fz_sigma_kind kind, double s)
{
    return kind == FZ_SIGMA_SOFTPLUS ? softplus_grad(s) : 0.5 * exp(0.5 * s);
}

double fz_kl_softplus(const float *mu, const float *raw, size_t B, size_t Z,
                      fz_reduction red, size_t last_axis, float beta, float *dmu,
                      float *draw)
{
    if (fz_reduction_check(red, Z, last_axis, NULL) != 0) return NAN;
    if (B * Z == 0) return 0;
    double div = fz_reduction_divisor(red, B, Z, last_axis);
    size_t n = B * Z;
    double sum = 0;
    double scale = beta / div;
    for (size_t i = 0; i < n; i++) {
        double m = mu[i], sg = fz_sigma(FZ_SIGMA_SOFTPLUS, raw[i]);
        sum += 0.5 * (sg * sg + m * m - 1.0 - 2.0 * log(sg));
        if (dmu) dmu[i] += (float)(scale * m);
        if (draw) draw[i] += (float)(scale * (sg - 1.0 / sg) * softplus_grad(raw[i]));
    }
    return sum / div;
}

/* ---- Masked squared error of the fuzzy head -------------------------------------------- */

double fz_masked_sqerr(const float *m, const float *target, const float *mask, size_t B,
                       size_t K, fz_mask_norm norm, float weight, float *grad)
{
    size_t rows = B;
    if (norm == FZ_MASK_PER_ACTIVE) {
        rows = 0;
        for (size_t b = 0; b < B; b++) {
            const float *mk = mask + b * K;
            for (size_t k = 0; k < K; k++)
                if (mk[k] != 0) {
                    rows++;
                    break;
                }
        }
    }
    if (rows == 0) return 0;
    double sum = 0;
    double scale = -2.0 * weight / (double)rows;
    for (size_t i = 0; i < B * K; i++) {
        if (mask[i] == 0) continue; /* also keeps a NaN target of an unlabelled row out */
        double d = (double)target[i] - (double)m[i];
        sum += mask[i] * d * d;
        if (grad) grad[i] += (float)(scale * mask[i] * d);
    }
    return sum / (double)rows;
}

/* ---- Reparameterised sampling ----------------------------------------------------------- */

void fz_reparam(fz_sigma_kind kind, fz_noise noise, const float *mu, const float *s,
                size_t n, float *eps, fz_rng *rng, float *z, float *sigma_out)
{
    for (size_t i = 0; i < n; i++) {
        double sg = fz_sigma(kind, s[i]);
        if (sigma_out) sigma_out[i] = (float)sg;
        double e = 0;
        if (noise == FZ_NOISE_DRAW) {
            e = (float)fz_rng_normal(rng);
            eps[i] = (float)e;
        } else if (noise == FZ_NOISE_GIVEN) {
            e = eps[i];
        }
        /* sigma rounded to float first, as a float32 reference computes it */
        z[i] = (float)((double)mu[i] + (double)(float)sg * e);
    }
}

void fz_reparam_backward(fz_sigma_kind kind, const float *s, const float *eps,
                         const float *dz, size_t n, float *dmu, float *ds)
{
    for (size_t i = 0; i < n; i++) {
        if (dmu) dmu[i] += dz[i];
        if (ds && eps) ds[i] += (float)((double)dz[i] * eps[i] * fz_sigma_grad(kind, s[i]));
    }
}
