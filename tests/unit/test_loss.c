/* test_loss.c - losses and the reparameterised sampling step against known values and
 * against double-precision reference formulas written out here independently, with
 * gradients checked by central differences of those references. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "check.h"
#include "loss.h"
#include "rng.h"
#include "threads.h"

#define MAXN 256

/* ---- Reference reductions, written literally from their definitions --------------------- */

/* Reduces the elementwise terms e (B, D) the long way: SUM adds everything; MEAN averages
 * everything; MEAN_BATCH averages the per-sample sums; ROWS forms the (B, D/L) array of sums
 * over the last axis and averages it. */
static double ref_reduce(const double *e, size_t B, size_t D, fz_reduction red, size_t L)
{
    double total = 0;
    switch (red) {
    case FZ_RED_SUM:
        for (size_t i = 0; i < B * D; i++) total += e[i];
        return total;
    case FZ_RED_MEAN:
        for (size_t i = 0; i < B * D; i++) total += e[i];
        return total / (double)(B * D);
    case FZ_RED_MEAN_BATCH:
        for (size_t b = 0; b < B; b++) {
            double row = 0;
            for (size_t d = 0; d < D; d++) row += e[b * D + d];
            total += row;
        }
        return total / (double)B;
    case FZ_RED_ROWS: {
        size_t R = D / L, cnt = 0;
        for (size_t b = 0; b < B; b++)
            for (size_t r = 0; r < R; r++) {
                double s = 0;
                for (size_t l = 0; l < L; l++) s += e[b * D + r * L + l];
                total += s;
                cnt++;
            }
        return total / (double)cnt;
    }
    }
    return NAN;
}

/* A loss in double of the perturbed input x (n) with everything else fixed in ctx. */
typedef double (*ref_fn)(const double *x, const void *ctx);

typedef struct {
    const double *other; /* the second operand (target, lv, mu, ...) */
    const double *third; /* mask, eps, ... */
    size_t B, D, L;
    fz_reduction red;
    int variant;
} ref_ctx;

/* Central differences of f at x (n) in double; compares with the analytic gradient g
 * (float, from the library) with a relative tolerance. */
static void check_grad(const char *what, ref_fn f, const double *x, size_t n, const void *ctx,
                       const float *g, double scale)
{
    double xp[MAXN];
    memcpy(xp, x, n * sizeof *x);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double h = 1e-6 * fmax(1.0, fabs(x[i]));
        xp[i] = x[i] + h;
        double fp = f(xp, ctx);
        xp[i] = x[i] - h;
        double fm = f(xp, ctx);
        xp[i] = x[i];
        double fd = scale * (fp - fm) / (2 * h);
        double tol = 2e-4 * fabs(fd) + 1e-6;
        if (fabs(fd - g[i]) > tol) {
            if (bad++ < 3)
                fprintf(stderr, "%s: grad[%zu] = %.9g, central difference %.9g\n", what, i,
                        (double)g[i], fd);
        }
    }
    CHECK_MSG(bad == 0, "%s: %d gradient entries off", what, bad);
}

static void to_double(const float *a, double *d, size_t n)
{
    for (size_t i = 0; i < n; i++) d[i] = a[i];
}

static void fill_uniform(fz_rng *r, float *a, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) a[i] = (float)(lo + (hi - lo) * fz_rng_uniform(r));
}

static const fz_reduction all_red[] = {FZ_RED_SUM, FZ_RED_MEAN, FZ_RED_MEAN_BATCH, FZ_RED_ROWS};

/* ---- Reductions ------------------------------------------------------------------------- */

