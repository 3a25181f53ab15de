/* fuzzy.h - a layer of K fuzzy terms over an n-dimensional input, and its
 * defuzzification heads.
 *
 * The input is a batch of points x (B, n) (the latent mu of a VAE); the output is one
 * membership per term, m (B, K), in [0, 1]. The layer is trained jointly with the network
 * in front of it, so backward also gives dx.
 *
 * Membership forms (one per layer, fz_mf_kind)
 *
 *   Ellipsoid forms. Term j has a centre c_j (n) and a lower-triangular A_j (n, n) whose
 *   diagonal is |s_j| + 1e-7 (s_j the raw "scales") and whose strictly-lower part is free,
 *   so M_j = A_jᵀA_j is positive definite and
 *       r² = ||A_j (x - c_j)||² = (x - c_j)ᵀ M_j (x - c_j)
 *   FZ_MF_GAUSS    m = exp(-r²)
 *   FZ_MF_CAUCHY   m = 1 / (1 + r²)
 *   FZ_MF_BELL     m = 1 / (1 + (r² + 1e-6)^b),  b = softplus(b_raw) + 1e-6 per term
 *                  (softplus as PyTorch: b_raw > 20 -> b_raw)
 *
 *   FZ_MF_ARTICLE  m = exp(-||S_j x + t_j||), the norm NOT squared, S_j a full
 *                  unconstrained (n, n) matrix and t_j (n). Its centre is -S_j⁻¹ t_j (when S_j
 *                  is invertible) and, with M_j = S_jᵀS_j, ||S_j x + t_j||² = (x-c)ᵀM_j(x-c).
 *                  At the centre the gradient of the norm is undefined; it is taken as 0.
 *
 * Parameter layout. The layer owns no parameters: it says how many floats it needs
 * (fz_fuzzy_nparams) and is bound to a slice of the model's parameter block and the same
 * slice of the gradient block (fz_fuzzy_bind), as the layers of nn.h. Inside the slice,
 * tensor after tensor, each row-major:
 *
 *   ellipsoid forms   "fuzzy.centers"    (K, n)         c
 *                     "fuzzy.scales"     (K, n)         s, raw: diagonal = |s| + 1e-7
 *                     "fuzzy.lower"      (K, n(n-1)/2)  strictly-lower part of A, by rows:
 *                                                       A[i][k] (k < i) at i(i-1)/2 + k
 *                     "fuzzy.b_raw"      (K)            FZ_MF_BELL only
 *   article form      "fuzzy.S"          (K, n, n)
 *                     "fuzzy.t"          (K, n)
 *   all, if nout > 0  "fuzzy.consequents" (K, nout)     Nadaraya-Watson consequents w
 *
 * fz_fuzzy_tensors lists these with offsets and shapes (for safetensors files).
 *
 * Masks (owned by the layer, written directly by the caller; all 1 after init):
 *   input_mask (K, n): 1 = term j looks at input dim i. A term that looks at the dims D is
 *     the same term in the subspace R^D: rows and columns of A_j (S_j) and entries of c_j
 *     (t_j) outside D take no part, so r² does not depend on x_i for i outside D, and those
 *     parameters get no gradient. The domain of the term is a cylinder along the other dims.
 *   active (K): an inactive term outputs m = 0, takes no part in the heads and gets no
 *     gradient; fz_fuzzy_prune removes inactive terms.
 *
 * Freezing. freeze holds FZ_FREEZE_* bits: the frozen groups get no gradient in backward,
 * and fz_fuzzy_frozen marks them (and every parameter without influence: inactive terms,
 * masked dims) in the byte mask fz_optim_step takes, so weight decay and moments leave them
 * alone. For the article form CENTERS means t, SCALES the diagonal of S and LOWER the
 * off-diagonal entries of S.
 *
 * Life of a layer
 *
 *     fz_fuzzy F;
 *     fz_fuzzy_init(&F, FZ_MF_GAUSS, K, n, nout, &err);     // allocates the masks
 *     fz_fuzzy_bind(&F, params + off, grads + off);         // fz_fuzzy_nparams(&F) floats
 *     fz_fuzzy_init_random(&F, &rng);                       // or _init_centers / _circle
 *     fz_fuzzy_reserve(&F, max_batch, &err);                // state kept for backward
 *     fz_fuzzy_forward(&F, x, m, B);
 *     fz_fuzzy_nw_forward(&F, m, y, B);                     // optional head
 *     ... dm = dLoss/dm, then fz_fuzzy_nw_backward(&F, m, dy, dm, B) adds the head's part
 *     fz_fuzzy_backward(&F, x, m, dm, dx, B);
 *     fz_fuzzy_free(&F);
 *
 * forward and backward never allocate; the inspection functions (double precision) do.
 */
