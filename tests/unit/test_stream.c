/* Unit tests of lib/stream: round trips, metadata, and every way a stream can be broken. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "stream.h"

static char dir[] = "/tmp/fz-test-stream-XXXXXX";

static void make_schema(fz_schema *s)
{
    fz_err e;
    int64_t shp[3] = {1, 2, 3};
    fz_schema_init(s);
    CHECK(fz_schema_add(s, "id", FZ_U8, 0, 0, NULL, &e) == 0);
    CHECK(fz_schema_add(s, "label", FZ_I4, 0, 0, NULL, &e) == 0);
    CHECK(fz_schema_add(s, "x", FZ_F4, 0, 3, shp, &e) == 0);
    CHECK(fz_schema_add(s, "path", FZ_BYTES, 12, 0, NULL, &e) == 0);
    CHECK(fz_schema_add(s, "u", FZ_U1, 0, 0, NULL, &e) == 0);
}

static void fill_row(const fz_schema *s, unsigned char *row, int i)
{
    memset(row, 0, s->row_size);
    fz_field_set(&s->field[0], row, 0, 1000 + i);
    fz_field_set(&s->field[1], row, 0, i % 10 - 1);
    for (int k = 0; k < 6; k++) fz_field_set(&s->field[2], row, k, i * 0.5 + k);
    snprintf((char *)row + s->field[3].offset, 12, "img%d.png", i);
    fz_field_set(&s->field[4], row, 0, i);
}

static long write_file(const char *path, int nrows, size_t chunk, const char *meta)
{
    fz_schema s;
    make_schema(&s);
    fz_err e;
    fz_writer *w = fz_writer_open(path, &s, meta, chunk, &e);
    CHECK(w != NULL);
    if (!w) return -1;
    unsigned char row[256];
    for (int i = 0; i < nrows; i++) {
        fill_row(&s, row, i);
        CHECK(fz_writer_write(w, row, 1, &e) == 0);
    }
    CHECK(fz_writer_close(w, &e) == 0);
    return 0;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    *n = fread(b, 1, *n, f);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

/* Read a whole stream; returns rows or -1 (message in e). */
static long read_all(const char *path, fz_err *e, int check_values)
{
    fz_reader *r = fz_reader_open(path, e);
    if (!r) return -1;
    const fz_schema *s = fz_reader_schema(r);
    unsigned char *buf = malloc(s->row_size * 7 + 1);
    long total = 0, n;
    while ((n = fz_reader_read(r, buf, 7, e)) > 0) {
        if (check_values) {
            fz_schema ref;
            make_schema(&ref);
            unsigned char want[256];
            for (long i = 0; i < n; i++) {
                fill_row(&ref, want, (int)(total + i));
                CHECK(memcmp(want, buf + i * s->row_size, s->row_size) == 0);
            }
        }
        total += n;
    }
    free(buf);
    fz_reader_close(r);
    return n < 0 ? -1 : total;
}

static void test_round_trip(void)
{
    char p[256];
    snprintf(p, sizeof p, "%s/a.npy", dir);
    write_file(p, 23, 5, "{\"classes\":[\"a\",\"b\"]}");
    fz_err e;
    fz_reader *r = fz_reader_open(p, &e);
    CHECK(r != NULL);
    if (!r) return;
    CHECK_STR(fz_reader_meta(r), "{\"classes\":[\"a\",\"b\"]}");
    fz_schema ref;
    make_schema(&ref);
    CHECK(fz_schema_equal(fz_reader_schema(r), &ref));
    fz_reader_close(r);
    CHECK_EQ_INT(read_all(p, &e, 1), 23);
    char d[512];
    CHECK(fz_schema_descr(&ref, d, sizeof d) == 0);
    CHECK_STR(d, "[('id', '<u8'), ('label', '<i4'), ('x', '<f4', (1, 2, 3)), ('path', '|S12'), "
                 "('u', '|u1')]");
    /* No temporary file left behind. */
    snprintf(p, sizeof p, "%s/a.npy.tmp.%ld", dir, (long)getpid());
    CHECK(access(p, F_OK) != 0);
}

