/* fz-mask - labels -> fuzzy-layer targets and masks: adds {target, mask} (nout outputs each:
 * the classes one-hot, then attributes defined from classes) and passes every other field
 * through. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "mask.h"
#include "stream.h"
#include "util.h"

static const char *prog = "fz-mask";
static const char *usage_line =
    "usage: fz-mask [-h] [-a FILE] [-k K] [-s SEED] [-o FILE] [options] [FILE]";

/* option values, with their defaults (printed by -h) */
static const char *opt_out = "-";
static long opt_k = 0;
static long opt_seed = 1;
static double opt_labeled = -1;      /* fraction of rows kept labeled; -1: all */
static long opt_labeled_count = -1;  /* exact number of rows kept labeled; -1: not asked */
static int opt_stratify = 0;
static double opt_redraw = 0;        /* 0: no "mask_redraw" */
/* attribute sources in command-line order: files (-a) and lines (--attr) */
#define MAX_SPECS 64
static struct { int is_file; const char *s; } specs[MAX_SPECS];
static int nspecs;
/* --only, --off, --positive, --negative, --hide: repeated options add to the list */
static fz_sbuf lists[5];

/* Run state at file scope: an error exit from anywhere leaves it reachable. */
static fz_mask mk;
static fz_reader *rd;
static fz_writer *wr;
static unsigned char *inbuf, *outbuf, *keep;
static float *tbuf, *mbuf; /* (nout) one row's target and mask, aligned */
static int32_t *labels;    /* (rows) exact mode: label, -1 when the row has none usable */
static char *meta;
static FILE *spool;

static void usage_msg(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "; %s\n", usage_line);
    exit(2);
}

static void cleanup(void)
{
    if (wr) fz_writer_abort(wr);
    wr = NULL;
    fz_reader_close(rd);
    rd = NULL;
    if (spool) fclose(spool);
    spool = NULL;
    fz_mask_free(&mk);
    for (int i = 0; i < 5; i++) fz_sbuf_free(&lists[i]);
    free(inbuf);
    free(outbuf);
    free(keep);
    free(tbuf);
    free(mbuf);
    free(labels);
    free(meta);
    inbuf = outbuf = keep = NULL;
    tbuf = mbuf = NULL;
    labels = NULL;
    meta = NULL;
}

static void die(const fz_err *err)
{
    int quiet = err->code == FZ_EPIPE; /* the reader went away: not an error */
    if (!quiet) fprintf(stderr, "%s: %s\n", prog, err->msg);
    cleanup();
    exit(quiet ? 0 : 1);
}

static void help(void)
{
    printf("%s\n\n", usage_line);
    printf("Add the fields target and mask ('<f4', one value per output: the classes one-hot,\n"
           "then attributes) to a stream with labels, for the fuzzy layer; mask 0 = the output\n"
           "does not count in the fuzzy loss. Every other field passes through.\n\n");
    printf("Outputs:\n"
           "  -k K                  number of classes, named 0 to K-1 when the metadata names none\n"
           "                        (default: the metadata's classes)\n"
           "  -a FILE               attributes from a spec file (--attributes), lines\n"
           "                        'NAME: CLASS CLASS ...' (repeatable; default: none)\n"
           "  --attr SPEC           one attribute line 'NAME: CLASS CLASS ...' (repeatable)\n");
    printf("\nLabeled rows (others get an all-zero mask):\n"
           "  --labeled F           keep labels on a fraction F of the rows, drawn per row from\n"
           "                        (seed, id) (default: all rows)\n"
           "  --labeled-count N     keep labels on exactly N rows (reads the whole stream first)\n"
           "  --stratify            the same share of each class (exact; reads the whole stream)\n"
           "                        (default: %s)\n"
           "  -s SEED               seed of the choice (default: %ld)\n"
           "  --hide LIST           rows of these classes count as unlabeled (default: none)\n"
           "  --redraw P            write \"mask_redraw\": P, the probability a row's labels are\n"
           "                        used in an epoch, for the trainer (default: off)\n",
           opt_stratify ? "on" : "off", opt_seed);
    printf("\nOutputs learning (LIST: output names separated by commas):\n"
           "  --only LIST           only these outputs learn; the others' mask is 0 (default: all)\n"
           "  --off LIST            these outputs never learn (default: none)\n"
           "  --positive LIST       these outputs learn from rows with target 1 only (default: none)\n"
           "  --negative LIST       these outputs learn from rows with target 0 only, \"surely\n"
           "                        not this\" (default: none)\n");
    printf("\nOutput:\n"
           "  -o FILE               output stream (default: %s)\n"
           "  -h                    this help\n"
           "\nExit 0 ok, 1 data or runtime error, 2 usage.\n",
           strcmp(opt_out, "-") == 0 ? "stdout" : opt_out);
    exit(0);
}

