/* Heat-map overlay for the command-line tool: a fixed, absolute colour scale (documented in
 * image.h) blended over the image, optionally with the outline of map >= threshold. */
#include "image/image.h"

#include <math.h>
#include <string.h>

/* matplotlib "inferno" at t = k/8 (table entries 0, 32, 64, 96, 128, 159, 191, 223, 255) */
static const uint8_t INFERNO9[9][3] = {
    {0x00, 0x00, 0x04}, {0x21, 0x0c, 0x4a}, {0x57, 0x10, 0x6e}, {0x8a, 0x22, 0x6a},
    {0xbc, 0x37, 0x54}, {0xe3, 0x59, 0x33}, {0xf9, 0x8c, 0x0a}, {0xf9, 0xc9, 0x32},
    {0xfc, 0xff, 0xa4},
};

adi_overlay_params adi_overlay_default_params(void)
{
    adi_overlay_params p;
    memset(&p, 0, sizeof p);
    p.vmax = 0.5f;
    p.alpha = 0.5f;
    p.contour = 0;
    p.threshold = 0.0f;
    p.contour_rgb[0] = 0x00;
    p.contour_rgb[1] = 0xff;
    p.contour_rgb[2] = 0xff;
    return p;
}

void adi_colormap_inferno9(float t, uint8_t rgb[3])
{
    if (!(t > 0.0f)) t = 0.0f; /* also NaN */
    if (t > 1.0f) t = 1.0f;
    float pos = t * 8.0f;
    int i = (int)pos;
    if (i > 7) i = 7;
    float f = pos - (float)i;
    for (int c = 0; c < 3; c++) {
        float v = INFERNO9[i][c] + ((float)INFERNO9[i + 1][c] - (float)INFERNO9[i][c]) * f;
        rgb[c] = (uint8_t)(v + 0.5f);
    }
}

ad_status adi_overlay_heatmap(const ad_image *img, const float *map, const adi_overlay_params *p,
                             ad_image *out)
{
    ad_status st = adi_image_check(img, "adi_overlay_heatmap");
    if (st) return st;
    if (!map || !p || !out) return adi_fail(AD_E_ARG, "adi_overlay_heatmap: NULL argument");
    if (!(p->vmax > 0.0f) || !isfinite(p->vmax))
        return adi_fail(AD_E_ARG, "adi_overlay_heatmap: vmax %g must be positive and finite",
                       (double)p->vmax);
    if (!(p->alpha >= 0.0f && p->alpha <= 1.0f))
        return adi_fail(AD_E_ARG, "adi_overlay_heatmap: alpha %g is outside [0, 1]",
                       (double)p->alpha);
    if (p->contour && !isfinite(p->threshold))
        return adi_fail(AD_E_ARG, "adi_overlay_heatmap: contour threshold is not finite");
    int w = img->width, h = img->height;
    ad_image o = {0, 0, NULL};
    if ((st = ad_image_alloc(&o, w, h)) != AD_OK) return st;
    const float a = p->alpha, b = 1.0f - p->alpha, inv = 1.0f / p->vmax;
#pragma omp parallel for schedule(static) if ((size_t)w * h > 65536)
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            uint8_t col[3];
            adi_colormap_inferno9(map[i] * inv, col);
            const uint8_t *s = img->data + 3 * i;
            uint8_t *d = o.data + 3 * i;
            for (int c = 0; c < 3; c++) d[c] = (uint8_t)(b * s[c] + a * col[c] + 0.5f);
            if (p->contour && map[i] >= p->threshold) {
                /* on the outline: a 4-neighbour inside the image is below the threshold */
                int edge = (x > 0 && !(map[i - 1] >= p->threshold)) ||
                           (x + 1 < w && !(map[i + 1] >= p->threshold)) ||
                           (y > 0 && !(map[i - w] >= p->threshold)) ||
                           (y + 1 < h && !(map[i + w] >= p->threshold));
                if (edge) memcpy(d, p->contour_rgb, 3);
            }
        }
    }
    *out = o;
    return AD_OK;
}
