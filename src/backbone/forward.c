/* The DINOv2 forward pass (docs/design.md "Backbone";
 * dinov2 vision_transformer.py eval path):
 * patch embedding (the 14x14 stride-14 convolution as one GEMM over im2col rows), CLS,
 * positional embedding, registers, pre-norm blocks with LayerScale, final LayerNorm.
 *
 * Threads: the token rows are split evenly over the context's OpenMP threads and each thread
 * calls single-threaded OpenBLAS on its own rows; attention runs (head, query block) tasks of
 * bb_attention, which never holds the N x N score matrix. Every
 * output element is computed by one thread in a fixed order: the same thread count gives
 * bit-identical results. */
#include "backbone/backbone.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#define LN_EPS 1e-6f /* partial(nn.LayerNorm, eps=1e-6), vision_transformer.py */
#define ATTN_RB 96   /* attention queries per task: 4 units of the fused kernel (attention.c) */
#define MAX_TOKENS (1 << 22)
#define MLP_CH 128 /* rows per chunk of the MLP half of a block */

struct ad_context {
    const ad_model *m;
    int n_threads;
    bb_impl impl;
    size_t cap_tok; /* tokens the per-token buffers hold */
    float *x, *xn, *ao, *qkv, *hid, *scores;
    size_t attn_work; /* floats of attention scratch per thread (scores) */
    float *wun;          /* a packed model's block matrices unpacked, for a context forced off
                          * AVX-512 (tests): qkv, proj, fc1, fc2, patch at wun_off[0..4] */
    size_t wun_off[6];
    int wun_patch;       /* 1: the patch embedding is unpacked in wun */
    size_t cap_cols;
    float *cols;        /* im2col rows of the patch embedding */
    int pos_gh, pos_gw; /* grid of the cached positional embedding */
    float *pos;
};

ad_context_params ad_context_default_params(void)
{
    ad_context_params p;
    p.n_threads = 0;
    return p;
}

ad_context *ad_context_new(const ad_model *m, ad_context_params p)
{
    if (!m) return adi_fail_null(AD_E_ARG, "ad_context_new: model is NULL");
    ad_context *c = adi_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->m = m;
    c->n_threads = adi_threads_resolve(p.n_threads);
    c->impl = bb_impl_auto();
    return c;
}

static void free_scratch(ad_context *c)
{
    adi_free(c->x);
    adi_free(c->xn);
    adi_free(c->ao);
    adi_free(c->qkv);
    adi_free(c->hid);
    adi_free(c->scores);
    c->x = c->xn = c->ao = c->qkv = c->hid = c->scores = NULL;
    c->cap_tok = 0;
}

void ad_context_free(ad_context *c)
{
    if (!c) return;
    free_scratch(c);
    adi_free(c->wun);
    adi_free(c->cols);
    adi_free(c->pos);
    adi_free(c);
}

int ad_context_threads(const ad_context *c) { return c ? c->n_threads : 0; }

const ad_model *ad_context_model(const ad_context *c) { return c ? c->m : NULL; }

void bb_context_set_impl(ad_context *c, bb_impl impl)
{
    if (!c) return;
    if (impl == BB_AVX512 && !bb_cpu_has_avx512()) impl = BB_AVX2;
    if (impl == BB_AVX2 && !adi_cpu_has_avx2_fma()) impl = BB_PORTABLE;
    c->impl = impl;
}