static void test_empty_stream_keeps_schema(void)
{
    char p[256];
    snprintf(p, sizeof p, "%s/empty.npy", dir);
    write_file(p, 0, 5, NULL);
    fz_err e;
    fz_reader *r = fz_reader_open(p, &e);
    CHECK(r != NULL);
    if (!r) return;
    CHECK_EQ_INT(fz_reader_schema(r)->nfields, 5);
    CHECK_STR(fz_reader_meta(r), "{}");
    unsigned char buf[256];
    CHECK_EQ_INT(fz_reader_read(r, buf, 1, &e), 0);
    fz_reader_close(r);
}

/* Cut a valid stream at every byte: each cut either ends cleanly on a chunk boundary with
 * the rows of the complete chunks, or fails with a message that says what was truncated. */
static void test_truncation(void)
{
    char p[256], q[256];
    snprintf(p, sizeof p, "%s/t.npy", dir);
    snprintf(q, sizeof q, "%s/cut.npy", dir);
    write_file(p, 7, 3, "{\"k\":1}");
    size_t n;
    unsigned char *b = slurp(p, &n);
    CHECK(b != NULL);
    if (!b) return;
    int clean = 0;
    for (size_t cut = 0; cut < n; cut++) {
        spit(q, b, cut);
        fz_err e = {0, ""};
        long rows = read_all(q, &e, 1);
        if (rows >= 0) {
            clean++;
            CHECK_MSG(rows == 3 || rows == 6, "cut %zu gave %ld rows", cut, rows);
        } else {
            CHECK_MSG(strstr(e.msg, "truncated") || strstr(e.msg, "empty stream"),
                      "cut %zu: %s", cut, e.msg);
            CHECK_CONTAINS(e.msg, "cut.npy");
        }
    }
    CHECK_EQ_INT(clean, 2); /* exactly the two chunk boundaries inside the file */
    CHECK_EQ_INT(read_all(p, &(fz_err){0, ""}, 1), 7);
    free(b);
}

/* Flip every byte of the headers: never a crash; either an error or a readable stream. */
static void test_corruption(void)
{
    char p[256], q[256];
    snprintf(p, sizeof p, "%s/c.npy", dir);
    snprintf(q, sizeof q, "%s/bad.npy", dir);
    write_file(p, 4, 2, "{}");
    size_t n;
    unsigned char *b = slurp(p, &n);
    if (!b) return;
    for (size_t i = 0; i < n && i < 400; i++) {
        for (int v = 0; v < 3; v++) {
            unsigned char keep = b[i];
            b[i] = (unsigned char)(v == 0 ? 0 : v == 1 ? 0xff : keep ^ 0x20);
            spit(q, b, n);
            fz_err e = {0, ""};
            long rows = read_all(q, &e, 0);
            CHECK(rows >= 0 || e.msg[0] != '\0');
            b[i] = keep;
        }
    }
    free(b);
}

