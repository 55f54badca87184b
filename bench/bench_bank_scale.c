/* Bank size against search time and memory (not a test), issue 15: random ViT-S-width features
 * (384), banks of 1 .. 209 shots (8 rotations x 1024 patches each, 209 = the MVTec bottle
 * train set, 1,712,128 rows), each searched exactly in full and as coresets of R = 0.25 and
 * 0.1 of its rows; queries are one 448 image each (1024 patches).
 *
 *   bench_bank_scale [--threads N] [--shots S,...] [--queries Q] [--select-max ROWS] [--f16]
 *   bench_bank_scale --ab PAIRS [--threads N] [--shots S]
 *   bench_bank_scale --index ivf[:LISTS[:PROBES]] [--pairs N] [--threads N] [--shots S,...]
 *                    [--ratios R,...] [--index-max-rows ROWS]
 *
 * --index: for each bank (S shots x R of its rows, random rows), builds the IVF index and times
 * exact and index searches alternately, N pairs (one query image each), reporting the median
 * times, the median of the per-pair ratios, the fastest of each kind, the median CPU time per
 * search divided by the thread count (exact_cpu, index_cpu: what the wall time would be with the
 * threads never waiting for a core; on a loaded machine the wall time is longer), the index build time, the process's resident memory
 * with the bank (rss_MB), what building the index added to it (index_MB), the peak one search
 * adds above that (+exact, +index: each kind measured alone first, peak reset), and
 * the recall of the exact nearest neighbour (random rows have no cluster structure: the worst
 * case for an index; bench_ivf_quality measures it on structured data).
 *
 * --ab: float32 and float16 searches of the full S-shot bank alternately, PAIRS times, one query
 * image each (alternation keeps a shared machine's load changes out of the ratio).
 *
 * Per bank: rows, MB, ms per query image (median of Q), resident memory of the bank, and the
 * peak resident memory the queries add above it (peak reset through /proc/self/clear_refs
 * before the queries). The coreset rows are obtained by ad_bank_coreset (greedy k-center) up
 * to --select-max rows (its cost is reported); above that the search time of a coreset is
 * measured on a bank of that many random rows (the time of an exact search depends on the row
 * count only). --f16 also times a float16 row storage (rows converted to float32 block by block
 * before the same GEMM + scan), to decide whether a --bank-dtype f16 would pay. */
#include "anomalydino.h"
#include "detect/detect.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process (every thread). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long status_kb(const char *key)
{
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp) return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, fp))
        if (!strncmp(line, key, kl)) {
            v = atol(line + kl);
            break;
        }
    fclose(fp);
    return v;
}

static void reset_peak(void)
{
    FILE *fp = fopen("/proc/self/clear_refs", "w");
    if (fp) {
        fputs("5", fp);
        fclose(fp);
    }
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

enum { DIM = 384, GH = 32, GW = 32, VIEWS = 8 };

/* A bank of `rows` random rows, added as images of 1024 patches (ids = image index). */
static ad_bank *random_bank(size_t rows)
{
    ad_bank_params p = ad_bank_default_params();
    ad_bank *b = ad_bank_new(NULL, &p);
    float *x = malloc(sizeof(float) * GH * GW * DIM);
    if (!b || !x) return NULL;
    size_t done = 0;
    for (int img = 0; done < rows; img++) {
        size_t n = rows - done < GH * GW ? rows - done : GH * GW;
        for (size_t i = 0; i < n * DIM; i++) x[i] = frand();
        ad_features f = {1, (int)n, DIM, x, NULL};
        if (ad_bank_add_features(b, &f, NULL, img) != AD_OK) {
            fprintf(stderr, "bench: %s\n", ad_errmsg());
            exit(1);
        }
        done += n;
    }
    free(x);
    return b;
}

typedef struct {
    double ms_median, ms_min;
    long bank_mb, extra_mb;
} search_stats;

static search_stats time_search(const ad_bank *b, int threads, int queries, const float *q)
{
    double *grid = malloc(sizeof(double) * GH * GW);
    double *ms = malloc(sizeof(double) * (size_t)queries);
    search_stats s = {0, 0, 0, 0};
    long rss0 = status_kb("VmRSS:");
    reset_peak();
    for (int r = 0; r < queries; r++) {
        ad_features f = {GH, GW, DIM, (float *)q + (size_t)r * GH * GW * DIM, NULL};
        double t0 = now();
        if (dt_bank_search(b, threads, &f, NULL, -1, 0, grid) != AD_OK) {
            fprintf(stderr, "bench: %s\n", ad_errmsg());
            exit(1);
        }
        ms[r] = 1e3 * (now() - t0);
    }
    long hwm = status_kb("VmHWM:");
    qsort(ms, (size_t)queries, sizeof *ms, cmp_d);
    s.ms_median = ms[queries / 2];
    s.ms_min = ms[0];
    s.bank_mb = (long)((ad_bank_rows(b) * (DIM + 1) * 4.0 + ad_bank_rows(b) * 9.0) / 1048576.0 + 0.5);
    s.extra_mb = (hwm - rss0) / 1024;
    free(grid);
    free(ms);
    return s;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) static void f32_to_f16(const float *x, uint16_t *h, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), 0));
    for (; i < n; i++) h[i] = (uint16_t)_cvtss_sh(x[i], 0);
}
__attribute__((target("avx2,fma,f16c"))) static void f16_to_f32(const uint16_t *h, float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++) x[i] = _cvtsh_ss(h[i]);
}

