/* Run records and the results handle (protocol.h). A unit's record in OUT/runs/ is JSON with
 * the fields "settings_key", "version", "category", "shots", "seed", "mask", "rotate",
 * "references" (names), "test_listing", "skipped", "bank_rows", "bank_seconds", "images"
 * ([{"image", "label", "score", "seconds"}]), "metrics" ({name: value}, absent names were not
 * computed), "examples" ([{"image", "label", "score", "files": {"image", "gt", "map"}}], paths
 * relative to the folder the run wrote) and "examples_vmax". Here, and only here, records are
 * turned into ad_eval_unit structs and back. */
#include "protocol/protocol.h"

#include "io/io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const pr_metric_names[AD_EVAL_N_METRICS] = {
    "image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_f1max", "pixel_aupro"};

const char *ad_metric_name(ad_metric m)
{
    return (int)m >= 0 && (int)m < AD_EVAL_N_METRICS ? pr_metric_names[m] : NULL;
}

void pr_shots_key(int k, char *buf, size_t n)
{
    if (k < 0) snprintf(buf, n, "full");
    else snprintf(buf, n, "%d", k);
}

/* ------------------------------------------------------------------------------------------ */
/* JSON files                                                                                  */
/* ------------------------------------------------------------------------------------------ */

cJSON *pr_read_json(const char *path)
{
    size_t len;
    char *text = adi_io_read_file(path, &len);
    if (!text) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    adi_free(text);
    if (!j) adi_fail(AD_E_FORMAT, "%s: not valid JSON", path);
    return j;
}

ad_status pr_write_json(const char *path, const cJSON *obj)
{
    char *s = cJSON_Print(obj);
    if (!s) return adi_fail(AD_E_NOMEM, "%s: out of memory formatting JSON", path);
    size_t n = strlen(s);
    char *t = adi_malloc(n + 2);
    if (!t) {
        cJSON_free(s);
        return AD_E_NOMEM;
    }
    memcpy(t, s, n);
    cJSON_free(s);
    t[n] = '\n';
    t[n + 1] = 0;
    ad_status st = adi_io_write_file(path, t, n + 1);
    adi_free(t);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* unit <-> record                                                                             */
/* ------------------------------------------------------------------------------------------ */

void pr_unit_clear(pr_unit *pu)
{
    ad_eval_unit *u = &pu->u;
    for (int i = 0; i < u->n_images; i++) adi_free((char *)u->images[i].image);
    adi_free(u->images);
    adi_strv_free(u->skipped, u->n_skipped);
    for (int i = 0; i < u->n_examples; i++) {
        adi_free((char *)u->examples[i].image);
        adi_free((char *)u->examples[i].file_image);
        adi_free((char *)u->examples[i].file_gt);
        adi_free((char *)u->examples[i].file_map);
    }
    adi_free(u->examples);
    u->images = NULL;
    u->skipped = NULL;
    u->examples = NULL;
    u->n_images = u->n_skipped = u->n_examples = 0;
    u->metrics_present = 0;
    u->bank_rows = u->bank_seconds = u->examples_vmax = 0;
    adi_free(pu->base_dir);
    pu->base_dir = NULL;
}

/* A number that reads back as the same double: cJSON prints 15 digits when they read back as a
 * value within an epsilon of it, which loses the last bits; a resumed or merged unit must give
 * the metrics a fresh run gives, bit for bit. */
static cJSON *add_exact(cJSON *o, const char *name, double v)
{
    char t[40];
    if (!isfinite(v)) return cJSON_AddNullToObject(o, name);
    snprintf(t, sizeof t, "%.15g", v);
    if (strtod(t, NULL) != v) snprintf(t, sizeof t, "%.17g", v);
    return cJSON_AddRawToObject(o, name, t);
}

static cJSON *string_array(char *const *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *s = cJSON_CreateString(v[i] ? v[i] : "");
        if (!s) { cJSON_Delete(a); return NULL; }
        cJSON_AddItemToArray(a, s);
    }
    return a;
}

