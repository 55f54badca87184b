/* Memory bank, nearest-neighbour search, background mask and scores: the internals of the
 * "Memory bank" and "Zero-shot background mask" sections of anomalydino.h. Exposed here so that
 * tests can pin the fast paths to plain references (search block size, eigen-solver choice). */
#ifndef AD_DETECT_H
#define AD_DETECT_H

#include "core/core.h"

/* The reference rotations (AD src/utils.py augment_image): view v of a reference is the image
 * turned by v * DT_ROT_STEP_DEG degrees, v < DT_ROT_COUNT. */
#define DT_ROT_COUNT 8
#define DT_ROT_STEP_DEG 45.0
/* View `view` (0 .. DT_ROT_COUNT-1) of a reference, as the bank stores it: the image itself
 * (view 0), else ad_rotate by view * DT_ROT_STEP_DEG, through ad_extract_image. The one
 * definition ad_bank_add_image and the evaluation protocol both use. */
/* Masks computed so far in this process (ad_mask_pca calls), for tests. */
long adi_mask_pca_count(void);
ad_status dt_reference_view(ad_context *ctx, const ad_image *img, int view, int resolution,
                            ad_features *out);
/* AD_E_ARG for a NULL or empty image, naming the call `who`. */
ad_status dt_check_image(const ad_image *img, const char *who);
/* AD_E_MISMATCH when the context runs other weights than the bank was made with. */
ad_status dt_check_context_model(const ad_bank *b, const ad_context *ctx, const char *fn);

/* Largest rotation count per reference (angle index is stored in a byte). */
#define DT_MAX_INSERTS 255

/* One reference image: its id, the grid of its first (unrotated) insertion, and the test-style
 * mask of that insertion (what leave-one-out scores it with). */
typedef struct {
    int32_t id;
    int32_t grid_h, grid_w;
    int32_t n_inserts;   /* insertions so far (0 = the image itself, 1.. = its rotations) */
    uint8_t *keep_test;  /* grid_h*grid_w, NULL = all patches (the bank does not mask tests) */
    char *name;          /* name given when added (NULL = none) */
    int64_t added;       /* Unix seconds when added, 0 = unknown (format 1 files) */
} dt_image;

/* One learned threshold (the bank's history, oldest first). */
typedef struct {
    ad_thresh_rule rule;
    ad_thresh_source source;
    double quantile, threshold;
    int64_t time;
    int32_t n_refs;      /* references in the bank then */
    int32_t n_scores;
    double *scores;      /* the scores it was learned from */
} dt_thresh_rec;

/* Longest reference name kept (bytes); longer names are refused. */
#define DT_MAX_NAME 4096
/* Threshold records kept; the oldest are dropped beyond it. */
#define DT_MAX_HISTORY 1024

/* Inverted-file index (ivf.c, docs/banks.md): a coarse quantizer of `lists` unit centroids
 * (spherical k-means) and a copy of the searched rows grouped by list, list l holding copy rows
 * [off[l], off[l+1]) in bank order. Derived from b->row_list and b->feat by dt_ivf_sync. */
typedef struct {
    int lists, probes, iterations;
    float *centroids;  /* lists x dim, unit length */
    size_t n;          /* rows in the copy (== b->rows when in sync) */
    size_t *off;       /* lists + 1 */
    float *feat;       /* n x dim, the rows grouped by list */
    float *norm2;      /* n */
    int32_t *orig;     /* n: bank row of each copy row */
} dt_ivf;

struct ad_bank {
    ad_bank_params p;
    uint64_t fingerprint;   /* weights' identity, 0 when made without a model */
    char model_name[32];
    int dim;                /* 0 until the first features when made without a model */

    /* Searched rows: L2-normalised float32 features (rows x dim, realloc-grown), their squared
     * norms in float32 (faiss' y_norms, recomputed on load), owner, insertion index, cell. */
    size_t rows, cap;
    float *feat;
    float *norm2;
    int32_t *row_image;
    uint8_t *row_angle;
    int32_t *row_cell;

    /* Side rows: unrotated cells that leave-one-out scores but that are not searched (cells a
     * reference mask dropped while the test mask keeps them). */
    size_t side_rows, side_cap;
    float *side_feat;
    int32_t *side_image;
    int32_t *side_cell;

    int n_images, images_cap;
    dt_image *images;

