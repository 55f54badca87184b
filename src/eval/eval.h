/* Internal pieces of the evaluation metrics: the one-pass curve accumulator shared by the image
 * and pixel metrics, sortable keys, in-place radix sorts and 8-connected labelling. */
#ifndef AD_EVAL_H
#define AD_EVAL_H

#include "core/core.h"

#include <stdint.h>

/* The exact ROC sum 2*P*N outgrows 64 bits once both classes pass about 3e9 samples. */
__extension__ typedef unsigned __int128 adi_u128;

/* Walks the distinct thresholds of a binary score ranking from the highest score down and
 * integrates, at the same time, everything the metrics need:
 *   - ROC area (scikit-learn roc_auc_score): exact, as an integer sum of trapezoids;
 *   - average precision (average_precision_score): sum (R_n - R_{n-1}) P_n;
 *   - F1-max over the precision-recall curve points (2PR/(P+R), non-finite ignored);
 *   - optionally AU-PRO of the MVTec algorithm up to an FPR limit.
 * A "step" is one distinct score value: how many negatives and positives share it and the sum of
 * the positives' region weights (1/|region|). Steps must come in strictly decreasing score. */
typedef struct {
    uint64_t n_pos, n_neg;      /* class totals (known before the walk) */
    uint64_t tp, fp;            /* cumulative counts at the current threshold */
    adi_u128 roc2;               /* sum over steps of dfp * (tp + tp_prev) = 2 * area * P * N */
    double ap, ap_comp;         /* Neumaier-compensated AP sum */
    double recall_prev;
    double f1max;
    /* AU-PRO */
    int pro;                    /* 0: not computed */
    double pro_limit;           /* FPR integration limit (0.3) */
    double n_regions;
    float n_neg_f;              /* the original divides in float32 */
    double pro_cum;             /* running sum of region weights (float64 cumsum of the original) */
    double px, py;              /* previous (FPR, PRO) point */
    double pro_area, pro_area_comp;
    double pro_corr;            /* interpolated piece up to the limit */
    int pro_limit_hit;          /* a sample lay exactly on the limit (no interpolation) */
    int pro_done;
} adi_curve_acc;

void adi_curve_init(adi_curve_acc *a, uint64_t n_pos, uint64_t n_neg);
/* Enables AU-PRO; n_regions > 0. */
void adi_curve_enable_pro(adi_curve_acc *a, double n_regions, double fpr_limit);
void adi_curve_step(adi_curve_acc *a, uint64_t d_neg, uint64_t d_pos, double d_pro);
/* After the last step: auroc, ap, f1max and (if enabled) the AU-PRO divided by the limit. */
void adi_curve_finish(adi_curve_acc *a, double *auroc, double *ap, double *f1max, double *aupro);

/* Order-preserving map of a float32 to uint32 (-0 folded onto +0, as numpy's diff sees them
 * equal). Not for NaN. */
static inline uint32_t adi_f32_key(float v)
{
    union {
        float f;
        uint32_t u;
    } c;
    c.f = v == 0.0f ? 0.0f : v;
    return (c.u & 0x80000000u) ? ~c.u : (c.u | 0x80000000u);
}

/* Ascending in-place sorts (no scratch buffer): the first 16 bits in one pass, then each bucket
 * on its own (in parallel with OpenMP). The result is unique, so it does not depend on threads. */
void adi_sort_u32(uint32_t *a, size_t n);
void adi_sort_u64(uint64_t *a, size_t n);

/* 8-connected components of mask != 0 (scipy.ndimage.label with a 3x3 ones structure):
 * labels[i] = 0 for background, 1..n for regions numbered in raster order of their first pixel;
 * sizes[k-1] = pixel count of region k. *sizes is adi_alloc'ed (NULL when there is no region). */
ad_status adi_label8(const uint8_t *mask, int w, int h, uint32_t *labels, uint32_t *n_regions,
                    uint32_t **sizes);

#endif
