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
int cmd_metrics(int argc, char **argv);
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
/* Sorted (byte order) names of the entries of `dir`, hidden ones (leading '.') left out: all of
 * them, only sub-directories or only regular files. -1 when the directory cannot be read (errno
 * set) or memory runs out. Free with cli_free_list. */
typedef enum { CLI_LIST_ALL, CLI_LIST_DIRS, CLI_LIST_FILES } cli_list_kind;
int cli_list_dir(const char *dir, cli_list_kind kind, char ***names);
/* The name ends in .png, .jpg or .jpeg, in any case. */
int cli_has_image_ext(const char *name);
double cli_now(void);   /* monotonic seconds */

#endif
