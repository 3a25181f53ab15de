/* train.h - training an autoencoder or VAE on a data set held in memory.
 *
 * One epoch: the rows are shuffled by an rng seeded from (seed, epoch), cut into batches
 * (the last one may be smaller), and for each batch
 *     x_in = corrupt(x)                       (denoising; otherwise x_in = x)
 *     h    = encoder(x_in)                    (B, Z) for an ae, (B, 2Z) = [mu | s] for a vae
 *     z    = h (ae)  or  mu + sigma(s) * eps  (vae, eps ~ N(0, I))
 *     xhat = decoder(z)                       (B, in)
 *     m    = fuzzy(mu)                       (B, K) memberships, with a fuzzy layer (on z for
 *                                             an ae)
 *     loss = recon_weight * recon(xhat, x + recon_shift) + beta * KL(mu, s)
 *            + gamma * sum(mask * (target - m)^2) / (B or the number of labeled rows)
 * then one optimiser step after gradient-norm clipping. Every random draw of an epoch
 * (order, dropout masks, noise, corruption) comes from that epoch's rng, so a run resumed
 * from an end-of-epoch checkpoint ends bit-identical to an uninterrupted one
 * (with OPENBLAS_NUM_THREADS=1).
 */
#ifndef FZ_TRAIN_H
#define FZ_TRAIN_H

#include <stdint.h>

#include "loss.h"
#include "model.h"
#include "optim.h"
#include "stream.h"

typedef enum fz_recon { FZ_RECON_BCE = 0, FZ_RECON_SQERR } fz_recon;
typedef enum fz_kl_form {
    FZ_KL_LOGVAR = 0, /* KL(mu, s) with s read as the log-variance (for sigma = softplus this
                         reproduces the published fuzzy-CVAE code) */
    FZ_KL_SOFTPLUS    /* the KL of the softplus parameterisation itself (consistent) */
} fz_kl_form;
/* What one training run trains (the strategies of the VAE-plus-classifier study; they apply
 * to a fuzzy layer as to a dense head):
 *   ALL          reconstruction + KL + the head's (fuzzy) loss, everything trained
 *   AE           reconstruction + KL only; the head is frozen
 *   HEAD         the head's loss only, on mu of a frozen encoder (run in evaluation mode)
 *   CLASSIFIER   encoder + head as a plain classifier: the head's loss on mu, no decoder,
 *                no KL
 *   VCLASSIFIER  a variational classifier: the head sees the sampled z in training (mu at
 *                inference), loss = head's loss + beta * KL, no decoder */
typedef enum fz_strategy {
    FZ_STRAT_ALL = 0, FZ_STRAT_AE, FZ_STRAT_HEAD, FZ_STRAT_CLASSIFIER, FZ_STRAT_VCLASSIFIER
} fz_strategy;
int fz_strategy_parse(const char *s, fz_strategy *out, fz_err *err);
const char *fz_strategy_name(fz_strategy s);

typedef enum fz_corrupt { FZ_CORRUPT_NONE = 0, FZ_CORRUPT_GAUSS, FZ_CORRUPT_FLIP } fz_corrupt;

