/* winograd.c - the tile transforms of F(2x2, 5x5) (see winograd.h).
 *
 * The matrices come from Toom-Cook interpolation at the points 0, 1, -1, 1/2, -2 and
 * infinity (exact rational arithmetic, then checked in float32 against the direct 5x5
 * correlation on random 6x6 patches): A^T (2, 6) evaluates the product polynomial at the
 * two outputs, A^T[i][j] = a_j^i (the last column, infinity, is (0, 1)); Gk (6, 5) evaluates
 * the kernel, Gk[j][k] = a_j^k / prod_{l != j} (a_j - a_l) (infinity: (0, 0, 0, 0, 1)); and
 * B^T (6, 6) is the unique solution of sum_j A^T[i][j] Gk[j][k] B^T[j][l] = [l == i + k]
 * for all i, k, l (the 1-D correlation identity). Mean relative error per tile in float32
 * on random data (max in brackets): 2, -2: 8.0e-7 (5.0e-6); 1/2, -2, kept: 5.6e-7 (2.7e-6);
 * 2, -1/2: 5.8e-7 (7.2e-6); 1/2, -1/2: 8.9e-7 (6.8e-6); 2, 1/2: 1.2e-6 (9.3e-6). B^T and
 * A^T then hold only multiples of 1/2, exact in float; the thirds and fifteenths sit in Gk,
 * which runs once per call on the weights.
 *
 *   A^T = | 1  1  1   1    1  0 |
 *         | 0  1 -1  1/2  -2  1 |
 *
 *   B^T = | 1  -3/2   -2   3/2    1    0 |     Gk = |    1      0     0     0     0  |
 *         | 0    -1  1/2   5/2    1    0 |          |  1/3    1/3   1/3   1/3   1/3  |
 *         | 0     1 -5/2   1/2    1    0 |          | -1/3    1/3  -1/3   1/3  -1/3  |
 *         | 0    -2   -1     2    1    0 |          | -16/15 -8/15 -4/15 -2/15 -1/15 |
 *         | 0   1/2   -1  -1/2    1    0 |          |  1/15  -2/15  4/15 -8/15 16/15 |
 *         | 0     1 -3/2    -2  3/2    1 |          |    0      0     0     0     1  |
 *
 * The transforms of the data run on 8 tiles at once: every 1-D pass is a fixed loop over 8
 * lanes that the compiler vectorises, applying the rows of B^T, B, A^T or A written out
 * (their zeros and ones skipped), on rows laid out so that the 8 lanes are contiguous
 * (see "image side" and "grid side" below). */
#include <string.h>

#include "winograd.h"

static int winograd_on = 1;

int fz_conv_set_winograd(int on)
{
    int prev = winograd_on;
    winograd_on = on != 0;
    return prev;
}

int fz_conv_winograd(void) { return winograd_on; }

#define L8 8 /* tiles per pass */

/* The four data transforms are built for AVX-512, AVX2 and any x86-64 and picked when the
 * program starts: their 8-lane loops then run as one 256-bit vector instead of two of 128
 * bits. -std=c11 keeps multiply-adds unfused, so all give the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FZ_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FZ_CLONES
#endif

static const float Gk[6][5] = {
    {1.0f, 0.0f, 0.0f, 0.0f, 0.0f},
    {1.0f / 3, 1.0f / 3, 1.0f / 3, 1.0f / 3, 1.0f / 3},
    {-1.0f / 3, 1.0f / 3, -1.0f / 3, 1.0f / 3, -1.0f / 3},
    {-16.0f / 15, -8.0f / 15, -4.0f / 15, -2.0f / 15, -1.0f / 15},
    {1.0f / 15, -2.0f / 15, 4.0f / 15, -8.0f / 15, 16.0f / 15},
    {0.0f, 0.0f, 0.0f, 0.0f, 1.0f},
};

/* ---- 1-D passes over 8 lanes -------------------------------------------------------
 *
 * Each pass applies one of the four matrices to 8 lanes (8 tiles, or 8 columns of tiles)
 * at once: input r of lane t is i_r[t], output j of lane t is o_j[t]. Inputs and outputs
 * are separate pointers, so that a pass can read shifted windows of one row (the patches
 * of neighbouring tiles overlap) and write straight into the rows of a tile matrix; with
 * restrict on all of them gcc vectorises the lane loops without run-time alias checks
 * (with one output pointer and a row stride it could not: 36 possibly overlapping rows). */

