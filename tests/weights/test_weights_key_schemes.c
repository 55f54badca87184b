/* Key names: a common prefix ("dinov2.", "model.") is accepted, unrelated extra tensors of any
 * dtype and a missing mask_token are ignored; two models in one file, or blocks not numbered
 * 0..L-1, are refused with the offending key named. */
#include "wtest.h"

/* Copies src with every key renamed through `rename` (NULL: drop the tensor). */
typedef const char *(*rename_fn)(const char *key, char *buf, size_t cap);

static int rewrite(const char *src, const char *out, rename_fn fn, int add_extra, int keep_too)
{
    w_st s;
    if (!w_st_open(src, &s)) return 0;
    cJSON *n = cJSON_CreateObject();
    for (cJSON *it = s.hdr->child; it; it = it->next) {
        if (!strcmp(it->string, "__metadata__")) {
            cJSON_AddItemToObject(n, it->string, cJSON_Duplicate(it, 1));
            continue;
        }
        char buf[256];
        const char *k = fn(it->string, buf, sizeof buf);
        if (k) cJSON_AddItemToObject(n, k, cJSON_Duplicate(it, 1));
        if (keep_too) cJSON_AddItemToObject(n, it->string, cJSON_Duplicate(it, 1));
    }
    if (add_extra) {
        /* a classifier head stored as F64: unrelated, so ignored (its bytes reuse the data) */
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "dtype", "F64");
        cJSON *sh = cJSON_CreateArray(), *of = cJSON_CreateArray();
        cJSON_AddItemToArray(sh, cJSON_CreateNumber(8));
        cJSON_AddItemToArray(sh, cJSON_CreateNumber(16));
        cJSON_AddItemToArray(of, cJSON_CreateNumber(0));
        cJSON_AddItemToArray(of, cJSON_CreateNumber(8 * 16 * 8));
        cJSON_AddItemToObject(t, "shape", sh);
        cJSON_AddItemToObject(t, "data_offsets", of);
        cJSON_AddItemToObject(n, "classifier.weight", t);
    }
    cJSON_Delete(s.hdr);
    s.hdr = n;
    int ok = w_st_save(&s, out);
    w_st_close(&s);
    return ok;
}

static const char *pre_dinov2(const char *k, char *b, size_t c) { snprintf(b, c, "dinov2.%s", k); return b; }
static const char *pre_model(const char *k, char *b, size_t c) { snprintf(b, c, "model.%s", k); return b; }
static const char *no_mask(const char *k, char *b, size_t c)
{
    (void)b, (void)c;
    return strcmp(k, "embeddings.mask_token") ? k : NULL;
}
/* encoder.layer.1.* -> encoder.layer.2.*: a gap at 1 */
static const char *gap(const char *k, char *b, size_t c)
{
    if (strncmp(k, "encoder.layer.1.", 16)) return k;
    snprintf(b, c, "encoder.layer.2.%s", k + 16);
    return b;
}
/* leading zero: encoder.layer.01.* is not block 1 */
static const char *lead0(const char *k, char *b, size_t c)
{
    if (strncmp(k, "encoder.layer.1.", 16)) return k;
    snprintf(b, c, "encoder.layer.01.%s", k + 16);
    return b;
}

static void same_as(const adi_weights *ref, const char *path, const char *label)
{
    adi_weights w;
    ad_status st = adi_weights_load(path, &w);
    CHECK(st == AD_OK, "%s: %s", label, ad_errmsg());
    if (st) return;
    w_fields fa, fb;
    w_list(ref, &fa);
    w_list(&w, &fb);
    double worst = 0;
    int differ = fa.count != fb.count;
    for (int i = 0; i < fa.count && i < fb.count; i++) {
        worst = fmax(worst, t_maxdiff_f32(fa.p[i], fb.p[i], fa.n[i], NULL));
        differ |= memcmp(fa.p[i], fb.p[i], fa.n[i] * 4) != 0;
    }
    CHECK(!differ && w.fingerprint == ref->fingerprint && w.n_registers == ref->n_registers,
          "%s: differs from the original (max %g)", label, worst);
    printf("%-32s max |diff| %g, fingerprint %s\n", label, worst,
           w.fingerprint == ref->fingerprint ? "same" : "DIFFERENT");
    adi_weights_free(&w);
}

static void refused(const char *path, const char *want, const char *label)
{
    ad_status st;
    int clean = w_fails_cleanly(path, &st);
    CHECK(st != AD_OK && clean, "%s: status %d, '%s'", label, (int)st, ad_errmsg());
    CHECK(strstr(ad_errmsg(), want) != NULL, "%s: '%s' lacks '%s'", label, ad_errmsg(), want);
    printf("%-32s -> %s\n", label, strstr(ad_errmsg(), ": ") ? strstr(ad_errmsg(), ": ") + 2 : "");
}

int main(void)
{
    const char *src = t_data("dinov2/tiny_reg.safetensors");
    const char *out = t_tmp("weights_keys.safetensors");
    adi_weights ref;
    CHECK_OK(adi_weights_load(src, &ref));
    if (t_failures) return t_done("test_weights_key_schemes");

    CHECK(rewrite(src, out, pre_dinov2, 1, 0), "write");
    same_as(&ref, out, "prefix dinov2. + F64 extra");
    CHECK(rewrite(src, out, pre_model, 0, 0), "write");
    same_as(&ref, out, "prefix model.");
    CHECK(rewrite(src, out, no_mask, 1, 0), "write");
    same_as(&ref, out, "no mask_token");

    CHECK(rewrite(src, out, pre_model, 0, 1), "write");
    refused(out, "several models", "two models in one file");
    CHECK(rewrite(src, out, gap, 0, 0), "write");
    refused(out, "no tensor of block 1", "blocks 0 and 2");
    CHECK(rewrite(src, out, lead0, 0, 0), "write");
    refused(out, "encoder.layer.01.", "block '01'");

    adi_weights_free(&ref);
    return t_done("test_weights_key_schemes");
}
