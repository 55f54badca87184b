/* Image files for the command-line tool and the tests: PNG (libpng) and JPEG (libjpeg-turbo)
 * decoded to RGB8 exactly as the original pipeline sees them, i.e. OpenCV 4.6
 * imread(path, IMREAD_COLOR) followed by BGR->RGB:
 *   PNG  (OpenCV grfmt_png.cpp, PngDecoder::readData): 16-bit -> high byte (png_set_strip_16),
 *        alpha and tRNS dropped without compositing (png_set_strip_alpha), palette expanded,
 *        1/2/4-bit grey scaled to 8 bits, grey replicated to three channels; no gamma handling.
 *   JPEG (OpenCV grfmt_jpeg.cpp): libjpeg's default decoder settings (islow IDCT, fancy
 *        upsampling), grey replicated, CMYK/YCCK through libjpeg's CMYK output and OpenCV's
 *        icvCvt_CMYK2BGR_8u_C4C3R formula (inverted Adobe CMYK), and the EXIF orientation
 *        applied as imread does unless IMREAD_IGNORE_ORIENTATION is given.
 * Deliberately stricter than OpenCV: a truncated or visibly corrupt file is an error (OpenCV
 * prints a libjpeg warning and returns grey blocks), and nothing is ever printed. */
#include "io/io.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

/* Refuse absurd sizes before allocating: corrupt headers must not cost gigabytes. */
#define IO_MAX_SIDE 65535
#define IO_MAX_PIXELS ((size_t)1 << 28)

/* The caller's pixel limit (adi_io_read_image_max) for the decode running on this thread; 0:
 * only the built-in bounds. Per thread, so concurrent readers never see each other's limit. */
static _Thread_local size_t io_max_pixels;

static ad_status check_dims(const char *path, size_t w, size_t h)
{
    if (w == 0 || h == 0)
        return adi_fail(AD_E_FORMAT, "%s: image has zero size (%zu x %zu)", path, w, h);
    if (io_max_pixels && w <= IO_MAX_SIDE && h <= IO_MAX_SIDE && w * h > io_max_pixels)
        return adi_io_pixel_limit_error(path, w, h, io_max_pixels);
    if (w > IO_MAX_SIDE || h > IO_MAX_SIDE || w * h > IO_MAX_PIXELS)
        return adi_fail(AD_E_FORMAT, "%s: image size %zu x %zu is out of range (max %d per side, "
                       "%zu pixels)", path, w, h, IO_MAX_SIDE, IO_MAX_PIXELS);
    return AD_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* PNG                                                                                         */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    const unsigned char *p;
    size_t n, pos;
    char msg[200];
} png_src;

static void png_err_fn(png_structp png, png_const_charp msg)
{
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* libpng warnings concern ancillary data only: stay silent */
}

static void png_read_mem(png_structp png, png_bytep dst, size_t n)
{
    png_src *s = png_get_io_ptr(png);
    if (n > s->n - s->pos) png_error(png, "file is truncated");
    memcpy(dst, s->p + s->pos, n);
    s->pos += n;
}

/* Smallest number of IDAT bytes that can hold `raw` bytes of filtered scanlines: deflate
 * expands at most 1032:1. Lets a header that promises far more pixels than the file's image
 * data can carry be refused before the pixel buffer is allocated. */
#define PNG_DEFLATE_MAX_RATIO 1032u

/* Total length of the IDAT chunks, walking the chunk headers of the in-memory file (no CRC
 * checks: libpng does those); stops at IEND or where the chunk list stops making sense. */
static uint64_t png_idat_bytes(const unsigned char *buf, size_t len)
{
    uint64_t total = 0;
    size_t pos = 8;
    while (len - pos >= 12) {
        uint32_t n = (uint32_t)buf[pos] << 24 | (uint32_t)buf[pos + 1] << 16 |
                     (uint32_t)buf[pos + 2] << 8 | buf[pos + 3];
        const unsigned char *type = buf + pos + 4;
        if (memcmp(type, "IDAT", 4) == 0) total += n;
        if (memcmp(type, "IEND", 4) == 0 || n > len - pos - 12) break;
        pos += 12 + (size_t)n;
    }
    return total;
}

