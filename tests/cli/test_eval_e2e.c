/* `anomalydino eval` end to end on small datasets built here: an MVTec AD layout and a raw VisA
 * download (split_csv/1cls.csv, .JPG images, 0/1 masks), with the tiny random DINOv2. Pins the
 * protocol rather than numbers: which references each (shots, seed) uses, the test images and
 * their labels (design.md: 1 iff the ground truth has a non-zero pixel), the output files, resume (a
 * second run recomputes nothing and leaves the run records untouched), refusal to resume with
 * other settings, what is reported when files are missing or unreadable, and zero-shot mode. */
#include "testutil.h"

#include "cli/cli.h"
#include "report/report.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <getopt.h>
#include <jpeglib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define W 70
#define H 70
#define RES "70"

static char weights[1024];

/* ------------------------------------------------------------------------------------------ */
/* building the datasets                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void mkparent(const char *path)
{
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", path);
    char *s = strrchr(dir, '/');
    if (s) {
        *s = 0;
        adi_io_mkdirs(dir);
    }
}

/* A textured "part" (seeded), optionally with a bright square defect at (dx, dy). */
static void make_image(uint8_t *rgb, unsigned seed, int defect, int dx, int dy)
{
    uint32_t s = 2654435761u * (seed + 1);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            s = s * 1664525u + 1013904223u;
            int noise = (int)(s >> 28) - 8;
            int r2 = (x - W / 2) * (x - W / 2) + (y - H / 2) * (y - H / 2);
            int disc = r2 < 24 * 24;
            for (int c = 0; c < 3; c++) {
                int v = disc ? 150 + 30 * c + ((x / 5 + y / 5) % 2) * 20 : 40 + 10 * c;
                v += noise;
                if (defect && x >= dx && x < dx + 12 && y >= dy && y < dy + 12) v = 250 - 60 * c;
                rgb[(y * W + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
}

static void write_png(const char *path, const uint8_t *px, int channels)
{
    uint8_t *buf;
    size_t len;
    mkparent(path);
    if (adi_io_encode_png(px, W, H, channels, &buf, &len) != AD_OK) {
        CHECK(0, "PNG encoder: %s", ad_errmsg());
        return;
    }
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(buf, 1, len, f);
        fclose(f);
    }
    free(buf);
}

static void write_jpeg(const char *path, const uint8_t *rgb)
{
    mkparent(path);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = W;
    c.image_height = H;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * W * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

static void write_mask(const char *path, int defect, int dx, int dy, uint8_t on)
{
    uint8_t m[W * H];
    memset(m, 0, sizeof m);
    if (defect)
        for (int y = dy; y < dy + 12; y++)
            for (int x = dx; x < dx + 12; x++) m[y * W + x] = on;
    write_png(path, m, 1);
}

static const char *P(const char *root, const char *fmt, ...)
{
    static char bufs[4][2048];
    static int k;
    char rel[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    char *b = bufs[k++ & 3];
    snprintf(b, 2048, "%s/%s", root, rel);
    return b;
}

static void build_mvtec(const char *root)
{
    uint8_t img[W * H * 3];
    /* references created out of order; byte order: 10, 9, B, a, b */
    const char *train[] = {"b.png", "10.png", "a.png", "9.png", "B.png"};
    for (int i = 0; i < 5; i++) {
        make_image(img, 100 + i, 0, 0, 0);
        write_png(P(root, "widget/train/good/%s", train[i]), img, 3);
    }
    FILE *f = fopen(P(root, "widget/train/good/notes.txt"), "w");
    if (f) { fputs("not an image\n", f); fclose(f); }
    for (int i = 0; i < 3; i++) {
        make_image(img, 200 + i, 0, 0, 0);
        write_png(P(root, "widget/test/good/g%d.png", i), img, 3);
    }
    make_image(img, 300, 1, 20, 24);
    write_png(P(root, "widget/test/scratch/s0.png"), img, 3);
    write_mask(P(root, "widget/ground_truth/scratch/s0_mask.png"), 1, 20, 24, 255);
    make_image(img, 301, 1, 30, 30);
    write_png(P(root, "widget/test/scratch/s1.png"), img, 3);
    write_mask(P(root, "widget/ground_truth/scratch/s1_mask.png"), 0, 0, 0, 0); /* empty mask */
    make_image(img, 302, 1, 40, 16);
    write_png(P(root, "widget/test/dent/d0.png"), img, 3); /* no ground truth */
    make_image(img, 303, 1, 10, 40);
    write_png(P(root, "widget/test/bad2/x.png"), img, 3); /* digits: not evaluated */

    /* a second category with an unreadable test image */
    for (int i = 0; i < 4; i++) {
        make_image(img, 400 + i, 0, 0, 0);
        write_png(P(root, "gadget/train/good/%03d.png", i), img, 3);
    }
    for (int i = 0; i < 2; i++) {
        make_image(img, 500 + i, 0, 0, 0);
        write_png(P(root, "gadget/test/good/%03d.png", i), img, 3);
    }
    f = fopen(P(root, "gadget/test/good/002.png"), "wb");
    if (f) { fputs("\x89PNG\r\n\x1a\n truncated", f); fclose(f); }
    make_image(img, 600, 1, 25, 25);
    write_png(P(root, "gadget/test/crack/000.png"), img, 3);
    write_mask(P(root, "gadget/ground_truth/crack/000_mask.png"), 1, 25, 25, 255);
}

static void build_visa_raw(const char *root)
{
    uint8_t img[W * H * 3];
    char csv[4096];
    int n = snprintf(csv, sizeof csv, "object,split,label,image,mask\n");
    const char *train[] = {"0007", "0002", "0005", "0001"}; /* sorted: 0001 0002 0005 0007 */
    for (int i = 0; i < 4; i++) {
        make_image(img, 700 + i, 0, 0, 0);
        write_jpeg(P(root, "candle/Data/Images/Normal/%s.JPG", train[i]), img);
        n += snprintf(csv + n, sizeof csv - (size_t)n,
                      "candle,train,normal,candle/Data/Images/Normal/%s.JPG,\n", train[i]);
    }
    for (int i = 0; i < 2; i++) {
        make_image(img, 800 + i, 0, 0, 0);
        write_jpeg(P(root, "candle/Data/Images/Normal/%04d.JPG", 10 + i), img);
        n += snprintf(csv + n, sizeof csv - (size_t)n,
                      "candle,test,normal,candle/Data/Images/Normal/%04d.JPG,\n", 10 + i);
    }
    for (int i = 0; i < 3; i++) {
        make_image(img, 900 + i, 1, 15 + 10 * i, 20);
        write_jpeg(P(root, "candle/Data/Images/Anomaly/%03d.JPG", i), img);
        /* VisA masks may hold small non-zero values; 002 has an empty mask (label 0, design.md) */
        write_mask(P(root, "candle/Data/Masks/Anomaly/%03d.png", i), i < 2, 15 + 10 * i, 20, 1);
        n += snprintf(csv + n, sizeof csv - (size_t)n,
                      "candle,test,anomaly,candle/Data/Images/Anomaly/%03d.JPG,"
                      "candle/Data/Masks/Anomaly/%03d.png\n",
                      i, i);
    }
    const char *p = P(root, "split_csv/1cls.csv");
    mkparent(p);
    FILE *f = fopen(p, "w");
    if (f) { fputs(csv, f); fclose(f); }
}

/* ------------------------------------------------------------------------------------------ */
/* running and reading the outputs                                                             */
/* ------------------------------------------------------------------------------------------ */

static char errbuf[65536];

/* cmd_eval in-process with stderr captured into errbuf (and echoed, indented). */
static int run_eval(const char *tag, ...)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = "eval";
    argv[argc++] = "-m";
    argv[argc++] = weights;
    va_list ap;
    va_start(ap, tag);
    char *a;
    while ((a = va_arg(ap, char *)) && argc < 63) argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    const char *errfile = t_tmp("e2e_stderr.txt");
    fflush(stdout);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) { dup2(fd, 2); close(fd); }
    optind = 1;
    double t0 = cli_now();
    int rc = cmd_eval(argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    size_t len = 0;
    char *t = adi_io_read_file(errfile, &len);
    snprintf(errbuf, sizeof errbuf, "%s", t ? t : "");
    free(t);
    printf("--- %s: exit %d, %.1f s; stderr:\n", tag, rc, cli_now() - t0);
    for (char *line = errbuf, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) { printf("    %s\n", line); break; }
        printf("    %.*s\n", (int)(nl - line), line);
    }
    return rc;
}

static cJSON *load_json(const char *path)
{
    size_t len;
    char *t = adi_io_read_file(path, &len);
    if (!t) return NULL;
    cJSON *j = cJSON_ParseWithLength(t, len);
    free(t);
    return j;
}

static int refs_are(const char *run_file, const char *const *want, int n)
{
    cJSON *j = load_json(run_file);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "references"), *it;
    int ok = cJSON_GetArraySize(r) == n, i = 0;
    char got[512] = "";
    cJSON_ArrayForEach(it, r)
    {
        size_t l = strlen(got);
        snprintf(got + l, sizeof got - l, "%s%s", i ? "," : "", it->valuestring);
        if (i >= n || strcmp(it->valuestring, want[i])) ok = 0;
        i++;
    }
    printf("references %s: %s\n", run_file + strlen(run_file) - 30, got);
    cJSON_Delete(j);
    return ok;
}

/* label of `image` in the run file, -1 if absent */
static int label_of(const char *run_file, const char *image)
{
    cJSON *j = load_json(run_file);
    int label = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "images"))
    {
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(it, "image")->valuestring, image))
            label = (int)cJSON_GetObjectItemCaseSensitive(it, "label")->valuedouble;
    }
    cJSON_Delete(j);
    return label;
}

