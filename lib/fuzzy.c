/* fuzzy.c - the fuzzy layer: memberships, their gradients, masks, pruning, heads and
 * inspection. See fuzzy.h for the forms and the parameter layout. */
#include "fuzzy.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The same constants in double for the inspection functions. */
#define DIAG_EPS_D 1e-7
#define BELL_EPS_D 1e-6
#define B_EPS_D 1e-6

static const char *const kind_names[] = {"gauss", "cauchy", "bell", "article"};

const char *fz_mf_kind_name(fz_mf_kind kind)
{
    if ((int)kind < 0 || (int)kind > FZ_MF_ARTICLE) return "?";
    return kind_names[kind];
}

int fz_mf_kind_parse(const char *s, fz_mf_kind *out, fz_err *err)
{
    for (int i = 0; i <= FZ_MF_ARTICLE; i++)
        if (s && strcmp(s, kind_names[i]) == 0) {
            *out = (fz_mf_kind)i;
            return 0;
        }
    return fz_fail(err, FZ_EUSAGE,
                   "unknown membership form '%s' (expected gauss, cauchy, bell or article)",
                   s ? s : "");
}

/* ---- sizes and layout ------------------------------------------------------------------ */

static size_t nlower(int n) { return (size_t)n * (size_t)(n - 1) / 2; }

/* Offset of row i of the strictly-lower part (entries A[i][0..i-1]). */
static size_t lower_row(int i) { return (size_t)i * (size_t)(i - 1) / 2; }

int fz_fuzzy_tensors(const fz_fuzzy *F, fz_fuzzy_tensor out[FZ_FUZZY_MAX_TENSORS])
{
    int64_t K = F->K, n = F->n;
    size_t off = 0;
    int c = 0;
#define ADD(nm, nd, a, b, cc)                                                           \
    do {                                                                                 \
        out[c].name = (nm);                                                              \
        out[c].offset = off;                                                             \
        out[c].ndim = (nd);                                                              \
        out[c].shape[0] = (a);                                                           \
        out[c].shape[1] = (b);                                                           \
        out[c].shape[2] = (cc);                                                          \
        out[c].count = (size_t)((a) * ((nd) > 1 ? (b) : 1) * ((nd) > 2 ? (cc) : 1));     \
        off += out[c].count;                                                             \
        c++;                                                                             \
    } while (0)
    if (F->kind == FZ_MF_ARTICLE) {
        ADD("fuzzy.S", 3, K, n, n);
        ADD("fuzzy.t", 2, K, n, 0);
    } else {
        ADD("fuzzy.centers", 2, K, n, 0);
        ADD("fuzzy.scales", 2, K, n, 0);
        ADD("fuzzy.lower", 2, K, (int64_t)nlower(F->n), 0);
        if (F->kind == FZ_MF_BELL) ADD("fuzzy.b_raw", 1, K, 0, 0);
    }
    if (F->nout > 0) ADD("fuzzy.consequents", 2, K, F->nout, 0);
#undef ADD
    return c;
}

size_t fz_fuzzy_nparams(const fz_fuzzy *F)
{
    fz_fuzzy_tensor t[FZ_FUZZY_MAX_TENSORS];
    int c = fz_fuzzy_tensors(F, t);
    return t[c - 1].offset + t[c - 1].count;
}

int fz_fuzzy_init(fz_fuzzy *F, fz_mf_kind kind, int K, int n, int nout, fz_err *err)
{
    memset(F, 0, sizeof *F);
    if ((int)kind < 0 || (int)kind > FZ_MF_ARTICLE)
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: unknown membership form %d", (int)kind);
    if (K < 1 || K > FZ_FUZZY_MAX_K)
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: %d terms (expected 1..%d)", K,
                       FZ_FUZZY_MAX_K);
    if (n < 1 || n > FZ_FUZZY_MAX_N)
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: %d input dims (expected 1..%d)", n,
                       FZ_FUZZY_MAX_N);
    if (nout < 0 || nout > FZ_FUZZY_MAX_OUT)
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: %d outputs (expected 0..%d)", nout,
                       FZ_FUZZY_MAX_OUT);
    F->kind = kind;
    F->K = K;
    F->n = n;
    F->nout = nout;
    /* within the limits every count fits: K n² <= 2^12 2^16 = 2^28 */
    if (fz_fuzzy_nparams(F) > ((size_t)1 << 28)) {
        size_t np = fz_fuzzy_nparams(F);
        memset(F, 0, sizeof *F);
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: %zu parameters (limit %zu)", np,
                       (size_t)1 << 28);
    }
    unsigned char *masks = fz_malloc((size_t)K * (size_t)n + (size_t)K, err);
    if (!masks) {
        memset(F, 0, sizeof *F);
        return -1;
    }
    memset(masks, 1, (size_t)K * (size_t)n + (size_t)K);
    F->input_mask = masks;
    F->active = masks + (size_t)K * (size_t)n;
    return 0;
}

void fz_fuzzy_free(fz_fuzzy *F)
{
    if (!F) return;
    free(F->input_mask); /* the active mask lives in the same block */
    free(F->u);          /* r2 too */
    memset(F, 0, sizeof *F);
}

