/* Datasets opened as they are downloaded: one set of tiny generated parts is written as
 * KolektorSDD (kosNN/PartN.jpg + PartN_label.bmp, empty labels for good parts), as Magnetic
 * Tile Defects (MT_Free + MT_<class>/Imgs/X.jpg with X.png masks), as a manifest CSV with TIFF
 * masks, and as the MVTec AD layout (PNG copies of the decoded JPEG pixels, the same split);
 * `anomalydino eval --segmentation` on each gives the same references, the same per-image
 * (label, score) pairs and the same image and pixel metrics. `anomalydino dataset --manifest`
 * writes a manifest that evaluates the same again, the --train-fraction split is the documented
 * one, and layouts that do not match are refused naming the layout and the folder. */
#include "testutil.h"

#include "report/report.h"
#include "io/io.h"

#include <cjson/cJSON.h>
#include <jpeglib.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <tiffio.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

#define W 56
#define H 56
#define N_GOOD 6
#define N_BAD 3

static char base[1024];
static const char *bin, *weights;

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

/* ------------------------------------------------------------------------------------------ */
/* the parts: pixels, masks, and each file format                                              */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    uint8_t rgb[W * H * 3]; /* the decoded JPEG: what every layout must show */
    uint8_t mask[W * H];    /* 0 / 255 */
    int defect;
} part;

static part parts[N_GOOD + N_BAD];

