/* Scaled dot-product attention of one head: out_i = sum_j softmax_j(scale q_i . k_j) v_j.
 *
 * Three implementations with one signature (bb_attention):
 *   PLAIN     the reference: one query at a time, scores and sums in double, libm exp;
 *   PORTABLE  blocks of ATTN_PORT_RB queries: scores by single-threaded OpenBLAS into the
 *             work buffer, the portable softmax, then P V by OpenBLAS (any x86-64);
 *   AVX2      fused, FMA: tiles of queries against blocks of keys with an online softmax.
 *
 * The AVX2 kernel (the forward pass's path on AVX2 + FMA machines):
 *   - queries go in units of QU = 24 (three 8-lane vectors). A unit's queries are copied once,
 *     scaled and transposed, to qt[d][24] (a few KB, the only copy the kernel makes); k and v
 *     are read where they lie, in the rows of the qkv matrix;
 *   - keys go in blocks of BK = 128. For one unit and one block the kernel computes the
 *     transposed scores s[j][24] (BK x 24 floats, in L1: the full score matrix never exists),
 *     4 keys x 24 queries per micro-kernel step, k[j][d] broadcast against qt[d][:];
 *   - the softmax is online and runs across the queries of a unit in vector lanes: a running
 *     maximum m and sum l per query; a new block rescales by exp(m_old - m_new);
 *   - out += p v, 6 queries x 16 columns per micro-kernel step, v rows loaded as they lie, p
 *     broadcast. The accumulator is `out` itself: the first key block starts from zero in
 *     registers (no zeroing pass), later blocks load it scaled by exp(m_old - m_new), and the
 *     last block stores it divided by l (no normalisation pass);
 *   - up to NU = 4 units share each key block (keys outer, units inner), so a block of k and
 *     v (2 x 128 x 64 floats) is fetched once for 96 queries.
 * Every output is computed by one call in a fixed order: the same inputs give the same bits
 * whatever the thread that runs the call. */
#include "backbone/backbone.h"
#include "backbone/vecmath.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#define QU 24  /* queries per unit: 3 vectors of 8 */
#define NU 4   /* units per key-block sweep */
#define BK 128 /* keys per block */
#define KR 4   /* keys per step of the score micro-kernel */
#define MAX_HD 256

static int avx2_ok(int hd) { return hd > 0 && hd % 16 == 0 && hd <= MAX_HD; }
static int avx512_ok(int hd) { return hd > 0 && hd % 32 == 0 && hd <= MAX_HD; }

int bb_cpu_has_avx512(void)
{
#ifdef BB_HAVE_X86
    /* libgcc's startup CPU model (it also checks that the OS saves the ZMM state); AD_NO_AVX2
     * turns it off with the AVX2 paths */
    return adi_cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

size_t bb_attention_work(bb_impl impl, int T, int hd, int nq)
{
    if (impl == BB_AVX512 && avx512_ok(hd)) /* 2 units of 48: the same floats as 4 of 24 */
        return (size_t)NU * hd * QU + (size_t)(BK + 8) * 48 + 3 * (size_t)NU * QU;
    if (impl >= BB_AVX2 && avx2_ok(hd))
        return (size_t)NU * hd * QU + (size_t)(BK + KR) * QU + 3 * (size_t)NU * QU;
    if (impl == BB_PLAIN) return 2 * (size_t)T; /* T doubles */
    size_t rb = (size_t)(nq < ATTN_PORT_RB ? nq : ATTN_PORT_RB);
    return rb * (size_t)T;
}

static void attention_plain(const float *q, const float *k, const float *v, int ld, int T, int hd,
                            float scale, int q0, int q1, float *out, int ldo, double *s)
{
    for (int i = q0; i < q1; i++) {
        const float *qi = q + (size_t)i * ld;
        double mx = -INFINITY;
        for (int j = 0; j < T; j++) {
            const float *kj = k + (size_t)j * ld;
            double dot = 0;
            for (int d = 0; d < hd; d++) dot += (double)(qi[d] * scale) * kj[d];
            s[j] = dot;
            if (dot > mx) mx = dot;
        }
        double sum = 0;
        for (int j = 0; j < T; j++) {
            s[j] = exp(s[j] - mx);
            sum += s[j];
        }
        float *oi = out + (size_t)i * ldo;
        for (int d = 0; d < hd; d++) {
            double acc = 0;
            for (int j = 0; j < T; j++) acc += s[j] * v[(size_t)j * ld + d];
            oi[d] = (float)(acc / sum);
        }
    }
}

static void attention_portable(const float *q, const float *k, const float *v, int ld, int T,
                               int hd, float scale, int q0, int q1, float *out, int ldo, float *S)
{
    for (int a0 = q0; a0 < q1; a0 += ATTN_PORT_RB) {
        int rows = q1 - a0 < ATTN_PORT_RB ? q1 - a0 : ATTN_PORT_RB;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, T, hd, scale,
                    q + (size_t)a0 * ld, ld, k, ld, 0.0f, S, T);
        for (int r = 0; r < rows; r++) bb_softmax_row(BB_PORTABLE, S + (size_t)r * T, T);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, T, 1.0f, S, T, v, ld,
                    0.0f, out + (size_t)a0 * ldo, ldo);
    }
}

