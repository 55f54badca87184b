/* Outputs of the evaluation protocol (see report.h). */
#include "report/report.h"

#include "image/image.h"
#include "io/io.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const metric_titles[REP_N_METRICS] = {
    "Image AUROC", "Image AP", "Image F1-max", "Pixel AUROC", "Pixel F1-max", "AU-PRO (FPR 0.3)"};

typedef adi_sbuf sbuf;
#define sb_put adi_sb_put
#define sb_puts adi_sb_puts
#define sb_printf adi_sb_printf
#define sb_csv adi_sb_csv
#define sb_double adi_sb_double

/* HTML text and attribute escaping. */
static void sb_html(sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': sb_puts(b, "&lt;"); break;
        case '>': sb_puts(b, "&gt;"); break;
        case '&': sb_puts(b, "&amp;"); break;
        case '"': sb_puts(b, "&quot;"); break;
        case '\'': sb_puts(b, "&#39;"); break;
        default: sb_put(b, s, 1);
        }
    }
}

/* CSV field, quoted when it holds a separator, quote or line break. */
/* Markdown table cell text: '|' would end the cell. */
static void sb_md(sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') sb_puts(b, "\\|");
        else sb_put(b, s, 1);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* run records                                                                                 */
/* ------------------------------------------------------------------------------------------ */

void rep_shots_key(int k, char *buf, size_t n) { pr_shots_key(k, buf, n); }

static const ad_eval_unit *run_at(const rep_input *in, int s, int d, int c)
{
    const pr_unit *u =
        in->runs[((size_t)s * (size_t)in->n_seeds + (size_t)d) * (size_t)in->n_cats + (size_t)c];
    return u ? &u->u : NULL;
}

static int run_metric(const ad_eval_unit *run, int m, double *v)
{
    if (!run || !(run->metrics_present >> m & 1) || !isfinite(run->metrics[m])) return 0;
    *v = run->metrics[m];
    return 1;
}

static double images_seconds(const ad_eval_unit *run)
{
    double t = 0;
    for (int i = 0; i < run->n_images; i++) t += run->images[i].seconds;
    return t;
}

/* Value of one (shots, seed) for a category, or the macro average over categories. */
static int seed_value(const rep_input *in, int s, int d, int c, int m, double *v)
{
    if (c >= 0) return run_metric(run_at(in, s, d, c), m, v);
    double sum = 0;
    int n = 0;
    for (int k = 0; k < in->n_cats; k++) {
        double x;
        if (run_metric(run_at(in, s, d, k), m, &x)) { sum += x; n++; }
    }
    if (!n) return 0;
    *v = sum / n;
    return 1;
}

int rep_cell_stats(const rep_input *in, int i_shot, int i_cat, int metric, double *mean,
                   double *std)
{
    double vals[256];
    int n = 0;
    for (int d = 0; d < in->n_seeds && n < 256; d++) {
        double v;
        if (seed_value(in, i_shot, d, i_cat, metric, &v)) vals[n++] = v;
    }
    if (!n) return 0;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += vals[i];
    double mu = sum / n, ss = 0;
    for (int i = 0; i < n; i++) ss += (vals[i] - mu) * (vals[i] - mu);
    *mean = mu;
    *std = sqrt(ss / n);
    return n;
}

/* Which metrics any run has (pixel metrics only with --segmentation). */
static unsigned metrics_present(const rep_input *in)
{
    unsigned mask = 0;
    size_t total = (size_t)in->n_shots * (size_t)in->n_seeds * (size_t)in->n_cats;
    for (size_t i = 0; i < total; i++)
        for (int m = 0; m < REP_N_METRICS; m++) {
            double v;
            if (in->runs[i] && run_metric(&in->runs[i]->u, m, &v)) mask |= 1u << m;
        }
    return mask;
}

/* ------------------------------------------------------------------------------------------ */
/* metrics.json                                                                                */
/* ------------------------------------------------------------------------------------------ */

cJSON *rep_metrics_json(const rep_input *in)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON *results = cJSON_AddObjectToObject(root, "results");
    cJSON *mean = cJSON_AddObjectToObject(root, "mean");
    cJSON *std = cJSON_AddObjectToObject(root, "std");
    cJSON *timing = cJSON_AddObjectToObject(root, "timing");
    int ok = results && mean && std && timing;
    for (int s = 0; s < in->n_shots && ok; s++) {
        char sk[32];
        rep_shots_key(in->shots[s], sk, sizeof sk);
        cJSON *rs = cJSON_CreateObject(), *ts = cJSON_CreateObject();
        ok = rs && ts;
        for (int d = 0; d < in->n_seeds && ok; d++) {
            char dk[32];
            snprintf(dk, sizeof dk, "%d", in->seeds[d]);
            cJSON *rd = cJSON_CreateObject(), *td = cJSON_CreateObject();
            ok = rd && td;
            for (int c = 0; c < in->n_cats && ok; c++) {
                const ad_eval_unit *run = run_at(in, s, d, c);
                if (!run) continue;
                cJSON *mc = cJSON_CreateObject(), *tc = cJSON_CreateObject();
                ok = mc && tc;
                for (int m = 0; m < REP_N_METRICS && ok; m++) {
                    double v;
                    if (run_metric(run, m, &v))
                        ok = cJSON_AddNumberToObject(mc, rep_metric_names[m], v) != NULL;
                }
                int ni = run->n_images;
                double tsum = images_seconds(run);
                if (ok && tc) {
                    cJSON_AddNumberToObject(tc, "bank_seconds", run->bank_seconds);
                    cJSON_AddNumberToObject(tc, "bank_rows", run->bank_rows);
                    cJSON_AddNumberToObject(tc, "test_images", ni);
                    cJSON_AddNumberToObject(tc, "inference_seconds_per_image", ni ? tsum / ni : 0);
                }
                if (mc) cJSON_AddItemToObject(rd, in->cats[c], mc);
                if (tc) cJSON_AddItemToObject(td, in->cats[c], tc);
            }
            if (rd) cJSON_AddItemToObject(rs, dk, rd);
            if (td) cJSON_AddItemToObject(ts, dk, td);
        }
        if (rs) cJSON_AddItemToObject(results, sk, rs);
        if (ts) cJSON_AddItemToObject(timing, sk, ts);

        cJSON *ms = cJSON_AddObjectToObject(mean, sk), *ss = cJSON_AddObjectToObject(std, sk);
        ok = ok && ms && ss;
        for (int c = -1; c < in->n_cats && ok; c++) {
            /* categories first, then the macro average, like the paper's rows */
            int cc = c + 1 < in->n_cats ? c + 1 : -1;
            cJSON *mc = cJSON_CreateObject(), *sc = cJSON_CreateObject();
            ok = mc && sc;
            int any = 0;
            for (int m = 0; m < REP_N_METRICS && ok; m++) {
                double mu, sd;
                if (rep_cell_stats(in, s, cc, m, &mu, &sd)) {
                    cJSON_AddNumberToObject(mc, rep_metric_names[m], mu);
                    cJSON_AddNumberToObject(sc, rep_metric_names[m], sd);
                    any = 1;
                }
            }
            const char *key = cc >= 0 ? in->cats[cc] : "mean";
            if (any && ok) {
                cJSON_AddItemToObject(ms, key, mc);
                cJSON_AddItemToObject(ss, key, sc);
            } else {
                cJSON_Delete(mc);
                cJSON_Delete(sc);
            }
        }
    }
    if (ok && in->settings) {
        cJSON *dup = cJSON_Duplicate(in->settings, 1);
        ok = dup != NULL;
        if (dup) cJSON_AddItemToObject(root, "settings", dup);
    }
    if (ok) ok = cJSON_AddStringToObject(root, "version", ad_version()) != NULL;
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

ad_status rep_write_text(const char *path, const char *text, size_t len)
{
    return adi_io_write_file(path, text, len);
}

ad_status rep_write_json(const char *path, const cJSON *obj) { return pr_write_json(path, obj); }

static ad_status write_sb(const char *path, sbuf *b) { return adi_sb_write(b, path); }

/* ------------------------------------------------------------------------------------------ */
/* CSV outputs                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void sb_value(sbuf *b, int have, double v)
{
    if (have) sb_double(b, v);
}

ad_status rep_write_metrics_csv(const char *path, const rep_input *in)
{
    sbuf b = {0};
    sb_puts(&b, "shots,seed,category");
    for (int m = 0; m < REP_N_METRICS; m++) sb_printf(&b, ",%s", rep_metric_names[m]);
    sb_puts(&b, "\n");
    for (int s = 0; s < in->n_shots; s++) {
        char sk[32];
        rep_shots_key(in->shots[s], sk, sizeof sk);
        for (int d = 0; d < in->n_seeds; d++) {
            int any = 0;
            for (int c = 0; c < in->n_cats; c++) {
                const ad_eval_unit *run = run_at(in, s, d, c);
                if (!run) continue;
                any = 1;
                sb_printf(&b, "%s,%d,", sk, in->seeds[d]);
                sb_csv(&b, in->cats[c]);
                for (int m = 0; m < REP_N_METRICS; m++) {
                    double v;
                    sb_puts(&b, ",");
                    int h = run_metric(run, m, &v);
                    sb_value(&b, h, v);
                }
                sb_puts(&b, "\n");
            }
            if (!any) continue;
            sb_printf(&b, "%s,%d,mean", sk, in->seeds[d]);
            for (int m = 0; m < REP_N_METRICS; m++) {
                double v;
                sb_puts(&b, ",");
                int h = seed_value(in, s, d, -1, m, &v);
                sb_value(&b, h, v);
            }
            sb_puts(&b, "\n");
        }
        /* summary rows over seeds: seed column "mean" / "std" */
        for (int c = 0; c <= in->n_cats; c++) {
            int cc = c < in->n_cats ? c : -1;
            for (int w = 0; w < 2; w++) {
                sbuf row = {0};
                int any = 0;
                for (int m = 0; m < REP_N_METRICS; m++) {
                    double mu, sd;
                    sb_puts(&row, ",");
                    if (rep_cell_stats(in, s, cc, m, &mu, &sd)) {
                        sb_double(&row, w ? sd : mu);
                        any = 1;
                    }
                }
                if (any) {
                    sb_printf(&b, "%s,%s,", sk, w ? "std" : "mean");
                    sb_csv(&b, cc >= 0 ? in->cats[cc] : "mean");
                    sb_puts(&b, row.s ? row.s : "");
                    sb_puts(&b, "\n");
                }
                if (row.oom) b.oom = 1;
                adi_free(row.s);
            }
        }
    }
    return write_sb(path, &b);
}

