/* Positional-embedding resampling of the official DINOv2 code (docs/design.md,
 * "Backbone"; dinov2 vision_transformer.py::interpolate_pos_encoding, post-e1277af), reproducing the two
 * PyTorch CPU paths it ends in (aten UpSampleKernel.cpp), in float32 like the original:
 *  - models without registers: interpolate(scale_factor=(g+0.1)/G, bicubic, align_corners
 *    false). Because a scale factor is given, PyTorch samples with ratio float(1/s), not G/g:
 *    src = r (o + 0.5) - 0.5, four Keys taps (A = -0.75) at clamped indices, evaluated nested
 *    (the row sum inside, the column weights outside).
 *  - models with registers: interpolate(size=g, bicubic, antialias=True): Pillow-style support
 *    2 max(r, 1) with A = -0.5, out-of-range taps dropped and the weights renormalised;
 *    separable, the last (width) axis first into a float32 temporary. */
#include "backbone/backbone.h"

#include <math.h>
#include <string.h>

typedef struct {
    int n_out, max_taps;
    int *cnt; /* taps used by output o */
    int *idx; /* n_out x max_taps source indices */
    float *w; /* n_out x max_taps weights */
} axis_taps;

static void taps_free(axis_taps *a)
{
    adi_free(a->cnt);
    adi_free(a->idx);
    adi_free(a->w);
    a->cnt = a->idx = NULL;
    a->w = NULL;
}

static ad_status taps_alloc(axis_taps *a, int n_out, int max_taps)
{
    a->n_out = n_out;
    a->max_taps = max_taps;
    a->cnt = adi_alloc((size_t)n_out, sizeof(int));
    a->idx = adi_alloc((size_t)n_out * (size_t)max_taps, sizeof(int));
    a->w = adi_alloc((size_t)n_out * (size_t)max_taps, sizeof(float));
    if (!a->cnt || !a->idx || !a->w) {
        taps_free(a);
        return AD_E_NOMEM;
    }
    return AD_OK;
}

/* Keys cubic convolution kernel for 0 <= x <= 1 and 1 <= x <= 2 (upsample_bicubic2d, A = -0.75). */
#define KEYS_A (-0.75f)
static float keys_near(float x) { return ((KEYS_A + 2) * x - (KEYS_A + 3)) * x * x + 1; }
static float keys_far(float x)
{
    return ((KEYS_A * x - 5 * KEYS_A) * x + 8 * KEYS_A) * x - 4 * KEYS_A;
}

static ad_status taps_scale_factor(axis_taps *a, int in, int out)
{
    if (taps_alloc(a, out, 4)) return AD_E_NOMEM;
    /* interpolate_offset 0.1 of dinov2 (vision_transformer.py): s = (g + 0.1) / G in double,
     * and the kernel's ratio is float(1.0 / s) (aten compute_scales_value). */
    float r = (float)(1.0 / ((out + 0.1) / in));
    for (int o = 0; o < out; o++) {
        float src = r * ((float)o + 0.5f) - 0.5f;
        int i0 = (int)floorf(src);
        if (i0 > in - 1) i0 = in - 1;
        float t = src - (float)i0;
        if (t < 0) t = 0;
        if (t > 1) t = 1;
        float *w = a->w + (size_t)o * 4;
        int *idx = a->idx + (size_t)o * 4;
        w[0] = keys_far(t + 1);
        w[1] = keys_near(t);
        w[2] = keys_near(1 - t);
        w[3] = keys_far(2 - t);
        for (int k = 0; k < 4; k++) {
            int j = i0 - 1 + k;
            idx[k] = j < 0 ? 0 : j > in - 1 ? in - 1 : j;
        }
        a->cnt[o] = 4;
    }
    return AD_OK;
}

/* Antialiasing bicubic filter of aten (Keys with a = -0.5, as Pillow). */
static float aa_cubic(float x)
{
    const float a = -0.5f;
    x = fabsf(x);
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

static ad_status taps_antialias(axis_taps *a, int in, int out)
{
    float scale = (float)in / (float)out;
    float support = scale >= 1 ? 2 * scale : 2.0f;
    float invscale = scale >= 1 ? 1 / scale : 1.0f;
    int max_taps = (int)ceilf(2 * support) + 2;
    if (taps_alloc(a, out, max_taps)) return AD_E_NOMEM;
    for (int o = 0; o < out; o++) {
        float center = scale * ((float)o + 0.5f);
        int xmin = (int)(center - support + 0.5f);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5f);
        if (xmax > in) xmax = in;
        int n = xmax - xmin;
        if (n > max_taps) n = max_taps; /* cannot happen: the window is 2*support wide */
        if (n < 1) {                    /* nor this; keep the nearest sample if it did */
            xmin = (int)center < in ? (int)center : in - 1;
            n = 1;
        }
        float *w = a->w + (size_t)o * max_taps;
        int *idx = a->idx + (size_t)o * max_taps;
        float total = 0;
        for (int j = 0; j < n; j++) {
            w[j] = aa_cubic(((float)(j + xmin) - center + 0.5f) * invscale);
            idx[j] = xmin + j;
            total += w[j];
        }
        if (total != 0)
            for (int j = 0; j < n; j++) w[j] /= total;
        a->cnt[o] = n;
    }
    return AD_OK;
}

