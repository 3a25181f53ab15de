/* test_fuzzy - the fuzzy layer: the float forward of every membership form against a
 * double-precision reference written from the documented layout, backward (wrt x and every
 * parameter, through the Nadaraya-Watson head) against central differences of that
 * reference, known values, masks, freezing, pruning, the eigen-decomposition, the domains
 * at a level, and the initialisations. */
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "fuzzy.h"
#include "optim.h"

/* ---- the double-precision reference ------------------------------------------------------ */

typedef struct spec {
    fz_mf_kind kind;
    int K, n, nout;
    const unsigned char *im, *act; /* (K, n), (K) */
} spec;

/* m (B, K) and, when s->nout > 0 and y != NULL, y (B, nout) from x (B, n) with the
 * parameter slice p in the layout fuzzy.h documents. */
static void ref_forward(const spec *s, const double *p, const double *x, int B, double *m,
                        double *y)
{
    int K = s->K, n = s->n;
    size_t L = (size_t)n * (n - 1) / 2;
    const double *S = p, *t = p + (size_t)K * n * n, *c = p, *sc = p + (size_t)K * n;
    const double *lo = sc + (size_t)K * n, *braw = lo + (size_t)K * L, *w;
    if (s->kind == FZ_MF_ARTICLE) w = t + (size_t)K * n;
    else w = braw + (s->kind == FZ_MF_BELL ? K : 0);
    double *A = malloc((size_t)n * n * sizeof *A), *d = malloc((size_t)n * sizeof *d);
    for (int b = 0; b < B; b++) {
        const double *xb = x + (size_t)b * n;
        for (int j = 0; j < K; j++) {
            const unsigned char *im = s->im + (size_t)j * n;
            double r2 = 0, mv;
            if (!s->act[j]) {
                m[(size_t)b * K + j] = 0;
                continue;
            }
            if (s->kind == FZ_MF_ARTICLE) {
                for (int i = 0; i < n; i++) {
                    if (!im[i]) continue;
                    double u = t[(size_t)j * n + i];
                    for (int k = 0; k < n; k++)
                        if (im[k]) u += S[((size_t)j * n + i) * n + k] * xb[k];
                    r2 += u * u;
                }
                mv = exp(-sqrt(r2));
            } else {
                for (int i = 0; i < n; i++)
                    for (int k = 0; k < n; k++) {
                        double v = 0;
                        if (k == i) v = fabs(sc[(size_t)j * n + i]) + 1e-7;
                        else if (k < i) v = lo[(size_t)j * L + (size_t)i * (i - 1) / 2 + k];
                        A[(size_t)i * n + k] = v;
                    }
                for (int i = 0; i < n; i++) d[i] = im[i] ? xb[i] - c[(size_t)j * n + i] : 0;
                for (int i = 0; i < n; i++) {
                    if (!im[i]) continue;
                    double u = 0;
                    for (int k = 0; k < n; k++) u += A[(size_t)i * n + k] * d[k];
                    r2 += u * u;
                }
                if (s->kind == FZ_MF_GAUSS) mv = exp(-r2);
                else if (s->kind == FZ_MF_CAUCHY) mv = 1 / (1 + r2);
                else mv = 1 / (1 + pow(r2 + 1e-6, log1p(exp(braw[j])) + 1e-6));
            }
            m[(size_t)b * K + j] = mv;
        }
        if (s->nout > 0 && y) {
            double den = 0;
            for (int j = 0; j < K; j++) den += m[(size_t)b * K + j];
            for (int o = 0; o < s->nout; o++) {
                double a = 0;
                for (int j = 0; j < K; j++) a += m[(size_t)b * K + j] * w[(size_t)j * s->nout + o];
                y[(size_t)b * s->nout + o] = a / (den + 1e-12);
            }
        }
    }
    free(A);
    free(d);
}

/* Loss = sum R m + sum Q y. */
static double ref_loss(const spec *s, const double *p, const double *x, int B, const double *R,
                       const double *Q)
{
    double *m = malloc((size_t)B * s->K * sizeof *m);
    double *y = malloc(((size_t)B * (s->nout ? s->nout : 1)) * sizeof *y);
    ref_forward(s, p, x, B, m, y);
    double L = 0;
    for (int i = 0; i < B * s->K; i++) L += R[i] * m[i];
    for (int i = 0; s->nout && i < B * s->nout; i++) L += Q[i] * y[i];
    free(m);
    free(y);
    return L;
}

/* ---- helpers ------------------------------------------------------------------------------- */

static float rnd(fz_rng *r, double sd) { return (float)(sd * fz_rng_normal(r)); }

/* Fill the bound parameters with values that keep memberships well away from 0. */
static void random_params(fz_fuzzy *F, fz_rng *r)
{
    int K = F->K, n = F->n;
    if (F->kind == FZ_MF_ARTICLE) {
        for (int j = 0; j < K; j++)
            for (int i = 0; i < n; i++) {
                for (int k = 0; k < n; k++)
                    F->S[((size_t)j * n + i) * n + k] = (i == k ? 0.8f : 0.0f) + rnd(r, 0.3);
                F->t[(size_t)j * n + i] = rnd(r, 0.5);
            }
    } else {
        for (int i = 0; i < K * n; i++) {
            F->centers[i] = rnd(r, 0.5);
            float v = 0.5f + 0.5f * (float)fz_rng_uniform(r);
            F->scales[i] = fz_rng_uniform(r) < 0.3 ? -v : v; /* |s|: both signs */
        }
        for (size_t i = 0; i < (size_t)K * n * (n - 1) / 2; i++) F->lower[i] = rnd(r, 0.3);
        if (F->kind == FZ_MF_BELL)
            for (int j = 0; j < K; j++) F->b_raw[j] = rnd(r, 0.7);
    }
    for (int i = 0; i < K * F->nout; i++) F->conseq[i] = rnd(r, 1.0);
}

typedef struct setup {
    fz_fuzzy F;
    float *p, *g;
    size_t np;
} setup;

