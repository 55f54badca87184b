/* HTTP front of the service: libmicrohttpd parses, this file routes and answers.
 *
 * The route table below maps a method and a path pattern ("{}" = one segment, captured) to a
 * handler; flags say whether the route needs the key, a body, a known bank in the captured
 * segment and readiness. A new endpoint is one line in the table and one handler. Handlers run
 * on libmicrohttpd's polling thread and must not block: inference goes to the job queue and the
 * connection is suspended until a worker (or the supervisor) resumes it. */
#include "serve/serve.h"
#include "serve/serve_parse.h"
#include "detect/detect.h"
#include "io/io.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <nettle/base64.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct req req;
typedef enum MHD_Result (*route_fn)(srv *s, struct MHD_Connection *c, req *r);

enum {
    R_PUBLIC = 1,    /* no key needed (health probes) */
    R_BODY_IMAGE = 2, /* raw image/png, image/jpeg or multipart/form-data with an `image` field */
    R_BODY_JSON = 4, /* application/json */
    R_BANK = 8,      /* the captured segment must name a configured bank (404 otherwise) */
    R_READY = 16,    /* 503 until the banks are loaded and warmed up */
    R_ADMIN = 32,    /* needs the admin key (--admin-key-file) */
    R_FORM = 64      /* multipart/form-data, every part kept (fit, references) */
};

typedef struct {
    const char *method;
    const char *pattern;
    unsigned flags;
    route_fn fn;
} route;

struct req {
    srv *s;
    const route *rt;
    char *arg;                /* the "{}" segment */
    srv_bank *bank;
    int err_code;             /* an error found while the body streams in: answered at its end */
    char err_type[32];
    char err_msg[400];
    int multipart;            /* multipart/form-data: the body is parsed when complete */
    char boundary[204];
    int pp_images;            /* `image` fields seen */
    size_t img_off, img_len;  /* the first `image` field, within body */
    srv_part *parts;          /* R_FORM: every part of the form */
    int n_parts, parts_cap;
    uint8_t *body;
    size_t len, cap;
    uint64_t received;
    srv_job *job;
    srv_reload *reload;
    double t_start;
    int counted;              /* counted in active_requests */
};

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                     */
/* ------------------------------------------------------------------------------------------ */

char *srv_error_json(int code, const char *type, const char *msg)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(doc, "error");
    cJSON_AddNumberToObject(e, "code", code);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddStringToObject(e, "message", msg);
    char *t = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    return t;
}

char *srv_base64(const uint8_t *p, size_t n)
{
    if (n > (SIZE_MAX - 16) / 4 * 3) return NULL;
    size_t out = BASE64_ENCODE_RAW_LENGTH(n);
    char *b = malloc(out + 1);
    if (!b) return NULL;
    base64_encode_raw(b, n, p);
    b[out] = 0;
    return b;
}

static const char *bank_label(const req *r)
{
    return r && r->bank ? r->bank->name : "";
}

static enum MHD_Result send_body(req *r, struct MHD_Connection *c, int code, const char *ctype,
                                 char *body, size_t len, const char *verdict, const srv_job *j)
{
    srv *s = r->s;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body, body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (code == 503) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (code == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (code == 405 && r->rt) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->rt->method);
    }
    if (j && j->scored) {
        MHD_add_response_header(resp, "X-Anomaly-Score", j->score_hdr);
        MHD_add_response_header(resp, "X-Verdict", j->verdict_hdr);
    }
    if (atomic_load(&s->draining)) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)code, resp);
    MHD_destroy_response(resp);
    srv_metrics_request(s->metrics, bank_label(r), code, verdict);
    if (s->access_log) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        char addr[64] = "?";
        if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, addr, sizeof addr);
        srv_log("%s %s %s %d %zu bytes %.1f ms", addr, r->rt ? r->rt->method : "-",
                r->rt ? r->rt->pattern : "-", code, len, 1e3 * (srv_now() - r->t_start));
    }
    return ret;
}

static enum MHD_Result send_json(req *r, struct MHD_Connection *c, int code, cJSON *doc)
{
    char *txt = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (!txt) return MHD_NO;
    return send_body(r, c, code, "application/json", txt, strlen(txt), NULL, NULL);
}

static enum MHD_Result send_error(req *r, struct MHD_Connection *c, int code, const char *type,
                                  const char *fmt, ...) AD_PRINTF(5, 6);
static enum MHD_Result send_error(req *r, struct MHD_Connection *c, int code, const char *type,
                                  const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *txt = srv_error_json(code, type, msg);
    if (!txt) return MHD_NO;
    return send_body(r, c, code, "application/json", txt, strlen(txt), NULL, NULL);
}

