/* anomalydino eval: the paper's benchmark protocol on MVTec AD, VisA or a folder of parts.
 *
 * For every category: references = the original's block of sorted train/good files per (shots,
 * seed) (REFERENCE.md A4), a memory bank from them (ad_bank_*), every test image scored, image
 * metrics (+ pixel metrics with --segmentation) as the original's post_eval (A11). Test-image
 * features (and their PCA masks) depend only on the image, the weights and the resolution, so
 * they are extracted once per category and reused for every shots x seed run; only the
 * nearest-neighbour query is repeated. Likewise the features of each reference (and its
 * rotations): the reference blocks of different shots overlap (1-, 2-, 4-, 8- and 16-shot over
 * seeds 0..2 use 48 distinct images 93 times). Each finished (shots, seed, category) is stored in
 * OUT/runs/ as it completes and is not recomputed when the command is run again with the same
 * settings. The tables, CSV/JSON files and the HTML report are rebuilt from those records at the
 * end (report.c). */
#include "cli/cli.h"
#include "cli/dataset.h"
#include "cli/report.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CMD "eval"
#define MAX_SHOTS 32
#define MAX_SEEDS 100
#define EXAMPLE_MAX_SIDE 256
/* AD src/utils.py augment_image: the reference and its rotations by 45, 90, ..., 315 degrees,
 * in that order (what ad_bank_add_image does with rotate set). */
#define ROT_VIEWS 8
#define ROT_STEP_DEG 45.0

/* AD run_anomalydino.py README reproduction: --shots 1 2 4 8 16 --num_seeds 3, preprocess
 * agnostic, resolution 448. Batched zero-shot (run_anomalydino_batched.py): masking_only, 672. */
#define DEFAULT_SHOTS "1,2,4,8,16"
#define DEFAULT_SEEDS 3
#define DEFAULT_PRESET "agnostic"
#define DEFAULT_RESOLUTION 448
#define ZEROSHOT_PRESET "masking_only"
#define ZEROSHOT_RESOLUTION 672
/* DINOv2 patch size: a smaller resolution leaves no patch (ad_preprocess refuses it) */
#define EVAL_PATCH 14

typedef struct {
    const char *weights, *data, *out, *preset;
    ds_kind kind;
    char **cats;
    int n_cats;
    int shots[MAX_SHOTS], n_shots;
    int seeds[MAX_SEEDS], n_seeds;
    int resolution;
    int segmentation, zeroshot;
    int threads;
    int n_examples;
    long cache_mb;
    size_t max_pixels;      /* --max-pixels: images and masks larger are refused from the header */
    double train_fraction;  /* --train-fraction: the split of ksdd / mtd */
} eval_opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: anomalydino eval -m WEIGHTS --dataset LAYOUT --data ROOT -o OUT_DIR [options]\n\n"
            "Runs the paper's benchmark protocol and writes metrics.json, metrics.csv, tables.md,\n"
            "scores.csv, timing.csv, settings.json and report.html into OUT_DIR. A finished\n"
            "shots/seed/category (OUT_DIR/runs/) is not recomputed when the command is repeated.\n\n"
            "  -m, --model WEIGHTS     DINOv2 weights (.pth hub checkpoint or .safetensors)\n"
            "      --dataset LAYOUT    how ROOT is laid out, each as downloaded:\n"
            "                          mvtec     ROOT/CAT/{train/good,test/TYPE,ground_truth/TYPE}\n"
            "                          visa      prepared 1cls layout, or raw with\n"
            "                                    split_csv/1cls.csv\n"
            "                          folder    ROOT/CAT/train/good, ROOT/CAT/test/TYPE, optional\n"
            "                                    ROOT/CAT/ground_truth/TYPE/NAME[_mask].EXT\n"
            "                          ksdd      KolektorSDD: ROOT/kosNN/PartN.jpg with\n"
            "                                    PartN_label.bmp (empty label: good part)\n"
            "                          mtd       Magnetic Tile Defects: ROOT/MT_<class>/Imgs/X.jpg\n"
            "                                    with mask X.png; MT_Free is good\n"
            "                          manifest  ROOT is a CSV: category,split,image,label,mask\n"
            "                                    (paths relative to the CSV; label good|normal|ok|0\n"
            "                                    or the defect type)\n"
            "                          Masks: PNG, BMP, TIFF or JPEG; all values < 128: nonzero\n"
            "                          is anomalous, otherwise thresholded at 128.\n"
            "      --data ROOT         dataset folder (manifest: the CSV file)\n"
            "      --train-fraction F  ksdd/mtd have no train split: per category the first F\n"
            "                          of the good images (sorted by path) are the references,\n"
            "                          the rest and every defect are tested (default 0.5)\n"
            "  -o, --out OUT_DIR       output folder (created)\n"
            "      --categories a,b    categories to evaluate (default: all found)\n"
            "      --shots LIST        reference counts, e.g. 1,2,4,8,16 (default); 'full' = all\n"
            "      --seeds N           seeds 0..N-1: reference blocks seed*k .. (default %d)\n"
            "      --preset P          agnostic (default), informed, masking_only, ... (which\n"
            "                          categories are masked / rotated)\n"
            "      --resolution S      smaller image edge (default %d; zero-shot %d; 0 = the\n"
            "                          images as they are, cropped to multiples of 14)\n"
            "      --segmentation      also pixel AUROC, pixel F1-max and AU-PRO (slower)\n"
            "      --mode M            fewshot (default) or zeroshot (batched, paper Table 4;\n"
            "                          preset default %s)\n"
            "      --threads N         threads (default: all cores)\n"
            "      --examples N        example images per category in report.html (default 4)\n"
            "      --cache-mb MB       memory for cached features, test images and references\n"
            "                          share it (default 4096)\n"
            "      --max-pixels N      refuse images and masks larger than N pixels, from the\n"
            "                          file header before decoding (default 40M; 0 = no limit)\n"
            "  -h, --help              this help\n\n"
            "anomalydino dataset LAYOUT ROOT --manifest OUT.csv writes the lists a layout gives\n"
            "(with the split) as a manifest to inspect or edit.\n\n"
            "Exit status: 0 every run computed or resumed, 1 something failed or was left out\n"
            "(the summary and notes in OUT_DIR say what), 2 wrong usage.\n",
            DEFAULT_SEEDS, DEFAULT_RESOLUTION, ZEROSHOT_RESOLUTION, ZEROSHOT_PRESET);
}

/* ------------------------------------------------------------------------------------------ */
/* option parsing                                                                              */
/* ------------------------------------------------------------------------------------------ */

static int parse_shots(const char *s, eval_opts *o)
{
    char buf[512];
    if (strlen(s) >= sizeof buf) {
        cli_error(CMD, "--shots: list too long");
        return -1;
    }
    strcpy(buf, s);
    o->n_shots = 0;
    size_t n = strlen(buf);
    if (n == 0 || buf[0] == ',' || buf[n - 1] == ',' || strstr(buf, ",,")) {
        cli_error(CMD, "--shots: empty entry in '%s' (e.g. 1,2,4,8,16 or full)", s);
        return -1;
    }
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int k;
        if (!strcmp(t, "full") || !strcmp(t, "-1")) k = -1;
        else if (cli_parse_int(CMD, "--shots", t, 1, 100000, &k)) return -1;
        for (int i = 0; i < o->n_shots; i++)
            if (o->shots[i] == k) {
                cli_error(CMD, "--shots: '%s' listed twice", t);
                return -1;
            }
        if (o->n_shots == MAX_SHOTS) {
            cli_error(CMD, "--shots: at most %d values", MAX_SHOTS);
            return -1;
        }
        o->shots[o->n_shots++] = k;
    }
    if (!o->n_shots) {
        cli_error(CMD, "--shots: empty list");
        return -1;
    }
    return 0;
}

