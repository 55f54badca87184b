/* The one-pass metrics equal a literal, array-by-array port of what the original runs
 * (scikit-learn 1.2 _binary_clf_curve -> roc_curve(drop_intermediate=True) -> auc,
 * precision_recall_curve truncated at full recall -> average_precision_score and F1-max, and the
 * MVTec compute_pro -> trapezoid(x_max=0.3) / 0.3 with BFS-labelled 8-connected regions) on
 * random cases full of ties, -0.0 / +0.0, diagonal-only region contacts and good images. */
#include "eval/eval.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}
static double urand(void) { return rnd() / 2147483648.0; }

/* ---------------------------------------------------------------- reference (plain arrays) */
typedef struct {
    double s;
    int y;
    double pro;    /* pro_change of the pixel */
    int ok;        /* fp_change */
} item;

static int cmp_item_desc(const void *a, const void *b)
{
    double x = ((const item *)a)->s, y = ((const item *)b)->s;
    return (x < y) - (x > y);
}

/* _binary_clf_curve: fps, tps, count of distinct thresholds. */
static size_t clf_curve(item *v, size_t n, double *fps, double *tps)
{
    qsort(v, n, sizeof *v, cmp_item_desc);
    size_t m = 0;
    double tp = 0;
    for (size_t i = 0; i < n; i++) {
        tp += v[i].y;
        if (i + 1 == n || v[i + 1].s - v[i].s != 0) {   /* np.diff(y_score) != 0 */
            tps[m] = tp;
            fps[m] = (double)(i + 1) - tp;
            m++;
        }
    }
    return m;
}

static void ref_metrics(item *v, size_t n, double *auroc, double *ap, double *f1max)
{
    double *fps = malloc((n + 2) * sizeof *fps), *tps = malloc((n + 2) * sizeof *tps);
    double *fx = malloc((n + 2) * sizeof *fx), *tx = malloc((n + 2) * sizeof *tx);
    size_t m = clf_curve(v, n, fps, tps);
    /* roc_curve, drop_intermediate: keep ends and points where a second difference is nonzero */
    size_t k = 0;
    fx[k] = 0;
    tx[k++] = 0;
    for (size_t i = 0; i < m; i++) {
        int keep = m <= 2 || i == 0 || i + 1 == m ||
                   (fps[i + 1] - fps[i]) - (fps[i] - fps[i - 1]) != 0 ||
                   (tps[i + 1] - tps[i]) - (tps[i] - tps[i - 1]) != 0;
        if (keep) {
            fx[k] = fps[i];
            tx[k++] = tps[i];
        }
    }
    double fl = fx[k - 1], tl = tx[k - 1], area = 0;
    for (size_t i = 1; i < k; i++)
        area += (fx[i] / fl - fx[i - 1] / fl) * (tx[i] / tl + tx[i - 1] / tl) / 2.0;
    *auroc = area;
    /* precision_recall_curve: stop at the first full recall, reverse, append (P=1, R=0) */
    size_t last = 0;
    while (tps[last] != tps[m - 1]) last++;
    size_t np_ = 0;
    double *P = fx, *R = tx;
    for (size_t i = last + 1; i-- > 0;) {
        P[np_] = tps[i] / (tps[i] + fps[i]);
        R[np_++] = tps[i] / tps[m - 1];
    }
    P[np_] = 1;
    R[np_++] = 0;
    double s = 0, best = -1;
    for (size_t i = 0; i + 1 < np_; i++) s += (R[i + 1] - R[i]) * P[i];
    *ap = -s;
    for (size_t i = 0; i < np_; i++) {
        double f = 2 * P[i] * R[i] / (P[i] + R[i]);
        if (isfinite(f) && f > best) best = f;
    }
    *f1max = best;
    free(fps);
    free(tps);
    free(fx);
    free(tx);
}