static void set_error(req *r, int code, const char *type, const char *fmt, ...) AD_PRINTF(4, 5);
static void set_error(req *r, int code, const char *type, const char *fmt, ...)
{
    if (r->err_code) return; /* the first error wins */
    r->err_code = code;
    snprintf(r->err_type, sizeof r->err_type, "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
    va_end(ap);
}

static enum MHD_Result send_pending_error(req *r, struct MHD_Connection *c)
{
    return send_error(r, c, r->err_code, r->err_type, "%s", r->err_msg);
}

static int append_body(req *r, const char *data, size_t n)
{
    if (n > r->s->max_body - r->len) return -1;
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 65536;
        while (cap < r->len + n) cap *= 2;
        if (cap > r->s->max_body) cap = r->s->max_body;
        uint8_t *b = realloc(r->body, cap);
        if (!b) return -2;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return 0;
}

/* The key the request presents (Bearer or X-API-Key), or NULL. */
static const char *presented_key(struct MHD_Connection *c)
{
    return srv_presented_key(
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key"));
}

/* constant time: equal-length digests compared without an early exit */
static int digest_eq(const char *cand, const uint8_t want[32])
{
    struct sha256_ctx h;
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_init(&h);
    sha256_update(&h, strlen(cand), (const uint8_t *)cand);
    sha256_digest(&h, sizeof d, d);
    return memeql_sec(d, want, sizeof d);
}

static int admin_ok(srv *s, struct MHD_Connection *c)
{
    const char *cand = presented_key(c);
    return cand && s->have_admin && digest_eq(cand, s->admin_digest);
}

/* The API key, or the admin key (which may do everything). */
static int key_ok(srv *s, struct MHD_Connection *c)
{
    const char *cand = presented_key(c);
    if (!cand) return 0;
    int api = digest_eq(cand, s->key_digest);
    int adm = s->have_admin && digest_eq(cand, s->admin_digest);
    return api | adm;
}

/* ------------------------------------------------------------------------------------------ */
/* Handlers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static enum MHD_Result h_live(srv *s, struct MHD_Connection *c, req *r)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "status", "live");
    return send_json(r, c, 200, d);
}

static enum MHD_Result h_ready(srv *s, struct MHD_Connection *c, req *r)
{
    if (!atomic_load(&s->ready))
        return send_error(r, c, 503, "not_ready",
                          atomic_load(&s->draining) ? "shutting down"
                                                    : "loading the weights and banks");
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "status", "ready");
    return send_json(r, c, 200, d);
}

static enum MHD_Result h_metrics(srv *s, struct MHD_Connection *c, req *r)
{
    size_t len;
    char *txt = srv_metrics_render(s, &len);
    if (!txt) return send_error(r, c, 500, "internal", "out of memory");
    return send_body(r, c, 200, "text/plain; version=0.0.4; charset=utf-8", txt, len, NULL, NULL);
}

cJSON *srv_bank_json(srv *s, srv_bank *b)
{
    srv_bank_ver *v = srv_bank_acquire(s, b);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", b->name);
    if (!v) {
        cJSON_AddBoolToObject(o, "loaded", 0);
        return o;
    }
    const ad_bank *bk = v->bank;
    ad_bank_params p = ad_bank_get_params(bk);
    const char *base = strrchr(b->path, '/');
    cJSON_AddStringToObject(o, "file", base ? base + 1 : b->path);
    cJSON_AddStringToObject(o, "sha256", v->sha256);
    cJSON_AddNumberToObject(o, "loaded_unix", v->loaded_unix);
    cJSON *w = cJSON_AddObjectToObject(o, "weights");
    cJSON_AddStringToObject(w, "name", s->model_name);
    cJSON_AddStringToObject(w, "fingerprint", s->fingerprint);
    cJSON_AddNumberToObject(o, "resolution", p.resolution);
    cJSON_AddBoolToObject(o, "rotate", p.rotate);
    cJSON *mk = cJSON_AddObjectToObject(o, "masking");
    cJSON_AddBoolToObject(mk, "references", p.mask_refs);
    cJSON_AddBoolToObject(mk, "test", p.mask_test);
    cJSON_AddNumberToObject(o, "knn", p.knn_k);
    cJSON *t = cJSON_AddObjectToObject(o, "threshold");
    double thr;
    if (ad_bank_threshold(bk, &thr)) {
        cJSON_AddNumberToObject(t, "value", thr);
        cJSON_AddStringToObject(t, "rule", bk->rule == AD_THRESH_QUANTILE ? "quantile" : "max");
        if (bk->rule == AD_THRESH_QUANTILE) cJSON_AddNumberToObject(t, "quantile", bk->quantile);
        else cJSON_AddNullToObject(t, "quantile");
    } else {
        cJSON_AddNullToObject(t, "value");
        cJSON_AddNullToObject(t, "rule");
        cJSON_AddNullToObject(t, "quantile");
    }
    cJSON_AddNumberToObject(o, "references", ad_bank_images(bk));
    cJSON *names = cJSON_AddArrayToObject(o, "reference_names");
    for (int i = 0; i < ad_bank_images(bk); i++) {
        ad_bank_ref ref;
        if (ad_bank_ref_get(bk, i, &ref) == AD_OK) cJSON_AddItemToArray(names, cJSON_CreateString(ref.name));
    }
    cJSON_AddNumberToObject(o, "rows", (double)ad_bank_rows(bk));
    pthread_mutex_lock(&s->mu);
    cJSON_AddNumberToObject(o, "reloads", (double)b->reloads);
    cJSON_AddNumberToObject(o, "reload_failures", (double)b->reload_failures);
    if (b->last_error[0]) cJSON_AddStringToObject(o, "last_reload_error", b->last_error);
    else cJSON_AddNullToObject(o, "last_reload_error");
    pthread_mutex_unlock(&s->mu);
    srv_bank_release(s, v);
    return o;
}

static enum MHD_Result h_banks(srv *s, struct MHD_Connection *c, req *r)
{
    cJSON *d = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(d, "banks");
    for (int i = 0; i < s->n_banks; i++) cJSON_AddItemToArray(a, srv_bank_json(s, &s->banks[i]));
    return send_json(r, c, 200, d);
}

static enum MHD_Result h_bank(srv *s, struct MHD_Connection *c, req *r)
{
    return send_json(r, c, 200, srv_bank_json(s, r->bank));
}

static void drop_job(srv *s, srv_job *j)
{
    pthread_mutex_lock(&s->mu);
    srv_job_release(s, j);
    pthread_mutex_unlock(&s->mu);
}

/* Checks the image header and hands the job to the queue; answers now on refusal. */
static enum MHD_Result submit(srv *s, struct MHD_Connection *c, req *r, srv_job *j)
{
    int w, h;
    if (adi_io_probe_image("image", j->img, j->img_len, &w, &h) != AD_OK) {
        drop_job(s, j);
        return send_error(r, c, 422, "invalid_image", "%s", ad_errmsg());
    }
    if ((size_t)w * (size_t)h > s->max_pixels) {
        drop_job(s, j);
        srv_metrics_reject(s->metrics, SRV_REJ_TOO_MANY_PIXELS);
        return send_error(r, c, 422, "too_many_pixels",
                          "image is %d x %d = %zu pixels, more than --max-pixels %zu "
                          "(refused before decoding)", w, h, (size_t)w * (size_t)h, s->max_pixels);
    }
    j->ver = srv_bank_acquire(s, j->bank);
    if (!j->ver) {
        drop_job(s, j);
        return send_error(r, c, 503, "not_ready", "bank %s is not loaded", j->bank->name);
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    j->conn = c;
    j->t_enqueue = srv_now();
    j->deadline = j->t_enqueue + s->timeout_ms / 1e3;
    j->refs = 1; /* the request's */
    if (srv_enqueue(s, j)) {
        drop_job(s, j);
        srv_metrics_reject(s->metrics, SRV_REJ_QUEUE_FULL);
        return send_error(r, c, 503, "queue_full", "all %d queue slots are taken; retry later",
                          s->queue_cap);
    }
    r->job = j;
    return MHD_YES;
}

static srv_job *new_job(req *r, job_kind kind)
{
    srv_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->refs = 1;
    j->kind = kind;
    j->bank = r->bank;
    j->fd = -1;
    return j;
}

/* srv_part_fn of the predict route: the first `image` field is the image, the rest ignored. */
static int predict_part(void *ctx, const char *name, const char *filename, const uint8_t *data,
                        size_t len, char *err, size_t errn)
{
    (void)filename;
    (void)err;
    (void)errn;
    req *r = ctx;
    if (!name || strcmp(name, "image")) return 0; /* other fields are ignored */
    if (r->pp_images++ == 0) {
        r->img_off = (size_t)(data - r->body);
        r->img_len = len;
    }
    return 0;
}

/* Parses the complete multipart body: the predict route keeps its image as the body, a form
 * route its parts. 0, or the error answered. */
static int multipart_finish(req *r, struct MHD_Connection *c, enum MHD_Result *ret)
{
    char err[300];
    int code;
    if (r->rt->flags & R_FORM) {
        srv_form f = {r->parts, r->n_parts, r->parts_cap};
        code = srv_multipart_parse(r->body, r->len, r->boundary, srv_form_part_fn, &f, err,
                                   sizeof err);
        r->parts = f.parts;
        r->n_parts = f.n_parts;
        r->parts_cap = f.parts_cap;
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
    } else {
        code = srv_multipart_parse(r->body, r->len, r->boundary, predict_part, r, err, sizeof err);
        if (!code && r->pp_images == 1) {
            memmove(r->body, r->body + r->img_off, r->img_len);
            r->len = r->img_len;
        }
    }
    if (code) {
        *ret = send_error(r, c, code, code == 400 ? "bad_request" : "internal", "%s", err);
        return -1;
    }
    return 0;
}

static enum MHD_Result h_predict(srv *s, struct MHD_Connection *c, req *r)
{
    srv_predict_opts o;
    char err[300];
    if (srv_parse_predict_query(MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "threshold"),
                                MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "outputs"),
                                MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "id"),
                                MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "patch"),
                                MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                            MHD_HTTP_HEADER_ACCEPT),
                                &o, err, sizeof err))
        return send_error(r, c, 400, "bad_request", "%s", err);
    const char *id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "id");
    if (r->multipart) {
        enum MHD_Result ret;
        if (multipart_finish(r, c, &ret)) return ret;
        if (r->pp_images == 0)
            return send_error(r, c, 400, "bad_request", "multipart body has no 'image' field");
        if (r->pp_images > 1)
            return send_error(r, c, 400, "bad_request", "multipart body has %d 'image' fields",
                              r->pp_images);
    }
    if (r->len == 0) return send_error(r, c, 400, "bad_request", "empty body: send the image");
    srv_job *j = new_job(r, JOB_PREDICT);
    if (!j || (id && !(j->id = strdup(id)))) {
        free(j);
        return send_error(r, c, 500, "internal", "out of memory");
    }
    j->img = r->body;
    j->img_len = r->len;
    r->body = NULL;
    r->len = r->cap = 0;
    j->want_map = o.want_map;
    j->want_overlay = o.want_overlay;
    j->want_grid = o.want_grid;
    j->want_nearest = o.want_nearest;
    j->patch = o.patch;
    j->want_png = o.want_png;
    j->thr_override = o.thr_override;
    j->thr = o.thr;
    return submit(s, c, r, j);
}

