/* metrics.h - evaluation metrics as pure functions over arrays and small accumulators.
 *
 * Classification: a confusion matrix (rows = true class, columns = predicted) that grows as
 * classes appear, and per-class precision, recall, F1 and support read from it.
 * Reconstruction: sums of squared error and binary cross-entropy over values, per-row PSNR,
 * and the parts of a VAE's negative ELBO (per-row BCE summed over values, KL to N(0, I)).
 * Per feature: the squared error and the variance of every value index over the rows, and
 * the share of the variance explained, R^2 = 1 - MSE / variance.
 * Anomaly scores: pairs (score, truth) sorted by decreasing score, then ROC AUC, average
 * precision, F1 at a threshold, the best F1 and the ROC curve, all from one walk over the
 * distinct thresholds.
 * Nearest neighbours: a majority vote of the K nearest labeled reference rows.
 *
 * Conventions follow scikit-learn where it defines them: on the ROC curve and in its walk a
 * row is predicted positive when score >= threshold, the threshold being a score; the ROC
 * curve starts at (0, 0) with threshold +inf; ROC AUC is the trapezoid area under it, which
 * equals the Mann-Whitney statistic with half credit for tied scores; average precision is
 * sum_n (R_n - R_{n-1}) P_n over distinct thresholds. A decision at a threshold given by the
 * user (fz_binary_at) flags score > threshold, as fz-fuzzy's flag does.
 * A metric that is undefined (AUC with one class only, precision with nothing predicted in
 * a curve, ...) is NaN, never a crash; callers print it as "undefined".
 */
#ifndef FZ_METRICS_H
#define FZ_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* The confusion matrix holds FZ_METRICS_MAX_CLASSES^2 counts at most (8 MiB). */
#define FZ_METRICS_MAX_CLASSES 1024

/* --- classification --- */
typedef struct fz_confusion {
    int k;          /* classes seen so far (or fixed at init) */
    int cap;        /* allocated side of m */
    int fixed;      /* 1: classes outside [0, k) are an error instead of growing k */
    uint64_t *m;    /* (cap, cap): m[t * cap + p] = rows of true class t predicted p */
    uint64_t total; /* rows added */
} fz_confusion;

/* k > 0 fixes the number of classes; k == 0 lets the matrix grow up to
 * FZ_METRICS_MAX_CLASSES as classes appear. */
int fz_confusion_init(fz_confusion *c, int k, fz_err *err);
void fz_confusion_free(fz_confusion *c);
/* Count one row. Fails (FZ_EDATA) for a class < 0, >= k when fixed, or beyond the limit. */
int fz_confusion_add(fz_confusion *c, long truth, long pred, fz_err *err);
uint64_t fz_confusion_get(const fz_confusion *c, int truth, int pred);
/* Correct / total; NaN when no rows. */
double fz_confusion_accuracy(const fz_confusion *c);

typedef struct fz_class_stats {
    double precision, recall, f1;
    uint64_t support;   /* rows of this true class */
    uint64_t predicted; /* rows predicted as this class */
} fz_class_stats;

/* Statistics of class i. As scikit-learn's zero_division default: precision is 0 when the
 * class is never predicted, recall 0 when it has no rows, F1 0 when both are 0. */
fz_class_stats fz_confusion_class(const fz_confusion *c, int i);
/* Unweighted means over the classes that occur in the truth or in the predictions
 * (scikit-learn's default label set); support and predicted are totals. NaN when none. */
fz_class_stats fz_confusion_macro(const fz_confusion *c);

/* --- reconstruction --- */
/* log clamped below at -100, as PyTorch's binary_cross_entropy does */
double fz_log_clamped(double p);
/* -(x log p + (1 - x) log(1 - p)) with clamped logs. */
double fz_bce_elem(double x, double p);
/* 10 log10(range^2 / mse); +inf when mse == 0. */
double fz_psnr(double mse, double range);
/* -0.5 * sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j)), the KL divergence of
 * N(mu, exp(logvar)) from N(0, I). mu, logvar: (z,) */
