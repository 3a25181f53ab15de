/* optim.c - Adam, AdamW, SGD over one parameter vector; clipping; schedules (see optim.h). */
#include "optim.h"

#include "blas.h"
#include "threads.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FZ_STEP_MAX 16777216.0 /* 2^24: the largest step count a float holds exactly */

fz_opt_conf fz_opt_defaults(fz_opt_kind kind)
{
    fz_opt_conf c = {.kind = kind, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    if (kind == FZ_OPT_ADAMW) c.weight_decay = 0.01;
    return c;
}

static const char *const kind_names[] = {"sgd", "adam", "adamw"};

int fz_opt_kind_parse(const char *s, fz_opt_kind *out, fz_err *err)
{
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, kind_names[i]) == 0) {
            *out = (fz_opt_kind)i;
            return 0;
        }
    return fz_fail(err, FZ_EUSAGE, "unknown optimiser '%s' (expected sgd, adam or adamw)",
                   s ? s : "");
}

const char *fz_opt_kind_name(fz_opt_kind kind)
{
    return (unsigned)kind < 3 ? kind_names[kind] : "?";
}

int fz_opt_conf_check(const fz_opt_conf *c, fz_err *err)
{
    if ((unsigned)c->kind > FZ_OPT_ADAMW)
        return fz_fail(err, FZ_EUSAGE, "unknown optimiser %d", (int)c->kind);
    /* written as !(in range) so that NaN is refused too */
    if (!(c->weight_decay >= 0 && c->weight_decay < INFINITY))
        return fz_fail(err, FZ_EUSAGE, "weight decay %g not in [0, inf)", c->weight_decay);
    if (c->kind == FZ_OPT_SGD) {
        if (!(c->momentum >= 0 && c->momentum < INFINITY))
            return fz_fail(err, FZ_EUSAGE, "momentum %g not in [0, inf)", c->momentum);
        if (c->nesterov && c->momentum == 0)
            return fz_fail(err, FZ_EUSAGE, "Nesterov momentum needs a momentum > 0");
        return 0;
    }
    if (!(c->beta1 >= 0 && c->beta1 < 1))
        return fz_fail(err, FZ_EUSAGE, "beta1 %g not in [0, 1)", c->beta1);
    if (!(c->beta2 >= 0 && c->beta2 < 1))
        return fz_fail(err, FZ_EUSAGE, "beta2 %g not in [0, 1)", c->beta2);
    if (!(c->eps >= 0 && c->eps < INFINITY))
        return fz_fail(err, FZ_EUSAGE, "eps %g not in [0, inf)", c->eps);
    return 0;
}

size_t fz_optim_state_len(const fz_optim *o)
{
    if (o->conf.kind == FZ_OPT_SGD) return o->conf.momentum != 0 ? o->n : 0;
    return 2 * o->n;
}

int fz_optim_init(fz_optim *o, const fz_opt_conf *conf, size_t n, fz_err *err)
{
    memset(o, 0, sizeof *o);
    if (fz_opt_conf_check(conf, err) != 0) return -1;
    o->conf = *conf;
    o->n = n;
    size_t len = fz_optim_state_len(o);
    if (len > 0) {
        o->state = fz_calloc(len, sizeof(float), err);
        if (!o->state) return -1;
        o->m = o->state;
        if (conf->kind != FZ_OPT_SGD) o->v = o->state + n;
    }
    return 0;
}

void fz_optim_free(fz_optim *o)
{
    fz_optim_step_zero_end(o, NULL); /* an update still running (an error path) ends first */
    free(o->bg);
    o->bg = NULL;
    free(o->state);
    o->state = o->m = o->v = NULL;
}

float fz_optim_step_float(const fz_optim *o) { return (float)o->step; }

int fz_optim_restore(fz_optim *o, const float *state, size_t len, double step, fz_err *err)
{
    size_t want = fz_optim_state_len(o);
    if (len != want)
        return fz_fail(err, FZ_EDATA, "optimiser state of %zu values, expected %zu for %s", len,
                       want, fz_opt_kind_name(o->conf.kind));
    if (!(step >= 0 && step <= FZ_STEP_MAX && step == floor(step)))
        return fz_fail(err, FZ_EDATA, "optimiser step %g is not a whole number in [0, 2^24]",
                       step);
    for (size_t i = 0; i < len; i++)
        if (!isfinite(state[i]))
            return fz_fail(err, FZ_EDATA, "optimiser state value %zu is not finite", i);
    if (len) memcpy(o->state, state, len * sizeof(float));
    o->step = (long)step;
    return 0;
}

