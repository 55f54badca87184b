/* Coreset subsampling: dt_kcenter picks what a plain greedy k-center (double precision, every
 * distance recomputed from scratch) picks, with and without centres given beforehand; the picks
 * do not depend on the thread count (the projected path included); ad_bank_coreset keeps
 * ceil(R * rows) rows (or an absolute count) in bank order, R = 1 leaves the bank and its search
 * results untouched, leave-one-out still works (dropped unrotated rows kept aside), the setting
 * survives save + load, references added later keep the fraction, bad settings are refused. */
#include "anomalydino.h"
#include "detect/detect.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2 - 1);
}

/* Clustered rows: most near a few centres, some spread out (so the greedy order matters). */
static float *clustered(size_t n, int d)
{
    float *x = malloc(sizeof(float) * n * (size_t)d);
    float c[8][512];
    for (int k = 0; k < 8; k++)
        for (int j = 0; j < d; j++) c[k][j] = 3 * frand();
    for (size_t i = 0; i < n; i++) {
        int k = (int)(i * 2654435761u % 8);
        float s = i % 17 == 0 ? 2.0f : 0.3f;
        for (int j = 0; j < d; j++) x[i * d + j] = c[k][j] + s * frand();
    }
    return x;
}

/* The plain greedy, in double, O(picks * n * d) with no state but the minimum distances. */
static void naive_kcenter(const float *x, size_t n, int d, size_t n_pre, size_t target, size_t *sel)
{
    double *mind = malloc(sizeof(double) * n);
    unsigned char *picked = calloc(n, 1);
    for (size_t i = 0; i < n; i++) mind[i] = INFINITY;
    size_t cnt = 0;
    for (size_t c = 0; c < n_pre; c++)
        for (size_t i = n_pre; i < n; i++) {
            double s = 0;
            for (int j = 0; j < d; j++) {
                double t = (double)x[i * d + j] - x[c * d + j];
                s += t * t;
            }
            if (s < mind[i]) mind[i] = s;
        }
    size_t centre = (size_t)-1;
    if (n_pre == 0) {
        sel[cnt++] = 0;
        picked[0] = 1;
        centre = 0;
    }
    while (cnt < target) {
        if (centre != (size_t)-1)
            for (size_t i = n_pre; i < n; i++) {
                double s = 0;
                for (int j = 0; j < d; j++) {
                    double t = (double)x[i * d + j] - x[centre * d + j];
                    s += t * t;
                }
                if (s < mind[i]) mind[i] = s;
            }
        double best = -1;
        size_t bi = 0;
        for (size_t i = n_pre; i < n; i++)
            if (!picked[i] && mind[i] > best) {
                best = mind[i];
                bi = i;
            }
        sel[cnt++] = bi;
        picked[bi] = 1;
        centre = bi;
    }
    free(mind);
    free(picked);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    /* 1. Against the plain greedy (d <= 128: no projection). */
    {
        const size_t n = 3000, target = 200, n_pre = 500;
        const int d = 48;
        float *x = clustered(n, d);
        size_t *a = malloc(sizeof(size_t) * target), *b = malloc(sizeof(size_t) * target);
        CHECK_OK(dt_kcenter(x, n, d, 0, target, 2, a));
        naive_kcenter(x, n, d, 0, target, b);
        qsort(b, target, sizeof *b, cmp_size);
        size_t diff = 0;
        for (size_t i = 0; i < target; i++) diff += a[i] != b[i];
        printf("k-center vs plain greedy, %zu of %zu rows: %zu picks differ\n", target, n, diff);
        CHECK(diff == 0, "%zu picks differ from the plain greedy", diff);
        CHECK_OK(dt_kcenter(x, n, d, n_pre, target, 2, a));
        naive_kcenter(x, n, d, n_pre, target, b);
        qsort(b, target, sizeof *b, cmp_size);
        diff = 0;
        for (size_t i = 0; i < target; i++) diff += a[i] != b[i] || a[i] < n_pre;
        printf("with %zu centres given: %zu picks differ\n", n_pre, diff);
        CHECK(diff == 0, "%zu picks differ with centres given", diff);
        CHECK(dt_kcenter(x, n, d, n_pre, n - n_pre + 1, 1, a) == AD_E_ARG, "too many picks accepted");
        free(x);
        free(a);
        free(b);
    }
    /* 2. Thread count: the same picks with 1, 2 and 3 threads (projected, 160 wide; enough
     * rows that the greedy loop really runs on several threads). */
    {
        const size_t n = 66000, target = 24;
        const int d = 160;
        float *x = clustered(n, d);
        size_t *s1 = malloc(sizeof(size_t) * target), *s2 = malloc(sizeof(size_t) * target),
               *s3 = malloc(sizeof(size_t) * target);
        CHECK_OK(dt_kcenter(x, n, d, 0, target, 1, s1));
        CHECK_OK(dt_kcenter(x, n, d, 0, target, 2, s2));
        CHECK_OK(dt_kcenter(x, n, d, 0, target, 3, s3));
        CHECK(!memcmp(s1, s2, target * sizeof *s1) && !memcmp(s1, s3, target * sizeof *s1),
              "picks depend on the thread count");
        CHECK_OK(dt_kcenter(x, n, d, 1000, target, 1, s1));
        CHECK_OK(dt_kcenter(x, n, d, 1000, target, 3, s3));
        CHECK(!memcmp(s1, s3, target * sizeof *s1) && s1[0] >= 1000,
              "picks with centres depend on the thread count");
        free(x);
        free(s1);
        free(s2);
        free(s3);
    }
    /* 3. Banks. */
    {
        const int d = 64, gh = 6, gw = 8, n_img = 5, views = 3;
        ad_bank_params p = ad_bank_default_params();
        p.mask_test = 0;
        ad_bank *full = ad_bank_new(NULL, &p);
        ad_bank *r1 = ad_bank_new(NULL, &p);
        ad_bank *cs = ad_bank_new(NULL, &p);
        float *x = clustered((size_t)gh * gw * n_img * views, d);
        for (int i = 0; i < n_img; i++)
            for (int v = 0; v < views; v++) {
                ad_features f = {gh, gw, d, x + ((size_t)i * views + v) * gh * gw * d, NULL};
                CHECK_OK(ad_bank_add_features(full, &f, NULL, i));
                CHECK_OK(ad_bank_add_features(r1, &f, NULL, i));
                CHECK_OK(ad_bank_add_features(cs, &f, NULL, i));
            }
        const size_t rows = ad_bank_rows(full);
        /* R = 1: the same bank, the same answers */
        CHECK_OK(ad_bank_coreset(r1, NULL, 1.0));
        CHECK(ad_bank_rows(r1) == rows && !memcmp(r1->feat, full->feat, rows * d * 4) &&
                  ad_bank_coreset_setting(r1, NULL) == 1.0,
              "R = 1 changed the bank");
        float *qx = clustered((size_t)gh * gw, d);
        ad_features q = {gh, gw, d, qx, NULL};
        double *g1 = malloc(sizeof(double) * gh * gw), *g2 = malloc(sizeof(double) * gh * gw);
        CHECK_OK(ad_bank_query(full, NULL, &q, NULL, -1, g1));
        CHECK_OK(ad_bank_query(r1, NULL, &q, NULL, -1, g2));
        CHECK(!memcmp(g1, g2, sizeof(double) * gh * gw), "R = 1 changed the search");
        CHECK_OK(ad_bank_calibrate_loo(full, NULL, AD_THRESH_MAX, 1));
        CHECK_OK(ad_bank_calibrate_loo(r1, NULL, AD_THRESH_MAX, 1));
        double tf = 0, t1 = 1;
        ad_bank_threshold(full, &tf);
        ad_bank_threshold(r1, &t1);
        CHECK(tf == t1, "R = 1 changed leave-one-out: %.17g vs %.17g", tf, t1);

        /* R = 0.25: ceil(rows / 4) rows, a subsequence of the bank, every query no closer */
        CHECK_OK(ad_bank_coreset(cs, NULL, 0.25));
        size_t want = (size_t)ceil(0.25 * (double)rows);
        CHECK(ad_bank_rows(cs) == want, "%zu rows kept, want %zu", ad_bank_rows(cs), want);
        size_t j = 0;
        for (size_t i = 0; i < ad_bank_rows(cs) && j <= rows; i++, j++)
            while (j < rows && memcmp(cs->feat + i * d, full->feat + j * d, d * 4)) j++;
        CHECK(j <= rows, "coreset rows are not a subsequence of the bank");
        CHECK_OK(ad_bank_query(cs, NULL, &q, NULL, -1, g2));
        int closer = 0;
        for (int i = 0; i < gh * gw; i++) closer += g2[i] < g1[i] - 1e-6; /* GEMM blocking: ulps */
        CHECK(closer == 0, "%d patches nearer to the coreset than to the full bank", closer);
        /* leave-one-out needs every reference's unrotated cells */
        CHECK_OK(ad_bank_calibrate_loo(cs, NULL, AD_THRESH_MAX, 1));
        double tc = 0;
        ad_bank_threshold(cs, &tc);
        printf("R = 0.25: %zu of %zu rows, %zu side rows; leave-one-out threshold %.6f (full %.6f)\n",
               ad_bank_rows(cs), rows, cs->side_rows, tc, tf);
        CHECK(tc >= tf - 1e-6, "coreset threshold %.9g below the full bank's %.9g", tc, tf);
        CHECK(ad_bank_coreset(cs, NULL, 0.5) == AD_E_ARG, "second coreset accepted");
        /* saved and loaded: setting and rows kept */
        CHECK_OK(ad_bank_save(cs, t_tmp("coreset.adbank")));
        ad_bank *ld = ad_bank_load(t_tmp("coreset.adbank"));
        CHECK(ld != NULL, "reload: %s", ad_errmsg());
        size_t offered = 0;
        if (ld) {
            CHECK(ad_bank_coreset_setting(ld, &offered) == 0.25 && offered == rows &&
                      ad_bank_rows(ld) == want && ld->side_rows == cs->side_rows,
                  "setting after load %g, offered %zu", ad_bank_coreset_setting(ld, NULL), offered);
            /* a later reference keeps the fraction of its own rows */
            for (int v = 0; v < views; v++) {
                ad_features f = {gh, gw, d, x + (size_t)v * gh * gw * d, NULL};
                CHECK_OK(ad_bank_add_features(ld, &f, NULL, 99));
            }
            CHECK_OK(dt_bank_coreset_rows(ld, want, 2));
            size_t add = (size_t)ceil(0.25 * gh * gw * views);
            CHECK(ad_bank_rows(ld) == want + add, "%zu rows after adding, want %zu",
                  ad_bank_rows(ld), want + add);
            ad_bank_free(ld);
        }
        /* an absolute row count */
        ad_bank *ab = ad_bank_new(NULL, &p);
        for (int i = 0; i < n_img; i++) {
            ad_features f = {gh, gw, d, x + (size_t)i * views * gh * gw * d, NULL};
            CHECK_OK(ad_bank_add_features(ab, &f, NULL, i));
        }
        CHECK_OK(ad_bank_coreset(ab, NULL, 37));
        CHECK(ad_bank_rows(ab) == 37, "absolute count: %zu rows", ad_bank_rows(ab));
        /* rows added as they are (ad_bank_add_features) past the rows once offered: still a
         * bank file that loads */
        for (int i = 0; i < 6; i++) {
            ad_features f = {gh, gw, d, x + (size_t)i * gh * gw * d, NULL};
            CHECK_OK(ad_bank_add_features(ab, &f, NULL, 100 + i));
        }
        CHECK_OK(ad_bank_save(ab, t_tmp("coreset_grown.adbank")));
        ad_bank *abl = ad_bank_load(t_tmp("coreset_grown.adbank"));
        CHECK(abl && ad_bank_rows(abl) == 37 + 6 * (size_t)gh * gw && ad_bank_coreset_setting(abl, NULL) == 37,
              "grown coreset bank reload: %s", abl ? "wrong rows" : ad_errmsg());
        ad_bank_free(abl);
        ad_bank_free(ab);
        /* bad settings */
        const double bad[] = {0, -0.5, 1.5, NAN, INFINITY};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            ad_bank *t = ad_bank_new(NULL, &p);
            ad_features f = {gh, gw, d, x, NULL};
            CHECK_OK(ad_bank_add_features(t, &f, NULL, 0));
            CHECK(ad_bank_coreset(t, NULL, bad[i]) == AD_E_ARG && ad_bank_rows(t) == (size_t)gh * gw,
                  "coreset %g accepted", bad[i]);
            ad_bank_free(t);
        }
        ad_bank *empty = ad_bank_new(NULL, &p);
        CHECK(ad_bank_coreset(empty, NULL, 0.5) == AD_E_ARG, "empty bank accepted");
        ad_bank_free(empty);
        free(qx);
        free(g1);
        free(g2);
        free(x);
        ad_bank_free(full);
        ad_bank_free(r1);
        ad_bank_free(cs);
    }
    return t_done("test_coreset");
}
