/* ad_preprocess: smaller-edge Pillow resize, v/255 and ImageNet (x - mean)/std in float32,
 * top-left crop to multiples of 14, CHW layout; images that cannot hold one 14x14 patch are
 * refused. */
#include "image/image.h"
#include "io/io.h"
#include "testutil.h"

#include <string.h>

static const double MEAN[3] = {0.485, 0.456, 0.406}, STD[3] = {0.229, 0.224, 0.225};

int main(void)
{
    /* values: float32 arithmetic, within float rounding of the exact formula */
    {
        ad_image img = {0, 0, NULL};
        CHECK_OK(ad_image_alloc(&img, 16, 16)); /* 256 pixels: every value in every channel */
        for (int i = 0; i < 256; i++)
            for (int c = 0; c < 3; c++) img.data[i * 3 + c] = (uint8_t)((i + 85 * c) & 255);
        ad_input in = {0, 0, NULL};
        CHECK_OK(ad_preprocess(&img, 0, &in));
        CHECK(in.width == 14 && in.height == 14, "16x16 -> %dx%d", in.width, in.height);
        double md = 0;
        int exact = 1;
        size_t where = 0;
        for (int c = 0; c < 3 && in.data; c++)
            for (int y = 0; y < 14; y++)
                for (int x = 0; x < 14; x++) {
                    int v = img.data[(y * 16 + x) * 3 + c];
                    float got = in.data[(c * 14 + y) * 14 + x];
                    double ref = (v / 255.0 - MEAN[c]) / STD[c];
                    float f32 = ((float)v / 255.0f - (float)MEAN[c]) / (float)STD[c];
                    exact &= got == f32;
                    double d = fabs(got - ref);
                    if (d > md) { md = d; where = (size_t)(c * 14 + y) * 14 + x; }
                }
        printf("normalisation: max |x - exact double formula| %.3g at CHW index %zu; float32 "
               "sequence reproduced: %s\n", md, where, exact ? "yes" : "no");
        CHECK(md < 2e-6, "normalisation differs by %g", md);
        CHECK(exact, "not the float32 operation sequence of ToTensor + Normalize");
        ad_input_free(&in);
        CHECK(in.data == NULL, "ad_input_free leaves a pointer");
        ad_image_free(&img);
    }
    /* resize + crop: equals preprocessing the golden Pillow-resized image without resize */
    {
        const char *cases[][2] = {{"pipeline/seed2/test_0.png", "pipeline/seed2/resized_448_test_0.png"},
                                  {"pipeline/seed2/test_0.png", "pipeline/seed2/resized_224_test_0.png"},
                                  {"pipeline/seed0/test_0.png", "pipeline/seed0/resized_448_test_0.png"}};
        const int res[] = {448, 224, 448};
        for (int k = 0; k < 3; k++) {
            ad_image a = {0, 0, NULL}, r = {0, 0, NULL};
            CHECK_OK(adi_io_read_image(t_data(cases[k][0]), &a));
            CHECK_OK(adi_io_read_image(t_data(cases[k][1]), &r));
            ad_input x1 = {0, 0, NULL}, x2 = {0, 0, NULL};
            CHECK_OK(ad_preprocess(&a, res[k], &x1));
            CHECK_OK(ad_preprocess(&r, 0, &x2));
            int same = x1.data && x2.data && x1.width == x2.width && x1.height == x2.height &&
                       memcmp(x1.data, x2.data, sizeof(float) * 3 * x1.width * x1.height) == 0;
            printf("%s at %d -> %dx%d (grid %dx%d): %s the golden resized image's input\n",
                   cases[k][0], res[k], x1.width, x1.height, x1.height / 14, x1.width / 14,
                   same ? "identical to" : "DIFFERS from");
            CHECK(same, "%s at %d", cases[k][0], res[k]);
            ad_input_free(&x1);
            ad_input_free(&x2);
            ad_image_free(&a);
            ad_image_free(&r);
        }
    }
    /* top-left crop: 100x50 at resolution 30 -> 60x30 -> 56x28; the kept pixels are the
     * top-left ones of the resized image */
    {
        ad_image img = {0, 0, NULL}, rs = {0, 0, NULL};
        CHECK_OK(ad_image_alloc(&img, 100, 50));
        for (int i = 0; i < 100 * 50 * 3; i++) img.data[i] = (uint8_t)((i * 13) ^ (i >> 4));
        ad_input in = {0, 0, NULL};
        CHECK_OK(ad_preprocess(&img, 30, &in));
        CHECK(in.width == 56 && in.height == 28, "100x50@30 -> %dx%d", in.width, in.height);
        CHECK_OK(ad_resize_short_edge(&img, 30, &rs));
        int bad = 0;
        for (int c = 0; c < 3 && in.data && rs.data; c++)
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 56; x++) {
                    int v = rs.data[(y * rs.width + x) * 3 + c];
                    float f = ((float)v / 255.0f - (float)MEAN[c]) / (float)STD[c];
                    bad += in.data[(c * 28 + y) * 56 + x] != f;
                }
        printf("crop 60x30 -> 56x28 (top-left, CHW): %d values misplaced\n", bad);
        CHECK(bad == 0, "%d values misplaced", bad);
        ad_input_free(&in);
        ad_image_free(&rs);
        ad_image_free(&img);
    }
    /* too small for one patch, bad arguments: refused, output untouched */
    {
        ad_image img = {0, 0, NULL};
        CHECK_OK(ad_image_alloc(&img, 20, 13));
        ad_input in = {3, 3, NULL};
        CHECK(ad_preprocess(&img, 0, &in) == AD_E_ARG && in.width == 3, "20x13 accepted");
        printf("too small: %s\n", ad_errmsg());
        CHECK(ad_preprocess(&img, 10, &in) == AD_E_ARG && in.width == 3, "resolution 10 accepted");
        CHECK(ad_preprocess(&img, -1, &in) == AD_E_ARG, "negative resolution accepted");
        CHECK(ad_preprocess(&img, 14, NULL) == AD_E_ARG, "NULL output accepted");
        CHECK_OK(ad_preprocess(&img, 14, &in)); /* 20x13 -> 21x14 -> 14x14 */
        CHECK(in.width == 14 && in.height == 14, "20x13@14 -> %dx%d", in.width, in.height);
        ad_input_free(&in);
        ad_image_free(&img);
        ad_image none = {0, 0, NULL};
        CHECK(ad_preprocess(&none, 0, &in) == AD_E_ARG, "empty image accepted");
    }
    /* A 1 x 65535 strip at resolution 65535: the long edge (4.3e9) does not fit an int. Refused
     * by the size check with the real figure (the int conversion was undefined and reported
     * -2147483648 as the size). */
    {
        ad_image strip;
        CHECK_OK(ad_image_alloc(&strip, 1, 65535));
        ad_input in = {0, 0, NULL};
        ad_status st = ad_preprocess(&strip, 65535, &in);
        CHECK(st == AD_E_ARG && in.data == NULL, "1 x 65535 at 65535: %s", ad_status_name(st));
        CHECK(strstr(ad_errmsg(), "-2147483648") == NULL && strstr(ad_errmsg(), "out of range"),
              "message: %s", ad_errmsg());
        printf("1 x 65535 at resolution 65535: %s\n", ad_errmsg());
        int ow = 0, oh = 0;
        adi_short_edge_size(1, 65535, 65535, &ow, &oh);
        CHECK(ow == 65535 && oh == 2147483647, "short-edge size %d x %d", ow, oh);
        ad_image_free(&strip);
    }
    return t_done("test_preprocess_imagenet");
}
