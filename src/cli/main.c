/* anomalydino: command dispatcher. */
#include "cli/cli.h"
#ifdef AD_WITH_SERVE
#include "serve/serve.h"
#endif

#include <getopt.h>
#include <string.h>

typedef struct {
    const char *name;
    cli_command_fn fn;
    const char *summary;
} command;

static const command commands[] = {
    /* commands are registered here as they land */
    {"info", cmd_info, "print the configuration inferred from a weights file"},
    {"features", cmd_features, "DINOv2 patch features of an image as .npy"},
    {"fit", cmd_fit, "build a memory bank (+ decision threshold) from good images"},
    {"predict", cmd_predict, "score images against a bank: score, OK/NG verdict, maps"},
    {"zeroshot", cmd_zeroshot, "batched zero-shot scoring of a set of images, no references"},
    {"eval", cmd_eval, "benchmark evaluation (MVTec AD, VisA, KolektorSDD, MTD, folder, manifest)"},
    {"eval-merge", cmd_eval_merge, "combine the shards of eval --shard I/N into one set of results"},
    {"metrics", cmd_metrics, "AUROC/AP/F1-max and pixel AU-PRO from a scores CSV"},
    {"dataset", cmd_dataset, "what a dataset layout yields; --manifest writes it as a CSV"},
    {"bank", cmd_bank, "grow a bank (bank add) and show what it holds (bank info)"},
#ifdef AD_WITH_SERVE
    {"serve", cmd_serve, "HTTP service: OK/NG verdicts and heat maps from loaded banks"},
#endif
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fprintf(f,
            "anomalydino %s - training-free anomaly detection with DINOv2 (AnomalyDINO)\n\n"
            "usage: anomalydino <command> [options]   (anomalydino <command> --help for details)\n\n"
            "commands:\n",
            ad_version());
    for (const command *c = commands; c->name; c++) fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\nexit status: 0 success, 1 the work failed (bad input file, ...), 2 wrong usage\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("anomalydino %s\n", ad_version());
        return 0;
    }
    for (const command *c = commands; c->name; c++) {
        if (!strcmp(argv[1], c->name)) {
            optind = 1;
            return c->fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "anomalydino: unknown command '%s' (see anomalydino --help)\n", argv[1]);
    return 2;
}
