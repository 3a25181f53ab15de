/* test_plot - the canvas, drawing primitives, chart parts, the built-in font and the PNG
 * writer (read back through libpng). */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "canvas.h"
#include "check.h"
#include "font.h"
#include "plot.h"

#define BG 0xffffffu
#define RED 0xff0000u

/* Pixels of colour rgb inside [x0, x1) x [y0, y1). */
static long count_in(const fz_canvas *c, int x0, int y0, int x1, int y1, uint32_t rgb)
{
    long n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            if (fz_canvas_get(c, x, y) == rgb) n++;
    return n;
}

static long count_not_bg(const fz_canvas *c) { return (long)c->w * c->h - count_in(c, 0, 0, c->w, c->h, BG); }

static void test_canvas(void)
{
    fz_canvas c;
    fz_err err = {0};
    CHECK(fz_canvas_init(&c, 0, 10, BG, &err) == -1);
    CHECK_CONTAINS(err.msg, "0x10");
    CHECK(fz_canvas_init(&c, 10, FZ_CANVAS_MAX + 1, BG, &err) == -1);
    CHECK(fz_canvas_init(&c, -5, -5, BG, &err) == -1);
    CHECK(fz_canvas_init(&c, 7, 5, 0x123456, &err) == 0);
    CHECK_EQ_INT(count_in(&c, 0, 0, 7, 5, 0x123456), 35);
    fz_canvas_set(&c, 6, 4, RED);
    CHECK(fz_canvas_get(&c, 6, 4) == RED);
    CHECK(c.px[(4 * 7 + 6) * 3] == 0xff && c.px[(4 * 7 + 6) * 3 + 1] == 0);
    /* outside: ignored, and reads give 0 */
    fz_canvas_set(&c, 7, 0, RED);
    fz_canvas_set(&c, -1, 0, RED);
    fz_canvas_set(&c, 0, 5, RED);
    CHECK_EQ_INT(count_in(&c, 0, 0, 7, 5, RED), 1);
    CHECK(fz_canvas_get(&c, 100, 0) == 0);
    fz_canvas_free(&c);
    CHECK(c.px == NULL);
}

static void test_lines(void)
{
    fz_canvas c;
    fz_err err;
    CHECK(fz_canvas_init(&c, 40, 30, BG, &err) == 0);
    /* horizontal, 2 px wide, along the centre of row 10: rows 10 and 11... */
    fz_draw_line(&c, 5.5, 10.5, 30.5, 10.5, 2, RED);
    long on = count_in(&c, 0, 0, 40, 30, RED);
    CHECK(on >= 2 * 26 && on <= 2 * 28);
    CHECK(fz_canvas_get(&c, 5, 10) == RED && fz_canvas_get(&c, 30, 10) == RED);
    CHECK(fz_canvas_get(&c, 17, 10) == RED);
    CHECK_EQ_INT(count_in(&c, 0, 0, 40, 9, RED), 0);   /* nothing above */
    CHECK_EQ_INT(count_in(&c, 0, 13, 40, 30, RED), 0); /* nothing below */
    CHECK_EQ_INT(count_in(&c, 0, 0, 4, 30, RED), 0);   /* nor left of the start */
    /* a diagonal of width 1 sets the pixels on it and is connected */
    fz_canvas_free(&c);
    CHECK(fz_canvas_init(&c, 40, 30, BG, &err) == 0);
    fz_draw_line(&c, 0.5, 0.5, 20.5, 20.5, 1, RED);
    for (int i = 0; i <= 20; i++) CHECK(fz_canvas_get(&c, i, i) == RED);
    CHECK_EQ_INT(count_in(&c, 0, 0, 40, 30, RED), 21);
    /* a vertical line */
    fz_draw_line(&c, 35.5, 2.5, 35.5, 27.5, 1, 0x00ff00);
    CHECK_EQ_INT(count_in(&c, 35, 0, 36, 30, 0x00ff00), 26);
    fz_canvas_free(&c);
}

