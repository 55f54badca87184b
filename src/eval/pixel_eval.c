/* Pixel-level AUROC, F1-max and AU-PRO over all pixels of a category, pooled.
 *
 * Memory is one 32-bit sortable key per normal pixel and one 64-bit (key, region) pair per
 * anomalous pixel: a VisA category at full resolution (~150M pixels) needs ~0.6 GB. At the end,
 * both arrays are sorted in place and one merge walk from the highest score down feeds every
 * distinct threshold to the curve accumulator, which integrates ROC, PR and PRO at once.
 * AU-PRO follows the MVTec AD code used by AnomalyDINO (src/post_eval.py: compute_pro, then
 * trapezoid up to FPR 0.3, divided by 0.3). */
#include "eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* post_eval.py: eval_segmentation(pro_integration_limit=0.3) */
#define AD_PRO_FPR_LIMIT 0.3

struct ad_pixel_eval {
    uint32_t *neg;        /* keys of normal pixels */
    size_t n_neg, cap_neg;
    uint64_t *pos;        /* key << 32 | global region index, anomalous pixels */
    size_t n_pos, cap_pos;
    uint32_t *region_size;
    size_t n_regions, cap_regions;
    size_t n_images;
};

ad_pixel_eval *ad_pixel_eval_new(void)
{
    ad_pixel_eval *pe = adi_calloc(1, sizeof *pe);
    if (!pe) return adi_fail_null(AD_E_NOMEM, "ad_pixel_eval_new: out of memory");
    return pe;
}

void ad_pixel_eval_free(ad_pixel_eval *pe)
{
    if (!pe) return;
    adi_free(pe->neg);
    adi_free(pe->pos);
    adi_free(pe->region_size);
    adi_free(pe);
}

/* Makes room for `extra` more elements; the array is untouched when it fails. realloc (not
 * adi_alloc) so that glibc can grow the large blocks with mremap instead of copying. */
static int reserve(void **p, size_t *cap, size_t used, size_t extra, size_t elem)
{
    if (extra <= *cap - used) return 0;
    if (used > SIZE_MAX - extra) return -1;
    size_t need = used + extra, c = *cap ? *cap : 1u << 16;
    while (c < need) c = c > SIZE_MAX / 2 ? need : c * 2;
    size_t bytes;
    if (adi_mul_overflow(c, elem, &bytes)) return -1;
    void *q = adi_realloc(*p, bytes);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

ad_status ad_pixel_eval_add(ad_pixel_eval *pe, const float *map, const uint8_t *mask, int w, int h)
{
    if (!pe || !map) return adi_fail(AD_E_ARG, "ad_pixel_eval_add: pe and map must not be NULL");
    if (w <= 0 || h <= 0)
        return adi_fail(AD_E_ARG, "ad_pixel_eval_add: invalid map size %d x %d", w, h);
    size_t n = (size_t)w * (size_t)h;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(map[i]))
            return adi_fail(AD_E_ARG,
                           "ad_pixel_eval_add: image %zu: map value at (x %zu, y %zu) is not "
                           "finite (%g)",
                           pe->n_images, i % (size_t)w, i / (size_t)w, (double)map[i]);

    uint32_t *labels = NULL, *sizes = NULL, n_reg = 0;
    size_t n_anom = 0;
    if (mask) {
        labels = adi_alloc(n, sizeof *labels);
        if (!labels) return AD_E_NOMEM;
        ad_status st = adi_label8(mask, w, h, labels, &n_reg, &sizes);
        if (st != AD_OK) {
            adi_free(labels);
            return st;
        }
        for (uint32_t k = 0; k < n_reg; k++) n_anom += sizes[k];
    }
    ad_status st = AD_OK;
    if ((uint64_t)pe->n_regions + n_reg > UINT32_MAX) {
        st = adi_fail(AD_E_ARG, "ad_pixel_eval_add: more than 2^32 ground-truth regions");
    } else if (reserve((void **)&pe->neg, &pe->cap_neg, pe->n_neg, n - n_anom, sizeof *pe->neg) ||
               reserve((void **)&pe->pos, &pe->cap_pos, pe->n_pos, n_anom, sizeof *pe->pos) ||
               reserve((void **)&pe->region_size, &pe->cap_regions, pe->n_regions, n_reg,
                       sizeof *pe->region_size)) {
        st = adi_fail(AD_E_NOMEM, "ad_pixel_eval_add: out of memory storing %zu pixels", n);
    }
    if (st != AD_OK) {
        adi_free(labels);
        adi_free(sizes);
        return st;
    }

    /* an all-anomalous (or all-normal) first mask leaves neg (or pos) unallocated: no pointer
     * arithmetic on NULL, even with an offset of zero */
    uint32_t *neg = pe->neg ? pe->neg + pe->n_neg : NULL;
    if (!labels) {
        for (size_t i = 0; i < n; i++) neg[i] = adi_f32_key(map[i]);
    } else {
        uint64_t *pos = pe->pos ? pe->pos + pe->n_pos : NULL;
        /* labels are 1-based per image; regions are numbered globally from 0 */
        uint64_t base = (uint64_t)pe->n_regions;
        size_t a = 0, b = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t key = adi_f32_key(map[i]);
            if (labels[i]) pos[a++] = (uint64_t)key << 32 | (base + labels[i] - 1);
            else neg[b++] = key;
        }
        if (n_reg) memcpy(pe->region_size + pe->n_regions, sizes, n_reg * sizeof *sizes);
    }
    pe->n_neg += n - n_anom;
    pe->n_pos += n_anom;
    pe->n_regions += n_reg;
    pe->n_images++;
    adi_free(labels);
    adi_free(sizes);
    return AD_OK;
}

