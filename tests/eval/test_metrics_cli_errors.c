/* `anomalydino metrics` refuses bad input with exit status 1 and one line on stderr that names
 * the file and the CSV line (missing CSV / map / mask, bad label, bad score, wrong field count,
 * unterminated quote, map/mask size mismatch, one class only at image or pixel level, NaN in a
 * map, unwritable --json-out), and wrong usage with exit status 2; --help exits 0. */
#include "io/io.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static char dir[1024];

static const char *tmp(const char *name)
{
    static char b[4][1200];
    static int i;
    char *p = b[i++ & 3];
    snprintf(p, 1200, "%s/%s", dir, name);
    return p;
}

static void write_text(const char *name, const char *text)
{
    FILE *f = fopen(tmp(name), "wb");
    CHECK(f != NULL, "cannot write %s", tmp(name));
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* Runs the command line (after "anomalydino metrics"), checks the exit status and, for
 * failures, that stderr is one line containing `needle`. */
static void expect(const char *what, int want_rc, const char *args, const char *needle)
{
    char err[1200];
    snprintf(err, sizeof err, "%s", tmp("stderr.txt"));
    int rc = t_run("cd '%s' && ANOMALYDINO_QUIET=1 '%s' metrics %s > /dev/null 2> '%s'", dir,
                   t_bin(), args, err);
    char *msg = adi_io_read_file(err, NULL);
    int lines = 0;
    for (const char *p = msg; p && *p; p++) lines += *p == '\n';
    char *nl = msg ? strchr(msg, '\n') : NULL;
    if (nl) *nl = 0;
    printf("  %-34s exit %d: %s\n", what, rc, msg && *msg ? msg : "(no message)");
    CHECK(rc == want_rc, "%s: exit status %d, expected %d", what, rc, want_rc);
    if (needle) {
        CHECK(lines == 1, "%s: %d lines on stderr", what, lines);
        CHECK(msg && strstr(msg, needle), "%s: message lacks '%s'", what, needle);
    }
    free(msg);
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s", t_tmp("metrics_cli_errors"));
    adi_io_mkdirs(dir);

    /* tiny inputs: two 3x2 maps, one 3x2 mask with an anomaly, one 2x2 mask */
    float m[6] = {0.1f, 0.9f, 0.2f, 0.3f, 0.8f, 0.4f};
    size_t shape[2] = {2, 3};
    CHECK_OK(adi_npy_write(tmp("a.npy"), AD_NPY_F4, m, 2, shape));
    m[4] = NAN;
    CHECK_OK(adi_npy_write(tmp("nan.npy"), AD_NPY_F4, m, 2, shape));
    uint8_t k[6] = {0, 255, 0, 0, 255, 0};
    CHECK_OK(adi_io_write_png_gray(tmp("a.png"), k, 3, 2));
    CHECK_OK(adi_io_write_png_gray(tmp("small.png"), k, 2, 2));

    write_text("ok.csv", "image,label,score,map,mask\ng,0,0.1,a.npy,\nb,1,0.7,a.npy,a.png\n");
    expect("valid input", 0, "ok.csv", NULL);
    expect("missing CSV", 1, "nope.csv", "nope.csv");
    write_text("nomap.csv", "image,label,score,map,mask\ng,0,0.1,a.npy,\nb,1,0.7,zz.npy,a.png\n");
    expect("missing map", 1, "nomap.csv", "line 3");
    write_text("nomask.csv", "image,label,score,map,mask\ng,0,0.1,a.npy,\nb,1,0.7,a.npy,zz.png\n");
    expect("missing mask", 1, "nomask.csv", "zz.png");
    write_text("label.csv", "image,label,score\na,0,0.1\nb,1,0.2\nc,2,0.3\n");
    expect("label not 0/1", 1, "label.csv", "line 4: label must be 0 or 1, got '2'");
    write_text("score.csv", "image,label,score\na,0,0.1\nb,1,abc\n");
    expect("score not a number", 1, "score.csv", "line 3");
    write_text("inf.csv", "image,label,score\na,0,0.1\nb,1,inf\n");
    expect("infinite score", 1, "inf.csv", "line 3");
    write_text("fields.csv", "image,label,score\na,0,0.1\nb,1\n");
    expect("wrong field count", 1, "fields.csv", "line 3: 2 fields");
    write_text("quote.csv", "image,label,score\na,0,0.1\n\"b,1,0.2\n");
    expect("unterminated quote", 1, "quote.csv", "unterminated");
    write_text("after.csv", "image,label,score\n\"a\"x,0,0.1\n");
    expect("text after closing quote", 1, "after.csv", "line 2");
    write_text("header.csv", "image,lbl,score\na,0,0.1\n");
    expect("header without label", 1, "header.csv", "label");
    write_text("empty.csv", "");
    expect("empty file", 1, "empty.csv", "empty");
    write_text("size.csv", "image,label,score,map,mask\ng,0,0.1,a.npy,\nb,1,0.7,a.npy,small.png\n");
    expect("map/mask size mismatch", 1, "size.csv", "2 x 2");
    write_text("oneclass.csv", "image,label,score\na,0,0.1\nb,0,0.2\n");
    expect("only one class (image)", 1, "oneclass.csv", "both classes");
    write_text("nopix.csv", "image,label,score,map,mask\ng,0,0.1,a.npy,\nb,1,0.7,a.npy,\n");
    expect("only one class (pixels)", 1, "nopix.csv", "pixel metrics");
    write_text("nan.csv", "image,label,score,map,mask\ng,0,0.1,nan.npy,\nb,1,0.7,a.npy,a.png\n");
    expect("NaN in a map", 1, "nan.csv", "not finite");
    write_text("emptymap.csv", "image,label,score,map,mask\ng,0,0.1,,\nb,1,0.7,a.npy,a.png\n");
    expect("empty map path", 1, "emptymap.csv", "line 2");
    expect("unwritable --json-out", 1, "ok.csv --json-out /nonexistent/dir/x.json", "x.json");

    expect("no arguments", 2, "", "SCORES.csv");
    expect("unknown option", 2, "ok.csv --bogus", "--bogus");
    expect("--threads -1", 2, "ok.csv --threads -1", "--threads");
    expect("--json-out without value", 2, "ok.csv --json-out", "--json-out");
    expect("two CSV files", 2, "ok.csv ok.csv", "unexpected");
    expect("--help", 0, "--help", NULL);
    return t_done("test_metrics_cli_errors");
}