static void test_reductions(void)
{
    fz_err err = {0};
    CHECK_EQ_INT(fz_reduction_check(FZ_RED_ROWS, 784, 28, &err), 0);
    CHECK_EQ_INT(fz_reduction_check(FZ_RED_ROWS, 784, 0, &err), -1);
    CHECK_EQ_INT(fz_reduction_check(FZ_RED_ROWS, 784, 30, &err), -1);
    CHECK_CONTAINS(err.msg, "30");
    CHECK_CONTAINS(err.msg, "784");
    CHECK_EQ_INT(fz_reduction_check(FZ_RED_MEAN, 784, 0, &err), 0);
    CHECK_EQ_INT(fz_reduction_check((fz_reduction)9, 784, 0, &err), -1);
    CHECK_NEAR(fz_reduction_divisor(FZ_RED_SUM, 5, 784, 28), 1, 0);
    CHECK_NEAR(fz_reduction_divisor(FZ_RED_MEAN, 5, 784, 28), 5 * 784, 0);
    CHECK_NEAR(fz_reduction_divisor(FZ_RED_MEAN_BATCH, 5, 784, 28), 5, 0);
    CHECK_NEAR(fz_reduction_divisor(FZ_RED_ROWS, 5, 784, 28), 5 * 28, 0);
    CHECK_NEAR(fz_reduction_divisor(FZ_RED_ROWS, 5, 784, 0), 0, 0);

    for (int i = 0; i < 4; i++) {
        fz_reduction r = FZ_RED_SUM;
        CHECK_EQ_INT(fz_reduction_parse(fz_reduction_name(all_red[i]), &r, &err), 0);
        CHECK_EQ_INT(r, all_red[i]);
    }
    fz_reduction r = FZ_RED_SUM;
    CHECK_EQ_INT(fz_reduction_parse("avg", &r, &err), -1);
    CHECK_CONTAINS(err.msg, "avg");
    CHECK_EQ_INT(fz_reduction_parse(NULL, &r, &err), -1);

    /* invalid shape: NAN and the gradient untouched */
    float p[6] = {.5f, .5f, .5f, .5f, .5f, .5f}, t[6] = {0}, g[6] = {7, 7, 7, 7, 7, 7};
    CHECK(isnan(fz_bce(p, t, 2, 3, FZ_RED_ROWS, 2, 1, g)));
    CHECK(isnan(fz_sqerr(p, t, 2, 3, FZ_RED_ROWS, 0, 1, g)));
    CHECK(isnan(fz_kl_logvar(p, t, 2, 3, FZ_RED_ROWS, 4, 1, g, g)));
    CHECK(isnan(fz_kl_softplus(p, t, 2, 3, FZ_RED_ROWS, 4, 1, g, g)));
    for (int i = 0; i < 6; i++) CHECK_NEAR(g[i], 7, 0);
    /* empty batch */
    CHECK_NEAR(fz_bce(p, t, 0, 3, FZ_RED_MEAN, 0, 1, g), 0, 0);
}

/* ---- Binary cross-entropy --------------------------------------------------------------- */

static double ref_bce(const double *p, const void *vctx)
{
    const ref_ctx *c = vctx;
    double e[MAXN];
    for (size_t i = 0; i < c->B * c->D; i++) {
        double t = c->other[i];
        e[i] = -(t * fmax(log(p[i]), -100.0) + (1 - t) * fmax(log(1 - p[i]), -100.0));
    }
    return ref_reduce(e, c->B, c->D, c->red, c->L);
}

static void test_bce_known(void)
{
    float half = 0.5f, one = 1.0f, zero = 0.0f, g;
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(fz_bce(&half, &one, 1, 1, all_red[i], 1, 1, NULL), log(2.0), 1e-7); /* float logs */
    /* 4 elements of ln 2: SUM 4 ln 2, MEAN ln 2, per-sample (B 2) 2 ln 2, rows of 2: 2 ln 2 */
    float p4[4] = {.5f, .5f, .5f, .5f}, t4[4] = {1, 0, 1, 0};
    CHECK_NEAR(fz_bce(p4, t4, 2, 2, FZ_RED_SUM, 0, 1, NULL), 4 * log(2.0), 1e-7); /* float logs */
    CHECK_NEAR(fz_bce(p4, t4, 2, 2, FZ_RED_MEAN, 0, 1, NULL), log(2.0), 1e-7); /* float logs */
    CHECK_NEAR(fz_bce(p4, t4, 2, 2, FZ_RED_MEAN_BATCH, 0, 1, NULL), 2 * log(2.0), 1e-7); /* float logs */
    CHECK_NEAR(fz_bce(p4, t4, 1, 4, FZ_RED_ROWS, 2, 1, NULL), 2 * log(2.0), 1e-7); /* float logs */

    /* PyTorch clamps each log at -100: a confident wrong answer costs exactly 100 */
    CHECK_NEAR(fz_bce(&zero, &one, 1, 1, FZ_RED_SUM, 0, 1, NULL), 100, 1e-12);
    CHECK_NEAR(fz_bce(&one, &zero, 1, 1, FZ_RED_SUM, 0, 1, NULL), 100, 1e-12);
    CHECK_NEAR(fz_bce(&zero, &zero, 1, 1, FZ_RED_SUM, 0, 1, NULL), 0, 1e-12);
    CHECK_NEAR(fz_bce(&one, &one, 1, 1, FZ_RED_SUM, 0, 1, NULL), 0, 1e-12);
    float soft = 0.25f;
    CHECK_NEAR(fz_bce(&zero, &soft, 1, 1, FZ_RED_SUM, 0, 1, NULL), 25, 1e-9);
    CHECK_NEAR(fz_bce(&one, &soft, 1, 1, FZ_RED_SUM, 0, 1, NULL), 75, 1e-9);
    /* a tiny p below e^-100 is clamped too */
    float tiny = 1e-45f;
    CHECK_NEAR(fz_bce(&tiny, &one, 1, 1, FZ_RED_SUM, 0, 1, NULL), 100, 1e-9);

    /* the gradient stays finite at the clamp: (p - t) / max((1-p) p, 1e-12) */
    g = 0;
    fz_bce(&zero, &one, 1, 1, FZ_RED_SUM, 0, 1, &g);
    CHECK_NEAR(g / -1e12, 1, 1e-6);
    g = 0;
    fz_bce(&one, &zero, 1, 1, FZ_RED_SUM, 0, 1, &g);
    CHECK_NEAR(g / 1e12, 1, 1e-6);
    g = 0;
    fz_bce(&zero, &zero, 1, 1, FZ_RED_SUM, 0, 1, &g);
    CHECK_NEAR(g, 0, 0);
    g = 0;
    fz_bce(&half, &one, 1, 1, FZ_RED_SUM, 0, 1, &g);
    CHECK_NEAR(g, -2, 1e-7); /* -0.5 / 0.25 */
    /* weighted and accumulated: 3 + 0.5 * (-2) */
    g = 3;
    fz_bce(&half, &one, 1, 1, FZ_RED_SUM, 0, 0.5f, &g);
    CHECK_NEAR(g, 2, 1e-7);

    float bad = 1.5f;
    CHECK(isnan(fz_bce(&bad, &one, 1, 1, FZ_RED_SUM, 0, 1, NULL)));
}