/* The page (src/serve/page.html, built into the binary by CMake). */
extern const unsigned char srv_page_html[];
extern const size_t srv_page_html_len;
static enum MHD_Result h_page(srv *s, struct MHD_Connection *c, req *r)
{
    (void)s;
    char *body = malloc(srv_page_html_len);
    if (!body) return send_error(r, c, 500, "internal", "out of memory");
    memcpy(body, srv_page_html, srv_page_html_len);
    return send_body(r, c, 200, "text/html; charset=utf-8", body, srv_page_html_len, NULL, NULL);
}

/* Parses the form and counts its image files; answers the error itself when there is one. */
static int form_close(req *r, struct MHD_Connection *c, int *n_images, enum MHD_Result *ret)
{
    if (multipart_finish(r, c, ret)) return -1;
    char err[300];
    if (srv_form_images(r->parts, r->n_parts, n_images, err, sizeof err)) {
        *ret = send_error(r, c, 400, "bad_request", "%s", err);
        return -1;
    }
    return 0;
}

/* Every image part's header checked against --max-pixels before any decoding. */
static int form_probe(srv *s, req *r, struct MHD_Connection *c, enum MHD_Result *ret)
{
    for (int i = 0; i < r->n_parts; i++) {
        srv_part *p = &r->parts[i];
        if (strcmp(p->field, "image") && strcmp(p->field, "calibrate")) continue;
        int w, h;
        const char *nm = p->filename ? p->filename : p->field;
        if (adi_io_probe_image(nm, p->data, p->len, &w, &h) != AD_OK) {
            *ret = send_error(r, c, 422, "invalid_image", "%s", ad_errmsg());
            return -1;
        }
        if ((size_t)w * (size_t)h > s->max_pixels) {
            srv_metrics_reject(s->metrics, SRV_REJ_TOO_MANY_PIXELS);
            *ret = send_error(r, c, 422, "too_many_pixels",
                              "%s is %d x %d = %zu pixels, more than --max-pixels %zu", nm, w, h,
                              (size_t)w * (size_t)h, s->max_pixels);
            return -1;
        }
    }
    return 0;
}

