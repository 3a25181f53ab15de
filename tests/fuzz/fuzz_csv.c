/* fuzz_csv.c - the CSV parser (fz_csv_parse), without a label column and with the label
 * column named by the first byte's choice of a common name. */
#include "fuzz.h"
#include "input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const labels[] = {NULL, "label", "diagnosis", "y"};
    const char *label = size > 0 ? labels[data[0] & 3] : NULL;
    fz_dataset ds;
    fz_err err;
    if (fz_csv_parse((const char *)data, size, "fuzz.csv", label, &ds, &err) == 0)
        fz_dataset_free(&ds);
    return 0;
}
