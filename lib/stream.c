/* stream.c - reading and writing fz row streams (concatenated .npy arrays). */
#include "stream.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const unsigned char NPY_MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
#define MAX_HEADER_BYTES ((size_t)1 << 20) /* a .npy v2/v3 header; v1 is capped at 65535 */

/* ------------------------------------------------------------------ schema */

static const struct {
    fz_dtype type;
    char kind;
    size_t size;
} DTYPES[] = {
    {FZ_F4, 'f', 4}, {FZ_F8, 'f', 8}, {FZ_U1, 'u', 1}, {FZ_I1, 'i', 1}, {FZ_U2, 'u', 2},
    {FZ_I2, 'i', 2}, {FZ_U4, 'u', 4}, {FZ_I4, 'i', 4}, {FZ_U8, 'u', 8}, {FZ_I8, 'i', 8},
};

static size_t dtype_size(fz_dtype t, size_t elem_size)
{
    if (t == FZ_BYTES) return elem_size;
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (DTYPES[i].type == t) return DTYPES[i].size;
    return 0;
}

const char *fz_dtype_name(fz_dtype t, size_t elem_size, char *buf, size_t cap)
{
    if (t == FZ_BYTES) {
        snprintf(buf, cap, "S%zu", elem_size);
        return buf;
    }
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (DTYPES[i].type == t) {
            snprintf(buf, cap, "%c%zu", DTYPES[i].kind, DTYPES[i].size);
            return buf;
        }
    snprintf(buf, cap, "?");
    return buf;
}

/* NumPy's own spelling: '<f4', '|u1', '|S20'. */
static void numpy_typestr(const fz_field *f, char *buf, size_t cap)
{
    char name[16];
    fz_dtype_name(f->type, f->elem_size, name, sizeof name);
    char order = (f->type == FZ_BYTES || f->elem_size == 1) ? '|' : '<';
    snprintf(buf, cap, "%c%s", order, name);
}

void fz_schema_init(fz_schema *s) { memset(s, 0, sizeof *s); }

static int valid_field_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= FZ_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == '\'' || c == '"' || c == '\\' || c == 0x7f) return 0;
    }
    return 1;
}

int fz_schema_add(fz_schema *s, const char *name, fz_dtype type, size_t elem_size, int ndim,
                  const int64_t *shape, fz_err *err)
{
    if (s->nfields >= FZ_MAX_FIELDS)
        return fz_fail(err, FZ_EDATA, "too many fields (at most %d)", FZ_MAX_FIELDS);
    if (!valid_field_name(name))
        return fz_fail(err, FZ_EDATA, "bad field name '%.80s'", name);
    if (fz_schema_find(s, name) >= 0)
        return fz_fail(err, FZ_EDATA, "duplicate field name '%s'", name);
    if (ndim < 0 || ndim > FZ_MAX_DIMS)
        return fz_fail(err, FZ_EDATA, "field '%s': %d dimensions (at most %d)", name, ndim,
                       FZ_MAX_DIMS);
    if (type == FZ_BYTES) {
        if (elem_size == 0 || elem_size > 65536)
            return fz_fail(err, FZ_EDATA, "field '%s': bytes length %zu out of range [1, 65536]",
                           name, elem_size);
    } else {
        elem_size = dtype_size(type, 0);
        if (!elem_size) return fz_fail(err, FZ_EDATA, "field '%s': unknown dtype", name);
    }
    fz_field *f = &s->field[s->nfields];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->type = type;
    f->elem_size = elem_size;
    f->ndim = ndim;
    size_t count = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (uint64_t)shape[d] > FZ_MAX_ROW_BYTES)
            return fz_fail(err, FZ_EDATA,
                           "field '%s': dimension %d is %lld (row larger than %zu bytes)", name,
                           d, (long long)shape[d], FZ_MAX_ROW_BYTES);
        f->shape[d] = shape[d];
        if (fz_mul_size(count, (size_t)shape[d], &count))
            return fz_fail(err, FZ_EDATA, "field '%s': shape too large", name);
    }
    size_t size, row;
    if (fz_mul_size(count, elem_size, &size) || fz_add_size(s->row_size, size, &row) ||
        row > FZ_MAX_ROW_BYTES)
        return fz_fail(err, FZ_EDATA, "field '%s': row larger than %zu bytes", name,
                       FZ_MAX_ROW_BYTES);
    f->count = count;
    f->size = size;
    f->offset = s->row_size;
    s->row_size = row;
    s->nfields++;
    return 0;
}

int fz_schema_find(const fz_schema *s, const char *name)
{
    for (int i = 0; i < s->nfields; i++)
        if (strcmp(s->field[i].name, name) == 0) return i;
    return -1;
}

int fz_schema_copy_except(fz_schema *dst, const fz_schema *src, const char *const *drop,
                          fz_err *err)
{
    for (int i = 0; i < src->nfields; i++) {
        const fz_field *f = &src->field[i];
        int dropped = 0;
        for (const char *const *d = drop; d && *d; d++)
            if (strcmp(*d, f->name) == 0) dropped = 1;
        if (dropped) continue;
        if (fz_schema_add(dst, f->name, f->type, f->elem_size, f->ndim, f->shape, err)) return -1;
    }
    return 0;
}