static void test_bce_grad(void)
{
    enum { B = 3, D = 8 };
    fz_rng r;
    fz_rng_seed(&r, 11);
    float p[B * D], t[B * D];
    fill_uniform(&r, p, B * D, 0.05, 0.95);
    fill_uniform(&r, t, B * D, 0.0, 1.0); /* soft targets as well as 0/1 ones */
    t[0] = 0, t[1] = 1;
    double pd[B * D], td[B * D];
    to_double(p, pd, B * D);
    to_double(t, td, B * D);
    for (int k = 0; k < 4; k++) {
        ref_ctx c = {.other = td, .B = B, .D = D, .L = 4, .red = all_red[k]};
        float g[B * D];
        for (int i = 0; i < B * D; i++) g[i] = 0;
        double v = fz_bce(p, t, B, D, c.red, c.L, 0.75f, g);
        /* the logs are taken in float, as PyTorch does */
        CHECK_NEAR(v, ref_bce(pd, &c), 1e-6 * fabs(ref_bce(pd, &c)));
        char what[64];
        snprintf(what, sizeof what, "bce/%s", fz_reduction_name(c.red));
        check_grad(what, ref_bce, pd, B * D, &c, g, 0.75);
    }
}

/* ---- Squared error ---------------------------------------------------------------------- */

static double ref_sqerr(const double *x, const void *vctx)
{
    const ref_ctx *c = vctx;
    double e[MAXN];
    for (size_t i = 0; i < c->B * c->D; i++) {
        double d = x[i] - (c->other ? c->other[i] : 0);
        e[i] = d * d;
    }
    return ref_reduce(e, c->B, c->D, c->red, c->L);
}

static void test_sqerr(void)
{
    float x[2] = {1, 2}, t[2] = {0, 0}, g[2] = {0, 0};
    /* MSELoss: (1 + 4) / 2; sum of squares 5 */
    CHECK_NEAR(fz_sqerr(x, t, 1, 2, FZ_RED_MEAN, 0, 1, NULL), 2.5, 1e-12);
    CHECK_NEAR(fz_sqerr(x, NULL, 1, 2, FZ_RED_SUM, 0, 1, g), 5, 1e-12);
    CHECK_NEAR(g[0], 2, 1e-7);
    CHECK_NEAR(g[1], 4, 1e-7);

    enum { B = 4, D = 6 };
    fz_rng r;
    fz_rng_seed(&r, 12);
    float xs[B * D], ts[B * D];
    fill_uniform(&r, xs, B * D, -2, 2);
    fill_uniform(&r, ts, B * D, -1, 1);
    double xd[B * D], td[B * D];
    to_double(xs, xd, B * D);
    to_double(ts, td, B * D);
    for (int k = 0; k < 4; k++)
        for (int nt = 0; nt < 2; nt++) {
            ref_ctx c = {.other = nt ? NULL : td, .B = B, .D = D, .L = 3, .red = all_red[k]};
            float gr[B * D] = {0};
            double v = fz_sqerr(xs, nt ? NULL : ts, B, D, c.red, c.L, 1.5f, gr);
            double ref = ref_sqerr(xd, &c);
            CHECK_NEAR(v, ref, 1e-12 * fabs(ref));
            char what[64];
            snprintf(what, sizeof what, "sqerr/%s%s", fz_reduction_name(c.red),
                     nt ? "/no-target" : "");
            check_grad(what, ref_sqerr, xd, B * D, &c, gr, 1.5);
        }
}

