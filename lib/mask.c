/* mask.c - labels as targets and masks of the fuzzy layer (see mask.h). */
#include "mask.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "rng.h"

static char *dup_n(const char *s, size_t n, fz_err *err)
{
    char *d = fz_malloc(n + 1, err);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* Grow the per-output arrays to hold at least want outputs (attr rows included). */
static int reserve(fz_mask *m, int want, fz_err *err)
{
    if (want <= m->cap) return 0;
    if (want > FZ_MASK_MAX_OUTPUTS)
        return fz_fail(err, FZ_EDATA, "too many outputs (at most %d)", FZ_MASK_MAX_OUTPUTS);
    int cap = m->cap ? m->cap : 16;
    while (cap < want) cap = cap > FZ_MASK_MAX_OUTPUTS / 2 ? FZ_MASK_MAX_OUTPUTS : cap * 2;
    size_t K = (size_t)(m->K > 0 ? m->K : 1), arows = (size_t)(cap - m->K), abytes;
    if (fz_mul_size(arows, K, &abytes)) return fz_fail(err, FZ_ENOMEM, "out of memory");
    char **name = realloc(m->name, (size_t)cap * sizeof *name);
    if (!name) return fz_fail(err, FZ_ENOMEM, "out of memory");
    m->name = name;
    unsigned char *attr = realloc(m->attr, abytes ? abytes : 1);
    if (!attr) return fz_fail(err, FZ_ENOMEM, "out of memory");
    m->attr = attr;
    unsigned char *pos = realloc(m->pos, (size_t)cap);
    if (!pos) return fz_fail(err, FZ_ENOMEM, "out of memory");
    m->pos = pos;
    unsigned char *neg = realloc(m->neg, (size_t)cap);
    if (!neg) return fz_fail(err, FZ_ENOMEM, "out of memory");
    m->neg = neg;
    m->cap = cap;
    return 0;
}

int fz_mask_output(const fz_mask *m, const char *name)
{
    for (int o = 0; o < m->nout; o++)
        if (strcmp(m->name[o], name) == 0) return o;
    return -1;
}

/* Append an output (a class while nout < K, else an attribute) named by n bytes of s. */
static int add_output(fz_mask *m, const char *s, size_t n, fz_err *err)
{
    if (n == 0) return fz_fail(err, FZ_EDATA, "empty output name");
    if (n >= 256) return fz_fail(err, FZ_EDATA, "output name longer than 255 bytes");
    if (reserve(m, m->nout + 1, err)) return -1;
    char *name = dup_n(s, n, err);
    if (!name) return -1;
    if (fz_mask_output(m, name) >= 0) {
        fz_fail(err, FZ_EDATA, "the name '%s' is used twice", name);
        free(name);
        return -1;
    }
    m->name[m->nout] = name;
    m->pos[m->nout] = m->neg[m->nout] = 1;
    m->nout++;
    return 0;
}

int fz_mask_init(fz_mask *m, const char *const *classes, int K, fz_err *err)
{
    memset(m, 0, sizeof *m);
    if (K < 1 || K > FZ_MASK_MAX_OUTPUTS)
        return fz_fail(err, FZ_EDATA, "%d classes (expected 1 to %d)", K, FZ_MASK_MAX_OUTPUTS);
    m->K = K;
    m->hidden = fz_calloc((size_t)K, 1, err);
    if (!m->hidden || reserve(m, K, err)) goto fail;
    for (int c = 0; c < K; c++) {
        if (add_output(m, classes[c], strlen(classes[c]), err)) {
            char where[32];
            snprintf(where, sizeof where, "class %d", c);
            fz_err_prefix(err, where);
            goto fail;
        }
    }
    return 0;
fail:
    fz_mask_free(m);
    return -1;
}

int fz_mask_init_meta(fz_mask *m, const char *meta_json, long k, fz_err *err)
{
    memset(m, 0, sizeof *m);
    fz_json *root = fz_json_parse(meta_json, strlen(meta_json), err);
    if (!root) return -1;
    const fz_json *cl = fz_json_get(root, "classes");
    int rc = -1;
    const char **names = NULL;
    char *made = NULL;
    if (cl && fz_json_type(cl) != FZ_JARR) {
        fz_fail(err, FZ_EDATA, "the metadata's \"classes\" is not an array");
        goto out;
    }
    size_t K = cl ? fz_json_len(cl) : (size_t)(k > 0 ? k : 0);
    if (!cl && k <= 0) {
        fz_fail(err, FZ_EDATA, "the metadata names no classes (give -k)");
        goto out;
    }
    if (cl && k > 0 && (size_t)k != K) {
        fz_fail(err, FZ_EDATA, "-k %ld, but the metadata names %zu classes", k, K);
        goto out;
    }
    if (K < 1 || K > FZ_MASK_MAX_OUTPUTS) {
        fz_fail(err, FZ_EDATA, "%zu classes (expected 1 to %d)", K, FZ_MASK_MAX_OUTPUTS);
        goto out;
    }
    names = fz_calloc(K, sizeof *names, err);
    if (!names) goto out;
    if (cl) {
        for (size_t c = 0; c < K; c++) {
            names[c] = fz_json_str(fz_json_at(cl, c));
            if (!names[c]) {
                fz_fail(err, FZ_EDATA, "the metadata's \"classes\"[%zu] is not a string", c);
                goto out;
            }
        }
    } else {
        made = fz_malloc(K * 8, err); /* "65535" + NUL fits in 8 */
        if (!made) goto out;
        for (size_t c = 0; c < K; c++) {
            snprintf(made + c * 8, 8, "%zu", c);
            names[c] = made + c * 8;
        }
    }
    if (fz_mask_init(m, names, (int)K, err)) goto out;
    m->from_k = !cl;
    rc = 0;
out:
    free(names);
    free(made);
    fz_json_free(root);
    return rc;
}

void fz_mask_free(fz_mask *m)
{
    if (m->name)
        for (int o = 0; o < m->nout; o++) free(m->name[o]);
    free(m->name);
    free(m->attr);
    free(m->pos);
    free(m->neg);
    free(m->hidden);
    memset(m, 0, sizeof *m);
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }
static int is_sep(char c) { return is_blank(c) || c == ','; }

/* Index of the class named by n bytes of s, or -1. */
static int find_class(const fz_mask *m, const char *s, size_t n)
{
    for (int c = 0; c < m->K; c++)
        if (strlen(m->name[c]) == n && memcmp(m->name[c], s, n) == 0) return c;
    return -1;
}

/* One line without its newline: "NAME: CLASS CLASS ...", a comment or blank. */
static int add_attr_line(fz_mask *m, const char *s, size_t len, fz_err *err)
{
    const char *hash = memchr(s, '#', len);
    if (hash) len = (size_t)(hash - s);
    while (len && is_blank(s[len - 1])) len--;
    while (len && is_blank(*s)) s++, len--;
    if (len == 0) return 0;
    if (memchr(s, '\0', len)) return fz_fail(err, FZ_EDATA, "a NUL byte");
    const char *colon = memchr(s, ':', len);
    if (!colon) return fz_fail(err, FZ_EDATA, "expected 'NAME: CLASS ...', got no ':'");
    size_t nlen = (size_t)(colon - s);
    while (nlen && is_blank(s[nlen - 1])) nlen--;
    if (nlen == 0) return fz_fail(err, FZ_EDATA, "no attribute name before ':'");
    for (size_t i = 0; i < nlen; i++)
        if (is_sep(s[i]) || s[i] == '"')
            return fz_fail(err, FZ_EDATA, "the attribute name '%.*s' has a blank, comma or quote",
                           (int)nlen, s);
    int a = m->nout - m->K;
    if (add_output(m, s, nlen, err)) return -1;
    unsigned char *row = m->attr + (size_t)a * (size_t)m->K;
    memset(row, 0, (size_t)m->K);
    const char *p = colon + 1, *end = s + len;
    int nclass = 0;
    while (p < end) {
        while (p < end && is_sep(*p)) p++;
        const char *q = p;
        while (q < end && !is_sep(*q)) q++;
        if (q == p) break;
        int c = find_class(m, p, (size_t)(q - p));
        if (c < 0) {
            fz_fail(err, FZ_EDATA, "attribute '%s': no class named '%.*s'", m->name[m->nout - 1],
                    (int)(q - p), p);
            goto undo;
        }
        if (row[c]) {
            fz_fail(err, FZ_EDATA, "attribute '%s': class '%s' listed twice", m->name[m->nout - 1],
                    m->name[c]);
            goto undo;
        }
        row[c] = 1;
        nclass++;
        p = q;
    }
    if (nclass == 0) {
        fz_fail(err, FZ_EDATA, "attribute '%s' names no classes", m->name[m->nout - 1]);
        goto undo;
    }
    return 0;
undo:
    free(m->name[--m->nout]);
    return -1;
}

int fz_mask_add_attrs(fz_mask *m, const char *text, size_t len, const char *src, fz_err *err)
{
    size_t lineno = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        lineno++;
        if (n > FZ_MASK_MAX_LINE)
            return fz_fail(err, FZ_EDATA, "%s:%zu: line longer than %d bytes", src, lineno,
                           FZ_MASK_MAX_LINE);
        if (add_attr_line(m, p, n, err)) {
            char where[300];
            snprintf(where, sizeof where, "%.256s:%zu", src, lineno);
            fz_err_prefix(err, where);
            return -1;
        }
        p += n + (nl != NULL);
    }
    return 0;
}