/* The library's search structure (tiles of queries per thread, blocks of rows, one GEMM + top-1
 * scan per block) over float16 rows converted to float32 per block: what a --bank-dtype f16
 * would run. Returns ms for one query image. */
static double f16_search(const uint16_t *h, const float *norm2, size_t rows, const float *q, int nt)
{
    const size_t nq = GH * GW, qt = (nq + (size_t)nt - 1) / (size_t)nt;
    size_t blk = (1u << 20) / qt;
    blk = blk < 256 ? 256 : blk > 65536 ? 65536 : blk;
    float *qf = malloc(sizeof(float) * nq * DIM), *qn = malloc(sizeof(float) * nq);
    float *top = malloc(sizeof(float) * nq);
    memcpy(qf, q, sizeof(float) * nq * DIM);
    for (size_t i = 0; i < nq; i++) {
        qn[i] = dt_normalize_row(qf + i * DIM, DIM);
        top[i] = INFINITY;
    }
    double t0 = now();
#pragma omp parallel num_threads(nt)
    {
        adi_blas_serial();
        float *c = malloc(sizeof(float) * qt * blk), *rowsf = malloc(sizeof(float) * blk * DIM);
#pragma omp for schedule(static, 1)
        for (int t = 0; t < nt; t++) {
            size_t r0 = (size_t)t * qt, r1 = r0 + qt < nq ? r0 + qt : nq;
            for (size_t j0 = 0; j0 < rows; j0 += blk) {
                size_t nb = rows - j0 < blk ? rows - j0 : blk;
                f16_to_f32(h + j0 * DIM, rowsf, nb * DIM);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)nb, DIM,
                            1.0f, qf + r0 * DIM, DIM, rowsf, DIM, 0.0f, c, (int)nb);
                for (size_t i = r0; i < r1; i++)
                    dt_knn_scan(1, qn[i], c + (i - r0) * nb, norm2 + j0, nb, top + i, 1);
            }
        }
        free(c);
        free(rowsf);
    }
    double ms = 1e3 * (now() - t0);
    free(qf);
    free(qn);
    free(top);
    return ms;
}
#endif

/* Peak resident memory one search adds (MB), peak reset first. */
static long search_peak_mb(const ad_bank *b, int threads, const float *q, int probes)
{
    double *grid = malloc(sizeof(double) * GH * GW);
    long rss0 = status_kb("VmRSS:");
    reset_peak();
    ad_features f = {GH, GW, DIM, (float *)q, NULL};
    dt_bank_search_probes(b, threads, &f, NULL, -1, probes, grid);
    long hwm = status_kb("VmHWM:");
    free(grid);
    return (hwm - rss0) / 1024;
}

