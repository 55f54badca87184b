/* Approximate nearest-neighbour search: an inverted-file (IVF) index over the bank rows
 * (docs/banks.md "Approximate search").
 *
 * Build: spherical k-means (the rows are unit vectors: nearest centroid = largest inner
 * product, centroids renormalised after each update) over a seeded sample of at most
 * DT_IVF_TRAIN_PER_LIST rows per list, initialised with the first `lists` rows of the sample,
 * a fixed number of iterations; then every row goes to its nearest centroid. The bank keeps
 * the rows in their own order; the index holds a copy grouped by list, so that one list is one
 * contiguous GEMM operand.
 *
 * Query: the queries' inner products with the centroids (GEMM), each query's `probes` nearest
 * non-empty lists; the queries are then grouped by list and every list with queries is one
 * GEMM (its queries x its rows) and the same distance scan as the exact search, into one
 * top-k slot per (query, probed list); each query's k smallest over its slots give its
 * distances. A patch distance is the exact 1 - cosine to the best row among the probed lists
 * (so >= the exact search's), computed with the exact search's arithmetic.
 *
 * Determinism: every GEMM covers a fixed block of rows or one list (never a thread-dependent
 * share), ties go to the lowest index, k-means sums its members in sample order in double, and
 * each output is written by one task: the index and the results are the same for every thread
 * count. Threads: the library's own OpenMP regions, BLAS single-threaded inside (core.h). */
#include "detect/detect.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define IVF_X86 1
#endif

#define ASSIGN_BLOCK 512   /* rows per assignment GEMM (fixed: bits independent of threads) */
#define LIST_CHUNK 4096    /* centroids per assignment GEMM */
#define SIM_FLOATS (1u << 20)
#define COARSE_TILE 256

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int resolve_threads(int n)
{
    int nt = n > 0 ? n : omp_get_max_threads();
    return nt < 1 ? 1 : nt;
}

void dt_ivf_free(dt_ivf *ix)
{
    if (!ix) return;
    adi_free(ix->centroids);
    adi_free(ix->off);
    adi_free(ix->feat);
    adi_free(ix->norm2);
    adi_free(ix->orig);
    adi_free(ix);
}

int dt_ivf_auto_lists(size_t rows)
{
    /* about 2 sqrt(rows), a power of two, at most rows / 32 (lists of >= 32 rows), >= 1 */
    double t = 2.0 * sqrt((double)rows);
    size_t l = 1;
    while ((double)(l * 2) <= t * 1.4142135623730951 && l * 2 <= DT_IVF_MAX_LISTS) l *= 2;
    while (l > 1 && l * 32 > rows) l /= 2;
    return (int)l;
}

int dt_ivf_auto_probes(int lists)
{
    int p = lists / 32;
    if (p < 8) p = 8;
    return p > lists ? lists : p;
}

/* out[i] = the nearest centroid of row idx[i] (idx NULL: row i) of x: the largest inner
 * product, the lowest index on ties. */
static ad_status assign_rows(const float *x, const size_t *idx, size_t n, int d, const float *cent,
                             int lists, int nt, int32_t *out)
{
    if (n == 0) return AD_OK;
    const size_t nblk = (n + ASSIGN_BLOCK - 1) / ASSIGN_BLOCK;
    const int lc = lists < LIST_CHUNK ? lists : LIST_CHUNK;
    if ((size_t)nt > nblk) nt = (int)nblk;
    float *buf = adi_alloc((size_t)nt * ASSIGN_BLOCK * ((size_t)lc + (idx ? (size_t)d : 0) + 1),
                           sizeof *buf);
    if (!buf) return adi_fail(AD_E_NOMEM, "index: out of memory");
#pragma omp parallel num_threads(nt)
    {
        adi_blas_serial();
        float *c = buf + (size_t)omp_get_thread_num() * ASSIGN_BLOCK * ((size_t)lc + (idx ? (size_t)d : 0) + 1);
        float *best = c + (size_t)ASSIGN_BLOCK * lc;
        float *a = best + ASSIGN_BLOCK;
#pragma omp for schedule(dynamic, 1)
        for (size_t k = 0; k < nblk; k++) {
            const size_t r0 = k * ASSIGN_BLOCK, m = n - r0 < ASSIGN_BLOCK ? n - r0 : ASSIGN_BLOCK;
            const float *rows = x + r0 * (size_t)d;
            if (idx) {
                for (size_t i = 0; i < m; i++)
                    memcpy(a + i * (size_t)d, x + idx[r0 + i] * (size_t)d, (size_t)d * sizeof *a);
                rows = a;
            }
            for (size_t i = 0; i < m; i++) {
                best[i] = -INFINITY;
                out[r0 + i] = 0;
            }
            for (int c0 = 0; c0 < lists; c0 += lc) {
                const int nc = lists - c0 < lc ? lists - c0 : lc;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, nc, d, 1.0f, rows, d,
                            cent + (size_t)c0 * d, d, 0.0f, c, nc);
                for (size_t i = 0; i < m; i++) {
                    const float *ci = c + i * (size_t)nc;
                    float bv = best[i];
                    int32_t bi = out[r0 + i];
                    for (int j = 0; j < nc; j++)
                        if (ci[j] > bv) {
                            bv = ci[j];
                            bi = c0 + j;
                        }
                    best[i] = bv;
                    out[r0 + i] = bi;
                }
            }
        }
    }
    adi_free(buf);
    return AD_OK;
}

