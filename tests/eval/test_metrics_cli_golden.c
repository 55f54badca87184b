/* `anomalydino metrics CASE/image_scores.csv --json-out F` reproduces the original's metrics on
 * every tests/data/metrics case (1e-6, AU-PRO 1e-5), the JSON on stdout equals the file, and a
 * CSV with quoted fields, CRLF line ends, a byte-order mark, reordered and extra columns and
 * absolute paths gives the same numbers. */
#include "io/io.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *keys[] = {"image_auroc", "image_ap",    "image_f1max",
                             "pixel_auroc", "pixel_f1max", "pixel_aupro"};

static cJSON *load_json(const char *path)
{
    char *s = adi_io_read_file(path, NULL);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    return j;
}

/* Runs the CLI on csv; compares every metric present in expected_path. */
static void run(const char *label, const char *csv, const char *expected_path, int n_keys)
{
    char out[1024], so[1024];
    snprintf(out, sizeof out, "%s", t_tmp("metrics_cli_out.json"));
    snprintf(so, sizeof so, "%s", t_tmp("metrics_cli_stdout.json"));
    remove(out);
    int rc = t_run("ANOMALYDINO_QUIET=1 '%s' metrics '%s' --json-out '%s' --threads 2 > '%s'",
                   t_bin(), csv, out, so);
    CHECK(rc == 0, "%s: exit status %d", label, rc);
    cJSON *got = load_json(out), *got_stdout = load_json(so), *want = load_json(expected_path);
    CHECK(got && got_stdout && want, "%s: cannot parse the JSON (%s, %s, %s)", label, out, so,
          expected_path);
    if (got && want) {
        for (int k = 0; k < n_keys; k++) {
            cJSON *g = cJSON_GetObjectItemCaseSensitive(got, keys[k]);
            cJSON *s = cJSON_GetObjectItemCaseSensitive(got_stdout, keys[k]);
            cJSON *w = cJSON_GetObjectItemCaseSensitive(want, keys[k]);
            CHECK(cJSON_IsNumber(g) && cJSON_IsNumber(w), "%s: key %s missing", label, keys[k]);
            if (!cJSON_IsNumber(g) || !cJSON_IsNumber(w)) continue;
            double d = fabs(g->valuedouble - w->valuedouble);
            double tol = k == 5 ? 1e-5 : 1e-6;
            printf("  %-26s %-12s got %.17g want %.17g |diff| %.3g\n", label, keys[k],
                   g->valuedouble, w->valuedouble, d);
            CHECK(d <= tol, "%s %s: got %.17g want %.17g", label, keys[k], g->valuedouble,
                  w->valuedouble);
            CHECK(cJSON_IsNumber(s) && s->valuedouble == g->valuedouble,
                  "%s %s: stdout and --json-out differ", label, keys[k]);
        }
        CHECK(cJSON_GetArraySize(got) == n_keys, "%s: %d keys, expected %d", label,
              cJSON_GetArraySize(got), n_keys);
    }
    cJSON_Delete(got);
    cJSON_Delete(got_stdout);
    cJSON_Delete(want);
}

/* pixel_small rewritten: BOM, CRLF, columns mask,score,extra,label,map,image, quoted fields with
 * commas and doubled quotes, absolute paths. */
static void quoted_variant(void)
{
    char *src = adi_io_read_file(t_data("metrics/pixel_small/image_scores.csv"), NULL);
    CHECK(src != NULL, "cannot read pixel_small");
    if (!src) return;
    char path[1024];   /* t_tmp / t_data buffers rotate */
    snprintf(path, sizeof path, "%s", t_tmp("metrics_quoted.csv"));
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f) {
        free(src);
        return;
    }
    fputs("\xEF\xBB\xBF" "mask,score , extra,label,\"map\",image\r\n", f);
    char *save = NULL;
    char *line = strtok_r(src, "\n", &save);   /* header */
    int row = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *fld[5];
        int k = 0;
        fld[k++] = line;
        for (char *p = line; *p && k < 5; p++)
            if (*p == ',') {
                *p = 0;
                fld[k++] = p + 1;
            }
        if (k != 5) continue;
        char mapp[1024], maskp[1024];
        snprintf(mapp, sizeof mapp, "%s", t_data("metrics/pixel_small"));
        if (fld[4][0])
            snprintf(maskp, sizeof maskp, "\"%s/%s\"", t_data("metrics/pixel_small"), fld[4]);
        else maskp[0] = 0;
        fprintf(f, "%s,%s,\"x, \"\"quoted\"\"\n\",%s,\"%s/%s\",\"name, %d\"\r\n", maskp, fld[2],
                fld[1], mapp, fld[3], row++);
    }
    fclose(f);
    free(src);
    run("pixel_small (quoted CSV)", path, t_data("metrics/pixel_small/expected.json"), 6);
}

int main(void)
{
    const char *cases[] = {"image_small", "image_perfect", "image_random",
                           "image_ties",  "pixel_small",   "pixel_medium"};
    for (int i = 0; i < 6; i++) {
        char csv[256], exp[256];
        snprintf(csv, sizeof csv, "metrics/%s/image_scores.csv", cases[i]);
        snprintf(exp, sizeof exp, "metrics/%s/expected.json", cases[i]);
        run(cases[i], t_data(csv), t_data(exp), i < 4 ? 3 : 6);
    }
    quoted_variant();
    /* 0 means all cores, as in every other command */
    int rc = t_run("ANOMALYDINO_QUIET=1 '%s' metrics '%s' --threads 0 > /dev/null", t_bin(),
                   t_data("metrics/pixel_small/image_scores.csv"));
    CHECK(rc == 0, "metrics --threads 0 exited %d", rc);
    return t_done("test_metrics_cli_golden");
}
