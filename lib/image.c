/* image.c - PNG (libpng, from memory) and PGM/PPM decoding, and data sets of images read
 * from a directory tree or an archive, labelled by their parent folder. */
#include "input.h"

#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

void fz_image_free(fz_image *im)
{
    if (!im) return;
    free(im->px);
    memset(im, 0, sizeof *im);
}

static char *dupstr(const char *s, fz_err *err)
{
    size_t n = strlen(s) + 1;
    char *p = fz_malloc(n, err);
    if (p) memcpy(p, s, n);
    return p;
}

/* Allocate (c, h, w) floats after checking the limits. */
static int image_alloc(fz_image *im, int c, long h, long w, fz_err *err)
{
    if (w < 1 || h < 1 || w > FZ_IMAGE_MAX_SIDE || h > FZ_IMAGE_MAX_SIDE ||
        (size_t)w * (size_t)h > FZ_IMAGE_MAX_PIXELS)
        return fz_fail(err, FZ_EDATA, "image size %ldx%ld is out of range (1 to %d a side, "
                       "%zu pixels)", w, h, FZ_IMAGE_MAX_SIDE, FZ_IMAGE_MAX_PIXELS);
    im->c = c;
    im->h = (int)h;
    im->w = (int)w;
    im->px = fz_malloc((size_t)c * (size_t)h * (size_t)w * sizeof(float), err);
    return im->px ? 0 : -1;
}

/* RGB (3, h, w) to gray (1, h, w) in place, ITU-R BT.601 luma weights. */
static void to_gray(fz_image *im)
{
    size_t hw = (size_t)im->h * im->w;
    float *r = im->px, *g = r + hw, *b = g + hw;
    for (size_t i = 0; i < hw; i++) r[i] = 0.299f * r[i] + 0.587f * g[i] + 0.114f * b[i];
    im->c = 1;
}

/* ------------------------------------------------------------------ PNG */

typedef struct png_ctx {
    const unsigned char *buf;
    size_t len, pos;
    char msg[200];
} png_ctx;

static void png_mem_read(png_structp png, png_bytep out, png_size_t n)
{
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) png_error(png, "truncated PNG");
    memcpy(out, c->buf + c->pos, n);
    c->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* warnings (unknown chunks, odd profiles) do not stop a decode */
}

int fz_png_decode(const unsigned char *buf, size_t len, int gray, fz_image *out, fz_err *err)
{
    memset(out, 0, sizeof *out);
    if (len < 8 || png_sig_cmp(buf, 0, 8) != 0)
        return fz_fail(err, FZ_EDATA, "not a PNG file (bad signature)");
    png_ctx ctx = {buf, len, 0, ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error,
                                             png_on_warning);
    if (!png) return fz_fail(err, FZ_ENOMEM, "cannot create a PNG reader");
    png_infop info = png_create_info_struct(png);
    unsigned char *volatile raw = NULL;
    png_bytep *volatile rows = NULL;
    fz_image im = {0};
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return fz_fail(err, FZ_ENOMEM, "cannot create a PNG reader");
    }
    if (setjmp(png_jmpbuf(png))) {
        free(raw);
        free(rows);
        fz_image_free(&im);
        png_destroy_read_struct(&png, &info, NULL);
        return fz_fail(err, FZ_EDATA, "bad PNG: %s", ctx.msg[0] ? ctx.msg : "decode error");
    }
    png_set_read_fn(png, &ctx, png_mem_read);
    png_set_user_limits(png, FZ_IMAGE_MAX_SIDE, FZ_IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(png, (png_alloc_size_t)64 << 20);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), ctype = png_get_color_type(png, info);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (ctype & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int ch = png_get_channels(png, info);
    int bytes = png_get_bit_depth(png, info) == 16 ? 2 : 1;
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((ch != 1 && ch != 3) || (size_t)w * h > FZ_IMAGE_MAX_PIXELS ||
        rowbytes != (size_t)w * ch * bytes) {
        snprintf(ctx.msg, sizeof ctx.msg, "unsupported layout (%d channels, %u bytes a row)", ch,
                 (unsigned)rowbytes);
        png_longjmp(png, 1);
    }
    if (image_alloc(&im, ch, h, w, err)) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    raw = malloc(rowbytes * h);
    rows = malloc(h * sizeof *rows);
    if (!raw || !rows) {
        snprintf(ctx.msg, sizeof ctx.msg, "out of memory");
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = raw + y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    /* interleaved (h, w, ch) big-endian samples -> (ch, h, w) floats on 0..255 */
    size_t hw = (size_t)w * h;
    for (size_t i = 0; i < hw; i++)
        for (int c = 0; c < ch; c++) {
            const unsigned char *s = raw + (i * ch + c) * bytes;
            im.px[c * hw + i] = bytes == 2 ? (float)((s[0] << 8) | s[1]) * (255.0f / 65535.0f)
                                           : (float)s[0];
        }
    free(raw);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    if (gray && im.c == 3) to_gray(&im);
    *out = im;
    return 0;
}

/* ------------------------------------------------------------------ PGM / PPM */

/* Skip whitespace and '#' comments. */
static void pnm_space(const unsigned char *b, size_t len, size_t *pos)
{
    while (*pos < len) {
        unsigned char ch = b[*pos];
        if (ch == '#') {
            while (*pos < len && b[*pos] != '\n' && b[*pos] != '\r') (*pos)++;
        } else if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' ||
                   ch == '\f') {
            (*pos)++;
        } else {
            break;
        }
    }
}

