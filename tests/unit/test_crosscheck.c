/* test_crosscheck.c - one training step of the real trainer with given noise and dropout
 * masks: a self-test, and the fz half of the cross-check against PyTorch
 * (tests/sh/torch_crosscheck.py drives it).
 *
 *   test_crosscheck                              self-test: finite differences, given noise
 *                                                and masks, clipping, the first AdamW step
 *   test_crosscheck init PRESET LATENT SEED OUT.st
 *                                                a freshly initialised model of a preset for
 *                                                (1, 28, 28) inputs
 *   test_crosscheck step CONFIG MODEL.st IN.st OUTDIR
 *                                                one step of fz_trainer_step with the
 *                                                training settings of preset CONFIG
 *
 * IN.st (safetensors) holds x (B, C, H, W) F32, eps (B, Z) F32 and, for each Dropout layer
 * with p > 0, its keep-mask "mask.encoder.<i>" or "mask.decoder.<i>" (B, D) U8. step writes
 * into OUTDIR:
 *   model.st   the model after the optimiser step (parameters, running statistics,
 *              num_batches_tracked, and "optim.state" = Adam's m then v over the parameter
 *              block)
 *   grads.st   the gradients the optimiser used (after clipping), named as the parameters
 *   out.st     h (B, E) the encoder output, z (B, Z), xhat (B, C, H, W), and the F64
 *              scalars loss, recon, kl, grad_norm (before clipping), lr; its metadata
 *              "train" is the training configuration as JSON (fz_train_conf_json)
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "safetensors.h"
#include "train.h"

static int die(const char *what, const fz_err *e)
{
    fprintf(stderr, "test_crosscheck: %s: %s\n", what, e->msg);
    return 1;
}

/* ---- init ------------------------------------------------------------------------------ */

static int cmd_init(char **argv)
{
    fz_err e = {0};
    long latent, seed;
    if (fz_parse_long(argv[1], 0, 4096, &latent, "latent", &e) ||
        fz_parse_long(argv[2], 0, 1L << 40, &seed, "seed", &e))
        return die("init", &e);
    char *text = fz_arch_preset(argv[0], (int)latent, &e);
    if (!text) return die("init", &e);
    fz_model m;
    fz_shape in = {1, 28, 28};
    int rc = fz_model_create(&m, text, in, (uint64_t)seed, &e);
    free(text);
    if (rc) return die("init", &e);
    rc = fz_model_save(&m, argv[3], NULL, &e);
    fz_model_free(&m);
    return rc ? die("init", &e) : 0;
}

/* ---- step ------------------------------------------------------------------------------ */

/* Point every Dropout layer of net (with p > 0) at its mask "mask.<what>.<i>" (B, D). */
static int use_masks(fz_net *net, const char *what, const fz_st_file *f, int B, fz_err *e)
{
    for (int i = 0; i < net->n; i++) {
        fz_layer *L = &net->layers[i];
        if (L->kind != FZ_DROPOUT || L->p == 0.0f) continue;
        char name[64];
        snprintf(name, sizeof name, "mask.%s.%d", what, i);
        const fz_st_tensor *t = fz_st_find(f, name);
        size_t want = (size_t)B * fz_layer_in_size(L);
        if (!t || strcmp(t->dtype, "U8") != 0 || t->nbytes != want)
            return fz_fail(e, FZ_EDATA, "input: need tensor '%s' U8 of %zu bytes", name, want);
        fz_dropout_use_mask(L, fz_st_data(f, t));
    }
    return 0;
}

static int add_scalar(fz_st_writer *w, const char *name, const double *v, fz_err *e)
{
    return fz_st_add(w, name, "F64", v, sizeof *v, 0, NULL, e);
}