ad_status rep_write_scores_csv(const char *path, const rep_input *in)
{
    sbuf b = {0};
    sb_puts(&b, "shots,seed,category,image,label,score,time\n");
    for (int s = 0; s < in->n_shots; s++) {
        char sk[32];
        rep_shots_key(in->shots[s], sk, sizeof sk);
        for (int d = 0; d < in->n_seeds; d++)
            for (int c = 0; c < in->n_cats; c++) {
                const ad_eval_unit *run = run_at(in, s, d, c);
                if (!run) continue;
                for (int k = 0; k < run->n_images; k++) {
                    const ad_eval_image *it = &run->images[k];
                    sb_printf(&b, "%s,%d,", sk, in->seeds[d]);
                    sb_csv(&b, in->cats[c]);
                    sb_puts(&b, ",");
                    sb_csv(&b, it->image ? it->image : "");
                    sb_printf(&b, ",%d,%.9g,%.6f\n", it->label, it->score, it->seconds);
                }
            }
    }
    return write_sb(path, &b);
}

ad_status rep_write_timing_csv(const char *path, const rep_input *in)
{
    sbuf b = {0};
    sb_puts(&b, "shots,seed,category,references,bank_rows,bank_seconds,test_images,"
                "inference_seconds_per_image,inference_seconds_total\n");
    for (int s = 0; s < in->n_shots; s++) {
        char sk[32];
        rep_shots_key(in->shots[s], sk, sizeof sk);
        for (int d = 0; d < in->n_seeds; d++)
            for (int c = 0; c < in->n_cats; c++) {
                const ad_eval_unit *run = run_at(in, s, d, c);
                if (!run) continue;
                int ni = run->n_images;
                double tsum = images_seconds(run);
                sb_printf(&b, "%s,%d,", sk, in->seeds[d]);
                sb_csv(&b, in->cats[c]);
                sb_printf(&b, ",%d,%.0f,%.6f,%d,%.6f,%.6f\n", run->n_references, run->bank_rows,
                          run->bank_seconds, ni, ni ? tsum / ni : 0.0, tsum);
            }
    }
    return write_sb(path, &b);
}