void fz_fuzzy_bind(fz_fuzzy *F, float *params, float *grads)
{
    fz_fuzzy_tensor t[FZ_FUZZY_MAX_TENSORS];
    int c = fz_fuzzy_tensors(F, t);
    F->centers = F->scales = F->lower = F->b_raw = F->S = F->t = F->conseq = NULL;
    F->dcenters = F->dscales = F->dlower = F->db_raw = F->dS = F->dt = F->dconseq = NULL;
    for (int i = 0; i < c; i++) {
        float *p = params ? params + t[i].offset : NULL;
        float *g = grads ? grads + t[i].offset : NULL;
        const char *nm = t[i].name + 6; /* after "fuzzy." */
        if (strcmp(nm, "centers") == 0) F->centers = p, F->dcenters = g;
        else if (strcmp(nm, "scales") == 0) F->scales = p, F->dscales = g;
        else if (strcmp(nm, "lower") == 0) F->lower = p, F->dlower = g;
        else if (strcmp(nm, "b_raw") == 0) F->b_raw = p, F->db_raw = g;
        else if (strcmp(nm, "S") == 0) F->S = p, F->dS = g;
        else if (strcmp(nm, "t") == 0) F->t = p, F->dt = g;
        else if (strcmp(nm, "consequents") == 0) F->conseq = p, F->dconseq = g;
    }
}

int fz_fuzzy_reserve(fz_fuzzy *F, int max_batch, fz_err *err)
{
    if (max_batch < 1)
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: batch size %d (expected >= 1)", max_batch);
    /* u and r2 per sample, then the per-term scratch of forward/backward: three (n, n)
     * matrices and seven (n) vectors (see build_term and fz_fuzzy_backward) */
    size_t per, total, nscr = 3 * (size_t)F->n * F->n + 7 * (size_t)F->n;
    if (fz_mul_size((size_t)F->K, (size_t)F->n + 1, &per) ||
        fz_mul_size(per, (size_t)max_batch, &total) || fz_add_size(total, nscr, &total) ||
        total > ((size_t)1 << 30))
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: batch %d of %d terms x %d dims too large",
                       max_batch, F->K, F->n);
    float *buf = fz_malloc(total * sizeof(float), err);
    if (!buf) return -1;
    free(F->u);
    F->u = buf;
    F->r2 = buf + (size_t)max_batch * F->K * F->n;
    F->scratch = F->r2 + (size_t)max_batch * F->K;
    F->max_batch = max_batch;
    return 0;
}

/* ---- small helpers ------------------------------------------------------------------------ */

static float softplusf_(float v) { return v > 20.0f ? v : log1pf(expf(v)); }
static float sigmoidf_(float v) { return 1.0f / (1.0f + expf(-v)); }
static double softplus_d(double v) { return v > 20.0 ? v : log1p(exp(v)); }
static float signf_(float v) { return (float)((v > 0) - (v < 0)); }

double fz_fuzzy_bell_b(const fz_fuzzy *F, int j)
{
    if (F->kind != FZ_MF_BELL) return 1.0;
    return softplus_d(F->b_raw[j]) + B_EPS_D;
}

/* ---- initialisation ------------------------------------------------------------------------ */

/* Set term j to centre c (n): scales 1, lower 0 (article: S = I, t = -c). */
static void set_term(fz_fuzzy *F, int j, const double *c)
{
    int n = F->n;
    if (F->kind == FZ_MF_ARTICLE) {
        float *S = F->S + (size_t)j * n * n, *t = F->t + (size_t)j * n;
        memset(S, 0, (size_t)n * n * sizeof *S);
        for (int i = 0; i < n; i++) {
            S[(size_t)i * n + i] = 1.0f;
            t[i] = (float)-c[i];
        }
    } else {
        float *cc = F->centers + (size_t)j * n, *s = F->scales + (size_t)j * n;
        for (int i = 0; i < n; i++) {
            cc[i] = (float)c[i];
            s[i] = 1.0f;
        }
        if (n > 1) memset(F->lower + (size_t)j * nlower(n), 0, nlower(n) * sizeof(float));
        /* b = 1: the bell starts as the Cauchy form and learns its shoulder */
        if (F->kind == FZ_MF_BELL) F->b_raw[j] = (float)log(expm1(1.0 - B_EPS_D));
    }
    if (F->nout > 0) memset(F->conseq + (size_t)j * F->nout, 0, (size_t)F->nout * sizeof(float));
}

void fz_fuzzy_init_random(fz_fuzzy *F, fz_rng *rng)
{
    double c[FZ_FUZZY_MAX_N];
    for (int j = 0; j < F->K; j++) {
        for (int i = 0; i < F->n; i++) c[i] = fz_rng_normal(rng);
        set_term(F, j, c);
    }
}

void fz_fuzzy_init_centers(fz_fuzzy *F, const float *centers)
{
    double c[FZ_FUZZY_MAX_N];
    for (int j = 0; j < F->K; j++) {
        for (int i = 0; i < F->n; i++) c[i] = centers[(size_t)j * F->n + i];
        set_term(F, j, c);
    }
}

int fz_fuzzy_init_circle(fz_fuzzy *F, double radius, fz_rng *rng, fz_err *err)
{
    if (F->n < 2)
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: circle initialisation needs >= 2 input "
                                       "dims, got %d", F->n);
    if (!(radius > 0) || !isfinite(radius))
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: circle radius %g (expected > 0)", radius);
    double c[FZ_FUZZY_MAX_N] = {0};
    double a0 = 2.0 * M_PI * fz_rng_uniform(rng);
    for (int j = 0; j < F->K; j++) {
        double a = a0 + 2.0 * M_PI * j / F->K;
        c[0] = radius * cos(a);
        c[1] = radius * sin(a);
        set_term(F, j, c);
    }
    return 0;
}

int fz_fuzzy_init_circle_groups(fz_fuzzy *F, double radius, int nclass, int nattr,
                                const unsigned char *member, fz_rng *rng, fz_err *err)
{
    if (nclass < 1 || nattr < 0 || nclass + nattr != F->K)
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: %d classes and %d attributes for %d terms",
                       nclass, nattr, F->K);
    if (fz_fuzzy_init_circle(F, radius, rng, err)) return -1;
    if (nattr == 0) return 0;
    /* slot[c]: the position of class c on the circle */
    int *slot = malloc((size_t)nclass * sizeof *slot);
    if (!slot) return fz_fail(err, FZ_ENOMEM, "out of memory");
    for (int c = 0; c < nclass; c++) slot[c] = -1;
    int next = 0;
    for (int a = 0; a <= nattr; a++)
        for (int c = 0; c < nclass; c++)
            if (slot[c] < 0 && (a == nattr || member[(size_t)a * nclass + c])) slot[c] = next++;
    double a0 = 2.0 * M_PI * fz_rng_uniform(rng);
    int rc = fz_fuzzy_init_circle_slots(F, radius, nclass, nattr, member, slot, a0, err);
    free(slot);
    return rc;
}