static int cmd_step(char **argv)
{
    const char *config = argv[0], *model_path = argv[1], *in_path = argv[2], *dir = argv[3];
    fz_err e = {0};
    fz_model m;
    if (fz_model_load(&m, model_path, &e)) return die("step", &e);
    int rc = 1;
    fz_trainer *t = NULL;
    fz_st_writer *w = NULL;
    char *conf = NULL;
    fz_st_file *f = fz_st_load(in_path, &e);
    if (!f) goto out;
    const fz_st_tensor *tx = fz_st_find(f, "x"), *te = fz_st_find(f, "eps");
    int Z = m.arch.latent, E = m.arch.kind == FZ_KIND_VAE ? 2 * Z : Z;
    if (!tx || tx->ndim != 4 || tx->shape[0] < 1 || tx->shape[0] > 4096) {
        fz_fail(&e, FZ_EDATA, "%s: need x (B, C, H, W) with 1 <= B <= 4096", in_path);
        goto out;
    }
    int B = (int)tx->shape[0];
    int64_t xs[4] = {B, m.in.c, m.in.h, m.in.w}, es[2] = {B, Z}, hs[2] = {B, E};
    const float *x = fz_st_f32(f, "x", 4, xs, &e);
    const float *eps = te ? fz_st_f32(f, "eps", 2, es, &e) : NULL;
    if (!x || (te && !eps)) goto out;
    if (use_masks(&m.enc, "encoder", f, B, &e) || use_masks(&m.dec, "decoder", f, B, &e))
        goto out;

    fz_train_conf c;
    fz_train_defaults(&c, config, m.arch.kind);
    c.batch = B;
    if (!(t = fz_trainer_new(&m, &c, &e))) goto out;
    conf = fz_train_conf_json(&c);
    if (!conf) {
        fz_fail(&e, FZ_ENOMEM, "out of memory");
        goto out;
    }
    if (eps) fz_trainer_set_noise(t, eps);
    fz_epoch_stats st;
    if (fz_trainer_step(t, x, B, &st, &e)) goto out;

    char path[4096];
    snprintf(path, sizeof path, "%s/model.st", dir);
    if (fz_model_save(&m, path, fz_trainer_optim(t), &e)) goto out;
    /* The gradient block has the parameter block's layout: save it under the same names. */
    fz_model g = m;
    g.params = m.grads;
    g.nmeta = 0;
    snprintf(path, sizeof path, "%s/grads.st", dir);
    if (fz_model_save(&g, path, NULL, &e)) goto out;

    double loss = st.loss, recon = st.recon, kl = st.kl, norm = st.grad_norm, lr = st.lr;
    const float *h = m.enc.act[m.enc.n - 1], *xhat = m.dec.act[m.dec.n - 1];
    snprintf(path, sizeof path, "%s/out.st", dir);
    if (!(w = fz_st_writer_new(&e)) || fz_st_add_f32(w, "h", h, 2, hs, &e) ||
        fz_st_add_f32(w, "z", fz_trainer_latent(t), 2, es, &e) ||
        fz_st_add_f32(w, "xhat", xhat, 4, xs, &e) || add_scalar(w, "loss", &loss, &e) ||
        add_scalar(w, "recon", &recon, &e) || add_scalar(w, "kl", &kl, &e) ||
        add_scalar(w, "grad_norm", &norm, &e) || add_scalar(w, "lr", &lr, &e) ||
        fz_st_set_meta(w, "train", conf, &e) || fz_st_write(w, path, &e))
        goto out;
    rc = 0;
out:
    if (rc) die("step", &e);
    fz_st_writer_free(w);
    free(conf);
    fz_trainer_free(t);
    fz_st_free(f);
    fz_model_free(&m);
    return rc;
}

/* ---- self-test ------------------------------------------------------------------------- */

/* A small network with every kind of layer the cross-check meets, smooth (silu, sigmoid)
 * so that finite differences are meaningful: input (1, 6, 6). */
static const char *SMALL =
    "kind = vae; latent = 2; sigma = softplus\n"
    "encoder = conv2d(3,3) silu bn flatten dropout(0.25) linear(2z)\n"
    "decoder = linear(12) bn silu dropout(0.5) linear(32) unflatten(2,4,4) convt2d(1,3) sigmoid\n";
enum { SB = 4, SZ = 2, SD = 36 };

typedef struct fixture {
    fz_model m;
    fz_trainer *t;
    float x[SB * SD];     /* (SB, 1, 6, 6) */
    float eps[SB * SZ];   /* (SB, SZ) */
    unsigned char mask_enc[SB * 48], mask_dec[SB * 12]; /* keep-masks (SB, D) */
} fixture;