const char *fz_field_shape_str(const fz_field *f, char *buf, size_t cap)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "(");
    for (int d = 0; d < f->ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? ", " : "", (long long)f->shape[d]);
    if (n < cap) n += (size_t)snprintf(buf + n, cap - n, f->ndim == 1 ? ",)" : ")");
    return buf;
}

int fz_schema_descr(const fz_schema *s, char *buf, size_t cap)
{
    size_t n = 0;
#define PUT(...)                                                              \
    do {                                                                      \
        int k_ = snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__);      \
        if (k_ < 0) return -1;                                                \
        n += (size_t)k_;                                                      \
    } while (0)
    PUT("[");
    for (int i = 0; i < s->nfields; i++) {
        const fz_field *f = &s->field[i];
        char ts[24], shp[256];
        numpy_typestr(f, ts, sizeof ts);
        if (f->ndim == 0)
            PUT("%s('%s', '%s')", i ? ", " : "", f->name, ts);
        else
            PUT("%s('%s', '%s', %s)", i ? ", " : "", f->name, ts,
                fz_field_shape_str(f, shp, sizeof shp));
    }
    PUT("]");
#undef PUT
    return n < cap ? 0 : -1;
}

int fz_schema_equal(const fz_schema *a, const fz_schema *b)
{
    if (a->nfields != b->nfields || a->row_size != b->row_size) return 0;
    for (int i = 0; i < a->nfields; i++) {
        const fz_field *x = &a->field[i], *y = &b->field[i];
        if (strcmp(x->name, y->name) || x->type != y->type || x->elem_size != y->elem_size ||
            x->ndim != y->ndim)
            return 0;
        for (int d = 0; d < x->ndim; d++)
            if (x->shape[d] != y->shape[d]) return 0;
    }
    return 1;
}

int fz_rowmap_build(fz_rowmap *map, const fz_schema *in, fz_schema *out,
                    const char *const *drop, fz_err *err)
{
    fz_schema_init(out);
    if (fz_schema_copy_except(out, in, drop, err)) return -1;
    map->n = out->nfields;
    for (int i = 0; i < out->nfields; i++) {
        const fz_field *f = &in->field[fz_schema_find(in, out->field[i].name)];
        map->src[i] = f->offset;
        map->dst[i] = out->field[i].offset;
        map->size[i] = f->size;
    }
    return 0;
}

void fz_rowmap_copy(const fz_rowmap *map, const void *in_row, void *out_row)
{
    for (int i = 0; i < map->n; i++)
        memcpy((char *)out_row + map->dst[i], (const char *)in_row + map->src[i], map->size[i]);
}

int fz_split_names(char *s, const char **names, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok && n < max - 1; tok = strtok(NULL, ","))
        if (*tok) names[n++] = tok;
    names[n] = NULL;
    return n;
}

/* ------------------------------------------------------------------ element access */

double fz_field_get(const fz_field *f, const void *row, size_t i)
{
    const unsigned char *p = (const unsigned char *)row + f->offset + i * f->elem_size;
    switch (f->type) {
    case FZ_F4: { float v; memcpy(&v, p, 4); return v; }
    case FZ_F8: { double v; memcpy(&v, p, 8); return v; }
    case FZ_U1: return *p;
    case FZ_I1: return (signed char)*p;
    case FZ_U2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case FZ_I2: { int16_t v; memcpy(&v, p, 2); return v; }
    case FZ_U4: { uint32_t v; memcpy(&v, p, 4); return v; }
    case FZ_I4: { int32_t v; memcpy(&v, p, 4); return v; }
    case FZ_U8: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
    case FZ_I8: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case FZ_BYTES: return 0;
    }
    return 0;
}

void fz_field_to_f32(const fz_field *f, const void *row, float *out)
{
    const unsigned char *p = (const unsigned char *)row + f->offset;
    if (f->type == FZ_F4) {
        memcpy(out, p, f->count * 4);
        return;
    }
    if (f->type == FZ_U1) {
        for (size_t i = 0; i < f->count; i++) out[i] = p[i];
        return;
    }
    for (size_t i = 0; i < f->count; i++) out[i] = (float)fz_field_get(f, row, i);
}

static double clampd(double v, double lo, double hi)
{
    if (isnan(v)) return 0;
    return v < lo ? lo : v > hi ? hi : v;
}

