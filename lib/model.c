/* model.c - models: build from a description, save and load as safetensors. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "safetensors.h"

const char *fz_model_shape_str(fz_shape s, char *buf, size_t cap)
{
    if (s.h == 1 && s.w == 1) snprintf(buf, cap, "(%d,)", s.c);
    else snprintf(buf, cap, "(%d, %d, %d)", s.c, s.h, s.w);
    return buf;
}

/* Build encoder and decoder for the parsed arch and allocate the three blocks. */
static int build(fz_model *m, fz_err *err)
{
    const fz_arch *a = &m->arch;
    m->in_count = (size_t)m->in.c * m->in.h * m->in.w;
    if (m->in_count > (size_t)FZ_NN_MAX_SAMPLE)
        return fz_fail(err, FZ_EDATA, "input of %zu values is too large", m->in_count);
    int in_count = (int)m->in_count;
    if (fz_net_build(&m->enc, a->enc, a->nenc, m->in, a->latent, in_count, "encoder", err))
        return -1;
    size_t want = a->kind == FZ_KIND_VAE ? 2 * (size_t)a->latent : (size_t)a->latent;
    if (fz_net_out_size(&m->enc) != want) {
        char s[64];
        return fz_fail(err, FZ_EDATA,
                       "encoder output %s has %zu values, a %s with latent %d needs %zu",
                       fz_model_shape_str(m->enc.out, s, sizeof s), fz_net_out_size(&m->enc),
                       a->kind == FZ_KIND_VAE ? "vae" : "ae", a->latent, want);
    }
    fz_shape zs = {a->latent, 1, 1};
    if (fz_net_build(&m->dec, a->dec, a->ndec, zs, a->latent, in_count, "decoder", err))
        return -1;
    if (fz_net_out_size(&m->dec) != m->in_count) {
        char s[64], t[64];
        return fz_fail(err, FZ_EDATA, "decoder output %s does not match the input shape %s",
                       fz_model_shape_str(m->dec.out, s, sizeof s),
                       fz_model_shape_str(m->in, t, sizeof t));
    }
    m->nparams = m->enc.nparams + m->dec.nparams;
    m->fuzzy_off = m->nparams;
    if (a->fuzzy_terms) {
        if (fz_fuzzy_init(&m->fuzzy, a->fuzzy_kind, a->fuzzy_terms, a->latent, 0, err)) return -1;
        m->has_fuzzy = 1;
        m->nparams += fz_fuzzy_nparams(&m->fuzzy);
    }
    size_t head_buf = 0;
    if (a->nhead) {
        if (fz_net_build(&m->head, a->head, a->nhead, zs, a->latent, a->outputs, "head", err))
            return -1;
        if (fz_net_out_size(&m->head) != (size_t)a->outputs)
            return fz_fail(err, FZ_EDATA, "head output has %zu values, outputs = %d",
                           fz_net_out_size(&m->head), a->outputs);
        m->has_head = 1;
        m->nparams += m->head.nparams;
        head_buf = m->head.nbuffers;
    }
    m->nbuffers = m->enc.nbuffers + m->dec.nbuffers + head_buf;
    m->params = calloc(m->nparams ? m->nparams : 1, sizeof(float));
    m->grads = calloc(m->nparams ? m->nparams : 1, sizeof(float));
    m->buffers = calloc(m->nbuffers ? m->nbuffers : 1, sizeof(float));
    if (!m->params || !m->grads || !m->buffers)
        return fz_fail(err, FZ_ENOMEM, "out of memory for %zu parameters", m->nparams);
    fz_net_bind(&m->enc, m->params, m->grads, m->buffers);
    fz_net_bind(&m->dec, m->params + m->enc.nparams, m->grads + m->enc.nparams,
                m->buffers + m->enc.nbuffers);
    if (m->has_fuzzy) fz_fuzzy_bind(&m->fuzzy, m->params + m->fuzzy_off, m->grads + m->fuzzy_off);
    if (m->has_head)
        fz_net_bind(&m->head, m->params + m->fuzzy_off, m->grads + m->fuzzy_off,
                    m->buffers + m->enc.nbuffers + m->dec.nbuffers);
    return 0;
}

