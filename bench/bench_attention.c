/* The attention kernels and the OpenBLAS sgemm ceiling on the shapes of a ViT block (not a
 * test).
 *
 * For each token count T (default 257, 1025, 2305: 224, 448 and 672 inputs at patch 14), one
 * block of ViT-S/14 (D 384, 6 heads of 64, MLP 1536) with random qkv:
 *   attention   all heads and queries through bb_attention, the fused kernel (AVX-512F where
 *               the CPU has it, and AVX2 + FMA) against the PORTABLE path (OpenBLAS q k^T, softmax, p v, as before the fused kernel),
 *               interleaved, best of RUNS; GFLOP/s counts 4 T^2 hd per head;
 *   ceiling     the block's four linear layers (qkv, proj, fc1, fc2) as single-threaded
 *               OpenBLAS sgemm calls on each thread's rows (the forward pass's split), and the
 *               attention products q k^T and p v as plain sgemm calls (per head, 128-row
 *               blocks), best of RUNS: the GFLOP/s a forward pass made of nothing but sgemm
 *               would reach. bench/peer_bench.sh divides our effective GFLOP/s by it.
 *
 *   bench_attention [--tokens 257,1025,2305] [--runs 5] [--threads 2] [--check]
 *
 * --check also compares the fused kernel with the plain reference (largest difference). */
#include "backbone/backbone.h"

#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define D 384
#define NH 6
#define HD 64
#define HID 1536

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static float rnd(void) /* uniform [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0) - 1.0);
}

static void fill(float *p, size_t n, float amp)
{
    for (size_t i = 0; i < n; i++) p[i] = amp * rnd();
}

/* all heads, all queries, tasks of 96 queries over the threads (as the forward pass) */
static double time_attention(bb_impl impl, const float *qkv, int T, int threads, float *ao,
                             float *work, size_t per)
{
    const int ld = 3 * D, rb = 96, nrb = (T + rb - 1) / rb;
    double t0 = now();
#pragma omp parallel num_threads(threads)
    {
        adi_blas_serial();
        float *w = work + (size_t)omp_get_thread_num() * per;
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < NH * nrb; task++) {
            int h = task / nrb, a0 = (task % nrb) * rb, a1 = a0 + rb < T ? a0 + rb : T;
            bb_attention(impl, qkv + h * HD, qkv + D + h * HD, qkv + 2 * D + h * HD, ld, T, HD,
                         0.125f, a0, a1, ao + h * HD, D, w);
        }
    }
    return now() - t0;
}

/* packed: NULL for OpenBLAS over B, else B in gemm.c's panels for bb_gemm_nt (packed before
 * the timing, as the model packs its weights when it loads) */
static void gemm_split(int threads, int M, int N, int K, const float *A, const float *B,
                       const float *packed, float *C)
{
#pragma omp parallel num_threads(threads)
    {
        adi_blas_serial();
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int r0 = (int)((long long)M * t / n), r1 = (int)((long long)M * (t + 1) / n);
        if (r1 > r0 && packed)
            bb_gemm_nt(r1 - r0, N, K, A + (size_t)r0 * K, K, packed, NULL, 0, C + (size_t)r0 * N,
                       N);
        else if (r1 > r0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, N, K, 1.0f,
                        A + (size_t)r0 * K, K, B, K, 0.0f, C + (size_t)r0 * N, N);
    }
}

/* q k^T and p v of every head as sgemm, 128-row blocks over the threads: the products alone */
static void attn_gemms(int threads, int T, const float *qkv, float *S, float *ao)
{
    const int ld = 3 * D, rb = 128, nrb = (T + rb - 1) / rb;
#pragma omp parallel num_threads(threads)
    {
        adi_blas_serial();
        float *s = S + (size_t)omp_get_thread_num() * rb * T;
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < NH * nrb; task++) {
            int h = task / nrb, a0 = (task % nrb) * rb, rows = T - a0 < rb ? T - a0 : rb;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, T, HD, 0.125f,
                        qkv + (size_t)a0 * ld + h * HD, ld, qkv + D + h * HD, ld, 0.0f, s, T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HD, T, 1.0f, s, T,
                        qkv + 2 * D + h * HD, ld, 0.0f, ao + (size_t)a0 * D + h * HD, D);
        }
    }
}

