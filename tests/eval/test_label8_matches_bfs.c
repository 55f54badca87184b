/* 8-connected labelling (scipy.ndimage.label with a 3x3 ones structure) equals a breadth-first
 * flood fill on random masks of every density, on U shapes whose arms only meet late in the
 * raster scan, on diagonal chains and on single rows / columns: same label per pixel (regions
 * numbered in raster order of their first pixel) and same region sizes. */
#include "eval/eval.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static uint64_t st = 7;
static uint32_t rnd(void)
{
    st = st * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(st >> 33);
}

static uint32_t bfs(const uint8_t *m, int w, int h, uint32_t *lab, uint32_t *sizes)
{
    uint32_t n = 0;
    int *q = malloc((size_t)w * h * sizeof *q);
    memset(lab, 0, (size_t)w * h * sizeof *lab);
    for (int s = 0; s < w * h; s++) {
        if (!m[s] || lab[s]) continue;
        lab[s] = ++n;
        int qh = 0, qt = 0;
        q[qt++] = s;
        while (qh < qt) {
            int p = q[qh++];
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int x = p % w + dx, y = p / w + dy;
                    if (x < 0 || y < 0 || x >= w || y >= h || !m[y * w + x] || lab[y * w + x])
                        continue;
                    lab[y * w + x] = n;
                    q[qt++] = y * w + x;
                }
        }
        sizes[n - 1] = (uint32_t)qt;
    }
    free(q);
    return n;
}

static void compare(const char *what, const uint8_t *m, int w, int h)
{
    size_t n = (size_t)w * h;
    uint32_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *bs = malloc(n * 4 + 4);
    uint32_t na = 0, *as = NULL;
    CHECK_OK(adi_label8(m, w, h, a, &na, &as));
    uint32_t nb = bfs(m, w, h, b, bs);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i] && !bad++) first = i;
    int sizes_ok = na == nb && (nb == 0 || !memcmp(as, bs, nb * sizeof *bs));
    printf("  %-34s %4dx%-4d regions %u (bfs %u), pixels differing %zu, sizes %s\n", what, w, h,
           na, nb, bad, sizes_ok ? "equal" : "DIFFER");
    CHECK(na == nb && !bad && sizes_ok, "%s: first differing pixel %zu (%u vs %u)", what, first,
          bad ? a[first] : 0, bad ? b[first] : 0);
    free(a);
    free(b);
    free(bs);
    adi_free(as);
}

int main(void)
{
    const int dens[] = {2, 10, 30, 45, 55, 70, 95};
    for (size_t d = 0; d < sizeof dens / sizeof *dens; d++) {
        int w = 20 + (int)(rnd() % 90), h = 10 + (int)(rnd() % 70);
        uint8_t *m = malloc((size_t)w * h);
        for (int i = 0; i < w * h; i++) m[i] = (uint8_t)((int)(rnd() % 100) < dens[d] ? 255 : 0);
        char what[64];
        snprintf(what, sizeof what, "random, %d%% set", dens[d]);
        compare(what, m, w, h);
        free(m);
    }
    /* U shapes: the arms get separate provisional labels that merge at the bottom; a W shape
     * merges three; a comb merges many into the smallest label. */
    {
        const int w = 30, h = 12;
        uint8_t m[30 * 12] = {0};
        for (int y = 0; y < h; y++) m[y * w + 2] = m[y * w + 8] = m[y * w + 14] = 1;
        for (int x = 2; x <= 14; x++) m[(h - 1) * w + x] = 1;
        for (int x = 18; x < 29; x += 2)
            for (int y = 0; y < h - 1; y++) m[y * w + x] = 1;
        for (int x = 18; x < 29; x++) m[(h - 1) * w + x] = 1;
        compare("U, W and comb shapes", m, w, h);
    }
    /* diagonal chains touching only at corners, both directions */
    {
        const int w = 16, h = 16;
        uint8_t m[16 * 16] = {0};
        for (int i = 0; i < 16; i++) m[i * w + i] = m[i * w + (15 - i)] = 1;
        compare("crossing diagonals", m, w, h);
    }
    {
        uint8_t row[9] = {1, 0, 1, 1, 0, 0, 1, 0, 1};
        compare("single row", row, 9, 1);
        compare("single column", row, 1, 9);
        uint8_t none[6] = {0};
        compare("empty mask", none, 3, 2);
        uint8_t all[6] = {9, 9, 9, 9, 9, 9};
        compare("full mask", all, 3, 2);
    }
    /* the worst case for provisional labels: every other pixel of every row */
    {
        const int w = 33, h = 8;
        uint8_t m[33 * 8] = {0};
        for (int y = 0; y < h; y += 2)
            for (int x = 0; x < w; x += 2) m[y * w + x] = 1;
        compare("isolated pixels (max labels)", m, w, h);
    }
    return t_done("test_label8_matches_bfs");
}
