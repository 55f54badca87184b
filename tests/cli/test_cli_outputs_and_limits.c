/* Everyday use of fit / predict / zeroshot on an MVTec-style folder whose defect folders each
 * restart at 000.png: one uniquely named output per image mirroring the folders
 * (ov/broken_small/000.png), the CSV and JSON naming every file written and carrying the
 * threshold, float32 TIFF maps, a warning (not a silent rename) when two images still map to
 * one name, fit --json with the leave-one-out scores behind the threshold, fit/predict on a
 * dataset layout (--dataset --data), the pixel limit refusing a 16000 x 16000 header (message:
 * image, size, flag; exit 1) while the rest of the batch is scored, zeroshot refusing a single
 * image before it loads the weights, getopt errors with the program name. */
#include "testutil.h"

#include "io/io.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

static char base[1024];
static const char *bin;
static char weights[1024];

static const char *P(const char *fmt, ...)
{
    static char bufs[8][2048];
    static int k;
    char rel[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    char *b = bufs[k++ & 7];
    snprintf(b, 2048, "%s/%s", base, rel);
    return b;
}

static void make_image(const char *path, unsigned seed, int defect)
{
    enum { W = 64, H = 56 };
    uint8_t rgb[W * H * 3];
    uint32_t s = 2654435761u * (seed + 1);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            s = s * 1664525u + 1013904223u;
            int v = ((x - 32) * (x - 32) + (y - 28) * (y - 28) < 400 ? 170 : 60) +
                    (int)(s >> 29) - 4;
            if (defect && x > 30 && x < 42 && y > 20 && y < 30) v = 20;
            for (int c = 0; c < 3; c++) rgb[(y * W + x) * 3 + c] = (uint8_t)(v - 10 * c);
        }
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    adi_io_mkdirs(dir);
    CHECK_OK(adi_io_write_png_rgb(path, rgb, W, H));
}

static char *slurp(const char *path)
{
    size_t n;
    char *s = adi_io_read_file(path, &n);
    return s ? s : strdup("");
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static size_t chunk(uint8_t *out, const char *type, const uint8_t *data, uint32_t n)
{
    put_be32(out, n);
    memcpy(out + 4, type, 4);
    if (n) memcpy(out + 8, data, n);
    put_be32(out + 8 + n, (uint32_t)crc32(0, out + 4, n + 4));
    return 12 + n;
}

/* A small PNG whose header declares 16000 x 16000 RGB. */
static void huge_png(const char *path)
{
    uint8_t buf[2048];
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(buf, sig, 8);
    size_t n = 8;
    uint8_t ihdr[13] = {0};
    put_be32(ihdr, 16000);
    put_be32(ihdr + 4, 16000);
    ihdr[8] = 8, ihdr[9] = 2;
    n += chunk(buf + n, "IHDR", ihdr, 13);
    uint8_t raw[1000] = {0}, z[512];
    uLongf zl = sizeof z;
    compress(z, &zl, raw, sizeof raw);
    n += chunk(buf + n, "IDAT", z, (uint32_t)zl);
    n += chunk(buf + n, "IEND", NULL, 0);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(buf, 1, n, f);
        fclose(f);
    }
}