/* ---- KL divergences --------------------------------------------------------------------- */

/* variant 0: x = mu, other = lv; variant 1: x = lv, other = mu */
static double ref_kl_logvar(const double *x, const void *vctx)
{
    const ref_ctx *c = vctx;
    double e[MAXN];
    for (size_t i = 0; i < c->B * c->D; i++) {
        double mu = c->variant ? c->other[i] : x[i];
        double lv = c->variant ? x[i] : c->other[i];
        e[i] = -0.5 * (1 + lv - mu * mu - exp(lv));
    }
    return ref_reduce(e, c->B, c->D, c->red, c->L);
}

static double ref_softplus(double x) { return log(1 + exp(x)); }

/* variant 0: x = mu, other = raw; variant 1: x = raw, other = mu */
static double ref_kl_softplus(const double *x, const void *vctx)
{
    const ref_ctx *c = vctx;
    double e[MAXN];
    for (size_t i = 0; i < c->B * c->D; i++) {
        double mu = c->variant ? c->other[i] : x[i];
        double raw = c->variant ? x[i] : c->other[i];
        double s = ref_softplus(raw) + 1e-8;
        e[i] = 0.5 * (s * s + mu * mu - 1 - 2 * log(s));
    }
    return ref_reduce(e, c->B, c->D, c->red, c->L);
}

static void test_kl_known(void)
{
    float z[3] = {0, 0, 0}, g1[3] = {0}, g2[3] = {0};
    CHECK_NEAR(fz_kl_logvar(z, z, 1, 3, FZ_RED_SUM, 0, 1, g1, g2), 0, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_NEAR(g1[i], 0, 0);
        CHECK_NEAR(g2[i], 0, 0);
    }
    /* mu = 1, lv = 0: 0.5 per dim; lv = ln 2 with mu 0: 0.5 (2 - 1 - ln 2) */
    float one = 1, zero = 0, l2 = (float)log(2.0);
    CHECK_NEAR(fz_kl_logvar(&one, &zero, 1, 1, FZ_RED_SUM, 0, 1, NULL, NULL), 0.5, 1e-12);
    CHECK_NEAR(fz_kl_logvar(&zero, &l2, 1, 1, FZ_RED_SUM, 0, 1, NULL, NULL),
               0.5 * (1 - log(2.0)), 1e-7);
    /* per-sample sum, batch mean: two samples of 2 dims, mu = 1 everywhere: 1 per sample */
    float mu4[4] = {1, 1, 1, 1}, lv4[4] = {0, 0, 0, 0};
    CHECK_NEAR(fz_kl_logvar(mu4, lv4, 2, 2, FZ_RED_MEAN_BATCH, 0, 1, NULL, NULL), 1, 1e-12);
    CHECK_NEAR(fz_kl_logvar(mu4, lv4, 2, 2, FZ_RED_SUM, 0, 1, NULL, NULL), 2, 1e-12);

    /* softplus form: sigma = 1 when softplus(raw) = 1 - 1e-8 */
    float raw1 = (float)log(exp(1.0 - 1e-8) - 1.0);
    CHECK_NEAR(fz_kl_softplus(&zero, &raw1, 1, 1, FZ_RED_SUM, 0, 1, NULL, NULL), 0, 1e-12);
    /* and it agrees with the log-variance form at lv = 2 log sigma */
    fz_rng r;
    fz_rng_seed(&r, 5);
    enum { N = 16 };
    float mu[N], raw[N], lv[N];
    fill_uniform(&r, mu, N, -2, 2);
    fill_uniform(&r, raw, N, -3, 3);
    for (int i = 0; i < N; i++) lv[i] = (float)(2 * log(fz_sigma(FZ_SIGMA_SOFTPLUS, raw[i])));
    double a = fz_kl_softplus(mu, raw, 4, 4, FZ_RED_MEAN_BATCH, 0, 1, NULL, NULL);
    double b = fz_kl_logvar(mu, lv, 4, 4, FZ_RED_MEAN_BATCH, 0, 1, NULL, NULL);
    CHECK_NEAR(a, b, 1e-5 * fabs(b));
    /* softplus underflow: sigma is floored at 1e-8, KL stays finite (about -log 1e-8) */
    float neg = -200;
    double kfloor = fz_kl_softplus(&zero, &neg, 1, 1, FZ_RED_SUM, 0, 1, NULL, NULL);
    CHECK_NEAR(kfloor, 0.5 * (1e-16 - 1) - log(1e-8), 1e-9);
}

