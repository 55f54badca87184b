/* anomalydino serve: the detector as an HTTP service (GNU libmicrohttpd).
 *
 * Threads: one libmicrohttpd polling thread parses HTTP and routes (never runs inference);
 * N workers, each with its own ad_context, take jobs from one bounded queue; a supervisor
 * answers jobs past their deadline (504) and cancels queued jobs whose client went away; a
 * reloader reads bank files again (POST .../reload and SIGHUP); the main thread waits for
 * signals. The model and every loaded bank version are read-only and shared; a bank version is
 * reference-counted so that a reload never frees the bank a request in flight is using.
 * Everything shared below is guarded by srv.mu unless noted. */
#ifndef AD_SERVE_H
#define AD_SERVE_H

#include "core/core.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct MHD_Daemon;
struct MHD_Connection;

int cmd_serve(int argc, char **argv);

/* --------------------------------------------------------------------------------------- */
/* Metrics (serve_metrics.c): own mutex, updated from every thread                           */
/* --------------------------------------------------------------------------------------- */
#define SRV_N_LAT_BUCKETS 14
#define SRV_N_SCORE_BUCKETS 14
typedef struct {
    uint64_t bucket[SRV_N_LAT_BUCKETS + 1]; /* last one: +Inf */
    double sum;
    uint64_t count;
} srv_hist;

typedef enum { SRV_STAGE_DECODE, SRV_STAGE_FEATURES, SRV_STAGE_SEARCH, SRV_STAGE_MAP,
               SRV_STAGE_QUEUE, SRV_STAGE_TOTAL, SRV_N_STAGES } srv_stage;
typedef enum { SRV_REJ_QUEUE_FULL, SRV_REJ_TOO_LARGE, SRV_REJ_TIMEOUT, SRV_REJ_CLIENT_GONE,
               SRV_REJ_TOO_MANY_PIXELS, SRV_N_REJ } srv_reject;

typedef struct srv_metrics srv_metrics;

/* --------------------------------------------------------------------------------------- */
/* Banks                                                                                     */
/* --------------------------------------------------------------------------------------- */
/* Banks POST .../fit may add to those given at start. */
#define SRV_MAX_NEW_BANKS 64

typedef struct srv_bank_ver {
    ad_bank *bank;
    char sha256[65];
    int refs;                 /* srv.mu; the entry's own reference counts as one */
    double loaded_unix;
} srv_bank_ver;

typedef struct {
    char *name, *path;
    srv_bank_ver *cur;        /* srv.mu */
    uint64_t reloads, reload_failures;   /* srv.mu */
    int changing;             /* srv.mu: a POST .../references is growing this bank */
    char last_error[300];     /* srv.mu: why the last reload failed, "" if it did not */
    /* score histogram (srv.mu) */
    uint64_t score_bucket[SRV_N_SCORE_BUCKETS + 1];
    double score_sum;
    uint64_t score_count;
} srv_bank;

/* --------------------------------------------------------------------------------------- */
/* Jobs: one inference request between the HTTP thread and a worker                         */
/* --------------------------------------------------------------------------------------- */
typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_TIMEDOUT, JOB_CANCELLED } job_state;
typedef enum { JOB_PREDICT, JOB_KSERVE, JOB_FIT, JOB_ADD_REFS } job_kind;

/* One uploaded file or value of a multipart form (fit, references). */
typedef struct {
    char field[24];           /* image, calibrate, or a setting */
    char *filename;           /* may be NULL */
    uint8_t *data;
    size_t len, cap;
} srv_part;

typedef struct srv_job {
    int refs;                 /* srv.mu: the request and the queue/worker */
    job_state state;          /* srv.mu */
    int resumed;              /* srv.mu: the connection was resumed (once per suspend) */
    struct srv_job *qnext;    /* queue link */
    struct srv_job *prev, *next;  /* list of outstanding jobs (supervisor) */
    struct MHD_Connection *conn;  /* NULL once the request is gone */
    int fd;                   /* the client's socket, for the disconnect check */
    double t_enqueue, deadline;

    job_kind kind;
    srv_bank *bank;
    srv_bank_ver *ver;        /* the version the request runs on (a reference) */
    uint8_t *img;             /* encoded image (owned) */
    size_t img_len;
    int want_map, want_overlay, want_grid, want_png;
    int thr_override;
    double thr;
    char *id;                 /* echoed back, may be NULL */
    int want_nearest, patch;  /* outputs=nearest&patch=K */

    /* fit / references: the form's parts (owned) and settings */
    srv_part *parts;
    int n_parts;
    char *new_name;           /* fit: the bank to create */
    ad_bank_params fit_params;
    int recalibrate;

    /* result, written by the worker before DONE */
    int http_code;
    char *body;               /* malloc'ed */
    size_t body_len;
    const char *content_type;
    char score_hdr[40];
    const char *verdict_hdr;  /* "OK", "NG", "none" or NULL (no score) */
    int scored;
    double score;
    ad_verdict verdict;
    double stage_ms[SRV_N_STAGES];
} srv_job;