int fz_fuzzy_init_circle_slots(fz_fuzzy *F, double radius, int nclass, int nattr,
                               const unsigned char *member, const int *slot, double a0,
                               fz_err *err)
{
    if (nclass < 1 || nattr < 0 || nclass + nattr != F->K)
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: %d classes and %d attributes for %d terms",
                       nclass, nattr, F->K);
    if (F->n < 2)
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: circle initialisation needs >= 2 input "
                                       "dims, got %d", F->n);
    if (!(radius > 0) || !isfinite(radius) || !isfinite(a0))
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: circle radius %g, start angle %g (expected "
                                       "a radius > 0)", radius, a0);
    for (int c = 0; c < nclass; c++)
        if (slot[c] < 0 || slot[c] >= nclass)
            return fz_fail(err, FZ_EUSAGE, "fuzzy layer: class %d on slot %d of %d", c, slot[c],
                           nclass);
    double centre[FZ_FUZZY_MAX_N] = {0};
    for (int c = 0; c < nclass; c++) {
        double ang = a0 + 2.0 * M_PI * slot[c] / nclass;
        centre[0] = radius * cos(ang);
        centre[1] = radius * sin(ang);
        set_term(F, c, centre);
    }
    for (int a = 0; a < nattr; a++) {
        const unsigned char *row = member + (size_t)a * nclass;
        double m0 = 0, m1 = 0;
        int n = 0;
        for (int c = 0; c < nclass; c++)
            if (row[c]) {
                double ang = a0 + 2.0 * M_PI * slot[c] / nclass;
                m0 += cos(ang), m1 += sin(ang), n++;
            }
        double far = 0;
        if (n) {
            m0 *= radius / n, m1 *= radius / n;
            for (int c = 0; c < nclass; c++)
                if (row[c]) {
                    double ang = a0 + 2.0 * M_PI * slot[c] / nclass;
                    far = fmax(far, hypot(radius * cos(ang) - m0, radius * sin(ang) - m1));
                }
        }
        centre[0] = m0, centre[1] = m1;
        set_term(F, nclass + a, centre);
        /* A membership of 1/2 at the farthest class, r = s far: exp(-r^2) = 1/2 (gauss),
         * 1/(1 + r^2) = 1/2 (cauchy, and bell at its initial b = 1), and exp(-r) = 1/2 for the
         * article form, whose norm is not squared (S = s I, t = -s c). */
        int nn = F->n, j = nclass + a;
        double r_half = F->kind == FZ_MF_GAUSS     ? sqrt(log(2.0))
                        : F->kind == FZ_MF_ARTICLE ? log(2.0)
                                                   : 1.0;
        double sc = far > 1e-9 ? r_half / far : 1.0;
        if (F->kind == FZ_MF_ARTICLE) {
            float *S = F->S + (size_t)j * nn * nn, *t = F->t + (size_t)j * nn;
            for (int i = 0; i < nn; i++) {
                S[(size_t)i * nn + i] = (float)sc;
                t[i] = (float)(sc * t[i]);
            }
        } else {
            for (int i = 0; i < nn; i++) F->scales[(size_t)j * nn + i] = (float)sc;
        }
    }
    return 0;
}

/* One class for sorting by angle; classes without a mean sort after all others. */
typedef struct class_angle {
    double angle;
    int cls, present;
} class_angle;

static int cmp_class_angle(const void *pa, const void *pb)
{
    const class_angle *a = pa, *b = pb;
    if (a->present != b->present) return b->present - a->present;
    if (a->present && a->angle != b->angle) return a->angle < b->angle ? -1 : 1;
    return a->cls - b->cls; /* ties and absent classes keep their index order */
}

int fz_circle_order_by_angle(int nclass, const double *means, const size_t *count, int *slot,
                             double *a0, fz_err *err)
{
    if (nclass < 1 || nclass > FZ_FUZZY_MAX_K)
        return fz_fail(err, FZ_EUSAGE, "circle order: %d classes (expected 1 to %d)", nclass,
                       FZ_FUZZY_MAX_K);
    class_angle *ca = malloc((size_t)nclass * sizeof *ca);
    if (!ca) return fz_fail(err, FZ_ENOMEM, "out of memory");
    /* the centre the angles are measured around: the mean of the class means (not of the
     * rows, so that a frequent class does not pull it towards itself) */
    double cx = 0, cy = 0;
    int present = 0;
    for (int c = 0; c < nclass; c++)
        if (count[c]) {
            cx += means[2 * c], cy += means[2 * c + 1], present++;
        }
    if (present) cx /= present, cy /= present;
    for (int c = 0; c < nclass; c++) {
        ca[c].cls = c;
        ca[c].present = count[c] > 0;
        ca[c].angle = ca[c].present ? atan2(means[2 * c + 1] - cy, means[2 * c] - cx) : 0;
    }
    qsort(ca, (size_t)nclass, sizeof *ca, cmp_class_angle);
    for (int i = 0; i < nclass; i++) slot[ca[i].cls] = i;
    /* a0: the rotation that puts each class's slot closest to its own angle, the circular
     * mean of angle_c - 2 pi slot_c / nclass (0 when no class has a mean) */
    double s = 0, co = 0;
    for (int i = 0; i < nclass; i++)
        if (ca[i].present) {
            double d = ca[i].angle - 2.0 * M_PI * i / nclass;
            s += sin(d), co += cos(d);
        }
    if (a0) *a0 = (s != 0 || co != 0) ? atan2(s, co) : 0;
    free(ca);
    return 0;
}

