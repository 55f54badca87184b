/* Pixel + image metrics on a synthetic VisA-sized category, generated in memory: by default 100
 * test images of 1500 x 1000 (150M pixels), half of them anomalous with 1-3 elliptic defects,
 * maps smooth with fine noise (nearly every value distinct, like blurred anomaly maps).
 * Prints the seconds of ad_pixel_eval_add (all images), ad_pixel_eval_finish and the image
 * metrics, and the peak resident memory (getrusage). Target: <= 60 s and <= 2 GB on 2 cores.
 *
 * --narrow squeezes every score into [0.2, 0.2002): one top-16-bit radix bucket and heavy ties,
 * the radix sort's worst case (no parallel buckets).
 *
 *   bench_metrics [--images N] [--width W] [--height H] [--threads T] [--narrow] */
#include "core/core.h"

#include <math.h>
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
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* Smooth background (a product of slow waves), per-pixel noise from a hash, defects raised. */
static int narrow;

static void make_image(int idx, int w, int h, int anomalous, float *map, uint8_t *mask)
{
    double fx = 2.0 + 3.0 * urand(), fy = 1.0 + 3.0 * urand(), ph = 6.28 * urand();
    memset(mask, 0, (size_t)w * h);
    int n_def = anomalous ? 1 + (int)(3 * urand()) : 0;
    for (int d = 0; d < n_def; d++) {
        double cx = w * (0.1 + 0.8 * urand()), cy = h * (0.1 + 0.8 * urand());
        double rx = 10 + 60 * urand(), ry = 10 + 60 * urand();
        for (int y = (int)fmax(0, cy - ry); y < (int)fmin(h, cy + ry + 1); y++)
            for (int x = (int)fmax(0, cx - rx); x < (int)fmin(w, cx + rx + 1); x++) {
                double u = (x - cx) / rx, v = (y - cy) / ry;
                if (u * u + v * v <= 1) mask[(size_t)y * w + x] = 255;
            }
    }
    float *row_wave = malloc((size_t)w * sizeof *row_wave);
    for (int x = 0; x < w; x++) row_wave[x] = (float)sin(fx * 6.283 * x / w + ph);
    for (int y = 0; y < h; y++) {
        float cy = (float)cos(fy * 6.283 * y / h);
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            uint64_t z = (uint64_t)idx * 0x100000001b3ULL ^ i * 0x9e3779b97f4a7c15ULL;
            z ^= z >> 29;
            z *= 0xbf58476d1ce4e5b9ULL;
            z ^= z >> 32;
            float noise = (float)(z & 0xffffff) / 16777216.0f;
            float v = 0.2f + 0.05f * row_wave[x] * cy + 0.06f * noise;
            if (mask[i]) v += 0.02f + 0.04f * noise;
            map[i] = narrow ? 0.2f + 0.0005f * (v - 0.15f) : v;
        }
    }
    free(row_wave);
}

int main(int argc, char **argv)
{
    int n_img = 100, w = 1500, h = 1000, threads = 0;
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--narrow")) {
            narrow = 1;
            i--;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--images")) n_img = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--width")) w = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--height")) h = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (n_img < 2 || w < 1 || h < 1) {
        fprintf(stderr, "need --images >= 2 and a positive size\n");
        return 2;
    }
    omp_set_num_threads(adi_threads_resolve(threads));
    float *map = malloc((size_t)w * h * sizeof *map);
    uint8_t *mask = malloc((size_t)w * h);
    int *labels = malloc((size_t)n_img * sizeof *labels);
    double *scores = malloc((size_t)n_img * sizeof *scores);
    ad_pixel_eval *pe = ad_pixel_eval_new();
    if (!map || !mask || !labels || !scores || !pe) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    double t_gen = 0, t_add = 0;
    for (int i = 0; i < n_img; i++) {
        double t0 = now();
        labels[i] = i % 2;
        make_image(i, w, h, labels[i], map, mask);
        float mx = map[0];
        for (size_t k = 1; k < (size_t)w * h; k++) mx = map[k] > mx ? map[k] : mx;
        scores[i] = mx;
        double t1 = now();
        if (ad_pixel_eval_add(pe, map, labels[i] ? mask : NULL, w, h) != AD_OK) {
            fprintf(stderr, "add: %s\n", ad_errmsg());
            return 1;
        }
        t_gen += t1 - t0;
        t_add += now() - t1;
    }
    double t0 = now();
    ad_pixel_metrics pm;
    if (ad_pixel_eval_finish(pe, &pm) != AD_OK) {
        fprintf(stderr, "finish: %s\n", ad_errmsg());
        return 1;
    }
    double t_fin = now() - t0;
    t0 = now();
    ad_image_metrics im;
    if (ad_metrics_image(labels, scores, (size_t)n_img, &im) != AD_OK) {
        fprintf(stderr, "image: %s\n", ad_errmsg());
        return 1;
    }
    double t_img = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("bench_metrics: %d images of %d x %d = %.1fM pixels, %d threads%s\n", n_img, w, h,
           (double)n_img * w * h / 1e6, adi_threads_resolve(threads),
           narrow ? ", narrow score range" : "");
    printf("  image auroc %.6f ap %.6f f1max %.6f | pixel auroc %.6f f1max %.6f aupro %.6f\n",
           im.auroc, im.ap, im.f1max, pm.auroc, pm.f1max, pm.aupro);
    printf("  generate (not counted) %.2f s\n", t_gen);
    printf("  ad_pixel_eval_add      %.2f s\n", t_add);
    printf("  ad_pixel_eval_finish   %.2f s\n", t_fin);
    printf("  ad_metrics_image       %.4f s\n", t_img);
    printf("  metrics total          %.2f s\n", t_add + t_fin + t_img);
    printf("  peak RSS               %.0f MB\n", ru.ru_maxrss / 1024.0);
    ad_pixel_eval_free(pe);
    free(map);
    free(mask);
    free(labels);
    free(scores);
    return 0;
}
