/* fz-fuzzy - the fuzzy layer of a model at work: a data stream (x, encoded) or a latent
 * stream (mu) -> per row the memberships of every output, the class, its membership, the
 * anomaly score and a flag; or the terms' geometry (--terms) and the decision at one
 * latent point (--at). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "json.h"
#include "model.h"
#include "score.h"
#include "stream.h"
#include "train.h"

static const char *prog = "fz-fuzzy";
static const char *usage_line =
    "usage: fz-fuzzy -i model [-f field] [-k] [-d fields] [-B batch] [-t threads] "
    "[--threshold T | --contamination C] [--reference file] [--terms] [--at point] "
    "[--alpha A] [--json] [-o out] [in]";

/* Reference rows kept to derive a threshold: 4 bytes each. */
#define MAX_REF_ROWS ((size_t)1 << 30)

/* option values, with their defaults (printed by -h) */
static const char *opt_model, *opt_field, *opt_drop, *opt_out, *opt_reference, *opt_at;
static int opt_keep, opt_terms, opt_json;
static long opt_batch = 256, opt_threads;
static float opt_point[FZ_FUZZY_MAX_N]; /* --at */
static int opt_npoint;
static double opt_threshold = NAN, opt_contamination = NAN, opt_alpha = 0.5;
static const double default_contamination = 0.01;

static void help(void)
{
    printf("%s\n\n", usage_line);
    printf("Memberships of every fuzzy output for the rows of a stream, the class (the largest\n"
           "class membership), an anomaly score and a flag; or the terms' geometry.\n\n");
    printf("Input (default: mu when it has the model's latent size, else x, encoded):\n"
           "  -i model           fuzzy model file (required)\n"
           "  -f field           input field: latent codes if of shape (Z,), else data to encode\n"
           "  -k                 keep the encoded input field in the output\n"
           "  -d fields          also drop these fields (comma-separated)\n"
           "  -B batch           rows at a time (default %ld)\n"
           "  -t threads         threads of the products and layers (default: one per core)\n",
           opt_batch);
    printf("\nAnomaly flag (flag = score > threshold, score = 1 - the largest class membership):\n"
           "  --threshold T      this threshold\n"
           "  --contamination C  the threshold a share C of the reference scores is above\n"
           "                     (default %g when the model has reference scores, else no flag)\n"
           "  --reference file   reference scores from this stream, scored the same way\n"
           "                     (default: the training data's, stored in the model)\n",
           default_contamination);
    printf("\nTerms (print these instead of the row stream):\n"
           "  --terms            each term's centre, A, M = A'A, eigen-decomposition of M and\n"
           "                     its domain {membership >= alpha}: semi-axes and directions\n"
           "  --at point         r^2 and membership of every term at a latent point, e.g. 0.5,-1\n"
           "  --alpha A          membership level of the domains, 0 < A <= 1 (default %g)\n"
           "  --json             as JSON (implies --terms unless --at)\n",
           opt_alpha);
    printf("\nOutput:\n"
           "  -o out             output file (default: standard output)\n"
           "  -h                 this help\n\n"
           "With no in, or '-', reads standard input. Exit 0 ok, 1 data or runtime error, 2 usage.\n");
}

static int bad_usage(const char *msg)
{
    if (msg) fprintf(stderr, "%s: %s; ", prog, msg);
    fprintf(stderr, "%s\n", usage_line);
    return 2;
}

/* What every mode uses: the model and the names of its outputs. */
typedef struct ctx {
    fz_model m;
    int K, Z, nclasses; /* outputs, latent size, the first nclasses outputs are classes */
    char **names;       /* (K) output names */
    size_t name_len;    /* longest class name: the width of pred_name */
    int batch;
    float *x, *mu, *memb; /* (batch, max(D, Z)), (batch, Z), (batch, K) */
} ctx;

/* How rows become latent codes: one field, encoded or taken as it is. */
typedef struct source {
    const fz_field *f;
    int encode;
} source;

static void ctx_free(ctx *c)
{
    if (c->names)
        for (int k = 0; k < c->K; k++) free(c->names[k]);
    free(c->names);
    free(c->x);
    free(c->mu);
    free(c->memb);
    fz_model_free(&c->m);
}

/* The JSON array of strings in the model's metadata key, or NULL. */
static fz_json *meta_array(const fz_model *m, const char *key)
{
    const char *v = fz_model_meta(m, key);
    fz_err err;
    fz_json *j = v ? fz_json_parse(v, strlen(v), &err) : NULL;
    if (j && fz_json_type(j) != FZ_JARR) {
        fz_json_free(j);
        j = NULL;
    }
    return j;
}