static srv_job *form_job(req *r, job_kind kind)
{
    srv_job *j = new_job(r, kind);
    if (!j) return NULL;
    j->parts = r->parts;
    j->n_parts = r->n_parts;
    r->parts = NULL;
    r->n_parts = r->parts_cap = 0;
    return j;
}

/* Queues a fit or references job; fits have no --timeout-ms (they take minutes on big sets). */
static enum MHD_Result submit_form(srv *s, struct MHD_Connection *c, req *r, srv_job *j)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    j->conn = c;
    j->t_enqueue = srv_now();
    j->deadline = j->t_enqueue + 3600.0;
    j->refs = 1;
    if (srv_enqueue(s, j)) {
        srv_metrics_reject(s->metrics, SRV_REJ_QUEUE_FULL);
        return MHD_NO; /* the caller answers */
    }
    r->job = j;
    return MHD_YES;
}

void srv_unpend_fit(srv *s, const char *name)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < sizeof s->fit_pending / sizeof s->fit_pending[0]; i++)
        if (s->fit_pending[i] && !strcmp(s->fit_pending[i], name)) {
            free(s->fit_pending[i]);
            s->fit_pending[i] = NULL;
        }
    pthread_mutex_unlock(&s->mu);
}

/* POST /v1/banks/{name}/fit: a new bank from good images, written into --bank-dir. */
static enum MHD_Result h_fit(srv *s, struct MHD_Connection *c, req *r)
{
    enum MHD_Result ret;
    int n_img;
    if (form_close(r, c, &n_img, &ret)) return ret;
    if (!s->bank_dir)
        return send_error(r, c, 403, "forbidden", "fitting on the server is off: start the service "
                                                  "with --bank-dir DIR");
    if (!srv_bank_name_ok(r->arg))
        return send_error(r, c, 400, "bad_request",
                          "bank name '%.80s': use 1 to 64 of A-Z a-z 0-9 _ -", r->arg);
    if (srv_find_bank(s, r->arg))
        return send_error(r, c, 409, "conflict", "a bank named '%s' is served already; grow it with "
                                                 "POST /v1/banks/%s/references", r->arg, r->arg);
    ad_bank_params p;
    char err[300];
    if (srv_fit_settings(r->parts, r->n_parts, &p, err, sizeof err))
        return send_error(r, c, 400, "bad_request", "%s", err);
    if (form_probe(s, r, c, &ret)) return ret;
    if (s->n_banks >= s->banks_cap)
        return send_error(r, c, 507, "insufficient_storage", "at most %d banks can be added",
                          SRV_MAX_NEW_BANKS);
    /* reserve the name while it is being fitted */
    pthread_mutex_lock(&s->mu);
    int slot = -1, busy = 0;
    for (int i = 0; i < (int)(sizeof s->fit_pending / sizeof s->fit_pending[0]); i++) {
        if (s->fit_pending[i] && !strcmp(s->fit_pending[i], r->arg)) busy = 1;
        if (!s->fit_pending[i] && slot < 0) slot = i;
    }
    if (!busy && slot >= 0) s->fit_pending[slot] = strdup(r->arg);
    int reserved = !busy && slot >= 0 && s->fit_pending[slot];
    pthread_mutex_unlock(&s->mu);
    if (busy) return send_error(r, c, 409, "conflict", "bank '%s' is being fitted already", r->arg);
    if (!reserved) return send_error(r, c, 503, "busy", "too many fits at once; retry later");
    srv_job *j = form_job(r, JOB_FIT);
    if (j) j->new_name = strdup(r->arg);
    if (!j || !j->new_name) {
        srv_unpend_fit(s, r->arg);
        if (j) drop_job(s, j);
        return send_error(r, c, 500, "internal", "out of memory");
    }
    j->fit_params = p;
    if (submit_form(s, c, r, j) != MHD_YES) {
        srv_unpend_fit(s, r->arg);
        drop_job(s, j);
        return send_error(r, c, 503, "queue_full", "all %d queue slots are taken; retry later",
                          s->queue_cap);
    }
    return MHD_YES;
}