/* ---- forward ----------------------------------------------------------------------------- */

/* Both families are u = W_j (x - z0_j) + t0_j with a dense W_j:
 *   ellipsoid  W = A_j, z0 = c_j, t0 = 0;        article  W = S_j, z0 = 0, t0 = t_j,
 * with the rows and columns of masked dims (and their t0 entries) set to 0, so the hot loops
 * below are plain axpys over contiguous rows with no mask tests. For the ellipsoid forms W is
 * lower triangular and the loops skip the zero half (lo = 1). */
typedef struct term_view {
    float *W, *Wt;  /* (n, n) row-major, and its transpose */
    float *z0, *t0; /* (n) */
    int lo;         /* 1: W lower triangular */
} term_view;

/* The scratch block (fz_fuzzy_reserve): W, Wt, dWt (n, n) each, then z0, t0, z, g, dz, dz0,
 * dt0 (n) each. */
static term_view scratch_view(const fz_fuzzy *F)
{
    size_t nn = (size_t)F->n * F->n;
    term_view v = {F->scratch, F->scratch + nn, F->scratch + 3 * nn,
                   F->scratch + 3 * nn + F->n, F->kind != FZ_MF_ARTICLE};
    return v;
}

static void build_term(const fz_fuzzy *F, int j, term_view *v)
{
    int n = F->n;
    const unsigned char *im = F->input_mask + (size_t)j * n;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < n; k++) {
            float w = 0;
            if (im[i] && im[k]) {
                if (F->kind == FZ_MF_ARTICLE) w = F->S[((size_t)j * n + i) * n + k];
                else if (k == i) w = fabsf(F->scales[(size_t)j * n + i]) + FZ_FUZZY_DIAG_EPS;
                else if (k < i) w = F->lower[(size_t)j * nlower(n) + lower_row(i) + k];
            }
            v->W[(size_t)i * n + k] = w;
            v->Wt[(size_t)k * n + i] = w;
        }
        if (F->kind == FZ_MF_ARTICLE) {
            v->z0[i] = 0;
            v->t0[i] = im[i] ? F->t[(size_t)j * n + i] : 0.0f;
        } else {
            v->z0[i] = im[i] ? F->centers[(size_t)j * n + i] : 0.0f;
            v->t0[i] = 0;
        }
    }
}

void fz_fuzzy_forward(fz_fuzzy *F, const float *x, float *m, int B)
{
    int K = F->K, n = F->n;
    term_view v = scratch_view(F);
    float *z = F->scratch + 3 * (size_t)n * n + 2 * n;
    for (int j = 0; j < K; j++) {
        if (!F->active[j]) {
            for (int b = 0; b < B; b++) {
                m[(size_t)b * K + j] = 0;
                F->r2[(size_t)b * K + j] = 0;
                memset(F->u + ((size_t)b * K + j) * n, 0, (size_t)n * sizeof(float));
            }
            continue;
        }
        build_term(F, j, &v);
        float bb = F->kind == FZ_MF_BELL ? softplusf_(F->b_raw[j]) + FZ_FUZZY_B_EPS : 1.0f;
        for (int b = 0; b < B; b++) {
            const float *xb = x + (size_t)b * n;
            float *u = F->u + ((size_t)b * K + j) * n;
            for (int i = 0; i < n; i++) {
                z[i] = xb[i] - v.z0[i];
                u[i] = v.t0[i];
            }
            for (int k = 0; k < n; k++) { /* u += z_k W[:, k] */
                const float *col = v.Wt + (size_t)k * n;
                float zk = z[k];
                for (int i = v.lo ? k : 0; i < n; i++) u[i] += zk * col[i];
            }
            float r2 = 0;
            for (int i = 0; i < n; i++) r2 += u[i] * u[i];
            float mv;
            switch (F->kind) {
            case FZ_MF_GAUSS: mv = expf(-r2); break;
            case FZ_MF_CAUCHY: mv = 1.0f / (1.0f + r2); break;
            case FZ_MF_BELL: mv = 1.0f / (1.0f + powf(r2 + FZ_FUZZY_BELL_EPS, bb)); break;
            default: mv = expf(-sqrtf(r2)); break;
            }
            /* denormal memberships would make every later product crawl; they are 0 */
            if (mv < FLT_MIN) mv = 0;
            F->r2[(size_t)b * K + j] = r2;
            m[(size_t)b * K + j] = mv;
        }
    }
}

/* ---- backward ---------------------------------------------------------------------------- */

/* Add the dense gradients of term j (dWt = dW transposed, dz0, dt0; masked entries are
 * dropped) into the bound parameter gradients, skipping frozen groups. */
static void scatter_term(fz_fuzzy *F, int j, const float *dWt, const float *dz0,
                         const float *dt0)
{
    int n = F->n;
    unsigned fr = F->freeze;
    const unsigned char *im = F->input_mask + (size_t)j * n;
    if (F->kind == FZ_MF_ARTICLE) {
        for (int i = 0; i < n; i++) {
            if (!im[i]) continue;
            if (F->dt && !(fr & FZ_FREEZE_CENTERS)) F->dt[(size_t)j * n + i] += dt0[i];
            if (!F->dS || !dWt) continue;
            float *row = F->dS + ((size_t)j * n + i) * n;
            for (int k = 0; k < n; k++)
                if (im[k] && !(fr & (k == i ? FZ_FREEZE_SCALES : FZ_FREEZE_LOWER)))
                    row[k] += dWt[(size_t)k * n + i];
        }
        return;
    }
    for (int i = 0; i < n; i++) {
        if (!im[i]) continue;
        /* u = W (x - c): dL/dc = -dL/dz */
        if (F->dcenters && !(fr & FZ_FREEZE_CENTERS)) F->dcenters[(size_t)j * n + i] -= dz0[i];
        if (dWt && F->dscales && !(fr & FZ_FREEZE_SCALES)) {
            float s = F->scales[(size_t)j * n + i];
            F->dscales[(size_t)j * n + i] += dWt[(size_t)i * n + i] * signf_(s);
        }
        if (!dWt) continue;
        if (F->dlower && !(fr & FZ_FREEZE_LOWER)) {
            float *row = F->dlower + (size_t)j * nlower(n) + lower_row(i);
            for (int k = 0; k < i; k++)
                if (im[k]) row[k] += dWt[(size_t)k * n + i];
        }
    }
}

