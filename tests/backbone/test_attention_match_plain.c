/* The attention kernels (fused AVX2+FMA, fused AVX-512F, portable OpenBLAS) against the plain reference
 * (one query at a time, double sums, libm exp), on token counts around the kernel's tile sizes
 * (24- and 48-query units, 128-key blocks), query ranges that start and end inside a unit, head
 * widths 64 (every DINOv2), 32 and 48, and scores large enough that the running maximum of the
 * online softmax changes from block to block. Prints, for each case, the largest difference
 * and the query and column where it occurs. Also: the fused kernel writes only its own rows
 * and columns, and a query's result does not depend on how the queries are split into calls
 * (so the thread count cannot change it). */
#include "backbone/backbone.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

static uint64_t rng = 0x243f6a8885a308d3ULL;
static float frand(float lo, float hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(lo + (hi - lo) * ((double)(rng >> 11) / 9007199254740992.0));
}

static const char *impl_name(bb_impl i)
{
    return i == BB_AVX512 ? "avx512" : i == BB_AVX2 ? "avx2" : i == BB_PORTABLE ? "portable" : "plain";
}

#define GUARD 12345.0f

/* One case: T tokens, heads of hd columns (2 heads, head 1 tested), queries [q0, q1). */
static void run_case(bb_impl impl, int T, int hd, int q0, int q1, float amp, int ramp)
{
    const int nh = 2, D = nh * hd, ld = 3 * D + 5; /* odd row stride */
    const float scale = (float)(1.0 / sqrt((double)hd));
    float *qkv = malloc(sizeof(float) * (size_t)T * ld);
    float *got = malloc(sizeof(float) * (size_t)T * D), *ref = malloc(sizeof(float) * (size_t)T * D);
    size_t nw = bb_attention_work(impl, T, hd, q1 - q0), npl = bb_attention_work(BB_PLAIN, T, hd, 1);
    double *work = malloc(sizeof(double) * (nw > npl ? nw : npl));
    for (size_t i = 0; i < (size_t)T * ld; i++) qkv[i] = frand(-amp, amp);
    if (ramp) /* keys grow along j: the maximum moves to every new key block */
        for (int j = 0; j < T; j++)
            for (int d = 0; d < hd; d++) qkv[(size_t)j * ld + D + hd + d] += 0.02f * j / hd * (d % 2 ? 1 : -1) + 0.01f * j / hd;
    for (size_t i = 0; i < (size_t)T * D; i++) got[i] = ref[i] = GUARD;
    const int h = 1;
    bb_attention(impl, qkv + h * hd, qkv + D + h * hd, qkv + 2 * D + h * hd, ld, T, hd, scale, q0,
                 q1, got + h * hd, D, (float *)work);
    bb_attention(BB_PLAIN, qkv + h * hd, qkv + D + h * hd, qkv + 2 * D + h * hd, ld, T, hd, scale,
                 q0, q1, ref + h * hd, D, (float *)work);
    double worst = 0;
    int wi = 0, wd = 0, untouched = 1;
    for (int i = 0; i < T; i++)
        for (int c = 0; c < D; c++) {
            size_t k = (size_t)i * D + c;
            int mine = i >= q0 && i < q1 && c >= h * hd && c < (h + 1) * hd;
            if (!mine) {
                if (got[k] != GUARD) untouched = 0;
                continue;
            }
            double d = fabs((double)got[k] - ref[k]);
            if (!(d <= worst)) {
                worst = d;
                wi = i;
                wd = c - h * hd;
            }
        }
    printf("attention %-8s T %4d hd %2d queries [%4d, %4d) amp %.1f%s: max|diff| %.3g at query %d "
           "col %d (%.7g vs %.7g)\n",
           impl_name(impl), T, hd, q0, q1, amp, ramp ? " ramp" : "", worst, wi, wd,
           got[(size_t)wi * D + h * hd + wd], ref[(size_t)wi * D + h * hd + wd]);
    /* outputs are convex combinations of v (|v| <= amp): float rounding over T terms */
    CHECK(worst <= 2e-6 * amp, "attention %s T %d hd %d: max|diff| %g at query %d col %d",
          impl_name(impl), T, hd, worst, wi, wd);
    CHECK(untouched, "attention %s T %d: wrote outside its rows/columns", impl_name(impl), T);

    if (impl >= BB_AVX2 && q1 - q0 > 7) { /* the same queries in three uneven calls */
        float *split = malloc(sizeof(float) * (size_t)T * D);
        for (size_t i = 0; i < (size_t)T * D; i++) split[i] = GUARD;
        int a = q0 + (q1 - q0) / 3 + 1, b = q0 + 2 * (q1 - q0) / 3 + 2;
        int cuts[4] = {q0, a, b < q1 ? b : q1, q1};
        for (int s = 0; s < 3; s++)
            bb_attention(impl, qkv + h * hd, qkv + D + h * hd, qkv + 2 * D + h * hd, ld, T, hd,
                         scale, cuts[s], cuts[s + 1], split + h * hd, D, (float *)work);
        CHECK(!memcmp(split, got, sizeof(float) * (size_t)T * D),
              "attention %s T %d: result depends on how the queries are split", impl_name(impl), T);
        free(split);
    }
    free(qkv);
    free(got);
    free(ref);
    free(work);
}

int main(void)
{
    bb_impl impls[3] = {BB_PORTABLE, BB_AVX2, BB_AVX512};
    int n = bb_cpu_has_avx512() ? 3 : adi_cpu_has_avx2_fma() ? 2 : 1;
    printf("forward pass uses: %s\n", impl_name(bb_impl_auto()));
    if (n == 1) printf("no AVX2+FMA on this CPU (or AD_NO_AVX2 set): portable path only\n");
    if (n == 2) printf("no AVX-512F on this CPU: the 16-lane kernel is not tested here\n");
    for (int k = 0; k < n; k++) {
        bb_impl im = impls[k];
        run_case(im, 1, 64, 0, 1, 1.0f, 0);
        run_case(im, 5, 64, 0, 5, 1.0f, 0);
        run_case(im, 24, 64, 0, 24, 1.0f, 0);
        run_case(im, 25, 64, 3, 25, 1.0f, 0);
        run_case(im, 129, 64, 0, 129, 2.0f, 0);
        run_case(im, 257, 64, 17, 250, 2.0f, 0);
        run_case(im, 300, 64, 0, 300, 1.0f, 1);
        run_case(im, 1025, 64, 96, 192, 2.0f, 1);
        run_case(im, 200, 32, 1, 199, 2.0f, 0);
        run_case(im, 131, 48, 0, 131, 1.0f, 1); /* hd 48: AVX2 fused, AVX-512 falls back */
        run_case(im, 97, 96, 5, 97, 1.0f, 0);   /* hd 96: three 32-column steps */
        run_case(im, 70, 40, 0, 70, 1.0f, 0);   /* hd 40: the fused path falls back */
    }
    return t_done("attention_match_plain");
}
