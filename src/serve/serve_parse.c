/* The service's request parsing without libmicrohttpd (see serve_parse.h). */
#include "serve/serve_parse.h"

#include <cjson/cJSON.h>
#include <nettle/base64.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int fail(char *err, size_t errn, int code, const char *fmt, ...) AD_PRINTF(4, 5);
static int fail(char *err, size_t errn, int code, const char *fmt, ...)
{
    if (err && errn) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errn, fmt, ap);
        va_end(ap);
    }
    return code;
}

int srv_parse_num(const char *t, double *out)
{
    if (!t || !*t) return -1;
    char *end;
    errno = 0;
    double v = strtod(t, &end);
    if (*end || errno || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

void srv_media_type(const char *h, char *out, size_t n)
{
    size_t i = 0;
    if (h)
        for (; *h && *h != ';' && i + 1 < n; h++)
            if (!isspace((unsigned char)*h)) out[i++] = (char)tolower((unsigned char)*h);
    out[i] = 0;
}

int srv_multipart_boundary(const char *ct, char *out, size_t n)
{
    if (!ct || n < 2) return -1;
    const char *p = strchr(ct, ';');
    while (p) {
        p++;
        while (*p == ' ' || *p == '\t') p++;
        if (!strncasecmp(p, "boundary=", 9)) {
            p += 9;
            size_t k = 0;
            if (*p == '"') {
                for (p++; *p && *p != '"'; p++) {
                    if (*p == '\\' && p[1]) p++;
                    if (k + 1 >= n || k >= 200) return -1;
                    out[k++] = *p;
                }
                if (*p != '"') return -1;
            } else {
                for (; *p && *p != ';' && *p != ' ' && *p != '\t'; p++) {
                    if (k + 1 >= n || k >= 200) return -1;
                    out[k++] = *p;
                }
            }
            out[k] = 0;
            return k ? 0 : -1;
        }
        p = strchr(p, ';');
    }
    return -1;
}

int srv_content_length_over(const char *cl, size_t max_body, unsigned long long *n)
{
    if (!cl) return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(cl, &end, 10);
    if (errno || end == cl || v <= max_body) return 0;
    *n = v;
    return 1;
}

const char *srv_presented_key(const char *auth, const char *x_api_key)
{
    const char *cand = NULL;
    if (auth && !strncasecmp(auth, "Bearer ", 7)) {
        cand = auth + 7;
        while (*cand == ' ') cand++;
    }
    return cand ? cand : x_api_key;
}

int srv_match_path(const char *pattern, const char *path, char **arg)
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

int srv_bank_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len < 1 || len > 64) return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)n[i]) && n[i] != '_' && n[i] != '-') return 0;
    return 1;
}

int srv_parse_predict_query(const char *thr_s, const char *outs, const char *id,
                            const char *patch_s, const char *accept, srv_predict_opts *o,
                            char *err, size_t errn)
{
    memset(o, 0, sizeof *o);
    double thr = 0;
    if (thr_s && srv_parse_num(thr_s, &thr))
        return fail(err, errn, 400, "threshold=%.40s is not a finite number", thr_s);
    if (outs && *outs) {
        char buf[256];
        if (strlen(outs) >= sizeof buf) return fail(err, errn, 400, "outputs= is too long");
        snprintf(buf, sizeof buf, "%s", outs);
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (!strcmp(t, "map")) o->want_map = 1;
            else if (!strcmp(t, "overlay")) o->want_overlay = 1;
            else if (!strcmp(t, "grid")) o->want_grid = 1;
            else if (!strcmp(t, "nearest")) o->want_nearest = 1;
            else
                return fail(err, errn, 400,
                            "outputs=: unknown output '%.40s' (expected map, overlay, grid, "
                            "nearest)", t);
        }
    }
    if (id && strlen(id) > 256) return fail(err, errn, 400, "id= is longer than 256 bytes");
    double patch = -1;
    if (o->want_nearest && (!patch_s || srv_parse_num(patch_s, &patch) || patch < 0 ||
                            patch != floor(patch) || patch > 1e9))
        return fail(err, errn, 400,
                    "outputs=nearest needs patch=K, the patch's index in the grid (row-major)");
    o->patch = (int)patch;
    o->want_png = accept && strstr(accept, "image/png") && !strstr(accept, "application/json");
    if (thr_s) {
        o->thr_override = 1;
        o->thr = thr;
    }
    return 0;
}

int srv_unbase64(const char *txt, size_t n, uint8_t **out, size_t *len)
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

