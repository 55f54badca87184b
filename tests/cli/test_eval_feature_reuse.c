/* `anomalydino eval` extracts each test image's features and PCA mask once per category and
 * reuses them for every shots x seed run (ad_extract_image + ad_mask_pca once, then
 * ad_bank_query + ad_score_top1p per bank), and extracts each reference's views once (the image,
 * then ad_rotate by 45..315 degrees, each through ad_extract_image) and fills every bank with
 * ad_bank_add_features. That is only sound if the decompositions give exactly what ad_predict
 * and ad_bank_add_image give: this pins both, bit for bit, with and without masking and
 * rotation. */
#include "testutil.h"

#include "cli/cli.h"

#include <string.h>

static void one_case(const ad_model *m, ad_context *ctx, int mask, int rotate)
{
    ad_bank_params bp = ad_bank_default_params();
    bp.resolution = 448;
    bp.rotate = rotate;
    bp.mask_test = mask;
    ad_bank *bank = ad_bank_new(m, &bp);
    CHECK(bank != NULL, "ad_bank_new: %s", ad_errmsg());
    if (!bank) return;
    ad_image ref = {0}, test = {0};
    CHECK_OK(adi_io_read_image(t_data("eval/data/screw/train/good/000.png"), &ref));
    CHECK_OK(adi_io_read_image(t_data("eval/data/screw/test/scratch_head/000.png"), &test));
    if (!ref.data || !test.data) goto out;
    CHECK_OK(ad_bank_add_image(bank, ctx, &ref, 0));

    ad_result r;
    memset(&r, 0, sizeof r);
    CHECK_OK(ad_predict(bank, ctx, &test, -1, &r));

    ad_features f;
    memset(&f, 0, sizeof f);
    CHECK_OK(ad_extract_image(ctx, &test, 448, &f));
    size_t n = (size_t)f.grid_h * (size_t)f.grid_w;
    uint8_t *keep = calloc(n ? n : 1, 1);
    double *grid = calloc(n ? n : 1, sizeof *grid);
    if (mask) CHECK_OK(ad_mask_pca(&f, keep));
    CHECK_OK(ad_bank_query(bank, ctx, &f, mask ? keep : NULL, -1, grid));
    double score = ad_score_top1p(grid, n);

    CHECK(r.grid_h == f.grid_h && r.grid_w == f.grid_w, "grid %dx%d vs %dx%d", r.grid_h, r.grid_w,
          f.grid_h, f.grid_w);
    if (r.grid && r.grid_h == f.grid_h && r.grid_w == f.grid_w) {
        size_t where = 0;
        double d = t_maxdiff_f64(r.grid, grid, n, &where);
        size_t mask_diff = 0;
        for (size_t i = 0; i < n && mask && r.keep; i++) mask_diff += (r.keep[i] != 0) != (keep[i] != 0);
        printf("mask %d rotate %d: grid max |diff| %.3g at cell %zu, mask cells differing %zu, "
               "score %.9g vs %.9g\n",
               mask, rotate, d, where, mask_diff, r.score, score);
        CHECK(d == 0, "grid must be bit-identical, max |diff| %.3g at %zu", d, where);
        CHECK(mask_diff == 0, "%zu mask cells differ", mask_diff);
        CHECK(r.score == score, "score %.17g vs %.17g", r.score, score);
    }
    free(keep);
    free(grid);
    ad_features_free(&f);
    ad_result_free(&r);
out:
    ad_image_free(&ref);
    ad_image_free(&test);
    ad_bank_free(bank);
}

/* Bank from ad_bank_add_image vs the eval's cached views + ad_bank_add_features. */
static void bank_case(const ad_model *m, ad_context *ctx, int rotate)
{
    ad_bank_params bp = ad_bank_default_params();
    bp.resolution = 448;
    bp.rotate = rotate;
    bp.mask_test = 1;
    ad_bank *a = ad_bank_new(m, &bp), *b = ad_bank_new(m, &bp);
    ad_image ref[2] = {{0}}, test = {0};
    CHECK_OK(adi_io_read_image(t_data("eval/data/screw/train/good/000.png"), &ref[0]));
    CHECK_OK(adi_io_read_image(t_data("eval/data/screw/train/good/001.png"), &ref[1]));
    CHECK_OK(adi_io_read_image(t_data("eval/data/screw/test/thread_top/000.png"), &test));
    if (!a || !b || !ref[0].data || !ref[1].data || !test.data) goto out;
    for (int j = 0; j < 2; j++) {
        CHECK_OK(ad_bank_add_image(a, ctx, &ref[j], j));
        for (int v = 0; v < (rotate ? 8 : 1); v++) {
            ad_image rot = {0};
            const ad_image *view = &ref[j];
            if (v) {
                CHECK_OK(ad_rotate(&ref[j], 45.0 * v, &rot));
                view = &rot;
            }
            ad_features f;
            memset(&f, 0, sizeof f);
            CHECK_OK(ad_extract_image(ctx, view, 448, &f));
            CHECK_OK(ad_bank_add_features(b, &f, NULL, j));
            ad_features_free(&f);
            ad_image_free(&rot);
        }
    }
    CHECK(ad_bank_rows(a) == ad_bank_rows(b), "rows %zu vs %zu", ad_bank_rows(a), ad_bank_rows(b));
    ad_features f;
    memset(&f, 0, sizeof f);
    CHECK_OK(ad_extract_image(ctx, &test, 448, &f));
    size_t n = (size_t)f.grid_h * (size_t)f.grid_w;
    double *ga = calloc(n ? n : 1, sizeof *ga), *gb = calloc(n ? n : 1, sizeof *gb);
    if (ga && gb && f.patch) {
        CHECK_OK(ad_bank_query(a, ctx, &f, NULL, -1, ga));
        CHECK_OK(ad_bank_query(b, ctx, &f, NULL, -1, gb));
        size_t where = 0;
        double d = t_maxdiff_f64(ga, gb, n, &where);
        printf("bank from views, rotate %d: %zu rows, grid max |diff| %.3g at cell %zu\n", rotate,
               ad_bank_rows(b), d, where);
        CHECK(d == 0, "bank from cached views must give bit-identical distances: %.3g at %zu", d,
              where);
    }
    free(ga);
    free(gb);
    ad_features_free(&f);
out:
    ad_image_free(&ref[0]);
    ad_image_free(&ref[1]);
    ad_image_free(&test);
    ad_bank_free(a);
    ad_bank_free(b);
}

int main(void)
{
    ad_model *m = ad_model_load(t_data("dinov2/tiny.safetensors"));
    CHECK(m != NULL, "ad_model_load: %s", ad_errmsg());
    if (!m) return t_done("test_eval_feature_reuse");
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = 2;
    ad_context *ctx = ad_context_new(m, cp);
    CHECK(ctx != NULL, "ad_context_new: %s", ad_errmsg());
    if (ctx) {
        one_case(m, ctx, 0, 0);
        one_case(m, ctx, 1, 0);
        one_case(m, ctx, 1, 1);
        bank_case(m, ctx, 0);
        bank_case(m, ctx, 1);
        ad_context_free(ctx);
    }
    ad_model_free(m);
    return t_done("test_eval_feature_reuse");
}