/* Output names: "outputs" when it names all K, else "classes" for the first ones, else
 * the index. The classes are the first len(classes) outputs (all when no "classes"). */
static int ctx_names(ctx *c, fz_err *err)
{
    fz_json *outs = meta_array(&c->m, "outputs"), *cls = meta_array(&c->m, "classes");
    size_t ncls = cls ? fz_json_len(cls) : 0;
    c->nclasses = ncls > 0 && ncls <= (size_t)c->K ? (int)ncls : c->K;
    const fz_json *src = outs && fz_json_len(outs) == (size_t)c->K ? outs : cls;
    c->names = fz_calloc((size_t)c->K, sizeof(char *), err);
    int rc = c->names ? 0 : -1;
    for (int k = 0; k < c->K && rc == 0; k++) {
        const char *s = src && (size_t)k < fz_json_len(src) ? fz_json_str(fz_json_at(src, k)) : NULL;
        char idx[16];
        snprintf(idx, sizeof idx, "%d", k);
        if (!(c->names[k] = strdup(s ? s : idx))) rc = fz_fail(err, FZ_ENOMEM, "out of memory");
        else if (k < c->nclasses && strlen(c->names[k]) > c->name_len) c->name_len = strlen(c->names[k]);
    }
    if (c->name_len == 0) c->name_len = 1;
    if (c->name_len > 256) c->name_len = 256; /* longer names are cut in pred_name */
    fz_json_free(outs);
    fz_json_free(cls);
    return rc;
}

static int ctx_open(ctx *c, const char *path, int batch, fz_err *err)
{
    if (fz_model_load(&c->m, path, err)) return -1;
    if (!fz_model_terms(&c->m))
        return fz_fail(err, FZ_EDATA,
                       "%s has no fuzzy layer: train with a fuzzy preset (fcvae-mlp, fcvae-conv) "
                       "or 'fuzzy =' in the description",
                       path);
    c->K = fz_model_terms(&c->m);
    c->Z = fz_model_latent(&c->m);
    c->batch = batch;
    size_t D = c->m.in_count > (size_t)c->Z ? c->m.in_count : (size_t)c->Z;
    if (ctx_names(c, err) || fz_model_reserve(&c->m, batch, err)) return -1;
    if (!(c->x = fz_calloc((size_t)batch * D, sizeof(float), err)) ||
        !(c->mu = fz_calloc((size_t)batch * c->Z, sizeof(float), err)) ||
        !(c->memb = fz_calloc((size_t)batch * c->K, sizeof(float), err)))
        return -1;
    return 0;
}

static int same_shape(fz_shape a, fz_shape b) { return a.c == b.c && a.h == b.h && a.w == b.w; }

/* Choose the input field of a stream. Automatic: mu when it is (Z,), else x. A forced field
 * of shape (Z,) is taken as latent codes, unless the model's input is itself (Z, 1, 1) and
 * the field is not named mu; any other field is encoded and must fit the model. */
static int pick_source(const ctx *c, fz_reader *r, const char *forced, source *s, fz_err *err)
{
    const fz_schema *sc = fz_reader_schema(r);
    const char *name = forced;
    if (!name) {
        int mi = fz_schema_find(sc, "mu");
        name = mi >= 0 && sc->field[mi].ndim == 1 && sc->field[mi].shape[0] == c->Z ? "mu" : "x";
    }
    int fi = fz_schema_find(sc, name);
    if (fi < 0) {
        if (forced) return fz_fail(err, FZ_EDATA, "%s: no field '%s' in the stream", fz_reader_name(r), name);
        return fz_fail(err, FZ_EDATA, "%s: no field 'x', nor 'mu' of shape (%d,), in the stream",
                       fz_reader_name(r), c->Z);
    }
    const fz_field *f = &sc->field[fi];
    int latent = f->ndim == 1 && f->shape[0] == c->Z && f->type != FZ_BYTES;
    fz_shape shape;
    fz_err e2;
    int fits = f->type != FZ_BYTES && fz_field_shape3(f, &shape, &e2) == 0 && same_shape(shape, c->m.in);
    if (latent && fits && strcmp(name, "mu") != 0) latent = 0;
    if (!latent && !fits) {
        char a[64], b[64];
        return fz_fail(err, FZ_EDATA,
                       "%s: field '%s' has shape %s, the model %s takes %s or latent codes (%d,)",
                       fz_reader_name(r), name, fz_field_shape_str(f, a, sizeof a), opt_model,
                       fz_model_shape_str(c->m.in, b, sizeof b), c->Z);
    }
    s->f = f;
    s->encode = !latent;
    return 0;
}

