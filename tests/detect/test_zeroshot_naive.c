/* ad_zeroshot (block-wise, symmetric, heap selection) against a direct computation: every
 * distance of every patch to every patch of the other images, the k smallest kept in a sorted
 * list, the k-th smallest and the mean of the values strictly below it.
 * Cases: random Gaussian features (tolerance 1e-5: float GEMM vs double dots), integer features
 * whose products are exact in float32 (many exact ties at the k-th value; results must agree
 * bit for bit), k = 1, a larger k, masks, image sizes that cross the tile boundaries, and
 * argument errors that must leave the grids untouched. */
#include "anomalydino.h"
#include "core/core.h"
#include "testutil.h"

#include <omp.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static double uniform(void) { return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
static float gauss(void)
{
    double u = uniform(), v = uniform();
    if (u < 1e-300) u = 1e-300;
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* Integer vector with sum of squares exactly 16: its normalised form v/4 is exact in float32,
 * and so is every dot product of two of them (an integer / 16). */
static void exact_row(float *x, int dim)
{
    memset(x, 0, sizeof(float) * (size_t)dim);
    int left = 16;
    while (left > 0) {
        int pos = (int)(next_u64() % (uint64_t)dim);
        int cur = (int)fabsf(x[pos]);
        int room = left + cur * cur; /* magnitude^2 this position may take */
        int maxm = (int)sqrt((double)room);
        int m = 1 + (int)(next_u64() % (uint64_t)maxm);
        left = room - m * m;
        x[pos] = (next_u64() & 1) ? (float)m : (float)-m;
    }
}

typedef struct {
    int n_images, dim, exact, masked;
    int gh[16], gw[16];
    int row_stride; /* check every row_stride-th patch against the naive computation */
} zs_case;

typedef struct {
    int ties_at_kth, fallbacks, with_below;
} tie_stats;

static float norm_of(const float *x, int dim)
{
    double s = 0;
    for (int d = 0; d < dim; d++) s += (double)x[d] * x[d];
    float n = (float)sqrt(s);
    return n > 1e-12f ? n : 1e-12f;
}

/* The direct computation for patch p of image i. */
static double naive_patch(const ad_features *f, int n, int i, int p, tie_stats *ts)
{
    const int dim = f[0].dim;
    size_t M = 0;
    for (int j = 0; j < n; j++)
        if (j != i) M += (size_t)f[j].grid_h * f[j].grid_w;
    size_t k = (size_t)(0.001 * (double)M);
    if (k < 1) k = 1;
    float *best = malloc(k * sizeof *best); /* sorted ascending, the k smallest so far */
    size_t nb = 0;
    float *q = malloc((size_t)dim * sizeof *q);
    const float *xp = f[i].patch + (size_t)p * dim;
    float np_ = norm_of(xp, dim);
    for (int d = 0; d < dim; d++) q[d] = xp[d] / np_;
    for (int j = 0; j < n; j++) {
        if (j == i) continue;
        int nj = f[j].grid_h * f[j].grid_w;
        for (int r = 0; r < nj; r++) {
            const float *y = f[j].patch + (size_t)r * dim;
            float ny = norm_of(y, dim);
            double dot = 0;
            for (int d = 0; d < dim; d++) dot += (double)q[d] * (double)(y[d] / ny);
            float dist = 1.0f - (float)dot;
            if (nb == k && dist >= best[k - 1]) continue;
            size_t pos = nb < k ? nb++ : k - 1;
            while (pos > 0 && best[pos - 1] > dist) {
                best[pos] = best[pos - 1];
                pos--;
            }
            best[pos] = dist;
        }
    }
    float kth = best[k - 1];
    double sum = 0;
    size_t below = 0, at = 0;
    for (size_t e = 0; e < k; e++) {
        if (best[e] < kth) sum += best[e], below++;
        else at++;
    }
    if (ts) {
        if (at > 1) ts->ties_at_kth++;
        if (below) ts->with_below++;
        else ts->fallbacks++;
    }
    free(best);
    free(q);
    return below ? sum / (double)below : (double)kth;
}

static void run_case(const char *name, const zs_case *c, double tol, tie_stats *ts)
{
    int n = c->n_images;
    ad_features f[16];
    uint8_t *keeps[16];
    double *grids[16];
    for (int i = 0; i < n; i++) {
        f[i].grid_h = c->gh[i];
        f[i].grid_w = c->gw[i];
        f[i].dim = c->dim;
        size_t np_ = (size_t)c->gh[i] * c->gw[i];
        f[i].patch = malloc(np_ * c->dim * sizeof(float));
        f[i].cls = NULL;
        for (size_t r = 0; r < np_; r++) {
            float *x = f[i].patch + r * c->dim;
            if (c->exact) {
                exact_row(x, c->dim);
            } else {
                float scale = (float)(0.5 + 4.0 * uniform()); /* norms differ per row */
                for (int d = 0; d < c->dim; d++) x[d] = scale * gauss();
            }
        }
        keeps[i] = malloc(np_);
        for (size_t r = 0; r < np_; r++) keeps[i][r] = c->masked ? (next_u64() % 4 != 0) : 1;
        grids[i] = malloc(np_ * sizeof(double));
        for (size_t r = 0; r < np_; r++) grids[i][r] = -1.0;
    }
    ad_status st = ad_zeroshot(NULL, f, (const uint8_t *const *)keeps, n, grids);
    CHECK(st == AD_OK, "%s: ad_zeroshot -> %s: %s", name, ad_status_name(st), ad_errmsg());

    double maxd = 0;
    int wi = 0, wp = 0, checked = 0, masked_ok = 1;
    for (int i = 0; i < n; i++) {
        int np_ = c->gh[i] * c->gw[i];
        for (int p = 0; p < np_; p++) {
            if (!keeps[i][p]) {
                if (grids[i][p] != 0.0) masked_ok = 0;
                continue;
            }
            if (p % c->row_stride) continue;
            double want = naive_patch(f, n, i, p, ts);
            double d = fabs(want - grids[i][p]);
            checked++;
            if (d > maxd || d != d) {
                maxd = d;
                wi = i;
                wp = p;
            }
        }
    }
    printf("%s: %d patches checked, max |diff| %.3g at image %d patch %d (tolerance %g)\n", name,
           checked, maxd, wi, wp, tol);
    CHECK(maxd <= tol, "%s: max |diff| %.3g at image %d patch %d", name, maxd, wi, wp);
    CHECK(masked_ok, "%s: a masked-out patch has a non-zero score", name);
    CHECK(checked > 0, "%s: nothing checked", name);

    /* Determinism: a second run gives the same bits. */
    double *again[16];
    for (int i = 0; i < n; i++) again[i] = malloc((size_t)c->gh[i] * c->gw[i] * sizeof(double));
    CHECK_OK(ad_zeroshot(NULL, f, (const uint8_t *const *)keeps, n, again));
    int same = 1;
    for (int i = 0; i < n; i++)
        if (memcmp(again[i], grids[i], (size_t)c->gh[i] * c->gw[i] * sizeof(double))) same = 0;
    CHECK(same, "%s: two runs differ", name);

    for (int i = 0; i < n; i++) {
        free(f[i].patch);
        free(keeps[i]);
        free(grids[i]);
        free(again[i]);
    }
}

/* The pair-parallel schedule (2 threads, >= 4 images) and the sequential one (1 thread) run the
 * same single-threaded products in the same order per heap: identical bits. */
static void test_thread_counts(void)
{
    enum { N = 6, GH = 20, GW = 30, D = 48 };
    ad_features f[N];
    double *g1[N], *g2[N];
    for (int i = 0; i < N; i++) {
        f[i] = (ad_features){GH, GW, D, malloc(sizeof(float) * GH * GW * D), NULL};
        for (int e = 0; e < GH * GW * D; e++) f[i].patch[e] = gauss();
        g1[i] = malloc(sizeof(double) * GH * GW);
        g2[i] = malloc(sizeof(double) * GH * GW);
    }
    omp_set_num_threads(adi_threads_resolve(1));
    CHECK_OK(ad_zeroshot(NULL, f, NULL, N, g1));
    omp_set_num_threads(adi_threads_resolve(2));
    CHECK_OK(ad_zeroshot(NULL, f, NULL, N, g2));
    double maxd = 0;
    for (int i = 0; i < N; i++) {
        size_t w;
        double d = t_maxdiff_f64(g1[i], g2[i], GH * GW, &w);
        if (d > maxd) maxd = d;
    }
    printf("threads: 1 vs 2 threads (pair-parallel), %d images: max |diff| %.3g\n", N, maxd);
    CHECK(maxd == 0, "1 and 2 threads differ by %.3g", maxd);
    for (int i = 0; i < N; i++) {
        free(f[i].patch);
        free(g1[i]);
        free(g2[i]);
    }
}

static void test_errors(void)
{
    ad_features f[2];
    float a[4 * 8], b[4 * 8];
    for (int e = 0; e < 32; e++) a[e] = b[e] = gauss();
    f[0] = (ad_features){2, 2, 8, a, NULL};
    f[1] = (ad_features){2, 2, 8, b, NULL};
    double g0[4], g1[4];
    double *grids[2] = {g0, g1};
    for (int e = 0; e < 4; e++) g0[e] = g1[e] = 42.0;

    CHECK(ad_zeroshot(NULL, f, NULL, 1, grids) == AD_E_ARG, "one image must be refused");
    CHECK(ad_zeroshot(NULL, NULL, NULL, 2, grids) == AD_E_ARG, "NULL feats must be refused");
    f[1].dim = 4;
    CHECK(ad_zeroshot(NULL, f, NULL, 2, grids) == AD_E_MISMATCH, "width mismatch: %s",
          ad_errmsg());
    f[1].dim = 8;
    b[5] = NAN;
    ad_status st = ad_zeroshot(NULL, f, NULL, 2, grids);
    CHECK(st == AD_E_ARG && strstr(ad_errmsg(), "image 1"), "NaN feature: %s, '%s'",
          ad_status_name(st), ad_errmsg());
    b[5] = INFINITY;
    CHECK(ad_zeroshot(NULL, f, NULL, 2, grids) == AD_E_ARG, "inf feature must be refused");
    b[5] = 0.5f;
    double *bad[2] = {g0, NULL};
    CHECK(ad_zeroshot(NULL, f, NULL, 2, bad) == AD_E_ARG, "NULL grid must be refused");
    int untouched = 1;
    for (int e = 0; e < 4; e++)
        if (g0[e] != 42.0 || g1[e] != 42.0) untouched = 0;
    CHECK(untouched, "grids were written by a failing call");
    printf("errors: one image, NULL, width mismatch, NaN/inf, NULL grid refused; grids untouched\n");

    /* Two identical images of one patch each: M = 1, k = 1, the distance 0 itself. */
    f[0] = (ad_features){1, 1, 8, a, NULL};
    f[1] = (ad_features){1, 1, 8, a, NULL};
    CHECK_OK(ad_zeroshot(NULL, f, NULL, 2, grids));
    CHECK(fabs(g0[0]) < 1e-6 && fabs(g1[0]) < 1e-6, "identical patches: %g %g", g0[0], g1[0]);
}

int main(void)
{
    /* With 2 threads, 3 images (one pair per round) share each block between the threads and 5
     * or more images run pairs in parallel; 1 thread runs everything in order. */
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(adi_threads_resolve(threads));
        char name[64];
        /* k = 1 (M < 2000): every score is the nearest distance. */
        zs_case k1 = {.n_images = 3, .dim = 24, .gh = {5, 8, 3}, .gw = {8, 6, 10},
                      .row_stride = 1};
        snprintf(name, sizeof name, "k1_gauss_%dthr", threads);
        run_case(name, &k1, 1e-5, NULL);
        k1.exact = 1;
        k1.dim = 16;
        snprintf(name, sizeof name, "k1_exact_%dthr", threads);
        run_case(name, &k1, 0.0, NULL);

        /* 540..713 patches per image, k = 2..3, a quarter of the patches masked. */
        zs_case mid = {.n_images = 5, .dim = 40, .gh = {23, 27, 20, 31, 19},
                       .gw = {31, 21, 27, 23, 30}, .row_stride = 3, .masked = 1};
        snprintf(name, sizeof name, "mixed_gauss_masked_%dthr", threads);
        run_case(name, &mid, 1e-5, NULL);
    }
    omp_set_num_threads(adi_threads_resolve(2));

    /* Images larger than one 1024-row tile (1100 and 1300 patches) next to small ones. */
    zs_case tiles = {.n_images = 4, .dim = 20, .gh = {44, 10, 50, 9}, .gw = {25, 12, 26, 11},
                     .row_stride = 5};
    run_case("tile_edges_gauss", &tiles, 1e-5, NULL);

    tie_stats te = {0};
    zs_case ex = {.n_images = 5, .dim = 16, .gh = {23, 27, 20, 31, 19}, .gw = {31, 21, 27, 23, 30},
                  .row_stride = 2, .exact = 1};
    run_case("exact_ties", &ex, 0.0, &te);
    printf("exact_ties: %d patches with ties at the k-th value, %d with values below it, %d "
           "falling back to the k-th value\n", te.ties_at_kth, te.with_below, te.fallbacks);
    CHECK(te.ties_at_kth > 0 && te.with_below > 0 && te.fallbacks > 0,
          "the exact case must exercise ties (%d), means (%d) and the fallback (%d)",
          te.ties_at_kth, te.with_below, te.fallbacks);

    /* k = 10 (M = 10000): the heaps fill and are replaced many times. */
    zs_case big = {.n_images = 11, .dim = 8, .row_stride = 37};
    for (int i = 0; i < 11; i++) big.gh[i] = 25, big.gw[i] = 40;
    run_case("k10_gauss", &big, 1e-5, NULL);

    test_thread_counts();
    test_errors();
    return t_done("test_zeroshot_naive");
}