typedef struct fz_train_conf {
    int epochs;            /* train until this many epochs in total */
    int batch;
    uint64_t seed;
    fz_opt_conf opt;
    fz_sched sched;        /* by epoch */
    double clip;           /* max gradient norm; <= 0: no clipping */
    fz_recon recon;
    fz_reduction recon_red;
    double recon_weight;
    double beta;           /* KL weight (vae) */
    fz_kl_form kl_form;
    fz_reduction kl_red;
    fz_corrupt corrupt;    /* denoising: corrupt the input, compare with the clean one */
    double corrupt_level;  /* Gaussian sigma, or flip probability */
    double recon_shift;    /* added to x to make the reconstruction target: 0.5 for inputs
                              shifted to [-0.5, 0.5] whose decoder outputs [0, 1] */
    double gamma;          /* weight of the fuzzy loss */
    fz_mask_norm fuzzy_norm; /* average over the batch or over its labeled rows */
    double redraw;         /* > 0: each row's labels are used in an epoch with this
                              probability, drawn anew every epoch; 0: masks as given */
    int nclasses;          /* the first nclasses fuzzy outputs are classes (for accuracy) */
    fz_strategy strategy;
    int two_step;          /* with strategy ALL: two optimiser steps per batch, the VAE loss
                              (head frozen) then the head's loss (decoder frozen) */
    unsigned freeze;       /* FZ_FREEZE_* groups of the fuzzy layer (fuzzy.h) and the bits
                              below, left alone by the optimiser */
} fz_train_conf;

#define FZ_FREEZE_ENCODER 0x100
#define FZ_FREEZE_DECODER 0x200
/* "encoder,decoder,centers,scales,lower,bell,conseq" -> bits; 0 or -1 with a reason. */
int fz_freeze_parse(const char *s, unsigned *out, fz_err *err);

/* Defaults for a preset name ("ae-mlp", "vae-mlp", "vae-conv"; anything else gets the
 * vae-mlp settings for a vae and the ae-mlp ones for an ae). */
void fz_train_defaults(fz_train_conf *c, const char *preset, fz_model_kind kind);
int fz_train_conf_check(const fz_train_conf *c, fz_err *err);
/* The configuration as a JSON object (stored in the model's "train" metadata). */
char *fz_train_conf_json(const fz_train_conf *c);

/* A data set in memory: x (n, d). */
typedef struct fz_trainset {
    size_t n, d;
    float *x;       /* (n, d) */
    size_t k;       /* fuzzy outputs: 0 when the stream has no target and mask */
    float *target;  /* (n, k) */
    float *mask;    /* (n, k) */
    int32_t *label; /* (n) class, -1 unknown (all -1 without a label field) */
} fz_trainset;

/* The (C, H, W) shape of a stream field: (D) is (D, 1, 1), (H, W) is (1, H, W), a scalar
 * is (1, 1, 1); more than 3 dimensions is an error. */
int fz_field_shape3(const fz_field *f, fz_shape *s, fz_err *err);

/* Load field `field` of every row of a stream ("-" = stdin) into memory as float32 (n, d).
 * A row holding NaN or infinity is an error naming its id (the "id" field, else the row
 * number), or is dropped when drop_nonfinite (counted in *dropped). shape receives the
 * field's shape; meta (may be NULL) the stream's metadata JSON, which the caller frees. */
int fz_trainset_load(const char *path, const char *field, int drop_nonfinite, fz_trainset *ds,
                    fz_shape *shape, char **meta, size_t *dropped, fz_err *err);
void fz_trainset_free(fz_trainset *ds);

/* Loss parts summed over an epoch, per sample. */
typedef struct fz_epoch_stats {
    double loss, recon, kl; /* means over batches, as the optimiser saw them (unweighted parts) */
    double fuzzy;           /* the fuzzy loss part (unweighted) */
    size_t labeled, correct; /* rows with a label in [0, nclasses), and those classified right */
    size_t samples;
    double seconds;
    double lr;
    double grad_norm;       /* mean before clipping */
} fz_epoch_stats;

typedef struct fz_trainer fz_trainer;

/* Progress callback after each batch: return non-zero to stop after this batch. */
typedef int (*fz_progress_fn)(void *ctx, long epoch, long batch, long nbatches,
                              const fz_epoch_stats *so_far);

/* A trainer for model m (which it modifies). If m carries optimiser state of the same kind
 * (a checkpoint), it is restored so that training continues where it stopped. */