    int has_threshold;
    ad_thresh_rule rule;
    double threshold;
    double quantile;

    /* Format 2 additions: threshold history, coreset setting, clock for the records. */
    int n_hist, hist_cap;
    dt_thresh_rec *hist;
    double coreset;          /* setting as given (0 = never subsampled, (0,1] fraction, > 1 rows) */
    double coreset_frac;     /* fraction of offered rows kept (also for references added later) */
    uint64_t coreset_offered;/* rows offered to the selection so far */
    int64_t clock;           /* time stamped on new records, 0 = the system clock */

    /* Format 3: the optional IVF index (NULL = none). row_list[rows] (grown with the rows, -1 =
     * not assigned yet) holds each searched row's list while an index exists. */
    dt_ivf *ivf;
    int32_t *row_list;
};

/* IVF index (ivf.c). Defaults and bounds of the settings. */
#define DT_IVF_ITERATIONS 10      /* k-means iterations (fixed) */
#define DT_IVF_TRAIN_PER_LIST 128 /* training rows per list at most (seeded sample beyond) */
#define DT_IVF_SEED 0x1f5eed0c0a15e5ULL
#define DT_IVF_MAX_LISTS 1048576
/* Builds (or rebuilds) the index over every searched row. lists, probes: 0 = automatic. */
ad_status dt_ivf_build(ad_bank *b, int n_threads, int lists, int probes, int iterations);
void dt_ivf_free(dt_ivf *ix);
/* Assigns the rows whose row_list is -1 to their nearest centroid and rebuilds the list-ordered
 * copy: call after any change of the rows while an index exists. All or nothing. */
ad_status dt_ivf_sync(ad_bank *b, int n_threads);
/* Drops the copy rows of bank rows >= rows (rollback of an insertion; no allocation). */
void dt_ivf_truncate(ad_bank *b, size_t rows);
/* Automatic settings for a bank of `rows` rows. */
int dt_ivf_auto_lists(size_t rows);
int dt_ivf_auto_probes(int lists);
/* Search through the index: probes > 0 probes that many lists (clamped to the lists), 0 the
 * bank's setting, < 0 (or no index) the exact dt_bank_search, as is probing every non-empty
 * list (bit-identical to a bank without index). Same contract as ad_bank_query;
 * a query whose probed lists hold fewer than k usable rows is searched exactly. */
#define DT_PROBES_EXACT (-1)
ad_status dt_bank_search_probes(const ad_bank *b, int n_threads, const ad_features *f,
                                const uint8_t *keep, int exclude_image_id, int probes,
                                double *grid);
/* The same; force = 1 runs the list-grouped search even when every list is probed (tests: it
 * then equals the exact search up to the last bits of the GEMM's inner products). */
ad_status dt_ivf_search(const ad_bank *b, int n_threads, const ad_features *f, const uint8_t *keep,
                        int exclude_image_id, int probes, int force, double *grid);

/* Time stamped on records now (the bank's clock or time(NULL)). */
int64_t dt_bank_now(const ad_bank *b);
/* Appends a threshold record (scores copied), dropping the oldest beyond DT_MAX_HISTORY. */
ad_status dt_bank_push_history(ad_bank *b, ad_thresh_rule rule, ad_thresh_source src, double q,
                               double thr, const double *scores, int n);
/* Threshold from scores recorded with its source. */
ad_status dt_bank_calibrate(ad_bank *b, const double *scores, int n, ad_thresh_rule rule, double q,
                            ad_thresh_source src);

/* Greedy k-center selection (PatchCore) over the rows of x (n x d, row-major): rows [0, n_pre)
 * are centres already, `target` more are picked among rows [n_pre, n), each the row farthest
 * from every centre so far (squared Euclidean distance in a seeded random projection to
 * DT_CORESET_PROJ dimensions when d is larger; ties: lowest index). The first pick when n_pre
 * is 0 is row 0. sel[target] receives the picks in ascending order. Deterministic, and the same
 * for every thread count. */
#define DT_CORESET_PROJ 128
#define DT_CORESET_SEED 0x5eed0fc0de5e7ULL
ad_status dt_kcenter(const float *x, size_t n, int d, size_t n_pre, size_t target, int n_threads,
                     size_t *sel);
/* Keeps only the rows [from, rows) whose keep_row[j - from] is set (order kept); a dropped
 * unrotated row that leave-one-out scores becomes a side row. */
