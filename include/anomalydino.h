/*
 * anomalydino.h - training-free visual anomaly detection with DINOv2 (AnomalyDINO), in C.
 *
 * USAGE
 *   Learn "normal" from a few good images, then score new ones:
 *
 *     ad_model *m = ad_model_load("dinov2_vits14_pretrain.pth");     // or model.safetensors
 *     if (!m) { fprintf(stderr, "%s\n", ad_errmsg()); ... }
 *     ad_context *ctx = ad_context_new(m, ad_context_default_params());
 *
 *     ad_bank_params bp = ad_bank_default_params();                   // resolution 448, ...
 *     ad_bank *bank = ad_bank_new(m, &bp);
 *     for each good image (RGB8, decoded by the caller):
 *         ad_bank_add_image(bank, ctx, &img, 0);                      // + 8 rotations if bp.rotate
 *     ad_bank_calibrate_loo(bank, ctx, AD_THRESH_MAX, 0);             // optional decision threshold
 *     ad_bank_save(bank, "part.adbank");
 *     // later, on the line: ad_bank_load, ad_bank_add_references(..., recalibrate 1), ad_bank_save
 *
 *     ad_result r;
 *     ad_predict(bank, ctx, &test_img, -1, &r);   // mask -1: the bank's setting
 *     // r.score, r.verdict (AD_VERDICT_OK / _NG / _NONE), r.grid (grid_h x grid_w),
 *     ad_anomaly_map(r.grid, r.grid_h, r.grid_w, img.width, img.height, map);  // full-size heat map
 *     ad_result_free(&r);
 *
 *   The library never prints. The calls of this header take pixels, not files: decoding is the
 *   caller's, or ad_image_read's (anomalydino_eval.h, which also opens benchmark datasets and
 *   runs the evaluation protocol). Every failing call returns a status (or NULL) with a
 *   one-line reason in ad_errmsg(). Outputs are untouched on failure.
 *
 * ERRORS
 *   Every call that can fail returns an ad_status; a constructor (ad_model_load, ad_bank_load,
 *   ad_bank_new, ad_context_new, ad_pixel_eval_new) returns NULL and ad_last_status() says why
 *   (AD_E_IO: cannot open/read/write; AD_E_FORMAT: corrupt or unsupported content; AD_E_NOMEM;
 *   AD_E_MISMATCH: made with other weights; AD_E_ARG: a bad argument). ad_errmsg() is one line
 *   (no newline) naming the call or the file. Every allocation failure is reported as AD_E_NOMEM
 *   and leaves the outputs, and a bank being changed, as they were.
 *
 * OWNERSHIP
 *   Whatever the library allocates for the caller has one matching free function: ad_model_free,
 *   ad_context_free, ad_bank_free, ad_pixel_eval_free (handles); ad_image_free (ad_image_alloc,
 *   ad_resize_*, ad_rotate outputs); ad_input_free (ad_preprocess); ad_features_free
 *   (ad_extract*; for ad_extract_layers, each of the n_layers outputs); ad_result_free
 *   (ad_predict). Each free function takes NULL (and a zeroed struct) and does nothing. Buffers
 *   the caller passes in (maps, grids, keep masks, score arrays) stay the caller's; the library
 *   keeps no pointer to them after the call. Strings returned by the library are static or live
 *   as long as the handle they came from (see each).
 *
 * DATA FLOW
 *   weights (.pth / .safetensors) -> ad_model -> backbone forward (ad_extract) -> ad_features
 *   -> background mask (ad_mask_pca) -> memory bank / nearest neighbour (ad_bank_*)
 *   -> patch-distance grid -> image score (ad_score_top1p) and map (ad_anomaly_map)
 *   -> evaluation (ad_metrics_image, ad_pixel_eval_*).
 *
 * THREADS
 *   An ad_model, and an ad_bank once fitted or loaded, are read-only: any number of threads may
 *   use them at once (ad_predict, ad_bank_query, ad_bank_check_model, ad_bank_save, getters).
 *   Changing a bank (ad_bank_add_*, ad_bank_calibrate_*) needs exclusive use. Each thread uses
 *   its own ad_context (and its own ad_pixel_eval). N threads predicting at once on one model
 *   and one bank get results bit-identical to the same predictions run one after another.
 *   How: a context's compute runs in the library's own OpenMP regions with the context's
 *   n_threads, and every BLAS call is made inside such a region with BLAS single-threaded, so
 *   OpenBLAS never starts a pool of its own. No library call changes a process-wide setting:
 *   not omp_set_num_threads for the caller, not openblas_set_num_threads, not the environment.
 *   Calls without a context (ad_zeroshot with ctx NULL, ad_anomaly_map, ad_resize_*, the pixel
 *   metrics) use the caller's current OpenMP default, read and never changed.
 *   BLAS: link OpenBLAS' OpenMP build (Debian libopenblas0-openmp) or its serial build; its
 *   pthreads build ignores OpenMP and runs its own pool, governed by OPENBLAS_NUM_THREADS.
 *   ad_errmsg() and ad_last_status() are per thread.
 *
 * DETERMINISM
 *   The same inputs and the same thread count give bit-identical outputs.
 */
