/* plot.c - drawing primitives and chart parts on an RGB canvas. */
#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Colours of the chart furniture: dark enough to read, grid light enough to recede. */
#define INK 0x222222u
#define FRAME 0x444444u
#define GRID 0xe4e4e4u
#define LEGEND_FRAME 0xaaaaaau

/* ---- primitives ---- */

void fz_draw_rect(fz_canvas *c, int x, int y, int w, int h, uint32_t rgb)
{
    /* Clamp first (in wide arithmetic) so a huge rectangle costs only the visible pixels. */
    long long xa = x, ya = y, xb = (long long)x + w, yb = (long long)y + h;
    if (xa < c->clip_x0) xa = c->clip_x0;
    if (ya < c->clip_y0) ya = c->clip_y0;
    if (xb > c->clip_x1) xb = c->clip_x1;
    if (yb > c->clip_y1) yb = c->clip_y1;
    for (long long j = ya; j < yb; j++)
        for (long long i = xa; i < xb; i++) fz_canvas_set(c, (int)i, (int)j, rgb);
}

void fz_draw_frame(fz_canvas *c, int x, int y, int w, int h, int t, uint32_t rgb)
{
    if (w <= 0 || h <= 0 || t <= 0) return;
    if (t > w / 2 + 1 || t > h / 2 + 1) {
        fz_draw_rect(c, x, y, w, h, rgb);
        return;
    }
    fz_draw_rect(c, x, y, w, t, rgb);
    fz_draw_rect(c, x, y + h - t, w, t, rgb);
    fz_draw_rect(c, x, y + t, t, h - 2 * t, rgb);
    fz_draw_rect(c, x + w - t, y + t, t, h - 2 * t, rgb);
}

/* Liang-Barsky: cut the segment to the box; 0 when nothing of it is inside. */
static int clip_segment(double *x0, double *y0, double *x1, double *y1, double bx0, double by0,
                        double bx1, double by1)
{
    if (!isfinite(*x0) || !isfinite(*y0) || !isfinite(*x1) || !isfinite(*y1)) return 0;
    double dx = *x1 - *x0, dy = *y1 - *y0, t0 = 0, t1 = 1;
    double p[4] = {-dx, dx, -dy, dy};
    double q[4] = {*x0 - bx0, bx1 - *x0, *y0 - by0, by1 - *y0};
    double edge[4] = {bx0, bx1, by0, by1};
    int e0 = -1, e1 = -1; /* the box edge each end was cut at */
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0) return 0;
            continue;
        }
        double r = q[i] / p[i];
        if (p[i] < 0) {
            if (r > t1) return 0;
            if (r > t0) t0 = r, e0 = i;
        } else {
            if (r < t0) return 0;
            if (r < t1) t1 = r, e1 = i;
        }
    }
    /* An end cut at an edge takes that edge's coordinate exactly: x0 + t*dx would lose all
     * precision for huge coordinates (-1e300 + 0.5 * 2e300). */
    double ax = *x0 + t0 * dx, ay = *y0 + t0 * dy, bx = *x0 + t1 * dx, by = *y0 + t1 * dy;
    if (e0 >= 0) *(e0 < 2 ? &ax : &ay) = edge[e0];
    if (e1 >= 0) *(e1 < 2 ? &bx : &by) = edge[e1];
    *x0 = ax, *y0 = ay, *x1 = bx, *y1 = by;
    /* dx or dy may overflow to infinity for ends near the double range */
    return isfinite(ax) && isfinite(ay) && isfinite(bx) && isfinite(by);
}

