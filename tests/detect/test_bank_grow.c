/* Banks that grow (ad_bank_add_references): adding references one call at a time, relearning the
 * threshold each time, gives bit-identical rows, side rows, masks and the same threshold as one
 * call with all of them and as ad_bank_add_image with ids 0, 1, ...; for several settings
 * (rotations, test masking, reference masking, k = 3, the quantile rule). A failing image leaves
 * the bank exactly as it was; recalibration of a threshold learned from calibration scores is
 * refused before any change; names and times are recorded. */
#include "anomalydino.h"
#include "detect/detect.h"
#include "io/io.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_REFS 4

static const char *imgs_rel[N_REFS] = {"pipeline/seed0/ref_0.png", "pipeline/seed2/ref_0.png",
                                       "pipeline/seed0/test_0.png", "pipeline/seed2/test_1.png"};

/* Everything the search and leave-one-out use, compared bit for bit; 1 if equal. */
static int same_bank(const ad_bank *a, const ad_bank *b, const char *what)
{
    const size_t d = (size_t)a->dim;
    int ok = a->dim == b->dim && a->rows == b->rows && a->side_rows == b->side_rows &&
             a->n_images == b->n_images;
    ok = ok && !memcmp(a->feat, b->feat, a->rows * d * 4) && !memcmp(a->norm2, b->norm2, a->rows * 4) &&
         !memcmp(a->row_image, b->row_image, a->rows * 4) && !memcmp(a->row_angle, b->row_angle, a->rows) &&
         !memcmp(a->row_cell, b->row_cell, a->rows * 4);
    ok = ok && (a->side_rows == 0 || (!memcmp(a->side_feat, b->side_feat, a->side_rows * d * 4) &&
                                      !memcmp(a->side_image, b->side_image, a->side_rows * 4) &&
                                      !memcmp(a->side_cell, b->side_cell, a->side_rows * 4)));
    for (int i = 0; ok && i < a->n_images; i++) {
        const dt_image *x = &a->images[i], *y = &b->images[i];
        ok = x->id == y->id && x->grid_h == y->grid_h && x->grid_w == y->grid_w &&
             x->n_inserts == y->n_inserts && !x->keep_test == !y->keep_test &&
             (!x->keep_test || !memcmp(x->keep_test, y->keep_test, (size_t)x->grid_h * x->grid_w));
    }
    CHECK(ok, "%s: banks differ (%zu/%zu rows, %zu/%zu side rows)", what, a->rows, b->rows,
          a->side_rows, b->side_rows);
    return ok;
}

