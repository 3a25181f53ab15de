/* safetensors.c - loading (with full validation) and atomic writing of safetensors files.
 * See safetensors.h for the format and the checks. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "json.h"

/* Tensor bytes are written and read as they lie in memory, which is the file's order only
 * on a little-endian host. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define CHECKSUM_KEY "fz_checksum"
/* Integers in the header are JSON numbers read as doubles: exact up to 2^53. */
#define MAX_JSON_INT 9007199254740992.0

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {{"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F16", 2}, {"BF16", 2},
              {"I16", 2},  {"U16", 2}, {"F32", 4}, {"I32", 4}, {"U32", 4},
              {"F64", 8},  {"I64", 8}, {"U64", 8}};

size_t fz_st_dtype_size(const char *dtype)
{
    if (!dtype) return 0;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtype, dtypes[i].name) == 0) return dtypes[i].size;
    return 0;
}

/* zlib's crc32 takes a uInt length: feed large buffers in pieces. */
static uint32_t crc_update(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    uLong c = crc;
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

/* "(4, 4)" for error messages. */
static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "(");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, ")");
}

/* product(shape) * elem, or -1 on overflow. */
static int shape_bytes(int ndim, const int64_t *shape, size_t elem, size_t *out)
{
    size_t n = elem;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (uint64_t)shape[i] > SIZE_MAX) return -1;
        if (fz_mul_size(n, (size_t)shape[i], &n) < 0) return -1;
    }
    *out = n;
    return 0;
}

/* ---- reading ---- */

struct fz_st_file {
    char *name;          /* for error messages */
    fz_json *hdr;        /* owns the metadata strings */
    fz_st_tensor *t;     /* (nt) in header order */
    int nt;
    const char **mkey, **mval; /* (nmeta) views into hdr */
    int nmeta;
    unsigned char *data; /* (datalen) the data section */
    size_t datalen;
    /* (nt) where each tensor's bytes are: in data, or in the aligned copy when the file
     * placed some tensor at an offset that is not a multiple of its element size */
    const unsigned char **ptr;
    unsigned char *aligned;
};

void fz_st_free(fz_st_file *f)
{
    if (!f) return;
    free(f->name);
    fz_json_free(f->hdr);
    free(f->t);
    free(f->mkey);
    free(f->mval);
    free(f->data);
    free(f->ptr);
    free(f->aligned);
    free(f);
}

/* A JSON number that is an integer in [0, 2^53]. */
static int json_uint(const fz_json *j, uint64_t *out)
{
    if (fz_json_type(j) != FZ_JNUM) return -1;
    double d = fz_json_num(j, -1);
    if (!(d >= 0 && d <= MAX_JSON_INT) || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

/* Fill t from the header entry v; errors name the tensor (the caller adds the file). */
static int parse_tensor(const char *name, const fz_json *v, size_t datalen, fz_st_tensor *t,
                        fz_err *err)
{
    if (strlen(name) >= FZ_ST_MAX_NAME)
        return fz_fail(err, FZ_EDATA, "tensor name '%.40s...' is %zu bytes, the limit is %d",
                       name, strlen(name), FZ_ST_MAX_NAME - 1);
    if (!*name) return fz_fail(err, FZ_EDATA, "empty tensor name");
    memcpy(t->name, name, strlen(name) + 1);
    if (fz_json_type(v) != FZ_JOBJ)
        return fz_fail(err, FZ_EDATA, "tensor '%s': entry is not an object", name);

    const char *dt = fz_json_str(fz_json_get(v, "dtype"));
    if (!dt) return fz_fail(err, FZ_EDATA, "tensor '%s': missing string \"dtype\"", name);
    size_t esize = fz_st_dtype_size(dt);
    if (!esize)
        return fz_fail(err, FZ_EDATA, "tensor '%s': unknown dtype '%.20s'", name, dt);
    memcpy(t->dtype, dt, strlen(dt) + 1);

    const fz_json *sh = fz_json_get(v, "shape");
    if (fz_json_type(sh) != FZ_JARR)
        return fz_fail(err, FZ_EDATA, "tensor '%s': missing array \"shape\"", name);
    if (fz_json_len(sh) > FZ_ST_MAX_DIMS)
        return fz_fail(err, FZ_EDATA, "tensor '%s': %zu dimensions, the limit is %d", name,
                       fz_json_len(sh), FZ_ST_MAX_DIMS);
    t->ndim = (int)fz_json_len(sh);
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d;
        if (json_uint(fz_json_at(sh, (size_t)i), &d) < 0)
            return fz_fail(err, FZ_EDATA,
                           "tensor '%s': shape[%d] is not a non-negative integer", name, i);
        t->shape[i] = (int64_t)d;
    }

    const fz_json *off = fz_json_get(v, "data_offsets");
    uint64_t b, e;
    if (fz_json_type(off) != FZ_JARR || fz_json_len(off) != 2 ||
        json_uint(fz_json_at(off, 0), &b) < 0 || json_uint(fz_json_at(off, 1), &e) < 0)
        return fz_fail(err, FZ_EDATA,
                       "tensor '%s': \"data_offsets\" is not [begin, end] of two "
                       "non-negative integers", name);
    if (e < b)
        return fz_fail(err, FZ_EDATA, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                       "] end before they begin", name, b, e);

    char shs[160];
    fmt_shape(shs, sizeof shs, t->ndim, t->shape);
    size_t want;
    if (shape_bytes(t->ndim, t->shape, esize, &want) < 0)
        return fz_fail(err, FZ_EDATA, "tensor '%s': shape %s of %s is too large", name, shs,
                       dt);
    if (e - b != want)
        return fz_fail(err, FZ_EDATA, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                       "] do not match shape %s of %s (%zu bytes)", name, b, e, shs, dt, want);
    if (e > datalen)
        return fz_fail(err, FZ_EDATA, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                       "] exceed the data section (%zu bytes)", name, b, e, datalen);
    t->offset = (size_t)b;
    t->nbytes = want;
    return 0;
}

static int cmp_offset(const void *a, const void *b)
{
    const fz_st_tensor *x = *(const fz_st_tensor *const *)a, *y = *(const fz_st_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const fz_st_tensor *const *)a)->name, (*(const fz_st_tensor *const *)b)->name);
}

