/* test_metrics - metrics against hand-computed values, scikit-learn's documented examples,
 * and a brute-force pair count. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "loss.h"
#include "metrics.h"
#include "rng.h"

static void set_scored(fz_scored *a, const int *y, const double *s, size_t n)
{
    for (size_t i = 0; i < n; i++) a[i] = (fz_scored){(float)s[i], (uint32_t)y[i]};
}

static void test_confusion(void)
{
    fz_err err;
    fz_confusion c;
    /* scikit-learn's classification_report example:
     * y_true = [0, 1, 2, 2, 2], y_pred = [0, 0, 2, 2, 1] */
    int t[] = {0, 1, 2, 2, 2}, p[] = {0, 0, 2, 2, 1};
    CHECK(fz_confusion_init(&c, 3, &err) == 0);
    for (int i = 0; i < 5; i++) CHECK(fz_confusion_add(&c, t[i], p[i], &err) == 0);
    CHECK_NEAR(fz_confusion_accuracy(&c), 0.6, 1e-12);
    CHECK_EQ_INT(fz_confusion_get(&c, 2, 2), 2);
    CHECK_EQ_INT(fz_confusion_get(&c, 1, 0), 1);
    CHECK_EQ_INT(fz_confusion_get(&c, 0, 1), 0);
    fz_class_stats s0 = fz_confusion_class(&c, 0), s1 = fz_confusion_class(&c, 1),
                   s2 = fz_confusion_class(&c, 2);
    CHECK_NEAR(s0.precision, 0.5, 1e-12);
    CHECK_NEAR(s0.recall, 1.0, 1e-12);
    CHECK_NEAR(s0.f1, 2.0 / 3, 1e-12);
    CHECK_EQ_INT(s0.support, 1);
    CHECK_EQ_INT(s0.predicted, 2);
    CHECK_NEAR(s1.precision, 0, 0);
    CHECK_NEAR(s1.recall, 0, 0);
    CHECK_NEAR(s1.f1, 0, 0);
    CHECK_NEAR(s2.precision, 1.0, 1e-12);
    CHECK_NEAR(s2.recall, 2.0 / 3, 1e-12);
    CHECK_NEAR(s2.f1, 0.8, 1e-12);
    CHECK_EQ_INT(s2.support, 3);
    fz_class_stats m = fz_confusion_macro(&c);
    CHECK_NEAR(m.precision, 0.5, 1e-12);
    CHECK_NEAR(m.recall, (1 + 0 + 2.0 / 3) / 3, 1e-12);
    CHECK_NEAR(m.f1, (2.0 / 3 + 0 + 0.8) / 3, 1e-12);
    CHECK_EQ_INT(m.support, 5);

    /* Fixed: classes outside [0, 3) are errors and change nothing. */
    CHECK(fz_confusion_add(&c, 3, 0, &err) == -1);
    CHECK_CONTAINS(err.msg, "label 3 is not a class (expected 0 to 2)");
    CHECK(fz_confusion_add(&c, 0, -1, &err) == -1);
    CHECK_CONTAINS(err.msg, "prediction -1");
    CHECK_EQ_INT(c.total, 5);
    fz_confusion_free(&c);

    /* Growing: counts survive the copy into a larger matrix. */
    CHECK(fz_confusion_init(&c, 0, &err) == 0);
    CHECK(isnan(fz_confusion_accuracy(&c)));
    CHECK(isnan(fz_confusion_macro(&c).f1));
    CHECK(fz_confusion_add(&c, 1, 2, &err) == 0);
    CHECK(fz_confusion_add(&c, 2, 2, &err) == 0);
    CHECK_EQ_INT(c.k, 3);
    CHECK(fz_confusion_add(&c, 40, 3, &err) == 0);
    CHECK_EQ_INT(c.k, 41);
    CHECK_EQ_INT(fz_confusion_get(&c, 1, 2), 1);
    CHECK_EQ_INT(fz_confusion_get(&c, 2, 2), 1);
    CHECK_EQ_INT(fz_confusion_get(&c, 40, 3), 1);
    CHECK_EQ_INT(fz_confusion_get(&c, 3, 40), 0);
    CHECK_NEAR(fz_confusion_accuracy(&c), 1.0 / 3, 1e-12);
    /* Classes 1, 2, 3, 40 occur; 0 and 4..39 do not and stay out of the macro average. */
    fz_class_stats mg = fz_confusion_macro(&c);
    CHECK_NEAR(mg.recall, (0 + 1 + 0 + 0) / 4.0, 1e-12);
    CHECK_NEAR(mg.precision, (0 + 0.5 + 0 + 0) / 4.0, 1e-12);
    CHECK(fz_confusion_add(&c, FZ_METRICS_MAX_CLASSES - 1, 0, &err) == 0);
    CHECK_EQ_INT(c.k, FZ_METRICS_MAX_CLASSES);
    CHECK(fz_confusion_add(&c, FZ_METRICS_MAX_CLASSES, 0, &err) == -1);
    CHECK_EQ_INT(fz_confusion_get(&c, 40, 3), 1);
    fz_confusion_free(&c);
    CHECK(fz_confusion_init(&c, FZ_METRICS_MAX_CLASSES + 1, &err) == -1);
}

