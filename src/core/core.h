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

/* 64-byte aligned allocation (free with adi_free); NULL on overflow or failure (error recorded). */
void *adi_alloc(size_t n_elems, size_t elem_size);
void *adi_calloc(size_t n_elems, size_t elem_size);
void adi_free(void *p);
/* a*b*c... overflow check: returns 0 and sets *out on success. */
int adi_mul_overflow(size_t a, size_t b, size_t *out);

/* CPU features for run-time dispatch of hand-written kernels. */
int adi_cpu_has_avx2_fma(void);

/* Sets OpenMP and OpenBLAS thread counts (process-global for BLAS); n <= 0 means all cores. */
int adi_threads_resolve(int n);
void adi_threads_apply(int n);

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

#endif
