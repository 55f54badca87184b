/* Benchmark dataset layouts (see dataset.h). */
#include "protocol/dataset.h"

#include "io/io.h"

#include <math.h>
#include <strings.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* docs/design.md, "Presets" (AD src/utils.py::get_dataset_info): the original's order. */
const char *const ds_mvtec_categories[] = {
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
    "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper", NULL};
const char *const ds_visa_categories[] = {
    "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2",
    "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum", NULL};

/* At most this many per-image lines of one kind per category; the rest are counted. */
#define DS_MAX_LINES_PER_KIND 10

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                               */
/* ------------------------------------------------------------------------------------------ */

void ds_lines_add(ds_lines *l, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (adi_strlist_find(l, buf) >= 0) return; /* a summary says each thing once */
    if (adi_strlist_push(l, buf)) l->dropped++;
}

void ds_lines_free(ds_lines *l) { adi_strlist_free(l); }

static char *join2(const char *a, const char *b) { return adi_path_join(a, b); }

static char *join3(const char *a, const char *b, const char *c)
{
    char *ab = join2(a, b);
    if (!ab) return NULL;
    char *abc = join2(ab, c);
    adi_free(ab);
    return abc;
}

/* The file system as the dataset walker sees it: the real one, or (ds_open_fs, for the fuzz
 * target) a caller's in-memory one for the duration of one call on this thread. */
static _Thread_local const ds_fs *cur_fs;

static int is_file(const char *p)
{
    if (cur_fs) return cur_fs->is_file(cur_fs->ctx, p);
    return adi_io_is_file(p);
}

static int fs_is_dir(const char *p)
{
    return cur_fs ? cur_fs->is_dir(cur_fs->ctx, p) : adi_io_is_dir(p);
}

static int fs_list_dir(const char *dir, adi_list_kind kind, char ***names)
{
    return cur_fs ? cur_fs->list_dir(cur_fs->ctx, dir, kind, names) : adi_io_list_dir(dir, kind, names);
}

static char *fs_read_file(const char *path, size_t *len)
{
    return cur_fs ? cur_fs->read_file(cur_fs->ctx, path, len) : adi_io_read_file(path, len);
}

/* Python's os.path.splitext extension (the evaluation compares it exactly, as the original). */
static const char *ext_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return "";
    return dot;
}

/* The original keeps a test sub-folder only if its name without '_' is alphabetic (design.md). */
static int type_name_ok(const char *t)
{
    int letters = 0;
    for (const char *p = t; *p; p++) {
        if (*p == '_') continue;
        if (!isalpha((unsigned char)*p)) return 0;
        letters++;
    }
    return letters > 0;
}

/* Category names become file names of the outputs. */
static int category_name_ok(const char *c)
{
    return c[0] && c[0] != '.' && !strchr(c, '/') && !strchr(c, '\\') && strlen(c) < 200;
}

/* One test item's strings; then a whole array of them. */
static void item_clear(ds_test_item *t)
{
    adi_free(t->path);
    adi_free(t->name);
    adi_free(t->type);
    adi_free(t->mask_path);
}

static void items_free(ds_test_item *v, int n)
{
    for (int i = 0; i < n; i++) item_clear(&v[i]);
    adi_free(v);
}

static void category_free(ds_category *c)
{
    adi_free(c->name);
    for (int i = 0; i < c->n_train; i++) {
        adi_free(c->train[i]);
        adi_free(c->train_names[i]);
    }
    adi_free(c->train);
    adi_free(c->train_names);
    items_free(c->test, c->n_test);
    memset(c, 0, sizeof *c);
}

void ds_free(ds_dataset *d)
{
    if (!d) return;
    for (int i = 0; i < d->n_cats; i++) category_free(&d->cats[i]);
    adi_free(d->cats);
    adi_free(d->root);
    adi_free(d->entries);
    ds_lines_free(&d->warnings);
    ds_lines_free(&d->errors);
    memset(d, 0, sizeof *d);
}

ad_status ds_kind_parse(const char *s, ds_kind *out)
{
    if (!s) return adi_fail(AD_E_ARG, "--dataset: missing value");
    if (!strcasecmp(s, "mvtec") || !strcasecmp(s, "mvtec_ad") || !strcasecmp(s, "mvtec-ad") ||
        !strcasecmp(s, "mvtecad")) {
        *out = DS_MVTEC;
    } else if (!strcasecmp(s, "visa")) {
        *out = DS_VISA;
    } else if (!strcasecmp(s, "folder")) {
        *out = DS_FOLDER;
    } else if (!strcasecmp(s, "ksdd") || !strcasecmp(s, "kolektorsdd") ||
               !strcasecmp(s, "kolektor")) {
        *out = DS_KSDD;
    } else if (!strcasecmp(s, "mtd") || !strcasecmp(s, "magnetic_tile") ||
               !strcasecmp(s, "magnetic-tile")) {
        *out = DS_MTD;
    } else if (!strcasecmp(s, "manifest") || !strcasecmp(s, "csv")) {
        *out = DS_MANIFEST;
    } else {
        return adi_fail(AD_E_ARG,
                        "--dataset '%s': expected mvtec, visa, folder, ksdd, mtd or manifest", s);
    }
    return AD_OK;
}

const char *ds_kind_name(ds_kind k)
{
    switch (k) {
    case DS_MVTEC: return "mvtec";
    case DS_VISA: return "visa";
    case DS_FOLDER: return "folder";
    case DS_KSDD: return "ksdd";
    case DS_MTD: return "mtd";
    case DS_MANIFEST: return "manifest";
    }
    return "folder";
}

int ds_select_shots(const ds_category *c, int k, int seed, int *first)
{
    *first = 0;
    if (k < 0) return c->n_train;
    if (seed < 0) return 0;
    long start = (long)seed * k, end = start + k;
    if (start >= c->n_train) return 0;
    if (end > c->n_train) end = c->n_train;
    *first = (int)start;
    return (int)(end - start);
}

/* ------------------------------------------------------------------------------------------ */
/* growing lists of test items                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    ds_test_item *v;
    int n, cap;
} item_list;

static int items_push(item_list *l, char *path, char *name, char *type, char *mask, int defect)
{
    if (!path || !name || !type) goto fail;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        ds_test_item *v = adi_realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) goto fail;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (ds_test_item){path, name, type, mask, defect};
    return 0;
fail:
    adi_free(path);
    adi_free(name);
    adi_free(type);
    adi_free(mask);
    return -1;
}

static int cmp_item(const void *a, const void *b)
{
    const ds_test_item *x = a, *y = b;
    int gx = strcmp(x->type, "good") != 0, gy = strcmp(y->type, "good") != 0;
    if (gx != gy) return gx - gy;
    int c = strcmp(x->type, y->type);
    return c ? c : strcmp(x->name, y->name);
}

/* Per-category counters of per-image problems, so a dataset with hundreds of them gives a short
 * summary rather than a wall of lines. */
typedef struct {
    int no_gt;
} cat_counts;

static void note_no_gt(ds_dataset *d, cat_counts *cc, const char *cat, const char *image,
                       const char *expected)
{
    if (d->kind == DS_FOLDER) { /* masks are optional there: one summary line per category */
        cc->no_gt++;
        return;
    }
    if (cc->no_gt++ < DS_MAX_LINES_PER_KIND)
        ds_lines_add(&d->warnings,
                     "%s: %s has no ground truth (%s): labelled anomalous by its folder, left out "
                     "of the pixel metrics",
                     cat, image, expected);
}

