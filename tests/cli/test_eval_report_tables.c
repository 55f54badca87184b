/* The summaries `anomalydino eval` writes from its run records (read into the results structs
 * the report renders, as a resumed run reads them): mean and population std over
 * seeds, the macro average over categories (per seed, then over seeds), runs that are missing,
 * the metrics.json / metrics.csv / tables.md layouts (x100, one decimal, "mean ± std"), and the
 * self-contained report's building blocks (PNG encoder, base64). Synthetic records, no model. */
#include "testutil.h"

#include "report/report.h"
#include "io/io.h"

#include <string.h>

static cJSON *make_run(const char *cat, double auroc, double ap, int with_pixel)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "category", cat);
    cJSON_AddNumberToObject(r, "bank_seconds", 0.5);
    cJSON_AddNumberToObject(r, "bank_rows", 1024);
    cJSON *refs = cJSON_AddArrayToObject(r, "references");
    cJSON_AddItemToArray(refs, cJSON_CreateString("000.png"));
    cJSON *imgs = cJSON_AddArrayToObject(r, "images");
    /* four images: two normal, two anomalous, perfectly separated */
    for (int i = 0; i < 4; i++) {
        cJSON *it = cJSON_CreateObject();
        char nm[32];
        snprintf(nm, sizeof nm, "%s/%03d.png", i < 2 ? "good" : "crack", i);
        cJSON_AddStringToObject(it, "image", nm);
        cJSON_AddNumberToObject(it, "label", i >= 2);
        cJSON_AddNumberToObject(it, "score", 0.1 * (i + 1));
        cJSON_AddNumberToObject(it, "seconds", 0.01);
        cJSON_AddItemToArray(imgs, it);
    }
    cJSON *m = cJSON_AddObjectToObject(r, "metrics");
    cJSON_AddNumberToObject(m, "image_auroc", auroc);
    cJSON_AddNumberToObject(m, "image_ap", ap);
    cJSON_AddNumberToObject(m, "image_f1max", 1.0);
    if (with_pixel) {
        cJSON_AddNumberToObject(m, "pixel_auroc", 0.95);
        cJSON_AddNumberToObject(m, "pixel_f1max", 0.5);
        cJSON_AddNumberToObject(m, "pixel_aupro", 0.9);
    }
    return r;
}

static int contains(const char *text, const char *needle)
{
    return text && strstr(text, needle) != NULL;
}

static void check_close(const char *what, double got, double want)
{
    double d = fabs(got - want);
    printf("%-40s %.12f (want %.12f, |diff| %.2e)\n", what, got, want, d);
    CHECK(d < 1e-12, "%s: %.15g, want %.15g", what, got, want);
}

