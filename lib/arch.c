/* arch.c - parsing and formatting network descriptions; the presets. */
#include "arch.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

const char *const fz_arch_preset_names[] = {"ae-mlp",    "vae-mlp",    "vae-conv",
                                            "fcvae-mlp", "fcvae-wide", "fcvae-cnn",
                                            "fcvae-conv", "vaec-mlp",  NULL};

/* The networks of the literature fz follows (see fz-train(1)). */
static const struct {
    const char *name;
    int latent;
    const char *text;
} PRESETS[] = {
    {"ae-mlp", 8,
     "kind = ae\n"
     "encoder = flatten linear(128) relu linear(64) relu linear(32) relu linear(z)\n"
     "decoder = linear(32) relu linear(64) relu linear(128) relu linear(in) sigmoid\n"},
    /* Keras's LeakyReLU default slope is 0.3, and the original model used it. */
    {"vae-mlp", 2,
     "kind = vae\nsigma = logvar\n"
     "encoder = flatten linear(256) relu bn dropout(0.3) linear(128) relu bn dropout(0.3) "
     "linear(2z)\n"
     "decoder = linear(128) leakyrelu(0.3) bn dropout(0.3) linear(256) leakyrelu(0.3) bn "
     "dropout(0.3) linear(in) sigmoid\n"},
    {"vae-conv", 2,
     "kind = vae\nsigma = softplus\n"
     "encoder = conv2d(8,5) silu conv2d(16,5) silu conv2d(32,5) silu conv2d(64,5) bn silu "
     "flatten linear(625) bn silu linear(2z)\n"
     "decoder = linear(625) bn silu linear(9216) bn silu unflatten(64,12,12) convt2d(32,5) "
     "silu convt2d(16,5) silu convt2d(8,5) silu convt2d(1,5) sigmoid\n"},
    /* The fuzzy conditional VAE: the MLP VAE with a fuzzy layer on mu... */
    {"fcvae-mlp", 2,
     "kind = vae\nsigma = logvar\n"
     "encoder = flatten linear(256) relu bn linear(128) relu bn linear(2z)\n"
     "decoder = linear(128) leakyrelu(0.3) bn linear(256) leakyrelu(0.3) bn linear(in) sigmoid\n"
     "fuzzy = gauss(10)\nfuzzy_init = circle(2)\n"},
    /* ...twice as wide (512-256), at about twice the work per image: with 12 outputs (seed 0,
     * 20 epochs) 96.82% on the validation split against fcvae-mlp's 96.52%. */
    {"fcvae-wide", 2,
     "kind = vae\nsigma = logvar\n"
     "encoder = flatten linear(512) relu bn linear(256) relu bn linear(2z)\n"
     "decoder = linear(256) leakyrelu(0.3) bn linear(512) leakyrelu(0.3) bn linear(in) sigmoid\n"
     "fuzzy = gauss(10)\nfuzzy_init = circle(2)\n"},
    /* ...and with a small convolutional encoder (two 5x5 convolutions of stride 2, 32 and 64
     * channels, 28x28 -> 14x14 -> 7x7), the MLP decoder kept: about 3.5 M multiply-adds per
     * image in the encoder, a tenth of vae-conv's. Batch normalisation comes before each ReLU:
     * after it, units that ReLU keeps at 0 through training get a running variance of 0,
     * and in eval mode the rare input that wakes one is multiplied by 1/sqrt(eps) = 316,
     * which sent logvar to 1e30 and beyond on a few validation digits. Its validation
     * figures are in fz-train(1). */
    {"fcvae-cnn", 2,
     "kind = vae\nsigma = logvar\n"
     "encoder = conv2d(32,5,2,2) bn relu conv2d(64,5,2,2) bn relu flatten linear(256) bn relu "
     "linear(2z)\n"
     "decoder = linear(128) leakyrelu(0.3) bn linear(256) leakyrelu(0.3) bn linear(in) sigmoid\n"
     "fuzzy = gauss(10)\nfuzzy_init = circle(2)\n"},
    /* The VAE-plus-classifier: the MLP VAE with a dense sigmoid head on mu. */
    {"vaec-mlp", 2,
     "kind = vae\nsigma = logvar\n"
     "encoder = flatten linear(256) relu bn linear(128) relu bn linear(2z)\n"
     "decoder = linear(128) leakyrelu(0.3) bn linear(256) leakyrelu(0.3) bn linear(in) sigmoid\n"
     "head = linear(16) relu linear(out) sigmoid\noutputs = 10\n"},
    /* ...and the article's network: vae-conv with 12 terms of its exp(-||S x + t||) form. */
    {"fcvae-conv", 2,
     "kind = vae\nsigma = softplus\n"
     "encoder = conv2d(8,5) silu conv2d(16,5) silu conv2d(32,5) silu conv2d(64,5) bn silu "
     "flatten linear(625) bn silu linear(2z)\n"
     "decoder = linear(625) bn silu linear(9216) bn silu unflatten(64,12,12) convt2d(32,5) "
     "silu convt2d(16,5) silu convt2d(8,5) silu convt2d(1,5) sigmoid\n"
     "fuzzy = article(12)\nfuzzy_init = random\n"},
};

