/* canvas.h - an RGB canvas in memory and a PNG writer (through libpng).
 *
 * (The header is not called png.h: -Ilib would then hide libpng's <png.h>.)
 *
 * A canvas is w x h pixels, 3 bytes each (R, G, B), rows top to bottom: px is (h, w, 3).
 * Colours are 0xRRGGBB. Every drawing function (see plot.h) writes through
 * fz_canvas_set, which checks the pixel against the canvas and its clip rectangle, so no
 * coordinate, however wild, writes outside the buffer.
 *
 * fz_png_write writes a regular file atomically: the PNG goes to a temporary name in the
 * same directory and is renamed into place only when complete. "-" writes to standard
 * output; an existing non-regular file (a pipe, /dev/stdout, /dev/full) is written in place.
 */
#ifndef FZ_CANVAS_H
#define FZ_CANVAS_H

#include <stdint.h>

#include "util.h"

/* Largest width or height accepted, checked before allocating. */
#define FZ_CANVAS_MAX 16384

typedef struct fz_canvas {
    int w, h;
    unsigned char *px;           /* (h, w, 3) */
    int clip_x0, clip_y0;        /* pixels with clip_x0 <= x < clip_x1 and */
    int clip_x1, clip_y1;        /* clip_y0 <= y < clip_y1 may be written */
} fz_canvas;

/* Allocate a w x h canvas filled with colour bg. -1 with a reason on a bad size. */
int fz_canvas_init(fz_canvas *c, int w, int h, uint32_t bg, fz_err *err);
void fz_canvas_free(fz_canvas *c);
/* Restrict drawing to the rectangle [x0, x1) x [y0, y1) (intersected with the canvas). */
void fz_canvas_clip(fz_canvas *c, int x0, int y0, int x1, int y1);
void fz_canvas_unclip(fz_canvas *c);

static inline void fz_canvas_set(fz_canvas *c, int x, int y, uint32_t rgb)
{
    if (x < c->clip_x0 || y < c->clip_y0 || x >= c->clip_x1 || y >= c->clip_y1) return;
    unsigned char *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0] = (unsigned char)(rgb >> 16);
    p[1] = (unsigned char)(rgb >> 8);
    p[2] = (unsigned char)rgb;
}
/* Colour at (x, y), or 0 outside the canvas. */
uint32_t fz_canvas_get(const fz_canvas *c, int x, int y);

/* Write the canvas as an 8-bit RGB PNG ("-" = stdout). On failure nothing is left at path
 * and the reason names the file: "out.png: No space left on device" (code FZ_ENOSPC). */
int fz_png_write(const char *path, const fz_canvas *c, fz_err *err);

#endif
