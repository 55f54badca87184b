/* DINOv2 weights in memory: every tensor converted to float32, in one owned arena, in the
 * official (hub) layout whatever the file format. Filled by adi_weights_load from a hub .pth
 * (PyTorch zip) or a Hugging Face model.safetensors; the configuration is inferred from shapes. */
#ifndef AD_WEIGHTS_H
#define AD_WEIGHTS_H

#include "core/core.h"

typedef struct {
    const float *norm1_w, *norm1_b;   /* [D] */
    const float *qkv_w;               /* [3D, D], rows q | k | v (HF q/k/v fused on load) */
    const float *qkv_b;               /* [3D] */
    const float *proj_w, *proj_b;     /* [D, D], [D] */
    const float *ls1;                 /* [D] LayerScale gamma */
    const float *norm2_w, *norm2_b;   /* [D] */
    const float *fc1_w, *fc1_b;       /* MLP: fc1 [H, D]; SwiGLU: w12 [2H, D] (x1 rows then x2) */
    const float *fc2_w, *fc2_b;       /* MLP: fc2 [D, H]; SwiGLU: w3 [D, H] */
    const float *ls2;                 /* [D] */
} adi_block_weights;

typedef struct {
    int dim, depth, heads, ffn_hidden, n_registers, swiglu, patch, pos_grid;
    const float *cls_token;           /* [D] */
    const float *pos_embed;           /* [(1 + G*G), D], G = pos_grid (37) */
    const float *register_tokens;     /* [R, D] or NULL */
    const float *patch_w;             /* [D, 3*14*14] (conv weight D x 3 x 14 x 14) */
    const float *patch_b;             /* [D] */
    adi_block_weights *blocks;         /* [depth] */
    const float *norm_w, *norm_b;     /* final LayerNorm [D] */

    char format[16];                  /* "pth" | "safetensors" */
    char dtype[8];                    /* dtype in the file: "F32" | "F16" | "BF16" */
    uint64_t n_params;                /* float values in the arena (mask_token excluded) */
    uint64_t fingerprint;             /* hash of config + all values, identical for both formats */

    float *arena;                     /* owns every tensor above */
} adi_weights;

/* Recognises the format from the content. On failure nothing is allocated and ad_errmsg() says
 * what is wrong (file name first). */
ad_status adi_weights_load(const char *path, adi_weights *w);
/* The same from a file already in memory (len bytes at buf, not copied; name for messages):
 * the entry point of the fuzz targets. */
ad_status adi_weights_load_mem(const void *buf, size_t len, const char *name, adi_weights *w);
void adi_weights_free(adi_weights *w);

#endif