/* Each float expression mirrors one PyTorch tensor operation, in the same order and with
 * the same rounding as its vectorised CPU kernel, so a run matches a float32 PyTorch run to
 * the bit: add_(t, alpha) and addcmul_ are fused multiply-adds there (fmaf here), mul_ and
 * the division by a scalar are plain, addcdiv_ is self + (value * t1) / t2. */
/* The update of unfrozen parameters in one pass that the compiler can vectorise; built
 * three times, for AVX-512, for AVX2+FMA (where fmaf is one instruction) and for any
 * x86-64, and picked when the program starts. fmaf, the division and sqrtf are correctly
 * rounded in all of them, so all give the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FZ_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FZ_CLONES
#endif
/* The update is bound by the divider (a square root and two divisions per parameter took
 * 0.6 ns on the 2-core Xeon of bench/README.md), so the division by the constant bc2_sqrt
 * is done without one: with inv = RN(1 / bc2_sqrt), q = RN(s * inv) and one correction
 * by the exact remainder, RN(q + RN(s - q * bc2_sqrt) * inv), give the correctly rounded
 * quotient (Markstein's theorem; checked against the division for every float significand
 * of s over 56,000 divisors, the bias corrections of beta2 = 0.99, 0.999 and 0.9999 up to
 * step 12,000 among them, and in test_optim): the same bits, 0.43 ns a parameter. */
FZ_CLONES
static void adam_kernel(size_t n, float *restrict p, const float *restrict grads,
                        float *restrict m, float *restrict v, float b1, float omb1, float b2,
                        float omb2, float bc2_sqrt, float inv_bc2_sqrt, float eps,
                        float step_size, float wd, int l2, float decay)
{
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        float pi = p[i] * decay; /* decay is exactly 1 unless decoupled: p * 1 == p */
        g = l2 ? fmaf(pi, wd, g) : g;
        float mi = fmaf(g, omb1, m[i] * b1);
        float vi = fmaf(omb2 * g, g, v[i] * b2);
        float s = sqrtf(vi);
        float q = s * inv_bc2_sqrt;
        q = fmaf(fmaf(-q, bc2_sqrt, s), inv_bc2_sqrt, q); /* s / bc2_sqrt */
        float denom = q + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + -step_size * mi / denom;
    }
}

/* The update of parameters [lo, hi) at the current step. */
static void adam_range(const fz_optim *o, float *p, const float *grads,
                       const unsigned char *frozen, double lr, size_t lo, size_t hi)
{
    const fz_opt_conf *c = &o->conf;
    double step = (double)o->step;
    double bc1 = 1.0 - pow(c->beta1, step);
    double bc2 = 1.0 - pow(c->beta2, step);
    float step_size = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float inv_bc2_sqrt = (float)(1.0 / (double)bc2_sqrt); /* correctly rounded: 53 >= 2*24+2 */
    float b1 = (float)c->beta1, omb1 = (float)(1.0 - c->beta1);
    float b2 = (float)c->beta2, omb2 = (float)(1.0 - c->beta2);
    float eps = (float)c->eps;
    float wd = (float)c->weight_decay;
    int l2 = c->kind == FZ_OPT_ADAM && c->weight_decay != 0;
    int decoupled = c->kind == FZ_OPT_ADAMW && c->weight_decay != 0;
    float decay = decoupled ? (float)(1.0 - lr * c->weight_decay) : 1.0f;
    float *m = o->m, *v = o->v;
    if (!frozen) {
        adam_kernel(hi - lo, p + lo, grads + lo, m + lo, v + lo, b1, omb1, b2, omb2, bc2_sqrt,
                    inv_bc2_sqrt, eps, step_size, wd, l2, decay);
        return;
    }
    /* Runs of unfrozen parameters go through the kernel. */
    size_t i = lo;
    while (i < hi) {
        while (i < hi && frozen[i]) i++;
        size_t j = i;
        while (j < hi && !frozen[j]) j++;
        if (j > i)
            adam_kernel(j - i, p + i, grads + i, m + i, v + i, b1, omb1, b2, omb2, bc2_sqrt,
                        inv_bc2_sqrt, eps, step_size, wd, l2, decay);
        i = j;
    }
}