char *fz_arch_preset(const char *name, int latent, fz_err *err)
{
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++) {
        if (strcmp(PRESETS[i].name, name) != 0) continue;
        fz_sbuf b;
        fz_sbuf_init(&b);
        fz_sbuf_printf(&b, "# preset %s\nlatent = %d\n%s", name,
                       latent > 0 ? latent : PRESETS[i].latent, PRESETS[i].text);
        char *s = fz_sbuf_take(&b);
        if (!s) fz_fail(err, FZ_ENOMEM, "out of memory");
        return s;
    }
    fz_fail(err, FZ_EUSAGE, "unknown preset '%s' (presets: " FZ_ARCH_PRESET_LIST ")", name);
    return NULL;
}

int fz_arch_size(const fz_layer_spec *s, int latent, int in_count)
{
    switch (s->ref) {
    case FZ_SIZE_Z: return latent;
    case FZ_SIZE_2Z: return 2 * latent;
    case FZ_SIZE_IN:
    case FZ_SIZE_OUT: return in_count;
    default: return s->n;
    }
}

/* ---- layer tokens ---- */

static const struct {
    const char *name;
    fz_layer_kind kind;
    int min_args, max_args;
} TOKENS[] = {
    {"linear", FZ_LINEAR, 1, 1},     {"conv2d", FZ_CONV2D, 2, 4},
    {"convt2d", FZ_CONVT2D, 2, 5},   {"bn", FZ_BATCHNORM1D, 0, 0},
    {"dropout", FZ_DROPOUT, 1, 1},   {"relu", FZ_RELU, 0, 0},
    {"leakyrelu", FZ_LEAKYRELU, 0, 1}, {"silu", FZ_SILU, 0, 0},
    {"sigmoid", FZ_SIGMOID, 0, 0},   {"tanh", FZ_TANH, 0, 0},
    {"softplus", FZ_SOFTPLUS, 0, 0}, {"flatten", FZ_FLATTEN, 0, 0},
    {"unflatten", FZ_UNFLATTEN, 3, 3},
};

static const char *token_name(fz_layer_kind k)
{
    for (size_t i = 0; i < sizeof TOKENS / sizeof TOKENS[0]; i++)
        if (TOKENS[i].kind == k) return TOKENS[i].name;
    if (k == FZ_BATCHNORM2D) return "bn";
    return "?";
}