/* A decimal number of at most 9 digits (header fields and ASCII samples). */
static int pnm_uint(const unsigned char *b, size_t len, size_t *pos, long *out)
{
    pnm_space(b, len, pos);
    long v = 0;
    int nd = 0;
    while (*pos < len && b[*pos] >= '0' && b[*pos] <= '9') {
        if (++nd > 9) return -1;
        v = v * 10 + (b[*pos] - '0');
        (*pos)++;
    }
    if (nd == 0) return -1;
    if (*pos < len && !(b[*pos] == ' ' || b[*pos] == '\t' || b[*pos] == '\n' ||
                        b[*pos] == '\r' || b[*pos] == '#' || b[*pos] == '\v' || b[*pos] == '\f'))
        return -1;
    *out = v;
    return 0;
}

int fz_pnm_decode(const unsigned char *buf, size_t len, int gray, fz_image *out, fz_err *err)
{
    memset(out, 0, sizeof *out);
    if (len < 2 || buf[0] != 'P' || !(buf[1] == '2' || buf[1] == '3' || buf[1] == '5' ||
                                      buf[1] == '6'))
        return fz_fail(err, FZ_EDATA, "not a PGM/PPM file (expected P2, P3, P5 or P6)");
    int binary = buf[1] == '5' || buf[1] == '6';
    int ch = (buf[1] == '3' || buf[1] == '6') ? 3 : 1;
    size_t pos = 2;
    long w, h, maxval;
    if (pnm_uint(buf, len, &pos, &w) || pnm_uint(buf, len, &pos, &h) ||
        pnm_uint(buf, len, &pos, &maxval))
        return fz_fail(err, FZ_EDATA, "bad or truncated P%c header (width height maxval)",
                       buf[1]);
    if (maxval < 1 || maxval > 65535)
        return fz_fail(err, FZ_EDATA, "PNM maxval %ld is out of range (1 to 65535)", maxval);
    fz_image im = {0};
    if (image_alloc(&im, ch, h, w, err)) return -1;
    size_t hw = (size_t)w * h, n = hw * ch;
    float scale = 255.0f / (float)maxval;
    if (binary) {
        /* exactly one whitespace byte separates the header from the samples */
        if (pos >= len) {
            fz_image_free(&im);
            return fz_fail(err, FZ_EDATA, "truncated P%c header", buf[1]);
        }
        pos++;
        size_t bps = maxval > 255 ? 2 : 1, need = n * bps, have = len - pos;
        if (have < need) {
            fz_image_free(&im);
            return fz_fail(err, FZ_EDATA, "truncated P%c data (expected %zu bytes, got %zu)",
                           buf[1], need, have);
        }
        const unsigned char *s = buf + pos;
        for (size_t i = 0; i < hw; i++)
            for (int c = 0; c < ch; c++) {
                size_t k = (i * ch + c) * bps;
                long v = bps == 2 ? (s[k] << 8) | s[k + 1] : s[k];
                if (v > maxval) {
                    fz_image_free(&im);
                    return fz_fail(err, FZ_EDATA, "PNM sample %ld is over maxval %ld", v,
                                   maxval);
                }
                im.px[c * hw + i] = (float)v * scale;
            }
        pos += need;
    } else {
        for (size_t i = 0; i < hw; i++)
            for (int c = 0; c < ch; c++) {
                long v;
                if (pnm_uint(buf, len, &pos, &v) || v > maxval) {
                    fz_image_free(&im);
                    return fz_fail(err, FZ_EDATA, "bad or missing P%c sample %zu of %zu "
                                   "(0 to %ld)", buf[1], i * ch + c + 1, n, maxval);
                }
                im.px[c * hw + i] = (float)v * scale;
            }
    }
    pnm_space(buf, len, &pos);
    if (pos != len) {
        fz_image_free(&im);
        return fz_fail(err, FZ_EDATA, "%zu trailing bytes after the P%c image", len - pos,
                       buf[1]);
    }
    if (gray && im.c == 3) to_gray(&im);
    *out = im;
    return 0;
}

