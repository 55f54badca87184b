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

/* Banks that grow (cmd_bank.c) */
int cmd_bank(int argc, char **argv);
/* --coreset R: a fraction in (0, 1] or a whole row count >= 2. 0 or -1 (error printed). */
int cli_parse_coreset(const char *cmd, const char *s, double *out);
/* Sets the bank's clock from SOURCE_DATE_EPOCH when set (reproducible bank files). */
void cli_bank_clock(ad_bank *b);

#endif