static void test_kl_grad(void)
{
    enum { B = 3, Z = 4 };
    fz_rng r;
    fz_rng_seed(&r, 13);
    float mu[B * Z], s[B * Z];
    fill_uniform(&r, mu, B * Z, -2, 2);
    fill_uniform(&r, s, B * Z, -3, 2);
    double mud[B * Z], sd[B * Z];
    to_double(mu, mud, B * Z);
    to_double(s, sd, B * Z);
    for (int k = 0; k < 4; k++) {
        fz_reduction red = all_red[k];
        char what[64];
        float dmu[B * Z] = {0}, ds[B * Z] = {0};
        double v = fz_kl_logvar(mu, s, B, Z, red, 2, 0.3f, dmu, ds);
        ref_ctx c0 = {.other = sd, .B = B, .D = Z, .L = 2, .red = red, .variant = 0};
        ref_ctx c1 = {.other = mud, .B = B, .D = Z, .L = 2, .red = red, .variant = 1};
        CHECK_NEAR(v, ref_kl_logvar(mud, &c0), 1e-12 * fabs(v));
        snprintf(what, sizeof what, "kl_logvar/mu/%s", fz_reduction_name(red));
        check_grad(what, ref_kl_logvar, mud, B * Z, &c0, dmu, 0.3);
        snprintf(what, sizeof what, "kl_logvar/lv/%s", fz_reduction_name(red));
        check_grad(what, ref_kl_logvar, sd, B * Z, &c1, ds, 0.3);

        float dmu2[B * Z] = {0}, draw[B * Z] = {0};
        v = fz_kl_softplus(mu, s, B, Z, red, 2, 0.3f, dmu2, draw);
        CHECK_NEAR(v, ref_kl_softplus(mud, &c0), 1e-9 * fabs(v));
        snprintf(what, sizeof what, "kl_softplus/mu/%s", fz_reduction_name(red));
        check_grad(what, ref_kl_softplus, mud, B * Z, &c0, dmu2, 0.3);
        snprintf(what, sizeof what, "kl_softplus/raw/%s", fz_reduction_name(red));
        check_grad(what, ref_kl_softplus, sd, B * Z, &c1, draw, 0.3);
    }
}

/* ---- Masked squared error --------------------------------------------------------------- */

static double ref_masked(const double *m, const void *vctx)
{
    const ref_ctx *c = vctx;
    double total = 0;
    size_t active = 0;
    for (size_t b = 0; b < c->B; b++) {
        int any = 0;
        for (size_t k = 0; k < c->D; k++) {
            size_t i = b * c->D + k;
            double d = c->other[i] - m[i];
            total += c->third[i] * d * d;
            if (c->third[i] != 0) any = 1;
        }
        active += any;
    }
    size_t N = c->variant ? active : c->B;
    return N ? total / (double)N : 0;
}

static void test_masked(void)
{
    /* 3 rows of K = 2; row 1 fully masked out (e.g. an unlabelled sample, NaN target) */
    float m[6] = {0.2f, 0.8f, 0.5f, 0.5f, 0.9f, 0.1f};
    float t[6] = {0, 1, NAN, NAN, 1, 0};
    float mask[6] = {1, 1, 0, 0, 1, 0.5f};
    double sq = 0.04 + 0.04 + 0.01 + 0.5 * 0.01;
    CHECK_NEAR(fz_masked_sqerr(m, t, mask, 3, 2, FZ_MASK_PER_BATCH, 1, NULL), sq / 3, 1e-7);
    CHECK_NEAR(fz_masked_sqerr(m, t, mask, 3, 2, FZ_MASK_PER_ACTIVE, 1, NULL), sq / 2, 1e-7);
    float g[6] = {0};
    fz_masked_sqerr(m, t, mask, 3, 2, FZ_MASK_PER_ACTIVE, 2, g);
    CHECK_NEAR(g[0], 2 * -2 * (0 - 0.2) / 2, 1e-6);
    CHECK_NEAR(g[2], 0, 0);
    CHECK_NEAR(g[3], 0, 0);
    CHECK_NEAR(g[5], 2 * -2 * 0.5 * (0 - 0.1) / 2, 1e-6);
    /* nothing labelled: 0 and no gradient */
    float none[6] = {0}, g0[6] = {0};
    CHECK_NEAR(fz_masked_sqerr(m, t, none, 3, 2, FZ_MASK_PER_ACTIVE, 1, g0), 0, 0);
    CHECK_NEAR(fz_masked_sqerr(m, t, none, 3, 2, FZ_MASK_PER_BATCH, 1, g0), 0, 0);
    for (int i = 0; i < 6; i++) CHECK_NEAR(g0[i], 0, 0);

    enum { B = 5, K = 4 };
    fz_rng r;
    fz_rng_seed(&r, 14);
    float ms[B * K], ts[B * K], mk[B * K];
    fill_uniform(&r, ms, B * K, 0, 1);
    fill_uniform(&r, ts, B * K, 0, 1);
    for (int i = 0; i < B * K; i++) mk[i] = (float)(fz_rng_below(&r, 3) / 2.0); /* 0, .5, 1 */
    for (int k = 0; k < K; k++) mk[2 * K + k] = 0; /* one inactive row */
    double md[B * K], td[B * K], mkd[B * K];
    to_double(ms, md, B * K);
    to_double(ts, td, B * K);
    to_double(mk, mkd, B * K);
    for (int v = 0; v < 2; v++) {
        ref_ctx c = {.other = td, .third = mkd, .B = B, .D = K, .variant = v};
        float gr[B * K] = {0};
        double val = fz_masked_sqerr(ms, ts, mk, B, K, v ? FZ_MASK_PER_ACTIVE : FZ_MASK_PER_BATCH,
                                     0.5f, gr);
        CHECK_NEAR(val, ref_masked(md, &c), 1e-12);
        check_grad(v ? "masked/active" : "masked/batch", ref_masked, md, B * K, &c, gr, 0.5);
    }
}

