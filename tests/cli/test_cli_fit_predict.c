/* anomalydino fit / predict end to end with the tiny random model on small generated images:
 * bank written, CSV header and rows, verdicts consistent with the threshold, grid / map / overlay
 * files of the right shapes, stem collisions, JSON output, one-reference banks without a
 * threshold, calibration images and the quantile rule, corrupt banks and banks of other weights
 * refused, a bad image in a batch reported while the others are scored (exit 1), usage errors
 * (exit 2). */
#include "anomalydino.h"
#include "io/io.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RES 112 /* 8 x 8 patches: fast with the tiny model */

static const char *W;      /* tests/data/dinov2/tiny.safetensors */
static const char *W_REG;  /* tiny_reg: other weights */
static char dir[1024];

static const char *p(const char *rel)
{
    static char bufs[16][2100];
    static int i = 0;
    char *b = bufs[i++ & 15];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, rel);
    return b;
}

/* A textured disc on a background; `seed` moves and shades it a little, `defect` adds a dark
 * blotch on the disc. */
static void make_image(const char *path, int w, int h, unsigned seed, int defect)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    double cx = w / 2.0 + (seed % 5) - 2, cy = h / 2.0 + (seed % 3) - 1;
    double light = 0.9 + 0.05 * (seed % 4);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double dx = x - cx, dy = y - cy, r = sqrt(dx * dx + dy * dy);
            double v = 60 + 10 * sin(0.3 * x + seed) * cos(0.2 * y);
            if (r < 0.38 * w) v = light * (170 + 25 * sin(r * 1.3));
            if (defect && fabs(dx - 0.18 * w) < 0.09 * w && fabs(dy + 0.1 * h) < 0.07 * h) v = 25;
            unsigned noise = (unsigned)(x * 73856093u ^ y * 19349663u ^ seed * 83492791u) % 7;
            for (int c = 0; c < 3; c++) {
                double t = v * (1.0 - 0.08 * c) + noise;
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

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* "threshold   X" from fit's stdout; -1 if none. */
static double fit_threshold(const char *out)
{
    const char *t = strstr(out, "\nthreshold");
    if (!t) return -2;
    t += strlen("\nthreshold");
    while (*t == ' ') t++;
    if (!strncmp(t, "none", 4)) return -1;
    return atof(t);
}

static void check_npy_shape(const char *path, size_t d0, size_t d1)
{
    adi_npy a = {0};
    ad_status st = adi_npy_read(path, &a);
    CHECK(st == AD_OK, "%s: %s", path, ad_errmsg());
    if (st != AD_OK) return;
    CHECK(a.dtype == AD_NPY_F4 && a.ndim == 2 && a.shape[0] == d0 && a.shape[1] == d1,
          "%s: dtype %d, %d dims, shape %zu x %zu, want float32 %zu x %zu", path, (int)a.dtype,
          a.ndim, a.shape[0], a.ndim > 1 ? a.shape[1] : 0, d0, d1);
    int finite = 1, nonneg = 1;
    const float *f = a.data;
    for (size_t i = 0; i < a.count && a.dtype == AD_NPY_F4; i++) {
        if (!isfinite(f[i])) finite = 0;
        if (f[i] < 0) nonneg = 0;
    }
    CHECK(finite && nonneg, "%s: values must be finite and >= 0", path);
    adi_npy_free(&a);
}

/* Rows of a predict CSV: checks the header, returns the data rows (image, score, verdict). */
typedef struct {
    char image[512], verdict[8];
    double score, ms, thr; /* thr: -1 when the column is empty */
    char grid[512], map[512], overlay[512];
} row;

static int parse_csv(const char *out, row *rows, int max)
{
    const char *nl = strchr(out, '\n');
    CHECK(nl && !strncmp(out, "image,score,verdict,threshold,time_ms,grid,map,overlay\n",
                         (size_t)(nl - out + 1)),
          "CSV header: '%.60s'", out);
    if (!nl) return 0;
    int n = 0;
    for (const char *s = nl + 1; *s && n < max; n++) {
        const char *e = strchr(s, '\n');
        if (!e) break;
        char line[1024];
        size_t len = (size_t)(e - s) < sizeof line - 1 ? (size_t)(e - s) : sizeof line - 1;
        memcpy(line, s, len);
        line[len] = 0;
        char *f[8] = {0};
        int nf = 0;
        for (char *save = line, *tok; nf < 8 && (tok = strsep(&save, ","));) f[nf++] = tok;
        CHECK(nf == 8, "CSV row '%s': %d fields", line, nf);
        if (nf == 8) {
            snprintf(rows[n].image, sizeof rows[n].image, "%s", f[0]);
            rows[n].score = atof(f[1]);
            snprintf(rows[n].verdict, sizeof rows[n].verdict, "%s", f[2]);
            rows[n].thr = f[3][0] ? atof(f[3]) : -1;
            rows[n].ms = atof(f[4]);
            snprintf(rows[n].grid, sizeof rows[n].grid, "%s", f[5]);
            snprintf(rows[n].map, sizeof rows[n].map, "%s", f[6]);
            snprintf(rows[n].overlay, sizeof rows[n].overlay, "%s", f[7]);
        }
        s = e + 1;
    }
    return n;
}

static void test_usage(void)
{
    const char *b = t_bin();
    CHECK(t_run("%s fit --help > %s", b, p("help.txt")) == 0, "fit --help: exit 0");
    char *h = slurp(p("help.txt"));
    CHECK(strstr(h, "usage: anomalydino fit") != NULL, "fit --help prints the usage");
    free(h);
    CHECK(t_run("%s predict --help > /dev/null", b) == 0, "predict --help: exit 0");
    CHECK(t_run("%s fit --bogus 2> /dev/null", b) == 2, "fit --bogus: exit 2");
    CHECK(t_run("%s fit -m %s -o %s 2> /dev/null", b, W, p("x.adbank")) == 2,
          "fit without references: exit 2");
    CHECK(t_run("%s fit -m %s -o %s --threshold-rule quantile:2 %s 2> /dev/null", b, W,
                p("x.adbank"), p("good")) == 2, "fit --threshold-rule quantile:2: exit 2");
    CHECK(t_run("%s fit -m %s -o %s --preset nonsense %s 2> /dev/null", b, W, p("x.adbank"),
                p("good")) == 2, "fit --preset nonsense: exit 2");
    CHECK(t_run("%s predict -m %s %s 2> /dev/null", b, W, p("good")) == 2,
          "predict without -b: exit 2");
    CHECK(t_run("%s predict -m %s -b %s --format xml %s 2> /dev/null", b, W, p("bank.adbank"),
                p("good")) == 2, "predict --format xml: exit 2");
    CHECK(t_run("%s predict -m %s -b %s --vmax -1 %s 2> /dev/null", b, W, p("bank.adbank"),
                p("good")) == 2, "predict --vmax -1: exit 2");
    CHECK(t_run("%s fit -m %s -o %s %s 2> /dev/null", b, p("missing.safetensors"),
                p("x.adbank"), p("good")) == 1, "fit with missing weights: exit 1");
    /* an unwritable -o is refused before the work (not after fitting every reference) */
    CHECK(t_run("ANOMALYDINO_QUIET=0 %s fit -m %s -o %s --resolution %d %s 2> %s", b, W,
                p("no-such-dir/x.adbank"), RES, p("good"), p("fit_o.err")) == 1, "fit -o into a missing folder: exit 1");
    h = slurp(p("fit_o.err"));
    CHECK(strstr(h, "no-such-dir") && !strstr(h, "reference"),
          "fit -o into a missing folder: refused before the references are read: %s", h);
    free(h);
    CHECK(t_run("%s fit -m %s -o %s --resolution %d %s 2> /dev/null", b, W, p("good"), RES,
                p("good")) == 1,
          "fit -o FOLDER: exit 1");
    /* --grids and --maps in one folder: the maps would overwrite the grids (both STEM.npy) */
    CHECK(t_run("%s predict -m %s -b %s --grids %s --maps %s %s > /dev/null 2> /dev/null", b, W,
                p("bank.adbank"), p("same"), p("same"), p("test")) == 2,
          "predict --grids D --maps D: exit 2");
    CHECK(!adi_io_exists(p("same")), "predict --grids D --maps D: nothing written");
    CHECK(t_run("%s predict -m %s -b %s --grids %s --maps %s/./ %s > /dev/null 2> /dev/null", b,
                W, p("bank.adbank"), p("same2"), p("same2"), p("test")) == 1,
          "predict --grids D --maps D/./: exit 1");
    CHECK(!adi_io_exists(p("same2/part.npy")), "predict --grids D --maps D/./: no .npy written");
    CHECK(!adi_io_exists(p("x.adbank")), "no bank written by failed fits");
    printf("usage: --help 0, bad flags/values 2, missing weights 1\n");
}

int main(void)
{
    W = t_data("dinov2/tiny.safetensors");
    W_REG = t_data("dinov2/tiny_reg.safetensors");
    snprintf(dir, sizeof dir, "%s", t_tmp("cli_fit_predict"));
    t_run("rm -rf '%s'", dir);
    adi_io_mkdirs(p("good"));
    adi_io_mkdirs(p("calib"));
    adi_io_mkdirs(p("test/a"));
    adi_io_mkdirs(p("test/b"));
    adi_io_mkdirs(p("one"));
    const char *b = t_bin();

    /* references: 3 good; held-out good for calibration; test: good, defective, same stem twice */
    for (unsigned i = 0; i < 3; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "good/ref_%u.png", i);
        make_image(p(rel), 96, 84, i, 0);
    }
    make_image(p("one/ref.png"), 96, 84, 7, 0);
    make_image(p("calib/c1.png"), 96, 84, 11, 0);
    make_image(p("calib/c2.png"), 96, 84, 12, 0);
    make_image(p("test/a/part.png"), 100, 90, 5, 0);
    make_image(p("test/b/part.png"), 80, 96, 6, 1);
    make_image(p("test/defect.png"), 96, 84, 9, 1);

    /* fit: 3 references -> leave-one-out threshold */
    int rc = t_run("%s fit -m %s -o %s --resolution %d --threads 2 %s > %s 2> %s", b, W,
                   p("bank.adbank"), RES, p("good"), p("fit.out"), p("fit.err"));
    CHECK(rc == 0, "fit: exit %d", rc);
    char *fo = slurp(p("fit.out"));
    double thr = fit_threshold(fo);
    printf("fit: 3 references, threshold %.6f\n", thr);
    CHECK(thr > 0 && strstr(fo, "leave-one-out"), "fit: leave-one-out threshold expected: %s", fo);
    /* 96 x 84 -> 128 x 112 -> crop 126 x 112: 9 x 8 patches, x 8 rotations x 3 references */
    char want_rows[64];
    snprintf(want_rows, sizeof want_rows, "%d rows (8 rotations each)", 3 * 8 * 9 * 8);
    CHECK(strstr(fo, want_rows) != NULL, "fit summary: want '%s' in: %s", want_rows, fo);
    free(fo);

    /* predict with every output */
    rc = t_run("%s predict -m %s -b %s --grids %s --maps %s --overlays %s --threads 2 %s %s > %s "
               "2> %s",
               b, W, p("bank.adbank"), p("grids"), p("maps"), p("overlays"), p("test"),
               p("good/ref_0.png"), p("pred.csv"), p("pred.err"));
    CHECK(rc == 0, "predict: exit %d", rc);
    char *csv = slurp(p("pred.csv"));
    row rows[16];
    int n = parse_csv(csv, rows, 16);
    CHECK(n == 4, "predict: %d rows, want 4:\n%s", n, csv);
    int consistent = 1;
    double ref_score = -1, defect_score = -1;
    for (int i = 0; i < n; i++) {
        const char *want = rows[i].score > thr ? "NG" : "OK";
        if (fabs(rows[i].score - thr) > 2e-6 && strcmp(rows[i].verdict, want)) consistent = 0;
        if (strstr(rows[i].image, "ref_0.png")) ref_score = rows[i].score;
        if (strstr(rows[i].image, "defect.png")) defect_score = rows[i].score;
        CHECK(rows[i].ms > 0, "time_ms of %s: %g", rows[i].image, rows[i].ms);
        CHECK(fabs(rows[i].thr - thr) < 2e-6, "threshold column of %s: %g, fit said %g",
              rows[i].image, rows[i].thr, thr);
    }
    CHECK(consistent, "verdicts must be NG exactly when score > threshold %.6f:\n%s", thr, csv);
    /* a reference is in the bank: its own patches are there, distance 0 */
    CHECK(ref_score >= 0 && ref_score < 1e-5, "a reference scores ~0 against its bank: %g",
          ref_score);
    printf("predict: %d rows, verdicts consistent with %.6f; reference %.6f, defect %.6f\n", n,
           thr, ref_score, defect_score);
    free(csv);

    /* outputs: grid Hp x Wp, map H x W, overlay PNG of the image size; names mirror the path
     * below the folder given (test/a/part.png -> a/part), a file given alone keeps its stem;
     * the CSV row names each file */
    struct { const char *stem, *image; int w, h; } outs[] = {
        {"a/part", "test/a/part.png", 100, 90}, {"b/part", "test/b/part.png", 80, 96},
        {"defect", "test/defect.png", 96, 84}, {"ref_0", "good/ref_0.png", 96, 84}};
    for (int i = 0; i < 4; i++) {
        char rel[256];
        const row *rw = NULL;
        for (int k = 0; k < n; k++)
            if (!strcmp(rows[k].image, p(outs[i].image))) rw = &rows[k];
        CHECK(rw != NULL, "no CSV row for %s", outs[i].image);
        if (rw) {
            snprintf(rel, sizeof rel, "grids/%s.npy", outs[i].stem);
            CHECK(!strcmp(rw->grid, p(rel)), "%s: grid column '%s', want %s", outs[i].image,
                  rw->grid, p(rel));
            snprintf(rel, sizeof rel, "maps/%s.npy", outs[i].stem);
            CHECK(!strcmp(rw->map, p(rel)), "%s: map column '%s'", outs[i].image, rw->map);
            snprintf(rel, sizeof rel, "overlays/%s.png", outs[i].stem);
            CHECK(!strcmp(rw->overlay, p(rel)), "%s: overlay column '%s'", outs[i].image,
                  rw->overlay);
        }
        int sw = outs[i].w, sh = outs[i].h, ow, oh; /* smaller edge -> RES */
        if (sw <= sh) ow = RES, oh = (int)((double)RES * sh / sw);
        else oh = RES, ow = (int)((double)RES * sw / sh);
        snprintf(rel, sizeof rel, "grids/%s.npy", outs[i].stem);
        check_npy_shape(p(rel), (size_t)(oh / 14), (size_t)(ow / 14));
        snprintf(rel, sizeof rel, "maps/%s.npy", outs[i].stem);
        check_npy_shape(p(rel), (size_t)sh, (size_t)sw);
        snprintf(rel, sizeof rel, "overlays/%s.png", outs[i].stem);
        ad_image ov = {0};
        ad_status st = adi_io_read_image(p(rel), &ov);
        CHECK(st == AD_OK && ov.width == sw && ov.height == sh, "%s: %s, %dx%d want %dx%d", rel,
              ad_errmsg(), ov.width, ov.height, sw, sh);
        ad_image_free(&ov);
    }
    printf("outputs: grids, maps, overlays of 4 images with the right shapes (a/part, b/part), "
           "named in the CSV\n");

    /* JSON: same scores */
    rc = t_run("%s predict -m %s -b %s --format json %s > %s 2> /dev/null", b, W,
               p("bank.adbank"), p("test/defect.png"), p("pred.json"));
    CHECK(rc == 0, "predict --format json: exit %d", rc);
    char *js = slurp(p("pred.json"));
    cJSON *doc = cJSON_Parse(js);
    const cJSON *res = cJSON_GetObjectItem(doc, "results");
    const cJSON *r0 = cJSON_GetArrayItem(res, 0);
    const cJSON *sc = cJSON_GetObjectItem(r0, "score");
    const cJSON *vd = cJSON_GetObjectItem(r0, "verdict");
    const cJSON *th = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "settings"), "threshold");
    CHECK(cJSON_GetArraySize(res) == 1 && cJSON_IsNumber(sc) && cJSON_IsString(vd) &&
              cJSON_IsNumber(th),
          "JSON output: %s", js);
    if (cJSON_IsNumber(sc))
        CHECK(fabs(sc->valuedouble - defect_score) < 1e-6, "JSON score %.8f vs CSV %.6f",
              sc->valuedouble, defect_score);
    cJSON_Delete(doc);
    free(js);

    /* a bad image in the batch: reported, the others scored, exit 1 */
    FILE *f = fopen(p("test_bad_garbage.png"), "wb");
    fputs("this is not an image at all", f);
    fclose(f);
    size_t len;
    char *png = adi_io_read_file(p("test/defect.png"), &len);
    f = fopen(p("test_bad_truncated.png"), "wb");
    fwrite(png, 1, len / 2, f);
    fclose(f);
    free(png);
    rc = t_run("%s predict -m %s -b %s %s %s %s %s > %s 2> %s", b, W, p("bank.adbank"),
               p("test/defect.png"), p("test_bad_garbage.png"), p("test_bad_truncated.png"),
               p("good/ref_1.png"), p("bad.csv"), p("bad.err"));
    CHECK(rc == 1, "predict with bad images: exit %d, want 1", rc);
    csv = slurp(p("bad.csv"));
    char *err = slurp(p("bad.err"));
    n = parse_csv(csv, rows, 16);
    CHECK(n == 2 && strstr(rows[0].image, "defect.png") && strstr(rows[1].image, "ref_1.png"),
          "the two good images are still scored: %s", csv);
    CHECK(strstr(err, "2 images failed") && strstr(err, "test_bad_garbage.png") &&
              strstr(err, "test_bad_truncated.png"),
          "failures listed at the end: %s", err);
    printf("bad images: exit 1, %d rows, failures listed\n", n);
    free(csv);
    free(err);

    /* corrupt banks: one flipped byte anywhere is refused */
    char *bank = adi_io_read_file(p("bank.adbank"), &len);
    CHECK(bank && len > 64, "bank file readable (%zu bytes)", len);
    size_t where[3] = {10, len / 2, len - 1};
    for (int i = 0; bank && i < 3; i++) {
        bank[where[i]] ^= 0x10;
        f = fopen(p("flipped.adbank"), "wb");
        fwrite(bank, 1, len, f);
        fclose(f);
        bank[where[i]] ^= 0x10;
        rc = t_run("%s predict -m %s -b %s %s > %s 2> %s", b, W, p("flipped.adbank"),
                   p("test/defect.png"), p("flip.out"), p("flip.err"));
        char *o = slurp(p("flip.out")), *e = slurp(p("flip.err"));
        CHECK(rc == 1 && count_lines(o) == 0 && count_lines(e) >= 1,
              "bank with byte %zu flipped: exit %d, stdout '%s', stderr '%s'", where[i], rc, o, e);
        printf("flipped byte %zu of %zu: refused: %s", where[i], len, e);
        free(o);
        free(e);
    }
    free(bank);

    /* a bank used with other weights is refused */
    rc = t_run("%s predict -m %s -b %s %s > /dev/null 2> %s", b, W_REG, p("bank.adbank"),
               p("test/defect.png"), p("reg.err"));
    err = slurp(p("reg.err"));
    CHECK(rc == 1 && strstr(err, "other weights"), "bank with other weights: exit %d: %s", rc, err);
    printf("other weights: refused: %s", err);
    free(err);

    /* one reference, no calibration: no threshold, empty verdicts */
    rc = t_run("%s fit -m %s -o %s --resolution %d --no-rotate %s > %s 2> %s", b, W,
               p("one.adbank"), RES, p("one"), p("one.out"), p("one.err"));
    CHECK(rc == 0, "fit with one reference: exit %d", rc);
    char *o = slurp(p("one.out"));
    err = slurp(p("one.err"));
    CHECK(fit_threshold(o) == -1 && strstr(err, "no decision threshold"),
          "one reference: no threshold, said so: %s / %s", o, err);
    free(o);
    free(err);
    rc = t_run("%s predict -m %s -b %s %s %s > %s 2> /dev/null", b, W, p("one.adbank"),
               p("test/defect.png"), p("good/ref_2.png"), p("one.csv"));
    csv = slurp(p("one.csv"));
    n = parse_csv(csv, rows, 16);
    CHECK(rc == 0 && n == 2 && !rows[0].verdict[0] && !rows[1].verdict[0],
          "no threshold: empty verdicts: %s", csv);
    free(csv);
    rc = t_run("%s predict -m %s -b %s --format json %s > %s 2> /dev/null", b, W, p("one.adbank"),
               p("test/defect.png"), p("one.json"));
    js = slurp(p("one.json"));
    doc = cJSON_Parse(js);
    vd = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "results"), 0), "verdict");
    CHECK(rc == 0 && cJSON_IsNull(vd), "no threshold: JSON verdict null: %s", js);
    cJSON_Delete(doc);
    free(js);
    printf("one reference: no threshold, empty / null verdicts\n");

    /* calibration images, and the quantile rule below the max rule */
    rc = t_run("%s fit -m %s -o %s --resolution %d --calibrate %s %s > %s 2> /dev/null", b, W,
               p("cal.adbank"), RES, p("calib"), p("good"), p("cal.out"));
    o = slurp(p("cal.out"));
    double thr_cal = fit_threshold(o);
    CHECK(rc == 0 && thr_cal > 0 && strstr(o, "2 calibration image scores"),
          "fit --calibrate: exit %d: %s", rc, o);
    free(o);
    rc = t_run("%s fit -m %s -o %s --resolution %d --threshold-rule quantile:0.5 %s > %s 2> "
               "/dev/null", b, W, p("q.adbank"), RES, p("good"), p("q.out"));
    o = slurp(p("q.out"));
    double thr_q = fit_threshold(o);
    CHECK(rc == 0 && thr_q > 0 && thr_q <= thr, "quantile:0.5 threshold %.6f <= max %.6f", thr_q,
          thr);
    free(o);
    printf("calibration threshold %.6f; leave-one-out median %.6f <= max %.6f\n", thr_cal, thr_q,
           thr);

    test_usage();
    return t_done("test_cli_fit_predict");
}
