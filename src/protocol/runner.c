/* ad_eval_run: the paper's benchmark protocol over the units of a plan (protocol.h).
 *
 * For every category: references = the original's block of sorted train files per (shots, seed)
 * (docs/design.md), a memory bank from them, every test image scored, image metrics (+ pixel
 * metrics with segmentation) as the original's evaluation. Test-image features (and their PCA
 * masks) depend only on the image, the weights and the resolution, so they are extracted once
 * per category and reused by every unit; only the nearest-neighbour query is repeated. Likewise
 * the features of each reference (and its rotations): the reference blocks of different shots
 * overlap (1-, 2-, 4-, 8- and 16-shot over seeds 0..2 use 48 distinct images 93 times). Each
 * finished unit is stored in OUT/runs/ as it completes and is not recomputed when the protocol
 * is run again with the same settings. */
#include "protocol/protocol.h"

#include "detect/detect.h"
#include "image/image.h"
#include "io/io.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define EXAMPLE_MAX_SIDE 256
#define MAX_EXAMPLES 16
/* DINOv2 patch size: a smaller resolution leaves no patch (ad_preprocess refuses it) */
#define EVAL_PATCH 14

ad_eval_params ad_eval_default_params(void)
{
    ad_eval_params p;
    memset(&p, 0, sizeof p);
    static const int shots[] = {1, 2, 4, 8, 16};
    p.n_shots = 5;
    memcpy(p.shots, shots, sizeof shots);
    p.n_seeds = 3;
    p.preset = NULL;           /* "agnostic", zero-shot "masking_only" */
    p.resolution = -1;         /* 448, zero-shot 672 */
    p.n_examples = 4;
    p.cache_bytes = (size_t)4096 << 20;
    p.max_pixels = 40000000;
    p.shard_count = 1;
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* progress and problems                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    const ad_eval_params *p;
    const char *preset;
    int resolution;
    const ad_model *model;
    ad_context *ctx;
    const ds_dataset *ds;
    ad_eval_results *r;
    int cancelled;
} eval_env;

static void progress(eval_env *env, ad_progress_kind kind, const char *text, int done, int total)
{
    if (!env->p->progress) return;
    ad_progress pg = {kind, text, done, total};
    env->p->progress(env->p->user, &pg);
}

