/* Helpers shared by the fit, predict and zeroshot commands: model loading, presets, result
 * tables (CSV / JSON), per-image output files and the list of failed images. */
#ifndef AD_CLI_DETECT_H
#define AD_CLI_DETECT_H

#include "cli/cli.h"
#include "image/image.h"

#include <cjson/cJSON.h>

/* Loads the weights and a context with n_threads (<= 0: all cores); prints the error. */
int cld_load_model(const char *cmd, const char *weights, int n_threads, ad_model **m,
                   ad_context **ctx);

/* --preset/--dataset/--category -> mask and rotate (ad_preset_lookup). dataset NULL = "mvtec",
 * category NULL = none (the preset's answer for unknown categories). Prints the error; returns 0
 * or -1. */
int cld_preset(const char *cmd, const char *preset, const char *dataset, const char *category,
               int *mask, int *rotate);

/* Output file stems, one per input path: the file name without extension, with "-2", "-3", ...
 * appended when an earlier input already has that stem (in input order). NULL on failure. */
char **cld_unique_stems(char **paths, int n);
/* Output names that identify the image: rels[i] (cli_collect_images_rel) is the path below the
 * folder given, and its output stem keeps those sub-folders ("broken_small/000"); a file given
 * by itself (rels[i] NULL) keeps the rule of cld_unique_stems. Should two images still map to
 * the same stem (e.g. x.png and x.jpg, or two folders with the same names), the later one gets
 * "-2", "-3", ... and a warning line names both images: nothing is renamed silently. */
char **cld_output_stems(const char *cmd, char **paths, char **rels, int n);

/* DIR/STEM.EXT in a new string (malloc). */
char *cld_out_path(const char *dir, const char *stem, const char *ext);
/* --grids and --maps both write DIR/STEM.npy: the same folder for both would silently overwrite
 * the grids with the maps. Call after cld_prepare_dir; prints the error and returns -1 if the two
 * (non-NULL) folders are the same directory. */
int cld_distinct_npy_dirs(const char *cmd, const char *grids_dir, const char *maps_dir);
/* Creates the folder (and parents) if it is given; prints the error. */
int cld_prepare_dir(const char *cmd, const char *opt, const char *dir);

/* Grid (double, gh x gw) as .npy float32; map (float, h x w) as .npy float32. */
ad_status cld_write_grid(const char *path, const double *grid, int gh, int gw);
ad_status cld_write_map(const char *path, const float *map, int w, int h);

/* The optional files of one image, each folder may be NULL: DIR/STEM.npy grid (gh x gw),
 * DIR/STEM.npy full-resolution map (w x h, ad_anomaly_map) and DIR/STEM.png heat-map overlay
 * with `op` over `img` (decoded again from img_path when img is NULL; it must still be w x h).
 * Failure: status with the reason in ad_errmsg(). */
typedef struct {
    const char *grids, *maps, *overlays;
    int maps_tiff; /* --maps-format tiff: DIR/STEM.tiff (float32) instead of .npy */
} cld_out_dirs;
/* The files written for one image (NULL: not asked for); free with cld_out_files_free. */
typedef struct {
    char *grid, *map, *overlay;
} cld_out_files;
void cld_out_files_free(cld_out_files *f);
/* --maps-format npy|tiff; prints the error. */
int cld_parse_maps_format(const char *cmd, const char *s, int *tiff);
/* Sub-folders of STEM ("broken_small/000") are created below DIR. `written` (may be NULL)
 * receives the paths of the files written. */
ad_status cld_write_outputs(const cld_out_dirs *dirs, const char *stem, const double *grid,
                            int gh, int gw, int w, int h, const ad_image *img,
                            const char *img_path, const adi_overlay_params *op,
                            cld_out_files *written);

/* Images of a dataset layout (`--dataset LAYOUT --data ROOT [--category C]`, dataset.h) for fit
 * (want_train: the references of the split) or predict (the test images; rels get the sample
 * names, "crack/000.png", "kos01/Part0.jpg", so outputs mirror them). A dataset with several
 * categories needs --category. Prints the dataset's notes and any error; count or -1. */
int cld_dataset_images(const char *cmd, const char *layout, const char *data,
                       const char *category, double train_fraction, size_t max_pixels,
                       int want_train, char ***paths, char ***rels);

/* ad_predict in its stages (features, then mask + nearest-neighbour search + score), through the
 * same library calls, so that each stage can be timed; predict and serve both score with it.
 * mask: 1 on, 0 off, -1 the bank's setting. features_ms / search_ms may be NULL. */
ad_status cld_predict(const ad_bank *b, ad_context *ctx, const ad_image *img, int mask,
                      ad_result *out, double *features_ms, double *search_ms);

