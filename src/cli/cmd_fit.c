/* anomalydino fit: memory bank of good reference images (+ their rotations), with a decision
 * threshold learned from normal images only, written to a bank file for `predict`. */
#include "cli/cli_detect.h"
#include "protocol/dataset.h"
#include "detect/detect.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "fit"

static void usage(FILE *f)
{
    ad_bank_params d = ad_bank_default_params();
    fprintf(f,
            "usage: anomalydino fit -m WEIGHTS -o BANK [options] REF_IMAGE_OR_DIR...\n"
            "       anomalydino fit -m WEIGHTS -o BANK --dataset LAYOUT --data ROOT [--category C]\n"
            "                       [options]\n\n"
            "Learns \"normal\" from good reference images (folders are walked: .png .jpg .jpeg)\n"
            "and writes a memory bank file: features, every preprocessing setting, the weights'\n"
            "identity and a decision threshold.\n\n"
            "  -m, --model WEIGHTS       DINOv2 weights (.pth hub checkpoint or .safetensors)\n"
            "  -o, --out BANK            bank file to write\n"
            "      --resolution S        smaller image edge (default %d; 0 = no resize)\n"
            "      --rotate, --no-rotate add the 7 rotations (45..315 degrees) of every\n"
            "                            reference (default: %s, or the preset's)\n"
            "      --mask-refs           PCA-mask the references too (default: off, as the\n"
            "                            original)\n"
            "      --mask-test, --no-mask-test\n"
            "                            default masking of test images stored in the bank\n"
            "                            (default: %s, or the preset's)\n"
            "      --preset P            agnostic, informed, masking_only, agnostic_no_mask,\n"
            "                            informed_no_mask, force_{no_mask|mask}_{no_rotation|\n"
            "                            rotation}: rotation and test masking as the original\n"
            "                            for --dataset mvtec|visa (default mvtec) --category C\n"
            "      --dataset LAYOUT      mvtec, visa, folder, ksdd, mtd or manifest: the preset's\n"
            "                            dataset and, with --data, the layout to read\n"
            "      --data ROOT           take the references from the train split of a dataset\n"
            "                            (anomalydino eval --help; --category C when it has\n"
            "                            several categories)\n"
            "      --train-fraction F    ksdd/mtd split: the first F of the good images (sorted)\n"
            "                            are references (default 0.5)\n"
            "      --knn K               neighbours averaged per patch (default %d)\n"
            "      --calibrate PATH      held-out good image or folder for the threshold\n"
            "                            (repeat the flag for several)\n"
            "      --threshold-rule R    max (default): the largest score of the normal images;\n"
            "                            quantile:Q: their Q-quantile (linear interpolation, Q in\n"
            "                            [0,1], e.g. quantile:0.95 for about 5 %% false alarms)\n"
            "      --max-pixels N        refuse images larger than N pixels, from the file\n"
            "                            header before decoding (default 40M; 0 = no limit)\n"
            "      --json                the summary as JSON, with the scores the threshold was\n"
            "                            learned from\n"
            "      --coreset R           keep a coreset of the bank rows (greedy k-center, as\n"
            "                            PatchCore): R in (0,1] a fraction, R > 1 a row count;\n"
            "                            an approximation (docs/banks.md); default: all rows\n"
            "      --index SPEC          approximate search index, built after any coreset:\n"
            "                            ivf[:LISTS[:PROBES]] (seeded k-means lists, each test\n"
            "                            patch searching its PROBES nearest; default auto:auto);\n"
            "                            an approximation (docs/banks.md); default: exact search\n"
            "      --bank-dtype T        row storage: f32 (default, exact); f16 is not offered:\n"
            "                            it measured no faster (docs/banks.md)\n"
            "      --threads N           threads (default: all cores)\n"
            "  -h, --help                this help\n\n"
            "Threshold: from --calibrate images when given, else leave-one-out over the\n"
            "references (each scored against the bank of the others, its rotations left out;\n"
            "needs >= 2 references). With one reference and no --calibrate images the bank has\n"
            "no threshold and predict prints scores without verdicts. A test image is NG when\n"
            "its score is above the threshold. The summary lists the leave-one-out or calibration\n"
            "scores behind the threshold; the bank keeps them too (anomalydino bank info).\n"
            "Grow the bank later with anomalydino bank add. SOURCE_DATE_EPOCH, when set, is the\n"
            "time recorded in the bank (reproducible files).\n\n"
            "Exit status: 0 bank written, 1 failure (bad image, weights, output), 2 wrong usage.\n",
            d.resolution, d.rotate ? "on" : "off", d.mask_test ? "on" : "off", d.knn_k);
}

