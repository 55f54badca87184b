/*
 * anomalydino_eval.h - image files, benchmark datasets and the evaluation protocol of
 * AnomalyDINO, as a library: what `anomalydino eval` runs, callable from any program.
 *
 * USAGE (one category, every step through this header and anomalydino.h):
 *
 *     ad_dataset_params dp = ad_dataset_default_params();
 *     ad_dataset *d = ad_dataset_open(AD_LAYOUT_MVTEC, "/data/mvtec", &dp);
 *     ad_eval_params ep = ad_eval_default_params();        // 1,2,4,8,16 shots x 3 seeds, 448
 *     ad_eval_results *r = NULL;
 *     ad_eval_run(model, ctx, d, &ep, &r);                 // progress / cancel callbacks in ep
 *     for (int i = 0; i < ad_eval_unit_count(r); i++) {
 *         const ad_eval_unit *u = ad_eval_unit_at(r, i);    // one shots x seed x category
 *         // u->metrics[AD_METRIC_IMAGE_AUROC], u->images[k].score, ...
 *     }
 *     ad_report_write(r, "out");                           // metrics.json/.csv, tables.md, ...
 *     ad_eval_results_free(r); ad_dataset_free(d);
 *
 *   Files: the calls here read images and masks (PNG and JPEG as OpenCV's imread; masks also
 *   BMP and TIFF) and write the report's files; everything written goes to a unique temporary
 *   file beside the target, synced, then renamed over it (a reader never sees half a file, and
 *   concurrent writers never share one). Like the rest of the library they never print and
 *   report failures as a status plus ad_errmsg().
 *
 * PROTOCOL (docs/eval.md, docs/design.md)
 *   A unit is one (shots, seed, category). For k shots and seed s the references are the sorted
 *   train files [s*k, (s+1)*k); the bank holds their features (and 8 rotations where the preset
 *   says so); every test image is scored against it; image metrics (AUROC, AP, F1-max) and, with
 *   segmentation, pixel metrics (AUROC, F1-max, AU-PRO) follow. Zero-shot mode has one unit per
 *   category, scoring every test image against the other test images.
 *   Test features are extracted once per category and reused by every unit of it; reference
 *   features likewise, both within `cache_bytes`.
 *   With an out_dir, each finished unit is stored in OUT/runs/ and a later run with the same
 *   settings resumes from it; OUT/settings.json pins the settings (a run with others is refused).
 *
 * SHARDS
 *   shard_count N > 1 runs only shard shard_index's share: the units in plan order, cut into N
 *   contiguous parts of about equal test-image count (units of a category stay together where
 *   the cut allows, so test features are extracted by few shards). Each shard writes its units'
 *   records and OUT/shards/shard-I-of-N.json. ad_eval_merge reads the shard folders (one shared
 *   folder or one each) and gives the results a single run gives; it refuses shards made with
 *   other settings or weights, and missing or duplicate units, naming them.
 */
#ifndef ANOMALYDINO_EVAL_H
#define ANOMALYDINO_EVAL_H

#include "anomalydino.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Image files                                                                                 */
/* ------------------------------------------------------------------------------------------ */
/* PNG or JPEG (by content) to RGB8 as OpenCV's imread(path, IMREAD_COLOR) then BGR->RGB: 16-bit
 * PNG scaled, grey expanded, alpha dropped, EXIF orientation ignored. Images of more than
 * max_pixels pixels are refused from the header, before decoding (0: no limit). */
AD_API ad_status ad_image_read(const char *path, size_t max_pixels, ad_image *out);
/* Ground-truth mask (PNG, BMP, TIFF or JPEG) as w x h bytes, 1 = anomalous, 0 = normal: a mask
 * whose values are all below 128 counts every nonzero pixel, any other is thresholded at 128.
 * Free *out with ad_mask_free. */
