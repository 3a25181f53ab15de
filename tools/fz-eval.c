/* fz-eval - metrics of a stream of predictions, reconstructions or anomaly scores:
 * classification (label, pred), reconstruction (x, xhat; mu, logvar) and anomaly detection
 * (score, truth). Reads the stream once; classification and reconstruction are running
 * sums, anomaly metrics keep one (score, truth) pair of 8 bytes per row. With --knn the
 * predicted class is instead the vote of the nearest labeled rows of a reference stream,
 * which is held in memory (4 bytes per value of each labeled row); with --knn-score the
 * anomaly score is the distance to the K-th nearest row of that stream (every row kept). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "metrics.h"
#include "stream.h"

static const char *prog = "fz-eval";
static const char *usage_line =
    "usage: fz-eval [-h] [--classes] [--recon] [--anomaly] [--tsv | --json] [--pred FIELD] "
    "[--score FIELD] [--truth FIELD | --anomaly-classes LIST] [--threshold T] [--roc FILE] "
    "[--range R] [--per-feature] [--knn K --reference FILE [--field FIELD]] "
    "[--recon-score | --norm-score FIELD | --knn-score K --reference FILE] [file]";

/* Scored rows kept for the anomaly metrics: 8 bytes each, so 16 GiB at this limit. */
#define MAX_SCORED ((size_t)1 << 31)
/* The table shows the confusion matrix up to this many classes (--tsv and --json: all). */
#define TABLE_MAX_CLASSES 40

/* option values, with their defaults (printed by -h) */
static int opt_classes, opt_recon, opt_anomaly;
static enum { OUT_TABLE, OUT_TSV, OUT_JSON } opt_out = OUT_TABLE;
static const char *opt_pred = "pred", *opt_score = "score";
static const char *opt_truth, *opt_anomaly_classes, *opt_roc;
static double opt_threshold = NAN;
static double opt_range = 1;
static int opt_per_feature, opt_knn;
static const char *opt_reference, *opt_field = "mu";
static int opt_recon_score;           /* the anomaly score: each row's MSE of xhat against x */
static const char *opt_norm_score;    /* or the squared norm of this vector field */
static int opt_knn_score;             /* or the distance to the K-th nearest reference row */

static void usage_msg(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "; %s\n", usage_line);
    exit(2);
}

static void help(void)
{
    printf("%s\n\n", usage_line);
    printf("Metrics of a stream: classification from {label, pred}, reconstruction from\n"
           "{x, xhat} (and the ELBO's parts with {mu, logvar}), anomaly detection from {score}\n"
           "and a truth. Reads the stream once; the anomaly metrics keep 8 bytes per row.\n\n");
    printf("What to evaluate (default: every kind whose fields are present):\n"
           "  --classes            classification: accuracy, per-class precision, recall, F1,\n"
           "                       support, macro averages, confusion matrix (label -1 skipped)\n"
           "  --recon              reconstruction: MSE, BCE, PSNR, ELBO's BCE and KL\n"
           "  --anomaly            anomaly scores: ROC AUC, average precision, F1 (needs a truth)\n"
           "  --pred FIELD         predicted class field (default: %s)\n"
           "  --score FIELD        anomaly score field, higher = more anomalous (default: %s)\n"
           "  --range R            data range for PSNR = 10 log10(R^2 / MSE) (default: %g)\n"
           "  --per-feature        reconstruction per value of x: MSE, variance, R^2 = 1 - MSE/var\n"
           "                       (implies --recon; names from the metadata's features)\n",
           opt_pred, opt_score, opt_range);
    printf("\nNearest neighbours (classification without a pred field; implies --classes):\n"
           "  --knn K              predict each row's class by the vote of the K nearest labeled\n"
           "                       rows of the reference (Euclidean on --field; default: off)\n"
           "  --reference FILE     the reference rows; --knn uses the labeled ones: label >= 0\n"
           "                       and, if it has a field mask, some mask value nonzero;\n"
           "                       --knn-score uses them all (default: none)\n"
           "  --field FIELD        the field compared (default: %s)\n",
           opt_field);
    printf("\nAnomaly truth (either one; implies --anomaly):\n"
           "  --truth FIELD        a field, nonzero = anomaly (default: none)\n"
           "  --anomaly-classes LIST  rows whose label is one of these classes, names or\n"
           "                       indices, comma-separated, are anomalies (default: none)\n"
           "  --threshold T        score > T is flagged (as fz-fuzzy's flag), for the F1\n"
           "                       at a threshold\n"
           "                       (default: the field flag when present, else none)\n"
           "  --roc FILE           write the ROC curve as TSV: fpr, tpr, threshold (default: none)\n"
           "  --recon-score        the score is each row's MSE of xhat against x, instead of --score\n"
           "  --norm-score FIELD   the score is the squared norm of the vector FIELD, e.g. sigmas\n"
           "                       of fz-encode -c diag (default: --score)\n"
           "  --knn-score K        the score is the Euclidean distance from the row's --field to\n"
           "                       the K-th nearest row of --reference (every row, labeled or\n"
           "                       not): a k-NN density estimate, low density = high score\n"
           "                       (default: off)\n");
    printf("\nOutput (default: a table):\n"
           "  --tsv                one metric per line: name<TAB>value, plus per-class rows\n"
           "  --json               one JSON object\n"
           "  -h                   this help\n\n"
           "With no file, or '-', reads standard input. Exit 0 ok, 1 bad stream, 2 usage.\n");
    exit(0);
}

/* Run state at file scope so that every exit path can release it. */
static fz_reader *rd;
static fz_json *meta;
static fz_confusion conf;
static fz_recon_acc rec;
static fz_scored *scored;
static size_t nscored, capscored;
static unsigned char *rows;
static float *xb, *xhb, *mub, *lvb; /* one row each: (D,), (D,), (Z,), (Z,) */
static char **names;                /* class names, nnames of them (from the metadata) */
static int nnames;
static unsigned char anom_class[FZ_METRICS_MAX_CLASSES];
static char *roc_tmp;
static fz_feat_acc feat;            /* --per-feature */
static fz_knn kn;                   /* --knn: the labeled reference rows */
static fz_knn ks;                   /* --knn-score: every reference row */
static fz_reader *ref;              /* --reference while it is read */
static float *qb;                   /* (D,) the --field of one row */
static float *qb2;                  /* (D,) the --norm-score or --knn-score field of one row */

