/* The six metrics of the original (scikit-learn 1.2 + MVTec AU-PRO, computed by the Python code on
 * tests/data/metrics/<case>) are reproduced by the library: every metric within 1e-6, AU-PRO
 * within 1e-5. One line per metric with the difference, pass or fail. */
#include "eval/eval.h"
#include "io/io.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROWS 256

typedef struct {
    int n;
    int label[MAX_ROWS];
    double score[MAX_ROWS];
    char map[MAX_ROWS][128];
    char mask[MAX_ROWS][128];
    int has_maps;
} table;

/* The golden CSVs are plain (no quotes): image,label,score[,map,mask]. The CLI's full parser is
 * tested through the binary. */
static int read_table(const char *path, table *t)
{
    size_t len;
    char *text = adi_io_read_file(path, &len);
    if (!text) return 0;
    memset(t, 0, sizeof *t);
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    t->has_maps = line && strstr(line, ",map") != NULL;
    while ((line = strtok_r(NULL, "\n", &save)) && t->n < MAX_ROWS) {
        char *f[5] = {0};
        int k = 0;
        char *p = line;
        f[k++] = p;
        for (; *p && k < 5; p++)
            if (*p == ',') {
                *p = 0;
                f[k++] = p + 1;
            }
        if (k < 3) continue;
        t->label[t->n] = atoi(f[1]);
        t->score[t->n] = strtod(f[2], NULL);
        if (k >= 4) snprintf(t->map[t->n], 128, "%s", f[3]);
        if (k >= 5) snprintf(t->mask[t->n], 128, "%s", f[4]);
        t->n++;
    }
    free(text);
    return t->n > 0;
}

static double expected(cJSON *j, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void compare(const char *cs, const char *key, double got, double want, double tol)
{
    double d = fabs(got - want);
    printf("  %-13s %-12s got %.17g want %.17g |diff| %.3g (tol %g)\n", cs, key, got, want, d,
           tol);
    CHECK(d <= tol, "%s %s: got %.17g want %.17g", cs, key, got, want);
}

static void run_case(const char *cs)
{
    char rel[256];
    snprintf(rel, sizeof rel, "metrics/%s/image_scores.csv", cs);
    table *t = malloc(sizeof *t);
    if (!t) return;
    CHECK(read_table(t_data(rel), t), "cannot read %s", t_data(rel));
    snprintf(rel, sizeof rel, "metrics/%s/expected.json", cs);
    char *js = adi_io_read_file(t_data(rel), NULL);
    cJSON *j = js ? cJSON_Parse(js) : NULL;
    CHECK(j != NULL, "cannot parse %s", t_data(rel));
    free(js);
    if (!j || !t->n) {
        cJSON_Delete(j);
        free(t);
        return;
    }

    ad_image_metrics im;
    CHECK_OK(ad_metrics_image(t->label, t->score, (size_t)t->n, &im));
    compare(cs, "image_auroc", im.auroc, expected(j, "image_auroc"), 1e-6);
    compare(cs, "image_ap", im.ap, expected(j, "image_ap"), 1e-6);
    compare(cs, "image_f1max", im.f1max, expected(j, "image_f1max"), 1e-6);

    if (t->has_maps) {
        ad_pixel_eval *pe = ad_pixel_eval_new();
        CHECK(pe != NULL, "ad_pixel_eval_new: %s", ad_errmsg());
        for (int i = 0; pe && i < t->n; i++) {
            snprintf(rel, sizeof rel, "metrics/%s/%s", cs, t->map[i]);
            adi_npy a;
            ad_status st = adi_npy_read(t_data(rel), &a);
            CHECK(st == AD_OK && a.dtype == AD_NPY_F4 && a.ndim == 2, "%s: %s", rel, ad_errmsg());
            if (st != AD_OK) continue;
            uint8_t *mask = NULL;
            int mw = 0, mh = 0;
            if (t->mask[i][0]) {
                snprintf(rel, sizeof rel, "metrics/%s/%s", cs, t->mask[i]);
                CHECK_OK(adi_io_read_mask(t_data(rel), &mask, &mw, &mh));
                CHECK(mask == NULL || ((size_t)mw == a.shape[1] && (size_t)mh == a.shape[0]),
                      "%s: mask %dx%d, map %zux%zu", rel, mw, mh, a.shape[1], a.shape[0]);
            }
            CHECK_OK(ad_pixel_eval_add(pe, a.data, mask, (int)a.shape[1], (int)a.shape[0]));
            adi_free(mask);
            adi_npy_free(&a);
        }
        ad_pixel_metrics pm;
        CHECK_OK(ad_pixel_eval_finish(pe, &pm));
        compare(cs, "pixel_auroc", pm.auroc, expected(j, "pixel_auroc"), 1e-6);
        compare(cs, "pixel_f1max", pm.f1max, expected(j, "pixel_f1max"), 1e-6);
        compare(cs, "pixel_aupro", pm.aupro, expected(j, "pixel_aupro"), 1e-5);
        ad_pixel_eval_free(pe);
    }
    cJSON_Delete(j);
    free(t);
}

int main(void)
{
    const char *cases[] = {"image_small", "image_perfect", "image_random", "image_ties",
                           "pixel_small", "pixel_medium"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(cases[i]);
    return t_done("test_metrics_golden");
}