static void test_recon(void)
{
    CHECK_NEAR(fz_bce_elem(0.5, 0.5), log(2.0), 1e-12);
    CHECK_NEAR(fz_bce_elem(1, 0), 100, 1e-12);  /* log(0) clamped at -100 */
    CHECK_NEAR(fz_bce_elem(0, 1), 100, 1e-12);
    CHECK_NEAR(fz_bce_elem(0, 0), 0, 1e-12);
    CHECK_NEAR(fz_bce_elem(1, 1), 0, 1e-12);
    CHECK_NEAR(fz_bce_elem(0.25, 0.75), -(0.25 * log(0.75) + 0.75 * log(0.25)), 1e-12);
    CHECK_NEAR(fz_psnr(0.01, 1), 20, 1e-9);
    CHECK_NEAR(fz_psnr(0.01 * 255 * 255, 255), 20, 1e-9);
    CHECK(isinf(fz_psnr(0, 1)));

    float mu0[2] = {0, 0}, lv0[2] = {0, 0}, mu1[1] = {1}, lv1[1] = {0}, lv2[1] = {(float)log(2.0)};
    float z1[1] = {0};
    CHECK_NEAR(fz_kl_normal(mu0, lv0, 2), 0, 1e-12);
    CHECK_NEAR(fz_kl_normal(mu1, lv1, 1), 0.5, 1e-12);
    CHECK_NEAR(fz_kl_normal(z1, lv2, 1), 0.5 * (1 - log(2.0)), 1e-7);

    /* Two rows: MSE 0.01 (20 dB) and 0.05 (13.0103 dB). */
    float x1[2] = {0, 0}, h1[2] = {0.1f, 0.1f}, x2[2] = {1, 1}, h2[2] = {0.9f, 0.7f};
    fz_recon_acc a;
    fz_recon_init(&a, 1);
    fz_recon_add(&a, x1, h1, 2);
    fz_recon_add(&a, x2, h2, 2);
    fz_recon_add_kl(&a, mu1, lv1, 1);
    fz_recon_add_kl(&a, mu0, lv0, 1);
    fz_recon_stats s = fz_recon_result(&a);
    CHECK_NEAR(s.mse, 0.03, 1e-7);
    CHECK_NEAR(s.psnr, 10 * log10(1 / 0.03), 1e-5);
    CHECK_NEAR(s.psnr_rows, (20 + 10 * log10(1 / 0.05)) / 2, 1e-5);
    double b = 2 * -log(0.9) + -log(0.9) + -log(0.7);
    CHECK_NEAR(s.bce, b / 4, 1e-6);
    CHECK_NEAR(s.elbo_bce, b / 2, 1e-6);
    CHECK_NEAR(s.kl, 0.25, 1e-12);
    CHECK_NEAR(s.neg_elbo, b / 2 + 0.25, 1e-6);

    /* An exact row gives an infinite row PSNR; xhat outside [0, 1] leaves BCE undefined. */
    float h3[2] = {1, 1.5f};
    fz_recon_add(&a, x2, x2, 2);
    s = fz_recon_result(&a);
    CHECK(isinf(s.psnr_rows) && s.psnr_rows > 0);
    CHECK(isfinite(s.psnr) && isfinite(s.bce));
    fz_recon_add(&a, x2, h3, 2);
    s = fz_recon_result(&a);
    CHECK(isnan(s.bce) && isnan(s.elbo_bce) && isnan(s.neg_elbo));
    CHECK(isfinite(s.mse));

    /* The same definitions as the training losses of loss.h, on random rows. */
    fz_rng rng;
    fz_rng_seed(&rng, 3);
    enum { B = 5, D = 7, Z = 3 };
    float rx[B * D], rp[B * D], rmu[B * Z], rlv[B * Z];
    for (int i = 0; i < B * D; i++) {
        rx[i] = (float)fz_rng_uniform(&rng);
        rp[i] = i == 3 ? 0.0f : i == 4 ? 1.0f : (float)fz_rng_uniform(&rng);
    }
    for (int i = 0; i < B * Z; i++) {
        rmu[i] = (float)fz_rng_normal(&rng);
        rlv[i] = (float)fz_rng_normal(&rng);
    }
    fz_recon_init(&a, 1);
    for (int r = 0; r < B; r++) {
        fz_recon_add(&a, rx + r * D, rp + r * D, D);
        fz_recon_add_kl(&a, rmu + r * Z, rlv + r * Z, Z);
    }
    s = fz_recon_result(&a);
    double lb = fz_bce(rp, rx, B, D, FZ_RED_MEAN, 0, 1, NULL);
    double lm = fz_sqerr(rp, rx, B, D, FZ_RED_MEAN, 0, 1, NULL);
    double lk = fz_kl_logvar(rmu, rlv, B, Z, FZ_RED_MEAN_BATCH, 0, 1, NULL, NULL);
    CHECK_NEAR(s.bce, lb, 1e-5 * fabs(lb));
    CHECK_NEAR(s.elbo_bce, lb * D, 1e-5 * fabs(lb * D));
    CHECK_NEAR(s.mse, lm, 1e-6 * fabs(lm));
    CHECK_NEAR(s.kl, lk, 1e-5 * fabs(lk));

    fz_recon_init(&a, 1);
    s = fz_recon_result(&a);
    CHECK(isnan(s.mse) && isnan(s.psnr) && isnan(s.psnr_rows) && isnan(s.kl));
}

