/* libFuzzer target: ground-truth masks of real datasets (BMP through stb_image, TIFF through
 * libtiff on memory, and PNG / JPEG as the image targets), recognised by content as
 * adi_io_read_mask does, then binarised as adi_io_read_gt_mask does. The pixel limit is 4 M
 * pixels as in the image targets; every pixel is read. */
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
    uint8_t *m = NULL;
    int w = 0, h = 0;
    if (adi_io_decode_mask_max("fuzz", data, size, (size_t)1 << 22, &m, &w, &h) == AD_OK) {
        size_t n = (size_t)w * (size_t)h;
        adi_io_binarize_mask(m, n);
        volatile unsigned sum = 0;
        for (size_t i = 0; i < n; i++) sum += m[i];
        (void)sum;
        adi_free(m);
    }
    return 0;
}
