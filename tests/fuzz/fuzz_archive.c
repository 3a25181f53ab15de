/* fuzz_archive.c - members read through libarchive (fz_input_each over every member, then
 * fz_input_find), from a file holding the input. */
#include "fuzz.h"
#include "input.h"

static int count_member(void *ctx, fz_blob *b, fz_err *err)
{
    (void)err;
    size_t *n = ctx;
    if (b->len > 0)
        *n += b->data[b->len - 1]; /* the member's bytes must all be readable */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_tmpfile("archive", data, size);
    if (!path)
        return 0;
    fz_err err;
    static const char *const all[] = {"*", NULL};
    size_t n = 0;
    (void)fz_input_each(path, all, count_member, &n, &err);
    const char *pat[] = {"*images*", "*labels*"};
    fz_blob out[2];
    if (fz_input_find(path, pat, 2, out, &err) == 0) {
        fz_blob_free(&out[0]);
        fz_blob_free(&out[1]);
    }
    unlink(path);
    return 0;
}
