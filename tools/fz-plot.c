/* fz-plot - pictures from streams and tables: image grids and strips, scatter plots of 2-D
 * points by class (with ellipses and paths), and line plots from TSV files. Writes PNG. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canvas.h"
#include "json.h"
#include "plot.h"
#include "rng.h"
#include "stream.h"
#include "util.h"

static const char *prog = "fz-plot";
static const char *usage_line =
    "usage: fz-plot grid|strips|scatter|lines [-h] [-t title] [options] [file ...] out.png";

/* Hard limits, checked before allocating. */
#define MAX_TILES 10000
#define MAX_TILE_SIDE 2048
#define MAX_POINTS 5000000
#define MAX_INPUTS 32
#define MAX_COLS 256
#define MAX_LINE ((size_t)1 << 20)
#define MAX_TSV_ROWS 10000000
#define MAX_CLASSES 4096

/* option values, with their defaults (printed by -h) */
static const char *opt_title;
static const char *opt_fields[MAX_INPUTS];
static int nfields;
static const char *opt_labels;
static long opt_cols = 10, opt_scale = 2, opt_n = -1, opt_gap = 2;
static const char *opt_caption;
static double opt_lo = 0, opt_hi = 1;
static const char *opt_color; /* scatter: class field; default "label" when present */
static long opt_dim0 = 0, opt_dim1 = 1;
static const char *opt_ellipses, *opt_paths;
static double opt_marker = 0; /* 0: by number of points */
static double opt_xlim[2] = {NAN, NAN}, opt_ylim[2] = {NAN, NAN};
static const char *opt_x, *opt_y;
static int opt_logy, opt_diag;
static long opt_w = 800, opt_h = 600;
static const char *opt_xlabel, *opt_ylabel;

/* Run state at file scope: an error exit from anywhere frees it. */
static fz_canvas cv;
static fz_reader *rd;
static unsigned char *rowbuf;
static float *pix[MAX_INPUTS]; /* grid/strips: per stream (tiles, C, H, W) */
static char (*caps)[40];  /* grid: (tiles) captions */
static double *pts;       /* scatter: (n, 2); lines: (rows, cols) */
static int *cls;          /* scatter: (n) class, -1 none */
static fz_json *meta;
static char *line;
static FILE *tf;

static void free_tables(void);
static double *paths; /* scatter --path: (points, 2); NaN rows break the lines */

static void cleanup(void)
{
    fz_canvas_free(&cv);
    fz_reader_close(rd);
    rd = NULL;
    free(rowbuf);
    for (int i = 0; i < MAX_INPUTS; i++) free(pix[i]), pix[i] = NULL;
    free(caps);
    free_tables();
    free(paths);
    paths = NULL;
    free(pts);
    free(cls);
    fz_json_free(meta);
    free(line);
    if (tf) fclose(tf);
    rowbuf = NULL, caps = NULL, pts = NULL, cls = NULL, meta = NULL, line = NULL;
    tf = NULL;
}

static void die(const fz_err *err)
{
    fprintf(stderr, "%s: %s\n", prog, err->msg);
    cleanup();
    exit(1);
}

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
    printf("Draw a PNG picture (the last operand; '-' for stdout) from fz streams or TSV tables.\n"
           "Input '-' (or none, for grid and scatter) is standard input.\n\n");
    printf("fz-plot grid [-f FIELD] [--cols N] [--scale N] [-n N] [--caption FIELD] [file] out.png\n"
           "  the images of a field, row after row, as a grid of tiles\n"
           "fz-plot strips [-f FIELD]... [-L LABELS] [--cols N] [-n N] file... out.png\n"
           "  the first images of each stream as one labelled strip per stream, one above\n"
           "  the other (noisy / clean / denoised); the i-th -f goes with the i-th file\n"
           "fz-plot scatter [-f FIELD] [-c FIELD] [--ellipses FILE] [--path FILE] [file] out.png\n"
           "  2-D points coloured by class, legend with the metadata's class names\n"
           "fz-plot lines [-x COL] [-y COLS] [--logy] [--diag] file.tsv... out.png\n"
           "  columns of TSV tables with a header line, against column x\n\n");
    printf("Images (grid, strips):\n"
           "  -f FIELD          image field, shape (1,H,W), (3,H,W), (H,W) or (D) with D a square\n"
           "                    (default: x)\n"
           "  --cols N          tiles per row (default %ld)\n"
           "  --scale N         each image pixel as N x N pixels (default %ld)\n"
           "  -n N              tiles drawn (default: grid 100, strips the --cols value)\n"
           "  --gap N           pixels between tiles (default %ld)\n"
           "  --range LO,HI     values shown black to white (default %g,%g; clipped)\n"
           "  --caption FIELD   text under each tile: a field's value, class names for labels\n"
           "                    (default: none)\n"
           "  -L LIST           strip labels, comma-separated (default: field or file names)\n",
           opt_cols, opt_scale, opt_gap, opt_lo, opt_hi);
    printf("\nScatter:\n"
           "  -f FIELD          point field, 2 or more values (default: mu)\n"
           "  --dims I,J        the two values drawn (default %ld,%ld)\n"
           "  -c FIELD          integer class field for colours, 'none' for one colour\n"
           "                    (default: label when the stream has it)\n"
           "  --marker R        point radius in pixels (default: 1.5 to 3.5, fewer points larger)\n"
           "  --ellipses FILE   draw (p-c)'M(p-c) = r2 for lines 'cx cy m00 m01 m10 m11 r2 [name]'\n"
           "                    or a JSON array of {\"center\", \"M\", \"r2\", \"name\"} (default: none)\n"
           "  --path FILE       polylines from lines 'x y'; a blank line starts a new one\n"
           "                    (default: none)\n",
           opt_dim0, opt_dim1);
    printf("\nLines:\n"
           "  -x COL            x column (default: the first)\n"
           "  -y COLS           y columns, comma-separated (default: all others)\n"
           "  --logy            logarithmic y axis (default: %s)\n"
           "  --diag            the diagonal y = x, for ROC curves (default: %s)\n"
           "  -L LIST           series names (default: column names, with file names when\n"
           "                    several files)\n",
           opt_logy ? "on" : "off", opt_diag ? "on" : "off");
    printf("\nCharts (scatter, lines):\n"
           "  --size WxH        picture size (default %ldx%ld)\n"
           "  --xlim LO,HI      x range (default: the data's, padded)\n"
           "  --ylim LO,HI      y range (default: the data's, padded)\n"
           "  --xlabel TEXT     x axis label (default: the field or column)\n"
           "  --ylabel TEXT     y axis label (default: the field or columns)\n"
           "\nAll:\n"
           "  -t TITLE          title above the picture (default: none)\n"
           "  -h                this help\n"
           "\nExit 0 ok, 1 data or runtime error, 2 usage.\n",
           opt_w, opt_h);
    exit(0);
}

/* "LO,HI" with LO < HI. */
static void parse_pair(const char *s, const char *what, double *lo, double *hi, int ordered)
{
    char buf[128];
    fz_err err;
    const char *comma = strchr(s, ',');
    if (!comma || strlen(s) >= sizeof buf) usage_msg("%s: expected LO,HI", what);
    memcpy(buf, s, (size_t)(comma - s));
    buf[comma - s] = 0;
    if (fz_parse_double(buf, -1e300, 1e300, lo, what, &err) ||
        fz_parse_double(comma + 1, -1e300, 1e300, hi, what, &err))
        usage_msg("%s", err.msg);
    if (ordered && !(*lo < *hi)) usage_msg("%s: LO must be below HI", what);
}

/* ---- shared: reading a stream field, class names ---- */

