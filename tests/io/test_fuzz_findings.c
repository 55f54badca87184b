/* The findings of the fuzz campaigns (docs/fuzzing.md), one check each on its regression input
 * in fuzz/regressions: the reader refuses it with the right reason. Each decode runs in a child
 * whose address space is capped at 512 MB (not under ASan, which needs its own), so where a
 * gigabyte request used to be made the outcome changes (the old tEXt handling then fails with
 * another message). libpng takes a failed allocation for zTXt/iCCP as a benign error, so for
 * those only the ASan replay of fuzz/regressions (max_allocation_size_mb=256) and the fuzzers'
 * -malloc_limit_mb see the request itself. Also: the in-memory entry points the fuzz targets
 * use give the same results as the file readers. */
#include "testutil.h"
#include "anomalydino.h"
#include "detect/detect.h"
#include "io/io.h"
#include "weights/weights.h"

#include <stdio.h> /* before jpeglib.h */
#include <jpeglib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static const char *reg(const char *rel)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/../../fuzz/regressions/%s", getenv("AD_TEST_DATA"), rel);
    return buf[k];
}

enum { K_IMAGE, K_WEIGHTS, K_MASK };

/* Decodes path (image or weights) in a child with a 512 MB address-space cap (not under ASan).
 * Returns 1 if it failed with a message containing want, 0 otherwise (reason printed). */
static int refused_with(int kind, const char *path, const char *want)
{
    int fds[2];
    if (pipe(fds) != 0) return 0;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (!UNDER_ASAN) {
            struct rlimit rl = {(rlim_t)512 << 20, (rlim_t)512 << 20};
            setrlimit(RLIMIT_AS, &rl);
        }
        ad_status st;
        if (kind == K_MASK) {
            uint8_t *m;
            int w, h;
            st = adi_io_read_gt_mask(path, 0, &m, &w, &h);
            if (!st) adi_free(m);
        } else if (kind == K_IMAGE) {
            ad_image img;
            st = adi_io_read_image(path, &img);
            if (!st) adi_free(img.data);
        } else {
            adi_weights w;
            st = adi_weights_load(path, &w);
            if (!st) adi_weights_free(&w);
        }
        const char *msg = st ? ad_errmsg() : "(decoded without error)";
        ssize_t n = write(fds[1], msg, strlen(msg));
        (void)n;
        _exit(0);
    }
    close(fds[1]);
    char msg[1024] = "";
    size_t got = 0;
    ssize_t n;
    while (got < sizeof msg - 1 && (n = read(fds[0], msg + got, sizeof msg - 1 - got)) > 0) got += (size_t)n;
    msg[got] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int ok = WIFEXITED(status) && strstr(msg, want) != NULL;
    if (!ok) fprintf(stderr, "  %s: expected an error with '%s', got '%s'\n", path, want, msg);
    return ok;
}

static void test_png(void)
{
    /* the campaign's finding: a text chunk declaring ~1.1 GB in a file of under 100 bytes */
    CHECK(refused_with(K_IMAGE, reg("png/text_chunk_declares_1g.png"), "truncated"), "tEXt");
    CHECK(refused_with(K_IMAGE, reg("png/ztxt_chunk_declares_2g.png"), "truncated"), "zTXt");
    CHECK(refused_with(K_IMAGE, reg("png/iccp_chunk_declares_2g.png"), "truncated"), "iCCP");
    /* declared 30000 x 30000: refused from the header */
    CHECK(refused_with(K_IMAGE, reg("png/declares_30000x30000.png"), "out of range"), "30000");
    /* 16000 x 16000 is within the pixel limit: refused because 12 bytes of IDAT cannot hold it */
    CHECK(refused_with(K_IMAGE, reg("png/declares_16000x16000_tiny_idat.png"), "bytes of IDAT"),
          "16000");
    /* 300 text chunks: skipped, the 1 x 1 image decodes */
    ad_image img;
    CHECK_OK(adi_io_read_image(reg("png/many_text_chunks.png"), &img));
    if (img.data) {
        CHECK(img.width == 1 && img.height == 1, "%d x %d", img.width, img.height);
        adi_free(img.data);
    }
}

