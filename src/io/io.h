/* File formats used by the command-line tool and the tests (not part of the public library):
 * image decoding/encoding, NumPy .npy, small file helpers. Every function reports failures
 * through adi_fail (one line, starting with the path). */
#ifndef AD_IO_H
#define AD_IO_H

#include "core/core.h"

/* PNG (8/16-bit, grey, grey+alpha, RGB, RGBA, palette) or JPEG, recognised by content, to RGB8
 * as OpenCV's imread(IMREAD_COLOR) followed by BGR->RGB gives (16-bit: high byte; alpha
 * dropped; grey replicated). */
ad_status adi_io_read_image(const char *path, ad_image *out);
/* The decoder of adi_io_read_image on a file already in memory (name for messages); max_pixels
 * > 0 lowers the pixel limit (the fuzz targets use it to keep inputs fast). */
ad_status adi_io_decode_image(const char *name, const void *buf, size_t len, size_t max_pixels,
                             ad_image *out);
/* Grey 8-bit mask, allocated with adi_alloc (free with adi_free) (any PNG: converted to grey by taking the first channel / 16-bit high byte). */
ad_status adi_io_read_mask(const char *path, uint8_t **out, int *w, int *h);
ad_status adi_io_write_png_rgb(const char *path, const uint8_t *rgb, int w, int h);
ad_status adi_io_write_png_gray(const char *path, const uint8_t *g, int w, int h);
/* PNG bytes in memory (channels 1: grey, 3: RGB); *out is malloc'ed (free with free()). */
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

/* Whole file into memory (NUL-terminated); NULL on failure. */
char *adi_io_read_file(const char *path, size_t *len);
/* mkdir -p */
ad_status adi_io_mkdirs(const char *path);
int adi_io_is_dir(const char *path);
int adi_io_exists(const char *path);

#endif
