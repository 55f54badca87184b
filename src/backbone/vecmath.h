/* Polynomial exp and erf shared by the kernels (kernels.c) and the attention kernel
 * (attention.c): scalar versions for every machine, 8-lane AVX2 + FMA versions on x86.
 * Internal to src/backbone. */
#ifndef AD_BACKBONE_VECMATH_H
#define AD_BACKBONE_VECMATH_H

#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BB_HAVE_X86 1
#endif

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

static inline float bb_exp1(float x)
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

static inline float bb_erf1(float x)
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

#ifdef BB_HAVE_X86
#define BB_AVX2_FN __attribute__((target("avx2,fma")))

BB_AVX2_FN static inline __m256 bb_exp8(__m256 x)
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

BB_AVX2_FN static inline __m256 bb_erf8(__m256 x)
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
BB_AVX2_FN static inline float bb_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

BB_AVX2_FN static inline float bb_hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#endif /* BB_HAVE_X86 */

#endif
