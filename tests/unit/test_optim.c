/* test_optim.c - optimisers against the PyTorch update formulas computed here in double,
 * hand-computed first steps, frozen parameters, bit-identical resume from a checkpoint,
 * gradient clipping, schedules and the vector helpers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "check.h"
#include "optim.h"
#include "threads.h"
#include "rng.h"

enum { N = 10, STEPS = 6 };

/* A fixed gradient sequence (STEPS, N), magnitudes in [0.05, 1] with both signs, so the
 * reference and the library see exactly the same gradients. */
static void make_grads(float g[STEPS][N], uint64_t seed)
{
    fz_rng r;
    fz_rng_seed(&r, seed);
    for (int s = 0; s < STEPS; s++)
        for (int i = 0; i < N; i++) {
            double mag = 0.05 + 0.95 * fz_rng_uniform(&r);
            g[s][i] = (float)(fz_rng_uniform(&r) < 0.5 ? -mag : mag);
        }
}

/* PyTorch's Adam/AdamW (torch.optim, single tensor) in double. */
static void ref_adam(const fz_opt_conf *c, double lr, double *p, float g[STEPS][N],
                     int steps)
{
    double m[N] = {0}, v[N] = {0};
    for (int t = 1; t <= steps; t++) {
        double bc1 = 1 - pow(c->beta1, t), bc2 = 1 - pow(c->beta2, t);
        for (int i = 0; i < N; i++) {
            double gi = g[t - 1][i];
            if (c->kind == FZ_OPT_ADAMW) p[i] *= 1 - lr * c->weight_decay;
            else gi += c->weight_decay * p[i];
            m[i] = c->beta1 * m[i] + (1 - c->beta1) * gi;
            v[i] = c->beta2 * v[i] + (1 - c->beta2) * gi * gi;
            double denom = sqrt(v[i]) / sqrt(bc2) + c->eps;
            p[i] -= lr / bc1 * m[i] / denom;
        }
    }
}

/* PyTorch's SGD (dampening 0) in double. */
static void ref_sgd(const fz_opt_conf *c, double lr, double *p, float g[STEPS][N],
                    int steps)
{
    double buf[N] = {0};
    for (int t = 1; t <= steps; t++)
        for (int i = 0; i < N; i++) {
            double gi = g[t - 1][i] + c->weight_decay * p[i];
            if (c->momentum != 0) {
                buf[i] = c->momentum * buf[i] + gi;
                gi = c->nesterov ? gi + c->momentum * buf[i] : buf[i];
            }
            p[i] -= lr * gi;
        }
}

static void run_against_ref(const char *what, fz_opt_conf c, double lr)
{
    float g[STEPS][N];
    make_grads(g, 21);
    float p[N];
    double pd[N];
    for (int i = 0; i < N; i++) pd[i] = p[i] = (float)(0.3 * i - 1.2);
    fz_optim o;
    fz_err err = {0};
    CHECK_EQ_INT(fz_optim_init(&o, &c, N, &err), 0);
    for (int s = 0; s < STEPS; s++) fz_optim_step(&o, p, g[s], NULL, lr);
    CHECK_EQ_INT(o.step, STEPS);
    if (c.kind == FZ_OPT_SGD) ref_sgd(&c, lr, pd, g, STEPS);
    else ref_adam(&c, lr, pd, g, STEPS);
    int bad = 0;
    for (int i = 0; i < N; i++)
        if (fabs(p[i] - pd[i]) > 1e-6 * (1 + fabs(pd[i]))) {
            if (bad++ < 3) fprintf(stderr, "%s: p[%d] = %.9g, expected %.9g\n", what, i, p[i], pd[i]);
        }
    CHECK_MSG(bad == 0, "%s: %d parameters differ from the PyTorch formula", what, bad);
    fz_optim_free(&o);
}

static void test_against_formulas(void)
{
    fz_opt_conf c = fz_opt_defaults(FZ_OPT_ADAM);
    run_against_ref("adam", c, 1e-2);
    c.weight_decay = 0.1;
    run_against_ref("adam+l2", c, 1e-2);
    c.beta1 = 0.5, c.beta2 = 0.9, c.eps = 1e-3;
    run_against_ref("adam/betas", c, 3e-2);
    c = fz_opt_defaults(FZ_OPT_ADAMW);
    run_against_ref("adamw", c, 1e-2);
    c.weight_decay = 0.5;
    run_against_ref("adamw/wd", c, 5e-2);
    c = fz_opt_defaults(FZ_OPT_SGD);
    run_against_ref("sgd", c, 0.1);
    c.momentum = 0.9;
    run_against_ref("sgd/momentum", c, 0.1);
    c.nesterov = 1;
    run_against_ref("sgd/nesterov", c, 0.1);
    c.weight_decay = 0.01;
    run_against_ref("sgd/nesterov+wd", c, 0.1);
}