/* POST /v1/banks/{name}/references: good images appended to a served bank (written back to its
 * file atomically, then swapped in as a reload is). */
static enum MHD_Result h_references(srv *s, struct MHD_Connection *c, req *r)
{
    enum MHD_Result ret;
    int n_img;
    if (form_close(r, c, &n_img, &ret)) return ret;
    int recal;
    char err[300];
    if (srv_references_settings(r->parts, r->n_parts, &recal, err, sizeof err))
        return send_error(r, c, 400, "bad_request", "%s", err);
    if (form_probe(s, r, c, &ret)) return ret;
    pthread_mutex_lock(&s->mu);
    int busy = r->bank->changing;
    if (!busy) r->bank->changing = 1;
    pthread_mutex_unlock(&s->mu);
    if (busy)
        return send_error(r, c, 409, "conflict", "bank '%s' is being grown already; retry after it",
                          r->bank->name);
    srv_job *j = form_job(r, JOB_ADD_REFS);
    if (j) j->recalibrate = recal; /* before the job is queued: a worker may take it at once */
    if (!j || submit_form(s, c, r, j) != MHD_YES) {
        pthread_mutex_lock(&s->mu);
        r->bank->changing = 0;
        pthread_mutex_unlock(&s->mu);
        if (j) drop_job(s, j);
        return j ? send_error(r, c, 503, "queue_full", "all %d queue slots are taken; retry later",
                              s->queue_cap)
                 : send_error(r, c, 500, "internal", "out of memory");
    }
    return MHD_YES;
}

