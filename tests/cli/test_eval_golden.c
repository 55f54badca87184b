/* `anomalydino eval` reproduces the original evaluation: tests/data/eval (MVTec AD layout, bottle
 * and screw) with the tiny random DINOv2, preset masking_only, resolution 448, shots 1 and 2,
 * seeds 0 and 1, segmentation on. Every metric of metrics.json within 2e-3 of expected.json (the
 * original's run_anomaly_detection + post_eval), and every image score within 1e-4 of
 * image_scores.json. Runs the command in-process (cmd_eval), so it does not depend on the
 * dispatcher. */
#include "testutil.h"

#include "cli/cli.h"
#include "report/report.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <string.h>

#define METRIC_TOL 2e-3
#define SCORE_TOL 1e-4

static cJSON *load_json(const char *path)
{
    size_t len;
    char *t = adi_io_read_file(path, &len);
    if (!t) {
        fprintf(stderr, "cannot read %s: %s\n", path, ad_errmsg());
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(t, len);
    free(t);
    if (!j) fprintf(stderr, "%s: not JSON\n", path);
    return j;
}

static int run_eval(int argc, char **argv)
{
    optind = 1;
    fflush(stdout);
    return cmd_eval(argc, argv);
}

int main(void)
{
    char out[1024], weights[1024], data[1024];
    snprintf(out, sizeof out, "%s", t_tmp("eval_golden"));
    snprintf(weights, sizeof weights, "%s", t_data("dinov2/tiny.safetensors"));
    snprintf(data, sizeof data, "%s", t_data("eval/data"));
    t_run("rm -rf '%s'", out); /* a previous run would be resumed, not recomputed */

    char *argv[] = {"eval", "-m", weights, "--dataset", "mvtec", "--data", data,
                    "--preset", "masking_only", "--resolution", "448", "--shots", "1,2",
                    "--seeds", "2", "--segmentation", "-o", out, NULL};
    double t0 = cli_now();
    int rc = run_eval((int)(sizeof argv / sizeof *argv) - 1, argv);
    printf("eval finished in %.1f s, exit %d\n", cli_now() - t0, rc);
    CHECK(rc == 0, "eval exit code %d", rc);

    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.json", out);
    cJSON *ours = load_json(path);
    cJSON *want = load_json(t_data("eval/expected.json"));
    cJSON *scores = load_json(t_data("eval/image_scores.json"));
    CHECK(ours && want && scores, "metrics.json, expected.json and image_scores.json readable");
    if (!ours || !want || !scores) return t_done("test_eval_golden");

    /* every metric of every (shots, seed, category) */
    const cJSON *wr = cJSON_GetObjectItemCaseSensitive(want, "results");
    const cJSON *orr = cJSON_GetObjectItemCaseSensitive(ours, "results");
    double worst = 0;
    char worst_at[256] = "";
    int n_metrics = 0;
    const cJSON *ws, *wd, *wc, *wm;
    cJSON_ArrayForEach(ws, wr) cJSON_ArrayForEach(wd, ws) cJSON_ArrayForEach(wc, wd)
    {
        const cJSON *oc = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(orr, ws->string),
                                             wd->string),
            wc->string);
        cJSON_ArrayForEach(wm, wc)
        {
            const cJSON *om = cJSON_GetObjectItemCaseSensitive(oc, wm->string);
            n_metrics++;
            if (!cJSON_IsNumber(om)) {
                CHECK(0, "%s-shot seed %s %s %s: missing in metrics.json", ws->string, wd->string,
                      wc->string, wm->string);
                continue;
            }
            double d = fabs(om->valuedouble - wm->valuedouble);
            printf("%s-shot seed %s %-6s %-12s ours %.6f original %.6f |diff| %.2e\n", ws->string,
                   wd->string, wc->string, wm->string, om->valuedouble, wm->valuedouble, d);
            CHECK(d <= METRIC_TOL, "%s-shot seed %s %s %s: |diff| %.3e > %.0e", ws->string,
                  wd->string, wc->string, wm->string, d, METRIC_TOL);
            if (d > worst) {
                worst = d;
                snprintf(worst_at, sizeof worst_at, "%s-shot seed %s %s %s", ws->string,
                         wd->string, wc->string, wm->string);
            }
        }
    }
    CHECK(n_metrics == 48, "expected.json holds %d metrics, want 2 x 2 x 2 x 6", n_metrics);
    printf("metrics: largest |diff| %.3e at %s (%d compared)\n", worst, worst_at, n_metrics);

    /* every image score: keys "Kshot/anomaly_maps/seed=S/CAT/test/TYPE/NAME.npy" */
    typedef struct {
        char tag[160];
        double worst;
        char where[400];
        int n;
    } run_stat;
    run_stat rs[16];
    int n_rs = 0, n_scores = 0, found = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, scores)
    {
        int k, seed;
        char cat[64], type[64], name[64];
        if (sscanf(it->string, "%dshot/anomaly_maps/seed=%d/%63[^/]/test/%63[^/]/%63[^.].npy", &k,
                   &seed, cat, type, name) != 5) {
            CHECK(0, "unexpected key %s", it->string);
            continue;
        }
        n_scores++;
        char run_file[1400], img[200];
        snprintf(run_file, sizeof run_file, "%s/runs/%dshot/seed%d/%s.json", out, k, seed, cat);
        snprintf(img, sizeof img, "%s/%s.png", type, name);
        cJSON *run = load_json(run_file);
        double ours_score = NAN;
        const cJSON *im;
        cJSON_ArrayForEach(im, cJSON_GetObjectItemCaseSensitive(run, "images"))
        {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(im, "image");
            if (cJSON_IsString(nm) && !strcmp(nm->valuestring, img))
                ours_score = cJSON_GetObjectItemCaseSensitive(im, "score")->valuedouble;
        }
        cJSON_Delete(run);
        CHECK(!isnan(ours_score), "%s: no score for %s in %s", it->string, img, run_file);
        if (isnan(ours_score)) continue;
        found++;
        char tag[160];
        snprintf(tag, sizeof tag, "%d-shot seed %d %s", k, seed, cat);
        int r;
        for (r = 0; r < n_rs && strcmp(rs[r].tag, tag); r++) {}
        if (r == n_rs && n_rs < 16) {
            memset(&rs[n_rs], 0, sizeof rs[n_rs]);
            snprintf(rs[n_rs].tag, sizeof rs[n_rs].tag, "%s", tag);
            n_rs++;
        }
        if (r >= 16) continue;
        double d = fabs(ours_score - it->valuedouble);
        rs[r].n++;
        if (d >= rs[r].worst) {
            rs[r].worst = d;
            snprintf(rs[r].where, sizeof rs[r].where, "%s (ours %.6f, original %.6f)", img,
                     ours_score, it->valuedouble);
        }
        CHECK(d <= SCORE_TOL, "%s %s: score %.6f vs %.6f, |diff| %.3e", tag, img, ours_score,
              it->valuedouble, d);
    }
    for (int r = 0; r < n_rs; r++)
        printf("scores %-22s %2d images, largest |diff| %.3e at %s\n", rs[r].tag, rs[r].n,
               rs[r].worst, rs[r].where);
    CHECK(n_scores == 104 && found == n_scores, "image scores compared: %d of %d (want 2 x 2 x 26)", found,
          n_scores);

    /* the run's outputs exist */
    static const char *const files[] = {"metrics.csv", "tables.md", "scores.csv", "timing.csv",
                                        "settings.json", "report.html"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", out, files[i]);
        CHECK(adi_io_exists(path), "%s written", files[i]);
    }
    cJSON_Delete(ours);
    cJSON_Delete(want);
    cJSON_Delete(scores);
    return t_done("test_eval_golden");
}