/* First steps worked by hand. */
static void test_hand_values(void)
{
    fz_err err = {0};
    fz_optim o;
    float p, g = 0.5f;
    /* Adam's first step moves by lr * g / (|g| + eps), i.e. lr against the sign */
    fz_opt_conf c = fz_opt_defaults(FZ_OPT_ADAM);
    CHECK_EQ_INT(fz_optim_init(&o, &c, 1, &err), 0);
    p = 1;
    fz_optim_step(&o, &p, &g, NULL, 0.1);
    CHECK_NEAR(p, 1 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-7);
    CHECK_NEAR(o.m[0], 0.05, 1e-8);
    CHECK_NEAR(o.v[0], 0.00025, 1e-10);
    /* second step with the same gradient: m = 0.095, v = 0.00049975, bc1 = 0.19,
     * bc2 = 0.001999: again lr * 1 (to 1e-8 / 0.5) */
    fz_optim_step(&o, &p, &g, NULL, 0.1);
    CHECK_NEAR(p, 0.8, 1e-6);
    fz_optim_free(&o);

    /* AdamW: decay first (1 - 0.1 * 0.1), then the same step */
    c = fz_opt_defaults(FZ_OPT_ADAMW);
    c.weight_decay = 0.1;
    CHECK_EQ_INT(fz_optim_init(&o, &c, 1, &err), 0);
    p = 1;
    fz_optim_step(&o, &p, &g, NULL, 0.1);
    CHECK_NEAR(p, 0.99 - 0.1, 1e-7);
    fz_optim_free(&o);

    /* Adam with weight decay 0.1 sees g + 0.1 p = 0.6: the first step is still lr */
    c = fz_opt_defaults(FZ_OPT_ADAM);
    c.weight_decay = 0.1;
    CHECK_EQ_INT(fz_optim_init(&o, &c, 1, &err), 0);
    p = 1;
    fz_optim_step(&o, &p, &g, NULL, 0.1);
    CHECK_NEAR(p, 0.9, 1e-7);
    CHECK_NEAR(o.m[0], 0.06, 1e-8);
    fz_optim_free(&o);

    /* SGD with momentum 0.9, lr 0.1, gradient 1: 0.9, 0.71, 0.439 */
    g = 1;
    c = fz_opt_defaults(FZ_OPT_SGD);
    c.momentum = 0.9;
    CHECK_EQ_INT(fz_optim_init(&o, &c, 1, &err), 0);
    p = 1;
    fz_optim_step(&o, &p, &g, NULL, 0.1);
    CHECK_NEAR(p, 0.9, 1e-7);
    fz_optim_step(&o, &p, &g, NULL, 0.1);
    CHECK_NEAR(p, 0.71, 1e-6);
    fz_optim_step(&o, &p, &g, NULL, 0.1);
    CHECK_NEAR(p, 0.439, 1e-6);
    fz_optim_free(&o);
    /* Nesterov: 1 - 0.19 = 0.81, then - 0.271 = 0.539 */
    c.nesterov = 1;
    CHECK_EQ_INT(fz_optim_init(&o, &c, 1, &err), 0);
    p = 1;
    fz_optim_step(&o, &p, &g, NULL, 0.1);
    CHECK_NEAR(p, 0.81, 1e-7);
    fz_optim_step(&o, &p, &g, NULL, 0.1);
    CHECK_NEAR(p, 0.539, 1e-6);
    fz_optim_free(&o);
    /* plain SGD keeps no state */
    c = fz_opt_defaults(FZ_OPT_SGD);
    CHECK_EQ_INT(fz_optim_init(&o, &c, 1, &err), 0);
    CHECK(o.state == NULL && o.m == NULL && o.v == NULL);
    CHECK_EQ_INT(fz_optim_state_len(&o), 0);
    p = 1;
    fz_optim_step(&o, &p, &g, NULL, 0.25);
    CHECK_NEAR(p, 0.75, 0);
    fz_optim_free(&o);
}

/* Adam minimises a quadratic: sum (p - c)^2 reaches c. */
static void test_converges(void)
{
    fz_opt_conf c = fz_opt_defaults(FZ_OPT_ADAM);
    fz_optim o;
    fz_err err = {0};
    CHECK_EQ_INT(fz_optim_init(&o, &c, N, &err), 0);
    float p[N] = {0}, g[N], target[N];
    for (int i = 0; i < N; i++) target[i] = (float)(i - 4.5);
    for (int s = 0; s < 3000; s++) {
        for (int i = 0; i < N; i++) g[i] = 2 * (p[i] - target[i]);
        fz_optim_step(&o, p, g, NULL, 0.05);
    }
    for (int i = 0; i < N; i++) CHECK_NEAR(p[i], target[i], 1e-3);
    fz_optim_free(&o);
}

