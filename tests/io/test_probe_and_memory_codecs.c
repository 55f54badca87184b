/* The header-only size probe (adi_io_probe_image) agrees with the decoder on PNG and JPEG and
 * refuses what the decoder refuses, without touching pixel memory (a 16000 x 16000 PNG header is
 * answered from its 33 bytes); the in-memory decoder equals the file reader; the in-memory .npy
 * encoder writes exactly the bytes of adi_npy_write. */
#include "io/io.h"
#include "testutil.h"

#include <jpeglib.h>
#include <stdio.h>
#include <string.h>

static unsigned char *read_all(const char *path, size_t *n)
{
    return (unsigned char *)adi_io_read_file(path, n);
}

static unsigned char *jpeg_of(int w, int h, unsigned long *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    *len = 0;
    jpeg_mem_dest(&c, &out, len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    unsigned char *row = calloc((size_t)w, 3);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < 3 * w; x++) row[x] = (unsigned char)(x * 5 + y * 3);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return out;
}

int main(void)
{
    /* PNG: every test input of the backbone parity data */
    const char *pngs[] = {"dinov2/input_224x224.png", "dinov2/input_364x252.png",
                          "dinov2/input_448x672.png"};
    for (size_t i = 0; i < sizeof pngs / sizeof pngs[0]; i++) {
        size_t n;
        unsigned char *buf = read_all(t_data(pngs[i]), &n);
        CHECK(buf != NULL, "%s readable", pngs[i]);
        if (!buf) continue;
        int w = 0, h = 0;
        CHECK_OK(adi_io_probe_image("x", buf, n, &w, &h));
        ad_image a = {0}, b = {0};
        CHECK_OK(adi_io_decode_image("x", buf, n, &a));
        CHECK_OK(adi_io_read_image(t_data(pngs[i]), &b));
        CHECK(w == a.width && h == a.height, "%s: probe %dx%d, decode %dx%d", pngs[i], w, h,
              a.width, a.height);
        CHECK(a.width == b.width && a.height == b.height &&
                  !memcmp(a.data, b.data, (size_t)a.width * a.height * 3),
              "%s: memory decode equals the file reader", pngs[i]);
        /* the first 33 bytes (signature + IHDR) are enough for the probe */
        CHECK_OK(adi_io_probe_image("x", buf, 33, &w, &h));
        CHECK(adi_io_probe_image("x", buf, 20, &w, &h) == AD_E_FORMAT, "%s: 20 bytes: no IHDR", pngs[i]);
        ad_image_free(&a);
        ad_image_free(&b);
        free(buf);
    }
    /* a PNG header announcing a huge image: the probe answers from the header alone (the
     * caller compares with its own pixel limit), the size check refuses what the decoder
     * would refuse */
    unsigned char hdr[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                             0, 0, 0x3e, 0x80, 0, 0, 0x3e, 0x80, 8, 2, 0, 0, 0};
    int w = 0, h = 0;
    CHECK_OK(adi_io_probe_image("bomb", hdr, sizeof hdr, &w, &h));
    CHECK(w == 16000 && h == 16000, "16000 x 16000 from the header (%d x %d)", w, h);
    hdr[18] = 0xea; hdr[19] = 0x60; hdr[22] = 0xea; hdr[23] = 0x60; /* 60000 x 60000 */
    CHECK(adi_io_probe_image("bomb", hdr, sizeof hdr, &w, &h) == AD_E_FORMAT &&
              strstr(ad_errmsg(), "out of range"), "60000 x 60000 pixels are refused: %s", ad_errmsg());
    hdr[17] = 0x01; /* width 0x0001ea60 = 125536 */
    CHECK(adi_io_probe_image("bomb", hdr, sizeof hdr, &w, &h) == AD_E_FORMAT &&
              strstr(ad_errmsg(), "out of range"), "a side over 65535 is refused: %s", ad_errmsg());
    memset(hdr + 16, 0, 8);
    CHECK(adi_io_probe_image("zero", hdr, sizeof hdr, &w, &h) == AD_E_FORMAT, "zero size refused");

    /* JPEG */
    unsigned long jl;
    unsigned char *j = jpeg_of(77, 31, &jl);
    CHECK_OK(adi_io_probe_image("j", j, jl, &w, &h));
    CHECK(w == 77 && h == 31, "JPEG probe %d x %d", w, h);
    ad_image ji = {0};
    CHECK_OK(adi_io_decode_image("j", j, jl, &ji));
    CHECK(ji.width == 77 && ji.height == 31, "JPEG memory decode size");
    ad_image_free(&ji);
    CHECK(adi_io_probe_image("j", j, 12, &w, &h) == AD_E_FORMAT, "JPEG cut in its header: refused");
    CHECK(adi_io_decode_image("j", j, jl / 2, &ji) == AD_E_FORMAT, "JPEG cut in its data: decode refuses");
    free(j);
    CHECK(adi_io_probe_image("e", (const uint8_t *)"", 0, &w, &h) == AD_E_FORMAT, "empty: refused");
    CHECK(adi_io_probe_image("t", (const uint8_t *)"GIF89a....", 10, &w, &h) == AD_E_FORMAT &&
              strstr(ad_errmsg(), "not a PNG or JPEG"), "GIF: refused: %s", ad_errmsg());

    /* npy encoder = writer */
    float v[6] = {1.5f, -2, 3, 0.25f, 1e-7f, 42};
    size_t shape[2] = {2, 3};
    const char *p = t_tmp("probe_enc.npy");
    CHECK_OK(adi_npy_write(p, AD_NPY_F4, v, 2, shape));
    uint8_t *enc = NULL;
    size_t el = 0, fl = 0;
    CHECK_OK(adi_npy_encode(AD_NPY_F4, v, 2, shape, &enc, &el));
    unsigned char *file = read_all(p, &fl);
    CHECK(file && enc && el == fl && !memcmp(enc, file, fl), "npy encoder bytes = file bytes (%zu, %zu)", el, fl);
    CHECK(el > sizeof v && (el - sizeof v) % 64 == 0, "data starts at a multiple of 64 (%zu)", el);
    free(enc);
    free(file);
    return t_done("test_probe_and_memory_codecs");
}
