/* fuzz_json.c - the JSON parser (fz_json_parse). */
#include "fuzz.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_err err;
    fz_json *j = fz_json_parse((const char *)data, size, &err);
    if (j)
        fz_json_free(j);
    return 0;
}
