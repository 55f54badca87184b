/* NumPy .npy files (format 1.0 and 2.0, little-endian, C order): the golden reference outputs
 * of the original Python code and the raw anomaly maps written by the CLI.
 * Format: NumPy's NEP 1 / numpy/lib/format.py - magic "\x93NUMPY", major, minor, header length
 * (uint16 for 1.0, uint32 for 2.0), a Python dict literal padded with spaces to a multiple of 64
 * bytes and ended by '\n', then the raw data. */
#include "io/io.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c reads and writes little-endian data in place: port it for big-endian hosts"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAX_DIMS 8
/* A header longer than this is garbage for the small arrays we read (NumPy itself refuses
 * headers over 10000 bytes by default since 1.24). */
#define NPY_MAX_HEADER 65536

static size_t dtype_size(adi_npy_dtype t)
{
    switch (t) {
    case AD_NPY_F4: return 4;
    case AD_NPY_F8: return 8;
    case AD_NPY_U1: return 1;
    case AD_NPY_B1: return 1;
    }
    return 0;
}

static const char *dtype_descr(adi_npy_dtype t)
{
    switch (t) {
    case AD_NPY_F4: return "<f4";
    case AD_NPY_F8: return "<f8";
    case AD_NPY_U1: return "|u1";
    case AD_NPY_B1: return "|b1";
    }
    return NULL;
}

/* ---- header parsing: a tiny reader for the one dict literal NumPy writes ---- */

typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int eat(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string ('...' or "...") without escapes, into buf. */
static int read_str(cursor *c, char *buf, size_t cap)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap) return 0;
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    buf[n] = 0;
    return 1;
}

static int read_word(cursor *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return 0;
    c->p += n;
    return 1;
}

static int read_size(cursor *c, size_t *out)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return 0;
    size_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        size_t d = (size_t)(*c->p - '0');
        if (v > (SIZE_MAX - d) / 10) return 0;
        v = v * 10 + d;
        c->p++;
    }
    /* Python 2 era files may write long integers as "3L" */
    if (c->p < c->end && *c->p == 'L') c->p++;
    *out = v;
    return 1;
}