/* The list-ordered copy of the rows for the assignment `lst` (rows entries), into fresh arrays
 * of ix (the old ones freed only on success). */
static ad_status build_copy(const ad_bank *b, dt_ivf *ix, const int32_t *lst)
{
    const size_t n = b->rows, d = (size_t)b->dim;
    const int L = ix->lists;
    size_t *off = adi_calloc((size_t)L + 1, sizeof *off);
    size_t *pos = adi_alloc((size_t)L, sizeof *pos);
    float *feat = adi_alloc(n * d, sizeof *feat);
    float *nrm = adi_alloc(n, sizeof *nrm);
    int32_t *orig = adi_alloc(n, sizeof *orig);
    if (!off || !pos || !feat || !nrm || !orig) {
        adi_free(off);
        adi_free(pos);
        adi_free(feat);
        adi_free(nrm);
        adi_free(orig);
        return adi_fail(AD_E_NOMEM, "index: out of memory for a copy of %zu rows", n);
    }
    for (size_t j = 0; j < n; j++) off[lst[j] + 1]++;
    for (int l = 0; l < L; l++) off[l + 1] += off[l];
    memcpy(pos, off, (size_t)L * sizeof *pos);
    for (size_t j = 0; j < n; j++) {
        size_t w = pos[lst[j]]++;
        memcpy(feat + w * d, b->feat + j * d, d * sizeof *feat);
        nrm[w] = b->norm2[j];
        orig[w] = (int32_t)j;
    }
    adi_free(pos);
    adi_free(ix->off);
    adi_free(ix->feat);
    adi_free(ix->norm2);
    adi_free(ix->orig);
    ix->off = off;
    ix->feat = feat;
    ix->norm2 = nrm;
    ix->orig = orig;
    ix->n = n;
    return AD_OK;
}

ad_status dt_ivf_sync(ad_bank *b, int n_threads)
{
    dt_ivf *ix = b->ivf;
    if (!ix) return AD_OK;
    if (b->rows > (size_t)INT32_MAX) return adi_fail(AD_E_ARG, "index: more than 2^31 rows");
    const int nt = resolve_threads(n_threads);
    size_t todo = 0;
    for (size_t j = 0; j < b->rows; j++) todo += b->row_list[j] < 0;
    if (todo) {
        size_t *idx = adi_alloc(todo, sizeof *idx);
        int32_t *as = adi_alloc(todo, sizeof *as);
        ad_status st = idx && as ? AD_OK : adi_fail(AD_E_NOMEM, "index: out of memory");
        if (st == AD_OK) {
            for (size_t j = 0, w = 0; j < b->rows; j++)
                if (b->row_list[j] < 0) idx[w++] = j;
            st = assign_rows(b->feat, idx, todo, b->dim, ix->centroids, ix->lists, nt, as);
        }
        if (st == AD_OK)
            for (size_t i = 0; i < todo; i++) b->row_list[idx[i]] = as[i];
        adi_free(idx);
        adi_free(as);
        if (st != AD_OK) return st;
    }
    return build_copy(b, ix, b->row_list);
}