static void test_sklearn_examples(void)
{
    /* roc_auc_score / average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) */
    int y[] = {0, 0, 1, 1};
    double sc[] = {0.1, 0.4, 0.35, 0.8};
    fz_scored a[4];
    set_scored(a, y, sc, 4);
    CHECK_NEAR(fz_roc_auc_pairs(a, 4), 0.75, 1e-12);
    fz_scored_sort(a, 4);
    CHECK_NEAR(a[0].score, 0.8f, 0);
    CHECK_NEAR(a[3].score, 0.1f, 0);
    CHECK_NEAR(fz_roc_auc(a, 4), 0.75, 1e-12);
    CHECK_NEAR(fz_average_precision(a, 4), 0.8333333333333333, 1e-12);
    double t;
    /* F1 by threshold: 0.8 -> 2/3, 0.4 -> 1/2, 0.35 -> 4/5, 0.1 -> 2/3 */
    CHECK_NEAR(fz_best_f1(a, 4, &t), 0.8, 1e-12);
    CHECK_NEAR(t, 0.35f, 0);
    fz_binary_stats b = fz_binary_at(a, 4, 0.38);
    CHECK_EQ_INT(b.tp, 1);
    CHECK_EQ_INT(b.fp, 1);
    CHECK_EQ_INT(b.fn, 1);
    CHECK_EQ_INT(b.tn, 1);
    CHECK_NEAR(b.f1, 0.5, 1e-12);
    b = fz_binary_at(a, 4, 0.3); /* score > threshold is positive */
    CHECK_EQ_INT(b.tp, 2);
    CHECK_NEAR(b.precision, 2.0 / 3, 1e-12);
    CHECK_NEAR(b.recall, 1, 0);
    /* A score equal to the threshold is not flagged, as fz-fuzzy's flag = score > T: the
     * positive at 0.35 stays out, the ROC walk's 0.35 (score >= 0.35) has it in. */
    b = fz_binary_at(a, 4, 0.35f);
    CHECK_EQ_INT(b.tp, 1);
    CHECK_EQ_INT(b.fp, 1);
    CHECK_EQ_INT(b.fn, 1);
    b = fz_binary_at(a, 4, nextafter((double)0.35f, -INFINITY));
    CHECK_EQ_INT(b.tp, 2);
    b = fz_binary_at(a, 4, 2);
    CHECK_NEAR(b.precision, 0, 0);
    CHECK_NEAR(b.f1, 0, 0);

    /* The ROC walk: sklearn's roc_curve(drop_intermediate=False) points. */
    fz_walk w;
    fz_walk_init(&w, a, 4);
    CHECK_EQ_INT(w.pos, 2);
    CHECK_EQ_INT(w.neg, 2);
    CHECK(isinf(w.threshold));
    double fpr[4] = {0, 0.5, 0.5, 1}, tpr[4] = {0.5, 0.5, 1, 1};
    int k = 0;
    while (fz_walk_next(&w)) {
        CHECK(k < 4);
        if (k >= 4) break;
        CHECK_NEAR((double)w.fp / w.neg, fpr[k], 1e-12);
        CHECK_NEAR((double)w.tp / w.pos, tpr[k], 1e-12);
        CHECK_NEAR(w.threshold, (float)sc[k == 0 ? 3 : k == 1 ? 1 : k == 2 ? 2 : 0], 0);
        k++;
    }
    CHECK_EQ_INT(k, 4);
}

