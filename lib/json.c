/* json.c - strict RFC 8259 parser into a tree, and the fz_sbuf text builder.
 *
 * The parser is recursive descent; recursion depth is bounded by FZ_JSON_MAX_DEPTH, input
 * size by FZ_JSON_MAX_INPUT and the number of values by FZ_JSON_MAX_NODES (a node takes
 * about 80 bytes of memory but may cost only 2 bytes of input: "0,"). Strings must be valid UTF-8 (no overlong forms,
 * no surrogates, nothing above U+10FFFF) without raw control characters; \u escapes are
 * decoded to UTF-8, surrogate pairs joined, lone surrogates and \u0000 refused. */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Longest number token accepted (digits beyond this carry no information for a double). */
#define FZ_JSON_MAX_NUMLEN 1000

struct fz_json {
    fz_jtype type;
    int b;          /* FZ_JBOOL */
    double num;     /* FZ_JNUM */
    char *str;      /* FZ_JSTR, NUL-terminated */
    size_t n, cap;  /* FZ_JARR / FZ_JOBJ: used and allocated slots */
    fz_json **kids; /* (n) values */
    char **keys;    /* (n) keys, FZ_JOBJ only */
};

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    size_t nodes; /* allocated so far, at most FZ_JSON_MAX_NODES */
    fz_err *err;
} parser;

static int perr(parser *p, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int perr(parser *p, size_t at, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return fz_fail(p->err, FZ_EDATA, "JSON: offset %zu: %s", at, what);
}

static int nomem(parser *p)
{
    return fz_fail(p->err, FZ_ENOMEM, "JSON: offset %zu: out of memory", p->pos);
}

void fz_json_free(fz_json *j)
{
    if (!j) return;
    for (size_t i = 0; i < j->n; i++) {
        fz_json_free(j->kids[i]);
        if (j->keys) free(j->keys[i]);
    }
    free(j->kids);
    free(j->keys);
    free(j->str);
    free(j);
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

/* Describe what stands at pos for an error message. */
static const char *found(parser *p)
{
    return p->pos >= p->len ? "end of input" : "unexpected character";
}

static fz_json *new_node(parser *p, fz_jtype t)
{
    if (++p->nodes > FZ_JSON_MAX_NODES) {
        perr(p, p->pos, "more than %d values", FZ_JSON_MAX_NODES);
        return NULL;
    }
    fz_json *j = calloc(1, sizeof *j);
    if (!j) {
        nomem(p);
        return NULL;
    }
    j->type = t;
    return j;
}

/* Append a child (and key, taking ownership of both) to an array or object. */
static int add_kid(parser *p, fz_json *c, fz_json *kid, char *key)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 4;
        fz_json **k = realloc(c->kids, cap * sizeof *k);
        if (!k) goto fail;
        c->kids = k;
        if (c->type == FZ_JOBJ) {
            char **ks = realloc(c->keys, cap * sizeof *ks);
            if (!ks) goto fail;
            c->keys = ks;
        }
        c->cap = cap;
    }
    c->kids[c->n] = kid;
    if (c->type == FZ_JOBJ) c->keys[c->n] = key;
    c->n++;
    return 0;
fail:
    fz_json_free(kid);
    free(key);
    return nomem(p);
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Four hex digits at pos (after "\u"); returns the code unit or -1. */
static long hex4(parser *p)
{
    long v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (p->pos + i >= p->len) {
            perr(p, p->len, "truncated \\u escape");
            return -1;
        }
        int h = hexval(p->s[p->pos + i]);
        if (h < 0) {
            perr(p, p->pos + i, "bad hex digit in \\u escape");
            return -1;
        }
        v = v * 16 + h;
    }
    p->pos += 4;
    return v;
}

