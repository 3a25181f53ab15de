/* test_json.c - the JSON parser (strictness, limits, error offsets, hostile input) and the
 * fz_sbuf builder (escapes, exact number round trip, sticky failure). */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"

/* Parse a NUL-terminated text; the copy has exactly strlen bytes so that ASan sees any
 * read past the end. */
static fz_json *parse_exact(const char *s, size_t n, fz_err *err)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    fz_json *j = fz_json_parse(copy, n, err);
    free(copy);
    return j;
}

static fz_json *parse(const char *s, fz_err *err) { return parse_exact(s, strlen(s), err); }

/* Compact text of a node (caller frees). */
static char *dump(const fz_json *j)
{
    fz_sbuf b;
    fz_sbuf_init(&b);
    fz_sbuf_json_node(&b, j);
    return fz_sbuf_take(&b);
}

static void test_basic(void)
{
    fz_err err = {0};
    const char *doc = " {\"b\": 1, \"a\": [true, false, null, -2.5e1, \"x\"], \"o\": {},"
                      " \"b\": \"last\"} \n";
    fz_json *j = parse(doc, &err);
    CHECK_MSG(j != NULL, "%s", err.msg);
    if (!j) return;
    CHECK_EQ_INT(fz_json_type(j), FZ_JOBJ);
    CHECK_EQ_INT(fz_json_len(j), 4);
    /* member order is kept */
    CHECK_STR(fz_json_key_at(j, 0), "b");
    CHECK_STR(fz_json_key_at(j, 1), "a");
    CHECK_STR(fz_json_key_at(j, 2), "o");
    CHECK_STR(fz_json_key_at(j, 3), "b");
    CHECK(fz_json_key_at(j, 4) == NULL);
    /* a repeated key: get returns the last */
    CHECK_STR(fz_json_str(fz_json_get(j, "b")), "last");
    CHECK_NEAR(fz_json_num(fz_json_at(j, 0), -1), 1.0, 0);
    const fz_json *a = fz_json_get(j, "a");
    CHECK_EQ_INT(fz_json_type(a), FZ_JARR);
    CHECK_EQ_INT(fz_json_len(a), 5);
    CHECK_EQ_INT(fz_json_bool(fz_json_at(a, 0), -1), 1);
    CHECK_EQ_INT(fz_json_bool(fz_json_at(a, 1), -1), 0);
    CHECK_EQ_INT(fz_json_type(fz_json_at(a, 2)), FZ_JNULL);
    CHECK_NEAR(fz_json_num(fz_json_at(a, 3), 0), -25.0, 0);
    CHECK_STR(fz_json_str(fz_json_at(a, 4)), "x");
    CHECK(fz_json_at(a, 5) == NULL);
    CHECK(fz_json_key_at(a, 0) == NULL); /* arrays have no keys */
    CHECK(fz_json_get(a, "x") == NULL);
    CHECK_EQ_INT(fz_json_type(fz_json_get(j, "o")), FZ_JOBJ);
    CHECK_EQ_INT(fz_json_len(fz_json_get(j, "o")), 0);
    CHECK(fz_json_get(j, "missing") == NULL);
    /* fallbacks for wrong types and NULL */
    CHECK_NEAR(fz_json_num(fz_json_at(a, 4), 7.0), 7.0, 0);
    CHECK_EQ_INT(fz_json_bool(NULL, 3), 3);
    CHECK(fz_json_str(fz_json_at(a, 0)) == NULL);
    CHECK(fz_json_str(NULL) == NULL);
    CHECK_EQ_INT(fz_json_len(fz_json_at(a, 4)), 0);
    CHECK_EQ_INT(fz_json_len(NULL), 0);
    CHECK(fz_json_get(NULL, "a") == NULL);
    fz_json_free(j);
    fz_json_free(NULL);

    /* scalars at the top level (RFC 8259) */
    j = parse(" 42 ", &err);
    CHECK(j && fz_json_num(j, 0) == 42.0);
    fz_json_free(j);
    j = parse("\"s\"", &err);
    CHECK_STR(fz_json_str(j), "s");
    fz_json_free(j);
}