static void line(eval_env *env, const char *fmt, ...) AD_PRINTF(2, 3);
static void line(eval_env *env, const char *fmt, ...)
{
    if (!env->p->progress) return;
    char buf[1600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    progress(env, AD_PROGRESS_LINE, buf, 0, 0);
}

static void run_error(eval_env *env, const char *fmt, ...) AD_PRINTF(2, 3);
static void run_error(eval_env *env, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (adi_strlist_find(&env->r->run_errors, buf) < 0 &&
        adi_strlist_push(&env->r->run_errors, buf))
        env->r->run_errors.dropped++;
}

/* The cancel callback, asked once per image; once it says stop, the run winds down. */
static int stop(eval_env *env)
{
    if (!env->cancelled && env->p->cancel && env->p->cancel(env->p->user)) env->cancelled = 1;
    return env->cancelled;
}

/* ------------------------------------------------------------------------------------------ */
/* the per-category caches                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    int ok;             /* decoded and its features computed */
    int w, h;           /* decoded size: the anomaly map's size */
    int label;          /* 0 normal, 1 anomalous (any ground-truth pixel > 0) */
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

/* cache_bytes, shared by the test and reference features of the category being run. */
typedef struct {
    size_t budget, used;
} cache_budget;

static size_t features_bytes(const ad_features *f)
{
    return ((size_t)f->grid_h * (size_t)f->grid_w + 1) * (size_t)f->dim * sizeof(float);
}

static void entries_free(test_entry *e, int n)
{
    if (!e) return;
    for (int i = 0; i < n; i++) {
        adi_free(e[i].gt);
        ad_features_free(&e[i].f);
        adi_free(e[i].keep);
    }
    adi_free(e);
}

static ad_status extract_one(eval_env *env, const char *path, int mask, ad_features *f,
                             uint8_t **keep, int *w, int *h)
{
    ad_image img = {0};
    ad_status st = adi_io_read_image_max(path, env->p->max_pixels, &img);
    if (st != AD_OK) return st;
    *w = img.width;
    *h = img.height;
    st = ad_extract_image(env->ctx, &img, env->resolution, f);
    ad_image_free(&img);
    /* decoding errors name the file already; these do not, and the summary must say which */
    if (st != AD_OK) adi_error_prefix("%s", path);
    if (st != AD_OK || !mask || !keep) return st;
    size_t n = (size_t)f->grid_h * (size_t)f->grid_w;
    uint8_t *k = adi_malloc(n ? n : 1);
    if (!k) {
        ad_features_free(f);
        return adi_fail(AD_E_NOMEM, "%s: out of memory", path);
    }
    st = ad_mask_pca(f, k);
    if (st != AD_OK) {
        adi_error_prefix("%s", path);
        adi_free(k);
        ad_features_free(f);
        return st;
    }
    *keep = k;
    return AD_OK;
}

/* A problem of the category's test images: every unit of the category carries it. */
static void test_problem(eval_env *env, adi_strlist *skipped, const char *fmt, ...)
    AD_PRINTF(3, 4);
static void test_problem(eval_env *env, adi_strlist *skipped, const char *fmt, ...)
{
    char buf[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    run_error(env, "%s", buf);
    if (adi_strlist_push(skipped, buf)) skipped->dropped++;
}

/* Reads the ground truth: label, and the mask itself when the pixel metrics need it. */
static void load_ground_truth(eval_env *env, const ds_category *c, int i, test_entry *e,
                              adi_strlist *skipped)
{
    const ds_test_item *it = &c->test[i];
    e->label = it->defect;
    e->pixel_ok = !it->defect; /* a good image is all normal */
    if (!it->defect || !it->mask_path) return;
    uint8_t *m = NULL;
    int mw = 0, mh = 0;
    if (adi_io_read_gt_mask(it->mask_path, env->p->max_pixels, &m, &mw, &mh) != AD_OK) {
        test_problem(env, skipped,
                     "%s: ground truth unreadable (%s): labelled by its folder, left out of the "
                     "pixel metrics",
                     c->name, ad_errmsg());
        return;
    }
    size_t n = (size_t)mw * (size_t)mh;
    int any = 0;
    for (size_t k = 0; k < n && !any; k++) any = m[k] != 0;
    e->label = any;
    if (env->p->segmentation) {
        if (mw != e->w || mh != e->h) {
            test_problem(env, skipped,
                         "%s: ground truth %s is %d x %d but the image is %d x %d: left out of "
                         "the pixel metrics",
                         c->name, it->mask_path, mw, mh, e->w, e->h);
        } else {
            e->pixel_ok = 1;
            if (any) { e->gt = m; m = NULL; }
        }
    }
    adi_free(m);
}

/* Decodes every test image once: size, ground truth, features and mask (cached up to the
 * memory budget; zero-shot keeps them all, each image being compared with every other).
 * Unreadable images are left out (listed in `skipped`). NULL: out of memory or cancelled. */
static test_entry *prepare_tests(eval_env *env, const ds_category *c, int mask, int cache_all,
                                 cache_budget *cb, adi_strlist *skipped)
{
    test_entry *e = adi_calloc((size_t)(c->n_test ? c->n_test : 1), sizeof *e);
    if (!e) return NULL;
    int uncached = 0;
    char label[300];
    snprintf(label, sizeof label, "eval: %s: test features", c->name);
    progress(env, AD_PROGRESS_BEGIN, label, 0, c->n_test);
    for (int i = 0; i < c->n_test; i++) {
        progress(env, AD_PROGRESS_STEP, label, i, c->n_test);
        if (stop(env)) {
            progress(env, AD_PROGRESS_END, label, i, c->n_test);
            entries_free(e, c->n_test);
            return NULL;
        }
        double t0 = adi_now();
        ad_status st = extract_one(env, c->test[i].path, mask, &e[i].f, &e[i].keep, &e[i].w,
                                   &e[i].h);
        if (st != AD_OK) {
            test_problem(env, skipped, "%s: test image left out: %s", c->name, ad_errmsg());
            continue;
        }
        e[i].extract_s = adi_now() - t0;
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
    }
    progress(env, AD_PROGRESS_STEP, label, c->n_test, c->n_test);
    progress(env, AD_PROGRESS_END, label, c->n_test, c->n_test);
    if (uncached)
        line(env, "eval: %s: %d test images over the --cache-mb budget: their features are "
                  "recomputed for every run",
             c->name, uncached);
    if (cache_all && cb->used > cb->budget)
        line(env, "eval: %s: zero-shot holds the features of all %d test images (%zu MB, over "
                  "the %zu MB of --cache-mb): each image is compared with every other",
             c->name, c->n_test, cb->used >> 20, cb->budget >> 20);
    return e;
}

/* ------------------------------------------------------------------------------------------ */
/* one unit                                                                                    */
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

/* What scoring a unit needs besides the bank. */
typedef struct {
    eval_env *env;
    const ds_category *c;
    test_entry *e;
    pr_unit *pu;
    const char *run_tag;      /* "1shot_seed0" */
    int want_examples;
    const char *label;        /* "1-shot seed 0", for progress lines */
} finish_ctx;

/* A problem of this unit: in its record, so that a resumed run reports it again. */
static void run_problem(finish_ctx *fc, const char *what)
{
    ad_eval_unit *u = &fc->pu->u;
    char buf[1400];
    snprintf(buf, sizeof buf, "%s %s: %s", fc->c->name, fc->run_tag, what);
    char **v = adi_realloc(u->skipped, (size_t)(u->n_skipped + 1) * sizeof *v);
    if (v) {
        u->skipped = v;
        if ((v[u->n_skipped] = adi_strdup(buf))) u->n_skipped++;
        else run_error(fc->env, "%s", buf);
    } else {
        run_error(fc->env, "%s", buf);
    }
}

/* Image metrics from scores and labels; fills the unit's image list. 1 computed, 0 not (a
 * problem recorded), -1 out of memory. */
static int finish_image_metrics(finish_ctx *fc, const double *scores, const double *seconds)
{
    const ds_category *c = fc->c;
    ad_eval_unit *u = &fc->pu->u;
    int n = 0;
    for (int i = 0; i < c->n_test; i++) n += fc->e[i].ok;
    int *labels = adi_malloc((size_t)(n ? n : 1) * sizeof *labels);
    double *sc = adi_malloc((size_t)(n ? n : 1) * sizeof *sc);
    u->images = adi_calloc((size_t)(n ? n : 1), sizeof *u->images);
    if (!labels || !sc || !u->images) {
        adi_free(labels);
        adi_free(sc);
        return -1;
    }
    for (int i = 0; i < c->n_test; i++) {
        if (!fc->e[i].ok) continue;
        ad_eval_image *im = &u->images[u->n_images];
        labels[u->n_images] = im->label = fc->e[i].label;
        sc[u->n_images] = im->score = scores[i];
        im->seconds = seconds[i];
        if (!(im->image = adi_strdup(c->test[i].name))) {
            adi_free(labels);
            adi_free(sc);
            return -1;
        }
        u->n_images++;
    }
    ad_image_metrics im;
    ad_status st = ad_metrics_image(labels, sc, (size_t)n, &im);
    adi_free(labels);
    adi_free(sc);
    if (st != AD_OK) {
        char what[1200];
        snprintf(what, sizeof what, "image metrics not computed: %s", ad_errmsg());
        run_problem(fc, what);
        return 0;
    }
    u->metrics[AD_METRIC_IMAGE_AUROC] = im.auroc;
    u->metrics[AD_METRIC_IMAGE_AP] = im.ap;
    u->metrics[AD_METRIC_IMAGE_F1MAX] = im.f1max;
    u->metrics_present |= 7u;
    return 1;
}

/* Example images for the report: the test image, its ground truth (white = anomalous; black when
 * there is none) and the anomaly map on a fixed colour scale 0..vmax (values above saturate;
 * the colour map of predict's overlays), each shrunk (box average) to fit max_side, written as
 * PREFIX_image.png, PREFIX_gt.png, PREFIX_map.png. mask may be NULL. */
static ad_status write_example(const char *prefix, const uint8_t *rgb, const uint8_t *mask,
                               const float *map, int w, int h, float vmax, int max_side)
{
    int ow = w, oh = h;
    if (w > max_side || h > max_side) {
        double s = (double)(w > h ? w : h) / max_side;
        ow = (int)lround(w / s);
        oh = (int)lround(h / s);
        if (ow < 1) ow = 1;
        if (oh < 1) oh = 1;
    }
    size_t npx = (size_t)ow * (size_t)oh;
    uint8_t *im = adi_malloc(npx * 3), *gt = adi_malloc(npx), *hm = adi_malloc(npx * 3);
    if (!im || !gt || !hm) {
        adi_free(im), adi_free(gt), adi_free(hm);
        return adi_fail(AD_E_NOMEM, "example image: out of memory");
    }
    if (!(vmax > 0)) vmax = 1;
    for (int oy = 0; oy < oh; oy++) {
        int y0 = (int)((long)oy * h / oh), y1 = (int)((long)(oy + 1) * h / oh);
        if (y1 <= y0) y1 = y0 + 1;
        for (int ox = 0; ox < ow; ox++) {
            int x0 = (int)((long)ox * w / ow), x1 = (int)((long)(ox + 1) * w / ow);
            if (x1 <= x0) x1 = x0 + 1;
            double acc[3] = {0, 0, 0}, am = 0, av = 0;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++) {
                    size_t i = (size_t)y * (size_t)w + (size_t)x;
                    for (int c = 0; c < 3; c++) acc[c] += rgb[3 * i + c];
                    am += mask && mask[i] ? 255 : 0;
                    av += map[i];
                }
            double n = (double)(y1 - y0) * (x1 - x0);
            size_t o = (size_t)oy * (size_t)ow + (size_t)ox;
            for (int c = 0; c < 3; c++) im[3 * o + c] = (uint8_t)lround(acc[c] / n);
            gt[o] = (uint8_t)lround(am / n);
            adi_colormap_inferno9((float)(av / n / vmax), hm + 3 * o);
        }
    }
    char *path = adi_malloc(strlen(prefix) + 16);
    ad_status st = path ? AD_OK : AD_E_NOMEM;
    if (st == AD_OK) {
        sprintf(path, "%s_image.png", prefix);
        st = adi_io_write_png_rgb(path, im, ow, oh);
    }
    if (st == AD_OK) {
        sprintf(path, "%s_gt.png", prefix);
        st = adi_io_write_png_gray(path, gt, ow, oh);
    }
    if (st == AD_OK) {
        sprintf(path, "%s_map.png", prefix);
        st = adi_io_write_png_rgb(path, hm, ow, oh);
    }
    adi_free(path);
    adi_free(im), adi_free(gt), adi_free(hm);
    return st;
}

static void write_examples(finish_ctx *fc, example_slot *ex, int n_ex, const double *scores)
{
    eval_env *env = fc->env;
    ad_eval_unit *u = &fc->pu->u;
    if (!n_ex || !env->p->out_dir) return;
    float vmax = 0;
    for (int k = 0; k < n_ex; k++) {
        const test_entry *e = &fc->e[ex[k].idx];
        if (!ex[k].map) continue;
        for (size_t p = 0; p < (size_t)e->w * (size_t)e->h; p++)
            if (ex[k].map[p] > vmax) vmax = ex[k].map[p];
    }
    size_t dl = strlen(env->p->out_dir) + strlen(fc->c->name) + 32;
    char *dir = adi_malloc(dl);
    if (!dir) return;
    snprintf(dir, dl, "%s/examples/%s", env->p->out_dir, fc->c->name);
    if (adi_io_mkdirs(dir) != AD_OK) {
        run_error(env, "report examples: %s", ad_errmsg());
        adi_free(dir);
        return;
    }
    if (!(u->examples = adi_calloc((size_t)n_ex, sizeof *u->examples)) ||
        !(fc->pu->base_dir = adi_strdup(env->p->out_dir))) {
        run_error(env, "report examples: out of memory");
        adi_free(dir);
        return;
    }
    u->examples_vmax = vmax;
    for (int k = 0; k < n_ex; k++) {
        int i = ex[k].idx;
        const test_entry *e = &fc->e[i];
        if (!ex[k].map) continue;
        ad_image img = {0};
        if (adi_io_read_image_max(fc->c->test[i].path, env->p->max_pixels, &img) != AD_OK ||
            img.width != e->w || img.height != e->h) {
            ad_image_free(&img);
            continue;
        }
        /* without segmentation the ground truth was only read for the label */
        uint8_t *gt = NULL;
        int gw = 0, gh = 0;
        if (!e->gt && fc->c->test[i].mask_path &&
            (adi_io_read_gt_mask(fc->c->test[i].mask_path, env->p->max_pixels, &gt, &gw, &gh) !=
                 AD_OK ||
             gw != e->w || gh != e->h)) {
            adi_free(gt);
            gt = NULL;
        }
        char prefix[1400], rel[3][600];
        snprintf(prefix, sizeof prefix, "%s/%s_%d", dir, fc->run_tag, k);
        ad_status st = write_example(prefix, img.data, e->gt ? e->gt : gt, ex[k].map, e->w, e->h,
                                     vmax, EXAMPLE_MAX_SIDE);
        /* a defect image whose ground truth is missing, unreadable or of another size: its
         * black "ground truth" would claim there is no defect, so the report shows none */
        int gt_known = !fc->c->test[i].defect || e->gt || gt;
        adi_free(gt);
        ad_image_free(&img);
        if (st != AD_OK) {
            run_error(env, "report examples: %s", ad_errmsg());
            continue;
        }
        static const char *const kinds[3] = {"image", "gt", "map"};
        for (int t = 0; t < 3; t++) {
            if (t == 1 && !gt_known) rel[t][0] = 0;
            else snprintf(rel[t], sizeof rel[t], "examples/%s/%s_%d_%s.png", fc->c->name,
                          fc->run_tag, k, kinds[t]);
        }
        ad_eval_example *x = &u->examples[u->n_examples];
        x->label = e->label;
        x->score = scores[i];
        u->n_examples++;
        if (!(x->image = adi_strdup(fc->c->test[i].name)) || !(x->file_image = adi_strdup(rel[0])) ||
            !(x->file_gt = adi_strdup(rel[1])) || !(x->file_map = adi_strdup(rel[2])))
            run_error(env, "report examples: out of memory");
    }
    adi_free(dir);
}

/* Scores every test image against `bank` (few-shot) or all others (zero-shot, bank NULL) and
 * fills the unit. Returns 0, or -1 when the unit failed (error recorded) or was cancelled. */
static int score_run(finish_ctx *fc, ad_bank *bank)
{
    eval_env *env = fc->env;
    const ds_category *c = fc->c;
    test_entry *e = fc->e;
    ad_eval_unit *u = &fc->pu->u;
    int n = c->n_test, rc = -1;
    double *scores = adi_calloc((size_t)(n ? n : 1), sizeof *scores);
    double *seconds = adi_calloc((size_t)(n ? n : 1), sizeof *seconds);
    double **grids = adi_calloc((size_t)(n ? n : 1), sizeof *grids);
    example_slot ex[MAX_EXAMPLES];
    int ex_idx[MAX_EXAMPLES], n_ex = 0;
    if (fc->want_examples && env->p->out_dir)
        n_ex = choose_examples(c, e, env->p->n_examples > MAX_EXAMPLES ? MAX_EXAMPLES
                                                                        : env->p->n_examples,
                               ex_idx);
    for (int k = 0; k < n_ex; k++) ex[k] = (example_slot){ex_idx[k], NULL};
    ad_pixel_eval *pe = NULL;
    char label[300];
    if (!scores || !seconds || !grids) goto done;
    for (int i = 0; i < n; i++) {
        if (!e[i].ok) continue;
        grids[i] = adi_malloc((size_t)e[i].gh * (size_t)e[i].gw * sizeof **grids);
        if (!grids[i]) goto done;
    }

    if (bank) {
        snprintf(label, sizeof label, "eval: %s %s: search", c->name, fc->label);
        progress(env, AD_PROGRESS_BEGIN, label, 0, n);
        for (int i = 0; i < n; i++) {
            progress(env, AD_PROGRESS_STEP, label, i, n);
            if (stop(env)) {
                progress(env, AD_PROGRESS_END, label, i, n);
                goto done;
            }
            if (!e[i].ok) continue;
            double t0 = adi_now();
            ad_features tmp = {0};
            const ad_features *f = &e[i].f;
            if (!e[i].f.patch) { /* over the cache budget: extract again */
                int w, h;
                if (extract_one(env, c->test[i].path, 0, &tmp, NULL, &w, &h) != AD_OK) {
                    run_error(env, "%s %s: %s", c->name, fc->run_tag, ad_errmsg());
                    progress(env, AD_PROGRESS_END, label, i, n);
                    goto done;
                }
                f = &tmp;
            }
            ad_status st = ad_bank_query(bank, env->ctx, f, e[i].keep, -1, grids[i]);
            ad_features_free(&tmp);
            if (st != AD_OK) {
                run_error(env, "%s %s: %s: %s", c->name, fc->run_tag, c->test[i].path,
                          ad_errmsg());
                progress(env, AD_PROGRESS_END, label, i, n);
                goto done;
            }
            scores[i] = ad_score_top1p(grids[i], (size_t)e[i].gh * (size_t)e[i].gw);
            /* the per-image time of the original: features + search (features measured once) */
            seconds[i] = (e[i].f.patch ? e[i].extract_s : 0) + (adi_now() - t0);
        }
        progress(env, AD_PROGRESS_STEP, label, n, n);
        progress(env, AD_PROGRESS_END, label, n, n);
    } else {
        int m = 0;
        for (int i = 0; i < n; i++) m += e[i].ok;
        ad_features *feats = adi_calloc((size_t)(m ? m : 1), sizeof *feats);
        const uint8_t **keeps = adi_calloc((size_t)(m ? m : 1), sizeof *keeps);
        double **g = adi_calloc((size_t)(m ? m : 1), sizeof *g);
        if (!feats || !keeps || !g) {
            adi_free(feats), adi_free(keeps), adi_free(g);
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
        line(env, "eval: %s: zero-shot search over %d images ...", c->name, m);
        double t0 = adi_now();
        ad_status st = ad_zeroshot(env->ctx, feats, (const uint8_t *const *)keeps, m,
                                   (double *const *)g);
        double dt = adi_now() - t0;
        adi_free(feats), adi_free(keeps), adi_free(g);
        if (st != AD_OK) {
            run_error(env, "%s zero-shot: %s", c->name, ad_errmsg());
            goto done;
        }
        for (int i = 0; i < n; i++) {
            if (!e[i].ok) continue;
            scores[i] = ad_score_top1p(grids[i], (size_t)e[i].gh * (size_t)e[i].gw);
            seconds[i] = e[i].extract_s + dt / m;
        }
    }

    if (env->p->segmentation) {
        pe = ad_pixel_eval_new();
        if (!pe) goto done;
        snprintf(label, sizeof label, "eval: %s %s: pixel maps", c->name, fc->label);
        progress(env, AD_PROGRESS_BEGIN, label, 0, n);
        for (int i = 0; i < n; i++) {
            progress(env, AD_PROGRESS_STEP, label, i, n);
            if (!e[i].ok || !e[i].pixel_ok) continue;
            float *map = adi_alloc((size_t)e[i].w * (size_t)e[i].h, sizeof *map);
            if (!map) {
                progress(env, AD_PROGRESS_END, label, i, n);
                goto done;
            }
            ad_status st = ad_anomaly_map(grids[i], e[i].gh, e[i].gw, e[i].w, e[i].h, map);
            if (st == AD_OK) st = ad_pixel_eval_add(pe, map, e[i].gt, e[i].w, e[i].h);
            int kept = 0;
            for (int k = 0; k < n_ex && st == AD_OK; k++)
                if (ex[k].idx == i) { ex[k].map = map; kept = 1; }
            if (!kept) adi_free(map);
            if (st != AD_OK) {
                run_error(env, "%s %s: %s: %s", c->name, fc->run_tag, c->test[i].path,
                          ad_errmsg());
                progress(env, AD_PROGRESS_END, label, i, n);
                goto done;
            }
        }
        progress(env, AD_PROGRESS_STEP, label, n, n);
        progress(env, AD_PROGRESS_END, label, n, n);
    }
    /* examples need maps even without segmentation */
    for (int k = 0; k < n_ex; k++) {
        int i = ex[k].idx;
        if (ex[k].map) continue;
        float *map = adi_alloc((size_t)e[i].w * (size_t)e[i].h, sizeof *map);
        if (map && ad_anomaly_map(grids[i], e[i].gh, e[i].gw, e[i].w, e[i].h, map) == AD_OK)
            ex[k].map = map;
        else adi_free(map);
    }

    if (finish_image_metrics(fc, scores, seconds) < 0) goto done;
    if (pe) {
        line(env, "eval: %s %s: pixel metrics (AU-PRO) ...", c->name, fc->label);
        ad_pixel_metrics pm;
        if (ad_pixel_eval_finish(pe, &pm) == AD_OK) {
            u->metrics[AD_METRIC_PIXEL_AUROC] = pm.auroc;
            u->metrics[AD_METRIC_PIXEL_F1MAX] = pm.f1max;
            u->metrics[AD_METRIC_PIXEL_AUPRO] = pm.aupro;
            u->metrics_present |= 7u << 3;
        } else {
            char what[1200];
            snprintf(what, sizeof what, "pixel metrics not computed: %s", ad_errmsg());
            run_problem(fc, what);
        }
    }
    write_examples(fc, ex, n_ex, scores);
    rc = 0;
done:
    if (rc && !env->cancelled && (!scores || !seconds || !grids || ad_last_status() == AD_E_NOMEM))
        run_error(env, "%s %s: out of memory", c->name, fc->run_tag);
    for (int k = 0; k < n_ex; k++) adi_free(ex[k].map);
    ad_pixel_eval_free(pe);
    if (grids)
        for (int i = 0; i < n; i++) adi_free(grids[i]);
    adi_free(grids);
    adi_free(scores);
    adi_free(seconds);
    return rc;
}

/* The views of one reference exactly as ad_bank_add_image makes them: the image itself, then
 * (rotating) ad_rotate by 45, 90, ..., 315 degrees, each through ad_extract_image (the same
 * rotation code and step, detect.h). */
static ad_status reference_views(eval_env *env, const char *path, int rotate, ad_features **out,
                                 int *n_out)
{
    ad_image img = {0};
    ad_status st = adi_io_read_image_max(path, env->p->max_pixels, &img);
    if (st != AD_OK) return st;
    int nv = rotate ? DT_ROT_COUNT : 1;
    ad_features *v = adi_calloc((size_t)nv, sizeof *v);
    if (!v) {
        ad_image_free(&img);
        return adi_fail(AD_E_NOMEM, "%s: out of memory", path);
    }
    for (int a = 0; a < nv && st == AD_OK; a++) {
        st = dt_reference_view(env->ctx, &img, a, env->resolution, &v[a]);
        if (st != AD_OK) adi_error_prefix("%s (rotation %g deg)", path, DT_ROT_STEP_DEG * a);
    }
    ad_image_free(&img);
    if (st != AD_OK) {
        for (int a = 0; a < nv; a++) ad_features_free(&v[a]);
        adi_free(v);
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
        adi_free(r[i].views);
    }
    adi_free(r);
}

/* Builds the bank from the unit's references (features computed once per category, kept
 * within the budget). Returns the seconds a bank built from scratch takes - extraction (measured
 * when first computed) plus insertion - or -1 on failure (error recorded) or cancel. */
static double build_bank(eval_env *env, const ds_category *c, int first, int count, int rotate,
                         ad_bank *bank, ref_entry *refs, cache_budget *cb, const char *tag)
{
    double total = 0;
    char label[300];
    snprintf(label, sizeof label, "eval: %s %s: reference features + bank", c->name, tag);
    progress(env, AD_PROGRESS_BEGIN, label, 0, count);
    for (int j = 0; j < count; j++) {
        progress(env, AD_PROGRESS_STEP, label, j, count);
        if (stop(env)) {
            progress(env, AD_PROGRESS_END, label, j, count);
            return -1;
        }
        ref_entry *r = &refs[first + j];
        ad_features *views = r->views;
        int nv = r->n_views;
        double extract = r->seconds, t0 = adi_now();
        ad_status st = AD_OK;
        if (!views) {
            st = reference_views(env, c->train[first + j], rotate, &views, &nv);
            extract = adi_now() - t0;
        }
        double t1 = adi_now();
        for (int a = 0; a < nv && st == AD_OK; a++)
            st = ad_bank_add_features(bank, &views[a], NULL, j); /* references are never masked */
        total += extract + (adi_now() - t1);
        if (views && !r->views) { /* keep it for the next units if it fits */
            size_t bytes = 0;
            for (int a = 0; a < nv; a++) bytes += features_bytes(&views[a]);
            if (st == AD_OK && cb->used + bytes <= cb->budget) {
                r->views = views;
                r->n_views = nv;
                r->seconds = extract;
                cb->used += bytes;
            } else {
                for (int a = 0; a < nv; a++) ad_features_free(&views[a]);
                adi_free(views);
            }
        }
        if (st != AD_OK) {
            /* the message names the file (reference_views / adi_io_read_image prefix it) */
            progress(env, AD_PROGRESS_END, label, j, count);
            run_error(env, "%s %s: reference %s (run skipped)", c->name, tag, ad_errmsg());
            return -1;
        }
    }
    progress(env, AD_PROGRESS_STEP, label, count, count);
    progress(env, AD_PROGRESS_END, label, count, count);
    return total;
}

/* ------------------------------------------------------------------------------------------ */
/* category loop                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* Resumes what OUT/runs/ holds of the category's units; marks the rest to compute. Returns how
 * many are to compute here. */
static int resume_units(eval_env *env, const ds_category *c, pr_unit *units, int n_units,
                        char **listing, int *need)
{
    ad_eval_results *r = env->r;
    int any = 0;
    for (int i = 0; i < n_units; i++) {
        pr_unit *pu = &units[i];
        ad_eval_unit *u = &pu->u;
        need[i] = 0;
        if (pu->shard != env->p->shard_index) continue; /* another shard's */
        char sk[32], tag[64], dir[1200], path[1600];
        pr_shots_key(u->shots, sk, sizeof sk);
        snprintf(tag, sizeof tag, "%s-shot seed %d", sk, u->seed);
        cJSON *old = NULL;
        if (env->p->out_dir) {
            pr_run_path(env->p->out_dir, u->shots, u->seed, c->name, dir, sizeof dir, path,
                        sizeof path);
            old = adi_io_exists(path) ? pr_read_json(path) : NULL;
        }
        const char *why = NULL;
        if (old && pr_record_from_json(pu, old, r->key, u->references, u->n_references, listing,
                                       c->n_test, &why) == 0 &&
            (!(pu->base_dir = adi_strdup(env->p->out_dir)) ? (pr_unit_clear(pu), 0) : 1)) {
            u->state = AD_UNIT_RESUMED;
            line(env, "eval: %s %s: finished before, skipped (%s)", c->name, tag, path);
        } else {
            if (old)
                line(env, "eval: %s %s: %s was %s: recomputing", c->name, tag, path,
                     why ? why : "unreadable");
            need[i] = 1;
            any++;
        }
        cJSON_Delete(old);
    }
    return any;
}

static void eval_category(eval_env *env, int ci, pr_unit *units, int n_units)
{
    const ad_eval_params *p = env->p;
    ad_eval_results *r = env->r;
    const ds_category *c = &env->ds->cats[ci];
    if (!n_units) return;
    int mask = units[0].u.mask, rotate = units[0].u.rotate;
    char **listing = adi_malloc((size_t)(c->n_test ? c->n_test : 1) * sizeof *listing);
    int *need = adi_calloc((size_t)n_units, sizeof *need);
    if (!listing || !need) {
        run_error(env, "%s: out of memory planning its runs: category left out", c->name);
        adi_free(listing);
        adi_free(need);
        return;
    }
    for (int i = 0; i < c->n_test; i++) listing[i] = c->test[i].name;
    int mine = 0;
    for (int i = 0; i < n_units; i++) mine += units[i].shard == p->shard_index;
    if (!mine) goto out;
    if (r->zeroshot)
        line(env, "eval: %s: %d test images (zero-shot: no references), mask %s", c->name,
             c->n_test, mask ? "on" : "off");
    else
        line(env, "eval: %s: %d train/good images, %d test images, mask %s, rotate %s", c->name,
             c->n_train, c->n_test, mask ? "on" : "off", rotate ? "on" : "off");
    if (!resume_units(env, c, units, n_units, listing, need)) goto out;

    cache_budget cb = {p->cache_bytes, 0};
    adi_strlist skipped = {0};
    ref_entry *refs = adi_calloc((size_t)(c->n_train ? c->n_train : 1), sizeof *refs);
    test_entry *e = refs ? prepare_tests(env, c, mask, r->zeroshot, &cb, &skipped) : NULL;
    if (!e) {
        if (!env->cancelled)
            run_error(env, "%s: out of memory caching the test images: category left out",
                      c->name);
        for (int i = 0; i < n_units; i++)
            if (need[i] && !env->cancelled) units[i].u.state = AD_UNIT_FAILED;
        adi_strlist_free(&skipped);
        adi_free(refs);
        goto out;
    }
    int first_run = 1;
    for (int i = 0; i < n_units && !env->cancelled; i++) {
        if (!need[i]) continue;
        pr_unit *pu = &units[i];
        ad_eval_unit *u = &pu->u;
        char sk[32], tag[64], ftag[64], dir[1200], path[1600];
        pr_shots_key(u->shots, sk, sizeof sk);
        snprintf(tag, sizeof tag, "%s-shot seed %d", sk, u->seed);
        snprintf(ftag, sizeof ftag, "%sshot_seed%d", sk, u->seed);

        pr_unit_clear(pu);
        u->state = AD_UNIT_FAILED; /* until it is through */
        if (skipped.n) {
            u->skipped = adi_calloc((size_t)skipped.n, sizeof *u->skipped);
            for (int k = 0; u->skipped && k < skipped.n; k++)
                if ((u->skipped[u->n_skipped] = adi_strdup(skipped.v[k]))) u->n_skipped++;
        }
        ad_bank *bank = NULL;
        double bank_s = 0;
        if (!r->zeroshot) {
            ad_bank_params bp = ad_bank_default_params();
            bp.resolution = env->resolution;
            bp.rotate = rotate;
            bp.mask_refs = 0; /* the original never masks references by default */
            /* The test masks are computed here, once per image; mask_test would make the bank
             * compute a PCA mask of every reference for leave-one-out calibration, which the
             * protocol never uses. */
            bp.mask_test = 0;
            bp.knn_k = 1;
            bank = ad_bank_new(env->model, &bp);
            if (!bank) {
                run_error(env, "%s %s: %s", c->name, tag, ad_errmsg());
                continue;
            }
            bank_s = build_bank(env, c, pu->first, pu->count, rotate, bank, refs, &cb, tag);
            if (bank_s < 0) {
                ad_bank_free(bank);
                if (env->cancelled) u->state = AD_UNIT_PLANNED;
                continue;
            }
            u->bank_rows = (double)ad_bank_rows(bank);
        }
        u->bank_seconds = bank_s;
        finish_ctx fc = {env, c, e, pu, ftag, first_run, tag};
        double t0 = adi_now();
        int rc = score_run(&fc, bank);
        double t_all = adi_now() - t0;
        ad_bank_free(bank);
        if (rc) {
            if (env->cancelled) u->state = AD_UNIT_PLANNED;
            pr_unit_clear(pu);
            continue;
        }
        first_run = 0;
        u->state = AD_UNIT_COMPUTED;
        if (p->out_dir) {
            pr_run_path(p->out_dir, u->shots, u->seed, c->name, dir, sizeof dir, path, sizeof path);
            cJSON *rec = pr_record_to_json(pu, r->key, listing, c->n_test);
            ad_status st = rec ? adi_io_mkdirs(dir) : adi_fail(AD_E_NOMEM, "out of memory");
            if (st == AD_OK) st = pr_write_json(path, rec);
            cJSON_Delete(rec);
            if (st != AD_OK)
                run_error(env, "%s %s: not stored for resuming: %s", c->name, tag, ad_errmsg());
        }
        /* progress: the numbers the paper tables show */
        char msg[512];
        int l = snprintf(msg, sizeof msg, "eval: %s %s: bank %.2f s, %d images %.2f s", c->name,
                         tag, bank_s, u->n_images, t_all);
        for (int q = 0; q < AD_EVAL_N_METRICS && l > 0 && (size_t)l < sizeof msg; q++)
            if (u->metrics_present >> q & 1)
                l += snprintf(msg + l, sizeof msg - (size_t)l, ", %s %.1f", pr_metric_names[q],
                              100 * u->metrics[q]);
        line(env, "%s", msg);
    }
    entries_free(e, c->n_test);
    refs_free(refs, c->n_train);
    if (skipped.dropped) run_error(env, "%s: %d problem line(s) lost: out of memory", c->name,
                                   skipped.dropped);
    adi_strlist_free(&skipped);
out:
    adi_free(need);
    adi_free(listing);
}

/* ------------------------------------------------------------------------------------------ */
/* settings                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static cJSON *settings_json(const eval_env *env, const ad_model_info *mi)
{
    const ad_eval_params *p = env->p;
    const ds_dataset *ds = env->ds;
    const ad_eval_results *r = env->r;
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)mi->fingerprint);
    cJSON *s = cJSON_CreateObject();
    if (!s) return NULL;
    cJSON_AddStringToObject(s, "version", ad_version());
    cJSON_AddStringToObject(s, "mode", r->zeroshot ? "zeroshot" : "fewshot");
    cJSON_AddStringToObject(s, "dataset", ds_kind_name(ds->kind));
    cJSON_AddStringToObject(s, "layout", ds->kind != DS_VISA ? ds_kind_name(ds->kind)
                                         : ds->visa_raw     ? "visa raw (split_csv/1cls.csv)"
                                                            : "visa 1cls (prepared)");
    if (ds->kind == DS_KSDD || ds->kind == DS_MTD)
        cJSON_AddNumberToObject(s, "train_fraction", ds->train_fraction);
    cJSON_AddNumberToObject(s, "max_pixels", (double)p->max_pixels);
    cJSON_AddStringToObject(s, "data", ds->root);
    cJSON_AddStringToObject(s, "weights", p->weights_name ? p->weights_name : "");
    cJSON_AddStringToObject(s, "model", mi->name ? mi->name : "");
    cJSON_AddStringToObject(s, "weights_fingerprint", fp);
    cJSON_AddStringToObject(s, "preset", env->preset);
    cJSON_AddNumberToObject(s, "resolution", env->resolution);
    cJSON_AddBoolToObject(s, "segmentation", p->segmentation);
    cJSON_AddNumberToObject(s, "knn_k", 1);
    cJSON_AddBoolToObject(s, "mask_refs", 0);
    cJSON *cl = cJSON_AddArrayToObject(s, "categories");
    for (int i = 0; cl && i < ds->n_cats; i++)
        cJSON_AddItemToArray(cl, cJSON_CreateString(ds->cats[i].name));
    if (!r->zeroshot) {
        cJSON *sl = cJSON_AddArrayToObject(s, "shots");
        for (int i = 0; sl && i < r->n_shots; i++)
            cJSON_AddItemToArray(sl, cJSON_CreateNumber(r->shots[i]));
        cJSON *dl = cJSON_AddArrayToObject(s, "seeds");
        for (int i = 0; dl && i < r->n_seeds; i++)
            cJSON_AddItemToArray(dl, cJSON_CreateNumber(r->seeds[i]));
    }
    cJSON_AddNumberToObject(s, "threads", ad_context_threads(env->ctx));
    cJSON_AddStringToObject(s, "key", r->key);
    return s;
}

/* OUT/settings.json: a folder holds the results of one setting; a run with others is refused. */
static ad_status pin_settings(ad_eval_results *r, const char *out)
{
    ad_status st = adi_io_mkdirs(out);
    if (st != AD_OK) return st;
    char *sp = adi_path_join(out, "settings.json");
    if (!sp) return AD_E_NOMEM;
    if (adi_io_exists(sp)) {
        cJSON *old = pr_read_json(sp);
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(old, "key");
        if (!old || !cJSON_IsString(ok)) {
            st = adi_fail(AD_E_FORMAT, "%s: unreadable; not resuming into %s (use another -o "
                                       "folder)", sp, out);
        } else if (strcmp(ok->valuestring, r->key)) {
            char diff[1024];
            pr_key_diff(ok->valuestring, r->key, diff, sizeof diff);
            st = adi_fail(AD_E_MISMATCH, "%s holds results made with other settings (%s): use "
                                         "another -o folder or remove it", out, diff);
        }
        cJSON_Delete(old);
    }
    if (st == AD_OK) st = pr_write_json(sp, r->settings);
    adi_free(sp);
    return st;
}

static ad_status check_params(const ad_eval_params *p)
{
    if (!p->zeroshot) {
        if (p->n_shots < 1 || p->n_shots > AD_EVAL_MAX_SHOTS)
            return adi_fail(AD_E_ARG, "shots: 1 to %d values, got %d", AD_EVAL_MAX_SHOTS,
                            p->n_shots);
        for (int i = 0; i < p->n_shots; i++) {
            if (p->shots[i] == 0 || p->shots[i] < -1)
                return adi_fail(AD_E_ARG, "shots: %d is not a count (>= 1, or -1 for full shot)",
                                p->shots[i]);
            for (int j = 0; j < i; j++)
                if (p->shots[j] == p->shots[i])
                    return adi_fail(AD_E_ARG, "shots: %d listed twice", p->shots[i]);
        }
        if (p->n_seeds < 1 || p->n_seeds > AD_EVAL_MAX_SEEDS)
            return adi_fail(AD_E_ARG, "seeds: 1 to %d, got %d", AD_EVAL_MAX_SEEDS, p->n_seeds);
    }
    if (p->resolution > 0 && p->resolution < EVAL_PATCH)
        return adi_fail(AD_E_ARG, "--resolution %d: at least %d (one patch), or 0 for the images "
                                  "as they are", p->resolution, EVAL_PATCH);
    if (p->n_examples < 0 || p->n_examples > MAX_EXAMPLES)
        return adi_fail(AD_E_ARG, "examples: 0 to %d, got %d", MAX_EXAMPLES, p->n_examples);
    if (p->shard_count < 1 || p->shard_index < 0 || p->shard_index >= p->shard_count)
        return adi_fail(AD_E_ARG, "shard %d of %d: expected 0 <= index < count", p->shard_index,
                        p->shard_count);
    if (p->shard_count > 1 && !p->out_dir)
        return adi_fail(AD_E_ARG, "a shard writes its units for the merge: it needs an output "
                                  "folder");
    return AD_OK;
}

ad_status ad_eval_run(const ad_model *model, ad_context *ctx, const ad_dataset *d,
                      const ad_eval_params *p, ad_eval_results **out)
{
    if (!out) return adi_fail(AD_E_ARG, "ad_eval_run: NULL output");
    *out = NULL;
    if (!model || !ctx || !d || !p)
        return adi_fail(AD_E_ARG, "ad_eval_run: NULL %s", !model ? "model" : !ctx ? "context"
                                                          : !d   ? "dataset"
                                                                 : "params");
    if (ad_context_model(ctx) != model)
        return adi_fail(AD_E_MISMATCH, "ad_eval_run: the context belongs to another model");
    ad_status st = check_params(p);
    if (st != AD_OK) return st;
    eval_env env;
    memset(&env, 0, sizeof env);
    env.p = p;
    env.model = model;
    env.ctx = ctx;
    env.ds = d;
    env.preset = p->preset ? p->preset : p->zeroshot ? "masking_only" : "agnostic";
    env.resolution = p->resolution >= 0 ? p->resolution : p->zeroshot ? 672 : 448;
    int mk, rt;
    if (ad_preset_lookup(env.preset, ds_kind_name(d->kind), "", &mk, &rt) != AD_OK) {
        adi_error_prefix("--preset");
        return ad_last_status();
    }
    ad_eval_results *r = pr_results_new();
    if (!r) return AD_E_NOMEM;
    env.r = r;
    r->zeroshot = p->zeroshot;
    r->shard_index = p->shard_index;
    r->shard_count = p->shard_count;
    if (p->zeroshot) {
        r->n_shots = r->n_seeds = 1;
        r->shots[0] = r->seeds[0] = 0;
    } else {
        r->n_shots = p->n_shots;
        memcpy(r->shots, p->shots, (size_t)p->n_shots * sizeof *p->shots);
        r->n_seeds = p->n_seeds;
        for (int i = 0; i < p->n_seeds; i++) r->seeds[i] = i;
    }
    ad_model_info mi = ad_model_get_info(model);
    pr_settings_key(r->zeroshot, d->kind, env.preset, env.resolution, p->segmentation,
                    mi.fingerprint, r->key, sizeof r->key);
    st = pr_plan(r, d, env.preset);
    if (st == AD_OK) {
        pr_plan_shards(r, p->shard_count);
        r->settings = settings_json(&env, &mi);
        r->settings_text = r->settings ? cJSON_PrintUnformatted(r->settings) : NULL;
        if (!r->settings_text) st = AD_E_NOMEM;
    }
    if (st == AD_OK && p->out_dir && !(r->out_dir = adi_strdup(p->out_dir))) st = AD_E_NOMEM;
    if (st == AD_OK && p->out_dir) st = pin_settings(r, p->out_dir);
    if (st != AD_OK) {
        if (st == AD_E_NOMEM && ad_last_status() != AD_E_NOMEM)
            adi_fail(AD_E_NOMEM, "evaluation: out of memory planning the runs");
        ad_eval_results_free(r);
        return ad_last_status() != AD_OK ? ad_last_status() : st;
    }
    /* the units of a category are contiguous in the plan */
    for (int i = 0; i < r->n_units && !env.cancelled;) {
        int j = i;
        while (j < r->n_units && r->units[j].u.i_cat == r->units[i].u.i_cat) j++;
        eval_category(&env, r->units[i].u.i_cat, &r->units[i], j - i);
        i = j;
    }
    if (p->shard_count > 1 && pr_write_shard_manifest(r, pr_plan_hash(r, d)) != AD_OK)
        run_error(&env, "shard manifest not written: %s", ad_errmsg());
    pr_fill_grid(r);
    pr_build_notes(r);
    *out = r;
    if (env.cancelled) return adi_fail(AD_E_CANCELLED, "evaluation cancelled");
    return AD_OK;
}
