/* Exact k-nearest-neighbour search of test patches against the memory bank (docs/design.md,
 * "Nearest neighbour").
 *
 * Distances are computed as faiss IndexFlatL2 does on L2-normalised vectors (the original's
 * default `L2_normalized` metric): d2 = max(0, |q|^2 + |m|^2 - 2 q.m) in float32 with float32
 * norms, and the patch distance is d2 / 2 = 1 - cosine (mean over the k nearest when k > 1).
 *
 * How it runs:
 * - The kept query rows are split into tiles, as many as threads (more when a tile would exceed
 *   QUERY_TILE rows); each thread owns whole tiles and walks the bank in blocks of rows, one
 *   single-threaded cblas_sgemm (tile x block inner products) per block, then a scan that keeps
 *   each query's k smallest distances. Every output is computed by one thread, over the blocks
 *   in bank order, so the result does not depend on scheduling.
 * - Memory besides the caller's data: the normalised queries and one tile x block float buffer
 *   per thread (about SIM_FLOATS floats), never the whole Q x M matrix.
 * - The threads are the caller's count, in the library's own OpenMP region, each calling BLAS
 *   single-threaded (adi_blas_serial): no process-wide setting is read back or changed. */
#include "detect/detect.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KNN_X86 1
#endif

/* Largest query tile per GEMM call and the target size of one tile x block product (floats):
 * 1M floats (4 MB) per thread keeps the scan close to the cache while each GEMM call is large
 * enough to run near peak. */
#define QUERY_TILE 1024
#define SIM_FLOATS (1u << 20)
#define MIN_BLOCK 256
#define MAX_BLOCK 65536

typedef struct {
    size_t s, e; /* bank rows [s, e) that may be searched */
} row_run;

/* Running k smallest distances of one query, ascending. */
static inline void topk_insert(float *top, int k, float d)
{
    int i = k - 1;
    while (i > 0 && top[i - 1] > d) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = d;
}

/* Distances of one query (squared norm qn) to bank rows: ip[c] are inner products, mn[c] the
 * rows' squared norms, for c in [0, n). */
static void scan_portable(float qn, const float *ip, const float *mn, size_t n, float *top, int k)
{
    float worst = top[k - 1];
    for (size_t c = 0; c < n; c++) {
        float d = (qn + mn[c]) - 2.0f * ip[c];
        d = d > 0 ? d : 0.0f; /* faiss clamps rounding negatives to 0 */
        if (d < worst) {
            topk_insert(top, k, d);
            worst = top[k - 1];
        }
    }
}

#ifdef KNN_X86
/* Same arithmetic as scan_portable (no fused multiply-add, same clamp), eight columns at a time;
 * only candidates below the current k-th distance leave the vector path. */
__attribute__((target("avx2,fma"))) static void scan_avx2(float qn, const float *ip,
                                                          const float *mn, size_t n, float *top,
                                                          int k)
{
    float worst = top[k - 1];
    const __m256 vq = _mm256_set1_ps(qn), two = _mm256_set1_ps(2.0f), zero = _mm256_setzero_ps();
    __m256 vw = _mm256_set1_ps(worst);
    size_t c = 0;
    for (; c + 8 <= n; c += 8) {
        __m256 v = _mm256_sub_ps(_mm256_add_ps(vq, _mm256_loadu_ps(mn + c)),
                                 _mm256_mul_ps(two, _mm256_loadu_ps(ip + c)));
        v = _mm256_max_ps(v, zero); /* v > 0 ? v : 0, as the portable clamp */
        int bits = _mm256_movemask_ps(_mm256_cmp_ps(v, vw, _CMP_LT_OQ));
        if (bits) {
            float lane[8];
            _mm256_storeu_ps(lane, v);
            for (int l = 0; l < 8; l++)
                if (((bits >> l) & 1) && lane[l] < worst) {
                    topk_insert(top, k, lane[l]);
                    worst = top[k - 1];
                }
            vw = _mm256_set1_ps(worst);
        }
    }
    for (; c < n; c++) {
        float d = (qn + mn[c]) - 2.0f * ip[c];
        d = d > 0 ? d : 0.0f;
        if (d < worst) {
            topk_insert(top, k, d);
            worst = top[k - 1];
        }
    }
}
#endif

