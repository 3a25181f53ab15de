/* fz-info - show what a stream holds: metadata, fields, row count, per-field statistics,
 * and the first rows as text; or what a model file holds: architecture, layers, parameter
 * count, metadata, checksum and the memory training it needs. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "model.h"
#include "safetensors.h"
#include "stream.h"

static const char *prog = "fz-info";
enum { DEFAULT_BATCH = 256 }; /* the batch of most presets */

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [-H] [-n rows] [-w values] [-B batch] [-t fields] [file ...]\n",
            prog);
}

static void help(long nrows, long width)
{
    usage(stdout);
    printf("\nShow a stream's metadata, fields (dtype, shape), row count, per-field\n"
           "min/max/mean and count of non-finite values, and its first rows; or, for a\n"
           "model file (safetensors, as fz-train writes), its architecture, layers,\n"
           "parameter count, metadata, checksum and the memory training it needs.\n\n"
           "Streams:\n"
           "  -n rows    rows to print (default %ld; 0 prints none)\n"
           "  -w values  values printed per field and row before '...' (default %ld)\n"
           "  -H         header only: metadata and fields, no scan of the rows\n"
           "  -t fields  instead, every row as a line of tab-separated values of these\n"
           "             fields (comma-separated; an array field gives one column per\n"
           "             value, named field[i]), after a header line\n"
           "Models:\n"
           "  -B batch   batch size of the training memory figure (default: the batch of\n"
           "             the model's training configuration, else %d)\n\n"
           "  -h         this help\n\n"
           "With no file, or '-', reads a stream from standard input. Exit 0 ok, 1 bad\n"
           "stream or model, 2 usage.\n",
           nrows, width, DEFAULT_BATCH);
}

typedef struct field_stats {
    double min, max, sum;
    uint64_t n, nonfinite;
} field_stats;

static void print_value(const fz_field *f, const unsigned char *row, size_t i)
{
    double v = fz_field_get(f, row, i);
    if (f->type == FZ_F4 || f->type == FZ_F8)
        printf("%.6g", v);
    else
        printf("%.0f", v);
}

static void print_row(const fz_schema *s, const unsigned char *row, long width)
{
    for (int k = 0; k < s->nfields; k++) {
        const fz_field *f = &s->field[k];
        printf("%s%s=", k ? "  " : "  ", f->name);
        if (f->type == FZ_BYTES) {
            const char *p = (const char *)row + f->offset;
            printf("'%.*s'", (int)strnlen(p, f->elem_size), p);
            continue;
        }
        if (f->ndim == 0) {
            print_value(f, row, 0);
            continue;
        }
        putchar('[');
        size_t shown = f->count < (size_t)width ? f->count : (size_t)width;
        for (size_t i = 0; i < shown; i++) {
            if (i) fputs(", ", stdout);
            print_value(f, row, i);
        }
        if (shown < f->count) printf(", ... (%zu values)", f->count);
        putchar(']');
    }
    putchar('\n');
}

/* A text field's bytes, up to its first NUL, with tabs and line ends as spaces. */
static void put_text(const char *p, size_t n)
{
    for (size_t i = 0; i < n && p[i]; i++)
        putchar(p[i] == '\t' || p[i] == '\n' || p[i] == '\r' ? ' ' : p[i]);
}