int fz_image_decode(const unsigned char *buf, size_t len, int gray, fz_image *out,
                    fz_err *err)
{
    if (len >= 1 && buf[0] == 0x89) return fz_png_decode(buf, len, gray, out, err);
    if (len >= 1 && buf[0] == 'P') return fz_pnm_decode(buf, len, gray, out, err);
    memset(out, 0, sizeof *out);
    return fz_fail(err, FZ_EDATA, "not a PNG or PGM/PPM image");
}

/* ------------------------------------------------------------------ image data sets */

typedef struct img_item {
    char *path; /* as shown in errors and the 'path' field */
    char *cls;  /* parent folder name or NULL */
    size_t row; /* where its pixels are in acc.px */
} img_item;

typedef struct img_acc {
    img_item *it;
    size_t n, cap;
    float *px; /* (n, d) in arrival order */
    size_t pxcap;
    int c, h, w;
    char *first; /* path of the first image: the shape every other one must have */
    int gray;
    const char *archive; /* archive path when reading members, else NULL */
} img_acc;

static const char *const img_pats[] = {"*.png", "*.pgm", "*.ppm", "*.pnm", NULL};

/* Parent folder name of a '/'-separated path below the root, or NULL at the top. */
static char *parent_name(const char *rel, fz_err *err, int *fail)
{
    *fail = 0;
    const char *slash = strrchr(rel, '/');
    if (!slash) return NULL;
    const char *s = slash;
    while (s > rel && s[-1] != '/') s--;
    size_t n = (size_t)(slash - s);
    /* "./x.png" (tar of ".") is at the top too */
    if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return NULL;
    char *p = fz_malloc(n + 1, err);
    if (!p) {
        *fail = 1;
        return NULL;
    }
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static int acc_add(img_acc *a, const char *path, const char *rel, const unsigned char *buf,
                   size_t len, fz_err *err)
{
    fz_image im;
    if (fz_image_decode(buf, len, a->gray, &im, err)) return -1;
    if (a->n == 0) {
        a->c = im.c;
        a->h = im.h;
        a->w = im.w;
        if (!(a->first = dupstr(path, err))) goto fail;
    } else if (im.c != a->c || im.h != a->h || im.w != a->w) {
        fz_fail(err, FZ_EDATA, "image is %dx%dx%d (CxHxW), expected %dx%dx%d like %s", im.c,
                im.h, im.w, a->c, a->h, a->w, a->first);
        goto fail;
    }
    size_t d = (size_t)im.c * im.h * im.w, need;
    if (fz_mul_size(a->n + 1, d, &need) || need > FZ_INPUT_MAX_BYTES / sizeof(float)) {
        fz_fail(err, FZ_EDATA, "too many pixels in all (limit %zu bytes)", FZ_INPUT_MAX_BYTES);
        goto fail;
    }
    if (need > a->pxcap) {
        size_t nc = a->pxcap ? a->pxcap * 2 : d * 64;
        if (nc < need) nc = need;
        float *np = realloc(a->px, nc * sizeof *np);
        if (!np) {
            fz_fail(err, FZ_ENOMEM, "out of memory (%zu floats)", nc);
            goto fail;
        }
        a->px = np;
        a->pxcap = nc;
    }
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        img_item *ni = realloc(a->it, nc * sizeof *ni);
        if (!ni) {
            fz_fail(err, FZ_ENOMEM, "out of memory");
            goto fail;
        }
        a->it = ni;
        a->cap = nc;
    }
    img_item *it = &a->it[a->n];
    int pf;
    it->cls = parent_name(rel, err, &pf);
    if (pf) goto fail;
    if (!(it->path = dupstr(path, err))) {
        free(it->cls);
        goto fail;
    }
    it->row = a->n;
    memcpy(a->px + a->n * d, im.px, d * sizeof(float));
    a->n++;
    fz_image_free(&im);
    return 0;
fail:
    fz_image_free(&im);
    return -1;
}

