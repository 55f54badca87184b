/* F16 and BF16 safetensors (converted copies of tiny.safetensors written here) load as float32:
 * every value is the exact decoding of the stored half, within the dtype's rounding of the
 * F32 original; all 65536 bit patterns of each dtype decode exactly; fingerprints differ. */
#include "wtest.h"
#include "weights/tensor_file.h"

#include <math.h>

/* Round-to-nearest-even float32 -> binary16 (test side). */
static uint16_t enc_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);           /* >= 65520: inf */
    if (ax < 0x38800000u)                                                /* < 2^-14: subnormal */
        return (uint16_t)(sign | (uint16_t)nearbyintf(fabsf(f) * 16777216.0f));
    uint32_t h = (((ax >> 23) - 112) << 10) | ((ax & 0x7fffffu) >> 13), rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static uint16_t enc_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* Independent decoders (arithmetic, not bit assembly). */
static float dec_f16(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return (float)((h & 0x8000) ? -v : v);
}

static float dec_bf16(uint16_t h)
{
    int e = (h >> 7) & 255, m = h & 127;
    double v = e == 0 ? ldexp(m, -133) : e == 255 ? (m ? NAN : INFINITY) : ldexp(128 + m, e - 134);
    return (float)((h & 0x8000) ? -v : v);
}

static int same_value(float a, float b)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return memcmp(&a, &b, 4) == 0;
}

/* Rewrites every F32 tensor of src as `dtype` (F16 or BF16) into path; with `only` set, just
 * that tensor. With all_patterns, pos_embed holds every 16-bit pattern in turn. */
static int write_converted(const char *src, const char *path, const char *dtype, const char *only,
                           int all_patterns)
{
    w_st s;
    if (!w_st_open(src, &s)) return 0;
    int bf = !strcmp(dtype, "BF16");
    uint8_t *out = malloc(s.data_len);
    size_t pos = 0;
    for (cJSON *it = s.hdr->child; it; it = it->next) {
        if (!strcmp(it->string, "__metadata__")) continue;
        cJSON *off = cJSON_GetObjectItem(it, "data_offsets");
        size_t b = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
        size_t e = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        size_t n = (e - b) / 4;
        int conv = !only || !strcmp(it->string, only);
        if (conv) {
            int pat = all_patterns && !strcmp(it->string, "embeddings.position_embeddings");
            for (size_t i = 0; i < n; i++) {
                float f;
                memcpy(&f, s.data + b + 4 * i, 4);
                uint16_t h = pat ? (uint16_t)i : bf ? enc_bf16(f) : enc_f16(f);
                out[pos + 2 * i] = (uint8_t)h;
                out[pos + 2 * i + 1] = (uint8_t)(h >> 8);
            }
            cJSON_ReplaceItemInObject(it, "dtype", cJSON_CreateString(dtype));
        } else {
            memcpy(out + pos, s.data + b, e - b);
        }
        size_t len = conv ? 2 * n : e - b;
        cJSON *no = cJSON_CreateArray();
        cJSON_AddItemToArray(no, cJSON_CreateNumber((double)pos));
        cJSON_AddItemToArray(no, cJSON_CreateNumber((double)(pos + len)));
        cJSON_ReplaceItemInObject(it, "data_offsets", no);
        pos += len;
    }
    free(s.data);
    s.data = out;
    s.data_len = pos;
    int ok = w_st_save(&s, path);
    w_st_close(&s);
    return ok;
}

/* Loaded copy vs the F32 original: exact decoding of the file's halves, and within rounding. */
static void compare(const adi_weights *ref, const adi_weights *h, int bf, const char *label)
{
    w_fields fr, fh;
    w_list(ref, &fr);
    w_list(h, &fh);
    CHECK(fr.count == fh.count, "%s: %d vs %d tensors", label, fr.count, fh.count);
    double worst = 0, worst_rel = 0;
    const char *at = "-";
    size_t at_i = 0, bad = 0;
    for (int t = 0; t < fr.count && t < fh.count; t++) {
        for (size_t i = 0; i < fr.n[t]; i++) {
            float x = fr.p[t][i], y = fh.p[t][i];
            float want = bf ? dec_bf16(enc_bf16(x)) : dec_f16(enc_f16(x));
            if (!same_value(y, want)) bad++;
            double d = fabs((double)x - y);
            /* half an ulp: 2^-11 relative (F16, normal range; 2^-25 absolute below), 2^-8 (BF16) */
            double bound = bf ? fabs(x) * 0x1p-8 : fmax(fabs(x) * 0x1p-11, 0x1p-25);
            if (d > bound) bad++;
            if (d > worst) {
                worst = d;
                at = fr.name[t];
                at_i = i;
            }
            if (fabs(x) >= (bf ? 0x1p-126 : 0x1p-14) && d / fabs(x) > worst_rel)
                worst_rel = d / fabs(x);
        }
    }
    CHECK(bad == 0, "%s: %zu values are not the rounded F32 value", label, bad);
    printf("%-5s vs F32: max |diff| %.3g at %s[%zu], max rel %.3g in the normal range (bound %.3g)\n", label, worst, at,
           at_i, worst_rel, bf ? 0x1p-8 : 0x1p-11);
}

