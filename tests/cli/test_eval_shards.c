/* Sharded evaluation: a dataset built here (three categories of different sizes, MVTec layout),
 * evaluated once in one process, and again as 3 shards run as separate processes by GNU
 * parallel, each into its own folder and, second, all into one shared folder; eval-merge of the
 * shards must give the single run's metrics.json results, metrics.csv, tables.md and the scores
 * of scores.csv bit for bit. Then what a merge must refuse, each with a message naming it: a
 * shard missing, a shard present twice, a shard made with other settings, a unit's record
 * missing. Also the shard cut itself: every unit in exactly one shard, and --shard auto taking
 * the index from SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX. */
#include "testutil.h"

#include "anomalydino_eval.h"
#include "io/io.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <string.h>

#define W 56
#define H 56

static char weights[1024], root[1100], base[1024];

static const char *P(const char *fmt, ...)
{
    static char bufs[8][2048];
    static int k;
    char *b = bufs[k++ % 8];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, 2048, fmt, ap);
    va_end(ap);
    return b;
}

static void image(const char *path, unsigned seed, int defect)
{
    uint8_t rgb[W * H * 3];
    uint32_t s = 2654435761u * (seed + 7);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            s = s * 1664525u + 1013904223u;
            for (int c = 0; c < 3; c++) {
                int v = 60 + 40 * c + ((x / 7 + y / 7) % 2) * 60 + (int)(s >> 28) - 8;
                if (defect && x >= 20 && x < 32 && y >= 24 && y < 36) v = 250 - 70 * c;
                rgb[(y * W + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    adi_io_mkdirs(dir);
    CHECK_OK(adi_io_write_png_rgb(path, rgb, W, H));
}

static void mask(const char *path)
{
    uint8_t m[W * H];
    memset(m, 0, sizeof m);
    for (int y = 24; y < 36; y++)
        for (int x = 20; x < 32; x++) m[y * W + x] = 255;
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    adi_io_mkdirs(dir);
    CHECK_OK(adi_io_write_png_gray(path, m, W, H));
}

static void make_dataset(void)
{
    static const char *const cats[3] = {"alpha", "beta", "gamma"};
    static const int n_test_good[3] = {3, 6, 2}, n_bad[3] = {2, 4, 3};
    unsigned seed = 1;
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < 5; i++) image(P("%s/%s/train/good/%03d.png", root, cats[c], i), seed++, 0);
        for (int i = 0; i < n_test_good[c]; i++)
            image(P("%s/%s/test/good/%03d.png", root, cats[c], i), seed++, 0);
        for (int i = 0; i < n_bad[c]; i++) {
            image(P("%s/%s/test/spot/%03d.png", root, cats[c], i), seed++, 1);
            mask(P("%s/%s/ground_truth/spot/%03d_mask.png", root, cats[c], i));
        }
    }
}

static char *slurp(const char *path)
{
    size_t len;
    return adi_io_read_file(path, &len);
}

/* The first byte where two files differ (-1: identical), and their sizes. */
static long first_diff(const char *a, const char *b, size_t *la, size_t *lb)
{
    char *x = adi_io_read_file(a, la), *y = adi_io_read_file(b, lb);
    long at = -2;
    if (x && y) {
        size_t n = *la < *lb ? *la : *lb, i = 0;
        while (i < n && x[i] == y[i]) i++;
        at = i == n && *la == *lb ? -1 : (long)i;
    }
    free(x);
    free(y);
    return at;
}

static void same_file(const char *what, const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    long at = first_diff(a, b, &la, &lb);
    printf("%-34s %s (%zu and %zu bytes)%s\n", what, at == -1 ? "identical" : "DIFFERENT", la, lb,
           at >= 0 ? ", first difference at byte" : "");
    if (at >= 0) printf("  byte %ld\n", at);
    CHECK(at == -1, "%s: %s and %s differ (first at byte %ld)", what, a, b, at);
}

/* scores.csv without its time column. */
static char *scores_without_time(const char *path)
{
    char *t = slurp(path);
    if (!t) return NULL;
    char *out = malloc(strlen(t) + 1), *o = out;
    for (char *line = t; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char *last = NULL;
        for (char *p = line; p < line + len; p++)
            if (*p == ',') last = p;
        size_t keep = last ? (size_t)(last - line) : len;
        memcpy(o, line, keep);
        o += keep;
        *o++ = '\n';
        line += len + (nl ? 1 : 0);
    }
    *o = 0;
    free(t);
    return out;
}

/* metrics.json's "results", "mean" and "std" as compact JSON. */
static char *metrics_part(const char *path)
{
    char *t = slurp(path);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    cJSON *o = cJSON_CreateObject();
    static const char *const keys[3] = {"results", "mean", "std"};
    for (int i = 0; j && i < 3; i++)
        cJSON_AddItemToObject(o, keys[i],
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(j, keys[i]), 1));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cJSON_Delete(j);
    return s;
}