static double ref_aupro(item *v, size_t n, double n_regions, double limit)
{
    qsort(v, n, sizeof *v, cmp_item_desc);
    size_t n_ok = 0;
    for (size_t i = 0; i < n; i++) n_ok += (size_t)v[i].ok;
    double *x = malloc((n + 2) * sizeof *x), *y = malloc((n + 2) * sizeof *y);
    size_t m = 0;
    x[m] = 0;
    y[m++] = 0;
    uint64_t fp = 0;
    double pro = 0;
    for (size_t i = 0; i < n; i++) {
        fp += (uint64_t)v[i].ok;
        pro += v[i].pro;
        if (i + 1 == n || v[i + 1].s - v[i].s != 0) {
            float fx = (float)fp;
            fx = fx / (float)n_ok;
            x[m] = fx > 1.0f ? 1.0 : fx;
            double py = pro / n_regions;
            y[m++] = py > 1 ? 1 : py;
        }
    }
    x[m] = 1;
    y[m++] = 1;
    double corr = 0;
    int in = 0;
    for (size_t i = 0; i < m; i++) in |= x[i] == limit;
    if (!in) {
        size_t ins = 0;
        while (ins < m && x[ins] <= limit) ins++;   /* bisect_right */
        double yi = y[ins - 1] + ((y[ins] - y[ins - 1]) * (limit - x[ins - 1]) /
                                  (x[ins] - x[ins - 1]));
        corr = 0.5 * (yi + y[ins - 1]) * (limit - x[ins - 1]);
    }
    double s = 0;
    for (size_t i = 1; i < m && x[i] <= limit; i++)
        s += 0.5 * (y[i] + y[i - 1]) * (x[i] - x[i - 1]);
    free(x);
    free(y);
    return (s + corr) / limit;
}

/* BFS labelling, 8-connected; returns the region count, fills per-pixel region size. */
static int ref_label(const uint8_t *mask, int w, int h, int *lab, int *size_of_pixel)
{
    int n = 0;
    int *queue = malloc((size_t)w * h * sizeof *queue);
    for (int i = 0; i < w * h; i++) lab[i] = 0;
    for (int s = 0; s < w * h; s++) {
        if (!mask[s] || lab[s]) continue;
        n++;
        int qh = 0, qt = 0;
        queue[qt++] = s;
        lab[s] = n;
        while (qh < qt) {
            int p = queue[qh++], px = p % w, py = p / w;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int x = px + dx, y = py + dy;
                    if (x < 0 || y < 0 || x >= w || y >= h) continue;
                    int q = y * w + x;
                    if (mask[q] && !lab[q]) {
                        lab[q] = n;
                        queue[qt++] = q;
                    }
                }
        }
        for (int i = 0; i < qt; i++) size_of_pixel[queue[i]] = qt;
    }
    free(queue);
    return n;
}

/* ---------------------------------------------------------------- cases */
static double worst[6];
static const char *names[6] = {"auroc", "ap", "f1max", "pixel_auroc", "pixel_f1max", "pixel_aupro"};

static void diff(int which, const char *cs, double got, double want)
{
    double d = fabs(got - want);
    if (!(d <= worst[which])) worst[which] = d;
    CHECK(d <= 1e-12, "%s %s: got %.17g reference %.17g", cs, names[which], got, want);
}

static void image_case(int c, size_t n, int levels)
{
    int *lab = malloc(n * sizeof *lab);
    double *sc = malloc(n * sizeof *sc);
    item *v = malloc(n * sizeof *v);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        lab[i] = urand() < 0.4;
        pos += (size_t)lab[i];
        /* a few quantised levels make heavy ties; signs flip to mix -0.0 and +0.0 */
        double s = levels ? (double)(rnd() % (unsigned)levels) / levels + 0.3 * lab[i] * urand()
                          : urand() + 0.5 * lab[i];
        if (levels && s == 0 && (rnd() & 1)) s = -0.0;
        sc[i] = s;
        v[i] = (item){s, lab[i], 0, !lab[i]};
    }
    if (pos == 0 || pos == n) lab[0] = !lab[0], v[0].y = lab[0];
    ad_image_metrics m;
    CHECK_OK(ad_metrics_image(lab, sc, n, &m));
    double ra, rp, rf;
    ref_metrics(v, n, &ra, &rp, &rf);
    char cs[64];
    snprintf(cs, sizeof cs, "image case %d (n %zu, levels %d)", c, n, levels);
    diff(0, cs, m.auroc, ra);
    diff(1, cs, m.ap, rp);
    diff(2, cs, m.f1max, rf);
    free(lab);
    free(sc);
    free(v);
}