static const char *base_name(const char *path)
{
    if (!path || strcmp(path, "-") == 0) return "<stdin>";
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Parse the metadata of the open reader; class names stay valid until cleanup. */
static void load_meta(const char *name)
{
    fz_err err;
    fz_json_free(meta);
    const char *m = fz_reader_meta(rd);
    if (!(meta = fz_json_parse(m, strlen(m), &err))) {
        fz_err_prefix(&err, name);
        fz_err_prefix(&err, "metadata");
        die(&err);
    }
}

/* Name of class k from the metadata's "classes", or NULL. */
static const char *class_name(long k)
{
    const fz_json *c = fz_json_get(meta, "classes");
    if (k < 0 || (size_t)k >= fz_json_len(c)) return NULL;
    return fz_json_str(fz_json_at(c, (size_t)k));
}

static const fz_field *need_field(const char *fname, const char *name)
{
    fz_err err;
    const fz_schema *s = fz_reader_schema(rd);
    int i = fz_schema_find(s, fname);
    if (i < 0) {
        char list[256] = "";
        for (int k = 0; k < s->nfields && strlen(list) < 200; k++) {
            strcat(list, k ? ", " : "");
            strncat(list, s->field[k].name, 40);
        }
        fz_fail(&err, FZ_EDATA, "%s: no field '%s' (fields: %s)", name, fname, list);
        die(&err);
    }
    return &s->field[i];
}

static int is_int_type(fz_dtype t) { return t >= FZ_U1 && t <= FZ_I8; }

/* ---- grid and strips ---- */

typedef struct imgshape {
    int C, H, W;
} imgshape;

static imgshape image_shape(const fz_field *f, const char *name)
{
    fz_err err;
    imgshape s = {1, 0, 0};
    const int64_t *d = f->shape;
    if (f->type == FZ_BYTES) {
        fz_fail(&err, FZ_EDATA, "%s: field '%s' holds bytes, not an image", name, f->name);
        die(&err);
    }
    if (f->ndim == 3 && (d[0] == 1 || d[0] == 3)) {
        s.C = (int)d[0];
        if (d[1] <= MAX_TILE_SIDE && d[2] <= MAX_TILE_SIDE) s.H = (int)d[1], s.W = (int)d[2];
    } else if (f->ndim == 2) {
        if (d[0] <= MAX_TILE_SIDE && d[1] <= MAX_TILE_SIDE) s.H = (int)d[0], s.W = (int)d[1];
    } else if (f->ndim == 1) {
        int64_t side = (int64_t)llround(sqrt((double)d[0]));
        if (side * side == d[0] && side <= MAX_TILE_SIDE) s.H = s.W = (int)side;
    }
    if (s.H < 1 || s.W < 1) {
        char sh[96];
        fz_fail(&err, FZ_EDATA,
                "%s: field '%s' of shape %s is not an image: expected (1,H,W), (3,H,W), (H,W) or "
                "(D) with D a square, sides up to %d",
                name, f->name, fz_field_shape_str(f, sh, sizeof sh), MAX_TILE_SIDE);
        die(&err);
    }
    return s;
}

/* A tile's caption from a scalar field: class name, integer, text, or number. */
static void caption_of(const fz_field *f, const unsigned char *row, char *out, size_t cap)
{
    if (f->type == FZ_BYTES) {
        const char *p = (const char *)row + f->offset;
        snprintf(out, cap, "%.*s", (int)strnlen(p, f->elem_size), p);
        return;
    }
    double v = fz_field_get(f, row, 0);
    const char *cn = is_int_type(f->type) && v == floor(v) && fabs(v) < 1e9 ? class_name((long)v) : NULL;
    if (cn && strcmp(f->name, "id") != 0) snprintf(out, cap, "%s", cn);
    else if (is_int_type(f->type)) snprintf(out, cap, "%.0f", v);
    else snprintf(out, cap, "%.3g", v);
}

/* Read up to max images of field fname from path into a new pix[slot] (max, C, H, W), and
 * their captions into caps when capfield. Returns the number read. */
static long read_images(const char *path, const char *fname, const char *capfield, int slot,
                        long max, imgshape *shape)
{
    fz_err err;
    if (!(rd = fz_reader_open(path, &err))) die(&err);
    const char *name = fz_reader_name(rd);
    load_meta(name);
    const fz_field *f = need_field(fname, name);
    *shape = image_shape(f, name);
    const fz_field *cf = NULL;
    if (capfield) {
        cf = need_field(capfield, name);
        if (cf->count != 1) {
            fz_fail(&err, FZ_EDATA, "%s: caption field '%s' has %zu values, expected one", name,
                    capfield, cf->count);
            die(&err);
        }
    }
    const fz_schema *s = fz_reader_schema(rd);
    size_t count = f->count, bytes;
    if (fz_mul_size((size_t)max, count * sizeof(float), &bytes)) {
        fz_fail(&err, FZ_EDATA, "%s: %ld images of %zu values are too many", name, max, count);
        die(&err);
    }
    if (!(pix[slot] = fz_malloc(bytes ? bytes : 1, &err))) die(&err);
    if (capfield && !(caps = fz_calloc((size_t)max, sizeof *caps, &err))) die(&err);
    if (!(rowbuf = fz_malloc(s->row_size ? s->row_size : 1, &err))) die(&err);
    long got = 0;
    while (got < max) {
        long r = fz_reader_read(rd, rowbuf, 1, &err);
        if (r < 0) die(&err);
        if (r == 0) break;
        fz_field_to_f32(f, rowbuf, pix[slot] + (size_t)got * count);
        if (cf) caption_of(cf, rowbuf, caps[got], sizeof caps[0]);
        got++;
    }
    free(rowbuf);
    rowbuf = NULL;
    fz_reader_close(rd);
    rd = NULL;
    return got;
}

static unsigned char to_byte(float v)
{
    double t = (v - opt_lo) / (opt_hi - opt_lo);
    if (!(t > 0)) return 0; /* also NaN */
    if (t >= 1) return 255;
    return (unsigned char)lround(t * 255);
}

/* Tile of image (C, H, W) at (x, y), each pixel scale x scale. */
static void draw_tile(const float *img, imgshape s, int x, int y, int scale)
{
    size_t plane = (size_t)s.H * (size_t)s.W;
    for (int i = 0; i < s.H; i++)
        for (int j = 0; j < s.W; j++) {
            size_t k = (size_t)i * (size_t)s.W + (size_t)j;
            unsigned r = to_byte(img[k]), g = r, b = r;
            if (s.C == 3) g = to_byte(img[plane + k]), b = to_byte(img[2 * plane + k]);
            fz_draw_rect(&cv, x + j * scale, y + i * scale, scale, scale, (r << 16) | (g << 8) | b);
        }
}

/* Canvas side from a sum of parts, or a usage error when the picture would be too large. */
static int side(long long v, const char *what)
{
    if (v > FZ_CANVAS_MAX) {
        char msg[160];
        snprintf(msg, sizeof msg, "the picture would be %lld pixels %s (at most %d): use fewer "
                 "tiles, --cols or a smaller --scale", v, what, FZ_CANVAS_MAX);
        fprintf(stderr, "%s: %s\n", prog, msg);
        cleanup();
        exit(1);
    }
    return (int)v;
}

static void write_png(const char *out)
{
    fz_err err;
    if (fz_png_write(out, &cv, &err)) die(&err);
}

#define TITLE_H (FZ_FONT_H + 14)
#define CAPTION_H (FZ_FONT_H + 6)

static void run_grid(const char *in, const char *out)
{
    const char *field = nfields ? opt_fields[0] : "x";
    long max = opt_n >= 0 ? opt_n : 100;
    imgshape s;
    long n = read_images(in, field, opt_caption, 0, max, &s);
    fz_err err;
    if (n == 0) {
        fz_fail(&err, FZ_EDATA, "%s: no rows to draw", in && strcmp(in, "-") ? in : "<stdin>");
        die(&err);
    }
    int cols = (int)(n < opt_cols ? n : opt_cols), rows = (int)((n + cols - 1) / cols);
    int gap = (int)opt_gap, sc = (int)opt_scale;
    long long tw = (long long)s.W * sc, th = (long long)s.H * sc;
    long long cellh = th + gap + (caps ? CAPTION_H : 0);
    int margin = gap + 4; /* around the whole grid */
    long long top = margin + (opt_title ? TITLE_H : 0);
    long long W = 2 * margin - gap + cols * (tw + gap), H = top + rows * cellh + margin - gap;
    if (opt_title && fz_text_width(opt_title, 1) + 16 > W) W = fz_text_width(opt_title, 1) + 16;
    int cw = side(W, "wide"), ch = side(H, "tall");
    if (fz_canvas_init(&cv, cw, ch, FZ_WHITE, &err)) die(&err);
    long long x0 = (W - (cols * (tw + gap) - gap)) / 2;
    fz_draw_title(&cv, NULL, margin + 4, opt_title);
    size_t count = (size_t)s.C * (size_t)s.H * (size_t)s.W;
    for (long i = 0; i < n; i++) {
        int x = (int)(x0 + (i % cols) * (tw + gap)), y = (int)(top + (i / cols) * cellh);
        draw_tile(pix[0] + (size_t)i * count, s, x, y, sc);
        if (caps) {
            /* Centred under the tile, cut to the tile's width. */
            char t[40];
            snprintf(t, sizeof t, "%s", caps[i]);
            int fit = (int)((tw + gap) / FZ_FONT_W);
            if (fit < (int)sizeof t && (int)strlen(t) > fit) t[fit > 0 ? fit : 0] = 0;
            fz_draw_text(&cv, x + (int)tw / 2 - fz_text_width(t, 1) / 2, y + (int)th + 2, t, 1, 0,
                         0x222222);
        }
    }
    write_png(out);
}

static void run_strips(char **in, int nin, const char *out)
{
    fz_err err;
    if (nfields > 1 && nfields != nin)
        usage_msg("strips: %s", "give one -f for all files or one per file");
    const char *labels[MAX_INPUTS + 1] = {0};
    char labbuf[4096];
    int nl = 0;
    if (opt_labels) {
        snprintf(labbuf, sizeof labbuf, "%s", opt_labels);
        nl = fz_split_names(labbuf, labels, MAX_INPUTS + 1);
        if (nl != nin) usage_msg("-L: expected one label per file (%s)", opt_labels);
    }
    long per = opt_n >= 0 ? opt_n : opt_cols;
    if (per < 1) usage_msg("strips: %s", "-n must be at least 1");
    if ((long long)per * nin > MAX_TILES) usage_msg("strips: more than %s tiles", "10000");
    imgshape shapes[MAX_INPUTS];
    long got[MAX_INPUTS];
    const char *fld[MAX_INPUTS];
    for (int i = 0; i < nin; i++) {
        fld[i] = nfields == 0 ? "x" : nfields == 1 ? opt_fields[0] : opt_fields[i];
        got[i] = read_images(in[i], fld[i], NULL, i, per, &shapes[i]);
        if (shapes[i].H != shapes[0].H || shapes[i].W != shapes[0].W) {
            fz_fail(&err, FZ_EDATA, "%s: images of %dx%d, but %s has %dx%d: strips need one size",
                    base_name(in[i]), shapes[i].H, shapes[i].W, base_name(in[0]), shapes[0].H,
                    shapes[0].W);
            die(&err);
        }
        if (got[i] == 0) {
            fz_fail(&err, FZ_EDATA, "%s: no rows to draw", base_name(in[i]));
            die(&err);
        }
    }
    /* Default labels: the fields when they differ, else the file names. */
    char deflab[MAX_INPUTS][96];
    int fields_differ = 0;
    for (int i = 1; i < nin; i++)
        if (strcmp(fld[i], fld[0])) fields_differ = 1;
    for (int i = 0; i < nin && !opt_labels; i++) {
        int fdup = 0;
        for (int j = 0; j < nin; j++)
            if (j != i && strcmp(fld[i], fld[j]) == 0) fdup = 1;
        if (fields_differ && !fdup) snprintf(deflab[i], sizeof deflab[i], "%s", fld[i]);
        else if (fields_differ) snprintf(deflab[i], sizeof deflab[i], "%.40s:%.40s", base_name(in[i]), fld[i]);
        else snprintf(deflab[i], sizeof deflab[i], "%.90s", base_name(in[i]));
        labels[i] = deflab[i];
    }
    int gap = (int)opt_gap, sc = (int)opt_scale;
    int cols = (int)(per < opt_cols ? per : opt_cols);
    long long tw = (long long)shapes[0].W * sc, th = (long long)shapes[0].H * sc;
    int labw = 0;
    for (int i = 0; i < nin; i++)
        if (fz_text_width(labels[i], 1) > labw) labw = fz_text_width(labels[i], 1);
    if (labw > 300) labw = 300;
    labw += 16;
    int sgap = gap + 8; /* between strips: more than between tiles */
    long long top = sgap + (opt_title ? TITLE_H : 0), y = top;
    long long W = labw + gap + cols * (tw + gap);
    if (opt_title && fz_text_width(opt_title, 1) + 16 > W) W = fz_text_width(opt_title, 1) + 16;
    long long H = top;
    for (int i = 0; i < nin; i++) H += ((got[i] + cols - 1) / cols) * (th + gap) + sgap;
    if (fz_canvas_init(&cv, side(W, "wide"), side(H, "tall"), FZ_WHITE, &err)) die(&err);
    fz_draw_title(&cv, NULL, sgap + 4, opt_title);
    for (int i = 0; i < nin; i++) {
        size_t count = (size_t)shapes[i].C * (size_t)shapes[i].H * (size_t)shapes[i].W;
        int rows = (int)((got[i] + cols - 1) / cols);
        long long sh = rows * (th + gap) - gap;
        /* the label, right-aligned and centred on the strip, cut to the column */
        char t[128];
        snprintf(t, sizeof t, "%s", labels[i]);
        int lw = fz_text_width(t, 1);
        fz_draw_text(&cv, labw - 8 - lw, (int)(y + sh / 2 - FZ_FONT_H / 2), t, 1, 1, 0x222222);
        for (long k = 0; k < got[i]; k++) {
            const float *img = pix[i] + (size_t)k * count;
            draw_tile(img, shapes[i], (int)(labw + gap + (k % cols) * (tw + gap)),
                      (int)(y + (k / cols) * (th + gap)), sc);
        }
        y += sh + gap + sgap;
    }
    write_png(out);
}

/* ---- charts: layout shared by scatter and lines ---- */

/* Plot area inside a w x h canvas, leaving right pixels on the right for a legend. */
static fz_axes layout(int right)
{
    fz_axes a;
    memset(&a, 0, sizeof a);
    a.x0 = 86;
    a.y0 = opt_title ? 42 : 20;
    a.x1 = (int)opt_w - 24 - right;
    a.y1 = (int)opt_h - 52;
    return a;
}

static void set_range(fz_axes *a, double xlo, double xhi, double ylo, double yhi, double pad)
{
    fz_range_pad(&xlo, &xhi, pad);
    fz_range_pad(&ylo, &yhi, pad);
    a->xmin = isnan(opt_xlim[0]) ? xlo : opt_xlim[0];
    a->xmax = isnan(opt_xlim[0]) ? xhi : opt_xlim[1];
    a->ymin = isnan(opt_ylim[0]) ? ylo : opt_ylim[0];
    a->ymax = isnan(opt_ylim[0]) ? yhi : opt_ylim[1];
    if (a->logy) {
        a->ymin = isnan(opt_ylim[0]) ? ylo : log10(opt_ylim[0]);
        a->ymax = isnan(opt_ylim[0]) ? yhi : log10(opt_ylim[1]);
    }
}

static void chart_canvas(void)
{
    fz_err err;
    if (fz_canvas_init(&cv, (int)opt_w, (int)opt_h, FZ_WHITE, &err)) die(&err);
}

/* ---- scatter ---- */

typedef struct ellipse {
    double c[2], M[4], r2;
    char name[64];
} ellipse;

#define MAX_ELLIPSES 256
static ellipse ells[MAX_ELLIPSES];
static int nells;

static void open_text(const char *path)
{
    fz_err err;
    if (!(tf = fopen(path, "r"))) {
        fz_fail(&err, FZ_EIO, "%s: %s", path, strerror(errno));
        die(&err);
    }
}

/* Next line of tf into `line` without its newline; -1 at the end. */
static long next_line(const char *path, long *lineno)
{
    static size_t cap;
    fz_err err;
    errno = 0;
    ssize_t n = getline(&line, &cap, tf);
    if (n < 0) {
        if (ferror(tf)) {
            fz_fail(&err, FZ_EIO, "%s: %s", path, strerror(errno ? errno : EIO));
            die(&err);
        }
        return -1;
    }
    ++*lineno;
    if ((size_t)n > MAX_LINE) {
        fz_fail(&err, FZ_EDATA, "%s: line %ld: longer than %zu bytes", path, *lineno, MAX_LINE);
        die(&err);
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    if (strlen(line) != (size_t)n) {
        fz_fail(&err, FZ_EDATA, "%s: line %ld: NUL byte in text", path, *lineno);
        die(&err);
    }
    return n;
}

static int json_num2(const fz_json *j, double *out, int n)
{
    if (fz_json_type(j) != FZ_JARR || fz_json_len(j) != (size_t)n) return -1;
    for (int i = 0; i < n; i++) {
        const fz_json *e = fz_json_at(j, (size_t)i);
        if (fz_json_type(e) != FZ_JNUM) return -1;
        out[i] = fz_json_num(e, NAN);
    }
    return 0;
}

static void load_ellipses_json(const char *path, const char *text, size_t len)
{
    fz_err err;
    fz_json *root = fz_json_parse(text, len, &err);
    if (!root) {
        fz_err_prefix(&err, path);
        die(&err);
    }
    const fz_json *arr = root;
    if (fz_json_type(root) == FZ_JOBJ) {
        arr = fz_json_get(root, "ellipses");
        if (!arr) arr = fz_json_get(root, "domains");
        if (!arr) arr = fz_json_get(root, "terms");
    }
    if (fz_json_type(arr) != FZ_JARR) {
        fz_json_free(root);
        fz_fail(&err, FZ_EDATA, "%s: expected a JSON array of ellipses (or an object with "
                "\"ellipses\")", path);
        die(&err);
    }
    for (size_t i = 0; i < fz_json_len(arr); i++) {
        const fz_json *o = fz_json_at(arr, i);
        ellipse *e = &ells[nells];
        if (nells == MAX_ELLIPSES) {
            fz_json_free(root);
            fz_fail(&err, FZ_EDATA, "%s: more than %d ellipses", path, MAX_ELLIPSES);
            die(&err);
        }
        const fz_json *c = fz_json_get(o, "center");
        if (!c) c = fz_json_get(o, "centre");
        const fz_json *m = fz_json_get(o, "M");
        const fz_json *r = fz_json_get(o, "r2");
        if (!r) r = fz_json_get(o, "level");
        double row0[2], row1[2];
        int bad = json_num2(c, e->c, 2) ||
                  (json_num2(m, e->M, 4) &&
                   (fz_json_len(m) != 2 || json_num2(fz_json_at(m, 0), row0, 2) ||
                    json_num2(fz_json_at(m, 1), row1, 2)));
        if (!bad && fz_json_len(m) == 2)
            e->M[0] = row0[0], e->M[1] = row0[1], e->M[2] = row1[0], e->M[3] = row1[1];
        e->r2 = r ? fz_json_num(r, NAN) : 1;
        const char *nm = fz_json_str(fz_json_get(o, "name"));
        snprintf(e->name, sizeof e->name, "%s", nm ? nm : "");
        if (bad || fz_ellipse_bounds(e->c, e->M, e->r2, &row0[0], &row0[1], &row1[0], &row1[1], &err)) {
            if (bad) fz_fail(&err, FZ_EDATA, "expected \"center\": [x, y] and \"M\": [[a, b], [c, d]]");
            fz_json_free(root);
            char where[300];
            snprintf(where, sizeof where, "%s: ellipse %zu", path, i + 1);
            fz_err_prefix(&err, where);
            die(&err);
        }
        nells++;
    }
    fz_json_free(root);
}

static void load_ellipses(const char *path)
{
    fz_err err;
    open_text(path);
    /* JSON when the first non-blank byte opens an array or object. */
    int ch;
    while ((ch = getc(tf)) == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {}
    if (ch == '[' || ch == '{') {
        ungetc(ch, tf);
        fz_sbuf b;
        fz_sbuf_init(&b);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, tf)) > 0 && !b.failed) {
            if (b.len + n > MAX_LINE * 16) {
                fz_sbuf_free(&b);
                fz_fail(&err, FZ_EDATA, "%s: larger than %zu bytes", path, MAX_LINE * 16);
                die(&err);
            }
            fz_sbuf_printf(&b, "%.*s", (int)n, buf);
        }
        if (ferror(tf) || b.failed) {
            fz_sbuf_free(&b);
            fz_fail(&err, FZ_EIO, "%s: read error", path);
            die(&err);
        }
        load_ellipses_json(path, b.buf ? b.buf : "", b.len);
        fz_sbuf_free(&b);
    } else {
        if (ch != EOF) ungetc(ch, tf);
        long ln = 0;
        while (next_line(path, &ln) >= 0) {
            char *p = line;
            while (*p == ' ' || *p == '\t') p++;
            if (!*p || *p == '#') continue;
            if (nells == MAX_ELLIPSES) {
                fz_fail(&err, FZ_EDATA, "%s: more than %d ellipses", path, MAX_ELLIPSES);
                die(&err);
            }
            ellipse *e = &ells[nells];
            double v[7];
            int k = 0;
            char *end = p;
            for (; k < 7; k++) {
                errno = 0;
                v[k] = strtod(p, &end);
                if (end == p || errno == ERANGE) break;
                p = end;
            }
            if (k < 7) {
                /* a header line of names is fine as the first line */
                if (ln == 1 && k == 0) continue;
                fz_fail(&err, FZ_EDATA, "%s: line %ld: expected 7 numbers 'cx cy m00 m01 m10 m11 "
                        "r2' and a name, got %d numbers", path, ln, k);
                die(&err);
            }
            while (*p == ' ' || *p == '\t') p++;
            snprintf(e->name, sizeof e->name, "%s", p);
            e->c[0] = v[0], e->c[1] = v[1];
            memcpy(e->M, v + 2, sizeof e->M);
            e->r2 = v[6];
            double t[4];
            if (fz_ellipse_bounds(e->c, e->M, e->r2, &t[0], &t[1], &t[2], &t[3], &err)) {
                char where[300];
                snprintf(where, sizeof where, "%s: line %ld", path, ln);
                fz_err_prefix(&err, where);
                die(&err);
            }
            nells++;
        }
    }
    fclose(tf);
    tf = NULL;
}