/* Grows the scratch buffers to T tokens (kept for later calls: no allocation per image). */
static ad_status ensure_scratch(ad_context *c, size_t T, size_t N)
{
    const adi_weights *w = &c->m->w;
    size_t D = (size_t)w->dim, H = (size_t)w->ffn_hidden * (w->swiglu ? 2 : 1);
    size_t K = 3 * (size_t)w->patch * (size_t)w->patch;
    if (T > c->cap_tok) {
        free_scratch(c);
        /* per-thread attention scratch, enough for every implementation (a context's impl
         * can be switched after the first call), rounded to 64 bytes */
        size_t hd = (size_t)(w->dim / w->heads), aw = 0;
        for (int i = BB_PLAIN; i <= BB_AVX512; i++) {
            size_t n = bb_attention_work((bb_impl)i, (int)T, (int)hd, ATTN_RB);
            aw = n > aw ? n : aw;
        }
        c->attn_work = (aw + 15) / 16 * 16;
        c->x = adi_alloc(T * D, sizeof(float));
        c->xn = adi_alloc(T * D, sizeof(float));
        c->ao = adi_alloc(T * D, sizeof(float));
        c->qkv = adi_alloc(T * 3 * D, sizeof(float));
        c->hid = adi_alloc(T * H, sizeof(float));
        c->scores = adi_alloc((size_t)c->n_threads * c->attn_work, sizeof(float));
        if (!c->x || !c->xn || !c->ao || !c->qkv || !c->hid || !c->scores) {
            free_scratch(c);
            return adi_fail(AD_E_NOMEM, "backbone: out of memory for %zu tokens", T);
        }
        c->cap_tok = T;
    }
    if (N * K > c->cap_cols) {
        adi_free(c->cols);
        c->cap_cols = 0;
        c->cols = adi_alloc(N * K, sizeof(float));
        if (!c->cols) return adi_fail(AD_E_NOMEM, "backbone: out of memory for %zu patches", N);
        c->cap_cols = N * K;
    }
    return AD_OK;
}

/* A packed model run by a context forced off AVX-512: room for one block's four matrices as
 * rows (made on the first such call; contexts on AVX-512 never need it). */
static ad_status ensure_unpack(ad_context *c)
{
    if (!c->m->packed || c->impl == BB_AVX512 || c->wun) return AD_OK;
    c->wun_off[0] = 0;
    for (int i = 0; i < 5; i++) {
        int N, K;
        bb_linear_shape(&c->m->w, i, &N, &K);
        c->wun_off[i + 1] = c->wun_off[i] + ((size_t)N * K + 15) / 16 * 16;
    }
    c->wun = adi_alloc(c->wun_off[5], sizeof(float));
    c->wun_patch = 0;
    return c->wun ? AD_OK : adi_fail(AD_E_NOMEM, "backbone: out of memory for the weights");
}

static ad_status ensure_pos(ad_context *c, int gh, int gw)
{
    if (c->pos && c->pos_gh == gh && c->pos_gw == gw) return AD_OK;
    const adi_weights *w = &c->m->w;
    adi_free(c->pos);
    c->pos_gh = c->pos_gw = 0;
    c->pos = adi_alloc((size_t)gh * gw * w->dim, sizeof(float));
    if (!c->pos) return AD_E_NOMEM;
    const float *grid = w->pos_embed + w->dim; /* row 0 is the CLS position */
    ad_status st =
        bb_posembed_interp(grid, w->pos_grid, w->dim, gh, gw, c->m->info.pos_interp, c->pos);
    if (st) {
        adi_free(c->pos);
        c->pos = NULL;
        return st;
    }
    c->pos_gh = gh;
    c->pos_gw = gw;
    return AD_OK;
}

/* C[M x N] = A[M x K] B[N x K]^T (+ beta C) for one thread's rows (single-threaded BLAS). */
static void gemm_rows(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc)
{
    if (M > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C,
                    ldc);
}

/* C = A W^T (+ bias) for one thread's rows: the AVX-512 GEMM of gemm.c when the context runs
 * BB_AVX512, W then in panels (bias, and GELU when asked, fused into its store; returns 1),
 * else OpenBLAS over W's [N, K] rows with beta 0 (the caller adds the bias; returns 0). */
