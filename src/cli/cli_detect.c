#include "cli/cli_detect.h"
#include "protocol/dataset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cld_load_model(const char *cmd, const char *weights, int n_threads, ad_model **m,
                   ad_context **ctx)
{
    *m = ad_model_load(weights);
    if (!*m) {
        cli_error(cmd, "%s", ad_errmsg());
        return -1;
    }
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = n_threads;
    *ctx = ad_context_new(*m, cp);
    if (!*ctx) {
        cli_error(cmd, "%s", ad_errmsg());
        ad_model_free(*m);
        *m = NULL;
        return -1;
    }
    return 0;
}

int cld_preset(const char *cmd, const char *preset, const char *dataset, const char *category,
               int *mask, int *rotate)
{
    if (!dataset) dataset = "mvtec";
    ds_kind k;
    if (ds_kind_parse(dataset, &k) != AD_OK) {
        cli_error(cmd, "%s", ad_errmsg());
        return -1;
    }
    dataset = ds_kind_name(k); /* layouts other than mvtec/visa get the dataset-free answer */
    ad_status st = ad_preset_lookup(preset, dataset, category ? category : "", mask, rotate);
    if (st != AD_OK) {
        cli_error(cmd, "--preset: %s", ad_errmsg());
        return -1;
    }
    return 0;
}

static char *stem_of(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    if (n == 0) return strdup("image");
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, base, n);
    s[n] = 0;
    return s;
}

/* Open-addressing set of the stems handed out so far. */
typedef struct {
    char **slot;
    size_t cap;
} stem_set;

static int set_has(const stem_set *s, const char *k, size_t *pos)
{
    size_t i = (size_t)adi_fnv1a(AD_FNV_INIT, k, strlen(k)) & (s->cap - 1);
    while (s->slot[i]) {
        if (!strcmp(s->slot[i], k)) return 1;
        i = (i + 1) & (s->cap - 1);
    }
    *pos = i;
    return 0;
}

char **cld_unique_stems(char **paths, int n)
{
    char **out = calloc((size_t)(n > 0 ? n : 1), sizeof *out);
    stem_set set = {0};
    set.cap = 16;
    while (set.cap < 2 * (size_t)n + 2) set.cap *= 2;
    set.slot = calloc(set.cap, sizeof *set.slot);
    if (!out || !set.slot) goto fail;
    for (int i = 0; i < n; i++) {
        char *base = stem_of(paths[i]);
        if (!base) goto fail;
        char *cand = base;
        size_t pos;
        for (int suffix = 2; set_has(&set, cand, &pos); suffix++) {
            if (cand != base) free(cand);
            size_t len = strlen(base) + 16;
            cand = malloc(len);
            if (!cand) {
                free(base);
                goto fail;
            }
            snprintf(cand, len, "%s-%d", base, suffix);
        }
        if (cand != base) free(base);
        out[i] = cand;
        set.slot[pos] = cand; /* owned by out[] */
    }
    free(set.slot);
    return out;
fail:
    free(set.slot);
    cli_free_list(out, n);
    return NULL;
}

/* rel without its extension, or NULL */
static char *strip_ext(const char *rel)
{
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - rel) : strlen(rel);
    return strndup(rel, n);
}

