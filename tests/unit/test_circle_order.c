/* test_circle_order.c - the class terms' order on the circle taken from the data
 * (fz-train --circle-order data): the classes' mean codes (fz_class_mean_codes), their
 * angular order and the rotation that lines the slots up with them
 * (fz_circle_order_by_angle), and the terms placed at those slots
 * (fz_fuzzy_init_circle_slots). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fuzzy.h"
#include "model.h"
#include "train.h"

/* Angle of (x, y) around (cx, cy), and the difference of two angles in (-pi, pi]. */
static double angle_of(double x, double y, double cx, double cy) { return atan2(y - cy, x - cx); }
static double angle_diff(double a, double b) { return remainder(a - b, 2 * M_PI); }

/* Four classes round the point (5, -3), class 0 north, 1 east, 2 south, 3 west: counter-
 * clockwise from the smallest angle (-pi/2, south) the order is 2 1 0 3, and every class's
 * mean lies a quarter turn after the previous one, so the rotation is exactly -pi/2. */
static void test_known_order(void)
{
    const double means[4 * 2] = {5, -2, 6, -3, 5, -4, 4, -3};
    const size_t count[4] = {7, 1, 3, 2};
    int slot[4];
    double a0 = 99;
    fz_err err;
    CHECK(fz_circle_order_by_angle(4, means, count, slot, &a0, &err) == 0);
    CHECK(slot[2] == 0 && slot[1] == 1 && slot[0] == 2 && slot[3] == 3);
    CHECK_NEAR(a0, -M_PI / 2, 1e-12);

    /* The centre is the mean of the class means, not of the rows: a class with many rows
     * does not move it (class 0 has 7 rows above; the same with 1000). */
    const size_t heavy[4] = {1000, 1, 1, 1};
    int slot2[4];
    CHECK(fz_circle_order_by_angle(4, means, heavy, slot2, NULL, &err) == 0);
    CHECK(memcmp(slot, slot2, sizeof slot) == 0);

    /* A class without rows goes last; the others keep their order. */
    const size_t missing[4] = {7, 0, 3, 2};
    CHECK(fz_circle_order_by_angle(4, means, missing, slot2, &a0, &err) == 0);
    CHECK(slot2[1] == 3);
    CHECK(slot2[2] < slot2[0] && slot2[0] < slot2[3]);
    CHECK(isfinite(a0));

    CHECK(fz_circle_order_by_angle(0, means, count, slot, &a0, &err) == -1);
    CHECK_CONTAINS(err.msg, "0 classes");
}

/* Ten classes whose means lie round a ring in a scrambled order, 4 and 9 next to each
 * other (as the untrained fcvae-cnn encoder puts MNIST's 4 and 9): the terms follow the ring,
 * so 4 and 9 start on neighbouring slots, where the index order puts them opposite; and each
 * class term starts within half a slot of its own class's direction. */
static void test_ring(void)
{
    static const int ring[10] = {6, 1, 3, 8, 2, 0, 5, 9, 4, 7}; /* counter-clockwise */
    double means[10 * 2];
    size_t count[10];
    for (int i = 0; i < 10; i++) {
        double a = 0.7 + 2 * M_PI * i / 10 + 0.2 * sin(3.0 * i); /* uneven gaps */
        means[2 * ring[i]] = 0.3 + 0.05 * cos(a), means[2 * ring[i] + 1] = -0.1 + 0.05 * sin(a);
        count[ring[i]] = 100 + (size_t)i;
    }
    int slot[10];
    double a0;
    fz_err err;
    CHECK(fz_circle_order_by_angle(10, means, count, slot, &a0, &err) == 0);
    int first = slot[ring[0]];
    for (int i = 0; i < 10; i++)
        CHECK_MSG(slot[ring[i]] == (first + i) % 10, "class %d on slot %d, expected %d", ring[i],
                  slot[ring[i]], (first + i) % 10);
    int d49 = abs(slot[4] - slot[9]);
    CHECK(d49 == 1 || d49 == 9);

    /* the terms on a circle of radius 2 round the origin, 10 classes and one attribute
     * {4, 9}: each class term points the way its class's mean does from the centre of the
     * means, within half a slot; the attribute term sits at the mean of the 4 and 9 terms. */
    fz_fuzzy F;
    CHECK(fz_fuzzy_init(&F, FZ_MF_GAUSS, 11, 2, 0, &err) == 0);
    float *p = calloc(fz_fuzzy_nparams(&F), sizeof(float));
    fz_fuzzy_bind(&F, p, NULL);
    unsigned char member[10] = {0};
    member[4] = member[9] = 1;
    CHECK(fz_fuzzy_init_circle_slots(&F, 2, 10, 1, member, slot, a0, &err) == 0);
    double cx = 0, cy = 0;
    for (int c = 0; c < 10; c++) cx += means[2 * c] / 10, cy += means[2 * c + 1] / 10;
    for (int c = 0; c < 10; c++) {
        const float *t = F.centers + 2 * c;
        CHECK_NEAR(hypot(t[0], t[1]), 2, 1e-5);
        double off = angle_diff(atan2(t[1], t[0]), angle_of(means[2 * c], means[2 * c + 1], cx, cy));
        CHECK_MSG(fabs(off) < M_PI / 10, "class %d: term %g rad from its mean's direction", c, off);
    }
    CHECK_NEAR(F.centers[20], (F.centers[8] + F.centers[18]) / 2, 1e-5);
    CHECK_NEAR(F.centers[21], (F.centers[9] + F.centers[19]) / 2, 1e-5);
    float x[2] = {F.centers[8], F.centers[9]}, m[11];
    fz_fuzzy_reserve(&F, 1, &err);
    fz_fuzzy_forward(&F, x, m, 1);
    CHECK_NEAR(m[10], 0.5, 1e-4); /* 1/2 at the farthest of its classes */

    /* slots must be a permutation in range */
    slot[3] = 10;
    CHECK(fz_fuzzy_init_circle_slots(&F, 2, 10, 1, member, slot, a0, &err) == -1);
    CHECK_CONTAINS(err.msg, "slot 10");
    free(p);
    fz_fuzzy_free(&F);
}

