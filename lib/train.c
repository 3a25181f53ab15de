/* train.c - the training loop of autoencoders and VAEs. */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "json.h"
#include "threads.h"

void fz_train_defaults(fz_train_conf *c, const char *preset, fz_model_kind kind)
{
    memset(c, 0, sizeof *c);
    c->epochs = 10;
    c->seed = 0;
    c->clip = 0;
    c->kl_form = FZ_KL_LOGVAR;
    c->kl_red = FZ_RED_MEAN_BATCH;
    c->corrupt = FZ_CORRUPT_NONE;
    c->gamma = 1;
    c->fuzzy_norm = FZ_MASK_PER_BATCH;
    int article = preset && (strcmp(preset, "vae-conv") == 0 || strncmp(preset, "fcvae-", 6) == 0);
    if (article) {
        /* The fuzzy-CVAE article's settings (every fcvae-* preset takes them). */
        c->batch = 256;
        c->opt = fz_opt_defaults(FZ_OPT_ADAMW);
        c->opt.weight_decay = 1e-2;
        c->sched = fz_sched_const(2e-3);
        c->clip = 1.0;
        c->recon = FZ_RECON_BCE;
        c->recon_red = FZ_RED_ROWS;
        c->recon_weight = 1;
        c->beta = 1;
    } else if (kind == FZ_KIND_VAE) {
        /* (784 * BCE + KL) / 2 / 784 of the Keras model: per-image BCE and KL, halved and
         * divided by the number of pixels. */
        c->batch = 500;
        c->opt = fz_opt_defaults(FZ_OPT_ADAM);
        c->sched = fz_sched_const(1e-4);
        c->recon = FZ_RECON_BCE;
        c->recon_red = FZ_RED_MEAN_BATCH;
        c->recon_weight = 1.0 / 1568.0;
        c->beta = 1.0 / 1568.0;
    } else {
        c->batch = 64;
        c->opt = fz_opt_defaults(FZ_OPT_ADAM);
        c->sched = fz_sched_const(1e-3);
        c->recon = FZ_RECON_SQERR;
        c->recon_red = FZ_RED_SUM;
        c->recon_weight = 1;
        c->beta = 1;
    }
}

int fz_train_conf_check(const fz_train_conf *c, fz_err *err)
{
    if (c->epochs < 1) return fz_fail(err, FZ_EUSAGE, "epochs must be at least 1");
    if (c->batch < 1 || c->batch > 1 << 20)
        return fz_fail(err, FZ_EUSAGE, "batch size %d out of range [1, 1048576]", c->batch);
    if (fz_opt_conf_check(&c->opt, err) || fz_sched_check(&c->sched, err)) return -1;
    if (!(c->gamma >= 0)) return fz_fail(err, FZ_EUSAGE, "the fuzzy weight must be >= 0");
    if (!(c->redraw >= 0 && c->redraw <= 1))
        return fz_fail(err, FZ_EUSAGE, "the redraw probability must be in [0, 1]");
    if (!(c->recon_weight >= 0) || !(c->beta >= 0))
        return fz_fail(err, FZ_EUSAGE, "loss weights must be >= 0");
    if (c->corrupt != FZ_CORRUPT_NONE && !(c->corrupt_level >= 0))
        return fz_fail(err, FZ_EUSAGE, "corruption level must be >= 0");
    if (c->corrupt == FZ_CORRUPT_FLIP && c->corrupt_level > 1)
        return fz_fail(err, FZ_EUSAGE, "flip probability must be in [0, 1]");
    return 0;
}

static const char *const strategy_names[] = {"all", "ae", "head", "classifier", "vclassifier"};

const char *fz_strategy_name(fz_strategy s)
{
    return (unsigned)s < 5 ? strategy_names[s] : "?";
}

int fz_strategy_parse(const char *s, fz_strategy *out, fz_err *err)
{
    for (int i = 0; i < 5; i++)
        if (strcmp(s, strategy_names[i]) == 0) {
            *out = (fz_strategy)i;
            return 0;
        }
    return fz_fail(err, FZ_EUSAGE,
                   "strategy '%s': expected all, ae, head, classifier or vclassifier", s);
}

int fz_freeze_parse(const char *s, unsigned *out, fz_err *err)
{
    static const struct {
        const char *name;
        unsigned bit;
    } groups[] = {{"encoder", FZ_FREEZE_ENCODER}, {"decoder", FZ_FREEZE_DECODER},
                  {"centers", FZ_FREEZE_CENTERS}, {"scales", FZ_FREEZE_SCALES},
                  {"lower", FZ_FREEZE_LOWER},     {"bell", FZ_FREEZE_BELL},
                  {"conseq", FZ_FREEZE_CONSEQ}};
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    *out = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        size_t i;
        for (i = 0; i < sizeof groups / sizeof groups[0]; i++)
            if (strcmp(tok, groups[i].name) == 0) break;
        if (i == sizeof groups / sizeof groups[0])
            return fz_fail(err, FZ_EUSAGE,
                           "freeze '%s': expected encoder, decoder, centers, scales, lower, bell or "
                           "conseq", tok);
        *out |= groups[i].bit;
    }
    return 0;
}

static const char *recon_name(fz_recon r) { return r == FZ_RECON_BCE ? "bce" : "sqerr"; }