typedef float lanes[L8];

#define IN6 const float *restrict i0, const float *restrict i1, const float *restrict i2, \
            const float *restrict i3, const float *restrict i4, const float *restrict i5
#define OUT6 float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3, \
             float *restrict o4, float *restrict o5

/* o = B^T i (6 -> 6) */
static inline void bt6(IN6, OUT6)
{
    for (int t = 0; t < L8; t++) {
        float d0 = i0[t], d1 = i1[t], d2 = i2[t], d3 = i3[t], d4 = i4[t], d5 = i5[t];
        o0[t] = d0 - 1.5f * d1 - 2.0f * d2 + 1.5f * d3 + d4;
        o1[t] = -d1 + 0.5f * d2 + 2.5f * d3 + d4;
        o2[t] = d1 - 2.5f * d2 + 0.5f * d3 + d4;
        o3[t] = -2.0f * d1 - d2 + 2.0f * d3 + d4;
        o4[t] = 0.5f * d1 - d2 - 0.5f * d3 + d4;
        o5[t] = d1 - 1.5f * d2 - 2.0f * d3 + 1.5f * d4 + d5;
    }
}

/* o += B i (6 -> 6): the transpose of bt6, added into o */
static inline void b6_add(IN6, OUT6)
{
    for (int t = 0; t < L8; t++) {
        float v0 = i0[t], v1 = i1[t], v2 = i2[t], v3 = i3[t], v4 = i4[t], v5 = i5[t];
        o0[t] += v0;
        o1[t] += -1.5f * v0 - v1 + v2 - 2.0f * v3 + 0.5f * v4 + v5;
        o2[t] += -2.0f * v0 + 0.5f * v1 - 2.5f * v2 - v3 - v4 - 1.5f * v5;
        o3[t] += 1.5f * v0 + 2.5f * v1 + 0.5f * v2 + 2.0f * v3 - 0.5f * v4 - 2.0f * v5;
        o4[t] += v0 + v1 + v2 + v3 + v4 + 1.5f * v5;
        o5[t] += v5;
    }
}

/* o = A^T i (6 -> 2) */
static inline void at6(IN6, float *restrict o0, float *restrict o1)
{
    for (int t = 0; t < L8; t++) {
        float m0 = i0[t], m1 = i1[t], m2 = i2[t], m3 = i3[t], m4 = i4[t], m5 = i5[t];
        o0[t] = m0 + m1 + m2 + m3 + m4;
        o1[t] = m1 - m2 + 0.5f * m3 - 2.0f * m4 + m5;
    }
}

/* o = A i (2 -> 6): the transpose of at6 */
static inline void a2(const float *restrict i0, const float *restrict i1, OUT6)
{
    for (int t = 0; t < L8; t++) {
        float y0 = i0[t], y1 = i1[t];
        o0[t] = y0;
        o1[t] = y0 + y1;
        o2[t] = y0 - y1;
        o3[t] = y0 + 0.5f * y1;
        o4[t] = y0 - 2.0f * y1;
        o5[t] = y1;
    }
}

/* d[0..cnt) = s[0..cnt), cnt <= 8, in fixed pieces of 4, 2 and 1 (a loop of unknown
 * length would be scalar, and these are the hot copies into and out of the products) */
static inline void copy8(float *restrict d, const float *restrict s, int cnt)
{
    if (cnt == L8) {
        memcpy(d, s, L8 * sizeof *d);
        return;
    }
    int t = 0;
    if (cnt & 4) {
        memcpy(d, s, 4 * sizeof *d);
        t = 4;
    }
    if (cnt & 2) {
        memcpy(d + t, s + t, 2 * sizeof *d);
        t += 2;
    }
    if (cnt & 1) d[t] = s[t];
}

/* d[0..8) = s[0..cnt) then zeros */
static inline void load8(float *restrict d, const float *restrict s, int cnt)
{
    if (cnt < L8) memset(d, 0, L8 * sizeof *d);
    copy8(d, s, cnt);
}

static inline void store8(float *restrict d, const float *restrict s, int cnt) { copy8(d, s, cnt); }


