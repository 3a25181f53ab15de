#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int fz_fail(fz_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return -1;
}

void fz_err_prefix(fz_err *err, const char *prefix)
{
    if (!err || !prefix) return;
    char tmp[sizeof err->msg];
    size_t n = strlen(prefix);
    if (n > 200) n = 200;
    memcpy(tmp, prefix, n);
    tmp[n] = ':';
    tmp[n + 1] = ' ';
    size_t m = strlen(err->msg);
    if (m > sizeof tmp - n - 3) m = sizeof tmp - n - 3;
    memcpy(tmp + n + 2, err->msg, m);
    tmp[n + 2 + m] = '\0';
    memcpy(err->msg, tmp, sizeof tmp);
}

int fz_errno_code(int errnum)
{
    if (errnum == EPIPE) return FZ_EPIPE;
    if (errnum == ENOSPC || errnum == EDQUOT) return FZ_ENOSPC;
    if (errnum == ENOMEM) return FZ_ENOMEM;
    return FZ_EIO;
}

int fz_parse_long(const char *s, long lo, long hi, long *out, const char *what, fz_err *err)
{
    if (!s || !*s) return fz_fail(err, FZ_EUSAGE, "%s: empty number", what);
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno == ERANGE || *end != '\0' || end == s)
        return fz_fail(err, FZ_EUSAGE, "%s: '%s' is not an integer", what, s);
    if (v < lo || v > hi)
        return fz_fail(err, FZ_EUSAGE, "%s: %ld is out of range [%ld, %ld]", what, v, lo, hi);
    *out = v;
    return 0;
}

int fz_parse_double(const char *s, double lo, double hi, double *out, const char *what,
                    fz_err *err)
{
    if (!s || !*s) return fz_fail(err, FZ_EUSAGE, "%s: empty number", what);
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno == ERANGE || *end != '\0' || end == s || !isfinite(v))
        return fz_fail(err, FZ_EUSAGE, "%s: '%s' is not a finite number", what, s);
    if (v < lo || v > hi)
        return fz_fail(err, FZ_EUSAGE, "%s: %g is out of range [%g, %g]", what, v, lo, hi);
    *out = v;
    return 0;
}

int fz_mul_size(size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

int fz_add_size(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a) return -1;
    *out = a + b;
    return 0;
}

void *fz_malloc(size_t n, fz_err *err)
{
    void *p = malloc(n ? n : 1);
    if (!p) fz_fail(err, FZ_ENOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *fz_calloc(size_t count, size_t size, fz_err *err)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) fz_fail(err, FZ_ENOMEM, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void fz_touch_zero(void *p, size_t n)
{
    if (p && n) memset(p, 0, n);
}

const char *fz_in_name(const char *path)
{
    return (!path || strcmp(path, "-") == 0) ? "<stdin>" : path;
}

const char *fz_out_name(const char *path)
{
    return (!path || strcmp(path, "-") == 0) ? "<stdout>" : path;
}

size_t fz_read_full(FILE *f, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t k = fread((char *)buf + got, 1, n - got, f);
        if (k == 0) break;
        got += k;
    }
    return got;
}
