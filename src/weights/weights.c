/* adi_weights_load: recognise the checkpoint format, map either key scheme (official hub or
 * Hugging Face Dinov2Model; docs/design.md, "Backbone") onto the hub layout, infer the configuration from
 * the shapes, then read every tensor as float32 into one arena and fingerprint the values. */
#include "weights/weights.h"
#include "weights/tensor_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* DINOv2 attention heads are 64 wide in every released size (S/B/L/g: 6/12/16/24 heads). */
#define AD_HEAD_DIM 64
/* Plausibility bounds: far above ViT-g (1536 wide, 40 blocks, 37x37 grid), low enough that
 * products of them cannot overflow. */
#define MAX_DIM 65536
#define MAX_DEPTH 4096
#define MAX_SIDE 4096

typedef enum { SCHEME_HUB, SCHEME_HF } key_scheme;

typedef struct {
    const float **field;
    size_t off, count;            /* floats, in the arena */
    const tf_tensor *src[3];      /* HF q, k, v are fused into one slot */
    int n_src;
} slot;

typedef struct {
    const tf_file *f;
    key_scheme scheme;
    char prefix[256];
    slot *slots;
    size_t n_slots, cap_slots;
    size_t total;                 /* arena floats, with per-tensor 64-byte padding */
    uint64_t n_params;
    unsigned dtypes;              /* bit per tf_dtype seen among needed tensors */
} plan;

/* ---- fingerprint --------------------------------------------------------------------------
 * A 4-lane multiply-rotate hash over 8-byte words (the round and primes of xxHash64, a
 * murmur3 fmix64 finish): several GB/s, so that ViT-g's 4.4 GB costs about a second. */
#define HP1 0x9E3779B185EBCA87ULL
#define HP2 0xC2B2AE3D27D4EB4FULL

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t hround(uint64_t acc, uint64_t in) { return rotl64(acc + in * HP2, 31) * HP1; }

static uint64_t hash_bytes(uint64_t seed, const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t v0 = seed + HP1 + HP2, v1 = seed + HP2, v2 = seed, v3 = seed - HP1, w[4];
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        memcpy(w, p + i, 32);
        v0 = hround(v0, w[0]);
        v1 = hround(v1, w[1]);
        v2 = hround(v2, w[2]);
        v3 = hround(v3, w[3]);
    }
    uint64_t h = rotl64(v0, 1) + rotl64(v1, 7) + rotl64(v2, 12) + rotl64(v3, 18) + (uint64_t)n;
    for (; i + 8 <= n; i += 8) {
        memcpy(w, p + i, 8);
        h = rotl64(h ^ hround(0, w[0]), 27) * HP1;
    }
    for (; i < n; i++) h = rotl64(h ^ (p[i] * HP2), 11) * HP1;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* ---- planning ------------------------------------------------------------------------------ */

static const tf_tensor *lookup(const plan *pl, const char *name)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", pl->prefix, name);
    return tf_find(pl->f, full);
}

static int shape_is(const tf_tensor *t, int nd, const int64_t *s)
{
    if (t->ndim != nd) return 0;
    for (int i = 0; i < nd; i++)
        if (t->shape[i] != s[i]) return 0;
    return 1;
}

/* Finds `name` (under the prefix), checks its shape, dtype and layout. */
static ad_status expect(plan *pl, const char *name, int nd, const int64_t *shape,
                        const tf_tensor **out)
{
    char sa[160], sb[160];
    const tf_tensor *t = lookup(pl, name);
    if (!t) return adi_fail(AD_E_FORMAT, "missing tensor '%s%s' (expected shape %s)", pl->prefix,
                           name, tf_shape_str(shape, nd, sa, sizeof sa));
    if (!shape_is(t, nd, shape))
        return adi_fail(AD_E_FORMAT, "tensor '%s' has shape %s, expected %s", t->name,
                       tf_shape_str(t->shape, t->ndim, sa, sizeof sa),
                       tf_shape_str(shape, nd, sb, sizeof sb));
    if (!tf_dtype_size(t->dtype))
        return adi_fail(AD_E_FORMAT, "tensor '%s' has dtype %s; only F32, F16 and BF16 are supported",
                       t->name, t->dtype_name);
    if (!t->contiguous) return adi_fail(AD_E_FORMAT, "tensor '%s' is a non-contiguous view", t->name);
    pl->dtypes |= 1u << t->dtype;
    *out = t;
    return AD_OK;
}

