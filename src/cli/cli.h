/* The command-line tool: one file per command (cmd_<name>.c), shared helpers in cli_common.c. */
#ifndef AD_CLI_H
#define AD_CLI_H

#include "core/core.h"
#include "io/io.h"

#include <stdio.h>

/* Every command: parses its own options (getopt_long; optind is reset by the dispatcher), prints
 * its results on stdout, progress and errors on stderr; returns the process exit code:
 * 0 success, 1 failure of the work (bad input file, ...), 2 wrong usage. */
typedef int (*cli_command_fn)(int argc, char **argv);

int cmd_info(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_fit(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_zeroshot(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_eval_merge(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_dataset(int argc, char **argv);
/* The work of `metrics` on a SCORES.csv already in memory (text: len bytes, NUL-terminated):
 * image (and pixel) metrics as JSON into json. io NULL reads maps and masks from disk (paths
 * relative to the CSV's folder); the fuzz target passes its own readers. 0, or 1 after printing
 * the error. */
typedef struct {
    ad_status (*read_map)(void *ctx, const char *path, adi_npy *out);
    ad_status (*read_mask)(void *ctx, const char *path, uint8_t **out, int *w, int *h);
    void *ctx;
} cli_metrics_io;
int cli_metrics_eval(const char *csv, const char *text, size_t len, const cli_metrics_io *io,
                     char *json, size_t json_cap);

/* "anomalydino <cmd>: <message>" on stderr. */
void cli_error(const char *cmd, const char *fmt, ...) AD_PRINTF(2, 3);
/* Progress line on stderr (suppressed by ANOMALYDINO_QUIET=1). */
void cli_progress(const char *fmt, ...) AD_PRINTF(1, 2);
/* Strict integer / double parsing of an option value; prints the error and returns -1 on failure. */
int cli_parse_int(const char *cmd, const char *opt, const char *s, int lo, int hi, int *out);
int cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                     double *out);
/* Expands files and directories (walked recursively, sorted, image extensions only:
 * .png .jpg .jpeg, case-insensitive) into a NULL-free list. Returns count or -1 (error printed). */
int cli_collect_images(const char *cmd, char **inputs, int n_inputs, char ***out_paths);
void cli_free_list(char **list, int n);
/* Same, and for each path the part below the folder it was found in ("sub/000.png"), or NULL
 * for a file given by itself. Free both with cli_free_list. */
int cli_collect_images_rel(const char *cmd, char **inputs, int n_inputs, char ***out_paths,
                           char ***out_rels);
/* getopt_long's own message lacks the program name: option strings start with ':' (silent,
 * ':' for a missing value) and this prints "anomalydino CMD: unknown option '--x' ..." or
 * "... --x needs a value ..."; returns 2 (usage). */
int cli_getopt_error(const char *cmd, int ch, char **argv);
/* --max-pixels value: a count, "40M", 0 = no limit. Prints the error; 0 or -1. */
int cli_parse_max_pixels(const char *cmd, const char *s, size_t *out);
/* Default image-size limit of fit, predict, zeroshot and eval (pixels). */
#define CLI_DEFAULT_MAX_PIXELS ((size_t)40000000)
/* ANOMALYDINO_QUIET=1 (any value but empty or 0). */
int cli_quiet(void);

/* Progress of a phase with a known count, on stderr: on a terminal one line rewritten in place
 * at most every CLI_METER_PERIOD_S seconds (count, percentage, elapsed, ETA), otherwise plain
 * lines at the same pace; the last step always prints ("LABEL: N/N done in M:SS"), so a phase
 * shorter than the period shows that line only. Silent under ANOMALYDINO_QUIET. */
#define CLI_METER_PERIOD_S 2.0
typedef struct {
    char label[200];
    int total;
    double t0, last;
    int quiet, tty, open;
} cli_meter;
void cli_meter_begin(cli_meter *m, const char *label, int total);
void cli_meter_step(cli_meter *m, int done);
/* Ends an unfinished terminal line (a phase stopped early). */
void cli_meter_end(cli_meter *m);
/* Sorted (byte order) names of the entries of `dir`, hidden ones (leading '.') left out: all of
 * them, only sub-directories or only regular files. -1 when the directory cannot be read (errno
 * set) or memory runs out. Free with cli_free_list. */
typedef enum { CLI_LIST_ALL, CLI_LIST_DIRS, CLI_LIST_FILES } cli_list_kind;
int cli_list_dir(const char *dir, cli_list_kind kind, char ***names);
/* The name ends in .png, .jpg or .jpeg, in any case. */
int cli_has_image_ext(const char *name);
double cli_now(void);   /* monotonic seconds */

/* Banks that grow (cmd_bank.c) */
int cmd_bank(int argc, char **argv);
/* --coreset R: a fraction in (0, 1] or a whole row count >= 2. 0 or -1 (error printed). */
int cli_parse_coreset(const char *cmd, const char *s, double *out);
/* Sets the bank's clock from SOURCE_DATE_EPOCH when set (reproducible bank files). */
void cli_bank_clock(ad_bank *b);
/* --index SPEC: ivf[:LISTS[:PROBES]] (LISTS, PROBES: a positive number or auto = 0) -> *kind 1,
 * or, when allow_none, none -> *kind 0. 0 or -1 (one-line error printed). */
int cli_parse_index(const char *cmd, const char *s, int allow_none, int *kind, int *lists,
                    int *probes);

#endif
