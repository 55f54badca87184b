/* libFuzzer target: the SCORES.csv of `anomalydino metrics` (image,label,score[,map,mask]),
 * through the command's own reader and the image and pixel metrics. The map and mask files a
 * row names are made in memory from the path text itself (no disk): a path of n bytes is a
 * (1 + byte0 % 3) x ceil(n / rows) grid whose values are the path's bytes (maps: byte / 255;
 * masks: odd byte = anomalous). A path starting with '!' fails to read. So the CSV alone decides
 * the maps, masks, their sizes and mismatches, all-normal and all-anomalous masks included. */
#include "fuzz.h"
#include "cli/cli.h"
#include "core/core.h"

#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_single_thread();
    return 0;
}

static ad_status grid_of(const char *path, size_t *rows, size_t *cols)
{
    size_t n = strlen(path);
    if (n == 0 || path[0] == '!' || n > 4096)
        return adi_fail(AD_E_IO, "%s: cannot open (fuzz)", path);
    *rows = 1 + (unsigned char)path[0] % 3;
    *cols = (n + *rows - 1) / *rows;
    return AD_OK;
}

static ad_status read_map(void *ctx, const char *path, adi_npy *out)
{
    (void)ctx;
    size_t r, c, n = strlen(path);
    ad_status st = grid_of(path, &r, &c);
    if (st) return st;
    float *v = adi_alloc(r * c, sizeof *v);
    if (!v) return AD_E_NOMEM;
    for (size_t i = 0; i < r * c; i++) v[i] = (float)(unsigned char)path[i % n] / 255.0f;
    memset(out, 0, sizeof *out);
    out->dtype = AD_NPY_F4;
    out->ndim = 2;
    out->shape[0] = r;
    out->shape[1] = c;
    out->count = r * c;
    out->data = v;
    return AD_OK;
}

static ad_status read_mask(void *ctx, const char *path, uint8_t **out, int *w, int *h)
{
    (void)ctx;
    size_t r, c, n = strlen(path);
    ad_status st = grid_of(path, &r, &c);
    if (st) return st;
    uint8_t *m = adi_alloc(r * c, 1);
    if (!m) return AD_E_NOMEM;
    for (size_t i = 0; i < r * c; i++) m[i] = ((unsigned char)path[i % n] & 1) ? 255 : 0;
    *out = m;
    *w = (int)c;
    *h = (int)r;
    return AD_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    cli_metrics_io io = {read_map, read_mask, NULL};
    char json[1024];
    cli_metrics_eval("scores.csv", text, size, &io, json, sizeof json);
    free(text);
    return 0;
}
