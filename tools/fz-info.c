/* fz-info - show what a stream holds: metadata, fields, row count, per-field statistics,
 * and the first rows as text. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"

static const char *prog = "fz-info";

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [-H] [-n rows] [-w values] [-t fields] [file ...]\n", prog);
}

static void help(long nrows, long width)
{
    usage(stdout);
    printf("\nShow a stream's metadata, fields (dtype, shape), row count, per-field\n"
           "min/max/mean and count of non-finite values, and its first rows.\n\n"
           "Output:\n"
           "  -n rows    rows to print (default %ld; 0 prints none)\n"
           "  -w values  values printed per field and row before '...' (default %ld)\n"
           "  -H         header only: metadata and fields, no scan of the rows\n"
           "  -t fields  instead, every row as a line of tab-separated values of these\n"
           "             fields (comma-separated; an array field gives one column per\n"
           "             value, named field[i]), after a header line\n"
           "  -h         this help\n\n"
           "With no file, or '-', reads standard input. Exit 0 ok, 1 bad stream, 2 usage.\n",
           nrows, width);
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
    long nrows = 5, width = 8;
    int header_only = 0, c;
    const char *tsv_fields = NULL;
    fz_err err;
    signal(SIGPIPE, SIG_IGN);
    opterr = 0; /* our own one-line usage message instead of getopt's */
    while ((c = getopt(argc, argv, "hHn:w:t:")) != -1) {
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
        default: usage(stderr); return 2;
        }
    }
    int rc = 0;
    if (tsv_fields) {
        if (argc - optind > 1) {
            fprintf(stderr, "%s: -t takes one stream\n", prog);
            return 2;
        }
        rc = tsv(optind < argc ? argv[optind] : NULL, tsv_fields);
    } else {
        if (optind == argc) rc = info(NULL, header_only, nrows, width);
        for (int i = optind; i < argc; i++) {
            if (i > optind) putchar('\n');
            rc |= info(argv[i], header_only, nrows, width);
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