static void flush_counts(ds_dataset *d, const cat_counts *cc, const char *cat)
{
    if (d->kind == DS_FOLDER && cc->no_gt)
        ds_lines_add(&d->warnings,
                     "%s: %d defect image(s) without a ground-truth mask: left out of the pixel "
                     "metrics",
                     cat, cc->no_gt);
    else if (cc->no_gt > DS_MAX_LINES_PER_KIND)
        ds_lines_add(&d->warnings, "%s: ... and %d more images without ground truth", cat,
                     cc->no_gt - DS_MAX_LINES_PER_KIND);
}

/* ------------------------------------------------------------------------------------------ */
/* folder layouts (mvtec, visa prepared, folder)                                               */
/* ------------------------------------------------------------------------------------------ */

static int test_ext_ok(ds_kind kind, const char *name)
{
    /* design.md, Evaluation protocol: the original evaluates exactly ".png" (MVTec) or ".JPG" (VisA) files. */
    if (kind == DS_MVTEC) return !strcmp(ext_of(name), ".png");
    if (kind == DS_VISA) return !strcmp(ext_of(name), ".JPG");
    return adi_io_has_image_ext(name);
}

static char *find_gt(ds_kind kind, const char *catdir, const char *type, const char *file,
                     char *expected, size_t expected_len)
{
    size_t stem_len = strlen(file) - strlen(ext_of(file));
    char stem[1024];
    if (stem_len >= sizeof stem - 16) return NULL;
    memcpy(stem, file, stem_len);
    stem[stem_len] = 0;
    char name[1100];
    /* mvtec: NAME_mask.png only, visa: NAME.png only (as the originals); folder: any mask
     * format the readers know, NAME_mask first */
    static const char *const suffixes[] = {"_mask.png", ".png", "_mask.bmp", ".bmp",
                                           "_mask.tif", ".tif", "_mask.tiff", ".tiff",
                                           "_mask.jpg", ".jpg", "_mask.jpeg", ".jpeg"};
    int first = kind == DS_VISA ? 1 : 0;
    int last = kind == DS_MVTEC ? 0 : kind == DS_VISA ? 1 : (int)(sizeof suffixes / sizeof *suffixes) - 1;
    char *gtdir = join3(catdir, "ground_truth", type);
    if (!gtdir) return NULL;
    char *found = NULL;
    for (int s = first; s <= last && !found; s++) {
        snprintf(name, sizeof name, "%s%s", stem, suffixes[s]);
        char *p = join2(gtdir, name);
        if (!p) break;
        if (s == first) snprintf(expected, expected_len, "%s", p);
        if (is_file(p)) found = p;
        else adi_free(p);
    }
    /* the exact names of mvtec/visa missing: say so when the mask is there in another form */
    for (int s = 0; !found && kind != DS_FOLDER && s < (int)(sizeof suffixes / sizeof *suffixes);
         s++) {
        if (s >= first && s <= last) continue;
        snprintf(name, sizeof name, "%s%s", stem, suffixes[s]);
        char *p = join2(gtdir, name);
        if (p && is_file(p)) {
            size_t l = strlen(expected);
            snprintf(expected + l, expected_len - l, "; %s exists but the %s layout reads only "
                     "that name: use --dataset folder, or a manifest", name, ds_kind_name(kind));
            adi_free(p);
            break;
        }
        adi_free(p);
    }
    adi_free(gtdir);
    return found;
}

/* Fills c from ROOT/CAT/{train/good,test,ground_truth}. 0 on success, -1 when the category is
 * unusable (an error line says why). */
static int build_dir_category(ds_dataset *d, const char *catdir, const char *name, ds_category *c)
{
    memset(c, 0, sizeof *c);
    char *traindir = join3(catdir, "train", "good");
    char *testdir = join2(catdir, "test");
    item_list items = {0};
    char **types = NULL;
    int n_types = 0, rc = -1;
    cat_counts cc = {0};
    if (!traindir || !testdir || !(c->name = adi_strdup(name))) goto done;

    char **files = NULL;
    int nf = fs_list_dir(traindir, ADI_LIST_FILES, &files);
    if (nf < 0) {
        ds_lines_add(&d->errors, "%s: cannot read the reference folder %s: %s", name, traindir,
                     strerror(errno ? errno : ENOENT));
        goto done;
    }
    c->train = adi_calloc((size_t)(nf ? nf : 1), sizeof *c->train);
    c->train_names = adi_calloc((size_t)(nf ? nf : 1), sizeof *c->train_names);
    int ignored = 0;
    for (int i = 0; i < nf && c->train && c->train_names; i++) {
        if (!adi_io_has_image_ext(files[i])) { ignored++; continue; }
        c->train[c->n_train] = join2(traindir, files[i]);
        c->train_names[c->n_train] = adi_strdup(files[i]);
        if (c->train[c->n_train] && c->train_names[c->n_train]) c->n_train++;
        else { adi_free(c->train[c->n_train]); adi_free(c->train_names[c->n_train]); }
    }
    adi_strv_free(files, nf);
    if (ignored)
        ds_lines_add(&d->warnings, "%s: %d file(s) in %s are not .png/.jpg images: ignored", name,
                     ignored, traindir);
    if (c->n_train == 0) {
        ds_lines_add(&d->errors, "%s: no reference images in %s", name, traindir);
        goto done;
    }

    n_types = fs_list_dir(testdir, ADI_LIST_DIRS, &types);
    if (n_types < 0) {
        ds_lines_add(&d->errors, "%s: cannot read the test folder %s", name, testdir);
        n_types = 0;
        goto done;
    }
    for (int t = 0; t < n_types; t++) {
        const char *type = types[t];
        if (d->kind != DS_FOLDER && !type_name_ok(type)) {
            ds_lines_add(&d->warnings,
                         "%s: test folder '%s' skipped (the original evaluates only folders "
                         "whose name is letters and '_')",
                         name, type);
            continue;
        }
        int defect = strcmp(type, "good") != 0;
        char *tdir = join2(testdir, type);
        char **tf = NULL;
        int ntf = tdir ? fs_list_dir(tdir, ADI_LIST_FILES, &tf) : -1;
        if (ntf < 0) {
            ds_lines_add(&d->errors, "%s: cannot read %s", name, tdir ? tdir : type);
            adi_free(tdir);
            continue;
        }
        int other = 0;
        for (int i = 0; i < ntf; i++) {
            if (!test_ext_ok(d->kind, tf[i])) { other++; continue; }
            char *mask = NULL;
            if (defect) {
                char expected[2048] = "";
                mask = find_gt(d->kind, catdir, type, tf[i], expected, sizeof expected);
                if (!mask) {
                    char img[1200];
                    snprintf(img, sizeof img, "%s/%s", tdir, tf[i]);
                    note_no_gt(d, &cc, name, img, expected);
                }
            }
            size_t nl = strlen(type) + strlen(tf[i]) + 2;
            char *nm = adi_malloc(nl);
            if (nm) snprintf(nm, nl, "%s/%s", type, tf[i]);
            if (items_push(&items, join2(tdir, tf[i]), nm, adi_strdup(type), mask, defect)) {
                adi_strv_free(tf, ntf);
                adi_free(tdir);
                goto done;
            }
        }
        if (other)
            ds_lines_add(&d->warnings, "%s: %d file(s) in %s are not %s images: ignored", name,
                         other, tdir,
                         d->kind == DS_MVTEC ? ".png" : d->kind == DS_VISA ? ".JPG" : ".png/.jpg");
        adi_strv_free(tf, ntf);
        adi_free(tdir);
    }
    flush_counts(d, &cc, name);
    if (items.n == 0) {
        ds_lines_add(&d->errors, "%s: no test images in %s", name, testdir);
        goto done;
    }
    qsort(items.v, (size_t)items.n, sizeof *items.v, cmp_item);
    c->test = items.v;
    c->n_test = items.n;
    items.v = NULL;
    items.n = 0;
    rc = 0;
done:
    items_free(items.v, items.n);
    adi_strv_free(types, n_types);
    adi_free(traindir);
    adi_free(testdir);
    if (rc) category_free(c);
    return rc;
}