static void make(setup *s, fz_mf_kind kind, int K, int n, int nout, int max_batch)
{
    fz_err err;
    memset(s, 0, sizeof *s);
    CHECK(fz_fuzzy_init(&s->F, kind, K, n, nout, &err) == 0);
    s->np = fz_fuzzy_nparams(&s->F);
    s->p = calloc(s->np, sizeof(float));
    s->g = calloc(s->np, sizeof(float));
    fz_fuzzy_bind(&s->F, s->p, s->g);
    CHECK(fz_fuzzy_reserve(&s->F, max_batch, &err) == 0);
}

static void unmake(setup *s)
{
    fz_fuzzy_free(&s->F);
    free(s->p);
    free(s->g);
}

/* ---- gradient check ---------------------------------------------------------------------- */

/* Every form, with and without masks: forward against the reference, and the analytic
 * gradients of Loss = sum R m + sum Q y wrt every parameter and x against central
 * differences of the reference. */
static void grad_check(fz_mf_kind kind, int masked, uint64_t seed)
{
    const int K = 4, n = 3, nout = 2, B = 5;
    setup s;
    make(&s, kind, K, n, nout, B);
    fz_fuzzy *F = &s.F;
    fz_rng r;
    fz_rng_seed(&r, seed);
    random_params(F, &r);
    if (masked) {
        F->input_mask[1 * n + 0] = 0; /* term 1 ignores dim 0 */
        F->input_mask[3 * n + 2] = 0; /* term 3 ignores dim 2 */
        F->active[2] = 0;
    }
    float x[5 * 3], m[5 * 4], y[5 * 2], dm[5 * 4], dx[5 * 3], Qf[5 * 2];
    double xd[5 * 3], R[5 * 4], Q[5 * 2], md[5 * 4], yd[5 * 2];
    for (int i = 0; i < B * n; i++) xd[i] = x[i] = rnd(&r, 0.6);
    for (int i = 0; i < B * K; i++) R[i] = dm[i] = rnd(&r, 1.0);
    for (int i = 0; i < B * nout; i++) Q[i] = Qf[i] = rnd(&r, 1.0);
    double *pd = malloc(s.np * sizeof *pd);
    for (size_t i = 0; i < s.np; i++) pd[i] = s.p[i];
    spec sp = {kind, K, n, nout, F->input_mask, F->active};

    fz_fuzzy_forward(F, x, m, B);
    fz_fuzzy_nw_forward(F, m, y, B);
    ref_forward(&sp, pd, xd, B, md, yd);
    double em = 0, ey = 0;
    for (int i = 0; i < B * K; i++) em = fmax(em, fabs(m[i] - md[i]));
    for (int i = 0; i < B * nout; i++) ey = fmax(ey, fabs(y[i] - yd[i]));
    CHECK_MSG(em < 2e-6, "%s masked=%d: forward off by %g", fz_mf_kind_name(kind), masked, em);
    CHECK_MSG(ey < 1e-5, "%s masked=%d: NW head off by %g", fz_mf_kind_name(kind), masked, ey);

    fz_zero(s.g, s.np);
    fz_fuzzy_nw_backward(F, m, Qf, dm, B);
    fz_fuzzy_backward(F, x, m, dm, dx, B);

    const double h = 1e-6;
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < s.np; i++) {
        double keep = pd[i];
        pd[i] = keep + h;
        double lp = ref_loss(&sp, pd, xd, B, R, Q);
        pd[i] = keep - h;
        double lm = ref_loss(&sp, pd, xd, B, R, Q);
        pd[i] = keep;
        double num = (lp - lm) / (2 * h), e = fabs(num - s.g[i]);
        worst = fmax(worst, e / (1 + fabs(num)));
        if (e > 1e-5 * (1 + fabs(num))) {
            if (bad++ < 5)
                fprintf(stderr, "%s masked=%d: param %zu: analytic %.8g, numeric %.8g\n",
                        fz_mf_kind_name(kind), masked, i, s.g[i], num);
        }
        /* parameters without influence get exactly nothing */
        if (num == 0) CHECK_MSG(s.g[i] == 0, "param %zu: grad %g, expected 0", i, s.g[i]);
    }
    for (int i = 0; i < B * n; i++) {
        double keep = xd[i];
        xd[i] = keep + h;
        double lp = ref_loss(&sp, pd, xd, B, R, Q);
        xd[i] = keep - h;
        double lm = ref_loss(&sp, pd, xd, B, R, Q);
        xd[i] = keep;
        double num = (lp - lm) / (2 * h), e = fabs(num - dx[i]);
        worst = fmax(worst, e / (1 + fabs(num)));
        if (e > 1e-5 * (1 + fabs(num))) {
            if (bad++ < 5)
                fprintf(stderr, "%s masked=%d: dx %d: analytic %.8g, numeric %.8g\n",
                        fz_mf_kind_name(kind), masked, i, dx[i], num);
        }
    }
    CHECK_MSG(bad == 0, "%s masked=%d: %d gradients off (worst rel %g)", fz_mf_kind_name(kind),
              masked, bad, worst);

    if (masked) {
        /* the inactive term: zero output, zero gradient in every tensor */
        fz_fuzzy_tensor t[FZ_FUZZY_MAX_TENSORS];
        int nt = fz_fuzzy_tensors(F, t);
        for (int b = 0; b < B; b++) CHECK(m[b * K + 2] == 0);
        for (int k = 0; k < nt; k++) {
            size_t rs = t[k].count / K;
            for (size_t i = 0; i < rs; i++)
                CHECK_MSG(s.g[t[k].offset + 2 * rs + i] == 0, "%s: %s grad of inactive term",
                          fz_mf_kind_name(kind), t[k].name);
        }
    }
    free(pd);
    unmake(&s);
}

/* ---- known values ------------------------------------------------------------------------- */

