/* libFuzzer target: the service's request handling (src/serve/serve_parse.c), without
 * libmicrohttpd or a socket. The input is an HTTP request as text:
 *
 *   METHOD PATH[?QUERY]            request line (libmicrohttpd's part: split here)
 *   Name: value                    headers, up to a blank line ("\n\n" or "\r\n\r\n")
 *   BODY                           the rest, raw bytes
 *
 * The query is split at '&' / '=' and %XX / '+' decoded, as libmicrohttpd does before the
 * service sees it. Then everything the service decides from those bytes runs: the route
 * patterns of serve_http.c, the key headers, Content-Length against --max-body, the media type,
 * the predict query, the multipart boundary and body (both as the predict route reads it and as
 * the fit / references forms do, with their settings), and the KServe v2 JSON body. */
#include "fuzz.h"
#include "serve/serve_parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* the patterns of routes[] in serve_http.c */
static const char *const patterns[] = {
    "/", "/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready", "/metrics",
    "/v1/banks", "/v1/banks/{}", "/v1/banks/{}/predict", "/v1/banks/{}/reload",
    "/v1/banks/{}/fit", "/v1/banks/{}/references", "/v2", "/v2/models/{}",
    "/v2/models/{}/ready", "/v2/models/{}/infer"};

#define MAX_ARGS 32
typedef struct {
    char *key[MAX_ARGS], *val[MAX_ARGS];
    int n;
} args;

static int hexv(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* %XX and '+' decoding in place (libmicrohttpd's MHD_http_unescape) */
static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '+') *w++ = ' ';
        else if (*r == '%' && hexv(r[1]) >= 0 && hexv(r[2]) >= 0) {
            *w++ = (char)(hexv(r[1]) * 16 + hexv(r[2]));
            r += 2;
        } else *w++ = *r;
    }
    *w = 0;
}

static void parse_query(char *q, args *a)
{
    a->n = 0;
    char *save = NULL;
    for (char *t = strtok_r(q, "&", &save); t && a->n < MAX_ARGS; t = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(t, '=');
        if (eq) *eq = 0;
        unescape(t);
        if (eq) unescape(eq + 1);
        a->key[a->n] = t;
        a->val[a->n] = eq ? eq + 1 : "";
        a->n++;
    }
}

static const char *arg(const args *a, const char *k)
{
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->key[i], k)) return a->val[i];
    return NULL;
}

typedef struct {
    int images;
    const uint8_t *img;
    size_t img_len;
} predict_ctx;

static int predict_part(void *ctx, const char *name, const char *filename, const uint8_t *data,
                        size_t len, char *err, size_t errn)
{
    (void)filename;
    (void)err;
    (void)errn;
    predict_ctx *p = ctx;
    if (!name || strcmp(name, "image")) return 0;
    if (p->images++ == 0) {
        p->img = data;
        p->img_len = len;
    }
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_single_thread();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the head: up to the first blank line, at most 64 kB (libmicrohttpd's header memory) */
    size_t head_len = size, body_off = size;
    for (size_t i = 0; i + 1 < size && i < 65536; i++) {
        if (data[i] == '\n' && data[i + 1] == '\n') {
            head_len = i;
            body_off = i + 2;
            break;
        }
        if (i + 3 < size && !memcmp(data + i, "\r\n\r\n", 4)) {
            head_len = i;
            body_off = i + 4;
            break;
        }
    }
    if (head_len > 65536) return 0;
    char *head = malloc(head_len + 1);
    if (!head) return 0;
    memcpy(head, data, head_len);
    head[head_len] = 0;
    const uint8_t *body = data + body_off;
    size_t body_len = size - body_off;

    /* request line */
    char *save = NULL, *line = strtok_r(head, "\r\n", &save);
    char *method = "GET", *target = "/";
    if (line) {
        char *sp = strchr(line, ' ');
        if (sp) {
            *sp = 0;
            method = line;
            target = sp + 1;
            char *sp2 = strchr(target, ' ');
            if (sp2) *sp2 = 0; /* " HTTP/1.1" */
        } else target = line;
    }
    char *query = strchr(target, '?');
    if (query) *query++ = 0;
    /* headers (the first of each name, as MHD_lookup_connection_value gives) */
    const char *ctype = NULL, *auth = NULL, *xkey = NULL, *clen = NULL, *accept = NULL;
    for (char *h = strtok_r(NULL, "\r\n", &save); h; h = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(h, ':');
        if (!colon) continue;
        *colon = 0;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        if (!strcasecmp(h, "Content-Type") && !ctype) ctype = v;
        else if (!strcasecmp(h, "Authorization") && !auth) auth = v;
        else if (!strcasecmp(h, "X-API-Key") && !xkey) xkey = v;
        else if (!strcasecmp(h, "Content-Length") && !clen) clen = v;
        else if (!strcasecmp(h, "Accept") && !accept) accept = v;
    }

    /* routing */
    int infer_route = 0, form_route = 0;
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        char *a = NULL;
        if (srv_match_path(patterns[i], target, &a)) {
            if (a) (void)srv_bank_name_ok(a);
            if (strstr(patterns[i], "infer")) infer_route = 1;
            if (strstr(patterns[i], "/fit") || strstr(patterns[i], "/references")) form_route = 1;
        }
        free(a);
    }
    (void)method;
    const char *key = srv_presented_key(auth, xkey);
    if (key) (void)strlen(key);
    unsigned long long n;
    (void)srv_content_length_over(clen, (size_t)32 << 20, &n);

    char err[300];
    /* the predict query */
    args q = {0};
    char *qcopy = query ? strdup(query) : NULL;
    if (qcopy) parse_query(qcopy, &q);
    srv_predict_opts po;
    (void)srv_parse_predict_query(arg(&q, "threshold"), arg(&q, "outputs"), arg(&q, "id"),
                                  arg(&q, "patch"), accept, &po, err, sizeof err);
    free(qcopy);

    /* the body */
    char mt[128];
    srv_media_type(ctype, mt, sizeof mt);
    char boundary[204];
    if (!strcmp(mt, "multipart/form-data") &&
        !srv_multipart_boundary(ctype, boundary, sizeof boundary)) {
        predict_ctx pc = {0, NULL, 0};
        if (!srv_multipart_parse(body, body_len, boundary, predict_part, &pc, err, sizeof err) &&
            pc.images == 1) {
            volatile unsigned sum = 0;
            for (size_t i = 0; i < pc.img_len; i++) sum += pc.img[i];
            (void)sum;
        }
        if (form_route || body_len < 4096) {
            srv_form f = {NULL, 0, 0};
            if (!srv_multipart_parse(body, body_len, boundary, srv_form_part_fn, &f, err,
                                     sizeof err)) {
                int n_img, recal;
                ad_bank_params bp;
                (void)srv_form_images(f.parts, f.n_parts, &n_img, err, sizeof err);
                (void)srv_fit_settings(f.parts, f.n_parts, &bp, err, sizeof err);
                (void)srv_references_settings(f.parts, f.n_parts, &recal, err, sizeof err);
            }
            srv_parts_free(f.parts, f.n_parts);
        }
    } else if (infer_route || !strcmp(mt, "application/json")) {
        srv_infer_req ir;
        if (!srv_parse_infer((const char *)body, body_len, &ir, err, sizeof err)) {
            volatile unsigned sum = 0;
            for (size_t i = 0; i < ir.img_len; i++) sum += ir.img[i];
            (void)sum;
            srv_infer_req_free(&ir);
        }
    }
    free(head);
    return 0;
}
