/* Mask formats beside PNG and JPEG, and float32 TIFF maps:
 *   BMP   decoded by stb_image (Debian libstb-dev), e.g. KolektorSDD's PartN_label.bmp;
 *   TIFF  decoded and written by libtiff, e.g. masks of other industrial sets and the float32
 *         anomaly maps the original code can save.
 * Every decoder checks the size from the header before it allocates pixels, and nothing here
 * prints: libtiff's messages go to per-handle handlers (TIFFOpenOptions), never to the global
 * ones, and the first error becomes the one-line reason. */
#include "io/io.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS 65535
#define STBI_MALLOC(sz) adi_malloc(sz) /* every library allocation through core.h */
#define STBI_REALLOC(p, sz) adi_realloc(p, sz)
#define STBI_FREE(p) adi_free(p)
#define STB_IMAGE_STATIC /* private to this file: no stbi_* symbol can clash with another copy */
#define STB_IMAGE_IMPLEMENTATION
/* stb_image's unused static functions are reported at the end of the file: not ours to fix */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

/* The built-in bound of image_io.c: no side above 65535, no more than 2^28 pixels. */
#define MASK_MAX_SIDE 65535
#define MASK_MAX_PIXELS ((size_t)1 << 28)

static ad_status check_size(const char *path, size_t w, size_t h, size_t max_pixels)
{
    if (w == 0 || h == 0)
        return adi_fail(AD_E_FORMAT, "%s: image has zero size (%zu x %zu)", path, w, h);
    if (w > MASK_MAX_SIDE || h > MASK_MAX_SIDE || w * h > MASK_MAX_PIXELS)
        return adi_fail(AD_E_FORMAT, "%s: image size %zu x %zu is out of range (max %d per side, "
                        "%zu pixels)", path, w, h, MASK_MAX_SIDE, MASK_MAX_PIXELS);
    if (max_pixels && w * h > max_pixels) return adi_io_pixel_limit_error(path, w, h, max_pixels);
    return AD_OK;
}

int adi_io_mask_kind_mem(const uint8_t *b, size_t n)
{
    if (!b) return 0;
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return 1;
    if (n >= 4 && ((b[0] == 'I' && b[1] == 'I' && b[2] == 42 && b[3] == 0) ||
                   (b[0] == 'M' && b[1] == 'M' && b[2] == 0 && b[3] == 42)))
        return 2;
    return 0;
}

int adi_io_mask_kind(const char *path)
{
    unsigned char b[4] = {0};
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) return 0;
    size_t n = fread(b, 1, 4, f);
    fclose(f);
    return adi_io_mask_kind_mem(b, n);
}

/* ------------------------------------------------------------------------------------------ */
/* BMP                                                                                         */
/* ------------------------------------------------------------------------------------------ */

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* stb_image reads past the end of a BMP as zeros, so a truncated file would decode "ok" (an
 * 83-byte file declaring 24 x 16385 pixels did, with a 1.5 MB pixel buffer). An uncompressed
 * BMP must hold its whole header and its pixel rows: offset + |height| x the 4-byte aligned row.
 * (RLE BMPs, which stb_image refuses anyway, are left to it.) */