#ifndef FZ_FUZZY_H
#define FZ_FUZZY_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"
#include "util.h"

typedef enum fz_mf_kind {
    FZ_MF_GAUSS = 0, /* exp(-r²) */
    FZ_MF_CAUCHY,    /* 1 / (1 + r²) */
    FZ_MF_BELL,      /* 1 / (1 + (r² + 1e-6)^b) */
    FZ_MF_ARTICLE    /* exp(-||S x + t||) */
} fz_mf_kind;

/* Hard limits checked by fz_fuzzy_init (and the parameter count <= 2^28). */
#define FZ_FUZZY_MAX_K 4096
#define FZ_FUZZY_MAX_N 256
#define FZ_FUZZY_MAX_OUT 4096

/* Constants of the forms. */
#define FZ_FUZZY_DIAG_EPS 1e-7f  /* diagonal of A = |s| + this */
#define FZ_FUZZY_BELL_EPS 1e-6f  /* inside the bell's power */
#define FZ_FUZZY_B_EPS 1e-6f     /* b = softplus(b_raw) + this */
#define FZ_FUZZY_NW_EPS 1e-12f   /* Nadaraya-Watson denominator */

/* Freeze groups. */
enum {
    FZ_FREEZE_CENTERS = 1, /* c (article: t) */
    FZ_FREEZE_SCALES = 2,  /* s (article: diagonal of S) */
    FZ_FREEZE_LOWER = 4,   /* strictly-lower part of A (article: off-diagonal of S) */
    FZ_FREEZE_BELL = 8,    /* b_raw */
    FZ_FREEZE_CONSEQ = 16  /* Nadaraya-Watson consequents */
};

typedef struct fz_fuzzy {
    fz_mf_kind kind;
    int K, n;     /* terms, input dims */
    int nout;     /* Nadaraya-Watson outputs; 0 = no consequents */
    unsigned freeze; /* FZ_FREEZE_* bits */

    unsigned char *input_mask; /* (K, n), owned */
    unsigned char *active;     /* (K), owned */

    /* views bound by fz_fuzzy_bind (NULL when the form has no such tensor) */
    float *centers, *scales, *lower, *b_raw; /* ellipsoid forms */
    float *S, *t;                            /* article form */
    float *conseq;                           /* (K, nout) */
    float *dcenters, *dscales, *dlower, *db_raw, *dS, *dt, *dconseq; /* gradients */

    /* saved by forward for backward, allocated by fz_fuzzy_reserve */
    int max_batch;
    float *u;  /* (max_batch, K, n): A_j (x - c_j), or S_j x + t_j, masked dims 0 */
    float *r2; /* (max_batch, K): ||u||² */
    float *scratch; /* per-term dense matrices used during one call */
} fz_fuzzy;

/* "gauss", "cauchy", "bell", "article" <-> enum. Parse returns 0, or -1 with a reason. */
const char *fz_mf_kind_name(fz_mf_kind kind);
int fz_mf_kind_parse(const char *s, fz_mf_kind *out, fz_err *err);

/* Set up a layer of K terms over n inputs with nout consequents (0 = none); allocates the
 * masks (all 1) and nothing else. No parameters are bound yet. 0, or -1 with a reason. */
int fz_fuzzy_init(fz_fuzzy *F, fz_mf_kind kind, int K, int n, int nout, fz_err *err);
void fz_fuzzy_free(fz_fuzzy *F);

/* Floats of the parameter slice (and of the gradient slice). */
size_t fz_fuzzy_nparams(const fz_fuzzy *F);
/* Point the layer at its slices (fz_fuzzy_nparams floats each); grads may be NULL for a
 * layer used only for inference (then backward adds no parameter gradients). */
void fz_fuzzy_bind(fz_fuzzy *F, float *params, float *grads);

/* One named tensor of the slice. */
typedef struct fz_fuzzy_tensor {
    const char *name;  /* e.g. "fuzzy.centers" */
    size_t offset;     /* floats from the start of the slice */
    size_t count;      /* floats */
    int ndim;
    int64_t shape[3];
} fz_fuzzy_tensor;
#define FZ_FUZZY_MAX_TENSORS 5
/* Fill out with the tensors of the layout above, in order; returns how many. */
int fz_fuzzy_tensors(const fz_fuzzy *F, fz_fuzzy_tensor out[FZ_FUZZY_MAX_TENSORS]);

