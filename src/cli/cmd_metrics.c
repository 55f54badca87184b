/* anomalydino metrics: the paper's metrics from a CSV of scores (and optionally anomaly maps and
 * ground-truth masks), without a model. */
#include "cli/cli.h"

#include <omp.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CMD "metrics"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: anomalydino metrics SCORES.csv [--json-out FILE] [--threads N]\n\n"
            "Computes image AUROC, AP and F1-max (scikit-learn semantics) and, when the CSV lists\n"
            "anomaly maps, pixel AUROC, pixel F1-max and AU-PRO up to FPR 0.3 (the MVTec\n"
            "algorithm), and prints them as JSON.\n\n"
            "SCORES.csv has a header naming its columns: image,label,score[,map,mask]\n"
            "  image   name (informative only)\n"
            "  label   0 normal, 1 anomalous\n"
            "  score   image anomaly score\n"
            "  map     .npy float32 (or float64) H x W anomaly map\n"
            "  mask    ground-truth mask (PNG, BMP, TIFF or JPEG); values all < 128: nonzero\n"
            "          is anomalous, otherwise >= 128; empty for a good image\n"
            "Paths are relative to the CSV's folder. Fields may be quoted (\"a,b\", \"\" for \").\n\n"
            "  --json-out FILE   also write the JSON to FILE\n"
            "  --threads N       threads for sorting the pixels (default 0: all cores)\n"
            "  -h, --help        this help\n\n"
            "Exit status: 0 success, 1 bad input (missing file, bad row, one class only),\n"
            "2 wrong usage.\n");
}

/* CSV: the library's reader (io.h adi_csv_*), strict. */
typedef adi_csv_row csv_row;

/* Leading/trailing blanks of an unquoted header name or number are not meaningful. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = 0;
    return s;
}

/* ------------------------------------------------------------------------------------------ */
typedef struct {
    int n, cap;
    int *label;
    double *score;
    char **map, **mask;   /* NULL when the column is absent / the field is empty */
    int *line;
} table;

static void table_free(table *t)
{
    for (int i = 0; i < t->n; i++) {
        free(t->map[i]);
        free(t->mask[i]);
    }
    free(t->label);
    free(t->score);
    free(t->map);
    free(t->mask);
    free(t->line);
}

static int table_grow(table *t)
{
    if (t->n < t->cap) return 0;
    int cap = t->cap ? t->cap * 2 : 64;
    int *l = realloc(t->label, (size_t)cap * sizeof *l);
    if (l) t->label = l;
    double *s = realloc(t->score, (size_t)cap * sizeof *s);
    if (s) t->score = s;
    char **m = realloc(t->map, (size_t)cap * sizeof *m);
    if (m) t->map = m;
    char **k = realloc(t->mask, (size_t)cap * sizeof *k);
    if (k) t->mask = k;
    int *ln = realloc(t->line, (size_t)cap * sizeof *ln);
    if (ln) t->line = ln;
    if (!l || !s || !m || !k || !ln) return -1;
    t->cap = cap;
    return 0;
}

/* Reads and checks the CSV (text: len bytes, NUL-terminated, the caller's). 0 on success; on
 * failure the error has been printed. */
