/* anomalydino predict: scores images against a bank made by `fit`; one row per image, optional
 * patch grids, full-resolution maps and heat-map overlays. */
#include "cli/cli_detect.h"
#include "image/image.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define CMD "predict"
/* Without a threshold the overlay scale tops at CLD_VMAX_NO_THRESHOLD, the vmax of the original
 * demo notebook (dammsi/AnomalyDINO demo_AnomalyDINO.ipynb) for cosine-distance maps; with one
 * at 2 x threshold, so the decision level sits at the middle of the scale (cli_detect.h). */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: anomalydino predict -m WEIGHTS -b BANK [options] IMAGE_OR_DIR...\n\n"
            "Scores each image (folders are walked: .png .jpg .jpeg) against the bank and prints\n"
            "one row per image: image,score,verdict,time_ms (CSV, header first). verdict is NG\n"
            "when the score is above the bank's threshold, OK otherwise, empty (JSON null) when\n"
            "the bank has no threshold. time_ms: decoding + features + search + score.\n\n"
            "  -m, --model WEIGHTS   the weights the bank was made with (others are refused)\n"
            "  -b, --bank BANK       bank file written by anomalydino fit\n"
            "      --mask, --no-mask PCA-mask the test images (default: the bank's setting)\n"
            "      --grids DIR       patch-distance grid per image, DIR/STEM.npy (float32,\n"
            "                        grid_h x grid_w; 0 = masked-out patch)\n"
            "      --maps DIR        full-resolution anomaly map, DIR/STEM.npy (float32,\n"
            "                        height x width of the image: bilinear + Gaussian sigma 4)\n"
            "      --overlays DIR    heat map over the image, DIR/STEM.png: fixed colour scale\n"
            "                        (inferno) from 0 to --vmax, never per-image min-max; the\n"
            "                        region where the map reaches the threshold is outlined in\n"
            "                        cyan\n"
            "      --vmax V          top of the colour scale (default: 2 x the bank's threshold,\n"
            "                        so the threshold is mid-scale; %.1f without a threshold)\n"
            "      --format F        csv (default) or json\n"
            "      --threads N       threads (default: all cores)\n"
            "  -h, --help            this help\n\n"
            "STEM is the image's file name without extension, with -2, -3, ... appended when an\n"
            "earlier image of the same run has the same stem. An unreadable image is reported,\n"
            "the others are still scored, and the exit status is 1.\n",
            CLD_VMAX_NO_THRESHOLD);
}

