/* Shards: the manifest each shard writes, and ad_eval_merge (protocol.h, docs/eval.md).
 *
 * OUT/shards/shard-I-of-N.json holds {"shard": I, "of": N, "key": settings key, "plan": plan
 * fingerprint, "units": [{"category", "shots", "seed", "n_test", "mask", "rotate",
 * "references", "shard", "state"}] (the whole plan, every unit with the shard that runs it and,
 * for this shard's units, how it ended), "plan_errors", "plan_warnings", "run_errors"}. */
#include "protocol/protocol.h"

#include "io/io.h"

#include <stdio.h>
#include <string.h>

static const char *const state_names[] = {"planned", "computed", "resumed", "failed"};

static cJSON *strings(const adi_strlist *l)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < l->n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(l->v[i]));
    return a;
}

ad_status pr_write_shard_manifest(const ad_eval_results *r, uint64_t plan_hash)
{
    char hex[32], name[96];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)plan_hash);
    snprintf(name, sizeof name, "shards/shard-%d-of-%d.json", r->shard_index, r->shard_count);
    cJSON *m = cJSON_CreateObject();
    cJSON *units = m ? cJSON_CreateArray() : NULL;
    int ok = m && units;
    if (ok) {
        cJSON_AddNumberToObject(m, "shard", r->shard_index);
        cJSON_AddNumberToObject(m, "of", r->shard_count);
        cJSON_AddStringToObject(m, "key", r->key);
        cJSON_AddStringToObject(m, "plan", hex);
        cJSON_AddItemToObject(m, "units", units);
    }
    for (int i = 0; ok && i < r->n_units; i++) {
        const pr_unit *pu = &r->units[i];
        const ad_eval_unit *u = &pu->u;
        cJSON *x = cJSON_CreateObject(), *refs = cJSON_CreateArray();
        ok = x && refs;
        if (!ok) {
            cJSON_Delete(x);
            cJSON_Delete(refs);
            break;
        }
        for (int k = 0; k < u->n_references; k++)
            cJSON_AddItemToArray(refs, cJSON_CreateString(u->references[k]));
        cJSON_AddStringToObject(x, "category", u->category);
        cJSON_AddNumberToObject(x, "shots", u->shots);
        cJSON_AddNumberToObject(x, "seed", u->seed);
        cJSON_AddNumberToObject(x, "n_test", u->n_test);
        cJSON_AddBoolToObject(x, "mask", u->mask);
        cJSON_AddBoolToObject(x, "rotate", u->rotate);
        cJSON_AddItemToObject(x, "references", refs);
        cJSON_AddNumberToObject(x, "shard", pu->shard);
        cJSON_AddStringToObject(x, "state", state_names[u->state]);
        cJSON_AddItemToArray(units, x);
    }
    cJSON *a;
    ok = ok && (a = strings(&r->plan_errors)) && cJSON_AddItemToObject(m, "plan_errors", a);
    ok = ok && (a = strings(&r->plan_warnings)) && cJSON_AddItemToObject(m, "plan_warnings", a);
    ok = ok && (a = strings(&r->run_errors)) && cJSON_AddItemToObject(m, "run_errors", a);
    ad_status st = AD_OK;
    char *dir = adi_path_join(r->out_dir, "shards"), *path = adi_path_join(r->out_dir, name);
    if (!ok || !dir || !path) st = adi_fail(AD_E_NOMEM, "shard manifest: out of memory");
    if (st == AD_OK) st = adi_io_mkdirs(dir);
    if (st == AD_OK) st = pr_write_json(path, m);
    adi_free(dir);
    adi_free(path);
    cJSON_Delete(m);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* merge                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    cJSON *man;
    const char *dir;
    int index;
} shard_file;

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(x) && x->valuestring ? x->valuestring : NULL;
}

static int jint(const cJSON *o, const char *k, int dflt)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? (int)x->valuedouble : dflt;
}