/* -t: the named fields of every row as TSV, with a header line. */
static int tsv(const char *path, const char *list)
{
    fz_err err;
    fz_reader *r = fz_reader_open(path, &err);
    if (!r) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 1;
    }
    const fz_schema *s = fz_reader_schema(r);
    int pick[FZ_MAX_FIELDS], npick = 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        int k = 0;
        while (k < s->nfields && (strlen(s->field[k].name) != n || memcmp(s->field[k].name, p, n)))
            k++;
        if (k == s->nfields || npick == FZ_MAX_FIELDS) {
            fprintf(stderr, "%s: %s: no field '%.*s'\n", prog, fz_reader_name(r), (int)n, p);
            fz_reader_close(r);
            return 1;
        }
        pick[npick++] = k;
        p += n + (p[n] == ',');
    }
    for (int j = 0; j < npick; j++) {
        const fz_field *f = &s->field[pick[j]];
        if (f->ndim == 0 || f->type == FZ_BYTES)
            printf("%s%s", j ? "\t" : "", f->name);
        else
            for (size_t i = 0; i < f->count; i++) printf("%s%s[%zu]", j || i ? "\t" : "", f->name, i);
    }
    putchar('\n');
    size_t batch = s->row_size ? ((size_t)1 << 20) / s->row_size : 1024;
    if (batch < 1) batch = 1;
    unsigned char *buf = malloc(batch * s->row_size + 1);
    if (!buf) {
        fprintf(stderr, "%s: out of memory\n", prog);
        fz_reader_close(r);
        return 1;
    }
    long n;
    while ((n = fz_reader_read(r, buf, batch, &err)) > 0 && !ferror(stdout)) {
        for (long i = 0; i < n; i++) {
            const unsigned char *row = buf + (size_t)i * s->row_size;
            for (int j = 0; j < npick; j++) {
                const fz_field *f = &s->field[pick[j]];
                if (j) putchar('\t');
                if (f->type == FZ_BYTES) {
                    put_text((const char *)row + f->offset, f->elem_size);
                    continue;
                }
                for (size_t v = 0; v < f->count; v++) {
                    if (v) putchar('\t');
                    double x = fz_field_get(f, row, v);
                    if (f->type == FZ_F4 || f->type == FZ_F8)
                        printf("%.9g", x);
                    else
                        printf("%.0f", x);
                }
            }
            putchar('\n');
        }
    }
    free(buf);
    int rc = 0;
    if (n < 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        rc = 1;
    }
    fz_reader_close(r);
    return rc;
}

/* ---- models ---- */

/* A model is a regular file that does not start with the .npy magic and either has '{'
 * at byte 8 (after the safetensors header length) or is named *.st or *.safetensors, so
 * that a truncated model still reaches the model loader and its message. Pipes and
 * standard input are always streams: peeking would eat their first bytes. */
static int is_model(const char *path)
{
    struct stat sb;
    if (!path || strcmp(path, "-") == 0 || stat(path, &sb) || !S_ISREG(sb.st_mode)) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char b[9];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n >= 6 && memcmp(b, "\x93NUMPY", 6) == 0) return 0;
    if (n == 9 && b[8] == '{') return 1;
    size_t len = strlen(path);
    return (len > 3 && strcmp(path + len - 3, ".st") == 0) ||
           (len > 12 && strcmp(path + len - 12, ".safetensors") == 0);
}

/* "1,234,567" */
static const char *grouped(size_t v, char *buf, size_t cap)
{
    char raw[32];
    int n = snprintf(raw, sizeof raw, "%zu", v), j = 0;
    for (int i = 0; i < n && (size_t)j + 2 < cap; i++) {
        if (i && (n - i) % 3 == 0) buf[j++] = ',';
        buf[j++] = raw[i];
    }
    buf[j] = 0;
    return buf;
}

/* "941,584 bytes (0.90 MiB)" */
static void print_bytes(size_t v)
{
    char g[40];
    printf("%s bytes (%.2f MiB)", grouped(v, g, sizeof g), (double)v / (1 << 20));
}

/* One JSON value as plain text into b: a string without quotes, a number as %g, anything
 * else as compact JSON. */
static void json_plain(fz_sbuf *b, const fz_json *j)
{
    if (fz_json_type(j) == FZ_JSTR) fz_sbuf_printf(b, "%s", fz_json_str(j));
    else if (fz_json_type(j) == FZ_JNUM) fz_sbuf_printf(b, "%.6g", fz_json_num(j, 0));
    else fz_sbuf_json_node(b, j);
}

/* A metadata value after its label: a JSON array as "N: a, b, c" (at most 32 shown), an
 * object as "key value" pairs wrapped under the label, anything else as it is stored. */
static void print_meta(const char *label, const char *text)
{
    fz_err err;
    fz_json *j = fz_json_parse(text, strlen(text), &err);
    fz_sbuf b;
    fz_sbuf_init(&b);
    if (j && fz_json_type(j) == FZ_JARR) {
        size_t n = fz_json_len(j), shown = n < 32 ? n : 32;
        fz_sbuf_printf(&b, "%zu:", n);
        for (size_t i = 0; i < shown; i++) {
            fz_sbuf_printf(&b, "%s ", i ? "," : "");
            json_plain(&b, fz_json_at(j, i));
        }
        if (shown < n) fz_sbuf_printf(&b, ", ...");
    } else if (j && fz_json_type(j) == FZ_JOBJ) {
        size_t line = 0; /* where the current line starts in b */
        for (size_t i = 0; i < fz_json_len(j); i++) {
            size_t at = b.len;
            fz_sbuf_printf(&b, "%s%s ", at > line ? "  " : "", fz_json_key_at(j, i));
            json_plain(&b, fz_json_at(j, i));
            if (at > line && b.len - line > 66 && !b.failed) {
                /* too long: the pair starts the next line, under the first */
                char *pair = strdup(b.buf + at + 2);
                b.len = at;
                fz_sbuf_printf(&b, "\n%12s%s", "", pair ? pair : "");
                line = at + 1;
                free(pair);
            }
        }
    } else {
        fz_sbuf_printf(&b, "%s", text);
    }
    printf("%-12s%s\n", label, b.failed || !b.buf ? text : b.buf);
    fz_sbuf_free(&b);
    fz_json_free(j);
}

