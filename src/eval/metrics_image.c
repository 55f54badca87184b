/* Image-level AUROC, AP and F1-max (scikit-learn 1.2 roc_auc_score, average_precision_score and
 * the max of 2PR/(P+R) over precision_recall_curve, as AnomalyDINO's post_eval.py). */
#include "eval/eval.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    double score;
    size_t index;
} scored;

/* Descending score; the index only makes the order total (ties are grouped anyway). */
static int cmp_desc(const void *pa, const void *pb)
{
    const scored *a = pa, *b = pb;
    if (a->score > b->score) return -1;
    if (a->score < b->score) return 1;
    return (a->index > b->index) - (a->index < b->index);
}

ad_status ad_metrics_image(const int *labels, const double *scores, size_t n,
                           ad_image_metrics *out)
{
    if (!labels || !scores || !out)
        return adi_fail(AD_E_ARG, "ad_metrics_image: labels, scores and out must not be NULL");
    uint64_t n_pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (labels[i] != 0 && labels[i] != 1)
            return adi_fail(AD_E_ARG, "ad_metrics_image: label %zu is %d (expected 0 or 1)", i,
                           labels[i]);
        /* scikit-learn rejects NaN and infinity (check_array) */
        if (!isfinite(scores[i]))
            return adi_fail(AD_E_ARG, "ad_metrics_image: score %zu is not finite (%g)", i,
                           scores[i]);
        n_pos += (uint64_t)labels[i];
    }
    uint64_t n_neg = (uint64_t)n - n_pos;
    if (n_pos == 0 || n_neg == 0)
        return adi_fail(AD_E_ARG,
                       "ad_metrics_image: both classes are needed (%llu anomalous, %llu normal)",
                       (unsigned long long)n_pos, (unsigned long long)n_neg);

    scored *v = adi_alloc(n, sizeof *v);
    if (!v) return AD_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        v[i].score = scores[i];
        v[i].index = i;
    }
    qsort(v, n, sizeof *v, cmp_desc);

    adi_curve_acc acc;
    adi_curve_init(&acc, n_pos, n_neg);
    size_t i = 0;
    while (i < n) {
        /* one distinct threshold: scikit-learn splits where np.diff(y_score) != 0, so -0.0 and
         * +0.0 are one threshold, as == has it */
        uint64_t dp = 0, dn = 0;
        size_t j = i;
        while (j < n && v[j].score == v[i].score) {
            if (labels[v[j].index]) dp++;
            else dn++;
            j++;
        }
        adi_curve_step(&acc, dn, dp, 0.0);
        i = j;
    }
    adi_free(v);
    ad_image_metrics m;
    adi_curve_finish(&acc, &m.auroc, &m.ap, &m.f1max, NULL);
    *out = m;
    return AD_OK;
}
