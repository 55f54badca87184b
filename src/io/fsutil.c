#include "io/io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *adi_io_read_file(const char *path, size_t *len)
{
    if (adi_io_is_dir(path)) return adi_fail_null(AD_E_IO, "%s: is a directory, not a file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return adi_fail_null(AD_E_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            size_t ncap = cap ? cap * 2 : 65536 + 1;
            char *nb = adi_realloc(buf, ncap);
            if (!nb) {
                adi_free(buf);
                fclose(f);
                return adi_fail_null(AD_E_NOMEM, "%s: out of memory reading the file", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        adi_free(buf);
        return adi_fail_null(AD_E_IO, "%s: read error", path);
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

ad_status adi_io_mkdirs(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return adi_fail(AD_E_ARG, "bad directory path '%s'", path);
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0777) && errno != EEXIST)
            return adi_fail(AD_E_IO, "%s: cannot create directory: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0777) && errno != EEXIST)
        return adi_fail(AD_E_IO, "%s: cannot create directory: %s", tmp, strerror(errno));
    if (!adi_io_is_dir(tmp)) return adi_fail(AD_E_IO, "%s: exists and is not a directory", tmp);
    return AD_OK;
}

int adi_io_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int adi_io_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int adi_io_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int adi_io_has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name || strchr(dot, '/')) return 0;
    return !strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int adi_io_list_dir(const char *dir, adi_list_kind kind, char ***names)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    adi_strlist l = {0};
    int bad = 0;
    struct dirent *e;
    while (!bad && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (kind != ADI_LIST_ALL) {
            char *p = adi_path_join(dir, e->d_name);
            struct stat st;
            if (!p) { bad = 1; break; }
            int ok = stat(p, &st) == 0 &&
                     (kind == ADI_LIST_DIRS ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
            adi_free(p);
            if (!ok) continue;
        }
        bad = adi_strlist_push(&l, e->d_name) != 0;
    }
    closedir(d);
    if (bad) {
        adi_strlist_free(&l);
        errno = ENOMEM;
        return -1;
    }
    if (l.n) qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_str);
    *names = l.v;
    return l.n;
}

/* ------------------------------------------------------------------------------------------ */
/* atomic writes                                                                               */
/* ------------------------------------------------------------------------------------------ */

static void atomic_clear(adi_atomic *a)
{
    adi_free(a->path);
    adi_free(a->tmp);
    a->path = a->tmp = NULL;
    a->f = NULL;
}

ad_status adi_atomic_open(adi_atomic *a, const char *path)
{
    static atomic_uint counter;
    memset(a, 0, sizeof *a);
    size_t plen = strlen(path);
    a->path = adi_strdup(path);
    a->tmp = adi_malloc(plen + 80);
    if (!a->path || !a->tmp) {
        atomic_clear(a);
        return adi_fail(AD_E_NOMEM, "%s: out of memory", path);
    }
    int fd = -1, err = 0;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(a->tmp, plen + 80, "%s.tmp.%ld.%u.%ld", path, (long)getpid(),
                 atomic_fetch_add(&counter, 1u), (long)ts.tv_nsec);
        fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        err = errno;
        if (fd < 0 && err != EEXIST) break;
    }
    if (fd >= 0) a->f = fdopen(fd, "wb");
    if (!a->f) {
        if (fd >= 0) {
            err = errno;
            close(fd);
            remove(a->tmp);
        }
        ad_status st = adi_fail(AD_E_IO, "%s: cannot create: %s", path, strerror(err));
        atomic_clear(a);
        return st;
    }
    return AD_OK;
}

ad_status adi_atomic_detach(adi_atomic *a)
{
    if (!a->f) return AD_OK;
    int bad = fclose(a->f) != 0;
    if (bad && !a->err) a->err = errno;
    a->f = NULL;
    return bad ? adi_fail(AD_E_IO, "%s: write failed: %s", a->path, strerror(a->err)) : AD_OK;
}

void adi_atomic_abort(adi_atomic *a)
{
    if (a->f) fclose(a->f);
    if (a->tmp) remove(a->tmp);
    atomic_clear(a);
}

ad_status adi_atomic_commit(adi_atomic *a)
{
    if (!a->tmp) return adi_fail(AD_E_ARG, "adi_atomic_commit: not open");
    int err = a->err;
    if (a->f) {
        if (!err && ferror(a->f)) err = EIO;
        if (!err && fflush(a->f) != 0) err = errno;
        if (!err && fsync(fileno(a->f)) != 0) err = errno;
        if (fclose(a->f) != 0 && !err) err = errno;
        a->f = NULL;
    } else if (!err) {
        /* written by name (adi_atomic_detach): sync it through a descriptor of our own */
        int fd = open(a->tmp, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0) err = errno ? errno : EIO;
        if (fd >= 0) close(fd);
    }
    if (err) {
        ad_status st = adi_fail(AD_E_IO, "%s: write failed: %s", a->path, strerror(err));
        adi_atomic_abort(a);
        return st;
    }
    if (rename(a->tmp, a->path) != 0) {
        err = errno;
        ad_status st = adi_fail(AD_E_IO, "%s: cannot replace: %s", a->path, strerror(err));
        adi_atomic_abort(a);
        return st;
    }
    /* the rename itself on disk: sync the folder (file systems that cannot say EINVAL) */
    const char *slash = strrchr(a->path, '/');
    char *dir = slash ? adi_strndup(a->path, slash == a->path ? 1 : (size_t)(slash - a->path))
                      : adi_strdup(".");
    ad_status st = AD_OK;
    if (!dir) {
        st = adi_fail(AD_E_NOMEM, "%s: out of memory", a->path);
    } else {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS)
                st = adi_fail(AD_E_IO, "%s: written, but syncing folder %s failed: %s", a->path,
                              dir, strerror(errno));
            close(dfd);
        }
        adi_free(dir);
    }
    atomic_clear(a);
    return st;
}

ad_status adi_io_write_file(const char *path, const void *data, size_t len)
{
    adi_atomic a;
    ad_status st = adi_atomic_open(&a, path);
    if (st != AD_OK) return st;
    if (len && fwrite(data, 1, len, a.f) != len) a.err = errno ? errno : EIO;
    return adi_atomic_commit(&a);
}