char *fz_train_conf_json(const fz_train_conf *c)
{
    fz_sbuf b;
    fz_sbuf_init(&b);
    fz_sbuf_printf(&b, "{\"epochs\":%d,\"batch\":%d,\"seed\":%llu,\"optim\":\"%s\",\"lr\":", c->epochs,
                   c->batch, (unsigned long long)c->seed, fz_opt_kind_name(c->opt.kind));
    fz_sbuf_json_f64(&b, c->sched.lr);
    fz_sbuf_printf(&b, ",\"weight_decay\":");
    fz_sbuf_json_f64(&b, c->opt.weight_decay);
    fz_sbuf_printf(&b, ",\"clip\":");
    fz_sbuf_json_f64(&b, c->clip);
    fz_sbuf_printf(&b, ",\"recon\":\"%s\",\"reduction\":\"%s\",\"recon_weight\":", recon_name(c->recon),
                   fz_reduction_name(c->recon_red));
    fz_sbuf_json_f64(&b, c->recon_weight);
    fz_sbuf_printf(&b, ",\"beta\":");
    fz_sbuf_json_f64(&b, c->beta);
    fz_sbuf_printf(&b, ",\"kl\":\"%s\",\"corrupt\":\"%s\",\"corrupt_level\":",
                   c->kl_form == FZ_KL_SOFTPLUS ? "softplus" : "logvar",
                   c->corrupt == FZ_CORRUPT_GAUSS ? "gauss"
                   : c->corrupt == FZ_CORRUPT_FLIP ? "flip"
                                                   : "none");
    fz_sbuf_json_f64(&b, c->corrupt_level);
    fz_sbuf_printf(&b, ",\"recon_shift\":");
    fz_sbuf_json_f64(&b, c->recon_shift);
    fz_sbuf_printf(&b, ",\"gamma\":");
    fz_sbuf_json_f64(&b, c->gamma);
    fz_sbuf_printf(&b, ",\"fuzzy_norm\":\"%s\",\"redraw\":",
                   c->fuzzy_norm == FZ_MASK_PER_ACTIVE ? "labeled" : "batch");
    fz_sbuf_json_f64(&b, c->redraw);
    fz_sbuf_printf(&b, ",\"strategy\":\"%s\",\"two_step\":%s,\"freeze\":%u}",
                   fz_strategy_name(c->strategy), c->two_step ? "true" : "false", c->freeze);
    return fz_sbuf_take(&b);
}

struct fz_trainer {
    fz_model *m;
    fz_train_conf c;
    fz_optim opt;
    int B, Z, E;        /* max batch, latent, encoder output width */
    size_t D;           /* input values per row */
    size_t *order;      /* (n) shuffled row indices, sized on demand */
    size_t order_cap;
    float *x;           /* (B, D) clean batch */
    float *xin;         /* (B, D) corrupted batch */
    float *mu, *s;      /* (B, Z) */
    float *eps, *z;     /* (B, Z) */
    float *dxhat;       /* (B, D) */
    float *dz;          /* (B, Z) */
    float *dmu, *ds;    /* (B, Z) */
    float *dh;          /* (B, E) */
    int K;              /* fuzzy outputs (0: no fuzzy part in the loss) */
    unsigned char *frozen; /* (nparams) parameters the strategy leaves alone, or NULL */
    unsigned char *frozen2[2]; /* two-step: (nparams) for the VAE step and the head step */
    fz_strategy cur;    /* the strategy of the step under way */
    const float *hin;   /* (B, Z) the head's input of the latest forward: mu or z */
    float *memb, *tgt, *msk, *dm; /* (B, K) */
    float *dmf;         /* (B, Z) gradient of the fuzzy loss wrt mu */
    float *xt;          /* (B, D) reconstruction target when recon_shift != 0 */
    int32_t *lab;       /* (B) labels of the batch */
    double last_fuzzy;  /* fuzzy loss of the latest batch */
    size_t last_labeled, last_correct;
    const float *given_eps; /* (B, Z) noise supplied by fz_trainer_set_noise, or NULL */
    const float *zlast;  /* (B, Z) z of the latest forward */
    int grads_zero;      /* the gradients are all zero (the epoch loop's optimiser step
                            zeroes them, so that the next batch need not) */
    double early_lr;     /* > 0: batch_step begins the update of the decoder's parameters
                            at this rate once their gradients are final (early_update) */
    int early_begun;     /* that update is running (fz_optim_step_zero_begin) */
};

void fz_trainer_free(fz_trainer *t)
{
    if (!t) return;
    fz_optim_free(&t->opt);
    free(t->order);
    free(t->x);
    free(t->xin);
    free(t->mu);
    free(t->s);
    free(t->eps);
    free(t->z);
    free(t->dxhat);
    free(t->dz);
    free(t->dmu);
    free(t->ds);
    free(t->dh);
    free(t->memb);
    free(t->tgt);
    free(t->msk);
    free(t->dm);
    free(t->dmf);
    free(t->xt);
    free(t->lab);
    free(t->frozen);
    free(t->frozen2[0]);
    free(t->frozen2[1]);
    free(t);
}

/* The parameters a strategy (and the freeze bits) leave alone: (nparams) bytes, 1 = frozen.
 * The block is encoder | decoder | head or fuzzy layer. */
static unsigned char *frozen_mask(const fz_model *m, fz_strategy st, unsigned freeze)
{
    unsigned char *f = calloc(m->nparams ? m->nparams : 1, 1);
    if (!f) return NULL;
    size_t enc = m->enc.nparams, dec_end = m->fuzzy_off;
    if (st == FZ_STRAT_AE) memset(f + dec_end, 1, m->nparams - dec_end);
    if (st == FZ_STRAT_HEAD) memset(f, 1, dec_end);
    if (st == FZ_STRAT_CLASSIFIER || st == FZ_STRAT_VCLASSIFIER) memset(f + enc, 1, dec_end - enc);
    if (freeze & FZ_FREEZE_ENCODER) memset(f, 1, enc);
    if (freeze & FZ_FREEZE_DECODER) memset(f + enc, 1, dec_end - enc);
    if (m->has_fuzzy && (freeze & 0xff)) {
        /* the fuzzy layer marks its own groups in its slice */
        fz_fuzzy tmp = m->fuzzy;
        tmp.freeze = freeze & 0xff;
        size_t n = fz_fuzzy_nparams(&tmp);
        unsigned char *g = calloc(n ? n : 1, 1);
        if (!g) {
            free(f);
            return NULL;
        }
        fz_fuzzy_frozen(&tmp, g);
        for (size_t i = 0; i < n; i++) f[m->fuzzy_off + i] |= g[i];
        free(g);
    }
    return f;
}

