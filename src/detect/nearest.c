/* "Why is it NG": the bank row nearest to one test patch, and where it came from. The distance is
 * the search's own (faiss' squared L2 of normalised rows, halved: 1 - cosine), over every bank
 * row; ties go to the first row in bank order, as the search keeps the first of equal values. */
#include "detect/detect.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

ad_status ad_predict_nearest(const ad_bank *b, ad_context *ctx, const ad_image *img, int mask,
                             int patch, ad_nearest *out)
{
    if (!b || !ctx || !img || !out)
        return adi_fail(AD_E_ARG, "ad_predict_nearest: NULL argument");
    ad_status st = dt_check_image(img, "ad_predict_nearest");
    if (st == AD_OK) st = dt_check_context_model(b, ctx, "ad_predict_nearest");
    if (st != AD_OK) return st;
    if (mask < -1 || mask > 1)
        return adi_fail(AD_E_ARG, "ad_predict_nearest: mask %d is not -1, 0 or 1", mask);
    if (b->rows == 0) return adi_fail(AD_E_ARG, "ad_predict_nearest: the bank is empty");
    ad_features f = {0};
    st = ad_extract_image(ctx, img, b->p.resolution, &f);
    if (st != AD_OK) return st;
    const int n = f.grid_h * f.grid_w, d = f.dim;
    uint8_t *keep = NULL;
    float *q = NULL, *ip = NULL;
    if (patch < 0 || patch >= n) {
        st = adi_fail(AD_E_ARG, "ad_predict_nearest: patch %d outside the %d x %d grid", patch,
                      f.grid_w, f.grid_h);
        goto done;
    }
    if (d != b->dim) {
        st = adi_fail(AD_E_MISMATCH, "ad_predict_nearest: features of width %d, the bank's are %d",
                      d, b->dim);
        goto done;
    }
    int masked = 0;
    if (mask < 0 ? b->p.mask_test : mask) {
        keep = adi_malloc((size_t)n);
        if (!keep) {
            st = AD_E_NOMEM;
            goto done;
        }
        st = ad_mask_pca(&f, keep);
        if (st != AD_OK) goto done;
        masked = !keep[patch];
    }
    q = adi_alloc((size_t)d, sizeof *q);
    ip = adi_alloc(b->rows, sizeof *ip);
    if (!q || !ip) {
        st = AD_E_NOMEM;
        goto done;
    }
    memcpy(q, f.patch + (size_t)patch * d, (size_t)d * sizeof *q);
    const float qn = dt_normalize_row(q, d);
    if (!isfinite(qn)) {
        st = adi_fail(AD_E_ARG, "ad_predict_nearest: non-finite feature value (patch %d)", patch);
        goto done;
    }
    /* inner products with every row: one single-threaded BLAS call (see core.h) */
#pragma omp parallel num_threads(1)
    {
        adi_blas_serial();
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)b->rows, d, 1.0f, b->feat, d, q, 1, 0.0f, ip,
                    1);
    }
    size_t best = 0;
    float bd = INFINITY;
    for (size_t r = 0; r < b->rows; r++) {
        float d2 = qn + b->norm2[r] - 2.0f * ip[r];
        if (d2 < 0) d2 = 0;
        if (d2 < bd) {
            bd = d2;
            best = r;
        }
    }
    const int idx = dt_bank_find_image(b, b->row_image[best]);
    if (idx < 0) {
        st = adi_fail(AD_E_INTERNAL, "ad_predict_nearest: bank row %zu has no reference", best);
        goto done;
    }
    const dt_image *im = &b->images[idx];
    const int cell = b->row_cell[best], view = b->row_angle[best];
    out->patch = patch;
    out->test_x = patch % f.grid_w;
    out->test_y = patch / f.grid_w;
    out->masked = masked;
    out->ref_index = idx;
    out->ref_x = im->grid_w > 0 ? cell % im->grid_w : 0;
    out->ref_y = im->grid_w > 0 ? cell / im->grid_w : 0;
    out->view = view;
    out->angle_deg = b->p.rotate ? DT_ROT_STEP_DEG * view : 0.0;
    out->distance = (double)(bd / 2.0f);
    out->grid_h = f.grid_h;
    out->grid_w = f.grid_w;
done:
    adi_free(keep);
    adi_free(q);
    adi_free(ip);
    ad_features_free(&f);
    return st;
}
