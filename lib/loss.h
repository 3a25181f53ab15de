/* loss.h - losses of the autoencoders and VAEs, and the reparameterised sampling step.
 *
 * Every function works on plain float arrays, row-major, batch first; shapes are given as
 * (B, D) = batch x features.  Reductions accumulate in double.
 *
 * Conventions shared by every loss here:
 *   - The return value is the loss itself, NOT multiplied by `weight`, so it can be logged
 *     as is; the total a trainer minimises is sum(weight_i * loss_i).
 *   - If a gradient pointer is non-NULL, weight * dL/dinput is ADDED to it (+=), so the
 *     parts of a composite loss (reconstruction + beta * KL + fuzzy head) and the backward
 *     pass of the sampling step can all land in the same buffers.  Zero them first
 *     (fz_zero in optim.h) when a part is the only contribution.
 *   - Invalid shape arguments (see fz_reduction_check) make a loss return NAN and leave the
 *     gradient untouched; callers validate their options once with fz_reduction_check.
 *     An empty array (B or D zero) gives 0.
 *   - Inputs containing NaN give NaN; the trainer detects it with fz_first_nonfinite.
 *
 * Reductions (how the elementwise terms of a (B, D) array become one number):
 *   FZ_RED_SUM         sum over everything                      divisor 1
 *   FZ_RED_MEAN        mean over everything (PyTorch 'mean')    divisor B*D
 *   FZ_RED_MEAN_BATCH  sum over features, mean over the batch   divisor B
 *   FZ_RED_ROWS        sum over the last axis of length L only, divisor B*D/L
 *                      mean over everything else; for 28x28 images (D = 784) with L = 28
 *                      this is the per-image sum divided by 28, the reduction of the
 *                      published fuzzy-CVAE code (mean over a (B, 28) array of row sums).
 */
#ifndef FZ_LOSS_H
#define FZ_LOSS_H

#include <stddef.h>

#include "rng.h"
#include "util.h"

typedef enum fz_reduction {
    FZ_RED_SUM = 0,
    FZ_RED_MEAN,
    FZ_RED_MEAN_BATCH,
    FZ_RED_ROWS
} fz_reduction;

/* Is (red, D, last_axis) usable?  ROWS needs 1 <= last_axis and D % last_axis == 0; the
 * other reductions ignore last_axis.  Returns 0, or -1 with a reason. */
int fz_reduction_check(fz_reduction red, size_t D, size_t last_axis, fz_err *err);
/* The divisor of a reduction for a (B, D) array (see the table above); 0 if invalid. */
double fz_reduction_divisor(fz_reduction red, size_t B, size_t D, size_t last_axis);
/* Names "sum", "mean", "batch", "rows" <-> enum.  Parse returns 0 or -1 with a reason. */
int fz_reduction_parse(const char *s, fz_reduction *out, fz_err *err);
const char *fz_reduction_name(fz_reduction red);

/* Binary cross-entropy of probabilities p against targets t, both (B, D), as PyTorch's
 * BCELoss: term = -(t * max(log p, -100) + (1 - t) * max(log(1 - p), -100)), so p = 0 or
 * p = 1 gives a finite loss.  The gradient is PyTorch's, (p - t) / max((1 - p) * p, 1e-12),
 * which stays finite at the clamp.  p outside [0, 1] gives NaN.
 * grad: (B, D) or NULL. */
double fz_bce(const float *p, const float *t, size_t B, size_t D, fz_reduction red,
              size_t last_axis, float weight, float *grad);

/* Squared error (x - t)^2 of x against t, both (B, D); t may be NULL (target 0, i.e. the
 * sum of squares of x).  FZ_RED_MEAN is PyTorch's MSELoss, FZ_RED_SUM the plain sum of
 * squares.  grad: (B, D) or NULL, receives weight * dL/dx. */
double fz_sqerr(const float *x, const float *t, size_t B, size_t D, fz_reduction red,
                size_t last_axis, float weight, float *grad);