static int mm(int use512, int M, int N, int K, const float *A, int lda, const float *W,
              const float *bias, int gelu, float *C, int ldc)
{
    if (use512 && bb_gemm_nt(M, N, K, A, lda, W, bias, gelu, C, ldc) == 0) return 1;
    gemm_rows(M, N, K, A, lda, W, K, 0.0f, C, ldc);
    return 0;
}

/* The rows [r0, r1) of T owned by the calling thread: a fixed, even split by thread count. */
static void my_rows(int T, int *r0, int *r1)
{
    int t = omp_get_thread_num(), n = omp_get_num_threads();
    *r0 = (int)((long long)T * t / n);
    *r1 = (int)((long long)T * (t + 1) / n);
}

/* Rows [1+R, 1+R+N) of x: conv(14x14, stride 14) + bias + interpolated positional embedding;
 * row 0: CLS + pos_embed[0]; rows 1..R: registers (no positional embedding; design.md). */
static void embed(ad_context *c, const ad_input *in, int gh, int gw)
{
    const adi_weights *w = &c->m->w;
    const int D = w->dim, P = w->patch, R = w->n_registers, K = 3 * P * P;
    const int N = gh * gw, W = in->width, Hh = in->height;
    float *cols = c->cols, *x = c->x;
    const float *pos = c->pos;
    /* as the blocks' linear layers (block_forward): gemm.c over the model's panels, bias fused;
     * else OpenBLAS over the rows, unpacked once into the context if the model is packed */
    const int use512 = c->impl == BB_AVX512 && c->m->packed;
    const float *Wp = c->m->patch;
    if (!use512 && c->m->packed) {
        Wp = c->wun + c->wun_off[4];
        if (!c->wun_patch)
            bb_gemm_unpack(c->m->patch, D, K, 0, bb_gemm_panels(D), (float *)Wp, K);
        c->wun_patch = 1;
    }

    for (int d = 0; d < D; d++) x[d] = w->cls_token[d] + w->pos_embed[d];
    if (R) memcpy(x + D, w->register_tokens, (size_t)R * D * sizeof(float));
#pragma omp parallel num_threads(c->n_threads)
    {
        adi_blas_serial();
        int n0, n1;
        my_rows(N, &n0, &n1);
        for (int n = n0; n < n1; n++) {
            int r = n / gw, q = n % gw;
            float *dst = cols + (size_t)n * K;
            for (int ch = 0; ch < 3; ch++)
                for (int ky = 0; ky < P; ky++)
                    memcpy(dst + (ch * P + ky) * P,
                           in->data + ((size_t)ch * Hh + (size_t)r * P + ky) * W + (size_t)q * P,
                           (size_t)P * sizeof(float));
            if (!use512) memcpy(x + (size_t)(1 + R + n) * D, w->patch_b, (size_t)D * sizeof(float));
        }
        if (use512)
            mm(1, n1 - n0, D, K, cols + (size_t)n0 * K, K, Wp, w->patch_b, 0,
               x + (size_t)(1 + R + n0) * D, D);
        else
            gemm_rows(n1 - n0, D, K, cols + (size_t)n0 * K, K, Wp, K, 1.0f,
                      x + (size_t)(1 + R + n0) * D, D);
        for (int n = n0; n < n1; n++) {
            float *xr = x + (size_t)(1 + R + n) * D;
            const float *pr = pos + (size_t)n * D;
            for (int d = 0; d < D; d++) xr[d] += pr[d];
        }
    }
}

/* x += ls * (y + bias) on one row: LayerScale residual, rounded as PyTorch (bias add, scale,
 * add). */
static void residual_row(float *x, const float *y, int D, const float *bias, const float *ls)
{
    for (int d = 0; d < D; d++) {
        float v = y[d] + bias[d];
        v = ls[d] * v;
        x[d] = x[d] + v;
    }
}