/* Memberships c->memb (n, K) of n rows of buf (rows of row_size bytes). */
static int memberships(ctx *c, const source *s, fz_reader *r, const unsigned char *buf, long n,
                       size_t row_size, fz_err *err)
{
    size_t d = s->f->count;
    /* An image field of float32 at a float-aligned place in float-aligned rows is encoded
     * where it lies (rows ld floats apart), sparing a copy of the batch. */
    int inplace = s->encode && s->f->type == FZ_F4 && s->f->offset % 4 == 0 && row_size % 4 == 0;
    float *in = s->encode ? c->x : c->mu; /* (n, d) when copied */
    for (long i = 0; i < n; i++) {
        const unsigned char *row = buf + (size_t)i * row_size;
        const float *xi = inplace ? (const float *)(const void *)(row + s->f->offset) : in + (size_t)i * d;
        if (!inplace) fz_field_to_f32(s->f, row, in + (size_t)i * d);
        ptrdiff_t bad = fz_first_nonfinite(xi, d);
        if (bad >= 0)
            return fz_fail(err, FZ_EDATA, "%s: row %llu has a non-finite value in '%s' at index %td",
                           fz_reader_name(r),
                           (unsigned long long)(fz_reader_rows(r) - (uint64_t)n + (uint64_t)i),
                           s->f->name, bad);
    }
    if (inplace)
        fz_model_encode_ld(&c->m, (const float *)(const void *)(buf + s->f->offset), row_size / 4,
                           (int)n, c->x, c->mu, NULL);
    else if (s->encode)
        fz_model_encode(&c->m, c->x, (int)n, c->mu, NULL);
    fz_model_memberships(&c->m, c->mu, (int)n, c->memb);
    return 0;
}

/* The scores of every row of the stream at path, sorted; *n of them. */
static float *reference_scores(ctx *c, const char *path, size_t *nout, fz_err *err)
{
    fz_reader *r = fz_reader_open(path, err);
    if (!r) return NULL;
    const fz_schema *sc = fz_reader_schema(r);
    source s;
    unsigned char *buf = NULL;
    float *sc_all = NULL;
    size_t n = 0, cap = 0;
    long got = -1;
    if (pick_source(c, r, opt_field, &s, err) ||
        !(buf = fz_malloc((size_t)c->batch * sc->row_size + 1, err)))
        goto out;
    while ((got = fz_reader_read(r, buf, (size_t)c->batch, err)) > 0) {
        if (memberships(c, &s, r, buf, got, sc->row_size, err)) {
            got = -1;
            break;
        }
        if (n + (size_t)got > cap) {
            size_t nc = cap ? cap * 2 : 4096;
            if (nc > MAX_REF_ROWS || n + (size_t)got > MAX_REF_ROWS) {
                fz_fail(err, FZ_EDATA, "%s: more than %zu reference rows", fz_reader_name(r), MAX_REF_ROWS);
                got = -1;
                break;
            }
            float *p = realloc(sc_all, nc * sizeof(float));
            if (!p) {
                fz_fail(err, FZ_ENOMEM, "out of memory");
                got = -1;
                break;
            }
            sc_all = p;
            cap = nc;
        }
        for (long i = 0; i < got; i++)
            sc_all[n++] = (float)fz_anomaly_score(c->memb + (size_t)i * c->K, c->K, c->nclasses);
    }
    if (got == 0 && n == 0) {
        fz_fail(err, FZ_EDATA, "%s: no reference rows", fz_reader_name(r));
        got = -1;
    }
out:
    if (got != 0) {
        free(sc_all);
        sc_all = NULL;
    } else {
        fz_sort_scores(sc_all, n);
        *nout = n;
    }
    free(buf);
    fz_reader_close(r);
    return sc_all;
}

