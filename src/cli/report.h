/* Outputs of `anomalydino eval`: metrics.json, metrics.csv, tables.md (the paper's table layout),
 * scores.csv, timing.csv and a self-contained report.html, all made from the per-run records
 * (one JSON object per shots x seed x category, as cmd_eval.c stores them in runs/).
 *
 * Run record fields read here: "category", "shots", "seed", "references" (names), "bank_rows",
 * "bank_seconds", "images" ([{"image", "label", "score", "seconds"}]), "metrics" ({name: value},
 * absent names were not computed), "examples" ([{"image", "label", "score", "files":
 * {"image", "gt", "map"}}], paths relative to the output folder) and "examples_vmax". */
#ifndef AD_CLI_REPORT_H
#define AD_CLI_REPORT_H

#include "core/core.h"

#include <cjson/cJSON.h>

#define REP_N_METRICS 6
/* Metric names exactly as `anomalydino metrics` prints them. */
extern const char *const rep_metric_names[REP_N_METRICS];

typedef struct {
    int zeroshot;             /* one column "0-shot" (the paper's Table 4) instead of shots */
    int n_shots;
    const int *shots;         /* k per column; -1 = every reference (full shot) */
    int n_seeds;
    const int *seeds;
    int n_cats;
    char *const *cats;
    cJSON *const *runs;       /* [(i_shot * n_seeds + i_seed) * n_cats + i_cat], NULL if missing */
    const cJSON *settings;    /* copied into metrics.json and the report */
    const char *out_dir;      /* folder the example images' paths are relative to */
    char *const *notes;       /* summary lines for the report (what was skipped and why) */
    int n_notes;
} rep_input;

/* "1", "16", "full" or "0" (zero-shot): the key of a shots column in every output. */
void rep_shots_key(int k, char *buf, size_t n);

/* mean / population std (numpy's default ddof = 0) over seeds of one cell; i_cat = -1 is the
 * macro average over categories (per seed, then over seeds). Returns the number of seeds that
 * had a value (0: none, *mean and *std untouched). */
int rep_cell_stats(const rep_input *in, int i_shot, int i_cat, int metric, double *mean,
                   double *std);

/* {"results": {shots: {seed: {category: {metric: value}}}}, "mean": {shots: {category|"mean":
 * {metric}}}, "std": (same), "timing": ..., "settings": ..., "version": ...}. */
cJSON *rep_metrics_json(const rep_input *in);

/* Writes the text to path.tmp and renames it over path, so a reader never sees half a file. */
ad_status rep_write_text(const char *path, const char *text, size_t len);
ad_status rep_write_json(const char *path, const cJSON *obj);

ad_status rep_write_metrics_csv(const char *path, const rep_input *in);
ad_status rep_write_scores_csv(const char *path, const rep_input *in);
ad_status rep_write_timing_csv(const char *path, const rep_input *in);
/* Markdown tables (malloc'ed, NUL-terminated); NULL when out of memory. */
char *rep_tables_md(const rep_input *in);
ad_status rep_write_html(const char *path, const rep_input *in);

/* Base64 (RFC 4648, with padding), malloc'ed, NUL-terminated. */
char *rep_base64(const uint8_t *data, size_t len);

/* Example images for the report: the test image, its ground truth (white = anomalous; black when
 * there is none) and the anomaly map on a fixed colour scale 0..vmax (values above saturate),
 * each shrunk (box average) to fit max_side, written as PREFIX_image.png, PREFIX_gt.png,
 * PREFIX_map.png. mask may be NULL. */
ad_status rep_write_example(const char *prefix, const uint8_t *rgb, const uint8_t *mask,
                            const float *map, int w, int h, float vmax, int max_side);
/* The colour scale of the maps (an "inferno"-like ramp: black, purple, orange, pale yellow). */
void rep_colormap(float t, uint8_t rgb[3]);

#endif