double fz_kl_normal(const float *mu, const float *logvar, size_t z);

typedef struct fz_recon_acc {
    double range;        /* data range for PSNR (1 for data in [0, 1]) */
    uint64_t rows, values;
    double sse;          /* sum of squared errors over all values */
    double bce;          /* sum of BCE over all values */
    uint64_t bce_outside;/* values of xhat outside [0, 1]: BCE is then undefined */
    double psnr_rows;    /* sum over rows of the row's PSNR (finite rows only) */
    uint64_t psnr_inf;   /* rows with zero error (infinite PSNR) */
    uint64_t kl_rows;
    double kl;           /* sum over rows of the KL term */
} fz_recon_acc;

void fz_recon_init(fz_recon_acc *a, double range);
/* Add one row: x, xhat (d,). */
void fz_recon_add(fz_recon_acc *a, const float *x, const float *xhat, size_t d);
/* Add one row's KL: mu, logvar (z,). */
void fz_recon_add_kl(fz_recon_acc *a, const float *mu, const float *logvar, size_t z);

typedef struct fz_recon_stats {
    double mse;        /* mean over values */
    double bce;        /* mean over values; NaN when some xhat is outside [0, 1] */
    double psnr;       /* from the overall MSE */
    double psnr_rows;  /* mean of the per-row PSNR; +inf when some row is exact */
    double elbo_bce;   /* mean over rows of the per-row BCE summed over values */
    double kl;         /* mean over rows of the KL term; NaN without KL rows */
    double neg_elbo;   /* elbo_bce + kl: the VAE loss per row */
} fz_recon_stats;

fz_recon_stats fz_recon_result(const fz_recon_acc *a);

/* Per-feature reconstruction: for each of the d values of a row, the sum of squared errors
 * and the mean and spread of x by Welford's update, so that a feature's variance needs no
 * second pass and does not lose its digits to a large mean. */
typedef struct fz_feat_acc {
    size_t d;
    uint64_t rows;
    double *sse;  /* (d) sum over rows of (xhat - x)^2 */
    double *mean; /* (d) running mean of x */
    double *m2;   /* (d) sum over rows of (x - mean)^2 */
} fz_feat_acc;

int fz_feat_init(fz_feat_acc *a, size_t d, fz_err *err);
void fz_feat_free(fz_feat_acc *a);
/* Add one row: x, xhat (d,). */
void fz_feat_add(fz_feat_acc *a, const float *x, const float *xhat);

typedef struct fz_feat_stats {
    double mse; /* mean over rows of (xhat - x)^2; NaN without rows */
    double var; /* population variance of x over the rows; NaN without rows */
    double r2;  /* 1 - mse / var: 1 is perfect, 0 is no better than the mean, below 0 worse;
                   NaN when var is 0 */
} fz_feat_stats;

fz_feat_stats fz_feat_get(const fz_feat_acc *a, size_t i);

/* Scalar scores of one row: the mean of (b - a)^2 over n values (NaN for n = 0), and the
 * squared Euclidean norm of v (n,), summed in double. */
double fz_row_mse(const float *a, const float *b, size_t n);
double fz_sq_norm(const float *v, size_t n);

/* --- anomaly scores --- */
typedef struct fz_scored {
    float score;
    uint32_t truth; /* nonzero = positive (anomaly) */
} fz_scored;        /* 8 bytes per row */

/* Sort by decreasing score (ties in any order: every metric below groups them). The scores
 * must not be NaN: callers refuse NaN input. */
void fz_scored_sort(fz_scored *a, size_t n);

/* A walk over the distinct thresholds of a sorted array, from the highest score down. After
 * each successful fz_walk_next, the rows with score >= threshold are predicted positive:
 * tp and fp of them are positive and negative. */
