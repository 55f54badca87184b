/* Element-wise and row kernels of the transformer: LayerNorm, softmax, GELU, SwiGLU.
 * Three implementations with one signature: PLAIN (libm, double sums: the reference the tests
 * compare against), PORTABLE (scalar, polynomial exp/erf) and AVX2+FMA (same polynomials, 8
 * lanes). Every reduction runs in a fixed order inside one row, so results never depend on
 * how rows are spread over threads. */
#include "backbone/backbone.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BB_HAVE_X86 1
#endif

bb_impl bb_impl_auto(void) { return adi_cpu_has_avx2_fma() ? BB_AVX2 : BB_PORTABLE; }

/* ------------------------------------------------------------------------------------------ */
/* Polynomial exp and erf                                                                      */
/* ------------------------------------------------------------------------------------------ */
/* exp: x = n ln2 + r, |r| <= ln2/2, with ln2 split in two (Cody-Waite) so n*ln2 is exact; e^r
 * by its Taylor series to degree 7 (truncation r^8/8! < 6e-9 relative); 2^n through the
 * exponent bits. Inputs are clamped to [-87, 88] so 2^n stays a normal float: softmax and
 * SiLU only need e^x to vanish or saturate there. */
#define EXP_LO (-87.0f)
#define EXP_HI 88.0f
#define LOG2E 1.44269504089f
#define LN2_HI 0.693359375f      /* 355/512: few mantissa bits, so n*LN2_HI is exact */
#define LN2_LO (-2.12194440e-4f) /* ln 2 - LN2_HI */
#define ROUND_MAGIC 12582912.0f  /* 1.5 * 2^23: adding and subtracting rounds to integer */

static const float exp_c[8] = {1.0f,      1.0f,       1.0f / 2,   1.0f / 6,
                               1.0f / 24, 1.0f / 120, 1.0f / 720, 1.0f / 5040};

/* erf(x) ~ x P(x^2) / Q(x^2) on |x| <= 4 (erf(4) rounds to 1 in float32), result clamped to
 * [-1, 1]. Coefficients: our own weighted least-squares rational fit of erf on [0, 4]
 * (bench/erf_fit_backbone.py); max error 3.8e-7 absolute in float32 evaluation. */
#define ERF_CLAMP 4.0f
static const float erf_p[6] = {1.128379168e+00f, 1.919726094e-01f, 5.523357629e-02f,
                               4.136336535e-03f, 3.921316441e-04f, 6.085356848e-06f};
static const float erf_q[7] = {1.000000000e+00f, 5.034646587e-01f, 1.167707780e-01f,
                               1.605316859e-02f, 1.377919602e-03f, 6.745355645e-05f,
                               2.212181074e-07f};

static inline float exp1(float x)
{
    x = x > EXP_LO ? x : EXP_LO; /* also maps NaN to the low end: never propagates garbage */
    x = x < EXP_HI ? x : EXP_HI;
    float n = (x * LOG2E + ROUND_MAGIC) - ROUND_MAGIC;
    float r = x - n * LN2_HI;
    r = r - n * LN2_LO;
    float p = exp_c[7];
    for (int i = 6; i >= 0; i--) p = p * r + exp_c[i];
    union {
        uint32_t u;
        float f;
    } s;
    s.u = (uint32_t)((int32_t)n + 127) << 23;
    return p * s.f;
}

static inline float erf1(float x)
{
    x = x < ERF_CLAMP ? x : ERF_CLAMP;
    x = x > -ERF_CLAMP ? x : -ERF_CLAMP;
    float z = x * x;
    float p = erf_p[5];
    for (int i = 4; i >= 0; i--) p = p * z + erf_p[i];
    float q = erf_q[6];
    for (int i = 5; i >= 0; i--) q = q * z + erf_q[i];
    float e = x * p / q;
    e = e < 1.0f ? e : 1.0f;
    return e > -1.0f ? e : -1.0f;
}

float bb_exp_fast(float x) { return exp1(x); }
float bb_erf_fast(float x) { return erf1(x); }

#ifdef BB_HAVE_X86
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256 exp8(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(EXP_LO));
    x = _mm256_min_ps(x, _mm256_set1_ps(EXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_set1_ps(exp_c[7]);
    for (int i = 6; i >= 0; i--) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(exp_c[i]));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

AVX2 static inline __m256 erf8(__m256 x)
{
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(ERF_CLAMP)), _mm256_set1_ps(-ERF_CLAMP));
    __m256 z = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(erf_p[5]);
    for (int i = 4; i >= 0; i--) p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(erf_p[i]));
    __m256 q = _mm256_set1_ps(erf_q[6]);
    for (int i = 5; i >= 0; i--) q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(erf_q[i]));
    __m256 e = _mm256_div_ps(_mm256_mul_ps(x, p), q);
    return _mm256_max_ps(_mm256_min_ps(e, _mm256_set1_ps(1.0f)), _mm256_set1_ps(-1.0f));
}

/* Horizontal sum in a fixed lane order. */
AVX2 static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline float hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static void layernorm_avx2(const float *x, float *y, int d, const float *w, const float *b,
                                float eps)
{
    int i = 0;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; i + 16 <= d; i += 16) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
    }
    for (; i + 8 <= d; i += 8) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
    float sum = hsum8(_mm256_add_ps(a0, a1));
    for (; i < d; i++) sum += x[i];
    float mean = sum / (float)d;

    __m256 m = _mm256_set1_ps(mean);
    a0 = _mm256_setzero_ps();
    a1 = _mm256_setzero_ps();
    for (i = 0; i + 16 <= d; i += 16) {
        __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), m);
        __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m);
        a0 = _mm256_fmadd_ps(t0, t0, a0);
        a1 = _mm256_fmadd_ps(t1, t1, a1);
    }
    for (; i + 8 <= d; i += 8) {
        __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), m);
        a0 = _mm256_fmadd_ps(t0, t0, a0);
    }
    float ss = hsum8(_mm256_add_ps(a0, a1));
    for (; i < d; i++) ss += (x[i] - mean) * (x[i] - mean);
    float rstd = 1.0f / sqrtf(ss / (float)d + eps);

    __m256 r = _mm256_set1_ps(rstd);
    for (i = 0; i + 8 <= d; i += 8) {
        __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), r);
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(t, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
    }
    for (; i < d; i++) y[i] = (x[i] - mean) * rstd * w[i] + b[i];
}