/* ---- initialisation (of the bound parameters) ---------------------------------------- */

/* Centres N(0, 1) from rng, scales 1, lower part 0, b = 1 (bell), consequents 0.
 * Article form: S = I, t = -c with c drawn as above (so the centre is c). */
void fz_fuzzy_init_random(fz_fuzzy *F, fz_rng *rng);
/* The same with the given centres (K, n) instead of random ones. */
void fz_fuzzy_init_centers(fz_fuzzy *F, const float *centers);
/* Centres evenly spread on a circle of the given radius in dims 0 and 1 (the other dims 0),
 * starting at a random angle drawn from rng: c_j = radius (cos a_j, sin a_j, 0, ...),
 * a_j = a_0 + 2 pi j / K. Otherwise as fz_fuzzy_init_random. Needs n >= 2 and a finite
 * radius > 0: 0, or -1 with a reason. */
int fz_fuzzy_init_circle(fz_fuzzy *F, double radius, fz_rng *rng, fz_err *err);
/* The circle for classes and attributes (K = nclass + nattr terms; member (nattr, nclass):
 * 1 when class c has attribute a). The class terms go evenly on the circle in an order that
 * keeps the classes of each attribute next to each other (attribute after attribute, the
 * classes of none last), so that one convex domain can hold them; attribute term a starts at
 * the mean of its classes' centres, round, with a membership of 1/2 at the farthest of them.
 * With every class term on the circle, an attribute term would start on it too, between
 * two classes that need not have the attribute, and has to cross the latent space while it
 * is being organised. 0, or -1 as fz_fuzzy_init_circle, or when K != nclass + nattr. */
int fz_fuzzy_init_circle_groups(fz_fuzzy *F, double radius, int nclass, int nattr,
                                const unsigned char *member, fz_rng *rng, fz_err *err);

/* The class terms on the circle at given places: class c at the angle
 * a0 + 2 pi slot[c] / nclass (slot a permutation of 0 .. nclass-1), attribute terms as in
 * fz_fuzzy_init_circle_groups (at the mean of their classes' centres, a membership of 1/2 at
 * the farthest). Draws nothing. 0, or -1 with a reason (K != nclass + nattr, a slot out of
 * range, n < 2, radius <= 0). */
int fz_fuzzy_init_circle_slots(fz_fuzzy *F, double radius, int nclass, int nattr,
                               const unsigned char *member, const int *slot, double a0,
                               fz_err *err);
/* An order of the classes on the circle taken from the data: means (nclass, 2) is each
 * class's mean code in two dims, count (nclass) how many rows it has. The classes are sorted
 * by the angle of their mean around the mean of the class means (counter-clockwise, like the
 * slots), and slot (nclass) receives each class's position in that order; classes with no
 * rows come last, in index order. a0 (may be NULL) receives the rotation that puts each slot
 * closest to its class's angle (the circular mean of angle - 2 pi slot / nclass), so that
 * fz_fuzzy_init_circle_slots(.., slot, *a0, ..) starts each class term on the side of the
 * circle where its codes already lie.
 * Why: the index order puts classes c and c + nclass/2 on opposite sides; when the encoder
 * maps two such classes close together (MNIST's 4 and 9), one term loses the pull between
 * them, its membership vanishes everywhere the codes are, and so does its gradient.
 * 0, or -1 with a reason (nclass out of range, allocation). */
int fz_circle_order_by_angle(int nclass, const double *means, const size_t *count, int *slot,
                             double *a0, fz_err *err);

/* Allocate what forward keeps for backward for batches of up to max_batch points.
 * Calling it again replaces the previous reservation. */
int fz_fuzzy_reserve(fz_fuzzy *F, int max_batch, fz_err *err);

/* ---- forward and backward ------------------------------------------------------------ */

/* m (B, K) = memberships of x (B, n); 1 <= B <= max_batch of fz_fuzzy_reserve. Memberships
 * below FLT_MIN are returned as 0 (denormals would slow every later product). The masks may
 * change between calls, but a backward must see the masks of its forward. */
void fz_fuzzy_forward(fz_fuzzy *F, const float *x, float *m, int B);
/* Given dm (B, K) = dLoss/dm, ADD dLoss/dparams into the bound gradient slice (skipping
 * frozen groups, inactive terms and masked dims) and write dx (B, n) = dLoss/dx (skipped
 * when dx is NULL). x and m are those of the latest forward with the same B. */
