/* test_norm.c - fitting, applying, saving and loading normalisation maps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "norm.h"

/* 4 rows x 2 features; feature 1 is constant */
static float xs[8] = {1, 5, 2, 5, 3, 5, 6, 5};

static fz_dataset table(void)
{
    fz_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.n = 4;
    ds.d = 2;
    ds.xf = xs;
    return ds;
}

int main(void)
{
    fz_err err = {0};
    fz_dataset ds = table();
    fz_norm nm;
    float out[2];

    /* standardize: mean 3, population std sqrt(3.5); constant feature maps to 0 */
    CHECK_EQ_INT(fz_norm_fit(&nm, FZ_NORM_STANDARDIZE, &ds, NULL, 4, &err), 0);
    CHECK_NEAR(nm.offset[0], 3, 1e-12);
    CHECK_NEAR(nm.scale[0], 1 / sqrt(3.5), 1e-12);
    CHECK_NEAR(nm.scale[1], 1, 0);
    CHECK(nm.per_feature);
    fz_norm_apply(&nm, &ds, 3, out);
    CHECK_NEAR(out[0], 3 / sqrt(3.5), 1e-6);
    CHECK_NEAR(out[1], 0, 1e-6);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < 4; i++) {
        fz_norm_apply(&nm, &ds, i, out);
        s += out[0];
        s2 += out[0] * out[0];
    }
    CHECK_NEAR(s / 4, 0, 1e-6);
    CHECK_NEAR(s2 / 4, 1, 1e-6);

    /* save and load give the same map */
    char path[64];
    snprintf(path, sizeof path, "/tmp/fz-test-norm-%ld.json", (long)getpid());
    CHECK_EQ_INT(fz_norm_save(&nm, path, &err), 0);
    fz_norm back;
    CHECK_EQ_INT(fz_norm_load(&back, path, &err), 0);
    CHECK_EQ_INT(back.mode, FZ_NORM_STANDARDIZE);
    CHECK_EQ_INT(back.d, 2);
    CHECK(back.offset[0] == nm.offset[0] && back.scale[0] == nm.scale[0]);
    remove(path);
    fz_norm_free(&back);
    fz_norm_free(&nm);

    /* fitted on a subset of rows */
    size_t sub[2] = {0, 2};
    CHECK_EQ_INT(fz_norm_fit(&nm, FZ_NORM_STANDARDIZE, &ds, sub, 2, &err), 0);
    CHECK_NEAR(nm.offset[0], 2, 1e-12);
    CHECK_NEAR(nm.scale[0], 1, 1e-12);
    fz_norm_free(&nm);

    /* unit and shift without a pixel scale: per-feature min and max */
    CHECK_EQ_INT(fz_norm_fit(&nm, FZ_NORM_UNIT, &ds, NULL, 4, &err), 0);
    fz_norm_apply(&nm, &ds, 3, out);
    CHECK_NEAR(out[0], 1, 1e-6);
    fz_norm_apply(&nm, &ds, 0, out);
    CHECK_NEAR(out[0], 0, 1e-6);
    fz_norm_free(&nm);
    CHECK_EQ_INT(fz_norm_fit(&nm, FZ_NORM_SHIFT, &ds, NULL, 4, &err), 0);
    fz_norm_apply(&nm, &ds, 0, out);
    CHECK_NEAR(out[0], -0.5, 1e-6);
    fz_norm_free(&nm);

    /* pixel scale: one offset and scale for all, as numbers in the metadata */
    unsigned char px[4] = {0, 51, 255, 102};
    fz_dataset im;
    memset(&im, 0, sizeof im);
    im.n = 2;
    im.d = 2;
    im.x8 = px;
    im.pixel_max = 255;
    CHECK_EQ_INT(fz_norm_fit(&nm, FZ_NORM_SHIFT, &im, NULL, 2, &err), 0);
    CHECK(!nm.per_feature);
    fz_norm_apply(&nm, &im, 1, out);
    CHECK_NEAR(out[0], 0.5, 1e-6);
    CHECK_NEAR(out[1], 0.4 - 0.5, 1e-6);
    fz_sbuf b;
    fz_sbuf_init(&b);
    fz_norm_json(&nm, &b);
    char *txt = fz_sbuf_take(&b);
    CHECK_STR(txt, "{\"mode\":\"shift\",\"offset\":127.5,\"scale\":0.0039215686274509803}");
    free(txt);
    fz_norm_free(&nm);
    CHECK_EQ_INT(fz_norm_fit(&nm, FZ_NORM_NONE, &im, NULL, 2, &err), 0);
    fz_norm_apply(&nm, &im, 1, out);
    CHECK_NEAR(out[0], 255, 0);
    fz_norm_free(&nm);

    /* bad statistics files */
    const char *bad[] = {
        "{}",
        "{\"fz_norm\":1,\"mode\":\"zscore\",\"d\":1,\"offset\":0,\"scale\":1}",
        "{\"fz_norm\":1,\"mode\":\"unit\",\"d\":2,\"offset\":[0],\"scale\":1}",
        "{\"fz_norm\":1,\"mode\":\"unit\",\"d\":0,\"offset\":0,\"scale\":1}",
        "{\"fz_norm\":1,\"mode\":\"unit\",\"d\":1,\"offset\":\"x\",\"scale\":1}",
        "{\"fz_norm\":1,\"mode\":\"unit\",\"d\":1,\"offset\":0",
        "[1,2]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err.msg[0] = 0;
        CHECK_EQ_INT(fz_norm_from_json(&nm, bad[i], strlen(bad[i]), &err), -1);
        CHECK_MSG(err.msg[0] != 0, "no reason for %s", bad[i]);
    }
    const char *good = "{\"fz_norm\":1,\"mode\":\"unit\",\"d\":3,\"offset\":1,\"scale\":[1,2,3]}";
    CHECK_EQ_INT(fz_norm_from_json(&nm, good, strlen(good), &err), 0);
    CHECK_NEAR(nm.offset[2], 1, 0);
    CHECK_NEAR(nm.scale[2], 3, 0);
    fz_norm_free(&nm);
    return check_report("test_norm");
}