void fz_field_set(const fz_field *f, void *row, size_t i, double v)
{
    unsigned char *p = (unsigned char *)row + f->offset + i * f->elem_size;
    switch (f->type) {
    case FZ_F4: { float x = (float)v; memcpy(p, &x, 4); break; }
    case FZ_F8: memcpy(p, &v, 8); break;
    case FZ_U1: *p = (unsigned char)clampd(nearbyint(v), 0, 255); break;
    case FZ_I1: { signed char x = (signed char)clampd(nearbyint(v), -128, 127); memcpy(p, &x, 1); break; }
    case FZ_U2: { uint16_t x = (uint16_t)clampd(nearbyint(v), 0, 65535); memcpy(p, &x, 2); break; }
    case FZ_I2: { int16_t x = (int16_t)clampd(nearbyint(v), -32768, 32767); memcpy(p, &x, 2); break; }
    case FZ_U4: { uint32_t x = (uint32_t)clampd(nearbyint(v), 0, 4294967295.0); memcpy(p, &x, 4); break; }
    case FZ_I4: { int32_t x = (int32_t)clampd(nearbyint(v), -2147483648.0, 2147483647.0); memcpy(p, &x, 4); break; }
    case FZ_U8: { uint64_t x = (uint64_t)clampd(nearbyint(v), 0, 18446744073709549568.0); memcpy(p, &x, 8); break; }
    case FZ_I8: { int64_t x = (int64_t)clampd(nearbyint(v), -9223372036854775808.0, 9223372036854774784.0); memcpy(p, &x, 8); break; }
    case FZ_BYTES: break;
    }
}

/* ------------------------------------------------------------------ .npy header parsing */

/* A tiny parser for the Python literal in a .npy header:
 *   {'descr': <str | list of tuples>, 'fortran_order': <bool>, 'shape': <tuple of ints>}
 * It builds nothing: it walks the text and fills the result as it goes. */
typedef struct hdr_parser {
    const char *p, *end;
    char why[200];
} hdr_parser;

typedef struct npy_header {
    int structured;          /* descr was a list of fields */
    fz_schema fields;        /* structured: the fields; plain: one field named x (no shape yet) */
    int fortran;
    int ndim;
    int64_t shape[FZ_MAX_DIMS + 1];
} npy_header;

static void skip_ws(hdr_parser *h)
{
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r'))
        h->p++;
}

static int expect_ch(hdr_parser *h, char c)
{
    skip_ws(h);
    if (h->p < h->end && *h->p == c) {
        h->p++;
        return 0;
    }
    snprintf(h->why, sizeof h->why, "header: expected '%c' at offset %ld", c,
             (long)(h->p - (h->end - (h->end - h->p))));
    return -1;
}

static int peek_is(hdr_parser *h, char c)
{
    skip_ws(h);
    return h->p < h->end && *h->p == c;
}

static int parse_str(hdr_parser *h, char *out, size_t cap)
{
    skip_ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"')) {
        snprintf(h->why, sizeof h->why, "header: expected a string");
        return -1;
    }
    char q = *h->p++;
    size_t n = 0;
    while (h->p < h->end && *h->p != q) {
        if (*h->p == '\\') {
            snprintf(h->why, sizeof h->why, "header: escapes in strings are not supported");
            return -1;
        }
        if (n + 1 >= cap) {
            snprintf(h->why, sizeof h->why, "header: string too long");
            return -1;
        }
        out[n++] = *h->p++;
    }
    if (h->p >= h->end) {
        snprintf(h->why, sizeof h->why, "header: unterminated string");
        return -1;
    }
    h->p++;
    out[n] = '\0';
    return 0;
}

static int parse_int(hdr_parser *h, int64_t *out)
{
    skip_ws(h);
    int64_t v = 0;
    const char *start = h->p;
    while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
        if (v > (INT64_MAX - 9) / 10) {
            snprintf(h->why, sizeof h->why, "header: number too large");
            return -1;
        }
        v = v * 10 + (*h->p++ - '0');
    }
    if (h->p < h->end && *h->p == 'L') h->p++; /* Python 2 long suffix */
    if (h->p == start) {
        snprintf(h->why, sizeof h->why, "header: expected a non-negative integer");
        return -1;
    }
    *out = v;
    return 0;
}

/* A shape tuple "(3, 28, 28)", "(5,)" or "()". */
static int parse_shape(hdr_parser *h, int64_t *shape, int *ndim, int maxdim)
{
    if (expect_ch(h, '(')) return -1;
    *ndim = 0;
    while (!peek_is(h, ')')) {
        if (*ndim >= maxdim) {
            snprintf(h->why, sizeof h->why, "header: more than %d dimensions", maxdim);
            return -1;
        }
        if (parse_int(h, &shape[*ndim])) return -1;
        (*ndim)++;
        if (peek_is(h, ',')) h->p++;
        else if (!peek_is(h, ')')) {
            snprintf(h->why, sizeof h->why, "header: expected ',' or ')' in shape");
            return -1;
        }
    }
    h->p++;
    return 0;
}