static int n_images(const char *run_file)
{
    cJSON *j = load_json(run_file);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "images"));
    cJSON_Delete(j);
    return n;
}

static long long mtime_ns(const char *path)
{
    struct stat st;
    if (stat(path, &st)) return -1;
    return (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

static int file_contains(const char *path, const char *needle, int times)
{
    size_t len;
    char *t = adi_io_read_file(path, &len);
    if (!t) return 0;
    int n = 0;
    for (const char *p = t; (p = strstr(p, needle)); p += strlen(needle)) n++;
    free(t);
    return n >= times;
}

/* ------------------------------------------------------------------------------------------ */

static void test_mvtec(void)
{
    char root[1024], out[1024];
    snprintf(root, sizeof root, "%s", t_tmp("e2e_mvtec"));
    snprintf(out, sizeof out, "%s", t_tmp("e2e_mvtec_out"));
    t_run("rm -rf '%s' '%s'", root, out);
    build_mvtec(root);

    int rc = run_eval("mvtec, 1+2 shots, 2 seeds", "--dataset", "mvtec", "--data", root,
                      "--categories", "widget", "--shots", "1,2", "--seeds", "2", "--preset",
                      "masking_only", "--resolution", RES, "--segmentation", "--threads", "2",
                      "-o", out, NULL);
    CHECK(rc == 0, "first run exit %d", rc);
    CHECK(strstr(errbuf, "d0.png") && strstr(errbuf, "no ground truth"),
          "defect image without ground truth reported with its path");
    CHECK(strstr(errbuf, "bad2") != NULL, "skipped test folder reported");
    CHECK(strstr(errbuf, "notes.txt") || strstr(errbuf, "not .png/.jpg"),
          "non-image reference file reported");

    /* output layout */
    static const char *const files[] = {"metrics.json", "metrics.csv", "tables.md", "scores.csv",
                                        "timing.csv", "settings.json", "report.html",
                                        "runs/1shot/seed0/widget.json",
                                        "runs/1shot/seed1/widget.json",
                                        "runs/2shot/seed0/widget.json",
                                        "runs/2shot/seed1/widget.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        CHECK(adi_io_exists(P(out, "%s", files[i])), "%s written", files[i]);

    /* references: sorted train/good names (byte order), block seed*k .. (seed+1)*k-1 */
    const char *r10[] = {"10.png"}, *r9[] = {"9.png"}, *r10_9[] = {"10.png", "9.png"},
               *rBa[] = {"B.png", "a.png"};
    CHECK(refs_are(P(out, "runs/1shot/seed0/widget.json"), r10, 1), "1-shot seed 0 uses 10.png");
    CHECK(refs_are(P(out, "runs/1shot/seed1/widget.json"), r9, 1), "1-shot seed 1 uses 9.png");
    CHECK(refs_are(P(out, "runs/2shot/seed0/widget.json"), r10_9, 2), "2-shot seed 0: 10, 9");
    CHECK(refs_are(P(out, "runs/2shot/seed1/widget.json"), rBa, 2), "2-shot seed 1: B, a");

    /* test images and labels */
    const char *run = P(out, "runs/1shot/seed0/widget.json");
    static const struct { const char *image; int label; } want[] = {
        {"good/g0.png", 0}, {"good/g1.png", 0}, {"good/g2.png", 0},
        {"dent/d0.png", 1},     /* no ground truth: its folder says anomalous */
        {"scratch/s0.png", 1},  /* ground truth with anomalous pixels */
        {"scratch/s1.png", 0},  /* all-zero ground truth: normal, as the original labels it */
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        int l = label_of(run, want[i].image);
        printf("label %-15s %d (want %d)\n", want[i].image, l, want[i].label);
        CHECK(l == want[i].label, "%s: label %d, want %d", want[i].image, l, want[i].label);
    }
    CHECK(n_images(run) == 6, "6 test images scored (bad2/ left out), got %d", n_images(run));
    CHECK(label_of(run, "bad2/x.png") == -1, "bad2/x.png not evaluated");

    /* metrics.json layout */
    cJSON *m = load_json(P(out, "metrics.json"));
    const cJSON *cell = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "results"), "2"),
            "1"),
        "widget");
    for (int k = 0; k < REP_N_METRICS; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cell, rep_metric_names[k]);
        CHECK(cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 1,
              "results.2.1.widget.%s present in [0,1]", rep_metric_names[k]);
    }
    for (int w = 0; w < 2; w++) {
        const cJSON *sum = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, w ? "std" : "mean"),
                                             "1"),
            "mean");
        CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(sum, "image_auroc")),
              "%s.1.mean.image_auroc present", w ? "std" : "mean");
    }
    CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(m, "settings")) &&
              cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "version")),
          "settings and version in metrics.json");
    cJSON_Delete(m);
    CHECK(file_contains(P(out, "tables.md"), "| widget |", 6), "tables.md: a widget row per metric");
    CHECK(file_contains(P(out, "scores.csv"), "shots,seed,category,image,label,score,time", 1),
          "scores.csv header");
    CHECK(file_contains(P(out, "scores.csv"), ",widget,scratch/s0.png,1,", 4),
          "scores.csv: s0 with label 1 in every run");
    CHECK(file_contains(P(out, "report.html"), "<svg", 2), "report.html has the ROC/PR curves");
    CHECK(file_contains(P(out, "report.html"), "data:image/png;base64,", 6),
          "report.html embeds the example images");

    /* resume: nothing recomputed, run records untouched */
    const char *runs[4] = {"runs/1shot/seed0/widget.json", "runs/1shot/seed1/widget.json",
                           "runs/2shot/seed0/widget.json", "runs/2shot/seed1/widget.json"};
    long long before[4];
    for (int i = 0; i < 4; i++) before[i] = mtime_ns(P(out, "%s", runs[i]));
    rc = run_eval("resume, same settings", "--dataset", "mvtec", "--data", root, "--categories",
                  "widget", "--shots", "1,2", "--seeds", "2", "--preset", "masking_only",
                  "--resolution", RES, "--segmentation", "--threads", "2", "-o", out, NULL);
    CHECK(rc == 0, "resume exit %d", rc);
    CHECK(strstr(errbuf, "0 run(s) computed, 4 resumed") != NULL, "resume recomputes nothing");
    for (int i = 0; i < 4; i++)
        CHECK(mtime_ns(P(out, "%s", runs[i])) == before[i], "%s untouched by the resume", runs[i]);

    /* more shots: only the new runs are computed; 4-shot seed 1 has one reference left */
    rc = run_eval("resume, 4 shots added", "--dataset", "mvtec", "--data", root, "--categories",
                  "widget", "--shots", "1,2,4", "--seeds", "2", "--preset", "masking_only",
                  "--resolution", RES, "--segmentation", "--threads", "2", "-o", out, NULL);
    CHECK(rc == 0, "extended run exit %d", rc);
    CHECK(strstr(errbuf, "2 run(s) computed, 4 resumed") != NULL, "only 4-shot computed");
    CHECK(strstr(errbuf, "only 1 of 4 references") != NULL, "too few references reported");
    const char *r4a[] = {"10.png", "9.png", "B.png", "a.png"}, *r4b[] = {"b.png"};
    CHECK(refs_are(P(out, "runs/4shot/seed0/widget.json"), r4a, 4), "4-shot seed 0");
    CHECK(refs_are(P(out, "runs/4shot/seed1/widget.json"), r4b, 1), "4-shot seed 1: what is left");
    for (int i = 0; i < 4; i++)
        CHECK(mtime_ns(P(out, "%s", runs[i])) == before[i], "%s still untouched", runs[i]);

    /* other settings into the same folder: refused, nothing touched */
    rc = run_eval("other resolution", "--dataset", "mvtec", "--data", root, "--categories",
                  "widget", "--shots", "1,2", "--seeds", "2", "--preset", "masking_only",
                  "--resolution", "84", "--segmentation", "-o", out, NULL);
    CHECK(rc == 1, "resuming with another resolution must fail, exit %d", rc);
    CHECK(strstr(errbuf, "resolution: 70 there, 84 now") != NULL, "the difference is named");
    for (int i = 0; i < 4; i++)
        CHECK(mtime_ns(P(out, "%s", runs[i])) == before[i], "%s untouched by the refusal", runs[i]);

    /* a missing category and an unreadable image: reported, the rest evaluated, exit 1 */
    rc = run_eval("missing category + broken image", "--dataset", "mvtec", "--data", root,
                  "--categories", "widget,gadget,nosuch", "--shots", "1,2", "--seeds", "2",
                  "--preset", "masking_only", "--resolution", RES, "--segmentation", "--threads",
                  "2", "-o", out, NULL);
    CHECK(rc == 1, "problems must give exit 1, got %d", rc);
    CHECK(strstr(errbuf, "nosuch") && strstr(errbuf, "not found"), "missing category named");
    CHECK(strstr(errbuf, "gadget/test/good/002.png") != NULL, "unreadable image named");
    CHECK(strstr(errbuf, "4 run(s) computed, 4 resumed") != NULL, "gadget computed, widget resumed");
    const char *grun = P(out, "runs/1shot/seed0/gadget.json");
    CHECK(n_images(grun) == 3, "gadget: the 3 readable test images scored, got %d", n_images(grun));
    CHECK(file_contains(P(out, "metrics.csv"), ",gadget,", 4), "gadget in metrics.csv");
    CHECK(file_contains(P(out, "report.html"), "002.png", 1), "report lists what was left out");
}