static int member_cb(void *ctx, fz_blob *b, fz_err *err)
{
    img_acc *a = ctx;
    /* hidden members (".x.png", "__MACOSX/._x.png" resource forks) are skipped, as in
     * directories */
    const char *base = strrchr(b->name, '/');
    base = base ? base + 1 : b->name;
    if (base[0] == '.' || strncmp(b->name, "__MACOSX/", 9) == 0) return 0;
    if (acc_add(a, b->name, b->name, b->data, b->len, err)) {
        fz_err_prefix(err, b->name);
        fz_err_prefix(err, fz_in_name(a->archive));
        return -1;
    }
    return 0;
}

static int cmp_cstr(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int has_img_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    return strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".pgm") == 0 ||
           strcasecmp(dot, ".ppm") == 0 || strcasecmp(dot, ".pnm") == 0;
}

/* Walk dir in sorted order; rel is the path below the root ("" at the root). */
static int walk(img_acc *a, const char *root, const char *rel, int depth, fz_err *err)
{
    if (depth > 32) return fz_fail(err, FZ_EDATA, "%s/%s: directories nested too deep", root, rel);
    char dpath[4096];
    if ((size_t)snprintf(dpath, sizeof dpath, "%s%s%s", root, *rel ? "/" : "", rel) >=
        sizeof dpath)
        return fz_fail(err, FZ_EDATA, "%s/%s: path too long", root, rel);
    DIR *d = opendir(dpath);
    if (!d) return fz_fail(err, FZ_EIO, "%s: %s", dpath, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue; /* ., .. and hidden files */
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nn = realloc(names, nc * sizeof *nn);
            if (!nn) {
                fz_fail(err, FZ_ENOMEM, "out of memory");
                goto done;
            }
            names = nn;
            cap = nc;
        }
        if (!(names[n] = dupstr(de->d_name, err))) goto done;
        n++;
    }
    if (n) qsort(names, n, sizeof *names, cmp_cstr);
    for (size_t i = 0; i < n; i++) {
        char sub[4096], full[4096];
        if ((size_t)snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", names[i]) >=
                sizeof sub ||
            (size_t)snprintf(full, sizeof full, "%s/%s", root, sub) >= sizeof full) {
            fz_fail(err, FZ_EDATA, "%s/%s: path too long", dpath, names[i]);
            goto done;
        }
        struct stat st;
        if (stat(full, &st)) {
            fz_fail(err, FZ_EIO, "%s: %s", full, strerror(errno));
            goto done;
        }
        if (S_ISDIR(st.st_mode)) {
            if (walk(a, root, sub, depth + 1, err)) goto done;
        } else if (S_ISREG(st.st_mode) && has_img_ext(names[i])) {
            fz_blob b;
            if (fz_read_file(full, &b, err)) goto done;
            int r = acc_add(a, full, sub, b.data, b.len, err);
            fz_blob_free(&b);
            if (r) {
                fz_err_prefix(err, full);
                goto done;
            }
        }
    }
    rc = 0;
