/* Coreset subsampling of a memory bank: greedy k-center selection as PatchCore uses it (each pick
 * the row farthest from every row picked so far), with distances in a seeded random projection.
 *
 * It is an approximation: a query's nearest neighbour in the coreset is at most the coreset's
 * covering radius farther than its nearest neighbour in the full bank (in the projected space).
 *
 * Determinism: the projection is a fixed Rademacher matrix from a fixed seed, computed in fixed
 * row blocks (one single-threaded GEMM each); the greedy loop splits rows over threads but every
 * row's distance is computed the same way and the arg-max is exact with the lowest index winning
 * ties, so the picks do not depend on the thread count. */
#include "detect/detect.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CS_X86 1
#endif

#define PROJ_BLOCK 4096   /* rows per projection GEMM (fixed: results independent of threads) */
#define INIT_QBLOCK 256   /* new rows per tile of the initial distances to existing centres */
#define INIT_CBLOCK 4096  /* centre rows per GEMM of that initialisation */
#define GREEDY_ROWS_PER_THREAD 32768

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Squared distance over p values: eight partial sums (element j into sum j mod 8), added in a
 * fixed order. The AVX2 path performs exactly the same operations (no fused multiply-add). */
static float dist2_portable(const float *a, const float *b, int p)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int j = 0; j < p; j++) {
        float t = a[j] - b[j];
        float sq = t * t;
        acc[j & 7] = acc[j & 7] + sq;
    }
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

#ifdef CS_X86
__attribute__((target("avx2"))) static float dist2_avx2(const float *a, const float *b, int p)
{
    __m256 v = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= p; j += 8) {
        __m256 t = _mm256_sub_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j));
        v = _mm256_add_ps(v, _mm256_mul_ps(t, t));
    }
    float acc[8];
    _mm256_storeu_ps(acc, v);
    for (; j < p; j++) {
        float t = a[j] - b[j];
        float sq = t * t;
        acc[j & 7] = acc[j & 7] + sq;
    }
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}
#endif

typedef float (*dist_fn)(const float *, const float *, int);

static dist_fn pick_dist(void)
{
#ifdef CS_X86
    if (adi_cpu_has_avx2_fma()) return dist2_avx2;
#endif
    return dist2_portable;
}

/* y (n x p) = x (n x d) times a d x p Rademacher matrix scaled by 1/sqrt(p). */
static float *project(const float *x, size_t n, int d, int p, int nt)
{
    float *g = adi_alloc((size_t)d * (size_t)p, sizeof *g);
    size_t yn;
    float *y = adi_mul_overflow(n, (size_t)p, &yn) ? NULL : adi_alloc(yn, sizeof *y);
    if (!g || !y) {
        adi_free(g);
        adi_free(y);
        return NULL;
    }
    uint64_t s = DT_CORESET_SEED;
    const float v = 1.0f / sqrtf((float)p);
    for (size_t i = 0; i < (size_t)d * (size_t)p; i += 64) {
        uint64_t r = splitmix64(&s);
        for (size_t j = i; j < i + 64 && j < (size_t)d * (size_t)p; j++)
            g[j] = ((r >> (j - i)) & 1) ? v : -v;
    }
    const size_t nblk = (n + PROJ_BLOCK - 1) / PROJ_BLOCK;
#pragma omp parallel num_threads(nt)
    {
        adi_blas_serial();
#pragma omp for schedule(dynamic, 1)
        for (size_t k = 0; k < nblk; k++) {
            size_t r0 = k * PROJ_BLOCK, m = n - r0 < PROJ_BLOCK ? n - r0 : PROJ_BLOCK;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, p, d, 1.0f,
                        x + r0 * (size_t)d, d, g, p, 0.0f, y + r0 * (size_t)p, p);
        }
    }
    adi_free(g);
    return y;
}

/* mind[i] = min over centres j < n_pre of |y_{n_pre+i} - y_j|^2, by GEMM (|a|^2 + |b|^2 - 2ab)
 * in fixed tiles. */
