/* test_mask.c - targets and masks from labels: classes, the attribute spec (and its errors
 * with file:line), per-output selection, the per-row hash, exact and stratified choice, and
 * the output metadata. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"
#include "mask.h"

static const char *digits[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
static const char *loopopen = "# digits\nloop: 0 6 8 9\r\n\n  open: 1,2, 3 4 5 7   # strokes\n";

static void mnist(fz_mask *m)
{
    fz_err err = {0};
    CHECK(fz_mask_init(m, digits, 10, &err) == 0);
    CHECK(fz_mask_add_attrs(m, loopopen, strlen(loopopen), "lo.txt", &err) == 0);
}

/* Attribute text that must fail; the reason must contain want. Copies the text to exactly
 * its length so that ASan sees any read past the end. */
static void bad_spec_n(const char *text, size_t n, const char *want)
{
    fz_mask m;
    fz_err err = {0};
    CHECK(fz_mask_init(&m, digits, 10, &err) == 0);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    CHECK_MSG(fz_mask_add_attrs(&m, copy, n, "spec.txt", &err) == -1, "accepted '%s'", text);
    CHECK_CONTAINS(err.msg, want);
    CHECK_EQ_INT(m.nout, 10 + (strstr(text, "first") ? 1 : 0)); /* failed lines add nothing */
    free(copy);
    fz_mask_free(&m);
}

static void bad_spec(const char *text, const char *want) { bad_spec_n(text, strlen(text), want); }

static void test_rows(void)
{
    fz_mask m;
    mnist(&m);
    CHECK_EQ_INT(m.K, 10);
    CHECK_EQ_INT(m.nout, 12);
    CHECK_STR(m.name[10], "loop");
    CHECK_STR(m.name[11], "open");
    CHECK_EQ_INT(fz_mask_output(&m, "open"), 11);
    CHECK_EQ_INT(fz_mask_output(&m, "closed"), -1);
    float t[12], k[12];
    /* every digit: one-hot, loop xor open, full mask */
    for (int c = 0; c < 10; c++) {
        fz_mask_row(&m, c, 1, t, k);
        int loop = c == 0 || c == 6 || c == 8 || c == 9;
        for (int o = 0; o < 10; o++) CHECK_EQ_INT(t[o], o == c);
        CHECK_EQ_INT(t[10], loop);
        CHECK_EQ_INT(t[11], !loop);
        for (int o = 0; o < 12; o++) CHECK_EQ_INT(k[o], 1);
    }
    /* unlabeled row: the target stays, the mask is zero */
    fz_mask_row(&m, 8, 0, t, k);
    CHECK_EQ_INT(t[8], 1);
    CHECK_EQ_INT(t[10], 1);
    for (int o = 0; o < 12; o++) CHECK_EQ_INT(k[o], 0);
    /* label -1: zero target and mask even when asked to label */
    fz_mask_row(&m, -1, 1, t, k);
    for (int o = 0; o < 12; o++) CHECK(t[o] == 0 && k[o] == 0);
    fz_mask_free(&m);
}

static void test_spec_errors(void)
{
    bad_spec("loop 0 6 8 9\n", "spec.txt:1: expected 'NAME: CLASS ...'");
    bad_spec("loop: 0 6 x\n", "spec.txt:1: attribute 'loop': no class named 'x'");
    bad_spec("\n\nfirst: 1\nopen: 1 1\n", "spec.txt:4: attribute 'open': class '1' listed twice");
    bad_spec("first: 1\nfirst: 2\n", "spec.txt:2: the name 'first' is used twice");
    bad_spec("3: 1 2\n", "spec.txt:1: the name '3' is used twice");
    bad_spec("empty:\n", "spec.txt:1: attribute 'empty' names no classes");
    bad_spec("  : 1\n", "spec.txt:1: no attribute name");
    bad_spec("a b: 1\n", "spec.txt:1: the attribute name 'a b' has a blank");
    bad_spec_n("loop: 0\0 6\n", 11, "spec.txt:1: a NUL byte");
    char longline[FZ_MASK_MAX_LINE + 10];
    memset(longline, 'a', sizeof longline - 1);
    longline[sizeof longline - 1] = 0;
    bad_spec(longline, "spec.txt:1: line longer than");
    /* the text ends without a newline, cut inside a name: still parsed from its bytes only */
    fz_mask m;
    fz_err err = {0};
    CHECK(fz_mask_init(&m, digits, 10, &err) == 0);
    CHECK(fz_mask_add_attrs(&m, "big: 6 8 9", 8, "cut", &err) == 0); /* "big: 6 8" */
    float t[11], k[11];
    fz_mask_row(&m, 9, 1, t, k);
    CHECK_EQ_INT(t[10], 0);
    fz_mask_row(&m, 8, 1, t, k);
    CHECK_EQ_INT(t[10], 1);
    fz_mask_free(&m);
    /* every prefix of a spec (a file cut anywhere) parses or fails with file:line */
    for (size_t cut = 0; cut <= strlen(loopopen); cut++) {
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, loopopen, cut);
        CHECK(fz_mask_init(&m, digits, 10, &err) == 0);
        int rc = fz_mask_add_attrs(&m, copy, cut, "spec.txt", &err);
        CHECK_MSG(rc == 0 || strncmp(err.msg, "spec.txt:", 9) == 0, "cut %zu: %s", cut, err.msg);
        CHECK(m.nout >= 10 && m.nout <= 12);
        free(copy);
        fz_mask_free(&m);
    }
    /* a missing file names itself */
    CHECK(fz_mask_init(&m, digits, 10, &err) == 0);
    CHECK(fz_mask_load_attrs(&m, "/nonexistent/lo.txt", &err) == -1);
    CHECK_CONTAINS(err.msg, "/nonexistent/lo.txt: ");
    fz_mask_free(&m);
}

