/* ad_extract_layers agrees with ad_extract (-1 = the last block, duplicates allowed), the
 * un-normed output through the final LayerNorm gives the normed one, scratch buffers reused
 * across sizes give the same result as a fresh context, and the model summary (name, format,
 * fingerprint) is what the files hold. */
#include "backbone/backbone.h"
#include "testutil.h"

#include <string.h>

static int same(const ad_features *a, const ad_features *b)
{
    size_t n = (size_t)a->grid_h * a->grid_w * a->dim;
    return a->grid_h == b->grid_h && a->grid_w == b->grid_w && a->dim == b->dim &&
           !memcmp(a->patch, b->patch, n * sizeof(float)) &&
           !memcmp(a->cls, b->cls, (size_t)a->dim * sizeof(float));
}

static void fill(ad_input *in, int w, int h, unsigned seed)
{
    in->width = w;
    in->height = h;
    in->data = malloc(sizeof(float) * 3 * w * h);
    for (int i = 0; i < 3 * w * h; i++) {
        seed = seed * 1664525u + 1013904223u;
        in->data[i] = (float)(seed >> 8) / 16777216.0f * 4.0f - 2.0f;
    }
}

static void test_names(void)
{
    static const struct {
        int dim, depth, reg, patch, grid;
        const char *want;
    } cases[] = {
        {384, 12, 0, 14, 37, "vits14"},  {768, 12, 4, 14, 37, "vitb14_reg4"},
        {1024, 24, 0, 14, 37, "vitl14"}, {1536, 40, 4, 14, 37, "vitg14_reg4"},
        {384, 2, 0, 14, 37, "custom"},   {384, 12, 0, 16, 37, "custom"},
        {128, 2, 0, 14, 37, "custom"},   {768, 12, 2, 14, 37, "custom"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        bb_model_name(cases[i].dim, cases[i].depth, cases[i].reg, cases[i].patch, cases[i].grid,
                      name, sizeof name);
        CHECK(!strcmp(name, cases[i].want), "dim %d depth %d reg %d patch %d: '%s', expected '%s'",
              cases[i].dim, cases[i].depth, cases[i].reg, cases[i].patch, name, cases[i].want);
    }
}

int main(void)
{
    test_names();
    ad_model *mp = ad_model_load(t_data("dinov2/tiny_reg.pth"));
    ad_model *ms = ad_model_load(t_data("dinov2/tiny_reg.safetensors"));
    CHECK(mp && ms, "loading tiny_reg: %s", ad_errmsg());
    if (!mp || !ms) return t_done("extract_layers_consistent");
    ad_model_info ip = ad_model_get_info(mp), is = ad_model_get_info(ms);
    printf("tiny_reg.pth: %s %s %s dim %d depth %d heads %d x %d ffn %d reg %d params %llu fp "
           "%016llx\n",
           ip.name, ip.format, ip.dtype, ip.dim, ip.depth, ip.heads, ip.head_dim, ip.ffn_hidden,
           ip.n_registers, (unsigned long long)ip.n_params, (unsigned long long)ip.fingerprint);
    CHECK(!strcmp(ip.name, "custom") && !strcmp(ip.format, "pth") &&
              !strcmp(is.format, "safetensors"),
          "name %s, formats %s / %s", ip.name, ip.format, is.format);
    CHECK(ip.fingerprint == is.fingerprint && ip.n_params == is.n_params,
          "the two formats of the same weights differ: %llx/%llu vs %llx/%llu",
          (unsigned long long)ip.fingerprint, (unsigned long long)ip.n_params,
          (unsigned long long)is.fingerprint, (unsigned long long)is.n_params);
    CHECK(ip.head_dim == 64 && ip.n_registers == 4 && ip.pos_interp == AD_POS_ANTIALIAS,
          "head_dim %d registers %d interp %d", ip.head_dim, ip.n_registers, (int)ip.pos_interp);

    ad_context_params cp = ad_context_default_params();
    cp.n_threads = 2;
    ad_context *ctx = ad_context_new(mp, cp);
    ad_input small, big;
    fill(&small, 224, 224, 1);
    fill(&big, 672, 448, 2);

    ad_features last = {0}, outs[3];
    memset(outs, 0, sizeof outs);
    int layers[3] = {-1, 1, 0};
    CHECK_OK(ad_extract(ctx, &small, &last));
    CHECK_OK(ad_extract_layers(ctx, &small, layers, 3, 1, outs));
    CHECK(outs[0].patch && same(&outs[0], &last), "layer -1 differs from ad_extract");
    CHECK(outs[1].patch && same(&outs[1], &last),
          "layer 1 (the last of 2) differs from ad_extract");
    size_t w;
    double d01 = outs[2].patch ? t_maxdiff_f32(outs[2].patch, last.patch, 256 * 128, &w) : 0;
    printf("block 0 vs block 1 outputs: max|diff| %.3g (must differ)\n", d01);
    CHECK(d01 > 1e-3, "block 0 output equals the last block's");

    /* norm = 0, then the final LayerNorm by hand: the normed output, bit for bit */
    ad_features raw = {0};
    int l1 = -1;
    CHECK_OK(ad_extract_layers(ctx, &small, &l1, 1, 0, &raw));
    if (raw.patch && last.patch) {
        const adi_weights *wt = &mp->w;
        for (int n = 0; n < 256; n++)
            bb_layernorm_row(bb_impl_auto(), raw.patch + (size_t)n * 128,
                             raw.patch + (size_t)n * 128, 128, wt->norm_w, wt->norm_b, 1e-6f);
        bb_layernorm_row(bb_impl_auto(), raw.cls, raw.cls, 128, wt->norm_w, wt->norm_b, 1e-6f);
        CHECK(same(&raw, &last), "norm=0 output + final LayerNorm differs from the normed output");
    }

    /* a context that saw a larger and a smaller size gives what a fresh one gives */
    ad_features a = {0}, b = {0}, c = {0};
    CHECK_OK(ad_extract(ctx, &big, &a));
    CHECK_OK(ad_extract(ctx, &small, &b));
    CHECK(a.grid_h == 32 && a.grid_w == 48, "672x448 input -> grid %dx%d, expected 32x48", a.grid_h,
          a.grid_w);
    CHECK(b.patch && same(&b, &last), "224x224 after 672x448 differs from the first 224x224 run");
    ad_context *fresh = ad_context_new(mp, cp);
    CHECK_OK(ad_extract(fresh, &big, &c));
    CHECK(c.patch && a.patch && same(&a, &c), "672x448: reused context differs from a fresh one");
    printf("scratch reuse across sizes: %s\n",
           c.patch && a.patch && same(&a, &c) && same(&b, &last) ? "bit-identical" : "DIFFERENT");

    /* both formats give the same features */
    ad_context *cs = ad_context_new(ms, cp);
    ad_features s = {0};
    CHECK_OK(ad_extract(cs, &small, &s));
    CHECK(s.patch && same(&s, &last), ".pth and .safetensors features differ");

    ad_features_free(&last);
    ad_features_free(&raw);
    ad_features_free(&a);
    ad_features_free(&b);
    ad_features_free(&c);
    ad_features_free(&s);
    for (int i = 0; i < 3; i++) ad_features_free(&outs[i]);
    free(small.data);
    free(big.data);
    ad_context_free(ctx);
    ad_context_free(fresh);
    ad_context_free(cs);
    ad_model_free(mp);
    ad_model_free(ms);
    return t_done("extract_layers_consistent");
}