void fz_draw_line(fz_canvas *c, double x0, double y0, double x1, double y1, double width,
                  uint32_t rgb)
{
    if (!(width > 0)) return;
    if (width > 64) width = 64;
    double m = width + 2; /* the stamp reaches this far past the clip box */
    if (!clip_segment(&x0, &y0, &x1, &y1, c->clip_x0 - m, c->clip_y0 - m, c->clip_x1 + m,
                      c->clip_y1 + m))
        return;
    double dx = x1 - x0, dy = y1 - y0;
    double len = fabs(dx) > fabs(dy) ? fabs(dx) : fabs(dy);
    if (!(len < 1e6)) return; /* cannot happen after clipping; keeps the cast defined */
    long n = (long)ceil(len);  /* at most the clip box's size plus margins */
    int iw = (int)(width + 0.5);
    if (iw < 1) iw = 1;
    for (long k = 0; k <= n; k++) {
        double t = n ? (double)k / (double)n : 0;
        double px = x0 + t * dx, py = y0 + t * dy;
        if (iw <= 2) {
            /* A square stamp: crisp 1-2 px lines. */
            int sx = (int)floor(px - iw / 2.0 + 0.5), sy = (int)floor(py - iw / 2.0 + 0.5);
            fz_draw_rect(c, sx, sy, iw, iw, rgb);
        } else {
            fz_draw_disc(c, px, py, width / 2, rgb);
        }
    }
}

void fz_draw_disc(fz_canvas *c, double cx, double cy, double r, uint32_t rgb)
{
    if (!isfinite(cx) || !isfinite(cy) || !(r > 0)) return;
    double ya = floor(cy - r), yb = ceil(cy + r), xa = floor(cx - r), xb = ceil(cx + r);
    if (ya < c->clip_y0) ya = c->clip_y0;
    if (xa < c->clip_x0) xa = c->clip_x0;
    if (yb > c->clip_y1) yb = c->clip_y1;
    if (xb > c->clip_x1) xb = c->clip_x1;
    for (int y = (int)ya; y < (int)yb; y++)
        for (int x = (int)xa; x < (int)xb; x++) {
            double ex = x + 0.5 - cx, ey = y + 0.5 - cy;
            if (ex * ex + ey * ey <= r * r) fz_canvas_set(c, x, y, rgb);
        }
}

int fz_text_width(const char *s, int scale)
{
    size_t n = s ? strlen(s) : 0;
    if (scale < 1) scale = 1;
    long long w = (long long)n * FZ_FONT_W * scale;
    return w > 1000000000 ? 1000000000 : (int)w;
}

/* One glyph; rot = 0 upright with top-left (x, y), rot = 1 turned counter-clockwise where
 * (x, y) is the top-left of the turned cell. */
static void glyph(fz_canvas *c, int x, int y, int ch, int scale, int bold, int rot, uint32_t rgb)
{
    const unsigned char *rows = fz_font_glyph(ch, bold);
    for (int gy = 0; gy < FZ_FONT_H; gy++)
        for (int gx = 0; gx < FZ_FONT_W; gx++) {
            if (!(rows[gy] & (0x80 >> gx))) continue;
            int px = rot ? x + gy * scale : x + gx * scale;
            int py = rot ? y + (FZ_FONT_W - 1 - gx) * scale : y + gy * scale;
            fz_draw_rect(c, px, py, scale, scale, rgb);
        }
}

void fz_draw_text(fz_canvas *c, int x, int y, const char *s, int scale, int bold, uint32_t rgb)
{
    if (!s) return;
    if (scale < 1) scale = 1;
    for (long long cx = x; *s; s++, cx += (long long)FZ_FONT_W * scale) {
        if (cx >= c->clip_x1) break;
        if (cx + FZ_FONT_W * scale <= c->clip_x0) continue;
        glyph(c, (int)cx, y, (unsigned char)*s, scale, bold, 0, rgb);
    }
}

void fz_draw_text_up(fz_canvas *c, int x, int y, const char *s, int scale, int bold,
                     uint32_t rgb)
{
    if (!s) return;
    if (scale < 1) scale = 1;
    /* The first character sits at the bottom of the box. */
    long long cy = (long long)y + fz_text_width(s, scale) - (long long)FZ_FONT_W * scale;
    for (; *s; s++, cy -= (long long)FZ_FONT_W * scale) {
        if (cy + FZ_FONT_W * scale <= c->clip_y0) break;
        if (cy >= c->clip_y1) continue;
        glyph(c, x, (int)cy, (unsigned char)*s, scale, bold, 1, rgb);
    }
}

uint32_t fz_palette(int i)
{
    static const uint32_t pal[FZ_PALETTE_N] = {
        0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b,
        0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf, 0x000000, 0xe6ab02};
    if (i < 0) i = -i;
    return pal[i % FZ_PALETTE_N];
}