static size_t npaths_pts;

static void load_paths(const char *path)
{
    fz_err err;
    open_text(path);
    size_t cap = 0;
    long ln = 0;
    int prev_blank = 1;
    while (next_line(path, &ln) >= 0) {
        char *p = line, *end;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#') continue;
        double x = NAN, y = NAN;
        if (*p) {
            errno = 0;
            x = strtod(p, &end);
            if (end == p) {
                if (ln == 1) continue; /* header */
                goto bad;
            }
            p = end;
            y = strtod(p, &end);
            if (end == p || errno == ERANGE) goto bad;
        } else if (prev_blank) {
            continue;
        }
        prev_blank = !*p;
        if (npaths_pts == cap) {
            if (cap >= MAX_POINTS) {
                fz_fail(&err, FZ_EDATA, "%s: more than %d path points", path, MAX_POINTS);
                die(&err);
            }
            cap = cap ? cap * 2 : 256;
            double *np = realloc(paths, cap * 2 * sizeof *np);
            if (!np) {
                fz_fail(&err, FZ_ENOMEM, "out of memory");
                die(&err);
            }
            paths = np;
        }
        paths[2 * npaths_pts] = x;
        paths[2 * npaths_pts + 1] = y;
        npaths_pts++;
        continue;
    bad:
        fz_fail(&err, FZ_EDATA, "%s: line %ld: expected two numbers 'x y'", path, ln);
        die(&err);
    }
    fclose(tf);
    tf = NULL;
}