void fz_fuzzy_backward(fz_fuzzy *F, const float *x, const float *m, const float *dm,
                       float *dx, int B)
{
    int K = F->K, n = F->n;
    size_t nn = (size_t)n * n;
    term_view v = scratch_view(F);
    float *z = F->scratch + 3 * nn + 2 * n, *g = z + n, *dz = g + n, *dz0 = dz + n,
          *dt0 = dz0 + n, *dWt = F->scratch + 2 * nn;
    /* Which dense gradients are wanted at all. */
    unsigned fr = F->freeze;
    int want_w = F->kind == FZ_MF_ARTICLE
                     ? F->dS && (fr & (FZ_FREEZE_SCALES | FZ_FREEZE_LOWER)) !=
                                    (FZ_FREEZE_SCALES | FZ_FREEZE_LOWER)
                     : (F->dscales && !(fr & FZ_FREEZE_SCALES)) ||
                           (F->dlower && !(fr & FZ_FREEZE_LOWER) && n > 1);
    int want_b = F->db_raw && !(fr & FZ_FREEZE_BELL);
    if (dx) memset(dx, 0, (size_t)B * n * sizeof *dx);
    for (int j = 0; j < K; j++) {
        if (!F->active[j]) continue;
        build_term(F, j, &v);
        if (want_w) memset(dWt, 0, nn * sizeof *dWt);
        memset(dz0, 0, 2 * (size_t)n * sizeof *dz0);
        float bb = 1.0f, sg = 0.0f;
        if (F->kind == FZ_MF_BELL) {
            bb = softplusf_(F->b_raw[j]) + FZ_FUZZY_B_EPS;
            sg = sigmoidf_(F->b_raw[j]);
        }
        double dbsum = 0;
        int any = 0;
        for (int b = 0; b < B; b++) {
            size_t bj = (size_t)b * K + j;
            float gm = dm[bj], mv = m[bj], r2 = F->r2[bj], gam; /* dL/du = gam * u */
            switch (F->kind) {
            case FZ_MF_GAUSS: /* dm/dr² = -m */
                gam = -2.0f * gm * mv;
                break;
            case FZ_MF_CAUCHY: /* dm/dr² = -m² */
                gam = -2.0f * gm * mv * mv;
                break;
            case FZ_MF_BELL: {
                /* m = 1/(1+p), p = (r²+eps)^b: dm/dp = -m², dp/dr² = b p/(r²+eps),
                 * dp/db = p ln(r²+eps), db/db_raw = sigmoid(b_raw) */
                float gp = -gm * mv * mv;
                if (fabsf(gp) < FLT_MIN) continue;
                float q = r2 + FZ_FUZZY_BELL_EPS, p = powf(q, bb);
                gam = 2.0f * gp * bb * p / q;
                dbsum += (double)gp * p * logf(q);
                break;
            }
            default: { /* article: m = exp(-r), r = ||u||: dm/du = -m u / r (0 at r = 0) */
                float r = sqrtf(r2);
                gam = r > 0 ? -gm * mv / r : 0.0f;
                break;
            }
            }
            if (fabsf(gam) < FLT_MIN) continue; /* nothing to add (a NaN goes on) */
            any = 1;
            const float *xb = x + (size_t)b * n, *u = F->u + bj * n;
            for (int i = 0; i < n; i++) {
                g[i] = gam * u[i];
                z[i] = xb[i] - v.z0[i];
                dz[i] = 0;
                dt0[i] += g[i];
            }
            for (int i = 0; i < n; i++) { /* dz = Wᵀ g */
                const float *row = v.W + (size_t)i * n;
                float gi = g[i];
                int end = v.lo ? i + 1 : n;
                for (int k = 0; k < end; k++) dz[k] += gi * row[k];
            }
            if (want_w)
                for (int k = 0; k < n; k++) { /* dW += g zᵀ, stored transposed */
                    float *col = dWt + (size_t)k * n, zk = z[k];
                    for (int i = v.lo ? k : 0; i < n; i++) col[i] += zk * g[i];
                }
            float *dxb = dx ? dx + (size_t)b * n : NULL;
            for (int k = 0; k < n; k++) {
                dz0[k] += dz[k];
                if (dxb) dxb[k] += dz[k];
            }
        }
        if (any) scatter_term(F, j, want_w ? dWt : NULL, dz0, dt0);
        if (want_b) F->db_raw[j] += (float)(dbsum * sg);
    }
}

/* ---- freezing and pruning ------------------------------------------------------------------ */

