/* anomalydino zeroshot: batched zero-shot scoring (paper Appendix D) - no reference images; each
 * image is scored against the patches of all the other images of the batch. */
#include "cli/cli_detect.h"
#include "image/image.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define CMD "zeroshot"
/* run_anomalydino_batched.py defaults: resolution 672, preprocess masking_only. */
#define ZS_DEFAULT_RESOLUTION 672
#define ZS_DEFAULT_PRESET "masking_only"
/* The original demo notebook's vmax for cosine-distance maps (no threshold in zero-shot). */
#define ZS_DEFAULT_VMAX 0.5

static void usage(FILE *f)
{
    fprintf(f,
            "usage: anomalydino zeroshot -m WEIGHTS [options] IMAGE_OR_DIR...\n\n"
            "Batched zero-shot detection (no reference images): every patch of an image is\n"
            "compared with the patches of all the other images (M patches); its score is the mean\n"
            "of the cosine distances below the k-th smallest, k = max(1, int(0.001*M)); the image\n"
            "score is the mean of its top 1 %% patch scores. Works when most images of the batch\n"
            "are good. Folders are walked (.png .jpg .jpeg); at least 2 images.\n"
            "Prints image,score,grid,map,overlay (CSV, header first; the last three name the\n"
            "files written for the image, empty when not asked for).\n\n"
            "  -m, --model WEIGHTS   DINOv2 weights (.pth hub checkpoint or .safetensors)\n"
            "      --resolution S    smaller image edge (default %d, as the original; 0 = no\n"
            "                        resize)\n"
            "      --mask, --no-mask PCA-mask the background of each image (default: off, or\n"
            "                        the preset's); masked patches score 0 but stay references\n"
            "      --preset P        with --dataset mvtec|visa (default mvtec) --category C:\n"
            "                        masking as the original (default preset %s)\n"
            "      --grids DIR       patch score grid per image, DIR/STEM.npy (float32)\n"
            "      --maps DIR        full-resolution anomaly map, DIR/STEM.npy (float32, H x W)\n"
            "      --maps-format F   npy (default) or tiff (DIR/STEM.tiff, float32 TIFF)\n"
            "      --overlays DIR    heat map over the image, DIR/STEM.png, fixed colour scale\n"
            "                        0..--vmax (default %.1f)\n"
            "      --vmax V          top of the overlay colour scale\n"
            "      --format F        csv (default) or json\n"
            "      --max-pixels N    refuse images larger than N pixels, from the file header\n"
            "                        before decoding (default 40M; 0 = no limit)\n"
            "      --threads N       threads (default: all cores)\n"
            "  -h, --help            this help\n\n"
            "Every image is decoded once before the weights are loaded, so that a batch with\n"
            "fewer than 2 readable images is refused at once. Features are extracted once per\n"
            "image and kept in memory (about 3.5 MB per image for ViT-S at 672). STEM is named\n"
            "as in predict (the path below the folder given). An unreadable image is reported\n"
            "and left out of the batch.\n\n"
            "Exit status: 0 every image scored, 1 an image failed or too few were readable, 2\n"
            "wrong usage.\n",
            ZS_DEFAULT_RESOLUTION, ZS_DEFAULT_PRESET, ZS_DEFAULT_VMAX);
}

typedef struct {
    int path;        /* index into the input list */
    int w, h;        /* original image size, for the maps */
    ad_features f;
    uint8_t *keep;   /* NULL without masking */
    double *grid;
} zs_item;