static int setup(fz_model *m, const char *arch_text, fz_shape in, fz_err *err)
{
    memset(m, 0, sizeof *m);
    if (fz_arch_parse(arch_text, &m->arch, err)) return -1;
    m->arch_text = fz_arch_format(&m->arch, err);
    if (!m->arch_text) return -1;
    m->in = in;
    if (build(m, err)) {
        fz_model_free(m);
        return -1;
    }
    return 0;
}

int fz_model_create(fz_model *m, const char *arch_text, fz_shape in, uint64_t seed, fz_err *err)
{
    if (setup(m, arch_text, in, err)) return -1;
    fz_rng rng;
    fz_rng_seed(&rng, seed);
    fz_net_init_params(&m->enc, &rng);
    fz_net_init_params(&m->dec, &rng);
    if (m->has_head) fz_net_init_params(&m->head, &rng);
    if (m->has_fuzzy) {
        if (m->arch.fuzzy_circle > 0) {
            if (fz_fuzzy_init_circle(&m->fuzzy, m->arch.fuzzy_circle, &rng, err)) {
                fz_model_free(m);
                return -1;
            }
        } else {
            fz_fuzzy_init_random(&m->fuzzy, &rng);
        }
    }
    return 0;
}

void fz_model_free(fz_model *m)
{
    if (!m) return;
    fz_net_free(&m->enc);
    fz_net_free(&m->dec);
    if (m->has_fuzzy) fz_fuzzy_free(&m->fuzzy);
    if (m->has_head) fz_net_free(&m->head);
    free(m->params);
    free(m->grads);
    free(m->buffers);
    free(m->arch_text);
    free(m->opt_state);
    free(m->ref_scores);
    free(m->latent_mean);
    free(m->latent_std);
    for (int i = 0; i < m->nmeta; i++) {
        free(m->meta_key[i]);
        free(m->meta_val[i]);
    }
    memset(m, 0, sizeof *m);
}

int fz_model_set_meta(fz_model *m, const char *key, const char *value, fz_err *err)
{
    for (int i = 0; i < m->nmeta; i++)
        if (strcmp(m->meta_key[i], key) == 0) {
            char *v = strdup(value);
            if (!v) return fz_fail(err, FZ_ENOMEM, "out of memory");
            free(m->meta_val[i]);
            m->meta_val[i] = v;
            return 0;
        }
    if (m->nmeta >= FZ_MODEL_MAX_META)
        return fz_fail(err, FZ_EDATA, "too many metadata keys");
    m->meta_key[m->nmeta] = strdup(key);
    m->meta_val[m->nmeta] = strdup(value);
    if (!m->meta_key[m->nmeta] || !m->meta_val[m->nmeta])
        return fz_fail(err, FZ_ENOMEM, "out of memory");
    m->nmeta++;
    return 0;
}

const char *fz_model_meta(const fz_model *m, const char *key)
{
    for (int i = 0; i < m->nmeta; i++)
        if (strcmp(m->meta_key[i], key) == 0) return m->meta_val[i];
    return NULL;
}

/* ---- tensor naming: what PyTorch's state_dict would call each slice ---- */

typedef struct tensor_view {
    char name[96];
    int ndim;
    int64_t shape[4];
    float *data;
    size_t count;
} tensor_view;

