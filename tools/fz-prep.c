/* fz-prep - turn raw data (IDX/MNIST, CSV, PNG/PGM images; plain, compressed or inside
 * tar/zip archives) into an fz row stream {id, label, x[, path]}. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "json.h"
#include "norm.h"
#include "rng.h"
#include "stream.h"
#include "util.h"

static const char *prog = "fz-prep";
static const char *usage_line =
    "usage: fz-prep [-h] [-o FILE] [-s SEED] [options] "
    "{SOURCE | mnist:train|mnist:test ARCHIVE | --idx-images FILE | --files LIST}";

/* option values, with their defaults (printed by -h) */
static const char *opt_out = "-";
static long opt_seed = 1;
static const char *opt_kind = NULL;
static const char *opt_idx_images = NULL, *opt_idx_labels = NULL;
static const char *opt_files = NULL;
static const char *opt_member = NULL, *opt_labels_member = NULL;
static const char *opt_label_col = NULL;
static int opt_gray = 0;
static const char *opt_keep = NULL, *opt_drop = NULL;
static double opt_split = 0;
static int opt_split_first = 1;
static int opt_shuffle = 0;
static long opt_skip = 0, opt_take = -1;
static const char *opt_norm = NULL;
static const char *opt_stats = NULL, *opt_save_stats = NULL;

/* Run state at file scope: an error exit from anywhere leaves it reachable. */
static fz_dataset ds;
static size_t *idx;
static fz_norm nm;
static unsigned char *mask, *rows;
static float *xbuf; /* (d,) one normalised row, aligned (packed rows may not be) */
static char *meta;

static void usage(void)
{
    fprintf(stderr, "%s\n", usage_line);
    exit(2);
}

static void usage_msg(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "; %s\n", usage_line);
    exit(2);
}

static void die(const fz_err *err)
{
    fprintf(stderr, "%s: %s\n", prog, err->msg);
    exit(1);
}

static void oom(void)
{
    fprintf(stderr, "%s: out of memory\n", prog);
    exit(1);
}

static void help(void)
{
    printf("%s\n\n", usage_line);
    printf("Turn raw data into an fz stream of rows {id, label, x[, path]}.\n\n");
    printf("Source:\n"
           "  SOURCE                a CSV file, an image directory or archive, or an IDX file;\n"
           "                        plain, .gz/.bz2/.xz, or inside .tar/.tar.gz/.zip\n"
           "  mnist:train ARCHIVE   MNIST training split (*train-images*, *train-labels*)\n"
           "  mnist:test ARCHIVE    MNIST test split (*t10k-images*, *t10k-labels*)\n"
           "  --kind KIND           idx, csv or images (default: %s)\n"
           "  --idx-images FILE     IDX images (default: %s)\n"
           "  --idx-labels FILE     IDX labels for them (default: %s)\n"
           "  --member GLOB         archive member to read (default: *images* for IDX, *.csv)\n"
           "  --labels-member GLOB  archive member with IDX labels (default: *labels*)\n"
           "  --files LIST          images named in LIST, one path a line ('-': stdin), in\n"
           "                        list order, labelled by parent folder (default: %s)\n"
           "  --label-col NAME      CSV label column (default: %s)\n"
           "  --gray                convert colour images to one channel (default: %s)\n",
           opt_kind ? opt_kind : "guessed: directory=images, *.csv*=csv, *idx*=idx",
           opt_idx_images ? opt_idx_images : "none", opt_idx_labels ? opt_idx_labels : "none",
           opt_files ? opt_files : "none",
           opt_label_col ? opt_label_col : "none, every column is a feature",
           opt_gray ? "on" : "off");
    printf("\nSelection (applied in this order):\n"
           "  --keep LIST           keep only these classes, comma-separated names (default: all)\n"
           "  --drop LIST           drop these classes (default: none)\n"
           "  --split F:first|F:rest  the first fraction F of a seeded permutation, or the rest\n"
           "                        (default: none)\n"
           "  --shuffle             seeded shuffle of the rows (default: %s, source order)\n"
           "  --skip N              skip the first N rows (default: %ld)\n"
           "  --take N              keep at most N rows (default: all)\n"
           "  -s SEED               seed of --split and --shuffle (default: %ld)\n",
           opt_shuffle ? "on" : "off", opt_skip, opt_seed);
    printf("\nNormalisation (x = (raw - offset) * scale):\n"
           "  --norm MODE           none, unit ([0,1]), shift ([-0.5,0.5]) or standardize\n"
           "                        (default: unit for images and IDX, none for CSV)\n"
           "  --unit, --shift, --standardize, --raw\n"
           "                        the same as --norm unit, shift, standardize, none\n"
           "  --stats FILE          apply saved statistics instead of fitting (default: %s)\n"
           "  --save-stats FILE     save the fitted statistics as JSON (default: %s)\n",
           opt_stats ? opt_stats : "fit on the selected rows",
           opt_save_stats ? opt_save_stats : "none");
    printf("\nOutput:\n"
           "  -o FILE               output stream (default: %s)\n"
           "  -h                    this help\n",
           strcmp(opt_out, "-") == 0 ? "stdout" : opt_out);
    exit(0);
}