/* A tiny PNG (w x h grey) at path. */
static void write_small_png(const char *path, int w, int h)
{
    uint8_t px[16 * 16];
    memset(px, 128, sizeof px);
    uint8_t *buf;
    size_t len;
    mkparent(path);
    if (adi_io_encode_png(px, w, h, 1, &buf, &len) != AD_OK) return;
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(buf, 1, len, f);
        fclose(f);
    }
    free(buf);
}

/* Images that decode but cannot be processed are each named in the summary (they used to be
 * reported as one anonymous line, the others folded into it), and a --resolution that leaves no
 * patch is a usage error instead of a run in which every image fails. */
static void test_unusable_images(void)
{
    char root[1024], out[1024];
    snprintf(root, sizeof root, "%s", t_tmp("e2e_small"));
    snprintf(out, sizeof out, "%s", t_tmp("e2e_small_out"));
    t_run("rm -rf '%s' '%s'", root, out);
    uint8_t img[W * H * 3];
    for (int i = 0; i < 2; i++) {
        make_image(img, 300 + (unsigned)i, 0, 0, 0);
        write_png(P(root, "part/train/good/%03d.png", i), img, 3);
    }
    for (int i = 0; i < 2; i++) {
        make_image(img, 400 + (unsigned)i, 0, 0, 0);
        write_png(P(root, "part/test/good/%03d.png", i), img, 3);
        make_image(img, 500 + (unsigned)i, 1, 20, 20);
        write_png(P(root, "part/test/crack/%03d.png", i), img, 3);
    }
    write_small_png(P(root, "part/test/good/tiny_a.png"), 10, 10);
    write_small_png(P(root, "part/test/crack/tiny_b.png"), 12, 9);

    int rc = run_eval("resolution 13", "--dataset", "folder", "--data", root, "--shots", "1",
                      "--seeds", "1", "--resolution", "13", "-o", out, NULL);
    CHECK(rc == 2, "--resolution 13 (no patch fits) must be a usage error, exit %d", rc);
    CHECK(strstr(errbuf, "--resolution 13") != NULL, "the bad value is named");
    CHECK(!adi_io_exists(out), "nothing written for a usage error");

    rc = run_eval("empty shots entry", "--dataset", "folder", "--data", root, "--shots", "1,,2",
                  "--seeds", "1", "-o", out, NULL);
    CHECK(rc == 2, "--shots 1,,2 must be a usage error, exit %d", rc);
    CHECK(strstr(errbuf, "empty entry") != NULL, "the empty entry is named: %s", errbuf);
    CHECK(!adi_io_exists(out), "nothing written for a usage error");

    rc = run_eval("images smaller than a patch", "--dataset", "folder", "--data", root,
                  "--shots", "1", "--seeds", "1", "--resolution", "0", "--threads", "2", "-o",
                  out, NULL);
    CHECK(rc == 1, "left-out images give exit 1, got %d", rc);
    CHECK(strstr(errbuf, "good/tiny_a.png") != NULL, "first unusable image named");
    CHECK(strstr(errbuf, "crack/tiny_b.png") != NULL, "second unusable image named too");
    const char *run = P(out, "runs/1shot/seed0/part.json");
    CHECK(n_images(run) == 4, "the 4 usable test images scored, got %d", n_images(run));

    /* the crack images have no ground truth: the report must not show an all-black one for
     * them (that would say "no defect"), only for the good images */
    cJSON *j = load_json(run);
    const cJSON *ex;
    int n_bad = 0, n_good = 0;
    cJSON_ArrayForEach(ex, cJSON_GetObjectItemCaseSensitive(j, "examples"))
    {
        const cJSON *img = cJSON_GetObjectItemCaseSensitive(ex, "image");
        const cJSON *gt = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(ex, "files"), "gt");
        int bad = cJSON_IsString(img) && !strncmp(img->valuestring, "crack/", 6);
        int has_gt = cJSON_IsString(gt) && gt->valuestring[0];
        printf("example %s: ground truth file '%s'\n", cJSON_IsString(img) ? img->valuestring : "?",
               cJSON_IsString(gt) ? gt->valuestring : "?");
        if (bad) { n_bad++; CHECK(!has_gt, "defect example without a mask: no ground-truth image"); }
        else { n_good++; CHECK(has_gt, "good example: its (all-normal) ground truth shown"); }
    }
    CHECK(n_bad > 0 && n_good > 0, "examples of both kinds (%d defect, %d good)", n_bad, n_good);
    cJSON_Delete(j);
    CHECK(file_contains(P(out, "report.html"), "(not available)", 1),
          "report says the ground truth is not available");
}

