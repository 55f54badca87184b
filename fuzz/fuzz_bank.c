/* libFuzzer target: memory bank files (.adbank) from an in-memory file; what a loaded bank
 * reports is read back, and a loaded search index is searched. */
#include "fuzz.h"
#include "detect/detect.h"

#include <stdlib.h>


int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_single_thread();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ad_bank *b = dt_bank_load_mem(data, size, "fuzz");
    if (!b) return 0;
    ad_bank_params p = ad_bank_get_params(b);
    double thr;
    volatile size_t sink = ad_bank_rows(b) + (size_t)ad_bank_images(b) + (size_t)p.knn_k +
                           (size_t)ad_bank_threshold(b, &thr);
    (void)sink;
    /* a loaded index is searched: its lists, offsets and copy must hold together */
    ad_index_info ii;
    if (ad_bank_index_get(b, &ii) && b->dim <= 1024 && p.knn_k <= 8) {
        enum { NQ = 4 };
        float *x = calloc((size_t)NQ * (size_t)b->dim, sizeof *x);
        double grid[NQ];
        if (x) {
            for (size_t i = 0; i < (size_t)NQ * (size_t)b->dim; i++) x[i] = (float)((i * 7919) % 13) - 6.0f;
            ad_features f = {1, NQ, b->dim, x, NULL};
            (void)ad_bank_query(b, NULL, &f, NULL, -1, grid);
            (void)ad_bank_query(b, NULL, &f, NULL, 0, grid);
            free(x);
        }
    }
    ad_bank_free(b);
    return 0;
}