/* '<f4' -> type. Fills *why on failure. */
static int parse_typestr(const char *ts, fz_dtype *type, size_t *elem, char *why, size_t whycap)
{
    char order = ts[0];
    const char *k = ts + 1;
    if (order != '<' && order != '>' && order != '|' && order != '=') {
        order = '=';
        k = ts;
    }
    char kind = k[0];
    char *end = NULL;
    errno = 0;
    long size = strtol(k + 1, &end, 10);
    if (!kind || end == k + 1 || *end || errno || size <= 0) {
        snprintf(why, whycap, "unsupported dtype '%s'", ts);
        return -1;
    }
    if (kind == 'S') {
        if (size > 65536) {
            snprintf(why, whycap, "dtype '%s': byte strings longer than 65536", ts);
            return -1;
        }
        *type = FZ_BYTES;
        *elem = (size_t)size;
        return 0;
    }
    if (order == '>' && size > 1) {
        snprintf(why, whycap, "unsupported byte order in dtype '%s' (big-endian)", ts);
        return -1;
    }
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (DTYPES[i].kind == kind && (long)DTYPES[i].size == size) {
            *type = DTYPES[i].type;
            *elem = DTYPES[i].size;
            return 0;
        }
    snprintf(why, whycap, "unsupported dtype '%s'", ts);
    return -1;
}

static int parse_descr(hdr_parser *h, npy_header *out)
{
    fz_schema_init(&out->fields);
    fz_err e;
    char ts[64];
    if (!peek_is(h, '[')) { /* a plain array */
        if (parse_str(h, ts, sizeof ts)) return -1;
        fz_dtype t;
        size_t es;
        if (parse_typestr(ts, &t, &es, h->why, sizeof h->why)) return -1;
        out->structured = 0;
        if (fz_schema_add(&out->fields, "x", t, es, 0, NULL, &e)) {
            snprintf(h->why, sizeof h->why, "%.190s", e.msg);
            return -1;
        }
        return 0;
    }
    h->p++;
    out->structured = 1;
    while (!peek_is(h, ']')) {
        char name[FZ_NAME_MAX + 8];
        if (expect_ch(h, '(')) return -1;
        if (peek_is(h, '(')) {
            snprintf(h->why, sizeof h->why, "header: field titles are not supported");
            return -1;
        }
        if (parse_str(h, name, sizeof name)) return -1;
        if (expect_ch(h, ',')) return -1;
        if (peek_is(h, '[')) {
            snprintf(h->why, sizeof h->why, "field '%s': nested structured dtypes are not supported",
                     name);
            return -1;
        }
        if (parse_str(h, ts, sizeof ts)) return -1;
        int ndim = 0;
        int64_t shape[FZ_MAX_DIMS];
        if (peek_is(h, ',')) {
            h->p++;
            if (peek_is(h, '(')) {
                if (parse_shape(h, shape, &ndim, FZ_MAX_DIMS)) return -1;
            } else if (!peek_is(h, ')')) { /* numpy also accepts a bare int as a 1-D shape */
                if (parse_int(h, &shape[0])) return -1;
                ndim = 1;
            }
        }
        if (expect_ch(h, ')')) return -1;
        fz_dtype t;
        size_t es;
        char why[150];
        if (parse_typestr(ts, &t, &es, why, sizeof why)) {
            snprintf(h->why, sizeof h->why, "field '%.30s': %.150s", name, why);
            return -1;
        }
        if (name[0] == '\0') {
            snprintf(h->why, sizeof h->why, "unnamed (padding) fields are not supported");
            return -1;
        }
        if (fz_schema_add(&out->fields, name, t, es, ndim, shape, &e)) {
            snprintf(h->why, sizeof h->why, "%.190s", e.msg);
            return -1;
        }
        if (peek_is(h, ',')) h->p++;
        else if (!peek_is(h, ']')) {
            snprintf(h->why, sizeof h->why, "header: expected ',' or ']' in descr");
            return -1;
        }
    }
    h->p++;
    if (out->fields.nfields == 0) {
        snprintf(h->why, sizeof h->why, "structured dtype has no fields");
        return -1;
    }
    return 0;
}

static int parse_header_dict(const char *text, size_t len, npy_header *out, char *why,
                             size_t whycap)
{
    hdr_parser h = {text, text + len, ""};
    int have_descr = 0, have_fortran = 0, have_shape = 0;
    memset(out, 0, sizeof *out);
    if (expect_ch(&h, '{')) goto bad;
    while (!peek_is(&h, '}')) {
        char key[32];
        if (parse_str(&h, key, sizeof key)) goto bad;
        if (expect_ch(&h, ':')) goto bad;
        skip_ws(&h);
        if (strcmp(key, "descr") == 0) {
            if (parse_descr(&h, out)) goto bad;
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if ((size_t)(h.end - h.p) >= 4 && memcmp(h.p, "True", 4) == 0) {
                out->fortran = 1;
                h.p += 4;
            } else if ((size_t)(h.end - h.p) >= 5 && memcmp(h.p, "False", 5) == 0) {
                out->fortran = 0;
                h.p += 5;
            } else {
                snprintf(h.why, sizeof h.why, "header: fortran_order is not True or False");
                goto bad;
            }
            have_fortran = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (parse_shape(&h, out->shape, &out->ndim, FZ_MAX_DIMS + 1)) goto bad;
            have_shape = 1;
        } else {
            snprintf(h.why, sizeof h.why, "header: unexpected key '%s'", key);
            goto bad;
        }
        if (peek_is(&h, ',')) h.p++;
        else if (!peek_is(&h, '}')) {
            snprintf(h.why, sizeof h.why, "header: expected ',' or '}'");
            goto bad;
        }
    }
    if (!have_descr || !have_fortran || !have_shape) {
        snprintf(h.why, sizeof h.why, "header: missing %s",
                 !have_descr ? "'descr'" : !have_fortran ? "'fortran_order'" : "'shape'");
        goto bad;
    }
    return 0;
bad:
    snprintf(why, whycap, "%s", h.why[0] ? h.why : "header: malformed");
    return -1;
}

