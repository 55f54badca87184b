#include "cli/cli.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

int cli_has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name || strchr(dot, '/')) return 0;
    return !strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg");
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

/* dir/name in a new string. */
static char *join_path(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s%s%s", dir, *dir && dir[strlen(dir) - 1] == '/' ? "" : "/", name);
    return p;
}

int cli_list_dir(const char *dir, cli_list_kind kind, char ***names)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    strlist l = {0};
    int bad = 0;
    struct dirent *e;
    while (!bad && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (kind != CLI_LIST_ALL) {
            char *p = join_path(dir, e->d_name);
            struct stat st;
            if (!p) { bad = 1; break; }
            int ok = stat(p, &st) == 0 &&
                     (kind == CLI_LIST_DIRS ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
            free(p);
            if (!ok) continue;
        }
        bad = push(&l, e->d_name) != 0;
    }
    closedir(d);
    if (bad) {
        cli_free_list(l.v, l.n);
        errno = ENOMEM;
        return -1;
    }
    if (l.n) qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_str);
    *names = l.v;
    return l.n;
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
        char *p = join_path(dir, names[i]);
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
    strlist l = {0};
    for (int i = 0; i < n_inputs; i++) {
        int rc;
        if (adi_io_is_dir(inputs[i])) {
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
