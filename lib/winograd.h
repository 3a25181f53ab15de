/* winograd.h - the tile transforms of Winograd's F(2x2, 5x5) for conv.c's stride-1,
 * 5x5 convolutions, and the switch that turns that path on or off.
 *
 * A 2x2 block of outputs of a 5x5 correlation needs a 6x6 patch of input. Winograd's
 * minimal filtering computes it with 36 products instead of 100:
 *
 *     y (2, 2) = A^T [ (Gk g Gk^T) .* (B^T d B) ] A      g (5, 5) weights, d (6, 6) patch
 *
 * and over channels the .* becomes 36 matrix products (one per patch position xi):
 * M[xi] (G, N) = U[xi] (G, C) * V[xi] (C, N), U = Gk g Gk^T per (grid channel, image
 * channel), V = B^T d B per (image channel, tile), N tiles. conv.c runs those products; this
 * file holds the transforms between tensors and tiles, each with its adjoint (the input
 * gradient of a Conv2d and the forward of a ConvTranspose2d run the map backwards, and the
 * weight gradient brings dU back to dW).
 *
 * Layout. An image (C, H, W) is seen at a grid of Ho x Wo = (H + 2p - 4) x (W + 2p - 4)
 * positions, cut into tH x tW = ceil(Ho/2) x ceil(Wo/2) tiles of 2x2, tile t = th*tW + tw
 * covering grid rows 2th, 2th+1 and image rows 2th - p .. 2th - p + 5 (zero off the image;
 * the outputs of a partial tile beyond Ho or Wo are dropped). Tile matrices are stored as
 * 36 blocks of rows, row (xi, ch) of `ld` floats holding the tiles of a chunk of samples
 * side by side: X[(xi * channels + ch) * ld + column]. Each call below handles the T =
 * tH*tW tiles of one sample, at columns [0, T) of the pointer it is given.
 *
 * Never prints, never exits, allocates nothing.
 */
#ifndef FZ_WINOGRAD_H
#define FZ_WINOGRAD_H

#include <stddef.h>

#define FZ_WINO_TILE 6 /* input patch side: 2 outputs + 5 - 1 */
#define FZ_WINO_XI 36  /* patch positions: products per tile and channel pair */

/* Turn the Winograd path of conv.c on (1, the default) or off (0: the folded path for all
 * layers); returns the previous setting. Not thread-safe against running convolutions:
 * set it between calls. The scratch sizes do not depend on it. */
int fz_conv_set_winograd(int on);
int fz_conv_winograd(void);

/* Floats of the one-channel scratch (`pad` below) the transforms use. */
size_t fz_wino_pad_floats(int tH, int tW);

/* U (36, G, C) = Gk w[o, c] Gk^T for the weight w (G, C, 5, 5). */
void fz_wino_weights(const float *w, int G, int C, float *U);

/* dw (G, C, 5, 5) += Gk^T dU[o, c] Gk for dU (36, G, C): the adjoint of fz_wino_weights. */
void fz_wino_weights_grad_add(const float *dU, int G, int C, float *dw);

/* V = B^T d B for every tile of img (C, H, W) with padding p: rows (xi, c) of V, ld
 * floats apart. pad: fz_wino_pad_floats floats of scratch. */
void fz_wino_image_tiles(const float *img, int C, int H, int W, int p, int tH, int tW,
                         float *pad, float *V, size_t ld);

/* img (C, H, W) = init (one value per channel, or NULL for zero) + the sum over tiles of
 * B Nt B^T, each 6x6 patch added onto its pixels (those off the image dropped): the adjoint
 * of fz_wino_image_tiles. Nt: rows (xi, c), ld floats apart. */
void fz_wino_image_untiles(const float *Nt, size_t ld, int C, int H, int W, int p, int tH,
                           int tW, float *pad, const float *init, float *img);

/* grid (G, Ho, Wo) = A^T M A for every tile (+ bias[o] when bias is not NULL), the
 * outputs beyond Ho, Wo dropped. M: rows (xi, o), ld floats apart. */
void fz_wino_grid_untiles(const float *M, size_t ld, int G, int Ho, int Wo, int tH, int tW,
                          float *pad, const float *bias, float *grid);

/* Wt = A g A^T for every 2x2 tile g of grid (G, Ho, Wo) (zero beyond Ho, Wo): the adjoint
 * of fz_wino_grid_untiles without bias. Wt: rows (xi, o), ld floats apart. */
void fz_wino_grid_tiles(const float *grid, int G, int Ho, int Wo, int tH, int tW, float *pad,
                        float *Wt, size_t ld);

#endif
