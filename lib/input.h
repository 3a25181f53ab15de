/* input.h - reading raw data sets: archive members, IDX, CSV, PNG and PNM images.
 *
 * Two layers:
 *   1. Parsers over memory buffers (fz_idx_parse, fz_csv_parse, fz_png_decode,
 *      fz_pnm_decode). They never read past len, check every header field and size
 *      before allocating, and fail with a reason on any truncation or corruption.
 *   2. Loaders that find the bytes (a plain file, a .gz/.bz2/.xz file, a member of a tar,
 *      tar.gz or zip archive read with libarchive and never extracted, or a directory
 *      tree) and build an fz_dataset: n rows of d raw feature values with labels.
 *
 * Raw values are what the source holds: IDX and image samples on the 0..255 scale
 * (16-bit and other PNM maxvals are rescaled to it), CSV cells as written. Normalisation
 * (norm.h) is applied later, when rows are written.
 */
#ifndef FZ_INPUT_H
#define FZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Hard limits, checked before any allocation. */
#define FZ_INPUT_MAX_BYTES ((size_t)1 << 32)   /* one file or archive member: 4 GiB */
/* What a member read through libarchive may take in memory: FZ_INPUT_FREE_BYTES, or
 * FZ_INPUT_MAX_RATIO bytes per byte of the file (or of stdin read so far), whichever is
 * more, up to FZ_INPUT_MAX_BYTES. Holes of sparse tar entries and decompressed data count;
 * the sizes headers claim are never believed. A 10 KB archive thus costs at most 64 MiB;
 * a highly compressible member over 64 MiB must be decompressed first. */
#define FZ_INPUT_FREE_BYTES ((size_t)64 << 20)
#define FZ_INPUT_MAX_RATIO 100
#define FZ_IMAGE_MAX_SIDE 16384                /* width or height of one image */
#define FZ_IMAGE_MAX_PIXELS ((size_t)1 << 26)  /* width * height of one image */
#define FZ_IDX_MAX_DIM 0x7fffffffu             /* one IDX dimension */
#define FZ_CSV_MAX_COLS 100000
#define FZ_MAX_CLASSES 100000
#define FZ_PATH_MAX 255                        /* longest 'path' field kept */

/* ---------------------------------------------------------------- bytes and archives */

/* Bytes of one file or archive member, owned by the blob. */
typedef struct fz_blob {
    unsigned char *data;
    size_t len;
    char *name; /* member path inside the archive, or the file name */
} fz_blob;

void fz_blob_free(fz_blob *b);

/* Is `path` (a file name) read as an archive holding members (tar, zip, compressed tar)
 * rather than as one plain or compressed file? Decided by looking at its content. */
int fz_input_is_archive(const char *path, fz_err *err);

/* Find members by glob pattern (fnmatch without FNM_PATHNAME, so '*' crosses '/') in one
 * pass over `path` ("-" = stdin): out[i] receives the first regular member matching pat[i].
 * A plain or compressed non-archive file is a single member named after the file; it
 * matches every pattern (so "--idx-images train-images.gz" needs no pattern).
 * Fails if a pattern matches nothing, naming the pattern. On failure every out[i] is
 * empty. */
int fz_input_find(const char *path, const char *const *pat, int npat, fz_blob *out,
                  fz_err *err);

/* Call fn for every regular member whose lower-cased path matches one of the patterns
 * (a NULL-terminated list of lower-case globs), in archive order. fn returns 0 to continue,
 * -1 to stop with its error. The blob is only valid during the call (fn may steal b->data
 * by setting it to NULL). */
typedef int (*fz_member_fn)(void *ctx, fz_blob *b, fz_err *err);
int fz_input_each(const char *path, const char *const *pat, fz_member_fn fn, void *ctx,
                  fz_err *err);

/* Read a whole plain file (no decompression) into a blob, with the size limit. */
int fz_read_file(const char *path, fz_blob *out, fz_err *err);

/* ---------------------------------------------------------------- IDX */

/* A parsed IDX file (LeCun's MNIST format): big-endian header, magic 0x0000 08 NDIM
 * (only type 0x08, unsigned bytes, is accepted), NDIM sizes, then the data. */
typedef struct fz_idx {
    int ndim;                  /* 1..4 */
    uint32_t dim[4];
    size_t count;              /* product of dim */
    const unsigned char *data; /* count bytes inside the parsed buffer (no copy) */
} fz_idx;

/* Parse buf. `want_ndim` (1 labels, 3 images; 0 any) is checked. The data must be exactly
 * the size the header claims: fewer bytes is "truncated", more is "trailing bytes". */