char **cld_output_stems(const char *cmd, char **paths, char **rels, int n)
{
    char **out = calloc((size_t)(n > 0 ? n : 1), sizeof *out);
    stem_set set = {0};
    set.cap = 16;
    while (set.cap < 2 * (size_t)n + 2) set.cap *= 2;
    set.slot = calloc(set.cap, sizeof *set.slot);
    if (!out || !set.slot) goto fail;
    for (int i = 0; i < n; i++) {
        char *base = rels && rels[i] ? strip_ext(rels[i]) : stem_of(paths[i]);
        if (!base) goto fail;
        char *cand = base;
        size_t pos;
        int clash = -1;
        for (int suffix = 2; set_has(&set, cand, &pos); suffix++) {
            if (clash < 0)
                for (int j = 0; j < i && clash < 0; j++)
                    if (!strcmp(out[j], cand)) clash = j;
            if (cand != base) free(cand);
            size_t len = strlen(base) + 16;
            cand = malloc(len);
            if (!cand) {
                free(base);
                goto fail;
            }
            snprintf(cand, len, "%s-%d", base, suffix);
        }
        if (cand != base) {
            fprintf(stderr, "anomalydino %s: warning: %s and %s both map to the output name "
                            "'%s': the files of %s are named '%s'\n",
                    cmd, clash >= 0 ? paths[clash] : "an earlier image", paths[i], base,
                    paths[i], cand);
            free(base);
        }
        out[i] = cand;
        set.slot[pos] = cand; /* owned by out[] */
    }
    free(set.slot);
    return out;
fail:
    free(set.slot);
    cli_free_list(out, n);
    return NULL;
}

void cld_out_files_free(cld_out_files *f)
{
    if (!f) return;
    free(f->grid);
    free(f->map);
    free(f->overlay);
    memset(f, 0, sizeof *f);
}

int cld_parse_maps_format(const char *cmd, const char *s, int *tiff)
{
    if (!strcmp(s, "npy")) *tiff = 0;
    else if (!strcmp(s, "tiff") || !strcmp(s, "tif")) *tiff = 1;
    else {
        cli_error(cmd, "--maps-format '%s': expected npy or tiff", s);
        return -1;
    }
    return 0;
}

/* DIR/STEM.EXT, with the sub-folders of STEM created. */
static char *out_file(const char *dir, const char *stem, const char *ext, ad_status *st)
{
    char *p = cld_out_path(dir, stem, ext);
    if (!p) {
        *st = adi_fail(AD_E_NOMEM, "out of memory");
        return NULL;
    }
    char *slash = strrchr(p, '/');
    size_t dl = strlen(dir);
    if (slash && (size_t)(slash - p) > dl) { /* STEM has folders of its own */
        *slash = 0;
        *st = adi_io_mkdirs(p);
        *slash = '/';
        if (*st != AD_OK) {
            free(p);
            return NULL;
        }
    }
    return p;
}

char *cld_out_path(const char *dir, const char *stem, const char *ext)
{
    size_t len = strlen(dir) + strlen(stem) + strlen(ext) + 3;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s/%s.%s", dir, stem, ext);
    return p;
}

int cld_prepare_dir(const char *cmd, const char *opt, const char *dir)
{
    if (!dir) return 0;
    if (adi_io_mkdirs(dir) != AD_OK) {
        cli_error(cmd, "%s: %s", opt, ad_errmsg());
        return -1;
    }
    return 0;
}

int cld_distinct_npy_dirs(const char *cmd, const char *grids_dir, const char *maps_dir)
{
    if (!grids_dir || !maps_dir) return 0;
    struct stat a, b;
    int same = !strcmp(grids_dir, maps_dir) ||
               (!stat(grids_dir, &a) && !stat(maps_dir, &b) && a.st_dev == b.st_dev &&
                a.st_ino == b.st_ino);
    if (same) {
        cli_error(cmd, "--grids %s and --maps %s are the same folder: both write STEM.npy, the "
                       "maps would overwrite the grids; give two folders", grids_dir, maps_dir);
        return -1;
    }
    return 0;
}

ad_status cld_write_grid(const char *path, const double *grid, int gh, int gw)
{
    size_t n = (size_t)gh * (size_t)gw;
    float *f = adi_alloc(n, sizeof *f);
    if (!f) return AD_E_NOMEM;
    for (size_t i = 0; i < n; i++) f[i] = (float)grid[i];
    size_t shape[2] = {(size_t)gh, (size_t)gw};
    ad_status st = adi_npy_write(path, AD_NPY_F4, f, 2, shape);
    adi_free(f);
    return st;
}

ad_status cld_write_map(const char *path, const float *map, int w, int h)
{
    size_t shape[2] = {(size_t)h, (size_t)w};
    return adi_npy_write(path, AD_NPY_F4, map, 2, shape);
}