static void run_scatter(const char *in, const char *out)
{
    fz_err err;
    const char *field = nfields ? opt_fields[0] : "mu";
    if (!(rd = fz_reader_open(in, &err))) die(&err);
    const char *name = fz_reader_name(rd);
    char namebuf[256];
    snprintf(namebuf, sizeof namebuf, "%s", name);
    name = namebuf;
    load_meta(name);
    const fz_field *f = need_field(field, name);
    if (f->type == FZ_BYTES || f->count < 2 || (size_t)opt_dim0 >= f->count ||
        (size_t)opt_dim1 >= f->count) {
        char sh[96];
        fz_fail(&err, FZ_EDATA, "%s: field '%s' of shape %s has no values %ld and %ld to draw",
                name, field, fz_field_shape_str(f, sh, sizeof sh), opt_dim0, opt_dim1);
        die(&err);
    }
    const fz_schema *s = fz_reader_schema(rd);
    const fz_field *cf = NULL;
    const char *cname = opt_color ? opt_color : "label";
    if (strcmp(cname, "none") != 0) {
        int ci = fz_schema_find(s, cname);
        if (ci < 0 && opt_color) need_field(cname, name);
        if (ci >= 0) {
            cf = &s->field[ci];
            if (cf->count != 1 || !is_int_type(cf->type)) {
                fz_fail(&err, FZ_EDATA, "%s: class field '%s' must be one integer per row", name, cname);
                die(&err);
            }
        }
    }
    size_t B = ((size_t)1 << 20) / (s->row_size ? s->row_size : 1);
    if (B < 1) B = 1;
    if (!(rowbuf = fz_malloc(B * s->row_size + 1, &err))) die(&err);
    size_t n = 0, cap = 0;
    long K = 0;
    long r;
    while ((r = fz_reader_read(rd, rowbuf, B, &err)) > 0) {
        for (long i = 0; i < r; i++) {
            const unsigned char *row = rowbuf + (size_t)i * s->row_size;
            if (n == cap) {
                if (cap >= MAX_POINTS) {
                    fz_fail(&err, FZ_EDATA, "%s: more than %d points", name, MAX_POINTS);
                    die(&err);
                }
                cap = cap ? cap * 2 : 4096;
                double *np = realloc(pts, cap * 2 * sizeof *np);
                if (np) pts = np;
                int *nc = realloc(cls, cap * sizeof *nc);
                if (nc) cls = nc;
                if (!np || !nc) {
                    fz_fail(&err, FZ_ENOMEM, "out of memory");
                    die(&err);
                }
            }
            pts[2 * n] = fz_field_get(f, row, (size_t)opt_dim0);
            pts[2 * n + 1] = fz_field_get(f, row, (size_t)opt_dim1);
            double c = cf ? fz_field_get(cf, row, 0) : -1;
            if (c >= MAX_CLASSES) {
                fz_fail(&err, FZ_EDATA, "%s: row %zu: class %.0f (at most %d classes)", name, n,
                        c, MAX_CLASSES - 1);
                die(&err);
            }
            cls[n] = c < 0 ? -1 : (int)c;
            if (cls[n] + 1 > K) K = cls[n] + 1;
            n++;
        }
    }
    if (r < 0) die(&err);
    if (n == 0) {
        fz_fail(&err, FZ_EDATA, "%s: no rows to draw", name);
        die(&err);
    }
    long nclass_meta = (long)fz_json_len(fz_json_get(meta, "classes"));
    if (nclass_meta > K) K = nclass_meta;
    if (opt_ellipses) load_ellipses(opt_ellipses);
    if (opt_paths) load_paths(opt_paths);

    /* range: points, paths and the ellipses' centres; a domain larger than the data (a
     * broad attribute term, say) is cut at the frame rather than shrinking the points to a
     * speck. With no points, the whole ellipses. */
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
#define GROW(x, y)                                                                           \
    do {                                                                                     \
        if (isfinite(x) && isfinite(y)) {                                                    \
            if ((x) < xlo) xlo = (x);                                                        \
            if ((x) > xhi) xhi = (x);                                                        \
            if ((y) < ylo) ylo = (y);                                                        \
            if ((y) > yhi) yhi = (y);                                                        \
        }                                                                                    \
    } while (0)
    for (size_t i = 0; i < n; i++) GROW(pts[2 * i], pts[2 * i + 1]);
    for (int i = 0; i < nells; i++) {
        double b[4];
        GROW(ells[i].c[0], ells[i].c[1]);
        if (n) continue;
        fz_ellipse_bounds(ells[i].c, ells[i].M, ells[i].r2, &b[0], &b[1], &b[2], &b[3], &err);
        GROW(b[0], b[2]);
        GROW(b[1], b[3]);
    }
    for (size_t i = 0; i < npaths_pts; i++) GROW(paths[2 * i], paths[2 * i + 1]);
#undef GROW

    /* legend: classes present, in class order, then "unlabeled" */
    size_t *count = fz_calloc((size_t)K + 1, sizeof *count, &err);
    fz_legend_item *items = count ? fz_calloc((size_t)K + 2, sizeof *items, &err) : NULL;
    char (*lnames)[24] = items ? fz_calloc((size_t)K + 1, sizeof *lnames, &err) : NULL;
    if (!lnames) {
        free(count);
        free(items);
        die(&err);
    }
    for (size_t i = 0; i < n; i++) count[cls[i] < 0 ? K : cls[i]]++;
    int ni = 0;
    for (long k = 0; k < K && cf; k++) {
        if (!count[k]) continue;
        const char *cn = class_name(k);
        if (!cn) {
            snprintf(lnames[k], sizeof lnames[k], "%ld", k);
            cn = lnames[k];
        }
        items[ni++] = (fz_legend_item){cn, fz_palette((int)k), 1};
    }
    if (count[K] && cf) items[ni++] = (fz_legend_item){"unlabeled", 0xb0b0b0, 1};
    int lw = 0, lh = 0;
    fz_legend_size(items, ni, &lw, &lh);
    fz_axes a = layout(ni ? lw + 12 : 0);
    set_range(&a, xlo, xhi, ylo, yhi, 0.05);
    chart_canvas();
    char xl[96], yl[96];
    snprintf(xl, sizeof xl, "%.60s[%ld]", field, opt_dim0);
    snprintf(yl, sizeof yl, "%.60s[%ld]", field, opt_dim1);
    fz_axes_draw(&cv, &a, opt_xlabel ? opt_xlabel : xl, opt_ylabel ? opt_ylabel : yl);
    fz_draw_title(&cv, &a, 14, opt_title);

    /* Points in a fixed shuffled order so that no class hides the others by coming last;
     * the unlabeled ones first, underneath. */
    double mr = opt_marker > 0 ? opt_marker : n > 20000 ? 1.5 : n > 2000 ? 2.5 : 3.5;
    size_t *order = fz_malloc(n * sizeof *order, &err);
    if (!order) {
        free(count), free(items), free(lnames);
        die(&err);
    }
    for (size_t i = 0; i < n; i++) order[i] = i;
    fz_rng rng;
    fz_rng_seed(&rng, 1);
    fz_rng_shuffle_idx(&rng, order, n);
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < n; k++) {
            size_t i = order[k];
            if ((cls[i] < 0) != (pass == 0)) continue;
            uint32_t col = !cf ? fz_palette(0) : cls[i] < 0 ? 0xb0b0b0 : fz_palette(cls[i]);
            fz_plot_marker(&cv, &a, pts[2 * i], pts[2 * i + 1], mr, col);
        }
    free(order);
    /* Ellipses in their class's colour when named after one, outlined in white so they show
     * over points of the same colour. */
    for (int i = 0; i < nells; i++) {
        /* unmatched: dark grey when colours mean classes, else one colour each */
        uint32_t col = cf ? 0x333333 : fz_palette(i);
        for (long k = 0; k < K && cf; k++) {
            const char *cn = class_name(k);
            if ((cn && strcmp(cn, ells[i].name) == 0) ||
                (!cn && ells[i].name[0] && strtol(ells[i].name, NULL, 10) == k))
                col = fz_palette((int)k);
        }
        fz_plot_ellipse(&cv, &a, ells[i].c, ells[i].M, ells[i].r2, 4.5, FZ_WHITE, &err);
        fz_plot_ellipse(&cv, &a, ells[i].c, ells[i].M, ells[i].r2, 2, col, &err);
    }
    /* Paths in black over everything, their points as dots and the start as a ring. */
    for (size_t i = 0; i < npaths_pts; i++) {
        if (i && !isnan(paths[2 * i]) && !isnan(paths[2 * i - 2])) {
            double xs[2] = {paths[2 * i - 2], paths[2 * i]}, ys[2] = {paths[2 * i - 1], paths[2 * i + 1]};
            fz_plot_polyline(&cv, &a, xs, ys, 2, 2, FZ_BLACK);
        }
    }
    for (size_t i = 0; i < npaths_pts; i++) {
        if (isnan(paths[2 * i])) continue;
        int start = i == 0 || isnan(paths[2 * i - 2]);
        if (start) {
            fz_plot_marker(&cv, &a, paths[2 * i], paths[2 * i + 1], 6, FZ_BLACK);
            fz_plot_marker(&cv, &a, paths[2 * i], paths[2 * i + 1], 3.5, FZ_WHITE);
        } else {
            fz_plot_marker(&cv, &a, paths[2 * i], paths[2 * i + 1], 3, FZ_BLACK);
        }
    }
    fz_legend_draw(&cv, a.x1 + 12, a.y0, items, ni);
    free(count);
    free(items);
    free(lnames);
    write_png(out);
}

