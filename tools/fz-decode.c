/* fz-decode - model + latent stream (or a latent generator) -> reconstruction stream. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "json.h"
#include "model.h"
#include "stream.h"
#include "train.h"

static const char *prog = "fz-decode";

static void usage(FILE *to)
{
    fprintf(to, "usage: fz-decode -i model [-f field] [-d fields] [-B batch] [-t threads] [-o out]\n"
                "                 [--sample N [-s seed] | --grid K | --line A:B | --path P1:P2:... |\n"
                "                  --between ID1,ID2] [--steps N] [in]\n");
}

static void help(void)
{
    usage(stdout);
    printf("\nDecode latent codes with a trained model (evaluation mode). Reads a latent stream\n"
           "(field z, or mu when there is no z) and adds the field xhat, the reconstruction, of\n"
           "the model's input shape; every input field is passed through.\n"
           "\nGenerators (no input stream; rows {id, z, xhat}):\n"
           "  --sample N     N codes drawn from N(0, I) (seed -s, default 0)\n"
           "  --grid K       K x K grid through the inverse normal CDF at 0.05..0.95 in the\n"
           "                 first two latent dimensions (others 0), row by row: row i has\n"
           "                 z[1] = ppf(p_i), column j has z[0] = ppf(p_j)\n"
           "  --line A:B     straight line from A to B (comma-separated coordinates)\n"
           "  --path P1:P2:...  through waypoints, --steps points per segment\n"
           "  --between I,J  (with an input latent stream) the line between the codes of the rows\n"
           "                 whose id is I and J\n"
           "  --steps N      points on a line or segment, ends included (default 11)\n"
           "\nOther options:\n"
           "  -i model  model file (required)      -f field  latent field to decode\n"
           "  -d fields drop these input fields    -B batch  rows at a time (default 256)\n"
           "  -t threads threads (default: cores)  -o out    output (default: standard output)\n"
           "  -h        this help\n"
           "\nExit 0 ok, 1 data or runtime error, 2 usage.\n");
}

static int fail(const fz_err *err)
{
    if (err->code == FZ_EPIPE) return 0;
    fprintf(stderr, "%s: %s\n", prog, err->msg);
    return 1;
}

/* "0.5,-1" -> Z floats. */
static int parse_point(const char *s, int Z, float *out, fz_err *err)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", s);
    int k = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        double v;
        if (k >= Z) return fz_fail(err, FZ_EUSAGE, "point '%s' has more than %d coordinates", s, Z);
        if (fz_parse_double(tok, -1e6, 1e6, &v, "coordinate", err)) return -1;
        out[k++] = (float)v;
    }
    if (k != Z) return fz_fail(err, FZ_EUSAGE, "point '%s' has %d coordinates, the latent space %d", s, k, Z);
    return 0;
}

