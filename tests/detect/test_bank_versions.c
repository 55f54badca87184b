/* Bank file versions: a format-1 file written by the code before format 2 (tests/data/banks)
 * still loads with its settings, rows and threshold, no names, time 0 and no history, and scores
 * as it did; saved again it becomes format 3 with identical rows and answers. A format-2 file
 * written before format 3 (a coreset bank) loads without index, with its names, times, history
 * and coreset setting, scores as it did, and round-trips. Formats 2 and 3 keep names, times,
 * the threshold history (with its scores) and the coreset setting bit-exactly; format 3 keeps
 * the index; a newer version is refused with a message that says so. */
#include "anomalydino.h"
#include "detect/detect.h"
#include "io/io.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, fp);
    fclose(fp);
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (fp) {
        fwrite(b, 1, n, fp);
        fclose(fp);
    }
}

static double score_of(const ad_bank *b, ad_context *ctx, const char *img_path)
{
    ad_image img = {0};
    ad_result r = {0};
    CHECK_OK(adi_io_read_image(img_path, &img));
    ad_status st = ad_predict(b, ctx, &img, -1, &r);
    CHECK(st == AD_OK, "predict %s: %s", img_path, ad_errmsg());
    double s = r.score;
    ad_result_free(&r);
    ad_image_free(&img);
    return s;
}