/* A reload order for the reloader: one bank or all (bank NULL); conn NULL from SIGHUP. */
typedef struct srv_reload {
    struct srv_reload *next;
    srv_bank *bank;
    struct MHD_Connection *conn;
    int done;
    int http_code;
    char *body;
} srv_reload;

typedef struct {
    /* options */
    const char *weights;
    char *host;
    int port;
    int ipv6;
    int n_workers, threads_per_worker, queue_cap;
    int timeout_ms;
    size_t max_body;
    size_t max_pixels;
    int idle_timeout_s;
    int max_connections;
    size_t conn_memory;
    int drain_ms;
    int access_log;
    uint8_t key_digest[32];
    int have_key;

    ad_model *model;
    char model_name[64];
    char fingerprint[17];
    srv_bank *banks;          /* banks_cap entries; the first n_banks are in use */
    _Atomic int n_banks;      /* grows on the HTTP thread only (fit); entries never move */
    int banks_cap;
    const char *bank_dir;     /* --bank-dir: where POST .../fit writes banks (NULL: fit off) */
    uint8_t admin_digest[32]; /* --admin-key-file */
    int have_admin;
    char *fit_pending[8];     /* names of banks being fitted (srv.mu) */

    struct MHD_Daemon *daemon;
    pthread_mutex_t mu;
    pthread_cond_t q_cond;    /* workers: queue not empty / stop */
    pthread_cond_t sup_cond;  /* supervisor: outstanding jobs exist / stop */
    pthread_cond_t rl_cond;   /* reloader */
    pthread_cond_t idle_cond; /* drain: a request finished */
    srv_job *q_head, *q_tail;
    int q_len;
    srv_job *outstanding;     /* every job not yet finished with */
    int n_outstanding;
    srv_reload *rl_head;
    int stop_workers, stop_sup, stop_rl;
    int active_requests;      /* requests between their first and completion callbacks */
    int running_jobs;

    atomic_int ready;         /* banks loaded and warmed up, not draining */
    atomic_int draining;

    pthread_t *workers;
    ad_context **ctxs;
    pthread_t sup_thread, rl_thread;
    int threads_started;

    srv_metrics *metrics;
    double t_start_unix;
} srv;

/* serve_work.c */
double srv_now(void);         /* monotonic seconds */
double srv_unix(void);
int srv_sha256_file(const char *path, char hex[65], char *err, size_t errn);
srv_bank *srv_find_bank(srv *s, const char *name);
srv_bank_ver *srv_bank_acquire(srv *s, srv_bank *b);
void srv_bank_release(srv *s, srv_bank_ver *v);
/* Reads the bank file again, checks it against the model and swaps it in; on failure the old
 * version keeps serving, the failure is counted and `err` says why. 0 or -1. */
int srv_reload_bank(srv *s, srv_bank *b, char *err, size_t errn);
/* Loads every bank at start; prints the error and returns -1 on the first failure. */
int srv_load_banks(srv *s);
int srv_start_threads(srv *s);
void srv_stop_threads(srv *s);
/* Queues a job (takes the queue's reference) and suspends its connection; -1 if the queue is
 * full (nothing done). Caller holds no lock. */
int srv_enqueue(srv *s, srv_job *j);
/* Takes a queued job out of the queue, dropping the queue's reference (srv.mu held). */
void srv_queue_remove_locked(srv *s, srv_job *j);
void srv_job_release(srv *s, srv_job *j);   /* with srv.mu held */
int srv_warmup(srv *s);
/* Hands a reload to the reloader; a connection waiting for it is suspended first. */
void srv_reload_enqueue(srv *s, srv_reload *r);
/* Body of a reload answer for one bank or all; code 200 or 422. */
void srv_do_reload(srv *s, srv_reload *r);

/* Frees a job's form parts (serve_parse.c). */
void srv_parts_free(srv_part *p, int n);

/* serve_http.c */
cJSON *srv_bank_json(srv *s, srv_bank *b);
/* Frees the name reserved by POST .../fit. */
void srv_unpend_fit(srv *s, const char *name);
int srv_http_start(srv *s);
void srv_http_stop(srv *s);
/* Builds {"error": {"code", "type", "message"}} (malloc'ed). */
char *srv_error_json(int code, const char *type, const char *msg);
char *srv_base64(const uint8_t *p, size_t n);

/* serve_metrics.c */
srv_metrics *srv_metrics_new(void);
void srv_metrics_free(srv_metrics *m);
void srv_metrics_request(srv_metrics *m, const char *bank, int code, const char *verdict);
void srv_metrics_stage(srv_metrics *m, srv_stage st, double ms);
void srv_metrics_reject(srv_metrics *m, srv_reject r);
void srv_metrics_score(srv *s, srv_bank *b, double score);  /* takes srv.mu */
/* The whole Prometheus text exposition (malloc'ed). */
char *srv_metrics_render(srv *s, size_t *len);

void srv_log(const char *fmt, ...) AD_PRINTF(1, 2);

#endif