/* Codes of a generator: (n, Z), caller frees. */
static float *generate(const char *mode, const char *arg, int Z, long steps, long seed, size_t *n,
                       fz_err *err)
{
    float *z = NULL;
    if (strcmp(mode, "sample") == 0) {
        long N;
        if (fz_parse_long(arg, 1, 10000000, &N, "--sample", err)) return NULL;
        z = malloc((size_t)N * Z * sizeof(float));
        if (!z) goto oom;
        fz_rng rng;
        fz_rng_seed(&rng, (uint64_t)seed);
        for (size_t i = 0; i < (size_t)N * Z; i++) z[i] = (float)fz_rng_normal(&rng);
        *n = (size_t)N;
    } else if (strcmp(mode, "grid") == 0) {
        long K;
        if (fz_parse_long(arg, 1, 1000, &K, "--grid", err)) return NULL;
        z = calloc((size_t)(K * K) * Z, sizeof(float));
        if (!z) goto oom;
        for (long i = 0; i < K; i++)
            for (long j = 0; j < K; j++) {
                double pi = K == 1 ? 0.5 : 0.05 + 0.9 * i / (K - 1);
                double pj = K == 1 ? 0.5 : 0.05 + 0.9 * j / (K - 1);
                float *p = z + (size_t)(i * K + j) * Z;
                p[0] = (float)fz_norm_ppf(pj);
                if (Z > 1) p[1] = (float)fz_norm_ppf(pi);
            }
        *n = (size_t)(K * K);
    } else { /* line or path: waypoints separated by ':' */
        char buf[8192];
        snprintf(buf, sizeof buf, "%s", arg);
        float pts[64][64];
        int np = 0;
        if (Z > 64) {
            fz_fail(err, FZ_EUSAGE, "--%s supports latent sizes up to 64", mode);
            return NULL;
        }
        char *save = NULL;
        for (char *tok = strtok_r(buf, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
            if (np >= 64) {
                fz_fail(err, FZ_EUSAGE, "at most 64 waypoints");
                return NULL;
            }
            if (parse_point(tok, Z, pts[np++], err)) return NULL;
        }
        if (np < 2 || (strcmp(mode, "line") == 0 && np != 2)) {
            fz_fail(err, FZ_EUSAGE, "--%s needs %s points separated by ':'", mode,
                    strcmp(mode, "line") == 0 ? "two" : "at least two");
            return NULL;
        }
        size_t total = (size_t)(np - 1) * (size_t)(steps - 1) + 1;
        z = malloc(total * Z * sizeof(float));
        if (!z) goto oom;
        size_t r = 0;
        for (int s = 0; s + 1 < np; s++)
            for (long t = (s == 0 ? 0 : 1); t < steps; t++) {
                double a = (double)t / (double)(steps - 1);
                for (int k = 0; k < Z; k++) z[r * Z + k] = (float)((1 - a) * pts[s][k] + a * pts[s + 1][k]);
                r++;
            }
        *n = r;
    }
    return z;
oom:
    fz_fail(err, FZ_ENOMEM, "out of memory");
    return NULL;
}

/* --between: read the latent stream, find the two ids, return the line between them. */
static float *between(const char *in_path, const char *field, const char *ids, int Z, long steps,
                      char **meta, size_t *n, fz_err *err)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", ids);
    char *comma = strchr(buf, ',');
    long id[2];
    if (!comma) {
        fz_fail(err, FZ_EUSAGE, "--between: expected ID1,ID2");
        return NULL;
    }
    *comma = '\0';
    if (fz_parse_long(buf, 0, 2147483647L, &id[0], "--between", err) ||
        fz_parse_long(comma + 1, 0, 2147483647L, &id[1], "--between", err))
        return NULL;
    fz_reader *r = fz_reader_open(in_path, err);
    if (!r) return NULL;
    const fz_schema *s = fz_reader_schema(r);
    int fi = fz_schema_find(s, field), ii = fz_schema_find(s, "id");
    float a[2][64];
    int found[2] = {0, 0};
    if (fi < 0 || ii < 0 || s->field[fi].count != (size_t)Z || Z > 64) {
        fz_fail(err, FZ_EDATA, "%s: --between needs fields 'id' and '%s' of %d values", fz_reader_name(r),
                field, Z);
        fz_reader_close(r);
        return NULL;
    }
    unsigned char *row = malloc(s->row_size);
    long k;
    while (row && (k = fz_reader_read(r, row, 1, err)) > 0) {
        double v = fz_field_get(&s->field[ii], row, 0);
        for (int e = 0; e < 2; e++)
            if (!found[e] && v == (double)id[e]) {
                fz_field_to_f32(&s->field[fi], row, a[e]);
                found[e] = 1;
            }
    }
    free(row);
    *meta = strdup(fz_reader_meta(r));
    fz_reader_close(r);
    if (!found[0] || !found[1]) {
        fz_fail(err, FZ_EDATA, "%s: no row with id %ld", fz_in_name(in_path), found[0] ? id[1] : id[0]);
        return NULL;
    }
    float *z = malloc((size_t)steps * Z * sizeof(float));
    if (!z) {
        fz_fail(err, FZ_ENOMEM, "out of memory");
        return NULL;
    }
    for (long t = 0; t < steps; t++) {
        double u = (double)t / (double)(steps - 1);
        for (int j = 0; j < Z; j++) z[t * Z + j] = (float)((1 - u) * a[0][j] + u * a[1][j]);
    }
    *n = (size_t)steps;
    return z;
}

