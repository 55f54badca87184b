#include "core/core.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char g_err[512] = "no error";
static _Thread_local ad_status g_status = AD_OK;

static void set_msg(const char *fmt, va_list ap)
{
    char buf[sizeof g_err];
    vsnprintf(buf, sizeof buf, fmt, ap);
    /* one line: newlines would break the CLI's one-line error contract */
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    memcpy(g_err, buf, sizeof g_err);
}

ad_status adi_fail(ad_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_msg(fmt, ap);
    va_end(ap);
    g_status = s;
    return s;
}

void *adi_fail_null(ad_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_msg(fmt, ap);
    va_end(ap);
    g_status = s;
    return NULL;
}

void adi_error_prefix(const char *fmt, ...)
{
    char pre[256], old[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, g_err, sizeof old);
    size_t n = strlen(pre);
    if (n > sizeof g_err - 3) n = sizeof g_err - 3;
    memcpy(g_err, pre, n);
    g_err[n] = ':';
    g_err[n + 1] = ' ';
    size_t rest = sizeof g_err - n - 3;
    size_t m = strlen(old);
    if (m > rest) m = rest;
    memcpy(g_err + n + 2, old, m);
    g_err[n + 2 + m] = 0;
}

const char *ad_errmsg(void) { return g_err; }

ad_status ad_last_status(void) { return g_status; }

const char *ad_status_name(ad_status s)
{
    switch (s) {
    case AD_OK: return "ok";
    case AD_E_ARG: return "invalid argument";
    case AD_E_IO: return "I/O error";
    case AD_E_FORMAT: return "bad file format";
    case AD_E_NOMEM: return "out of memory";
    case AD_E_MISMATCH: return "mismatch";
    case AD_E_INTERNAL: return "internal error";
    case AD_E_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

const char *ad_version(void) { return AD_VERSION_STRING; }
