/* libFuzzer target: NumPy .npy arrays (anomaly maps, features) from an in-memory file, then
 * the conversions the tool applies to them. */
#include "fuzz.h"
#include "io/io.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_single_thread();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    adi_npy a;
    if (adi_npy_read_mem(data, size, "fuzz", &a) != AD_OK) return 0;
    double *d = adi_npy_to_f64(&a);
    float *f = adi_npy_to_f32(&a);
    adi_free(d);
    adi_free(f);
    adi_npy_free(&a);
    return 0;
}
