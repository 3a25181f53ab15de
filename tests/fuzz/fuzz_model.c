/* fuzz_model.c - the safetensors reader (fz_st_load_mem, walking every tensor and metadata
 * key) and the model loader (fz_model_load through a file) on the same bytes. */
#include <string.h>

#include "fuzz.h"
#include "model.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_err err;
    fz_st_file *f = fz_st_load_mem(data, size, "fuzz.st", &err);
    if (f) {
        for (int i = 0; i < fz_st_count(f); i++) {
            const fz_st_tensor *t = fz_st_get(f, i);
            if (t)
                (void)fz_st_data(f, t);
        }
        for (int i = 0; i < fz_st_meta_count(f); i++) {
            const char *k = fz_st_meta_key(f, i);
            if (k)
                (void)fz_st_meta(f, k);
        }
        fz_st_free(f);
    }
    const char *path = fuzz_tmpfile("model.st", data, size);
    if (!path)
        return 0;
    fz_model m;
    memset(&m, 0, sizeof m);
    if (fz_model_load(&m, path, &err) == 0)
        fz_model_free(&m);
    unlink(path);
    return 0;
}