void srv_infer_req_free(srv_infer_req *o)
{
    free(o->img);
    free(o->id);
    memset(o, 0, sizeof *o);
}

int srv_parse_infer(const char *body, size_t len, srv_infer_req *o, char *err, size_t errn)
{
    memset(o, 0, sizeof *o);
    if (len == 0) return fail(err, errn, 400, "empty body: send an inference request");
    cJSON *doc = cJSON_ParseWithLength(body, len);
    if (!doc || !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return fail(err, errn, 400, "the body is not a JSON object");
    }
    const char *e = NULL;
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(doc, "inputs");
    const cJSON *in = NULL, *it;
    if (!cJSON_IsArray(inputs)) e = "'inputs' must be an array";
    else {
        cJSON_ArrayForEach(it, inputs) {
            const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "datatype");
            if (cJSON_IsString(dt) && !strcmp(dt->valuestring, "BYTES")) {
                if (in) {
                    e = "more than one BYTES input: send one image";
                    break;
                }
                in = it;
            }
        }
        if (!e && !in) e = "no input of datatype BYTES (the image, base64)";
    }
    const cJSON *data = in ? cJSON_GetObjectItemCaseSensitive(in, "data") : NULL;
    const cJSON *s0 = NULL;
    if (!e) {
        if (cJSON_IsArray(data) && cJSON_GetArraySize(data) == 1) {
            s0 = cJSON_GetArrayItem(data, 0);
            if (cJSON_IsArray(s0) && cJSON_GetArraySize(s0) == 1) s0 = cJSON_GetArrayItem(s0, 0);
        }
        if (!cJSON_IsString(s0)) e = "the BYTES input's data must hold one base64 string";
    }
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(doc, "outputs");
    if (!e && outs) {
        if (!cJSON_IsArray(outs)) e = "'outputs' must be an array";
        else
            cJSON_ArrayForEach(it, outs) {
                const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
                if (!cJSON_IsString(nm)) {
                    e = "every requested output needs a name";
                    break;
                }
                if (!strcmp(nm->valuestring, "anomaly_map")) o->want_map = 1;
                else if (strcmp(nm->valuestring, "score") && strcmp(nm->valuestring, "verdict")) {
                    e = "unknown output (expected score, verdict, anomaly_map)";
                    break;
                }
            }
    }
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(doc, "parameters");
    const cJSON *pt = params ? cJSON_GetObjectItemCaseSensitive(params, "threshold") : NULL;
    if (!e && pt) {
        if (!cJSON_IsNumber(pt) || !isfinite(pt->valuedouble))
            e = "parameters.threshold must be a number";
        else {
            o->thr = pt->valuedouble;
            o->have_thr = 1;
        }
    }
    const cJSON *idj = cJSON_GetObjectItemCaseSensitive(doc, "id");
    if (!e && idj && (!cJSON_IsString(idj) || strlen(idj->valuestring) > 256))
        e = "'id' must be a string of at most 256 bytes";
    if (e) {
        cJSON_Delete(doc);
        srv_infer_req_free(o);
        return fail(err, errn, 400, "%s", e);
    }
    if (idj && !(o->id = strdup(idj->valuestring))) {
        cJSON_Delete(doc);
        srv_infer_req_free(o);
        return fail(err, errn, 500, "out of memory");
    }
    int bad = srv_unbase64(s0->valuestring, strlen(s0->valuestring), &o->img, &o->img_len);
    cJSON_Delete(doc);
    if (bad) {
        srv_infer_req_free(o);
        return fail(err, errn, 400, "the image is not valid base64");
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* multipart/form-data                                                                         */
/* ------------------------------------------------------------------------------------------ */

static const uint8_t *find_bytes(const uint8_t *h, size_t hn, const uint8_t *nd, size_t nn)
{
    if (nn == 0 || hn < nn) return NULL;
    const uint8_t *end = h + (hn - nn) + 1;
    while (h < end) {
        const uint8_t *p = memchr(h, nd[0], (size_t)(end - h));
        if (!p) return NULL;
        if (!memcmp(p, nd, nn)) return p;
        h = p + 1;
    }
    return NULL;
}

/* A parameter of a Content-Disposition value (quoted-string or token), malloc'ed; NULL if absent
 * (*oom set when the copy failed). */
static char *disp_param(const char *v, size_t vn, const char *key, int *oom)
{
    size_t kl = strlen(key);
    size_t i = 0;
    while (i < vn) {
        /* next parameter: after a ';' */
        while (i < vn && v[i] != ';') {
            if (v[i] == '"') { /* skip a quoted string */
                for (i++; i < vn && v[i] != '"'; i++)
                    if (v[i] == '\\') i++;
            }
            i++;
        }
        if (i >= vn) break;
        i++;
        while (i < vn && (v[i] == ' ' || v[i] == '\t')) i++;
        if (vn - i > kl && !strncasecmp(v + i, key, kl) && v[i + kl] == '=') {
            i += kl + 1;
            char *out = malloc(vn - i + 1);
            if (!out) {
                *oom = 1;
                return NULL;
            }
            size_t k = 0;
            if (i < vn && v[i] == '"') {
                for (i++; i < vn && v[i] != '"'; i++) {
                    if (v[i] == '\\' && i + 1 < vn) i++;
                    out[k++] = v[i];
                }
            } else {
                for (; i < vn && v[i] != ';' && v[i] != ' ' && v[i] != '\t'; i++) out[k++] = v[i];
            }
            out[k] = 0;
            return out;
        }
    }
    return NULL;
}

/* The most header bytes a part may have (libmicrohttpd's post processor, used before, held a
 * part's headers in its 64 kB buffer). */
#define SRV_MP_MAX_HEADERS 65536

int srv_multipart_parse(const uint8_t *body, size_t len, const char *boundary, srv_part_fn fn,
                        void *ctx, char *err, size_t errn)
{
    size_t bl = strlen(boundary);
    if (bl == 0 || bl > 200) return fail(err, errn, 400, "multipart/form-data without a boundary");
    uint8_t delim[2 + 200 + 2]; /* "\r\n--" BOUNDARY */
    delim[0] = '\r';
    delim[1] = '\n';
    delim[2] = '-';
    delim[3] = '-';
    memcpy(delim + 4, boundary, bl);
    size_t dl = 4 + bl;
    /* the body starts with the first delimiter (without its CRLF) */
    if (len < dl - 2 || memcmp(body, delim + 2, dl - 2))
        return fail(err, errn, 400, "malformed multipart body");
    size_t pos = dl - 2;
    for (;;) {
        /* after a delimiter: "--" closes the body, CRLF starts a part */
        if (len - pos >= 2 && body[pos] == '-' && body[pos + 1] == '-') return 0;
        while (pos < len && (body[pos] == ' ' || body[pos] == '\t')) pos++; /* padding */
        if (len - pos < 2 || body[pos] != '\r' || body[pos + 1] != '\n')
            return fail(err, errn, 400, "malformed or truncated multipart body");
        pos += 2;
        /* part headers up to the blank line, within SRV_MP_MAX_HEADERS bytes */
        const uint8_t *data;
        size_t hlen;
        if (len - pos >= 2 && body[pos] == '\r' && body[pos + 1] == '\n') { /* no headers */
            hlen = 0;
            data = body + pos + 2;
        } else {
            size_t room = len - pos < SRV_MP_MAX_HEADERS ? len - pos : SRV_MP_MAX_HEADERS;
            const uint8_t *hend = find_bytes(body + pos, room, (const uint8_t *)"\r\n\r\n", 4);
            if (!hend) return fail(err, errn, 400, "malformed or truncated multipart body");
            hlen = (size_t)(hend - (body + pos));
            data = hend + 4;
        }
        char *name = NULL, *filename = NULL;
        int oom = 0;
        const char *h = (const char *)body + pos, *he = h + hlen;
        while (h < he) {
            const char *eol = memchr(h, '\n', (size_t)(he - h));
            const char *le = eol ? eol : he;
            size_t ll = (size_t)(le - h);
            if (ll && h[ll - 1] == '\r') ll--;
            static const char cd[] = "content-disposition:";
            if (ll >= sizeof cd - 1 && !strncasecmp(h, cd, sizeof cd - 1) && !name && !filename) {
                const char *v = h + sizeof cd - 1;
                size_t vn = ll - (sizeof cd - 1);
                name = disp_param(v, vn, "name", &oom);
                filename = disp_param(v, vn, "filename", &oom);
            }
            h = eol ? eol + 1 : he;
        }
        if (oom) {
            free(name);
            free(filename);
            return fail(err, errn, 500, "out of memory for the form");
        }
        size_t dpos = (size_t)(data - body);
        const uint8_t *next = find_bytes(data, len - dpos, delim, dl);
        if (!next) {
            free(name);
            free(filename);
            return fail(err, errn, 400, "malformed or truncated multipart body");
        }
        int code = fn(ctx, name, filename, data, (size_t)(next - data), err, errn);
        free(name);
        free(filename);
        if (code) return code;
        pos = (size_t)(next - body) + dl;
    }
}

int srv_form_add(srv_form *f, const char *name, const char *filename, const uint8_t *data,
                 size_t len, char *err, size_t errn)
{
    if (!name) return 0; /* a part without a name is ignored */
    if (f->n_parts >= SRV_MAX_FORM_PARTS || strlen(name) >= sizeof f->parts[0].field)
        return fail(err, errn, 400, "too many form parts, or a field name too long");
    if (f->n_parts == f->parts_cap) {
        int cap = f->parts_cap ? 2 * f->parts_cap : 16;
        srv_part *np = realloc(f->parts, (size_t)cap * sizeof *np);
        if (!np) return fail(err, errn, 500, "out of memory");
        f->parts = np;
        f->parts_cap = cap;
    }
    srv_part *pt = &f->parts[f->n_parts];
    memset(pt, 0, sizeof *pt);
    snprintf(pt->field, sizeof pt->field, "%s", name);
    if (filename && !(pt->filename = strdup(filename)))
        return fail(err, errn, 500, "out of memory");
    if (len) {
        if (!(pt->data = malloc(len))) {
            free(pt->filename);
            return fail(err, errn, 500, "out of memory for the form");
        }
        memcpy(pt->data, data, len);
    }
    pt->len = pt->cap = len;
    f->n_parts++;
    return 0;
}

int srv_form_part_fn(void *ctx, const char *name, const char *filename, const uint8_t *data,
                     size_t len, char *err, size_t errn)
{
    return srv_form_add(ctx, name, filename, data, len, err, errn);
}

void srv_parts_free(srv_part *p, int n)
{
    for (int i = 0; i < n; i++) {
        free(p[i].filename);
        free(p[i].data);
    }
    free(p);
}

const char *srv_form_value(const srv_part *p, int n_parts, const char *field, char *buf, size_t n)
{
    for (int i = 0; i < n_parts; i++)
        if (!strcmp(p[i].field, field) && !p[i].filename) {
            size_t len = p[i].len < n - 1 ? p[i].len : n - 1;
            if (len) memcpy(buf, p[i].data, len);
            buf[len] = 0;
            return buf;
        }
    return NULL;
}

int srv_form_flag(const srv_part *p, int n_parts, const char *field, int dflt, int *out)
{
    char buf[16];
    const char *v = srv_form_value(p, n_parts, field, buf, sizeof buf);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "on")) *out = 1;
    else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "off")) *out = 0;
    else return -1;
    return 0;
}

