/* The fast kernels (portable scalar and AVX2+FMA) against the plain reference (libm erff/expf,
 * double sums): GELU, softmax, LayerNorm, SwiGLU, and the polynomial exp/erf themselves.
 * Prints, for every kernel and path, the largest difference and the input where it occurs. */
#include "backbone/backbone.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static double urand(void) /* [0, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static float frand(float lo, float hi) { return (float)(lo + (hi - lo) * urand()); }

static const char *impl_name(bb_impl i)
{
    return i == BB_AVX512 ? "avx512" : i == BB_AVX2 ? "avx2" : i == BB_PORTABLE ? "portable" : "plain";
}

/* Difference in units of the float spacing of the reference value; values below 1e-30 count
 * as 0 (silu of a very negative input: libm gives -0, the clamped exp ~1e-36). */
static double ulps_off(float got, float ref)
{
    double sp = nextafterf(fabsf(ref), INFINITY) - fabsf(ref);
    return fabs((double)got - ref) / (sp > 1e-30 ? sp : 1e-30);
}

static void test_exp_erf(void)
{
    double worst_exp = 0, at_exp = 0, worst_erf = 0, at_erf = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + 175.0f * (float)i / 200000;
        double r = fabs((double)bb_exp_fast(x) / exp((double)x) - 1);
        if (r > worst_exp) {
            worst_exp = r;
            at_exp = x;
        }
        float z = -6.0f + 12.0f * (float)i / 200000;
        double e = fabs((double)bb_erf_fast(z) - erf((double)z));
        if (e > worst_erf) {
            worst_erf = e;
            at_erf = z;
        }
    }
    printf("exp_fast vs exp:  max rel diff %.3g at x = %.5g\n", worst_exp, at_exp);
    printf("erf_fast vs erf:  max abs diff %.3g at x = %.5g\n", worst_erf, at_erf);
    CHECK(worst_exp <= 4e-7, "exp_fast relative error %g at %g", worst_exp, at_exp);
    CHECK(worst_erf <= 5e-7, "erf_fast absolute error %g at %g", worst_erf, at_erf);
    CHECK(bb_exp_fast(-200.0f) >= 0 && bb_exp_fast(-200.0f) < 1e-37f, "exp(-200) = %g",
          bb_exp_fast(-200.0f));
    CHECK(isfinite(bb_exp_fast(200.0f)), "exp(200) must saturate, got %g", bb_exp_fast(200.0f));
    CHECK(bb_erf_fast(30.0f) == 1.0f && bb_erf_fast(-30.0f) == -1.0f, "erf tails");
}

static void test_gelu(bb_impl impl)
{
    enum { N = 100003 }; /* odd: exercises the vector tails */
    float *x = malloc(N * sizeof *x), *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    for (int i = 0; i < N; i++)
        x[i] = i < 8 ? (float[]){0.0f, -0.0f, 1e-30f, -1e-30f, 30.0f, -30.0f, 6.0f, -6.0f}[i]
                     : frand(-10, 10) * (float)(i % 3 ? 1 : 0.01);
    memcpy(a, x, N * sizeof *x);
    memcpy(b, x, N * sizeof *x);
    bb_gelu(impl, a, N);
    bb_gelu(BB_PLAIN, b, N);
    double worst = 0, worst_abs = 0;
    int at = 0;
    for (int i = 0; i < N; i++) {
        /* erf is off by <= 4e-7 absolute, so GELU by <= 2e-7 |x| plus rounding */
        double tol =
            2.5e-7 * fabs(x[i]) + 2 * (nextafterf(fabsf(b[i]), INFINITY) - fabsf(b[i])) + 1e-30;
        double d = fabs((double)a[i] - b[i]);
        if (d / tol > worst) {
            worst = d / tol;
            at = i;
        }
        if (d > worst_abs) worst_abs = d;
    }
    printf("gelu %-8s vs plain: max abs diff %.3g; worst at x = %.6g (%.3g vs %.3g, %.2f of "
           "tolerance)\n",
           impl_name(impl), worst_abs, x[at], a[at], b[at], worst);
    CHECK(worst <= 1.0, "gelu %s: x = %g gives %g, plain %g", impl_name(impl), x[at], a[at], b[at]);
    free(x);
    free(a);
    free(b);
}

static void test_softmax(bb_impl impl)
{
    static const int lens[] = {1025, 1029, 7, 1, 2305};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        int n = lens[k];
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        for (int i = 0; i < n; i++) a[i] = b[i] = frand(-30, 30) * (k == 0 ? 0.1f : 1.0f);
        if (n > 3) a[3] = b[3] = -1e30f; /* a score that must vanish, not break the row */
        bb_softmax_row(impl, a, n);
        bb_softmax_row(BB_PLAIN, b, n);
        double worst = 0, sum = 0, worst_rel = 0;
        int at = 0;
        for (int i = 0; i < n; i++) {
            double d = fabs((double)a[i] - b[i]);
            if (d > worst) {
                worst = d;
                at = i;
            }
            if (b[i] > 1e-30f && d / b[i] > worst_rel) worst_rel = d / b[i];
            sum += a[i];
        }
        printf("softmax %-8s n=%-5d vs plain: max abs diff %.3g at %d, max rel %.3g, row sum - 1 = "
               "%.2g\n",
               impl_name(impl), n, worst, at, worst_rel, sum - 1);
        CHECK(worst <= 1e-6 && worst_rel <= 2e-6, "softmax %s n=%d: abs %g rel %g", impl_name(impl),
              n, worst, worst_rel);
        CHECK(fabs(sum - 1) <= 1e-5, "softmax %s n=%d: sum %g", impl_name(impl), n, sum);
        free(a);
        free(b);
    }
}