/* fz_class_mean_codes on a linear encoder that copies the first two inputs: the means are
 * those of the labeled rows of each class; rows without a label, or with two, are left out. */
static void test_class_means(void)
{
    fz_model m;
    fz_err err;
    fz_shape in = {3, 1, 1};
    CHECK(fz_model_create(&m, "kind = ae; latent = 2; encoder = linear(z); decoder = linear(in)",
                          in, 1, &err) == 0);
    /* "encoder.0.weight" (2, 3) then "encoder.0.bias" (2): mu = (x0, x1) */
    const float w[8] = {1, 0, 0, 0, 1, 0, 0, 0};
    memcpy(m.params, w, sizeof w);
    enum { N = 300, K = 4 };
    fz_trainset ds = {0};
    ds.n = N, ds.d = 3, ds.k = K;
    ds.x = calloc(N * 3, sizeof(float));
    ds.target = calloc(N * K, sizeof(float));
    ds.mask = calloc(N * K, sizeof(float));
    double want[3 * 2] = {0};
    size_t want_n[3] = {0};
    for (int i = 0; i < N; i++) {
        int c = i % 5; /* 0..2 classes; 3: unlabeled; 4: labeled twice */
        float *x = ds.x + i * 3, *t = ds.target + i * K, *mk = ds.mask + i * K;
        x[0] = (float)(c + 0.01 * i), x[1] = (float)(-c - 0.002 * i), x[2] = 50;
        if (c == 3) continue; /* target 0, mask 0 */
        for (int o = 0; o < K; o++) mk[o] = 1;
        if (c == 4) {
            t[0] = t[1] = 1;
            continue;
        }
        t[c] = 1;
        want[2 * c] += x[0], want[2 * c + 1] += x[1], want_n[c]++;
    }
    double means[3 * 2];
    size_t count[3];
    CHECK(fz_class_mean_codes(&m, &ds, 3, means, count, &err) == 0);
    for (int c = 0; c < 3; c++) {
        CHECK(count[c] == want_n[c]);
        CHECK_NEAR(means[2 * c], want[2 * c] / want_n[c], 1e-5);
        CHECK_NEAR(means[2 * c + 1], want[2 * c + 1] / want_n[c], 1e-5);
    }
    /* output 3 (no row is a positive example of it) is a class with no rows */
    double means4[4 * 2];
    size_t count4[4];
    CHECK(fz_class_mean_codes(&m, &ds, 4, means4, count4, &err) == 0);
    CHECK(count4[3] == 0 && means4[6] == 0 && means4[7] == 0);
    CHECK(fz_class_mean_codes(&m, &ds, 5, means4, count4, &err) == -1);
    CHECK_CONTAINS(err.msg, "4 outputs");

    /* With BatchNorm the codes are taken in training mode (each batch normalised by its own
     * statistics, so over a batch the codes average 0 in each dim), and the running
     * statistics are left as they were. */
    fz_model bn;
    CHECK(fz_model_create(&bn, "kind = ae; latent = 2; encoder = linear(z) bn; decoder = linear(in)",
                          in, 1, &err) == 0);
    float *before = malloc(bn.nbuffers * sizeof(float));
    memcpy(before, bn.buffers, bn.nbuffers * sizeof(float));
    ds.n = 256; /* one batch */
    CHECK(fz_class_mean_codes(&bn, &ds, 3, means, count, &err) == 0);
    CHECK(memcmp(before, bn.buffers, bn.nbuffers * sizeof(float)) == 0);
    double all[2] = {0, 0};
    size_t rows = 0;
    for (int c = 0; c < 3; c++)
        all[0] += means[2 * c] * count[c], all[1] += means[2 * c + 1] * count[c], rows += count[c];
    /* all 154 labeled rows of the first 256 make one batch: their codes average to 0 */
    CHECK(rows == 154);
    CHECK_NEAR(all[0] / rows, 0, 1e-4);
    CHECK_NEAR(all[1] / rows, 0, 1e-4);
    /* and the three classes, 1 apart in x0 and x1, are spread apart, not 0 */
    CHECK(fabs(means[0] - means[4]) > 1 || fabs(means[1] - means[5]) > 1);
    free(before);
    fz_model_free(&bn);
    free(ds.x), free(ds.target), free(ds.mask);
    fz_model_free(&m);
}

int main(void)
{
    test_known_order();
    test_ring();
    test_class_means();
    return check_report("test_circle_order");
}