static void test_clipping(void)
{
    fz_canvas c;
    fz_err err;
    CHECK(fz_canvas_init(&c, 16, 12, BG, &err) == 0);
    /* Things entirely outside change nothing; wild values neither crash nor write out of
     * bounds (the sanitizer build checks the latter). */
    fz_draw_line(&c, -50, -50, -10, -3, 2, RED);
    fz_draw_line(&c, 20, 0, 90, 11, 3, RED);
    fz_draw_line(&c, NAN, 3, 5, 5, 2, RED);
    fz_draw_line(&c, 3, INFINITY, 5, 5, 2, RED);
    fz_draw_disc(&c, -30, 5, 4, RED);
    fz_draw_rect(&c, 16, 0, 5, 5, RED);
    fz_draw_text(&c, 17, 0, "outside", 1, 0, RED);
    fz_draw_text(&c, -200, 0, "outside", 1, 0, RED);
    fz_draw_text_up(&c, 0, 13, "below", 1, 0, RED);
    CHECK_EQ_INT(count_not_bg(&c), 0);
    /* Huge segments crossing the canvas are cut, not walked pixel by pixel. */
    fz_draw_line(&c, -1e300, 6.5, 1e300, 6.5, 2, RED);
    CHECK_EQ_INT(count_in(&c, 0, 0, 16, 12, RED), 32);
    fz_draw_line(&c, -1e9, -1e9, 1e9, 1e9, 64, 0x00ff00);
    fz_draw_line(&c, -1.7e308, 3, 1.7e308, 4, 2, 0x00ff00); /* dx overflows */
    fz_draw_line(&c, -DBL_MAX, -DBL_MAX, DBL_MAX, DBL_MAX, 1e300, 0x00ff00);
    fz_draw_disc(&c, 8, 6, 1e9, 0x0000ff);
    CHECK_EQ_INT(count_in(&c, 0, 0, 16, 12, 0x0000ff), 16 * 12);
    fz_draw_rect(&c, -2000000000, -2000000000, 2000000000, 2000000000, RED);
    fz_draw_rect(&c, 2, 2, 2147483647, 2147483647, RED);
    CHECK_EQ_INT(count_in(&c, 0, 0, 16, 12, RED), 14 * 10); /* the first is all outside */
    /* text and markers across every edge */
    fz_draw_text(&c, -5, -5, "Edges!", 3, 1, 0x00ff00);
    fz_draw_text(&c, 10, 8, "Edges!", 2, 0, 0x00ff00);
    fz_draw_text_up(&c, -3, -40, "Edges!", 2, 0, 0x00ff00);
    fz_draw_text_up(&c, 12, 5, "Edges!", 1, 1, 0x00ff00);
    fz_draw_frame(&c, -3, -3, 30, 30, 5, 0x00ff00);
    fz_canvas_free(&c);

    /* The clip rectangle limits every primitive. */
    CHECK(fz_canvas_init(&c, 20, 20, BG, &err) == 0);
    fz_canvas_clip(&c, 5, 6, 15, 12);
    fz_draw_rect(&c, 0, 0, 20, 20, RED);
    CHECK_EQ_INT(count_in(&c, 0, 0, 20, 20, RED), 10 * 6);
    CHECK_EQ_INT(count_in(&c, 5, 6, 15, 12, RED), 60);
    fz_draw_line(&c, 0, 0, 19, 19, 3, 0x00ff00);
    fz_draw_text(&c, 0, 0, "WWWW", 2, 1, 0x00ff00);
    CHECK_EQ_INT(count_in(&c, 0, 0, 20, 6, 0x00ff00) + count_in(&c, 0, 12, 20, 20, 0x00ff00) +
                     count_in(&c, 0, 6, 5, 12, 0x00ff00) + count_in(&c, 15, 6, 20, 12, 0x00ff00),
                 0);
    CHECK(count_in(&c, 5, 6, 15, 12, 0x00ff00) > 0);
    fz_canvas_unclip(&c);
    fz_canvas_set(&c, 0, 0, RED);
    CHECK(fz_canvas_get(&c, 0, 0) == RED);
    fz_canvas_clip(&c, -10, -10, 100, 100); /* clamped to the canvas */
    CHECK(c.clip_x0 == 0 && c.clip_y1 == 20);
    fz_canvas_free(&c);
}

