/* Bank files: save + load is bit-exact (features, settings, masks, threshold, and the file
 * itself when saved again); a bank with any single byte flipped, truncated at any length, with
 * trailing bytes, a newer version, another magic or absurd sizes is refused with one line and
 * no crash; ad_bank_check_model tells the weights apart. */
#include "anomalydino.h"
#include "detect/detect.h"
#include "io/io.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint64_t rng = 0x1234567887654321ULL;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static float *random_features(int n, int d, int planted)
{
    float *x = malloc(sizeof(float) * (size_t)n * d);
    for (int i = 0; i < n * d; i++) x[i] = (float)(urand() * 2 - 1);
    if (planted) /* a strong first component so that the PCA mask keeps a block */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++) x[i * d + j] += (i % 6 >= 2 && i / 6 >= 2 ? 12.0f : -3.0f) * (j % 2 ? 1 : -1) / sqrtf((float)d) * 4;
    return x;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, fp);
    fclose(fp);
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (fp) {
        fwrite(b, 1, n, fp);
        fclose(fp);
    }
}

static void fix_crc(unsigned char *b, size_t n)
{
    uLong c = crc32(0L, b, (uInt)(n - 4));
    for (int i = 0; i < 4; i++) b[n - 4 + i] = (unsigned char)(c >> (8 * i));
}

/* Loads must fail with `want` and leave a one-line message. */
static int refused(const char *path, ad_status want, const char *what, size_t at)
{
    ad_bank *b = ad_bank_load(path);
    if (b) {
        ad_bank_free(b);
        CHECK(0, "%s at %zu: accepted", what, at);
        return 0;
    }
    (void)want;
    CHECK(strchr(ad_errmsg(), '\n') == NULL && strlen(ad_errmsg()) > 0, "%s: message", what);
    return 1;
}

/* Same query through two banks gives the same bits. */
static void same_answers(const ad_bank *a, const ad_bank *b, int d, const char *what)
{
    float *q = random_features(7 * 9, d, 0);
    ad_features f = {7, 9, d, q, NULL};
    double g1[63], g2[63];
    for (int ex = -1; ex <= 1; ex++) {
        CHECK_OK(ad_bank_query(a, NULL, &f, NULL, ex, g1));
        CHECK_OK(ad_bank_query(b, NULL, &f, NULL, ex, g2));
        CHECK(memcmp(g1, g2, sizeof g1) == 0, "%s: query (exclude %d) differs", what, ex);
    }
    free(q);
}

static ad_bank *build(const ad_model *m, int d, int mask_test, int k)
{
    ad_bank_params p = ad_bank_default_params();
    p.mask_test = mask_test;
    p.knn_k = k;
    p.resolution = 224;
    ad_bank *b = ad_bank_new(m, &p);
    if (!b) return NULL;
    for (int id = 0; id < 3; id++) {
        float *x = random_features(36, d, mask_test);
        uint8_t keep[36];
        for (int i = 0; i < 36; i++) keep[i] = (i * 7 + id) % 5 != 0; /* drops cells: side rows */
        ad_features f = {6, 6, d, x, NULL};
        CHECK_OK(ad_bank_add_features(b, &f, id == 1 ? keep : NULL, id * 10 + 1));
        /* a second insertion (a "rotation") of the same image */
        for (int i = 0; i < 36 * d; i++) x[i] = -x[i];
        CHECK_OK(ad_bank_add_features(b, &f, keep, id * 10 + 1));
        free(x);
    }
    return b;
}

