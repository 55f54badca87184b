/* libFuzzer target: memory bank files (.adbank) from an in-memory file; what a loaded bank
 * reports is read back. */
#include "fuzz.h"
#include "detect/detect.h"


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
    ad_bank_free(b);
    return 0;
}
