/* anomalydino serve: options, start-up, signals (SIGHUP reload, SIGTERM/SIGINT drain). */
#include "serve/serve.h"
#include "cli/cli.h"

#include <microhttpd.h>
#include <nettle/sha2.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CMD "serve"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: anomalydino serve -m WEIGHTS --bank NAME=PATH [--bank NAME=PATH ...] [options]\n\n"
            "Runs the detector as an HTTP service: the weights and banks are loaded once, images\n"
            "are scored by a pool of workers (one context each) behind a bounded queue. Prints\n"
            "'listening on http://HOST:PORT' on stdout once the socket is bound; /health/ready\n"
            "turns 200 when the banks are loaded and a warm-up inference has run.\n\n"
            "  -m, --model WEIGHTS        weights (.pth / .safetensors) every bank was made with\n"
            "  -b, --bank NAME=PATH       a bank file from anomalydino fit, served as NAME\n"
            "                             ([A-Za-z0-9_.-], up to 64 characters); repeatable\n"
            "      --listen HOST:PORT     address (default 127.0.0.1:8080; port 0: any free port;\n"
            "                             [::1]:PORT for IPv6)\n"
            "      --api-key-file F       require 'Authorization: Bearer KEY' or 'X-API-Key: KEY'\n"
            "                             (the file's first line) on every endpoint but the\n"
            "                             health probes\n"
            "      --workers N            inference workers (default 1)\n"
            "      --threads-per-worker T threads of each worker (default: cores / workers)\n"
            "      --queue N              jobs waiting for a worker before 503 (default 16)\n"
            "      --timeout-ms T         answer 504 when a job is not done T ms after its body\n"
            "                             arrived (default 10000)\n"
            "      --max-body BYTES       largest request body (default 33554432 = 32 MiB); larger\n"
            "                             ones get 413 without being read\n"
            "      --max-pixels N         largest image, width x height (default 40000000), checked\n"
            "                             from the header before decoding (422)\n"
            "      --max-header-bytes N   memory per connection for the request line and headers\n"
            "                             (default 32768); larger headers get 431\n"
            "      --idle-timeout-s S     close a connection idle for S seconds (default 10)\n"
            "      --max-connections N    open connections at most (default 256)\n"
            "      --drain-ms T           on SIGTERM, wait at most T ms for requests in flight\n"
            "                             (default: --timeout-ms + 5000)\n"
            "      --access-log           one line per request on stderr\n"
            "      --bank-dir DIR         POST /v1/banks/NAME/fit writes new banks here as\n"
            "                             NAME.adbank (atomically) and serves them; without it\n"
            "                             fitting on the server is off\n"
            "      --admin-key-file F     the admin key (first line, >= 16 characters): needed for\n"
            "                             fit and references (building and growing banks); it\n"
            "                             also works as an API key. Without it those are off (403)\n"
            "  -h, --help                 this help\n\n"
            "Signals: SIGHUP reloads every bank from its path (a bad file keeps the old one);\n"
            "SIGTERM or SIGINT stops accepting, answers what is in flight and exits 0.\n"
            "Exit status: 0 after a clean drain, 1 when the weights or a bank cannot be loaded\n"
            "or a bank does not match the weights, 2 for wrong usage.\n"
            "The page at / (built in) inspects images, keeps a history and builds banks.\n"
            "Endpoints, errors and metrics: docs/serve.md.\n");
}

static int valid_name(const char *n, size_t len)
{
    if (len == 0 || len > 64) return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)n[i]) && n[i] != '_' && n[i] != '.' && n[i] != '-') return 0;
    return 1;
}

static int parse_listen(srv *s, const char *arg)
{
    const char *colon;
    if (arg[0] == '[') {
        const char *rb = strchr(arg, ']');
        if (!rb || rb[1] != ':') goto bad;
        s->host = strndup(arg + 1, (size_t)(rb - arg - 1));
        s->ipv6 = 1;
        colon = rb + 1;
    } else {
        colon = strrchr(arg, ':');
        if (!colon) goto bad;
        s->host = strndup(arg, (size_t)(colon - arg));
        if (s->host && !strcmp(s->host, "localhost")) {
            free(s->host);
            s->host = strdup("127.0.0.1");
        }
    }
    if (!s->host || !s->host[0]) goto bad;
    return cli_parse_int(CMD, "--listen port", colon + 1, 0, 65535, &s->port);
bad:
    cli_error(CMD, "--listen '%s': expected HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080)", arg);
    return -1;
}