int fz_mask_from_stream_meta(fz_mask *m, const char *meta_json, fz_err *err)
{
    if (fz_mask_init_meta(m, meta_json, 0, err)) return -1;
    fz_json *root = fz_json_parse(meta_json, strlen(meta_json), err);
    if (!root) goto fail;
    const fz_json *attrs = fz_json_get(root, "attributes");
    if (attrs && fz_json_type(attrs) != FZ_JOBJ) {
        fz_fail(err, FZ_EDATA, "the metadata's \"attributes\" is not an object");
        goto fail;
    }
    /* Each attribute as its spec line "NAME: CLASS CLASS ...", so that one parser checks
     * both sources. */
    for (size_t a = 0; attrs && a < fz_json_len(attrs); a++) {
        const fz_json *list = fz_json_at(attrs, a);
        if (fz_json_type(list) != FZ_JARR) {
            fz_fail(err, FZ_EDATA, "the metadata's attribute '%.64s' is not a list",
                    fz_json_key_at(attrs, a));
            goto fail;
        }
        fz_sbuf line;
        fz_sbuf_init(&line);
        fz_sbuf_printf(&line, "%s:", fz_json_key_at(attrs, a));
        for (size_t i = 0; i < fz_json_len(list); i++) {
            const char *c = fz_json_str(fz_json_at(list, i));
            if (c) fz_sbuf_printf(&line, " %s", c);
        }
        char *text = fz_sbuf_take(&line);
        int rc = text ? add_attr_line(m, text, strlen(text), err)
                      : fz_fail(err, FZ_ENOMEM, "out of memory");
        free(text);
        if (rc) goto fail;
    }
    const fz_json *outs = fz_json_get(root, "outputs");
    if (outs) {
        int same = fz_json_type(outs) == FZ_JARR && fz_json_len(outs) == (size_t)m->nout;
        for (int o = 0; same && o < m->nout; o++) {
            const char *name = fz_json_str(fz_json_at(outs, (size_t)o));
            same = name && strcmp(name, m->name[o]) == 0;
        }
        if (!same) {
            fz_fail(err, FZ_EDATA, "the metadata's \"outputs\" are not its classes followed "
                                   "by its attributes");
            goto fail;
        }
    }
    fz_json_free(root);
    return 0;
fail:
    fz_json_free(root);
    fz_mask_free(m);
    return -1;
}

