/* make_samples: the synthetic sample images of samples/ (free to redistribute: drawn by this
 * program, no photographs). A machined washer - a steel ring with concentric turning grooves,
 * a bevelled rim and four bolt holes - lying on a matte grey surface, photographed from above
 * under slightly varying light and position:
 *
 *   samples/good/washer_01..05.png     references for `fit`
 *   samples/test/good_06, good_07.png  held-out good parts
 *   samples/test/scratch.png           a long thin scratch across the ring face
 *   samples/test/missing_piece.png     a bite out of the outer rim
 *   samples/test/stain.png             a dark oily stain on the ring face
 *
 * usage: make_samples [OUT_DIR]   (default: samples)
 *
 * Deterministic (own PRNG, fixed seeds): running it again gives the same bytes. */
#include "core/core.h"
#include "io/io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIZE 320  /* pixels, square */
#define SS 4      /* supersampling per axis for anti-aliased edges */

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static double rng_uniform(rng_t *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }
static double rng_range(rng_t *r, double a, double b) { return a + (b - a) * rng_uniform(r); }

/* Smooth value noise on a lattice of `cell` pixels (bilinear with smoothstep). */
typedef struct {
    int n;
    double cell;
    float *v;
} noise_t;

static void noise_init(noise_t *no, rng_t *r, double cell)
{
    no->cell = cell;
    no->n = (int)(SIZE / cell) + 3;
    no->v = malloc((size_t)no->n * (size_t)no->n * sizeof *no->v);
    for (int i = 0; i < no->n * no->n; i++) no->v[i] = (float)rng_range(r, -1, 1);
}

static double noise_at(const noise_t *no, double x, double y)
{
    double fx = x / no->cell, fy = y / no->cell;
    int ix = (int)floor(fx), iy = (int)floor(fy);
    double tx = fx - ix, ty = fy - iy;
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    ix = ix < 0 ? 0 : ix > no->n - 2 ? no->n - 2 : ix;
    iy = iy < 0 ? 0 : iy > no->n - 2 ? no->n - 2 : iy;
    const float *v = no->v;
    int n = no->n;
    double a = v[iy * n + ix] * (1 - tx) + v[iy * n + ix + 1] * tx;
    double b = v[(iy + 1) * n + ix] * (1 - tx) + v[(iy + 1) * n + ix + 1] * tx;
    return a * (1 - ty) + b * ty;
}

typedef enum { DEF_NONE, DEF_SCRATCH, DEF_MISSING, DEF_STAIN } defect;

typedef struct {
    double cx, cy;        /* ring centre */
    double r_out, r_in;   /* outer / inner radius */
    double r_bolt, bolt_r;/* bolt-hole circle radius, hole radius */
    double phase;         /* angle of the bolt pattern and of the light */
    double light;         /* overall brightness factor */
    /* defects */
    defect def;
    double ax, ay, bx, by, bend; /* scratch: a quadratic curve from a to b */
    double mx, my, mr;           /* missing piece: disc removed from the rim */
    double sx, sy, sr;           /* stain centre and size */
} part;

