/* Batched zero-shot scoring (paper Appendix D; docs/design.md,
 * "Zero-shot" and "Where we differ").
 *
 * Every patch of image i is compared with every patch of every other image (M patches); its score
 * is the mean of the cosine distances strictly below the k-th smallest, k = max(1, int(0.001*M)).
 *
 * How it is computed:
 * - Only the image pairs (i, j > i) are multiplied (cblas_sgemm); each similarity block feeds both
 *   directions: row p of image i against the columns of j, column q of j against the rows of i.
 * - Rows are normalised like torch F.normalize (x / max(||x||, 1e-12), float32) on the fly into
 *   tile buffers, so memory is the caller's features plus a fixed working set per thread (two
 *   1024-row tiles and a 256 x 1024 block) plus the per-patch selection state.
 * - Each patch keeps a min-heap of its k largest similarities (= its k smallest distances:
 *   1 - s is monotone in s), its minimum mirrored in thr[] so that most values are rejected by one
 *   comparison. The multiset kept is the unique k-largest multiset whatever the order of arrival,
 *   so ties at the k-th value are handled by value, as torch.kthvalue does: the k-th smallest
 *   distance is the largest kept one and the score averages the kept values strictly below it.
 * - Threads: the pairs are scheduled in round-robin rounds (every image in at most one pair per
 *   round), so the pairs of a round touch disjoint heaps and run in parallel, one single-threaded
 *   GEMM each; with fewer pairs per round than threads, the pairs run one after the other, the
 *   GEMM's rows split over the threads and both selection directions side by side. Threads are
 *   the context's count in the library's own OpenMP regions, BLAS single-threaded in each. Each heap receives its values in
 *   a fixed order either way and the final sum runs over sorted values: the output does not
 *   depend on scheduling.
 * Selection state: k floats per patch (0.1 % of M; 41 MB for 100 images of 1024 patches) plus a
 * threshold and a count. */
#include "core/core.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* run_anomalydino_batched.py calculate_cosine_distances: quantile = 0.001 of the M distances. */
#define ZS_QUANTILE 0.001
/* torch.nn.functional.normalize default eps. */
#define ZS_NORM_EPS 1e-12f
/* Rows and columns normalised per tile: each column tile is normalised once per row tile, so a
 * 1024-row tile keeps that work near 1/2000 of the products for images of <= 1024 patches. */
#define ZS_TILE 1024
/* Rows per GEMM call: a 256 x 1024 float block (1 MB) stays in L2 for the two selection scans. */
#define ZS_SUB 256
/* Columns per scheduling unit of the column-direction scan when a team shares one block. */
#define ZS_COL_CHUNK 64


typedef struct {
    float *heap;      /* k floats per patch: min-heap of similarities */
    size_t *hoff;     /* offset of each patch's heap */
    uint32_t *cnt;    /* values in the heap */
    uint32_t *cap;    /* k of the patch's image */
    float *thr;       /* admission threshold: heap minimum when full, -inf before, +inf if masked */
} zs_select;

typedef struct {
    const ad_features *feats;
    const size_t *off;  /* first global patch of each image */
    const float *norm;  /* max(||x||, eps) per global patch */
    int dim;
} zs_input;

typedef struct {
    float *A, *B, *S; /* ZS_TILE x dim, ZS_TILE x dim, ZS_SUB x ZS_TILE */
} zs_work;

static inline void zs_offer(zs_select *z, size_t p, float v)
{
    float *h = z->heap + z->hoff[p];
    uint32_t n = z->cnt[p], k = z->cap[p];
    if (n < k) {
        uint32_t c = n; /* sift up */
        while (c > 0) {
            uint32_t par = (c - 1) / 2;
            if (h[par] <= v) break;
            h[c] = h[par];
            c = par;
        }
        h[c] = v;
        z->cnt[p] = ++n;
        if (n == k) z->thr[p] = h[0];
        return;
    }
    uint32_t c = 0; /* full and v > h[0]: replace the minimum, sift down */
    for (;;) {
        uint32_t l = 2 * c + 1;
        if (l >= k) break;
        uint32_t m = (l + 1 < k && h[l + 1] < h[l]) ? l + 1 : l;
        if (h[m] >= v) break;
        h[c] = h[m];
        c = m;
    }
    h[c] = v;
    z->thr[p] = h[0];
}