fz_trainer *fz_trainer_new(fz_model *m, const fz_train_conf *c, fz_err *err)
{
    if (fz_train_conf_check(c, err)) return NULL;
    fz_trainer *t = calloc(1, sizeof *t);
    if (!t) {
        fz_fail(err, FZ_ENOMEM, "out of memory");
        return NULL;
    }
    t->m = m;
    t->c = *c;
    t->B = c->batch;
    t->Z = m->arch.latent;
    t->E = m->arch.kind == FZ_KIND_VAE ? 2 * t->Z : t->Z;
    t->D = m->in_count;
    if (fz_optim_init(&t->opt, &c->opt, m->nparams, err)) goto fail;
    if (m->opt_state) {
        if (strcmp(m->opt_kind, fz_opt_kind_name(c->opt.kind)) != 0 ||
            m->opt_len != fz_optim_state_len(&t->opt)) {
            fz_fail(err, FZ_EUSAGE,
                    "the checkpoint's optimiser is %s with %zu state values; this run asks for %s",
                    m->opt_kind, m->opt_len, fz_opt_kind_name(c->opt.kind));
            goto fail;
        }
        if (fz_optim_restore(&t->opt, m->opt_state, m->opt_len, (double)m->step, err)) goto fail;
    }
    size_t BD = (size_t)t->B * t->D, BZ = (size_t)t->B * t->Z, BE = (size_t)t->B * t->E;
    t->x = malloc(BD * sizeof(float));
    t->xin = malloc(BD * sizeof(float));
    t->dxhat = malloc(BD * sizeof(float));
    t->mu = malloc(BZ * sizeof(float));
    t->s = malloc(BZ * sizeof(float));
    t->eps = malloc(BZ * sizeof(float));
    t->z = malloc(BZ * sizeof(float));
    t->dz = malloc(BZ * sizeof(float));
    t->dmu = malloc(BZ * sizeof(float));
    t->ds = malloc(BZ * sizeof(float));
    t->dh = malloc(BE * sizeof(float));
    t->K = fz_model_terms(m);
    size_t BK = (size_t)t->B * (t->K ? t->K : 1);
    t->memb = calloc(BK, sizeof(float));
    t->tgt = calloc(BK, sizeof(float));
    t->msk = calloc(BK, sizeof(float));
    t->dm = calloc(BK, sizeof(float));
    t->dmf = calloc(BZ, sizeof(float));
    t->xt = malloc(BD * sizeof(float));
    t->lab = malloc((size_t)t->B * sizeof(int32_t));
    if (!t->x || !t->xin || !t->dxhat || !t->mu || !t->s || !t->eps || !t->z || !t->dz ||
        !t->dmu || !t->ds || !t->dh || !t->memb || !t->tgt || !t->msk || !t->dm || !t->dmf ||
        !t->xt || !t->lab) {
        fz_fail(err, FZ_ENOMEM, "out of memory for batches of %d", t->B);
        goto fail;
    }
    for (int b = 0; b < t->B; b++) t->lab[b] = -1;
    t->cur = c->strategy;
    if (c->strategy != FZ_STRAT_AE && c->strategy != FZ_STRAT_ALL && !t->K) {
        fz_fail(err, FZ_EUSAGE, "strategy %s needs a model with a fuzzy layer or a head",
                fz_strategy_name(c->strategy));
        goto fail;
    }
    if (c->two_step && (c->strategy != FZ_STRAT_ALL || !t->K)) {
        fz_fail(err, FZ_EUSAGE, "two steps per batch need strategy all and a fuzzy layer or head");
        goto fail;
    }
    if (c->strategy != FZ_STRAT_ALL || c->freeze) {
        if (!(t->frozen = frozen_mask(m, c->strategy, c->freeze))) goto oom;
    }
    if (c->two_step) {
        if (!(t->frozen2[0] = frozen_mask(m, FZ_STRAT_AE, c->freeze)) ||
            !(t->frozen2[1] = frozen_mask(m, FZ_STRAT_CLASSIFIER, c->freeze)))
            goto oom;
    }
    if (fz_model_reserve(m, t->B, err)) goto fail;
    /* Map every page the steps will use now, so that the first step does not pay for the
     * page faults (vae-conv: about 400 MB, about 5% of a 20-batch epoch). */
    fz_touch_zero(m->grads, m->nparams * sizeof(float));
    t->grads_zero = 1;
    if (!m->opt_state) fz_touch_zero(t->opt.state, fz_optim_state_len(&t->opt) * sizeof(float));
    fz_net_touch(&m->enc);
    fz_net_touch(&m->dec);
    if (m->has_head) fz_net_touch(&m->head);
    return t;
oom:
    fz_fail(err, FZ_ENOMEM, "out of memory");
fail:
    fz_trainer_free(t);
    return NULL;
}

const fz_optim *fz_trainer_optim(const fz_trainer *t) { return &t->opt; }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void corrupt(const fz_train_conf *c, const float *x, float *out, size_t n, fz_rng *rng)
{
    switch (c->corrupt) {
    case FZ_CORRUPT_GAUSS:
        for (size_t i = 0; i < n; i++) out[i] = x[i] + (float)(c->corrupt_level * fz_rng_normal(rng));
        break;
    case FZ_CORRUPT_FLIP:
        /* a flipped pixel becomes 1 - x (0 <-> 1 for binary images) */
        for (size_t i = 0; i < n; i++)
            out[i] = fz_rng_uniform(rng) < c->corrupt_level ? 1.0f - x[i] : x[i];
        break;
    default: memcpy(out, x, n * sizeof(float));
    }
}

/* Forward of one batch of B rows in t->x; computes the loss parts and, when train, the
 * gradients into the model's gradient block. Returns the weighted total. */