int cmd_predict(int argc, char **argv)
{
    enum { O_MASK = 256, O_NOMASK, O_GRIDS, O_MAPS, O_OVERLAYS, O_VMAX, O_FORMAT, O_THREADS };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},       {"bank", required_argument, 0, 'b'},
        {"mask", no_argument, 0, O_MASK},           {"no-mask", no_argument, 0, O_NOMASK},
        {"grids", required_argument, 0, O_GRIDS},   {"maps", required_argument, 0, O_MAPS},
        {"overlays", required_argument, 0, O_OVERLAYS}, {"vmax", required_argument, 0, O_VMAX},
        {"format", required_argument, 0, O_FORMAT}, {"threads", required_argument, 0, O_THREADS},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    const char *weights = NULL, *bank_path = NULL, *grids_dir = NULL, *maps_dir = NULL,
               *ov_dir = NULL;
    int mask = -1, threads = 0, c;
    double vmax = -1;
    cld_format format = CLD_CSV;
    while ((c = getopt_long(argc, argv, "m:b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': weights = optarg; break;
        case 'b': bank_path = optarg; break;
        case O_MASK: mask = 1; break;
        case O_NOMASK: mask = 0; break;
        case O_GRIDS: grids_dir = optarg; break;
        case O_MAPS: maps_dir = optarg; break;
        case O_OVERLAYS: ov_dir = optarg; break;
        case O_VMAX:
            if (cli_parse_double(CMD, "--vmax", optarg, 1e-9, 1e9, &vmax)) return 2;
            break;
        case O_FORMAT:
            if (cld_parse_format(CMD, optarg, &format)) return 2;
            break;
        case O_THREADS:
            if (cli_parse_int(CMD, "--threads", optarg, 0, 1024, &threads)) return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: fprintf(stderr, "(anomalydino predict --help for the options)\n"); return 2;
        }
    }
    if (!weights || !bank_path) {
        cli_error(CMD, "-m WEIGHTS and -b BANK are required (anomalydino predict --help)");
        return 2;
    }
    if (optind >= argc) {
        cli_error(CMD, "no images given (anomalydino predict --help)");
        return 2;
    }
    if (cld_distinct_npy_dirs(CMD, grids_dir, maps_dir)) return 2;

    int rc = 1;
    char **paths = NULL, **stems = NULL;
    int n = cli_collect_images(CMD, argv + optind, argc - optind, &paths);
    if (n < 0) return 1;
    ad_bank *bank = NULL;
    ad_model *m = NULL;
    ad_context *ctx = NULL;
    /* The bank first: a corrupt bank is found before the weights are read. */
    bank = ad_bank_load(bank_path);
    if (!bank) {
        cli_error(CMD, "%s", ad_errmsg());
        goto done;
    }
    if (cld_load_model(CMD, weights, threads, &m, &ctx)) goto done;
    if (ad_bank_check_model(bank, m) != AD_OK) {
        cli_error(CMD, "%s: %s", bank_path, ad_errmsg());
        goto done;
    }
    if (cld_prepare_dir(CMD, "--grids", grids_dir) || cld_prepare_dir(CMD, "--maps", maps_dir) ||
        cld_prepare_dir(CMD, "--overlays", ov_dir) ||
        cld_distinct_npy_dirs(CMD, grids_dir, maps_dir)) /* e.g. G and ./G, now both made */
        goto done;
    stems = cld_unique_stems(paths, n);
    if (!stems) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    double thr = 0;
    int have_thr = ad_bank_threshold(bank, &thr);
    if (vmax <= 0)
        vmax = have_thr && thr > 0 ? CLD_VMAX_THRESHOLD_FACTOR * thr : CLD_VMAX_NO_THRESHOLD;
    const adi_overlay_params op = cld_overlay_params(have_thr, thr, vmax);
    if (!have_thr)
        cli_progress("predict: the bank has no threshold (made from one reference without "
                     "--calibrate): scores only, no verdicts");
    else
        cli_progress("predict: threshold %.6f (NG above it)", thr);
    if (ov_dir) cli_progress("predict: overlay colour scale 0 .. %.6g", vmax);
    const cld_out_dirs dirs = {grids_dir, maps_dir, ov_dir};

    cld_table t;
    if (cld_table_begin(&t, format, 1, 1)) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    cJSON *set = cld_table_settings(&t);
    if (set) {
        ad_bank_params bp = ad_bank_get_params(bank);
        cJSON_AddStringToObject(set, "bank", bank_path);
        if (have_thr) cJSON_AddNumberToObject(set, "threshold", thr);
        else cJSON_AddNullToObject(set, "threshold");
        cJSON_AddNumberToObject(set, "resolution", bp.resolution);
        cJSON_AddBoolToObject(set, "mask", mask >= 0 ? mask : bp.mask_test);
        cJSON_AddNumberToObject(set, "knn", bp.knn_k);
        if (ov_dir) cJSON_AddNumberToObject(set, "vmax", vmax);
    }
    for (int i = 0; i < n; i++) {
        double t0 = cli_now();
        ad_image img = {0};
        ad_result r = {0};
        ad_status st = adi_io_read_image(paths[i], &img);
        if (st == AD_OK) {
            st = cld_predict(bank, ctx, &img, mask, &r, NULL, NULL);
            if (st != AD_OK) adi_error_prefix("%s", paths[i]);
        }
        double ms = 1e3 * (cli_now() - t0);
        if (st != AD_OK) {
            cld_table_fail(&t, CMD, paths[i], ad_errmsg());
        } else if (cld_write_outputs(&dirs, stems[i], r.grid, r.grid_h, r.grid_w, img.width,
                                     img.height, &img, paths[i], &op) != AD_OK) {
            char why[600];
            snprintf(why, sizeof why, "writing outputs: %s", ad_errmsg());
            cld_table_fail(&t, CMD, paths[i], why);
        } else {
            cld_table_row(&t, paths[i], r.score, r.verdict, ms);
        }
        ad_result_free(&r);
        ad_image_free(&img);
    }
    rc = cld_table_end(&t, CMD);

done:
    cli_free_list(stems, n);
    cli_free_list(paths, n);
    ad_context_free(ctx);
    ad_model_free(m);
    ad_bank_free(bank);
    return rc;
}