static int read_table(const char *path, const char *text, size_t len, table *t, int *has_maps)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup("");
    adi_csv_reader rd;
    adi_csv_init(&rd, text, len, 0);
    csv_row row = {0};
    char err[256];
    int rc = -1, r;
    int c_label = -1, c_score = -1, c_map = -1, c_mask = -1, c_image = -1, n_cols = 0;
    if (!dir) {
        cli_error(CMD, "out of memory");
        goto out;
    }

    r = adi_csv_next(&rd, &row, err, sizeof err);
    if (r <= 0) {
        cli_error(CMD, "%s: %s", path, r < 0 ? err : "empty file (expected a header line)");
        goto out;
    }
    n_cols = row.n;
    for (int i = 0; i < row.n; i++) {
        const char *name = trim(row.f[i]);
        int *slot = !strcmp(name, "image") ? &c_image
                    : !strcmp(name, "label") ? &c_label
                    : !strcmp(name, "score") ? &c_score
                    : !strcmp(name, "map")   ? &c_map
                    : !strcmp(name, "mask")  ? &c_mask
                                             : NULL;
        if (!slot) continue;   /* extra columns are allowed and ignored */
        if (*slot >= 0) {
            cli_error(CMD, "%s: line %d: column '%s' appears twice", path, row.line, name);
            goto out;
        }
        *slot = i;
    }
    if (c_label < 0 || c_score < 0) {
        cli_error(CMD, "%s: line %d: the header needs columns 'label' and 'score' "
                  "(image,label,score[,map,mask])", path, row.line);
        goto out;
    }
    if (c_mask >= 0 && c_map < 0) {
        cli_error(CMD, "%s: line %d: a 'mask' column needs a 'map' column", path, row.line);
        goto out;
    }
    (void)c_image;
    *has_maps = c_map >= 0;

    while ((r = adi_csv_next(&rd, &row, err, sizeof err)) > 0) {
        if (row.n != n_cols) {
            cli_error(CMD, "%s: line %d: %d fields, the header has %d", path, row.line, row.n,
                      n_cols);
            goto out;
        }
        if (table_grow(t)) {
            cli_error(CMD, "out of memory");
            goto out;
        }
        int i = t->n;
        t->map[i] = t->mask[i] = NULL;
        t->line[i] = row.line;
        const char *lab = trim(row.f[c_label]);
        if (strcmp(lab, "0") && strcmp(lab, "1")) {
            cli_error(CMD, "%s: line %d: label must be 0 or 1, got '%s'", path, row.line, lab);
            goto out;
        }
        t->label[i] = lab[0] - '0';
        const char *sc = trim(row.f[c_score]);
        char *end;
        errno = 0;
        double v = strtod(sc, &end);
        if (end == sc || *end || !isfinite(v)) {
            cli_error(CMD, "%s: line %d: score must be a finite number, got '%s'", path,
                      row.line, sc);
            goto out;
        }
        t->score[i] = v;
        t->n++;   /* from here the row owns what is allocated below */
        if (c_map >= 0) {
            if (!row.f[c_map][0]) {
                cli_error(CMD, "%s: line %d: empty map path (every row needs a map when the "
                          "header has a 'map' column)", path, row.line);
                goto out;
            }
            t->map[i] = adi_path_resolve(dir, row.f[c_map]);
            if (c_mask >= 0 && row.f[c_mask][0]) t->mask[i] = adi_path_resolve(dir, row.f[c_mask]);
            if (!t->map[i] || (c_mask >= 0 && row.f[c_mask][0] && !t->mask[i])) {
                cli_error(CMD, "out of memory");
                goto out;
            }
        }
    }
    if (r < 0) {
        cli_error(CMD, "%s: %s", path, err);
        goto out;
    }
    if (t->n == 0) {
        cli_error(CMD, "%s: no rows after the header", path);
        goto out;
    }
    rc = 0;
out:
    adi_csv_row_free(&row);
    free(dir);
    return rc;
}

/* One map (+ mask) into the evaluation. 0 on success; on failure the error has been printed. */
static int add_map(ad_pixel_eval *pe, const char *csv, const table *t, int i,
                   const cli_metrics_io *io)
{
    adi_npy a;
    uint8_t *mask = NULL;
    float *conv = NULL;
    int rc = -1;
    if ((io ? io->read_map(io->ctx, t->map[i], &a) : adi_npy_read(t->map[i], &a)) != AD_OK) {
        cli_error(CMD, "%s: line %d: %s", csv, t->line[i], ad_errmsg());
        return -1;
    }
    if (a.ndim != 2 || a.shape[0] == 0 || a.shape[1] == 0 || a.shape[0] > INT32_MAX ||
        a.shape[1] > INT32_MAX) {
        cli_error(CMD, "%s: line %d: %s: expected a 2-D H x W map, got %d dimensions", csv,
                  t->line[i], t->map[i], a.ndim);
        goto out;
    }
    if (a.dtype != AD_NPY_F4 && a.dtype != AD_NPY_F8) {
        cli_error(CMD, "%s: line %d: %s: expected float32 or float64 values", csv, t->line[i],
                  t->map[i]);
        goto out;
    }
    int h = (int)a.shape[0], w = (int)a.shape[1];
    const float *map = a.data;
    if (a.dtype == AD_NPY_F8) {
        conv = adi_npy_to_f32(&a);
        if (!conv) {
            cli_error(CMD, "%s: line %d: %s", csv, t->line[i], ad_errmsg());
            goto out;
        }
        map = conv;
    }
    if (t->mask[i]) {
        int mw, mh;
        ad_status ms = AD_OK;
        if (io) {
            /* the caller's reader (fuzz target), binarised as adi_io_read_gt_mask does */
            ms = io->read_mask(io->ctx, t->mask[i], &mask, &mw, &mh);
            if (ms == AD_OK) adi_io_binarize_mask(mask, (size_t)mw * (size_t)mh);
        } else {
            ms = adi_io_read_gt_mask(t->mask[i], 0, &mask, &mw, &mh);
        }
        if (ms != AD_OK) {
            cli_error(CMD, "%s: line %d: %s", csv, t->line[i], ad_errmsg());
            goto out;
        }
        if (mw != w || mh != h) {
            cli_error(CMD, "%s: line %d: mask %s is %d x %d but map %s is %d x %d (W x H)", csv,
                      t->line[i], t->mask[i], mw, mh, t->map[i], w, h);
            goto out;
        }
    }
    if (ad_pixel_eval_add(pe, map, mask, w, h) != AD_OK) {
        cli_error(CMD, "%s: line %d: %s: %s", csv, t->line[i], t->map[i], ad_errmsg());
        goto out;
    }
    rc = 0;
out:
    adi_free(conv);
    adi_free(mask);
    adi_npy_free(&a);
    return rc;
}