static int parse_size(const char *a, fz_layer_spec *s, const char *tok, fz_err *err)
{
    if (strcmp(a, "z") == 0) s->ref = FZ_SIZE_Z;
    else if (strcmp(a, "2z") == 0) s->ref = FZ_SIZE_2Z;
    else if (strcmp(a, "in") == 0) s->ref = FZ_SIZE_IN;
    else if (strcmp(a, "out") == 0) s->ref = FZ_SIZE_OUT;
    else {
        long v;
        if (fz_parse_long(a, 1, FZ_NN_MAX_DIM * 64L, &v, tok, err)) return -1;
        s->ref = FZ_SIZE_NUM;
        s->n = (int)v;
    }
    return 0;
}

static int parse_int_arg(const char *a, long lo, long hi, int *out, const char *tok, fz_err *err)
{
    long v;
    if (fz_parse_long(a, lo, hi, &v, tok, err)) return -1;
    *out = (int)v;
    return 0;
}

/* One token such as "conv2d(16,5,2,1)" into *s. */
static int parse_layer(const char *tok, fz_layer_spec *s, fz_err *err)
{
    char name[32], args[5][32];
    int nargs = 0;
    const char *paren = strchr(tok, '(');
    size_t nlen = paren ? (size_t)(paren - tok) : strlen(tok);
    if (nlen == 0 || nlen >= sizeof name)
        return fz_fail(err, FZ_EDATA, "layer '%.40s': not a layer name", tok);
    memcpy(name, tok, nlen);
    name[nlen] = '\0';
    if (paren) {
        const char *p = paren + 1;
        const char *close = strchr(p, ')');
        if (!close || close[1] != '\0')
            return fz_fail(err, FZ_EDATA, "layer '%.40s': expected NAME(ARG, ...)", tok);
        while (p < close) {
            const char *c = memchr(p, ',', (size_t)(close - p));
            const char *e = c ? c : close;
            if (nargs >= 5)
                return fz_fail(err, FZ_EDATA, "layer '%.40s': too many arguments", tok);
            size_t len = (size_t)(e - p);
            if (len == 0 || len >= sizeof args[0])
                return fz_fail(err, FZ_EDATA, "layer '%.40s': empty or long argument", tok);
            memcpy(args[nargs], p, len);
            args[nargs][len] = '\0';
            nargs++;
            p = c ? c + 1 : close;
        }
    }
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < sizeof TOKENS / sizeof TOKENS[0]; i++) {
        if (strcmp(TOKENS[i].name, name) != 0) continue;
        if (nargs < TOKENS[i].min_args || nargs > TOKENS[i].max_args)
            return fz_fail(err, FZ_EDATA, "layer '%.40s': %s takes %d to %d arguments", tok,
                           name, TOKENS[i].min_args, TOKENS[i].max_args);
        s->kind = TOKENS[i].kind;
        s->stride = 1;
        s->slope = 0.01f;
        switch (s->kind) {
        case FZ_LINEAR: return parse_size(args[0], s, tok, err);
        case FZ_CONV2D:
        case FZ_CONVT2D:
            if (parse_size(args[0], s, tok, err)) return -1;
            if (parse_int_arg(args[1], 1, 64, &s->k, tok, err)) return -1;
            if (nargs > 2 && parse_int_arg(args[2], 1, 64, &s->stride, tok, err)) return -1;
            if (nargs > 3 && parse_int_arg(args[3], 0, 64, &s->pad, tok, err)) return -1;
            if (nargs > 4 && parse_int_arg(args[4], 0, 63, &s->out_pad, tok, err)) return -1;
            return 0;
        case FZ_DROPOUT: {
            double p;
            if (fz_parse_double(args[0], 0, 1, &p, tok, err)) return -1;
            s->p = (float)p;
            return 0;
        }
        case FZ_LEAKYRELU: {
            double v = 0.01;
            if (nargs && fz_parse_double(args[0], 0, 1e6, &v, tok, err)) return -1;
            s->slope = (float)v;
            return 0;
        }
        case FZ_UNFLATTEN:
            if (parse_int_arg(args[0], 1, FZ_NN_MAX_DIM, &s->uc, tok, err) ||
                parse_int_arg(args[1], 1, FZ_NN_MAX_DIM, &s->uh, tok, err) ||
                parse_int_arg(args[2], 1, FZ_NN_MAX_DIM, &s->uw, tok, err))
                return -1;
            return 0;
        default: return 0;
        }
    }
    return fz_fail(err, FZ_EDATA,
                   "unknown layer '%s' (layers: linear conv2d convt2d bn dropout relu leakyrelu "
                   "silu sigmoid tanh softplus flatten unflatten)",
                   name);
}

