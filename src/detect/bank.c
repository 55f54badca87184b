/* Memory bank: L2-normalised reference patch features with their owners (docs/design.md,
 * "References and rotations"), image scores ("Image score") and decision thresholds learned
 * from normal images ("What we add"). */
#include "detect/detect.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Bounds that keep every size computation far from overflow and reject absurd input early. */
#define BANK_MAX_DIM 65536
#define BANK_MAX_K 4096
#define BANK_MAX_RESOLUTION 16384

ad_bank_params ad_bank_default_params(void)
{
    /* run_anomalydino.py defaults: --resolution 448, --preprocess agnostic (rotate every
     * category), --mask_ref_images off, --k_neighbors 1; test masking depends on the category,
     * so it is off unless asked for. */
    ad_bank_params p = {448, 1, 0, 0, 1};
    return p;
}

static ad_status check_params(const ad_bank_params *p)
{
    if (p->resolution < 0 || p->resolution > BANK_MAX_RESOLUTION)
        return adi_fail(AD_E_ARG, "bank: resolution %d out of range [0, %d]", p->resolution,
                       BANK_MAX_RESOLUTION);
    if (p->knn_k < 1 || p->knn_k > BANK_MAX_K)
        return adi_fail(AD_E_ARG, "bank: knn_k %d out of range [1, %d]", p->knn_k, BANK_MAX_K);
    return AD_OK;
}

ad_bank *ad_bank_new(const ad_model *m, const ad_bank_params *p)
{
    ad_bank_params bp = p ? *p : ad_bank_default_params();
    if (check_params(&bp) != AD_OK) return NULL;
    bp.rotate = !!bp.rotate;
    bp.mask_refs = !!bp.mask_refs;
    bp.mask_test = !!bp.mask_test;
    ad_bank *b = adi_calloc(1, sizeof *b);
    if (!b) return adi_fail_null(AD_E_NOMEM, "bank: out of memory");
    b->p = bp;
    if (m) {
        ad_model_info info = ad_model_get_info(m);
        if (info.dim <= 0 || info.dim > BANK_MAX_DIM) {
            adi_free(b);
            return adi_fail_null(AD_E_ARG, "bank: model has feature width %d", info.dim);
        }
        b->dim = info.dim;
        b->fingerprint = info.fingerprint;
        snprintf(b->model_name, sizeof b->model_name, "%s", info.name ? info.name : "");
    }
    return b;
}

void ad_bank_free(ad_bank *b)
{
    if (!b) return;
    adi_free(b->feat);
    adi_free(b->norm2);
    adi_free(b->row_image);
    adi_free(b->row_angle);
    adi_free(b->row_cell);
    adi_free(b->row_list);
    dt_ivf_free(b->ivf);
    adi_free(b->side_feat);
    adi_free(b->side_image);
    adi_free(b->side_cell);
    for (int i = 0; i < b->n_images; i++) {
        adi_free(b->images[i].keep_test);
        adi_free(b->images[i].name);
    }
    adi_free(b->images);
    for (int i = 0; i < b->n_hist; i++) adi_free(b->hist[i].scores);
    adi_free(b->hist);
    adi_free(b);
}

ad_bank_params ad_bank_get_params(const ad_bank *b)
{
    if (!b) {
        ad_bank_params z = {0, 0, 0, 0, 0};
        return z;
    }
    return b->p;
}

size_t ad_bank_rows(const ad_bank *b) { return b ? b->rows : 0; }
int ad_bank_images(const ad_bank *b) { return b ? b->n_images : 0; }

float dt_norm2_row(const float *x, int d)
{
    float s = 0;
    for (int i = 0; i < d; i++) s += x[i] * x[i];
    return s;
}

float dt_normalize_row(float *x, int d)
{
    float nr = dt_norm2_row(x, d);
    if (nr > 0) {
        /* faiss fvec_renorm_L2: a multiply by the float reciprocal, not a divide. */
        float inv = (float)(1.0 / sqrtf(nr));
        for (int i = 0; i < d; i++) x[i] *= inv;
    }
    return dt_norm2_row(x, d);
}

