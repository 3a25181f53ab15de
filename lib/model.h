/* model.h - a model: architecture + one parameter block + metadata, and its file.
 *
 * A model file is safetensors (see safetensors.h) holding
 *   - every parameter in PyTorch's layout and naming ("encoder.3.weight" (out, in), ...),
 *     BatchNorm running statistics as "running_mean"/"running_var" and
 *     "num_batches_tracked" (I64), so torch's load_state_dict accepts them (strictly once
 *     "optim.state" is left out);
 *   - with a fuzzy layer, its tensors ("fuzzy.centers", ... see fuzzy.h) and its masks
 *     "fuzzy.input_mask" (K, Z) and "fuzzy.active" (K) as U8;
 *   - after training, "latent.mean" and "latent.std" (Z) and "latent.rms" (1): a Gaussian
 *     fitted to the training data's mu, for the confidence of new inputs;
 *   - when saved as a checkpoint, the optimiser state "optim.state" (F32);
 *   - __metadata__: "fz_format" ("fz-model 1"), "arch" (the canonical description, see
 *     arch.h), "input_shape" (JSON array), "epoch", "step", any key set with
 *     fz_model_set_meta ("classes", "norm", "train", ...), and "fz_checksum".
 */
#ifndef FZ_MODEL_H
#define FZ_MODEL_H

#include <stdint.h>

#include "arch.h"
#include "net.h"
#include "optim.h"

#define FZ_MODEL_MAX_META 32

typedef struct fz_model {
    fz_arch arch;
    char *arch_text;      /* canonical description */
    fz_shape in;          /* one input sample (C, H, W); a table row is (D, 1, 1) */
    size_t in_count;      /* C * H * W */
    fz_net enc, dec;
    int has_fuzzy;        /* arch.fuzzy_terms > 0 */
    fz_fuzzy fuzzy;       /* on mu: (B, Z) -> memberships (B, K) */
    size_t fuzzy_off;     /* offset of the fuzzy layer's (or head's) slice in params and grads */
    int has_head;         /* arch.nhead > 0: a dense head on mu instead of a fuzzy layer */
    fz_net head;          /* (B, Z) -> (B, outputs) */
    size_t nparams, nbuffers;
    float *params;        /* (nparams): encoder's, decoder's, then the fuzzy layer's */
    float *grads;         /* (nparams) */
    float *buffers;       /* (nbuffers) BatchNorm running statistics */
    long epoch;           /* epochs trained */
    long step;            /* optimiser steps taken */
    int nmeta;
    char *meta_key[FZ_MODEL_MAX_META], *meta_val[FZ_MODEL_MAX_META];
    float *latent_mean;   /* (Z) mean of the training data's mu, or NULL */
    float *latent_std;    /* (Z) its standard deviation per dimension */
    float latent_rms;     /* one standard deviation for all dimensions: sqrt(mean of var) */
    float *ref_scores;    /* (nref) sorted, or NULL */
    int nref;
    /* optimiser checkpoint found in a loaded file (NULL if none) */
    float *opt_state;
    size_t opt_len;
    char opt_kind[16];
} fz_model;

/* A new model from a description for inputs of shape in, parameters initialised as PyTorch
 * does from the seed. */
int fz_model_create(fz_model *m, const char *arch_text, fz_shape in, uint64_t seed, fz_err *err);
/* Load a model file: checks the checksum, every tensor's shape, and finiteness. */
int fz_model_load(fz_model *m, const char *path, fz_err *err);
/* Save atomically (temporary file, fsync, rename). opt may be NULL (no optimiser state). */
int fz_model_save(const fz_model *m, const char *path, const fz_optim *opt, fz_err *err);
void fz_model_free(fz_model *m);

/* Metadata strings carried in the file (copied). */
int fz_model_set_meta(fz_model *m, const char *key, const char *value, fz_err *err);
const char *fz_model_meta(const fz_model *m, const char *key);

/* Activations for batches up to max_batch. */
int fz_model_reserve(fz_model *m, int max_batch, fz_err *err);
/* What training on batches of B samples holds besides its data, without allocating it
 * (fz_model_reserve allocates the workspace and activations for that B). Bytes. */
typedef struct fz_model_mem {
    size_t params;      /* the parameter block, nparams floats; the gradients and Adam's two
                           moments are as large again each: 4 * params in all */
    size_t workspace;   /* the largest per-layer workspace: the scratch one layer uses
                           during a forward or backward call of B samples (a convolution's
                           im2col columns, sized for the current thread count); 0 when no
                           layer needs any */
    const char *ws_net; /* the net of that layer: "encoder", "decoder", "head", or NULL */
    int ws_layer;       /* its index in the net */
    size_t activations; /* what the nets keep for backward at batch B: every layer's output
                           (views excluded) and two gradient buffers of the widest layer per
                           net, plus the fuzzy layer's saved state */
} fz_model_mem;
int fz_model_memory(const fz_model *m, int B, fz_model_mem *mem, fz_err *err);
/* Latent width: Z. The encoder's raw output is Z (ae) or 2Z (vae: mu then s). */
int fz_model_latent(const fz_model *m);
/* Encode in evaluation mode: x (B, in) -> mu (B, Z) and, for a vae, s (B, Z) (the log-variance
 * or the softplus argument, see arch sigma); s may be NULL. For an ae mu is z. */
void fz_model_encode(fz_model *m, const float *x, int B, float *mu, float *s);
/* The same for rows of x that are ldx >= in floats apart (a field read in place inside the
 * rows of a stream): the first layer reads them where they lie when the encoder allows it
 * (fz_net_takes_ld), else they are gathered into scratch, scratch (B, in), which may then
 * not be NULL. Same results as fz_model_encode on the rows copied together. */
void fz_model_encode_ld(fz_model *m, const float *x, size_t ldx, int B, float *scratch,
                        float *mu, float *s);
/* Decode in evaluation mode: z (B, Z) -> returns the reconstruction (B, in), owned by the
 * model until the next decode. */
const float *fz_model_decode(fz_model *m, const float *z, int B);
/* Memberships of latent means: mu (B, Z) -> m (B, K): the fuzzy layer's, or a head's
 * outputs (evaluation mode). Needs one of them. */
void fz_model_memberships(fz_model *m, const float *mu, int B, float *memb);
/* The anomaly score of one row's memberships m (K): 1 - the largest membership among the
 * first nclasses outputs (all when nclasses <= 0): 0 deep inside a class's domain, 1 far
 * from every term. Higher = more anomalous. */
double fz_anomaly_score(const float *m, int K, int nclasses);
/* Reference scores: sorted quantiles of the training data's anomaly scores, stored in the
 * model ("fuzzy.ref_scores", F32) so a threshold can be derived from a contamination rate. */
#define FZ_REF_SCORES 1001
/* Number of outputs of the fuzzy layer or head (0 without either). */
int fz_model_terms(const fz_model *m);

/* "(1, 28, 28)" */
const char *fz_model_shape_str(fz_shape s, char *buf, size_t cap);

#endif
