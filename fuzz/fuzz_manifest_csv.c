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

static int listed_exists(const char *path) { return strchr(path, '#') == NULL; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vfs v;
    memset(&v, 0, sizeof v);
    v.content_path = "/r/parts.csv";
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
    if (ds_open_fs(&fs, DS_MANIFEST, v.content_path, NULL, 0, &d) == AD_OK) {
        /* what a run then reads of it */
        for (int c = 0; c < d.n_cats; c++) {
            int first = 0;
            (void)ds_select_shots(&d.cats[c], 2, 1, &first);
        }
        ds_free(&d);
    }
    vfs_free(&v);
    return 0;
}