static void test_summaries(void)
{
    /* shots {1, full}, seeds {0, 1, 2}, categories {bottle, screw} */
    int shots[2] = {1, -1}, seeds[3] = {0, 1, 2};
    char *cats[2] = {"bottle", "screw"};
    cJSON *runs[2 * 3 * 2] = {0};
#define RUN(s, d, c) runs[((s) * 3 + (d)) * 2 + (c)]
    RUN(0, 0, 0) = make_run("bottle", 0.9, 0.5, 1);
    RUN(0, 1, 0) = make_run("bottle", 0.8, 0.5, 1);
    RUN(0, 2, 0) = make_run("bottle", 1.0, 0.5, 1);
    RUN(0, 0, 1) = make_run("screw", 0.7, 0.25, 1);
    RUN(0, 1, 1) = make_run("screw", 0.5, 0.25, 1);
    /* screw seed 2 missing: its mean/std use seeds 0 and 1 only */
    RUN(1, 0, 0) = make_run("bottle", 0.95, 0.75, 1);
    RUN(1, 0, 1) = make_run("screw", 0.85, 0.75, 1);
    cJSON *settings = cJSON_CreateObject();
    cJSON_AddStringToObject(settings, "dataset", "mvtec");
    cJSON_AddStringToObject(settings, "preset", "agnostic");
    rep_input in = {0};
    in.n_shots = 2;
    in.shots = shots;
    in.n_seeds = 3;
    in.seeds = seeds;
    in.n_cats = 2;
    in.cats = cats;
    /* the report renders units, not records: each record read as a resumed run reads it */
    pr_unit units[2 * 3 * 2];
    pr_unit *unit_ptrs[2 * 3 * 2] = {0};
    memset(units, 0, sizeof units);
    for (int i = 0; i < 2 * 3 * 2; i++) {
        if (!runs[i]) continue;
        CHECK(pr_record_from_json(&units[i], runs[i], NULL, NULL, 0, NULL, 0, NULL) == 0,
              "record %d read", i);
        units[i].u.n_references = cJSON_GetArraySize(cJSON_GetObjectItem(runs[i], "references"));
        unit_ptrs[i] = &units[i];
    }
    in.runs = unit_ptrs;
    in.settings = settings;
    static char out_dir[1024];
    snprintf(out_dir, sizeof out_dir, "%s", t_tmp("report_tables"));
    adi_io_mkdirs(out_dir);
    in.out_dir = out_dir;
    char *notes[1] = {"screw: something <left> out"};
    in.notes = notes;
    in.n_notes = 1;

    double mu = 0, sd = 0;
    int n = rep_cell_stats(&in, 0, 0, 0, &mu, &sd);
    CHECK(n == 3, "bottle 1-shot: 3 seeds, got %d", n);
    check_close("bottle 1-shot AUROC mean", mu, 0.9);
    check_close("bottle 1-shot AUROC std (ddof 0)", sd, sqrt(0.02 / 3));
    n = rep_cell_stats(&in, 0, 1, 0, &mu, &sd);
    CHECK(n == 2, "screw 1-shot: 2 seeds, got %d", n);
    check_close("screw 1-shot AUROC mean", mu, 0.6);
    check_close("screw 1-shot AUROC std", sd, 0.1);
    /* macro average per seed: (0.8, 0.65, 1.0) -> mean 0.816..., std over those */
    n = rep_cell_stats(&in, 0, -1, 0, &mu, &sd);
    double m0 = 0.8, m1 = 0.65, m2 = 1.0, mm = (m0 + m1 + m2) / 3;
    CHECK(n == 3, "macro mean over 3 seeds, got %d", n);
    check_close("mean 1-shot AUROC", mu, mm);
    check_close("mean 1-shot AUROC std",
                sd, sqrt(((m0 - mm) * (m0 - mm) + (m1 - mm) * (m1 - mm) + (m2 - mm) * (m2 - mm)) / 3));
    n = rep_cell_stats(&in, 1, -1, 1, &mu, &sd);
    CHECK(n == 1, "full shot: one seed, got %d", n);
    check_close("mean full-shot AP", mu, 0.75);

    char k[16];
    rep_shots_key(-1, k, sizeof k);
    CHECK(!strcmp(k, "full"), "full-shot key %s", k);
    rep_shots_key(16, k, sizeof k);
    CHECK(!strcmp(k, "16"), "16-shot key %s", k);

    /* metrics.json */
    cJSON *mj = rep_metrics_json(&in);
    CHECK(mj != NULL, "rep_metrics_json");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(mj, "results"),
                                                 "1"),
                "1"),
            "screw"),
        "image_auroc");
    CHECK(cJSON_IsNumber(v) && v->valuedouble == 0.5, "results.1.1.screw.image_auroc");
    CHECK(!cJSON_GetObjectItemCaseSensitive(
              cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(mj, "results"),
                                                   "1"),
                  "2"),
              "screw"),
          "a missing run is absent from results");
    v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(mj, "mean"), "full"),
            "mean"),
        "image_ap");
    CHECK(cJSON_IsNumber(v) && v->valuedouble == 0.75, "mean.full.mean.image_ap");
    v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(mj, "std"), "1"),
            "screw"),
        "image_auroc");
    CHECK(cJSON_IsNumber(v) && fabs(v->valuedouble - 0.1) < 1e-12, "std.1.screw.image_auroc");
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(mj, "version")), "version");
    CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(mj, "settings")), "settings");
    cJSON_Delete(mj);

    /* tables.md: x100, one decimal, mean ± std (population) */
    char *md = rep_tables_md(&in);
    CHECK(md != NULL, "rep_tables_md");
    printf("%s", md ? md : "");
    CHECK(contains(md, "| bottle | 90.0 ± 8.2 | 95.0 |"), "bottle AUROC row");
    CHECK(contains(md, "| screw | 60.0 ± 10.0 | 85.0 |"), "screw AUROC row (2 seeds)");
    CHECK(contains(md, "| 1-shot | full-shot |"), "shots columns");
    CHECK(contains(md, "AU-PRO"), "segmentation tables present");
    /* cells made from fewer runs than asked are named under their table, not passed off */
    CHECK(contains(md, "Incomplete") && contains(md, "screw 1-shot (2 of 3 seeds)"),
          "screw 1-shot flagged as 2 of 3 seeds");
    CHECK(contains(md, "Mean 1-shot (not every category has every run)"),
          "the 1-shot mean (seed 2 without screw) flagged");
    CHECK(!contains(md, "bottle 1-shot (") && !contains(md, "full-shot ("),
          "complete cells (full shot: one seed asked) not flagged");
    free(md);

    /* no run at all: a sentence, not tables without columns */
    {
        pr_unit *none[2 * 3 * 2] = {0};
        rep_input empty = in;
        empty.runs = none;
        char *md0 = rep_tables_md(&empty);
        CHECK(contains(md0, "No results") && !contains(md0, "| Shots |"),
              "empty results: said, no degenerate table");
        free(md0);
    }

    /* CSV and HTML files */
    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.csv", in.out_dir);
    CHECK_OK(rep_write_metrics_csv(path, &in));
    size_t len;
    char *csv = adi_io_read_file(path, &len);
    CHECK(contains(csv, "shots,seed,category,image_auroc,image_ap,image_f1max,pixel_auroc,"
                        "pixel_f1max,pixel_aupro\n"),
          "metrics.csv header");
    CHECK(contains(csv, "\n1,0,bottle,0.9,0.5,1,0.95,0.5,0.9\n"), "metrics.csv run row");
    CHECK(contains(csv, "\n1,mean,bottle,0.9,"), "metrics.csv mean-over-seeds row");
    CHECK(contains(csv, "\nfull,0,mean,0.89999999999999991,0.75,"), "metrics.csv macro row (full shot)");
    free(csv);
    snprintf(path, sizeof path, "%s/report.html", in.out_dir);
    CHECK_OK(rep_write_html(path, &in));
    char *html = adi_io_read_file(path, &len);
    CHECK(contains(html, "<!DOCTYPE html>") && contains(html, "</html>"), "complete document");
    CHECK(contains(html, "<polyline"), "ROC/PR curves drawn");
    /* perfectly separated scores: the ROC passes through (FPR 0, TPR 1) = plot corner (42, 12) */
    CHECK(contains(html, " 42.0,12.0 "), "ROC corner point");
    /* the PR curve ends at full recall (sklearn): no drop to precision 2/4 at recall 1, which
     * would show a perfect detector (AP 100) as a curve falling to 0.5 */
    CHECK(contains(html, "232.0,12.0\"/>") && !contains(html, "232.0,107.0"),
          "PR curve stops at (recall 1, precision 1)");
    CHECK(contains(html, "Incomplete"), "report flags incomplete cells too");
    CHECK(contains(html, "something &lt;left&gt; out"), "notes escaped");
    CHECK(!contains(html, "src=\"http"), "no external resources");
    free(html);

    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        cJSON_Delete(runs[i]);
        pr_unit_clear(&units[i]);
    }
    cJSON_Delete(settings);
