/* File formats used by the command-line tool and the tests (not part of the public library):
 * image decoding/encoding, NumPy .npy, small file helpers. Every function reports failures
 * through adi_fail (one line, starting with the path). */
#ifndef AD_IO_H
#define AD_IO_H

#include "core/core.h"

#include <stdio.h>

/* PNG (8/16-bit, grey, grey+alpha, RGB, RGBA, palette) or JPEG, recognised by content, to RGB8
 * as OpenCV's imread(IMREAD_COLOR) followed by BGR->RGB gives (16-bit: high byte; alpha
 * dropped; grey replicated). */
ad_status adi_io_read_image(const char *path, ad_image *out);
/* The same decoder over bytes in memory; `name` starts the error messages. */
ad_status adi_io_decode_image(const char *name, const uint8_t *buf, size_t len, ad_image *out);
/* As adi_io_decode_image, with the pixel limit of adi_io_read_image_max (max_pixels > 0 refuses a
 * larger image from its header; the fuzz targets use it to keep inputs fast). */
ad_status adi_io_decode_image_max(const char *name, const void *buf, size_t len, size_t max_pixels,
                                 ad_image *out);
/* Width and height from the header alone (PNG IHDR, JPEG markers up to the scan), so that a
 * caller can refuse a decompression bomb before any pixel memory exists. Stored size, before
 * any EXIF rotation (which keeps the pixel count). */
ad_status adi_io_probe_image(const char *name, const uint8_t *buf, size_t len, int *w, int *h);
/* Grey 8-bit mask, allocated with adi_alloc (free with adi_free) (any PNG: converted to grey by taking the first channel / 16-bit high byte). */
ad_status adi_io_read_mask(const char *path, uint8_t **out, int *w, int *h);

/* --- pixel limit, more mask formats, float TIFF maps (issue 13) --- */
/* As adi_io_read_image / adi_io_read_mask, but an image whose header declares more than
 * max_pixels pixels (0: no limit beyond the built-in bounds) is refused from the header,
 * before any pixel buffer is allocated, with "PATH: image is W x H (...), above the limit ...
 * (raise it with --max-pixels N)" (AD_E_FORMAT). */
ad_status adi_io_read_image_max(const char *path, size_t max_pixels, ad_image *out);
ad_status adi_io_read_mask_max(const char *path, size_t max_pixels, uint8_t **out, int *w, int *h);
/* The pixel-limit message (also for callers that probe sizes themselves). */
ad_status adi_io_pixel_limit_error(const char *path, size_t w, size_t h, size_t max_pixels);
/* Mask formats beside PNG/JPEG, recognised by content: 1 BMP (stb_image), 2 TIFF (libtiff);
 * 0 otherwise (or unreadable: the PNG/JPEG reader then reports it). */
int adi_io_mask_kind(const char *path);
/* BMP / TIFF mask to 8-bit grey (BMP: stb_image's grey conversion; TIFF: the first channel of
 * libtiff's RGBA rendering), with the same pixel limit. */
ad_status adi_io_read_mask_other(const char *path, int kind, size_t max_pixels, uint8_t **out,
                                 int *w, int *h);
/* The same over bytes in memory (adi_io_mask_kind_mem: the kind from the first bytes; `name`
 * starts the error messages); adi_io_decode_mask_max: any mask format (BMP, TIFF, PNG, JPEG) in
 * memory, as adi_io_read_mask_max reads a file. The TIFF decoder reads through libtiff's client
 * interface (TIFFClientOpenExt), never the disk. */
int adi_io_mask_kind_mem(const uint8_t *buf, size_t len);
ad_status adi_io_decode_mask_other(const char *name, const uint8_t *buf, size_t len, int kind,
                                   size_t max_pixels, uint8_t **out, int *w, int *h);
ad_status adi_io_decode_mask_max(const char *name, const uint8_t *buf, size_t len,
                                 size_t max_pixels, uint8_t **out, int *w, int *h);
/* Ground-truth mask in any supported format (PNG, JPEG, BMP, TIFF) as 0/1: a mask whose values
 * are all below 128 (label masks: 0/1, 0/instance index) counts every nonzero pixel as
 * anomalous; any other mask (0/255, anti-aliased, JPEG) is thresholded at 128. */
ad_status adi_io_read_gt_mask(const char *path, size_t max_pixels, uint8_t **out, int *w, int *h);
void adi_io_binarize_mask(uint8_t *m, size_t n);
/* h x w float32 map as a single-channel 32-bit IEEE float TIFF (libtiff). */
ad_status adi_io_write_tiff_f32(const char *path, const float *map, int w, int h);
/* Reads a float32 TIFF written by adi_io_write_tiff_f32 (tests, inspection). */
ad_status adi_io_read_tiff_f32(const char *path, float **out, int *w, int *h);

ad_status adi_io_write_png_rgb(const char *path, const uint8_t *rgb, int w, int h);
ad_status adi_io_write_png_gray(const char *path, const uint8_t *g, int w, int h);
/* PNG bytes in memory (channels 1: grey, 3: RGB); *out is allocated here (free with adi_free, like every buffer of this module). */
ad_status adi_io_encode_png(const uint8_t *px, int w, int h, int channels, uint8_t **out,
                           size_t *len);

/* .npy version 1.0/2.0, little-endian, C order. dtype: 'f4' float32, 'f8' float64, 'u1' uint8,
 * 'b1' bool. */