static int read_key_into(const char *opt, const char *path, uint8_t digest[32]);
static int read_key(srv *s, const char *path)
{
    if (read_key_into("--api-key-file", path, s->key_digest)) return -1;
    s->have_key = 1;
    return 0;
}

static int read_key_into(const char *opt, const char *path, uint8_t digest[32])
{
    size_t len;
    char *txt = adi_io_read_file(path, &len);
    if (!txt) {
        cli_error(CMD, "%s: %s", opt, ad_errmsg());
        return -1;
    }
    size_t n = strcspn(txt, "\r\n");
    while (n && isspace((unsigned char)txt[n - 1])) n--;
    size_t start = 0;
    while (start < n && isspace((unsigned char)txt[start])) start++;
    if (n - start < 16) {
        cli_error(CMD, "%s %s: the key (first line) must have at least 16 characters", opt,
                  path);
        free(txt);
        return -1;
    }
    struct sha256_ctx h;
    sha256_init(&h);
    sha256_update(&h, n - start, (const uint8_t *)txt + start);
    sha256_digest(&h, 32, digest);
    memset(txt, 0, len);
    free(txt);
    return 0;
}

static int parse_size(const char *opt, const char *v, size_t lo, size_t hi, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n < lo || n > hi) {
        cli_error(CMD, "%s '%s': expected an integer from %zu to %zu", opt, v, lo, hi);
        return -1;
    }
    *out = (size_t)n;
    return 0;
}

static int wait_signal(const sigset_t *set)
{
    int sig;
    for (;;) {
        if (sigwait(set, &sig) == 0) return sig;
    }
}

static void drain_and_stop(srv *s)
{
    atomic_store(&s->draining, 1);
    atomic_store(&s->ready, 0);
    /* stop accepting: the listening socket is closed, open connections stay */
    MHD_socket lfd = MHD_quiesce_daemon(s->daemon);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    srv_log("draining: answering the requests in flight");
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += s->drain_ms / 1000;
    until.tv_nsec += (long)(s->drain_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    int timed_out = 0;
    while (s->active_requests > 0 && !timed_out)
        timed_out = pthread_cond_timedwait(&s->idle_cond, &s->mu, &until) == ETIMEDOUT;
    int left = s->active_requests;
    pthread_mutex_unlock(&s->mu);
    if (left) srv_log("drain: %d request(s) still open after %d ms, closing them", left, s->drain_ms);
    /* workers finish the queue (normally empty by now) and stop */
    srv_stop_threads(s);
    srv_http_stop(s);
}

static void srv_free(srv *s)
{
    if (s->ctxs)
        for (int i = 0; i < s->n_workers; i++) ad_context_free(s->ctxs[i]);
    free(s->ctxs);
    for (int i = 0; i < s->n_banks; i++) {
        if (s->banks[i].cur) {
            ad_bank_free(s->banks[i].cur->bank);
            free(s->banks[i].cur);
        }
        free(s->banks[i].name);
        free(s->banks[i].path);
    }
    free(s->banks);
    ad_model_free(s->model);
    srv_metrics_free(s->metrics);
    free(s->host);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->q_cond);
    pthread_cond_destroy(&s->sup_cond);
    pthread_cond_destroy(&s->rl_cond);
    pthread_cond_destroy(&s->idle_cond);
}