/* Up to 4 tensors of one layer: weight, bias (params), running_mean, running_var (buffers). */
static int layer_tensors(const fz_layer *L, const char *prefix, int idx, float *params,
                         float *buffers, tensor_view *out)
{
    int n = 0;
    size_t np = fz_layer_nparams(L);
    if (np == 0) return 0;
    int64_t w[4] = {0};
    int wd = 0;
    int64_t nb = 0;
    switch (L->kind) {
    case FZ_LINEAR:
        w[0] = L->out.c; w[1] = L->in.c; wd = 2; nb = L->out.c;
        break;
    case FZ_CONV2D:
        w[0] = L->out.c; w[1] = L->in.c; w[2] = L->k; w[3] = L->k; wd = 4; nb = L->out.c;
        break;
    case FZ_CONVT2D:
        w[0] = L->in.c; w[1] = L->out.c; w[2] = L->k; w[3] = L->k; wd = 4; nb = L->out.c;
        break;
    case FZ_BATCHNORM1D:
    case FZ_BATCHNORM2D:
        w[0] = L->in.c; wd = 1; nb = L->in.c;
        break;
    default: return 0;
    }
    size_t wcount = 1;
    for (int d = 0; d < wd; d++) wcount *= (size_t)w[d];
    tensor_view *t = &out[n++];
    snprintf(t->name, sizeof t->name, "%s.%d.weight", prefix, idx);
    t->ndim = wd;
    memcpy(t->shape, w, sizeof w);
    t->data = params;
    t->count = wcount;
    if (np > wcount) {
        t = &out[n++];
        snprintf(t->name, sizeof t->name, "%s.%d.bias", prefix, idx);
        t->ndim = 1;
        t->shape[0] = nb;
        t->data = params + wcount;
        t->count = (size_t)nb;
    }
    if (fz_layer_nbuffers(L) == 2 * (size_t)nb && buffers) {
        t = &out[n++];
        snprintf(t->name, sizeof t->name, "%s.%d.running_mean", prefix, idx);
        t->ndim = 1;
        t->shape[0] = nb;
        t->data = buffers;
        t->count = (size_t)nb;
        t = &out[n++];
        snprintf(t->name, sizeof t->name, "%s.%d.running_var", prefix, idx);
        t->ndim = 1;
        t->shape[0] = nb;
        t->data = buffers + nb;
        t->count = (size_t)nb;
    }
    return n;
}

/* Call fn for every tensor of the model in order. */
typedef int (*tensor_fn)(void *ctx, tensor_view *t, int is_bn, fz_err *err);

static int each_tensor(const fz_model *m, tensor_fn fn, void *ctx, fz_err *err)
{
    const fz_net *nets[3] = {&m->enc, &m->dec, &m->head};
    const char *names[3] = {"encoder", "decoder", "head"};
    size_t poff = 0, boff = 0;
    for (int k = 0; k < (m->has_head ? 3 : 2); k++) {
        const fz_net *net = nets[k];
        for (int i = 0; i < net->n; i++) {
            const fz_layer *L = &net->layers[i];
            tensor_view tv[4];
            int nt = layer_tensors(L, names[k], i, m->params + poff + net->param_off[i],
                                   m->buffers + boff + net->buf_off[i], tv);
            int is_bn = L->kind == FZ_BATCHNORM1D || L->kind == FZ_BATCHNORM2D;
            for (int j = 0; j < nt; j++)
                if (fn(ctx, &tv[j], is_bn && j == 3, err)) return -1;
        }
        poff += net->nparams;
        boff += net->nbuffers;
    }
    if (m->has_fuzzy) {
        fz_fuzzy_tensor ft[FZ_FUZZY_MAX_TENSORS];
        int nt = fz_fuzzy_tensors(&m->fuzzy, ft);
        for (int j = 0; j < nt; j++) {
            tensor_view tv = {0};
            snprintf(tv.name, sizeof tv.name, "%s", ft[j].name);
            tv.ndim = ft[j].ndim;
            for (int d = 0; d < ft[j].ndim; d++) tv.shape[d] = ft[j].shape[d];
            tv.data = m->params + m->fuzzy_off + ft[j].offset;
            tv.count = ft[j].count;
            if (fn(ctx, &tv, 0, err)) return -1;
        }
    }
    return 0;
}