static void test_jpeg(void)
{
    CHECK(refused_with(K_IMAGE, reg("jpeg/arith_truncated_declares_65500x4096.jpg"),
                       "cannot come from"), "65500 x 4096 from 225 bytes");
    CHECK(refused_with(K_IMAGE, reg("jpeg/arith_restart_truncated_then_eoi.jpg"), "instead of RST"),
          "restart marker missing");
    CHECK(refused_with(K_IMAGE, reg("jpeg/arith_truncated_no_eoi.jpg"), "Premature end"),
          "no EOI");
    /* progressive files whose later scans are missing, closed by EOI, decoded "ok" (blurred):
     * the Huffman-coded progressive seed cut after 3 of its 10 scans, the arithmetic-coded one
     * after 4 */
    CHECK(refused_with(K_IMAGE, reg("jpeg/progressive_3_of_10_scans_then_eoi.jpg"),
                       "progressive scans end before"), "progressive, scans missing");
    CHECK(refused_with(K_IMAGE, reg("jpeg/arith_progressive_4_of_10_scans_then_eoi.jpg"),
                       "progressive scans end before"), "arithmetic progressive, scans missing");
    /* valid arithmetic-coded images, also the extreme uniform ones, still decode */
    const char *ok[] = {"arith.jpg", "arith_uniform.jpg", "arith_uniform_progressive.jpg",
                        "arith_tall_restart.jpg", "arith_progressive_tall.jpg",
                        "arith_progressive.jpg", "progressive.jpg"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/../../fuzz/corpus/jpeg/%s", getenv("AD_TEST_DATA"), ok[i]);
        ad_image img;
        ad_status st = adi_io_read_image(p, &img);
        CHECK(st == AD_OK, "%s: %s", ok[i], ad_errmsg());
        if (st == AD_OK) adi_free(img.data);
    }
}

/* A valid arithmetic-coded 1024 x 2048 grey image of horizontal bands, a few hundred bytes: more
 * pixels per byte than Huffman coding allows (so the decoder's pixel buffer starts small and
 * grows with the rows), within the density limit; every pixel must come out right. */