static void test_font_and_text(void)
{
    /* every printable glyph but space has ink; space has none; out-of-range bytes are '?' */
    for (int ch = 33; ch < 127; ch++) {
        const unsigned char *g = fz_font_glyph(ch, 0), *b = fz_font_glyph(ch, 1);
        int ink = 0, inkb = 0;
        for (int r = 0; r < FZ_FONT_H; r++) ink += g[r] != 0, inkb += b[r] != 0;
        CHECK(ink > 0 && inkb > 0);
        for (int r = 0; r < FZ_FONT_H; r++) CHECK((g[r] & 1) == 0); /* 7 columns only */
    }
    const unsigned char *sp = fz_font_glyph(' ', 0);
    for (int r = 0; r < FZ_FONT_H; r++) CHECK(sp[r] == 0);
    CHECK(fz_font_glyph(200, 0) == fz_font_glyph('?', 0));
    CHECK(fz_font_glyph(-3, 1) == fz_font_glyph('?', 1));
    CHECK(memcmp(fz_font_glyph('A', 0), fz_font_glyph('B', 0), FZ_FONT_H) != 0);

    fz_canvas c;
    fz_err err;
    CHECK(fz_canvas_init(&c, 100, 60, BG, &err) == 0);
    CHECK_EQ_INT(fz_text_width("Ag8", 1), 3 * FZ_FONT_W);
    CHECK_EQ_INT(fz_text_width("Ag8", 2), 6 * FZ_FONT_W);
    CHECK_EQ_INT(fz_text_width(NULL, 1), 0);
    fz_draw_text(&c, 10, 5, "Ag8", 1, 0, RED);
    long ink = count_in(&c, 0, 0, 100, 60, RED);
    CHECK(ink > 20);
    /* all of it inside the text's box */
    CHECK_EQ_INT(count_in(&c, 10, 5, 10 + 3 * FZ_FONT_W, 5 + FZ_FONT_H, RED), ink);
    /* scale 2 has four times the ink */
    fz_draw_text(&c, 10, 25, "Ag8", 2, 0, 0x00ff00);
    CHECK_EQ_INT(count_in(&c, 0, 0, 100, 60, 0x00ff00), 4 * ink);
    fz_canvas_free(&c);
    /* turned text: same ink, in a box FZ_FONT_H wide and the text's width tall */
    CHECK(fz_canvas_init(&c, 60, 60, BG, &err) == 0);
    fz_draw_text_up(&c, 20, 10, "Ag8", 1, 0, RED);
    CHECK_EQ_INT(count_in(&c, 20, 10, 20 + FZ_FONT_H, 10 + 3 * FZ_FONT_W, RED), ink);
    CHECK_EQ_INT(count_in(&c, 0, 0, 60, 60, RED), ink);
    fz_canvas_free(&c);
}

