/* Element-wise and row kernels of the transformer: LayerNorm, softmax, GELU, SwiGLU.
 * Three implementations with one signature: PLAIN (libm, double sums: the reference the tests
 * compare against), PORTABLE (scalar, polynomial exp/erf) and AVX2+FMA (same polynomials, 8
 * lanes). Every reduction runs in a fixed order inside one row, so results never depend on
 * how rows are spread over threads. */
#include "backbone/backbone.h"

#include "backbone/vecmath.h"

#include <math.h>
#include <string.h>

bb_impl bb_impl_auto(void)
{
    return bb_cpu_has_avx512() ? BB_AVX512 : adi_cpu_has_avx2_fma() ? BB_AVX2 : BB_PORTABLE;
}

float bb_exp_fast(float x) { return bb_exp1(x); }
float bb_erf_fast(float x) { return bb_erf1(x); }

#ifdef BB_HAVE_X86
#define AVX2 BB_AVX2_FN

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
    float sum = bb_hsum8(_mm256_add_ps(a0, a1));
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
    float ss = bb_hsum8(_mm256_add_ps(a0, a1));
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
    float m = bb_hmax8(mx);
    for (; i < n; i++) m = s[i] > m ? s[i] : m;

    __m256 mv = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = bb_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), mv));
        _mm256_storeu_ps(s + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = bb_hsum8(acc);
    for (; i < n; i++) {
        s[i] = bb_exp1(s[i] - m);
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
        __m256 e = bb_erf8(_mm256_mul_ps(v, rs2));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + bb_erf1(x[i] * 0.70710678118654752f));
}

AVX2 static void gelu_bias_avx2(float *x, const float *bias, size_t n)
{
    size_t i = 0;
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    const __m256 rs2 = _mm256_set1_ps(0.70710678118654752f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(bias + i));
        __m256 e = bb_erf8(_mm256_mul_ps(v, rs2));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) {
        float v = x[i] + bias[i];
        x[i] = 0.5f * v * (1.0f + bb_erf1(v * 0.70710678118654752f));
    }
}

AVX2 static void swiglu_avx2(const float *a, const float *b, float *out, size_t n)
{
    size_t i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(a + i);
        __m256 den = _mm256_add_ps(one, bb_exp8(_mm256_sub_ps(zero, v)));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(v, den), _mm256_loadu_ps(b + i)));
    }
    for (; i < n; i++) out[i] = a[i] / (1.0f + bb_exp1(-a[i])) * b[i];
}
#endif /* BB_HAVE_X86 */

/* ------------------------------------------------------------------------------------------ */
/* Dispatchers with the plain and portable paths                                               */
/* ------------------------------------------------------------------------------------------ */
void bb_layernorm_row(bb_impl impl, const float *x, float *y, int d, const float *w, const float *b,
                      float eps)
{
#ifdef BB_HAVE_X86
    if (impl >= BB_AVX2 && adi_cpu_has_avx2_fma()) {
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
    if (impl >= BB_AVX2 && adi_cpu_has_avx2_fma()) {
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
            s[i + k] = bb_exp1(s[i + k] - m);
            acc[k] += s[i + k];
        }
    float sum = 0;
    for (int k = 0; k < 8; k++) sum += acc[k];
    for (; i < n; i++) {
        s[i] = bb_exp1(s[i] - m);
        sum += s[i];
    }
    float inv = 1.0f / sum;
    for (i = 0; i < n; i++) s[i] *= inv;
}

void bb_gelu(bb_impl impl, float *x, size_t n)
{
#ifdef BB_HAVE_X86
    if (impl >= BB_AVX2 && adi_cpu_has_avx2_fma()) {
        gelu_avx2(x, n);
        return;
    }
#endif
    if (impl == BB_PLAIN) {
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
        return;
    }
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + bb_erf1(x[i] * (float)M_SQRT1_2));
}

void bb_gelu_bias(bb_impl impl, float *x, const float *bias, size_t n)
{
#ifdef BB_HAVE_X86
    if (impl >= BB_AVX2 && adi_cpu_has_avx2_fma()) {
        gelu_bias_avx2(x, bias, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) x[i] += bias[i];
    bb_gelu(impl, x, n);
}

void bb_swiglu(bb_impl impl, const float *a, const float *b, float *out, size_t n)
{
#ifdef BB_HAVE_X86
    if (impl >= BB_AVX2 && adi_cpu_has_avx2_fma()) {
        swiglu_avx2(a, b, out, n);
        return;
    }
#endif
    if (impl == BB_PLAIN) {
        for (size_t i = 0; i < n; i++) out[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = a[i] / (1.0f + bb_exp1(-a[i])) * b[i];
}
