/* test_safetensors.c - safetensors writing and loading: round trip, validation of hostile
 * headers, truncation and corruption, checksums, atomic replacement.
 *
 * Extra modes for the shell tests:
 *   test_safetensors write PATH    write the sample model (see write_sample) and exit
 *   test_safetensors dump PATH     load PATH, print each tensor and the metadata
 *   test_safetensors verify PATH   fz_st_verify
 * On failure these print one line "test_safetensors: reason" and exit 1. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "safetensors.h"

static char dir[64]; /* scratch directory */

static char *tmp_path(const char *name)
{
    static char buf[8][128];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n ? (size_t)n : 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
}

/* A file from a header text and data bytes (the header length prefix is added). The copy
 * has exactly the file's size so that ASan sees reads past the end. */
static fz_st_file *load_crafted(const char *header, const void *data, size_t dlen, fz_err *err)
{
    size_t hl = strlen(header), n = 8 + hl + dlen;
    unsigned char *b = malloc(n);
    fz_put_le64(b, hl);
    memcpy(b + 8, header, hl);
    if (dlen) memcpy(b + 8 + hl, data, dlen);
    fz_st_file *f = fz_st_load_mem(b, n, "crafted.st", err);
    free(b);
    return f;
}

/* ---- the sample model, also used by the NumPy shell test ---- */

static float w_data[3 * 4]; /* (3, 4) */
static float b_data[4];     /* (4,) */
static double d_data[2 * 2]; /* (2, 2) */
static int64_t step_data = 1234567890123LL;
static int32_t i_data[2] = {-7, 2147483647};
static unsigned char mask_data[5] = {0, 1, 2, 254, 255};
static const char *quote_meta = "he said \"hi\"\n\tand left \\ /";
static const char *unicode_meta = "\xc3\xbc" "n" "\xc3\xaf" "c" "\xc3\xb8" "d" "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";

static void fill_sample(void)
{
    for (int i = 0; i < 12; i++) w_data[i] = 0.25f * (float)i - 1.0f;
    for (int i = 0; i < 4; i++) b_data[i] = 1.0f / (float)(i + 1);
    for (int i = 0; i < 4; i++) d_data[i] = 1.0 / 3.0 + i;
}

/* Tensors added in an order that mixes element sizes, so the writer's alignment shows. */
static int write_sample(const char *path, fz_err *err)
{
    fill_sample();
    fz_st_writer *w = fz_st_writer_new(err);
    if (!w) return -1;
    int64_t ws[] = {3, 4}, bs[] = {4}, ds[] = {2, 2}, ms[] = {5}, is[] = {2}, es[] = {0, 3};
    int rc = 0;
    if (rc == 0) rc = fz_st_add(w, "mask", "U8", mask_data, 5, 1, ms, err);
    if (rc == 0) rc = fz_st_add_f32(w, "enc.0.weight", w_data, 2, ws, err);
    if (rc == 0) rc = fz_st_add_f32(w, "enc.0.bias", b_data, 1, bs, err);
    if (rc == 0) rc = fz_st_add(w, "step", "I64", &step_data, 8, 0, NULL, err);
    if (rc == 0) rc = fz_st_add(w, "d", "F64", d_data, sizeof d_data, 2, ds, err);
    if (rc == 0) rc = fz_st_add(w, "i", "I32", i_data, sizeof i_data, 1, is, err);
    if (rc == 0) rc = fz_st_add_f32(w, "empty", NULL, 2, es, err);
    if (rc == 0) rc = fz_st_set_meta(w, "arch", "784-256-16", err);
    if (rc == 0) rc = fz_st_set_meta(w, "quote", quote_meta, err);
    if (rc == 0) rc = fz_st_set_meta(w, "unicode", unicode_meta, err);
    if (rc == 0) rc = fz_st_set_meta(w, "arch", "3-4", err); /* replaces */
    if (rc == 0) rc = fz_st_write(w, path, err);
    fz_st_writer_free(w);
    return rc;
}