static void test_select(void)
{
    fz_mask m;
    fz_err err = {0};
    float t[12], k[12];
    /* --only 0: output 0 learns from every labeled row, positive or negative */
    mnist(&m);
    fz_mask_sel s1 = {.only = "0"};
    CHECK(fz_mask_configure(&m, &s1, &err) == 0);
    fz_mask_row(&m, 0, 1, t, k);
    for (int o = 0; o < 12; o++) CHECK_EQ_INT(k[o], o == 0);
    fz_mask_row(&m, 3, 1, t, k);
    for (int o = 0; o < 12; o++) CHECK_EQ_INT(k[o], o == 0);
    CHECK_EQ_INT(t[0], 0);
    fz_mask_free(&m);
    /* --negative 0: the 0 rows say nothing about output 0, the others say "not a 0" */
    mnist(&m);
    fz_mask_sel s2 = {.negative = "0", .off = "loop,open"};
    CHECK(fz_mask_configure(&m, &s2, &err) == 0);
    fz_mask_row(&m, 0, 1, t, k);
    CHECK_EQ_INT(k[0], 0);
    CHECK_EQ_INT(k[5], 1);
    CHECK_EQ_INT(k[10], 0);
    CHECK_EQ_INT(k[11], 0);
    fz_mask_row(&m, 7, 1, t, k);
    CHECK(k[0] == 1 && t[0] == 0);
    CHECK(k[7] == 1 && t[7] == 1);
    fz_mask_free(&m);
    /* --positive loop --hide 3,4 --only loop,open,3 */
    mnist(&m);
    fz_mask_sel s3 = {.positive = "loop", .hide = "3,4", .only = "loop,open,3"};
    CHECK(fz_mask_configure(&m, &s3, &err) == 0);
    fz_mask_row(&m, 6, 1, t, k); /* a loop: "not a 3", "a loop", "not open" */
    for (int o = 0; o < 12; o++) CHECK_EQ_INT(k[o], o == 3 || o == 10 || o == 11);
    fz_mask_row(&m, 1, 1, t, k); /* not a loop: says nothing about loop */
    for (int o = 0; o < 12; o++) CHECK_EQ_INT(k[o], o == 3 || o == 11);
    fz_mask_row(&m, 3, 1, t, k); /* hidden: unlabeled, though its target stays */
    CHECK_EQ_INT(t[3], 1);
    for (int o = 0; o < 12; o++) CHECK_EQ_INT(k[o], 0);
    CHECK_EQ_INT(fz_mask_has_label(&m, 3), 0);
    CHECK_EQ_INT(fz_mask_has_label(&m, 5), 1);
    CHECK_EQ_INT(fz_mask_has_label(&m, -1), 0);
    fz_mask_free(&m);
    /* errors name the option */
    mnist(&m);
    fz_mask_sel e1 = {.only = "0,zero"};
    CHECK(fz_mask_configure(&m, &e1, &err) == -1);
    CHECK_CONTAINS(err.msg, "--only: no output named 'zero'");
    fz_mask_sel e2 = {.hide = "loop"};
    CHECK(fz_mask_configure(&m, &e2, &err) == -1);
    CHECK_CONTAINS(err.msg, "--hide: no class named 'loop'");
    fz_mask_sel e3 = {.positive = "1,2", .negative = "2"};
    CHECK(fz_mask_configure(&m, &e3, &err) == -1);
    CHECK_CONTAINS(err.msg, "--positive and --negative both name '2'");
    fz_mask_free(&m);
}