#ifndef ANOMALYDINO_H
#define ANOMALYDINO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AD_VERSION_STRING "0.1.0"

/* Marks the exported functions: the shared library is built with hidden visibility, so these
 * are its only dynamic symbols. */
#if defined(__GNUC__) || defined(__clang__)
#define AD_API __attribute__((visibility("default")))
#else
#define AD_API
#endif

/* ------------------------------------------------------------------------------------------ */
/* Status and errors                                                                           */
/* ------------------------------------------------------------------------------------------ */
typedef enum {
    AD_OK = 0,
    AD_E_ARG = 1,         /* invalid argument (NULL, size out of range, unknown preset, ...) */
    AD_E_IO = 2,          /* file cannot be opened, read or written */
    AD_E_FORMAT = 3,      /* file content is corrupt, truncated or of an unsupported kind */
    AD_E_NOMEM = 4,       /* allocation failed */
    AD_E_MISMATCH = 5,    /* e.g. a bank made with other weights, or features of another width */
    AD_E_INTERNAL = 6,
    AD_E_CANCELLED = 7    /* a cancel callback asked to stop (ad_eval_run) */
} ad_status;

/* The reason for the last failure on this thread, one line, never NULL. The string is the
 * thread's own buffer: valid until the next failing call on this thread, never to be freed.
 * ad_status_name() and ad_version() return static strings. */
AD_API const char *ad_errmsg(void);
/* The status of the last failure on this thread (the one ad_errmsg() describes), AD_OK if none
 * has failed yet. After a constructor returns NULL (ad_model_load, ad_bank_load, ad_bank_new,
 * ad_context_new, ad_pixel_eval_new) it says why: AD_E_IO, AD_E_FORMAT, AD_E_NOMEM, ... */
AD_API ad_status ad_last_status(void);
AD_API const char *ad_status_name(ad_status s);
AD_API const char *ad_version(void);

/* ------------------------------------------------------------------------------------------ */
/* Images: RGB8, interleaved, row-major (data[(y*width + x)*3 + c])                            */
/* ------------------------------------------------------------------------------------------ */
typedef struct {
    int width, height;
    uint8_t *data;
} ad_image;

AD_API ad_status ad_image_alloc(ad_image *img, int width, int height);
AD_API void ad_image_free(ad_image *img);

/* Pillow's antialiased bicubic (a = -0.5, 22-bit fixed point, horizontal then vertical pass). */
AD_API ad_status ad_resize_pillow(const ad_image *src, int out_w, int out_h, ad_image *dst);
/* Smaller edge to `short_edge`, long edge int(S*long/short); a copy if already that size. */
AD_API ad_status ad_resize_short_edge(const ad_image *src, int short_edge, ad_image *dst);
/* cv2.warpAffine(INTER_LINEAR, BORDER_REFLECT_101) of getRotationMatrix2D((W/2, H/2), deg, 1). */
AD_API ad_status ad_rotate(const ad_image *src, double angle_deg, ad_image *dst);

/* Network input: CHW float32, ImageNet-normalised, H and W multiples of 14. */
typedef struct {
    int width, height;
    float *data; /* 3 * height * width */
} ad_input;

