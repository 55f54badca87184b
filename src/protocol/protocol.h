/* The benchmark protocol (anomalydino_eval.h): plan, runner, run records, shards and merge.
 *
 *   plan.c    the units of a run (category x shots x seed), their notes, the shard cut
 *   runner.c  ad_eval_run: feature caches, banks, scoring, metrics, example images, resume
 *   record.c  a unit as the JSON record of OUT/runs/ (read back for resume and merge), the
 *             settings (settings.json), the results handle and its accessors
 *   merge.c   shard manifests and ad_eval_merge
 * The report (src/report/) renders an ad_eval_results; it never looks at JSON records. */
#ifndef AD_PROTOCOL_H
#define AD_PROTOCOL_H

#include "anomalydino_eval.h"
#include "core/core.h"
#include "protocol/dataset.h"

#include <cjson/cJSON.h>

/* A unit of the plan: the public struct plus what the runner and the records need. */
typedef struct {
    ad_eval_unit u;
    int first, count;     /* reference block [first, first + count) of the category's train */
    char *base_dir;       /* folder the example files are relative to (NULL: none) */
    int shard;            /* the shard that runs it */
} pr_unit;

struct ad_eval_results {
    int zeroshot;
    int n_shots, shots[AD_EVAL_MAX_SHOTS];
    int n_seeds, seeds[AD_EVAL_MAX_SEEDS];
    int n_cats;
    char **cats;
    pr_unit *units;       /* plan order: category, then shots, then seed */
    int n_units;
    pr_unit **grid;       /* [(i_shot * n_seeds + i_seed) * n_cats + i_cat], NULL if no unit */
    cJSON *settings;      /* settings.json */
    char *settings_text;  /* cJSON_PrintUnformatted(settings), for ad_eval_settings_json */
    char key[512];        /* the settings key (what must match to resume or merge) */
    char *out_dir;        /* where the run wrote (NULL in memory) */
    adi_strlist plan_errors, plan_warnings;  /* dataset + plan notes */
    adi_strlist run_errors;   /* failed units and other problems of this run, in order */
    adi_strlist notes;        /* errors, then warnings, each once (built by pr_build_notes) */
    int n_note_errors;
    int shard_index, shard_count;
};

/* plan.c -------------------------------------------------------------------------------- */
/* Settings key: everything that changes a unit's numbers, "name=value;..." (shots, seeds and
 * categories are not in it: each record names its own). */
void pr_settings_key(int zeroshot, ds_kind kind, const char *preset, int resolution,
                     int segmentation, uint64_t fingerprint, char *buf, size_t n);
/* "resolution: 448 there, 672 now; ..." for the fields of two keys that differ. */
void pr_key_diff(const char *old, const char *now, char *out, size_t n);
/* Builds r->units / r->grid and the plan notes from the dataset (r's shots, seeds, zeroshot
 * set). preset: per-category mask and rotation. */
ad_status pr_plan(ad_eval_results *r, const ds_dataset *d, const char *preset);
/* Assigns every unit its shard: contiguous parts of the plan of about equal test-image count. */
void pr_plan_shards(ad_eval_results *r, int shard_count);
/* Fingerprint of the plan (units, references, test listings): shards of one run agree on it. */
uint64_t pr_plan_hash(const ad_eval_results *r, const ds_dataset *d);
/* The record's path: OUT/runs/<k>shot/seed<s>/<category>.json (dir and path). */
void pr_run_path(const char *out, int k, int seed, const char *cat, char *dir, size_t dn,
                 char *path, size_t pn);
/* "1", "16", "full" or "0" (zero-shot). */
void pr_shots_key(int k, char *buf, size_t n);

/* record.c ------------------------------------------------------------------------------ */
/* "image_auroc", ... in ad_metric order. */
extern const char *const pr_metric_names[AD_EVAL_N_METRICS];
ad_eval_results *pr_results_new(void);
void pr_unit_clear(pr_unit *u);   /* results of the unit, not its plan fields */
/* The unit's record (key, version, test listing as the plan saw it). NULL out of memory. */
cJSON *pr_record_to_json(const pr_unit *u, const char *key, char *const *test_listing,
                         int n_listing);
/* Fills the unit's results from a record; 0, or -1 when it is not a record of this unit (key,
 * references or test listing differ: *why says which). */
int pr_record_from_json(pr_unit *u, const cJSON *j, const char *key,
                        char *const *references, int n_refs, char *const *listing, int n_listing,
                        const char **why);
cJSON *pr_read_json(const char *path);
/* JSON (formatted, newline-terminated) written atomically. */
ad_status pr_write_json(const char *path, const cJSON *obj);
/* r->grid from the units that are computed or resumed. */
void pr_fill_grid(ad_eval_results *r);
/* r->notes from the plan notes, the units' skipped lines (plan order) and the run's errors. */
void pr_build_notes(ad_eval_results *r);

/* merge.c ------------------------------------------------------------------------------- */
/* OUT/shards/shard-I-of-N.json: the whole plan (every unit with its shard), this shard's
 * states, the plan's and this shard's notes. */
ad_status pr_write_shard_manifest(const ad_eval_results *r, uint64_t plan_hash);

#endif
