/* Hand-worked cases and edge cases of the metrics: ties, inverted rankings, AU-PRO worked out on
 * paper (interpolation at FPR 0.3, one region per image vs two in one image, all scores tied),
 * empty masks, refused inputs with outputs untouched, a failed add leaving the state as it was,
 * repeated finish, and bit-identical results for 1 and 2 threads. */
#include "eval/eval.h"
#include "testutil.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static void near(const char *what, double got, double want, double tol)
{
    double d = fabs(got - want);
    printf("  %-44s got %.17g want %.17g |diff| %.3g\n", what, got, want, d);
    CHECK(d <= tol, "%s: got %.17g want %.17g", what, got, want);
}

static void image_cases(void)
{
    /* every score tied: one threshold, P = 0.5, R = 1 */
    int l1[] = {0, 1, 0, 1};
    double s1[] = {0.5, 0.5, 0.5, 0.5};
    ad_image_metrics m;
    CHECK_OK(ad_metrics_image(l1, s1, 4, &m));
    near("all tied: auroc", m.auroc, 0.5, 1e-15);
    near("all tied: ap", m.ap, 0.5, 1e-15);
    near("all tied: f1max = 2*0.5*1/1.5", m.f1max, 2.0 / 3.0, 1e-15);

    /* scikit-learn's documentation example */
    int l2[] = {0, 0, 1, 1};
    double s2[] = {0.1, 0.4, 0.35, 0.8};
    CHECK_OK(ad_metrics_image(l2, s2, 4, &m));
    near("sklearn example: auroc", m.auroc, 0.75, 1e-15);
    near("sklearn example: ap = 0.5*1 + 0.5*2/3", m.ap, 0.5 + 1.0 / 3.0, 1e-15);
    near("sklearn example: f1max at P=2/3 R=1", m.f1max, 0.8, 1e-15);

    /* inverted ranking: AP = 0.5*(1/3) + 0.5*0.5, F1 best at full recall */
    int l3[] = {1, 1, 0, 0};
    double s3[] = {0.0, 0.1, 0.5, 0.6};
    CHECK_OK(ad_metrics_image(l3, s3, 4, &m));
    near("inverted: auroc", m.auroc, 0.0, 1e-15);
    near("inverted: ap", m.ap, 5.0 / 12.0, 1e-15);
    near("inverted: f1max", m.f1max, 2.0 / 3.0, 1e-15);

    /* -0.0 and +0.0 are one threshold (np.diff sees 0) */
    int l4[] = {0, 1};
    double s4[] = {0.0, -0.0};
    CHECK_OK(ad_metrics_image(l4, s4, 2, &m));
    near("-0.0 vs +0.0 tie: auroc", m.auroc, 0.5, 1e-15);

    /* refused inputs leave the output alone */
    ad_image_metrics keep = {-7, -7, -7};
    m = keep;
    int one[] = {1, 1, 1};
    double s5[] = {1, 2, 3};
    CHECK(ad_metrics_image(one, s5, 3, &m) == AD_E_ARG, "one class accepted");
    CHECK(strstr(ad_errmsg(), "both classes") != NULL, "message: %s", ad_errmsg());
    int bad[] = {0, 2, 1};
    CHECK(ad_metrics_image(bad, s5, 3, &m) == AD_E_ARG, "label 2 accepted");
    CHECK(strstr(ad_errmsg(), "label 1") != NULL, "message names the index: %s", ad_errmsg());
    double s6[] = {1, NAN, 3};
    int l6[] = {0, 1, 0};
    CHECK(ad_metrics_image(l6, s6, 3, &m) == AD_E_ARG, "NaN score accepted");
    s6[1] = INFINITY;
    CHECK(ad_metrics_image(l6, s6, 3, &m) == AD_E_ARG, "infinite score accepted");
    CHECK(ad_metrics_image(NULL, s6, 3, &m) == AD_E_ARG, "NULL labels accepted");
    CHECK(ad_metrics_image(l6, s5, 0, &m) == AD_E_ARG, "empty input accepted");
    CHECK(m.auroc == -7 && m.ap == -7 && m.f1max == -7, "output written on failure");
}

/* Row 0: region A (2 px: 0.9, 0.2), normals 0.85 0.7, region B (1 px: 0.8); row 1: normals. */
static const float pro_map[10] = {0.9f, 0.2f, 0.85f, 0.7f, 0.8f, 0.6f, 0.5f, 0.4f, 0.3f, 0.1f};
static const uint8_t pro_mask[10] = {255, 255, 0, 0, 255, 0, 0, 0, 0, 0};