/* ---- lines ---- */

typedef struct table {
    int ncols;
    char *names[MAX_COLS]; /* point into hdr */
    char *hdr;
    double *v;             /* (rows, ncols) */
    size_t rows;
} table;

static table tabs[MAX_INPUTS];

static void free_tables(void)
{
    for (int i = 0; i < MAX_INPUTS; i++) {
        free(tabs[i].hdr);
        free(tabs[i].v);
        memset(&tabs[i], 0, sizeof tabs[i]);
    }
}

static void read_table(const char *path, table *t)
{
    fz_err err;
    open_text(path);
    long ln = 0;
    if (next_line(path, &ln) < 0) {
        fz_fail(&err, FZ_EDATA, "%s: empty file (expected a header line)", path);
        die(&err);
    }
    if (!(t->hdr = strdup(line))) {
        fz_fail(&err, FZ_ENOMEM, "out of memory");
        die(&err);
    }
    for (char *p = t->hdr;;) {
        if (t->ncols == MAX_COLS) {
            fz_fail(&err, FZ_EDATA, "%s: more than %d columns", path, MAX_COLS);
            die(&err);
        }
        t->names[t->ncols++] = p;
        char *tab = strchr(p, '\t');
        if (!tab) break;
        *tab = 0;
        p = tab + 1;
    }
    size_t cap = 0;
    while (next_line(path, &ln) >= 0) {
        if (!line[0] || line[0] == '#') continue;
        if (t->rows == cap) {
            if (cap >= MAX_TSV_ROWS) {
                fz_fail(&err, FZ_EDATA, "%s: more than %d rows", path, MAX_TSV_ROWS);
                die(&err);
            }
            cap = cap ? cap * 2 : 256;
            double *nv = realloc(t->v, cap * (size_t)t->ncols * sizeof *nv);
            if (!nv) {
                fz_fail(&err, FZ_ENOMEM, "out of memory");
                die(&err);
            }
            t->v = nv;
        }
        double *row = t->v + t->rows * (size_t)t->ncols;
        int k = 0;
        for (char *p = line; k < t->ncols; k++) {
            char *tab = strchr(p, '\t');
            if (tab) *tab = 0;
            char *end;
            errno = 0;
            double v = strtod(p, &end);
            /* Empty or non-numeric cells (and inf, nan) are missing: the line breaks there. */
            row[k] = end != p && *end == 0 && isfinite(v) ? v : NAN;
            if (!tab) {
                k++;
                break;
            }
            p = tab + 1;
            if (k == t->ncols - 1) {
                fz_fail(&err, FZ_EDATA, "%s: line %ld: more cells than the %d columns of the header",
                        path, ln, t->ncols);
                die(&err);
            }
        }
        for (; k < t->ncols; k++) row[k] = NAN;
        t->rows++;
    }
    fclose(tf);
    tf = NULL;
}

