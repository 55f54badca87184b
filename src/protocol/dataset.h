/* Benchmark dataset layouts (the library module behind ad_dataset_*, anomalydino_eval.h): which files are the reference ("train/good")
 * images of a category, which are its test images, their labels and ground-truth masks.
 *
 * Layouts (docs/datasets.md; the protocol's reading of them: docs/design.md):
 *   mvtec   ROOT/CAT/train/good/FILE, ROOT/CAT/test/TYPE/NAME.png,
 *           ROOT/CAT/ground_truth/TYPE/NAME_mask.png
 *   visa    the prepared 1-class layout of amazon-science/spot-diff prepare_data.py
 *           (ROOT/CAT/train/good, ROOT/CAT/test/{good,bad}/NAME.JPG, ROOT/CAT/ground_truth/bad/NAME.png),
 *           or the raw download: ROOT/split_csv/1cls.csv (object,split,label,image,mask; paths
 *           relative to ROOT) - recognised by that file.
 *   folder  a user's own parts: ROOT/CAT/train/good, ROOT/CAT/test/<good|any defect name>, optional
 *           ROOT/CAT/ground_truth/TYPE/STEM_mask.EXT or STEM.EXT (EXT: png, bmp, tif, tiff, jpg,
 *           jpeg); ROOT itself may be one category.
 *   ksdd    KolektorSDD as downloaded: ROOT/kosNN/PartN.jpg with PartN_label.bmp; an empty label
 *           means a good part. One category, "ksdd". No train split: see ds_split_count.
 *   mtd     Magnetic Tile Defects as downloaded: ROOT/MT_<class>/Imgs/X.jpg with its mask X.png;
 *           MT_Free is good, every other MT_* class a defect type. One category, "mtd". No train
 *           split: see ds_split_count.
 *   manifest  a CSV (--data FILE.csv) with the columns category, split (train|test), image,
 *           label (good|normal|ok|0 for good parts, anything else names the defect type) and
 *           mask (may be empty); paths relative to the CSV's folder, or absolute.
 *
 * Masks may be PNG, BMP, TIFF or JPEG (io.h adi_io_read_gt_mask: values all below 128 count
 * every nonzero pixel, any other mask is thresholded at 128).
 *
 * Nothing here decodes images except KolektorSDD's labels (the label decides good or defective):
 * the lists are built from file names only (fast), and problems that
 * leave something out (a missing category, a defect image without ground truth) are recorded as
 * lines in `warnings` / `errors` for the run's summary. */
#ifndef AD_PROTOCOL_DATASET_H
#define AD_PROTOCOL_DATASET_H

#include "anomalydino_eval.h"
#include "core/core.h"

typedef enum {
    DS_MVTEC = 0, DS_VISA = 1, DS_FOLDER = 2, DS_KSDD = 3, DS_MTD = 4, DS_MANIFEST = 5
} ds_kind;

/* Layouts without a train split (ksdd, mtd): per category, the first
 * ds_split_count(n_good, fraction) good images in sorted (byte) order of their path below ROOT
 * are the references, the other good images and every defective one are tested. */
#define DS_DEFAULT_TRAIN_FRACTION 0.5
/* floor(fraction * n_good), at least 1 and, with 2 or more good images, at most n_good - 1 (so
 * that some good image is tested). */
int ds_split_count(int n_good, double fraction);

typedef struct {
    double train_fraction;  /* DS_DEFAULT_TRAIN_FRACTION */
    size_t max_pixels;      /* for the masks read while opening (ksdd); 0 = no limit */
} ds_options;
ds_options ds_default_options(void);

/* The public types (anomalydino_eval.h) are the module's own. */
typedef ad_dataset_item ds_test_item;
typedef ad_dataset_category ds_category;
/* Lines of notes: a summary says each thing once (ds_lines_add drops repeats). */
typedef adi_strlist ds_lines;

typedef struct ad_dataset {
    ds_kind kind;
    int visa_raw;         /* read from split_csv/1cls.csv */
    char *root;           /* as resolved (VisA: ROOT/1cls when the categories are there) */
    ds_category *cats;
    int n_cats;
    ds_lines warnings;    /* left out, but the run is still what was asked for */
    ds_lines errors;      /* something asked for that cannot be used */
    double train_fraction;       /* the split of layouts without one (ksdd, mtd) */
    ad_dataset_entry *entries;   /* the flat list (ad_dataset_entry_at), built on open */
    size_t n_entries;
} ds_dataset;

/* "mvtec", "visa", "folder", "ksdd", "mtd", "manifest" (case-insensitive; "mvtec_ad",
 * "mvtec-ad", "kolektorsdd", "magnetic_tile" accepted). */
ad_status ds_kind_parse(const char *s, ds_kind *out);
const char *ds_kind_name(ds_kind k);

/* Builds the file lists. categories == NULL: every category found (mvtec/visa: the standard ones
 * present, in the original's order, a warning naming the missing ones). Otherwise exactly those
 * listed, in that order; a missing one is an error line and is left out. Fails (adi_fail) only when
 * the root cannot be read or nothing usable remains. */
ad_status ds_open(ds_kind kind, const char *root, char *const *categories, int n_categories,
                  ds_dataset *out);
void ds_free(ds_dataset *d);
/* Same with options (ds_open uses ds_default_options()). For manifest, root is the CSV file. */
ad_status ds_open_ex(ds_kind kind, const char *root, char *const *categories, int n_categories,
                     const ds_options *opt, ds_dataset *out);
/* The manifest of an opened dataset (category,split,image,label,mask): every reference as
 * split train, every test image as test; paths relative to the CSV's folder when the files
 * lie below it, absolute otherwise. Reading it back with --dataset manifest gives the same
 * lists. */
ad_status ds_write_manifest(const ds_dataset *d, const char *csv_path);
/* The layout ROOT looks like (kosNN folders: ksdd, MT_* folders: mtd, split_csv/1cls.csv:
 * visa, CAT/train/good: folder), for hints in error messages; 0 when nothing fits. */
int ds_guess_layout(const char *root, ds_kind *out);
/* One line naming the layout expected, for error messages. */
const char *ds_layout_help(ds_kind k);

/* ds_open over a file system the caller provides (the fuzz target's in-memory tree): is_file /
 * is_dir answer for a path, list_dir fills *names as adi_io_list_dir does (sorted, freed with
 * adi_strv_free; -1 if not a directory), read_file as adi_io_read_file. */
typedef struct {
    int (*is_file)(void *ctx, const char *path);
    int (*is_dir)(void *ctx, const char *path);
    int (*list_dir)(void *ctx, const char *dir, int kind, char ***names);
    char *(*read_file)(void *ctx, const char *path, size_t *len);
    void *ctx;
} ds_fs;
ad_status ds_open_fs(const ds_fs *fs, ds_kind kind, const char *root, char *const *categories,
                     int n_categories, ds_dataset *out);

/* Reference block of the original: sorted train names [seed*k, (seed+1)*k), clipped to what
 * exists; k < 0 means every reference (full shot). Returns the number selected (0 when the block
 * is empty) and sets *first. */
int ds_select_shots(const ds_category *c, int k, int seed, int *first);

/* Appends a formatted line to a list unless it is there already. Out of memory, the line is
 * counted in l->dropped (the summary says how many were lost). */
void ds_lines_add(ds_lines *l, const char *fmt, ...) AD_PRINTF(2, 3);
void ds_lines_free(ds_lines *l);

/* The standard category lists (the original's order, docs/design.md), NULL-terminated. */
extern const char *const ds_mvtec_categories[];
extern const char *const ds_visa_categories[];

#endif
