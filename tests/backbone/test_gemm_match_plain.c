/* The AVX-512 GEMM of the linear layers (bb_gemm_nt, used where the forward pass runs
 * BB_AVX512) against a plain double-precision C = A B^T + bias, on shapes with short last
 * panels (N not a multiple of 32), short row blocks (M not a multiple of 12 or of the 192-row
 * block), odd strides and K = 1. Prints the largest difference and where; also checks that C
 * outside the M x N block is untouched and that splitting the rows changes no bit. */
#include "backbone/backbone.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

static uint64_t rng = 0x6a09e667f3bcc909ULL;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2 - 1);
}

#define GUARD (-7777.0f)

static void run_case(int M, int N, int K, int with_bias)
{
    const int lda = K + 3, ldb = K + 1, ldc = N + 5;
    float *A = malloc(sizeof(float) * (size_t)M * lda), *B = malloc(sizeof(float) * (size_t)N * ldb);
    float *bias = malloc(sizeof(float) * (size_t)N), *C = malloc(sizeof(float) * (size_t)M * ldc);
    float *C2 = malloc(sizeof(float) * (size_t)M * ldc);
    float *pack = malloc(sizeof(float) * bb_gemm_packed_floats(N, K));
    for (size_t i = 0; i < (size_t)M * lda; i++) A[i] = frand();
    for (size_t i = 0; i < (size_t)N * ldb; i++) B[i] = frand();
    for (int i = 0; i < N; i++) bias[i] = frand();
    for (size_t i = 0; i < (size_t)M * ldc; i++) C[i] = C2[i] = GUARD;
    int np = bb_gemm_panels(N);
    bb_gemm_pack(B, ldb, N, K, 0, np / 2, pack); /* in two parts, as threads share it */
    bb_gemm_pack(B, ldb, N, K, np / 2, np, pack);
    CHECK(bb_gemm_nt(M, N, K, A, lda, pack, with_bias ? bias : NULL, 0, C, ldc) == 0,
          "bb_gemm_nt refused on an AVX-512 CPU");
    double worst = 0, worst_rel = 0;
    int wi = 0, wj = 0, untouched = 1;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < ldc; j++) {
            float got = C[(size_t)i * ldc + j];
            if (j >= N) {
                if (got != GUARD) untouched = 0;
                continue;
            }
            double ref = with_bias ? bias[j] : 0, mag = fabs(ref);
            for (int k = 0; k < K; k++) {
                double p = (double)A[(size_t)i * lda + k] * B[(size_t)j * ldb + k];
                ref += p;
                mag += fabs(p);
            }
            double d = fabs(got - ref);
            if (!(d <= worst)) {
                worst = d;
                wi = i;
                wj = j;
            }
            /* float FMA chain over K terms: error <= ~K eps sum |terms| */
            double rel = d / (mag * K * 6e-8 + 1e-30);
            if (rel > worst_rel) worst_rel = rel;
        }
    }
    printf("gemm M %4d N %4d K %4d%s: max|diff| %.3g at (%d, %d), worst %.2f of the bound\n", M,
           N, K, with_bias ? " +bias" : "", worst, wi, wj, worst_rel);
    CHECK(worst_rel <= 1.0, "gemm M %d N %d K %d: diff %g at (%d, %d)", M, N, K, worst, wi, wj);
    CHECK(untouched, "gemm M %d N %d K %d: wrote beyond column N", M, N, K);
    /* rows in two uneven calls: bit-identical */
    int cut = M / 3 + 1 < M ? M / 3 + 1 : M;
    bb_gemm_nt(cut, N, K, A, lda, pack, with_bias ? bias : NULL, 0, C2, ldc);
    if (M > cut)
        bb_gemm_nt(M - cut, N, K, A + (size_t)cut * lda, lda, pack, with_bias ? bias : NULL, 0,
                   C2 + (size_t)cut * ldc, ldc);
    CHECK(!memcmp(C, C2, sizeof(float) * (size_t)M * ldc), "gemm M %d N %d K %d: split differs",
          M, N, K);
    free(A);
    free(B);
    free(bias);
    free(C);
    free(C2);
    free(pack);
}