int cmd_zeroshot(int argc, char **argv)
{
    enum { O_RES = 256, O_PRESET, O_DATASET, O_CATEGORY };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},         {"resolution", required_argument, 0, O_RES},
        {"preset", required_argument, 0, O_PRESET},   {"dataset", required_argument, 0, O_DATASET},
        {"category", required_argument, 0, O_CATEGORY}, CLD_OUT_LONGOPTS,
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0}};
    const char *weights = NULL, *preset = NULL, *dataset = NULL, *category = NULL;
    int resolution = ZS_DEFAULT_RESOLUTION, c;
    cld_out_opts oo;
    cld_out_opts_init(&oo, ZS_DEFAULT_VMAX);
    while ((c = getopt_long(argc, argv, ":m:h", opts, NULL)) != -1) {
        int k = cld_out_option(CMD, c, optarg, &oo);
        if (k < 0) return 2;
        if (k) continue;
        switch (c) {
        case 'm': weights = optarg; break;
        case O_RES:
            if (cli_parse_int(CMD, "--resolution", optarg, 0, 8192, &resolution)) return 2;
            break;
        case O_PRESET: preset = optarg; break;
        case O_DATASET: dataset = optarg; break;
        case O_CATEGORY: category = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_getopt_error(CMD, c, argv);
        }
    }
    const char *grids_dir = oo.grids, *maps_dir = oo.maps, *ov_dir = oo.overlays;
    int mask = oo.mask, threads = oo.threads, maps_tiff = oo.maps_tiff;
    size_t max_pixels = oo.max_pixels;
    double vmax = oo.vmax;
    cld_format format = oo.format;
    if (!weights) {
        cli_error(CMD, "-m WEIGHTS is required (anomalydino zeroshot --help)");
        return 2;
    }
    if (optind >= argc) {
        cli_error(CMD, "no images given (anomalydino zeroshot --help)");
        return 2;
    }
    if (cld_distinct_npy_dirs(CMD, grids_dir, maps_dir)) return 2;
    if (preset || dataset || category) {
        int pm, pr;
        if (cld_preset(CMD, preset ? preset : ZS_DEFAULT_PRESET, dataset, category, &pm, &pr))
            return 2;
        if (mask < 0) mask = pm;
    }
    if (mask < 0) mask = 0;

    int rc = 1;
    char **paths = NULL, **stems = NULL, **rels = NULL;
    int n = cli_collect_images_rel(CMD, argv + optind, argc - optind, &paths, &rels);
    if (n < 0) return 1;
    ad_model *m = NULL;
    ad_context *ctx = NULL;
    zs_item *items = calloc((size_t)n, sizeof *items);
    ad_features *feats = calloc((size_t)n, sizeof *feats);
    const uint8_t **keeps = calloc((size_t)n, sizeof *keeps);
    double **grids = calloc((size_t)n, sizeof *grids);
    uint8_t *readable = calloc((size_t)n, 1);
    int n_ok = 0, n_readable = 0;
    cld_table t;
    int table_open = 0;
    if (!items || !feats || !keeps || !grids || !readable) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    if (cld_table_begin(&t, format, 0, 0, 0, 0, 0)) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    table_open = 1;
    /* Readable images first (decoding is fast next to the features): a batch that cannot be
     * scored is refused before the weights are loaded and any feature is extracted. */
    {
        cli_meter cm;
        cli_meter_begin(&cm, "zeroshot: checking images", n);
        for (int i = 0; i < n; i++) {
            ad_image img = {0};
            if (adi_io_read_image_max(paths[i], max_pixels, &img) == AD_OK) {
                readable[i] = 1;
                n_readable++;
            } else {
                cld_table_fail(&t, CMD, paths[i], ad_errmsg());
            }
            ad_image_free(&img);
            cli_meter_step(&cm, i + 1);
        }
        cli_meter_end(&cm);
    }
    if (n_readable < 2) {
        cli_error(CMD, "needs at least 2 readable images (got %d of %d): each image is scored "
                       "against the others", n_readable, n);
        goto done;
    }
    if (cld_load_model(CMD, weights, threads, &m, &ctx)) goto done;
    if (cld_out_prepare(CMD, &oo)) goto done;
    stems = cld_output_stems(CMD, paths, rels, n);
    if (!stems) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    cJSON *set = cld_table_settings(&t);
    if (set) {
        cJSON_AddNumberToObject(set, "resolution", resolution);
        cJSON_AddBoolToObject(set, "mask", mask);
        if (ov_dir) cJSON_AddNumberToObject(set, "vmax", vmax);
        cJSON_AddNumberToObject(set, "max_pixels", (double)max_pixels);
        cJSON_AddStringToObject(set, "maps_format", maps_tiff ? "tiff" : "npy");
    }

    /* Features once per image. */
    double t_feat = cli_now();
    cli_meter fm;
    cli_meter_begin(&fm, "zeroshot: features", n_readable);
    for (int i = 0, done_i = 0; i < n; i++) {
        if (!readable[i]) continue;
        zs_item *it = &items[n_ok];
        ad_image img = {0};
        ad_status st = adi_io_read_image_max(paths[i], max_pixels, &img);
        if (st == AD_OK) {
            it->w = img.width;
            it->h = img.height;
            st = ad_extract_image(ctx, &img, resolution, &it->f);
            if (st != AD_OK) adi_error_prefix("%s", paths[i]);
        }
        ad_image_free(&img);
        size_t cells = st == AD_OK ? (size_t)it->f.grid_h * (size_t)it->f.grid_w : 0;
        if (st == AD_OK && mask) {
            it->keep = malloc(cells);
            if (!it->keep) st = adi_fail(AD_E_NOMEM, "%s: out of memory", paths[i]);
            else if ((st = ad_mask_pca(&it->f, it->keep)) != AD_OK)
                adi_error_prefix("%s: mask", paths[i]);
        }
        if (st == AD_OK) {
            it->grid = malloc(cells * sizeof *it->grid);
            if (!it->grid) st = adi_fail(AD_E_NOMEM, "%s: out of memory", paths[i]);
        }
        cli_meter_step(&fm, ++done_i);
        if (st != AD_OK) {
            cld_table_fail(&t, CMD, paths[i], ad_errmsg());
            ad_features_free(&it->f);
            free(it->keep);
            free(it->grid);
            memset(it, 0, sizeof *it);
            continue;
        }
        it->path = i;
        feats[n_ok] = it->f;
        keeps[n_ok] = it->keep;
        grids[n_ok] = it->grid;
        n_ok++;
    }
    cli_meter_end(&fm);
    t_feat = cli_now() - t_feat;
    if (n_ok < 2) {
        cli_error(CMD, "needs at least 2 readable images (got %d): each image is scored against "
                       "the others", n_ok);
        goto done;
    }

    cli_progress("zeroshot: all-pairs search over %d images ...", n_ok);
    double t_score = cli_now();
    if (ad_zeroshot(ctx, feats, keeps, n_ok, grids) != AD_OK) {
        cli_error(CMD, "%s", ad_errmsg());
        goto done;
    }
    t_score = cli_now() - t_score;
    cli_progress("zeroshot: %d images, features %.1f s, all-pairs scoring %.1f s", n_ok, t_feat,
                 t_score);

    const cld_out_dirs dirs = {grids_dir, maps_dir, ov_dir, maps_tiff};
    adi_overlay_params op = adi_overlay_default_params();
    op.vmax = (float)vmax; /* no threshold in zero-shot mode: nothing outlined */
    for (int j = 0; j < n_ok; j++) {
        zs_item *it = &items[j];
        const char *path = paths[it->path], *stem = stems[it->path];
        double score = ad_score_top1p(it->grid, (size_t)it->f.grid_h * (size_t)it->f.grid_w);
        cld_out_files files = {0};
        ad_status st = cld_write_outputs(&dirs, stem, it->grid, it->f.grid_h, it->f.grid_w,
                                         it->w, it->h, NULL, path, &op, &files);
        if (st != AD_OK) {
            char why[600];
            snprintf(why, sizeof why, "writing outputs: %s", ad_errmsg());
            cld_table_fail(&t, CMD, path, why);
            continue;
        }
        cld_table_row(&t, path, score, AD_VERDICT_NONE, 0, &files);
        cld_out_files_free(&files);
    }
    rc = 0;

done:
    if (table_open) {
        int trc = cld_table_end(&t, CMD);
        if (rc == 0) rc = trc;
    }
    if (items)
        for (int j = 0; j < n_ok; j++) {
            ad_features_free(&items[j].f);
            free(items[j].keep);
            free(items[j].grid);
        }
    free(items);
    free(feats);
    free(keeps);
    free(grids);
    free(readable);
    cli_free_list(rels, n);
    cli_free_list(stems, n);
    cli_free_list(paths, n);
    ad_context_free(ctx);
    ad_model_free(m);
    return rc;
}