static int parse_layers(const char *value, fz_layer_spec *out, int *n, const char *key,
                        fz_err *err)
{
    *n = 0;
    const char *p = value;
    while (*p) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) break;
        char tok[96];
        size_t len = 0;
        int depth = 0;
        /* a token ends at white space outside parentheses */
        while (*p && (depth > 0 || !isspace((unsigned char)*p))) {
            if (*p == '(') depth++;
            if (*p == ')') depth--;
            if (!isspace((unsigned char)*p)) {
                if (len + 1 >= sizeof tok)
                    return fz_fail(err, FZ_EDATA, "%s: layer token too long", key);
                tok[len++] = *p;
            }
            p++;
        }
        tok[len] = '\0';
        if (*n >= FZ_ARCH_MAX_LAYERS)
            return fz_fail(err, FZ_EDATA, "%s: more than %d layers", key, FZ_ARCH_MAX_LAYERS);
        if (parse_layer(tok, &out[*n], err)) {
            fz_err_prefix(err, key);
            return -1;
        }
        (*n)++;
    }
    if (*n == 0) return fz_fail(err, FZ_EDATA, "%s: no layers", key);
    return 0;
}

int fz_arch_parse(const char *text, fz_arch *a, fz_err *err)
{
    memset(a, 0, sizeof *a);
    a->kind = -1;
    a->sigma = FZ_SIGMA_LOGVAR;
    int have_enc = 0, have_dec = 0, have_sigma = 0;
    const char *p = text;
    int lineno = 0;
    while (*p) {
        lineno++;
        size_t len = strcspn(p, "\n;");
        char line[4096];
        if (len >= sizeof line) return fz_fail(err, FZ_EDATA, "architecture line %d too long", lineno);
        memcpy(line, p, len);
        line[len] = '\0';
        p += len;
        if (*p) p++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *eq = strchr(line, '=');
        char *k = line;
        while (isspace((unsigned char)*k)) k++;
        if (!*k) continue;
        if (!eq) return fz_fail(err, FZ_EDATA, "architecture: expected 'key = value' in '%.60s'", k);
        *eq = '\0';
        char *v = eq + 1;
        for (char *e = eq - 1; e >= k && isspace((unsigned char)*e); e--) *e = '\0';
        while (isspace((unsigned char)*v)) v++;
        for (char *e = v + strlen(v) - 1; e >= v && isspace((unsigned char)*e); e--) *e = '\0';
        if (strcmp(k, "kind") == 0) {
            if (strcmp(v, "ae") == 0) a->kind = FZ_KIND_AE;
            else if (strcmp(v, "vae") == 0) a->kind = FZ_KIND_VAE;
            else return fz_fail(err, FZ_EDATA, "architecture: kind '%.40s' is not ae or vae", v);
        } else if (strcmp(k, "latent") == 0) {
            long z;
            if (fz_parse_long(v, 1, 4096, &z, "architecture: latent", err)) return -1;
            a->latent = (int)z;
        } else if (strcmp(k, "sigma") == 0) {
            if (strcmp(v, "logvar") == 0) a->sigma = FZ_SIGMA_LOGVAR;
            else if (strcmp(v, "softplus") == 0) a->sigma = FZ_SIGMA_SOFTPLUS;
            else return fz_fail(err, FZ_EDATA, "architecture: sigma '%.40s' is not logvar or softplus", v);
            have_sigma = 1;
        } else if (strcmp(k, "encoder") == 0) {
            if (parse_layers(v, a->enc, &a->nenc, "encoder", err)) return -1;
            have_enc = 1;
        } else if (strcmp(k, "decoder") == 0) {
            if (parse_layers(v, a->dec, &a->ndec, "decoder", err)) return -1;
            have_dec = 1;
        } else if (strcmp(k, "fuzzy") == 0) {
            char form[16];
            long terms;
            const char *paren = strchr(v, '(');
            size_t len = paren ? (size_t)(paren - v) : 0;
            if (!paren || len == 0 || len >= sizeof form || v[strlen(v) - 1] != ')')
                return fz_fail(err, FZ_EDATA, "architecture: fuzzy '%.40s' is not FORM(TERMS)", v);
            memcpy(form, v, len);
            form[len] = '\0';
            char num[32];
            size_t nlen = strlen(paren + 1) - 1;
            if (nlen == 0 || nlen >= sizeof num)
                return fz_fail(err, FZ_EDATA, "architecture: fuzzy '%.40s' is not FORM(TERMS)", v);
            memcpy(num, paren + 1, nlen);
            num[nlen] = '\0';
            if (fz_mf_kind_parse(form, &a->fuzzy_kind, err)) {
                fz_err_prefix(err, "architecture: fuzzy");
                return -1;
            }
            if (fz_parse_long(num, 1, FZ_FUZZY_MAX_K, &terms, "architecture: fuzzy terms", err))
                return -1;
            a->fuzzy_terms = (int)terms;
        } else if (strcmp(k, "head") == 0) {
            if (parse_layers(v, a->head, &a->nhead, "head", err)) return -1;
        } else if (strcmp(k, "outputs") == 0) {
            long o;
            if (fz_parse_long(v, 1, 4096, &o, "architecture: outputs", err)) return -1;
            a->outputs = (int)o;
        } else if (strcmp(k, "fuzzy_init") == 0) {
            double r;
            if (strcmp(v, "random") == 0) a->fuzzy_circle = 0;
            else if (strncmp(v, "circle(", 7) == 0 && v[strlen(v) - 1] == ')') {
                char num[32];
                size_t nlen = strlen(v) - 8;
                if (nlen == 0 || nlen >= sizeof num)
                    return fz_fail(err, FZ_EDATA, "architecture: fuzzy_init '%.40s'", v);
                memcpy(num, v + 7, nlen);
                num[nlen] = '\0';
                if (fz_parse_double(num, 1e-6, 1e6, &r, "architecture: fuzzy_init circle", err))
                    return -1;
                a->fuzzy_circle = r;
            } else
                return fz_fail(err, FZ_EDATA,
                               "architecture: fuzzy_init '%.40s' is not random or circle(R)", v);
        } else {
            return fz_fail(err, FZ_EDATA,
                           "architecture: unknown key '%.40s' (keys: kind latent sigma encoder "
                           "decoder fuzzy fuzzy_init head outputs)", k);
        }
    }
    if ((int)a->kind < 0) return fz_fail(err, FZ_EDATA, "architecture: missing 'kind = ae|vae'");
    if (!a->latent) return fz_fail(err, FZ_EDATA, "architecture: missing 'latent = N'");
    if (!have_enc) return fz_fail(err, FZ_EDATA, "architecture: missing 'encoder = ...'");
    if (!have_dec) return fz_fail(err, FZ_EDATA, "architecture: missing 'decoder = ...'");
    if (a->nhead && a->fuzzy_terms)
        return fz_fail(err, FZ_EDATA, "architecture: a model has a fuzzy layer or a head, not both");
    if (a->nhead && !a->outputs)
        return fz_fail(err, FZ_EDATA, "architecture: a head needs 'outputs = K'");
    if (a->fuzzy_circle > 0 && a->latent < 2)
        return fz_fail(err, FZ_EDATA, "architecture: fuzzy_init circle needs latent >= 2");
    if (have_sigma && a->kind == FZ_KIND_AE)
        return fz_fail(err, FZ_EDATA, "architecture: sigma applies to kind = vae only");
    return 0;
}