static int string_array_equals(const cJSON *arr, char *const *v, int n)
{
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n) return 0;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || strcmp(it->valuestring, v[i])) return 0;
        i++;
    }
    return 1;
}

cJSON *pr_record_to_json(const pr_unit *pu, const char *key, char *const *listing, int n_listing)
{
    const ad_eval_unit *u = &pu->u;
    cJSON *run = cJSON_CreateObject();
    if (!run) return NULL;
    int ok = cJSON_AddStringToObject(run, "settings_key", key) &&
             cJSON_AddStringToObject(run, "version", ad_version()) &&
             cJSON_AddStringToObject(run, "category", u->category) &&
             cJSON_AddNumberToObject(run, "shots", u->shots) &&
             cJSON_AddNumberToObject(run, "seed", u->seed) &&
             cJSON_AddBoolToObject(run, "mask", u->mask) &&
             cJSON_AddBoolToObject(run, "rotate", u->rotate);
    cJSON *a;
    ok = ok && (a = string_array(u->references, u->n_references)) &&
         cJSON_AddItemToObject(run, "references", a);
    ok = ok && (a = string_array(listing, n_listing)) &&
         cJSON_AddItemToObject(run, "test_listing", a);
    ok = ok && (a = string_array(u->skipped, u->n_skipped)) &&
         cJSON_AddItemToObject(run, "skipped", a);
    ok = ok && add_exact(run, "bank_rows", u->bank_rows) &&
         add_exact(run, "bank_seconds", u->bank_seconds);
    cJSON *imgs = ok ? cJSON_AddArrayToObject(run, "images") : NULL;
    ok = ok && imgs;
    for (int i = 0; ok && i < u->n_images; i++) {
        const ad_eval_image *im = &u->images[i];
        cJSON *it = cJSON_CreateObject();
        ok = it && cJSON_AddStringToObject(it, "image", im->image) &&
             cJSON_AddNumberToObject(it, "label", im->label) &&
             add_exact(it, "score", im->score) && add_exact(it, "seconds", im->seconds);
        if (it) cJSON_AddItemToArray(imgs, it);
    }
    if (ok && u->metrics_present) {
        cJSON *m = cJSON_AddObjectToObject(run, "metrics");
        ok = m != NULL;
        for (int k = 0; ok && k < AD_EVAL_N_METRICS; k++)
            if (u->metrics_present >> k & 1)
                ok = add_exact(m, pr_metric_names[k], u->metrics[k]) != NULL;
    }
    if (ok && u->n_examples) {
        cJSON *arr = cJSON_AddArrayToObject(run, "examples");
        ok = arr && add_exact(run, "examples_vmax", u->examples_vmax);
        for (int k = 0; ok && k < u->n_examples; k++) {
            const ad_eval_example *e = &u->examples[k];
            cJSON *x = cJSON_CreateObject(), *files = cJSON_CreateObject();
            ok = x && files;
            if (ok) {
                cJSON_AddStringToObject(files, "image", e->file_image);
                cJSON_AddStringToObject(files, "gt", e->file_gt);
                cJSON_AddStringToObject(files, "map", e->file_map);
                cJSON_AddStringToObject(x, "image", e->image);
                cJSON_AddNumberToObject(x, "label", e->label);
                add_exact(x, "score", e->score);
                cJSON_AddItemToObject(x, "files", files);
                cJSON_AddItemToArray(arr, x);
            } else {
                cJSON_Delete(x);
                cJSON_Delete(files);
            }
        }
    }
    if (!ok) {
        cJSON_Delete(run);
        return NULL;
    }
    return run;
}

static double num(const cJSON *o, const char *k, double dflt)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : dflt;
}

static char *str_dup(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return adi_strdup(cJSON_IsString(x) && x->valuestring ? x->valuestring : "");
}

