/* Internal helpers shared by every module: error reporting, checked allocation, CPU features. */
#ifndef AD_CORE_H
#define AD_CORE_H

#include "anomalydino.h"
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define AD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define AD_PRINTF(a, b)
#endif

/* Records a one-line reason for the current thread and returns `s` (for `return adi_fail(...)`). */
ad_status adi_fail(ad_status s, const char *fmt, ...) AD_PRINTF(2, 3);
/* Same, for functions that return a pointer: records and returns NULL. */
void *adi_fail_null(ad_status s, const char *fmt, ...) AD_PRINTF(2, 3);
/* Prefixes the current message with "context: " (e.g. the file name). */
void adi_error_prefix(const char *fmt, ...) AD_PRINTF(1, 2);

/* The library's one allocator: every allocation of the library goes through these (zlib's
 * through adi_zalloc/adi_zfree; cJSON keeps its own default hooks, since cJSON_InitHooks is
 * process-wide). All return NULL on overflow or failure with AD_E_NOMEM recorded; free
 * everything with adi_free.
 * adi_alloc / adi_calloc: n_elems x elem_size bytes, 64-byte aligned (calloc: zeroed).
 * adi_malloc / adi_realloc: as malloc / realloc (realloc keeps `p` on failure). */
void *adi_alloc(size_t n_elems, size_t elem_size);
void *adi_calloc(size_t n_elems, size_t elem_size);
void *adi_malloc(size_t bytes);
void *adi_realloc(void *p, size_t bytes);
void adi_free(void *p);
/* strdup / strndup through the same allocator. */
char *adi_strdup(const char *s);
char *adi_strndup(const char *s, size_t n);
void *adi_zalloc(void *opaque, unsigned items, unsigned size);
void adi_zfree(void *opaque, void *p);
/* Fault injection for tests: from now on, the n-th allocation fails (once); n <= 0 turns it
 * off. adi_alloc_count(): allocations counted since (only while injection is on). */
void adi_alloc_fail_at(long n);
long adi_alloc_count(void);
/* a*b*c... overflow check: returns 0 and sets *out on success. */
int adi_mul_overflow(size_t a, size_t b, size_t *out);

/* CPU features for run-time dispatch of hand-written kernels. */
int adi_cpu_has_avx2_fma(void);
/* F16C as well (implies AVX2 + FMA here); AD_NO_AVX2 pins both off. */
int adi_cpu_has_f16c(void);

/* Thread model (see THREADS in the public header): no library call changes a process-wide
 * setting. The library's parallel work runs in its own OpenMP regions, `num_threads(T)` with T
 * the context's count, and every BLAS call is made from inside such a region with BLAS
 * single-threaded, so OpenBLAS never starts threads of its own and concurrent callers never
 * share its thread pool. */
/* n <= 0 means all cores. */
int adi_threads_resolve(int n);
/* Call first thing inside a library parallel region (a team of one included): makes OpenBLAS
 * (OpenMP build) run single-threaded in this thread. It sets the nthreads-var ICV of the
 * region's own implicit task, which ends with the region: the caller's setting is untouched. */
void adi_blas_serial(void);
/* C[M x N] = alpha A[M x K] op(B) + beta C, row-major, A not transposed: the rows of A and C are
 * split evenly over `n_threads` (fixed by the count, so the same count gives the same bits),
 * each part one single-threaded cblas_sgemm. transB: 0 B is N x K (B^T used), 1 B is K x N. */
void adi_sgemm_rows(int n_threads, int transB, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Fuzzing builds (AD_FUZZ, the libFuzzer convention's FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION)
 * do not check checksums (bank CRC-32, zip entry CRC-32, PNG chunk CRCs), so that mutated
 * inputs reach the parsing behind them; everywhere else ADI_CHECKSUMS is 1. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define ADI_CHECKSUMS 0
#else
#define ADI_CHECKSUMS 1
#endif

/* 64-bit FNV-1a over bytes, continuing from h (start with AD_FNV_INIT). */
#define AD_FNV_INIT 0xcbf29ce484222325ULL
uint64_t adi_fnv1a(uint64_t h, const void *data, size_t n);

/* A growable list of strings (adi_strdup'ed; v[n] is not NULL-terminated). One type for every
 * list of lines or names in the library and its front ends. */
typedef struct {
    char **v;
    int n, cap;
    int dropped;   /* lines a caller could not add (out of memory), for its summary */
} adi_strlist;
/* Appends a copy of s (s NULL appends a NULL entry). 0, or -1 out of memory (AD_E_NOMEM). */
int adi_strlist_push(adi_strlist *l, const char *s);
/* Appends a formatted line. 0, or -1 out of memory. */
int adi_strlist_addf(adi_strlist *l, const char *fmt, ...) AD_PRINTF(2, 3);
/* Index of the first entry equal to s, or -1. */
int adi_strlist_find(const adi_strlist *l, const char *s);
void adi_strlist_free(adi_strlist *l);
/* Frees n strings and the array (NULL allowed). */
void adi_strv_free(char **v, int n);

/* dir/name in a new string (no second '/' when dir ends in one; dir "" gives name). */
char *adi_path_join(const char *dir, const char *name);
/* rel itself when absolute (or dir is ""), else dir/rel. */
char *adi_path_resolve(const char *dir, const char *rel);
/* Monotonic seconds. */
double adi_now(void);

#endif