static void test_visa_raw(void)
{
    char root[1024], out[1024];
    snprintf(root, sizeof root, "%s", t_tmp("e2e_visa"));
    snprintf(out, sizeof out, "%s", t_tmp("e2e_visa_out"));
    t_run("rm -rf '%s' '%s'", root, out);
    build_visa_raw(root);
    int rc = run_eval("visa raw, 1 shot, 2 seeds", "--dataset", "visa", "--data", root, "--shots",
                      "1", "--seeds", "2", "--preset", "agnostic", "--resolution", RES,
                      "--segmentation", "--threads", "2", "-o", out, NULL);
    CHECK(rc == 0, "visa run exit %d", rc);
    CHECK(file_contains(P(out, "settings.json"), "split_csv/1cls.csv", 1),
          "settings.json names the raw layout");
    const char *r1[] = {"0001.JPG"}, *r2[] = {"0002.JPG"};
    CHECK(refs_are(P(out, "runs/1shot/seed0/candle.json"), r1, 1), "seed 0 uses 0001.JPG");
    CHECK(refs_are(P(out, "runs/1shot/seed1/candle.json"), r2, 1), "seed 1 uses 0002.JPG");
    const char *run = P(out, "runs/1shot/seed0/candle.json");
    static const struct { const char *image; int label; } want[] = {
        {"good/0010.JPG", 0}, {"good/0011.JPG", 0}, {"bad/000.JPG", 1}, {"bad/001.JPG", 1},
        {"bad/002.JPG", 0}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        int l = label_of(run, want[i].image);
        printf("label %-15s %d (want %d)\n", want[i].image, l, want[i].label);
        CHECK(l == want[i].label, "%s: label %d, want %d", want[i].image, l, want[i].label);
    }
    cJSON *j = load_json(run);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "mask")) &&
              cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "rotate")),
          "agnostic on VisA: masked and rotated");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(
              cJSON_GetObjectItemCaseSensitive(j, "metrics"), "pixel_aupro")),
          "pixel metrics computed from the 0/1 masks");
    cJSON_Delete(j);
}