/* ---- charts ---- */

double fz_axes_px(const fz_axes *a, double x)
{
    double span = a->xmax - a->xmin;
    return a->x0 + (x - a->xmin) / span * (a->x1 - a->x0);
}

double fz_axes_py(const fz_axes *a, double y)
{
    if (a->logy) y = y > 0 ? log10(y) : NAN;
    double span = a->ymax - a->ymin;
    return a->y1 - (y - a->ymin) / span * (a->y1 - a->y0);
}

void fz_range_pad(double *lo, double *hi, double frac)
{
    if (!isfinite(*lo) || !isfinite(*hi) || *lo > *hi) {
        *lo = 0;
        *hi = 1;
        return;
    }
    if (*lo == *hi) {
        double d = fabs(*lo) * 0.1 > 1 ? fabs(*lo) * 0.1 : 1;
        *lo -= d;
        *hi += d;
        return;
    }
    double d = (*hi - *lo) * frac;
    *lo -= d;
    *hi += d;
}

int fz_ticks(double lo, double hi, int max, double *ticks, double *step)
{
    if (max < 2) max = 2;
    *step = 1;
    if (!isfinite(lo) || !isfinite(hi) || !(hi > lo)) return 0;
    double raw = (hi - lo) / (max - 1), mag = pow(10, floor(log10(raw))), s = mag;
    static const double mult[] = {1, 2, 5, 10};
    for (int i = 0; i < 4; i++) {
        s = mult[i] * mag;
        if ((hi - lo) / s <= max - 1 + 1e-9) break;
    }
    *step = s;
    int n = 0;
    for (double k = ceil(lo / s - 1e-9); k * s <= hi + s * 1e-9 && n < max; k++) {
        double v = k * s;
        if (fabs(v) < s * 1e-9) v = 0; /* no "-0" */
        ticks[n++] = v;
    }
    return n;
}

void fz_tick_label(double v, double step, char *buf, size_t cap)
{
    if (fabs(v) < step * 1e-9) v = 0;
    double av = fabs(v);
    if (av != 0 && (av >= 1e6 || (av < 1e-4 && step < 1e-4))) {
        snprintf(buf, cap, "%.3g", v);
        return;
    }
    int d = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (d > 6) d = 6;
    snprintf(buf, cap, "%.*f", d, v);
}

/* Tick positions along y: linear ticks, or powers of ten (with 2 and 5 when the range is
 * short) for a log axis, where ticks hold log10 values and *step is for the labels. */
static int y_ticks(const fz_axes *a, int max, double *t, double *step)
{
    if (!a->logy) return fz_ticks(a->ymin, a->ymax, max, t, step);
    int n = 0;
    double lo = a->ymin, hi = a->ymax;
    if (!isfinite(lo) || !isfinite(hi) || !(hi > lo)) return 0;
    int every = (int)ceil((hi - lo) / (max - 1));
    if (every < 1) every = 1;
    int with25 = hi - lo < 2.5;
    for (double k = floor(lo); k <= ceil(hi) && n < max; k++) {
        static const double m[] = {1, 2, 5};
        for (int i = 0; i < (with25 ? 3 : 1) && n < max; i++) {
            double v = k + log10(m[i]);
            if (i == 0 && (long)k % every) continue;
            if (v >= lo - 1e-9 && v <= hi + 1e-9) t[n++] = v;
        }
    }
    *step = pow(10, floor(lo)); /* labels of 10^v use %g below */
    return n;
}

static void y_label_text(const fz_axes *a, double t, double step, char *buf, size_t cap)
{
    if (a->logy) snprintf(buf, cap, "%g", pow(10, t));
    else fz_tick_label(t, step, buf, cap);
}

