/* libFuzzer target: VisA's split CSV (ROOT/split_csv/1cls.csv: object,split,label,image,mask)
 * through the dataset walker. The input is the CSV; the tree holds it and, as far as the walker
 * asks, every listed image and mask exists unless its path contains '#'. No disk access. */
#include "fuzz.h"
#include "vfs.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_single_thread();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ds_dataset d;
    if (vfs_open_one_file(data, size, "/r/split_csv/1cls.csv", DS_VISA, "/r", &d) == AD_OK) {
        ds_free(&d);
    }
    return 0;
}