int cmd_metrics(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json-out", required_argument, 0, 'j'},
        {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *json_out = NULL;
    int threads = 0, ch;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'j': json_out = optarg; break;
        case 't':
            if (cli_parse_int(CMD, "--threads", optarg, 0, 1024, &threads)) return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_getopt_error(CMD, ch, argv);
        }
    }
    if (optind >= argc) {
        cli_error(CMD, "missing SCORES.csv (see --help)");
        return 2;
    }
    if (optind + 1 < argc) {
        cli_error(CMD, "unexpected argument '%s' (see --help)", argv[optind + 1]);
        return 2;
    }
    const char *csv = argv[optind];
    omp_set_num_threads(adi_threads_resolve(threads));

    size_t len;
    char *text = adi_io_read_file(csv, &len);
    if (!text) {
        cli_error(CMD, "%s", ad_errmsg());
        return 1;
    }
    char json[1024];
    int rc = cli_metrics_eval(csv, text, len, NULL, json, sizeof json);
    free(text);
    if (rc) return rc;
    /* the file first: a failure then leaves nothing half-reported on stdout */
    if (json_out) {
        if (adi_io_write_file(json_out, json, strlen(json)) != AD_OK) {
            cli_error(CMD, "%s", ad_errmsg());
            return 1;
        }
    }
    fputs(json, stdout);
    if (fflush(stdout)) {
        cli_error(CMD, "cannot write to standard output");
        return 1;
    }
    return 0;
}

int cli_metrics_eval(const char *csv, const char *text, size_t len, const cli_metrics_io *io,
                     char *json, size_t json_cap)
{
    table t = {0};
    int has_maps = 0, rc = 1;
    ad_pixel_eval *pe = NULL;
    if (read_table(csv, text, len, &t, &has_maps)) goto out;

    ad_image_metrics im;
    if (ad_metrics_image(t.label, t.score, (size_t)t.n, &im) != AD_OK) {
        cli_error(CMD, "%s: image metrics: %s", csv, ad_errmsg());
        goto out;
    }
    ad_pixel_metrics pm;
    if (has_maps) {
        double t0 = cli_now();
        pe = ad_pixel_eval_new();
        if (!pe) {
            cli_error(CMD, "%s", ad_errmsg());
            goto out;
        }
        for (int i = 0; i < t.n; i++)
            if (add_map(pe, csv, &t, i, io)) goto out;
        double t1 = cli_now();
        if (ad_pixel_eval_finish(pe, &pm) != AD_OK) {
            cli_error(CMD, "%s: pixel metrics: %s", csv, ad_errmsg());
            goto out;
        }
        cli_progress("metrics: %d maps read in %.2f s, pixel metrics in %.2f s", t.n, t1 - t0,
                     cli_now() - t1);
    }

    int k = snprintf(json, json_cap,
                     "{\n  \"image_auroc\": %.17g,\n  \"image_ap\": %.17g,\n"
                     "  \"image_f1max\": %.17g",
                     im.auroc, im.ap, im.f1max);
    if (has_maps)
        k += snprintf(json + k, json_cap - (size_t)k,
                      ",\n  \"pixel_auroc\": %.17g,\n  \"pixel_f1max\": %.17g,\n"
                      "  \"pixel_aupro\": %.17g",
                      pm.auroc, pm.f1max, pm.aupro);
    snprintf(json + k, json_cap - (size_t)k, "\n}\n");
    rc = 0;
out:
    ad_pixel_eval_free(pe);
    table_free(&t);
    return rc;
}