/* ------------------------------------------------------------------ reader */

struct fz_reader {
    FILE *f;
    int own;
    char name[256];
    char *meta;
    fz_schema schema;
    int have_schema;
    uint64_t pos;           /* bytes consumed, for messages */
    uint64_t chunk_rows;    /* rows in the current chunk */
    uint64_t chunk_left;    /* rows of the current chunk not yet delivered */
    uint64_t chunk_start;   /* byte offset where the current chunk's data starts */
    uint64_t rows;          /* rows delivered */
    int at_end;
    int pending;            /* a chunk header was read ahead (by open) */
};

/* Read one array header. Returns 1 when a header was read, 0 at a clean end of stream
 * (no byte left), -1 on error. */
static int read_array_header(fz_reader *r, npy_header *hdr, uint64_t *nrows, int *is_meta,
                             fz_err *err)
{
    unsigned char pre[12];
    uint64_t at = r->pos;
    size_t got = fz_read_full(r->f, pre, 8);
    if (ferror(r->f))
        return fz_fail(err, FZ_EIO, "%s: read error at byte %llu: %s", r->name,
                       (unsigned long long)at, strerror(errno));
    if (got == 0) return 0;
    size_t cmp = got < 6 ? got : 6;
    if (memcmp(pre, NPY_MAGIC, cmp) != 0)
        return fz_fail(err, FZ_EDATA, "%s: bad magic at byte %llu: not an .npy array",
                       r->name, (unsigned long long)at);
    if (got < 8)
        return fz_fail(err, FZ_EDATA,
                       "%s: truncated array header at byte %llu (expected 8 bytes, got %zu)",
                       r->name, (unsigned long long)at, got);
    int major = pre[6];
    if (major < 1 || major > 3)
        return fz_fail(err, FZ_EDATA, "%s: unsupported .npy version %d.%d at byte %llu", r->name,
                       major, pre[7], (unsigned long long)at);
    size_t lenbytes = major == 1 ? 2 : 4;
    got = fz_read_full(r->f, pre + 8, lenbytes);
    if (got < lenbytes)
        return fz_fail(err, FZ_EDATA,
                       "%s: truncated array header at byte %llu (expected %zu bytes, got %zu)",
                       r->name, (unsigned long long)at, 8 + lenbytes, 8 + got);
    size_t hlen = major == 1 ? fz_le16(pre + 8)
                             : (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)pre[10] << 16) |
                                   ((size_t)pre[11] << 24);
    if (hlen > MAX_HEADER_BYTES)
        return fz_fail(err, FZ_EDATA, "%s: array header of %zu bytes at byte %llu is too large",
                       r->name, hlen, (unsigned long long)at);
    char *text = malloc(hlen + 1);
    if (!text) return fz_fail(err, FZ_ENOMEM, "%s: out of memory", r->name);
    got = fz_read_full(r->f, text, hlen);
    if (got < hlen) {
        free(text);
        return fz_fail(err, FZ_EDATA,
                       "%s: truncated array header at byte %llu (expected %zu bytes, got %zu)",
                       r->name, (unsigned long long)at, 8 + lenbytes + hlen, 8 + lenbytes + got);
    }
    text[hlen] = '\0';
    r->pos += 8 + lenbytes + hlen;
    char why[256];
    int rc = parse_header_dict(text, hlen, hdr, why, sizeof why);
    free(text);
    if (rc)
        return fz_fail(err, FZ_EDATA, "%s: array at byte %llu: %s", r->name,
                       (unsigned long long)at, why);

    /* A leading 1-D '|u1' array whose first byte is '{' is metadata. Decided by the caller
     * after peeking at the first byte; here we only report the candidate. */
    *is_meta = !hdr->structured && hdr->fields.field[0].type == FZ_U1 && hdr->ndim == 1;

    if (hdr->ndim == 0)
        return fz_fail(err, FZ_EDATA, "%s: array at byte %llu is a scalar, not rows", r->name,
                       (unsigned long long)at);
    if ((uint64_t)hdr->shape[0] > FZ_MAX_CHUNK_ROWS)
        return fz_fail(err, FZ_EDATA, "%s: array at byte %llu claims %lld rows (at most %llu per chunk)",
                       r->name, (unsigned long long)at, (long long)hdr->shape[0],
                       (unsigned long long)FZ_MAX_CHUNK_ROWS);
    if (hdr->structured) {
        if (hdr->ndim != 1)
            return fz_fail(err, FZ_EDATA, "%s: array at byte %llu: structured chunk must be 1-D, got %d dimensions",
                           r->name, (unsigned long long)at, hdr->ndim);
    } else if (!*is_meta) {
        /* Plain array (n, d...): one field 'x' of shape (d...). */
        if (hdr->fortran && hdr->ndim > 2)
            return fz_fail(err, FZ_EDATA, "%s: array at byte %llu: Fortran order is not supported",
                           r->name, (unsigned long long)at);
        fz_field x = hdr->fields.field[0];
        fz_schema_init(&hdr->fields);
        if (fz_schema_add(&hdr->fields, "x", x.type, x.elem_size, hdr->ndim - 1, hdr->shape + 1,
                          err)) {
            fz_err_prefix(err, r->name);
            return -1;
        }
    }
    if (hdr->fortran && hdr->ndim > 1)
        return fz_fail(err, FZ_EDATA, "%s: array at byte %llu: Fortran order is not supported",
                       r->name, (unsigned long long)at);
    /* A 2-D plain array in Fortran order cannot be read row by row. */
    if (hdr->fortran && !hdr->structured && hdr->ndim == 2)
        return fz_fail(err, FZ_EDATA, "%s: array at byte %llu: Fortran order is not supported",
                       r->name, (unsigned long long)at);
    *nrows = (uint64_t)hdr->shape[0];
    return 1;
}