static double batch_step(fz_trainer *t, int B, int train, fz_rng *rng, double *recon_out,
                         double *kl_out)
{
    fz_model *m = t->m;
    const fz_train_conf *c = &t->c;
    size_t D = t->D, Z = (size_t)t->Z;
    int vae = m->arch.kind == FZ_KIND_VAE;
    const float *xin = t->x;
    if (train && c->corrupt != FZ_CORRUPT_NONE) {
        corrupt(c, t->x, t->xin, (size_t)B * D, rng);
        xin = t->xin;
    }
    fz_strategy st = t->cur;
    int use_dec = !train || st == FZ_STRAT_ALL || st == FZ_STRAT_AE;
    int use_kl = vae && (!train || (st != FZ_STRAT_HEAD && st != FZ_STRAT_CLASSIFIER));
    double gamma = st == FZ_STRAT_AE ? 0 : c->gamma;
    int enc_train = train && st != FZ_STRAT_HEAD;
    const float *h = fz_net_forward(&m->enc, xin, B, enc_train, rng); /* (B, E) */
    const float *zin = h;
    if (!vae) memcpy(t->mu, h, (size_t)B * Z * sizeof(float)); /* an ae's code is its mu */
    if (vae) {
        for (int b = 0; b < B; b++) {
            memcpy(t->mu + b * Z, h + (size_t)b * 2 * Z, Z * sizeof(float));
            memcpy(t->s + b * Z, h + (size_t)b * 2 * Z + Z, Z * sizeof(float));
        }
        fz_noise noise = !train ? FZ_NOISE_NONE : t->given_eps ? FZ_NOISE_GIVEN : FZ_NOISE_DRAW;
        if (noise == FZ_NOISE_GIVEN) memcpy(t->eps, t->given_eps, (size_t)B * Z * sizeof(float));
        fz_reparam(m->arch.sigma, noise, t->mu, t->s, (size_t)B * Z, t->eps, rng, t->z, NULL);
        zin = t->z;
    }
    t->zlast = zin;
    /* The fuzzy layer looks at mu (not the sampled z): memberships of where the input is. */
    t->last_fuzzy = 0;
    t->last_labeled = t->last_correct = 0;
    if (t->K) {
        /* a variational classifier's head sees the sampled z in training */
        t->hin = (st == FZ_STRAT_VCLASSIFIER && train && vae) ? t->z : t->mu;
        if (m->has_head)
            memcpy(t->memb, fz_net_forward(&m->head, t->hin, B, train, rng),
                   (size_t)B * t->K * sizeof(float));
        else
            fz_fuzzy_forward(&m->fuzzy, t->hin, t->memb, B);
        if (train) fz_zero(t->dm, (size_t)B * t->K);
        t->last_fuzzy = fz_masked_sqerr(t->memb, t->tgt, t->msk, (size_t)B, (size_t)t->K,
                                        c->fuzzy_norm, (float)gamma, train ? t->dm : NULL);
        int nc = c->nclasses > 0 && c->nclasses <= t->K ? c->nclasses : t->K;
        for (int b = 0; b < B; b++) {
            if (t->lab[b] < 0 || t->lab[b] >= nc) continue;
            const float *mb = t->memb + (size_t)b * t->K;
            int best = 0;
            for (int k = 1; k < nc; k++)
                if (mb[k] > mb[best]) best = k;
            t->last_labeled++;
            t->last_correct += best == t->lab[b];
        }
    }
    const float *target = t->x;
    if (c->recon_shift != 0) {
        for (size_t i = 0; i < (size_t)B * D; i++) t->xt[i] = t->x[i] + (float)c->recon_shift;
        target = t->xt;
    }
    double recon = 0, kl = 0;
    if (use_dec) {
        const float *xhat = fz_net_forward(&m->dec, zin, B, train, rng); /* (B, D) */
        size_t axis = (size_t)m->in.w;
        float *g = NULL;
        if (train) {
            fz_zero(t->dxhat, (size_t)B * D);
            g = t->dxhat;
        }
        recon = c->recon == FZ_RECON_BCE
                    ? fz_bce(xhat, target, (size_t)B, D, c->recon_red, axis, (float)c->recon_weight, g)
                    : fz_sqerr(xhat, target, (size_t)B, D, c->recon_red, axis, (float)c->recon_weight, g);
    }
    if (vae && train) {
        fz_zero(t->dmu, (size_t)B * Z);
        fz_zero(t->ds, (size_t)B * Z);
    }
    if (use_kl) {
        float *dmu = train ? t->dmu : NULL, *ds = train ? t->ds : NULL;
        kl = c->kl_form == FZ_KL_SOFTPLUS
                 ? fz_kl_softplus(t->mu, t->s, (size_t)B, Z, c->kl_red, 1, (float)c->beta, dmu, ds)
                 : fz_kl_logvar(t->mu, t->s, (size_t)B, Z, c->kl_red, 1, (float)c->beta, dmu, ds);
    }
    *recon_out = recon;
    *kl_out = kl;
    if (train) {
        if (!t->grads_zero) fz_zero_par(m->grads, m->nparams);
        t->grads_zero = 0;
        float *dz = vae ? t->dz : t->dh; /* (B, Z): what reaches z from the decoder (and head) */
        if (use_dec) fz_net_backward(&m->dec, zin, t->dxhat, dz, B);
        else fz_zero(dz, (size_t)B * Z);
        /* Nothing below writes the decoder's gradients: their update can run on a worker
         * while this thread goes on through the encoder (early_update). */
        if (use_dec && t->early_lr > 0)
            t->early_begun = fz_optim_step_zero_begin(&t->opt, m->params, m->grads, t->frozen,
                                                      t->early_lr, m->enc.nparams,
                                                      m->enc.nparams + m->dec.nparams) == 0;
        if (t->K) { /* (B, K) -> the head's parameter gradients and dmf (B, Z) */
            if (m->has_head) fz_net_backward(&m->head, t->hin, t->dm, t->dmf, B);
            else fz_fuzzy_backward(&m->fuzzy, t->hin, t->memb, t->dm, t->dmf, B);
            /* into z (a variational classifier's head input) or into mu */
            float *into = (t->hin == t->z && vae) ? dz : vae ? t->dmu : t->dh;
            for (size_t i = 0; i < (size_t)B * Z; i++) into[i] += t->dmf[i];
        }
        if (st != FZ_STRAT_HEAD) { /* the frozen encoder of HEAD needs no gradient */
            if (vae) {
                fz_reparam_backward(m->arch.sigma, t->s, t->eps, t->dz, (size_t)B * Z, t->dmu, t->ds);
                for (int b = 0; b < B; b++) {
                    memcpy(t->dh + (size_t)b * 2 * Z, t->dmu + b * Z, Z * sizeof(float));
                    memcpy(t->dh + (size_t)b * 2 * Z + Z, t->ds + b * Z, Z * sizeof(float));
                }
            }
            fz_net_backward(&m->enc, xin, t->dh, NULL, B);
        }
    }
    return c->recon_weight * recon + (use_kl ? c->beta * kl : 0) + gamma * t->last_fuzzy;
}

static int ensure_order(fz_trainer *t, size_t n, fz_err *err)
{
    if (n <= t->order_cap) return 0;
    size_t *o = realloc(t->order, n * sizeof *o);
    if (!o) return fz_fail(err, FZ_ENOMEM, "out of memory");
    t->order = o;
    t->order_cap = n;
    return 0;
}

/* The rows' features, copied over the threads from 2^14 floats (vae-mlp's 500 x 784 floats
 * a batch were 1.7% of its two-thread training time, all on one core; ae-mlp's 64 x 784,
 * rows scattered over 188 MB that mostly miss every cache, took 60 us of a 0.8 ms step on
 * one thread and 33 us on two), one block of rows per thread. A copy: the same result on
 * any thread count. */
typedef struct gather_job {
    float *dst;
    const float *src;
    const size_t *idx;
    size_t D;
} gather_job;