/* The tensors must be unique by name and tile [0, datalen) exactly. */
static int check_layout(fz_st_file *f, fz_err *err)
{
    if (f->nt == 0) {
        if (f->datalen)
            return fz_fail(err, FZ_EDATA, "%zu bytes of data but no tensors", f->datalen);
        return 0;
    }
    const fz_st_tensor **ix = fz_malloc((size_t)f->nt * sizeof *ix, err);
    if (!ix) return -1;
    for (int i = 0; i < f->nt; i++) ix[i] = &f->t[i];
    int rc = 0;
    qsort(ix, (size_t)f->nt, sizeof *ix, cmp_name);
    for (int i = 1; i < f->nt && rc == 0; i++)
        if (strcmp(ix[i - 1]->name, ix[i]->name) == 0)
            rc = fz_fail(err, FZ_EDATA, "tensor '%s' appears twice", ix[i]->name);
    if (rc == 0) qsort(ix, (size_t)f->nt, sizeof *ix, cmp_offset);
    size_t next = 0;
    for (int i = 0; i < f->nt && rc == 0; i++) {
        const fz_st_tensor *t = ix[i];
        if (t->offset < next)
            rc = fz_fail(err, FZ_EDATA, "tensor '%s' (bytes [%zu, %zu)) overlaps tensor '%s' "
                         "(bytes [%zu, %zu))", t->name, t->offset, t->offset + t->nbytes,
                         ix[i - 1]->name, ix[i - 1]->offset, ix[i - 1]->offset + ix[i - 1]->nbytes);
        else if (t->offset > next)
            rc = fz_fail(err, FZ_EDATA, "bytes [%zu, %zu) of the data section belong to no "
                         "tensor", next, t->offset);
        else
            next = t->offset + t->nbytes;
    }
    if (rc == 0 && next != f->datalen)
        rc = fz_fail(err, FZ_EDATA, "%zu trailing bytes after the last tensor (data section "
                     "is %zu bytes, tensors end at %zu)", f->datalen - next, f->datalen, next);
    free(ix);
    return rc;
}