int dt_bank_find_image(const ad_bank *b, int image_id)
{
    for (int i = 0; i < b->n_images; i++)
        if (b->images[i].id == image_id) return i;
    return -1;
}

/* Grows an array to hold `need` elements (realloc keeps the old block on failure). */
static int grow(void **p, size_t need, size_t elem)
{
    size_t bytes;
    if (adi_mul_overflow(need, elem, &bytes)) return 0;
    void *q = adi_realloc(*p, bytes ? bytes : 1);
    if (!q) return 0;
    *p = q;
    return 1;
}

static ad_status reserve_rows(ad_bank *b, size_t need)
{
    if (need <= b->cap) return AD_OK;
    size_t cap = b->cap + b->cap / 2;  /* 1.5x: realloc of large blocks mostly remaps */
    if (cap < need) cap = need;
    if (cap < 1024) cap = 1024;
    size_t d = (size_t)b->dim;
    if (!grow((void **)&b->feat, cap, d * sizeof(float)) ||
        !grow((void **)&b->norm2, cap, sizeof(float)) ||
        !grow((void **)&b->row_image, cap, sizeof(int32_t)) ||
        !grow((void **)&b->row_angle, cap, 1) || !grow((void **)&b->row_cell, cap, sizeof(int32_t)) ||
        !grow((void **)&b->row_list, cap, sizeof(int32_t)))
        return adi_fail(AD_E_NOMEM, "bank: out of memory for %zu rows of %d", need, b->dim);
    b->cap = cap;
    return AD_OK;
}

static ad_status reserve_side(ad_bank *b, size_t need)
{
    if (need <= b->side_cap) return AD_OK;
    size_t cap = b->side_cap * 2 > need ? b->side_cap * 2 : need;
    size_t d = (size_t)b->dim;
    if (!grow((void **)&b->side_feat, cap, d * sizeof(float)) ||
        !grow((void **)&b->side_image, cap, sizeof(int32_t)) ||
        !grow((void **)&b->side_cell, cap, sizeof(int32_t)))
        return adi_fail(AD_E_NOMEM, "bank: out of memory for %zu side rows", need);
    b->side_cap = cap;
    return AD_OK;
}

void dt_bank_truncate(ad_bank *b, size_t rows, size_t side_rows, int n_images)
{
    if (rows < b->rows) {
        b->rows = rows;
        if (b->ivf) dt_ivf_truncate(b, rows);
    }
    if (side_rows < b->side_rows) b->side_rows = side_rows;
    while (b->n_images > n_images) {
        b->n_images--;
        adi_free(b->images[b->n_images].keep_test);
        b->images[b->n_images].keep_test = NULL;
        adi_free(b->images[b->n_images].name);
        b->images[b->n_images].name = NULL;
    }
}

ad_status dt_bank_compact(ad_bank *b, size_t from, const uint8_t *keep_row)
{
    const size_t d = (size_t)b->dim;
    /* Everything that can fail first: the side rows for dropped cells leave-one-out scores. */
    size_t side_add = 0;
    int last = -1;
    for (size_t j = from; j < b->rows; j++) {
        if (keep_row[j - from] || b->row_angle[j] != 0) continue;
        if (last < 0 || b->images[last].id != b->row_image[j]) last = dt_bank_find_image(b, b->row_image[j]);
        if (last < 0) return adi_fail(AD_E_INTERNAL, "bank: row of unknown image %d", b->row_image[j]);
        const uint8_t *kt = b->images[last].keep_test;
        side_add += !kt || kt[b->row_cell[j]];
    }
    if (side_add) {
        ad_status st = reserve_side(b, b->side_rows + side_add);
        if (st != AD_OK) return st;
    }
    size_t w = from;
    last = -1;
    for (size_t j = from; j < b->rows; j++) {
        if (keep_row[j - from]) {
            if (w != j) {
                memmove(b->feat + w * d, b->feat + j * d, d * sizeof(float));
                b->norm2[w] = b->norm2[j];
                b->row_image[w] = b->row_image[j];
                b->row_angle[w] = b->row_angle[j];
                b->row_cell[w] = b->row_cell[j];
                if (b->row_list) b->row_list[w] = b->row_list[j];
            }
            w++;
            continue;
        }
        if (b->row_angle[j] != 0) continue;
        if (last < 0 || b->images[last].id != b->row_image[j]) last = dt_bank_find_image(b, b->row_image[j]);
        const uint8_t *kt = b->images[last].keep_test;
        if (kt && !kt[b->row_cell[j]]) continue;
        memcpy(b->side_feat + b->side_rows * d, b->feat + j * d, d * sizeof(float));
        b->side_image[b->side_rows] = b->row_image[j];
        b->side_cell[b->side_rows] = b->row_cell[j];
        b->side_rows++;
    }
    b->rows = w;
    return AD_OK;
}