static int index_mode(const char *spec, int threads, const int *shots, int n_shots,
                      const double *ratios, int n_ratios, int pairs, size_t max_rows, const float *q,
                      int queries)
{
    int lists = 0, probes = 0;
    if (strncmp(spec, "ivf", 3) || (spec[3] && spec[3] != ':')) {
        fprintf(stderr, "bench: --index ivf[:LISTS[:PROBES]]\n");
        return 2;
    }
    if (spec[3] == ':') {
        lists = strncmp(spec + 4, "auto", 4) ? atoi(spec + 4) : 0;
        const char *c = strchr(spec + 4, ':');
        if (c) probes = strncmp(c + 1, "auto", 4) ? atoi(c + 1) : 0;
    }
    printf("threads %d, %d pairs of exact / index searches alternated, one 448 image (%d patches x "
           "%d) each, random rows\n", threads, pairs, GH * GW, DIM);
    printf("%-5s %-6s %9s %6s %6s %8s %9s %9s %8s %9s %9s %9s %9s %8s %8s %7s %7s %7s\n", "shots",
           "bank", "rows", "lists", "probes", "build_s", "exact_ms", "index_ms", "ratio",
           "exact_min", "index_min", "exact_cpu", "index_cpu", "rss_MB", "index_MB", "+exact",
           "+index", "recall");
    double *ge = malloc(sizeof(double) * GH * GW), *gi = malloc(sizeof(double) * GH * GW);
    double *te = malloc(sizeof(double) * (size_t)pairs), *ti = malloc(sizeof(double) * (size_t)pairs);
    double *tr = malloc(sizeof(double) * (size_t)pairs);
    double *ce = malloc(sizeof(double) * (size_t)pairs), *ci = malloc(sizeof(double) * (size_t)pairs);
    for (int s = 0; s < n_shots; s++) {
        const size_t full = (size_t)shots[s] * VIEWS * GH * GW;
        for (int r = 0; r < n_ratios; r++) {
            const size_t rows = (size_t)ceil(ratios[r] * (double)full - 1e-9);
            char name[16];
            snprintf(name, sizeof name, ratios[r] < 1 ? "R=%.2g" : "full", ratios[r]);
            if (rows > max_rows) {
                printf("%-5d %-6s %9zu (skipped: above --index-max-rows %zu)\n", shots[s], name, rows,
                       max_rows);
                continue;
            }
            ad_bank *b = random_bank(rows);
            long rss_bank = status_kb("VmRSS:");
            double t0 = now();
            if (dt_ivf_build(b, threads, lists, probes, 0) != AD_OK) {
                fprintf(stderr, "bench: %s\n", ad_errmsg());
                return 1;
            }
            double build = now() - t0;
            long rss_ix = status_kb("VmRSS:");
            ad_index_info ii;
            ad_bank_index_get(b, &ii);
            long pe = search_peak_mb(b, threads, q, DT_PROBES_EXACT);
            long pi = search_peak_mb(b, threads, q, 0);
            size_t hit = 0;
            for (int k = 0; k < pairs; k++) {
                ad_features f = {GH, GW, DIM, (float *)q + (size_t)(k % queries) * GH * GW * DIM, NULL};
                double c0 = cpu_now(), a0 = now();
                dt_bank_search(b, threads, &f, NULL, -1, 0, ge);
                double c1 = cpu_now(), a1 = now();
                dt_bank_search_probes(b, threads, &f, NULL, -1, 0, gi);
                double c2 = cpu_now(), a2 = now();
                ce[k] = 1e3 * (c1 - c0) / threads;
                ci[k] = 1e3 * (c2 - c1) / threads;
                te[k] = 1e3 * (a1 - a0);
                ti[k] = 1e3 * (a2 - a1);
                tr[k] = ti[k] / te[k];
                if (k < queries)
                    for (int i = 0; i < GH * GW; i++) hit += gi[i] - ge[i] <= 1e-6;
            }
            qsort(te, (size_t)pairs, sizeof *te, cmp_d);
            qsort(ti, (size_t)pairs, sizeof *ti, cmp_d);
            qsort(tr, (size_t)pairs, sizeof *tr, cmp_d);
            qsort(ce, (size_t)pairs, sizeof *ce, cmp_d);
            qsort(ci, (size_t)pairs, sizeof *ci, cmp_d);
            const int nq = pairs < queries ? pairs : queries;
            printf("%-5d %-6s %9zu %6d %6d %8.1f %9.1f %9.1f %8.4f %9.1f %9.1f %9.1f %9.1f %8ld %8ld "
                   "%7ld %7ld %7.3f\n", shots[s], name, rows, ii.lists, ii.probes, build,
                   te[pairs / 2], ti[pairs / 2], tr[pairs / 2], te[0], ti[0], ce[pairs / 2],
                   ci[pairs / 2], rss_bank / 1024,
                   (rss_ix - rss_bank) / 1024, pe, pi,
                   (double)hit / (double)(nq * GH * GW));
            fflush(stdout);
            ad_bank_free(b);
        }
    }
    free(ge);
    free(gi);
    free(te);
    free(ti);
    free(tr);
    free(ce);
    free(ci);
    return 0;
}

