/* anomalydino zeroshot end to end on a small generated batch with the tiny random model: CSV
 * header and one row per image, scores equal to the library's (ad_extract_image + ad_zeroshot +
 * ad_score_top1p on the same images), grid / map files of the right shapes, a bad image left out
 * of the batch (the others scored against each other, exit 1), --mask, JSON, usage errors. */
#include "anomalydino.h"
#include "io/io.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RES 112
#define N_IMG 6

static char dir[1024];

static const char *p(const char *rel)
{
    static char bufs[16][2100];
    static int i = 0;
    char *b = bufs[i++ & 15];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, rel);
    return b;
}

/* Textured disc on a background; image 4 carries a bright bar across the disc. */
static void make_image(const char *path, int w, int h, unsigned seed, int defect)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    double cx = w / 2.0 + (seed % 5) - 2, cy = h / 2.0 + (seed % 3) - 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double dx = x - cx, dy = y - cy, r = sqrt(dx * dx + dy * dy);
            double v = 70 + 12 * sin(0.25 * x + 0.1 * seed) * cos(0.3 * y);
            if (r < 0.4 * w) v = 160 + 30 * sin(r * 1.1 + 0.2 * seed);
            if (defect && fabs(dy - 0.05 * h) < 0.05 * h && fabs(dx) < 0.3 * w) v = 250;
            unsigned noise = (unsigned)(x * 73856093u ^ y * 19349663u ^ seed * 83492791u) % 9;
            for (int c = 0; c < 3; c++) {
                double t = v * (1.0 - 0.1 * c) + noise;
                rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)(t < 0 ? 0 : t > 255 ? 255 : t);
            }
        }
    ad_status st = adi_io_write_png_rgb(path, rgb, w, h);
    CHECK(st == AD_OK, "writing %s: %s", path, ad_errmsg());
    free(rgb);
}

static char *slurp(const char *path)
{
    size_t n;
    char *s = adi_io_read_file(path, &n);
    return s ? s : strdup("");
}

/* image,score rows after the header; returns the count. */
static int parse_csv(const char *out, char names[][64], double *scores, int max)
{
    const char *nl = strchr(out, '\n');
    CHECK(nl && !strncmp(out, "image,score,grid,map,overlay\n", (size_t)(nl - out + 1)),
          "CSV header: '%.40s'",
          out);
    int n = 0;
    for (const char *s = nl ? nl + 1 : ""; *s && n < max; n++) {
        const char *comma = strchr(s, ','), *e = strchr(s, '\n');
        if (!comma || !e || comma > e) break;
        const char *base = s;
        for (const char *q = s; q < comma; q++)
            if (*q == '/') base = q + 1;
        snprintf(names[n], 64, "%.*s", (int)(comma - base), base);
        scores[n] = atof(comma + 1);
        s = e + 1;
    }
    return n;
}

/* The library on the same files: scores[i] for paths[i]. */
static int library_scores(const char *const *paths, int n, int mask, double *scores)
{
    ad_model *m = ad_model_load(t_data("dinov2/tiny.safetensors"));
    CHECK(m != NULL, "model: %s", ad_errmsg());
    if (!m) return -1;
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = 2;
    ad_context *ctx = ad_context_new(m, cp);
    ad_features f[N_IMG + 2];
    uint8_t *keeps[N_IMG + 2] = {0};
    double *grids[N_IMG + 2];
    int ok = ctx != NULL;
    for (int i = 0; i < n && ok; i++) {
        ad_image img = {0};
        ok = adi_io_read_image(paths[i], &img) == AD_OK &&
             ad_extract_image(ctx, &img, RES, &f[i]) == AD_OK;
        ad_image_free(&img);
        CHECK(ok, "%s: %s", paths[i], ad_errmsg());
        if (!ok) n = i;
        else {
            size_t cells = (size_t)f[i].grid_h * f[i].grid_w;
            grids[i] = malloc(cells * sizeof(double));
            if (mask) {
                keeps[i] = malloc(cells);
                CHECK_OK(ad_mask_pca(&f[i], keeps[i]));
            }
        }
    }
    if (ok) {
        CHECK_OK(ad_zeroshot(ctx, f, (const uint8_t *const *)keeps, n, grids));
        for (int i = 0; i < n; i++)
            scores[i] = ad_score_top1p(grids[i], (size_t)f[i].grid_h * f[i].grid_w);
    }
    for (int i = 0; i < n; i++) {
        ad_features_free(&f[i]);
        free(grids[i]);
        free(keeps[i]);
    }
    ad_context_free(ctx);
    ad_model_free(m);
    return ok ? 0 : -1;
}