static ad_status copy_strings(adi_strlist *l, const cJSON *arr)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) if (cJSON_IsString(it) && adi_strlist_find(l, it->valuestring) < 0)
    {
        if (adi_strlist_push(l, it->valuestring)) return AD_E_NOMEM;
    }
    return AD_OK;
}

static int index_of(char *const *v, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], s)) return i;
    return -1;
}

/* The results' frame (mode, shots, seeds, categories, settings) from the first settings.json. */
static ad_status frame_from_settings(ad_eval_results *r, cJSON *settings, const char *where)
{
    const char *mode = jstr(settings, "mode"), *key = jstr(settings, "key");
    if (!mode || !key) return adi_fail(AD_E_FORMAT, "%s: not an evaluation's settings", where);
    snprintf(r->key, sizeof r->key, "%s", key);
    r->zeroshot = !strcmp(mode, "zeroshot");
    const cJSON *it, *cats = cJSON_GetObjectItemCaseSensitive(settings, "categories");
    int nc = cJSON_GetArraySize(cats);
    r->cats = adi_calloc((size_t)(nc ? nc : 1), sizeof *r->cats);
    if (!r->cats) return AD_E_NOMEM;
    cJSON_ArrayForEach(it, cats)
    {
        if (!cJSON_IsString(it)) return adi_fail(AD_E_FORMAT, "%s: bad category list", where);
        if (!(r->cats[r->n_cats] = adi_strdup(it->valuestring))) return AD_E_NOMEM;
        r->n_cats++;
    }
    if (r->zeroshot) {
        r->n_shots = r->n_seeds = 1;
        r->shots[0] = r->seeds[0] = 0;
    } else {
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(settings, "shots");
        const cJSON *se = cJSON_GetObjectItemCaseSensitive(settings, "seeds");
        cJSON_ArrayForEach(it, sh) if (cJSON_IsNumber(it) && r->n_shots < AD_EVAL_MAX_SHOTS)
            r->shots[r->n_shots++] = (int)it->valuedouble;
        cJSON_ArrayForEach(it, se) if (cJSON_IsNumber(it) && r->n_seeds < AD_EVAL_MAX_SEEDS)
            r->seeds[r->n_seeds++] = (int)it->valuedouble;
        if (!r->n_shots || !r->n_seeds)
            return adi_fail(AD_E_FORMAT, "%s: no shots or seeds listed", where);
    }
    r->settings = settings;
    r->settings_text = cJSON_PrintUnformatted(settings);
    if (!r->settings_text) return AD_E_NOMEM;
    return AD_OK;
}

/* Units of the plan from a manifest. */
static ad_status plan_from_manifest(ad_eval_results *r, const cJSON *man, const char *where)
{
    const cJSON *units = cJSON_GetObjectItemCaseSensitive(man, "units"), *it;
    int n = cJSON_GetArraySize(units);
    size_t cells = (size_t)r->n_shots * (size_t)r->n_seeds * (size_t)r->n_cats;
    r->units = adi_calloc((size_t)n + 1, sizeof *r->units);
    r->grid = adi_calloc(cells + 1, sizeof *r->grid);
    if (!r->units || !r->grid) return AD_E_NOMEM;
    cJSON_ArrayForEach(it, units)
    {
        pr_unit *pu = &r->units[r->n_units];
        ad_eval_unit *u = &pu->u;
        const char *cat = jstr(it, "category");
        u->shots = jint(it, "shots", 0);
        u->seed = jint(it, "seed", -1);
        u->i_cat = cat ? index_of(r->cats, r->n_cats, cat) : -1;
        u->i_shot = u->i_seed = -1;
        for (int s = 0; s < r->n_shots; s++)
            if (r->shots[s] == u->shots) u->i_shot = s;
        for (int d = 0; d < r->n_seeds; d++)
            if (r->seeds[d] == u->seed) u->i_seed = d;
        if (u->i_cat < 0 || u->i_shot < 0 || u->i_seed < 0)
            return adi_fail(AD_E_FORMAT, "%s: a unit (%s, %d shots, seed %d) outside the settings",
                            where, cat ? cat : "?", u->shots, u->seed);
        u->n_test = jint(it, "n_test", 0);
        u->mask = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "mask"));
        u->rotate = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "rotate"));
        pu->shard = jint(it, "shard", -1);
        u->state = AD_UNIT_PLANNED;
        r->n_units++;
        if (!(u->category = adi_strdup(cat))) return AD_E_NOMEM;
        const cJSON *refs = cJSON_GetObjectItemCaseSensitive(it, "references"), *rf;
        int nr = cJSON_GetArraySize(refs);
        if (nr && !(u->references = adi_calloc((size_t)nr, sizeof *u->references)))
            return AD_E_NOMEM;
        cJSON_ArrayForEach(rf, refs) if (cJSON_IsString(rf))
        {
            if (!(u->references[u->n_references] = adi_strdup(rf->valuestring))) return AD_E_NOMEM;
            u->n_references++;
        }
    }
    return AD_OK;
}