static ad_status bmp_check_length(const char *path, const unsigned char *b, size_t len)
{
    if (len < 26) return adi_fail(AD_E_FORMAT, "%s: corrupt BMP: truncated header", path);
    uint32_t off = le32(b + 10), hsz = le32(b + 14);
    uint64_t w, h, bpp, comp = 0;
    if (hsz == 12) { /* OS/2 BITMAPCOREHEADER */
        w = (uint64_t)(b[18] | b[19] << 8);
        h = (uint64_t)(b[20] | b[21] << 8);
        bpp = (uint64_t)(b[24] | b[25] << 8);
    } else {
        if (len < 34) return adi_fail(AD_E_FORMAT, "%s: corrupt BMP: truncated header", path);
        int32_t sw = (int32_t)le32(b + 18), sh = (int32_t)le32(b + 22);
        w = sw < 0 ? (uint64_t)(-(int64_t)sw) : (uint64_t)sw;
        h = sh < 0 ? (uint64_t)(-(int64_t)sh) : (uint64_t)sh;
        bpp = (uint64_t)(b[28] | b[29] << 8);
        comp = le32(b + 30);
    }
    if (len < 14 + (uint64_t)hsz)
        return adi_fail(AD_E_FORMAT, "%s: corrupt BMP: truncated header", path);
    /* stb_image refuses RLE (1, 2) and decodes every other compression value as plain rows */
    if (comp == 1 || comp == 2) return AD_OK;
    if (w > MASK_MAX_SIDE || h > MASK_MAX_SIDE) return AD_OK; /* refused later */
    /* stb_image reads 32 bits per pixel for every bit count it does not know above 16 (a
     * 180-byte file with 57568 bits per pixel decoded as 129 x 32499) */
    if (bpp > 16 && bpp != 24) bpp = 32;
    uint64_t need = (uint64_t)off + h * (((w * bpp + 31) / 32) * 4);
    if (need > len)
        return adi_fail(AD_E_FORMAT, "%s: corrupt BMP: truncated (%" PRIu64 " x %" PRIu64
                        " pixels of %" PRIu64 " bits need %" PRIu64 " bytes, the file has %zu)",
                        path, w, h, bpp, need, len);
    return AD_OK;
}

static ad_status decode_bmp(const char *path, const unsigned char *buf, size_t len,
                            size_t max_pixels, uint8_t **out, int *w, int *h)
{
    if (len > 0x7fffffff) return adi_fail(AD_E_FORMAT, "%s: BMP file too large", path);
    int x = 0, y = 0, comp = 0;
    if (!stbi_info_from_memory(buf, (int)len, &x, &y, &comp)) {
        const char *why = stbi_failure_reason();
        return adi_fail(AD_E_FORMAT, "%s: corrupt BMP: %s", path, why ? why : "unreadable header");
    }
    /* stb_image's header probe gives a top-down BMP's height as stored (negative); the
     * decoder flips it. Negative values are sizes too (INT_MIN included), never wrapped. */
    long long ax = x < 0 ? -(long long)x : x, ay = y < 0 ? -(long long)y : y;
    ad_status st = check_size(path, (size_t)ax, (size_t)ay, max_pixels);
    if (st == AD_OK) st = bmp_check_length(path, buf, len);
    if (st != AD_OK) return st;
    unsigned char *px = stbi_load_from_memory(buf, (int)len, &x, &y, &comp, 1);
    if (!px) {
        const char *why = stbi_failure_reason();
        return adi_fail(AD_E_FORMAT, "%s: corrupt BMP: %s", path, why ? why : "cannot decode");
    }
    size_t n = (size_t)x * (size_t)y;
    uint8_t *m = adi_alloc(n, 1);
    if (!m) {
        stbi_image_free(px);
        adi_error_prefix("%s", path);
        return AD_E_NOMEM;
    }
    memcpy(m, px, n);
    stbi_image_free(px);
    *out = m;
    *w = x;
    *h = y;
    return AD_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* TIFF                                                                                        */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    char msg[256];
    int have;
} tiff_msgs;

static int tiff_error_fn(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif;
    (void)module;
    tiff_msgs *m = user;
    if (!m->have) {
        vsnprintf(m->msg, sizeof m->msg, fmt, ap);
        m->have = 1;
    }
    return 1; /* handled: libtiff's global handler (stderr) is not called */
}

static int tiff_warning_fn(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif;
    (void)user;
    (void)module;
    (void)fmt;
    (void)ap;
    return 1; /* warnings concern tags we do not use: stay silent */
}

/* Largest single allocation libtiff may make for one file (strip and tile buffers, tag arrays):
 * far above what a mask within the pixel bounds needs, far below what a lying header asks for. */
#define TIFF_MAX_SINGLE_ALLOC ((tmsize_t)1 << 28)

static TIFFOpenOptions *tiff_options(tiff_msgs *msgs)
{
    TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
    if (!o) return NULL;
    TIFFOpenOptionsSetErrorHandlerExtR(o, tiff_error_fn, msgs);
    TIFFOpenOptionsSetWarningHandlerExtR(o, tiff_warning_fn, msgs);
    TIFFOpenOptionsSetMaxSingleMemAlloc(o, TIFF_MAX_SINGLE_ALLOC);
    return o;
}