/* One pre-norm block, in one parallel region. Everything but attention is row-local, so each
 * thread carries its own rows from LayerNorm to the residual with no barrier in between:
 *   rows:      xn = norm1(x); qkv = xn Wqkv^T + b
 *   barrier    (attention reads every row of k and v)
 *   tasks:     ao = concat_h softmax(q_h k_h^T * scale) v_h, (head, ATTN_RB-query block) tasks
 *              of bb_attention (attention.c: fused, online softmax, on AVX2 + FMA)
 *   barrier
 *   rows:      x += ls1 (ao Wproj^T + b); xn = norm2(x); x += ls2 ffn(xn), in chunks of
 *              MLP_CH rows, each epilogue fused onto the rows its GEMM just wrote
 * Few barriers matter when the cores are shared: a waiting thread cannot run ahead. */
static void block_forward(ad_context *c, int bi, int T)
{
    const adi_block_weights *bw = &c->m->w.blocks[bi];
    const adi_weights *w = &c->m->w;
    const int D = w->dim, H = w->ffn_hidden, nh = w->heads, hd = D / nh, ld = 3 * D;
    const int swiglu = w->swiglu, Hw = swiglu ? 2 * H : H; /* width of the fc1 / w12 output */
    /* scale = head_dim^-0.5 (attention.py); 0.125 for the 64-wide heads of every DINOv2 */
    const float scale = (float)(1.0 / sqrt((double)hd));
    const int rb = T < ATTN_RB ? T : ATTN_RB, nrb = (T + rb - 1) / rb, tasks = nh * nrb;
    const bb_impl impl = c->impl;
    /* linear layers through gemm.c (see mm) over the model's panels; a context forced off
     * AVX-512 on a packed model unpacks the block's matrices first, the threads sharing it */
    const int use512 = impl == BB_AVX512 && c->m->packed;
    const int unpack = !use512 && c->m->packed;
    const bb_linear *L = &c->m->lin[bi];
    const float *Wq = L->qkv, *Wp = L->proj, *W1 = L->fc1, *W2 = L->fc2;
    if (unpack) {
        Wq = c->wun + c->wun_off[0];
        Wp = c->wun + c->wun_off[1];
        W1 = c->wun + c->wun_off[2];
        W2 = c->wun + c->wun_off[3];
    }
    float *x = c->x, *xn = c->xn, *qkv = c->qkv, *ao = c->ao, *hid = c->hid;

#pragma omp parallel num_threads(c->n_threads)
    {
        adi_blas_serial();
        int r0, r1;
        my_rows(T, &r0, &r1);
        const int m = r1 - r0;
        if (unpack) { /* the four matrices' panels shared out over the threads */
            const float *src[4] = {L->qkv, L->proj, L->fc1, L->fc2};
            int shp[4][2], all = 0;
            for (int i = 0; i < 4; i++) {
                bb_linear_shape(w, i, &shp[i][0], &shp[i][1]);
                all += bb_gemm_panels(shp[i][0]);
            }
            int g0, g1;
            my_rows(all, &g0, &g1);
            for (int g = g0; g < g1; g++) {
                int i = 0, p = g;
                while (p >= bb_gemm_panels(shp[i][0])) p -= bb_gemm_panels(shp[i++][0]);
                bb_gemm_unpack(src[i], shp[i][0], shp[i][1], p, p + 1, c->wun + c->wun_off[i],
                               shp[i][1]);
            }
#pragma omp barrier
        }
        for (int r = r0; r < r1; r++) {
            bb_layernorm_row(impl, x + (size_t)r * D, xn + (size_t)r * D, D, bw->norm1_w,
                             bw->norm1_b, LN_EPS);
            if (!use512) memcpy(qkv + (size_t)r * ld, bw->qkv_b, (size_t)ld * sizeof(float));
        }
        if (use512) /* the bias is fused into the GEMM's store */
            mm(1, m, ld, D, xn + (size_t)r0 * D, D, Wq, bw->qkv_b, 0, qkv + (size_t)r0 * ld, ld);
        else
            gemm_rows(m, ld, D, xn + (size_t)r0 * D, D, Wq, D, 1.0f, qkv + (size_t)r0 * ld, ld);
#pragma omp barrier

        float *work = c->scores + (size_t)omp_get_thread_num() * c->attn_work;
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < tasks; task++) {
            int h = task / nrb, a0 = (task % nrb) * rb, a1 = a0 + rb < T ? a0 + rb : T;
            bb_attention(impl, qkv + h * hd, qkv + D + h * hd, qkv + 2 * D + h * hd, ld, T, hd,
                         scale, a0, a1, ao + h * hd, D, work);
        }
        /* implicit barrier of the for: every row of ao is complete */

        /* Row chunks of MLP_CH carry proj -> residual + norm2 -> fc1 -> bias + GELU -> fc2 ->
         * residual while the chunk's hidden rows (MLP_CH x 4D) are still in L2: every epilogue
         * runs on rows the GEMM just wrote, instead of a pass over the thread's whole slice. */
        for (int a = r0; a < r1; a += MLP_CH) {
            const int b = a + MLP_CH < r1 ? a + MLP_CH : r1, n = b - a;
            mm(use512, n, D, D, ao + (size_t)a * D, D, Wp, NULL, 0, xn + (size_t)a * D, D);
            for (int r = a; r < b; r++) {
                residual_row(x + (size_t)r * D, xn + (size_t)r * D, D, bw->proj_b, bw->ls1);
                bb_layernorm_row(impl, x + (size_t)r * D, xn + (size_t)r * D, D, bw->norm2_w,
                                 bw->norm2_b, LN_EPS);
            }
            /* AVX-512: bias and GELU in the GEMM's store; else one bias + GELU pass per row */
            const int fused = mm(use512, n, Hw, D, xn + (size_t)a * D, D, W1, bw->fc1_b, !swiglu,
                                 hid + (size_t)a * Hw, Hw);
            for (int r = a; r < b && !(fused && !swiglu); r++) {
                float *hr = hid + (size_t)r * Hw;
                if (!swiglu) {
                    bb_gelu_bias(impl, hr, bw->fc1_b, (size_t)H);
                } else { /* SwiGLUFFN (swiglu_ffn.py): x1, x2 = w12(x).chunk(2); w3(silu(x1) *
                          * x2); the product overwrites x1, so w3 reads rows of stride 2H */
                    if (!fused)
                        for (int j = 0; j < Hw; j++) hr[j] += bw->fc1_b[j];
                    bb_swiglu(impl, hr, hr + H, hr, (size_t)H);
                }
            }
            mm(use512, n, D, H, hid + (size_t)a * Hw, Hw, W2, NULL, 0, ao + (size_t)a * D, D);
            for (int r = a; r < b; r++)
                residual_row(x + (size_t)r * D, ao + (size_t)r * D, D, bw->fc2_b, bw->ls2);
        }
    }
}

