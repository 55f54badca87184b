/* libFuzzer target: the dataset walker of `anomalydino eval` (MVTec AD, VisA prepared layout,
 * folder layout) on file names. The input is a tree: byte 0 picks the layout (% 3), byte 1 bit 0
 * whether the categories are given (then the first line names them, comma separated), the rest
 * is one path per line below the root ("CAT/test/crack/000.png"; a trailing '/' makes an empty
 * folder). Nothing touches the disk: the walker sees the tree through ds_open_fs. */
#include "fuzz.h"
#include "vfs.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_single_thread();
    return 0;
}

#define ROOT "/r"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    ds_kind kind = (ds_kind)(data[0] % 3);
    int with_cats = data[1] & 1;
    const char *p = (const char *)data + 2, *end = (const char *)data + size;
    vfs v;
    memset(&v, 0, sizeof v);
    char *cats[16];
    int n_cats = 0;
    char *catline = NULL;
    int line_no = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (memchr(p, 0, len)) goto next; /* a path cannot hold a NUL byte */
        if (with_cats && line_no == 0) {
            catline = strndup(p, len);
            for (char *c = catline, *tok; c && n_cats < 16 && (tok = strsep(&c, ","));)
                cats[n_cats++] = tok;
        } else if (len > 0 && len < 1024) {
            int dir = p[len - 1] == '/';
            char buf[1100];
            size_t k = (size_t)snprintf(buf, sizeof buf, ROOT "/%.*s", (int)(len - (size_t)dir), p);
            if (vfs_add(&v, buf, k, dir)) break;
        }
    next:
        line_no++;
        p += len + 1;
    }
    vfs_sort(&v);
    ds_fs fs = vfs_fs(&v);
    ds_dataset d;
    if (ds_open_fs(&fs, kind, ROOT, with_cats ? cats : NULL, with_cats ? n_cats : 0, &d) == AD_OK) {
        for (int c = 0; c < d.n_cats; c++) {
            int first = 0;
            (void)ds_select_shots(&d.cats[c], 1 + (int)(size % 4), (int)(size % 3), &first);
        }
        ds_free(&d);
    }
    free(catline);
    vfs_free(&v);
    return 0;
}