/* resolution > 0: smaller-edge resize to it first; 0: the image as is. Then /255, mean/std,
 * top-left crop to multiples of 14. Fails if the result is smaller than 14 x 14. */
AD_API ad_status ad_preprocess(const ad_image *img, int resolution, ad_input *out);
AD_API void ad_input_free(ad_input *in);

/* ------------------------------------------------------------------------------------------ */
/* Model: DINOv2 weights, read-only                                                            */
/* ------------------------------------------------------------------------------------------ */
typedef struct ad_model ad_model;

typedef enum { AD_POS_SCALE_FACTOR = 0, AD_POS_ANTIALIAS = 1 } ad_pos_interp;

typedef struct {
    int dim, depth, heads, head_dim;
    int ffn_hidden;        /* MLP hidden width, or the SwiGLU hidden width (4096 for ViT-g) */
    int swiglu;            /* 0: MLP + exact GELU, 1: SwiGLU */
    int n_registers;       /* 0 or 4 */
    int patch_size;        /* 14 */
    int pos_grid;          /* 37 */
    ad_pos_interp pos_interp;
    /* The three strings belong to the model: valid until ad_model_free, never freed by the caller */
    const char *format;    /* "pth" or "safetensors" */
    const char *dtype;     /* dtype stored in the file: "F32", "F16", "BF16" */
    const char *name;      /* "vits14", "vitb14_reg4", ... or "custom" */
    uint64_t n_params;
    uint64_t fingerprint;  /* identity of the weights' values (format independent) */
} ad_model_info;

/* Reads a hub checkpoint (.pth, PyTorch zip) or a Hugging Face model.safetensors; the format is
 * recognised from the content. The configuration is inferred from the tensors. NULL on failure. */
AD_API ad_model *ad_model_load(const char *path);
AD_API void ad_model_free(ad_model *m);
AD_API ad_model_info ad_model_get_info(const ad_model *m);

/* ------------------------------------------------------------------------------------------ */
/* Context: per-run scratch                                                                    */
/* ------------------------------------------------------------------------------------------ */
typedef struct ad_context ad_context;

typedef struct {
    int n_threads;   /* <= 0: all cores */
} ad_context_params;

AD_API ad_context_params ad_context_default_params(void);
AD_API ad_context *ad_context_new(const ad_model *m, ad_context_params p);
AD_API void ad_context_free(ad_context *ctx);
AD_API int ad_context_threads(const ad_context *ctx);
/* The model the context runs (valid while that model lives). */
AD_API const ad_model *ad_context_model(const ad_context *ctx);

/* Features of one image: final-LayerNorm patch tokens (CLS and registers dropped). */
typedef struct {
    int grid_h, grid_w, dim;
    float *patch;   /* (grid_h*grid_w) x dim, row-major over the patch grid */
    float *cls;     /* dim */
} ad_features;

AD_API ad_status ad_extract(ad_context *ctx, const ad_input *in, ad_features *out);
/* Outputs of the listed 0-based blocks (negative: from the end, -1 = last), each through the
 * final LayerNorm when `norm` is set. outs[] has n_layers entries. */
AD_API ad_status ad_extract_layers(ad_context *ctx, const ad_input *in, const int *layers, int n_layers,
                            int norm, ad_features *outs);
/* ad_preprocess + ad_extract. */
AD_API ad_status ad_extract_image(ad_context *ctx, const ad_image *img, int resolution, ad_features *out);
AD_API void ad_features_free(ad_features *f);

/* ------------------------------------------------------------------------------------------ */
/* Zero-shot background mask (PCA of the image's own features)                                 */
/* ------------------------------------------------------------------------------------------ */
/* keep[grid_h*grid_w] = 1 for foreground patches. Exact first principal component (float64),
 * sign: largest-magnitude score positive; > 10; centre-crop flip test (border 0.2, 35 %);
 * 2-D 3x3 dilation then 3x3 closing. Non-finite feature values: AD_E_ARG. */
AD_API ad_status ad_mask_pca(const ad_features *f, uint8_t *keep);

