/* Hostile and degenerate input to the bank and the searches:
 * - bank files with many image records load in about linear time (no n_images^2 duplicate scan,
 *   no rows x n_images lookup), duplicates among many are still refused;
 * - a mask record whose size eats into the following records is refused by the size check,
 *   before any allocation;
 * - non-finite feature values are refused: in a checksummed bank file, added to a bank, in a
 *   query, in the PCA mask (each would silently match nothing or give an arbitrary mask). */
#include "anomalydino.h"
#include "detect/detect.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

typedef struct {
    unsigned char *b;
    size_t n, cap;
} buf;

static void put(buf *w, uint64_t v, int bytes)
{
    if (w->n + (size_t)bytes > w->cap) {
        w->cap = (w->cap + (size_t)bytes) * 2;
        w->b = realloc(w->b, w->cap);
    }
    for (int i = 0; i < bytes; i++) w->b[w->n++] = (unsigned char)(v >> (8 * i));
}

static void put_f32(buf *w, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put(w, u, 4);
}

/* Header of a version-1 bank: dim 1, no threshold. */
static void header(buf *w, uint64_t rows, uint64_t side, uint32_t n_images)
{
    const char magic[6] = {'A', 'D', 'B', 'A', 'N', 'K'};
    for (int i = 0; i < 6; i++) put(w, (unsigned char)magic[i], 1);
    put(w, 1, 2);          /* version */
    put(w, 1, 4);          /* dim */
    put(w, 0, 4);          /* resolution */
    put(w, 0, 4);          /* rotate, mask_refs, mask_test, 0 */
    put(w, 1, 4);          /* knn_k */
    put(w, 0, 8);          /* fingerprint */
    for (int i = 0; i < 32; i++) put(w, 0, 1);
    put(w, 0, 4);          /* has_threshold, rule, 0 */
    put(w, 0, 8);
    put(w, 0, 8);
    put(w, rows, 8);
    put(w, side, 8);
    put(w, n_images, 4);
    put(w, 0, 4);
}

static void finish(buf *w, const char *path)
{
    uLong c = crc32(0L, w->b, (uInt)w->n);
    put(w, (uint32_t)c, 4);
    FILE *fp = fopen(path, "wb");
    if (fp) {
        fwrite(w->b, 1, w->n, fp);
        fclose(fp);
    }
}

/* n images (ids 0..n-1, 1x1 grid, no mask), one row per image (cell 0, angle 0), row feature
 * `value` for the last row (1 elsewhere); dup: the last image repeats id 0. */