static size_t put_utf8(unsigned char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence starting at s (at most n bytes available), or 0 if
 * it is invalid (bad lead, bad continuation, overlong, surrogate, > U+10FFFF, truncated). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t k;
    unsigned long cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        k = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        k = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

/* A string starting at the opening quote; returns a malloc'd NUL-terminated copy. The
 * decoded text is never longer than the source, so one allocation of the source length
 * suffices. */
static char *parse_string(parser *p)
{
    size_t start = p->pos++; /* the opening quote */
    size_t end = p->pos;
    /* Find the closing quote first to size the buffer. */
    while (end < p->len && p->s[end] != '"') end += (p->s[end] == '\\') ? 2 : 1;
    if (end >= p->len) {
        perr(p, start, "unterminated string");
        return NULL;
    }
    unsigned char *out = malloc(end - p->pos + 1);
    if (!out) {
        nomem(p);
        return NULL;
    }
    size_t o = 0;
    for (;;) {
        unsigned char c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) {
            perr(p, p->pos, "control character 0x%02x in string", c);
            goto fail;
        }
        if (c != '\\') {
            size_t k = utf8_len(p->s + p->pos, p->len - p->pos);
            if (!k) {
                perr(p, p->pos, "invalid UTF-8 in string");
                goto fail;
            }
            memcpy(out + o, p->s + p->pos, k);
            o += k;
            p->pos += k;
            continue;
        }
        size_t esc = p->pos++;
        c = p->s[p->pos++]; /* exists: the scan above stopped only at an unescaped quote */
        switch (c) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            long cp = hex4(p);
            if (cp < 0) goto fail;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                perr(p, esc, "lone low surrogate \\u%04lx", cp);
                goto fail;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
                    perr(p, esc, "high surrogate \\u%04lx not followed by a low one", cp);
                    goto fail;
                }
                p->pos += 2;
                long lo = hex4(p);
                if (lo < 0) goto fail;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    perr(p, esc, "high surrogate \\u%04lx not followed by a low one", cp);
                    goto fail;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) {
                perr(p, esc, "\\u0000 in string");
                goto fail;
            }
            o += put_utf8(out + o, (unsigned long)cp);
            break;
        }
        default:
            perr(p, esc, "bad escape '\\%c'", c >= 0x20 && c < 0x7F ? c : '?');
            goto fail;
        }
    }
    out[o] = '\0';
    return (char *)out;
fail:
    free(out);
    return NULL;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static fz_json *parse_number(parser *p)
{
    size_t start = p->pos, i = p->pos;
    const unsigned char *s = p->s;
    if (i < p->len && s[i] == '-') i++;
    if (i >= p->len || !is_digit(s[i])) {
        perr(p, i, "expected a digit");
        return NULL;
    }
    if (s[i] == '0') {
        i++;
    } else {
        while (i < p->len && is_digit(s[i])) i++;
    }
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || !is_digit(s[i])) {
            perr(p, i, "expected a digit after '.'");
            return NULL;
        }
        while (i < p->len && is_digit(s[i])) i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || !is_digit(s[i])) {
            perr(p, i, "expected a digit in exponent");
            return NULL;
        }
        while (i < p->len && is_digit(s[i])) i++;
    }
    size_t n = i - start;
    if (n > FZ_JSON_MAX_NUMLEN) {
        perr(p, start, "number longer than %d characters", FZ_JSON_MAX_NUMLEN);
        return NULL;
    }
    /* strtod needs a NUL-terminated copy; the token is validated, so strtod reads all of
     * it (the C locale's '.' is the decimal point: fz never calls setlocale). */
    char buf[FZ_JSON_MAX_NUMLEN + 1];
    memcpy(buf, s + start, n);
    buf[n] = '\0';
    errno = 0;
    char *end = NULL;
    double v = strtod(buf, &end);
    if (end != buf + n) {
        perr(p, start, "bad number");
        return NULL;
    }
    if (isinf(v)) {
        perr(p, start, "number out of range");
        return NULL;
    }
    fz_json *j = new_node(p, FZ_JNUM);
    if (!j) return NULL;
    j->num = v;
    p->pos = i;
    return j;
}

static int literal(parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) {
        /* Point at the first differing byte. */
        size_t k = 0;
        while (p->pos + k < p->len && k < n && p->s[p->pos + k] == (unsigned char)word[k]) k++;
        return perr(p, p->pos + k, "expected '%s'", word);
    }
    p->pos += n;
    return 0;
}

static fz_json *parse_value(parser *p, int depth);

