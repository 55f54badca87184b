/* Decision thresholds from normal images only: the MAX and QUANTILE rules (numpy.quantile's
 * default linear interpolation), leave-one-out equal to scoring each reference against a bank
 * built without it (all its rotations excluded, test masks applied), and the verdict rule
 * NG iff score > threshold. */
#include "anomalydino.h"
#include "detect/detect.h"
#include "io/io.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x0ddba11cafef00dULL;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* numpy.quantile(x, q) worked out by hand for the listed inputs. */
static void rules(void)
{
    ad_bank *b = ad_bank_new(NULL, NULL);
    double thr = -1;
    CHECK(!ad_bank_threshold(b, &thr) && thr == -1, "new bank has a threshold");
    const double x[5] = {0.3, 0.1, 0.5, 0.2, 0.4};
    const struct {
        ad_thresh_rule rule;
        double q, want;
    } cases[] = {
        {AD_THRESH_MAX, 0, 0.5},        {AD_THRESH_QUANTILE, 1.0, 0.5},
        {AD_THRESH_QUANTILE, 0.0, 0.1}, {AD_THRESH_QUANTILE, 0.5, 0.3},
        {AD_THRESH_QUANTILE, 0.9, 0.46}, /* index 3.6: 0.4 + 0.6 * 0.1 */
        {AD_THRESH_QUANTILE, 0.3, 0.22}, /* index 1.2: 0.2 + 0.2 * 0.1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_OK(ad_bank_calibrate_scores(b, x, 5, cases[i].rule, cases[i].q));
        CHECK(ad_bank_threshold(b, &thr), "no threshold after calibration");
        printf("rule %d q %.2f: threshold %.17g (expected %.17g, |diff| %.3g)\n", (int)cases[i].rule,
               cases[i].q, thr, cases[i].want, fabs(thr - cases[i].want));
        CHECK(fabs(thr - cases[i].want) < 1e-15, "rule %d q %g: %.17g", (int)cases[i].rule,
              cases[i].q, thr);
    }
    /* Refusals leave the previous threshold in place. */
    double before;
    ad_bank_threshold(b, &before);
    const double bad[2] = {0.1, NAN};
    CHECK(ad_bank_calibrate_scores(b, bad, 2, AD_THRESH_MAX, 0) == AD_E_ARG, "NaN score accepted");
    CHECK(ad_bank_calibrate_scores(b, x, 0, AD_THRESH_MAX, 0) == AD_E_ARG, "no scores accepted");
    CHECK(ad_bank_calibrate_scores(b, x, 5, AD_THRESH_QUANTILE, 1.5) == AD_E_ARG, "q 1.5 accepted");
    CHECK(ad_bank_calibrate_scores(b, x, 5, (ad_thresh_rule)7, 0.5) == AD_E_ARG, "rule 7 accepted");
    ad_bank_threshold(b, &thr);
    CHECK(thr == before, "threshold changed by a refused call");
    CHECK(ad_bank_calibrate_loo(b, NULL, AD_THRESH_MAX, 0) == AD_E_ARG, "LOO without images");
    ad_bank_free(b);
}

/* Features with a planted foreground so the PCA mask keeps a block. */
static float *planted(int gh, int gw, int d, double shift)
{
    float *x = malloc(sizeof(float) * (size_t)gh * gw * d);
    for (int i = 0; i < gh * gw; i++) {
        int fg = (i / gw) >= 2 && (i / gw) < gh - 2 && (i % gw) >= 2 && (i % gw) < gw - 2;
        for (int j = 0; j < d; j++)
            x[(size_t)i * d + j] = (float)(urand() - 0.5 + shift * (j % 3 == 0) +
                                           (fg ? 9.0 : -2.0) * (j % 2 ? 1 : -1) / 2.0);
    }
    return x;
}

/* LOO on a features-built bank equals a bank of the others queried with the reference's own
 * features and test mask. */
static void loo_features(int k, int mask_test)
{
    enum { NI = 4, GH = 8, GW = 9, D = 24 };
    float *x[NI], *rot[NI];
    for (int i = 0; i < NI; i++) {
        x[i] = planted(GH, GW, D, 0.3 * i);
        rot[i] = planted(GH, GW, D, 0.3 * i + 0.1);
    }
    ad_bank_params p = ad_bank_default_params();
    p.knn_k = k;
    p.mask_test = mask_test;
    ad_bank *b = ad_bank_new(NULL, &p);
    uint8_t refkeep[GH * GW];
    for (int c = 0; c < GH * GW; c++) refkeep[c] = c % 4 != 1; /* reference masks drop cells */
    for (int i = 0; i < NI; i++) {
        ad_features f = {GH, GW, D, x[i], NULL}, g = {GH, GW, D, rot[i], NULL};
        CHECK_OK(ad_bank_add_features(b, &f, i % 2 ? refkeep : NULL, 10 + i));
        CHECK_OK(ad_bank_add_features(b, &g, NULL, 10 + i)); /* its "rotation" */
    }
    double want[NI];
    for (int i = 0; i < NI; i++) {
        ad_bank *o = ad_bank_new(NULL, &p);
        for (int j = 0; j < NI; j++) {
            if (j == i) continue;
            ad_features f = {GH, GW, D, x[j], NULL}, g = {GH, GW, D, rot[j], NULL};
            CHECK_OK(ad_bank_add_features(o, &f, j % 2 ? refkeep : NULL, j));
            CHECK_OK(ad_bank_add_features(o, &g, NULL, j));
        }
        ad_features f = {GH, GW, D, x[i], NULL};
        uint8_t keep[GH * GW];
        if (mask_test) CHECK_OK(ad_mask_pca(&f, keep));
        double grid[GH * GW];
        CHECK_OK(ad_bank_query(o, NULL, &f, mask_test ? keep : NULL, -1, grid));
        want[i] = ad_score_top1p(grid, GH * GW);
        ad_bank_free(o);
    }
    /* max, min and median of the four scores, through the two rules */
    double sorted[NI];
    memcpy(sorted, want, sizeof sorted);
    for (int i = 0; i < NI; i++)
        for (int j = i + 1; j < NI; j++)
            if (sorted[j] < sorted[i]) {
                double t = sorted[i];
                sorted[i] = sorted[j];
                sorted[j] = t;
            }
    const struct {
        ad_thresh_rule rule;
        double q, want;
    } c[] = {{AD_THRESH_MAX, 0, sorted[3]},
             {AD_THRESH_QUANTILE, 0, sorted[0]},
             {AD_THRESH_QUANTILE, 0.5, sorted[1] + (sorted[2] - sorted[1]) * 0.5}};
    for (int r = 0; r < 3; r++) {
        CHECK_OK(ad_bank_calibrate_loo(b, NULL, c[r].rule, c[r].q));
        double thr = 0;
        ad_bank_threshold(b, &thr);
        printf("features LOO k=%d mask_test=%d rule %d q %.1f: threshold %.9f, separate banks "
               "%.9f, |diff| %.3g\n", k, mask_test, (int)c[r].rule, c[r].q, thr, c[r].want,
               fabs(thr - c[r].want));
        CHECK(fabs(thr - c[r].want) <= 1e-6, "LOO threshold %.9f vs %.9f", thr, c[r].want);
    }
    ad_bank_free(b);
    for (int i = 0; i < NI; i++) {
        free(x[i]);
        free(rot[i]);
    }
}

/* With the model: two references (8 rotations each, masked tests), LOO against predictions on
 * banks of the other reference, and verdicts. */
static void with_model(void)
{
    ad_model *m = ad_model_load(t_data("dinov2/tiny.safetensors"));
    CHECK(m != NULL, "model: %s", ad_errmsg());
    if (!m) return;
    ad_context *ctx = ad_context_new(m, ad_context_default_params());
    const char *refs[2] = {"pipeline/seed0/ref_0.png", "pipeline/seed2/ref_0.png"};
    ad_image img[2] = {{0}, {0}};
    for (int i = 0; i < 2; i++) CHECK_OK(adi_io_read_image(t_data(refs[i]), &img[i]));
    ad_bank_params p = ad_bank_default_params();
    p.resolution = 224;
    p.rotate = 1;
    p.mask_test = 1;
    ad_bank *b = ad_bank_new(m, &p);
    for (int i = 0; i < 2; i++) CHECK_OK(ad_bank_add_image(b, ctx, &img[i], i));
    CHECK(ad_bank_images(b) == 2, "images %d", ad_bank_images(b));
    CHECK(ad_bank_add_image(b, ctx, &img[0], 1) == AD_E_ARG, "duplicate image id accepted");
    size_t rows = ad_bank_rows(b);
    double s[2];
    for (int i = 0; i < 2; i++) {
        ad_bank *o = ad_bank_new(m, &p);
        CHECK_OK(ad_bank_add_image(o, ctx, &img[1 - i], 0));
        ad_result r = {0};
        CHECK_OK(ad_predict(o, ctx, &img[i], -1, &r));
        s[i] = r.score;
        CHECK(r.verdict == AD_VERDICT_NONE, "verdict without threshold: %d", (int)r.verdict);
        ad_result_free(&r);
        ad_bank_free(o);
    }
    CHECK_OK(ad_bank_calibrate_loo(b, ctx, AD_THRESH_MAX, 0));
    double thr = 0;
    ad_bank_threshold(b, &thr);
    double want = s[0] > s[1] ? s[0] : s[1];
    printf("images LOO (224, 8 rotations, masked): threshold %.9f, max of predictions on the other "
           "reference %.9f (%.9f, %.9f), |diff| %.3g; bank %zu rows\n",
           thr, want, s[0], s[1], fabs(thr - want), rows);
    CHECK(fabs(thr - want) <= 1e-5, "LOO %.9f vs %.9f", thr, want);

    /* Verdicts: threshold = the score of test_1 exactly; equal is OK, above is NG. */
    const char *tests[3] = {"pipeline/seed0/test_1.png", "pipeline/seed0/test_0.png",
                            "pipeline/seed0/test_3.png"};
    ad_image t[3] = {{0}, {0}, {0}};
    double ts[3];
    for (int i = 0; i < 3; i++) {
        CHECK_OK(adi_io_read_image(t_data(tests[i]), &t[i]));
        ad_result r = {0};
        CHECK_OK(ad_predict(b, ctx, &t[i], -1, &r));
        ts[i] = r.score;
        ad_result_free(&r);
    }
    CHECK_OK(ad_bank_calibrate_scores(b, &ts[0], 1, AD_THRESH_MAX, 0));
    for (int i = 0; i < 3; i++) {
        ad_result r = {0};
        CHECK_OK(ad_predict(b, ctx, &t[i], -1, &r));
        ad_verdict want_v = r.score > ts[0] ? AD_VERDICT_NG : AD_VERDICT_OK;
        printf("verdict %s: score %.6f vs threshold %.6f -> %s\n", tests[i], r.score, ts[0],
               r.verdict == AD_VERDICT_NG ? "NG" : r.verdict == AD_VERDICT_OK ? "OK" : "none");
        CHECK(r.verdict == want_v, "%s verdict %d", tests[i], (int)r.verdict);
        if (i == 0) CHECK(r.verdict == AD_VERDICT_OK, "score equal to the threshold is NG");
        if (i == 2) CHECK(r.verdict == AD_VERDICT_NG, "defective image not NG (%.6f vs %.6f)", r.score, ts[0]);
        ad_result_free(&r);
    }
    /* Predict argument checks leave the result untouched. */
    ad_result r = {0};
    r.score = 42;
    CHECK(ad_predict(b, ctx, &t[0], 2, &r) == AD_E_ARG && r.score == 42, "mask 2 accepted");
    CHECK(ad_predict(b, ctx, NULL, -1, &r) == AD_E_ARG && r.score == 42, "NULL image accepted");
    for (int i = 0; i < 3; i++) ad_image_free(&t[i]);
    for (int i = 0; i < 2; i++) ad_image_free(&img[i]);
    ad_bank_free(b);
    ad_context_free(ctx);
    ad_model_free(m);
}

int main(void)
{
    rules();
    loo_features(1, 0);
    loo_features(1, 1);
    loo_features(3, 1);
    with_model();
    return t_done("test_threshold_calibration");
}