/* Metadata of a generated stream: what a stream read from data carries (fz-stream(5)), so
 * that fz-info, fz-plot and fz-eval name classes and features and know the normalisation
 * as for decoded data: "fz_stream", "source" (how the codes were made), "rows", then the
 * keys of the input stream's metadata (--between) and those the model brought from its
 * training stream ("classes", "features", "norm", "outputs", "attributes"). NULL when out
 * of memory. */
static char *generated_meta(const fz_model *m, const char *model_path, const char *in_meta,
                            const char *source, size_t n)
{
    static const char *const own[] = {"fz_stream", "source", "rows", NULL};
    static const char *const from_model[] = {"classes", "features", "norm", "outputs",
                                             "attributes", NULL};
    fz_err err;
    fz_json *in = in_meta ? fz_json_parse(in_meta, strlen(in_meta), &err) : NULL;
    if (in && fz_json_type(in) != FZ_JOBJ) {
        fz_json_free(in);
        in = NULL;
    }
    fz_sbuf b;
    fz_sbuf_init(&b);
    fz_sbuf_printf(&b, "{\"fz_stream\":1,\"source\":");
    char src[8192];
    snprintf(src, sizeof src, "%.4000s (model %.4000s)", source, fz_in_name(model_path));
    fz_sbuf_json_str(&b, src);
    fz_sbuf_printf(&b, ",\"rows\":%zu", n);
    for (size_t i = 0; in && i < fz_json_len(in); i++) {
        const char *k = fz_json_key_at(in, i);
        int skip = 0;
        for (const char *const *o = own; *o && !skip; o++) skip = strcmp(k, *o) == 0;
        if (skip) continue;
        fz_sbuf_putc(&b, ',');
        fz_sbuf_json_str(&b, k);
        fz_sbuf_putc(&b, ':');
        fz_sbuf_json_node(&b, fz_json_at(in, i));
    }
    for (const char *const *k = from_model; *k; k++) {
        const char *v = fz_model_meta(m, *k);
        if (!v || (in && fz_json_get(in, *k))) continue;
        fz_json *j = fz_json_parse(v, strlen(v), &err);
        if (!j) continue; /* not JSON: left out rather than passed on broken */
        fz_sbuf_putc(&b, ',');
        fz_sbuf_json_str(&b, *k);
        fz_sbuf_putc(&b, ':');
        fz_sbuf_json_node(&b, j);
        fz_json_free(j);
    }
    fz_sbuf_putc(&b, '}');
    fz_json_free(in);
    return fz_sbuf_take(&b);
}

/* Decode generated codes z (n, Z) to rows {id, z, xhat}. */
static int write_generated(fz_model *m, const float *z, size_t n, long batch, const char *meta,
                           const char *out_path, fz_err *err)
{
    int Z = fz_model_latent(m);
    fz_schema out;
    fz_schema_init(&out);
    int64_t zs[1] = {Z}, xs[3] = {m->in.c, m->in.h, m->in.w};
    int xnd = (m->in.h == 1 && m->in.w == 1) ? 1 : 3;
    if (fz_schema_add(&out, "id", FZ_U8, 0, 0, NULL, err) ||
        fz_schema_add(&out, "z", FZ_F4, 0, 1, zs, err) ||
        fz_schema_add(&out, "xhat", FZ_F4, 0, xnd, xs, err))
        return -1;
    fz_writer *w = fz_writer_open(out_path, &out, meta, 0, err);
    if (!w) return -1;
    unsigned char *rows = malloc((size_t)batch * out.row_size);
    if (!rows) {
        fz_writer_abort(w);
        return fz_fail(err, FZ_ENOMEM, "out of memory");
    }
    for (size_t start = 0; start < n; start += (size_t)batch) {
        int B = (int)(n - start < (size_t)batch ? n - start : (size_t)batch);
        const float *xhat = fz_model_decode(m, z + start * Z, B);
        for (int i = 0; i < B; i++) {
            unsigned char *row = rows + (size_t)i * out.row_size;
            fz_field_set(&out.field[0], row, 0, (double)(start + (size_t)i));
            memcpy(row + out.field[1].offset, z + (start + (size_t)i) * Z, (size_t)Z * sizeof(float));
            memcpy(row + out.field[2].offset, xhat + (size_t)i * m->in_count, m->in_count * sizeof(float));
        }
        if (fz_writer_write(w, rows, (size_t)B, err)) {
            free(rows);
            fz_writer_abort(w);
            return -1;
        }
    }
    free(rows);
    return fz_writer_close(w, err);
}