void dt_ivf_truncate(ad_bank *b, size_t rows)
{
    dt_ivf *ix = b->ivf;
    if (!ix || !ix->off) return;
    const size_t d = (size_t)b->dim;
    size_t w = 0, next = ix->off[0];
    for (int l = 0; l < ix->lists; l++) {
        const size_t s = next, e = ix->off[l + 1];
        next = e;
        ix->off[l] = w;
        for (size_t j = s; j < e; j++) {
            if ((size_t)ix->orig[j] >= rows) continue;
            if (w != j) {
                memmove(ix->feat + w * d, ix->feat + j * d, d * sizeof(float));
                ix->norm2[w] = ix->norm2[j];
                ix->orig[w] = ix->orig[j];
            }
            w++;
        }
    }
    ix->off[ix->lists] = w;
    ix->n = w;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

ad_status dt_ivf_build(ad_bank *b, int n_threads, int lists, int probes, int iterations)
{
    if (!b) return adi_fail(AD_E_ARG, "index: NULL bank");
    const size_t n = b->rows;
    if (n == 0 || b->dim <= 0) return adi_fail(AD_E_ARG, "index: the bank is empty");
    if (n > (size_t)INT32_MAX) return adi_fail(AD_E_ARG, "index: more than 2^31 rows");
    if (lists == 0) lists = dt_ivf_auto_lists(n);
    if (lists < 1 || (size_t)lists > n || lists > DT_IVF_MAX_LISTS)
        return adi_fail(AD_E_ARG, "index: %d lists for a bank of %zu rows (expected 1 .. %zu)", lists,
                        n, n < DT_IVF_MAX_LISTS ? n : (size_t)DT_IVF_MAX_LISTS);
    if (probes == 0) probes = dt_ivf_auto_probes(lists);
    if (probes < 1 || probes > lists)
        return adi_fail(AD_E_ARG, "index: %d probes for %d lists (expected 1 .. %d)", probes, lists,
                        lists);
    if (iterations == 0) iterations = DT_IVF_ITERATIONS;
    if (iterations < 1 || iterations > 1000)
        return adi_fail(AD_E_ARG, "index: %d k-means iterations (expected 1 .. 1000)", iterations);
    const int nt = resolve_threads(n_threads);
    const size_t d = (size_t)b->dim, L = (size_t)lists;
    size_t ntrain = L * DT_IVF_TRAIN_PER_LIST;
    if (ntrain > n) ntrain = n;

    dt_ivf *ix = adi_calloc(1, sizeof *ix);
    size_t *perm = adi_alloc(n, sizeof *perm);
    int32_t *as = adi_alloc(ntrain > n ? ntrain : n, sizeof *as);
    size_t *coff = adi_alloc(L + 1, sizeof *coff);
    size_t *mem = adi_alloc(ntrain, sizeof *mem);
    double *acc = adi_alloc((size_t)nt * d, sizeof *acc);
    int32_t *lst = NULL;
    ad_status st = AD_OK;
    if (!ix || !perm || !as || !coff || !mem || !acc ||
        !(ix->centroids = adi_alloc(L * d, sizeof *ix->centroids))) {
        st = adi_fail(AD_E_NOMEM, "index: out of memory");
        goto out;
    }
    ix->lists = lists;
    ix->probes = probes;
    ix->iterations = iterations;
    /* the training sample: the first ntrain of a seeded shuffle; its first `lists` rows are the
     * initial centroids */
    for (size_t i = 0; i < n; i++) perm[i] = i;
    uint64_t seed = DT_IVF_SEED;
    for (size_t i = 0; i < ntrain && i + 1 < n; i++) {
        size_t j = i + (size_t)(splitmix64(&seed) % (uint64_t)(n - i));
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t c = 0; c < L; c++) {
        float *dst = ix->centroids + c * d;
        memcpy(dst, b->feat + perm[c] * d, d * sizeof *dst);
        dt_normalize_row(dst, (int)d);
    }
    qsort(perm, ntrain, sizeof *perm, cmp_size); /* sample in bank order */
    for (int it = 0; it < iterations; it++) {
        st = assign_rows(b->feat, perm, ntrain, (int)d, ix->centroids, lists, nt, as);
        if (st != AD_OK) goto out;
        memset(coff, 0, (L + 1) * sizeof *coff);
        for (size_t i = 0; i < ntrain; i++) coff[as[i] + 1]++;
        for (size_t c = 0; c < L; c++) coff[c + 1] += coff[c];
        for (size_t i = 0, w; i < ntrain; i++) { /* members in sample order (coff shifted back) */
            w = coff[as[i]]++;
            mem[w] = perm[i];
        }
        for (size_t c = L; c > 0; c--) coff[c] = coff[c - 1];
        coff[0] = 0;
#pragma omp parallel num_threads(nt)
        {
            double *sum = acc + (size_t)omp_get_thread_num() * d;
#pragma omp for schedule(dynamic, 16)
            for (size_t c = 0; c < L; c++) {
                if (coff[c + 1] == coff[c]) continue; /* empty: the centroid stays */
                for (size_t j = 0; j < d; j++) sum[j] = 0;
                for (size_t m = coff[c]; m < coff[c + 1]; m++) {
                    const float *x = b->feat + mem[m] * d;
                    for (size_t j = 0; j < d; j++) sum[j] += x[j];
                }
                double s2 = 0;
                for (size_t j = 0; j < d; j++) s2 += sum[j] * sum[j];
                if (!(s2 > 0)) continue;
                const double inv = 1.0 / sqrt(s2);
                float *cc = ix->centroids + c * d;
                for (size_t j = 0; j < d; j++) cc[j] = (float)(sum[j] * inv);
            }
        }
    }
    /* every row to its nearest centroid, then the copy grouped by list */
    lst = adi_alloc(n, sizeof *lst);
    if (!lst) {
        st = adi_fail(AD_E_NOMEM, "index: out of memory");
        goto out;
    }
    st = assign_rows(b->feat, NULL, n, (int)d, ix->centroids, lists, nt, lst);
    if (st == AD_OK) st = build_copy(b, ix, lst);
    if (st == AD_OK) {
        memcpy(b->row_list, lst, n * sizeof *lst);
        dt_ivf_free(b->ivf);
        b->ivf = ix;
        ix = NULL;
    }
out:
    dt_ivf_free(ix);
    adi_free(perm);
    adi_free(as);
    adi_free(coff);
    adi_free(mem);
    adi_free(acc);
    adi_free(lst);
    return st;
}

/* Inner products of m queries (rows of a) with n list rows (rows of b), both d wide, row-major:
 * c[i * n + j]. The lists are small (tens to hundreds of rows, a few to tens of queries each),
 * where a BLAS call costs more in packing and set-up than in arithmetic; with AVX2 + FMA and d a
 * multiple of 8 a register-blocked kernel (4 queries x 2 rows, 8 lanes per product summed in a
 * fixed order) computes them directly. Each product depends only on its two vectors, not on
 * the grouping: a patch's distances are the same whatever other queries share its lists. */
#ifdef IVF_X86
__attribute__((target("avx2,fma"))) static inline float hsum8(__m256 v)
{
    float l[8];
    _mm256_storeu_ps(l, v);
    return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
}

/* c[0..3][0..2] = a[0..3] . b[0..2]: twelve accumulators in registers. */
__attribute__((target("avx2,fma"))) static void ipk_4x3(const float *const *a, const float *b,
                                                        int d, float *c, size_t ldc)
{
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
    const float *b0 = b, *b1 = b + d, *b2 = b + 2 * (size_t)d;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    __m256 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    for (int k = 0; k < d; k += 8) {
        const __m256 x0 = _mm256_loadu_ps(b0 + k), x1 = _mm256_loadu_ps(b1 + k),
                     x2 = _mm256_loadu_ps(b2 + k);
        __m256 q = _mm256_loadu_ps(a0 + k);
        c00 = _mm256_fmadd_ps(q, x0, c00);
        c01 = _mm256_fmadd_ps(q, x1, c01);
        c02 = _mm256_fmadd_ps(q, x2, c02);
        q = _mm256_loadu_ps(a1 + k);
        c10 = _mm256_fmadd_ps(q, x0, c10);
        c11 = _mm256_fmadd_ps(q, x1, c11);
        c12 = _mm256_fmadd_ps(q, x2, c12);
        q = _mm256_loadu_ps(a2 + k);
        c20 = _mm256_fmadd_ps(q, x0, c20);
        c21 = _mm256_fmadd_ps(q, x1, c21);
        c22 = _mm256_fmadd_ps(q, x2, c22);
        q = _mm256_loadu_ps(a3 + k);
        c30 = _mm256_fmadd_ps(q, x0, c30);
        c31 = _mm256_fmadd_ps(q, x1, c31);
        c32 = _mm256_fmadd_ps(q, x2, c32);
    }
    c[0] = hsum8(c00), c[1] = hsum8(c01), c[2] = hsum8(c02);
    c += ldc;
    c[0] = hsum8(c10), c[1] = hsum8(c11), c[2] = hsum8(c12);
    c += ldc;
    c[0] = hsum8(c20), c[1] = hsum8(c21), c[2] = hsum8(c22);
    c += ldc;
    c[0] = hsum8(c30), c[1] = hsum8(c31), c[2] = hsum8(c32);
}

/* One query, three rows: the same lane order and arithmetic as ipk_4x3's products. */
__attribute__((target("avx2,fma"))) static void ipk_1x3(const float *a, const float *b, int d,
                                                        float *c)
{
    const float *b0 = b, *b1 = b + d, *b2 = b + 2 * (size_t)d;
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0;
    for (int k = 0; k < d; k += 8) {
        const __m256 q = _mm256_loadu_ps(a + k);
        c0 = _mm256_fmadd_ps(q, _mm256_loadu_ps(b0 + k), c0);
        c1 = _mm256_fmadd_ps(q, _mm256_loadu_ps(b1 + k), c1);
        c2 = _mm256_fmadd_ps(q, _mm256_loadu_ps(b2 + k), c2);
    }
    c[0] = hsum8(c0), c[1] = hsum8(c1), c[2] = hsum8(c2);
}

/* One product, the same lane order and arithmetic as each of ipk_4x3's. */
__attribute__((target("avx2,fma"))) static float ipk_1x1(const float *a, const float *b, int d)
{
    __m256 acc = _mm256_setzero_ps();
    for (int k = 0; k < d; k += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc);
    return hsum8(acc);
}

/* a[i]: the m query rows (pointers: no gathering copy). The rows are taken in chunks of about
 * 128 KB, each swept by every query while it stays in the L2 cache. */
#define IP_CHUNK_BYTES (128u << 10)
static void ip_avx2(const float *const *a, size_t m, const float *b, size_t n, int d, float *c)
{
    const size_t m4 = m & ~(size_t)3, n3 = n - n % 3;
    size_t chunk = IP_CHUNK_BYTES / (sizeof(float) * (size_t)d) / 3 * 3;
    if (chunk < 3) chunk = 3;
    for (size_t j0 = 0; j0 < n3; j0 += chunk) {
        const size_t j1 = j0 + chunk < n3 ? j0 + chunk : n3;
        for (size_t i = 0; i < m4; i += 4)
            for (size_t j = j0; j < j1; j += 3) ipk_4x3(a + i, b + j * d, d, c + i * n + j, n);
        for (size_t i = m4; i < m; i++)
            for (size_t j = j0; j < j1; j += 3) ipk_1x3(a[i], b + j * d, d, c + i * n + j);
    }
    for (size_t i = 0; i < m; i++)
        for (size_t j = n3; j < n; j++) c[i * n + j] = ipk_1x1(a[i], b + j * d, d);
}
#endif

/* 1: the AVX2 kernel above, 0: one single-threaded sgemm per list block. */
static int use_ip_kernel(int d)
{
#ifdef IVF_X86
    return d % 8 == 0 && adi_cpu_has_avx2_fma();
#else
    (void)d;
    return 0;
#endif
}

/* Running k smallest distances, ascending (as knn.c). */
static inline void topk_insert(float *top, int k, float d)
{
    int i = k - 1;
    while (i > 0 && top[i - 1] > d) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = d;
}

ad_status dt_bank_search_probes(const ad_bank *b, int n_threads, const ad_features *f,
                                const uint8_t *keep, int exclude_image_id, int probes,
                                double *grid)
{
    return dt_ivf_search(b, n_threads, f, keep, exclude_image_id, probes, 0, grid);
}

ad_status dt_ivf_search(const ad_bank *b, int n_threads, const ad_features *f, const uint8_t *keep,
                        int exclude_image_id, int probes, int force, double *grid)
{
    if (!b || !b->ivf || probes < 0) return dt_bank_search(b, n_threads, f, keep, exclude_image_id, 0, grid);
    /* bad arguments: the exact search's checks and messages */
    if (!f || !f->patch || !grid || f->grid_h <= 0 || f->grid_w <= 0 ||
        (size_t)f->grid_h * (size_t)f->grid_w > INT32_MAX || b->rows == 0 || f->dim != b->dim)
        return dt_bank_search(b, n_threads, f, keep, exclude_image_id, 0, grid);
    const dt_ivf *ix = b->ivf;
    if (ix->n != b->rows)
        return adi_fail(AD_E_INTERNAL, "bank query: the index holds %zu of the %zu rows", ix->n,
                        b->rows);
    const int k = b->p.knn_k, L = ix->lists;
    const size_t n = (size_t)f->grid_h * (size_t)f->grid_w, d = (size_t)b->dim;
    if (exclude_image_id >= 0) {
        size_t usable = 0;
        for (size_t j = 0; j < b->rows && usable < (size_t)k; j++) usable += b->row_image[j] != exclude_image_id;
        if (usable < (size_t)k) return dt_bank_search(b, n_threads, f, keep, exclude_image_id, 0, grid);
    }
    size_t q = 0;
    for (size_t i = 0; i < n; i++) q += !keep || keep[i];
    if (q == 0) {
        for (size_t i = 0; i < n; i++) grid[i] = 0;
        return AD_OK;
    }
    int ne = 0; /* non-empty lists */
    for (int l = 0; l < L; l++) ne += ix->off[l + 1] > ix->off[l];
    int P = probes == 0 ? ix->probes : probes;
    if (P > ne) P = ne;
    /* every list probed: that is the exact search, whose GEMM shapes (and so the last bits of
     * the inner products) are those of a bank without index */
    if (P == ne && !force) return dt_bank_search(b, n_threads, f, keep, exclude_image_id, 0, grid);
    int nt = resolve_threads(n_threads);

    const size_t ct = SIM_FLOATS / (size_t)L < 1 ? 1
                      : SIM_FLOATS / (size_t)L > COARSE_TILE ? COARSE_TILE
                                                             : SIM_FLOATS / (size_t)L;
    const size_t n_ct = (q + ct - 1) / ct;
    float *qf = adi_alloc(q * d, sizeof *qf);
    float *qn = adi_alloc(q, sizeof *qn);
    size_t *qcell = adi_alloc(q, sizeof *qcell);
    int32_t *probe = adi_alloc(q * (size_t)P, sizeof *probe);
    float *top = adi_alloc(q * (size_t)P * (size_t)k, sizeof *top);
    size_t *loff = adi_calloc((size_t)L + 1, sizeof *loff);
    size_t *lpos = adi_alloc((size_t)L, sizeof *lpos);
    size_t *ent = adi_alloc(q * (size_t)P, sizeof *ent);
    float *mn_x = exclude_image_id >= 0 ? adi_alloc(b->rows, sizeof *mn_x) : NULL;
    const size_t sim = q > SIM_FLOATS ? q : SIM_FLOATS;
    size_t per_t = (ct * (size_t)L + (size_t)P) > (sim + q * d) ? ct * (size_t)L + (size_t)P
                                                                : sim + q * d;
    per_t += per_t & 1; /* each thread's part starts 8-byte aligned (it holds pointers) */
    float *tbuf = adi_alloc((size_t)nt * per_t, sizeof *tbuf);
    double *xgrid = NULL;
    uint8_t *xkeep = NULL;
    ad_status st = AD_OK;
    if (!qf || !qn || !qcell || !probe || !top || !loff || !lpos || !ent || !tbuf ||
        (exclude_image_id >= 0 && !mn_x)) {
        st = adi_fail(AD_E_NOMEM, "bank query: out of memory (%zu queries, %d probes)", q, P);
        goto out;
    }
    for (size_t i = 0, r = 0; i < n; i++) {
        if (keep && !keep[i]) continue;
        memcpy(qf + r * d, f->patch + i * d, d * sizeof *qf);
        qn[r] = dt_normalize_row(qf + r * d, (int)d);
        if (!isfinite(qn[r])) {
            st = adi_fail(AD_E_ARG, "bank query: non-finite feature value (patch %zu)", i);
            goto out;
        }
        qcell[r++] = i;
    }
    const float *mn = ix->norm2;
    if (mn_x) { /* the excluded image's rows never match: +inf squared norm */
        for (size_t j = 0; j < b->rows; j++)
            mn_x[j] = b->row_image[ix->orig[j]] == exclude_image_id ? INFINITY : ix->norm2[j];
        mn = mn_x;
    }
    for (size_t i = 0; i < q * (size_t)P * (size_t)k; i++) top[i] = INFINITY;

    /* 1. each query's P nearest non-empty lists (largest inner product, lowest index on ties) */
    if ((size_t)nt > n_ct) nt = (int)n_ct;
#pragma omp parallel num_threads(nt)
    {
        adi_blas_serial();
        float *c = tbuf + (size_t)omp_get_thread_num() * per_t;
        float *bv = c + ct * (size_t)L;
#pragma omp for schedule(static, 1)
        for (size_t t = 0; t < n_ct; t++) {
            const size_t r0 = t * ct, m = q - r0 < ct ? q - r0 : ct;
            if (P == ne) { /* every non-empty list: no ranking needed */
                for (size_t i = 0; i < m; i++)
                    for (int l = 0, w = 0; l < L; l++)
                        if (ix->off[l + 1] > ix->off[l]) probe[(r0 + i) * (size_t)P + (size_t)w++] = l;
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, L, (int)d, 1.0f,
                        qf + r0 * d, (int)d, ix->centroids, (int)d, 0.0f, c, L);
            for (size_t i = 0; i < m; i++) {
                const float *ci = c + i * (size_t)L;
                int32_t *pi = probe + (r0 + i) * (size_t)P;
                int cnt = 0;
                for (int l = 0; l < L; l++) {
                    if (ix->off[l + 1] == ix->off[l]) continue;
                    const float v = ci[l];
                    if (cnt == P && !(v > bv[P - 1])) continue;
                    int s = cnt < P ? cnt++ : P - 1;
                    while (s > 0 && bv[s - 1] < v) {
                        bv[s] = bv[s - 1];
                        pi[s] = pi[s - 1];
                        s--;
                    }
                    bv[s] = v;
                    pi[s] = l;
                }
            }
        }
    }

    /* 2. the (query, slot) pairs of every list, in query order */
    for (size_t e = 0; e < q * (size_t)P; e++) loff[probe[e] + 1]++;
    for (int l = 0; l < L; l++) loff[l + 1] += loff[l];
    memcpy(lpos, loff, (size_t)L * sizeof *lpos);
    for (size_t e = 0; e < q * (size_t)P; e++) ent[lpos[probe[e]]++] = e;

    /* 3. one GEMM + scan per probed list (outputs disjoint: any schedule gives the same bits) */
    nt = resolve_threads(n_threads);
    const int kern = use_ip_kernel((int)d);
    (void)kern;
#pragma omp parallel num_threads(nt)
    {
        adi_blas_serial();
        float *a = tbuf + (size_t)omp_get_thread_num() * per_t;
        float *c = a + q * d;
#pragma omp for schedule(dynamic, 1)
        for (int l = 0; l < L; l++) {
            const size_t m = loff[l + 1] - loff[l], s0 = ix->off[l], sz = ix->off[l + 1] - s0;
            if (m == 0 || sz == 0) continue;
            const size_t *el = ent + loff[l];
            const float **ap = (const float **)(void *)a; /* kernel: the query rows in place */
            if (kern)
                for (size_t i = 0; i < m; i++) ap[i] = qf + (el[i] / (size_t)P) * d;
            else
                for (size_t i = 0; i < m; i++)
                    memcpy(a + i * d, qf + (el[i] / (size_t)P) * d, d * sizeof *a);
            size_t blk = SIM_FLOATS / m;
            if (blk < 1) blk = 1;
            if (blk > sz) blk = sz;
            for (size_t j0 = 0; j0 < sz; j0 += blk) {
                const size_t nb = sz - j0 < blk ? sz - j0 : blk;
#ifdef IVF_X86
                if (kern)
                    ip_avx2(ap, m, ix->feat + (s0 + j0) * d, nb, (int)d, c);
                else
#endif
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)nb, (int)d,
                                1.0f, a, (int)d, ix->feat + (s0 + j0) * d, (int)d, 0.0f, c, (int)nb);
                for (size_t i = 0; i < m; i++)
                    dt_knn_scan(1, qn[el[i] / (size_t)P], c + i * nb, mn + s0 + j0, nb,
                                top + el[i] * (size_t)k, k);
            }
        }
    }

    /* 4. each query's k smallest over its slots; too few usable rows probed: exact search */
    size_t n_short = 0;
    for (size_t r = 0; r < q; r++) {
        float *t0 = top + r * (size_t)P * (size_t)k; /* merged into the first slot */
        for (int p = 1; p < P; p++) {
            const float *tp = t0 + (size_t)p * (size_t)k;
            for (int j = 0; j < k && tp[j] < t0[k - 1]; j++) topk_insert(t0, k, tp[j]);
        }
        n_short += !(t0[k - 1] < INFINITY);
    }
    if (n_short) {
        xgrid = adi_alloc(n, sizeof *xgrid);
        xkeep = adi_calloc(n, 1);
        if (!xgrid || !xkeep) {
            st = adi_fail(AD_E_NOMEM, "bank query: out of memory");
            goto out;
        }
        for (size_t r = 0; r < q; r++)
            if (!(top[r * (size_t)P * (size_t)k + (size_t)k - 1] < INFINITY)) xkeep[qcell[r]] = 1;
        st = dt_bank_search(b, n_threads, f, xkeep, exclude_image_id, 0, xgrid);
        if (st != AD_OK) goto out;
    }
    for (size_t i = 0; i < n; i++) grid[i] = 0;
    for (size_t r = 0; r < q; r++) {
        const float *tp = top + r * (size_t)P * (size_t)k;
        if (xkeep && xkeep[qcell[r]]) {
            grid[qcell[r]] = xgrid[qcell[r]];
            continue;
        }
        float v;
        if (k == 1) {
            v = tp[0];
        } else { /* numpy mean over the k ascending distances, in float32 (as knn.c) */
            float s = 0;
            for (int j = 0; j < k; j++) s += tp[j];
            v = s / (float)k;
        }
        grid[qcell[r]] = (double)(v / 2.0f);
    }
