/* rng.h - seeded, reproducible random numbers (xoshiro256** seeded by splitmix64).
 * Every random choice in fz takes an explicit fz_rng so runs repeat for a given seed. */
#ifndef FZ_RNG_H
#define FZ_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct fz_rng {
    uint64_t s[4];
    int has_spare; /* Box-Muller makes normals in pairs; the second waits here */
    double spare;
} fz_rng;

void fz_rng_seed(fz_rng *r, uint64_t seed);
uint64_t fz_rng_u64(fz_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double fz_rng_uniform(fz_rng *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t fz_rng_below(fz_rng *r, uint64_t n);
/* Standard normal N(0, 1). */
double fz_rng_normal(fz_rng *r);
/* A Dropout keep-mask: out[i] = 1 with probability 1 - p, else 0 (p in [0, 1]; p >= 1
 * gives all zeros). Takes ONE draw from r as the key of a counter-based generator (the
 * splitmix64 finaliser of key + i * golden ratio, two 32-bit uniforms per output pair), so
 * the bytes cost a few vector instructions each instead of a double per element; the same
 * r state gives the same mask. The keep probability is 1 - p to within 2^-32. */
void fz_rng_keep_mask(fz_rng *r, unsigned char *out, size_t n, double p);
/* The same mask in pieces (over threads): key = fz_rng_u64(r) (the one draw), then
 * fz_rng_keep_range(key, out, lo, hi, p) writes out[lo, hi) as fz_rng_keep_mask would have
 * with that draw, for any hi. lo must be even. */
void fz_rng_keep_range(uint64_t key, unsigned char *out, size_t lo, size_t hi, double p);
/* Fisher-Yates shuffle of an index array. */
void fz_rng_shuffle_idx(fz_rng *r, size_t *idx, size_t n);

/* Inverse of the standard normal CDF (Acklam's rational approximation refined by one
 * Halley step; |error| < 1e-12) for p in (0, 1); -inf/+inf at 0/1, NaN outside. */
double fz_norm_ppf(double p);
/* Standard normal CDF. */
double fz_norm_cdf(double x);

#endif
