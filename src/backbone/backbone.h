/* DINOv2 forward pass: model handle, per-run context, and the kernels it is built from.
 * Internal to the library; the public entry points are the "Model" and "Context" sections of
 * anomalydino.h. The kernels are exposed here so that tests can pin each fast path to its plain
 * reference (same signature, one `impl` argument). */
#ifndef AD_BACKBONE_H
#define AD_BACKBONE_H

#include "core/core.h"
#include "weights/weights.h"

/* A block's four linear-layer matrices as the forward pass reads them. */
typedef struct {
    const float *qkv, *proj, *fc1, *fc2;
} bb_linear;

struct ad_model {
    adi_weights w;
    ad_model_info info;
    char name[32];
    /* packed 1 (CPUs with AVX-512F): every lin[b] matrix is in gemm.c's panel layout
     * (bb_gemm_pack), made once at load, in place in the arena when the rows are a multiple
     * of 32 (the official models), else in pack_extra; the blocks' qkv_w, proj_w, fc1_w and
     * fc2_w are then NULL. packed 0: lin[b] points at the original [N, K] matrices. */
    int packed;
    bb_linear *lin;      /* [depth] */
    const float *patch; /* the patch embedding [D, 3 P P], packed like lin (w.patch_w NULL) */
    float *pack_extra;
};

/* [N, K] of the matrix the forward pass multiplies by: i = 0 qkv, 1 proj, 2 fc1 (SwiGLU w12),
 * 3 fc2 (w3) of any block, 4 the patch embedding. One definition for packing (model.c) and
 * unpacking (forward.c). */
void bb_linear_shape(const adi_weights *w, int i, int *N, int *K);

/* "vits14", "vitb14", "vitl14", "vitg14" (+ "_reg4") for the official shapes, else "custom". */
void bb_model_name(int dim, int depth, int n_registers, int patch, int pos_grid, char *out,
                   size_t n);

/* Kernel implementations. PLAIN is the readable reference (libm erff/expf, double sums), never
 * used by the forward pass; PORTABLE is the fast scalar path for any x86-64; AVX2 needs
 * adi_cpu_has_avx2_fma(). */
typedef enum { BB_PLAIN = 0, BB_PORTABLE = 1, BB_AVX2 = 2, BB_AVX512 = 3 } bb_impl;
/* BB_AVX512: the attention kernel in AVX-512F vectors (CPUs with AVX-512F, where it runs at full
 * width); every other kernel runs its AVX2 path under it. */
int bb_cpu_has_avx512(void);

/* What the forward pass uses on this machine (AVX512 when the CPU has AVX-512F, else AVX2 when it
 * has AVX2 + FMA, else PORTABLE). */
bb_impl bb_impl_auto(void);
/* Forces the kernels of one context (tests run the portable path on AVX2 machines too);
 * BB_AVX512 falls back to BB_AVX2 and BB_AVX2 to BB_PORTABLE where the CPU lacks them. */
void bb_context_set_impl(ad_context *ctx, bb_impl impl);

/* y = (x - mean) / sqrt(var + eps) * w + b over one row of d values (population variance);
 * y may equal x. */
void bb_layernorm_row(bb_impl impl, const float *x, float *y, int d, const float *w, const float *b,
                      float eps);
/* In place: s = exp(s - max) / sum. */
void bb_softmax_row(bb_impl impl, float *s, int n);
/* In place: x = 0.5 x (1 + erf(x / sqrt 2)), the exact-erf GELU of nn.GELU(). */
void bb_gelu(bb_impl impl, float *x, size_t n);
/* In place: x = gelu(x + bias), bias of n values: the fc1 bias fused into the GELU pass. */
void bb_gelu_bias(bb_impl impl, float *x, const float *bias, size_t n);
/* out = silu(a) * b, silu(a) = a / (1 + exp(-a)); out may equal a. */
void bb_swiglu(bb_impl impl, const float *a, const float *b, float *out, size_t n);
/* Scalar helpers of the fast paths (exposed for the kernel tests). */
float bb_erf_fast(float x);
float bb_exp_fast(float x);

/* Attention of one head for the queries [q0, q1): out_i = sum_j softmax_j(scale q_i . k_j) v_j
 * over the keys j in [0, T). q, k, v point at the head's first column in rows of stride ld (the
 * qkv matrix); out rows have stride ldo. work holds bb_attention_work(impl, T, hd, q1 - q0)
 * floats (8-byte aligned), the caller's per-thread scratch. PLAIN: double sums, libm exp;
 * PORTABLE: OpenBLAS products (single-threaded inside the caller's region) of ATTN_PORT_RB
 * query rows with the portable softmax; AVX2 (hd a multiple of 16, <= 256, else PORTABLE):
 * the fused kernel of attention.c, online softmax, no score matrix. */
#define ATTN_PORT_RB 128
void bb_attention(bb_impl impl, const float *q, const float *k, const float *v, int ld, int T,
                  int hd, float scale, int q0, int q1, float *out, int ldo, float *work);
size_t bb_attention_work(bb_impl impl, int T, int hd, int nq);

/* C[M x N] = A[M x K] B[N x K]^T (+ bias[N] when bias is not NULL; then gelu() of it when
 * gelu is non-zero), row-major, in AVX-512F (gemm.c), B given packed: bb_gemm_pack writes its
 * panels [p0, p1) of bb_gemm_panels(N) (so threads can share the packing) into
 * bb_gemm_packed_floats(N, K) floats. bb_gemm_nt returns -1 and does nothing where the CPU
 * lacks AVX-512F (the caller uses OpenBLAS then), else 0. */
int bb_gemm_nt(int M, int N, int K, const float *A, int lda, const float *packed,
               const float *bias, int gelu, float *C, int ldc);
size_t bb_gemm_packed_floats(int N, int K);
int bb_gemm_panels(int N);
void bb_gemm_pack(const float *B, int ldb, int N, int K, int p0, int p1, float *packed);
/* The inverse: panels [p0, p1) of packed back into rows of B (stride ldb), for the OpenBLAS
 * paths of a context forced off AVX-512 on a CPU that has it (tests). */
void bb_gemm_unpack(const float *packed, int N, int K, int p0, int p1, float *B, int ldb);

/* Resamples the G x G patch part of the positional embedding (grid, row-major, G*G rows of D)
 * to gh x gw (out, gh*gw rows of D) the way the official DINOv2 code does:
 * AD_POS_SCALE_FACTOR: bicubic A = -0.75, align_corners false, ratio float(1 / ((g + 0.1) / G));
 * AD_POS_ANTIALIAS: antialiased bicubic A = -0.5 to size g. A plain copy when gh == gw == G. */
ad_status bb_posembed_interp(const float *grid, int G, int D, int gh, int gw, ad_pos_interp mode,
                             float *out);

#endif
