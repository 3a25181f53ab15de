/* nn.h - neural-network layers: forward and backward over a batch.
 *
 * Everything is float32, row-major, batch first. A sample is a (C, H, W) tensor; vectors
 * are (D, 1, 1). A batch of B samples is B consecutive samples: x (B, C, H, W).
 *
 * Life of a layer
 *
 *     fz_layer L;
 *     fz_conv2d_init(&L, 1, 28, 28, 16, 3, 2, 1, 1, &err);   // shapes and hyper-parameters
 *     size_t np = fz_layer_nparams(&L), nb = fz_layer_nbuffers(&L);
 *     fz_layer_bind(&L, params + off, grads + off, buffers + boff);   // views, not copies
 *     fz_layer_init_params(&L, &rng);          // PyTorch's default initialisation
 *     fz_layer_reserve(&L, max_batch, NULL, &err);   // the only allocation
 *     fz_layer_forward(&L, x, y, B, 1, &rng);
 *     fz_layer_backward(&L, x, y, dy, dx, B);  // after a forward on the same x, y
 *     fz_layer_free(&L);
 *
 * Parameters. A network keeps all its parameters in ONE contiguous float block (so an
 * optimiser is a loop over one vector and saving is one write), the gradients in a second
 * block of the same size and layout, and the non-trained buffers (BatchNorm running
 * statistics) in a third. A layer only says how many floats it needs and is bound to
 * pointers into those blocks. Inside a layer's slice the order is PyTorch's state_dict
 * order, each tensor in PyTorch's layout:
 *
 *     Linear            weight (out, in), then bias (out)
 *     Conv2d            weight (out_c, in_c, k, k), then bias (out_c)
 *     ConvTranspose2d   weight (in_c, out_c, k, k), then bias (out_c)
 *     BatchNorm1d/2d    weight (C), then bias (C);  buffers: running_mean (C), running_var (C)
 *
 * Other layers have no parameters. The caller owns the three blocks.
 *
 * Activations. The caller owns all activation memory: x, y, dy and dx are caller buffers of
 * (B, in) and (B, out) floats (a network runner keeps every layer's output for backward).
 * y must not overlap x, except for Flatten/Unflatten, which are views: for them y may be
 * the same pointer as x (then forward and backward do nothing; fz_layer_is_view() says so)
 * and otherwise they copy. dx may be the same pointer as dy only for the element-wise
 * layers (activations and Dropout) and the views.
 *
 * Gradients. fz_layer_backward ADDS the parameter gradients into the bound gradient block
 * (zero it once per step) and OVERWRITES dx; dx may be NULL (first layer: the input
 * gradient is then not computed). backward needs the x and y of the latest forward of this
 * layer, and uses state that forward saved (Dropout mask, BatchNorm batch statistics, and
 * whether forward ran in training mode).
 *
 * Memory. fz_layer_reserve allocates what the layer keeps between forward and backward
 * (Dropout's mask for max_batch samples, BatchNorm's batch statistics) and its scratch
 * memory (the im2col columns of the convolutions, used only during one call). Layers run
 * one at a time may share one scratch buffer: pass a buffer of at least
 * fz_layer_scratch_floats() floats, or fz_layer_scratch_floats_for(L, max_batch) (the
 * maximum over the layers), to each reserve, or NULL to let the layer allocate its own.
 * forward/backward never allocate.
 */
#ifndef FZ_NN_H
#define FZ_NN_H

#include <stddef.h>

#include "rng.h"
#include "util.h"

typedef enum fz_layer_kind {
    FZ_LINEAR = 1,
    FZ_CONV2D,
    FZ_CONVT2D,      /* ConvTranspose2d */
    FZ_BATCHNORM1D,  /* over (B, C) */
    FZ_BATCHNORM2D,  /* over (B, C, H, W), statistics per channel */
    FZ_DROPOUT,
    FZ_RELU,
    FZ_LEAKYRELU,
    FZ_SILU,
    FZ_SIGMOID,
    FZ_TANH,
    FZ_SOFTPLUS,     /* beta 1, threshold 20: y = x where x > 20 */
    FZ_FLATTEN,      /* (C, H, W) -> (C*H*W, 1, 1) */
    FZ_UNFLATTEN     /* (C*H*W, 1, 1) -> (C, H, W) */
} fz_layer_kind;