static void test_known_values(void)
{
    const int n = 2;
    float x[2];
    double m[1], r2[1];
    for (int kind = FZ_MF_GAUSS; kind <= FZ_MF_BELL; kind++) {
        setup s;
        make(&s, (fz_mf_kind)kind, 1, n, 0, 4);
        float c[2] = {0.3f, -1.2f};
        fz_fuzzy_init_centers(&s.F, c);
        float mf[1];
        fz_fuzzy_forward(&s.F, c, mf, 1);
        fz_fuzzy_point(&s.F, c, r2, m);
        CHECK_NEAR(r2[0], 0, 1e-12);
        if (kind != FZ_MF_BELL) {
            CHECK(mf[0] == 1.0f); /* membership 1 at the centre */
            CHECK_NEAR(m[0], 1, 1e-12);
        } else {
            CHECK_NEAR(mf[0], 1, 2e-6); /* 1/(1 + 1e-6^b), b = 1 at init */
            CHECK_NEAR(fz_fuzzy_bell_b(&s.F, 0), 1, 1e-7);
        }
        /* A = I sqrt(0.5), x - c = unit vector: r² = 0.5 */
        s.F.scales[0] = s.F.scales[1] = (float)sqrt(0.5);
        x[0] = c[0] + 1.0f;
        x[1] = c[1];
        fz_fuzzy_forward(&s.F, x, mf, 1);
        fz_fuzzy_point(&s.F, x, r2, m);
        CHECK_NEAR(r2[0], 0.5, 1e-6);
        double want = kind == FZ_MF_GAUSS ? exp(-0.5) : kind == FZ_MF_CAUCHY ? 2.0 / 3.0 : 0;
        if (kind == FZ_MF_BELL) {
            s.F.b_raw[0] = (float)log(expm1(2.0)); /* b = 2: 1 / (1 + 0.5²) */
            fz_fuzzy_forward(&s.F, x, mf, 1);
            fz_fuzzy_point(&s.F, x, r2, m);
            want = 0.8;
        }
        CHECK_NEAR(mf[0], want, 2e-6);
        CHECK_NEAR(m[0], want, 1e-6);
        /* the off-diagonal part counts: A = [[1,0],[1,1]], d = (0,1) -> u = (0,1); d = (1,0)
         * -> u = (1,1), r² = 2 */
        s.F.scales[0] = s.F.scales[1] = 1;
        s.F.lower[0] = 1;
        fz_fuzzy_point(&s.F, x, r2, m);
        CHECK_NEAR(r2[0], 2, 1e-5);
        unmake(&s);
    }
    /* article: S = 2I, t = -2c: ||S(x-c)|| = 0.5 at x - c = 0.25 e_0 */
    setup s;
    make(&s, FZ_MF_ARTICLE, 1, n, 0, 4);
    float c[2] = {0.5f, 0.25f}, mf[1];
    fz_fuzzy_init_centers(&s.F, c);
    CHECK(s.F.S[0] == 1 && s.F.S[1] == 0 && s.F.S[3] == 1 && s.F.t[0] == -0.5f);
    fz_fuzzy_forward(&s.F, c, mf, 1);
    CHECK(mf[0] == 1.0f);
    s.F.S[0] = s.F.S[3] = 2;
    s.F.t[0] = -1.0f;
    s.F.t[1] = -0.5f;
    x[0] = 0.75f;
    x[1] = 0.25f;
    fz_fuzzy_forward(&s.F, x, mf, 1);
    fz_fuzzy_point(&s.F, x, r2, m);
    CHECK_NEAR(mf[0], exp(-0.5), 1e-6); /* the norm, not its square */
    CHECK_NEAR(m[0], exp(-0.5), 1e-12);
    CHECK_NEAR(r2[0], 0.25, 1e-12);
    unmake(&s);
}

/* ---- layout, names -------------------------------------------------------------------------- */

static void test_layout(void)
{
    fz_err err;
    fz_fuzzy F;
    fz_fuzzy_tensor t[FZ_FUZZY_MAX_TENSORS];
    CHECK(fz_fuzzy_init(&F, FZ_MF_BELL, 5, 4, 3, &err) == 0);
    int nt = fz_fuzzy_tensors(&F, t);
    CHECK_EQ_INT(nt, 5);
    CHECK_STR(t[0].name, "fuzzy.centers");
    CHECK_STR(t[1].name, "fuzzy.scales");
    CHECK_STR(t[2].name, "fuzzy.lower");
    CHECK_STR(t[3].name, "fuzzy.b_raw");
    CHECK_STR(t[4].name, "fuzzy.consequents");
    CHECK_EQ_INT(t[2].offset, 40);
    CHECK_EQ_INT(t[2].shape[1], 6);
    CHECK_EQ_INT(t[3].ndim, 1);
    CHECK_EQ_INT(t[3].offset, 70);
    CHECK_EQ_INT(t[4].offset, 75);
    CHECK_EQ_INT(fz_fuzzy_nparams(&F), 75 + 15);
    fz_fuzzy_free(&F);
    CHECK(fz_fuzzy_init(&F, FZ_MF_GAUSS, 5, 4, 0, &err) == 0);
    CHECK_EQ_INT(fz_fuzzy_tensors(&F, t), 3);
    CHECK_EQ_INT(fz_fuzzy_nparams(&F), 20 + 20 + 30);
    fz_fuzzy_free(&F);
    CHECK(fz_fuzzy_init(&F, FZ_MF_ARTICLE, 5, 4, 2, &err) == 0);
    nt = fz_fuzzy_tensors(&F, t);
    CHECK_EQ_INT(nt, 3);
    CHECK_STR(t[0].name, "fuzzy.S");
    CHECK(t[0].ndim == 3 && t[0].shape[0] == 5 && t[0].shape[1] == 4 && t[0].shape[2] == 4);
    CHECK_STR(t[1].name, "fuzzy.t");
    CHECK_EQ_INT(t[1].offset, 80);
    CHECK_EQ_INT(fz_fuzzy_nparams(&F), 80 + 20 + 10);
    fz_fuzzy_free(&F);
    /* n = 1: an empty lower part */
    CHECK(fz_fuzzy_init(&F, FZ_MF_CAUCHY, 3, 1, 0, &err) == 0);
    CHECK_EQ_INT(fz_fuzzy_nparams(&F), 6);
    fz_fuzzy_free(&F);

    CHECK(fz_fuzzy_init(&F, FZ_MF_GAUSS, 0, 4, 0, &err) == -1);
    CHECK_CONTAINS(err.msg, "0 terms");
    CHECK(fz_fuzzy_init(&F, FZ_MF_GAUSS, 4, FZ_FUZZY_MAX_N + 1, 0, &err) == -1);
    CHECK_CONTAINS(err.msg, "input dims");
    CHECK(fz_fuzzy_init(&F, FZ_MF_ARTICLE, FZ_FUZZY_MAX_K, FZ_FUZZY_MAX_N, 0, &err) == -1);
    CHECK_CONTAINS(err.msg, "parameters");
    CHECK(fz_fuzzy_init(&F, FZ_MF_GAUSS, 4, 2, -1, &err) == -1);

    fz_mf_kind k;
    CHECK(fz_mf_kind_parse("article", &k, &err) == 0 && k == FZ_MF_ARTICLE);
    CHECK(fz_mf_kind_parse("bell", &k, &err) == 0 && k == FZ_MF_BELL);
    CHECK(fz_mf_kind_parse("gaussian", &k, &err) == -1);
    CHECK_CONTAINS(err.msg, "gaussian");
    CHECK_STR(fz_mf_kind_name(FZ_MF_CAUCHY), "cauchy");
}