#undef RUN
}

static void test_base64_png(void)
{
    /* RFC 4648 section 10 */
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                      "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *b = rep_base64((const uint8_t *)in[i], strlen(in[i]));
        CHECK(b && !strcmp(b, out[i]), "base64(\"%s\") = %s, want %s", in[i], b ? b : "(null)",
              out[i]);
        free(b);
    }

    /* PNG from memory decodes to the same pixels (RGB and grey) */
    enum { PW = 37, PH = 23 };
    uint8_t rgb[PW * PH * 3], grey[PW * PH];
    for (int i = 0; i < PW * PH; i++) {
        grey[i] = (uint8_t)(i * 7);
        for (int c = 0; c < 3; c++) rgb[3 * i + c] = (uint8_t)(i * (c + 3) + c);
    }
    for (int ch = 1; ch <= 3; ch += 2) {
        uint8_t *buf = NULL;
        size_t n = 0;
        CHECK_OK(adi_io_encode_png(ch == 3 ? rgb : grey, PW, PH, ch, &buf, &n));
        char path[1200];
        snprintf(path, sizeof path, "%s", t_tmp("report_tables"));
        adi_io_mkdirs(path);
        snprintf(path + strlen(path), sizeof path - strlen(path), "/enc%d.png", ch);
        FILE *f = fopen(path, "wb");
        if (f && buf) {
            fwrite(buf, 1, n, f);
            fclose(f);
        }
        free(buf);
        ad_image img = {0};
        CHECK_OK(adi_io_read_image(path, &img));
        int bad = 0;
        if (img.data && img.width == PW && img.height == PH)
            for (int i = 0; i < PW * PH; i++)
                for (int c = 0; c < 3; c++)
                    bad += img.data[3 * i + c] != (ch == 3 ? rgb[3 * i + c] : grey[i]);
        else bad = -1;
        printf("PNG %d channel(s): %zu bytes, %d pixel values differ after decoding\n", ch, n, bad);
        CHECK(bad == 0, "%d-channel PNG round trip: %d values differ", ch, bad);
        ad_image_free(&img);
    }
    uint8_t *buf = NULL;
    size_t n = 0;
    CHECK(adi_io_encode_png(rgb, 0, 5, 3, &buf, &n) == AD_E_ARG, "empty image refused");
    CHECK(adi_io_encode_png(rgb, 5, 5, 2, &buf, &n) == AD_E_ARG, "2 channels refused");

    /* the colour scale: black at 0, saturating above vmax, NaN as 0 */
    uint8_t a[3], b[3], c[3];
    rep_colormap(0, a);
    rep_colormap(1, b);
    rep_colormap(5, c);
    CHECK(a[0] + a[1] + a[2] < 10 && b[0] > 240 && b[1] > 240, "colormap ends");
    CHECK(!memcmp(b, c, 3), "values above vmax saturate");
    rep_colormap(NAN, c);
    CHECK(!memcmp(a, c, 3), "NaN drawn as 0");
}

int main(void)
{
    test_summaries();
    test_base64_png();
    return t_done("test_eval_report_tables");
}