ad_status cld_predict(const ad_bank *b, ad_context *ctx, const ad_image *img, int mask,
                      ad_result *out, double *features_ms, double *search_ms)
{
    if (!b || !ctx || !img || !out)
        return adi_fail(AD_E_ARG, "predict: NULL %s", !b ? "bank" : !ctx ? "context" : !img ? "image" : "result");
    if (mask < -1 || mask > 1) return adi_fail(AD_E_ARG, "predict: mask %d is not -1, 0 or 1", mask);
    if (ad_bank_rows(b) == 0) return adi_fail(AD_E_ARG, "predict: the bank is empty");
    ad_status st = ad_bank_check_model(b, ad_context_model(ctx));
    if (st != AD_OK) return st;
    ad_bank_params bp = ad_bank_get_params(b);
    int use_mask = mask < 0 ? bp.mask_test : mask;
    double t0 = cli_now();
    ad_features f = {0};
    st = ad_extract_image(ctx, img, bp.resolution, &f);
    if (st != AD_OK) return st;
    double t1 = cli_now();
    size_t n = (size_t)f.grid_h * (size_t)f.grid_w;
    uint8_t *keep = adi_alloc(n, 1);
    double *grid = adi_alloc(n, sizeof *grid);
    if (!keep || !grid) st = adi_fail(AD_E_NOMEM, "predict: out of memory");
    if (st == AD_OK) {
        if (use_mask) st = ad_mask_pca(&f, keep);
        else memset(keep, 1, n);
    }
    if (st == AD_OK) st = ad_bank_query(b, ctx, &f, use_mask ? keep : NULL, -1, grid);
    if (st == AD_OK) {
        double thr;
        out->score = ad_score_top1p(grid, n);
        out->verdict = ad_bank_threshold(b, &thr)
                           ? (out->score > thr ? AD_VERDICT_NG : AD_VERDICT_OK)
                           : AD_VERDICT_NONE;
        out->grid_h = f.grid_h;
        out->grid_w = f.grid_w;
        out->grid = grid;
        out->keep = keep;
        if (features_ms) *features_ms = 1e3 * (t1 - t0);
        if (search_ms) *search_ms = 1e3 * (cli_now() - t1);
    } else {
        adi_free(keep);
        adi_free(grid);
    }
    ad_features_free(&f);
    return st;
}

adi_overlay_params cld_overlay_params(int have_thr, double thr, double vmax)
{
    if (vmax <= 0) vmax = have_thr && thr > 0 ? CLD_VMAX_THRESHOLD_FACTOR * thr : CLD_VMAX_NO_THRESHOLD;
    adi_overlay_params op = adi_overlay_default_params();
    op.vmax = (float)vmax;
    op.contour = have_thr;
    op.threshold = (float)thr;
    return op;
}

ad_status cld_map_overlay(const double *grid, int gh, int gw, const ad_image *img,
                          const adi_overlay_params *op, float **map, ad_image *ov)
{
    float *m = adi_alloc((size_t)img->width * (size_t)img->height, sizeof *m);
    if (!m) return AD_E_NOMEM;
    ad_status st = ad_anomaly_map(grid, gh, gw, img->width, img->height, m);
    if (st == AD_OK && ov) st = adi_overlay_heatmap(img, m, op, ov);
    if (st != AD_OK) {
        adi_free(m);
        return st;
    }
    *map = m;
    return AD_OK;
}

