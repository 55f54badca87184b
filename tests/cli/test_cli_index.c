/* The search index from the command line (tiny model, the golden pipeline images at resolution
 * 112): fit --index and bank index build it, bank info shows it (text and JSON), a bank fitted
 * twice is the same file byte for byte (bank index --recalibrate on the exact bank gives that
 * file too), probing every list predicts
 * exactly what the exact bank predicts, dropping the index gives the exact bank back, bank add
 * keeps the index (covering the new rows), format-2 files show no index; bad index options are
 * refused with one line and exit 2 (syntax) or 1 (more lists than rows), leaving no file. */
#include "anomalydino.h"
#include "io/io.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static char dir[1024];
static const char *B, *W;

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

/* The score column of a predict CSV (time_ms differs from run to run). */
static char *scores_of(const char *csv_path)
{
    char *s = slurp(csv_path, NULL), *out = calloc(strlen(s) + 1, 1);
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        if (!c1 || !c2) continue;
        strncat(out, c1 + 1, (size_t)(c2 - c1));
    }
    free(s);
    return out;
}

static int one_line(const char *path, const char *must)
{
    char *s = slurp(path, NULL);
    size_t len = strlen(s);
    int ok = len > 0 && strchr(s, '\n') == s + len - 1 && strstr(s, must) != NULL;
    if (!ok) fprintf(stderr, "stderr of %s: '%s' (expected one line with '%s')\n", path, s, must);
    free(s);
    return ok;
}

#define IMG(rel) t_data("pipeline/" rel)
#define FIT "SOURCE_DATE_EPOCH=1764583200 %s fit -m %s --resolution 112 --rotate --threads %d"
#define PRED "%s predict -m %s --threads 1 -b %s %s %s %s > %s 2> /dev/null"