int fz_idx_parse(const unsigned char *buf, size_t len, int want_ndim, fz_idx *out,
                 fz_err *err);

/* ---------------------------------------------------------------- images */

/* A decoded image: samples on the 0..255 scale, channel-major. */
typedef struct fz_image {
    int c, h, w;  /* channels (1 gray, 3 RGB), height, width */
    float *px;    /* (c, h, w) */
} fz_image;

void fz_image_free(fz_image *im);
/* Decode a PNG (8- or 16-bit gray, gray+alpha, RGB, RGBA, palette; alpha is dropped,
 * palette expands to RGB). gray != 0 converts colour to one channel (ITU-R 601 weights). */
int fz_png_decode(const unsigned char *buf, size_t len, int gray, fz_image *out, fz_err *err);
/* Decode a PGM/PPM (P2, P5 gray; P3, P6 RGB), maxval 1..65535. */
int fz_pnm_decode(const unsigned char *buf, size_t len, int gray, fz_image *out, fz_err *err);
/* Decode by signature (PNG magic or 'P2'/'P3'/'P5'/'P6'). */
int fz_image_decode(const unsigned char *buf, size_t len, int gray, fz_image *out,
                    fz_err *err);

/* ---------------------------------------------------------------- data sets */

typedef struct fz_dataset {
    size_t n;               /* rows */
    size_t d;               /* raw values per row = product of shape */
    int ndim;               /* 1 (d,) for CSV, 3 (C, H, W) for images and IDX */
    int64_t shape[3];
    unsigned char *x8;      /* (n, d) raw bytes (IDX), or NULL */
    float *xf;              /* (n, d) raw values (CSV, images) when x8 is NULL */
    int has_labels;
    int32_t *label;         /* (n,) class id, -1 = none; all -1 when !has_labels */
    size_t nclasses;
    char **classes;         /* class names, index = label */
    size_t nfeatures;
    char **features;        /* CSV column names of x, or NULL */
    char **paths;           /* (n,) file or member path of each image, or NULL */
    double pixel_max;       /* 255 for images and IDX (raw pixel scale), 0 for CSV */
    char *source;           /* description for the metadata */
    void *owned;            /* buffer behind x8 */
} fz_dataset;

void fz_dataset_free(fz_dataset *ds);
/* Raw value j of row i as float. */
static inline float fz_dataset_at(const fz_dataset *ds, size_t i, size_t j)
{
    return ds->x8 ? (float)ds->x8[i * ds->d + j] : ds->xf[i * ds->d + j];
}

/* Images and (optionally) labels from IDX. Each path is a plain, compressed or archive
 * file; in an archive the member is the first one matching img_pat / lab_pat. When both
 * paths are the same archive it is read once. lab_path may be NULL (no labels). Classes
 * are "0".."max label". */
int fz_load_idx(const char *img_path, const char *img_pat, const char *lab_path,
                const char *lab_pat, fz_dataset *ds, fz_err *err);

/* A CSV buffer with a header row. label_col (may be NULL) names the label column; every
 * other column must be numeric. Labels that are all integers in 0..FZ_MAX_CLASSES-1 are
 * kept as numbers (classes "0".."max"); otherwise names map to ids in sorted order. `name`
 * is used in error messages ("wdbc.csv:12: column 'x': 'abc' is not a number"). */
int fz_csv_parse(const char *buf, size_t len, const char *name, const char *label_col,
                 fz_dataset *ds, fz_err *err);
/* A CSV file (plain, compressed, or the first member matching pat in an archive;
 * pat NULL = "*.csv"). */
int fz_load_csv(const char *path, const char *pat, const char *label_col, fz_dataset *ds,
                fz_err *err);

/* Images (*.png, *.pgm, *.ppm) from a directory tree or an archive, in sorted path order;
 * the label is the name of the parent folder (classes sorted by name; images directly at
 * the top have label -1). All images must have the same shape. */
int fz_load_images(const char *path, int gray, fz_dataset *ds, fz_err *err);

/* Images named in a list: a text file (or "-", stdin) of paths, one per line (empty lines
 * skipped, a trailing CR dropped), read in list order: row i is the i-th path. The label is
 * the parent folder's name, as for a directory tree ("data/7/a.png" is class "7"; a path
 * without a folder has label -1). Errors name the list, the line and the path. */
#define FZ_IMAGE_LIST_MAX ((size_t)1 << 28) /* the list itself: 256 MiB */
int fz_load_image_list(const char *list, int gray, fz_dataset *ds, fz_err *err);

/* Index of a class name, or -1. */
long fz_dataset_class(const fz_dataset *ds, const char *name);

#endif
