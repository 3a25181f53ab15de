/* metrics.h - evaluation metrics as pure functions over arrays and small accumulators.
 *
 * Classification: a confusion matrix (rows = true class, columns = predicted) that grows as
 * classes appear, and per-class precision, recall, F1 and support read from it.
 * Reconstruction: sums of squared error and binary cross-entropy over values, per-row PSNR,
 * and the parts of a VAE's negative ELBO (per-row BCE summed over values, KL to N(0, I)).
 * Anomaly scores: pairs (score, truth) sorted by decreasing score, then ROC AUC, average
 * precision, F1 at a threshold, the best F1 and the ROC curve, all from one walk over the
 * distinct thresholds.
 *
 * Conventions follow scikit-learn where it defines them: a row is predicted positive when
 * score >= threshold; the ROC curve starts at (0, 0) with threshold +inf; ROC AUC is the
 * trapezoid area under it, which equals the Mann-Whitney statistic with half credit for
 * tied scores; average precision is sum_n (R_n - R_{n-1}) P_n over distinct thresholds.
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
/* Decision score >= threshold over a sorted array. */
fz_binary_stats fz_binary_at(const fz_scored *sorted, size_t n, double threshold);

/* Brute-force references (O(n^2) and O(n)) used as test oracles: the Mann-Whitney pair
 * count with half credit for ties, on unsorted arrays. */
double fz_roc_auc_pairs(const fz_scored *a, size_t n);

#endif
