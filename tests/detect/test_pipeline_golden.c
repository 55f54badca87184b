/* The few-shot pipeline end to end against the original code's outputs
 * (tests/data/pipeline/seed{0,2}, tiny DINOv2): for every setting res{448,224}_rot{0,1}_mask{0,1}
 * a bank from the reference (and its rotations), then each test image scored: through ad_predict
 * without rotation, through ad_bank_query / ad_mask_pca / ad_score_top1p on features extracted
 * once with it (the forward passes dominate the test's time).
 * Masks must be identical, grids and scores within 1e-4 without rotation and 2e-3 with it, and
 * the 448 / no-rotation anomaly maps within 2e-3 (tests/data/README.md). */
#include "anomalydino.h"
#include "io/io.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double worst_grid = 0, worst_score = 0, worst_map = 0;

/* Test images' features per resolution, extracted once: the rotated settings score them with
 * ad_bank_query + ad_mask_pca + ad_score_top1p; the unrotated ones go through ad_predict. */
typedef struct {
    char name[64];
    int res;
    ad_image img;
    ad_features f;
} feat_cache;

static feat_cache cache[16];
static int n_cache = 0;

static feat_cache *cached(ad_context *ctx, const char *dir, const char *image, int res)
{
    for (int i = 0; i < n_cache; i++)
        if (cache[i].res == res && strcmp(cache[i].name, image) == 0) return &cache[i];
    if (n_cache == 16) return NULL;
    feat_cache *c = &cache[n_cache];
    memset(c, 0, sizeof *c);
    char rel[512];
    snprintf(rel, sizeof rel, "pipeline/%s/%s", dir, image);
    ad_status st = adi_io_read_image(t_data(rel), &c->img);
    if (st == AD_OK) st = ad_extract_image(ctx, &c->img, res, &c->f);
    CHECK(st == AD_OK, "%s: %s", rel, ad_errmsg());
    if (st != AD_OK) {
        ad_image_free(&c->img);
        return NULL;
    }
    snprintf(c->name, sizeof c->name, "%s", image);
    c->res = res;
    n_cache++;
    return c;
}

static void clear_cache(void)
{
    for (int i = 0; i < n_cache; i++) {
        ad_image_free(&cache[i].img);
        ad_features_free(&cache[i].f);
    }
    n_cache = 0;
}