/* ---- Reparameterised sampling ----------------------------------------------------------- */

static double ref_sigma(int kind, double s)
{
    return kind == FZ_SIGMA_SOFTPLUS ? ref_softplus(s) + 1e-8 : exp(s / 2);
}

/* L = sum_i c_i * z_i with z = mu + sigma(s) * eps; x = mu (variant 0 or 2) or s (1 or 3);
 * variants 2 and 3 use the softplus sigma.  other = the fixed operand, third = eps, and the
 * weights c live after eps in third[n..2n). */
static double ref_reparam(const double *x, const void *vctx)
{
    const ref_ctx *c = vctx;
    size_t n = c->B * c->D;
    int kind = c->variant >= 2 ? FZ_SIGMA_SOFTPLUS : FZ_SIGMA_LOGVAR;
    int wrt_s = c->variant & 1;
    double L = 0;
    for (size_t i = 0; i < n; i++) {
        double mu = wrt_s ? c->other[i] : x[i];
        double s = wrt_s ? x[i] : c->other[i];
        L += c->third[n + i] * (mu + ref_sigma(kind, s) * c->third[i]);
    }
    return L;
}

static void test_reparam(void)
{
    enum { N = 12 };
    fz_rng r;
    fz_rng_seed(&r, 15);
    float mu[N], s[N], eps[N], z[N], sig[N], dz[N];
    fill_uniform(&r, mu, N, -2, 2);
    fill_uniform(&r, s, N, -3, 2);
    fill_uniform(&r, dz, N, -1, 1);
    for (int i = 0; i < N; i++) eps[i] = (float)fz_rng_normal(&r);

    for (int kind = 0; kind < 2; kind++) {
        fz_sigma_kind k = kind ? FZ_SIGMA_SOFTPLUS : FZ_SIGMA_LOGVAR;
        /* given noise: z = mu + sigma * eps */
        fz_reparam(k, FZ_NOISE_GIVEN, mu, s, N, eps, NULL, z, sig);
        for (int i = 0; i < N; i++) {
            double sg = ref_sigma(k, s[i]);
            CHECK_NEAR(sig[i], sg, 1e-6 * sg);
            CHECK_NEAR(z[i], mu[i] + sg * eps[i], 1e-6 * (fabs(mu[i]) + sg * fabs(eps[i])));
        }
        /* mean mode */
        fz_reparam(k, FZ_NOISE_NONE, mu, s, N, NULL, NULL, z, NULL);
        for (int i = 0; i < N; i++) CHECK_NEAR(z[i], mu[i], 0);

        /* backward against central differences of the double reference */
        double mud[N], sd[N], third[2 * N];
        to_double(mu, mud, N);
        to_double(s, sd, N);
        to_double(eps, third, N);
        to_double(dz, third + N, N);
        float dmu[N] = {0}, ds[N] = {0};
        fz_reparam_backward(k, s, eps, dz, N, dmu, ds);
        ref_ctx c0 = {.other = sd, .third = third, .B = 1, .D = N, .variant = 2 * kind};
        ref_ctx c1 = {.other = mud, .third = third, .B = 1, .D = N, .variant = 2 * kind + 1};
        check_grad(kind ? "reparam/softplus/mu" : "reparam/logvar/mu", ref_reparam, mud, N, &c0,
                   dmu, 1);
        check_grad(kind ? "reparam/softplus/s" : "reparam/logvar/s", ref_reparam, sd, N, &c1,
                   ds, 1);
        /* mean mode backward: only mu gets a gradient; both accumulate */
        float dmu2[N], ds2[N];
        for (int i = 0; i < N; i++) dmu2[i] = 1, ds2[i] = 1;
        fz_reparam_backward(k, s, NULL, dz, N, dmu2, ds2);
        for (int i = 0; i < N; i++) {
            CHECK_NEAR(dmu2[i], 1 + dz[i], 1e-7);
            CHECK_NEAR(ds2[i], 1, 0);
        }
    }

    /* drawn noise: reproducible for a seed, recorded in eps, equal to the rng's normals */
    float e1[N], e2[N], z1[N], z2[N];
    fz_rng a, b, ref;
    fz_rng_seed(&a, 99);
    fz_rng_seed(&b, 99);
    fz_rng_seed(&ref, 99);
    fz_reparam(FZ_SIGMA_LOGVAR, FZ_NOISE_DRAW, mu, s, N, e1, &a, z1, NULL);
    fz_reparam(FZ_SIGMA_LOGVAR, FZ_NOISE_DRAW, mu, s, N, e2, &b, z2, NULL);
    CHECK(memcmp(z1, z2, sizeof z1) == 0);
    CHECK(memcmp(e1, e2, sizeof e1) == 0);
    for (int i = 0; i < N; i++) {
        CHECK_NEAR(e1[i], (float)fz_rng_normal(&ref), 0);
        CHECK_NEAR(z1[i], mu[i] + exp(0.5 * s[i]) * e1[i], 1e-5);
    }
    fz_reparam(FZ_SIGMA_LOGVAR, FZ_NOISE_DRAW, mu, s, N, e2, &b, z2, NULL);
    CHECK(memcmp(e1, e2, sizeof e1) != 0); /* the stream moves on */

    /* softplus threshold: above 20 it is the identity, gradient 1 */
    CHECK_NEAR(fz_sigma(FZ_SIGMA_SOFTPLUS, 25), 25 + 1e-8, 1e-12);
    CHECK_NEAR(fz_sigma_grad(FZ_SIGMA_SOFTPLUS, 25), 1, 0);
    CHECK_NEAR(fz_sigma_grad(FZ_SIGMA_SOFTPLUS, 0), 0.5, 1e-15);
    CHECK_NEAR(fz_sigma(FZ_SIGMA_LOGVAR, 0), 1, 0);
    CHECK_NEAR(fz_sigma_grad(FZ_SIGMA_LOGVAR, 0), 0.5, 0);
}

