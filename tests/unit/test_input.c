/* test_input.c - the raw-data parsers on memory buffers: valid input, every truncation,
 * corrupted bytes, and the archive reader on the committed fixtures. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "input.h"

/* (2, 3, 2) images: header 16 bytes + 12 data bytes */
static size_t make_idx_images(unsigned char *b)
{
    static const unsigned char h[16] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 2};
    memcpy(b, h, 16);
    for (int i = 0; i < 12; i++) b[16 + i] = (unsigned char)(i * 20);
    return 28;
}

static void test_idx(void)
{
    unsigned char b[64];
    size_t len = make_idx_images(b);
    fz_idx idx;
    fz_err err = {0};
    CHECK_EQ_INT(fz_idx_parse(b, len, 3, &idx, &err), 0);
    CHECK_EQ_INT(idx.ndim, 3);
    CHECK_EQ_INT(idx.dim[0], 2);
    CHECK_EQ_INT(idx.dim[1], 3);
    CHECK_EQ_INT(idx.dim[2], 2);
    CHECK_EQ_INT(idx.count, 12);
    CHECK(idx.data == b + 16);
    CHECK_EQ_INT(idx.data[11], 220);

    /* every truncation fails with a reason, never reads past the cut */
    for (size_t cut = 0; cut < len; cut++) {
        unsigned char *t = malloc(cut ? cut : 1);
        memcpy(t, b, cut);
        err.msg[0] = 0;
        CHECK_EQ_INT(fz_idx_parse(t, cut, 3, &idx, &err), -1);
        CHECK_CONTAINS(err.msg, "truncated");
        free(t);
    }
    CHECK_EQ_INT(fz_idx_parse(b, len + 1, 3, &idx, &err), -1);
    CHECK_CONTAINS(err.msg, "1 trailing bytes");

    /* header fields */
    b[2] = 0x0D;
    CHECK_EQ_INT(fz_idx_parse(b, len, 3, &idx, &err), -1);
    CHECK_CONTAINS(err.msg, "type code 0x0d (float)");
    b[2] = 8;
    CHECK_EQ_INT(fz_idx_parse(b, len, 1, &idx, &err), -1);
    CHECK_CONTAINS(err.msg, "3 dimensions (expected 1");
    b[0] = 0x1f;
    CHECK_EQ_INT(fz_idx_parse(b, len, 3, &idx, &err), -1);
    CHECK_CONTAINS(err.msg, "not an IDX file");
    b[0] = 0;
    b[3] = 0;
    CHECK_EQ_INT(fz_idx_parse(b, len, 0, &idx, &err), -1);
    CHECK_CONTAINS(err.msg, "0 dimensions");
    b[3] = 3;
    /* sizes whose product overflows are refused before anything else */
    memset(b + 4, 0x7f, 12);
    CHECK_EQ_INT(fz_idx_parse(b, len, 3, &idx, &err), -1);
    CHECK_CONTAINS(err.msg, "overflow");
    memset(b + 4, 0xff, 4);
    CHECK_EQ_INT(fz_idx_parse(b, len, 3, &idx, &err), -1);
    CHECK_CONTAINS(err.msg, "limit");

    /* labels */
    unsigned char l[11] = {0, 0, 8, 1, 0, 0, 0, 3, 4, 0, 9};
    CHECK_EQ_INT(fz_idx_parse(l, sizeof l, 1, &idx, &err), 0);
    CHECK_EQ_INT(idx.dim[0], 3);
    CHECK_EQ_INT(idx.data[2], 9);
}