/* A layer's kind with the hyper-parameters its output shape does not show. */
static void layer_name(const fz_layer *L, char *buf, size_t cap)
{
    const char *k = fz_layer_kind_name(L->kind);
    switch (L->kind) {
    case FZ_CONV2D:
    case FZ_CONVT2D: {
        int n = snprintf(buf, cap, "%s k%d s%d p%d", k, L->k, L->stride, L->pad);
        if (L->out_pad && n > 0 && (size_t)n < cap)
            snprintf(buf + n, cap - (size_t)n, " op%d", L->out_pad);
        break;
    }
    case FZ_LEAKYRELU: snprintf(buf, cap, "%s(%g)", k, L->slope); break;
    case FZ_DROPOUT: snprintf(buf, cap, "%s(%g)", k, L->p); break;
    default: snprintf(buf, cap, "%s", k);
    }
}

static void print_net(const char *what, const fz_net *net)
{
    char a[64], b[64], g[40];
    printf("%-12s%s -> %s, %d layers, %s parameters\n", what,
           fz_model_shape_str(net->in, a, sizeof a), fz_model_shape_str(net->out, b, sizeof b),
           net->n, grouped(net->nparams, g, sizeof g));
    printf("  %3s  %-26s %-16s %12s\n", "#", "layer", "output", "parameters");
    for (int i = 0; i < net->n; i++) {
        const fz_layer *L = &net->layers[i];
        layer_name(L, a, sizeof a);
        printf("  %3d  %-26s %-16s %12s\n", i, a, fz_model_shape_str(L->out, b, sizeof b),
               grouped(fz_layer_nparams(L), g, sizeof g));
    }
}

/* The batch of the model's training configuration, else DEFAULT_BATCH. */
static int stored_batch(const fz_model *m)
{
    const char *tr = fz_model_meta(m, "train");
    fz_err err;
    fz_json *j = tr ? fz_json_parse(tr, strlen(tr), &err) : NULL;
    double v = fz_json_num(fz_json_get(j, "batch"), 0);
    fz_json_free(j);
    return v >= 1 && v <= (1 << 20) && v == floor(v) ? (int)v : DEFAULT_BATCH;
}