static ad_status parse_header(const char *path, const char *h, size_t n, adi_npy *a)
{
    cursor c = {h, h + n};
    int have_descr = 0, have_order = 0, have_shape = 0;
    if (!eat(&c, '{')) return adi_fail(AD_E_FORMAT, "%s: npy header is not a dict", path);
    for (;;) {
        if (eat(&c, '}')) break;
        char key[32];
        if (!read_str(&c, key, sizeof key) || !eat(&c, ':'))
            return adi_fail(AD_E_FORMAT, "%s: npy header: bad dict entry", path);
        if (strcmp(key, "descr") == 0) {
            char d[32];
            if (!read_str(&c, d, sizeof d))
                return adi_fail(AD_E_FORMAT, "%s: npy header: descr is not a simple dtype string",
                               path);
            /* one-byte types have no byte order: NumPy writes '|', accept '<' and '=' too */
            if (strcmp(d, "<f4") == 0) a->dtype = AD_NPY_F4;
            else if (strcmp(d, "<f8") == 0) a->dtype = AD_NPY_F8;
            else if (strcmp(d, "|u1") == 0 || strcmp(d, "<u1") == 0 || strcmp(d, "=u1") == 0)
                a->dtype = AD_NPY_U1;
            else if (strcmp(d, "|b1") == 0 || strcmp(d, "<b1") == 0 || strcmp(d, "=b1") == 0)
                a->dtype = AD_NPY_B1;
            else if (d[0] == '>')
                return adi_fail(AD_E_FORMAT, "%s: big-endian npy dtype '%s' is not supported", path,
                               d);
            else
                return adi_fail(AD_E_FORMAT,
                               "%s: npy dtype '%s' is not supported (need <f4, <f8, |u1, |b1)",
                               path, d);
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (read_word(&c, "False")) {
                have_order = 1;
            } else if (read_word(&c, "True")) {
                return adi_fail(AD_E_FORMAT, "%s: Fortran-order npy arrays are not supported", path);
            } else {
                return adi_fail(AD_E_FORMAT, "%s: npy header: bad fortran_order value", path);
            }
        } else if (strcmp(key, "shape") == 0) {
            if (!eat(&c, '(')) return adi_fail(AD_E_FORMAT, "%s: npy header: bad shape", path);
            a->ndim = 0;
            for (;;) {
                if (eat(&c, ')')) break;
                size_t v;
                if (!read_size(&c, &v))
                    return adi_fail(AD_E_FORMAT, "%s: npy header: bad shape entry", path);
                if (a->ndim >= NPY_MAX_DIMS)
                    return adi_fail(AD_E_FORMAT, "%s: npy array has more than %d dimensions", path,
                                   NPY_MAX_DIMS);
                a->shape[a->ndim++] = v;
                if (eat(&c, ')')) break;
                if (!eat(&c, ',')) return adi_fail(AD_E_FORMAT, "%s: npy header: bad shape", path);
            }
            have_shape = 1;
        } else {
            return adi_fail(AD_E_FORMAT, "%s: npy header: unexpected key '%s'", path, key);
        }
        if (eat(&c, '}')) break;
        if (!eat(&c, ',')) return adi_fail(AD_E_FORMAT, "%s: npy header: missing ','", path);
    }
    skip_ws(&c);
    if (c.p != c.end) return adi_fail(AD_E_FORMAT, "%s: npy header: garbage after the dict", path);
    if (!have_descr || !have_order || !have_shape)
        return adi_fail(AD_E_FORMAT, "%s: npy header lacks %s", path,
                       !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    return AD_OK;
}

static uint32_t rd_le(const unsigned char *p, int n)
{
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Reads from the open stream f of fsize bytes (< 0: unknown); does not close f. */
static ad_status npy_read_stream(FILE *f, const char *path, long long fsize, adi_npy *out)
{
    ad_status st = AD_OK;
    char *hdr = NULL;
    void *data = NULL;
    adi_npy a;
    memset(&a, 0, sizeof a);

    unsigned char pre[12];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, NPY_MAGIC, 6) != 0) {
        st = adi_fail(AD_E_FORMAT, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    size_t hlen, pre_len;
    if (pre[6] == 1) {
        hlen = rd_le(pre + 8, 2);
        pre_len = 10;
    } else if (pre[6] == 2) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            st = adi_fail(AD_E_FORMAT, "%s: truncated .npy header", path);
            goto done;
        }
        hlen = rd_le(pre + 8, 4);
        pre_len = 12;
    } else {
        st = adi_fail(AD_E_FORMAT, "%s: .npy format version %d.%d is not supported", path, pre[6],
                     pre[7]);
        goto done;
    }
    if (hlen == 0 || hlen > NPY_MAX_HEADER) {
        st = adi_fail(AD_E_FORMAT, "%s: .npy header length %zu is out of range", path, hlen);
        goto done;
    }
    hdr = adi_malloc(hlen + 1);
    if (!hdr) {
        st = adi_fail(AD_E_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (fread(hdr, 1, hlen, f) != hlen) {
        st = adi_fail(AD_E_FORMAT, "%s: truncated .npy header", path);
        goto done;
    }
    hdr[hlen] = 0;
    if (memchr(hdr, 0, hlen)) {
        st = adi_fail(AD_E_FORMAT, "%s: .npy header contains a NUL byte", path);
        goto done;
    }
    st = parse_header(path, hdr, hlen, &a);
    if (st) goto done;

    size_t count = 1, bytes;
    for (int i = 0; i < a.ndim; i++) {
        if (adi_mul_overflow(count, a.shape[i], &count)) {
            st = adi_fail(AD_E_FORMAT, "%s: .npy shape overflows", path);
            goto done;
        }
    }
    if (adi_mul_overflow(count, dtype_size(a.dtype), &bytes)) {
        st = adi_fail(AD_E_FORMAT, "%s: .npy shape overflows", path);
        goto done;
    }
    /* Compare with the file size before allocating, so a corrupt shape cannot ask for an absurd
     * allocation. Trailing bytes are ignored, as numpy.load does. */
    if (fsize >= 0) {
        size_t avail = (size_t)fsize > pre_len + hlen ? (size_t)fsize - pre_len - hlen : 0;
        if (avail < bytes) {
            st = adi_fail(AD_E_FORMAT, "%s: truncated .npy data (%zu of %zu bytes)", path, avail,
                         bytes);
            goto done;
        }
    }
    data = adi_alloc(bytes ? bytes : 1, 1);
    if (!data) {
        st = AD_E_NOMEM;
        adi_error_prefix("%s", path);
        goto done;
    }
    if (bytes && fread(data, 1, bytes, f) != bytes) {
        st = adi_fail(AD_E_FORMAT, "%s: truncated .npy data", path);
        goto done;
    }
    if (a.dtype == AD_NPY_B1) {
        unsigned char *b = data;
        for (size_t i = 0; i < count; i++) b[i] = b[i] != 0;
    }
    a.count = count;
    a.data = data;
    data = NULL;
    *out = a;

done:
    adi_free(hdr);
    adi_free(data);
    return st;
}

ad_status adi_npy_read(const char *path, adi_npy *out)
{
    if (!path || !out) return adi_fail(AD_E_ARG, "adi_npy_read: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f) return adi_fail(AD_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    long long size = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) ? (long long)sb.st_size : -1;
    ad_status st = npy_read_stream(f, path, size, out);
    fclose(f);
    return st;
}

ad_status adi_npy_read_mem(const void *buf, size_t len, const char *name, adi_npy *out)
{
    if ((!buf && len) || !out) return adi_fail(AD_E_ARG, "adi_npy_read_mem: NULL argument");
    if (!name) name = "(buffer)";
    if (len < 10) return adi_fail(AD_E_FORMAT, "%s: not a .npy file (bad magic)", name);
    FILE *f = fmemopen((void *)buf, len, "rb");
    if (!f) return adi_fail(AD_E_NOMEM, "%s: cannot open the buffer: %s", name, strerror(errno));
    ad_status st = npy_read_stream(f, name, (long long)len, out);
    fclose(f);
    return st;
}

void adi_npy_free(adi_npy *a)
{
    if (!a) return;
    adi_free(a->data);
    a->data = NULL;
    a->count = 0;
    a->ndim = 0;
}

static int npy_valid(const adi_npy *a)
{
    return a && (a->data || a->count == 0) &&
           (a->dtype == AD_NPY_F4 || a->dtype == AD_NPY_F8 || a->dtype == AD_NPY_U1 ||
            a->dtype == AD_NPY_B1);
}

double *adi_npy_to_f64(const adi_npy *a)
{
    if (!npy_valid(a)) return adi_fail_null(AD_E_ARG, "adi_npy_to_f64: invalid array");
    double *o = adi_alloc(a->count ? a->count : 1, sizeof *o);
    if (!o) return NULL;
    for (size_t i = 0; i < a->count; i++) {
        switch (a->dtype) {
        case AD_NPY_F4: o[i] = ((const float *)a->data)[i]; break;
        case AD_NPY_F8: o[i] = ((const double *)a->data)[i]; break;
        case AD_NPY_U1:
        case AD_NPY_B1: o[i] = ((const uint8_t *)a->data)[i]; break;
        }
    }
    return o;
}

float *adi_npy_to_f32(const adi_npy *a)
{
    if (!npy_valid(a)) return adi_fail_null(AD_E_ARG, "adi_npy_to_f32: invalid array");
    float *o = adi_alloc(a->count ? a->count : 1, sizeof *o);
    if (!o) return NULL;
    for (size_t i = 0; i < a->count; i++) {
        switch (a->dtype) {
        case AD_NPY_F4: o[i] = ((const float *)a->data)[i]; break;
        case AD_NPY_F8: o[i] = (float)((const double *)a->data)[i]; break;
        case AD_NPY_U1:
        case AD_NPY_B1: o[i] = ((const uint8_t *)a->data)[i]; break;
        }
    }
    return o;
}

/* The header (preamble + dict + padding) and the data, as numpy.save writes them. */
static ad_status npy_encode(const char *who, adi_npy_dtype dtype, const void *data, int ndim,
                            const size_t *shape, uint8_t **out, size_t *len)
{
    const char *descr = dtype_descr(dtype);
    if (!descr) return adi_fail(AD_E_ARG, "%s: unknown npy dtype %d", who, (int)dtype);
    if (ndim < 0 || ndim > NPY_MAX_DIMS || (ndim > 0 && !shape))
        return adi_fail(AD_E_ARG, "%s: bad npy dimension count %d", who, ndim);
    size_t count = 1, bytes;
    for (int i = 0; i < ndim; i++)
        if (adi_mul_overflow(count, shape[i], &count))
            return adi_fail(AD_E_ARG, "%s: npy shape overflows", who);
    if (adi_mul_overflow(count, dtype_size(dtype), &bytes))
        return adi_fail(AD_E_ARG, "%s: npy shape overflows", who);
    if (bytes && !data) return adi_fail(AD_E_ARG, "%s: NULL data", who);

    /* the dict exactly as numpy.save spells it, so that files compare byte for byte */
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, i ? ", %zu" : "%zu", shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, ndim == 1 ? ",), }" : "), }");
    /* version 1.0 preamble is 10 bytes; pad with spaces so data starts at a multiple of 64 */
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    size_t hlen = padded - 10;
    if (bytes > SIZE_MAX - padded) return adi_fail(AD_E_ARG, "%s: npy shape overflows", who);
    uint8_t *buf = adi_malloc(padded + bytes);
    if (!buf) return adi_fail(AD_E_NOMEM, "%s: out of memory", who);
    const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                   (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
    memcpy(buf, pre, 10);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', padded - 10 - (size_t)n - 1);
    buf[padded - 1] = '\n';
    if (bytes) memcpy(buf + padded, data, bytes);
    *out = buf;
    *len = padded + bytes;
    return AD_OK;
}

ad_status adi_npy_encode(adi_npy_dtype dtype, const void *data, int ndim, const size_t *shape,
                        uint8_t **out, size_t *len)
{
    if (!out || !len) return adi_fail(AD_E_ARG, "adi_npy_encode: NULL argument");
    return npy_encode("npy encoder", dtype, data, ndim, shape, out, len);
}

ad_status adi_npy_write(const char *path, adi_npy_dtype dtype, const void *data, int ndim,
                       const size_t *shape)
{
    if (!path) return adi_fail(AD_E_ARG, "adi_npy_write: NULL path");
    uint8_t *buf;
    size_t len;
    ad_status st = npy_encode(path, dtype, data, ndim, shape, &buf, &len);
    if (st != AD_OK) return st;
    st = adi_io_write_file(path, buf, len);
    adi_free(buf);
    return st;
}