int pr_record_from_json(pr_unit *pu, const cJSON *j, const char *key, char *const *refs,
                        int n_refs, char *const *listing, int n_listing, const char **why)
{
    static const char *const whys[] = {"not a record", "made with other settings",
                                       "made from other references", "made from other test images",
                                       "out of memory"};
    ad_eval_unit *u = &pu->u;
    const char *dummy;
    if (!why) why = &dummy;
    *why = whys[0];
    if (!cJSON_IsObject(j)) return -1;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "settings_key");
    if (key && (!cJSON_IsString(k) || strcmp(k->valuestring, key))) { *why = whys[1]; return -1; }
    if (refs && !string_array_equals(cJSON_GetObjectItemCaseSensitive(j, "references"), refs,
                                     n_refs)) {
        *why = whys[2];
        return -1;
    }
    if (listing && !string_array_equals(cJSON_GetObjectItemCaseSensitive(j, "test_listing"),
                                        listing, n_listing)) {
        *why = whys[3];
        return -1;
    }
    pr_unit_clear(pu);
    *why = whys[4];
    u->bank_rows = num(j, "bank_rows", 0);
    u->bank_seconds = num(j, "bank_seconds", 0);
    if (!refs) { /* a record read on its own (merge checks it against the plan) */
        u->shots = (int)num(j, "shots", 0);
        u->seed = (int)num(j, "seed", 0);
    }
    const cJSON *it, *arr = cJSON_GetObjectItemCaseSensitive(j, "skipped");
    int n = cJSON_GetArraySize(arr);
    if (n > 0) {
        if (!(u->skipped = adi_calloc((size_t)n, sizeof *u->skipped))) goto nomem;
        cJSON_ArrayForEach(it, arr) if (cJSON_IsString(it))
        {
            if (!(u->skipped[u->n_skipped] = adi_strdup(it->valuestring))) goto nomem;
            u->n_skipped++;
        }
    }
    arr = cJSON_GetObjectItemCaseSensitive(j, "images");
    n = cJSON_GetArraySize(arr);
    if (n > 0) {
        if (!(u->images = adi_calloc((size_t)n, sizeof *u->images))) goto nomem;
        cJSON_ArrayForEach(it, arr)
        {
            ad_eval_image *im = &u->images[u->n_images];
            if (!(im->image = str_dup(it, "image"))) goto nomem;
            im->label = (int)num(it, "label", -1);
            im->score = num(it, "score", NAN);
            im->seconds = num(it, "seconds", 0);
            u->n_images++;
        }
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "metrics");
    for (int q = 0; q < AD_EVAL_N_METRICS; q++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(m, pr_metric_names[q]);
        if (cJSON_IsNumber(x) && isfinite(x->valuedouble)) {
            u->metrics[q] = x->valuedouble;
            u->metrics_present |= 1u << q;
        }
    }
    arr = cJSON_GetObjectItemCaseSensitive(j, "examples");
    n = cJSON_GetArraySize(arr);
    u->examples_vmax = num(j, "examples_vmax", 0);
    if (n > 0) {
        if (!(u->examples = adi_calloc((size_t)n, sizeof *u->examples))) goto nomem;
        cJSON_ArrayForEach(it, arr)
        {
            ad_eval_example *e = &u->examples[u->n_examples];
            const cJSON *files = cJSON_GetObjectItemCaseSensitive(it, "files");
            e->label = (int)num(it, "label", -1);
            e->score = num(it, "score", NAN);
            u->n_examples++; /* counted first: pr_unit_clear frees what was set */
            if (!(e->image = str_dup(it, "image")) || !(e->file_image = str_dup(files, "image")) ||
                !(e->file_gt = str_dup(files, "gt")) || !(e->file_map = str_dup(files, "map")))
                goto nomem;
        }
    }
    return 0;
nomem:
    pr_unit_clear(pu);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* the results handle                                                                          */
/* ------------------------------------------------------------------------------------------ */

ad_eval_results *pr_results_new(void) { return adi_calloc(1, sizeof(ad_eval_results)); }

void ad_eval_results_free(ad_eval_results *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_units; i++) {
        pr_unit_clear(&r->units[i]);
        adi_free((char *)r->units[i].u.category);
        adi_strv_free(r->units[i].u.references, r->units[i].u.n_references);
    }
    adi_free(r->units);
    adi_free(r->grid);
    adi_strv_free(r->cats, r->n_cats);
    cJSON_Delete(r->settings);
    if (r->settings_text) cJSON_free(r->settings_text);
    adi_free(r->out_dir);
    adi_strlist_free(&r->plan_errors);
    adi_strlist_free(&r->plan_warnings);
    adi_strlist_free(&r->run_errors);
    adi_strlist_free(&r->notes);
    adi_free(r);
}