static void test_csv(void)
{
    fz_dataset ds;
    fz_err err = {0};
    const char *ok = "\xEF\xBB\xBFid,\"a,b\",lab,c\r\n"
                     "1,2.5,\"M\",-3e2\r\n"
                     "\n"
                     "4, 5 ,B,\"6\"\r\n"
                     "7,8,\"M\"\"x\",9";
    CHECK_EQ_INT(fz_csv_parse(ok, strlen(ok), "t.csv", "lab", &ds, &err), 0);
    CHECK_EQ_INT(ds.n, 3);
    CHECK_EQ_INT(ds.d, 3);
    CHECK_EQ_INT(ds.ndim, 1);
    CHECK_EQ_INT(ds.shape[0], 3);
    CHECK_STR(ds.features[0], "id");
    CHECK_STR(ds.features[1], "a,b");
    CHECK_STR(ds.features[2], "c");
    CHECK_NEAR(ds.xf[0 * 3 + 2], -300, 1e-6);
    CHECK_NEAR(ds.xf[1 * 3 + 1], 5, 1e-6);
    CHECK_NEAR(ds.xf[2 * 3 + 2], 9, 1e-6);
    /* names sorted: B, M, M"x */
    CHECK_EQ_INT(ds.nclasses, 3);
    CHECK_STR(ds.classes[0], "B");
    CHECK_STR(ds.classes[2], "M\"x");
    CHECK_EQ_INT(ds.label[0], 1);
    CHECK_EQ_INT(ds.label[1], 0);
    CHECK_EQ_INT(ds.label[2], 2);
    CHECK(ds.has_labels);
    fz_dataset_free(&ds);

    /* integer labels stay numbers */
    const char *num = "y,x\n3,1\n0,2\n3,3\n";
    CHECK_EQ_INT(fz_csv_parse(num, strlen(num), "n.csv", "y", &ds, &err), 0);
    CHECK_EQ_INT(ds.nclasses, 4);
    CHECK_EQ_INT(ds.label[0], 3);
    CHECK_EQ_INT(ds.label[1], 0);
    CHECK_STR(ds.classes[3], "3");
    fz_dataset_free(&ds);

    /* no label column: every column a feature, labels -1 */
    CHECK_EQ_INT(fz_csv_parse(num, strlen(num), "n.csv", NULL, &ds, &err), 0);
    CHECK_EQ_INT(ds.d, 2);
    CHECK_EQ_INT(ds.label[2], -1);
    CHECK(!ds.has_labels);
    fz_dataset_free(&ds);

    /* errors name file, line and column */
    const char *bad = "a,b\n1,2\n3,abc\n";
    CHECK_EQ_INT(fz_csv_parse(bad, strlen(bad), "t.csv", NULL, &ds, &err), -1);
    CHECK_STR(err.msg,
              "t.csv:3: column 'b': 'abc' is not a number (is it the label? see --label-col)");
    const char *miss = "a,b\n1,2\n\n3,\n";
    CHECK_EQ_INT(fz_csv_parse(miss, strlen(miss), "t.csv", NULL, &ds, &err), -1);
    CHECK_STR(err.msg, "t.csv:4: column 'b': missing value");
    const char *cols = "a,b\n1,2\n3\n";
    CHECK_EQ_INT(fz_csv_parse(cols, strlen(cols), "t.csv", NULL, &ds, &err), -1);
    CHECK_STR(err.msg, "t.csv:3: expected 2 columns, got 1");
    CHECK_EQ_INT(fz_csv_parse(cols, strlen(cols), "t.csv", "z", &ds, &err), -1);
    CHECK_CONTAINS(err.msg, "no column named 'z'");
    const char *unterminated = "a,b\n1,\"2\n";
    CHECK_EQ_INT(fz_csv_parse(unterminated, strlen(unterminated), "t.csv", NULL, &ds, &err), -1);
    CHECK_CONTAINS(err.msg, "t.csv: line 2: unterminated quoted field");
    CHECK_EQ_INT(fz_csv_parse("", 0, "e.csv", NULL, &ds, &err), -1);
    CHECK_CONTAINS(err.msg, "empty CSV");
    const char *inf = "a\n1e999\n";
    CHECK_EQ_INT(fz_csv_parse(inf, strlen(inf), "t.csv", NULL, &ds, &err), -1);
    CHECK_CONTAINS(err.msg, "not a number");

    /* every truncation of a valid table: a clean result or an error, never a crash */
    size_t len = strlen(ok);
    int okcount = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        char *t = malloc(cut ? cut : 1);
        memcpy(t, ok, cut);
        int r = fz_csv_parse(t, cut, "t.csv", "lab", &ds, &err);
        CHECK(r == 0 || r == -1);
        if (r == 0) {
            okcount++;
            CHECK(ds.n <= 3);
            fz_dataset_free(&ds);
        }
        free(t);
    }
    CHECK(okcount > 0 && okcount < (int)len);
}

static void check_digit_image(const fz_image *im, const char *what)
{
    CHECK_MSG(im->c == 1 && im->h == 28 && im->w == 28, "%s: %dx%dx%d", what, im->c, im->h,
              im->w);
}