int cmd_serve(int argc, char **argv)
{
    enum { O_LISTEN = 256, O_KEY, O_WORKERS, O_TPW, O_QUEUE, O_TIMEOUT, O_MAXBODY, O_MAXPIX,
           O_MAXHDR, O_IDLE, O_MAXCONN, O_DRAIN, O_ACCESS, O_BANKDIR, O_ADMIN };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"bank", required_argument, 0, 'b'},
        {"listen", required_argument, 0, O_LISTEN},
        {"api-key-file", required_argument, 0, O_KEY},
        {"workers", required_argument, 0, O_WORKERS},
        {"threads-per-worker", required_argument, 0, O_TPW},
        {"queue", required_argument, 0, O_QUEUE},
        {"timeout-ms", required_argument, 0, O_TIMEOUT},
        {"max-body", required_argument, 0, O_MAXBODY},
        {"max-pixels", required_argument, 0, O_MAXPIX},
        {"max-header-bytes", required_argument, 0, O_MAXHDR},
        {"idle-timeout-s", required_argument, 0, O_IDLE},
        {"max-connections", required_argument, 0, O_MAXCONN},
        {"drain-ms", required_argument, 0, O_DRAIN},
        {"access-log", no_argument, 0, O_ACCESS},
        {"bank-dir", required_argument, 0, O_BANKDIR},
        {"admin-key-file", required_argument, 0, O_ADMIN},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    srv S;
    memset(&S, 0, sizeof S);
    srv *s = &S;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->q_cond, NULL);
    pthread_cond_init(&s->sup_cond, NULL);
    pthread_cond_init(&s->rl_cond, NULL);
    pthread_cond_init(&s->idle_cond, NULL);
    s->port = 8080;
    s->n_workers = 1;
    s->queue_cap = 16;
    s->timeout_ms = 10000;
    s->max_body = (size_t)32 << 20;
    s->max_pixels = 40000000;
    s->conn_memory = 32768;
    s->idle_timeout_s = 10;
    s->max_connections = 256;
    s->drain_ms = -1;
    const char *key_file = NULL, *admin_file = NULL;
    int rc = 2, c;
    char **bank_args = NULL;
    int n_bank_args = 0;
    while ((c = getopt_long(argc, argv, "m:b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': s->weights = optarg; break;
        case 'b': {
            char **v = realloc(bank_args, (size_t)(n_bank_args + 1) * sizeof *v);
            if (!v) goto out;
            bank_args = v;
            bank_args[n_bank_args++] = optarg;
            break;
        }
        case O_LISTEN:
            free(s->host);
            s->host = NULL;
            if (parse_listen(s, optarg)) goto out;
            break;
        case O_KEY: key_file = optarg; break;
        case O_BANKDIR: s->bank_dir = optarg; break;
        case O_ADMIN: admin_file = optarg; break;
        case O_WORKERS:
            if (cli_parse_int(CMD, "--workers", optarg, 1, 256, &s->n_workers)) goto out;
            break;
        case O_TPW:
            if (cli_parse_int(CMD, "--threads-per-worker", optarg, 1, 1024, &s->threads_per_worker))
                goto out;
            break;
        case O_QUEUE:
            if (cli_parse_int(CMD, "--queue", optarg, 1, 100000, &s->queue_cap)) goto out;
            break;
        case O_TIMEOUT:
            if (cli_parse_int(CMD, "--timeout-ms", optarg, 1, 3600000, &s->timeout_ms)) goto out;
            break;
        case O_MAXBODY:
            if (parse_size("--max-body", optarg, 1, (size_t)1 << 34, &s->max_body)) goto out;
            break;
        case O_MAXPIX:
            if (parse_size("--max-pixels", optarg, 1, (size_t)1 << 28, &s->max_pixels)) goto out;
            break;
        case O_MAXHDR:
            if (parse_size("--max-header-bytes", optarg, 4096, (size_t)1 << 24, &s->conn_memory))
                goto out;
            break;
        case O_IDLE:
            if (cli_parse_int(CMD, "--idle-timeout-s", optarg, 1, 86400, &s->idle_timeout_s)) goto out;
            break;
        case O_MAXCONN:
            if (cli_parse_int(CMD, "--max-connections", optarg, 1, 100000, &s->max_connections))
                goto out;
            break;
        case O_DRAIN:
            if (cli_parse_int(CMD, "--drain-ms", optarg, 0, 3600000, &s->drain_ms)) goto out;
            break;
        case O_ACCESS: s->access_log = 1; break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default: fprintf(stderr, "(anomalydino serve --help for the options)\n"); goto out;
        }
    }
    if (optind < argc) {
        cli_error(CMD, "unexpected argument '%s' (anomalydino serve --help)", argv[optind]);
        goto out;
    }
    if (!s->weights || n_bank_args == 0) {
        cli_error(CMD, "-m WEIGHTS and at least one --bank NAME=PATH are required "
                       "(anomalydino serve --help)");
        goto out;
    }
    if (!s->host) s->host = strdup("127.0.0.1");
    if (s->drain_ms < 0) s->drain_ms = s->timeout_ms + 5000;
    s->banks_cap = n_bank_args + SRV_MAX_NEW_BANKS; /* room for banks fitted later: never moved */
    s->banks = calloc((size_t)s->banks_cap, sizeof *s->banks);
    if (!s->banks || !s->host) goto out;
    for (int i = 0; i < n_bank_args; i++) {
        const char *eq = strchr(bank_args[i], '=');
        if (!eq || !valid_name(bank_args[i], (size_t)(eq - bank_args[i])) || !eq[1]) {
            cli_error(CMD, "--bank '%s': expected NAME=PATH with NAME of [A-Za-z0-9_.-] (at most "
                           "64 characters)", bank_args[i]);
            goto out;
        }
        s->banks[i].name = strndup(bank_args[i], (size_t)(eq - bank_args[i]));
        s->banks[i].path = strdup(eq + 1);
        s->n_banks = i + 1;
        if (!s->banks[i].name || !s->banks[i].path) goto out;
        for (int k = 0; k < i; k++)
            if (!strcmp(s->banks[k].name, s->banks[i].name)) {
                cli_error(CMD, "--bank: the name '%s' is given twice", s->banks[i].name);
                goto out;
            }
    }
    rc = 1;
    if (key_file && read_key(s, key_file)) goto out;
    if (admin_file) {
        if (read_key_into("--admin-key-file", admin_file, s->admin_digest)) goto out;
        s->have_admin = 1;
    }
    if (s->bank_dir && !adi_io_is_dir(s->bank_dir)) {
        cli_error(CMD, "--bank-dir %s: not a folder", s->bank_dir);
        goto out;
    }
    if (s->threads_per_worker <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        s->threads_per_worker = cores > s->n_workers ? (int)(cores / s->n_workers) : 1;
    }
    s->metrics = srv_metrics_new();
    if (!s->metrics) goto out;

    /* Threads inherit the blocked set, so that signals reach the main thread's sigwait. While
     * the weights and banks load, SIGTERM and SIGINT keep their default action (the process
     * ends at once: nothing is in flight yet); a SIGHUP then waits and reloads once ready. */
    sigset_t set, stop_set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client that hangs up must not kill the service */

    int http_rc = srv_http_start(s);
    pthread_sigmask(SIG_UNBLOCK, &stop_set, NULL);
    if (http_rc) {
        cli_error(CMD, "cannot listen on %s%s%s:%d: %s", s->ipv6 ? "[" : "", s->host,
                  s->ipv6 ? "]" : "", s->port, errno ? strerror(errno) : "invalid address");
        goto out;
    }
    printf("anomalydino serve: listening on http://%s%s%s:%d\n", s->ipv6 ? "[" : "", s->host,
           s->ipv6 ? "]" : "", s->port);
    fflush(stdout);
    s->t_start_unix = srv_unix();

    s->model = ad_model_load(s->weights);
    if (!s->model) {
        cli_error(CMD, "%s", ad_errmsg());
        goto stop_http;
    }
    ad_model_info mi = ad_model_get_info(s->model);
    snprintf(s->model_name, sizeof s->model_name, "%s", mi.name);
    snprintf(s->fingerprint, sizeof s->fingerprint, "%016" PRIx64, mi.fingerprint);
    if (srv_load_banks(s)) {
        cli_error(CMD, "cannot serve: a bank failed to load or does not match the weights");
        goto stop_http;
    }
    s->ctxs = calloc((size_t)s->n_workers, sizeof *s->ctxs);
    if (!s->ctxs) goto stop_http;
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = s->threads_per_worker;
    for (int i = 0; i < s->n_workers; i++) {
        s->ctxs[i] = ad_context_new(s->model, cp);
        if (!s->ctxs[i]) {
            cli_error(CMD, "%s", ad_errmsg());
            goto stop_http;
        }
    }
    if (srv_warmup(s)) goto stop_http;
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* from now on: drain on SIGTERM */
    if (srv_start_threads(s)) {
        cli_error(CMD, "cannot start the worker threads");
        srv_stop_threads(s);
        goto stop_http;
    }
    atomic_store(&s->ready, 1);
    srv_log("ready: %d bank(s), %d worker(s) x %d thread(s), queue %d, weights %s (%s)",
            s->n_banks, s->n_workers, s->threads_per_worker, s->queue_cap, s->model_name,
            s->fingerprint);

    for (;;) {
        int sig = wait_signal(&set);
        if (sig == SIGHUP) {
            srv_log("SIGHUP: reloading every bank");
            srv_reload *r = calloc(1, sizeof *r);
            if (r) srv_reload_enqueue(s, r);
            continue;
        }
        srv_log("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    drain_and_stop(s);
    srv_log("stopped");
    rc = 0;
    goto out;

stop_http:
    srv_http_stop(s);
out:
    free(bank_args);
    srv_free(s);
    return rc;
}
