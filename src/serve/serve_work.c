/* Banks (load, reference counts, reload), the job queue, the workers that run inference, the
 * supervisor (deadlines, vanished clients) and the reloader. */
#include "serve/serve.h"
#include "cli/cli_detect.h"
#include "detect/detect.h"
#include "io/io.h"

#include <microhttpd.h>
#include <nettle/sha2.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double srv_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void srv_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "anomalydino serve: %s\n", line);
}

/* ------------------------------------------------------------------------------------------ */
/* Banks                                                                                       */
/* ------------------------------------------------------------------------------------------ */

int srv_sha256_file(const char *path, char hex[65], char *err, size_t errn)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errn, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct sha256_ctx c;
    sha256_init(&c);
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(&c, n, buf);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errn, "%s: read error", path);
        return -1;
    }
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_digest(&c, sizeof d, d);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

srv_bank *srv_find_bank(srv *s, const char *name)
{
    for (int i = 0; i < s->n_banks; i++)
        if (!strcmp(s->banks[i].name, name)) return &s->banks[i];
    return NULL;
}

srv_bank_ver *srv_bank_acquire(srv *s, srv_bank *b)
{
    pthread_mutex_lock(&s->mu);
    srv_bank_ver *v = b->cur;
    if (v) v->refs++;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static void ver_release_locked(srv_bank_ver *v)
{
    if (v && --v->refs == 0) {
        ad_bank_free(v->bank);
        free(v);
    }
}

void srv_bank_release(srv *s, srv_bank_ver *v)
{
    if (!v) return;
    pthread_mutex_lock(&s->mu);
    ver_release_locked(v);
    pthread_mutex_unlock(&s->mu);
}

/* A checked version of the file, or NULL with the reason in err. */
static srv_bank_ver *load_version(srv *s, const char *path, char *err, size_t errn)
{
    char sha[65], sha2[65];
    if (srv_sha256_file(path, sha, err, errn)) return NULL;
    ad_bank *bank = ad_bank_load(path);
    if (!bank) {
        snprintf(err, errn, "%s", ad_errmsg());
        return NULL;
    }
    if (ad_bank_check_model(bank, s->model) != AD_OK) {
        snprintf(err, errn, "%s: %s", path, ad_errmsg());
        ad_bank_free(bank);
        return NULL;
    }
    if (ad_bank_rows(bank) == 0) {
        snprintf(err, errn, "%s: the bank is empty", path);
        ad_bank_free(bank);
        return NULL;
    }
    /* the digest must describe the bytes that were loaded */
    if (srv_sha256_file(path, sha2, err, errn) || strcmp(sha, sha2)) {
        if (!strcmp(sha, sha2) || !err[0]) snprintf(err, errn, "%s: changed while it was read", path);
        ad_bank_free(bank);
        return NULL;
    }
    srv_bank_ver *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, errn, "out of memory");
        ad_bank_free(bank);
        return NULL;
    }
    v->bank = bank;
    memcpy(v->sha256, sha, sizeof sha);
    v->refs = 1;
    v->loaded_unix = srv_unix();
    return v;
}

int srv_load_banks(srv *s)
{
    for (int i = 0; i < s->n_banks; i++) {
        char err[400] = "";
        srv_bank_ver *v = load_version(s, s->banks[i].path, err, sizeof err);
        if (!v) {
            srv_log("bank %s: %s", s->banks[i].name, err);
            return -1;
        }
        pthread_mutex_lock(&s->mu);
        s->banks[i].cur = v;
        pthread_mutex_unlock(&s->mu);
        srv_log("bank %s: %s (%zu rows, sha256 %.12s)", s->banks[i].name, s->banks[i].path,
                ad_bank_rows(v->bank), v->sha256);
    }
    return 0;
}

