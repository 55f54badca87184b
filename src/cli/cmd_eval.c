/* anomalydino eval and eval-merge: the paper's benchmark protocol on MVTec AD, VisA, a folder
 * of parts or a manifest. The protocol itself is the library's (ad_dataset_*, ad_eval_*,
 * ad_report_*: include/anomalydino_eval.h, src/protocol/, src/report/); this front end parses
 * the options, prints the progress the library reports, and the summary. */
#include "cli/cli.h"

#include "anomalydino_eval.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define CMD "eval"

/* The README reproduction: --shots 1 2 4 8 16 --num_seeds 3, preset agnostic, resolution 448.
 * Batched zero-shot: masking_only, 672 (docs/design.md). */
#define DEFAULT_SHOTS "1,2,4,8,16"
#define DEFAULT_SEEDS 3
#define DEFAULT_PRESET "agnostic"
#define DEFAULT_RESOLUTION 448
#define ZEROSHOT_PRESET "masking_only"
#define ZEROSHOT_RESOLUTION 672

static void usage(FILE *f)
{
    fprintf(f,
            "usage: anomalydino eval -m WEIGHTS --dataset LAYOUT --data ROOT -o OUT_DIR [options]\n\n"
            "Runs the paper's benchmark protocol and writes metrics.json, metrics.csv, tables.md,\n"
            "scores.csv, timing.csv, settings.json and report.html into OUT_DIR. A finished\n"
            "shots/seed/category (OUT_DIR/runs/) is not recomputed when the command is repeated.\n\n"
            "  -m, --model WEIGHTS     DINOv2 weights (.pth hub checkpoint or .safetensors)\n"
            "      --dataset LAYOUT    how ROOT is laid out, each as downloaded:\n"
            "                          mvtec     ROOT/CAT/{train/good,test/TYPE,ground_truth/TYPE}\n"
            "                          visa      prepared 1cls layout, or raw with\n"
            "                                    split_csv/1cls.csv\n"
            "                          folder    ROOT/CAT/train/good, ROOT/CAT/test/TYPE, optional\n"
            "                                    ROOT/CAT/ground_truth/TYPE/NAME[_mask].EXT\n"
            "                          ksdd      KolektorSDD: ROOT/kosNN/PartN.jpg with\n"
            "                                    PartN_label.bmp (empty label: good part)\n"
            "                          mtd       Magnetic Tile Defects: ROOT/MT_<class>/Imgs/X.jpg\n"
            "                                    with mask X.png; MT_Free is good\n"
            "                          manifest  ROOT is a CSV: category,split,image,label,mask\n"
            "                                    (paths relative to the CSV; label good|normal|ok|0\n"
            "                                    or the defect type)\n"
            "                          Masks: PNG, BMP, TIFF or JPEG; all values < 128: nonzero\n"
            "                          is anomalous, otherwise thresholded at 128.\n"
            "      --data ROOT         dataset folder (manifest: the CSV file)\n"
            "      --train-fraction F  ksdd/mtd have no train split: per category the first F\n"
            "                          of the good images (sorted by path) are the references,\n"
            "                          the rest and every defect are tested (default 0.5)\n"
            "  -o, --out OUT_DIR       output folder (created)\n"
            "      --categories a,b    categories to evaluate (default: all found)\n"
            "      --shots LIST        reference counts, e.g. 1,2,4,8,16 (default); 'full' = all\n"
            "      --seeds N           seeds 0..N-1: reference blocks seed*k .. (default %d)\n"
            "      --preset P          agnostic (default), informed, masking_only, ... (which\n"
            "                          categories are masked / rotated)\n"
            "      --resolution S      smaller image edge (default %d; zero-shot %d; 0 = the\n"
            "                          images as they are, cropped to multiples of 14)\n"
            "      --segmentation      also pixel AUROC, pixel F1-max and AU-PRO (slower)\n"
            "      --mode M            fewshot (default) or zeroshot (batched, paper Table 4;\n"
            "                          preset default %s)\n"
            "      --threads N         threads (default: all cores)\n"
            "      --examples N        example images per category in report.html (default 4)\n"
            "      --cache-mb MB       memory for cached features, test images and references\n"
            "                          share it (default 4096). Zero-shot keeps the features of\n"
            "                          every test image of a category regardless: each image is\n"
            "                          compared with all the others (a note says when that is\n"
            "                          over the budget)\n"
            "      --shard I/N         run only share I (0-based) of N of the units, balanced by\n"
            "                          test images, and write their raw results into OUT_DIR for\n"
            "                          anomalydino eval-merge; I may be 'auto': the index from\n"
            "                          SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX (Kubernetes\n"
            "                          Indexed Job) or ANOMALYDINO_SHARD_INDEX\n"
            "      --max-pixels N      refuse images and masks larger than N pixels, from the\n"
            "                          file header before decoding (default 40M; 0 = no limit)\n"
            "  -h, --help              this help\n\n"
            "anomalydino dataset LAYOUT ROOT --manifest OUT.csv writes the lists a layout gives\n"
            "(with the split) as a manifest to inspect or edit. anomalydino eval-merge -o OUT\n"
            "SHARD_DIR... combines the shards of a --shard run (docs/eval.md).\n\n"
            "Exit status: 0 every run computed or resumed, 1 something failed or was left out\n"
            "(the summary and notes in OUT_DIR say what), 2 wrong usage.\n",
            DEFAULT_SEEDS, DEFAULT_RESOLUTION, ZEROSHOT_RESOLUTION, ZEROSHOT_PRESET);
}