/* ---- masks ------------------------------------------------------------------------------------ */

static void test_masks(void)
{
    for (int kind = FZ_MF_GAUSS; kind <= FZ_MF_ARTICLE; kind++) {
        const int K = 3, n = 4, B = 3;
        setup s;
        make(&s, (fz_mf_kind)kind, K, n, 0, B);
        fz_rng r;
        fz_rng_seed(&r, 7 + kind);
        random_params(&s.F, &r);
        for (int j = 0; j < K; j++) s.F.input_mask[j * n + 3] = 0; /* dim 3 for everyone */
        s.F.input_mask[0 * n + 1] = 0;                              /* dim 1 for term 0 */
        float x[3 * 4], x2[3 * 4], m[3 * 3], m2[3 * 3], dm[3 * 3], dx[3 * 4];
        for (int i = 0; i < B * n; i++) x[i] = x2[i] = rnd(&r, 0.7);
        for (int b = 0; b < B; b++) {
            x2[b * n + 3] += 5.0f;
            x2[b * n + 1] += 0.5f;
        }
        fz_fuzzy_forward(&s.F, x, m, B);
        fz_fuzzy_forward(&s.F, x2, m2, B);
        for (int b = 0; b < B; b++) {
            CHECK(m[b * K + 0] == m2[b * K + 0]);      /* term 0 sees neither dim 1 nor 3 */
            CHECK(fabsf(m[b * K + 1] - m2[b * K + 1]) > 1e-4f); /* term 1 sees dim 1 */
        }
        for (int i = 0; i < B * K; i++) dm[i] = 1;
        fz_fuzzy_backward(&s.F, x, m, dm, dx, B);
        for (int b = 0; b < B; b++) CHECK(dx[b * n + 3] == 0);
        /* the reported geometry restricts to the term's dims */
        double A[16], M[16], ctr[4], semi[4];
        fz_err err;
        CHECK(fz_fuzzy_term(&s.F, 0, ctr, A, M, &err) == 0);
        for (int k = 0; k < n; k++) {
            CHECK(A[1 * n + k] == 0 && A[k * n + 1] == 0 && M[3 * n + k] == 0);
        }
        CHECK(fz_fuzzy_domain(&s.F, 0, 0.5, NULL, NULL, NULL, semi, &err) == 0);
        CHECK(isinf(semi[0]) && isinf(semi[1]) && isfinite(semi[2]) && isfinite(semi[3]));
        unmake(&s);
    }
}

/* ---- freezing ------------------------------------------------------------------------------- */

