/* Positional-embedding resampling (docs/design.md, "Backbone"): the 37x37 grid is copied untouched at
 * 37x37; models without registers sample with ratio 37/(g+0.1) (the official +0.1 offset,
 * which makes the map slightly asymmetric), models with registers with the antialiased,
 * mirror-symmetric filter to size g. Checked on synthetic grids whose right answer follows from
 * the definitions of the filters, evaluated in double. */
#include "backbone/backbone.h"
#include "testutil.h"

#include <string.h>

#define G 37
#define D 4 /* channels: row index, column index, constant 1, 2*row + 3*col */

static float grid[G * G * D];

static void fill_grid(void)
{
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++) {
            float *p = grid + ((size_t)i * G + j) * D;
            p[0] = (float)i;
            p[1] = (float)j;
            p[2] = 1.0f;
            p[3] = 2.0f * i + 3.0f * j;
        }
}

static void test_identity(ad_pos_interp mode)
{
    float *out = malloc(sizeof grid);
    CHECK_OK(bb_posembed_interp(grid, G, D, G, G, mode, out));
    CHECK(!memcmp(out, grid, sizeof grid), "mode %d: 37x37 is not an exact copy", (int)mode);
    printf("mode %d 37x37: %s\n", (int)mode,
           memcmp(out, grid, sizeof grid) ? "DIFFERS" : "exact copy");
    free(out);
}

/* The definitions, in double: Keys' cubic convolution kernel, and one axis' taps. */
static double keys(double u, double A)
{
    u = fabs(u);
    if (u <= 1) return ((A + 2) * u - (A + 3)) * u * u + 1;
    if (u < 2) return ((A * u - 5 * A) * u + 8 * A) * u - 4 * A;
    return 0;
}

/* Without antialiasing (A = -0.75): taps floor(src)-1 .. floor(src)+2, indices clamped. With
 * it (A = -0.5): every source index within the (stretched) support, renormalised. */
static int taps(int antialias, double r, int o, int *idx, double *w)
{
    if (!antialias) {
        double src = r * (o + 0.5) - 0.5;
        int i0 = (int)floor(src);
        for (int k = 0; k < 4; k++) {
            int j = i0 - 1 + k;
            w[k] = keys(src - j, -0.75);
            idx[k] = j < 0 ? 0 : j > G - 1 ? G - 1 : j;
        }
        return 4;
    }
    double support = 2 * fmax(r, 1), center = r * (o + 0.5), total = 0;
    int n = 0;
    for (int j = 0; j < G; j++) {
        double u = (j + 0.5 - center) / fmax(r, 1);
        if (fabs(u) < 2 && fabs(j + 0.5 - center) < support) {
            idx[n] = j;
            w[n] = keys(u, -0.5);
            total += w[n++];
        }
    }
    for (int k = 0; k < n; k++) w[k] /= total;
    return n;
}

/* Largest |out - reference| / max(1, |reference|) over every output and channel (float32
 * arithmetic on values up to 180), the reference built from the definition with per-axis
 * ratios ry, rx. */
static double max_vs_reference(const float *out, int gh, int gw, int antialias, double ry,
                               double rx, int *wy, int *wx)
{
    int iy[2 * G], ix[2 * G];
    double wyv[2 * G], wxv[2 * G], worst = 0;
    for (int oy = 0; oy < gh; oy++) {
        int ny = taps(antialias, ry, oy, iy, wyv);
        for (int ox = 0; ox < gw; ox++) {
            int nx = taps(antialias, rx, ox, ix, wxv);
            for (int d = 0; d < D; d++) {
                double e = 0;
                for (int a = 0; a < ny; a++)
                    for (int b = 0; b < nx; b++)
                        e += wyv[a] * wxv[b] * grid[((size_t)iy[a] * G + ix[b]) * D + d];
                double diff = fabs(out[((size_t)oy * gw + ox) * D + d] - e) / fmax(1, fabs(e));
                if (diff > worst) {
                    worst = diff;
                    *wy = oy;
                    *wx = ox;
                }
            }
        }
    }
    return worst;
}

/* Scale-factor path: the official ratio 37/(g+0.1) reproduces the definition; 37/g does not. */
static void test_scale_factor(int gh, int gw)
{
    float *out = malloc(sizeof(float) * gh * gw * D);
    CHECK_OK(bb_posembed_interp(grid, G, D, gh, gw, AD_POS_SCALE_FACTOR, out));
    int wy = 0, wx = 0, vy = 0, vx = 0;
    double off = max_vs_reference(out, gh, gw, 0, G / (gh + 0.1), G / (gw + 0.1), &wy, &wx);
    double plain = max_vs_reference(out, gh, gw, 0, (double)G / gh, (double)G / gw, &vy, &vx);
    double worst_const = 0;
    for (int i = 0; i < gh * gw; i++)
        worst_const = fmax(worst_const, fabs(out[(size_t)i * D + 2] - 1.0));
    printf(
        "scale-factor %2dx%-2d: max rel diff %.3g at (%d, %d) vs ratio 37/(g+0.1); %.3g vs 37/g; "
        "constant max|diff| %.3g\n",
        gh, gw, off, wy, wx, plain, worst_const);
    CHECK(off <= 4e-6, "%dx%d: %g from the 37/(g+0.1) reference at (%d, %d)", gh, gw, off, wy, wx);
    CHECK(worst_const <= 4e-6, "%dx%d: constant off by %g", gh, gw, worst_const);
    if (gh != G || gw != G)
        CHECK(plain > 1e-3, "%dx%d: output also matches ratio 37/g (%g)", gh, gw, plain);
    free(out);
}

