/* HTTP front of the service: libmicrohttpd parses, this file routes and answers.
 *
 * The route table below maps a method and a path pattern ("{}" = one segment, captured) to a
 * handler; flags say whether the route needs the key, a body, a known bank in the captured
 * segment and readiness. A new endpoint is one line in the table and one handler. Handlers run
 * on libmicrohttpd's polling thread and must not block: inference goes to the job queue and the
 * connection is suspended until a worker (or the supervisor) resumes it. */
#include "serve/serve.h"
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
    int multipart;
    struct MHD_PostProcessor *pp;
    int pp_images;            /* `image` fields seen */
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

/* Standard base64 (padding optional, no whitespace) to bytes; -1 if malformed. */
static int unbase64(const char *txt, size_t n, uint8_t **out, size_t *len)
{
    struct base64_decode_ctx ctx;
    base64_decode_init(&ctx);
    uint8_t *b = malloc(BASE64_DECODE_LENGTH(n) + 1);
    if (!b) return -1;
    size_t dl = BASE64_DECODE_LENGTH(n) + 1;
    if (!base64_decode_update(&ctx, &dl, b, n, txt) || !base64_decode_final(&ctx)) {
        free(b);
        return -1;
    }
    *out = b;
    *len = dl;
    return 0;
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
    const char *cand = NULL;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth && !strncasecmp(auth, "Bearer ", 7)) {
        cand = auth + 7;
        while (*cand == ' ') cand++;
    }
    if (!cand) cand = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key");
    return cand;
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

/* Media type of the header without parameters, lower case. */
static void media_type(const char *h, char *out, size_t n)
{
    size_t i = 0;
    if (h)
        for (; *h && *h != ';' && i + 1 < n; h++)
            if (!isspace((unsigned char)*h)) out[i++] = (char)tolower((unsigned char)*h);
    out[i] = 0;
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

/* Strict number: the whole string, finite. */
static int parse_num(const char *t, double *out)
{
    if (!t || !*t) return -1;
    char *end;
    errno = 0;
    double v = strtod(t, &end);
    if (*end || errno || !isfinite(v)) return -1;
    *out = v;
    return 0;
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

static enum MHD_Result h_predict(srv *s, struct MHD_Connection *c, req *r)
{
    const char *thr_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "threshold");
    const char *outs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "outputs");
    const char *id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "id");
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    double thr = 0;
    if (thr_s && parse_num(thr_s, &thr))
        return send_error(r, c, 400, "bad_request", "threshold=%.40s is not a finite number", thr_s);
    int want_map = 0, want_ov = 0, want_grid = 0, want_near = 0;
    if (outs && *outs) {
        char buf[256];
        if (strlen(outs) >= sizeof buf)
            return send_error(r, c, 400, "bad_request", "outputs= is too long");
        snprintf(buf, sizeof buf, "%s", outs);
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (!strcmp(t, "map")) want_map = 1;
            else if (!strcmp(t, "overlay")) want_ov = 1;
            else if (!strcmp(t, "grid")) want_grid = 1;
            else if (!strcmp(t, "nearest")) want_near = 1;
            else
                return send_error(r, c, 400, "bad_request",
                                  "outputs=: unknown output '%.40s' (expected map, overlay, grid, "
                                  "nearest)", t);
        }
    }
    if (id && strlen(id) > 256) return send_error(r, c, 400, "bad_request", "id= is longer than 256 bytes");
    const char *patch_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "patch");
    double patch = -1;
    if (want_near && (!patch_s || parse_num(patch_s, &patch) || patch < 0 || patch != floor(patch) ||
                      patch > 1e9))
        return send_error(r, c, 400, "bad_request",
                          "outputs=nearest needs patch=K, the patch's index in the grid (row-major)");
    if (r->multipart) {
        enum MHD_Result done = MHD_destroy_post_processor(r->pp);
        r->pp = NULL;
        if (done != MHD_YES)
            return send_error(r, c, 400, "bad_request", "malformed or truncated multipart body");
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
    j->want_map = want_map;
    j->want_overlay = want_ov;
    j->want_grid = want_grid;
    j->want_nearest = want_near;
    j->patch = (int)patch;
    j->want_png = accept && strstr(accept, "image/png") && !strstr(accept, "application/json");
    if (thr_s) {
        j->thr_override = 1;
        j->thr = thr;
    }
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

/* The form of fit / references: its files move into the job; settings are read here. */
static const char *form_value(req *r, const char *field, char *buf, size_t n)
{
    for (int i = 0; i < r->n_parts; i++)
        if (!strcmp(r->parts[i].field, field) && !r->parts[i].filename) {
            size_t len = r->parts[i].len < n - 1 ? r->parts[i].len : n - 1;
            memcpy(buf, r->parts[i].data, len);
            buf[len] = 0;
            return buf;
        }
    return NULL;
}

static int form_flag(req *r, const char *field, int dflt, int *out)
{
    char buf[16];
    const char *v = form_value(r, field, buf, sizeof buf);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "on")) *out = 1;
    else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "off")) *out = 0;
    else return -1;
    return 0;
}