static TIFF *tiff_open(const char *path, const char *mode, tiff_msgs *msgs)
{
    TIFFOpenOptions *o = tiff_options(msgs);
    if (!o) return NULL;
    TIFF *t = TIFFOpenExt(path, mode, o);
    TIFFOpenOptionsFree(o);
    return t;
}

/* A read-only TIFF in memory, for libtiff's client interface. */
typedef struct {
    const unsigned char *buf;
    size_t len, pos;
} tiff_mem;

static tmsize_t tiff_mem_read(thandle_t h, void *dst, tmsize_t n)
{
    tiff_mem *m = (tiff_mem *)h;
    if (n <= 0 || m->pos >= m->len) return 0;
    size_t k = m->len - m->pos;
    if ((size_t)n < k) k = (size_t)n;
    memcpy(dst, m->buf + m->pos, k);
    m->pos += k;
    return (tmsize_t)k;
}

static tmsize_t tiff_mem_write(thandle_t h, void *src, tmsize_t n)
{
    (void)h;
    (void)src;
    (void)n;
    return -1;
}

static toff_t tiff_mem_seek(thandle_t h, toff_t off, int whence)
{
    tiff_mem *m = (tiff_mem *)h;
    uint64_t base = whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->len : 0;
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) return (toff_t)-1;
    if (off > UINT64_MAX - base) return (toff_t)-1;
    uint64_t np = base + off;
    if (np > SIZE_MAX) return (toff_t)-1;
    m->pos = (size_t)np; /* beyond the end: reads there return 0 bytes */
    return (toff_t)np;
}

static int tiff_mem_close(thandle_t h)
{
    (void)h;
    return 0;
}

static toff_t tiff_mem_size(thandle_t h)
{
    return (toff_t)((tiff_mem *)h)->len;
}

static int tiff_mem_map(thandle_t h, void **base, toff_t *size)
{
    tiff_mem *m = (tiff_mem *)h;
    *base = (void *)m->buf; /* opened "r": libtiff only reads the mapping */
    *size = (toff_t)m->len;
    return 1;
}

static void tiff_mem_unmap(thandle_t h, void *base, toff_t size)
{
    (void)h;
    (void)base;
    (void)size;
}

static TIFF *tiff_open_mem(const char *name, tiff_mem *mem, tiff_msgs *msgs)
{
    TIFFOpenOptions *o = tiff_options(msgs);
    if (!o) return NULL;
    TIFF *t = TIFFClientOpenExt(name, "r", (thandle_t)mem, tiff_mem_read, tiff_mem_write,
                                tiff_mem_seek, tiff_mem_close, tiff_mem_size, tiff_mem_map,
                                tiff_mem_unmap, o);
    TIFFOpenOptionsFree(o);
    return t;
}

/* Before the raster is reserved: the image data (strips or tiles, the part of each inside the
 * file) must be able to hold the declared pixels at the compression's largest ratio (none 1,
 * PackBits 64, deflate 1032, LZW 4096 bytes per byte, plus one ratio's worth per strip for a
 * partial code), so that a few bytes declaring 40 M pixels are refused before 200 MB are
 * reserved. Fax, JPEG and the other codecs have no such bound (a G4 row of one colour takes a
 * bit) and are left to libtiff's own checks. */
