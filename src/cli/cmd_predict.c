/* anomalydino predict: scores images against a bank made by `fit`; one row per image, optional
 * patch grids, full-resolution maps and heat-map overlays. */
#include "cli/cli_detect.h"
#include "protocol/dataset.h"
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
            "usage: anomalydino predict -m WEIGHTS -b BANK [options] IMAGE_OR_DIR...\n"
            "       anomalydino predict -m WEIGHTS -b BANK --dataset LAYOUT --data ROOT\n"
            "                           [--category C] [options]\n\n"
            "Scores each image (folders are walked: .png .jpg .jpeg) against the bank and prints\n"
            "one row per image: image,score,verdict,threshold,time_ms,grid,map,overlay (CSV,\n"
            "header first). verdict is NG when the score is above the bank's threshold, OK\n"
            "otherwise; verdict and threshold are empty (JSON null) when the bank has no\n"
            "threshold. time_ms: decoding + features + search + score. grid, map, overlay: the\n"
            "files written for the image (empty when not asked for).\n\n"
            "  -m, --model WEIGHTS   the weights the bank was made with (others are refused)\n"
            "  -b, --bank BANK       bank file written by anomalydino fit\n"
            "      --mask, --no-mask PCA-mask the test images (default: the bank's setting)\n"
            "      --dataset LAYOUT  with --data ROOT: score the test split of a dataset (mvtec,\n"
            "      --data ROOT       visa, folder, ksdd, mtd, manifest; see anomalydino eval\n"
            "      --category C      --help); STEM is then the sample's name (crack/000,\n"
            "      --train-fraction F kos01/Part0); --train-fraction as for fit (default 0.5)\n"
            "      --grids DIR       patch-distance grid per image, DIR/STEM.npy (float32,\n"
            "                        grid_h x grid_w; 0 = masked-out patch)\n"
            "      --maps DIR        full-resolution anomaly map, DIR/STEM.npy (float32,\n"
            "                        height x width of the image: bilinear + Gaussian sigma 4)\n"
            "      --maps-format F   npy (default) or tiff (DIR/STEM.tiff, float32 TIFF)\n"
            "      --overlays DIR    heat map over the image, DIR/STEM.png: fixed colour scale\n"
            "                        (inferno) from 0 to --vmax, never per-image min-max; the\n"
            "                        region where the map reaches the threshold is outlined in\n"
            "                        cyan\n"
            "      --vmax V          top of the colour scale (default: 2 x the bank's threshold,\n"
            "                        so the threshold is mid-scale; %.1f without a threshold)\n"
            "      --format F        csv (default) or json\n"
            "      --max-pixels N    refuse images larger than N pixels, from the file header\n"
            "                        before decoding (default 40M; 0 = no limit)\n"
            "      --threads N       threads (default: all cores)\n"
            "  -h, --help            this help\n\n"
            "STEM: for an image found in a folder given on the command line, its path below that\n"
            "folder without extension (bottle/test/broken_small/000.png given as bottle/test\n"
            "writes DIR/broken_small/000.*); for an image given by itself, its file name without\n"
            "extension. Should two images still get the same STEM, the later one gets -2, -3, ...\n"
            "and a warning names both.\n\n"
            "Exit status: 0 every image scored, 1 an image or file failed (it is reported, the\n"
            "others are still scored), 2 wrong usage.\n",
            CLD_VMAX_NO_THRESHOLD);
}