/* Decode the latent field of every row of a stream, adding xhat. */
static int decode_stream(fz_model *m, const char *in_path, const char *field, char *drop_list,
                         long batch, const char *out_path, fz_err *err)
{
    fz_reader *r = fz_reader_open(in_path, err);
    if (!r) return -1;
    const fz_schema *in = fz_reader_schema(r);
    int Z = fz_model_latent(m);
    if (!field) field = fz_schema_find(in, "z") >= 0 ? "z" : "mu";
    int fi = fz_schema_find(in, field);
    if (fi < 0 || in->field[fi].count != (size_t)Z || in->field[fi].type == FZ_BYTES) {
        if (fi < 0) fz_fail(err, FZ_EDATA, "%s: no latent field '%s' in the stream", fz_reader_name(r), field);
        else fz_fail(err, FZ_EDATA, "%s: field '%s' has %zu values, the model's latent size is %d",
                     fz_reader_name(r), field, in->field[fi].count, Z);
        fz_reader_close(r);
        return -1;
    }
    const char *drop[FZ_MAX_FIELDS + 2];
    int nd = drop_list ? fz_split_names(drop_list, drop, FZ_MAX_FIELDS) : 0;
    drop[nd++] = "xhat";
    drop[nd] = NULL;
    fz_schema out;
    fz_rowmap map;
    int64_t xs[3] = {m->in.c, m->in.h, m->in.w};
    int xnd = (m->in.h == 1 && m->in.w == 1) ? 1 : 3;
    if (fz_rowmap_build(&map, in, &out, drop, err) || fz_schema_add(&out, "xhat", FZ_F4, 0, xnd, xs, err)) {
        fz_reader_close(r);
        return -1;
    }
    const fz_field *xf = &out.field[fz_schema_find(&out, "xhat")];
    fz_writer *w = fz_writer_open(out_path, &out, fz_reader_meta(r), 0, err);
    unsigned char *inbuf = malloc((size_t)batch * in->row_size + 1);
    unsigned char *outbuf = malloc((size_t)batch * out.row_size + 1);
    float *z = malloc((size_t)batch * Z * sizeof(float));
    int rc = -1;
    if (!w || !inbuf || !outbuf || !z) {
        if (w) fz_fail(err, FZ_ENOMEM, "out of memory");
        goto out;
    }
    long n;
    while ((n = fz_reader_read(r, inbuf, (size_t)batch, err)) > 0) {
        for (long i = 0; i < n; i++) {
            fz_field_to_f32(&in->field[fi], inbuf + (size_t)i * in->row_size, z + (size_t)i * Z);
            if (fz_first_nonfinite(z + (size_t)i * Z, (size_t)Z) >= 0) {
                fz_fail(err, FZ_EDATA, "%s: row %llu has a non-finite latent code", fz_reader_name(r),
                        (unsigned long long)(fz_reader_rows(r) - (uint64_t)n + (uint64_t)i));
                goto out;
            }
        }
        const float *xhat = fz_model_decode(m, z, (int)n);
        for (long i = 0; i < n; i++) {
            unsigned char *orow = outbuf + (size_t)i * out.row_size;
            fz_rowmap_copy(&map, inbuf + (size_t)i * in->row_size, orow);
            memcpy(orow + xf->offset, xhat + (size_t)i * m->in_count, m->in_count * sizeof(float));
        }
        if (fz_writer_write(w, outbuf, (size_t)n, err)) goto out;
    }
    if (n < 0) goto out;
    rc = fz_writer_close(w, err);
    w = NULL;
out:
    if (w) fz_writer_abort(w);
    fz_reader_close(r);
    free(inbuf);
    free(outbuf);
    free(z);
    return rc;
}