static void same_outputs(const char *label, const char *a_, const char *b_)
{
    char a[2048], b[2048];
    snprintf(a, sizeof a, "%s", a_);
    snprintf(b, sizeof b, "%s", b_);
    printf("-- %s\n", label);
    same_file("metrics.csv", P("%s/metrics.csv", a), P("%s/metrics.csv", b));
    same_file("tables.md", P("%s/tables.md", a), P("%s/tables.md", b));
    char *sa = scores_without_time(P("%s/scores.csv", a)), *sb = scores_without_time(P("%s/scores.csv", b));
    CHECK(sa && sb && !strcmp(sa, sb), "%s: scores.csv scores differ", label);
    printf("%-34s %s (%zu bytes)\n", "scores.csv (without time)",
           sa && sb && !strcmp(sa, sb) ? "identical" : "DIFFERENT", sa ? strlen(sa) : 0);
    free(sa);
    free(sb);
    char *ma = metrics_part(P("%s/metrics.json", a)), *mb = metrics_part(P("%s/metrics.json", b));
    CHECK(ma && mb && !strcmp(ma, mb), "%s: metrics.json results/mean/std differ", label);
    printf("%-34s %s (%zu bytes)\n", "metrics.json results/mean/std",
           ma && mb && !strcmp(ma, mb) ? "identical" : "DIFFERENT", ma ? strlen(ma) : 0);
    CHECK(ma && strstr(ma, "image_auroc") && strstr(ma, "pixel_aupro"), "metrics present");
    free(ma);
    free(mb);
    CHECK(adi_io_exists(P("%s/report.html", b)), "%s: report.html written", label);
}

#define EVAL "ANOMALYDINO_QUIET=1 '%s' eval -m '%s' --dataset mvtec --data '%s' --shots 1,2,full " \
             "--seeds 2 --resolution 56 --segmentation --threads 1 --examples 2"