void fz_fuzzy_frozen(const fz_fuzzy *F, unsigned char *frozen)
{
    int K = F->K, n = F->n;
    unsigned fr = F->freeze;
    unsigned char *p = frozen;
    if (F->kind == FZ_MF_ARTICLE) {
        for (int j = 0; j < K; j++) {
            const unsigned char *im = F->input_mask + (size_t)j * n;
            for (int i = 0; i < n; i++)
                for (int k = 0; k < n; k++) {
                    unsigned grp = i == k ? FZ_FREEZE_SCALES : FZ_FREEZE_LOWER;
                    *p++ = !F->active[j] || !im[i] || !im[k] || (fr & grp);
                }
        }
        for (int j = 0; j < K; j++)
            for (int i = 0; i < n; i++)
                *p++ = !F->active[j] || !F->input_mask[(size_t)j * n + i] ||
                       (fr & FZ_FREEZE_CENTERS);
    } else {
        for (int g = 0; g < 2; g++) {
            unsigned grp = g == 0 ? FZ_FREEZE_CENTERS : FZ_FREEZE_SCALES;
            for (int j = 0; j < K; j++)
                for (int i = 0; i < n; i++)
                    *p++ = !F->active[j] || !F->input_mask[(size_t)j * n + i] || (fr & grp);
        }
        for (int j = 0; j < K; j++) {
            const unsigned char *im = F->input_mask + (size_t)j * n;
            for (int i = 1; i < n; i++)
                for (int k = 0; k < i; k++)
                    *p++ = !F->active[j] || !im[i] || !im[k] || (fr & FZ_FREEZE_LOWER);
        }
        if (F->kind == FZ_MF_BELL)
            for (int j = 0; j < K; j++) *p++ = !F->active[j] || (fr & FZ_FREEZE_BELL);
    }
    if (F->nout > 0)
        for (int j = 0; j < K; j++)
            for (int o = 0; o < F->nout; o++) *p++ = !F->active[j] || (fr & FZ_FREEZE_CONSEQ);
}

/* Move the rows of the active terms of every tensor of block (laid out for old K) to the
 * layout of the new K. Destinations never pass their sources (see fz_fuzzy_prune). */
static void compact_block(float *block, const fz_fuzzy_tensor *told,
                          const fz_fuzzy_tensor *tnew, int nt, const int *keep, int Knew,
                          int Kold)
{
    for (int t = 0; t < nt; t++) {
        size_t rs = told[t].count / (size_t)Kold;
        for (int q = 0; q < Knew; q++)
            memmove(block + tnew[t].offset + (size_t)q * rs,
                    block + told[t].offset + (size_t)keep[q] * rs, rs * sizeof(float));
    }
}

int fz_fuzzy_prune(fz_fuzzy *F, int *old_index, fz_err *err)
{
    int K = F->K, n = F->n, Knew = 0;
    int keep[FZ_FUZZY_MAX_K];
    for (int j = 0; j < K; j++)
        if (F->active[j]) keep[Knew++] = j;
    if (Knew == 0) return fz_fail(err, FZ_EDATA, "fuzzy layer: no active term to keep");
    fz_fuzzy_tensor told[FZ_FUZZY_MAX_TENSORS], tnew[FZ_FUZZY_MAX_TENSORS];
    int nt = fz_fuzzy_tensors(F, told);
    /* The first tensor starts the slice: recover the block starts from its view. */
    float *params = F->kind == FZ_MF_ARTICLE ? F->S : F->centers;
    float *grads = F->kind == FZ_MF_ARTICLE ? F->dS : F->dcenters;
    F->K = Knew;
    fz_fuzzy_tensors(F, tnew);
    /* Every new offset is <= the old one and rows move down in order, so a memmove per row
     * never overwrites a row not yet moved. */
    if (params) compact_block(params, told, tnew, nt, keep, Knew, K);
    if (grads) compact_block(grads, told, tnew, nt, keep, Knew, K);
    for (int q = 0; q < Knew; q++)
        memmove(F->input_mask + (size_t)q * n, F->input_mask + (size_t)keep[q] * n, (size_t)n);
    /* the active mask now follows the shorter input mask */
    F->active = F->input_mask + (size_t)Knew * n;
    memset(F->active, 1, (size_t)Knew);
    if (old_index) memcpy(old_index, keep, (size_t)Knew * sizeof *keep);
    fz_fuzzy_bind(F, params, grads);
    return Knew;
}

/* ---- heads ------------------------------------------------------------------------------- */

void fz_fuzzy_nw_forward(const fz_fuzzy *F, const float *m, float *y, int B)
{
    int K = F->K, O = F->nout;
    for (int b = 0; b < B; b++) {
        const float *mb = m + (size_t)b * K;
        float *yb = y + (size_t)b * O;
        float den = 0;
        for (int o = 0; o < O; o++) yb[o] = 0;
        for (int j = 0; j < K; j++) {
            if (!F->active[j]) continue;
            den += mb[j];
            const float *w = F->conseq + (size_t)j * O;
            for (int o = 0; o < O; o++) yb[o] += mb[j] * w[o];
        }
        float inv = 1.0f / (den + FZ_FUZZY_NW_EPS);
        for (int o = 0; o < O; o++) yb[o] *= inv;
    }
}

void fz_fuzzy_nw_backward(fz_fuzzy *F, const float *m, const float *dy, float *dm, int B)
{
    int K = F->K, O = F->nout;
    int gw = F->dconseq && !(F->freeze & FZ_FREEZE_CONSEQ);
    float y[FZ_FUZZY_MAX_OUT];
    for (int b = 0; b < B; b++) {
        const float *mb = m + (size_t)b * K, *dyb = dy + (size_t)b * O;
        float *dmb = dm + (size_t)b * K;
        float den = 0;
        for (int o = 0; o < O; o++) y[o] = 0;
        for (int j = 0; j < K; j++) {
            if (!F->active[j]) continue;
            den += mb[j];
            const float *w = F->conseq + (size_t)j * O;
            for (int o = 0; o < O; o++) y[o] += mb[j] * w[o];
        }
        float inv = 1.0f / (den + FZ_FUZZY_NW_EPS);
        for (int o = 0; o < O; o++) y[o] *= inv;
        /* dy/dm_j = (w_j - y) / (sum m + eps), dy/dw_j = m_j / (sum m + eps) */
        for (int j = 0; j < K; j++) {
            if (!F->active[j]) continue;
            const float *w = F->conseq + (size_t)j * O;
            float acc = 0;
            for (int o = 0; o < O; o++) acc += dyb[o] * (w[o] - y[o]);
            dmb[j] += acc * inv;
            if (gw) {
                float *dw = F->dconseq + (size_t)j * O;
                float s = mb[j] * inv;
                for (int o = 0; o < O; o++) dw[o] += dyb[o] * s;
            }
        }
    }
}

