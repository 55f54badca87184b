/* Batched zero-shot against the original run_anomalydino_batched.py scoring
 * (tests/data/zeroshot: dinov2/tiny, resolution 448, no masking, twelve images): image scores
 * (mean of the top 1 % of each grid) within 1e-4. */
#include "anomalydino.h"
#include "io/io.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IMAGES 64

int main(void)
{
    size_t len = 0;
    char *text = adi_io_read_file(t_data("zeroshot/manifest.json"), &len);
    CHECK(text != NULL, "manifest: %s", ad_errmsg());
    if (!text) return t_done("test_zeroshot_golden");
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *cases = cJSON_GetObjectItem(root, "cases");
    const cJSON *res = cJSON_GetObjectItem(root, "resolution");
    const cJSON *mask = cJSON_GetObjectItem(root, "mask");
    CHECK(cJSON_IsArray(cases) && cJSON_IsNumber(res), "manifest: no cases / resolution");
    CHECK(cJSON_IsFalse(mask), "manifest: this test assumes the unmasked case");
    int n = cJSON_IsArray(cases) ? cJSON_GetArraySize(cases) : 0;
    CHECK(n >= 2 && n <= MAX_IMAGES, "manifest: %d cases", n);
    if (n < 2 || n > MAX_IMAGES || !cJSON_IsNumber(res)) {
        cJSON_Delete(root);
        return t_done("test_zeroshot_golden");
    }

    ad_model *m = ad_model_load(t_data("dinov2/tiny.safetensors"));
    CHECK(m != NULL, "model: %s", ad_errmsg());
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = 2;
    ad_context *ctx = m ? ad_context_new(m, cp) : NULL;
    CHECK(ctx != NULL, "context: %s", ad_errmsg());

    ad_features feats[MAX_IMAGES];
    double *grids[MAX_IMAGES];
    double want[MAX_IMAGES];
    const char *names[MAX_IMAGES];
    memset(feats, 0, sizeof feats);
    int ok = ctx != NULL;
    for (int i = 0; i < n && ok; i++) {
        const cJSON *c = cJSON_GetArrayItem(cases, i);
        const cJSON *img_name = cJSON_GetObjectItem(c, "image");
        const cJSON *score = cJSON_GetObjectItem(c, "score");
        CHECK(cJSON_IsString(img_name) && cJSON_IsNumber(score), "manifest case %d malformed", i);
        if (!cJSON_IsString(img_name) || !cJSON_IsNumber(score)) { ok = 0; break; }
        names[i] = img_name->valuestring;
        want[i] = score->valuedouble;
        char rel[256];
        snprintf(rel, sizeof rel, "zeroshot/%s", names[i]);
        ad_image img = {0};
        ad_status st = adi_io_read_image(t_data(rel), &img);
        CHECK(st == AD_OK, "%s: %s", rel, ad_errmsg());
        if (st != AD_OK) { ok = 0; break; }
        st = ad_extract_image(ctx, &img, res->valueint, &feats[i]);
        CHECK(st == AD_OK, "%s: extract: %s", rel, ad_errmsg());
        ad_image_free(&img);
        if (st != AD_OK) { ok = 0; break; }
        grids[i] = malloc((size_t)feats[i].grid_h * feats[i].grid_w * sizeof(double));
    }
    if (ok) {
        CHECK_OK(ad_zeroshot(ctx, feats, NULL, n, grids));
        double maxd = 0;
        int where = 0;
        for (int i = 0; i < n; i++) {
            size_t np_ = (size_t)feats[i].grid_h * feats[i].grid_w;
            double got = ad_score_top1p(grids[i], np_);
            double d = fabs(got - want[i]);
            printf("%s: score %.7f, original %.7f, |diff| %.2e (grid %dx%d)\n", names[i], got,
                   want[i], d, feats[i].grid_h, feats[i].grid_w);
            if (d > maxd || d != d) maxd = d, where = i;
            CHECK(d <= 1e-4, "%s: score %.7f vs %.7f", names[i], got, want[i]);
        }
        printf("zeroshot golden: %d images, max |diff| %.2e at %s (tolerance 1e-4)\n", n, maxd,
               names[where]);
    }
    for (int i = 0; i < n; i++) {
        if (feats[i].patch) {
            ad_features_free(&feats[i]);
            free(grids[i]);
        }
    }
    ad_context_free(ctx);
    ad_model_free(m);
    cJSON_Delete(root);
    return t_done("test_zeroshot_golden");
}