static int parse_categories(const char *s, eval_opts *o)
{
    char *buf = strdup(s);
    if (!buf) return -1;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        for (int i = 0; i < o->n_cats; i++)
            if (!strcmp(o->cats[i], t)) {
                cli_error(CMD, "--categories: '%s' listed twice", t);
                free(buf);
                return -1;
            }
        char **v = realloc(o->cats, (size_t)(o->n_cats + 1) * sizeof *v);
        if (!v || !(v[o->n_cats] = strdup(t))) {
            if (v) o->cats = v;
            free(buf);
            return -1;
        }
        o->cats = v;
        o->n_cats++;
    }
    free(buf);
    if (!o->n_cats) {
        cli_error(CMD, "--categories: empty list");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* settings and resume                                                                         */
/* ------------------------------------------------------------------------------------------ */

/* Everything that changes the numbers of a run, as "name=value;..." (shots, seeds and categories
 * are not in it: each run record names its own). */
static void settings_key(const eval_opts *o, const ad_model_info *mi, char *buf, size_t n)
{
    snprintf(buf, n,
             "mode=%s;dataset=%s;preset=%s;resolution=%d;segmentation=%d;weights=%016llx;"
             "knn_k=1;mask_refs=0",
             o->zeroshot ? "zeroshot" : "fewshot", ds_kind_name(o->kind), o->preset, o->resolution,
             o->segmentation, (unsigned long long)mi->fingerprint);
}

/* "resolution: 448 there, 672 now; ..." for the fields that differ. */
static void key_diff(const char *old, const char *now, char *out, size_t n)
{
    out[0] = 0;
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s", old);
    snprintf(b, sizeof b, "%s", now);
    for (char *sa = NULL, *ta = strtok_r(a, ";", &sa); ta; ta = strtok_r(NULL, ";", &sa)) {
        char *eq = strchr(ta, '=');
        if (!eq) continue;
        size_t kl = (size_t)(eq - ta);
        const char *found = NULL;
        for (const char *p = b; p && *p;) {
            if (!strncmp(p, ta, kl) && p[kl] == '=') { found = p + kl + 1; break; }
            p = strchr(p, ';');
            if (p) p++;
        }
        size_t fl = found ? strcspn(found, ";") : 0;
        if (!found || fl != strlen(eq + 1) || strncmp(found, eq + 1, fl)) {
            size_t l = strlen(out);
            snprintf(out + l, n - l, "%s%.*s: %s there, %.*s now", l ? "; " : "", (int)kl, ta,
                     eq + 1, (int)fl, found ? found : "(unset)");
        }
    }
    if (!out[0]) snprintf(out, n, "%s there, %s now", old, now);
}

static cJSON *read_json(const char *path)
{
    size_t len;
    char *text = adi_io_read_file(path, &len);
    if (!text) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    return j;
}

static int string_array_equals(const cJSON *arr, char *const *v, int n)
{
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n) return 0;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || strcmp(it->valuestring, v[i])) return 0;
        i++;
    }
    return 1;
}

static cJSON *string_array(char *const *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *s = cJSON_CreateString(v[i]);
        if (!s) { cJSON_Delete(a); return NULL; }
        cJSON_AddItemToArray(a, s);
    }
    return a;
}

/* ------------------------------------------------------------------------------------------ */
/* the per-category cache of test images                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    int ok;             /* decoded and its features computed */
    int w, h;           /* decoded size: the anomaly map's size */
    int label;          /* 0 normal, 1 anomalous (A11: any ground-truth pixel > 0) */
    int pixel_ok;       /* has ground truth usable for the pixel metrics (good: all zero) */
    uint8_t *gt;        /* ground truth (w x h) kept for the pixel metrics, NULL for all-zero */
    ad_features f;      /* cached features; f.patch NULL when over the memory budget */
    int gh, gw;
    uint8_t *keep;      /* PCA mask of the test image, NULL without masking */
    double extract_s;   /* seconds to decode, extract and mask it once */
} test_entry;

/* Features of one reference: the image and, when rotating, its 7 rotations. */
typedef struct {
    ad_features *views;  /* NULL until computed, or when over the memory budget */
    int n_views;
    double seconds;      /* decoding, rotating and extracting once */
} ref_entry;

/* --cache-mb, shared by the test and reference features of the category being run. */
typedef struct {
    size_t budget, used;
} cache_budget;

static size_t features_bytes(const ad_features *f)
{
    return ((size_t)f->grid_h * (size_t)f->grid_w + 1) * (size_t)f->dim * sizeof(float);
}

typedef struct {
    const eval_opts *o;
    const ad_model *model;
    ad_context *ctx;
    ds_dataset *ds;
    ds_lines *errors, *warnings;
} eval_env;

static void entries_free(test_entry *e, int n)
{
    if (!e) return;
    for (int i = 0; i < n; i++) {
        adi_free(e[i].gt);
        ad_features_free(&e[i].f);
        free(e[i].keep);
    }
    free(e);
}

static ad_status extract_one(eval_env *env, const char *path, int mask, ad_features *f,
                             uint8_t **keep, int *w, int *h)
{
    ad_image img = {0};
    ad_status st = adi_io_read_image_max(path, env->o->max_pixels, &img);
    if (st != AD_OK) return st;
    *w = img.width;
    *h = img.height;
    st = ad_extract_image(env->ctx, &img, env->o->resolution, f);
    ad_image_free(&img);
    /* decoding errors name the file already; these do not, and the summary must say which */
    if (st != AD_OK) adi_error_prefix("%s", path);
    if (st != AD_OK || !mask || !keep) return st;
    size_t n = (size_t)f->grid_h * (size_t)f->grid_w;
    uint8_t *k = malloc(n ? n : 1);
    if (!k) {
        ad_features_free(f);
        return adi_fail(AD_E_NOMEM, "%s: out of memory", path);
    }
    st = ad_mask_pca(f, k);
    if (st != AD_OK) {
        adi_error_prefix("%s", path);
        free(k);
        ad_features_free(f);
        return st;
    }
    *keep = k;
    return AD_OK;
}

/* Reads the ground truth: label, and the mask itself when the pixel metrics need it. */
static void load_ground_truth(eval_env *env, const ds_category *c, int i, test_entry *e,
                              cJSON *skipped)
{
    const ds_test_item *it = &c->test[i];
    e->label = it->defect;
    e->pixel_ok = !it->defect; /* a good image is all normal */
    if (!it->defect || !it->mask_path) return;
    uint8_t *m = NULL;
    int mw = 0, mh = 0;
    if (adi_io_read_gt_mask(it->mask_path, env->o->max_pixels, &m, &mw, &mh) != AD_OK) {
        char line[1200];
        snprintf(line, sizeof line,
                 "%s: ground truth unreadable (%s): labelled by its folder, left out of the "
                 "pixel metrics",
                 c->name, ad_errmsg());
        ds_lines_add(env->errors, "%s", line);
        cJSON_AddItemToArray(skipped, cJSON_CreateString(line));
        return;
    }
    size_t n = (size_t)mw * (size_t)mh;
    int any = 0;
    for (size_t k = 0; k < n && !any; k++) any = m[k] != 0;
    e->label = any;
    if (env->o->segmentation) {
        if (mw != e->w || mh != e->h) {
            char line[1200];
            snprintf(line, sizeof line,
                     "%s: ground truth %s is %d x %d but the image is %d x %d: left out of the "
                     "pixel metrics",
                     c->name, it->mask_path, mw, mh, e->w, e->h);
            ds_lines_add(env->errors, "%s", line);
            cJSON_AddItemToArray(skipped, cJSON_CreateString(line));
        } else {
            e->pixel_ok = 1;
            if (any) { e->gt = m; m = NULL; }
        }
    }
    adi_free(m);
}