typedef struct save_ctx {
    fz_st_writer *w;
    int64_t *nbt; /* num_batches_tracked values, one per BatchNorm (kept alive until write) */
    int nnbt, cap;
} save_ctx;

static int save_one(void *vctx, tensor_view *t, int last_of_bn, fz_err *err)
{
    save_ctx *c = vctx;
    if (fz_st_add_f32(c->w, t->name, t->data, t->ndim, t->shape, err)) return -1;
    if (last_of_bn && c->nnbt < c->cap) {
        /* "encoder.3.running_var" -> "encoder.3.num_batches_tracked" */
        char name[128];
        snprintf(name, sizeof name, "%.*snum_batches_tracked",
                 (int)(strlen(t->name) - strlen("running_var")), t->name);
        if (fz_st_add(c->w, name, "I64", &c->nbt[c->nnbt], 8, 0, NULL, err)) return -1;
        c->nnbt++;
    }
    return 0;
}

int fz_model_save(const fz_model *m, const char *path, const fz_optim *opt, fz_err *err)
{
    save_ctx c = {0};
    c.w = fz_st_writer_new(err);
    if (!c.w) return -1;
    c.cap = m->enc.n + m->dec.n + (m->has_head ? m->head.n : 0);
    c.nbt = calloc((size_t)c.cap + 1, sizeof *c.nbt);
    int rc = -1;
    if (!c.nbt) {
        fz_fail(err, FZ_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < c.cap; i++) c.nbt[i] = m->step;
    if (each_tensor(m, save_one, &c, err)) goto out;
    if (m->has_fuzzy) {
        int64_t ms[2] = {m->fuzzy.K, m->fuzzy.n}, as[1] = {m->fuzzy.K};
        if (fz_st_add(c.w, "fuzzy.input_mask", "U8", m->fuzzy.input_mask,
                      (size_t)m->fuzzy.K * m->fuzzy.n, 2, ms, err) ||
            fz_st_add(c.w, "fuzzy.active", "U8", m->fuzzy.active, (size_t)m->fuzzy.K, 1, as, err))
            goto out;
    }
    if (m->latent_mean && m->latent_std) {
        int64_t zs[1] = {m->arch.latent}, one[1] = {1};
        if (fz_st_add_f32(c.w, "latent.mean", m->latent_mean, 1, zs, err) ||
            fz_st_add_f32(c.w, "latent.std", m->latent_std, 1, zs, err) ||
            fz_st_add_f32(c.w, "latent.rms", &m->latent_rms, 1, one, err))
            goto out;
    }
    if (m->ref_scores && m->nref > 0) {
        int64_t rs[1] = {m->nref};
        if (fz_st_add_f32(c.w, "fuzzy.ref_scores", m->ref_scores, 1, rs, err)) goto out;
    }
    if (opt && fz_optim_state_len(opt)) {
        int64_t shp[1] = {(int64_t)fz_optim_state_len(opt)};
        if (fz_st_add_f32(c.w, "optim.state", opt->state, 1, shp, err)) goto out;
    }
    char buf[128], s[64];
    snprintf(s, sizeof s, "[%d, %d, %d]", m->in.c, m->in.h, m->in.w);
    if (fz_st_set_meta(c.w, "fz_format", "fz-model 1", err) ||
        fz_st_set_meta(c.w, "arch", m->arch_text, err) ||
        fz_st_set_meta(c.w, "input_shape", s, err))
        goto out;
    snprintf(buf, sizeof buf, "%ld", m->epoch);
    if (fz_st_set_meta(c.w, "epoch", buf, err)) goto out;
    snprintf(buf, sizeof buf, "%ld", opt ? opt->step : m->step);
    if (fz_st_set_meta(c.w, "step", buf, err)) goto out;
    if (opt && fz_st_set_meta(c.w, "optim", fz_opt_kind_name(opt->conf.kind), err)) goto out;
    for (int i = 0; i < m->nmeta; i++)
        if (fz_st_set_meta(c.w, m->meta_key[i], m->meta_val[i], err)) goto out;
    rc = fz_st_write(c.w, path, err);
out:
    fz_st_writer_free(c.w);
    free(c.nbt);
    return rc;
}

typedef struct load_ctx {
    const fz_st_file *f;
    const char *path;
} load_ctx;

static int load_one(void *vctx, tensor_view *t, int last_of_bn, fz_err *err)
{
    (void)last_of_bn;
    load_ctx *c = vctx;
    const float *src = fz_st_f32(c->f, t->name, t->ndim, t->shape, err);
    if (!src) return -1;
    for (size_t i = 0; i < t->count; i++)
        if (!isfinite(src[i]))
            return fz_fail(err, FZ_EDATA, "%s: tensor '%s' holds a non-finite value at %zu",
                           c->path, t->name, i);
    memcpy(t->data, src, t->count * sizeof(float));
    return 0;
}

static int parse_shape_meta(const char *text, fz_shape *s, const char *path, fz_err *err)
{
    fz_json *j = text ? fz_json_parse(text, strlen(text), err) : NULL;
    if (!j || fz_json_type(j) != FZ_JARR || fz_json_len(j) != 3) {
        fz_json_free(j);
        return fz_fail(err, FZ_EDATA, "%s: metadata 'input_shape' is missing or not [C, H, W]",
                       path);
    }
    int v[3];
    for (int i = 0; i < 3; i++) {
        double d = fz_json_num(fz_json_at(j, (size_t)i), -1);
        if (!(d >= 1 && d <= FZ_NN_MAX_DIM) || d != floor(d)) {
            fz_json_free(j);
            return fz_fail(err, FZ_EDATA, "%s: metadata 'input_shape' has a bad dimension", path);
        }
        v[i] = (int)d;
    }
    fz_json_free(j);
    s->c = v[0];
    s->h = v[1];
    s->w = v[2];
    return 0;
}

int fz_model_load(fz_model *m, const char *path, fz_err *err)
{
    memset(m, 0, sizeof *m);
    fz_st_file *f = fz_st_load(path, err);
    if (!f) return -1;
    int rc = -1;
    const char *fmt = fz_st_meta(f, "fz_format");
    const char *arch = fz_st_meta(f, "arch");
    if (!fmt || strcmp(fmt, "fz-model 1") != 0 || !arch) {
        fz_fail(err, FZ_EDATA, "%s: not an fz model (metadata 'fz_format' or 'arch' missing)", path);
        goto out;
    }
    fz_shape in;
    if (parse_shape_meta(fz_st_meta(f, "input_shape"), &in, path, err)) goto out;
    if (setup(m, arch, in, err)) {
        fz_err_prefix(err, path);
        goto out;
    }
    load_ctx c = {f, path};
    if (each_tensor(m, load_one, &c, err)) goto fail;
    if (m->has_fuzzy) {
        const char *names[2] = {"fuzzy.input_mask", "fuzzy.active"};
        unsigned char *dst[2] = {m->fuzzy.input_mask, m->fuzzy.active};
        size_t want[2] = {(size_t)m->fuzzy.K * m->fuzzy.n, (size_t)m->fuzzy.K};
        for (int k = 0; k < 2; k++) {
            const fz_st_tensor *t = fz_st_find(f, names[k]);
            if (!t || strcmp(t->dtype, "U8") != 0 || t->nbytes != want[k]) {
                fz_fail(err, FZ_EDATA, "%s: tensor '%s' is missing or not U8 of %zu values", path,
                        names[k], want[k]);
                goto fail;
            }
            memcpy(dst[k], fz_st_data(f, t), want[k]);
        }
    }
    const char *ep = fz_st_meta(f, "epoch"), *st = fz_st_meta(f, "step");
    long v;
    if (ep && fz_parse_long(ep, 0, 1L << 40, &v, "epoch", err) == 0) m->epoch = v;
    if (st && fz_parse_long(st, 0, 1L << 40, &v, "step", err) == 0) m->step = v;
    if (fz_st_find(f, "latent.mean")) {
        int64_t zs[1] = {m->arch.latent}, one[1] = {1};
        const float *mean = fz_st_f32(f, "latent.mean", 1, zs, err);
        const float *sd = mean ? fz_st_f32(f, "latent.std", 1, zs, err) : NULL;
        const float *rms = sd ? fz_st_f32(f, "latent.rms", 1, one, err) : NULL;
        if (!rms) goto fail;
        m->latent_mean = malloc(zs[0] * sizeof(float));
        m->latent_std = malloc(zs[0] * sizeof(float));
        if (!m->latent_mean || !m->latent_std) {
            fz_fail(err, FZ_ENOMEM, "out of memory");
            goto fail;
        }
        memcpy(m->latent_mean, mean, zs[0] * sizeof(float));
        memcpy(m->latent_std, sd, zs[0] * sizeof(float));
        m->latent_rms = rms[0];
    }
    const fz_st_tensor *rs = fz_st_find(f, "fuzzy.ref_scores");
    if (rs && strcmp(rs->dtype, "F32") == 0 && rs->ndim == 1 && rs->shape[0] > 0 &&
        rs->shape[0] <= 100000) {
        m->nref = (int)rs->shape[0];
        m->ref_scores = malloc(rs->nbytes);
        if (!m->ref_scores) {
            fz_fail(err, FZ_ENOMEM, "out of memory");
            goto fail;
        }
        memcpy(m->ref_scores, fz_st_data(f, rs), rs->nbytes);
    }
    const fz_st_tensor *os = fz_st_find(f, "optim.state");
    const char *ok = fz_st_meta(f, "optim");
    if (os && ok && strcmp(os->dtype, "F32") == 0 && os->ndim == 1) {
        m->opt_len = (size_t)os->shape[0];
        m->opt_state = malloc(os->nbytes ? os->nbytes : 1);
        if (!m->opt_state) {
            fz_fail(err, FZ_ENOMEM, "out of memory");
            goto fail;
        }
        memcpy(m->opt_state, fz_st_data(f, os), os->nbytes);
        snprintf(m->opt_kind, sizeof m->opt_kind, "%s", ok);
    }
    /* Carry every other metadata key (classes, norm, train, ...). */
    static const char *const own[] = {"fz_format", "arch", "input_shape", "epoch", "step",
                                      "optim", "fz_checksum", NULL};
    for (int i = 0; i < fz_st_meta_count(f); i++) {
        const char *k = fz_st_meta_key(f, i);
        int skip = 0;
        for (const char *const *o = own; *o; o++)
            if (strcmp(*o, k) == 0) skip = 1;
        if (!skip && fz_model_set_meta(m, k, fz_st_meta(f, k), err)) goto fail;
    }
    rc = 0;
    goto out;
fail:
    fz_model_free(m);
out:
    fz_st_free(f);
    return rc;
}

int fz_model_reserve(fz_model *m, int max_batch, fz_err *err)
{
    if (fz_net_reserve(&m->enc, max_batch, err)) return -1;
    if (m->has_fuzzy && fz_fuzzy_reserve(&m->fuzzy, max_batch, err)) return -1;
    if (m->has_head && fz_net_reserve(&m->head, max_batch, err)) return -1;
    return fz_net_reserve(&m->dec, max_batch, err);
}

/* The sizes fz_net_reserve and fz_fuzzy_reserve allocate, added up without allocating. */
int fz_model_memory(const fz_model *m, int B, fz_model_mem *mem, fz_err *err)
{
    memset(mem, 0, sizeof *mem);
    if (B < 1) return fz_fail(err, FZ_EUSAGE, "batch of %d samples", B);
    const fz_net *nets[3] = {&m->enc, &m->dec, &m->head};
    const char *names[3] = {"encoder", "decoder", "head"};
    size_t act = 0, ws = 0, t;
    for (int k = 0; k < (m->has_head ? 3 : 2); k++) {
        fz_net_sizes sz; /* what fz_net_reserve allocates for this net */
        if (fz_net_sizes_for(nets[k], B, &sz, err)) return -1;
        if (sz.scratch > ws) {
            ws = sz.scratch;
            mem->ws_net = names[k];
            mem->ws_layer = sz.scratch_layer;
        }
        if (fz_add_size(act, sz.outputs, &act) || fz_add_size(act, sz.grads, &act)) goto big;
    }
    if (m->has_fuzzy) { /* u (B, K, n) and r2 (B, K) */
        size_t kn = (size_t)m->fuzzy.K * ((size_t)m->fuzzy.n + 1);
        if (fz_mul_size(kn, (size_t)B, &t) || fz_add_size(act, t, &act)) goto big;
    }
    if (fz_mul_size(m->nparams, sizeof(float), &mem->params) ||
        fz_mul_size(ws, sizeof(float), &mem->workspace) ||
        fz_mul_size(act, sizeof(float), &mem->activations))
        goto big;
    return 0;
big:
    return fz_fail(err, FZ_ENOMEM, "batch of %d too large for this model", B);
}

void fz_model_memberships(fz_model *m, const float *mu, int B, float *memb)
{
    if (m->has_head) {
        const float *y = fz_net_forward(&m->head, mu, B, 0, NULL); /* (B, outputs) */
        memcpy(memb, y, (size_t)B * m->arch.outputs * sizeof(float));
        return;
    }
    fz_fuzzy_forward(&m->fuzzy, mu, memb, B);
}

double fz_anomaly_score(const float *m, int K, int nclasses)
{
    int n = nclasses > 0 && nclasses <= K ? nclasses : K;
    float best = 0;
    for (int k = 0; k < n; k++)
        if (m[k] > best) best = m[k];
    return 1.0 - best;
}

int fz_model_terms(const fz_model *m)
{
    return m->has_fuzzy ? m->fuzzy.K : m->has_head ? m->arch.outputs : 0;
}

int fz_model_latent(const fz_model *m) { return m->arch.latent; }

/* h (B, Z or 2Z), the encoder's output -> mu and s */
static void split_codes(const fz_model *m, const float *h, int B, float *mu, float *s);

void fz_model_encode(fz_model *m, const float *x, int B, float *mu, float *s)
{
    split_codes(m, fz_net_forward(&m->enc, x, B, 0, NULL), B, mu, s);
}

void fz_model_encode_ld(fz_model *m, const float *x, size_t ldx, int B, float *scratch,
                        float *mu, float *s)
{
    size_t D = m->in_count;
    if (ldx == D) {
        fz_model_encode(m, x, B, mu, s);
    } else if (fz_net_takes_ld(&m->enc)) {
        split_codes(m, fz_net_forward_ld(&m->enc, x, ldx, B), B, mu, s);
    } else {
        for (int b = 0; b < B; b++) memcpy(scratch + (size_t)b * D, x + (size_t)b * ldx, D * sizeof(float));
        fz_model_encode(m, scratch, B, mu, s);
    }
}

static void split_codes(const fz_model *m, const float *h, int B, float *mu, float *s)
{
    int Z = m->arch.latent;
    if (m->arch.kind == FZ_KIND_AE) {
        memcpy(mu, h, (size_t)B * Z * sizeof(float));
        return;
    }
    /* h (B, 2Z): mu then s in each row */
    for (int b = 0; b < B; b++) {
        memcpy(mu + (size_t)b * Z, h + (size_t)b * 2 * Z, (size_t)Z * sizeof(float));
        if (s) memcpy(s + (size_t)b * Z, h + (size_t)b * 2 * Z + Z, (size_t)Z * sizeof(float));
    }
}

const float *fz_model_decode(fz_model *m, const float *z, int B)
{
    return fz_net_forward(&m->dec, z, B, 0, NULL);
}