static enum MHD_Result h_reload(srv *s, struct MHD_Connection *c, req *r)
{
    srv_reload *rl = calloc(1, sizeof *rl);
    if (!rl) return send_error(r, c, 500, "internal", "out of memory");
    rl->bank = r->bank;
    rl->conn = c;
    r->reload = rl;
    srv_reload_enqueue(s, rl);
    return MHD_YES;
}

/* KServe v2 */
static enum MHD_Result h_v2(srv *s, struct MHD_Connection *c, req *r)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "name", "anomalydino");
    cJSON_AddStringToObject(d, "version", ad_version());
    cJSON_AddArrayToObject(d, "extensions");
    return send_json(r, c, 200, d);
}

static cJSON *tensor_meta(const char *name, const char *dt, int nd, const int *shape)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "datatype", dt);
    cJSON_AddItemToObject(o, "shape", cJSON_CreateIntArray(shape, nd));
    return o;
}

static enum MHD_Result h_v2_model(srv *s, struct MHD_Connection *c, req *r)
{
    srv_bank_ver *v = srv_bank_acquire(s, r->bank);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "name", r->bank->name);
    cJSON *vs = cJSON_AddArrayToObject(d, "versions");
    if (v) {
        char ver[13];
        snprintf(ver, sizeof ver, "%.12s", v->sha256);
        cJSON_AddItemToArray(vs, cJSON_CreateString(ver));
    }
    srv_bank_release(s, v);
    cJSON_AddStringToObject(d, "platform", "anomalydino");
    int one = 1, hw[2] = {-1, -1};
    cJSON *in = cJSON_AddArrayToObject(d, "inputs");
    cJSON_AddItemToArray(in, tensor_meta("image", "BYTES", 1, &one));
    cJSON *out = cJSON_AddArrayToObject(d, "outputs");
    cJSON_AddItemToArray(out, tensor_meta("score", "FP64", 1, &one));
    cJSON_AddItemToArray(out, tensor_meta("verdict", "BYTES", 1, &one));
    cJSON_AddItemToArray(out, tensor_meta("anomaly_map", "FP32", 2, hw));
    return send_json(r, c, 200, d);
}

static enum MHD_Result h_v2_model_ready(srv *s, struct MHD_Connection *c, req *r)
{
    int ready = atomic_load(&s->ready);
    if (!ready) return send_error(r, c, 503, "not_ready", "model %s is not ready", r->bank->name);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "name", r->bank->name);
    cJSON_AddBoolToObject(d, "ready", 1);
    return send_json(r, c, 200, d);
}

static enum MHD_Result h_v2_infer(srv *s, struct MHD_Connection *c, req *r)
{
    srv_infer_req q;
    char err[300];
    int code = srv_parse_infer((const char *)r->body, r->len, &q, err, sizeof err);
    if (code) return send_error(r, c, code, code == 400 ? "bad_request" : "internal", "%s", err);
    srv_job *j = new_job(r, JOB_KSERVE);
    if (!j) {
        srv_infer_req_free(&q);
        return send_error(r, c, 500, "internal", "out of memory");
    }
    j->id = q.id;
    j->img = q.img;
    j->img_len = q.img_len;
    j->want_map = q.want_map;
    j->thr_override = q.have_thr;
    j->thr = q.thr;
    return submit(s, c, r, j);
}

/* The routes. Order matters only for patterns that could match the same path. */
static const route routes[] = {
    {"GET", "/", R_PUBLIC, h_page},
    {"GET", "/health/live", R_PUBLIC, h_live},
    {"GET", "/health/ready", R_PUBLIC, h_ready},
    {"GET", "/v2/health/live", R_PUBLIC, h_live},
    {"GET", "/v2/health/ready", R_PUBLIC, h_ready},
    {"GET", "/metrics", 0, h_metrics},
    {"GET", "/v1/banks", 0, h_banks},
    {"GET", "/v1/banks/{}", R_BANK, h_bank},
    {"POST", "/v1/banks/{}/predict", R_BANK | R_READY | R_BODY_IMAGE, h_predict},
    {"POST", "/v1/banks/{}/reload", R_BANK | R_READY, h_reload},
    {"POST", "/v1/banks/{}/fit", R_ADMIN | R_READY | R_FORM, h_fit},
    {"POST", "/v1/banks/{}/references", R_BANK | R_ADMIN | R_READY | R_FORM, h_references},
    {"GET", "/v2", 0, h_v2},
    {"GET", "/v2/models/{}", R_BANK, h_v2_model},
    {"GET", "/v2/models/{}/ready", R_BANK, h_v2_model_ready},
    {"POST", "/v2/models/{}/infer", R_BANK | R_READY | R_BODY_JSON, h_v2_infer},
};

