/* Prometheus text exposition (version 0.0.4) of the service's counters and histograms. */
#include "serve/serve.h"
#include "detect/detect.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* seconds */
static const double lat_bounds[SRV_N_LAT_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,   0.25,   0.5,   1,    2.5,   5,
                                                     10,    30};
/* cosine distances: most scores of a part lie well below 1 */
static const double score_bounds[SRV_N_SCORE_BUCKETS] = {0.01, 0.02, 0.05, 0.1,  0.15, 0.2, 0.25,
                                                         0.3,  0.35, 0.4,  0.5,  0.6,  0.8, 1.0};

static const char *stage_names[SRV_N_STAGES] = {"decode", "features", "search", "map", "queue",
                                                "total"};
static const char *reject_names[SRV_N_REJ] = {"queue_full", "too_large", "timeout", "client_gone",
                                              "too_many_pixels"};

typedef struct {
    char bank[80];
    int code;
    char verdict[8];
    uint64_t n;
} req_counter;

struct srv_metrics {
    pthread_mutex_t mu;
    req_counter *req;
    int n_req, cap_req;
    srv_hist stage[SRV_N_STAGES];
    uint64_t rejected[SRV_N_REJ];
};

srv_metrics *srv_metrics_new(void)
{
    srv_metrics *m = calloc(1, sizeof *m);
    if (m) pthread_mutex_init(&m->mu, NULL);
    return m;
}

void srv_metrics_free(srv_metrics *m)
{
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m->req);
    free(m);
}

void srv_metrics_request(srv_metrics *m, const char *bank, int code, const char *verdict)
{
    if (!bank) bank = "";
    if (!verdict) verdict = "";
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n_req; i++) {
        req_counter *c = &m->req[i];
        if (c->code == code && !strcmp(c->bank, bank) && !strcmp(c->verdict, verdict)) {
            c->n++;
            pthread_mutex_unlock(&m->mu);
            return;
        }
    }
    /* the label sets are bounded: configured banks (others are counted as ""), a few codes,
     * three verdicts */
    if (m->n_req == m->cap_req) {
        int cap = m->cap_req ? 2 * m->cap_req : 32;
        req_counter *v = realloc(m->req, (size_t)cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&m->mu);
            return;
        }
        m->req = v;
        m->cap_req = cap;
    }
    req_counter *c = &m->req[m->n_req++];
    snprintf(c->bank, sizeof c->bank, "%s", bank);
    c->code = code;
    snprintf(c->verdict, sizeof c->verdict, "%s", verdict);
    c->n = 1;
    pthread_mutex_unlock(&m->mu);
}

static void hist_add(srv_hist *h, const double *bounds, int nb, double v)
{
    int i = 0;
    while (i < nb && v > bounds[i]) i++;
    h->bucket[i]++;
    h->sum += v;
    h->count++;
}

void srv_metrics_stage(srv_metrics *m, srv_stage st, double ms)
{
    pthread_mutex_lock(&m->mu);
    hist_add(&m->stage[st], lat_bounds, SRV_N_LAT_BUCKETS, ms / 1e3);
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_reject(srv_metrics *m, srv_reject r)
{
    pthread_mutex_lock(&m->mu);
    m->rejected[r]++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_score(srv *s, srv_bank *b, double score)
{
    pthread_mutex_lock(&s->mu);
    int i = 0;
    while (i < SRV_N_SCORE_BUCKETS && !(score <= score_bounds[i])) i++;
    b->score_bucket[i]++;
    b->score_sum += score;
    b->score_count++;
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) AD_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n + 1;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* Label values: backslash, double quote and newline escaped. */
static void sb_label(sbuf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\') sb_printf(b, "\\\\");
        else if (*v == '"') sb_printf(b, "\\\"");
        else if (*v == '\n') sb_printf(b, "\\n");
        else sb_printf(b, "%c", *v);
    }
}

static void sb_hist(sbuf *b, const char *name, const char *labels, const srv_hist *h,
                    const double *bounds, int nb)
{
    uint64_t cum = 0;
    for (int i = 0; i <= nb; i++) {
        cum += h->bucket[i];
        if (i < nb) sb_printf(b, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels,
                              labels[0] ? "," : "", bounds[i], cum);
        else sb_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels,
                       labels[0] ? "," : "", cum);
    }
    sb_printf(b, "%s_sum{%s} %.9g\n", name, labels, h->sum);
    sb_printf(b, "%s_count{%s} %" PRIu64 "\n", name, labels, h->count);
}

static const char *rule_name(const ad_bank *b)
{
    return b->rule == AD_THRESH_QUANTILE ? "quantile" : "max";
}