void fz_fuzzy_max(const fz_fuzzy *F, const float *m, int B, int *cls, float *score)
{
    int K = F->K;
    for (int b = 0; b < B; b++) {
        const float *mb = m + (size_t)b * K;
        int best = -1;
        for (int j = 0; j < K; j++)
            if (F->active[j] && (best < 0 || mb[j] > mb[best])) best = j;
        if (cls) cls[b] = best;
        if (score) score[b] = best < 0 ? 0.0f : mb[best];
    }
}

/* ---- inspection ----------------------------------------------------------------------------- */

int fz_eigen_sym(int n, const double *M, double *lambda, double *vecs, fz_err *err)
{
    size_t nn = (size_t)n * n;
    double *a = fz_malloc((2 * nn + (size_t)n) * sizeof(double) + (size_t)n * sizeof(int), err);
    if (!a) return -1;
    double *v = a + nn, *ev = v + nn;
    int *ord = (int *)(ev + n);
    memcpy(a, M, nn * sizeof *a);
    for (size_t i = 0; i < nn; i++) v[i] = 0;
    for (int i = 0; i < n; i++) v[(size_t)i * n + i] = 1;
    /* Cyclic Jacobi: rotate away each off-diagonal a_pq in turn until they vanish. The
     * columns of v collect the rotations: a = vᵀ M v ends diagonal. */
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (int p = 0; p < n; p++)
            for (int q = 0; q < n; q++) {
                double e = a[(size_t)p * n + q] * a[(size_t)p * n + q];
                if (p == q) diag += e;
                else off += e;
            }
        if (off == 0 || off <= 1e-30 * diag) break;
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[(size_t)p * n + q];
                if (apq == 0) continue;
                double app = a[(size_t)p * n + p], aqq = a[(size_t)q * n + q];
                double theta = (aqq - app) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < n; k++) { /* a = a J (columns p, q) */
                    double akp = a[(size_t)k * n + p], akq = a[(size_t)k * n + q];
                    a[(size_t)k * n + p] = c * akp - s * akq;
                    a[(size_t)k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* a = Jᵀ a (rows p, q) */
                    double apk = a[(size_t)p * n + k], aqk = a[(size_t)q * n + k];
                    a[(size_t)p * n + k] = c * apk - s * aqk;
                    a[(size_t)q * n + k] = s * apk + c * aqk;
                }
                a[(size_t)p * n + q] = a[(size_t)q * n + p] = 0;
                for (int k = 0; k < n; k++) {
                    double vkp = v[(size_t)k * n + p], vkq = v[(size_t)k * n + q];
                    v[(size_t)k * n + p] = c * vkp - s * vkq;
                    v[(size_t)k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < n; i++) {
        ev[i] = a[(size_t)i * n + i];
        ord[i] = i;
    }
    for (int i = 1; i < n; i++) { /* insertion sort, ascending */
        int o = ord[i], k = i;
        while (k > 0 && ev[ord[k - 1]] > ev[o]) {
            ord[k] = ord[k - 1];
            k--;
        }
        ord[k] = o;
    }
    for (int i = 0; i < n; i++) {
        if (lambda) lambda[i] = ev[ord[i]];
        if (vecs)
            for (int k = 0; k < n; k++) vecs[(size_t)i * n + k] = v[(size_t)k * n + ord[i]];
    }
    free(a);
    return 0;
}

/* Solve S_D c_D = -t_D on the dims D of im by Gaussian elimination with partial pivoting;
 * c = 0 outside D. */
static int article_center(const fz_fuzzy *F, int j, double *c, fz_err *err)
{
    int n = F->n, nd = 0;
    const float *S = F->S + (size_t)j * n * n, *t = F->t + (size_t)j * n;
    const unsigned char *im = F->input_mask + (size_t)j * n;
    int idx[FZ_FUZZY_MAX_N];
    for (int i = 0; i < n; i++) {
        c[i] = 0;
        if (im[i]) idx[nd++] = i;
    }
    if (nd == 0) return 0;
    double *a = fz_malloc((size_t)nd * (nd + 1) * sizeof(double), err); /* [S_D | -t_D] */
    if (!a) return -1;
    int w = nd + 1;
    double scale = 0;
    for (int r = 0; r < nd; r++) {
        for (int k = 0; k < nd; k++) {
            a[(size_t)r * w + k] = S[(size_t)idx[r] * n + idx[k]];
            scale = fmax(scale, fabs(a[(size_t)r * w + k]));
        }
        a[(size_t)r * w + nd] = -(double)t[idx[r]];
    }
    for (int col = 0; col < nd; col++) {
        int piv = col;
        for (int r = col + 1; r < nd; r++)
            if (fabs(a[(size_t)r * w + col]) > fabs(a[(size_t)piv * w + col])) piv = r;
        if (!(fabs(a[(size_t)piv * w + col]) > 1e-12 * scale)) {
            free(a);
            return fz_fail(err, FZ_EDATA, "fuzzy term %d: S is singular, no centre", j);
        }
        if (piv != col)
            for (int k = 0; k < w; k++) {
                double tmp = a[(size_t)col * w + k];
                a[(size_t)col * w + k] = a[(size_t)piv * w + k];
                a[(size_t)piv * w + k] = tmp;
            }
        for (int r = col + 1; r < nd; r++) {
            double f = a[(size_t)r * w + col] / a[(size_t)col * w + col];
            for (int k = col; k < w; k++) a[(size_t)r * w + k] -= f * a[(size_t)col * w + k];
        }
    }
    for (int r = nd - 1; r >= 0; r--) {
        double s = a[(size_t)r * w + nd];
        for (int k = r + 1; k < nd; k++) s -= a[(size_t)r * w + k] * c[idx[k]];
        c[idx[r]] = s / a[(size_t)r * w + r];
    }
    free(a);
    return 0;
}

int fz_fuzzy_term(const fz_fuzzy *F, int j, double *center, double *A, double *M, fz_err *err)
{
    int n = F->n;
    if (j < 0 || j >= F->K)
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: term %d (expected 0..%d)", j, F->K - 1);
    const unsigned char *im = F->input_mask + (size_t)j * n;
    double *a = A;
    if (!a && M) {
        a = fz_malloc((size_t)n * n * sizeof(double), err);
        if (!a) return -1;
    }
    if (a) {
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++) {
                double v = 0;
                if (im[i] && im[k]) {
                    if (F->kind == FZ_MF_ARTICLE) v = F->S[((size_t)j * n + i) * n + k];
                    else if (k == i) v = fabs((double)F->scales[(size_t)j * n + i]) + DIAG_EPS_D;
                    else if (k < i) v = F->lower[(size_t)j * nlower(n) + lower_row(i) + k];
                }
                a[(size_t)i * n + k] = v;
            }
    }
    if (M) {
        for (int i = 0; i < n; i++)
            for (int k = 0; k < n; k++) {
                double s = 0;
                for (int r = 0; r < n; r++) s += a[(size_t)r * n + i] * a[(size_t)r * n + k];
                M[(size_t)i * n + k] = s;
            }
    }
    if (a != A) free(a);
    if (center) {
        if (F->kind == FZ_MF_ARTICLE) return article_center(F, j, center, err);
        for (int i = 0; i < n; i++) center[i] = F->centers[(size_t)j * n + i];
    }
    return 0;
}