out:
    adi_free(qf);
    adi_free(qn);
    adi_free(qcell);
    adi_free(probe);
    adi_free(top);
    adi_free(loff);
    adi_free(lpos);
    adi_free(ent);
    adi_free(mn_x);
    adi_free(tbuf);
    adi_free(xgrid);
    adi_free(xkeep);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Public API                                                                                  */
/* ------------------------------------------------------------------------------------------ */

ad_index_params ad_index_default_params(void)
{
    ad_index_params p = {0, 0, 0};
    return p;
}

ad_status ad_bank_index_build(ad_bank *b, ad_context *ctx, const ad_index_params *p)
{
    if (!b) return adi_fail(AD_E_ARG, "ad_bank_index_build: NULL bank");
    ad_index_params ip = p ? *p : ad_index_default_params();
    if (ip.lists < 0 || ip.probes < 0 || ip.iterations < 0)
        return adi_fail(AD_E_ARG, "ad_bank_index_build: negative setting (lists %d, probes %d, "
                                  "iterations %d)", ip.lists, ip.probes, ip.iterations);
    return dt_ivf_build(b, ctx ? ad_context_threads(ctx) : 0, ip.lists, ip.probes, ip.iterations);
}

void ad_bank_index_drop(ad_bank *b)
{
    if (!b) return;
    dt_ivf_free(b->ivf);
    b->ivf = NULL;
}

