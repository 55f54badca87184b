/* One walk over the distinct thresholds, highest score first, integrating ROC, PR and PRO curves
 * together (see eval.h). The formulas follow scikit-learn 1.2 (_binary_clf_curve, roc_curve +
 * auc, average_precision_score, precision_recall_curve) and the MVTec AD evaluation code as used
 * by AnomalyDINO's src/post_eval.py (compute_pro + trapezoid). */
#include "eval/eval.h"

#include <math.h>
#include <string.h>

void adi_curve_init(adi_curve_acc *a, uint64_t n_pos, uint64_t n_neg)
{
    memset(a, 0, sizeof *a);
    a->n_pos = n_pos;
    a->n_neg = n_neg;
}

void adi_curve_enable_pro(adi_curve_acc *a, double n_regions, double fpr_limit)
{
    a->pro = 1;
    a->n_regions = n_regions;
    a->pro_limit = fpr_limit;
    /* compute_pro casts the uint32 cumsum to float32 and divides it by the negative count in a
     * float32 ufunc loop, so the count itself is rounded to float32 (it matters above 2^24). */
    a->n_neg_f = (float)a->n_neg;
}

static void neumaier_add(double *sum, double *comp, double v)
{
    double t = *sum + v;
    if (fabs(*sum) >= fabs(v)) *comp += (*sum - t) + v;
    else *comp += (v - t) + *sum;
    *sum = t;
}

/* trapezoid(x, y, x_max) of the original, one sample at a time (x never decreases). */
static void pro_point(adi_curve_acc *a, double x, double y)
{
    if (a->pro_done) return;
    if (x <= a->pro_limit) {
        if (x == a->pro_limit) a->pro_limit_hit = 1;
        neumaier_add(&a->pro_area, &a->pro_area_comp, 0.5 * (y + a->py) * (x - a->px));
        a->px = x;
        a->py = y;
        return;
    }
    /* First sample beyond the limit: x[ins] of bisect. Interpolate PRO at the limit unless a
     * sample lay exactly on it ("x_max not in x"). Same operation order as the original. */
    if (!a->pro_limit_hit) {
        double yi = a->py + ((y - a->py) * (a->pro_limit - a->px)) / (x - a->px);
        a->pro_corr = 0.5 * (yi + a->py) * (a->pro_limit - a->px);
    }
    a->pro_done = 1;
}

void adi_curve_step(adi_curve_acc *a, uint64_t d_neg, uint64_t d_pos, double d_pro)
{
    uint64_t tp_prev = a->tp;
    a->tp += d_pos;
    a->fp += d_neg;
    /* Trapezoid of the ROC in counts: the area does not depend on which collinear points
     * roc_curve's drop_intermediate removes, and integers make it exact. */
    a->roc2 += (adi_u128)d_neg * (adi_u128)(a->tp + tp_prev);

    /* precision_recall_curve point. With tp == 0 precision and recall are 0: F1 is 0/0 (ignored
     * as non-finite) and the AP term is 0. */
    if (a->tp > 0) {
        double p = (double)a->tp / (double)(a->tp + a->fp);
        double r = (double)a->tp / (double)a->n_pos;
        neumaier_add(&a->ap, &a->ap_comp, (r - a->recall_prev) * p);
        a->recall_prev = r;
        double f1 = (2.0 * p * r) / (p + r);
        if (f1 > a->f1max) a->f1max = f1;
    }

    if (a->pro) {
        a->pro_cum += d_pro;
        float xf = (float)a->fp / a->n_neg_f;
        double x = xf > 1.0f ? 1.0 : (double)xf;
        double y = a->pro_cum / a->n_regions;
        if (y > 1.0) y = 1.0;   /* np.clip(pros, None, 1): cumsum rounding */
        pro_point(a, x, y);
    }
}

void adi_curve_finish(adi_curve_acc *a, double *auroc, double *ap, double *f1max, double *aupro)
{
    if (auroc) *auroc = (double)a->roc2 / (2.0 * (double)a->n_pos * (double)a->n_neg);
    if (ap) *ap = a->ap + a->ap_comp;
    /* The final precision-recall point (P = 1, R = 0) has F1 = 0, which never beats a real one. */
    if (f1max) *f1max = a->f1max;
    if (aupro) {
        if (a->pro) {
            pro_point(a, 1.0, 1.0);   /* the (1, 1) compute_pro appends */
            *aupro = (a->pro_area + a->pro_area_comp + a->pro_corr) / a->pro_limit;
        } else {
            *aupro = 0.0;
        }
    }
}