double fz_fuzzy_level_r2(const fz_fuzzy *F, int j, double alpha)
{
    if (!(alpha > 0 && alpha <= 1)) return NAN;
    switch (F->kind) {
    case FZ_MF_GAUSS:
        return -log(alpha);
    case FZ_MF_CAUCHY:
        return 1.0 / alpha - 1.0;
    case FZ_MF_BELL: {
        double v = pow(1.0 / alpha - 1.0, 1.0 / fz_fuzzy_bell_b(F, j)) - BELL_EPS_D;
        return v > 0 ? v : 0;
    }
    default:
        return log(alpha) * log(alpha);
    }
}

int fz_fuzzy_domain(const fz_fuzzy *F, int j, double alpha, double *center, double *lambda,
                    double *axes, double *semi, fz_err *err)
{
    int n = F->n;
    if (!(alpha > 0 && alpha <= 1))
        return fz_fail(err, FZ_EUSAGE, "fuzzy layer: level %g (expected 0 < alpha <= 1)", alpha);
    double *M = fz_malloc(((size_t)n * n + n) * sizeof(double), err);
    if (!M) return -1;
    double *lam = M + (size_t)n * n;
    if (fz_fuzzy_term(F, j, center, NULL, M, err) || fz_eigen_sym(n, M, lam, axes, err)) {
        free(M);
        return -1;
    }
    double level = fz_fuzzy_level_r2(F, j, alpha);
    for (int i = 0; i < n; i++) {
        if (lambda) lambda[i] = lam[i];
        if (semi) semi[i] = lam[i] > 0 ? sqrt(level / lam[i]) : INFINITY;
    }
    free(M);
    return 0;
}

void fz_fuzzy_point(const fz_fuzzy *F, const float *x, double *r2, double *m)
{
    int n = F->n;
    for (int j = 0; j < F->K; j++) {
        if (!F->active[j]) {
            if (r2) r2[j] = INFINITY;
            if (m) m[j] = 0;
            continue;
        }
        const unsigned char *im = F->input_mask + (size_t)j * n;
        double s2 = 0, d[FZ_FUZZY_MAX_N];
        if (F->kind == FZ_MF_ARTICLE) {
            const float *S = F->S + (size_t)j * n * n, *t = F->t + (size_t)j * n;
            for (int i = 0; i < n; i++) {
                if (!im[i]) continue;
                double a = t[i];
                for (int k = 0; k < n; k++)
                    if (im[k]) a += (double)S[(size_t)i * n + k] * x[k];
                s2 += a * a;
            }
        } else {
            const float *c = F->centers + (size_t)j * n, *s = F->scales + (size_t)j * n;
            const float *lo = F->lower + (size_t)j * nlower(n);
            for (int i = 0; i < n; i++) d[i] = im[i] ? (double)x[i] - c[i] : 0.0;
            for (int i = 0; i < n; i++) {
                if (!im[i]) continue;
                double a = (fabs((double)s[i]) + DIAG_EPS_D) * d[i];
                for (int k = 0; k < i; k++) a += (double)lo[lower_row(i) + k] * d[k];
                s2 += a * a;
            }
        }
        double mv;
        switch (F->kind) {
        case FZ_MF_GAUSS: mv = exp(-s2); break;
        case FZ_MF_CAUCHY: mv = 1.0 / (1.0 + s2); break;
        case FZ_MF_BELL: mv = 1.0 / (1.0 + pow(s2 + BELL_EPS_D, fz_fuzzy_bell_b(F, j))); break;
        default: mv = exp(-sqrt(s2)); break;
        }
        if (r2) r2[j] = s2;
        if (m) m[j] = mv;
    }
}
