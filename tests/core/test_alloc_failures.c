/* Allocation-failure injection over every public constructor and compute call (as SQLite's
 * malloc tests): for N = 1, 2, ... the N-th allocation of the call fails. Until N passes the
 * number of allocations the call makes, it must fail cleanly with AD_E_NOMEM: no crash, outputs
 * untouched, no NaN passed off as a score, and (under ASan, make test's second pass) no leak.
 * Once N is past the last allocation, the call must succeed with exactly the normal result. */
#include "anomalydino.h"
#include "core/core.h"
#include "io/io.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

#define MAX_N 100000

static ad_model *g_model;
static ad_context *g_ctx;
static ad_bank *g_bank;
static ad_image g_img[3];
static const char *g_op;
static int g_op_fail; /* checks failed in the current op, to stop its loop early */

typedef ad_status (*op_fn)(int first, void *state);

/* Runs op under injection for N = 1.. until it succeeds without the injected failure being
 * reached; `op` checks its own outputs (first = 1 for the reference run without injection). */
static void sweep(const char *name, op_fn op, void *state)
{
    g_op = name;
    g_op_fail = 0;
    ad_status ref = op(1, state);
    CHECK(ref == AD_OK, "%s: reference run failed: %s", name, ad_errmsg());
    if (ref != AD_OK) return;
    long n;
    long allocs = -1;
    for (n = 1; n < MAX_N && !g_op_fail; n++) {
        adi_alloc_fail_at(n);
        ad_status st = op(0, state);
        long count = adi_alloc_count();
        adi_alloc_fail_at(0);
        if (count < n) { /* the injected failure was never reached: a normal run */
            CHECK(st == AD_OK, "%s: N=%ld past the %ld allocations, yet %s: %s", name, n, count,
                  ad_status_name(st), ad_errmsg());
            allocs = count;
            break;
        }
        if (st != AD_E_NOMEM) g_op_fail++;
        CHECK(st == AD_E_NOMEM, "%s: allocation %ld failed, the call returned %s: %s", name, n,
              ad_status_name(st), ad_errmsg());
    }
    CHECK(allocs >= 0 || g_op_fail, "%s: no success within %d injected failures", name, MAX_N);
    if (allocs >= 0)
        printf("%-28s %5ld allocations, each failure -> AD_E_NOMEM, then success\n", name, allocs);
    else
        printf("%-28s stopped at allocation %ld (see the failure above)\n", name, n);
}

/* ---- model load ---- */
static ad_status op_model_load(int first, void *state)
{
    const char *path = state;
    ad_model *m = ad_model_load(path);
    if (!m) {
        ad_status st = ad_last_status();
        CHECK(st != AD_OK, "model load: NULL with ad_last_status() == AD_OK");
        return st;
    }
    ad_model_info a = ad_model_get_info(m), b = ad_model_get_info(g_model);
    CHECK(a.fingerprint == b.fingerprint, "%s: loaded weights differ", g_op);
    ad_model_free(m);
    return AD_OK;
}

/* ---- context + features ---- */
static ad_features g_feat_ref;
static ad_status op_extract(int first, void *state)
{
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = 2;
    ad_context *c = ad_context_new(g_model, cp);
    if (!c) return ad_last_status();
    ad_features f;
    memset(&f, 0x5a, sizeof f);
    ad_features sentinel = f;
    ad_status st = ad_extract_image(c, &g_img[0], 112, &f);
    ad_context_free(c);
    if (st != AD_OK) {
        CHECK(memcmp(&f, &sentinel, sizeof f) == 0, "%s: output touched on failure", g_op);
        return st;
    }
    if (first) {
        g_feat_ref = f;
        return AD_OK;
    }
    size_t n = (size_t)f.grid_h * f.grid_w * f.dim;
    CHECK(f.grid_h == g_feat_ref.grid_h && memcmp(f.patch, g_feat_ref.patch, n * 4) == 0,
          "%s: features differ after the sweep", g_op);
    ad_features_free(&f);
    return AD_OK;
}

