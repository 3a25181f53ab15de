/* fuzz_image.c - the PNG and PNM decoders (fz_png_decode, fz_pnm_decode) and the dispatch
 * by signature, each in gray and colour mode. */
#include "fuzz.h"
#include "input.h"

typedef int (*decode_fn)(const unsigned char *, size_t, int, fz_image *, fz_err *);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const decode_fn fn[] = {fz_png_decode, fz_pnm_decode, fz_image_decode};
    for (size_t i = 0; i < sizeof fn / sizeof fn[0]; i++)
        for (int gray = 0; gray <= 1; gray++) {
            fz_image im;
            fz_err err;
            if (fn[i](data, size, gray, &im, &err) == 0) {
                /* Touch the last sample: (c, h, w) must all be allocated. */
                volatile float last = im.px[(size_t)im.c * im.h * im.w - 1];
                (void)last;
                fz_image_free(&im);
            }
        }
    return 0;
}