int main(void)
{
    snprintf(dir, sizeof dir, "%s", t_tmp("cli_index"));
    t_run("rm -rf %s && mkdir -p %s", dir, dir);
    B = t_bin();
    W = t_data("dinov2/tiny.safetensors");
    const char *r0 = IMG("seed0/ref_0.png"), *r1 = IMG("seed2/ref_0.png");
    const char *q0 = IMG("seed0/test_0.png"), *q1 = IMG("seed0/test_2.png"), *q2 = IMG("seed2/test_3.png");

    /* exact bank, indexed bank, twice, 1 and 2 threads */
    CHECK(t_run(FIT " -o %s %s %s > /dev/null 2>&1", B, W, 2, p("exact.adbank"), r0, r1) == 0, "fit exact");
    CHECK(t_run(FIT " --index ivf:16:4 -o %s %s %s > %s 2>&1", B, W, 2, p("ix.adbank"), r0, r1,
                p("fit.txt")) == 0, "fit --index");
    char *out = slurp(p("fit.txt"), NULL);
    CHECK(strstr(out, "index       ivf: 16 lists, 4 probes") != NULL, "fit summary: %s", out);
    free(out);
    CHECK(t_run(FIT " --index ivf:16:4 -o %s %s %s > /dev/null 2>&1", B, W, 2, p("ix2.adbank"), r0, r1) == 0, "fit again");
    CHECK(same_file(p("ix.adbank"), p("ix2.adbank")), "two fits with an index differ");

    /* bank info */
    CHECK(t_run("%s bank info %s > %s", B, p("ix.adbank"), p("info.txt")) == 0, "info");
    out = slurp(p("info.txt"), NULL);
    CHECK(strstr(out, "file format 3") && strstr(out, "index       ivf: 16 lists") &&
              strstr(out, "4 probes, 10 k-means iterations"), "info text:\n%s", out);
    free(out);
    CHECK(t_run("%s bank info --json %s > %s", B, p("ix.adbank"), p("info.json")) == 0, "info --json");
    out = slurp(p("info.json"), NULL);
    cJSON *o = cJSON_Parse(out);
    cJSON *ix = o ? cJSON_GetObjectItem(cJSON_GetObjectItem(o, "settings"), "index") : NULL;
    CHECK(ix && cJSON_GetObjectItem(ix, "lists")->valueint == 16 &&
              cJSON_GetObjectItem(ix, "probes")->valueint == 4 &&
              cJSON_GetObjectItem(ix, "rows")->valueint == cJSON_GetObjectItem(o, "rows")->valueint &&
              !strcmp(cJSON_GetObjectItem(ix, "kind")->valuestring, "ivf"),
          "info JSON index: %s", out);
    cJSON_Delete(o);
    free(out);

    /* every list probed: exactly the exact bank's predictions; dropped: the exact bank */
    CHECK(t_run(PRED, B, W, p("exact.adbank"), q0, q1, q2, p("exact.csv")) == 0, "predict exact");
    CHECK(t_run("%s bank index %s ivf:16:16 -o %s > /dev/null", B, p("ix.adbank"), p("all.adbank")) == 0,
          "bank index all lists");
    CHECK(t_run(PRED, B, W, p("all.adbank"), q0, q1, q2, p("all.csv")) == 0, "predict all lists");
    char *se = scores_of(p("exact.csv")), *sa = scores_of(p("all.csv"));
    CHECK(strlen(se) > 10 && !strcmp(se, sa), "all lists probed: %s vs exact %s", sa, se);
    free(sa);
    CHECK(t_run("%s bank index %s none -o %s > %s", B, p("ix.adbank"), p("none.adbank"), p("none.txt")) == 0,
          "bank index none");
    out = slurp(p("none.txt"), NULL);
    CHECK(strstr(out, "index       none (exact search)") != NULL, "none output: %s", out);
    free(out);
    CHECK(t_run(PRED, B, W, p("none.adbank"), q0, q1, q2, p("none.csv")) == 0, "predict none");
    sa = scores_of(p("none.csv"));
    CHECK(!strcmp(se, sa), "index dropped: %s vs exact %s", sa, se);
    free(sa);
    CHECK(t_run(PRED, B, W, p("ix.adbank"), q0, q1, q2, p("ix.csv")) == 0, "predict through the index");
    free(se);

    /* --probes alone; a rebuild with the same settings gives the same file */
    CHECK(t_run("%s bank index %s --probes 2 -o %s > /dev/null", B, p("ix.adbank"), p("p2.adbank")) == 0, "--probes");
    CHECK(t_run("%s bank info %s > %s", B, p("p2.adbank"), p("p2.txt")) == 0, "info p2");
    out = slurp(p("p2.txt"), NULL);
    CHECK(strstr(out, "2 probes") != NULL, "probes not changed:\n%s", out);
    free(out);
    /* the exact bank indexed afterwards, its leave-one-out threshold relearned through the index:
     * the very file fit --index wrote (same clock) */
    CHECK(t_run("SOURCE_DATE_EPOCH=1764583200 %s bank index %s ivf:16:4 -o %s > /dev/null", B,
                p("exact.adbank"), p("kept.adbank")) == 0, "bank index on the exact bank");
    CHECK(!same_file(p("kept.adbank"), p("ix.adbank")), "threshold not kept without --recalibrate?");
    CHECK(t_run("SOURCE_DATE_EPOCH=1764583200 %s bank index %s ivf:16:4 --recalibrate -o %s > /dev/null", B,
                p("exact.adbank"), p("rebuilt.adbank")) == 0, "bank index --recalibrate");
    {
        double t[2] = {-1, -2};
        const char *f[2] = {"rebuilt.adbank", "ix.adbank"};
        for (int i = 0; i < 2; i++) {
            t_run("%s bank info --json %s > %s", B, p(f[i]), p("thr.json"));
            char *js = slurp(p("thr.json"), NULL);
            cJSON *oj = cJSON_Parse(js);
            cJSON *th = oj ? cJSON_GetObjectItem(oj, "threshold") : NULL;
            if (th && cJSON_GetObjectItem(th, "value")) t[i] = cJSON_GetObjectItem(th, "value")->valuedouble;
            cJSON_Delete(oj);
            free(js);
        }
        CHECK(t[0] == t[1], "threshold after bank index --recalibrate %.17g, fit --index %.17g", t[0], t[1]);
        CHECK(t_run(PRED, B, W, p("rebuilt.adbank"), q0, q1, q2, p("rebuilt.csv")) == 0, "predict rebuilt");
        char *x = scores_of(p("rebuilt.csv")), *y = scores_of(p("ix.csv"));
        CHECK(!strcmp(x, y), "bank index scores %s, fit --index scores %s", x, y);
        free(x);
        free(y);
    }

    /* bad options: one line, exit 2 (usage) or 1 (lists above the rows), no file written */
    const char *bad[] = {"ivf:0", "ivf:8:9", "hnsw", "ivf:abc", "ivf:4:", "ivf:", "ivf:-3", "ivf::2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(t_run(FIT " --index %s -o %s %s > /dev/null 2> %s", B, W, 2, bad[i], p("bad.adbank"), r0,
                    p("bad.err")) == 2, "fit --index %s: not exit 2", bad[i]);
        CHECK(one_line(p("bad.err"), "--index"), "fit --index %s message", bad[i]);
        CHECK(t_run("%s bank index %s %s -o %s > /dev/null 2> %s", B, p("ix.adbank"), bad[i],
                    p("bad.adbank"), p("bad.err")) == 2, "bank index %s: not exit 2", bad[i]);
        CHECK(one_line(p("bad.err"), bad[i]), "bank index %s message", bad[i]);
    }
    CHECK(t_run(FIT " --index ivf:100000 -o %s %s > /dev/null 2> %s", B, W, 2, p("bad.adbank"), r0,
                p("bad.err")) == 1, "fit with more lists than rows: not exit 1");
    out = slurp(p("bad.err"), NULL);
    CHECK(strstr(out, "anomalydino fit: --index: index: 100000 lists for a bank of 512 rows (expected 1 .. 512)") != NULL,
          "lists > rows message: %s", out);
    free(out);
    CHECK(t_run("%s bank index %s --probes 17 -o %s > /dev/null 2> %s", B, p("ix.adbank"), p("bad.adbank"),
                p("bad.err")) == 1, "17 probes of 16 lists: not exit 1");
    CHECK(one_line(p("bad.err"), "17 probes for 16 lists"), "probes > lists message");
    CHECK(t_run("%s bank index %s > /dev/null 2> %s", B, p("ix.adbank"), p("bad.err")) == 2, "no SPEC: not exit 2");
    CHECK(one_line(p("bad.err"), "expected BANK and SPEC"), "no SPEC message");
    CHECK(t_run("%s bank index %s none --probes 3 > /dev/null 2> %s", B, p("ix.adbank"), p("bad.err")) == 2,
          "none --probes: not exit 2");
    CHECK(t_run("%s bank index %s --probes 0 > /dev/null 2> %s", B, p("ix.adbank"), p("bad.err")) == 2,
          "--probes 0: not exit 2");
    CHECK(t_run("%s bank index %s --probes 3 > /dev/null 2> %s", B, p("exact.adbank"), p("bad.err")) == 1,
          "--probes on a bank without index: not exit 1");
    CHECK(one_line(p("bad.err"), "has no index"), "no index message");
    CHECK(t_run("test -e %s", p("bad.adbank")) != 0, "a refused command wrote a bank");

    /* bank add keeps the index, covering the new rows; the threshold relearned through it */
    CHECK(t_run("cp %s %s", p("ix.adbank"), p("grow.adbank")) == 0, "copy");
    CHECK(t_run("SOURCE_DATE_EPOCH=1764583200 %s bank add -m %s --threads 2 --recalibrate %s %s > /dev/null 2>&1",
                B, W, p("grow.adbank"), q0) == 0, "bank add to an indexed bank");
    CHECK(t_run("%s bank info --json %s > %s", B, p("grow.adbank"), p("grow.json")) == 0, "info grown");
    out = slurp(p("grow.json"), NULL);
    o = cJSON_Parse(out);
    ix = o ? cJSON_GetObjectItem(cJSON_GetObjectItem(o, "settings"), "index") : NULL;
    CHECK(ix && cJSON_GetObjectItem(ix, "lists")->valueint == 16 &&
              cJSON_GetObjectItem(ix, "rows")->valueint == cJSON_GetObjectItem(o, "rows")->valueint &&
              cJSON_GetObjectItem(o, "rows")->valueint > 1280 &&
              cJSON_GetArraySize(cJSON_GetObjectItem(o, "threshold_history")) == 2,
          "grown bank's index: %s", out);
    cJSON_Delete(o);
    free(out);
    CHECK(t_run(PRED, B, W, p("grow.adbank"), q0, q1, q2, p("grow.csv")) == 0, "predict grown");
    out = slurp(p("grow.csv"), NULL);
    CHECK(strstr(out, "test_0.png,0.000000") != NULL, "the added image is not found in the grown bank:\n%s", out);
    free(out);

    /* format 2 (before the index): no index, still shown */
    CHECK(t_run("%s bank info %s > %s", B, t_data("banks/v2_tiny_res112_rot_coreset.adbank"), p("v2.txt")) == 0,
          "info format 2");
    out = slurp(p("v2.txt"), NULL);
    CHECK(strstr(out, "file format 2") && strstr(out, "index       none"), "format 2 info:\n%s", out);
    free(out);
    return t_done("test_cli_index");
}