/* the GELU epilogue: equals the GEMM + bias, then the AVX2 bias-free GELU kernel, within 2 ulp */
static void run_gelu(int M, int N, int K)
{
    float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)N * K);
    float *bias = malloc(sizeof(float) * (size_t)N), *C = malloc(sizeof(float) * (size_t)M * N);
    float *R = malloc(sizeof(float) * (size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = frand();
    for (size_t i = 0; i < (size_t)N * K; i++) B[i] = 0.3f * frand();
    for (int i = 0; i < N; i++) bias[i] = frand();
    float *pack = malloc(sizeof(float) * bb_gemm_packed_floats(N, K));
    bb_gemm_pack(B, K, N, K, 0, bb_gemm_panels(N), pack);
    bb_gemm_nt(M, N, K, A, K, pack, bias, 1, C, N);
    bb_gemm_nt(M, N, K, A, K, pack, bias, 0, R, N);
    bb_gelu(BB_PLAIN, R, (size_t)M * N);
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < (size_t)M * N; i++) {
        double d = fabs((double)C[i] - R[i]);
        if (d > worst) {
            worst = d;
            at = i;
        }
    }
    printf("gemm M %4d N %4d K %4d +bias +gelu vs gemm, then plain gelu: max|diff| %.3g at (%zu, "
           "%zu)\n", M, N, K, worst, at / N, at % N);
    CHECK(worst <= 2e-6, "gemm gelu epilogue off by %g", worst);
    free(A);
    free(B);
    free(bias);
    free(C);
    free(R);
    free(pack);
}

/* bb_gemm_unpack undoes bb_gemm_pack exactly (the path of a context forced off AVX-512 on a
 * model packed at load), short last panel included; the padding of that panel is zero */
static void run_roundtrip(int N, int K)
{
    float *B = malloc(sizeof(float) * (size_t)N * K), *U = malloc(sizeof(float) * (size_t)N * K);
    size_t np = bb_gemm_packed_floats(N, K);
    float *pack = malloc(sizeof(float) * np);
    for (size_t i = 0; i < (size_t)N * K; i++) B[i] = frand();
    for (size_t i = 0; i < (size_t)N * K; i++) U[i] = -7.0f;
    bb_gemm_pack(B, K, N, K, 0, bb_gemm_panels(N), pack);
    bb_gemm_unpack(pack, N, K, 0, bb_gemm_panels(N), U, K);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < (size_t)N * K; i++)
        if (memcmp(&B[i], &U[i], sizeof(float)) && !bad++) first = i;
    size_t pad_bad = 0, last = (size_t)(N - 1) / 32; /* the last panel's unused columns */
    for (int k = 0; k < K; k++)
        for (int j = N - (int)last * 32; j < 32; j++)
            pad_bad += pack[last * 32 * (size_t)K + (size_t)k * 32 + (size_t)j] != 0.0f;
    printf("pack/unpack N %4d K %4d: %zu of %zu values differ (first at %zu), %zu padding "
           "values not zero\n", N, K, bad, (size_t)N * K, first, pad_bad);
    CHECK(bad == 0, "unpack(pack(B)) != B at %zu values", bad);
    CHECK(pad_bad == 0, "%zu padding values not zero", pad_bad);
    free(B);
    free(U);
    free(pack);
}

int main(void)
{
    if (!bb_cpu_has_avx512()) {
        printf("no AVX-512F on this CPU: bb_gemm_nt must refuse\n");
        float a = 1, c = 0, p[32] = {1};
        CHECK(bb_gemm_nt(1, 1, 1, &a, 1, p, NULL, 0, &c, 1) == -1 && c == 0,
              "bb_gemm_nt ran without AVX-512");
        return t_done("gemm_match_plain");
    }
    run_case(1, 1, 1, 0);
    run_case(12, 32, 64, 1);
    run_case(13, 33, 7, 1);
    run_case(200, 100, 384, 0);
    run_case(385, 1152, 384, 1); /* a qkv slice of ViT-S */
    run_case(130, 384, 1536, 0); /* an fc2 chunk */
    run_case(7, 17, 129, 1);
    run_gelu(50, 1536, 384);
    run_gelu(13, 45, 16);
    run_roundtrip(1152, 384);
    run_roundtrip(688, 344); /* the tiny SwiGLU model's w12: a short last panel */
    run_roundtrip(5, 3);
    return t_done("gemm_match_plain");
}
