/* net.c - a sequential stack of layers. */
#include "net.h"

#include <stdlib.h>
#include <string.h>

static size_t shape_size(fz_shape s) { return (size_t)s.c * (size_t)s.h * (size_t)s.w; }

static int build_layer(fz_layer *L, const fz_layer_spec *s, fz_shape cur, int latent,
                       int in_count, fz_err *err)
{
    int n = fz_arch_size(s, latent, in_count);
    int vec = cur.h == 1 && cur.w == 1;
    switch (s->kind) {
    case FZ_LINEAR:
        if (!vec)
            return fz_fail(err, FZ_EDATA, "linear on a (%d, %d, %d) input: add flatten before it",
                           cur.c, cur.h, cur.w);
        return fz_linear_init(L, cur.c, n, 1, err);
    case FZ_CONV2D:
        return fz_conv2d_init(L, cur.c, cur.h, cur.w, n, s->k, s->stride, s->pad, 1, err);
    case FZ_CONVT2D:
        return fz_convt2d_init(L, cur.c, cur.h, cur.w, n, s->k, s->stride, s->pad, s->out_pad, 1,
                               err);
    case FZ_BATCHNORM1D:
    case FZ_BATCHNORM2D:
        return vec ? fz_batchnorm1d_init(L, cur.c, err)
                   : fz_batchnorm2d_init(L, cur.c, cur.h, cur.w, err);
    case FZ_DROPOUT: return fz_dropout_init(L, cur, s->p, err);
    case FZ_LEAKYRELU: return fz_leakyrelu_init(L, cur, s->slope, err);
    case FZ_RELU:
    case FZ_SILU:
    case FZ_SIGMOID:
    case FZ_TANH:
    case FZ_SOFTPLUS: return fz_act_init(L, s->kind, cur, err);
    case FZ_FLATTEN: return fz_flatten_init(L, cur.c, cur.h, cur.w, err);
    case FZ_UNFLATTEN:
        if ((size_t)s->uc * s->uh * s->uw != shape_size(cur))
            return fz_fail(err, FZ_EDATA, "unflatten(%d,%d,%d) of %zu values", s->uc, s->uh,
                           s->uw, shape_size(cur));
        return fz_unflatten_init(L, s->uc, s->uh, s->uw, err);
    }
    return fz_fail(err, FZ_EDATA, "unknown layer kind %d", (int)s->kind);
}

int fz_net_build(fz_net *net, const fz_layer_spec *specs, int n, fz_shape in, int latent,
                 int in_count, const char *what, fz_err *err)
{
    memset(net, 0, sizeof *net);
    net->layers = calloc((size_t)n, sizeof *net->layers);
    net->param_off = calloc((size_t)n, sizeof *net->param_off);
    net->buf_off = calloc((size_t)n, sizeof *net->buf_off);
    net->act = calloc((size_t)n, sizeof *net->act);
    if (!net->layers || !net->param_off || !net->buf_off || !net->act) {
        fz_net_free(net);
        return fz_fail(err, FZ_ENOMEM, "out of memory");
    }
    net->n = n;
    net->in = in;
    fz_shape cur = in;
    for (int i = 0; i < n; i++) {
        fz_layer *L = &net->layers[i];
        if (build_layer(L, &specs[i], cur, latent, in_count, err)) {
            char pre[64];
            snprintf(pre, sizeof pre, "%s layer %d (%s)", what, i,
                     fz_layer_kind_name(specs[i].kind));
            fz_err_prefix(err, pre);
            net->n = i;
            fz_net_free(net);
            return -1;
        }
        net->param_off[i] = net->nparams;
        net->buf_off[i] = net->nbuffers;
        net->nparams += fz_layer_nparams(L);
        net->nbuffers += fz_layer_nbuffers(L);
        cur = L->out;
    }
    net->out = cur;
    return 0;
}

void fz_net_bind(fz_net *net, float *params, float *grads, float *buffers)
{
    for (int i = 0; i < net->n; i++)
        fz_layer_bind(&net->layers[i], params ? params + net->param_off[i] : NULL,
                      grads ? grads + net->param_off[i] : NULL,
                      buffers ? buffers + net->buf_off[i] : NULL);
}