int main(int argc, char **argv)
{
    char tokens_s[128] = "257,1025,2305";
    int runs = 5, threads = 2, check = 0;
    static const struct option opts[] = {
        {"tokens", required_argument, 0, 'T'}, {"runs", required_argument, 0, 'r'},
        {"threads", required_argument, 0, 't'}, {"check", no_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "T:r:t:ch", opts, NULL)) != -1) {
        switch (c) {
        case 'T': snprintf(tokens_s, sizeof tokens_s, "%s", optarg); break;
        case 'r': runs = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'c': check = 1; break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: bench_attention [--tokens 257,1025,2305] [--runs 5] [--threads 2] "
                    "[--check]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (runs < 1 || threads < 1 || threads > 256) {
        fprintf(stderr, "bench_attention: bad --runs or --threads\n");
        return 2;
    }
    if (!adi_cpu_has_avx2_fma()) printf("note: no AVX2 + FMA here; 'fused' runs the portable path\n");
    char *save = NULL;
    for (char *tok = strtok_r(tokens_s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int T = atoi(tok);
        if (T < 1 || T > 100000) {
            fprintf(stderr, "bench_attention: bad token count '%s'\n", tok);
            return 2;
        }
        size_t per = 0;
        for (int i = BB_PLAIN; i <= BB_AVX2; i++) {
            size_t n = bb_attention_work((bb_impl)i, T, HD, 128);
            per = n > per ? n : per;
        }
        per = (per + 15) / 16 * 16;
        if (per < (size_t)128 * T) per = (size_t)128 * T;
        float *qkv = malloc(sizeof(float) * T * 3 * D), *ao = malloc(sizeof(float) * T * D),
              *ao2 = malloc(sizeof(float) * T * D), *work = malloc(sizeof(float) * per * threads),
              *x = malloc(sizeof(float) * T * HID), *y = malloc(sizeof(float) * T * HID),
              *wq = malloc(sizeof(float) * 3 * D * D), *wp = malloc(sizeof(float) * D * D),
              *w1 = malloc(sizeof(float) * HID * D), *w2 = malloc(sizeof(float) * D * HID);
        if (!qkv || !ao || !ao2 || !work || !x || !y || !wq || !wp || !w1 || !w2) {
            fprintf(stderr, "bench_attention: out of memory\n");
            return 1;
        }
        fill(qkv, (size_t)T * 3 * D, 2.0f);
        fill(x, (size_t)T * HID, 1.0f);
        fill(wq, (size_t)3 * D * D, 0.05f);
        fill(wp, (size_t)D * D, 0.05f);
        fill(w1, (size_t)HID * D, 0.05f);
        fill(w2, (size_t)D * HID, 0.05f);

        double af = 4.0 * T * (double)T * HD * NH;
        double lf = 2.0 * T * D * (3.0 * D + D + 2.0 * HID);
        const bb_impl fast = bb_impl_auto();
        double best_f = INFINITY, best_p = INFINITY, best_l = INFINITY, best_a = INFINITY;
        double best_2 = INFINITY, best_g = INFINITY;
        float *pk[4] = {NULL, NULL, NULL, NULL};
        if (bb_cpu_has_avx512()) {
            const int shp[4][2] = {{3 * D, D}, {D, D}, {HID, D}, {D, HID}};
            const float *src[4] = {wq, wp, w1, w2};
            for (int i = 0; i < 4; i++) {
                pk[i] = malloc(sizeof(float) * bb_gemm_packed_floats(shp[i][0], shp[i][1]));
                if (!pk[i]) {
                    fprintf(stderr, "bench_attention: out of memory\n");
                    return 1;
                }
                bb_gemm_pack(src[i], shp[i][1], shp[i][0], shp[i][1], 0,
                             bb_gemm_panels(shp[i][0]), pk[i]);
            }
        }
        for (int r = 0; r <= runs; r++) { /* run 0 warms up */
            double tf = time_attention(fast, qkv, T, threads, ao, work, per);
            double t2 = fast == BB_AVX512 ? time_attention(BB_AVX2, qkv, T, threads, ao2, work, per)
                                          : tf;
            double tp = time_attention(BB_PORTABLE, qkv, T, threads, ao2, work, per);
            double t0 = now();
            gemm_split(threads, T, 3 * D, D, x, wq, NULL, y);
            gemm_split(threads, T, D, D, x, wp, NULL, y);
            gemm_split(threads, T, HID, D, x, w1, NULL, y);
            gemm_split(threads, T, D, HID, y, w2, NULL, x);
            double tl = now() - t0;
            fill(x, (size_t)T * HID, 1.0f); /* fc2 overwrote it */
            double tg = INFINITY;
            if (bb_cpu_has_avx512()) {
                t0 = now();
                gemm_split(threads, T, 3 * D, D, x, wq, pk[0], y);
                gemm_split(threads, T, D, D, x, wp, pk[1], y);
                gemm_split(threads, T, HID, D, x, w1, pk[2], y);
                gemm_split(threads, T, D, HID, y, w2, pk[3], x);
                tg = now() - t0;
                fill(x, (size_t)T * HID, 1.0f);
            }
            t0 = now();
            attn_gemms(threads, T, qkv, work, ao2);
            double ta = now() - t0;
            if (r == 0) continue;
            best_f = tf < best_f ? tf : best_f;
            best_2 = t2 < best_2 ? t2 : best_2;
            best_p = tp < best_p ? tp : best_p;
            best_l = tl < best_l ? tl : best_l;
            best_g = tg < best_g ? tg : best_g;
            best_a = ta < best_a ? ta : best_a;
        }
        printf("T %d, threads %d, best of %d: attention fused (%s) %.2f ms (%.1f GFLOP/s), "
               "fused avx2 %.2f ms (%.1f GFLOP/s), portable/OpenBLAS %.2f ms (%.1f GFLOP/s): "
               "fused %.2fx faster than portable\n",
               T, threads, runs, fast == BB_AVX512 ? "avx512" : "avx2", 1e3 * best_f,
               af / best_f / 1e9, 1e3 * best_2, af / best_2 / 1e9, 1e3 * best_p,
               af / best_p / 1e9, best_p / best_f);
        printf("T %d, threads %d: sgemm ceiling: linear layers %.1f GFLOP/s, attention products "
               "%.1f GFLOP/s, whole block %.1f GFLOP/s\n",
               T, threads, lf / best_l / 1e9, af / best_a / 1e9, (lf + af) / (best_l + best_a) / 1e9);
        if (bb_cpu_has_avx512())
            printf("T %d, threads %d: linear layers through our AVX-512 GEMM %.1f GFLOP/s (%.2fx "
                   "OpenBLAS)\n",
                   T, threads, lf / best_g / 1e9, best_l / best_g);
        if (check) {
            time_attention(fast, qkv, T, threads, ao, work, per);
            time_attention(BB_PLAIN, qkv, T, threads, ao2, work, per);
            double worst = 0;
            size_t at = 0;
            for (size_t i = 0; i < (size_t)T * D; i++) {
                double d = fabs((double)ao[i] - ao2[i]);
                if (d > worst) {
                    worst = d;
                    at = i;
                }
            }
            printf("T %d: fused vs plain: max|diff| %.3g at query %zu, column %zu\n", T, worst,
                   at / D, at % D);
        }
        for (int i = 0; i < 4; i++) free(pk[i]);
        free(qkv);
        free(ao);
        free(ao2);
        free(work);
        free(x);
        free(y);
        free(wq);
        free(wp);
        free(w1);
        free(w2);
    }
    return 0;
}