static ad_status check_features(const ad_features *f, const char *who, int dim)
{
    if (!f || !f->patch) return adi_fail(AD_E_ARG, "%s: NULL features", who);
    if (f->grid_h <= 0 || f->grid_w <= 0 || (size_t)f->grid_h * (size_t)f->grid_w > INT32_MAX)
        return adi_fail(AD_E_ARG, "%s: bad patch grid %d x %d", who, f->grid_h, f->grid_w);
    if (f->dim <= 0 || f->dim > BANK_MAX_DIM)
        return adi_fail(AD_E_ARG, "%s: bad feature width %d", who, f->dim);
    if (dim > 0 && f->dim != dim)
        return adi_fail(AD_E_MISMATCH, "%s: features have width %d, the bank %d", who, f->dim, dim);
    return AD_OK;
}

ad_status dt_bank_insert(ad_bank *b, const ad_features *f, const uint8_t *keep,
                         const uint8_t *keep_test, int image_id)
{
    ad_status st = check_features(f, "bank", b->dim);
    if (st != AD_OK) return st;
    if (image_id < 0) return adi_fail(AD_E_ARG, "bank: image_id %d is negative", image_id);
    size_t n = (size_t)f->grid_h * (size_t)f->grid_w;
    int idx = dt_bank_find_image(b, image_id);
    if (idx >= 0 && b->images[idx].n_inserts >= DT_MAX_INSERTS)
        return adi_fail(AD_E_ARG, "bank: image %d added more than %d times", image_id,
                       DT_MAX_INSERTS);
    /* A non-finite value would make its row silently match nothing (every distance NaN). */
    const size_t nd = n * (size_t)f->dim;
    for (size_t i = 0; i < nd; i++)
        if (!isfinite(f->patch[i]))
            return adi_fail(AD_E_ARG, "bank: image %d: non-finite feature value (patch %zu)",
                           image_id, i / (size_t)f->dim);
    int dim_was_unset = b->dim == 0;
    if (dim_was_unset) b->dim = f->dim;

    size_t add = 0, side_add = 0;
    for (size_t i = 0; i < n; i++) {
        int in_bank = !keep || keep[i];
        add += in_bank;
        /* Leave-one-out scores the unrotated image as a test image: keep the cells it would
         * score that are not searched rows. */
        if (idx < 0 && !in_bank && (!keep_test || keep_test[i])) side_add++;
    }
    if (b->rows + add < b->rows) return adi_fail(AD_E_ARG, "bank: too many rows");
    st = reserve_rows(b, b->rows + add);
    if (st == AD_OK && side_add) st = reserve_side(b, b->side_rows + side_add);
    dt_image rec = {image_id, f->grid_h, f->grid_w, 0, NULL, NULL, dt_bank_now(b)};
    if (st == AD_OK && idx < 0) {
        if (b->n_images == b->images_cap) {
            int cap = b->images_cap ? 2 * b->images_cap : 16;
            if (!grow((void **)&b->images, (size_t)cap, sizeof *b->images))
                st = adi_fail(AD_E_NOMEM, "bank: out of memory");
            else
                b->images_cap = cap;
        }
        if (st == AD_OK && keep_test) {
            rec.keep_test = adi_malloc(n);
            if (!rec.keep_test) st = adi_fail(AD_E_NOMEM, "bank: out of memory");
            else memcpy(rec.keep_test, keep_test, n);
        }
    }
    if (st != AD_OK) {
        if (dim_was_unset && b->rows == 0) b->dim = 0;
        return st;
    }

    uint8_t angle = idx < 0 ? 0 : (uint8_t)b->images[idx].n_inserts;
    size_t d = (size_t)f->dim;
    for (size_t i = 0; i < n; i++) {
        int in_bank = !keep || keep[i];
        if (in_bank) {
            float *dst = b->feat + b->rows * d;
            memcpy(dst, f->patch + i * d, d * sizeof(float));
            b->norm2[b->rows] = dt_normalize_row(dst, (int)d);
            b->row_image[b->rows] = image_id;
            b->row_angle[b->rows] = angle;
            b->row_cell[b->rows] = (int32_t)i;
            b->row_list[b->rows] = -1; /* assigned to an index list by dt_ivf_sync */
            b->rows++;
        } else if (idx < 0 && (!keep_test || keep_test[i])) {
            float *dst = b->side_feat + b->side_rows * d;
            memcpy(dst, f->patch + i * d, d * sizeof(float));
            dt_normalize_row(dst, (int)d);
            b->side_image[b->side_rows] = image_id;
            b->side_cell[b->side_rows] = (int32_t)i;
            b->side_rows++;
        }
    }
    if (idx < 0) {
        rec.n_inserts = 1;
        b->images[b->n_images++] = rec;
    } else {
        b->images[idx].n_inserts++;
    }
    return AD_OK;
}