AD_API ad_status ad_mask_read(const char *path, size_t max_pixels, uint8_t **out, int *w, int *h);
AD_API void ad_mask_free(uint8_t *mask);

/* ------------------------------------------------------------------------------------------ */
/* Datasets                                                                                    */
/* ------------------------------------------------------------------------------------------ */
typedef enum {
    AD_LAYOUT_MVTEC = 0,    /* ROOT/CAT/{train/good, test/TYPE, ground_truth/TYPE/NAME_mask.png} */
    AD_LAYOUT_VISA = 1,     /* prepared 1cls layout, or raw with ROOT/split_csv/1cls.csv */
    AD_LAYOUT_FOLDER = 2,   /* a user's parts: ROOT/CAT/train/good, ROOT/CAT/test/TYPE, ... */
    AD_LAYOUT_KSDD = 3,     /* KolektorSDD: ROOT/kosNN/PartN.jpg + PartN_label.bmp */
    AD_LAYOUT_MTD = 4,      /* Magnetic Tile Defects: ROOT/MT_<class>/Imgs/X.jpg + X.png */
    AD_LAYOUT_MANIFEST = 5  /* a CSV: category,split,image,label,mask (root = the CSV file) */
} ad_layout;
/* "mvtec", "visa", "folder", "ksdd", "mtd", "manifest" (any case; a few aliases). */
AD_API ad_status ad_layout_parse(const char *name, ad_layout *out);
AD_API const char *ad_layout_name(ad_layout layout);

typedef struct ad_dataset ad_dataset;

typedef struct {
    double train_fraction;           /* ksdd / mtd (no train split): share of good images used
                                        as references, default 0.5 */
    size_t max_pixels;               /* masks read while opening (ksdd labels); 0 = no limit */
    const char *const *categories;   /* NULL: every category found, in the standard order */
    int n_categories;
} ad_dataset_params;
AD_API ad_dataset_params ad_dataset_default_params(void);

/* One test image. */
typedef struct {
    char *path;       /* the image file */
    char *name;       /* "TYPE/FILE", the sample's name */
    char *type;       /* "good" for normal images, else the defect type */
    char *mask_path;  /* ground truth, NULL for good images and when there is none */
    int defect;       /* 1 for a defect type (the ground truth may still turn it normal) */
} ad_dataset_item;

typedef struct {
    char *name;
    char **train;        /* reference candidates (paths), sorted by file name, byte order */
    char **train_names;  /* their file names */
    int n_train;
    ad_dataset_item *test;  /* "good" first, then the defect types in byte order */
    int n_test;
} ad_dataset_category;

/* The flat list: every file of the dataset with its split. */
typedef enum { AD_SPLIT_TRAIN = 0, AD_SPLIT_TEST = 1 } ad_split;
typedef struct {
    const char *category;
    ad_split split;
    const char *path;
    int label;               /* 0 good, 1 defect (by folder / label) */
    const char *mask_path;   /* NULL when none */
} ad_dataset_entry;

/* Lists the files (by name only: nothing is decoded except KolektorSDD's labels). NULL on
 * failure (ad_errmsg). Problems that leave something out are notes (ad_dataset_note). */
AD_API ad_dataset *ad_dataset_open(ad_layout layout, const char *root, const ad_dataset_params *p);
AD_API void ad_dataset_free(ad_dataset *d);
AD_API ad_layout ad_dataset_layout(const ad_dataset *d);
AD_API const char *ad_dataset_root(const ad_dataset *d);   /* as resolved */
AD_API int ad_dataset_category_count(const ad_dataset *d);
AD_API const ad_dataset_category *ad_dataset_category_at(const ad_dataset *d, int i);
AD_API size_t ad_dataset_entry_count(const ad_dataset *d);
AD_API const ad_dataset_entry *ad_dataset_entry_at(const ad_dataset *d, size_t i);
/* Notes of the opening: is_error 1 for something asked for that cannot be used (a missing
 * category), 0 for a warning. NULL past the end. */