static void test_jpeg_growing_buffer(void)
{
    const int w = 1024, h = 2048;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long len = 0;
    jpeg_mem_dest(&c, &out, &len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 1;
    c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    c.arith_code = TRUE;
    jpeg_start_compress(&c, TRUE);
    unsigned char *row = malloc((size_t)w);
    while (c.next_scanline < c.image_height) {
        memset(row, (int)(c.next_scanline / 16 * 2), (size_t)w);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    fprintf(stderr, "arithmetic-coded %d x %d bands: %lu bytes\n", w, h, len);
    CHECK((size_t)w * h > (size_t)len * 512, "%lu bytes: not beyond the Huffman density", len);
    ad_image img;
    ad_status st = adi_io_decode_image("uniform", out, len, &img);
    CHECK(st == AD_OK, "%s", ad_errmsg());
    if (st == AD_OK) {
        /* bands of 16 rows, the two rows on either side of each edge left out (the DCT blurs
         * the 8 x 8 blocks there) */
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < (size_t)w * h * 3; i++) {
            size_t y = i / ((size_t)w * 3);
            if (y % 16 < 2 || y % 16 > 13) continue;
            if (abs((int)img.data[i] - (int)(y / 16 * 2)) > 2 && !bad++) first = i;
        }
        CHECK(img.width == w && img.height == h && bad == 0, "%d x %d, %zu wrong values, first at %zu",
              img.width, img.height, bad, first);
        adi_free(img.data);
    }
    free(out);
}

static void test_pth(void)
{
    CHECK(refused_with(K_WEIGHTS, reg("pth/deflate_declares_2p22x.pth"),
                       "more than deflate can produce"), "deflate ratio");
}

/* The first mask of the evaluation all anomalous, then all normal: no pointer arithmetic on
 * the unallocated side (UBSan "applying zero offset to null pointer" before the fix). */
static void test_pixel_eval_first_mask(void)
{
    float map[4] = {0.1f, 0.9f, 0.4f, 0.6f};
    uint8_t ones[4] = {255, 255, 255, 255}, zeros[4] = {0}, mixed[4] = {0, 255, 0, 255};
    for (int order = 0; order < 2; order++) {
        ad_pixel_eval *pe = ad_pixel_eval_new();
        CHECK(pe != NULL, "new");
        if (!pe) return;
        CHECK_OK(ad_pixel_eval_add(pe, map, order ? zeros : ones, 2, 2));
        CHECK_OK(ad_pixel_eval_add(pe, map, order ? ones : zeros, 2, 2));
        CHECK_OK(ad_pixel_eval_add(pe, map, mixed, 2, 2));
        ad_pixel_metrics m;
        CHECK_OK(ad_pixel_eval_finish(pe, &m));
        CHECK(m.auroc >= 0 && m.auroc <= 1, "auroc %g", m.auroc);
        ad_pixel_eval_free(pe);
    }
}

/* The buffer entry points agree with the file readers. */
static void test_mem_entry_points(void)
{
    const char *np = t_data("dinov2/tiny_224x224_cls.npy");
    size_t len;
    char *buf = adi_io_read_file(np, &len);
    CHECK(buf != NULL, "%s", np);
    if (buf) {
        adi_npy a, b;
        CHECK_OK(adi_npy_read(np, &a));
        CHECK_OK(adi_npy_read_mem(buf, len, "mem", &b));
        CHECK(a.count == b.count && a.dtype == b.dtype && a.data && b.data &&
              memcmp(a.data, b.data, a.count * 4) == 0, "npy mem vs file");
        adi_npy_free(&a);
        adi_npy_free(&b);
        free(buf);
    }
    const char *st = t_data("dinov2/tiny.safetensors");
    buf = adi_io_read_file(st, &len);
    if (buf) {
        adi_weights a, b;
        CHECK_OK(adi_weights_load(st, &a));
        CHECK_OK(adi_weights_load_mem(buf, len, "mem", &b));
        CHECK(a.fingerprint == b.fingerprint && a.fingerprint != 0, "weights fingerprint %llx %llx",
              (unsigned long long)a.fingerprint, (unsigned long long)b.fingerprint);
        adi_weights_free(&a);
        adi_weights_free(&b);
        free(buf);
    }
    char bp[1024];
    snprintf(bp, sizeof bp, "%s/../../fuzz/corpus/bank/rotate_masktest_r28.adbank",
             getenv("AD_TEST_DATA"));
    buf = adi_io_read_file(bp, &len);
    CHECK(buf != NULL, "%s", bp);
    if (buf) {
        ad_bank *a = ad_bank_load(bp), *b = dt_bank_load_mem(buf, len, "mem");
        CHECK(a && b, "bank load: %s", ad_errmsg());
        if (a && b)
            CHECK(ad_bank_rows(a) == ad_bank_rows(b) && ad_bank_rows(a) > 0 &&
                  ad_bank_images(a) == ad_bank_images(b), "bank mem vs file");
        ad_bank_free(a);
        ad_bank_free(b);
        /* a truncated copy fails the same way from memory */
        CHECK(dt_bank_load_mem(buf, len - 1, "mem") == NULL, "truncated bank loaded");
        free(buf);
    }
    ad_image img;
    CHECK(adi_io_decode_image("mem", (const uint8_t *)"\x89PNG", 4, &img) == AD_E_FORMAT, "4 bytes");
}

/* Masks (fuzz target mask): BMP and TIFF from memory as from the file; the findings. */
static void test_mask(void)
{
    static const char *seeds[] = {"bmp1_palette.bmp", "bmp24.bmp", "bmp32_bitfields.bmp",
                                  "bmp4_palette.bmp", "bmp8_label_values.bmp", "stb_label.bmp",
                                  "tiff8_deflate.tif", "tiff8_tiled.tif", "tiff1_g4.tif",
                                  "tiff16.tif", "tiff_rgb.tif", "tiff_palette.tif"};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/../../fuzz/corpus/mask/%s", getenv("AD_TEST_DATA"), seeds[i]);
        size_t len;
        char *buf = adi_io_read_file(p, &len);
        CHECK(buf != NULL, "%s", p);
        if (!buf) continue;
        uint8_t *a = NULL, *b = NULL;
        int aw = 0, ah = 0, bw = 0, bh = 0;
        CHECK_OK(adi_io_read_mask_max(p, 0, &a, &aw, &ah));
        CHECK_OK(adi_io_decode_mask_max("mem", (const uint8_t *)buf, len, 0, &b, &bw, &bh));
        CHECK(a && b && aw == 24 && ah == 16 && aw == bw && ah == bh &&
                  memcmp(a, b, (size_t)aw * ah) == 0, "%s: mask mem vs file", seeds[i]);
        adi_free(a);
        adi_free(b);
        free(buf);
    }
    /* a top-down BMP (negative height in the header) is a normal BMP: it was refused as
     * "24 x 18446744073709551600" because stb_image's header probe gives the stored height */
    uint8_t *m = NULL;
    int w = 0, h = 0;
    CHECK_OK(adi_io_read_gt_mask(reg("mask/bmp_topdown_negative_height.bmp"), 0, &m, &w, &h));
    CHECK(m && w == 24 && h == 16, "top-down BMP %d x %d", w, h);
    adi_free(m);
    /* stb_image reads a truncated BMP's missing rows as zeros: now refused */
    CHECK(refused_with(K_MASK, reg("mask/bmp_truncated_declares_24x16385.bmp"), "truncated"),
          "truncated BMP");
    /* a 34-byte BMP whose 40-byte header runs past the end (stb_image read the rest as zeros)
     * and whose compression field holds a value stb_image decodes as plain rows */
    CHECK(refused_with(K_MASK, reg("mask/bmp_header_truncated_odd_compression_25x56571.bmp"),
                       "truncated header"), "BMP with a truncated header");
    /* a bit count stb_image does not know is read as 32 bits per pixel: 180 bytes decoded as
     * 129 x 32499 (0.5 s) */
    CHECK(refused_with(K_MASK, reg("mask/bmp_57568_bits_per_pixel_truncated_129x32499.bmp"),
                       "truncated"), "BMP with an odd bit count");
    /* 138 bytes, 16 of them deflate data, declaring 6000 x 6000: 144 MB of raster and mask were
     * reserved before libtiff found the strip short */
    CHECK(refused_with(K_MASK, reg("mask/tiff_deflate_16_bytes_declare_6000x6000.tif"),
                       "cannot hold 6000 x 6000"), "TIFF declaring more than its data holds");
}

int main(void)
{
    test_png();
    test_jpeg();
    test_jpeg_growing_buffer();
    test_pth();
    test_pixel_eval_first_mask();
    test_mem_entry_points();
    test_mask();
    return t_done("test_fuzz_findings");
}
