/* The bank driven by images: references with their rotations, leave-one-out thresholds, and the
 * one-call prediction (docs/design.md, "Memory bank" and "Scores"). */
#include "detect/detect.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int use_threads(ad_context *ctx)
{
    if (!ctx) return 0;
    return ad_context_threads(ctx);
}

ad_status dt_check_image(const ad_image *img, const char *who)
{
    if (!img || !img->data || img->width <= 0 || img->height <= 0)
        return adi_fail(AD_E_ARG, "%s: empty image", who);
    return AD_OK;
}

ad_status dt_reference_view(ad_context *ctx, const ad_image *img, int view, int resolution,
                            ad_features *out)
{
    if (view == 0) /* the 0-degree view is the image itself (an exact identity warp) */
        return ad_extract_image(ctx, img, resolution, out);
    ad_image rot = {0};
    ad_status st = ad_rotate(img, DT_ROT_STEP_DEG * view, &rot);
    if (st == AD_OK) st = ad_extract_image(ctx, &rot, resolution, out);
    ad_image_free(&rot);
    return st;
}

/* One view of a reference: its features, reference mask, and (unrotated view) the test mask. */
static ad_status add_view(ad_bank *b, const ad_features *f, int first, int image_id)
{
    size_t n = (size_t)f->grid_h * (size_t)f->grid_w;
    uint8_t *keep = NULL, *keep_test = NULL;
    ad_status st = AD_OK;
    if (b->p.mask_refs || (first && b->p.mask_test)) {
        keep = adi_malloc(n ? n : 1);
        if (!keep) st = adi_fail(AD_E_NOMEM, "out of memory");
        else st = ad_mask_pca(f, keep);
    }
    if (st == AD_OK && first && b->p.mask_test) keep_test = keep;
    if (st == AD_OK) st = dt_bank_insert(b, f, b->p.mask_refs ? keep : NULL, keep_test, image_id);
    adi_free(keep);
    return st;
}

/* Features from another model would be silently compared with the bank's: refuse them. A bank
 * filled through ad_bank_add_features without a model records no identity to check. */
ad_status dt_check_context_model(const ad_bank *b, const ad_context *ctx, const char *fn)
{
    if (b->fingerprint == 0) return AD_OK;
    ad_status st = ad_bank_check_model(b, ad_context_model(ctx));
    if (st != AD_OK) adi_error_prefix("%s: the context's model", fn);
    return st;
}

/* ad_bank_add_image without bringing the index up to date (the caller syncs it). */
static ad_status add_image_nosync(ad_bank *b, ad_context *ctx, const ad_image *img, int image_id)
{
    if (!b || !ctx)
        return adi_fail(AD_E_ARG, "ad_bank_add_image: NULL %s", b ? "context" : "bank");
    ad_status st = dt_check_image(img, "ad_bank_add_image");
    if (st == AD_OK) st = dt_check_context_model(b, ctx, "ad_bank_add_image");
    if (st != AD_OK) return st;
    if (image_id < 0) return adi_fail(AD_E_ARG, "ad_bank_add_image: image_id %d is negative", image_id);
    if (dt_bank_find_image(b, image_id) >= 0)
        return adi_fail(AD_E_ARG, "ad_bank_add_image: image_id %d is already in the bank", image_id);
    const size_t rows0 = b->rows, side0 = b->side_rows;
    const int images0 = b->n_images, dim0 = b->dim;
    const int views = b->p.rotate ? DT_ROT_COUNT : 1;
    for (int a = 0; a < views && st == AD_OK; a++) {
        ad_features f = {0};
        st = dt_reference_view(ctx, img, a, b->p.resolution, &f);
        if (st == AD_OK) st = add_view(b, &f, a == 0, image_id);
        ad_features_free(&f);
        if (st != AD_OK)
            adi_error_prefix("reference %d (rotation %g deg)", image_id, DT_ROT_STEP_DEG * a);
    }
    if (st != AD_OK) { /* all or nothing */
        dt_bank_truncate(b, rows0, side0, images0);
        if (b->rows == 0) b->dim = dim0;
    }
    return st;
}

ad_status ad_bank_add_image(ad_bank *b, ad_context *ctx, const ad_image *img, int image_id)
{
    const size_t rows0 = b ? b->rows : 0, side0 = b ? b->side_rows : 0;
    const int images0 = b ? b->n_images : 0, dim0 = b ? b->dim : 0;
    ad_status st = add_image_nosync(b, ctx, img, image_id);
    /* a bank with an index assigns the new rows to their nearest lists */
    if (st == AD_OK && b->ivf && (st = dt_ivf_sync(b, use_threads(ctx))) != AD_OK) {
        dt_bank_truncate(b, rows0, side0, images0);
        if (b->rows == 0) b->dim = dim0;
    }
    return st;
}

/* The unrotated features of reference `im` (normalised rows, as stored) on its grid, and the
 * mask a test image of this bank would get. */