ad_status ad_bank_add_features(ad_bank *b, const ad_features *f, const uint8_t *keep, int image_id)
{
    if (!b) return adi_fail(AD_E_ARG, "ad_bank_add_features: NULL bank");
    ad_status st = check_features(f, "ad_bank_add_features", b->dim);
    if (st != AD_OK) return st;
    uint8_t *kt = NULL;
    /* The first features of an image are its unrotated self: record the mask leave-one-out
     * will score it with, as a test image of this bank would be masked. */
    if (b->p.mask_test && dt_bank_find_image(b, image_id) < 0) {
        kt = adi_malloc((size_t)f->grid_h * (size_t)f->grid_w);
        if (!kt) return adi_fail(AD_E_NOMEM, "ad_bank_add_features: out of memory");
        st = ad_mask_pca(f, kt);
    }
    const size_t rows0 = b->rows, side0 = b->side_rows;
    const int images0 = b->n_images, dim0 = b->dim, had = dt_bank_find_image(b, image_id);
    const int inserts0 = had >= 0 ? b->images[had].n_inserts : 0;
    if (st == AD_OK) st = dt_bank_insert(b, f, keep, kt, image_id);
    adi_free(kt);
    /* a bank with an index assigns the new rows to their lists (no context: OpenMP default) */
    if (st == AD_OK && b->ivf && (st = dt_ivf_sync(b, 0)) != AD_OK) {
        dt_bank_truncate(b, rows0, side0, images0);
        if (had >= 0) b->images[had].n_inserts = inserts0;
        if (b->rows == 0) b->dim = dim0;
    }
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Scores and thresholds                                                                       */
/* ------------------------------------------------------------------------------------------ */

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

static int cmp_asc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double ad_score_top1p(const double *grid, size_t n)
{
    double s;
    return dt_score_top1p(grid, n, &s) == AD_OK ? s : NAN;
}

ad_status dt_score_top1p(const double *grid, size_t n, double *score)
{
    if (!grid || n == 0) return adi_fail(AD_E_ARG, "ad_score_top1p: empty grid");
    /* AD src/post_eval.py mean_top1p: n_top = int(N * 0.01) over every grid cell. */
    size_t top = (size_t)((double)n * 0.01);
    if (top == 0) {
        double m = grid[0];
        for (size_t i = 1; i < n; i++)
            if (grid[i] > m) m = grid[i];
        *score = m;
        return AD_OK;
    }
    /* A bounded min-heap of the `top` largest values: no copy of the whole grid. */
    double *h = adi_malloc(top * sizeof *h);
    if (!h) return adi_fail(AD_E_NOMEM, "ad_score_top1p: out of memory");
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        double v = grid[i];
        if (cnt < top) {
            size_t c = cnt++;
            while (c > 0 && h[(c - 1) / 2] > v) {
                h[c] = h[(c - 1) / 2];
                c = (c - 1) / 2;
            }
            h[c] = v;
        } else if (v > h[0]) {
            size_t c = 0;
            for (;;) {
                size_t l = 2 * c + 1, s = c;
                double sv = v;
                if (l < top && h[l] < sv) { s = l; sv = h[l]; }
                if (l + 1 < top && h[l + 1] < sv) s = l + 1;
                if (s == c) break;
                h[c] = h[s];
                c = s;
            }
            h[c] = v;
        }
    }
    /* Sum in descending order, as the original averages the head of a descending sort. */
    qsort(h, top, sizeof *h, cmp_desc);
    double s = 0;
    for (size_t i = 0; i < top; i++) s += h[i];
    adi_free(h);
    *score = s / (double)top;
    return AD_OK;
}