static void sgd_range(const fz_optim *o, float *p, const float *grads,
                      const unsigned char *frozen, double lr, size_t lo, size_t hi)
{
    const fz_opt_conf *c = &o->conf;
    float wd = (float)c->weight_decay;
    float mom = (float)c->momentum;
    float neg_lr = (float)-lr;
    float *buf = o->m;
    for (size_t i = lo; i < hi; i++) {
        if (frozen && frozen[i]) continue;
        float g = grads[i];
        if (c->weight_decay != 0) g = fmaf(p[i], wd, g);
        if (buf) {
            buf[i] = buf[i] * mom + g;
            g = c->nesterov ? fmaf(buf[i], mom, g) : buf[i];
        }
        p[i] = fmaf(g, neg_lr, p[i]);
    }
}

/* The passes over all parameters (the update, the gradient's squared norm, its scaling,
 * zeroing it) are cut into pieces that the threads (fz_blas_threads(), as the layers) take
 * in turn from a shared counter. A piece's size depends on n only, never on the thread
 * count; the update is element-wise and the norm adds the pieces' sums in piece order: the
 * same bits on any number of threads. Below FZ_OPT_PAR_MIN parameters the caller does it
 * all (waking a worker would cost about what it saves). At 2^17 the ae-mlp preset (222 K
 * parameters) is cut too: its update then leaves each half of the weights in the cache of
 * the core whose cut of the next products reads it (blas.c), and ae-mlp trained 1.33x as
 * fast on two threads as before the cut products, against 1.08x with the threshold at
 * 2^20. */
#define FZ_OPT_PIECE ((size_t)1 << 15) /* 32768 floats: 512 KB of p, g, m and v */
#define FZ_OPT_PAR_MIN ((size_t)1 << 17)
#define FZ_OPT_MAX_PIECES 1024 /* pieces grow beyond 32 M parameters */

static size_t piece_size(size_t n)
{
    size_t per = (n + FZ_OPT_MAX_PIECES - 1) / FZ_OPT_MAX_PIECES;
    return per > FZ_OPT_PIECE ? per : FZ_OPT_PIECE;
}

typedef enum { PASS_STEP, PASS_STEP_ZERO, PASS_SUMSQ, PASS_SCALE, PASS_ZERO } pass_kind;

typedef struct pass_job {
    pass_kind kind;
    const fz_optim *o;
    float *p, *g;
    const unsigned char *frozen;
    double lr;
    float scale;
    size_t n, piece;
    double *sums; /* PASS_SUMSQ, and PASS_STEP_ZERO if not NULL: one per piece */
} pass_job;

static double sum_sq(const float *g, size_t n) { return fz_sum_sq_diff(g, NULL, n); }

/* g[lo, hi) *= scale: the clipping, alone (PASS_SCALE) or inside the update, the same
 * rounding either way */
static void scale_range(float *g, float scale, size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++) g[i] *= scale;
}

static void pass_range(void *arg, size_t k, size_t lo, size_t hi)
{
    pass_job *j = arg;
    switch (j->kind) {
    case PASS_STEP:
    case PASS_STEP_ZERO:
        if (j->kind == PASS_STEP_ZERO && j->sums) j->sums[k] = sum_sq(j->g + lo, hi - lo);
        if (j->kind == PASS_STEP_ZERO && j->scale != 1.0f) scale_range(j->g, j->scale, lo, hi);
        if (j->o->conf.kind == FZ_OPT_SGD) sgd_range(j->o, j->p, j->g, j->frozen, j->lr, lo, hi);
        else adam_range(j->o, j->p, j->g, j->frozen, j->lr, lo, hi);
        if (j->kind == PASS_STEP_ZERO) memset(j->g + lo, 0, (hi - lo) * sizeof(float));
        break;
    case PASS_SUMSQ: j->sums[k] = sum_sq(j->g + lo, hi - lo); break;
    case PASS_SCALE: scale_range(j->g, j->scale, lo, hi); break;
    case PASS_ZERO: memset(j->g + lo, 0, (hi - lo) * sizeof(float)); break;
    }
}

static void run_pass(pass_job *j)
{
    j->piece = piece_size(j->n);
    fz_threads_pieces(j->n < FZ_OPT_PAR_MIN ? 1 : fz_blas_threads(), j->n, j->piece, pass_range,
                      j);
}

