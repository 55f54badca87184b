/* Zero-shot background mask from the image's own features (docs/design.md,
 * "Background mask" and "Where we differ").
 *
 * The original runs sklearn's randomized PCA (unseeded) and applies the morphology to the
 * flattened N x 1 array; we replace both (docs/design.md, "Where we differ"): the exact first principal component
 * (float64 covariance, top eigenvector) and 2-D 3x3 morphology on the patch grid. */
#include "detect/detect.h"

#include <cblas.h>
#include <stdatomic.h>
#include <math.h>
#include <string.h>

/* AD src/backbones.py compute_background_mask: threshold=10 on raw PC scores, border=0.2 for
 * the centre crop, and the mask is flipped when at most 35 % of the crop is kept. */
#define MASK_PC_THRESHOLD 10.0
#define MASK_BORDER 0.2
#define MASK_FLIP_FRACTION 0.35

/* LAPACK's symmetric eigensolver (Fortran symbol; Debian's OpenBLAS exports it but ships no
 * lapacke.h). Weak so that a BLAS without LAPACK still links and the Jacobi path is used. The
 * trailing arguments are gfortran's hidden lengths of the three character arguments. */
extern void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a,
                    const int *lda, const double *vl, const double *vu, const int *il,
                    const int *iu, const double *abstol, int *m, double *w, double *z,
                    const int *ldz, int *isuppz, double *work, const int *lwork, int *iwork,
                    const int *liwork, int *info, size_t, size_t, size_t)
    __attribute__((weak));

int dt_have_lapack(void) { return dsyevr_ != NULL; }

/* Largest eigenpair by LAPACK (relatively robust representations). c: upper triangle of the
 * row-major matrix, which is the lower triangle in LAPACK's column-major view. */
static ad_status eig_lapack(const double *c, int d, double *v)
{
    int lwork = 26 * d, liwork = 10 * d; /* dsyevr's documented minimum workspace */
    double *a = adi_alloc((size_t)d * d, sizeof *a);
    double *work = adi_alloc((size_t)lwork, sizeof *work);
    int *iwork = adi_alloc((size_t)liwork, sizeof *iwork);
    ad_status st = AD_OK;
    if (!a || !work || !iwork) {
        st = AD_E_NOMEM;
        goto done;
    }
    memcpy(a, c, (size_t)d * d * sizeof *a);
    double vl = 0, vu = 0, abstol = 0, w[1];
    int il = d, iu = d, m = 0, info = 0, isuppz[2];
    dsyevr_("V", "I", "L", &d, a, &d, &vl, &vu, &il, &iu, &abstol, &m, w, v, &d, isuppz, work,
            &lwork, iwork, &liwork, &info, 1, 1, 1);
    if (info != 0 || m != 1)
        st = adi_fail(AD_E_INTERNAL, "mask: eigensolver dsyevr failed (info %d, %d values)", info, m);
done:
    adi_free(a);
    adi_free(work);
    adi_free(iwork);
    return st;
}

/* Cyclic Jacobi rotations on the full matrix: slow but simple and unconditionally convergent;
 * the fallback without LAPACK and the reference the LAPACK path is tested against. */