static int model_info(const char *path, long batch)
{
    fz_err err;
    /* The file through the safetensors loader first (its checks and checksum, and the
     * figures of the file itself), then through the model loader (shapes, finiteness). */
    fz_st_file *f = fz_st_load(path, &err);
    if (!f) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 1;
    }
    int ntensors = fz_st_count(f);
    size_t data = 0;
    for (int i = 0; i < ntensors; i++) data += fz_st_get(f, i)->nbytes;
    char sum[64] = "";
    if (fz_st_meta(f, "fz_checksum")) snprintf(sum, sizeof sum, "%s", fz_st_meta(f, "fz_checksum"));
    fz_st_free(f); /* not held twice: a model's file can be hundreds of MB */
    fz_model m;
    if (fz_model_load(&m, path, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 1;
    }
    int B = batch > 0 ? (int)batch : stored_batch(&m);
    fz_model_mem mem;
    if (fz_model_memory(&m, B, &mem, &err)) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, err.msg);
        fz_model_free(&m);
        return 1;
    }
    char a[64], g[40];

    printf("model:      %s\n", path);
    printf("kind:       %s\n", m.arch.kind == FZ_KIND_VAE ? "vae" : "ae");
    printf("arch:\n");
    for (const char *p = m.arch_text; *p;) {
        size_t n = strcspn(p, "\n");
        if (n) printf("  %.*s\n", (int)n, p);
        p += n + (p[n] == '\n');
    }
    printf("input:      %s, %zu values\n", fz_model_shape_str(m.in, a, sizeof a), m.in_count);
    printf("latent:     %d\n", fz_model_latent(&m));
    print_net("encoder:", &m.enc);
    print_net("decoder:", &m.dec);
    if (m.has_head) print_net("head:", &m.head);
    if (m.has_fuzzy) {
        int active = 0;
        for (int k = 0; k < m.fuzzy.K; k++) active += m.fuzzy.active[k] != 0;
        printf("fuzzy:      %s, %d terms (%d active) on %d latent dimensions, %s parameters\n",
               fz_mf_kind_name(m.fuzzy.kind), m.fuzzy.K, active, m.fuzzy.n,
               grouped(fz_fuzzy_nparams(&m.fuzzy), g, sizeof g));
    } else {
        printf("fuzzy:      none\n");
    }
    printf("parameters: %s floats, ", grouped(m.nparams, g, sizeof g));
    print_bytes(mem.params);
    printf("\nbuffers:    %s floats (BatchNorm running statistics)\n",
           grouped(m.nbuffers, g, sizeof g));
    static const char *const lists[] = {"classes", "outputs", "features", "attributes", "norm",
                                        NULL};
    for (const char *const *k = lists; *k; k++) {
        const char *v = fz_model_meta(&m, *k);
        char label[32];
        snprintf(label, sizeof label, "%s:", *k);
        if (v) print_meta(label, v);
        else if (strcmp(*k, "features") && strcmp(*k, "attributes")) printf("%-12snone\n", label);
    }
    const char *tr = fz_model_meta(&m, "train");
    if (tr) print_meta("training:", tr);
    else printf("training:   no configuration stored\n");
    /* any other metadata, as stored */
    for (int i = 0; i < m.nmeta; i++) {
        const char *k = m.meta_key[i];
        int known = strcmp(k, "train") == 0;
        for (const char *const *l = lists; *l; l++) known |= strcmp(k, *l) == 0;
        if (!known) printf("%-12s%s\n", k, m.meta_val[i]);
    }
    printf("trained:    epoch %ld, step %ld\n", m.epoch, m.step);
    if (m.opt_state)
        printf("optimiser:  %s state stored, %s floats\n", m.opt_kind,
               grouped(m.opt_len, g, sizeof g));
    else
        printf("optimiser:  no state stored\n");
    if (m.latent_mean) printf("latent fit: mean and std of the training data's mu (rms %.4g)\n",
                              m.latent_rms);
    if (m.ref_scores) printf("references: %d anomaly score quantiles\n", m.nref);
    printf("file:       %d tensors, ", ntensors);
    print_bytes(data);
    printf(" of tensor data\n");
    if (*sum) printf("checksum:   %s of the tensor bytes, verified\n", sum);
    else printf("checksum:   none stored, not verified\n");
    printf("training memory at batch %d, besides the data:\n", B);
    printf("  %-19s", "4 x parameters");
    print_bytes(4 * mem.params);
    printf(": weights, gradients, Adam's two moments\n");
    printf("  %-19s", "largest workspace");
    print_bytes(mem.workspace);
    if (mem.ws_net) {
        const fz_net *net = strcmp(mem.ws_net, "encoder") == 0   ? &m.enc
                            : strcmp(mem.ws_net, "decoder") == 0 ? &m.dec
                                                                 : &m.head;
        printf(": %s layer %d, %s scratch\n", mem.ws_net, mem.ws_layer,
               fz_layer_kind_name(net->layers[mem.ws_layer].kind));
    } else {
        printf(": no layer needs scratch memory\n");
    }
    printf("  %-19s", "activations");
    print_bytes(mem.activations);
    printf(": layer outputs and gradients kept for backward\n");
    printf("  %-19s", "total");
    print_bytes(4 * mem.params + mem.workspace + mem.activations);
    putchar('\n');
    fz_model_free(&m);
    return 0;
}