static void test_ties_and_degenerate(void)
{
    /* All tied: one threshold, the diagonal. */
    int y[] = {0, 1, 0, 1};
    double s[] = {0.5, 0.5, 0.5, 0.5};
    fz_scored a[5];
    set_scored(a, y, s, 4);
    fz_scored_sort(a, 4);
    CHECK_NEAR(fz_roc_auc(a, 4), 0.5, 1e-12);
    CHECK_NEAR(fz_average_precision(a, 4), 0.5, 1e-12);

    /* Hand count with a tie across classes: positives 0.5, 0.7, 0.9 against negatives
     * 0.1, 0.5: 5.5 of 6 pairs; AP = 1/3 + 1/3 + 1/3 * 3/4. */
    int y2[] = {0, 0, 1, 1, 1};
    double s2[] = {0.1, 0.5, 0.5, 0.7, 0.9};
    set_scored(a, y2, s2, 5);
    CHECK_NEAR(fz_roc_auc_pairs(a, 5), 5.5 / 6, 1e-12);
    fz_scored_sort(a, 5);
    CHECK_NEAR(fz_roc_auc(a, 5), 5.5 / 6, 1e-12);
    CHECK_NEAR(fz_average_precision(a, 5), 1.0 / 3 + 1.0 / 3 + 0.25, 1e-12);

    /* One class only: AUC undefined; AP undefined without positives, 1 with only them. */
    int neg[] = {0, 0, 0}, pos[] = {1, 1, 1};
    double s3[] = {0.2, 0.9, 0.4};
    set_scored(a, neg, s3, 3);
    fz_scored_sort(a, 3);
    CHECK(isnan(fz_roc_auc(a, 3)));
    CHECK(isnan(fz_average_precision(a, 3)));
    double t;
    CHECK(isnan(fz_best_f1(a, 3, &t)) && isnan(t));
    CHECK(isnan(fz_roc_auc_pairs(a, 3)));
    set_scored(a, pos, s3, 3);
    fz_scored_sort(a, 3);
    CHECK(isnan(fz_roc_auc(a, 3)));
    CHECK_NEAR(fz_average_precision(a, 3), 1, 1e-12);
    CHECK_NEAR(fz_best_f1(a, 3, &t), 1, 1e-12);
    CHECK_NEAR(t, 0.2f, 0);
    /* Empty. */
    CHECK(isnan(fz_roc_auc(a, 0)));
    CHECK(isnan(fz_average_precision(a, 0)));
    fz_walk w;
    fz_walk_init(&w, a, 0);
    CHECK(!fz_walk_next(&w));

    /* Perfect and reversed rankings. */
    int y4[] = {1, 1, 0, 0};
    double s4[] = {4, 3, 2, 1};
    set_scored(a, y4, s4, 4);
    fz_scored_sort(a, 4);
    CHECK_NEAR(fz_roc_auc(a, 4), 1, 1e-12);
    CHECK_NEAR(fz_average_precision(a, 4), 1, 1e-12);
    CHECK_NEAR(fz_best_f1(a, 4, &t), 1, 1e-12);
    CHECK_NEAR(t, 3, 0);
    double s5[] = {1, 2, 3, 4};
    set_scored(a, y4, s5, 4);
    fz_scored_sort(a, 4);
    CHECK_NEAR(fz_roc_auc(a, 4), 0, 1e-12);
    /* thresholds 4, 3: precision 0; 2: 1/3 at recall 1/2; 1: 1/2 at recall 1 */
    CHECK_NEAR(fz_average_precision(a, 4), 0.5 / 3 + 0.5 * 0.5, 1e-12);
}

