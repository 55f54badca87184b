/* The block-wise GEMM k-NN search equals a plain double-precision loop (1 - cosine, mean of the k
 * nearest), for k = 1 and 3, with masks, leave-one-out exclusion, several bank block sizes and
 * thread counts; the AVX2 scan equals the portable one bit for bit. */
#include "anomalydino.h"
#include "detect/detect.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* Features with structure (a few cluster centres plus noise) so that near neighbours matter. */
static void fill(float *x, size_t rows, int d, const float *centres, int nc)
{
    for (size_t i = 0; i < rows; i++) {
        const float *c = centres + (size_t)(urand() * nc) * d;
        for (int j = 0; j < d; j++) x[i * d + j] = c[j] + (float)(urand() - 0.5) * 0.6f;
    }
}

typedef struct {
    const float *x;
    int id;
    size_t rows;
} naive_img;

/* Plain reference: normalise in double, distance 1 - cos, k smallest, mean. */
static void naive(const float *q, size_t nq, const uint8_t *keep, const naive_img *imgs, int nimg,
                  int d, int k, int exclude, double *grid)
{
    double *best = malloc(sizeof(double) * (size_t)k);
    for (size_t i = 0; i < nq; i++) {
        grid[i] = 0;
        if (keep && !keep[i]) continue;
        double qq = 0;
        for (int j = 0; j < d; j++) qq += (double)q[i * d + j] * q[i * d + j];
        for (int j = 0; j < k; j++) best[j] = INFINITY;
        for (int m = 0; m < nimg; m++) {
            if (imgs[m].id == exclude) continue;
            for (size_t r = 0; r < imgs[m].rows; r++) {
                const float *y = imgs[m].x + r * d;
                double yy = 0, qy = 0;
                for (int j = 0; j < d; j++) {
                    yy += (double)y[j] * y[j];
                    qy += (double)q[i * d + j] * y[j];
                }
                double dist = 1 - qy / sqrt(qq * yy);
                if (dist < best[k - 1]) {
                    int p = k - 1;
                    while (p > 0 && best[p - 1] > dist) {
                        best[p] = best[p - 1];
                        p--;
                    }
                    best[p] = dist;
                }
            }
        }
        double s = 0;
        for (int j = 0; j < k; j++) s += best[j];
        grid[i] = s / k;
    }
    free(best);
}

static void scan_paths_agree(void)
{
    enum { N = 1001 };
    float ip[N], mn[N];
    double worst = 0;
    for (int k = 1; k <= 5; k += 2) {
        for (int rep = 0; rep < 20; rep++) {
            float qn = 1.0f + (float)(urand() - 0.5) * 1e-6f;
            for (int i = 0; i < N; i++) {
                ip[i] = (float)(urand() * 2 - 1);
                if (i % 97 == 0) ip[i] = 1.0f; /* distance rounds below 0: clamped */
                mn[i] = 1.0f + (float)(urand() - 0.5) * 1e-6f;
            }
            float a[5], b[5];
            for (int j = 0; j < k; j++) a[j] = b[j] = INFINITY;
            dt_knn_scan(0, qn, ip, mn, N, a, k);
            dt_knn_scan(1, qn, ip, mn, N, b, k);
            CHECK(memcmp(a, b, sizeof(float) * k) == 0, "k=%d rep %d: portable %.9g, avx2 %.9g", k,
                  rep, a[0], b[0]);
            for (int j = 0; j < k; j++) {
                double dd = fabs((double)a[j] - b[j]);
                if (dd > worst) worst = dd;
            }
        }
    }
    printf("scan portable vs avx2 (avx2 %s): max |diff| %.3g\n",
           adi_cpu_has_avx2_fma() ? "available" : "not available, portable twice", worst);
}