#ifdef BB_HAVE_X86
#define AVX2 BB_AVX2_FN

/* s[j][0:24] = sum_d k_j[d] qt[d][0:24] for the n keys of one block (n <= BK); the last step
 * repeats the block's last key for missing ones (their rows of s are never read). */
AVX2 static void scores_avx2(const float *qt, const float *k, int ld, int n, int hd, float *s)
{
    for (int j0 = 0; j0 < n; j0 += KR) {
        const float *kr[KR];
        for (int r = 0; r < KR; r++) kr[r] = k + (size_t)(j0 + r < n ? j0 + r : n - 1) * ld;
        __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps(), a02 = _mm256_setzero_ps();
        __m256 a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps(), a12 = _mm256_setzero_ps();
        __m256 a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps(), a22 = _mm256_setzero_ps();
        __m256 a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps(), a32 = _mm256_setzero_ps();
        const float *qd = qt;
        for (int d = 0; d < hd; d++, qd += QU) {
            __m256 q0 = _mm256_loadu_ps(qd), q1 = _mm256_loadu_ps(qd + 8),
                   q2 = _mm256_loadu_ps(qd + 16);
            __m256 b = _mm256_broadcast_ss(kr[0] + d);
            a00 = _mm256_fmadd_ps(b, q0, a00);
            a01 = _mm256_fmadd_ps(b, q1, a01);
            a02 = _mm256_fmadd_ps(b, q2, a02);
            b = _mm256_broadcast_ss(kr[1] + d);
            a10 = _mm256_fmadd_ps(b, q0, a10);
            a11 = _mm256_fmadd_ps(b, q1, a11);
            a12 = _mm256_fmadd_ps(b, q2, a12);
            b = _mm256_broadcast_ss(kr[2] + d);
            a20 = _mm256_fmadd_ps(b, q0, a20);
            a21 = _mm256_fmadd_ps(b, q1, a21);
            a22 = _mm256_fmadd_ps(b, q2, a22);
            b = _mm256_broadcast_ss(kr[3] + d);
            a30 = _mm256_fmadd_ps(b, q0, a30);
            a31 = _mm256_fmadd_ps(b, q1, a31);
            a32 = _mm256_fmadd_ps(b, q2, a32);
        }
        float *sj = s + (size_t)j0 * QU;
        _mm256_storeu_ps(sj, a00);
        _mm256_storeu_ps(sj + 8, a01);
        _mm256_storeu_ps(sj + 16, a02);
        _mm256_storeu_ps(sj + QU, a10);
        _mm256_storeu_ps(sj + QU + 8, a11);
        _mm256_storeu_ps(sj + QU + 16, a12);
        _mm256_storeu_ps(sj + 2 * QU, a20);
        _mm256_storeu_ps(sj + 2 * QU + 8, a21);
        _mm256_storeu_ps(sj + 2 * QU + 16, a22);
        _mm256_storeu_ps(sj + 3 * QU, a30);
        _mm256_storeu_ps(sj + 3 * QU + 8, a31);
        _mm256_storeu_ps(sj + 3 * QU + 16, a32);
    }
}

