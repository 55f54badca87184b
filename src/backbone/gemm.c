/* C = A B^T (+ bias) in AVX-512F, for the linear layers of a block on CPUs where AVX-512 runs
 * at full width (BB_AVX512). OpenBLAS 0.3.21 picks its AVX2 (Haswell) kernels on CPUs it does
 * not know, such as AMD Zen 5, and which kernels it uses can only be changed process-wide
 * (OPENBLAS_CORETYPE), which the library must not do; so on those CPUs the block's four
 * products run here.
 *
 * Blocking: B (the layer's weights, N x K) is packed in panels of 32 columns, each transposed
 * to [K][32] (bb_gemm_pack: the model packs every block's four matrices once, when it is
 * loaded, in place of the original layout; model.c). Rows of A go in blocks of GEMM_MB; for each
 * block every panel passes, 12 x 32 micro-kernel steps over the whole K, A broadcast from its
 * rows as they lie. Every C element is one FMA chain over k = 0..K-1 in
 * order, plus the bias at the end (and the exact-erf GELU when asked, fc1's epilogue, fused
 * into the store: no pass over the hidden rows): the result does not depend on M, the blocking or the
 * thread, and a short last panel or row block uses masks instead of padding C. */
#include "backbone/backbone.h"
#include "backbone/vecmath.h"

#define NR_ALL 32 /* columns per panel (two 16-lane vectors) */

#ifdef BB_HAVE_X86
#define GEMM_MB 192 /* rows of A per block: 192 x K floats stay in L2 while the panels pass */
#define MR 12
#define NR NR_ALL
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

/* rows x 32 columns of C, rows = 12, 8 or 4 (micro12/8/4 below: a short last row block of 1-8
 * rows runs the smallest that holds it instead of 12 rows' worth of FMAs); nr <= rows rows are
 * real, the others repeat the last one and are not stored */
AVX512 static inline __attribute__((always_inline)) void
micro_rows(const int rows, int K, const float *A, int lda, int nr, const float *bp, float *C,
           int ldc, __mmask16 k0, __mmask16 k1, const float *bias, int gelu)
{
    const float *a[MR];
    for (int i = 0; i < rows; i++) a[i] = A + (size_t)(i < nr ? i : nr - 1) * lda;
    __m512 c[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++, bp += NR) {
        __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
#pragma GCC unroll 12
        for (int i = 0; i < rows; i++) {
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
    for (int i = 0; i < rows; i++) {
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

#define MICRO(R)                                                                                \
    AVX512 static void micro##R(int K, const float *A, int lda, int nr, const float *bp,         \
                                float *C, int ldc, __mmask16 k0, __mmask16 k1,                  \
                                const float *bias, int gelu)                                    \
    {                                                                                           \
        micro_rows(R, K, A, lda, nr, bp, C, ldc, k0, k1, bias, gelu);                           \
    }
MICRO(12)
MICRO(8)
MICRO(4)

AVX512 static void micro(int K, const float *A, int lda, int nr, const float *bp, float *C,
                         int ldc, __mmask16 k0, __mmask16 k1, const float *bias, int gelu)
{
    if (nr > 8)
        micro12(K, A, lda, nr, bp, C, ldc, k0, k1, bias, gelu);
    else if (nr > 4)
        micro8(K, A, lda, nr, bp, C, ldc, k0, k1, bias, gelu);
    else
        micro4(K, A, lda, nr, bp, C, ldc, k0, k1, bias, gelu);
}

/* C = A B^T over prepacked panels (bb_gemm_pack): row blocks of GEMM_MB outer, so a block of
 * A stays in L2 while every panel passes */
AVX512 static void gemm_avx512(int M, int N, int K, const float *A, int lda, const float *packed,
                               const float *bias, int gelu, float *C, int ldc)
{
    for (int m0 = 0; m0 < M; m0 += GEMM_MB) {
        int mb = M - m0 < GEMM_MB ? M - m0 : GEMM_MB;
        for (int n0 = 0; n0 < N; n0 += NR) {
            int nn = N - n0 < NR ? N - n0 : NR;
            __mmask16 k0 = (__mmask16)(nn >= 16 ? 0xFFFF : (1u << nn) - 1);
            __mmask16 k1 = (__mmask16)(nn >= 32 ? 0xFFFF : nn > 16 ? (1u << (nn - 16)) - 1 : 0);
            const float *bp = packed + (size_t)(n0 / NR) * NR * K;
            for (int i0 = 0; i0 < mb; i0 += MR)
                micro(K, A + (size_t)(m0 + i0) * lda, lda, mb - i0 < MR ? mb - i0 : MR, bp,
                      C + (size_t)(m0 + i0) * ldc + n0, ldc, k0, k1, bias ? bias + n0 : NULL, gelu);
        }
    }
}
#endif

size_t bb_gemm_packed_floats(int N, int K)
{
    return N > 0 && K > 0 ? (size_t)((N + NR_ALL - 1) / NR_ALL) * NR_ALL * (size_t)K : 0;
}

int bb_gemm_panels(int N) { return N > 0 ? (N + NR_ALL - 1) / NR_ALL : 0; }

#ifdef BB_HAVE_X86
/* one panel: for each k, the 32 values B[n0 + j][k] by two 16-lane gathers (masked for a short
 * last panel), stored in order */
AVX512 static void pack_avx512(const float *B, int ldb, int nn, int K, float *bp)
{
    __m512i idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(ldb));
    __mmask16 m0 = (__mmask16)(nn >= 16 ? 0xFFFF : (1u << nn) - 1);
    __mmask16 m1 = (__mmask16)(nn >= 32 ? 0xFFFF : nn > 16 ? (1u << (nn - 16)) - 1 : 0);
    const float *b1 = B + (size_t)16 * ldb;
    for (int k = 0; k < K; k++, bp += NR_ALL) {
        __m512 v0 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m0, idx, B + k, 4);
        __m512 v1 = m1 ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m1, idx, b1 + k, 4)
                       : _mm512_setzero_ps();
        _mm512_storeu_ps(bp, v0);
        _mm512_storeu_ps(bp + 16, v1);
    }
}
#endif