int main(void)
{
    scan_paths_agree();

    const int d = 96, nc = 24;
    float *centres = malloc(sizeof(float) * nc * d);
    for (int i = 0; i < nc * d; i++) centres[i] = (float)(urand() * 2 - 1);

    /* Bank: 4 images of different sizes; image 2 arrives in two insertions (a "rotation"). */
    enum { NIMG = 5 };
    const int ids[NIMG] = {0, 7, 2, 3, 2};
    const int gh[NIMG] = {10, 9, 8, 11, 8}, gw[NIMG] = {12, 10, 8, 9, 8};
    float *ref[NIMG];
    naive_img imgs[NIMG];
    size_t total = 0;
    for (int m = 0; m < NIMG; m++) {
        size_t rows = (size_t)gh[m] * gw[m];
        ref[m] = malloc(sizeof(float) * rows * d);
        fill(ref[m], rows, d, centres, nc);
        imgs[m] = (naive_img){ref[m], ids[m], rows};
        total += rows;
    }
    /* Query: 14 x 13 cells, ~70 % kept. */
    const int qh = 14, qw = 13;
    size_t nq = (size_t)qh * qw;
    float *qx = malloc(sizeof(float) * nq * d);
    fill(qx, nq, d, centres, nc);
    uint8_t *keep = malloc(nq);
    for (size_t i = 0; i < nq; i++) keep[i] = urand() < 0.7;
    ad_features qf = {qh, qw, d, qx, NULL};
    double *grid = malloc(sizeof(double) * nq), *ref_grid = malloc(sizeof(double) * nq);
    double *first = malloc(sizeof(double) * nq);

    for (int k = 1; k <= 3; k += 2) {
        ad_bank_params p = ad_bank_default_params();
        p.knn_k = k;
        ad_bank *b = ad_bank_new(NULL, &p);
        CHECK(b != NULL, "ad_bank_new: %s", ad_errmsg());
        if (!b) break;
        for (int m = 0; m < NIMG; m++) {
            ad_features f = {gh[m], gw[m], d, ref[m], NULL};
            CHECK_OK(ad_bank_add_features(b, &f, NULL, ids[m]));
        }
        CHECK(ad_bank_rows(b) == total, "rows %zu, expected %zu", ad_bank_rows(b), total);
        CHECK(ad_bank_images(b) == 4, "images %d, expected 4", ad_bank_images(b));

        const int excludes[3] = {-1, 2, 7};
        const size_t blocks[5] = {0, 1, 37, 256, 100000};
        for (int e = 0; e < 3; e++) {
            for (int mk = 0; mk < 2; mk++) {
                const uint8_t *kp = mk ? keep : NULL;
                naive(qx, nq, kp, imgs, NIMG, d, k, excludes[e], ref_grid);
                for (int bl = 0; bl < 5; bl++)
                    for (int nt = 1; nt <= 2; nt++) {
                        for (size_t i = 0; i < nq; i++) grid[i] = -1;
                        ad_status st = dt_bank_search(b, nt, &qf, kp, excludes[e], blocks[bl], grid);
                        CHECK(st == AD_OK, "search: %s", ad_errmsg());
                        size_t where;
                        double md = t_maxdiff_f64(grid, ref_grid, nq, &where);
                        printf("k=%d exclude=%d mask=%d block=%zu threads=%d: max |diff| %.3g at "
                               "cell %zu (%.8f vs %.8f)\n",
                               k, excludes[e], mk, blocks[bl], nt, md, where, grid[where],
                               ref_grid[where]);
                        CHECK(md <= 1e-5, "max diff %.3g > 1e-5", md);
                        size_t bad = 0;
                        for (size_t i = 0; i < nq; i++)
                            if (kp && !kp[i] && grid[i] != 0) bad++;
                        CHECK(bad == 0, "%zu masked-out cells not 0", bad);
                        if (bl == 0 && nt == 1) memcpy(first, grid, sizeof(double) * nq);
                    }
                /* Determinism: the same call twice gives the same bits. */
                ad_status st = dt_bank_search(b, 2, &qf, kp, excludes[e], 0, grid);
                CHECK(st == AD_OK, "search: %s", ad_errmsg());
                double *again = malloc(sizeof(double) * nq);
                dt_bank_search(b, 2, &qf, kp, excludes[e], 0, again);
                CHECK(memcmp(grid, again, sizeof(double) * nq) == 0, "repeat differs");
                free(again);
            }
        }
        /* The public entry point is the same search. */
        for (size_t i = 0; i < nq; i++) grid[i] = -1;
        CHECK_OK(ad_bank_query(b, NULL, &qf, keep, 2, grid));
        naive(qx, nq, keep, imgs, NIMG, d, k, 2, ref_grid);
        size_t where;
        double md = t_maxdiff_f64(grid, ref_grid, nq, &where);
        printf("k=%d ad_bank_query: max |diff| %.3g at cell %zu\n", k, md, where);
        CHECK(md <= 1e-5, "ad_bank_query max diff %.3g", md);

        /* Failures leave the grid untouched. */
        for (size_t i = 0; i < nq; i++) grid[i] = -1;
        ad_features wrong = {qh, qw, d - 1, qx, NULL};
        CHECK(ad_bank_query(b, NULL, &wrong, NULL, -1, grid) == AD_E_MISMATCH, "width mismatch");
        CHECK(ad_bank_query(b, NULL, NULL, NULL, -1, grid) == AD_E_ARG, "NULL features");
        ad_features zero = {0, qw, d, qx, NULL};
        CHECK(ad_bank_query(b, NULL, &zero, NULL, -1, grid) == AD_E_ARG, "empty grid");
        size_t touched = 0;
        for (size_t i = 0; i < nq; i++) touched += grid[i] != -1;
        CHECK(touched == 0, "%zu cells written by failing calls", touched);
        ad_bank_free(b);
    }

    /* k larger than the rows left after exclusion, and an empty bank, are refused. */
    {
        ad_bank_params p = ad_bank_default_params();
        p.knn_k = 5;
        ad_bank *b = ad_bank_new(NULL, &p);
        ad_features f = {1, 4, d, ref[0], NULL};
        CHECK(ad_bank_query(b, NULL, &qf, NULL, -1, grid) == AD_E_ARG, "empty bank accepted");
        CHECK_OK(ad_bank_add_features(b, &f, NULL, 0));
        ad_features g = {1, 3, d, ref[1], NULL};
        CHECK_OK(ad_bank_add_features(b, &g, NULL, 1));
        CHECK(ad_bank_query(b, NULL, &qf, NULL, 1, grid) == AD_E_ARG, "k > usable rows accepted");
        CHECK_OK(ad_bank_query(b, NULL, &qf, NULL, -1, grid));
        CHECK(ad_bank_add_features(b, &f, NULL, -3) == AD_E_ARG, "negative image id accepted");
        ad_features h = {1, 3, d + 1, ref[1], NULL};
        CHECK(ad_bank_add_features(b, &h, NULL, 4) == AD_E_MISMATCH, "width mismatch accepted");
        CHECK(ad_bank_rows(b) == 7, "rows %zu after refused insertions", ad_bank_rows(b));
        ad_bank_free(b);
    }

    /* All cells masked out: the grid is all zeros. */
    {
        ad_bank *b = ad_bank_new(NULL, NULL);
        ad_features f = {gh[0], gw[0], d, ref[0], NULL};
        CHECK_OK(ad_bank_add_features(b, &f, NULL, 0));
        uint8_t *none = calloc(nq, 1);
        for (size_t i = 0; i < nq; i++) grid[i] = -1;
        CHECK_OK(ad_bank_query(b, NULL, &qf, none, -1, grid));
        size_t nz = 0;
        for (size_t i = 0; i < nq; i++) nz += grid[i] != 0;
        CHECK(nz == 0, "%zu non-zero cells with everything masked", nz);
        free(none);
        ad_bank_free(b);
    }

    for (int m = 0; m < NIMG; m++) free(ref[m]);
    free(centres);
    free(qx);
    free(keep);
    free(grid);
    free(ref_grid);
    free(first);
    return t_done("test_knn_matches_naive");
}