ad_status bb_posembed_interp(const float *grid, int G, int D, int gh, int gw, ad_pos_interp mode,
                             float *out)
{
    if (!grid || !out || G < 1 || D < 1 || gh < 1 || gw < 1)
        return adi_fail(AD_E_ARG, "posembed: bad arguments (G %d, D %d, grid %dx%d)", G, D, gh, gw);
    if (gh == G && gw == G) {
        memcpy(out, grid, (size_t)G * G * D * sizeof(float));
        return AD_OK;
    }
    axis_taps ty = {0}, tx = {0};
    ad_status st;
    if (mode == AD_POS_SCALE_FACTOR) {
        st = taps_scale_factor(&ty, G, gh);
        if (!st) st = taps_scale_factor(&tx, G, gw);
    } else if (mode == AD_POS_ANTIALIAS) {
        st = taps_antialias(&ty, G, gh);
        if (!st) st = taps_antialias(&tx, G, gw);
    } else {
        return adi_fail(AD_E_ARG, "posembed: unknown interpolation mode %d", (int)mode);
    }
    if (st) {
        taps_free(&ty);
        taps_free(&tx);
        return st;
    }

    if (mode == AD_POS_SCALE_FACTOR) {
        /* nested as aten's generic N-d kernel: out = sum_ky wy * (sum_kx wx * src) */
        float *t = adi_alloc((size_t)D, sizeof(float));
        if (!t) {
            st = AD_E_NOMEM;
            goto done;
        }
        for (int oy = 0; oy < gh; oy++) {
            const int *iy = ty.idx + (size_t)oy * 4;
            const float *wy = ty.w + (size_t)oy * 4;
            for (int ox = 0; ox < gw; ox++) {
                const int *ix = tx.idx + (size_t)ox * 4;
                const float *wx = tx.w + (size_t)ox * 4;
                float *o = out + ((size_t)oy * gw + ox) * D;
                for (int ky = 0; ky < 4; ky++) {
                    const float *row = grid + (size_t)iy[ky] * G * D;
                    const float *s0 = row + (size_t)ix[0] * D, *s1 = row + (size_t)ix[1] * D;
                    const float *s2 = row + (size_t)ix[2] * D, *s3 = row + (size_t)ix[3] * D;
                    for (int d = 0; d < D; d++) {
                        float v = s0[d] * wx[0];
                        v += s1[d] * wx[1];
                        v += s2[d] * wx[2];
                        v += s3[d] * wx[3];
                        t[d] = v;
                    }
                    if (ky == 0)
                        for (int d = 0; d < D; d++) o[d] = t[d] * wy[0];
                    else
                        for (int d = 0; d < D; d++) o[d] += t[d] * wy[ky];
                }
            }
        }
        adi_free(t);
    } else {
        /* separable: width first into tmp (G x gw x D), then height */
        float *tmp = adi_alloc((size_t)G * gw * D, sizeof(float));
        if (!tmp) {
            st = AD_E_NOMEM;
            goto done;
        }
        for (int iy = 0; iy < G; iy++)
            for (int ox = 0; ox < gw; ox++) {
                const int *ix = tx.idx + (size_t)ox * tx.max_taps;
                const float *wx = tx.w + (size_t)ox * tx.max_taps;
                float *o = tmp + ((size_t)iy * gw + ox) * D;
                const float *row = grid + (size_t)iy * G * D;
                for (int d = 0; d < D; d++) o[d] = row[(size_t)ix[0] * D + d] * wx[0];
                for (int k = 1; k < tx.cnt[ox]; k++) {
                    const float *s = row + (size_t)ix[k] * D;
                    for (int d = 0; d < D; d++) o[d] += s[d] * wx[k];
                }
            }
        for (int oy = 0; oy < gh; oy++) {
            const int *iy = ty.idx + (size_t)oy * ty.max_taps;
            const float *wy = ty.w + (size_t)oy * ty.max_taps;
            for (int ox = 0; ox < gw; ox++) {
                float *o = out + ((size_t)oy * gw + ox) * D;
                const float *s = tmp + ((size_t)iy[0] * gw + ox) * D;
                for (int d = 0; d < D; d++) o[d] = s[d] * wy[0];
                for (int k = 1; k < ty.cnt[oy]; k++) {
                    s = tmp + ((size_t)iy[k] * gw + ox) * D;
                    for (int d = 0; d < D; d++) o[d] += s[d] * wy[k];
                }
            }
        }
        adi_free(tmp);
    }
done:
    taps_free(&ty);
    taps_free(&tx);
    if (st) return adi_fail(st, "posembed: out of memory for a %dx%d grid", gh, gw);
    return AD_OK;
}
