/* The overlay's colour scale is the documented one (inferno anchors at t = k/8, linear between),
 * absolute (map / vmax, saturating, NaN and negatives at the bottom), gets lighter
 * monotonically, and the blend and the outline behave as documented. */
#include "image/image.h"
#include "testutil.h"

#include <string.h>

static double luma(const uint8_t c[3]) { return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]; }

int main(void)
{
    static const uint8_t documented[9][3] = {{0x00, 0x00, 0x04}, {0x21, 0x0c, 0x4a},
                                             {0x57, 0x10, 0x6e}, {0x8a, 0x22, 0x6a},
                                             {0xbc, 0x37, 0x54}, {0xe3, 0x59, 0x33},
                                             {0xf9, 0x8c, 0x0a}, {0xf9, 0xc9, 0x32},
                                             {0xfc, 0xff, 0xa4}};
    for (int k = 0; k <= 8; k++) {
        uint8_t c[3];
        adi_colormap_inferno9(k / 8.0f, c);
        CHECK(memcmp(c, documented[k], 3) == 0, "anchor %d: %02x%02x%02x", k, c[0], c[1], c[2]);
    }
    /* lightness never decreases along the scale */
    {
        uint8_t prev[3], c[3];
        adi_colormap_inferno9(0, prev);
        double worst = 0;
        int at = 0;
        for (int i = 1; i <= 1000; i++) {
            adi_colormap_inferno9(i / 1000.0f, c);
            double drop = luma(prev) - luma(c);
            if (drop > worst) { worst = drop; at = i; }
            memcpy(prev, c, 3);
        }
        printf("scale: largest lightness decrease %.3g (at t = %.3f)\n", worst, at / 1000.0);
        CHECK(worst <= 0.6, "lightness drops by %g at t = %.3f", worst, at / 1000.0);
    }
    /* saturation and bottom */
    {
        uint8_t top[3], c[3], bot[3];
        adi_colormap_inferno9(1, top);
        adi_colormap_inferno9(0, bot);
        adi_colormap_inferno9(7.5f, c);
        CHECK(memcmp(c, top, 3) == 0, "t > 1 does not saturate");
        adi_colormap_inferno9(-3, c);
        CHECK(memcmp(c, bot, 3) == 0, "t < 0 not at the bottom");
        adi_colormap_inferno9(NAN, c);
        CHECK(memcmp(c, bot, 3) == 0, "NaN not at the bottom");
    }
    /* blend: alpha 0 = image, alpha 1 = colours of map/vmax; absolute scale */
    {
        ad_image img = {0, 0, NULL}, o = {0, 0, NULL};
        enum { W = 21, H = 17 };
        CHECK_OK(ad_image_alloc(&img, W, H));
        float map[W * H];
        for (int i = 0; i < W * H; i++) {
            img.data[3 * i] = (uint8_t)(i * 3);
            img.data[3 * i + 1] = (uint8_t)(i * 5);
            img.data[3 * i + 2] = (uint8_t)(i * 7);
            map[i] = (float)i / (W * H) * 0.8f;
        }
        adi_overlay_params p = adi_overlay_default_params();
        CHECK(p.vmax == 0.5f && p.alpha == 0.5f && !p.contour, "defaults changed");
        p.alpha = 0;
        CHECK_OK(adi_overlay_heatmap(&img, map, &p, &o));
        CHECK(o.data && memcmp(o.data, img.data, W * H * 3) == 0, "alpha 0 changes the image");
        ad_image_free(&o);
        p.alpha = 1;
        CHECK_OK(adi_overlay_heatmap(&img, map, &p, &o));
        int bad = 0;
        for (int i = 0; o.data && i < W * H; i++) {
            uint8_t c[3];
            adi_colormap_inferno9(map[i] / 0.5f, c);
            bad += memcmp(o.data + 3 * i, c, 3) != 0;
        }
        CHECK(bad == 0, "alpha 1: %d pixels are not the scale colour", bad);
        ad_image_free(&o);
        p.alpha = 0.5f;
        CHECK_OK(adi_overlay_heatmap(&img, map, &p, &o));
        int maxd = 0;
        for (int i = 0; o.data && i < W * H * 3; i++) {
            uint8_t c[3];
            adi_colormap_inferno9(map[i / 3] / 0.5f, c);
            int ref = (img.data[i] + c[i % 3] + 1) / 2;
            int d = abs(ref - o.data[i]);
            if (d > maxd) maxd = d;
        }
        printf("alpha 0.5 blend: max diff to (img + colour + 1) / 2: %d\n", maxd);
        CHECK(maxd == 0, "blend off by %d", maxd);
        ad_image_free(&o);
        /* outline of a disc: on its boundary only */
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                map[y * W + x] = (x - 10) * (x - 10) + (y - 8) * (y - 8) <= 25 ? 0.9f : 0.1f;
        p.contour = 1;
        p.threshold = 0.5f;
        CHECK_OK(adi_overlay_heatmap(&img, map, &p, &o));
        int on = 0, wrong = 0;
        for (int y = 0; o.data && y < H; y++)
            for (int x = 0; x < W; x++) {
                int i = y * W + x;
                int painted = memcmp(o.data + 3 * i, p.contour_rgb, 3) == 0;
                int inside = map[i] >= 0.5f;
                int boundary = inside && ((x > 0 && map[i - 1] < 0.5f) || (x < W - 1 && map[i + 1] < 0.5f) ||
                                          (y > 0 && map[i - W] < 0.5f) || (y < H - 1 && map[i + W] < 0.5f));
                on += painted;
                wrong += painted != boundary;
            }
        printf("disc outline: %d pixels painted, %d misplaced\n", on, wrong);
        CHECK(on > 0 && wrong == 0, "outline: %d painted, %d misplaced", on, wrong);
        ad_image_free(&o);
        /* bad parameters: refused, output untouched */
        ad_image keep = {1, 1, NULL};
        p = adi_overlay_default_params();
        p.vmax = 0;
        CHECK(adi_overlay_heatmap(&img, map, &p, &keep) == AD_E_ARG && keep.width == 1, "vmax 0");
        p = adi_overlay_default_params();
        p.alpha = 1.5f;
        CHECK(adi_overlay_heatmap(&img, map, &p, &keep) == AD_E_ARG, "alpha 1.5");
        p = adi_overlay_default_params();
        CHECK(adi_overlay_heatmap(&img, NULL, &p, &keep) == AD_E_ARG, "NULL map");
        printf("bad parameter: %s\n", ad_errmsg());
        ad_image_free(&img);
    }
    return t_done("test_overlay_colour_scale");
}
