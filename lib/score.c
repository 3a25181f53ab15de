/* score.c - see score.h. */
#include "score.h"

#include <math.h>
#include <stdlib.h>

static int cmp_score(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    if (isnan(x) || isnan(y)) return isnan(x) - isnan(y);
    return (x > y) - (x < y);
}

void fz_sort_scores(float *s, size_t n)
{
    if (n > 1) qsort(s, n, sizeof *s, cmp_score);
}

double fz_quantile_sorted(const float *sorted, size_t n, double q)
{
    if (n == 0 || !(q >= 0 && q <= 1)) return NAN;
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;
    if (i >= n - 1) return sorted[n - 1];
    double frac = pos - (double)i, lo = sorted[i], hi = sorted[i + 1];
    return frac == 0 ? lo : lo + frac * (hi - lo);
}

double fz_threshold_contamination(const float *sorted, size_t n, double c)
{
    if (!(c >= 0 && c <= 1)) return NAN;
    return fz_quantile_sorted(sorted, n, 1 - c);
}

int fz_argmax_classes(const float *m, int K, int nclasses, float *maxm)
{
    int n = nclasses > 0 && nclasses <= K ? nclasses : K, best = 0;
    for (int k = 1; k < n; k++)
        if (m[k] > m[best]) best = k;
    if (maxm) *maxm = n > 0 ? m[best] : 0;
    return best;
}