static ad_status add_slot(plan *pl, const float **field, size_t count, const tf_tensor **src,
                          int n_src)
{
    if (pl->n_slots == pl->cap_slots) {
        size_t cap = pl->cap_slots ? pl->cap_slots * 2 : 64;
        slot *s = adi_realloc(pl->slots, cap * sizeof *s);
        if (!s) return adi_fail(AD_E_NOMEM, "out of memory");
        pl->slots = s;
        pl->cap_slots = cap;
    }
    slot *s = &pl->slots[pl->n_slots++];
    memset(s, 0, sizeof *s);
    s->field = field;
    s->count = count;
    s->off = pl->total;
    s->n_src = n_src;
    for (int i = 0; i < n_src; i++) s->src[i] = src[i];
    size_t padded = (count + 15) & ~(size_t)15;  /* every tensor starts 64-byte aligned */
    if (padded < count || pl->total > SIZE_MAX / 4 - padded)
        return adi_fail(AD_E_FORMAT, "weights too large for this machine");
    pl->total += padded;
    pl->n_params += count;
    return AD_OK;
}

/* One tensor: hub name `hub` or HF name `hf` (relative to the prefix), shape dims. */
static ad_status want(plan *pl, const float **field, const char *hub, const char *hf, int nd,
                      int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    int64_t shape[4] = {d0, d1, d2, d3};
    const tf_tensor *t;
    ad_status st = expect(pl, pl->scheme == SCHEME_HUB ? hub : hf, nd, shape, &t);
    if (st) return st;
    return add_slot(pl, field, (size_t)t->numel, &t, 1);
}

static ad_status want_block(plan *pl, const float **field, int i, const char *hub, const char *hf,
                            int nd, int64_t d0, int64_t d1)
{
    char a[160], b[160];
    snprintf(a, sizeof a, "blocks.%d.%s", i, hub);
    snprintf(b, sizeof b, "encoder.layer.%d.%s", i, hf);
    return want(pl, field, a, b, nd, d0, d1, 0, 0);
}

/* blocks.i.attn.qkv.{weight,bias} [3D(, D)] or HF query | key | value [D(, D)], fused. */
static ad_status want_qkv(plan *pl, const float **field, int i, int D, int bias)
{
    const char *what = bias ? "bias" : "weight";
    char nm[160];
    if (pl->scheme == SCHEME_HUB) {
        snprintf(nm, sizeof nm, "blocks.%d.attn.qkv.%s", i, what);
        return want(pl, field, nm, nm, bias ? 1 : 2, 3 * (int64_t)D, D, 0, 0);
    }
    static const char *part[3] = {"query", "key", "value"};
    const tf_tensor *src[3];
    int64_t shape[2] = {D, D};
    for (int k = 0; k < 3; k++) {
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.attention.%s.%s", i, part[k], what);
        ad_status st = expect(pl, nm, bias ? 1 : 2, shape, &src[k]);
        if (st) return st;
    }
    return add_slot(pl, field, 3 * (size_t)src[0]->numel, src, 3);
}

/* Finds the model's cls token; its key tells the scheme and the common prefix of all keys. */
static ad_status find_root(plan *pl)
{
    const tf_file *f = pl->f;
    const char *first = NULL;
    for (size_t i = 0; i < f->n; i++) {
        const char *nm = f->t[i].name;
        size_t n = strlen(nm);
        if (n < 9 || strcmp(nm + n - 9, "cls_token") != 0 || (n > 9 && nm[n - 10] != '.')) continue;
        size_t pl_len = n - 9;
        key_scheme sc = SCHEME_HUB;
        if (pl_len >= 11 && memcmp(nm + pl_len - 11, "embeddings.", 11) == 0) {
            sc = SCHEME_HF;
            pl_len -= 11;
        }
        if (pl_len >= sizeof pl->prefix) continue;
        if (first)
            return adi_fail(AD_E_FORMAT, "several models in one file ('%s' and '%s')", first, nm);
        pl->scheme = sc;
        memcpy(pl->prefix, nm, pl_len);
        pl->prefix[pl_len] = 0;
        first = nm;
    }
    if (!first)
        return adi_fail(AD_E_FORMAT, "no 'cls_token' or 'embeddings.cls_token' tensor: not a DINOv2 "
                       "checkpoint");
    return AD_OK;
}

