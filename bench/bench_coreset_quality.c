/* How far a coreset bank is from the full bank (issue 15; not a test): image scores and image
 * AUROC with the full bank and with coresets of R = 0.25 and 0.1, on
 *  1. the golden pipeline data (tests/data/pipeline/seed0 and seed2: one reference + 7 rotations
 *     each, the tiny model at 448, four test images each, test_2 and test_3 defective), and
 *  2. generated ViT-S-width data: patches from a mixture of clustered "normal" parts, a 16-shot
 *     bank, 50 normal and 50 anomalous test images (anomalous: 3 patches slightly off the
 *     normal clusters, 88:12 blends of two of them), 1024 patches each.
 *
 *   bench_coreset_quality [--data DIR] [--threads N] [--generated-only]   (DIR: tests/data)
 *
 * Prints per data set and R: rows, the largest and mean |score - full-bank score|, the largest
 * relative to the full-bank score, and the AUROC with its difference from the full bank's. */
#include "anomalydino.h"
#include "detect/detect.h"
#include "io/io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x243f6a8885a308d3ULL;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static float gauss(void)
{
    double u = urand(), v = urand();
    return (float)(sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

static const double RATIOS[3] = {1.0, 0.25, 0.1};

static void report(const char *set, double r, size_t rows, const double *s, const double *full,
                   const int *labels, int n)
{
    double mx = 0, mean = 0, rel = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs(s[i] - full[i]);
        mx = d > mx ? d : mx;
        mean += d / n;
        if (full[i] > 0 && d / full[i] > rel) rel = d / full[i];
    }
    ad_image_metrics a, af;
    ad_metrics_image(labels, s, (size_t)n, &a);
    ad_metrics_image(labels, full, (size_t)n, &af);
    char name[16];
    snprintf(name, sizeof name, r < 1 ? "R=%.2g" : "full", r);
    printf("%-10s %-7s %9zu %12.3g %12.3g %10.3g %8.4f %+9.4f\n", set, name, rows, mx, mean, rel,
           a.auroc, a.auroc - af.auroc);
}

static int golden(const char *data, int threads)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/dinov2/tiny.safetensors", data);
    ad_model *m = ad_model_load(path);
    if (!m) {
        fprintf(stderr, "%s\n", ad_errmsg());
        return 1;
    }
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = threads;
    ad_context *ctx = ad_context_new(m, cp);
    const char *seeds[2] = {"seed0", "seed2"};
    double scores[3][8];
    int labels[8];
    size_t rows[3] = {0, 0, 0};
    for (int r = 0; r < 3; r++) {
        for (int s = 0; s < 2; s++) {
            ad_bank_params p = ad_bank_default_params(); /* 448, rotations, no masking */
            ad_bank *b = ad_bank_new(m, &p);
            ad_image img = {0};
            snprintf(path, sizeof path, "%s/pipeline/%s/ref_0.png", data, seeds[s]);
            if (adi_io_read_image(path, &img) != AD_OK || ad_bank_add_image(b, ctx, &img, 0) != AD_OK ||
                (RATIOS[r] < 1 && ad_bank_coreset(b, ctx, RATIOS[r]) != AD_OK)) {
                fprintf(stderr, "%s: %s\n", path, ad_errmsg());
                return 1;
            }
            ad_image_free(&img);
            rows[r] += ad_bank_rows(b);
            for (int t = 0; t < 4; t++) {
                snprintf(path, sizeof path, "%s/pipeline/%s/test_%d.png", data, seeds[s], t);
                ad_result res = {0};
                if (adi_io_read_image(path, &img) != AD_OK || ad_predict(b, ctx, &img, 0, &res) != AD_OK) {
                    fprintf(stderr, "%s: %s\n", path, ad_errmsg());
                    return 1;
                }
                scores[r][s * 4 + t] = res.score;
                labels[s * 4 + t] = t >= 2;
                ad_result_free(&res);
                ad_image_free(&img);
            }
            ad_bank_free(b);
        }
        report("golden", RATIOS[r], rows[r], scores[r], scores[0], labels, 8);
    }
    ad_context_free(ctx);
    ad_model_free(m);
    return 0;
}