static void test_numbers(void)
{
    struct {
        const char *text;
        double want;
    } ok[] = {{"0", 0}, {"-0", -0.0}, {"1.5e3", 1500}, {"1E+2", 100}, {"-1e-2", -0.01},
              {"123456789012345678", 123456789012345678.0}, {"1e-400", 0},
              {"0.1", 0.1}, {"1.7976931348623157e308", DBL_MAX}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        fz_err err = {0};
        fz_json *j = parse(ok[i].text, &err);
        CHECK_MSG(j && fz_json_type(j) == FZ_JNUM && fz_json_num(j, -9) == ok[i].want,
                  "'%s': %s", ok[i].text, j ? "wrong value" : err.msg);
        fz_json_free(j);
    }
}

static void test_strings(void)
{
    fz_err err = {0};
    fz_json *j = parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\xc3\xa9\"", &err);
    CHECK_MSG(j != NULL, "%s", err.msg);
    CHECK_STR(fz_json_str(j), "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9");
    fz_json_free(j);
    /* the largest code point, raw and escaped */
    j = parse("[\"\xf4\x8f\xbf\xbf\", \"\\udbff\\udfff\"]", &err);
    CHECK_MSG(j != NULL, "%s", err.msg);
    CHECK_STR(fz_json_str(fz_json_at(j, 0)), "\xf4\x8f\xbf\xbf");
    CHECK_STR(fz_json_str(fz_json_at(j, 1)), "\xf4\x8f\xbf\xbf");
    fz_json_free(j);
}

/* Each bad text must fail with a reason that gives the expected byte offset. */
static void test_errors(void)
{
    struct {
        const char *text;
        size_t len; /* 0: strlen */
        const char *want;
    } bad[] = {
        {"", 0, "offset 0: expected a value"},
        {"   ", 0, "offset 3: expected a value"},
        {"{\"a\" 1}", 0, "offset 5: expected ':'"},
        {"{\"a\":1,}", 0, "offset 7: expected a string key"},
        {"[1,]", 0, "offset 3: expected a value"},
        {"[1 2]", 0, "offset 3: expected ',' or ']'"},
        {"{,}", 0, "offset 1"},
        {"{1:2}", 0, "offset 1: expected a string key"},
        {"01", 0, "offset 1: trailing data"},
        {"1.", 0, "offset 2: expected a digit after '.'"},
        {".5", 0, "offset 0: expected a value"},
        {"-", 0, "offset 1: expected a digit"},
        {"+1", 0, "offset 0"},
        {"1e", 0, "offset 2: expected a digit in exponent"},
        {"1e400", 0, "offset 0: number out of range"},
        {"-1e400", 0, "out of range"},
        {"NaN", 0, "offset 0"},
        {"Infinity", 0, "offset 0"},
        {"tru", 0, "offset 3: expected 'true'"},
        {"trux", 0, "offset 3: expected 'true'"},
        {"nul", 0, "expected 'null'"},
        {"'a'", 0, "offset 0"},
        {"\"abc", 0, "offset 0: unterminated string"},
        {"\"a\\", 0, "unterminated string"},
        {"\"\\x\"", 0, "offset 1: bad escape"},
        {"\"a\x01\"", 0, "offset 2: control character 0x01"},
        {"\"a\nb\"", 0, "control character 0x0a"},
        {"\"\\u0000\"", 0, "offset 1: \\u0000"},
        {"\"\\u12\"", 0, "bad hex digit"},
        {"\"\\ud800\"", 0, "not followed by a low one"},
        {"\"\\ud800\\u0041\"", 0, "not followed by a low one"},
        {"\"\\udc00\"", 0, "lone low surrogate"},
        {"\"\xc0\x80\"", 0, "offset 1: invalid UTF-8"},       /* overlong NUL */
        {"\"\xed\xa0\x80\"", 0, "invalid UTF-8"},             /* encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", 0, "invalid UTF-8"},         /* above U+10FFFF */
        {"\"\xe2\x82\"", 0, "invalid UTF-8"},                 /* truncated sequence */
        {"\"\x80\"", 0, "invalid UTF-8"},                     /* lone continuation */
        {"\"a\0b\"", 5, "offset 2: control character 0x00"}, /* embedded NUL */
        {"1\0", 2, "offset 1: trailing data"},
        {"[1] x", 0, "offset 4: trailing data"},
        {"{} {}", 0, "trailing data"},
        {"\xef\xbb\xbf{}", 0, "offset 0: expected a value, got byte 0xef"}, /* no BOM */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fz_err err = {0};
        size_t n = bad[i].len ? bad[i].len : strlen(bad[i].text);
        fz_json *j = parse_exact(bad[i].text, n, &err);
        CHECK_MSG(j == NULL, "accepted bad text #%zu", i);
        fz_json_free(j);
        CHECK_CONTAINS(err.msg, "JSON: ");
        CHECK_CONTAINS(err.msg, bad[i].want);
        CHECK_EQ_INT(err.code, FZ_EDATA);
    }
}