/* Depth = number of blocks, which must be numbered 0..L-1 without gaps. */
static ad_status count_blocks(plan *pl, int *depth)
{
    const char *stem = pl->scheme == SCHEME_HUB ? "blocks." : "encoder.layer.";
    char full[300];
    snprintf(full, sizeof full, "%s%s", pl->prefix, stem);
    size_t fl = strlen(full);
    unsigned char *seen = adi_calloc(MAX_DEPTH, 1);
    if (!seen) return adi_fail(AD_E_NOMEM, "out of memory");
    int max = -1;
    for (size_t i = 0; i < pl->f->n; i++) {
        const char *nm = pl->f->t[i].name;
        if (strncmp(nm, full, fl) != 0) continue;
        const char *p = nm + fl;
        long v = 0;
        int nd = 0;
        while (*p >= '0' && *p <= '9' && nd < 6) v = v * 10 + (*p++ - '0'), nd++;
        if (nd == 0 || *p != '.') continue;  /* not a block key */
        if ((nd > 1 && nm[fl] == '0') || v >= MAX_DEPTH) {
            adi_free(seen);
            return adi_fail(AD_E_FORMAT, "block index in '%s' is malformed or absurd", nm);
        }
        seen[v] = 1;
        if (v > max) max = (int)v;
    }
    for (int i = 0; i <= max; i++)
        if (!seen[i]) {
            adi_free(seen);
            return adi_fail(AD_E_FORMAT, "blocks are not numbered 0..%d: no tensor of block %d ('%s%d.')",
                           max, i, full, i);
        }
    adi_free(seen);
    if (max < 0) return adi_fail(AD_E_FORMAT, "no transformer blocks ('%s0.*')", full);
    *depth = max + 1;
    return AD_OK;
}

static int isqrt_exact(int64_t n, int64_t *r)
{
    if (n < 1) return 0;
    int64_t g = 1;
    while (g * g < n && g < MAX_SIDE) g++;
    *r = g;
    return g * g == n;
}

