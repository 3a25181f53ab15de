/* font.h - a built-in bitmap font, so pictures need no system fonts.
 *
 * Printable ASCII (32..126) in a 7x14 cell, regular and bold, from the public-domain X11
 * "fixed" fonts (see font.c). Each glyph is FZ_FONT_H rows of one byte; bit 7 is the
 * leftmost pixel and the 7 leftmost bits are used. The baseline is row FZ_FONT_ASCENT.
 */
#ifndef FZ_FONT_H_INCLUDED
#define FZ_FONT_H_INCLUDED

#define FZ_FONT_W 7
#define FZ_FONT_H 14
#define FZ_FONT_ASCENT 11
#define FZ_FONT_FIRST 32
#define FZ_FONT_GLYPHS 95

extern const unsigned char fz_font_regular[FZ_FONT_GLYPHS][FZ_FONT_H];
extern const unsigned char fz_font_bold[FZ_FONT_GLYPHS][FZ_FONT_H];

/* The FZ_FONT_H rows of character c; any byte outside printable ASCII draws as '?'. */
const unsigned char *fz_font_glyph(int c, int bold);

#endif