static void test_ticks_and_axes(void)
{
    double t[16], step;
    int n = fz_ticks(0, 1, 6, t, &step);
    CHECK_EQ_INT(n, 6);
    CHECK_NEAR(step, 0.2, 1e-12);
    CHECK_NEAR(t[0], 0, 1e-12);
    CHECK_NEAR(t[5], 1, 1e-12);
    n = fz_ticks(-5.2, 4.9, 8, t, &step);
    CHECK_NEAR(step, 2, 1e-12);
    CHECK_EQ_INT(n, 5);
    CHECK_NEAR(t[0], -4, 1e-12);
    n = fz_ticks(0.0013, 0.0042, 5, t, &step);
    CHECK_NEAR(step, 0.001, 1e-15);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(fz_ticks(1, 1, 5, t, &step), 0);
    CHECK_EQ_INT(fz_ticks(NAN, 1, 5, t, &step), 0);
    for (int i = 0; i < 8; i++) { /* never more than max */
        double lo = -pow(10, i - 3), hi = 3 * pow(10, i - 2);
        CHECK(fz_ticks(lo, hi, 4, t, &step) <= 4);
    }
    char b[32];
    fz_tick_label(0.25, 0.05, b, sizeof b);
    CHECK_STR(b, "0.25");
    fz_tick_label(-0.0, 0.5, b, sizeof b);
    CHECK_STR(b, "0.0");
    fz_tick_label(1e-17, 0.2, b, sizeof b);
    CHECK_STR(b, "0.0");
    fz_tick_label(150, 50, b, sizeof b);
    CHECK_STR(b, "150");
    fz_tick_label(2e-6, 1e-6, b, sizeof b);
    CHECK_STR(b, "2e-06");
    fz_tick_label(3e7, 1e7, b, sizeof b);
    CHECK_STR(b, "3e+07");

    double lo = 2, hi = 2;
    fz_range_pad(&lo, &hi, 0.05);
    CHECK(lo < 2 && hi > 2);
    lo = 0, hi = 10;
    fz_range_pad(&lo, &hi, 0.1);
    CHECK_NEAR(lo, -1, 1e-12);
    CHECK_NEAR(hi, 11, 1e-12);
    lo = INFINITY, hi = -INFINITY;
    fz_range_pad(&lo, &hi, 0.1);
    CHECK(lo == 0 && hi == 1);

    fz_axes a = {.x0 = 100, .y0 = 50, .x1 = 300, .y1 = 250, .xmin = 0, .xmax = 10, .ymin = -1,
                 .ymax = 1};
    CHECK_NEAR(fz_axes_px(&a, 0), 100, 1e-9);
    CHECK_NEAR(fz_axes_px(&a, 5), 200, 1e-9);
    CHECK_NEAR(fz_axes_py(&a, -1), 250, 1e-9);
    CHECK_NEAR(fz_axes_py(&a, 1), 50, 1e-9);
    a.logy = 1, a.ymin = 0, a.ymax = 2; /* 1 .. 100 */
    CHECK_NEAR(fz_axes_py(&a, 10), 150, 1e-9);
    CHECK(isnan(fz_axes_py(&a, 0)));

    /* Drawn axes: a frame around the plot area, numbers in the margins, a clean inside. */
    fz_canvas c;
    fz_err err;
    CHECK(fz_canvas_init(&c, 400, 320, BG, &err) == 0);
    a.logy = 0, a.ymin = -1, a.ymax = 1;
    fz_axes_draw(&c, &a, "epoch", "loss");
    CHECK(fz_canvas_get(&c, 99, 150) != BG && fz_canvas_get(&c, 300, 150) != BG); /* frame */
    CHECK(fz_canvas_get(&c, 200, 49) != BG && fz_canvas_get(&c, 200, 250) != BG);
    long below = (long)400 * 69 - count_in(&c, 0, 251, 400, 320, BG);  /* x numbers + label */
    long left = (long)99 * 320 - count_in(&c, 0, 0, 99, 320, BG);     /* y numbers + label */
    CHECK(below > 100 && left > 100);
    CHECK_EQ_INT(count_in(&c, 101, 51, 299, 249, 0x222222), 0); /* no ink inside */
    /* data inside the area, clipped at its edge */
    double xs[3] = {0, 5, 20}, ys[3] = {-1, 0, 5};
    fz_plot_polyline(&c, &a, xs, ys, 3, 2, RED);
    CHECK(count_in(&c, 100, 50, 300, 250, RED) > 100);
    CHECK_EQ_INT(count_in(&c, 0, 0, 400, 49, RED), 0);
    CHECK_EQ_INT(count_in(&c, 301, 0, 400, 320, RED), 0);
    fz_plot_marker(&c, &a, 10, 1, 5, 0x00ff00); /* top-right corner: a quarter disc */
    long q = count_in(&c, 0, 0, 400, 320, 0x00ff00);
    CHECK(q > 10 && q < 40);
    fz_draw_title(&c, &a, 10, "A title");
    CHECK(count_in(&c, 0, 0, 400, 40, 0x222222) > 30);
    fz_canvas_free(&c);
}

