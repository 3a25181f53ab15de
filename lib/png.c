/* png.c - the RGB canvas and the PNG writer. */
#include "canvas.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fz_canvas_init(fz_canvas *c, int w, int h, uint32_t bg, fz_err *err)
{
    memset(c, 0, sizeof *c);
    if (w < 1 || h < 1 || w > FZ_CANVAS_MAX || h > FZ_CANVAS_MAX)
        return fz_fail(err, FZ_EUSAGE, "picture of %dx%d pixels (each side must be 1 to %d)", w,
                       h, FZ_CANVAS_MAX);
    size_t n = (size_t)w * (size_t)h * 3; /* at most 16384² * 3: no overflow */
    if (!(c->px = fz_malloc(n, err))) return -1;
    c->w = w;
    c->h = h;
    fz_canvas_unclip(c);
    unsigned char r = (unsigned char)(bg >> 16), g = (unsigned char)(bg >> 8), b = (unsigned char)bg;
    for (size_t i = 0; i < n; i += 3) {
        c->px[i] = r;
        c->px[i + 1] = g;
        c->px[i + 2] = b;
    }
    return 0;
}

void fz_canvas_free(fz_canvas *c)
{
    free(c->px);
    memset(c, 0, sizeof *c);
}

void fz_canvas_clip(fz_canvas *c, int x0, int y0, int x1, int y1)
{
    c->clip_x0 = x0 < 0 ? 0 : x0;
    c->clip_y0 = y0 < 0 ? 0 : y0;
    c->clip_x1 = x1 > c->w ? c->w : x1;
    c->clip_y1 = y1 > c->h ? c->h : y1;
}

void fz_canvas_unclip(fz_canvas *c) { fz_canvas_clip(c, 0, 0, c->w, c->h); }

uint32_t fz_canvas_get(const fz_canvas *c, int x, int y)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return 0;
    const unsigned char *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

/* ---- writing ---- */

/* What libpng's callbacks report back: the errno of a failed write, or libpng's reason. */
typedef struct wctx {
    FILE *f;
    int errnum;
    char msg[200];
} wctx;

static void on_error(png_structp png, png_const_charp msg)
{
    wctx *w = png_get_error_ptr(png);
    snprintf(w->msg, sizeof w->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* lib/ never prints: libpng's warnings (none expected when writing) are dropped. */
static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void on_write(png_structp png, png_bytep data, png_size_t n)
{
    wctx *w = png_get_io_ptr(png);
    errno = 0;
    if (fwrite(data, 1, n, w->f) != n) {
        w->errnum = errno ? errno : EIO;
        png_error(png, "write failed");
    }
}

static void on_flush(png_structp png) { (void)png; }

static int encode(const fz_canvas *c, wctx *w)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, w, on_error, on_warning);
    if (!png) {
        snprintf(w->msg, sizeof w->msg, "cannot start libpng");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(w->msg, sizeof w->msg, "cannot start libpng");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_set_write_fn(png, w, on_write, on_flush);
    png_set_IHDR(png, info, (png_uint_32)c->w, (png_uint_32)c->h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < c->h; y++) png_write_row(png, c->px + (size_t)y * (size_t)c->w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

/* Encode into w->f and flush; on failure fill err naming the file. */
static int encode_to(const fz_canvas *c, wctx *w, const char *name, fz_err *err)
{
    int rc = encode(c, w);
    if (rc == 0 && fflush(w->f)) w->errnum = errno ? errno : EIO, rc = -1;
    if (rc == 0 && ferror(w->f)) w->errnum = EIO, rc = -1;
    if (rc == 0) return 0;
    if (w->errnum)
        return fz_fail(err, fz_errno_code(w->errnum), "%s: %s", name, strerror(w->errnum));
    return fz_fail(err, FZ_EIO, "%s: PNG: %s", name, w->msg);
}

int fz_png_write(const char *path, const fz_canvas *c, fz_err *err)
{
    wctx w = {0};
    if (!c->px || c->w < 1 || c->h < 1)
        return fz_fail(err, FZ_EUSAGE, "%s: empty picture", fz_out_name(path));
    if (!path || strcmp(path, "-") == 0) {
        w.f = stdout;
        return encode_to(c, &w, "<stdout>", err);
    }
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        /* A device or a pipe cannot be replaced by a rename: write to it in place. */
        if (S_ISDIR(st.st_mode)) return fz_fail(err, FZ_EIO, "%s: is a directory", path);
        if (!(w.f = fopen(path, "wb"))) return fz_fail(err, fz_errno_code(errno), "%s: %s", path, strerror(errno));
        int rc = encode_to(c, &w, path, err);
        if (fclose(w.f) && rc == 0)
            rc = fz_fail(err, fz_errno_code(errno), "%s: %s", path, strerror(errno));
        return rc;
    }
    size_t len = strlen(path), tlen;
    if (fz_add_size(len, 16, &tlen)) return fz_fail(err, FZ_EUSAGE, "output path too long");
    char *tmp = fz_malloc(tlen, err);
    if (!tmp) return -1;
    snprintf(tmp, tlen, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return fz_fail(err, fz_errno_code(e), "%s: %s", path, strerror(e));
    }
    /* mkstemp makes the file 0600; a picture is as readable as any new file. */
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um);
    if (!(w.f = fdopen(fd, "wb"))) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        return fz_fail(err, fz_errno_code(e), "%s: %s", path, strerror(e));
    }
    int rc = encode_to(c, &w, path, err);
    if (fclose(w.f) && rc == 0)
        rc = fz_fail(err, fz_errno_code(errno), "%s: %s", path, strerror(errno));
    if (rc == 0 && rename(tmp, path))
        rc = fz_fail(err, fz_errno_code(errno), "%s: %s", path, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}
