/* The report layer of the protocol: metrics.json, metrics.csv, tables.md (the paper's table
 * layout), scores.csv, timing.csv and a self-contained report.html, rendered from the results
 * structs (ad_eval_unit, one per shots x seed x category) - never from the JSON records. */
#ifndef AD_REPORT_H
#define AD_REPORT_H

#include "core/core.h"
#include "protocol/protocol.h"

#include <cjson/cJSON.h>

#define REP_N_METRICS 6
/* Metric names exactly as `anomalydino metrics` prints them (the protocol's table). */
#define rep_metric_names pr_metric_names

typedef struct {
    int zeroshot;             /* one column "0-shot" (the paper's Table 4) instead of shots */
    int n_shots;
    const int *shots;         /* k per column; -1 = every reference (full shot) */
    int n_seeds;
    const int *seeds;
    int n_cats;
    char *const *cats;
    pr_unit *const *runs;     /* [(i_shot * n_seeds + i_seed) * n_cats + i_cat], NULL if missing */
    const cJSON *settings;    /* copied into metrics.json and the report */
    const char *out_dir;      /* folder the example images' paths are relative to, for units
                                 without a base_dir of their own */
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

/* Atomic writes (adi_io_write_file): a reader never sees half a file. */
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

/* The colour scale of the maps: matplotlib's "inferno" (black, purple, orange, pale yellow), the
 * same table as predict's overlays (adi_colormap_inferno9). */
void rep_colormap(float t, uint8_t rgb[3]);
/* Every output file into out_dir (ad_report_write's work). */
ad_status rep_write_all(const rep_input *in, const char *out_dir, char **tables_md);
/* The report's view of a results handle (runs point into r; free in.cats with adi_free). */
ad_status rep_input_from_results(const ad_eval_results *r, rep_input *in);

#endif
