/* Nearest-neighbour search speed and memory (not a test): the 1-shot agnostic bank (8 rotations
 * x 1024 patches = 8192 rows of 384, ViT-S at 448) and the 16-shot one (131072 rows), queried
 * with one image's 1024 patches.
 *
 *   bench_knn [--threads N] [--reps R] [--shots S ...]
 *
 * Prints per bank: rows, bank MB, median / min ms per query image, GFLOP/s of the inner
 * products, and the peak resident memory added by the queries (above the bank itself); then the
 * time of the PCA background mask of one such image (ad_mask_pca), the other per-image cost of
 * a masked prediction besides the backbone. */
#include "anomalydino.h"
#include "detect/detect.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static uint64_t rng = 88172645463325252ULL;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2 - 1);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int threads = 0, reps = 7, shots[8], n_shots = 0;
    const int dim = 384, gh = 32, gw = 32, views = 8;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shots") && i + 1 < argc && n_shots < 8) shots[n_shots++] = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_knn [--threads N] [--reps R] [--shots S ...]\n");
            return 2;
        }
    }
    if (n_shots == 0) {
        shots[0] = 1;
        shots[1] = 16;
        n_shots = 2;
    }
    if (reps < 1) reps = 1;
    int nt = threads > 0 ? threads : omp_get_num_procs();
    printf("bench_knn: dim %d, query %d x %d patches, %d threads, %d reps, AVX2 scan %s\n", dim, gh,
           gw, nt, reps, adi_cpu_has_avx2_fma() ? "on" : "off");

    size_t n = (size_t)gh * gw;
    float *q = malloc(sizeof(float) * n * dim), *view = malloc(sizeof(float) * n * dim);
    double *grid = malloc(sizeof(double) * n), *t = malloc(sizeof(double) * (size_t)reps);
    for (size_t i = 0; i < n * dim; i++) q[i] = frand();
    ad_features qf = {gh, gw, dim, q, NULL};

    for (int s = 0; s < n_shots; s++) {
        ad_bank_params p = ad_bank_default_params();
        ad_bank *b = ad_bank_new(NULL, &p);
        for (int img = 0; img < shots[s]; img++)
            for (int v = 0; v < views; v++) {
                for (size_t i = 0; i < n * dim; i++) view[i] = frand();
                ad_features f = {gh, gw, dim, view, NULL};
                if (ad_bank_add_features(b, &f, NULL, img) != AD_OK) {
                    fprintf(stderr, "bench_knn: %s\n", ad_errmsg());
                    return 1;
                }
            }
        size_t rows = ad_bank_rows(b);
        double bank_mb = rows * (dim + 1.0) * 4 / 1048576.0;
        /* peak RSS with the bank built, then what the queries (and a warm-up) add to it */
        long rss0 = peak_rss_kb();
        dt_bank_search(b, nt, &qf, NULL, -1, 0, grid);
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            ad_status st = dt_bank_search(b, nt, &qf, NULL, -1, 0, grid);
            t[r] = now() - t0;
            if (st != AD_OK) {
                fprintf(stderr, "bench_knn: %s\n", ad_errmsg());
                return 1;
            }
        }
        long rss1 = peak_rss_kb();
        double tmin = t[0];
        for (int r = 1; r < reps; r++)
            if (t[r] < tmin) tmin = t[r];
        qsort(t, (size_t)reps, sizeof *t, cmp_d);
        double med = t[reps / 2];
        double gflop = 2.0 * (double)n * (double)rows * dim / 1e9;
        printf("%2d-shot: %7zu rows, bank %6.1f MB: median %8.2f ms, min %8.2f ms per image "
               "(%.0f GFLOP/s); peak RSS growth during queries %ld KB (peak RSS %ld MB)\n",
               shots[s], rows, bank_mb, med * 1e3, tmin * 1e3, gflop / tmin, rss1 - rss0,
               rss1 / 1024);
        ad_bank_free(b);
    }
    {
        uint8_t *keep = malloc(n);
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            if (ad_mask_pca(&qf, keep) != AD_OK) {
                fprintf(stderr, "bench_knn: %s\n", ad_errmsg());
                return 1;
            }
            t[r] = now() - t0;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_d);
        printf("mask (ad_mask_pca, %zu x %d): median %.2f ms, min %.2f ms per image\n", n, dim,
               t[reps / 2] * 1e3, t[0] * 1e3);
        free(keep);
    }
    free(q);
    free(view);
    free(grid);
    free(t);
    return 0;
}