static void gather_rows_piece(void *arg, size_t k, size_t lo, size_t hi)
{
    const gather_job *g = arg;
    (void)k;
    for (size_t b = lo; b < hi; b++)
        memcpy(g->dst + b * g->D, g->src + g->idx[b] * g->D, g->D * sizeof(float));
}

#define FZ_GATHER_PAR_MIN ((size_t)1 << 14) /* floats */

void fz_gather_rows(float *dst, const float *src, const size_t *idx, int n, size_t D)
{
    if (n <= 0) return;
    gather_job g = {dst, src, idx, D};
    int T = (size_t)n * D >= FZ_GATHER_PAR_MIN ? fz_blas_threads() : 1;
    if (T < 1) T = 1;
    fz_threads_pieces(T, (size_t)n, ((size_t)n + T - 1) / T, gather_rows_piece, &g);
}

/* Copy rows idx of ds into the batch buffers; with redraw, each row's labels are kept with
 * probability c.redraw (drawn from the epoch's rng) and its mask is zero otherwise. */
static void gather_at(fz_trainer *t, const fz_trainset *ds, const size_t *idx, int n, int at,
                      fz_rng *rng)
{
    size_t K = (size_t)t->K;
    fz_gather_rows(t->x + (size_t)at * t->D, ds->x, idx, n, t->D);
    for (int b = at; b < at + n; b++, idx++) {
        t->lab[b] = ds->label ? ds->label[*idx] : -1;
        if (!K) continue;
        if (ds->k == K) {
            memcpy(t->tgt + b * K, ds->target + *idx * K, K * sizeof(float));
            memcpy(t->msk + b * K, ds->mask + *idx * K, K * sizeof(float));
            if (t->c.redraw > 0 && rng && !(fz_rng_uniform(rng) < t->c.redraw))
                fz_zero(t->msk + b * K, K);
        } else {
            fz_zero(t->msk + b * K, K); /* no labels: the fuzzy part does not train */
        }
    }
}

/* The update; with zero_grads, the gradients are zeroed in the same pass (the epoch loop:
 * the next batch then skips its own zeroing pass). fz_trainer_step leaves them in place:
 * its callers read the gradients the update used. */
/* The update; with zero_grads the gradients are zeroed in its pass, and norm (if not NULL)
 * receives their norm measured in it. */
static void update(fz_trainer *t, const unsigned char *frozen, double lr, int zero_grads,
                   float grad_scale, double *norm)
{
    fz_model *m = t->m;
    if (zero_grads) {
        fz_optim_step_zero(&t->opt, m->params, m->grads, frozen, lr, grad_scale, norm);
        t->grads_zero = 1;
    } else {
        fz_optim_step(&t->opt, m->params, m->grads, frozen, lr);
    }
}

/* The gradient norm, and the factor the update is to scale the gradients by to clip them:
 * the epoch loop's update applies it piece by piece (zero_grads); for fz_trainer_step the
 * gradients are scaled here, so that they stay as the update used them. */
static double grad_norm(fz_trainer *t, int zero_grads, float *grad_scale)
{
    fz_model *m = t->m;
    if (zero_grads) return fz_grad_norm(m->grads, m->nparams, t->c.clip, grad_scale);
    *grad_scale = 1.0f;
    return fz_clip_grad_norm(m->grads, m->nparams, t->c.clip);
}

/* The reasons an optimiser step stops training. */
static int loss_failed(fz_err *err, double loss, long epoch, long batch, double recon, double kl)
{
    return fz_fail(err, FZ_EDATA,
                   "the loss became %s in epoch %ld, batch %ld (recon %g, kl %g): "
                   "try a lower learning rate or gradient clipping",
                   isnan(loss) ? "NaN" : "infinite", epoch, batch, recon, kl);
}

static int grad_failed(fz_err *err, long epoch, long batch)
{
    return fz_fail(err, FZ_EDATA, "the gradient became non-finite in epoch %ld, batch %ld",
                   epoch, batch);
}

/* One optimiser step on the B rows in t->x: batch_step, clipping, the update. Errors name
 * the epoch and batch. */
static int train_batch(fz_trainer *t, int B, fz_rng *rng, double lr, long epoch, long batch,
                       int zero_grads, double *loss, double *recon, double *kl, double *norm,
                       fz_err *err)
{
    if (t->c.two_step) {
        /* First the VAE's loss with the head frozen, then the head's loss with the decoder
         * frozen, each with its own optimiser step; the reported parts add up both. */
        double fuzzy = 0;
        for (int k = 0; k < 2; k++) {
            t->cur = k == 0 ? FZ_STRAT_AE : FZ_STRAT_CLASSIFIER;
            double l = batch_step(t, B, 1, rng, k == 0 ? recon : &fuzzy, k == 0 ? kl : &fuzzy);
            if (k == 1) fuzzy = t->last_fuzzy;
            float scale;
            *norm = grad_norm(t, zero_grads, &scale);
            if (!isfinite(l) || !isfinite(*norm)) {
                t->cur = FZ_STRAT_ALL;
                return fz_fail(err, FZ_EDATA,
                               "the loss or its gradient became non-finite in epoch %ld, batch "
                               "%ld (%s step): try a lower learning rate or gradient clipping",
                               epoch, batch, k == 0 ? "VAE" : "head");
            }
            update(t, t->frozen2[k], lr, zero_grads, scale, NULL);
        }
        t->cur = FZ_STRAT_ALL;
        t->last_fuzzy = fuzzy;
        *loss = t->c.recon_weight * *recon + t->c.beta * *kl + t->c.gamma * fuzzy;
        return 0;
    }
    /* Without clipping the update needs no norm first: the decoder's part of it can begin
     * as soon as the decoder's gradients are final, on a worker that would otherwise wait
     * while this thread runs the encoder's small layers (the same bits: each piece of the
     * update is computed as in one pass, the norm's pieces added in order). */
    int in_update = zero_grads && !(t->c.clip > 0); /* the norm measured in the update */
    t->early_lr = in_update ? lr : 0;
    t->early_begun = 0;
    *loss = batch_step(t, B, 1, rng, recon, kl);
    t->early_lr = 0;
    if (t->early_begun) {
        t->early_begun = 0;
        fz_optim_step_zero_end(&t->opt, norm);
        t->grads_zero = 1;
        if (!isfinite(*loss)) return loss_failed(err, *loss, epoch, batch, *recon, *kl);
        return isfinite(*norm) ? 0 : grad_failed(err, epoch, batch);
    }
    if (!isfinite(*loss)) return loss_failed(err, *loss, epoch, batch, *recon, *kl);
    /* Without clipping the norm is only reported (and a non-finite one stops training),
     * so the epoch loop measures it inside the update's pass instead of in a pass of its
     * own; a non-finite gradient then spoils this step's parameters, which the caller
     * drops with the epoch (fz-train keeps the last checkpoint). */
    float scale = 1.0f;
    if (!in_update) *norm = grad_norm(t, zero_grads, &scale);
    if (!in_update && !isfinite(*norm)) return grad_failed(err, epoch, batch);
    update(t, t->frozen, lr, zero_grads, scale, in_update ? norm : NULL);
    return isfinite(*norm) ? 0 : grad_failed(err, epoch, batch);
}