/* Decodes every test image once: size, ground truth, features and mask (cached up to the
 * memory budget). Unreadable images are left out (listed in `skipped`). */
static test_entry *prepare_tests(eval_env *env, const ds_category *c, int mask, int cache_all,
                                 cache_budget *cb, cJSON *skipped)
{
    test_entry *e = calloc((size_t)c->n_test, sizeof *e);
    if (!e) return NULL;
    int uncached = 0;
    char label[300];
    snprintf(label, sizeof label, "eval: %s: test features", c->name);
    cli_meter meter;
    cli_meter_begin(&meter, label, c->n_test);
    for (int i = 0; i < c->n_test; i++) {
        cli_meter_step(&meter, i);
        double t0 = cli_now();
        ad_status st = extract_one(env, c->test[i].path, mask, &e[i].f, &e[i].keep, &e[i].w,
                                   &e[i].h);
        if (st != AD_OK) {
            char line[1200];
            snprintf(line, sizeof line, "%s: test image left out: %s", c->name, ad_errmsg());
            ds_lines_add(env->errors, "%s", line);
            cJSON_AddItemToArray(skipped, cJSON_CreateString(line));
            cli_meter_step(&meter, i + 1);
            continue;
        }
        e[i].extract_s = cli_now() - t0;
        e[i].ok = 1;
        e[i].gh = e[i].f.grid_h;
        e[i].gw = e[i].f.grid_w;
        size_t bytes = features_bytes(&e[i].f);
        if (!cache_all && cb->used + bytes > cb->budget) {
            ad_features_free(&e[i].f);
            uncached++;
        } else {
            cb->used += bytes;
        }
        load_ground_truth(env, c, i, &e[i], skipped);
        cli_meter_step(&meter, i + 1);
    }
    cli_meter_end(&meter);
    if (uncached)
        cli_progress("eval: %s: %d test images over the --cache-mb budget: their features are "
                     "recomputed for every run",
                     c->name, uncached);
    return e;
}

/* ------------------------------------------------------------------------------------------ */
/* one run                                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    int idx;       /* test index */
    float *map;    /* kept for the report */
} example_slot;

/* Test indices for the report: one anomalous image per defect type in turn, then one good. */
static int choose_examples(const ds_category *c, const test_entry *e, int n_want, int *out)
{
    int n = 0;
    if (n_want <= 0) return 0;
    int n_bad = n_want >= 2 ? n_want - 1 : n_want;
    for (int round = 0; n < n_bad; round++) {
        int took = 0;
        const char *prev = NULL;
        int in_type = 0;
        for (int i = 0; i < c->n_test && n < n_bad; i++) {
            const ds_test_item *it = &c->test[i];
            if (!prev || strcmp(prev, it->type)) { prev = it->type; in_type = 0; }
            else in_type++;
            if (!it->defect || !e[i].ok || in_type != round) continue;
            out[n++] = i;
            took = 1;
        }
        if (!took) break;
    }
    for (int i = 0; i < c->n_test && n < n_want; i++)
        if (!c->test[i].defect && e[i].ok) { out[n++] = i; break; }
    return n;
}

static void add_metrics(cJSON *run, const ad_image_metrics *im, const ad_pixel_metrics *pm)
{
    cJSON *m = cJSON_AddObjectToObject(run, "metrics");
    if (!m) return;
    if (im) {
        cJSON_AddNumberToObject(m, "image_auroc", im->auroc);
        cJSON_AddNumberToObject(m, "image_ap", im->ap);
        cJSON_AddNumberToObject(m, "image_f1max", im->f1max);
    }
    if (pm) {
        cJSON_AddNumberToObject(m, "pixel_auroc", pm->auroc);
        cJSON_AddNumberToObject(m, "pixel_f1max", pm->f1max);
        cJSON_AddNumberToObject(m, "pixel_aupro", pm->aupro);
    }
}

/* What scoring a run needs besides the bank. */
typedef struct {
    eval_env *env;
    const ds_category *c;
    test_entry *e;
    const char *run_tag;      /* "1shot_seed0" */
    int want_examples;
    const char *label;        /* "1-shot seed 0", for progress lines */
} finish_ctx;

/* A problem of this run: in the summary now, and in the record so a resumed run reports it
 * again. */
static void run_problem(finish_ctx *fc, cJSON *run, const char *what)
{
    char line[1400];
    snprintf(line, sizeof line, "%s %s: %s", fc->c->name, fc->run_tag, what);
    ds_lines_add(fc->env->errors, "%s", line);
    cJSON *sk = cJSON_GetObjectItemCaseSensitive(run, "skipped");
    if (cJSON_IsArray(sk)) cJSON_AddItemToArray(sk, cJSON_CreateString(line));
}

/* Computes the image metrics from scores/labels and fills the record. */
static int finish_image_metrics(finish_ctx *fc, cJSON *run, const double *scores,
                                const double *seconds, ad_image_metrics *im)
{
    const ds_category *c = fc->c;
    int n = 0;
    for (int i = 0; i < c->n_test; i++) n += fc->e[i].ok;
    int *labels = malloc((size_t)(n ? n : 1) * sizeof *labels);
    double *sc = malloc((size_t)(n ? n : 1) * sizeof *sc);
    cJSON *imgs = cJSON_AddArrayToObject(run, "images");
    if (!labels || !sc || !imgs) {
        free(labels);
        free(sc);
        return -1;
    }
    int k = 0;
    for (int i = 0; i < c->n_test; i++) {
        if (!fc->e[i].ok) continue;
        labels[k] = fc->e[i].label;
        sc[k] = scores[i];
        k++;
        cJSON *it = cJSON_CreateObject();
        if (!it) continue;
        cJSON_AddStringToObject(it, "image", c->test[i].name);
        cJSON_AddNumberToObject(it, "label", fc->e[i].label);
        cJSON_AddNumberToObject(it, "score", scores[i]);
        cJSON_AddNumberToObject(it, "seconds", seconds[i]);
        cJSON_AddItemToArray(imgs, it);
    }
    ad_status st = ad_metrics_image(labels, sc, (size_t)n, im);
    free(labels);
    free(sc);
    if (st != AD_OK) {
        char what[1200];
        snprintf(what, sizeof what, "image metrics not computed: %s", ad_errmsg());
        run_problem(fc, run, what);
        return 0;
    }
    return 1;
}

