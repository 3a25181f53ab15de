/* test_score.c - quantiles, contamination thresholds and the class decision. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "model.h"
#include "rng.h"
#include "score.h"

/* NumPy's default quantile, written out plainly: np.quantile(a, q) for sorted a. */
static double quantile_ref(const float *a, size_t n, double q)
{
    double h = (double)(n - 1) * q;
    double lo = floor(h), hi = ceil(h);
    return a[(size_t)lo] + (h - lo) * ((double)a[(size_t)hi] - a[(size_t)lo]);
}

int main(void)
{
    /* quantiles of a small sorted array */
    float a[] = {0.5f, 0.1f, 0.9f, 0.3f, 0.7f};
    fz_sort_scores(a, 5);
    CHECK(a[0] == 0.1f && a[1] == 0.3f && a[2] == 0.5f && a[3] == 0.7f && a[4] == 0.9f);
    CHECK_NEAR(fz_quantile_sorted(a, 5, 0), 0.1, 1e-7);
    CHECK_NEAR(fz_quantile_sorted(a, 5, 1), 0.9, 1e-7);
    CHECK_NEAR(fz_quantile_sorted(a, 5, 0.5), 0.5, 1e-7);
    CHECK_NEAR(fz_quantile_sorted(a, 5, 0.125), 0.2, 1e-7);  /* halfway between 0.1, 0.3 */
    CHECK_NEAR(fz_quantile_sorted(a, 5, 0.9), 0.82, 1e-7);
    CHECK(isnan(fz_quantile_sorted(a, 0, 0.5)));
    CHECK(isnan(fz_quantile_sorted(a, 5, -0.1)));
    CHECK(isnan(fz_quantile_sorted(a, 5, 1.5)));
    CHECK(isnan(fz_quantile_sorted(a, 5, NAN)));
    CHECK_NEAR(fz_quantile_sorted(a, 1, 0.3), 0.1, 1e-7);
    /* contamination: the (1 - c) quantile; c = 0 keeps every reference score at or below */
    CHECK_NEAR(fz_threshold_contamination(a, 5, 0), 0.9, 1e-7);
    CHECK_NEAR(fz_threshold_contamination(a, 5, 0.25), 0.7, 1e-7);
    CHECK(isnan(fz_threshold_contamination(a, 5, 1.01)));

    /* against the reference on random data: the share above the threshold is c (distinct
     * scores, c a multiple of 1/(n-1)) */
    fz_rng rng;
    fz_rng_seed(&rng, 11);
    enum { N = 1001 };
    float *s = malloc(N * sizeof(float));
    CHECK(s != NULL);
    if (!s) return check_report("test_score");
    for (int i = 0; i < N; i++) s[i] = (float)fz_rng_uniform(&rng);
    fz_sort_scores(s, N);
    for (int i = 1; i < N; i++) CHECK(s[i - 1] <= s[i]);
    for (double q = 0; q <= 1; q += 0.0371)
        CHECK_NEAR(fz_quantile_sorted(s, N, q), quantile_ref(s, N, q), 1e-7);
    double cs[] = {0.01, 0.05, 0.1, 0.5};
    for (int k = 0; k < 4; k++) {
        double t = fz_threshold_contamination(s, N, cs[k]);
        int above = 0;
        for (int i = 0; i < N; i++) above += s[i] > t;
        CHECK_MSG(abs(above - (int)(cs[k] * (N - 1) + 0.5)) <= 1, "c %g: %d above", cs[k], above);
    }
    /* NaN sorts last and does not disturb the order of the others */
    float b[] = {0.4f, NAN, 0.2f};
    fz_sort_scores(b, 3);
    CHECK(b[0] == 0.2f && b[1] == 0.4f && isnan(b[2]));
    free(s);

    /* the class decision: argmax over the classes only, lowest index on ties */
    float m[] = {0.2f, 0.7f, 0.7f, 0.1f, 0.95f, 0.99f}; /* 4 classes, 2 attributes */
    float mx = -1;
    CHECK_EQ_INT(fz_argmax_classes(m, 6, 4, &mx), 1);
    CHECK(mx == 0.7f);
    CHECK_EQ_INT(fz_argmax_classes(m, 6, 0, &mx), 5);
    CHECK(mx == 0.99f);
    CHECK_EQ_INT(fz_argmax_classes(m, 6, 7, NULL), 5);
    float z[] = {0, 0, 0};
    CHECK_EQ_INT(fz_argmax_classes(z, 3, 3, &mx), 0);
    CHECK(mx == 0);
    /* the decision and the anomaly score agree: score = 1 - the largest class membership */
    CHECK_NEAR(fz_anomaly_score(m, 6, 4), 1 - 0.7, 1e-7);
    fz_argmax_classes(m, 6, 4, &mx);
    CHECK_NEAR(fz_anomaly_score(m, 6, 4), 1.0 - mx, 1e-12);
    return check_report("test_score");
}