static void test_ellipse_and_legend(void)
{
    fz_canvas c;
    fz_err err;
    CHECK(fz_canvas_init(&c, 200, 200, BG, &err) == 0);
    fz_axes a = {.x0 = 0, .y0 = 0, .x1 = 200, .y1 = 200, .xmin = -5, .xmax = 5, .ymin = -5,
                 .ymax = 5};
    /* x²/4 + y² = 1 → semi-axes 2 (x) and 1 (y): 40 and 20 pixels */
    double ctr[2] = {0, 0}, M[4] = {0.25, 0, 0, 1};
    CHECK(fz_plot_ellipse(&c, &a, ctr, M, 1, 2, RED, &err) == 0);
    CHECK(count_in(&c, 139, 99, 142, 101, RED) > 0); /* (2, 0) → (140, 100) */
    CHECK(count_in(&c, 58, 99, 61, 101, RED) > 0);   /* (-2, 0) */
    CHECK(count_in(&c, 99, 79, 101, 82, RED) > 0);   /* (0, 1) → (100, 80) */
    CHECK_EQ_INT(count_in(&c, 90, 90, 110, 110, RED), 0); /* hollow */
    CHECK_EQ_INT(count_in(&c, 0, 0, 200, 70, RED), 0);    /* nothing past y = 1.5 */
    double xlo, xhi, ylo, yhi;
    CHECK(fz_ellipse_bounds(ctr, M, 4, &xlo, &xhi, &ylo, &yhi, &err) == 0);
    CHECK_NEAR(xhi, 4, 1e-12);
    CHECK_NEAR(ylo, -2, 1e-12);
    /* a rotated one: M with off-diagonal terms; bounds from M⁻¹ */
    double c2[2] = {1, -1}, R[4] = {2, 1, 1, 2};
    CHECK(fz_ellipse_bounds(c2, R, 3, &xlo, &xhi, &ylo, &yhi, &err) == 0);
    CHECK_NEAR(xhi - 1, sqrt(3 * 2.0 / 3.0), 1e-12);
    CHECK(fz_plot_ellipse(&c, &a, c2, R, 3, 2, 0x00ff00, &err) == 0);
    CHECK(count_in(&c, 0, 0, 200, 200, 0x00ff00) > 50);
    /* not ellipses */
    double bad[4] = {1, 0, 0, -1}, nanm[4] = {1, NAN, 0, 1};
    CHECK(fz_plot_ellipse(&c, &a, ctr, bad, 1, 2, RED, &err) == -1);
    CHECK_CONTAINS(err.msg, "not positive definite");
    CHECK(fz_plot_ellipse(&c, &a, ctr, M, 0, 2, RED, &err) == -1);
    CHECK(fz_plot_ellipse(&c, &a, ctr, nanm, 1, 2, RED, &err) == -1);
    /* a huge ellipse is clipped to the area */
    double tiny[4] = {1e-12, 0, 0, 1e-12};
    CHECK(fz_plot_ellipse(&c, &a, ctr, tiny, 1, 2, RED, &err) == 0);
    fz_canvas_free(&c);

    CHECK(fz_canvas_init(&c, 200, 100, BG, &err) == 0);
    fz_legend_item it[2] = {{"loss", RED, 0}, {"val_loss", 0x00ff00, 1}};
    int w, h;
    fz_legend_size(it, 2, &w, &h);
    CHECK(w >= fz_text_width("val_loss", 1) + 30 && h >= 2 * FZ_FONT_H);
    fz_legend_draw(&c, 10, 10, it, 2);
    CHECK(count_in(&c, 10, 10, 10 + w, 10 + h, RED) > 20);
    CHECK(count_in(&c, 10, 10, 10 + w, 10 + h, 0x00ff00) > 20);
    CHECK(count_in(&c, 10, 10, 10 + w, 10 + h, 0x222222) > 30); /* names */
    CHECK_EQ_INT(count_not_bg(&c) - ((long)w * h - count_in(&c, 10, 10, 10 + w, 10 + h, BG)), 0);
    fz_legend_draw(&c, 190, 95, it, 2); /* past the edge: clipped */
    fz_canvas_free(&c);
    for (int i = 0; i < FZ_PALETTE_N; i++)
        for (int j = 0; j < i; j++) CHECK(fz_palette(i) != fz_palette(j));
    CHECK(fz_palette(FZ_PALETTE_N) == fz_palette(0));
}

