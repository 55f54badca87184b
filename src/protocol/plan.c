/* The plan of a run: its units, the notes that come from the dataset alone, and the cut of the
 * units into shards (protocol.h). Every shard of a run computes the same plan. */
#include "protocol/protocol.h"

#include <stdio.h>
#include <string.h>

void pr_settings_key(int zeroshot, ds_kind kind, const char *preset, int resolution,
                     int segmentation, uint64_t fingerprint, char *buf, size_t n)
{
    snprintf(buf, n,
             "mode=%s;dataset=%s;preset=%s;resolution=%d;segmentation=%d;weights=%016llx;"
             "knn_k=1;mask_refs=0",
             zeroshot ? "zeroshot" : "fewshot", ds_kind_name(kind), preset, resolution,
             segmentation, (unsigned long long)fingerprint);
}

void pr_key_diff(const char *old, const char *now, char *out, size_t n)
{
    out[0] = 0;
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s", old);
    snprintf(b, sizeof b, "%s", now);
    for (char *sa = NULL, *ta = strtok_r(a, ";", &sa); ta; ta = strtok_r(NULL, ";", &sa)) {
        char *eq = strchr(ta, '=');
        if (!eq) continue;
        size_t kl = (size_t)(eq - ta);
        const char *found = NULL;
        for (const char *p = b; p && *p;) {
            if (!strncmp(p, ta, kl) && p[kl] == '=') { found = p + kl + 1; break; }
            p = strchr(p, ';');
            if (p) p++;
        }
        size_t fl = found ? strcspn(found, ";") : 0;
        if (!found || fl != strlen(eq + 1) || strncmp(found, eq + 1, fl)) {
            size_t l = strlen(out);
            snprintf(out + l, n - l, "%s%.*s: %s there, %.*s now", l ? "; " : "", (int)kl, ta,
                     eq + 1, (int)fl, found ? found : "(unset)");
        }
    }
    if (!out[0]) snprintf(out, n, "%s there, %s now", old, now);
}

void pr_run_path(const char *out, int k, int seed, const char *cat, char *dir, size_t dn,
                 char *path, size_t pn)
{
    char sk[32];
    pr_shots_key(k, sk, sizeof sk);
    snprintf(dir, dn, "%s/runs/%sshot/seed%d", out, sk, seed);
    snprintf(path, pn, "%s/%s.json", dir, cat);
}

ad_status pr_plan(ad_eval_results *r, const ds_dataset *d, const char *preset)
{
    int per_cat = r->n_shots * r->n_seeds;
    r->n_cats = d->n_cats;
    r->cats = adi_calloc((size_t)(d->n_cats ? d->n_cats : 1), sizeof *r->cats);
    r->units = adi_calloc((size_t)(per_cat * d->n_cats + 1), sizeof *r->units);
    r->grid = adi_calloc((size_t)(per_cat * d->n_cats + 1), sizeof *r->grid);
    if (!r->cats || !r->units || !r->grid) return AD_E_NOMEM;
    for (int i = 0; i < d->n_cats; i++)
        if (!(r->cats[i] = adi_strdup(d->cats[i].name))) return AD_E_NOMEM;
    for (int i = 0; i < d->errors.n; i++)
        if (adi_strlist_push(&r->plan_errors, d->errors.v[i])) return AD_E_NOMEM;
    for (int i = 0; i < d->warnings.n; i++)
        if (adi_strlist_push(&r->plan_warnings, d->warnings.v[i])) return AD_E_NOMEM;
    for (int ci = 0; ci < d->n_cats; ci++) {
        const ds_category *c = &d->cats[ci];
        int mask = 0, rotate = 0;
        if (ad_preset_lookup(preset, ds_kind_name(d->kind), c->name, &mask, &rotate) != AD_OK) {
            if (adi_strlist_addf(&r->plan_errors, "%s: %s", c->name, ad_errmsg())) return AD_E_NOMEM;
            continue;
        }
        if (r->zeroshot) rotate = 0;
        for (int s = 0; s < r->n_shots; s++)
            for (int dd = 0; dd < r->n_seeds; dd++) {
                int k = r->shots[s], seed = r->seeds[dd], first = 0, count = 0;
                if (k < 0 && dd > 0) continue; /* full shot: every seed has the same references */
                char sk[32], tag[64];
                pr_shots_key(k, sk, sizeof sk);
                snprintf(tag, sizeof tag, "%s-shot seed %d", sk, seed);
                if (!r->zeroshot) {
                    count = ds_select_shots(c, k, seed, &first);
                    if (count == 0) {
                        if (adi_strlist_addf(&r->plan_errors,
                                             "%s %s: no references left (only %d in train/good): "
                                             "run skipped",
                                             c->name, tag, c->n_train))
                            return AD_E_NOMEM;
                        continue;
                    }
                    if (k > 0 && count < k &&
                        adi_strlist_addf(&r->plan_warnings,
                                         "%s %s: only %d of %d references available", c->name, tag,
                                         count, k))
                        return AD_E_NOMEM;
                }
                pr_unit *pu = &r->units[r->n_units];
                ad_eval_unit *u = &pu->u;
                u->i_shot = s;
                u->i_seed = dd;
                u->i_cat = ci;
                u->shots = k;
                u->seed = seed;
                u->state = AD_UNIT_PLANNED;
                u->n_test = c->n_test;
                u->mask = mask;
                u->rotate = rotate;
                pu->first = first;
                pu->count = count;
                r->n_units++; /* from here ad_eval_results_free frees what is set */
                if (!(u->category = adi_strdup(c->name))) return AD_E_NOMEM;
                if (count) {
                    if (!(u->references = adi_calloc((size_t)count, sizeof *u->references)))
                        return AD_E_NOMEM;
                    for (int j = 0; j < count; j++) {
                        if (!(u->references[j] = adi_strdup(c->train_names[first + j])))
                            return AD_E_NOMEM;
                        u->n_references++;
                    }
                }
            }
    }
    return AD_OK;
}

void pr_plan_shards(ad_eval_results *r, int shard_count)
{
    double total = 0;
    for (int i = 0; i < r->n_units; i++) total += r->units[i].u.n_test > 0 ? r->units[i].u.n_test : 1;
    double before = 0;
    for (int i = 0; i < r->n_units; i++) {
        double cost = r->units[i].u.n_test > 0 ? r->units[i].u.n_test : 1;
        /* the unit goes to the shard its middle falls in: contiguous parts of ~equal cost */
        int s = shard_count > 1 && total > 0 ? (int)((before + cost / 2) * shard_count / total) : 0;
        if (s >= shard_count) s = shard_count - 1;
        r->units[i].shard = s;
        before += cost;
    }
}

static uint64_t hash_str(uint64_t h, const char *s)
{
    return adi_fnv1a(h, s ? s : "", (s ? strlen(s) : 0) + 1);
}

uint64_t pr_plan_hash(const ad_eval_results *r, const ds_dataset *d)
{
    uint64_t h = AD_FNV_INIT;
    h = hash_str(h, r->key);
    for (int i = 0; i < r->n_units; i++) {
        const ad_eval_unit *u = &r->units[i].u;
        char t[64];
        snprintf(t, sizeof t, "%d/%d/%d", u->shots, u->seed, u->n_test);
        h = hash_str(h, u->category);
        h = hash_str(h, t);
        for (int j = 0; j < u->n_references; j++) h = hash_str(h, u->references[j]);
    }
    for (int c = 0; c < d->n_cats; c++)
        for (int i = 0; i < d->cats[c].n_test; i++) h = hash_str(h, d->cats[c].test[i].name);
    return h;
}