static void pro_cases(void)
{
    /* On paper: PRO points (0,0.25) (1/7,0.25) (1/7,0.75) (2/7,0.75), then 3/7 > 0.3 with the
     * same PRO, so the area is 0.25/7 + 0.75/7 + 0.75*(0.3 - 2/7) and AU-PRO = 0.75 - 1/4.2.
     * AUROC: 14 of 21 pairs ordered; F1-max 2/3 at threshold 0.8. x is float32 in the original,
     * hence the 1e-7 tolerance. */
    ad_pixel_eval *pe = ad_pixel_eval_new();
    CHECK_OK(ad_pixel_eval_add(pe, pro_map, pro_mask, 5, 2));
    ad_pixel_metrics a;
    CHECK_OK(ad_pixel_eval_finish(pe, &a));
    near("two regions: pixel auroc", a.auroc, 14.0 / 21.0, 1e-15);
    near("two regions: pixel f1max", a.f1max, 2.0 / 3.0, 1e-15);
    near("two regions: aupro", a.aupro, 0.75 - 1.0 / 4.2, 1e-7);
    ad_pixel_eval_free(pe);

    /* One region per image, the normals spread over a third, good image: same pooled result. */
    pe = ad_pixel_eval_new();
    const float m1[3] = {0.9f, 0.2f, 0.85f};
    const uint8_t k1[3] = {1, 1, 0};
    const float m2[3] = {0.7f, 0.8f, 0.6f};
    const uint8_t k2[3] = {0, 7, 0};
    const float m3[4] = {0.5f, 0.4f, 0.3f, 0.1f};
    const uint8_t k3[4] = {0, 0, 0, 0};   /* an empty mask is a good image */
    CHECK_OK(ad_pixel_eval_add(pe, m1, k1, 3, 1));
    CHECK_OK(ad_pixel_eval_add(pe, m2, k2, 1, 3));
    CHECK_OK(ad_pixel_eval_add(pe, m3, k3, 2, 2));
    ad_pixel_metrics b;
    CHECK_OK(ad_pixel_eval_finish(pe, &b));
    near("one region per image: auroc", b.auroc, a.auroc, 0);
    near("one region per image: f1max", b.f1max, a.f1max, 0);
    near("one region per image: aupro", b.aupro, a.aupro, 0);
    /* finish again: same numbers; add afterwards: still a valid evaluation */
    ad_pixel_metrics c;
    CHECK_OK(ad_pixel_eval_finish(pe, &c));
    CHECK(!memcmp(&b, &c, sizeof b), "second finish differs");
    ad_pixel_eval_free(pe);

    /* Diagonal contact joins regions (8-connectivity): (0,0) and (1,1) are one region of 2 px,
     * (3,0) another, so R = 2 and the top pixel weighs 1/2 / 2. Every normal pixel scores below
     * it, so PRO stays 0.25 up to FPR 0.3: AU-PRO 0.25 (4-connectivity would give 1/3). */
    pe = ad_pixel_eval_new();
    const float d[12] = {0.9f, 0.5f,  0.45f, 0.02f, 0.4f, 0.05f,
                         0.35f, 0.3f, 0.25f, 0.2f,  0.15f, 0.1f};
    const uint8_t dk[12] = {1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0};
    CHECK_OK(ad_pixel_eval_add(pe, d, dk, 4, 3));
    CHECK_OK(ad_pixel_eval_finish(pe, &c));
    near("diagonal contact, 8-connected: aupro", c.aupro, 0.25, 1e-15);
    ad_pixel_eval_free(pe);

    /* Every score tied: the only samples are (0,0) and (1,1); PRO at 0.3 interpolates to 0.3,
     * area 0.5*0.3*0.3, AU-PRO 0.15; AUROC 0.5. */
    pe = ad_pixel_eval_new();
    float flat[12];
    uint8_t fk[12] = {0};
    for (int i = 0; i < 12; i++) flat[i] = 0.25f;
    fk[5] = fk[6] = 1;
    CHECK_OK(ad_pixel_eval_add(pe, flat, fk, 4, 3));
    CHECK_OK(ad_pixel_eval_finish(pe, &c));
    near("all tied: aupro", c.aupro, 0.15, 1e-15);
    near("all tied: pixel auroc", c.auroc, 0.5, 1e-15);
    ad_pixel_eval_free(pe);
}