ad_status ad_pixel_eval_finish(ad_pixel_eval *pe, ad_pixel_metrics *out)
{
    if (!pe || !out) return adi_fail(AD_E_ARG, "ad_pixel_eval_finish: pe and out must not be NULL");
    if (!pe->n_pos || !pe->n_neg)
        return adi_fail(AD_E_ARG,
                       "ad_pixel_eval_finish: both classes are needed (%zu anomalous, %zu normal "
                       "pixels over %zu images)",
                       pe->n_pos, pe->n_neg, pe->n_images);
    /* pro_change = 1. / region_size in float64 */
    double *weight = adi_alloc(pe->n_regions, sizeof *weight);
    if (!weight) return AD_E_NOMEM;
    for (size_t k = 0; k < pe->n_regions; k++) weight[k] = 1.0 / (double)pe->region_size[k];

    adi_sort_u32(pe->neg, pe->n_neg);
    adi_sort_u64(pe->pos, pe->n_pos);

    adi_curve_acc acc;
    adi_curve_init(&acc, pe->n_pos, pe->n_neg);
    adi_curve_enable_pro(&acc, (double)pe->n_regions, AD_PRO_FPR_LIMIT);
    const uint32_t *neg = pe->neg;
    const uint64_t *pos = pe->pos;
    size_t i = pe->n_neg, j = pe->n_pos;
    while (i || j) {
        uint32_t k;
        if (!j) k = neg[i - 1];
        else if (!i) k = (uint32_t)(pos[j - 1] >> 32);
        else {
            uint32_t kp = (uint32_t)(pos[j - 1] >> 32);
            k = neg[i - 1] > kp ? neg[i - 1] : kp;
        }
        uint64_t dn = 0, dp = 0;
        while (i && neg[i - 1] == k) {
            i--;
            dn++;
        }
        /* the original's float64 cumsum, one pixel at a time, highest score first */
        while (j && (uint32_t)(pos[j - 1] >> 32) == k) {
            j--;
            acc.pro_cum += weight[(uint32_t)pos[j]];
            dp++;
        }
        adi_curve_step(&acc, dn, dp, 0.0);
    }
    adi_free(weight);
    ad_pixel_metrics m;
    adi_curve_finish(&acc, &m.auroc, NULL, &m.f1max, &m.aupro);
    *out = m;
    return AD_OK;
}
