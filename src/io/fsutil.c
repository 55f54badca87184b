#include "io/io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
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
        free(buf);
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