static int check_checksum(fz_st_file *f, fz_err *err)
{
    const char *c = fz_st_meta(f, CHECKSUM_KEY);
    if (!c) return 0;
    unsigned want = 0;
    int ok = strncmp(c, "crc32:", 6) == 0 && strlen(c) == 14;
    for (int i = 6; ok && i < 14; i++) {
        char h = c[i];
        int v = (h >= '0' && h <= '9') ? h - '0'
                : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
        if (v < 0) ok = 0;
        want = want * 16 + (unsigned)v;
    }
    if (!ok)
        return fz_fail(err, FZ_EDATA, "metadata %s '%.40s' is not crc32:XXXXXXXX", CHECKSUM_KEY,
                       c);
    uint32_t got = crc_update((uint32_t)crc32(0, Z_NULL, 0), f->data, f->datalen);
    if (got != want)
        return fz_fail(err, FZ_EDATA, "checksum mismatch (header crc32:%08x, data crc32:%08x), "
                       "file is corrupt", want, (unsigned)got);
    return 0;
}

/* Point each tensor at its bytes. fz's writer aligns every tensor to its element size,
 * but other writers need not: then the tensors are copied, each to an aligned place, so
 * that callers can read them as arrays of their type. */
static int place(fz_st_file *f, fz_err *err)
{
    if (!(f->ptr = fz_calloc((size_t)f->nt, sizeof *f->ptr, err))) return -1;
    int misaligned = 0;
    for (int i = 0; i < f->nt; i++)
        if (f->t[i].offset % fz_st_dtype_size(f->t[i].dtype)) misaligned = 1;
    if (!misaligned) {
        for (int i = 0; i < f->nt; i++) f->ptr[i] = f->data + f->t[i].offset;
        return 0;
    }
    /* Each tensor grows by at most 7 bytes of padding. */
    size_t total = f->datalen, o = 0;
    if (fz_add_size(total, (size_t)f->nt * 8, &total) < 0) return fz_fail(err, FZ_ENOMEM, "too large");
    if (!(f->aligned = fz_malloc(total, err))) return -1;
    for (int i = 0; i < f->nt; i++) {
        size_t a = fz_st_dtype_size(f->t[i].dtype);
        o = (o + a - 1) / a * a;
        if (f->t[i].nbytes) memcpy(f->aligned + o, f->data + f->t[i].offset, f->t[i].nbytes);
        f->ptr[i] = f->aligned + o;
        o += f->t[i].nbytes;
    }
    free(f->data);
    f->data = NULL;
    return 0;
}

/* Build a file from its header text and data section (ownership of data passes to the
 * result, or it is freed). Errors are not yet prefixed with the file name. */
static fz_st_file *st_parse(const char *name, const char *htext, size_t hlen,
                            unsigned char *data, size_t datalen, fz_err *err)
{
    fz_st_file *f = fz_calloc(1, sizeof *f, err);
    if (!f) {
        free(data);
        return NULL;
    }
    f->data = data;
    f->datalen = datalen;
    f->name = strdup(name);
    if (!f->name) {
        fz_fail(err, FZ_ENOMEM, "out of memory");
        goto fail;
    }
    f->hdr = fz_json_parse(htext, hlen, err);
    if (!f->hdr) {
        fz_err_prefix(err, "header");
        goto fail;
    }
    if (fz_json_type(f->hdr) != FZ_JOBJ) {
        fz_fail(err, FZ_EDATA, "header is not a JSON object");
        goto fail;
    }
    size_t n = fz_json_len(f->hdr);
    if (n > INT32_MAX / 2) {
        fz_fail(err, FZ_EDATA, "header has too many entries (%zu)", n);
        goto fail;
    }
    if (!(f->t = fz_calloc(n, sizeof *f->t, err))) goto fail;
    int seen_meta = 0;
    for (size_t i = 0; i < n; i++) {
        const char *key = fz_json_key_at(f->hdr, i);
        const fz_json *v = fz_json_at(f->hdr, i);
        if (strcmp(key, "__metadata__") != 0) {
            if (parse_tensor(key, v, datalen, &f->t[f->nt], err) < 0) goto fail;
            f->nt++;
            continue;
        }
        if (seen_meta++) {
            fz_fail(err, FZ_EDATA, "\"__metadata__\" appears twice");
            goto fail;
        }
        if (fz_json_type(v) == FZ_JNULL) continue;
        if (fz_json_type(v) != FZ_JOBJ) {
            fz_fail(err, FZ_EDATA, "\"__metadata__\" is not an object");
            goto fail;
        }
        size_t m = fz_json_len(v);
        if (m > FZ_ST_MAX_META) {
            fz_fail(err, FZ_EDATA, "%zu metadata entries, the limit is %d", m, FZ_ST_MAX_META);
            goto fail;
        }
        if (!(f->mkey = fz_calloc(m, sizeof *f->mkey, err))) goto fail;
        if (!(f->mval = fz_calloc(m, sizeof *f->mval, err))) goto fail;
        for (size_t k = 0; k < m; k++) {
            const char *mk = fz_json_key_at(v, k), *mv = fz_json_str(fz_json_at(v, k));
            if (!mv) {
                fz_fail(err, FZ_EDATA, "metadata '%.60s' is not a string", mk);
                goto fail;
            }
            /* a repeated key: the last value wins, as in fz_json_get */
            int j = 0;
            while (j < f->nmeta && strcmp(f->mkey[j], mk) != 0) j++;
            f->mkey[j] = mk;
            f->mval[j] = mv;
            if (j == f->nmeta) f->nmeta++;
        }
    }
    if (check_layout(f, err) < 0 || check_checksum(f, err) < 0 || place(f, err) < 0) goto fail;
    return f;
fail:
    fz_st_free(f);
    return NULL;
}