int fz_mask_load_attrs(fz_mask *m, const char *path, fz_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fz_fail(err, FZ_EIO, "%s: %s", path, strerror(errno));
    char *buf = fz_malloc(FZ_MASK_MAX_SPEC + 1, err);
    if (!buf) {
        fclose(f);
        return -1;
    }
    size_t n = fz_read_full(f, buf, FZ_MASK_MAX_SPEC + 1);
    int bad = ferror(f);
    int e = errno;
    fclose(f);
    int rc = -1;
    if (bad)
        fz_fail(err, FZ_EIO, "%s: %s", path, strerror(e));
    else if (n > FZ_MASK_MAX_SPEC)
        fz_fail(err, FZ_EDATA, "%s: longer than %zu bytes", path, FZ_MASK_MAX_SPEC);
    else
        rc = fz_mask_add_attrs(m, buf, n, path, err);
    free(buf);
    return rc;
}

/* Parse a comma-separated list of names into set (nout bytes, or K with classes_only). */
static int name_set(const fz_mask *m, const char *list, const char *opt, int classes_only,
                    unsigned char *set, fz_err *err)
{
    const char *p = list;
    while (*p) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n) {
            int o = -1;
            if (classes_only) {
                o = find_class(m, p, n);
            } else {
                for (int i = 0; i < m->nout && o < 0; i++)
                    if (strlen(m->name[i]) == n && memcmp(m->name[i], p, n) == 0) o = i;
            }
            if (o < 0)
                return fz_fail(err, FZ_EUSAGE, "%s: no %s named '%.*s' (%s: %s%s%s)", opt,
                               classes_only ? "class" : "output", (int)(n > 200 ? 200 : n), p,
                               classes_only ? "classes" : "outputs", m->name[0],
                               m->nout > 1 ? ", ..., " : "",
                               m->nout > 1 ? m->name[classes_only ? m->K - 1 : m->nout - 1] : "");
            set[o] = 1;
        }
        if (!q) break;
        p = q + 1;
    }
    return 0;
}