static void test_round_trip(void)
{
    fz_err err = {0};
    const char *p = tmp_path("m.st");
    CHECK_MSG(write_sample(p, &err) == 0, "%s", err.msg);
    fz_st_file *f = fz_st_load(p, &err);
    CHECK_MSG(f != NULL, "%s", err.msg);
    if (!f) return;
    CHECK_EQ_INT(fz_st_count(f), 7);
    const char *names[] = {"mask", "enc.0.weight", "enc.0.bias", "step", "d", "i", "empty"};
    for (int i = 0; i < 7; i++) CHECK_STR(fz_st_get(f, i)->name, names[i]);
    CHECK(fz_st_get(f, 7) == NULL && fz_st_get(f, -1) == NULL);

    const fz_st_tensor *t = fz_st_find(f, "enc.0.weight");
    CHECK(t && strcmp(t->dtype, "F32") == 0 && t->ndim == 2 && t->shape[0] == 3 &&
          t->shape[1] == 4 && t->nbytes == 48);
    const float *w = fz_st_data(f, t);
    CHECK(w && memcmp(w, w_data, sizeof w_data) == 0);
    int64_t ws[] = {3, 4}, bad[] = {4, 3};
    CHECK(fz_st_f32(f, "enc.0.weight", 2, ws, &err) == w);
    CHECK(fz_st_f32(f, "enc.0.weight", 2, bad, &err) == NULL);
    CHECK_CONTAINS(err.msg, "m.st: tensor 'enc.0.weight': shape (3, 4), expected (4, 3)");
    CHECK(fz_st_f32(f, "d", 2, bad, &err) == NULL);
    CHECK_CONTAINS(err.msg, "tensor 'd' is F64, expected F32");
    CHECK(fz_st_f32(f, "nope", 2, bad, &err) == NULL);
    CHECK_CONTAINS(err.msg, "no tensor 'nope'");

    t = fz_st_find(f, "enc.0.bias");
    CHECK(t && t->ndim == 1 && memcmp(fz_st_data(f, t), b_data, sizeof b_data) == 0);
    t = fz_st_find(f, "step");
    CHECK(t && t->ndim == 0 && t->nbytes == 8 && *(const int64_t *)fz_st_data(f, t) == step_data);
    t = fz_st_find(f, "d");
    CHECK(t && memcmp(fz_st_data(f, t), d_data, sizeof d_data) == 0);
    t = fz_st_find(f, "i");
    CHECK(t && memcmp(fz_st_data(f, t), i_data, sizeof i_data) == 0);
    t = fz_st_find(f, "mask");
    CHECK(t && memcmp(fz_st_data(f, t), mask_data, 5) == 0);
    t = fz_st_find(f, "empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->nbytes == 0);
    CHECK(fz_st_find(f, "enc.0") == NULL);
    /* every tensor is aligned to its element size in memory */
    for (int i = 0; i < fz_st_count(f); i++) {
        t = fz_st_get(f, i);
        CHECK((uintptr_t)fz_st_data(f, t) % fz_st_dtype_size(t->dtype) == 0);
        CHECK(t->offset % fz_st_dtype_size(t->dtype) == 0);
    }

    CHECK_STR(fz_st_meta(f, "arch"), "3-4");
    CHECK_STR(fz_st_meta(f, "quote"), quote_meta);
    CHECK_STR(fz_st_meta(f, "unicode"), unicode_meta);
    const char *c = fz_st_meta(f, "fz_checksum");
    CHECK(c && strncmp(c, "crc32:", 6) == 0 && strlen(c) == 14);
    CHECK(fz_st_meta(f, "none") == NULL);
    CHECK_EQ_INT(fz_st_meta_count(f), 4);
    CHECK_STR(fz_st_meta_key(f, 0), "arch");
    CHECK(fz_st_meta_key(f, 4) == NULL);
    fz_st_free(f);

    /* the data section starts at a multiple of 8 */
    size_t len;
    unsigned char *b = read_file(p, &len);
    CHECK(b && len > 8 && fz_le64(b) % 8 == 0);
    CHECK_EQ_INT(len, 8 + fz_le64(b) + 5 + 48 + 16 + 8 + 32 + 8);
    free(b);
    CHECK_MSG(fz_st_verify(p, &err) == 0, "%s", err.msg);
    fz_st_free(NULL);
}

/* Every proper prefix of a valid file is refused with a reason, never a crash. */
static void test_truncation(void)
{
    size_t len;
    unsigned char *b = read_file(tmp_path("m.st"), &len);
    if (!b) {
        CHECK(0);
        return;
    }
    int accepted = 0, unnamed = 0;
    for (size_t k = 0; k < len; k++) {
        unsigned char *c = malloc(k ? k : 1);
        memcpy(c, b, k);
        fz_err err = {0};
        fz_st_file *f = fz_st_load_mem(c, k, "cut.st", &err);
        if (f) accepted++;
        if (strncmp(err.msg, "cut.st: ", 8) != 0 || strchr(err.msg, '\n')) unnamed++;
        fz_st_free(f);
        free(c);
    }
    CHECK_EQ_INT(accepted, 0);
    CHECK_EQ_INT(unnamed, 0);
    /* the same through real files, at a few cut points */
    const char *p = tmp_path("cut.st");
    size_t cuts[] = {0, 7, 8, 9, 100, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(p, b, cuts[i]);
        fz_err err = {0};
        fz_st_file *f = fz_st_load(p, &err);
        CHECK(f == NULL);
        CHECK_CONTAINS(err.msg, p);
        fz_st_free(f);
    }
    fz_err err = {0};
    write_file(p, b, 3);
    CHECK(fz_st_load(p, &err) == NULL);
    CHECK_CONTAINS(err.msg, "truncated: 3 bytes, need at least the 8-byte header length");
    write_file(p, b, len - 1);
    CHECK(fz_st_load(p, &err) == NULL);
    CHECK_CONTAINS(err.msg, "exceed the data section");
    CHECK(fz_st_load(tmp_path("missing.st"), &err) == NULL);
    CHECK_CONTAINS(err.msg, "missing.st: No such file or directory");
    CHECK_EQ_INT(err.code, FZ_EIO);
    CHECK(fz_st_load(dir, &err) == NULL);
    CHECK_CONTAINS(err.msg, "not a regular file");
    free(b);
}

/* Header corruption is refused or harmless; any data corruption is caught by the checksum. */
static void test_corruption(void)
{
    size_t len;
    unsigned char *b = read_file(tmp_path("m.st"), &len);
    if (!b) {
        CHECK(0);
        return;
    }
    size_t hl = (size_t)fz_le64(b);
    unsigned char *c = malloc(len);
    const unsigned char vals[] = {0x00, 0x01, '"', '}', '9', 0xff};
    int refused = 0, loaded = 0;
    for (size_t k = 0; k < 8 + hl; k++)
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(c, b, len);
            if (c[k] == vals[v]) continue;
            c[k] = vals[v];
            fz_err err = {0};
            fz_st_file *f = fz_st_load_mem(c, len, "bad.st", &err);
            if (f) {
                loaded++;
            } else {
                refused++;
                CHECK(strncmp(err.msg, "bad.st: ", 8) == 0);
            }
            fz_st_free(f);
        }
    CHECK(refused > 0);
    /* Only edits inside metadata strings may survive (the checksum covers data only). */
    CHECK_MSG(loaded < refused / 4, "%d corrupted headers loaded, %d refused", loaded, refused);
    int missed = 0;
    for (size_t k = 8 + hl; k < len; k++) {
        memcpy(c, b, len);
        c[k] ^= 0x10;
        fz_err err = {0};
        fz_st_file *f = fz_st_load_mem(c, len, "bad.st", &err);
        if (f || !strstr(err.msg, "checksum mismatch")) missed++;
        fz_st_free(f);
    }
    CHECK_EQ_INT(missed, 0);
    memcpy(c, b, len);
    c[len - 1] ^= 1;
    fz_err err = {0};
    CHECK(fz_st_load_mem(c, len, "bad.st", &err) == NULL);
    CHECK_CONTAINS(err.msg, "bad.st: checksum mismatch (header crc32:");
    CHECK_CONTAINS(err.msg, "), file is corrupt");
    /* through a real file and fz_st_verify */
    write_file(tmp_path("bad.st"), c, len);
    CHECK(fz_st_verify(tmp_path("bad.st"), &err) < 0);
    CHECK_CONTAINS(err.msg, "file is corrupt");
    free(c);
    free(b);
}