/* ---- weights ------------------------------------------------------------------------ */

/* Both run on 8 image channels c at once (the lanes), which are contiguous in U: the 25
 * weights of 8 channels are gathered into gt[25][8] first. The products are written out
 * in the same order as a one-channel loop would take them, so the lanes change no bits. */
void fz_wino_weights(const float *w, int G, int C, float *U)
{
    size_t GC = (size_t)G * C;
    for (int o = 0; o < G; o++)
        for (int c0 = 0; c0 < C; c0 += L8) {
            int cnt = C - c0 < L8 ? C - c0 : L8;
            float gt[25][L8], t[6][5][L8], u[L8];
            memset(gt, 0, sizeof gt);
            for (int l = 0; l < cnt; l++) {
                const float *g = w + ((size_t)o * C + c0 + l) * 25;
                for (int k = 0; k < 25; k++) gt[k][l] = g[k];
            }
            /* t = Gk g (6, 5) */
            for (int i = 0; i < 6; i++)
                for (int l = 0; l < 5; l++) {
                    float acc[L8] = {0};
                    for (int k = 0; k < 5; k++)
                        for (int z = 0; z < L8; z++) acc[z] += Gk[i][k] * gt[k * 5 + l][z];
                    memcpy(t[i][l], acc, sizeof acc);
                }
            /* U (6, 6) = t Gk^T */
            for (int i = 0; i < 6; i++)
                for (int jj = 0; jj < 6; jj++) {
                    memset(u, 0, sizeof u);
                    for (int l = 0; l < 5; l++)
                        for (int z = 0; z < L8; z++) u[z] += t[i][l][z] * Gk[jj][l];
                    store8(U + (size_t)(i * 6 + jj) * GC + (size_t)o * C + c0, u, cnt);
                }
        }
}

void fz_wino_weights_grad_add(const float *dU, int G, int C, float *dw)
{
    size_t GC = (size_t)G * C;
    for (int o = 0; o < G; o++)
        for (int c0 = 0; c0 < C; c0 += L8) {
            int cnt = C - c0 < L8 ? C - c0 : L8;
            float u[36][L8], t[5][6][L8], gt[25][L8];
            for (int xi = 0; xi < 36; xi++) load8(u[xi], dU + (size_t)xi * GC + (size_t)o * C + c0, cnt);
            /* t = Gk^T u (5, 6) */
            for (int k = 0; k < 5; k++)
                for (int jj = 0; jj < 6; jj++) {
                    float acc[L8] = {0};
                    for (int i = 0; i < 6; i++)
                        for (int z = 0; z < L8; z++) acc[z] += Gk[i][k] * u[i * 6 + jj][z];
                    memcpy(t[k][jj], acc, sizeof acc);
                }
            /* g (5, 5) = t Gk */
            for (int k = 0; k < 5; k++)
                for (int l = 0; l < 5; l++) {
                    float acc[L8] = {0};
                    for (int jj = 0; jj < 6; jj++)
                        for (int z = 0; z < L8; z++) acc[z] += t[k][jj][z] * Gk[jj][l];
                    memcpy(gt[k * 5 + l], acc, sizeof acc);
                }
            for (int l = 0; l < cnt; l++) {
                float *g = dw + ((size_t)o * C + c0 + l) * 25;
                for (int k = 0; k < 25; k++) g[k] += gt[k][l];
            }
        }
}