static void many_images(const char *path, uint32_t n, int dup, float value)
{
    buf w = {0};
    header(&w, n, 0, n);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = dup && i == n - 1 ? 0 : i;
        put(&w, id, 4);
        put(&w, 1, 4);
        put(&w, 1, 4);
        put(&w, 1, 4);
        put(&w, 0, 1);
    }
    /* rows in reverse image order: no row's owner is the previous lookup's */
    for (uint32_t j = 0; j < n; j++) put(&w, dup ? j : n - 1 - j, 4);
    for (uint32_t j = 0; j < n; j++) put(&w, 0, 1);
    for (uint32_t j = 0; j < n; j++) put(&w, 0, 4);
    for (uint32_t j = 0; j < n; j++) put_f32(&w, j == n - 1 ? value : 1.0f);
    finish(&w, path);
    free(w.b);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void)
{
    const char *path = t_tmp("hostile.adbank");

    /* 1. Many image records: a legal file. The old quadratic checks took n^2/2 = 4.5e10
     * comparisons for the duplicate scan alone here. */
    const uint32_t N = 300000;
    many_images(path, N, 0, 1.0f);
    double t0 = now_s();
    ad_bank *b = ad_bank_load(path);
    double dt = now_s() - t0;
    CHECK(b != NULL, "bank of %u images refused: %s", N, ad_errmsg());
    /* Timing is reported, not asserted (speed belongs to benchmarks): the quadratic checks took
     * about a minute here, which shows in this test's run time. */
    printf("%u images, %u rows: loaded in %.3f s\n", N, N, dt);
    if (b) {
        CHECK(ad_bank_images(b) == (int)N && ad_bank_rows(b) == N, "%d images, %zu rows",
              ad_bank_images(b), ad_bank_rows(b));
        ad_bank_free(b);
    }

    /* 2. Duplicate id among many, and a non-finite feature: refused. */
    many_images(path, N, 1, 1.0f);
    t0 = now_s();
    b = ad_bank_load(path);
    dt = now_s() - t0;
    CHECK(b == NULL && strstr(ad_errmsg(), "duplicate") != NULL, "duplicate id: %s", ad_errmsg());
    printf("duplicate id among %u images: refused in %.3f s\n", N, dt);
    ad_bank_free(b);
    const float bad_values[3] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        many_images(path, 4, 0, bad_values[i]);
        b = ad_bank_load(path);
        CHECK(b == NULL && strstr(ad_errmsg(), "non-finite") != NULL, "feature %g: %s",
              (double)bad_values[i], b ? "accepted" : ad_errmsg());
        ad_bank_free(b);
    }
    printf("non-finite feature in a file: %s\n", ad_errmsg());

    /* 3. A mask that claims the bytes of the next record: the next record is then read from
     * the tail, and its 65535 x 65535 mask must not pass the size check (it used to, through an
     * unsigned wrap-around, and 4 GiB were allocated before the read failed). */
    {
        /* after the header: rec0 (17) + mask0 (81) + rec1 (17) + 117 bytes + crc (4); the
         * tail (10 rows of 9 + 4 bytes, + crc) is 134 bytes. mask0 fits in what lies beyond the
         * tail, but only by taking rec1's room; rec1 then ends 4 + 117 < 134 bytes before the
         * end. */
        const uint32_t M = 81;
        buf w = {0};
        header(&w, 10, 0, 2);
        put(&w, 0, 4);
        put(&w, 1, 4);
        put(&w, M, 4); /* grid 1 x M */
        put(&w, 1, 4);
        put(&w, 1, 1);
        for (uint32_t i = 0; i < M; i++) put(&w, 1, 1);
        put(&w, 1, 4); /* rec1: 65535 x 65535 with a mask */
        put(&w, 65535, 4);
        put(&w, 65535, 4);
        put(&w, 1, 4);
        put(&w, 1, 1);
        for (int i = 0; i < 117; i++) put(&w, 0, 1);
        finish(&w, path);
        free(w.b);
        b = ad_bank_load(path);
        CHECK(b == NULL && strstr(ad_errmsg(), "mask sizes") != NULL,
              "mask over the next record: %s", b ? "accepted" : ad_errmsg());
        printf("mask over the next record: %s\n", ad_errmsg());
        ad_bank_free(b);
    }

    /* 4. Non-finite features through the API: refused, nothing changed. */
    {
        enum { GH = 4, GW = 4, D = 8 };
        float x[GH * GW * D];
        for (int i = 0; i < GH * GW * D; i++) x[i] = (float)((i * 37) % 11) - 5.0f;
        ad_features f = {GH, GW, D, x, NULL};
        ad_bank_params p = ad_bank_default_params();
        p.mask_test = 0;
        ad_bank *bk = ad_bank_new(NULL, &p);
        CHECK_OK(ad_bank_add_features(bk, &f, NULL, 0));
        for (int i = 0; i < 3; i++) {
            x[5 * D + 3] = bad_values[i];
            ad_status st = ad_bank_add_features(bk, &f, NULL, 1);
            CHECK(st == AD_E_ARG, "add %g: %s", (double)bad_values[i], ad_status_name(st));
            CHECK(ad_bank_rows(bk) == GH * GW && ad_bank_images(bk) == 1,
                  "bank changed: %zu rows, %d images", ad_bank_rows(bk), ad_bank_images(bk));
            double grid[GH * GW];
            for (int c = 0; c < GH * GW; c++) grid[c] = -7;
            st = ad_bank_query(bk, NULL, &f, NULL, -1, grid);
            CHECK(st == AD_E_ARG, "query %g: %s", (double)bad_values[i], ad_status_name(st));
            CHECK(grid[0] == -7 && grid[GH * GW - 1] == -7, "grid written on failure");
            /* a masked-out non-finite patch is not searched: fine */
            uint8_t keep[GH * GW];
            memset(keep, 1, sizeof keep);
            keep[5] = 0;
            CHECK_OK(ad_bank_query(bk, NULL, &f, keep, -1, grid));
            uint8_t mk[GH * GW];
            st = ad_mask_pca(&f, mk);
            CHECK(st == AD_E_ARG, "mask %g: %s", (double)bad_values[i], ad_status_name(st));
        }
        printf("non-finite features: %s\n", ad_errmsg());
        ad_bank_free(bk);
        /* a bank without width stays without width after a refused first insertion */
        bk = ad_bank_new(NULL, &p);
        ad_features g = {GH, GW, D, x, NULL};
        CHECK(ad_bank_add_features(bk, &g, NULL, 0) == AD_E_ARG, "NaN first features accepted");
        x[5 * D + 3] = 1.0f;
        ad_features h = {GH, GW / 2, 2 * D, x, NULL};
        CHECK_OK(ad_bank_add_features(bk, &h, NULL, 0));
        ad_bank_free(bk);
    }

    return t_done("test_bank_hostile");
}