static void run_case(ad_bank *bank, ad_context *ctx, const char *dir, const char *setting,
                     const cJSON *c, int res, int rot, int mask, double tol)
{
    char rel[600];
    const char *image = cJSON_GetStringValue(cJSON_GetObjectItem(c, "image"));
    const char *gridf = cJSON_GetStringValue(cJSON_GetObjectItem(c, "grid"));
    const char *mapf = cJSON_GetStringValue(cJSON_GetObjectItem(c, "map"));
    double want_score = cJSON_GetNumberValue(cJSON_GetObjectItem(c, "score"));
    int want_kept = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "mask_kept"));
    if (!image || !gridf) {
        CHECK(0, "%s: malformed case", setting);
        return;
    }
    feat_cache *fc = cached(ctx, dir, image, res);
    if (!fc) return;
    const ad_image *img = &fc->img;
    ad_result r = {0};
    ad_status st;
    if (!rot) {
        /* the bank tests masks (mask_test = 1): -1 follows it, 0 overrides it */
        st = ad_predict(bank, ctx, img, mask ? -1 : 0, &r);
        CHECK(st == AD_OK, "%s %s: predict: %s", setting, image, ad_errmsg());
    } else {
        size_t cells = (size_t)fc->f.grid_h * (size_t)fc->f.grid_w;
        r.grid_h = fc->f.grid_h;
        r.grid_w = fc->f.grid_w;
        r.grid = adi_alloc(cells, sizeof(double));
        r.keep = adi_alloc(cells, 1);
        st = mask ? ad_mask_pca(&fc->f, r.keep) : AD_OK;
        if (!mask) memset(r.keep, 1, cells);
        if (st == AD_OK) st = ad_bank_query(bank, ctx, &fc->f, mask ? r.keep : NULL, -1, r.grid);
        CHECK(st == AD_OK, "%s %s: query: %s", setting, image, ad_errmsg());
        r.score = ad_score_top1p(r.grid, cells);
    }
    if (st != AD_OK) {
        ad_result_free(&r);
        return;
    }
    size_t n = (size_t)r.grid_h * (size_t)r.grid_w;
    adi_npy g = {0};
    snprintf(rel, sizeof rel, "pipeline/%s/%s", dir, gridf);
    st = adi_npy_read(t_data(rel), &g);
    CHECK(st == AD_OK, "%s: %s", rel, ad_errmsg());
    int kept = 0;
    for (size_t i = 0; i < n; i++) kept += r.keep[i] != 0;
    if (st == AD_OK) {
        CHECK(g.ndim == 2 && (int)g.shape[0] == r.grid_h && (int)g.shape[1] == r.grid_w,
              "%s %s: grid %d x %d, golden %zu x %zu", setting, image, r.grid_h, r.grid_w,
              g.shape[0], g.ndim > 1 ? g.shape[1] : 0);
        if (g.count == n) {
            double *gd = adi_npy_to_f64(&g);
            size_t where = 0;
            double md = t_maxdiff_f64(r.grid, gd, n, &where);
            double sd = fabs(r.score - want_score);
            printf("%s/%s %s: grid max |diff| %.3g at (%zu, %zu) (%.6f vs %.6f); score %.6f vs "
                   "%.6f (|diff| %.3g); kept %d/%d\n",
                   dir, setting, image, md, where / (size_t)r.grid_w, where % (size_t)r.grid_w,
                   r.grid[where], gd[where], r.score, want_score, sd, kept, want_kept);
            CHECK(md <= tol, "%s %s: grid diff %.3g > %.g", setting, image, md, tol);
            CHECK(sd <= tol, "%s %s: score diff %.3g > %.g", setting, image, sd, tol);
            if (md > worst_grid) worst_grid = md;
            if (sd > worst_score) worst_score = sd;
            adi_free(gd);
        }
    }
    adi_npy_free(&g);
    CHECK(kept == want_kept, "%s %s: %d patches kept, golden %d", setting, image, kept, want_kept);

    if (mask) {
        adi_npy mk = {0};
        char mrel[512];
        snprintf(mrel, sizeof mrel, "%s", gridf);
        char *suffix = strstr(mrel, "_grid.npy");
        if (suffix) strcpy(suffix, "_mask.npy");
        snprintf(rel, sizeof rel, "pipeline/%s/%s", dir, mrel);
        st = adi_npy_read(t_data(rel), &mk);
        CHECK(st == AD_OK, "%s: %s", rel, ad_errmsg());
        if (st == AD_OK && mk.count == n) {
            const uint8_t *mv = mk.data;
            int diff = 0, first = -1;
            for (size_t i = 0; i < n; i++)
                if ((mv[i] != 0) != (r.keep[i] != 0)) {
                    diff++;
                    if (first < 0) first = (int)i;
                }
            printf("%s/%s %s: mask cells differing %d%s\n", dir, setting, image, diff,
                   diff ? " (first shown below)" : "");
            CHECK(diff == 0, "%s %s: mask differs in %d cells, first (%d, %d)", setting, image,
                  diff, first / r.grid_w, first % r.grid_w);
        } else if (st == AD_OK) {
            CHECK(0, "%s: %zu cells, expected %zu", rel, mk.count, n);
        }
        adi_npy_free(&mk);
    }

    if (mapf) {
        adi_npy mp = {0};
        snprintf(rel, sizeof rel, "pipeline/%s/%s", dir, mapf);
        st = adi_npy_read(t_data(rel), &mp);
        CHECK(st == AD_OK, "%s: %s", rel, ad_errmsg());
        size_t pix = (size_t)img->width * (size_t)img->height;
        if (st == AD_OK && mp.count == pix) {
            float *map = malloc(pix * sizeof *map);
            float *gm = adi_npy_to_f32(&mp);
            CHECK_OK(ad_anomaly_map(r.grid, r.grid_h, r.grid_w, img->width, img->height, map));
            size_t where = 0;
            double md = t_maxdiff_f32(map, gm, pix, &where);
            printf("%s/%s %s: map max |diff| %.3g at (x %zu, y %zu)\n", dir, setting, image, md,
                   where % (size_t)img->width, where / (size_t)img->width);
            CHECK(md <= 2e-3, "%s %s: map diff %.3g", setting, image, md);
            if (md > worst_map) worst_map = md;
            free(map);
            adi_free(gm);
        } else if (st == AD_OK) {
            CHECK(0, "%s: %zu pixels, expected %zu", rel, mp.count, pix);
        }
        adi_npy_free(&mp);
    }
    ad_result_free(&r);
}