fz_st_file *fz_st_load_mem(const void *buf, size_t len, const char *name, fz_err *err)
{
    const unsigned char *p = buf;
    if (!name) name = "<memory>";
    if (len < 8) {
        fz_fail(err, FZ_EDATA, "%s: truncated: %zu bytes, need at least the 8-byte header "
                "length", name, len);
        return NULL;
    }
    uint64_t hlen = fz_le64(p);
    if (hlen > FZ_ST_MAX_HEADER || hlen > len - 8) {
        fz_fail(err, FZ_EDATA, "%s: header length %" PRIu64 " exceeds %s (%zu bytes)", name,
                hlen, hlen > FZ_ST_MAX_HEADER ? "the limit" : "the rest of the file",
                hlen > FZ_ST_MAX_HEADER ? (size_t)FZ_ST_MAX_HEADER : len - 8);
        return NULL;
    }
    size_t datalen = len - 8 - (size_t)hlen;
    unsigned char *data = fz_malloc(datalen, err);
    if (!data) {
        fz_err_prefix(err, name);
        return NULL;
    }
    if (datalen) memcpy(data, p + 8 + hlen, datalen);
    fz_st_file *f = st_parse(name, (const char *)p + 8, (size_t)hlen, data, datalen, err);
    if (!f) fz_err_prefix(err, name);
    return f;
}