/* Randomized: the walk's trapezoids against the O(n^2) pair count, with many ties. */
static void test_random_auc(void)
{
    fz_rng rng;
    fz_rng_seed(&rng, 7);
    enum { N = 600 };
    fz_scored *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    CHECK(a && b);
    if (!a || !b) return;
    for (int trial = 0; trial < 40; trial++) {
        size_t n = 1 + fz_rng_below(&rng, N);
        int levels = 1 + (int)fz_rng_below(&rng, trial % 2 ? 5 : 1000);
        double prate = fz_rng_uniform(&rng);
        for (size_t i = 0; i < n; i++) {
            a[i].truth = fz_rng_uniform(&rng) < prate;
            /* positives score a little higher on average */
            a[i].score = (float)(fz_rng_below(&rng, (uint64_t)levels) + (a[i].truth ? levels / 4 : 0));
            b[i] = a[i];
        }
        double want = fz_roc_auc_pairs(a, n);
        fz_scored_sort(b, n);
        for (size_t i = 1; i < n; i++) CHECK(b[i - 1].score >= b[i].score);
        double got = fz_roc_auc(b, n);
        if (isnan(want))
            CHECK_MSG(isnan(got), "trial %d: n %zu: %g, want NaN", trial, n, got);
        else
            CHECK_MSG(fabs(got - want) < 1e-12, "trial %d: n %zu: %.15g vs %.15g", trial, n, got,
                      want);
        /* AP by its definition over every cut point, ties taken together. */
        uint64_t pos = 0;
        for (size_t i = 0; i < n; i++) pos += b[i].truth != 0;
        double ap = 0;
        uint64_t tp = 0, tp0 = 0;
        for (size_t i = 0; i < n; i++) {
            tp += b[i].truth != 0;
            if (i + 1 < n && b[i + 1].score == b[i].score) continue;
            ap += (double)(tp - tp0) / (double)pos * (double)tp / (double)(i + 1);
            tp0 = tp;
        }
        if (pos)
            CHECK_NEAR(fz_average_precision(b, n), ap, 1e-12);
        /* Best F1 is at least the F1 at every threshold it walked. */
        double t, best = fz_best_f1(b, n, &t);
        if (pos) {
            /* the walk's threshold t means score >= t, i.e. score > the next double below */
            fz_binary_stats at = fz_binary_at(b, n, nextafter(t, -INFINITY));
            CHECK_NEAR(at.f1, best, 1e-12);
            for (size_t i = 0; i < n; i += 7) CHECK(fz_binary_at(b, n, b[i].score).f1 <= best + 1e-12);
        }
    }
    free(a);
    free(b);
}