/* Online softmax over one block, in the lanes of the unit's 24 queries: m = max(m, max_j s),
 * s = exp(s - m), l = l * exp(m_old - m) + sum_j s (j ascending); alpha = exp(m_old - m). */
AVX2 static void softmax_block_avx2(float *s, int n, float *m, float *l, float *alpha, int first)
{
    for (int x = 0; x < QU; x += 8) {
        __m256 mx = _mm256_loadu_ps(s + x);
        for (int j = 1; j < n; j++) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + (size_t)j * QU + x));
        __m256 sum = _mm256_setzero_ps(), a;
        if (!first) {
            __m256 mold = _mm256_loadu_ps(m + x);
            mx = _mm256_max_ps(mx, mold);
            a = bb_exp8(_mm256_sub_ps(mold, mx));
        } else {
            a = _mm256_setzero_ps();
        }
        for (int j = 0; j < n; j++) {
            float *sj = s + (size_t)j * QU + x;
            __m256 e = bb_exp8(_mm256_sub_ps(_mm256_loadu_ps(sj), mx));
            _mm256_storeu_ps(sj, e);
            sum = _mm256_add_ps(sum, e);
        }
        __m256 lv = first ? sum : _mm256_fmadd_ps(_mm256_loadu_ps(l + x), a, sum);
        _mm256_storeu_ps(m + x, mx);
        _mm256_storeu_ps(l + x, lv);
        _mm256_storeu_ps(alpha + x, a);
    }
}

/* out rows of queries [g, g + nv) of the unit (nv <= 6), 16 columns at c:
 *   acc = first ? 0 : out * alpha;  acc += sum_j p[j][g + i] v_j[c : c + 16];
 *   out = last ? acc / l : acc. */
AVX2 static void pv_avx2(const float *p, int g, int nv, const float *v, int ld, int n, int c,
                         const float *alpha, const float *l, int first, int last, float *out,
                         int ldo)
{
    /* twelve named accumulators: an array would live in memory at -O2 */
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    if (!first) {
#define PV_LOAD(i, x0, x1)                                                                       \
    if (i < nv) {                                                                                \
        __m256 a = _mm256_set1_ps(alpha[g + i]);                                                 \
        const float *o = out + (size_t)i * ldo + c;                                              \
        x0 = _mm256_mul_ps(_mm256_loadu_ps(o), a);                                               \
        x1 = _mm256_mul_ps(_mm256_loadu_ps(o + 8), a);                                           \
    }
        PV_LOAD(0, c00, c01)
        PV_LOAD(1, c10, c11)
        PV_LOAD(2, c20, c21)
        PV_LOAD(3, c30, c31)
        PV_LOAD(4, c40, c41)
        PV_LOAD(5, c50, c51)
#undef PV_LOAD
    }
    const float *vj = v + c, *pj = p + g;
    for (int j = 0; j < n; j++, vj += ld, pj += QU) {
        __m256 v0 = _mm256_loadu_ps(vj), v1 = _mm256_loadu_ps(vj + 8), b;
        b = _mm256_broadcast_ss(pj);
        c00 = _mm256_fmadd_ps(b, v0, c00);
        c01 = _mm256_fmadd_ps(b, v1, c01);
        b = _mm256_broadcast_ss(pj + 1);
        c10 = _mm256_fmadd_ps(b, v0, c10);
        c11 = _mm256_fmadd_ps(b, v1, c11);
        b = _mm256_broadcast_ss(pj + 2);
        c20 = _mm256_fmadd_ps(b, v0, c20);
        c21 = _mm256_fmadd_ps(b, v1, c21);
        b = _mm256_broadcast_ss(pj + 3);
        c30 = _mm256_fmadd_ps(b, v0, c30);
        c31 = _mm256_fmadd_ps(b, v1, c31);
        b = _mm256_broadcast_ss(pj + 4);
        c40 = _mm256_fmadd_ps(b, v0, c40);
        c41 = _mm256_fmadd_ps(b, v1, c41);
        b = _mm256_broadcast_ss(pj + 5);
        c50 = _mm256_fmadd_ps(b, v0, c50);
        c51 = _mm256_fmadd_ps(b, v1, c51);
    }
#define PV_STORE(i, x0, x1)                                                                      \
    if (i < nv) {                                                                                \
        float *o = out + (size_t)i * ldo + c;                                                    \
        if (last) {                                                                              \
            __m256 r = _mm256_set1_ps(1.0f / l[g + i]);                                          \
            x0 = _mm256_mul_ps(x0, r);                                                           \
            x1 = _mm256_mul_ps(x1, r);                                                           \
        }                                                                                        \
        _mm256_storeu_ps(o, x0);                                                                 \
        _mm256_storeu_ps(o + 8, x1);                                                             \
    }
    PV_STORE(0, c00, c01)
    PV_STORE(1, c10, c11)
    PV_STORE(2, c20, c21)
    PV_STORE(3, c30, c31)
    PV_STORE(4, c40, c41)
    PV_STORE(5, c50, c51)
#undef PV_STORE
}