/* The route for method + path; *status 404 (no such path) or 405 (path with other methods). */
static const route *find_route(const char *method, const char *path, char **arg, int *status,
                               const route **other)
{
    *status = 404;
    *other = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        char *a;
        if (!srv_match_path(routes[i].pattern, path, &a)) continue;
        if (!strcmp(routes[i].method, method) ||
            (!strcmp(method, "HEAD") && !strcmp(routes[i].method, "GET"))) {
            free(*arg);
            *arg = a;
            return &routes[i];
        }
        free(a);
        *status = 405;
        *other = &routes[i];
    }
    return NULL;
}

/* First call of a request: route, key, limits; an error here is answered at once, before any
 * of the body is read. */
static void begin(srv *s, struct MHD_Connection *c, req *r, const char *url, const char *method)
{
    int status;
    const route *other;
    r->rt = find_route(method, url, &r->arg, &status, &other);
    if (!r->rt) {
        if (status == 405) {
            r->rt = other; /* for the Allow header */
            set_error(r, 405, "method_not_allowed", "%s is not allowed on %s (use %s)", method,
                      url, other->method);
        } else {
            set_error(r, 404, "not_found", "no endpoint %s %s", method, url);
        }
        r->rt = status == 405 ? other : NULL;
        return;
    }
    unsigned f = r->rt->flags;
    if (!(f & R_PUBLIC) && s->have_key && !key_ok(s, c)) {
        set_error(r, 401, "unauthorized",
                  "missing or wrong API key (send Authorization: Bearer KEY or X-API-Key: KEY)");
        return;
    }
    if ((f & R_ADMIN) && !s->have_admin) {
        set_error(r, 403, "forbidden",
                  "building and growing banks is off: start the service with --admin-key-file");
        return;
    }
    if ((f & R_ADMIN) && !admin_ok(s, c)) {
        set_error(r, 401, "unauthorized",
                  "this endpoint needs the admin key (Authorization: Bearer ADMIN_KEY)");
        return;
    }
    if (f & R_BANK) {
        r->bank = srv_find_bank(s, r->arg);
        if (!r->bank) {
            set_error(r, 404, "unknown_bank", "no bank named '%.100s'", r->arg);
            return;
        }
    }
    if (atomic_load(&s->draining) && !(f & R_PUBLIC)) {
        set_error(r, 503, "shutting_down", "the service is shutting down");
        return;
    }
    if ((f & R_READY) && !atomic_load(&s->ready)) {
        set_error(r, 503, "not_ready", "the service is still loading the weights and banks");
        return;
    }
    unsigned long long n;
    if (srv_content_length_over(
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH),
            s->max_body, &n)) {
        srv_metrics_reject(s->metrics, SRV_REJ_TOO_LARGE);
        set_error(r, 413, "too_large", "Content-Length %llu is over --max-body %zu bytes", n,
                  s->max_body);
        return;
    }
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (f & R_FORM) {
        char mt[128];
        srv_media_type(ctype, mt, sizeof mt);
        if (strcmp(mt, "multipart/form-data")) {
            set_error(r, 415, "unsupported_media_type",
                      "Content-Type '%s': send multipart/form-data with 'image' files",
                      mt[0] ? mt : "(none)");
            return;
        }
        r->multipart = 1;
        if (srv_multipart_boundary(ctype, r->boundary, sizeof r->boundary))
            set_error(r, 400, "bad_request", "multipart/form-data without a boundary");
        return;
    }
    if (f & (R_BODY_IMAGE | R_BODY_JSON)) {
        char mt[128];
        srv_media_type(ctype, mt, sizeof mt);
        if (f & R_BODY_JSON) {
            if (mt[0] && strcmp(mt, "application/json"))
                set_error(r, 415, "unsupported_media_type",
                          "Content-Type '%s': send application/json", mt);
            return;
        }
        if (!strcmp(mt, "multipart/form-data")) {
            r->multipart = 1;
            if (srv_multipart_boundary(ctype, r->boundary, sizeof r->boundary))
                set_error(r, 400, "bad_request", "multipart/form-data without a boundary");
        } else if (strcmp(mt, "image/png") && strcmp(mt, "image/jpeg") &&
                   strcmp(mt, "application/octet-stream")) {
            set_error(r, 415, "unsupported_media_type",
                      "Content-Type '%s': send image/png, image/jpeg or multipart/form-data with "
                      "an 'image' field", mt[0] ? mt : "(none)");
        }
    }
}

