/* anomalydino bank: banks that grow. `bank add` appends good references (with their rotations,
 * under the bank's settings) and can relearn the threshold; `bank info` shows what a bank holds:
 * settings, references with their names and times, the threshold history. */
#include "cli/cli_detect.h"
#include "detect/detect.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CMD "bank"

int cli_parse_coreset(const char *cmd, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || !(v > 0) ||
        (v > 1 && (v != floor(v) || v > 9.0e15))) {
        cli_error(cmd, "--coreset expects a fraction in (0, 1] or a whole number of rows, got '%s'",
                  s);
        return -1;
    }
    *out = v;
    return 0;
}

/* One field of an index spec: "auto" (0) or a whole number in [1, hi]. */
static int index_field(const char *s, size_t len, int hi, int *out)
{
    if (len == 4 && !strncmp(s, "auto", 4)) {
        *out = 0;
        return 0;
    }
    if (len == 0 || len > 9) return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_index(const char *cmd, const char *s, int allow_none, int *kind, int *lists,
                    int *probes)
{
    *lists = *probes = 0;
    if (allow_none && !strcmp(s, "none")) {
        *kind = 0;
        return 0;
    }
    const char *a = !strncmp(s, "ivf", 3) ? s + 3 : NULL;
    int ok = a != NULL && (*a == 0 || *a == ':');
    if (ok && *a == ':') {
        const char *b = strchr(a + 1, ':');
        size_t la = b ? (size_t)(b - a - 1) : strlen(a + 1);
        ok = index_field(a + 1, la, DT_IVF_MAX_LISTS, lists) == 0 &&
             (!b || index_field(b + 1, strlen(b + 1), DT_IVF_MAX_LISTS, probes) == 0);
        if (ok && *lists > 0 && *probes > *lists) {
            cli_error(cmd, "--index '%s': %d probes for %d lists (probes must be <= lists)", s,
                      *probes, *lists);
            return -1;
        }
    }
    if (!ok) {
        cli_error(cmd, "--index '%s': expected ivf, ivf:LISTS or ivf:LISTS:PROBES (LISTS in 1 .. %d "
                       "or auto, PROBES in 1 .. LISTS or auto)%s", s, DT_IVF_MAX_LISTS,
                  allow_none ? ", or none" : "");
        return -1;
    }
    *kind = 1;
    return 0;
}

void cli_bank_clock(ad_bank *b)
{
    const char *e = getenv("SOURCE_DATE_EPOCH");
    if (!e || !*e) return;
    char *end;
    errno = 0;
    long long t = strtoll(e, &end, 10);
    if (!errno && !*end && t > 0) ad_bank_set_clock(b, (int64_t)t);
}

static void iso_time(int64_t t, char *buf, size_t n)
{
    if (t <= 0) {
        snprintf(buf, n, "unknown");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm)) snprintf(buf, n, "%lld", (long long)t);
}

static const char *rule_name(ad_thresh_rule r) { return r == AD_THRESH_QUANTILE ? "quantile" : "max"; }
static const char *source_name(ad_thresh_source s)
{
    return s == AD_THRESH_FROM_LOO ? "leave-one-out" : "calibration images";
}

/* The file format version from the header (0 if unreadable; the load reports why). */
static int file_version(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    unsigned char h[8];
    int v = fread(h, 1, 8, fp) == 8 && !memcmp(h, "ADBANK", 6) ? h[6] | h[7] << 8 : 0;
    fclose(fp);
    return v;
}

