/* A read-only in-memory file tree for the dataset targets: the dataset walker (src/cli/dataset.c,
 * ds_open_fs) asks it instead of the disk, so that no input costs file-system work. Paths are
 * stored whole ("/r/CAT/train/good/a.png"); a directory exists when some path lies below it. */
#ifndef AD_FUZZ_VFS_H
#define AD_FUZZ_VFS_H

#include "cli/cli.h"
#include "protocol/dataset.h"
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char **path;        /* sorted, unique */
    int *is_dir;        /* 1: an explicit (possibly empty) directory */
    int n, cap;
    const char *content_path; /* the one file with content (VisA's split CSV), or NULL */
    const char *content;
    size_t content_len;
    int (*exists)(const char *path); /* files not in the list that exist anyway, or NULL */
} vfs;

static int vfs_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void vfs_free(vfs *v)
{
    for (int i = 0; i < v->n; i++) free(v->path[i]);
    free(v->path);
    free(v->is_dir);
    memset(v, 0, sizeof *v);
}

static int vfs_add(vfs *v, const char *p, size_t len, int dir)
{
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 64;
        char **np = realloc(v->path, (size_t)cap * sizeof *np);
        if (!np) return -1;
        v->path = np;
        int *nd = realloc(v->is_dir, (size_t)cap * sizeof *nd);
        if (!nd) return -1;
        v->is_dir = nd;
        v->cap = cap;
    }
    char *s = malloc(len + 1);
    if (!s) return -1;
    memcpy(s, p, len);
    s[len] = 0;
    v->path[v->n] = s;
    v->is_dir[v->n] = dir;
    v->n++;
    return 0;
}

/* Sorts; the directory flags travel with their paths. */
static void vfs_sort(vfs *v)
{
    for (int i = 0; i < v->n; i++) {
        /* encode the flag in a trailing byte during the sort */
        size_t l = strlen(v->path[i]);
        char *s = realloc(v->path[i], l + 2);
        if (!s) continue;
        s[l] = 0;
        s[l + 1] = (char)(v->is_dir[i] ? 1 : 0);
        v->path[i] = s;
    }
    if (v->n) qsort(v->path, (size_t)v->n, sizeof *v->path, vfs_cmp);
    for (int i = 0; i < v->n; i++) v->is_dir[i] = v->path[i][strlen(v->path[i]) + 1] == 1;
}

static int vfs_find(const vfs *v, const char *p)
{
    int lo = 0, hi = v->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(v->path[mid], p);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -lo - 1;
}

/* Some path strictly below dir. */
static int vfs_has_below(const vfs *v, const char *dir)
{
    size_t l = strlen(dir);
    int i = vfs_find(v, dir);
    int start = i >= 0 ? i + 1 : -i - 1;
    for (int k = start; k < v->n; k++) {
        if (strncmp(v->path[k], dir, l) != 0) return 0;
        if (v->path[k][l] == '/') return 1;
        if (v->path[k][l] > '/') return 0;
    }
    return 0;
}

static int vfs_is_file(void *ctx, const char *p)
{
    const vfs *v = ctx;
    if (v->content_path && strcmp(p, v->content_path) == 0) return 1;
    int i = vfs_find(v, p);
    if (i >= 0 && !v->is_dir[i] && !vfs_has_below(v, p)) return 1;
    return i < 0 && v->exists && v->exists(p);
}

static int vfs_is_dir(void *ctx, const char *p)
{
    const vfs *v = ctx;
    int i = vfs_find(v, p);
    return (i >= 0 && v->is_dir[i]) || vfs_has_below(v, p);
}

static int vfs_list_dir(void *ctx, const char *dir, int kind, char ***names)
{
    const vfs *v = ctx;
    if (!vfs_is_dir(ctx, dir)) return -1;
    size_t l = strlen(dir);
    char **all = NULL;
    int n = 0, cap = 0;
    for (int k = 0; k < v->n; k++) {
        const char *p = v->path[k];
        if (strncmp(p, dir, l) != 0 || p[l] != '/') continue;
        const char *name = p + l + 1, *sl = strchr(name, '/');
        size_t nl = sl ? (size_t)(sl - name) : strlen(name);
        if (nl == 0 || name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **na = realloc(all, (size_t)cap * sizeof *na);
            if (!na) break;
            all = na;
        }
        if (!(all[n] = malloc(nl + 1))) break;
        memcpy(all[n], name, nl);
        all[n][nl] = 0;
        n++;
    }
    if (n) qsort(all, (size_t)n, sizeof *all, vfs_cmp);
    /* unique names whose entry is of the kind asked for (as cli_list_dir: sorted, byte order) */
    int m = 0;
    for (int i = 0; i < n; i++) {
        int keep = m == 0 || strcmp(all[m - 1], all[i]) != 0;
        if (keep && kind != CLI_LIST_ALL) {
            size_t nl = strlen(all[i]);
            char *full = malloc(l + 1 + nl + 1);
            int d = 0, f = 0;
            if (full) {
                memcpy(full, dir, l);
                full[l] = '/';
                memcpy(full + l + 1, all[i], nl + 1);
                d = vfs_is_dir(ctx, full);
                f = !d && vfs_is_file(ctx, full);
                free(full);
            }
            keep = kind == CLI_LIST_DIRS ? d : f;
        }
        if (keep) all[m++] = all[i];
        else free(all[i]);
    }
    *names = all;
    return m;
}

static char *vfs_read_file(void *ctx, const char *p, size_t *len)
{
    const vfs *v = ctx;
    if (!v->content_path || strcmp(p, v->content_path) != 0)
        return adi_fail_null(AD_E_IO, "%s: cannot open (fuzz)", p);
    char *s = malloc(v->content_len + 1);
    if (!s) return adi_fail_null(AD_E_NOMEM, "out of memory");
    memcpy(s, v->content, v->content_len);
    s[v->content_len] = 0;
    *len = v->content_len;
    return s;
}

static ds_fs vfs_fs(vfs *v)
{
    ds_fs fs = {vfs_is_file, vfs_is_dir, vfs_list_dir, vfs_read_file, v};
    return fs;
}

/* A tree holding one file, the fuzz input, at `path`; every other file the reader asks for
 * exists unless its path contains '#'. Opens it as layout `kind` from `root`; AD_OK fills d
 * (ds_free it). No disk access. For the targets whose input is a split CSV. */
static inline int vfs_listed_exists(const char *path) { return strchr(path, '#') == NULL; }

static inline ad_status vfs_open_one_file(const uint8_t *data, size_t size, const char *path,
                                          ds_kind kind, const char *root, ds_dataset *d)
{
    vfs v;
    memset(&v, 0, sizeof v);
    v.content_path = path;
    v.content = (const char *)data;
    v.content_len = size;
    v.exists = vfs_listed_exists;
    if (vfs_add(&v, path, strlen(path), 0)) {
        vfs_free(&v);
        return AD_E_NOMEM;
    }
    vfs_sort(&v);
    ds_fs fs = vfs_fs(&v);
    ad_status st = ds_open_fs(&fs, kind, root, NULL, 0, d);
    vfs_free(&v);
    return st;
}

#endif