/* Per-feature reconstruction against two-pass sums, and its undefined cases. */
static void test_features(void)
{
    fz_err err;
    fz_feat_acc f;
    /* 3 rows of 2 values: feature 0 varies, feature 1 is constant. */
    float x[3][2] = {{1, 5}, {2, 5}, {6, 5}}, xh[3][2] = {{1.5f, 5}, {2, 4}, {5, 5}};
    CHECK(fz_feat_init(&f, 2, &err) == 0);
    CHECK(isnan(fz_feat_get(&f, 0).mse));
    for (int i = 0; i < 3; i++) fz_feat_add(&f, x[i], xh[i]);
    fz_feat_stats s0 = fz_feat_get(&f, 0), s1 = fz_feat_get(&f, 1);
    CHECK_NEAR(s0.mse, (0.25 + 0 + 1) / 3, 1e-12);
    CHECK_NEAR(s0.var, (4 + 1 + 9) / 3.0, 1e-12); /* mean 3 */
    CHECK_NEAR(s0.r2, 1 - (1.25 / 3) / (14 / 3.0), 1e-12);
    CHECK_NEAR(s1.mse, 1.0 / 3, 1e-12);
    CHECK_NEAR(s1.var, 0, 0);
    CHECK(isnan(s1.r2));
    CHECK(isnan(fz_feat_get(&f, 2).mse)); /* out of range */
    /* the per-row scores of fz-eval --recon-score and --norm-score */
    CHECK_NEAR(fz_row_mse(x[0], xh[0], 2), 0.125, 1e-12);
    CHECK_NEAR(fz_row_mse(x[1], xh[1], 2), 0.5, 1e-12);
    CHECK(isnan(fz_row_mse(x[0], xh[0], 0)));
    CHECK_NEAR(fz_sq_norm(x[2], 2), 61, 1e-12);
    CHECK_NEAR(fz_sq_norm(x[2], 0), 0, 0);
    fz_feat_free(&f);

    /* Random rows with a large offset: Welford against a two-pass computation. */
    fz_rng r;
    fz_rng_seed(&r, 11);
    enum { N = 500, D = 4 };
    static float X[N][D], XH[N][D];
    CHECK(fz_feat_init(&f, D, &err) == 0);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < D; j++) {
            X[i][j] = 1000.0f * (float)j + (float)fz_rng_normal(&r);
            XH[i][j] = X[i][j] + 0.1f * (float)(j + 1) * (float)fz_rng_normal(&r);
        }
        fz_feat_add(&f, X[i], XH[i]);
    }
    for (int j = 0; j < D; j++) {
        double m = 0, v = 0, e = 0;
        for (int i = 0; i < N; i++) m += X[i][j];
        m /= N;
        for (int i = 0; i < N; i++) {
            v += (X[i][j] - m) * (X[i][j] - m);
            e += ((double)XH[i][j] - X[i][j]) * ((double)XH[i][j] - X[i][j]);
        }
        fz_feat_stats s = fz_feat_get(&f, (size_t)j);
        CHECK_NEAR(s.var, v / N, 1e-9 * (1 + v / N));
        CHECK_NEAR(s.mse, e / N, 1e-12);
        CHECK_NEAR(s.r2, 1 - (e / N) / (v / N), 1e-9);
    }
    /* worse reconstruction of the later features: R^2 falls */
    CHECK(fz_feat_get(&f, 0).r2 > fz_feat_get(&f, 3).r2);
    fz_feat_free(&f);
}

/* The k-NN vote by its definition: sort every reference row by (distance, index), count
 * the first k, most votes wins, ties to the class met first. */
