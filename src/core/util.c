#include "core/core.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

int adi_mul_overflow(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return 1;
    *out = a * b;
    return 0;
}

void *adi_alloc(size_t n_elems, size_t elem_size)
{
    size_t n;
    if (adi_mul_overflow(n_elems, elem_size, &n))
        return adi_fail_null(AD_E_NOMEM, "allocation size overflow (%zu x %zu)", n_elems, elem_size);
    if (n == 0) n = 1;
    n = (n + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n);
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

int adi_cpu_has_avx2_fma(void)
{
#if defined(__x86_64__) || defined(__i386__)
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        const char *env = getenv("AD_NO_AVX2"); /* lets tests pin the portable path */
        if (env && *env && *env != '0') cached = 0;
    }
    return cached;
#else
    return 0;
#endif
}

/* openblas_set_num_threads is not in every cblas.h; declare it weakly so that another CBLAS
 * still links. */
extern void openblas_set_num_threads(int) __attribute__((weak));

int adi_threads_resolve(int n)
{
    if (n <= 0) n = omp_get_num_procs();
    if (n < 1) n = 1;
    return n;
}

void adi_threads_apply(int n)
{
    n = adi_threads_resolve(n);
    omp_set_num_threads(n);
    if (openblas_set_num_threads) openblas_set_num_threads(n);
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