AD_API int ad_dataset_note_count(const ad_dataset *d);
AD_API const char *ad_dataset_note(const ad_dataset *d, int i, int *is_error);
/* The dataset as a manifest CSV that AD_LAYOUT_MANIFEST reads back to the same lists. */
AD_API ad_status ad_dataset_write_manifest(const ad_dataset *d, const char *csv_path);
/* References of k shots and seed s: [s*k, (s+1)*k) clipped; k < 0 = all. Returns the count. */
AD_API int ad_dataset_select_shots(const ad_dataset_category *c, int k, int seed, int *first);

/* ------------------------------------------------------------------------------------------ */
/* The protocol                                                                                */
/* ------------------------------------------------------------------------------------------ */
#define AD_EVAL_MAX_SHOTS 32
#define AD_EVAL_MAX_SEEDS 100
#define AD_EVAL_N_METRICS 6
typedef enum {
    AD_METRIC_IMAGE_AUROC = 0, AD_METRIC_IMAGE_AP = 1, AD_METRIC_IMAGE_F1MAX = 2,
    AD_METRIC_PIXEL_AUROC = 3, AD_METRIC_PIXEL_F1MAX = 4, AD_METRIC_PIXEL_AUPRO = 5
} ad_metric;
/* "image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_f1max", "pixel_aupro". */
AD_API const char *ad_metric_name(ad_metric m);

/* Progress: a line of text, or a counted phase (BEGIN with total, STEP with done, END). */
typedef enum { AD_PROGRESS_LINE = 0, AD_PROGRESS_BEGIN = 1, AD_PROGRESS_STEP = 2,
               AD_PROGRESS_END = 3 } ad_progress_kind;
typedef struct {
    ad_progress_kind kind;
    const char *text;   /* LINE: the line; BEGIN: the phase ("eval: bottle: test features") */
    int done, total;
} ad_progress;

typedef struct {
    int zeroshot;               /* batched zero-shot (one unit per category) */
    int shots[AD_EVAL_MAX_SHOTS];   /* k per column, -1 = every reference; distinct */
    int n_shots;                /* default 1,2,4,8,16 */
    int n_seeds;                /* seeds 0 .. n_seeds-1, default 3 */
    const char *preset;         /* default "agnostic" ("masking_only" zero-shot) */
    int resolution;             /* default 448 (zero-shot 672); 0 = images as they are */
    int segmentation;           /* pixel metrics too */
    int n_examples;             /* example images per category for the report (<= 16; needs
                                   out_dir), default 4 */
    size_t cache_bytes;         /* cached test + reference features per category, default 4 GiB
                                   (zero-shot keeps every test feature regardless: each image is
                                   compared with all others) */
    size_t max_pixels;          /* images and masks larger are refused (default 40M; 0 none) */
    const char *weights_name;   /* recorded in the settings (e.g. the weights' path) */
    const char *out_dir;        /* runs/ records, settings.json, examples/; NULL: in memory */
    int shard_index, shard_count;   /* run share shard_index of shard_count (default 0 of 1) */
    void (*progress)(void *user, const ad_progress *p);   /* may be NULL */
    int (*cancel)(void *user);  /* nonzero: stop at the next image (AD_E_CANCELLED) */
    void *user;
} ad_eval_params;
AD_API ad_eval_params ad_eval_default_params(void);

typedef struct {
    const char *image;   /* sample name "TYPE/FILE" */
    int label;           /* 0 normal, 1 anomalous (any ground-truth pixel) */
    double score;
    double seconds;      /* features (measured once) + search */
} ad_eval_image;

typedef struct {
    const char *image;
    int label;
    double score;
    const char *file_image, *file_gt, *file_map;   /* paths below out_dir; "" none */
} ad_eval_example;

