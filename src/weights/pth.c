/* PyTorch zip checkpoints (torch.save since 1.6): a zip archive whose PREFIX/data.pkl is a
 * pickle of the state dict, each tensor being
 *   torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks)
 * with storage a persistent id ('storage', torch.FloatStorage, key, location, numel) whose bytes
 * are the zip entry PREFIX/data/KEY. Only as much of zip and pickle as that needs is read: a
 * small pickle stack machine for the opcodes torch emits (protocol 2, plus the few protocol-4
 * ones), anything else is refused by name. */
#include "weights/tensor_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ======================================= zip ============================================== */

#define ZIP_EOCD_SIG 0x06054b50u
#define ZIP64_LOC_SIG 0x07064b50u
#define ZIP64_EOCD_SIG 0x06064b50u
#define ZIP_CDH_SIG 0x02014b50u
#define ZIP_LFH_SIG 0x04034b50u
/* data.pkl of ViT-g is under 100 kB; far beyond this is not the state dict of a ViT (and
 * would cost memory: the parser makes an object per opcode). */
#define PKL_MAX ((uint64_t)16 << 20)
#define ZIP_DEFLATE_MAX_RATIO 1032u

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const tf_entry *)a)->name, ((const tf_entry *)b)->name);
}

static tf_entry *zip_find(tf_file *f, const char *name)
{
    size_t lo = 0, hi = f->n_e;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->e[mid].name, name);
        if (c == 0) return &f->e[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Locates the central directory through the (zip64) end records. */
static ad_status zip_find_cd(tf_file *f, uint64_t *cd_off, uint64_t *cd_size, uint64_t *count)
{
    if (f->file_size < 22) return adi_fail(AD_E_FORMAT, "zip archive too short");
    size_t tail = f->file_size < 22 + 65535 ? (size_t)f->file_size : 22 + 65535;
    uint8_t *buf = adi_malloc(tail);
    if (!buf) return adi_fail(AD_E_NOMEM, "out of memory (zip)");
    uint64_t tail_off = f->file_size - tail;
    ad_status st = tf_pread(f, tail_off, buf, tail);
    if (st) {
        adi_free(buf);
        return st;
    }
    long pos = -1;
    for (long i = (long)tail - 22; i >= 0; i--)
        if (rd32(buf + i) == ZIP_EOCD_SIG && (size_t)i + 22 + rd16(buf + i + 20) <= tail) {
            pos = i;
            break;
        }
    if (pos < 0) {
        adi_free(buf);
        return adi_fail(AD_E_FORMAT,
                       "zip end-of-central-directory record not found (truncated file?)");
    }
    const uint8_t *e = buf + pos;
    uint64_t eocd_off = tail_off + (uint64_t)pos;
    uint64_t n = rd16(e + 10), size = rd32(e + 12), off = rd32(e + 16);
    int disk = rd16(e + 4) | rd16(e + 6);
    uint64_t limit = eocd_off;
    if (pos >= 20 && rd32(e - 20) == ZIP64_LOC_SIG) {
        uint8_t z[56];
        uint64_t z_off = rd64(e - 20 + 8);
        adi_free(buf);
        if (z_off > eocd_off - 20 || eocd_off - 20 - z_off < 56)
            return adi_fail(AD_E_FORMAT, "zip64 end record offset %llu out of range",
                           (unsigned long long)z_off);
        if ((st = tf_pread(f, z_off, z, sizeof z))) return st;
        if (rd32(z) != ZIP64_EOCD_SIG) return adi_fail(AD_E_FORMAT, "bad zip64 end record");
        disk = (int)(rd32(z + 16) | rd32(z + 20));
        /* The 32-bit fields must be either the "see zip64" marker or the same values. */
        if ((n != 0xffff && n != rd64(z + 32)) || (size != 0xffffffffu && size != rd64(z + 40)) ||
            (off != 0xffffffffu && off != rd64(z + 48)))
            return adi_fail(AD_E_FORMAT, "zip and zip64 end records disagree on the central directory");
        n = rd64(z + 32);
        size = rd64(z + 40);
        off = rd64(z + 48);
        limit = z_off;
    } else {
        adi_free(buf);
        if (n == 0xffff || size == 0xffffffffu || off == 0xffffffffu)
            return adi_fail(AD_E_FORMAT, "zip64 archive without its zip64 end record");
    }
    if (disk != 0) return adi_fail(AD_E_FORMAT, "multi-part zip archives are not supported");
    if (off > limit || size > limit - off)
        return adi_fail(AD_E_FORMAT, "zip central directory [%llu, +%llu) out of range",
                       (unsigned long long)off, (unsigned long long)size);
    if (n > size / 46) return adi_fail(AD_E_FORMAT, "zip central directory too small for %llu entries",
                                      (unsigned long long)n);
    *cd_off = off;
    *cd_size = size;
    *count = n;
    return AD_OK;
}

static ad_status zip_read_cd(tf_file *f)
{
    uint64_t cd_off = 0, cd_size = 0, n = 0;
    ad_status st = zip_find_cd(f, &cd_off, &cd_size, &n);
    if (st) return st;
    uint8_t *cd = adi_malloc(cd_size ? (size_t)cd_size : 1);
    if (!cd) return adi_fail(AD_E_NOMEM, "out of memory (zip central directory)");
    f->e = adi_calloc(n ? (size_t)n : 1, sizeof *f->e);
    if (!f->e) {
        adi_free(cd);
        return adi_fail(AD_E_NOMEM, "out of memory (zip central directory)");
    }
    if ((st = tf_pread(f, cd_off, cd, (size_t)cd_size))) {
        adi_free(cd);
        return st;
    }
    f->data_end = cd_off;
    size_t p = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (cd_size - p < 46 || rd32(cd + p) != ZIP_CDH_SIG) {
            st = adi_fail(AD_E_FORMAT, "bad zip central directory entry %llu", (unsigned long long)i);
            break;
        }
        const uint8_t *h = cd + p;
        size_t nl = rd16(h + 28), xl = rd16(h + 30), cl = rd16(h + 32);
        if (cd_size - p - 46 < nl + xl + cl) {
            st = adi_fail(AD_E_FORMAT, "zip central directory entry %llu overruns the directory",
                         (unsigned long long)i);
            break;
        }
        tf_entry *e = &f->e[f->n_e];
        e->flags = rd16(h + 8);
        e->method = rd16(h + 10);
        e->crc = rd32(h + 16);
        e->comp_size = rd32(h + 20);
        e->size = rd32(h + 24);
        e->local_off = rd32(h + 42);
        /* zip64 extended information: 8-byte values for the fields that read 0xffffffff */
        const uint8_t *x = h + 46 + nl, *xe = x + xl;
        while (xe - x >= 4) {
            unsigned id = rd16(x), len = rd16(x + 2);
            if ((size_t)(xe - x - 4) < len) break;
            if (id == 1) {
                const uint8_t *v = x + 4, *ve = v + len;
                uint64_t *fld[3] = {&e->size, &e->comp_size, &e->local_off};
                for (int k = 0; k < 3; k++)
                    if (*fld[k] == 0xffffffffu) {
                        if (ve - v < 8) {
                            st = adi_fail(AD_E_FORMAT, "zip entry %llu: short zip64 extra field",
                                         (unsigned long long)i);
                            break;
                        }
                        *fld[k] = rd64(v);
                        v += 8;
                    }
            }
            x += 4 + len;
        }
        if (st) break;
        e->name = adi_malloc(nl + 1);
        if (!e->name) {
            st = adi_fail(AD_E_NOMEM, "out of memory (zip names)");
            break;
        }
        memcpy(e->name, h + 46, nl);
        e->name[nl] = 0;
        f->n_e++;
        p += 46 + nl + xl + cl;
    }
    adi_free(cd);
    if (st) return st;
    if (f->n_e > 1) qsort(f->e, f->n_e, sizeof *f->e, cmp_entry);
    for (size_t i = 1; i < f->n_e; i++)
        if (strcmp(f->e[i - 1].name, f->e[i].name) == 0)
            return adi_fail(AD_E_FORMAT, "zip entry '%s' appears twice", f->e[i].name);
    return AD_OK;
}

