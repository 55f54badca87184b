#include "core/core.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <stdatomic.h>
#include <threads.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

int adi_mul_overflow(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return 1;
    *out = a * b;
    return 0;
}

/* The one allocator of the library. Every allocation passes fault_hit(), which makes the n-th
 * allocation after adi_alloc_fail_at(n) fail once (tests of every error path, as SQLite's
 * malloc tests do). The counter is a relaxed atomic: free when unused, exact in a test that
 * runs one call at a time. */
static atomic_long g_alloc_count;    /* allocations since adi_alloc_fail_at */
static atomic_long g_alloc_fail_at;  /* 0: off */

void adi_alloc_fail_at(long n)
{
    atomic_store_explicit(&g_alloc_count, 0, memory_order_relaxed);
    atomic_store_explicit(&g_alloc_fail_at, n > 0 ? n : 0, memory_order_relaxed);
}

long adi_alloc_count(void) { return atomic_load_explicit(&g_alloc_count, memory_order_relaxed); }

static int fault_hit(void)
{
    long at = atomic_load_explicit(&g_alloc_fail_at, memory_order_relaxed);
    if (at == 0) return 0;
    long k = atomic_fetch_add_explicit(&g_alloc_count, 1, memory_order_relaxed) + 1;
    return k == at;
}

void *adi_malloc(size_t bytes)
{
    void *p = fault_hit() ? NULL : malloc(bytes ? bytes : 1);
    if (!p) return adi_fail_null(AD_E_NOMEM, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *adi_realloc(void *old, size_t bytes)
{
    void *p = fault_hit() ? NULL : realloc(old, bytes ? bytes : 1);
    if (!p) return adi_fail_null(AD_E_NOMEM, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *adi_alloc(size_t n_elems, size_t elem_size)
{
    size_t n;
    if (adi_mul_overflow(n_elems, elem_size, &n))
        return adi_fail_null(AD_E_NOMEM, "allocation size overflow (%zu x %zu)", n_elems, elem_size);
    if (n == 0) n = 1;
    if (n > SIZE_MAX - 63)
        return adi_fail_null(AD_E_NOMEM, "allocation size overflow (%zu bytes)", n);
    n = (n + 63) & ~(size_t)63;
    void *p = fault_hit() ? NULL : aligned_alloc(64, n);
    if (!p) return adi_fail_null(AD_E_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *adi_calloc(size_t n_elems, size_t elem_size)
{
    void *p = adi_alloc(n_elems, elem_size);
    if (p) memset(p, 0, n_elems * elem_size + (n_elems * elem_size == 0));
    return p;
}

void adi_free(void *p) { free(p); }

char *adi_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = adi_malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = 0;
    return d;
}

char *adi_strdup(const char *s) { return adi_strndup(s, SIZE_MAX); }

/* zlib's allocator hooks, so that inflate's state counts as the library's too. */
void *adi_zalloc(void *opaque, unsigned items, unsigned size)
{
    (void)opaque;
    size_t n;
    if (adi_mul_overflow(items, size, &n)) return NULL;
    return adi_malloc(n);
}

void adi_zfree(void *opaque, void *p)
{
    (void)opaque;
    adi_free(p);
}

/* CPU features, detected once per process (call_once: no data race between first callers). */
static struct {
    int avx2_fma, f16c;
} g_cpu;
static once_flag g_cpu_once = ONCE_FLAG_INIT;

static void cpu_detect(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    int fma = 0, f16c = 0, osxsave = 0, avx = 0, avx2 = 0, ymm = 0;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        fma = (c >> 12) & 1;
        osxsave = (c >> 27) & 1;
        avx = (c >> 28) & 1;
        f16c = (c >> 29) & 1;
    }
    if (osxsave) { /* the OS saves the YMM registers */
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        ymm = (lo & 6) == 6;
    }
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        avx2 = (b >> 5) & 1;
    }
    g_cpu.avx2_fma = avx && ymm && avx2 && fma;
    g_cpu.f16c = g_cpu.avx2_fma && f16c;
    const char *env = getenv("AD_NO_AVX2"); /* lets tests pin the portable paths */
    if (env && *env && *env != '0') g_cpu.avx2_fma = g_cpu.f16c = 0;
#endif
}

int adi_cpu_has_avx2_fma(void)
{
    call_once(&g_cpu_once, cpu_detect);
    return g_cpu.avx2_fma;
}

int adi_cpu_has_f16c(void)
{
    call_once(&g_cpu_once, cpu_detect);
    return g_cpu.f16c;
}

int adi_threads_resolve(int n)
{
    if (n <= 0) n = omp_get_num_procs();
    if (n < 1) n = 1;
    return n;
}

void adi_blas_serial(void)
{
    /* Inside a parallel region this is the region's implicit task's ICV (OpenMP 5.x 2.4.1:
     * nthreads-var is a data-environment ICV), discarded when the region ends. OpenBLAS' OpenMP
     * build runs one thread when omp_get_max_threads() is 1 or the region is active. */
    omp_set_num_threads(1);
}

void adi_sgemm_rows(int n_threads, int transB, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (n_threads < 1) n_threads = 1;
    if (n_threads > M) n_threads = M > 0 ? M : 1;
#pragma omp parallel num_threads(n_threads)
    {
        adi_blas_serial();
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        const int r0 = (int)((long long)M * t / n), r1 = (int)((long long)M * (t + 1) / n);
        if (r1 > r0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasNoTrans : CblasTrans, r1 - r0,
                        N, K, alpha, A + (size_t)r0 * lda, lda, B, ldb, beta, C + (size_t)r0 * ldc,
                        ldc);
    }
}

uint64_t adi_fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ------------------------------------------------------------------------------------------ */
/* string lists, paths, time                                                                   */
/* ------------------------------------------------------------------------------------------ */

int adi_strlist_push(adi_strlist *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **v = adi_realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    char *c = NULL;
    if (s && !(c = adi_strdup(s))) return -1;
    l->v[l->n++] = c;
    return 0;
}

int adi_strlist_addf(adi_strlist *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[1024];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n < sizeof tmp) return adi_strlist_push(l, tmp);
    char *big = adi_malloc((size_t)n + 1);
    if (!big) return -1;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = adi_strlist_push(l, big);
    adi_free(big);
    return rc;
}

int adi_strlist_find(const adi_strlist *l, const char *s)
{
    for (int i = 0; i < l->n; i++)
        if (l->v[i] && s && !strcmp(l->v[i], s)) return i;
    return -1;
}

void adi_strv_free(char **v, int n)
{
    if (!v) return;
    for (int i = 0; i < n; i++) adi_free(v[i]);
    adi_free(v);
}

void adi_strlist_free(adi_strlist *l)
{
    adi_strv_free(l->v, l->n);
    l->v = NULL;
    l->n = l->cap = l->dropped = 0;
}

char *adi_path_join(const char *dir, const char *name)
{
    size_t dl = strlen(dir), len = dl + strlen(name) + 2;
    char *p = adi_malloc(len);
    if (p) snprintf(p, len, "%s%s%s", dir, dl && dir[dl - 1] != '/' ? "/" : "", name);
    return p;
}

double adi_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *adi_path_resolve(const char *dir, const char *rel)
{
    if (rel[0] == '/' || !dir[0]) return adi_strdup(rel);
    return adi_path_join(dir, rel);
}