static void test_freeze(void)
{
    const int K = 3, n = 3, B = 4, nout = 2;
    for (int kind = FZ_MF_GAUSS; kind <= FZ_MF_ARTICLE; kind++) {
        setup s;
        make(&s, (fz_mf_kind)kind, K, n, nout, B);
        fz_fuzzy *F = &s.F;
        fz_rng r;
        fz_rng_seed(&r, 99);
        random_params(F, &r);
        float x[4 * 3], m[4 * 3], dm[4 * 3], y[4 * 2], dy[4 * 2];
        for (int i = 0; i < B * n; i++) x[i] = rnd(&r, 0.5);
        for (int i = 0; i < B * K; i++) dm[i] = 1;
        for (int i = 0; i < B * nout; i++) dy[i] = 1 + (float)i;
        F->freeze = FZ_FREEZE_CENTERS | FZ_FREEZE_LOWER | FZ_FREEZE_CONSEQ;
        fz_zero(s.g, s.np);
        fz_fuzzy_forward(F, x, m, B);
        fz_fuzzy_nw_forward(F, m, y, B);
        fz_fuzzy_nw_backward(F, m, dy, dm, B);
        fz_fuzzy_backward(F, x, m, dm, NULL, B);
        unsigned char *fr = malloc(s.np);
        fz_fuzzy_frozen(F, fr);
        /* frozen groups get no gradient and are marked; the others move */
        int diag_nz = 0;
        for (size_t i = 0; i < s.np; i++)
            if (fr[i]) CHECK_MSG(s.g[i] == 0, "kind %d param %zu frozen but grad %g", kind, i, s.g[i]);
        if (kind == FZ_MF_ARTICLE) {
            for (int j = 0; j < K; j++)
                for (int i = 0; i < n; i++)
                    for (int k = 0; k < n; k++) {
                        size_t o = ((size_t)j * n + i) * n + k;
                        CHECK_EQ_INT(fr[o], i != k);
                        if (i == k && s.g[o] != 0) diag_nz++;
                    }
            for (int i = 0; i < K * n; i++) CHECK(fr[K * n * n + i] == 1); /* t */
        } else {
            for (int i = 0; i < K * n; i++) {
                CHECK(fr[i] == 1 && fr[K * n + i] == 0);
                if (s.g[K * n + i] != 0) diag_nz++;
            }
            for (int i = 0; i < K * 3; i++) CHECK(fr[2 * K * n + i] == 1);
            if (kind == FZ_MF_BELL) {
                CHECK(fr[2 * K * n + 3 * K] == 0);
                CHECK(s.g[2 * K * n + 3 * K] != 0);
            }
        }
        CHECK_EQ_INT(diag_nz, K * n);
        for (int i = 0; i < K * nout; i++) CHECK(fr[s.np - K * nout + i] == 1);

        /* inactive terms and masked dims are marked even when no group is frozen */
        F->freeze = 0;
        F->active[1] = 0;
        F->input_mask[2 * n + 0] = 0;
        fz_fuzzy_frozen(F, fr);
        fz_fuzzy_tensor t[FZ_FUZZY_MAX_TENSORS];
        int nt = fz_fuzzy_tensors(F, t);
        for (int k = 0; k < nt; k++) {
            size_t rs = t[k].count / K;
            for (size_t i = 0; i < rs; i++) {
                CHECK(fr[t[k].offset + i] == 0);          /* term 0 is free */
                CHECK(fr[t[k].offset + rs + i] == 1);     /* term 1 inactive */
            }
        }
        if (kind == FZ_MF_ARTICLE) {
            /* term 2: row 0 and column 0 of S, t[0] */
            for (int i = 0; i < n; i++)
                for (int k = 0; k < n; k++)
                    CHECK_EQ_INT(fr[((size_t)2 * n + i) * n + k], i == 0 || k == 0);
            CHECK(fr[K * n * n + 2 * n] == 1 && fr[K * n * n + 2 * n + 1] == 0);
        } else {
            CHECK(fr[2 * n] == 1 && fr[2 * n + 1] == 0);                 /* centres */
            CHECK(fr[K * n + 2 * n] == 1 && fr[K * n + 2 * n + 2] == 0); /* scales */
            /* lower of term 2: (1,0) (2,0) touch dim 0, (2,1) does not */
            size_t lo = 2 * K * n + 2 * 3;
            CHECK(fr[lo] == 1 && fr[lo + 1] == 1 && fr[lo + 2] == 0);
        }

        /* an optimiser step with the mask leaves the frozen values where they were */
        F->freeze = FZ_FREEZE_SCALES;
        fz_fuzzy_frozen(F, fr);
        float *before = malloc(s.np * sizeof(float));
        memcpy(before, s.p, s.np * sizeof(float));
        for (size_t i = 0; i < s.np; i++) s.g[i] = 0.5f;
        fz_opt_conf oc = fz_opt_defaults(FZ_OPT_ADAMW);
        fz_optim o;
        fz_err err;
        CHECK(fz_optim_init(&o, &oc, s.np, &err) == 0);
        fz_optim_step(&o, s.p, s.g, fr, 0.01);
        int moved = 0;
        for (size_t i = 0; i < s.np; i++) {
            if (fr[i]) CHECK(s.p[i] == before[i]);
            else moved += s.p[i] != before[i];
        }
        CHECK(moved > 0);
        fz_optim_free(&o);
        free(before);
        free(fr);
        unmake(&s);
    }
}

/* ---- pruning ------------------------------------------------------------------------------- */

static void test_prune(void)
{
    for (int kind = FZ_MF_GAUSS; kind <= FZ_MF_ARTICLE; kind++) {
        const int K = 5, n = 3, B = 4, nout = 2;
        setup s;
        make(&s, (fz_mf_kind)kind, K, n, nout, B);
        fz_fuzzy *F = &s.F;
        fz_rng r;
        fz_rng_seed(&r, 5);
        random_params(F, &r);
        for (size_t i = 0; i < s.np; i++) s.g[i] = (float)i;
        F->input_mask[2 * n + 1] = 0;
        F->active[0] = F->active[3] = 0;
        float x[4 * 3], m[4 * 5], m2[4 * 3], y[4 * 2], y2[4 * 2];
        for (int i = 0; i < B * n; i++) x[i] = rnd(&r, 0.5);
        fz_fuzzy_forward(F, x, m, B);
        fz_fuzzy_nw_forward(F, m, y, B);
        fz_fuzzy_tensor told[FZ_FUZZY_MAX_TENSORS], tnew[FZ_FUZZY_MAX_TENSORS];
        int nt = fz_fuzzy_tensors(F, told);
        float *pold = malloc(s.np * sizeof(float)), *gold = malloc(s.np * sizeof(float));
        memcpy(pold, s.p, s.np * sizeof(float));
        memcpy(gold, s.g, s.np * sizeof(float));
        int idx[5];
        fz_err err;
        CHECK_EQ_INT(fz_fuzzy_prune(F, idx, &err), 3);
        CHECK_EQ_INT(F->K, 3);
        CHECK(idx[0] == 1 && idx[1] == 2 && idx[2] == 4);
        CHECK(fz_fuzzy_nparams(F) < s.np);
        fz_fuzzy_tensors(F, tnew);
        for (int t = 0; t < nt; t++) {
            size_t rs = told[t].count / K;
            CHECK_EQ_INT(tnew[t].count, rs * 3);
            for (int q = 0; q < 3; q++)
                for (size_t i = 0; i < rs; i++) {
                    CHECK(s.p[tnew[t].offset + q * rs + i] == pold[told[t].offset + idx[q] * rs + i]);
                    CHECK(s.g[tnew[t].offset + q * rs + i] == gold[told[t].offset + idx[q] * rs + i]);
                }
        }
        CHECK(F->active[0] && F->active[1] && F->active[2]);
        CHECK(F->input_mask[1 * n + 1] == 0 && F->input_mask[1 * n + 0] == 1);
        CHECK(F->input_mask[0 * n + 1] == 1 && F->input_mask[2 * n + 1] == 1);
        /* the same memberships and head output from the kept terms */
        fz_fuzzy_forward(F, x, m2, B);
        fz_fuzzy_nw_forward(F, m2, y2, B);
        for (int b = 0; b < B; b++) {
            for (int q = 0; q < 3; q++) CHECK(m2[b * 3 + q] == m[b * K + idx[q]]);
            for (int o = 0; o < nout; o++) CHECK_NEAR(y2[b * nout + o], y[b * nout + o], 1e-6);
        }
        /* nothing active: an error, the layer unchanged */
        memset(F->active, 0, 3);
        CHECK(fz_fuzzy_prune(F, NULL, &err) == -1);
        CHECK_CONTAINS(err.msg, "no active term");
        CHECK_EQ_INT(F->K, 3);
        free(pold);
        free(gold);
        unmake(&s);
    }
}