static fz_json *parse_container(parser *p, int depth, int is_obj)
{
    if (depth >= FZ_JSON_MAX_DEPTH) {
        perr(p, p->pos, "nesting deeper than %d", FZ_JSON_MAX_DEPTH);
        return NULL;
    }
    char close = is_obj ? '}' : ']';
    fz_json *c = new_node(p, is_obj ? FZ_JOBJ : FZ_JARR);
    if (!c) return NULL;
    p->pos++; /* '{' or '[' */
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return c;
    }
    for (;;) {
        char *key = NULL;
        if (is_obj) {
            if (p->pos >= p->len || p->s[p->pos] != '"') {
                perr(p, p->pos, "expected a string key, got %s", found(p));
                goto fail;
            }
            key = parse_string(p);
            if (!key) goto fail;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                perr(p, p->pos, "expected ':', got %s", found(p));
                free(key);
                goto fail;
            }
            p->pos++;
        }
        fz_json *v = parse_value(p, depth + 1);
        if (!v) {
            free(key);
            goto fail;
        }
        if (add_kid(p, c, v, key) < 0) goto fail;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            skip_ws(p);
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return c;
        }
        perr(p, p->pos, "expected ',' or '%c', got %s", close, found(p));
        goto fail;
    }
fail:
    fz_json_free(c);
    return NULL;
}

static fz_json *parse_value(parser *p, int depth)
{
    skip_ws(p);
    if (p->pos >= p->len) {
        perr(p, p->pos, "expected a value, got end of input");
        return NULL;
    }
    unsigned char c = p->s[p->pos];
    fz_json *j;
    switch (c) {
    case '{': return parse_container(p, depth, 1);
    case '[': return parse_container(p, depth, 0);
    case '"': {
        char *s = parse_string(p);
        if (!s) return NULL;
        if (!(j = new_node(p, FZ_JSTR))) {
            free(s);
            return NULL;
        }
        j->str = s;
        return j;
    }
    case 't':
    case 'f':
        if (literal(p, c == 't' ? "true" : "false") < 0) return NULL;
        if (!(j = new_node(p, FZ_JBOOL))) return NULL;
        j->b = c == 't';
        return j;
    case 'n':
        if (literal(p, "null") < 0) return NULL;
        return new_node(p, FZ_JNULL);
    default:
        if (c == '-' || is_digit(c)) return parse_number(p);
        if (c >= 0x20 && c < 0x7F)
            perr(p, p->pos, "expected a value, got '%c'", c);
        else
            perr(p, p->pos, "expected a value, got byte 0x%02x", c);
        return NULL;
    }
}

fz_json *fz_json_parse(const char *text, size_t len, fz_err *err)
{
    if (len > FZ_JSON_MAX_INPUT) {
        fz_fail(err, FZ_EDATA, "JSON: text of %zu bytes exceeds the limit of %zu", len,
                FZ_JSON_MAX_INPUT);
        return NULL;
    }
    if (!text && len) {
        fz_fail(err, FZ_EUSAGE, "JSON: NULL text");
        return NULL;
    }
    parser p = {(const unsigned char *)text, len, 0, 0, err};
    fz_json *root = parse_value(&p, 0);
    if (!root) return NULL;
    skip_ws(&p);
    if (p.pos != p.len) {
        perr(&p, p.pos, "trailing data after the JSON value");
        fz_json_free(root);
        return NULL;
    }
    return root;
}

fz_jtype fz_json_type(const fz_json *j) { return j ? j->type : FZ_JNULL; }

const fz_json *fz_json_get(const fz_json *obj, const char *key)
{
    if (!obj || obj->type != FZ_JOBJ || !key) return NULL;
    for (size_t i = obj->n; i-- > 0;)
        if (strcmp(obj->keys[i], key) == 0) return obj->kids[i];
    return NULL;
}

size_t fz_json_len(const fz_json *j)
{
    return (j && (j->type == FZ_JARR || j->type == FZ_JOBJ)) ? j->n : 0;
}

const fz_json *fz_json_at(const fz_json *j, size_t i)
{
    return (j && (j->type == FZ_JARR || j->type == FZ_JOBJ) && i < j->n) ? j->kids[i] : NULL;
}

const char *fz_json_key_at(const fz_json *obj, size_t i)
{
    return (obj && obj->type == FZ_JOBJ && i < obj->n) ? obj->keys[i] : NULL;
}

double fz_json_num(const fz_json *j, double fallback)
{
    return (j && j->type == FZ_JNUM) ? j->num : fallback;
}