void fz_axes_draw(fz_canvas *c, const fz_axes *a, const char *xlabel, const char *ylabel)
{
    double xt[16], yt[32], xs, ys;
    int w = a->x1 - a->x0, h = a->y1 - a->y0;
    /* About one number per 70 px across and 42 px up: dense enough to read values off,
     * sparse enough that numbers of up to 7 characters never touch. */
    int nx = fz_ticks(a->xmin, a->xmax, w / 70 < 2 ? 2 : w / 70 > 12 ? 12 : w / 70, xt, &xs);
    int ny = y_ticks(a, h / 42 < 2 ? 2 : h / 42 > 12 ? 12 : h / 42, yt, &ys);
    char buf[64];
    /* grid */
    for (int i = 0; i < nx; i++) {
        int px = (int)floor(fz_axes_px(a, xt[i]));
        fz_draw_rect(c, px, a->y0, 1, h, GRID);
    }
    for (int i = 0; i < ny; i++) {
        int py = (int)floor(a->y1 - (yt[i] - a->ymin) / (a->ymax - a->ymin) * h);
        fz_draw_rect(c, a->x0, py, w, 1, GRID);
    }
    /* frame just outside the plot area */
    fz_draw_frame(c, a->x0 - 1, a->y0 - 1, w + 2, h + 2, 1, FRAME);
    /* ticks and numbers */
    int th = FZ_FONT_H;
    for (int i = 0; i < nx; i++) {
        int px = (int)floor(fz_axes_px(a, xt[i]));
        fz_draw_rect(c, px, a->y1 + 1, 1, 5, FRAME);
        fz_tick_label(xt[i], xs, buf, sizeof buf);
        fz_draw_text(c, px - fz_text_width(buf, 1) / 2, a->y1 + 8, buf, 1, 0, INK);
    }
    int ywidest = 0;
    for (int i = 0; i < ny; i++) {
        int py = (int)floor(a->y1 - (yt[i] - a->ymin) / (a->ymax - a->ymin) * h);
        fz_draw_rect(c, a->x0 - 6, py, 5, 1, FRAME);
        y_label_text(a, yt[i], ys, buf, sizeof buf);
        int tw = fz_text_width(buf, 1);
        if (tw > ywidest) ywidest = tw;
        fz_draw_text(c, a->x0 - 9 - tw, py - th / 2, buf, 1, 0, INK);
    }
    if (xlabel && *xlabel)
        fz_draw_text(c, a->x0 + w / 2 - fz_text_width(xlabel, 1) / 2, a->y1 + 8 + th + 8, xlabel,
                     1, 1, INK);
    if (ylabel && *ylabel) {
        int x = a->x0 - 9 - ywidest - 8 - th;
        fz_draw_text_up(c, x < 2 ? 2 : x, a->y0 + h / 2 - fz_text_width(ylabel, 1) / 2, ylabel, 1,
                        1, INK);
    }
}

void fz_draw_title(fz_canvas *c, const fz_axes *a, int y, const char *title)
{
    if (!title || !*title) return;
    int cx = a ? (a->x0 + a->x1) / 2 : c->w / 2;
    int scale = 1;
    int x = cx - fz_text_width(title, scale) / 2;
    if (x < 4) x = 4;
    fz_draw_text(c, x, y, title, scale, 1, INK);
}

/* Draw inside the plot area only (one pixel of slack for lines on the frame). */
static void clip_to(fz_canvas *c, const fz_axes *a, int save[4])
{
    save[0] = c->clip_x0, save[1] = c->clip_y0, save[2] = c->clip_x1, save[3] = c->clip_y1;
    fz_canvas_clip(c, a->x0, a->y0, a->x1, a->y1);
}

static void unclip(fz_canvas *c, const int save[4])
{
    fz_canvas_clip(c, save[0], save[1], save[2], save[3]);
}

void fz_plot_polyline(fz_canvas *c, const fz_axes *a, const double *x, const double *y,
                      size_t n, double width, uint32_t rgb)
{
    int save[4];
    clip_to(c, a, save);
    for (size_t i = 1; i < n; i++) {
        double x0 = fz_axes_px(a, x[i - 1]), y0 = fz_axes_py(a, y[i - 1]);
        double x1 = fz_axes_px(a, x[i]), y1 = fz_axes_py(a, y[i]);
        fz_draw_line(c, x0, y0, x1, y1, width, rgb); /* NaN ends draw nothing */
    }
    unclip(c, save);
}