/* ------------------------------------------------------------------------------------------ */
/* Presets of the original (which categories are masked / rotated)                            */
/* ------------------------------------------------------------------------------------------ */
/* preset: agnostic, informed, masking_only, informed_no_mask, agnostic_no_mask,
 * force_{no_mask|mask}_{no_rotation|rotation}; dataset: "mvtec" or "visa"; category: e.g. "screw".
 * Unknown categories get the dataset-independent answer of the preset (agnostic: rotate, mask
 * only where the table says so -> not masked). */
AD_API ad_status ad_preset_lookup(const char *preset, const char *dataset, const char *category,
                           int *mask, int *rotate);

/* ------------------------------------------------------------------------------------------ */
/* Memory bank, nearest neighbour, scores                                                      */
/* ------------------------------------------------------------------------------------------ */
typedef struct ad_bank ad_bank;

typedef struct {
    int resolution;   /* smaller edge, default 448; 0 = no resize */
    int rotate;       /* 8 rotations of every reference */
    int mask_refs;    /* PCA-mask references (default 0) */
    int mask_test;    /* PCA-mask test images by default (default 0) */
    int knn_k;        /* neighbours averaged, default 1 */
} ad_bank_params;

AD_API ad_bank_params ad_bank_default_params(void);
AD_API ad_bank *ad_bank_new(const ad_model *m, const ad_bank_params *p);
AD_API void ad_bank_free(ad_bank *b);
AD_API ad_bank_params ad_bank_get_params(const ad_bank *b);
AD_API size_t ad_bank_rows(const ad_bank *b);
AD_API int ad_bank_images(const ad_bank *b);   /* reference images added (before rotation) */

/* Adds one reference image (and its rotations when the bank rotates). */
AD_API ad_status ad_bank_add_image(ad_bank *b, ad_context *ctx, const ad_image *img, int image_id);
/* Adds precomputed features (already rotated etc.); keep may be NULL (all patches). Rows are
 * L2-normalised on insertion. image_id groups rows for leave-one-out. A non-finite value
 * (NaN, inf) anywhere in f is refused with AD_E_ARG. */
AD_API ad_status ad_bank_add_features(ad_bank *b, const ad_features *f, const uint8_t *keep, int image_id);

/* Patch distances of f against the bank: grid[i] = mean over the k nearest of (1 - cosine),
 * 0 where keep[i] == 0 (keep may be NULL). Block-wise: the Q x M similarity matrix is never
 * held whole. exclude_image_id >= 0 leaves that reference's rows out (leave-one-out). A kept
 * patch with a non-finite value is refused (AD_E_ARG). A bank with an index (see "Approximate
 * search" below) is searched through it, approximately; ad_predict too. */
AD_API ad_status ad_bank_query(const ad_bank *b, ad_context *ctx, const ad_features *f,
                        const uint8_t *keep, int exclude_image_id, double *grid);

/* Decision threshold learned from normal images only. MAX: the largest score, exactly (no
 * margin); QUANTILE: numpy.quantile(scores, q) (linear). A verdict is NG iff score > threshold. */
typedef enum { AD_THRESH_MAX = 0, AD_THRESH_QUANTILE = 1 } ad_thresh_rule;
/* Leave-one-out over the references (needs >= 2): each reference, unrotated and masked as a test
 * image would be, scored against the bank without any of its rows (rotations included); `q` is
 * the quantile for AD_THRESH_QUANTILE. */
AD_API ad_status ad_bank_calibrate_loo(ad_bank *b, ad_context *ctx, ad_thresh_rule rule, double q);
/* From scores of held-out good images. */
AD_API ad_status ad_bank_calibrate_scores(ad_bank *b, const double *scores, int n, ad_thresh_rule rule,
                                   double q);
/* 1 and *thr set if the bank has a threshold, else 0. */
AD_API int ad_bank_threshold(const ad_bank *b, double *thr);

/* ---- Banks that grow: references with names, threshold history, coresets (docs/banks.md) ----
 * Every reference records a name and the time it was added; every threshold learned
 * (ad_bank_calibrate_loo / _scores) is appended to the bank's history with its rule, source,
 * the scores it came from and the time. Both are saved in the bank file (format 2; files of
 * format 1 load with empty names, time 0 and no history). */