/* Finds where the entry's data starts (after its local header) and checks it is readable. */
static ad_status zip_resolve(tf_file *f, tf_entry *e)
{
    if (e->data_off) return AD_OK;
    if (e->flags & 1) return adi_fail(AD_E_FORMAT, "zip entry '%s' is encrypted", e->name);
    if (e->method != 0 && e->method != 8)
        return adi_fail(AD_E_FORMAT, "zip entry '%s' uses compression method %d (only stored and "
                       "deflate are supported)", e->name, e->method);
    if (e->method == 0 && e->comp_size != e->size)
        return adi_fail(AD_E_FORMAT, "zip entry '%s' is stored but its sizes differ", e->name);
    /* Deflate expands at most 1032:1 (258-byte matches of 2 bits). A larger declared size is a
     * lie that would have the loader reserve memory the file cannot fill. */
    if (e->method == 8 && (e->comp_size > (UINT64_MAX - 64) / ZIP_DEFLATE_MAX_RATIO ||
                           e->size > e->comp_size * ZIP_DEFLATE_MAX_RATIO + 64))
        return adi_fail(AD_E_FORMAT, "zip entry '%s' declares %llu bytes from %llu compressed "
                       "bytes, more than deflate can produce", e->name,
                       (unsigned long long)e->size, (unsigned long long)e->comp_size);
    uint8_t h[30];
    if (e->local_off > f->data_end || f->data_end - e->local_off < 30)
        return adi_fail(AD_E_FORMAT, "zip entry '%s': local header offset %llu out of range", e->name,
                       (unsigned long long)e->local_off);
    ad_status st = tf_pread(f, e->local_off, h, 30);
    if (st) return st;
    if (rd32(h) != ZIP_LFH_SIG)
        return adi_fail(AD_E_FORMAT, "zip entry '%s': bad local header", e->name);
    uint64_t d = e->local_off + 30 + rd16(h + 26) + rd16(h + 28);
    if (d > f->data_end || e->comp_size > f->data_end - d)
        return adi_fail(AD_E_FORMAT, "zip entry '%s': data [%llu, +%llu) out of range", e->name,
                       (unsigned long long)d, (unsigned long long)e->comp_size);
    e->data_off = d;
    return AD_OK;
}

