/* optim.h - optimisers over one contiguous parameter vector, gradient clipping,
 * learning-rate schedules, and two small vector helpers for the trainer.
 *
 * A model keeps all its parameters in one float block (n values) and its gradients in
 * another of the same length, so every optimiser here is a loop over one vector.
 *
 * The updates follow PyTorch 1.13's single-tensor code path operation by operation, in
 * float with the scalars (bias corrections, step size) computed in double and rounded:
 *
 *   Adam:   g = grad (+ wd * p if wd)                    (L2 penalty added to the gradient)
 *   AdamW:  p = p * (1 - lr * wd)                         (decoupled decay, before the update)
 *   both:   step += 1
 *           m = beta1 * m + (1 - beta1) * g
 *           v = beta2 * v + (1 - beta2) * g * g
 *           bc1 = 1 - beta1^step,  bc2 = 1 - beta2^step
 *           p = p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
 *   SGD:    g = grad (+ wd * p if wd)
 *           if momentum: buf = momentum * buf + g   (dampening 0; buf starts at 0, which
 *                        equals PyTorch's "buf = g" on the first step)
 *                        g = nesterov ? g + momentum * buf : buf
 *           p = p - lr * g
 *
 * Frozen parameters (frozen[i] != 0) keep their value and their moments; the step counter
 * is shared by the whole vector.
 *
 * Checkpointing: the whole state is o->state (fz_optim_state_len floats: m then v, as
 * named by o->m and o->v) plus the step counter as one float (fz_optim_step_float),
 * exact up to 2^24 steps.  Saving these and restoring them with fz_optim_restore gives a
 * bit-identical resume.
 */
#ifndef FZ_OPTIM_H
#define FZ_OPTIM_H

#include <stddef.h>

#include "util.h"

typedef enum fz_opt_kind { FZ_OPT_SGD = 0, FZ_OPT_ADAM, FZ_OPT_ADAMW } fz_opt_kind;

typedef struct fz_opt_conf {
    fz_opt_kind kind;
    double beta1, beta2; /* Adam, AdamW: in [0, 1) */
    double eps;          /* Adam, AdamW: added after the square root, >= 0 */
    double weight_decay; /* >= 0; Adam and SGD add wd * p to the gradient, AdamW decouples */
    double momentum;     /* SGD: >= 0, 0 = plain SGD */
    int nesterov;        /* SGD: Nesterov momentum (needs momentum > 0) */
} fz_opt_conf;

/* PyTorch's defaults: Adam (0.9, 0.999, 1e-8, wd 0), AdamW (the same with wd 0.01),
 * SGD (momentum 0, wd 0). */
fz_opt_conf fz_opt_defaults(fz_opt_kind kind);
/* "sgd", "adam", "adamw" <-> enum.  Parse returns 0 or -1 with a reason. */
int fz_opt_kind_parse(const char *s, fz_opt_kind *out, fz_err *err);
const char *fz_opt_kind_name(fz_opt_kind kind);
/* Are the hyper-parameters in range?  0, or -1 with a reason naming the bad one. */
int fz_opt_conf_check(const fz_opt_conf *c, fz_err *err);

typedef struct fz_optim {
    fz_opt_conf conf;
    size_t n;     /* number of parameters */
    float *state; /* one block of fz_optim_state_len(o) floats holding m then v */
    float *m;     /* (n) Adam first moment or SGD momentum buffer; NULL for plain SGD */
    float *v;     /* (n) Adam second moment; NULL for SGD */
    long step;    /* updates taken so far */
    void *bg;     /* the update fz_optim_step_zero_begin started, or NULL (allocated once) */
} fz_optim;

/* Checks conf and allocates zeroed state for n parameters.  0, or -1 with a reason. */
int fz_optim_init(fz_optim *o, const fz_opt_conf *conf, size_t n, fz_err *err);
void fz_optim_free(fz_optim *o);
/* Number of floats in o->state: 2n (Adam, AdamW), n (SGD with momentum), 0 (plain SGD). */
size_t fz_optim_state_len(const fz_optim *o);
/* The step counter as a float for a checkpoint (exact below 2^24). */
float fz_optim_step_float(const fz_optim *o);
/* Restore a checkpoint: state (fz_optim_state_len floats, copied; may be NULL when that is
 * 0) and the step as saved by fz_optim_step_float.  -1 with a reason if step is not a
 * whole number in [0, 2^24] or the state holds a non-finite value. */
int fz_optim_restore(fz_optim *o, const float *state, size_t len, double step, fz_err *err);

/* One update of params (n) from grads (n) with learning rate lr; frozen (n) or NULL.
 * grads is not modified. Large vectors are cut into pieces over fz_blas_threads() threads,
 * with the same bits on any number of threads (as fz_clip_grad_norm and fz_zero_par). */
void fz_optim_step(fz_optim *o, float *params, const float *grads,
                   const unsigned char *frozen, double lr);