static void cleanup(void)
{
    if (roc_tmp) unlink(roc_tmp);
    free(roc_tmp);
    fz_reader_close(rd);
    fz_json_free(meta);
    fz_confusion_free(&conf);
    free(scored);
    free(rows);
    free(xb);
    free(xhb);
    free(mub);
    free(lvb);
    free(qb);
    free(qb2);
    fz_feat_free(&feat);
    fz_knn_free(&kn);
    fz_knn_free(&ks);
    fz_reader_close(ref);
    for (int i = 0; i < nnames; i++) free(names[i]);
    free(names);
}

static int die(const fz_err *err)
{
    fprintf(stderr, "%s: %s\n", prog, err->msg);
    cleanup();
    exit(1);
}

/* A field the chosen mode cannot do without: name it and say where it comes from. */
static const fz_field *need_field(const fz_schema *s, const char *name, const char *hint)
{
    int i = fz_schema_find(s, name);
    if (i < 0) {
        fz_err err;
        fz_fail(&err, FZ_EDATA, "%s: no field '%s': %s", fz_reader_name(rd), name, hint);
        die(&err);
    }
    return &s->field[i];
}

static const fz_field *find_field(const fz_schema *s, const char *name)
{
    int i = fz_schema_find(s, name);
    return i < 0 ? NULL : &s->field[i];
}

/* Scalar numeric fields: label, pred, score, flag, truth. */
static void need_scalar(const fz_field *f)
{
    if (f->type == FZ_BYTES || f->count != 1) {
        char dt[16], shp[128];
        fz_err err;
        fz_fail(&err, FZ_EDATA, "%s: field '%s' is %s %s, expected one number per row",
                fz_reader_name(rd), f->name, fz_dtype_name(f->type, f->elem_size, dt, sizeof dt),
                fz_field_shape_str(f, shp, sizeof shp));
        die(&err);
    }
}

/* Two array fields of the same shape: x and xhat, or mu and logvar. */
static void need_pair(const fz_field *a, const fz_field *b)
{
    char sa[128], sb[128];
    fz_err err;
    if (a->type == FZ_BYTES || b->type == FZ_BYTES) {
        fz_fail(&err, FZ_EDATA, "%s: field '%s' holds bytes, expected numbers", fz_reader_name(rd),
                a->type == FZ_BYTES ? a->name : b->name);
        die(&err);
    }
    if (a->count != b->count || a->count == 0) {
        fz_fail(&err, FZ_EDATA, "%s: fields '%s' %s and '%s' %s: expected the same, nonempty shape",
                fz_reader_name(rd), a->name, fz_field_shape_str(a, sa, sizeof sa), b->name,
                fz_field_shape_str(b, sb, sizeof sb));
        die(&err);
    }
}

static float *alloc_floats(size_t n)
{
    fz_err err;
    size_t bytes;
    float *p = NULL;
    if (fz_mul_size(n, sizeof(float), &bytes) || !(p = fz_malloc(bytes, &err))) {
        fz_fail(&err, FZ_ENOMEM, "out of memory");
        die(&err);
    }
    return p;
}

/* Class names from the metadata's "classes" array (non-strings are named by index). */
static void read_classes(void)
{
    fz_err err;
    const char *text = fz_reader_meta(rd);
    if (!(meta = fz_json_parse(text, strlen(text), &err))) {
        fz_err_prefix(&err, "metadata");
        fz_err_prefix(&err, fz_reader_name(rd));
        die(&err);
    }
    const fz_json *cl = fz_json_get(meta, "classes");
    if (fz_json_type(cl) != FZ_JARR || fz_json_len(cl) == 0) return;
    if (fz_json_len(cl) > FZ_METRICS_MAX_CLASSES) {
        fz_fail(&err, FZ_EDATA, "%s: metadata names %zu classes (at most %d)", fz_reader_name(rd),
                fz_json_len(cl), FZ_METRICS_MAX_CLASSES);
        die(&err);
    }
    int k = (int)fz_json_len(cl);
    if (!(names = fz_calloc((size_t)k, sizeof *names, &err))) die(&err);
    for (int i = 0; i < k; i++) {
        const char *s = fz_json_str(fz_json_at(cl, (size_t)i));
        char num[16];
        if (!s) {
            snprintf(num, sizeof num, "%d", i);
            s = num;
        }
        if (!(names[i] = strdup(s))) {
            fz_fail(&err, FZ_ENOMEM, "out of memory");
            die(&err);
        }
        nnames = i + 1;
    }
}

/* --anomaly-classes: each item is a class name from the metadata or an index. */
static void parse_anomaly_classes(char *list)
{
    fz_err err;
    int n = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int found = -1;
        for (int i = 0; i < nnames && found < 0; i++)
            if (strcmp(names[i], tok) == 0) found = i;
        long v;
        if (found < 0 && fz_parse_long(tok, 0, (nnames ? nnames : FZ_METRICS_MAX_CLASSES) - 1, &v,
                                       "--anomaly-classes", &err) == 0)
            found = (int)v;
        if (found < 0) {
            if (nnames)
                fz_fail(&err, FZ_EDATA, "%s: --anomaly-classes: '%s' is neither a class name of "
                        "the stream nor an index from 0 to %d", fz_reader_name(rd), tok, nnames - 1);
            else
                fz_fail(&err, FZ_EDATA, "%s: --anomaly-classes: '%s' is not a class index (the "
                        "stream's metadata names no classes)", fz_reader_name(rd), tok);
            die(&err);
        }
        anom_class[found] = 1;
        n++;
    }
    if (!n) usage_msg("--anomaly-classes: '%s' names no class", opt_anomaly_classes);
}

static void row_fail(uint64_t row, const char *fmt, const char *field, double v)
{
    fz_err err;
    char what[256];
    snprintf(what, sizeof what, fmt, field, v);
    fz_fail(&err, FZ_EDATA, "%s: row %llu: %s", fz_reader_name(rd), (unsigned long long)row, what);
    die(&err);
}

/* An integer-valued number read from a scalar field. */
static long get_int(const fz_field *f, const unsigned char *row, uint64_t rowno)
{
    double v = fz_field_get(f, row, 0);
    if (!(v == floor(v)) || fabs(v) > 1e9) row_fail(rowno, "%s is %g, expected a class index", f->name, v);
    return (long)v;
}

static void check_finite(const float *v, size_t n, const char *field, uint64_t rowno)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) {
            char f[FZ_NAME_MAX + 32];
            snprintf(f, sizeof f, "%s[%zu]", field, i);
            row_fail(rowno, "%s is %g, expected a finite number", f, v[i]);
        }
}