static void add_list(int which, const char *list)
{
    if (lists[which].len) fz_sbuf_putc(&lists[which], ',');
    fz_sbuf_printf(&lists[which], "%s", list);
}

static const char *list_or_null(int which) { return lists[which].len ? lists[which].buf : NULL; }

static int is_int_type(fz_dtype t) { return t >= FZ_U1 && t <= FZ_I8; }

/* A row id read exactly (a double would round ids above 2^53); signed ids as their bits. */
static uint64_t get_id(const fz_field *f, const unsigned char *row)
{
    const unsigned char *p = row + f->offset;
    uint64_t v = 0;
    for (size_t i = f->elem_size; i-- > 0;) v = (v << 8) | p[i];
    int is_signed = f->type == FZ_I1 || f->type == FZ_I2 || f->type == FZ_I4 || f->type == FZ_I8;
    if (is_signed && f->elem_size < 8 && (p[f->elem_size - 1] & 0x80))
        v |= ~(uint64_t)0 << (8 * f->elem_size);
    return v;
}

/* A temporary file for the rows of the first pass, removed as soon as it is open. */
static FILE *open_spool(fz_err *err)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    char path[4096];
    if (snprintf(path, sizeof path, "%s/fz-mask.XXXXXX", dir) >= (int)sizeof path) {
        fz_fail(err, FZ_EIO, "TMPDIR is too long");
        return NULL;
    }
    int fd = mkstemp(path);
    if (fd < 0) {
        fz_fail(err, FZ_EIO, "%s: cannot make a temporary file: %s", path, strerror(errno));
        return NULL;
    }
    unlink(path);
    FILE *f = fdopen(fd, "w+b");
    if (!f) {
        fz_fail(err, FZ_EIO, "%s: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    fz_err err = {0};
    for (int i = 0; i < 5; i++) fz_sbuf_init(&lists[i]);
    enum { O_ATTR = 256, O_LABELED, O_COUNT, O_STRAT, O_ONLY, O_OFF, O_POS, O_NEG, O_HIDE,
           O_REDRAW };
    static const struct option longopts[] = {
        {"help", no_argument, 0, 'h'},
        {"output", required_argument, 0, 'o'},
        {"seed", required_argument, 0, 's'},
        {"classes", required_argument, 0, 'k'},
        {"attributes", required_argument, 0, 'a'},
        {"attr", required_argument, 0, O_ATTR},
        {"labeled", required_argument, 0, O_LABELED},
        {"labeled-count", required_argument, 0, O_COUNT},
        {"stratify", no_argument, 0, O_STRAT},
        {"only", required_argument, 0, O_ONLY},
        {"off", required_argument, 0, O_OFF},
        {"positive", required_argument, 0, O_POS},
        {"negative", required_argument, 0, O_NEG},
        {"hide", required_argument, 0, O_HIDE},
        {"redraw", required_argument, 0, O_REDRAW},
        {0, 0, 0, 0}};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":ho:s:k:a:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': help(); break;
        case 'o': opt_out = optarg; break;
        case 's':
            if (fz_parse_long(optarg, 0, 0x7fffffffffffffffL, &opt_seed, "-s", &err))
                usage_msg("%s", err.msg);
            break;
        case 'k':
            if (fz_parse_long(optarg, 1, FZ_MASK_MAX_OUTPUTS, &opt_k, "-k", &err))
                usage_msg("%s", err.msg);
            break;
        case 'a':
        case O_ATTR:
            if (nspecs == MAX_SPECS) usage_msg("more than %s -a and --attr options", "64");
            specs[nspecs].is_file = c == 'a';
            specs[nspecs++].s = optarg;
            break;
        case O_LABELED:
            if (fz_parse_double(optarg, 0, 1, &opt_labeled, "--labeled", &err))
                usage_msg("%s", err.msg);
            break;
        case O_COUNT:
            if (fz_parse_long(optarg, 0, 0x7fffffffffffffffL, &opt_labeled_count,
                              "--labeled-count", &err))
                usage_msg("%s", err.msg);
            break;
        case O_STRAT: opt_stratify = 1; break;
        case O_ONLY: add_list(0, optarg); break;
        case O_OFF: add_list(1, optarg); break;
        case O_POS: add_list(2, optarg); break;
        case O_NEG: add_list(3, optarg); break;
        case O_HIDE: add_list(4, optarg); break;
        case O_REDRAW:
            if (fz_parse_double(optarg, 0, 1, &opt_redraw, "--redraw", &err) || opt_redraw <= 0)
                usage_msg("--redraw: '%s' is not a probability in (0, 1]", optarg);
            break;
        case ':': usage_msg("option '%s' needs a value", argv[optind - 1]); break;
        default: usage_msg("unknown option '%s'", argv[optind - 1]); break;
        }
    }
    if (argc - optind > 1) usage_msg("too many operands ('%s')", argv[argc - 1]);
    if (opt_labeled >= 0 && opt_labeled_count >= 0)
        usage_msg("--labeled and --labeled-count together%s", "");
    if (opt_stratify && opt_labeled < 0 && opt_labeled_count < 0)
        usage_msg("--stratify needs --labeled or --labeled-count%s", "");
    for (int i = 0; i < 5; i++)
        if (lists[i].failed) {
            fz_fail(&err, FZ_ENOMEM, "out of memory");
            die(&err);
        }
    const char *in_path = optind < argc ? argv[optind] : "-";

    /* --- the outputs: classes from the metadata (or -k), then attributes --- */
    if (!(rd = fz_reader_open(in_path, &err))) die(&err);
    const char *name = fz_reader_name(rd);
    if (fz_mask_init_meta(&mk, fz_reader_meta(rd), opt_k, &err)) {
        fz_err_prefix(&err, name);
        die(&err);
    }
    for (int i = 0; i < nspecs; i++) {
        int rc = specs[i].is_file
                     ? fz_mask_load_attrs(&mk, specs[i].s, &err)
                     : fz_mask_add_attrs(&mk, specs[i].s, strlen(specs[i].s), "--attr", &err);
        if (rc) die(&err);
    }
    fz_mask_sel sel = {list_or_null(0), list_or_null(1), list_or_null(2), list_or_null(3),
                       list_or_null(4)};
    if (fz_mask_configure(&mk, &sel, &err)) die(&err);

    /* --- the output schema: input fields minus old target/mask, plus the new ones --- */
    const fz_schema *in = fz_reader_schema(rd);
    int li = fz_schema_find(in, "label"), ii = fz_schema_find(in, "id");
    if (li < 0) {
        fz_fail(&err, FZ_EDATA, "%s: no field 'label' in the stream", name);
        die(&err);
    }
    const fz_field *lf = &in->field[li], *idf = ii >= 0 ? &in->field[ii] : NULL;
    if (lf->ndim != 0 || !is_int_type(lf->type)) {
        char t[16];
        fz_fail(&err, FZ_EDATA, "%s: field 'label' must be an integer scalar, got '%s' of %zu values",
                name, fz_dtype_name(lf->type, lf->elem_size, t, sizeof t), lf->count);
        die(&err);
    }
    if (idf && (idf->ndim != 0 || !is_int_type(idf->type))) idf = NULL; /* not a row id */
    static const char *const drop[] = {"target", "mask", NULL};
    fz_schema out;
    fz_rowmap map;
    int64_t oshape[1] = {mk.nout};
    if (fz_rowmap_build(&map, in, &out, drop, &err) ||
        fz_schema_add(&out, "target", FZ_F4, 0, 1, oshape, &err) ||
        fz_schema_add(&out, "mask", FZ_F4, 0, 1, oshape, &err))
        die(&err);
    const fz_field *tf = &out.field[fz_schema_find(&out, "target")];
    const fz_field *mf = &out.field[fz_schema_find(&out, "mask")];
    if (!(meta = fz_mask_meta(fz_reader_meta(rd), &mk, opt_redraw, &err))) {
        fz_err_prefix(&err, name);
        die(&err);
    }

    /* About 1 MiB of rows at a time. */
    size_t big = in->row_size > out.row_size ? in->row_size : out.row_size;
    size_t B = ((size_t)1 << 20) / (big ? big : 1);
    if (B < 1) B = 1;
    if (B > 65536) B = 65536;
    inbuf = fz_malloc(B * in->row_size + 1, &err);
    outbuf = fz_malloc(B * out.row_size + 1, &err);
    tbuf = fz_malloc((size_t)mk.nout * sizeof *tbuf, &err);
    mbuf = fz_malloc((size_t)mk.nout * sizeof *mbuf, &err);
    if (!inbuf || !outbuf || !tbuf || !mbuf) die(&err);

    /* An exact choice needs every label first: the rows wait in a temporary file. */
    int exact = opt_labeled_count >= 0 || opt_stratify;
    size_t nrows = 0, cap = 0;
    if (exact) {
        if (!(spool = open_spool(&err))) die(&err);
    } else if (!(wr = fz_writer_open(opt_out, &out, meta, 0, &err))) {
        die(&err);
    }
    long n;
    while ((n = fz_reader_read(rd, inbuf, B, &err)) > 0) {
        uint64_t first = fz_reader_rows(rd) - (uint64_t)n;
        for (long i = 0; i < n; i++) {
            const unsigned char *irow = inbuf + (size_t)i * in->row_size;
            unsigned char *orow = outbuf + (size_t)i * out.row_size;
            double v = fz_field_get(lf, irow, 0);
            uint64_t id = idf ? get_id(idf, irow) : first + (uint64_t)i;
            if (v != -1 && !(v >= 0 && v < mk.K)) {
                fz_fail(&err, FZ_EDATA, "%s: row %s%llu: label %.17g outside [0, %d) (and not -1)",
                        name, idf ? "id " : "", (unsigned long long)id, v, mk.K);
                die(&err);
            }
            long label = (long)v;
            int labeled = exact || opt_labeled < 0 || fz_mask_hash01((uint64_t)opt_seed, id) < opt_labeled;
            fz_rowmap_copy(&map, irow, orow);
            fz_mask_row(&mk, label, labeled, tbuf, mbuf);
            for (int o = 0; o < mk.nout; o++) {
                fz_field_set(tf, orow, (size_t)o, tbuf[o]);
                fz_field_set(mf, orow, (size_t)o, mbuf[o]);
            }
            if (exact) {
                if (nrows == cap) {
                    size_t ncap = cap ? cap * 2 : 4096, bytes;
                    if (ncap > (size_t)UINT32_MAX + 1 || fz_mul_size(ncap, sizeof *labels, &bytes)) {
                        fz_fail(&err, FZ_EDATA, "%s: more than %u rows for an exact choice", name,
                                (unsigned)UINT32_MAX);
                        die(&err);
                    }
                    int32_t *nl = realloc(labels, bytes);
                    if (!nl) {
                        fz_fail(&err, FZ_ENOMEM, "out of memory");
                        die(&err);
                    }
                    labels = nl;
                    cap = ncap;
                }
                labels[nrows++] = fz_mask_has_label(&mk, label) ? (int32_t)label : -1;
            }
        }
        if (exact) {
            if (fwrite(outbuf, out.row_size, (size_t)n, spool) != (size_t)n) {
                fz_fail(&err, FZ_EIO, "temporary file: %s", strerror(errno));
                die(&err);
            }
        } else if (fz_writer_write(wr, outbuf, (size_t)n, &err)) {
            die(&err);
        }
    }
    if (n < 0) die(&err);

    if (exact) {
        /* Second pass: choose the rows, then zero the masks of the others. */
        size_t M = fz_mask_count_labeled(labels, nrows);
        size_t count = opt_labeled_count >= 0 ? (size_t)opt_labeled_count
                                              : (size_t)floor(opt_labeled * (double)M + 0.5);
        if (count > M) {
            fz_fail(&err, FZ_EDATA, "%s: --labeled-count %zu, but the stream has only %zu labeled rows",
                    name, count, M);
            die(&err);
        }
        if (!(keep = fz_malloc(nrows + 1, &err)) ||
            fz_mask_choose(labels, nrows, mk.K, count, opt_stratify, (uint64_t)opt_seed, keep, &err))
            die(&err);
        if (fflush(spool) || fseek(spool, 0, SEEK_SET)) {
            fz_fail(&err, FZ_EIO, "temporary file: %s", strerror(errno));
            die(&err);
        }
        if (!(wr = fz_writer_open(opt_out, &out, meta, 0, &err))) die(&err);
        for (size_t done = 0; done < nrows;) {
            size_t m = nrows - done < B ? nrows - done : B;
            if (fz_read_full(spool, outbuf, m * out.row_size) != m * out.row_size) {
                fz_fail(&err, FZ_EIO, "temporary file: short read");
                die(&err);
            }
            for (size_t i = 0; i < m; i++)
                if (!keep[done + i]) /* 0.0f is all zero bytes */
                    memset(outbuf + i * out.row_size + mf->offset, 0, mf->size);
            if (fz_writer_write(wr, outbuf, m, &err)) die(&err);
            done += m;
        }
    }
    fz_writer *w = wr;
    wr = NULL;
    if (fz_writer_close(w, &err)) die(&err);
    cleanup();
    return 0;
}
