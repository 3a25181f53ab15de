/* test_net - evaluation of a network in chunks of rows: a batch whose convolution outputs
 * are too large for the cache runs the layers between Linear layers depth first, a chunk
 * of rows at a time (lib/net.c). The results must be those of each row on its own (a batch
 * of one is never cut): bit for bit for the stride-1 convolutions, BatchNorm2d and
 * activations, which compute one sample at a time, and within float rounding for a whole
 * model (its Linear layers round a product of one row differently from one of many) and
 * for stride-2 convolutions, whose products span several samples. The batches are odd-sized so that the last chunk is short, and run
 * on one and on two threads. Also: a new trainer has mapped the pages of its buffers. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "blas.h"
#include "check.h"
#include "arch.h"
#include "model.h"
#include "net.h"
#include "optim.h"
#include "rng.h"
#include "train.h"

/* 1x22x22 inputs; the widest output is 32x12x12 = 4608 floats a row, so a batch of 403
 * rows (1.86M floats) is cut into chunks of 113 rows. BatchNorm2d, a view in the middle
 * (flatten, unflatten) and fused element-wise runs (relu after linear) take part. */
static const char *STRIDE1 =
    "kind = vae\nsigma = logvar\nlatent = 3\n"
    "encoder = conv2d(8,5) silu conv2d(16,5) bn silu conv2d(32,3) silu flatten linear(2z)\n"
    "decoder = linear(64) relu linear(4608) bn silu unflatten(32,12,12) convt2d(16,3) silu "
    "convt2d(8,5) silu convt2d(1,5) sigmoid\n";

/* 1x28x28 inputs through two stride-2 convolutions, as fcvae-cnn: the widest output is
 * 32x14x14 = 6272 floats a row, so 251 rows are cut into chunks of 83. */
static const char *STRIDE2 =
    "kind = vae\nsigma = logvar\nlatent = 3\n"
    "encoder = conv2d(32,5,2,2) bn relu conv2d(64,5,2,2) bn relu flatten linear(2z)\n"
    "decoder = linear(128) relu linear(in) sigmoid\n";

/* The largest |a - b| over n values, relative to the largest |b|. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / m;
}

static void check_chunked(const char *arch, fz_shape in, int B, double tol)
{
    fz_model m;
    fz_err err = {0};
    if (fz_model_create(&m, arch, in, 3, &err) || fz_model_reserve(&m, B, &err)) {
        CHECK_MSG(0, "model: %s", err.msg);
        return;
    }
    size_t D = (size_t)in.c * in.h * in.w;
    int Z = fz_model_latent(&m);
    float *x = malloc((size_t)B * D * sizeof *x);
    float *mu = malloc((size_t)B * Z * sizeof *mu), *s = malloc((size_t)B * Z * sizeof *s);
    float *mu1 = malloc((size_t)B * Z * sizeof *mu1), *s1 = malloc((size_t)B * Z * sizeof *s1);
    float *xhat = malloc((size_t)B * D * sizeof *xhat), *xhat1 = malloc((size_t)B * D * sizeof *xhat1);
    CHECK(x && mu && s && mu1 && s1 && xhat && xhat1);
    if (!(x && mu && s && mu1 && s1 && xhat && xhat1)) return;
    fz_rng r;
    fz_rng_seed(&r, 11);
    for (size_t i = 0; i < (size_t)B * D; i++) x[i] = (float)fz_rng_uniform(&r);
    for (int threads = 1; threads <= 2; threads++) {
        fz_blas_set_threads(threads);
        fz_model_encode(&m, x, B, mu, s);
        for (int b = 0; b < B; b++)
            fz_model_encode(&m, x + (size_t)b * D, 1, mu1 + (size_t)b * Z, s1 + (size_t)b * Z);
        memcpy(xhat, fz_model_decode(&m, mu, B), (size_t)B * D * sizeof *xhat);
        for (int b = 0; b < B; b++)
            memcpy(xhat1 + (size_t)b * D, fz_model_decode(&m, mu + (size_t)b * Z, 1),
                   D * sizeof *xhat1);
        double dmu = rel_diff(mu, mu1, (size_t)B * Z), ds = rel_diff(s, s1, (size_t)B * Z);
        double dx = rel_diff(xhat, xhat1, (size_t)B * D);
        CHECK_MSG(dmu <= tol && ds <= tol && dx <= tol,
                  "threads %d: batch of %d against rows alone: mu %g, s %g, xhat %g (tol %g)",
                  threads, B, dmu, ds, dx, tol);
        /* every row was computed: nothing left at zero, nothing non-finite */
        CHECK(fz_first_nonfinite(mu, (size_t)B * Z) < 0 && fz_first_nonfinite(xhat, (size_t)B * D) < 0);
        CHECK(mu[(size_t)(B - 1) * Z] != 0 && xhat[(size_t)B * D - 1] != 0);
    }
    fz_blas_set_threads(1);
    free(x), free(mu), free(s), free(mu1), free(s1), free(xhat), free(xhat1);
    fz_model_free(&m);
}

/* The convolution part of STRIDE1's encoder alone (up to its flatten): the chunked batch
 * equals the rows one by one, bit for bit, and a batch small enough not to be cut. */