/* The same update on grads * grad_scale (1: as they are; the factor of fz_grad_norm), then
 * every gradient (all n, frozen or not) set to zero, piece by piece while the piece is in
 * the cache: for a training loop that would scale the gradients to clip them, and zero
 * them before its next backward pass (two passes over them fewer). The scaling rounds as
 * fz_clip_grad_norm's: the same bits as that followed by fz_optim_step.
 * norm, if not NULL, receives the L2 norm of the gradients as they came in (unscaled), the
 * bits of fz_grad_norm's, measured in the same pass: for a loop that does not clip and so
 * needs the norm only to report it and to stop on a non-finite one (after the update). */
void fz_optim_step_zero(fz_optim *o, float *params, float *grads, const unsigned char *frozen,
                        double lr, float grad_scale, double *norm);

/* fz_optim_step_zero (grad_scale 1, with the norm) in two calls, so that part of the
 * update runs on a worker while the caller still computes gradients: begin counts the step
 * and starts (fz_threads_start) the update and zeroing of the pieces that lie wholly in
 * [lo, hi), whose gradients must be final and which nothing may touch before end; end
 * does the rest (the caller takes the pieces the worker has not begun, then the other
 * pieces over the threads) and sets *norm (if not NULL): the same parameters, state and
 * norm, bit for bit, as fz_optim_step_zero. begin returns 0 when it started, -1 when it
 * did nothing (one thread, the pool busy, no whole piece in the range, no memory): then
 * call fz_optim_step_zero. */
int fz_optim_step_zero_begin(fz_optim *o, float *params, float *grads,
                             const unsigned char *frozen, double lr, size_t lo, size_t hi);
void fz_optim_step_zero_end(fz_optim *o, double *norm);

/* Gradient-norm clipping as torch.nn.utils.clip_grad_norm_: norm = L2 norm of grads (n)
 * (accumulated in double, piece by piece of 32768 or more floats, the pieces added in
 * order); coef = max_norm / (norm + 1e-6); grads *= coef when coef < 1.
 * Returns norm.  max_norm <= 0 only measures; a non-finite norm leaves grads as they are
 * (the caller stops on it). */
double fz_clip_grad_norm(float *grads, size_t n, double max_norm);
/* The same norm without touching grads: *scale receives the factor fz_clip_grad_norm
 * would multiply them by (1 when it would leave them). */
double fz_grad_norm(const float *grads, size_t n, double max_norm, float *scale);

/* ---- Learning-rate schedules ------------------------------------------------------------ */

typedef enum fz_sched_kind { FZ_SCHED_CONST = 0, FZ_SCHED_STEP, FZ_SCHED_COSINE } fz_sched_kind;

/* t counts whatever the caller schedules by (epochs or steps), from 0.
 *   warm-up  t < warmup:  lr * (t + 1) / warmup, then the schedule below at u = t - warmup
 *   CONST    lr
 *   STEP     lr * gamma^floor(u / every)                        (StepLR)
 *   COSINE   lr_min + (lr - lr_min) * (1 + cos(pi * u / T)) / 2 for u <= T, lr_min after
 *            (CosineAnnealingLR's closed form, held at lr_min instead of rising again) */
typedef struct fz_sched {
    fz_sched_kind kind;
    double lr;     /* base learning rate, > 0 */
    double gamma;  /* STEP: factor, in (0, 1] */
    long every;    /* STEP: period, >= 1 */
    double lr_min; /* COSINE: final rate, in [0, lr] */
    long T;        /* COSINE: length of the decay, >= 1 */
    long warmup;   /* linear warm-up length, >= 0 */
} fz_sched;

/* A constant schedule at lr. */
fz_sched fz_sched_const(double lr);
int fz_sched_check(const fz_sched *s, fz_err *err);
/* Parse "const", "step:EVERY:GAMMA" or "cos:T:LR_MIN", each optionally followed by
 * ",warmup:W", with base rate lr.  0, or -1 with a reason. */
int fz_sched_parse(const char *spec, double lr, fz_sched *out, fz_err *err);
/* The learning rate at t (pure function of s and t); t < 0 is treated as 0. */
double fz_sched_lr(const fz_sched *s, long t);

/* ---- Vector helpers --------------------------------------------------------------------- */

/* x[0..n) = 0. */
void fz_zero(float *x, size_t n);
/* The sum of (x[i] - t[i])^2 in double (t NULL: of x[i]^2), in 32 interleaved partial
 * sums: the same bits in every build and on every machine. */
double fz_sum_sq_diff(const float *x, const float *t, size_t n);
/* The same, cut over the threads when n is large (a model's gradient vector). */
void fz_zero_par(float *x, size_t n);
/* Index of the first NaN or infinity in x (n), or -1 if all are finite. */
ptrdiff_t fz_first_nonfinite(const float *x, size_t n);

#endif