void fz_trainer_set_noise(fz_trainer *t, const float *eps) { t->given_eps = eps; }

const float *fz_trainer_latent(const fz_trainer *t) { return t->zlast; }

int fz_trainer_step(fz_trainer *t, const float *x, int B, fz_epoch_stats *st, fz_err *err)
{
    fz_model *m = t->m;
    memset(st, 0, sizeof *st);
    if (B < 1 || B > t->B)
        return fz_fail(err, FZ_EUSAGE, "batch of %d rows (this trainer takes 1 to %d)", B, t->B);
    memcpy(t->x, x, (size_t)B * t->D * sizeof(float));
    long epoch = m->epoch + 1;
    fz_rng rng;
    fz_rng_seed(&rng, t->c.seed * 0x9e3779b97f4a7c15ULL ^
                          (0xd1b54a32d192ed03ULL * (uint64_t)(t->opt.step + 1)));
    double t0 = now();
    st->lr = fz_sched_lr(&t->c.sched, epoch - 1);
    if (train_batch(t, B, &rng, st->lr, epoch, 1, 0, &st->loss, &st->recon, &st->kl,
                    &st->grad_norm, err))
        return -1;
    st->samples = (size_t)B;
    st->seconds = now() - t0;
    m->step = t->opt.step;
    return 0;
}

int fz_trainer_epoch(fz_trainer *t, const fz_trainset *ds, fz_progress_fn progress, void *ctx,
                     fz_epoch_stats *st, fz_err *err)
{
    fz_model *m = t->m;
    memset(st, 0, sizeof *st);
    if (ds->d != t->D)
        return fz_fail(err, FZ_EDATA, "data rows have %zu values, the model takes %zu", ds->d, t->D);
    if (ds->n == 0) return fz_fail(err, FZ_EDATA, "no training rows");
    if (ensure_order(t, ds->n, err)) return -1;
    long epoch = m->epoch + 1;
    fz_rng rng;
    /* One stream of random numbers per epoch: resuming at an epoch boundary repeats it. */
    fz_rng_seed(&rng, t->c.seed * 0x9e3779b97f4a7c15ULL + (uint64_t)epoch);
    for (size_t i = 0; i < ds->n; i++) t->order[i] = i;
    fz_rng_shuffle_idx(&rng, t->order, ds->n);
    double lr = fz_sched_lr(&t->c.sched, epoch - 1);
    st->lr = lr;
    long nb = (long)((ds->n + (size_t)t->B - 1) / (size_t)t->B);
    double t0 = now(), sum_loss = 0, sum_recon = 0, sum_kl = 0, sum_norm = 0, sum_fuzzy = 0;
    for (long bi = 0; bi < nb; bi++) {
        size_t start = (size_t)bi * (size_t)t->B;
        int B = (int)((ds->n - start) < (size_t)t->B ? ds->n - start : (size_t)t->B);
        gather_at(t, ds, t->order + start, B, 0, &rng);
        double loss, recon, kl, norm;
        if (train_batch(t, B, &rng, lr, epoch, bi + 1, 1, &loss, &recon, &kl, &norm, err)) return -1;
        sum_loss += loss;
        sum_recon += recon;
        sum_kl += kl;
        sum_norm += norm;
        sum_fuzzy += t->last_fuzzy;
        st->fuzzy = sum_fuzzy / (double)(bi + 1);
        st->labeled += t->last_labeled;
        st->correct += t->last_correct;
        st->samples += (size_t)B;
        st->loss = sum_loss / (double)(bi + 1);
        st->recon = sum_recon / (double)(bi + 1);
        st->kl = sum_kl / (double)(bi + 1);
        st->grad_norm = sum_norm / (double)(bi + 1);
        st->seconds = now() - t0;
        if (progress && progress(ctx, epoch, bi + 1, nb, st)) return 1;
    }
    m->epoch = epoch;
    m->step = t->opt.step;
    return 0;
}

int fz_trainer_evaluate(fz_trainer *t, const fz_trainset *ds, fz_epoch_stats *st, fz_err *err)
{
    memset(st, 0, sizeof *st);
    if (ds->d != t->D)
        return fz_fail(err, FZ_EDATA, "data rows have %zu values, the model takes %zu", ds->d, t->D);
    double t0 = now(), wsum = 0;
    for (size_t start = 0; start < ds->n; start += (size_t)t->B) {
        int B = (int)((ds->n - start) < (size_t)t->B ? ds->n - start : (size_t)t->B);
        size_t idx[1024];
        double recon = 0, kl = 0, loss = 0;
        /* gather in pieces: idx is small, batches may be large */
        for (int b0 = 0; b0 < B; b0 += 1024) {
            int nb = B - b0 < 1024 ? B - b0 : 1024;
            for (int i = 0; i < nb; i++) idx[i] = start + (size_t)(b0 + i);
            gather_at(t, ds, idx, nb, b0, NULL);
        }
        loss = batch_step(t, B, 0, NULL, &recon, &kl);
        st->fuzzy += t->last_fuzzy * B;
        st->labeled += t->last_labeled;
        st->correct += t->last_correct;
        /* weight each batch by its size so a short last batch counts for what it is */
        st->loss += loss * B;
        st->recon += recon * B;
        st->kl += kl * B;
        wsum += B;
        st->samples += (size_t)B;
    }
    if (wsum > 0) {
        st->loss /= wsum;
        st->recon /= wsum;
        st->kl /= wsum;
        st->fuzzy /= wsum;
    }
    st->seconds = now() - t0;
    return 0;
}

