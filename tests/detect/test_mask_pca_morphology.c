/* The mask from first-PC scores (docs/design.md, "Background mask"): strict "> 10", the centre-crop flip test (border
 * 0.2, flip when at most 35 % of the crop is kept) and 2-D 3x3 dilation followed by a 3x3
 * closing with out-of-grid neighbours ignored; each case is worked out by hand below. */
#include "anomalydino.h"
#include "detect/detect.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void rect(double *pc, int gw, int r0, int r1, int c0, int c1, double v)
{
    for (int r = r0; r <= r1; r++)
        for (int c = c0; c <= c1; c++) pc[r * gw + c] = v;
}

static void expect_rects(uint8_t *want, int gh, int gw, const int (*rects)[4], int n)
{
    memset(want, 0, (size_t)gh * gw);
    for (int i = 0; i < n; i++)
        for (int r = rects[i][0]; r <= rects[i][1]; r++)
            for (int c = rects[i][2]; c <= rects[i][3]; c++) want[r * gw + c] = 1;
}

static void compare(const char *name, const uint8_t *got, const uint8_t *want, int gh, int gw)
{
    int diff = 0, first = -1;
    for (int i = 0; i < gh * gw; i++)
        if (got[i] != want[i]) {
            diff++;
            if (first < 0) first = i;
        }
    printf("%s: %d of %d cells differ%s", name, diff, gh * gw, diff ? "" : "\n");
    if (diff) printf(", first at (%d, %d): got %d want %d\n", first / gw, first % gw, got[first], want[first]);
    CHECK(diff == 0, "%s: %d cells differ", name, diff);
}

int main(void)
{
    enum { MAXN = 400 };
    double pc[MAXN];
    uint8_t got[MAXN], want[MAXN];

    /* 12 x 12, crop rows/cols [2, 9) = 49 cells, flip when <= 17.15 are kept.
     * A 6 x 6 object (rows/cols 3..8, 36 crop cells: no flip) with a hole at (5, 5), plus one
     * lone foreground cell in the corner (0, 11).
     * dilate: object -> 2..9 (hole filled), corner -> rows 0..1, cols 10..11;
     * closing, dilate: 1..10 and rows 0..2 x cols 9..11; erode: 2..9 and rows 0..1 x cols 10..11
     * (the corner keeps its 2 x 2 because cells beyond the grid do not erode). */
    {
        memset(pc, 0, sizeof pc);
        rect(pc, 12, 3, 8, 3, 8, 20);
        pc[5 * 12 + 5] = 0;
        pc[0 * 12 + 11] = 20;
        CHECK_OK(dt_mask_from_pc(pc, 12, 12, got));
        const int r[2][4] = {{2, 9, 2, 9}, {0, 1, 10, 11}};
        expect_rects(want, 12, 12, r, 2);
        compare("object, hole and corner", got, want, 12, 12);
    }
    /* The same object touching the border on every side grows to the whole grid: closing never
     * erodes from outside the grid. 9 x 9, object rows/cols 2..6, crop [1, 7) holds 25 > 12.6. */
    {
        memset(pc, 0, sizeof pc);
        rect(pc, 9, 2, 6, 2, 6, 20);
        CHECK_OK(dt_mask_from_pc(pc, 9, 9, got));
        const int r[1][4] = {{0, 8, 0, 8}};
        expect_rects(want, 9, 9, r, 1);
        compare("object near every border", got, want, 9, 9);
    }
    /* Flip: a 4 x 4 object (16 <= 17.15 of the crop) is "too small", so the mask becomes
     * -pc > 10: here the negative background strip in row 11 (cols 0..11), dilated to rows 10..11,
     * closed: dilate to 9..11, erode back to 10..11. */
    {
        memset(pc, 0, sizeof pc);
        rect(pc, 12, 4, 7, 4, 7, 20);
        rect(pc, 12, 11, 11, 0, 11, -20);
        CHECK_OK(dt_mask_from_pc(pc, 12, 12, got));
        const int r[1][4] = {{10, 11, 0, 11}};
        expect_rects(want, 12, 12, r, 1);
        compare("small object flips to the negative side", got, want, 12, 12);
    }
    /* The threshold is strict: 10 itself is background (and nothing is below -10: empty). */
    {
        memset(pc, 0, sizeof pc);
        rect(pc, 12, 3, 8, 3, 8, 10.0);
        CHECK_OK(dt_mask_from_pc(pc, 12, 12, got));
        memset(want, 0, sizeof want);
        compare("score exactly 10 is not foreground", got, want, 12, 12);
        rect(pc, 12, 3, 8, 3, 8, 10.000001);
        CHECK_OK(dt_mask_from_pc(pc, 12, 12, got));
        const int r[1][4] = {{2, 9, 2, 9}};
        expect_rects(want, 12, 12, r, 1);
        compare("score just above 10 is foreground", got, want, 12, 12);
    }
    /* The flip boundary, on a rectangle: 10 x 17, crop rows [2, 8) (10*0.2 = 2, 10*0.8 = 8) and
     * cols [3, 13) (17*0.2 = 3.4, 17*0.8 = 13.6), 60 cells, flip iff kept <= 21.
     * Positive cells fill the crop in raster order; a negative strip sits in row 0. */
    for (int count = 21; count <= 22; count++) {
        memset(pc, 0, sizeof pc);
        int placed = 0;
        for (int r = 2; r < 8 && placed < count; r++)
            for (int c = 3; c < 13 && placed < count; c++, placed++) pc[r * 17 + c] = 20;
        rect(pc, 17, 0, 0, 0, 16, -20);
        CHECK_OK(dt_mask_from_pc(pc, 10, 17, got));
        int flipped = got[0] == 1 && got[7 * 17 + 16] == 0;
        int kept_object = got[3 * 17 + 5] == 1;
        printf("10 x 17 with %d of 60 crop cells above 10: %s\n", count,
               flipped ? "flipped" : "not flipped");
        CHECK(flipped == (count == 21), "count %d: flipped %d", count, flipped);
        CHECK(kept_object == (count == 22), "count %d: object kept %d", count, kept_object);
    }
    /* Dilation and erosion on their own: a plus shape and a border cell. */
    {
        uint8_t in[25] = {0}, out[25];
        in[12] = 1; /* centre of 5 x 5 */
        dt_dilate3(in, 5, 5, out);
        const int r[1][4] = {{1, 3, 1, 3}};
        expect_rects(want, 5, 5, r, 1);
        compare("dilate one cell", out, want, 5, 5);
        uint8_t full[25];
        memset(full, 1, sizeof full);
        full[0] = 0; /* a hole in the corner erodes its 2 x 2 neighbourhood only */
        dt_erode3(full, 5, 5, out);
        memset(want, 1, 25);
        want[0] = want[1] = want[5] = want[6] = 0;
        compare("erode around a corner hole", out, want, 5, 5);
    }
    return t_done("test_mask_pca_morphology");
}