static void test_frozen(void)
{
    float g[STEPS][N];
    make_grads(g, 22);
    unsigned char frozen[N] = {0};
    frozen[0] = frozen[3] = frozen[9] = 1;
    fz_opt_kind kinds[3] = {FZ_OPT_ADAM, FZ_OPT_ADAMW, FZ_OPT_SGD};
    for (int k = 0; k < 3; k++) {
        fz_opt_conf c = fz_opt_defaults(kinds[k]);
        c.weight_decay = 0.1;
        c.momentum = 0.5;
        fz_optim o, ref;
        fz_err err = {0};
        CHECK_EQ_INT(fz_optim_init(&o, &c, N, &err), 0);
        CHECK_EQ_INT(fz_optim_init(&ref, &c, N, &err), 0);
        float p[N], pr[N], p0[N];
        for (int i = 0; i < N; i++) p[i] = pr[i] = p0[i] = (float)(0.1 * i + 0.5);
        for (int s = 0; s < STEPS; s++) {
            fz_optim_step(&o, p, g[s], frozen, 1e-2);
            fz_optim_step(&ref, pr, g[s], NULL, 1e-2);
        }
        for (int i = 0; i < N; i++) {
            if (frozen[i]) {
                CHECK_NEAR(p[i], p0[i], 0);
                CHECK_NEAR(o.m[i], 0, 0);
                if (o.v) CHECK_NEAR(o.v[i], 0, 0);
            } else {
                /* the others move exactly as without a mask */
                CHECK_NEAR(p[i], pr[i], 0);
                CHECK(p[i] != p0[i]);
            }
        }
        fz_optim_free(&o);
        fz_optim_free(&ref);
    }
}

/* Save after 3 steps, go on 3 more; a fresh optimiser restored from the save must land on
 * the same bits. */
static void test_resume(void)
{
    float g[STEPS][N];
    make_grads(g, 23);
    fz_opt_kind kinds[3] = {FZ_OPT_ADAM, FZ_OPT_ADAMW, FZ_OPT_SGD};
    for (int k = 0; k < 3; k++) {
        fz_opt_conf c = fz_opt_defaults(kinds[k]);
        c.momentum = 0.9;
        fz_optim a, b;
        fz_err err = {0};
        CHECK_EQ_INT(fz_optim_init(&a, &c, N, &err), 0);
        CHECK_EQ_INT(fz_optim_init(&b, &c, N, &err), 0);
        float p[N], saved_p[N], saved_state[2 * N];
        for (int i = 0; i < N; i++) p[i] = (float)(i * 0.37 - 1);
        for (int s = 0; s < 3; s++) fz_optim_step(&a, p, g[s], NULL, 1e-2);
        size_t len = fz_optim_state_len(&a);
        CHECK_EQ_INT(len, kinds[k] == FZ_OPT_SGD ? N : 2 * N);
        memcpy(saved_state, a.state, len * sizeof(float));
        memcpy(saved_p, p, sizeof p);
        float saved_step = fz_optim_step_float(&a);
        CHECK_NEAR(saved_step, 3, 0);
        for (int s = 3; s < STEPS; s++) fz_optim_step(&a, p, g[s], NULL, 1e-2);

        CHECK_EQ_INT(fz_optim_restore(&b, saved_state, len, saved_step, &err), 0);
        for (int s = 3; s < STEPS; s++) fz_optim_step(&b, saved_p, g[s], NULL, 1e-2);
        CHECK(memcmp(p, saved_p, sizeof p) == 0);
        CHECK(memcmp(a.state, b.state, len * sizeof(float)) == 0);
        CHECK_EQ_INT(b.step, STEPS);

        /* bad checkpoints */
        CHECK_EQ_INT(fz_optim_restore(&b, saved_state, len + 1, 3, &err), -1);
        CHECK_CONTAINS(err.msg, "expected");
        CHECK_EQ_INT(fz_optim_restore(&b, saved_state, len, 2.5, &err), -1);
        CHECK_EQ_INT(fz_optim_restore(&b, saved_state, len, -1, &err), -1);
        CHECK_EQ_INT(fz_optim_restore(&b, saved_state, len, NAN, &err), -1);
        CHECK_EQ_INT(fz_optim_restore(&b, saved_state, len, 1e9, &err), -1);
        saved_state[1] = INFINITY;
        CHECK_EQ_INT(fz_optim_restore(&b, saved_state, len, 3, &err), -1);
        CHECK_CONTAINS(err.msg, "not finite");
        CHECK_EQ_INT(b.step, STEPS); /* a refused restore changes nothing */
        fz_optim_free(&a);
        fz_optim_free(&b);
    }
}