static ad_status tiff_check_data(const char *path, TIFF *t, size_t len, uint32_t tw, uint32_t th)
{
    uint16_t comp = COMPRESSION_NONE, bps = 1, spp = 1;
    TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &comp);
    TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bps);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
    uint64_t ratio;
    switch (comp) {
    case COMPRESSION_NONE: ratio = 1; break;
    case COMPRESSION_PACKBITS: ratio = 64; break;
    case COMPRESSION_ADOBE_DEFLATE:
    case COMPRESSION_DEFLATE: ratio = 1032; break;
    case COMPRESSION_LZW: ratio = 4096; break;
    default: return AD_OK;
    }
    int tiled = TIFFIsTiled(t);
    uint64_t *cnt = NULL, *off = NULL;
    uint32_t n = tiled ? TIFFNumberOfTiles(t) : TIFFNumberOfStrips(t);
    if (!TIFFGetField(t, tiled ? TIFFTAG_TILEBYTECOUNTS : TIFFTAG_STRIPBYTECOUNTS, &cnt) ||
        !TIFFGetField(t, tiled ? TIFFTAG_TILEOFFSETS : TIFFTAG_STRIPOFFSETS, &off) || !cnt ||
        !off || n == 0)
        return AD_OK; /* libtiff reports what is missing */
    uint64_t have = 0;
    for (uint32_t i = 0; i < n; i++)
        if (off[i] < len) have += cnt[i] < len - off[i] ? cnt[i] : len - off[i];
    uint64_t need = ((uint64_t)tw * bps * spp + 7) / 8 * th;
    if (have * ratio + (uint64_t)n * ratio < need)
        return adi_fail(AD_E_FORMAT, "%s: corrupt TIFF: %" PRIu64 " bytes of image data cannot "
                        "hold %u x %u pixels of %u x %u bits", path, have, (unsigned)tw,
                        (unsigned)th, (unsigned)spp, (unsigned)bps);
    return AD_OK;
}

static ad_status decode_tiff(const char *path, const unsigned char *buf, size_t len,
                             size_t max_pixels, uint8_t **out, int *w, int *h)
{
    tiff_msgs msgs = {"unreadable file", 0};
    tiff_mem mem = {buf, len, 0};
    TIFF *t = tiff_open_mem(path, &mem, &msgs);
    if (!t) return adi_fail(AD_E_FORMAT, "%s: corrupt TIFF: %s", path, msgs.msg);
    uint32_t tw = 0, th = 0;
    TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &tw);
    TIFFGetField(t, TIFFTAG_IMAGELENGTH, &th);
    ad_status st = check_size(path, tw, th, max_pixels);
    if (st == AD_OK) st = tiff_check_data(path, t, len, tw, th);
    if (st != AD_OK) {
        TIFFClose(t);
        return st;
    }
    size_t n = (size_t)tw * th;
    uint32_t *rgba = adi_alloc(n, sizeof *rgba);
    uint8_t *m = rgba ? adi_alloc(n, 1) : NULL;
    if (!m) {
        adi_free(rgba);
        TIFFClose(t);
        return adi_fail(AD_E_NOMEM, "%s: out of memory for a %u x %u mask", path, (unsigned)tw,
                        (unsigned)th);
    }
    if (!TIFFReadRGBAImageOriented(t, tw, th, rgba, ORIENTATION_TOPLEFT, 0)) {
        TIFFClose(t);
        adi_free(rgba);
        adi_free(m);
        return adi_fail(AD_E_FORMAT, "%s: corrupt TIFF: %s", path,
                        msgs.have ? msgs.msg : "cannot decode the image data");
    }
    TIFFClose(t);
    for (size_t i = 0; i < n; i++) m[i] = (uint8_t)TIFFGetR(rgba[i]);
    adi_free(rgba);
    *out = m;
    *w = (int)tw;
    *h = (int)th;
    return AD_OK;
}

ad_status adi_io_decode_mask_other(const char *name, const uint8_t *buf, size_t len, int kind,
                                   size_t max_pixels, uint8_t **out, int *w, int *h)
{
    if (!name || (!buf && len) || !out || !w || !h)
        return adi_fail(AD_E_ARG, "adi_io_decode_mask_other: NULL argument");
    if (kind == 1) return decode_bmp(name, buf, len, max_pixels, out, w, h);
    if (kind == 2) return decode_tiff(name, buf, len, max_pixels, out, w, h);
    return adi_fail(AD_E_ARG, "%s: unknown mask kind %d", name, kind);
}

ad_status adi_io_read_mask_other(const char *path, int kind, size_t max_pixels, uint8_t **out,
                                 int *w, int *h)
{
    if (!path || !out || !w || !h) return adi_fail(AD_E_ARG, "adi_io_read_mask: NULL argument");
    if (kind != 1 && kind != 2) return adi_fail(AD_E_ARG, "%s: unknown mask kind %d", path, kind);
    size_t len;
    char *buf = adi_io_read_file(path, &len);
    if (!buf) return AD_E_IO;
    ad_status st = adi_io_decode_mask_other(path, (const uint8_t *)buf, len, kind, max_pixels, out,
                                            w, h);
    free(buf);
    return st;
}