static void test_crafted(void)
{
    unsigned char z[64] = {0};
    const float ones[4] = {1, 1, 1, 1};
    struct {
        const char *header;
        size_t dlen;
        const char *want; /* NULL: must load */
    } cases[] = {
        {"{\"enc.0.weight\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,12]}}", 12,
         "crafted.st: tensor 'enc.0.weight': data_offsets [0, 12] do not match shape (4, 4) "
         "of F32 (64 bytes)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24,
         "crafted.st: tensor 'b' (bytes [8, 24)) overlaps tensor 'a' (bytes [0, 16))"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, "overlaps"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 16,
         "tensor 'a': data_offsets [8, 24] exceed the data section (16 bytes)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16,
         "bytes [0, 8) of the data section belong to no tensor"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16,
         "8 trailing bytes after the last tensor"},
        {"{}", 4, "4 bytes of data but no tensors"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 16,
         "end before they begin"},
        {"{\"a\":{\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         "tensor 'a': unknown dtype 'F31'"},
        {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "missing string \"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "missing array \"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "\"data_offsets\" is not"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8,
         "\"data_offsets\" is not"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]}}", 8,
         "\"data_offsets\" is not"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
         "tensor 'a': shape[0] is not a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8,
         "shape[0] is not"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
         "shape[0] is not"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
         "tensor 'a': 9 dimensions, the limit is 8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
         "\"data_offsets\":[0,8]}}", 8,
         "tensor 'a': shape (4294967296, 4294967296, 4294967296) of F32 is too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e300]}}", 8,
         "\"data_offsets\" is not"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16,
         "tensor 'a' appears twice"},
        {"{\"a\":7}", 0, "tensor 'a': entry is not an object"},
        {"{\"\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, "empty tensor name"},
        {"{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":{\"dtype\":\"F32\",\"shape\":[0],"
         "\"data_offsets\":[0,0]}}", 0, "is 128 bytes, the limit is 127"},
        {"[]", 0, "crafted.st: header is not a JSON object"},
        {"{\"a\":1,}", 0, "crafted.st: header: JSON: offset 7: expected a string key"},
        {"", 0, "crafted.st: header: JSON: offset 0"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "metadata 'k' is not a string"},
        {"{\"__metadata__\":[]}", 0, "\"__metadata__\" is not an object"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "\"__metadata__\" appears twice"},
        {"{\"__metadata__\":{\"fz_checksum\":\"md5:00\"}}", 0,
         "metadata fz_checksum 'md5:00' is not crc32:XXXXXXXX"},
        {"{\"__metadata__\":{\"fz_checksum\":\"crc32:0000000g\"}}", 0, "is not crc32:"},
        /* valid: no metadata, padding, scalar, empty tensor, null metadata, extra keys */
        {"{}", 0, NULL},
        {"{\"__metadata__\":null}        ", 0, NULL},
        {"{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
         "\"e\":{\"dtype\":\"I8\",\"shape\":[3,0],\"data_offsets\":[8,8]},"
         "\"x\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[8,16],\"extra\":1}}  ", 16, NULL},
        {"{\"__metadata__\":{\"fz_checksum\":\"crc32:00000000\"}}", 0, NULL}, /* crc of nothing */
        {"{\"__metadata__\":{\"fz_checksum\":\"crc32:00000000\"},"
         "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         "crafted.st: checksum mismatch (header crc32:00000000, data crc32:d202ef8d)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fz_err err = {0};
        fz_st_file *f = load_crafted(cases[i].header, z, cases[i].dlen, &err);
        if (cases[i].want) {
            CHECK_MSG(f == NULL, "case %zu loaded", i);
            CHECK_CONTAINS(err.msg, cases[i].want);
            CHECK_EQ_INT(err.code, FZ_EDATA);
            CHECK(strchr(err.msg, '\n') == NULL);
        } else {
            CHECK_MSG(f != NULL, "case %zu: %s", i, err.msg);
        }
        fz_st_free(f);
    }

    /* A file whose writer did not align tensors: the data are copied to aligned places. */
    unsigned char data[3 + 16];
    memcpy(data, "\x01\x02\x03", 3);
    memcpy(data + 3, ones, 16);
    fz_err err = {0};
    fz_st_file *f = load_crafted("{\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                                 "\"f\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[3,19]}}",
                                 data, sizeof data, &err);
    CHECK_MSG(f != NULL, "%s", err.msg);
    if (f) {
        int64_t shape[] = {2, 2};
        const float *v = fz_st_f32(f, "f", 2, shape, &err);
        CHECK(v && (uintptr_t)v % 4 == 0 && v[0] == 1.0f && v[3] == 1.0f);
        CHECK_EQ_INT(fz_st_find(f, "f")->offset, 3); /* the file's offset is still reported */
        CHECK(memcmp(fz_st_data(f, fz_st_find(f, "u")), "\x01\x02\x03", 3) == 0);
        CHECK(fz_st_data(f, NULL) == NULL);
        fz_st_free(f);
    }

    /* header length field: beyond the file, beyond the limit */
    unsigned char hdr[16] = {0};
    fz_put_le64(hdr, 9);
    CHECK(fz_st_load_mem(hdr, 16, "h.st", &err) == NULL);
    CHECK_CONTAINS(err.msg, "h.st: header length 9 exceeds the rest of the file (8 bytes)");
    fz_put_le64(hdr, UINT64_MAX);
    CHECK(fz_st_load_mem(hdr, 16, "h.st", &err) == NULL);
    CHECK_CONTAINS(err.msg, "header length 18446744073709551615 exceeds the limit");

    /* fz_st_verify wants the checksum */
    const char *hp = tmp_path("nosum.st");
    const char *h = "{}      ";
    unsigned char fb[16];
    fz_put_le64(fb, 8);
    memcpy(fb + 8, h, 8);
    write_file(hp, fb, 16);
    f = fz_st_load(hp, &err);
    CHECK_MSG(f && fz_st_count(f) == 0, "%s", err.msg);
    fz_st_free(f);
    CHECK(fz_st_verify(hp, &err) < 0);
    CHECK_CONTAINS(err.msg, "nosum.st: no fz_checksum in the metadata, cannot verify");
}

static void test_writer_errors(void)
{
    fz_err err = {0};
    fz_st_writer *w = fz_st_writer_new(&err);
    float x[6] = {0};
    int64_t s23[] = {2, 3}, sneg[] = {-1}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK(fz_st_add(w, "x", "F32", x, 20, 2, s23, &err) < 0);
    CHECK_CONTAINS(err.msg, "tensor 'x': 20 bytes given, shape (2, 3) of F32 needs 24");
    CHECK_EQ_INT(err.code, FZ_EUSAGE);
    CHECK(fz_st_add(w, "x", "F17", x, 24, 2, s23, &err) < 0);
    CHECK_CONTAINS(err.msg, "unknown dtype 'F17'");
    CHECK(fz_st_add_f32(w, "x", x, 1, sneg, &err) < 0);
    CHECK(fz_st_add_f32(w, "x", x, 9, s9, &err) < 0);
    CHECK_CONTAINS(err.msg, "9 dimensions, the limit is 8");
    CHECK(fz_st_add_f32(w, "__metadata__", x, 2, s23, &err) < 0);
    CHECK(fz_st_add_f32(w, "", x, 2, s23, &err) < 0);
    char longname[200];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK(fz_st_add_f32(w, longname, x, 2, s23, &err) < 0);
    CHECK(fz_st_add_f32(w, "x", x, 2, s23, &err) == 0);
    CHECK(fz_st_add_f32(w, "x", x, 2, s23, &err) < 0);
    CHECK_CONTAINS(err.msg, "tensor 'x' added twice");
    CHECK(fz_st_set_meta(w, "fz_checksum", "crc32:00000000", &err) < 0);
    CHECK_CONTAINS(err.msg, "reserved");

    /* a file can be written twice, and replaces what was there */
    const char *p = tmp_path("twice.st");
    CHECK(fz_st_write(w, p, &err) == 0);
    x[0] = 5;
    CHECK(fz_st_set_meta(w, "k", "v", &err) == 0);
    CHECK(fz_st_write(w, p, &err) == 0);
    fz_st_file *f = fz_st_load(p, &err);
    CHECK(f && ((const float *)fz_st_data(f, fz_st_get(f, 0)))[0] == 5.0f);
    CHECK_STR(fz_st_meta(f, "k"), "v");
    fz_st_free(f);

    /* a directory that does not exist */
    CHECK(fz_st_write(w, tmp_path("no/such/dir.st"), &err) < 0);
    CHECK_CONTAINS(err.msg, "no/such/dir.st.tmp.");
    CHECK_CONTAINS(err.msg, "No such file or directory");
    CHECK_EQ_INT(err.code, FZ_EIO);
    fz_st_writer_free(w);
    fz_st_writer_free(NULL);
}

/* No "<name>.tmp.<pid>" files left in the scratch directory. */
static int leftover_tmp(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

/* A write that fails halfway (file size limit, as a full disk would) leaves the old file
 * in place and no temporary file behind. */
static void test_atomic(void)
{
    fz_err err = {0};
    const char *p = tmp_path("keep.st");
    CHECK(write_sample(p, &err) == 0);
    size_t len0;
    unsigned char *before = read_file(p, &len0);

    size_t n = 1 << 16;
    float *big = calloc(n, sizeof *big); /* (65536,) */
    int64_t shape[] = {(int64_t)n};
    fz_st_writer *w = fz_st_writer_new(&err);
    CHECK(fz_st_add_f32(w, "big", big, 1, shape, &err) == 0);

    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 4096;
    signal(SIGXFSZ, SIG_IGN); /* make the write fail with EFBIG instead of killing us */
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        int rc = fz_st_write(w, p, &err);
        setrlimit(RLIMIT_FSIZE, &old);
        CHECK(rc < 0);
        CHECK_CONTAINS(err.msg, "keep.st: write: File too large");
        CHECK_EQ_INT(err.code, FZ_EIO);
        size_t len1;
        unsigned char *after = read_file(p, &len1);
        CHECK(after && len1 == len0 && memcmp(before, after, len0) == 0);
        free(after);
        CHECK_EQ_INT(leftover_tmp(), 0);
    }
    signal(SIGXFSZ, SIG_DFL);
    /* and then a write that succeeds replaces it */
    CHECK(fz_st_write(w, p, &err) == 0);
    fz_st_file *f = fz_st_load(p, &err);
    CHECK(f && fz_st_count(f) == 1 && fz_st_find(f, "big")->nbytes == n * 4);
    fz_st_free(f);
    CHECK_EQ_INT(leftover_tmp(), 0);
    fz_st_writer_free(w);
    free(big);
    free(before);
}

static void print_tensor(const fz_st_file *f, const fz_st_tensor *t)
{
    printf("%s %s (", t->name, t->dtype);
    for (int i = 0; i < t->ndim; i++) printf("%s%" PRId64, i ? ", " : "", t->shape[i]);
    printf(")");
    const void *d = fz_st_data(f, t);
    size_t es = fz_st_dtype_size(t->dtype), n = t->nbytes / es;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(t->dtype, "F32")) printf(" %.9g", (double)((const float *)d)[i]);
        else if (!strcmp(t->dtype, "F64")) printf(" %.17g", ((const double *)d)[i]);
        else if (!strcmp(t->dtype, "I32")) printf(" %" PRId32, ((const int32_t *)d)[i]);
        else if (!strcmp(t->dtype, "I64")) printf(" %" PRId64, ((const int64_t *)d)[i]);
        else if (!strcmp(t->dtype, "U8")) printf(" %u", ((const unsigned char *)d)[i]);
        else printf(" ?");
    }
    printf("\n");
}