/* Row direction: patch p against one row of the block. */
static void zs_scan_row(zs_select *z, size_t p, const float *s, int n)
{
    float t = z->thr[p];
    for (int c = 0; c < n; c++) {
        if (s[c] > t) {
            zs_offer(z, p, s[c]);
            t = z->thr[p];
        }
    }
}

/* Column direction: columns [c0, c1) (global patches q0 + c) against every row of the block. */
static void zs_scan_cols(zs_select *z, size_t q0, const float *S, int rows, int ld, int c0, int c1)
{
    const float *thr = z->thr + q0;
    for (int r = 0; r < rows; r++) {
        const float *s = S + (size_t)r * (size_t)ld;
        for (int c = c0; c < c1; c++)
            if (s[c] > thr[c]) zs_offer(z, q0 + (size_t)c, s[c]);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ZS_HAVE_AVX2 1
/* Same as zs_scan_row, eight values rejected per comparison. */
__attribute__((target("avx2,fma"))) static void zs_scan_row_avx2(zs_select *z, size_t p,
                                                                 const float *s, int n)
{
    float t = z->thr[p];
    __m256 vt = _mm256_set1_ps(t);
    int c = 0;
    for (; c + 8 <= n; c += 8) {
        if (!_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s + c), vt, _CMP_GT_OQ))) continue;
        for (int e = c; e < c + 8; e++) {
            if (s[e] > t) {
                zs_offer(z, p, s[e]);
                t = z->thr[p];
            }
        }
        vt = _mm256_set1_ps(t);
    }
    for (; c < n; c++) {
        if (s[c] > t) {
            zs_offer(z, p, s[c]);
            t = z->thr[p];
        }
    }
}

/* Same as zs_scan_cols. Offers within one row go to different heaps, so the lanes found by one
 * comparison are all still valid after each other's insertion. */
__attribute__((target("avx2,fma"))) static void zs_scan_cols_avx2(zs_select *z, size_t q0,
                                                                  const float *S, int rows,
                                                                  int ld, int c0, int c1)
{
    const float *thr = z->thr + q0;
    for (int r = 0; r < rows; r++) {
        const float *s = S + (size_t)r * (size_t)ld;
        int c = c0;
        for (; c + 8 <= c1; c += 8) {
            int m = _mm256_movemask_ps(
                _mm256_cmp_ps(_mm256_loadu_ps(s + c), _mm256_loadu_ps(thr + c), _CMP_GT_OQ));
            while (m) {
                int e = c + __builtin_ctz((unsigned)m);
                m &= m - 1;
                zs_offer(z, q0 + (size_t)e, s[e]);
            }
        }
        for (; c < c1; c++)
            if (s[c] > thr[c]) zs_offer(z, q0 + (size_t)c, s[c]);
    }
}

/* x / norm, eight at a time (division, not a reciprocal multiply, as F.normalize). */
__attribute__((target("avx2,fma"))) static void zs_div_avx2(const float *x, float nr, float *y,
                                                            int dim)
{
    __m256 vn = _mm256_set1_ps(nr);
    int d = 0;
    for (; d + 8 <= dim; d += 8) _mm256_storeu_ps(y + d, _mm256_div_ps(_mm256_loadu_ps(x + d), vn));
    for (; d < dim; d++) y[d] = x[d] / nr;
}
#else
#define ZS_HAVE_AVX2 0
#endif

static int zs_avx2(void)
{
#if ZS_HAVE_AVX2
    return adi_cpu_has_avx2_fma();
#else
    return 0;
#endif
}

/* Rows [r0, r0 + n) of image img, normalised into dst (n x dim). team: the threads this call
 * may use (1: the calling thread only). */
static void zs_normalize(const zs_input *in, int img, int r0, int n, float *dst, int team)
{
    const int dim = in->dim;
    const float *x0 = in->feats[img].patch + (size_t)r0 * (size_t)dim;
    const float *nr = in->norm + in->off[img] + (size_t)r0;
    const int avx2 = zs_avx2();
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (int r = 0; r < n; r++) {
        const float *x = x0 + (size_t)r * (size_t)dim;
        float *y = dst + (size_t)r * (size_t)dim;
#if ZS_HAVE_AVX2
        if (avx2) {
            zs_div_avx2(x, nr[r], y, dim);
            continue;
        }
#endif
        (void)avx2;
        for (int d = 0; d < dim; d++) y[d] = x[d] / nr[r];
    }
}