typedef void (*scan_fn)(float, const float *, const float *, size_t, float *, int);

static scan_fn pick_scan(void)
{
#ifdef KNN_X86
    if (adi_cpu_has_avx2_fma()) return scan_avx2;
#endif
    return scan_portable;
}

void dt_knn_scan(int avx2, float qn, const float *ip, const float *mn, size_t n, float *top, int k)
{
#ifdef KNN_X86
    if (avx2 && adi_cpu_has_avx2_fma()) {
        scan_avx2(qn, ip, mn, n, top, k);
        return;
    }
#endif
    (void)avx2;
    scan_portable(qn, ip, mn, n, top, k);
}

ad_status dt_bank_search(const ad_bank *b, int n_threads, const ad_features *f,
                         const uint8_t *keep, int exclude_image_id, size_t block_rows,
                         double *grid)
{
    if (!b) return adi_fail(AD_E_ARG, "bank query: NULL bank");
    if (!f || !f->patch || !grid)
        return adi_fail(AD_E_ARG, "bank query: NULL %s", !grid ? "grid" : "features");
    if (f->grid_h <= 0 || f->grid_w <= 0 || (size_t)f->grid_h * (size_t)f->grid_w > INT32_MAX)
        return adi_fail(AD_E_ARG, "bank query: bad patch grid %d x %d", f->grid_h, f->grid_w);
    if (b->rows == 0) return adi_fail(AD_E_ARG, "bank query: the bank is empty");
    if (f->dim != b->dim)
        return adi_fail(AD_E_MISMATCH, "bank query: features have width %d, the bank %d", f->dim,
                       b->dim);
    const int k = b->p.knn_k;
    const size_t n = (size_t)f->grid_h * (size_t)f->grid_w, d = (size_t)b->dim;

    /* Searchable runs of rows (all rows, or those of every other image). */
    size_t n_runs = 0, usable = 0;
    row_run *runs = NULL;
    {
        size_t cap = 1;
        if (exclude_image_id >= 0)
            for (size_t j = 1; j < b->rows; j++)
                cap += b->row_image[j] != b->row_image[j - 1];
        runs = adi_malloc(cap * sizeof *runs);
        if (!runs) return adi_fail(AD_E_NOMEM, "bank query: out of memory");
        if (exclude_image_id < 0) {
            runs[n_runs++] = (row_run){0, b->rows};
        } else {
            size_t j = 0;
            while (j < b->rows) {
                size_t e = j + 1;
                while (e < b->rows && b->row_image[e] == b->row_image[j]) e++;
                if (b->row_image[j] != exclude_image_id) {
                    if (n_runs && runs[n_runs - 1].e == j) runs[n_runs - 1].e = e;
                    else runs[n_runs++] = (row_run){j, e};
                }
                j = e;
            }
        }
        for (size_t r = 0; r < n_runs; r++) usable += runs[r].e - runs[r].s;
    }
    if (usable < (size_t)k) {
        adi_free(runs);
        return adi_fail(AD_E_ARG, "bank query: %zu usable bank rows, fewer than k = %d", usable, k);
    }

    size_t q = 0;
    for (size_t i = 0; i < n; i++) q += !keep || keep[i];
    if (q == 0) {
        adi_free(runs);
        for (size_t i = 0; i < n; i++) grid[i] = 0;
        return AD_OK;
    }

    int nt = n_threads > 0 ? n_threads : omp_get_max_threads();
    if (nt < 1) nt = 1;
    size_t n_tiles = (q + QUERY_TILE * (size_t)nt - 1) / (QUERY_TILE * (size_t)nt) * (size_t)nt;
    if (n_tiles > q) n_tiles = q;
    size_t qt = (q + n_tiles - 1) / n_tiles;
    n_tiles = (q + qt - 1) / qt;
    if ((size_t)nt > n_tiles) nt = (int)n_tiles;
    size_t blk = block_rows;
    if (blk == 0) {
        blk = SIM_FLOATS / qt;
        blk = blk < MIN_BLOCK ? MIN_BLOCK : blk > MAX_BLOCK ? MAX_BLOCK : blk;
        blk = (blk + 15) & ~(size_t)15;
    }
    if (blk > b->rows) blk = b->rows;

    float *qf = adi_alloc(q * d, sizeof *qf);
    float *qn = adi_alloc(q, sizeof *qn);
    size_t *qcell = adi_alloc(q, sizeof *qcell);
    float *top = adi_alloc(q * (size_t)k, sizeof *top);
    float *sim = adi_alloc((size_t)nt * qt * blk, sizeof *sim);
    ad_status st = AD_OK;
    if (!qf || !qn || !qcell || !top || !sim) {
        st = adi_fail(AD_E_NOMEM, "bank query: out of memory (%zu queries, block %zu)", q, blk);
        goto out;
    }
    for (size_t i = 0, r = 0; i < n; i++) {
        if (keep && !keep[i]) continue;
        memcpy(qf + r * d, f->patch + i * d, d * sizeof *qf);
        qn[r] = dt_normalize_row(qf + r * d, (int)d);
        if (!isfinite(qn[r])) { /* NaN or inf in the query: no distance would be meaningful */
            st = adi_fail(AD_E_ARG, "bank query: non-finite feature value (patch %zu)", i);
            goto out; /* grid untouched: it is written only below */
        }
        qcell[r++] = i;
    }
    for (size_t i = 0; i < q * (size_t)k; i++) top[i] = INFINITY;

    scan_fn scan = pick_scan();
#pragma omp parallel num_threads(nt)
    {
        adi_blas_serial();
#pragma omp for schedule(static, 1)
        for (size_t t = 0; t < n_tiles; t++) {
            const size_t r0 = t * qt, r1 = r0 + qt < q ? r0 + qt : q, nr = r1 - r0;
            float *c = sim + (size_t)omp_get_thread_num() * qt * blk;
            size_t run = 0;
            for (size_t j0 = 0; j0 < b->rows; j0 += blk) {
                const size_t j1 = j0 + blk < b->rows ? j0 + blk : b->rows;
                while (run < n_runs && runs[run].e <= j0) run++;
                if (run == n_runs || runs[run].s >= j1) continue; /* block fully excluded */
                const size_t nb = j1 - j0;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)nb, (int)d, 1.0f,
                            qf + r0 * d, (int)d, b->feat + j0 * d, (int)d, 0.0f, c, (int)nb);
                for (size_t i = 0; i < nr; i++) {
                    for (size_t rr = run; rr < n_runs && runs[rr].s < j1; rr++) {
                        size_t s = runs[rr].s > j0 ? runs[rr].s : j0;
                        size_t e = runs[rr].e < j1 ? runs[rr].e : j1;
                        scan(qn[r0 + i], c + i * nb + (s - j0), b->norm2 + s, e - s,
                             top + (r0 + i) * (size_t)k, k);
                    }
                }
            }
        }
    }

    for (size_t i = 0; i < n; i++) grid[i] = 0;
    for (size_t r = 0; r < q; r++) {
        const float *tp = top + r * (size_t)k;
        float v;
        if (k == 1) {
            v = tp[0];
        } else { /* numpy mean over the k ascending distances, in float32 */
            float s = 0;
            for (int j = 0; j < k; j++) s += tp[j];
            v = s / (float)k;
        }
        grid[qcell[r]] = (double)(v / 2.0f);
    }
out:
    adi_free(runs);
    adi_free(qf);
    adi_free(qn);
    adi_free(qcell);
    adi_free(top);
    adi_free(sim);
    return st;
}

ad_status ad_bank_query(const ad_bank *b, ad_context *ctx, const ad_features *f,
                        const uint8_t *keep, int exclude_image_id, double *grid)
{
    int nt = ctx ? ad_context_threads(ctx) : 0;
    return dt_bank_search_probes(b, nt, f, keep, exclude_image_id, 0, grid); /* index if any */
}
