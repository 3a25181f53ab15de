/* score.h - anomaly thresholds and the class decision of one row of memberships.
 *
 * A detector flags a row when its anomaly score is above a threshold. The threshold comes
 * from a contamination rate c: the share of reference scores (the training data's, or any
 * stream's) that lies above it. It is the (1 - c) quantile of the sorted reference scores,
 * interpolated linearly between neighbours as NumPy's quantile does by default, so with
 * distinct scores a share c of them, up to one score, is above it.
 */
#ifndef FZ_SCORE_H
#define FZ_SCORE_H

#include <stddef.h>

/* Sort n floats ascending (NaN last). */
void fz_sort_scores(float *s, size_t n);
/* The q quantile, q in [0, 1], of n >= 1 ascending values: position q (n - 1), linear
 * between the two values around it. NaN when n == 0 or q is outside [0, 1] or NaN. */
double fz_quantile_sorted(const float *sorted, size_t n, double q);
/* The threshold that a share c in [0, 1] of the sorted reference scores lies above:
 * the (1 - c) quantile. NaN as fz_quantile_sorted. */
double fz_threshold_contamination(const float *sorted, size_t n, double c);
/* The class of one row of memberships m (K): the index of the largest of the first
 * nclasses values (all K when nclasses <= 0 or > K; the lowest index on ties), and that
 * value in *maxm (may be NULL). */
int fz_argmax_classes(const float *m, int K, int nclasses, float *maxm);

#endif