AVX2 static void softmax_avx2(float *s, int n)
{
    int i = 0;
    __m256 mx = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + i));
    float m = hmax8(mx);
    for (; i < n; i++) m = s[i] > m ? s[i] : m;

    __m256 mv = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), mv));
        _mm256_storeu_ps(s + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum8(acc);
    for (; i < n; i++) {
        s[i] = exp1(s[i] - m);
        sum += s[i];
    }
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(s + i, _mm256_mul_ps(_mm256_loadu_ps(s + i), inv));
    float invs = 1.0f / sum;
    for (; i < n; i++) s[i] *= invs;
}

AVX2 static void gelu_avx2(float *x, size_t n)
{
    size_t i = 0;
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    const __m256 rs2 = _mm256_set1_ps(0.70710678118654752f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 e = erf8(_mm256_mul_ps(v, rs2));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erf1(x[i] * 0.70710678118654752f));
}

AVX2 static void swiglu_avx2(const float *a, const float *b, float *out, size_t n)
{
    size_t i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(a + i);
        __m256 den = _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, v)));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(v, den), _mm256_loadu_ps(b + i)));
    }
    for (; i < n; i++) out[i] = a[i] / (1.0f + exp1(-a[i])) * b[i];
}
#endif /* BB_HAVE_X86 */

/* ------------------------------------------------------------------------------------------ */
/* Dispatchers with the plain and portable paths                                               */
/* ------------------------------------------------------------------------------------------ */
void bb_layernorm_row(bb_impl impl, const float *x, float *y, int d, const float *w, const float *b,
                      float eps)
{
#ifdef BB_HAVE_X86
    if (impl == BB_AVX2 && adi_cpu_has_avx2_fma()) {
        layernorm_avx2(x, y, d, w, b, eps);
        return;
    }
#endif
    if (impl == BB_PLAIN) {
        double s = 0, ss = 0;
        for (int i = 0; i < d; i++) s += x[i];
        double mean = s / d;
        for (int i = 0; i < d; i++) ss += (x[i] - mean) * (x[i] - mean);
        double rstd = 1.0 / sqrt(ss / d + eps);
        for (int i = 0; i < d; i++) y[i] = (float)((x[i] - mean) * rstd * w[i] + b[i]);
        return;
    }
    /* portable: 8 independent partial sums keep the dependency chain short */
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= d; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k];
    float sum = 0;
    for (int k = 0; k < 8; k++) sum += acc[k];
    for (; i < d; i++) sum += x[i];
    float mean = sum / (float)d;
    memset(acc, 0, sizeof acc);
    for (i = 0; i + 8 <= d; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += (x[i + k] - mean) * (x[i + k] - mean);
    float ss = 0;
    for (int k = 0; k < 8; k++) ss += acc[k];
    for (; i < d; i++) ss += (x[i] - mean) * (x[i] - mean);
    float rstd = 1.0f / sqrtf(ss / (float)d + eps);
    for (i = 0; i < d; i++) y[i] = (x[i] - mean) * rstd * w[i] + b[i];
}

void bb_softmax_row(bb_impl impl, float *s, int n)
{
#ifdef BB_HAVE_X86
    if (impl == BB_AVX2 && adi_cpu_has_avx2_fma()) {
        softmax_avx2(s, n);
        return;
    }
#endif
    float m = -INFINITY;
    for (int i = 0; i < n; i++) m = s[i] > m ? s[i] : m;
    if (impl == BB_PLAIN) {
        double sum = 0;
        for (int i = 0; i < n; i++) {
            s[i] = expf(s[i] - m);
            sum += s[i];
        }
        for (int i = 0; i < n; i++) s[i] = (float)(s[i] / sum);
        return;
    }
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            s[i + k] = exp1(s[i + k] - m);
            acc[k] += s[i + k];
        }
    float sum = 0;
    for (int k = 0; k < 8; k++) sum += acc[k];
    for (; i < n; i++) {
        s[i] = exp1(s[i] - m);
        sum += s[i];
    }
    float inv = 1.0f / sum;
    for (i = 0; i < n; i++) s[i] *= inv;
}

void bb_gelu(bb_impl impl, float *x, size_t n)
{
#ifdef BB_HAVE_X86
    if (impl == BB_AVX2 && adi_cpu_has_avx2_fma()) {
        gelu_avx2(x, n);
        return;
    }
#endif
    if (impl == BB_PLAIN) {
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
        return;
    }
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erf1(x[i] * (float)M_SQRT1_2));
}

void bb_swiglu(bb_impl impl, const float *a, const float *b, float *out, size_t n)
{
#ifdef BB_HAVE_X86
    if (impl == BB_AVX2 && adi_cpu_has_avx2_fma()) {
        swiglu_avx2(a, b, out, n);
        return;
    }
#endif
    if (impl == BB_PLAIN) {
        for (size_t i = 0; i < n; i++) out[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = a[i] / (1.0f + exp1(-a[i])) * b[i];
}