static void add_scored(float score, int truth)
{
    if (nscored == capscored) {
        fz_err err;
        size_t cap = capscored ? capscored * 2 : 4096, bytes;
        fz_scored *p;
        if (cap > MAX_SCORED) cap = MAX_SCORED;
        if (nscored == MAX_SCORED) {
            fz_fail(&err, FZ_EDATA, "%s: more than %zu scored rows", fz_reader_name(rd), MAX_SCORED);
            die(&err);
        }
        if (fz_mul_size(cap, sizeof *scored, &bytes) || !(p = realloc(scored, bytes))) {
            fz_fail(&err, FZ_ENOMEM, "%s: out of memory keeping the scores of %zu rows",
                    fz_reader_name(rd), nscored);
            die(&err);
        }
        scored = p;
        capscored = cap;
    }
    scored[nscored++] = (fz_scored){score, (uint32_t)(truth != 0)};
}

/* --knn: keep the labeled rows of the reference stream. A row is labeled when its label is
 * not -1 and, when the stream has a field mask (fz-mask's), some mask value is nonzero, so
 * that the encoded training stream of a partly labeled run serves as it is. --knn-score
 * keeps every row (the density of the training codes, whatever their labels) and needs no
 * label field. */
static void load_reference(const fz_field *qf)
{
    fz_err err;
    const char *name;
    unsigned char *buf = NULL;
    float *mb = NULL;
    if (!(ref = fz_reader_open(opt_reference, &err))) die(&err);
    name = fz_reader_name(ref);
    const fz_schema *s = fz_reader_schema(ref);
    int il = fz_schema_find(s, "label"), ix = fz_schema_find(s, opt_field),
        im = fz_schema_find(s, "mask");
    if ((opt_knn && il < 0) || ix < 0) {
        fz_fail(&err, FZ_EDATA, "%s: no field '%s': the reference needs %sthe field compared",
                name, ix < 0 ? opt_field : "label", opt_knn ? "labels and " : "");
        die(&err);
    }
    const fz_field *fl = opt_knn ? &s->field[il] : NULL, *fx = &s->field[ix],
                   *fm = im < 0 || !opt_knn ? NULL : &s->field[im];
    if ((fl && (fl->type == FZ_BYTES || fl->count != 1)) || fx->type == FZ_BYTES ||
        (fm && fm->type == FZ_BYTES)) {
        fz_fail(&err, FZ_EDATA, "%s: fields label, %s and mask must hold numbers (label one per "
                "row)", name, opt_field);
        die(&err);
    }
    if (fx->count != qf->count) {
        char a[128], b[128];
        fz_fail(&err, FZ_EDATA, "%s: field '%s' is %s, the input's is %s: expected the same size",
                name, opt_field, fz_field_shape_str(fx, a, sizeof a),
                fz_field_shape_str(qf, b, sizeof b));
        die(&err);
    }
    if (opt_knn && fz_knn_init(&kn, fx->count, opt_knn, &err)) die(&err);
    if (opt_knn_score && fz_knn_init(&ks, fx->count, opt_knn_score, &err)) die(&err);
    size_t batch = s->row_size ? ((size_t)1 << 20) / s->row_size : 1024;
    if (batch < 1) batch = 1;
    if (!(buf = fz_malloc(batch * s->row_size + 1, &err))) die(&err);
    if (fm) mb = alloc_floats(fm->count);
    float *xr = alloc_floats(fx->count);
    long n;
    while ((n = fz_reader_read(ref, buf, batch, &err)) > 0) {
        uint64_t first = fz_reader_rows(ref) - (uint64_t)n;
        for (long i = 0; i < n; i++) {
            const unsigned char *row = buf + (size_t)i * s->row_size;
            uint64_t rowno = first + (uint64_t)i;
            fz_field_to_f32(fx, row, xr);
            for (size_t j = 0; j < fx->count; j++)
                if (!isfinite(xr[j])) {
                    fz_fail(&err, FZ_EDATA, "%s: row %llu: %s[%zu] is %g, expected a finite number",
                            name, (unsigned long long)rowno, opt_field, j, xr[j]);
                    goto bad;
                }
            if (opt_knn_score && fz_knn_add(&ks, xr, 0, &err)) {
                fz_err_prefix(&err, name);
                goto bad;
            }
            if (!opt_knn) continue;
            double lv = fz_field_get(fl, row, 0);
            int labeled = lv != -1;
            if (labeled && fm) {
                fz_field_to_f32(fm, row, mb);
                labeled = 0;
                for (size_t j = 0; j < fm->count; j++) labeled |= mb[j] != 0;
            }
            if (!labeled) continue;
            if (!(lv == floor(lv)) || lv < 0 || lv >= FZ_METRICS_MAX_CLASSES ||
                (nnames && lv >= nnames)) {
                fz_fail(&err, FZ_EDATA, "%s: row %llu: label is %g, expected a class index of the "
                        "input (0 to %d) or -1", name, (unsigned long long)rowno, lv,
                        (nnames ? nnames : FZ_METRICS_MAX_CLASSES) - 1);
                goto bad;
            }
            if (fz_knn_add(&kn, xr, (int)lv, &err)) {
                fz_err_prefix(&err, name);
                goto bad;
            }
        }
    }
    if (n < 0) goto bad;
    if (opt_knn_score && ks.n == 0) {
        fz_fail(&err, FZ_EDATA, "%s: no rows to measure distances to", name);
        goto bad;
    }
    if (opt_knn && kn.n == 0) {
        fz_fail(&err, FZ_EDATA, "%s: no labeled rows to vote (label -1 or an all-zero mask "
                "everywhere)", name);
        goto bad;
    }
    free(buf);
    free(mb);
    free(xr);
    fz_reader_close(ref);
    ref = NULL;
    return;
bad:
    free(buf);
    free(mb);
    free(xr);
    die(&err);
}

/* The name of value i of x for --per-feature: the metadata's features when it names every
 * value, else the index. */
static const char *feature_name(size_t i, size_t count, char *buf, size_t cap)
{
    const fz_json *f = fz_json_get(meta, "features");
    if (fz_json_type(f) == FZ_JARR && fz_json_len(f) == count) {
        const char *s = fz_json_str(fz_json_at(f, i));
        if (s) return s;
    }
    snprintf(buf, cap, "%zu", i);
    return buf;
}

