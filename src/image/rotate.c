/* Rotation augmentation of the references (docs/design.md, "References and
 * rotations"): OpenCV 4.6's
 *   M = cv2.getRotationMatrix2D((W/2, H/2), angle, 1.0)
 *   cv2.warpAffine(img, M, (W, H), flags=INTER_LINEAR, borderMode=BORDER_REFLECT_101)
 * reproduced with its fixed-point arithmetic (imgwarp.cpp: warpAffine, WarpAffineInvoker,
 * initInterTab2D, remapBilinear with FixedPtCast<int, uchar, 15>):
 *   - M is inverted in double; per destination pixel the source position is
 *     X = (round((M1*y + M2) * 1024) + 16 + round(M0*x * 1024)) >> 5 (likewise Y), i.e. in units
 *     of 1/32 pixel (INTER_BITS = 5, AB_BITS = 10, round_delta = 1024/32/2), where round is
 *     cvRound (half to even);
 *   - integer part X >> 5 (saturated to int16), fraction X & 31 selects one of 32 x 32 bilinear
 *     weight sets in 15-bit fixed point (INTER_REMAP_COEF_BITS);
 *   - result (sum of 4 weighted pixels + 2^14) >> 15, saturated to uint8;
 *   - neighbours outside the image are mirrored without repeating the edge (gfedcb|abcdefgh|gfedcba).
 * OpenCV >= 4.11 reworked this warp; the golden data were made with 4.6 (README of tests/data). */
#include "image/image.h"

#include <math.h>
#include <string.h>

#define INTER_BITS 5
#define INTER_TAB_SIZE (1 << INTER_BITS)
#define AB_BITS 10
#define AB_SCALE (1 << AB_BITS)
#define REMAP_BITS 15
#define REMAP_SCALE (1 << REMAP_BITS)

/* cv::getRotationMatrix2D's M for centre (W/2, H/2) passed as cv::Point2f. */
static void rotation_matrix(int w, int h, double angle_deg, double m[6])
{
    double angle = angle_deg * (3.1415926535897932384626433832795 / 180); /* CV_PI/180 */
    double alpha = cos(angle), beta = sin(angle);
    double cx = (float)(w / 2.0), cy = (float)(h / 2.0);
    m[0] = alpha;
    m[1] = beta;
    m[2] = (1 - alpha) * cx - beta * cy;
    m[3] = -beta;
    m[4] = alpha;
    m[5] = beta * cx + (1 - alpha) * cy;
}

/* warpAffine without WARP_INVERSE_MAP inverts M in place (imgwarp.cpp). */
static void invert_affine(double m[6])
{
    double d = m[0] * m[4] - m[1] * m[3];
    d = d != 0 ? 1. / d : 0;
    double a11 = m[4] * d, a22 = m[0] * d;
    m[0] = a11;
    m[1] *= -d;
    m[3] *= -d;
    m[4] = a22;
    double b1 = -m[0] * m[2] - m[1] * m[5];
    double b2 = -m[3] * m[2] - m[4] * m[5];
    m[2] = b1;
    m[5] = b2;
}

/* cvRound / saturate_cast<int>(double): nearest, ties to even (lrint in the default mode). */
static int cv_round(double v)
{
    if (!(v > -2147483648.0)) return INT32_MIN; /* NaN and below: as cvtsd2si saturates */
    if (v >= 2147483647.0) return INT32_MAX;
    return (int)lrint(v);
}

/* OpenCV's BilinearTab_i: weights (1-fy)(1-fx), (1-fy)fx, fy(1-fx), fy fx in 15-bit fixed point.
 * The products are exact multiples of 1/1024, so only the (0, 0) entry needs OpenCV's sum
 * correction: 32768 saturates to 32767 in int16 and initInterTab2D adds the missing 1 to the
 * weight of the far corner (whose table slots it scans are still zero at that point), giving
 * {32767, 0, 0, 1}. */
