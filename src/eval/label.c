/* 8-connected component labelling of ground-truth masks, as scipy.ndimage.label(gt, ones((3,3)))
 * does for compute_pro: two raster passes with union-find over provisional labels. */
#include "eval/eval.h"

#include <string.h>

static uint32_t uf_find(uint32_t *parent, uint32_t x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];   /* path halving */
        x = parent[x];
    }
    return x;
}

/* The smaller label becomes the root, so each root is the first-created label of its set. */
static uint32_t uf_union(uint32_t *parent, uint32_t a, uint32_t b)
{
    a = uf_find(parent, a);
    b = uf_find(parent, b);
    if (a < b) {
        parent[b] = a;
        return a;
    }
    parent[a] = b;
    return b;
}

ad_status adi_label8(const uint8_t *mask, int w, int h, uint32_t *labels, uint32_t *n_regions,
                    uint32_t **sizes)
{
    if (!mask || !labels || !n_regions || !sizes || w <= 0 || h <= 0)
        return adi_fail(AD_E_ARG, "adi_label8: invalid arguments");
    /* A new provisional label needs a background pixel on its left, so a row starts at most
     * ceil(w/2) of them. */
    size_t max_prov = ((size_t)w + 1) / 2 * (size_t)h + 1;
    if (max_prov > UINT32_MAX) return adi_fail(AD_E_ARG, "mask of %d x %d is too large", w, h);
    uint32_t *parent = adi_alloc(max_prov, sizeof *parent);
    if (!parent) return AD_E_NOMEM;
    uint32_t next = 1;
    parent[0] = 0;
    for (int y = 0; y < h; y++) {
        const uint8_t *m = mask + (size_t)y * w;
        uint32_t *l = labels + (size_t)y * w;
        const uint32_t *up = y > 0 ? l - w : NULL;
        for (int x = 0; x < w; x++) {
            if (!m[x]) {
                l[x] = 0;
                continue;
            }
            /* Already visited neighbours: W, NW, N, NE. */
            uint32_t nb[4];
            int k = 0;
            if (x > 0 && l[x - 1]) nb[k++] = l[x - 1];
            if (up) {
                if (x > 0 && up[x - 1]) nb[k++] = up[x - 1];
                if (up[x]) nb[k++] = up[x];
                if (x + 1 < w && up[x + 1]) nb[k++] = up[x + 1];
            }
            if (!k) {
                parent[next] = next;
                l[x] = next++;
                continue;
            }
            uint32_t r = nb[0];
            for (int i = 1; i < k; i++)
                if (nb[i] != r) r = uf_union(parent, r, nb[i]);
            l[x] = r;
        }
    }
    /* Flatten (every root is the smallest label of its set, so it is below its members), then
     * number the sets in order of their first pixel (raster order, as scipy). */
    for (uint32_t i = 1; i < next; i++) parent[i] = uf_find(parent, i);
    uint32_t n = 0;
    for (uint32_t i = 1; i < next; i++) {
        uint32_t r = parent[i];
        parent[i] = r == i ? ++n : parent[r];
    }
    uint32_t *sz = NULL;
    if (n) {
        sz = adi_calloc(n, sizeof *sz);
        if (!sz) {
            adi_free(parent);
            return AD_E_NOMEM;
        }
    }
    size_t total = (size_t)w * (size_t)h;
    for (size_t i = 0; i < total; i++) {
        if (!labels[i]) continue;
        uint32_t f = parent[labels[i]];
        labels[i] = f;
        sz[f - 1]++;
    }
    adi_free(parent);
    *n_regions = n;
    *sizes = sz;
    return AD_OK;
}