/* ---- eigen-decomposition and domains -------------------------------------------------------- */

static void test_eigen(void)
{
    fz_err err;
    double M2[4] = {2, 1, 1, 2}, lam[6], V[36];
    CHECK(fz_eigen_sym(2, M2, lam, V, &err) == 0);
    CHECK_NEAR(lam[0], 1, 1e-12);
    CHECK_NEAR(lam[1], 3, 1e-12);
    CHECK_NEAR(fabs(V[2]), sqrt(0.5), 1e-12); /* (1, 1)/sqrt 2 for 3 */
    CHECK_NEAR(V[2] * V[3], 0.5, 1e-12);

    /* M of a random term: reconstruct from the decomposition; orthonormal vectors */
    setup s;
    make(&s, FZ_MF_GAUSS, 2, 6, 0, 1);
    fz_rng r;
    fz_rng_seed(&r, 11);
    random_params(&s.F, &r);
    double A[36], M[36];
    CHECK(fz_fuzzy_term(&s.F, 1, NULL, A, M, &err) == 0);
    /* M = AᵀA with A lower triangular (from the parameters) */
    CHECK_NEAR(A[0 * 6 + 0], fabs(s.F.scales[6]) + 1e-7, 1e-12);
    CHECK_NEAR(A[2 * 6 + 1], s.F.lower[15 + 1 * 0 + 2], 0); /* term 1, row 2, col 1 */
    CHECK(A[1 * 6 + 2] == 0);
    CHECK(fz_eigen_sym(6, M, lam, V, &err) == 0);
    double worst = 0, orth = 0;
    for (int i = 0; i < 6; i++) {
        if (i) CHECK(lam[i - 1] <= lam[i]);
        CHECK(lam[i] > 0);
        for (int k = 0; k < 6; k++) {
            double rec = 0, dot = 0;
            for (int e = 0; e < 6; e++) {
                rec += lam[e] * V[e * 6 + i] * V[e * 6 + k];
                dot += V[i * 6 + e] * V[k * 6 + e];
            }
            worst = fmax(worst, fabs(rec - M[i * 6 + k]));
            orth = fmax(orth, fabs(dot - (i == k)));
        }
    }
    CHECK_MSG(worst < 1e-10, "reconstruction off by %g", worst);
    CHECK_MSG(orth < 1e-10, "eigenvectors not orthonormal by %g", orth);
    unmake(&s);
}

/* For every form: a point on each principal axis at the semi-axis length has membership
 * alpha; the centre has the largest membership. */
static void test_domains(void)
{
    const int n = 3;
    const double alphas[3] = {0.3, 0.75, 0.05};
    for (int kind = FZ_MF_GAUSS; kind <= FZ_MF_ARTICLE; kind++) {
        setup s;
        make(&s, (fz_mf_kind)kind, 2, n, 0, 1);
        fz_rng r;
        fz_rng_seed(&r, 21 + kind);
        random_params(&s.F, &r);
        if (kind == FZ_MF_BELL) s.F.b_raw[1] = 1.3f;
        fz_err err;
        for (int a = 0; a < 3; a++) {
            double alpha = alphas[a], c[3], lam[3], V[9], semi[3], mm[2], r2[2];
            CHECK(fz_fuzzy_domain(&s.F, 1, alpha, c, lam, V, semi, &err) == 0);
            float cf[3] = {(float)c[0], (float)c[1], (float)c[2]};
            fz_fuzzy_point(&s.F, cf, r2, mm);
            if (kind != FZ_MF_BELL) CHECK_NEAR(mm[1], 1, kind == FZ_MF_ARTICLE ? 1e-5 : 1e-12);
            double level = fz_fuzzy_level_r2(&s.F, 1, alpha);
            for (int i = 0; i < n; i++) {
                CHECK(isfinite(semi[i]) && semi[i] > 0);
                CHECK_NEAR(semi[i], sqrt(level / lam[i]), 1e-12);
                /* the point is rounded to float: compare at the r² it actually has */
                float xf[3];
                for (int k = 0; k < n; k++) xf[k] = (float)(c[k] + semi[i] * V[i * n + k]);
                fz_fuzzy_point(&s.F, xf, r2, mm);
                CHECK_MSG(fabs(mm[1] - alpha) < 2e-6, "%s alpha %g axis %d: m = %.9g",
                          fz_mf_kind_name((fz_mf_kind)kind), alpha, i, mm[1]);
                CHECK_MSG(fabs(r2[1] - level) < 1e-5 * (1 + level), "r2 %.9g level %.9g", r2[1],
                          level);
                float mf[2];
                fz_fuzzy_forward(&s.F, xf, mf, 1);
                CHECK_NEAR(mf[1], alpha, 1e-5);
            }
        }
        CHECK(fz_fuzzy_domain(&s.F, 1, 0, NULL, NULL, NULL, NULL, &err) == -1);
        CHECK(isnan(fz_fuzzy_level_r2(&s.F, 1, 1.5)));
        CHECK(fz_fuzzy_domain(&s.F, 2, 0.5, NULL, NULL, NULL, NULL, &err) == -1);
        unmake(&s);
    }
    /* level formulas at alpha = 0.5 */
    setup s;
    make(&s, FZ_MF_BELL, 1, 2, 0, 1);
    s.F.b_raw[0] = (float)log(expm1(2.0));
    CHECK_NEAR(fz_fuzzy_level_r2(&s.F, 0, 0.5), 1.0 - 1e-6, 1e-6);
    CHECK_NEAR(fz_fuzzy_level_r2(&s.F, 0, 0.2), 2.0 - 1e-6, 1e-6); /* 4^(1/2) */
    CHECK(fz_fuzzy_level_r2(&s.F, 0, 1.0) == 0);                  /* clamped */
    unmake(&s);
    /* article: centre -S⁻¹t; a singular S has none */
    make(&s, FZ_MF_ARTICLE, 1, 2, 0, 1);
    float S[4] = {1, 2, 3, 4}, t[2] = {1, -1};
    memcpy(s.F.S, S, sizeof S);
    memcpy(s.F.t, t, sizeof t);
    double c[2];
    fz_err err;
    CHECK(fz_fuzzy_term(&s.F, 0, c, NULL, NULL, &err) == 0);
    CHECK_NEAR(1 * c[0] + 2 * c[1] + 1, 0, 1e-12);
    CHECK_NEAR(3 * c[0] + 4 * c[1] - 1, 0, 1e-12);
    s.F.S[2] = 2;
    s.F.S[3] = 4;
    CHECK(fz_fuzzy_term(&s.F, 0, c, NULL, NULL, &err) == -1);
    CHECK_CONTAINS(err.msg, "singular");
    unmake(&s);
}

