/* csv.c - CSV with a header row (RFC 4180: quoted fields, "" inside quotes, CRLF or LF).
 * Every column but the label column must hold numbers; the label column may hold names. */
#include "input.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One record's fields, unquoted and NUL-terminated, packed in txt at off[i]. */
typedef struct rec {
    char *txt;
    size_t txt_len, txt_cap;
    size_t *off;
    size_t n, cap;
} rec;

typedef struct cursor {
    const char *p, *end;
    size_t line;     /* line where the next record starts (1-based) */
    size_t rec_line; /* line where the last record read started */
    char delim;
} cursor;

static int rec_putc(rec *r, char c, fz_err *err)
{
    if (r->txt_len == r->txt_cap) {
        size_t nc = r->txt_cap ? r->txt_cap * 2 : 256;
        if (nc > FZ_INPUT_MAX_BYTES) return fz_fail(err, FZ_EDATA, "record too long");
        char *t = realloc(r->txt, nc);
        if (!t) return fz_fail(err, FZ_ENOMEM, "out of memory (%zu bytes)", nc);
        r->txt = t;
        r->txt_cap = nc;
    }
    r->txt[r->txt_len++] = c;
    return 0;
}

static int rec_field(rec *r, fz_err *err)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 64;
        if (r->n >= FZ_CSV_MAX_COLS)
            return fz_fail(err, FZ_EDATA, "more than %d columns", FZ_CSV_MAX_COLS);
        size_t *o = realloc(r->off, nc * sizeof *o);
        if (!o) return fz_fail(err, FZ_ENOMEM, "out of memory");
        r->off = o;
        r->cap = nc;
    }
    r->off[r->n++] = r->txt_len;
    return 0;
}