int main(void)
{
    const char *p1 = t_tmp("roundtrip_a.adbank"), *p2 = t_tmp("roundtrip_b.adbank");
    char path1[1024], path2[1024], bad[1024];
    snprintf(path1, sizeof path1, "%s", p1);
    snprintf(path2, sizeof path2, "%s", p2);
    snprintf(bad, sizeof bad, "%s", t_tmp("roundtrip_bad.adbank"));

    /* 1. Round trip with the tiny model's identity, a threshold, masks and side rows. */
    ad_model *m = ad_model_load(t_data("dinov2/tiny.safetensors"));
    ad_model *m2 = ad_model_load(t_data("dinov2/tiny_reg.safetensors"));
    CHECK(m && m2, "model load: %s", ad_errmsg());
    if (!m || !m2) return t_done("test_bank_roundtrip");
    int d = ad_model_get_info(m).dim;
    for (int variant = 0; variant < 2; variant++) {
        ad_bank *a = build(m, d, variant, variant ? 2 : 1);
        CHECK(a != NULL, "build: %s", ad_errmsg());
        if (!a) continue;
        if (variant) CHECK_OK(ad_bank_calibrate_loo(a, NULL, AD_THRESH_QUANTILE, 0.75));
        else {
            double s[3] = {0.25, 0.5, 0.125};
            CHECK_OK(ad_bank_calibrate_scores(a, s, 3, AD_THRESH_MAX, 0));
        }
        CHECK_OK(ad_bank_save(a, path1));
        ad_bank *b = ad_bank_load(path1);
        CHECK(b != NULL, "load: %s", ad_errmsg());
        if (!b) {
            ad_bank_free(a);
            continue;
        }
        ad_bank_params pa = ad_bank_get_params(a), pb = ad_bank_get_params(b);
        CHECK(memcmp(&pa, &pb, sizeof pa) == 0, "params differ");
        CHECK(ad_bank_rows(a) == ad_bank_rows(b) && ad_bank_images(a) == ad_bank_images(b),
              "rows %zu/%zu images %d/%d", ad_bank_rows(a), ad_bank_rows(b), ad_bank_images(a),
              ad_bank_images(b));
        CHECK(a->rows * (size_t)d > 0 && memcmp(a->feat, b->feat, a->rows * (size_t)d * 4) == 0 &&
                  memcmp(a->norm2, b->norm2, a->rows * 4) == 0 &&
                  memcmp(a->row_image, b->row_image, a->rows * 4) == 0 &&
                  memcmp(a->row_angle, b->row_angle, a->rows) == 0 &&
                  memcmp(a->row_cell, b->row_cell, a->rows * 4) == 0,
              "rows differ");
        CHECK(a->side_rows == b->side_rows &&
                  memcmp(a->side_feat, b->side_feat, a->side_rows * (size_t)d * 4) == 0,
              "side rows differ (%zu vs %zu)", a->side_rows, b->side_rows);
        int masks_same = 1, with_mask = 0;
        for (int i = 0; i < a->n_images; i++) {
            const dt_image *x = &a->images[i], *y = &b->images[i];
            masks_same &= x->id == y->id && x->grid_h == y->grid_h && x->grid_w == y->grid_w &&
                          x->n_inserts == y->n_inserts && !x->keep_test == !y->keep_test &&
                          (!x->keep_test || memcmp(x->keep_test, y->keep_test, 36) == 0);
            with_mask += x->keep_test != NULL;
        }
        CHECK(masks_same, "image records differ");
        CHECK(variant == 0 || with_mask == 3, "mask_test bank stores %d test masks", with_mask);
        double ta = -1, tb = -2;
        CHECK(ad_bank_threshold(a, &ta) && ad_bank_threshold(b, &tb) && ta == tb,
              "threshold %.17g vs %.17g", ta, tb);
        CHECK(a->rule == b->rule && a->quantile == b->quantile, "threshold rule differs");
        CHECK_OK(ad_bank_check_model(b, m));
        CHECK(ad_bank_check_model(b, m2) == AD_E_MISMATCH, "other weights accepted");
        printf("variant %d: %zu rows, %zu side rows, %d images, threshold %.9g: %s\n", variant,
               ad_bank_rows(b), b->side_rows, ad_bank_images(b), tb, ad_errmsg());
        same_answers(a, b, d, "loaded bank");
        /* Saved again: the same bytes. */
        CHECK_OK(ad_bank_save(b, path2));
        size_t n1 = 0, n2 = 0;
        unsigned char *f1 = slurp(path1, &n1), *f2 = slurp(path2, &n2);
        CHECK(f1 && f2 && n1 == n2 && memcmp(f1, f2, n1) == 0, "re-saved file differs (%zu vs %zu bytes)", n1, n2);
        free(f1);
        free(f2);
        ad_bank_free(a);
        ad_bank_free(b);
    }
    {
        ad_bank *nomodel = ad_bank_new(NULL, NULL);
        CHECK(ad_bank_check_model(nomodel, m) == AD_E_MISMATCH, "bank without identity accepted");
        CHECK(ad_bank_save(nomodel, path2) == AD_E_ARG, "empty bank without width saved");
        ad_bank_free(nomodel);
    }

    /* 2. Corruption, exhaustively, on a small bank (dim 8). */
    ad_bank_params p = ad_bank_default_params();
    p.mask_test = 1;
    ad_bank *s = ad_bank_new(NULL, &p);
    for (int id = 0; id < 2; id++) {
        float *x = random_features(36, 8, 1);
        ad_features f = {6, 6, 8, x, NULL};
        uint8_t keep[36];
        for (int i = 0; i < 36; i++) keep[i] = i % 3 != 0;
        CHECK_OK(ad_bank_add_features(s, &f, keep, id));
        free(x);
    }
    double sc[2] = {0.1, 0.2};
    CHECK_OK(ad_bank_calibrate_scores(s, sc, 2, AD_THRESH_MAX, 0));
    ad_index_params ixp = {4, 2, 2}; /* format 3's index section is covered too */
    CHECK_OK(ad_bank_index_build(s, NULL, &ixp));
    CHECK_OK(ad_bank_save(s, path1));
    size_t n = 0;
    unsigned char *orig = slurp(path1, &n), *buf = malloc(n + 16);
    {
        /* index fields out of range, checksum fixed: a list number, the list count, probes */
        const size_t rl = n - 4 - 4 * ad_bank_rows(s), hdr = rl - 4 * 4 * 8 - 16;
        const struct { size_t at; unsigned char v; const char *what, *msg; } bad_ix[] = {
            {n - 8, 4, "row list 4 of 4", "index list out of range"},
            {n - 5, 0x80, "row list negative", "index list out of range"},
            {hdr, 2, "index kind 2", "index fields"},
            {hdr + 4, 0, "0 lists", "index fields"},
            {hdr + 8, 5, "5 probes of 4 lists", "index fields"},
            {hdr + 12, 0, "0 iterations", "index fields"},
        };
        for (size_t i = 0; i < sizeof bad_ix / sizeof bad_ix[0]; i++) {
            memcpy(buf, orig, n);
            buf[bad_ix[i].at] = bad_ix[i].v;
            fix_crc(buf, n);
            spit(path2, buf, n);
            if (refused(path2, AD_E_FORMAT, bad_ix[i].what, bad_ix[i].at))
                CHECK(strstr(ad_errmsg(), bad_ix[i].msg) != NULL, "%s: %s", bad_ix[i].what, ad_errmsg());
        }
        printf("index fields out of range: refused (last: %s)\n", ad_errmsg());
    }
    printf("small bank file: %zu bytes, %zu rows, %zu side rows\n", n, ad_bank_rows(s), s->side_rows);
    {
        ad_bank *ok = ad_bank_load(path1);
        CHECK(ok != NULL, "small bank load: %s", ad_errmsg());
        ad_bank_free(ok);
    }
    size_t flips = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(buf, orig, n);
        buf[i] ^= (unsigned char)(1u << (i % 8));
        spit(bad, buf, n);
        flips += refused(bad, AD_E_FORMAT, "flipped byte", i);
    }
    printf("flipped one bit in each of %zu bytes: %zu refused\n", n, flips);
    CHECK(flips == n, "%zu of %zu corrupted files accepted", n - flips, n);
    size_t truncs = 0;
    for (size_t len = 0; len < n; len++) {
        spit(bad, orig, len);
        ad_bank *b = ad_bank_load(bad);
        CHECK(b == NULL, "truncated to %zu bytes: accepted", len);
        truncs += b == NULL;
        ad_bank_free(b);
    }
    printf("truncated at every length 0..%zu: %zu refused (last: %s)\n", n - 1, truncs, ad_errmsg());
    memcpy(buf, orig, n);
    memset(buf + n, 0, 16);
    spit(bad, buf, n + 16);
    refused(bad, AD_E_FORMAT, "trailing bytes", n);

    /* Newer version (checksum fixed so only the version speaks). */
    memcpy(buf, orig, n);
    buf[6] = 4; /* this build reads versions 1 to 3 */
    fix_crc(buf, n);
    spit(bad, buf, n);
    refused(bad, AD_E_FORMAT, "version 4", 6);
    CHECK(strstr(ad_errmsg(), "newer") != NULL, "version message: %s", ad_errmsg());
    printf("version 4: %s\n", ad_errmsg());
    memcpy(buf, orig, n);
    memcpy(buf, "PK\3\4", 4);
    spit(bad, buf, n);
    refused(bad, AD_E_FORMAT, "foreign magic", 0);
    CHECK(strstr(ad_errmsg(), "not a bank") != NULL, "magic message: %s", ad_errmsg());
    printf("foreign file: %s\n", ad_errmsg());
    /* Absurd sizes with a valid checksum: refused before any allocation. */
    const struct {
        size_t off;
        int bytes;
        uint64_t v;
        const char *what;
    } absurd[] = {{84, 8, 1ULL << 40, "rows 2^40"},      {84, 8, UINT64_MAX, "rows 2^64-1"},
                  {92, 8, 1ULL << 62, "side rows 2^62"}, {100, 4, 0xffffffffu, "images 2^32-1"},
                  {8, 4, 0, "dim 0"},                    {8, 4, 1u << 30, "dim 2^30"},
                  {20, 4, 0, "k 0"},                     {108 + 4, 4, 0x7fffffff, "grid 2^31"}};
    for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++) {
        memcpy(buf, orig, n);
        for (int bt = 0; bt < absurd[i].bytes; bt++)
            buf[absurd[i].off + bt] = (unsigned char)(absurd[i].v >> (8 * bt));
        fix_crc(buf, n);
        spit(bad, buf, n);
        refused(bad, AD_E_FORMAT, absurd[i].what, absurd[i].off);
        printf("%s: %s\n", absurd[i].what, ad_errmsg());
    }
    CHECK(ad_bank_load(t_tmp("no/such/file.adbank")) == NULL, "missing file accepted");
    CHECK(strstr(ad_errmsg(), "no/such/file.adbank") != NULL, "message names the file: %s", ad_errmsg());
    CHECK(ad_bank_save(s, t_tmp("no/such/dir/x.adbank")) == AD_E_IO, "save into a missing folder");
    printf("save into a missing folder: %s\n", ad_errmsg());

    free(orig);
    free(buf);
    ad_bank_free(s);
    ad_model_free(m);
    ad_model_free(m2);
    return t_done("test_bank_roundtrip");
}