ad_status cld_write_outputs(const cld_out_dirs *dirs, const char *stem, const double *grid,
                            int gh, int gw, int w, int h, const ad_image *img,
                            const char *img_path, const adi_overlay_params *op,
                            cld_out_files *written)
{
    ad_status st = AD_OK;
    char *path = NULL;
    float *map = NULL;
    ad_image decoded = {0}, ov = {0};
    cld_out_files files = {0};
    if (dirs->grids) {
        path = out_file(dirs->grids, stem, "npy", &st);
        if (path) st = cld_write_grid(path, grid, gh, gw);
        files.grid = path;
    }
    if (st == AD_OK && (dirs->maps || dirs->overlays)) {
        map = adi_alloc((size_t)w * (size_t)h, sizeof *map);
        st = map ? ad_anomaly_map(grid, gh, gw, w, h, map) : AD_E_NOMEM;
    }
    if (st == AD_OK && dirs->maps) {
        path = out_file(dirs->maps, stem, dirs->maps_tiff ? "tiff" : "npy", &st);
        if (path)
            st = dirs->maps_tiff ? adi_io_write_tiff_f32(path, map, w, h)
                                 : cld_write_map(path, map, w, h);
        files.map = path;
    }
    if (st == AD_OK && dirs->overlays) {
        if (!img) { /* a batch that did not keep the pixels: decode again */
            st = adi_io_read_image(img_path, &decoded);
            if (st == AD_OK && (decoded.width != w || decoded.height != h))
                st = adi_fail(AD_E_IO, "%s: changed while the batch ran", img_path);
            img = &decoded;
        }
        path = st == AD_OK ? out_file(dirs->overlays, stem, "png", &st) : NULL;
        if (st == AD_OK) st = adi_overlay_heatmap(img, map, op, &ov);
        if (st == AD_OK) st = adi_io_write_png_rgb(path, ov.data, ov.width, ov.height);
        files.overlay = path;
    }
    ad_image_free(&decoded);
    ad_image_free(&ov);
    adi_free(map);
    if (written && st == AD_OK) *written = files;
    else cld_out_files_free(&files);
    return st;
}

int cld_parse_format(const char *cmd, const char *s, cld_format *out)
{
    if (!strcmp(s, "csv")) *out = CLD_CSV;
    else if (!strcmp(s, "json")) *out = CLD_JSON;
    else {
        cli_error(cmd, "--format '%s': expected csv or json", s);
        return -1;
    }
    return 0;
}

void cld_csv_field(FILE *f, const char *s) { adi_csv_fput(f, s); }

int cld_table_begin(cld_table *t, cld_format format, int with_verdict, int with_time,
                    int with_threshold, int have_thr, double thr)
{
    memset(t, 0, sizeof *t);
    t->format = format;
    t->with_verdict = with_verdict;
    t->with_time = with_time;
    t->with_threshold = with_threshold;
    t->have_threshold = have_thr;
    t->threshold = thr;
    if (format == CLD_JSON) {
        t->doc = cJSON_CreateObject();
        if (!t->doc) return -1;
        cJSON_AddItemToObject(t->doc, "settings", cJSON_CreateObject());
        t->results = cJSON_AddArrayToObject(t->doc, "results");
        t->failures = cJSON_AddArrayToObject(t->doc, "failures");
        if (!t->results || !t->failures) return -1;
    } else {
        printf("image,score%s%s%s,grid,map,overlay\n", with_verdict ? ",verdict" : "",
               with_threshold ? ",threshold" : "", with_time ? ",time_ms" : "");
        fflush(stdout);
    }
    return 0;
}

cJSON *cld_table_settings(cld_table *t)
{
    return t->doc ? cJSON_GetObjectItem(t->doc, "settings") : NULL;
}

static const char *verdict_name(ad_verdict v)
{
    return v == AD_VERDICT_NG ? "NG" : v == AD_VERDICT_OK ? "OK" : NULL;
}

