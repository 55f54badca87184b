/* Every PNG kind decodes to the RGB8 OpenCV's imread(IMREAD_COLOR) + BGR->RGB gives:
 * 16-bit -> high byte, alpha and tRNS dropped (no compositing), grey replicated, palette
 * expanded, 1/2/4-bit grey scaled to 0..255, interlaced like progressive. Test files are written
 * here with libpng; the expected pixels come from the formulas that made them. Also: our own
 * PNG writer round-trips exactly, and the golden PNGs decode. */
#include "io/io.h"
#include "testutil.h"

#include <png.h>
#include <string.h>

enum { W = 37, H = 23 };

typedef struct {
    const char *name;
    int color_type, depth, interlace, trns;
} kind;

/* Deterministic sample values per pixel and channel. */
static unsigned sample(int x, int y, int c, int depth)
{
    unsigned v = (unsigned)(x * 2311 + y * 977 + c * 4099 + 12345) * 2654435761u;
    v >>= 7;
    return depth == 16 ? (v & 0xffff) : (v & ((1u << depth) - 1));
}

static int channels_of(int ct)
{
    switch (ct) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    case PNG_COLOR_TYPE_PALETTE: return 1;
    }
    return 0;
}

static png_color palette_entry(int i)
{
    png_color c = {(png_byte)(i * 37 + 11), (png_byte)(255 - i * 5), (png_byte)(i * i + 3)};
    return c;
}

/* Writes the test PNG and fills `expect` (W*H*3) with what imread must give. */
static int write_kind(const char *path, const kind *k, unsigned char *expect)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return 0;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, W, H, k->depth, k->color_type,
                 k->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    int npal = 1 << (k->depth < 8 ? k->depth : 8);
    if (k->color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        for (int i = 0; i < npal; i++) pal[i] = palette_entry(i);
        png_set_PLTE(png, info, pal, npal);
    }
    if (k->trns) {
        if (k->color_type == PNG_COLOR_TYPE_PALETTE) {
            png_byte alpha[256];
            for (int i = 0; i < npal; i++) alpha[i] = (png_byte)(i * 13);
            png_set_tRNS(png, info, alpha, npal, NULL);
        } else {
            png_color_16 tc;
            memset(&tc, 0, sizeof tc);
            tc.gray = (png_uint_16)sample(0, 0, 0, k->depth);
            tc.red = (png_uint_16)sample(0, 0, 0, k->depth);
            tc.green = (png_uint_16)sample(0, 0, 1, k->depth);
            tc.blue = (png_uint_16)sample(0, 0, 2, k->depth);
            png_set_tRNS(png, info, NULL, 0, &tc);
        }
    }
    png_write_info(png, info);
    int ch = channels_of(k->color_type);
    size_t rowbytes = ((size_t)W * ch * k->depth + 7) / 8;
    unsigned char *img = calloc(rowbytes * H, 1);
    png_bytep rows[H];
    for (int y = 0; y < H; y++) {
        unsigned char *r = img + rowbytes * y;
        rows[y] = r;
        for (int x = 0; x < W; x++) {
            for (int c = 0; c < ch; c++) {
                unsigned v = sample(x, y, c, k->depth);
                size_t bit = ((size_t)x * ch + c) * k->depth;
                if (k->depth == 16) {
                    r[bit / 8] = (unsigned char)(v >> 8);
                    r[bit / 8 + 1] = (unsigned char)(v & 0xff);
                } else if (k->depth == 8) {
                    r[bit / 8] = (unsigned char)v;
                } else {
                    int shift = 8 - k->depth - (int)(bit % 8); /* PNG packs MSB first */
                    r[bit / 8] |= (unsigned char)(v << shift);
                }
            }
            unsigned char *e = expect + ((size_t)y * W + x) * 3;
            if (k->color_type == PNG_COLOR_TYPE_PALETTE) {
                png_color p = palette_entry((int)sample(x, y, 0, k->depth));
                e[0] = p.red;
                e[1] = p.green;
                e[2] = p.blue;
            } else {
                int colour = k->color_type & PNG_COLOR_MASK_COLOR;
                for (int c = 0; c < 3; c++) {
                    unsigned v = sample(x, y, colour ? c : 0, k->depth);
                    if (k->depth == 16) v >>= 8;
                    else if (k->depth < 8) v = v * 255 / ((1u << k->depth) - 1);
                    e[c] = (unsigned char)v;
                }
            }
        }
    }
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(img);
    return fclose(f) == 0;
}

static void check_kind(const kind *k)
{
    char name[96];
    snprintf(name, sizeof name, "kind_%s.png", k->name);
    const char *path = t_tmp(name);
    unsigned char expect[W * H * 3];
    CHECK(write_kind(path, k, expect), "%s: could not write the test file", k->name);
    ad_image img = {0, 0, NULL};
    ad_status st = adi_io_read_image(path, &img);
    CHECK(st == AD_OK, "%s: %s", k->name, ad_errmsg());
    if (st) return;
    CHECK(img.width == W && img.height == H, "%s: size %dx%d", k->name, img.width, img.height);
    int maxd = 0, nd = 0;
    size_t where = 0;
    for (size_t i = 0; img.width == W && img.height == H && i < (size_t)W * H * 3; i++) {
        int d = abs((int)img.data[i] - (int)expect[i]);
        if (d) nd++;
        if (d > maxd) { maxd = d; where = i; }
    }
    printf("%-22s max diff %d at (x %zu, y %zu, c %zu), %d values differ\n", k->name, maxd,
           where / 3 % W, where / 3 / W, where % 3, nd);
    CHECK(maxd == 0, "%s: decoded pixels differ from the expected", k->name);
    adi_free(img.data);
}