/* One sample's shape; a vector of D features is {D, 1, 1}. */
typedef struct fz_shape {
    int c, h, w;
} fz_shape;

/* Hard limits checked by the constructors so that every size fits an int and a size_t. */
#define FZ_NN_MAX_DIM 65536        /* one of c, h, w, kernel */
#define FZ_NN_MAX_SAMPLE (1 << 26) /* floats in one sample, and in one im2col matrix */
#define FZ_NN_MAX_PARAMS (1 << 28) /* parameter floats of one layer */

typedef struct fz_layer {
    fz_layer_kind kind;
    fz_shape in, out; /* per-sample shapes */

    /* hyper-parameters (only those of the kind are meaningful) */
    int k, stride, pad, out_pad; /* convolutions: square kernel k x k */
    int has_bias;                /* Linear and convolutions */
    int chunk;                   /* convolutions of stride > 1: most samples per sgemm;
                                    0 (the default) = as many as 2 MB of scratch hold.
                                    Set it before sizing the scratch and reserving.
                                    (Stride 1 goes one sample at a time, or two
                                    on the Winograd path of conv.c.) */
    float slope;                 /* LeakyReLU negative slope */
    float p;                     /* Dropout probability of zeroing */
    float momentum, eps;         /* BatchNorm: 0.1 and 1e-5 */

    /* views bound by fz_layer_bind (NULL when the kind has no such tensor) */
    float *weight, *bias;            /* into the parameter block */
    float *dweight, *dbias;          /* into the gradient block, same layout */
    float *running_mean, *running_var; /* into the buffer block */

    /* state and scratch set up by fz_layer_reserve */
    int max_batch;
    int last_train;          /* mode of the latest forward */
    unsigned char *mask;     /* Dropout keep-mask (max_batch, D), owned */
    const unsigned char *ext_mask; /* Dropout mask supplied by fz_dropout_use_mask */
    const unsigned char *last_mask; /* the mask the latest training forward applied */
    float *save_mean, *save_invstd; /* BatchNorm (C): statistics of the latest forward */
    double *stat;            /* BatchNorm (5C doubles; BatchNorm1d uses them as 10C floats):
                                per-channel sums and coefficients of one call, owned */
    int threads;             /* convolutions: threads the scratch has room for (the
                                thread count when reserved, fz_blas_threads()); a call
                                splits its chunks over min(that, the count now) threads */
    float *scratch;          /* im2col columns */
    int own_scratch;
    void *owned;             /* single allocation behind stat/mask/save_* (and scratch if own) */
} fz_layer;

/* Constructors: fill *L (no allocation). Return 0, or -1 with a reason for impossible
 * shapes or hyper-parameters (non-positive sizes, empty output, over the limits). */
int fz_linear_init(fz_layer *L, int in, int out, int bias, fz_err *err);
/* Output H = (H + 2*pad - k) / stride + 1, as PyTorch. */
int fz_conv2d_init(fz_layer *L, int in_c, int in_h, int in_w, int out_c, int k, int stride,
                   int pad, int bias, fz_err *err);
/* Output H = (H - 1)*stride - 2*pad + k + out_pad, as PyTorch; out_pad < stride. */
int fz_convt2d_init(fz_layer *L, int in_c, int in_h, int in_w, int out_c, int k, int stride,
                    int pad, int out_pad, int bias, fz_err *err);
int fz_batchnorm1d_init(fz_layer *L, int features, fz_err *err);
int fz_batchnorm2d_init(fz_layer *L, int c, int h, int w, fz_err *err);
/* Inverted dropout: in training each element is kept with probability 1 - p and scaled
 * by 1 / (1 - p); p in [0, 1] (p == 1 zeroes everything); identity in evaluation. */
