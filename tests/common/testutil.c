#include "testutil.h"

#include "io/io.h"

#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>

int t_failures = 0;
int t_checks = 0;

static const char *rot_buf(const char *base, const char *rel)
{
    static char bufs[8][1024];
    static int i = 0;
    char *b = bufs[i++ & 7];
    snprintf(b, 1024, "%s/%s", base, rel);
    return b;
}

const char *t_data(const char *rel)
{
    const char *d = getenv("AD_TEST_DATA");
    return rot_buf(d ? d : "tests/data", rel);
}

const char *t_tmp(const char *rel)
{
    const char *d = getenv("AD_TMP");
    if (!d) d = "/tmp/anomalydino-tests";
    adi_io_mkdirs(d);
    return rot_buf(d, rel);
}

const char *t_bin(void)
{
    const char *b = getenv("AD_BIN");
    return b ? b : "./anomalydino";
}

int t_run(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc == -1) return -1;
    if (WIFEXITED(rc)) return WEXITSTATUS(rc);
    return 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
}

int t_done(const char *name)
{
    int passed = t_checks - t_failures;
    printf("%s: %d checks, %d failures\n", name, t_checks, t_failures);
    printf("%d passed, %d failed\n", passed, t_failures);
    return t_failures ? 1 : 0;
}

double t_maxdiff_f32(const float *a, const float *b, size_t n, size_t *where)
{
    double m = 0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) { m = d; w = i; if (d != d) break; }
    }
    if (where) *where = w;
    return m;
}

double t_maxdiff_f64(const double *a, const double *b, size_t n, size_t *where)
{
    double m = 0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (d > m || d != d) { m = d; w = i; if (d != d) break; }
    }
    if (where) *where = w;
    return m;
}