ad_status dt_threshold_from_scores(const double *scores, int n, ad_thresh_rule rule, double q,
                                   double *thr)
{
    if (!scores || n < 1) return adi_fail(AD_E_ARG, "threshold: no scores");
    for (int i = 0; i < n; i++)
        if (!isfinite(scores[i]))
            return adi_fail(AD_E_ARG, "threshold: score %d is not finite", i);
    if (rule == AD_THRESH_MAX) {
        double m = scores[0];
        for (int i = 1; i < n; i++)
            if (scores[i] > m) m = scores[i];
        *thr = m;
        return AD_OK;
    }
    if (rule != AD_THRESH_QUANTILE) return adi_fail(AD_E_ARG, "threshold: unknown rule %d", (int)rule);
    if (!(q >= 0 && q <= 1)) return adi_fail(AD_E_ARG, "threshold: quantile %g not in [0, 1]", q);
    double *s = adi_malloc((size_t)n * sizeof *s);
    if (!s) return adi_fail(AD_E_NOMEM, "threshold: out of memory");
    memcpy(s, scores, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_asc);
    /* numpy.quantile, method 'linear': virtual index q*(n-1), and numpy's _lerp, which
     * interpolates from the upper neighbour when t >= 0.5. */
    double pos = q * (double)(n - 1);
    double fl = floor(pos);
    size_t lo = (size_t)fl, hi = lo + 1 < (size_t)n ? lo + 1 : lo;
    double t = pos - fl, a = s[lo], bb = s[hi], diff = bb - a;
    double v = t >= 0.5 ? bb - diff * (1 - t) : a + diff * t;
    adi_free(s);
    *thr = v;
    return AD_OK;
}

int64_t dt_bank_now(const ad_bank *b)
{
    return b->clock ? b->clock : (int64_t)time(NULL);
}

void ad_bank_set_clock(ad_bank *b, int64_t unix_seconds)
{
    if (b) b->clock = unix_seconds;
}