/* The threshold of the flag (NaN: flag nothing), and the contamination it came from. */
static int pick_threshold(ctx *c, double *thr, double *contam, fz_err *err)
{
    *thr = opt_threshold;
    *contam = NAN;
    if (!isnan(opt_threshold)) return 0;
    double C = isnan(opt_contamination) ? default_contamination : opt_contamination;
    if (opt_reference) {
        size_t n = 0;
        float *s = reference_scores(c, opt_reference, &n, err);
        if (!s) return -1;
        *thr = fz_threshold_contamination(s, n, C);
        free(s);
    } else if (c->m.ref_scores && c->m.nref > 0) {
        fz_sort_scores(c->m.ref_scores, (size_t)c->m.nref);
        *thr = fz_threshold_contamination(c->m.ref_scores, (size_t)c->m.nref, C);
    } else if (!isnan(opt_contamination)) {
        return fz_fail(err, FZ_EDATA,
                       "%s has no reference scores: give --reference with --contamination, or --threshold",
                       opt_model);
    } else {
        fprintf(stderr, "%s: %s has no reference scores: no row is flagged (give --threshold or --reference)\n",
                prog, opt_model);
        return 0;
    }
    *contam = C;
    return 0;
}

/* The output's metadata: the input's, plus the model's class and output names when the
 * input has none, plus how the flag was decided. */
static char *out_meta(const ctx *c, const char *in_meta, double thr, double contam)
{
    fz_err err;
    fz_json *j = fz_json_parse(in_meta, strlen(in_meta), &err);
    fz_sbuf b;
    fz_sbuf_init(&b);
    fz_sbuf_putc(&b, '{');
    int first = 1;
    if (j && fz_json_type(j) == FZ_JOBJ)
        for (size_t i = 0; i < fz_json_len(j); i++) {
            const char *k = fz_json_key_at(j, i);
            if (strcmp(k, "anomaly_threshold") == 0) continue;
            if (!first) fz_sbuf_putc(&b, ',');
            first = 0;
            fz_sbuf_json_str(&b, k);
            fz_sbuf_putc(&b, ':');
            fz_sbuf_json_node(&b, fz_json_at(j, i));
        }
    static const char *const keys[] = {"classes", "outputs"};
    for (int i = 0; i < 2; i++) {
        const char *v = fz_model_meta(&c->m, keys[i]);
        if (!v || (j && fz_json_get(j, keys[i]))) continue;
        if (!first) fz_sbuf_putc(&b, ',');
        first = 0;
        fz_sbuf_printf(&b, "\"%s\":%s", keys[i], v);
    }
    if (!first) fz_sbuf_putc(&b, ',');
    fz_sbuf_printf(&b, "\"anomaly_threshold\":{\"threshold\":");
    fz_sbuf_json_f64(&b, thr);
    fz_sbuf_printf(&b, ",\"contamination\":");
    fz_sbuf_json_f64(&b, contam);
    fz_sbuf_printf(&b, ",\"reference\":");
    fz_sbuf_json_str(&b, isnan(contam) ? NULL : opt_reference ? opt_reference : opt_model);
    fz_sbuf_printf(&b, "}}");
    fz_json_free(j);
    return fz_sbuf_take(&b);
}

/* Fields written by this tool, in order. */
enum { F_MEMB, F_PRED, F_NAME, F_MAXMEM, F_SCORE, F_FLAG, NOWN };
static const char *const own_names[NOWN] = {"membership", "pred", "pred_name", "maxmem", "score", "flag"};