/* Model, trainer (vae-conv's settings with the given clip and optimiser) and fixed inputs. */
static int fixture_init(fixture *fx, double clip, fz_opt_kind opt)
{
    fz_err e = {0};
    fz_shape in = {1, 6, 6};
    if (fz_model_create(&fx->m, SMALL, in, 7, &e)) return die("self-test model", &e);
    fz_rng r;
    fz_rng_seed(&r, 99);
    for (int i = 0; i < SB * SD; i++) fx->x[i] = (float)fz_rng_uniform(&r);
    for (int i = 0; i < SB * SZ; i++) fx->eps[i] = (float)fz_rng_normal(&r);
    for (int i = 0; i < SB * 48; i++) fx->mask_enc[i] = fz_rng_uniform(&r) >= 0.25;
    for (int i = 0; i < SB * 12; i++) fx->mask_dec[i] = fz_rng_uniform(&r) >= 0.5;
    fz_dropout_use_mask(&fx->m.enc.layers[4], fx->mask_enc);
    fz_dropout_use_mask(&fx->m.dec.layers[3], fx->mask_dec);
    fz_train_conf c;
    fz_train_defaults(&c, "vae-conv", FZ_KIND_VAE);
    c.batch = SB;
    c.clip = clip;
    c.opt = fz_opt_defaults(opt);
    if (opt == FZ_OPT_ADAMW) c.opt.weight_decay = 1e-2;
    fx->t = fz_trainer_new(&fx->m, &c, &e);
    if (!fx->t) return die("self-test trainer", &e);
    fz_trainer_set_noise(fx->t, fx->eps);
    return 0;
}

static void fixture_free(fixture *fx)
{
    fz_trainer_free(fx->t);
    fz_model_free(&fx->m);
}

/* The training loss at the current parameters, which are left as they were. */
static double loss_at(fixture *fx, float *save)
{
    fz_err e = {0};
    fz_epoch_stats st;
    memcpy(save, fx->m.params, fx->m.nparams * sizeof(float));
    if (fz_trainer_step(fx->t, fx->x, SB, &st, &e)) {
        die("self-test step", &e);
        st.loss = NAN;
    }
    memcpy(fx->m.params, save, fx->m.nparams * sizeof(float));
    return st.loss;
}