/* ------------------------------------------------------------------------------------------ */
/* option parsing                                                                              */
/* ------------------------------------------------------------------------------------------ */

static int parse_shots(const char *s, ad_eval_params *o)
{
    char buf[512];
    if (strlen(s) >= sizeof buf) {
        cli_error(CMD, "--shots: list too long");
        return -1;
    }
    strcpy(buf, s);
    o->n_shots = 0;
    size_t n = strlen(buf);
    if (n == 0 || buf[0] == ',' || buf[n - 1] == ',' || strstr(buf, ",,")) {
        cli_error(CMD, "--shots: empty entry in '%s' (e.g. 1,2,4,8,16 or full)", s);
        return -1;
    }
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int k;
        if (!strcmp(t, "full") || !strcmp(t, "-1")) k = -1;
        else if (cli_parse_int(CMD, "--shots", t, 1, 100000, &k)) return -1;
        for (int i = 0; i < o->n_shots; i++)
            if (o->shots[i] == k) {
                cli_error(CMD, "--shots: '%s' listed twice", t);
                return -1;
            }
        if (o->n_shots == AD_EVAL_MAX_SHOTS) {
            cli_error(CMD, "--shots: at most %d values", AD_EVAL_MAX_SHOTS);
            return -1;
        }
        o->shots[o->n_shots++] = k;
    }
    if (!o->n_shots) {
        cli_error(CMD, "--shots: empty list");
        return -1;
    }
    return 0;
}

/* --categories a,b,c: each once. 0, or -1 after printing why. */
static int parse_categories(const char *s, char ***cats, int *n_cats)
{
    char *buf = strdup(s);
    if (!buf) {
        cli_error(CMD, "--categories: out of memory");
        return -1;
    }
    int rc = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && !rc;
         t = strtok_r(NULL, ",", &save)) {
        for (int i = 0; i < *n_cats && !rc; i++)
            if (!strcmp((*cats)[i], t)) {
                cli_error(CMD, "--categories: '%s' listed twice", t);
                rc = -1;
            }
        if (rc) break;
        char **v = realloc(*cats, (size_t)(*n_cats + 1) * sizeof *v);
        if (v) *cats = v;
        if (!v || !(v[*n_cats] = strdup(t))) {
            cli_error(CMD, "--categories: out of memory");
            rc = -1;
            break;
        }
        (*n_cats)++;
    }
    free(buf);
    if (!rc && !*n_cats) {
        cli_error(CMD, "--categories: empty list");
        rc = -1;
    }
    return rc;
}