ad_status dt_bank_push_history(ad_bank *b, ad_thresh_rule rule, ad_thresh_source src, double q,
                               double thr, const double *scores, int n)
{
    double *copy = adi_malloc((size_t)(n > 0 ? n : 1) * sizeof *copy);
    if (!copy) return adi_fail(AD_E_NOMEM, "bank: out of memory");
    if (n > 0) memcpy(copy, scores, (size_t)n * sizeof *copy);
    if (b->n_hist == DT_MAX_HISTORY) { /* bounded: the oldest record goes */
        adi_free(b->hist[0].scores);
        memmove(b->hist, b->hist + 1, (size_t)(b->n_hist - 1) * sizeof *b->hist);
        b->n_hist--;
    }
    if (b->n_hist == b->hist_cap) {
        int cap = b->hist_cap ? 2 * b->hist_cap : 4;
        if (!grow((void **)&b->hist, (size_t)cap, sizeof *b->hist)) {
            adi_free(copy);
            return adi_fail(AD_E_NOMEM, "bank: out of memory");
        }
        b->hist_cap = cap;
    }
    dt_thresh_rec *r = &b->hist[b->n_hist++];
    r->rule = rule;
    r->source = src;
    r->quantile = q;
    r->threshold = thr;
    r->time = dt_bank_now(b);
    r->n_refs = b->n_images;
    r->n_scores = n;
    r->scores = copy;
    return AD_OK;
}

ad_status ad_bank_calibrate_scores(ad_bank *b, const double *scores, int n, ad_thresh_rule rule,
                                   double q)
{
    if (!b) return adi_fail(AD_E_ARG, "ad_bank_calibrate_scores: NULL bank");
    return dt_bank_calibrate(b, scores, n, rule, q, AD_THRESH_FROM_SCORES);
}

ad_status dt_bank_calibrate(ad_bank *b, const double *scores, int n, ad_thresh_rule rule, double q,
                            ad_thresh_source src)
{
    double thr;
    ad_status st = dt_threshold_from_scores(scores, n, rule, q, &thr);
    if (st != AD_OK) return st;
    st = dt_bank_push_history(b, rule, src, rule == AD_THRESH_QUANTILE ? q : 1.0, thr, scores, n);
    if (st != AD_OK) return st;
    b->has_threshold = 1;
    b->rule = rule;
    b->quantile = rule == AD_THRESH_QUANTILE ? q : 1.0;
    b->threshold = thr;
    return AD_OK;
}

int ad_bank_threshold(const ad_bank *b, double *thr)
{
    if (!b || !b->has_threshold) return 0;
    if (thr) *thr = b->threshold;
    return 1;
}

ad_status ad_bank_ref_get(const ad_bank *b, int i, ad_bank_ref *out)
{
    if (!b || !out) return adi_fail(AD_E_ARG, "ad_bank_ref_get: NULL %s", b ? "output" : "bank");
    if (i < 0 || i >= b->n_images)
        return adi_fail(AD_E_ARG, "ad_bank_ref_get: reference %d out of range [0, %d)", i,
                       b->n_images);
    const dt_image *im = &b->images[i];
    out->image_id = im->id;
    out->views = im->n_inserts;
    out->added = im->added;
    out->name = im->name ? im->name : "";
    return AD_OK;
}

int ad_bank_threshold_count(const ad_bank *b) { return b ? b->n_hist : 0; }

ad_status ad_bank_threshold_get(const ad_bank *b, int i, ad_thresh_record *out)
{
    if (!b || !out)
        return adi_fail(AD_E_ARG, "ad_bank_threshold_get: NULL %s", b ? "output" : "bank");
    if (i < 0 || i >= b->n_hist)
        return adi_fail(AD_E_ARG, "ad_bank_threshold_get: record %d out of range [0, %d)", i,
                       b->n_hist);
    const dt_thresh_rec *r = &b->hist[i];
    out->rule = r->rule;
    out->quantile = r->quantile;
    out->source = r->source;
    out->threshold = r->threshold;
    out->n_refs = r->n_refs;
    out->time = r->time;
    out->n_scores = r->n_scores;
    out->scores = r->scores;
    return AD_OK;
}

double ad_bank_coreset_setting(const ad_bank *b, size_t *rows_offered)
{
    if (rows_offered) *rows_offered = b ? (size_t)b->coreset_offered : 0;
    return b ? b->coreset : 0;
}

void ad_result_free(ad_result *r)
{
    if (!r) return;
    adi_free(r->grid);
    adi_free(r->keep);
    r->grid = NULL;
    r->keep = NULL;
    r->grid_h = r->grid_w = 0;
}