static int push_category(ds_dataset *d, const ds_category *c)
{
    ds_category *v = adi_realloc(d->cats, (size_t)(d->n_cats + 1) * sizeof *v);
    if (!v) return -1;
    d->cats = v;
    d->cats[d->n_cats++] = *c;
    return 0;
}

static int has_train_good(const char *catdir)
{
    char *p = join3(catdir, "train", "good");
    int r = p && fs_is_dir(p);
    adi_free(p);
    return r;
}

static int in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (!strcmp(*list, s)) return 1;
    return 0;
}

static ad_status open_dirs(ds_dataset *d, char *const *cats, int n_cats)
{
    const char *const *standard = d->kind == DS_MVTEC ? ds_mvtec_categories
                                  : d->kind == DS_VISA ? ds_visa_categories
                                                       : NULL;
    if (cats) {
        for (int i = 0; i < n_cats; i++) {
            if (!category_name_ok(cats[i])) {
                ds_lines_add(&d->errors, "'%s': not a category name", cats[i]);
                continue;
            }
            char *dir = join2(d->root, cats[i]);
            if (!dir) return adi_fail(AD_E_NOMEM, "out of memory");
            if (!has_train_good(dir)) {
                ds_lines_add(&d->errors, "%s: category not found (no folder %s/train/good)",
                             cats[i], dir);
            } else {
                ds_category c;
                if (build_dir_category(d, dir, cats[i], &c) == 0 && push_category(d, &c)) {
                    category_free(&c);
                    adi_free(dir);
                    return adi_fail(AD_E_NOMEM, "out of memory");
                }
            }
            adi_free(dir);
        }
        return AD_OK;
    }

    /* folder layout: ROOT may itself be one category */
    if (d->kind == DS_FOLDER && has_train_good(d->root)) {
        const char *base = strrchr(d->root, '/');
        char name[256];
        snprintf(name, sizeof name, "%s", base && base[1] ? base + 1 : d->root);
        size_t nl = strlen(name);
        while (nl > 1 && name[nl - 1] == '/') name[--nl] = 0;
        if (!category_name_ok(name)) snprintf(name, sizeof name, "category");
        ds_category c;
        if (build_dir_category(d, d->root, name, &c) == 0 && push_category(d, &c)) {
            category_free(&c);
            return adi_fail(AD_E_NOMEM, "out of memory");
        }
        return AD_OK;
    }

    char **subs = NULL;
    int ns = fs_list_dir(d->root, ADI_LIST_DIRS, &subs);
    if (ns < 0) return adi_fail(AD_E_IO, "%s: cannot read the dataset folder: %s", d->root,
                               strerror(errno ? errno : EIO));
    char missing[1024] = "";
    int n_missing = 0;
    if (standard) {
        for (const char *const *s = standard; *s; s++) {
            char *dir = join2(d->root, *s);
            int ok = dir && has_train_good(dir);
            adi_free(dir);
            if (!ok) {
                size_t l = strlen(missing);
                snprintf(missing + l, sizeof missing - l, "%s%s", n_missing ? ", " : "", *s);
                n_missing++;
            }
        }
    }
    for (int i = 0; i < ns; i++) {
        char *dir = join2(d->root, subs[i]);
        if (!dir) { adi_strv_free(subs, ns); return adi_fail(AD_E_NOMEM, "out of memory"); }
        if (has_train_good(dir) && category_name_ok(subs[i])) {
            if (standard && !in_list(standard, subs[i]))
                ds_lines_add(&d->warnings, "%s: not a standard %s category (evaluated anyway)",
                             subs[i], d->kind == DS_MVTEC ? "MVTec AD" : "VisA");
            ds_category c;
            if (build_dir_category(d, dir, subs[i], &c) == 0 && push_category(d, &c)) {
                category_free(&c);
                adi_free(dir);
                adi_strv_free(subs, ns);
                return adi_fail(AD_E_NOMEM, "out of memory");
            }
        }
        adi_free(dir);
    }
    adi_strv_free(subs, ns);
    if (n_missing && d->n_cats)
        ds_lines_add(&d->warnings, "%s: %d standard categor%s not found: %s", d->root, n_missing,
                     n_missing == 1 ? "y" : "ies", missing);
    return AD_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* VisA raw download: split_csv/1cls.csv                                                       */
/* ------------------------------------------------------------------------------------------ */

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

typedef struct {
    char *name;
    item_list test;
    char **train, **train_names;
    int n_train, cap_train;
    cat_counts cc;
} raw_cat;

static int cmp_train_pair(const void *a, const void *b)
{
    /* sorted by file name as the prepared layout's listdir would be */
    const char *const *x = a, *const *y = b;
    return strcmp(base_name(x[0]), base_name(y[0]));
}

/* One data row of a split CSV (VisA's 1cls.csv or a manifest): col[] holds the columns of
 * category, split, image, label and mask (mask -1: none). 1: a row to use (v[] the five fields,
 * *is_train); 0: left out, with a note when it is a problem (not when its category was not asked
 * for). */
static int split_row(ds_dataset *d, const char *csv_path, int line, char **f, int nf,
                     const int col[5], char *const *cats, int n_cats, const char *v[5],
                     int *is_train)
{
    if (nf <= col[0] || nf <= col[1] || nf <= col[2] || nf <= col[3]) {
        ds_lines_add(&d->errors, "%s:%d: too few columns: row ignored", csv_path, line);
        return 0;
    }
    for (int k = 0; k < 4; k++) v[k] = f[col[k]];
    v[4] = col[4] >= 0 && nf > col[4] ? f[col[4]] : "";
    if (cats) {
        int want = 0;
        for (int i = 0; i < n_cats && !want; i++) want = !strcmp(cats[i], v[0]);
        if (!want) return 0;
    }
    if (!category_name_ok(v[0])) {
        ds_lines_add(&d->errors, "%s:%d: '%s' is not a category name: row ignored", csv_path,
                     line, v[0]);
        return 0;
    }
    *is_train = !strcmp(v[1], "train");
    if (!*is_train && strcmp(v[1], "test")) {
        ds_lines_add(&d->errors, "%s:%d: split '%s' is neither train nor test: row ignored",
                     csv_path, line, v[1]);
        return 0;
    }
    return 1;
}

/* Reads a split CSV and its header: the text (NUL-terminated, freed by the caller), the reader
 * positioned after the header, and the columns of `names` (category, split, image, label, mask)
 * in col[]. Fails with `what` (how the header must look) when one of the first four is absent. */
static ad_status split_csv_open(const char *csv_path, const char *const names[5],
                                const char *what, char **text, adi_csv_reader *rd, int col[5])
{
    size_t len;
    char *t = fs_read_file(csv_path, &len);
    if (!t) return AD_E_IO;
    if (strlen(t) != len) {
        adi_free(t);
        return adi_fail(AD_E_FORMAT, "%s: not a text file (%s)", csv_path, what);
    }
    adi_csv_row row = {0};
    char cerr[200];
    adi_csv_init(rd, t, len, 1);
    int rr = adi_csv_next(rd, &row, cerr, sizeof cerr);
    for (int k = 0; k < 5; k++) col[k] = -1;
    for (int i = 0; rr > 0 && i < row.n; i++)
        for (int k = 0; k < 5; k++)
            if (!strcmp(row.f[i], names[k])) col[k] = i;
    adi_csv_row_free(&row);
    if (rr < 0) {
        adi_free(t);
        return adi_fail(AD_E_NOMEM, "%s: %s", csv_path, cerr);
    }
    if (col[0] < 0 || col[1] < 0 || col[2] < 0 || col[3] < 0) {
        adi_free(t);
        return adi_fail(AD_E_FORMAT, "%s: the header must name the columns %s", csv_path, what);
    }
    *text = t;
    return AD_OK;
}

static ad_status open_visa_raw(ds_dataset *d, const char *csv_path, char *const *cats,
                               int n_cats)
{
    /* the columns in split_row's order: category (VisA: object), split, image, label, mask */
    static const char *const names[5] = {"object", "split", "image", "label", "mask"};
    char *text = NULL;
    adi_csv_reader rd;
    int col[5];
    ad_status ost = split_csv_open(csv_path, names, "object,split,label,image[,mask]", &text,
                                   &rd, col);
    if (ost != AD_OK) return ost;
    adi_csv_row row = {0};
    char cerr[200];
    char **f;
    int nf, rr;
    raw_cat *rc = NULL;
    int n_rc = 0;
    ad_status st = AD_OK;
    int line = 1, missing_files = 0;
    while ((rr = adi_csv_next(&rd, &row, cerr, sizeof cerr)) > 0) {
        f = row.f;
        nf = row.n;
        line = row.line;
        if (nf == 1 && !f[0][0]) continue; /* a line of blanks */
        const char *v[5];
        int is_train;
        if (!split_row(d, csv_path, line, f, nf, col, cats, n_cats, v, &is_train)) continue;
        const char *obj = v[0], *image = v[2], *label = v[3], *mask = v[4];
        /* prepare_data.py: 'normal' -> good, anything else -> bad */
        int normal = !strcmp(label, "normal");
        if (is_train && !normal) continue; /* the 1-class split trains on normal images only */
        int k;
        for (k = 0; k < n_rc && strcmp(rc[k].name, obj); k++) {}
        if (k == n_rc) {
            raw_cat *nv = adi_realloc(rc, (size_t)(n_rc + 1) * sizeof *nv);
            if (!nv) { st = adi_fail(AD_E_NOMEM, "out of memory"); break; }
            rc = nv;
            memset(&rc[n_rc], 0, sizeof rc[n_rc]);
            if (!(rc[n_rc].name = adi_strdup(obj))) { st = adi_fail(AD_E_NOMEM, "out of memory"); break; }
            n_rc++;
        }
        raw_cat *r = &rc[k];
        char *path = join2(d->root, image);
        if (!path) { st = adi_fail(AD_E_NOMEM, "out of memory"); break; }
        if (!is_file(path)) {
            if (missing_files++ < DS_MAX_LINES_PER_KIND)
                ds_lines_add(&d->errors, "%s: %s (listed in %s:%d) does not exist: left out", obj,
                             path, csv_path, line);
            adi_free(path);
            continue;
        }
        if (is_train) {
            if (r->n_train == r->cap_train) {
                int cap = r->cap_train ? r->cap_train * 2 : 64;
                char **a = adi_realloc(r->train, (size_t)cap * 2 * sizeof *a);
                if (!a) { adi_free(path); st = adi_fail(AD_E_NOMEM, "out of memory"); break; }
                r->train = a;
                r->cap_train = cap;
            }
            /* pairs (path, name) side by side until the category is finished */
            char *nm = adi_strdup(base_name(image));
            if (!nm) { adi_free(path); st = adi_fail(AD_E_NOMEM, "out of memory"); break; }
            r->train[2 * r->n_train] = path;
            r->train[2 * r->n_train + 1] = nm;
            r->n_train++;
        } else {
            const char *type = normal ? "good" : "bad";
            size_t nl = strlen(type) + strlen(base_name(image)) + 2;
            char *nm = adi_malloc(nl);
            if (nm) snprintf(nm, nl, "%s/%s", type, base_name(image));
            char *mp = NULL;
            if (!normal) {
                if (mask[0]) {
                    mp = join2(d->root, mask);
                    if (mp && !is_file(mp)) {
                        note_no_gt(d, &r->cc, obj, path, mp);
                        adi_free(mp);
                        mp = NULL;
                    }
                } else {
                    note_no_gt(d, &r->cc, obj, path, "the mask column is empty");
                }
            }
            if (items_push(&r->test, path, nm, adi_strdup(type), mp, !normal)) {
                st = adi_fail(AD_E_NOMEM, "out of memory");
                break;
            }
        }
    }
    if (rr < 0 && st == AD_OK) st = adi_fail(AD_E_NOMEM, "%s: %s", csv_path, cerr);
    if (missing_files > DS_MAX_LINES_PER_KIND)
        ds_lines_add(&d->errors, "%s: ... and %d more listed files do not exist", csv_path,
                     missing_files - DS_MAX_LINES_PER_KIND);

    /* categories in the order asked for, else in the standard order then the CSV's order */
    int *order = adi_calloc((size_t)(n_rc + 1), sizeof *order);
    int n_order = 0;
    if (!order && st == AD_OK) st = adi_fail(AD_E_NOMEM, "out of memory");
    if (st == AD_OK) {
        if (cats) {
            for (int i = 0; i < n_cats; i++) {
                int k;
                for (k = 0; k < n_rc && strcmp(rc[k].name, cats[i]); k++) {}
                if (k < n_rc) order[n_order++] = k;
                else ds_lines_add(&d->errors, "%s: category not found in %s", cats[i], csv_path);
            }
        } else {
            char missing[1024] = "";
            int n_missing = 0;
            for (const char *const *s = ds_visa_categories; *s; s++) {
                int k;
                for (k = 0; k < n_rc && strcmp(rc[k].name, *s); k++) {}
                if (k < n_rc) order[n_order++] = k;
                else {
                    size_t l = strlen(missing);
                    snprintf(missing + l, sizeof missing - l, "%s%s", n_missing ? ", " : "", *s);
                    n_missing++;
                }
            }
            for (int k = 0; k < n_rc; k++)
                if (!in_list(ds_visa_categories, rc[k].name)) {
                    order[n_order++] = k;
                    ds_lines_add(&d->warnings, "%s: not a standard VisA category (evaluated anyway)",
                                 rc[k].name);
                }
            if (n_missing && n_order)
                ds_lines_add(&d->warnings, "%s: %d standard categor%s not listed: %s", csv_path,
                             n_missing, n_missing == 1 ? "y" : "ies", missing);
        }
    }
    for (int o = 0; o < n_order && st == AD_OK; o++) {
        raw_cat *r = &rc[order[o]];
        flush_counts(d, &r->cc, r->name);
        if (r->n_train == 0) {
            ds_lines_add(&d->errors, "%s: no reference (split train, label normal) rows in %s",
                         r->name, csv_path);
            continue;
        }
        if (r->test.n == 0) {
            ds_lines_add(&d->errors, "%s: no test rows in %s", r->name, csv_path);
            continue;
        }
        ds_category c = {0};
        c.name = r->name;
        c.train = adi_malloc((size_t)r->n_train * sizeof *c.train);
        c.train_names = adi_malloc((size_t)r->n_train * sizeof *c.train_names);
        if (!c.train || !c.train_names) {
            adi_free(c.train);
            adi_free(c.train_names);
            st = adi_fail(AD_E_NOMEM, "out of memory");
            break;
        }
        qsort(r->train, (size_t)r->n_train, 2 * sizeof *r->train, cmp_train_pair);
        for (int i = 0; i < r->n_train; i++) {
            c.train[i] = r->train[2 * i];
            c.train_names[i] = r->train[2 * i + 1];
        }
        c.n_train = r->n_train;
        qsort(r->test.v, (size_t)r->test.n, sizeof *r->test.v, cmp_item);
        c.test = r->test.v;
        c.n_test = r->test.n;
        if (push_category(d, &c)) {
            c.name = NULL; /* still owned by r, freed below */
            adi_free(c.train);
            adi_free(c.train_names);
            st = adi_fail(AD_E_NOMEM, "out of memory");
            break;
        }
        /* ownership moved into d */
        r->name = NULL;
        adi_free(r->train);
        r->train = NULL;
        r->n_train = 0;
        r->test.v = NULL;
        r->test.n = 0;
    }
    for (int k = 0; k < n_rc; k++) {
        adi_free(rc[k].name);
        for (int i = 0; i < 2 * rc[k].n_train; i++) adi_free(rc[k].train[i]);
        adi_free(rc[k].train);
        items_free(rc[k].test.v, rc[k].test.n);
    }
    adi_free(rc);
    adi_free(order);
    adi_csv_row_free(&row);
    adi_free(text);
    return st;
}

/* ------------------------------------------------------------------------------------------ */

ad_status ds_open_fs(const ds_fs *fs, ds_kind kind, const char *root, char *const *categories,
                     int n_categories, ds_dataset *out)
{
    const ds_fs *saved = cur_fs;
    cur_fs = fs;
    ad_status st = ds_open(kind, root, categories, n_categories, out);
    cur_fs = saved;
    return st;
}

int ds_guess_layout(const char *root, ds_kind *out)
{
    char **subs = NULL;
    int ns = fs_list_dir(root, ADI_LIST_DIRS, &subs);
    if (ns < 0) return 0;
    int kos = 0, mt = 0, cat = 0;
    for (int i = 0; i < ns; i++) {
        if (!strncasecmp(subs[i], "kos", 3)) kos++;
        if (!strncmp(subs[i], "MT_", 3)) mt++;
        char *dir = join2(root, subs[i]);
        if (dir && has_train_good(dir)) cat++;
        adi_free(dir);
    }
    adi_strv_free(subs, ns);
    char *csv = join3(root, "split_csv", "1cls.csv");
    int visa = csv && is_file(csv);
    adi_free(csv);
    if (visa) *out = DS_VISA;
    else if (mt) *out = DS_MTD;
    else if (kos) *out = DS_KSDD;
    else if (cat || has_train_good(root)) *out = DS_FOLDER;
    else return 0;
    return 1;
}

ad_status ds_open(ds_kind kind, const char *root, char *const *categories, int n_categories,
                  ds_dataset *out)
{
    if (!root || !out) return adi_fail(AD_E_ARG, "ds_open: NULL argument");
    if (kind == DS_KSDD || kind == DS_MTD || kind == DS_MANIFEST)
        return ds_open_ex(kind, root, categories, n_categories, NULL, out);
    if (!fs_is_dir(root))
        return adi_fail(AD_E_IO, "%s: not a directory (expected the %s)", root,
                        ds_layout_help(kind));
    ds_dataset d;
    memset(&d, 0, sizeof d);
    d.kind = kind;
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/') rl--;
    if (!(d.root = adi_strndup(root, rl))) return adi_fail(AD_E_NOMEM, "out of memory");

    ad_status st = AD_OK;
    char *csv = join3(d.root, "split_csv", "1cls.csv");
    if (!csv) { ds_free(&d); return adi_fail(AD_E_NOMEM, "out of memory"); }
    if (kind == DS_VISA && is_file(csv)) {
        d.visa_raw = 1;
        st = open_visa_raw(&d, csv, categories, n_categories);
    } else {
        if (kind == DS_VISA) { /* the original's default root is VisA_pytorch/1cls */
            char *sub = join2(d.root, "1cls");
            if (sub && fs_is_dir(sub) && !has_train_good(d.root)) {
                adi_free(d.root);
                d.root = sub;
                sub = NULL;
            }
            adi_free(sub);
        }
        st = open_dirs(&d, categories, n_categories);
    }
    adi_free(csv);
    if (st == AD_OK && d.n_cats == 0) {
        char why[600] = "", hint[200] = "";
        if (d.errors.n) snprintf(why, sizeof why, " (%s)", d.errors.v[0]);
        ds_kind guess;
        if (ds_guess_layout(d.root, &guess) && guess != kind)
            snprintf(hint, sizeof hint, "; this looks like the %s: try --dataset %s",
                     ds_layout_help(guess), ds_kind_name(guess));
        st = adi_fail(AD_E_IO, "%s: no usable %s categories%s; expected the %s%s", d.root,
                      ds_kind_name(kind), why, ds_layout_help(kind), hint);
    }
    if (st != AD_OK) {
        ds_free(&d);
        return st;
    }
    *out = d;
    return AD_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* layouts as downloaded: KolektorSDD, Magnetic Tile Defects; manifest CSV (issue 13)          */
/* ------------------------------------------------------------------------------------------ */

ds_options ds_default_options(void)
{
    ds_options o = {DS_DEFAULT_TRAIN_FRACTION, 0};
    return o;
}

int ds_split_count(int n_good, double fraction)
{
    if (n_good <= 0) return 0;
    if (!(fraction >= 0)) fraction = 0;
    if (fraction > 1) fraction = 1;
    long k = (long)floor(fraction * (double)n_good + 1e-9);
    if (k < 1) k = 1;
    if (n_good >= 2 && k > n_good - 1) k = n_good - 1;
    return (int)k;
}

const char *ds_layout_help(ds_kind k)
{
    switch (k) {
    case DS_MVTEC: return "MVTec AD layout: ROOT/CAT/train/good, ROOT/CAT/test/TYPE/NAME.png, "
                          "ROOT/CAT/ground_truth/TYPE/NAME_mask.png";
    case DS_VISA: return "VisA layout: ROOT/split_csv/1cls.csv, or the prepared ROOT/1cls/CAT/"
                         "{train/good,test,ground_truth}";
    case DS_FOLDER: return "folder layout: ROOT/CAT/train/good, ROOT/CAT/test/TYPE, optional "
                           "ROOT/CAT/ground_truth/TYPE/NAME_mask.png";
    case DS_KSDD: return "KolektorSDD layout: ROOT/kosNN/PartN.jpg with PartN_label.bmp";
    case DS_MTD: return "Magnetic Tile Defects layout: ROOT/MT_<class>/Imgs/X.jpg with its mask "
                        "X.png, MT_Free good";
    case DS_MANIFEST: return "manifest layout: --data FILE.csv with the columns category,split,"
                             "image,label,mask (paths relative to the CSV)";
    }
    return "";
}

/* A good (label) or defective image found while walking a layout without a train split, or read
 * from a manifest: a test item whose name is its path below the root, kept in an item_list
 * until the split is made. */
typedef ds_test_item found_img;
typedef item_list found_list;
#define found_push items_push

static void found_free(found_list *l)
{
    items_free(l->v, l->n);
    memset(l, 0, sizeof *l);
}

static int cmp_found(const void *a, const void *b)
{
    return strcmp(((const found_img *)a)->name, ((const found_img *)b)->name);
}

/* The category of a layout without a train split: sorted by path below ROOT, the first
 * ds_split_count good images are the references. Takes the strings of `l`. */
static ad_status split_category(ds_dataset *d, const char *name, found_list *l, double fraction)
{
    qsort(l->v, (size_t)l->n, sizeof *l->v, cmp_found);
    int n_good = 0;
    for (int i = 0; i < l->n; i++) n_good += !l->v[i].defect;
    if (n_good == 0) {
        ds_lines_add(&d->errors, "%s: no good images to take references from (%s)", name,
                     ds_layout_help(d->kind));
        found_free(l);
        return AD_OK;
    }
    int n_train = ds_split_count(n_good, fraction);
    ds_category c = {0};
    item_list items = {0};
    c.name = adi_strdup(name);
    c.train = adi_calloc((size_t)n_train, sizeof *c.train);
    c.train_names = adi_calloc((size_t)n_train, sizeof *c.train_names);
    if (!c.name || !c.train || !c.train_names) goto oom;
    int g = 0;
    for (int i = 0; i < l->n; i++) {
        found_img *f = &l->v[i];
        if (!f->defect && g < n_train) {
            c.train[g] = f->path;
            c.train_names[g] = f->name;
            adi_free(f->type);
            adi_free(f->mask_path);
            g++;
            c.n_train = g;
        } else {
            int bad = items_push(&items, f->path, f->name, f->type, f->defect ? f->mask_path : NULL,
                                 f->defect);
            if (!f->defect) adi_free(f->mask_path);
            if (bad) {
                for (int j = i + 1; j < l->n; j++) item_clear(&l->v[j]);
                l->n = 0;
                goto oom;
            }
        }
    }
    adi_free(l->v);
    memset(l, 0, sizeof *l);
    if (items.n == 0) {
        ds_lines_add(&d->errors, "%s: nothing left to test after taking %d reference(s)", name,
                     c.n_train);
        category_free(&c);
        return AD_OK;
    }
    qsort(items.v, (size_t)items.n, sizeof *items.v, cmp_item);
    c.test = items.v;
    c.n_test = items.n;
    if (push_category(d, &c)) {
        category_free(&c);
        return adi_fail(AD_E_NOMEM, "out of memory");
    }
    return AD_OK;
oom:
    found_free(l);
    items_free(items.v, items.n);
    category_free(&c);
    return adi_fail(AD_E_NOMEM, "out of memory");
}

static int wants(char *const *cats, int n, const char *name, ds_dataset *d)
{
    if (!cats) return 1;
    int want = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(cats[i], name)) want = 1;
        else ds_lines_add(&d->errors, "%s: category not found (the %s has one category, '%s')",
                          cats[i], ds_layout_help(d->kind), name);
    }
    return want;
}