int main(void)
{
    snprintf(weights, sizeof weights, "%s", t_data("dinov2/tiny.safetensors"));
    snprintf(base, sizeof base, "%s", t_tmp("eval_shards"));
    snprintf(root, sizeof root, "%s/data", base);
    t_run("rm -rf '%s'", base);
    make_dataset();
    const char *bin = t_bin();

    CHECK(t_run(EVAL " -o '%s/single' > /dev/null 2> '%s/single.err'", bin, weights, root, base,
                base) == 0, "the single run succeeds (%s/single.err)", base);

    /* 3 shards as separate processes, each into its own folder */
    int rc = t_run("parallel --will-cite --halt now,fail=1 -j3 " EVAL " --shard {}/3 -o '%s/shard{}' "
                   "'2>' '%s/shard{}.err' ::: 0 1 2", bin, weights, root, base, base);
    CHECK(rc == 0, "parallel ran the 3 shards (exit %d)", rc);
    for (int s = 0; s < 3; s++) {
        char *err = slurp(P("%s/shard%d.err", base, s));
        CHECK(err && strstr(err, P("shard %d of 3", s)), "shard %d says what it ran: %s", s,
              err ? err : "(no stderr)");
        free(err);
        CHECK(adi_io_exists(P("%s/shard%d/shards/shard-%d-of-3.json", base, s, s)),
              "shard %d wrote its manifest", s);
        CHECK(!adi_io_exists(P("%s/shard%d/metrics.csv", base, s)),
              "a shard writes raw results, not the report");
    }
    CHECK(t_run("'%s' eval-merge -o '%s/merged' '%s/shard0' '%s/shard1' '%s/shard2' > /dev/null "
                "2> '%s/merge.err'", bin, base, base, base, base, base) == 0,
          "eval-merge succeeds");
    same_outputs("3 shards, 3 folders", P("%s/single", base), P("%s/merged", base));

    /* every unit in exactly one shard, and each shard got some */
    int counted[3] = {0, 0, 0}, total = 0;
    for (int s = 0; s < 3; s++) {
        char *m = slurp(P("%s/shard%d/shards/shard-%d-of-3.json", base, s, s));
        cJSON *j = m ? cJSON_Parse(m) : NULL;
        const cJSON *u;
        int n = 0;
        cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(j, "units"))
        {
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(u, "state");
            int mine = (int)cJSON_GetObjectItemCaseSensitive(u, "shard")->valuedouble == s;
            if (mine) counted[s] += !strcmp(st->valuestring, "computed");
            else CHECK(!strcmp(st->valuestring, "planned"), "shard %d ran another's unit", s);
            n++;
        }
        if (s == 0) total = n;
        cJSON_Delete(j);
        free(m);
    }
    printf("units: %d planned; shards computed %d, %d, %d\n", total, counted[0], counted[1],
           counted[2]);
    CHECK(total == 3 * (2 * 2 + 1), "3 categories x (1,2 shots x 2 seeds + full): %d", total);
    CHECK(counted[0] + counted[1] + counted[2] == total && counted[0] && counted[1] && counted[2],
          "each unit computed once, every shard has work");

    /* the same into one shared folder (a cluster's shared file system), merged in place */
    rc = t_run("parallel --will-cite -j3 " EVAL " --shard {}/3 -o '%s/shared' '2>' /dev/null ::: 0 1 2", bin,
               weights, root, base);
    CHECK(rc == 0, "3 shards into one folder (exit %d)", rc);
    CHECK(t_run("'%s' eval-merge -o '%s/shared' '%s/shared' > /dev/null 2>&1", bin, base, base) == 0,
          "eval-merge of the shared folder");
    same_outputs("3 shards, one shared folder", P("%s/single", base), P("%s/shared", base));

    /* --shard auto: the engine's variable */
    rc = t_run("SLURM_ARRAY_TASK_ID=1 " EVAL " --shard auto/3 -o '%s/auto' > /dev/null 2> '%s/auto.err'",
               bin, weights, root, base, base);
    CHECK(rc == 0 && adi_io_exists(P("%s/auto/shards/shard-1-of-3.json", base)),
          "--shard auto/3 with SLURM_ARRAY_TASK_ID=1 runs shard 1");
    rc = t_run("JOB_COMPLETION_INDEX=2 '%s' eval -m '%s' --dataset mvtec --data '%s' --shots 1 "
               "--seeds 1 --resolution 56 --threads 1 --shard auto/3 -o '%s/auto_k8s' > /dev/null "
               "2>&1", bin, weights, root, base);
    CHECK(rc == 0 && adi_io_exists(P("%s/auto_k8s/shards/shard-2-of-3.json", base)),
          "--shard auto/3 with JOB_COMPLETION_INDEX=2 runs shard 2");
    rc = t_run("env -u SLURM_ARRAY_TASK_ID -u JOB_COMPLETION_INDEX -u ANOMALYDINO_SHARD_INDEX "
               "'%s' eval -m x --dataset mvtec --data x -o x --shard auto/3 2> '%s/auto_none.err'",
               bin, base);
    char *err = slurp(P("%s/auto_none.err", base));
    CHECK(rc == 2 && err && strstr(err, "SLURM_ARRAY_TASK_ID"), "--shard auto without a variable: %s",
          err ? err : "");
    free(err);
    CHECK(t_run("'%s' eval -m x --dataset mvtec --data x -o x --shard 3/3 > /dev/null 2>&1", bin) == 2,
          "--shard 3/3 refused (index past the count)");

    /* --help says why zero-shot does not keep to --cache-mb */
    CHECK(t_run("'%s' eval --help | tr -s ' \\n' ' ' | grep -q 'Zero-shot keeps the features of every "
                "test image of a category regardless'", bin) == 0,
          "eval --help explains zero-shot and --cache-mb");
    CHECK(t_run("'%s' eval-merge --help | grep -q 'SHARD_DIR'", bin) == 0, "eval-merge --help");

    /* refusals */
    struct {
        const char *what, *args, *needle;
    } bad[] = {
        {"a shard missing", "'%s/shard0' '%s/shard1'", "shard 2 of 3 missing"},
        {"a folder given twice", "'%s/shard0' '%s/shard0' '%s/shard1' '%s/shard2'", "given twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char args[4096];
        snprintf(args, sizeof args, bad[i].args, base, base, base, base);
        rc = t_run("'%s' eval-merge -o '%s/bad' %s > /dev/null 2> '%s/bad.err'", bin, base, args, base);
        err = slurp(P("%s/bad.err", base));
        printf("refused (%s): %s", bad[i].what, err ? err : "\n");
        CHECK(rc == 1 && err && strstr(err, bad[i].needle), "%s: exit %d, %s", bad[i].what, rc,
              err ? err : "");
        free(err);
    }
    /* shard 0 twice: the same shard copied into a second folder */
    t_run("cp -r '%s/shard0' '%s/shard0_copy'", base, base);
    rc = t_run("'%s' eval-merge -o '%s/bad' '%s/shard0' '%s/shard0_copy' '%s/shard1' '%s/shard2' "
               "> /dev/null 2> '%s/bad.err'", bin, base, base, base, base, base, base);
    err = slurp(P("%s/bad.err", base));
    printf("refused (duplicate shard): %s", err ? err : "\n");
    CHECK(rc == 1 && err && strstr(err, "appears twice"), "duplicate shard: %s", err ? err : "");
    free(err);
    /* shard 2 made with other settings */
    CHECK(t_run(EVAL " --preset informed --shard 2/3 -o '%s/other' > /dev/null 2>&1", bin, weights,
                root, base) == 0, "a shard with another preset runs");
    rc = t_run("'%s' eval-merge -o '%s/bad' '%s/shard0' '%s/shard1' '%s/other' > /dev/null "
               "2> '%s/bad.err'", bin, base, base, base, base, base);
    err = slurp(P("%s/bad.err", base));
    printf("refused (other settings): %s", err ? err : "\n");
    CHECK(rc == 1 && err && strstr(err, "different settings") && strstr(err, "preset"),
          "other settings named: %s", err ? err : "");
    free(err);
    /* shard 2 made with other weights */
    char other_w[1024];
    snprintf(other_w, sizeof other_w, "%s", t_data("dinov2/tiny_reg.safetensors"));
    CHECK(t_run(EVAL " --shard 2/3 -o '%s/otherw' > /dev/null 2>&1", bin, other_w, root, base) == 0,
          "a shard with other weights runs");
    rc = t_run("'%s' eval-merge -o '%s/bad' '%s/shard0' '%s/shard1' '%s/otherw' > /dev/null "
               "2> '%s/bad.err'", bin, base, base, base, base, base);
    err = slurp(P("%s/bad.err", base));
    printf("refused (other weights): %s", err ? err : "\n");
    CHECK(rc == 1 && err && strstr(err, "different settings or weights") && strstr(err, "weights:"),
          "other weights named: %s", err ? err : "");
    free(err);
    /* a unit's record deleted from its shard */
    t_run("rm -f '%s/shard1/runs/1shot/seed1/'*.json", base);
    rc = t_run("'%s' eval-merge -o '%s/bad' '%s/shard0' '%s/shard1' '%s/shard2' > /dev/null "
               "2> '%s/bad.err'", bin, base, base, base, base, base);
    err = slurp(P("%s/bad.err", base));
    printf("refused (record missing): %s", err ? err : "\n");
    CHECK(rc == 1 && err && strstr(err, "missing") && strstr(err, "no record"),
          "missing unit named: %s", err ? err : "");
    free(err);
    return t_done("test_eval_shards");
}
