/* Batched zero-shot scoring speed (issue 5): 100 images x 1024 patches x 384 dims (ViT-S at 448)
 * of random features, the all-pairs scoring of ad_zeroshot alone, and its ratio to the backbone
 * time (ViT-S forward at 448 per image, measured with -m WEIGHTS, else the documented 0.6 s).
 *
 *   bench_zeroshot [--images 100] [--patches 1024] [--dim 384] [--threads N] [--repeat 1]
 *                  [-m WEIGHTS | --backbone-s SECONDS]
 *
 * -m times ad_extract_image at 448 with those weights; --backbone-s takes a time measured
 * elsewhere (e.g. bench_backbone --model s, which makes random ViT-S/14 weights).
 *
 * FLOPs: the products of all image pairs, each pair once (symmetry): P^2 * D * (1 - 1/n)
 * multiply-adds = 2 * that in FLOP (P = n * patches). */
#include "anomalydino.h"
#include "core/core.h"

#include <omp.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* docs/backbone.md target: ViT-S/14 at 448 x 448 in <= 0.58 s on 2 cores (issue 5 says about
 * 0.6 s); used for the ratio when no weights are given. */
#define BACKBONE_S_PER_IMAGE_DEFAULT 0.6

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static float gauss(void)
{
    /* Box-Muller on xorshift: only the shape matters here */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    double u = ((double)(rng >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    double v = (double)(rng >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static long peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

int main(int argc, char **argv)
{
    int n = 100, patches = 1024, dim = 384, threads = 0, repeat = 1;
    const char *weights = NULL;
    static const struct option opts[] = {{"images", 1, 0, 'n'},  {"patches", 1, 0, 'p'},
                                         {"dim", 1, 0, 'd'},     {"threads", 1, 0, 't'},
                                         {"repeat", 1, 0, 'r'},  {"model", 1, 0, 'm'},
                                         {"backbone-s", 1, 0, 'b'},
                                         {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    int c;
    double backbone_arg = 0;
    while ((c = getopt_long(argc, argv, "n:p:d:t:r:m:b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': n = atoi(optarg); break;
        case 'p': patches = atoi(optarg); break;
        case 'd': dim = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'r': repeat = atoi(optarg); break;
        case 'm': weights = optarg; break;
        case 'b': backbone_arg = atof(optarg); break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: bench_zeroshot [--images N] [--patches P] [--dim D] [--threads T] "
                    "[--repeat R] [-m WEIGHTS | --backbone-s SECONDS]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (n < 2 || patches < 1 || dim < 1 || repeat < 1) {
        fprintf(stderr, "bench_zeroshot: need --images >= 2, --patches >= 1, --dim >= 1\n");
        return 2;
    }
    threads = adi_threads_resolve(threads);

    /* The backbone first (the ratio's denominator), so its buffers are gone before the scoring. */
    double backbone_s = BACKBONE_S_PER_IMAGE_DEFAULT;
    const char *backbone_src = "issue 5's estimate (no -m / --backbone-s given)";
    if (backbone_arg > 0) {
        backbone_s = backbone_arg;
        backbone_src = "given with --backbone-s";
    }
    if (weights) {
        ad_model *m = ad_model_load(weights);
        if (!m) {
            fprintf(stderr, "bench_zeroshot: %s\n", ad_errmsg());
            return 1;
        }
        ad_context_params cp = ad_context_default_params();
        cp.n_threads = threads;
        ad_context *ctx = ad_context_new(m, cp);
        ad_image img = {0};
        if (!ctx || ad_image_alloc(&img, 448, 448) != AD_OK) {
            fprintf(stderr, "bench_zeroshot: %s\n", ad_errmsg());
            return 1;
        }
        for (size_t e = 0; e < (size_t)448 * 448 * 3; e++) img.data[e] = (uint8_t)(e * 2654435761u >> 24);
        ad_features f = {0};
        double best = 1e30;
        for (int r = 0; r < 3; r++) { /* first run warms the caches/scratch */
            double t0 = now();
            if (ad_extract_image(ctx, &img, 448, &f) != AD_OK) {
                fprintf(stderr, "bench_zeroshot: %s\n", ad_errmsg());
                return 1;
            }
            double t = now() - t0;
            if (r > 0 && t < best) best = t;
            ad_features_free(&f);
        }
        backbone_s = best;
        backbone_src = "measured, best of 2 warm runs";
        ad_image_free(&img);
        ad_context_free(ctx);
        ad_model_free(m);
    }

    ad_features *feats = calloc((size_t)n, sizeof *feats);
    double **grids = calloc((size_t)n, sizeof *grids);
    int gh = 1, gw = patches;
    for (int s = (int)sqrt((double)patches); s >= 1; s--)
        if (patches % s == 0) { gh = s; gw = patches / s; break; }
    for (int i = 0; i < n; i++) {
        feats[i].grid_h = gh;
        feats[i].grid_w = gw;
        feats[i].dim = dim;
        feats[i].patch = adi_alloc((size_t)patches * (size_t)dim, sizeof(float));
        grids[i] = adi_alloc((size_t)patches, sizeof(double));
        if (!feats[i].patch || !grids[i]) {
            fprintf(stderr, "bench_zeroshot: out of memory\n");
            return 1;
        }
        for (size_t e = 0; e < (size_t)patches * (size_t)dim; e++) feats[i].patch[e] = gauss();
    }
    long rss_features = peak_rss_mb();
    double P = (double)n * patches;
    double gflop = 2.0 * P * P * dim * (1.0 - 1.0 / n) / 2.0 * 1e-9;

    /* No context without a model: ad_zeroshot(NULL, ...) runs on the process-wide setting. */
    omp_set_num_threads(adi_threads_resolve(threads));
    double best = 1e30;
    for (int r = 0; r < repeat; r++) {
        double t0 = now();
        ad_status st = ad_zeroshot(NULL, feats, NULL, n, grids);
        double t = now() - t0;
        if (st != AD_OK) {
            fprintf(stderr, "bench_zeroshot: %s\n", ad_errmsg());
            return 1;
        }
        if (t < best) best = t;
    }
    double chk = 0;
    for (int i = 0; i < n; i++) chk += ad_score_top1p(grids[i], (size_t)patches);

    printf("zeroshot scoring: %d images x %d patches x %d dims, %d threads\n", n, patches, dim,
           threads);
    printf("  time            %.2f s (best of %d)   %.1f GFLOP -> %.1f GFLOP/s\n", best, repeat,
           gflop, gflop / best);
    printf("  per image       %.3f s\n", best / n);
    printf("  backbone        %.3f s/image (%s) -> %.1f s for the batch\n", backbone_s,
           backbone_src, backbone_s * n);
    printf("  ratio scoring / backbone = %.2f\n", best / (backbone_s * n));
    printf("  peak RSS        %ld MB (features alone %ld MB)\n", peak_rss_mb(), rss_features);
    printf("  checksum        %.6f (sum of image scores)\n", chk);
    for (int i = 0; i < n; i++) {
        adi_free(feats[i].patch);
        adi_free(grids[i]);
    }
    free(feats);
    free(grids);
    return 0;
}
