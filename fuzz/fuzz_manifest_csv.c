/* libFuzzer target: a dataset manifest (--dataset manifest --data FILE.csv: the columns
 * category,split,image,label,mask, paths relative to the CSV's folder or absolute) through the
 * dataset module. The input is the CSV; as far as the reader asks, every listed image and mask
 * exists unless its path contains '#'. No disk access. */
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
    if (vfs_open_one_file(data, size, "/r/parts.csv", DS_MANIFEST, "/r/parts.csv", &d) == AD_OK) {
        /* what a run then reads of it */
        for (int c = 0; c < d.n_cats; c++) {
            int first = 0;
            (void)ds_select_shots(&d.cats[c], 2, 1, &first);
        }
        ds_free(&d);
    }
    return 0;
}