int srv_form_images(const srv_part *p, int n_parts, int *n_images, char *err, size_t errn)
{
    int n = 0;
    for (int i = 0; i < n_parts; i++)
        if (!strcmp(p[i].field, "image")) {
            if (!p[i].len) return fail(err, errn, 400, "image file %d is empty", n + 1);
            n++;
        }
    if (!n) return fail(err, errn, 400, "the form has no 'image' file");
    *n_images = n;
    return 0;
}

int srv_fit_settings(const srv_part *p, int n_parts, ad_bank_params *out, char *err, size_t errn)
{
    char buf[32];
    ad_bank_params bp = ad_bank_default_params();
    const char *res = srv_form_value(p, n_parts, "resolution", buf, sizeof buf);
    double rv = 0;
    if (res && (srv_parse_num(res, &rv) || rv < 0 || rv > 4096 || rv != floor(rv) ||
                (rv > 0 && rv < 14)))
        return fail(err, errn, 400, "resolution=%.20s: expected 0 or 14..4096", res);
    if (res) bp.resolution = (int)rv;
    int mask;
    if (srv_form_flag(p, n_parts, "rotate", 1, &bp.rotate) ||
        srv_form_flag(p, n_parts, "mask", 0, &mask))
        return fail(err, errn, 400, "rotate= and mask= take 1 or 0");
    bp.mask_refs = bp.mask_test = mask;
    *out = bp;
    return 0;
}

int srv_references_settings(const srv_part *p, int n_parts, int *recalibrate, char *err,
                            size_t errn)
{
    if (srv_form_flag(p, n_parts, "recalibrate", 0, recalibrate))
        return fail(err, errn, 400, "recalibrate= takes 1 or 0");
    for (int i = 0; i < n_parts; i++)
        if (!strcmp(p[i].field, "calibrate"))
            return fail(err, errn, 400,
                        "references takes 'image' files and recalibrate=1 (leave-one-out); "
                        "calibration images are for fit");
    return 0;
}