int fz_dropout_init(fz_layer *L, fz_shape shape, float p, fz_err *err);
/* Element-wise activations: kind is FZ_RELU, FZ_SILU, FZ_SIGMOID, FZ_TANH or FZ_SOFTPLUS. */
int fz_act_init(fz_layer *L, fz_layer_kind kind, fz_shape shape, fz_err *err);
/* LeakyReLU with the given negative slope (PyTorch's default is 0.01). */
int fz_leakyrelu_init(fz_layer *L, fz_shape shape, float slope, fz_err *err);
int fz_flatten_init(fz_layer *L, int c, int h, int w, fz_err *err);
int fz_unflatten_init(fz_layer *L, int c, int h, int w, fz_err *err);

/* Name of a kind for messages and architecture strings, e.g. "Conv2d". */
const char *fz_layer_kind_name(fz_layer_kind kind);
/* Floats in one sample of the input / output. */
size_t fz_layer_in_size(const fz_layer *L);
size_t fz_layer_out_size(const fz_layer *L);
/* Trained parameter floats (weight then bias) and non-trained buffer floats. */
size_t fz_layer_nparams(const fz_layer *L);
size_t fz_layer_nbuffers(const fz_layer *L);
/* Scratch floats forward/backward need during one call (0 for most kinds), whatever the
 * batch size: convolutions of stride > 1 process the batch in chunks of samples, and this
 * is the size of their largest chunk (about 2 MB, or one sample's columns when larger);
 * those of stride 1 go one sample at a time (its folded columns, their gradient and a
 * weight gradient), or, with a 5x5 kernel and 16 channels or more, a chunk of about 1 MB
 * of Winograd tiles, and add the weights in their order once. That, times the thread
 * count T (fz_blas_threads(): a call splits its batch into 4T groups of samples for that
 * many threads), plus the weight and bias gradients of 4T - 1 groups when T > 1. Size the
 * scratch and reserve with the same thread count. */
size_t fz_layer_scratch_floats(const fz_layer *L);
/* The same for batches of up to max_batch samples (never more than the above): enough for
 * a shared buffer when every layer is reserved with this max_batch. */
size_t fz_layer_scratch_floats_for(const fz_layer *L, int max_batch);
/* 1 for Flatten/Unflatten: the output is the input's memory seen with another shape. */
int fz_layer_is_view(const fz_layer *L);
/* 1 for the element-wise activations (ReLU, LeakyReLU, SiLU, Sigmoid, Tanh, Softplus). */
int fz_layer_is_act(const fz_layer *L);

/* Point the layer at its slices: params and grads (fz_layer_nparams floats each) and
 * buffers (fz_layer_nbuffers floats). Pointers may be NULL when the count is 0; grads may
 * be NULL for a layer used only for inference. */
void fz_layer_bind(fz_layer *L, float *params, float *grads, float *buffers);

/* PyTorch's default initialisation of the bound parameters and buffers: Linear and
 * convolution weights kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
 * then the bias from U with the same bound (fan_in = in, in_c*k*k, and for
 * ConvTranspose2d weight dim 1 times k*k = out_c*k*k); BatchNorm weight 1, bias 0,
 * running mean 0, running var 1. Draws the weight first, then the bias. */
void fz_layer_init_params(fz_layer *L, fz_rng *rng);

/* Allocate the state and scratch for batches of up to max_batch samples (see Memory
 * above). scratch: a shared buffer of at least fz_layer_scratch_floats_for(L, max_batch)
 * floats, or NULL.
 * Calling it again replaces the previous reservation. */
int fz_layer_reserve(fz_layer *L, int max_batch, float *scratch, fz_err *err);
void fz_layer_free(fz_layer *L);

/* y (B, out) = layer(x (B, in)); 1 <= B <= max_batch. train selects batch statistics
 * (BatchNorm) and random masking (Dropout); rng is used only by Dropout in training (and
 * not when an external mask is set) and may be NULL otherwise. In training, BatchNorm
 * updates its running statistics: running = 0.9 * running + 0.1 * batch, with the unbiased
 * batch variance (n/(n-1), n = B*H*W; with n == 1 the biased one, 0). */