int cmd_predict(int argc, char **argv)
{
    enum { O_DATASET = 256, O_DATA, O_CATEGORY, O_TRAINFRAC };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},       {"bank", required_argument, 0, 'b'},
        CLD_OUT_LONGOPTS,
        {"dataset", required_argument, 0, O_DATASET}, {"data", required_argument, 0, O_DATA},
        {"category", required_argument, 0, O_CATEGORY},
        {"train-fraction", required_argument, 0, O_TRAINFRAC},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    const char *weights = NULL, *bank_path = NULL;
    int c;
    const char *layout = NULL, *data = NULL, *category = NULL;
    double train_fraction = DS_DEFAULT_TRAIN_FRACTION;
    cld_out_opts oo;
    cld_out_opts_init(&oo, -1);
    while ((c = getopt_long(argc, argv, ":m:b:h", opts, NULL)) != -1) {
        int k = cld_out_option(CMD, c, optarg, &oo);
        if (k < 0) return 2;
        if (k) continue;
        switch (c) {
        case 'm': weights = optarg; break;
        case 'b': bank_path = optarg; break;
        case O_DATASET: layout = optarg; break;
        case O_DATA: data = optarg; break;
        case O_CATEGORY: category = optarg; break;
        case O_TRAINFRAC:
            if (cli_parse_double(CMD, "--train-fraction", optarg, 0.0, 1.0, &train_fraction))
                return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_getopt_error(CMD, c, argv);
        }
    }
    const char *grids_dir = oo.grids, *maps_dir = oo.maps, *ov_dir = oo.overlays;
    int mask = oo.mask, threads = oo.threads, maps_tiff = oo.maps_tiff;
    size_t max_pixels = oo.max_pixels;
    double vmax = oo.vmax;
    cld_format format = oo.format;
    if (!weights || !bank_path) {
        cli_error(CMD, "-m WEIGHTS and -b BANK are required (anomalydino predict --help)");
        return 2;
    }
    if (optind >= argc && !data) {
        cli_error(CMD, "no images given (anomalydino predict --help)");
        return 2;
    }
    if (optind < argc && data) {
        cli_error(CMD, "give the images either as files/folders or with --data, not both");
        return 2;
    }
    if (cld_distinct_npy_dirs(CMD, grids_dir, maps_dir)) return 2;

    int rc = 1;
    char **paths = NULL, **stems = NULL, **rels = NULL;
    int n = data ? cld_dataset_images(CMD, layout, data, category, train_fraction, max_pixels, 0,
                                      &paths, &rels)
                 : cli_collect_images_rel(CMD, argv + optind, argc - optind, &paths, &rels);
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
    if (cld_out_prepare(CMD, &oo)) goto done;
    stems = cld_output_stems(CMD, paths, rels, n);
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
    const cld_out_dirs dirs = {grids_dir, maps_dir, ov_dir, maps_tiff};

    cld_table t;
    if (cld_table_begin(&t, format, 1, 1, 1, have_thr, thr)) {
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
        cJSON_AddNumberToObject(set, "max_pixels", (double)max_pixels);
        cJSON_AddStringToObject(set, "maps_format", maps_tiff ? "tiff" : "npy");
    }
    cli_meter meter;
    cli_meter_begin(&meter, "predict: images", n);
    for (int i = 0; i < n; i++) {
        double t0 = cli_now();
        ad_image img = {0};
        ad_result r = {0};
        cld_out_files files = {0};
        ad_status st = adi_io_read_image_max(paths[i], max_pixels, &img);
        if (st == AD_OK) {
            st = cld_predict(bank, ctx, &img, mask, &r, NULL, NULL);
            if (st != AD_OK) adi_error_prefix("%s", paths[i]);
        }
        double ms = 1e3 * (cli_now() - t0);
        if (st != AD_OK) {
            cld_table_fail(&t, CMD, paths[i], ad_errmsg());
        } else if (cld_write_outputs(&dirs, stems[i], r.grid, r.grid_h, r.grid_w, img.width,
                                     img.height, &img, paths[i], &op, &files) != AD_OK) {
            char why[600];
            snprintf(why, sizeof why, "writing outputs: %s", ad_errmsg());
            cld_table_fail(&t, CMD, paths[i], why);
        } else {
            cld_table_row(&t, paths[i], r.score, r.verdict, ms, &files);
        }
        cld_out_files_free(&files);
        ad_result_free(&r);
        ad_image_free(&img);
        cli_meter_step(&meter, i + 1);
    }
    cli_meter_end(&meter);
    rc = cld_table_end(&t, CMD);

done:
    cli_free_list(stems, n);
    cli_free_list(paths, n);
    cli_free_list(rels, n);
    ad_context_free(ctx);
    ad_model_free(m);
    ad_bank_free(bank);
    return rc;
}
