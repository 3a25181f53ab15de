/* archive_in.c - bytes of files and archive members, read with libarchive (never extracted
 * to disk). Formats are enabled one by one: Debian's libarchive 3.6.2 with
 * archive_read_support_format_all() takes a plain CSV for an "mtree" archive. */
#include "input.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void fz_blob_free(fz_blob *b)
{
    if (!b) return;
    free(b->data);
    free(b->name);
    memset(b, 0, sizeof *b);
}

static char *dupstr(const char *s, fz_err *err)
{
    size_t n = strlen(s) + 1;
    char *p = fz_malloc(n, err);
    if (p) memcpy(p, s, n);
    return p;
}

static struct archive *open_archive(const char *path, fz_err *err)
{
    struct archive *a = archive_read_new();
    if (!a) {
        fz_fail(err, FZ_ENOMEM, "%s: cannot create an archive reader", fz_in_name(path));
        return NULL;
    }
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_none(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_zip(a);
    /* Raw bids lowest: it only wins for a plain or compressed single file. */
    archive_read_support_format_raw(a);
    int r;
    if (!path || strcmp(path, "-") == 0)
        r = archive_read_open_fd(a, 0, 1 << 20);
    else
        r = archive_read_open_filename(a, path, 1 << 20);
    if (r != ARCHIVE_OK) {
        int e = archive_errno(a);
        const char *why = e > 0 && e != EILSEQ ? strerror(e)
                                                                  : archive_error_string(a);
        struct stat st;
        /* libarchive cannot tell the format of zero bytes; say what is wrong instead */
        if (e == EILSEQ && path && strcmp(path, "-") != 0 &&
            stat(path, &st) == 0 && st.st_size == 0)
            why = "empty file";
        fz_fail(err, e == ENOENT ? FZ_EIO : FZ_EDATA, "%s: %s", fz_in_name(path),
                why ? why : "cannot open");
        archive_read_free(a);
        return NULL;
    }
    return a;
}

static int archive_fail(struct archive *a, const char *path, const char *member, fz_err *err)
{
    const char *why = archive_error_string(a);
    if (!why) why = "read error";
    if (member) return fz_fail(err, FZ_EDATA, "%s: %s: %s", fz_in_name(path), member, why);
    return fz_fail(err, FZ_EDATA, "%s: %s", fz_in_name(path), why);
}

/* Bytes of the input behind `a` read so far: the compressed size, not the expanded one. A
 * file counts whole (its size bounds what libarchive reads, whatever order a zip reader
 * seeks in); stdin counts what libarchive has taken from it. */
static uint64_t input_bytes(struct archive *a, const char *path)
{
    la_int64_t n = archive_filter_bytes(a, -1);
    uint64_t got = n > 0 ? (uint64_t)n : 0;
    struct stat st;
    if (path && strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size > got)
        got = (uint64_t)st.st_size;
    return got;
}

/* Most bytes a member may take in memory after `in` bytes of input: FZ_INPUT_FREE_BYTES,
 * or FZ_INPUT_MAX_RATIO per byte of input, at most FZ_INPUT_MAX_BYTES. */
static size_t member_limit(uint64_t in)
{
    uint64_t lim = in > FZ_INPUT_MAX_BYTES / FZ_INPUT_MAX_RATIO ? FZ_INPUT_MAX_BYTES
                                                                 : in * FZ_INPUT_MAX_RATIO;
    if (lim < FZ_INPUT_FREE_BYTES) lim = FZ_INPUT_FREE_BYTES;
    return (size_t)lim;
}

/* Read the current entry's data into b->data/len (b->name is left alone).
 *
 * Nothing the archive claims is believed until the data arrives: the header's size only
 * sizes the first allocation (at most 64 MiB), and the buffer grows as blocks come. What
 * arrives is bounded too: a sparse tar entry reports holes (read as zeros) without bytes
 * behind them, and a compressed member expands (bzip2 turns 250 bytes into 300 MB of
 * zeros). Both are refused once the member would pass member_limit() of the input read, so
 * a small archive cannot make fz allocate gigabytes. */
static int read_entry(struct archive *a, struct archive_entry *e, const char *path,
                      const char *member, fz_blob *b, fz_err *err)
{
    size_t cap = 1 << 16, len = 0;
    if (archive_entry_size_is_set(e)) {
        int64_t sz = archive_entry_size(e);
        if (sz < 0 || (uint64_t)sz > FZ_INPUT_MAX_BYTES)
            return fz_fail(err, FZ_EDATA, "%s: %s: size %lld is over the limit of %zu bytes",
                           fz_in_name(path), member, (long long)sz, FZ_INPUT_MAX_BYTES);
        /* The header's size is a claim: allocate at most 64 MiB up front and let the loop
         * grow the buffer as data really arrives (a 300-byte zip may claim 3 GB). */
        if ((size_t)sz > 0) cap = (size_t)sz < ((size_t)64 << 20) ? (size_t)sz : (size_t)64 << 20;
    }
    unsigned char *buf = fz_malloc(cap, err);
    if (!buf) return -1;
    for (;;) {
        const void *blk;
        size_t size;
        la_int64_t off;
        int r = archive_read_data_block(a, &blk, &size, &off);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) {
            free(buf);
            return archive_fail(a, path, member, err);
        }
        size_t end;
        if (off < 0 || (uint64_t)off > FZ_INPUT_MAX_BYTES || fz_add_size((size_t)off, size, &end) ||
            end > FZ_INPUT_MAX_BYTES) {
            free(buf);
            return fz_fail(err, FZ_EDATA, "%s: %s: data over the limit of %zu bytes",
                           fz_in_name(path), member, FZ_INPUT_MAX_BYTES);
        }
        if (end > cap) {
            uint64_t in = input_bytes(a, path);
            size_t lim = member_limit(in);
            if (end > lim) {
                free(buf);
                return fz_fail(err, FZ_EDATA,
                               "%s: %s: expands to over %zu bytes from %llu bytes of input "
                               "(limit: %zu MiB, or %d bytes per byte of input)",
                               fz_in_name(path), member, lim, (unsigned long long)in,
                               FZ_INPUT_FREE_BYTES >> 20, FZ_INPUT_MAX_RATIO);
            }
            size_t ncap = cap;
            while (ncap < end) ncap = ncap > lim / 2 ? lim : ncap * 2;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                return fz_fail(err, FZ_ENOMEM, "%s: %s: out of memory (%zu bytes)",
                               fz_in_name(path), member, ncap);
            }
            buf = nb;
            cap = ncap;
        }
        /* Sparse entries leave holes: they read as zeros. */
        if ((size_t)off > len) memset(buf + len, 0, (size_t)off - len);
        if (size) memcpy(buf + off, blk, size);
        if (end > len) len = end;
    }
    b->data = buf;
    b->len = len;
    return 0;
}

