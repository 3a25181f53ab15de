/* json.h - a small JSON reader (a tree) and a text builder, for stream metadata and
 * safetensors headers. The parser is strict RFC 8259 with limits (depth, size) checked as
 * it goes, so hostile input cannot exhaust the stack or memory. */
#ifndef FZ_JSON_H
#define FZ_JSON_H

#include <stddef.h>

#include "util.h"

#define FZ_JSON_MAX_DEPTH 64
/* Larger inputs, or inputs with more values (strings, numbers, ... arrays, objects), are
 * refused: they bound the memory a hostile text can make the parser allocate. */
#define FZ_JSON_MAX_INPUT ((size_t)64 << 20)
#define FZ_JSON_MAX_NODES (1 << 21)

typedef enum fz_jtype { FZ_JNULL, FZ_JBOOL, FZ_JNUM, FZ_JSTR, FZ_JARR, FZ_JOBJ } fz_jtype;

typedef struct fz_json fz_json; /* one node; the root owns the whole tree */

/* Parse len bytes of UTF-8 JSON text (need not be NUL-terminated). The reason on failure
 * gives the byte offset, e.g. "JSON: offset 17: expected ':'". */
fz_json *fz_json_parse(const char *text, size_t len, fz_err *err);
void fz_json_free(fz_json *root);

fz_jtype fz_json_type(const fz_json *j);
/* Member of an object by key (the last one if repeated), or NULL (also when j is not an
 * object or is NULL). */
const fz_json *fz_json_get(const fz_json *obj, const char *key);
/* Number of elements of an array or members of an object; 0 otherwise. */
size_t fz_json_len(const fz_json *j);
/* Element i of an array, or value of member i of an object; NULL when out of range. */
const fz_json *fz_json_at(const fz_json *j, size_t i);
/* Key of member i of an object; NULL when out of range or not an object. */
const char *fz_json_key_at(const fz_json *obj, size_t i);
/* Value accessors: the fallback when j is NULL or of another type. */
double fz_json_num(const fz_json *j, double fallback);
int fz_json_bool(const fz_json *j, int fallback);
/* NUL-terminated UTF-8 string (escapes decoded; an embedded \u0000 is refused at parse),
 * or NULL when not a string. */
const char *fz_json_str(const fz_json *j);

/* A growing text buffer for building JSON (or any text). Errors are sticky: after an
 * allocation failure every call is a no-op and `failed` is set. */
typedef struct fz_sbuf {
    char *buf; /* NUL-terminated when len > 0 */
    size_t len, cap;
    int failed;
} fz_sbuf;

void fz_sbuf_init(fz_sbuf *b);
void fz_sbuf_free(fz_sbuf *b);
void fz_sbuf_printf(fz_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fz_sbuf_putc(fz_sbuf *b, char c);
/* Append s as a quoted JSON string with escapes (control characters as \uXXXX). Invalid
 * UTF-8 bytes become U+FFFD so the output always parses; a NULL s appends null. */
void fz_sbuf_json_str(fz_sbuf *b, const char *s);
/* Append a number that reads back exactly as the same float/double ("%.9g" / "%.17g"),
 * and null for NaN or infinity (JSON has no such numbers). */
void fz_sbuf_json_f32(fz_sbuf *b, float v);
void fz_sbuf_json_f64(fz_sbuf *b, double v);
/* Append the JSON text of a parsed node (compact). */
void fz_sbuf_json_node(fz_sbuf *b, const fz_json *j);
/* Take the buffer (caller frees); returns NULL if failed. Leaves b empty. */
char *fz_sbuf_take(fz_sbuf *b);

#endif
