/* ad_model: the weights plus the configuration the forward pass needs, and its public summary. */
#include "backbone/backbone.h"

#include <stdio.h>
#include <string.h>

/* Hub names of the four official sizes (dinov2 hubconf.py / vision_transformer.py vit_small,
 * vit_base, vit_large, vit_giant2): width and depth identify them. */
static const struct {
    int dim, depth;
    const char *name;
} known[] = {
    {384, 12, "vits14"},
    {768, 12, "vitb14"},
    {1024, 24, "vitl14"},
    {1536, 40, "vitg14"},
};

void bb_model_name(int dim, int depth, int n_registers, int patch, int pos_grid, char *out,
                   size_t n)
{
    snprintf(out, n, "custom");
    /* official checkpoints: 14x14 patches, 518/14 = 37 positions, 0 or 4 registers */
    if (patch != 14 || pos_grid != 37 || (n_registers != 0 && n_registers != 4)) return;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (dim == known[i].dim && depth == known[i].depth) {
            snprintf(out, n, "%s%s", known[i].name, n_registers ? "_reg4" : "");
            return;
        }
}

void bb_linear_shape(const adi_weights *w, int i, int *N, int *K)
{
    const int D = w->dim, H = w->ffn_hidden, Hw = w->swiglu ? 2 * H : H;
    const int shape[5][2] = {{3 * D, D}, {D, D}, {Hw, D}, {D, H}, {D, 3 * w->patch * w->patch}};
    *N = shape[i][0];
    *K = shape[i][1];
}

/* One matrix (N x K rows) into panels, in place when the panels take no more room than the
 * rows (N a multiple of 32), else into *extra (advanced); tmp holds any one matrix. */
static const float *pack_one(const float *src, int N, int K, float *tmp, float **extra)
{
    size_t n = bb_gemm_packed_floats(N, K);
    bb_gemm_pack(src, K, N, K, 0, bb_gemm_panels(N), tmp);
    float *dst = n == (size_t)N * K ? (float *)src : *extra; /* the arena is the model's own */
    if (dst != src) *extra += (n + 15) / 16 * 16;
    memcpy(dst, tmp, n * sizeof(float));
    return dst;
}

/* Where the CPU has AVX-512F the forward pass reads the linear layers through gemm.c, which
 * wants them in panels: they are packed once here, before the model can be shared, instead of
 * once per block per image (a fifth of a 224 x 224 pass). In place: no second copy. */
static ad_status prepare_linear(ad_model *m)
{
    adi_weights *w = &m->w;
    int shape[5][2];
    for (int i = 0; i < 5; i++) bb_linear_shape(w, i, &shape[i][0], &shape[i][1]);
    m->lin = adi_calloc((size_t)w->depth, sizeof *m->lin);
    if (!m->lin) return AD_E_NOMEM;
    for (int b = 0; b < w->depth; b++) {
        const adi_block_weights *bw = &w->blocks[b];
        m->lin[b] = (bb_linear){bw->qkv_w, bw->proj_w, bw->fc1_w, bw->fc2_w};
    }
    m->patch = w->patch_w;
    if (!bb_cpu_has_avx512()) return AD_OK;
    size_t extra = 0, big = 0;
    for (int i = 0; i < 5; i++) {
        int N = shape[i][0], K = shape[i][1];
        size_t n = bb_gemm_packed_floats(N, K), times = i < 4 ? (size_t)w->depth : 1;
        if (n != (size_t)N * K) extra += (n + 15) / 16 * 16 * times;
        big = n > big ? n : big;
    }
    float *tmp = adi_alloc(big, sizeof(float));
    m->pack_extra = extra ? adi_alloc(extra, sizeof(float)) : NULL;
    if (!tmp || (extra && !m->pack_extra)) {
        adi_free(tmp);
        return AD_E_NOMEM;
    }
    float *ex = m->pack_extra;
    m->patch = pack_one(w->patch_w, shape[4][0], shape[4][1], tmp, &ex);
    w->patch_w = NULL;
    for (int b = 0; b < w->depth; b++) {
        adi_block_weights *bw = &w->blocks[b];
        bb_linear *l = &m->lin[b];
        l->qkv = pack_one(l->qkv, shape[0][0], shape[0][1], tmp, &ex);
        l->proj = pack_one(l->proj, shape[1][0], shape[1][1], tmp, &ex);
        l->fc1 = pack_one(l->fc1, shape[2][0], shape[2][1], tmp, &ex);
        l->fc2 = pack_one(l->fc2, shape[3][0], shape[3][1], tmp, &ex);
        /* the original layout is gone: nothing may read these as [N, K] rows any more */
        bw->qkv_w = bw->proj_w = bw->fc1_w = bw->fc2_w = NULL;
    }
    adi_free(tmp);
    m->packed = 1;
    return AD_OK;
}

ad_model *ad_model_load(const char *path)
{
    if (!path) return adi_fail_null(AD_E_ARG, "ad_model_load: path is NULL");
    ad_model *m = adi_calloc(1, sizeof *m);
    if (!m) return NULL;
    if (adi_weights_load(path, &m->w) != AD_OK) {
        adi_free(m);
        return NULL;
    }
    const adi_weights *w = &m->w;
    /* The loader checks shapes; these are the assumptions of the forward pass itself. */
    if (w->dim < 1 || w->heads < 1 || w->dim % w->heads || w->depth < 1 || w->patch < 1 ||
        w->pos_grid < 1 || w->ffn_hidden < 1 || w->n_registers < 0 || !w->blocks) {
        adi_weights_free(&m->w);
        adi_free(m);
        return adi_fail_null(AD_E_FORMAT,
                            "%s: unsupported configuration (dim %d, heads %d, depth %d)", path,
                            w->dim, w->heads, w->depth);
    }
    bb_model_name(w->dim, w->depth, w->n_registers, w->patch, w->pos_grid, m->name, sizeof m->name);
    ad_model_info *in = &m->info;
    in->dim = w->dim;
    in->depth = w->depth;
    in->heads = w->heads;
    in->head_dim = w->dim / w->heads;
    in->ffn_hidden = w->ffn_hidden;
    in->swiglu = w->swiglu;
    in->n_registers = w->n_registers;
    in->patch_size = w->patch;
    in->pos_grid = w->pos_grid;
    /* dinov2 hub: _reg models are built with interpolate_antialias=True, offset 0; the others
     * with antialias False, offset 0.1 (docs/design.md, "Backbone") */
    in->pos_interp = w->n_registers ? AD_POS_ANTIALIAS : AD_POS_SCALE_FACTOR;
    in->format = m->w.format;
    in->dtype = m->w.dtype;
    in->name = m->name;
    in->n_params = w->n_params;
    in->fingerprint = w->fingerprint;
    if (prepare_linear(m) != AD_OK) {
        ad_model_free(m);
        return adi_fail_null(AD_E_NOMEM, "%s: out of memory preparing the weights", path);
    }
    return m;
}

void ad_model_free(ad_model *m)
{
    if (!m) return;
    adi_weights_free(&m->w);
    adi_free(m->lin);
    adi_free(m->pack_extra);
    adi_free(m);
}

ad_model_info ad_model_get_info(const ad_model *m)
{
    ad_model_info z;
    memset(&z, 0, sizeof z);
    if (!m) return z;
    return m->info;
}