/* ------------------------------------------------------------------------------------------ */
/* tables (Markdown and HTML share the cell formatting)                                        */
/* ------------------------------------------------------------------------------------------ */

static void shots_title(const rep_input *in, int s, char *buf, size_t n)
{
    if (in->zeroshot) snprintf(buf, n, "0-shot");
    else if (in->shots[s] < 0) snprintf(buf, n, "full-shot");
    else snprintf(buf, n, "%d-shot", in->shots[s]);
}

/* "97.3 ± 0.4" (x100, one decimal, as the paper); one seed: no "±"; none: "–". */
static void cell_text(const rep_input *in, int s, int c, int m, char *buf, size_t n)
{
    double mu, sd;
    int k = rep_cell_stats(in, s, c, m, &mu, &sd);
    if (!k) snprintf(buf, n, "–");
    else if (k == 1) snprintf(buf, n, "%.1f", 100 * mu);
    else snprintf(buf, n, "%.1f ± %.1f", 100 * mu, 100 * sd);
}

/* Seeds a cell of shots column s should have: one for full shot and zero-shot (seed 0 only). */
static int expected_seeds(const rep_input *in, int s)
{
    return in->zeroshot || in->shots[s] < 0 ? 1 : in->n_seeds;
}

/* Seeds of a category cell, or for the macro mean (c = -1) the fewest of any category. */
static int cell_seeds(const rep_input *in, int s, int c, int m)
{
    double mu, sd;
    if (c >= 0) return rep_cell_stats(in, s, c, m, &mu, &sd);
    int fewest = INT_MAX;
    for (int k = 0; k < in->n_cats; k++) {
        int n = rep_cell_stats(in, s, k, m, &mu, &sd);
        if (n < fewest) fewest = n;
    }
    return in->n_cats ? fewest : 0;
}

/* Cells of the metric-m table (m < 0: the table of means, every present metric) made from fewer
 * runs than asked for: a category with seeds missing, or a mean over categories that lacks some
 * of them. The numbers stay (mean over what exists), but never silently: a line under the table
 * names them. */