static void format_size(fz_sbuf *b, const fz_layer_spec *s)
{
    switch (s->ref) {
    case FZ_SIZE_Z: fz_sbuf_printf(b, "z"); break;
    case FZ_SIZE_2Z: fz_sbuf_printf(b, "2z"); break;
    case FZ_SIZE_IN: fz_sbuf_printf(b, "in"); break;
    case FZ_SIZE_OUT: fz_sbuf_printf(b, "out"); break;
    default: fz_sbuf_printf(b, "%d", s->n);
    }
}

/* The shortest text that reads back as the same float: 0.3, not 0.300000012. */
static void put_float(fz_sbuf *b, float v)
{
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
    fz_sbuf_printf(b, "(%s)", buf);
}

static void format_layers(fz_sbuf *b, const fz_layer_spec *L, int n)
{
    for (int i = 0; i < n; i++) {
        const fz_layer_spec *s = &L[i];
        fz_sbuf_printf(b, "%s%s", i ? " " : "", token_name(s->kind));
        switch (s->kind) {
        case FZ_LINEAR:
            fz_sbuf_putc(b, '(');
            format_size(b, s);
            fz_sbuf_putc(b, ')');
            break;
        case FZ_CONV2D:
        case FZ_CONVT2D:
            fz_sbuf_putc(b, '(');
            format_size(b, s);
            fz_sbuf_printf(b, ",%d,%d,%d", s->k, s->stride, s->pad);
            if (s->kind == FZ_CONVT2D && s->out_pad) fz_sbuf_printf(b, ",%d", s->out_pad);
            fz_sbuf_putc(b, ')');
            break;
        case FZ_DROPOUT: put_float(b, s->p); break;
        case FZ_LEAKYRELU: put_float(b, s->slope); break;
        case FZ_UNFLATTEN: fz_sbuf_printf(b, "(%d,%d,%d)", s->uc, s->uh, s->uw); break;
        default: break;
        }
    }
}