static ad_status eig_jacobi(const double *c, int d, double *v)
{
    size_t dd = (size_t)d * d;
    double *a = adi_alloc(dd, sizeof *a), *vec = adi_alloc(dd, sizeof *vec);
    if (!a || !vec) {
        adi_free(a);
        adi_free(vec);
        return AD_E_NOMEM;
    }
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            a[(size_t)i * d + j] = i <= j ? c[(size_t)i * d + j] : c[(size_t)j * d + i];
            vec[(size_t)i * d + j] = i == j;
        }
    double diag2 = 0;
    for (int i = 0; i < d; i++) diag2 += a[(size_t)i * d + i] * a[(size_t)i * d + i];
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++) off += a[(size_t)p * d + q] * a[(size_t)p * d + q];
        if (off <= 1e-30 * diag2 || off == 0) break;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++) {
                double apq = a[(size_t)p * d + q];
                if (apq == 0) continue;
                double theta = (a[(size_t)q * d + q] - a[(size_t)p * d + p]) / (2 * apq);
                double t = fabs(theta) > 1e150
                               ? 0.5 / theta
                               : (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double cs = 1 / sqrt(t * t + 1), sn = t * cs;
                for (int k = 0; k < d; k++) { /* columns p, q */
                    double akp = a[(size_t)k * d + p], akq = a[(size_t)k * d + q];
                    a[(size_t)k * d + p] = cs * akp - sn * akq;
                    a[(size_t)k * d + q] = sn * akp + cs * akq;
                }
                for (int k = 0; k < d; k++) { /* rows p, q */
                    double apk = a[(size_t)p * d + k], aqk = a[(size_t)q * d + k];
                    a[(size_t)p * d + k] = cs * apk - sn * aqk;
                    a[(size_t)q * d + k] = sn * apk + cs * aqk;
                }
                for (int k = 0; k < d; k++) {
                    double vkp = vec[(size_t)k * d + p], vkq = vec[(size_t)k * d + q];
                    vec[(size_t)k * d + p] = cs * vkp - sn * vkq;
                    vec[(size_t)k * d + q] = sn * vkp + cs * vkq;
                }
            }
    }
    int best = 0;
    for (int i = 1; i < d; i++)
        if (a[(size_t)i * d + i] > a[(size_t)best * d + best]) best = i;
    double nrm = 0;
    for (int k = 0; k < d; k++) nrm += vec[(size_t)k * d + best] * vec[(size_t)k * d + best];
    nrm = sqrt(nrm);
    for (int k = 0; k < d; k++) v[k] = vec[(size_t)k * d + best] / nrm;
    adi_free(a);
    adi_free(vec);
    return AD_OK;
}

ad_status dt_top_eigvec(dt_eig_impl impl, const double *c, int d, double *v)
{
    if (!c || !v || d <= 0) return adi_fail(AD_E_ARG, "mask: bad eigenproblem (d = %d)", d);
    if (impl == DT_EIG_AUTO && dt_have_lapack()) return eig_lapack(c, d, v);
    return eig_jacobi(c, d, v);
}

ad_status dt_pca_first(dt_eig_impl impl, const float *x, int n, int d, double *pc)
{
    size_t nd = (size_t)n * d;
    double *xc = adi_alloc(nd, sizeof *xc);
    double *cov = adi_alloc((size_t)d * d, sizeof *cov);
    double *mean = adi_calloc((size_t)d, sizeof *mean);
    double *v = adi_alloc((size_t)d, sizeof *v);
    ad_status st = AD_OK;
    if (!xc || !cov || !mean || !v) {
        st = AD_E_NOMEM;
        goto done;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) mean[j] += x[(size_t)i * d + j];
    for (int j = 0; j < d; j++) mean[j] /= n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) xc[(size_t)i * d + j] = (double)x[(size_t)i * d + j] - mean[j];
    /* The eigenvector does not depend on the 1/(n-1) factor, so the scatter matrix will do. */
    /* a team of one with BLAS single-threaded: no context here, and the BLAS pool is not ours */
#pragma omp parallel num_threads(1)
    {
        adi_blas_serial();
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, n, 1.0, xc, d, 0.0, cov, d);
    }
    st = dt_top_eigvec(impl, cov, d, v);
    if (st != AD_OK) goto done;
#pragma omp parallel num_threads(1)
    {
        adi_blas_serial();
        cblas_dgemv(CblasRowMajor, CblasNoTrans, n, d, 1.0, xc, d, v, 1, 0.0, pc, 1);
    }
    /* svd_flip of sklearn <= 1.4 (the golden data's version): the largest |score| is positive. */
    int big = 0;
    for (int i = 1; i < n; i++)
        if (fabs(pc[i]) > fabs(pc[big])) big = i;
    if (pc[big] < 0)
        for (int i = 0; i < n; i++) pc[i] = -pc[i];
done:
    adi_free(xc);
    adi_free(cov);
    adi_free(mean);
    adi_free(v);
    return st;
}

void dt_dilate3(const uint8_t *in, int gh, int gw, uint8_t *out)
{
    for (int r = 0; r < gh; r++)
        for (int c = 0; c < gw; c++) {
            uint8_t m = 0;
            for (int y = r - 1; y <= r + 1 && !m; y++)
                for (int x = c - 1; x <= c + 1; x++)
                    if (y >= 0 && y < gh && x >= 0 && x < gw && in[(size_t)y * gw + x]) {
                        m = 1;
                        break;
                    }
            out[(size_t)r * gw + c] = m;
        }
}