typedef enum {
    AD_UNIT_PLANNED = 0,    /* not run (another shard's, or cancelled) */
    AD_UNIT_COMPUTED = 1,
    AD_UNIT_RESUMED = 2,    /* read back from out_dir/runs/ */
    AD_UNIT_FAILED = 3      /* see the notes */
} ad_unit_state;

typedef struct {
    const char *category;
    int i_shot, i_seed, i_cat;     /* column of params.shots, seed index, category index */
    int shots, seed;               /* shots -1 = full; zero-shot: 0 */
    ad_unit_state state;
    int n_test;                    /* test images listed (the unit's cost in the shard plan) */
    int mask, rotate;
    int n_references;
    char **references;             /* reference file names */
    double bank_rows, bank_seconds;
    int n_images;                  /* scored test images */
    ad_eval_image *images;
    unsigned metrics_present;      /* bit m: metrics[m] computed */
    double metrics[AD_EVAL_N_METRICS];
    int n_skipped;                 /* problems of this unit (also among the notes) */
    char **skipped;
    int n_examples;
    ad_eval_example *examples;
    double examples_vmax;          /* colour scale of the example maps */
} ad_eval_unit;

typedef struct ad_eval_results ad_eval_results;

/* Runs the protocol (or its shard). Returns AD_OK when it went through, even if some units
 * failed or were left out (ad_eval_summary says how many; the notes say why); a failure to
 * start (bad params, unusable out_dir, settings differing from out_dir's) returns the status
 * and *out stays NULL; cancelling returns AD_E_CANCELLED with the results so far in *out. */
AD_API ad_status ad_eval_run(const ad_model *model, ad_context *ctx, const ad_dataset *d,
                             const ad_eval_params *p, ad_eval_results **out);
/* Combines the shard folders into the results of one run. */
AD_API ad_status ad_eval_merge(const char *const *dirs, int n_dirs, ad_eval_results **out);
AD_API void ad_eval_results_free(ad_eval_results *r);

/* Units in plan order: shots, then seeds, then categories (full shot and zero-shot: seed 0). */
AD_API int ad_eval_unit_count(const ad_eval_results *r);
AD_API const ad_eval_unit *ad_eval_unit_at(const ad_eval_results *r, int i);
AD_API int ad_eval_category_count(const ad_eval_results *r);
AD_API const char *ad_eval_category(const ad_eval_results *r, int i);
/* Mean and population std over seeds of one cell; i_cat -1 = macro average over categories.
 * Returns the number of seeds with a value (0: none). */
AD_API int ad_eval_cell(const ad_eval_results *r, int i_shot, int i_cat, ad_metric m,
                        double *mean, double *std);
typedef struct {
    int computed, resumed, failed, planned;   /* units by state; planned = not run here */
    int n_errors, n_warnings;
} ad_eval_summary;
AD_API ad_eval_summary ad_eval_get_summary(const ad_eval_results *r);
/* What was left out and why: errors first, then warnings. NULL past the end. */
AD_API int ad_eval_note_count(const ad_eval_results *r);
AD_API const char *ad_eval_note(const ad_eval_results *r, int i, int *is_error);
/* The settings as JSON text (what settings.json and metrics.json hold); lives with r. */
AD_API const char *ad_eval_settings_json(const ad_eval_results *r);

/* ------------------------------------------------------------------------------------------ */
/* Report                                                                                      */
/* ------------------------------------------------------------------------------------------ */
/* Writes metrics.json, metrics.csv, tables.md, scores.csv, timing.csv and report.html into
 * out_dir (example images are read from the folder the run wrote them to). */
AD_API ad_status ad_report_write(const ad_eval_results *r, const char *out_dir);
/* tables.md as text (the paper's table layout); free with ad_string_free. NULL out of memory. */
AD_API char *ad_report_tables_md(const ad_eval_results *r);
AD_API void ad_string_free(char *s);

#ifdef __cplusplus
}
#endif
#endif /* ANOMALYDINO_EVAL_H */