static void test_depth(void)
{
    char buf[2 * (FZ_JSON_MAX_DEPTH + 1) + 1];
    fz_err err = {0};
    /* FZ_JSON_MAX_DEPTH levels are fine, one more is refused */
    for (int d = FZ_JSON_MAX_DEPTH; d <= FZ_JSON_MAX_DEPTH + 1; d++) {
        memset(buf, '[', (size_t)d);
        memset(buf + d, ']', (size_t)d);
        fz_json *j = parse_exact(buf, 2 * (size_t)d, &err);
        if (d == FZ_JSON_MAX_DEPTH) {
            CHECK_MSG(j != NULL, "%s", err.msg);
        } else {
            CHECK(j == NULL);
            CHECK_CONTAINS(err.msg, "nesting deeper than 64");
        }
        fz_json_free(j);
    }
    /* a hostile million-deep document fails fast without exhausting the stack */
    size_t n = 1000000;
    char *deep = malloc(n);
    memset(deep, '[', n);
    fz_json *j = fz_json_parse(deep, n, &err);
    CHECK(j == NULL);
    CHECK_CONTAINS(err.msg, "offset 64: nesting");
    /* objects count as levels too: the 65th '{' is refused (before the truncation) */
    for (size_t i = 0; i < 65 * 5; i += 5) memcpy(deep + i, "{\"a\":", 5);
    j = fz_json_parse(deep, 65 * 5, &err);
    CHECK(j == NULL);
    CHECK_CONTAINS(err.msg, "offset 320: nesting");
    free(deep);
}

static void test_size_limit(void)
{
    size_t n = ((size_t)64 << 20) + 1;
    char *big = malloc(n);
    if (!big) return;
    memset(big, ' ', n);
    big[0] = '0';
    fz_err err = {0};
    fz_json *j = fz_json_parse(big, n, &err);
    CHECK(j == NULL);
    CHECK_CONTAINS(err.msg, "exceeds the limit");
    /* exactly the limit is accepted */
    j = fz_json_parse(big, n - 1, &err);
    CHECK_MSG(j != NULL, "%s", err.msg);
    fz_json_free(j);
    /* an array of FZ_JSON_MAX_NODES - 1 zeros is accepted, one more value is refused */
    size_t k = FZ_JSON_MAX_NODES - 1;
    big[0] = '[';
    for (size_t i = 0; i < k; i++) memcpy(big + 1 + 2 * i, "0,", 2);
    big[2 * k] = ']';
    j = fz_json_parse(big, 2 * k + 1, &err);
    CHECK_MSG(fz_json_len(j) == k, "%s", err.msg);
    fz_json_free(j);
    memcpy(big + 2 * k, ",0]", 3);
    j = fz_json_parse(big, 2 * k + 3, &err);
    CHECK(j == NULL);
    CHECK_CONTAINS(err.msg, "more than 2097152 values");
    free(big);
}

