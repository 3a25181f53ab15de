#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void fz_rng_seed(fz_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t fz_rng_u64(fz_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double fz_rng_uniform(fz_rng *r) { return (double)(fz_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t fz_rng_below(fz_rng *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = fz_rng_u64(r);
    while (v >= limit);
    return v % n;
}

double fz_rng_normal(fz_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1, u2;
    do u1 = fz_rng_uniform(r);
    while (u1 <= 0.0);
    u2 = fz_rng_uniform(r);
    double mag = sqrt(-2.0 * log(u1));
    r->spare = mag * sin(2.0 * M_PI * u2);
    r->has_spare = 1;
    return mag * cos(2.0 * M_PI * u2);
}

/* Built for AVX-512, AVX2 and any x86-64, picked when the program starts; integer
 * arithmetic only, so every build gives the same bytes. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FZ_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FZ_CLONES
#endif

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* out (n) bytes: pair i from mix64(key + i * golden), low half then high half, each
 * kept when >= thr */
FZ_CLONES
static void keep_kernel(unsigned char *restrict out, size_t n, uint64_t key, uint32_t thr)
{
    size_t half = n / 2;
    for (size_t i = 0; i < half; i++) {
        uint64_t h = mix64(key + (uint64_t)i * 0x9e3779b97f4a7c15ULL);
        out[2 * i] = (uint32_t)h >= thr;
        out[2 * i + 1] = (uint32_t)(h >> 32) >= thr;
    }
    if (n & 1) out[n - 1] = (uint32_t)mix64(key + (uint64_t)half * 0x9e3779b97f4a7c15ULL) >= thr;
}

void fz_rng_keep_range(uint64_t key, unsigned char *out, size_t lo, size_t hi, double p)
{
    if (!(p < 1.0)) {
        for (size_t i = lo; i < hi; i++) out[i] = 0;
        return;
    }
    /* P(u >= thr) = 1 - thr / 2^32 for u uniform on 32 bits; p < 1 keeps thr < 2^32 */
    uint32_t thr = p > 0 ? (uint32_t)(p * 4294967296.0) : 0;
    /* from an even lo the pairs are those of the whole mask, pair lo / 2 onwards; an odd
     * length ends with the low half of pair (hi - 1) / 2, which is the whole mask's byte
     * hi - 1 too */
    keep_kernel(out + lo, hi - lo, key + (uint64_t)(lo / 2) * 0x9e3779b97f4a7c15ULL, thr);
}

void fz_rng_keep_mask(fz_rng *r, unsigned char *out, size_t n, double p)
{
    uint64_t key = fz_rng_u64(r);
    fz_rng_keep_range(key, out, 0, n, p);
}

void fz_rng_shuffle_idx(fz_rng *r, size_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)fz_rng_below(r, i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

double fz_norm_cdf(double x) { return 0.5 * erfc(-x / M_SQRT2); }

double fz_norm_ppf(double p)
{
    if (isnan(p) || p < 0 || p > 1) return NAN;
    if (p == 0) return -INFINITY;
    if (p == 1) return INFINITY;
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                               2.445134137142996e+00, 3.754408661907416e+00};
    double q, x;
    if (p < 0.02425) {
        q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p > 1 - 0.02425) {
        q = sqrt(-2 * log(1 - p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else {
        q = p - 0.5;
        double r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    /* one Halley step on the exact CDF */
    double e = fz_norm_cdf(x) - p;
    double u = e * sqrt(2 * M_PI) * exp(x * x / 2);
    return x - u / (1 + x * u / 2);
}