/* Closes the form and counts its image files; answers the error itself when there is one. */
static int form_close(req *r, struct MHD_Connection *c, int *n_images, enum MHD_Result *ret)
{
    enum MHD_Result done = MHD_destroy_post_processor(r->pp);
    r->pp = NULL;
    if (done != MHD_YES) {
        *ret = send_error(r, c, 400, "bad_request", "malformed or truncated multipart body");
        return -1;
    }
    int n = 0;
    for (int i = 0; i < r->n_parts; i++)
        if (!strcmp(r->parts[i].field, "image")) {
            if (!r->parts[i].len) {
                *ret = send_error(r, c, 400, "bad_request", "image file %d is empty", n + 1);
                return -1;
            }
            n++;
        }
    if (!n) {
        *ret = send_error(r, c, 400, "bad_request", "the form has no 'image' file");
        return -1;
    }
    *n_images = n;
    return 0;
}

static int bank_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len < 1 || len > 64) return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)n[i]) && n[i] != '_' && n[i] != '-') return 0;
    return 1;
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
    if (!bank_name_ok(r->arg))
        return send_error(r, c, 400, "bad_request",
                          "bank name '%.80s': use 1 to 64 of A-Z a-z 0-9 _ -", r->arg);
    if (srv_find_bank(s, r->arg))
        return send_error(r, c, 409, "conflict", "a bank named '%s' is served already; grow it with "
                                                 "POST /v1/banks/%s/references", r->arg, r->arg);
    char buf[32];
    ad_bank_params p = ad_bank_default_params();
    const char *res = form_value(r, "resolution", buf, sizeof buf);
    double rv = 0;
    if (res && (parse_num(res, &rv) || rv < 0 || rv > 4096 || rv != floor(rv) || (rv > 0 && rv < 14)))
        return send_error(r, c, 400, "bad_request", "resolution=%.20s: expected 0 or 14..4096", res);
    if (res) p.resolution = (int)rv;
    int mask;
    if (form_flag(r, "rotate", 1, &p.rotate) || form_flag(r, "mask", 0, &mask))
        return send_error(r, c, 400, "bad_request", "rotate= and mask= take 1 or 0");
    p.mask_refs = p.mask_test = mask;
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
    if (form_flag(r, "recalibrate", 0, &recal))
        return send_error(r, c, 400, "bad_request", "recalibrate= takes 1 or 0");
    for (int i = 0; i < r->n_parts; i++)
        if (!strcmp(r->parts[i].field, "calibrate"))
            return send_error(r, c, 400, "bad_request",
                              "references takes 'image' files and recalibrate=1 (leave-one-out); "
                              "calibration images are for fit");
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
    if (r->len == 0) return send_error(r, c, 400, "bad_request", "empty body: send an inference request");
    cJSON *doc = cJSON_ParseWithLength((const char *)r->body, r->len);
    if (!doc || !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return send_error(r, c, 400, "bad_request", "the body is not a JSON object");
    }
    enum MHD_Result ret;
    const char *err = NULL;
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(doc, "inputs");
    const cJSON *in = NULL, *it;
    if (!cJSON_IsArray(inputs)) err = "'inputs' must be an array";
    else {
        cJSON_ArrayForEach(it, inputs) {
            const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "datatype");
            if (cJSON_IsString(dt) && !strcmp(dt->valuestring, "BYTES")) {
                if (in) {
                    err = "more than one BYTES input: send one image";
                    break;
                }
                in = it;
            }
        }
        if (!err && !in) err = "no input of datatype BYTES (the image, base64)";
    }
    const cJSON *data = in ? cJSON_GetObjectItemCaseSensitive(in, "data") : NULL;
    const cJSON *s0 = NULL;
    if (!err) {
        if (cJSON_IsArray(data) && cJSON_GetArraySize(data) == 1) {
            s0 = cJSON_GetArrayItem(data, 0);
            if (cJSON_IsArray(s0) && cJSON_GetArraySize(s0) == 1) s0 = cJSON_GetArrayItem(s0, 0);
        }
        if (!cJSON_IsString(s0)) err = "the BYTES input's data must hold one base64 string";
    }
    int want_map = 0;
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(doc, "outputs");
    if (!err && outs) {
        if (!cJSON_IsArray(outs)) err = "'outputs' must be an array";
        else
            cJSON_ArrayForEach(it, outs) {
                const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
                if (!cJSON_IsString(nm)) {
                    err = "every requested output needs a name";
                    break;
                }
                if (!strcmp(nm->valuestring, "anomaly_map")) want_map = 1;
                else if (strcmp(nm->valuestring, "score") && strcmp(nm->valuestring, "verdict")) {
                    err = "unknown output (expected score, verdict, anomaly_map)";
                    break;
                }
            }
    }
    double thr = 0;
    int have_thr = 0;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(doc, "parameters");
    const cJSON *pt = params ? cJSON_GetObjectItemCaseSensitive(params, "threshold") : NULL;
    if (!err && pt) {
        if (!cJSON_IsNumber(pt) || !isfinite(pt->valuedouble)) err = "parameters.threshold must be a number";
        else {
            thr = pt->valuedouble;
            have_thr = 1;
        }
    }
    const cJSON *idj = cJSON_GetObjectItemCaseSensitive(doc, "id");
    if (!err && idj && (!cJSON_IsString(idj) || strlen(idj->valuestring) > 256))
        err = "'id' must be a string of at most 256 bytes";
    if (err) {
        ret = send_error(r, c, 400, "bad_request", "%s", err);
        cJSON_Delete(doc);
        return ret;
    }
    srv_job *j = new_job(r, JOB_KSERVE);
    if (!j || (idj && !(j->id = strdup(idj->valuestring)))) {
        free(j);
        cJSON_Delete(doc);
        return send_error(r, c, 500, "internal", "out of memory");
    }
    if (unbase64(s0->valuestring, strlen(s0->valuestring), &j->img, &j->img_len)) {
        cJSON_Delete(doc);
        free(j->id);
        free(j);
        return send_error(r, c, 400, "bad_request", "the image is not valid base64");
    }
    cJSON_Delete(doc);
    j->want_map = want_map;
    j->thr_override = have_thr;
    j->thr = thr;
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