static void write_examples(finish_ctx *fc, cJSON *run, example_slot *ex, int n_ex,
                           const double *scores)
{
    if (!n_ex) return;
    const eval_opts *o = fc->env->o;
    float vmax = 0;
    for (int k = 0; k < n_ex; k++) {
        const test_entry *e = &fc->e[ex[k].idx];
        if (!ex[k].map) continue;
        for (size_t p = 0; p < (size_t)e->w * (size_t)e->h; p++)
            if (ex[k].map[p] > vmax) vmax = ex[k].map[p];
    }
    size_t dl = strlen(o->out) + strlen(fc->c->name) + 32;
    char *dir = malloc(dl);
    if (!dir) return;
    snprintf(dir, dl, "%s/examples/%s", o->out, fc->c->name);
    if (adi_io_mkdirs(dir) != AD_OK) {
        ds_lines_add(fc->env->errors, "report examples: %s", ad_errmsg());
        free(dir);
        return;
    }
    cJSON *arr = cJSON_AddArrayToObject(run, "examples");
    cJSON_AddNumberToObject(run, "examples_vmax", vmax);
    for (int k = 0; k < n_ex && arr; k++) {
        int i = ex[k].idx;
        const test_entry *e = &fc->e[i];
        if (!ex[k].map) continue;
        ad_image img = {0};
        if (adi_io_read_image_max(fc->c->test[i].path, fc->env->o->max_pixels, &img) != AD_OK ||
            img.width != e->w ||
            img.height != e->h) {
            ad_image_free(&img);
            continue;
        }
        /* without --segmentation the ground truth was only read for the label */
        uint8_t *gt = NULL;
        int gw = 0, gh = 0;
        if (!e->gt && fc->c->test[i].mask_path &&
            (adi_io_read_gt_mask(fc->c->test[i].mask_path, fc->env->o->max_pixels, &gt, &gw,
                                 &gh) != AD_OK || gw != e->w ||
             gh != e->h)) {
            adi_free(gt);
            gt = NULL;
        }
        char prefix[1400], rel[3][600];
        snprintf(prefix, sizeof prefix, "%s/%s_%d", dir, fc->run_tag, k);
        ad_status st = rep_write_example(prefix, img.data, e->gt ? e->gt : gt, ex[k].map, e->w,
                                         e->h, vmax, EXAMPLE_MAX_SIDE);
        /* a defect image whose ground truth is missing, unreadable or of another size: its
         * black "ground truth" would claim there is no defect, so the report shows none */
        int gt_known = !fc->c->test[i].defect || e->gt || gt;
        adi_free(gt);
        ad_image_free(&img);
        if (st != AD_OK) {
            ds_lines_add(fc->env->errors, "report examples: %s", ad_errmsg());
            continue;
        }
        static const char *const kinds[3] = {"image", "gt", "map"};
        cJSON *x = cJSON_CreateObject(), *files = cJSON_CreateObject();
        if (!x || !files) { cJSON_Delete(x); cJSON_Delete(files); continue; }
        for (int t = 0; t < 3; t++) {
            if (t == 1 && !gt_known) rel[t][0] = 0;
            else snprintf(rel[t], sizeof rel[t], "examples/%s/%s_%d_%s.png", fc->c->name,
                          fc->run_tag, k, kinds[t]);
            cJSON_AddStringToObject(files, kinds[t], rel[t]);
        }
        cJSON_AddStringToObject(x, "image", fc->c->test[i].name);
        cJSON_AddNumberToObject(x, "label", e->label);
        cJSON_AddNumberToObject(x, "score", scores[i]);
        cJSON_AddItemToObject(x, "files", files);
        cJSON_AddItemToArray(arr, x);
    }
    free(dir);
}

/* Scores every test image against `bank` (few-shot) or all others (zero-shot, bank NULL) and
 * fills the record. Returns 0, or -1 when the run failed (error recorded). */
static int score_run(finish_ctx *fc, ad_bank *bank, cJSON *run)
{
    eval_env *env = fc->env;
    const ds_category *c = fc->c;
    test_entry *e = fc->e;
    const eval_opts *o = env->o;
    int n = c->n_test, rc = -1;
    double *scores = calloc((size_t)n, sizeof *scores);
    double *seconds = calloc((size_t)n, sizeof *seconds);
    double **grids = calloc((size_t)n, sizeof *grids);
    example_slot ex[16];
    int ex_idx[16], n_ex = 0;
    if (fc->want_examples) n_ex = choose_examples(c, e, o->n_examples > 16 ? 16 : o->n_examples,
                                                  ex_idx);
    for (int k = 0; k < n_ex; k++) ex[k] = (example_slot){ex_idx[k], NULL};
    ad_pixel_eval *pe = NULL;
    if (!scores || !seconds || !grids) goto done;
    for (int i = 0; i < n; i++) {
        if (!e[i].ok) continue;
        grids[i] = malloc((size_t)e[i].gh * (size_t)e[i].gw * sizeof **grids);
        if (!grids[i]) goto done;
    }

    char label[300];
    cli_meter meter;
    if (bank) {
        snprintf(label, sizeof label, "eval: %s %s: search", c->name, fc->label);
        cli_meter_begin(&meter, label, n);
        for (int i = 0; i < n; i++) {
            cli_meter_step(&meter, i);
            if (!e[i].ok) continue;
            double t0 = cli_now();
            ad_features tmp = {0};
            const ad_features *f = &e[i].f;
            if (!e[i].f.patch) { /* over the cache budget: extract again */
                int w, h;
                if (extract_one(env, c->test[i].path, 0, &tmp, NULL, &w, &h) != AD_OK) {
                    ds_lines_add(env->errors, "%s %s: %s", c->name, fc->run_tag, ad_errmsg());
                    goto done;
                }
                f = &tmp;
            }
            ad_status st = ad_bank_query(bank, env->ctx, f, e[i].keep, -1, grids[i]);
            ad_features_free(&tmp);
            if (st != AD_OK) {
                ds_lines_add(env->errors, "%s %s: %s: %s", c->name, fc->run_tag,
                             c->test[i].path, ad_errmsg());
                goto done;
            }
            scores[i] = ad_score_top1p(grids[i], (size_t)e[i].gh * (size_t)e[i].gw);
            /* the per-image time of the original: features + search (features measured once) */
            seconds[i] = (e[i].f.patch ? e[i].extract_s : 0) + (cli_now() - t0);
        }
        cli_meter_step(&meter, n);
        cli_meter_end(&meter);
    } else {
        int m = 0;
        for (int i = 0; i < n; i++) m += e[i].ok;
        ad_features *feats = calloc((size_t)(m ? m : 1), sizeof *feats);
        const uint8_t **keeps = calloc((size_t)(m ? m : 1), sizeof *keeps);
        double **g = calloc((size_t)(m ? m : 1), sizeof *g);
        if (!feats || !keeps || !g) {
            free(feats), free(keeps), free(g);
            goto done;
        }
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (!e[i].ok) continue;
            feats[k] = e[i].f; /* shallow: owned by the cache */
            keeps[k] = e[i].keep;
            g[k] = grids[i];
            k++;
        }
        cli_progress("eval: %s: zero-shot search over %d images ...", c->name, m);
        double t0 = cli_now();
        ad_status st = ad_zeroshot(env->ctx, feats, (const uint8_t *const *)keeps, m,
                                   (double *const *)g);
        double dt = cli_now() - t0;
        free(feats), free(keeps), free(g);
        if (st != AD_OK) {
            ds_lines_add(env->errors, "%s zero-shot: %s", c->name, ad_errmsg());
            goto done;
        }
        for (int i = 0; i < n; i++) {
            if (!e[i].ok) continue;
            scores[i] = ad_score_top1p(grids[i], (size_t)e[i].gh * (size_t)e[i].gw);
            seconds[i] = e[i].extract_s + dt / m;
        }
    }

    if (o->segmentation) {
        pe = ad_pixel_eval_new();
        if (!pe) goto done;
        snprintf(label, sizeof label, "eval: %s %s: pixel maps", c->name, fc->label);
        cli_meter_begin(&meter, label, n);
        for (int i = 0; i < n; i++) {
            cli_meter_step(&meter, i);
            if (!e[i].ok || !e[i].pixel_ok) continue;
            float *map = adi_alloc((size_t)e[i].w * (size_t)e[i].h, sizeof *map);
            if (!map) goto done;
            ad_status st = ad_anomaly_map(grids[i], e[i].gh, e[i].gw, e[i].w, e[i].h, map);
            if (st == AD_OK) st = ad_pixel_eval_add(pe, map, e[i].gt, e[i].w, e[i].h);
            int kept = 0;
            for (int k = 0; k < n_ex && st == AD_OK; k++)
                if (ex[k].idx == i) { ex[k].map = map; kept = 1; }
            if (!kept) adi_free(map);
            if (st != AD_OK) {
                ds_lines_add(env->errors, "%s %s: %s: %s", c->name, fc->run_tag,
                             c->test[i].path, ad_errmsg());
                goto done;
            }
        }
    }
    /* examples need maps even without --segmentation */
    for (int k = 0; k < n_ex; k++) {
        int i = ex[k].idx;
        if (ex[k].map) continue;
        float *map = adi_alloc((size_t)e[i].w * (size_t)e[i].h, sizeof *map);
        if (map && ad_anomaly_map(grids[i], e[i].gh, e[i].gw, e[i].w, e[i].h, map) == AD_OK)
            ex[k].map = map;
        else adi_free(map);
    }

    if (pe) {
        cli_meter_step(&meter, n);
        cli_meter_end(&meter);
    }
    ad_image_metrics im;
    ad_pixel_metrics pm;
    int has_im = finish_image_metrics(fc, run, scores, seconds, &im);
    if (has_im < 0) goto done;
    int has_pm = 0;
    if (pe) {
        cli_progress("eval: %s %s: pixel metrics (AU-PRO) ...", c->name, fc->label);
        if (ad_pixel_eval_finish(pe, &pm) == AD_OK) {
            has_pm = 1;
        } else {
            char what[1200];
            snprintf(what, sizeof what, "pixel metrics not computed: %s", ad_errmsg());
            run_problem(fc, run, what);
        }
    }
    add_metrics(run, has_im ? &im : NULL, has_pm ? &pm : NULL);
    write_examples(fc, run, ex, n_ex, scores);
    rc = 0;