static double clamp01(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

/* 1 inside the part's metal at (x, y), else 0 (exact, for supersampling). */
static int metal_at(const part *p, double x, double y)
{
    double dx = x - p->cx, dy = y - p->cy;
    double r = sqrt(dx * dx + dy * dy);
    if (r > p->r_out || r < p->r_in) return 0;
    for (int k = 0; k < 4; k++) {
        double a = p->phase + k * (M_PI / 2);
        double hx = p->cx + p->r_bolt * cos(a), hy = p->cy + p->r_bolt * sin(a);
        if ((x - hx) * (x - hx) + (y - hy) * (y - hy) < p->bolt_r * p->bolt_r) return 0;
    }
    if (p->def == DEF_MISSING && (x - p->mx) * (x - p->mx) + (y - p->my) * (y - p->my) < p->mr * p->mr)
        return 0;
    return 1;
}

/* Distance from (x, y) to the scratch curve (sampled polyline). */
static double scratch_dist(const part *p, double x, double y)
{
    double best = 1e9, px = p->ax, py = p->ay;
    /* normal of the chord, for the bend */
    double nx = -(p->by - p->ay), ny = p->bx - p->ax, nl = sqrt(nx * nx + ny * ny);
    nx /= nl;
    ny /= nl;
    for (int s = 1; s <= 32; s++) {
        double t = s / 32.0;
        double qx = p->ax + (p->bx - p->ax) * t + nx * p->bend * 4 * t * (1 - t);
        double qy = p->ay + (p->by - p->ay) * t + ny * p->bend * 4 * t * (1 - t);
        double vx = qx - px, vy = qy - py, wx = x - px, wy = y - py;
        double l2 = vx * vx + vy * vy, u = l2 > 0 ? clamp01((wx * vx + wy * vy) / l2) : 0;
        double ex = wx - u * vx, ey = wy - u * vy, d = sqrt(ex * ex + ey * ey);
        if (d < best) best = d;
        px = qx;
        py = qy;
    }
    return best;
}

static void render(const part *p, uint64_t seed, uint8_t *rgb)
{
    rng_t r = {seed};
    noise_t coarse, fine, stain_shape;
    noise_init(&coarse, &r, 80.0);
    noise_init(&fine, &r, 6.0);
    noise_init(&stain_shape, &r, 9.0);
    for (int y = 0; y < SIZE; y++) {
        for (int x = 0; x < SIZE; x++) {
            /* coverage of the metal by supersampling */
            int cov = 0;
            for (int sy = 0; sy < SS; sy++)
                for (int sx = 0; sx < SS; sx++)
                    cov += metal_at(p, x + (sx + 0.5) / SS, y + (sy + 0.5) / SS);
            double a = (double)cov / (SS * SS);
            double fx = x + 0.5, fy = y + 0.5;

            /* background: matte grey-blue surface, soft light falloff, fine grain */
            double g = 0.30 + 0.05 * noise_at(&coarse, fx, fy) + 0.015 * noise_at(&fine, fx, fy) -
                       0.08 * ((fx - SIZE / 2.0) * (fx - SIZE / 2.0) + (fy - SIZE / 2.0) * (fy - SIZE / 2.0)) /
                           (SIZE * SIZE);
            double bg[3] = {g * 0.95, g, g * 1.08};
            /* soft shadow of the part, offset down-right */
            double sdx = fx - p->cx - 5, sdy = fy - p->cy - 6, sr = sqrt(sdx * sdx + sdy * sdy);
            double shadow = 0.35 * clamp01((p->r_out + 4 - sr) / 8.0) * clamp01((sr - p->r_in + 4) / 8.0);
            for (int c = 0; c < 3; c++) bg[c] *= 1 - shadow;

            /* metal: turning grooves (concentric), angular sheen, bevels at both rims */
            double dx = fx - p->cx, dy = fy - p->cy, rr = sqrt(dx * dx + dy * dy);
            double ang = atan2(dy, dx);
            double groove = 0.04 * sin(rr * 2.1) + 0.025 * sin(rr * 5.3 + 1.0);
            double sheen = 0.16 * cos(2 * (ang - p->phase)) + 0.06 * cos(ang - p->phase * 0.5);
            double bevel = 0;
            if (rr > p->r_out - 6) bevel = -0.18 * (rr - (p->r_out - 6)) / 6;
            if (rr < p->r_in + 5) bevel = 0.14 * ((p->r_in + 5) - rr) / 5;
            double m = (0.60 + groove + sheen + bevel + 0.02 * noise_at(&fine, fx * 1.7, fy * 1.7)) *
                       p->light;
            double metal[3] = {m * 0.97, m, m * 1.03};

            if (p->def == DEF_SCRATCH) {
                double d = scratch_dist(p, fx, fy);
                double w = clamp01(1.2 - d / 1.1); /* ~2 px wide, anti-aliased */
                double halo = clamp01(1.0 - d / 3.5) * 0.5;
                for (int c = 0; c < 3; c++) metal[c] = metal[c] * (1 - w) + 0.25 * w + 0.10 * halo;
            }
            if (p->def == DEF_STAIN) {
                double sdx2 = fx - p->sx, sdy2 = fy - p->sy;
                double d = sqrt(sdx2 * sdx2 + sdy2 * sdy2) / p->sr + 0.35 * noise_at(&stain_shape, fx, fy);
                double s = 0.75 * clamp01((1.0 - d) / 0.25);
                double tint[3] = {0.30, 0.22, 0.10}; /* brown oil */
                for (int c = 0; c < 3; c++) metal[c] = metal[c] * (1 - s) + tint[c] * s;
            }
            for (int c = 0; c < 3; c++) {
                double v = bg[c] * (1 - a) + clamp01(metal[c]) * a;
                /* sensor noise, 1 grey level */
                v += (rng_uniform(&r) - 0.5) * (1.5 / 255.0);
                int iv = (int)lround(clamp01(v) * 255.0);
                rgb[((size_t)y * SIZE + x) * 3 + c] = (uint8_t)iv;
            }
        }
    }
    free(coarse.v);
    free(fine.v);
    free(stain_shape.v);
}

static part base_part(rng_t *r)
{
    part p;
    memset(&p, 0, sizeof p);
    p.cx = SIZE / 2.0 + rng_range(r, -6, 6);
    p.cy = SIZE / 2.0 + rng_range(r, -6, 6);
    p.r_out = 118 + rng_range(r, -1.5, 1.5);
    p.r_in = 46 + rng_range(r, -1, 1);
    p.r_bolt = 84;
    p.bolt_r = 9;
    p.phase = rng_range(r, 0, 2 * M_PI);
    p.light = rng_range(r, 0.94, 1.06);
    return p;
}

static int write(const char *dir, const char *name, const part *p, uint64_t seed)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *rgb = malloc((size_t)SIZE * SIZE * 3);
    if (!rgb) return -1;
    render(p, seed, rgb);
    ad_status st = adi_io_write_png_rgb(path, rgb, SIZE, SIZE);
    free(rgb);
    if (st != AD_OK) {
        fprintf(stderr, "make_samples: %s\n", ad_errmsg());
        return -1;
    }
    printf("%s\n", path);
    return 0;
}