typedef struct fz_walk {
    const fz_scored *a;
    size_t n, i;
    uint64_t pos, neg;  /* totals */
    uint64_t tp, fp;
    double threshold;
} fz_walk;

void fz_walk_init(fz_walk *w, const fz_scored *sorted, size_t n);
int fz_walk_next(fz_walk *w); /* 1 while there is a next threshold, then 0 */

/* Each takes an array sorted by fz_scored_sort. */
/* Area under the ROC curve; NaN when either class is missing. */
double fz_roc_auc(const fz_scored *sorted, size_t n);
/* Average precision; NaN without positives. */
double fz_average_precision(const fz_scored *sorted, size_t n);
/* Highest F1 over the thresholds and the highest threshold reaching it; NaN (and threshold
 * NaN) without positives. */
double fz_best_f1(const fz_scored *sorted, size_t n, double *threshold);

/* Counts of a binary decision and what follows from them. */
typedef struct fz_binary_stats {
    uint64_t tp, fp, fn, tn;
    double precision, recall, f1; /* 0 where the denominator is 0, as scikit-learn */
} fz_binary_stats;

fz_binary_stats fz_binary_from_counts(uint64_t tp, uint64_t fp, uint64_t fn, uint64_t tn);
/* The decision score > threshold over a sorted array (a row with score == threshold is not
 * flagged). Compared in double precision, as fz-fuzzy compares its float scores. */
fz_binary_stats fz_binary_at(const fz_scored *sorted, size_t n, double threshold);

/* Brute-force references (O(n^2) and O(n)) used as test oracles: the Mann-Whitney pair
 * count with half credit for ties, on unsorted arrays. */
double fz_roc_auc_pairs(const fz_scored *a, size_t n);

/* --- nearest neighbours --- */
/* Reference rows of d values with a class each, and the k-NN vote over them. Distances are
 * squared Euclidean, summed in double. The K nearest rows are ordered by distance, ties in
 * distance by reference order (the earlier row first). The vote goes to the class with the
 * most of the K; a tie in votes goes to the tied class whose first neighbour comes first
 * in that order, so K = 1 is the nearest neighbour and every tie is decided the same way. */
#define FZ_KNN_MAX_K 1000
#define FZ_KNN_MAX_ROWS ((size_t)1 << 28)

typedef struct fz_knn {
    size_t d, n, cap;
    int k;          /* neighbours per vote */
    int nclasses;   /* 1 + the largest label added */
    float *x;       /* (cap, d): the reference rows */
    int32_t *y;     /* (cap): their classes */
    double *best_d; /* (k) scratch: distances of the nearest rows so far, ascending */
    size_t *best_i; /* (k) scratch: their reference indices */
    uint32_t *votes;/* (nclasses) scratch */
} fz_knn;

/* k in [1, FZ_KNN_MAX_K], d >= 1. */
int fz_knn_init(fz_knn *kn, size_t d, int k, fz_err *err);
void fz_knn_free(fz_knn *kn);
/* Append a reference row x (d,) of class label in [0, FZ_METRICS_MAX_CLASSES). */
int fz_knn_add(fz_knn *kn, const float *x, int label, fz_err *err);
/* The class voted for the query q (d,); -1 without reference rows. Uses the scratch of kn,
 * so one fz_knn serves one thread. With fewer than k reference rows all of them vote. */
int fz_knn_predict(fz_knn *kn, const float *q);
/* A k-NN density score of q (d,): the Euclidean distance (not squared) to its k-th nearest
 * reference row, the radius of the smallest ball around q holding k of them. The density
 * there is about k / (n * volume of that ball), so a larger distance means a lower density,
 * whatever the shape of the reference cloud (rings, several clusters). With fewer than k
 * reference rows, the distance to the farthest; NaN without any. Same scratch as above. */
double fz_knn_kth_dist(fz_knn *kn, const float *q);

#endif