/* STEM + each suffix in turn below dir; the first that exists (malloc'ed), or NULL. */
static char *first_existing(const char *dir, const char *stem, const char *const *suffixes)
{
    for (int i = 0; suffixes[i]; i++) {
        char name[1200];
        snprintf(name, sizeof name, "%s%s", stem, suffixes[i]);
        char *p = join2(dir, name);
        if (p && is_file(p)) return p;
        adi_free(p);
    }
    return NULL;
}

static int is_label_name(const char *f)
{
    const char *u = strstr(f, "_label.");
    return u && !strchr(u + 7, '/');
}

static ad_status open_ksdd(ds_dataset *d, const ds_options *o, char *const *cats, int n_cats)
{
    if (!wants(cats, n_cats, "ksdd", d)) return AD_OK;
    char **subs = NULL;
    int ns = fs_list_dir(d->root, ADI_LIST_DIRS, &subs);
    if (ns < 0) return adi_fail(AD_E_IO, "%s: cannot read the dataset folder: %s", d->root,
                               strerror(errno ? errno : EIO));
    static const char *const label_sfx[] = {"_label.bmp", "_label.png", "_label.tif",
                                            "_label.tiff", NULL};
    found_list l = {0};
    ad_status st = AD_OK;
    int n_parts_dirs = 0, no_label = 0, bad_label = 0;
    for (int i = 0; i < ns && st == AD_OK; i++) {
        char *dir = join2(d->root, subs[i]);
        char **files = NULL;
        int nf = dir ? fs_list_dir(dir, ADI_LIST_FILES, &files) : -1;
        int here = 0;
        for (int j = 0; j < nf && st == AD_OK; j++) {
            if (!adi_io_has_image_ext(files[j]) || is_label_name(files[j])) continue;
            here = 1;
            size_t sl = strlen(files[j]) - strlen(ext_of(files[j]));
            char stem[1024];
            if (sl >= sizeof stem) continue;
            memcpy(stem, files[j], sl);
            stem[sl] = 0;
            char *img = join2(dir, files[j]);
            char *label = first_existing(dir, stem, label_sfx);
            if (!label) {
                if (no_label++ < DS_MAX_LINES_PER_KIND)
                    ds_lines_add(&d->errors, "ksdd: %s has no %s_label.bmp beside it (%s): left "
                                 "out", img ? img : files[j], stem, ds_layout_help(DS_KSDD));
                adi_free(img);
                continue;
            }
            uint8_t *m = NULL;
            int mw = 0, mh = 0;
            if (adi_io_read_gt_mask(label, o->max_pixels, &m, &mw, &mh) != AD_OK) {
                if (bad_label++ < DS_MAX_LINES_PER_KIND)
                    ds_lines_add(&d->errors, "ksdd: label unreadable, %s left out: %s", img,
                                 ad_errmsg());
                adi_free(img);
                adi_free(label);
                continue;
            }
            int any = 0;
            for (size_t k = 0, n = (size_t)mw * mh; k < n && !any; k++) any = m[k] != 0;
            adi_free(m);
            size_t rl = strlen(subs[i]) + strlen(files[j]) + 2;
            char *rel = adi_malloc(rl);
            if (rel) snprintf(rel, rl, "%s/%s", subs[i], files[j]);
            if (found_push(&l, img, rel, adi_strdup(any ? "defect" : "good"), label, any))
                st = adi_fail(AD_E_NOMEM, "out of memory");
        }
        n_parts_dirs += here;
        adi_strv_free(files, nf > 0 ? nf : 0);
        adi_free(dir);
    }
    adi_strv_free(subs, ns);
    if (no_label > DS_MAX_LINES_PER_KIND)
        ds_lines_add(&d->errors, "ksdd: ... and %d more images without a label",
                     no_label - DS_MAX_LINES_PER_KIND);
    if (bad_label > DS_MAX_LINES_PER_KIND)
        ds_lines_add(&d->errors, "ksdd: ... and %d more unreadable labels",
                     bad_label - DS_MAX_LINES_PER_KIND);
    if (st != AD_OK) {
        found_free(&l);
        return st;
    }
    if (n_parts_dirs == 0) {
        found_free(&l);
        ds_lines_add(&d->errors, "%s: no sub-folder holds part images (expected the %s)",
                     d->root, ds_layout_help(DS_KSDD));
        return AD_OK;
    }
    return split_category(d, "ksdd", &l, o->train_fraction);
}

