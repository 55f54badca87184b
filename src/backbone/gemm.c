/* C = A B^T (+ bias) in AVX-512F, for the linear layers of a block on CPUs where AVX-512 runs
 * at full width (BB_AVX512). OpenBLAS 0.3.21 picks its AVX2 (Haswell) kernels on CPUs it does
 * not know, such as AMD Zen 5, and which kernels it uses can only be changed process-wide
 * (OPENBLAS_CORETYPE), which the library must not do; so on those CPUs the block's four
 * products run here.
 *
 * Blocking: rows of A in blocks of GEMM_MB; for each block, the columns in panels of 32 (two
 * 16-lane vectors): the panel's 32 rows of B are packed once, transposed to [K][32] (the only
 * copy; 32 K floats of per-thread scratch), then 12 x 32 micro-kernel steps run over the whole
 * K, A broadcast from its rows as they lie. Every C element is one FMA chain over k = 0..K-1 in
 * order, plus the bias at the end (and the exact-erf GELU when asked, fc1's epilogue, fused
 * into the store: no pass over the hidden rows): the result does not depend on M, the blocking or the
 * thread, and a short last panel or row block uses masks instead of padding C. */
#include "backbone/backbone.h"
#include "backbone/vecmath.h"

#ifdef BB_HAVE_X86
#define GEMM_MB 192 /* rows of A per block: 192 x K floats stay in L2 while the panels pass */
#define MR 12
#define NR 32
#define AVX512 __attribute__((target("avx512f,fma")))

/* the exact-erf GELU of kernels.c (same rational erf, same operation order) in 16 lanes */
AVX512 static inline __m512 gelu16(__m512 v)
{
    __m512 x = _mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f));
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(ERF_CLAMP)), _mm512_set1_ps(-ERF_CLAMP));
    __m512 z = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(erf_p[5]);
    for (int i = 4; i >= 0; i--) p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(erf_p[i]));
    __m512 q = _mm512_set1_ps(erf_q[6]);
    for (int i = 5; i >= 0; i--) q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(erf_q[i]));
    __m512 e = _mm512_div_ps(_mm512_mul_ps(x, p), q);
    e = _mm512_max_ps(_mm512_min_ps(e, _mm512_set1_ps(1.0f)), _mm512_set1_ps(-1.0f));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v),
                         _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

AVX512 static void pack_panel(const float *B, int ldb, int nn, int K, float *bp)
{
    for (int j = 0; j < NR; j++) {
        if (j < nn) {
            const float *src = B + (size_t)j * ldb;
            for (int k = 0; k < K; k++) bp[(size_t)k * NR + j] = src[k];
        } else {
            for (int k = 0; k < K; k++) bp[(size_t)k * NR + j] = 0.0f;
        }
    }
}

AVX512 static void micro(int K, const float *A, int lda, int nr, const float *bp, float *C,
                         int ldc, __mmask16 k0, __mmask16 k1, const float *bias, int gelu)
{
    const float *a[MR];
    for (int i = 0; i < MR; i++) a[i] = A + (size_t)(i < nr ? i : nr - 1) * lda;
    __m512 c[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++, bp += NR) {
        __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 x = _mm512_set1_ps(a[i][k]);
            c[i][0] = _mm512_fmadd_ps(x, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(x, b1, c[i][1]);
        }
    }
    __m512 bb0 = _mm512_setzero_ps(), bb1 = _mm512_setzero_ps();
    if (bias) {
        bb0 = _mm512_maskz_loadu_ps(k0, bias);
        bb1 = _mm512_maskz_loadu_ps(k1, bias + 16);
    }
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        if (i >= nr) break;
        float *o = C + (size_t)i * ldc;
        __m512 x0 = c[i][0], x1 = c[i][1];
        if (bias) {
            x0 = _mm512_add_ps(x0, bb0);
            x1 = _mm512_add_ps(x1, bb1);
        }
        if (gelu) {
            x0 = gelu16(x0);
            x1 = gelu16(x1);
        }
        _mm512_mask_storeu_ps(o, k0, x0);
        _mm512_mask_storeu_ps(o + 16, k1, x1);
    }
}

AVX512 static void gemm_avx512(int M, int N, int K, const float *A, int lda, const float *B,
                               int ldb, const float *bias, int gelu, float *C, int ldc,
                               float *pack)
{
    for (int m0 = 0; m0 < M; m0 += GEMM_MB) {
        int mb = M - m0 < GEMM_MB ? M - m0 : GEMM_MB;
        for (int n0 = 0; n0 < N; n0 += NR) {
            int nn = N - n0 < NR ? N - n0 : NR;
            __mmask16 k0 = (__mmask16)(nn >= 16 ? 0xFFFF : (1u << nn) - 1);
            __mmask16 k1 = (__mmask16)(nn >= 32 ? 0xFFFF : nn > 16 ? (1u << (nn - 16)) - 1 : 0);
            pack_panel(B + (size_t)n0 * ldb, ldb, nn, K, pack);
            for (int i0 = 0; i0 < mb; i0 += MR)
                micro(K, A + (size_t)(m0 + i0) * lda, lda, mb - i0 < MR ? mb - i0 : MR, pack,
                      C + (size_t)(m0 + i0) * ldc + n0, ldc, k0, k1, bias ? bias + n0 : NULL, gelu);
        }
    }
}
#endif

size_t bb_gemm_pack_floats(int K) { return (size_t)32 * (size_t)(K > 0 ? K : 0); }

int bb_gemm_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
               const float *bias, int gelu, float *C, int ldc, float *pack)
{
#ifdef BB_HAVE_X86
    if (!bb_cpu_has_avx512()) return -1;
    if (M > 0 && N > 0 && K > 0) gemm_avx512(M, N, K, A, lda, B, ldb, bias, gelu, C, ldc, pack);
    return 0;
#else
    return -1;
#endif
}