void cld_table_row(cld_table *t, const char *image, double score, ad_verdict verdict,
                   double time_ms, const cld_out_files *files)
{
    static const cld_out_files none = {0};
    if (!files) files = &none;
    if (t->format == CLD_JSON) {
        cJSON *o = cJSON_CreateObject();
        if (!o) return;
        cJSON_AddStringToObject(o, "image", image);
        cJSON_AddNumberToObject(o, "score", score);
        if (t->with_verdict) {
            const char *v = verdict_name(verdict);
            if (v) cJSON_AddStringToObject(o, "verdict", v);
            else cJSON_AddNullToObject(o, "verdict");
        }
        if (t->with_threshold) {
            if (t->have_threshold) cJSON_AddNumberToObject(o, "threshold", t->threshold);
            else cJSON_AddNullToObject(o, "threshold");
        }
        if (t->with_time) cJSON_AddNumberToObject(o, "time_ms", time_ms);
        cJSON *fo = cJSON_AddObjectToObject(o, "files");
        if (fo) {
            const char *k[3] = {"grid", "map", "overlay"};
            const char *v[3] = {files->grid, files->map, files->overlay};
            for (int i = 0; i < 3; i++)
                if (v[i]) cJSON_AddStringToObject(fo, k[i], v[i]);
                else cJSON_AddNullToObject(fo, k[i]);
        }
        cJSON_AddItemToArray(t->results, o);
        return;
    }
    cld_csv_field(stdout, image);
    printf(",%.6f", score);
    if (t->with_verdict) {
        const char *v = verdict_name(verdict);
        printf(",%s", v ? v : "");
    }
    if (t->with_threshold) {
        if (t->have_threshold) printf(",%.6f", t->threshold);
        else fputc(',', stdout);
    }
    if (t->with_time) printf(",%.1f", time_ms);
    const char *v[3] = {files->grid, files->map, files->overlay};
    for (int i = 0; i < 3; i++) {
        fputc(',', stdout);
        if (v[i]) cld_csv_field(stdout, v[i]);
    }
    fputc('\n', stdout);
    fflush(stdout); /* rows appear as images finish */
}

void cld_table_fail(cld_table *t, const char *cmd, const char *image, const char *reason)
{
    /* library reasons usually start with the path already */
    int named = !strncmp(reason, image, strlen(image));
    if (named) cli_error(cmd, "%s", reason);
    else cli_error(cmd, "%s: %s", image, reason);
    char **v = realloc(t->failed, (size_t)(t->n_failed + 1) * sizeof *v);
    if (v) {
        t->failed = v;
        size_t len = strlen(image) + strlen(reason) + 3;
        char *s = malloc(len);
        if (s) {
            if (named) snprintf(s, len, "%s", reason);
            else snprintf(s, len, "%s: %s", image, reason);
            t->failed[t->n_failed++] = s;
        }
    }
    if (t->failures) {
        cJSON *o = cJSON_CreateObject();
        if (o) {
            cJSON_AddStringToObject(o, "image", image);
            cJSON_AddStringToObject(o, "error", reason);
            cJSON_AddItemToArray(t->failures, o);
        }
    }
}

int cld_table_end(cld_table *t, const char *cmd)
{
    if (t->doc) {
        char *s = cJSON_Print(t->doc);
        if (s) {
            fputs(s, stdout);
            fputc('\n', stdout);
            free(s);
        }
        cJSON_Delete(t->doc);
        t->doc = NULL;
    }
    fflush(stdout);
    int rc = 0;
    if (t->n_failed) {
        fprintf(stderr, "anomalydino %s: %d image%s failed:\n", cmd, t->n_failed,
                t->n_failed == 1 ? "" : "s");
        for (int i = 0; i < t->n_failed; i++) fprintf(stderr, "  %s\n", t->failed[i]);
        rc = 1;
    }
    cli_free_list(t->failed, t->n_failed);
    t->failed = NULL;
    t->n_failed = 0;
    return rc;
}