void fz_plot_marker(fz_canvas *c, const fz_axes *a, double x, double y, double r, uint32_t rgb)
{
    int save[4];
    clip_to(c, a, save);
    fz_draw_disc(c, fz_axes_px(a, x), fz_axes_py(a, y), r, rgb);
    unclip(c, save);
}

/* Eigen-decomposition of the symmetric part of M: l[0] <= l[1], v the unit eigenvector of
 * l[0] (that of l[1] is v turned a quarter). */
static int ellipse_axes(const double M[4], double r2, double l[2], double v[2], fz_err *err)
{
    double p = M[0], q = (M[1] + M[2]) / 2, s = M[3];
    for (int i = 0; i < 4; i++)
        if (!isfinite(M[i])) return fz_fail(err, FZ_EDATA, "ellipse matrix has a non-finite entry");
    if (!(r2 > 0) || !isfinite(r2))
        return fz_fail(err, FZ_EDATA, "ellipse level %g is not positive", r2);
    double mid = (p + s) / 2, rad = sqrt((p - s) * (p - s) / 4 + q * q);
    l[0] = mid - rad;
    l[1] = mid + rad;
    if (!(l[0] > 0))
        return fz_fail(err, FZ_EDATA,
                       "ellipse matrix [[%g, %g], [%g, %g]] is not positive definite", M[0], M[1],
                       M[2], M[3]);
    if (q == 0) {
        v[0] = p <= s ? 1 : 0;
        v[1] = p <= s ? 0 : 1;
    } else {
        double nx = q, ny = l[0] - p, nn = sqrt(nx * nx + ny * ny);
        v[0] = nx / nn;
        v[1] = ny / nn;
    }
    return 0;
}

int fz_ellipse_bounds(const double centre[2], const double M[4], double r2, double *xlo,
                      double *xhi, double *ylo, double *yhi, fz_err *err)
{
    double l[2], v[2];
    if (ellipse_axes(M, r2, l, v, err)) return -1;
    /* Half-extents along x and y: sqrt(r2 * (M^-1)_xx) and sqrt(r2 * (M^-1)_yy). */
    double q = (M[1] + M[2]) / 2, det = M[0] * M[3] - q * q;
    double hx = sqrt(r2 * M[3] / det), hy = sqrt(r2 * M[0] / det);
    *xlo = centre[0] - hx;
    *xhi = centre[0] + hx;
    *ylo = centre[1] - hy;
    *yhi = centre[1] + hy;
    return 0;
}

int fz_plot_ellipse(fz_canvas *c, const fz_axes *a, const double centre[2], const double M[4],
                    double r2, double width, uint32_t rgb, fz_err *err)
{
    double l[2], v[2];
    if (ellipse_axes(M, r2, l, v, err)) return -1;
    double s0 = sqrt(r2 / l[0]), s1 = sqrt(r2 / l[1]);
    int save[4];
    clip_to(c, a, save);
    enum { STEPS = 240 };
    double px = 0, py = 0;
    for (int k = 0; k <= STEPS; k++) {
        double t = 2 * M_PI * k / STEPS, u = s0 * cos(t), w = s1 * sin(t);
        double x = centre[0] + u * v[0] - w * v[1], y = centre[1] + u * v[1] + w * v[0];
        double qx = fz_axes_px(a, x), qy = fz_axes_py(a, y);
        if (k) fz_draw_line(c, px, py, qx, qy, width, rgb);
        px = qx;
        py = qy;
    }
    unclip(c, save);
    return 0;
}

/* ---- legend ---- */

enum { LG_PAD = 8, LG_ROW = 19, LG_SAMPLE = 26, LG_GAP = 8 };

void fz_legend_size(const fz_legend_item *items, int n, int *w, int *h)
{
    int tw = 0;
    for (int i = 0; i < n; i++) {
        int t = fz_text_width(items[i].name, 1);
        if (t > tw) tw = t;
    }
    *w = LG_PAD + LG_SAMPLE + LG_GAP + tw + LG_PAD;
    *h = n > 0 ? LG_PAD + n * LG_ROW + LG_PAD - (LG_ROW - FZ_FONT_H) : 0;
}

