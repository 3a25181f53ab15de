/* fuzz.h - shared by the fuzzing harnesses: the libFuzzer entry point and a scratch file
 * for readers that take a path. */
#ifndef FZ_FUZZ_H
#define FZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write the input to a file named after the process and the harness (one per process, so
 * parallel runs do not collide), overwritten on every input. Returns the path or NULL. */
static inline const char *fuzz_tmpfile(const char *tag, const uint8_t *data, size_t size)
{
    static char path[128];
    snprintf(path, sizeof path, "/tmp/fz-fuzz-%ld-%s", (long)getpid(), tag);
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    int ok = fwrite(data, 1, size, f) == size;
    if (fclose(f) != 0 || !ok) {
        unlink(path);
        return NULL;
    }
    return path;
}

#endif
