/* The pure request parsing of the service (serve_parse.c): everything a request's bytes decide
 * before any model work, callable without libmicrohttpd, a socket or a running service (the
 * fuzz target fuzz/fuzz_serve_request.c drives it). serve_http.c calls these and turns a
 * nonzero result into the JSON error answer; the messages are the answers' messages.
 *
 * Functions that can fail return 0, or the HTTP status of the refusal (400 bad_request, 500
 * internal: out of memory) with the reason in err (errn bytes, always terminated). */
#ifndef AD_SERVE_PARSE_H
#define AD_SERVE_PARSE_H

#include "serve/serve.h"

#include <stddef.h>
#include <stdint.h>

/* Strict number: the whole string, finite. 0 or -1. */
int srv_parse_num(const char *t, double *out);

/* Media type of a Content-Type header without parameters and spaces, lower case ("" if h is
 * NULL); truncated to n - 1 bytes. */
void srv_media_type(const char *h, char *out, size_t n);

/* The boundary parameter of a multipart/form-data Content-Type (quoted or not, 1 to 200 bytes);
 * 0, or -1 when there is none. */
int srv_multipart_boundary(const char *content_type, char *out, size_t n);

/* Content-Length over max_body: 1 (with the value in *n), 0 otherwise (absent, unparsable or
 * within the limit: libmicrohttpd itself refuses an unparsable length). */
int srv_content_length_over(const char *cl, size_t max_body, unsigned long long *n);

/* The key a request presents: "Authorization: Bearer KEY" (scheme case-insensitive, spaces
 * after it skipped), else X-API-Key; NULL if neither. Points into the header values. */
const char *srv_presented_key(const char *authorization, const char *x_api_key);

/* Whether path matches a route pattern ("{}": one non-empty segment, copied to *arg with
 * malloc; a trailing slash is accepted). 1 or 0 (then *arg is NULL). */
int srv_match_path(const char *pattern, const char *path, char **arg);

/* A bank name a client may create: 1 to 64 of A-Z a-z 0-9 _ -. */
int srv_bank_name_ok(const char *n);

/* Query of POST /v1/banks/{name}/predict (each argument the decoded value or NULL). */
typedef struct {
    int want_map, want_overlay, want_grid, want_nearest, want_png;
    int patch;           /* outputs=nearest: the patch index */
    int thr_override;
    double thr;
} srv_predict_opts;
int srv_parse_predict_query(const char *threshold, const char *outputs, const char *id,
                            const char *patch, const char *accept, srv_predict_opts *o,
                            char *err, size_t errn);

/* Body of POST /v2/models/{name}/infer (KServe v2): the image (base64-decoded, malloc'ed, may be
 * empty), the outputs asked for, the threshold and the id (malloc'ed or NULL). */
typedef struct {
    uint8_t *img;
    size_t img_len;
    int want_map;
    int have_thr;
    double thr;
    char *id;
} srv_infer_req;
int srv_parse_infer(const char *body, size_t len, srv_infer_req *o, char *err, size_t errn);
void srv_infer_req_free(srv_infer_req *o);

/* Standard base64 (padding optional, no whitespace) to bytes (malloc'ed); -1 if malformed. */
int srv_unbase64(const char *txt, size_t n, uint8_t **out, size_t *len);

/* multipart/form-data body (RFC 7578) between "--BOUNDARY" delimiters: for each part, its
 * Content-Disposition name and filename (NULL when absent; a part without a name is passed with
 * name NULL) and its bytes (pointing into body). Anything before the first delimiter, a part
 * without its blank line, or a body without the closing "--BOUNDARY--" is malformed. The
 * callback returns 0 to go on, or an HTTP status (its message in err) to stop. */
typedef int (*srv_part_fn)(void *ctx, const char *name, const char *filename,
                           const uint8_t *data, size_t len, char *err, size_t errn);
int srv_multipart_parse(const uint8_t *body, size_t len, const char *boundary, srv_part_fn fn,
                        void *ctx, char *err, size_t errn);

/* The parts of a fit / references form (every named part kept, at most SRV_MAX_FORM_PARTS,
 * field names shorter than srv_part.field). */
#define SRV_MAX_FORM_PARTS 4096
typedef struct {
    srv_part *parts;
    int n_parts, parts_cap;
} srv_form;
int srv_form_add(srv_form *f, const char *name, const char *filename, const uint8_t *data,
                 size_t len, char *err, size_t errn);
/* srv_part_fn over an srv_form */
int srv_form_part_fn(void *ctx, const char *name, const char *filename, const uint8_t *data,
                     size_t len, char *err, size_t errn);
/* The value of a non-file part (truncated to n - 1 bytes), or NULL. */
const char *srv_form_value(const srv_part *p, int n_parts, const char *field, char *buf,
                           size_t n);
/* A 1/true/on or 0/false/off setting (dflt when absent); -1 for anything else. */
int srv_form_flag(const srv_part *p, int n_parts, const char *field, int dflt, int *out);
/* The form's image files: 0 with their count, or 400 (empty file, none at all). */
int srv_form_images(const srv_part *p, int n_parts, int *n_images, char *err, size_t errn);
/* fit's settings (resolution, rotate, mask) over the defaults of ad_bank_default_params. */
int srv_fit_settings(const srv_part *p, int n_parts, ad_bank_params *out, char *err, size_t errn);
/* references' settings: recalibrate, and no calibration images. */
int srv_references_settings(const srv_part *p, int n_parts, int *recalibrate, char *err,
                            size_t errn);

#endif