static void test_conf(void)
{
    fz_err err = {0};
    fz_opt_kind k = FZ_OPT_SGD;
    CHECK_EQ_INT(fz_opt_kind_parse("adamw", &k, &err), 0);
    CHECK_EQ_INT(k, FZ_OPT_ADAMW);
    CHECK_EQ_INT(fz_opt_kind_parse("adam", &k, &err), 0);
    CHECK_EQ_INT(k, FZ_OPT_ADAM);
    CHECK_EQ_INT(fz_opt_kind_parse("sgd", &k, &err), 0);
    CHECK_EQ_INT(k, FZ_OPT_SGD);
    CHECK_EQ_INT(fz_opt_kind_parse("rmsprop", &k, &err), -1);
    CHECK_CONTAINS(err.msg, "rmsprop");
    CHECK_STR(fz_opt_kind_name(FZ_OPT_ADAMW), "adamw");
    CHECK_NEAR(fz_opt_defaults(FZ_OPT_ADAMW).weight_decay, 0.01, 0);
    CHECK_NEAR(fz_opt_defaults(FZ_OPT_ADAM).weight_decay, 0, 0);

    fz_opt_conf c = fz_opt_defaults(FZ_OPT_ADAM);
    fz_optim o;
    c.beta1 = 1;
    CHECK_EQ_INT(fz_optim_init(&o, &c, 4, &err), -1);
    CHECK_CONTAINS(err.msg, "beta1");
    c = fz_opt_defaults(FZ_OPT_ADAM);
    c.beta2 = NAN;
    CHECK_EQ_INT(fz_opt_conf_check(&c, &err), -1);
    c = fz_opt_defaults(FZ_OPT_ADAMW);
    c.weight_decay = -0.1;
    CHECK_EQ_INT(fz_opt_conf_check(&c, &err), -1);
    CHECK_CONTAINS(err.msg, "weight decay");
    c = fz_opt_defaults(FZ_OPT_SGD);
    c.nesterov = 1;
    CHECK_EQ_INT(fz_opt_conf_check(&c, &err), -1);
    CHECK_CONTAINS(err.msg, "Nesterov");
    c.momentum = 0.9;
    CHECK_EQ_INT(fz_opt_conf_check(&c, &err), 0);
}

static void test_clip(void)
{
    float g[2] = {3, 4};
    CHECK_NEAR(fz_clip_grad_norm(g, 2, 10), 5, 1e-12); /* coef 2 >= 1: untouched */
    CHECK_NEAR(g[0], 3, 0);
    CHECK_NEAR(g[1], 4, 0);
    CHECK_NEAR(fz_clip_grad_norm(g, 2, 0), 5, 1e-12); /* measure only */
    CHECK_NEAR(g[0], 3, 0);
    CHECK_NEAR(fz_clip_grad_norm(g, 2, 1), 5, 1e-12);
    CHECK_NEAR(g[0], 3 / (5 + 1e-6), 1e-7);
    CHECK_NEAR(g[1], 4 / (5 + 1e-6), 1e-7);
    /* clipping to exactly the norm still scales by max/(norm + 1e-6) < 1, as PyTorch */
    float h[2] = {3, 4};
    fz_clip_grad_norm(h, 2, 5);
    CHECK(h[0] < 3 && h[0] > 2.9999);
    float bad[3] = {1, NAN, 1};
    CHECK(isnan(fz_clip_grad_norm(bad, 3, 1)));
    CHECK_NEAR(bad[0], 1, 0);
    float inf[2] = {INFINITY, 1};
    CHECK(isinf(fz_clip_grad_norm(inf, 2, 1)));
    CHECK_NEAR(inf[1], 1, 0);
    CHECK_NEAR(fz_clip_grad_norm(NULL, 0, 1), 0, 0);
}