void adi_io_binarize_mask(uint8_t *m, size_t n)
{
    uint8_t mx = 0;
    for (size_t i = 0; i < n; i++)
        if (m[i] > mx) mx = m[i];
    if (mx < 128)
        for (size_t i = 0; i < n; i++) m[i] = m[i] != 0;
    else
        for (size_t i = 0; i < n; i++) m[i] = m[i] >= 128;
}

ad_status adi_io_read_gt_mask(const char *path, size_t max_pixels, uint8_t **out, int *w, int *h)
{
    ad_status st = adi_io_read_mask_max(path, max_pixels, out, w, h);
    if (st == AD_OK) adi_io_binarize_mask(*out, (size_t)*w * (size_t)*h);
    return st;
}

ad_status adi_io_write_tiff_f32(const char *path, const float *map, int w, int h)
{
    if (!path || !map || w <= 0 || h <= 0)
        return adi_fail(AD_E_ARG, "adi_io_write_tiff_f32: bad argument");
    tiff_msgs msgs = {"cannot create the file", 0};
    /* libtiff writes by name: into the atomic write's temporary file, then committed */
    adi_atomic a;
    ad_status st = adi_atomic_open(&a, path);
    if (st == AD_OK) st = adi_atomic_detach(&a);
    if (st != AD_OK) {
        if (a.tmp) adi_atomic_abort(&a);
        return st;
    }
    errno = 0;
    TIFF *t = tiff_open(a.tmp, "w", &msgs);
    if (!t) {
        st = adi_fail(AD_E_IO, "%s: cannot create: %s", path, errno ? strerror(errno) : msgs.msg);
        adi_atomic_abort(&a);
        return st;
    }
    int ok = TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)w) &&
             TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)h) &&
             TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1) &&
             TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 32) &&
             TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_IEEEFP) &&
             TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
             TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK) &&
             TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_NONE) &&
             TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(t, 0));
    for (int y = 0; ok && y < h; y++)
        ok = TIFFWriteScanline(t, (void *)(map + (size_t)y * (size_t)w), (uint32_t)y, 0) == 1;
    if (ok) ok = TIFFWriteDirectory(t) == 1;
    TIFFClose(t);
    if (!ok) {
        adi_atomic_abort(&a);
        return adi_fail(AD_E_IO, "%s: write failed: %s", path, msgs.have ? msgs.msg : "libtiff");
    }
    return adi_atomic_commit(&a);
}

ad_status adi_io_read_tiff_f32(const char *path, float **out, int *w, int *h)
{
    tiff_msgs msgs = {"unreadable file", 0};
    TIFF *t = tiff_open(path, "r", &msgs);
    if (!t) return adi_fail(AD_E_FORMAT, "%s: corrupt TIFF: %s", path, msgs.msg);
    uint32_t tw = 0, th = 0;
    uint16_t bps = 0, spp = 1, fmt = SAMPLEFORMAT_UINT;
    TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &tw);
    TIFFGetField(t, TIFFTAG_IMAGELENGTH, &th);
    TIFFGetField(t, TIFFTAG_BITSPERSAMPLE, &bps);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &fmt);
    ad_status st = check_size(path, tw, th, 0);
    if (st == AD_OK && (bps != 32 || spp != 1 || fmt != SAMPLEFORMAT_IEEEFP))
        st = adi_fail(AD_E_FORMAT, "%s: not a single-channel float32 TIFF", path);
    float *m = st == AD_OK ? adi_alloc((size_t)tw * th, sizeof *m) : NULL;
    if (st == AD_OK && !m) st = AD_E_NOMEM;
    for (uint32_t y = 0; st == AD_OK && y < th; y++)
        if (TIFFReadScanline(t, m + (size_t)y * tw, y, 0) != 1)
            st = adi_fail(AD_E_FORMAT, "%s: corrupt TIFF: %s", path, msgs.msg);
    TIFFClose(t);
    if (st != AD_OK) {
        adi_free(m);
        return st;
    }
    *out = m;
    *w = (int)tw;
    *h = (int)th;
    return AD_OK;
}