static void incomplete_note(sbuf *b, const rep_input *in, int m, unsigned present, int html)
{
    sbuf items = {0};
    int n = 0;
    for (int s = 0; s < in->n_shots; s++) {
        char t[32];
        shots_title(in, s, t, sizeof t);
        int want = expected_seeds(in, s);
        for (int c = m < 0 && !in->zeroshot ? in->n_cats : 0; c <= in->n_cats; c++) {
            int cc = c < in->n_cats ? c : -1, have = want;
            for (int q = 0; q < REP_N_METRICS; q++) {
                if (m >= 0 ? q != m : !(present >> q & 1)) continue;
                int k = cell_seeds(in, s, cc, q);
                if (k < have) have = k;
            }
            if (have >= want) continue;
            sb_puts(&items, n++ ? "; " : "");
            if (cc >= 0) {
                if (html) sb_html(&items, in->cats[cc]);
                else sb_md(&items, in->cats[cc]);
                if (have) sb_printf(&items, " %s (%d of %d seeds)", t, have, want);
                else sb_printf(&items, " %s (no result)", t);
            } else {
                sb_printf(&items, "Mean %s (not every category has every run)", t);
            }
        }
    }
    if (n) {
        sb_printf(b, "%sIncomplete (averaged over the runs that exist; see what was left out): %s."
                     "%s\n",
                  html ? "<p class=\"small incomplete\">" : "", items.s ? items.s : "",
                  html ? "</p>" : "\n");
    }
    if (items.oom) b->oom = 1;
    adi_free(items.s);
}

static int seeds_with_runs(const rep_input *in)
{
    int n = 0;
    for (int d = 0; d < in->n_seeds; d++) {
        int any = 0;
        for (int s = 0; s < in->n_shots && !any; s++)
            for (int c = 0; c < in->n_cats && !any; c++) any = run_at(in, s, d, c) != NULL;
        n += any;
    }
    return n;
}

static void settings_line(sbuf *b, const rep_input *in, int html)
{
    static const char *const keys[] = {"dataset", "mode", "preset", "resolution", "model",
                                       "weights", "segmentation", NULL};
    int first = 1;
    for (int i = 0; keys[i]; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(in->settings, keys[i]);
        char v[600];
        if (cJSON_IsString(x) && x->valuestring) snprintf(v, sizeof v, "%s", x->valuestring);
        else if (cJSON_IsBool(x)) snprintf(v, sizeof v, "%s", cJSON_IsTrue(x) ? "yes" : "no");
        else if (cJSON_IsNumber(x)) snprintf(v, sizeof v, "%g", x->valuedouble);
        else continue;
        sb_puts(b, first ? "" : ", ");
        first = 0;
        sb_printf(b, "%s ", keys[i]);
        if (html) sb_html(b, v);
        else sb_md(b, v);
    }
}

char *rep_tables_md(const rep_input *in)
{
    sbuf b = {0};
    unsigned present = metrics_present(in);
    int nseeds = seeds_with_runs(in);
    sb_printf(&b, "# AnomalyDINO evaluation%s\n\n", in->zeroshot ? " (zero-shot)" : "");
    sb_puts(&b, "Settings: ");
    settings_line(&b, in, 0);
    sb_printf(&b, ".\nValues x100; %s.\n\n",
              nseeds > 1 ? "mean ± std (population) over the seeds" : "one seed");
    if (!present) {
        /* not an empty table: say it */
        sb_puts(&b, "No results: no run produced metrics (the problems are listed on stderr and "
                    "in report.html).\n");
    } else if (in->zeroshot) {
        /* Table 4 of the paper: one row per category, the metrics as columns */
        sb_puts(&b, "## Zero-shot, batched (paper Table 4)\n\n| Category |");
        for (int m = 0; m < REP_N_METRICS; m++)
            if (present >> m & 1) sb_printf(&b, " %s |", metric_titles[m]);
        sb_puts(&b, "\n|---|");
        for (int m = 0; m < REP_N_METRICS; m++)
            if (present >> m & 1) sb_puts(&b, "---:|");
        sb_puts(&b, "\n");
        for (int c = 0; c <= in->n_cats; c++) {
            int cc = c < in->n_cats ? c : -1;
            sb_puts(&b, "| ");
            if (cc >= 0) sb_md(&b, in->cats[cc]);
            else sb_puts(&b, "**Mean**");
            sb_puts(&b, " |");
            for (int m = 0; m < REP_N_METRICS; m++) {
                if (!(present >> m & 1)) continue;
                char cell[64];
                cell_text(in, 0, cc, m, cell, sizeof cell);
                sb_printf(&b, " %s |", cell);
            }
            sb_puts(&b, "\n");
        }
        sb_puts(&b, "\n");
        incomplete_note(&b, in, -1, present, 0);
    } else {
        /* Tables 2/3 (detection) and 5/6 (segmentation): categories x shots, one per metric */
        for (int group = 0; group < 2; group++) {
            int any = 0;
            for (int m = 3 * group; m < 3 * group + 3; m++) any |= present >> m & 1;
            if (!any) continue;
            sb_printf(&b, "## %s\n\n", group ? "Segmentation (pixel level; paper Tables 5/6)"
                                             : "Detection (image level; paper Tables 2/3)");
            for (int m = 3 * group; m < 3 * group + 3; m++) {
                if (!(present >> m & 1)) continue;
                sb_printf(&b, "### %s (`%s`)\n\n| Category |", metric_titles[m],
                          rep_metric_names[m]);
                for (int s = 0; s < in->n_shots; s++) {
                    char t[32];
                    shots_title(in, s, t, sizeof t);
                    sb_printf(&b, " %s |", t);
                }
                sb_puts(&b, "\n|---|");
                for (int s = 0; s < in->n_shots; s++) sb_puts(&b, "---:|");
                sb_puts(&b, "\n");
                for (int c = 0; c <= in->n_cats; c++) {
                    int cc = c < in->n_cats ? c : -1;
                    sb_puts(&b, "| ");
                    if (cc >= 0) sb_md(&b, in->cats[cc]);
                    else sb_puts(&b, "**Mean**");
                    sb_puts(&b, " |");
                    for (int s = 0; s < in->n_shots; s++) {
                        char cell[64];
                        cell_text(in, s, cc, m, cell, sizeof cell);
                        sb_printf(&b, " %s |", cell);
                    }
                    sb_puts(&b, "\n");
                }
                sb_puts(&b, "\n");
                incomplete_note(&b, in, m, present, 0);
            }
        }
        /* the mean row of every metric side by side, per shots (the paper's Table 1 layout) */
        sb_puts(&b, "## Mean over categories\n\n| Shots |");
        for (int m = 0; m < REP_N_METRICS; m++)
            if (present >> m & 1) sb_printf(&b, " %s |", metric_titles[m]);
        sb_puts(&b, "\n|---|");
        for (int m = 0; m < REP_N_METRICS; m++)
            if (present >> m & 1) sb_puts(&b, "---:|");
        sb_puts(&b, "\n");
        for (int s = 0; s < in->n_shots; s++) {
            char t[32];
            shots_title(in, s, t, sizeof t);
            sb_printf(&b, "| %s |", t);
            for (int m = 0; m < REP_N_METRICS; m++) {
                if (!(present >> m & 1)) continue;
                char cell[64];
                cell_text(in, s, -1, m, cell, sizeof cell);
                sb_printf(&b, " %s |", cell);
            }
            sb_puts(&b, "\n");
        }
        sb_puts(&b, "\n");
        incomplete_note(&b, in, -1, present, 0);
    }
    if (b.oom) {
        adi_free(b.s);
        return NULL;
    }
    return b.s ? b.s : adi_strdup("");
}

