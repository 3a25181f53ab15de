/* util.h - errors, checked number parsing, small helpers shared by lib/ and tools/.
 *
 * Error convention: every lib/ function that can fail takes a `fz_err *` as its last
 * argument, returns -1 (or NULL) on failure and leaves a one-line reason in it.
 * lib/ never prints and never exits; tools print "tool: reason" and exit.
 */
#ifndef FZ_UTIL_H
#define FZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Error codes that change what a tool does (most errors are FZ_EDATA). */
enum {
    FZ_OK = 0,
    FZ_EDATA = 1,  /* bad input: format, shape, value */
    FZ_EIO = 2,    /* read/write failure other than the two below */
    FZ_EPIPE = 3,  /* downstream closed the pipe: tools end quietly */
    FZ_ENOSPC = 4, /* disk full */
    FZ_ENOMEM = 5,
    FZ_EUSAGE = 6  /* caller asked for something impossible (bad option value) */
};

typedef struct fz_err {
    int code;
    char msg[512];
} fz_err;

/* Set err (if not NULL) to code and a printf-formatted reason; returns -1. */
int fz_fail(fz_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix the existing reason with "prefix: " (used to add a file name). */
void fz_err_prefix(fz_err *err, const char *prefix);
/* Map errno after a failed write to a code: EPIPE, ENOSPC, else EIO. */
int fz_errno_code(int errnum);

/* Checked parsers: the whole string must be a number within [lo, hi].
 * Return 0 on success, -1 with a reason naming `what` otherwise. */
int fz_parse_long(const char *s, long lo, long hi, long *out, const char *what, fz_err *err);
int fz_parse_double(const char *s, double lo, double hi, double *out, const char *what,
                    fz_err *err);

/* Overflow-checked size arithmetic: return 0 and set *out, or -1 on overflow. */
int fz_mul_size(size_t a, size_t b, size_t *out);
int fz_add_size(size_t a, size_t b, size_t *out);

/* Allocation that fails with a reason instead of returning unchecked NULL. */
void *fz_malloc(size_t n, fz_err *err);
void *fz_calloc(size_t count, size_t size, fz_err *err);
/* Write zeros over n bytes at p. For large buffers that a hot loop reads before it writes
 * (gradients it adds into, an optimiser's moments): calloc's fresh pages are all mapped to
 * the kernel's shared zero page until written, so the loop's first pass would take one
 * copy-on-write fault per 4 KB page, each with a TLB shootdown to the other cores. */
void fz_touch_zero(void *p, size_t n);

/* Display name of a path argument: "-" or NULL is "<stdin>"/"<stdout>". */
const char *fz_in_name(const char *path);
const char *fz_out_name(const char *path);

/* Read exactly n bytes; returns the number read (< n only at end of file or on error,
 * distinguished by ferror). */
size_t fz_read_full(FILE *f, void *buf, size_t n);

/* Little-endian integer helpers for binary formats (byte by byte, no host assumptions). */
static inline uint16_t fz_le16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t fz_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t fz_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline void fz_put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

#endif