void fz_optim_step(fz_optim *o, float *params, const float *grads,
                   const unsigned char *frozen, double lr)
{
    o->step++;
    pass_job j = {.kind = PASS_STEP, .o = o, .p = params, .g = (float *)grads,
                  .frozen = frozen, .lr = lr, .n = o->n};
    run_pass(&j);
}

/* sqrt of the pieces' sums of squares, added in piece order */
static double pieces_norm(const pass_job *j)
{
    double total = 0;
    for (size_t k = 0; k * j->piece < j->n; k++) total += j->sums[k];
    return sqrt(total);
}

void fz_optim_step_zero(fz_optim *o, float *params, float *grads, const unsigned char *frozen,
                        double lr, float grad_scale, double *norm)
{
    double sums[FZ_OPT_MAX_PIECES];
    o->step++;
    pass_job j = {.kind = PASS_STEP_ZERO, .o = o, .p = params, .g = grads, .frozen = frozen,
                  .lr = lr, .n = o->n, .scale = grad_scale, .sums = norm ? sums : NULL};
    run_pass(&j);
    if (norm) *norm = pieces_norm(&j);
}

/* The update begun by fz_optim_step_zero_begin: pieces [k0, k1) taken in turn from a
 * shared counter by the worker and, from fz_optim_step_zero_end on, by the caller. */
typedef struct bg_update {
    pass_job j;
    double sums[FZ_OPT_MAX_PIECES];
    size_t k0, k1;
    atomic_size_t next;
    int running;
} bg_update;

static void bg_part(void *arg, int i)
{
    bg_update *b = arg;
    (void)i;
    for (;;) {
        size_t k = atomic_fetch_add(&b->next, 1);
        if (k >= b->k1) break;
        size_t lo = k * b->j.piece, hi = lo + b->j.piece < b->j.n ? lo + b->j.piece : b->j.n;
        pass_range(&b->j, k, lo, hi);
    }
}

int fz_optim_step_zero_begin(fz_optim *o, float *params, float *grads,
                             const unsigned char *frozen, double lr, size_t lo, size_t hi)
{
    fz_optim_step_zero_end(o, NULL);
    size_t piece = piece_size(o->n), pieces = (o->n + piece - 1) / piece;
    if (hi > o->n) hi = o->n;
    size_t k0 = (lo + piece - 1) / piece, k1 = hi == o->n ? pieces : hi / piece;
    if (k0 >= k1 || fz_blas_threads() < 2) return -1;
    if (!o->bg && !(o->bg = malloc(sizeof(bg_update)))) return -1;
    bg_update *b = o->bg;
    o->step++;
    b->j = (pass_job){.kind = PASS_STEP_ZERO, .o = o, .p = params, .g = grads, .frozen = frozen,
                      .lr = lr, .n = o->n, .scale = 1.0f, .sums = b->sums, .piece = piece};
    b->k0 = k0;
    b->k1 = k1;
    atomic_store(&b->next, k0);
    b->running = 1;
    if (fz_threads_start(bg_part, b) != 0) {
        b->running = 0;
        o->step--;
        return -1;
    }
    return 0;
}

/* pieces [k_off, k_off + count) of a pass, over the threads as run_pass cuts them */
typedef struct range_job {
    pass_job *j;
    size_t k_off;
} range_job;

static void range_piece(void *arg, size_t k, size_t lo, size_t hi)
{
    range_job *r = arg;
    size_t off = r->k_off * r->j->piece;
    pass_range(r->j, k + r->k_off, lo + off, hi + off);
}

static void run_pieces(pass_job *j, size_t k_from, size_t k_to)
{
    if (k_from >= k_to) return;
    size_t lo = k_from * j->piece, hi = k_to * j->piece < j->n ? k_to * j->piece : j->n;
    range_job r = {j, k_from};
    fz_threads_pieces(hi - lo < FZ_OPT_PAR_MIN ? 1 : fz_blas_threads(), hi - lo, j->piece,
                      range_piece, &r);
}

void fz_optim_step_zero_end(fz_optim *o, double *norm)
{
    bg_update *b = o->bg;
    if (!b || !b->running) return;
    fz_threads_finish();
    b->running = 0;
    size_t pieces = (b->j.n + b->j.piece - 1) / b->j.piece;
    run_pieces(&b->j, 0, b->k0);
    run_pieces(&b->j, b->k1, pieces);
    if (norm) *norm = pieces_norm(&b->j);
}