static int knn_oracle(const float *X, const int *Y, size_t n, size_t d, const float *q, int k,
                      int nclasses)
{
    size_t *ord = malloc(n * sizeof *ord);
    double *dist = malloc(n * sizeof *dist);
    int *votes = calloc((size_t)nclasses, sizeof *votes);
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < d; j++) s += ((double)X[i * d + j] - q[j]) * ((double)X[i * d + j] - q[j]);
        dist[i] = s;
        ord[i] = i;
    }
    for (size_t i = 1; i < n; i++) /* insertion sort: stable, so ties keep reference order */
        for (size_t j = i; j > 0 && dist[ord[j - 1]] > dist[ord[j]]; j--) {
            size_t t = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = t;
        }
    size_t m = (size_t)k < n ? (size_t)k : n;
    for (size_t i = 0; i < m; i++) votes[Y[ord[i]]]++;
    int best = Y[ord[0]];
    for (size_t i = 1; i < m; i++)
        if (votes[Y[ord[i]]] > votes[best]) best = Y[ord[i]];
    free(ord);
    free(dist);
    free(votes);
    return best;
}

static void test_knn(void)
{
    fz_err err;
    fz_knn kn;
    /* On a line: class 0 at 0, 1, 2; class 1 at 10, 11; class 2 at 5. */
    float ref[] = {0, 1, 2, 10, 11, 5};
    int lab[] = {0, 0, 0, 1, 1, 2};
    CHECK(fz_knn_init(&kn, 1, 3, &err) == 0);
    float q = 0;
    CHECK_EQ_INT(fz_knn_predict(&kn, &q), -1); /* no reference rows */
    for (int i = 0; i < 6; i++) CHECK(fz_knn_add(&kn, &ref[i], lab[i], &err) == 0);
    CHECK_EQ_INT(kn.nclasses, 3);
    q = 1.2f;
    CHECK_EQ_INT(fz_knn_predict(&kn, &q), 0);
    q = 9;  /* 10, 11 and 5: two votes for 1 */
    CHECK_EQ_INT(fz_knn_predict(&kn, &q), 1);
    q = 6;  /* 5 (class 2), 2 (0) at 4 and 10 (1) at 4: one vote each, class 2 is nearest */
    CHECK_EQ_INT(fz_knn_predict(&kn, &q), 2);
    fz_knn_free(&kn);
    /* K = 1 with two rows at the same distance: the earlier one. */
    CHECK(fz_knn_init(&kn, 1, 1, &err) == 0);
    float a = -1, b = 1;
    CHECK(fz_knn_add(&kn, &b, 4, &err) == 0);
    CHECK(fz_knn_add(&kn, &a, 2, &err) == 0);
    q = 0;
    CHECK_EQ_INT(fz_knn_predict(&kn, &q), 4);
    /* fewer reference rows than K all vote; bad labels are refused */
    CHECK(fz_knn_add(&kn, &a, -1, &err) == -1);
    CHECK_CONTAINS(err.msg, "reference label -1");
    fz_knn_free(&kn);
    CHECK(fz_knn_init(&kn, 2, 0, &err) == -1);
    CHECK_CONTAINS(err.msg, "K = 0");
    CHECK(fz_knn_init(&kn, 0, 3, &err) == -1);

    /* Random clusters against the oracle, many K, rows with ties (values on a grid). */
    fz_rng r;
    fz_rng_seed(&r, 5);
    enum { N = 300, D = 3, Q = 200, C = 4 };
    static float X[N * D], QX[Q * D];
    static int Y[N];
    for (int i = 0; i < N; i++) {
        Y[i] = (int)(fz_rng_uniform(&r) * C);
        for (int j = 0; j < D; j++)
            X[i * D + j] = roundf((float)(Y[i] * (j == 0 ? 2 : 0) + fz_rng_normal(&r)) * 2) / 2;
    }
    for (int i = 0; i < Q * D; i++) QX[i] = roundf((float)(3 * fz_rng_uniform(&r) * 2)) / 2;
    int ks[] = {1, 2, 3, 5, 8, 50, 301};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        CHECK(fz_knn_init(&kn, D, ks[t], &err) == 0);
        for (int i = 0; i < N; i++) CHECK(fz_knn_add(&kn, X + i * D, Y[i], &err) == 0);
        int bad = 0;
        for (int i = 0; i < Q; i++)
            bad += fz_knn_predict(&kn, QX + i * D) !=
                   knn_oracle(X, Y, N, D, QX + i * D, ks[t], C);
        CHECK_MSG(bad == 0, "K = %d: %d of %d votes differ from the oracle", ks[t], bad, Q);
        fz_knn_free(&kn);
    }
}