/* Infers the configuration and lists every tensor with its arena place, in hub order. */
static ad_status make_plan(plan *pl, adi_weights *w)
{
    ad_status st;
    char sa[160];
    if ((st = find_root(pl))) return st;
    int hub = pl->scheme == SCHEME_HUB;

    const tf_tensor *t = lookup(pl, hub ? "cls_token" : "embeddings.cls_token");
    if (t->ndim != 3 || t->shape[0] != 1 || t->shape[1] != 1 || t->shape[2] < 1 ||
        t->shape[2] > MAX_DIM)
        return adi_fail(AD_E_FORMAT, "tensor '%s' has shape %s, expected [1, 1, dim]", t->name,
                       tf_shape_str(t->shape, t->ndim, sa, sizeof sa));
    int D = (int)t->shape[2];
    if (D % AD_HEAD_DIM != 0)
        return adi_fail(AD_E_FORMAT, "width %d (from '%s') is not a multiple of the %d-wide heads",
                       D, t->name, AD_HEAD_DIM);
    int depth = 0;
    if ((st = count_blocks(pl, &depth))) return st;

    /* SwiGLU (ViT-g) if w12 / weights_in exists; its rows are x1 | x2, each of the hidden width */
    const char *w12 = hub ? "blocks.0.mlp.w12.weight" : "encoder.layer.0.mlp.weights_in.weight";
    const char *fc1 = hub ? "blocks.0.mlp.fc1.weight" : "encoder.layer.0.mlp.fc1.weight";
    int swiglu = lookup(pl, w12) != NULL;
    t = lookup(pl, swiglu ? w12 : fc1);
    if (!t) return adi_fail(AD_E_FORMAT, "missing tensor '%s%s' (nor '%s%s')", pl->prefix, fc1,
                           pl->prefix, w12);
    if (t->ndim != 2 || t->shape[1] != D || t->shape[0] < 1 || t->shape[0] > 64 * (int64_t)MAX_DIM ||
        (swiglu && t->shape[0] % 2))
        return adi_fail(AD_E_FORMAT, "tensor '%s' has shape %s, expected [%s, %d]", t->name,
                       tf_shape_str(t->shape, t->ndim, sa, sizeof sa), swiglu ? "2*hidden" : "hidden",
                       D);
    int H = (int)(swiglu ? t->shape[0] / 2 : t->shape[0]);

    const char *pe = hub ? "pos_embed" : "embeddings.position_embeddings";
    t = lookup(pl, pe);
    if (!t) return adi_fail(AD_E_FORMAT, "missing tensor '%s%s'", pl->prefix, pe);
    int64_t G;
    if (t->ndim != 3 || t->shape[0] != 1 || t->shape[2] != D || !isqrt_exact(t->shape[1] - 1, &G))
        return adi_fail(AD_E_FORMAT, "tensor '%s' has shape %s, expected [1, 1 + G*G, %d]", t->name,
                       tf_shape_str(t->shape, t->ndim, sa, sizeof sa), D);

    int R = 0;
    t = lookup(pl, hub ? "register_tokens" : "embeddings.register_tokens");
    if (t) {
        if (t->ndim != 3 || t->shape[0] != 1 || t->shape[1] < 1 || t->shape[1] > MAX_SIDE ||
            t->shape[2] != D)
            return adi_fail(AD_E_FORMAT, "tensor '%s' has shape %s, expected [1, registers, %d]",
                           t->name, tf_shape_str(t->shape, t->ndim, sa, sizeof sa), D);
        R = (int)t->shape[1];
    }

    const char *pw = hub ? "patch_embed.proj.weight" : "embeddings.patch_embeddings.projection.weight";
    t = lookup(pl, pw);
    if (!t) return adi_fail(AD_E_FORMAT, "missing tensor '%s%s'", pl->prefix, pw);
    if (t->ndim != 4 || t->shape[0] != D || t->shape[1] != 3 || t->shape[2] < 1 ||
        t->shape[2] > 1024 || t->shape[3] != t->shape[2])
        return adi_fail(AD_E_FORMAT, "tensor '%s' has shape %s, expected [%d, 3, patch, patch]",
                       t->name, tf_shape_str(t->shape, t->ndim, sa, sizeof sa), D);
    int P = (int)t->shape[2];

    w->dim = D;
    w->depth = depth;
    w->heads = D / AD_HEAD_DIM;
    w->ffn_hidden = H;
    w->n_registers = R;
    w->swiglu = swiglu;
    w->patch = P;
    w->pos_grid = (int)G;
    w->blocks = adi_calloc((size_t)depth, sizeof *w->blocks);
    if (!w->blocks) return adi_fail(AD_E_NOMEM, "out of memory");

    /* Hub state-dict order; every shape checked exactly. */
    if ((st = want(pl, &w->cls_token, "cls_token", "embeddings.cls_token", 3, 1, 1, D, 0)) ||
        (st = want(pl, &w->pos_embed, "pos_embed", "embeddings.position_embeddings", 3, 1,
                   1 + G * G, D, 0)) ||
        (R && (st = want(pl, &w->register_tokens, "register_tokens", "embeddings.register_tokens",
                         3, 1, R, D, 0))) ||
        (st = want(pl, &w->patch_w, "patch_embed.proj.weight",
                   "embeddings.patch_embeddings.projection.weight", 4, D, 3, P, P)) ||
        (st = want(pl, &w->patch_b, "patch_embed.proj.bias",
                   "embeddings.patch_embeddings.projection.bias", 1, D, 0, 0, 0)))
        return st;
    for (int i = 0; i < depth; i++) {
        adi_block_weights *b = &w->blocks[i];
        int64_t hid = swiglu ? 2 * (int64_t)H : H;
        if ((st = want_block(pl, &b->norm1_w, i, "norm1.weight", "norm1.weight", 1, D, 0)) ||
            (st = want_block(pl, &b->norm1_b, i, "norm1.bias", "norm1.bias", 1, D, 0)) ||
            (st = want_qkv(pl, &b->qkv_w, i, D, 0)) || (st = want_qkv(pl, &b->qkv_b, i, D, 1)) ||
            (st = want_block(pl, &b->proj_w, i, "attn.proj.weight", "attention.output.dense.weight",
                             2, D, D)) ||
            (st = want_block(pl, &b->proj_b, i, "attn.proj.bias", "attention.output.dense.bias", 1,
                             D, 0)) ||
            (st = want_block(pl, &b->ls1, i, "ls1.gamma", "layer_scale1.lambda1", 1, D, 0)) ||
            (st = want_block(pl, &b->norm2_w, i, "norm2.weight", "norm2.weight", 1, D, 0)) ||
            (st = want_block(pl, &b->norm2_b, i, "norm2.bias", "norm2.bias", 1, D, 0)))
            return st;
        if (swiglu) {
            if ((st = want_block(pl, &b->fc1_w, i, "mlp.w12.weight", "mlp.weights_in.weight", 2, hid,
                                 D)) ||
                (st = want_block(pl, &b->fc1_b, i, "mlp.w12.bias", "mlp.weights_in.bias", 1, hid, 0)) ||
                (st = want_block(pl, &b->fc2_w, i, "mlp.w3.weight", "mlp.weights_out.weight", 2, D,
                                 H)) ||
                (st = want_block(pl, &b->fc2_b, i, "mlp.w3.bias", "mlp.weights_out.bias", 1, D, 0)))
                return st;
        } else {
            if ((st = want_block(pl, &b->fc1_w, i, "mlp.fc1.weight", "mlp.fc1.weight", 2, hid, D)) ||
                (st = want_block(pl, &b->fc1_b, i, "mlp.fc1.bias", "mlp.fc1.bias", 1, hid, 0)) ||
                (st = want_block(pl, &b->fc2_w, i, "mlp.fc2.weight", "mlp.fc2.weight", 2, D, H)) ||
                (st = want_block(pl, &b->fc2_b, i, "mlp.fc2.bias", "mlp.fc2.bias", 1, D, 0)))
                return st;
        }
        if ((st = want_block(pl, &b->ls2, i, "ls2.gamma", "layer_scale2.lambda1", 1, D, 0))) return st;
    }
    if ((st = want(pl, &w->norm_w, "norm.weight", "layernorm.weight", 1, D, 0, 0, 0)) ||
        (st = want(pl, &w->norm_b, "norm.bias", "layernorm.bias", 1, D, 0, 0, 0)))
        return st;
    return AD_OK;
}

