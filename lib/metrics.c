/* metrics.c - see metrics.h. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* --- classification --- */

int fz_confusion_init(fz_confusion *c, int k, fz_err *err)
{
    memset(c, 0, sizeof *c);
    if (k < 0 || k > FZ_METRICS_MAX_CLASSES)
        return fz_fail(err, FZ_EUSAGE, "%d classes (at most %d)", k, FZ_METRICS_MAX_CLASSES);
    c->fixed = k > 0;
    c->k = k;
    c->cap = k > 0 ? k : 16;
    c->m = fz_calloc((size_t)c->cap * (size_t)c->cap, sizeof *c->m, err);
    return c->m ? 0 : -1;
}

void fz_confusion_free(fz_confusion *c)
{
    free(c->m);
    c->m = NULL;
    c->k = c->cap = 0;
}

/* Make room for classes 0..need-1, copying the counts into a larger square. */
static int confusion_grow(fz_confusion *c, int need, fz_err *err)
{
    if (need <= c->cap) {
        if (need > c->k) c->k = need;
        return 0;
    }
    int cap = c->cap;
    while (cap < need) cap *= 2;
    if (cap > FZ_METRICS_MAX_CLASSES) cap = FZ_METRICS_MAX_CLASSES;
    uint64_t *m = fz_calloc((size_t)cap * (size_t)cap, sizeof *m, err);
    if (!m) return -1;
    for (int t = 0; t < c->k; t++)
        memcpy(m + (size_t)t * cap, c->m + (size_t)t * c->cap, (size_t)c->k * sizeof *m);
    free(c->m);
    c->m = m;
    c->cap = cap;
    c->k = need;
    return 0;
}

int fz_confusion_add(fz_confusion *c, long truth, long pred, fz_err *err)
{
    long hi = c->fixed ? c->k : FZ_METRICS_MAX_CLASSES;
    if (truth < 0 || truth >= hi || pred < 0 || pred >= hi) {
        long bad = truth < 0 || truth >= hi ? truth : pred;
        return fz_fail(err, FZ_EDATA, "%s %ld is not a class (expected 0 to %ld)",
                       bad == truth ? "label" : "prediction", bad, hi - 1);
    }
    long need = (truth > pred ? truth : pred) + 1;
    if (need > c->k && confusion_grow(c, (int)need, err)) return -1;
    c->m[(size_t)truth * c->cap + (size_t)pred]++;
    c->total++;
    return 0;
}

uint64_t fz_confusion_get(const fz_confusion *c, int truth, int pred)
{
    if (truth < 0 || truth >= c->k || pred < 0 || pred >= c->k) return 0;
    return c->m[(size_t)truth * c->cap + (size_t)pred];
}

double fz_confusion_accuracy(const fz_confusion *c)
{
    if (!c->total) return NAN;
    uint64_t ok = 0;
    for (int i = 0; i < c->k; i++) ok += fz_confusion_get(c, i, i);
    return (double)ok / (double)c->total;
}

fz_class_stats fz_confusion_class(const fz_confusion *c, int i)
{
    fz_class_stats s = {0, 0, 0, 0, 0};
    for (int j = 0; j < c->k; j++) {
        s.support += fz_confusion_get(c, i, j);
        s.predicted += fz_confusion_get(c, j, i);
    }
    double tp = (double)fz_confusion_get(c, i, i);
    s.precision = s.predicted ? tp / (double)s.predicted : 0;
    s.recall = s.support ? tp / (double)s.support : 0;
    s.f1 = s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0;
    return s;
}

fz_class_stats fz_confusion_macro(const fz_confusion *c)
{
    fz_class_stats m = {0, 0, 0, 0, 0};
    int n = 0;
    for (int i = 0; i < c->k; i++) {
        fz_class_stats s = fz_confusion_class(c, i);
        if (!s.support && !s.predicted) continue;
        m.precision += s.precision;
        m.recall += s.recall;
        m.f1 += s.f1;
        m.support += s.support;
        m.predicted += s.predicted;
        n++;
    }
    if (!n) {
        m.precision = m.recall = m.f1 = NAN;
        return m;
    }
    m.precision /= n;
    m.recall /= n;
    m.f1 /= n;
    return m;
}

/* --- reconstruction --- */

double fz_log_clamped(double p)
{
    double l = log(p);
    return l < -100 ? -100 : l; /* also maps log(0) = -inf to -100 */
}

double fz_bce_elem(double x, double p)
{
    return -(x * fz_log_clamped(p) + (1 - x) * fz_log_clamped(1 - p));
}

