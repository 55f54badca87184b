/* Full-resolution anomaly map (docs/design.md "Anomaly map";
 * dammsi/AnomalyDINO src/utils.py::dists2map):
 *   cv2.resize(grid (float64), (W, H), interpolation=INTER_LINEAR)
 *   scipy.ndimage.gaussian_filter(map, sigma=4)   (truncate 4 -> radius 16, mode 'reflect')
 * in float64, stored as float32.
 *
 * Resize, as OpenCV 4.6 resize.cpp (resizeGeneric_ with HResizeLinear / VResizeLinear for
 * 64F): scale = 1 / (out / in); source position f = (float)((d + 0.5) * scale - 0.5),
 * s = floor(f), t = f - s, weights (1 - t, t) in float32, products and sums in double.
 * Horizontally s < 0 -> (0, t = 0) and s >= in - 1 -> (in - 1, t = 0, one tap); vertically
 * only the row indices are clamped (the weights keep t).
 *
 * Blur, as scipy 1.10 ndimage (_gaussian_kernel1d, correlate1d / NI_Correlate1D): 33 weights
 * exp(-x^2 / 32), x = -16..16, divided by their sum (NumPy's pairwise order); axis 0 then axis 1;
 * per output value c*w0 + sum over d = 16..1 of (x[-d] + x[+d]) * w[d] in that order (scipy's
 * symmetric-kernel loop); borders half-sample symmetric (dcba|abcd|dcba) repeated as often as
 * needed, so maps smaller than the radius work. Each value is computed in a fixed order:
 * the result does not depend on the thread count. */
#include "image/image.h"

#include <math.h>
#include <string.h>

#define GAUSS_SIGMA 4.0  /* dists2map's sigma */
#define GAUSS_RADIUS 16  /* int(truncate * sigma + 0.5), scipy's default truncate = 4.0 */

/* scipy's kernel, with the sum in NumPy's pairwise order (8 accumulators for n < 128). */
static void gaussian_weights(double w[GAUSS_RADIUS + 1])
{
    enum { N = 2 * GAUSS_RADIUS + 1 };
    double phi[N];
    double c = -0.5 / (GAUSS_SIGMA * GAUSS_SIGMA);
    for (int i = 0; i < N; i++) {
        double x = i - GAUSS_RADIUS;
        phi[i] = exp(c * (x * x));
    }
    double r[8];
    for (int j = 0; j < 8; j++) r[j] = phi[j];
    int i;
    for (i = 8; i < N - N % 8; i += 8)
        for (int j = 0; j < 8; j++) r[j] += phi[i + j];
    double sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < N; i++) sum += phi[i];
    for (int d = 0; d <= GAUSS_RADIUS; d++) w[d] = phi[GAUSS_RADIUS + d] / sum;
}

/* scipy 'reflect' (half-sample symmetric) index, periodic with period 2n. */
static inline int reflect_half(int p, int n)
{
    if ((unsigned)p < (unsigned)n) return p;
    int m = p % (2 * n);
    if (m < 0) m += 2 * n;
    return m < n ? m : 2 * n - 1 - m;
}