/* Reads every planned tensor into the arena and fingerprints config + values. */
static ad_status fill(plan *pl, adi_weights *w)
{
    w->arena = adi_alloc(pl->total ? pl->total : 1, sizeof(float));
    if (!w->arena) return adi_fail(AD_E_NOMEM, "out of memory for %zu MB of weights",
                                  pl->total * 4 >> 20);
#ifdef MADV_HUGEPAGE
    /* Faulting in GBs of fresh 4 KiB pages is a large part of the load time; transparent huge
     * pages (where the system allows them on request) cut that. Advice only: errors ignored. */
    {
        uintptr_t lo = ((uintptr_t)w->arena + ((uintptr_t)2 << 20) - 1) & ~(((uintptr_t)2 << 20) - 1);
        uintptr_t hi = ((uintptr_t)(w->arena + pl->total)) & ~(((uintptr_t)2 << 20) - 1);
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    }
#endif
    int64_t cfg[9] = {1 /* fingerprint scheme */, w->dim, w->depth, w->heads, w->ffn_hidden,
                      w->n_registers, w->swiglu, w->patch, w->pos_grid};
    uint64_t h = hash_bytes(0, cfg, sizeof cfg);
    for (size_t i = 0; i < pl->n_slots; i++) {
        slot *s = &pl->slots[i];
        float *dst = w->arena + s->off;
        size_t part = s->count / (size_t)s->n_src;
        /* the zero padding keeps the arena fully initialised */
        memset(dst + s->count, 0, (((s->count + 15) & ~(size_t)15) - s->count) * sizeof(float));
        for (int k = 0; k < s->n_src; k++) {
            ad_status st = tf_read(pl->f, s->src[k], dst + (size_t)k * part);
            if (st) return st;
        }
        *s->field = dst;
        h = hash_bytes(h, dst, s->count * sizeof(float));
    }
    w->fingerprint = h;
    w->n_params = pl->n_params;
    unsigned d = pl->dtypes;
    snprintf(w->dtype, sizeof w->dtype, "%s",
             d == 1u << TF_F32 ? "F32" : d == 1u << TF_F16 ? "F16" : d == 1u << TF_BF16 ? "BF16"
                                                                       : "mixed");
    return AD_OK;
}

