/* JPEG: a colour, a grey and a CMYK file written here with libjpeg decode to the source within
 * the loss of quality 95, and exactly to libjpeg's default decode (the decoder settings OpenCV
 * uses); grey is replicated; CMYK follows OpenCV's conversion formula; the EXIF orientation
 * (1..8, both byte orders) is applied as imread does. */
#include "io/io.h"
#include "testutil.h"

#include <stdio.h>
#include <jpeglib.h>
#include <string.h>

enum { W = 61, H = 45 };

static unsigned char src_val(int x, int y, int c)
{
    /* smooth gradients plus a soft ripple: realistic content for a lossy codec */
    double v = 40 + 2.5 * x + 1.7 * y + 30 * sin(0.3 * x + 0.2 * y + c) + 25 * c;
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static unsigned char *encode(int comps, J_COLOR_SPACE cs, const unsigned char *pix,
                             const unsigned char *app1, size_t app1_len, unsigned long *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    *len = 0;
    jpeg_mem_dest(&c, &out, len);
    c.image_width = W;
    c.image_height = H;
    c.input_components = comps;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    if (app1) jpeg_write_marker(&c, JPEG_APP0 + 1, app1, (unsigned)app1_len);
    while (c.next_scanline < H) {
        JSAMPROW r = (JSAMPROW)(pix + (size_t)c.next_scanline * W * comps);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return out;
}

/* libjpeg's own decode with default settings, to out_cs. */
static unsigned char *ref_decode(const unsigned char *buf, unsigned long len, J_COLOR_SPACE out_cs,
                                 int *comps)
{
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr e;
    d.err = jpeg_std_error(&e);
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, buf, len);
    jpeg_read_header(&d, TRUE);
    d.out_color_space = out_cs;
    jpeg_start_decompress(&d);
    *comps = d.output_components;
    unsigned char *p = malloc((size_t)d.output_width * d.output_height * d.output_components);
    while (d.output_scanline < d.output_height) {
        JSAMPROW r = p + (size_t)d.output_scanline * d.output_width * d.output_components;
        jpeg_read_scanlines(&d, &r, 1);
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    return p;
}

static const char *save(const char *name, const unsigned char *buf, unsigned long len)
{
    const char *p = t_tmp(name);
    FILE *f = fopen(p, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    return p;
}

static void report(const char *what, const unsigned char *a, const unsigned char *b, size_t n,
                   int tol)
{
    int maxd = 0;
    size_t where = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        sum += d;
        if (d > maxd) { maxd = d; where = i; }
    }
    printf("%-34s max diff %3d at (x %zu, y %zu, c %zu), mean %.3f\n", what, maxd, where / 3 % W,
           where / 3 / W, where % 3, sum / (double)n);
    CHECK(maxd <= tol, "%s: max diff %d > %d", what, maxd, tol);
}

static size_t make_exif(unsigned char *b, int orient, int big_endian)
{
    /* "Exif\0\0", TIFF header, IFD0 with two entries (a dummy tag first, then Orientation) */
    size_t n = 0;
    memcpy(b, "Exif\0\0", 6);
    n = 6;
    unsigned char *t = b + n;
    int le = !big_endian;
#define P16(p, v) do { if (le) { (p)[0] = (v) & 0xff; (p)[1] = ((v) >> 8) & 0xff; } \
                       else { (p)[0] = ((v) >> 8) & 0xff; (p)[1] = (v) & 0xff; } } while (0)
#define P32(p, v) do { if (le) { (p)[0] = (v) & 0xff; (p)[1] = ((v) >> 8) & 0xff; (p)[2] = ((v) >> 16) & 0xff; (p)[3] = ((v) >> 24) & 0xff; } \
                       else { (p)[3] = (v) & 0xff; (p)[2] = ((v) >> 8) & 0xff; (p)[1] = ((v) >> 16) & 0xff; (p)[0] = ((v) >> 24) & 0xff; } } while (0)
    t[0] = t[1] = le ? 'I' : 'M';
    P16(t + 2, 42);
    P32(t + 4, 8);
    P16(t + 8, 2);
    unsigned char *e = t + 10;
    P16(e, 0x010f); P16(e + 2, 2); P32(e + 4, 4); memcpy(e + 8, "abc", 4); /* Make */
    e += 12;
    P16(e, 0x0112); P16(e + 2, 3); P32(e + 4, 1); P16(e + 8, orient); e[10] = e[11] = 0;
    e += 12;
    P32(e, 0); /* no next IFD */
    e += 4;
#undef P16
#undef P32
    return n + (size_t)(e - t);
}