done:
    if (rc && !scores) ds_lines_add(env->errors, "%s %s: out of memory", c->name, fc->run_tag);
    for (int k = 0; k < n_ex; k++) adi_free(ex[k].map);
    ad_pixel_eval_free(pe);
    if (grids)
        for (int i = 0; i < n; i++) free(grids[i]);
    free(grids);
    free(scores);
    free(seconds);
    return rc;
}

/* The views of one reference exactly as ad_bank_add_image makes them: the image itself, then
 * (rotating) ad_rotate by 45, 90, ..., 315 degrees, each through ad_extract_image. */
static ad_status reference_views(eval_env *env, const char *path, int rotate, ad_features **out,
                                 int *n_out)
{
    ad_image img = {0};
    ad_status st = adi_io_read_image_max(path, env->o->max_pixels, &img);
    if (st != AD_OK) return st;
    int nv = rotate ? ROT_VIEWS : 1;
    ad_features *v = calloc((size_t)nv, sizeof *v);
    if (!v) {
        ad_image_free(&img);
        return adi_fail(AD_E_NOMEM, "%s: out of memory", path);
    }
    for (int a = 0; a < nv && st == AD_OK; a++) {
        if (a == 0) {
            st = ad_extract_image(env->ctx, &img, env->o->resolution, &v[0]);
        } else {
            ad_image rot = {0};
            st = ad_rotate(&img, ROT_STEP_DEG * a, &rot);
            if (st == AD_OK) st = ad_extract_image(env->ctx, &rot, env->o->resolution, &v[a]);
            ad_image_free(&rot);
        }
        if (st != AD_OK) adi_error_prefix("%s (rotation %g deg)", path, ROT_STEP_DEG * a);
    }
    ad_image_free(&img);
    if (st != AD_OK) {
        for (int a = 0; a < nv; a++) ad_features_free(&v[a]);
        free(v);
        return st;
    }
    *out = v;
    *n_out = nv;
    return AD_OK;
}

static void refs_free(ref_entry *r, int n)
{
    if (!r) return;
    for (int i = 0; i < n; i++) {
        for (int a = 0; a < r[i].n_views; a++) ad_features_free(&r[i].views[a]);
        free(r[i].views);
    }
    free(r);
}

/* Builds the bank from the selected references (features computed once per category, kept
 * within the budget). Returns the seconds a bank built from scratch takes - extraction (measured
 * when first computed) plus insertion - or -1 on failure (error recorded). */
static double build_bank(eval_env *env, const ds_category *c, int first, int count, int rotate,
                         ad_bank *bank, ref_entry *refs, cache_budget *cb, const char *tag)
{
    double total = 0;
    char label[300];
    snprintf(label, sizeof label, "eval: %s %s: reference features + bank", c->name, tag);
    cli_meter meter;
    cli_meter_begin(&meter, label, count);
    for (int j = 0; j < count; j++) {
        cli_meter_step(&meter, j);
        ref_entry *r = &refs[first + j];
        ad_features *views = r->views;
        int nv = r->n_views;
        double extract = r->seconds, t0 = cli_now();
        ad_status st = AD_OK;
        if (!views) {
            st = reference_views(env, c->train[first + j], rotate, &views, &nv);
            extract = cli_now() - t0;
        }
        double t1 = cli_now();
        for (int a = 0; a < nv && st == AD_OK; a++)
            st = ad_bank_add_features(bank, &views[a], NULL, j); /* references are never masked */
        total += extract + (cli_now() - t1);
        if (views && !r->views) { /* keep it for the next runs if it fits */
            size_t bytes = 0;
            for (int a = 0; a < nv; a++) bytes += features_bytes(&views[a]);
            if (st == AD_OK && cb->used + bytes <= cb->budget) {
                r->views = views;
                r->n_views = nv;
                r->seconds = extract;
                cb->used += bytes;
            } else {
                for (int a = 0; a < nv; a++) ad_features_free(&views[a]);
                free(views);
            }
        }
        if (st != AD_OK) {
            /* the message names the file (reference_views / adi_io_read_image prefix it) */
            cli_meter_end(&meter);
            ds_lines_add(env->errors, "%s %s: reference %s (run skipped)", c->name, tag,
                         ad_errmsg());
            return -1;
        }
    }
    cli_meter_step(&meter, count);
    cli_meter_end(&meter);
    return total;
}

/* ------------------------------------------------------------------------------------------ */
/* category loop                                                                               */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    int computed, resumed, failed;
} run_counts;

static void run_path(const eval_opts *o, int k, int seed, const char *cat, char *dir, size_t dn,
                     char *path, size_t pn)
{
    char sk[32];
    rep_shots_key(k, sk, sizeof sk);
    snprintf(dir, dn, "%s/runs/%sshot/seed%d", o->out, sk, seed);
    snprintf(path, pn, "%s/%s.json", dir, cat);
}

static ad_status lookup_preset(const eval_opts *o, const char *cat, int *mask, int *rotate)
{
    return ad_preset_lookup(o->preset, ds_kind_name(o->kind), cat, mask, rotate);
}