/* Overlay colour scale of predict and serve: vmax > 0 as given, else 2 x the threshold (the
 * threshold mid-scale) or CLD_VMAX_NO_THRESHOLD without one; contour at the threshold. */
#define CLD_VMAX_NO_THRESHOLD 0.5
#define CLD_VMAX_THRESHOLD_FACTOR 2.0
adi_overlay_params cld_overlay_params(int have_thr, double thr, double vmax);
/* Full-resolution map (img->width x img->height floats, adi_alloc'ed) and, when ov is not NULL,
 * the heat-map overlay over img. Outputs untouched on failure. */
ad_status cld_map_overlay(const double *grid, int gh, int gw, const ad_image *img,
                          const adi_overlay_params *op, float **map, ad_image *ov);

/* Result table: CSV rows are printed as they come (header first), JSON is printed at the end. */
typedef enum { CLD_CSV = 0, CLD_JSON = 1 } cld_format;
int cld_parse_format(const char *cmd, const char *s, cld_format *out);

typedef struct {
    cld_format format;
    int with_verdict;  /* verdict column: OK / NG, empty (JSON null) without a threshold */
    int with_time;     /* time_ms column */
    int with_threshold; /* threshold column (predict): `threshold`, empty (null) without one */
    int have_threshold;
    double threshold;
    cJSON *doc;        /* JSON: {"settings": {...}, "results": [...], "failures": [...]} */
    cJSON *results, *failures;
    int n_failed;
    char **failed;     /* "PATH: reason" */
} cld_table;

/* CSV header: image,score[,verdict][,threshold][,time_ms],grid,map,overlay - the last three
 * name the files written for the image (empty when not asked for). with_threshold: the
 * threshold column, from have_thr / thr. */
int cld_table_begin(cld_table *t, cld_format format, int with_verdict, int with_time,
                    int with_threshold, int have_thr, double thr);
/* settings shown in JSON output only (borrowed: added to the document) */
cJSON *cld_table_settings(cld_table *t);
/* verdict: AD_VERDICT_NONE/_OK/_NG (ignored without with_verdict); time_ms likewise */
void cld_table_row(cld_table *t, const char *image, double score, ad_verdict verdict,
                   double time_ms, const cld_out_files *files);
/* Records and reports (stderr) a failed image; the batch goes on. */
void cld_table_fail(cld_table *t, const char *cmd, const char *image, const char *reason);
/* Prints the JSON document (JSON) and the list of failures (stderr). Returns 0 if no image
 * failed, else 1. */
int cld_table_end(cld_table *t, const char *cmd);

/* The output options predict and zeroshot share: --mask/--no-mask, --grids, --maps,
 * --overlays, --vmax, --format, --threads, --maps-format, --max-pixels. A command lists
 * CLD_OUT_LONGOPTS in its option table and hands each getopt code to cld_out_option. */
enum {
    CLD_O_MASK = 512, CLD_O_NOMASK, CLD_O_GRIDS, CLD_O_MAPS, CLD_O_OVERLAYS, CLD_O_VMAX,
    CLD_O_FORMAT, CLD_O_THREADS, CLD_O_MAPSFMT, CLD_O_MAXPX
};
#define CLD_OUT_LONGOPTS                                                                       \
    {"mask", no_argument, 0, CLD_O_MASK}, {"no-mask", no_argument, 0, CLD_O_NOMASK},           \
    {"grids", required_argument, 0, CLD_O_GRIDS}, {"maps", required_argument, 0, CLD_O_MAPS},  \
    {"overlays", required_argument, 0, CLD_O_OVERLAYS},                                        \
    {"vmax", required_argument, 0, CLD_O_VMAX}, {"format", required_argument, 0, CLD_O_FORMAT}, \
    {"threads", required_argument, 0, CLD_O_THREADS},                                          \
    {"maps-format", required_argument, 0, CLD_O_MAPSFMT},                                      \
    {"max-pixels", required_argument, 0, CLD_O_MAXPX}
typedef struct {
    int mask;             /* 1 --mask, 0 --no-mask, -1 neither */
    const char *grids, *maps, *overlays;
    double vmax;          /* as given, or the command's default */
    cld_format format;
    int threads;
    int maps_tiff;
    size_t max_pixels;
} cld_out_opts;
void cld_out_opts_init(cld_out_opts *o, double vmax);
/* 1: the code was one of these options (value stored), 0: not one of them, -1: a bad value
 * (printed; exit 2). */
int cld_out_option(const char *cmd, int code, const char *arg, cld_out_opts *o);
/* Creates the output folders and checks that --grids and --maps differ; prints the error. */
int cld_out_prepare(const char *cmd, const cld_out_opts *o);

/* Quoted if needed (RFC 4180). */
void cld_csv_field(FILE *f, const char *s);

#endif