static void test_init(void)
{
    fz_mask m;
    fz_err err = {0};
    CHECK(fz_mask_init_meta(&m, "{\"classes\":[\"cat\",\"dog\"]}", 0, &err) == 0);
    CHECK_EQ_INT(m.K, 2);
    CHECK_STR(m.name[1], "dog");
    fz_mask_free(&m);
    CHECK(fz_mask_init_meta(&m, "{}", 3, &err) == 0);
    CHECK_EQ_INT(m.nout, 3);
    CHECK_STR(m.name[2], "2");
    CHECK_EQ_INT(m.from_k, 1);
    fz_mask_free(&m);
    CHECK(fz_mask_init_meta(&m, "{}", 0, &err) == -1);
    CHECK_CONTAINS(err.msg, "names no classes");
    CHECK(fz_mask_init_meta(&m, "{\"classes\":[\"a\",\"b\"]}", 3, &err) == -1);
    CHECK_CONTAINS(err.msg, "-k 3, but the metadata names 2 classes");
    CHECK(fz_mask_init_meta(&m, "{\"classes\":[\"a\",7]}", 0, &err) == -1);
    CHECK_CONTAINS(err.msg, "\"classes\"[1] is not a string");
    CHECK(fz_mask_init_meta(&m, "{\"classes\":[\"a\",\"a\"]}", 0, &err) == -1);
    CHECK_CONTAINS(err.msg, "class 1: the name 'a' is used twice");
    CHECK(fz_mask_init_meta(&m, "{\"classes\":[]}", 0, &err) == -1);
    CHECK(fz_mask_init_meta(&m, "{\"classes\":\"abc\"}", 0, &err) == -1);
    CHECK(fz_mask_init_meta(&m, "{\"classes\":[", 0, &err) == -1);
}

static void test_hash(void)
{
    /* deterministic, in [0, 1), about uniform, and different per seed */
    CHECK(fz_mask_hash01(1, 42) == fz_mask_hash01(1, 42));
    int below = 0, same = 0;
    double sum = 0;
    for (uint64_t id = 0; id < 100000; id++) {
        double u = fz_mask_hash01(7, id);
        CHECK_MSG(u >= 0 && u < 1, "u = %g", u);
        sum += u;
        below += u < 0.3;
        same += (fz_mask_hash01(8, id) < 0.3) == (u < 0.3);
    }
    CHECK_NEAR(sum / 100000, 0.5, 0.005);
    CHECK_NEAR(below / 100000.0, 0.3, 0.005);
    /* independent seeds agree on 0.3^2 + 0.7^2 = 58% of the rows */
    CHECK_NEAR(same / 100000.0, 0.58, 0.01);
}

static void test_choose(void)
{
    fz_err err = {0};
    enum { N = 1000 };
    int32_t lab[N];
    unsigned char keep[N], keep2[N];
    /* classes 0: 600 rows, 1: 300, 2: 90, and 10 rows without a label */
    for (int i = 0; i < N; i++) lab[i] = i % 100 < 60 ? 0 : i % 100 < 90 ? 1 : i % 100 < 99 ? 2 : -1;
    CHECK_EQ_INT(fz_mask_count_labeled(lab, N), 990);
    CHECK(fz_mask_choose(lab, N, 3, 100, 0, 5, keep, &err) == 0);
    int n = 0, per[3] = {0};
    for (int i = 0; i < N; i++)
        if (keep[i]) {
            n++;
            CHECK(lab[i] >= 0);
            per[lab[i]]++;
        }
    CHECK_EQ_INT(n, 100);
    CHECK(fz_mask_choose(lab, N, 3, 100, 0, 5, keep2, &err) == 0);
    CHECK(memcmp(keep, keep2, N) == 0);
    CHECK(fz_mask_choose(lab, N, 3, 100, 0, 6, keep2, &err) == 0);
    CHECK(memcmp(keep, keep2, N) != 0);
    /* stratified: 100 of 990 = 60.6, 30.3, 9.09 -> 61, 30, 9 (largest remainders) */
    CHECK(fz_mask_choose(lab, N, 3, 100, 1, 5, keep, &err) == 0);
    memset(per, 0, sizeof per);
    for (int i = 0; i < N; i++)
        if (keep[i]) per[lab[i]]++;
    CHECK_EQ_INT(per[0], 61);
    CHECK_EQ_INT(per[1], 30);
    CHECK_EQ_INT(per[2], 9);
    /* 7 of 990: 4.24, 2.12, 0.64 -> 4, 2, 1 */
    CHECK(fz_mask_choose(lab, N, 3, 7, 1, 5, keep, &err) == 0);
    memset(per, 0, sizeof per);
    for (int i = 0; i < N; i++)
        if (keep[i]) per[lab[i]]++;
    CHECK(per[0] == 4 && per[1] == 2 && per[2] == 1);
    /* all and none */
    CHECK(fz_mask_choose(lab, N, 3, 990, 1, 5, keep, &err) == 0);
    n = 0;
    for (int i = 0; i < N; i++) n += keep[i];
    CHECK_EQ_INT(n, 990);
    CHECK(fz_mask_choose(lab, N, 3, 0, 0, 5, keep, &err) == 0);
    n = 0;
    for (int i = 0; i < N; i++) n += keep[i];
    CHECK_EQ_INT(n, 0);
    /* too many, and an empty stream */
    CHECK(fz_mask_choose(lab, N, 3, 991, 0, 5, keep, &err) == -1);
    CHECK_CONTAINS(err.msg, "991 labeled rows asked for, the stream has 990");
    CHECK(fz_mask_choose(lab, 0, 3, 0, 1, 5, keep, &err) == 0);
}