static const char *docs[] = {
    "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"__metadata__\":{\"k\":\"v \\\"q\\\" \\u00e9\"}}",
    "[1, -2.5e-3, true, false, null, \"a\\nb\", [], {}, [[{\"z\": [0]}]]]",
    "{\"s\": \"\\ud83d\\ude00 \xe2\x82\xac\", \"n\": 1e300, \"m\": -0.000001}",
};

/* Every proper prefix of a valid object/array document is invalid: it must fail cleanly. */
static void test_truncation(void)
{
    for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
        size_t n = strlen(docs[d]);
        fz_err err = {0};
        fz_json *j = parse_exact(docs[d], n, &err);
        CHECK_MSG(j != NULL, "doc %zu: %s", d, err.msg);
        fz_json_free(j);
        int failures = 0;
        for (size_t k = 0; k < n; k++) {
            err.msg[0] = '\0';
            j = parse_exact(docs[d], k, &err);
            if (j || !strstr(err.msg, "JSON: offset ")) failures++;
            fz_json_free(j);
        }
        CHECK_MSG(failures == 0, "doc %zu: %d prefixes not refused", d, failures);
    }
}

/* Overwrite each byte with a few troublesome values: parse or fail, never crash (ASan). */
static void test_corruption(void)
{
    const unsigned char vals[] = {0, '"', '\\', '[', '{', '}', ']', ',', ':', 0x80, 0xff, '9'};
    int parsed = 0, refused = 0;
    for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
        size_t n = strlen(docs[d]);
        char *buf = malloc(n);
        for (size_t k = 0; k < n; k++) {
            for (size_t v = 0; v < sizeof vals; v++) {
                memcpy(buf, docs[d], n);
                buf[k] = (char)vals[v];
                fz_err err = {0};
                fz_json *j = fz_json_parse(buf, n, &err);
                if (j) {
                    parsed++;
                    /* whatever parsed must print back to parseable text */
                    char *t = dump(j);
                    fz_json *j2 = t ? fz_json_parse(t, strlen(t), &err) : NULL;
                    CHECK(j2 != NULL);
                    fz_json_free(j2);
                    free(t);
                } else {
                    refused++;
                    CHECK(err.msg[0] != '\0');
                }
                fz_json_free(j);
            }
        }
        free(buf);
    }
    CHECK(refused > 0 && parsed > 0);
}

/* parse -> text -> parse -> text gives the same text, and values survive. */
static void test_round_trip(void)
{
    for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
        fz_err err = {0};
        fz_json *a = parse(docs[d], &err);
        char *ta = dump(a);
        fz_json *b = ta ? parse(ta, &err) : NULL;
        CHECK_MSG(b != NULL, "doc %zu: %s", d, err.msg);
        char *tb = dump(b);
        CHECK_STR(ta, tb);
        fz_json_free(a);
        fz_json_free(b);
        free(ta);
        free(tb);
    }
    fz_err err = {0};
    fz_json *j = parse(docs[2], &err);
    char *t = dump(j);
    CHECK_STR(t, "{\"s\":\"\xf0\x9f\x98\x80 \xe2\x82\xac\",\"n\":1.0000000000000001e+300,"
                 "\"m\":-9.9999999999999995e-07}");
    fz_json *k = parse(t, &err);
    CHECK(fz_json_num(fz_json_get(k, "n"), 0) == 1e300);
    CHECK(fz_json_num(fz_json_get(k, "m"), 0) == -0.000001);
    fz_json_free(j);
    fz_json_free(k);
    free(t);
}