typedef struct {
    int image_id;
    int views;          /* insertions: 1, or 8 with rotations */
    int64_t added;      /* Unix seconds when it was added; 0 = unknown (format 1 files) */
    const char *name;   /* as given when added, "" if none; valid until the bank changes */
} ad_bank_ref;
/* i in [0, ad_bank_images(b)), in the order the references were added. */
AD_API ad_status ad_bank_ref_get(const ad_bank *b, int i, ad_bank_ref *out);

/* Appends n good references (each with its rotations when the bank rotates, masked as the
 * bank's settings say) under new image ids (largest id + 1, ...), names[i] (may be NULL)
 * recorded. All or nothing: on failure the bank is as before. A coreset bank subsamples the new
 * rows at its recorded fraction, the rows already in the bank counting as centres.
 * recalibrate = 1 then relearns the threshold by leave-one-out over all references with the
 * rule (and quantile) of the bank's latest threshold (max when it has none); refused with
 * AD_E_ARG before any change when that threshold came from calibration scores (score held-out
 * images against the grown bank and call ad_bank_calibrate_scores instead). For an exact bank
 * (no coreset, or r = 1), adding references one call at a time gives bit-identical rows and the
 * same threshold as one call with all of them, and as ad_bank_add_image with ids 0, 1, ...
 * This is what a service endpoint adding references calls, on its own copy of the bank
 * (ad_bank_load), before ad_bank_save and swapping the copy in. */
AD_API ad_status ad_bank_add_references(ad_bank *b, ad_context *ctx, const ad_image *imgs,
                                        const char *const *names, int n, int recalibrate);

typedef enum { AD_THRESH_FROM_LOO = 0, AD_THRESH_FROM_SCORES = 1 } ad_thresh_source;
typedef struct {
    ad_thresh_rule rule;
    double quantile;          /* for AD_THRESH_QUANTILE (1 for MAX) */
    ad_thresh_source source;  /* leave-one-out over the references, or caller's scores */
    double threshold;
    int n_refs;               /* references in the bank when it was learned */
    int64_t time;             /* Unix seconds */
    int n_scores;
    const double *scores;     /* the scores it was learned from; valid until the bank changes */
} ad_thresh_record;
/* Number of thresholds recorded (the last one is the bank's current threshold). */
AD_API int ad_bank_threshold_count(const ad_bank *b);
/* i in [0, count), oldest first. */
AD_API ad_status ad_bank_threshold_get(const ad_bank *b, int i, ad_thresh_record *out);
/* Time stamped on references added and thresholds learned from now on; 0 (default): the
 * system clock. For reproducible bank files (the tool honours SOURCE_DATE_EPOCH). */
AD_API void ad_bank_set_clock(ad_bank *b, int64_t unix_seconds);

/* Coreset subsampling (PatchCore's greedy k-center, an approximation of the full bank): keeps
 * r in (0, 1]: ceil(r * rows) rows, r > 1 (an integer): that many rows (all if fewer). Each
 * pick is the row farthest from those picked so far, distances in a fixed seeded random
 * projection to 128 dimensions; the first pick is row 0. Deterministic and independent of the
 * thread count. Cost: about picks x rows x 128 multiply-adds. r = 1 leaves the rows as they are
 * and records the setting. Once per bank; the setting is saved (ad_bank_coreset_setting).
 * Learn the threshold after subsampling. ctx gives the thread count (NULL: the current OpenMP
 * default). ad_bank_add_references subsamples later references at the same fraction;
 * ad_bank_add_image / _add_features add their rows as they are. */
AD_API ad_status ad_bank_coreset(ad_bank *b, ad_context *ctx, double r);
/* The recorded setting (0 if never subsampled) and the rows offered to the selection. */
AD_API double ad_bank_coreset_setting(const ad_bank *b, size_t *rows_offered);