static ad_status open_mtd(ds_dataset *d, const ds_options *o, char *const *cats, int n_cats)
{
    if (!wants(cats, n_cats, "mtd", d)) return AD_OK;
    char **subs = NULL;
    int ns = fs_list_dir(d->root, ADI_LIST_DIRS, &subs);
    if (ns < 0) return adi_fail(AD_E_IO, "%s: cannot read the dataset folder: %s", d->root,
                               strerror(errno ? errno : EIO));
    found_list l = {0};
    cat_counts cc = {0};
    ad_status st = AD_OK;
    int n_classes = 0, have_free = 0;
    for (int i = 0; i < ns && st == AD_OK; i++) {
        if (strncmp(subs[i], "MT_", 3) || !subs[i][3]) continue;
        n_classes++;
        int good = !strcmp(subs[i], "MT_Free");
        have_free |= good;
        char *imgs = join3(d->root, subs[i], "Imgs");
        char **files = NULL;
        int nf = imgs ? fs_list_dir(imgs, ADI_LIST_FILES, &files) : -1;
        if (nf < 0) {
            ds_lines_add(&d->errors, "mtd: %s/%s has no Imgs folder (%s): class left out",
                         d->root, subs[i], ds_layout_help(DS_MTD));
            adi_free(imgs);
            continue;
        }
        int n_img = 0;
        for (int j = 0; j < nf && st == AD_OK; j++) {
            const char *e = ext_of(files[j]);
            if (strcasecmp(e, ".jpg") && strcasecmp(e, ".jpeg")) continue; /* masks are .png */
            n_img++;
            size_t sl = strlen(files[j]) - strlen(e);
            char stem[1024];
            if (sl >= sizeof stem) continue;
            memcpy(stem, files[j], sl);
            stem[sl] = 0;
            char *img = join2(imgs, files[j]);
            char *mask = NULL;
            if (!good) {
                static const char *const sfx[] = {".png", NULL};
                mask = first_existing(imgs, stem, sfx);
                if (!mask) {
                    char expected[1200];
                    snprintf(expected, sizeof expected, "%s/%s.png", imgs, stem);
                    note_no_gt(d, &cc, "mtd", img ? img : files[j], expected);
                }
            }
            size_t rl = strlen(subs[i]) + strlen(files[j]) + 8;
            char *rel = adi_malloc(rl);
            if (rel) snprintf(rel, rl, "%s/Imgs/%s", subs[i], files[j]);
            if (found_push(&l, img, rel, adi_strdup(good ? "good" : subs[i] + 3), mask, !good))
                st = adi_fail(AD_E_NOMEM, "out of memory");
        }
        if (n_img == 0)
            ds_lines_add(&d->errors, "mtd: %s has no .jpg images (%s)", imgs,
                         ds_layout_help(DS_MTD));
        adi_strv_free(files, nf);
        adi_free(imgs);
    }
    adi_strv_free(subs, ns);
    flush_counts(d, &cc, "mtd");
    if (st != AD_OK) {
        found_free(&l);
        return st;
    }
    if (n_classes == 0) {
        ds_lines_add(&d->errors, "%s: no MT_<class> folders (expected the %s)", d->root,
                     ds_layout_help(DS_MTD));
        found_free(&l);
        return AD_OK;
    }
    if (!have_free) {
        ds_lines_add(&d->errors, "%s: no MT_Free folder: no good images for the references (%s)",
                     d->root, ds_layout_help(DS_MTD));
        found_free(&l);
        return AD_OK;
    }
    return split_category(d, "mtd", &l, o->train_fraction);
}