/* ---- bank fit + save + load ---- */
static ad_status op_fit(int first, void *state)
{
    const char *path = state;
    ad_bank_params bp = ad_bank_default_params();
    bp.resolution = 112;
    bp.rotate = 1;
    bp.mask_test = 1;
    ad_bank *b = ad_bank_new(g_model, &bp);
    if (!b) return ad_last_status();
    ad_status st = AD_OK;
    for (int i = 0; i < 2 && st == AD_OK; i++) {
        size_t rows = ad_bank_rows(b);
        int imgs = ad_bank_images(b);
        st = ad_bank_add_image(b, g_ctx, &g_img[i], i);
        if (st != AD_OK)
            CHECK(ad_bank_rows(b) == rows && ad_bank_images(b) == imgs,
                  "%s: a failed add changed the bank (%zu -> %zu rows)", g_op, rows,
                  ad_bank_rows(b));
    }
    double thr0 = 0;
    if (st == AD_OK) {
        st = ad_bank_calibrate_loo(b, g_ctx, AD_THRESH_QUANTILE, 0.5);
        if (st != AD_OK)
            CHECK(!ad_bank_threshold(b, &thr0), "%s: a failed calibration set a threshold", g_op);
    }
    if (st == AD_OK) st = ad_bank_save(b, path);
    ad_bank *l = NULL;
    if (st == AD_OK) {
        l = ad_bank_load(path);
        if (!l) st = ad_last_status();
    }
    if (st == AD_OK) {
        double t1, t2;
        CHECK(ad_bank_threshold(b, &t1) && ad_bank_threshold(l, &t2) && t1 == t2 &&
                  isfinite(t1),
              "%s: threshold lost or not finite", g_op);
        CHECK(ad_bank_rows(l) == ad_bank_rows(b), "%s: loaded bank differs", g_op);
        if (!first) {
            double t3;
            ad_bank_threshold(g_bank, &t3);
            CHECK(t1 == t3 && ad_bank_rows(b) == ad_bank_rows(g_bank),
                  "%s: the bank differs from the reference fit", g_op);
        }
    }
    ad_bank_free(l);
    ad_bank_free(b);
    return st;
}

/* ---- growing a bank: add references (with recalibration), then a coreset ---- */
static ad_status op_grow(int first, void *state)
{
    ad_bank_params bp = ad_bank_default_params();
    bp.resolution = 112;
    bp.rotate = 1;
    ad_bank *b = ad_bank_new(g_model, &bp);
    if (!b) return ad_last_status();
    const char *names[2] = {"washer_01.png", "washer_02.png"};
    ad_status st = ad_bank_add_references(b, g_ctx, &g_img[0], &names[0], 1, 0);
    if (st == AD_OK) {
        size_t rows = ad_bank_rows(b);
        st = ad_bank_add_references(b, g_ctx, &g_img[1], &names[1], 1, 1);
        if (st != AD_OK)
            CHECK(ad_bank_rows(b) == rows && ad_bank_images(b) == 1,
                  "%s: a failed add_references changed the bank", g_op);
    }
    if (st == AD_OK) {
        size_t rows = ad_bank_rows(b);
        st = ad_bank_coreset(b, g_ctx, 0.5);
        if (st != AD_OK) CHECK(ad_bank_rows(b) == rows, "%s: a failed coreset changed the bank", g_op);
        else CHECK(ad_bank_rows(b) < rows, "%s: the coreset kept every row", g_op);
    }
    ad_bank_free(b);
    return st;
}

