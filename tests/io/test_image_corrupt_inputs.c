/* Broken image files give a one-line error naming the file, never a crash, a read out of bounds
 * (this test runs under AddressSanitizer in CI) or printing by libpng/libjpeg:
 * every proper prefix of a PNG, a baseline JPEG and a progressive JPEG is refused; random byte
 * corruptions either decode or fail cleanly; absurd and zero dimensions are refused before any
 * large allocation. */
#include "io/io.h"
#include "testutil.h"

#include <stdio.h>
#include <jpeglib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

enum { W = 40, H = 30 };

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint32_t next_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* The many variants live in an in-memory file (memfd, reached through /proc/self/fd) so the
 * test does not hammer the disk; a scratch file is the fallback. */
static int mem_fd = -2;
static const char *put(const char *name, const unsigned char *b, size_t n)
{
    static char path[64];
    if (mem_fd == -2) mem_fd = memfd_create("ad_corrupt", 0);
    if (mem_fd >= 0 && ftruncate(mem_fd, 0) == 0 && pwrite(mem_fd, b, n, 0) == (ssize_t)n) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", mem_fd);
        return path;
    }
    const char *p = t_tmp(name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(b, 1, n, f);
        fclose(f);
    }
    return p;
}

static unsigned char *make_jpeg(const unsigned char *rgb, int progressive, unsigned long *len)
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
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < H) {
        JSAMPROW r = (JSAMPROW)(rgb + (size_t)c.next_scanline * W * 3);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return out;
}

/* Every proper prefix must be refused with a one-line message that names the file. */
static void prefixes(const char *kind, const unsigned char *b, size_t n)
{
    char name[64];
    snprintf(name, sizeof name, "prefix_%s", kind);
    int accepted = 0, bad_msg = 0, touched = 0;
    for (size_t cut = 0; cut < n; cut++) {
        const char *p = put(name, b, cut);
        ad_image img = {-1, -1, NULL};
        ad_status st = adi_io_read_image(p, &img);
        if (st == AD_OK) {
            accepted++;
            adi_free(img.data);
            continue;
        }
        if (img.width != -1 || img.data) touched++;
        const char *m = ad_errmsg();
        if (strncmp(m, p, strlen(p)) != 0 || strchr(m, '\n') || st != AD_E_FORMAT) {
            if (!bad_msg) printf("  bad message at cut %zu (%s): %s\n", cut, ad_status_name(st), m);
            bad_msg++;
        }
    }
    printf("%-16s %zu prefixes: %d accepted, %d bad messages, %d outputs touched\n", kind, n,
           accepted, bad_msg, touched);
    CHECK(accepted == 0, "%s: %d truncated files accepted", kind, accepted);
    CHECK(bad_msg == 0, "%s: %d messages do not start with the path", kind, bad_msg);
    CHECK(touched == 0, "%s: output touched on failure %d times", kind, touched);
    /* and the whole file decodes */
    ad_image img = {0, 0, NULL};
    CHECK_OK(adi_io_read_image(put(name, b, n), &img));
    CHECK(img.width == W && img.height == H, "%s: full file %dx%d", kind, img.width, img.height);
    adi_free(img.data);
}

