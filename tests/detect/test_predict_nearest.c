/* ad_predict_nearest: the bank row nearest to a test patch. Its distance is the patch's grid
 * value (k = 1); a reference scored against its own bank finds itself, unrotated, at the same
 * place; bad patch indices are refused. */
#include "anomalydino.h"
#include "io/io.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

int main(void)
{
    ad_model *m = ad_model_load(t_data("dinov2/tiny.safetensors"));
    CHECK(m != NULL, "model: %s", ad_errmsg());
    if (!m) return t_done("test_predict_nearest");
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = 2;
    ad_context *ctx = ad_context_new(m, cp);
    ad_image ref[2] = {{0}}, test = {0};
    char path[4096];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/../../samples/good/washer_0%d.png", t_data(""), i + 1);
        CHECK_OK(adi_io_read_image(path, &ref[i]));
    }
    snprintf(path, sizeof path, "%s/../../samples/test/scratch.png", t_data(""));
    CHECK_OK(adi_io_read_image(path, &test));
    ad_bank_params bp = ad_bank_default_params();
    bp.resolution = 112;
    bp.rotate = 1;
    ad_bank *b = ad_bank_new(m, &bp);
    for (int i = 0; i < 2; i++) CHECK_OK(ad_bank_add_image(b, ctx, &ref[i], i));

    /* 1. the distance is the grid value, patch by patch */
    ad_result r;
    CHECK_OK(ad_predict(b, ctx, &test, 0, &r));
    int n = r.grid_h * r.grid_w, bad_range = 0;
    double worst = 0;
    int worst_at = -1;
    for (int p = 0; p < n; p++) {
        ad_nearest nb;
        CHECK_OK(ad_predict_nearest(b, ctx, &test, 0, p, &nb));
        double diff = fabs(nb.distance - r.grid[p]);
        if (diff > worst) {
            worst = diff;
            worst_at = p;
        }
        bad_range += nb.ref_index < 0 || nb.ref_index > 1 || nb.view < 0 || nb.view > 7 ||
                     nb.ref_x < 0 || nb.ref_x >= r.grid_w || nb.ref_y < 0 || nb.ref_y >= r.grid_h ||
                     nb.patch != p || nb.test_x != p % r.grid_w || nb.test_y != p / r.grid_w ||
                     nb.angle_deg != 45.0 * nb.view || nb.masked;
    }
    printf("%d patches: largest |nearest distance - grid value| %.3g at patch %d\n", n, worst,
           worst_at);
    CHECK(worst <= 1e-6, "nearest distance differs from the grid by %.3g at patch %d", worst,
          worst_at);
    CHECK(bad_range == 0, "%d patches with out-of-range answers", bad_range);
    ad_result_free(&r);

    /* 2. a reference against its own bank finds itself */
    int self = 0;
    for (int p = 0; p < n; p++) {
        ad_nearest nb;
        CHECK_OK(ad_predict_nearest(b, ctx, &ref[1], 0, p, &nb));
        self += nb.ref_index == 1 && nb.view == 0 && nb.ref_x == nb.test_x &&
                nb.ref_y == nb.test_y && nb.distance < 1e-6;
    }
    printf("reference 1 against the bank: %d of %d patches find themselves\n", self, n);
    CHECK(self == n, "only %d of %d patches of a reference find themselves", self, n);

    /* 3. refusals, outputs untouched */
    ad_nearest nb;
    memset(&nb, 0x5a, sizeof nb);
    ad_nearest sentinel = nb;
    CHECK(ad_predict_nearest(b, ctx, &test, 0, n, &nb) == AD_E_ARG, "patch %d accepted", n);
    CHECK(ad_predict_nearest(b, ctx, &test, 0, -1, &nb) == AD_E_ARG, "patch -1 accepted");
    CHECK(ad_predict_nearest(b, ctx, &test, 2, 0, &nb) == AD_E_ARG, "mask 2 accepted");
    CHECK(memcmp(&nb, &sentinel, sizeof nb) == 0, "a refused call wrote its output");
    printf("refusal: %s\n", ad_errmsg());

    /* 4. masking: the flag follows the PCA mask of ad_predict */
    CHECK_OK(ad_predict(b, ctx, &test, 1, &r));
    int flag_ok = 0;
    for (int p = 0; p < n; p++) {
        CHECK_OK(ad_predict_nearest(b, ctx, &test, 1, p, &nb));
        flag_ok += nb.masked == !r.keep[p];
    }
    CHECK(flag_ok == n, "masked flag wrong for %d of %d patches", n - flag_ok, n);
    ad_result_free(&r);

    for (int i = 0; i < 2; i++) ad_image_free(&ref[i]);
    ad_image_free(&test);
    ad_bank_free(b);
    ad_context_free(ctx);
    ad_model_free(m);
    return t_done("test_predict_nearest");
}