/* Both selection directions of one block: rows = global patches p0.., columns = q0... */
static void zs_select_block(zs_select *z, size_t p0, size_t q0, const float *S, int rows,
                            int cols, int team)
{
    const int avx2 = zs_avx2();
    (void)avx2;
    if (team <= 1) {
        for (int r = 0; r < rows; r++) {
#if ZS_HAVE_AVX2
            if (avx2) zs_scan_row_avx2(z, p0 + (size_t)r, S + (size_t)r * (size_t)cols, cols);
            else
#endif
                zs_scan_row(z, p0 + (size_t)r, S + (size_t)r * (size_t)cols, cols);
        }
#if ZS_HAVE_AVX2
        if (avx2) zs_scan_cols_avx2(z, q0, S, rows, cols, 0, cols);
        else
#endif
            zs_scan_cols(z, q0, S, rows, cols, 0, cols);
        return;
    }
    /* rows belong to image i, columns to image j: disjoint heaps, both directions side by side */
    const int n_chunks = (cols + ZS_COL_CHUNK - 1) / ZS_COL_CHUNK;
#pragma omp parallel num_threads(team)
    {
#pragma omp for schedule(static) nowait
        for (int r = 0; r < rows; r++) {
#if ZS_HAVE_AVX2
            if (avx2) zs_scan_row_avx2(z, p0 + (size_t)r, S + (size_t)r * (size_t)cols, cols);
            else
#endif
                zs_scan_row(z, p0 + (size_t)r, S + (size_t)r * (size_t)cols, cols);
        }
#pragma omp for schedule(static) nowait
        for (int ch = 0; ch < n_chunks; ch++) {
            int a = ch * ZS_COL_CHUNK;
            int b = a + ZS_COL_CHUNK < cols ? a + ZS_COL_CHUNK : cols;
#if ZS_HAVE_AVX2
            if (avx2) zs_scan_cols_avx2(z, q0, S, rows, cols, a, b);
            else
#endif
                zs_scan_cols(z, q0, S, rows, cols, a, b);
        }
    }
}

/* Image i (rows) against image j (columns), i < j. team: the threads this call may use (the
 * GEMM's rows split over them); 1: the calling thread only, already inside a library region. */
static void zs_pair(zs_select *z, const zs_input *in, zs_work *w, int i, int j, int team)
{
    const int dim = in->dim;
    const int ni = in->feats[i].grid_h * in->feats[i].grid_w;
    const int nj = in->feats[j].grid_h * in->feats[j].grid_w;
    for (int r0 = 0; r0 < ni; r0 += ZS_TILE) {
        int rt = ni - r0 < ZS_TILE ? ni - r0 : ZS_TILE;
        zs_normalize(in, i, r0, rt, w->A, team);
        for (int c0 = 0; c0 < nj; c0 += ZS_TILE) {
            int ct = nj - c0 < ZS_TILE ? nj - c0 : ZS_TILE;
            zs_normalize(in, j, c0, ct, w->B, team);
            for (int s0 = 0; s0 < rt; s0 += ZS_SUB) {
                int st = rt - s0 < ZS_SUB ? rt - s0 : ZS_SUB;
                if (team > 1)
                    adi_sgemm_rows(team, 0, st, ct, dim, 1.0f, w->A + (size_t)s0 * (size_t)dim,
                                   dim, w->B, dim, 0.0f, w->S, ct);
                else
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, st, ct, dim, 1.0f,
                                w->A + (size_t)s0 * (size_t)dim, dim, w->B, dim, 0.0f, w->S, ct);
                zs_select_block(z, in->off[i] + (size_t)(r0 + s0), in->off[j] + (size_t)c0, w->S,
                                st, ct, team);
            }
        }
    }
}

/* Round r of the circle method over n' = n rounded up to even: position 0 stays, the others
 * rotate. Pair m of round r: (a, b) or a bye (-1) when n is odd. */
