/* Network input (docs/design.md "Preprocessing";
 * dammsi/AnomalyDINO src/backbones.py prepare_image):
 * torchvision Resize(S, BICUBIC, antialias) on the PIL image, ToTensor (v / 255 in float32),
 * Normalize(ImageNet mean, std) as (x - mean) / std in float32, then the top-left crop to
 * multiples of the patch size 14, CHW. */
#include "image/image.h"

#include <string.h>

#define PATCH 14 /* patch size of every DINOv2 ViT-S/B/L/g 14 model */

/* torchvision's IMAGENET_DEFAULT_MEAN / _STD, RGB order, as float32 tensors */
static const float IMAGENET_MEAN[3] = {0.485f, 0.456f, 0.406f};
static const float IMAGENET_STD[3] = {0.229f, 0.224f, 0.225f};

ad_status ad_preprocess(const ad_image *img, int resolution, ad_input *out)
{
    ad_status st = adi_image_check(img, "ad_preprocess");
    if (st) return st;
    if (!out) return adi_fail(AD_E_ARG, "ad_preprocess: NULL output");
    if (resolution < 0 || resolution > AD_IMAGE_MAX_SIDE)
        return adi_fail(AD_E_ARG, "ad_preprocess: resolution %d is out of range", resolution);
    ad_image resized = {0, 0, NULL};
    const ad_image *src = img;
    if (resolution > 0) {
        int ow, oh;
        adi_short_edge_size(img->width, img->height, resolution, &ow, &oh);
        int hc = oh - oh % PATCH, wc = ow - ow % PATCH;
        if (hc < PATCH || wc < PATCH)
            return adi_fail(AD_E_ARG, "ad_preprocess: %d x %d at resolution %d gives %d x %d, "
                           "smaller than one %d x %d patch", img->width, img->height, resolution,
                           ow, oh, PATCH, PATCH);
        if ((st = ad_resize_short_edge(img, resolution, &resized)) != AD_OK) return st;
        src = &resized;
    }
    int w = src->width, h = src->height;
    int hc = h - h % PATCH, wc = w - w % PATCH;
    if (hc < PATCH || wc < PATCH) {
        ad_image_free(&resized);
        return adi_fail(AD_E_ARG, "ad_preprocess: image %d x %d is smaller than one %d x %d patch",
                       w, h, PATCH, PATCH);
    }
    float *x = adi_alloc((size_t)3 * hc * wc, sizeof(float));
    if (!x) {
        ad_image_free(&resized);
        return AD_E_NOMEM;
    }
    /* every value through the same float32 operations as ToTensor + Normalize (a table of the
     * 256 possible results per channel) */
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float t = (float)v / 255.0f;
            lut[c][v] = (t - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < hc; y++) {
            const uint8_t *row = src->data + (size_t)y * w * 3 + c;
            float *o = x + ((size_t)c * hc + y) * wc;
            for (int xx = 0; xx < wc; xx++) o[xx] = lut[c][row[3 * xx]];
        }
    ad_image_free(&resized);
    out->width = wc;
    out->height = hc;
    out->data = x;
    return AD_OK;
}

void ad_input_free(ad_input *in)
{
    if (!in) return;
    adi_free(in->data);
    in->data = NULL;
    in->width = in->height = 0;
}
