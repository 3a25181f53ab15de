/* stream.h - the fz row stream (format described in man/fz-stream.5).
 *
 * A stream is a concatenation of standard NumPy .npy (version 1.0) arrays:
 *   1. optionally, one metadata array: dtype '|u1', shape (n,), holding UTF-8 JSON text
 *      (an object: class names, normalisation, provenance);
 *   2. one or more row chunks: 1-D arrays of one structured dtype (the stream's schema),
 *      for example [('id','<u8'),('label','<i4'),('x','<f4',(1,28,28))].
 * Row chunks are written as the rows come, so a stream needs no row count up front and a
 * reader holds at most one chunk. A writer always emits at least one (possibly empty)
 * chunk so that even an empty stream carries its schema.
 *
 * A reader also accepts a plain (non-structured) C-order array of shape (n, d...) as a
 * row chunk: it becomes a single field named "x" of shape (d...).
 *
 * Rows are packed little-endian records of schema->row_size bytes; a field lives at
 * row + field->offset.
 */
#ifndef FZ_STREAM_H
#define FZ_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define FZ_MAX_FIELDS 64
#define FZ_MAX_DIMS 8
#define FZ_NAME_MAX 64
/* Hard limits checked before any allocation. */
#define FZ_MAX_ROW_BYTES ((size_t)1 << 30)      /* one row: 1 GiB */
#define FZ_MAX_CHUNK_ROWS ((uint64_t)1 << 32)   /* rows claimed by one chunk header */
#define FZ_MAX_META_BYTES ((size_t)16 << 20)    /* metadata JSON: 16 MiB */

typedef enum fz_dtype {
    FZ_F4, FZ_F8, FZ_U1, FZ_I1, FZ_U2, FZ_I2, FZ_U4, FZ_I4, FZ_U8, FZ_I8,
    FZ_BYTES /* fixed-length bytes '|S<n>', e.g. file names; NUL-padded */
} fz_dtype;

typedef struct fz_field {
    char name[FZ_NAME_MAX];
    fz_dtype type;
    size_t elem_size;        /* bytes of one element (for FZ_BYTES: the string length n) */
    int ndim;                /* 0 for a scalar field */
    int64_t shape[FZ_MAX_DIMS];
    size_t count;            /* elements per row: product of shape (1 for a scalar) */
    size_t offset;           /* byte offset inside a row */
    size_t size;             /* bytes per row = count * elem_size */
} fz_field;

typedef struct fz_schema {
    int nfields;
    fz_field field[FZ_MAX_FIELDS];
    size_t row_size;
} fz_schema;

/* --- schema --- */
void fz_schema_init(fz_schema *s);
/* Append a field; shape may be NULL when ndim == 0. For FZ_BYTES, elem_size is the string
 * length; for other types pass 0. Fails on duplicate names, too many fields, bad sizes. */
int fz_schema_add(fz_schema *s, const char *name, fz_dtype type, size_t elem_size, int ndim,
                  const int64_t *shape, fz_err *err);
/* Index of a field by name, or -1. */
int fz_schema_find(const fz_schema *s, const char *name);
/* Copy fields of `src` into `dst` except those named in `drop` (NULL-terminated list). */
int fz_schema_copy_except(fz_schema *dst, const fz_schema *src, const char *const *drop,
                          fz_err *err);
/* NumPy descr text, e.g. "[('id', '<u8'), ('x', '<f4', (1, 28, 28))]". */
int fz_schema_descr(const fz_schema *s, char *buf, size_t cap);
/* Equal names, types and shapes. */
int fz_schema_equal(const fz_schema *a, const fz_schema *b);
/* "f4", "u1", "S32", ... */
const char *fz_dtype_name(fz_dtype t, size_t elem_size, char *buf, size_t cap);
/* Shape as text "(1, 28, 28)" or "()" for scalars. */
const char *fz_field_shape_str(const fz_field *f, char *buf, size_t cap);

/* Read element i of a numeric field in row as double / float (FZ_BYTES gives 0). */
double fz_field_get(const fz_field *f, const void *row, size_t i);
/* Convert the whole field of one row to float32 (count values). */
void fz_field_to_f32(const fz_field *f, const void *row, float *out);
/* Store a double into element i of a numeric field (converted, saturated for ints). */
void fz_field_set(const fz_field *f, void *row, size_t i, double v);

/* --- passing fields through --- */
/* Tools add fields to the rows they pass on. A row map copies the fields of an input row
 * that the output keeps (all but those named in drop) to their places in the output row. */
typedef struct fz_rowmap {
    int n;
    size_t src[FZ_MAX_FIELDS], dst[FZ_MAX_FIELDS], size[FZ_MAX_FIELDS];
} fz_rowmap;

/* Start the output schema *out with the input's fields minus drop (NULL-terminated list of
 * names, may be NULL), and build the map. Append the tool's own fields to *out afterwards. */
int fz_rowmap_build(fz_rowmap *map, const fz_schema *in, fz_schema *out,
                    const char *const *drop, fz_err *err);
void fz_rowmap_copy(const fz_rowmap *map, const void *in_row, void *out_row);
/* Split "a,b,c" into a NULL-terminated list (in place: s is modified); at most max-1 names. */
int fz_split_names(char *s, const char **names, int max);

/* --- reading --- */
typedef struct fz_reader fz_reader;

/* Open a stream ("-" or NULL = stdin). Reads the metadata (if any) and the first chunk's
 * header, so the schema is known on return. */
fz_reader *fz_reader_open(const char *path, fz_err *err);
const fz_schema *fz_reader_schema(const fz_reader *r);
/* Metadata JSON text ("{}" when the stream has none). Valid until close. */
const char *fz_reader_meta(const fz_reader *r);
const char *fz_reader_name(const fz_reader *r);
/* Read up to max_rows rows into buf (max_rows * row_size bytes). Returns the number of rows
 * read, 0 at the clean end of the stream, -1 on error (truncation, bad chunk header, a chunk
 * whose dtype differs from the first one). */
long fz_reader_read(fz_reader *r, void *buf, size_t max_rows, fz_err *err);
/* Rows delivered so far. */
uint64_t fz_reader_rows(const fz_reader *r);
void fz_reader_close(fz_reader *r);

/* --- writing --- */
typedef struct fz_writer fz_writer;

/* Open for writing ("-" or NULL = stdout). A named file is written to a temporary name in
 * the same directory and renamed into place by a successful fz_writer_close, so a failed run
 * never leaves a half-written file that looks finished. meta_json may be NULL (no metadata
 * array). chunk_rows 0 picks about 1 MiB per chunk. */
fz_writer *fz_writer_open(const char *path, const fz_schema *s, const char *meta_json,
                          size_t chunk_rows, fz_err *err);
/* Append n rows (n * row_size bytes). Error code FZ_EPIPE when the reader went away. */
int fz_writer_write(fz_writer *w, const void *rows, size_t n, fz_err *err);
/* Flush, write the final chunk, close; on failure the temporary file is removed. Always
 * frees w. */
int fz_writer_close(fz_writer *w, fz_err *err);
/* Give up: remove the temporary file, free w. */
void fz_writer_abort(fz_writer *w);

#endif
