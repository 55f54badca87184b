/* Both checkpoint formats of each golden model load, infer the documented configuration, hold
 * exactly the values stored in the file (checked against the raw safetensors bytes, q/k/v
 * fusion included) and agree bit for bit, fingerprint included. */
#include "wtest.h"

typedef struct {
    const char *name;
    int dim, depth, heads, ffn, regs, swiglu;
} model_case;

static void check_config(const adi_weights *w, const model_case *c, const char *fmt)
{
    CHECK(w->dim == c->dim && w->depth == c->depth && w->heads == c->heads &&
              w->ffn_hidden == c->ffn && w->n_registers == c->regs && w->swiglu == c->swiglu &&
              w->patch == 14 && w->pos_grid == 37,
          "%s.%s: config dim %d depth %d heads %d ffn %d regs %d swiglu %d patch %d grid %d", c->name,
          fmt, w->dim, w->depth, w->heads, w->ffn_hidden, w->n_registers, w->swiglu, w->patch,
          w->pos_grid);
    CHECK(!strcmp(w->format, fmt), "%s: format '%s', expected '%s'", c->name, w->format, fmt);
    CHECK(!strcmp(w->dtype, "F32"), "%s.%s: dtype '%s'", c->name, fmt, w->dtype);
    CHECK(((uintptr_t)w->arena & 63) == 0, "%s.%s: arena not 64-byte aligned", c->name, fmt);
}

/* Every tensor of the F32 safetensors file against the loaded arrays, element by element. */
static void check_against_raw(const adi_weights *w, const char *path, const char *label)
{
    w_st s;
    if (!w_st_open(path, &s)) {
        CHECK(0, "%s: cannot parse %s in the test", label, path);
        return;
    }
    double worst = 0;
    const char *worst_at = "-";
    size_t checked = 0, expected = 0;
    for (const cJSON *it = s.hdr->child; it; it = it->next) {
        if (!strcmp(it->string, "__metadata__") || !strcmp(it->string, "embeddings.mask_token"))
            continue;
        size_t n = 0;
        const float *dst = w_hf_target(w, it->string, &n);
        CHECK(dst != NULL, "%s: no loaded array for '%s'", label, it->string);
        if (!dst) continue;
        const cJSON *off = cJSON_GetObjectItem(it, "data_offsets");
        size_t b = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
        size_t e = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        CHECK(e - b == n * 4, "%s: '%s' is %zu bytes, loaded %zu floats", label, it->string, e - b, n);
        if (e - b != n * 4) continue;
        float *raw = malloc(n * 4);
        memcpy(raw, s.data + b, n * 4);
        size_t where;
        double d = t_maxdiff_f32(raw, dst, n, &where);
        if (d > worst || memcmp(raw, dst, n * 4)) {
            worst = d;
            worst_at = it->string;
        }
        CHECK(memcmp(raw, dst, n * 4) == 0, "%s: '%s' differs from the file, max %g at %zu", label,
              it->string, d, where);
        free(raw);
        checked += n;
    }
    w_fields fl;
    w_list(w, &fl);
    for (int i = 0; i < fl.count; i++) expected += fl.n[i];
    CHECK(checked == expected && expected == w->n_params,
          "%s: %zu values checked, %zu loaded, n_params %llu", label, checked, expected,
          (unsigned long long)w->n_params);
    printf("%-12s safetensors vs raw file bytes: max |diff| %g (worst '%s'), %zu values\n", label,
           worst, worst_at, checked);
    w_st_close(&s);
}

int main(void)
{
    static const model_case cases[] = {
        {"tiny", 128, 2, 2, 512, 0, 0},
        {"tiny_reg", 128, 2, 2, 512, 4, 0},
        /* SwiGLUFFNFused (dinov2/layers/swiglu_ffn.py): hidden = (int(4D * 2/3) + 7) // 8 * 8 */
        {"tiny_swiglu", 192, 2, 3, (4 * 192 * 2 / 3 + 7) / 8 * 8, 0, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const model_case *mc = &cases[c];
        char rel[128];
        adi_weights a, b;
        snprintf(rel, sizeof rel, "dinov2/%s.pth", mc->name);
        const char *pth = t_data(rel);
        snprintf(rel, sizeof rel, "dinov2/%s.safetensors", mc->name);
        const char *sft = t_data(rel);
        ad_status sa = adi_weights_load(pth, &a);
        CHECK(sa == AD_OK, "%s: %s", pth, ad_errmsg());
        ad_status sb = adi_weights_load(sft, &b);
        CHECK(sb == AD_OK, "%s: %s", sft, ad_errmsg());
        if (sa || sb) {
            if (!sa) adi_weights_free(&a);
            if (!sb) adi_weights_free(&b);
            continue;
        }
        model_case m = *mc;
        check_config(&a, &m, "pth");
        check_config(&b, &m, "safetensors");
        CHECK((a.register_tokens != NULL) == (m.regs > 0), "%s: register_tokens %p", m.name,
              (const void *)a.register_tokens);
        check_against_raw(&b, sft, m.name);

        w_fields fa, fb;
        w_list(&a, &fa);
        w_list(&b, &fb);
        double worst = 0;
        const char *worst_at = "-";
        size_t worst_i = 0;
        int same = fa.count == fb.count;
        for (int i = 0; same && i < fa.count; i++) {
            size_t where;
            double d = t_maxdiff_f32(fa.p[i], fb.p[i], fa.n[i], &where);
            int eq = memcmp(fa.p[i], fb.p[i], fa.n[i] * sizeof(float)) == 0;
            CHECK(eq, "%s: %s differs between pth and safetensors, max %g at %zu", m.name,
                  fa.name[i], d, where);
            if (!eq || d > worst) {
                worst = d;
                worst_at = fa.name[i];
                worst_i = where;
            }
        }
        CHECK(same, "%s: %d vs %d tensors", m.name, fa.count, fb.count);
        printf("%-12s pth vs safetensors: max |diff| %g (at %s[%zu]), %llu params, fingerprint "
               "%016llx / %016llx\n", m.name, worst, worst_at, worst_i,
               (unsigned long long)a.n_params, (unsigned long long)a.fingerprint,
               (unsigned long long)b.fingerprint);
        CHECK(a.n_params == b.n_params, "%s: n_params %llu vs %llu", m.name,
              (unsigned long long)a.n_params, (unsigned long long)b.n_params);
        CHECK(a.fingerprint == b.fingerprint, "%s: fingerprints differ", m.name);
        adi_weights_free(&a);
        adi_weights_free(&b);
        CHECK(a.arena == NULL && a.blocks == NULL, "free leaves dangling pointers");
    }

    /* Different models must not share a fingerprint. */
    uint64_t fp[3] = {0};
    for (int c = 0; c < 3; c++) {
        char rel[128];
        adi_weights w;
        snprintf(rel, sizeof rel, "dinov2/%s.safetensors", cases[c].name);
        if (adi_weights_load(t_data(rel), &w) == AD_OK) {
            fp[c] = w.fingerprint;
            adi_weights_free(&w);
        }
    }
    CHECK(fp[0] != fp[1] && fp[0] != fp[2] && fp[1] != fp[2], "fingerprints collide: %llx %llx %llx",
          (unsigned long long)fp[0], (unsigned long long)fp[1], (unsigned long long)fp[2]);
    return t_done("test_weights_formats_agree");
}
