/* The pixel limit (adi_io_read_image_max / adi_io_read_mask_max) refuses an image from its
 * header, before any pixel buffer is allocated: a 746-byte-class PNG, a JPEG and a BMP and a
 * TIFF that declare 16000 x 16000 are refused while the largest single allocation of the whole
 * process (every malloc, libpng's and libjpeg's included: glibc's allocator is interposed here,
 * or ASan's allocator hooks are used in the sanitizer build) stays far below the image's 768 MB.
 * A positive control proves the counter sees image buffers. Then the mask readers (PNG, BMP via
 * stb_image, TIFF via libtiff, JPEG) give the same 0/1 masks under the documented rule (all
 * values < 128: nonzero; otherwise >= 128), and float32 TIFF maps round-trip exactly. */
#include "testutil.h"

#include "io/io.h"

#include <stdint.h>
#include <stdio.h> /* before jpeglib.h */
#include <jpeglib.h>
#include <string.h>
#include <tiffio.h>
#include <zlib.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

/* ------------------------------------------------------------------------------------------ */
/* largest single allocation, process-wide                                                     */
/* ------------------------------------------------------------------------------------------ */

static volatile size_t g_largest;

#if defined(__SANITIZE_ADDRESS__)
void __sanitizer_install_malloc_and_free_hooks(void (*m)(const volatile void *, size_t),
                                               void (*f)(const volatile void *));
static void on_malloc(const volatile void *p, size_t n)
{
    (void)p;
    if (n > g_largest) g_largest = n;
}
static void on_free(const volatile void *p) { (void)p; }
static void hooks_install(void) { __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free); }
static const char *hook_kind = "ASan allocator hooks";
#else
/* glibc's allocator under its exported names; these definitions interpose malloc for every
 * library of the process (libpng, libjpeg, libtiff call them through the PLT). */
void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
void __libc_free(void *);
static void note(size_t n)
{
    if (n > g_largest) g_largest = n;
}
void *malloc(size_t n) { note(n); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { note(a * b); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { note(n); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *aligned_alloc(size_t al, size_t n) { note(n); return __libc_memalign(al, n); }
void *memalign(size_t al, size_t n) { note(n); return __libc_memalign(al, n); }
int posix_memalign(void **out, size_t al, size_t n)
{
    note(n);
    void *p = __libc_memalign(al, n);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}
static void hooks_install(void) {}
static const char *hook_kind = "interposed glibc malloc";
#endif

/* ------------------------------------------------------------------------------------------ */
/* files that declare 16000 x 16000                                                            */
/* ------------------------------------------------------------------------------------------ */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static size_t png_chunk(uint8_t *out, const char *type, const uint8_t *data, uint32_t n)
{
    put_be32(out, n);
    memcpy(out + 4, type, 4);
    if (n) memcpy(out + 8, data, n);
    uint32_t crc = (uint32_t)crc32(0, out + 4, n + 4);
    put_be32(out + 8 + n, crc);
    return 12 + n;
}

static const char *write_file(const char *name, const void *b, size_t n)
{
    const char *p = t_tmp(name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(b, 1, n, f);
        fclose(f);
    }
    return p;
}

static const char *huge_png(void)
{
    static uint8_t buf[4096];
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t n = 0;
    memcpy(buf, sig, 8);
    n = 8;
    uint8_t ihdr[13] = {0};
    put_be32(ihdr, 16000);
    put_be32(ihdr + 4, 16000);
    ihdr[8] = 8; /* depth */
    ihdr[9] = 2; /* RGB */
    n += png_chunk(buf + n, "IHDR", ihdr, 13);
    /* a little compressed data: rows of zeros, far fewer than declared */
    uint8_t raw[2000] = {0}, z[1024];
    uLongf zl = sizeof z;
    compress(z, &zl, raw, sizeof raw);
    n += png_chunk(buf + n, "IDAT", z, (uint32_t)zl);
    n += png_chunk(buf + n, "IEND", NULL, 0);
    return write_file("huge.png", buf, n);
}

/* A real 16 x 16 JPEG whose SOF0 then claims 16000 x 16000. */
static const char *huge_jpeg(void)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *mem = NULL;
    unsigned long len = 0;
    jpeg_mem_dest(&c, &mem, &len);
    c.image_width = 16;
    c.image_height = 16;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t row[48] = {0};
    while (c.next_scanline < 16) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    int patched = 0;
    for (unsigned long i = 0; i + 9 < len; i++)
        if (mem[i] == 0xFF && mem[i + 1] == 0xC0) {
            mem[i + 5] = 16000 >> 8, mem[i + 6] = 16000 & 255; /* height */
            mem[i + 7] = 16000 >> 8, mem[i + 8] = 16000 & 255; /* width */
            patched = 1;
            break;
        }
    CHECK(patched, "no SOF0 marker in the test JPEG");
    const char *p = write_file("huge.jpg", mem, len);
    free(mem);
    return p;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static const char *huge_bmp(void)
{
    uint8_t b[54 + 1024 + 64] = {0};
    b[0] = 'B', b[1] = 'M';
    put_le32(b + 2, sizeof b);
    put_le32(b + 10, 54 + 1024);
    put_le32(b + 14, 40);
    put_le32(b + 18, 16000);
    put_le32(b + 22, 16000);
    b[26] = 1;  /* planes */
    b[28] = 8;  /* bits: palette */
    put_le32(b + 46, 256);
    return write_file("huge_label.bmp", b, sizeof b);
}

static const char *huge_tiff(void)
{
    const char *p = t_tmp("huge.tif");
    TIFF *t = TIFFOpen(p, "w");
    CHECK(t != NULL, "cannot create %s", p);
    if (!t) return p;
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 16000);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, 16000);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 16000);
    uint8_t junk[64] = {0};
    TIFFWriteRawStrip(t, 0, junk, sizeof junk); /* far less than declared */
    TIFFClose(t);
    return p;
}