/* Decode every truncation and every single-byte corruption of a file's bytes. */
static void torture(const char *path, int is_png)
{
    fz_blob b;
    fz_err err = {0};
    if (fz_read_file(path, &b, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    fz_image im;
    CHECK_EQ_INT(fz_image_decode(b.data, b.len, 0, &im, &err), 0);
    check_digit_image(&im, path);
    fz_image_free(&im);
    int fails = 0;
    for (size_t cut = 0; cut < b.len; cut++) {
        unsigned char *t = malloc(cut ? cut : 1);
        memcpy(t, b.data, cut);
        int r = is_png ? fz_png_decode(t, cut, 0, &im, &err) : fz_pnm_decode(t, cut, 0, &im, &err);
        /* an ASCII PGM cut inside trailing whitespace is still whole */
        if (r == 0) fz_image_free(&im);
        else fails++;
        free(t);
    }
    CHECK_MSG(fails >= (int)b.len - 2, "%s: %d of %zu truncations decoded", path,
              (int)b.len - fails, b.len);
    for (size_t i = 0; i < b.len; i++) {
        unsigned char save = b.data[i];
        b.data[i] ^= 0x5a;
        if (fz_image_decode(b.data, b.len, 1, &im, &err) == 0) fz_image_free(&im);
        b.data[i] = save;
    }
    fz_blob_free(&b);
}

static void test_images(void)
{
    torture("tests/data/images/7/t000.png", 1);
    torture("tests/data/images/1/t005.pgm", 0);
    torture("tests/data/images/0/t003.pgm", 0); /* P2 */
    torture("tests/data/images/4/t006.png", 1); /* 16-bit */

    fz_err err = {0};
    fz_image a, b16, p5, p2;
    fz_blob f1, f2, f3, f4;
    CHECK_EQ_INT(fz_read_file("tests/data/images/7/t000.png", &f1, &err), 0);
    CHECK_EQ_INT(fz_png_decode(f1.data, f1.len, 0, &a, &err), 0);
    CHECK_EQ_INT(fz_read_file("tests/data/images/4/t006.png", &f2, &err), 0);
    CHECK_EQ_INT(fz_png_decode(f2.data, f2.len, 0, &b16, &err), 0);
    CHECK_EQ_INT(fz_read_file("tests/data/images/1/t005.pgm", &f3, &err), 0);
    CHECK_EQ_INT(fz_pnm_decode(f3.data, f3.len, 0, &p5, &err), 0);
    CHECK_EQ_INT(fz_read_file("tests/data/images/0/t003.pgm", &f4, &err), 0);
    CHECK_EQ_INT(fz_pnm_decode(f4.data, f4.len, 0, &p2, &err), 0);
    /* 8-bit samples keep their values; 16-bit v*257 reads back as v */
    float mx = 0;
    for (int i = 0; i < 784; i++) {
        CHECK(a.px[i] == (float)(int)a.px[i]);
        if (a.px[i] > mx) mx = a.px[i];
    }
    CHECK(mx > 200 && mx <= 255);
    for (int i = 0; i < 784; i++)
        if (b16.px[i] != (float)(int)(b16.px[i] + 0.5f)) {
            CHECK_NEAR(b16.px[i], (int)(b16.px[i] + 0.5f), 1e-4);
            break;
        }
    fz_image_free(&a);
    fz_image_free(&b16);
    fz_image_free(&p5);
    fz_image_free(&p2);
    fz_blob_free(&f1);
    fz_blob_free(&f2);
    fz_blob_free(&f3);
    fz_blob_free(&f4);

    /* RGB, and its gray conversion */
    fz_blob c;
    fz_image rgb, gray;
    CHECK_EQ_INT(fz_read_file("tests/data/images-rgb/red/c0.png", &c, &err), 0);
    CHECK_EQ_INT(fz_png_decode(c.data, c.len, 0, &rgb, &err), 0);
    CHECK_EQ_INT(rgb.c, 3);
    CHECK_NEAR(rgb.px[2 * 784], 200, 1e-6); /* blue plane is 200 everywhere */
    CHECK_EQ_INT(fz_png_decode(c.data, c.len, 1, &gray, &err), 0);
    CHECK_EQ_INT(gray.c, 1);
    CHECK_NEAR(gray.px[5], 0.299 * rgb.px[5] + 0.587 * rgb.px[784 + 5] + 0.114 * 200, 1e-3);
    fz_image_free(&rgb);
    fz_image_free(&gray);
    fz_blob_free(&c);

    /* hand-made PNM: header forms, 16-bit, bad maxval, bad samples */
    const char *p = "P2 2 1 # comment\n 15\n0 15\n";
    CHECK_EQ_INT(fz_pnm_decode((const unsigned char *)p, strlen(p), 0, &a, &err), 0);
    CHECK_NEAR(a.px[1], 255, 1e-4);
    fz_image_free(&a);
    const unsigned char p16[] = "P5 1 1 65535\n\x80\x00";
    CHECK_EQ_INT(fz_pnm_decode(p16, sizeof p16 - 1, 0, &a, &err), 0);
    CHECK_NEAR(a.px[0], 32768.0 * 255 / 65535, 1e-3);
    fz_image_free(&a);
    const char *p0 = "P2 1 1 0\n0\n";
    CHECK_EQ_INT(fz_pnm_decode((const unsigned char *)p0, strlen(p0), 0, &a, &err), -1);
    CHECK_CONTAINS(err.msg, "maxval 0");
    const char *pbig = "P2 1 1 9\n10\n";
    CHECK_EQ_INT(fz_pnm_decode((const unsigned char *)pbig, strlen(pbig), 0, &a, &err), -1);
    const char *phuge = "P5 99999 99999 255\n";
    CHECK_EQ_INT(fz_pnm_decode((const unsigned char *)phuge, strlen(phuge), 0, &a, &err), -1);
    CHECK_CONTAINS(err.msg, "out of range");
    const char *ptrail = "P2 1 1 9\n1 2\n";
    CHECK_EQ_INT(fz_pnm_decode((const unsigned char *)ptrail, strlen(ptrail), 0, &a, &err), -1);
    CHECK_CONTAINS(err.msg, "trailing");
    CHECK_EQ_INT(fz_image_decode((const unsigned char *)"GIF89a", 6, 0, &a, &err), -1);
}

static void test_archive(void)
{
    fz_err err = {0};
    fz_dataset ds;
    const char *files[] = {"tests/data/mnist-small.tgz", "tests/data/mnist-small.zip"};
    for (int k = 0; k < 2; k++) {
        CHECK_EQ_INT(fz_input_is_archive(files[k], &err), 1);
        CHECK_EQ_INT(fz_load_idx(files[k], "*train-images*", files[k], "*train-labels*", &ds,
                                 &err), 0);
        CHECK_EQ_INT(ds.n, 300);
        CHECK_EQ_INT(ds.d, 784);
        CHECK_EQ_INT(ds.shape[1], 28);
        CHECK_EQ_INT(ds.nclasses, 10);
        CHECK_EQ_INT(ds.label[0], 5); /* the first MNIST training digit is a 5 */
        CHECK_EQ_INT(ds.label[1], 0);
        fz_dataset_free(&ds);
    }
    CHECK_EQ_INT(fz_load_idx(files[0], "*nothing*", NULL, NULL, &ds, &err), -1);
    CHECK_CONTAINS(err.msg, "no member matching '*nothing*'");
    CHECK_EQ_INT(fz_input_is_archive("tests/data/wdbc-small.csv", &err), 0);
    CHECK_EQ_INT(fz_load_csv("tests/data/wdbc-small.csv", NULL, "diagnosis", &ds, &err), 0);
    CHECK_EQ_INT(ds.n, 40);
    CHECK_EQ_INT(ds.d, 30);
    CHECK_NEAR(ds.xf[0], 17.99, 1e-5);
    fz_dataset_free(&ds);
    CHECK_EQ_INT(fz_load_images("tests/data/images", 0, &ds, &err), 0);
    CHECK_EQ_INT(ds.n, 12);
    CHECK_STR(ds.paths[0], "tests/data/images/0/t003.pgm");
    CHECK_STR(ds.classes[0], "0");
    CHECK_EQ_INT(ds.label[0], 0);
    fz_dataset_free(&ds);
    CHECK_EQ_INT(fz_load_csv("tests/data/no-such.csv", NULL, NULL, &ds, &err), -1);
    CHECK_CONTAINS(err.msg, "tests/data/no-such.csv: ");
}

int main(void)
{
    test_idx();
    test_csv();
    test_images();
    test_archive();
    return check_report("test_input");
}