int main(int argc, char **argv)
{
    int threads = 2, queries = 3, do_f16 = 0, ab = 0, pairs = 5;
    const char *index_spec = NULL;
    size_t index_max_rows = 500000;
    double ratios_arg[8] = {1.0, 0.25, 0.1};
    int n_ratios = 3;
    size_t select_max = 32768;
    int shots[16] = {1, 4, 16, 209}, n_shots = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--queries") && i + 1 < argc) queries = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--select-max") && i + 1 < argc) select_max = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--f16")) do_f16 = 1;
        else if (!strcmp(argv[i], "--ab") && i + 1 < argc) ab = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--index") && i + 1 < argc) index_spec = argv[++i];
        else if (!strcmp(argv[i], "--pairs") && i + 1 < argc) pairs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--index-max-rows") && i + 1 < argc)
            index_max_rows = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--ratios") && i + 1 < argc) {
            n_ratios = 0;
            for (char *s = strtok(argv[++i], ","); s && n_ratios < 8; s = strtok(NULL, ","))
                ratios_arg[n_ratios++] = atof(s);
        }
        else if (!strcmp(argv[i], "--shots") && i + 1 < argc) {
            n_shots = 0;
            for (char *s = strtok(argv[++i], ","); s && n_shots < 16; s = strtok(NULL, ","))
                shots[n_shots++] = atoi(s);
        } else {
            fprintf(stderr, "usage: bench_bank_scale [--threads N] [--shots S,...] [--queries Q] "
                            "[--select-max ROWS] [--f16]\n"
                            "       bench_bank_scale --index ivf[:LISTS[:PROBES]] [--pairs N] "
                            "[--threads N] [--shots S,...] [--ratios R,...] [--index-max-rows ROWS]\n");
            return 2;
        }
    }
    if (queries < 1) queries = 1;
    float *q = malloc(sizeof(float) * (size_t)queries * GH * GW * DIM);
    for (size_t i = 0; i < (size_t)queries * GH * GW * DIM; i++) q[i] = frand();
    if (index_spec) {
        if (pairs < 1) pairs = 1;
        int rc = index_mode(index_spec, threads, shots, n_shots, ratios_arg, n_ratios, pairs,
                            index_max_rows, q, queries);
        free(q);
        return rc;
    }
#if defined(__x86_64__)
    if (ab > 0) {
        const size_t rows = (size_t)shots[0] * VIEWS * GH * GW;
        ad_bank *b = random_bank(rows);
        uint16_t *h = malloc(sizeof(uint16_t) * rows * DIM);
        f32_to_f16(b->feat, h, rows * DIM);
        double *ratio = malloc(sizeof(double) * (size_t)ab);
        double *grid = malloc(sizeof(double) * GH * GW);
        printf("A/B %d-shot bank, %zu rows, %d threads: float32 (library search) vs float16 rows\n",
               shots[0], rows, threads);
        for (int k = 0; k < ab; k++) {
            ad_features f = {GH, GW, DIM, q, NULL};
            double t0 = now();
            dt_bank_search(b, threads, &f, NULL, -1, 0, grid);
            double a = 1e3 * (now() - t0);
            double c = f16_search(h, b->norm2, rows, q, threads);
            ratio[k] = c / a;
            printf("pair %d: f32 %.1f ms, f16 %.1f ms, f16/f32 %.3f\n", k + 1, a, c, ratio[k]);
            fflush(stdout);
        }
        qsort(ratio, (size_t)ab, sizeof *ratio, cmp_d);
        printf("median f16/f32 = %.3f over %d pairs\n", ratio[ab / 2], ab);
        free(ratio);
        free(grid);
        free(h);
        ad_bank_free(b);
        free(q);
        return 0;
    }