static void eval_category(eval_env *env, int ci, const char *key, cJSON **runs,
                          run_counts *counts)
{
    const eval_opts *o = env->o;
    const ds_category *c = &env->ds->cats[ci];
    int n_cats = env->ds->n_cats;
    int mask = 0, rotate = 0;
    if (lookup_preset(o, c->name, &mask, &rotate) != AD_OK) {
        ds_lines_add(env->errors, "%s: %s", c->name, ad_errmsg());
        return;
    }
    if (o->zeroshot) rotate = 0;
    char **listing = malloc((size_t)c->n_test * sizeof *listing);
    if (!listing) return;
    for (int i = 0; i < c->n_test; i++) listing[i] = c->test[i].name;
    if (o->zeroshot)
        cli_progress("eval: %s: %d test images (zero-shot: no references), mask %s", c->name,
                     c->n_test, mask ? "on" : "off");
    else
        cli_progress("eval: %s: %d train/good images, %d test images, mask %s, rotate %s",
                     c->name, c->n_train, c->n_test, mask ? "on" : "off", rotate ? "on" : "off");

    /* which runs are already done */
    int n_runs = o->n_shots * o->n_seeds;
    int *need = calloc((size_t)n_runs, sizeof *need);
    int any_needed = 0;
    if (!need) { free(listing); return; }
    for (int s = 0; s < o->n_shots; s++)
        for (int d = 0; d < o->n_seeds; d++) {
            int k = o->shots[s], seed = o->seeds[d], first = 0, count = 0;
            if (k < 0 && d > 0) continue; /* full shot: every seed has the same references */
            char sk[32], tag[64], dir[1200], path[1600];
            rep_shots_key(k, sk, sizeof sk);
            snprintf(tag, sizeof tag, "%s-shot seed %d", sk, seed);
            if (!o->zeroshot) {
                count = ds_select_shots(c, k, seed, &first);
                if (count == 0) {
                    ds_lines_add(env->errors,
                                 "%s %s: no references left (only %d in train/good): run skipped",
                                 c->name, tag, c->n_train);
                    continue;
                }
                if (k > 0 && count < k)
                    ds_lines_add(env->warnings, "%s %s: only %d of %d references available",
                                 c->name, tag, count, k);
            }
            run_path(o, k, seed, c->name, dir, sizeof dir, path, sizeof path);
            cJSON *old = adi_io_exists(path) ? read_json(path) : NULL;
            const cJSON *ok = cJSON_GetObjectItemCaseSensitive(old, "settings_key");
            int same = old && cJSON_IsString(ok) && !strcmp(ok->valuestring, key) &&
                       string_array_equals(cJSON_GetObjectItemCaseSensitive(old, "references"),
                                           c->train_names + first, count) &&
                       string_array_equals(cJSON_GetObjectItemCaseSensitive(old, "test_listing"),
                                           listing, c->n_test);
            if (same) {
                runs[((size_t)s * o->n_seeds + d) * n_cats + ci] = old;
                counts->resumed++;
                const cJSON *sk2, *skipped = cJSON_GetObjectItemCaseSensitive(old, "skipped");
                cJSON_ArrayForEach(sk2, skipped) if (cJSON_IsString(sk2))
                    ds_lines_add(env->errors, "%s", sk2->valuestring);
                cli_progress("eval: %s %s: finished before, skipped (%s)", c->name, tag, path);
            } else {
                if (old) cli_progress("eval: %s %s: %s was made from other files: recomputing",
                                      c->name, tag, path);
                cJSON_Delete(old);
                need[s * o->n_seeds + d] = 1;
                any_needed = 1;
            }
        }
    if (!any_needed) {
        free(need);
        free(listing);
        return;
    }

    cache_budget cb = {(size_t)o->cache_mb << 20, 0};
    cJSON *skipped = cJSON_CreateArray();
    ref_entry *refs = calloc((size_t)c->n_train, sizeof *refs);
    test_entry *e = skipped && refs ? prepare_tests(env, c, mask, o->zeroshot, &cb, skipped)
                                    : NULL;
    if (!e) {
        ds_lines_add(env->errors, "%s: out of memory caching the test images", c->name);
        cJSON_Delete(skipped);
        free(refs);
        free(need);
        free(listing);
        return;
    }
    int first_run = 1;
    for (int s = 0; s < o->n_shots; s++)
        for (int d = 0; d < o->n_seeds; d++) {
            if (!need[s * o->n_seeds + d]) continue;
            int k = o->shots[s], seed = o->seeds[d], first = 0, count = 0;
            char sk[32], tag[64], ftag[64], dir[1200], path[1600];
            rep_shots_key(k, sk, sizeof sk);
            snprintf(tag, sizeof tag, "%s-shot seed %d", sk, seed);
            snprintf(ftag, sizeof ftag, "%sshot_seed%d", sk, seed);
            if (!o->zeroshot) count = ds_select_shots(c, k, seed, &first);
            run_path(o, k, seed, c->name, dir, sizeof dir, path, sizeof path);

            cJSON *run = cJSON_CreateObject();
            if (!run) { counts->failed++; continue; }
            cJSON_AddStringToObject(run, "settings_key", key);
            cJSON_AddStringToObject(run, "version", ad_version());
            cJSON_AddStringToObject(run, "category", c->name);
            cJSON_AddNumberToObject(run, "shots", k);
            cJSON_AddNumberToObject(run, "seed", seed);
            cJSON_AddBoolToObject(run, "mask", mask);
            cJSON_AddBoolToObject(run, "rotate", rotate);
            cJSON_AddItemToObject(run, "references", string_array(c->train_names + first, count));
            cJSON_AddItemToObject(run, "test_listing", string_array(listing, c->n_test));
            cJSON_AddItemToObject(run, "skipped", cJSON_Duplicate(skipped, 1));

            ad_bank *bank = NULL;
            double bank_s = 0;
            if (!o->zeroshot) {
                ad_bank_params bp = ad_bank_default_params();
                bp.resolution = o->resolution;
                bp.rotate = rotate;
                bp.mask_refs = 0; /* A3: the original never masks references by default */
                bp.mask_test = mask;
                bp.knn_k = 1;
                bank = ad_bank_new(env->model, &bp);
                if (!bank) {
                    ds_lines_add(env->errors, "%s %s: %s", c->name, tag, ad_errmsg());
                    cJSON_Delete(run);
                    counts->failed++;
                    continue;
                }
                bank_s = build_bank(env, c, first, count, rotate, bank, refs, &cb, tag);
                if (bank_s < 0) {
                    ad_bank_free(bank);
                    cJSON_Delete(run);
                    counts->failed++;
                    continue;
                }
                cJSON_AddNumberToObject(run, "bank_rows", (double)ad_bank_rows(bank));
            } else {
                cJSON_AddNumberToObject(run, "bank_rows", 0);
            }
            cJSON_AddNumberToObject(run, "bank_seconds", bank_s);
            finish_ctx fc = {env, c, e, ftag, first_run && s == 0 && d == 0, tag};
            double t0 = cli_now();
            int rc = score_run(&fc, bank, run);
            double t_all = cli_now() - t0;
            ad_bank_free(bank);
            if (rc) {
                cJSON_Delete(run);
                counts->failed++;
                continue;
            }
            first_run = 0;
            ad_status st = adi_io_mkdirs(dir);
            if (st == AD_OK) st = rep_write_json(path, run);
            if (st != AD_OK)
                ds_lines_add(env->errors, "%s %s: not stored for resuming: %s", c->name, tag,
                             ad_errmsg());
            runs[((size_t)s * o->n_seeds + d) * n_cats + ci] = run;
            counts->computed++;

            /* progress: the numbers the paper tables show */
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(run, "metrics");
            char line[512];
            int l = snprintf(line, sizeof line, "eval: %s %s: bank %.2f s, %d images %.2f s",
                             c->name, tag, bank_s,
                             cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(run, "images")),
                             t_all);
            for (int q = 0; q < REP_N_METRICS && l > 0 && (size_t)l < sizeof line; q++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, rep_metric_names[q]);
                if (cJSON_IsNumber(v))
                    l += snprintf(line + l, sizeof line - (size_t)l, ", %s %.1f",
                                  rep_metric_names[q], 100 * v->valuedouble);
            }
            cli_progress("%s", line);
        }
    entries_free(e, c->n_test);
    refs_free(refs, c->n_train);
    cJSON_Delete(skipped);
    free(need);
    free(listing);
}