/* What the run found, for the three printers. */
typedef struct results {
    uint64_t rows;
    int cls, rc, an, kl;      /* which parts apply; kl: mu and logvar were there */
    uint64_t cls_skipped;     /* rows with label -1 */
    size_t values;            /* values per row of x */
    fz_recon_stats r;
    uint64_t an_skipped;      /* rows without a truth (label -1 with --anomaly-classes) */
    uint64_t pos, neg;
    double auc, ap, best_f1, best_t;
    int decision;             /* 0 none, 1 --threshold, 2 flag */
    fz_binary_stats at;
} results;

static const char *class_name(int i, char *buf, size_t cap)
{
    if (i < nnames) return names[i];
    snprintf(buf, cap, "%d", i);
    return buf;
}

/* Class names in TSV and tables: tabs, newlines and other control bytes become spaces. */
static void put_clean(const char *s)
{
    for (; *s; s++) putchar((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
}

static void tsv_num(const char *name, double v)
{
    printf("%s\t%.10g\n", name, v);
}

static void print_tsv(const results *R)
{
    char buf[32];
    printf("rows\t%llu\n", (unsigned long long)R->rows);
    if (R->cls) {
        printf("class_rows\t%llu\nclass_skipped\t%llu\n", (unsigned long long)conf.total,
               (unsigned long long)R->cls_skipped);
        tsv_num("accuracy", fz_confusion_accuracy(&conf));
        fz_class_stats m = fz_confusion_macro(&conf);
        tsv_num("macro_precision", m.precision);
        tsv_num("macro_recall", m.recall);
        tsv_num("macro_f1", m.f1);
        for (int i = 0; i < conf.k; i++) {
            fz_class_stats s = fz_confusion_class(&conf, i);
            printf("class\t");
            put_clean(class_name(i, buf, sizeof buf));
            printf("\t%.10g\t%.10g\t%.10g\t%llu\n", s.precision, s.recall, s.f1,
                   (unsigned long long)s.support);
        }
        for (int t = 0; t < conf.k; t++)
            for (int p = 0; p < conf.k; p++) {
                printf("confusion\t");
                put_clean(class_name(t, buf, sizeof buf));
                putchar('\t');
                put_clean(class_name(p, buf, sizeof buf));
                printf("\t%llu\n", (unsigned long long)fz_confusion_get(&conf, t, p));
            }
    }
    if (R->rc) {
        printf("recon_rows\t%llu\nrecon_values\t%zu\n", (unsigned long long)rec.rows, R->values);
        tsv_num("mse", R->r.mse);
        tsv_num("bce", R->r.bce);
        tsv_num("psnr", R->r.psnr);
        tsv_num("psnr_rows", R->r.psnr_rows);
        tsv_num("elbo_bce", R->r.elbo_bce);
        if (R->kl) {
            tsv_num("kl", R->r.kl);
            tsv_num("neg_elbo", R->r.neg_elbo);
        }
        for (size_t i = 0; opt_per_feature && i < feat.d; i++) {
            fz_feat_stats f = fz_feat_get(&feat, i);
            printf("feature\t");
            put_clean(feature_name(i, feat.d, buf, sizeof buf));
            printf("\t%.10g\t%.10g\t%.10g\n", f.mse, f.var, f.r2);
        }
    }
    if (R->an) {
        printf("anomaly_rows\t%zu\nanomaly_skipped\t%llu\nanomalies\t%llu\n", nscored,
               (unsigned long long)R->an_skipped, (unsigned long long)R->pos);
        tsv_num("roc_auc", R->auc);
        tsv_num("average_precision", R->ap);
        if (R->decision) {
            if (R->decision == 1) tsv_num("threshold", opt_threshold);
            printf("decision\t%s\n", R->decision == 1 ? "threshold" : "flag");
            tsv_num("precision_at_threshold", R->at.precision);
            tsv_num("recall_at_threshold", R->at.recall);
            tsv_num("f1_at_threshold", R->at.f1);
        }
        tsv_num("best_f1", R->best_f1);
        printf("best_threshold\t%.9g\n", R->best_t);
    }
}

static void json_member(fz_sbuf *b, const char *key, double v)
{
    fz_sbuf_printf(b, ",\"%s\":", key);
    fz_sbuf_json_f64(b, v);
}

static int print_json(const results *R)
{
    fz_sbuf b;
    char buf[32];
    fz_sbuf_init(&b);
    fz_sbuf_printf(&b, "{\"stream\":");
    fz_sbuf_json_str(&b, fz_reader_name(rd));
    fz_sbuf_printf(&b, ",\"rows\":%llu", (unsigned long long)R->rows);
    if (R->cls) {
        fz_class_stats m = fz_confusion_macro(&conf);
        fz_sbuf_printf(&b, ",\"classification\":{\"rows\":%llu,\"skipped\":%llu",
                       (unsigned long long)conf.total, (unsigned long long)R->cls_skipped);
        json_member(&b, "accuracy", fz_confusion_accuracy(&conf));
        fz_sbuf_printf(&b, ",\"macro\":{\"precision\":");
        fz_sbuf_json_f64(&b, m.precision);
        json_member(&b, "recall", m.recall);
        json_member(&b, "f1", m.f1);
        fz_sbuf_printf(&b, "},\"classes\":[");
        for (int i = 0; i < conf.k; i++) {
            fz_class_stats s = fz_confusion_class(&conf, i);
            fz_sbuf_printf(&b, "%s{\"name\":", i ? "," : "");
            fz_sbuf_json_str(&b, class_name(i, buf, sizeof buf));
            json_member(&b, "precision", s.precision);
            json_member(&b, "recall", s.recall);
            json_member(&b, "f1", s.f1);
            fz_sbuf_printf(&b, ",\"support\":%llu}", (unsigned long long)s.support);
        }
        fz_sbuf_printf(&b, "],\"confusion\":[");
        for (int t = 0; t < conf.k; t++) {
            fz_sbuf_printf(&b, "%s[", t ? "," : "");
            for (int p = 0; p < conf.k; p++)
                fz_sbuf_printf(&b, "%s%llu", p ? "," : "",
                               (unsigned long long)fz_confusion_get(&conf, t, p));
            fz_sbuf_putc(&b, ']');
        }
        fz_sbuf_printf(&b, "]}");
    }
    if (R->rc) {
        fz_sbuf_printf(&b, ",\"reconstruction\":{\"rows\":%llu,\"values\":%zu",
                       (unsigned long long)rec.rows, R->values);
        json_member(&b, "mse", R->r.mse);
        json_member(&b, "bce", R->r.bce);
        json_member(&b, "psnr", R->r.psnr);
        json_member(&b, "psnr_rows", R->r.psnr_rows);
        json_member(&b, "elbo_bce", R->r.elbo_bce);
        if (R->kl) {
            json_member(&b, "kl", R->r.kl);
            json_member(&b, "neg_elbo", R->r.neg_elbo);
        }
        if (opt_per_feature) {
            fz_sbuf_printf(&b, ",\"features\":[");
            for (size_t i = 0; i < feat.d; i++) {
                fz_feat_stats f = fz_feat_get(&feat, i);
                fz_sbuf_printf(&b, "%s{\"name\":", i ? "," : "");
                fz_sbuf_json_str(&b, feature_name(i, feat.d, buf, sizeof buf));
                json_member(&b, "mse", f.mse);
                json_member(&b, "var", f.var);
                json_member(&b, "r2", f.r2);
                fz_sbuf_putc(&b, '}');
            }
            fz_sbuf_putc(&b, ']');
        }
        fz_sbuf_putc(&b, '}');
    }
    if (R->an) {
        fz_sbuf_printf(&b, ",\"anomaly\":{\"rows\":%zu,\"skipped\":%llu,\"anomalies\":%llu",
                       nscored, (unsigned long long)R->an_skipped, (unsigned long long)R->pos);
        json_member(&b, "roc_auc", R->auc);
        json_member(&b, "average_precision", R->ap);
        if (R->decision) {
            fz_sbuf_printf(&b, ",\"decision\":\"%s\"", R->decision == 1 ? "threshold" : "flag");
            if (R->decision == 1) json_member(&b, "threshold", opt_threshold);
            json_member(&b, "precision_at_threshold", R->at.precision);
            json_member(&b, "recall_at_threshold", R->at.recall);
            json_member(&b, "f1_at_threshold", R->at.f1);
        }
        json_member(&b, "best_f1", R->best_f1);
        fz_sbuf_printf(&b, ",\"best_threshold\":");
        fz_sbuf_json_f32(&b, (float)R->best_t);
        fz_sbuf_putc(&b, '}');
    }
    fz_sbuf_printf(&b, "}\n");
    char *text = fz_sbuf_take(&b);
    if (!text) return -1;
    fputs(text, stdout);
    free(text);
    return 0;
}

/* A table value: "undefined" for NaN. */
static void tab_num(const char *label, double v, const char *unit)
{
    if (isnan(v))
        printf("  %-34s undefined\n", label);
    else
        printf("  %-34s %.6g%s\n", label, v, unit);
}

static void print_table(const results *R)
{
    char buf[32];
    printf("stream: %s, %llu rows\n", fz_reader_name(rd), (unsigned long long)R->rows);
    if (R->cls) {
        printf("\nclassification: %llu rows with a label", (unsigned long long)conf.total);
        if (R->cls_skipped) printf(" (%llu without, skipped)", (unsigned long long)R->cls_skipped);
        printf("\n");
        if (opt_knn)
            printf("  predicted by the vote of the %d nearest of %zu labeled reference rows on %s\n",
                   opt_knn, kn.n, opt_field);
        tab_num("accuracy", fz_confusion_accuracy(&conf), "");
        /* column of class names as wide as the longest, within limits */
        int w = 9;
        for (int i = 0; i < conf.k; i++) {
            int l = (int)strlen(class_name(i, buf, sizeof buf));
            if (l > w) w = l > 24 ? 24 : l;
        }
        printf("\n  %-*s %9s %9s %9s %9s\n", w, "class", "precision", "recall", "f1", "support");
        for (int i = 0; i < conf.k; i++) {
            fz_class_stats s = fz_confusion_class(&conf, i);
            printf("  %-*.*s %9.4f %9.4f %9.4f %9llu\n", w, w, class_name(i, buf, sizeof buf),
                   s.precision, s.recall, s.f1, (unsigned long long)s.support);
        }
        fz_class_stats m = fz_confusion_macro(&conf);
        if (isnan(m.f1))
            printf("  %-*s %9s %9s %9s %9llu\n", w, "macro avg", "-", "-", "-", 0ULL);
        else
            printf("  %-*s %9.4f %9.4f %9.4f %9llu\n", w, "macro avg", m.precision, m.recall,
                   m.f1, (unsigned long long)m.support);
        if (conf.k > TABLE_MAX_CLASSES) {
            printf("\n  confusion matrix: %d classes, see --tsv or --json\n", conf.k);
        } else if (conf.k > 0) {
            /* columns as wide as the largest count or the class name */
            uint64_t mx = 0;
            for (int t = 0; t < conf.k; t++)
                for (int p = 0; p < conf.k; p++)
                    if (fz_confusion_get(&conf, t, p) > mx) mx = fz_confusion_get(&conf, t, p);
            int cw = snprintf(buf, sizeof buf, "%llu", (unsigned long long)mx);
            for (int i = 0; i < conf.k; i++) {
                int l = (int)strlen(class_name(i, buf, sizeof buf));
                if (l > cw) cw = l > 12 ? 12 : l;
            }
            printf("\n  confusion matrix (rows: true class, columns: predicted)\n  %-*s", w,
                   "true\\pred");
            for (int p = 0; p < conf.k; p++) printf(" %*.*s", cw, cw, class_name(p, buf, sizeof buf));
            putchar('\n');
            for (int t = 0; t < conf.k; t++) {
                printf("  %-*.*s", w, w, class_name(t, buf, sizeof buf));
                for (int p = 0; p < conf.k; p++)
                    printf(" %*llu", cw, (unsigned long long)fz_confusion_get(&conf, t, p));
                putchar('\n');
            }
        }
    }
    if (R->rc) {
        printf("\nreconstruction: %llu rows of %zu values\n", (unsigned long long)rec.rows, R->values);
        tab_num("MSE (mean over values)", R->r.mse, "");
        if (isnan(R->r.bce) && rec.bce_outside)
            printf("  %-34s undefined (%llu values of xhat outside [0, 1])\n",
                   "BCE (mean over values)", (unsigned long long)rec.bce_outside);
        else
            tab_num("BCE (mean over values)", R->r.bce, "");
        tab_num("PSNR (overall, from the MSE)", R->r.psnr, " dB");
        tab_num("PSNR (mean of per-row PSNR)", R->r.psnr_rows, " dB");
        tab_num("ELBO: BCE summed per row", R->r.elbo_bce, "");
        if (R->kl) {
            tab_num("ELBO: KL per row", R->r.kl, "");
            tab_num("negative ELBO per row (BCE + KL)", R->r.neg_elbo, "");
        }
        if (opt_range != 1) printf("  (PSNR for data range %g)\n", opt_range);
        if (opt_per_feature) {
            printf("\n  %-24s %12s %12s %10s\n", "feature", "MSE", "variance", "R^2");
            for (size_t i = 0; i < feat.d; i++) {
                fz_feat_stats f = fz_feat_get(&feat, i);
                printf("  %-24.24s %12.6g %12.6g ", feature_name(i, feat.d, buf, sizeof buf), f.mse,
                       f.var);
                if (isnan(f.r2)) printf("%10s\n", "undefined");
                else printf("%10.4f\n", f.r2);
            }
        }
    }
    if (R->an) {
        printf("\nanomaly: %zu rows, %llu anomalies", nscored, (unsigned long long)R->pos);
        if (R->an_skipped) printf(" (%llu rows without a label skipped)", (unsigned long long)R->an_skipped);
        printf("\n");
        if (isnan(R->auc))
            printf("  %-34s undefined (needs anomalies and normal rows)\n", "ROC AUC");
        else
            tab_num("ROC AUC", R->auc, "");
        tab_num("average precision", R->ap, "");
        if (R->decision) {
            char lab[64];
            if (R->decision == 1)
                snprintf(lab, sizeof lab, "at threshold %.6g", opt_threshold);
            else
                snprintf(lab, sizeof lab, "at the flag");
            printf("  %-34s precision %.4f  recall %.4f  F1 %.4f\n", lab, R->at.precision,
                   R->at.recall, R->at.f1);
        }
        if (isnan(R->best_f1))
            printf("  %-34s undefined (no anomalies)\n", "best F1");
        else
            printf("  %-34s %.6g at threshold %.6g\n", "best F1", R->best_f1, R->best_t);
    }
}

/* --roc FILE: the ROC curve, written to a temporary name and renamed when complete. */
static void write_roc(const char *path, const results *R)
{
    fz_err err;
    size_t len = strlen(path);
    if (!(roc_tmp = fz_malloc(len + 16, &err))) die(&err);
    snprintf(roc_tmp, len + 16, "%s.tmpXXXXXX", path);
    int fd = mkstemp(roc_tmp);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
    if (!f) {
        int e = errno;
        if (fd >= 0) close(fd);
        free(roc_tmp);
        roc_tmp = NULL;
        fz_fail(&err, FZ_EIO, "%s: %s", path, strerror(e));
        die(&err);
    }
    double pos = (double)R->pos, neg = (double)R->neg;
    fz_walk w;
    fz_walk_init(&w, scored, nscored);
    fprintf(f, "fpr\ttpr\tthreshold\n%.10g\t%.10g\tinf\n", neg ? 0.0 : NAN, pos ? 0.0 : NAN);
    while (fz_walk_next(&w))
        fprintf(f, "%.10g\t%.10g\t%.9g\n", (double)w.fp / neg, (double)w.tp / pos, w.threshold);
    int bad = fflush(f) || ferror(f);
    int e = errno;
    if (fclose(f)) bad = 1, e = errno;
    if (bad || rename(roc_tmp, path)) {
        if (!bad) e = errno;
        fz_fail(&err, FZ_EIO, "%s: %s", path, strerror(e));
        die(&err);
    }
    free(roc_tmp);
    roc_tmp = NULL;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, 0, 'h'},
        {"classes", no_argument, 0, 'C'},
        {"recon", no_argument, 0, 'R'},
        {"anomaly", no_argument, 0, 'A'},
        {"tsv", no_argument, 0, 'T'},
        {"json", no_argument, 0, 'J'},
        {"pred", required_argument, 0, 'p'},
        {"score", required_argument, 0, 'S'},
        {"truth", required_argument, 0, 'y'},
        {"anomaly-classes", required_argument, 0, 'a'},
        {"threshold", required_argument, 0, 't'},
        {"roc", required_argument, 0, 'r'},
        {"range", required_argument, 0, 'g'},
        {"per-feature", no_argument, 0, 'P'},
        {"knn", required_argument, 0, 'k'},
        {"reference", required_argument, 0, 'f'},
        {"field", required_argument, 0, 'F'},
        {"recon-score", no_argument, 0, 'e'},
        {"norm-score", required_argument, 0, 'n'},
        {"knn-score", required_argument, 0, 'K'},
        {0, 0, 0, 0},
    };
    fz_err err;
    int c, tsv = 0, json = 0;
    signal(SIGPIPE, SIG_IGN);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': help(); break;
        case 'C': opt_classes = 1; break;
        case 'R': opt_recon = 1; break;
        case 'A': opt_anomaly = 1; break;
        case 'T': tsv = 1; opt_out = OUT_TSV; break;
        case 'J': json = 1; opt_out = OUT_JSON; break;
        case 'p': opt_pred = optarg; break;
        case 'S': opt_score = optarg; break;
        case 'y': opt_truth = optarg; break;
        case 'a': opt_anomaly_classes = optarg; break;
        case 't':
            if (fz_parse_double(optarg, -HUGE_VAL, HUGE_VAL, &opt_threshold, "--threshold", &err))
                usage_msg("%s", err.msg);
            break;
        case 'r': opt_roc = optarg; break;
        case 'g':
            if (fz_parse_double(optarg, 1e-30, 1e30, &opt_range, "--range", &err))
                usage_msg("%s", err.msg);
            break;
        case 'P': opt_per_feature = 1; break;
        case 'k': {
            long v;
            if (fz_parse_long(optarg, 1, FZ_KNN_MAX_K, &v, "--knn", &err)) usage_msg("%s", err.msg);
            opt_knn = (int)v;
            break;
        }
        case 'K': {
            long v;
            if (fz_parse_long(optarg, 1, FZ_KNN_MAX_K, &v, "--knn-score", &err))
                usage_msg("%s", err.msg);
            opt_knn_score = (int)v;
            break;
        }
        case 'f': opt_reference = optarg; break;
        case 'F': opt_field = optarg; break;
        case 'e': opt_recon_score = 1; break;
        case 'n': opt_norm_score = optarg; break;
        case ':': usage_msg("option '%s' needs a value", argv[optind - 1]); break;
        default: usage_msg("unknown option '%s'", argv[optind - 1]); break;
        }
    }
    if (argc - optind > 1) usage_msg("too many operands ('%s')", argv[optind + 1]);
    if (tsv && json) usage_msg("--tsv and --json together%s", "");
    if (opt_truth && opt_anomaly_classes) usage_msg("--truth and --anomaly-classes together%s", "");
    if (opt_anomaly && !opt_truth && !opt_anomaly_classes)
        usage_msg("--anomaly needs the truth: --truth FIELD or --anomaly-classes LIST%s", "");
    if ((!isnan(opt_threshold) || opt_roc) && !opt_truth && !opt_anomaly_classes)
        usage_msg("%s needs the anomaly truth: --truth FIELD or --anomaly-classes LIST",
                  opt_roc ? "--roc" : "--threshold");
    if (opt_knn && !opt_reference) usage_msg("--knn needs the labeled rows: --reference FILE%s", "");
    if (opt_knn_score && !opt_reference)
        usage_msg("--knn-score needs the rows to measure distances to: --reference FILE%s", "");
    if (opt_reference && !opt_knn && !opt_knn_score)
        usage_msg("--reference is for --knn K or --knn-score K%s", "");
    if (!!opt_recon_score + !!opt_norm_score + !!opt_knn_score > 1)
        usage_msg("more than one of --recon-score, --norm-score and --knn-score%s", "");
    if ((opt_recon_score || opt_norm_score || opt_knn_score) && !opt_truth && !opt_anomaly_classes)
        usage_msg("%s needs the anomaly truth: --truth FIELD or --anomaly-classes LIST",
                  opt_recon_score ? "--recon-score" : opt_norm_score ? "--norm-score" : "--knn-score");
    const char *in_path = optind < argc ? argv[optind] : "-";

    if (!(rd = fz_reader_open(in_path, &err))) die(&err);
    const fz_schema *s = fz_reader_schema(rd);
    read_classes();

    /* Which parts apply: forced ones must find their fields; without any forced part,
     * every part whose fields are present. */
    int forced = opt_classes || opt_recon || opt_anomaly;
    if (opt_truth || opt_anomaly_classes) opt_anomaly = 1; /* given a truth, score it too */
    results R;
    memset(&R, 0, sizeof R);
    R.cls = forced ? opt_classes : find_field(s, "label") && find_field(s, opt_pred);
    R.rc = forced ? opt_recon : find_field(s, "x") && find_field(s, "xhat");
    if (opt_knn) R.cls = 1;         /* --knn is a classification */
    if (opt_per_feature) R.rc = 1;  /* and --per-feature a reconstruction */
    R.an = opt_anomaly;
    if (!R.cls && !R.rc && !R.an) {
        fz_fail(&err, FZ_EDATA, "%s: nothing to evaluate: no fields {label, %s}, {x, xhat}, nor "
                "--truth or --anomaly-classes for the field %s", fz_reader_name(rd), opt_pred, opt_score);
        die(&err);
    }
    const fz_field *f_label = NULL, *f_pred = NULL, *f_x = NULL, *f_xh = NULL, *f_mu = NULL,
                   *f_lv = NULL, *f_score = NULL, *f_flag = NULL, *f_truth = NULL;
    if (R.cls || opt_anomaly_classes) {
        f_label = need_field(s, "label", "give a stream with labels (fz-prep keeps them)");
        need_scalar(f_label);
    }
    const fz_field *f_q = NULL;
    if (R.cls && opt_knn) {
        f_q = need_field(s, opt_field, "give a stream from fz-encode, or name the field with --field");
        if (f_q->type == FZ_BYTES) {
            fz_fail(&err, FZ_EDATA, "%s: field '%s' holds bytes, expected numbers",
                    fz_reader_name(rd), opt_field);
            die(&err);
        }
        qb = alloc_floats(f_q->count);
        if (!opt_knn_score) load_reference(f_q);
        if (fz_confusion_init(&conf, nnames, &err)) die(&err);
    } else if (R.cls) {
        f_pred = need_field(s, opt_pred, "give a stream from fz-fuzzy, or name the predicted "
                                         "class field with --pred");
        need_scalar(f_pred);
        if (fz_confusion_init(&conf, nnames, &err)) die(&err);
    }
    if (R.rc) {
        f_x = need_field(s, "x", "keep the input in the stream (fz-encode -k | fz-decode)");
        f_xh = need_field(s, "xhat", "give a stream from fz-decode (fz-encode -k | fz-decode)");
        need_pair(f_x, f_xh);
        R.values = f_x->count;
        xb = alloc_floats(f_x->count);
        xhb = alloc_floats(f_x->count);
        f_mu = find_field(s, "mu");
        f_lv = find_field(s, "logvar");
        if (f_mu && f_lv) {
            need_pair(f_mu, f_lv);
            mub = alloc_floats(f_mu->count);
            lvb = alloc_floats(f_mu->count);
            R.kl = 1;
        } else {
            f_mu = f_lv = NULL;
        }
        fz_recon_init(&rec, opt_range);
        if (opt_per_feature && fz_feat_init(&feat, f_x->count, &err)) die(&err);
    }
    const fz_field *f_sx = NULL, *f_sxh = NULL; /* --recon-score: x, xhat; --norm-score: the field */
    if (R.an && opt_recon_score) {
        f_sx = need_field(s, "x", "--recon-score needs the input (fz-encode -k | fz-decode)");
        f_sxh = need_field(s, "xhat", "--recon-score needs reconstructions (fz-encode -k | fz-decode)");
        need_pair(f_sx, f_sxh);
        if (!xb) xb = alloc_floats(f_sx->count);
        if (!xhb) xhb = alloc_floats(f_sx->count);
    } else if (R.an && opt_norm_score) {
        f_sx = need_field(s, opt_norm_score, "the field named by --norm-score");
        if (f_sx->type == FZ_BYTES) {
            fz_fail(&err, FZ_EDATA, "%s: field '%s' holds bytes, expected numbers",
                    fz_reader_name(rd), opt_norm_score);
            die(&err);
        }
        if (!(qb2 = alloc_floats(f_sx->count))) die(&err);
    } else if (R.an && opt_knn_score) {
        f_sx = need_field(s, opt_field, "give a stream from fz-encode, or name the field with --field");
        if (f_sx->type == FZ_BYTES) {
            fz_fail(&err, FZ_EDATA, "%s: field '%s' holds bytes, expected numbers",
                    fz_reader_name(rd), opt_field);
            die(&err);
        }
        qb2 = alloc_floats(f_sx->count);
        load_reference(f_sx); /* and the labeled rows for --knn, in the same pass */
    } else if (R.an) {
        f_score = need_field(s, opt_score, "give a stream from fz-fuzzy, or name the score "
                                           "field with --score");
        need_scalar(f_score);
    }
    if (R.an) {
        if (opt_truth) {
            f_truth = need_field(s, opt_truth, "the field named by --truth");
            need_scalar(f_truth);
        } else {
            char *list = strdup(opt_anomaly_classes);
            if (!list) {
                fz_fail(&err, FZ_ENOMEM, "out of memory");
                die(&err);
            }
            parse_anomaly_classes(list);
            free(list);
        }
        if (!isnan(opt_threshold)) {
            R.decision = 1;
        } else if ((f_flag = find_field(s, "flag"))) {
            need_scalar(f_flag);
            R.decision = 2;
        }
    }

    /* The rows: about 1 MiB at a time. */
    size_t batch = s->row_size ? ((size_t)1 << 20) / s->row_size : 1024;
    if (batch < 1) batch = 1;
    if (!(rows = fz_malloc(batch * s->row_size + 1, &err))) die(&err);
    uint64_t ftp = 0, ffp = 0, ffn = 0, ftn = 0; /* decisions from the flag field */
    long n;
    while ((n = fz_reader_read(rd, rows, batch, &err)) > 0) {
        uint64_t first = fz_reader_rows(rd) - (uint64_t)n;
        for (long i = 0; i < n; i++) {
            const unsigned char *row = rows + (size_t)i * s->row_size;
            uint64_t rowno = first + (uint64_t)i;
            long label = f_label ? get_int(f_label, row, rowno) : 0;
            if (f_label && label < -1) row_fail(rowno, "%s is %g, expected a class index or -1", "label", (double)label);
            if (R.cls) {
                long pred;
                if (f_q) {
                    if (label == -1) {
                        R.cls_skipped++;
                        goto cls_done;
                    }
                    fz_field_to_f32(f_q, row, qb);
                    check_finite(qb, f_q->count, f_q->name, rowno);
                    pred = fz_knn_predict(&kn, qb);
                } else {
                    pred = get_int(f_pred, row, rowno);
                }
                if (label == -1) {
                    R.cls_skipped++;
                } else if (fz_confusion_add(&conf, label, pred, &err)) {
                    char where[64];
                    snprintf(where, sizeof where, "row %llu", (unsigned long long)rowno);
                    fz_err_prefix(&err, where);
                    fz_err_prefix(&err, fz_reader_name(rd));
                    die(&err);
                }
            }
        cls_done:
            if (R.rc) {
                fz_field_to_f32(f_x, row, xb);
                fz_field_to_f32(f_xh, row, xhb);
                check_finite(xb, f_x->count, "x", rowno);
                check_finite(xhb, f_x->count, "xhat", rowno);
                fz_recon_add(&rec, xb, xhb, f_x->count);
                if (opt_per_feature) fz_feat_add(&feat, xb, xhb);
                if (R.kl) {
                    fz_field_to_f32(f_mu, row, mub);
                    fz_field_to_f32(f_lv, row, lvb);
                    check_finite(mub, f_mu->count, f_mu->name, rowno);
                    check_finite(lvb, f_mu->count, f_lv->name, rowno);
                    fz_recon_add_kl(&rec, mub, lvb, f_mu->count);
                }
            }
            if (R.an) {
                int truth;
                if (f_truth) {
                    double t = fz_field_get(f_truth, row, 0);
                    if (isnan(t)) row_fail(rowno, "%s is %g, expected a number", f_truth->name, t);
                    truth = t != 0;
                } else if (label == -1) {
                    R.an_skipped++;
                    continue;
                } else if (label >= FZ_METRICS_MAX_CLASSES || (nnames && label >= nnames)) {
                    row_fail(rowno, "%s is %g, not one of the stream's classes", "label", (double)label);
                    continue;
                } else {
                    truth = anom_class[label];
                }
                float sc;
                if (f_sxh) { /* x and xhat were read above when R.rc; read them again here */
                    fz_field_to_f32(f_sx, row, xb);
                    fz_field_to_f32(f_sxh, row, xhb);
                    check_finite(xb, f_sx->count, "x", rowno);
                    check_finite(xhb, f_sx->count, "xhat", rowno);
                    sc = (float)fz_row_mse(xb, xhb, f_sx->count);
                } else if (f_sx) {
                    fz_field_to_f32(f_sx, row, qb2);
                    check_finite(qb2, f_sx->count, f_sx->name, rowno);
                    sc = opt_knn_score ? (float)fz_knn_kth_dist(&ks, qb2)
                                       : (float)fz_sq_norm(qb2, f_sx->count);
                } else {
                    sc = (float)fz_field_get(f_score, row, 0);
                }
                if (isnan(sc))
                    row_fail(rowno, "%s is %g, expected a number", f_score ? f_score->name : "score", sc);
                add_scored(sc, truth);
                if (R.decision == 2) {
                    int flag = fz_field_get(f_flag, row, 0) != 0;
                    ftp += flag && truth;
                    ffp += flag && !truth;
                    ffn += !flag && truth;
                    ftn += !flag && !truth;
                }
            }
        }
    }
    if (n < 0) die(&err);
    R.rows = fz_reader_rows(rd);

    if (R.rc) R.r = fz_recon_result(&rec);
    if (R.an) {
        fz_scored_sort(scored, nscored);
        fz_walk w;
        fz_walk_init(&w, scored, nscored);
        R.pos = w.pos;
        R.neg = w.neg;
        R.auc = fz_roc_auc(scored, nscored);
        R.ap = fz_average_precision(scored, nscored);
        R.best_f1 = fz_best_f1(scored, nscored, &R.best_t);
        if (R.decision == 1) R.at = fz_binary_at(scored, nscored, opt_threshold);
        if (R.decision == 2) R.at = fz_binary_from_counts(ftp, ffp, ffn, ftn);
        if (opt_roc) write_roc(opt_roc, &R);
    }

    if (opt_out == OUT_TSV)
        print_tsv(&R);
    else if (opt_out == OUT_JSON) {
        if (print_json(&R)) {
            fz_fail(&err, FZ_ENOMEM, "out of memory");
            die(&err);
        }
    } else
        print_table(&R);
    cleanup();
    if (fflush(stdout) || ferror(stdout)) {
        if (fz_errno_code(errno) == FZ_EPIPE) return 0;
        fprintf(stderr, "%s: <stdout>: %s\n", prog, strerror(errno));
        return 1;
    }
    return 0;
}