/* ---------------------------------------------------------------------------------------- */
/* bank info                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static void info_usage(FILE *f)
{
    fprintf(f,
            "usage: anomalydino bank info BANK [--json]\n\n"
            "Prints what a bank file holds: its settings, the weights it was made with, rows and\n"
            "coreset setting, the search index, every reference with its file name and the\n"
            "time it was added, and\n"
            "the threshold history (rule, source: leave-one-out or calibration images, the\n"
            "scores it was learned from, time). Times are UTC; \"unknown\" for banks of file\n"
            "format 1, which recorded none.\n\n"
            "      --json      one JSON object instead of the text\n"
            "  -h, --help      this help\n");
}

static cJSON *info_json(const ad_bank *b, const char *path, int version)
{
    ad_bank_params p = ad_bank_get_params(b);
    char t[64], fp[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "bank", path);
    cJSON_AddNumberToObject(o, "format_version", version);
    cJSON *m = cJSON_AddObjectToObject(o, "weights");
    cJSON_AddStringToObject(m, "name", b->model_name[0] ? b->model_name : "custom");
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)b->fingerprint);
    cJSON_AddStringToObject(m, "fingerprint", fp);
    cJSON_AddNumberToObject(m, "dim", b->dim);
    cJSON *s = cJSON_AddObjectToObject(o, "settings");
    cJSON_AddNumberToObject(s, "resolution", p.resolution);
    cJSON_AddBoolToObject(s, "rotate", p.rotate);
    cJSON_AddBoolToObject(s, "mask_refs", p.mask_refs);
    cJSON_AddBoolToObject(s, "mask_test", p.mask_test);
    cJSON_AddNumberToObject(s, "knn", p.knn_k);
    size_t offered = 0;
    double cs = ad_bank_coreset_setting(b, &offered);
    if (cs > 0) {
        cJSON *c = cJSON_AddObjectToObject(s, "coreset");
        cJSON_AddNumberToObject(c, "setting", cs);
        cJSON_AddNumberToObject(c, "fraction", b->coreset_frac);
        cJSON_AddNumberToObject(c, "rows_offered", (double)offered);
    } else {
        cJSON_AddNullToObject(s, "coreset");
    }
    ad_index_info ii;
    if (ad_bank_index_get(b, &ii)) {
        cJSON *c = cJSON_AddObjectToObject(s, "index");
        cJSON_AddStringToObject(c, "kind", "ivf");
        cJSON_AddNumberToObject(c, "lists", ii.lists);
        cJSON_AddNumberToObject(c, "probes", ii.probes);
        cJSON_AddNumberToObject(c, "iterations", ii.iterations);
        cJSON_AddNumberToObject(c, "rows", (double)ii.rows);
        cJSON_AddNumberToObject(c, "min_list_rows", (double)ii.min_list);
        cJSON_AddNumberToObject(c, "max_list_rows", (double)ii.max_list);
    } else {
        cJSON_AddNullToObject(s, "index");
    }
    cJSON_AddNumberToObject(o, "rows", (double)ad_bank_rows(b));
    cJSON_AddNumberToObject(o, "side_rows", (double)b->side_rows);
    cJSON *refs = cJSON_AddArrayToObject(o, "references");
    for (int i = 0; i < ad_bank_images(b); i++) {
        ad_bank_ref r;
        if (ad_bank_ref_get(b, i, &r) != AD_OK) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", r.image_id);
        cJSON_AddStringToObject(e, "name", r.name);
        cJSON_AddNumberToObject(e, "views", r.views);
        iso_time(r.added, t, sizeof t);
        if (r.added > 0) cJSON_AddStringToObject(e, "added", t);
        else cJSON_AddNullToObject(e, "added");
        cJSON_AddNumberToObject(e, "added_unix", (double)r.added);
        cJSON_AddItemToArray(refs, e);
    }
    double thr;
    if (ad_bank_threshold(b, &thr)) {
        cJSON *c = cJSON_AddObjectToObject(o, "threshold");
        cJSON_AddNumberToObject(c, "value", thr);
        cJSON_AddStringToObject(c, "rule", rule_name(b->rule));
        cJSON_AddNumberToObject(c, "quantile", b->quantile);
    } else {
        cJSON_AddNullToObject(o, "threshold");
    }
    cJSON *h = cJSON_AddArrayToObject(o, "threshold_history");
    for (int i = 0; i < ad_bank_threshold_count(b); i++) {
        ad_thresh_record r;
        if (ad_bank_threshold_get(b, i, &r) != AD_OK) continue;
        cJSON *e = cJSON_CreateObject();
        iso_time(r.time, t, sizeof t);
        cJSON_AddStringToObject(e, "time", t);
        cJSON_AddNumberToObject(e, "time_unix", (double)r.time);
        cJSON_AddStringToObject(e, "rule", rule_name(r.rule));
        cJSON_AddNumberToObject(e, "quantile", r.quantile);
        cJSON_AddStringToObject(e, "source", r.source == AD_THRESH_FROM_LOO ? "leave-one-out" : "calibration");
        cJSON_AddNumberToObject(e, "references", r.n_refs);
        cJSON_AddNumberToObject(e, "threshold", r.threshold);
        cJSON_AddItemToObject(e, "scores", cJSON_CreateDoubleArray(r.scores, r.n_scores));
        cJSON_AddItemToArray(h, e);
    }
    return o;
}

static void info_text(const ad_bank *b, const char *path, int version)
{
    ad_bank_params p = ad_bank_get_params(b);
    char t[64];
    printf("bank        %s (file format %d)\n", path, version);
    printf("weights     %s, %d dims (fingerprint %016llx)\n",
           b->model_name[0] ? b->model_name : "custom", b->dim, (unsigned long long)b->fingerprint);
    printf("settings    resolution %d, rotate %s, mask refs %s, mask test %s, knn %d\n",
           p.resolution, p.rotate ? "yes" : "no", p.mask_refs ? "yes" : "no",
           p.mask_test ? "yes" : "no", p.knn_k);
    size_t offered = 0;
    double cs = ad_bank_coreset_setting(b, &offered);
    printf("rows        %zu searched, %zu kept for leave-one-out only\n", ad_bank_rows(b), b->side_rows);
    if (cs > 0)
        printf("coreset     %g (greedy k-center): %zu of %zu rows offered kept (%.4g)\n", cs,
               ad_bank_rows(b), offered, offered ? (double)ad_bank_rows(b) / (double)offered : 0.0);
    else
        printf("coreset     none (exact bank)\n");
    ad_index_info ii;
    if (ad_bank_index_get(b, &ii))
        printf("index       ivf: %d lists (%zu .. %zu rows each), %d probes, %d k-means "
               "iterations (approximate search)\n", ii.lists, ii.min_list, ii.max_list, ii.probes,
               ii.iterations);
    else
        printf("index       none (exact search)\n");
    printf("references  %d\n", ad_bank_images(b));
    for (int i = 0; i < ad_bank_images(b); i++) {
        ad_bank_ref r;
        if (ad_bank_ref_get(b, i, &r) != AD_OK) continue;
        iso_time(r.added, t, sizeof t);
        printf("  %4d  %-20s  %d view%s  %s\n", r.image_id, t, r.views, r.views == 1 ? " " : "s",
               r.name[0] ? r.name : "(no name)");
    }
    double thr;
    if (ad_bank_threshold(b, &thr)) {
        if (b->rule == AD_THRESH_QUANTILE)
            printf("threshold   %.9g (quantile %g)\n", thr, b->quantile);
        else
            printf("threshold   %.9g (max)\n", thr);
    } else {
        printf("threshold   none\n");
    }
    int nh = ad_bank_threshold_count(b);
    printf("history     %d threshold%s%s\n", nh, nh == 1 ? "" : "s",
           version < 2 ? " (file format 1 keeps no history)" : "");
    for (int i = 0; i < nh; i++) {
        ad_thresh_record r;
        if (ad_bank_threshold_get(b, i, &r) != AD_OK) continue;
        iso_time(r.time, t, sizeof t);
        printf("  %s  %.9g  %s", t, r.threshold, rule_name(r.rule));
        if (r.rule == AD_THRESH_QUANTILE) printf(" q=%g", r.quantile);
        printf(" of %d %s score%s (%d reference%s):", r.n_scores, source_name(r.source),
               r.n_scores == 1 ? "" : "s", r.n_refs, r.n_refs == 1 ? "" : "s");
        for (int k = 0; k < r.n_scores; k++) printf(" %.6g", r.scores[k]);
        printf("\n");
    }
}

static int cmd_bank_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c, json = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j') json = 1;
        else if (c == 'h') {
            info_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "(anomalydino bank info --help for the options)\n");
            return 2;
        }
    }
    if (argc - optind != 1) {
        cli_error(CMD, "info: expected one BANK file (anomalydino bank info --help)");
        return 2;
    }
    const char *path = argv[optind];
    ad_bank *b = ad_bank_load(path);
    if (!b) {
        cli_error(CMD, "%s", ad_errmsg());
        return 1;
    }
    int version = file_version(path);
    if (json) {
        cJSON *o = info_json(b, path, version);
        char *s = o ? cJSON_Print(o) : NULL;
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
        if (!s) {
            cli_error(CMD, "info: out of memory");
            ad_bank_free(b);
            return 1;
        }
    } else {
        info_text(b, path, version);
    }
    ad_bank_free(b);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* bank add                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static void add_usage(FILE *f)
{
    fprintf(f,
            "usage: anomalydino bank add -m WEIGHTS BANK [options] IMAGE_OR_DIR...\n\n"
            "Appends good reference images (folders are walked: .png .jpg .jpeg) to an existing\n"
            "bank under the bank's own settings (resolution, rotations, masking; a coreset bank\n"
            "keeps its fraction of the new rows; an index puts the new rows into the lists of\n"
            "their nearest centroids, which stay as they are). Each reference is recorded with its file\n"
            "name and the time. The bank is rewritten atomically (a unique temporary file in\n"
            "the same folder, synced, renamed over it): a failure leaves it as it was. Adding\n"
            "references one at a time gives the same rows and threshold as fitting them all\n"
            "at once (exact banks).\n\n"
            "  -m, --model WEIGHTS     the weights the bank was made with (others are refused)\n"
            "  -o, --out FILE          write the grown bank there instead of over BANK\n"
            "      --recalibrate       relearn the threshold by the bank's rule (that of its\n"
            "                          latest threshold; max when it has none): by leave-one-out\n"
            "                          over all references, or, if the threshold came from\n"
            "                          calibration images, from the --calibrate images given\n"
            "      --calibrate PATH    held-out good image or folder to relearn the threshold\n"
            "                          from (repeat the flag; implies --recalibrate)\n"
            "      --threads N         threads (default: all cores)\n"
            "  -h, --help              this help\n\n"
            "Without --recalibrate the threshold is kept as it was. SOURCE_DATE_EPOCH, when set,\n"
            "is the time recorded.\n");
}

/* The grown bank is written at the end: refuse an output folder that cannot take it before the
 * work. 0 or -1 (error printed). */
