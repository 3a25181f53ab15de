/* norm.h - normalisation of raw feature values, as one affine map per feature:
 *
 *     x[j] = (raw[j] - offset[j]) * scale[j]
 *
 * Modes:
 *   none         offset 0, scale 1.
 *   unit         to [0, 1]: data with a pixel scale (images, IDX) divide by it (raw / 255);
 *                other data use each feature's min and max over the fitted rows.
 *   shift        to [-0.5, 0.5]: as unit, then minus 0.5.
 *   standardize  (raw - mean) / std, population std over the fitted rows.
 * A feature whose max equals its min (or whose std is 0) gets scale 1, so it maps to 0.
 *
 * The map is fitted on the data being prepared (the training split), saved as JSON and
 * applied unchanged to other data:
 *   {"fz_norm":1,"mode":"standardize","d":30,"offset":[...],"scale":[...]}
 * Stream metadata carries the same object (without "fz_norm"); when one offset and scale
 * serve every feature they are plain numbers instead of arrays.
 */
#ifndef FZ_NORM_H
#define FZ_NORM_H

#include <stddef.h>

#include "input.h"
#include "json.h"
#include "util.h"

#define FZ_NORM_MAX_FILE ((size_t)256 << 20) /* a statistics file: 256 MiB */

typedef enum fz_norm_mode {
    FZ_NORM_NONE,
    FZ_NORM_UNIT,
    FZ_NORM_SHIFT,
    FZ_NORM_STANDARDIZE
} fz_norm_mode;

typedef struct fz_norm {
    fz_norm_mode mode;
    size_t d;
    int per_feature; /* 0: every feature has the same offset and scale */
    double *offset;  /* (d,) */
    double *scale;   /* (d,) */
    float *off_f, *scale_f; /* (d,) float copies used by fz_norm_apply */
} fz_norm;

const char *fz_norm_mode_name(fz_norm_mode m);
/* "none", "unit", "shift", "standardize"; returns -1 for anything else. */
int fz_norm_parse_mode(const char *s, fz_norm_mode *m);

/* Fit on rows idx[0..n) of ds (all rows when idx is NULL). */
int fz_norm_fit(fz_norm *nm, fz_norm_mode mode, const fz_dataset *ds, const size_t *idx,
                size_t n, fz_err *err);
/* Normalise row i of ds into out (d floats). */
void fz_norm_apply(const fz_norm *nm, const fz_dataset *ds, size_t i, float *out);

/* Append the metadata object {"mode":...,"offset":...,"scale":...}. */
void fz_norm_json(const fz_norm *nm, fz_sbuf *b);
/* Saved-statistics file: write (via a temporary name, renamed on success) and read. */
int fz_norm_save(const fz_norm *nm, const char *path, fz_err *err);
int fz_norm_from_json(fz_norm *nm, const char *text, size_t len, fz_err *err);
int fz_norm_load(fz_norm *nm, const char *path, fz_err *err);

void fz_norm_free(fz_norm *nm);

#endif
