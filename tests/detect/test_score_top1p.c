/* Image score = mean of the floor(0.01 * N) largest grid values, N counting every cell (zeros of
 * masked-out cells included), the maximum when that count is 0 (docs/design.md,
 * "Image score"). */
#include "anomalydino.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 12345;
static double urand(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Reference: full descending sort, mean of the head. */
static double ref_score(const double *g, size_t n, size_t top)
{
    double *s = malloc(n * sizeof *s);
    memcpy(s, g, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_desc);
    double r;
    if (top == 0) {
        r = s[0];
    } else {
        double acc = 0;
        for (size_t i = 0; i < top; i++) acc += s[i];
        r = acc / (double)top;
    }
    free(s);
    return r;
}

int main(void)
{
    /* The count of averaged cells, pinned by grids of ones: with exactly `top` ones the score is 1,
     * with one fewer it drops to (top-1)/top. Sizes: MVTec 448 and 672 grids, VisA-like
     * rectangles, and the edges of the floor. */
    const size_t sizes[] = {1024, 2304, 1536, 99, 100, 101, 199, 200, 700, 4800, 16, 1};
    const size_t expect[] = {10, 23, 15, 0, 1, 1, 1, 2, 7, 48, 0, 0};
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        size_t n = sizes[c], top = expect[c];
        double *g = calloc(n, sizeof *g);
        size_t ones = top ? top : 1;
        for (size_t i = 0; i < ones; i++) g[(i * 7919) % n] = 1.0;
        double s1 = ad_score_top1p(g, n);
        CHECK(s1 == 1.0, "N=%zu with %zu ones: score %.17g, expected 1", n, ones, s1);
        if (top >= 2) {
            g[0] = 0; /* drop one of the ones (i = 0 put one at index 0) */
            double s2 = ad_score_top1p(g, n);
            double want = (double)(top - 1) / (double)top;
            CHECK(fabs(s2 - want) < 1e-15, "N=%zu: %zu ones of %zu averaged give %.17g, expected %.17g",
                  n, top - 1, top, s2, want);
        }
        printf("N=%zu: floor(0.01 N) = %zu averaged cells confirmed\n", n, top);
        free(g);
    }

    /* Random grids with masked-out zeros against the full-sort reference. */
    double worst = 0;
    for (int rep = 0; rep < 50; rep++) {
        size_t n = 50 + (size_t)(urand() * 5000);
        double *g = malloc(n * sizeof *g);
        for (size_t i = 0; i < n; i++) g[i] = urand() < 0.6 ? 0.0 : urand() * 0.5;
        if (rep % 5 == 0) /* ties */
            for (size_t i = 0; i < n; i++) g[i] = floor(g[i] * 8) / 8;
        size_t top = (size_t)((double)n * 0.01);
        double want = ref_score(g, n, top), got = ad_score_top1p(g, n);
        double d = fabs(want - got);
        if (d > worst) worst = d;
        CHECK(d <= 1e-15 * fmax(1.0, fabs(want)), "rep %d N=%zu: %.17g vs reference %.17g", rep, n,
              got, want);
        free(g);
    }
    printf("random grids (50, with zeros and ties): max |diff| to the sorted reference %.3g\n", worst);

    /* All zeros (everything masked) scores 0; max fallback picks the largest. */
    double z[64] = {0};
    CHECK(ad_score_top1p(z, 64) == 0.0, "all-zero grid scores %g", ad_score_top1p(z, 64));
    z[17] = 0.25;
    z[3] = 0.125;
    CHECK(ad_score_top1p(z, 64) == 0.25, "max fallback %g", ad_score_top1p(z, 64));
    CHECK(isnan(ad_score_top1p(NULL, 10)), "NULL grid not NaN");
    CHECK(isnan(ad_score_top1p(z, 0)), "empty grid not NaN");
    return t_done("test_score_top1p");
}
