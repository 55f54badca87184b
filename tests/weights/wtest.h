/* Helpers for the weight-loader tests: whole-file I/O, a safetensors header editor (cJSON) and
 * a minimal zip reader/writer to repack .pth checkpoints (stored / deflate / zip64). Written
 * independently of src/weights so that the tests do not trust the code under test. */
#ifndef AD_WTEST_H
#define AD_WTEST_H

#include "testutil.h"
#include "weights/weights.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static inline uint8_t *w_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static inline int w_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t k = fwrite(data, 1, len, f);
    return fclose(f) == 0 && k == len;
}

/* ---- the loaded tensors, in hub order, with names for messages --------------------------- */
#define W_MAX_FIELDS 1024
typedef struct {
    const float *p[W_MAX_FIELDS];
    size_t n[W_MAX_FIELDS];
    char name[W_MAX_FIELDS][48];
    int count;
} w_fields;

static inline void w_field(w_fields *fl, const float *p, size_t n, const char *name)
{
    if (fl->count >= W_MAX_FIELDS) return;
    fl->p[fl->count] = p;
    fl->n[fl->count] = n;
    snprintf(fl->name[fl->count], sizeof fl->name[0], "%s", name);
    fl->count++;
}

static inline void w_list(const adi_weights *w, w_fields *fl)
{
    size_t D = (size_t)w->dim, H = (size_t)w->ffn_hidden, G = (size_t)w->pos_grid;
    size_t P = (size_t)w->patch, h1 = w->swiglu ? 2 * H : H;
    char nm[48];
    fl->count = 0;
    w_field(fl, w->cls_token, D, "cls_token");
    w_field(fl, w->pos_embed, (1 + G * G) * D, "pos_embed");
    if (w->n_registers) w_field(fl, w->register_tokens, (size_t)w->n_registers * D, "register_tokens");
    w_field(fl, w->patch_w, D * 3 * P * P, "patch_w");
    w_field(fl, w->patch_b, D, "patch_b");
    for (int i = 0; i < w->depth; i++) {
        const adi_block_weights *b = &w->blocks[i];
#define F(ptr, n, s) (snprintf(nm, sizeof nm, "blocks.%d.%s", i, s), w_field(fl, ptr, n, nm))
        F(b->norm1_w, D, "norm1_w");
        F(b->norm1_b, D, "norm1_b");
        F(b->qkv_w, 3 * D * D, "qkv_w");
        F(b->qkv_b, 3 * D, "qkv_b");
        F(b->proj_w, D * D, "proj_w");
        F(b->proj_b, D, "proj_b");
        F(b->ls1, D, "ls1");
        F(b->norm2_w, D, "norm2_w");
        F(b->norm2_b, D, "norm2_b");
        F(b->fc1_w, h1 * D, "fc1_w");
        F(b->fc1_b, h1, "fc1_b");
        F(b->fc2_w, D * H, "fc2_w");
        F(b->fc2_b, D, "fc2_b");
        F(b->ls2, D, "ls2");
#undef F
    }
    w_field(fl, w->norm_w, D, "norm_w");
    w_field(fl, w->norm_b, D, "norm_b");
}

/* Where the Hugging Face tensor `name` must have landed in the loaded weights (NULL: not a
 * weight the loader keeps, e.g. mask_token). */
static inline const float *w_hf_target(const adi_weights *w, const char *name, size_t *n)
{
    size_t D = (size_t)w->dim;
    int i, k = 0;
    char rest[128];
    if (!strcmp(name, "embeddings.cls_token")) return *n = D, w->cls_token;
    if (!strcmp(name, "embeddings.position_embeddings"))
        return *n = (1 + (size_t)w->pos_grid * w->pos_grid) * D, w->pos_embed;
    if (!strcmp(name, "embeddings.register_tokens"))
        return *n = (size_t)w->n_registers * D, w->register_tokens;
    if (!strcmp(name, "embeddings.patch_embeddings.projection.weight"))
        return *n = D * 3 * (size_t)w->patch * w->patch, w->patch_w;
    if (!strcmp(name, "embeddings.patch_embeddings.projection.bias")) return *n = D, w->patch_b;
    if (!strcmp(name, "layernorm.weight")) return *n = D, w->norm_w;
    if (!strcmp(name, "layernorm.bias")) return *n = D, w->norm_b;
    if (sscanf(name, "encoder.layer.%d.%127s", &i, rest) != 2 || i < 0 || i >= w->depth) return NULL;
    const adi_block_weights *b = &w->blocks[i];
    size_t H = (size_t)w->ffn_hidden, h1 = w->swiglu ? 2 * H : H;
    if (!strncmp(rest, "attention.attention.", 20)) {
        const char *q = rest + 20;
        k = !strncmp(q, "query.", 6) ? 0 : !strncmp(q, "key.", 4) ? 1 : 2;
        int bias = strstr(q, "bias") != NULL;
        *n = bias ? D : D * D;
        return bias ? b->qkv_b + k * D : b->qkv_w + k * D * D;
    }
    static const struct { const char *s; int which; } map[] = {
        {"norm1.weight", 0}, {"norm1.bias", 1}, {"attention.output.dense.weight", 2},
        {"attention.output.dense.bias", 3}, {"layer_scale1.lambda1", 4}, {"norm2.weight", 5},
        {"norm2.bias", 6}, {"mlp.fc1.weight", 7}, {"mlp.fc1.bias", 8}, {"mlp.fc2.weight", 9},
        {"mlp.fc2.bias", 10}, {"mlp.weights_in.weight", 7}, {"mlp.weights_in.bias", 8},
        {"mlp.weights_out.weight", 9}, {"mlp.weights_out.bias", 10}, {"layer_scale2.lambda1", 11}};
    for (size_t j = 0; j < sizeof map / sizeof map[0]; j++) {
        if (strcmp(rest, map[j].s)) continue;
        switch (map[j].which) {
        case 0: return *n = D, b->norm1_w;
        case 1: return *n = D, b->norm1_b;
        case 2: return *n = D * D, b->proj_w;
        case 3: return *n = D, b->proj_b;
        case 4: return *n = D, b->ls1;
        case 5: return *n = D, b->norm2_w;
        case 6: return *n = D, b->norm2_b;
        case 7: return *n = h1 * D, b->fc1_w;
        case 8: return *n = h1, b->fc1_b;
        case 9: return *n = D * H, b->fc2_w;
        case 10: return *n = D, b->fc2_b;
        case 11: return *n = D, b->ls2;
        }
    }
    return NULL;
}