fz_st_file *fz_st_load(const char *path, fz_err *err)
{
    char *htext = NULL;
    unsigned char *data = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fz_fail(err, FZ_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) < 0) {
        fz_fail(err, FZ_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        fz_fail(err, FZ_EDATA, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        fz_fail(err, FZ_EDATA, "%s: file too large", path);
        goto fail;
    }
    size_t size = (size_t)st.st_size;
    unsigned char lenbuf[8];
    if (size < 8) {
        fz_fail(err, FZ_EDATA, "%s: truncated: %zu bytes, need at least the 8-byte header "
                "length", path, size);
        goto fail;
    }
    if (fz_read_full(fp, lenbuf, 8) != 8) goto short_read;
    uint64_t hlen = fz_le64(lenbuf);
    if (hlen > FZ_ST_MAX_HEADER || hlen > size - 8) {
        fz_fail(err, FZ_EDATA, "%s: header length %" PRIu64 " exceeds %s (%zu bytes)", path,
                hlen, hlen > FZ_ST_MAX_HEADER ? "the limit" : "the rest of the file",
                hlen > FZ_ST_MAX_HEADER ? (size_t)FZ_ST_MAX_HEADER : size - 8);
        goto fail;
    }
    size_t datalen = size - 8 - (size_t)hlen;
    if (!(htext = fz_malloc((size_t)hlen, err)) || !(data = fz_malloc(datalen, err))) {
        fz_err_prefix(err, path);
        goto fail;
    }
    if (fz_read_full(fp, htext, (size_t)hlen) != hlen) goto short_read;
    if (fz_read_full(fp, data, datalen) != datalen) goto short_read;
    fclose(fp);
    fp = NULL;
    fz_st_file *f = st_parse(path, htext, (size_t)hlen, data, datalen, err);
    free(htext);
    if (!f) fz_err_prefix(err, path);
    return f;
short_read:
    if (ferror(fp))
        fz_fail(err, FZ_EIO, "%s: read error: %s", path, strerror(errno));
    else
        fz_fail(err, FZ_EDATA, "%s: file shrank while being read (expected %zu bytes)", path,
                size);
fail:
    if (fp) fclose(fp);
    free(htext);
    free(data);
    return NULL;
}

int fz_st_count(const fz_st_file *f) { return f ? f->nt : 0; }

const fz_st_tensor *fz_st_get(const fz_st_file *f, int i)
{
    return (f && i >= 0 && i < f->nt) ? &f->t[i] : NULL;
}

const fz_st_tensor *fz_st_find(const fz_st_file *f, const char *name)
{
    if (!f || !name) return NULL;
    for (int i = 0; i < f->nt; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

const void *fz_st_data(const fz_st_file *f, const fz_st_tensor *t)
{
    if (!f || !t || t < f->t || t >= f->t + f->nt) return NULL;
    return f->ptr[t - f->t];
}

const float *fz_st_f32(const fz_st_file *f, const char *name, int ndim, const int64_t *shape,
                       fz_err *err)
{
    const fz_st_tensor *t = fz_st_find(f, name);
    if (!t) {
        fz_fail(err, FZ_EDATA, "%s: no tensor '%s'", f ? f->name : "?", name);
        return NULL;
    }
    if (strcmp(t->dtype, "F32") != 0) {
        fz_fail(err, FZ_EDATA, "%s: tensor '%s' is %s, expected F32", f->name, name, t->dtype);
        return NULL;
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char got[160], want[160];
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        fmt_shape(want, sizeof want, ndim > FZ_ST_MAX_DIMS ? FZ_ST_MAX_DIMS : ndim, shape);
        fz_fail(err, FZ_EDATA, "%s: tensor '%s': shape %s, expected %s", f->name, name, got,
                want);
        return NULL;
    }
    return (const float *)fz_st_data(f, t);
}

const char *fz_st_meta(const fz_st_file *f, const char *key)
{
    if (!f || !key) return NULL;
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->mkey[i], key) == 0) return f->mval[i];
    return NULL;
}

int fz_st_meta_count(const fz_st_file *f) { return f ? f->nmeta : 0; }

const char *fz_st_meta_key(const fz_st_file *f, int i)
{
    return (f && i >= 0 && i < f->nmeta) ? f->mkey[i] : NULL;
}

int fz_st_verify(const char *path, fz_err *err)
{
    fz_st_file *f = fz_st_load(path, err);
    if (!f) return -1;
    int rc = 0;
    if (!fz_st_meta(f, CHECKSUM_KEY))
        rc = fz_fail(err, FZ_EDATA, "%s: no %s in the metadata, cannot verify", path,
                     CHECKSUM_KEY);
    fz_st_free(f);
    return rc;
}

/* ---- writing ---- */

typedef struct wtensor {
    fz_st_tensor t;   /* offset is assigned at write time */
    const void *data; /* (t.nbytes), not owned */
} wtensor;

struct fz_st_writer {
    wtensor *t;
    int nt, tcap;
    char **mkey, **mval;
    int nmeta, mcap;
};

fz_st_writer *fz_st_writer_new(fz_err *err) { return fz_calloc(1, sizeof(fz_st_writer), err); }

void fz_st_writer_free(fz_st_writer *w)
{
    if (!w) return;
    for (int i = 0; i < w->nmeta; i++) {
        free(w->mkey[i]);
        free(w->mval[i]);
    }
    free(w->mkey);
    free(w->mval);
    free(w->t);
    free(w);
}

int fz_st_add(fz_st_writer *w, const char *name, const char *dtype, const void *data,
              size_t nbytes, int ndim, const int64_t *shape, fz_err *err)
{
    if (!name || !*name || strlen(name) >= FZ_ST_MAX_NAME)
        return fz_fail(err, FZ_EUSAGE, "tensor name must have 1 to %d bytes",
                       FZ_ST_MAX_NAME - 1);
    if (strcmp(name, "__metadata__") == 0)
        return fz_fail(err, FZ_EUSAGE, "'__metadata__' is not a tensor name");
    size_t esize = fz_st_dtype_size(dtype);
    if (!esize) return fz_fail(err, FZ_EUSAGE, "tensor '%s': unknown dtype '%s'", name,
                               dtype ? dtype : "(null)");
    if (ndim < 0 || ndim > FZ_ST_MAX_DIMS || (ndim > 0 && !shape))
        return fz_fail(err, FZ_EUSAGE, "tensor '%s': %d dimensions, the limit is %d", name,
                       ndim, FZ_ST_MAX_DIMS);
    size_t want;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || (double)shape[i] > MAX_JSON_INT)
            return fz_fail(err, FZ_EUSAGE, "tensor '%s': bad dimension %" PRId64, name,
                           shape[i]);
    char shs[160];
    fmt_shape(shs, sizeof shs, ndim, shape);
    if (shape_bytes(ndim, shape, esize, &want) < 0)
        return fz_fail(err, FZ_EUSAGE, "tensor '%s': shape %s is too large", name, shs);
    if (want != nbytes)
        return fz_fail(err, FZ_EUSAGE, "tensor '%s': %zu bytes given, shape %s of %s needs %zu",
                       name, nbytes, shs, dtype, want);
    if (nbytes && !data) return fz_fail(err, FZ_EUSAGE, "tensor '%s': no data", name);
    for (int i = 0; i < w->nt; i++)
        if (strcmp(w->t[i].t.name, name) == 0)
            return fz_fail(err, FZ_EUSAGE, "tensor '%s' added twice", name);
    if (w->nt == w->tcap) {
        int cap = w->tcap ? 2 * w->tcap : 16;
        wtensor *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        if (!nt) return fz_fail(err, FZ_ENOMEM, "out of memory");
        w->t = nt;
        w->tcap = cap;
    }
    wtensor *t = &w->t[w->nt++];
    memset(t, 0, sizeof *t);
    memcpy(t->t.name, name, strlen(name) + 1);
    memcpy(t->t.dtype, dtype, strlen(dtype) + 1);
    t->t.ndim = ndim;
    for (int i = 0; i < ndim; i++) t->t.shape[i] = shape[i];
    t->t.nbytes = nbytes;
    t->data = data;
    return 0;
}