/* ---- image side: patches of 6x6 -----------------------------------------------------
 *
 * One channel at a time, in the pad scratch:
 *   E, O (Hp, Wq)      the zero-padded image split into its even and odd columns:
 *                      padded pixel (R, 2q) at E[R][q], (R, 2q + 1) at O[R][q], image pixel
 *                      (h, w) at padded (h + p, w + p); Hp = 2tH + 4 rows, Wq = W8 + 8,
 *                      W8 = tW rounded up to 8
 *   Hq (2, 6, Hp/2 * tW + 8)
 *                      the rows transformed along their width, by parity of the padded row:
 *                      Hq[R % 2][j][(R / 2) * tW + tw] = row j of B^T applied to padded row
 *                      R, columns 2tw .. 2tw + 5 (the patch of the tiles in column tw);
 *                      the rows of a parity side by side without gaps, 8 floats of slack
 *   Hb (Hp, 6, Wb)     the adjoint's layout of the same rows: Hb[R][j][8 + tw] as Hq[R % 2][j]
 *                      [(R / 2) * tW + tw], 8 zeros either side (for the shifted reads of
 *                      its pass along the width), Wb = W8 + 16; in the same memory as Hq
 * Tile (th, tw) covers padded rows 2th .. 2th + 5 and columns 2tw .. 2tw + 5, i.e. E and O
 * at tw, tw + 1, tw + 2: 8 tiles of a tile row are then 6 contiguous windows of E and O,
 * and each padded row is transformed once along its width for the 3 tile rows that share
 * it (the patches overlap by 4 rows). Row r of the patch of tile t = th*tW + tw (padded row
 * 2th + r) is at Hq[r % 2][j] + (r / 2) * tW + t: any 8 consecutive tiles, across tile
 * rows, are 6 contiguous windows of Hq, so the passes down the columns read and write the
 * rows of V in full runs of 8 (vae-conv's 32->64 has 6 tiles a row; with one tile row per
 * pass, as before, 2 of the 8 lanes were idle and every row went out in pieces of 4 and 2).
 * Every image pixel fits: the grid has Ho = H + 2p - 4 <= 2tH rows, so H - 1 + p <= 2tH + 3. */

static int round8(int n) { return (n + L8 - 1) / L8 * L8; }

typedef struct planes {
    int Hp, Wq, W8, Wb;
    size_t hq;       /* floats of one plane Hq[par][j] */
    float *E, *O, *Hq, *Hb;
    float *P;        /* the grid side's planes (see "grid side" below) */
} planes;

static planes planes_of(float *pad, int tH, int tW)
{
    planes q;
    q.Hp = 2 * tH + 4;
    q.W8 = round8(tW);
    q.Wq = q.W8 + L8;
    q.Wb = q.W8 + 2 * L8;
    q.hq = (size_t)(tH + 2) * tW + L8;
    q.E = pad;
    q.O = q.E + (size_t)q.Hp * q.Wq;
    q.Hq = q.O + (size_t)q.Hp * q.Wq;
    q.Hb = q.Hq; /* Hb (Hp, 6, Wb) holds more than Hq (2, 6, hq): 12 (tH + 2) Wb floats */
    q.P = q.Hb + (size_t)q.Hp * 6 * q.Wb;
    return q;
}

size_t fz_wino_pad_floats(int tH, int tW)
{
    size_t Hp = (size_t)2 * tH + 4, W8 = (size_t)round8(tW);
    return Hp * (2 * (W8 + L8) + 6 * (W8 + 2 * L8)) + 4 * ((size_t)tH * tW + L8);
}

/* Hb[R][j] at column 0 */
static float *hb_row(const planes *q, int R, int j)
{
    return q->Hb + ((size_t)R * 6 + j) * q->Wb + L8;
}

/* Hq[par][j] at padded row par, column 0 */
static float *hq_row(const planes *q, int par, int j)
{
    return q->Hq + ((size_t)par * 6 + j) * q->hq;
}

/* even[k] = s[2k], odd[k] = s[2k + 1]: a row of n pixels split into its even and odd columns */
static inline void split2(const float *restrict s, int n, float *restrict even,
                          float *restrict odd)
{
    int k = 0;
    for (; 2 * k + 1 < n; k++) {
        even[k] = s[2 * k];
        odd[k] = s[2 * k + 1];
    }
    if (2 * k < n) even[k] = s[2 * k];
}

/* d[2k] = v + even[k], d[2k + 1] = v + odd[k]: the inverse of split2, plus v */
static inline void merge2(const float *restrict even, const float *restrict odd, float v, int n,
                          float *restrict d)
{
    int k = 0;
    for (; 2 * k + 1 < n; k++) {
        d[2 * k] = v + even[k];
        d[2 * k + 1] = v + odd[k];
    }
    if (2 * k < n) d[2 * k] = v + even[k];
}

