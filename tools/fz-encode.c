/* fz-encode - model + data stream -> latent stream {..., mu, logvar, z}. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "model.h"
#include "net.h"
#include "stream.h"
#include "train.h"

static const char *prog = "fz-encode";

static void usage(FILE *to)
{
    fprintf(to, "usage: fz-encode -i model [-S] [-s seed] [-c diag|scalar] [-f field] [-k] [-d fields] "
                "[-B batch] [-t threads] [-o out] [in]\n");
}

static void help(long batch)
{
    usage(stdout);
    printf("\nEncode the rows of a stream with a trained model (evaluation mode: BatchNorm uses its\n"
           "running statistics, Dropout is off). Adds the fields mu and z (and logvar for a vae,\n"
           "the log-variance log(sigma^2) whatever the model's sigma form) and passes every other\n"
           "field through; the input field is dropped unless -k.\n\n"
           "  -i model    model file (required)\n"
           "  -S          z sampled as mu + sigma * eps (default: z = mu)\n"
           "  -s seed     seed of the sampling (default 0)\n"
           "  -c diag|scalar  add 'sigmas' (Z): how many standard deviations mu lies from the\n"
           "              Gaussian fitted to the training data's mu, per dimension, with a\n"
           "              diagonal covariance or one variance for all dimensions\n"
           "  -f field    input field (default x)\n"
           "  -k          keep the input field in the output\n"
           "  -d fields   also drop these fields (comma-separated)\n"
           "  -B batch    rows encoded at a time (default %ld)\n"
           "  -t threads  threads of the products and layers (default: one per core)\n"
           "  -o out      output stream (default: standard output)\n"
           "  -h          this help\n"
           "\nExit 0 ok, 1 data or runtime error, 2 usage.\n",
           batch);
}

static int fail(const fz_err *err)
{
    if (err->code == FZ_EPIPE) return 0; /* the reader went away: not an error */
    fprintf(stderr, "%s: %s\n", prog, err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    int switched = fz_blas_init(argc, argv);
    fz_blas_ftz(1);
    signal(SIGPIPE, SIG_IGN);
    const char *model_path = NULL, *out_path = NULL, *field = "x";
    char *drop_list = NULL;
    int sample = 0, keep = 0, c, conf = 0; /* conf: 0 none, 1 diagonal, 2 scalar */
    long seed = 0, batch = 256, threads = 0;
    fz_err err;
    opterr = 0;
    while ((c = getopt(argc, argv, "i:Ss:c:f:kd:B:t:o:h")) != -1) {
        switch (c) {
        case 'i': model_path = optarg; break;
        case 'S': sample = 1; break;
        case 's': if (fz_parse_long(optarg, 0, 2147483647L, &seed, "-s", &err)) goto bad; break;
        case 'c':
            if (strcmp(optarg, "diag") == 0) conf = 1;
            else if (strcmp(optarg, "scalar") == 0) conf = 2;
            else {
                fprintf(stderr, "%s: -c: expected diag or scalar\n", prog);
                return 2;
            }
            break;
        case 'f': field = optarg; break;
        case 'k': keep = 1; break;
        case 'd': drop_list = optarg; break;
        case 'B': if (fz_parse_long(optarg, 1, 65536, &batch, "-B", &err)) goto bad; break;
        case 't': if (fz_parse_long(optarg, 1, 256, &threads, "-t", &err)) goto bad; break;
        case 'o': out_path = optarg; break;
        case 'h': help(batch); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model_path || argc - optind > 1) {
        usage(stderr);
        return 2;
    }
    const char *in_path = optind < argc ? argv[optind] : "-";
    if (switched && fz_blas_selfcheck(&err)) return fail(&err);
    if (threads) fz_blas_set_threads((int)threads);

    fz_model m = {0};
    fz_reader *r = NULL;
    fz_writer *w = NULL;
    unsigned char *inbuf = NULL, *outbuf = NULL;
    float *x = NULL;
    int rc = 1;
    if (fz_model_load(&m, model_path, &err) || !(r = fz_reader_open(in_path, &err))) goto fail;
    const fz_schema *in = fz_reader_schema(r);
    int fi = fz_schema_find(in, field);
    if (fi < 0) {
        fz_fail(&err, FZ_EDATA, "%s: no field '%s' in the stream", fz_reader_name(r), field);
        goto fail;
    }
    const fz_field *xf = &in->field[fi];
    fz_shape shape;
    if (fz_field_shape3(xf, &shape, &err)) {
        fz_err_prefix(&err, fz_reader_name(r));
        goto fail;
    }
    if (shape.c != m.in.c || shape.h != m.in.h || shape.w != m.in.w) {
        char a[64], b[64];
        fz_fail(&err, FZ_EDATA, "%s: field '%s' has shape %s, the model %s takes %s",
                fz_reader_name(r), field, fz_model_shape_str(shape, a, sizeof a), model_path,
                fz_model_shape_str(m.in, b, sizeof b));
        goto fail;
    }
    int vae = m.arch.kind == FZ_KIND_VAE, Z = fz_model_latent(&m);
    if (conf && !m.latent_mean) {
        fz_fail(&err, FZ_EDATA, "%s holds no Gaussian of its training latents (a model from an "
                "older fz, or training did not finish): -c needs one", model_path);
        goto fail;
    }
    /* Output: the input's fields minus the input (unless -k), minus -d, minus any old latents. */
    const char *drop[FZ_MAX_FIELDS + 8];
    int nd = drop_list ? fz_split_names(drop_list, drop, FZ_MAX_FIELDS) : 0;
    if (!keep) drop[nd++] = field;
    drop[nd++] = "mu";
    drop[nd++] = "logvar";
    drop[nd++] = "z";
    drop[nd++] = "sigmas";
    drop[nd] = NULL;
    fz_schema out;
    fz_rowmap map;
    int64_t zshape[1] = {Z};
    if (fz_rowmap_build(&map, in, &out, drop, &err) ||
        fz_schema_add(&out, "mu", FZ_F4, 0, 1, zshape, &err) ||
        (vae && fz_schema_add(&out, "logvar", FZ_F4, 0, 1, zshape, &err)) ||
        fz_schema_add(&out, "z", FZ_F4, 0, 1, zshape, &err) ||
        (conf && fz_schema_add(&out, "sigmas", FZ_F4, 0, 1, zshape, &err)))
        goto fail;
    int sg_i = conf ? fz_schema_find(&out, "sigmas") : -1;
    int mu_i = fz_schema_find(&out, "mu"), lv_i = vae ? fz_schema_find(&out, "logvar") : -1,
        z_i = fz_schema_find(&out, "z");
    if (!(w = fz_writer_open(out_path, &out, fz_reader_meta(r), 0, &err))) goto fail;
    if (fz_model_reserve(&m, (int)batch, &err)) goto fail;
    size_t D = m.in_count, E = vae ? 2 * (size_t)Z : (size_t)Z;
    /* A float32 field at a float-aligned place in float-aligned rows is read where it lies:
     * the first Linear takes the rows with their stride, sparing a copy of the batch. */
    int inplace = xf->type == FZ_F4 && xf->offset % 4 == 0 && in->row_size % 4 == 0 &&
                  in->row_size / 4 <= (size_t)INT_MAX && fz_net_takes_ld(&m.enc);
    inbuf = malloc((size_t)batch * in->row_size + 4);
    outbuf = malloc((size_t)batch * out.row_size + 1);
    x = inplace ? NULL : malloc((size_t)batch * D * sizeof(float));
    if (!inbuf || !outbuf || (!inplace && !x)) {
        fz_fail(&err, FZ_ENOMEM, "out of memory");
        goto fail;
    }
    fz_rng rng;
    fz_rng_seed(&rng, (uint64_t)seed);
    long n;
    while ((n = fz_reader_read(r, inbuf, (size_t)batch, &err)) > 0) {
        for (long i = 0; i < n; i++) {
            const unsigned char *row = inbuf + (size_t)i * in->row_size;
            const float *xi = inplace ? (const float *)(const void *)(row + xf->offset) : x + (size_t)i * D;
            if (!inplace) fz_field_to_f32(xf, row, x + (size_t)i * D);
            ptrdiff_t bad = fz_first_nonfinite(xi, D);
            if (bad >= 0) {
                fz_fail(&err, FZ_EDATA, "%s: row %llu has a non-finite value in '%s' at index %td",
                        fz_reader_name(r),
                        (unsigned long long)(fz_reader_rows(r) - (uint64_t)n + (uint64_t)i), field, bad);
                goto fail;
            }
        }
        /* h (n, E): mu, then for a vae the sigma parameter s, in each row */
        const float *h = inplace ? fz_net_forward_ld(&m.enc, (const float *)(const void *)(inbuf + xf->offset),
                                                     in->row_size / 4, (int)n)
                                 : fz_net_forward(&m.enc, x, (int)n, 0, NULL);
        for (long i = 0; i < n; i++) {
            unsigned char *orow = outbuf + (size_t)i * out.row_size;
            fz_rowmap_copy(&map, inbuf + (size_t)i * in->row_size, orow);
            for (int k = 0; k < Z; k++) {
                float mv = h[(size_t)i * E + k], zv = mv;
                fz_field_set(&out.field[mu_i], orow, (size_t)k, mv);
                if (vae) {
                    double sigma = fz_sigma(m.arch.sigma, h[(size_t)i * E + Z + k]);
                    fz_field_set(&out.field[lv_i], orow, (size_t)k, 2.0 * log(sigma));
                    if (sample) zv = (float)(mv + sigma * fz_rng_normal(&rng));
                }
                fz_field_set(&out.field[z_i], orow, (size_t)k, zv);
                if (conf) {
                    double sd = conf == 1 ? m.latent_std[k] : m.latent_rms;
                    fz_field_set(&out.field[sg_i], orow, (size_t)k,
                                 sd > 0 ? (mv - m.latent_mean[k]) / sd : 0.0);
                }
            }
        }
        if (fz_writer_write(w, outbuf, (size_t)n, &err)) goto fail;
    }
    if (n < 0) goto fail;
    fz_writer *done = w;
    w = NULL;
    rc = fz_writer_close(done, &err) ? fail(&err) : 0;
    goto out;
fail:
    rc = fail(&err);
out:
    if (w) fz_writer_abort(w);
    fz_reader_close(r);
    fz_model_free(&m);
    free(inbuf);
    free(outbuf);
    free(x);
    return rc;
bad:
    fprintf(stderr, "%s: %s\n", prog, err.msg);
    return 2;
}