/* Read a PNG back with libpng's simplified API as RGB8. */
static unsigned char *read_png(const char *path, int *w, int *h)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&im, path)) return NULL;
    im.format = PNG_FORMAT_RGB;
    unsigned char *buf = malloc(PNG_IMAGE_SIZE(im));
    if (!buf || !png_image_finish_read(&im, NULL, buf, 0, NULL)) {
        free(buf);
        png_image_free(&im);
        return NULL;
    }
    *w = (int)im.width;
    *h = (int)im.height;
    return buf;
}

static int leftover_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp")) n++;
    if (d) closedir(d);
    return n;
}

static void test_png(void)
{
    char dir[] = "/tmp/test_plot.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], bad[300];
    snprintf(path, sizeof path, "%s/pic.png", dir);
    fz_canvas c;
    fz_err err = {0};
    CHECK(fz_canvas_init(&c, 37, 23, BG, &err) == 0);
    for (int y = 0; y < 23; y++)
        for (int x = 0; x < 37; x++)
            fz_canvas_set(&c, x, y, (uint32_t)((x * 7) << 16 | (y * 11) << 8 | ((x * y) & 255)));
    fz_draw_text(&c, 2, 2, "PNG", 1, 1, 0x000000);
    CHECK(fz_png_write(path, &c, &err) == 0);
    int w = 0, h = 0;
    unsigned char *back = read_png(path, &w, &h);
    CHECK(back != NULL);
    if (back) {
        CHECK_EQ_INT(w, 37);
        CHECK_EQ_INT(h, 23);
        CHECK(memcmp(back, c.px, (size_t)37 * 23 * 3) == 0);
        free(back);
    }
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0444) == 0444); /* readable like any file */
    CHECK_EQ_INT(leftover_tmp(dir), 0);
    /* overwrite in place with a new picture */
    fz_draw_rect(&c, 0, 0, 37, 23, RED);
    CHECK(fz_png_write(path, &c, &err) == 0);
    back = read_png(path, &w, &h);
    CHECK(back && back[0] == 0xff && back[1] == 0 && back[3 * 36 + 22 * 37 * 3] == 0xff);
    free(back);

    /* failures: one line naming the file, nothing left behind */
    CHECK(fz_png_write("/dev/full", &c, &err) == -1);
    CHECK_EQ_INT(err.code, FZ_ENOSPC);
    CHECK_CONTAINS(err.msg, "/dev/full");
    CHECK(strchr(err.msg, '\n') == NULL);
    snprintf(bad, sizeof bad, "%s/no/such/dir/pic.png", dir);
    CHECK(fz_png_write(bad, &c, &err) == -1);
    CHECK_CONTAINS(err.msg, bad);
    snprintf(bad, sizeof bad, "%s/pic.png/under-a-file.png", dir);
    CHECK(fz_png_write(bad, &c, &err) == -1);
    CHECK_CONTAINS(err.msg, "under-a-file.png");
    CHECK(fz_png_write(dir, &c, &err) == -1);
    CHECK_CONTAINS(err.msg, "directory");
    CHECK_EQ_INT(leftover_tmp(dir), 0);
    fz_canvas empty = {0};
    CHECK(fz_png_write(path, &empty, &err) == -1);
    back = read_png(path, &w, &h); /* the old picture is still whole */
    CHECK(back != NULL);
    free(back);
    fz_canvas_free(&c);
    unlink(path);
    rmdir(dir);
}

/* Legend placement: the box goes where it covers no drawn line when such a place exists,
 * judged by the segments (not only their end points), and the pixels under the chosen box
 * are checked on a canvas where the lines were really drawn. */