static int is_blank_line(const cursor *c)
{
    if (c->p >= c->end) return 0;
    return *c->p == '\n' || (*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n');
}

/* Read one record. Returns 1 when a record was read, 0 at end of input, -1 on error. */
static int next_record(cursor *c, rec *r, fz_err *err)
{
    while (is_blank_line(c)) { /* blank lines between records are skipped */
        c->p += *c->p == '\r' ? 2 : 1;
        c->line++;
    }
    if (c->p >= c->end) return 0;
    r->n = 0;
    r->txt_len = 0;
    if (rec_field(r, err)) return -1;
    size_t line = c->rec_line = c->line;
    for (;;) {
        if (c->p < c->end && *c->p == '"') { /* quoted field */
            c->p++;
            for (;;) {
                if (c->p >= c->end)
                    return fz_fail(err, FZ_EDATA, "line %zu: unterminated quoted field", line);
                char ch = *c->p++;
                if (ch == '"') {
                    if (c->p < c->end && *c->p == '"') c->p++;
                    else break;
                } else if (ch == '\n') {
                    c->line++;
                }
                if (rec_putc(r, ch, err)) return -1;
            }
            if (c->p < c->end && *c->p != c->delim && *c->p != '\n' &&
                !(*c->p == '\r' && (c->p + 1 == c->end || c->p[1] == '\n')))
                return fz_fail(err, FZ_EDATA, "line %zu: unexpected '%c' after a closing quote",
                               c->line, *c->p);
        } else {
            while (c->p < c->end && *c->p != c->delim && *c->p != '\n') {
                if (*c->p == '\r' && (c->p + 1 == c->end || c->p[1] == '\n')) break;
                if (*c->p == '\0') return fz_fail(err, FZ_EDATA, "line %zu: NUL byte", c->line);
                if (rec_putc(r, *c->p++, err)) return -1;
            }
        }
        if (rec_putc(r, '\0', err)) return -1;
        if (c->p < c->end && *c->p == c->delim) {
            c->p++;
            if (rec_field(r, err)) return -1;
            continue;
        }
        if (c->p < c->end && *c->p == '\r') c->p++;
        if (c->p < c->end && *c->p == '\n') c->p++;
        c->line++;
        return 1;
    }
}

static char *dupstr(const char *s, fz_err *err)
{
    size_t n = strlen(s) + 1;
    char *p = fz_malloc(n, err);
    if (p) memcpy(p, s, n);
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Parse a number cell: leading/trailing spaces allowed, the rest must be a finite number. */
static int parse_cell(const char *s, float *out)
{
    while (*s == ' ' || *s == '\t') s++;
    if (!*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s) return -1;
    while (*end == ' ' || *end == '\t') end++;
    if (*end || !isfinite(v) || fabs(v) > 3.4e38) return -1;
    *out = (float)v;
    return 0;
}

/* Map label strings to ids: integers 0..FZ_MAX_CLASSES-1 stay numbers, otherwise sorted
 * names. */
static int map_labels(fz_dataset *ds, char **lab, fz_err *err)
{
    int all_int = 1;
    long maxv = 0;
    for (size_t i = 0; i < ds->n && all_int; i++) {
        char *end;
        errno = 0;
        long v = strtol(lab[i], &end, 10);
        if (end == lab[i] || *end || errno || v < 0 || v >= FZ_MAX_CLASSES) all_int = 0;
        else if (v > maxv) maxv = v;
    }
    if (all_int) {
        ds->nclasses = ds->n ? (size_t)maxv + 1 : 0;
        ds->classes = fz_calloc(ds->nclasses, sizeof *ds->classes, err);
        if (!ds->classes) return -1;
        for (size_t k = 0; k < ds->nclasses; k++) {
            char tmp[24];
            snprintf(tmp, sizeof tmp, "%zu", k);
            if (!(ds->classes[k] = dupstr(tmp, err))) return -1;
        }
        for (size_t i = 0; i < ds->n; i++) ds->label[i] = (int32_t)strtol(lab[i], NULL, 10);
        return 0;
    }
    char **s = fz_calloc(ds->n, sizeof *s, err);
    if (!s) return -1;
    memcpy(s, lab, ds->n * sizeof *s);
    qsort(s, ds->n, sizeof *s, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < ds->n; i++)
        if (k == 0 || strcmp(s[k - 1], s[i]) != 0) s[k++] = s[i];
    if (k > FZ_MAX_CLASSES) {
        free(s);
        return fz_fail(err, FZ_EDATA, "%zu distinct labels (limit %d)", k, FZ_MAX_CLASSES);
    }
    ds->classes = fz_calloc(k, sizeof *ds->classes, err);
    if (!ds->classes) {
        free(s);
        return -1;
    }
    ds->nclasses = k;
    for (size_t i = 0; i < k; i++)
        if (!(ds->classes[i] = dupstr(s[i], err))) {
            free(s);
            return -1;
        }
    free(s);
    for (size_t i = 0; i < ds->n; i++) {
        char **hit = bsearch(&lab[i], ds->classes, k, sizeof *ds->classes, cmp_str);
        ds->label[i] = (int32_t)(hit - ds->classes);
    }
    return 0;
}

int fz_csv_parse(const char *buf, size_t len, const char *name, const char *label_col,
                 fz_dataset *ds, fz_err *err)
{
    memset(ds, 0, sizeof *ds);
    rec r = {0};
    char **lab = NULL;
    size_t labcap = 0, xcap = 0;
    cursor c = {buf, buf + len, 1, 1, ','};
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) c.p += 3; /* UTF-8 byte order mark */
    {
        /* A header without commas but with tabs is tab-separated. */
        const char *nl = memchr(c.p, '\n', (size_t)(c.end - c.p));
        const char *he = nl ? nl : c.end;
        if (!memchr(c.p, ',', (size_t)(he - c.p)) && memchr(c.p, '\t', (size_t)(he - c.p)))
            c.delim = '\t';
    }
    int got = next_record(&c, &r, err);
    if (got < 0) goto fail_loc;
    if (got == 0) {
        fz_fail(err, FZ_EDATA, "%s: empty CSV (expected a header row)", name);
        goto fail;
    }
    size_t ncol = r.n;
    long labi = -1;
    if (label_col) {
        for (size_t j = 0; j < ncol; j++)
            if (strcmp(r.txt + r.off[j], label_col) == 0) labi = (long)j;
        if (labi < 0) {
            fz_fail(err, FZ_EDATA, "%s:1: no column named '%s' (the header has %zu columns, "
                    "first '%s')", name, label_col, ncol, r.txt + r.off[0]);
            goto fail;
        }
    }
    ds->nfeatures = ds->d = ncol - (labi >= 0);
    if (ds->d == 0) {
        fz_fail(err, FZ_EDATA, "%s:1: no feature columns", name);
        goto fail;
    }
    ds->features = fz_calloc(ds->d, sizeof *ds->features, err);
    if (!ds->features) goto fail;
    for (size_t j = 0, k = 0; j < ncol; j++) {
        if ((long)j == labi) continue;
        if (!(ds->features[k++] = dupstr(r.txt + r.off[j], err))) goto fail;
    }
    for (;;) {
        got = next_record(&c, &r, err);
        if (got < 0) goto fail_loc;
        if (got == 0) break;
        size_t line = c.rec_line;
        if (r.n != ncol) {
            fz_fail(err, FZ_EDATA, "%s:%zu: expected %zu columns, got %zu", name, line,
                    ncol, r.n);
            goto fail;
        }
        size_t row = ds->n;
        size_t need;
        if (fz_mul_size(row + 1, ds->d, &need) || need > FZ_INPUT_MAX_BYTES / sizeof(float)) {
            fz_fail(err, FZ_EDATA, "%s: too many values (limit %zu bytes)", name,
                    FZ_INPUT_MAX_BYTES);
            goto fail;
        }
        if (need > xcap) {
            size_t nc = xcap ? xcap * 2 : ds->d * 64;
            if (nc < need) nc = need;
            float *nx = realloc(ds->xf, nc * sizeof *nx);
            if (!nx) {
                fz_fail(err, FZ_ENOMEM, "%s: out of memory", name);
                goto fail;
            }
            ds->xf = nx;
            xcap = nc;
        }
        if (labi >= 0 && row == labcap) {
            size_t nc = labcap ? labcap * 2 : 256;
            char **nl = realloc(lab, nc * sizeof *nl);
            if (!nl) {
                fz_fail(err, FZ_ENOMEM, "%s: out of memory", name);
                goto fail;
            }
            lab = nl;
            labcap = nc;
        }
        float *x = ds->xf + row * ds->d;
        for (size_t j = 0, k = 0; j < ncol; j++) {
            const char *cell = r.txt + r.off[j];
            if ((long)j == labi) {
                if (!*cell) {
                    fz_fail(err, FZ_EDATA, "%s:%zu: column '%s': missing label", name,
                            line, label_col);
                    goto fail;
                }
                if (!(lab[row] = dupstr(cell, err))) goto fail;
                continue;
            }
            if (parse_cell(cell, &x[k])) {
                if (!*cell)
                    fz_fail(err, FZ_EDATA, "%s:%zu: column '%s': missing value", name,
                            line, ds->features[k]);
                else
                    fz_fail(err, FZ_EDATA, "%s:%zu: column '%s': '%.40s' is not a number%s",
                            name, line, ds->features[k], cell,
                            label_col ? "" : " (is it the label? see --label-col)");
                if (labi >= 0 && (long)j > labi) free(lab[row]);
                goto fail;
            }
            k++;
        }
        ds->n++;
    }
    ds->ndim = 1;
    ds->shape[0] = (int64_t)ds->d;
    ds->label = fz_malloc(ds->n * sizeof *ds->label, err);
    if (!ds->label) goto fail;
    if (labi >= 0) {
        ds->has_labels = 1;
        if (map_labels(ds, lab, err)) goto fail;
    } else {
        for (size_t i = 0; i < ds->n; i++) ds->label[i] = -1;
    }
    size_t sl = strlen(name) + 8;
    if (!(ds->source = fz_malloc(sl, err))) goto fail;
    snprintf(ds->source, sl, "csv:%s", name);
    for (size_t i = 0; lab && i < ds->n; i++) free(lab[i]);
    free(lab);
    free(r.txt);
    free(r.off);
    return 0;
fail_loc:
    fz_err_prefix(err, name);
fail:
    for (size_t i = 0; lab && i < ds->n; i++) free(lab[i]);
    free(lab);
    free(r.txt);
    free(r.off);
    fz_dataset_free(ds);
    return -1;
}

int fz_load_csv(const char *path, const char *pat, const char *label_col, fz_dataset *ds,
                fz_err *err)
{
    memset(ds, 0, sizeof *ds);
    if (!pat) pat = "*.csv";
    fz_blob b;
    if (fz_input_find(path, &pat, 1, &b, err)) return -1;
    char name[1024];
    if (strcmp(b.name, fz_in_name(path)) == 0) snprintf(name, sizeof name, "%s", b.name);
    else snprintf(name, sizeof name, "%s: %s", fz_in_name(path), b.name);
    int rc = fz_csv_parse((const char *)b.data, b.len, name, label_col, ds, err);
    fz_blob_free(&b);
    return rc;
}