ad_status dt_bank_compact(ad_bank *b, size_t from, const uint8_t *keep_row);
/* Subsamples the rows [from, rows) (a coreset of them, the rows before as centres) to
 * b->coreset_frac of their number. */
ad_status dt_bank_coreset_rows(ad_bank *b, size_t from, int n_threads);

/* faiss fvec_renorm_L2 on one row: nr = sum x^2 (float32), x *= (float)(1.0 / sqrtf(nr)) when
 * nr > 0. Returns the squared norm of the result (float32, sequential sum). */
float dt_normalize_row(float *x, int d);
/* Squared norm of a row, float32 sequential sum (faiss fvec_norm_L2sqr up to summation order). */
float dt_norm2_row(const float *x, int d);

/* Exact k-NN search of the kept cells of f against the bank. block_rows > 0 forces the number
 * of bank rows per GEMM block (tests), 0 picks it from the query size. n_threads <= 0 uses the
 * current OpenMP setting. Same contract as ad_bank_query otherwise. */
/* The leave-one-out scores behind ad_bank_calibrate_loo, one per reference image in the order
 * they were added (scores: ad_bank_images(b) values). Needs >= 2 references. */
ad_status adi_bank_loo_scores(const ad_bank *b, ad_context *ctx, double *scores);

ad_status dt_bank_search(const ad_bank *b, int n_threads, const ad_features *f,
                         const uint8_t *keep, int exclude_image_id, size_t block_rows,
                         double *grid);

/* The distance scan of one query over n bank rows (inner products ip, squared norms mn), updating
 * its k smallest squared distances top[] (ascending, +inf when unset). avx2 = 1 uses the AVX2
 * kernel when the CPU has it; both paths give identical results. */
void dt_knn_scan(int avx2, float qn, const float *ip, const float *mn, size_t n, float *top, int k);

/* Internal insertion shared by ad_bank_add_features and ad_bank_add_image: rows of f where keep
 * (NULL = all); when the image id is new, records the unrotated grid and keep_test (may be NULL =
 * all; copied). */
ad_status dt_bank_insert(ad_bank *b, const ad_features *f, const uint8_t *keep,
                         const uint8_t *keep_test, int image_id);
/* Index of the image record with that id, or -1. */
int dt_bank_find_image(const ad_bank *b, int image_id);
/* ad_bank_load from a file already in memory (len bytes at buf; name for messages). */
ad_bank *dt_bank_load_mem(const void *buf, size_t len, const char *name);
/* Drops every row, side row and image record added after the given counts (rollback of a
 * failed multi-insert of a new image). */
void dt_bank_truncate(ad_bank *b, size_t rows, size_t side_rows, int n_images);

/* Threshold from scores (copied, not modified): max, or numpy.quantile(linear) at q. */
/* ad_score_top1p with a status (AD_E_NOMEM, AD_E_ARG for an empty grid) instead of NaN. */
ad_status dt_score_top1p(const double *grid, size_t n, double *score);
ad_status dt_threshold_from_scores(const double *scores, int n, ad_thresh_rule rule, double q,
                                   double *thr);

/* Top eigenvector of a symmetric D x D matrix (row-major, full or upper triangle used), unit
 * length, sign unspecified. DT_EIG_AUTO: LAPACK dsyevr when the BLAS library provides it,
 * else Jacobi; DT_EIG_JACOBI: the cyclic Jacobi reference (slow, O(D^3) per sweep). */
typedef enum { DT_EIG_AUTO = 0, DT_EIG_JACOBI = 1 } dt_eig_impl;
ad_status dt_top_eigvec(dt_eig_impl impl, const double *c, int d, double *v);
int dt_have_lapack(void);
/* First principal component scores (n values, double) of the n x d features, sign so that the
 * score of largest magnitude is positive. */
ad_status dt_pca_first(dt_eig_impl impl, const float *x, int n, int d, double *pc);
/* Threshold, centre-crop flip test and 2-D morphology on a gh x gw grid of PC scores. */
ad_status dt_mask_from_pc(const double *pc, int gh, int gw, uint8_t *keep);
/* out = 3x3 dilation / erosion of in on a gh x gw grid, out-of-grid neighbours ignored. */
void dt_dilate3(const uint8_t *in, int gh, int gw, uint8_t *out);
void dt_erode3(const uint8_t *in, int gh, int gw, uint8_t *out);

#endif