int fz_st_add_f32(fz_st_writer *w, const char *name, const float *data, int ndim,
                  const int64_t *shape, fz_err *err)
{
    size_t n;
    if (ndim < 0 || ndim > FZ_ST_MAX_DIMS || (ndim > 0 && !shape))
        return fz_fail(err, FZ_EUSAGE, "tensor '%s': %d dimensions, the limit is %d",
                       name ? name : "", ndim, FZ_ST_MAX_DIMS);
    if (shape_bytes(ndim, shape, sizeof(float), &n) < 0)
        return fz_fail(err, FZ_EUSAGE, "tensor '%s': bad or too large shape", name ? name : "");
    return fz_st_add(w, name, "F32", data, n, ndim, shape, err);
}

int fz_st_set_meta(fz_st_writer *w, const char *key, const char *value, fz_err *err)
{
    if (!key || !value) return fz_fail(err, FZ_EUSAGE, "metadata key and value are required");
    if (strcmp(key, CHECKSUM_KEY) == 0)
        return fz_fail(err, FZ_EUSAGE, "metadata key '%s' is reserved", CHECKSUM_KEY);
    char *v = strdup(value);
    if (!v) return fz_fail(err, FZ_ENOMEM, "out of memory");
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->mkey[i], key) == 0) {
            free(w->mval[i]);
            w->mval[i] = v;
            return 0;
        }
    if (w->nmeta >= FZ_ST_MAX_META - 1) {
        free(v);
        return fz_fail(err, FZ_EUSAGE, "more than %d metadata entries", FZ_ST_MAX_META - 1);
    }
    if (w->nmeta == w->mcap) {
        int cap = w->mcap ? 2 * w->mcap : 8;
        char **k = realloc(w->mkey, (size_t)cap * sizeof *k);
        if (k) w->mkey = k;
        char **vv = k ? realloc(w->mval, (size_t)cap * sizeof *vv) : NULL;
        if (vv) w->mval = vv;
        if (!k || !vv) {
            free(v);
            return fz_fail(err, FZ_ENOMEM, "out of memory");
        }
        w->mcap = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return fz_fail(err, FZ_ENOMEM, "out of memory");
    }
    w->mkey[w->nmeta] = k;
    w->mval[w->nmeta++] = v;
    return 0;
}