int fz_field_shape3(const fz_field *f, fz_shape *s, fz_err *err)
{
    if (f->type == FZ_BYTES) return fz_fail(err, FZ_EDATA, "field '%s' holds bytes, not numbers", f->name);
    for (int d = 0; d < f->ndim; d++)
        if (f->shape[d] < 1 || f->shape[d] > FZ_NN_MAX_DIM)
            return fz_fail(err, FZ_EDATA, "field '%s': dimension %d is %lld", f->name, d,
                           (long long)f->shape[d]);
    switch (f->ndim) {
    case 0: *s = (fz_shape){1, 1, 1}; return 0;
    case 1: *s = (fz_shape){(int)f->shape[0], 1, 1}; return 0;
    case 2: *s = (fz_shape){1, (int)f->shape[0], (int)f->shape[1]}; return 0;
    case 3: *s = (fz_shape){(int)f->shape[0], (int)f->shape[1], (int)f->shape[2]}; return 0;
    default:
        return fz_fail(err, FZ_EDATA, "field '%s' has %d dimensions (at most 3: C, H, W)",
                       f->name, f->ndim);
    }
}

void fz_trainset_free(fz_trainset *ds)
{
    free(ds->x);
    free(ds->target);
    free(ds->mask);
    free(ds->label);
    memset(ds, 0, sizeof *ds);
}