/* Whole (small) entry into memory. */
static ad_status zip_slurp(tf_file *f, tf_entry *e, uint8_t **out)
{
    ad_status st = zip_resolve(f, e);
    if (st) return st;
    if (e->size > PKL_MAX)
        return adi_fail(AD_E_FORMAT, "zip entry '%s' is implausibly large (%llu bytes)", e->name,
                       (unsigned long long)e->size);
    uint8_t *buf = adi_malloc((size_t)e->size + 1);
    if (!buf) return adi_fail(AD_E_NOMEM, "out of memory (zip entry)");
    if (e->method == 0) {
        st = tf_pread(f, e->data_off, buf, (size_t)e->size);
    } else {
        uint8_t *in = adi_malloc(e->comp_size ? (size_t)e->comp_size : 1);
        if (!in) st = adi_fail(AD_E_NOMEM, "out of memory (zip entry)");
        else st = tf_pread(f, e->data_off, in, (size_t)e->comp_size);
        if (!st) {
            z_stream z;
            memset(&z, 0, sizeof z);
            z.zalloc = adi_zalloc;
            z.zfree = adi_zfree;
            if (inflateInit2(&z, -MAX_WBITS) != Z_OK) {
                st = adi_fail(AD_E_NOMEM, "out of memory (inflate)");
            } else {
                z.next_in = in;
                z.avail_in = (uInt)e->comp_size;
                z.next_out = buf;
                z.avail_out = (uInt)e->size;
                int zr = inflate(&z, Z_FINISH);
                if (zr != Z_STREAM_END || z.total_out != e->size)
                    st = adi_fail(AD_E_FORMAT, "zip entry '%s': corrupt deflate data", e->name);
                inflateEnd(&z);
            }
        }
        adi_free(in);
    }
    if (!st && ADI_CHECKSUMS && (uint32_t)crc32_z(0, buf, (size_t)e->size) != e->crc)
        st = adi_fail(AD_E_FORMAT, "zip entry '%s': CRC-32 mismatch (corrupt data)", e->name);
    if (st) {
        adi_free(buf);
        return st;
    }
    buf[e->size] = 0;
    *out = buf;
    return AD_OK;
}

/* ===================================== pickle ============================================= */

typedef enum {
    PK_MARK, PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_TUPLE, PK_LIST, PK_DICT, PK_GLOBAL,
    PK_STORAGE, PK_TENSOR
} pk_type;

typedef enum { G_ORDERED_DICT, G_REBUILD_TENSOR_V2, G_REBUILD_PARAMETER, G_STORAGE } pk_global;

typedef struct pk_obj {
    pk_type type;
    int64_t i;                  /* INT, BOOL; GLOBAL: pk_global */
    const char *s;              /* STR (not NUL-terminated), STORAGE: key */
    size_t slen;
    struct pk_obj **items;      /* TUPLE, LIST, DICT (key, value pairs) */
    size_t n, cap;
    tf_dtype dtype;             /* GLOBAL G_STORAGE, STORAGE */
    char dname[24];             /* storage class name, for messages */
    uint64_t numel;             /* STORAGE */
    struct pk_obj *storage;     /* TENSOR */
    uint64_t offset;
    int ndim;
    int64_t *shape, *stride;    /* TENSOR: ndim each, one allocation (objects stay small) */
} pk_obj;

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    pk_obj **stack;
    size_t sp, scap;
    pk_obj **memo;
    size_t n_memo;              /* capacity */
    size_t memo_set;            /* slots in use */
    pk_obj **all;               /* every object made, freed together */
    size_t n_all, cap_all;
    pk_obj mark;
} pk_vm;

static pk_obj *pk_new(pk_vm *vm, pk_type type)
{
    if (vm->n_all == vm->cap_all) {
        size_t cap = vm->cap_all ? vm->cap_all * 2 : 1024;
        pk_obj **a = adi_realloc(vm->all, cap * sizeof *a);
        if (!a) return NULL;
        vm->all = a;
        vm->cap_all = cap;
    }
    pk_obj *o = adi_calloc(1, sizeof *o);
    if (!o) return NULL;
    o->type = type;
    vm->all[vm->n_all++] = o;
    return o;
}

static void pk_free(pk_vm *vm)
{
    for (size_t i = 0; i < vm->n_all; i++) {
        adi_free(vm->all[i]->items);
        adi_free(vm->all[i]->shape);
        adi_free(vm->all[i]);
    }
    adi_free(vm->all);
    adi_free(vm->stack);
    adi_free(vm->memo);
}