double fz_psnr(double mse, double range)
{
    if (mse == 0) return INFINITY;
    return 10 * log10(range * range / mse);
}

double fz_kl_normal(const float *mu, const float *logvar, size_t z)
{
    double s = 0;
    for (size_t j = 0; j < z; j++) {
        double m = mu[j], lv = logvar[j];
        s += 1 + lv - m * m - exp(lv);
    }
    return -0.5 * s;
}

void fz_recon_init(fz_recon_acc *a, double range)
{
    memset(a, 0, sizeof *a);
    a->range = range;
}

void fz_recon_add(fz_recon_acc *a, const float *x, const float *xhat, size_t d)
{
    /* Row sums first, then into the totals: keeps the rounding of long streams small. */
    double se = 0, bce = 0;
    for (size_t j = 0; j < d; j++) {
        double e = (double)xhat[j] - (double)x[j];
        se += e * e;
        if (xhat[j] >= 0 && xhat[j] <= 1)
            bce += fz_bce_elem(x[j], xhat[j]);
        else
            a->bce_outside++;
    }
    a->rows++;
    a->values += d;
    a->sse += se;
    a->bce += bce;
    if (d) {
        double p = fz_psnr(se / (double)d, a->range);
        if (isinf(p))
            a->psnr_inf++;
        else
            a->psnr_rows += p;
    }
}

void fz_recon_add_kl(fz_recon_acc *a, const float *mu, const float *logvar, size_t z)
{
    a->kl += fz_kl_normal(mu, logvar, z);
    a->kl_rows++;
}

fz_recon_stats fz_recon_result(const fz_recon_acc *a)
{
    fz_recon_stats s;
    s.mse = a->values ? a->sse / (double)a->values : NAN;
    s.bce = a->values && !a->bce_outside ? a->bce / (double)a->values : NAN;
    s.psnr = a->values ? fz_psnr(s.mse, a->range) : NAN;
    if (!a->rows || !a->values)
        s.psnr_rows = NAN;
    else if (a->psnr_inf)
        s.psnr_rows = INFINITY;
    else
        s.psnr_rows = a->psnr_rows / (double)a->rows;
    s.elbo_bce = a->rows && !a->bce_outside ? a->bce / (double)a->rows : NAN;
    s.kl = a->kl_rows ? a->kl / (double)a->kl_rows : NAN;
    s.neg_elbo = s.elbo_bce + s.kl;
    return s;
}

/* --- anomaly scores --- */

static int by_score_desc(const void *pa, const void *pb)
{
    float a = ((const fz_scored *)pa)->score, b = ((const fz_scored *)pb)->score;
    return (a < b) - (a > b);
}

void fz_scored_sort(fz_scored *a, size_t n)
{
    if (n > 1) qsort(a, n, sizeof *a, by_score_desc);
}

void fz_walk_init(fz_walk *w, const fz_scored *sorted, size_t n)
{
    memset(w, 0, sizeof *w);
    w->a = sorted;
    w->n = n;
    for (size_t i = 0; i < n; i++) {
        if (sorted[i].truth)
            w->pos++;
        else
            w->neg++;
    }
    w->threshold = INFINITY;
}

int fz_walk_next(fz_walk *w)
{
    if (w->i >= w->n) return 0;
    float t = w->a[w->i].score;
    /* Take every row tied at this score: a threshold cannot split them. */
    while (w->i < w->n && w->a[w->i].score == t) {
        if (w->a[w->i].truth)
            w->tp++;
        else
            w->fp++;
        w->i++;
    }
    w->threshold = t;
    return 1;
}

double fz_roc_auc(const fz_scored *sorted, size_t n)
{
    fz_walk w;
    fz_walk_init(&w, sorted, n);
    if (!w.pos || !w.neg) return NAN;
    /* Trapezoids between consecutive ROC points, in counts: (dfp) * (tp + tp_prev) / 2. */
    double area = 0;
    uint64_t tp0 = 0, fp0 = 0;
    while (fz_walk_next(&w)) {
        area += (double)(w.fp - fp0) * ((double)w.tp + (double)tp0) * 0.5;
        tp0 = w.tp;
        fp0 = w.fp;
    }
    return area / ((double)w.pos * (double)w.neg);
}

double fz_average_precision(const fz_scored *sorted, size_t n)
{
    fz_walk w;
    fz_walk_init(&w, sorted, n);
    if (!w.pos) return NAN;
    double ap = 0;
    uint64_t tp0 = 0;
    while (fz_walk_next(&w)) {
        /* R_n - R_{n-1} = (tp - tp0) / pos; P_n = tp / (tp + fp), never 0/0 here */
        if (w.tp != tp0)
            ap += (double)(w.tp - tp0) / (double)w.pos * ((double)w.tp / (double)(w.tp + w.fp));
        tp0 = w.tp;
    }
    return ap;
}