void fz_fuzzy_backward(fz_fuzzy *F, const float *x, const float *m, const float *dm,
                       float *dx, int B);

/* Fill frozen (fz_fuzzy_nparams bytes: the fuzzy slice of the optimiser's mask) with 1 for
 * every parameter that must not move: frozen groups, inactive terms, entries of masked dims
 * (for the lower part, entries whose row or column is masked), and 0 elsewhere. */
void fz_fuzzy_frozen(const fz_fuzzy *F, unsigned char *frozen);

/* Remove the inactive terms: the parameters of the active ones are moved to the front of
 * the bound slice in the layout of the new K (the slice shrinks to fz_fuzzy_nparams floats
 * at the same start; the caller re-packs whatever follows it), the gradient slice is
 * compacted the same way, the masks too, and all terms are then active. old_index (K
 * entries, may be NULL) receives for each new term its old index. Returns the new K, or
 * -1 with a reason when no term is active (the layer is then unchanged). */
int fz_fuzzy_prune(fz_fuzzy *F, int *old_index, fz_err *err);

/* ---- defuzzification heads ------------------------------------------------------------ */

/* Nadaraya-Watson: y (B, nout) = sum_j m_j w_j / (sum_j m_j + 1e-12), m (B, K). */
void fz_fuzzy_nw_forward(const fz_fuzzy *F, const float *m, float *y, int B);
/* Given dy (B, nout), ADD dLoss/dw into the consequent gradients (unless frozen) and ADD
 * dLoss/dm into dm (B, K) (so a loss on m and one on y combine; inactive terms get 0). */
void fz_fuzzy_nw_backward(fz_fuzzy *F, const float *m, const float *dy, float *dm, int B);
/* Max head: cls (B) = the active term of largest membership (the lowest index on ties),
 * score (B) = its membership; cls = -1 and score = 0 when no term is active. Either output
 * may be NULL. */
void fz_fuzzy_max(const fz_fuzzy *F, const float *m, int B, int *cls, float *score);

/* ---- inspection (double precision) ----------------------------------------------------- */

/* Term j's geometry. center (n): c_j, or -S_j⁻¹ t_j for the article form (solved in the
 * subspace of the term's dims; 0 along masked dims). A (n, n) row-major: the term's A_j, or
 * S_j; M (n, n) = AᵀA. Rows and columns of masked dims are 0. Any output may be NULL.
 * -1 with a reason if the article form's S_j is singular and center was asked for. */
int fz_fuzzy_term(const fz_fuzzy *F, int j, double *center, double *A, double *M, fz_err *err);
/* b of term j for the bell (1 for the other forms). */
double fz_fuzzy_bell_b(const fz_fuzzy *F, int j);
/* The level set {m >= alpha} of term j is r² = (x-c)ᵀM(x-c) <= this, alpha in (0, 1]:
 * gauss -ln(alpha); cauchy 1/alpha - 1; bell (1/alpha - 1)^(1/b) - 1e-6 clamped at 0;
 * article (ln alpha)². NAN when alpha is outside (0, 1]. */
double fz_fuzzy_level_r2(const fz_fuzzy *F, int j, double alpha);
/* The domain {m >= alpha} of term j as an ellipsoid: center (n) as fz_fuzzy_term, lambda
 * (n) the eigenvalues of M in ascending order, axes (n, n) row i the unit eigenvector of
 * lambda[i], semi (n) the semi-axis lengths sqrt(level / lambda[i]) (INFINITY where
 * lambda[i] <= 0, e.g. along masked dims). Any output may be NULL. 0, or -1 with a reason. */
int fz_fuzzy_domain(const fz_fuzzy *F, int j, double alpha, double *center, double *lambda,
                    double *axes, double *semi, fz_err *err);
/* For one point x (n): r2 (K) and membership m (K) of every term, in double; inactive terms
 * get r2 = INFINITY and m = 0. Either output may be NULL. */
void fz_fuzzy_point(const fz_fuzzy *F, const float *x, double *r2, double *m);

/* Eigen-decomposition of a symmetric M (n, n) by cyclic Jacobi rotations: lambda (n)
 * ascending, vecs (n, n) row i the unit eigenvector of lambda[i] (M = Σ λ_i v_i v_iᵀ).
 * M is not modified. 0, or -1 with a reason (allocation). */
int fz_eigen_sym(int n, const double *M, double *lambda, double *vecs, fz_err *err);

#endif