FZ_CLONES
void fz_wino_image_tiles(const float *img, int C, int H, int W, int p, int tH, int tW,
                         float *pad, float *V, size_t ld)
{
    planes q = planes_of(pad, tH, tW);
    int T = tH * tW;
    lanes v[6];
    /* Every channel writes the same pixels of E and O: the zeros around them stay */
    memset(q.E, 0, 2 * (size_t)q.Hp * q.Wq * sizeof *q.E);
    for (int c = 0; c < C; c++) {
        for (int h = 0; h < H; h++) {
            float *e = q.E + (size_t)(h + p) * q.Wq, *o = q.O + (size_t)(h + p) * q.Wq;
            /* pixel w at padded column x = w + p: to E when x is even, O when odd */
            split2(img + ((size_t)c * H + h) * W, W, (p & 1 ? o : e) + p / 2,
                   (p & 1 ? e + 1 : o) + p / 2);
        }
        /* along the width: Hq[R % 2][j][R / 2]. The 8 lanes of the last piece of a row run
         * past tW into the next row of the plane (or its slack), which is written after. */
        for (int R = 0; R < q.Hp; R++) {
            const float *e = q.E + (size_t)R * q.Wq, *o = q.O + (size_t)R * q.Wq;
            size_t at = (size_t)(R / 2) * tW;
            float *h0 = hq_row(&q, R & 1, 0) + at, *h1 = hq_row(&q, R & 1, 1) + at,
                  *h2 = hq_row(&q, R & 1, 2) + at, *h3 = hq_row(&q, R & 1, 3) + at,
                  *h4 = hq_row(&q, R & 1, 4) + at, *h5 = hq_row(&q, R & 1, 5) + at;
            for (int tw0 = 0; tw0 < tW; tw0 += L8)
                bt6(e + tw0, o + tw0, e + tw0 + 1, o + tw0 + 1, e + tw0 + 2, o + tw0 + 2,
                    h0 + tw0, h1 + tw0, h2 + tw0, h3 + tw0, h4 + tw0, h5 + tw0);
        }
        /* down the columns: V row (i, j), 8 tiles at a time */
        size_t xs = (size_t)6 * C * ld; /* from row (i, j) to (i + 1, j) */
        for (int j = 0; j < 6; j++) {
            const float *ev = hq_row(&q, 0, j), *od = hq_row(&q, 1, j);
            const float *b0 = ev, *b1 = od, *b2 = ev + tW, *b3 = od + tW, *b4 = ev + 2 * tW,
                        *b5 = od + 2 * tW;
            float *dst = V + (size_t)c * ld + (size_t)j * C * ld;
            for (int t0 = 0; t0 < T; t0 += L8) {
                int cnt = T - t0 < L8 ? T - t0 : L8;
                float *d = dst + t0;
                if (cnt == L8) {
                    bt6(b0 + t0, b1 + t0, b2 + t0, b3 + t0, b4 + t0, b5 + t0, d, d + xs,
                        d + 2 * xs, d + 3 * xs, d + 4 * xs, d + 5 * xs);
                    continue;
                }
                bt6(b0 + t0, b1 + t0, b2 + t0, b3 + t0, b4 + t0, b5 + t0, v[0], v[1], v[2], v[3],
                    v[4], v[5]);
                for (int i = 0; i < 6; i++) store8(d + i * xs, v[i], cnt);
            }
        }
    }
}

/* The adjoint of the pass along the width, for 8 columns q of E and O: column q of E gets
 * row 0 of B applied to the 6 rows of Hb at q, row 2 at q - 1, row 4 at q - 2 (the three
 * tiles whose patches cover it); O likewise rows 1, 3, 5. h: the 6 rows of Hb at q. Always
 * inlined: out of line gcc built it once, for the baseline x86-64, outside the clones. */