fz_trainer *fz_trainer_new(fz_model *m, const fz_train_conf *c, fz_err *err);
void fz_trainer_free(fz_trainer *t);
const fz_optim *fz_trainer_optim(const fz_trainer *t);
/* Train one epoch (number m->epoch + 1) on ds; on success m->epoch is incremented. Returns
 * 0, 1 when progress asked to stop (the epoch is incomplete), or -1 with a reason (a NaN or
 * infinite loss or gradient, naming the epoch and batch). After -1 the model's parameters
 * may hold the failed step: without clipping, a non-finite gradient is found in the update
 * itself; the caller drops the epoch. */
int fz_trainer_epoch(fz_trainer *t, const fz_trainset *ds, fz_progress_fn progress, void *ctx,
                     fz_epoch_stats *st, fz_err *err);
/* At the end of training: store in the model the Gaussian fitted to the mu of ds (mean and
 * standard deviation per dimension, and one for all dimensions), and, with a fuzzy layer or
 * head, the quantiles of the anomaly scores of ds (see fz_anomaly_score) for thresholds from
 * a contamination rate. Evaluation mode. */
int fz_trainer_reference_scores(fz_trainer *t, const fz_trainset *ds, fz_err *err);
/* Losses on ds in evaluation mode with z = mu (no optimiser step). */
int fz_trainer_evaluate(fz_trainer *t, const fz_trainset *ds, fz_epoch_stats *st, fz_err *err);

/* Each class's mean code before training, for fz_circle_order_by_angle: the model m, as
 * created, encodes the rows of ds labeled with one of the first nclass outputs (target 1
 * and mask 1 there, on exactly one class; ds->k >= nclass) in batches of 256 in training
 * mode, as the first epoch will see them: BatchNorm normalises with each batch's statistics
 * (its running statistics are put back afterwards). In evaluation mode an untrained
 * network's BatchNorm layers hold their initial statistics and normalise nothing, and the
 * class means found so came out in another order, one that on MNIST stalled a seed the
 * training-mode order did not (fz-train(1), --circle-order). means (nclass, 2) receives the
 * mean of mu in latent dims 0 and 1 per class, count (nclass) the rows of each (0: means 0).
 * Reserves m's buffers for batches of up to 256 rows. 0, or -1 with a reason (no target and
 * mask, latent < 2, allocation). */
int fz_class_mean_codes(fz_model *m, const fz_trainset *ds, int nclass, double *means,
                        size_t *count, fz_err *err);

/* dst (n, D) = the rows idx[0..n) of src (rows of D floats), as an epoch gathers a batch;
 * over the threads (fz_blas_threads()) from 2^17 floats. */
void fz_gather_rows(float *dst, const float *src, const size_t *idx, int n, size_t D);

/* ---- Single steps, to reproduce a reference implementation exactly ---- */

/* Use eps (batch, Z) as the sampling noise of the following training steps instead of
 * drawing it: a step on B rows reads the first B*Z values. The caller keeps it alive;
 * NULL returns to drawing. (Dropout masks are given per layer with fz_dropout_use_mask.) */
void fz_trainer_set_noise(fz_trainer *t, const float *eps);
/* One training step on the batch x (B, in), 1 <= B <= the configured batch, exactly as an
 * epoch does it for each batch but without shuffling: forward, loss, backward, gradient
 * clipping, one optimiser step at the learning rate of epoch m->epoch + 1; m->step
 * advances, m->epoch does not. Afterwards m->grads holds the gradients the optimiser used
 * (after clipping). Random draws come from an rng seeded from the seed and the step. st
 * receives loss, recon, kl, grad_norm (before clipping), lr and samples. 0, or -1 with a
 * reason (B out of range, a non-finite loss or gradient). */
int fz_trainer_step(fz_trainer *t, const float *x, int B, fz_epoch_stats *st, fz_err *err);
/* z (B, Z) of the latest forward: mu + sigma * eps for a vae, the encoder output for an ae.
 * Valid until the next step. */
const float *fz_trainer_latent(const fz_trainer *t);

#endif
