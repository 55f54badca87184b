/* RGB8 image buffers. */
#include "image/image.h"

#include <string.h>

ad_status adi_image_check(const ad_image *img, const char *what)
{
    if (!img) return adi_fail(AD_E_ARG, "%s: NULL image", what);
    if (!img->data) return adi_fail(AD_E_ARG, "%s: image has no pixel data", what);
    if (img->width <= 0 || img->height <= 0 || img->width > AD_IMAGE_MAX_SIDE ||
        img->height > AD_IMAGE_MAX_SIDE ||
        (size_t)img->width * (size_t)img->height > AD_IMAGE_MAX_PIXELS)
        return adi_fail(AD_E_ARG, "%s: image size %d x %d is out of range", what, img->width,
                       img->height);
    return AD_OK;
}

ad_status ad_image_alloc(ad_image *img, int width, int height)
{
    if (!img) return adi_fail(AD_E_ARG, "ad_image_alloc: NULL image");
    if (width <= 0 || height <= 0 || width > AD_IMAGE_MAX_SIDE || height > AD_IMAGE_MAX_SIDE ||
        (size_t)width * (size_t)height > AD_IMAGE_MAX_PIXELS)
        return adi_fail(AD_E_ARG, "ad_image_alloc: size %d x %d is out of range (1..%d per side)",
                       width, height, AD_IMAGE_MAX_SIDE);
    uint8_t *d = adi_calloc((size_t)width * (size_t)height, 3);
    if (!d) return AD_E_NOMEM;
    img->width = width;
    img->height = height;
    img->data = d;
    return AD_OK;
}

void ad_image_free(ad_image *img)
{
    if (!img) return;
    adi_free(img->data);
    img->data = NULL;
    img->width = img->height = 0;
}