/* Whether path matches pattern; the "{}" segment is copied to *arg (malloc). */
static int match(const char *pattern, const char *path, char **arg)
{
    const char *p = pattern, *u = path;
    *arg = NULL;
    while (*p && *u) {
        if (p[0] == '{' && p[1] == '}') {
            const char *e = strchr(u, '/');
            size_t n = e ? (size_t)(e - u) : strlen(u);
            if (n == 0) break;
            free(*arg);
            *arg = strndup(u, n);
            p += 2;
            u += n;
            continue;
        }
        if (*p != *u) break;
        p++;
        u++;
    }
    if (*p == 0 && (*u == 0 || (u[0] == '/' && u[1] == 0))) return 1;
    free(*arg);
    *arg = NULL;
    return 0;
}

/* The route for method + path; *status 404 (no such path) or 405 (path with other methods). */
static const route *find_route(const char *method, const char *path, char **arg, int *status,
                               const route **other)
{
    *status = 404;
    *other = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        char *a;
        if (!match(routes[i].pattern, path, &a)) continue;
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

static enum MHD_Result pp_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *ctype, const char *enc,
                               const char *data, uint64_t off, size_t size)
{
    req *r = cls;
    if (r->rt && (r->rt->flags & R_FORM)) {
        if (!key) return MHD_YES;
        if (off == 0) { /* a new part */
            if (r->n_parts >= 4096 || strlen(key) >= sizeof r->parts[0].field) {
                set_error(r, 400, "bad_request", "too many form parts, or a field name too long");
                return MHD_NO;
            }
            if (r->n_parts == r->parts_cap) {
                int cap = r->parts_cap ? 2 * r->parts_cap : 16;
                srv_part *np = realloc(r->parts, (size_t)cap * sizeof *np);
                if (!np) {
                    set_error(r, 500, "internal", "out of memory");
                    return MHD_NO;
                }
                r->parts = np;
                r->parts_cap = cap;
            }
            srv_part *pt = &r->parts[r->n_parts++];
            memset(pt, 0, sizeof *pt);
            snprintf(pt->field, sizeof pt->field, "%s", key);
            if (filename && !(pt->filename = strdup(filename))) {
                set_error(r, 500, "internal", "out of memory");
                return MHD_NO;
            }
        }
        srv_part *pt = &r->parts[r->n_parts - 1];
        if (size) { /* the whole body is bounded by --max-body already */
            if (pt->len + size > pt->cap) {
                size_t cap = pt->cap ? pt->cap : 65536;
                while (cap < pt->len + size) cap *= 2;
                uint8_t *nd = realloc(pt->data, cap);
                if (!nd) {
                    set_error(r, 500, "internal", "out of memory for the form");
                    return MHD_NO;
                }
                pt->data = nd;
                pt->cap = cap;
            }
            memcpy(pt->data + pt->len, data, size);
            pt->len += size;
        }
        return MHD_YES;
    }
    if (!key || strcmp(key, "image")) return MHD_YES; /* other fields are ignored */
    if (off == 0) r->pp_images++;
    if (r->pp_images > 1) return MHD_YES;
    if (size && append_body(r, data, size)) {
        srv_metrics_reject(r->s->metrics, SRV_REJ_TOO_LARGE);
        set_error(r, 413, "too_large", "the image is larger than --max-body %zu bytes", r->s->max_body);
        return MHD_NO;
    }
    return MHD_YES;
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
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (!errno && end != cl && n > s->max_body) {
            srv_metrics_reject(s->metrics, SRV_REJ_TOO_LARGE);
            set_error(r, 413, "too_large", "Content-Length %llu is over --max-body %zu bytes", n,
                      s->max_body);
            return;
        }
    }
    if (f & R_FORM) {
        char mt[128];
        media_type(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE), mt,
                   sizeof mt);
        if (strcmp(mt, "multipart/form-data")) {
            set_error(r, 415, "unsupported_media_type",
                      "Content-Type '%s': send multipart/form-data with 'image' files",
                      mt[0] ? mt : "(none)");
            return;
        }
        r->multipart = 1;
        r->pp = MHD_create_post_processor(c, 65536, pp_iter, r);
        if (!r->pp) set_error(r, 400, "bad_request", "multipart/form-data without a boundary");
        return;
    }
    if (f & (R_BODY_IMAGE | R_BODY_JSON)) {
        char mt[128];
        media_type(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE), mt,
                   sizeof mt);
        if (f & R_BODY_JSON) {
            if (mt[0] && strcmp(mt, "application/json"))
                set_error(r, 415, "unsupported_media_type",
                          "Content-Type '%s': send application/json", mt);
            return;
        }
        if (!strcmp(mt, "multipart/form-data")) {
            r->multipart = 1;
            r->pp = MHD_create_post_processor(c, 65536, pp_iter, r);
            if (!r->pp) set_error(r, 400, "bad_request", "multipart/form-data without a boundary");
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
        if (r->pp) {
            if (MHD_post_process(r->pp, upload_data, n) != MHD_YES) {
                set_error(r, 400, "bad_request", "malformed multipart body");
                return send_pending_error(r, c);
            }
        } else if (r->rt && (r->rt->flags & (R_BODY_IMAGE | R_BODY_JSON))) {
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
    if (r->pp) MHD_destroy_post_processor(r->pp);
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