/* The k-NN density score: the distance to the k-th nearest reference row. On a ring of
 * points (the shape of a fuzzy CVAE's latent space) the empty centre is far from every row,
 * so it must score higher than any point on the ring, although it is the ring's mean. */
static void test_knn_kth_dist(void)
{
    fz_err err;
    fz_knn kn;
    CHECK(fz_knn_init(&kn, 2, 5, &err) == 0);
    float q[2] = {0, 0};
    CHECK(isnan(fz_knn_kth_dist(&kn, q))); /* no reference rows */
    fz_rng r;
    fz_rng_seed(&r, 11);
    enum { N = 2000 };
    static float X[N * 2];
    for (int i = 0; i < N; i++) { /* radius 3 +- 0.2, angle uniform */
        double t = 2 * M_PI * fz_rng_uniform(&r), rad = 3 + 0.2 * fz_rng_normal(&r);
        X[2 * i] = (float)(rad * cos(t));
        X[2 * i + 1] = (float)(rad * sin(t));
        CHECK(fz_knn_add(&kn, X + 2 * i, 0, &err) == 0);
    }
    double centre = fz_knn_kth_dist(&kn, q);
    CHECK_MSG(centre > 2, "centre of the ring scores %g, expected near the radius 3", centre);
    double worst_on_ring = 0;
    for (int i = 0; i < 64; i++) {
        float p[2] = {(float)(3 * cos(i * M_PI / 32)), (float)(3 * sin(i * M_PI / 32))};
        double s = fz_knn_kth_dist(&kn, p);
        if (s > worst_on_ring) worst_on_ring = s;
    }
    CHECK_MSG(worst_on_ring < centre / 5, "on the ring up to %g, centre %g", worst_on_ring, centre);
    /* fewer reference rows than K: the farthest of them */
    fz_knn_free(&kn);
    CHECK(fz_knn_init(&kn, 2, 4, &err) == 0);
    for (int i = 0; i < 3; i++) CHECK(fz_knn_add(&kn, X + 2 * i, 0, &err) == 0);
    double far = 0;
    for (int i = 0; i < 3; i++) {
        double e = hypot(X[2 * i], X[2 * i + 1]);
        if (e > far) far = e;
    }
    CHECK_NEAR(fz_knn_kth_dist(&kn, q), far, 1e-9);
    /* against sorting all distances, for K from 1 to the largest allowed */
    int ks[] = {1, 2, 5, 40, FZ_KNN_MAX_K};
    static double dist[N];
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        fz_knn_free(&kn);
        CHECK(fz_knn_init(&kn, 2, ks[t], &err) == 0);
        for (int i = 0; i < N; i++) CHECK(fz_knn_add(&kn, X + 2 * i, 0, &err) == 0);
        int bad = 0;
        for (int j = 0; j < 50; j++) {
            float p[2] = {(float)(8 * fz_rng_uniform(&r) - 4), (float)(8 * fz_rng_uniform(&r) - 4)};
            for (int i = 0; i < N; i++)
                dist[i] = hypot((double)X[2 * i] - p[0], (double)X[2 * i + 1] - p[1]);
            /* the k-th smallest by partial selection sort */
            int k = ks[t] < N ? ks[t] : N;
            for (int a = 0; a < k; a++)
                for (int b = a + 1; b < N; b++)
                    if (dist[b] < dist[a]) {
                        double tmp = dist[a];
                        dist[a] = dist[b];
                        dist[b] = tmp;
                    }
            if (fabs(fz_knn_kth_dist(&kn, p) - dist[k - 1]) > 1e-9) bad++;
        }
        CHECK_MSG(bad == 0, "K = %d: %d of 50 distances differ from sorting", ks[t], bad);
    }
    fz_knn_free(&kn);
}

int main(void)
{
    test_confusion();
    test_recon();
    test_sklearn_examples();
    test_ties_and_degenerate();
    test_random_auc();
    test_features();
    test_knn();
    test_knn_kth_dist();
    return check_report("test_metrics");
}
