/* Internal helpers of the image stage that are not part of the public API: the heat-map
 * overlay used by the command-line tool, and the exact-parity building blocks the public
 * functions are made of (exposed for tests and for other modules of this project). */
#ifndef AD_IMAGE_H
#define AD_IMAGE_H

#include "core/core.h"

/* Largest image side and pixel count the image functions accept (as the file readers in io/). */
#define AD_IMAGE_MAX_SIDE 65535
#define AD_IMAGE_MAX_PIXELS ((size_t)1 << 28)

/* Validates an input image (non-NULL, data present, sizes in range); records an error naming
 * `what` and returns AD_E_ARG otherwise. */
ad_status adi_image_check(const ad_image *img, const char *what);

/* Output size of the smaller-edge resize: torchvision's rule, short side -> short_edge, long
 * side -> int(short_edge * long / short) (float product truncated), orientation kept. */
void adi_short_edge_size(int w, int h, int short_edge, int *out_w, int *out_h);

/* ------------------------------------------------------------------------------------------ */
/* Heat-map overlay (what the CLI writes next to the raw .npy maps)                            */
/* ------------------------------------------------------------------------------------------ */

/* The colour scale is fixed and absolute - never a per-image min/max - so that overlays of
 * different images compare: a map value v is shown at position t = v / vmax of the scale,
 * clamped to [0, 1] (values >= vmax saturate at the top colour, negative values and NaN at the
 * bottom colour).
 *
 * Scale "inferno-9": nine anchors from matplotlib's perceptually uniform "inferno" colormap
 * (entries 0, 32, 64, 96, 128, 159, 191, 223, 255 of its 256-entry table, i.e. t = k/8, times
 * 255 rounded), linear in RGB between anchors:
 *     t      0.000   0.125   0.250   0.375   0.500   0.625   0.750   0.875   1.000
 *     RGB    000004  210c4a  57106e  8a226a  bc3754  e35933  f98c0a  f9c932  fcffa4
 * i.e. black -> deep purple -> crimson -> orange -> pale yellow; lightness grows monotonically,
 * so it stays readable in grey print and for colour-blind readers. */
typedef struct {
    float vmax;      /* map value at the top of the scale, > 0. Default 0.5: the vmax of the
                      * original demo notebook (dammsi/AnomalyDINO demo_AnomalyDINO.ipynb) for
                      * cosine-distance maps */
    float alpha;     /* weight of the colour layer in [0, 1]; default 0.5 */
    int contour;     /* 1: outline the region map >= threshold; default 0 */
    float threshold; /* map value of the outline */
    uint8_t contour_rgb[3]; /* outline colour; default 00ffff (cyan, absent from the scale) */
} adi_overlay_params;

adi_overlay_params adi_overlay_default_params(void);

/* Colour of scale position t (clamped to [0, 1]; NaN -> 0). */
void adi_colormap_inferno9(float t, uint8_t rgb[3]);

/* out = (1 - alpha) * img + alpha * colour(map / vmax), rounded half up, per channel; map is
 * img->height x img->width. With contour set, pixels where map >= threshold and at least one of
 * the 4 neighbours inside the image is below it are painted contour_rgb. out is allocated
 * (ad_image_free); untouched on failure. */
ad_status adi_overlay_heatmap(const ad_image *img, const float *map, const adi_overlay_params *p,
                             ad_image *out);

#endif