/* --shard I/N; I "auto": the engine's own index variable. */
static int parse_shard(const char *s, int *index, int *count)
{
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1]) {
        cli_error(CMD, "--shard '%s': expected I/N, e.g. 0/3 (or auto/3)", s);
        return -1;
    }
    if (cli_parse_int(CMD, "--shard (count)", slash + 1, 1, 4096, count)) return -1;
    char idx[64];
    size_t il = (size_t)(slash - s);
    if (il >= sizeof idx) {
        cli_error(CMD, "--shard '%s': bad index", s);
        return -1;
    }
    memcpy(idx, s, il);
    idx[il] = 0;
    const char *from = NULL;
    if (!strcmp(idx, "auto")) {
        static const char *const vars[] = {"SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX",
                                           "ANOMALYDINO_SHARD_INDEX", NULL};
        for (int i = 0; vars[i] && !from; i++) {
            const char *v = getenv(vars[i]);
            if (v && *v) {
                snprintf(idx, sizeof idx, "%s", v);
                from = vars[i];
            }
        }
        if (!from) {
            cli_error(CMD, "--shard auto/%d: none of SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX, "
                           "ANOMALYDINO_SHARD_INDEX is set", *count);
            return -1;
        }
    }
    char opt[96];
    snprintf(opt, sizeof opt, "--shard (index%s%s)", from ? " from " : "", from ? from : "");
    return cli_parse_int(CMD, opt, idx, 0, *count - 1, index);
}

/* ------------------------------------------------------------------------------------------ */
/* progress and summary                                                                        */
/* ------------------------------------------------------------------------------------------ */

static void on_progress(void *user, const ad_progress *p)
{
    cli_meter *m = user;
    switch (p->kind) {
    case AD_PROGRESS_LINE: cli_progress("%s", p->text); break;
    case AD_PROGRESS_BEGIN: cli_meter_begin(m, p->text, p->total); break;
    case AD_PROGRESS_STEP: cli_meter_step(m, p->done); break;
    case AD_PROGRESS_END: cli_meter_end(m); break;
    }
}

/* The notes on stderr: warnings, then the problems the results leave out. */
static void print_notes(const ad_eval_results *r)
{
    ad_eval_summary s = ad_eval_get_summary(r);
    int n = ad_eval_note_count(r);
    if (s.n_warnings) {
        fprintf(stderr, "eval: %d warning(s):\n", s.n_warnings);
        for (int i = 0; i < n; i++) {
            int err;
            const char *t = ad_eval_note(r, i, &err);
            if (!err) fprintf(stderr, "  %s\n", t);
        }
    }
    if (s.n_errors) {
        fprintf(stderr, "eval: %d problem(s), the results leave these out:\n", s.n_errors);
        for (int i = 0; i < n; i++) {
            int err;
            const char *t = ad_eval_note(r, i, &err);
            if (err) fprintf(stderr, "  %s\n", t);
        }
    }
}

