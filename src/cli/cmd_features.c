/* anomalydino features: DINOv2 patch features of one image as float32 .npy (N x D). */
#include "cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define CMD "features"
#define DEFAULT_RESOLUTION 448 /* run_anomalydino.py --resolution default (design.md) */
#define MAX_LAYERS 64

static void usage(FILE *f)
{
    fprintf(f,
            "usage: anomalydino features -m WEIGHTS IMAGE -o OUT.npy [options]\n\n"
            "Writes the final-LayerNorm patch tokens of IMAGE (PNG or JPEG) as a float32 .npy of\n"
            "shape (N, D), N = grid_h * grid_w patches in row-major order (CLS and registers\n"
            "dropped), as the official get_intermediate_layers(x, n=1, norm=True).\n\n"
            "  -m, --model WEIGHTS   DINOv2 weights (.pth hub checkpoint or .safetensors)\n"
            "  -o, --out OUT.npy     patch tokens\n"
            "      --cls OUT.npy     also the CLS token after the final norm, shape (D)\n"
            "      --resolution S    smaller image edge S with Pillow's bicubic resize first\n"
            "                        (default %d), then top-left crop to multiples of 14\n"
            "      --no-resize       the decoded image as is (cropped to multiples of 14)\n"
            "      --layers L1,L2    outputs of these 0-based blocks instead of the last one\n"
            "                        (negative: from the end, -1 = last), each through the final\n"
            "                        norm: one file per layer, OUT_layerK.npy with K the 0-based\n"
            "                        block (and CLS_layerK.npy for --cls CLS.npy)\n"
            "      --no-norm         with --layers: the raw block outputs (no final norm)\n"
            "      --threads N       threads (default: all cores)\n"
            "  -h, --help            this help\n\n"
            "Exit status: 0 success, 1 failure (weights, image, output), 2 wrong usage.\n",
            DEFAULT_RESOLUTION);
}

/* "dir/name.npy" + k -> "dir/name_layerK.npy" (".npy" appended when the name lacks it). */
static char *layer_path(const char *base, int k)
{
    size_t n = strlen(base);
    const char *ext = n >= 4 && !strcmp(base + n - 4, ".npy") ? base + n - 4 : base + n;
    size_t stem = (size_t)(ext - base), len = stem + 32;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%.*s_layer%d.npy", (int)stem, base, k);
    return p;
}

static int parse_layers(const char *s, int *layers, int *n)
{
    char buf[512];
    if (strlen(s) >= sizeof buf) {
        cli_error(CMD, "--layers: list too long");
        return -1;
    }
    strcpy(buf, s);
    *n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n == MAX_LAYERS) {
            cli_error(CMD, "--layers: at most %d layers", MAX_LAYERS);
            return -1;
        }
        if (cli_parse_int(CMD, "--layers", t, -100000, 100000, &layers[*n])) return -1;
        (*n)++;
    }
    if (!*n) {
        cli_error(CMD, "--layers: empty list");
        return -1;
    }
    return 0;
}

static int write_features(const ad_features *f, const char *patch_path, const char *cls_path)
{
    size_t shape[2] = {(size_t)f->grid_h * f->grid_w, (size_t)f->dim};
    if (adi_npy_write(patch_path, AD_NPY_F4, f->patch, 2, shape) != AD_OK) {
        cli_error(CMD, "%s", ad_errmsg());
        return -1;
    }
    printf("%s: %zu x %zu float32 (grid %d x %d)\n", patch_path, shape[0], shape[1], f->grid_h,
           f->grid_w);
    if (cls_path) {
        size_t cs = (size_t)f->dim;
        if (adi_npy_write(cls_path, AD_NPY_F4, f->cls, 1, &cs) != AD_OK) {
            cli_error(CMD, "%s", ad_errmsg());
            return -1;
        }
        printf("%s: %zu float32 (CLS)\n", cls_path, cs);
    }
    return 0;
}

