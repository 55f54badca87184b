/* Hugging Face safetensors: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the
 * raw little-endian tensor bytes; offsets are relative to the first byte after the header. */
#include "weights/tensor_file.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The safetensors reference implementation refuses headers above 100 MB (N_MAX_HEADER);
 * the ViT-g header is ~100 kB. */
#define ST_MAX_HEADER ((uint64_t)100000000)

/* Every dtype of the safetensors spec, so that unrelated tensors of other types are still
 * size-checked; only the first three can be loaded. */
static const struct {
    const char *name;
    tf_dtype dtype;
    unsigned size_bits;
} st_dtypes[] = {
    {"F32", TF_F32, 32},       {"F16", TF_F16, 16},       {"BF16", TF_BF16, 16},
    {"F64", TF_OTHER, 64},     {"I64", TF_OTHER, 64},     {"U64", TF_OTHER, 64},
    {"I32", TF_OTHER, 32},     {"U32", TF_OTHER, 32},     {"I16", TF_OTHER, 16},
    {"U16", TF_OTHER, 16},     {"I8", TF_OTHER, 8},       {"U8", TF_OTHER, 8},
    {"BOOL", TF_OTHER, 8},     {"F8_E4M3", TF_OTHER, 8},  {"F8_E5M2", TF_OTHER, 8},
    {"F8_E8M0", TF_OTHER, 8},  {"F6_E2M3", TF_OTHER, 6},  {"F6_E3M2", TF_OTHER, 6},
    {"F4", TF_OTHER, 4},       {"C64", TF_OTHER, 64},
};

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0.0 && v <= 9007199254740992.0) || v != (double)(uint64_t)v) return 0;
    *out = (uint64_t)v;
    return 1;
}

static ad_status parse_entry(tf_file *f, const cJSON *item, uint64_t data_start, uint64_t data_size)
{
    const char *name = item->string;
    if (!cJSON_IsObject(item))
        return adi_fail(AD_E_FORMAT, "header entry '%s' is not an object", name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo))
        return adi_fail(AD_E_FORMAT, "tensor '%s': header entry lacks dtype, shape or data_offsets",
                       name);
    tf_tensor t;
    memset(&t, 0, sizeof t);
    t.entry = -1;
    t.contiguous = 1;
    int known = -1;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(jd->valuestring, st_dtypes[i].name) == 0) known = (int)i;
    if (known < 0)
        return adi_fail(AD_E_FORMAT, "tensor '%s': unknown dtype '%.16s'", name, jd->valuestring);
    t.dtype = st_dtypes[known].dtype;
    snprintf(t.dtype_name, sizeof t.dtype_name, "%s", st_dtypes[known].name);

    int nd = cJSON_GetArraySize(js);
    if (nd > TF_MAX_DIMS)
        return adi_fail(AD_E_FORMAT, "tensor '%s': %d dimensions (at most %d)", name, nd, TF_MAX_DIMS);
    t.ndim = nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (!json_uint(cJSON_GetArrayItem(js, i), &d))
            return adi_fail(AD_E_FORMAT, "tensor '%s': shape[%d] is not a non-negative integer", name,
                           i);
        t.shape[i] = (int64_t)d;
        if (d != 0 && numel > UINT64_MAX / d) overflow = 1;
        else numel *= d;
    }
    uint64_t begin, end;
    if (cJSON_GetArraySize(jo) != 2 || !json_uint(cJSON_GetArrayItem(jo, 0), &begin) ||
        !json_uint(cJSON_GetArrayItem(jo, 1), &end))
        return adi_fail(AD_E_FORMAT, "tensor '%s': data_offsets is not [begin, end]", name);
    if (begin > end || end > data_size)
        return adi_fail(AD_E_FORMAT,
                       "tensor '%s': data_offsets [%llu, %llu] outside the data area (%llu bytes)",
                       name, (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)data_size);
    /* in bits, so that sub-byte dtypes check too */
    uint64_t bits = st_dtypes[known].size_bits, nb = end - begin;
    char sb[160];
    if (overflow || nb > UINT64_MAX / 8 || (nb * 8) % bits != 0 || numel != nb * 8 / bits)
        return adi_fail(AD_E_FORMAT, "tensor '%s': %llu bytes for shape %s of %s", name,
                       (unsigned long long)(end - begin), tf_shape_str(t.shape, nd, sb, sizeof sb),
                       t.dtype_name);
    t.numel = numel;
    t.offset = data_start + begin;
    return tf_add(f, name, strlen(name), &t);
}

ad_status tf_open_safetensors(tf_file *f)
{
    uint8_t b8[8];
    if (f->file_size < 8)
        return adi_fail(AD_E_FORMAT, "too short for safetensors (%llu bytes)",
                       (unsigned long long)f->file_size);
    ad_status st = tf_pread(f, 0, b8, 8);
    if (st) return st;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | b8[i];
    if (n > f->file_size - 8)
        return adi_fail(AD_E_FORMAT, "safetensors header length %llu exceeds the file size %llu",
                       (unsigned long long)n, (unsigned long long)f->file_size);
    if (n > ST_MAX_HEADER || n < 2)
        return adi_fail(AD_E_FORMAT, "safetensors header length %llu is absurd",
                       (unsigned long long)n);
    char *hdr = adi_malloc((size_t)n + 1);
    if (!hdr) return adi_fail(AD_E_NOMEM, "out of memory for the safetensors header");
    if ((st = tf_pread(f, 8, hdr, (size_t)n))) {
        adi_free(hdr);
        return st;
    }
    hdr[n] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = end && end >= hdr && end <= hdr + n ? (size_t)(end - hdr) : 0;
        cJSON_Delete(root);
        adi_free(hdr);
        return adi_fail(AD_E_FORMAT, "safetensors header is not a valid JSON object (near byte %zu)",
                       8 + at);
    }
    uint64_t data_start = 8 + n, data_size = f->file_size - data_start;
    f->data_end = f->file_size;
    for (const cJSON *it = root->child; it; it = it->next) {
        if (!it->string) continue;
        if (strcmp(it->string, "__metadata__") == 0) continue;
        if ((st = parse_entry(f, it, data_start, data_size))) break;
    }
    cJSON_Delete(root);
    adi_free(hdr);
    if (st) return st;
    return tf_index(f);
}
