/* safetensors.h - read and write model files in the safetensors format.
 *
 * The format (https://github.com/huggingface/safetensors):
 *
 *   8 bytes    N, the header length, unsigned little-endian
 *   N bytes    JSON header, UTF-8, may end with spaces (fz pads it so that the data
 *              section starts at a multiple of 8 bytes)
 *   rest       the data section: raw little-endian tensor bytes, row-major
 *
 * The header is one object. Each member but "__metadata__" is a tensor:
 *
 *   {"enc.0.weight": {"dtype": "F32", "shape": [256, 784], "data_offsets": [0, 802816]},
 *    ...,
 *    "__metadata__": {"arch": "784-256-16", "fz_checksum": "crc32:1a2b3c4d"}}
 *
 * data_offsets are [begin, end) relative to the start of the data section; metadata values
 * are strings only. fz writes "fz_checksum" = "crc32:XXXXXXXX", zlib's CRC-32 of the whole
 * data section, and the loader verifies it whenever it is present; files from other writers
 * simply lack it.
 *
 * What fz_st_load checks, so that later code can trust a loaded file:
 *   - header length <= FZ_ST_MAX_HEADER and <= file size - 8; the header is strict JSON;
 *   - every dtype is known, at most FZ_ST_MAX_DIMS dimensions, names < FZ_ST_MAX_NAME bytes
 *     and unique;
 *   - end - begin == product(shape) * dtype size (overflow checked);
 *   - the tensors tile the data section exactly: no overlap, no gap, no trailing bytes
 *     (the same rule as the reference implementation);
 *   - metadata values are strings; the checksum, when present, matches.
 * Each error is one line naming the file, e.g.
 *   model.st: tensor 'enc.0.weight': data_offsets [0, 12] do not match shape (4, 4) of F32
 *   (64 bytes)
 *
 * Reading a file from NumPy needs nothing beyond the standard library:
 *
 *   import json, struct, numpy as np
 *   def load_safetensors(path):
 *       b = open(path, 'rb').read()
 *       n = struct.unpack('<Q', b[:8])[0]
 *       h = json.loads(b[8:8 + n])
 *       meta = h.pop('__metadata__', {})
 *       dt = {'F32': '<f4', 'F64': '<f8', 'I32': '<i4', 'I64': '<i8', 'U8': 'u1'}
 *       t = {k: np.frombuffer(b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]],
 *                             dt[v['dtype']]).reshape(v['shape']) for k, v in h.items()}
 *       return t, meta
 *
 * Known dtypes and their sizes: BOOL U8 I8 (1), F16 BF16 I16 U16 (2), F32 I32 U32 (4),
 * F64 I64 U64 (8). fz computes with F32; the others are carried as raw bytes.
 */
#ifndef FZ_SAFETENSORS_H
#define FZ_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define FZ_ST_MAX_DIMS 8
#define FZ_ST_MAX_NAME 128 /* tensor names are shorter than this (bytes, without NUL) */
#define FZ_ST_MAX_HEADER ((uint64_t)100 << 20)
#define FZ_ST_MAX_META 4096 /* metadata entries per file */

typedef struct fz_st_tensor {
    char name[FZ_ST_MAX_NAME];
    char dtype[8];                  /* "F32", ... */
    int ndim;                       /* 0 (a scalar) .. FZ_ST_MAX_DIMS */
    int64_t shape[FZ_ST_MAX_DIMS];  /* (ndim) */
    size_t offset, nbytes;          /* [offset, offset + nbytes) of the data section */
} fz_st_tensor;

/* Size in bytes of one element of a dtype, 0 if unknown. */
size_t fz_st_dtype_size(const char *dtype);

/* ---- reading ---- */

typedef struct fz_st_file fz_st_file; /* a loaded file: header parsed, data in memory */

/* Load and validate a whole file (see above). The data section is held in its own
 * allocation, aligned for any element type. */
fz_st_file *fz_st_load(const char *path, fz_err *err);
/* The same from bytes in memory (copied); name is used in error messages. */
fz_st_file *fz_st_load_mem(const void *buf, size_t len, const char *name, fz_err *err);
void fz_st_free(fz_st_file *f);

/* Tensors in header order. */
int fz_st_count(const fz_st_file *f);
const fz_st_tensor *fz_st_get(const fz_st_file *f, int i); /* NULL when out of range */
const fz_st_tensor *fz_st_find(const fz_st_file *f, const char *name); /* NULL if absent */
/* The tensor's bytes (t->nbytes of them), little-endian as in the file, aligned to the
 * element size (fz's writer aligns every tensor; from a file whose writer did not, the
 * loader copies the tensors to aligned places). t must come from this file. */
const void *fz_st_data(const fz_st_file *f, const fz_st_tensor *t);
/* Find a tensor and check it is F32 of exactly the given shape; returns its data or NULL
 * with a reason such as "model.st: tensor 'w': shape (3, 4), expected (4, 4)". A
 * convenience for model loaders: shape (ndim). */
const float *fz_st_f32(const fz_st_file *f, const char *name, int ndim, const int64_t *shape,
                       fz_err *err);

/* Metadata value for key, NULL if absent. */
const char *fz_st_meta(const fz_st_file *f, const char *key);
int fz_st_meta_count(const fz_st_file *f);
const char *fz_st_meta_key(const fz_st_file *f, int i); /* NULL when out of range */

/* Load a file just to validate it, including the checksum, which must be present. */
int fz_st_verify(const char *path, fz_err *err);

/* ---- writing ---- */

/* Collect tensors (pointers, not copied: the data must stay valid until fz_st_write) and
 * metadata, then write the file atomically. Tensors are stored in the order added. */
typedef struct fz_st_writer fz_st_writer;

fz_st_writer *fz_st_writer_new(fz_err *err);
/* shape (ndim); nbytes must equal product(shape) * dtype size. Names must be unique,
 * non-empty, shorter than FZ_ST_MAX_NAME and not "__metadata__". */
int fz_st_add(fz_st_writer *w, const char *name, const char *dtype, const void *data,
              size_t nbytes, int ndim, const int64_t *shape, fz_err *err);
int fz_st_add_f32(fz_st_writer *w, const char *name, const float *data, int ndim,
                  const int64_t *shape, fz_err *err);
/* Set (or replace) a metadata string. "fz_checksum" is reserved for the writer. */
int fz_st_set_meta(fz_st_writer *w, const char *key, const char *value, fz_err *err);
/* Write to "<path>.tmp.<pid>" in the same directory, fsync, rename over path, fsync the
 * directory. On any failure the temporary file is removed and an existing file at path is
 * left untouched; a full disk gives code FZ_ENOSPC ("model.st: No space left on device").
 * The data section is laid out by element size, largest first, so every tensor is aligned;
 * the header lists the tensors in the order added. The writer may be written more than
 * once. */
int fz_st_write(fz_st_writer *w, const char *path, fz_err *err);
void fz_st_writer_free(fz_st_writer *w);

#endif
