#include "cli/cli.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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
    const char *q = getenv("ANOMALYDINO_QUIET");
    if (q && *q && *q != '0') return;
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

static int has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    char ext[8] = {0};
    size_t n = strlen(dot + 1);
    if (n >= sizeof ext) return 0;
    for (size_t i = 0; i < n; i++) ext[i] = (char)tolower((unsigned char)dot[1 + i]);
    return !strcmp(ext, "png") || !strcmp(ext, "jpg") || !strcmp(ext, "jpeg");
}

typedef struct {
    char **v;
    int n, cap;
} strlist;

static int push(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = strdup(s);
    return l->v[l->n++] ? 0 : -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(const char *cmd, const char *dir, strlist *l)
{
    DIR *d = opendir(dir);
    if (!d) {
        cli_error(cmd, "%s: cannot open directory: %s", dir, strerror(errno));
        return -1;
    }
    strlist names = {0};
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (push(&names, e->d_name)) { closedir(d); cli_free_list(names.v, names.n); return -1; }
    }
    closedir(d);
    qsort(names.v, (size_t)names.n, sizeof *names.v, cmp_str);
    int rc = 0;
    for (int i = 0; i < names.n && rc == 0; i++) {
        size_t len = strlen(dir) + strlen(names.v[i]) + 2;
        char *p = malloc(len);
        if (!p) { rc = -1; break; }
        snprintf(p, len, "%s/%s", dir, names.v[i]);
        if (ad_io_is_dir(p)) rc = walk(cmd, p, l);
        else if (has_image_ext(p)) rc = push(l, p);
        free(p);
    }
    cli_free_list(names.v, names.n);
    return rc;
}

int cli_collect_images(const char *cmd, char **inputs, int n_inputs, char ***out_paths)
{
    strlist l = {0};
    for (int i = 0; i < n_inputs; i++) {
        int rc;
        if (ad_io_is_dir(inputs[i])) {
            int before = l.n;
            rc = walk(cmd, inputs[i], &l);
            if (rc == 0 && l.n == before) {
                cli_error(cmd, "%s: no .png/.jpg images in this directory", inputs[i]);
                rc = -1;
            }
        } else {
            rc = push(&l, inputs[i]); /* a missing file is reported when it is read */
        }
        if (rc) { cli_free_list(l.v, l.n); return -1; }
    }
    *out_paths = l.v;
    return l.n;
}

void cli_free_list(char **list, int n)
{
    if (!list) return;
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