int cmd_features(int argc, char **argv)
{
    enum { OPT_CLS = 256, OPT_RES, OPT_NORESIZE, OPT_LAYERS, OPT_NONORM, OPT_THREADS };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"out", required_argument, 0, 'o'},
        {"cls", required_argument, 0, OPT_CLS},
        {"resolution", required_argument, 0, OPT_RES},
        {"no-resize", no_argument, 0, OPT_NORESIZE},
        {"layers", required_argument, 0, OPT_LAYERS},
        {"no-norm", no_argument, 0, OPT_NONORM},
        {"threads", required_argument, 0, OPT_THREADS},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *weights = NULL, *out = NULL, *cls = NULL;
    int resolution = DEFAULT_RESOLUTION, res_given = 0, no_resize = 0, threads = 0, norm = 1;
    int layers[MAX_LAYERS], n_layers = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":m:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': weights = optarg; break;
        case 'o': out = optarg; break;
        case OPT_CLS: cls = optarg; break;
        case OPT_RES:
            if (cli_parse_int(CMD, "--resolution", optarg, 14, 16384, &resolution)) return 2;
            res_given = 1;
            break;
        case OPT_NORESIZE: no_resize = 1; break;
        case OPT_LAYERS:
            if (parse_layers(optarg, layers, &n_layers)) return 2;
            break;
        case OPT_NONORM: norm = 0; break;
        case OPT_THREADS:
            if (cli_parse_int(CMD, "--threads", optarg, 0, 1024, &threads)) return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_getopt_error(CMD, c, argv);
        }
    }
    if (!weights || !out || optind != argc - 1) {
        cli_error(CMD, "%s",
                  !weights ? "-m WEIGHTS is required"
                  : !out   ? "-o OUT.npy is required"
                           : "exactly one IMAGE is required");
        usage(stderr);
        return 2;
    }
    if (no_resize && res_given) {
        cli_error(CMD, "--resolution and --no-resize exclude each other");
        return 2;
    }
    if (!norm && !n_layers) {
        cli_error(CMD, "--no-norm applies to --layers only");
        return 2;
    }
    if (cls && !strcmp(cls, out)) { /* the CLS file would overwrite the patch tokens */
        cli_error(CMD, "-o and --cls name the same file '%s'", out);
        return 2;
    }
    const char *image = argv[optind];
    if (no_resize) resolution = 0;

    ad_image img = {0};
    if (adi_io_read_image(image, &img) != AD_OK) {
        cli_error(CMD, "%s", ad_errmsg());
        return 1;
    }
    ad_model *m = ad_model_load(weights);
    if (!m) {
        cli_error(CMD, "%s", ad_errmsg());
        ad_image_free(&img);
        return 1;
    }
    /* Two entries naming the same block (e.g. 11 and -1 of a 12-block model) would write the
     * same OUT_layerK.npy twice. */
    int depth0 = ad_model_get_info(m).depth;
    for (int i = 0; i < n_layers; i++)
        for (int j = 0; j < i; j++) {
            int ki = layers[i] < 0 ? depth0 + layers[i] : layers[i];
            int kj = layers[j] < 0 ? depth0 + layers[j] : layers[j];
            if (ki == kj && ki >= 0 && ki < depth0) {
                cli_error(CMD, "--layers: %d and %d are the same block (%d of a %d-block model)",
                          layers[j], layers[i], ki, depth0);
                ad_model_free(m);
                ad_image_free(&img);
                return 2;
            }
        }
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = threads;
    ad_context *ctx = ad_context_new(m, cp);
    int rc = ctx ? 0 : 1;
    if (!ctx) cli_error(CMD, "%s", ad_errmsg());

    double t0 = cli_now();
    if (!rc && !n_layers) {
        ad_features f = {0};
        if (ad_extract_image(ctx, &img, resolution, &f) != AD_OK) {
            cli_error(CMD, "%s: %s", image, ad_errmsg());
            rc = 1;
        } else {
            cli_progress("%s: %d x %d patches in %.3f s", image, f.grid_h, f.grid_w,
                         cli_now() - t0);
            if (write_features(&f, out, cls)) rc = 1;
        }
        ad_features_free(&f);
    } else if (!rc) {
        ad_input in = {0};
        ad_features fs[MAX_LAYERS];
        memset(fs, 0, sizeof fs);
        if (ad_preprocess(&img, resolution, &in) != AD_OK ||
            ad_extract_layers(ctx, &in, layers, n_layers, norm, fs) != AD_OK) {
            cli_error(CMD, "%s: %s", image, ad_errmsg());
            rc = 1;
        } else {
            int depth = ad_model_get_info(m).depth;
            cli_progress("%s: %d layers of %d x %d patches in %.3f s", image, n_layers,
                         fs[0].grid_h, fs[0].grid_w, cli_now() - t0);
            for (int i = 0; i < n_layers && !rc; i++) {
                int k = layers[i] < 0 ? depth + layers[i] : layers[i];
                char *pp = layer_path(out, k), *cp2 = cls ? layer_path(cls, k) : NULL;
                if (!pp || (cls && !cp2)) {
                    cli_error(CMD, "out of memory");
                    rc = 1;
                } else if (write_features(&fs[i], pp, cp2)) {
                    rc = 1;
                }
                free(pp);
                free(cp2);
            }
        }
        for (int i = 0; i < n_layers; i++) ad_features_free(&fs[i]);
        ad_input_free(&in);
    }
    ad_context_free(ctx);
    ad_model_free(m);
    ad_image_free(&img);
    return rc;
}
