/* ad_rotate reproduces OpenCV 4.6's getRotationMatrix2D((W/2, H/2), angle, 1) + warpAffine
 * (INTER_LINEAR, BORDER_REFLECT_101) in its fixed-point arithmetic: the golden rotations
 * rotated_ref0_{0,45,...,315}.png of a square (300x300) and a landscape (750x500) reference are
 * matched; the 0-degree warp is the identity; argument checks. */
#include "image/image.h"
#include "io/io.h"
#include "testutil.h"

#include <string.h>

int main(void)
{
    const char *seeds[] = {"seed0", "seed2"};
    size_t total_diff = 0;
    int total_max = 0;
    for (int s = 0; s < 2; s++) {
        char p[256];
        snprintf(p, sizeof p, "pipeline/%s/ref_0.png", seeds[s]);
        ad_image src = {0, 0, NULL};
        ad_status st = adi_io_read_image(t_data(p), &src);
        CHECK(st == AD_OK, "%s: %s", p, ad_errmsg());
        if (st) continue;
        for (int angle = 0; angle < 360; angle += 45) {
            snprintf(p, sizeof p, "pipeline/%s/rotated_ref0_%d.png", seeds[s], angle);
            ad_image ref = {0, 0, NULL}, out = {0, 0, NULL};
            st = adi_io_read_image(t_data(p), &ref);
            CHECK(st == AD_OK, "%s: %s", p, ad_errmsg());
            CHECK_OK(ad_rotate(&src, angle, &out));
            if (!ref.data || !out.data) continue;
            CHECK(ref.width == out.width && ref.height == out.height, "%s: size", p);
            size_t n = (size_t)ref.width * ref.height * 3, nd = 0, where = 0;
            int md = 0;
            for (size_t i = 0; i < n && ref.width == out.width && ref.height == out.height; i++) {
                int d = abs((int)out.data[i] - (int)ref.data[i]);
                if (d) nd++;
                if (d > md) { md = d; where = i; }
            }
            printf("%-36s max diff %d at (x %zu, y %zu, c %zu), %zu of %zu values differ\n", p, md,
                   where / 3 % ref.width, where / 3 / ref.width, where % 3, nd, n);
            CHECK(md <= 1, "%s: max diff %d > 1", p, md);
            /* the fixed-point warp is reproduced exactly */
            CHECK(nd == 0, "%s: %zu values differ", p, nd);
            total_diff += nd;
            if (md > total_max) total_max = md;
            if (angle == 0)
                CHECK(memcmp(out.data, src.data, n) == 0, "%s: 0 degrees is not the identity", p);
            ad_image_free(&ref);
            ad_image_free(&out);
        }
        ad_image_free(&src);
    }
    printf("all rotations: max diff %d, %zu values differ\n", total_max, total_diff);

    /* tiny images (1 pixel wide/high: the mirror degenerates) stay in bounds */
    {
        int sizes[][2] = {{1, 1}, {1, 5}, {6, 1}, {2, 2}, {3, 17}};
        for (int i = 0; i < 5; i++) {
            ad_image a = {0, 0, NULL}, o = {0, 0, NULL};
            CHECK_OK(ad_image_alloc(&a, sizes[i][0], sizes[i][1]));
            for (int k = 0; k < sizes[i][0] * sizes[i][1] * 3; k++) a.data[k] = (uint8_t)(k * 40);
            for (int ang = 0; ang < 360; ang += 45) {
                CHECK_OK(ad_rotate(&a, ang + 0.3, &o));
                ad_image_free(&o);
            }
            ad_image_free(&a);
        }
    }
    /* argument checks */
    {
        ad_image a = {0, 0, NULL}, o = {7, 7, NULL};
        CHECK(ad_rotate(&a, 45, &o) == AD_E_ARG && o.width == 7, "empty image accepted");
        CHECK_OK(ad_image_alloc(&a, 4, 4));
        CHECK(ad_rotate(&a, NAN, &o) == AD_E_ARG && o.width == 7, "NaN angle accepted");
        CHECK(ad_rotate(&a, 45, NULL) == AD_E_ARG, "NULL output accepted");
        ad_image_free(&a);
    }
    return t_done("test_rotate_opencv_parity");
}