static void test_layernorm(bb_impl impl)
{
    static const int dims[] = {384, 1536, 100, 8, 3};
    for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
        int d = dims[k];
        float *x = malloc(d * sizeof *x), *w = malloc(d * sizeof *w), *bb = malloc(d * sizeof *bb);
        float *a = malloc(d * sizeof *a), *b = malloc(d * sizeof *b);
        double worst = 0;
        int at = 0;
        for (int rep = 0; rep < 50; rep++) {
            float off = rep % 2 ? 40.0f : 0.0f; /* a large mean: the two-pass variance must hold */
            for (int i = 0; i < d; i++) {
                x[i] = off + frand(-3, 3);
                w[i] = frand(0.5f, 2);
                bb[i] = frand(-1, 1);
            }
            bb_layernorm_row(impl, x, a, d, w, bb, 1e-6f);
            bb_layernorm_row(BB_PLAIN, x, b, d, w, bb, 1e-6f);
            for (int i = 0; i < d; i++) {
                double e = fabs((double)a[i] - b[i]);
                if (e > worst) {
                    worst = e;
                    at = i;
                }
            }
        }
        /* in place (y == x) must give the same as out of place */
        memcpy(b, x, d * sizeof *x);
        bb_layernorm_row(impl, x, a, d, w, bb, 1e-6f);
        bb_layernorm_row(impl, b, b, d, w, bb, 1e-6f);
        printf("layernorm %-8s d=%-4d vs plain: max abs diff %.3g at channel %d; in place %s\n",
               impl_name(impl), d, worst, at,
               memcmp(a, b, d * sizeof *a) ? "DIFFERS" : "identical");
        CHECK(worst <= 2e-5, "layernorm %s d=%d: %g", impl_name(impl), d, worst);
        CHECK(!memcmp(a, b, d * sizeof *a), "layernorm %s d=%d: in-place result differs",
              impl_name(impl), d);
        free(x);
        free(w);
        free(bb);
        free(a);
        free(b);
    }
}

static void test_swiglu(bb_impl impl)
{
    enum { N = 50001 };
    float *x1 = malloc(N * sizeof(float)), *x2 = malloc(N * sizeof(float));
    float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) {
        x1[i] = frand(-20, 20);
        x2[i] = frand(-3, 3);
    }
    x1[0] = -200; /* exp(200) saturates: silu must still be ~0, not NaN */
    x1[1] = 200;
    bb_swiglu(impl, x1, x2, a, N);
    bb_swiglu(BB_PLAIN, x1, x2, b, N);
    double worst = 0;
    int at = 0;
    for (int i = 0; i < N; i++) {
        double u = ulps_off(a[i], b[i]);
        if (!(u <= worst)) {
            worst = u;
            at = i;
        }
    }
    printf("swiglu %-8s vs plain: max %.1f ulp at a = %.5g, b = %.5g (%.7g vs %.7g)\n",
           impl_name(impl), worst, x1[at], x2[at], a[at], b[at]);
    CHECK(worst <= 8, "swiglu %s: %g ulp", impl_name(impl), worst);
    /* out == a in place */
    memcpy(b, x1, N * sizeof(float));
    bb_swiglu(impl, b, x2, b, N);
    CHECK(!memcmp(a, b, N * sizeof(float)), "swiglu %s: in place differs", impl_name(impl));
    free(x1);
    free(x2);
    free(a);
    free(b);
}

/* gelu(x + bias) in one pass equals the bias added first, then the same path's GELU */
static void test_gelu_bias(bb_impl impl)
{
    enum { N = 1541 };
    float *x = malloc(N * sizeof *x), *bias = malloc(N * sizeof *bias), *a = malloc(N * sizeof *a),
          *b = malloc(N * sizeof *b), *p = malloc(N * sizeof *p);
    for (int i = 0; i < N; i++) {
        x[i] = frand(-6, 6);
        bias[i] = frand(-1, 1);
        a[i] = x[i];
        b[i] = p[i] = x[i] + bias[i];
    }
    bb_gelu_bias(impl, a, bias, N);
    bb_gelu(impl, b, N);
    bb_gelu(BB_PLAIN, p, N);
    double worst = 0;
    int at = 0;
    for (int i = 0; i < N; i++) {
        double d = fabs((double)a[i] - p[i]);
        if (d > worst) {
            worst = d;
            at = i;
        }
    }
    printf("gelu_bias %-8s vs plain: max|diff| %.3g at x + bias = %.5g\n", impl_name(impl), worst,
           x[at] + bias[at]);
    CHECK(!memcmp(a, b, N * sizeof(float)), "gelu_bias %s differs from bias + gelu",
          impl_name(impl));
    CHECK(worst <= 2e-6, "gelu_bias %s: %g", impl_name(impl), worst);
    free(x);
    free(bias);
    free(a);
    free(b);
    free(p);
}

int main(void)
{
    printf("forward pass uses: %s\n", impl_name(bb_impl_auto()));
    test_exp_erf();
    bb_impl impls[2] = {BB_PORTABLE, BB_AVX2};
    int n = adi_cpu_has_avx2_fma() ? 2 : 1;
    if (n == 1) printf("no AVX2+FMA on this CPU (or AD_NO_AVX2 set): portable path only\n");
    for (int k = 0; k < n; k++) {
        test_gelu(impls[k]);
        test_gelu_bias(impls[k]);
        test_softmax(impls[k]);
        test_layernorm(impls[k]);
        test_swiglu(impls[k]);
    }
    return t_done("kernels_match_plain");
}
