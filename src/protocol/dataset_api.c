/* The public face of the dataset module (anomalydino_eval.h): an opened dataset as a handle,
 * its categories, the flat (category, split, path, label, mask) list and its notes. */
#include "protocol/dataset.h"

#include "io/io.h"

#include <string.h>

ad_status ad_layout_parse(const char *name, ad_layout *out)
{
    ds_kind k;
    if (!out) return adi_fail(AD_E_ARG, "ad_layout_parse: NULL output");
    ad_status st = ds_kind_parse(name, &k);
    if (st == AD_OK) *out = (ad_layout)k;
    return st;
}

const char *ad_layout_name(ad_layout layout) { return ds_kind_name((ds_kind)layout); }

ad_dataset_params ad_dataset_default_params(void)
{
    ad_dataset_params p;
    memset(&p, 0, sizeof p);
    p.train_fraction = DS_DEFAULT_TRAIN_FRACTION;
    return p;
}

/* The flat list, pointing into the categories. */
static ad_status build_entries(ds_dataset *d)
{
    size_t n = 0;
    for (int c = 0; c < d->n_cats; c++)
        n += (size_t)d->cats[c].n_train + (size_t)d->cats[c].n_test;
    d->entries = adi_calloc(n ? n : 1, sizeof *d->entries);
    if (!d->entries) return AD_E_NOMEM;
    size_t k = 0;
    for (int c = 0; c < d->n_cats; c++) {
        const ds_category *cat = &d->cats[c];
        for (int i = 0; i < cat->n_train; i++)
            d->entries[k++] = (ad_dataset_entry){cat->name, AD_SPLIT_TRAIN, cat->train[i], 0, NULL};
        for (int i = 0; i < cat->n_test; i++)
            d->entries[k++] = (ad_dataset_entry){cat->name, AD_SPLIT_TEST, cat->test[i].path,
                                                 cat->test[i].defect, cat->test[i].mask_path};
    }
    d->n_entries = k;
    return AD_OK;
}

ad_dataset *ad_dataset_open(ad_layout layout, const char *root, const ad_dataset_params *p)
{
    if (!root) return adi_fail_null(AD_E_ARG, "ad_dataset_open: NULL root");
    if ((int)layout < DS_MVTEC || (int)layout > DS_MANIFEST)
        return adi_fail_null(AD_E_ARG, "ad_dataset_open: unknown layout %d", (int)layout);
    ad_dataset_params dp = p ? *p : ad_dataset_default_params();
    if (dp.n_categories < 0 || (dp.n_categories > 0 && !dp.categories))
        return adi_fail_null(AD_E_ARG, "ad_dataset_open: bad category list");
    ds_dataset *d = adi_calloc(1, sizeof *d);
    if (!d) return NULL;
    ds_options o = ds_default_options();
    o.train_fraction = dp.train_fraction;
    o.max_pixels = dp.max_pixels;
    ad_status st = ds_open_ex((ds_kind)layout, root, (char *const *)dp.categories,
                              dp.categories ? dp.n_categories : 0, &o, d);
    d->train_fraction = o.train_fraction;
    if (st == AD_OK && build_entries(d) != AD_OK) {
        ds_free(d);
        st = adi_fail(AD_E_NOMEM, "%s: out of memory", root);
    }
    if (st != AD_OK) {
        adi_free(d);
        return NULL;
    }
    return d;
}

void ad_dataset_free(ad_dataset *d)
{
    if (!d) return;
    ds_free(d);
    adi_free(d);
}

ad_layout ad_dataset_layout(const ad_dataset *d) { return d ? (ad_layout)d->kind : AD_LAYOUT_MVTEC; }
const char *ad_dataset_root(const ad_dataset *d) { return d ? d->root : NULL; }
int ad_dataset_category_count(const ad_dataset *d) { return d ? d->n_cats : 0; }

const ad_dataset_category *ad_dataset_category_at(const ad_dataset *d, int i)
{
    return d && i >= 0 && i < d->n_cats ? &d->cats[i] : NULL;
}

size_t ad_dataset_entry_count(const ad_dataset *d) { return d ? d->n_entries : 0; }

const ad_dataset_entry *ad_dataset_entry_at(const ad_dataset *d, size_t i)
{
    return d && d->entries && i < d->n_entries ? &d->entries[i] : NULL;
}

int ad_dataset_note_count(const ad_dataset *d) { return d ? d->errors.n + d->warnings.n : 0; }

const char *ad_dataset_note(const ad_dataset *d, int i, int *is_error)
{
    if (!d || i < 0 || i >= d->errors.n + d->warnings.n) return NULL;
    int err = i < d->errors.n;
    if (is_error) *is_error = err;
    return err ? d->errors.v[i] : d->warnings.v[i - d->errors.n];
}

ad_status ad_dataset_write_manifest(const ad_dataset *d, const char *csv_path)
{
    if (!d || !csv_path) return adi_fail(AD_E_ARG, "ad_dataset_write_manifest: NULL argument");
    return ds_write_manifest(d, csv_path);
}

int ad_dataset_select_shots(const ad_dataset_category *c, int k, int seed, int *first)
{
    int f = 0;
    if (!c) return 0;
    int n = ds_select_shots(c, k, seed, &f);
    if (first) *first = f;
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* image files                                                                                 */
/* ------------------------------------------------------------------------------------------ */

ad_status ad_image_read(const char *path, size_t max_pixels, ad_image *out)
{
    if (!path || !out) return adi_fail(AD_E_ARG, "ad_image_read: NULL argument");
    return adi_io_read_image_max(path, max_pixels, out);
}

ad_status ad_mask_read(const char *path, size_t max_pixels, uint8_t **out, int *w, int *h)
{
    if (!path || !out || !w || !h) return adi_fail(AD_E_ARG, "ad_mask_read: NULL argument");
    return adi_io_read_gt_mask(path, max_pixels, out, w, h);
}

void ad_mask_free(uint8_t *mask) { adi_free(mask); }