/* Antialiased path: matches the definition, reproduces constants, and is mirror-symmetric
 * (flip the grid, flip the output). */
static void test_antialias(int gh, int gw)
{
    size_t n = (size_t)gh * gw * D;
    float *out = malloc(sizeof(float) * n), *outf = malloc(sizeof(float) * n);
    float *flip = malloc(sizeof grid);
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++)
            memcpy(flip + ((size_t)i * G + j) * D,
                   grid + ((size_t)(G - 1 - i) * G + (G - 1 - j)) * D, D * sizeof(float));
    CHECK_OK(bb_posembed_interp(grid, G, D, gh, gw, AD_POS_ANTIALIAS, out));
    CHECK_OK(bb_posembed_interp(flip, G, D, gh, gw, AD_POS_ANTIALIAS, outf));
    int wy = 0, wx = 0;
    double ref = max_vs_reference(out, gh, gw, 1, (double)G / gh, (double)G / gw, &wy, &wx);
    double worst_const = 0, worst_mirror = 0;
    for (int oy = 0; oy < gh; oy++)
        for (int ox = 0; ox < gw; ox++) {
            const float *p = out + ((size_t)oy * gw + ox) * D;
            const float *q = outf + ((size_t)(gh - 1 - oy) * gw + (gw - 1 - ox)) * D;
            worst_const = fmax(worst_const, fabs(p[2] - 1.0));
            worst_mirror = fmax(worst_mirror, fabs(p[3] - q[3]));
        }
    printf("antialias    %2dx%-2d: max rel diff %.3g at (%d, %d) vs the definition, constant "
           "max|diff| %.3g, "
           "mirror max|diff| %.3g\n",
           gh, gw, ref, wy, wx, worst_const, worst_mirror);
    CHECK(ref <= 4e-6, "%dx%d antialias: %g from the reference at (%d, %d)", gh, gw, ref, wy, wx);
    CHECK(worst_const <= 4e-6, "%dx%d antialias: constant off by %g", gh, gw, worst_const);
    CHECK(worst_mirror <= 1e-4, "%dx%d antialias: not mirror-symmetric (%g)", gh, gw, worst_mirror);
    free(out);
    free(outf);
    free(flip);
}

/* The +0.1 offset breaks the mirror symmetry of the scale-factor path: a flipped grid does not
 * give a flipped output (it would with ratio 37/g). */
static void test_scale_factor_asymmetric(int g)
{
    size_t n = (size_t)g * g * D;
    float *out = malloc(sizeof(float) * n), *outf = malloc(sizeof(float) * n),
          *flip = malloc(sizeof grid);
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++)
            memcpy(flip + ((size_t)i * G + j) * D,
                   grid + ((size_t)(G - 1 - i) * G + (G - 1 - j)) * D, D * sizeof(float));
    CHECK_OK(bb_posembed_interp(grid, G, D, g, g, AD_POS_SCALE_FACTOR, out));
    CHECK_OK(bb_posembed_interp(flip, G, D, g, g, AD_POS_SCALE_FACTOR, outf));
    double m = 0;
    for (int oy = 0; oy < g; oy++)
        for (int ox = 0; ox < g; ox++)
            m = fmax(m, fabs(out[((size_t)oy * g + ox) * D + 3] -
                             outf[((size_t)(g - 1 - oy) * g + (g - 1 - ox)) * D + 3]));
    printf("scale-factor %2dx%-2d: mirror max|diff| %.3g (the offset makes it asymmetric)\n", g, g,
           m);
    CHECK(m > 0.05, "%dx%d scale-factor path is mirror-symmetric: the +0.1 offset is missing", g,
          g);
    free(out);
    free(outf);
    free(flip);
}

int main(void)
{
    fill_grid();
    test_identity(AD_POS_SCALE_FACTOR);
    test_identity(AD_POS_ANTIALIAS);
    static const int sizes[][2] = {{32, 32}, {32, 48}, {26, 18}, {16, 16},
                                   {37, 18}, {48, 48}, {5, 3}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        test_scale_factor(sizes[k][0], sizes[k][1]);
        test_antialias(sizes[k][0], sizes[k][1]);
    }
    test_scale_factor_asymmetric(32);
    float out[4 * D];
    CHECK(bb_posembed_interp(grid, G, D, 0, 2, AD_POS_SCALE_FACTOR, out) == AD_E_ARG,
          "0-row grid accepted");
    CHECK(bb_posembed_interp(NULL, G, D, 2, 2, AD_POS_ANTIALIAS, out) == AD_E_ARG,
          "NULL grid accepted");
    CHECK(bb_posembed_interp(grid, G, D, 2, 2, (ad_pos_interp)7, out) == AD_E_ARG,
          "unknown mode accepted");
    return t_done("posembed_offset");
}