double fz_best_f1(const fz_scored *sorted, size_t n, double *threshold)
{
    fz_walk w;
    fz_walk_init(&w, sorted, n);
    *threshold = NAN;
    if (!w.pos) return NAN;
    double best = -1;
    while (fz_walk_next(&w)) {
        /* F1 = 2 tp / (2 tp + fp + fn) = 2 tp / (tp + fp + pos) */
        double f1 = 2.0 * (double)w.tp / ((double)(w.tp + w.fp) + (double)w.pos);
        if (f1 > best) {
            best = f1;
            *threshold = w.threshold;
        }
    }
    return best;
}

fz_binary_stats fz_binary_from_counts(uint64_t tp, uint64_t fp, uint64_t fn, uint64_t tn)
{
    fz_binary_stats s = {tp, fp, fn, tn, 0, 0, 0};
    s.precision = tp + fp ? (double)tp / (double)(tp + fp) : 0;
    s.recall = tp + fn ? (double)tp / (double)(tp + fn) : 0;
    s.f1 = 2 * tp + fp + fn ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 0;
    return s;
}

fz_binary_stats fz_binary_at(const fz_scored *sorted, size_t n, double threshold)
{
    uint64_t tp = 0, fp = 0, fn = 0, tn = 0;
    for (size_t i = 0; i < n; i++) {
        int pred = (double)sorted[i].score > threshold, t = sorted[i].truth != 0;
        tp += pred && t;
        fp += pred && !t;
        fn += !pred && t;
        tn += !pred && !t;
    }
    return fz_binary_from_counts(tp, fp, fn, tn);
}

double fz_roc_auc_pairs(const fz_scored *a, size_t n)
{
    double credit = 0, pairs = 0;
    for (size_t i = 0; i < n; i++) {
        if (!a[i].truth) continue;
        for (size_t j = 0; j < n; j++) {
            if (a[j].truth) continue;
            pairs += 1;
            credit += a[i].score > a[j].score ? 1 : a[i].score == a[j].score ? 0.5 : 0;
        }
    }
    return pairs ? credit / pairs : NAN;
}

double fz_row_mse(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)b[i] - (double)a[i];
        s += e * e;
    }
    return n ? s / (double)n : NAN;
}

double fz_sq_norm(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)v[i] * (double)v[i];
    return s;
}

/* --- per-feature reconstruction --- */

int fz_feat_init(fz_feat_acc *a, size_t d, fz_err *err)
{
    memset(a, 0, sizeof *a);
    a->d = d;
    a->sse = fz_calloc(d ? d : 1, sizeof *a->sse, err);
    a->mean = fz_calloc(d ? d : 1, sizeof *a->mean, err);
    a->m2 = fz_calloc(d ? d : 1, sizeof *a->m2, err);
    if (a->sse && a->mean && a->m2) return 0;
    fz_feat_free(a);
    return fz_fail(err, FZ_ENOMEM, "out of memory");
}

void fz_feat_free(fz_feat_acc *a)
{
    free(a->sse);
    free(a->mean);
    free(a->m2);
    a->sse = a->mean = a->m2 = NULL;
}

void fz_feat_add(fz_feat_acc *a, const float *x, const float *xhat)
{
    a->rows++;
    double n = (double)a->rows;
    for (size_t i = 0; i < a->d; i++) {
        double v = x[i], e = (double)xhat[i] - v;
        a->sse[i] += e * e;
        double delta = v - a->mean[i];
        a->mean[i] += delta / n;
        a->m2[i] += delta * (v - a->mean[i]);
    }
}

fz_feat_stats fz_feat_get(const fz_feat_acc *a, size_t i)
{
    fz_feat_stats s = {NAN, NAN, NAN};
    if (!a->rows || i >= a->d) return s;
    s.mse = a->sse[i] / (double)a->rows;
    s.var = a->m2[i] / (double)a->rows;
    if (s.var > 0) s.r2 = 1 - s.mse / s.var;
    return s;
}

/* --- nearest neighbours --- */