static int check_out_writable(const char *out)
{
    if (adi_io_is_dir(out)) {
        cli_error(CMD, "%s is a directory (give the bank's file name)", out);
        return -1;
    }
    const char *slash = strrchr(out, '/');
    char *dir = slash ? strndup(out, slash == out ? 1 : (size_t)(slash - out)) : strdup(".");
    if (!dir) return -1;
    int ok = adi_io_is_dir(dir) && access(dir, W_OK | X_OK) == 0;
    if (!ok)
        cli_error(CMD, "cannot write %s into %s: %s", out, dir,
                  adi_io_is_dir(dir) ? "permission denied" : "no such directory");
    free(dir);
    return ok ? 0 : -1;
}

static int push_str(char ***v, int *n, const char *s)
{
    char **nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
    if (!nv) return -1;
    *v = nv;
    nv[(*n)++] = (char *)s;
    return 0;
}

static int cmd_bank_add(int argc, char **argv)
{
    enum { O_RECAL = 256, O_CALIB, O_THREADS };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"out", required_argument, 0, 'o'},
        {"recalibrate", no_argument, 0, O_RECAL}, {"calibrate", required_argument, 0, O_CALIB},
        {"threads", required_argument, 0, O_THREADS}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *weights = NULL, *out = NULL;
    int recal = 0, threads = 0, c, rc = 2;
    char **calib_in = NULL, **refs = NULL, **calib = NULL;
    int n_calib_in = 0, n_refs = 0, n_calib = 0;
    ad_model *m = NULL;
    ad_context *ctx = NULL;
    ad_bank *bank = NULL;
    double *scores = NULL;
    while ((c = getopt_long(argc, argv, "m:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': weights = optarg; break;
        case 'o': out = optarg; break;
        case O_RECAL: recal = 1; break;
        case O_CALIB:
            recal = 1;
            if (push_str(&calib_in, &n_calib_in, optarg)) goto out;
            break;
        case O_THREADS:
            if (cli_parse_int(CMD, "--threads", optarg, 0, 1024, &threads)) goto out;
            break;
        case 'h':
            add_usage(stdout);
            rc = 0;
            goto out;
        default:
            fprintf(stderr, "(anomalydino bank add --help for the options)\n");
            goto out;
        }
    }
    if (!weights) {
        cli_error(CMD, "add: -m WEIGHTS is required (anomalydino bank add --help)");
        goto out;
    }
    if (argc - optind < 2) {
        cli_error(CMD, "add: expected BANK and at least one image (anomalydino bank add --help)");
        goto out;
    }
    const char *path = argv[optind];
    if (!out) out = path;

    rc = 1;
    if (check_out_writable(out)) goto out;
    bank = ad_bank_load(path);
    if (!bank) {
        cli_error(CMD, "%s", ad_errmsg());
        goto out;
    }
    cli_bank_clock(bank);
    n_refs = cli_collect_images(CMD, argv + optind + 1, argc - optind - 1, &refs);
    if (n_refs < 0) goto out;
    if (n_calib_in) {
        n_calib = cli_collect_images(CMD, calib_in, n_calib_in, &calib);
        if (n_calib < 0) goto out;
    }
    /* The rule and source of the threshold to relearn, decided before any work. */
    ad_thresh_rule rule = AD_THRESH_MAX;
    double q = 1.0;
    int from_scores = 0;
    int nh = ad_bank_threshold_count(bank);
    if (recal) {
        ad_thresh_record last = {0};
        double thr;
        if (nh > 0 && ad_bank_threshold_get(bank, nh - 1, &last) == AD_OK) {
            rule = last.rule;
            q = last.quantile;
            from_scores = last.source == AD_THRESH_FROM_SCORES;
        } else if (ad_bank_threshold(bank, &thr)) {
            rule = bank->rule;
            q = bank->quantile;
        }
        if (from_scores && !n_calib) {
            cli_error(CMD, "add: --recalibrate: the bank's threshold was learned from %d "
                           "calibration image scores; give held-out good images with --calibrate "
                           "PATH to relearn it against the grown bank", last.n_scores);
            goto out;
        }
        if (!n_calib && ad_bank_images(bank) + n_refs < 2) {
            cli_error(CMD, "add: --recalibrate by leave-one-out needs at least 2 references");
            goto out;
        }
    }
    if (cld_load_model(CMD, weights, threads, &m, &ctx)) goto out;
    if (ad_bank_check_model(bank, m) != AD_OK) {
        cli_error(CMD, "%s: %s", path, ad_errmsg());
        goto out;
    }

    const size_t rows0 = ad_bank_rows(bank);
    const int images0 = ad_bank_images(bank);
    for (int i = 0; i < n_refs; i++)
        for (int j = 0; j < images0; j++) {
            ad_bank_ref r;
            if (ad_bank_ref_get(bank, j, &r) == AD_OK && r.name[0] && !strcmp(r.name, refs[i])) {
                fprintf(stderr, "anomalydino bank: warning: %s is already reference %d; adding it "
                                "again (leave-one-out then scores both near 0)\n", refs[i], r.image_id);
                break;
            }
        }
    double t_start = cli_now();
    int n_failed = 0;
    for (int i = 0; i < n_refs; i++) {
        double t0 = cli_now();
        ad_image img = {0};
        ad_status st = adi_io_read_image(refs[i], &img);
        if (st == AD_OK) {
            const char *name = refs[i];
            st = ad_bank_add_references(bank, ctx, &img, &name, 1, 0);
        }
        if (st != AD_OK) adi_error_prefix("%s", refs[i]);
        ad_image_free(&img);
        if (st != AD_OK) {
            cli_error(CMD, "%s", ad_errmsg());
            n_failed++;
            continue;
        }
        cli_progress("bank add: reference %d/%d %s (%.0f ms)", i + 1, n_refs, refs[i],
                     1e3 * (cli_now() - t0));
    }
    if (n_failed) {
        cli_error(CMD, "%d of %d reference images failed (listed above); %s not changed", n_failed,
                  n_refs, path);
        goto out;
    }
    if (recal && n_calib) {
        scores = malloc((size_t)n_calib * sizeof *scores);
        if (!scores) goto out;
        for (int i = 0; i < n_calib; i++) {
            ad_image img = {0};
            ad_result r = {0};
            ad_status st = adi_io_read_image(calib[i], &img);
            if (st == AD_OK) st = ad_predict(bank, ctx, &img, -1, &r);
            if (st != AD_OK) adi_error_prefix("%s", calib[i]);
            ad_image_free(&img);
            if (st != AD_OK) {
                cli_error(CMD, "%s", ad_errmsg());
                n_failed++;
                continue;
            }
            scores[i - n_failed] = r.score;
            ad_result_free(&r);
        }
        if (n_failed) {
            cli_error(CMD, "%d of %d calibration images failed (listed above); %s not changed",
                      n_failed, n_calib, path);
            goto out;
        }
        if (ad_bank_calibrate_scores(bank, scores, n_calib, rule, q) != AD_OK) {
            cli_error(CMD, "calibration: %s", ad_errmsg());
            goto out;
        }
    } else if (recal) {
        if (ad_bank_calibrate_loo(bank, ctx, rule, q) != AD_OK) {
            cli_error(CMD, "leave-one-out recalibration: %s", ad_errmsg());
            goto out;
        }
    }
    if (ad_bank_save(bank, out) != AD_OK) {
        cli_error(CMD, "%s", ad_errmsg());
        goto out;
    }
    double thr;
    printf("bank        %s\n", out);
    printf("added       %d reference%s, %zu rows (now %d references, %zu rows)\n", n_refs,
           n_refs == 1 ? "" : "s", ad_bank_rows(bank) - rows0, ad_bank_images(bank),
           ad_bank_rows(bank));
    (void)images0;
    if (ad_bank_threshold(bank, &thr)) {
        if (recal)
            printf("threshold   %.6f (%s of %d %s scores)\n", thr, rule_name(rule),
                   n_calib ? n_calib : ad_bank_images(bank),
                   n_calib ? "calibration image" : "leave-one-out reference");
        else
            printf("threshold   %.6f (kept; --recalibrate to relearn it)\n", thr);
    } else {
        printf("threshold   none%s\n", recal ? "" : " (--recalibrate to learn one)");
    }
    printf("time        %.1f s\n", cli_now() - t_start);
    rc = 0;
out:
    free(scores);
    ad_bank_free(bank);
    ad_context_free(ctx);
    ad_model_free(m);
    cli_free_list(refs, n_refs > 0 ? n_refs : 0);
    cli_free_list(calib, n_calib > 0 ? n_calib : 0);
    free(calib_in);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* bank index                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void index_usage(FILE *f)
{
    fprintf(f,
            "usage: anomalydino bank index BANK SPEC [options]\n"
            "       anomalydino bank index BANK --probes P [options]\n\n"
            "Builds, rebuilds or drops the bank's approximate search index, or sets how many of\n"
            "its lists a query probes, and rewrites the bank atomically (no weights needed).\n"
            "SPEC: ivf[:LISTS[:PROBES]]: an inverted-file index, LISTS seeded k-means lists\n"
            "(default auto: about 2 sqrt(rows), a power of two), each test patch searching the\n"
            "PROBES lists nearest to it (default auto: LISTS / 32, at least 8); none: drop the\n"
            "index (exact search again). Search through an index is an approximation: a patch\n"
            "distance is that to the best row of the probed lists (docs/banks.md). predict\n"
            "and serve use a bank's index automatically.\n\n"
            "  -o, --out FILE          write the bank there instead of over BANK\n"
            "      --probes P          default probes (1 .. LISTS); alone: change only that\n"
            "      --iterations N      k-means iterations (default %d)\n"
            "      --recalibrate       relearn the threshold by leave-one-out through the new\n"
            "                          search (the rule of the bank's latest threshold; max when\n"
            "                          it has none); without it the threshold stays as it was\n"
            "      --threads N         threads (default: all cores)\n"
            "  -h, --help              this help\n\n"
            "Exit status: 0 written, 1 failure (unreadable bank, LISTS above the rows, ...),\n"
            "2 wrong usage.\n", DT_IVF_ITERATIONS);
}

static int cmd_bank_index(int argc, char **argv)
{
    enum { O_PROBES = 256, O_ITERS, O_THREADS, O_RECAL };
    static const struct option opts[] = {
        {"recalibrate", no_argument, 0, O_RECAL},
        {"out", required_argument, 0, 'o'},       {"probes", required_argument, 0, O_PROBES},
        {"iterations", required_argument, 0, O_ITERS}, {"threads", required_argument, 0, O_THREADS},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    const char *out = NULL;
    int probes = 0, iters = 0, threads = 0, recal = 0, c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case O_RECAL: recal = 1; break;
        case O_PROBES:
            if (cli_parse_int(CMD, "--probes", optarg, 1, DT_IVF_MAX_LISTS, &probes)) return 2;
            break;
        case O_ITERS:
            if (cli_parse_int(CMD, "--iterations", optarg, 1, 1000, &iters)) return 2;
            break;
        case O_THREADS:
            if (cli_parse_int(CMD, "--threads", optarg, 0, 1024, &threads)) return 2;
            break;
        case 'h': index_usage(stdout); return 0;
        default:
            fprintf(stderr, "(anomalydino bank index --help for the options)\n");
            return 2;
        }
    }
    const int nargs = argc - optind;
    if (nargs < 1 || nargs > 2 || (nargs == 1 && !probes)) {
        cli_error(CMD, "index: expected BANK and SPEC (ivf[:LISTS[:PROBES]] or none), or BANK "
                       "--probes P (anomalydino bank index --help)");
        return 2;
    }
    const char *path = argv[optind];
    int kind = -1, lists = 0, sprobes = 0;
    if (nargs == 2) {
        if (cli_parse_index(CMD, argv[optind + 1], 1, &kind, &lists, &sprobes)) return 2;
        if (kind == 0 && (probes || iters)) {
            cli_error(CMD, "index: none takes no --probes or --iterations");
            return 2;
        }
        if (sprobes && probes && sprobes != probes) {
            cli_error(CMD, "index: probes given twice (%d in SPEC, --probes %d)", sprobes, probes);
            return 2;
        }
        if (!probes) probes = sprobes;
        if (kind == 1 && lists && probes > lists) {
            cli_error(CMD, "index: %d probes for %d lists (probes must be <= lists)", probes, lists);
            return 2;
        }
    } else if (iters) {
        cli_error(CMD, "index: --iterations needs a SPEC to build (ivf[:LISTS[:PROBES]])");
        return 2;
    }
    if (!out) out = path;
    if (check_out_writable(out)) return 1;
    ad_bank *b = ad_bank_load(path);
    if (!b) {
        cli_error(CMD, "%s", ad_errmsg());
        return 1;
    }
    int rc = 1;
    double t0 = cli_now();
    ad_status st = AD_OK;
    if (kind == 1) {
        st = dt_ivf_build(b, adi_threads_resolve(threads), lists, probes, iters);
    } else if (kind == 0) {
        ad_bank_index_drop(b);
    } else {
        st = ad_bank_index_set_probes(b, probes);
    }
    if (st != AD_OK) {
        cli_error(CMD, "index: %s: %s", path, ad_errmsg());
        goto out;
    }
    double thr;
    if (recal) { /* the stored rows suffice: no weights needed */
        cli_bank_clock(b);
        ad_thresh_rule rule = AD_THRESH_MAX;
        double q = 1.0;
        int nh = ad_bank_threshold_count(b);
        ad_thresh_record last = {0};
        if (nh > 0 && ad_bank_threshold_get(b, nh - 1, &last) == AD_OK) {
            if (last.source == AD_THRESH_FROM_SCORES) {
                cli_error(CMD, "index: --recalibrate: the bank's threshold was learned from %d "
                               "calibration image scores; score held-out good images against the "
                               "indexed bank instead (%s not changed)", last.n_scores, out);
                goto out;
            }
            rule = last.rule;
            q = last.quantile;
        } else if (ad_bank_threshold(b, &thr)) {
            rule = b->rule;
            q = b->quantile;
        }
        if (ad_bank_calibrate_loo(b, NULL, rule, q) != AD_OK) {
            cli_error(CMD, "index: leave-one-out recalibration: %s", ad_errmsg());
            goto out;
        }
    }
    if (ad_bank_save(b, out) != AD_OK) {
        cli_error(CMD, "%s", ad_errmsg());
        goto out;
    }
    ad_index_info ii;
    printf("bank        %s\n", out);
    if (ad_bank_index_get(b, &ii))
        printf("index       ivf: %d lists (%zu .. %zu rows each) over %zu rows, %d probes, %d "
               "k-means iterations (approximate search)\n", ii.lists, ii.min_list, ii.max_list,
               ii.rows, ii.probes, ii.iterations);
    else
        printf("index       none (exact search)\n");
    if (ad_bank_threshold(b, &thr))
        printf("threshold   %.6f (%s)\n", thr, recal ? "relearned by leave-one-out" : "kept");
    printf("time        %.1f s\n", cli_now() - t0);
    rc = 0;
out:
    ad_bank_free(b);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: anomalydino bank <subcommand> [options]\n\n"
            "  add    append good references to a bank (+ --recalibrate the threshold)\n"
            "  index  build, drop or tune the approximate search index (ivf) of a bank\n"
            "  info   settings, references (names, times) and threshold history of a bank\n\n"
            "anomalydino bank <subcommand> --help for details.\n");
}

int cmd_bank(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    optind = 1;
    if (!strcmp(argv[1], "add")) return cmd_bank_add(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info")) return cmd_bank_info(argc - 1, argv + 1);
    if (!strcmp(argv[1], "index")) return cmd_bank_index(argc - 1, argv + 1);
    cli_error(CMD, "unknown subcommand '%s' (expected add, index or info)", argv[1]);
    return 2;
}