static int pk_push(pk_vm *vm, pk_obj *o)
{
    if (!o) return 0;
    if (vm->sp == vm->scap) {
        size_t cap = vm->scap ? vm->scap * 2 : 256;
        pk_obj **s = adi_realloc(vm->stack, cap * sizeof *s);
        if (!s) return 0;
        vm->stack = s;
        vm->scap = cap;
    }
    vm->stack[vm->sp++] = o;
    return 1;
}

static int pk_append(pk_obj *c, pk_obj *o)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        pk_obj **it = adi_realloc(c->items, cap * sizeof *it);
        if (!it) return 0;
        c->items = it;
        c->cap = cap;
    }
    c->items[c->n++] = o;
    return 1;
}

/* Index of the topmost MARK, or -1. */
static long pk_find_mark(const pk_vm *vm)
{
    for (size_t i = vm->sp; i > 0; i--)
        if (vm->stack[i - 1] == &vm->mark) return (long)(i - 1);
    return -1;
}

static int str_is(const pk_obj *o, const char *s)
{
    return o && o->type == PK_STR && o->slen == strlen(s) && memcmp(o->s, s, o->slen) == 0;
}

static ad_status pk_global_obj(pk_vm *vm, const char *mod, size_t ml, const char *name, size_t nl,
                               pk_obj **out)
{
#define IS(str, l, lit) ((l) == sizeof(lit) - 1 && memcmp((str), (lit), (l)) == 0)
    pk_obj *g = pk_new(vm, PK_GLOBAL);
    if (!g) return adi_fail(AD_E_NOMEM, "out of memory (pickle)");
    if (IS(mod, ml, "collections") && IS(name, nl, "OrderedDict")) g->i = G_ORDERED_DICT;
    else if (IS(mod, ml, "torch._utils") && IS(name, nl, "_rebuild_tensor_v2")) g->i = G_REBUILD_TENSOR_V2;
    else if (IS(mod, ml, "torch._utils") && IS(name, nl, "_rebuild_parameter")) g->i = G_REBUILD_PARAMETER;
    else if (IS(mod, ml, "torch") && nl > 7 && nl < sizeof g->dname &&
             memcmp(name + nl - 7, "Storage", 7) == 0) {
        /* Other storage types are fine for tensors we do not need (refused if needed). */
        g->i = G_STORAGE;
        g->dtype = IS(name, nl, "FloatStorage") ? TF_F32 : IS(name, nl, "HalfStorage") ? TF_F16
                 : IS(name, nl, "BFloat16Storage") ? TF_BF16 : TF_OTHER;
        memcpy(g->dname, name, nl);
        g->dname[nl] = 0;
    } else {
        return adi_fail(AD_E_FORMAT, "pickle refers to unsupported global '%.*s.%.*s'",
                       (int)(ml > 80 ? 80 : ml), mod, (int)(nl > 80 ? 80 : nl), name);
    }
#undef IS
    *out = g;
    return AD_OK;
}

static int int_of(const pk_obj *o, int64_t *v)
{
    if (!o || (o->type != PK_INT && o->type != PK_BOOL)) return 0;
    *v = o->i;
    return 1;
}

/* ('storage', torch.XStorage, key, location, numel) */
static ad_status pk_persid(pk_vm *vm, pk_obj *pid, pk_obj **out)
{
    int64_t numel;
    if (pid->type != PK_TUPLE || pid->n != 5 || !str_is(pid->items[0], "storage") ||
        pid->items[1]->type != PK_GLOBAL || pid->items[1]->i != G_STORAGE ||
        pid->items[2]->type != PK_STR || !int_of(pid->items[4], &numel) || numel < 0)
        return adi_fail(AD_E_FORMAT, "pickle persistent id is not a torch storage reference");
    pk_obj *s = pk_new(vm, PK_STORAGE);
    if (!s) return adi_fail(AD_E_NOMEM, "out of memory (pickle)");
    s->s = pid->items[2]->s;
    s->slen = pid->items[2]->slen;
    s->dtype = pid->items[1]->dtype;
    memcpy(s->dname, pid->items[1]->dname, sizeof s->dname);
    s->numel = (uint64_t)numel;
    *out = s;
    return AD_OK;
}