/* ------------------------------------------------------------------------------------------ */
/* PNG and base64                                                                              */
/* ------------------------------------------------------------------------------------------ */

char *rep_base64(const uint8_t *data, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3) return NULL;
    size_t olen = (len + 2) / 3 * 4;
    char *o = adi_malloc(olen + 1), *p = o;
    if (!o) return NULL;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *p++ = tab[v >> 18 & 63];
        *p++ = tab[v >> 12 & 63];
        *p++ = tab[v >> 6 & 63];
        *p++ = tab[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < len ? (uint32_t)data[i + 1] << 8 : 0);
        *p++ = tab[v >> 18 & 63];
        *p++ = tab[v >> 12 & 63];
        *p++ = i + 1 < len ? tab[v >> 6 & 63] : '=';
        *p++ = '=';
    }
    *p = 0;
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* example images                                                                              */
/* ------------------------------------------------------------------------------------------ */

/* The one colour map of the project: predict's overlays and the report's maps are drawn with the
 * same table (image/overlay.c). */
void rep_colormap(float t, uint8_t rgb[3]) { adi_colormap_inferno9(t, rgb); }

/* ------------------------------------------------------------------------------------------ */
/* report.html                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                      "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

typedef struct {
    double score;
    int label;
} scored;

static int cmp_scored_desc(const void *a, const void *b)
{
    double x = ((const scored *)a)->score, y = ((const scored *)b)->score;
    return (x < y) - (x > y);
}

/* ROC (kind 0: FPR, TPR) or PR (kind 1: recall, precision) points of a run, one per distinct
 * threshold; the PR curve ends, as sklearn's precision_recall_curve, at the first threshold with
 * full recall. NULL when the run lacks either class. */
static double *curve_points(const ad_eval_unit *run, int kind, int *n_out)
{
    int n = run->n_images;
    if (n <= 0) return NULL;
    scored *v = adi_malloc((size_t)n * sizeof *v);
    double *pts = adi_malloc((size_t)(n + 2) * 2 * sizeof *pts);
    if (!v || !pts) { adi_free(v); adi_free(pts); return NULL; }
    int k = 0, pos = 0;
    for (int i = 0; i < n; i++) {
        double s = run->images[i].score;
        if (!isfinite(s)) continue;
        v[k].score = s;
        v[k].label = run->images[i].label > 0;
        pos += v[k].label;
        k++;
    }
    int neg = k - pos;
    if (!pos || !neg) { adi_free(v); adi_free(pts); return NULL; }
    qsort(v, (size_t)k, sizeof *v, cmp_scored_desc);
    int np = 0, tp = 0, fp = 0;
    if (kind == 0) { pts[0] = 0; pts[1] = 0; }
    else { pts[0] = 0; pts[1] = 1; }
    np = 1;
    for (int i = 0; i < k;) {
        double s = v[i].score;
        while (i < k && v[i].score == s) { tp += v[i].label; fp += !v[i].label; i++; }
        if (kind == 1 && np > 1 && pts[2 * np - 2] >= 1) break; /* full recall reached */
        if (kind == 0) {
            pts[2 * np] = (double)fp / neg;
            pts[2 * np + 1] = (double)tp / pos;
        } else {
            pts[2 * np] = (double)tp / pos;
            pts[2 * np + 1] = (double)tp / (tp + fp);
        }
        np++;
    }
    adi_free(v);
    *n_out = np;
    return pts;
}