done:
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

static int cmp_item(const void *x, const void *y)
{
    const img_item *a = x, *b = y;
    return strcmp(a->path, b->path);
}

/* Turn the images gathered in a (in the order of a->it) into ds, and free a. source NULL:
 * gathering failed (err is set); only free. Returns 0 or -1. */
static int acc_finish(img_acc *acc, const char *source, fz_dataset *ds, fz_err *err)
{
    img_acc a = *acc;
    int rc = -1;
    if (!source) goto done;
    size_t d = (size_t)a.c * a.h * a.w;
    ds->n = a.n;
    ds->d = d;
    ds->ndim = 3;
    ds->shape[0] = a.c;
    ds->shape[1] = a.h;
    ds->shape[2] = a.w;
    ds->pixel_max = 255;
    if (!(ds->xf = fz_malloc(a.n * d * sizeof(float), err))) goto done;
    if (!(ds->label = fz_malloc(a.n * sizeof *ds->label, err))) goto done;
    if (!(ds->paths = fz_calloc(a.n, sizeof *ds->paths, err))) goto done;
    for (size_t i = 0; i < a.n; i++) {
        memcpy(ds->xf + i * d, a.px + a.it[i].row * d, d * sizeof(float));
        ds->paths[i] = a.it[i].path;
        a.it[i].path = NULL;
    }
    /* classes: sorted distinct parent names */
    char **cl = fz_calloc(a.n, sizeof *cl, err);
    if (!cl) goto done;
    size_t k = 0;
    for (size_t i = 0; i < a.n; i++)
        if (a.it[i].cls) cl[k++] = a.it[i].cls;
    if (k) qsort(cl, k, sizeof *cl, cmp_cstr);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || strcmp(cl[u - 1], cl[i]) != 0) cl[u++] = cl[i];
    ds->classes = fz_calloc(u, sizeof *ds->classes, err);
    if (!ds->classes) {
        free(cl);
        goto done;
    }
    ds->nclasses = u;
    for (size_t i = 0; i < u; i++)
        if (!(ds->classes[i] = dupstr(cl[i], err))) {
            free(cl);
            goto done;
        }
    free(cl);
    ds->has_labels = u > 0;
    for (size_t i = 0; i < a.n; i++) {
        ds->label[i] = -1;
        if (a.it[i].cls) {
            char **hit = bsearch(&a.it[i].cls, ds->classes, u, sizeof *ds->classes, cmp_cstr);
            ds->label[i] = (int32_t)(hit - ds->classes);
        }
    }
    if (!(ds->source = dupstr(source, err))) goto done;
    rc = 0;
done:
    for (size_t i = 0; i < a.n; i++) {
        free(a.it[i].path);
        free(a.it[i].cls);
    }
    free(a.it);
    free(a.px);
    free(a.first);
    if (rc) fz_dataset_free(ds);
    return rc;
}

