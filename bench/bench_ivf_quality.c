/* How far search through an IVF index is from exact search (not a test): recall of the exact
 * nearest neighbour, image scores and image AUROC, on
 *  1. the golden pipeline data (tests/data/pipeline/seed0 and seed2: one reference + 7 rotations
 *     each, the tiny model at 448, four test images each, test_2 and test_3 defective), and
 *  2. generated ViT-S-width data (as bench_coreset_quality): patches from 48 clustered "normal"
 *     parts, a 16-shot bank (16,384 rows), 50 normal and 50 anomalous test images of 1024
 *     patches (anomalous: 3 patches slightly off the normal clusters); the full bank and its
 *     R = 0.1 coreset (spread-out rows: harder for an index).
 *
 *   bench_ivf_quality [--data DIR] [--threads N] [--generated-only]   (DIR: tests/data)
 *   bench_ivf_quality --large [--threads N]
 *
 * --large: the generated data at the full-shot R = 0.1 bank size instead (168 shots x 1024 =
 * 172,032 rows, 10 normal + 10 anomalous images; several minutes: exact search of each image).
 *
 * Per data set, bank and index setting (lists x probes; "auto" = what fit --index ivf picks):
 * recall = the fraction of searched patches whose distance is the exact nearest neighbour's
 * (to 1e-6), the largest and mean |score - exact score| (same bank searched exactly), the
 * AUROC and its difference from the exact search's. */
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

/* index settings tried per bank: probes as a multiple of the automatic count */
static const double PROBE_MULT[4] = {0.5, 1.0, 2.0, 4.0};
enum { N_SET = 4 };

typedef struct {
    int lists, probes;
    size_t hit, total;
    double *scores;
} setting;

static void report(const char *set, const char *bank, size_t rows, const setting *s,
                   const double *exact, const int *labels, int n)
{
    double mx = 0, mean = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs(s->scores[i] - exact[i]);
        mx = d > mx ? d : mx;
        mean += d / n;
    }
    ad_image_metrics a, ae;
    ad_metrics_image(labels, s->scores, (size_t)n, &a);
    ad_metrics_image(labels, exact, (size_t)n, &ae);
    char name[32];
    if (s->lists) snprintf(name, sizeof name, "%d x %d", s->lists, s->probes);
    else snprintf(name, sizeof name, "exact");
    printf("%-10s %-8s %8zu %-11s %8.4f %12.3g %12.3g %8.4f %+9.4f\n", set, bank, rows, name,
           s->total ? (double)s->hit / (double)s->total : 1.0, mx, mean, a.auroc, a.auroc - ae.auroc);
}

/* Scores image features f (n_img of them) against b: exactly into ex, and through its index for
 * each setting (recall counted over the kept patches). */
static int score_all(ad_bank *b, int threads, int auto_p, setting *st, int n_set, double *ex,
                     const ad_features *f, int i)
{
    const size_t n = (size_t)f->grid_h * f->grid_w;
    double *ge = malloc(n * sizeof *ge), *gi = malloc(n * sizeof *gi);
    if (dt_bank_search(b, threads, f, NULL, -1, 0, ge) != AD_OK) return 1;
    ex[i] = ad_score_top1p(ge, n);
    for (int s = 0; s < n_set; s++) {
        int p = (int)(PROBE_MULT[s] * auto_p + 0.5);
        st[s].probes = p < 1 ? 1 : p > st[s].lists ? st[s].lists : p;
        if (dt_bank_search_probes(b, threads, f, NULL, -1, st[s].probes, gi) != AD_OK) return 1;
        st[s].scores[i] = ad_score_top1p(gi, n);
        for (size_t c = 0; c < n; c++) st[s].hit += gi[c] - ge[c] <= 1e-6;
        st[s].total += n;
    }
    free(ge);
    free(gi);
    return 0;
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
    double ex[8];
    int labels[8];
    setting st[N_SET];
    memset(st, 0, sizeof st);
    for (int s = 0; s < N_SET; s++) st[s].scores = calloc(8, sizeof(double));
    size_t rows = 0;
    for (int s = 0; s < 2; s++) {
        ad_bank_params p = ad_bank_default_params(); /* 448, rotations, no masking */
        ad_bank *b = ad_bank_new(m, &p);
        ad_image img = {0};
        snprintf(path, sizeof path, "%s/pipeline/%s/ref_0.png", data, seeds[s]);
        if (adi_io_read_image(path, &img) != AD_OK || ad_bank_add_image(b, ctx, &img, 0) != AD_OK ||
            ad_bank_index_build(b, ctx, NULL) != AD_OK) {
            fprintf(stderr, "%s: %s\n", path, ad_errmsg());
            return 1;
        }
        ad_image_free(&img);
        rows = ad_bank_rows(b);
        for (int k = 0; k < N_SET; k++) st[k].lists = b->ivf->lists;
        for (int t = 0; t < 4; t++) {
            snprintf(path, sizeof path, "%s/pipeline/%s/test_%d.png", data, seeds[s], t);
            ad_features f = {0};
            if (adi_io_read_image(path, &img) != AD_OK || ad_extract_image(ctx, &img, 448, &f) != AD_OK ||
                score_all(b, threads, b->ivf->probes, st, N_SET, ex, &f, s * 4 + t)) {
                fprintf(stderr, "%s: %s\n", path, ad_errmsg());
                return 1;
            }
            labels[s * 4 + t] = t >= 2;
            ad_features_free(&f);
            ad_image_free(&img);
        }
        ad_bank_free(b);
    }
    setting e = {0, 0, 0, 0, ex};
    report("golden", "full", rows, &e, ex, labels, 8);
    for (int s = 0; s < N_SET; s++) report("golden", "full", rows, &st[s], ex, labels, 8);
    for (int s = 0; s < N_SET; s++) free(st[s].scores);
    ad_context_free(ctx);
    ad_model_free(m);
    return 0;
}