static void free_activations(fz_net *net)
{
    free(net->act_block);
    free(net->dbuf[0]);
    free(net->dbuf[1]);
    free(net->scratch);
    net->act_block = net->dbuf[0] = net->dbuf[1] = net->scratch = NULL;
}

int fz_net_sizes_for(const fz_net *net, int max_batch, fz_net_sizes *sz, fz_err *err)
{
    size_t total = 0, widest = shape_size(net->in);
    sz->scratch = 0;
    sz->scratch_layer = -1;
    for (int i = 0; i < net->n; i++) {
        const fz_layer *L = &net->layers[i];
        size_t o = fz_layer_out_size(L);
        if (o > widest) widest = o;
        if (!fz_layer_is_view(L)) total += o;
        size_t s = fz_layer_scratch_floats_for(L, max_batch);
        if (s > sz->scratch) {
            sz->scratch = s;
            sz->scratch_layer = i;
        }
    }
    if (fz_mul_size(total, (size_t)max_batch, &sz->outputs) ||
        fz_mul_size(widest, (size_t)max_batch, &sz->grads) ||
        fz_mul_size(sz->grads, 2, &sz->grads))
        return fz_fail(err, FZ_ENOMEM, "batch of %d too large for this network", max_batch);
    return 0;
}

int fz_net_reserve(fz_net *net, int max_batch, fz_err *err)
{
    free_activations(net);
    fz_net_sizes sz;
    if (fz_net_sizes_for(net, max_batch, &sz, err)) return -1;
    size_t act_floats = sz.outputs, d_floats = sz.grads / 2, scratch = sz.scratch;
    net->act_block = malloc((act_floats ? act_floats : 1) * sizeof(float));
    net->dbuf[0] = malloc(d_floats * sizeof(float));
    net->dbuf[1] = malloc(d_floats * sizeof(float));
    net->scratch = scratch ? malloc(scratch * sizeof(float)) : NULL;
    if (!net->act_block || !net->dbuf[0] || !net->dbuf[1] || (scratch && !net->scratch)) {
        free_activations(net);
        return fz_fail(err, FZ_ENOMEM, "out of memory for activations of a batch of %d",
                       max_batch);
    }
    size_t off = 0;
    for (int i = 0; i < net->n; i++) {
        fz_layer *L = &net->layers[i];
        if (fz_layer_is_view(L)) {
            net->act[i] = NULL; /* resolved at forward time: the input's memory */
        } else {
            net->act[i] = net->act_block + off;
            off += fz_layer_out_size(L) * (size_t)max_batch;
        }
        if (fz_layer_reserve(L, max_batch, net->scratch, err)) {
            free_activations(net);
            return -1;
        }
    }
    net->max_batch = max_batch;
    return 0;
}

void fz_net_touch(fz_net *net)
{
    fz_net_sizes sz;
    if (!net->act_block || fz_net_sizes_for(net, net->max_batch, &sz, NULL)) return;
    fz_touch_zero(net->act_block, sz.outputs * sizeof(float));
    fz_touch_zero(net->dbuf[0], sz.grads / 2 * sizeof(float));
    fz_touch_zero(net->dbuf[1], sz.grads / 2 * sizeof(float));
    if (net->scratch) fz_touch_zero(net->scratch, sz.scratch * sizeof(float));
}

void fz_net_free(fz_net *net)
{
    if (!net) return;
    for (int i = 0; i < net->n; i++) fz_layer_free(&net->layers[i]);
    free_activations(net);
    free(net->layers);
    free(net->param_off);
    free(net->buf_off);
    free(net->act);
    memset(net, 0, sizeof *net);
}

void fz_net_init_params(fz_net *net, fz_rng *rng)
{
    for (int i = 0; i < net->n; i++) fz_layer_init_params(&net->layers[i], rng);
}

size_t fz_net_in_size(const fz_net *net) { return shape_size(net->in); }
size_t fz_net_out_size(const fz_net *net) { return shape_size(net->out); }