static int label_is_good(const char *s)
{
    return !strcasecmp(s, "good") || !strcasecmp(s, "normal") || !strcasecmp(s, "ok") ||
           !strcmp(s, "0");
}

/* Path of a manifest entry: absolute as is, else relative to the CSV's folder. */
static char *manifest_path(const char *base, const char *p)
{
    return p[0] == '/' ? adi_strdup(p) : join2(base, p);
}

typedef struct {
    char *name;
    found_list train, test;
} man_cat;

static ad_status open_manifest(ds_dataset *d, char *const *cats, int n_cats)
{
    const char *csv_path = d->root;
    static const char *const names[5] = {"category", "split", "image", "label", "mask"};
    char *text = NULL;
    adi_csv_reader rd;
    int col[5];
    ad_status ost = split_csv_open(csv_path, names,
                                   "category,split,image,label[,mask] (paths relative to the CSV)",
                                   &text, &rd, col);
    if (ost != AD_OK) return ost;
    const char *slash = strrchr(csv_path, '/');
    char *base = slash ? adi_strndup(csv_path, slash == csv_path ? 1 : (size_t)(slash - csv_path))
                       : adi_strdup(".");
    if (!base) {
        adi_free(text);
        return adi_fail(AD_E_NOMEM, "out of memory");
    }
    adi_csv_row row = {0};
    char cerr[200];
    char **f;
    int nf, rr;
    man_cat *mc = NULL;
    int n_mc = 0, line = 1, missing = 0;
    ad_status st = AD_OK;
    while (st == AD_OK && (rr = adi_csv_next(&rd, &row, cerr, sizeof cerr)) > 0) {
        f = row.f;
        nf = row.n;
        line = row.line;
        if (nf == 1 && !f[0][0]) continue;
        const char *v[5];
        int is_train;
        if (!split_row(d, csv_path, line, f, nf, col, cats, n_cats, v, &is_train)) continue;
        const char *cat = v[0], *image = v[2], *label = v[3], *mask = v[4];
        int good = label_is_good(label);
        if (!good && !category_name_ok(label)) { /* the type also names report folders */
            ds_lines_add(&d->errors, "%s:%d: label '%s' is neither good nor a defect name: row "
                         "ignored", csv_path, line, label);
            continue;
        }
        if (is_train && !good) {
            ds_lines_add(&d->errors, "%s:%d: a train row must be a good image (label '%s'): row "
                         "ignored", csv_path, line, label);
            continue;
        }
        if (!image[0]) {
            ds_lines_add(&d->errors, "%s:%d: empty image path: row ignored", csv_path, line);
            continue;
        }
        char *path = manifest_path(base, image);
        if (!path) { st = adi_fail(AD_E_NOMEM, "out of memory"); break; }
        if (!is_file(path)) {
            if (missing++ < DS_MAX_LINES_PER_KIND)
                ds_lines_add(&d->errors, "%s: %s (listed in %s:%d) does not exist: left out", cat,
                             path, csv_path, line);
            adi_free(path);
            continue;
        }
        int k;
        for (k = 0; k < n_mc && strcmp(mc[k].name, cat); k++) {}
        if (k == n_mc) {
            man_cat *nv = adi_realloc(mc, (size_t)(n_mc + 1) * sizeof *nv);
            if (!nv) { adi_free(path); st = adi_fail(AD_E_NOMEM, "out of memory"); break; }
            mc = nv;
            memset(&mc[n_mc], 0, sizeof mc[n_mc]);
            if (!(mc[n_mc].name = adi_strdup(cat))) {
                adi_free(path);
                st = adi_fail(AD_E_NOMEM, "out of memory");
                break;
            }
            n_mc++;
        }
        char *mp = NULL;
        if (!good && mask[0]) {
            mp = manifest_path(base, mask);
            if (mp && !is_file(mp)) {
                ds_lines_add(&d->warnings, "%s: %s has no ground truth (%s does not exist): left "
                             "out of the pixel metrics", cat, path, mp);
                adi_free(mp);
                mp = NULL;
            }
        } else if (!good) {
            ds_lines_add(&d->warnings, "%s: %s has no mask (empty mask column): left out of the "
                         "pixel metrics", cat, path);
        }
        found_list *fl = is_train ? &mc[k].train : &mc[k].test;
        if (found_push(fl, path, adi_strdup(image), adi_strdup(good ? "good" : label), mp, !good))
            st = adi_fail(AD_E_NOMEM, "out of memory");
    }
    if (rr < 0 && st == AD_OK) st = adi_fail(AD_E_NOMEM, "%s: %s", csv_path, cerr);
    if (missing > DS_MAX_LINES_PER_KIND)
        ds_lines_add(&d->errors, "%s: ... and %d more listed files do not exist", csv_path,
                     missing - DS_MAX_LINES_PER_KIND);
    /* categories in the order asked for, else in the CSV's order */
    for (int o = 0; st == AD_OK && o < (cats ? n_cats : n_mc); o++) {
        int k = o;
        if (cats) {
            for (k = 0; k < n_mc && strcmp(mc[k].name, cats[o]); k++) {}
            if (k == n_mc) {
                ds_lines_add(&d->errors, "%s: category not found in %s", cats[o], csv_path);
                continue;
            }
        }
        man_cat *m = &mc[k];
        if (m->train.n == 0 || m->test.n == 0) {
            ds_lines_add(&d->errors, "%s: no %s rows in %s", m->name,
                         m->train.n == 0 ? "train (good reference)" : "test", csv_path);
            continue;
        }
        ds_category c = {0};
        item_list items = {0};
        c.name = adi_strdup(m->name);
        c.train = adi_calloc((size_t)m->train.n, sizeof *c.train);
        c.train_names = adi_calloc((size_t)m->train.n, sizeof *c.train_names);
        if (!c.name || !c.train || !c.train_names) {
            category_free(&c);
            st = adi_fail(AD_E_NOMEM, "out of memory");
            break;
        }
        qsort(m->train.v, (size_t)m->train.n, sizeof *m->train.v, cmp_found);
        for (int i = 0; i < m->train.n; i++) {
            c.train[i] = m->train.v[i].path;
            c.train_names[i] = m->train.v[i].name;
            m->train.v[i].path = m->train.v[i].name = NULL;
            c.n_train++;
        }
        for (int i = 0; i < m->test.n && st == AD_OK; i++) {
            found_img *t = &m->test.v[i];
            if (items_push(&items, t->path, t->name, t->type, t->mask_path, t->defect))
                st = adi_fail(AD_E_NOMEM, "out of memory");
            t->path = t->name = t->type = t->mask_path = NULL;
        }
        if (st == AD_OK) {
            qsort(items.v, (size_t)items.n, sizeof *items.v, cmp_item);
            c.test = items.v;
            c.n_test = items.n;
            items.v = NULL;
            items.n = 0;
            if (push_category(d, &c)) st = adi_fail(AD_E_NOMEM, "out of memory");
        }
        if (st != AD_OK) {
            items_free(items.v, items.n);
            category_free(&c);
        }
    }
    for (int k = 0; k < n_mc; k++) {
        adi_free(mc[k].name);
        found_free(&mc[k].train);
        found_free(&mc[k].test);
    }
    adi_free(mc);
    adi_free(base);
    adi_csv_row_free(&row);
    adi_free(text);
    return st;
}