int main(int argc, char **argv)
{
    const char *out = argc > 1 ? argv[1] : "samples";
    if (argc > 2 || (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
        printf("usage: make_samples [OUT_DIR]   (writes OUT_DIR/good/*.png, OUT_DIR/test/*.png)\n");
        return argc > 2 ? 2 : 0;
    }
    char good[4096], test[4096];
    snprintf(good, sizeof good, "%s/good", out);
    snprintf(test, sizeof test, "%s/test", out);
    if (adi_io_mkdirs(good) != AD_OK || adi_io_mkdirs(test) != AD_OK) {
        fprintf(stderr, "make_samples: %s\n", ad_errmsg());
        return 1;
    }
    rng_t r = {20240927};
    int rc = 0;
    for (int i = 1; i <= 7; i++) {
        part p = base_part(&r);
        char name[64];
        if (i <= 5) snprintf(name, sizeof name, "washer_%02d.png", i);
        else snprintf(name, sizeof name, "good_%02d.png", i);
        rc |= write(i <= 5 ? good : test, name, &p, 1000 + (uint64_t)i);
    }
    {
        part p = base_part(&r);
        p.def = DEF_SCRATCH;
        double a0 = p.phase + 0.25; /* between two bolt holes */
        p.ax = p.cx + 60 * cos(a0);
        p.ay = p.cy + 60 * sin(a0);
        p.bx = p.cx + 110 * cos(a0 + 0.95);
        p.by = p.cy + 110 * sin(a0 + 0.95);
        p.bend = 9;
        rc |= write(test, "scratch.png", &p, 2001);
    }
    {
        part p = base_part(&r);
        p.def = DEF_MISSING;
        double a0 = p.phase + M_PI / 4; /* between two bolt holes */
        p.mx = p.cx + (p.r_out + 6) * cos(a0);
        p.my = p.cy + (p.r_out + 6) * sin(a0);
        p.mr = 26;
        rc |= write(test, "missing_piece.png", &p, 2002);
    }
    {
        part p = base_part(&r);
        p.def = DEF_STAIN;
        double a0 = p.phase + 2.3;
        p.sx = p.cx + 70 * cos(a0);
        p.sy = p.cy + 70 * sin(a0);
        p.sr = 17;
        rc |= write(test, "stain.png", &p, 2003);
    }
    return rc ? 1 : 0;
}