int fz_json_bool(const fz_json *j, int fallback)
{
    return (j && j->type == FZ_JBOOL) ? j->b : fallback;
}

const char *fz_json_str(const fz_json *j) { return (j && j->type == FZ_JSTR) ? j->str : NULL; }

/* ---- fz_sbuf ---- */

void fz_sbuf_init(fz_sbuf *b) { memset(b, 0, sizeof *b); }

void fz_sbuf_free(fz_sbuf *b)
{
    free(b->buf);
    fz_sbuf_init(b);
}

/* Make room for n more bytes plus the NUL; sets failed on overflow or allocation failure. */
static int sbuf_reserve(fz_sbuf *b, size_t n)
{
    if (b->failed) return -1;
    size_t need;
    if (fz_add_size(b->len, n, &need) < 0 || fz_add_size(need, 1, &need) < 0) goto fail;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *nb = realloc(b->buf, cap);
    if (!nb) goto fail;
    b->buf = nb;
    b->cap = cap;
    return 0;
fail:
    b->failed = 1;
    return -1;
}

void fz_sbuf_printf(fz_sbuf *b, const char *fmt, ...)
{
    if (b->failed) return;
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (sbuf_reserve(b, (size_t)n) < 0) return;
    if ((size_t)n < sizeof small) {
        memcpy(b->buf + b->len, small, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

static void sbuf_put(fz_sbuf *b, const void *s, size_t n)
{
    if (sbuf_reserve(b, n) < 0) return;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

void fz_sbuf_putc(fz_sbuf *b, char c) { sbuf_put(b, &c, 1); }

void fz_sbuf_json_str(fz_sbuf *b, const char *s)
{
    if (!s) {
        sbuf_put(b, "null", 4);
        return;
    }
    fz_sbuf_putc(b, '"');
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n && !b->failed;) {
        unsigned char c = u[i];
        const char *esc = NULL;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: break;
        }
        if (esc) {
            sbuf_put(b, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            fz_sbuf_printf(b, "\\u%04x", c);
            i++;
        } else {
            /* Invalid UTF-8 becomes U+FFFD so the output is always valid JSON text. */
            size_t k = utf8_len(u + i, n - i);
            if (k) {
                sbuf_put(b, u + i, k);
                i += k;
            } else {
                sbuf_put(b, "\xEF\xBF\xBD", 3);
                i++;
            }
        }
    }
    fz_sbuf_putc(b, '"');
}

void fz_sbuf_json_f32(fz_sbuf *b, float v)
{
    if (!isfinite(v))
        sbuf_put(b, "null", 4);
    else
        fz_sbuf_printf(b, "%.9g", (double)v);
}

void fz_sbuf_json_f64(fz_sbuf *b, double v)
{
    if (!isfinite(v))
        sbuf_put(b, "null", 4);
    else
        fz_sbuf_printf(b, "%.17g", v);
}

void fz_sbuf_json_node(fz_sbuf *b, const fz_json *j)
{
    if (!j) {
        sbuf_put(b, "null", 4);
        return;
    }
    switch (j->type) {
    case FZ_JNULL: sbuf_put(b, "null", 4); break;
    case FZ_JBOOL: j->b ? sbuf_put(b, "true", 4) : sbuf_put(b, "false", 5); break;
    case FZ_JNUM: fz_sbuf_json_f64(b, j->num); break;
    case FZ_JSTR: fz_sbuf_json_str(b, j->str); break;
    case FZ_JARR:
    case FZ_JOBJ:
        fz_sbuf_putc(b, j->type == FZ_JOBJ ? '{' : '[');
        for (size_t i = 0; i < j->n; i++) {
            if (i) fz_sbuf_putc(b, ',');
            if (j->type == FZ_JOBJ) {
                fz_sbuf_json_str(b, j->keys[i]);
                fz_sbuf_putc(b, ':');
            }
            fz_sbuf_json_node(b, j->kids[i]);
        }
        fz_sbuf_putc(b, j->type == FZ_JOBJ ? '}' : ']');
        break;
    }
}

char *fz_sbuf_take(fz_sbuf *b)
{
    char *s = NULL;
    if (!b->failed) {
        s = b->buf ? b->buf : calloc(1, 1);
        b->buf = NULL;
    }
    fz_sbuf_free(b);
    return s;
}
