#include "cli/cli.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "anomalydino %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_progress(const char *fmt, ...)
{
    if (cli_quiet()) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_parse_int(const char *cmd, const char *opt, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_error(cmd, "%s expects an integer in [%d, %d], got '%s'", opt, lo, hi, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                     double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        cli_error(cmd, "%s expects a number in [%g, %g], got '%s'", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_has_image_ext(const char *name) { return adi_io_has_image_ext(name); }

typedef adi_strlist strlist;
#define push adi_strlist_push

/* A NULL entry (an image given by itself has no folder below). */
static int push_null(strlist *l) { return adi_strlist_push(l, NULL); }

int cli_list_dir(const char *dir, cli_list_kind kind, char ***names)
{
    return adi_io_list_dir(dir, (adi_list_kind)kind, names);
}

static int walk(const char *cmd, const char *dir, strlist *l)
{
    char **names = NULL;
    int n = cli_list_dir(dir, CLI_LIST_ALL, &names);
    if (n < 0) {
        cli_error(cmd, "%s: cannot open directory: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char *p = adi_path_join(dir, names[i]);
        if (!p) { rc = -1; break; }
        if (adi_io_is_dir(p)) rc = walk(cmd, p, l);
        else if (cli_has_image_ext(names[i])) rc = push(l, p);
        free(p);
    }
    cli_free_list(names, n);
    return rc;
}

int cli_collect_images(const char *cmd, char **inputs, int n_inputs, char ***out_paths)
{
    char **rels = NULL;
    int n = cli_collect_images_rel(cmd, inputs, n_inputs, out_paths, &rels);
    if (n >= 0) cli_free_list(rels, n);
    return n;
}

int cli_collect_images_rel(const char *cmd, char **inputs, int n_inputs, char ***out_paths,
                           char ***out_rels)
{
    strlist l = {0}, r = {0};
    for (int i = 0; i < n_inputs; i++) {
        int rc;
        if (adi_io_is_dir(inputs[i])) {
            int before = l.n;
            rc = walk(cmd, inputs[i], &l);
            if (rc == 0 && l.n == before) {
                cli_error(cmd, "%s: no .png/.jpg/.jpeg images in this directory", inputs[i]);
                rc = -1;
            }
            /* walk joins "DIR/" + name, so what follows the folder's own prefix is the path
             * below it */
            size_t dl = strlen(inputs[i]);
            int slash = dl && inputs[i][dl - 1] == '/';
            for (int k = before; rc == 0 && k < l.n; k++)
                rc = push(&r, l.v[k] + dl + (slash ? 0 : 1));
        } else {
            rc = push(&l, inputs[i]); /* a missing file is reported when it is read */
            if (rc == 0) rc = push_null(&r); /* given by itself: no folder below */
        }
        if (rc) {
            cli_free_list(l.v, l.n);
            cli_free_list(r.v, r.n);
            return -1;
        }
    }
    *out_paths = l.v;
    *out_rels = r.v;
    return l.n;
}

int cli_getopt_error(const char *cmd, int ch, char **argv)
{
    /* a long option is argv[optind - 1]; a short one is optopt (it may sit in a group) */
    const char *prev = optind > 0 ? argv[optind - 1] : "";
    char shortopt[3] = {'-', (char)optopt, 0};
    const char *what = !strncmp(prev, "--", 2) || optopt <= ' ' || optopt > '~' ? prev : shortopt;
    if (ch == ':') cli_error(cmd, "%s needs a value (anomalydino %s --help)", what, cmd);
    else cli_error(cmd, "unknown option '%s' (anomalydino %s --help)", what, cmd);
    return 2;
}

int cli_parse_max_pixels(const char *cmd, const char *s, size_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mult = 1;
    if (end != s && (*end == 'M' || *end == 'm') && end[1] == 0) { mult = 1e6; end++; }
    if (errno || end == s || *end || !(v >= 0) || v * mult > 1e12) {
        cli_error(cmd, "--max-pixels expects a pixel count (e.g. 40000000 or 40M; 0 = no limit), "
                       "got '%s'", s);
        return -1;
    }
    *out = (size_t)(v * mult + 0.5);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* progress                                                                                    */
/* ------------------------------------------------------------------------------------------ */

int cli_quiet(void)
{
    const char *q = getenv("ANOMALYDINO_QUIET");
    return q && *q && *q != '0';
}

void cli_meter_begin(cli_meter *m, const char *label, int total)
{
    memset(m, 0, sizeof *m);
    snprintf(m->label, sizeof m->label, "%s", label);
    m->total = total;
    m->t0 = cli_now();
    m->last = m->t0; /* a phase shorter than the period prints only its last line */
    m->quiet = cli_quiet();
    m->tty = isatty(2);
}

static void fmt_secs(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 360000) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void cli_meter_step(cli_meter *m, int done)
{
    if (m->quiet) return;
    double now = cli_now();
    int last = done >= m->total;
    if (!last && now - m->last < CLI_METER_PERIOD_S) return;
    m->last = now;
    double el = now - m->t0;
    char e[32], r[32];
    fmt_secs(el, e, sizeof e);
    if (done > 0 && !last) fmt_secs(el / done * (m->total - done), r, sizeof r);
    else snprintf(r, sizeof r, "-");
    if (last)
        fprintf(stderr, "%s%s: %d/%d done in %s%s", m->tty ? "\r" : "", m->label, done, m->total,
                e, m->tty ? "\033[K\n" : "\n");
    else
        fprintf(stderr, "%s%s: %d/%d (%d%%), %s elapsed, ETA %s%s", m->tty ? "\r" : "", m->label,
                done, m->total, m->total ? (int)(100.0 * done / m->total) : 0, e, r,
                m->tty ? "\033[K" : "\n");
    fflush(stderr);
    m->open = m->tty && !last;
}

void cli_meter_end(cli_meter *m)
{
    if (m->open && !m->quiet) {
        fputc('\n', stderr);
        m->open = 0;
    }
}

void cli_free_list(char **list, int n) { adi_strv_free(list, n); }

double cli_now(void) { return adi_now(); }
