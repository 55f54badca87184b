/* Pillow's antialiased bicubic resize of an RGB8 image, reproduced to the bit
 * (Pillow 9.4 src/libImaging/Resample.c: bicubic_filter, precompute_coeffs,
 * normalize_coeffs_8bpc, ImagingResampleHorizontal/Vertical_8bpc, ImagingResampleInner), which
 * is what torchvision's Resize(BICUBIC, antialias=True) does to a PIL image in the original
 * preprocessing (docs/design.md,
 * "Preprocessing"). Integer arithmetic throughout after the coefficients, so
 * the result does not depend on the thread count. */
#include "image/image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Pillow's PRECISION_BITS = 32 - 8 - 2: 8 bits of result, 2 bits of headroom for the negative
 * lobes of the kernel. */
#define PRECISION_BITS 22

/* Pillow's bicubic_filter with a = -0.5 (support 2). */
static double bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct {
    int ksize;
    int *bounds;  /* per output index: first input index, number of taps */
    int32_t *k;   /* out x ksize fixed-point weights */
} coeffs;

static void coeffs_free(coeffs *c)
{
    adi_free(c->bounds);
    adi_free(c->k);
    c->bounds = NULL;
    c->k = NULL;
}

/* precompute_coeffs + normalize_coeffs_8bpc for the box [0, in). */
static ad_status precompute(int in, int out, coeffs *c)
{
    double scale = (double)in / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *kk = adi_malloc(sizeof(double) * (size_t)out * (size_t)ksize);
    int *bounds = adi_malloc(sizeof(int) * 2 * (size_t)out);
    int32_t *ik = adi_malloc(sizeof(int32_t) * (size_t)out * (size_t)ksize);
    if (!kk || !bounds || !ik) {
        adi_free(kk);
        adi_free(bounds);
        adi_free(ik);
        return adi_fail(AD_E_NOMEM, "resize: out of memory for %d x %d coefficients", out, ksize);
    }
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        /* Pillow rounds the window ends with (int)(v + 0.5), truncating toward zero */
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        double *k = kk + (size_t)xx * ksize;
        int x;
        for (x = 0; x < xmax; x++) {
            double w = bicubic((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        bounds[xx * 2] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    /* to fixed point, rounding half away from zero */
    for (size_t i = 0; i < (size_t)out * ksize; i++)
        ik[i] = kk[i] < 0 ? (int32_t)(-0.5 + kk[i] * (1 << PRECISION_BITS))
                          : (int32_t)(0.5 + kk[i] * (1 << PRECISION_BITS));
    adi_free(kk);
    c->ksize = ksize;
    c->bounds = bounds;
    c->k = ik;
    return AD_OK;
}

static inline uint8_t clip8(int v)
{
    v >>= PRECISION_BITS; /* arithmetic shift, as Pillow's lookup-table index */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Output rows [0, out_h) of width out_w from `rows` input rows starting at src row `row0`. */
static void pass_horizontal(const uint8_t *src, int in_w, int row0, int rows, int out_w,
                            const coeffs *c, uint8_t *dst)
{
#pragma omp parallel for schedule(static) if ((size_t)rows * out_w > 65536)
    for (int yy = 0; yy < rows; yy++) {
        const uint8_t *s = src + (size_t)(yy + row0) * in_w * 3;
        uint8_t *d = dst + (size_t)yy * out_w * 3;
        for (int xx = 0; xx < out_w; xx++) {
            int xmin = c->bounds[xx * 2], xmax = c->bounds[xx * 2 + 1];
            const int32_t *k = c->k + (size_t)xx * c->ksize;
            int s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            const uint8_t *p = s + (size_t)xmin * 3;
            for (int x = 0; x < xmax; x++) {
                s0 += p[3 * x] * k[x];
                s1 += p[3 * x + 1] * k[x];
                s2 += p[3 * x + 2] * k[x];
            }
            d[3 * xx] = clip8(s0);
            d[3 * xx + 1] = clip8(s1);
            d[3 * xx + 2] = clip8(s2);
        }
    }
}

/* Vertical pass: bounds are relative to the first row of src. */
static void pass_vertical(const uint8_t *src, int w, int out_h, const coeffs *c, int shift,
                          uint8_t *dst)
{
#pragma omp parallel for schedule(static) if ((size_t)out_h * w > 65536)
    for (int yy = 0; yy < out_h; yy++) {
        int ymin = c->bounds[yy * 2] - shift, ymax = c->bounds[yy * 2 + 1];
        const int32_t *k = c->k + (size_t)yy * c->ksize;
        uint8_t *d = dst + (size_t)yy * w * 3;
        const uint8_t *base = src + (size_t)ymin * w * 3;
        for (int i = 0; i < w * 3; i++) {
            int ss = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) ss += base[(size_t)y * w * 3 + i] * k[y];
            d[i] = clip8(ss);
        }
    }
}

static int size_ok(int w, int h)
{
    return w > 0 && h > 0 && w <= AD_IMAGE_MAX_SIDE && h <= AD_IMAGE_MAX_SIDE &&
           (size_t)w * (size_t)h <= AD_IMAGE_MAX_PIXELS;
}

ad_status ad_resize_pillow(const ad_image *src, int out_w, int out_h, ad_image *dst)
{
    ad_status st = adi_image_check(src, "ad_resize_pillow");
    if (st) return st;
    if (!dst) return adi_fail(AD_E_ARG, "ad_resize_pillow: NULL output");
    if (!size_ok(out_w, out_h))
        return adi_fail(AD_E_ARG, "ad_resize_pillow: output size %d x %d is out of range", out_w,
                       out_h);
    int in_w = src->width, in_h = src->height;
    /* Pillow skips a pass whose dimension does not change */
    int need_h = out_w != in_w, need_v = out_h != in_h;
    ad_image out = {0, 0, NULL};
    if ((st = ad_image_alloc(&out, out_w, out_h)) != AD_OK) return st;
    if (!need_h && !need_v) {
        memcpy(out.data, src->data, (size_t)in_w * in_h * 3);
        *dst = out;
        return AD_OK;
    }
    coeffs cv = {0, NULL, NULL}, ch = {0, NULL, NULL};
    uint8_t *tmp = NULL;
    if ((st = precompute(in_h, out_h, &cv)) != AD_OK) goto fail;
    /* Pillow resamples horizontally only the rows the vertical pass reads */
    int first = cv.bounds[0];
    int last = cv.bounds[out_h * 2 - 2] + cv.bounds[out_h * 2 - 1];
    if (need_h) {
        if ((st = precompute(in_w, out_w, &ch)) != AD_OK) goto fail;
        if (!need_v) {
            pass_horizontal(src->data, in_w, 0, in_h, out_w, &ch, out.data);
        } else {
            tmp = adi_alloc((size_t)(last - first) * out_w, 3);
            if (!tmp) {
                st = AD_E_NOMEM;
                goto fail;
            }
            pass_horizontal(src->data, in_w, first, last - first, out_w, &ch, tmp);
            pass_vertical(tmp, out_w, out_h, &cv, first, out.data);
        }
    } else {
        pass_vertical(src->data, in_w, out_h, &cv, 0, out.data);
    }
    coeffs_free(&cv);
    coeffs_free(&ch);
    adi_free(tmp);
    *dst = out;
    return AD_OK;
fail:
    coeffs_free(&cv);
    coeffs_free(&ch);
    adi_free(tmp);
    ad_image_free(&out);
    return st;
}

void adi_short_edge_size(int w, int h, int short_edge, int *out_w, int *out_h)
{
    int s = w <= h ? w : h, l = w <= h ? h : w;
    /* Python's int(S * long / short): exact product, correctly rounded division, truncation */
    double v = (double)short_edge * (double)l / (double)s;
    /* saturated: beyond INT_MAX the cast would be undefined; callers refuse such sizes */
    int nl = v >= 2147483647.0 ? 2147483647 : (int)v;
    if (w <= h) {
        *out_w = short_edge;
        *out_h = nl;
    } else {
        *out_w = nl;
        *out_h = short_edge;
    }
}

ad_status ad_resize_short_edge(const ad_image *src, int short_edge, ad_image *dst)
{
    ad_status st = adi_image_check(src, "ad_resize_short_edge");
    if (st) return st;
    if (!dst) return adi_fail(AD_E_ARG, "ad_resize_short_edge: NULL output");
    if (short_edge <= 0 || short_edge > AD_IMAGE_MAX_SIDE)
        return adi_fail(AD_E_ARG, "ad_resize_short_edge: short edge %d is out of range",
                       short_edge);
    int ow, oh;
    double long_edge = (double)short_edge *
                       (double)(src->width > src->height ? src->width : src->height) /
                       (double)(src->width < src->height ? src->width : src->height);
    if (long_edge >= AD_IMAGE_MAX_SIDE + 1.0)
        return adi_fail(AD_E_ARG, "ad_resize_short_edge: %d x %d to short edge %d gives a long edge "
                       "of %.0f, out of range", src->width, src->height, short_edge, long_edge);
    adi_short_edge_size(src->width, src->height, short_edge, &ow, &oh);
    /* torchvision returns the image unchanged when the size already matches; ad_resize_pillow
     * copies in that case too */
    return ad_resize_pillow(src, ow, oh, dst);
}