int main(void)
{
    const char *v1 = t_data("banks/v1_tiny_res112_rot_mask.adbank");
    ad_bank *b = ad_bank_load(v1);
    CHECK(b != NULL, "format-1 bank refused: %s", ad_errmsg());
    if (!b) return t_done("test_bank_versions");
    ad_model *m = ad_model_load(t_data("dinov2/tiny.safetensors"));
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = 1;
    ad_context *ctx = ad_context_new(m, cp);
    CHECK(m && ctx, "model: %s", ad_errmsg());

    /* What the old file holds (see tests/data/banks/README.md). */
    ad_bank_params p = ad_bank_get_params(b);
    CHECK(p.resolution == 112 && p.rotate == 1 && p.mask_test == 1 && p.mask_refs == 0 && p.knn_k == 1,
          "settings %d %d %d %d %d", p.resolution, p.rotate, p.mask_test, p.mask_refs, p.knn_k);
    CHECK(ad_bank_rows(b) == 1280 && ad_bank_images(b) == 2, "%zu rows, %d images", ad_bank_rows(b),
          ad_bank_images(b));
    double thr = 0;
    CHECK(ad_bank_threshold(b, &thr) && thr == 0.10830116271972656, "threshold %.17g", thr);
    CHECK(ad_bank_check_model(b, m) == AD_OK, "weights: %s", ad_errmsg());
    CHECK(ad_bank_threshold_count(b) == 0, "format 1 has no history, got %d", ad_bank_threshold_count(b));
    CHECK(ad_bank_coreset_setting(b, NULL) == 0, "format 1 has no coreset");
    for (int i = 0; i < ad_bank_images(b); i++) {
        ad_bank_ref r;
        CHECK_OK(ad_bank_ref_get(b, i, &r));
        CHECK(r.image_id == i && r.views == 8 && r.added == 0 && r.name && !r.name[0],
              "ref %d: id %d views %d added %lld name '%s'", i, r.image_id, r.views,
              (long long)r.added, r.name ? r.name : "(null)");
    }
    /* It scores as the code that wrote it did (1 thread; the tolerance only allows for
     * backbone changes since, the bank's own rows and search are exact). */
    const double want0 = 0.0021245479583740234, want2 = 0.0645396113395691;
    double s0 = score_of(b, ctx, t_data("pipeline/seed0/test_0.png"));
    double s2 = score_of(b, ctx, t_data("pipeline/seed0/test_2.png"));
    printf("format 1 bank: test_0 %.17g (then %.17g, diff %.3g), test_2 %.17g (then %.17g, diff %.3g)\n",
           s0, want0, fabs(s0 - want0), s2, want2, fabs(s2 - want2));
    CHECK(fabs(s0 - want0) <= 1e-5 && fabs(s2 - want2) <= 1e-5, "scores moved");
    /* leave-one-out on the old file gives the threshold it stored */
    ad_bank *c = ad_bank_load(v1);
    CHECK_OK(ad_bank_calibrate_loo(c, ctx, AD_THRESH_MAX, 1.0));
    double thr_c = 0;
    ad_bank_threshold(c, &thr_c);
    printf("leave-one-out again: %.17g (stored %.17g)\n", thr_c, thr);
    CHECK(fabs(thr_c - thr) <= 1e-5, "leave-one-out %.17g vs stored %.17g", thr_c, thr);
    CHECK(ad_bank_threshold_count(c) == 1, "history after calibrating: %d", ad_bank_threshold_count(c));
    ad_bank_free(c);

    /* Saved again: format 3, the same rows and the same answers. */
    const char *v2 = t_tmp("versions_v2.adbank");
    CHECK_OK(ad_bank_save(b, v2));
    size_t n = 0;
    unsigned char *buf = slurp(v2, &n);
    CHECK(buf && n > 8 && buf[6] == 3 && buf[7] == 0, "written as format %d", buf ? buf[6] : -1);
    ad_bank *b2 = ad_bank_load(v2);
    CHECK(b2 != NULL, "format 2 reload: %s", ad_errmsg());
    if (b2) {
        CHECK(b2->rows == b->rows && !memcmp(b2->feat, b->feat, b->rows * (size_t)b->dim * 4) &&
                  !memcmp(b2->row_image, b->row_image, b->rows * 4) &&
                  !memcmp(b2->row_cell, b->row_cell, b->rows * 4),
              "rows changed through format 2");
        double t2 = 0;
        ad_bank_threshold(b2, &t2);
        CHECK(t2 == thr, "threshold %.17g vs %.17g", t2, thr);
        double s2b = score_of(b2, ctx, t_data("pipeline/seed0/test_2.png"));
        CHECK(s2b == s2, "score %.17g vs %.17g", s2b, s2);
    }

    /* Format 2 keeps names, times, history with scores and the coreset setting exactly. */
    ad_bank *g = ad_bank_load(v1);
    ad_bank_set_clock(g, 1764583200);
    ad_image img = {0};
    CHECK_OK(adi_io_read_image(t_data("pipeline/seed0/test_0.png"), &img));
    const char *name = "line 3/part 0042 \xc3\xa9.png";
    CHECK_OK(ad_bank_add_references(g, ctx, &img, &name, 1, 1));
    ad_image_free(&img);
    const double cal[3] = {0.01, 0.02, 0.0305};
    ad_bank_set_clock(g, 1764586800);
    CHECK_OK(ad_bank_calibrate_scores(g, cal, 3, AD_THRESH_QUANTILE, 0.5));
    CHECK_OK(ad_bank_coreset(g, ctx, 1.0));
    const char *v2g = t_tmp("versions_v2_grown.adbank");
    CHECK_OK(ad_bank_save(g, v2g));
    ad_bank *h = ad_bank_load(v2g);
    CHECK(h != NULL, "grown reload: %s", ad_errmsg());
    if (h) {
        CHECK(ad_bank_images(h) == 3, "%d images", ad_bank_images(h));
        ad_bank_ref r;
        CHECK_OK(ad_bank_ref_get(h, 2, &r));
        CHECK(r.image_id == 2 && !strcmp(r.name, name) && r.added == 1764583200 && r.views == 8,
              "new ref: id %d name '%s' added %lld", r.image_id, r.name, (long long)r.added);
        CHECK_OK(ad_bank_ref_get(h, 0, &r));
        CHECK(r.added == 0 && !r.name[0], "old ref keeps time 0 / no name");
        CHECK(ad_bank_threshold_count(h) == 2, "history %d", ad_bank_threshold_count(h));
        ad_thresh_record t0r, t1r;
        CHECK_OK(ad_bank_threshold_get(h, 0, &t0r));
        CHECK_OK(ad_bank_threshold_get(h, 1, &t1r));
        CHECK(t0r.source == AD_THRESH_FROM_LOO && t0r.rule == AD_THRESH_MAX && t0r.n_refs == 3 &&
                  t0r.n_scores == 3 && t0r.time == 1764583200,
              "record 0: src %d rule %d refs %d scores %d time %lld", t0r.source, t0r.rule,
              t0r.n_refs, t0r.n_scores, (long long)t0r.time);
        double mx = 0;
        for (int i = 0; i < t0r.n_scores; i++) mx = t0r.scores[i] > mx ? t0r.scores[i] : mx;
        CHECK(mx == t0r.threshold, "max rule: %.17g vs max score %.17g", t0r.threshold, mx);
        CHECK(t1r.source == AD_THRESH_FROM_SCORES && t1r.rule == AD_THRESH_QUANTILE &&
                  t1r.quantile == 0.5 && t1r.n_scores == 3 && !memcmp(t1r.scores, cal, sizeof cal) &&
                  t1r.threshold == 0.02 && t1r.time == 1764586800,
              "record 1: src %d q %g thr %.17g", t1r.source, t1r.quantile, t1r.threshold);
        double ht = 0;
        CHECK(ad_bank_threshold(h, &ht) && ht == 0.02, "current threshold %.17g", ht);
        size_t offered = 0;
        CHECK(ad_bank_coreset_setting(h, &offered) == 1.0 && offered == ad_bank_rows(h),
              "coreset setting %g offered %zu", ad_bank_coreset_setting(h, NULL), offered);
        /* saving the loaded bank again gives the same file */
        const char *again = t_tmp("versions_v2_again.adbank");
        CHECK_OK(ad_bank_save(h, again));
        size_t na = 0, ng = 0;
        unsigned char *fa = slurp(again, &na), *fg = slurp(v2g, &ng);
        CHECK(fa && fg && na == ng && !memcmp(fa, fg, na), "format 3 round trip not byte-exact");
        free(fa);
        free(fg);
        ad_bank_free(h);
    }
    ad_bank_free(g);

    /* A format-2 file of the code before format 3 (tests/data/banks/README.md): a coreset bank
     * with names, times and a leave-one-out threshold; no index. */
    {
        ad_bank *c2 = ad_bank_load(t_data("banks/v2_tiny_res112_rot_coreset.adbank"));
        CHECK(c2 != NULL, "format-2 bank refused: %s", ad_errmsg());
        if (c2) {
            ad_bank_ref r;
            size_t offered = 0;
            double thr2 = 0;
            CHECK(ad_bank_rows(c2) == 640 && ad_bank_images(c2) == 2 && !ad_bank_index_get(c2, NULL),
                  "rows %zu images %d", ad_bank_rows(c2), ad_bank_images(c2));
            CHECK(ad_bank_coreset_setting(c2, &offered) == 0.5 && offered == 1280, "coreset %g / %zu",
                  ad_bank_coreset_setting(c2, NULL), offered);
            CHECK_OK(ad_bank_ref_get(c2, 1, &r));
            CHECK(!strcmp(r.name, "tests/data/pipeline/seed2/ref_0.png") && r.added == 1764583200,
                  "reference 1: '%s' %lld", r.name, (long long)r.added);
            CHECK(ad_bank_threshold(c2, &thr2) && fabs(thr2 - 0.108301) < 5e-7 &&
                      ad_bank_threshold_count(c2) == 1, "threshold %.9g", thr2);
            /* predict --threads 1 of the code that wrote it: 0.008067, 0.064540 (6 digits) */
            double a = score_of(c2, ctx, t_data("pipeline/seed0/test_0.png"));
            double z = score_of(c2, ctx, t_data("pipeline/seed0/test_2.png"));
            CHECK(fabs(a - 0.008067) < 5e-7 && fabs(z - 0.064540) < 5e-7, "scores %.9g %.9g", a, z);
            /* round trip through format 3, then an index added and kept */
            const char *c3 = t_tmp("versions_v2_to_v3.adbank");
            CHECK_OK(ad_bank_save(c2, c3));
            ad_bank *c3b = ad_bank_load(c3);
            CHECK(c3b && ad_bank_rows(c3b) == 640 &&
                      !memcmp(c3b->feat, c2->feat, 640 * (size_t)c2->dim * 4) &&
                      score_of(c3b, ctx, t_data("pipeline/seed0/test_2.png")) == z,
                  "format 2 -> 3 round trip");
            ad_index_params ip = {16, 4, 0};
            CHECK_OK(ad_bank_index_build(c3b, ctx, &ip));
            CHECK_OK(ad_bank_save(c3b, c3));
            ad_bank *c3c = ad_bank_load(c3);
            ad_index_info ii = {0};
            CHECK(c3c && ad_bank_index_get(c3c, &ii) && ii.lists == 16 && ii.probes == 4 && ii.rows == 640,
                  "index through format 3: %d lists %d probes %zu rows", ii.lists, ii.probes, ii.rows);
            ad_bank_free(c3c);
            ad_bank_free(c3b);
        }
        ad_bank_free(c2);
    }

    /* A newer version is refused, saying so (checksum fixed so that only the version speaks). */
    if (buf) {
        buf[6] = 4;
        uLong crc = crc32(0L, buf, (uInt)(n - 4));
        for (int i = 0; i < 4; i++) buf[n - 4 + i] = (unsigned char)(crc >> (8 * i));
        const char *v4 = t_tmp("versions_v4.adbank");
        spit(v4, buf, n);
        ad_bank *x = ad_bank_load(v4);
        CHECK(x == NULL && ad_last_status() == AD_E_FORMAT, "format 4 accepted");
        CHECK(strstr(ad_errmsg(), "version 4 is newer than this build reads (3)") &&
                  !strchr(ad_errmsg(), '\n'), "message: %s", ad_errmsg());
        printf("format 4: %s\n", ad_errmsg());
        ad_bank_free(x);
    }
    free(buf);
    ad_bank_free(b2);
    ad_bank_free(b);
    ad_context_free(ctx);
    ad_model_free(m);
    return t_done("test_bank_versions");
}