static void test_sched(void)
{
    fz_err err = {0};
    fz_sched s = fz_sched_const(0.01);
    CHECK_EQ_INT(fz_sched_check(&s, &err), 0);
    CHECK_NEAR(fz_sched_lr(&s, 0), 0.01, 0);
    CHECK_NEAR(fz_sched_lr(&s, 1000), 0.01, 0);

    s.kind = FZ_SCHED_STEP, s.lr = 0.1, s.every = 10, s.gamma = 0.5;
    CHECK_NEAR(fz_sched_lr(&s, 0), 0.1, 1e-15);
    CHECK_NEAR(fz_sched_lr(&s, 9), 0.1, 1e-15);
    CHECK_NEAR(fz_sched_lr(&s, 10), 0.05, 1e-15);
    CHECK_NEAR(fz_sched_lr(&s, 25), 0.025, 1e-15);
    CHECK_NEAR(fz_sched_lr(&s, -3), 0.1, 1e-15);

    s = fz_sched_const(1);
    s.kind = FZ_SCHED_COSINE, s.T = 10, s.lr_min = 0;
    CHECK_NEAR(fz_sched_lr(&s, 0), 1, 1e-15);
    CHECK_NEAR(fz_sched_lr(&s, 5), 0.5, 1e-15);
    CHECK_NEAR(fz_sched_lr(&s, 10), 0, 1e-15);
    CHECK_NEAR(fz_sched_lr(&s, 25), 0, 1e-15); /* held, not rising again */
    s.lr_min = 0.1;
    CHECK_NEAR(fz_sched_lr(&s, 5), 0.55, 1e-15);
    CHECK_NEAR(fz_sched_lr(&s, 2), 0.1 + 0.9 * (1 + cos(M_PI * 0.2)) / 2, 1e-15);
    CHECK_NEAR(fz_sched_lr(&s, 99), 0.1, 1e-15);

    /* warm-up 4: 0.25, 0.5, 0.75, 1, then the cosine from its start */
    s.warmup = 4;
    CHECK_NEAR(fz_sched_lr(&s, 0), 0.25, 1e-15);
    CHECK_NEAR(fz_sched_lr(&s, 3), 1, 1e-15);
    CHECK_NEAR(fz_sched_lr(&s, 4), 1, 1e-15);
    CHECK_NEAR(fz_sched_lr(&s, 9), 0.55, 1e-15);
    CHECK_NEAR(fz_sched_lr(&s, 14), 0.1, 1e-15);

    fz_sched p;
    CHECK_EQ_INT(fz_sched_parse("cos:10:0.001,warmup:3", 0.01, &p, &err), 0);
    CHECK_EQ_INT(p.kind, FZ_SCHED_COSINE);
    CHECK_EQ_INT(p.T, 10);
    CHECK_EQ_INT(p.warmup, 3);
    CHECK_NEAR(p.lr_min, 0.001, 0);
    CHECK_NEAR(fz_sched_lr(&p, 8), 0.001 + 0.009 * (1 + cos(M_PI * 0.5)) / 2, 1e-15);
    CHECK_EQ_INT(fz_sched_parse("step:30:0.1", 0.01, &p, &err), 0);
    CHECK_EQ_INT(p.kind, FZ_SCHED_STEP);
    CHECK_EQ_INT(p.every, 30);
    CHECK_NEAR(fz_sched_lr(&p, 30), 0.001, 1e-15);
    CHECK_EQ_INT(fz_sched_parse("const", 0.02, &p, &err), 0);
    CHECK_NEAR(fz_sched_lr(&p, 7), 0.02, 0);

    const char *bad[] = {"cos:0:0", "cos:10:0.5", "step:10", "step:0:0.5", "step:5:0",
                         "foo", "cos:10:0,warm:3", "cos:10:0,warmup:-1", "const:1", "",
                         "cos:10:0:1", "step:1e3:0.5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err.msg[0] = '\0';
        CHECK_MSG(fz_sched_parse(bad[i], 0.01, &p, &err) == -1, "'%s' accepted", bad[i]);
        CHECK(err.msg[0] != '\0');
    }
    CHECK_EQ_INT(fz_sched_parse("const", 0, &p, &err), -1); /* lr must be > 0 */
}

static void test_helpers(void)
{
    float x[5] = {1, 2, 3, 4, 5};
    CHECK_EQ_INT(fz_first_nonfinite(x, 5), -1);
    CHECK_EQ_INT(fz_first_nonfinite(x, 0), -1);
    x[3] = NAN;
    x[4] = INFINITY;
    CHECK_EQ_INT(fz_first_nonfinite(x, 5), 3);
    CHECK_EQ_INT(fz_first_nonfinite(x, 3), -1);
    x[1] = -INFINITY;
    CHECK_EQ_INT(fz_first_nonfinite(x, 5), 1);
    fz_zero(x, 5);
    for (int i = 0; i < 5; i++) CHECK_NEAR(x[i], 0, 0);
    CHECK_EQ_INT(fz_first_nonfinite(x, 5), -1);
    fz_zero(NULL, 0);
}


/* Vectors large enough to be cut into pieces over the threads (1,200,001 floats: 37 pieces,
 * the last one short). On 1 and 2 threads the update, the norm, the clipping and the zeroing
 * give the same bits; the update equals element by element the one of the same parameters
 * updated in short vectors (which are never split), frozen runs crossing piece boundaries
 * included; the norm agrees with a plain double sum. */
