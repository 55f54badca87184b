/* In-place MSD radix sorts (American flag sort) for the pixel metrics: a full VisA category is
 * ~150M keys, so a scratch copy of the keys (LSD radix) would double the memory. */
#include "eval/eval.h"

#include <omp.h>
#include <stdlib.h>

/* Buckets at most this small are finished by insertion sort. */
#define AD_SORT_SMALL 48
#define AD_TOP_BITS 16
#define AD_TOP_BUCKETS (1u << AD_TOP_BITS)

#define AD_DEFINE_SORT(T, SUFFIX, KEY_BITS)                                                      \
    static void isort_##SUFFIX(T *a, size_t n)                                                   \
    {                                                                                            \
        for (size_t i = 1; i < n; i++) {                                                         \
            T v = a[i];                                                                          \
            size_t j = i;                                                                        \
            while (j > 0 && a[j - 1] > v) {                                                      \
                a[j] = a[j - 1];                                                                 \
                j--;                                                                             \
            }                                                                                    \
            a[j] = v;                                                                            \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    /* One 8-bit digit at `shift`, permuted in place, then each bucket on the next digit. */    \
    static void flag_##SUFFIX(T *a, size_t n, int shift)                                         \
    {                                                                                            \
        size_t cnt[256] = {0}, head[256], tail[256];                                             \
        for (size_t i = 0; i < n; i++) cnt[(a[i] >> shift) & 255u]++;                           \
        size_t s = 0;                                                                            \
        for (int b = 0; b < 256; b++) {                                                          \
            head[b] = s;                                                                         \
            s += cnt[b];                                                                         \
            tail[b] = s;                                                                         \
        }                                                                                        \
        for (int b = 0; b < 256; b++) {                                                          \
            while (head[b] < tail[b]) {                                                          \
                T v = a[head[b]];                                                                \
                unsigned d = (unsigned)((v >> shift) & 255u);                                    \
                while (d != (unsigned)b) {                                                       \
                    T t = a[head[d]];                                                            \
                    a[head[d]++] = v;                                                            \
                    v = t;                                                                       \
                    d = (unsigned)((v >> shift) & 255u);                                         \
                }                                                                                \
                a[head[b]++] = v;                                                                \
            }                                                                                    \
        }                                                                                        \
        size_t start = 0;                                                                        \
        for (int b = 0; b < 256; b++) {                                                          \
            size_t m = cnt[b];                                                                   \
            if (m > AD_SORT_SMALL && shift > 0) flag_##SUFFIX(a + start, m, shift - 8);          \
            else if (m > 1) isort_##SUFFIX(a + start, m);                                        \
            start += m;                                                                          \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    void adi_sort_##SUFFIX(T *a, size_t n)                                                        \
    {                                                                                            \
        const int top_shift = (KEY_BITS) - AD_TOP_BITS;                                          \
        if (n <= 4096) {                                                                         \
            if (n > AD_SORT_SMALL) flag_##SUFFIX(a, n, (KEY_BITS) - 8);                          \
            else isort_##SUFFIX(a, n);                                                           \
            return;                                                                              \
        }                                                                                        \
        size_t *cnt = adi_calloc(AD_TOP_BUCKETS, sizeof *cnt);                                       \
        size_t *head = adi_malloc(AD_TOP_BUCKETS * sizeof *head);                                    \
        size_t *tail = adi_malloc(AD_TOP_BUCKETS * sizeof *tail);                                    \
        if (!cnt || !head || !tail) {                                                            \
            /* 1.5 MB of counters unavailable: the 8-bit path needs none on the heap */          \
            adi_free(cnt);                                                                           \
            adi_free(head);                                                                          \
            adi_free(tail);                                                                          \
            flag_##SUFFIX(a, n, (KEY_BITS) - 8);                                                 \
            return;                                                                              \
        }                                                                                        \
        for (size_t i = 0; i < n; i++) cnt[a[i] >> top_shift]++;                                 \
        size_t s = 0;                                                                            \
        for (size_t b = 0; b < AD_TOP_BUCKETS; b++) {                                            \
            head[b] = s;                                                                         \
            s += cnt[b];                                                                         \
            tail[b] = s;                                                                         \
        }                                                                                        \
        for (size_t b = 0; b < AD_TOP_BUCKETS; b++) {                                            \
            while (head[b] < tail[b]) {                                                          \
                T v = a[head[b]];                                                                \
                size_t d = (size_t)(v >> top_shift);                                             \
                while (d != b) {                                                                 \
                    T t = a[head[d]];                                                            \
                    a[head[d]++] = v;                                                            \
                    v = t;                                                                       \
                    d = (size_t)(v >> top_shift);                                                \
                }                                                                                \
                a[head[b]++] = v;                                                                \
            }                                                                                    \
        }                                                                                        \
        /* head[b] is now the end of bucket b; buckets are disjoint, so any thread count gives  \
         * the same (unique) sorted array. */                                                    \
        _Pragma("omp parallel for schedule(dynamic, 64)")                                        \
        for (long b = 0; b < (long)AD_TOP_BUCKETS; b++) {                                        \
            size_t m = cnt[b];                                                                   \
            T *p = a + (head[b] - m);                                                            \
            if (m > AD_SORT_SMALL) flag_##SUFFIX(p, m, top_shift - 8);                           \
            else if (m > 1) isort_##SUFFIX(p, m);                                                \
        }                                                                                        \
        adi_free(cnt);                                                                               \
        adi_free(head);                                                                              \
        adi_free(tail);                                                                              \
    }

AD_DEFINE_SORT(uint32_t, u32, 32)
AD_DEFINE_SORT(uint64_t, u64, 64)