int main(void)
{
    ad_model *m = ad_model_load(t_data("dinov2/tiny.safetensors"));
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = 2;
    ad_context *ctx = ad_context_new(m, cp);
    CHECK(m && ctx, "model: %s", ad_errmsg());
    if (!ctx) return t_done("test_bank_grow");
    ad_image imgs[N_REFS];
    const char *names[N_REFS];
    for (int i = 0; i < N_REFS; i++) {
        memset(&imgs[i], 0, sizeof imgs[i]);
        CHECK_OK(adi_io_read_image(t_data(imgs_rel[i]), &imgs[i]));
        names[i] = imgs_rel[i];
    }

    struct {
        int rotate, mask_refs, mask_test, k;
        ad_thresh_rule rule;
        double q;
    } cases[] = {{1, 0, 1, 1, AD_THRESH_MAX, 1.0},
                 {0, 1, 1, 1, AD_THRESH_QUANTILE, 0.75},
                 {1, 1, 0, 3, AD_THRESH_MAX, 1.0},
                 {0, 0, 0, 1, AD_THRESH_QUANTILE, 0.5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ad_bank_params p = ad_bank_default_params();
        p.resolution = 112;
        p.rotate = cases[c].rotate;
        p.mask_refs = cases[c].mask_refs;
        p.mask_test = cases[c].mask_test;
        p.knn_k = cases[c].k;
        char what[96];
        snprintf(what, sizeof what, "rotate %d mask_refs %d mask_test %d k %d rule %d", p.rotate,
                 p.mask_refs, p.mask_test, p.knn_k, (int)cases[c].rule);

        /* all at once: one call, then leave-one-out */
        ad_bank *all = ad_bank_new(m, &p);
        CHECK_OK(ad_bank_add_references(all, ctx, imgs, names, N_REFS, 0));
        CHECK_OK(ad_bank_calibrate_loo(all, ctx, cases[c].rule, cases[c].q));
        /* the image API with ids 0.. (what fit did before) */
        ad_bank *byid = ad_bank_new(m, &p);
        for (int i = 0; i < N_REFS; i++) CHECK_OK(ad_bank_add_image(byid, ctx, &imgs[i], i));
        CHECK_OK(ad_bank_calibrate_loo(byid, ctx, cases[c].rule, cases[c].q));
        /* one by one: the first two, a threshold by the rule, then each later one recalibrating,
         * through a save + load between every step (as `bank add` does) */
        ad_bank *one = ad_bank_new(m, &p);
        CHECK_OK(ad_bank_add_references(one, ctx, &imgs[0], &names[0], 1, 0));
        CHECK_OK(ad_bank_add_references(one, ctx, &imgs[1], &names[1], 1, 0));
        CHECK_OK(ad_bank_calibrate_loo(one, ctx, cases[c].rule, cases[c].q));
        for (int i = 2; i < N_REFS; i++) {
            CHECK_OK(ad_bank_save(one, t_tmp("grow_step.adbank")));
            ad_bank_free(one);
            one = ad_bank_load(t_tmp("grow_step.adbank"));
            CHECK(one != NULL, "reload: %s", ad_errmsg());
            if (!one) break;
            CHECK_OK(ad_bank_add_references(one, ctx, &imgs[i], &names[i], 1, 1));
        }
        if (!one) break;
        same_bank(all, byid, what);
        same_bank(all, one, what);
        double ta = -1, tb = -2, to = -3;
        ad_bank_threshold(all, &ta);
        ad_bank_threshold(byid, &tb);
        ad_bank_threshold(one, &to);
        printf("%s: %zu rows, threshold all at once %.17g, by id %.17g, one by one %.17g\n", what,
               ad_bank_rows(all), ta, tb, to);
        CHECK(ta == tb && ta == to, "%s: thresholds differ", what);
        CHECK(ad_bank_threshold_count(one) == N_REFS - 1, "%s: %d records", what,
              ad_bank_threshold_count(one));
        ad_thresh_record last;
        CHECK_OK(ad_bank_threshold_get(one, ad_bank_threshold_count(one) - 1, &last));
        CHECK(last.rule == cases[c].rule && last.n_refs == N_REFS && last.n_scores == N_REFS &&
                  last.source == AD_THRESH_FROM_LOO,
              "%s: last record rule %d refs %d", what, last.rule, last.n_refs);
        for (int i = 0; i < N_REFS; i++) {
            ad_bank_ref r;
            CHECK_OK(ad_bank_ref_get(one, i, &r));
            CHECK(r.image_id == i && !strcmp(r.name, names[i]) && r.added > 0, "%s: ref %d '%s'",
                  what, i, r.name);
        }
        /* predictions agree bit for bit */
        ad_result ra = {0}, ro = {0};
        CHECK_OK(ad_predict(all, ctx, &imgs[2], -1, &ra));
        CHECK_OK(ad_predict(one, ctx, &imgs[2], -1, &ro));
        CHECK(ra.score == ro.score, "%s: scores %.17g vs %.17g", what, ra.score, ro.score);
        ad_result_free(&ra);
        ad_result_free(&ro);
        ad_bank_free(all);
        ad_bank_free(byid);
        ad_bank_free(one);
    }

    /* All or nothing: a bad second image leaves the bank (rows, records, threshold) as it was. */
    ad_bank_params p = ad_bank_default_params();
    p.resolution = 112;
    ad_bank *b = ad_bank_new(m, &p);
    CHECK_OK(ad_bank_add_references(b, ctx, imgs, names, 2, 1));
    size_t rows0 = ad_bank_rows(b);
    double thr0 = 0;
    ad_bank_threshold(b, &thr0);
    ad_image bad[2] = {imgs[2], {0, 0, NULL}};
    ad_status st = ad_bank_add_references(b, ctx, bad, NULL, 2, 1);
    CHECK(st == AD_E_ARG, "bad image accepted: %s", ad_status_name(st));
    printf("bad image: %s\n", ad_errmsg());
    double thr1 = 0;
    ad_bank_threshold(b, &thr1);
    CHECK(ad_bank_rows(b) == rows0 && ad_bank_images(b) == 2 && thr1 == thr0 &&
              ad_bank_threshold_count(b) == 1,
          "failed add changed the bank: %zu rows, %d images", ad_bank_rows(b), ad_bank_images(b));
    /* a threshold from calibration scores cannot be relearned by leave-one-out */
    const double cal[2] = {0.1, 0.2};
    CHECK_OK(ad_bank_calibrate_scores(b, cal, 2, AD_THRESH_MAX, 1));
    st = ad_bank_add_references(b, ctx, &imgs[2], NULL, 1, 1);
    CHECK(st == AD_E_ARG && strstr(ad_errmsg(), "calibration"), "recalibrating calibration scores: %s",
          ad_errmsg());
    CHECK(ad_bank_images(b) == 2 && ad_bank_rows(b) == rows0, "refused add changed the bank");
    /* without recalibration the threshold stays */
    CHECK_OK(ad_bank_add_references(b, ctx, &imgs[2], NULL, 1, 0));
    double thr2 = 0;
    ad_bank_threshold(b, &thr2);
    CHECK(thr2 == 0.2 && ad_bank_images(b) == 3, "threshold %.17g", thr2);
    ad_bank_ref r;
    CHECK_OK(ad_bank_ref_get(b, 2, &r));
    CHECK(r.image_id == 2 && r.name[0] == 0, "unnamed ref: id %d name '%s'", r.image_id, r.name);
    CHECK(ad_bank_ref_get(b, 3, &r) == AD_E_ARG, "ref out of range accepted");
    CHECK(ad_bank_add_references(b, ctx, imgs, NULL, 0, 0) == AD_E_ARG, "n = 0 accepted");
    CHECK(ad_bank_add_references(NULL, ctx, imgs, NULL, 1, 0) == AD_E_ARG, "NULL bank accepted");
    /* a one-reference bank cannot be recalibrated by leave-one-out */
    ad_bank *single = ad_bank_new(m, &p);
    CHECK(ad_bank_add_references(single, ctx, imgs, NULL, 1, 1) == AD_E_ARG && ad_bank_images(single) == 0,
          "leave-one-out with one reference accepted");
    ad_bank_free(single);
    /* another model's context is refused */
    ad_model *m2 = ad_model_load(t_data("dinov2/tiny_swiglu.safetensors"));
    ad_context *ctx2 = m2 ? ad_context_new(m2, cp) : NULL;
    if (ctx2) {
        st = ad_bank_add_references(b, ctx2, imgs, NULL, 1, 0);
        CHECK(st == AD_E_MISMATCH && ad_bank_images(b) == 3, "other weights accepted: %s", ad_status_name(st));
    }
    ad_context_free(ctx2);
    ad_model_free(m2);
    ad_bank_free(b);

    for (int i = 0; i < N_REFS; i++) ad_image_free(&imgs[i]);
    ad_context_free(ctx);
    ad_model_free(m);
    return t_done("test_bank_grow");
}