#endif
    printf("threads %d, %d query image(s) of %d patches x %d, coreset selection up to %zu rows\n",
           threads, queries, GH * GW, DIM, select_max);
    printf("%-5s %-8s %9s %8s %10s %10s %9s %9s %s\n", "shots", "bank", "rows", "bank_MB",
           "ms/image", "ms_min", "rss_MB", "+search", "note");
    const double ratios[3] = {1.0, 0.25, 0.1};
    for (int s = 0; s < n_shots; s++) {
        const size_t full = (size_t)shots[s] * VIEWS * GH * GW;
        for (int r = 0; r < 3; r++) {
            size_t rows = (size_t)ceil(ratios[r] * (double)full - 1e-9);
            char note[128] = "";
            ad_bank *b;
            if (ratios[r] < 1 && full <= select_max) {
                b = random_bank(full);
                double t0 = now();
                /* what ad_bank_coreset runs, with the bench's thread count (no model here, so
                 * no context to carry it) */
                b->coreset_frac = ratios[r];
                if (dt_bank_coreset_rows(b, 0, threads) != AD_OK) {
                    fprintf(stderr, "bench: %s\n", ad_errmsg());
                    return 1;
                }
                b->coreset = ratios[r];
                snprintf(note, sizeof note, "k-center selection %.1f s", now() - t0);
            } else {
                b = random_bank(rows);
                if (ratios[r] < 1) snprintf(note, sizeof note, "random rows (selection not run)");
            }
            long rss = status_kb("VmRSS:") / 1024;
            search_stats st = time_search(b, threads, queries, q);
            char name[16];
            snprintf(name, sizeof name, ratios[r] < 1 ? "R=%.2g" : "full", ratios[r]);
            printf("%-5d %-8s %9zu %8ld %10.1f %10.1f %9ld %9ld %s\n", shots[s], name,
                   ad_bank_rows(b), st.bank_mb, st.ms_median, st.ms_min, rss, st.extra_mb, note);
            fflush(stdout);
#if defined(__x86_64__)
            if (do_f16 && r == 0 && adi_cpu_has_f16c()) {
                size_t n = ad_bank_rows(b);
                uint16_t *h = malloc(sizeof(uint16_t) * n * DIM);
                f32_to_f16(b->feat, h, n * DIM);
                double f16ms = 1e30, f32ms = 1e30;
                for (int k = 0; k < queries; k++) {
                    double a = f16_search(h, b->norm2, n, q + (size_t)k * GH * GW * DIM, threads);
                    if (a < f16ms) f16ms = a;
                }
                f32ms = st.ms_min;
                printf("      f16 rows: %.1f ms/image (best of %d) vs f32 %.1f ms (best): f16/f32 = "
                       "%.3f; f16 bank %ld MB\n",
                       f16ms, queries, f32ms, f16ms / f32ms, (long)(n * DIM * 2 / 1048576));
                free(h);
            }
#endif
            ad_bank_free(b);
        }
    }
    /* GEMM rate for context: the bound on any exact search */
    {
        const int M = 512, N = 65536;
        float *a = malloc(sizeof(float) * M * DIM), *bb = malloc(sizeof(float) * (size_t)N * DIM);
        float *c = malloc(sizeof(float) * (size_t)M * N);
        for (size_t i = 0; i < (size_t)M * DIM; i++) a[i] = frand();
        for (size_t i = 0; i < (size_t)N * DIM; i++) bb[i] = frand();
        double t0 = now();
        adi_sgemm_rows(threads, 0, M, N, DIM, 1.0f, a, DIM, bb, DIM, 0.0f, c, N);
        double sec = now() - t0;
        double gf = 2.0 * M * N * DIM / sec / 1e9;
        printf("sgemm %d threads: %.1f GFLOP/s -> an exact search of R rows costs at least "
               "R x %.3f us per 448 image (1024 x 384 inner products per row)\n",
               threads, gf, 2.0 * 1024 * DIM / (gf * 1e9) * 1e6);
        free(a);
        free(bb);
        free(c);
    }
    free(q);
    return 0;
}