static void refusals(void)
{
    ad_pixel_metrics keep = {-7, -7, -7}, m = keep;
    ad_pixel_eval *pe = ad_pixel_eval_new();
    /* good images only: no positives */
    CHECK_OK(ad_pixel_eval_add(pe, pro_map, NULL, 5, 2));
    CHECK(ad_pixel_eval_finish(pe, &m) == AD_E_ARG, "finish without anomalous pixels accepted");
    CHECK(strstr(ad_errmsg(), "both classes") != NULL, "message: %s", ad_errmsg());
    CHECK(!memcmp(&m, &keep, sizeof m), "output written on failure");
    /* a NaN (and an infinity) is refused with its position, and the state stays as it was */
    float bad[10];
    memcpy(bad, pro_map, sizeof bad);
    bad[7] = NAN;
    CHECK(ad_pixel_eval_add(pe, bad, pro_mask, 5, 2) == AD_E_ARG, "NaN map accepted");
    CHECK(strstr(ad_errmsg(), "x 2, y 1") != NULL, "message names the pixel: %s", ad_errmsg());
    bad[7] = -INFINITY;
    CHECK(ad_pixel_eval_add(pe, bad, pro_mask, 5, 2) == AD_E_ARG, "infinite map accepted");
    CHECK(ad_pixel_eval_add(pe, pro_map, pro_mask, 0, 2) == AD_E_ARG, "width 0 accepted");
    CHECK(ad_pixel_eval_add(pe, NULL, pro_mask, 5, 2) == AD_E_ARG, "NULL map accepted");
    CHECK(ad_pixel_eval_add(NULL, pro_map, pro_mask, 5, 2) == AD_E_ARG, "NULL eval accepted");
    CHECK(ad_pixel_eval_finish(NULL, &m) == AD_E_ARG, "NULL eval accepted by finish");
    CHECK_OK(ad_pixel_eval_add(pe, pro_map, pro_mask, 5, 2));
    CHECK_OK(ad_pixel_eval_finish(pe, &m));
    ad_pixel_eval *ref = ad_pixel_eval_new();
    ad_pixel_metrics r;
    CHECK_OK(ad_pixel_eval_add(ref, pro_map, NULL, 5, 2));
    CHECK_OK(ad_pixel_eval_add(ref, pro_map, pro_mask, 5, 2));
    CHECK_OK(ad_pixel_eval_finish(ref, &r));
    CHECK(!memcmp(&m, &r, sizeof m), "refused adds changed the evaluation (aupro %.17g vs %.17g)",
          m.aupro, r.aupro);
    ad_pixel_eval_free(ref);
    ad_pixel_eval_free(pe);
    ad_pixel_eval_free(NULL);
}

/* Large enough for the 16-bit first radix pass and the parallel bucket sorts. */
static void threads_identical(void)
{
    const int w = 300, h = 200, n_img = 6;
    float *map = malloc((size_t)w * h * sizeof *map);
    uint8_t *mask = malloc((size_t)w * h);
    ad_pixel_metrics r[2];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        uint64_t s = 99;
        ad_pixel_eval *pe = ad_pixel_eval_new();
        for (int im = 0; im < n_img; im++) {
            for (int i = 0; i < w * h; i++) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                int x = i % w, y = i / w;
                int in = (x - 40 * im - 50) * (x - 40 * im - 50) + (y - 100) * (y - 100) < 400;
                mask[i] = (uint8_t)(in ? 255 : 0);
                map[i] = (float)((s >> 40) % 5000) / 5000.0f + (in ? 0.3f : 0.0f);
            }
            CHECK_OK(ad_pixel_eval_add(pe, map, im ? mask : NULL, w, h));
        }
        CHECK_OK(ad_pixel_eval_finish(pe, &r[t]));
        ad_pixel_eval_free(pe);
    }
    printf("  1 vs 2 threads: auroc %.17g / %.17g, aupro %.17g / %.17g\n", r[0].auroc, r[1].auroc,
           r[0].aupro, r[1].aupro);
    CHECK(!memcmp(&r[0], &r[1], sizeof r[0]), "results differ between 1 and 2 threads");
    free(map);
    free(mask);
}

int main(void)
{
    image_cases();
    pro_cases();
    refusals();
    threads_identical();
    return t_done("test_metrics_edge_cases");
}