static void corruptions(const char *kind, const unsigned char *b, size_t n, int rounds)
{
    char name[64];
    snprintf(name, sizeof name, "corrupt_%s", kind);
    unsigned char *c = malloc(n);
    int ok = 0, refused = 0, bad = 0;
    for (int r = 0; r < rounds; r++) {
        memcpy(c, b, n);
        int flips = 1 + (int)(next_u32() % 4);
        for (int i = 0; i < flips; i++) {
            size_t at = next_u32() % n;
            c[at] = (r & 1) ? (unsigned char)next_u32() : (unsigned char)(c[at] ^ (1u << (next_u32() % 8)));
        }
        const char *p = put(name, c, n);
        ad_image img = {0, 0, NULL};
        if (adi_io_read_image(p, &img) == AD_OK) {
            ok++;
            if (!img.data || img.width <= 0 || img.height <= 0 || img.width > 65535 ||
                img.height > 65535)
                bad++;
            else /* touch every byte so ASan sees any short buffer */
                for (size_t i = 0, s = 0; i < (size_t)img.width * img.height * 3; i++) s += img.data[i];
            adi_free(img.data);
        } else {
            refused++;
            if (strchr(ad_errmsg(), '\n')) bad++;
        }
    }
    printf("%-16s %d random corruptions: %d decoded, %d refused, %d bad results\n", kind, rounds,
           ok, refused, bad);
    CHECK(bad == 0, "%s: %d bad results", kind, bad);
    free(c);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A PNG whose IHDR claims w x h (CRC fixed so that only the size is wrong). */
static void png_claims(const unsigned char *png, size_t n, uint32_t w, uint32_t h)
{
    unsigned char *c = malloc(n);
    memcpy(c, png, n);
    put_be32(c + 16, w);
    put_be32(c + 20, h);
    put_be32(c + 29, (uint32_t)crc32(0, c + 12, 17));
    ad_image img = {0, 0, NULL};
    ad_status st = adi_io_read_image(put("claims.png", c, n), &img);
    printf("PNG claiming %u x %u: %s: %s\n", w, h, ad_status_name(st), ad_errmsg());
    CHECK(st == AD_E_FORMAT, "PNG claiming %u x %u accepted", w, h);
    if (!st) adi_free(img.data);
    free(c);
}

static void jpeg_claims(const unsigned char *jb, size_t n, unsigned w, unsigned h)
{
    unsigned char *c = malloc(n);
    memcpy(c, jb, n);
    size_t i;
    for (i = 2; i + 9 < n; i++)
        if (c[i] == 0xff && (c[i + 1] == 0xc0 || c[i + 1] == 0xc2)) break;
    CHECK(i + 9 < n, "no SOF marker found");
    c[i + 5] = (unsigned char)(h >> 8);
    c[i + 6] = (unsigned char)h;
    c[i + 7] = (unsigned char)(w >> 8);
    c[i + 8] = (unsigned char)w;
    ad_image img = {0, 0, NULL};
    ad_status st = adi_io_read_image(put("claims.jpg", c, n), &img);
    printf("JPEG claiming %u x %u: %s: %s\n", w, h, ad_status_name(st), ad_errmsg());
    CHECK(st == AD_E_FORMAT, "JPEG claiming %u x %u accepted", w, h);
    if (!st) adi_free(img.data);
    free(c);
}

int main(void)
{
    static unsigned char rgb[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) rgb[i] = (unsigned char)((i * 7) ^ (i / 5 * 3));

    const char *pp = t_tmp("base.png");
    CHECK_OK(adi_io_write_png_rgb(pp, rgb, W, H));
    size_t npng = 0;
    unsigned char *png = (unsigned char *)adi_io_read_file(pp, &npng);
    unsigned long njpg = 0, nprog = 0;
    unsigned char *jpg = make_jpeg(rgb, 0, &njpg);
    unsigned char *prog = make_jpeg(rgb, 1, &nprog);
    CHECK(png && jpg && prog, "could not make the test files");
    if (!png || !jpg || !prog) return t_done("test_image_corrupt_inputs");

    prefixes("png", png, npng);
    prefixes("jpeg", jpg, njpg);
    prefixes("jpeg-progressive", prog, nprog);

    corruptions("png", png, npng, 1500);
    corruptions("jpeg", jpg, njpg, 1500);
    corruptions("jpeg-progressive", prog, nprog, 1500);

    png_claims(png, npng, 70000, 10);   /* > 65535 per side */
    png_claims(png, npng, 20000, 20000); /* > 2^28 pixels */
    png_claims(png, npng, 0, 10);        /* zero */
    jpeg_claims(jpg, njpg, 65000, 65000);
    jpeg_claims(jpg, njpg, 40, 0);

    /* masks: the same checks apply */
    {
        uint8_t *m = (uint8_t *)0x1;
        int mw = -1, mh = -1;
        ad_status st = adi_io_read_mask(put("trunc_mask.png", png, npng / 2), &m, &mw, &mh);
        CHECK(st == AD_E_FORMAT && m == (uint8_t *)0x1 && mw == -1, "truncated mask: %s",
              ad_status_name(st));
    }
    free(png);
    free(jpg);
    free(prog);
    return t_done("test_image_corrupt_inputs");
}
