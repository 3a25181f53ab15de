/* norm.c - per-feature affine normalisation: fit, apply, save and load. */
#include "norm.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const mode_names[] = {"none", "unit", "shift", "standardize"};

const char *fz_norm_mode_name(fz_norm_mode m)
{
    return (unsigned)m < 4 ? mode_names[m] : "?";
}

int fz_norm_parse_mode(const char *s, fz_norm_mode *m)
{
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, mode_names[i]) == 0) {
            *m = (fz_norm_mode)i;
            return 0;
        }
    return -1;
}

void fz_norm_free(fz_norm *nm)
{
    if (!nm) return;
    free(nm->offset);
    free(nm->scale);
    free(nm->off_f);
    free(nm->scale_f);
    memset(nm, 0, sizeof *nm);
}

static int norm_alloc(fz_norm *nm, fz_norm_mode mode, size_t d, fz_err *err)
{
    memset(nm, 0, sizeof *nm);
    nm->mode = mode;
    nm->d = d;
    nm->offset = fz_calloc(d, sizeof *nm->offset, err);
    nm->scale = fz_calloc(d, sizeof *nm->scale, err);
    nm->off_f = fz_calloc(d, sizeof *nm->off_f, err);
    nm->scale_f = fz_calloc(d, sizeof *nm->scale_f, err);
    if (!nm->offset || !nm->scale || !nm->off_f || !nm->scale_f) {
        fz_norm_free(nm);
        return -1;
    }
    return 0;
}

static void finish(fz_norm *nm)
{
    nm->per_feature = 0;
    for (size_t j = 0; j < nm->d; j++) {
        nm->off_f[j] = (float)nm->offset[j];
        nm->scale_f[j] = (float)nm->scale[j];
        if (nm->offset[j] != nm->offset[0] || nm->scale[j] != nm->scale[0]) nm->per_feature = 1;
    }
}

#define ROW(k) (idx ? idx[k] : (k))

int fz_norm_fit(fz_norm *nm, fz_norm_mode mode, const fz_dataset *ds, const size_t *idx,
                size_t n, fz_err *err)
{
    size_t d = ds->d;
    if (norm_alloc(nm, mode, d, err)) return -1;
    if (mode == FZ_NORM_NONE) {
        for (size_t j = 0; j < d; j++) nm->scale[j] = 1;
    } else if (mode == FZ_NORM_STANDARDIZE) {
        /* two passes in double: mean, then the mean squared deviation */
        double *sum = fz_calloc(d, sizeof *sum, err);
        if (!sum) {
            fz_norm_free(nm);
            return -1;
        }
        for (size_t k = 0; k < n; k++)
            for (size_t j = 0; j < d; j++) sum[j] += fz_dataset_at(ds, ROW(k), j);
        for (size_t j = 0; j < d; j++) nm->offset[j] = n ? sum[j] / (double)n : 0;
        memset(sum, 0, d * sizeof *sum);
        for (size_t k = 0; k < n; k++)
            for (size_t j = 0; j < d; j++) {
                double v = fz_dataset_at(ds, ROW(k), j) - nm->offset[j];
                sum[j] += v * v;
            }
        for (size_t j = 0; j < d; j++) {
            double sd = n ? sqrt(sum[j] / (double)n) : 0;
            nm->scale[j] = sd > 1e-12 * (fabs(nm->offset[j]) + 1) ? 1.0 / sd : 1.0;
        }
        free(sum);
    } else if (ds->pixel_max > 0) {
        /* fixed pixel scale: no statistics needed */
        for (size_t j = 0; j < d; j++) {
            nm->scale[j] = 1.0 / ds->pixel_max;
            nm->offset[j] = mode == FZ_NORM_SHIFT ? ds->pixel_max / 2 : 0;
        }
    } else {
        double *lo = fz_malloc(d * sizeof *lo, err), *hi = fz_malloc(d * sizeof *hi, err);
        if (!lo || !hi) {
            free(lo);
            free(hi);
            fz_norm_free(nm);
            return -1;
        }
        for (size_t j = 0; j < d; j++) {
            lo[j] = INFINITY;
            hi[j] = -INFINITY;
        }
        for (size_t k = 0; k < n; k++)
            for (size_t j = 0; j < d; j++) {
                double v = fz_dataset_at(ds, ROW(k), j);
                if (v < lo[j]) lo[j] = v;
                if (v > hi[j]) hi[j] = v;
            }
        for (size_t j = 0; j < d; j++) {
            if (!n) lo[j] = hi[j] = 0;
            double range = hi[j] - lo[j];
            nm->scale[j] = range > 0 ? 1.0 / range : 1.0;
            nm->offset[j] = mode == FZ_NORM_SHIFT ? lo[j] + range / 2 : lo[j];
        }
        free(lo);
        free(hi);
    }
    finish(nm);
    return 0;
}

void fz_norm_apply(const fz_norm *nm, const fz_dataset *ds, size_t i, float *out)
{
    size_t d = nm->d;
    const float *o = nm->off_f, *s = nm->scale_f;
    if (ds->x8) {
        const unsigned char *r = ds->x8 + i * d;
        for (size_t j = 0; j < d; j++) out[j] = ((float)r[j] - o[j]) * s[j];
    } else {
        const float *r = ds->xf + i * d;
        for (size_t j = 0; j < d; j++) out[j] = (r[j] - o[j]) * s[j];
    }
}