/* One requested output: patch rows and CLS of the current x, through the final norm or not. */
static void emit(const ad_context *c, int N, int norm, ad_features *f)
{
    const adi_weights *w = &c->m->w;
    const int D = w->dim, R = w->n_registers;
    const float *x = c->x;
    bb_impl impl = c->impl;
#pragma omp parallel for num_threads(c->n_threads) schedule(static)
    for (int n = -1; n < N; n++) {
        const float *src = n < 0 ? x : x + (size_t)(1 + R + n) * D;
        float *dst = n < 0 ? f->cls : f->patch + (size_t)n * D;
        if (norm)
            bb_layernorm_row(impl, src, dst, D, w->norm_w, w->norm_b, LN_EPS);
        else
            memcpy(dst, src, (size_t)D * sizeof(float));
    }
}

void ad_features_free(ad_features *f)
{
    if (!f) return;
    adi_free(f->patch);
    adi_free(f->cls);
    memset(f, 0, sizeof *f);
}

ad_status ad_extract_layers(ad_context *ctx, const ad_input *in, const int *layers, int n_layers,
                            int norm, ad_features *outs)
{
    if (!ctx) return adi_fail(AD_E_ARG, "ad_extract: NULL context");
    if (!in || !outs) return adi_fail(AD_E_ARG, "ad_extract: NULL %s", in ? "output" : "input");
    if (!layers || n_layers < 1) return adi_fail(AD_E_ARG, "ad_extract_layers: no layer requested");
    const adi_weights *w = &ctx->m->w;
    const int P = w->patch, depth = w->depth, D = w->dim;
    if (!in->data) return adi_fail(AD_E_ARG, "ad_extract: input has no pixel data");
    if (in->width < P || in->height < P || in->width % P || in->height % P)
        return adi_fail(AD_E_ARG, "ad_extract: input %dx%d is not a positive multiple of %d",
                       in->width, in->height, P);
    const int gh = in->height / P, gw = in->width / P;
    if ((long long)gh * gw > MAX_TOKENS)
        return adi_fail(AD_E_ARG, "ad_extract: input %dx%d has too many patches", in->width,
                       in->height);
    const int N = gh * gw, T = 1 + w->n_registers + N;

    int last = -1;
    int *blk = adi_alloc((size_t)n_layers, sizeof(int));
    if (!blk) return AD_E_NOMEM;
    for (int j = 0; j < n_layers; j++) {
        int l = layers[j] < 0 ? depth + layers[j] : layers[j];
        if (l < 0 || l >= depth) {
            adi_free(blk);
            return adi_fail(AD_E_ARG,
                           "ad_extract_layers: layer %d out of range for a %d-block model",
                           layers[j], depth);
        }
        blk[j] = l;
        if (l > last) last = l;
    }

    ad_features *res = adi_calloc((size_t)n_layers, sizeof *res);
    ad_status st = res ? AD_OK : AD_E_NOMEM;
    for (int j = 0; j < n_layers && !st; j++) {
        res[j].grid_h = gh;
        res[j].grid_w = gw;
        res[j].dim = D;
        res[j].patch = adi_alloc((size_t)N * D, sizeof(float));
        res[j].cls = adi_alloc((size_t)D, sizeof(float));
        if (!res[j].patch || !res[j].cls) st = AD_E_NOMEM;
    }
    if (!st) st = ensure_scratch(ctx, (size_t)T, (size_t)N);
    if (!st) st = ensure_pos(ctx, gh, gw);
    if (!st) st = ensure_unpack(ctx);
    if (st) {
        for (int j = 0; res && j < n_layers; j++) ad_features_free(&res[j]);
        adi_free(res);
        adi_free(blk);
        return st;
    }

    /* The context's OpenMP threads each call OpenBLAS on their own rows, BLAS single-threaded
     * inside the regions (adi_blas_serial): nothing outside the context changes. */
    embed(ctx, in, gh, gw);
    for (int b = 0; b <= last; b++) {
        block_forward(ctx, b, T);
        for (int j = 0; j < n_layers; j++)
            if (blk[j] == b) emit(ctx, N, norm, &res[j]);
    }

    memcpy(outs, res, (size_t)n_layers * sizeof *res);
    adi_free(res);
    adi_free(blk);
    return AD_OK;
}

ad_status ad_extract(ad_context *ctx, const ad_input *in, ad_features *out)
{
    const int last = -1;
    return ad_extract_layers(ctx, in, &last, 1, 1, out);
}

ad_status ad_extract_image(ad_context *ctx, const ad_image *img, int resolution, ad_features *out)
{
    if (!ctx || !img || !out) return adi_fail(AD_E_ARG, "ad_extract_image: NULL argument");
    ad_input in;
    memset(&in, 0, sizeof in);
    ad_status st = ad_preprocess(img, resolution, &in);
    if (st) return st;
    st = ad_extract(ctx, &in, out);
    ad_input_free(&in);
    return st;
}