/* ---- Approximate search: an inverted-file (IVF) index, opt-in (docs/banks.md) ----------
 * Exact search stays the default: a bank without an index searches every row, as before. A bank
 * with an index is searched approximately by ad_bank_query, ad_predict and leave-one-out alike:
 * each test patch probes the `probes` lists whose centroids are nearest to it, and its distance
 * is the exact 1 - cosine to the best row in those lists (>= the exact distance: scores can only
 * rise). The index is a seeded spherical k-means of the rows (fixed sample, initialisation and
 * iteration count): the same bank and settings give the same index, and the same results for
 * every thread count. It is saved in the bank file (format 3). Adding references keeps it: the
 * new rows join the list of their nearest centroid (the centroids are not retrained; rebuild
 * after the bank has grown much). Memory: a copy of the rows grouped by list (the bank's row
 * storage once more) plus lists x dim centroids. */
typedef struct {
    int lists;       /* k-means lists; 0 = automatic (about 2 sqrt(rows), a power of two) */
    int probes;      /* lists probed per query by default; 0 = automatic (lists / 32, >= 8) */
    int iterations;  /* k-means iterations; 0 = the default (10) */
} ad_index_params;
typedef struct {
    int lists, probes, iterations;
    size_t rows;                     /* rows indexed (all searched rows) */
    size_t min_list, max_list;       /* rows of the smallest and the largest list */
} ad_index_info;
/* Query with this many probes: AD_PROBES_DEFAULT the bank's setting, AD_PROBES_EXACT exact. */
#define AD_PROBES_DEFAULT 0
#define AD_PROBES_EXACT (-1)
AD_API ad_index_params ad_index_default_params(void);
/* Builds (or rebuilds) the bank's index; p NULL = defaults; ctx gives the threads (NULL: the
 * OpenMP default). AD_E_ARG for lists outside [1, rows] or probes outside [1, lists]. Build a
 * coreset first (ad_bank_coreset refuses a bank with an index). Needs exclusive use. */
AD_API ad_status ad_bank_index_build(ad_bank *b, ad_context *ctx, const ad_index_params *p);
/* Removes the index: the bank is exact again. */
AD_API void ad_bank_index_drop(ad_bank *b);
/* 1 and *out filled if the bank has an index, else 0. */
AD_API int ad_bank_index_get(const ad_bank *b, ad_index_info *out);
/* The default probes of the bank's index (1 .. lists; saved with the bank). Exclusive use. */
AD_API ad_status ad_bank_index_set_probes(ad_bank *b, int probes);
/* ad_bank_query with an explicit probe count (> 0, clamped to the lists), AD_PROBES_DEFAULT or
 * AD_PROBES_EXACT (every row, bit-identical to a bank without index). Without an index it is
 * the exact search whatever `probes` says. */
AD_API ad_status ad_bank_query_probes(const ad_bank *b, ad_context *ctx, const ad_features *f,
                                      const uint8_t *keep, int exclude_image_id, int probes,
                                      double *grid);

/* Versioned, checksummed file: features, settings, weights' fingerprint, threshold, reference
 * names and times, threshold history, coreset setting. Written atomically: a unique temporary
 * file in the same folder, flushed to disk (fsync), renamed over `path`, the folder synced; a
 * failure leaves `path` as it was. ad_bank_load reads formats 1 to 3 and refuses newer ones. */
AD_API ad_status ad_bank_save(const ad_bank *b, const char *path);
AD_API ad_bank *ad_bank_load(const char *path);
/* AD_E_MISMATCH if the bank was made with other weights. */
AD_API ad_status ad_bank_check_model(const ad_bank *b, const ad_model *m);

/* Image score: mean of the floor(0.01*n) largest values (n counts every cell), max if that is 0;
 * NaN for an empty grid. */
AD_API double ad_score_top1p(const double *grid, size_t n);

/* Full-resolution map: bilinear resize of the grid (half-pixel centres, edge clamp) to
 * out_w x out_h, then Gaussian sigma 4 (radius 16, reflect), separable, in float64. */
AD_API ad_status ad_anomaly_map(const double *grid, int grid_h, int grid_w, int out_w, int out_h,
                         float *map);

typedef enum { AD_VERDICT_NONE = -1, AD_VERDICT_OK = 0, AD_VERDICT_NG = 1 } ad_verdict;

typedef struct {
    double score;
    ad_verdict verdict;     /* NONE if the bank has no threshold */
    int grid_h, grid_w;
    double *grid;           /* patch distances, 0 for masked-out patches */
    uint8_t *keep;          /* the mask used (all 1 without masking) */
} ad_result;