/* ------------------------------------------------------------------------------------------ */
/* outputs                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static int write_outputs(eval_env *env, cJSON *const *runs, const cJSON *settings, char **notes,
                         int n_notes)
{
    const eval_opts *o = env->o;
    int zs_shot = 0, zs_seed = 0;
    char **cats = malloc((size_t)env->ds->n_cats * sizeof *cats);
    if (!cats) return -1;
    for (int i = 0; i < env->ds->n_cats; i++) cats[i] = env->ds->cats[i].name;
    rep_input in = {0};
    in.zeroshot = o->zeroshot;
    in.n_shots = o->zeroshot ? 1 : o->n_shots;
    in.shots = o->zeroshot ? &zs_shot : o->shots;
    in.n_seeds = o->zeroshot ? 1 : o->n_seeds;
    in.seeds = o->zeroshot ? &zs_seed : o->seeds;
    in.n_cats = env->ds->n_cats;
    in.cats = cats;
    in.runs = runs;
    in.settings = settings;
    in.out_dir = o->out;
    in.notes = notes;
    in.n_notes = n_notes;

    size_t pl = strlen(o->out) + 32;
    char *p = malloc(pl);
    int rc = p ? 0 : -1;
    ad_status st = AD_OK;
#define OUTPUT(name, call)                                                                  \
    do {                                                                                   \
        if (rc) break;                                                                     \
        snprintf(p, pl, "%s/%s", o->out, name);                                            \
        st = (call);                                                                       \
        if (st != AD_OK) {                                                                 \
            cli_error(CMD, "%s", ad_errmsg());                                             \
            rc = -1;                                                                       \
        }                                                                                  \
    } while (0)
    cJSON *mj = rep_metrics_json(&in);
    if (!mj) rc = -1;
    OUTPUT("metrics.json", rep_write_json(p, mj));
    cJSON_Delete(mj);
    OUTPUT("metrics.csv", rep_write_metrics_csv(p, &in));
    OUTPUT("scores.csv", rep_write_scores_csv(p, &in));
    OUTPUT("timing.csv", rep_write_timing_csv(p, &in));
    char *md = rc ? NULL : rep_tables_md(&in);
    if (!rc && !md) rc = -1;
    OUTPUT("tables.md", rep_write_text(p, md, strlen(md)));
    OUTPUT("report.html", rep_write_html(p, &in));
#undef OUTPUT
    if (!rc) fputs(md, stdout);
    free(md);
    free(p);
    free(cats);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */

int cmd_eval(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},
        {"weights", required_argument, 0, 'm'},
        {"dataset", required_argument, 0, 'D'},
        {"data", required_argument, 0, 'd'},
        {"out", required_argument, 0, 'o'},
        {"categories", required_argument, 0, 'c'},
        {"shots", required_argument, 0, 'k'},
        {"seeds", required_argument, 0, 's'},
        {"preset", required_argument, 0, 'p'},
        {"resolution", required_argument, 0, 'r'},
        {"segmentation", no_argument, 0, 'S'},
        {"mode", required_argument, 0, 'M'},
        {"threads", required_argument, 0, 't'},
        {"examples", required_argument, 0, 'x'},
        {"cache-mb", required_argument, 0, 'C'},
        {"max-pixels", required_argument, 0, 'P'},
        {"train-fraction", required_argument, 0, 'F'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    eval_opts o;
    memset(&o, 0, sizeof o);
    o.kind = DS_MVTEC;
    o.n_examples = 4;
    o.cache_mb = 4096;
    o.max_pixels = CLI_DEFAULT_MAX_PIXELS;
    o.train_fraction = DS_DEFAULT_TRAIN_FRACTION;
    int have_kind = 0, n_seeds = -1, resolution = -1, ival;
    const char *shots = NULL, *preset = NULL, *mode = "fewshot";
    int rc = 2;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":m:o:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm': o.weights = optarg; break;
        case 'D':
            if (ds_kind_parse(optarg, &o.kind) != AD_OK) {
                cli_error(CMD, "%s", ad_errmsg());
                goto out;
            }
            have_kind = 1;
            break;
        case 'd': o.data = optarg; break;
        case 'o': o.out = optarg; break;
        case 'c':
            if (parse_categories(optarg, &o)) goto out;
            break;
        case 'k': shots = optarg; break;
        case 's':
            if (cli_parse_int(CMD, "--seeds", optarg, 1, MAX_SEEDS, &n_seeds)) goto out;
            break;
        case 'p': preset = optarg; break;
        case 'r':
            if (cli_parse_int(CMD, "--resolution", optarg, 0, 8192, &resolution)) goto out;
            break;
        case 'S': o.segmentation = 1; break;
        case 'M': mode = optarg; break;
        case 't':
            if (cli_parse_int(CMD, "--threads", optarg, 0, 1024, &o.threads)) goto out;
            break;
        case 'x':
            if (cli_parse_int(CMD, "--examples", optarg, 0, 16, &o.n_examples)) goto out;
            break;
        case 'C':
            if (cli_parse_int(CMD, "--cache-mb", optarg, 0, 1 << 30, &ival)) goto out;
            o.cache_mb = ival;
            break;
        case 'P':
            if (cli_parse_max_pixels(CMD, optarg, &o.max_pixels)) goto out;
            break;
        case 'F':
            if (cli_parse_double(CMD, "--train-fraction", optarg, 0.0, 1.0, &o.train_fraction))
                goto out;
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            cli_getopt_error(CMD, ch, argv);
            goto out;
        }
    }
    if (optind < argc) {
        cli_error(CMD, "unexpected argument '%s' (see --help)", argv[optind]);
        goto out;
    }
    if (!o.weights || !have_kind || !o.data || !o.out) {
        cli_error(CMD, "-m WEIGHTS, --dataset, --data and -o OUT_DIR are required (see --help)");
        goto out;
    }
    if (!strcmp(mode, "zeroshot") || !strcmp(mode, "zero-shot")) o.zeroshot = 1;
    else if (strcmp(mode, "fewshot") && strcmp(mode, "few-shot")) {
        cli_error(CMD, "--mode '%s': expected fewshot or zeroshot", mode);
        goto out;
    }
    o.preset = preset ? preset : o.zeroshot ? ZEROSHOT_PRESET : DEFAULT_PRESET;
    o.resolution = resolution >= 0 ? resolution : o.zeroshot ? ZEROSHOT_RESOLUTION
                                                             : DEFAULT_RESOLUTION;
    if (o.resolution > 0 && o.resolution < EVAL_PATCH) {
        /* every image would fail in ad_preprocess: say so once instead of per image */
        cli_error(CMD, "--resolution %d: at least %d (one patch), or 0 for the images as they are",
                  o.resolution, EVAL_PATCH);
        goto out;
    }
    if (o.zeroshot) {
        if (shots || n_seeds >= 0)
            cli_progress("eval: --shots/--seeds do not apply to --mode zeroshot: ignored");
        o.n_shots = 1;
        o.shots[0] = 0;
        o.n_seeds = 1;
        o.seeds[0] = 0;
    } else {
        if (parse_shots(shots ? shots : DEFAULT_SHOTS, &o)) goto out;
        o.n_seeds = n_seeds > 0 ? n_seeds : DEFAULT_SEEDS;
        for (int i = 0; i < o.n_seeds; i++) o.seeds[i] = i;
    }
    {
        int mk, rt;
        if (ad_preset_lookup(o.preset, ds_kind_name(o.kind), "", &mk, &rt) != AD_OK) {
            cli_error(CMD, "--preset: %s", ad_errmsg());
            goto out;
        }
    }
    rc = 1;

    /* from here on: failures of the work (exit 1) */
    ds_dataset ds;
    memset(&ds, 0, sizeof ds);
    ad_model *model = NULL;
    ad_context *ctx = NULL;
    cJSON *settings = NULL, **runs = NULL;
    char key[512];
    ds_lines errors = {0}, warnings = {0};
    run_counts counts = {0, 0, 0};

    ds_options dso = ds_default_options();
    dso.train_fraction = o.train_fraction;
    dso.max_pixels = o.max_pixels;
    if (ds_open_ex(o.kind, o.data, o.cats, o.n_cats, &dso, &ds) != AD_OK) {
        cli_error(CMD, "%s", ad_errmsg());
        goto done;
    }
    model = ad_model_load(o.weights);
    if (!model) {
        cli_error(CMD, "%s", ad_errmsg());
        goto done;
    }
    ad_model_info mi = ad_model_get_info(model);
    settings_key(&o, &mi, key, sizeof key);

    if (adi_io_mkdirs(o.out) != AD_OK) {
        cli_error(CMD, "%s", ad_errmsg());
        goto done;
    }
    {
        size_t pl = strlen(o.out) + 32;
        char *sp = malloc(pl);
        if (!sp) goto done;
        snprintf(sp, pl, "%s/settings.json", o.out);
        if (adi_io_exists(sp)) {
            cJSON *old = read_json(sp);
            const cJSON *ok = cJSON_GetObjectItemCaseSensitive(old, "key");
            if (!old || !cJSON_IsString(ok)) {
                cli_error(CMD, "%s: unreadable; not resuming into %s (use another -o folder)",
                          sp, o.out);
                cJSON_Delete(old);
                free(sp);
                goto done;
            }
            if (strcmp(ok->valuestring, key)) {
                char diff[1024];
                key_diff(ok->valuestring, key, diff, sizeof diff);
                cli_error(CMD, "%s holds results made with other settings (%s): use another -o "
                               "folder or remove it",
                          o.out, diff);
                cJSON_Delete(old);
                free(sp);
                goto done;
            }
            cJSON_Delete(old);
        }
        char fp[32];
        snprintf(fp, sizeof fp, "%016llx", (unsigned long long)mi.fingerprint);
        settings = cJSON_CreateObject();
        cJSON_AddStringToObject(settings, "version", ad_version());
        cJSON_AddStringToObject(settings, "mode", o.zeroshot ? "zeroshot" : "fewshot");
        cJSON_AddStringToObject(settings, "dataset", ds_kind_name(o.kind));
        cJSON_AddStringToObject(settings, "layout",
                                o.kind != DS_VISA ? ds_kind_name(o.kind)
                                : ds.visa_raw     ? "visa raw (split_csv/1cls.csv)"
                                                  : "visa 1cls (prepared)");
        if (o.kind == DS_KSDD || o.kind == DS_MTD)
            cJSON_AddNumberToObject(settings, "train_fraction", o.train_fraction);
        cJSON_AddNumberToObject(settings, "max_pixels", (double)o.max_pixels);
        cJSON_AddStringToObject(settings, "data", ds.root);
        cJSON_AddStringToObject(settings, "weights", o.weights);
        cJSON_AddStringToObject(settings, "model", mi.name ? mi.name : "");
        cJSON_AddStringToObject(settings, "weights_fingerprint", fp);
        cJSON_AddStringToObject(settings, "preset", o.preset);
        cJSON_AddNumberToObject(settings, "resolution", o.resolution);
        cJSON_AddBoolToObject(settings, "segmentation", o.segmentation);
        cJSON_AddNumberToObject(settings, "knn_k", 1);
        cJSON_AddBoolToObject(settings, "mask_refs", 0);
        cJSON *cl = cJSON_AddArrayToObject(settings, "categories");
        for (int i = 0; i < ds.n_cats; i++)
            cJSON_AddItemToArray(cl, cJSON_CreateString(ds.cats[i].name));
        if (!o.zeroshot) {
            cJSON *sl = cJSON_AddArrayToObject(settings, "shots");
            for (int i = 0; i < o.n_shots; i++)
                cJSON_AddItemToArray(sl, cJSON_CreateNumber(o.shots[i]));
            cJSON *dl = cJSON_AddArrayToObject(settings, "seeds");
            for (int i = 0; i < o.n_seeds; i++)
                cJSON_AddItemToArray(dl, cJSON_CreateNumber(o.seeds[i]));
        }
        cJSON_AddNumberToObject(settings, "threads", adi_threads_resolve(o.threads));
        cJSON_AddStringToObject(settings, "key", key);
        ad_status st = rep_write_json(sp, settings);
        free(sp);
        if (st != AD_OK) {
            cli_error(CMD, "%s", ad_errmsg());
            goto done;
        }
    }

    ad_context_params cp = ad_context_default_params();
    cp.n_threads = o.threads;
    ctx = ad_context_new(model, cp);
    if (!ctx) {
        cli_error(CMD, "%s", ad_errmsg());
        goto done;
    }
    runs = calloc((size_t)o.n_shots * (size_t)o.n_seeds * (size_t)ds.n_cats, sizeof *runs);
    if (!runs) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    for (int i = 0; i < ds.warnings.n; i++) ds_lines_add(&warnings, "%s", ds.warnings.v[i]);
    for (int i = 0; i < ds.errors.n; i++) ds_lines_add(&errors, "%s", ds.errors.v[i]);
    cli_progress("eval: %s (%s), %d categor%s, %s %s, preset %s, resolution %d, %d thread(s)",
                 ds.root, ds_kind_name(o.kind), ds.n_cats, ds.n_cats == 1 ? "y" : "ies",
                 mi.name ? mi.name : "model", o.zeroshot ? "zero-shot" : "few-shot", o.preset,
                 o.resolution, ad_context_threads(ctx));

    eval_env env = {&o, model, ctx, &ds, &errors, &warnings};
    for (int ci = 0; ci < ds.n_cats; ci++) eval_category(&env, ci, key, runs, &counts);

    /* summary: what was left out, for the report and stderr */
    char **notes = malloc((size_t)(errors.n + warnings.n + 1) * sizeof *notes);
    int n_notes = 0;
    if (notes) {
        for (int i = 0; i < errors.n; i++) notes[n_notes++] = errors.v[i];
        for (int i = 0; i < warnings.n; i++) notes[n_notes++] = warnings.v[i];
    }
    int wrc = write_outputs(&env, runs, settings, notes, n_notes);
    free(notes);
    fprintf(stderr, "eval: %d run(s) computed, %d resumed, %d failed; results in %s\n",
            counts.computed, counts.resumed, counts.failed, o.out);
    if (warnings.n) {
        fprintf(stderr, "eval: %d warning(s):\n", warnings.n);
        for (int i = 0; i < warnings.n; i++) fprintf(stderr, "  %s\n", warnings.v[i]);
    }
    if (errors.n) {
        fprintf(stderr, "eval: %d problem(s), the results leave these out:\n", errors.n);
        for (int i = 0; i < errors.n; i++) fprintf(stderr, "  %s\n", errors.v[i]);
    }
    rc = (wrc || errors.n || counts.failed || counts.computed + counts.resumed == 0) ? 1 : 0;

done:
    if (runs) {
        size_t total = (size_t)o.n_shots * (size_t)o.n_seeds * (size_t)ds.n_cats;
        for (size_t i = 0; i < total; i++) cJSON_Delete(runs[i]);
        free(runs);
    }
    cJSON_Delete(settings);
    ad_context_free(ctx);
    ad_model_free(model);
    ds_free(&ds);
    ds_lines_free(&errors);
    ds_lines_free(&warnings);
out:
    for (int i = 0; i < o.n_cats; i++) free(o.cats[i]);
    free(o.cats);
    return rc;
}