ad_status ds_open_ex(ds_kind kind, const char *root, char *const *categories, int n_categories,
                     const ds_options *opt, ds_dataset *out)
{
    if (!root || !out) return adi_fail(AD_E_ARG, "ds_open: NULL argument");
    ds_options o = opt ? *opt : ds_default_options();
    if (kind != DS_KSDD && kind != DS_MTD && kind != DS_MANIFEST)
        return ds_open(kind, root, categories, n_categories, out);
    if (kind == DS_MANIFEST) {
        if (fs_is_dir(root))
            return adi_fail(AD_E_ARG, "%s: is a folder; the %s", root,
                            ds_layout_help(DS_MANIFEST));
        if (!is_file(root))
            return adi_fail(AD_E_IO, "%s: no such file (%s)", root, ds_layout_help(DS_MANIFEST));
    } else if (!fs_is_dir(root)) {
        return adi_fail(AD_E_IO, "%s: not a directory (expected the %s)", root,
                        ds_layout_help(kind));
    }
    ds_dataset d;
    memset(&d, 0, sizeof d);
    d.kind = kind;
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/') rl--;
    if (!(d.root = adi_strndup(root, rl))) return adi_fail(AD_E_NOMEM, "out of memory");
    ad_status st = kind == DS_KSDD  ? open_ksdd(&d, &o, categories, n_categories)
                   : kind == DS_MTD ? open_mtd(&d, &o, categories, n_categories)
                                    : open_manifest(&d, categories, n_categories);
    if (st == AD_OK && d.n_cats == 0) {
        char why[900] = "";
        if (d.errors.n) snprintf(why, sizeof why, ": %s", d.errors.v[0]);
        else snprintf(why, sizeof why, " (expected the %s)", ds_layout_help(kind));
        st = adi_fail(AD_E_IO, "%s: no usable %s categories%s", d.root, ds_kind_name(kind), why);
    }
    if (st != AD_OK) {
        ds_free(&d);
        return st;
    }
    *out = d;
    return AD_OK;
}