static void unit_name(const ad_eval_unit *u, char *buf, size_t n)
{
    char sk[32];
    pr_shots_key(u->shots, sk, sizeof sk);
    snprintf(buf, n, "%s %s-shot seed %d", u->category, sk, u->seed);
}

/* Reads every shards/shard-*-of-*.json of dir into the list. */
static ad_status read_manifests(const char *dir, shard_file **files, int *n, int *cap)
{
    char *sd = adi_path_join(dir, "shards");
    if (!sd) return AD_E_NOMEM;
    char **names = NULL;
    int nn = adi_io_list_dir(sd, ADI_LIST_FILES, &names);
    ad_status st = AD_OK;
    for (int i = 0; i < nn && st == AD_OK; i++) {
        int a, b;
        char tail[8];
        if (sscanf(names[i], "shard-%d-of-%d.jso%1s", &a, &b, tail) != 3) continue;
        char *p = adi_path_join(sd, names[i]);
        cJSON *m = p ? pr_read_json(p) : NULL;
        if (!m) st = p ? adi_fail(AD_E_FORMAT, "%s: unreadable shard manifest (%s)", p,
                                  ad_errmsg())
                       : AD_E_NOMEM;
        adi_free(p);
        if (st != AD_OK) break;
        if (*n == *cap) {
            int c2 = *cap ? *cap * 2 : 8;
            shard_file *v = adi_realloc(*files, (size_t)c2 * sizeof *v);
            if (!v) { cJSON_Delete(m); st = AD_E_NOMEM; break; }
            *files = v;
            *cap = c2;
        }
        (*files)[(*n)++] = (shard_file){m, dir, jint(m, "shard", -1)};
    }
    adi_strv_free(names, nn > 0 ? nn : 0);
    adi_free(sd);
    return st;
}