static inline __attribute__((always_inline)) void
b6_back(const float *restrict h0, const float *restrict h1, const float *restrict h2,
        const float *restrict h3, const float *restrict h4, const float *restrict h5,
        float *restrict e, float *restrict o)
{
    for (int t = 0; t < L8; t++) {
        float a0 = h0[t], a1 = h1[t], a2v = h2[t], a3 = h3[t], a4 = h4[t], a5 = h5[t];
        float b0 = h0[t - 1], b1 = h1[t - 1], b2 = h2[t - 1], b3 = h3[t - 1], b4 = h4[t - 1],
              b5 = h5[t - 1];
        float c0 = h0[t - 2], c1 = h1[t - 2], c2 = h2[t - 2], c3 = h3[t - 2], c4 = h4[t - 2],
              c5 = h5[t - 2];
        e[t] = a0 + (-2.0f * b0 + 0.5f * b1 - 2.5f * b2 - b3 - b4 - 1.5f * b5) +
               (c0 + c1 + c2 + c3 + c4 + 1.5f * c5);
        o[t] = (-1.5f * a0 - a1 + a2v - 2.0f * a3 + 0.5f * a4 + a5) +
               (1.5f * b0 + 2.5f * b1 + 0.5f * b2 + 2.0f * b3 - 0.5f * b4 - 2.0f * b5) + c5;
    }
}

/* The adjoint keeps the row-by-row layout Hb: laying its pass up the columns out over Hq
 * as the forward does was slower (its adds into Hq overlap at an offset of tW floats, and
 * each pass's loads stalled on the stores of the pass before). */
FZ_CLONES
void fz_wino_image_untiles(const float *Nt, size_t ld, int C, int H, int W, int p, int tH,
                           int tW, float *pad, const float *init, float *img)
{
    planes q = planes_of(pad, tH, tW);
    lanes n[6];
    size_t rs = (size_t)6 * q.Wb;
    for (int c = 0; c < C; c++) {
        memset(q.Hb, 0, (size_t)q.Hp * rs * sizeof *q.Hb);
        /* up the columns: Hb[2th + r][j] += B (rows i of the tile row th) */
        for (int th = 0; th < tH; th++)
            for (int j = 0; j < 6; j++)
                for (int tw0 = 0; tw0 < tW; tw0 += L8) {
                    int cnt = tW - tw0 < L8 ? tW - tw0 : L8;
                    const float *src = Nt + (size_t)c * ld + (size_t)th * tW + tw0 + (size_t)j * C * ld;
                    size_t xs = (size_t)6 * C * ld; /* from row (i, j) to (i + 1, j) */
                    float *hb = hb_row(&q, 2 * th, j) + tw0;
                    if (cnt == L8) {
                        b6_add(src, src + xs, src + 2 * xs, src + 3 * xs, src + 4 * xs,
                               src + 5 * xs, hb, hb + rs, hb + 2 * rs, hb + 3 * rs, hb + 4 * rs,
                               hb + 5 * rs);
                        continue;
                    }
                    for (int i = 0; i < 6; i++) load8(n[i], src + i * xs, cnt);
                    b6_add(n[0], n[1], n[2], n[3], n[4], n[5], hb, hb + rs, hb + 2 * rs,
                           hb + 3 * rs, hb + 4 * rs, hb + 5 * rs);
                }
        /* back along the width, E and O at columns 0 .. tW + 1 */
        for (int R = 0; R < q.Hp; R++) {
            float *e = q.E + (size_t)R * q.Wq, *o = q.O + (size_t)R * q.Wq;
            for (int q0 = 0; q0 < tW + 2; q0 += L8) {
                const float *h = hb_row(&q, R, 0) + q0;
                b6_back(h, h + q.Wb, h + 2 * q.Wb, h + 3 * q.Wb, h + 4 * q.Wb, h + 5 * q.Wb,
                        e + q0, o + q0);
            }
        }
        float v = init ? init[c] : 0.0f;
        for (int h = 0; h < H; h++) {
            float *dst = img + ((size_t)c * H + h) * W;
            const float *e = q.E + (size_t)(h + p) * q.Wq, *o = q.O + (size_t)(h + p) * q.Wq;
            merge2((p & 1 ? o : e) + p / 2, (p & 1 ? e + 1 : o) + p / 2, v, W, dst);
        }
    }
}

/* ---- grid side: tiles of 2x2 ----------------------------------------------------------
 *
 * One channel at a time, through four planes in the pad scratch (after the image side's
 * planes): P[b * 2 + a][t] = grid[2th + a][2tw + b] for tile t = th*tW + tw (zero beyond the
 * grid), T + 8 floats each. The planes hold the tiles in the order of the matrix columns,
 * so the transforms run on 8 consecutive tiles with plain vector loads and stores, across
 * tile rows (vae-conv's 12x12 grid has 6 tiles a row); the pixels are moved between grid
 * and planes in one pass per channel. */