static void bilinear_table(int16_t tab[INTER_TAB_SIZE * INTER_TAB_SIZE][4])
{
    for (int i = 0; i < INTER_TAB_SIZE; i++) {
        for (int j = 0; j < INTER_TAB_SIZE; j++) {
            float fy = i * (1.f / INTER_TAB_SIZE), fx = j * (1.f / INTER_TAB_SIZE);
            float vy[2] = {1.f - fy, fy}, vx[2] = {1.f - fx, fx};
            int16_t *t = tab[i * INTER_TAB_SIZE + j];
            int sum = 0;
            for (int k1 = 0; k1 < 2; k1++)
                for (int k2 = 0; k2 < 2; k2++) {
                    float v = vy[k1] * vx[k2] * REMAP_SCALE;
                    int iv = (int)lrintf(v);
                    if (iv > 32767) iv = 32767;
                    t[k1 * 2 + k2] = (int16_t)iv;
                    sum += iv;
                }
            if (sum != REMAP_SCALE) t[3] = (int16_t)(t[3] - (sum - REMAP_SCALE));
        }
    }
}

/* BORDER_REFLECT_101 index (cv::borderInterpolate), in closed form. */
static inline int reflect101(int p, int len)
{
    if ((unsigned)p < (unsigned)len) return p;
    if (len == 1) return 0;
    int period = 2 * (len - 1);
    int m = p % period;
    if (m < 0) m += period;
    return m < len ? m : period - m;
}

static inline int sat16(int v)
{
    return v < -32768 ? -32768 : v > 32767 ? 32767 : v;
}

ad_status ad_rotate(const ad_image *src, double angle_deg, ad_image *dst)
{
    ad_status st = adi_image_check(src, "ad_rotate");
    if (st) return st;
    if (!dst) return adi_fail(AD_E_ARG, "ad_rotate: NULL output");
    if (!isfinite(angle_deg)) return adi_fail(AD_E_ARG, "ad_rotate: angle is not finite");
    int w = src->width, h = src->height;
    ad_image out = {0, 0, NULL};
    if ((st = ad_image_alloc(&out, w, h)) != AD_OK) return st;
    int *adelta = adi_alloc((size_t)w * 2, sizeof(int));
    if (!adelta) {
        ad_image_free(&out);
        return AD_E_NOMEM;
    }
    int *bdelta = adelta + w;
    double m[6];
    rotation_matrix(w, h, angle_deg, m);
    invert_affine(m);
    for (int x = 0; x < w; x++) {
        adelta[x] = cv_round(m[0] * x * AB_SCALE);
        bdelta[x] = cv_round(m[3] * x * AB_SCALE);
    }
    int16_t tab[INTER_TAB_SIZE * INTER_TAB_SIZE][4]; /* 8 KiB, rebuilt per call: no shared state */
    bilinear_table(tab);
    const int round_delta = AB_SCALE / INTER_TAB_SIZE / 2;
    const uint8_t *S = src->data;
    const size_t step = (size_t)w * 3;

#pragma omp parallel for schedule(static) if ((size_t)w * h > 65536)
    for (int y = 0; y < h; y++) {
        int X0 = cv_round((m[1] * y + m[2]) * AB_SCALE) + round_delta;
        int Y0 = cv_round((m[4] * y + m[5]) * AB_SCALE) + round_delta;
        uint8_t *D = out.data + (size_t)y * step;
        for (int x = 0; x < w; x++) {
            /* unsigned wrap-around as OpenCV's int arithmetic on two's complement */
            int X = (int)((unsigned)X0 + (unsigned)adelta[x]) >> (AB_BITS - INTER_BITS);
            int Y = (int)((unsigned)Y0 + (unsigned)bdelta[x]) >> (AB_BITS - INTER_BITS);
            int sx = sat16(X >> INTER_BITS), sy = sat16(Y >> INTER_BITS);
            const int16_t *wt = tab[(Y & (INTER_TAB_SIZE - 1)) * INTER_TAB_SIZE +
                                    (X & (INTER_TAB_SIZE - 1))];
            int x0 = reflect101(sx, w), x1 = reflect101(sx + 1, w);
            int y0 = reflect101(sy, h), y1 = reflect101(sy + 1, h);
            const uint8_t *p00 = S + y0 * step + (size_t)x0 * 3, *p01 = S + y0 * step + (size_t)x1 * 3;
            const uint8_t *p10 = S + y1 * step + (size_t)x0 * 3, *p11 = S + y1 * step + (size_t)x1 * 3;
            for (int c = 0; c < 3; c++) {
                int v = p00[c] * wt[0] + p01[c] * wt[1] + p10[c] * wt[2] + p11[c] * wt[3];
                v = (v + (1 << (REMAP_BITS - 1))) >> REMAP_BITS;
                D[3 * x + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    adi_free(adelta);
    *dst = out;
    return AD_OK;
}
