/* net.h - a sequential stack of layers (an nn.Sequential): shapes, parameter views,
 * activations kept for backward, forward and backward over a batch.
 *
 * The stack does not own its parameters: fz_net_bind points every layer into caller blocks
 * (a model binds its encoder and decoder into one parameter block). It owns the activation
 * memory: one (max_batch, out) buffer per layer (views share their input's), and two
 * ping-pong gradient buffers for backward.
 */
#ifndef FZ_NET_H
#define FZ_NET_H

#include "arch.h"
#include "nn.h"

typedef struct fz_net {
    int n;
    fz_layer *layers;        /* (n) */
    size_t *param_off;       /* (n) offset of layer i's parameters in the bound block */
    size_t *buf_off;         /* (n) offset of layer i's buffers */
    size_t nparams, nbuffers;
    fz_shape in, out;
    int max_batch;
    float **act;             /* (n) act[i] = output of layer i, (max_batch, out_i) */
    float *act_block;        /* storage behind act */
    float *dbuf[2];          /* (max_batch, widest) ping-pong gradients */
    float *scratch;          /* shared im2col scratch */
} fz_net;

/* Build the layers of specs (n of them) for inputs of shape in; latent and in_count resolve
 * "z", "2z" and "in" sizes. Errors name the layer index and kind. */
int fz_net_build(fz_net *net, const fz_layer_spec *specs, int n, fz_shape in, int latent,
                 int in_count, const char *what, fz_err *err);
/* Point layers at params/grads (net->nparams floats from the given pointers) and buffers. */
void fz_net_bind(fz_net *net, float *params, float *grads, float *buffers);
/* Allocate activations and scratch for batches of up to max_batch (again to resize). */
int fz_net_reserve(fz_net *net, int max_batch, fz_err *err);
/* What fz_net_reserve allocates for batches of up to max_batch, in floats: every layer's
 * output (views excluded), two gradient buffers of the widest layer, and the shared scratch
 * of the layer that needs the most (its index in *scratch_layer, -1 when none needs any).
 * Fails only when a size overflows. */
typedef struct fz_net_sizes {
    size_t outputs, grads, scratch;
    int scratch_layer;
} fz_net_sizes;
int fz_net_sizes_for(const fz_net *net, int max_batch, fz_net_sizes *sz, fz_err *err);
/* Write zeros over what fz_net_reserve allocated, so that its pages are mapped now and not
 * by the first batch (a trainer's first step would otherwise take every page fault of the
 * activations; see fz_touch_zero). */
void fz_net_touch(fz_net *net);
void fz_net_free(fz_net *net);
/* PyTorch default initialisation of every layer, in layer order. */
void fz_net_init_params(fz_net *net, fz_rng *rng);
size_t fz_net_in_size(const fz_net *net);
size_t fz_net_out_size(const fz_net *net);
/* Forward x (B, in) -> returns the output (B, out), owned by the net and valid until the
 * next forward. */
const float *fz_net_forward(fz_net *net, const float *x, int B, int train, fz_rng *rng);
/* Evaluation forward of x (B, in) whose rows are ldx >= in floats apart (e.g. a field
 * inside the rows of a stream, read in place); only when fz_net_takes_ld(net), i.e. the
 * first layer that computes is a Linear (views before it see the rows as they are).
 * Same result as fz_net_forward(net, x, B, 0, NULL) on the rows copied together; no
 * backward may follow it. */
int fz_net_takes_ld(const fz_net *net);
const float *fz_net_forward_ld(fz_net *net, const float *x, size_t ldx, int B);
/* Backward after the forward on the same x: dy (B, out) -> parameter gradients added,
 * dx (B, in) written unless NULL. */
void fz_net_backward(fz_net *net, const float *x, const float *dy, float *dx, int B);

#endif