int fz_mask_configure(fz_mask *m, const fz_mask_sel *sel, fz_err *err)
{
    size_t n = (size_t)m->nout;
    unsigned char *buf = fz_calloc(4, n, err); /* only, off, positive, negative: (nout) each */
    if (!buf) return -1;
    unsigned char *only = buf, *off = buf + n, *pos = buf + 2 * n, *neg = buf + 3 * n;
    int rc = -1;
    memset(m->hidden, 0, (size_t)m->K); /* each call sets the whole selection anew */
    if ((sel->only && name_set(m, sel->only, "--only", 0, only, err)) ||
        (sel->off && name_set(m, sel->off, "--off", 0, off, err)) ||
        (sel->positive && name_set(m, sel->positive, "--positive", 0, pos, err)) ||
        (sel->negative && name_set(m, sel->negative, "--negative", 0, neg, err)) ||
        (sel->hide && name_set(m, sel->hide, "--hide", 1, m->hidden, err)))
        goto out;
    for (size_t o = 0; o < n; o++) {
        if (pos[o] && neg[o]) {
            fz_fail(err, FZ_EUSAGE,
                    "--positive and --negative both name '%s' (name it in neither for both kinds "
                    "of examples)", m->name[o]);
            goto out;
        }
        int on = !(sel->only && !only[o]) && !off[o];
        m->pos[o] = (unsigned char)(on && !neg[o]);
        m->neg[o] = (unsigned char)(on && !pos[o]);
    }
    rc = 0;
out:
    free(buf);
    return rc;
}

int fz_mask_has_label(const fz_mask *m, long label)
{
    return label >= 0 && label < m->K && !m->hidden[label];
}

void fz_mask_row(const fz_mask *m, long label, int labeled, float *target, float *mask)
{
    int K = m->K, A = m->nout - K;
    int known = label >= 0 && label < K;
    for (int o = 0; o < K; o++) target[o] = known && o == label ? 1.0f : 0.0f;
    for (int a = 0; a < A; a++)
        target[K + a] = known && m->attr[(size_t)a * (size_t)K + (size_t)label] ? 1.0f : 0.0f;
    int use = labeled && fz_mask_has_label(m, label);
    for (int o = 0; o < m->nout; o++)
        mask[o] = use && (target[o] > 0.5f ? m->pos[o] : m->neg[o]) ? 1.0f : 0.0f;
}