static void svg_curves(sbuf *b, const rep_input *in, int c, int d, int kind)
{
    /* plot box P x P at (L, T); the legend sits to its right, outside the box, so that it
     * never covers a curve (a PR curve starts at the top left, a ROC curve ends top right) */
    const int W = 336, H = 250, L = 42, T = 12, P = 190;
    sb_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\" class=\"curve\">",
              W, H, W, H);
    sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fff\" "
                 "stroke=\"#888\"/>",
              L, T, P, P);
    for (int g = 1; g < 4; g++) {
        double t = g / 4.0;
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#eee\"/>",
                  L + t * P, T, L + t * P, T + P);
        sb_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>", L,
                  T + t * P, L + P, T + t * P);
    }
    if (kind == 0)
        sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ccc\" "
                     "stroke-dasharray=\"4 3\"/>",
                  L, T + P, L + P, T);
    for (int g = 0; g <= 4; g += 2) {
        double t = g / 4.0;
        sb_printf(b, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%.1f"
                     "</text>",
                  L + t * P, T + P + 13, t);
        sb_printf(b, "<text x=\"%d\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.1f</text>",
                  L - 4, T + (1 - t) * P + 3, t);
    }
    sb_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%s</text>",
              L + P / 2, T + P + 27, kind == 0 ? "false positive rate" : "recall");
    sb_printf(b, "<text x=\"12\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\" "
                 "transform=\"rotate(-90 12 %d)\">%s</text>",
              T + P / 2, T + P / 2, kind == 0 ? "true positive rate" : "precision");
    int legend = 0;
    for (int s = 0; s < in->n_shots; s++) {
        const ad_eval_unit *run = run_at(in, s, d, c);
        int np = 0;
        double *pts = run ? curve_points(run, kind, &np) : NULL;
        if (!pts) continue;
        const char *col = palette[s % 8];
        sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"", col);
        for (int i = 0; i < np; i++)
            sb_printf(b, "%s%.1f,%.1f", i ? " " : "", L + pts[2 * i] * P,
                      T + (1 - pts[2 * i + 1]) * P);
        sb_puts(b, "\"/>");
        adi_free(pts);
        double v;
        char t[32], val[32] = "";
        shots_title(in, s, t, sizeof t);
        if (run_metric(run, kind == 0 ? 0 : 1, &v)) snprintf(val, sizeof val, " %.1f", 100 * v);
        int ly = T + 10 + 13 * legend, lx = L + P + 8;
        sb_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"10\" fill=\"%s\" text-anchor=\"start\">"
                     "%s%s</text>",
                  lx, ly, col, t, val);
        legend++;
    }
    sb_puts(b, "</svg>");
}

static void html_img(sbuf *b, const char *base, const char *rel, const char *alt)
{
    if (!rel || !*rel || strstr(rel, "..")) {
        sb_puts(b, "<td class=\"small\">(not available)</td>");
        return;
    }
    char *path = adi_path_join(base ? base : ".", rel);
    if (!path) { b->oom = 1; return; }
    size_t len = 0;
    char *data = adi_io_read_file(path, &len);
    adi_free(path);
    if (!data) { sb_puts(b, "<td>(missing)</td>"); return; }
    char *b64 = rep_base64((const uint8_t *)data, len);
    adi_free(data);
    if (!b64) { b->oom = 1; return; }
    sb_puts(b, "<td><img alt=\"");
    sb_html(b, alt);
    sb_puts(b, "\" src=\"data:image/png;base64,");
    sb_puts(b, b64);
    sb_puts(b, "\"></td>");
    adi_free(b64);
}

static void html_table(sbuf *b, const rep_input *in, int m)
{
    sb_printf(b, "<h3>%s <code>%s</code></h3>\n<table><tr><th>Category</th>", metric_titles[m],
              rep_metric_names[m]);
    for (int s = 0; s < in->n_shots; s++) {
        char t[32];
        shots_title(in, s, t, sizeof t);
        sb_printf(b, "<th>%s</th>", t);
    }
    sb_puts(b, "</tr>\n");
    for (int c = 0; c <= in->n_cats; c++) {
        int cc = c < in->n_cats ? c : -1;
        sb_puts(b, cc >= 0 ? "<tr><td>" : "<tr class=\"mean\"><td>");
        if (cc >= 0) sb_html(b, in->cats[cc]);
        else sb_puts(b, "Mean");
        sb_puts(b, "</td>");
        for (int s = 0; s < in->n_shots; s++) {
            char cell[64];
            cell_text(in, s, cc, m, cell, sizeof cell);
            sb_printf(b, "<td class=\"num\">%s</td>", cell);
        }
        sb_puts(b, "</tr>\n");
    }
    sb_puts(b, "</table>\n");
    incomplete_note(b, in, m, 1u << m, 1);
}