int fz_load_images(const char *path, int gray, fz_dataset *ds, fz_err *err)
{
    memset(ds, 0, sizeof *ds);
    img_acc a = {0};
    a.gray = gray;
    struct stat st;
    int isdir = path && strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    if (isdir) {
        /* strip trailing slashes so paths read root/class/file */
        char root[4096];
        snprintf(root, sizeof root, "%s", path);
        size_t rl = strlen(root);
        while (rl > 1 && root[rl - 1] == '/') root[--rl] = 0;
        if (walk(&a, root, "", 0, err)) return acc_finish(&a, NULL, ds, err);
    } else {
        a.archive = path;
        if (fz_input_each(path, img_pats, member_cb, &a, err))
            return acc_finish(&a, NULL, ds, err);
        /* archive order is the writer's; sorted paths make ids independent of it */
        if (a.n > 1) qsort(a.it, a.n, sizeof *a.it, cmp_item);
    }
    if (a.n == 0) {
        fz_fail(err, FZ_EDATA, "%s: no images (*.png, *.pgm, *.ppm)", fz_in_name(path));
        return acc_finish(&a, NULL, ds, err);
    }
    char src[4096];
    snprintf(src, sizeof src, "images:%s", fz_in_name(path));
    return acc_finish(&a, src, ds, err);
}

/* Read the whole list (a file, or "-" for stdin) as text, at most FZ_IMAGE_LIST_MAX bytes. */
static char *read_list(const char *list, size_t *len, fz_err *err)
{
    int is_stdin = strcmp(list, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(list, "rb");
    if (!f) {
        fz_fail(err, FZ_EIO, "%s: %s", list, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = fz_malloc(cap, err);
    while (buf) {
        if (n + 1 >= cap) {
            if (cap >= FZ_IMAGE_LIST_MAX) {
                fz_fail(err, FZ_EDATA, "%s: list over the limit of %zu bytes",
                        fz_in_name(list), FZ_IMAGE_LIST_MAX);
                free(buf);
                buf = NULL;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                fz_fail(err, FZ_ENOMEM, "%s: out of memory", fz_in_name(list));
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - 1 - n, f);
        n += k;
        if (k == 0) break;
    }
    if (buf && ferror(f)) {
        fz_fail(err, FZ_EIO, "%s: read error", fz_in_name(list));
        free(buf);
        buf = NULL;
    }
    if (!is_stdin) fclose(f);
    if (buf) {
        buf[n] = 0;
        *len = n;
    }
    return buf;
}

int fz_load_image_list(const char *list, int gray, fz_dataset *ds, fz_err *err)
{
    memset(ds, 0, sizeof *ds);
    img_acc a = {0};
    a.gray = gray;
    size_t len = 0;
    char *text = read_list(list, &len, err);
    if (!text) return -1;
    size_t line = 0;
    for (char *p = text, *end = text + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        line++;
        size_t n = (size_t)(e - p);
        if (n && p[n - 1] == '\r') n--; /* a list written on Windows */
        if (memchr(p, 0, n)) {
            fz_fail(err, FZ_EDATA, "%s:%zu: NUL byte in a path", fz_in_name(list), line);
            goto fail;
        }
        p[n] = 0;
        if (n) {
            fz_blob b;
            int r = fz_read_file(p, &b, err);
            if (!r) {
                /* the label is the parent folder, as in a directory tree */
                r = acc_add(&a, p, p, b.data, b.len, err);
                if (r) fz_err_prefix(err, p);
                fz_blob_free(&b);
            }
            if (r) {
                char where[4200];
                snprintf(where, sizeof where, "%s:%zu", fz_in_name(list), line);
                fz_err_prefix(err, where);
                goto fail;
            }
        }
        p = nl ? nl + 1 : end;
    }
    free(text);
    if (a.n == 0) {
        fz_fail(err, FZ_EDATA, "%s: no image paths in the list", fz_in_name(list));
        return acc_finish(&a, NULL, ds, err);
    }
    char src[4096];
    snprintf(src, sizeof src, "images:files:%s", fz_in_name(list));
    return acc_finish(&a, src, ds, err);
fail:
    free(text);
    return acc_finish(&a, NULL, ds, err);
}