/* Write a raw .npy with a hand-made header. */
static void raw_npy(const char *path, const char *header, const void *data, size_t n)
{
    char h[1024];
    size_t len = strlen(header);
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    h[8] = (char)(len & 0xff);
    h[9] = (char)(len >> 8);
    memcpy(h + 10, header, len);
    FILE *f = fopen(path, "wb");
    fwrite(h, 1, 10 + len, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void expect_error(const char *header, const void *data, size_t n, const char *msg)
{
    char p[256];
    snprintf(p, sizeof p, "%s/e.npy", dir);
    raw_npy(p, header, data, n);
    fz_err e = {0, ""};
    long rows = read_all(p, &e, 0);
    CHECK_MSG(rows < 0, "header %s was accepted", header);
    CHECK_CONTAINS(e.msg, msg);
    CHECK(strchr(e.msg, '\n') == NULL);
}

static void test_bad_headers(void)
{
    float four[4] = {1, 2, 3, 4};
    expect_error("{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", four, 16,
                 "big-endian");
    expect_error("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", four, 16,
                 "unsupported dtype '<c8'");
    expect_error("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", four, 16,
                 "Fortran order");
    expect_error("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", four,
                 16, "rows");
    expect_error("{'descr': [('x', '<f4', (1099511627776,))], 'fortran_order': False, "
                 "'shape': (1,), }",
                 four, 16, "row larger");
    expect_error("{'descr': [('a', [('b', '<f4')])], 'fortran_order': False, 'shape': (1,), }",
                 four, 4, "nested");
    expect_error("{'descr': '<f4', 'shape': (4,), }", four, 16, "missing 'fortran_order'");
    expect_error("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", four, 8,
                 "truncated chunk");
    char p[256];
    snprintf(p, sizeof p, "%s/notnpy", dir);
    spit(p, "hello world, this is text", 25);
    fz_err e = {0, ""};
    CHECK(read_all(p, &e, 0) < 0);
    CHECK_CONTAINS(e.msg, "bad magic");
}

/* A second chunk whose dtype differs from the first is refused, naming both. */
static void test_dtype_mismatch(void)
{
    char p[256], a[256];
    snprintf(p, sizeof p, "%s/m.npy", dir);
    snprintf(a, sizeof a, "%s/m2.npy", dir);
    float four[4] = {1, 2, 3, 4};
    raw_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", four, 16);
    raw_npy(a, "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", four, 16);
    size_t n1, n2;
    unsigned char *b1 = slurp(p, &n1), *b2 = slurp(a, &n2);
    unsigned char *cat = malloc(n1 + n2);
    memcpy(cat, b1, n1);
    memcpy(cat + n1, b2, n2);
    spit(p, cat, n1 + n2);
    fz_err e = {0, ""};
    CHECK(read_all(p, &e, 0) < 0);
    CHECK_CONTAINS(e.msg, "has dtype [('x', '<i4')], but the stream's rows are [('x', '<f4')]");
    free(b1);
    free(b2);
    free(cat);
}

/* A plain 2-D array becomes one field x with the trailing shape. */
static void test_plain_array(void)
{
    char p[256];
    snprintf(p, sizeof p, "%s/plain.npy", dir);
    float v[6] = {1, 2, 3, 4, 5, 6};
    raw_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", v, 24);
    fz_err e;
    fz_reader *r = fz_reader_open(p, &e);
    CHECK(r != NULL);
    if (!r) return;
    const fz_schema *s = fz_reader_schema(r);
    CHECK_EQ_INT(s->nfields, 1);
    CHECK_STR(s->field[0].name, "x");
    CHECK_EQ_INT(s->field[0].count, 3);
    float got[6];
    CHECK_EQ_INT(fz_reader_read(r, got, 10, &e), 2);
    CHECK_NEAR(got[5], 6, 0);
    fz_reader_close(r);
}

static void test_schema_limits(void)
{
    fz_schema s;
    fz_schema_init(&s);
    fz_err e;
    CHECK(fz_schema_add(&s, "a", FZ_F4, 0, 0, NULL, &e) == 0);
    CHECK(fz_schema_add(&s, "a", FZ_F4, 0, 0, NULL, &e) < 0);
    CHECK_CONTAINS(e.msg, "duplicate");
    CHECK(fz_schema_add(&s, "it's", FZ_F4, 0, 0, NULL, &e) < 0);
    int64_t huge[2] = {1 << 20, 1 << 20};
    CHECK(fz_schema_add(&s, "big", FZ_F4, 0, 2, huge, &e) < 0);
    /* Integer conversion saturates instead of wrapping. */
    unsigned char row[16] = {0};
    fz_schema t;
    fz_schema_init(&t);
    CHECK(fz_schema_add(&t, "b", FZ_U1, 0, 0, NULL, &e) == 0);
    fz_field_set(&t.field[0], row, 0, 300);
    CHECK_NEAR(fz_field_get(&t.field[0], row, 0), 255, 0);
    fz_field_set(&t.field[0], row, 0, -4);
    CHECK_NEAR(fz_field_get(&t.field[0], row, 0), 0, 0);
}

int main(int argc, char **argv)
{
    /* "test_stream write PATH": write the sample stream (23 rows in chunks of 5, with
     * metadata) for the NumPy interoperability test, and stop. */
    if (argc == 3 && strcmp(argv[1], "write") == 0) {
        write_file(argv[2], 23, 5, "{\"classes\":[\"a\",\"b\"],\"note\":\"caf\u00e9\"}");
        return check_report("test_stream write");
    }
    if (!mkdtemp(dir)) return 1;
    test_round_trip();
    test_empty_stream_keeps_schema();
    test_truncation();
    test_corruption();
    test_bad_headers();
    test_dtype_mismatch();
    test_plain_array();
    test_schema_limits();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) { /* scratch dir removal failed: harmless */ }
    return check_report("test_stream");
}
