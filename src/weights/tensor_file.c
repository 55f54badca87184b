/* The tensor table shared by both checkpoint readers, and the tensor-by-tensor reader that
 * converts to float32 straight into the caller's buffer (no whole-file buffering, so peak
 * memory stays about the size of the weights). */
#include "weights/tensor_file.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* Conversion chunk for F16/BF16 and for inflate: small enough to stay in cache. */
#define TF_CHUNK ((size_t)1 << 18)

size_t tf_dtype_size(tf_dtype d) { return d == TF_F32 ? 4 : (d == TF_F16 || d == TF_BF16) ? 2 : 0; }

const char *tf_shape_str(const int64_t *shape, int ndim, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

ad_status tf_pread(const tf_file *f, uint64_t off, void *buf, size_t len)
{
    if (off > f->file_size || len > f->file_size - off)
        return adi_fail(AD_E_FORMAT, "unexpected end of file: %zu bytes at offset %llu, file has %llu",
                       len, (unsigned long long)off, (unsigned long long)f->file_size);
    if (f->mem) {
        if (len) memcpy(buf, f->mem + off, len);
        return AD_OK;
    }
    uint8_t *p = buf;
    while (len > 0) {
        /* Linux moves at most ~2 GiB per call */
        size_t want = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        ssize_t got = pread(f->fd, p, want, (off_t)off);
        if (got < 0) {
            if (errno == EINTR) continue;
            return adi_fail(AD_E_IO, "read error at offset %llu: %s", (unsigned long long)off,
                           strerror(errno));
        }
        if (got == 0)
            return adi_fail(AD_E_FORMAT, "unexpected end of file at offset %llu (file shrank?)",
                           (unsigned long long)off);
        p += got;
        off += (uint64_t)got;
        len -= (size_t)got;
    }
    return AD_OK;
}

ad_status tf_add(tf_file *f, const char *name, size_t name_len, tf_tensor *proto)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 256;
        tf_tensor *t = adi_realloc(f->t, cap * sizeof *t);
        if (!t) return adi_fail(AD_E_NOMEM, "out of memory for the tensor table");
        f->t = t;
        f->cap = cap;
    }
    char *s = adi_malloc(name_len + 1);
    if (!s) return adi_fail(AD_E_NOMEM, "out of memory for the tensor table");
    memcpy(s, name, name_len);
    s[name_len] = 0;
    if (strlen(s) != name_len) {
        adi_free(s);
        return adi_fail(AD_E_FORMAT, "tensor name with an embedded NUL byte");
    }
    proto->name = s;
    f->t[f->n++] = *proto;
    return AD_OK;
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const tf_tensor *)a)->name, ((const tf_tensor *)b)->name);
}

ad_status tf_index(tf_file *f)
{
    if (f->n > 1) qsort(f->t, f->n, sizeof *f->t, cmp_tensor);
    for (size_t i = 1; i < f->n; i++)
        if (strcmp(f->t[i - 1].name, f->t[i].name) == 0)
            return adi_fail(AD_E_FORMAT, "tensor '%s' appears twice", f->t[i].name);
    return AD_OK;
}