static void test_threaded(void)
{
    enum { BIG = 1200001, SMALL = 1000 };
    float *g = malloc(BIG * sizeof *g), *p[2], *piecewise = malloc(BIG * sizeof *piecewise);
    unsigned char *frozen = calloc(BIG, 1);
    CHECK(g && piecewise && frozen);
    if (!g || !piecewise || !frozen) return;
    fz_rng r;
    fz_rng_seed(&r, 5);
    for (size_t i = 0; i < BIG; i++) g[i] = (float)(fz_rng_uniform(&r) - 0.5);
    for (size_t i = 32000; i < 33500; i++) frozen[i] = 1; /* across the first boundary */
    for (size_t i = BIG - 11; i < BIG; i++) frozen[i] = 1;
    fz_opt_kind kinds[3] = {FZ_OPT_ADAM, FZ_OPT_ADAMW, FZ_OPT_SGD};
    for (int k = 0; k < 3; k++) {
        fz_opt_conf c = fz_opt_defaults(kinds[k]);
        c.weight_decay = 0.05;
        c.momentum = 0.9;
        fz_optim o[2];
        fz_err err = {0};
        for (int t = 0; t < 2; t++) {
            p[t] = malloc(BIG * sizeof(float));
            CHECK(p[t] != NULL);
            if (!p[t]) return;
            for (size_t i = 0; i < BIG; i++) p[t][i] = (float)(i % 97) * 0.01f;
            CHECK_EQ_INT(fz_optim_init(&o[t], &c, BIG, &err), 0);
            fz_blas_set_threads(t + 1);
            for (int s = 0; s < 3; s++) fz_optim_step(&o[t], p[t], g, frozen, 1e-2);
        }
        CHECK(fz_threads_started() >= 1);
        CHECK(memcmp(p[0], p[1], BIG * sizeof(float)) == 0);
        CHECK(memcmp(o[0].m, o[1].m, BIG * sizeof(float)) == 0);
        /* the same parameters updated SMALL at a time, on one thread */
        fz_blas_set_threads(1);
        for (size_t lo = 0; lo < BIG; lo += SMALL) {
            size_t n = BIG - lo < SMALL ? BIG - lo : SMALL;
            fz_optim so;
            CHECK_EQ_INT(fz_optim_init(&so, &c, n, &err), 0);
            for (size_t i = 0; i < n; i++) piecewise[lo + i] = (float)((lo + i) % 97) * 0.01f;
            for (int s = 0; s < 3; s++) fz_optim_step(&so, piecewise + lo, g + lo, frozen + lo, 1e-2);
            fz_optim_free(&so);
        }
        CHECK(memcmp(p[1], piecewise, BIG * sizeof(float)) == 0);
        CHECK(p[1][32000] == 32000 % 97 * 0.01f && p[1][BIG - 1] == (BIG - 1) % 97 * 0.01f);
        CHECK(p[1][31999] != 31999 % 97 * 0.01f && p[1][33500] != 33500 % 97 * 0.01f);
        /* fz_optim_step_zero: the same update on two threads, and every gradient zero
         * after it, the frozen ones too */
        {
            fz_optim zo;
            float *zp = malloc(BIG * sizeof(float)), *zg = malloc(BIG * sizeof(float));
            CHECK(zp && zg);
            if (!zp || !zg) return;
            for (size_t i = 0; i < BIG; i++) zp[i] = (float)(i % 97) * 0.01f;
            CHECK_EQ_INT(fz_optim_init(&zo, &c, BIG, &err), 0);
            fz_blas_set_threads(2);
            size_t left = 0;
            float unit;
            double want = fz_grad_norm(g, BIG, 0, &unit);
            for (int s = 0; s < 3; s++) {
                memcpy(zg, g, BIG * sizeof(float));
                /* the norm measured in the pass: fz_grad_norm's bits */
                double norm = -1;
                fz_optim_step_zero(&zo, zp, zg, frozen, 1e-2, 1.0f, s == 1 ? &norm : NULL);
                if (s == 1)
                    CHECK_MSG(norm == want, "%s: norm in the update %.17g, fz_grad_norm %.17g",
                              fz_opt_kind_name(kinds[k]), norm, want);
                for (size_t i = 0; i < BIG; i++) left += zg[i] != 0;
            }
            CHECK_MSG(left == 0, "%s: %zu gradients left after fz_optim_step_zero",
                      fz_opt_kind_name(kinds[k]), left);
            CHECK(memcmp(zp, p[1], BIG * sizeof(float)) == 0);
            CHECK(memcmp(zo.m, o[1].m, BIG * sizeof(float)) == 0);
            /* with a clipping factor: the bits of fz_clip_grad_norm's scaling followed by
             * fz_optim_step */
            fz_optim ref;
            float *rp = malloc(BIG * sizeof(float)), *rg = malloc(BIG * sizeof(float));
            CHECK(rp && rg);
            if (!rp || !rg) return;
            memcpy(rp, zp, BIG * sizeof(float));
            CHECK_EQ_INT(fz_optim_init(&ref, &c, BIG, &err), 0);
            CHECK_EQ_INT(fz_optim_restore(&ref, zo.state, fz_optim_state_len(&zo), (double)zo.step, &err), 0);
            memcpy(rg, g, BIG * sizeof(float));
            float scale;
            double norm = fz_grad_norm(rg, BIG, 0.5, &scale);
            CHECK(scale < 1.0f && fz_clip_grad_norm(rg, BIG, 0.5) == norm);
            fz_optim_step(&ref, rp, rg, frozen, 1e-2);
            memcpy(zg, g, BIG * sizeof(float));
            fz_optim_step_zero(&zo, zp, zg, frozen, 1e-2, scale, NULL);
            CHECK_MSG(memcmp(zp, rp, BIG * sizeof(float)) == 0, "%s: scaled update",
                      fz_opt_kind_name(kinds[k]));
            CHECK(memcmp(zo.state, ref.state, fz_optim_state_len(&zo) * sizeof(float)) == 0);
            fz_optim_free(&ref);
            free(rp);
            free(rg);
            fz_blas_set_threads(1);
            fz_optim_free(&zo);
            free(zp);
            free(zg);
        }
        for (int t = 0; t < 2; t++) {
            fz_optim_free(&o[t]);
            free(p[t]);
        }
    }
    double plain = 0;
    for (size_t i = 0; i < BIG; i++) plain += (double)g[i] * g[i];
    float *h[2];
    double norm[2];
    for (int t = 0; t < 2; t++) {
        h[t] = malloc(BIG * sizeof(float));
        CHECK(h[t] != NULL);
        if (!h[t]) return;
        memcpy(h[t], g, BIG * sizeof(float));
        fz_blas_set_threads(t + 1);
        norm[t] = fz_clip_grad_norm(h[t], BIG, 1.0);
    }
    CHECK(norm[0] == norm[1]);
    CHECK_NEAR(norm[0], sqrt(plain), 1e-9 * sqrt(plain));
    CHECK(memcmp(h[0], h[1], BIG * sizeof(float)) == 0);
    CHECK_NEAR(h[1][12345], g[12345] / (norm[1] + 1e-6), 1e-7);
    CHECK_NEAR(h[1][BIG - 1], g[BIG - 1] / (norm[1] + 1e-6), 1e-7);
    fz_zero_par(h[1], BIG);
    size_t nonzero = 0;
    for (size_t i = 0; i < BIG; i++) nonzero += h[1][i] != 0;
    CHECK_EQ_INT((int)nonzero, 0);
    fz_blas_set_threads(1);
    free(h[0]);
    free(h[1]);
    free(g);
    free(piecewise);
    free(frozen);
}