void dt_erode3(const uint8_t *in, int gh, int gw, uint8_t *out)
{
    for (int r = 0; r < gh; r++)
        for (int c = 0; c < gw; c++) {
            uint8_t m = 1;
            for (int y = r - 1; y <= r + 1 && m; y++)
                for (int x = c - 1; x <= c + 1; x++)
                    if (y >= 0 && y < gh && x >= 0 && x < gw && !in[(size_t)y * gw + x]) {
                        m = 0;
                        break;
                    }
            out[(size_t)r * gw + c] = m;
        }
}

/* m and t: gh * gw bytes of scratch each. */
static void mask_from_pc_scratch(const double *pc, int gh, int gw, uint8_t *keep, uint8_t *m,
                                 uint8_t *t)
{
    size_t n = (size_t)gh * gw;
    for (size_t i = 0; i < n; i++) m[i] = pc[i] > MASK_PC_THRESHOLD;
    /* Python int(Hp * 0.2): a double product, truncated. */
    int r0 = (int)(gh * MASK_BORDER), r1 = (int)(gh * (1 - MASK_BORDER));
    int c0 = (int)(gw * MASK_BORDER), c1 = (int)(gw * (1 - MASK_BORDER));
    size_t count = 0, crop = (size_t)(r1 - r0) * (size_t)(c1 - c0);
    for (int r = r0; r < r1; r++)
        for (int c = c0; c < c1; c++) count += m[(size_t)r * gw + c];
    if ((double)count <= MASK_FLIP_FRACTION * (double)crop)
        for (size_t i = 0; i < n; i++) m[i] = -pc[i] > MASK_PC_THRESHOLD;
    dt_dilate3(m, gh, gw, t);    /* dilation */
    dt_dilate3(t, gh, gw, m);    /* closing = dilation ... */
    dt_erode3(m, gh, gw, keep);  /* ... then erosion */
}

ad_status dt_mask_from_pc(const double *pc, int gh, int gw, uint8_t *keep)
{
    size_t n = (size_t)gh * gw;
    uint8_t *m = adi_alloc(2 * n, 1);
    if (!m) return AD_E_NOMEM;
    mask_from_pc_scratch(pc, gh, gw, keep, m, m + n);
    adi_free(m);
    return AD_OK;
}

/* How many masks were computed (a statistic for the tests: the protocol masks each test image
 * once and no reference); never read by the library itself. */
static atomic_long pca_count;
long adi_mask_pca_count(void) { return atomic_load(&pca_count); }

ad_status ad_mask_pca(const ad_features *f, uint8_t *keep)
{
    atomic_fetch_add(&pca_count, 1);
    if (!f || !keep) return adi_fail(AD_E_ARG, "ad_mask_pca: NULL %s", f ? "keep" : "features");
    if (!f->patch || f->grid_h <= 0 || f->grid_w <= 0 || f->dim <= 0)
        return adi_fail(AD_E_ARG, "ad_mask_pca: empty features (%d x %d patches, dim %d)",
                       f->grid_h, f->grid_w, f->dim);
    size_t n, nd;
    if (adi_mul_overflow((size_t)f->grid_h, (size_t)f->grid_w, &n) || n > INT32_MAX ||
        adi_mul_overflow(n, (size_t)f->dim, &nd) || f->dim > 65536)
        return adi_fail(AD_E_ARG, "ad_mask_pca: features too large (%d x %d x %d)", f->grid_h,
                       f->grid_w, f->dim);
    for (size_t i = 0; i < nd; i++) /* NaN or inf would give an arbitrary mask */
        if (!isfinite(f->patch[i]))
            return adi_fail(AD_E_ARG, "ad_mask_pca: non-finite feature value (patch %zu)",
                           i / (size_t)f->dim);
    double *pc = adi_alloc(n, sizeof *pc);
    uint8_t *scratch = adi_alloc(3 * n, 1);
    ad_status st = pc && scratch ? AD_OK : AD_E_NOMEM;
    if (st == AD_OK) st = dt_pca_first(DT_EIG_AUTO, f->patch, (int)n, f->dim, pc);
    if (st == AD_OK) {
        mask_from_pc_scratch(pc, f->grid_h, f->grid_w, scratch, scratch + n, scratch + 2 * n);
        memcpy(keep, scratch, n);
    }
    adi_free(pc);
    adi_free(scratch);
    if (st == AD_E_NOMEM) return adi_fail(st, "ad_mask_pca: out of memory (%zu patches)", n);
    return st;
}