/* ---- safetensors editing ----------------------------------------------------------------- */
typedef struct {
    cJSON *hdr;
    uint8_t *data;    /* the data area (after the header) */
    size_t data_len;
} w_st;

static inline int w_st_open(const char *path, w_st *s)
{
    size_t len;
    uint8_t *b = w_read(path, &len);
    if (!b || len < 8) return free(b), 0;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | b[i];
    if (n > len - 8) return free(b), 0;
    s->hdr = cJSON_ParseWithLength((const char *)b + 8, (size_t)n);
    s->data_len = len - 8 - (size_t)n;
    s->data = malloc(s->data_len ? s->data_len : 1);
    memcpy(s->data, b + 8 + n, s->data_len);
    free(b);
    return s->hdr != NULL;
}

static inline int w_st_save(const w_st *s, const char *path)
{
    char *j = cJSON_PrintUnformatted(s->hdr);
    size_t n = strlen(j), total = 8 + n + s->data_len;
    uint8_t *b = malloc(total);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(b + 8, j, n);
    memcpy(b + 8 + n, s->data, s->data_len);
    int ok = w_write(path, b, total);
    free(b);
    free(j);
    return ok;
}

static inline void w_st_close(w_st *s)
{
    cJSON_Delete(s->hdr);
    free(s->data);
    memset(s, 0, sizeof *s);
}

/* ---- zip ---------------------------------------------------------------------------------- */
typedef struct {
    char name[256];
    uint8_t *data;
    size_t len;
} w_zent;

static inline uint32_t w_r32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static inline uint16_t w_r16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Entries of a plain (stored, non-zip64) archive such as torch writes for small files. */
static inline int w_zip_read(const char *path, w_zent **out)
{
    size_t len;
    uint8_t *b = w_read(path, &len);
    if (!b || len < 22) return free(b), -1;
    size_t e = len - 22;
    while (e > 0 && w_r32(b + e) != 0x06054b50u) e--;
    int n = w_r16(b + e + 10);
    size_t cd = w_r32(b + e + 16);
    w_zent *z = calloc((size_t)n, sizeof *z);
    for (int i = 0; i < n; i++) {
        size_t nl = w_r16(b + cd + 28), xl = w_r16(b + cd + 30), cl = w_r16(b + cd + 32);
        size_t sz = w_r32(b + cd + 24), lo = w_r32(b + cd + 42);
        memcpy(z[i].name, b + cd + 46, nl < 255 ? nl : 255);
        size_t d = lo + 30 + w_r16(b + lo + 26) + w_r16(b + lo + 28);
        z[i].data = malloc(sz ? sz : 1);
        memcpy(z[i].data, b + d, sz);
        z[i].len = sz;
        cd += 46 + nl + xl + cl;
    }
    free(b);
    *out = z;
    return n;
}

static inline void w_zip_free(w_zent *z, int n)
{
    for (int i = 0; i < n; i++) free(z[i].data);
    free(z);
}

typedef struct {
    uint8_t *b;
    size_t n, cap;
} w_buf;

static inline void w_put(w_buf *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2;
        o->b = realloc(o->b, o->cap);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static inline void w_p16(w_buf *o, unsigned v) { uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)}; w_put(o, x, 2); }
static inline void w_p32(w_buf *o, uint32_t v) { w_p16(o, v & 0xffff); w_p16(o, v >> 16); }
static inline void w_p64(w_buf *o, uint64_t v) { w_p32(o, (uint32_t)v); w_p32(o, (uint32_t)(v >> 32)); }

/* Writes the entries as a new archive: method 0 (stored) or 8 (deflate); zip64 records
 * everywhere when zip64 is set (as torch does for files over 4 GiB). */
