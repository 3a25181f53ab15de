/* fuzz_stream.c - the row-stream reader (lib/stream.h) on arbitrary bytes: open, then read
 * every row until the end or an error. */
#include <stdlib.h>

#include "fuzz.h"
#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_tmpfile("stream", data, size);
    if (!path)
        return 0;
    fz_err err;
    fz_reader *r = fz_reader_open(path, &err);
    if (r) {
        const fz_schema *s = fz_reader_schema(r);
        /* A header may claim rows up to FZ_MAX_ROW_BYTES; reading such a row from a small
         * input only checks truncation, which smaller rows exercise too. */
        if (s->row_size > 0 && s->row_size <= ((size_t)1 << 20)) {
            size_t max_rows = ((size_t)1 << 16) / s->row_size;
            if (max_rows == 0)
                max_rows = 1;
            void *buf = malloc(max_rows * s->row_size);
            if (buf) {
                while (fz_reader_read(r, buf, max_rows, &err) > 0)
                    ;
                free(buf);
            }
        }
        (void)fz_reader_meta(r);
        fz_reader_close(r);
    }
    unlink(path);
    return 0;
}