static void check_net_exact(void)
{
    fz_arch a;
    fz_err err = {0};
    if (fz_arch_parse(STRIDE1, &a, &err)) {
        CHECK_MSG(0, "arch: %s", err.msg);
        return;
    }
    int n = 0;
    while (n < a.nenc && a.enc[n].kind != FZ_FLATTEN) n++;
    enum { B = 403, D = 22 * 22, OUT = 32 * 12 * 12 };
    fz_net net;
    if (fz_net_build(&net, a.enc, n, (fz_shape){1, 22, 22}, 3, D, "encoder", &err)) {
        CHECK_MSG(0, "net: %s", err.msg);
        return;
    }
    CHECK_EQ_INT((int)fz_net_out_size(&net), OUT);
    float *params = calloc(net.nparams + 1, sizeof(float));
    float *grads = calloc(net.nparams + 1, sizeof(float));
    float *buffers = calloc(net.nbuffers + 1, sizeof(float));
    float *x = malloc((size_t)B * D * sizeof(float));
    float *y = malloc((size_t)B * OUT * sizeof(float)), *y1 = malloc((size_t)B * OUT * sizeof(float));
    CHECK(params && grads && buffers && x && y && y1);
    if (!(params && grads && buffers && x && y && y1)) return;
    fz_net_bind(&net, params, grads, buffers);
    fz_rng r;
    fz_rng_seed(&r, 5);
    fz_net_init_params(&net, &r);
    /* running statistics away from (0, 1), so that BatchNorm2d does something */
    for (size_t i = 0; i < net.nbuffers; i++) buffers[i] = (float)(0.5 + fz_rng_uniform(&r));
    for (size_t i = 0; i < (size_t)B * D; i++) x[i] = (float)fz_rng_uniform(&r);
    CHECK_EQ_INT(fz_net_reserve(&net, B, &err), 0);
    for (int threads = 1; threads <= 2; threads++) {
        fz_blas_set_threads(threads);
        memcpy(y, fz_net_forward(&net, x, B, 0, NULL), (size_t)B * OUT * sizeof(float));
        for (int b = 0; b < B; b++)
            memcpy(y1 + (size_t)b * OUT, fz_net_forward(&net, x + (size_t)b * D, 1, 0, NULL),
                   OUT * sizeof(float));
        CHECK_MSG(rel_diff(y, y1, (size_t)B * OUT) == 0, "threads %d: %g", threads,
                  rel_diff(y, y1, (size_t)B * OUT));
        /* 40 rows are not cut: the same again */
        memcpy(y1, fz_net_forward(&net, x + 100 * D, 40, 0, NULL), 40 * OUT * sizeof(float));
        CHECK(memcmp(y1, y + (size_t)100 * OUT, 40 * OUT * sizeof(float)) == 0);
    }
    fz_blas_set_threads(1);
    size_t zeros = 0;
    for (size_t i = 0; i < (size_t)B * OUT; i++) zeros += y[i] == 0;
    CHECK(zeros < (size_t)B * OUT / 100); /* SiLU leaves next to nothing at exactly 0 */
    free(params), free(grads), free(buffers), free(x), free(y), free(y1);
    fz_net_free(&net);
}

/* Pages of [p, p + n) not in memory (mincore), counting only whole pages inside it (the
 * allocator's neighbours on the first and last page do not count); -1 if mincore fails. */
static long pages_missing(const void *p, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) / page * page, hi = ((uintptr_t)p + n) / page * page;
    if (hi <= lo) return 0;
    size_t np = (hi - lo) / page;
    unsigned char *v = malloc(np);
    if (!v || mincore((void *)lo, hi - lo, v)) {
        free(v);
        return -1;
    }
    long missing = 0;
    for (size_t i = 0; i < np; i++) missing += !(v[i] & 1);
    free(v);
    return missing;
}

/* A new trainer has every page of the gradients, the optimiser's moments and the
 * activations mapped, so that its first step takes no page faults (the buffers are larger
 * than glibc's mmap threshold, so without that they start out unmapped). */
static void check_trainer_pages(void)
{
    static const char *ARCH = "kind = vae\nsigma = logvar\nlatent = 2\n"
                              "encoder = flatten linear(512) relu linear(2z)\n"
                              "decoder = linear(512) relu linear(in) sigmoid\n";
    fz_model m;
    fz_err err = {0};
    if (fz_model_create(&m, ARCH, (fz_shape){1, 28, 28}, 1, &err)) {
        CHECK_MSG(0, "model: %s", err.msg);
        return;
    }
    fz_train_conf c;
    fz_train_defaults(&c, "vae-mlp", FZ_KIND_VAE);
    c.batch = 500;
    fz_trainer *t = fz_trainer_new(&m, &c, &err);
    CHECK_MSG(t != NULL, "trainer: %s", err.msg);
    if (t) {
        const fz_optim *o = fz_trainer_optim(t);
        fz_net_sizes sz;
        CHECK(fz_net_sizes_for(&m.dec, 500, &sz, &err) == 0);
        long g = pages_missing(m.grads, m.nparams * sizeof(float));
        long st = pages_missing(o->state, fz_optim_state_len(o) * sizeof(float));
        long act = pages_missing(m.dec.act_block, sz.outputs * sizeof(float));
        CHECK_MSG(g == 0, "gradients: %ld pages not mapped", g);
        CHECK_MSG(st == 0, "optimiser state: %ld pages not mapped", st);
        CHECK_MSG(act == 0, "decoder activations: %ld pages not mapped", act);
        fz_trainer_free(t);
    }
    fz_model_free(&m);
}

int main(void)
{
    check_trainer_pages();
    check_net_exact();
    check_chunked(STRIDE1, (fz_shape){1, 22, 22}, 403, 1e-5);
    check_chunked(STRIDE2, (fz_shape){1, 28, 28}, 251, 1e-5);
    return check_report("test_net");
}