static double norm2(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

static void self_test(void)
{
    fixture fx;
    if (fixture_init(&fx, 0, FZ_OPT_ADAM)) {
        CHECK(0);
        return;
    }
    fz_model *m = &fx.m;
    size_t n = m->nparams;
    float *save = malloc(n * sizeof(float)), *grad = malloc(n * sizeof(float));
    float *p0 = malloc(n * sizeof(float));
    CHECK(save && grad && p0);
    if (!save || !grad || !p0) goto out;
    memcpy(p0, m->params, n * sizeof(float));

    /* 1. The analytic gradient against central differences of the loss (clip off), at
     * the largest gradient value and two others of each parameter tensor. */
    double L0 = loss_at(&fx, save);
    CHECK(isfinite(L0) && L0 > 0);
    memcpy(grad, m->grads, n * sizeof(float));
    CHECK_EQ_INT(m->step, 1);
    CHECK_EQ_INT(m->epoch, 0);
    double gmax = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(grad[i]));
    CHECK(gmax > 1e-3);
    const fz_net *nets[2] = {&m->enc, &m->dec};
    size_t base = 0;
    int checked = 0;
    for (int k = 0; k < 2; k++) {
        for (int l = 0; l < nets[k]->n; l++) {
            const fz_layer *L = &nets[k]->layers[l];
            size_t np = fz_layer_nparams(L), off = base + nets[k]->param_off[l];
            if (!np) continue;
            size_t big = 0;
            for (size_t i = 0; i < np; i++)
                if (fabs(grad[off + i]) > fabs(grad[off + big])) big = i;
            size_t pick[3] = {big, np / 2, np - 1};
            for (int j = 0; j < 3; j++) {
                size_t i = off + pick[j];
                const float h = 1e-2f, p = m->params[i];
                m->params[i] = p + h;
                double lp = loss_at(&fx, save);
                m->params[i] = p - h;
                double lm = loss_at(&fx, save);
                m->params[i] = p;
                double fd = (lp - lm) / (2.0 * h);
                CHECK_MSG(fabs(fd - grad[i]) <= 5e-3 * fabs(grad[i]) + 5e-4 * gmax,
                          "%s layer %d (%s) param %zu: analytic %.6g, finite difference %.6g",
                          k ? "decoder" : "encoder", l, fz_layer_kind_name(L->kind),
                          pick[j], grad[i], fd);
                checked++;
            }
        }
        base += nets[k]->nparams;
    }
    CHECK_EQ_INT(checked, 3 * 7);

    /* 2. Given noise and masks make the step deterministic; z is mu + sigma(s) * eps. */
    double L1 = loss_at(&fx, save);
    CHECK_MSG(L1 == L0, "%.17g vs %.17g", L1, L0);
    CHECK(memcmp(grad, m->grads, n * sizeof(float)) == 0);
    const float *h = m->enc.act[m->enc.n - 1], *z = fz_trainer_latent(fx.t);
    for (int b = 0; b < SB; b++)
        for (int j = 0; j < SZ; j++) {
            double mu = h[b * 2 * SZ + j], s = h[b * 2 * SZ + SZ + j];
            double want = mu + (log1p(exp(s)) + 1e-8) * fx.eps[b * SZ + j];
            CHECK_NEAR(z[b * SZ + j], want, 1e-5 * (1 + fabs(want)));
        }

    /* 3. A mask dropping everything in the encoder cuts the gradient of all that comes
     * before it, and of the weight after it. */
    memset(fx.mask_enc, 0, sizeof fx.mask_enc);
    loss_at(&fx, save);
    size_t lin = m->enc.param_off[5];
    for (size_t i = 0; i < lin; i++) CHECK_MSG(m->grads[i] == 0, "encoder gradient %zu", i);
    CHECK(norm2(m->grads + lin, 2 * SZ * 48) == 0);           /* linear(2z) weight */
    CHECK(norm2(m->grads + lin + 2 * SZ * 48, 2 * SZ) > 0);   /* its bias */

    /* 4. B out of range is an error. */
    fz_err e = {0};
    fz_epoch_stats st;
    CHECK(fz_trainer_step(fx.t, fx.x, SB + 1, &st, &e) == -1);
    CHECK_CONTAINS(e.msg, "batch of 5 rows");
    fixture_free(&fx);

    /* 5. Clipping and the first AdamW step: the optimiser sees the clipped gradient g and
     * moves each parameter to p * (1 - lr * wd) - lr * g / (|g| + eps). */
    if (fixture_init(&fx, 1e-3, FZ_OPT_ADAMW)) {
        CHECK(0);
        goto out;
    }
    m = &fx.m;
    memcpy(m->params, p0, n * sizeof(float));
    if (fz_trainer_step(fx.t, fx.x, SB, &st, &e)) {
        die("self-test step", &e);
        CHECK(0);
    }
    CHECK_NEAR(st.grad_norm, norm2(grad, n), 1e-4 * norm2(grad, n));
    CHECK_NEAR(norm2(m->grads, n), 1e-3, 1e-8);
    CHECK_NEAR(st.lr, 2e-3, 1e-12);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double g = m->grads[i];
        double want = p0[i] * (1 - 2e-3 * 1e-2) - 2e-3 * g / (fabs(g) + 1e-8);
        worst = fmax(worst, fabs(m->params[i] - want));
    }
    CHECK_MSG(worst <= 2e-7, "first AdamW step off by %g", worst);
    const fz_optim *o = fz_trainer_optim(fx.t);
    CHECK_EQ_INT(o->step, 1);
    CHECK_NEAR(o->m[0], 0.1 * m->grads[0], 1e-12);
    fixture_free(&fx);
out:
    free(save);
    free(grad);
    free(p0);
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "init") == 0) return cmd_init(argv + 2);
    if (argc == 6 && strcmp(argv[1], "step") == 0) return cmd_step(argv + 2);
    if (argc != 1) {
        fprintf(stderr, "usage: test_crosscheck [init PRESET LATENT SEED OUT.st | "
                        "step CONFIG MODEL.st IN.st OUTDIR]\n");
        return 2;
    }
    self_test();
    return check_report("test_crosscheck");
}