static uint64_t mix64(uint64_t z)
{
    /* splitmix64's finaliser: every input bit flips about half the output bits */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double fz_mask_hash01(uint64_t seed, uint64_t id)
{
    uint64_t h = mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (id * 0xd1b54a32d192ed03ULL + 1));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

size_t fz_mask_count_labeled(const int32_t *labels, size_t n)
{
    size_t M = 0;
    for (size_t i = 0; i < n; i++) M += labels[i] >= 0;
    return M;
}

int fz_mask_choose(const int32_t *labels, size_t n, int K, size_t count, int stratify,
                   uint64_t seed, unsigned char *keep, fz_err *err)
{
    if (n) memset(keep, 0, n);
    size_t M = 0;
    for (size_t i = 0; i < n; i++) {
        if (labels[i] >= K) return fz_fail(err, FZ_EDATA, "label %d outside [0, %d)", labels[i], K);
        M += labels[i] >= 0;
    }
    if (count > M)
        return fz_fail(err, FZ_EDATA, "%zu labeled rows asked for, the stream has %zu", count, M);
    if (count == 0) return 0;
    if (M > UINT32_MAX) /* keeps count * n_c within 64 bits */
        return fz_fail(err, FZ_EDATA, "more than %u labeled rows", (unsigned)UINT32_MAX);
    size_t *idx = fz_malloc(M * sizeof *idx, err);
    size_t *per = fz_calloc((size_t)K * 3, sizeof *per, err); /* n_c, quota_c, taken_c */
    if (!idx || !per) {
        free(idx);
        free(per);
        return -1;
    }
    size_t *nc = per, *quota = per + K, *taken = per + 2 * (size_t)K;
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (labels[i] >= 0) {
            idx[j++] = i;
            nc[labels[i]]++;
        }
    fz_rng rng;
    fz_rng_seed(&rng, seed);
    fz_rng_shuffle_idx(&rng, idx, M);
    if (!stratify) {
        for (size_t i = 0; i < count; i++) keep[idx[i]] = 1;
    } else {
        /* Largest remainder: floor(count * n_c / M) rows each, then one more for the
         * classes with the largest remainders (count * n_c mod M; ties to the lower class)
         * until the counts add up. Fewer classes are topped up than have a nonzero
         * remainder, so each gets at most one. */
        size_t given = 0;
        for (int c = 0; c < K; c++) {
            quota[c] = (size_t)((uint64_t)count * nc[c] / M);
            given += quota[c];
        }
        for (; given < count; given++) {
            int best = -1;
            uint64_t bestr = 0;
            for (int c = 0; c < K; c++) {
                uint64_t r = (uint64_t)count * nc[c] % M;
                if (!taken[c] && r > bestr) bestr = r, best = c;
            }
            if (best < 0) break; /* cannot happen: the remainders add up to (count - given) M */
            quota[best]++;
            taken[best] = 1;
        }
        memset(taken, 0, (size_t)K * sizeof *taken);
        for (size_t i = 0; i < M; i++) {
            int c = labels[idx[i]];
            if (taken[c] < quota[c]) {
                taken[c]++;
                keep[idx[i]] = 1;
            }
        }
    }
    free(idx);
    free(per);
    return 0;
}

static void put_names(fz_sbuf *b, const fz_mask *m, int from, int to)
{
    fz_sbuf_putc(b, '[');
    for (int o = from; o < to; o++) {
        if (o > from) fz_sbuf_putc(b, ',');
        fz_sbuf_json_str(b, m->name[o]);
    }
    fz_sbuf_putc(b, ']');
}

char *fz_mask_meta(const char *meta_json, const fz_mask *m, double redraw, fz_err *err)
{
    fz_json *root = fz_json_parse(meta_json, strlen(meta_json), err);
    if (!root) return NULL;
    if (fz_json_type(root) != FZ_JOBJ) {
        fz_json_free(root);
        fz_fail(err, FZ_EDATA, "the metadata is not a JSON object");
        return NULL;
    }
    fz_sbuf b;
    fz_sbuf_init(&b);
    fz_sbuf_putc(&b, '{');
    int first = 1;
    for (size_t i = 0; i < fz_json_len(root); i++) {
        const char *key = fz_json_key_at(root, i);
        if (!strcmp(key, "outputs") || !strcmp(key, "attributes") || !strcmp(key, "mask_redraw"))
            continue;
        if (!first) fz_sbuf_putc(&b, ',');
        first = 0;
        fz_sbuf_json_str(&b, key);
        fz_sbuf_putc(&b, ':');
        fz_sbuf_json_node(&b, fz_json_at(root, i));
    }
    fz_json_free(root);
    if (!first) fz_sbuf_putc(&b, ',');
    if (m->from_k) {
        fz_sbuf_printf(&b, "\"classes\":");
        put_names(&b, m, 0, m->K);
        fz_sbuf_putc(&b, ',');
    }
    fz_sbuf_printf(&b, "\"outputs\":");
    put_names(&b, m, 0, m->nout);
    fz_sbuf_printf(&b, ",\"attributes\":{");
    for (int a = 0; a < m->nout - m->K; a++) {
        if (a) fz_sbuf_putc(&b, ',');
        fz_sbuf_json_str(&b, m->name[m->K + a]);
        fz_sbuf_printf(&b, ":[");
        int n = 0;
        for (int c = 0; c < m->K; c++)
            if (m->attr[(size_t)a * (size_t)m->K + (size_t)c]) {
                if (n++) fz_sbuf_putc(&b, ',');
                fz_sbuf_json_str(&b, m->name[c]);
            }
        fz_sbuf_putc(&b, ']');
    }
    fz_sbuf_putc(&b, '}');
    if (redraw > 0) {
        fz_sbuf_printf(&b, ",\"mask_redraw\":");
        fz_sbuf_json_f64(&b, redraw);
    }
    fz_sbuf_putc(&b, '}');
    char *out = fz_sbuf_take(&b);
    if (!out) fz_fail(err, FZ_ENOMEM, "out of memory");
    return out;
}
