/* Internal to src/weights: a checkpoint file seen as a table of named tensors (where their bytes
 * are, their dtype and shape), filled by the .pth (PyTorch zip + pickle) or the .safetensors
 * reader, then read tensor by tensor into float32. Errors are recorded without the file name;
 * adi_weights_load prefixes it. */
#ifndef AD_WEIGHTS_TENSOR_FILE_H
#define AD_WEIGHTS_TENSOR_FILE_H

#include "core/core.h"

#include <stdint.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the checkpoint readers assume a little-endian host (both formats store little-endian)"
#endif

#define TF_MAX_DIMS 8

typedef enum { TF_F32 = 0, TF_F16 = 1, TF_BF16 = 2, TF_OTHER = 3 } tf_dtype;

typedef struct {
    char *name;                 /* owned, NUL-terminated, full key as stored in the file */
    tf_dtype dtype;
    char dtype_name[24];        /* as the file spells it, for messages */
    int ndim;
    int64_t shape[TF_MAX_DIMS];
    uint64_t numel;
    int contiguous;             /* 0: a strided view (refused if the tensor is needed) */
    int entry;                  /* zip entry index, or -1: a byte range of the file itself */
    uint64_t offset;            /* entry >= 0: byte offset inside the entry; else absolute */
} tf_tensor;

typedef struct {
    char *name;                 /* owned */
    uint64_t local_off;         /* local file header */
    uint64_t data_off;          /* first data byte (0 until resolved from the local header) */
    uint64_t comp_size, size;
    uint32_t crc;
    int method;                 /* 0 stored, 8 deflate, else unsupported */
    int flags;
} tf_entry;

typedef struct {
    int fd;
    const uint8_t *mem;         /* non-NULL: the file is this buffer (file_size bytes), fd unused */
    uint64_t file_size;
    uint64_t data_end;          /* no entry data may extend past this (zip: central directory) */
    tf_tensor *t;
    size_t n, cap;
    tf_entry *e;
    size_t n_e;
} tf_file;

/* Element size of a supported dtype (2 or 4). */
size_t tf_dtype_size(tf_dtype d);

/* Exact read of len bytes at off; a short read is a truncated file (AD_E_FORMAT). */
ad_status tf_pread(const tf_file *f, uint64_t off, void *buf, size_t len);
/* Appends a tensor (name copied); shape already checked by the caller. */
ad_status tf_add(tf_file *f, const char *name, size_t name_len, tf_tensor *proto);
/* Sorts the table by name and refuses duplicate names; then tf_find works. */
ad_status tf_index(tf_file *f);
const tf_tensor *tf_find(const tf_file *f, const char *name);
/* Reads and converts the tensor to float32 (numel values at dst). */
ad_status tf_read(const tf_file *f, const tf_tensor *t, float *dst);
void tf_close(tf_file *f);

/* Format readers: fill f->t (and f->e) from an open file. */
ad_status tf_open_pth(tf_file *f);
ad_status tf_open_safetensors(tf_file *f);

/* "[1, 1370, 384]" into buf. */
const char *tf_shape_str(const int64_t *shape, int ndim, char *buf, size_t cap);

/* IEEE binary16 / bfloat16 to float32 (exact; NaNs quieted), n values. tf_f16_to_f32 uses
 * F16C where the CPU has it; the portable loop gives the same bits. */
void tf_f16_to_f32(const uint16_t *src, float *dst, size_t n);
void tf_f16_to_f32_portable(const uint16_t *src, float *dst, size_t n);
void tf_bf16_to_f32(const uint16_t *src, float *dst, size_t n);

#endif