/* ---- predict ---- */
static ad_result g_pred_ref[2];
static ad_status op_predict(int first, void *state)
{
    int mask = *(int *)state;
    ad_result r;
    memset(&r, 0x5a, sizeof r);
    ad_result sentinel = r;
    ad_status st = ad_predict(g_bank, g_ctx, &g_img[2], mask, &r);
    if (st != AD_OK) {
        CHECK(memcmp(&r, &sentinel, sizeof r) == 0, "%s: result touched on failure", g_op);
        return st;
    }
    CHECK(isfinite(r.score), "%s: AD_OK with a non-finite score", g_op);
    if (first) {
        g_pred_ref[mask] = r;
        return AD_OK;
    }
    const ad_result *ref = &g_pred_ref[mask];
    size_t n = (size_t)r.grid_h * r.grid_w;
    CHECK(r.score == ref->score && r.verdict == ref->verdict &&
              memcmp(r.grid, ref->grid, n * sizeof *r.grid) == 0,
          "%s: result differs from the reference (%.17g vs %.17g)", g_op, r.score, ref->score);
    ad_result_free(&r);
    return AD_OK;
}

/* ---- nearest reference patch ---- */
static ad_nearest g_near_ref;
static ad_status op_nearest(int first, void *state)
{
    ad_nearest nb;
    memset(&nb, 0x5a, sizeof nb);
    ad_nearest sentinel = nb;
    ad_status st = ad_predict_nearest(g_bank, g_ctx, &g_img[2], 1, 20, &nb);
    if (st != AD_OK) {
        CHECK(memcmp(&nb, &sentinel, sizeof nb) == 0, "%s: output touched on failure", g_op);
        return st;
    }
    if (first) g_near_ref = nb;
    else CHECK(memcmp(&nb, &g_near_ref, sizeof nb) == 0, "%s: answer differs", g_op);
    return AD_OK;
}

/* ---- zero-shot ---- */
static ad_features g_zs_feat[3];
static double g_zs_ref[3][64];
static ad_status op_zeroshot(int first, void *state)
{
    double grid[3][64];
    memset(grid, 0x5a, sizeof grid);
    double *g[3] = {grid[0], grid[1], grid[2]};
    ad_status st = ad_zeroshot(g_ctx, g_zs_feat, NULL, 3, g);
    if (st != AD_OK) {
        unsigned char s[sizeof grid];
        memset(s, 0x5a, sizeof s);
        CHECK(memcmp(grid, s, sizeof grid) == 0, "%s: grids touched on failure", g_op);
        return st;
    }
    if (first) memcpy(g_zs_ref, grid, sizeof grid);
    else CHECK(memcmp(grid, g_zs_ref, sizeof grid) == 0, "%s: grids differ", g_op);
    return AD_OK;
}

/* ---- image ops: preprocess, resize, rotate, anomaly map ---- */
static ad_status op_image_ops(int first, void *state)
{
    ad_input in;
    memset(&in, 0x5a, sizeof in);
    ad_status st = ad_preprocess(&g_img[0], 112, &in);
    if (st != AD_OK) return st;
    ad_input_free(&in);
    ad_image r = {0};
    st = ad_resize_pillow(&g_img[0], 97, 61, &r);
    if (st != AD_OK) return st;
    ad_image_free(&r);
    st = ad_rotate(&g_img[0], 45.0, &r);
    if (st != AD_OK) return st;
    ad_image_free(&r);
    double grid[64];
    for (int i = 0; i < 64; i++) grid[i] = i / 64.0;
    float map[120 * 100];
    st = ad_anomaly_map(grid, 8, 8, 120, 100, map);
    return st;
}

