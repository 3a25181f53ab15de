/* fuzz_idx.c - the IDX parser (fz_idx_parse) with every accepted dimension count. */
#include "fuzz.h"
#include "input.h"

/* Written so the compiler keeps the loads that check the data range. */
static volatile unsigned sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int want[] = {0, 1, 3};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        fz_idx idx;
        fz_err err;
        if (fz_idx_parse(data, size, want[i], &idx, &err) == 0 && idx.count > 0) {
            /* The data pointer must cover count bytes inside the input. */
            sink = idx.data[0];
            sink = idx.data[idx.count - 1];
        }
    }
    return 0;
}