void bb_gemm_pack(const float *B, int ldb, int N, int K, int p0, int p1, float *packed)
{
    for (int p = p0; p < p1; p++) {
        int n0 = p * NR_ALL, nn = N - n0 < NR_ALL ? N - n0 : NR_ALL;
        float *bp = packed + (size_t)p * NR_ALL * K;
#ifdef BB_HAVE_X86
        if (bb_cpu_has_avx512() && (long long)ldb * 15 < (1LL << 31) / 4) {
            pack_avx512(B + (size_t)n0 * ldb, ldb, nn, K, bp);
            continue;
        }
#endif
        const float *src[NR_ALL];
        for (int j = 0; j < NR_ALL; j++) src[j] = B + (size_t)(n0 + (j < nn ? j : 0)) * ldb;
        for (int k = 0; k < K; k++, bp += NR_ALL)
            for (int j = 0; j < NR_ALL; j++) bp[j] = j < nn ? src[j][k] : 0.0f;
    }
}

void bb_gemm_unpack(const float *packed, int N, int K, int p0, int p1, float *B, int ldb)
{
    for (int p = p0; p < p1; p++) {
        int n0 = p * NR_ALL, nn = N - n0 < NR_ALL ? N - n0 : NR_ALL;
        const float *bp = packed + (size_t)p * NR_ALL * K;
        for (int k = 0; k < K; k++, bp += NR_ALL)
            for (int j = 0; j < nn; j++) B[(size_t)(n0 + j) * ldb + k] = bp[j];
    }
}

int bb_gemm_nt(int M, int N, int K, const float *A, int lda, const float *packed,
               const float *bias, int gelu, float *C, int ldc)
{
#ifdef BB_HAVE_X86
    if (!bb_cpu_has_avx512()) return -1;
    if (M > 0 && N > 0 && K > 0) gemm_avx512(M, N, K, A, lda, packed, bias, gelu, C, ldc);
    return 0;
#else
    return -1;
#endif
}
