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

static int listed_exists(const char *path) { return strchr(path, '#') == NULL; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vfs v;
    memset(&v, 0, sizeof v);
    v.content_path = "/r/split_csv/1cls.csv";
    v.content = (const char *)data;
    v.content_len = size;
    v.exists = listed_exists;
    if (vfs_add(&v, v.content_path, strlen(v.content_path), 0)) {
        vfs_free(&v);
        return 0;
    }
    vfs_sort(&v);
    ds_fs fs = vfs_fs(&v);
    ds_dataset d;
    if (ds_open_fs(&fs, DS_VISA, "/r", NULL, 0, &d) == AD_OK) ds_free(&d);
    vfs_free(&v);
    return 0;
}