static int parse_rule(const char *s, ad_thresh_rule *rule, double *q)
{
    if (!strcmp(s, "max")) {
        *rule = AD_THRESH_MAX;
        *q = 1.0;
        return 0;
    }
    if (!strncmp(s, "quantile:", 9)) {
        *rule = AD_THRESH_QUANTILE;
        return cli_parse_double(CMD, "--threshold-rule quantile:Q", s + 9, 0.0, 1.0, q);
    }
    cli_error(CMD, "--threshold-rule '%s': expected max or quantile:Q", s);
    return -1;
}

/* The bank is written at the very end: refuse an output that cannot be written before the
 * (possibly long) work, so that it is not lost. 0 or -1 (error printed). */
static int check_out_writable(const char *out)
{
    if (adi_io_is_dir(out)) {
        cli_error(CMD, "-o %s: is a directory (give the bank's file name)", out);
        return -1;
    }
    const char *slash = strrchr(out, '/');
    char *dir = slash ? strndup(out, slash == out ? 1 : (size_t)(slash - out)) : strdup(".");
    if (!dir) {
        cli_error(CMD, "out of memory");
        return -1;
    }
    int ok = adi_io_is_dir(dir) && access(dir, W_OK | X_OK) == 0;
    if (!ok)
        cli_error(CMD, "-o %s: cannot write into %s: %s", out, dir,
                  adi_io_is_dir(dir) ? "permission denied" : "no such directory");
    free(dir);
    return ok ? 0 : -1;
}

static int push_str(char ***v, int *n, const char *s)
{
    char **nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
    if (!nv) return -1;
    *v = nv;
    nv[(*n)++] = (char *)s; /* borrowed from argv */
    return 0;
}