static void test_sbuf(void)
{
    fz_sbuf b;
    fz_sbuf_init(&b);
    char *s = fz_sbuf_take(&b);
    CHECK_STR(s, ""); /* an untouched buffer gives an empty string, not NULL */
    free(s);

    fz_sbuf_printf(&b, "%d-%s", 12, "ab");
    fz_sbuf_putc(&b, '!');
    CHECK_STR(b.buf, "12-ab!");
    CHECK_EQ_INT(b.len, 6);
    /* growth well past the first allocation and past printf's stack buffer */
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 50; i++) fz_sbuf_printf(&b, "%s", big);
    CHECK_EQ_INT(b.len, 6 + 50 * 999);
    CHECK_EQ_INT(strlen(b.buf), b.len);
    CHECK(!b.failed);
    fz_sbuf_free(&b);

    /* sticky failure: once failed, nothing is appended and take gives NULL */
    fz_sbuf_init(&b);
    fz_sbuf_printf(&b, "abc");
    b.failed = 1;
    fz_sbuf_printf(&b, "def");
    fz_sbuf_putc(&b, 'g');
    fz_sbuf_json_str(&b, "h");
    fz_sbuf_json_f64(&b, 1.0);
    CHECK_EQ_INT(b.len, 3);
    CHECK(fz_sbuf_take(&b) == NULL);
    CHECK(b.buf == NULL && b.len == 0 && b.failed == 0);

    /* string escapes */
    fz_sbuf_init(&b);
    fz_sbuf_json_str(&b, "q\"b\\s/\n\t\x01\x7f \xc3\xa9 bad\xff\xc3");
    fz_sbuf_putc(&b, ' ');
    fz_sbuf_json_str(&b, NULL);
    CHECK_STR(b.buf, "\"q\\\"b\\\\s/\\n\\t\\u0001\\u007f \xc3\xa9 bad\xef\xbf\xbd\xef\xbf\xbd\" null");
    fz_err err = {0};
    fz_json *j = parse_exact(b.buf, b.len - 5, &err);
    CHECK_STR(fz_json_str(j), "q\"b\\s/\n\t\x01\x7f \xc3\xa9 bad\xef\xbf\xbd\xef\xbf\xbd");
    fz_json_free(j);
    fz_sbuf_free(&b);

    /* numbers read back exactly; non-finite ones become null */
    const float fv[] = {0.1f, -1.0f / 3.0f, FLT_MAX, FLT_MIN, 1e-45f, 16777217.0f, 0.0f};
    const double dv[] = {0.1, -1.0 / 3.0, DBL_MAX, DBL_MIN, 5e-324, 9007199254740993.0, 1e22};
    fz_sbuf_init(&b);
    fz_sbuf_putc(&b, '[');
    for (size_t i = 0; i < 7; i++) {
        fz_sbuf_json_f32(&b, fv[i]);
        fz_sbuf_putc(&b, ',');
        fz_sbuf_json_f64(&b, dv[i]);
        fz_sbuf_putc(&b, ',');
    }
    fz_sbuf_json_f32(&b, NAN);
    fz_sbuf_putc(&b, ',');
    fz_sbuf_json_f64(&b, -INFINITY);
    fz_sbuf_putc(&b, ']');
    char *text = fz_sbuf_take(&b);
    j = text ? parse(text, &err) : NULL;
    CHECK_MSG(j != NULL, "%s: %s", text, err.msg);
    CHECK_EQ_INT(fz_json_len(j), 16);
    for (size_t i = 0; i < 7; i++) {
        CHECK_MSG((float)fz_json_num(fz_json_at(j, 2 * i), 0) == fv[i], "f32 #%zu in %s", i, text);
        CHECK_MSG(fz_json_num(fz_json_at(j, 2 * i + 1), 0) == dv[i], "f64 #%zu in %s", i, text);
    }
    CHECK_EQ_INT(fz_json_type(fz_json_at(j, 14)), FZ_JNULL);
    CHECK_EQ_INT(fz_json_type(fz_json_at(j, 15)), FZ_JNULL);
    fz_json_free(j);
    free(text);
}

int main(void)
{
    test_basic();
    test_numbers();
    test_strings();
    test_errors();
    test_depth();
    test_size_limit();
    test_truncation();
    test_corruption();
    test_round_trip();
    test_sbuf();
    return check_report("test_json");
}