/* The report files, and tables.md on stdout. 0 or -1 (printed). */
static int write_report(const ad_eval_results *r, const char *out)
{
    if (ad_report_write(r, out) != AD_OK) {
        cli_error(CMD, "%s", ad_errmsg());
        return -1;
    }
    char *md = ad_report_tables_md(r);
    if (!md) {
        cli_error(CMD, "%s", ad_errmsg());
        return -1;
    }
    fputs(md, stdout);
    ad_string_free(md);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

int cmd_eval(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},
        {"weights", required_argument, 0, 'm'},
        {"dataset", required_argument, 0, 'D'},
        {"data", required_argument, 0, 'd'},
        {"out", required_argument, 0, 'o'},
        {"categories", required_argument, 0, 'c'},
        {"shots", required_argument, 0, 'k'},
        {"seeds", required_argument, 0, 's'},
        {"preset", required_argument, 0, 'p'},
        {"resolution", required_argument, 0, 'r'},
        {"segmentation", no_argument, 0, 'S'},
        {"mode", required_argument, 0, 'M'},
        {"threads", required_argument, 0, 't'},
        {"examples", required_argument, 0, 'x'},
        {"cache-mb", required_argument, 0, 'C'},
        {"max-pixels", required_argument, 0, 'P'},
        {"train-fraction", required_argument, 0, 'F'},
        {"shard", required_argument, 0, 'H'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    ad_eval_params ep = ad_eval_default_params();
    ad_dataset_params dp = ad_dataset_default_params();
    const char *weights = NULL, *data = NULL, *out_dir = NULL;
    ad_layout layout = AD_LAYOUT_MVTEC;
    char **cats = NULL;
    int n_cats = 0, threads = 0;
    int have_kind = 0, n_seeds = -1, resolution = -1, ival;
    const char *shots = NULL, *preset = NULL, *mode = "fewshot";
    ep.max_pixels = CLI_DEFAULT_MAX_PIXELS;
    int rc = 2;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":m:o:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm': weights = optarg; break;
        case 'D':
            if (ad_layout_parse(optarg, &layout) != AD_OK) {
                cli_error(CMD, "%s", ad_errmsg());
                goto out;
            }
            have_kind = 1;
            break;
        case 'd': data = optarg; break;
        case 'o': out_dir = optarg; break;
        case 'c':
            if (parse_categories(optarg, &cats, &n_cats)) goto out;
            break;
        case 'k': shots = optarg; break;
        case 's':
            if (cli_parse_int(CMD, "--seeds", optarg, 1, AD_EVAL_MAX_SEEDS, &n_seeds)) goto out;
            break;
        case 'p': preset = optarg; break;
        case 'r':
            if (cli_parse_int(CMD, "--resolution", optarg, 0, 8192, &resolution)) goto out;
            break;
        case 'S': ep.segmentation = 1; break;
        case 'M': mode = optarg; break;
        case 't':
            if (cli_parse_int(CMD, "--threads", optarg, 0, 1024, &threads)) goto out;
            break;
        case 'x':
            if (cli_parse_int(CMD, "--examples", optarg, 0, 16, &ep.n_examples)) goto out;
            break;
        case 'C':
            if (cli_parse_int(CMD, "--cache-mb", optarg, 0, 1 << 30, &ival)) goto out;
            ep.cache_bytes = (size_t)ival << 20;
            break;
        case 'P':
            if (cli_parse_max_pixels(CMD, optarg, &ep.max_pixels)) goto out;
            break;
        case 'F':
            if (cli_parse_double(CMD, "--train-fraction", optarg, 0.0, 1.0, &dp.train_fraction))
                goto out;
            break;
        case 'H':
            if (parse_shard(optarg, &ep.shard_index, &ep.shard_count)) goto out;
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            cli_getopt_error(CMD, ch, argv);
            goto out;
        }
    }
    if (optind < argc) {
        cli_error(CMD, "unexpected argument '%s' (see --help)", argv[optind]);
        goto out;
    }
    if (!weights || !have_kind || !data || !out_dir) {
        cli_error(CMD, "-m WEIGHTS, --dataset, --data and -o OUT_DIR are required (see --help)");
        goto out;
    }
    if (!strcmp(mode, "zeroshot") || !strcmp(mode, "zero-shot")) ep.zeroshot = 1;
    else if (strcmp(mode, "fewshot") && strcmp(mode, "few-shot")) {
        cli_error(CMD, "--mode '%s': expected fewshot or zeroshot", mode);
        goto out;
    }
    ep.preset = preset ? preset : ep.zeroshot ? ZEROSHOT_PRESET : DEFAULT_PRESET;
    ep.resolution = resolution >= 0 ? resolution : ep.zeroshot ? ZEROSHOT_RESOLUTION
                                                               : DEFAULT_RESOLUTION;
    if (ep.resolution > 0 && ep.resolution < 14) {
        /* every image would fail in ad_preprocess: say so once instead of per image */
        cli_error(CMD, "--resolution %d: at least 14 (one patch), or 0 for the images as they are",
                  ep.resolution);
        goto out;
    }
    if (ep.zeroshot) {
        if (shots || n_seeds >= 0)
            cli_progress("eval: --shots/--seeds do not apply to --mode zeroshot: ignored");
    } else {
        if (parse_shots(shots ? shots : DEFAULT_SHOTS, &ep)) goto out;
        ep.n_seeds = n_seeds > 0 ? n_seeds : DEFAULT_SEEDS;
    }
    {
        int mk, rt;
        if (ad_preset_lookup(ep.preset, ad_layout_name(layout), "", &mk, &rt) != AD_OK) {
            cli_error(CMD, "--preset: %s", ad_errmsg());
            goto out;
        }
    }
    rc = 1;

    /* from here on: failures of the work (exit 1) */
    ad_dataset *ds = NULL;
    ad_model *model = NULL;
    ad_context *ctx = NULL;
    ad_eval_results *res = NULL;
    dp.categories = (const char *const *)cats;
    dp.n_categories = n_cats;
    dp.max_pixels = ep.max_pixels;
    ds = ad_dataset_open(layout, data, &dp);
    if (!ds) {
        cli_error(CMD, "%s", ad_errmsg());
        goto done;
    }
    model = ad_model_load(weights);
    if (!model) {
        cli_error(CMD, "%s", ad_errmsg());
        goto done;
    }
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = threads;
    ctx = ad_context_new(model, cp);
    if (!ctx) {
        cli_error(CMD, "%s", ad_errmsg());
        goto done;
    }
    ad_model_info mi = ad_model_get_info(model);
    int nc = ad_dataset_category_count(ds);
    cli_progress("eval: %s (%s), %d categor%s, %s %s, preset %s, resolution %d, %d thread(s)%s",
                 ad_dataset_root(ds), ad_layout_name(layout), nc, nc == 1 ? "y" : "ies",
                 mi.name ? mi.name : "model", ep.zeroshot ? "zero-shot" : "few-shot", ep.preset,
                 ep.resolution, ad_context_threads(ctx), ep.shard_count > 1 ? ", sharded" : "");
    cli_meter meter;
    memset(&meter, 0, sizeof meter);
    ep.weights_name = weights;
    ep.out_dir = out_dir;
    ep.progress = on_progress;
    ep.user = &meter;
    ad_status st = ad_eval_run(model, ctx, ds, &ep, &res);
    if (!res) {
        cli_error(CMD, "%s", ad_errmsg());
        goto done;
    }
    (void)st;
    ad_eval_summary sm = ad_eval_get_summary(res);
    int wrc = 0;
    if (ep.shard_count > 1) {
        fprintf(stderr, "eval: shard %d of %d: %d run(s) computed, %d resumed, %d failed, %d left "
                        "to the other shards; raw results in %s (combine with anomalydino "
                        "eval-merge)\n",
                ep.shard_index, ep.shard_count, sm.computed, sm.resumed, sm.failed, sm.planned,
                out_dir);
    } else {
        wrc = write_report(res, out_dir);
        fprintf(stderr, "eval: %d run(s) computed, %d resumed, %d failed; results in %s\n",
                sm.computed, sm.resumed, sm.failed, out_dir);
    }
    print_notes(res);
    int mine = sm.computed + sm.resumed + sm.failed;
    rc = (wrc || sm.n_errors || sm.failed || (mine == 0 && ep.shard_count == 1)) ? 1 : 0;