static ad_status init_from_centres(const float *y, size_t n, int p, size_t n_pre, int nt,
                                   float *mind)
{
    const size_t m = n - n_pre;
    float *yn = adi_alloc(n, sizeof *yn);
    float *buf = adi_alloc((size_t)nt * INIT_QBLOCK * INIT_CBLOCK, sizeof *buf);
    if (!yn || !buf) {
        adi_free(yn);
        adi_free(buf);
        return adi_fail(AD_E_NOMEM, "coreset: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (int j = 0; j < p; j++) s += y[i * p + j] * y[i * p + j];
        yn[i] = s;
    }
    const size_t ntile = (m + INIT_QBLOCK - 1) / INIT_QBLOCK;
#pragma omp parallel num_threads(nt)
    {
        adi_blas_serial();
        float *c = buf + (size_t)omp_get_thread_num() * INIT_QBLOCK * INIT_CBLOCK;
#pragma omp for schedule(dynamic, 1)
        for (size_t t = 0; t < ntile; t++) {
            const size_t q0 = t * INIT_QBLOCK, nq = m - q0 < INIT_QBLOCK ? m - q0 : INIT_QBLOCK;
            for (size_t i = 0; i < nq; i++) mind[q0 + i] = INFINITY;
            for (size_t j0 = 0; j0 < n_pre; j0 += INIT_CBLOCK) {
                const size_t nc = n_pre - j0 < INIT_CBLOCK ? n_pre - j0 : INIT_CBLOCK;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nc, p, 1.0f,
                            y + (n_pre + q0) * (size_t)p, p, y + j0 * (size_t)p, p, 0.0f, c,
                            (int)nc);
                for (size_t i = 0; i < nq; i++) {
                    float best = mind[q0 + i];
                    const float qi = yn[n_pre + q0 + i];
                    for (size_t j = 0; j < nc; j++) {
                        float d2 = (qi + yn[j0 + j]) - 2.0f * c[i * nc + j];
                        d2 = d2 > 0 ? d2 : 0.0f;
                        if (d2 < best) best = d2;
                    }
                    mind[q0 + i] = best;
                }
            }
        }
    }
    adi_free(yn);
    adi_free(buf);
    return AD_OK;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

ad_status dt_kcenter(const float *x, size_t n, int d, size_t n_pre, size_t target, int n_threads,
                     size_t *sel)
{
    if (!x || !sel || d <= 0 || n_pre > n || target > n - n_pre)
        return adi_fail(AD_E_ARG, "coreset: bad arguments (%zu rows, %zu centres, %zu picks)", n,
                       n_pre, target);
    if (target == 0) return AD_OK;
    int nt = n_threads > 0 ? n_threads : omp_get_max_threads();
    if (nt < 1) nt = 1;
    const int p = d > DT_CORESET_PROJ ? DT_CORESET_PROJ : d;
    float *yproj = NULL;
    const float *y = x;
    if (p < d) {
        yproj = project(x, n, d, p, nt);
        if (!yproj) return adi_fail(AD_E_NOMEM, "coreset: out of memory for %zu projected rows", n);
        y = yproj;
    }
    const size_t m = n - n_pre;
    float *mind = adi_alloc(m, sizeof *mind);
    float *bestv = adi_alloc((size_t)nt, sizeof *bestv);
    size_t *besti = adi_alloc((size_t)nt, sizeof *besti);
    ad_status st = AD_OK;
    if (!mind || !bestv || !besti) {
        st = adi_fail(AD_E_NOMEM, "coreset: out of memory");
        goto out;
    }
    size_t cnt = 0, centre = SIZE_MAX;
    if (n_pre == 0) {
        sel[cnt++] = 0;
        centre = 0;
        for (size_t i = 0; i < m; i++) mind[i] = INFINITY;
        mind[0] = -1.0f; /* picked */
    } else {
        st = init_from_centres(y, n, p, n_pre, nt, mind);
        if (st != AD_OK) goto out;
    }
    /* Every pick ends with a barrier: below ~32k rows per thread the wake-ups cost more than
     * the distances (the picks do not depend on the thread count). */
    if ((size_t)nt > m / GREEDY_ROWS_PER_THREAD) nt = (int)(m / GREEDY_ROWS_PER_THREAD);
    if (nt < 1) nt = 1;
    const dist_fn dist = pick_dist();
    int done = cnt >= target;
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const size_t lo = m * (size_t)t / (size_t)T, hi = m * (size_t)(t + 1) / (size_t)T;
        while (!done) {
            float bv = -1.0f;
            size_t bi = SIZE_MAX;
            const float *yc = centre == SIZE_MAX ? NULL : y + centre * (size_t)p;
            for (size_t i = lo; i < hi; i++) {
                float v = mind[i];
                if (v < 0) continue;
                if (yc) {
                    float d2 = dist(y + (n_pre + i) * (size_t)p, yc, p);
                    if (d2 < v) mind[i] = v = d2;
                }
                if (v > bv) {
                    bv = v;
                    bi = i;
                }
            }
            bestv[t] = bv;
            besti[t] = bi;
#pragma omp barrier
#pragma omp single
            {
                float v = -1.0f;
                size_t w = SIZE_MAX;
                for (int u = 0; u < T; u++)
                    if (besti[u] != SIZE_MAX && bestv[u] > v) {
                        v = bestv[u];
                        w = besti[u];
                    }
                if (w == SIZE_MAX) {
                    done = 1; /* nothing left (cannot happen while cnt < target <= m) */
                } else {
                    sel[cnt++] = n_pre + w;
                    mind[w] = -1.0f;
                    centre = n_pre + w;
                    if (cnt >= target) done = 1;
                }
            }
        }
    }
    if (cnt < target) st = adi_fail(AD_E_INTERNAL, "coreset: %zu of %zu rows picked", cnt, target);
    else qsort(sel, target, sizeof *sel, cmp_size);
out:
    adi_free(yproj);
    adi_free(mind);
    adi_free(bestv);
    adi_free(besti);
    return st;
}