enum { DIM = 384, NP = 1024, CLUSTERS = 48, SHOTS = 16, N_NORMAL = 50, N_ANOM = 50, N_DEFECT = 3 };

static float centres[CLUSTERS][DIM];

/* A normal patch: a cluster centre plus noise (clusters used unevenly, as parts of an object). */
static void normal_patch(float *x)
{
    int c = (int)(CLUSTERS * urand() * urand());
    for (int j = 0; j < DIM; j++) x[j] = centres[c][j] + 0.45f * gauss();
}

static void defect_patch(float *x)
{
    int a = (int)(CLUSTERS * urand()), b = (int)(CLUSTERS * urand());
    for (int j = 0; j < DIM; j++) x[j] = 0.88f * centres[a][j] + 0.12f * centres[b][j] + 0.45f * gauss();
}

static int generated(int threads)
{
    for (int c = 0; c < CLUSTERS; c++)
        for (int j = 0; j < DIM; j++) centres[c][j] = gauss();
    float *f = malloc(sizeof(float) * NP * DIM);
    ad_bank_params p = ad_bank_default_params();
    ad_bank *banks[3];
    for (int r = 0; r < 3; r++) banks[r] = ad_bank_new(NULL, &p);
    uint64_t keep = rng;
    for (int r = 0; r < 3; r++) {
        rng = keep; /* the same references in every bank */
        for (int s = 0; s < SHOTS; s++) {
            for (int i = 0; i < NP; i++) normal_patch(f + (size_t)i * DIM);
            ad_features ft = {32, 32, DIM, f, NULL};
            if (ad_bank_add_features(banks[r], &ft, NULL, s) != AD_OK) return 1;
        }
        if (RATIOS[r] < 1) {
            banks[r]->coreset_frac = RATIOS[r]; /* ad_bank_coreset with this thread count */
            if (dt_bank_coreset_rows(banks[r], 0, threads) != AD_OK) {
                fprintf(stderr, "%s\n", ad_errmsg());
                return 1;
            }
            banks[r]->coreset = RATIOS[r];
        }
    }
    const int n = N_NORMAL + N_ANOM;
    double *sc[3];
    int *labels = malloc(sizeof(int) * n);
    double *grid = malloc(sizeof(double) * NP);
    for (int r = 0; r < 3; r++) sc[r] = malloc(sizeof(double) * n);
    for (int i = 0; i < n; i++) {
        labels[i] = i >= N_NORMAL;
        for (int k = 0; k < NP; k++) normal_patch(f + (size_t)k * DIM);
        if (labels[i])
            for (int k = 0; k < N_DEFECT; k++) defect_patch(f + (size_t)((k * 97 + i * 13) % NP) * DIM);
        ad_features ft = {32, 32, DIM, f, NULL};
        for (int r = 0; r < 3; r++) {
            if (dt_bank_search(banks[r], threads, &ft, NULL, -1, 0, grid) != AD_OK) return 1;
            sc[r][i] = ad_score_top1p(grid, NP);
        }
    }
    for (int r = 0; r < 3; r++) report("generated", RATIOS[r], ad_bank_rows(banks[r]), sc[r], sc[0], labels, n);
    for (int r = 0; r < 3; r++) {
        ad_bank_free(banks[r]);
        free(sc[r]);
    }
    free(labels);
    free(grid);
    free(f);
    return 0;
}

int main(int argc, char **argv)
{
    const char *data = "tests/data";
    int threads = 2, gen_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--generated-only")) gen_only = 1;
        else {
            fprintf(stderr, "usage: bench_coreset_quality [--data DIR] [--threads N] [--generated-only]\n");
            return 2;
        }
    }
    printf("%-10s %-7s %9s %12s %12s %10s %8s %9s\n", "data", "bank", "rows", "max|dscore|",
           "mean|dscore|", "max rel", "AUROC", "dAUROC");
    if (!gen_only && golden(data, threads)) return 1;
    return generated(threads);
}
