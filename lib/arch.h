/* arch.h - the text description of a network, and the named presets.
 *
 * A description is a few "key = value" lines (or ';'-separated on one line; '#' starts a
 * comment). It is stored verbatim-canonical in every model file, so a model says what it is:
 *
 *     kind    = vae              # ae: z is the encoder's output; vae: the encoder gives
 *                                # 2*latent values, mu then s, and z = mu + sigma(s) * eps
 *     latent  = 2
 *     sigma   = logvar           # vae only: logvar (sigma = exp(s/2)) or softplus
 *                                # (sigma = softplus(s) + 1e-8)
 *     encoder = flatten linear(256) relu bn dropout(0.3) linear(128) relu bn dropout(0.3) linear(2z)
 *     decoder = linear(128) leakyrelu bn dropout(0.3) linear(256) leakyrelu bn linear(in) sigmoid
 *     fuzzy   = gauss(12)        # optional: a fuzzy layer of 12 terms on mu (see fuzzy.h);
 *                                # forms gauss, cauchy, bell, article
 *     fuzzy_init = circle(2)     # or random (centres N(0, 1)); circle(R): centres evenly
 *                                # on a circle of radius R in the first two latent dims
 *     head    = linear(16) relu linear(out) sigmoid   # or, instead of a fuzzy layer, a
 *     outputs = 10               # dense classifier head on mu with this many outputs
 *
 * Layers, in PyTorch's terms (sizes: a number, "z" = latent, "2z", or "in" = the number of
 * input features, so one description serves 28x28 images and 30-column tables):
 *     linear(N)                      Linear with bias; a (C, H, W) input must be flattened first
 *     conv2d(C, K[, STRIDE[, PAD]])  Conv2d with bias
 *     convt2d(C, K[, STRIDE[, PAD[, OUTPAD]]])  ConvTranspose2d with bias
 *     bn                             BatchNorm1d on vectors, BatchNorm2d on (C, H, W)
 *     dropout(P)                     Dropout
 *     relu leakyrelu[(SLOPE)] silu sigmoid tanh softplus
 *     flatten                        (C, H, W) -> (C*H*W)
 *     unflatten(C, H, W)
 * The decoder's output must have as many values as the input; its shape is the input's.
 * Parameter tensors are named as a PyTorch module with two nn.Sequential members would name
 * them: "encoder.<index>.weight", "decoder.<index>.running_mean", ...
 */
#ifndef FZ_ARCH_H
#define FZ_ARCH_H

#include "fuzzy.h"
#include "loss.h"
#include "nn.h"
#include "util.h"

#define FZ_ARCH_MAX_LAYERS 64

typedef enum fz_model_kind { FZ_KIND_AE = 0, FZ_KIND_VAE } fz_model_kind;

/* Size expressions of linear/conv layers. */
typedef enum fz_size_ref { FZ_SIZE_NUM = 0, FZ_SIZE_Z, FZ_SIZE_2Z, FZ_SIZE_IN, FZ_SIZE_OUT } fz_size_ref;

typedef struct fz_layer_spec {
    fz_layer_kind kind; /* for bn: FZ_BATCHNORM1D; resolved to 2d on (C, H, W) shapes */
    fz_size_ref ref;    /* linear and conv sizes */
    int n;              /* linear out features or conv out channels when ref == NUM */
    int k, stride, pad, out_pad;
    float p;            /* dropout */
    float slope;        /* leakyrelu */
    int uc, uh, uw;     /* unflatten */
} fz_layer_spec;

typedef struct fz_arch {
    fz_model_kind kind;
    int latent;
    fz_sigma_kind sigma;
    int nenc, ndec;
    fz_layer_spec enc[FZ_ARCH_MAX_LAYERS], dec[FZ_ARCH_MAX_LAYERS];
    int fuzzy_terms;        /* 0: no fuzzy layer */
    fz_mf_kind fuzzy_kind;
    double fuzzy_circle;    /* > 0: circle initialisation of that radius; 0: random */
    int nhead;              /* layers of a dense head on mu (0: none) */
    fz_layer_spec head[FZ_ARCH_MAX_LAYERS];
    int outputs;            /* the head's outputs ("out" in its sizes) */
} fz_arch;

/* Parse a description. Errors name the key or the layer token. */
int fz_arch_parse(const char *text, fz_arch *a, fz_err *err);
/* Canonical text of a description (parses back to the same fz_arch). Caller frees. */
char *fz_arch_format(const fz_arch *a, fz_err *err);
/* The description of a named preset (FZ_ARCH_PRESET_LIST; fcvae-conv is the fuzzy-CVAE
 * article's network) with the given
 * latent size (0 = the preset's default). Returns a static-lifetime-free string the caller
 * frees, or NULL with a reason listing the presets. */
char *fz_arch_preset(const char *name, int latent, fz_err *err);
/* Names of the presets, NULL-terminated, and the same as one string for messages (keep the
 * two in step; a unit test compares them). */
extern const char *const fz_arch_preset_names[];
#define FZ_ARCH_PRESET_LIST                                                                  \
    "ae-mlp, vae-mlp, vae-conv, fcvae-mlp, fcvae-wide, fcvae-cnn, fcvae-conv, vaec-mlp"
/* Resolve a size expression. "in" and "out" both resolve to in_count: a network's own
 * input count for "in", and the caller passes the head's output count for the head. */
int fz_arch_size(const fz_layer_spec *s, int latent, int in_count);

#endif