/* Evaluation of layers i0..i1 (i1 not a view) on B rows from cur: layer k writes into the
 * start of act[k], except i1, which writes into out; a run of two or more cheap element-wise
 * layers (ReLU, BatchNorm1d, Dropout, ...) is one pass over the rows, whose result lands in
 * the run's last buffer (the buffers before it are not written). Returns out. */
static const float *eval_layers(fz_net *net, int i0, int i1, const float *cur, int B,
                                float *out)
{
    for (int i = i0; i <= i1; i++) {
        fz_layer *L = &net->layers[i];
        if (fz_layer_is_view(L)) {
            net->act[i] = (float *)cur; /* same memory seen with another shape */
            continue;
        }
        int j = i;
        while (j + 1 <= i1 && fz_layer_eval_fusable(&net->layers[j]) &&
               fz_layer_eval_fusable(&net->layers[j + 1]))
            j++;
        float *dst = j == i1 ? out : net->act[j];
        if (j > i) fz_layers_eval_rows(L, j - i + 1, cur, dst, B);
        else fz_layer_forward(L, cur, dst, B, 0, NULL);
        cur = dst;
        i = j;
    }
    return cur;
}

/* Evaluation runs the layers between Linear layers (convolutions, normalisation,
 * activations, views) depth first when their outputs over the batch would not stay in the
 * cache: a chunk of rows whose largest output is about FZ_EVAL_CHUNK_FLOATS goes through the
 * whole run before the next chunk, so that every layer reads its input while the layer
 * before has just written it, and only the run's last layer writes the whole batch (the
 * others write a chunk at the start of their buffers). A Linear layer ends a run: it reads
 * its weights once per call and wants the whole batch. Every layer of a run computes each
 * row from that row alone (in evaluation BatchNorm uses its running statistics): the
 * folded stride-1 convolutions, one sample at a time, and the element-wise layers give the
 * same bits in chunks; the Winograd convolutions (pairs of samples) and those of other
 * strides run products over groups of samples, whose rounding may move in the last bit
 * with the group's width, as with another batch size. */
/* 2 MB: over two threads, each takes half a chunk. On vae-conv's encoder (fz-encode -B
 * 1000, 10,000 test images, 5 alternating runs) 2 MB took 1.74-1.87 s, 4 MB 1.76-1.85 s and
 * 1 MB 1.91-2.04 s. */
#define FZ_EVAL_CHUNK_FLOATS ((size_t)1 << 19)

/* The run that starts at layer i (not a view): a Linear layer alone, else the layers up to
 * the next Linear one. Returns its last layer that is not a view; *rows receives the rows of
 * its chunks: B (one piece) unless it has two or more computing layers whose widest output
 * over the batch exceeds two chunks. */
static int eval_run(const fz_net *net, int i, int B, int *rows)
{
    int last = i, computing = 0;
    size_t widest = 0;
    for (int k = i; k < net->n; k++) {
        const fz_layer *L = &net->layers[k];
        if (L->kind == FZ_LINEAR && k > i) break;
        if (fz_layer_is_view(L)) continue;
        last = k;
        computing++;
        size_t w = fz_layer_out_size(L);
        if (w > widest) widest = w;
        if (L->kind == FZ_LINEAR) break;
    }
    *rows = B;
    if (computing >= 2 && widest * (size_t)B > 2 * FZ_EVAL_CHUNK_FLOATS) {
        size_t r = FZ_EVAL_CHUNK_FLOATS / widest;
        *rows = r < 1 ? 1 : (int)r;
    }
    return last;
}

/* Layers from..n-1 in evaluation or training; evaluation as eval_layers, run by run (see
 * eval_run), each in chunks of rows where it says so. */