int fz_trainset_load(const char *path, const char *field, int drop_nonfinite, fz_trainset *ds,
                    fz_shape *shape, char **meta, size_t *dropped, fz_err *err)
{
    memset(ds, 0, sizeof *ds);
    if (meta) *meta = NULL;
    if (dropped) *dropped = 0;
    fz_reader *r = fz_reader_open(path, err);
    if (!r) return -1;
    const fz_schema *s = fz_reader_schema(r);
    int fi = fz_schema_find(s, field), idi = fz_schema_find(s, "id");
    unsigned char *buf = NULL;
    int rc = -1;
    if (fi < 0) {
        fz_fail(err, FZ_EDATA, "%s: no field '%s' in the stream", fz_reader_name(r), field);
        goto out;
    }
    const fz_field *f = &s->field[fi];
    int ti = fz_schema_find(s, "target"), mi = fz_schema_find(s, "mask"),
        li = fz_schema_find(s, "label");
    if ((ti >= 0) != (mi >= 0) ||
        (ti >= 0 && (s->field[ti].count != s->field[mi].count || s->field[ti].type == FZ_BYTES ||
                     s->field[mi].type == FZ_BYTES))) {
        fz_fail(err, FZ_EDATA, "%s: fields 'target' and 'mask' must come together, of one size",
                fz_reader_name(r));
        goto out;
    }
    if (li >= 0 && s->field[li].type == FZ_BYTES) li = -1;
    ds->k = ti >= 0 ? s->field[ti].count : 0;
    if (fz_field_shape3(f, shape, err)) {
        fz_err_prefix(err, fz_reader_name(r));
        goto out;
    }
    ds->d = f->count;
    size_t cap = 0, batch = ((size_t)1 << 20) / s->row_size + 1;
    buf = malloc(batch * s->row_size);
    if (!buf) {
        fz_fail(err, FZ_ENOMEM, "out of memory");
        goto out;
    }
    long n;
    while ((n = fz_reader_read(r, buf, batch, err)) > 0) {
        if (ds->n + (size_t)n > cap) {
            size_t ncap = cap ? cap * 2 : 1024;
            while (ncap < ds->n + (size_t)n) ncap *= 2;
            size_t bytes;
            if (fz_mul_size(ncap, ds->d * sizeof(float), &bytes)) {
                fz_fail(err, FZ_ENOMEM, "%s: too many rows", fz_reader_name(r));
                goto out;
            }
            float *nx = realloc(ds->x, bytes);
            if (!nx) {
                fz_fail(err, FZ_ENOMEM, "%s: out of memory holding %zu rows of %zu values",
                        fz_reader_name(r), ncap, ds->d);
                goto out;
            }
            ds->x = nx;
            int32_t *nl = realloc(ds->label, ncap * sizeof(int32_t));
            if (nl) ds->label = nl;
            if (ds->k) {
                float *nt = realloc(ds->target, ncap * ds->k * sizeof(float));
                if (nt) ds->target = nt;
                float *nm = nt ? realloc(ds->mask, ncap * ds->k * sizeof(float)) : NULL;
                if (nm) ds->mask = nm;
                if (!nt || !nm) nl = NULL;
            }
            if (!nl) {
                fz_fail(err, FZ_ENOMEM, "%s: out of memory holding %zu rows", fz_reader_name(r), ncap);
                goto out;
            }
            cap = ncap;
        }
        for (long i = 0; i < n; i++) {
            const unsigned char *row = buf + (size_t)i * s->row_size;
            float *dst = ds->x + ds->n * ds->d;
            fz_field_to_f32(f, row, dst);
            ptrdiff_t bad = fz_first_nonfinite(dst, ds->d);
            if (bad >= 0) {
                if (drop_nonfinite) {
                    if (dropped) (*dropped)++;
                    continue;
                }
                uint64_t rowno = fz_reader_rows(r) - (uint64_t)n + (uint64_t)i;
                if (idi >= 0)
                    fz_fail(err, FZ_EDATA,
                            "%s: row with id %.0f has a non-finite value in '%s' at index %td "
                            "(use --drop-nonfinite to skip such rows)",
                            fz_reader_name(r), fz_field_get(&s->field[idi], row, 0), field, bad);
                else
                    fz_fail(err, FZ_EDATA,
                            "%s: row %llu has a non-finite value in '%s' at index %td "
                            "(use --drop-nonfinite to skip such rows)",
                            fz_reader_name(r), (unsigned long long)rowno, field, bad);
                goto out;
            }
            ds->label[ds->n] = li >= 0 ? (int32_t)fz_field_get(&s->field[li], row, 0) : -1;
            if (ds->k) {
                fz_field_to_f32(&s->field[ti], row, ds->target + ds->n * ds->k);
                fz_field_to_f32(&s->field[mi], row, ds->mask + ds->n * ds->k);
                if (fz_first_nonfinite(ds->target + ds->n * ds->k, ds->k) >= 0 ||
                    fz_first_nonfinite(ds->mask + ds->n * ds->k, ds->k) >= 0) {
                    fz_fail(err, FZ_EDATA, "%s: row %llu has a non-finite target or mask",
                            fz_reader_name(r),
                            (unsigned long long)(fz_reader_rows(r) - (uint64_t)n + (uint64_t)i));
                    goto out;
                }
            }
            ds->n++;
        }
    }
    if (n < 0) goto out;
    if (meta) {
        *meta = strdup(fz_reader_meta(r));
        if (!*meta) {
            fz_fail(err, FZ_ENOMEM, "out of memory");
            goto out;
        }
    }
    rc = 0;
out:
    free(buf);
    fz_reader_close(r);
    if (rc) fz_trainset_free(ds);
    return rc;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int fz_trainer_reference_scores(fz_trainer *t, const fz_trainset *ds, fz_err *err)
{
    fz_model *m = t->m;
    if (ds->n == 0) return 0;
    int K = fz_model_terms(m), Z = t->Z;
    float *scores = K ? malloc(ds->n * sizeof(float)) : NULL;
    float *q = K ? malloc(FZ_REF_SCORES * sizeof(float)) : NULL;
    float *mean = malloc((size_t)Z * sizeof(float)), *sd = malloc((size_t)Z * sizeof(float));
    double *sum = calloc((size_t)Z, sizeof(double)), *sum2 = calloc((size_t)Z, sizeof(double));
    if ((K && (!scores || !q)) || !mean || !sd || !sum || !sum2) {
        free(scores);
        free(q);
        free(mean);
        free(sd);
        free(sum);
        free(sum2);
        return fz_fail(err, FZ_ENOMEM, "out of memory");
    }
    for (size_t start = 0; start < ds->n; start += (size_t)t->B) {
        int B = (int)((ds->n - start) < (size_t)t->B ? ds->n - start : (size_t)t->B);
        fz_model_encode(m, ds->x + start * t->D, B, t->mu, NULL);
        for (int b = 0; b < B; b++)
            for (int k = 0; k < Z; k++) {
                double v = t->mu[(size_t)b * Z + k];
                sum[k] += v;
                sum2[k] += v * v;
            }
        if (!K) continue;
        fz_model_memberships(m, t->mu, B, t->memb);
        for (int b = 0; b < B; b++)
            scores[start + (size_t)b] =
                (float)fz_anomaly_score(t->memb + (size_t)b * K, K, t->c.nclasses);
    }
    double var_all = 0, n = (double)ds->n;
    for (int k = 0; k < Z; k++) {
        double mu = sum[k] / n, var = sum2[k] / n - mu * mu;
        if (var < 0) var = 0;
        mean[k] = (float)mu;
        sd[k] = (float)sqrt(var);
        var_all += var;
    }
    free(sum);
    free(sum2);
    free(m->latent_mean);
    free(m->latent_std);
    m->latent_mean = mean;
    m->latent_std = sd;
    m->latent_rms = (float)sqrt(var_all / Z);
    if (!K) return 0;
    qsort(scores, ds->n, sizeof(float), cmp_float);
    /* quantile i/(Q-1), nearest rank */
    for (int i = 0; i < FZ_REF_SCORES; i++) {
        size_t r = (size_t)((double)i / (FZ_REF_SCORES - 1) * (double)(ds->n - 1) + 0.5);
        q[i] = scores[r];
    }
    free(scores);
    free(m->ref_scores);
    m->ref_scores = q;
    m->nref = FZ_REF_SCORES;
    return 0;
}

int fz_class_mean_codes(fz_model *m, const fz_trainset *ds, int nclass, double *means,
                        size_t *count, fz_err *err)
{
    enum { BATCH = 256 };
    int Z = fz_model_latent(m);
    if (Z < 2) return fz_fail(err, FZ_EUSAGE, "class mean codes: latent %d (expected >= 2)", Z);
    if (nclass < 1 || !ds->target || !ds->mask || ds->k < (size_t)nclass)
        return fz_fail(err, FZ_EDATA, "class mean codes: the stream has %zu outputs with target "
                                      "and mask, %d classes needed (see fz-mask(1))",
                       ds->k, nclass);
    memset(means, 0, (size_t)nclass * 2 * sizeof *means);
    memset(count, 0, (size_t)nclass * sizeof *count);
    if (fz_model_reserve(m, BATCH, err)) return -1;
    float *x = malloc((size_t)BATCH * ds->d * sizeof(float));            /* (BATCH, d) */
    int *cls = malloc(BATCH * sizeof(int));                              /* (BATCH) */
    float *saved = malloc((m->nbuffers ? m->nbuffers : 1) * sizeof(float)); /* BN statistics */
    if (!x || !cls || !saved) {
        free(x), free(cls), free(saved);
        return fz_fail(err, FZ_ENOMEM, "out of memory");
    }
    /* A training-mode forward updates the BatchNorm running statistics: put them back. */
    memcpy(saved, m->buffers, m->nbuffers * sizeof(float));
    fz_rng rng; /* dropout, if the encoder has any */
    fz_rng_seed(&rng, 0x5eedULL);
    /* the encoder's raw output h: (B, Z) for an ae, (B, 2Z) mu then s for a vae */
    size_t ld = m->arch.kind == FZ_KIND_AE ? (size_t)Z : 2 * (size_t)Z;
    size_t i = 0;
    while (i < ds->n) {
        int B = 0; /* labeled rows of one class gathered into x */
        for (; i < ds->n && B < BATCH; i++) {
            const float *t = ds->target + i * ds->k, *mk = ds->mask + i * ds->k;
            int c = -1;
            for (int o = 0; o < nclass; o++)
                if (mk[o] > 0 && t[o] > 0.5f) c = c < 0 ? o : -2; /* -2: two classes, skip */
            if (c < 0) continue;
            memcpy(x + (size_t)B * ds->d, ds->x + i * ds->d, ds->d * sizeof(float));
            cls[B++] = c;
        }
        if (!B) break;
        const float *h = fz_net_forward(&m->enc, x, B, 1, &rng);
        for (int b = 0; b < B; b++) {
            means[2 * cls[b]] += h[(size_t)b * ld];
            means[2 * cls[b] + 1] += h[(size_t)b * ld + 1];
            count[cls[b]]++;
        }
    }
    memcpy(m->buffers, saved, m->nbuffers * sizeof(float));
    for (int c = 0; c < nclass; c++)
        if (count[c]) means[2 * c] /= (double)count[c], means[2 * c + 1] /= (double)count[c];
    free(x), free(cls), free(saved);
    return 0;
}