void pr_fill_grid(ad_eval_results *r)
{
    size_t total = (size_t)r->n_shots * (size_t)r->n_seeds * (size_t)r->n_cats;
    for (size_t i = 0; i < total; i++) r->grid[i] = NULL;
    for (int i = 0; i < r->n_units; i++) {
        pr_unit *pu = &r->units[i];
        if (pu->u.state != AD_UNIT_COMPUTED && pu->u.state != AD_UNIT_RESUMED) continue;
        r->grid[((size_t)pu->u.i_shot * (size_t)r->n_seeds + (size_t)pu->u.i_seed) *
                    (size_t)r->n_cats + (size_t)pu->u.i_cat] = pu;
    }
}

/* Errors (plan, units' own problems in plan order, the run's), then warnings; each line once. */
void pr_build_notes(ad_eval_results *r)
{
    adi_strlist_free(&r->notes);
    adi_strlist *l = &r->notes;
#define ADD(s)                                                                                 \
    do {                                                                                       \
        if (adi_strlist_find(l, (s)) < 0 && adi_strlist_push(l, (s))) l->dropped++;            \
    } while (0)
    for (int i = 0; i < r->plan_errors.n; i++) ADD(r->plan_errors.v[i]);
    for (int i = 0; i < r->n_units; i++) {
        const ad_eval_unit *u = &r->units[i].u;
        if (u->state != AD_UNIT_COMPUTED && u->state != AD_UNIT_RESUMED) continue;
        for (int k = 0; k < u->n_skipped; k++) ADD(u->skipped[k]);
    }
    for (int i = 0; i < r->run_errors.n; i++) ADD(r->run_errors.v[i]);
    int lost = r->plan_errors.dropped + r->run_errors.dropped + l->dropped;
    if (lost) {
        char line[120];
        snprintf(line, sizeof line, "%d more problem line(s) lost: out of memory", lost);
        ADD(line);
    }
    r->n_note_errors = l->n;
    for (int i = 0; i < r->plan_warnings.n; i++) ADD(r->plan_warnings.v[i]);
#undef ADD
}

int ad_eval_unit_count(const ad_eval_results *r) { return r ? r->n_units : 0; }

const ad_eval_unit *ad_eval_unit_at(const ad_eval_results *r, int i)
{
    return r && i >= 0 && i < r->n_units ? &r->units[i].u : NULL;
}

int ad_eval_category_count(const ad_eval_results *r) { return r ? r->n_cats : 0; }

const char *ad_eval_category(const ad_eval_results *r, int i)
{
    return r && i >= 0 && i < r->n_cats ? r->cats[i] : NULL;
}

ad_eval_summary ad_eval_get_summary(const ad_eval_results *r)
{
    ad_eval_summary s;
    memset(&s, 0, sizeof s);
    if (!r) return s;
    for (int i = 0; i < r->n_units; i++) {
        switch (r->units[i].u.state) {
        case AD_UNIT_COMPUTED: s.computed++; break;
        case AD_UNIT_RESUMED: s.resumed++; break;
        case AD_UNIT_FAILED: s.failed++; break;
        default: s.planned++; break;
        }
    }
    s.n_errors = r->n_note_errors;
    s.n_warnings = r->notes.n - r->n_note_errors;
    return s;
}

int ad_eval_note_count(const ad_eval_results *r) { return r ? r->notes.n : 0; }

const char *ad_eval_note(const ad_eval_results *r, int i, int *is_error)
{
    if (!r || i < 0 || i >= r->notes.n) return NULL;
    if (is_error) *is_error = i < r->n_note_errors;
    return r->notes.v[i];
}

const char *ad_eval_settings_json(const ad_eval_results *r)
{
    return r ? r->settings_text : NULL;
}