static ad_status decode_png(const char *path, const unsigned char *buf, size_t len, ad_image *out)
{
    png_src src = {buf, len, 0, "unknown libpng error"};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_err_fn, png_warn_fn);
    if (!png) return adi_fail(AD_E_NOMEM, "%s: cannot create a PNG decoder", path);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return adi_fail(AD_E_NOMEM, "%s: cannot create a PNG decoder", path);
    }
    /* written after setjmp and needed after longjmp */
    unsigned char *volatile pix = NULL;
    png_bytep *volatile rows = NULL;
    volatile ad_status st = AD_OK;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        adi_free(pix);
        adi_free(rows);
        if (st) return st;
        return adi_fail(AD_E_FORMAT, "%s: corrupt PNG: %s", path, src.msg);
    }
    png_set_read_fn(png, &src, png_read_mem);
    /* Input-driven allocations inside libpng: no side beyond ours, and no chunk (nor
     * decompressed ancillary chunk) larger than the file itself could justify. */
    png_set_user_limits(png, IO_MAX_SIDE, IO_MAX_SIDE);
    png_set_chunk_malloc_max(png, len < ((size_t)1 << 16) ? ((size_t)1 << 16) : len);
    png_set_chunk_cache_max(png, 128);
    /* libpng 1.6.39 allocates a text (or ICC, sPLT, ...) chunk's declared length before reading
     * it, whatever the file's size and the limit above. None of these change the decoded
     * pixels (no gamma or colour management, as OpenCV), so they are skipped unread, as
     * unknown chunks are (CRC still checked). */
    static const png_byte ignored[] = "tEXt\0zTXt\0iTXt\0iCCP\0sPLT\0eXIf\0pCAL\0sCAL\0hIST\0"
                                      "tIME\0oFFs\0pHYs\0bKGD\0sBIT\0gAMA\0cHRM\0sRGB";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    if (!ADI_CHECKSUMS) png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, ignored, (int)(sizeof ignored / 5));
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, ctype;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, NULL, NULL, NULL);
    if ((st = check_dims(path, w, h)) != AD_OK) png_longjmp(png, 1);
    {
        /* the image's bits (a lower bound of the filtered scanlines, interlaced or not) must fit
         * in what the IDAT chunks can inflate to */
        int ch = (ctype & PNG_COLOR_MASK_PALETTE) ? 1 : ((ctype & PNG_COLOR_MASK_COLOR) ? 3 : 1) +
                 ((ctype & PNG_COLOR_MASK_ALPHA) ? 1 : 0);
        uint64_t raw = ((uint64_t)w * h * (uint64_t)ch * (uint64_t)depth + 7) / 8;
        uint64_t idat = png_idat_bytes(buf, len);
        if (raw > idat * PNG_DEFLATE_MAX_RATIO + 1024) {
            st = adi_fail(AD_E_FORMAT, "%s: corrupt PNG: %u x %u image needs %llu bytes of pixel "
                         "data, %llu bytes of IDAT cannot hold them (truncated file?)", path,
                         (unsigned)w, (unsigned)h, (unsigned long long)raw,
                         (unsigned long long)idat);
            png_longjmp(png, 1);
        }
    }

    /* the transforms of OpenCV's PngDecoder::readData for a 3-channel 8-bit request */
    if (depth == 16) png_set_strip_16(png);
    png_set_strip_alpha(png);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (!(ctype & PNG_COLOR_MASK_COLOR) && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (!(ctype & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 ||
        png_get_rowbytes(png, info) != (size_t)w * 3) {
        st = adi_fail(AD_E_FORMAT, "%s: unsupported PNG layout (colour type %d, %d bits)", path,
                     ctype, depth);
        png_longjmp(png, 1);
    }
    pix = adi_alloc((size_t)w * h, 3);
    rows = adi_malloc(sizeof(png_bytep) * h);
    if (!pix || !rows) {
        st = adi_fail(AD_E_NOMEM, "%s: out of memory for a %u x %u image", path, (unsigned)w,
                     (unsigned)h);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pix + (size_t)y * w * 3;
    png_read_image(png, rows);
    /* as OpenCV: the file must be complete up to IEND */
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    adi_free(rows);
    out->width = (int)w;
    out->height = (int)h;
    out->data = pix;
    return AD_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* JPEG                                                                                        */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_error_exit_fn(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings that mean the entropy-coded data is missing or broken (libjpeg would substitute grey
 * or garbage blocks) become errors; harmless ones (extraneous bytes, ...) stay silent. */
static void jpeg_emit_fn(j_common_ptr cinfo, int level)
{
    if (level != -1) return; /* trace messages */
    int code = cinfo->err->msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE ||
        code == JWRN_ARITH_BAD_CODE || code == JWRN_MUST_RESYNC || code == JWRN_BOGUS_PROGRESSION ||
        code == JWRN_NOT_SEQUENTIAL)
        jpeg_error_exit_fn(cinfo);
    cinfo->err->num_warnings++;
}

static void jpeg_output_fn(j_common_ptr cinfo)
{
    (void)cinfo; /* the library never prints */
}

static unsigned exif_u16(const unsigned char *p, int le)
{
    return le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | p[1];
}

static uint32_t exif_u32(const unsigned char *p, int le)
{
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* EXIF orientation tag (0x0112) of IFD0 in an APP1 payload, 1..8, or 1 when absent/invalid. */
static int exif_orientation(const unsigned char *d, size_t n)
{
    if (n < 6 + 8 || memcmp(d, "Exif\0\0", 6) != 0) return 1;
    const unsigned char *t = d + 6;
    size_t tn = n - 6;
    int le;
    if (t[0] == 'I' && t[1] == 'I') le = 1;
    else if (t[0] == 'M' && t[1] == 'M') le = 0;
    else return 1;
    if (exif_u16(t + 2, le) != 42) return 1;
    uint32_t ifd = exif_u32(t + 4, le);
    if (ifd > tn || tn - ifd < 2) return 1;
    unsigned cnt = exif_u16(t + ifd, le);
    for (unsigned i = 0; i < cnt; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > tn) break;
        if (exif_u16(t + e, le) != 0x0112) continue;
        unsigned type = exif_u16(t + e + 2, le);
        if (type != 3 || exif_u32(t + e + 4, le) < 1) return 1; /* SHORT, count >= 1 */
        unsigned v = exif_u16(t + e + 8, le);
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

/* OpenCV's ApplyExifOrientation: 2 flip x, 3 flip both, 4 flip y, 5 transpose, 6 transpose +
 * flip x (90 degrees clockwise), 7 transpose + flip both, 8 transpose + flip y. */
static ad_status apply_orientation(const char *path, int o, ad_image *img)
{
    if (o <= 1) return AD_OK;
    int w = img->width, h = img->height;
    int tr = o >= 5;
    int ow = tr ? h : w, oh = tr ? w : h;
    uint8_t *dst = adi_alloc((size_t)ow * oh, 3);
    if (!dst) {
        adi_error_prefix("%s", path);
        return AD_E_NOMEM;
    }
    int fx = o == 2 || o == 3 || o == 6 || o == 7;
    int fy = o == 3 || o == 4 || o == 7 || o == 8;
    for (int y = 0; y < oh; y++) {
        for (int x = 0; x < ow; x++) {
            int ax = fx ? ow - 1 - x : x, ay = fy ? oh - 1 - y : y; /* in the unflipped frame */
            int sx = tr ? ay : ax, sy = tr ? ax : ay;
            memcpy(dst + ((size_t)y * ow + x) * 3, img->data + ((size_t)sy * w + sx) * 3, 3);
        }
    }
    adi_free(img->data);
    img->data = dst;
    img->width = ow;
    img->height = oh;
    return AD_OK;
}

static ad_status decode_jpeg(const char *path, const unsigned char *buf, size_t len,
                             ad_image *out)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err jerr;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_error_exit_fn;
    jerr.pub.emit_message = jpeg_emit_fn;
    jerr.pub.output_message = jpeg_output_fn;
    snprintf(jerr.msg, sizeof jerr.msg, "unknown libjpeg error");
    unsigned char *volatile pix = NULL;
    unsigned char *volatile row4 = NULL;
    volatile ad_status st = AD_OK;
    volatile int created = 0;
    if (setjmp(jerr.jb)) {
        if (created) jpeg_destroy_decompress(&cinfo);
        adi_free(pix);
        adi_free(row4);
        if (st) return st;
        return adi_fail(AD_E_FORMAT, "%s: corrupt JPEG: %s", path, jerr.msg);
    }
    jpeg_create_decompress(&cinfo);
    created = 1;
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&cinfo, TRUE);
    if ((st = check_dims(path, cinfo.image_width, cinfo.image_height)) != AD_OK)
        longjmp(jerr.jb, 1);
    /* A Huffman-coded JPEG spends at least one bit per 8x8 block and component (the DC code),
     * so it never holds more than 512 pixels per byte. Beyond 4096 pixels per byte (plus a
     * free first megapixel) only a contrived arithmetic-coded file can go, and a truncated
     * arithmetic-coded scan followed by a marker decodes "fine" as zeros (libjpeg warns of
     * nothing): such a header is refused before anything the size of the image is reserved. */
    if ((uint64_t)cinfo.image_width * cinfo.image_height > ((uint64_t)1 << 20) + (uint64_t)len * 4096) {
        st = adi_fail(AD_E_FORMAT, "%s: corrupt JPEG: %u x %u pixels cannot come from %zu bytes "
                     "(truncated file?)", path, (unsigned)cinfo.image_width,
                     (unsigned)cinfo.image_height, len);
        longjmp(jerr.jb, 1);
    }
    /* the saved markers live in libjpeg's image pool, freed by jpeg_finish_decompress */
    int orient = 1;
    for (jpeg_saved_marker_ptr mk = cinfo.marker_list; mk; mk = mk->next) {
        if (mk->marker == JPEG_APP0 + 1 && mk->data_length >= 6 && memcmp(mk->data, "Exif", 4) == 0) {
            orient = exif_orientation(mk->data, mk->data_length);
            break;
        }
    }
    int cmyk = cinfo.num_components == 4;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    /* A file of several scans (progressive, or components coded one after the other) is read
     * whole by jpeg_start_decompress, and an EOI after its first scans ends it without any
     * warning: libjpeg shows what it has (a blurred or colourless image). Such a file is
     * truncated: every component must have had a scan (its quantisation table is latched at
     * its first scan), and a progressive one must have received every bit of every
     * coefficient (coef_bits: -1 nothing yet, otherwise the last scan's Al; 0 when complete). */
    if (jpeg_has_multiple_scans(&cinfo)) {
        for (int ci = 0; ci < cinfo.num_components; ci++) {
            if (!cinfo.comp_info[ci].quant_table) {
                st = adi_fail(AD_E_FORMAT, "%s: corrupt JPEG: component %d has no scan "
                             "(truncated file?)", path, ci + 1);
                longjmp(jerr.jb, 1);
            }
            for (int k = 0; cinfo.progressive_mode && cinfo.coef_bits && k < DCTSIZE2; k++)
                if (cinfo.coef_bits[ci][k] != 0) {
                    st = adi_fail(AD_E_FORMAT, "%s: corrupt JPEG: progressive scans end before "
                                 "coefficient %d of component %d is complete (truncated file?)",
                                 path, k, ci + 1);
                    longjmp(jerr.jb, 1);
                }
        }
    }
    size_t w = cinfo.output_width, h = cinfo.output_height;
    if (w != cinfo.image_width || h != cinfo.image_height ||
        cinfo.output_components != (cmyk ? 4 : 3)) {
        st = adi_fail(AD_E_FORMAT, "%s: unsupported JPEG layout (%d components)", path,
                     cinfo.num_components);
        longjmp(jerr.jb, 1);
    }
    /* The pixel buffer is reserved for the rows the file can hold as Huffman-coded data (512
     * pixels per byte at most, see above; at least about 4 MB), which is the whole image for
     * any real photograph, and grows (doubling) with the rows actually decoded beyond that: a
     * truncated file declaring a huge image fails at its first missing row without having
     * reserved the whole image. */
    size_t cap_rows = ((size_t)4 << 20) / (w * 3);
    if (len <= SIZE_MAX / 512 && len * 512 / w > cap_rows) cap_rows = len * 512 / w;
    if (cap_rows < 16) cap_rows = 16;
    if (cap_rows > h) cap_rows = h;
    pix = adi_alloc(w * cap_rows, 3);
    if (cmyk) row4 = adi_malloc(w * 4);
    if (!pix || (cmyk && !row4)) {
        st = adi_fail(AD_E_NOMEM, "%s: out of memory for a %zu x %zu image", path, w, h);
        longjmp(jerr.jb, 1);
    }
    while (cinfo.output_scanline < h) {
        size_t y = cinfo.output_scanline;
        if (y == cap_rows) {
            size_t nc = cap_rows * 2 < h ? cap_rows * 2 : h;
            unsigned char *np = adi_alloc(w * nc, 3);
            if (!np) {
                st = adi_fail(AD_E_NOMEM, "%s: out of memory for a %zu x %zu image", path, w, h);
                longjmp(jerr.jb, 1);
            }
            memcpy(np, pix, w * cap_rows * 3);
            adi_free(pix);
            pix = np;
            cap_rows = nc;
        }
        JSAMPROW r = cmyk ? row4 : pix + y * w * 3;
        if (jpeg_read_scanlines(&cinfo, &r, 1) != 1) {
            snprintf(jerr.msg, sizeof jerr.msg, "no data for row %zu", y);
            longjmp(jerr.jb, 1);
        }
        if (cmyk) {
            /* libjpeg's CMYK output of Adobe files is inverted; OpenCV maps C,M,Y -> R,G,B */
            unsigned char *o = pix + y * w * 3;
            for (size_t x = 0; x < w; x++) {
                int c = row4[4 * x], m = row4[4 * x + 1], yy = row4[4 * x + 2], k = row4[4 * x + 3];
                o[3 * x] = (unsigned char)(k - ((255 - c) * k >> 8));
                o[3 * x + 1] = (unsigned char)(k - ((255 - m) * k >> 8));
                o[3 * x + 2] = (unsigned char)(k - ((255 - yy) * k >> 8));
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    adi_free(row4);
    ad_image img = {(int)w, (int)h, pix};
    ad_status s = apply_orientation(path, orient, &img);
    if (s) {
        adi_free(img.data);
        return s;
    }
    *out = img;
    return AD_OK;
}

/* ------------------------------------------------------------------------------------------ */

ad_status adi_io_pixel_limit_error(const char *path, size_t w, size_t h, size_t max_pixels)
{
    if (max_pixels < 1000000) /* small limits read better as plain counts */
        return adi_fail(AD_E_FORMAT,
                        "%s: image is %zu x %zu (%zu pixels), above the limit of %zu pixels "
                        "(raise it with --max-pixels N)",
                        path, w, h, w * h, max_pixels);
    return adi_fail(AD_E_FORMAT,
                    "%s: image is %zu x %zu (%.1f megapixels), above the limit of %.1f megapixels "
                    "(raise it with --max-pixels N)",
                    path, w, h, (double)w * (double)h / 1e6, (double)max_pixels / 1e6);
}

ad_status adi_io_read_image_max(const char *path, size_t max_pixels, ad_image *out)
{
    size_t saved = io_max_pixels;
    io_max_pixels = max_pixels;
    ad_status st = adi_io_read_image(path, out);
    io_max_pixels = saved;
    return st;
}


static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static int is_png(const unsigned char *buf, size_t len)
{
    return len >= 8 && memcmp(buf, png_sig, 8) == 0;
}

static int is_jpeg(const unsigned char *buf, size_t len)
{
    return len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff;
}

ad_status adi_io_decode_image(const char *name, const uint8_t *buf, size_t len, ad_image *out)
{
    if (!name || (!buf && len) || !out) return adi_fail(AD_E_ARG, "adi_io_decode_image: NULL argument");
    ad_image img = {0, 0, NULL};
    ad_status st;
    if (is_png(buf, len))
        st = decode_png(name, buf, len, &img);
    else if (is_jpeg(buf, len))
        st = decode_jpeg(name, buf, len, &img);
    else if (len == 0)
        st = adi_fail(AD_E_FORMAT, "%s: empty file", name);
    else
        st = adi_fail(AD_E_FORMAT, "%s: not a PNG or JPEG file", name);
    if (st == AD_OK) *out = img;
    return st;
}

ad_status adi_io_decode_image_max(const char *name, const void *buf, size_t len, size_t max_pixels,
                                 ad_image *out)
{
    size_t saved = io_max_pixels;
    io_max_pixels = max_pixels;
    ad_status st = adi_io_decode_image(name, buf, len, out);
    io_max_pixels = saved;
    return st;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

ad_status adi_io_probe_image(const char *name, const uint8_t *buf, size_t len, int *w, int *h)
{
    if (!name || (!buf && len) || !w || !h) return adi_fail(AD_E_ARG, "adi_io_probe_image: NULL argument");
    if (len == 0) return adi_fail(AD_E_FORMAT, "%s: empty file", name);
    size_t pw, ph;
    if (is_png(buf, len)) {
        /* the first chunk must be IHDR: length 13, type, width, height (big-endian) */
        if (len < 8 + 8 + 13 || be32(buf + 8) != 13 || memcmp(buf + 12, "IHDR", 4) != 0)
            return adi_fail(AD_E_FORMAT, "%s: corrupt PNG: no IHDR chunk", name);
        pw = be32(buf + 16);
        ph = be32(buf + 20);
    } else if (is_jpeg(buf, len)) {
        /* libjpeg reads the markers up to the start of scan; no pixel memory is touched */
        struct jpeg_decompress_struct cinfo;
        jpeg_err jerr;
        memset(&cinfo, 0, sizeof cinfo);
        cinfo.err = jpeg_std_error(&jerr.pub);
        jerr.pub.error_exit = jpeg_error_exit_fn;
        jerr.pub.emit_message = jpeg_emit_fn;
        jerr.pub.output_message = jpeg_output_fn;
        snprintf(jerr.msg, sizeof jerr.msg, "unknown libjpeg error");
        volatile int created = 0;
        if (setjmp(jerr.jb)) {
            if (created) jpeg_destroy_decompress(&cinfo);
            return adi_fail(AD_E_FORMAT, "%s: corrupt JPEG: %s", name, jerr.msg);
        }
        jpeg_create_decompress(&cinfo);
        created = 1;
        jpeg_mem_src(&cinfo, buf, (unsigned long)len);
        jpeg_read_header(&cinfo, TRUE);
        pw = cinfo.image_width;
        ph = cinfo.image_height;
        jpeg_destroy_decompress(&cinfo);
    } else {
        return adi_fail(AD_E_FORMAT, "%s: not a PNG or JPEG file", name);
    }
    ad_status st = check_dims(name, pw, ph);
    if (st != AD_OK) return st;
    *w = (int)pw;
    *h = (int)ph;
    return AD_OK;
}

ad_status adi_io_read_image(const char *path, ad_image *out)
{
    if (!path || !out) return adi_fail(AD_E_ARG, "adi_io_read_image: NULL argument");
    size_t len;
    unsigned char *buf = (unsigned char *)adi_io_read_file(path, &len);
    if (!buf) return AD_E_IO;
    ad_status st = adi_io_decode_image(path, buf, len, out);
    adi_free(buf);
    return st;
}

ad_status adi_io_read_mask_max(const char *path, size_t max_pixels, uint8_t **out, int *w, int *h)
{
    size_t saved = io_max_pixels;
    io_max_pixels = max_pixels;
    ad_status st = adi_io_read_mask(path, out, w, h);
    io_max_pixels = saved;
    return st;
}

/* The first channel of a decoded image as a mask (frees img). */
static ad_status mask_from_image(const char *name, ad_image *img, uint8_t **out, int *w, int *h)
{
    size_t n = (size_t)img->width * img->height;
    uint8_t *m = adi_alloc(n, 1);
    if (!m) {
        adi_free(img->data);
        adi_error_prefix("%s", name);
        return AD_E_NOMEM;
    }
    for (size_t i = 0; i < n; i++) m[i] = img->data[3 * i];
    *out = m;
    *w = img->width;
    *h = img->height;
    adi_free(img->data);
    return AD_OK;
}

ad_status adi_io_read_mask(const char *path, uint8_t **out, int *w, int *h)
{
    if (!path || !out || !w || !h) return adi_fail(AD_E_ARG, "adi_io_read_mask: NULL argument");
    int other = adi_io_mask_kind(path);
    if (other) return adi_io_read_mask_other(path, other, io_max_pixels, out, w, h);
    ad_image img;
    ad_status st = adi_io_read_image(path, &img);
    if (st) return st;
    return mask_from_image(path, &img, out, w, h);
}

ad_status adi_io_decode_mask_max(const char *name, const uint8_t *buf, size_t len,
                                 size_t max_pixels, uint8_t **out, int *w, int *h)
{
    if (!name || (!buf && len) || !out || !w || !h)
        return adi_fail(AD_E_ARG, "adi_io_decode_mask_max: NULL argument");
    int other = adi_io_mask_kind_mem(buf, len);
    if (other) return adi_io_decode_mask_other(name, buf, len, other, max_pixels, out, w, h);
    ad_image img;
    ad_status st = adi_io_decode_image_max(name, buf, len, max_pixels, &img);
    if (st) return st;
    return mask_from_image(name, &img, out, w, h);
}

typedef struct {
    png_src err; /* libpng's message on failure */
    uint8_t *buf;
    size_t len, cap;
    int oom;
} png_membuf;

static void png_mem_write(png_structp png, png_bytep data, size_t n)
{
    png_membuf *m = png_get_io_ptr(png);
    if (m->oom) return;
    if (n > SIZE_MAX / 2 - m->len) {
        m->oom = 1;
        return;
    }
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 8192;
        while (cap < m->len + n) cap *= 2;
        uint8_t *nb = adi_realloc(m->buf, cap);
        if (!nb) {
            m->oom = 1;
            return;
        }
        m->buf = nb;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, data, n);
    m->len += n;
}

static void png_mem_flush(png_structp png) { (void)png; }

ad_status adi_io_encode_png(const uint8_t *px, int w, int h, int channels, uint8_t **out,
                           size_t *len)
{
    if (!px || !out || !len) return adi_fail(AD_E_ARG, "PNG encoder: NULL argument");
    if (w <= 0 || h <= 0 || w > IO_MAX_SIDE || h > IO_MAX_SIDE || (channels != 1 && channels != 3))
        return adi_fail(AD_E_ARG, "PNG encoder: bad image (%d x %d, %d channels)", w, h, channels);
    /* on the heap: setjmp/longjmp must not leave it in an indeterminate local */
    png_membuf *m = adi_calloc(1, sizeof *m);
    if (!m) return adi_fail(AD_E_NOMEM, "PNG encoder: out of memory");
    snprintf(m->err.msg, sizeof m->err.msg, "unknown libpng error");
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, &m->err, png_err_fn, png_warn_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        adi_free(m);
        return adi_fail(AD_E_NOMEM, "PNG encoder: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        ad_status st = adi_fail(AD_E_INTERNAL, "PNG encoder: %s", m->err.msg);
        adi_free(m->buf);
        adi_free(m);
        return st;
    }
    png_set_write_fn(png, m, png_mem_write, png_mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(px + (size_t)y * (size_t)w * (size_t)channels));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (m->oom) {
        adi_free(m->buf);
        adi_free(m);
        return adi_fail(AD_E_NOMEM, "PNG encoder: out of memory");
    }
    *out = m->buf;
    *len = m->len;
    adi_free(m);
    return AD_OK;
}

static ad_status write_png(const char *path, const uint8_t *px, int w, int h, int channels)
{
    if (!path || !px) return adi_fail(AD_E_ARG, "adi_io_write_png: NULL argument");
    uint8_t *buf;
    size_t len;
    ad_status st = adi_io_encode_png(px, w, h, channels, &buf, &len);
    if (st != AD_OK) {
        adi_error_prefix("%s", path);
        return st;
    }
    st = adi_io_write_file(path, buf, len);
    adi_free(buf);
    return st;
}

ad_status adi_io_write_png_rgb(const char *path, const uint8_t *rgb, int w, int h)
{
    return write_png(path, rgb, w, h, 3);
}

ad_status adi_io_write_png_gray(const char *path, const uint8_t *g, int w, int h)
{
    return write_png(path, g, w, h, 1);
}