/* Read the next chunk header that carries rows, consuming metadata arrays on the way.
 * Returns 1 (chunk ready), 0 (clean end), -1 (error). */
static int next_chunk(fz_reader *r, int first, fz_err *err)
{
    for (;;) {
        npy_header hdr;
        uint64_t n = 0;
        int is_meta = 0;
        uint64_t at = r->pos;
        int rc = read_array_header(r, &hdr, &n, &is_meta, err);
        if (rc <= 0) return rc;
        if (is_meta) {
            /* Peek the first byte: metadata is JSON text starting with '{'. */
            int c = n ? fgetc(r->f) : EOF;
            if (n && c == EOF)
                return fz_fail(err, FZ_EDATA,
                               "%s: truncated chunk at byte %llu (expected %llu bytes, got 0)",
                               r->name, (unsigned long long)r->pos, (unsigned long long)n);
            if (c == '{') {
                if (n > FZ_MAX_META_BYTES)
                    return fz_fail(err, FZ_EDATA, "%s: metadata of %llu bytes is too large",
                                   r->name, (unsigned long long)n);
                char *m = malloc((size_t)n + 1);
                if (!m) return fz_fail(err, FZ_ENOMEM, "%s: out of memory", r->name);
                m[0] = '{';
                size_t got = 1 + fz_read_full(r->f, m + 1, (size_t)n - 1);
                if (got < n) {
                    free(m);
                    return fz_fail(err, FZ_EDATA,
                                   "%s: truncated metadata at byte %llu (expected %llu bytes, got %zu)",
                                   r->name, (unsigned long long)r->pos, (unsigned long long)n, got);
                }
                m[n] = '\0';
                if (memchr(m, '\0', (size_t)n)) {
                    free(m);
                    return fz_fail(err, FZ_EDATA, "%s: metadata at byte %llu contains a NUL byte",
                                   r->name, (unsigned long long)at);
                }
                r->pos += n;
                if (first && !r->have_schema && !r->meta) r->meta = m;
                else free(m); /* metadata of a concatenated stream: the first one wins */
                continue;
            }
            if (c != EOF) ungetc(c, r->f);
            /* Not metadata: an array of plain bytes, one field 'x' per row. */
            fz_field x = hdr.fields.field[0];
            fz_schema_init(&hdr.fields);
            if (fz_schema_add(&hdr.fields, "x", x.type, x.elem_size, 0, NULL, err)) return -1;
        }
        if (!r->have_schema) {
            r->schema = hdr.fields;
            r->have_schema = 1;
        } else if (!fz_schema_equal(&r->schema, &hdr.fields)) {
            char a[1024], b[1024];
            fz_schema_descr(&r->schema, a, sizeof a);
            fz_schema_descr(&hdr.fields, b, sizeof b);
            return fz_fail(err, FZ_EDATA,
                           "%s: chunk at byte %llu has dtype %s, but the stream's rows are %s",
                           r->name, (unsigned long long)at, b, a);
        }
        size_t bytes;
        if (fz_mul_size((size_t)n, r->schema.row_size, &bytes) || bytes > ((size_t)1 << 46))
            return fz_fail(err, FZ_EDATA, "%s: chunk at byte %llu: %llu rows of %zu bytes is absurd",
                           r->name, (unsigned long long)at, (unsigned long long)n,
                           r->schema.row_size);
        r->chunk_rows = r->chunk_left = n;
        r->chunk_start = r->pos;
        return 1;
    }
}