static void compare(const char *what, char names[][64], const double *cli, int n,
                    const char *const *stems, const double *lib)
{
    double maxd = 0;
    int where = 0;
    for (int i = 0; i < n; i++) {
        CHECK(!strcmp(names[i], stems[i]), "%s: row %d is %s, want %s", what, i, names[i],
              stems[i]);
        double d = fabs(cli[i] - lib[i]);
        if (d > maxd) maxd = d, where = i;
    }
    printf("%s: %d images, CLI vs library max |diff| %.2e at %s (CSV has 6 decimals)\n", what, n,
           maxd, stems[where]);
    CHECK(maxd <= 6e-7, "%s: CLI score %.7f vs library %.7f at %s", what, cli[where], lib[where],
          stems[where]);
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s", t_tmp("cli_zeroshot"));
    t_run("rm -rf '%s'", dir);
    adi_io_mkdirs(p("batch"));
    const char *b = t_bin(), *W = t_data("dinov2/tiny.safetensors");

    const char *stems[N_IMG] = {"img_0.png", "img_1.png", "img_2.png",
                                "img_3.png", "img_4.png", "img_5.png"};
    const char *paths[N_IMG];
    int sizes[N_IMG][2] = {{96, 96}, {100, 90}, {96, 96}, {90, 110}, {96, 96}, {96, 96}};
    for (int i = 0; i < N_IMG; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "batch/%s", stems[i]);
        paths[i] = strdup(p(rel));
        make_image(paths[i], sizes[i][0], sizes[i][1], (unsigned)i, i == 4);
    }

    int rc = t_run("%s zeroshot -m %s --resolution %d --grids %s --maps %s --threads 2 %s > %s "
                   "2> %s", b, W, RES, p("grids"), p("maps"), p("batch"), p("zs.csv"),
                   p("zs.err"));
    CHECK(rc == 0, "zeroshot: exit %d", rc);
    char *csv = slurp(p("zs.csv"));
    char names[N_IMG + 2][64];
    double cli[N_IMG + 2], lib[N_IMG + 2];
    int n = parse_csv(csv, names, cli, N_IMG + 2);
    CHECK(n == N_IMG, "zeroshot: %d rows, want %d:\n%s", n, N_IMG, csv);
    free(csv);
    if (n == N_IMG && library_scores(paths, N_IMG, 0, lib) == 0)
        compare("zeroshot", names, cli, n, stems, lib);
    int top = 0;
    for (int i = 1; i < n; i++)
        if (cli[i] > cli[top]) top = i;
    printf("zeroshot: highest score %s %.6f\n", names[top],
           cli[top]);

    /* files: grid Hp x Wp, map H x W */
    for (int i = 0; i < N_IMG; i++) {
        int w = sizes[i][0], h = sizes[i][1], ow, oh;
        if (w <= h) ow = RES, oh = (int)((double)RES * h / w);
        else oh = RES, ow = (int)((double)RES * w / h);
        char rel[128];
        snprintf(rel, sizeof rel, "grids/img_%d.npy", i);
        adi_npy a = {0};
        ad_status st = adi_npy_read(p(rel), &a);
        CHECK(st == AD_OK && a.dtype == AD_NPY_F4 && a.ndim == 2 &&
                  a.shape[0] == (size_t)(oh / 14) && a.shape[1] == (size_t)(ow / 14),
              "%s: %s shape %zu x %zu want %d x %d", rel, ad_errmsg(), a.shape[0], a.shape[1],
              oh / 14, ow / 14);
        if (st == AD_OK) {
            /* the grid gives the CLI's score back */
            double *g = adi_npy_to_f64(&a);
            double s = g ? ad_score_top1p(g, a.count) : -1;
            CHECK(fabs(s - cli[i]) < 1e-6, "%s: top-1%% of the grid %.7f vs CSV %.6f", rel, s,
                  cli[i]);
            adi_free(g);
        }
        adi_npy_free(&a);
        snprintf(rel, sizeof rel, "maps/img_%d.npy", i);
        st = adi_npy_read(p(rel), &a);
        CHECK(st == AD_OK && a.dtype == AD_NPY_F4 && a.ndim == 2 && a.shape[0] == (size_t)h &&
                  a.shape[1] == (size_t)w,
              "%s: %s shape %zu x %zu want %d x %d", rel, ad_errmsg(), a.shape[0], a.shape[1], h, w);
        adi_npy_free(&a);
    }
    printf("zeroshot: grids and maps of %d images with the right shapes\n", N_IMG);

    /* a bad image is left out; the others are scored against each other */
    FILE *f = fopen(p("batch/img_9_bad.png"), "wb");
    fputs("\x89PNG\r\n\x1a\n garbage", f);
    fclose(f);
    rc = t_run("%s zeroshot -m %s --resolution %d %s > %s 2> %s", b, W, RES, p("batch"),
               p("bad.csv"), p("bad.err"));
    csv = slurp(p("bad.csv"));
    char *err = slurp(p("bad.err"));
    n = parse_csv(csv, names, cli, N_IMG + 2);
    CHECK(rc == 1 && n == N_IMG && strstr(err, "img_9_bad.png") && strstr(err, "1 image failed"),
          "bad image: exit %d, %d rows, stderr: %s", rc, n, err);
    if (n == N_IMG) compare("zeroshot_with_bad_image", names, cli, n, stems, lib);
    free(csv);
    free(err);
    remove(p("batch/img_9_bad.png"));

    /* --mask: the library with PCA masks */
    rc = t_run("%s zeroshot -m %s --resolution %d --mask --format json %s > %s 2> /dev/null", b,
               W, RES, p("batch"), p("mask.json"));
    char *js = slurp(p("mask.json"));
    cJSON *doc = cJSON_Parse(js);
    const cJSON *res = cJSON_GetObjectItem(doc, "results");
    n = cJSON_GetArraySize(res);
    CHECK(rc == 0 && n == N_IMG, "zeroshot --mask --format json: exit %d, %d results", rc, n);
    for (int i = 0; i < n && i < N_IMG; i++) {
        const cJSON *r = cJSON_GetArrayItem(res, i);
        const char *img = cJSON_GetStringValue(cJSON_GetObjectItem(r, "image"));
        const char *slash = img ? strrchr(img, '/') : NULL;
        snprintf(names[i], 64, "%s", slash ? slash + 1 : img ? img : "?");
        cli[i] = cJSON_GetNumberValue(cJSON_GetObjectItem(r, "score"));
    }
    cJSON_Delete(doc);
    free(js);
    if (n == N_IMG && library_scores(paths, N_IMG, 1, lib) == 0)
        compare("zeroshot_mask_json", names, cli, n, stems, lib);

    /* usage */
    CHECK(t_run("%s zeroshot --help > /dev/null", b) == 0, "zeroshot --help: exit 0");
    CHECK(t_run("%s zeroshot -m %s 2> /dev/null", b, W) == 2, "zeroshot without images: exit 2");
    CHECK(t_run("%s zeroshot %s 2> /dev/null", b, p("batch")) == 2, "zeroshot without -m: exit 2");
    CHECK(t_run("%s zeroshot -m %s --resolution big %s 2> /dev/null", b, W, p("batch")) == 2,
          "zeroshot --resolution big: exit 2");
    CHECK(t_run("%s zeroshot -m %s --resolution %d %s 2> /dev/null > /dev/null", b, W, RES,
                paths[0]) == 1, "zeroshot with one image: exit 1");
    /* --grids and --maps in one folder: the maps would overwrite the grids (both STEM.npy) */
    CHECK(t_run("%s zeroshot -m %s --resolution %d --grids %s --maps %s %s 2> /dev/null "
                "> /dev/null", b, W, RES, p("same"), p("same"), p("batch")) == 2,
          "zeroshot --grids D --maps D: exit 2");
    CHECK(!adi_io_exists(p("same")), "zeroshot --grids D --maps D: nothing written");
    printf("usage: --help 0, missing arguments 2, a single image 1\n");

    for (int i = 0; i < N_IMG; i++) free((void *)paths[i]);
    return t_done("test_cli_zeroshot");
}
