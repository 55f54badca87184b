/* The in-place radix sorts of the pixel metrics give exactly qsort's order, for sizes around the
 * small-input cutoffs and for distributions that stress the buckets: uniform, few distinct values
 * (heavy ties), everything in one top-16-bit bucket, and float keys of a narrow score range. */
#include "eval/eval.h"
#include "testutil.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static uint64_t st = 3;
static uint64_t rnd64(void)
{
    st = st * 6364136223846793005ULL + 1442695040888963407ULL;
    return st ^ (st >> 29);
}

static int c32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}
static int c64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t draw(int dist)
{
    uint64_t r = rnd64();
    switch (dist) {
    case 0: return r;                                           /* uniform */
    case 1: return (r % 5) * 0x0101010101010101ULL;             /* 5 distinct values */
    case 2: return 0xABCD000000000000ULL | (r >> 16);          /* one top bucket (64-bit) */
    default: {                                                  /* scores in [0.2, 0.3) */
        float f = 0.2f + (float)(r % 1000000) * 1e-7f;
        return (uint64_t)adi_f32_key(f) << 32 | (r & 0xffff);
    }
    }
}

int main(void)
{
    const size_t sizes[] = {0, 1, 2, 47, 48, 49, 300, 4096, 4097, 70000, 400000};
    const char *dn[] = {"uniform", "5 values", "one top bucket", "narrow float range"};
    for (int dist = 0; dist < 4; dist++) {
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            size_t n = sizes[k];
            uint32_t *a = malloc(n * 4 + 4), *b = malloc(n * 4 + 4);
            uint64_t *c = malloc(n * 8 + 8), *d = malloc(n * 8 + 8);
            for (size_t i = 0; i < n; i++) {
                c[i] = d[i] = draw(dist);
                /* 32-bit: the high half, except for "one top bucket" keep it in one bucket */
                a[i] = b[i] = dist == 2 ? 0xABCD0000u | (uint32_t)(c[i] & 0xffff)
                                        : (uint32_t)(c[i] >> 32);
            }
            omp_set_num_threads(1 + (int)(k & 1));
            adi_sort_u32(a, n);
            adi_sort_u64(c, n);
            qsort(b, n, 4, c32);
            qsort(d, n, 8, c64);
            size_t w32 = n, w64 = n;
            for (size_t i = 0; i < n; i++) {
                if (a[i] != b[i] && w32 == n) w32 = i;
                if (c[i] != d[i] && w64 == n) w64 = i;
            }
            CHECK(w32 == n, "u32 %s n=%zu: first difference at %zu", dn[dist], n, w32);
            CHECK(w64 == n, "u64 %s n=%zu: first difference at %zu", dn[dist], n, w64);
            if (n == 400000)
                printf("  %-20s n %zu: u32 %s, u64 %s\n", dn[dist], n, w32 == n ? "equal" : "DIFFER",
                       w64 == n ? "equal" : "DIFFER");
            free(a);
            free(b);
            free(c);
            free(d);
        }
    }
    /* float keys keep the float order, -0.0 folded onto +0.0 */
    const float f[] = {-INFINITY, -3.5f, -1e-30f, -0.0f, 0.0f, 1e-30f, 0.25f, 2.0f, INFINITY};
    for (int i = 0; i + 1 < 9; i++) {
        if (f[i] == f[i + 1]) CHECK(adi_f32_key(f[i]) == adi_f32_key(f[i + 1]), "key(%g)", f[i]);
        else CHECK(adi_f32_key(f[i]) < adi_f32_key(f[i + 1]), "key(%g) >= key(%g)", f[i], f[i + 1]);
    }
    return t_done("test_radix_sort_matches_qsort");
}