int main(void)
{
    static const kind kinds[] = {
        {"gray8", PNG_COLOR_TYPE_GRAY, 8, 0, 0},
        {"gray16", PNG_COLOR_TYPE_GRAY, 16, 0, 0},
        {"gray1", PNG_COLOR_TYPE_GRAY, 1, 0, 0},
        {"gray2", PNG_COLOR_TYPE_GRAY, 2, 0, 0},
        {"gray4", PNG_COLOR_TYPE_GRAY, 4, 0, 0},
        {"gray8_trns", PNG_COLOR_TYPE_GRAY, 8, 0, 1},
        {"gray_alpha8", PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, 0},
        {"gray_alpha16", PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0, 0},
        {"rgb8", PNG_COLOR_TYPE_RGB, 8, 0, 0},
        {"rgb16", PNG_COLOR_TYPE_RGB, 16, 0, 0},
        {"rgb8_trns", PNG_COLOR_TYPE_RGB, 8, 0, 1},
        {"rgba8", PNG_COLOR_TYPE_RGB_ALPHA, 8, 0, 0},
        {"rgba16", PNG_COLOR_TYPE_RGB_ALPHA, 16, 0, 0},
        {"palette8", PNG_COLOR_TYPE_PALETTE, 8, 0, 0},
        {"palette8_trns", PNG_COLOR_TYPE_PALETTE, 8, 0, 1},
        {"palette4", PNG_COLOR_TYPE_PALETTE, 4, 0, 0},
        {"palette1", PNG_COLOR_TYPE_PALETTE, 1, 0, 1},
        {"rgb8_interlaced", PNG_COLOR_TYPE_RGB, 8, 1, 0},
        {"gray16_interlaced", PNG_COLOR_TYPE_GRAY, 16, 1, 0},
        {"palette2_interlaced", PNG_COLOR_TYPE_PALETTE, 2, 1, 0},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) check_kind(&kinds[i]);

    /* our writer: RGB and grey round trips are exact, and the mask reader takes channel 0 */
    {
        unsigned char rgb[W * H * 3], g[W * H];
        for (int i = 0; i < W * H * 3; i++) rgb[i] = (unsigned char)sample(i, 3, 1, 8);
        for (int i = 0; i < W * H; i++) g[i] = (unsigned char)sample(i, 5, 2, 8);
        const char *p1 = t_tmp("rt_rgb.png"), *p2 = t_tmp("rt_gray.png");
        CHECK_OK(adi_io_write_png_rgb(p1, rgb, W, H));
        CHECK_OK(adi_io_write_png_gray(p2, g, W, H));
        ad_image a = {0, 0, NULL};
        CHECK_OK(adi_io_read_image(p1, &a));
        CHECK(a.data && a.width == W && a.height == H && memcmp(a.data, rgb, sizeof rgb) == 0,
              "RGB round trip differs");
        adi_free(a.data);
        uint8_t *m = NULL;
        int mw = 0, mh = 0;
        CHECK_OK(adi_io_read_mask(p2, &m, &mw, &mh));
        CHECK(m && mw == W && mh == H && memcmp(m, g, sizeof g) == 0, "grey/mask round trip");
        adi_free(m);
        printf("writer round trips (RGB %dx%d, grey): exact\n", W, H);
        CHECK(adi_io_write_png_rgb(t_tmp("zero.png"), rgb, 0, H) == AD_E_ARG, "zero width");
        CHECK(adi_io_write_png_rgb(t_tmp("no_dir/x.png"), rgb, W, H) == AD_E_IO, "missing folder");
        CHECK(adi_io_write_png_gray(p2, NULL, W, H) == AD_E_ARG, "NULL pixels");
    }

    /* golden inputs (8-bit RGB) and masks (8-bit grey) decode */
    {
        ad_image a = {0, 0, NULL};
        CHECK_OK(adi_io_read_image(t_data("pipeline/seed0/test_0.png"), &a));
        printf("golden test_0.png: %d x %d\n", a.width, a.height);
        CHECK(a.width > 0 && a.height > 0, "golden size");
        adi_free(a.data);
        uint8_t *m = NULL;
        int mw, mh;
        ad_status st = adi_io_read_mask(t_data("metrics/pixel_medium/masks/img_005.png"), &m,
                                       &mw, &mh);
        CHECK(st == AD_OK, "golden mask: %s", ad_errmsg());
        if (st == AD_OK) {
            int other = 0, on = 0;
            for (int i = 0; i < mw * mh; i++) {
                other += m[i] != 0 && m[i] != 255;
                on += m[i] == 255;
            }
            printf("golden mask img_005.png: %d x %d, %d pixels 255, %d values not 0/255\n", mw,
                   mh, on, other);
            CHECK(other == 0 && on > 0, "mask values: %d on, %d not 0/255", on, other);
            adi_free(m);
        }
    }
    /* not an image, empty, missing */
    {
        const char *p = t_tmp("text.png");
        FILE *f = fopen(p, "wb");
        fputs("hello, this is not an image", f);
        fclose(f);
        ad_image a = {7, 7, NULL};
        CHECK(adi_io_read_image(p, &a) == AD_E_FORMAT && a.width == 7, "text accepted");
        printf("text file: %s\n", ad_errmsg());
        f = fopen(p, "wb");
        fclose(f);
        CHECK(adi_io_read_image(p, &a) == AD_E_FORMAT, "empty file accepted");
        CHECK(adi_io_read_image(t_tmp("missing.png"), &a) == AD_E_IO, "missing file");
        CHECK(adi_io_read_image(NULL, &a) == AD_E_ARG, "NULL path");
    }
    return t_done("test_png_decode_kinds");
}