/* Large batches: the losses are summed in pieces of 32,768 elements, over two threads from
 * 65,536 on. The value must have the same bits on one and on two threads, the gradient the
 * same bits as well, and both must match a plain double loop (a piece lost or counted twice
 * is off by thousands). */
/* BCE over targets that are mostly background (blocks of 16 zeros, as the borders of
 * images), whose blocks skip log p: the sum equals the reference in double, a p of 0 on the
 * background costs nothing, and a p below 0 or NaN there still gives NaN. */
static void test_bce_background(void)
{
    fz_rng r;
    fz_rng_seed(&r, 12);
    size_t B = 9, D = 784, n = B * D;
    float *p = malloc(n * sizeof *p), *t = malloc(n * sizeof *t);
    fill_uniform(&r, p, n, 0.01, 0.99);
    for (size_t i = 0; i < n; i++) /* stroke pixels in a band, zeros elsewhere */
        t[i] = (i % D) >= 300 && (i % D) < 420 ? (float)fz_rng_uniform(&r) : 0.0f;
    double v = fz_bce(p, t, B, D, FZ_RED_SUM, 0, 1.0f, NULL), ref = 0;
    for (size_t i = 0; i < n; i++) ref -= t[i] * log(p[i]) + (1 - t[i]) * log(1 - (double)p[i]);
    CHECK_MSG(fabs(v - ref) <= 1e-6 * fabs(ref), "background BCE %.10g vs reference %.10g", v, ref);
    /* p = 0 in a background block: log p would be clamped to -100 and multiplied by 0;
     * the element's term -log(1 - p) becomes 0 */
    double old5 = p[5];
    p[5] = 0.0f;
    double v0 = fz_bce(p, t, B, D, FZ_RED_SUM, 0, 1.0f, NULL);
    CHECK_MSG(fabs(v0 - (v + log(1 - old5))) <= 1e-6 * fabs(v), "p = 0 on background: %.10g vs %.10g",
              v0, v + log(1 - old5));
    p[5] = -0.25f;
    CHECK(isnan(fz_bce(p, t, B, D, FZ_RED_SUM, 0, 1.0f, NULL)));
    p[5] = NAN;
    CHECK(isnan(fz_bce(p, t, B, D, FZ_RED_SUM, 0, 1.0f, NULL)));
    free(p);
    free(t);
}