done:
    ad_eval_results_free(res);
    ad_context_free(ctx);
    ad_model_free(model);
    ad_dataset_free(ds);
out:
    for (int i = 0; i < n_cats; i++) free(cats[i]);
    free(cats);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* eval-merge                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static void merge_usage(FILE *f)
{
    fprintf(f,
            "usage: anomalydino eval-merge -o OUT_DIR SHARD_DIR [SHARD_DIR ...]\n\n"
            "Combines the shards of `anomalydino eval --shard I/N` into exactly the files one run\n"
            "writes: metrics.json, metrics.csv, tables.md, scores.csv, timing.csv and\n"
            "report.html in OUT_DIR (tables.md also on stdout). SHARD_DIR: the folders the\n"
            "shards wrote (-o of each shard; one shared folder is fine, OUT_DIR may be it).\n"
            "Refused, with the reason: shards made with other settings or weights, a shard or a\n"
            "unit missing or failed, a shard or unit present twice.\n\n"
            "  -o, --out OUT_DIR   output folder (created)\n"
            "  -h, --help          this help\n\n"
            "Exit status: 0 merged, 1 refused or failed, 2 wrong usage.\n");
}

int cmd_eval_merge(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"out", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *out = NULL;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o': out = optarg; break;
        case 'h': merge_usage(stdout); return 0;
        default: return cli_getopt_error("eval-merge", ch, argv);
        }
    }
    if (!out || optind >= argc) {
        cli_error("eval-merge", "-o OUT_DIR and at least one SHARD_DIR are required (see --help)");
        return 2;
    }
    ad_eval_results *r = NULL;
    if (ad_eval_merge((const char *const *)(argv + optind), argc - optind, &r) != AD_OK) {
        cli_error("eval-merge", "%s", ad_errmsg());
        return 1;
    }
    int rc = write_report(r, out) ? 1 : 0;
    ad_eval_summary sm = ad_eval_get_summary(r);
    fprintf(stderr, "eval-merge: %d run(s) from %d folder(s); results in %s\n", sm.resumed,
            argc - optind, out);
    print_notes(r);
    if (sm.n_errors) rc = 1;
    ad_eval_results_free(r);
    return rc;
}
