/* anomalydino bank add / bank info and fit --coreset / --bank-dtype end to end (tiny model, the
 * golden pipeline images at resolution 112): a bank fitted from one reference and grown with
 * `bank add --recalibrate` one image at a time has bit-identical rows and the same threshold as
 * the bank fitted from all of them; bank info (text and JSON) shows settings, names, times
 * (SOURCE_DATE_EPOCH) and the threshold history; format-1 files are shown, newer ones refused;
 * failures (other weights, unwritable output, recalibrating calibration-image thresholds without
 * images) leave the bank file untouched and no temporary file behind; usage errors exit 2. */
#include "anomalydino.h"
#include "detect/detect.h"
#include "io/io.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static char dir[1024];
static const char *B, *W, *W_OTHER;

static const char *p(const char *rel)
{
    static char bufs[16][2100];
    static int i = 0;
    char *b = bufs[i++ & 15];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, rel);
    return b;
}

static char *slurp(const char *path, size_t *n)
{
    size_t k = 0;
    char *s = adi_io_read_file(path, &k);
    if (n) *n = s ? k : 0;
    return s ? s : strdup("");
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = na == nb && na > 0 && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static int tmp_files_left(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

#define IMG(rel) t_data("pipeline/" rel)
#define FIT "ANOMALYDINO_QUIET=1 SOURCE_DATE_EPOCH=1764583200 %s fit -m %s --resolution 112 --rotate --mask-test --threads 2"
#define ADD "ANOMALYDINO_QUIET=1 SOURCE_DATE_EPOCH=1764586800 %s bank add -m %s --threads 2"

int main(void)
{
    B = t_bin();
    W = t_data("dinov2/tiny.safetensors");
    W_OTHER = t_data("dinov2/tiny_reg.safetensors");
    snprintf(dir, sizeof dir, "%s", t_tmp("cli_bank"));
    t_run("rm -rf '%s' && mkdir -p '%s'", dir, dir);
    const char *r0 = IMG("seed0/ref_0.png"), *r1 = IMG("seed2/ref_0.png"), *r2 = IMG("seed0/test_0.png"),
               *r3 = IMG("seed2/test_1.png");

    /* all at once vs one at a time */
    CHECK(t_run(FIT " -o %s %s %s %s %s > %s", B, W, p("all.adbank"), r0, r1, r2, r3, p("fit.txt")) == 0,
          "fit all");
    CHECK(t_run(FIT " -o %s %s > /dev/null", B, W, p("grown.adbank"), r0) == 0, "fit one");
    const char *more[3] = {r1, r2, r3};
    for (int i = 0; i < 3; i++)
        CHECK(t_run(ADD " --recalibrate %s %s > %s", B, W, p("grown.adbank"), more[i], p("add.txt")) == 0,
              "bank add %d", i);
    char *out = slurp(p("add.txt"), NULL);
    CHECK(strstr(out, "now 4 references") && strstr(out, "leave-one-out"), "bank add output: %s", out);
    free(out);
    ad_bank *all = ad_bank_load(p("all.adbank")), *grown = ad_bank_load(p("grown.adbank"));
    CHECK(all && grown, "banks: %s", ad_errmsg());
    if (all && grown) {
        int same = all->rows == grown->rows && all->side_rows == grown->side_rows &&
                   !memcmp(all->feat, grown->feat, all->rows * (size_t)all->dim * 4) &&
                   !memcmp(all->row_image, grown->row_image, all->rows * 4) &&
                   !memcmp(all->row_angle, grown->row_angle, all->rows) &&
                   !memcmp(all->row_cell, grown->row_cell, all->rows * 4);
        double ta = -1, tg = -2;
        ad_bank_threshold(all, &ta);
        ad_bank_threshold(grown, &tg);
        printf("fit all: %zu rows, threshold %.17g; fit one + 3 x bank add: %zu rows, threshold %.17g\n",
               all->rows, ta, grown->rows, tg);
        CHECK(same, "rows differ");
        CHECK(ta == tg, "thresholds differ");
        CHECK(ad_bank_threshold_count(grown) == 3 && ad_bank_threshold_count(all) == 1, "history %d / %d",
              ad_bank_threshold_count(grown), ad_bank_threshold_count(all));
    }
    ad_bank_free(all);
    ad_bank_free(grown);

    /* bank info, JSON */
    CHECK(t_run("%s bank info --json %s > %s", B, p("grown.adbank"), p("info.json")) == 0, "info --json");
    char *js = slurp(p("info.json"), NULL);
    cJSON *o = cJSON_Parse(js);
    CHECK(o != NULL, "info JSON does not parse: %s", js);
    if (o) {
        cJSON *refs = cJSON_GetObjectItem(o, "references"), *hist = cJSON_GetObjectItem(o, "threshold_history");
        CHECK(cJSON_GetObjectItem(o, "format_version")->valueint == 3, "format_version");
        CHECK(cJSON_GetArraySize(refs) == 4 && cJSON_GetArraySize(hist) == 3, "%d refs, %d records",
              cJSON_GetArraySize(refs), cJSON_GetArraySize(hist));
        cJSON *e0 = cJSON_GetArrayItem(refs, 0), *e3 = cJSON_GetArrayItem(refs, 3);
        CHECK(e0 && !strcmp(cJSON_GetObjectItem(e0, "name")->valuestring, r0) &&
                  !strcmp(cJSON_GetObjectItem(e0, "added")->valuestring, "2025-12-01T10:00:00Z") &&
                  cJSON_GetObjectItem(e0, "views")->valueint == 8,
              "reference 0 in JSON");
        CHECK(e3 && !strcmp(cJSON_GetObjectItem(e3, "name")->valuestring, r3) &&
                  !strcmp(cJSON_GetObjectItem(e3, "added")->valuestring, "2025-12-01T11:00:00Z"),
              "reference 3 in JSON");
        cJSON *h2 = cJSON_GetArrayItem(hist, 2);
        CHECK(h2 && !strcmp(cJSON_GetObjectItem(h2, "source")->valuestring, "leave-one-out") &&
                  !strcmp(cJSON_GetObjectItem(h2, "rule")->valuestring, "max") &&
                  cJSON_GetArraySize(cJSON_GetObjectItem(h2, "scores")) == 4 &&
                  cJSON_GetObjectItem(h2, "references")->valueint == 4,
              "last history record in JSON");
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "settings"), "coreset")),
              "exact bank shows coreset null");
        CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "settings"), "resolution")->valueint == 112,
              "resolution in JSON");
    }
    cJSON_Delete(o);
    free(js);
    /* text */
    CHECK(t_run("%s bank info %s > %s", B, p("grown.adbank"), p("info.txt")) == 0, "info");
    out = slurp(p("info.txt"), NULL);
    CHECK(strstr(out, "file format 3") && strstr(out, "resolution 112, rotate yes") &&
              strstr(out, "history     3 thresholds") && strstr(out, "seed2/test_1.png") &&
              strstr(out, "2025-12-01T11:00:00Z"),
          "info text:\n%s", out);
    free(out);
    /* the format-1 file of tests/data */
    CHECK(t_run("%s bank info %s > %s", B, t_data("banks/v1_tiny_res112_rot_mask.adbank"), p("v1.txt")) == 0,
          "info on format 1");
    out = slurp(p("v1.txt"), NULL);
    CHECK(strstr(out, "file format 1") && strstr(out, "unknown") && strstr(out, "0.108301163"),
          "format-1 info:\n%s", out);
    free(out);
    /* a newer version: refused with one line, exit 1 */
    size_t n = 0;
    char *raw = slurp(p("grown.adbank"), &n);
    raw[6] = 9;
    FILE *fp = fopen(p("v9.adbank"), "wb");
    fwrite(raw, 1, n, fp);
    fclose(fp);
    free(raw);
    CHECK(t_run("%s bank info %s 2> %s", B, p("v9.adbank"), p("v9.err")) == 1, "newer version: exit 1");
    out = slurp(p("v9.err"), NULL);
    CHECK(strstr(out, "version 9 is newer") != NULL, "newer version message: %s", out);
    free(out);

    /* failures leave the bank as it was */
    t_run("cp %s %s", p("grown.adbank"), p("before.adbank"));
    CHECK(t_run(ADD " %s %s 2> %s", B, W_OTHER, p("grown.adbank"), r0, p("err.txt")) == 1,
          "other weights: exit 1");
    out = slurp(p("err.txt"), NULL);
    CHECK(strstr(out, "other weights") != NULL, "other weights message: %s", out);
    free(out);
    CHECK(t_run(ADD " -o %s %s %s 2> /dev/null", B, W, p("no/such/dir/x.adbank"), p("grown.adbank"), r0) == 1,
          "unwritable output: exit 1");
    CHECK(t_run(ADD " %s %s %s 2> /dev/null", B, W, p("grown.adbank"), r0, p("missing.png")) == 1,
          "missing image: exit 1");
    CHECK(same_file(p("grown.adbank"), p("before.adbank")), "a failed bank add changed the bank");
    CHECK(tmp_files_left() == 0, "temporary files left behind");
    /* -o writes elsewhere, leaving BANK */
    CHECK(t_run(ADD " -o %s %s %s > /dev/null", B, W, p("other.adbank"), p("grown.adbank"), r0) == 0, "-o");
    CHECK(same_file(p("grown.adbank"), p("before.adbank")), "-o changed BANK");
    ad_bank *ob = ad_bank_load(p("other.adbank"));
    CHECK(ob && ad_bank_images(ob) == 5, "-o bank: %d references", ob ? ad_bank_images(ob) : -1);
    double t_keep = 0, t_before = 0;
    ad_bank *bb = ad_bank_load(p("before.adbank"));
    if (ob && bb) {
        ad_bank_threshold(ob, &t_keep);
        ad_bank_threshold(bb, &t_before);
        CHECK(t_keep == t_before && ad_bank_threshold_count(ob) == 3,
              "threshold changed without --recalibrate");
    }
    ad_bank_free(ob);
    ad_bank_free(bb);

    /* a threshold from calibration images: --recalibrate needs --calibrate */
    CHECK(t_run(FIT " -o %s --calibrate %s %s %s > /dev/null", B, W, p("cal.adbank"), r3, r0, r1) == 0,
          "fit with --calibrate");
    t_run("cp %s %s", p("cal.adbank"), p("cal_before.adbank"));
    CHECK(t_run(ADD " --recalibrate %s %s 2> %s", B, W, p("cal.adbank"), r2, p("cal.err")) == 1,
          "recalibrate without images: exit 1");
    out = slurp(p("cal.err"), NULL);
    CHECK(strstr(out, "--calibrate") != NULL, "message: %s", out);
    free(out);
    CHECK(same_file(p("cal.adbank"), p("cal_before.adbank")), "refused add changed the bank");
    CHECK(t_run(ADD " --calibrate %s %s %s > /dev/null", B, W, r3, p("cal.adbank"), r2) == 0,
          "recalibrate with --calibrate");
    ad_bank *cb = ad_bank_load(p("cal.adbank"));
    if (cb) {
        ad_thresh_record rec;
        CHECK(ad_bank_threshold_count(cb) == 2 &&
                  ad_bank_threshold_get(cb, 1, &rec) == AD_OK && rec.source == AD_THRESH_FROM_SCORES &&
                  rec.n_scores == 1 && rec.n_refs == 3,
              "calibration history");
    }
    ad_bank_free(cb);

    /* fit --coreset */
    CHECK(t_run(FIT " --coreset 0.25 -o %s %s %s > %s", B, W, p("cs.adbank"), r0, r1, p("cs.txt")) == 0,
          "fit --coreset 0.25");
    ad_bank *cs = ad_bank_load(p("cs.adbank"));
    CHECK(cs && ad_bank_rows(cs) == 320 && ad_bank_coreset_setting(cs, NULL) == 0.25,
          "coreset bank: %zu rows", cs ? ad_bank_rows(cs) : 0);
    ad_bank_free(cs);
    CHECK(t_run(ADD " %s %s > /dev/null", B, W, p("cs.adbank"), r2) == 0, "bank add to a coreset bank");
    cs = ad_bank_load(p("cs.adbank"));
    CHECK(cs && ad_bank_rows(cs) == 320 + 128, "coreset bank after add: %zu rows", cs ? ad_bank_rows(cs) : 0);
    ad_bank_free(cs);
    CHECK(t_run("%s bank info --json %s > %s", B, p("cs.adbank"), p("cs.json")) == 0, "info coreset");
    js = slurp(p("cs.json"), NULL);
    o = cJSON_Parse(js);
    cJSON *c = o ? cJSON_GetObjectItem(cJSON_GetObjectItem(o, "settings"), "coreset") : NULL;
    CHECK(c && cJSON_GetObjectItem(c, "setting")->valuedouble == 0.25 &&
              cJSON_GetObjectItem(c, "rows_offered")->valueint == 1792,
          "coreset in JSON: %s", js);
    cJSON_Delete(o);
    free(js);
    CHECK(t_run(FIT " --coreset 1 -o %s %s %s > /dev/null", B, W, p("cs1.adbank"), r0, r1) == 0, "--coreset 1");
    CHECK(t_run(FIT " -o %s %s %s > /dev/null", B, W, p("exact.adbank"), r0, r1) == 0, "exact");
    ad_bank *c1 = ad_bank_load(p("cs1.adbank")), *ex = ad_bank_load(p("exact.adbank"));
    if (c1 && ex) {
        double a = 0, e = 1;
        ad_bank_threshold(c1, &a);
        ad_bank_threshold(ex, &e);
        CHECK(c1->rows == ex->rows && !memcmp(c1->feat, ex->feat, ex->rows * (size_t)ex->dim * 4) && a == e,
              "--coreset 1 is not the exact bank");
    }
    ad_bank_free(c1);
    ad_bank_free(ex);

    /* usage */
    const char *bad_cs[] = {"0", "-1", "1.5", "abc", "nan"};
    for (int i = 0; i < 5; i++)
        CHECK(t_run(FIT " --coreset %s -o %s %s 2> /dev/null", B, W, bad_cs[i], p("x.adbank"), r0) == 2,
              "--coreset %s: exit 2", bad_cs[i]);
    CHECK(t_run(FIT " --bank-dtype f16 -o %s %s 2> %s", B, W, p("x.adbank"), r0, p("f16.err")) == 2,
          "--bank-dtype f16: exit 2");
    out = slurp(p("f16.err"), NULL);
    CHECK(strstr(out, "f16") && strstr(out, "docs/banks.md"), "f16 message: %s", out);
    free(out);
    CHECK(t_run(FIT " --bank-dtype f32 -o %s %s > /dev/null", B, W, p("x.adbank"), r0) == 0, "--bank-dtype f32");
    CHECK(t_run("%s bank --help > /dev/null", B) == 0, "bank --help");
    CHECK(t_run("%s bank add --help > /dev/null", B) == 0, "bank add --help");
    CHECK(t_run("%s bank info --help > /dev/null", B) == 0, "bank info --help");
    CHECK(t_run("%s bank 2> /dev/null", B) == 2, "bank: exit 2");
    CHECK(t_run("%s bank frob 2> /dev/null", B) == 2, "bank frob: exit 2");
    CHECK(t_run("%s bank info 2> /dev/null", B) == 2, "bank info without a file: exit 2");
    CHECK(t_run("%s bank add %s %s 2> /dev/null", B, p("grown.adbank"), r0) == 2, "bank add without -m: exit 2");
    CHECK(t_run("%s bank add -m %s %s 2> /dev/null", B, W, p("grown.adbank")) == 2, "bank add without images");
    CHECK(t_run("%s bank info %s 2> /dev/null", B, p("missing.adbank")) == 1, "info on a missing file: exit 1");
    return t_done("test_cli_bank");
}
