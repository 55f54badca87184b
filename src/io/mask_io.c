/* Mask formats beside PNG and JPEG, and float32 TIFF maps:
 *   BMP   decoded by stb_image (Debian libstb-dev), e.g. KolektorSDD's PartN_label.bmp;
 *   TIFF  decoded and written by libtiff, e.g. masks of other industrial sets and the float32
 *         anomaly maps the original code can save.
 * Every decoder checks the size from the header before it allocates pixels, and nothing here
 * prints: libtiff's messages go to per-handle handlers (TIFFOpenOptions), never to the global
 * ones, and the first error becomes the one-line reason. */
#include "io/io.h"

#include <errno.h>
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

int adi_io_mask_kind(const char *path)
{
    unsigned char b[4] = {0};
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) return 0;
    size_t n = fread(b, 1, 4, f);
    fclose(f);
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return 1;
    if (n == 4 && ((b[0] == 'I' && b[1] == 'I' && b[2] == 42 && b[3] == 0) ||
                   (b[0] == 'M' && b[1] == 'M' && b[2] == 0 && b[3] == 42)))
        return 2;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* BMP                                                                                         */
/* ------------------------------------------------------------------------------------------ */

static ad_status read_bmp(const char *path, size_t max_pixels, uint8_t **out, int *w, int *h)
{
    size_t len;
    unsigned char *buf = (unsigned char *)adi_io_read_file(path, &len);
    if (!buf) return AD_E_IO;
    if (len > 0x7fffffff) {
        free(buf);
        return adi_fail(AD_E_FORMAT, "%s: BMP file too large", path);
    }
    int x = 0, y = 0, comp = 0;
    if (!stbi_info_from_memory(buf, (int)len, &x, &y, &comp)) {
        const char *why = stbi_failure_reason();
        free(buf);
        return adi_fail(AD_E_FORMAT, "%s: corrupt BMP: %s", path, why ? why : "unreadable header");
    }
    ad_status st = check_size(path, (size_t)x, (size_t)y, max_pixels);
    if (st != AD_OK) {
        free(buf);
        return st;
    }
    unsigned char *px = stbi_load_from_memory(buf, (int)len, &x, &y, &comp, 1);
    free(buf);
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

static TIFF *tiff_open(const char *path, const char *mode, tiff_msgs *msgs)
{
    TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
    if (!o) return NULL;
    TIFFOpenOptionsSetErrorHandlerExtR(o, tiff_error_fn, msgs);
    TIFFOpenOptionsSetWarningHandlerExtR(o, tiff_warning_fn, msgs);
    TIFF *t = TIFFOpenExt(path, mode, o);
    TIFFOpenOptionsFree(o);
    return t;
}

static ad_status read_tiff(const char *path, size_t max_pixels, uint8_t **out, int *w, int *h)
{
    tiff_msgs msgs = {"unreadable file", 0};
    TIFF *t = tiff_open(path, "r", &msgs);
    if (!t) return adi_fail(AD_E_FORMAT, "%s: corrupt TIFF: %s", path, msgs.msg);
    uint32_t tw = 0, th = 0;
    TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &tw);
    TIFFGetField(t, TIFFTAG_IMAGELENGTH, &th);
    ad_status st = check_size(path, tw, th, max_pixels);
    if (st != AD_OK) {
        TIFFClose(t);
        return st;
    }
    size_t n = (size_t)tw * th;
    uint32_t *rgba = malloc(n * sizeof *rgba);
    uint8_t *m = rgba ? adi_alloc(n, 1) : NULL;
    if (!m) {
        free(rgba);
        TIFFClose(t);
        return adi_fail(AD_E_NOMEM, "%s: out of memory for a %u x %u mask", path, (unsigned)tw,
                        (unsigned)th);
    }
    if (!TIFFReadRGBAImageOriented(t, tw, th, rgba, ORIENTATION_TOPLEFT, 0)) {
        TIFFClose(t);
        free(rgba);
        adi_free(m);
        return adi_fail(AD_E_FORMAT, "%s: corrupt TIFF: %s", path,
                        msgs.have ? msgs.msg : "cannot decode the image data");
    }
    TIFFClose(t);
    for (size_t i = 0; i < n; i++) m[i] = (uint8_t)TIFFGetR(rgba[i]);
    free(rgba);
    *out = m;
    *w = (int)tw;
    *h = (int)th;
    return AD_OK;
}

ad_status adi_io_read_mask_other(const char *path, int kind, size_t max_pixels, uint8_t **out,
                                 int *w, int *h)
{
    if (!path || !out || !w || !h) return adi_fail(AD_E_ARG, "adi_io_read_mask: NULL argument");
    if (kind == 1) return read_bmp(path, max_pixels, out, w, h);
    if (kind == 2) return read_tiff(path, max_pixels, out, w, h);
    return adi_fail(AD_E_ARG, "%s: unknown mask kind %d", path, kind);
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
