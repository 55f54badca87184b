/* The progress meter of the front end: plain lines when stderr is not a terminal, at most one
 * per CLI_METER_PERIOD_S (2 s) with count, percentage, elapsed time and ETA, the last step
 * always ("N/N done"); nothing under ANOMALYDINO_QUIET=1. stderr is redirected to a file. */
#include "testutil.h"

#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static char *run_meter(const char *path, int quiet, int sleep_at)
{
    fflush(stderr);
    int saved = dup(2);
    FILE *f = freopen(path, "w", stderr);
    CHECK(f != NULL, "cannot redirect stderr to %s", path);
    if (quiet) setenv("ANOMALYDINO_QUIET", "1", 1);
    else unsetenv("ANOMALYDINO_QUIET");
    cli_meter m;
    cli_meter_begin(&m, "test: items", 1000);
    for (int i = 1; i <= 1000; i++) {
        if (i == sleep_at) {
            struct timespec ts = {2, 100000000}; /* just over the 2 s period */
            nanosleep(&ts, NULL);
        }
        cli_meter_step(&m, i);
    }
    cli_meter_end(&m);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    size_t n;
    char *s = adi_io_read_file(path, &n);
    return s ? s : strdup("");
}

int main(void)
{
    /* a fast phase: only the final line */
    char *a = run_meter(t_tmp("meter_fast.txt"), 0, -1);
    CHECK(count_lines(a) == 1 && strstr(a, "test: items: 1000/1000 done in 0:00"),
          "fast phase: one final line, got:\n%s", a);
    /* a phase that pauses past the period: one intermediate line with count and ETA */
    char *b = run_meter(t_tmp("meter_slow.txt"), 0, 500);
    CHECK(count_lines(b) == 2 && strstr(b, "test: items: 500/1000 (50%), 0:0") && strstr(b, " elapsed, ETA 0:0") &&
              strstr(b, "1000/1000 done"),
          "slow phase: an intermediate line then the final one, got:\n%s", b);
    CHECK(!strchr(b, '\r') && !strstr(b, "\033["), "not a terminal: plain lines only");
    /* quiet */
    char *c = run_meter(t_tmp("meter_quiet.txt"), 1, -1);
    CHECK(c[0] == 0, "ANOMALYDINO_QUIET=1 silences the meter, got:\n%s", c);
    unsetenv("ANOMALYDINO_QUIET");
    printf("meter, fast phase:\n%smeter, phase with a pause:\n%squiet: %zu bytes\n", a, b,
           strlen(c));
    free(a), free(b), free(c);
    return t_done("test_progress_meter");
}