static int info(const char *path, int header_only, long nrows, long width)
{
    fz_err err;
    fz_reader *r = fz_reader_open(path, &err);
    if (!r) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 1;
    }
    const fz_schema *s = fz_reader_schema(r);
    printf("stream:   %s\nmetadata: %s\n", fz_reader_name(r), fz_reader_meta(r));
    printf("row size: %zu bytes\n", s->row_size);

    field_stats st[FZ_MAX_FIELDS];
    for (int k = 0; k < s->nfields; k++) st[k] = (field_stats){INFINITY, -INFINITY, 0, 0, 0};
    int rc = 0;
    if (!header_only) {
        size_t batch = s->row_size ? ((size_t)1 << 20) / s->row_size : 1024;
        if (batch < 1) batch = 1;
        unsigned char *buf = malloc(batch * s->row_size + 1);
        if (!buf) {
            fprintf(stderr, "%s: out of memory\n", prog);
            fz_reader_close(r);
            return 1;
        }
        long n, printed = 0;
        if (nrows > 0) printf("first rows:\n");
        while ((n = fz_reader_read(r, buf, batch, &err)) > 0) {
            for (long i = 0; i < n; i++) {
                const unsigned char *row = buf + (size_t)i * s->row_size;
                if (printed < nrows) {
                    print_row(s, row, width);
                    printed++;
                }
                for (int k = 0; k < s->nfields; k++) {
                    const fz_field *f = &s->field[k];
                    if (f->type == FZ_BYTES) continue;
                    for (size_t j = 0; j < f->count; j++) {
                        double v = fz_field_get(f, row, j);
                        if (!isfinite(v)) {
                            st[k].nonfinite++;
                            continue;
                        }
                        if (v < st[k].min) st[k].min = v;
                        if (v > st[k].max) st[k].max = v;
                        st[k].sum += v;
                        st[k].n++;
                    }
                }
            }
        }
        free(buf);
        if (n < 0) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            rc = 1;
        }
        printf("rows:     %llu%s\n", (unsigned long long)fz_reader_rows(r),
               rc ? " (before the error)" : "");
    }
    printf("fields:\n  %-16s %-6s %-16s", "name", "dtype", "shape");
    if (!header_only) printf(" %12s %12s %12s %9s", "min", "max", "mean", "nonfinite");
    putchar('\n');
    for (int k = 0; k < s->nfields; k++) {
        const fz_field *f = &s->field[k];
        char dt[16], shp[128];
        printf("  %-16s %-6s %-16s", f->name, fz_dtype_name(f->type, f->elem_size, dt, sizeof dt),
               fz_field_shape_str(f, shp, sizeof shp));
        if (!header_only) {
            if (f->type == FZ_BYTES || st[k].n == 0)
                printf(" %12s %12s %12s", "-", "-", "-");
            else
                printf(" %12.6g %12.6g %12.6g", st[k].min, st[k].max, st[k].sum / (double)st[k].n);
            printf(" %9llu", (unsigned long long)st[k].nonfinite);
        }
        putchar('\n');
    }
    fz_reader_close(r);
    return rc;
}

int main(int argc, char **argv)
{
    long nrows = 5, width = 8, batch = 0;
    int header_only = 0, c;
    const char *tsv_fields = NULL;
    fz_err err;
    signal(SIGPIPE, SIG_IGN);
    opterr = 0; /* our own one-line usage message instead of getopt's */
    while ((c = getopt(argc, argv, "hHn:w:t:B:")) != -1) {
        switch (c) {
        case 'h': help(nrows, width); return 0;
        case 'H': header_only = 1; break;
        case 't':
            if (!*optarg) {
                fprintf(stderr, "%s: -t: no field named\n", prog);
                return 2;
            }
            tsv_fields = optarg;
            break;
        case 'n':
            if (fz_parse_long(optarg, 0, 1000000000, &nrows, "-n", &err)) goto bad;
            break;
        case 'w':
            if (fz_parse_long(optarg, 1, 1000000, &width, "-w", &err)) goto bad;
            break;
        case 'B':
            if (fz_parse_long(optarg, 1, 1 << 20, &batch, "-B", &err)) goto bad;
            break;
        default: usage(stderr); return 2;
        }
    }
    int rc = 0;
    if (tsv_fields) {
        if (argc - optind > 1) {
            fprintf(stderr, "%s: -t takes one stream\n", prog);
            return 2;
        }
        const char *path = optind < argc ? argv[optind] : NULL;
        if (is_model(path)) {
            fprintf(stderr, "%s: %s: a model, not a stream (-t reads streams)\n", prog, path);
            return 1;
        }
        rc = tsv(path, tsv_fields);
    } else {
        if (optind == argc) rc = info(NULL, header_only, nrows, width);
        for (int i = optind; i < argc; i++) {
            if (i > optind) putchar('\n');
            rc |= is_model(argv[i]) ? model_info(argv[i], batch)
                                    : info(argv[i], header_only, nrows, width);
        }
    }
    if (fflush(stdout) || ferror(stdout)) {
        if (fz_errno_code(errno) == FZ_EPIPE) return rc;
        fprintf(stderr, "%s: <stdout>: %s\n", prog, strerror(errno));
        return 1;
    }
    return rc;
bad:
    fprintf(stderr, "%s: %s\n", prog, err.msg);
    return 2;
}