ad_status rep_write_html(const char *path, const rep_input *in)
{
    sbuf b = {0};
    unsigned present = metrics_present(in);
    int nseeds = seeds_with_runs(in);
    sb_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                "<title>AnomalyDINO evaluation</title>\n<style>\n"
                "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}\n"
                "table{border-collapse:collapse;margin:.5em 0 1.5em}\n"
                "td,th{border:1px solid #ccc;padding:3px 8px}th{background:#f3f3f3}\n"
                "td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
                "tr.mean td{font-weight:bold;background:#fafafa}\n"
                ".curves{display:flex;gap:1em;flex-wrap:wrap}\n"
                ".ex td{border:none;padding:2px;vertical-align:top;text-align:center}\n"
                ".ex img{max-width:224px;image-rendering:auto}\n"
                ".small{color:#666;font-size:90%}\n"
                "</style></head><body>\n");
    sb_printf(&b, "<h1>AnomalyDINO evaluation%s</h1>\n<p class=\"small\">",
              in->zeroshot ? " (zero-shot)" : "");
    settings_line(&b, in, 1);
    sb_printf(&b, ". anomalydino %s. Values x100; %s.</p>\n", ad_version(),
              nseeds > 1 ? "mean ± std (population) over the seeds" : "one seed");

    sb_puts(&b, "<h2>Results</h2>\n");
    for (int m = 0; m < REP_N_METRICS; m++)
        if (present >> m & 1) html_table(&b, in, m);
    if (!present) sb_puts(&b, "<p>No results: no run produced metrics (see below).</p>\n");

    if (in->n_notes) {
        sb_puts(&b, "<h2>Left out</h2>\n<ul>\n");
        for (int i = 0; i < in->n_notes; i++) {
            sb_puts(&b, "<li>");
            sb_html(&b, in->notes[i]);
            sb_puts(&b, "</li>\n");
        }
        sb_puts(&b, "</ul>\n");
    }

    sb_puts(&b, "<h2>Categories</h2>\n");
    for (int c = 0; c < in->n_cats; c++) {
        sb_puts(&b, "<h3>");
        sb_html(&b, in->cats[c]);
        sb_puts(&b, "</h3>\n");
        /* curves of the first seed that has a run of this category */
        int d0 = -1;
        for (int d = 0; d < in->n_seeds && d0 < 0; d++)
            for (int s = 0; s < in->n_shots && d0 < 0; s++)
                if (run_at(in, s, d, c)) d0 = d;
        if (d0 < 0) {
            sb_puts(&b, "<p>No finished run.</p>\n");
            continue;
        }
        sb_printf(&b, "<p class=\"small\">Image-level ROC and precision-recall curves, seed %d "
                      "(legend: AUROC / AP x100).</p>\n<div class=\"curves\">",
                  in->seeds[d0]);
        svg_curves(&b, in, c, d0, 0);
        svg_curves(&b, in, c, d0, 1);
        sb_puts(&b, "</div>\n");
        /* examples: the first run (in shots, seed order) that stored some */
        const pr_unit *exrun = NULL;
        int exs = 0, exd = 0;
        for (int s = 0; s < in->n_shots && !exrun; s++)
            for (int d = 0; d < in->n_seeds && !exrun; d++) {
                const pr_unit *r =
                    in->runs[((size_t)s * (size_t)in->n_seeds + (size_t)d) * (size_t)in->n_cats +
                             (size_t)c];
                if (r && r->u.n_examples > 0) {
                    exrun = r;
                    exs = s;
                    exd = d;
                }
            }
        if (!exrun) continue;
        char t[32];
        shots_title(in, exs, t, sizeof t);
        sb_printf(&b, "<p class=\"small\">Test images, ground truth and anomaly maps (%s, seed %d; "
                      "colour scale 0 .. %.4g, black to pale yellow).</p>\n<table class=\"ex\">",
                  t, in->seeds[exd], exrun->u.examples_vmax);
        sb_puts(&b, "<tr><th>test image</th><th>ground truth</th><th>anomaly map</th><th></th>"
                    "</tr>\n");
        const char *base = exrun->base_dir ? exrun->base_dir : in->out_dir;
        for (int k = 0; k < exrun->u.n_examples; k++) {
            const ad_eval_example *ex = &exrun->u.examples[k];
            const char *name = ex->image ? ex->image : "";
            sb_puts(&b, "<tr>");
            html_img(&b, base, ex->file_image, name);
            html_img(&b, base, ex->file_gt, "ground truth");
            html_img(&b, base, ex->file_map, "anomaly map");
            sb_puts(&b, "<td class=\"small\" style=\"text-align:left\">");
            sb_html(&b, name);
            sb_printf(&b, "<br>label %d<br>score %.5f</td></tr>\n", ex->label, ex->score);
        }
        sb_puts(&b, "</table>\n");
    }

    /* timing */
    sb_puts(&b, "<h2>Timing</h2>\n<table><tr><th>Shots</th><th>Category</th><th>Bank build (s)"
                "</th><th>Inference per image (ms)</th></tr>\n");
    for (int s = 0; s < in->n_shots; s++) {
        char t[32];
        shots_title(in, s, t, sizeof t);
        for (int c = 0; c < in->n_cats; c++) {
            double bank = 0, inf = 0;
            int nb = 0, ni = 0;
            for (int d = 0; d < in->n_seeds; d++) {
                const ad_eval_unit *run = run_at(in, s, d, c);
                if (!run) continue;
                bank += run->bank_seconds;
                nb++;
                inf += images_seconds(run);
                ni += run->n_images;
            }
            if (!nb) continue;
            sb_printf(&b, "<tr><td>%s</td><td>", t);
            sb_html(&b, in->cats[c]);
            sb_printf(&b, "</td><td class=\"num\">%.3f</td><td class=\"num\">%.1f</td></tr>\n",
                      bank / nb, ni ? 1000 * inf / ni : 0.0);
        }
    }
    sb_puts(&b, "</table>\n</body></html>\n");
    return write_sb(path, &b);
}