int cld_dataset_images(const char *cmd, const char *layout, const char *data,
                       const char *category, double train_fraction, size_t max_pixels,
                       int want_train, char ***paths, char ***rels)
{
    ds_kind kind;
    if (!layout) {
        if (!ds_guess_layout(data, &kind)) {
            cli_error(cmd, "--data %s: give its layout with --dataset mvtec|visa|folder|ksdd|mtd|"
                           "manifest", data);
            return -1;
        }
    } else if (ds_kind_parse(layout, &kind) != AD_OK) {
        cli_error(cmd, "%s", ad_errmsg());
        return -1;
    }
    ds_options o = ds_default_options();
    o.train_fraction = train_fraction;
    o.max_pixels = max_pixels;
    ds_dataset d;
    char *cats[1] = {(char *)category};
    if (ds_open_ex(kind, data, category ? cats : NULL, category ? 1 : 0, &o, &d) != AD_OK) {
        cli_error(cmd, "%s", ad_errmsg());
        return -1;
    }
    for (int i = 0; i < d.warnings.n; i++) fprintf(stderr, "anomalydino %s: note: %s\n", cmd,
                                                 d.warnings.v[i]);
    for (int i = 0; i < d.errors.n; i++) cli_error(cmd, "%s", d.errors.v[i]);
    int n = -1;
    if (d.n_cats > 1) {
        char list[600] = "";
        for (int i = 0; i < d.n_cats; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", d.cats[i].name);
        }
        cli_error(cmd, "%s has %d categories (%s): choose one with --category", data, d.n_cats,
                  list);
        ds_free(&d);
        return -1;
    }
    const ds_category *c = &d.cats[0];
    int cnt = want_train ? c->n_train : c->n_test;
    char **p = calloc((size_t)cnt + 1, sizeof *p), **r = calloc((size_t)cnt + 1, sizeof *r);
    if (p && r) {
        n = 0;
        for (int i = 0; i < cnt; i++) {
            p[i] = strdup(want_train ? c->train[i] : c->test[i].path);
            r[i] = strdup(want_train ? c->train_names[i] : c->test[i].name);
            if (!p[i] || !r[i]) { n = -1; break; }
            n++;
        }
    }
    if (n < 0) {
        cli_error(cmd, "out of memory");
        cli_free_list(p, cnt);
        cli_free_list(r, cnt);
    } else {
        cli_progress("%s: %s (%s), category %s: %d %s image%s", cmd, data, ds_kind_name(kind),
                     c->name, n, want_train ? "reference" : "test", n == 1 ? "" : "s");
        *paths = p;
        *rels = r;
    }
    ds_free(&d);
    return n;
}

void cld_out_opts_init(cld_out_opts *o, double vmax)
{
    memset(o, 0, sizeof *o);
    o->mask = -1;
    o->vmax = vmax;
    o->format = CLD_CSV;
    o->max_pixels = CLI_DEFAULT_MAX_PIXELS;
}

int cld_out_option(const char *cmd, int code, const char *arg, cld_out_opts *o)
{
    switch (code) {
    case CLD_O_MASK: o->mask = 1; return 1;
    case CLD_O_NOMASK: o->mask = 0; return 1;
    case CLD_O_GRIDS: o->grids = arg; return 1;
    case CLD_O_MAPS: o->maps = arg; return 1;
    case CLD_O_OVERLAYS: o->overlays = arg; return 1;
    case CLD_O_VMAX: return cli_parse_double(cmd, "--vmax", arg, 1e-9, 1e9, &o->vmax) ? -1 : 1;
    case CLD_O_FORMAT: return cld_parse_format(cmd, arg, &o->format) ? -1 : 1;
    case CLD_O_THREADS: return cli_parse_int(cmd, "--threads", arg, 0, 1024, &o->threads) ? -1 : 1;
    case CLD_O_MAPSFMT: return cld_parse_maps_format(cmd, arg, &o->maps_tiff) ? -1 : 1;
    case CLD_O_MAXPX: return cli_parse_max_pixels(cmd, arg, &o->max_pixels) ? -1 : 1;
    default: return 0;
    }
}

int cld_out_prepare(const char *cmd, const cld_out_opts *o)
{
    return cld_prepare_dir(cmd, "--grids", o->grids) || cld_prepare_dir(cmd, "--maps", o->maps) ||
                   cld_prepare_dir(cmd, "--overlays", o->overlays) ||
                   cld_distinct_npy_dirs(cmd, o->grids, o->maps) /* e.g. G and ./G, now made */
               ? -1
               : 0;
}