char *fz_arch_format(const fz_arch *a, fz_err *err)
{
    fz_sbuf b;
    fz_sbuf_init(&b);
    fz_sbuf_printf(&b, "kind = %s\nlatent = %d\n", a->kind == FZ_KIND_VAE ? "vae" : "ae",
                   a->latent);
    if (a->kind == FZ_KIND_VAE)
        fz_sbuf_printf(&b, "sigma = %s\n", a->sigma == FZ_SIGMA_SOFTPLUS ? "softplus" : "logvar");
    fz_sbuf_printf(&b, "encoder = ");
    format_layers(&b, a->enc, a->nenc);
    fz_sbuf_printf(&b, "\ndecoder = ");
    format_layers(&b, a->dec, a->ndec);
    fz_sbuf_putc(&b, '\n');
    if (a->nhead) {
        fz_sbuf_printf(&b, "head = ");
        format_layers(&b, a->head, a->nhead);
        fz_sbuf_printf(&b, "\noutputs = %d\n", a->outputs);
    }
    if (a->fuzzy_terms) {
        fz_sbuf_printf(&b, "fuzzy = %s(%d)\n", fz_mf_kind_name(a->fuzzy_kind), a->fuzzy_terms);
        if (a->fuzzy_circle > 0) fz_sbuf_printf(&b, "fuzzy_init = circle(%.9g)\n", a->fuzzy_circle);
        else fz_sbuf_printf(&b, "fuzzy_init = random\n");
    }
    char *s = fz_sbuf_take(&b);
    if (!s) fz_fail(err, FZ_ENOMEM, "out of memory");
    return s;
}