void fz_layer_forward(fz_layer *L, const float *x, float *y, int B, int train, fz_rng *rng);

/* fz_layer_forward of L into y and then of next (on y) into y2, as one step where that is
 * faster: a Linear layer or a convolution followed by an activation computes the
 * activation of each block (or chunk of samples) of its output on the thread that
 * computed it, right after it (the same bits as layer by layer). Returns 1 if it did both, 0 if it did nothing (the caller then runs the
 * two layers itself). */
int fz_layer_forward_pair(fz_layer *L, fz_layer *next, const float *x, float *y, float *y2,
                          int B, int train);

/* The backward of the pair fz_layer_forward_pair computed, as one step where that is
 * faster: L a convolution with input x and output y, next an activation on y with output
 * y2; dy holds dLoss/dy2 and is overwritten, chunk by chunk of samples as the
 * convolution's backward reaches it, with dLoss/dy (the activation's backward in place),
 * and dx (or NULL) receives dLoss/dx. The same bits as layer by layer. Returns 1 if it did
 * both, 0 if it did nothing. */
int fz_layer_backward_pair(fz_layer *L, fz_layer *next, const float *x, const float *y,
                           const float *y2, float *dy, float *dx, int B);

/* Given dy (B, out) = dLoss/dy, add dLoss/dparams into the gradient block and write
 * dx (B, in) = dLoss/dx (skipped when dx is NULL). x and y are those of the latest forward
 * with the same B. */
void fz_layer_backward(fz_layer *L, const float *x, const float *y, const float *dy,
                       float *dx, int B);

/* Dropout: use keep (B, D) of 0/1 bytes (1 = keep) as the mask of the following training
 * forwards instead of drawing it, e.g. to reproduce another implementation's mask exactly.
 * The caller keeps it alive while it is in use; NULL returns to drawing from the rng. */
void fz_dropout_use_mask(fz_layer *L, const unsigned char *keep);

/* Linear only: the evaluation forward of an input whose rows are ldx >= in floats apart
 * (a field inside the rows of a stream), so that it need not be copied out first; no
 * backward may follow. */
void fz_linear_forward_ld(fz_layer *L, const float *x, size_t ldx, float *y, int B);

/* Evaluation of a run of cheap element-wise layers in one pass. fz_layer_eval_fusable: 1
 * for ReLU, LeakyReLU, Dropout and BatchNorm1d. fz_layers_eval_rows: y (B, D) = the k
 * consecutive layers L[0..k-1] (all fusable, reserved, of one width D) in evaluation mode
 * applied to x (B, D), row by row so that each row stays in the L1 cache between them;
 * the same bits as k fz_layer_forward calls. y must not overlap x; the outputs of L[0..k-2]
 * are not stored. */
int fz_layer_eval_fusable(const fz_layer *L);
void fz_layers_eval_rows(fz_layer *L, int k, const float *x, float *y, int B);

/* Internal to lib/ (conv.c, called by the dispatch in nn.c); use the fz_layer_* calls. */
size_t fz_conv_scratch_floats(const fz_layer *L, int max_batch); /* max_batch 0: any */
int fz_conv_threads(void); /* threads a convolution reserved now would have room for */
/* The forward passes call post (if not NULL) on each range [lo, hi) of y's floats as soon
 * as it is final, the backward passes call pre on each range of dy's just before they read
 * it (it may write dy there: a caller's pass fused into the convolution's), on the thread
 * that works on it (whole samples; every float once). */
typedef void (*fz_conv_post)(void *ctx, size_t lo, size_t hi);
void fz_conv2d_forward(fz_layer *L, const float *x, float *y, int B, fz_conv_post post,
                       void *ctx);
void fz_conv2d_backward(fz_layer *L, const float *x, const float *dy, float *dx, int B,
                        fz_conv_post pre, void *ctx);
void fz_convt2d_forward(fz_layer *L, const float *x, float *y, int B, fz_conv_post post,
                        void *ctx);
void fz_convt2d_backward(fz_layer *L, const float *x, const float *dy, float *dx, int B,
                         fz_conv_post pre, void *ctx);

#endif
