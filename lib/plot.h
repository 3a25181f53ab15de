/* plot.h - drawing on a canvas (canvas.h): lines, discs, text in the built-in font, and
 * the parts of a chart: axes with ticks and numbers, a legend, series, ellipses.
 *
 * Pixel coordinates have (0, 0) at the top-left corner; pixel (x, y) covers the square
 * [x, x+1) x [y, y+1). Every function clips to the canvas's clip rectangle and accepts any
 * coordinate (huge, negative, NaN): what falls outside is simply not drawn. Nothing here
 * allocates except fz_plot_ellipse's check, and nothing fails except where stated.
 */
#ifndef FZ_PLOT_H
#define FZ_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "canvas.h"
#include "font.h"
#include "util.h"

#define FZ_WHITE 0xffffffu
#define FZ_BLACK 0x000000u
#define FZ_GREY 0x888888u

/* ---- primitives ---- */
/* Filled rectangle of w x h pixels with top-left (x, y). */
void fz_draw_rect(fz_canvas *c, int x, int y, int w, int h, uint32_t rgb);
/* Outline of that rectangle, t pixels thick, inside it. */
void fz_draw_frame(fz_canvas *c, int x, int y, int w, int h, int t, uint32_t rgb);
/* Segment between two points (pixel units, real-valued), width pixels wide. */
void fz_draw_line(fz_canvas *c, double x0, double y0, double x1, double y1, double width,
                  uint32_t rgb);
/* Filled disc: the pixels whose centre is within r of (cx, cy). */
void fz_draw_disc(fz_canvas *c, double cx, double cy, double r, uint32_t rgb);

/* Text in the built-in font (one line; bytes outside printable ASCII show as '?'), each
 * font pixel drawn as scale x scale pixels. (x, y) is the top-left of the first cell. */
void fz_draw_text(fz_canvas *c, int x, int y, const char *s, int scale, int bold, uint32_t rgb);
/* The same turned a quarter counter-clockwise (reads upwards); (x, y) is the top-left of the
 * box it fills, which is FZ_FONT_H*scale wide and fz_text_width tall. */
void fz_draw_text_up(fz_canvas *c, int x, int y, const char *s, int scale, int bold,
                     uint32_t rgb);
/* Width in pixels of s at that scale; the height is FZ_FONT_H * scale. */
int fz_text_width(const char *s, int scale);

/* Colour i of a palette of 12 distinct colours readable on white (matplotlib's tab10,
 * black, mustard); it repeats after 12. */
uint32_t fz_palette(int i);
#define FZ_PALETTE_N 12

/* ---- charts ---- */
typedef struct fz_axes {
    int x0, y0, x1, y1;         /* plot area: pixels [x0, x1) x [y0, y1) */
    double xmin, xmax;          /* data range shown along x */
    double ymin, ymax;          /* along y; log10 of the values when logy */
    int logy;
} fz_axes;

/* Data to pixel coordinates (real-valued). With logy, y <= 0 maps to NAN. */
double fz_axes_px(const fz_axes *a, double x);
double fz_axes_py(const fz_axes *a, double y);
/* Widen [*lo, *hi] by frac of its width on each side; an empty range (lo == hi) becomes
 * lo +- 1 (+- 10% of |lo| when larger); NaN or infinite ends give [0, 1]. */
void fz_range_pad(double *lo, double *hi, double frac);
/* Round values 1, 2 or 5 x 10^k inside [lo, hi], at most max of them (max >= 2), into ticks;
 * returns how many and the step in *step. */
int fz_ticks(double lo, double hi, int max, double *ticks, double *step);
/* Tick number as short text, with as many decimals as the step needs ("0.25", "1e-05"). */
void fz_tick_label(double v, double step, char *buf, size_t cap);
/* Grid lines, frame, ticks with numbers, and the axis labels (NULL for none) around the
 * plot area. Labels go in the margins, so leave about 60 px left and 45 px below. */
void fz_axes_draw(fz_canvas *c, const fz_axes *a, const char *xlabel, const char *ylabel);
/* A title centred above the plot area (or the canvas when a is NULL), in bold, at row y. */
void fz_draw_title(fz_canvas *c, const fz_axes *a, int y, const char *title);

/* Series, clipped to the plot area. A polyline breaks where a value is NaN. */
void fz_plot_polyline(fz_canvas *c, const fz_axes *a, const double *x, const double *y,
                      size_t n, double width, uint32_t rgb);
void fz_plot_marker(fz_canvas *c, const fz_axes *a, double x, double y, double r, uint32_t rgb);
/* The ellipse (p - centre)ᵀ M (p - centre) = r2 in data coordinates (M 2x2 row-major,
 * symmetrised), as a closed polyline. -1 with a reason when M is not positive definite or
 * r2 <= 0 (the set is then not an ellipse). */
int fz_plot_ellipse(fz_canvas *c, const fz_axes *a, const double centre[2], const double M[4],
                    double r2, double width, uint32_t rgb, fz_err *err);
/* The ellipse's bounding box, for choosing the range: 0, or -1 as above. */
int fz_ellipse_bounds(const double centre[2], const double M[4], double r2, double *xlo,
                      double *xhi, double *ylo, double *yhi, fz_err *err);

/* ---- legend ---- */
typedef struct fz_legend_item {
    const char *name;
    uint32_t rgb;
    int marker; /* 1: a disc (scatter classes), 0: a line sample (series) */
} fz_legend_item;

/* Size in pixels of the legend box of n items. */
void fz_legend_size(const fz_legend_item *items, int n, int *w, int *h);
/* Draw it with its top-left corner at (x, y): white box, grey frame, one row per item. */
void fz_legend_draw(fz_canvas *c, int x, int y, const fz_legend_item *items, int n);

/* A series in data coordinates, point i at (x[i * stride], y[i * stride]) (stride 0 means
 * 1); a NaN breaks the line, as in fz_plot_polyline. */
typedef struct fz_xy {
    const double *x, *y;
    size_t n, stride;
} fz_xy;

/* How much of the ns series, drawn on a, lies in the pixel rectangle [x0, x1] x [y0, y1]:
 * the length in pixels of their segments inside it (each clipped to it, so a long segment
 * crossing the box counts even with no point in it), plus 1 per isolated point inside. */
double fz_series_cover(const fz_axes *a, const fz_xy *s, int ns, double x0, double y0,
                       double x1, double y1);
/* Where a legend box of w x h pixels hides the least of the series inside the plot area of
 * a: of the four corners (10 px in from the frame; top right, top left, bottom right,
 * bottom left) and then the middles of the four sides (top, right, bottom, left), the first
 * with the smallest cover of the box widened by 6 px on each side. Sets the box's top-left
 * (*x, *y) and returns that cover: 0 means the legend hides nothing there. */
double fz_legend_place(const fz_axes *a, int w, int h, const fz_xy *s, int ns, int *x, int *y);

#endif