/* PyTorch's Adam/AdamW step in float as its CPU kernels round it, with the division by
 * sqrt(bias_correction2) written as a division: the library divides without the divider
 * and must give these bits. */
static void ref_adam_float(const fz_opt_conf *c, double lr, long step, float *p,
                           const float *g, float *m, float *v, size_t n)
{
    double bc1 = 1.0 - pow(c->beta1, (double)step), bc2 = 1.0 - pow(c->beta2, (double)step);
    float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float b1 = (float)c->beta1, omb1 = (float)(1.0 - c->beta1);
    float b2 = (float)c->beta2, omb2 = (float)(1.0 - c->beta2);
    float eps = (float)c->eps, wd = (float)c->weight_decay;
    int l2 = c->kind == FZ_OPT_ADAM && c->weight_decay != 0;
    float decay = c->kind == FZ_OPT_ADAMW && c->weight_decay != 0
                      ? (float)(1.0 - lr * c->weight_decay) : 1.0f;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i], pi = p[i] * decay;
        gi = l2 ? fmaf(pi, wd, gi) : gi;
        float mi = fmaf(gi, omb1, m[i] * b1);
        float vi = fmaf(omb2 * gi, gi, v[i] * b2);
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + -step_size * mi / denom;
    }
}

/* 50,000 parameters whose gradients span 1e-9 to 10 (so that sqrt(v) takes all kinds of
 * significands), 40 steps, three beta2 and both kinds: the same bits as ref_adam_float. */
static void test_adam_bits(void)
{
    enum { NP = 50000, NSTEPS = 40 };
    float *p = malloc(NP * sizeof(float)), *rp = malloc(NP * sizeof(float));
    float *g = malloc(NP * sizeof(float)), *rm = calloc(NP, sizeof(float));
    float *rv = calloc(NP, sizeof(float));
    CHECK(p && rp && g && rm && rv);
    if (!p || !rp || !g || !rm || !rv) return;
    double beta2s[3] = {0.999, 0.99, 0.9999};
    fz_opt_kind kinds[2] = {FZ_OPT_ADAM, FZ_OPT_ADAMW};
    fz_rng r;
    fz_rng_seed(&r, 77);
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < 3; b++) {
            fz_opt_conf c = fz_opt_defaults(kinds[k]);
            c.beta2 = beta2s[b];
            c.weight_decay = 0.01;
            fz_optim o;
            fz_err err = {0};
            CHECK_EQ_INT(fz_optim_init(&o, &c, NP, &err), 0);
            for (size_t i = 0; i < NP; i++) rp[i] = p[i] = (float)(fz_rng_uniform(&r) - 0.5);
            memset(rm, 0, NP * sizeof(float));
            memset(rv, 0, NP * sizeof(float));
            size_t differ = 0;
            for (long s = 1; s <= NSTEPS; s++) {
                for (size_t i = 0; i < NP; i++) {
                    double mag = pow(10.0, -9.0 + 10.0 * fz_rng_uniform(&r));
                    g[i] = (float)(fz_rng_uniform(&r) < 0.5 ? -mag : mag);
                }
                fz_optim_step(&o, p, g, NULL, 1e-3);
                ref_adam_float(&c, 1e-3, s, rp, g, rm, rv, NP);
                for (size_t i = 0; i < NP; i++) differ += p[i] != rp[i];
            }
            CHECK_MSG(differ == 0 && memcmp(o.m, rm, NP * sizeof(float)) == 0 &&
                          memcmp(o.v, rv, NP * sizeof(float)) == 0,
                      "%s beta2 %g: %zu parameter updates differ from the division's",
                      fz_opt_kind_name(kinds[k]), beta2s[b], differ);
            fz_optim_free(&o);
        }
    free(p);
    free(rp);
    free(g);
    free(rm);
    free(rv);
}