static void check_refused(const char *what, ad_status st, const char *path)
{
    const char *msg = ad_errmsg();
    CHECK(st == AD_E_FORMAT, "%s: status %s", what, ad_status_name(st));
    CHECK(strstr(msg, path) && strstr(msg, "16000 x 16000") && strstr(msg, "--max-pixels"),
          "%s: the message names the image, its size and the flag: %s", what, msg);
    /* the 768 MB (RGB) / 256 MB (mask) buffer was never asked for */
    CHECK(g_largest < (4u << 20), "%s: largest allocation %zu bytes while refusing", what,
          (size_t)g_largest);
    printf("%s: refused, largest allocation %zu bytes (%s): %s\n", what, (size_t)g_largest,
           hook_kind, msg);
}

static void test_refused_from_header(void)
{
    hooks_install();
    const char *png = huge_png(), *jpg = huge_jpeg(), *bmp = huge_bmp(), *tif = huge_tiff();
    ad_image img = {0};
    uint8_t *m = NULL;
    int w = 0, h = 0;
    const size_t limit = 40000000;

    g_largest = 0;
    check_refused("PNG 16000x16000", adi_io_read_image_max(png, limit, &img), png);
    CHECK(img.data == NULL, "no image returned");
    g_largest = 0;
    check_refused("JPEG 16000x16000", adi_io_read_image_max(jpg, limit, &img), jpg);
    g_largest = 0;
    check_refused("PNG mask 16000x16000", adi_io_read_mask_max(png, limit, &m, &w, &h), png);
    g_largest = 0;
    check_refused("BMP mask 16000x16000", adi_io_read_gt_mask(bmp, limit, &m, &w, &h), bmp);
    g_largest = 0;
    check_refused("TIFF mask 16000x16000", adi_io_read_gt_mask(tif, limit, &m, &w, &h), tif);
    CHECK(m == NULL, "no mask returned");

    /* positive control: the counter sees an image buffer (1200 x 1000 x 3 = 3.6 MB) */
    const int W = 1200, H = 1000;
    uint8_t *rgb = __builtin_malloc((size_t)W * H * 3);
    for (size_t i = 0; i < (size_t)W * H * 3; i++) rgb[i] = (uint8_t)(i * 7 % 251);
    const char *ok = t_tmp("control.png");
    CHECK_OK(adi_io_write_png_rgb(ok, rgb, W, H));
    __builtin_free(rgb);
    g_largest = 0;
    CHECK_OK(adi_io_read_image_max(ok, limit, &img));
    CHECK(g_largest >= (size_t)W * H * 3, "control: largest allocation %zu < the %d x %d image",
          (size_t)g_largest, W, H);
    printf("control %dx%d under the limit: decoded, largest allocation %zu bytes\n", W, H,
           (size_t)g_largest);
    ad_image_free(&img);
    /* the same file under a lower limit: refused, nothing image-sized allocated */
    g_largest = 0;
    ad_status st = adi_io_read_image_max(ok, 1000000, &img);
    CHECK(st == AD_E_FORMAT && strstr(ad_errmsg(), "1200 x 1000"), "control over 1 MP: %s",
          ad_errmsg());
    CHECK(g_largest < (size_t)W * H * 3 / 2, "control refused: largest allocation %zu",
          (size_t)g_largest);
    /* 0 = no limit beyond the built-in bounds */
    CHECK_OK(adi_io_read_image_max(ok, 0, &img));
    ad_image_free(&img);
}

/* ------------------------------------------------------------------------------------------ */
/* masks in every format, the binarisation rule, float TIFF maps                               */
/* ------------------------------------------------------------------------------------------ */

static void mem_write(void *ctx, void *data, int size)
{
    FILE *f = ctx;
    fwrite(data, 1, (size_t)size, f);
}