static int tool_mode(int argc, char **argv)
{
    fz_err err = {0};
    int rc = -1;
    if (argc == 3 && strcmp(argv[1], "write") == 0) {
        rc = write_sample(argv[2], &err);
    } else if (argc == 3 && strcmp(argv[1], "verify") == 0) {
        rc = fz_st_verify(argv[2], &err);
    } else if (argc == 3 && strcmp(argv[1], "dump") == 0) {
        fz_st_file *f = fz_st_load(argv[2], &err);
        if (f) {
            for (int i = 0; i < fz_st_count(f); i++) print_tensor(f, fz_st_get(f, i));
            for (int i = 0; i < fz_st_meta_count(f); i++)
                printf("meta %s=%s\n", fz_st_meta_key(f, i), fz_st_meta(f, fz_st_meta_key(f, i)));
            fz_st_free(f);
            rc = 0;
        }
    } else {
        fprintf(stderr, "usage: test_safetensors [write|dump|verify PATH]\n");
        return 2;
    }
    if (rc < 0) fprintf(stderr, "test_safetensors: %s\n", err.msg);
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) return tool_mode(argc, argv);
    snprintf(dir, sizeof dir, "/tmp/test_safetensors.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_truncation();
    test_corruption();
    test_crafted();
    test_writer_errors();
    test_atomic();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    return check_report("test_safetensors");
}