static cJSON *json_file(const char *path)
{
    char *s = slurp(path);
    cJSON *j = cJSON_Parse(s);
    CHECK(j != NULL, "%s is not JSON: %.300s", path, s);
    free(s);
    return j;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int main(void)
{
    snprintf(base, sizeof base, "%s", t_tmp("outputs"));
    t_run("rm -rf '%s'", base);
    adi_io_mkdirs(base);
    bin = t_bin();
    snprintf(weights, sizeof weights, "%s", t_data("dinov2/tiny.safetensors"));

    /* bottle-like: train/good 000..002, test/{good,broken_small,broken_large}/000.png ... */
    for (int i = 0; i < 3; i++) make_image(P("bottle/train/good/%03d.png", i), (unsigned)i, 0);
    make_image(P("bottle/test/good/000.png"), 10, 0);
    make_image(P("bottle/test/good/001.png"), 11, 0);
    make_image(P("bottle/test/broken_small/000.png"), 12, 1);
    make_image(P("bottle/test/broken_small/020.png"), 13, 1);
    make_image(P("bottle/test/broken_large/000.png"), 14, 1);
    static const char *const rel[] = {"broken_large/000", "broken_small/000", "broken_small/020",
                                      "good/000", "good/001"};
    enum { N_TEST = 5 };

    /* fit --json: the leave-one-out scores behind the threshold */
    int rc = t_run("ANOMALYDINO_QUIET=1 %s fit -m %s -o %s --resolution 56 --no-rotate --threads 2 "
                   "--json %s > %s 2> %s",
                   bin, weights, P("bank.adbank"), P("bottle/train/good"), P("fit.json"),
                   P("fit.err"));
    CHECK(rc == 0, "fit --json: exit %d", rc);
    cJSON *fj = json_file(P("fit.json"));
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(fj, "threshold");
    const cJSON *tv = cJSON_GetObjectItemCaseSensitive(th, "value");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(th, "scores");
    double thr = cJSON_IsNumber(tv) ? tv->valuedouble : -1, mx = -1;
    const cJSON *e;
    int n_sc = 0;
    cJSON_ArrayForEach(e, sc)
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "score");
        if (cJSON_IsNumber(v) && v->valuedouble > mx) mx = v->valuedouble;
        CHECK(str(e, "image") && strstr(str(e, "image"), "train/good/"), "score without image");
        n_sc++;
    }
    CHECK(n_sc == 3 && str(th, "source") && !strcmp(str(th, "source"), "leave-one-out"),
          "fit --json: 3 leave-one-out scores, got %d (%s)", n_sc, str(th, "source"));
    CHECK(thr > 0 && mx == thr, "rule max: the threshold %.9g is the largest LOO score %.9g", thr,
          mx);
    printf("fit --json: threshold %.6f = max of %d leave-one-out scores\n", thr, n_sc);
    cJSON_Delete(fj);
    /* the text summary lists them too */
    rc = t_run("ANOMALYDINO_QUIET=1 %s fit -m %s -o %s --resolution 56 --no-rotate --threads 2 %s "
               "> %s 2>&1", bin, weights, P("bank2.adbank"), P("bottle/train/good"),
               P("fit.txt"));
    char *ft = slurp(P("fit.txt"));
    CHECK(rc == 0 && strstr(ft, "loo score") && strstr(ft, "train/good/002.png"),
          "fit prints the leave-one-out scores:\n%s", ft);
    free(ft);

    /* predict over the test folder: mirrored, unique, named in the JSON; TIFF maps */
    rc = t_run("ANOMALYDINO_QUIET=1 %s predict -m %s -b %s --overlays %s --maps %s --maps-format "
               "tiff --grids %s --format json --threads 2 %s > %s 2> %s",
               bin, weights, P("bank.adbank"), P("ov"), P("maps"), P("grids"), P("bottle/test"),
               P("pred.json"), P("pred.err"));
    CHECK(rc == 0, "predict: exit %d", rc);
    cJSON *pj = json_file(P("pred.json"));
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(pj, "results");
    CHECK(cJSON_GetArraySize(res) == N_TEST, "predict: %d results", cJSON_GetArraySize(res));
    int matched = 0;
    cJSON_ArrayForEach(e, res)
    {
        const char *img = str(e, "image");
        const cJSON *files = cJSON_GetObjectItemCaseSensitive(e, "files");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "threshold");
        CHECK(cJSON_IsNumber(t) && t->valuedouble == thr, "%s: threshold in the row", img);
        for (int k = 0; k < N_TEST && img; k++) {
            char want_img[1200];
            snprintf(want_img, sizeof want_img, "%s.png", P("bottle/test/%s", rel[k]));
            if (strcmp(img, want_img)) continue;
            matched++;
            const char *ov = str(files, "overlay"), *mp = str(files, "map"), *gr = str(files, "grid");
            char w_ov[1200], w_mp[1200], w_gr[1200];
            snprintf(w_ov, sizeof w_ov, "%s.png", P("ov/%s", rel[k]));
            snprintf(w_mp, sizeof w_mp, "%s.tiff", P("maps/%s", rel[k]));
            snprintf(w_gr, sizeof w_gr, "%s.npy", P("grids/%s", rel[k]));
            CHECK(ov && !strcmp(ov, w_ov), "%s: overlay %s, want %s", img, ov, w_ov);
            CHECK(mp && !strcmp(mp, w_mp), "%s: map %s, want %s", img, mp, w_mp);
            CHECK(gr && !strcmp(gr, w_gr), "%s: grid %s, want %s", img, gr, w_gr);
            CHECK(adi_io_exists(w_ov) && adi_io_exists(w_mp) && adi_io_exists(w_gr),
                  "%s: the files named exist", img);
            float *m = NULL;
            int mw = 0, mh = 0;
            CHECK(adi_io_read_tiff_f32(w_mp, &m, &mw, &mh) == AD_OK && mw == 64 && mh == 56,
                  "%s: float32 TIFF map %d x %d: %s", w_mp, mw, mh, ad_errmsg());
            adi_free(m);
        }
    }
    CHECK(matched == N_TEST, "%d of %d images found with their mirrored outputs", matched, N_TEST);
    printf("predict: %d images, outputs mirrored (ov/broken_small/000.png, ...), named in JSON\n",
           matched);
    char *perr = slurp(P("pred.err"));
    CHECK(!strstr(perr, "warning"), "no renaming needed here: %s", perr);
    free(perr);
    cJSON_Delete(pj);
    /* no stray suffixed files */
    CHECK(!adi_io_exists(P("ov/000-2.png")) && !adi_io_exists(P("ov/broken_small/000-2.png")),
          "no suffixed outputs");

    /* CSV: threshold and file columns */
    rc = t_run("ANOMALYDINO_QUIET=1 %s predict -m %s -b %s --overlays %s --threads 2 %s > %s "
               "2> /dev/null", bin, weights, P("bank.adbank"), P("ov2"),
               P("bottle/test/broken_small"), P("pred.csv"));
    char *csv = slurp(P("pred.csv"));
    char want_row_end[1200];
    snprintf(want_row_end, sizeof want_row_end, ",,%s\n", P("ov2/020.png"));
    CHECK(rc == 0 && !strncmp(csv, "image,score,verdict,threshold,time_ms,grid,map,overlay\n", 55) &&
              strstr(csv, want_row_end),
          "CSV names the overlay of 020.png:\n%s", csv);
    free(csv);

    /* two images that still share an output name: the later one is suffixed, with a warning */
    make_image(P("other/000.png"), 20, 0);
    rc = t_run("ANOMALYDINO_QUIET=1 %s predict -m %s -b %s --overlays %s --threads 2 %s %s > %s "
               "2> %s", bin, weights, P("bank.adbank"), P("ov3"), P("bottle/test/good"),
               P("other"), P("clash.csv"), P("clash.err"));
    char *ce = slurp(P("clash.err")), *cc = slurp(P("clash.csv"));
    CHECK(rc == 0 && strstr(ce, "warning") && strstr(ce, "other/000.png") && strstr(ce, "000-2"),
          "a shared output name is reported: %s", ce);
    CHECK(strstr(cc, P("ov3/000-2.png")) != NULL, "the CSV names the suffixed file:\n%s", cc);
    free(ce);
    free(cc);

    /* fit and predict on a dataset layout */
    rc = t_run("ANOMALYDINO_QUIET=1 %s fit -m %s -o %s --resolution 56 --no-rotate --threads 2 "
               "--dataset mvtec --data %s --category bottle > /dev/null 2> %s",
               bin, weights, P("bank_ds.adbank"), P("."), P("fitds.err"));
    char *fe = slurp(P("fitds.err"));
    CHECK(rc == 0, "fit --dataset mvtec --data: exit %d: %s", rc, fe);
    free(fe);
    rc = t_run("ANOMALYDINO_QUIET=1 %s predict -m %s -b %s --overlays %s --threads 2 --dataset "
               "mvtec --data %s --category bottle > %s 2> /dev/null",
               bin, weights, P("bank_ds.adbank"), P("ov4"), P("."), P("pds.csv"));
    CHECK(rc == 0 && adi_io_exists(P("ov4/broken_small/000.png")) &&
              adi_io_exists(P("ov4/good/001.png")),
          "predict --dataset: the test split, outputs named by sample (exit %d)", rc);

    /* the pixel limit: a 16000 x 16000 header is refused, the batch goes on, exit 1 */
    make_image(P("huge/small.png"), 30, 0);
    huge_png(P("huge/big.png"));
    rc = t_run("ANOMALYDINO_QUIET=1 %s predict -m %s -b %s --threads 2 %s > %s 2> %s", bin,
               weights, P("bank.adbank"), P("huge"), P("huge.csv"), P("huge.err"));
    char *he = slurp(P("huge.err")), *hc = slurp(P("huge.csv"));
    CHECK(rc == 1 && strstr(he, "big.png") && strstr(he, "16000 x 16000") &&
              strstr(he, "--max-pixels"),
          "oversized header: exit %d, message names image, size and flag: %s", rc, he);
    CHECK(strstr(hc, "small.png") && !strstr(hc, "big.png"), "the other image is scored:\n%s", hc);
    printf("predict on a 16000x16000 header: %s", he);
    free(he);
    free(hc);
    /* the same for fit, zeroshot and eval, and a lowered limit */
    rc = t_run("ANOMALYDINO_QUIET=1 %s fit -m %s -o %s --threads 2 %s > /dev/null 2> %s", bin,
               weights, P("bank_huge.adbank"), P("huge"), P("fithuge.err"));
    he = slurp(P("fithuge.err"));
    CHECK(rc == 1 && strstr(he, "16000 x 16000") && strstr(he, "--max-pixels"), "fit: %s", he);
    free(he);
    rc = t_run("ANOMALYDINO_QUIET=1 %s predict -m %s -b %s --max-pixels 1000 --threads 2 %s > "
               "/dev/null 2> %s", bin, weights, P("bank.adbank"), P("huge/small.png"),
               P("lim.err"));
    he = slurp(P("lim.err"));
    CHECK(rc == 1 && strstr(he, "64 x 56") && strstr(he, "--max-pixels"),
          "--max-pixels 1000 refuses a 64 x 56 image: %s", he);
    free(he);

    /* zeroshot: one readable image is refused before the weights are even read */
    rc = t_run("%s zeroshot -m %s %s > /dev/null 2> %s", bin, P("no_such_weights.pth"),
               P("huge"), P("zs.err"));
    char *ze = slurp(P("zs.err"));
    CHECK(rc == 1 && strstr(ze, "at least 2 readable images (got 1 of 2)") &&
              !strstr(ze, "no_such_weights"),
          "zeroshot counts readable images first: exit %d: %s", rc, ze);
    free(ze);

    /* getopt errors carry the program name */
    rc = t_run("%s predict --bogus > /dev/null 2> %s", bin, P("opt.err"));
    char *oe = slurp(P("opt.err"));
    CHECK(rc == 2 && !strncmp(oe, "anomalydino predict: unknown option '--bogus'", 45),
          "unknown option: exit %d: %s", rc, oe);
    free(oe);
    rc = t_run("%s fit --knn > /dev/null 2> %s", bin, P("opt2.err"));
    oe = slurp(P("opt2.err"));
    CHECK(rc == 2 && strstr(oe, "anomalydino fit: --knn needs a value"), "missing value: %s", oe);
    free(oe);
    /* every --help gives the exit codes */
    static const char *const cmds[] = {"info", "features", "fit", "predict", "zeroshot", "eval",
                                       "metrics", "dataset"};
    for (int i = 0; i < 8; i++) {
        rc = t_run("%s %s --help > %s", bin, cmds[i], P("help.txt"));
        char *h = slurp(P("help.txt"));
        CHECK(rc == 0 && strstr(h, "Exit status"), "%s --help lacks the exit codes", cmds[i]);
        free(h);
    }
    return t_done("test_cli_outputs_and_limits");
}