AVX2 static void attention_avx2(const float *q, const float *k, const float *v, int ld, int T,
                                int hd, float scale, int q0, int q1, float *out, int ldo,
                                float *work)
{
    float *qt = work;                            /* NU units x hd x QU */
    float *s = qt + (size_t)NU * hd * QU;        /* (BK + KR) x QU */
    float *ml = s + (size_t)(BK + KR) * QU;      /* m, l, alpha: NU x QU each */
    for (int u0 = q0; u0 < q1; u0 += NU * QU) {  /* one sweep: up to NU units */
        int nu = (q1 - u0 + QU - 1) / QU;
        nu = nu < NU ? nu : NU;
        for (int u = 0; u < nu; u++) { /* q * scale (as attention.py), transposed */
            float *t = qt + (size_t)u * hd * QU;
            for (int i = 0; i < QU; i++) {
                int qi = u0 + u * QU + i;
                if (qi < q1) {
                    const float *src = q + (size_t)qi * ld;
                    for (int d = 0; d < hd; d++) t[(size_t)d * QU + i] = src[d] * scale;
                } else {
                    for (int d = 0; d < hd; d++) t[(size_t)d * QU + i] = 0.0f;
                }
            }
        }
        for (int j0 = 0; j0 < T; j0 += BK) {
            int n = T - j0 < BK ? T - j0 : BK, first = j0 == 0, last = j0 + BK >= T;
            const float *kb = k + (size_t)j0 * ld, *vb = v + (size_t)j0 * ld;
            for (int u = 0; u < nu; u++) {
                int base = u0 + u * QU, nq = q1 - base < QU ? q1 - base : QU;
                float *m = ml + (size_t)u * QU, *l = m + NU * QU, *alpha = l + NU * QU;
                scores_avx2(qt + (size_t)u * hd * QU, kb, ld, n, hd, s);
                softmax_block_avx2(s, n, m, l, alpha, first);
                for (int g = 0; g < nq; g += 6) {
                    int nv = nq - g < 6 ? nq - g : 6;
                    float *o = out + (size_t)(base + g) * ldo;
                    for (int c = 0; c < hd; c += 16)
                        pv_avx2(s, g, nv, vb, ld, n, c, alpha, l, first, last, o, ldo);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The same kernel in 16-lane AVX-512F vectors: units of 48 queries, 8 keys x 48 queries per    */
/* score step, 12 queries x 32 columns per p v step (hd a multiple of 32).                      */
/* ------------------------------------------------------------------------------------------ */
#define AVX512 __attribute__((target("avx512f,fma")))
#define QW 48 /* queries per unit: 3 vectors of 16 */
#define KW 8  /* keys per score step */

/* the polynomial exp of vecmath.h in 16 lanes: same constants, same operation order */
AVX512 static inline __m512 exp16(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(EXP_LO));
    x = _mm512_min_ps(x, _mm512_set1_ps(EXP_HI));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    __m512 p = _mm512_set1_ps(exp_c[7]);
    for (int i = 6; i >= 0; i--) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(exp_c[i]));
    __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

AVX512 static void scores_avx512(const float *qt, const float *k, int ld, int n, int hd, float *s)
{
    for (int j0 = 0; j0 < n; j0 += KW) {
        const float *kr[KW];
        for (int r = 0; r < KW; r++) kr[r] = k + (size_t)(j0 + r < n ? j0 + r : n - 1) * ld;
        __m512 acc[KW][3];
        for (int r = 0; r < KW; r++) acc[r][0] = acc[r][1] = acc[r][2] = _mm512_setzero_ps();
        const float *qd = qt;
        for (int d = 0; d < hd; d++, qd += QW) {
            __m512 q0 = _mm512_loadu_ps(qd), q1 = _mm512_loadu_ps(qd + 16),
                   q2 = _mm512_loadu_ps(qd + 32);
#pragma GCC unroll 8
            for (int r = 0; r < KW; r++) {
                __m512 b = _mm512_set1_ps(kr[r][d]);
                acc[r][0] = _mm512_fmadd_ps(b, q0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(b, q1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_ps(b, q2, acc[r][2]);
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < KW; r++) {
            float *sj = s + (size_t)(j0 + r) * QW;
            _mm512_storeu_ps(sj, acc[r][0]);
            _mm512_storeu_ps(sj + 16, acc[r][1]);
            _mm512_storeu_ps(sj + 32, acc[r][2]);
        }
    }
}

AVX512 static void softmax_block_avx512(float *s, int n, float *m, float *l, float *alpha,
                                        int first)
{
    for (int x = 0; x < QW; x += 16) {
        __m512 mx = _mm512_loadu_ps(s + x);
        for (int j = 1; j < n; j++) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + (size_t)j * QW + x));
        __m512 sum = _mm512_setzero_ps(), a;
        if (!first) {
            __m512 mold = _mm512_loadu_ps(m + x);
            mx = _mm512_max_ps(mx, mold);
            a = exp16(_mm512_sub_ps(mold, mx));
        } else {
            a = _mm512_setzero_ps();
        }
        for (int j = 0; j < n; j++) {
            float *sj = s + (size_t)j * QW + x;
            __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(sj), mx));
            _mm512_storeu_ps(sj, e);
            sum = _mm512_add_ps(sum, e);
        }
        __m512 lv = first ? sum : _mm512_fmadd_ps(_mm512_loadu_ps(l + x), a, sum);
        _mm512_storeu_ps(m + x, mx);
        _mm512_storeu_ps(l + x, lv);
        _mm512_storeu_ps(alpha + x, a);
    }
}

/* out rows of queries [g, g + nv) of the unit (nv <= 12), 32 columns at c; as pv_avx2 */
AVX512 static void pv_avx512(const float *p, int g, int nv, const float *v, int ld, int n, int c,
                             const float *alpha, const float *l, int first, int last, float *out,
                             int ldo)
{
    __m512 acc[12][2];
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) {
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
        if (!first && i < nv) {
            __m512 a = _mm512_set1_ps(alpha[g + i]);
            const float *o = out + (size_t)i * ldo + c;
            acc[i][0] = _mm512_mul_ps(_mm512_loadu_ps(o), a);
            acc[i][1] = _mm512_mul_ps(_mm512_loadu_ps(o + 16), a);
        }
    }
    const float *vj = v + c, *pj = p + g;
    for (int j = 0; j < n; j++, vj += ld, pj += QW) {
        __m512 v0 = _mm512_loadu_ps(vj), v1 = _mm512_loadu_ps(vj + 16);
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            __m512 b = _mm512_set1_ps(pj[i]);
            acc[i][0] = _mm512_fmadd_ps(b, v0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(b, v1, acc[i][1]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) {
        if (i >= nv) break;
        float *o = out + (size_t)i * ldo + c;
        if (last) {
            __m512 r = _mm512_set1_ps(1.0f / l[g + i]);
            acc[i][0] = _mm512_mul_ps(acc[i][0], r);
            acc[i][1] = _mm512_mul_ps(acc[i][1], r);
        }
        _mm512_storeu_ps(o, acc[i][0]);
        _mm512_storeu_ps(o + 16, acc[i][1]);
    }
}

AVX512 static void attention_avx512(const float *q, const float *k, const float *v, int ld, int T,
                                    int hd, float scale, int q0, int q1, float *out, int ldo,
                                    float *work)
{
    const int nu_max = NU * QU / QW; /* the same 96 queries per sweep: 2 units */
    float *qt = work;
    float *s = qt + (size_t)nu_max * hd * QW;
    float *ml = s + (size_t)(BK + KW) * QW;
    for (int u0 = q0; u0 < q1; u0 += nu_max * QW) {
        int nu = (q1 - u0 + QW - 1) / QW;
        nu = nu < nu_max ? nu : nu_max;
        for (int u = 0; u < nu; u++) {
            float *t = qt + (size_t)u * hd * QW;
            for (int i = 0; i < QW; i++) {
                int qi = u0 + u * QW + i;
                if (qi < q1) {
                    const float *src = q + (size_t)qi * ld;
                    for (int d = 0; d < hd; d++) t[(size_t)d * QW + i] = src[d] * scale;
                } else {
                    for (int d = 0; d < hd; d++) t[(size_t)d * QW + i] = 0.0f;
                }
            }
        }
        for (int j0 = 0; j0 < T; j0 += BK) {
            int n = T - j0 < BK ? T - j0 : BK, first = j0 == 0, last = j0 + BK >= T;
            const float *kb = k + (size_t)j0 * ld, *vb = v + (size_t)j0 * ld;
            for (int u = 0; u < nu; u++) {
                int base = u0 + u * QW, nq = q1 - base < QW ? q1 - base : QW;
                float *m = ml + (size_t)u * QW, *l = m + nu_max * QW, *alpha = l + nu_max * QW;
                scores_avx512(qt + (size_t)u * hd * QW, kb, ld, n, hd, s);
                softmax_block_avx512(s, n, m, l, alpha, first);
                for (int g = 0; g < nq; g += 12) {
                    int nv = nq - g < 12 ? nq - g : 12;
                    float *o = out + (size_t)(base + g) * ldo;
                    for (int c = 0; c < hd; c += 32)
                        pv_avx512(s, g, nv, vb, ld, n, c, alpha, l, first, last, o, ldo);
                }
            }
        }
    }
}
#endif /* BB_HAVE_X86 */

void bb_attention(bb_impl impl, const float *q, const float *k, const float *v, int ld, int T,
                  int hd, float scale, int q0, int q1, float *out, int ldo, float *work)
{
    if (q1 <= q0 || T < 1) return;
#ifdef BB_HAVE_X86
    if (impl == BB_AVX512 && avx512_ok(hd) && bb_cpu_has_avx512()) {
        attention_avx512(q, k, v, ld, T, hd, scale, q0, q1, out, ldo, work);
        return;
    }
    if (impl >= BB_AVX2 && avx2_ok(hd) && adi_cpu_has_avx2_fma()) {
        attention_avx2(q, k, v, ld, T, hd, scale, q0, q1, out, ldo, work);
        return;
    }
#endif
    if (impl == BB_PLAIN)
        attention_plain(q, k, v, ld, T, hd, scale, q0, q1, out, ldo, (double *)(void *)work);
    else
        attention_portable(q, k, v, ld, T, hd, scale, q0, q1, out, ldo, work);
}