static void test_meta(void)
{
    fz_mask m;
    fz_err err = {0};
    mnist(&m);
    char *s = fz_mask_meta("{\"rows\":3,\"classes\":[\"0\"],\"outputs\":[\"old\"],\"mask_redraw\":0.2,"
                           "\"norm\":{\"mode\":\"unit\"}}",
                           &m, 0.25, &err);
    CHECK(s != NULL);
    fz_json *j = s ? fz_json_parse(s, strlen(s), &err) : NULL;
    CHECK(j != NULL);
    CHECK_EQ_INT(fz_json_num(fz_json_get(j, "rows"), 0), 3);
    CHECK_STR(fz_json_str(fz_json_get(fz_json_get(j, "norm"), "mode")), "unit");
    const fz_json *outs = fz_json_get(j, "outputs");
    CHECK_EQ_INT(fz_json_len(outs), 12);
    CHECK_STR(fz_json_str(fz_json_at(outs, 11)), "open");
    CHECK_EQ_INT(fz_json_len(fz_json_get(fz_json_get(j, "attributes"), "loop")), 4);
    CHECK_NEAR(fz_json_num(fz_json_get(j, "mask_redraw"), 0), 0.25, 0);
    CHECK(!strstr(s, "old") && !strstr(s, "0.2,"));
    fz_json_free(j);
    free(s);
    /* without redraw an old entry goes; metadata that is not an object is refused */
    s = fz_mask_meta("{\"mask_redraw\":0.5}", &m, 0, &err);
    CHECK(s && !strstr(s, "mask_redraw"));
    free(s);
    CHECK(fz_mask_meta("[1]", &m, 0, &err) == NULL);
    CHECK_CONTAINS(err.msg, "not a JSON object");
    fz_mask_free(&m);
    /* classes made up from -k are written */
    CHECK(fz_mask_init_meta(&m, "{}", 2, &err) == 0);
    s = fz_mask_meta("{}", &m, 0, &err);
    CHECK_STR(s, "{\"classes\":[\"0\",\"1\"],\"outputs\":[\"0\",\"1\"],\"attributes\":{}}");
    free(s);
    fz_mask_free(&m);
}

/* The metadata fz_mask_meta writes reads back as the same outputs and attribute table. */
static void test_from_stream_meta(void)
{
    fz_mask m, back;
    fz_err err = {0};
    mnist(&m);
    char *s = fz_mask_meta("{\"classes\":[\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\","
                           "\"8\",\"9\"]}", &m, 0, &err);
    CHECK(s != NULL);
    CHECK(s && fz_mask_from_stream_meta(&back, s, &err) == 0);
    if (s && back.name) {
        CHECK_EQ_INT(back.K, 10);
        CHECK_EQ_INT(back.nout, 12);
        CHECK_STR(back.name[10], "loop");
        CHECK(memcmp(back.attr, m.attr, 20) == 0);
        fz_mask_free(&back);
    }
    free(s);
    fz_mask_free(&m);
    /* outputs that do not follow from classes and attributes, an unknown class */
    CHECK(fz_mask_from_stream_meta(&back, "{\"classes\":[\"a\",\"b\"],\"outputs\":[\"b\",\"a\"]}",
                                   &err) == -1);
    CHECK_CONTAINS(err.msg, "\"outputs\" are not its classes");
    CHECK(fz_mask_from_stream_meta(&back, "{\"classes\":[\"a\",\"b\"],\"attributes\":{\"x\":[\"c\"]}}",
                                   &err) == -1);
    CHECK_CONTAINS(err.msg, "no class named 'c'");
    CHECK(fz_mask_from_stream_meta(&back, "{\"attributes\":{}}", &err) == -1);
    CHECK_CONTAINS(err.msg, "names no classes");
}

int main(void)
{
    test_from_stream_meta();
    test_rows();
    test_spec_errors();
    test_select();
    test_init();
    test_hash();
    test_choose();
    test_meta();
    return check_report("test_mask");
}