typedef enum { AD_NPY_F4, AD_NPY_F8, AD_NPY_U1, AD_NPY_B1 } adi_npy_dtype;
typedef struct {
    adi_npy_dtype dtype;
    int ndim;
    size_t shape[8];
    size_t count;   /* product of shape */
    void *data;     /* count elements, adi_alloc'ed */
} adi_npy;

ad_status adi_npy_read(const char *path, adi_npy *out);
/* The same from a file already in memory (len bytes at buf; name for messages). */
ad_status adi_npy_read_mem(const void *buf, size_t len, const char *name, adi_npy *out);
void adi_npy_free(adi_npy *a);
/* Converts any numeric dtype to a new float64 / float32 array (adi_alloc'ed). */
double *adi_npy_to_f64(const adi_npy *a);
float *adi_npy_to_f32(const adi_npy *a);
ad_status adi_npy_write(const char *path, adi_npy_dtype dtype, const void *data, int ndim,
                       const size_t *shape);
/* The bytes adi_npy_write would write, in memory (*out allocated here, free with adi_free). */
ad_status adi_npy_encode(adi_npy_dtype dtype, const void *data, int ndim, const size_t *shape,
                        uint8_t **out, size_t *len);

/* Whole file into memory (NUL-terminated); NULL on failure. */
char *adi_io_read_file(const char *path, size_t *len);
/* mkdir -p */
ad_status adi_io_mkdirs(const char *path);
int adi_io_is_dir(const char *path);
int adi_io_exists(const char *path);
int adi_io_is_file(const char *path);   /* a regular file */

/* Sorted (byte order) names of the entries of `dir`, hidden ones (leading '.') left out: all of
 * them, only sub-directories or only regular files. -1 when the directory cannot be read (errno
 * set) or memory runs out. Free with adi_strv_free. */
typedef enum { ADI_LIST_ALL = 0, ADI_LIST_DIRS = 1, ADI_LIST_FILES = 2 } adi_list_kind;
int adi_io_list_dir(const char *dir, adi_list_kind kind, char ***names);
/* The name ends in .png, .jpg or .jpeg, in any case. */
int adi_io_has_image_ext(const char *name);

/* Atomic writes: every file the library and the tool write goes through these. The data goes to
 * a unique temporary file beside the target (PATH.tmp.PID.COUNTER.NANOSECONDS, created with
 * O_EXCL, so two processes or two threads writing one path never share it), is flushed and
 * fsync'ed, renamed over PATH, and the folder is fsync'ed so the rename is on disk. A failure
 * leaves PATH as it was and removes the temporary file; the message names PATH and the reason
 * (errno read at the failing call). */
typedef struct {
    FILE *f;      /* write here (stdio); NULL after adi_atomic_detach */
    char *path;   /* the target */
    char *tmp;    /* the temporary file */
    int err;      /* first errno seen, 0 if none */
} adi_atomic;
ad_status adi_atomic_open(adi_atomic *a, const char *path);
/* Closes the stream and leaves the temporary file for a writer that opens it by name
 * (libtiff); commit or abort as usual afterwards. */
ad_status adi_atomic_detach(adi_atomic *a);
/* fflush + fsync + close, rename over the target, fsync of the folder; frees a. */
ad_status adi_atomic_commit(adi_atomic *a);
/* Removes the temporary file; frees a (safe on a failed open). */
void adi_atomic_abort(adi_atomic *a);
/* The whole buffer as PATH, atomically. */
ad_status adi_io_write_file(const char *path, const void *data, size_t len);

/* CSV (RFC 4180): comma separated, fields optionally in double quotes with "" for a quote and
 * line breaks allowed inside quotes; LF or CRLF line ends; a UTF-8 byte-order mark is skipped;
 * blank lines are skipped. Strict mode refuses an unterminated quote and text after a closing
 * quote; lenient mode (downloaded split files, hand-edited manifests) takes an unterminated
 * quote to the end and drops text after a closing quote. */
typedef struct {
    char **f;     /* the fields of the current record (adi_malloc'ed) */
    int n, cap;
    int line;     /* physical line where the record starts (1-based) */
} adi_csv_row;
typedef struct {
    const char *p, *end;
    int line;
    int lenient;
} adi_csv_reader;
void adi_csv_init(adi_csv_reader *rd, const char *text, size_t len, int lenient);
/* Next record into row: 1 a record, 0 end of input, -1 error (err: "line N: ..."). */
int adi_csv_next(adi_csv_reader *rd, adi_csv_row *row, char *err, size_t errlen);
void adi_csv_row_free(adi_csv_row *row);
/* A string builder (out of memory is remembered in oom and makes adi_sb_write fail). */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} adi_sbuf;
void adi_sb_put(adi_sbuf *b, const char *s, size_t n);
void adi_sb_puts(adi_sbuf *b, const char *s);
void adi_sb_printf(adi_sbuf *b, const char *fmt, ...) AD_PRINTF(2, 3);
/* One CSV field, in double quotes (a quote doubled) when it holds a comma, quote, CR or LF: to
 * a builder, or to a stream. */
void adi_sb_csv(adi_sbuf *b, const char *field);
void adi_csv_fput(FILE *f, const char *field);
/* The shortest of %.15g / %.17g that reads back as the same double. */
void adi_sb_double(adi_sbuf *b, double v);
/* Writes the builder's text atomically to path and frees it (out of memory: AD_E_NOMEM). */
ad_status adi_sb_write(adi_sbuf *b, const char *path);
void adi_sb_free(adi_sbuf *b);

#endif
