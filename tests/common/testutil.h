/* Minimal test harness: CHECK macros that print what differs, and paths to the test data. */
#ifndef AD_TESTUTIL_H
#define AD_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <math.h>

extern int t_failures;
extern int t_checks;

#define CHECK(cond, ...)                                                                    \
    do {                                                                                   \
        t_checks++;                                                                        \
        if (!(cond)) {                                                                     \
            t_failures++;                                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                 \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

#define CHECK_OK(expr)                                                                      \
    do {                                                                                   \
        ad_status st_ = (expr);                                                            \
        CHECK(st_ == AD_OK, "%s -> %s: %s", #expr, ad_status_name(st_), ad_errmsg());      \
    } while (0)

/* Path under tests/data (AD_TEST_DATA), in a static rotating buffer. */
const char *t_data(const char *rel);
/* Path under the per-build scratch folder (AD_TMP), created on demand. */
const char *t_tmp(const char *rel);
/* The CLI binary (AD_BIN). */
const char *t_bin(void);
/* Runs a shell command, returns its exit status (-1 if it could not run). */
int t_run(const char *fmt, ...);

/* Prints "name: N checks, M failures" and returns the exit code. Ends with the plain line
 * understood by CI ("N passed, M failed"). */
int t_done(const char *name);

/* Largest |a-b| over n values, its index, and relative report helpers. */
double t_maxdiff_f32(const float *a, const float *b, size_t n, size_t *where);
double t_maxdiff_f64(const double *a, const double *b, size_t n, size_t *where);

#endif