static void test_legend_place(void)
{
    fz_err err;
    fz_canvas c;
    fz_axes a = {40, 20, 440, 380, 0, 1, 0, 1, 0};
    fz_legend_item it[3] = {{"membership", RED, 0}, {"density", 0x0000ffu, 0}, {"chance", 0x999999u, 0}};
    int w, h, x, y;
    fz_legend_size(it, 3, &w, &h);

    /* 1. ROC curves bulging to the top left, and the diagonal: the only free corner is the
     * bottom right, although the top right has no point of either curve under it. */
    double rx[] = {0, 0, 0.1, 0.3, 1}, ry[] = {0, 0.8, 0.9, 0.95, 1};
    double sx[] = {0, 0.02, 0.5, 1}, sy[] = {0, 0.6, 0.85, 1};
    double dg[] = {0, 1};
    fz_xy roc[3] = {{rx, ry, 5, 1}, {sx, sy, 4, 1}, {dg, dg, 2, 0}};
    CHECK(fz_legend_place(&a, w, h, roc, 3, &x, &y) == 0);
    CHECK_MSG(x > 240 && y > 200, "legend at (%d, %d), expected the bottom right", x, y);
    CHECK(fz_canvas_init(&c, 480, 400, BG, &err) == 0);
    fz_plot_polyline(&c, &a, rx, ry, 5, 2, RED);
    fz_plot_polyline(&c, &a, sx, sy, 4, 2, 0x0000ffu);
    fz_plot_polyline(&c, &a, dg, dg, 2, 2, 0x999999u);
    CHECK_EQ_INT(count_in(&c, x - 3, y - 3, x + w + 3, y + h + 3, BG), (long)(w + 6) * (h + 6));
    fz_canvas_free(&c);

    /* 2. Two long segments whose end points all lie outside the plot area: a horizontal
     * line along the top and a vertical one along the right. Counting points sees every
     * place as free; only the bottom left is. */
    double hx[] = {-0.5, 1.5}, hy[] = {0.97, 0.97}, vx[] = {0.97, 0.97}, vy[] = {-0.5, 1.5};
    fz_xy cross[2] = {{hx, hy, 2, 1}, {vx, vy, 2, 1}};
    CHECK(fz_legend_place(&a, w, h, cross, 2, &x, &y) == 0);
    CHECK_MSG(x < 100 && y > 200, "legend at (%d, %d), expected the bottom left", x, y);
    CHECK(fz_canvas_init(&c, 480, 400, BG, &err) == 0);
    fz_plot_polyline(&c, &a, hx, hy, 2, 2, RED);
    fz_plot_polyline(&c, &a, vx, vy, 2, 2, RED);
    CHECK_EQ_INT(count_in(&c, x - 3, y - 3, x + w + 3, y + h + 3, RED), 0);
    fz_canvas_free(&c);

    /* 3. A border all around and a cross through the middle: every place is covered, and
     * the cover says so. */
    double bx[] = {0.02, 0.98, 0.98, 0.02, 0.02}, by[] = {0.02, 0.02, 0.98, 0.98, 0.02};
    double cx[] = {0.5, 0.5, NAN, 0, 1}, cy[] = {0, 1, NAN, 0.5, 0.5};
    fz_xy full[2] = {{bx, by, 5, 1}, {cx, cy, 5, 1}};
    CHECK(fz_legend_place(&a, w, h, full, 2, &x, &y) > 0);

    /* 4. The cover itself: a segment across a 100 px box counts 100 px, its NaN break
     * nothing, an isolated point 1, and a stride picks every other value. */
    fz_axes u = {0, 0, 1000, 1000, 0, 1000, 0, 1000, 0}; /* 1 px per unit, y upwards */
    double lx[] = {-50, 500, NAN, 150, NAN}, ly[] = {850, 850, NAN, 850, NAN};
    fz_xy one = {lx, ly, 5, 1};
    CHECK_NEAR(fz_series_cover(&u, &one, 1, 100, 100, 200, 200), 100 + 1, 1e-9);
    double inter[] = {-50, 850, 500, 850}; /* x and y interleaved */
    fz_xy st = {inter, inter + 1, 2, 2};
    CHECK_NEAR(fz_series_cover(&u, &st, 1, 100, 100, 200, 200), 100, 1e-9);
    CHECK_NEAR(fz_series_cover(&u, &st, 1, 100, 300, 200, 400), 0, 1e-12);
}

int main(void)
{
    test_canvas();
    test_lines();
    test_clipping();
    test_font_and_text();
    test_ticks_and_axes();
    test_ellipse_and_legend();
    test_legend_place();
    test_png();
    return check_report("plot");
}
