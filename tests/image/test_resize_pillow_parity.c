/* ad_resize_short_edge reproduces Pillow 9.4's antialiased bicubic resize (torchvision Resize on
 * a PIL image): the golden resized_{448,224}_test_0.png of both pipeline seeds (a square
 * 300x300 and a landscape 750x500 image) are matched pixel for pixel. Also: the output-size rule
 * int(S*long/short), the copy when the size already matches, the skipped pass when only one
 * dimension changes, and argument checks. */
#include "image/image.h"
#include "io/io.h"
#include "testutil.h"

#include <string.h>

static void compare(const char *what, const ad_image *a, const ad_image *b)
{
    CHECK(a->width == b->width && a->height == b->height, "%s: size %dx%d vs %dx%d", what,
          a->width, a->height, b->width, b->height);
    if (a->width != b->width || a->height != b->height) return;
    size_t n = (size_t)a->width * a->height * 3, ndiff = 0, where = 0;
    int maxd = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a->data[i] - (int)b->data[i]);
        if (d) ndiff++;
        if (d > maxd) { maxd = d; where = i; }
    }
    printf("%-34s %dx%d: max diff %d at (x %zu, y %zu, c %zu), %zu of %zu values differ\n", what,
           a->width, a->height, maxd, where / 3 % a->width, where / 3 / a->width, where % 3, ndiff,
           n);
    CHECK(maxd <= 1, "%s: max diff %d > 1", what, maxd);
    /* the fixed-point arithmetic is reproduced exactly: no value may differ at all */
    CHECK(ndiff == 0, "%s: %zu values differ", what, ndiff);
}

int main(void)
{
    const char *seeds[] = {"seed0", "seed2"};
    const int sizes[] = {448, 224};
    for (int s = 0; s < 2; s++) {
        char p[256];
        snprintf(p, sizeof p, "pipeline/%s/test_0.png", seeds[s]);
        ad_image src = {0, 0, NULL};
        ad_status st = adi_io_read_image(t_data(p), &src);
        CHECK(st == AD_OK, "%s: %s", p, ad_errmsg());
        if (st) continue;
        for (int k = 0; k < 2; k++) {
            snprintf(p, sizeof p, "pipeline/%s/resized_%d_test_0.png", seeds[s], sizes[k]);
            ad_image ref = {0, 0, NULL}, out = {0, 0, NULL};
            st = adi_io_read_image(t_data(p), &ref);
            CHECK(st == AD_OK, "%s: %s", p, ad_errmsg());
            CHECK_OK(ad_resize_short_edge(&src, sizes[k], &out));
            if (ref.data && out.data) compare(p, &out, &ref);
            ad_image_free(&ref);
            ad_image_free(&out);
        }
        ad_image_free(&src);
    }

    /* output-size rule */
    {
        int w, h;
        adi_short_edge_size(750, 500, 448, &w, &h);
        CHECK(w == 672 && h == 448, "750x500 -> %dx%d", w, h);
        adi_short_edge_size(500, 750, 448, &w, &h);
        CHECK(w == 448 && h == 672, "500x750 -> %dx%d", w, h);
        adi_short_edge_size(1000, 3, 7, &w, &h); /* 7*1000/3 = 2333.33 -> 2333 */
        CHECK(w == 2333 && h == 7, "1000x3 -> %dx%d", w, h);
        adi_short_edge_size(1001, 1000, 448, &w, &h); /* 448.448 -> 448 */
        CHECK(w == 448 && h == 448, "1001x1000 -> %dx%d", w, h);
        printf("size rule: 750x500->672x448, 1000x3 (S=7)->2333x7, 1001x1000->448x448\n");
    }
    /* identity size is a copy; one changed dimension equals the 2-pass result's row/column */
    {
        ad_image a = {0, 0, NULL}, b = {0, 0, NULL}, c = {0, 0, NULL};
        CHECK_OK(ad_image_alloc(&a, 37, 29));
        for (int i = 0; i < 37 * 29 * 3; i++) a.data[i] = (uint8_t)(i * 31 + (i / 7) * 5);
        CHECK_OK(ad_resize_short_edge(&a, 29, &b));
        CHECK(b.data && b.width == 37 && b.height == 29 && b.data != a.data &&
              memcmp(a.data, b.data, 37 * 29 * 3) == 0, "same-size resize is not a copy");
        ad_image_free(&b);
        /* resizing only the width must not touch rows: a constant column stays constant */
        for (int y = 0; y < 29; y++)
            for (int x = 0; x < 37; x++)
                for (int ch = 0; ch < 3; ch++) a.data[(y * 37 + x) * 3 + ch] = (uint8_t)(x * 6 + ch);
        CHECK_OK(ad_resize_pillow(&a, 20, 29, &c));
        int bad = 0;
        for (int y = 1; c.data && y < 29; y++) bad += memcmp(c.data, c.data + y * 20 * 3, 20 * 3) != 0;
        CHECK(bad == 0, "width-only resize changed %d rows differently", bad);
        ad_image_free(&c);
        ad_image_free(&a);
    }
    /* argument checks: outputs untouched */
    {
        ad_image a = {0, 0, NULL}, o = {5, 5, (uint8_t *)0x1};
        CHECK(ad_resize_pillow(&a, 10, 10, &o) == AD_E_ARG && o.width == 5, "empty source");
        CHECK_OK(ad_image_alloc(&a, 4, 4));
        CHECK(ad_resize_pillow(&a, 0, 10, &o) == AD_E_ARG && o.width == 5, "zero width");
        CHECK(ad_resize_pillow(&a, 70000, 10, &o) == AD_E_ARG, "huge width");
        CHECK(ad_resize_short_edge(&a, 0, &o) == AD_E_ARG && o.width == 5, "zero short edge");
        CHECK(ad_resize_short_edge(&a, 1, NULL) == AD_E_ARG, "NULL output");
        printf("argument check message: %s\n", ad_errmsg());
        ad_image_free(&a);
        ad_image b = {0, 0, NULL};
        CHECK_OK(ad_image_alloc(&b, 60000, 2));
        CHECK(ad_resize_short_edge(&b, 448, &o) == AD_E_ARG, "long edge beyond the limit");
        ad_image_free(&b);
    }
    return t_done("test_resize_pillow_parity");
}