int fz_knn_init(fz_knn *kn, size_t d, int k, fz_err *err)
{
    memset(kn, 0, sizeof *kn);
    if (d < 1 || d > ((size_t)1 << 24))
        return fz_fail(err, FZ_EUSAGE, "k-NN on %zu values per row (expected 1 to %zu)", d,
                       (size_t)1 << 24);
    if (k < 1 || k > FZ_KNN_MAX_K)
        return fz_fail(err, FZ_EUSAGE, "k-NN with K = %d (expected 1 to %d)", k, FZ_KNN_MAX_K);
    kn->d = d;
    kn->k = k;
    kn->best_d = fz_calloc((size_t)k, sizeof *kn->best_d, err);
    kn->best_i = fz_calloc((size_t)k, sizeof *kn->best_i, err);
    if (kn->best_d && kn->best_i) return 0;
    fz_knn_free(kn);
    return fz_fail(err, FZ_ENOMEM, "out of memory");
}

void fz_knn_free(fz_knn *kn)
{
    free(kn->x);
    free(kn->y);
    free(kn->best_d);
    free(kn->best_i);
    free(kn->votes);
    memset(kn, 0, sizeof *kn);
}

int fz_knn_add(fz_knn *kn, const float *x, int label, fz_err *err)
{
    if (label < 0 || label >= FZ_METRICS_MAX_CLASSES)
        return fz_fail(err, FZ_EDATA, "reference label %d is not a class (expected 0 to %d)", label,
                       FZ_METRICS_MAX_CLASSES - 1);
    if (kn->n == kn->cap) {
        if (kn->cap >= FZ_KNN_MAX_ROWS)
            return fz_fail(err, FZ_EDATA, "more than %zu reference rows", FZ_KNN_MAX_ROWS);
        size_t cap = kn->cap ? kn->cap * 2 : 1024, bytes;
        if (cap > FZ_KNN_MAX_ROWS) cap = FZ_KNN_MAX_ROWS;
        if (fz_mul_size(cap, kn->d * sizeof(float), &bytes))
            return fz_fail(err, FZ_ENOMEM, "reference rows too large");
        float *nx = realloc(kn->x, bytes);
        if (!nx) return fz_fail(err, FZ_ENOMEM, "out of memory keeping %zu reference rows", cap);
        kn->x = nx;
        int32_t *ny = realloc(kn->y, cap * sizeof *ny);
        if (!ny) return fz_fail(err, FZ_ENOMEM, "out of memory keeping %zu reference rows", cap);
        kn->y = ny;
        kn->cap = cap;
    }
    if (label >= kn->nclasses) {
        uint32_t *v = realloc(kn->votes, (size_t)(label + 1) * sizeof *v);
        if (!v) return fz_fail(err, FZ_ENOMEM, "out of memory");
        kn->votes = v;
        kn->nclasses = label + 1;
    }
    memcpy(kn->x + kn->n * kn->d, x, kn->d * sizeof *x);
    kn->y[kn->n++] = label;
    return 0;
}

/* The k nearest reference rows of q (d,) into best_d, best_i, ascending by (distance,
 * index); returns how many (min(k, n)). */
static size_t knn_search(fz_knn *kn, const float *q)
{
    size_t d = kn->d, m = 0; /* m: neighbours held in best_*, ascending by (distance, index) */
    size_t k = (size_t)kn->k;
    for (size_t r = 0; r < kn->n; r++) {
        const float *x = kn->x + r * d; /* (d) */
        double dist = 0;
        for (size_t j = 0; j < d; j++) {
            double e = (double)x[j] - (double)q[j];
            dist += e * e;
        }
        /* Strictly nearer than the farthest kept: an equal distance keeps the earlier row. */
        if (m == k && !(dist < kn->best_d[m - 1])) continue;
        size_t pos = m < k ? m++ : m - 1;
        while (pos > 0 && kn->best_d[pos - 1] > dist) {
            kn->best_d[pos] = kn->best_d[pos - 1];
            kn->best_i[pos] = kn->best_i[pos - 1];
            pos--;
        }
        kn->best_d[pos] = dist;
        kn->best_i[pos] = r;
    }
    return m;
}

int fz_knn_predict(fz_knn *kn, const float *q)
{
    size_t m = knn_search(kn, q);
    if (!m) return -1;
    memset(kn->votes, 0, (size_t)kn->nclasses * sizeof *kn->votes);
    for (size_t i = 0; i < m; i++) kn->votes[kn->y[kn->best_i[i]]]++;
    /* The most votes; among tied classes the one met first in distance order. */
    int best = kn->y[kn->best_i[0]];
    for (size_t i = 1; i < m; i++) {
        int c = kn->y[kn->best_i[i]];
        if (kn->votes[c] > kn->votes[best]) best = c;
    }
    return best;
}

double fz_knn_kth_dist(fz_knn *kn, const float *q)
{
    size_t m = knn_search(kn, q);
    return m ? sqrt(kn->best_d[m - 1]) : NAN;
}
