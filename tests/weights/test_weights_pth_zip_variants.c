/* The same .pth checkpoint repacked as torch or other zip writers may produce it (stored or
 * deflated entries, zip64 records, another archive prefix, a byteorder entry) loads to the
 * very same arrays and fingerprint; a big-endian byteorder or a corrupt deflate stream is
 * refused cleanly. */
#include "wtest.h"

static void compare(const ad_weights *a, const ad_weights *b, const char *label)
{
    w_fields fa, fb;
    w_list(a, &fa);
    w_list(b, &fb);
    double worst = 0;
    int differ = fa.count != fb.count;
    for (int i = 0; i < fa.count && i < fb.count; i++) {
        worst = fmax(worst, t_maxdiff_f32(fa.p[i], fb.p[i], fa.n[i], NULL));
        differ |= memcmp(fa.p[i], fb.p[i], fa.n[i] * 4) != 0;
    }
    CHECK(!differ, "%s: values differ from the original (max %g)", label, worst);
    CHECK(a->fingerprint == b->fingerprint, "%s: fingerprint %016llx vs %016llx", label,
          (unsigned long long)a->fingerprint, (unsigned long long)b->fingerprint);
    CHECK(a->dim == b->dim && a->depth == b->depth && a->swiglu == b->swiglu &&
              a->ffn_hidden == b->ffn_hidden && !strcmp(b->format, "pth"),
          "%s: config differs", label);
    printf("%-28s max |diff| %g, fingerprint %016llx\n", label, worst,
           (unsigned long long)b->fingerprint);
}

static void variant(const ad_weights *ref, w_zent *z, int nz, int method, int zip64,
                    const char *label)
{
    char rel[96];
    snprintf(rel, sizeof rel, "weights_variant_%d_%d.pth", method, zip64);
    const char *out = t_tmp(rel);
    CHECK(w_zip_write(out, z, nz, method, zip64), "cannot write %s", out);
    ad_weights w;
    ad_status st = ad_weights_load(out, &w);
    CHECK(st == AD_OK, "%s: %s", label, ad_errmsg());
    if (st) return;
    compare(ref, &w, label);
    ad_weights_free(&w);
}

int main(void)
{
    const char *src = t_data("dinov2/tiny_swiglu.pth");
    ad_weights ref;
    CHECK_OK(ad_weights_load(src, &ref));
    w_zent *z = NULL;
    int nz = w_zip_read(src, &z);
    CHECK(nz > 0, "cannot read %s", src);
    if (t_failures) return t_done("test_weights_pth_zip_variants");

    variant(&ref, z, nz, 0, 0, "stored");
    variant(&ref, z, nz, 8, 0, "deflate");
    variant(&ref, z, nz, 0, 1, "stored + zip64 records");
    variant(&ref, z, nz, 8, 1, "deflate + zip64 records");

    /* torch >= 1.13 names the archive "archive/" whatever the file name */
    for (int i = 0; i < nz; i++) {
        char *sl = strchr(z[i].name, '/');
        char rest[200];
        snprintf(rest, sizeof rest, "%.150s", sl ? sl : "");
        snprintf(z[i].name, sizeof z[i].name, "archive%s", rest);
    }
    variant(&ref, z, nz, 0, 0, "prefix archive/");

    /* byteorder entry (torch >= 2.1) */
    w_zent *z2 = calloc((size_t)nz + 1, sizeof *z2);
    memcpy(z2, z, (size_t)nz * sizeof *z2);
    snprintf(z2[nz].name, sizeof z2[nz].name, "archive/byteorder");
    z2[nz].data = (uint8_t *)"little";
    z2[nz].len = 6;
    variant(&ref, z2, nz + 1, 0, 0, "byteorder little");
    z2[nz].data = (uint8_t *)"big";
    z2[nz].len = 3;
    const char *out = t_tmp("weights_bigendian.pth");
    CHECK(w_zip_write(out, z2, nz + 1, 0, 0), "write %s", out);
    ad_status st;
    CHECK(w_fails_cleanly(out, &st), "big-endian: status %d, '%s'", (int)st, ad_errmsg());
    CHECK(strstr(ad_errmsg(), "big-endian") != NULL, "message: %s", ad_errmsg());
    printf("byteorder big -> %s\n", ad_errmsg());
    free(z2);

    /* a corrupt deflate stream inside a weight entry */
    out = t_tmp("weights_deflate_bad.pth");
    CHECK(w_zip_write(out, z, nz, 8, 0), "write %s", out);
    size_t len;
    uint8_t *b = w_read(out, &len);
    int flipped = 0;
    for (size_t p = 0; b && p + 30 < len && !flipped; p++) {
        /* the local header of the largest entry (fc1 weight, data/..): flip inside its data */
        if (w_r32(b + p) == 0x04034b50u && w_r32(b + p + 18) > 100000) {
            size_t d = p + 30 + w_r16(b + p + 26) + w_r16(b + p + 28);
            for (size_t k = 0; k < 64; k++) b[d + 500 + k] ^= 0xff;
            flipped = 1;
        }
    }
    CHECK(flipped, "no large deflated entry found");
    w_write(out, b, len);
    free(b);
    CHECK(w_fails_cleanly(out, &st), "corrupt deflate: status %d, '%s'", (int)st, ad_errmsg());
    printf("corrupt deflate -> %s\n", ad_errmsg());

    w_zip_free(z, nz);
    ad_weights_free(&ref);
    return t_done("test_weights_pth_zip_variants");
}