/* path relative to the folder `base_real` (a realpath) when it lies below it, else absolute */
static char *rel_to(const char *base_real, const char *path)
{
    char *r = realpath(path, NULL);
    if (!r) return adi_strdup(path);
    size_t bl = strlen(base_real);
    if (!strncmp(r, base_real, bl) && r[bl] == '/') {
        char *s = adi_strdup(r + bl + 1);
        adi_free(r);
        return s;
    }
    return r;
}

ad_status ds_write_manifest(const ds_dataset *d, const char *csv_path)
{
    const char *slash = strrchr(csv_path, '/');
    char *dir = slash ? adi_strndup(csv_path, slash == csv_path ? 1 : (size_t)(slash - csv_path))
                      : adi_strdup(".");
    char *base = dir ? realpath(dir, NULL) : NULL;
    if (!base) {
        ad_status st = adi_fail(AD_E_IO, "%s: cannot write into %s: %s", csv_path,
                                dir ? dir : "?", strerror(errno ? errno : ENOMEM));
        adi_free(dir);
        return st;
    }
    adi_free(dir);
    adi_sbuf b = {0};
    adi_sb_puts(&b, "category,split,image,label,mask\n");
    for (int ci = 0; ci < d->n_cats; ci++) {
        const ds_category *c = &d->cats[ci];
        for (int i = 0; i < c->n_train; i++) {
            char *r = rel_to(base, c->train[i]);
            adi_sb_csv(&b, c->name);
            adi_sb_puts(&b, ",train,");
            adi_sb_csv(&b, r ? r : c->train[i]);
            adi_sb_puts(&b, ",good,\n");
            adi_free(r);
        }
        for (int i = 0; i < c->n_test; i++) {
            const ds_test_item *t = &c->test[i];
            char *r = rel_to(base, t->path);
            char *m = t->mask_path ? rel_to(base, t->mask_path) : NULL;
            adi_sb_csv(&b, c->name);
            adi_sb_puts(&b, ",test,");
            adi_sb_csv(&b, r ? r : t->path);
            adi_sb_puts(&b, ",");
            adi_sb_csv(&b, t->defect ? t->type : "good");
            adi_sb_puts(&b, ",");
            if (m) adi_sb_csv(&b, m);
            adi_sb_puts(&b, "\n");
            adi_free(r);
            adi_free(m);
        }
    }
    adi_free(base);
    return adi_sb_write(&b, csv_path);
}