static const float *forward_from(fz_net *net, int from, const float *cur, int B, int train,
                                 fz_rng *rng)
{
    if (!train) {
        int i = from;
        while (i < net->n) {
            if (fz_layer_is_view(&net->layers[i])) {
                net->act[i++] = (float *)cur; /* same memory seen with another shape */
                continue;
            }
            int rows, last = eval_run(net, i, B, &rows);
            size_t in = fz_layer_in_size(&net->layers[i]), out = fz_layer_out_size(&net->layers[last]);
            for (int r0 = 0; r0 < B; r0 += rows) {
                int nb = B - r0 < rows ? B - r0 : rows;
                eval_layers(net, i, last, cur + (size_t)r0 * in, nb, net->act[last] + (size_t)r0 * out);
            }
            cur = net->act[last];
            i = last + 1;
        }
        return cur;
    }
    for (int i = from; i < net->n; i++) {
        fz_layer *L = &net->layers[i];
        if (fz_layer_is_view(L)) {
            net->act[i] = (float *)cur;
            continue;
        }
        /* a Linear layer and the activation after it in one step where that is faster */
        if (i + 1 < net->n &&
            fz_layer_forward_pair(L, &net->layers[i + 1], cur, net->act[i], net->act[i + 1], B, train)) {
            cur = net->act[++i];
            continue;
        }
        fz_layer_forward(L, cur, net->act[i], B, train, rng);
        cur = net->act[i];
    }
    return cur;
}

const float *fz_net_forward(fz_net *net, const float *x, int B, int train, fz_rng *rng)
{
    return forward_from(net, 0, x, B, train, rng);
}

/* index of the first layer that computes something (views before it), or n */
static int first_real_layer(const fz_net *net)
{
    int i = 0;
    while (i < net->n && fz_layer_is_view(&net->layers[i])) i++;
    return i;
}

int fz_net_takes_ld(const fz_net *net)
{
    int i = first_real_layer(net);
    return i < net->n && net->layers[i].kind == FZ_LINEAR;
}

const float *fz_net_forward_ld(fz_net *net, const float *x, size_t ldx, int B)
{
    int f = first_real_layer(net);
    for (int i = 0; i < f; i++) net->act[i] = (float *)x;
    fz_linear_forward_ld(&net->layers[f], x, ldx, net->act[f], B);
    return forward_from(net, f + 1, net->act[f], B, 0, NULL);
}

/* Where layer k's input gradient goes, dcur holding its output's: nowhere (NULL) for the
 * first computing layer when the caller wants none, dx for layer 0, else the one of the
 * two buffers dcur is not. */
static float *grad_dst(fz_net *net, int k, int first_real, const float *dcur, float *dx)
{
    if (k == first_real && !dx) return NULL; /* nobody needs it: skip its product */
    if (k == 0) return dx;
    return dcur == net->dbuf[0] ? net->dbuf[1] : net->dbuf[0];
}

void fz_net_backward(fz_net *net, const float *x, const float *dy, float *dx, int B)
{
    /* first_real: the first layer that computes something; below it are only views. */
    int first_real = 0;
    while (first_real < net->n && fz_layer_is_view(&net->layers[first_real])) first_real++;
    const float *dcur = dy;
    for (int i = net->n - 1; i >= 0; i--) {
        fz_layer *L = &net->layers[i];
        if (fz_layer_is_view(L)) {
            if (i == 0 && dx && dcur != dx)
                memcpy(dx, dcur, fz_layer_in_size(L) * (size_t)B * sizeof(float));
            continue;
        }
        /* An activation after a convolution: the activation's backward in place in our own
         * buffer dcur, chunk by chunk as the convolution's backward reads it. */
        if (i >= 1 && fz_layer_is_act(L) && (dcur == net->dbuf[0] || dcur == net->dbuf[1])) {
            int c = i - 1;
            float *cdst = grad_dst(net, c, first_real, dcur, dx);
            if (fz_layer_backward_pair(&net->layers[c], L, c ? net->act[c - 1] : x, net->act[c],
                                       net->act[i], (float *)dcur, cdst, B)) {
                if (!cdst) break;
                dcur = cdst;
                i = c;
                continue;
            }
        }
        /* The input of layer i as forward saw it (a view's act is its input's memory). */
        const float *in = i ? net->act[i - 1] : x;
        float *dst = grad_dst(net, i, first_real, dcur, dx);
        fz_layer_backward(L, in, net->act[i], dcur, dst, B);
        if (!dst) break;
        dcur = dst;
    }
}