/* The row stream: read in, write the rows with their decisions to opt_out. */
static int run_stream(ctx *c, const char *in_path, fz_err *err)
{
    double thr, contam;
    if (pick_threshold(c, &thr, &contam, err)) return -1;
    fz_reader *r = fz_reader_open(in_path, err);
    if (!r) return -1;
    const fz_schema *in = fz_reader_schema(r);
    fz_writer *w = NULL;
    unsigned char *inbuf = NULL, *outbuf = NULL;
    char *meta = NULL;
    int rc = -1;
    source s;
    if (pick_source(c, r, opt_field, &s, err)) goto out;

    /* Output: the input's fields minus the encoded field (unless -k), -d, and our own. */
    char *drop_list = opt_drop ? strdup(opt_drop) : NULL;
    const char *drop[FZ_MAX_FIELDS + NOWN + 2];
    int nd = drop_list ? fz_split_names(drop_list, drop, FZ_MAX_FIELDS) : 0;
    if (s.encode && !opt_keep) drop[nd++] = s.f->name;
    for (int i = 0; i < NOWN; i++) drop[nd++] = own_names[i];
    drop[nd] = NULL;
    fz_schema out;
    fz_rowmap map;
    int64_t kshape[1] = {c->K};
    int built = fz_rowmap_build(&map, in, &out, drop, err) == 0 &&
                fz_schema_add(&out, "membership", FZ_F4, 0, 1, kshape, err) == 0 &&
                fz_schema_add(&out, "pred", FZ_I4, 0, 0, NULL, err) == 0 &&
                fz_schema_add(&out, "pred_name", FZ_BYTES, c->name_len, 0, NULL, err) == 0 &&
                fz_schema_add(&out, "maxmem", FZ_F4, 0, 0, NULL, err) == 0 &&
                fz_schema_add(&out, "score", FZ_F4, 0, 0, NULL, err) == 0 &&
                fz_schema_add(&out, "flag", FZ_U1, 0, 0, NULL, err) == 0;
    free(drop_list);
    if (!built) goto out;
    const fz_field *of[NOWN];
    for (int i = 0; i < NOWN; i++) of[i] = &out.field[fz_schema_find(&out, own_names[i])];

    if (!(meta = out_meta(c, fz_reader_meta(r), thr, contam))) {
        fz_fail(err, FZ_ENOMEM, "out of memory");
        goto out;
    }
    if (!(w = fz_writer_open(opt_out, &out, meta, 0, err)) ||
        !(inbuf = fz_malloc((size_t)c->batch * in->row_size + 1, err)) ||
        !(outbuf = fz_malloc((size_t)c->batch * out.row_size + 1, err)))
        goto out;
    long n;
    while ((n = fz_reader_read(r, inbuf, (size_t)c->batch, err)) > 0) {
        if (memberships(c, &s, r, inbuf, n, in->row_size, err)) goto out;
        for (long i = 0; i < n; i++) {
            unsigned char *orow = outbuf + (size_t)i * out.row_size;
            const float *mb = c->memb + (size_t)i * c->K; /* (K) */
            fz_rowmap_copy(&map, inbuf + (size_t)i * in->row_size, orow);
            for (int k = 0; k < c->K; k++) fz_field_set(of[F_MEMB], orow, (size_t)k, mb[k]);
            float maxm;
            int pred = fz_argmax_classes(mb, c->K, c->nclasses, &maxm);
            float score = (float)fz_anomaly_score(mb, c->K, c->nclasses);
            fz_field_set(of[F_PRED], orow, 0, pred);
            unsigned char *nm = orow + of[F_NAME]->offset;
            memset(nm, 0, of[F_NAME]->size);
            size_t len = strlen(c->names[pred]);
            memcpy(nm, c->names[pred], len < of[F_NAME]->size ? len : of[F_NAME]->size);
            fz_field_set(of[F_MAXMEM], orow, 0, maxm);
            fz_field_set(of[F_SCORE], orow, 0, score);
            fz_field_set(of[F_FLAG], orow, 0, !isnan(thr) && score > thr);
        }
        if (fz_writer_write(w, outbuf, (size_t)n, err)) goto out;
    }
    if (n < 0) goto out;
    fz_writer *done = w;
    w = NULL;
    rc = fz_writer_close(done, err);
out:
    if (w) fz_writer_abort(w);
    fz_reader_close(r);
    free(inbuf);
    free(outbuf);
    free(meta);
    return rc;
}

/* ---- --terms and --at ------------------------------------------------------------------ */

static void put_vec(fz_sbuf *b, const double *v, int n)
{
    fz_sbuf_putc(b, '[');
    for (int i = 0; i < n; i++) {
        if (i) fz_sbuf_putc(b, ',');
        fz_sbuf_json_f64(b, v[i]);
    }
    fz_sbuf_putc(b, ']');
}

static void put_mat(fz_sbuf *b, const double *a, int n)
{
    fz_sbuf_putc(b, '[');
    for (int i = 0; i < n; i++) {
        if (i) fz_sbuf_putc(b, ',');
        put_vec(b, a + (size_t)i * n, n);
    }
    fz_sbuf_putc(b, ']');
}

static void txt_row(fz_sbuf *b, const char *label, const double *v, int n)
{
    fz_sbuf_printf(b, "  %-14s", label);
    for (int i = 0; i < n; i++) fz_sbuf_printf(b, " %12.6g", v[i]);
    fz_sbuf_putc(b, '\n');
}

static void txt_mat(fz_sbuf *b, const char *label, const double *a, int n)
{
    for (int i = 0; i < n; i++) txt_row(b, i ? "" : label, a + (size_t)i * n, n);
}