static ad_status loo_features(const ad_bank *b, const dt_image *im, ad_features *f, uint8_t *keep)
{
    size_t n = (size_t)im->grid_h * (size_t)im->grid_w, d = (size_t)b->dim;
    uint8_t *have = adi_calloc(n, 1);
    if (!have) return adi_fail(AD_E_NOMEM, "out of memory");
    for (size_t j = 0; j < b->rows; j++)
        if (b->row_image[j] == im->id && b->row_angle[j] == 0) {
            memcpy(f->patch + (size_t)b->row_cell[j] * d, b->feat + j * d, d * sizeof(float));
            have[b->row_cell[j]] = 1;
        }
    for (size_t j = 0; j < b->side_rows; j++)
        if (b->side_image[j] == im->id) {
            memcpy(f->patch + (size_t)b->side_cell[j] * d, b->side_feat + j * d, d * sizeof(float));
            have[b->side_cell[j]] = 1;
        }
    size_t missing = 0;
    for (size_t i = 0; i < n; i++) {
        keep[i] = im->keep_test ? im->keep_test[i] : 1;
        missing += keep[i] && !have[i];
    }
    adi_free(have);
    if (missing)
        return adi_fail(AD_E_INTERNAL, "reference %d: %zu patches missing for leave-one-out", im->id,
                       missing);
    return AD_OK;
}

ad_status adi_bank_loo_scores(const ad_bank *b, ad_context *ctx, double *scores)
{
    if (!b || !scores) return adi_fail(AD_E_ARG, "adi_bank_loo_scores: NULL argument");
    if (b->n_images < 2)
        return adi_fail(AD_E_ARG,
                       "leave-one-out needs at least 2 reference images, the bank has %d",
                       b->n_images);
    int nt = use_threads(ctx);
    ad_status st = AD_OK;
    for (int i = 0; i < b->n_images && st == AD_OK; i++) {
        const dt_image *im = &b->images[i];
        size_t n = (size_t)im->grid_h * (size_t)im->grid_w;
        ad_features f = {im->grid_h, im->grid_w, b->dim, NULL, NULL};
        f.patch = adi_calloc(n * (size_t)b->dim, sizeof(float));
        uint8_t *keep = adi_malloc(n);
        double *grid = adi_alloc(n, sizeof *grid);
        if (!f.patch || !keep || !grid) st = adi_fail(AD_E_NOMEM, "ad_bank_calibrate_loo: out of memory");
        if (st == AD_OK) st = loo_features(b, im, &f, keep);
        if (st == AD_OK) st = dt_bank_search_probes(b, nt, &f, keep, im->id, 0, grid);
        if (st == AD_OK) st = dt_score_top1p(grid, n, &scores[i]);
        adi_free(f.patch);
        adi_free(keep);
        adi_free(grid);
    }
    return st;
}

ad_status ad_bank_calibrate_loo(ad_bank *b, ad_context *ctx, ad_thresh_rule rule, double q)
{
    if (!b) return adi_fail(AD_E_ARG, "ad_bank_calibrate_loo: NULL bank");
    if (b->n_images < 2)
        return adi_fail(AD_E_ARG,
                       "leave-one-out needs at least 2 reference images, the bank has %d",
                       b->n_images);
    if (rule != AD_THRESH_MAX && rule != AD_THRESH_QUANTILE)
        return adi_fail(AD_E_ARG, "ad_bank_calibrate_loo: unknown rule %d", (int)rule);
    if (rule == AD_THRESH_QUANTILE && !(q >= 0 && q <= 1))
        return adi_fail(AD_E_ARG, "ad_bank_calibrate_loo: quantile %g not in [0, 1]", q);
    double *scores = adi_malloc((size_t)b->n_images * sizeof *scores);
    if (!scores) return adi_fail(AD_E_NOMEM, "ad_bank_calibrate_loo: out of memory");
    ad_status st = adi_bank_loo_scores(b, ctx, scores);
    if (st == AD_OK) st = dt_bank_calibrate(b, scores, b->n_images, rule, q, AD_THRESH_FROM_LOO);
    adi_free(scores);
    return st;
}