/* ------------------------------------------------------------------------------------------ */
/* the results handle as a report                                                             */
/* ------------------------------------------------------------------------------------------ */

ad_status rep_input_from_results(const ad_eval_results *r, rep_input *in)
{
    memset(in, 0, sizeof *in);
    in->zeroshot = r->zeroshot;
    in->n_shots = r->n_shots;
    in->shots = r->shots;
    in->n_seeds = r->n_seeds;
    in->seeds = r->seeds;
    in->n_cats = r->n_cats;
    in->cats = r->cats;
    in->runs = r->grid;
    in->settings = r->settings;
    in->out_dir = r->out_dir ? r->out_dir : ".";
    in->notes = r->notes.v;
    in->n_notes = r->notes.n;
    return AD_OK;
}

ad_status rep_write_all(const rep_input *in, const char *out_dir, char **tables_md)
{
    ad_status st = adi_io_mkdirs(out_dir);
    char *p = NULL, *md = NULL;
    cJSON *mj = NULL;
    if (st == AD_OK && !(p = adi_malloc(strlen(out_dir) + 32))) st = AD_E_NOMEM;
#define OUTPUT(name, call)                                                                  \
    do {                                                                                   \
        if (st != AD_OK) break;                                                            \
        sprintf(p, "%s/%s", out_dir, name);                                                \
        st = (call);                                                                       \
    } while (0)
    if (st == AD_OK && !(mj = rep_metrics_json(in)))
        st = adi_fail(AD_E_NOMEM, "%s: out of memory building metrics.json", out_dir);
    OUTPUT("metrics.json", rep_write_json(p, mj));
    OUTPUT("metrics.csv", rep_write_metrics_csv(p, in));
    OUTPUT("scores.csv", rep_write_scores_csv(p, in));
    OUTPUT("timing.csv", rep_write_timing_csv(p, in));
    if (st == AD_OK && !(md = rep_tables_md(in)))
        st = adi_fail(AD_E_NOMEM, "%s: out of memory building tables.md", out_dir);
    OUTPUT("tables.md", rep_write_text(p, md, strlen(md)));
    OUTPUT("report.html", rep_write_html(p, in));
#undef OUTPUT
    cJSON_Delete(mj);
    adi_free(p);
    if (st == AD_OK && tables_md) *tables_md = md;
    else adi_free(md);
    return st;
}

ad_status ad_report_write(const ad_eval_results *r, const char *out_dir)
{
    if (!r || !out_dir) return adi_fail(AD_E_ARG, "ad_report_write: NULL argument");
    rep_input in;
    rep_input_from_results(r, &in);
    return rep_write_all(&in, out_dir, NULL);
}

char *ad_report_tables_md(const ad_eval_results *r)
{
    if (!r) return adi_fail_null(AD_E_ARG, "ad_report_tables_md: NULL results");
    rep_input in;
    rep_input_from_results(r, &in);
    char *md = rep_tables_md(&in);
    if (!md) return adi_fail_null(AD_E_NOMEM, "ad_report_tables_md: out of memory");
    return md;
}

void ad_string_free(char *s) { adi_free(s); }

int ad_eval_cell(const ad_eval_results *r, int i_shot, int i_cat, ad_metric m, double *mean,
                 double *std)
{
    if (!r || i_shot < 0 || i_shot >= r->n_shots || i_cat < -1 || i_cat >= r->n_cats ||
        (int)m < 0 || (int)m >= AD_EVAL_N_METRICS)
        return 0;
    rep_input in;
    rep_input_from_results(r, &in);
    double mu = 0, sd = 0;
    int n = rep_cell_stats(&in, i_shot, i_cat, (int)m, &mu, &sd);
    if (n && mean) *mean = mu;
    if (n && std) *std = sd;
    return n;
}