/* One term's geometry, as text or as a JSON object. */
static int put_term(const ctx *c, int j, fz_sbuf *b, fz_err *err)
{
    const fz_fuzzy *F = &c->m.fuzzy;
    int n = c->Z;
    size_t nn = (size_t)n * n;
    double *A = fz_malloc((3 * nn + 3 * (size_t)n) * sizeof(double), err);
    if (!A) return -1;
    double *M = A + nn, *vecs = M + nn, *centre = vecs + nn, *lambda = centre + n, *semi = lambda + n;
    /* An article term whose S is singular has no centre: say so and show the rest. */
    int has_centre = fz_fuzzy_term(F, j, centre, A, M, err) == 0;
    if (!has_centre) {
        for (int i = 0; i < n; i++) centre[i] = NAN;
        if (fz_fuzzy_term(F, j, NULL, A, M, err)) goto fail;
    }
    if (fz_fuzzy_domain(F, j, opt_alpha, NULL, lambda, vecs, semi, err)) goto fail;
    double level = fz_fuzzy_level_r2(F, j, opt_alpha), bb = fz_fuzzy_bell_b(F, j);
    const char *role = j < c->nclasses ? "class" : "attribute";
    if (opt_json) {
        fz_sbuf_printf(b, "{\"index\":%d,\"name\":", j);
        fz_sbuf_json_str(b, c->names[j]);
        fz_sbuf_printf(b, ",\"role\":\"%s\",\"active\":%s,", role, F->active[j] ? "true" : "false");
        if (F->kind == FZ_MF_BELL) {
            fz_sbuf_printf(b, "\"b\":");
            fz_sbuf_json_f64(b, bb);
            fz_sbuf_putc(b, ',');
        }
        fz_sbuf_printf(b, "\"center\":");
        put_vec(b, centre, n);
        fz_sbuf_printf(b, ",\"A\":");
        put_mat(b, A, n);
        fz_sbuf_printf(b, ",\"M\":");
        put_mat(b, M, n);
        fz_sbuf_printf(b, ",\"eigenvalues\":");
        put_vec(b, lambda, n);
        fz_sbuf_printf(b, ",\"eigenvectors\":");
        put_mat(b, vecs, n);
        fz_sbuf_printf(b, ",\"level_r2\":");
        fz_sbuf_json_f64(b, level);
        fz_sbuf_printf(b, ",\"semi_axes\":");
        put_vec(b, semi, n);
        fz_sbuf_putc(b, '}');
    } else {
        fz_sbuf_printf(b, "\nterm %d '%s' (%s%s)", j, c->names[j], role, F->active[j] ? "" : ", inactive");
        if (F->kind == FZ_MF_BELL) fz_sbuf_printf(b, " b %.6g", bb);
        fz_sbuf_printf(b, ", domain r^2 <= %.6g\n", level);
        if (has_centre) txt_row(b, "centre", centre, n);
        else fz_sbuf_printf(b, "  %-14s  (none: S is singular)\n", "centre");
        txt_mat(b, F->kind == FZ_MF_ARTICLE ? "A (= S)" : "A", A, n);
        txt_mat(b, "M = A'A", M, n);
        txt_row(b, "eigenvalues", lambda, n);
        txt_mat(b, "eigenvectors", vecs, n);
        txt_row(b, "semi-axes", semi, n);
    }
    free(A);
    return 0;
fail:
    free(A);
    return -1;
}