static void test_mask_formats(void)
{
    enum { W = 40, H = 24 };
    uint8_t m[W * H], want[W * H];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int in = x >= 8 && x < 24 && y >= 4 && y < 16;
            m[y * W + x] = in ? 255 : 0;
            want[y * W + x] = (uint8_t)in;
        }
    /* PNG */
    const char *png = t_tmp("mask.png");
    CHECK_OK(adi_io_write_png_gray(png, m, W, H));
    /* BMP (stb_image_write, 8-bit grey) */
    const char *bmp = t_tmp("mask_label.bmp");
    FILE *f = fopen(bmp, "wb");
    CHECK(f && stbi_write_bmp_to_func(mem_write, f, W, H, 1, m), "writing %s", bmp);
    if (f) fclose(f);
    /* TIFF (libtiff, 8-bit grey, deflate) */
    const char *tif = t_tmp("mask.tiff");
    TIFF *t = TIFFOpen(tif, "w");
    CHECK(t != NULL, "creating %s", tif);
    if (t) {
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, W);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, H);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
        TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 8);
        for (int y = 0; y < H; y++) TIFFWriteScanline(t, m + y * W, (uint32_t)y, 0);
        TIFFClose(t);
    }
    /* JPEG (lossy: values near 0 and 255 ringing at the edges) */
    const char *jpg = t_tmp("mask.jpg");
    {
        struct jpeg_compress_struct c;
        struct jpeg_error_mgr e;
        c.err = jpeg_std_error(&e);
        jpeg_create_compress(&c);
        FILE *jf = fopen(jpg, "wb");
        jpeg_stdio_dest(&c, jf);
        c.image_width = W;
        c.image_height = H;
        c.input_components = 1;
        c.in_color_space = JCS_GRAYSCALE;
        jpeg_set_defaults(&c);
        jpeg_set_quality(&c, 90, TRUE);
        jpeg_start_compress(&c, TRUE);
        while (c.next_scanline < H) {
            JSAMPROW r = m + c.next_scanline * W;
            jpeg_write_scanlines(&c, &r, 1);
        }
        jpeg_finish_compress(&c);
        jpeg_destroy_compress(&c);
        fclose(jf);
    }
    const char *files[4] = {png, bmp, tif, jpg};
    const char *kinds[4] = {"PNG", "BMP", "TIFF", "JPEG"};
    for (int k = 0; k < 4; k++) {
        uint8_t *g = NULL;
        int w = 0, h = 0;
        ad_status st = adi_io_read_gt_mask(files[k], 40000000, &g, &w, &h);
        CHECK(st == AD_OK, "%s mask: %s", kinds[k], ad_errmsg());
        if (st != AD_OK) continue;
        size_t diff = 0, first = 0;
        for (size_t i = 0; i < (size_t)W * H && w == W && h == H; i++)
            if (g[i] != want[i] && !diff++) first = i;
        CHECK(w == W && h == H && diff == 0, "%s mask: %d x %d, %zu pixels differ (first at %zu)",
              kinds[k], w, h, diff, first);
        printf("%s mask %dx%d: 0/1 as the PNG, %zu pixels differ\n", kinds[k], w, h, diff);
        adi_free(g);
    }
    /* the rule: label masks (all < 128) count nonzero, others are thresholded at 128 */
    uint8_t a[4] = {0, 1, 2, 127}, b[5] = {0, 100, 127, 128, 255};
    adi_io_binarize_mask(a, 4);
    adi_io_binarize_mask(b, 5);
    CHECK(a[0] == 0 && a[1] == 1 && a[2] == 1 && a[3] == 1, "label mask: %d %d %d %d", a[0], a[1],
          a[2], a[3]);
    CHECK(b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 1 && b[4] == 1,
          "grey mask thresholded at 128: %d %d %d %d %d", b[0], b[1], b[2], b[3], b[4]);
    /* a text file named .bmp is refused, not read as a mask */
    const char *fake = write_file("fake.bmp", "BM not really", 13);
    uint8_t *g = NULL;
    int w, h;
    CHECK(adi_io_read_gt_mask(fake, 0, &g, &w, &h) == AD_E_FORMAT, "corrupt BMP accepted");
    printf("corrupt BMP: %s\n", ad_errmsg());
}

static void test_tiff_maps(void)
{
    enum { W = 33, H = 17 };
    float map[W * H];
    for (int i = 0; i < W * H; i++) map[i] = (float)(0.001 * i * i) - 0.25f + (float)i / 3.0f;
    const char *p = t_tmp("map.tiff");
    CHECK_OK(adi_io_write_tiff_f32(p, map, W, H));
    float *back = NULL;
    int w = 0, h = 0;
    CHECK_OK(adi_io_read_tiff_f32(p, &back, &w, &h));
    size_t where = 0;
    double d = back && w == W && h == H ? t_maxdiff_f32(map, back, W * H, &where) : 1e9;
    CHECK(d == 0, "float32 TIFF round trip: largest difference %g at %zu (%d x %d)", d, where, w, h);
    printf("float32 TIFF map %dx%d: round trip exact (largest difference %g)\n", w, h, d);
    adi_free(back);
    CHECK(adi_io_write_tiff_f32(t_tmp("no_dir/map.tiff"), map, W, H) == AD_E_IO,
          "missing folder: %s", ad_errmsg());
}

int main(void)
{
    test_refused_from_header();
    test_mask_formats();
    test_tiff_maps();
    return t_done("test_pixel_limit_and_masks");
}