/* ---- metrics ---- */
static ad_status op_metrics(int first, void *state)
{
    int labels[8] = {0, 0, 1, 0, 1, 1, 0, 1};
    double scores[8] = {0.1, 0.4, 0.35, 0.8, 0.9, 0.2, 0.3, 0.7};
    ad_image_metrics im;
    ad_status st = ad_metrics_image(labels, scores, 8, &im);
    if (st != AD_OK) return st;
    ad_pixel_eval *pe = ad_pixel_eval_new();
    if (!pe) return ad_last_status();
    float map[32 * 24];
    uint8_t mask[32 * 24];
    for (int k = 0; k < 3 && st == AD_OK; k++) {
        for (int i = 0; i < 32 * 24; i++) {
            map[i] = (float)((i * 7 + k * 13) % 101) / 101.0f;
            mask[i] = (i % 32 > 20 && i / 32 > 10 + k) ? 1 : 0;
        }
        st = ad_pixel_eval_add(pe, map, k == 1 ? NULL : mask, 32, 24);
    }
    ad_pixel_metrics pm;
    memset(&pm, 0x5a, sizeof pm);
    ad_pixel_metrics sentinel = pm;
    if (st == AD_OK) {
        st = ad_pixel_eval_finish(pe, &pm);
        if (st != AD_OK)
            CHECK(memcmp(&pm, &sentinel, sizeof pm) == 0, "%s: metrics touched on failure", g_op);
        else
            CHECK(isfinite(pm.auroc) && isfinite(pm.aupro), "%s: non-finite metrics", g_op);
    }
    ad_pixel_eval_free(pe);
    return st;
}

int main(void)
{
    g_model = ad_model_load(t_data("dinov2/tiny.safetensors"));
    CHECK(g_model != NULL, "model: %s", ad_errmsg());
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = 2;
    g_ctx = g_model ? ad_context_new(g_model, cp) : NULL;
    const char *files[3] = {"good/washer_01.png", "good/washer_02.png", "test/scratch.png"};
    char path[4096];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/../../samples/%s", t_data(""), files[i]);
        CHECK_OK(adi_io_read_image(path, &g_img[i]));
    }
    if (!g_ctx || !g_img[2].data) return t_done("test_alloc_failures");

    sweep("ad_model_load(safetensors)", op_model_load, (void *)t_data("dinov2/tiny.safetensors"));
    sweep("ad_model_load(pth)", op_model_load, (void *)t_data("dinov2/tiny.pth"));
    sweep("ad_context_new+ad_extract", op_extract, NULL);
    ad_features_free(&g_feat_ref);

    /* the reference bank for predict, fitted once without injection */
    ad_bank_params bp = ad_bank_default_params();
    bp.resolution = 112;
    bp.rotate = 1;
    bp.mask_test = 1;
    g_bank = ad_bank_new(g_model, &bp);
    for (int i = 0; i < 2; i++) CHECK_OK(ad_bank_add_image(g_bank, g_ctx, &g_img[i], i));
    CHECK_OK(ad_bank_calibrate_loo(g_bank, g_ctx, AD_THRESH_QUANTILE, 0.5));
    sweep("bank fit+save+load", op_fit, (void *)t_tmp("alloc_failures.adbank"));

    sweep("bank add_references+coreset", op_grow, NULL);

    int mask0 = 0, mask1 = 1;
    sweep("ad_predict(no mask)", op_predict, &mask0);
    sweep("ad_predict(PCA mask)", op_predict, &mask1);
    for (int i = 0; i < 2; i++) ad_result_free(&g_pred_ref[i]);
    sweep("ad_predict_nearest", op_nearest, NULL);

    for (int i = 0; i < 3; i++) CHECK_OK(ad_extract_image(g_ctx, &g_img[i], 112, &g_zs_feat[i]));
    sweep("ad_zeroshot", op_zeroshot, NULL);
    for (int i = 0; i < 3; i++) ad_features_free(&g_zs_feat[i]);

    sweep("image ops + anomaly map", op_image_ops, NULL);
    sweep("image + pixel metrics", op_metrics, NULL);

    for (int i = 0; i < 3; i++) ad_image_free(&g_img[i]);
    ad_bank_free(g_bank);
    ad_context_free(g_ctx);
    ad_model_free((ad_model *)g_model);
    return t_done("test_alloc_failures");
}