int main(int argc, char **argv)
{
    int switched = fz_blas_init(argc, argv);
    fz_blas_ftz(1);
    signal(SIGPIPE, SIG_IGN);
    static const struct option longopts[] = {
        {"sample", required_argument, 0, 'S'}, {"grid", required_argument, 0, 'G'},
        {"line", required_argument, 0, 'L'},   {"path", required_argument, 0, 'P'},
        {"between", required_argument, 0, 'W'}, {"steps", required_argument, 0, 'n'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *model_path = NULL, *out_path = NULL, *field = NULL, *gen = NULL, *gen_arg = NULL;
    char *drop_list = NULL;
    long seed = 0, batch = 256, threads = 0, steps = 11;
    int c;
    fz_err err;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "i:f:d:B:t:o:s:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'i': model_path = optarg; break;
        case 'f': field = optarg; break;
        case 'd': drop_list = optarg; break;
        case 'B': if (fz_parse_long(optarg, 1, 65536, &batch, "-B", &err)) goto bad; break;
        case 't': if (fz_parse_long(optarg, 1, 256, &threads, "-t", &err)) goto bad; break;
        case 'o': out_path = optarg; break;
        case 's': if (fz_parse_long(optarg, 0, 2147483647L, &seed, "-s", &err)) goto bad; break;
        case 'n': if (fz_parse_long(optarg, 2, 100000, &steps, "--steps", &err)) goto bad; break;
        case 'S': gen = "sample"; gen_arg = optarg; break;
        case 'G': gen = "grid"; gen_arg = optarg; break;
        case 'L': gen = "line"; gen_arg = optarg; break;
        case 'P': gen = "path"; gen_arg = optarg; break;
        case 'W': gen = "between"; gen_arg = optarg; break;
        case 'h': help(); return 0;
        default: usage(stderr); return 2;
        }
    }
    int inputs = argc - optind;
    if (!model_path || inputs > 1 || (gen && strcmp(gen, "between") != 0 && inputs)) {
        usage(stderr);
        return 2;
    }
    if (switched && fz_blas_selfcheck(&err)) return fail(&err);
    if (threads) fz_blas_set_threads((int)threads);
    fz_model m;
    if (fz_model_load(&m, model_path, &err)) return fail(&err);
    if (fz_model_reserve(&m, (int)batch, &err)) return fail(&err);
    int rc = 0;
    const char *in_path = inputs ? argv[optind] : "-";
    if (!gen) {
        rc = decode_stream(&m, in_path, field, drop_list, batch, out_path, &err) ? fail(&err) : 0;
    } else {
        size_t n = 0;
        char *meta = NULL;
        float *z = strcmp(gen, "between") == 0
                       ? between(in_path, field ? field : "mu", gen_arg, fz_model_latent(&m), steps,
                                 &meta, &n, &err)
                       : generate(gen, gen_arg, fz_model_latent(&m), steps, seed, &n, &err);
        if (!z) {
            fz_model_free(&m);
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            return err.code == FZ_EUSAGE ? 2 : 1;
        }
        char source[4096];
        if (strcmp(gen, "sample") == 0)
            snprintf(source, sizeof source, "fz-decode --sample %s -s %ld", gen_arg, seed);
        else if (strcmp(gen, "grid") == 0)
            snprintf(source, sizeof source, "fz-decode --grid %s", gen_arg);
        else
            snprintf(source, sizeof source, "fz-decode --%s %.3000s --steps %ld", gen, gen_arg,
                     steps);
        char *gmeta = generated_meta(&m, model_path, meta, source, n);
        free(meta);
        if (!gmeta) {
            free(z);
            fz_model_free(&m);
            fprintf(stderr, "%s: out of memory\n", prog);
            return 1;
        }
        rc = write_generated(&m, z, n, batch, gmeta, out_path, &err) ? fail(&err) : 0;
        free(z);
        free(gmeta);
    }
    fz_model_free(&m);
    return rc;
bad:
    fprintf(stderr, "%s: %s\n", prog, err.msg);
    return 2;
}