static void zs_round_pair(int n, int r, int m, int *a, int *b)
{
    int np = n + (n & 1), L = np - 1;
    int x = m == 0 ? 0 : 1 + (r + m - 1) % L;
    int y = 1 + (r + L - m - 1) % L;
    if (m == 0) y = 1 + (r + L - 1) % L;
    if (x >= n || y >= n) { *a = *b = -1; return; }
    *a = x < y ? x : y;
    *b = x < y ? y : x;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

ad_status ad_zeroshot(ad_context *ctx, const ad_features *feats, const uint8_t *const *keeps,
                      int n_images, double *const *grids)
{
    if (!feats || !grids) return adi_fail(AD_E_ARG, "ad_zeroshot: feats and grids must not be NULL");
    if (n_images < 2)
        return adi_fail(AD_E_ARG, "ad_zeroshot: needs at least 2 images (got %d): each image is "
                                 "scored against the others", n_images);
    const int dim = feats[0].dim;
    if (dim <= 0) return adi_fail(AD_E_ARG, "ad_zeroshot: image 0: feature width %d", dim);
    size_t P = 0;
    for (int i = 0; i < n_images; i++) {
        const ad_features *f = &feats[i];
        if (!f->patch || f->grid_h <= 0 || f->grid_w <= 0)
            return adi_fail(AD_E_ARG, "ad_zeroshot: image %d: no patch features (%d x %d grid)", i,
                           f->grid_h, f->grid_w);
        if (f->dim != dim)
            return adi_fail(AD_E_MISMATCH, "ad_zeroshot: image %d: feature width %d, image 0 has %d",
                           i, f->dim, dim);
        if (!grids[i]) return adi_fail(AD_E_ARG, "ad_zeroshot: grids[%d] is NULL", i);
        if ((size_t)f->grid_h * (size_t)f->grid_w > (size_t)INT32_MAX - P)
            return adi_fail(AD_E_ARG, "ad_zeroshot: too many patches (image %d)", i);
        P += (size_t)f->grid_h * (size_t)f->grid_w;
    }

    /* ctx == NULL: the caller's current OpenMP default, read, never changed (scoring stored
     * features needs no model) */
    const int n_threads = ctx ? ad_context_threads(ctx) : adi_threads_resolve(omp_get_max_threads());
    const int pairs_per_round = n_images / 2;
    const int parallel_pairs = n_threads > 1 && pairs_per_round >= n_threads;
    const int n_work = parallel_pairs ? n_threads : 1;

    size_t *off = adi_alloc((size_t)n_images + 1, sizeof *off);
    size_t *kimg = adi_alloc((size_t)n_images, sizeof *kimg);
    zs_select z = {0};
    float *norm = NULL, *tmp = NULL;
    zs_work *work = NULL;
    ad_status st = AD_OK;
    if (!off || !kimg) {
        st = AD_E_NOMEM;
        goto done;
    }
    /* Per-image k from M = the patches of all the other images. */
    size_t heap_total = 0, kmax = 0;
    off[0] = 0;
    for (int i = 0; i < n_images; i++) {
        size_t n = (size_t)feats[i].grid_h * (size_t)feats[i].grid_w;
        off[i + 1] = off[i] + n;
        size_t k = (size_t)(ZS_QUANTILE * (double)(P - n)); /* Python int(): truncation */
        if (k < 1) k = 1;                                    /* design.md: k >= 1 */
        kimg[i] = k;
        if (k > kmax) kmax = k;
        size_t add;
        if (adi_mul_overflow(n, k, &add) || heap_total + add < heap_total) {
            st = adi_fail(AD_E_NOMEM, "ad_zeroshot: selection state too large");
            goto done;
        }
        heap_total += add;
    }

    norm = adi_alloc(P, sizeof *norm);
    z.heap = adi_alloc(heap_total, sizeof *z.heap);
    z.hoff = adi_alloc(P, sizeof *z.hoff);
    z.cnt = adi_calloc(P, sizeof *z.cnt);
    z.cap = adi_alloc(P, sizeof *z.cap);
    z.thr = adi_alloc(P, sizeof *z.thr);
    tmp = adi_alloc((size_t)n_threads * kmax, sizeof *tmp);
    work = adi_calloc((size_t)n_work, sizeof *work);
    if (!norm || !z.heap || !z.hoff || !z.cnt || !z.cap || !z.thr || !tmp || !work) {
        st = AD_E_NOMEM;
        goto done;
    }
    for (int t = 0; t < n_work; t++) {
        work[t].A = adi_alloc((size_t)ZS_TILE * (size_t)dim, sizeof(float));
        work[t].B = adi_alloc((size_t)ZS_TILE * (size_t)dim, sizeof(float));
        work[t].S = adi_alloc((size_t)ZS_SUB * ZS_TILE, sizeof(float));
        if (!work[t].A || !work[t].B || !work[t].S) {
            st = AD_E_NOMEM;
            goto done;
        }
    }

    /* Norms in double, then float32; a non-finite feature would poison every comparison, so it
     * is refused here. */
    int bad_image = -1;
    for (int i = 0; i < n_images; i++) {
        const uint8_t *keep = keeps ? keeps[i] : NULL;
        const int n = (int)(off[i + 1] - off[i]);
        const float *x0 = feats[i].patch;
        int bad = 0;
#pragma omp parallel for schedule(static) num_threads(n_threads) reduction(| : bad)
        for (int r = 0; r < n; r++) {
            const float *x = x0 + (size_t)r * (size_t)dim;
            double s2 = 0;
            for (int d = 0; d < dim; d++) s2 += (double)x[d] * (double)x[d];
            if (!isfinite(s2)) bad = 1;
            float nr = (float)sqrt(s2);
            size_t g = off[i] + (size_t)r;
            norm[g] = nr > ZS_NORM_EPS ? nr : ZS_NORM_EPS;
            z.hoff[g] = 0;
            z.cap[g] = (uint32_t)kimg[i];
            /* a masked-out patch is still a reference for the others but needs no score */
            z.thr[g] = (keep && !keep[r]) ? INFINITY : -INFINITY;
        }
        if (bad && bad_image < 0) bad_image = i;
    }
    if (bad_image >= 0) {
        st = adi_fail(AD_E_ARG, "ad_zeroshot: image %d: non-finite feature values", bad_image);
        goto done;
    }
    for (size_t g = 0, h = 0; g < P; g++) {
        z.hoff[g] = h;
        h += z.cap[g];
    }

    zs_input in = {feats, off, norm, dim};
    const int n_rounds = n_images - 1 + (n_images & 1);
    const int slots = (n_images + 1) / 2;
    if (parallel_pairs) {
#pragma omp parallel num_threads(n_threads)
        {
            adi_blas_serial();
            zs_work *w = &work[omp_get_thread_num()];
            for (int r = 0; r < n_rounds; r++) {
                /* the pairs of a round share no image: no two threads touch one heap */
#pragma omp for schedule(dynamic, 1)
                for (int m = 0; m < slots; m++) {
                    int a, b;
                    zs_round_pair(n_images, r, m, &a, &b);
                    if (a >= 0) zs_pair(&z, &in, w, a, b, 1);
                }
            }
        }
    } else {
        /* one pair at a time; with one thread the whole loop is a team of one so that its GEMMs
         * run BLAS single-threaded too */
#pragma omp parallel num_threads(1)
        {
            if (n_threads == 1) adi_blas_serial();
            for (int r = 0; r < n_rounds; r++) {
                for (int m = 0; m < slots; m++) {
                    int a, b;
                    zs_round_pair(n_images, r, m, &a, &b);
                    if (a >= 0) zs_pair(&z, &in, &work[0], a, b, n_threads);
                }
            }
        }
    }

    /* Scores, straight into the grids (nothing can fail from here on). The kept values are
     * sorted so that the sum has one fixed order. */
    for (int i = 0; i < n_images; i++) {
        const uint8_t *keep = keeps ? keeps[i] : NULL;
        const int n = (int)(off[i + 1] - off[i]);
        double *grid = grids[i];
#pragma omp parallel for schedule(static) num_threads(n_threads)
        for (int r = 0; r < n; r++) {
            if (keep && !keep[r]) {
                grid[r] = 0.0;
                continue;
            }
            size_t g = off[i] + (size_t)r;
            float *t = tmp + (size_t)omp_get_thread_num() * kmax;
            uint32_t k = z.cnt[g]; /* == k of the image: every patch saw M >= k values */
            const float *h = z.heap + z.hoff[g];
            for (uint32_t e = 0; e < k; e++) t[e] = 1.0f - h[e]; /* torch: 1 - mm, float32 */
            qsort(t, k, sizeof *t, cmp_float);
            float kth = t[k - 1];
            double sum = 0;
            uint32_t below = 0;
            while (below < k && t[below] < kth) sum += t[below++];
            /* the original averages the values strictly below the k-th smallest (0/0 when there
             * are none); design.md: the k-th smallest itself then */
            grid[r] = below ? sum / below : (double)kth;
        }
    }

done:
    if (work)
        for (int t = 0; t < n_work; t++) {
            adi_free(work[t].A);
            adi_free(work[t].B);
            adi_free(work[t].S);
        }
    adi_free(work);
    adi_free(norm);
    adi_free(z.heap);
    adi_free(z.hoff);
    adi_free(z.cnt);
    adi_free(z.cap);
    adi_free(z.thr);
    adi_free(tmp);
    adi_free(off);
    adi_free(kimg);
    return st;
}