/* Rows kept of `offered`: ceil(frac * offered), at least 1 and at most offered. */
static size_t kept_rows(double frac, size_t offered)
{
    if (offered == 0) return 0;
    double k = ceil(frac * (double)offered - 1e-9);
    if (k < 1) k = 1;
    if (k > (double)offered) k = (double)offered;
    return (size_t)k;
}

ad_status dt_bank_coreset_rows(ad_bank *b, size_t from, int n_threads)
{
    if (from > b->rows) return adi_fail(AD_E_ARG, "coreset: bad row range");
    const size_t offered = b->rows - from, keep = kept_rows(b->coreset_frac, offered);
    if (keep >= offered) {
        b->coreset_offered += offered;
        return AD_OK;
    }
    size_t *sel = adi_malloc(keep * sizeof *sel);
    uint8_t *flag = adi_calloc(offered ? offered : 1, 1);
    ad_status st = AD_OK;
    if (!sel || !flag) st = adi_fail(AD_E_NOMEM, "coreset: out of memory");
    if (st == AD_OK) st = dt_kcenter(b->feat, b->rows, b->dim, from, keep, n_threads, sel);
    if (st == AD_OK) {
        for (size_t i = 0; i < keep; i++) flag[sel[i] - from] = 1;
        st = dt_bank_compact(b, from, flag);
    }
    if (st == AD_OK) b->coreset_offered += offered;
    adi_free(sel);
    adi_free(flag);
    return st;
}

ad_status ad_bank_coreset(ad_bank *b, ad_context *ctx, double r)
{
    if (!b) return adi_fail(AD_E_ARG, "ad_bank_coreset: NULL bank");
    if (!(r > 0) || !isfinite(r) || (r > 1 && (r != floor(r) || r > 9.0e15)))
        return adi_fail(AD_E_ARG,
                       "coreset %g: expected a fraction in (0, 1] or a whole number of rows", r);
    if (b->coreset > 0)
        return adi_fail(AD_E_ARG, "the bank is already a coreset (setting %g)", b->coreset);
    if (b->rows == 0) return adi_fail(AD_E_ARG, "ad_bank_coreset: the bank is empty");
    if (b->ivf)
        return adi_fail(AD_E_ARG, "ad_bank_coreset: the bank has an index: select the coreset "
                                  "first, then build the index");
    double frac = r <= 1 ? r : (r >= (double)b->rows ? 1.0 : r / (double)b->rows);
    const size_t rows0 = b->rows;
    b->coreset_frac = frac;
    b->coreset_offered = 0;
    ad_status st;
    if (r > 1 && r < (double)b->rows) {
        /* an absolute count: exactly r rows now; later references keep the same fraction */
        size_t keep = (size_t)r;
        size_t *sel = adi_malloc(keep * sizeof *sel);
        uint8_t *flag = adi_calloc(b->rows, 1);
        st = sel && flag ? AD_OK : adi_fail(AD_E_NOMEM, "coreset: out of memory");
        if (st == AD_OK) st = dt_kcenter(b->feat, b->rows, b->dim, 0, keep, ctx ? ad_context_threads(ctx) : 0, sel);
        if (st == AD_OK) {
            for (size_t i = 0; i < keep; i++) flag[sel[i]] = 1;
            st = dt_bank_compact(b, 0, flag);
        }
        if (st == AD_OK) b->coreset_offered = rows0;
        adi_free(sel);
        adi_free(flag);
    } else {
        st = dt_bank_coreset_rows(b, 0, ctx ? ad_context_threads(ctx) : 0);
    }
    if (st != AD_OK) { /* dt_bank_compact changes nothing when it fails */
        b->coreset_frac = 0;
        b->coreset_offered = 0;
        return st;
    }
    b->coreset = r;
    return AD_OK;
}