static void make_rgb(uint8_t *rgb, unsigned seed, int defect)
{
    uint32_t s = 2654435761u * (seed + 1);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            s = s * 1664525u + 1013904223u;
            int noise = (int)(s >> 28) - 8;
            int r2 = (x - W / 2) * (x - W / 2) + (y - H / 2) * (y - H / 2);
            for (int c = 0; c < 3; c++) {
                int v = r2 < 20 * 20 ? 150 + 30 * c + ((x / 5 + y / 5) % 2) * 20 : 40 + 10 * c;
                v += noise;
                if (defect && x >= 14 + 4 * (int)seed % 12 && x < 26 + 4 * (int)seed % 12 &&
                    y >= 16 && y < 28)
                    v = 250 - 60 * c;
                rgb[(y * W + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
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
    jpeg_set_quality(&c, 92, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * W * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

static void file_write(void *ctx, void *data, int size) { fwrite(data, 1, (size_t)size, ctx); }

static void write_bmp(const char *path, const uint8_t *m)
{
    mkparent(path);
    FILE *f = fopen(path, "wb");
    CHECK(f && stbi_write_bmp_to_func(file_write, f, W, H, 1, m), "writing %s", path);
    if (f) fclose(f);
}

static void write_tiff(const char *path, const uint8_t *m)
{
    mkparent(path);
    TIFF *t = TIFFOpen(path, "w");
    CHECK(t != NULL, "creating %s", path);
    if (!t) return;
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, W);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, H);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_LZW);
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 16);
    for (int y = 0; y < H; y++) TIFFWriteScanline(t, (void *)(m + y * W), (uint32_t)y, 0);
    TIFFClose(t);
}

static void write_png(const char *path, const uint8_t *px, int ch)
{
    mkparent(path);
    ad_status st = ch == 3 ? adi_io_write_png_rgb(path, px, W, H) : adi_io_write_png_gray(path, px, W, H);
    CHECK(st == AD_OK, "%s: %s", path, ad_errmsg());
}

/* The good parts g0..g5 and defects d0..d2. The pixels of every layout are the decoded JPEG. */
static void make_parts(void)
{
    for (int i = 0; i < N_GOOD + N_BAD; i++) {
        part *p = &parts[i];
        p->defect = i >= N_GOOD;
        uint8_t rgb[W * H * 3];
        make_rgb(rgb, (unsigned)i, p->defect);
        const char *tmp = P("src/%d.jpg", i);
        write_jpeg(tmp, rgb);
        ad_image img = {0};
        CHECK_OK(adi_io_read_image(tmp, &img));
        if (img.data) memcpy(p->rgb, img.data, sizeof p->rgb);
        ad_image_free(&img);
        memset(p->mask, 0, sizeof p->mask);
        if (p->defect)
            for (int y = 16; y < 28; y++)
                for (int x = 14 + 4 * i % 12; x < 26 + 4 * i % 12; x++) p->mask[y * W + x] = 255;
    }
}

static void copy_file(const char *from, const char *to)
{
    mkparent(to);
    size_t n;
    char *b = adi_io_read_file(from, &n);
    FILE *f = b ? fopen(to, "wb") : NULL;
    if (f) {
        fwrite(b, 1, n, f);
        fclose(f);
    }
    free(b);
    CHECK(f != NULL, "copy %s -> %s", from, to);
}

/* KolektorSDD: kos01/Part0..4 (0-2 good, 3-4 defective), kos02/Part0..3 (0-2 good, 3
 * defective). Good ones sorted by path: kos01/Part0..2, kos02/Part0..2; --train-fraction 0.5
 * takes the first 3 (kos01/Part0..2, parts 0..2) as references. */
static const char *ksdd_name[N_GOOD + N_BAD] = {"kos01/Part0", "kos01/Part1", "kos01/Part2",
                                                "kos02/Part0", "kos02/Part1", "kos02/Part2",
                                                "kos01/Part3", "kos01/Part4", "kos02/Part3"};

static void build_ksdd(void)
{
    for (int i = 0; i < N_GOOD + N_BAD; i++) {
        copy_file(P("src/%d.jpg", i), P("ksdd/%s.jpg", ksdd_name[i]));
        write_bmp(P("ksdd/%s_label.bmp", ksdd_name[i]), parts[i].mask);
    }
}

/* MTD: MT_Free/Imgs/f0..f5.jpg (+ blank f*.png as the real set has), MT_Blowhole/Imgs/b0, b1,
 * MT_Crack/Imgs/c0, each with its .png mask. */
static void build_mtd(void)
{
    for (int i = 0; i < N_GOOD; i++) {
        copy_file(P("src/%d.jpg", i), P("mtd/MT_Free/Imgs/f%d.jpg", i));
        write_png(P("mtd/MT_Free/Imgs/f%d.png", i), parts[i].mask, 1);
    }
    const char *bad[N_BAD] = {"MT_Blowhole/Imgs/b0", "MT_Blowhole/Imgs/b1", "MT_Crack/Imgs/c0"};
    for (int k = 0; k < N_BAD; k++) {
        copy_file(P("src/%d.jpg", N_GOOD + k), P("mtd/%s.jpg", bad[k]));
        write_png(P("mtd/%s.png", bad[k]), parts[N_GOOD + k].mask, 1);
    }
}

/* Manifest: PNG images, TIFF masks, paths relative to the CSV; same split as above. */
static void build_manifest(void)
{
    const char *csv = P("man/list.csv");
    mkparent(csv);
    FILE *f = fopen(csv, "w");
    if (!f) return;
    fprintf(f, "category,split,image,label,mask\n");
    for (int i = 0; i < N_GOOD + N_BAD; i++) {
        write_png(P("man/img/p%d.png", i), parts[i].rgb, 3);
        if (parts[i].defect) write_tiff(P("man/gt/p%d.tif", i), parts[i].mask);
        if (parts[i].defect)
            fprintf(f, "part,test,img/p%d.png,crack,gt/p%d.tif\n", i, i);
        else
            fprintf(f, "part,%s,img/p%d.png,good,\n", i < 3 ? "train" : "test", i);
    }
    fclose(f);
}

/* MVTec AD: PNG copies, the same references (parts 0..2). */
static void build_mvtec(void)
{
    for (int i = 0; i < N_GOOD + N_BAD; i++) {
        if (i < 3) write_png(P("mvtec/part/train/good/%03d.png", i), parts[i].rgb, 3);
        else if (!parts[i].defect) write_png(P("mvtec/part/test/good/%03d.png", i), parts[i].rgb, 3);
        else {
            write_png(P("mvtec/part/test/crack/%03d.png", i), parts[i].rgb, 3);
            write_png(P("mvtec/part/ground_truth/crack/%03d_mask.png", i), parts[i].mask, 1);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* running eval and comparing                                                                  */
/* ------------------------------------------------------------------------------------------ */

static cJSON *load_json(const char *path)
{
    size_t n;
    char *s = adi_io_read_file(path, &n);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    return j;
}

/* Runs eval with 3 references (all of the split), returns the run record or NULL. */
static cJSON *eval_run(const char *name, const char *layout, const char *data, const char *cat,
                       const char *extra)
{
    const char *out = P("out_%s", name);
    t_run("rm -rf '%s'", out);
    int rc = t_run("ANOMALYDINO_QUIET=1 %s eval -m %s --dataset %s --data %s --shots 3 --seeds 1 "
                   "--resolution 56 --segmentation --examples 0 --threads 2 %s -o %s > %s 2>&1",
                   bin, weights, layout, data, extra ? extra : "", out, P("%s.log", name));
    CHECK(rc == 0, "%s: eval exit %d (see %s)", name, rc, P("%s.log", name));
    cJSON *j = load_json(P("out_%s/runs/3shot/seed0/%s.json", name, cat));
    CHECK(j != NULL, "%s: no run record for category %s", name, cat);
    return j;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* (label, score) pairs of a run, sorted by label then score */
static int pairs(const cJSON *run, double *out, int max)
{
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(run, "images"))
    {
        if (n >= max) break;
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(it, "label");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(it, "score");
        if (cJSON_IsNumber(l) && cJSON_IsNumber(s)) out[n++] = l->valuedouble * 10 + s->valuedouble;
    }
    qsort(out, (size_t)n, sizeof *out, cmp_double);
    return n;
}

static void compare_runs(const char *name, const cJSON *ref, const cJSON *got)
{
    if (!ref || !got) return;
    double a[32], b[32];
    int na = pairs(ref, a, 32), nb = pairs(got, b, 32);
    CHECK(na == N_GOOD + N_BAD - 3 && nb == na, "%s: %d test images, mvtec %d", name, nb, na);
    double worst = 0;
    int where = -1;
    for (int i = 0; i < na && i < nb; i++)
        if (fabs(a[i] - b[i]) > worst) worst = fabs(a[i] - b[i]), where = i;
    CHECK(worst == 0, "%s: per-image (label, score) pairs differ from mvtec: largest %g at %d",
          name, worst, where);
    const cJSON *ma = cJSON_GetObjectItemCaseSensitive(ref, "metrics");
    const cJSON *mb = cJSON_GetObjectItemCaseSensitive(got, "metrics");
    double mworst = 0;
    const char *mwhere = "";
    int n_metrics = 0;
    for (int k = 0; k < REP_N_METRICS; k++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(ma, rep_metric_names[k]);
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(mb, rep_metric_names[k]);
        CHECK(cJSON_IsNumber(x) == cJSON_IsNumber(y), "%s: metric %s present in one run only",
              name, rep_metric_names[k]);
        if (!cJSON_IsNumber(x) || !cJSON_IsNumber(y)) continue;
        n_metrics++;
        double d = fabs(x->valuedouble - y->valuedouble);
        if (d >= mworst) mworst = d, mwhere = rep_metric_names[k];
    }
    CHECK(n_metrics >= 6, "%s: only %d metrics computed (pixel metrics expected)", name,
          n_metrics);
    CHECK(mworst == 0, "%s: metrics differ from mvtec: largest %g (%s)", name, mworst, mwhere);
    printf("%s vs mvtec: %d images, largest score difference %g; %d metrics, largest difference "
           "%g (%s)\n",
           name, nb, worst, n_metrics, mworst, mwhere);
}

static int count_refs(const cJSON *run) { return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(run, "references")); }

static char *slurp(const char *path)
{
    size_t n;
    char *s = adi_io_read_file(path, &n);
    return s ? s : strdup("");
}

int main(void)
{
    snprintf(base, sizeof base, "%s", t_tmp("layouts"));
    t_run("rm -rf '%s'", base);
    adi_io_mkdirs(base);
    bin = t_bin();
    static char wbuf[1024];
    snprintf(wbuf, sizeof wbuf, "%s", t_data("dinov2/tiny.safetensors"));
    weights = wbuf;

    make_parts();
    build_ksdd();
    build_mtd();
    build_manifest();
    build_mvtec();

    cJSON *mv = eval_run("mvtec", "mvtec", P("mvtec"), "part", NULL);
    cJSON *ks = eval_run("ksdd", "ksdd", P("ksdd"), "ksdd", NULL);
    cJSON *mt = eval_run("mtd", "mtd", P("mtd"), "mtd", NULL);
    cJSON *ma = eval_run("manifest", "manifest", P("man/list.csv"), "part", NULL);
    CHECK(ks && count_refs(ks) == 3, "ksdd: 3 references (the first half of 6 good parts)");
    if (ks) {
        const cJSON *r0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ks, "references"), 0);
        CHECK(cJSON_IsString(r0) && !strcmp(r0->valuestring, "kos01/Part0.jpg"),
              "ksdd: the first reference is kos01/Part0.jpg in sorted order");
    }
    compare_runs("ksdd (JPEG + BMP labels)", mv, ks);
    compare_runs("mtd (JPEG + PNG masks)", mv, mt);
    compare_runs("manifest (PNG + TIFF masks)", mv, ma);

    /* report.html: curve legends (coloured text) sit right of the 190 px plot box at x = 42,
     * never over the curves */
    char *html = slurp(P("out_mvtec/report.html"));
    int n_leg = 0, inside = 0;
    for (const char *q = html; (q = strstr(q, "<text x=\"")); q++) {
        const char *end = strchr(q, '>');
        const char *fill = strstr(q, " fill=\"#");
        if (!end || !fill || fill > end) continue;
        n_leg++;
        if (atoi(q + 9) < 42 + 190) inside++;
    }
    CHECK(n_leg >= 2 && inside == 0, "report legends: %d, %d inside the plot box", n_leg, inside);
    printf("report.html: %d curve legends, all right of the plot box\n", n_leg);
    free(html);

    /* the dataset command writes the manifest a layout gives; it evaluates the same */
    int rc = t_run("%s dataset ksdd %s --manifest %s > %s 2>&1", bin, P("ksdd"),
                   P("ksdd_manifest.csv"), P("dataset.log"));
    CHECK(rc == 0, "dataset ksdd --manifest: exit %d", rc);
    char *man = slurp(P("ksdd_manifest.csv"));
    CHECK(!strncmp(man, "category,split,image,label,mask\n", 32) &&
              strstr(man, "ksdd,train,ksdd/kos01/Part0.jpg,good,\n") &&
              strstr(man, "ksdd,test,ksdd/kos01/Part3.jpg,defect,ksdd/kos01/Part3_label.bmp\n"),
          "manifest of the ksdd layout:\n%s", man);
    free(man);
    cJSON *km = eval_run("ksdd_manifest", "manifest", P("ksdd_manifest.csv"), "ksdd", NULL);
    compare_runs("ksdd via dataset --manifest", mv, km);

    /* --train-fraction: 6 good parts, 0.34 -> floor(2.04) = 2 references */
    rc = t_run("%s dataset mtd %s --train-fraction 0.34 --format json > %s 2>&1", bin, P("mtd"),
               P("frac.json"));
    char *fj = slurp(P("frac.json"));
    cJSON *d = cJSON_Parse(fj);
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d, "categories"), 0);
    const cJSON *nr = cJSON_GetObjectItemCaseSensitive(c0, "references");
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(c0, "test");
    CHECK(rc == 0 && cJSON_IsNumber(nr) && nr->valuedouble == 2 && cJSON_IsNumber(nt) &&
              nt->valuedouble == N_GOOD + N_BAD - 2,
          "--train-fraction 0.34 of 6: 2 references, 7 tests: %s", fj);
    cJSON_Delete(d);
    free(fj);

    /* layouts that do not match: the message names the layout expected and the folder */
    rc = t_run("%s eval -m %s --dataset folder --data %s -o %s > /dev/null 2> %s", bin, weights,
               P("ksdd"), P("out_bad"), P("bad1.err"));
    char *e1 = slurp(P("bad1.err"));
    CHECK(rc == 1 && strstr(e1, "folder layout") && strstr(e1, P("ksdd")) &&
              strstr(e1, "--dataset ksdd"),
          "folder on a KolektorSDD tree: exit %d, says the layout and suggests ksdd: %s", rc, e1);
    printf("folder layout on KolektorSDD: %s", e1);
    free(e1);
    rc = t_run("%s dataset ksdd %s > /dev/null 2> %s", bin, P("mvtec"), P("bad2.err"));
    char *e2 = slurp(P("bad2.err"));
    CHECK(rc == 1 && strstr(e2, "KolektorSDD layout") && strstr(e2, "PartN_label.bmp"),
          "ksdd on an MVTec tree: exit %d: %s", rc, e2);
    printf("ksdd layout on MVTec: %s", e2);
    free(e2);
    rc = t_run("%s dataset mtd %s > /dev/null 2> %s", bin, P("ksdd"), P("bad3.err"));
    char *e3 = slurp(P("bad3.err"));
    CHECK(rc == 1 && strstr(e3, "MT_<class>") && strstr(e3, P("ksdd")),
          "mtd on a KolektorSDD tree: exit %d: %s", rc, e3);
    free(e3);
    /* a KolektorSDD part without its label is named, with the file expected */
    t_run("rm -f '%s'", P("ksdd/kos02/Part2_label.bmp"));
    rc = t_run("%s dataset ksdd %s > /dev/null 2> %s", bin, P("ksdd"), P("bad4.err"));
    char *e4 = slurp(P("bad4.err"));
    CHECK(strstr(e4, "kos02/Part2.jpg") && strstr(e4, "Part2_label.bmp"),
          "missing label named: %s", e4);
    free(e4);
    /* MVTec layout with a BMP mask left in place: the note says the .bmp exists and is not the
     * name this layout reads */
    t_run("cp -r '%s' '%s'", P("mvtec"), P("mvtec_bmp"));
    write_bmp(P("mvtec_bmp/part/ground_truth/crack/006_mask.bmp"), parts[6].mask);
    t_run("rm -f '%s'", P("mvtec_bmp/part/ground_truth/crack/006_mask.png"));
    rc = t_run("%s dataset mvtec %s > /dev/null 2> %s", bin, P("mvtec_bmp"), P("bmp.err"));
    char *eb = slurp(P("bmp.err"));
    CHECK(rc == 0 && strstr(eb, "006_mask.bmp exists") && strstr(eb, "--dataset folder"),
          "BMP mask beside an MVTec defect: %s", eb);
    free(eb);

    /* a manifest with a wrong header */
    FILE *f = fopen(P("bad.csv"), "w");
    if (f) { fputs("file,kind\na.png,good\n", f); fclose(f); }
    rc = t_run("%s dataset manifest %s > /dev/null 2> %s", bin, P("bad.csv"), P("bad5.err"));
    char *e5 = slurp(P("bad5.err"));
    CHECK(rc == 1 && strstr(e5, "category,split,image,label"), "bad manifest header: %s", e5);
    free(e5);

    /* eval applies the pixel limit to its images: 56 x 56 = 3136 pixels > 3000 */
    rc = t_run("ANOMALYDINO_QUIET=1 %s eval -m %s --dataset mvtec --data %s --shots 1 --seeds 1 "
               "--resolution 56 --max-pixels 3000 --threads 2 -o %s > /dev/null 2> %s",
               bin, weights, P("mvtec"), P("out_limit"), P("limit.err"));
    char *le = slurp(P("limit.err"));
    CHECK(rc == 1 && strstr(le, "56 x 56") && strstr(le, "--max-pixels"),
          "eval --max-pixels 3000: exit %d, images refused by size: %s", rc, le);
    free(le);

    /* rows that cannot be used are named by file and line, the others are kept */
    f = fopen(P("man/rows.csv"), "w");
    if (f) {
        fputs("image,label,split,category,mask\n"             /* any column order */
              "img/p0.png,good,train,part,\n"
              "img/p1.png,good,validation,part,\n"            /* line 3: unknown split */
              "img/p6.png,crack,train,part,gt/p6.tif\n"       /* line 4: defect as reference */
              "img/missing.png,good,test,part,\n"             /* line 5: no such file */
              "img/p6.png,crack,test,part,gt/p6.tif\n"
              "img/p3.png,0,test,part,\n", f);
        fclose(f);
    }
    rc = t_run("%s dataset manifest %s --format json > %s 2> %s", bin, P("man/rows.csv"),
               P("rows.json"), P("rows.err"));
    char *re = slurp(P("rows.err")), *rj = slurp(P("rows.json"));
    CHECK(rc == 0 && strstr(re, "rows.csv:3: split 'validation'") && strstr(re, "rows.csv:4: a train row") &&
              strstr(re, "missing.png") && strstr(re, "rows.csv:5"),
          "bad manifest rows named: %s", re);
    cJSON *rd = cJSON_Parse(rj);
    const cJSON *rc0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rd, "categories"), 0);
    const cJSON *rr = cJSON_GetObjectItemCaseSensitive(rc0, "references");
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(rc0, "test_defect");
    const cJSON *rg = cJSON_GetObjectItemCaseSensitive(rc0, "test_good");
    CHECK(cJSON_IsNumber(rr) && rr->valuedouble == 1 && cJSON_IsNumber(rt) && rt->valuedouble == 1 &&
              cJSON_IsNumber(rg) && rg->valuedouble == 1,
          "usable rows kept (1 reference, 1 defect, 1 good via label 0): %s", rj);
    cJSON_Delete(rd);
    free(re);
    free(rj);

    cJSON_Delete(mv);
    cJSON_Delete(ks);
    cJSON_Delete(mt);
    cJSON_Delete(ma);
    cJSON_Delete(km);
    return t_done("test_eval_downloaded_layouts");
}