/* "0.5,-1" -> at most FZ_FUZZY_MAX_N floats in opt_point; *n of them. 0, or -1 with a reason. */
static int parse_point(const char *text, float *x, int *n, fz_err *err)
{
    char *s = strdup(text);
    if (!s) return fz_fail(err, FZ_ENOMEM, "out of memory");
    int rc = 0;
    char *save = NULL;
    *n = 0;
    for (char *tok = strtok_r(s, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        double v;
        if (*n >= FZ_FUZZY_MAX_N)
            rc = fz_fail(err, FZ_EUSAGE, "--at: more than %d values", FZ_FUZZY_MAX_N);
        else if (fz_parse_double(tok, -1e30, 1e30, &v, "--at", err) == 0)
            x[(*n)++] = (float)v;
        else
            rc = -1;
    }
    if (rc == 0 && *n == 0) rc = fz_fail(err, FZ_EUSAGE, "--at: no values");
    free(s);
    return rc;
}

static int put_point(const ctx *c, const float *x, fz_sbuf *b, fz_err *err)
{
    int K = c->K;
    double *r2 = fz_malloc(2 * (size_t)K * sizeof(double), err);
    float *mf = fz_malloc((size_t)K * sizeof(float), err);
    if (!r2 || !mf) {
        free(r2);
        free(mf);
        return -1;
    }
    double *m = r2 + K;
    fz_fuzzy_point(&c->m.fuzzy, x, r2, m);
    for (int k = 0; k < K; k++) mf[k] = (float)m[k];
    float maxm;
    int pred = fz_argmax_classes(mf, K, c->nclasses, &maxm);
    double score = fz_anomaly_score(mf, K, c->nclasses);
    if (opt_json) {
        fz_sbuf_printf(b, "{\"point\":[");
        for (int i = 0; i < c->Z; i++) {
            if (i) fz_sbuf_putc(b, ',');
            fz_sbuf_json_f32(b, x[i]);
        }
        fz_sbuf_printf(b, "],\"terms\":[");
        for (int k = 0; k < K; k++) {
            fz_sbuf_printf(b, "%s{\"name\":", k ? "," : "");
            fz_sbuf_json_str(b, c->names[k]);
            fz_sbuf_printf(b, ",\"r2\":");
            fz_sbuf_json_f64(b, r2[k]);
            fz_sbuf_printf(b, ",\"membership\":");
            fz_sbuf_json_f64(b, m[k]);
            fz_sbuf_putc(b, '}');
        }
        fz_sbuf_printf(b, "],\"pred\":%d,\"pred_name\":", pred);
        fz_sbuf_json_str(b, c->names[pred]);
        fz_sbuf_printf(b, ",\"maxmem\":");
        fz_sbuf_json_f32(b, maxm);
        fz_sbuf_printf(b, ",\"score\":");
        fz_sbuf_json_f64(b, score);
        fz_sbuf_putc(b, '}');
    } else {
        fz_sbuf_printf(b, "point");
        for (int i = 0; i < c->Z; i++) fz_sbuf_printf(b, " %.9g", x[i]);
        fz_sbuf_printf(b, "\n%5s  %-16s %14s %14s\n", "term", "name", "r^2", "membership");
        for (int k = 0; k < K; k++)
            fz_sbuf_printf(b, "%5d  %-16s %14.6g %14.6g\n", k, c->names[k], r2[k], m[k]);
        fz_sbuf_printf(b, "pred %d '%s'  maxmem %.6g  score %.6g\n", pred, c->names[pred], maxm, score);
    }
    free(r2);
    free(mf);
    return 0;
}

/* --terms and --at: the report is built whole, then written, so an error prints nothing. */
static int run_terms(ctx *c, fz_err *err)
{
    if (!c->m.has_fuzzy)
        return fz_fail(err, FZ_EDATA, "%s has a dense head, not a fuzzy layer: no terms to show",
                       opt_model);
    const fz_fuzzy *F = &c->m.fuzzy;
    int terms = opt_terms || !opt_at;
    const float *x = opt_at ? opt_point : NULL;
    fz_sbuf b;
    fz_sbuf_init(&b);
    int rc = -1;
    if (x && opt_npoint != c->Z) {
        fz_fail(err, FZ_EDATA, "--at has %d values, the model %s has %d latent dimensions",
                opt_npoint, opt_model, c->Z);
        goto out;
    }
    if (opt_json) {
        fz_sbuf_printf(&b, "{\"model\":");
        fz_sbuf_json_str(&b, opt_model);
        fz_sbuf_printf(&b, ",\"kind\":\"%s\",\"latent\":%d,\"outputs\":%d,\"classes\":%d,\"alpha\":",
                       fz_mf_kind_name(F->kind), c->Z, c->K, c->nclasses);
        fz_sbuf_json_f64(&b, opt_alpha);
    } else {
        fz_sbuf_printf(&b, "%s: %d %s terms over %d latent dimensions, the first %d classes\n", opt_model,
                       c->K, fz_mf_kind_name(F->kind), c->Z, c->nclasses);
    }
    if (terms) {
        if (opt_json) fz_sbuf_printf(&b, ",\"terms\":[");
        else
            fz_sbuf_printf(&b, "domains at membership >= %g: semi-axis i lies along eigenvector i "
                               "(rows), M = A'A, r^2 = (x - centre)' M (x - centre)\n",
                           opt_alpha);
        for (int j = 0; j < c->K; j++) {
            if (opt_json && j) fz_sbuf_putc(&b, ',');
            if (put_term(c, j, &b, err)) goto out;
        }
        if (opt_json) fz_sbuf_putc(&b, ']');
    }
    if (x) {
        fz_sbuf_printf(&b, opt_json ? ",\"at\":" : terms ? "\n" : "");
        if (put_point(c, x, &b, err)) goto out;
    }
    if (opt_json) fz_sbuf_printf(&b, "}\n");
    if (b.failed) {
        fz_fail(err, FZ_ENOMEM, "out of memory");
        goto out;
    }
    FILE *f = opt_out ? fopen(opt_out, "w") : stdout;
    if (!f) {
        fz_fail(err, fz_errno_code(errno), "%s: %s", opt_out, strerror(errno));
        goto out;
    }
    fwrite(b.buf, 1, b.len, f);
    int bad = fflush(f) != 0 || ferror(f);
    int e = errno;
    if (f != stdout && fclose(f) != 0 && !bad) bad = 1, e = errno;
    if (bad) fz_fail(err, fz_errno_code(e), "%s: %s", fz_out_name(opt_out), strerror(e));
    else rc = 0;
out:
    fz_sbuf_free(&b);
    return rc;
}

static int fail(const fz_err *err)
{
    if (err->code == FZ_EPIPE) return 0; /* the reader went away: not an error */
    fprintf(stderr, "%s: %s\n", prog, err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    int switched = fz_blas_init(argc, argv);
    fz_blas_ftz(1);
    signal(SIGPIPE, SIG_IGN);
    enum { O_THRESHOLD = 256, O_CONTAM, O_REFERENCE, O_TERMS, O_JSON, O_ALPHA, O_AT };
    static const struct option longs[] = {
        {"threshold", required_argument, 0, O_THRESHOLD},
        {"contamination", required_argument, 0, O_CONTAM},
        {"reference", required_argument, 0, O_REFERENCE},
        {"terms", no_argument, 0, O_TERMS},
        {"json", no_argument, 0, O_JSON},
        {"alpha", required_argument, 0, O_ALPHA},
        {"at", required_argument, 0, O_AT},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    fz_err err;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "i:f:kd:B:t:o:h", longs, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'i': opt_model = optarg; break;
        case 'f': opt_field = optarg; break;
        case 'k': opt_keep = 1; break;
        case 'd': opt_drop = optarg; break;
        case 'B': bad = fz_parse_long(optarg, 1, 65536, &opt_batch, "-B", &err); break;
        case 't': bad = fz_parse_long(optarg, 1, 256, &opt_threads, "-t", &err); break;
        case 'o': opt_out = optarg; break;
        case O_THRESHOLD: bad = fz_parse_double(optarg, -1e30, 1e30, &opt_threshold, "--threshold", &err); break;
        case O_CONTAM: bad = fz_parse_double(optarg, 0, 1, &opt_contamination, "--contamination", &err); break;
        case O_REFERENCE: opt_reference = optarg; break;
        case O_TERMS: opt_terms = 1; break;
        case O_JSON: opt_json = 1; break;
        case O_ALPHA:
            bad = fz_parse_double(optarg, 0, 1, &opt_alpha, "--alpha", &err);
            if (!bad && opt_alpha <= 0) bad = fz_fail(&err, FZ_EUSAGE, "--alpha: %s is not above 0", optarg);
            break;
        case O_AT:
            opt_at = optarg;
            bad = parse_point(optarg, opt_point, &opt_npoint, &err);
            break;
        case 'h': help(); return 0;
        default: return bad_usage(NULL);
        }
        if (bad) return bad_usage(err.msg);
    }
    int report = opt_terms || opt_json || opt_at;
    if (!opt_model || argc - optind > 1 || (report && argc - optind > 0))
        return bad_usage(NULL);
    if (!isnan(opt_threshold) && (!isnan(opt_contamination) || opt_reference))
        return bad_usage("--threshold excludes --contamination and --reference");
    if (report && (!isnan(opt_threshold) || !isnan(opt_contamination) || opt_reference || opt_field ||
                   opt_keep || opt_drop))
        return bad_usage("--terms, --at and --json print the terms and take no stream options");
    const char *in_path = optind < argc ? argv[optind] : "-";
    if (opt_reference && !strcmp(opt_reference, "-") && !strcmp(in_path, "-"))
        return bad_usage("--reference and the input cannot both be standard input");
    if (switched && fz_blas_selfcheck(&err)) return fail(&err);
    if (opt_threads) fz_blas_set_threads((int)opt_threads);

    ctx cx = {0};
    int rc = ctx_open(&cx, opt_model, (int)opt_batch, &err) ? -1 : report ? run_terms(&cx, &err)
                                                                        : run_stream(&cx, in_path, &err);
    ctx_free(&cx);
    return rc ? fail(&err) : 0;
}