/* Name of the single member of a non-archive file: the file name itself. */
static const char *entry_name(struct archive *a, struct archive_entry *e, const char *path)
{
    if (archive_format(a) == ARCHIVE_FORMAT_RAW) return fz_in_name(path);
    const char *n = archive_entry_pathname(e);
    return n ? n : "";
}

static int is_regular(struct archive *a, struct archive_entry *e)
{
    return archive_format(a) == ARCHIVE_FORMAT_RAW || archive_entry_filetype(e) == AE_IFREG;
}

int fz_input_is_archive(const char *path, fz_err *err)
{
    struct archive *a = open_archive(path, err);
    if (!a) return -1;
    struct archive_entry *e;
    int r = archive_read_next_header(a, &e);
    int res;
    if (r == ARCHIVE_EOF) res = 0;
    else if (r < ARCHIVE_WARN) res = archive_fail(a, path, NULL, err);
    else res = archive_format(a) != ARCHIVE_FORMAT_RAW;
    archive_read_free(a);
    return res;
}

int fz_input_find(const char *path, const char *const *pat, int npat, fz_blob *out,
                  fz_err *err)
{
    for (int i = 0; i < npat; i++) memset(&out[i], 0, sizeof out[i]);
    struct archive *a = open_archive(path, err);
    if (!a) return -1;
    int found = 0, rc = -1, raw = 0;
    struct archive_entry *e;
    while (found < npat) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) {
            archive_fail(a, path, NULL, err);
            goto done;
        }
        raw = archive_format(a) == ARCHIVE_FORMAT_RAW;
        if (!is_regular(a, e)) continue;
        const char *name = entry_name(a, e, path);
        int want = -1;
        for (int i = 0; i < npat; i++)
            if (!out[i].name && (raw || fnmatch(pat[i], name, 0) == 0)) {
                want = i;
                break;
            }
        if (want < 0) continue;
        fz_blob b = {0};
        if (read_entry(a, e, path, name, &b, err)) goto done;
        if (!(b.name = dupstr(name, err))) {
            free(b.data);
            goto done;
        }
        out[want] = b;
        found++;
        /* A plain file is one member: every pattern gets a copy of it. */
        for (int i = want + 1; raw && i < npat; i++) {
            if (out[i].name) continue;
            fz_blob c = {0};
            c.data = fz_malloc(b.len, err);
            c.name = dupstr(name, err);
            if (!c.data || !c.name) {
                fz_blob_free(&c);
                goto done;
            }
            memcpy(c.data, b.data, b.len);
            c.len = b.len;
            out[i] = c;
            found++;
        }
    }
    if (found < npat) {
        for (int i = 0; i < npat; i++)
            if (!out[i].name) {
                if (raw || found == 0)
                    fz_fail(err, FZ_EDATA, "%s: no member matching '%s'%s", fz_in_name(path),
                            pat[i], raw ? " (not an archive)" : "");
                else
                    fz_fail(err, FZ_EDATA, "%s: no member matching '%s'", fz_in_name(path),
                            pat[i]);
                break;
            }
        goto done;
    }
    rc = 0;