static void run_seed(ad_context *ctx, const ad_model *m, const char *dir)
{
    char rel[256];
    snprintf(rel, sizeof rel, "pipeline/%s/manifest.json", dir);
    size_t len = 0;
    char *txt = adi_io_read_file(t_data(rel), &len);
    CHECK(txt != NULL, "%s: %s", rel, ad_errmsg());
    if (!txt) return;
    cJSON *man = cJSON_Parse(txt);
    free(txt);
    CHECK(man != NULL, "%s: bad JSON", rel);
    if (!man) return;
    const cJSON *refs = cJSON_GetObjectItem(man, "refs");
    const cJSON *settings = cJSON_GetObjectItem(man, "settings");
    const cJSON *s;
    ad_bank *banks[4] = {NULL, NULL, NULL, NULL};
    int n_settings = 0;
    cJSON_ArrayForEach(s, settings)
    {
        n_settings++;
        int res = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "resolution"));
        int rot = cJSON_IsTrue(cJSON_GetObjectItem(s, "rotation"));
        int mask = cJSON_IsTrue(cJSON_GetObjectItem(s, "mask_test_images"));
        size_t want_rows = (size_t)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "bank_rows"));
        /* One bank per (resolution, rotation), shared by the mask0 / mask1 settings. */
        int slot = (res == 448) * 2 + rot;
        if (!banks[slot]) {
            ad_bank_params bp = ad_bank_default_params();
            bp.resolution = res;
            bp.rotate = rot;
            bp.mask_refs = 0; /* the original's default (design.md) */
            bp.mask_test = 1;
            bp.knn_k = 1;
            banks[slot] = ad_bank_new(m, &bp);
            CHECK(banks[slot] != NULL, "%s: %s", s->string, ad_errmsg());
            if (!banks[slot]) continue;
            const cJSON *ref;
            int id = 0;
            cJSON_ArrayForEach(ref, refs)
            {
                snprintf(rel, sizeof rel, "pipeline/%s/%s", dir, cJSON_GetStringValue(ref));
                ad_image img = {0};
                ad_status st = adi_io_read_image(t_data(rel), &img);
                CHECK(st == AD_OK, "%s: %s", rel, ad_errmsg());
                if (st == AD_OK) CHECK_OK(ad_bank_add_image(banks[slot], ctx, &img, id++));
                ad_image_free(&img);
            }
        }
        CHECK(ad_bank_rows(banks[slot]) == want_rows, "%s: bank rows %zu, golden %zu", s->string,
              ad_bank_rows(banks[slot]), want_rows);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(s, "cases"))
            run_case(banks[slot], ctx, dir, s->string, c, res, rot, mask, rot ? 2e-3 : 1e-4);
    }
    for (int i = 0; i < 4; i++) ad_bank_free(banks[i]);
    clear_cache();
    CHECK(n_settings == 8, "%s: %d settings, expected 8", dir, n_settings);
    cJSON_Delete(man);
}

int main(void)
{
    ad_model *m = ad_model_load(t_data("dinov2/tiny.safetensors"));
    CHECK(m != NULL, "model: %s", ad_errmsg());
    if (!m) return t_done("test_pipeline_golden");
    ad_context *ctx = ad_context_new(m, ad_context_default_params());
    CHECK(ctx != NULL, "context: %s", ad_errmsg());
    if (ctx) {
        run_seed(ctx, m, "seed0");
        run_seed(ctx, m, "seed2");
    }
    printf("largest differences: grid %.3g, score %.3g, map %.3g\n", worst_grid, worst_score,
           worst_map);
    ad_context_free(ctx);
    ad_model_free(m);
    return t_done("test_pipeline_golden");
}