static ad_status pk_reduce(pk_vm *vm, pk_obj *fn, pk_obj *args, pk_obj **out)
{
    if (fn->type != PK_GLOBAL || args->type != PK_TUPLE)
        return adi_fail(AD_E_FORMAT, "pickle REDUCE of something that is not a known callable");
    if (fn->i == G_ORDERED_DICT) {
        if (args->n != 0) return adi_fail(AD_E_FORMAT, "pickle OrderedDict() with arguments");
        *out = pk_new(vm, PK_DICT);
        return *out ? AD_OK : adi_fail(AD_E_NOMEM, "out of memory (pickle)");
    }
    if (fn->i == G_REBUILD_PARAMETER) {
        if (args->n < 1 || args->items[0]->type != PK_TENSOR)
            return adi_fail(AD_E_FORMAT, "pickle _rebuild_parameter without a tensor");
        *out = args->items[0];
        return AD_OK;
    }
    if (fn->i != G_REBUILD_TENSOR_V2)
        return adi_fail(AD_E_FORMAT, "pickle calls a storage class");
    /* (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
    int64_t off;
    pk_obj *sz = args->n >= 4 ? args->items[2] : NULL, *sd = args->n >= 4 ? args->items[3] : NULL;
    if (args->n < 4 || args->items[0]->type != PK_STORAGE || !int_of(args->items[1], &off) ||
        off < 0 || sz->type != PK_TUPLE || sd->type != PK_TUPLE || sz->n != sd->n)
        return adi_fail(AD_E_FORMAT, "pickle _rebuild_tensor_v2 with unexpected arguments");
    if (sz->n > TF_MAX_DIMS)
        return adi_fail(AD_E_FORMAT, "pickle tensor with %zu dimensions (at most %d)", sz->n,
                       TF_MAX_DIMS);
    pk_obj *t = pk_new(vm, PK_TENSOR);
    if (!t) return adi_fail(AD_E_NOMEM, "out of memory (pickle)");
    t->storage = args->items[0];
    t->offset = (uint64_t)off;
    t->ndim = (int)sz->n;
    t->shape = adi_malloc(2 * TF_MAX_DIMS * sizeof *t->shape);
    if (!t->shape) return adi_fail(AD_E_NOMEM, "out of memory (pickle)");
    t->stride = t->shape + TF_MAX_DIMS;
    for (size_t k = 0; k < sz->n; k++) {
        if (!int_of(sz->items[k], &t->shape[k]) || !int_of(sd->items[k], &t->stride[k]) ||
            t->shape[k] < 0 || t->stride[k] < 0)
            return adi_fail(AD_E_FORMAT, "pickle tensor with a bad size or stride");
    }
    *out = t;
    return AD_OK;
}

/* Runs the pickle to its STOP; the result is the unpickled object. */
static ad_status pk_run(pk_vm *vm, pk_obj **result)
{
    const uint8_t *p = vm->p;
    size_t len = vm->len;
    ad_status st;
#define NEED(k)                                                                                   \
    do {                                                                                          \
        if (len - vm->pos < (size_t)(k))                                                          \
            return adi_fail(AD_E_FORMAT, "pickle truncated at byte %zu", vm->pos);                 \
    } while (0)
#define NOMEM() adi_fail(AD_E_NOMEM, "out of memory (pickle)")
#define POP(o)                                                                                    \
    do {                                                                                          \
        if (vm->sp == 0 || vm->stack[vm->sp - 1] == &vm->mark)                                    \
            return adi_fail(AD_E_FORMAT, "pickle stack underflow at byte %zu", at);                \
        (o) = vm->stack[--vm->sp];                                                                \
    } while (0)
    while (vm->pos < len) {
        size_t at = vm->pos;
        uint8_t op = p[vm->pos++];
        pk_obj *o = NULL, *a = NULL, *b = NULL;
        uint64_t n = 0;
        switch (op) {
        case 0x80: /* PROTO */
            NEED(1);
            if (p[vm->pos] > 5)
                return adi_fail(AD_E_FORMAT, "pickle protocol %d is not supported", p[vm->pos]);
            vm->pos++;
            break;
        case 0x95: /* FRAME: a length hint only */
            NEED(8);
            vm->pos += 8;
            break;
        case '.': /* STOP */
            POP(o);
            *result = o;
            return AD_OK;
        case '(': /* MARK */
            if (!pk_push(vm, &vm->mark)) return NOMEM();
            break;
        case '}': /* EMPTY_DICT */
        case ']': /* EMPTY_LIST */
        case ')': /* EMPTY_TUPLE */
            if (!pk_push(vm, pk_new(vm, op == '}' ? PK_DICT : op == ']' ? PK_LIST : PK_TUPLE)))
                return NOMEM();
            break;
        case 'N': /* NONE */
            if (!pk_push(vm, pk_new(vm, PK_NONE))) return NOMEM();
            break;
        case 0x88: /* NEWTRUE */
        case 0x89: /* NEWFALSE */
            if (!(o = pk_new(vm, PK_BOOL))) return NOMEM();
            o->i = op == 0x88;
            if (!pk_push(vm, o)) return NOMEM();
            break;
        case 'K': /* BININT1 */
        case 'M': /* BININT2 */
        case 'J': /* BININT */
        case 0x8a: /* LONG1 */ {
            int64_t v;
            if (op == 'K') {
                NEED(1);
                v = p[vm->pos];
                vm->pos += 1;
            } else if (op == 'M') {
                NEED(2);
                v = rd16(p + vm->pos);
                vm->pos += 2;
            } else if (op == 'J') {
                NEED(4);
                v = (int32_t)rd32(p + vm->pos);
                vm->pos += 4;
            } else {
                NEED(1);
                size_t k = p[vm->pos++];
                if (k > 8) return adi_fail(AD_E_FORMAT, "pickle integer of %zu bytes", k);
                NEED(k);
                uint64_t u = 0;
                for (size_t j = 0; j < k; j++) u |= (uint64_t)p[vm->pos + j] << (8 * j);
                if (k > 0 && k < 8 && (p[vm->pos + k - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * k);
                vm->pos += k;
                memcpy(&v, &u, 8);
            }
            if (!(o = pk_new(vm, PK_INT))) return NOMEM();
            o->i = v;
            if (!pk_push(vm, o)) return NOMEM();
            break;
        }
        case 'G': /* BINFLOAT: value not needed */
            NEED(8);
            vm->pos += 8;
            if (!pk_push(vm, pk_new(vm, PK_FLOAT))) return NOMEM();
            break;
        case 'X': /* BINUNICODE */
        case 0x8c: /* SHORT_BINUNICODE */
        case 0x8d: /* BINUNICODE8 */
        case 'U': /* SHORT_BINSTRING */
        case 'T': /* BINSTRING */
        case 'C': /* SHORT_BINBYTES */
        case 'B': /* BINBYTES */
            if (op == 0x8c || op == 'U' || op == 'C') {
                NEED(1);
                n = p[vm->pos++];
            } else if (op == 0x8d) {
                NEED(8);
                n = rd64(p + vm->pos);
                vm->pos += 8;
            } else {
                NEED(4);
                n = rd32(p + vm->pos);
                vm->pos += 4;
            }
            if (n > len - vm->pos)
                return adi_fail(AD_E_FORMAT, "pickle string at byte %zu runs past the end", at);
            if (!(o = pk_new(vm, PK_STR))) return NOMEM();
            o->s = (const char *)p + vm->pos;
            o->slen = (size_t)n;
            vm->pos += (size_t)n;
            if (!pk_push(vm, o)) return NOMEM();
            break;
        case 'q': /* BINPUT */
        case 'r': /* LONG_BINPUT */
        case 0x94: /* MEMOIZE */
            if (op == 'q') {
                NEED(1);
                n = p[vm->pos++];
            } else if (op == 'r') {
                NEED(4);
                n = rd32(p + vm->pos);
                vm->pos += 4;
            } else { /* the next index: the memo's size */
                n = vm->memo_set;
            }
            if (vm->sp == 0 || vm->stack[vm->sp - 1] == &vm->mark)
                return adi_fail(AD_E_FORMAT, "pickle memo store of nothing at byte %zu", at);
            /* a valid pickle never has more memo slots than bytes */
            if (n >= len) return adi_fail(AD_E_FORMAT, "pickle memo index %llu absurd",
                                         (unsigned long long)n);
            if (n >= vm->n_memo) {
                size_t cap = (size_t)n + 1 > vm->n_memo * 2 ? (size_t)n + 1 : vm->n_memo * 2;
                if (cap > len) cap = len;
                pk_obj **m = adi_realloc(vm->memo, cap * sizeof *m);
                if (!m) return NOMEM();
                memset(m + vm->n_memo, 0, (cap - vm->n_memo) * sizeof *m);
                vm->memo = m;
                vm->n_memo = cap;
            }
            if (!vm->memo[n]) vm->memo_set++;
            vm->memo[n] = vm->stack[vm->sp - 1];
            break;
        case 'h': /* BINGET */
        case 'j': /* LONG_BINGET */
            if (op == 'h') {
                NEED(1);
                n = p[vm->pos++];
            } else {
                NEED(4);
                n = rd32(p + vm->pos);
                vm->pos += 4;
            }
            if (n >= vm->n_memo || !vm->memo[n])
                return adi_fail(AD_E_FORMAT, "pickle memo %llu read before it is set",
                               (unsigned long long)n);
            if (!pk_push(vm, vm->memo[n])) return NOMEM();
            break;
        case 'c': { /* GLOBAL: "module\nname\n" */
            const char *m = (const char *)p + vm->pos;
            const char *e1 = memchr(m, '\n', len - vm->pos);
            if (!e1) return adi_fail(AD_E_FORMAT, "pickle GLOBAL truncated");
            const char *nm = e1 + 1;
            const char *e2 = memchr(nm, '\n', (size_t)((const char *)p + len - nm));
            if (!e2) return adi_fail(AD_E_FORMAT, "pickle GLOBAL truncated");
            vm->pos = (size_t)(e2 + 1 - (const char *)p);
            if ((st = pk_global_obj(vm, m, (size_t)(e1 - m), nm, (size_t)(e2 - nm), &o))) return st;
            if (!pk_push(vm, o)) return NOMEM();
            break;
        }
        case 0x93: /* STACK_GLOBAL */
            POP(b);
            POP(a);
            if (a->type != PK_STR || b->type != PK_STR)
                return adi_fail(AD_E_FORMAT, "pickle STACK_GLOBAL of non-strings");
            if ((st = pk_global_obj(vm, a->s, a->slen, b->s, b->slen, &o))) return st;
            if (!pk_push(vm, o)) return NOMEM();
            break;
        case 't': /* TUPLE */
        case 'l': /* LIST */
        case 'd': { /* DICT */
            long mk = pk_find_mark(vm);
            if (mk < 0) return adi_fail(AD_E_FORMAT, "pickle %c without MARK at byte %zu", op, at);
            size_t k = vm->sp - (size_t)mk - 1;
            if (op == 'd' && (k & 1)) return adi_fail(AD_E_FORMAT, "pickle DICT with odd items");
            if (!(o = pk_new(vm, op == 't' ? PK_TUPLE : op == 'l' ? PK_LIST : PK_DICT))) return NOMEM();
            for (size_t j = 0; j < k; j++)
                if (!pk_append(o, vm->stack[(size_t)mk + 1 + j])) return NOMEM();
            vm->sp = (size_t)mk;
            if (!pk_push(vm, o)) return NOMEM();
            break;
        }
        case 0x85: /* TUPLE1 */
        case 0x86: /* TUPLE2 */
        case 0x87: { /* TUPLE3 */
            size_t k = (size_t)(op - 0x84);
            if (vm->sp < k) return adi_fail(AD_E_FORMAT, "pickle stack underflow at byte %zu", at);
            if (!(o = pk_new(vm, PK_TUPLE))) return NOMEM();
            for (size_t j = 0; j < k; j++) {
                pk_obj *it = vm->stack[vm->sp - k + j];
                if (it == &vm->mark) return adi_fail(AD_E_FORMAT, "pickle tuple of a MARK");
                if (!pk_append(o, it)) return NOMEM();
            }
            vm->sp -= k;
            if (!pk_push(vm, o)) return NOMEM();
            break;
        }
        case 'Q': /* BINPERSID */
            POP(a);
            if ((st = pk_persid(vm, a, &o))) return st;
            if (!pk_push(vm, o)) return NOMEM();
            break;
        case 'R': /* REDUCE */
            POP(b);
            POP(a);
            if ((st = pk_reduce(vm, a, b, &o))) return st;
            if (!pk_push(vm, o)) return NOMEM();
            break;
        case 's': /* SETITEM */
            POP(b);
            POP(a);
            if (vm->sp == 0 || vm->stack[vm->sp - 1]->type != PK_DICT ||
                vm->stack[vm->sp - 1] == &vm->mark)
                return adi_fail(AD_E_FORMAT, "pickle SETITEM on a non-dict at byte %zu", at);
            if (!pk_append(vm->stack[vm->sp - 1], a) || !pk_append(vm->stack[vm->sp - 1], b))
                return NOMEM();
            break;
        case 'u': /* SETITEMS */
        case 'e': { /* APPENDS */
            long mk = pk_find_mark(vm);
            if (mk < 1) return adi_fail(AD_E_FORMAT, "pickle %c without MARK at byte %zu", op, at);
            pk_obj *c = vm->stack[mk - 1];
            size_t k = vm->sp - (size_t)mk - 1;
            if (c == &vm->mark || c->type != (op == 'u' ? PK_DICT : PK_LIST) || (op == 'u' && (k & 1)))
                return adi_fail(AD_E_FORMAT, "pickle %s on the wrong object at byte %zu",
                               op == 'u' ? "SETITEMS" : "APPENDS", at);
            for (size_t j = 0; j < k; j++)
                if (!pk_append(c, vm->stack[(size_t)mk + 1 + j])) return NOMEM();
            vm->sp = (size_t)mk;
            break;
        }
        case 'a': /* APPEND */
            POP(a);
            if (vm->sp == 0 || vm->stack[vm->sp - 1] == &vm->mark ||
                vm->stack[vm->sp - 1]->type != PK_LIST)
                return adi_fail(AD_E_FORMAT, "pickle APPEND on a non-list at byte %zu", at);
            if (!pk_append(vm->stack[vm->sp - 1], a)) return NOMEM();
            break;
        case 'b': /* BUILD: state_dict()'s _metadata attribute on the OrderedDict, not needed */
            POP(a);
            if (vm->sp == 0 || vm->stack[vm->sp - 1] == &vm->mark ||
                vm->stack[vm->sp - 1]->type != PK_DICT)
                return adi_fail(AD_E_FORMAT, "pickle BUILD on something other than a dict at byte %zu",
                               at);
            break;
        default:
            return adi_fail(AD_E_FORMAT, "unsupported pickle opcode 0x%02x at byte %zu of data.pkl",
                           op, at);
        }
    }
#undef NEED
#undef NOMEM
#undef POP
    return adi_fail(AD_E_FORMAT, "pickle ends without STOP");
}

/* =================================== the checkpoint ======================================= */

static ad_status add_tensor(tf_file *f, const char *prefix, const pk_obj *key, const pk_obj *t)
{
    tf_tensor d;
    memset(&d, 0, sizeof d);
    const pk_obj *s = t->storage;
    d.dtype = s->dtype;
    snprintf(d.dtype_name, sizeof d.dtype_name, "%s", s->dname);
    d.ndim = t->ndim;
    d.contiguous = 1;
    uint64_t numel = 1, extent = 1, expect = 1;
    int empty = 0, overflow = 0;
    for (int k = t->ndim - 1; k >= 0; k--) {
        uint64_t sz = (uint64_t)t->shape[k], sd = (uint64_t)t->stride[k];
        d.shape[k] = t->shape[k];
        if (sz == 0) empty = 1;
        if (sz != 0 && numel > UINT64_MAX / sz) overflow = 1;
        else numel *= sz;
        /* a size-1 dimension's stride never matters */
        if (sz > 1 && sd != expect) d.contiguous = 0;
        if (sz > 1 && sd != 0 && sz - 1 > (UINT64_MAX - extent) / sd) overflow = 1;
        else if (sz > 1) extent += (sz - 1) * sd;
        if (sz != 0 && expect <= UINT64_MAX / sz) expect *= sz;
    }
    if (overflow) return adi_fail(AD_E_FORMAT, "tensor '%.*s': absurd size", (int)key->slen, key->s);
    d.numel = numel;
    if (empty) extent = 0;
    char ename[512];
    if (s->slen > 200 || memchr(s->s, '/', s->slen))
        return adi_fail(AD_E_FORMAT, "tensor '%.*s': bad storage key", (int)key->slen, key->s);
    snprintf(ename, sizeof ename, "%s/data/%.*s", prefix, (int)s->slen, s->s);
    tf_entry *e = zip_find(f, ename);
    if (!e)
        return adi_fail(AD_E_FORMAT, "tensor '%.*s': storage entry '%s' missing from the archive",
                       (int)key->slen, key->s, ename);
    d.entry = (int)(e - f->e);
    size_t es = tf_dtype_size(s->dtype);
    if (es) { /* storages of other types are only refused when needed */
        ad_status st = zip_resolve(f, e);
        if (st) return st;
        if (s->numel > e->size / es || s->numel * es != e->size)
            return adi_fail(AD_E_FORMAT, "storage '%s' holds %llu bytes, %llu %s elements declared",
                           ename, (unsigned long long)e->size, (unsigned long long)s->numel,
                           s->dname);
        if (t->offset > s->numel || extent > s->numel - t->offset)
            return adi_fail(AD_E_FORMAT, "tensor '%.*s' lies outside its storage (offset %llu, "
                           "extent %llu, storage %llu)", (int)key->slen, key->s,
                           (unsigned long long)t->offset, (unsigned long long)extent,
                           (unsigned long long)s->numel);
        d.offset = t->offset * es;
    }
    return tf_add(f, key->s, key->slen, &d);
}

ad_status tf_open_pth(tf_file *f)
{
    ad_status st = zip_read_cd(f);
    if (st) return st;
    /* PREFIX/data.pkl: PREFIX is the archive name torch.save chose (file stem or "archive") */
    tf_entry *pkl = NULL;
    for (size_t i = 0; i < f->n_e; i++) {
        const char *nm = f->e[i].name, *sl = strchr(nm, '/');
        if (sl && sl != nm && strcmp(sl + 1, "data.pkl") == 0) {
            if (pkl) return adi_fail(AD_E_FORMAT, "archive holds several data.pkl");
            pkl = &f->e[i];
        }
    }
    if (!pkl)
        return adi_fail(AD_E_FORMAT, "zip archive without PREFIX/data.pkl: not a PyTorch checkpoint");
    size_t pl = (size_t)(strchr(pkl->name, '/') - pkl->name);
    char prefix[256];
    if (pl >= sizeof prefix) return adi_fail(AD_E_FORMAT, "archive prefix too long");
    memcpy(prefix, pkl->name, pl);
    prefix[pl] = 0;

    char bo[300];
    snprintf(bo, sizeof bo, "%s/byteorder", prefix);
    tf_entry *be = zip_find(f, bo);
    if (be) {
        uint8_t *txt = NULL;
        if ((st = zip_slurp(f, be, &txt))) return st;
        int little = strncmp((const char *)txt, "little", 6) == 0;
        adi_free(txt);
        if (!little) return adi_fail(AD_E_FORMAT, "big-endian PyTorch checkpoints are not supported");
    }

    uint8_t *buf = NULL;
    if ((st = zip_slurp(f, pkl, &buf))) return st;
    pk_vm vm;
    memset(&vm, 0, sizeof vm);
    vm.mark.type = PK_MARK;
    vm.p = buf;
    vm.len = (size_t)pkl->size;
    pk_obj *root = NULL;
    st = pk_run(&vm, &root);
    if (st) {
        adi_error_prefix("%s", pkl->name);
    } else if (root->type != PK_DICT) {
        st = adi_fail(AD_E_FORMAT, "%s does not hold a state dict", pkl->name);
    } else {
        for (size_t i = 0; i + 1 < root->n && !st; i += 2) {
            const pk_obj *k = root->items[i], *v = root->items[i + 1];
            /* anything that is not name -> tensor is not part of the weights */
            if (k->type != PK_STR || v->type != PK_TENSOR) continue;
            st = add_tensor(f, prefix, k, v);
        }
    }
    pk_free(&vm);
    adi_free(buf);
    if (st) return st;
    return tf_index(f);
}