int main(void)
{
    static unsigned char rgb[W * H * 3], grey[W * H], cmyk[W * H * 4];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            for (int c = 0; c < 3; c++) rgb[(y * W + x) * 3 + c] = src_val(x, y, c);
            grey[y * W + x] = src_val(x, y, 1);
            for (int c = 0; c < 4; c++) cmyk[(y * W + x) * 4 + c] = src_val(x, y, c);
        }

    /* colour */
    {
        unsigned long len;
        unsigned char *jb = encode(3, JCS_RGB, rgb, NULL, 0, &len);
        ad_image img = {0, 0, NULL};
        CHECK_OK(adi_io_read_image(save("rgb.jpg", jb, len), &img));
        int comps;
        unsigned char *ref = ref_decode(jb, len, JCS_RGB, &comps);
        if (img.data && img.width == W && img.height == H) {
            report("rgb q95 vs source", img.data, rgb, sizeof rgb, 24);
            report("rgb vs libjpeg default decode", img.data, ref, sizeof rgb, 0);
        } else {
            CHECK(0, "rgb: size %dx%d", img.width, img.height);
        }
        adi_free(img.data);
        free(ref);
        free(jb);
    }
    /* grey: replicated */
    {
        unsigned long len;
        unsigned char *jb = encode(1, JCS_GRAYSCALE, grey, NULL, 0, &len);
        ad_image img = {0, 0, NULL};
        CHECK_OK(adi_io_read_image(save("grey.jpg", jb, len), &img));
        int comps;
        unsigned char *ref = ref_decode(jb, len, JCS_GRAYSCALE, &comps);
        static unsigned char ref3[W * H * 3], src3[W * H * 3];
        for (int i = 0; i < W * H; i++)
            for (int c = 0; c < 3; c++) {
                ref3[i * 3 + c] = ref[i];
                src3[i * 3 + c] = grey[i];
            }
        if (img.data && img.width == W && img.height == H) {
            report("grey q95 vs source", img.data, src3, sizeof src3, 8);
            report("grey vs libjpeg decode, replicated", img.data, ref3, sizeof ref3, 0);
        } else {
            CHECK(0, "grey: size %dx%d", img.width, img.height);
        }
        adi_free(img.data);
        free(ref);
        free(jb);
    }
    /* CMYK: OpenCV's formula on libjpeg's CMYK output */
    {
        unsigned long len;
        unsigned char *jb = encode(4, JCS_CMYK, cmyk, NULL, 0, &len);
        ad_image img = {0, 0, NULL};
        CHECK_OK(adi_io_read_image(save("cmyk.jpg", jb, len), &img));
        int comps;
        unsigned char *ref = ref_decode(jb, len, JCS_CMYK, &comps);
        static unsigned char exp3[W * H * 3], src3[W * H * 3];
        for (int i = 0; i < W * H; i++) {
            for (int c = 0; c < 3; c++) {
                int k = ref[i * 4 + 3], v = ref[i * 4 + c];
                exp3[i * 3 + c] = (unsigned char)(k - ((255 - v) * k >> 8));
                k = cmyk[i * 4 + 3];
                v = cmyk[i * 4 + c];
                src3[i * 3 + c] = (unsigned char)(k - ((255 - v) * k >> 8));
            }
        }
        if (img.data && img.width == W && img.height == H) {
            report("cmyk vs OpenCV formula on source", img.data, src3, sizeof src3, 24);
            report("cmyk vs OpenCV formula on libjpeg", img.data, exp3, sizeof exp3, 0);
        } else {
            CHECK(0, "cmyk: size %dx%d", img.width, img.height);
        }
        adi_free(img.data);
        free(ref);
        free(jb);
    }
    /* EXIF orientation: every value, little- and big-endian TIFF headers */
    {
        unsigned long len0;
        unsigned char *jb0 = encode(3, JCS_RGB, rgb, NULL, 0, &len0);
        int comps;
        unsigned char *s = ref_decode(jb0, len0, JCS_RGB, &comps); /* stored pixels */
        free(jb0);
        for (int be = 0; be < 2; be++) {
            for (int o = 1; o <= 8; o++) {
                unsigned char app1[128];
                size_t n = make_exif(app1, o, be);
                unsigned long len;
                unsigned char *jb = encode(3, JCS_RGB, rgb, app1, n, &len);
                char name[64];
                snprintf(name, sizeof name, "orient%d_%s.jpg", o, be ? "mm" : "ii");
                ad_image img = {0, 0, NULL};
                CHECK_OK(adi_io_read_image(save(name, jb, len), &img));
                free(jb);
                int tr = o >= 5;
                int dw = tr ? H : W, dh = tr ? W : H;
                CHECK(img.width == dw && img.height == dh, "orientation %d: %dx%d, expected %dx%d",
                      o, img.width, img.height, dw, dh);
                if (!img.data || img.width != dw || img.height != dh) {
                    adi_free(img.data);
                    continue;
                }
                /* EXIF: where the stored row 0 / column 0 appear on display */
                int bad = 0;
                for (int y = 0; y < dh; y++)
                    for (int x = 0; x < dw; x++) {
                        int sx, sy;
                        switch (o) {
                        case 1: sx = x; sy = y; break;
                        case 2: sx = W - 1 - x; sy = y; break;
                        case 3: sx = W - 1 - x; sy = H - 1 - y; break;
                        case 4: sx = x; sy = H - 1 - y; break;
                        case 5: sx = y; sy = x; break;
                        case 6: sx = y; sy = H - 1 - x; break;
                        case 7: sx = W - 1 - y; sy = H - 1 - x; break;
                        default: sx = W - 1 - y; sy = x; break;
                        }
                        bad += memcmp(img.data + ((size_t)y * dw + x) * 3,
                                      s + ((size_t)sy * W + sx) * 3, 3) != 0;
                    }
                printf("EXIF orientation %d (%s): %dx%d, %d pixels misplaced\n", o,
                       be ? "big-endian" : "little-endian", img.width, img.height, bad);
                CHECK(bad == 0, "orientation %d: %d pixels misplaced", o, bad);
                adi_free(img.data);
            }
        }
        free(s);
    }
    return t_done("test_jpeg_decode_roundtrip");
}