static void pixel_case(int c, int n_img, int w, int h, int levels)
{
    size_t npx = (size_t)n_img * w * h;
    item *v = malloc(npx * sizeof *v);
    float *map = malloc((size_t)w * h * sizeof *map);
    uint8_t *mask = malloc((size_t)w * h);
    int *lab = malloc((size_t)w * h * sizeof *lab), *sz = malloc((size_t)w * h * sizeof *sz);
    ad_pixel_eval *pe = ad_pixel_eval_new();
    double regions = 0;
    size_t k = 0;
    for (int im = 0; im < n_img; im++) {
        int good = im % 3 == 0;
        memset(mask, 0, (size_t)w * h);
        if (!good) {
            /* blobs, single pixels and diagonal chains (8-connected, not 4-connected) */
            for (int b = 0; b < 3; b++) {
                int cx = (int)(rnd() % (unsigned)w), cy = (int)(rnd() % (unsigned)h);
                int r = (int)(rnd() % 4);
                for (int y = cy - r; y <= cy + r; y++)
                    for (int x = cx - r; x <= cx + r; x++)
                        if (x >= 0 && y >= 0 && x < w && y < h) mask[y * w + x] = 255;
            }
            int x = (int)(rnd() % (unsigned)w), y = 0;
            for (; x < w && y < h; x++, y++) mask[y * w + x] = 1;
        }
        for (int i = 0; i < w * h; i++) {
            float s = levels ? (float)(rnd() % (unsigned)levels) / levels
                             : (float)urand();
            if (mask[i]) s += levels ? 0.25f * (float)(rnd() % 3) : 0.3f * (float)urand();
            if (s == 0 && (rnd() & 1)) s = -0.0f;
            map[i] = s;
        }
        int nr = good ? 0 : ref_label(mask, w, h, lab, sz);
        regions += nr;
        for (int i = 0; i < w * h; i++)
            v[k++] = (item){map[i], mask[i] != 0, mask[i] ? 1.0 / sz[i] : 0.0, !mask[i]};
        CHECK_OK(ad_pixel_eval_add(pe, map, good ? NULL : mask, w, h));
    }
    ad_pixel_metrics m;
    CHECK_OK(ad_pixel_eval_finish(pe, &m));
    double ra, rp, rf;
    ref_metrics(v, npx, &ra, &rp, &rf);
    double rpro = ref_aupro(v, npx, regions, 0.3);
    char cs[80];
    snprintf(cs, sizeof cs, "pixel case %d (%d x %dx%d, levels %d)", c, n_img, w, h, levels);
    diff(3, cs, m.auroc, ra);
    diff(4, cs, m.f1max, rf);
    diff(5, cs, m.aupro, rpro);
    printf("  %s: auroc %.6f f1max %.6f aupro %.6f, %g regions\n", cs, m.auroc, m.f1max, m.aupro,
           regions);
    ad_pixel_eval_free(pe);
    free(v);
    free(map);
    free(mask);
    free(lab);
    free(sz);
}

int main(void)
{
    rng_state = 12345;
    int c = 0;
    for (int rep = 0; rep < 30; rep++) {
        image_case(c++, 2 + rnd() % 60, 0);
        image_case(c++, 2 + rnd() % 60, 1 + (int)(rnd() % 6));
    }
    image_case(c++, 5000, 0);
    image_case(c++, 5000, 50);
    c = 0;
    pixel_case(c++, 6, 37, 23, 0);
    pixel_case(c++, 6, 37, 23, 7);
    pixel_case(c++, 4, 64, 48, 2);
    pixel_case(c++, 9, 50, 40, 0);
    pixel_case(c++, 5, 90, 70, 100);
    for (int i = 0; i < 6; i++) printf("largest |diff| %-12s %.3g\n", names[i], worst[i]);
    return t_done("test_metrics_match_reference");
}