/* Preprocess, extract, optional mask (mask: 1 on, 0 off, -1 the bank's mask_test), query, score.
 * ad_predict and ad_bank_add_image refuse (AD_E_MISMATCH) a context whose
 * model is not the bank's weights. */
AD_API ad_status ad_predict(const ad_bank *b, ad_context *ctx, const ad_image *img, int mask,
                     ad_result *out);
AD_API void ad_result_free(ad_result *r);

/* "Why is it NG": the bank row nearest to one test patch (row-major index in the image's patch
 * grid, as ad_result.grid), with the same preprocessing and distance as ad_predict. */
typedef struct {
    int patch, test_x, test_y;  /* the test patch: index, column and row */
    int grid_h, grid_w;         /* the test image's patch grid */
    int masked;                 /* 1: masking drops this patch (its grid value is 0) */
    int ref_index;              /* the reference, 0-based in the order added (ad_bank_ref_get) */
    int ref_x, ref_y;           /* column and row of the nearest patch in that reference's grid */
    int view;                   /* 0: the reference as given, v: its v-th rotation */
    double angle_deg;           /* that view's rotation (v * 45 degrees when the bank rotates) */
    double distance;            /* 1 - cosine to it: the patch's grid value with k = 1, up to
                                 * float rounding (one matrix-vector product here) */
} ad_nearest;
AD_API ad_status ad_predict_nearest(const ad_bank *b, ad_context *ctx, const ad_image *img,
                                    int mask, int patch, ad_nearest *out);

/* ------------------------------------------------------------------------------------------ */
/* Batched zero-shot (paper Appendix D)                                                        */
/* ------------------------------------------------------------------------------------------ */
/* Each image's patches against all patches of all other images (M): k = max(1, int(0.001*M)),
 * patch score = mean of the distances strictly below the k-th smallest (the k-th smallest itself
 * when none is below); keeps[i] may be NULL; grids[i] (grid_h*grid_w doubles) are written.
 * Masked-out patches score 0 but stay references for the other images. n_images >= 2, equal
 * feature widths. ctx supplies the thread count (NULL: the current OpenMP setting). */
AD_API ad_status ad_zeroshot(ad_context *ctx, const ad_features *feats, const uint8_t *const *keeps,
                      int n_images, double *const *grids);

/* ------------------------------------------------------------------------------------------ */
/* Evaluation metrics (as scikit-learn and the MVTec AU-PRO code)                              */
/* ------------------------------------------------------------------------------------------ */
typedef struct {
    double auroc, ap, f1max;
} ad_image_metrics;

/* labels: 0 normal, 1 anomalous; needs both classes; scores finite. roc_auc_score,
 * average_precision_score and max 2PR/(P+R) over precision_recall_curve (docs/metrics.md). */
AD_API ad_status ad_metrics_image(const int *labels, const double *scores, size_t n,
                           ad_image_metrics *out);

/* Pixel metrics of a whole category, all pixels pooled, in bounded memory (~4 bytes per normal
 * and 8 per anomalous pixel): add the images one by one, then finish. */
typedef struct ad_pixel_eval ad_pixel_eval;
AD_API ad_pixel_eval *ad_pixel_eval_new(void);
/* One image: map (h x w float32, finite), mask (h x w, nonzero = anomalous) or NULL for a good
 * image; images may differ in size. The data is copied; a refused image leaves pe unchanged. */
AD_API ad_status ad_pixel_eval_add(ad_pixel_eval *pe, const float *map, const uint8_t *mask, int w, int h);
typedef struct {
    double auroc, f1max, aupro;   /* aupro: MVTec AU-PRO up to FPR 0.3, divided by 0.3 */
} ad_pixel_metrics;
/* Needs anomalous and normal pixels. May be called again (more images may be added between). */
AD_API ad_status ad_pixel_eval_finish(ad_pixel_eval *pe, ad_pixel_metrics *out);
AD_API void ad_pixel_eval_free(ad_pixel_eval *pe);

#ifdef __cplusplus
}
#endif
#endif /* ANOMALYDINO_H */