/* fz_optim_step_zero_begin/end: the same parameters, state and norm, bit for bit, as
 * fz_optim_step_zero, for a range of whole pieces in the middle, one that reaches the end,
 * one without a whole piece (nothing begun), and on one thread (nothing begun); the range's
 * gradients are zero after end like the others. */
static void test_begin_end(void)
{
    enum { NP = 300007 }; /* 10 pieces of 32768, the last short */
    float *g = malloc(NP * sizeof(float)), *p1 = malloc(NP * sizeof(float));
    float *p2 = malloc(NP * sizeof(float)), *g1 = malloc(NP * sizeof(float));
    float *g2 = malloc(NP * sizeof(float));
    unsigned char *frozen = calloc(NP, 1);
    CHECK(g && p1 && p2 && g1 && g2 && frozen);
    if (!g || !p1 || !p2 || !g1 || !g2 || !frozen) return;
    fz_rng r;
    fz_rng_seed(&r, 9);
    for (size_t i = 0; i < NP; i++) g[i] = (float)(fz_rng_uniform(&r) - 0.5);
    for (size_t i = 70000; i < 70100; i++) frozen[i] = 1;
    /* {lo, hi, threads, begun} */
    static const long ranges[][4] = {{40000, 200000, 2, 1}, {100000, NP, 2, 1},
                                     {40000, 60000, 2, 0}, {0, NP, 1, 0}};
    for (size_t c = 0; c < sizeof ranges / sizeof ranges[0]; c++) {
        fz_opt_conf conf = fz_opt_defaults(FZ_OPT_ADAMW);
        fz_optim a, b;
        fz_err err = {0};
        CHECK_EQ_INT(fz_optim_init(&a, &conf, NP, &err), 0);
        CHECK_EQ_INT(fz_optim_init(&b, &conf, NP, &err), 0);
        for (size_t i = 0; i < NP; i++) p1[i] = p2[i] = (float)(i % 89) * 0.01f;
        fz_blas_set_threads((int)ranges[c][2]);
        double n1 = 0, n2 = 0;
        size_t left = 0;
        for (int s = 0; s < 3; s++) {
            memcpy(g1, g, NP * sizeof(float));
            memcpy(g2, g, NP * sizeof(float));
            fz_optim_step_zero(&a, p1, g1, frozen, 1e-2, 1.0f, &n1);
            int begun = fz_optim_step_zero_begin(&b, p2, g2, frozen, 1e-2, (size_t)ranges[c][0],
                                                 (size_t)ranges[c][1]) == 0;
            CHECK_EQ_INT(begun, (int)ranges[c][3]);
            if (begun) fz_optim_step_zero_end(&b, &n2);
            else fz_optim_step_zero(&b, p2, g2, frozen, 1e-2, 1.0f, &n2);
            for (size_t i = 0; i < NP; i++) left += g2[i] != 0;
        }
        CHECK_MSG(memcmp(p1, p2, NP * sizeof(float)) == 0 && n1 == n2 && a.step == b.step &&
                      memcmp(a.state, b.state, fz_optim_state_len(&a) * sizeof(float)) == 0 &&
                      left == 0,
                  "range %zu: begin/end differs from fz_optim_step_zero (norm %.17g, %.17g; "
                  "%zu gradients left)", c, n1, n2, left);
        fz_optim_free(&a);
        fz_optim_free(&b);
    }
    fz_blas_set_threads(1);
    free(g), free(p1), free(p2), free(g1), free(g2), free(frozen);
}

int main(void)
{
    test_against_formulas();
    test_adam_bits();
    test_hand_values();
    test_converges();
    test_frozen();
    test_resume();
    test_conf();
    test_clip();
    test_sched();
    test_helpers();
    test_threaded();
    test_begin_end();
    return check_report("test_optim");
}