static void test_pieces(void)
{
    fz_rng r;
    fz_rng_seed(&r, 11);
    size_t B = 127, D = 784, n = B * D; /* 99,568: three whole pieces and a part */
    float *p = malloc(n * sizeof *p), *t = malloc(n * sizeof *t);
    float *g[2] = {malloc(n * sizeof(float)), malloc(n * sizeof(float))};
    fill_uniform(&r, p, n, 0.01, 0.99);
    fill_uniform(&r, t, n, 0.0, 1.0);
    int prev = fz_blas_threads();
    for (int kind = 0; kind < 3; kind++) {
        double v[2];
        for (int k = 0; k < 2; k++) {
            fz_blas_set_threads(k + 1);
            for (size_t i = 0; i < n; i++) g[k][i] = 0.5f;
            v[k] = kind == 0   ? fz_bce(p, t, B, D, FZ_RED_SUM, 0, 1.0f, g[k])
                   : kind == 1 ? fz_sqerr(p, t, B, D, FZ_RED_MEAN, 0, 2.0f, g[k])
                               : fz_sqerr(p, NULL, B, D, FZ_RED_SUM, 0, 1.0f, g[k]);
        }
        double ref = 0;
        for (size_t i = 0; i < n; i++) {
            double pi = p[i], ti = t[i];
            if (kind == 0)
                ref -= ti * log(pi) + (1 - ti) * log(1 - pi);
            else
                ref += (pi - (kind == 1 ? ti : 0)) * (pi - (kind == 1 ? ti : 0));
        }
        if (kind == 1) ref /= (double)n;
        CHECK_MSG(memcmp(&v[0], &v[1], sizeof v[0]) == 0, "kind %d: %.17g vs %.17g", kind, v[0],
                  v[1]);
        CHECK_MSG(fabs(v[0] - ref) <= 1e-6 * fabs(ref), "kind %d: %.10g vs reference %.10g",
                  kind, v[0], ref);
        CHECK_MSG(memcmp(g[0], g[1], n * sizeof(float)) == 0, "kind %d: gradients differ", kind);
        /* the gradient of every element was added once: p - t scaled, around 0.5 */
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            double d = (double)p[i] - (kind == 2 ? 0 : t[i]);
            double want = kind == 0   ? 0.5 + d / (p[i] * (1.0 - p[i]))
                          : kind == 1 ? 0.5 + 2.0 * 2.0 * d / (double)n
                                      : 0.5 + 2.0 * d;
            if (!(fabs(g[0][i] - want) <= 1e-4 * (1 + fabs(want)))) off++;
        }
        CHECK_MSG(off == 0, "kind %d: %zu gradients off", kind, off);
    }
    CHECK(fz_threads_started() >= 1);
    fz_blas_set_threads(prev);
    free(p);
    free(t);
    free(g[0]);
    free(g[1]);
}

/* The float log inside the BCE against double precision: -log p for 200,000 p spread
 * geometrically over [1e-37, 1) and 100,000 just below 1 (targets 1, one element: the loss
 * is the float log itself), within 2 ulp; 1 - p for targets 0 the same way. */
static void test_bce_log_accuracy(void)
{
    float one = 1.0f, zero = 0.0f;
    double worst = 0;
    for (int i = 0; i < 300000; i++) {
        float p = i < 200000 ? (float)pow(10.0, -37.0 + 37.0 * i / 200000.0)
                             : 1.0f - (float)(i - 199999) * 5.9604645e-8f;
        if (!(p > 0.0f && p < 1.0f)) continue;
        double want = -log((double)p);
        double got = fz_bce(&p, &one, 1, 1, FZ_RED_SUM, 0, 1, NULL);
        /* the float result's error in its own ulps (FLT_EPSILON relative) */
        if (want > 1e-30) worst = fmax(worst, fabs(got - want) / want / FLT_EPSILON);
        float q = 1.0f - p;
        double want0 = -log((double)(1.0f - q));
        double got0 = fz_bce(&q, &zero, 1, 1, FZ_RED_SUM, 0, 1, NULL);
        if (want0 > 1e-30 && -log((double)p) < 100)
            worst = fmax(worst, fabs(got0 - want0) / want0 / FLT_EPSILON);
    }
    CHECK_MSG(worst <= 2.0, "the BCE's log within %.2f ulp", worst);
}

int main(void)
{
    test_reductions();
    test_bce_known();
    test_bce_grad();
    test_sqerr();
    test_kl_known();
    test_kl_grad();
    test_masked();
    test_reparam();
    test_pieces();
    test_bce_background();
    test_bce_log_accuracy();
    return check_report("test_loss");
}