static int col_index(const table *t, const char *name, const char *path)
{
    for (int i = 0; i < t->ncols; i++)
        if (strcmp(t->names[i], name) == 0) return i;
    char list[256] = "";
    for (int k = 0; k < t->ncols && strlen(list) < 200; k++) {
        strcat(list, k ? ", " : "");
        strncat(list, t->names[k], 40);
    }
    fz_err err;
    fz_fail(&err, FZ_EDATA, "%s: no column '%s' (columns: %s)", path, name, list);
    die(&err);
    return -1;
}

typedef struct series {
    int tab, xc, yc;
    char name[96];
} series;

static void run_lines(char **in, int nin, const char *out)
{
    fz_err err;
    for (int i = 0; i < nin; i++) read_table(in[i], &tabs[i]);
    /* the series: every y column of every file */
    series sr[64];
    int ns = 0;
    char ybuf[4096];
    const char *ynames[MAX_COLS + 1];
    int ny = 0;
    if (opt_y) {
        snprintf(ybuf, sizeof ybuf, "%s", opt_y);
        ny = fz_split_names(ybuf, ynames, MAX_COLS + 1);
    }
    for (int i = 0; i < nin; i++) {
        table *t = &tabs[i];
        int xc = opt_x ? col_index(t, opt_x, in[i]) : 0;
        int nyc = opt_y ? ny : t->ncols;
        for (int j = 0; j < nyc; j++) {
            int yc = opt_y ? col_index(t, ynames[j], in[i]) : j;
            if (!opt_y && yc == xc) continue;
            if (ns == 64) {
                usage_msg("more than %s series", "64");
            }
            series *s = &sr[ns++];
            s->tab = i, s->xc = xc, s->yc = yc;
            if (nin > 1)
                snprintf(s->name, sizeof s->name, "%.40s: %.40s", base_name(in[i]), t->names[yc]);
            else
                snprintf(s->name, sizeof s->name, "%.90s", t->names[yc]);
        }
    }
    if (ns == 0) {
        free_tables();
        fz_fail(&err, FZ_EDATA, "%s: no column to draw besides x", in[0]);
        die(&err);
    }
    if (opt_labels) {
        char lb[4096];
        const char *ls[65];
        snprintf(lb, sizeof lb, "%s", opt_labels);
        int nl = fz_split_names(lb, ls, 65);
        if (nl != ns) {
            char msg[64];
            snprintf(msg, sizeof msg, "%d", ns);
            usage_msg("-L: expected one name per series (%s series)", msg);
        }
        for (int i = 0; i < ns; i++) snprintf(sr[i].name, sizeof sr[i].name, "%s", ls[i]);
    }
    /* range */
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    size_t maxpts = 0;
    for (int i = 0; i < ns; i++) {
        table *t = &tabs[sr[i].tab];
        size_t np = 0;
        for (size_t r = 0; r < t->rows; r++) {
            double x = t->v[r * t->ncols + sr[i].xc], y = t->v[r * t->ncols + sr[i].yc];
            if (isnan(x) || isnan(y) || (opt_logy && !(y > 0))) continue;
            if (opt_logy) y = log10(y);
            if (x < xlo) xlo = x;
            if (x > xhi) xhi = x;
            if (y < ylo) ylo = y;
            if (y > yhi) yhi = y;
            np++;
        }
        if (np > maxpts) maxpts = np;
    }
    if (!maxpts) {
        free_tables();
        fz_fail(&err, FZ_EDATA, "%s: no %s values to draw", in[0], opt_logy ? "positive" : "numeric");
        die(&err);
    }
    fz_legend_item items[65];
    for (int i = 0; i < ns; i++) items[i] = (fz_legend_item){sr[i].name, fz_palette(i), 0};
    if (opt_diag) items[ns] = (fz_legend_item){"chance (y = x)", 0x999999, 0};
    int ni = ns + (opt_diag && ns < 64 ? 1 : 0);
    fz_axes a = layout(0);
    a.logy = opt_logy;
    if (opt_diag && !opt_logy) {
        /* ROC: both axes from 0 to 1 (at least) */
        if (xlo > 0) xlo = 0;
        if (ylo > 0) ylo = 0;
        if (xhi < 1) xhi = 1;
        if (yhi < 1) yhi = 1;
    }
    set_range(&a, xlo, xhi, ylo, yhi, 0.04);
    /* The legend where it hides the least of the lines (their segments, not only their
     * points, and the diagonal); when every place inside would hide some, outside on the
     * right, the plot area narrowed to make room. */
    int show_legend = ni > 1 || opt_labels, lx = 0, ly = 0;
    if (show_legend) {
        fz_xy xy[65];
        double dg[2] = {a.xmin < a.ymin ? a.xmin : a.ymin, a.xmax > a.ymax ? a.xmax : a.ymax};
        for (int i = 0; i < ns; i++) {
            table *t = &tabs[sr[i].tab];
            xy[i] = (fz_xy){t->v + sr[i].xc, t->v + sr[i].yc, t->rows, (size_t)t->ncols};
        }
        int nxy = ns;
        if (opt_diag && !opt_logy) xy[nxy++] = (fz_xy){dg, dg, 2, 1};
        int lw, lh;
        fz_legend_size(items, ni, &lw, &lh);
        if (fz_legend_place(&a, lw, lh, xy, nxy, &lx, &ly) > 0) {
            fz_axes b = layout(lw + 24);
            if (b.x1 - b.x0 >= 200) {
                b.logy = a.logy;
                b.xmin = a.xmin, b.xmax = a.xmax, b.ymin = a.ymin, b.ymax = a.ymax;
                a = b;
                lx = a.x1 + 12;
                ly = a.y0;
            }
        }
    }
    chart_canvas();
    const table *t0 = &tabs[0];
    char yl[256] = "";
    for (int i = 0; i < ns && strlen(yl) < 180; i++) {
        int dup = 0;
        for (int j = 0; j < i; j++)
            if (strcmp(tabs[sr[j].tab].names[sr[j].yc], tabs[sr[i].tab].names[sr[i].yc]) == 0) dup = 1;
        if (dup) continue;
        if (yl[0]) strcat(yl, ", ");
        strncat(yl, tabs[sr[i].tab].names[sr[i].yc], 60);
    }
    fz_axes_draw(&cv, &a, opt_xlabel ? opt_xlabel : t0->names[sr[0].xc],
                 opt_ylabel ? opt_ylabel : yl);
    fz_draw_title(&cv, &a, 14, opt_title);
    if (opt_diag) {
        int save[4] = {cv.clip_x0, cv.clip_y0, cv.clip_x1, cv.clip_y1};
        fz_canvas_clip(&cv, a.x0, a.y0, a.x1, a.y1);
        double lo = a.xmin < a.ymin ? a.xmin : a.ymin, hi = a.xmax > a.ymax ? a.xmax : a.ymax;
        /* dashed: 8 px on, 6 off */
        double x0 = fz_axes_px(&a, lo), y0 = fz_axes_py(&a, lo), x1 = fz_axes_px(&a, hi),
               y1 = fz_axes_py(&a, hi), len = hypot(x1 - x0, y1 - y0);
        for (double d = 0; d < len; d += 14) {
            double e = d + 8 < len ? d + 8 : len;
            fz_draw_line(&cv, x0 + (x1 - x0) * d / len, y0 + (y1 - y0) * d / len,
                         x0 + (x1 - x0) * e / len, y0 + (y1 - y0) * e / len, 2, 0x999999);
        }
        fz_canvas_clip(&cv, save[0], save[1], save[2], save[3]);
    }
    /* each series; missing cells break its line; dots when there are few points */
    double *xs = NULL, *ys = NULL;
    size_t maxrows = 0;
    for (int i = 0; i < nin; i++)
        if (tabs[i].rows > maxrows) maxrows = tabs[i].rows;
    if (!(xs = fz_malloc((maxrows + 1) * sizeof *xs, &err)) ||
        !(ys = fz_malloc((maxrows + 1) * sizeof *ys, &err))) {
        free(xs);
        die(&err);
    }
    for (int i = 0; i < ns; i++) {
        table *t = &tabs[sr[i].tab];
        for (size_t r = 0; r < t->rows; r++) {
            xs[r] = t->v[r * t->ncols + sr[i].xc];
            ys[r] = t->v[r * t->ncols + sr[i].yc];
        }
        fz_plot_polyline(&cv, &a, xs, ys, t->rows, 2, fz_palette(i));
        if (maxpts <= 40)
            for (size_t r = 0; r < t->rows; r++)
                if (!isnan(xs[r]) && !isnan(ys[r]))
                    fz_plot_marker(&cv, &a, xs[r], ys[r], 3.5, fz_palette(i));
    }
    if (show_legend) fz_legend_draw(&cv, lx, ly, items, ni);
    free(xs);
    free(ys);
    write_png(out);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    fz_err err = {0};
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) help();
    if (argc < 2) usage_msg("no mode given%s", "");
    const char *mode = argv[1];
    enum { GRID, STRIPS, SCATTER, LINES } m;
    if (strcmp(mode, "grid") == 0) m = GRID;
    else if (strcmp(mode, "strips") == 0) m = STRIPS;
    else if (strcmp(mode, "scatter") == 0) m = SCATTER;
    else if (strcmp(mode, "lines") == 0) m = LINES;
    else usage_msg("unknown mode '%s' (grid, strips, scatter, lines)", mode);

    enum { O_COLS = 256, O_SCALE, O_GAP, O_RANGE, O_CAPTION, O_DIMS, O_MARKER, O_ELL, O_PATH,
           O_XLIM, O_YLIM, O_LOGY, O_DIAG, O_SIZE, O_XLABEL, O_YLABEL };
    static const struct option longopts[] = {
        {"help", no_argument, 0, 'h'},
        {"title", required_argument, 0, 't'},
        {"field", required_argument, 0, 'f'},
        {"labels", required_argument, 0, 'L'},
        {"cols", required_argument, 0, O_COLS},
        {"scale", required_argument, 0, O_SCALE},
        {"gap", required_argument, 0, O_GAP},
        {"range", required_argument, 0, O_RANGE},
        {"caption", required_argument, 0, O_CAPTION},
        {"color", required_argument, 0, 'c'},
        {"dims", required_argument, 0, O_DIMS},
        {"marker", required_argument, 0, O_MARKER},
        {"ellipses", required_argument, 0, O_ELL},
        {"path", required_argument, 0, O_PATH},
        {"xlim", required_argument, 0, O_XLIM},
        {"ylim", required_argument, 0, O_YLIM},
        {"logy", no_argument, 0, O_LOGY},
        {"diag", no_argument, 0, O_DIAG},
        {"size", required_argument, 0, O_SIZE},
        {"xlabel", required_argument, 0, O_XLABEL},
        {"ylabel", required_argument, 0, O_YLABEL},
        {0, 0, 0, 0}};
    /* Which options each mode takes: an option of another mode is a usage error. */
    static const char *const takes[4] = {
        "htfn" "\x01\x02\x03\x04\x05",       /* grid: cols scale gap range caption */
        "htfnL" "\x01\x02\x03\x04",          /* strips */
        "htfnc" "\x06\x07\x08\x09\x0a\x0b\x0e\x0f\x10", /* scatter */
        "htxyL" "\x0a\x0b\x0c\x0d\x0e\x0f\x10",         /* lines */
    };
    opterr = 0;
    optind = 2;
    int c;
    double d0, d1;
    while ((c = getopt_long(argc, argv, ":ht:f:L:n:c:x:y:", longopts, NULL)) != -1) {
        int key = c >= 256 ? c - 255 : c;
        if (c != ':' && c != '?' && !strchr(takes[m], key))
            usage_msg("option '%s' does not apply to this mode", argv[optind - 1]);
        switch (c) {
        case 'h': help(); break;
        case 't': opt_title = optarg; break;
        case 'f':
            if (nfields == MAX_INPUTS) usage_msg("more than %s -f options", "32");
            opt_fields[nfields++] = optarg;
            break;
        case 'L': opt_labels = optarg; break;
        case 'n':
            if (fz_parse_long(optarg, 1, MAX_TILES, &opt_n, "-n", &err)) usage_msg("%s", err.msg);
            break;
        case 'c': opt_color = optarg; break;
        case 'x': opt_x = optarg; break;
        case 'y': opt_y = optarg; break;
        case O_COLS:
            if (fz_parse_long(optarg, 1, 1000, &opt_cols, "--cols", &err)) usage_msg("%s", err.msg);
            break;
        case O_SCALE:
            if (fz_parse_long(optarg, 1, 64, &opt_scale, "--scale", &err)) usage_msg("%s", err.msg);
            break;
        case O_GAP:
            if (fz_parse_long(optarg, 0, 64, &opt_gap, "--gap", &err)) usage_msg("%s", err.msg);
            break;
        case O_RANGE: parse_pair(optarg, "--range", &opt_lo, &opt_hi, 1); break;
        case O_CAPTION: opt_caption = optarg; break;
        case O_DIMS:
            parse_pair(optarg, "--dims", &d0, &d1, 0);
            if (d0 < 0 || d1 < 0 || d0 != floor(d0) || d1 != floor(d1) || d0 > 1e6 || d1 > 1e6)
                usage_msg("--dims: '%s' is not two value indices I,J", optarg);
            opt_dim0 = (long)d0, opt_dim1 = (long)d1;
            break;
        case O_MARKER:
            if (fz_parse_double(optarg, 0.5, 50, &opt_marker, "--marker", &err)) usage_msg("%s", err.msg);
            break;
        case O_ELL: opt_ellipses = optarg; break;
        case O_PATH: opt_paths = optarg; break;
        case O_XLIM: parse_pair(optarg, "--xlim", &opt_xlim[0], &opt_xlim[1], 1); break;
        case O_YLIM: parse_pair(optarg, "--ylim", &opt_ylim[0], &opt_ylim[1], 1); break;
        case O_LOGY: opt_logy = 1; break;
        case O_DIAG: opt_diag = 1; break;
        case O_SIZE: {
            char *x = strchr(optarg, 'x'), buf[32];
            if (!x || (size_t)(x - optarg) >= sizeof buf) usage_msg("--size: expected WxH, got '%s'", optarg);
            memcpy(buf, optarg, (size_t)(x - optarg));
            buf[x - optarg] = 0;
            if (fz_parse_long(buf, 200, 8000, &opt_w, "--size width", &err) ||
                fz_parse_long(x + 1, 150, 8000, &opt_h, "--size height", &err))
                usage_msg("%s", err.msg);
            break;
        }
        case O_XLABEL: opt_xlabel = optarg; break;
        case O_YLABEL: opt_ylabel = optarg; break;
        case ':': usage_msg("option '%s' needs a value", argv[optind - 1]); break;
        default: usage_msg("unknown option '%s'", argv[optind - 1]); break;
        }
    }
    if (opt_logy && !isnan(opt_ylim[0]) && !(opt_ylim[0] > 0))
        usage_msg("--ylim: a log axis needs positive limits%s", "");
    int nops = argc - optind;
    if (nops < 1) usage_msg("no output picture given%s", "");
    const char *out = argv[argc - 1];
    char **ins = argv + optind;
    int nin = nops - 1;
    if (nin > MAX_INPUTS) usage_msg("more than %s input files", "32");
    switch (m) {
    case GRID:
        if (nin > 1) usage_msg("grid: one input stream, got '%s' too", ins[1]);
        if (nfields > 1) usage_msg("grid: one -f field%s", "");
        run_grid(nin ? ins[0] : "-", out);
        break;
    case STRIPS:
        if (nin < 1) usage_msg("strips: no input stream%s", "");
        run_strips(ins, nin, out);
        break;
    case SCATTER:
        if (nin > 1) usage_msg("scatter: one input stream, got '%s' too", ins[1]);
        if (nfields > 1) usage_msg("scatter: one -f field%s", "");
        run_scatter(nin ? ins[0] : "-", out);
        break;
    case LINES:
        if (nin < 1) usage_msg("lines: no input table%s", "");
        run_lines(ins, nin, out);
        break;
    }
    cleanup();
    return 0;
}