const tf_tensor *tf_find(const tf_file *f, const char *name)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->t[mid].name, name);
        if (c == 0) return &f->t[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

void tf_close(tf_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) adi_free(f->t[i].name);
    adi_free(f->t);
    for (size_t i = 0; i < f->n_e; i++) adi_free(f->e[i].name);
    adi_free(f->e);
    if (f->fd >= 0) close(f->fd);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

/* ---- conversion ------------------------------------------------------------------------ */

/* Branch-free: the three cases are computed and one selected. NaNs come out quiet, as the
 * F16C instruction makes them, so that both paths give the same bits. */
static inline float f16_one(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, em = h & 0x7fffu;
    uint32_t normal = (em << 13) + ((uint32_t)(127 - 15) << 23);  /* rebias the exponent */
    uint32_t special = (em << 13) | 0x7f800000u | (em > 0x7c00u ? 0x00400000u : 0); /* inf/NaN */
    float sub = (float)(int32_t)em * 0x1p-24f;                   /* zero / subnormal: exact */
    uint32_t subu;
    memcpy(&subu, &sub, 4);
    uint32_t u = sign | (em >= 0x7c00u ? special : em >= 0x0400u ? normal : subu);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void tf_f16_to_f32_portable(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = f16_one(src[i]);
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
/* VCVTPH2PS is exact (subnormal halves included); ~10x the portable loop. */
__attribute__((target("avx,f16c"))) static void f16_to_f32_f16c(const uint16_t *src, float *dst,
                                                                 size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = f16_one(src[i]);
}

static int has_f16c(void) { return adi_cpu_has_f16c(); }
#endif

void tf_f16_to_f32(const uint16_t *src, float *dst, size_t n)
{
#if defined(__x86_64__) || defined(__i386__)
    if (has_f16c()) {
        f16_to_f32_f16c(src, dst, n);
        return;
    }
#endif
    tf_f16_to_f32_portable(src, dst, n);
}

void tf_bf16_to_f32(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &u, 4);
    }
}

/* Receives the tensor's raw bytes in pieces of any length and writes float32 to dst. */
typedef struct {
    tf_dtype dtype;
    float *dst;
    size_t pos;       /* raw bytes received */
    uint8_t carry;    /* first byte of a 2-byte element split across pieces */
} sink;

static void sink_put(sink *s, const uint8_t *p, size_t n)
{
    if (s->dtype == TF_F32) {
        memcpy((uint8_t *)s->dst + s->pos, p, n);
        s->pos += n;
        return;
    }
    uint16_t buf[1024];
    if ((s->pos & 1) && n > 0) {
        uint16_t h = (uint16_t)(s->carry | ((uint16_t)p[0] << 8));
        if (s->dtype == TF_F16) tf_f16_to_f32(&h, s->dst + s->pos / 2, 1);
        else tf_bf16_to_f32(&h, s->dst + s->pos / 2, 1);
        p++;
        n--;
        s->pos++;
    }
    while (n >= 2) {
        size_t k = n / 2 < 1024 ? n / 2 : 1024;
        memcpy(buf, p, k * 2);  /* p may be unaligned */
        if (s->dtype == TF_F16) tf_f16_to_f32(buf, s->dst + s->pos / 2, k);
        else tf_bf16_to_f32(buf, s->dst + s->pos / 2, k);
        p += k * 2;
        n -= k * 2;
        s->pos += k * 2;
    }
    if (n == 1) {
        s->carry = p[0];
        s->pos++;
    }
}

static ad_status read_plain(const tf_file *f, uint64_t abs, size_t nbytes, sink *s, uLong *crc)
{
    if (s->dtype == TF_F32) {  /* straight into place */
        ad_status st = tf_pread(f, abs, s->dst, nbytes);
        if (st) return st;
        if (crc) *crc = crc32_z(*crc, (const Bytef *)s->dst, nbytes);
        s->pos = nbytes;
        return AD_OK;
    }
    uint8_t *buf = adi_malloc(TF_CHUNK);
    if (!buf) return adi_fail(AD_E_NOMEM, "out of memory (read buffer)");
    size_t done = 0;
    while (done < nbytes) {
        size_t k = nbytes - done < TF_CHUNK ? nbytes - done : TF_CHUNK;
        ad_status st = tf_pread(f, abs + done, buf, k);
        if (st) {
            adi_free(buf);
            return st;
        }
        if (crc) *crc = crc32_z(*crc, buf, k);
        sink_put(s, buf, k);
        done += k;
    }
    adi_free(buf);
    return AD_OK;
}

/* Inflates the entry from its start, keeping bytes [skip, skip + nbytes). With check_all the
 * whole entry is inflated and its size and CRC verified. */
static ad_status read_deflate(const tf_file *f, const tf_entry *e, uint64_t skip, size_t nbytes,
                              sink *s, int check_all)
{
    uint8_t *in = adi_malloc(TF_CHUNK), *out = adi_malloc(TF_CHUNK);
    z_stream z;
    memset(&z, 0, sizeof z);
    z.zalloc = adi_zalloc;
    z.zfree = adi_zfree;
    if (!in || !out || inflateInit2(&z, -MAX_WBITS) != Z_OK) {
        adi_free(in);
        adi_free(out);
        return adi_fail(AD_E_NOMEM, "out of memory (inflate)");
    }
    ad_status st = AD_OK;
    uint64_t in_pos = 0, out_pos = 0, want_end = skip + nbytes;
    uLong crc = crc32_z(0, Z_NULL, 0);
    int zr = Z_OK;
    while (zr != Z_STREAM_END && (check_all || out_pos < want_end)) {
        if (z.avail_in == 0) {
            if (in_pos >= e->comp_size) {
                st = adi_fail(AD_E_FORMAT, "entry '%s': compressed data ends early", e->name);
                break;
            }
            size_t k = e->comp_size - in_pos < TF_CHUNK ? (size_t)(e->comp_size - in_pos) : TF_CHUNK;
            if ((st = tf_pread(f, e->data_off + in_pos, in, k))) break;
            in_pos += k;
            z.next_in = in;
            z.avail_in = (uInt)k;
        }
        z.next_out = out;
        z.avail_out = (uInt)TF_CHUNK;
        zr = inflate(&z, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
            st = adi_fail(AD_E_FORMAT, "entry '%s': corrupt deflate data (%s)", e->name,
                         z.msg ? z.msg : "zlib error");
            break;
        }
        size_t got = TF_CHUNK - z.avail_out;
        if (zr == Z_BUF_ERROR && got == 0 && z.avail_in != 0) {
            st = adi_fail(AD_E_FORMAT, "entry '%s': inflate makes no progress", e->name);
            break;
        }
        if (check_all) crc = crc32_z(crc, out, got);
        /* keep the overlap of [out_pos, out_pos+got) with [skip, want_end) */
        uint64_t a = out_pos > skip ? out_pos : skip;
        uint64_t b = out_pos + got < want_end ? out_pos + got : want_end;
        if (a < b) sink_put(s, out + (a - out_pos), (size_t)(b - a));
        out_pos += got;
        if (out_pos > e->size) {
            st = adi_fail(AD_E_FORMAT, "entry '%s' inflates past its declared size %llu", e->name,
                         (unsigned long long)e->size);
            break;
        }
    }
    if (!st && out_pos < want_end)
        st = adi_fail(AD_E_FORMAT, "entry '%s' inflates to %llu bytes, %llu needed", e->name,
                     (unsigned long long)out_pos, (unsigned long long)want_end);
    if (!st && check_all && (out_pos != e->size || (ADI_CHECKSUMS && (uint32_t)crc != e->crc)))
        st = adi_fail(AD_E_FORMAT, "entry '%s': size or CRC-32 mismatch after inflate", e->name);
    inflateEnd(&z);
    adi_free(in);
    adi_free(out);
    return st;
}

ad_status tf_read(const tf_file *f, const tf_tensor *t, float *dst)
{
    size_t es = tf_dtype_size(t->dtype);
    if (!es)
        return adi_fail(AD_E_FORMAT, "tensor '%s' has dtype %s; only F32, F16 and BF16 are supported",
                       t->name, t->dtype_name);
    if (!t->contiguous)
        return adi_fail(AD_E_FORMAT, "tensor '%s' is a non-contiguous view", t->name);
    size_t nbytes;
    if (t->numel > SIZE_MAX || adi_mul_overflow((size_t)t->numel, es, &nbytes))
        return adi_fail(AD_E_FORMAT, "tensor '%s' is too large", t->name);
    sink s = {t->dtype, dst, 0, 0};
    if (t->entry < 0) return read_plain(f, t->offset, nbytes, &s, NULL);

    const tf_entry *e = &f->e[t->entry];
    if (t->offset > e->size || nbytes > e->size - t->offset)
        return adi_fail(AD_E_FORMAT, "tensor '%s' extends past the end of its storage '%s'", t->name,
                       e->name);
    /* A tensor that is its whole storage (always so in state dicts) gets the CRC checked. */
    int whole = t->offset == 0 && nbytes == e->size;
    if (e->method == 8) return read_deflate(f, e, t->offset, nbytes, &s, whole);
    uLong crc = crc32_z(0, Z_NULL, 0);
    ad_status st = read_plain(f, e->data_off + t->offset, nbytes, &s, whole ? &crc : NULL);
    if (st) return st;
    if (whole && ADI_CHECKSUMS && (uint32_t)crc != e->crc)
        return adi_fail(AD_E_FORMAT, "entry '%s': CRC-32 mismatch (corrupt data)", e->name);
    return AD_OK;
}