int cmd_fit(int argc, char **argv)
{
    enum {
        O_RES = 256, O_ROT, O_NOROT, O_MASKREFS, O_MASKTEST, O_NOMASKTEST, O_PRESET, O_DATASET,
        O_CATEGORY, O_KNN, O_CALIB, O_RULE, O_THREADS, O_JSON, O_MAXPX, O_DATA, O_TRAINFRAC,
        O_CORESET, O_DTYPE, O_INDEX
    };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"out", required_argument, 0, 'o'},
        {"resolution", required_argument, 0, O_RES}, {"rotate", no_argument, 0, O_ROT},
        {"no-rotate", no_argument, 0, O_NOROT},   {"mask-refs", no_argument, 0, O_MASKREFS},
        {"mask-test", no_argument, 0, O_MASKTEST}, {"no-mask-test", no_argument, 0, O_NOMASKTEST},
        {"preset", required_argument, 0, O_PRESET}, {"dataset", required_argument, 0, O_DATASET},
        {"category", required_argument, 0, O_CATEGORY}, {"knn", required_argument, 0, O_KNN},
        {"calibrate", required_argument, 0, O_CALIB},
        {"threshold-rule", required_argument, 0, O_RULE},
        {"threads", required_argument, 0, O_THREADS}, {"help", no_argument, 0, 'h'},
        {"json", no_argument, 0, O_JSON}, {"max-pixels", required_argument, 0, O_MAXPX},
        {"data", required_argument, 0, O_DATA},
        {"train-fraction", required_argument, 0, O_TRAINFRAC},
        {"coreset", required_argument, 0, O_CORESET}, {"bank-dtype", required_argument, 0, O_DTYPE},
        {"index", required_argument, 0, O_INDEX},
        {0, 0, 0, 0}};
    const char *weights = NULL, *out = NULL, *preset = NULL, *dataset = NULL, *category = NULL;
    int resolution = -1, rotate = -1, mask_refs = 0, mask_test = -1, knn = -1, threads = 0;
    int json = 0;
    size_t max_pixels = CLI_DEFAULT_MAX_PIXELS;
    const char *data = NULL;
    double train_fraction = DS_DEFAULT_TRAIN_FRACTION;
    ad_thresh_rule rule = AD_THRESH_MAX;
    double q = 1.0, coreset = 0;
    int index_kind = 0, index_lists = 0, index_probes = 0;
    char **calib_in = NULL;
    int n_calib_in = 0;
    int c, rc = 2;
    while ((c = getopt_long(argc, argv, ":m:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': weights = optarg; break;
        case 'o': out = optarg; break;
        case O_RES:
            if (cli_parse_int(CMD, "--resolution", optarg, 0, 8192, &resolution)) goto out;
            break;
        case O_ROT: rotate = 1; break;
        case O_NOROT: rotate = 0; break;
        case O_MASKREFS: mask_refs = 1; break;
        case O_MASKTEST: mask_test = 1; break;
        case O_NOMASKTEST: mask_test = 0; break;
        case O_PRESET: preset = optarg; break;
        case O_DATASET: dataset = optarg; break;
        case O_CATEGORY: category = optarg; break;
        case O_KNN:
            if (cli_parse_int(CMD, "--knn", optarg, 1, 1024, &knn)) goto out;
            break;
        case O_CALIB:
            if (push_str(&calib_in, &n_calib_in, optarg)) goto out;
            break;
        case O_RULE:
            if (parse_rule(optarg, &rule, &q)) goto out;
            break;
        case O_THREADS:
            if (cli_parse_int(CMD, "--threads", optarg, 0, 1024, &threads)) goto out;
            break;
        case O_JSON: json = 1; break;
        case O_MAXPX:
            if (cli_parse_max_pixels(CMD, optarg, &max_pixels)) goto out;
            break;
        case O_DATA: data = optarg; break;
        case O_TRAINFRAC:
            if (cli_parse_double(CMD, "--train-fraction", optarg, 0.0, 1.0, &train_fraction))
                goto out;
            break;
        case O_CORESET:
            if (cli_parse_coreset(CMD, optarg, &coreset)) goto out;
            break;
        case O_INDEX:
            if (cli_parse_index(CMD, optarg, 0, &index_kind, &index_lists, &index_probes)) goto out;
            break;
        case O_DTYPE:
            if (!strcmp(optarg, "f32")) break;
            if (!strcmp(optarg, "f16"))
                cli_error(CMD, "--bank-dtype f16: not offered: float16 rows measured no faster "
                               "than float32 at full-shot size (docs/banks.md); use f32");
            else
                cli_error(CMD, "--bank-dtype '%s': expected f32", optarg);
            goto out;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            cli_getopt_error(CMD, c, argv);
            goto out;
        }
    }
    if (!weights || !out) {
        cli_error(CMD, "-m WEIGHTS and -o BANK are required (anomalydino fit --help)");
        goto out;
    }
    if (optind >= argc && !data) {
        cli_error(CMD, "no reference images given (anomalydino fit --help)");
        goto out;
    }
    if (optind < argc && data) {
        cli_error(CMD, "give the references either as images/folders or with --data, not both");
        goto out;
    }

    ad_bank_params p = ad_bank_default_params();
    if (preset || dataset || category) {
        int pm, pr;
        if (cld_preset(CMD, preset ? preset : "agnostic", dataset, category, &pm, &pr)) goto out;
        p.mask_test = pm;
        p.rotate = pr;
    }
    if (resolution >= 0) p.resolution = resolution;
    if (rotate >= 0) p.rotate = rotate;
    if (mask_test >= 0) p.mask_test = mask_test;
    if (knn > 0) p.knn_k = knn;
    p.mask_refs = mask_refs;

    /* From here on failures are of the work, not of the usage. */
    rc = 1;
    if (check_out_writable(out)) goto out;
    char **refs = NULL, **calib = NULL;
    int n_refs;
    if (data) {
        char **names = NULL;
        n_refs = cld_dataset_images(CMD, dataset, data, category, train_fraction, max_pixels, 1,
                                    &refs, &names);
        if (n_refs >= 0) cli_free_list(names, n_refs);
    } else {
        n_refs = cli_collect_images(CMD, argv + optind, argc - optind, &refs);
    }
    if (n_refs < 0) goto out;
    int n_calib = 0;
    if (n_calib_in) {
        n_calib = cli_collect_images(CMD, calib_in, n_calib_in, &calib);
        if (n_calib < 0) {
            cli_free_list(refs, n_refs);
            goto out;
        }
        for (int i = 0; i < n_calib; i++)
            for (int j = 0; j < n_refs; j++)
                if (!strcmp(calib[i], refs[j]))
                    fprintf(stderr, "anomalydino fit: warning: %s is both a reference and a "
                                    "calibration image (its score is then near 0)\n", calib[i]);
    }

    ad_model *m = NULL;
    ad_context *ctx = NULL;
    ad_bank *bank = NULL;
    int n_failed = 0;
    double *scores = NULL;
    char **score_of = NULL; /* the image behind each score (borrowed) */
    int n_scores = 0;
    if (cld_load_model(CMD, weights, threads, &m, &ctx)) goto done;
    bank = ad_bank_new(m, &p);
    if (!bank) {
        cli_error(CMD, "%s", ad_errmsg());
        goto done;
    }
    p = ad_bank_get_params(bank);
    cli_bank_clock(bank);

    double t_start = cli_now();
    cli_meter meter;
    cli_meter_begin(&meter, "fit: reference features", n_refs);
    for (int i = 0; i < n_refs; i++) {
        ad_image img = {0};
        ad_status st = adi_io_read_image_max(refs[i], max_pixels, &img);
        if (st == AD_OK) {
            /* one reference per call: the very path `bank add` takes, so that growing a bank
             * one image at a time gives this bank */
            const char *name = refs[i];
            st = ad_bank_add_references(bank, ctx, &img, &name, 1, 0);
            if (st != AD_OK) adi_error_prefix("%s", refs[i]);
        }
        ad_image_free(&img);
        if (st != AD_OK) {
            cli_meter_end(&meter);
            cli_error(CMD, "%s", ad_errmsg());
            n_failed++;
        }
        cli_meter_step(&meter, i + 1);
    }
    cli_meter_end(&meter);
    if (n_failed) {
        cli_error(CMD, "%d of %d reference images failed (listed above); no bank written", n_failed,
                  n_refs);
        goto done;
    }

    size_t rows_full = ad_bank_rows(bank);
    if (coreset > 0) {
        double t0 = cli_now();
        if (ad_bank_coreset(bank, ctx, coreset) != AD_OK) {
            cli_error(CMD, "--coreset %g: %s", coreset, ad_errmsg());
            goto done;
        }
        cli_progress("fit: coreset %g: %zu of %zu rows (%.1f s)", coreset, ad_bank_rows(bank),
                     rows_full, cli_now() - t0);
    }

    if (index_kind) {
        double t0 = cli_now();
        if (dt_ivf_build(bank, ad_context_threads(ctx), index_lists, index_probes, 0) != AD_OK) {
            cli_error(CMD, "--index: %s", ad_errmsg());
            goto done;
        }
        ad_index_info ii;
        ad_bank_index_get(bank, &ii);
        cli_progress("fit: index ivf: %d lists, %d probes (%.1f s)", ii.lists, ii.probes,
                     cli_now() - t0);
    }

    /* Threshold from normal images only (through the index when there is one, as predict). */
    char how[160];
    int have_thr = 1;
    if (n_calib) {
        scores = malloc((size_t)n_calib * sizeof *scores);
        score_of = calloc((size_t)n_calib, sizeof *score_of);
        if (!scores || !score_of) goto done;
        cli_meter cm;
        cli_meter_begin(&cm, "fit: calibration images", n_calib);
        for (int i = 0; i < n_calib; i++) {
            ad_image img = {0};
            ad_result r = {0};
            ad_status st = adi_io_read_image_max(calib[i], max_pixels, &img);
            if (st == AD_OK) {
                st = ad_predict(bank, ctx, &img, -1, &r);
                if (st != AD_OK) adi_error_prefix("%s", calib[i]);
            }
            ad_image_free(&img);
            cli_meter_step(&cm, i + 1);
            if (st != AD_OK) {
                cli_meter_end(&cm);
                cli_error(CMD, "%s", ad_errmsg());
                n_failed++;
                continue;
            }
            score_of[n_scores] = calib[i];
            scores[n_scores++] = r.score;
            ad_result_free(&r);
        }
        cli_meter_end(&cm);
        if (n_failed) {
            cli_error(CMD, "%d of %d calibration images failed (listed above); no bank written",
                      n_failed, n_calib);
            goto done;
        }
        if (ad_bank_calibrate_scores(bank, scores, n_calib, rule, q) != AD_OK) {
            cli_error(CMD, "calibration: %s", ad_errmsg());
            goto done;
        }
        snprintf(how, sizeof how, "%s of %d calibration image scores",
                 rule == AD_THRESH_MAX ? "max" : "quantile", n_calib);
    } else if (n_refs >= 2) {
        /* the scores of ad_bank_calibrate_loo, kept to be shown (same computation) */
        scores = malloc((size_t)n_refs * sizeof *scores);
        score_of = calloc((size_t)n_refs, sizeof *score_of);
        if (!scores || !score_of) goto done;
        cli_progress("fit: leave-one-out scores of %d references ...", n_refs);
        if (adi_bank_loo_scores(bank, ctx, scores) != AD_OK ||
            dt_bank_calibrate(bank, scores, n_refs, rule, q, AD_THRESH_FROM_LOO) != AD_OK) {
            cli_error(CMD, "leave-one-out calibration: %s", ad_errmsg());
            goto done;
        }
        for (int i = 0; i < n_refs; i++) score_of[i] = refs[i];
        n_scores = n_refs;
        snprintf(how, sizeof how, "%s of %d leave-one-out reference scores",
                 rule == AD_THRESH_MAX ? "max" : "quantile", n_refs);
    } else {
        have_thr = 0;
        cli_progress("fit: one reference image and no --calibrate images: the bank gets no decision "
                     "threshold (predict prints scores without verdicts); give >= 2 references or "
                     "--calibrate GOOD_IMAGES for one");
    }

    if (ad_bank_save(bank, out) != AD_OK) {
        cli_error(CMD, "%s", ad_errmsg());
        goto done;
    }
    ad_model_info mi = ad_model_get_info(m);
    double thr = 0;
    have_thr = have_thr && ad_bank_threshold(bank, &thr);
    const char *source = n_calib ? "calibration" : have_thr ? "leave-one-out" : "none";
    if (json) {
        cJSON *o = cJSON_CreateObject();
        char fp[24];
        snprintf(fp, sizeof fp, "%016llx", (unsigned long long)mi.fingerprint);
        cJSON_AddStringToObject(o, "bank", out);
        cJSON *w = cJSON_AddObjectToObject(o, "weights");
        cJSON_AddStringToObject(w, "name", mi.name ? mi.name : "custom");
        cJSON_AddNumberToObject(w, "dim", mi.dim);
        cJSON_AddStringToObject(w, "fingerprint", fp);
        cJSON *ra = cJSON_AddArrayToObject(o, "references");
        for (int i = 0; i < n_refs; i++) cJSON_AddItemToArray(ra, cJSON_CreateString(refs[i]));
        cJSON_AddNumberToObject(o, "rows", (double)ad_bank_rows(bank));
        if (coreset > 0) {
            cJSON *cs = cJSON_AddObjectToObject(o, "coreset");
            cJSON_AddNumberToObject(cs, "setting", coreset);
            cJSON_AddNumberToObject(cs, "rows_offered", (double)rows_full);
        } else {
            cJSON_AddNullToObject(o, "coreset");
        }
        ad_index_info ii;
        if (ad_bank_index_get(bank, &ii)) {
            cJSON *ix = cJSON_AddObjectToObject(o, "index");
            cJSON_AddStringToObject(ix, "kind", "ivf");
            cJSON_AddNumberToObject(ix, "lists", ii.lists);
            cJSON_AddNumberToObject(ix, "probes", ii.probes);
        } else {
            cJSON_AddNullToObject(o, "index");
        }
        cJSON *st = cJSON_AddObjectToObject(o, "settings");
        cJSON_AddNumberToObject(st, "resolution", p.resolution);
        cJSON_AddBoolToObject(st, "rotate", p.rotate);
        cJSON_AddBoolToObject(st, "mask_refs", p.mask_refs);
        cJSON_AddBoolToObject(st, "mask_test", p.mask_test);
        cJSON_AddNumberToObject(st, "knn", p.knn_k);
        cJSON *th = cJSON_AddObjectToObject(o, "threshold");
        if (have_thr) cJSON_AddNumberToObject(th, "value", thr);
        else cJSON_AddNullToObject(th, "value");
        cJSON_AddStringToObject(th, "source", source);
        cJSON_AddStringToObject(th, "rule", rule == AD_THRESH_MAX ? "max" : "quantile");
        if (rule == AD_THRESH_QUANTILE) cJSON_AddNumberToObject(th, "q", q);
        cJSON *sa = cJSON_AddArrayToObject(th, "scores");
        for (int i = 0; i < n_scores; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "image", score_of[i]);
            cJSON_AddNumberToObject(e, "score", scores[i]);
            cJSON_AddItemToArray(sa, e);
        }
        cJSON_AddNumberToObject(o, "time_s", cli_now() - t_start);
        char *txt = cJSON_Print(o);
        if (txt) puts(txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        printf("bank        %s\n", out);
        printf("weights     %s, %d dims (fingerprint %016llx)\n", mi.name ? mi.name : "custom",
               mi.dim, (unsigned long long)mi.fingerprint);
        printf("references  %d image%s, %zu rows%s\n", n_refs, n_refs == 1 ? "" : "s",
               ad_bank_rows(bank), p.rotate ? " (8 rotations each)" : "");
        if (coreset > 0)
            printf("coreset     %g: %zu of %zu rows kept (greedy k-center, approximate)\n", coreset,
                   ad_bank_rows(bank), rows_full);
        ad_index_info ii;
        if (ad_bank_index_get(bank, &ii))
            printf("index       ivf: %d lists, %d probes (approximate search)\n", ii.lists,
                   ii.probes);
        printf("settings    resolution %d, rotate %s, mask refs %s, mask test %s, knn %d\n",
               p.resolution, p.rotate ? "yes" : "no", p.mask_refs ? "yes" : "no",
               p.mask_test ? "yes" : "no", p.knn_k);
        if (have_thr) {
            if (rule == AD_THRESH_QUANTILE)
                printf("threshold   %.6f (%s, q = %g)\n", thr, how, q);
            else
                printf("threshold   %.6f (%s)\n", thr, how);
        } else {
            printf("threshold   none (one reference, no calibration images)\n");
        }
        for (int i = 0; i < n_scores; i++)
            printf("%s%.6f  %s\n", i == 0 ? (n_calib ? "calib score " : "loo score   ")
                                           : "            ",
                   scores[i], score_of[i]);
        printf("time        %.1f s\n", cli_now() - t_start);
    }
    rc = 0;

done:
    free(scores);
    free(score_of);
    ad_bank_free(bank);
    ad_context_free(ctx);
    ad_model_free(m);
    cli_free_list(refs, n_refs);
    cli_free_list(calib, n_calib);
out:
    free(calib_in);
    return rc;
}