ad_status ad_eval_merge(const char *const *dirs, int n_dirs, ad_eval_results **out)
{
    if (!out) return adi_fail(AD_E_ARG, "ad_eval_merge: NULL output");
    *out = NULL;
    if (!dirs || n_dirs < 1) return adi_fail(AD_E_ARG, "no shard folders given");
    ad_eval_results *r = pr_results_new();
    if (!r) return AD_E_NOMEM;
    shard_file *files = NULL;
    int nf = 0, cap = 0;
    ad_status st = AD_OK;
    char first_key[512] = "";
    const char *first_dir = NULL;
    cJSON *settings0 = NULL;
    /* every folder: its settings, then its shard manifests */
    for (int i = 0; i < n_dirs && st == AD_OK; i++) {
        for (int j = 0; j < i; j++)
            if (!strcmp(dirs[i], dirs[j])) {
                st = adi_fail(AD_E_ARG, "%s is given twice", dirs[i]);
                break;
            }
        if (st != AD_OK) break;
        char *sp = adi_path_join(dirs[i], "settings.json");
        cJSON *s = sp ? pr_read_json(sp) : NULL;
        const char *key = jstr(s, "key");
        if (!s || !key) {
            st = adi_fail(AD_E_FORMAT, "%s: no evaluation settings here (%s)", dirs[i],
                          sp ? ad_errmsg() : "out of memory");
        } else if (!first_dir) {
            snprintf(first_key, sizeof first_key, "%s", key);
            first_dir = dirs[i];
        } else if (strcmp(first_key, key)) {
            char diff[1024];
            pr_key_diff(first_key, key, diff, sizeof diff);
            st = adi_fail(AD_E_MISMATCH, "%s and %s were made with different settings "
                                         "or weights (%s): refusing to merge",
                          first_dir, dirs[i], diff);
        }
        adi_free(sp);
        if (st == AD_OK && !settings0) settings0 = s;
        else cJSON_Delete(s);
        if (st == AD_OK) st = read_manifests(dirs[i], &files, &nf, &cap);
    }
    if (st == AD_OK && !nf)
        st = adi_fail(AD_E_ARG, "no shard manifests (shards/shard-I-of-N.json) in the "
                                "folders given: were they run with --shard I/N?");
    int n_shards = nf ? jint(files[0].man, "of", 0) : 0;
    const char *plan0 = nf ? jstr(files[0].man, "plan") : NULL;
    for (int i = 0; st == AD_OK && i < nf; i++) {
        const char *key = jstr(files[i].man, "key"), *plan = jstr(files[i].man, "plan");
        int of = jint(files[i].man, "of", 0);
        if (!key || strcmp(key, first_key)) {
            char diff[1024];
            pr_key_diff(first_key, key ? key : "", diff, sizeof diff);
            st = adi_fail(AD_E_MISMATCH, "shard %d in %s was made with different "
                                         "settings or weights (%s): refusing to merge",
                          files[i].index, files[i].dir, diff);
        } else if (of != n_shards || files[i].index < 0 || files[i].index >= of) {
            st = adi_fail(AD_E_MISMATCH, "shard %d of %d in %s does not belong with "
                                         "shard %d of %d in %s (other shard counts)",
                          files[i].index, of, files[i].dir, files[0].index, n_shards,
                          files[0].dir);
        } else if (!plan || !plan0 || strcmp(plan, plan0)) {
            st = adi_fail(AD_E_MISMATCH, "shard %d in %s planned other units than "
                                         "shard %d in %s (other categories, shots, seeds or "
                                         "files): refusing to merge",
                          files[i].index, files[i].dir, files[0].index, files[0].dir);
        }
        for (int j = 0; st == AD_OK && j < i; j++)
            if (files[j].index == files[i].index)
                st = adi_fail(AD_E_ARG, "shard %d of %d appears twice (%s and %s): "
                                        "its units would be counted twice",
                              files[i].index, n_shards, files[j].dir, files[i].dir);
    }
    if (st == AD_OK) {
        adi_strlist missing = {0};
        for (int s = 0; s < n_shards; s++) {
            int found = 0;
            for (int i = 0; i < nf; i++) found |= files[i].index == s;
            if (!found && adi_strlist_addf(&missing, "%d", s)) st = AD_E_NOMEM;
        }
        if (st == AD_OK && missing.n) {
            char list[512] = "";
            for (int i = 0; i < missing.n; i++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", missing.v[i]);
            }
            st = adi_fail(AD_E_ARG, "shard%s %s of %d missing (no "
                                    "shards/shard-I-of-%d.json in the folders given)",
                          missing.n > 1 ? "s" : "", list, n_shards, n_shards);
        }
        adi_strlist_free(&missing);
    }
    if (st == AD_OK) st = frame_from_settings(r, settings0, first_dir);
    if (st == AD_OK) settings0 = NULL; /* r owns it */
    if (st == AD_OK) st = plan_from_manifest(r, files[0].man, files[0].dir);
    /* notes: the plan's once (from shard 0), then every shard's own, in shard order */
    const shard_file **by_index = NULL;
    if (st == AD_OK && !(by_index = adi_calloc((size_t)n_shards + 1, sizeof *by_index)))
        st = AD_E_NOMEM;
    for (int i = 0; st == AD_OK && i < nf; i++) by_index[files[i].index] = &files[i];
    if (st == AD_OK) {
        st = copy_strings(&r->plan_errors,
                          cJSON_GetObjectItemCaseSensitive(by_index[0]->man, "plan_errors"));
        if (st == AD_OK)
            st = copy_strings(&r->plan_warnings,
                              cJSON_GetObjectItemCaseSensitive(by_index[0]->man, "plan_warnings"));
        for (int s = 0; st == AD_OK && s < n_shards; s++)
            st = copy_strings(&r->run_errors,
                              cJSON_GetObjectItemCaseSensitive(by_index[s]->man, "run_errors"));
    }
    /* every unit: done by its shard, its record in that shard's folder and in no other */
    adi_strlist problems = {0};
    for (int i = 0; st == AD_OK && i < r->n_units; i++) {
        pr_unit *pu = &r->units[i];
        ad_eval_unit *u = &pu->u;
        char name[300];
        unit_name(u, name, sizeof name);
        if (pu->shard < 0 || pu->shard >= n_shards) {
            st = adi_fail(AD_E_FORMAT, "%s: unit %s has no shard", files[0].dir, name);
            break;
        }
        const shard_file *sf = by_index[pu->shard];
        const cJSON *su = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(sf->man, "units"), i);
        const char *state = jstr(su, "state");
        if (!state || (strcmp(state, "computed") && strcmp(state, "resumed"))) {
            if (adi_strlist_addf(&problems, "%s (shard %d: %s)", name, pu->shard,
                                 state ? state : "not listed"))
                st = AD_E_NOMEM;
            continue;
        }
        char rdir[1200], path[1600];
        int holders = 0;
        const char *holder = NULL;
        for (int d = 0; d < n_dirs; d++) {
            pr_run_path(dirs[d], u->shots, u->seed, u->category, rdir, sizeof rdir, path,
                        sizeof path);
            if (!adi_io_exists(path)) continue;
            if (!strcmp(dirs[d], sf->dir)) holder = dirs[d];
            holders++;
        }
        if (holders > 1) {
            st = adi_fail(AD_E_ARG, "unit %s is in more than one of the folders "
                                    "given (a duplicate): merge the folders of one run only",
                          name);
            break;
        }
        if (!holder) {
            if (adi_strlist_addf(&problems, "%s (shard %d: no record in %s)", name, pu->shard,
                                 sf->dir))
                st = AD_E_NOMEM;
            continue;
        }
        pr_run_path(holder, u->shots, u->seed, u->category, rdir, sizeof rdir, path, sizeof path);
        cJSON *rec = pr_read_json(path);
        const char *why = NULL;
        if (!rec || pr_record_from_json(pu, rec, r->key, u->references, u->n_references, NULL, 0,
                                        &why)) {
            if (adi_strlist_addf(&problems, "%s (%s: %s)", name, path, rec ? why : ad_errmsg()))
                st = AD_E_NOMEM;
        } else if (!(pu->base_dir = adi_strdup(holder))) {
            st = AD_E_NOMEM;
        } else {
            u->state = AD_UNIT_RESUMED;
        }
        cJSON_Delete(rec);
    }
    if (st == AD_OK && problems.n) {
        char list[1500] = "";
        for (int i = 0; i < problems.n && i < 5; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", i ? "; " : "", problems.v[i]);
        }
        st = adi_fail(AD_E_ARG, "%d unit(s) missing: %s%s", problems.n, list,
                      problems.n > 5 ? "; ..." : "");
    }
    adi_strlist_free(&problems);
    adi_free(by_index);
    for (int i = 0; i < nf; i++) cJSON_Delete(files[i].man);
    adi_free(files);
    cJSON_Delete(settings0);
    if (st != AD_OK) {
        if (st == AD_E_NOMEM && ad_last_status() != AD_E_NOMEM)
            adi_fail(AD_E_NOMEM, "out of memory");
        ad_eval_results_free(r);
        return ad_last_status();
    }
    pr_fill_grid(r);
    pr_build_notes(r);
    *out = r;
    return AD_OK;
}