char *srv_metrics_render(srv *s, size_t *len)
{
    sbuf b = {malloc(16384), 0, 16384, 0};
    if (!b.p) return NULL;
    srv_metrics *m = s->metrics;

    pthread_mutex_lock(&m->mu);
    sb_printf(&b, "# HELP anomalydino_requests_total HTTP requests answered, by bank, status code "
                  "and verdict (verdict empty when no score was made).\n"
                  "# TYPE anomalydino_requests_total counter\n");
    for (int i = 0; i < m->n_req; i++) {
        sb_printf(&b, "anomalydino_requests_total{bank=\"");
        sb_label(&b, m->req[i].bank);
        sb_printf(&b, "\",code=\"%d\",verdict=\"%s\"} %" PRIu64 "\n", m->req[i].code,
                  m->req[i].verdict, m->req[i].n);
    }
    sb_printf(&b, "# HELP anomalydino_stage_seconds Time per inference stage (queue: waiting for "
                  "a worker; total: arrival of the whole body to the answer).\n"
                  "# TYPE anomalydino_stage_seconds histogram\n");
    for (int st = 0; st < SRV_N_STAGES; st++) {
        char lab[40];
        snprintf(lab, sizeof lab, "stage=\"%s\"", stage_names[st]);
        sb_hist(&b, "anomalydino_stage_seconds", lab, &m->stage[st], lat_bounds,
                SRV_N_LAT_BUCKETS);
    }
    sb_printf(&b, "# HELP anomalydino_rejected_total Requests refused or abandoned, by reason.\n"
                  "# TYPE anomalydino_rejected_total counter\n");
    for (int r = 0; r < SRV_N_REJ; r++)
        sb_printf(&b, "anomalydino_rejected_total{reason=\"%s\"} %" PRIu64 "\n", reject_names[r],
                  m->rejected[r]);
    pthread_mutex_unlock(&m->mu);

    pthread_mutex_lock(&s->mu);
    sb_printf(&b, "# HELP anomalydino_queue_depth Jobs waiting for a worker.\n"
                  "# TYPE anomalydino_queue_depth gauge\nanomalydino_queue_depth %d\n"
                  "# HELP anomalydino_queue_capacity Size of the job queue (--queue).\n"
                  "# TYPE anomalydino_queue_capacity gauge\nanomalydino_queue_capacity %d\n"
                  "# HELP anomalydino_inflight_jobs Jobs being computed by a worker.\n"
                  "# TYPE anomalydino_inflight_jobs gauge\nanomalydino_inflight_jobs %d\n"
                  "# HELP anomalydino_workers Inference workers (--workers).\n"
                  "# TYPE anomalydino_workers gauge\nanomalydino_workers %d\n",
              s->q_len, s->queue_cap, s->running_jobs, s->n_workers);
    sb_printf(&b, "# HELP anomalydino_ready 1 when the service accepts inference requests.\n"
                  "# TYPE anomalydino_ready gauge\nanomalydino_ready %d\n",
              atomic_load(&s->ready));
    sb_printf(&b, "# HELP anomalydino_reloads_total Successful bank reloads.\n"
                  "# TYPE anomalydino_reloads_total counter\n");
    for (int i = 0; i < s->n_banks; i++) {
        sb_printf(&b, "anomalydino_reloads_total{bank=\"");
        sb_label(&b, s->banks[i].name);
        sb_printf(&b, "\"} %" PRIu64 "\n", s->banks[i].reloads);
    }
    sb_printf(&b, "# HELP anomalydino_reload_failures_total Reloads refused (corrupt or "
                  "mismatched file); the previous version kept serving.\n"
                  "# TYPE anomalydino_reload_failures_total counter\n");
    for (int i = 0; i < s->n_banks; i++) {
        sb_printf(&b, "anomalydino_reload_failures_total{bank=\"");
        sb_label(&b, s->banks[i].name);
        sb_printf(&b, "\"} %" PRIu64 "\n", s->banks[i].reload_failures);
    }
    sb_printf(&b, "# HELP anomalydino_score Image scores per bank (drift shows as a moving "
                  "distribution).\n# TYPE anomalydino_score histogram\n");
    for (int i = 0; i < s->n_banks; i++) {
        srv_bank *bk = &s->banks[i];
        srv_hist h;
        memcpy(h.bucket, bk->score_bucket, sizeof h.bucket);
        h.sum = bk->score_sum;
        h.count = bk->score_count;
        sbuf lab = {malloc(256), 0, 256, 0};
        if (!lab.p) continue;
        sb_printf(&lab, "bank=\"");
        sb_label(&lab, bk->name);
        sb_printf(&lab, "\"");
        if (!lab.oom)
            sb_hist(&b, "anomalydino_score", lab.p, &h, score_bounds, SRV_N_SCORE_BUCKETS);
        free(lab.p);
    }
    sb_printf(&b, "# HELP anomalydino_bank_info The bank version serving now (value 1).\n"
                  "# TYPE anomalydino_bank_info gauge\n");
    for (int i = 0; i < s->n_banks; i++) {
        srv_bank *bk = &s->banks[i];
        srv_bank_ver *v = bk->cur;
        if (!v) continue;
        ad_bank_params p = ad_bank_get_params(v->bank);
        double thr = 0;
        int have = ad_bank_threshold(v->bank, &thr);
        sb_printf(&b, "anomalydino_bank_info{bank=\"");
        sb_label(&b, bk->name);
        sb_printf(&b, "\",sha256=\"%s\",weights=\"", v->sha256);
        sb_label(&b, s->model_name);
        sb_printf(&b, "\",fingerprint=\"%s\",resolution=\"%d\",rotate=\"%d\",mask=\"%d\","
                      "knn=\"%d\",threshold=\"",
                  s->fingerprint, p.resolution, p.rotate, p.mask_test, p.knn_k);
        if (have) sb_printf(&b, "%.17g\",threshold_rule=\"%s\"", thr, rule_name(v->bank));
        else sb_printf(&b, "\",threshold_rule=\"\"");
        sb_printf(&b, ",references=\"%d\",rows=\"%zu\"} 1\n", ad_bank_images(v->bank),
                  ad_bank_rows(v->bank));
    }
    pthread_mutex_unlock(&s->mu);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