/* ---- initialisation -------------------------------------------------------------------------- */

static void test_init(void)
{
    const int K = 6, n = 3;
    setup s, s2;
    make(&s, FZ_MF_GAUSS, K, n, 2, 1);
    make(&s2, FZ_MF_GAUSS, K, n, 2, 1);
    fz_rng r, r2;
    fz_err err;
    fz_rng_seed(&r, 3);
    CHECK(fz_fuzzy_init_circle(&s.F, 2.5, &r, &err) == 0);
    double a0 = atan2(s.F.centers[1], s.F.centers[0]);
    for (int j = 0; j < K; j++) {
        const float *c = s.F.centers + j * n;
        CHECK_NEAR(hypot(c[0], c[1]), 2.5, 1e-6);
        CHECK(c[2] == 0);
        double a = atan2(c[1], c[0]) - a0 - 2 * M_PI * j / K;
        CHECK_NEAR(remainder(a, 2 * M_PI), 0, 1e-6);
        for (int i = 0; i < n; i++) CHECK(s.F.scales[j * n + i] == 1);
    }
    for (int i = 0; i < K * 3; i++) CHECK(s.F.lower[i] == 0);
    for (int i = 0; i < K * 2; i++) CHECK(s.F.conseq[i] == 0);
    fz_rng_seed(&r2, 3);
    CHECK(fz_fuzzy_init_circle(&s2.F, 2.5, &r2, &err) == 0);
    CHECK(memcmp(s.p, s2.p, s.np * sizeof(float)) == 0); /* same seed, same layer */
    fz_rng_seed(&r2, 4);
    CHECK(fz_fuzzy_init_circle(&s2.F, 2.5, &r2, &err) == 0);
    CHECK(s.F.centers[0] != s2.F.centers[0]); /* another seed, another phase */
    CHECK(fz_fuzzy_init_circle(&s2.F, 0, &r2, &err) == -1);
    CHECK(fz_fuzzy_init_circle(&s2.F, NAN, &r2, &err) == -1);
    unmake(&s2);

    /* random: N(0, 1) centres */
    make(&s2, FZ_MF_GAUSS, 64, 20, 0, 1);
    fz_rng_seed(&r, 8);
    fz_fuzzy_init_random(&s2.F, &r);
    double sum = 0, sq = 0;
    for (int i = 0; i < 64 * 20; i++) {
        sum += s2.F.centers[i];
        sq += s2.F.centers[i] * s2.F.centers[i];
    }
    CHECK_NEAR(sum / 1280, 0, 0.1);
    CHECK_NEAR(sq / 1280, 1, 0.15);
    unmake(&s2);
    unmake(&s);

    make(&s, FZ_MF_CAUCHY, 1, 1, 0, 1);
    CHECK(fz_fuzzy_init_circle(&s.F, 1, &r, &err) == -1);
    CHECK_CONTAINS(err.msg, ">= 2");
    unmake(&s);
}

/* The circle with attribute terms: MNIST's loop {0 6 8 9} and open {1 2 3 4 5 7}. Each
 * attribute's classes sit side by side on the circle, and its term fires >= 1/2 over all of
 * them (exactly 1/2 at the farthest) and less over every class without the attribute. */
static void test_init_groups(void)
{
    static const unsigned char member[2 * 10] = {1, 0, 0, 0, 0, 0, 1, 0, 1, 1,
                                                 0, 1, 1, 1, 1, 1, 0, 1, 0, 0};
    fz_err err;
    for (int kind = FZ_MF_GAUSS; kind <= FZ_MF_ARTICLE; kind++) {
        setup s;
        make(&s, (fz_mf_kind)kind, 12, 2, 0, 10);
        fz_rng r;
        fz_rng_seed(&r, 5);
        CHECK(fz_fuzzy_init_circle_groups(&s.F, 2, 10, 2, member, &r, &err) == 0);
        /* the centres of the 10 class terms, as points to evaluate every term at */
        float x[10 * 2], m[10 * 12];
        for (int c = 0; c < 10; c++) {
            if (kind == FZ_MF_ARTICLE) { /* S = I: centre = -t */
                x[2 * c] = -s.F.t[2 * c], x[2 * c + 1] = -s.F.t[2 * c + 1];
            } else {
                x[2 * c] = s.F.centers[2 * c], x[2 * c + 1] = s.F.centers[2 * c + 1];
            }
            CHECK_NEAR(hypot(x[2 * c], x[2 * c + 1]), 2, 1e-5);
        }
        fz_fuzzy_forward(&s.F, x, m, 10);
        for (int a = 0; a < 2; a++) {
            double lo_in = 1, hi_out = 0;
            for (int c = 0; c < 10; c++) {
                double v = m[c * 12 + 10 + a];
                if (member[a * 10 + c]) lo_in = fmin(lo_in, v);
                else hi_out = fmax(hi_out, v);
            }
            CHECK_NEAR(lo_in, 0.5, 1e-4);
            CHECK_MSG(hi_out < lo_in, "kind %d attribute %d: %g outside >= %g inside", kind, a,
                      hi_out, lo_in);
        }
        /* side by side: walking round the circle, the loop classes form one run */
        int order[10];
        for (int c = 0; c < 10; c++) order[c] = c;
        for (int i = 0; i < 10; i++)
            for (int k = i + 1; k < 10; k++)
                if (atan2(x[2 * order[k] + 1], x[2 * order[k]]) <
                    atan2(x[2 * order[i] + 1], x[2 * order[i]])) {
                    int t = order[i];
                    order[i] = order[k], order[k] = t;
                }
        int changes = 0;
        for (int i = 0; i < 10; i++) changes += member[order[i]] != member[order[(i + 1) % 10]];
        CHECK_MSG(changes == 2, "kind %d: loop and open alternate %d times round the circle",
                  kind, changes);
        CHECK(fz_fuzzy_init_circle_groups(&s.F, 2, 9, 2, member, &r, &err) == -1);
        CHECK_CONTAINS(err.msg, "9 classes and 2 attributes for 12 terms");
        unmake(&s);
    }
}