done:
    archive_read_free(a);
    if (rc)
        for (int i = 0; i < npat; i++) fz_blob_free(&out[i]);
    return rc;
}

int fz_input_each(const char *path, const char *const *pat, fz_member_fn fn, void *ctx,
                  fz_err *err)
{
    struct archive *a = open_archive(path, err);
    if (!a) return -1;
    int rc = -1;
    struct archive_entry *e;
    for (;;) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) {
            archive_fail(a, path, NULL, err);
            goto done;
        }
        if (!is_regular(a, e)) continue;
        const char *name = entry_name(a, e, path);
        /* patterns are lower case; compare against the lower-cased name */
        char low[1024];
        size_t k = 0;
        for (; name[k] && k < sizeof low - 1; k++) low[k] = (char)tolower((unsigned char)name[k]);
        low[k] = 0;
        int match = 0;
        for (int i = 0; pat[i] && !match; i++) match = fnmatch(pat[i], low, 0) == 0;
        if (!match) continue;
        fz_blob b = {0};
        if (read_entry(a, e, path, name, &b, err)) goto done;
        if (!(b.name = dupstr(name, err))) {
            free(b.data);
            goto done;
        }
        int fr = fn(ctx, &b, err);
        fz_blob_free(&b);
        if (fr) goto done;
    }
    rc = 0;
done:
    archive_read_free(a);
    return rc;
}

int fz_read_file(const char *path, fz_blob *out, fz_err *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return fz_fail(err, FZ_EIO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = fz_malloc(cap, err);
    if (!buf) {
        fclose(f);
        return -1;
    }
    for (;;) {
        if (len == cap) {
            if (cap >= FZ_INPUT_MAX_BYTES) {
                free(buf);
                fclose(f);
                return fz_fail(err, FZ_EDATA, "%s: over the limit of %zu bytes", path,
                               FZ_INPUT_MAX_BYTES);
            }
            size_t ncap = cap > FZ_INPUT_MAX_BYTES / 2 ? FZ_INPUT_MAX_BYTES : cap * 2;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return fz_fail(err, FZ_ENOMEM, "%s: out of memory (%zu bytes)", path, ncap);
            }
            buf = nb;
            cap = ncap;
        }
        size_t k = fread(buf + len, 1, cap - len, f);
        len += k;
        if (k == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return fz_fail(err, FZ_EIO, "%s: read error", path);
    }
    out->data = buf;
    out->len = len;
    out->name = dupstr(path, err);
    if (!out->name) {
        free(buf);
        out->data = NULL;
        return -1;
    }
    return 0;
}