static enum MHD_Result finish_job(srv *s, struct MHD_Connection *c, req *r)
{
    srv_job *j = r->job;
    pthread_mutex_lock(&s->mu);
    job_state st = j->state;
    char *body = j->body;
    size_t len = j->body_len;
    j->body = NULL;
    j->resumed = 0;
    pthread_mutex_unlock(&s->mu);
    enum MHD_Result ret;
    if (st == JOB_DONE) {
        const char *v = j->scored ? (j->verdict == AD_VERDICT_NG ? "NG" : j->verdict == AD_VERDICT_OK ? "OK" : "none") : NULL;
        if (j->scored) {
            srv_metrics_score(s, j->bank, j->score);
            for (int k = 0; k < SRV_STAGE_QUEUE; k++) srv_metrics_stage(s->metrics, (srv_stage)k, j->stage_ms[k]);
        }
        srv_metrics_stage(s->metrics, SRV_STAGE_TOTAL, 1e3 * (srv_now() - j->t_enqueue));
        ret = send_body(r, c, j->http_code, j->content_type, body, len, v, j);
    } else if (st == JOB_TIMEDOUT) {
        free(body);
        srv_metrics_reject(s->metrics, SRV_REJ_TIMEOUT);
        ret = send_error(r, c, 504, "timeout", "no answer within --timeout-ms %d", s->timeout_ms);
    } else { /* cancelled: the client is gone */
        free(body);
        srv_metrics_reject(s->metrics, SRV_REJ_CLIENT_GONE);
        ret = MHD_NO;
    }
    pthread_mutex_lock(&s->mu);
    j->conn = NULL;
    srv_job_release(s, j);
    pthread_mutex_unlock(&s->mu);
    r->job = NULL;
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    srv *s = cls;
    req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->s = s;
        r->t_start = srv_now();
        *con_cls = r;
        pthread_mutex_lock(&s->mu);
        s->active_requests++;
        r->counted = 1;
        pthread_mutex_unlock(&s->mu);
        begin(s, c, r, url, method);
        if (r->err_code) return send_pending_error(r, c); /* before the body */
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->err_code) return MHD_YES; /* discarding after an error */
        r->received += n;
        if (r->received > s->max_body) {
            srv_metrics_reject(s->metrics, SRV_REJ_TOO_LARGE);
            set_error(r, 413, "too_large", "the body is larger than --max-body %zu bytes", s->max_body);
            return send_pending_error(r, c); /* the rest is not read: the connection closes */
        }
        /* a multipart body is kept whole (within --max-body) and parsed when complete */
        if (r->multipart || (r->rt && (r->rt->flags & (R_BODY_IMAGE | R_BODY_JSON)))) {
            if (append_body(r, upload_data, n)) {
                set_error(r, 500, "internal", "out of memory for the body");
                return send_pending_error(r, c);
            }
        } /* else: a body on a route that takes none is read and dropped */
        return MHD_YES;
    }
    if (r->job) return finish_job(s, c, r);
    if (r->reload) {
        srv_reload *rl = r->reload;
        r->reload = NULL;
        char *body = rl->body;
        int code = rl->http_code;
        free(rl);
        if (!body) return send_error(r, c, 500, "internal", "out of memory");
        return send_body(r, c, code, "application/json", body, strlen(body), NULL, NULL);
    }
    if (r->err_code) return send_pending_error(r, c);
    return r->rt->fn(s, c, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    srv *s = cls;
    req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    pthread_mutex_lock(&s->mu);
    if (r->job) {
        srv_job *j = r->job;
        if (j->state == JOB_QUEUED) { /* nobody will read the answer */
            j->state = JOB_CANCELLED;
            srv_queue_remove_locked(s, j);
        }
        j->conn = NULL;
        srv_job_release(s, j);
    }
    if (r->counted) s->active_requests--;
    pthread_cond_broadcast(&s->idle_cond);
    pthread_mutex_unlock(&s->mu);
    if (r->reload) { /* cannot happen while suspended; kept for safety */
        free(r->reload->body);
        free(r->reload);
    }
    free(r->arg);
    free(r->body);
    srv_parts_free(r->parts, r->n_parts);
    free(r);
}

int srv_http_start(srv *s)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME;
    if (s->ipv6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)s->port);
        if (inet_pton(AF_INET6, s->host, &a->sin6_addr) != 1) return -1;
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)s->port);
        if (inet_pton(AF_INET, s->host, &a->sin_addr) != 1) return -1;
    }
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)s->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &ss,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, s->conn_memory,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->max_connections,
        MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, MHD_OPTION_END);
    if (!s->daemon) return -1;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (di) s->port = di->port;
    return 0;
}

void srv_http_stop(srv *s)
{
    if (s->daemon) MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}