static int has_str(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* Parse a comma-separated list of class names into a mask over the classes. */
static void class_mask(const fz_dataset *ds, const char *list, const char *opt,
                       unsigned char *mask)
{
    char *copy = strdup(list);
    if (!copy) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(1);
    }
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        long k = fz_dataset_class(ds, tok);
        if (k < 0) {
            fprintf(stderr, "%s: %s: no class named '%s' (%zu classes%s%s%s)\n", prog, opt, tok,
                    ds->nclasses, ds->nclasses ? ": " : "",
                    ds->nclasses ? ds->classes[0] : "", ds->nclasses > 1 ? ", ..." : "");
            free(copy);
            exit(1);
        }
        mask[k] = 1;
    }
    free(copy);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    fz_err err = {0};
    enum { O_KIND = 256, O_IDXI, O_IDXL, O_FILES, O_MEMBER, O_LMEMBER, O_LABCOL, O_GRAY, O_KEEP,
           O_DROP, O_SPLIT, O_SHUFFLE, O_SKIP, O_TAKE, O_NORM, O_UNIT, O_SHIFT, O_STD, O_RAW,
           O_STATS, O_SAVE };
    static const struct option longopts[] = {
        {"help", no_argument, 0, 'h'},
        {"output", required_argument, 0, 'o'},
        {"seed", required_argument, 0, 's'},
        {"kind", required_argument, 0, O_KIND},
        {"idx-images", required_argument, 0, O_IDXI},
        {"idx-labels", required_argument, 0, O_IDXL},
        {"files", required_argument, 0, O_FILES},
        {"member", required_argument, 0, O_MEMBER},
        {"labels-member", required_argument, 0, O_LMEMBER},
        {"label-col", required_argument, 0, O_LABCOL},
        {"gray", no_argument, 0, O_GRAY},
        {"keep", required_argument, 0, O_KEEP},
        {"drop", required_argument, 0, O_DROP},
        {"split", required_argument, 0, O_SPLIT},
        {"shuffle", no_argument, 0, O_SHUFFLE},
        {"skip", required_argument, 0, O_SKIP},
        {"take", required_argument, 0, O_TAKE},
        {"norm", required_argument, 0, O_NORM},
        {"unit", no_argument, 0, O_UNIT},
        {"shift", no_argument, 0, O_SHIFT},
        {"standardize", no_argument, 0, O_STD},
        {"raw", no_argument, 0, O_RAW},
        {"stats", required_argument, 0, O_STATS},
        {"save-stats", required_argument, 0, O_SAVE},
        {0, 0, 0, 0}};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":ho:s:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': help(); break;
        case 'o': opt_out = optarg; break;
        case 's':
            if (fz_parse_long(optarg, 0, 0x7fffffffffffffffL, &opt_seed, "-s", &err))
                usage_msg("%s", err.msg);
            break;
        case O_KIND:
            if (strcmp(optarg, "idx") && strcmp(optarg, "csv") && strcmp(optarg, "images"))
                usage_msg("--kind: '%s' is not idx, csv or images", optarg);
            opt_kind = optarg;
            break;
        case O_IDXI: opt_idx_images = optarg; break;
        case O_IDXL: opt_idx_labels = optarg; break;
        case O_FILES: opt_files = optarg; break;
        case O_MEMBER: opt_member = optarg; break;
        case O_LMEMBER: opt_labels_member = optarg; break;
        case O_LABCOL: opt_label_col = optarg; break;
        case O_GRAY: opt_gray = 1; break;
        case O_KEEP: opt_keep = optarg; break;
        case O_DROP: opt_drop = optarg; break;
        case O_SPLIT: {
            char *colon = strrchr(optarg, ':');
            if (!colon || (strcmp(colon, ":first") && strcmp(colon, ":rest")))
                usage_msg("--split: '%s' is not F:first or F:rest", optarg);
            opt_split_first = strcmp(colon, ":first") == 0;
            *colon = 0;
            if (fz_parse_double(optarg, 0, 1, &opt_split, "--split", &err) || opt_split <= 0 ||
                opt_split >= 1)
                usage_msg("--split: the fraction '%s' must be between 0 and 1 (exclusive)",
                          optarg);
            break;
        }
        case O_SHUFFLE: opt_shuffle = 1; break;
        case O_SKIP:
            if (fz_parse_long(optarg, 0, 0x7fffffffffffffffL, &opt_skip, "--skip", &err))
                usage_msg("%s", err.msg);
            break;
        case O_TAKE:
            if (fz_parse_long(optarg, 0, 0x7fffffffffffffffL, &opt_take, "--take", &err))
                usage_msg("%s", err.msg);
            break;
        case O_NORM: {
            fz_norm_mode m;
            if (fz_norm_parse_mode(optarg, &m))
                usage_msg("--norm: '%s' is not none, unit, shift or standardize", optarg);
            opt_norm = optarg;
            break;
        }
        case O_UNIT: opt_norm = "unit"; break;
        case O_SHIFT: opt_norm = "shift"; break;
        case O_STD: opt_norm = "standardize"; break;
        case O_RAW: opt_norm = "none"; break;
        case O_STATS: opt_stats = optarg; break;
        case O_SAVE: opt_save_stats = optarg; break;
        case ':': usage_msg("option '%s' needs a value", argv[optind - 1]); break;
        default: usage_msg("unknown option '%s'", argv[optind - 1]); break;
        }
    }

    /* --- operands: what to read --- */
    const char *src = NULL, *img_pat = opt_member, *lab_pat = opt_labels_member;
    const char *kind = opt_kind;
    int nops = argc - optind;
    if (nops == 2 && strncmp(argv[optind], "mnist:", 6) == 0) {
        const char *split = argv[optind] + 6;
        if (strcmp(split, "train") == 0) {
            img_pat = "*train-images*";
            lab_pat = "*train-labels*";
        } else if (strcmp(split, "test") == 0 || strcmp(split, "t10k") == 0) {
            img_pat = "*t10k-images*";
            lab_pat = "*t10k-labels*";
        } else {
            usage_msg("'%s' is not mnist:train or mnist:test", argv[optind]);
        }
        if (opt_idx_images || (kind && strcmp(kind, "idx")))
            usage_msg("%s takes no --idx-images or --kind", argv[optind]);
        kind = "idx";
        src = argv[optind + 1];
        opt_idx_images = opt_idx_labels = src;
    } else if (opt_files) {
        if (nops != 0) usage_msg("--files takes no operand (got '%s')", argv[optind]);
        if (opt_idx_images) usage_msg("--files and --idx-images together%s", "");
        if (kind && strcmp(kind, "images")) usage_msg("--files with --kind %s", kind);
        kind = "images";
        src = opt_files;
    } else if (opt_idx_images) {
        if (nops != 0) usage_msg("--idx-images takes no operand (got '%s')", argv[optind]);
        if (kind && strcmp(kind, "idx")) usage_msg("--idx-images with --kind %s", kind);
        kind = "idx";
        src = opt_idx_images;
    } else if (nops == 1) {
        src = argv[optind];
        if (!kind) {
            /* A directory is images; otherwise guess by name, else by content. */
            if (strcmp(src, "-") != 0) {
                char *dot = strrchr(src, '/');
                const char *base = dot ? dot + 1 : src;
                if (has_str(base, ".csv") || has_str(base, ".CSV") || has_str(base, ".tsv"))
                    kind = "csv";
                else if (has_str(base, "idx"))
                    kind = "idx";
            }
            if (!kind) {
                int isdir = 0;
                if (strcmp(src, "-") != 0) {
                    FILE *f = fopen(src, "rb");
                    if (!f) {
                        fz_fail(&err, FZ_EIO, "%s: %m", src);
                        die(&err);
                    }
                    /* fopen succeeds on directories; reading them fails with EISDIR */
                    char b;
                    isdir = fread(&b, 1, 1, f) == 0 && ferror(f);
                    fclose(f);
                }
                if (isdir) kind = "images";
                else if (strcmp(src, "-") != 0 && fz_input_is_archive(src, &err) == 1)
                    kind = "images";
                else
                    usage_msg("cannot tell what '%s' holds: give --kind idx|csv|images", src);
            }
        }
        if (strcmp(kind, "idx") == 0) opt_idx_images = src;
    } else if (nops == 0) {
        usage();
    } else {
        usage_msg("too many operands ('%s')", argv[optind + nops - 1]);
    }
    if (opt_idx_labels && strcmp(kind, "idx")) usage_msg("--idx-labels needs IDX images%s", "");
    if (opt_label_col && strcmp(kind, "csv")) usage_msg("--label-col is for CSV input%s", "");
    if (opt_stats && opt_save_stats) usage_msg("--stats and --save-stats together%s", "");
    if (opt_keep && opt_drop) usage_msg("--keep and --drop together%s", "");

    /* --- load --- */
    int rc;
    if (strcmp(kind, "idx") == 0)
        rc = fz_load_idx(opt_idx_images, img_pat, opt_idx_labels, lab_pat, &ds, &err);
    else if (strcmp(kind, "csv") == 0)
        rc = fz_load_csv(src, opt_member, opt_label_col, &ds, &err);
    else if (opt_files)
        rc = fz_load_image_list(opt_files, opt_gray, &ds, &err);
    else
        rc = fz_load_images(src, opt_gray, &ds, &err);
    if (rc) die(&err);

    /* --- select: classes, split, shuffle, skip, take --- */
    idx = malloc((ds.n ? ds.n : 1) * sizeof *idx);
    if (!idx) oom();
    size_t n = 0;
    if (opt_keep || opt_drop) {
        if (!ds.has_labels) {
            fprintf(stderr, "%s: %s: --%s needs labels, the data has none\n", prog,
                    fz_in_name(src), opt_keep ? "keep" : "drop");
            exit(1);
        }
        mask = calloc(ds.nclasses ? ds.nclasses : 1, 1);
        if (!mask) oom();
        class_mask(&ds, opt_keep ? opt_keep : opt_drop, opt_keep ? "--keep" : "--drop", mask);
        for (size_t i = 0; i < ds.n; i++) {
            int in = ds.label[i] >= 0 && mask[ds.label[i]];
            if (opt_keep ? in : !in) idx[n++] = i;
        }
        free(mask);
        mask = NULL;
    } else {
        for (size_t i = 0; i < ds.n; i++) idx[i] = i;
        n = ds.n;
    }
    if (opt_split > 0) {
        /* A seeded permutation cut at round(F * n): the two parts are complementary for
         * the same seed and selection. Rows keep source order unless --shuffle. */
        fz_rng r;
        fz_rng_seed(&r, (uint64_t)opt_seed);
        fz_rng_shuffle_idx(&r, idx, n);
        size_t cut = (size_t)(opt_split * (double)n + 0.5);
        if (!opt_split_first) memmove(idx, idx + cut, (n - cut) * sizeof *idx);
        n = opt_split_first ? cut : n - cut;
        qsort(idx, n, sizeof *idx, cmp_size);
    }
    if (opt_shuffle) {
        fz_rng r;
        fz_rng_seed(&r, (uint64_t)opt_seed ^ 0x5eed5eed5eed5eedULL);
        fz_rng_shuffle_idx(&r, idx, n);
    }
    size_t skip = (size_t)opt_skip < n ? (size_t)opt_skip : n;
    size_t *sel = idx + skip;
    n -= skip;
    if (opt_take >= 0 && (size_t)opt_take < n) n = (size_t)opt_take;

    /* --- normalisation --- */
    fz_norm_mode mode = ds.pixel_max > 0 ? FZ_NORM_UNIT : FZ_NORM_NONE;
    if (opt_norm) fz_norm_parse_mode(opt_norm, &mode);
    if (opt_stats) {
        if (fz_norm_load(&nm, opt_stats, &err)) die(&err);
        if (opt_norm && nm.mode != mode) {
            fprintf(stderr, "%s: %s: statistics are for --norm %s, not %s\n", prog, opt_stats,
                    fz_norm_mode_name(nm.mode), opt_norm);
            exit(2);
        }
        if (nm.d != ds.d) {
            fprintf(stderr, "%s: %s: statistics for %zu features, the data has %zu\n", prog,
                    opt_stats, nm.d, ds.d);
            exit(1);
        }
    } else if (fz_norm_fit(&nm, mode, &ds, sel, n, &err)) {
        die(&err);
    }
    if (opt_save_stats && fz_norm_save(&nm, opt_save_stats, &err)) die(&err);

    /* --- schema and metadata --- */
    fz_schema sc;
    fz_schema_init(&sc);
    size_t pathlen = 0;
    for (size_t k = 0; ds.paths && k < n; k++) {
        size_t l = strlen(ds.paths[sel[k]]);
        if (l > pathlen) pathlen = l;
    }
    if (pathlen > FZ_PATH_MAX) pathlen = FZ_PATH_MAX;
    if (ds.paths && pathlen == 0) pathlen = 1;
    if (fz_schema_add(&sc, "id", FZ_U8, 0, 0, NULL, &err) ||
        fz_schema_add(&sc, "label", FZ_I4, 0, 0, NULL, &err) ||
        fz_schema_add(&sc, "x", FZ_F4, 0, ds.ndim, ds.shape, &err) ||
        (ds.paths && fz_schema_add(&sc, "path", FZ_BYTES, pathlen, 0, NULL, &err)))
        die(&err);
    const fz_field *fid = &sc.field[0], *flab = &sc.field[1], *fx = &sc.field[2];
    const fz_field *fpath = ds.paths ? &sc.field[3] : NULL;

    fz_sbuf mb;
    fz_sbuf_init(&mb);
    fz_sbuf_printf(&mb, "{\"fz_stream\":1,\"source\":");
    fz_sbuf_json_str(&mb, ds.source);
    fz_sbuf_printf(&mb, ",\"rows\":%zu", n);
    if (ds.has_labels) {
        fz_sbuf_printf(&mb, ",\"classes\":[");
        for (size_t k = 0; k < ds.nclasses; k++) {
            if (k) fz_sbuf_putc(&mb, ',');
            fz_sbuf_json_str(&mb, ds.classes[k]);
        }
        fz_sbuf_putc(&mb, ']');
    }
    if (ds.features) {
        fz_sbuf_printf(&mb, ",\"features\":[");
        for (size_t k = 0; k < ds.nfeatures; k++) {
            if (k) fz_sbuf_putc(&mb, ',');
            fz_sbuf_json_str(&mb, ds.features[k]);
        }
        fz_sbuf_putc(&mb, ']');
    }
    fz_sbuf_printf(&mb, ",\"norm\":");
    fz_norm_json(&nm, &mb);
    fz_sbuf_putc(&mb, '}');
    meta = fz_sbuf_take(&mb);
    if (!meta) oom();

    /* --- rows --- */
    fz_writer *w = fz_writer_open(opt_out, &sc, meta, 0, &err);
    free(meta);
    meta = NULL;
    if (!w) {
        if (err.code == FZ_EPIPE) return 0;
        die(&err);
    }
    size_t batch = ((size_t)1 << 20) / sc.row_size + 1;
    rows = calloc(batch, sc.row_size);
    xbuf = malloc(ds.d * sizeof *xbuf);
    if (!rows || !xbuf) {
        fz_writer_abort(w);
        oom();
    }
    for (size_t k0 = 0; k0 < n; k0 += batch) {
        size_t m = n - k0 < batch ? n - k0 : batch;
        for (size_t k = 0; k < m; k++) {
            size_t i = sel[k0 + k];
            unsigned char *row = rows + k * sc.row_size;
            fz_put_le64(row + fid->offset, (uint64_t)i);
            put_le32(row + flab->offset, (uint32_t)ds.label[i]);
            fz_norm_apply(&nm, &ds, i, xbuf);
            unsigned char *xo = row + fx->offset;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            for (size_t j = 0; j < ds.d; j++) {
                uint32_t u;
                memcpy(&u, &xbuf[j], 4);
                put_le32(xo + 4 * j, u);
            }
#else
            memcpy(xo, xbuf, ds.d * sizeof *xbuf);
#endif
            if (fpath) {
                /* NUL-padded; longer paths keep their last FZ_PATH_MAX bytes */
                const char *p = ds.paths[i];
                size_t l = strlen(p);
                if (l > fpath->elem_size) p += l - fpath->elem_size, l = fpath->elem_size;
                memset(row + fpath->offset, 0, fpath->elem_size);
                memcpy(row + fpath->offset, p, l);
            }
        }
        if (fz_writer_write(w, rows, m, &err)) {
            fz_writer_abort(w);
            if (err.code == FZ_EPIPE) return 0;
            die(&err);
        }
    }
    free(rows);
    free(xbuf);
    rows = NULL;
    xbuf = NULL;
    if (fz_writer_close(w, &err)) {
        if (err.code == FZ_EPIPE) return 0;
        die(&err);
    }
    free(idx);
    fz_norm_free(&nm);
    fz_dataset_free(&ds);
    return 0;
}