void fz_legend_draw(fz_canvas *c, int x, int y, const fz_legend_item *items, int n)
{
    if (n <= 0) return;
    int w, h;
    fz_legend_size(items, n, &w, &h);
    fz_draw_rect(c, x, y, w, h, FZ_WHITE);
    fz_draw_frame(c, x, y, w, h, 1, LEGEND_FRAME);
    for (int i = 0; i < n; i++) {
        int ry = y + LG_PAD + i * LG_ROW, mid = ry + FZ_FONT_H / 2;
        if (items[i].marker)
            fz_draw_disc(c, x + LG_PAD + LG_SAMPLE / 2.0, mid, 5, items[i].rgb);
        else
            fz_draw_rect(c, x + LG_PAD, mid - 1, LG_SAMPLE, 3, items[i].rgb);
        fz_draw_text(c, x + LG_PAD + LG_SAMPLE + LG_GAP, ry, items[i].name, 1, 0, INK);
    }
}

/* ---- legend placement ---- */

/* Length in pixels of the segment p0-p1 inside the rectangle [x0, x1] x [y0, y1]
 * (Liang-Barsky clipping: the parameter range t in [0, 1] left inside every edge). */
static double clipped_length(double px0, double py0, double px1, double py1, double x0,
                             double y0, double x1, double y1)
{
    double dx = px1 - px0, dy = py1 - py0, t0 = 0, t1 = 1;
    double p[4] = {-dx, dx, -dy, dy}, q[4] = {px0 - x0, x1 - px0, py0 - y0, y1 - py0};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0) return 0; /* parallel to this edge and outside it */
            continue;
        }
        double t = q[i] / p[i];
        if (p[i] < 0) {
            if (t > t0) t0 = t;
        } else if (t < t1) {
            t1 = t;
        }
        if (t0 > t1) return 0;
    }
    return (t1 - t0) * hypot(dx, dy);
}

double fz_series_cover(const fz_axes *a, const fz_xy *s, int ns, double x0, double y0,
                       double x1, double y1)
{
    double cover = 0;
    for (int k = 0; k < ns; k++) {
        size_t st = s[k].stride ? s[k].stride : 1;
        double qx = NAN, qy = NAN; /* the previous point in pixels, NaN after a break */
        int alone = 0;             /* the previous point has no drawn neighbour so far */
        for (size_t i = 0; i <= s[k].n; i++) {
            double px = NAN, py = NAN;
            if (i < s[k].n) {
                px = fz_axes_px(a, s[k].x[i * st]);
                py = fz_axes_py(a, s[k].y[i * st]);
            }
            int ok = isfinite(px) && isfinite(py);
            if (ok && isfinite(qx)) {
                cover += clipped_length(qx, qy, px, py, x0, y0, x1, y1);
                alone = 0;
            } else if (alone && qx >= x0 && qx <= x1 && qy >= y0 && qy <= y1) {
                cover += 1; /* an isolated point: drawn as a dot at most */
            }
            if (ok && !isfinite(qx)) alone = 1;
            qx = ok ? px : NAN;
            qy = ok ? py : NAN;
        }
    }
    return cover;
}

double fz_legend_place(const fz_axes *a, int w, int h, const fz_xy *s, int ns, int *x, int *y)
{
    enum { INSET = 10, MARGIN = 6 };
    int l = a->x0 + INSET, r = a->x1 - w - INSET, t = a->y0 + INSET, b = a->y1 - h - INSET;
    int mx = (a->x0 + a->x1 - w) / 2, my = (a->y0 + a->y1 - h) / 2;
    /* corners first (top right, top left, bottom right, bottom left), then the sides */
    const int cx[8] = {r, l, r, l, mx, r, mx, l}, cy[8] = {t, t, b, b, t, my, b, my};
    double best = INFINITY;
    for (int c = 0; c < 8; c++) {
        double cov = fz_series_cover(a, s, ns, cx[c] - MARGIN, cy[c] - MARGIN,
                                     cx[c] + w + MARGIN, cy[c] + h + MARGIN);
        if (cov < best) {
            best = cov;
            *x = cx[c];
            *y = cy[c];
        }
    }
    return best;
}
