/* anomalydino info: the configuration inferred from a weights file. */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#define CMD "info"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: anomalydino info -m WEIGHTS [--json]\n\n"
            "Prints the configuration inferred from the tensors of a DINOv2 checkpoint (.pth hub\n"
            "checkpoint or Hugging Face .safetensors).\n\n"
            "  -m, --model WEIGHTS   the weights file\n"
            "      --json            one JSON object instead of text\n"
            "  -h, --help            this help\n\n"
            "Exit status: 0 success, 1 the weights cannot be read, 2 wrong usage.\n");
}

static const char *interp_name(ad_pos_interp p)
{
    return p == AD_POS_ANTIALIAS ? "bicubic-antialias" : "bicubic-scale-factor";
}

int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *weights = NULL;
    int json = 0, c;
    while ((c = getopt_long(argc, argv, ":m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': weights = optarg; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: return cli_getopt_error(CMD, c, argv);
        }
    }
    if (!weights || optind != argc) {
        cli_error(CMD, "%s", !weights ? "-m WEIGHTS is required" : "unexpected argument");
        usage(stderr);
        return 2;
    }
    ad_model *m = ad_model_load(weights);
    if (!m) {
        cli_error(CMD, "%s", ad_errmsg());
        return 1;
    }
    ad_model_info i = ad_model_get_info(m);
    char fp[24];
    snprintf(fp, sizeof fp, "%016" PRIx64, i.fingerprint);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", i.name);
        cJSON_AddStringToObject(o, "format", i.format);
        cJSON_AddStringToObject(o, "dtype", i.dtype);
        cJSON_AddNumberToObject(o, "dim", i.dim);
        cJSON_AddNumberToObject(o, "depth", i.depth);
        cJSON_AddNumberToObject(o, "heads", i.heads);
        cJSON_AddNumberToObject(o, "head_dim", i.head_dim);
        cJSON_AddStringToObject(o, "ffn", i.swiglu ? "swiglu" : "mlp-gelu");
        cJSON_AddNumberToObject(o, "ffn_hidden", i.ffn_hidden);
        cJSON_AddNumberToObject(o, "registers", i.n_registers);
        cJSON_AddNumberToObject(o, "patch_size", i.patch_size);
        cJSON_AddNumberToObject(o, "pos_grid", i.pos_grid);
        cJSON_AddStringToObject(o, "pos_interp", interp_name(i.pos_interp));
        cJSON_AddNumberToObject(o, "params", (double)i.n_params);
        cJSON_AddStringToObject(o, "fingerprint", fp);
        char *s = cJSON_Print(o);
        if (s) printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
    } else {
        printf("weights      %s\n", weights);
        printf("model        %s\n", i.name);
        printf("format       %s (%s)\n", i.format, i.dtype);
        printf("width        %d\n", i.dim);
        printf("depth        %d blocks\n", i.depth);
        printf("heads        %d x %d\n", i.heads, i.head_dim);
        printf("ffn          %s, hidden %d\n", i.swiglu ? "SwiGLU" : "MLP + GELU", i.ffn_hidden);
        printf("registers    %d\n", i.n_registers);
        printf("patch        %d x %d\n", i.patch_size, i.patch_size);
        printf("pos-embed    %d x %d grid, %s\n", i.pos_grid, i.pos_grid,
               i.pos_interp == AD_POS_ANTIALIAS ? "antialiased bicubic to the grid size"
                                                : "bicubic, scale factor (g+0.1)/37");
        printf("parameters   %" PRIu64 "\n", i.n_params);
        printf("fingerprint  %s\n", fp);
    }
    ad_model_free(m);
    return 0;
}