FZ_CLONES
void fz_wino_grid_untiles(const float *M, size_t ld, int G, int Ho, int Wo, int tH, int tW,
                          float *pad, const float *bias, float *grid)
{
    int T = tH * tW;
    size_t np = (size_t)T + L8;
    float *P = planes_of(pad, tH, tW).P;
    lanes m[6], r[12];
    for (int o = 0; o < G; o++) {
        const float *src = M + (size_t)o * ld;
        for (int t0 = 0; t0 < T; t0 += L8) {
            int cnt = T - t0 < L8 ? T - t0 : L8;
            /* r (6 rows i, 2 columns) = m A along the rows, then A^T r into the planes
             * (P[bb * 2 + a]: row a, column bb of each tile) */
            size_t xs = (size_t)G * ld; /* from row (xi, o) to (xi + 1, o) */
            for (int i = 0; i < 6; i++) {
                const float *mi = src + (size_t)6 * i * xs + t0;
                if (cnt == L8) {
                    at6(mi, mi + xs, mi + 2 * xs, mi + 3 * xs, mi + 4 * xs, mi + 5 * xs, r[2 * i],
                        r[2 * i + 1]);
                    continue;
                }
                for (int jj = 0; jj < 6; jj++) load8(m[jj], mi + jj * xs, cnt);
                at6(m[0], m[1], m[2], m[3], m[4], m[5], r[2 * i], r[2 * i + 1]);
            }
            for (int bb = 0; bb < 2; bb++)
                at6(r[bb], r[2 + bb], r[4 + bb], r[6 + bb], r[8 + bb], r[10 + bb],
                    P + (size_t)(2 * bb) * np + t0, P + (size_t)(2 * bb + 1) * np + t0);
        }
        float b = bias ? bias[o] : 0.0f;
        float *out = grid + (size_t)o * Ho * Wo;
        for (int oh = 0; oh < Ho; oh++) {
            const float *even = P + (oh & 1) * np + (size_t)(oh / 2) * tW, *odd = even + 2 * np;
            merge2(even, odd, b, Wo, out + (size_t)oh * Wo); /* b + x: the same sum as x + b */
        }
    }
}

FZ_CLONES
void fz_wino_grid_tiles(const float *grid, int G, int Ho, int Wo, int tH, int tW, float *pad,
                        float *Wt, size_t ld)
{
    int T = tH * tW;
    size_t np = (size_t)T + L8;
    float *P = planes_of(pad, tH, tW).P;
    lanes r[12], w[6];
    memset(P, 0, 4 * np * sizeof *P);
    for (int o = 0; o < G; o++) {
        const float *in = grid + (size_t)o * Ho * Wo;
        for (int oh = 0; oh < Ho; oh++) {
            float *even = P + (oh & 1) * np + (size_t)(oh / 2) * tW, *odd = even + 2 * np;
            split2(in + (size_t)oh * Wo, Wo, even, odd); /* odd Wo: the last column stays zero */
        }
        float *dst = Wt + (size_t)o * ld;
        for (int t0 = 0; t0 < T; t0 += L8) {
            int cnt = T - t0 < L8 ? T - t0 : L8;
            /* r (6 rows i, 2 columns b) = A g down each column b, then w = A r[i] per row i */
            for (int bb = 0; bb < 2; bb++) {
                const float *pa = P + (size_t)(2 * bb) * np + t0;
                a2(pa, pa + np, r[bb], r[2 + bb], r[4 + bb], r[6 + bb], r[8 + bb], r[10 + bb]);
            }
            size_t xs = (size_t)G * ld; /* from row (xi, o) to (xi + 1, o) */
            for (int i = 0; i < 6; i++) {
                float *di = dst + (size_t)6 * i * xs + t0;
                if (cnt == L8) {
                    a2(r[2 * i], r[2 * i + 1], di, di + xs, di + 2 * xs, di + 3 * xs, di + 4 * xs,
                       di + 5 * xs);
                    continue;
                }
                a2(r[2 * i], r[2 * i + 1], w[0], w[1], w[2], w[3], w[4], w[5]);
                for (int jj = 0; jj < 6; jj++) store8(di + jj * xs, w[jj], cnt);
            }
        }
    }
}