/* Recognises the format of the open file f (a descriptor or a buffer), loads it and closes f. */
static ad_status load_tf(tf_file *f_, const char *path, adi_weights *w)
{
    tf_file f = *f_;
    adi_weights wl;
    memset(&wl, 0, sizeof wl);
    plan pl;
    memset(&pl, 0, sizeof pl);
    pl.f = &f;
    uint8_t magic[9] = {0};
    ad_status st = AD_OK;
    if (f.file_size == 0) {
        st = adi_fail(AD_E_FORMAT, "empty file");
    } else if ((st = tf_pread(&f, 0, magic, f.file_size < 9 ? (size_t)f.file_size : 9))) {
    } else if (magic[0] == 'P' && magic[1] == 'K' &&
               ((magic[2] == 3 && magic[3] == 4) || (magic[2] == 5 && magic[3] == 6))) {
        snprintf(wl.format, sizeof wl.format, "pth");
        st = tf_open_pth(&f);
    } else if (f.file_size >= 9 && magic[8] == '{') {
        snprintf(wl.format, sizeof wl.format, "safetensors");
        st = tf_open_safetensors(&f);
    } else if (magic[0] == 0x80) {
        st = adi_fail(AD_E_FORMAT, "legacy (pre-1.6, non-zip) PyTorch file; re-save it with a "
                     "recent torch.save");
    } else {
        st = adi_fail(AD_E_FORMAT, "not a PyTorch zip checkpoint nor a safetensors file");
    }
    if (!st) st = make_plan(&pl, &wl);
    if (!st) st = fill(&pl, &wl);
    adi_free(pl.slots);
    tf_close(&f);
    if (st) {
        adi_error_prefix("%s", path);
        adi_weights_free(&wl);
        return st;
    }
    *w = wl;
    return AD_OK;
}

ad_status adi_weights_load(const char *path, adi_weights *w)
{
    if (!path || !w) return adi_fail(AD_E_ARG, "adi_weights_load: NULL %s", path ? "output" : "path");
    tf_file f;
    memset(&f, 0, sizeof f);
    f.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f.fd < 0) return adi_fail(AD_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(f.fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(f.fd);
        return adi_fail(AD_E_IO, "%s: not a regular file", path);
    }
    f.file_size = (uint64_t)sb.st_size;
    return load_tf(&f, path, w);
}

ad_status adi_weights_load_mem(const void *buf, size_t len, const char *name, adi_weights *w)
{
    if ((!buf && len) || !w)
        return adi_fail(AD_E_ARG, "adi_weights_load_mem: NULL %s", w ? "buffer" : "output");
    tf_file f;
    memset(&f, 0, sizeof f);
    f.fd = -1;
    f.mem = buf ? buf : (const uint8_t *)"";
    f.file_size = (uint64_t)len;
    return load_tf(&f, name ? name : "(buffer)", w);
}

void adi_weights_free(adi_weights *w)
{
    if (!w) return;
    adi_free(w->arena);
    adi_free(w->blocks);
    memset(w, 0, sizeof *w);
}
