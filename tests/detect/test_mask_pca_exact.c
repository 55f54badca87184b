/* The exact first principal component: the LAPACK eigensolver agrees with the Jacobi reference,
 * a planted direction is recovered with the documented sign (largest |score| positive), negated
 * features give the same scores, and ad_mask_pca gives the same mask through either solver on
 * real DINOv2 features. */
#include "anomalydino.h"
#include "detect/detect.h"
#include "io/io.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x2545f4914f6cdd1dULL;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static double nrand(void)
{
    double u = urand() + 1e-300, v = urand();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static void solvers_agree(int d)
{
    /* Random covariance with a clear top eigenvalue. */
    int n = 3 * d;
    double *x = malloc(sizeof(double) * n * d), *c = calloc((size_t)d * d, sizeof(double));
    for (int i = 0; i < n * d; i++) x[i] = nrand() * (1 + (i % d == 3) * 3.0);
    for (int i = 0; i < d; i++)
        for (int j = i; j < d; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += x[k * d + i] * x[k * d + j];
            c[i * d + j] = s; /* upper triangle only, as the solver reads it */
        }
    double *v1 = malloc(sizeof(double) * d), *v2 = malloc(sizeof(double) * d);
    CHECK_OK(dt_top_eigvec(DT_EIG_AUTO, c, d, v1));
    CHECK_OK(dt_top_eigvec(DT_EIG_JACOBI, c, d, v2));
    double dot = 0, res = 0, lam = 0;
    for (int i = 0; i < d; i++) dot += v1[i] * v2[i];
    for (int i = 0; i < d; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (i <= j ? c[i * d + j] : c[j * d + i]) * v1[j];
        lam += v1[i] * s;
    }
    for (int i = 0; i < d; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (i <= j ? c[i * d + j] : c[j * d + i]) * v1[j];
        res = fmax(res, fabs(s - lam * v1[i]));
    }
    printf("d=%d: LAPACK %s; |v_auto . v_jacobi| = 1 - %.3g, residual |Cv - lv| %.3g (l = %.6g)\n", d,
           dt_have_lapack() ? "used" : "absent (Jacobi twice)", 1 - fabs(dot), res, lam);
    CHECK(1 - fabs(dot) < 1e-10, "d=%d eigenvectors differ: dot %.15f", d, dot);
    CHECK(res < 1e-8 * lam, "d=%d residual %.3g", d, res);
    free(x);
    free(c);
    free(v1);
    free(v2);
}

int main(void)
{
    solvers_agree(8);
    solvers_agree(64);

    /* Planted direction: x_i = s_i u + noise, s = +20 on a 10 x 10 object of a 16 x 16 grid and
     * -3 elsewhere (scores about +17.1 and -5.9). The scores are s_i - mean(s) up to the noise; the largest |score| is on the
     * object side, so the object is positive. */
    const int gh = 16, gw = 16, n = gh * gw, d = 32;
    float *x = malloc(sizeof(float) * n * d);
    double *u = malloc(sizeof(double) * d), un = 0;
    for (int j = 0; j < d; j++) {
        u[j] = nrand();
        un += u[j] * u[j];
    }
    for (int j = 0; j < d; j++) u[j] /= sqrt(un);
    double *s = malloc(sizeof(double) * n), smean = 0;
    for (int i = 0; i < n; i++) {
        int r = i / gw, c = i % gw;
        s[i] = (r >= 3 && r < 13 && c >= 3 && c < 13) ? 20 : -3;
        smean += s[i] / n;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) x[i * d + j] = (float)(s[i] * u[j] + 0.05 * nrand());
    double *pc = malloc(sizeof(double) * n), *pcn = malloc(sizeof(double) * n);
    CHECK_OK(dt_pca_first(DT_EIG_AUTO, x, n, d, pc));
    double worst = 0;
    size_t where = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs(pc[i] - (s[i] - smean));
        if (e > worst) { worst = e; where = (size_t)i; }
    }
    printf("planted direction: max |pc - (s - mean s)| = %.3g at patch %zu (pc %.4f)\n", worst,
           where, pc[where]);
    CHECK(worst < 0.5, "planted scores off by %.3g", worst);
    CHECK(pc[5 * gw + 5] > 0, "object side is not positive: %g", pc[5 * gw + 5]);

    /* Negated features: same scores (the sign rule, not the solver, decides). */
    for (int i = 0; i < n * d; i++) x[i] = -x[i];
    CHECK_OK(dt_pca_first(DT_EIG_AUTO, x, n, d, pcn));
    double md = t_maxdiff_f64(pc, pcn, (size_t)n, &where);
    printf("negated features: max |pc diff| %.3g at patch %zu\n", md, where);
    CHECK(md < 1e-9, "negated features change the scores by %.3g", md);

    /* The mask of the planted object: 10 x 10 object (rows 3..12) -> dilated 2..13 -> closed. */
    ad_features f = {gh, gw, d, x, NULL};
    uint8_t *keep = malloc((size_t)n);
    CHECK_OK(ad_mask_pca(&f, keep));
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int r = i / gw, c = i % gw;
        bad += keep[i] != (r >= 2 && r < 14 && c >= 2 && c < 14);
    }
    printf("planted object mask: %d cells differ from rows/cols 2..13\n", bad);
    CHECK(bad == 0, "%d cells differ", bad);

    /* Real features (tiny DINOv2, 448 x 448 input): both solvers give the same scores and mask.
     * The random model's scores stay below 10, so the features are scaled (scores scale with
     * them) until the largest |score| is 25 and the mask has something to keep. */
    adi_npy a = {0};
    ad_status st = adi_npy_read(t_data("dinov2/tiny_448x448_patch.npy"), &a);
    CHECK(st == AD_OK, "read features: %s", ad_errmsg());
    if (st == AD_OK && a.ndim == 2 && a.shape[0] == 1024) {
        float *rf = adi_npy_to_f32(&a);
        int rd = (int)a.shape[1];
        double *p1 = malloc(sizeof(double) * 1024), *p2 = malloc(sizeof(double) * 1024);
        CHECK_OK(dt_pca_first(DT_EIG_AUTO, rf, 1024, rd, p1));
        double big = 0;
        for (int i = 0; i < 1024; i++) big = fmax(big, fabs(p1[i]));
        for (size_t i = 0; i < 1024 * (size_t)rd; i++) rf[i] *= (float)(25 / big);
        CHECK_OK(dt_pca_first(DT_EIG_AUTO, rf, 1024, rd, p1));
        CHECK_OK(dt_pca_first(DT_EIG_JACOBI, rf, 1024, rd, p2));
        double pd = t_maxdiff_f64(p1, p2, 1024, &where);
        uint8_t k1[1024], k2[1024];
        CHECK_OK(dt_mask_from_pc(p1, 32, 32, k1));
        CHECK_OK(dt_mask_from_pc(p2, 32, 32, k2));
        int kept = 0, diff = 0;
        for (int i = 0; i < 1024; i++) {
            kept += k1[i];
            diff += k1[i] != k2[i];
        }
        CHECK(kept > 0 && kept < 1024, "degenerate mask: %d kept", kept);
        printf("tiny 448x448 features x %.3g (dim %d): LAPACK vs Jacobi scores max |diff| %.3g at patch "
               "%zu; masks differ in %d cells (%d kept)\n", 25 / big, rd, pd, where, diff, kept);
        CHECK(pd < 1e-8, "solver scores differ by %.3g", pd);
        CHECK(diff == 0, "masks differ in %d cells", diff);
        ad_features rfeat = {32, 32, rd, rf, NULL};
        uint8_t k3[1024];
        CHECK_OK(ad_mask_pca(&rfeat, k3));
        CHECK(memcmp(k1, k3, 1024) == 0, "ad_mask_pca differs from its parts");
        adi_free(rf);
        free(p1);
        free(p2);
    } else {
        CHECK(0, "unexpected feature file shape");
    }
    adi_npy_free(&a);

    /* Bad input: an error, keep untouched. */
    memset(keep, 7, (size_t)n);
    ad_features empty = {0, gw, d, x, NULL};
    CHECK(ad_mask_pca(&empty, keep) == AD_E_ARG, "empty grid accepted");
    CHECK(ad_mask_pca(NULL, keep) == AD_E_ARG, "NULL features accepted");
    CHECK(ad_mask_pca(&f, NULL) == AD_E_ARG, "NULL keep accepted");
    CHECK(keep[0] == 7 && keep[n - 1] == 7, "keep written on failure");

    free(x);
    free(u);
    free(s);
    free(pc);
    free(pcn);
    free(keep);
    return t_done("test_mask_pca_exact");
}