static void test_zeroshot(void)
{
    char root[1024], out[1024];
    snprintf(root, sizeof root, "%s", t_tmp("e2e_mvtec"));
    snprintf(out, sizeof out, "%s", t_tmp("e2e_zeroshot_out"));
    t_run("rm -rf '%s'", out);
    int rc = run_eval("zero-shot", "--dataset", "mvtec", "--data", root, "--categories", "widget",
                      "--mode", "zeroshot", "--resolution", RES, "--threads", "2", "-o", out,
                      NULL);
    CHECK(rc == 0, "zero-shot exit %d", rc);
    const char *run = P(out, "runs/0shot/seed0/widget.json");
    CHECK(adi_io_exists(run), "zero-shot run record");
    CHECK(n_images(run) == 6, "zero-shot scores every test image, got %d", n_images(run));
    cJSON *m = load_json(P(out, "metrics.json"));
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "results"),
                                                 "0"),
                "0"),
            "widget"),
        "image_auroc");
    CHECK(cJSON_IsNumber(v), "results.0.0.widget.image_auroc");
    cJSON_Delete(m);
    CHECK(file_contains(P(out, "tables.md"), "Zero-shot", 1), "tables.md: the Table 4 layout");
    CHECK(file_contains(P(out, "settings.json"), "masking_only", 1),
          "zero-shot preset defaults to masking_only");
}

int main(void)
{
    snprintf(weights, sizeof weights, "%s", t_data("dinov2/tiny.safetensors"));
    test_mvtec();
    test_visa_raw();
    test_zeroshot();
    test_unusable_images();
    return t_done("test_eval_e2e");
}