ad_status ad_bank_add_references(ad_bank *b, ad_context *ctx, const ad_image *imgs,
                                 const char *const *names, int n, int recalibrate)
{
    if (!b || !ctx || !imgs)
        return adi_fail(AD_E_ARG, "ad_bank_add_references: NULL %s",
                       !b ? "bank" : !ctx ? "context" : "images");
    if (n < 1) return adi_fail(AD_E_ARG, "ad_bank_add_references: no images (n = %d)", n);
    ad_thresh_rule rule = AD_THRESH_MAX;
    double q = 1.0;
    if (recalibrate) {
        /* the rule of the latest threshold; a format-1 bank has its threshold without history */
        if (b->n_hist > 0) {
            const dt_thresh_rec *last = &b->hist[b->n_hist - 1];
            if (last->source != AD_THRESH_FROM_LOO)
                return adi_fail(AD_E_ARG,
                               "the bank's threshold was learned from %d calibration image "
                               "scores, not by leave-one-out: score held-out good images against "
                               "the grown bank to recalibrate it", last->n_scores);
            rule = last->rule;
            q = last->quantile;
        } else if (b->has_threshold) {
            rule = b->rule;
            q = b->quantile;
        }
        if (b->n_images + n < 2)
            return adi_fail(AD_E_ARG, "recalibration by leave-one-out needs at least 2 "
                                     "references, the bank would have %d", b->n_images + n);
    }
    for (int i = 0; i < n; i++)
        if (names && names[i] && strlen(names[i]) > DT_MAX_NAME)
            return adi_fail(AD_E_ARG, "ad_bank_add_references: name %d longer than %d bytes", i,
                           DT_MAX_NAME);
    int32_t next = 0;
    for (int i = 0; i < b->n_images; i++)
        if (b->images[i].id >= next) next = b->images[i].id + 1;
    if (next > INT32_MAX - n) return adi_fail(AD_E_ARG, "ad_bank_add_references: image ids exhausted");

    const size_t rows0 = b->rows, side0 = b->side_rows;
    const int images0 = b->n_images, dim0 = b->dim;
    const uint64_t offered0 = b->coreset_offered;
    ad_status st = AD_OK;
    for (int i = 0; i < n && st == AD_OK; i++) {
        st = add_image_nosync(b, ctx, &imgs[i], next + i);
        if (st != AD_OK) {
            adi_error_prefix("image %d", i);
            break;
        }
        dt_image *im = &b->images[b->n_images - 1];
        if (names && names[i] && names[i][0]) {
            im->name = adi_strdup(names[i]);
            if (!im->name) st = adi_fail(AD_E_NOMEM, "ad_bank_add_references: out of memory");
        }
    }
    /* A coreset bank keeps its fraction of the new rows, the rows before as centres. */
    if (st == AD_OK && b->coreset > 0 && b->coreset_frac < 1.0)
        st = dt_bank_coreset_rows(b, rows0, use_threads(ctx));
    /* An index assigns the new rows to their nearest lists (its centroids stay). */
    if (st == AD_OK && b->ivf) st = dt_ivf_sync(b, use_threads(ctx));
    if (st == AD_OK && recalibrate) st = ad_bank_calibrate_loo(b, ctx, rule, q);
    if (st != AD_OK) { /* all or nothing (the threshold only changes on success) */
        dt_bank_truncate(b, rows0, side0, images0);
        if (b->rows == 0) b->dim = dim0;
        b->coreset_offered = offered0;
    }
    return st;
}

ad_status ad_predict(const ad_bank *b, ad_context *ctx, const ad_image *img, int mask,
                     ad_result *out)
{
    if (!b || !ctx || !out)
        return adi_fail(AD_E_ARG, "ad_predict: NULL %s", !b ? "bank" : !ctx ? "context" : "result");
    ad_status st = dt_check_image(img, "ad_predict");
    if (st == AD_OK) st = dt_check_context_model(b, ctx, "ad_predict");
    if (st != AD_OK) return st;
    if (mask < -1 || mask > 1) return adi_fail(AD_E_ARG, "ad_predict: mask %d is not -1, 0 or 1", mask);
    if (b->rows == 0) return adi_fail(AD_E_ARG, "ad_predict: the bank is empty");
    int use_mask = mask < 0 ? b->p.mask_test : mask;
    int nt = use_threads(ctx);

    ad_features f = {0};
    st = ad_extract_image(ctx, img, b->p.resolution, &f);
    if (st != AD_OK) return st;
    size_t n = (size_t)f.grid_h * (size_t)f.grid_w;
    uint8_t *keep = adi_alloc(n, 1);
    double *grid = adi_alloc(n, sizeof *grid);
    if (!keep || !grid) st = adi_fail(AD_E_NOMEM, "ad_predict: out of memory");
    if (st == AD_OK) {
        if (use_mask) st = ad_mask_pca(&f, keep);
        else memset(keep, 1, n);
    }
    if (st == AD_OK) st = dt_bank_search_probes(b, nt, &f, use_mask ? keep : NULL, -1, 0, grid);
    double score = 0;
    if (st == AD_OK) st = dt_score_top1p(grid, n, &score);
    /* never a non-finite score passed off as a result (a NaN would compare as OK) */
    if (st == AD_OK && !isfinite(score))
        st = adi_fail(AD_E_INTERNAL, "ad_predict: non-finite image score");
    if (st == AD_OK) {
        out->score = score;
        double thr;
        out->verdict = ad_bank_threshold(b, &thr)
                           ? (score > thr ? AD_VERDICT_NG : AD_VERDICT_OK)
                           : AD_VERDICT_NONE;
        out->grid_h = f.grid_h;
        out->grid_w = f.grid_w;
        out->grid = grid;
        out->keep = keep;
    } else {
        adi_free(keep);
        adi_free(grid);
    }
    ad_features_free(&f);
    return st;
}