double fz_grad_norm(const float *grads, size_t n, double max_norm, float *scale)
{
    double sums[FZ_OPT_MAX_PIECES];
    pass_job j = {.kind = PASS_SUMSQ, .g = (float *)grads, .n = n, .sums = sums};
    run_pass(&j);
    double norm = pieces_norm(&j);
    *scale = 1.0f;
    if (!(max_norm > 0) || !isfinite(norm)) return norm;
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) *scale = (float)coef;
    return norm;
}

double fz_clip_grad_norm(float *grads, size_t n, double max_norm)
{
    float scale;
    double norm = fz_grad_norm(grads, n, max_norm, &scale);
    if (scale != 1.0f) {
        pass_job s = {.kind = PASS_SCALE, .g = grads, .n = n, .scale = scale};
        run_pass(&s);
    }
    return norm;
}

/* ---- Schedules -------------------------------------------------------------------------- */

fz_sched fz_sched_const(double lr)
{
    fz_sched s = {.kind = FZ_SCHED_CONST, .lr = lr, .gamma = 1, .every = 1, .lr_min = 0,
                  .T = 1, .warmup = 0};
    return s;
}

int fz_sched_check(const fz_sched *s, fz_err *err)
{
    if (!(s->lr > 0 && s->lr < INFINITY))
        return fz_fail(err, FZ_EUSAGE, "learning rate %g not in (0, inf)", s->lr);
    if (s->warmup < 0) return fz_fail(err, FZ_EUSAGE, "warm-up %ld < 0", s->warmup);
    switch (s->kind) {
    case FZ_SCHED_CONST:
        return 0;
    case FZ_SCHED_STEP:
        if (s->every < 1) return fz_fail(err, FZ_EUSAGE, "step period %ld < 1", s->every);
        if (!(s->gamma > 0 && s->gamma <= 1))
            return fz_fail(err, FZ_EUSAGE, "step factor %g not in (0, 1]", s->gamma);
        return 0;
    case FZ_SCHED_COSINE:
        if (s->T < 1) return fz_fail(err, FZ_EUSAGE, "cosine length %ld < 1", s->T);
        if (!(s->lr_min >= 0 && s->lr_min <= s->lr))
            return fz_fail(err, FZ_EUSAGE, "cosine final rate %g not in [0, %g]", s->lr_min,
                           s->lr);
        return 0;
    }
    return fz_fail(err, FZ_EUSAGE, "unknown schedule %d", (int)s->kind);
}

/* Splits "a:b:c" in place into at most max fields; returns the count, or -1 if more. */
static int split_fields(char *s, char **f, int max)
{
    int k = 0;
    for (char *p = s;; p++) {
        if (k == max) return -1;
        f[k++] = p;
        p = strchr(p, ':');
        if (!p) return k;
        *p = '\0';
    }
}

int fz_sched_parse(const char *spec, double lr, fz_sched *out, fz_err *err)
{
    char buf[128];
    if (!spec || strlen(spec) >= sizeof buf)
        return fz_fail(err, FZ_EUSAGE, "schedule '%.40s' too long", spec ? spec : "");
    strcpy(buf, spec);
    fz_sched s = fz_sched_const(lr);
    char *warm = strchr(buf, ',');
    if (warm) {
        *warm++ = '\0';
        if (strncmp(warm, "warmup:", 7) != 0)
            return fz_fail(err, FZ_EUSAGE, "schedule '%s': expected ',warmup:W' after the kind",
                           spec);
        if (fz_parse_long(warm + 7, 0, 1000000000L, &s.warmup, "warm-up length", err) != 0)
            return -1;
    }
    char *f[3];
    int k = split_fields(buf, f, 3);
    const char *usage = "expected const, step:EVERY:GAMMA or cos:T:LR_MIN";
    if (k == 1 && strcmp(f[0], "const") == 0) {
        s.kind = FZ_SCHED_CONST;
    } else if (k == 3 && strcmp(f[0], "step") == 0) {
        s.kind = FZ_SCHED_STEP;
        if (fz_parse_long(f[1], 1, 1000000000L, &s.every, "step period", err) != 0 ||
            fz_parse_double(f[2], 0, 1, &s.gamma, "step factor", err) != 0)
            return -1;
    } else if (k == 3 && strcmp(f[0], "cos") == 0) {
        s.kind = FZ_SCHED_COSINE;
        if (fz_parse_long(f[1], 1, 1000000000L, &s.T, "cosine length", err) != 0 ||
            fz_parse_double(f[2], 0, lr, &s.lr_min, "cosine final rate", err) != 0)
            return -1;
    } else {
        return fz_fail(err, FZ_EUSAGE, "schedule '%s': %s", spec, usage);
    }
    if (fz_sched_check(&s, err) != 0) return -1;
    *out = s;
    return 0;
}