ad_status ad_anomaly_map(const double *grid, int grid_h, int grid_w, int out_w, int out_h,
                         float *map)
{
    if (!grid || !map) return adi_fail(AD_E_ARG, "ad_anomaly_map: NULL %s", grid ? "map" : "grid");
    if (grid_h <= 0 || grid_w <= 0 || grid_h > AD_IMAGE_MAX_SIDE || grid_w > AD_IMAGE_MAX_SIDE)
        return adi_fail(AD_E_ARG, "ad_anomaly_map: grid size %d x %d is out of range", grid_h,
                       grid_w);
    if (out_w <= 0 || out_h <= 0 || out_w > AD_IMAGE_MAX_SIDE || out_h > AD_IMAGE_MAX_SIDE ||
        (size_t)out_w * (size_t)out_h > AD_IMAGE_MAX_PIXELS)
        return adi_fail(AD_E_ARG, "ad_anomaly_map: output size %d x %d is out of range", out_w,
                       out_h);
    const size_t npix = (size_t)out_w * out_h;
    int *xofs = adi_alloc((size_t)out_w + (size_t)out_h * 2, sizeof(int));
    float *alpha = adi_alloc((size_t)out_w * 2 + (size_t)out_h * 2, sizeof(float));
    double *hrows = adi_alloc((size_t)grid_h * out_w, sizeof(double));
    double *a = adi_alloc(npix, sizeof(double));
    double *b = adi_alloc(npix, sizeof(double));
    if (!xofs || !alpha || !hrows || !a || !b) {
        adi_free(xofs);
        adi_free(alpha);
        adi_free(hrows);
        adi_free(a);
        adi_free(b);
        return AD_E_NOMEM;
    }
    int *yrow = xofs + out_w; /* two clamped source rows per output row */
    float *beta = alpha + (size_t)out_w * 2;

    /* horizontal coefficients; xmax: first output column that takes a single edge tap */
    double scale_x = 1. / ((double)out_w / grid_w);
    int xmax = out_w;
    for (int dx = 0; dx < out_w; dx++) {
        float fx = (float)((dx + 0.5) * scale_x - 0.5);
        int sx = (int)floorf(fx);
        fx -= (float)sx;
        if (sx < 0) fx = 0, sx = 0;
        if (sx + 1 >= grid_w) {
            if (dx < xmax) xmax = dx;
            if (sx >= grid_w - 1) fx = 0, sx = grid_w - 1;
        }
        xofs[dx] = sx;
        alpha[2 * dx] = 1.f - fx;
        alpha[2 * dx + 1] = fx;
    }
    double scale_y = 1. / ((double)out_h / grid_h);
    for (int dy = 0; dy < out_h; dy++) {
        float fy = (float)((dy + 0.5) * scale_y - 0.5);
        int sy = (int)floorf(fy);
        fy -= (float)sy;
        int r0 = sy < 0 ? 0 : sy > grid_h - 1 ? grid_h - 1 : sy;
        int r1 = sy + 1 < 0 ? 0 : sy + 1 > grid_h - 1 ? grid_h - 1 : sy + 1;
        yrow[2 * dy] = r0;
        yrow[2 * dy + 1] = r1;
        beta[2 * dy] = 1.f - fy;
        beta[2 * dy + 1] = fy;
    }
    /* bilinear: every grid row horizontally, then the rows of the output vertically */
    for (int gy = 0; gy < grid_h; gy++) {
        const double *s = grid + (size_t)gy * grid_w;
        double *d = hrows + (size_t)gy * out_w;
        for (int dx = 0; dx < xmax; dx++) {
            int sx = xofs[dx];
            d[dx] = s[sx] * (double)alpha[2 * dx] + s[sx + 1] * (double)alpha[2 * dx + 1];
        }
        for (int dx = xmax; dx < out_w; dx++) d[dx] = s[xofs[dx]];
    }
#pragma omp parallel for schedule(static) if (npix > 65536)
    for (int dy = 0; dy < out_h; dy++) {
        const double *s0 = hrows + (size_t)yrow[2 * dy] * out_w;
        const double *s1 = hrows + (size_t)yrow[2 * dy + 1] * out_w;
        double b0 = beta[2 * dy], b1 = beta[2 * dy + 1];
        double *d = a + (size_t)dy * out_w;
        for (int x = 0; x < out_w; x++) d[x] = s0[x] * b0 + s1[x] * b1;
    }

    double w[GAUSS_RADIUS + 1];
    gaussian_weights(w);

    /* axis 0: a -> b */
#pragma omp parallel for schedule(static) if (npix > 65536)
    for (int y = 0; y < out_h; y++) {
        double *d = b + (size_t)y * out_w;
        const double *c = a + (size_t)y * out_w;
        for (int x = 0; x < out_w; x++) d[x] = c[x] * w[0];
        for (int k = GAUSS_RADIUS; k >= 1; k--) {
            const double *lo = a + (size_t)reflect_half(y - k, out_h) * out_w;
            const double *hi = a + (size_t)reflect_half(y + k, out_h) * out_w;
            double wk = w[k];
            for (int x = 0; x < out_w; x++) d[x] += (lo[x] + hi[x]) * wk;
        }
    }
    /* axis 1: b -> map. Interior columns accumulate k-outer (vectorisable) into the dead rows
     * of `a`; the 16 columns at either end use mirrored indices. Same order per value. */
#pragma omp parallel for schedule(static) if (npix > 65536)
    for (int y = 0; y < out_h; y++) {
        const double *c = b + (size_t)y * out_w;
        double *acc = a + (size_t)y * out_w;
        float *o = map + (size_t)y * out_w;
        int lo = GAUSS_RADIUS < out_w ? GAUSS_RADIUS : out_w;
        int hi = out_w - GAUSS_RADIUS > lo ? out_w - GAUSS_RADIUS : lo;
        for (int x = lo; x < hi; x++) acc[x] = c[x] * w[0];
        for (int k = GAUSS_RADIUS; k >= 1; k--) {
            double wk = w[k];
            for (int x = lo; x < hi; x++) acc[x] += (c[x - k] + c[x + k]) * wk;
        }
        for (int x = 0; x < out_w; x++) {
            if (x == lo && hi > lo) x = hi;
            if (x >= out_w) break;
            double v = c[x] * w[0];
            for (int k = GAUSS_RADIUS; k >= 1; k--)
                v += (c[reflect_half(x - k, out_w)] + c[reflect_half(x + k, out_w)]) * w[k];
            acc[x] = v;
        }
        for (int x = 0; x < out_w; x++) o[x] = (float)acc[x];
    }
    adi_free(xofs);
    adi_free(alpha);
    adi_free(hrows);
    adi_free(a);
    adi_free(b);
    return AD_OK;
}