static void all_patterns(const adi_weights *w, int bf, const char *label)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < 65536; i++) {
        float want = bf ? dec_bf16((uint16_t)i) : dec_f16((uint16_t)i);
        if (!same_value(w->pos_embed[i], want)) {
            if (!bad) first = i;
            bad++;
        }
    }
    CHECK(bad == 0, "%s: %zu of 65536 bit patterns decode wrongly, first 0x%04zx -> %a", label, bad,
          first, (double)w->pos_embed[first]);
    printf("%-5s all 65536 bit patterns: %zu mismatches\n", label, bad);
}

/* The dispatched (F16C where available) and the portable conversion agree bit for bit. */
static void paths_agree(void)
{
    uint16_t *h = malloc(65536 * 2);
    float *a = malloc(65536 * 4), *b = malloc(65536 * 4);
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    /* odd offsets and lengths exercise the vector loop's tail */
    tf_f16_to_f32(h + 1, a + 1, 65535);
    tf_f16_to_f32(h, a, 1);
    tf_f16_to_f32_portable(h, b, 65536);
    size_t bad = 0, first = 0, bad_ref = 0;
    for (int i = 0; i < 65536; i++) {
        if (memcmp(&a[i], &b[i], 4)) {
            if (!bad) first = (size_t)i;
            bad++;
        }
        bad_ref += !same_value(b[i], dec_f16((uint16_t)i));
    }
    CHECK(bad == 0, "F16: dispatched and portable paths differ at %zu patterns, first 0x%04zx",
          bad, first);
    CHECK(bad_ref == 0, "F16: portable path wrong at %zu patterns", bad_ref);
    printf("F16   dispatched (%s) vs portable: %zu of 65536 patterns differ\n",
           adi_cpu_has_avx2_fma() ? "F16C" : "portable", bad);
    free(h);
    free(a);
    free(b);
}

int main(void)
{
    paths_agree();
    const char *src = t_data("dinov2/tiny.safetensors");
    adi_weights ref;
    CHECK_OK(adi_weights_load(src, &ref));
    if (t_failures) return t_done("test_weights_half_dtypes");

    static const char *dts[2] = {"F16", "BF16"};
    uint64_t fps[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "weights_tiny_%s.safetensors", dts[k]);
        const char *path = t_tmp(rel);
        CHECK(write_converted(src, path, dts[k], NULL, 0), "cannot write %s", path);
        adi_weights h;
        ad_status st = adi_weights_load(path, &h);
        CHECK(st == AD_OK, "%s: %s", path, ad_errmsg());
        if (st) continue;
        CHECK(!strcmp(h.dtype, dts[k]), "dtype '%s', expected %s", h.dtype, dts[k]);
        CHECK(h.n_params == ref.n_params && h.dim == ref.dim && h.depth == ref.depth,
              "%s: config or n_params changed", dts[k]);
        compare(&ref, &h, k == 1, dts[k]);
        fps[k] = h.fingerprint;
        CHECK(h.fingerprint != ref.fingerprint, "%s fingerprint equals F32's", dts[k]);
        adi_weights_free(&h);

        snprintf(rel, sizeof rel, "weights_patterns_%s.safetensors", dts[k]);
        path = t_tmp(rel);
        CHECK(write_converted(src, path, dts[k], NULL, 1), "cannot write %s", path);
        if (adi_weights_load(path, &h) == AD_OK) {
            all_patterns(&h, k == 1, dts[k]);
            adi_weights_free(&h);
        } else {
            CHECK(0, "%s: %s", path, ad_errmsg());
        }
    }
    CHECK(fps[0] != fps[1], "F16 and BF16 fingerprints are equal");

    /* One BF16 tensor among F32 ones: loads, reports mixed storage, that tensor rounded. */
    const char *mixed = t_tmp("weights_tiny_mixed.safetensors");
    CHECK(write_converted(src, mixed, "BF16", "encoder.layer.1.mlp.fc2.weight", 0), "write %s", mixed);
    adi_weights m;
    if (adi_weights_load(mixed, &m) == AD_OK) {
        CHECK(!strcmp(m.dtype, "mixed"), "dtype '%s', expected mixed", m.dtype);
        size_t n = (size_t)m.dim * m.ffn_hidden, bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += !same_value(m.blocks[1].fc2_w[i], dec_bf16(enc_bf16(ref.blocks[1].fc2_w[i])));
        CHECK(bad == 0, "mixed: %zu values of the BF16 tensor wrong", bad);
        CHECK(memcmp(m.blocks[1].fc1_w, ref.blocks[1].fc1_w, n * 4) == 0, "mixed: F32 tensor changed");
        CHECK(m.fingerprint != ref.fingerprint, "mixed: fingerprint equals F32's");
        adi_weights_free(&m);
    } else {
        CHECK(0, "%s: %s", mixed, ad_errmsg());
    }
    adi_weights_free(&ref);
    return t_done("test_weights_half_dtypes");
}