enum { DIM = 384, NP = 1024, CLUSTERS = 48, SHOTS = 16, N_NORMAL = 50, N_ANOM = 50, N_DEFECT = 3 };

static float centres[CLUSTERS][DIM];

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

static int generated(int threads, int shots, int n_normal, int n_anom, int with_coreset)
{
    for (int c = 0; c < CLUSTERS; c++)
        for (int j = 0; j < DIM; j++) centres[c][j] = gauss();
    float *f = malloc(sizeof(float) * NP * DIM);
    ad_bank_params p = ad_bank_default_params();
    ad_bank *banks[2];
    const int nb = with_coreset ? 2 : 1;
    const char *names[2] = {"full", "R=0.1"};
    const uint64_t keep = rng;
    for (int r = 0; r < nb; r++) {
        banks[r] = ad_bank_new(NULL, &p);
        rng = keep; /* the same references in both banks */
        for (int s = 0; s < shots; s++) {
            for (int i = 0; i < NP; i++) normal_patch(f + (size_t)i * DIM);
            ad_features ft = {32, 32, DIM, f, NULL};
            if (ad_bank_add_features(banks[r], &ft, NULL, s) != AD_OK) return 1;
        }
        if (r == 1) {
            banks[r]->coreset_frac = 0.1; /* ad_bank_coreset with this thread count */
            if (dt_bank_coreset_rows(banks[r], 0, threads) != AD_OK) return 1;
            banks[r]->coreset = 0.1;
        }
        if (dt_ivf_build(banks[r], threads, 0, 0, 0) != AD_OK) {
            fprintf(stderr, "%s\n", ad_errmsg());
            return 1;
        }
    }
    const int n = n_normal + n_anom;
    int *labels = malloc(sizeof(int) * n);
    double *ex[2];
    setting st[2][N_SET];
    memset(st, 0, sizeof st);
    for (int r = 0; r < nb; r++) {
        ex[r] = malloc(sizeof(double) * n);
        for (int s = 0; s < N_SET; s++) {
            st[r][s].scores = malloc(sizeof(double) * n);
            st[r][s].lists = banks[r]->ivf->lists;
        }
    }
    for (int i = 0; i < n; i++) {
        labels[i] = i >= n_normal;
        for (int k = 0; k < NP; k++) normal_patch(f + (size_t)k * DIM);
        if (labels[i])
            for (int k = 0; k < N_DEFECT; k++) defect_patch(f + (size_t)((k * 97 + i * 13) % NP) * DIM);
        ad_features ft = {32, 32, DIM, f, NULL};
        for (int r = 0; r < nb; r++)
            if (score_all(banks[r], threads, dt_ivf_auto_probes(banks[r]->ivf->lists), st[r], N_SET,
                          ex[r], &ft, i))
                return 1;
    }
    for (int r = 0; r < nb; r++) {
        setting e = {0, 0, 0, 0, ex[r]};
        report("generated", names[r], ad_bank_rows(banks[r]), &e, ex[r], labels, n);
        for (int s = 0; s < N_SET; s++) report("generated", names[r], ad_bank_rows(banks[r]), &st[r][s], ex[r], labels, n);
    }
    for (int r = 0; r < nb; r++) {
        for (int s = 0; s < N_SET; s++) free(st[r][s].scores);
        free(ex[r]);
        ad_bank_free(banks[r]);
    }
    free(labels);
    free(f);
    return 0;
}

int main(int argc, char **argv)
{
    const char *data = "tests/data";
    int threads = 2, gen_only = 0, large = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--generated-only")) gen_only = 1;
        else if (!strcmp(argv[i], "--large")) large = 1;
        else {
            fprintf(stderr, "usage: bench_ivf_quality [--data DIR] [--threads N] [--generated-only | --large]\n");
            return 2;
        }
    }
    printf("%-10s %-8s %8s %-11s %8s %12s %12s %8s %9s\n", "data", "bank", "rows", "lists x P",
           "recall", "max|dscore|", "mean|dscore|", "AUROC", "dAUROC");
    if (large) /* the full-shot R = 0.1 size: 168 x 1024 = 172,032 rows, 10 + 10 images */
        return generated(threads, 168, 10, 10, 0);
    if (!gen_only && golden(data, threads)) return 1;
    return generated(threads, SHOTS, N_NORMAL, N_ANOM, 1);
}