static inline int w_zip_write(const char *path, const w_zent *z, int n, int method, int zip64)
{
    w_buf o = {0}, cd = {0};
    for (int i = 0; i < n; i++) {
        const uint8_t *data = z[i].data;
        size_t clen = z[i].len;
        uint8_t *comp = NULL;
        if (method == 8) {
            z_stream s;
            memset(&s, 0, sizeof s);
            deflateInit2(&s, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
            size_t cap = deflateBound(&s, z[i].len) + 16;
            comp = malloc(cap);
            s.next_in = (Bytef *)z[i].data;
            s.avail_in = (uInt)z[i].len;
            s.next_out = comp;
            s.avail_out = (uInt)cap;
            deflate(&s, Z_FINISH);
            clen = s.total_out;
            deflateEnd(&s);
            data = comp;
        }
        uint32_t crc = (uint32_t)crc32(0, z[i].data, (uInt)z[i].len);
        size_t nl = strlen(z[i].name);
        uint64_t lo = o.n;
        w_p32(&o, 0x04034b50u);
        w_p16(&o, zip64 ? 45 : 20);
        w_p16(&o, 0);
        w_p16(&o, (unsigned)method);
        w_p32(&o, 0);
        w_p32(&o, crc);
        w_p32(&o, zip64 ? 0xffffffffu : (uint32_t)clen);
        w_p32(&o, zip64 ? 0xffffffffu : (uint32_t)z[i].len);
        w_p16(&o, (unsigned)nl);
        w_p16(&o, zip64 ? 20 : 0);
        w_put(&o, z[i].name, nl);
        if (zip64) {
            w_p16(&o, 1);
            w_p16(&o, 16);
            w_p64(&o, z[i].len);
            w_p64(&o, clen);
        }
        w_put(&o, data, clen);
        free(comp);
        w_p32(&cd, 0x02014b50u);
        w_p16(&cd, zip64 ? 45 : 20);
        w_p16(&cd, zip64 ? 45 : 20);
        w_p16(&cd, 0);
        w_p16(&cd, (unsigned)method);
        w_p32(&cd, 0);
        w_p32(&cd, crc);
        w_p32(&cd, zip64 ? 0xffffffffu : (uint32_t)clen);
        w_p32(&cd, zip64 ? 0xffffffffu : (uint32_t)z[i].len);
        w_p16(&cd, (unsigned)nl);
        w_p16(&cd, zip64 ? 28 : 0);
        w_p16(&cd, 0);
        w_p16(&cd, 0);
        w_p16(&cd, 0);
        w_p32(&cd, 0);
        w_p32(&cd, zip64 ? 0xffffffffu : (uint32_t)lo);
        w_put(&cd, z[i].name, nl);
        if (zip64) {
            w_p16(&cd, 1);
            w_p16(&cd, 24);
            w_p64(&cd, z[i].len);
            w_p64(&cd, clen);
            w_p64(&cd, lo);
        }
    }
    uint64_t cd_off = o.n;
    w_put(&o, cd.b, cd.n);
    if (zip64) {
        uint64_t z64 = o.n;
        w_p32(&o, 0x06064b50u);
        w_p64(&o, 44);
        w_p16(&o, 45);
        w_p16(&o, 45);
        w_p32(&o, 0);
        w_p32(&o, 0);
        w_p64(&o, (uint64_t)n);
        w_p64(&o, (uint64_t)n);
        w_p64(&o, cd.n);
        w_p64(&o, cd_off);
        w_p32(&o, 0x07064b50u);
        w_p32(&o, 0);
        w_p64(&o, z64);
        w_p32(&o, 1);
    }
    w_p32(&o, 0x06054b50u);
    w_p16(&o, 0);
    w_p16(&o, 0);
    w_p16(&o, zip64 ? 0xffff : (unsigned)n);
    w_p16(&o, zip64 ? 0xffff : (unsigned)n);
    w_p32(&o, zip64 ? 0xffffffffu : (uint32_t)cd.n);
    w_p32(&o, zip64 ? 0xffffffffu : (uint32_t)cd_off);
    w_p16(&o, 0);
    int ok = w_write(path, o.b, o.n);
    free(o.b);
    free(cd.b);
    return ok;
}

static inline w_zent *w_zip_find(w_zent *z, int n, const char *suffix)
{
    size_t sl = strlen(suffix);
    for (int i = 0; i < n; i++) {
        size_t l = strlen(z[i].name);
        if (l >= sl && !strcmp(z[i].name + l - sl, suffix)) return &z[i];
    }
    return NULL;
}

/* Failure contract: a status, a one-line message that starts with the file name. */
static inline int w_fails_cleanly(const char *path, ad_status *got)
{
    adi_weights w;
    memset(&w, 0xAB, sizeof w);
    adi_weights before = w;
    ad_status s = adi_weights_load(path, &w);
    if (got) *got = s;
    if (s == AD_OK) {
        adi_weights_free(&w);
        return 0;
    }
    const char *m = ad_errmsg();
    return strncmp(m, path, strlen(path)) == 0 && !strchr(m, '\n') &&
           memcmp(&w, &before, sizeof w) == 0;
}

#endif