/* The header text, padded with spaces so that 8 + its length is a multiple of 8. */
static char *build_header(fz_st_writer *w, uint32_t crc, size_t *hlen, fz_err *err)
{
    fz_sbuf b;
    fz_sbuf_init(&b);
    fz_sbuf_printf(&b, "{\"__metadata__\":{");
    for (int i = 0; i < w->nmeta; i++) {
        fz_sbuf_json_str(&b, w->mkey[i]);
        fz_sbuf_putc(&b, ':');
        fz_sbuf_json_str(&b, w->mval[i]);
        fz_sbuf_putc(&b, ',');
    }
    fz_sbuf_printf(&b, "\"%s\":\"crc32:%08x\"}", CHECKSUM_KEY, (unsigned)crc);
    for (int i = 0; i < w->nt; i++) {
        const fz_st_tensor *t = &w->t[i].t;
        fz_sbuf_putc(&b, ',');
        fz_sbuf_json_str(&b, t->name);
        fz_sbuf_printf(&b, ":{\"dtype\":\"%s\",\"shape\":[", t->dtype);
        for (int d = 0; d < t->ndim; d++) fz_sbuf_printf(&b, "%s%" PRId64, d ? "," : "", t->shape[d]);
        fz_sbuf_printf(&b, "],\"data_offsets\":[%zu,%zu]}", t->offset, t->offset + t->nbytes);
    }
    fz_sbuf_putc(&b, '}');
    while (!b.failed && b.len % 8 != 0) fz_sbuf_putc(&b, ' ');
    *hlen = b.len;
    char *s = fz_sbuf_take(&b);
    if (!s) fz_fail(err, FZ_ENOMEM, "out of memory building the header");
    return s;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* fsync the directory holding path, so that the rename itself is durable. File systems
 * that cannot sync a directory (EINVAL) are not an error. */
static int sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) {
        errno = ENOMEM;
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (rc < 0 && (errno == EINVAL || errno == EROFS)) rc = 0;
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int fz_st_write(fz_st_writer *w, const char *path, fz_err *err)
{
    /* Lay the data out by element size, largest first (8, 4, 2, 1), each size in the
     * order added: the data section starts at a multiple of 8 in the file, so every tensor
     * is aligned to its element size. The header keeps the order added. */
    size_t off = 0;
    uint32_t crc = (uint32_t)crc32(0, Z_NULL, 0);
    for (size_t a = 8; a >= 1; a /= 2)
        for (int i = 0; i < w->nt; i++) {
            if (fz_st_dtype_size(w->t[i].t.dtype) != a) continue;
            w->t[i].t.offset = off;
            if (fz_add_size(off, w->t[i].t.nbytes, &off) < 0)
                return fz_fail(err, FZ_EUSAGE, "%s: data section too large", path);
            crc = crc_update(crc, w->t[i].data, w->t[i].t.nbytes);
        }
    size_t hlen;
    char *hdr = build_header(w, crc, &hlen, err);
    if (!hdr) {
        fz_err_prefix(err, path);
        return -1;
    }
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(hdr);
        return fz_fail(err, FZ_ENOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());

    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        fz_fail(err, fz_errno_code(errno), "%s: %s", tmp, strerror(errno));
        free(hdr);
        free(tmp);
        return -1;
    }
    unsigned char lenbuf[8];
    fz_put_le64(lenbuf, hlen);
    const char *step = "write";
    int rc = write_all(fd, lenbuf, 8);
    if (rc == 0) rc = write_all(fd, hdr, hlen);
    for (size_t a = 8; a >= 1; a /= 2)
        for (int i = 0; rc == 0 && i < w->nt; i++)
            if (fz_st_dtype_size(w->t[i].t.dtype) == a)
                rc = write_all(fd, w->t[i].data, w->t[i].t.nbytes);
    if (rc == 0 && fsync(fd) < 0) step = "fsync", rc = -1;
    int e = errno;
    if (close(fd) < 0 && rc == 0) step = "close", rc = -1, e = errno;
    if (rc == 0 && rename(tmp, path) < 0) step = "rename", rc = -1, e = errno;
    if (rc < 0) {
        unlink(tmp);
        /* A full disk is the common case: keep its message plain. */
        if (fz_errno_code(e) == FZ_ENOSPC)
            fz_fail(err, FZ_ENOSPC, "%s: %s", path, strerror(e));
        else
            fz_fail(err, fz_errno_code(e), "%s: %s: %s", path, step, strerror(e));
    } else if (sync_dir(path) < 0) {
        rc = fz_fail(err, fz_errno_code(errno), "%s: fsync of the directory: %s", path,
                     strerror(errno));
    }
    free(hdr);
    free(tmp);
    return rc;
}