fz_reader *fz_reader_open(const char *path, fz_err *err)
{
    fz_reader *r = calloc(1, sizeof *r);
    if (!r) {
        fz_fail(err, FZ_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(r->name, sizeof r->name, "%s", fz_in_name(path));
    if (!path || strcmp(path, "-") == 0) {
        r->f = stdin;
    } else {
        r->f = fopen(path, "rb");
        if (!r->f) {
            fz_fail(err, FZ_EIO, "%s: %s", path, strerror(errno));
            free(r);
            return NULL;
        }
        r->own = 1;
    }
    int rc = next_chunk(r, 1, err);
    if (rc == 0) {
        fz_fail(err, FZ_EDATA, "%s: empty stream (no row chunk%s)", r->name,
                r->pos ? " after the metadata" : ": no data at all");
        rc = -1;
    }
    if (rc < 0) {
        fz_reader_close(r);
        return NULL;
    }
    r->pending = 1;
    return r;
}

const fz_schema *fz_reader_schema(const fz_reader *r) { return &r->schema; }
const char *fz_reader_meta(const fz_reader *r) { return r->meta ? r->meta : "{}"; }
const char *fz_reader_name(const fz_reader *r) { return r->name; }
uint64_t fz_reader_rows(const fz_reader *r) { return r->rows; }

long fz_reader_read(fz_reader *r, void *buf, size_t max_rows, fz_err *err)
{
    size_t done = 0;
    size_t rs = r->schema.row_size;
    if (max_rows > (size_t)LONG_MAX) max_rows = (size_t)LONG_MAX;
    while (done < max_rows && !r->at_end) {
        if (r->chunk_left == 0) {
            r->pending = 0;
            int rc = next_chunk(r, 0, err);
            if (rc < 0) return -1;
            if (rc == 0) {
                r->at_end = 1;
                break;
            }
            continue;
        }
        size_t want = max_rows - done;
        if ((uint64_t)want > r->chunk_left) want = (size_t)r->chunk_left;
        size_t got = rs ? fz_read_full(r->f, (char *)buf + done * rs, want * rs) : 0;
        if (got < want * rs) {
            if (ferror(r->f))
                return fz_fail(err, FZ_EIO, "%s: read error: %s", r->name, strerror(errno));
            uint64_t chunk_bytes = r->chunk_rows * rs;
            uint64_t have = (r->pos - r->chunk_start) + got;
            return fz_fail(err, FZ_EDATA,
                           "%s: truncated chunk at byte %llu (expected %llu bytes of rows, got %llu)",
                           r->name, (unsigned long long)r->chunk_start,
                           (unsigned long long)chunk_bytes, (unsigned long long)have);
        }
        r->pos += got;
        r->chunk_left -= want;
        done += want;
        r->rows += want;
    }
    return (long)done;
}

void fz_reader_close(fz_reader *r)
{
    if (!r) return;
    if (r->own && r->f) fclose(r->f);
    free(r->meta);
    free(r);
}

/* ------------------------------------------------------------------ writer */

struct fz_writer {
    FILE *f;
    int own;            /* we opened f (a file), so we close it */
    int atomic;         /* f is a temporary file to be renamed to `path` */
    char path[4096];
    char tmp[4200];
    char name[256];
    fz_schema schema;
    char descr[8192];
    unsigned char *buf; /* (chunk_rows, row_size) pending rows */
    size_t chunk_rows, nbuf;
    uint64_t chunks;
    int failed;
};

static int put_bytes(fz_writer *w, const void *p, size_t n, fz_err *err)
{
    if (n && fwrite(p, 1, n, w->f) != n) {
        int code = fz_errno_code(errno);
        w->failed = 1;
        return fz_fail(err, code, "%s: %s", w->name, strerror(errno));
    }
    return 0;
}

/* Write an .npy v1.0 header (v2.0 if it does not fit in 65535 bytes), padded with spaces
 * and a newline so that the data starts on a 64-byte boundary, as NumPy does. */
static int put_header(fz_writer *w, const char *descr, uint64_t n, fz_err *err)
{
    size_t cap = strlen(descr) + 128;
    char *h = malloc(cap + 64);
    if (!h) return fz_fail(err, FZ_ENOMEM, "out of memory");
    int len = snprintf(h, cap, "{'descr': %s, 'fortran_order': False, 'shape': (%llu,), }",
                       descr, (unsigned long long)n);
    size_t hlen = (size_t)len;
    int major = hlen + 11 > 65535 ? 2 : 1;
    size_t pre = major == 1 ? 10 : 12;
    size_t total = ((pre + hlen + 1 + 63) / 64) * 64;
    while (pre + hlen + 1 < total) h[hlen++] = ' ';
    h[hlen++] = '\n';
    unsigned char p[12];
    memcpy(p, NPY_MAGIC, 6);
    p[6] = (unsigned char)major;
    p[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) p[8 + i] = (unsigned char)(hlen >> (8 * i));
    int rc = put_bytes(w, p, pre, err);
    if (!rc) rc = put_bytes(w, h, hlen, err);
    free(h);
    return rc;
}

static int flush_chunk(fz_writer *w, fz_err *err)
{
    if (put_header(w, w->descr, w->nbuf, err)) return -1;
    if (put_bytes(w, w->buf, w->nbuf * w->schema.row_size, err)) return -1;
    w->nbuf = 0;
    w->chunks++;
    /* Pass each chunk on at once: a downstream tool should not wait for our buffer. */
    if (fflush(w->f)) {
        w->failed = 1;
        return fz_fail(err, fz_errno_code(errno), "%s: %s", w->name, strerror(errno));
    }
    return 0;
}

fz_writer *fz_writer_open(const char *path, const fz_schema *s, const char *meta_json,
                          size_t chunk_rows, fz_err *err)
{
    fz_writer *w = calloc(1, sizeof *w);
    if (!w) {
        fz_fail(err, FZ_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(w->name, sizeof w->name, "%s", fz_out_name(path));
    w->schema = *s;
    if (s->nfields == 0) {
        fz_fail(err, FZ_EDATA, "%s: a stream needs at least one field", w->name);
        free(w);
        return NULL;
    }
    if (fz_schema_descr(s, w->descr, sizeof w->descr)) {
        fz_fail(err, FZ_EDATA, "%s: row dtype description too long", w->name);
        free(w);
        return NULL;
    }
    if (chunk_rows == 0) {
        chunk_rows = ((size_t)1 << 20) / (s->row_size ? s->row_size : 1);
        if (chunk_rows < 1) chunk_rows = 1;
        if (chunk_rows > 65536) chunk_rows = 65536;
    }
    w->chunk_rows = chunk_rows;
    size_t bytes;
    if (fz_mul_size(chunk_rows, s->row_size, &bytes) || !(w->buf = malloc(bytes ? bytes : 1))) {
        fz_fail(err, FZ_ENOMEM, "%s: out of memory for a chunk of %zu rows", w->name, chunk_rows);
        free(w);
        return NULL;
    }
    if (!path || strcmp(path, "-") == 0) {
        w->f = stdout;
    } else {
        struct stat st;
        /* Devices and FIFOs (/dev/null, /dev/full, a named pipe) are written directly;
         * regular files go through a temporary name. */
        int special = stat(path, &st) == 0 && !S_ISREG(st.st_mode);
        snprintf(w->path, sizeof w->path, "%s", path);
        if (special) {
            w->f = fopen(path, "wb");
        } else {
            snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", path, (long)getpid());
            w->f = fopen(w->tmp, "wb");
            w->atomic = 1;
        }
        if (!w->f) {
            fz_fail(err, fz_errno_code(errno), "%s: %s", path, strerror(errno));
            free(w->buf);
            free(w);
            return NULL;
        }
        w->own = 1;
    }
    if (meta_json) {
        size_t n = strlen(meta_json);
        if (put_header(w, "'|u1'", n, err) || put_bytes(w, meta_json, n, err)) {
            fz_writer_abort(w);
            return NULL;
        }
    }
    return w;
}

int fz_writer_write(fz_writer *w, const void *rows, size_t n, fz_err *err)
{
    if (w->failed) return fz_fail(err, FZ_EIO, "%s: write after an error", w->name);
    const unsigned char *p = rows;
    size_t rs = w->schema.row_size;
    while (n > 0) {
        size_t k = w->chunk_rows - w->nbuf;
        if (k > n) k = n;
        memcpy(w->buf + w->nbuf * rs, p, k * rs);
        w->nbuf += k;
        p += k * rs;
        n -= k;
        if (w->nbuf == w->chunk_rows && flush_chunk(w, err)) return -1;
    }
    return 0;
}

static void writer_free(fz_writer *w)
{
    free(w->buf);
    free(w);
}

void fz_writer_abort(fz_writer *w)
{
    if (!w) return;
    if (w->own && w->f) fclose(w->f);
    if (w->atomic) unlink(w->tmp);
    writer_free(w);
}

int fz_writer_close(fz_writer *w, fz_err *err)
{
    if (w->failed) {
        fz_writer_abort(w);
        return fz_fail(err, FZ_EIO, "%s: not written after an earlier error", w->name);
    }
    if ((w->nbuf > 0 || w->chunks == 0) && flush_chunk(w, err)) {
        fz_writer_abort(w);
        return -1;
    }
    if (fflush(w->f) || ferror(w->f)) {
        int e = errno;
        fz_writer_abort(w);
        return fz_fail(err, fz_errno_code(e), "%s: %s", fz_out_name(w->path[0] ? w->path : NULL),
                       strerror(e));
    }
    if (w->own) {
        FILE *f = w->f;
        w->f = NULL;
        if (fclose(f)) {
            int e = errno;
            fz_writer_abort(w);
            return fz_fail(err, fz_errno_code(e), "%s: %s", w->path, strerror(e));
        }
        if (w->atomic && rename(w->tmp, w->path)) {
            int e = errno;
            fz_writer_abort(w);
            return fz_fail(err, fz_errno_code(e), "%s: cannot rename into place: %s", w->path,
                           strerror(e));
        }
    }
    writer_free(w);
    return 0;
}
