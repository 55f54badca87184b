/* CSV reading and writing, string builder (io.h). The one CSV reader of the project: the
 * metrics table (strict), VisA's split file and dataset manifests (lenient). */
#include "io/io.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void adi_csv_init(adi_csv_reader *rd, const char *text, size_t len, int lenient)
{
    rd->p = text;
    rd->end = text + len;
    rd->line = 1;
    rd->lenient = lenient;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) rd->p += 3;
}

static void row_clear(adi_csv_row *r)
{
    for (int i = 0; i < r->n; i++) adi_free(r->f[i]);
    r->n = 0;
}

void adi_csv_row_free(adi_csv_row *r)
{
    row_clear(r);
    adi_free(r->f);
    r->f = NULL;
    r->cap = 0;
}

static int row_push(adi_csv_row *r, const char *s, size_t len)
{
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 8;
        char **f = adi_realloc(r->f, (size_t)cap * sizeof *f);
        if (!f) return -1;
        r->f = f;
        r->cap = cap;
    }
    char *c = adi_strndup(s, len);
    if (!c) return -1;
    r->f[r->n++] = c;
    return 0;
}

static int at_line_end(const adi_csv_reader *rd)
{
    return rd->p >= rd->end || *rd->p == '\n' ||
           (*rd->p == '\r' && (rd->p + 1 == rd->end || rd->p[1] == '\n'));
}

int adi_csv_next(adi_csv_reader *rd, adi_csv_row *row, char *err, size_t errlen)
{
    row_clear(row);
    while (rd->p < rd->end && (*rd->p == '\n' || *rd->p == '\r')) {
        if (*rd->p == '\n') rd->line++;
        rd->p++;
    }
    if (rd->p >= rd->end) return 0;
    row->line = rd->line;
    size_t cap = 256, len = 0;
    char *buf = adi_malloc(cap);
    if (!buf) goto nomem;
    for (;;) {
        len = 0;
        int quoted = 0;
        if (rd->p < rd->end && *rd->p == '"') {
            quoted = 1;
            rd->p++;
        }
        for (;;) {
            if (rd->p >= rd->end) {
                if (quoted && !rd->lenient) {
                    snprintf(err, errlen, "line %d: unterminated quoted field", row->line);
                    adi_free(buf);
                    return -1;
                }
                break;
            }
            char c = *rd->p;
            if (quoted) {
                if (c == '"') {
                    if (rd->p + 1 < rd->end && rd->p[1] == '"') {
                        rd->p += 2;
                    } else {
                        rd->p++;
                        quoted = 0;
                        /* only a separator or the line end may follow a closing quote */
                        if (rd->p < rd->end && *rd->p != ',' && !at_line_end(rd)) {
                            if (!rd->lenient) {
                                snprintf(err, errlen, "line %d: text after a closing quote",
                                         rd->line);
                                adi_free(buf);
                                return -1;
                            }
                            while (rd->p < rd->end && *rd->p != ',' && !at_line_end(rd)) rd->p++;
                        }
                        continue;
                    }
                } else {
                    if (c == '\n') rd->line++;
                    rd->p++;
                }
            } else {
                if (c == ',' || c == '\n') break;
                if (c == '\r' && (rd->p + 1 == rd->end || rd->p[1] == '\n')) break;
                rd->p++;
            }
            if (len + 1 >= cap) {
                char *nb = adi_realloc(buf, cap * 2);
                if (!nb) goto nomem;
                buf = nb;
                cap *= 2;
            }
            buf[len++] = c;
        }
        if (row_push(row, buf, len)) goto nomem;
        if (rd->p < rd->end && *rd->p == ',') {
            rd->p++;
            continue;
        }
        if (rd->p < rd->end && *rd->p == '\r') rd->p++;
        if (rd->p < rd->end && *rd->p == '\n') {
            rd->p++;
            rd->line++;
        }
        break;
    }
    adi_free(buf);
    return 1;
nomem:
    adi_free(buf);
    snprintf(err, errlen, "line %d: out of memory", row->line);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* string builder                                                                              */
/* ------------------------------------------------------------------------------------------ */

static void sb_grow(adi_sbuf *b, size_t extra)
{
    if (b->oom || b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1) cap *= 2;
    char *s = adi_realloc(b->s, cap);
    if (!s) { b->oom = 1; return; }
    b->s = s;
    b->cap = cap;
}

void adi_sb_put(adi_sbuf *b, const char *s, size_t n)
{
    sb_grow(b, n);
    if (b->oom) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void adi_sb_puts(adi_sbuf *b, const char *s) { adi_sb_put(b, s, strlen(s)); }

void adi_sb_printf(adi_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) { adi_sb_put(b, tmp, (size_t)n); return; }
    sb_grow(b, (size_t)n);
    if (b->oom) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static int csv_needs_quotes(const char *s) { return strpbrk(s, ",\"\r\n") != NULL; }

void adi_sb_csv(adi_sbuf *b, const char *s)
{
    if (!csv_needs_quotes(s)) { adi_sb_puts(b, s); return; }
    adi_sb_puts(b, "\"");
    for (; *s; s++) {
        if (*s == '"') adi_sb_puts(b, "\"\"");
        else adi_sb_put(b, s, 1);
    }
    adi_sb_puts(b, "\"");
}

void adi_csv_fput(FILE *f, const char *s)
{
    adi_sbuf b = {0};
    adi_sb_csv(&b, s);
    if (b.oom) fputs(s, f); /* cannot quote without memory: the field as it is */
    else if (b.s) fputs(b.s, f);
    adi_sb_free(&b);
}

void adi_sb_double(adi_sbuf *b, double v)
{
    char t[40];
    snprintf(t, sizeof t, "%.15g", v);
    if (strtod(t, NULL) != v) snprintf(t, sizeof t, "%.17g", v);
    adi_sb_puts(b, t);
}

void adi_sb_free(adi_sbuf *b)
{
    adi_free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

ad_status adi_sb_write(adi_sbuf *b, const char *path)
{
    ad_status st = b->oom ? adi_fail(AD_E_NOMEM, "%s: out of memory", path)
                          : adi_io_write_file(path, b->s ? b->s : "", b->len);
    adi_sb_free(b);
    return st;
}
