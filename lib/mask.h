/* mask.h - labels as targets and masks of the fuzzy layer (the logic behind fz-mask(1)).
 *
 * A labeled row of class c gets, over nout outputs (the K classes, then the attributes):
 *   target[o] = 1 for o == c, 0 for the other classes;
 *   target[K + a] = 1 when class c belongs to attribute a (e.g. loop: 0 6 8 9), else 0;
 *   mask[o] = 1 when output o learns from this row, else 0.
 * Which rows supervise output o is set per output: every labeled row (the default), only
 * the rows whose target is 1 (positive examples), only those whose target is 0 (negative
 * examples), or none (the output is off). A row that is unlabeled (label -1, a hidden
 * class, or left out of the labeled subset) gets an all-zero mask: it adds nothing to the
 * fuzzy loss and still trains the autoencoder.
 *
 *   fz_mask m;
 *   fz_mask_init_meta(&m, meta_json, 0, &err);       // classes from the metadata
 *   fz_mask_load_attrs(&m, "loopopen.txt", &err);    // "loop: 0 6 8 9" ...
 *   fz_mask_configure(&m, &sel, &err);               // --only, --off, --negative, ...
 *   fz_mask_row(&m, label, 1, target, mask);         // per row: (nout) each
 *   fz_mask_free(&m);
 */
#ifndef FZ_MASK_H
#define FZ_MASK_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define FZ_MASK_MAX_OUTPUTS 65536 /* classes + attributes */
#define FZ_MASK_MAX_LINE 4096     /* bytes of one attribute spec line */
#define FZ_MASK_MAX_SPEC ((size_t)1 << 20) /* bytes of an attribute spec file */

typedef struct fz_mask {
    int K;                 /* classes */
    int nout;              /* outputs: K classes, then nout - K attributes */
    int cap;               /* outputs allocated */
    char **name;           /* (nout) output names, owned */
    unsigned char *attr;   /* (nout - K, K): attr[a * K + c] = 1 when class c has attribute a */
    unsigned char *pos;    /* (nout) 1: rows whose target is 1 supervise this output */
    unsigned char *neg;    /* (nout) 1: rows whose target is 0 supervise this output */
    unsigned char *hidden; /* (K) 1: rows of this class count as unlabeled */
    int from_k;            /* 1 when the class names were made up from -k (not in the metadata) */
} fz_mask;

/* Classes from a list of K names (copied). Every output starts with positive and negative
 * examples, no class hidden. 0, or -1 with a reason (duplicate or empty names, K out of
 * range). */
int fz_mask_init(fz_mask *m, const char *const *classes, int K, fz_err *err);
/* Classes from the metadata's "classes" array of strings; when k > 0 it must equal their
 * number, or, without "classes", names them "0" .. "k-1". */
int fz_mask_init_meta(fz_mask *m, const char *meta_json, long k, fz_err *err);
/* The classes and the attribute outputs a stream's metadata describes (its "classes",
 * "outputs" and "attributes", as fz_mask_meta writes them): a mask whose outputs are the
 * stream's. 0, or -1 with a reason (no classes, an attribute naming an unknown class, outputs
 * that are not the classes followed by the attributes). */
int fz_mask_from_stream_meta(fz_mask *m, const char *meta_json, fz_err *err);
void fz_mask_free(fz_mask *m);

/* Add attributes from spec text: lines "NAME: CLASS CLASS ..." (class names separated by
 * blanks or commas), '#' to the end of a line is a comment, blank lines are skipped.
 * Reasons name src and the line: "loopopen.txt:3: no class named 'x'". */
int fz_mask_add_attrs(fz_mask *m, const char *text, size_t len, const char *src, fz_err *err);
/* The same from a file (at most FZ_MASK_MAX_SPEC bytes). */
int fz_mask_load_attrs(fz_mask *m, const char *path, fz_err *err);

/* Index of the output of that name, or -1. */
int fz_mask_output(const fz_mask *m, const char *name);

/* Which outputs learn from which rows. Each field is a comma-separated list of output
 * names (hide: class names) or NULL:
 *   only      outputs not listed are off;
 *   off       outputs listed are off;
 *   positive  listed outputs learn from positive examples only (rows whose target is 1);
 *   negative  listed outputs learn from negative examples only (rows whose target is 0);
 *   hide      rows of these classes count as unlabeled.
 * An output in both positive and negative is an error. Reasons name the option:
 * "--only: no output named 'x'". */
typedef struct fz_mask_sel {
    const char *only, *off, *positive, *negative, *hide;
} fz_mask_sel;
int fz_mask_configure(fz_mask *m, const fz_mask_sel *sel, fz_err *err);

/* 1 when the row counts as labeled: label in [0, K) and its class not hidden. The label
 * must be -1 or in [0, K) (checked by the caller). */
int fz_mask_has_label(const fz_mask *m, long label);
/* target, mask: (nout) each. label is -1 or in [0, K). target is the row's full target
 * whatever the mask (all 0 for label -1); mask is all 0 unless labeled is nonzero and the
 * row has a label (fz_mask_has_label). */
void fz_mask_row(const fz_mask *m, long label, int labeled, float *target, float *mask);

/* A uniform number in [0, 1) from (seed, id) alone, so a row's draw does not depend on the
 * order or chunking of the stream: row kept labeled when fz_mask_hash01(seed, id) < f. */
double fz_mask_hash01(uint64_t seed, uint64_t id);

/* Choose exactly `count` of the rows whose label is in [0, K) (labels: (n), -1 for rows
 * without a usable label) and set keep (n) to 1 for them, 0 elsewhere. The choice is a
 * seeded permutation of those rows in stream order. With stratify, each class c gets
 * count * n_c / M rows (M labeled rows in all), rounded by largest remainder so the
 * counts add up to count exactly (ties go to the lower class). count > M is an error. */
int fz_mask_choose(const int32_t *labels, size_t n, int K, size_t count, int stratify,
                   uint64_t seed, unsigned char *keep, fz_err *err);

/* Rows with a usable label in labels (n). */
size_t fz_mask_count_labeled(const int32_t *labels, size_t n);

/* The output metadata: every member of meta_json except "outputs", "attributes" and
 * "mask_redraw", then "classes" (only when made up from -k), "outputs" (names),
 * "attributes" ({name: [class names]}) and, when redraw > 0, "mask_redraw". Caller frees.
 * NULL with a reason when meta_json is not a JSON object. */
char *fz_mask_meta(const char *meta_json, const fz_mask *m, double redraw, fz_err *err);

#endif