/* ---- heads ------------------------------------------------------------------------------------ */

static void test_heads(void)
{
    setup s;
    make(&s, FZ_MF_GAUSS, 3, 2, 2, 2);
    float w[6] = {1, 0, 0, 1, 5, 5};
    memcpy(s.F.conseq, w, sizeof w);
    float m[6] = {1.0f, 0.5f, 0.0f, 0.2f, 0.9f, 0.7f}, y[4];
    fz_fuzzy_nw_forward(&s.F, m, y, 2);
    CHECK_NEAR(y[0], 1 / 1.5, 1e-6);
    CHECK_NEAR(y[1], 0.5 / 1.5, 1e-6);
    CHECK_NEAR(y[2], (0.2 + 0.7 * 5) / 1.8, 1e-6);
    int cls[2];
    float sc[2];
    fz_fuzzy_max(&s.F, m, 2, cls, sc);
    CHECK(cls[0] == 0 && cls[1] == 1);
    CHECK_NEAR(sc[1], 0.9, 1e-7);
    s.F.active[1] = 0; /* the largest membership of row 1 no longer counts */
    fz_fuzzy_max(&s.F, m, 2, cls, sc);
    CHECK(cls[1] == 2);
    fz_fuzzy_nw_forward(&s.F, m, y, 2);
    CHECK_NEAR(y[2], (0.2 + 0.7 * 5) / 0.9, 1e-5);
    CHECK_NEAR(y[0], 1, 1e-6);
    memset(s.F.active, 0, 3);
    fz_fuzzy_max(&s.F, m, 2, cls, sc);
    CHECK(cls[0] == -1 && sc[0] == 0);
    /* all memberships 0: y = 0, no NaN */
    s.F.active[0] = 1;
    float z[6] = {0};
    fz_fuzzy_nw_forward(&s.F, z, y, 2);
    CHECK(y[0] == 0 && y[1] == 0);
    unmake(&s);
}

/* ---- size: K = 64 over n = 20 and n = 64, batch 256 ----------------------------------------- */

static void test_large(void)
{
    const int dims[2] = {20, 64};
    for (int di = 0; di < 2; di++) {
        for (int kind = FZ_MF_GAUSS; kind <= FZ_MF_ARTICLE; kind += 3) {
            const int K = 64, n = dims[di], B = n > 20 ? 32 : 256;
            setup s;
            make(&s, (fz_mf_kind)kind, K, n, 10, B);
            fz_rng r;
            fz_rng_seed(&r, 1);
            fz_fuzzy_init_random(&s.F, &r);
            /* scale down so that memberships are not all 0 in 64 dims */
            if (kind == FZ_MF_ARTICLE) {
                for (size_t i = 0; i < (size_t)K * n * n; i++) s.F.S[i] *= 0.15f;
                for (int i = 0; i < K * n; i++) s.F.t[i] *= 0.15f;
            } else
                for (int i = 0; i < K * n; i++) s.F.scales[i] = 0.15f;
            float *x = malloc((size_t)B * n * sizeof(float)), *dx = malloc((size_t)B * n * sizeof(float));
            float *m = malloc((size_t)B * K * sizeof(float)), *dm = malloc((size_t)B * K * sizeof(float));
            double *md = malloc((size_t)B * K * sizeof(double)), *xd = malloc((size_t)B * n * sizeof(double));
            double *pd = malloc(s.np * sizeof(double));
            for (int i = 0; i < B * n; i++) xd[i] = x[i] = rnd(&r, 1.0);
            for (size_t i = 0; i < s.np; i++) pd[i] = s.p[i];
            for (int i = 0; i < B * K; i++) dm[i] = rnd(&r, 1.0);
            clock_t t0 = clock();
            int reps = 5;
            for (int k = 0; k < reps; k++) {
                fz_fuzzy_forward(&s.F, x, m, B);
                fz_fuzzy_backward(&s.F, x, m, dm, dx, B);
            }
            double ms = 1000.0 * (double)(clock() - t0) / CLOCKS_PER_SEC / reps;
            fprintf(stderr, "fuzzy %s K=%d n=%d B=%d: forward+backward %.2f ms\n",
                    fz_mf_kind_name((fz_mf_kind)kind), K, n, B, ms);
            spec sp = {(fz_mf_kind)kind, K, n, 10, s.F.input_mask, s.F.active};
            ref_forward(&sp, pd, xd, B, md, NULL);
            double worst = 0, big = 0;
            for (int i = 0; i < B * K; i++) {
                worst = fmax(worst, fabs(m[i] - md[i]));
                big = fmax(big, md[i]);
            }
            CHECK_MSG(worst < 1e-5, "n=%d: forward off by %g", n, worst);
            CHECK(big > 0.01);
            free(x), free(dx), free(m), free(dm), free(md), free(xd), free(pd);
            unmake(&s);
        }
    }
}

int main(void)
{
    for (int kind = FZ_MF_GAUSS; kind <= FZ_MF_ARTICLE; kind++)
        for (int masked = 0; masked < 2; masked++) grad_check((fz_mf_kind)kind, masked, 100 + kind);
    test_known_values();
    test_layout();
    test_masks();
    test_freeze();
    test_prune();
    test_eigen();
    test_domains();
    test_init();
    test_init_groups();
    test_heads();
    test_large();
    return check_report("test_fuzzy");
}