/* KL( N(mu, exp(lv)) || N(0, I) ) = -0.5 * sum(1 + lv - mu^2 - exp(lv)), mu and lv (B, Z).
 * Usual reductions: FZ_RED_MEAN_BATCH (sum over latent dims, mean over the batch) or
 * FZ_RED_SUM.  dmu, dlv: (B, Z) or NULL, receive beta * dKL/dmu = beta * mu and
 * beta * dKL/dlv = beta * 0.5 * (exp(lv) - 1).
 *
 * The published fuzzy-CVAE code samples with sigma = softplus(raw) + 1e-8 but computes
 * the KL as if raw were the log-variance: to reproduce it, call this function with
 * lv = raw (and FZ_SIGMA_SOFTPLUS in fz_reparam). */
double fz_kl_logvar(const float *mu, const float *lv, size_t B, size_t Z, fz_reduction red,
                    size_t last_axis, float beta, float *dmu, float *dlv);

/* The consistent KL for the softplus parameterisation: sigma = softplus(raw) + 1e-8,
 * KL = 0.5 * sum(sigma^2 + mu^2 - 1 - 2 log sigma).  mu, raw: (B, Z); dmu, draw: (B, Z) or
 * NULL, receive beta * mu and beta * (sigma - 1/sigma) * sigmoid(raw). */
double fz_kl_softplus(const float *mu, const float *raw, size_t B, size_t Z,
                      fz_reduction red, size_t last_axis, float beta, float *dmu,
                      float *draw);

/* Masked squared error of the fuzzy head:
 *   loss = (1/N) * sum_b sum_k mask[b,k] * (target[b,k] - m[b,k])^2
 * with N = B (FZ_MASK_PER_BATCH) or N = the number of rows whose mask is not all zero
 * (FZ_MASK_PER_ACTIVE; a batch with no such row gives 0 and no gradient).
 * m, target, mask: (B, K); grad: (B, K) or NULL, receives weight * dL/dm. */
typedef enum fz_mask_norm { FZ_MASK_PER_BATCH = 0, FZ_MASK_PER_ACTIVE } fz_mask_norm;
double fz_masked_sqerr(const float *m, const float *target, const float *mask, size_t B,
                       size_t K, fz_mask_norm norm, float weight, float *grad);

/* ---- Reparameterised sampling: z = mu + sigma * eps ---------------------------------- */

/* How the encoder's second output s becomes sigma. */
typedef enum fz_sigma_kind {
    FZ_SIGMA_LOGVAR = 0, /* s = log-variance, sigma = exp(0.5 * s) */
    FZ_SIGMA_SOFTPLUS    /* s = raw, sigma = softplus(s) + 1e-8 (PyTorch softplus: s > 20 -> s) */
} fz_sigma_kind;

/* Where eps comes from. */
typedef enum fz_noise {
    FZ_NOISE_DRAW = 0, /* eps ~ N(0, 1) from rng, written to eps for the backward pass */
    FZ_NOISE_GIVEN,    /* eps supplied by the caller (e.g. the same noise as a reference run) */
    FZ_NOISE_NONE      /* z = mu (inference); eps and rng may be NULL */
} fz_noise;

/* sigma of one value of s. */
double fz_sigma(fz_sigma_kind kind, double s);
/* dsigma/ds of one value of s. */
double fz_sigma_grad(fz_sigma_kind kind, double s);

/* mu, s: (n) = (B*Z); eps: (n), read (GIVEN), written (DRAW) or unused (NONE); z: (n).
 * Draws happen in index order, so z is reproducible for a seed.  sigma_out: (n) or NULL,
 * receives sigma (handy for encoders that output it). */
void fz_reparam(fz_sigma_kind kind, fz_noise noise, const float *mu, const float *s,
                size_t n, float *eps, fz_rng *rng, float *z, float *sigma_out);

/* Backward of fz_reparam: dmu += dz; ds += dz * eps * dsigma/ds.  eps is what the forward
 * pass used (NULL means the NONE mode: ds gets nothing).  All arrays (n); dmu or ds may be
 * NULL when not wanted. */
void fz_reparam_backward(fz_sigma_kind kind, const float *s, const float *eps,
                         const float *dz, size_t n, float *dmu, float *ds);

#endif
