/* anomalydino dataset: what a dataset layout yields (categories, references, test images, the
 * split) and, with --manifest, the same lists as a manifest CSV to inspect or edit. */
#include "cli/cli.h"
#include "protocol/dataset.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define CMD "dataset"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: anomalydino dataset LAYOUT ROOT [--manifest OUT.csv] [options]\n\n"
            "Opens ROOT as LAYOUT (mvtec, visa, folder, ksdd, mtd, manifest; see anomalydino\n"
            "eval --help) exactly as eval does, prints per category the number of references\n"
            "and test images (good / defective / with a mask) and the notes of what was left\n"
            "out, and with --manifest writes the lists as category,split,image,label,mask rows:\n"
            "eval --dataset manifest --data OUT.csv then uses the same images, and the CSV can\n"
            "be edited to change the split. Paths in OUT.csv are relative to its folder when\n"
            "the images lie below it, absolute otherwise.\n\n"
            "      --manifest OUT.csv  write the manifest\n"
            "      --categories a,b    only these categories\n"
            "      --train-fraction F  ksdd/mtd split: the first F of the good images (sorted by\n"
            "                          path) are references (default 0.5)\n"
            "      --max-pixels N      limit for the masks read to label KolektorSDD parts\n"
            "                          (default 40M; 0 = no limit)\n"
            "      --format F          text (default) or json summary on stdout\n"
            "  -h, --help              this help\n\n"
            "Exit status: 0 opened (notes may list left-out files), 1 the layout did not match\n"
            "or the manifest could not be written, 2 wrong usage.\n");
}

int cmd_dataset(int argc, char **argv)
{
    static const struct option opts[] = {
        {"manifest", required_argument, 0, 'o'},
        {"categories", required_argument, 0, 'c'},
        {"train-fraction", required_argument, 0, 'F'},
        {"max-pixels", required_argument, 0, 'P'},
        {"format", required_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *manifest = NULL, *cats_arg = NULL;
    ds_options o = ds_default_options();
    o.max_pixels = CLI_DEFAULT_MAX_PIXELS;
    int json = 0, c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': manifest = optarg; break;
        case 'c': cats_arg = optarg; break;
        case 'F':
            if (cli_parse_double(CMD, "--train-fraction", optarg, 0.0, 1.0, &o.train_fraction))
                return 2;
            break;
        case 'P':
            if (cli_parse_max_pixels(CMD, optarg, &o.max_pixels)) return 2;
            break;
        case 'f':
            if (!strcmp(optarg, "json")) json = 1;
            else if (!strcmp(optarg, "text")) json = 0;
            else {
                cli_error(CMD, "--format '%s': expected text or json", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_getopt_error(CMD, c, argv);
        }
    }
    if (argc - optind != 2) {
        cli_error(CMD, "expected LAYOUT and ROOT (anomalydino dataset --help)");
        return 2;
    }
    ds_kind kind;
    if (ds_kind_parse(argv[optind], &kind) != AD_OK) {
        cli_error(CMD, "%s", ad_errmsg());
        return 2;
    }
    const char *root = argv[optind + 1];
    char **cats = NULL;
    int n_cats = 0;
    if (cats_arg) {
        char *buf = strdup(cats_arg);
        for (char *sv = NULL, *t = buf ? strtok_r(buf, ",", &sv) : NULL; t;
             t = strtok_r(NULL, ",", &sv)) {
            char **v = realloc(cats, (size_t)(n_cats + 1) * sizeof *v);
            if (!v) break;
            cats = v;
            cats[n_cats++] = strdup(t);
        }
        free(buf);
        if (!n_cats) {
            cli_error(CMD, "--categories: empty list");
            return 2;
        }
    }
    ds_dataset d;
    int rc = 1;
    if (ds_open_ex(kind, root, cats, n_cats, &o, &d) != AD_OK) {
        cli_error(CMD, "%s", ad_errmsg());
        cli_free_list(cats, n_cats);
        return 1;
    }
    for (int i = 0; i < d.warnings.n; i++)
        fprintf(stderr, "anomalydino %s: note: %s\n", CMD, d.warnings.v[i]);
    for (int i = 0; i < d.errors.n; i++) cli_error(CMD, "%s", d.errors.v[i]);

    cJSON *doc = json ? cJSON_CreateObject() : NULL;
    cJSON *jc = NULL;
    if (doc) {
        cJSON_AddStringToObject(doc, "layout", ds_kind_name(kind));
        cJSON_AddStringToObject(doc, "root", d.root);
        if (kind == DS_KSDD || kind == DS_MTD)
            cJSON_AddNumberToObject(doc, "train_fraction", o.train_fraction);
        jc = cJSON_AddArrayToObject(doc, "categories");
    } else {
        printf("%s (%s)\n", d.root, ds_kind_name(kind));
        printf("%-16s %10s %6s %6s %8s %6s\n", "category", "references", "test", "good", "defect",
               "masks");
    }
    for (int i = 0; i < d.n_cats; i++) {
        const ds_category *cat = &d.cats[i];
        int good = 0, bad = 0, masks = 0;
        for (int k = 0; k < cat->n_test; k++) {
            if (cat->test[k].defect) bad++;
            else good++;
            masks += cat->test[k].mask_path != NULL;
        }
        if (doc) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "name", cat->name);
            cJSON_AddNumberToObject(x, "references", cat->n_train);
            cJSON_AddNumberToObject(x, "test", cat->n_test);
            cJSON_AddNumberToObject(x, "test_good", good);
            cJSON_AddNumberToObject(x, "test_defect", bad);
            cJSON_AddNumberToObject(x, "masks", masks);
            cJSON_AddItemToArray(jc, x);
        } else {
            printf("%-16s %10d %6d %6d %8d %6d\n", cat->name, cat->n_train, cat->n_test, good,
                   bad, masks);
        }
    }
    rc = 0;
    if (manifest) {
        if (ds_write_manifest(&d, manifest) != AD_OK) {
            cli_error(CMD, "%s", ad_errmsg());
            rc = 1;
        } else if (doc) {
            cJSON_AddStringToObject(doc, "manifest", manifest);
        } else {
            printf("manifest written: %s\n", manifest);
        }
    }
    if (doc) {
        cJSON *n = cJSON_AddArrayToObject(doc, "notes");
        for (int i = 0; i < d.warnings.n; i++) cJSON_AddItemToArray(n, cJSON_CreateString(d.warnings.v[i]));
        cJSON *e = cJSON_AddArrayToObject(doc, "errors");
        for (int i = 0; i < d.errors.n; i++) cJSON_AddItemToArray(e, cJSON_CreateString(d.errors.v[i]));
        char *txt = cJSON_Print(doc);
        if (txt) puts(txt);
        free(txt);
        cJSON_Delete(doc);
    }
    ds_free(&d);
    cli_free_list(cats, n_cats);
    return rc;
}