int ad_bank_index_get(const ad_bank *b, ad_index_info *out)
{
    if (!b || !b->ivf) return 0;
    if (out) {
        const dt_ivf *ix = b->ivf;
        out->lists = ix->lists;
        out->probes = ix->probes;
        out->iterations = ix->iterations;
        out->rows = ix->n;
        out->min_list = (size_t)-1;
        out->max_list = 0;
        for (int l = 0; l < ix->lists; l++) {
            size_t s = ix->off[l + 1] - ix->off[l];
            if (s < out->min_list) out->min_list = s;
            if (s > out->max_list) out->max_list = s;
        }
    }
    return 1;
}

ad_status ad_bank_index_set_probes(ad_bank *b, int probes)
{
    if (!b) return adi_fail(AD_E_ARG, "ad_bank_index_set_probes: NULL bank");
    if (!b->ivf) return adi_fail(AD_E_ARG, "ad_bank_index_set_probes: the bank has no index");
    if (probes < 1 || probes > b->ivf->lists)
        return adi_fail(AD_E_ARG, "index: %d probes for %d lists (expected 1 .. %d)", probes,
                        b->ivf->lists, b->ivf->lists);
    b->ivf->probes = probes;
    return AD_OK;
}

ad_status ad_bank_query_probes(const ad_bank *b, ad_context *ctx, const ad_features *f,
                               const uint8_t *keep, int exclude_image_id, int probes,
                               double *grid)
{
    if (probes < AD_PROBES_EXACT)
        return adi_fail(AD_E_ARG, "ad_bank_query_probes: probes %d (expected > 0, %d default or "
                                  "%d exact)", probes, AD_PROBES_DEFAULT, AD_PROBES_EXACT);
    int nt = ctx ? ad_context_threads(ctx) : 0;
    return dt_bank_search_probes(b, nt, f, keep, exclude_image_id, probes, grid);
}