int srv_reload_bank(srv *s, srv_bank *b, char *err, size_t errn)
{
    err[0] = 0;
    srv_bank_ver *v = load_version(s, b->path, err, errn);
    pthread_mutex_lock(&s->mu);
    if (!v) {
        b->reload_failures++;
        snprintf(b->last_error, sizeof b->last_error, "%s", err);
        pthread_mutex_unlock(&s->mu);
        srv_log("reload of bank %s failed, the old version keeps serving: %s", b->name, err);
        return -1;
    }
    srv_bank_ver *old = b->cur;
    b->cur = v;
    b->reloads++;
    b->last_error[0] = 0;
    ver_release_locked(old); /* freed when the last request on it finishes */
    pthread_mutex_unlock(&s->mu);
    srv_log("bank %s reloaded (sha256 %.12s)", b->name, v->sha256);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Jobs                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void unpend_locked(srv *s, const char *name)
{
    for (size_t i = 0; i < sizeof s->fit_pending / sizeof s->fit_pending[0]; i++)
        if (s->fit_pending[i] && !strcmp(s->fit_pending[i], name)) {
            free(s->fit_pending[i]);
            s->fit_pending[i] = NULL;
        }
}

void srv_job_release(srv *s, srv_job *j)
{
    if (--j->refs > 0) return;
    if (j->prev || j->next || s->outstanding == j) { /* unlink from the outstanding list */
        if (j->prev) j->prev->next = j->next;
        else s->outstanding = j->next;
        if (j->next) j->next->prev = j->prev;
        s->n_outstanding--;
    }
    ver_release_locked(j->ver);
    if (j->kind == JOB_FIT && j->new_name) unpend_locked(s, j->new_name);
    if (j->kind == JOB_ADD_REFS && j->bank) j->bank->changing = 0;
    srv_parts_free(j->parts, j->n_parts);
    free(j->new_name);
    free(j->img);
    free(j->id);
    free(j->body);
    free(j);
}


int srv_enqueue(srv *s, srv_job *j)
{
    pthread_mutex_lock(&s->mu);
    if (s->q_len >= s->queue_cap) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    /* suspended under the lock: a worker resumes only with the lock held, hence after this */
    MHD_suspend_connection(j->conn);
    j->state = JOB_QUEUED;
    j->refs++;
    j->qnext = NULL;
    if (s->q_tail) s->q_tail->qnext = j;
    else s->q_head = j;
    s->q_tail = j;
    s->q_len++;
    j->prev = NULL;
    j->next = s->outstanding;
    if (s->outstanding) s->outstanding->prev = j;
    s->outstanding = j;
    s->n_outstanding++;
    pthread_cond_signal(&s->q_cond);
    pthread_cond_signal(&s->sup_cond);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void srv_queue_remove_locked(srv *s, srv_job *j)
{
    srv_job *prev = NULL;
    for (srv_job *q = s->q_head; q; prev = q, q = q->qnext) {
        if (q != j) continue;
        if (prev) prev->qnext = q->qnext;
        else s->q_head = q->qnext;
        if (s->q_tail == q) s->q_tail = prev;
        s->q_len--;
        q->qnext = NULL;
        srv_job_release(s, q); /* the queue's reference */
        return;
    }
}

/* Ends the wait of the job's connection (srv.mu held). */
static void resume_locked(srv_job *j)
{
    if (j->conn && !j->resumed) {
        j->resumed = 1;
        MHD_resume_connection(j->conn);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Inference                                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    int code;
    char *body;
    size_t len;
    const char *ctype;
} answer;

static void answer_error(answer *a, int code, const char *type, const char *msg)
{
    a->code = code;
    a->body = srv_error_json(code, type, msg);
    a->len = a->body ? strlen(a->body) : 0;
    a->ctype = "application/json";
}

static void answer_json(answer *a, cJSON *doc)
{
    char *txt = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (!txt) {
        answer_error(a, 500, "internal", "out of memory");
        return;
    }
    a->code = 200;
    a->body = txt;
    a->len = strlen(txt);
    a->ctype = "application/json";
}

static const char *verdict_str(ad_verdict v)
{
    return v == AD_VERDICT_NG ? "NG" : v == AD_VERDICT_OK ? "OK" : NULL;
}

/* Numbers printed so that they read back exactly: float32 with 9 significant digits, float64
 * with 17 (cJSON's own printing settles for a near value). */
static cJSON *exact_array_f32(const float *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    char buf[40];
    for (size_t i = 0; a && i < n; i++) {
        snprintf(buf, sizeof buf, isfinite(v[i]) ? "%.9g" : "null", (double)v[i]);
        cJSON_AddItemToArray(a, cJSON_CreateRaw(buf));
    }
    return a;
}

static cJSON *exact_array_f64(const double *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    char buf[40];
    for (size_t i = 0; a && i < n; i++) {
        snprintf(buf, sizeof buf, isfinite(v[i]) ? "%.17g" : "null", v[i]);
        cJSON_AddItemToArray(a, cJSON_CreateRaw(buf));
    }
    return a;
}

/* Decodes the form's files of one field; names[i] are the upload's file names (borrowed). */
static int decode_parts(srv_job *j, const char *field, ad_image **imgs, const char ***names,
                        int *n, answer *a)
{
    int cnt = 0;
    for (int i = 0; i < j->n_parts; i++) cnt += !strcmp(j->parts[i].field, field);
    *imgs = calloc((size_t)(cnt ? cnt : 1), sizeof **imgs);
    *names = calloc((size_t)(cnt ? cnt : 1), sizeof **names);
    *n = 0;
    if (!*imgs || !*names) {
        answer_error(a, 500, "internal", "out of memory");
        return -1;
    }
    for (int i = 0; i < j->n_parts; i++) {
        srv_part *p = &j->parts[i];
        if (strcmp(p->field, field)) continue;
        const char *nm = p->filename && *p->filename ? p->filename : field;
        if (adi_io_decode_image(nm, p->data, p->len, &(*imgs)[*n]) != AD_OK) {
            answer_error(a, 422, "invalid_image", ad_errmsg());
            return -1;
        }
        (*names)[*n] = nm;
        (*n)++;
    }
    return 0;
}

static void free_images(ad_image *imgs, const char **names, int n)
{
    for (int i = 0; imgs && i < n; i++) ad_image_free(&imgs[i]);
    free(imgs);
    free(names);
}

static void answer_bank(srv *s, srv_bank *b, answer *a, int code, int added)
{
    cJSON *doc = cJSON_CreateObject();
    if (added >= 0) cJSON_AddNumberToObject(doc, "added", added);
    cJSON_AddItemToObject(doc, "bank", srv_bank_json(s, b));
    answer_json(a, doc);
    a->code = code;
}

/* POST .../fit: the bank built as anomalydino fit builds it, saved atomically into --bank-dir,
 * then served under its name. */
static void run_fit(srv *s, ad_context *ctx, srv_job *j, answer *a)
{
    ad_image *imgs = NULL, *cal = NULL;
    const char **names = NULL, **cal_names = NULL;
    int n = 0, n_cal = 0;
    ad_bank *bank = NULL;
    double *scores = NULL;
    char path[4096], err[400] = "";
    if (decode_parts(j, "image", &imgs, &names, &n, a) ||
        decode_parts(j, "calibrate", &cal, &cal_names, &n_cal, a))
        goto out;
    bank = ad_bank_new(s->model, &j->fit_params);
    if (!bank) {
        answer_error(a, 400, "bad_request", ad_errmsg());
        goto out;
    }
    ad_status st = ad_bank_add_references(bank, ctx, imgs, names, n, 0);
    if (st == AD_OK && n_cal) {
        scores = calloc((size_t)n_cal, sizeof *scores);
        if (!scores) st = adi_fail(AD_E_NOMEM, "out of memory");
        for (int i = 0; i < n_cal && st == AD_OK; i++) {
            ad_result r;
            st = ad_predict(bank, ctx, &cal[i], -1, &r);
            if (st == AD_OK) {
                scores[i] = r.score;
                ad_result_free(&r);
            } else {
                adi_error_prefix("%s", cal_names[i]);
            }
        }
        if (st == AD_OK) st = ad_bank_calibrate_scores(bank, scores, n_cal, AD_THRESH_MAX, 0);
    } else if (st == AD_OK && n >= 2) {
        st = ad_bank_calibrate_loo(bank, ctx, AD_THRESH_MAX, 0);
    }
    if (st != AD_OK) {
        answer_error(a, st == AD_E_ARG ? 422 : 500, st == AD_E_ARG ? "invalid_image" : "internal",
                     ad_errmsg());
        goto out;
    }
    snprintf(path, sizeof path, "%s/%s.adbank", s->bank_dir, j->new_name);
    if (ad_bank_save(bank, path) != AD_OK) { /* atomic: a unique temp file renamed into place */
        answer_error(a, 500, "io_error", ad_errmsg());
        goto out;
    }
    srv_bank_ver *v = load_version(s, path, err, sizeof err);
    if (!v) {
        answer_error(a, 500, "internal", err);
        goto out;
    }
    pthread_mutex_lock(&s->mu);
    int idx = s->n_banks;
    srv_bank *b = idx < s->banks_cap ? &s->banks[idx] : NULL;
    if (b) {
        memset(b, 0, sizeof *b);
        b->name = strdup(j->new_name);
        b->path = strdup(path);
        b->cur = v;
        if (!b->name || !b->path) {
            free(b->name);
            free(b->path);
            b = NULL;
        } else {
            s->n_banks = idx + 1; /* atomic: the entry is complete before it is counted */
        }
    }
    if (!b) ver_release_locked(v);
    pthread_mutex_unlock(&s->mu);
    if (!b) {
        answer_error(a, 507, "insufficient_storage", "no room to serve another bank");
        goto out;
    }
    srv_log("bank %s: fitted from %d image(s) into %s", j->new_name, n, path);
    answer_bank(s, b, a, 201, -1);
out:
    free(scores);
    ad_bank_free(bank);
    free_images(imgs, names, n);
    free_images(cal, cal_names, n_cal);
}

/* POST .../references: good images appended to a copy of the bank (read from its file), the
 * copy saved over the file atomically and swapped in as a reload is. */
static void run_add_refs(srv *s, ad_context *ctx, srv_job *j, answer *a)
{
    ad_image *imgs = NULL;
    const char **names = NULL;
    int n = 0;
    char err[400] = "";
    ad_bank *copy = NULL;
    if (decode_parts(j, "image", &imgs, &names, &n, a)) goto out;
    copy = ad_bank_load(j->bank->path);
    if (!copy || ad_bank_check_model(copy, s->model) != AD_OK) {
        answer_error(a, 409, "conflict", ad_errmsg());
        goto out;
    }
    ad_status st = ad_bank_add_references(copy, ctx, imgs, names, n, j->recalibrate);
    if (st != AD_OK) {
        answer_error(a, st == AD_E_ARG ? 422 : 500, st == AD_E_ARG ? "unprocessable" : "internal",
                     ad_errmsg());
        goto out;
    }
    if (ad_bank_save(copy, j->bank->path) != AD_OK) {
        answer_error(a, 500, "io_error", ad_errmsg());
        goto out;
    }
    if (srv_reload_bank(s, j->bank, err, sizeof err)) {
        answer_error(a, 500, "internal", err);
        goto out;
    }
    answer_bank(s, j->bank, a, 200, n);
out:
    ad_bank_free(copy);
    free_images(imgs, names, n);
}

static void run_job(srv *s, ad_context *ctx, srv_job *j, answer *a)
{
    if (j->kind == JOB_FIT) {
        run_fit(s, ctx, j, a);
        return;
    }
    if (j->kind == JOB_ADD_REFS) {
        run_add_refs(s, ctx, j, a);
        return;
    }
    double t0 = srv_now();
    ad_image img = {0};
    ad_result r = {0};
    float *map = NULL;
    ad_image ov = {0};
    uint8_t *png = NULL, *npy = NULL;
    size_t png_len = 0, npy_len = 0;
    char why[600];

    ad_status st = adi_io_decode_image("image", j->img, j->img_len, &img);
    double t1 = srv_now();
    j->stage_ms[SRV_STAGE_DECODE] = 1e3 * (t1 - t0);
    if (st != AD_OK) {
        answer_error(a, 422, "invalid_image", ad_errmsg());
        return;
    }
    free(j->img); /* the pixels are decoded: the encoded bytes are no longer needed */
    j->img = NULL;
    const ad_bank *bank = j->ver->bank;
    st = cld_predict(bank, ctx, &img, -1, &r, &j->stage_ms[SRV_STAGE_FEATURES],
                     &j->stage_ms[SRV_STAGE_SEARCH]);
    if (st != AD_OK) {
        /* a bad argument here is the image (e.g. smaller than one patch) */
        if (st == AD_E_ARG) answer_error(a, 422, "invalid_image", ad_errmsg());
        else answer_error(a, 500, "internal", ad_errmsg());
        ad_image_free(&img);
        return;
    }
    double thr = 0;
    int have_thr = ad_bank_threshold(bank, &thr);
    if (j->thr_override) {
        thr = j->thr;
        have_thr = 1;
    }
    ad_verdict verdict = have_thr ? (r.score > thr ? AD_VERDICT_NG : AD_VERDICT_OK) : AD_VERDICT_NONE;
    j->scored = 1;
    j->score = r.score;
    j->verdict = verdict;
    snprintf(j->score_hdr, sizeof j->score_hdr, "%.17g", r.score);
    j->verdict_hdr = verdict_str(verdict) ? verdict_str(verdict) : "none";

    double t2 = srv_now();
    int need_map = j->want_map || j->want_overlay || j->want_png;
    int need_ov = j->want_overlay || j->want_png;
    if (need_map) {
        adi_overlay_params op = cld_overlay_params(have_thr, thr, -1);
        st = cld_map_overlay(r.grid, r.grid_h, r.grid_w, &img, &op, &map, need_ov ? &ov : NULL);
        if (st == AD_OK && need_ov) st = adi_io_encode_png(ov.data, ov.width, ov.height, 3, &png, &png_len);
        if (st == AD_OK && j->want_map && j->kind == JOB_PREDICT) {
            size_t shape[2] = {(size_t)img.height, (size_t)img.width};
            st = adi_npy_encode(AD_NPY_F4, map, 2, shape, &npy, &npy_len);
        }
        if (st != AD_OK) {
            snprintf(why, sizeof why, "building the outputs: %s", ad_errmsg());
            answer_error(a, 500, "internal", why);
            goto done;
        }
    }
    j->stage_ms[SRV_STAGE_MAP] = 1e3 * (srv_now() - t2);

    if (j->want_png) { /* Accept: image/png: the overlay itself (adi_free is free) */
        a->code = 200;
        a->body = (char *)png;
        a->len = png_len;
        a->ctype = "image/png";
        png = NULL;
        goto done;
    }
    cJSON *doc = cJSON_CreateObject();
    if (!doc) {
        answer_error(a, 500, "internal", "out of memory");
        goto done;
    }
    if (j->kind == JOB_KSERVE) {
        cJSON_AddStringToObject(doc, "model_name", j->bank->name);
        char ver[13];
        snprintf(ver, sizeof ver, "%.12s", j->ver->sha256);
        cJSON_AddStringToObject(doc, "model_version", ver);
        if (j->id) cJSON_AddStringToObject(doc, "id", j->id);
        cJSON *outs = cJSON_AddArrayToObject(doc, "outputs");
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", "score");
        cJSON_AddStringToObject(o, "datatype", "FP64");
        int one = 1;
        cJSON_AddItemToObject(o, "shape", cJSON_CreateIntArray(&one, 1));
        cJSON_AddItemToObject(o, "data", cJSON_CreateDoubleArray(&r.score, 1));
        cJSON_AddItemToArray(outs, o);
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", "verdict");
        cJSON_AddStringToObject(o, "datatype", "BYTES");
        cJSON_AddItemToObject(o, "shape", cJSON_CreateIntArray(&one, 1));
        const char *vs = verdict_str(verdict) ? verdict_str(verdict) : "";
        cJSON_AddItemToObject(o, "data", cJSON_CreateStringArray(&vs, 1));
        cJSON_AddItemToArray(outs, o);
        if (j->want_map) {
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", "anomaly_map");
            cJSON_AddStringToObject(o, "datatype", "FP32");
            int shape[2] = {img.height, img.width};
            cJSON_AddItemToObject(o, "shape", cJSON_CreateIntArray(shape, 2));
            cJSON_AddItemToObject(o, "data", exact_array_f32(map, (size_t)img.width * img.height));
            cJSON_AddItemToArray(outs, o);
        }
        answer_json(a, doc);
        goto done;
    }
    if (j->id) cJSON_AddStringToObject(doc, "id", j->id);
    cJSON_AddStringToObject(doc, "bank", j->bank->name);
    cJSON_AddStringToObject(doc, "bank_sha256", j->ver->sha256);
    cJSON_AddNumberToObject(doc, "score", r.score);
    if (have_thr) {
        cJSON_AddNumberToObject(doc, "threshold", thr);
        cJSON_AddStringToObject(doc, "threshold_source", j->thr_override ? "request" : "bank");
        cJSON_AddStringToObject(doc, "verdict", verdict_str(verdict));
        cJSON_AddNumberToObject(doc, "margin", r.score - thr);
    } else {
        cJSON_AddNullToObject(doc, "threshold");
        cJSON_AddNullToObject(doc, "threshold_source");
        cJSON_AddNullToObject(doc, "verdict");
        cJSON_AddNullToObject(doc, "margin");
    }
    cJSON *im = cJSON_AddObjectToObject(doc, "image");
    cJSON_AddNumberToObject(im, "width", img.width);
    cJSON_AddNumberToObject(im, "height", img.height);
    cJSON *tm = cJSON_AddObjectToObject(doc, "timings_ms");
    cJSON_AddNumberToObject(tm, "queue", 1e3 * (t0 - j->t_enqueue));
    cJSON_AddNumberToObject(tm, "decode", j->stage_ms[SRV_STAGE_DECODE]);
    cJSON_AddNumberToObject(tm, "features", j->stage_ms[SRV_STAGE_FEATURES]);
    cJSON_AddNumberToObject(tm, "search", j->stage_ms[SRV_STAGE_SEARCH]);
    cJSON_AddNumberToObject(tm, "map", j->stage_ms[SRV_STAGE_MAP]);
    cJSON *outs = cJSON_AddObjectToObject(doc, "outputs");
    if (j->want_map) {
        cJSON *o = cJSON_AddObjectToObject(outs, "map");
        cJSON_AddStringToObject(o, "format", "npy");
        cJSON_AddStringToObject(o, "dtype", "float32");
        int shape[2] = {img.height, img.width};
        cJSON_AddItemToObject(o, "shape", cJSON_CreateIntArray(shape, 2));
        char *b64 = srv_base64(npy, npy_len);
        if (b64) cJSON_AddStringToObject(o, "base64", b64);
        free(b64);
    }
    if (j->want_overlay) {
        cJSON *o = cJSON_AddObjectToObject(outs, "overlay");
        cJSON_AddStringToObject(o, "format", "png");
        char *b64 = srv_base64(png, png_len);
        if (b64) cJSON_AddStringToObject(o, "base64", b64);
        free(b64);
    }
    if (j->want_grid) {
        cJSON *o = cJSON_AddObjectToObject(outs, "grid");
        int shape[2] = {r.grid_h, r.grid_w};
        cJSON_AddItemToObject(o, "shape", cJSON_CreateIntArray(shape, 2));
        cJSON *rows = cJSON_AddArrayToObject(o, "data");
        for (int y = 0; y < r.grid_h; y++)
            cJSON_AddItemToArray(rows, exact_array_f64(r.grid + (size_t)y * r.grid_w, (size_t)r.grid_w));
    }
    if (j->want_nearest) {
        ad_nearest nb;
        st = ad_predict_nearest(bank, ctx, &img, -1, j->patch, &nb);
        if (st != AD_OK) {
            cJSON_Delete(doc);
            answer_error(a, st == AD_E_ARG ? 400 : 500, st == AD_E_ARG ? "bad_request" : "internal",
                         ad_errmsg());
            goto done;
        }
        ad_bank_ref ref;
        cJSON *o = cJSON_AddObjectToObject(outs, "nearest");
        cJSON_AddNumberToObject(o, "patch", nb.patch);
        cJSON_AddNumberToObject(o, "test_x", nb.test_x);
        cJSON_AddNumberToObject(o, "test_y", nb.test_y);
        cJSON_AddBoolToObject(o, "masked", nb.masked);
        cJSON_AddNumberToObject(o, "reference", nb.ref_index);
        if (ad_bank_ref_get(bank, nb.ref_index, &ref) == AD_OK && ref.name[0]) {
            const char *base = strrchr(ref.name, '/');
            cJSON_AddStringToObject(o, "reference_name", base ? base + 1 : ref.name);
        } else {
            cJSON_AddNullToObject(o, "reference_name");
        }
        cJSON_AddNumberToObject(o, "x", nb.ref_x);
        cJSON_AddNumberToObject(o, "y", nb.ref_y);
        cJSON_AddNumberToObject(o, "rotation", nb.angle_deg);
        char dbuf[40];
        snprintf(dbuf, sizeof dbuf, "%.17g", nb.distance); /* every digit, as the score */
        cJSON_AddItemToObject(o, "distance", cJSON_CreateRaw(dbuf));
    }
    answer_json(a, doc);
done:
    adi_free(png); /* io buffers are the library allocator's (adi_free) */
    adi_free(npy);
    adi_free(map);
    ad_image_free(&ov);
    ad_image_free(&img);
    ad_result_free(&r);
}

typedef struct {
    srv *s;
    int idx;
} worker_arg;

static void *worker_main(void *p)
{
    worker_arg *wa = p;
    srv *s = wa->s;
    ad_context *ctx = s->ctxs[wa->idx];
    free(wa);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->q_head && !s->stop_workers) pthread_cond_wait(&s->q_cond, &s->mu);
        if (!s->q_head) break; /* stopping, and nothing left to do */
        srv_job *j = s->q_head;
        s->q_head = j->qnext;
        if (!s->q_head) s->q_tail = NULL;
        s->q_len--;
        j->qnext = NULL;
        j->state = JOB_RUNNING;
        s->running_jobs++;
        pthread_mutex_unlock(&s->mu);

        answer a = {0};
        run_job(s, ctx, j, &a);

        pthread_mutex_lock(&s->mu);
        s->running_jobs--;
        if (j->state == JOB_RUNNING) {
            j->http_code = a.code;
            j->body = a.body;
            j->body_len = a.len;
            j->content_type = a.ctype;
            j->state = JOB_DONE;
            resume_locked(j);
        } else {
            free(a.body); /* timed out or the client left: nobody waits for it */
        }
        srv_job_release(s, j); /* the queue's reference */
        pthread_cond_broadcast(&s->idle_cond);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Whether the peer closed or reset the connection (data waiting is not a close). */
static int peer_gone(int fd)
{
    if (fd < 0) return 0;
    struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return 1;
    if (p.revents & POLLRDHUP) return 1;
    if (p.revents & POLLIN) {
        char c;
        ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0;
    }
    return 0;
}

static void *supervisor_main(void *p)
{
    srv *s = p;
    pthread_mutex_lock(&s->mu);
    while (!s->stop_sup) {
        if (!s->outstanding) {
            pthread_cond_wait(&s->sup_cond, &s->mu);
            continue;
        }
        double now = srv_now();
        for (srv_job *j = s->outstanding, *nx; j; j = nx) {
            nx = j->next;
            if (j->state != JOB_QUEUED && j->state != JOB_RUNNING) continue;
            if (now >= j->deadline) {
                int was_queued = j->state == JOB_QUEUED;
                j->state = JOB_TIMEDOUT;
                resume_locked(j);
                if (was_queued) srv_queue_remove_locked(s, j); /* may free nothing: the request holds one */
            } else if (j->state == JOB_QUEUED && peer_gone(j->fd)) {
                j->state = JOB_CANCELLED;
                resume_locked(j);
                srv_queue_remove_locked(s, j);
            }
        }
        /* a short tick: deadlines are checked to within ~5 ms */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 5 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->sup_cond, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Reloads                                                                                     */
/* ------------------------------------------------------------------------------------------ */

void srv_do_reload(srv *s, srv_reload *r)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(doc, "reloaded");
    int failed = 0;
    char first_err[500] = "";
    for (int i = 0; i < s->n_banks; i++) {
        srv_bank *b = &s->banks[i];
        if (r->bank && r->bank != b) continue;
        char prev[65] = "";
        pthread_mutex_lock(&s->mu);
        if (b->cur) memcpy(prev, b->cur->sha256, sizeof prev);
        pthread_mutex_unlock(&s->mu);
        char err[400];
        int rc = srv_reload_bank(s, b, err, sizeof err);
        srv_bank_ver *v = srv_bank_acquire(s, b);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "bank", b->name);
        cJSON_AddBoolToObject(o, "ok", rc == 0);
        cJSON_AddStringToObject(o, "previous_sha256", prev);
        cJSON_AddStringToObject(o, "sha256", v ? v->sha256 : "");
        if (rc) {
            cJSON_AddStringToObject(o, "error", err);
            if (!failed) snprintf(first_err, sizeof first_err, "bank %s: %s", b->name, err);
            failed++;
        }
        srv_bank_release(s, v);
        cJSON_AddItemToArray(arr, o);
    }
    if (failed) {
        cJSON_Delete(doc);
        char msg[600];
        snprintf(msg, sizeof msg, "reload failed, the previous version keeps serving: %s", first_err);
        r->http_code = 422;
        r->body = srv_error_json(422, "reload_failed", msg);
    } else {
        r->http_code = 200;
        r->body = cJSON_PrintUnformatted(doc);
        cJSON_Delete(doc);
    }
}

void srv_reload_enqueue(srv *s, srv_reload *r)
{
    pthread_mutex_lock(&s->mu);
    if (r->conn) MHD_suspend_connection(r->conn); /* resumed by the reloader, under the lock */
    r->next = NULL;
    srv_reload **pp = &s->rl_head;
    while (*pp) pp = &(*pp)->next;
    *pp = r;
    pthread_cond_signal(&s->rl_cond);
    pthread_mutex_unlock(&s->mu);
}

static void *reloader_main(void *p)
{
    srv *s = p;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->rl_head && !s->stop_rl) pthread_cond_wait(&s->rl_cond, &s->mu);
        if (!s->rl_head) break;
        srv_reload *r = s->rl_head;
        s->rl_head = r->next;
        pthread_mutex_unlock(&s->mu);
        srv_do_reload(s, r);
        pthread_mutex_lock(&s->mu);
        if (r->conn) { /* the HTTP request waits for it; it frees r */
            r->done = 1;
            MHD_resume_connection(r->conn);
        } else {
            free(r->body);
            free(r);
        }
        pthread_cond_broadcast(&s->idle_cond);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */

int srv_warmup(srv *s)
{
    /* one inference on a synthetic image through the first bank and worker context, so that
     * the first real request does not pay for first-touch allocations */
    srv_bank_ver *v = srv_bank_acquire(s, &s->banks[0]);
    if (!v) return -1;
    ad_bank_params bp = ad_bank_get_params(v->bank);
    int side = bp.resolution > 0 ? bp.resolution : 224;
    ad_image img = {0};
    int rc = -1;
    if (ad_image_alloc(&img, side, side) == AD_OK) {
        for (size_t i = 0; i < (size_t)side * side * 3; i++) img.data[i] = (uint8_t)(i * 7 % 251);
        for (int w = 0; w < s->n_workers; w++) {
            ad_result r = {0};
            ad_status st = cld_predict(v->bank, s->ctxs[w], &img, -1, &r, NULL, NULL);
            ad_result_free(&r);
            if (st != AD_OK) {
                srv_log("warm-up inference failed: %s", ad_errmsg());
                goto out;
            }
        }
        rc = 0;
    }
out:
    ad_image_free(&img);
    srv_bank_release(s, v);
    return rc;
}

int srv_start_threads(srv *s)
{
    s->workers = calloc((size_t)s->n_workers, sizeof *s->workers);
    if (!s->workers) return -1;
    for (int i = 0; i < s->n_workers; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) return -1;
        wa->s = s;
        wa->idx = i;
        if (pthread_create(&s->workers[i], NULL, worker_main, wa)) {
            free(wa);
            return -1;
        }
        s->threads_started = i + 1;
    }
    if (pthread_create(&s->sup_thread, NULL, supervisor_main, s)) return -1;
    if (pthread_create(&s->rl_thread, NULL, reloader_main, s)) return -1;
    s->threads_started |= 1 << 20;
    return 0;
}

void srv_stop_threads(srv *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop_workers = s->stop_rl = 1;
    pthread_cond_broadcast(&s->q_cond);
    pthread_cond_broadcast(&s->rl_cond);
    pthread_mutex_unlock(&s->mu);
    int nw = s->threads_started & ((1 << 20) - 1);
    for (int i = 0; i < nw; i++) pthread_join(s->workers[i], NULL);
    if (s->threads_started & (1 << 20)) {
        pthread_join(s->rl_thread, NULL);
        pthread_mutex_lock(&s->mu);
        s->stop_sup = 1;
        pthread_cond_broadcast(&s->sup_cond);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->sup_thread, NULL);
    }
    free(s->workers);
    s->workers = NULL;
    s->threads_started = 0;
}