double fz_sched_lr(const fz_sched *s, long t)
{
    if (t < 0) t = 0;
    if (t < s->warmup) return s->lr * (double)(t + 1) / (double)s->warmup;
    long u = t - s->warmup;
    switch (s->kind) {
    case FZ_SCHED_CONST:
        return s->lr;
    case FZ_SCHED_STEP:
        return s->lr * pow(s->gamma, (double)(u / (s->every > 0 ? s->every : 1)));
    case FZ_SCHED_COSINE:
        if (u >= s->T) return s->lr_min;
        return s->lr_min + (s->lr - s->lr_min) * (1.0 + cos(M_PI * (double)u / (double)s->T)) / 2.0;
    }
    return s->lr;
}

/* ---- Vector helpers --------------------------------------------------------------------- */

/* 32 interleaved partial sums: lane k takes i = k mod 32, then the lanes are added in
 * order; four vectors of 8 doubles whose adds do not wait on each other (with one, the
 * pass waited on its chain of adds). The plain loop gives the same bits where the vector
 * extensions are missing. -std=c11 keeps d * d and the add unfused in both. */
#if defined(__GNUC__)
typedef float fz_v8f __attribute__((vector_size(32)));
typedef double fz_v8d __attribute__((vector_size(64)));

/* *acc += (x - t)^2 over 8 lanes (through a pointer: a vector return value would have a
 * different ABI with and without AVX-512) */
static inline void add_sq_diff8(fz_v8d *acc, const float *x, const float *t)
{
    fz_v8f xf, tf = {0};
    memcpy(&xf, x, sizeof xf);
    if (t) memcpy(&tf, t, sizeof tf);
    fz_v8d d = __builtin_convertvector(xf, fz_v8d) - __builtin_convertvector(tf, fz_v8d);
    *acc += d * d;
}
#endif

FZ_CLONES
double fz_sum_sq_diff(const float *x, const float *t, size_t n)
{
    double lane[32] = {0}, s = 0;
    size_t i = 0;
#if defined(__GNUC__)
    fz_v8d a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (; i + 32 <= n; i += 32) {
        add_sq_diff8(&a0, x + i, t ? t + i : NULL);
        add_sq_diff8(&a1, x + i + 8, t ? t + i + 8 : NULL);
        add_sq_diff8(&a2, x + i + 16, t ? t + i + 16 : NULL);
        add_sq_diff8(&a3, x + i + 24, t ? t + i + 24 : NULL);
    }
    memcpy(lane, &a0, sizeof a0);
    memcpy(lane + 8, &a1, sizeof a1);
    memcpy(lane + 16, &a2, sizeof a2);
    memcpy(lane + 24, &a3, sizeof a3);
#else
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 32; k++) {
            double d = (double)x[i + k] - (t ? (double)t[i + k] : 0.0);
            lane[k] += d * d;
        }
#endif
    for (; i < n; i++) {
        double d = (double)x[i] - (t ? (double)t[i] : 0.0);
        s += d * d;
    }
    for (int k = 0; k < 32; k++) s += lane[k];
    return s;
}

void fz_zero(float *x, size_t n)
{
    if (n) memset(x, 0, n * sizeof *x);
}

void fz_zero_par(float *x, size_t n)
{
    pass_job j = {.kind = PASS_ZERO, .g = x, .n = n};
    if (n) run_pass(&j);
}

/* 1 when some x[i] is NaN or infinite, i.e. its exponent bits are all ones: the largest
 * masked exponent is a max-reduction that vectorises, where isfinite() per element with an
 * early exit does not */
FZ_CLONES
static int any_nonfinite(const float *x, size_t n)
{
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, 4);
        u &= 0x7f800000u;
        m = u > m ? u : m;
    }
    return m == 0x7f800000u;
}

ptrdiff_t fz_first_nonfinite(const float *x, size_t n)
{
    if (!any_nonfinite(x, n)) return -1;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (ptrdiff_t)i;
    return -1;
}