static void put_vec(fz_sbuf *b, const double *v, size_t d, int per_feature)
{
    if (!per_feature) {
        fz_sbuf_json_f64(b, d ? v[0] : 0);
        return;
    }
    fz_sbuf_putc(b, '[');
    for (size_t j = 0; j < d; j++) {
        if (j) fz_sbuf_putc(b, ',');
        fz_sbuf_json_f64(b, v[j]);
    }
    fz_sbuf_putc(b, ']');
}

void fz_norm_json(const fz_norm *nm, fz_sbuf *b)
{
    fz_sbuf_printf(b, "{\"mode\":\"%s\",\"offset\":", fz_norm_mode_name(nm->mode));
    put_vec(b, nm->offset, nm->d, nm->per_feature);
    fz_sbuf_printf(b, ",\"scale\":");
    put_vec(b, nm->scale, nm->d, nm->per_feature);
    fz_sbuf_putc(b, '}');
}

int fz_norm_save(const fz_norm *nm, const char *path, fz_err *err)
{
    fz_sbuf b;
    fz_sbuf_init(&b);
    fz_sbuf_printf(&b, "{\"fz_norm\":1,\"mode\":\"%s\",\"d\":%zu,\"offset\":",
                   fz_norm_mode_name(nm->mode), nm->d);
    put_vec(&b, nm->offset, nm->d, 1);
    fz_sbuf_printf(&b, ",\"scale\":");
    put_vec(&b, nm->scale, nm->d, 1);
    fz_sbuf_printf(&b, "}\n");
    char *text = fz_sbuf_take(&b);
    if (!text) return fz_fail(err, FZ_ENOMEM, "%s: out of memory", path);
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        free(text);
        return fz_fail(err, FZ_EUSAGE, "%s: path too long", path);
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        int e = errno;
        free(text);
        return fz_fail(err, fz_errno_code(e), "%s: %s", path, strerror(e));
    }
    size_t len = strlen(text);
    int bad = fwrite(text, 1, len, f) != len;
    int e = errno;
    if (fclose(f) && !bad) {
        bad = 1;
        e = errno;
    }
    free(text);
    if (bad || rename(tmp, path)) {
        if (!bad) e = errno;
        remove(tmp);
        return fz_fail(err, fz_errno_code(e), "%s: %s", path, strerror(e));
    }
    return 0;
}

/* A number or an array of d numbers. */
static int get_vec(const fz_json *j, double *out, size_t d, const char *what, fz_err *err)
{
    if (fz_json_type(j) == FZ_JNUM) {
        for (size_t k = 0; k < d; k++) out[k] = fz_json_num(j, 0);
    } else if (fz_json_type(j) == FZ_JARR) {
        if (fz_json_len(j) != d)
            return fz_fail(err, FZ_EDATA, "'%s' has %zu values, expected %zu", what,
                           fz_json_len(j), d);
        for (size_t k = 0; k < d; k++) {
            const fz_json *v = fz_json_at(j, k);
            if (fz_json_type(v) != FZ_JNUM)
                return fz_fail(err, FZ_EDATA, "'%s'[%zu] is not a number", what, k);
            out[k] = fz_json_num(v, 0);
        }
    } else {
        return fz_fail(err, FZ_EDATA, "'%s' is missing or not a number/array", what);
    }
    for (size_t k = 0; k < d; k++)
        if (!isfinite(out[k]))
            return fz_fail(err, FZ_EDATA, "'%s'[%zu] is not finite", what, k);
    return 0;
}

int fz_norm_from_json(fz_norm *nm, const char *text, size_t len, fz_err *err)
{
    memset(nm, 0, sizeof *nm);
    fz_json *root = fz_json_parse(text, len, err);
    if (!root) return -1;
    int rc = -1;
    fz_norm_mode mode;
    const fz_json *jd = fz_json_get(root, "d");
    double dd = fz_json_num(jd, -1);
    if (fz_json_type(root) != FZ_JOBJ || fz_json_num(fz_json_get(root, "fz_norm"), 0) != 1) {
        fz_fail(err, FZ_EDATA, "not an fz statistics file (expected {\"fz_norm\":1,...})");
    } else if (fz_norm_parse_mode(fz_json_str(fz_json_get(root, "mode")), &mode)) {
        fz_fail(err, FZ_EDATA, "'mode' must be none, unit, shift or standardize");
    } else if (!(dd >= 1 && dd <= 1e8 && dd == floor(dd))) {
        fz_fail(err, FZ_EDATA, "'d' must be an integer from 1 to 100000000");
    } else if (!norm_alloc(nm, mode, (size_t)dd, err)) {
        if (get_vec(fz_json_get(root, "offset"), nm->offset, nm->d, "offset", err) ||
            get_vec(fz_json_get(root, "scale"), nm->scale, nm->d, "scale", err)) {
            fz_norm_free(nm);
        } else {
            finish(nm);
            rc = 0;
        }
    }
    fz_json_free(root);
    return rc;
}

int fz_norm_load(fz_norm *nm, const char *path, fz_err *err)
{
    memset(nm, 0, sizeof *nm);
    fz_blob b;
    if (fz_read_file(path, &b, err)) return -1;
    if (b.len > FZ_NORM_MAX_FILE) {
        fz_blob_free(&b);
        return fz_fail(err, FZ_EDATA, "%s: %zu bytes is over the limit of %zu for a statistics "
                       "file", path, b.len, FZ_NORM_MAX_FILE);
    }
    int rc = fz_norm_from_json(nm, (const char *)b.data, b.len, err);
    fz_blob_free(&b);
    if (rc) fz_err_prefix(err, path);
    return rc;
}
