/* The protocol as a library (anomalydino_eval.h), without the CLI: a dataset built here opened
 * as a flat list; ad_eval_run in memory with progress events; resume from out_dir giving the
 * same metrics bit for bit; cancelling mid-run and resuming to the uncancelled result; the
 * review's defects: eval banks compute no PCA mask of their references (test images are masked
 * once each), zero-shot says when it holds more than the cache budget, the report's and the
 * overlays' colour maps are one, atomic writes by concurrent writers of one path, and no
 * allocation failure makes a run lose a unit silently. */
#include "testutil.h"

#include "anomalydino_eval.h"
#include "core/core.h"
#include "detect/detect.h"
#include "image/image.h"
#include "io/io.h"
#include "report/report.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <string.h>

#define W 42
#define H 42

static char root[1100], base[1024];
static ad_model *model;
static ad_context *ctx;

static const char *P(const char *fmt, ...)
{
    static char bufs[8][2048];
    static int k;
    char *b = bufs[k++ % 8];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, 2048, fmt, ap);
    va_end(ap);
    return b;
}

static void put(const char *path, const uint8_t *px, int ch)
{
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    adi_io_mkdirs(dir);
    CHECK_OK(ch == 3 ? adi_io_write_png_rgb(path, px, W, H) : adi_io_write_png_gray(path, px, W, H));
}

static void image(const char *path, unsigned seed, int defect)
{
    uint8_t rgb[W * H * 3];
    uint32_t s = 2654435761u * (seed + 3);
    for (int i = 0; i < W * H; i++) {
        s = s * 1664525u + 1013904223u;
        int x = i % W, y = i / W;
        for (int c = 0; c < 3; c++) {
            int v = 50 + 50 * c + ((x / 6 + y / 6) % 2) * 70 + (int)(s >> 28) - 8;
            if (defect && x >= 14 && x < 26 && y >= 14 && y < 26) v = 240 - 80 * c;
            rgb[3 * i + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    put(path, rgb, 3);
}

static void make_dataset(void)
{
    uint8_t m[W * H];
    memset(m, 0, sizeof m);
    for (int y = 14; y < 26; y++)
        for (int x = 14; x < 26; x++) m[y * W + x] = 255;
    unsigned seed = 1;
    for (int c = 0; c < 2; c++) {
        const char *cat = c ? "two" : "one";
        for (int i = 0; i < 4; i++) image(P("%s/%s/train/good/%03d.png", root, cat, i), seed++, 0);
        for (int i = 0; i < 3; i++) image(P("%s/%s/test/good/%03d.png", root, cat, i), seed++, 0);
        for (int i = 0; i < 3; i++) {
            image(P("%s/%s/test/hole/%03d.png", root, cat, i), seed++, 1);
            put(P("%s/%s/ground_truth/hole/%03d_mask.png", root, cat, i), m, 1);
        }
    }
}

typedef struct {
    int lines, begins, ends, steps;
    int images_seen, cancel_after;   /* cancel_after > 0: stop when that many images were seen */
    int zs_note;
} watch;

static void on_progress(void *user, const ad_progress *p)
{
    watch *w = user;
    switch (p->kind) {
    case AD_PROGRESS_LINE:
        w->lines++;
        if (strstr(p->text, "zero-shot holds the features")) w->zs_note++;
        break;
    case AD_PROGRESS_BEGIN: w->begins++; break;
    case AD_PROGRESS_END: w->ends++; break;
    case AD_PROGRESS_STEP: w->steps++; break;
    }
}

static int on_cancel(void *user)
{
    watch *w = user;
    w->images_seen++;
    return w->cancel_after > 0 && w->images_seen >= w->cancel_after;
}

static ad_eval_params params(watch *w)
{
    ad_eval_params p = ad_eval_default_params();
    p.n_shots = 2;
    p.shots[0] = 1;
    p.shots[1] = 2;
    p.n_seeds = 2;
    p.resolution = 42;
    p.segmentation = 1;
    p.n_examples = 0;
    p.progress = on_progress;
    p.cancel = on_cancel;
    p.user = w;
    return p;
}

/* Every unit's metrics equal (bit for bit) between two results. */
static void same_metrics(const char *what, const ad_eval_results *a, const ad_eval_results *b)
{
    int n = ad_eval_unit_count(a), bad = 0;
    CHECK(n == ad_eval_unit_count(b), "%s: %d and %d units", what, n, ad_eval_unit_count(b));
    double worst = 0;
    for (int i = 0; i < n && i < ad_eval_unit_count(b); i++) {
        const ad_eval_unit *x = ad_eval_unit_at(a, i), *y = ad_eval_unit_at(b, i);
        bad += x->metrics_present != y->metrics_present || x->n_images != y->n_images;
        for (int m = 0; m < AD_EVAL_N_METRICS; m++) {
            double d = fabs(x->metrics[m] - y->metrics[m]);
            if (d > worst) worst = d;
            bad += memcmp(&x->metrics[m], &y->metrics[m], sizeof(double)) != 0;
        }
        for (int k = 0; k < x->n_images && k < y->n_images; k++)
            bad += memcmp(&x->images[k].score, &y->images[k].score, sizeof(double)) != 0;
    }
    printf("%-44s %d units, largest metric difference %.3g, %d values differ\n", what, n, worst, bad);
    CHECK(bad == 0, "%s: %d values differ (largest %.3g)", what, bad, worst);
}

static void test_dataset(void)
{
    ad_dataset_params dp = ad_dataset_default_params();
    ad_dataset *d = ad_dataset_open(AD_LAYOUT_MVTEC, root, &dp);
    CHECK(d != NULL, "dataset opens: %s", ad_errmsg());
    if (!d) return;
    CHECK(ad_dataset_category_count(d) == 2, "two categories");
    size_t n = ad_dataset_entry_count(d), train = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        const ad_dataset_entry *e = ad_dataset_entry_at(d, i);
        if (e->split == AD_SPLIT_TRAIN) train++;
        else bad += e->label;
        if (e->label) CHECK(e->mask_path && strstr(e->mask_path, "_mask.png"), "mask of %s", e->path);
    }
    printf("dataset: %zu entries, %zu train, %zu defective, %d notes\n", n, train, bad,
           ad_dataset_note_count(d));
    CHECK(n == 2 * 10 && train == 8 && bad == 6, "flat list: %zu entries", n);
    CHECK(ad_dataset_entry_at(d, n) == NULL, "past the end: NULL");
    int err = -1;
    CHECK(ad_dataset_note_count(d) > 0 && ad_dataset_note(d, 0, &err) && err == 0,
          "non-standard categories: a warning");
    ad_dataset_free(d);
    const char *none[1] = {"nosuch"};
    dp.categories = none;
    dp.n_categories = 1;
    d = ad_dataset_open(AD_LAYOUT_MVTEC, root, &dp);
    CHECK(!d && strstr(ad_errmsg(), "nosuch"), "a missing category named: %s", ad_errmsg());
    ad_dataset_free(d);
}

static void test_runs(void)
{
    ad_dataset *d = ad_dataset_open(AD_LAYOUT_MVTEC, root, NULL);
    if (!d) { CHECK(0, "%s", ad_errmsg()); return; }
    watch w = {0};
    ad_eval_params p = params(&w);
    ad_eval_results *mem = NULL, *disk = NULL, *resumed = NULL;

    /* in memory; the masks: this preset masks every test image, and must not make the banks
     * mask their references */
    p.preset = "force_mask_no_rotation";
    long pca0 = adi_mask_pca_count();
    CHECK_OK(ad_eval_run(model, ctx, d, &p, &mem));
    long pca = adi_mask_pca_count() - pca0;
    ad_eval_summary s = ad_eval_get_summary(mem);
    printf("in memory: %d computed; %d progress lines, %d phases (%d ended), %d steps; %ld PCA "
           "masks for 12 test images\n", s.computed, w.lines, w.begins, w.ends, w.steps, pca);
    CHECK(s.computed == 8 && s.failed == 0 && s.planned == 0, "8 units computed");
    CHECK(w.begins > 0 && w.begins == w.ends && w.steps >= w.begins, "phases begin and end");
    CHECK(pca == 12, "one PCA mask per test image and none of the references: %ld", pca);
    const ad_eval_unit *u = ad_eval_unit_at(mem, 0);
    CHECK(u && u->mask == 1 && u->rotate == 0 && u->n_images == 6 &&
          (u->metrics_present & 0x3f) == 0x3f, "unit 0: masked, 6 images, all metrics");
    double mu = 0, sd = 0;
    CHECK(ad_eval_cell(mem, 0, -1, AD_METRIC_IMAGE_AUROC, &mu, &sd) == 2, "macro cell over 2 seeds");
    CHECK(ad_eval_settings_json(mem) &&
          strstr(ad_eval_settings_json(mem), "force_mask_no_rotation"),
          "settings as JSON");

    /* the same into a folder, then resumed from it */
    p.out_dir = P("%s/out", base);
    CHECK_OK(ad_eval_run(model, ctx, d, &p, &disk));
    same_metrics("in memory vs written", mem, disk);
    CHECK_OK(ad_eval_run(model, ctx, d, &p, &resumed));
    s = ad_eval_get_summary(resumed);
    CHECK(s.resumed == 8 && s.computed == 0, "all 8 resumed: %d resumed %d computed", s.resumed,
          s.computed);
    same_metrics("computed vs resumed from runs/", mem, resumed);
    CHECK_OK(ad_report_write(resumed, P("%s/report", base)));
    CHECK(adi_io_exists(P("%s/report/tables.md", base)), "report written");
    ad_eval_results_free(resumed);
    resumed = NULL;

    /* other settings into the same folder: refused before anything runs */
    ad_eval_params q = p;
    q.resolution = 56;
    ad_eval_results *r = NULL;
    CHECK(ad_eval_run(model, ctx, d, &q, &r) == AD_E_MISMATCH && !r &&
          strstr(ad_errmsg(), "resolution: 42 there, 56 now"), "other settings: %s", ad_errmsg());

    /* cancelled after 15 images, then resumed: the uncancelled result */
    w = (watch){0};
    w.cancel_after = 15;
    p.out_dir = P("%s/cancel", base);
    ad_status st = ad_eval_run(model, ctx, d, &p, &r);
    s = ad_eval_get_summary(r);
    printf("cancelled after %d images: %s; %d computed, %d left\n", w.images_seen,
           ad_status_name(st), s.computed, s.planned);
    CHECK(st == AD_E_CANCELLED && r && s.planned > 0 && s.failed == 0,
          "cancel: AD_E_CANCELLED, units left planned, none failed");
    ad_eval_results_free(r);
    r = NULL;
    w.cancel_after = 0;
    CHECK_OK(ad_eval_run(model, ctx, d, &p, &resumed));
    s = ad_eval_get_summary(resumed);
    CHECK(s.resumed > 0 && s.computed > 0 && s.computed + s.resumed == 8, "resumed %d, computed %d",
          s.resumed, s.computed);
    same_metrics("uncancelled vs cancelled + resumed", mem, resumed);
    ad_eval_results_free(resumed);

    /* zero-shot with no cache budget: it still holds every feature, and says so */
    w = (watch){0};
    ad_eval_params z = ad_eval_default_params();
    z.zeroshot = 1;
    z.resolution = 42;
    z.cache_bytes = 0;
    z.progress = on_progress;
    z.user = &w;
    CHECK_OK(ad_eval_run(model, ctx, d, &z, &r));
    s = ad_eval_get_summary(r);
    CHECK(s.computed == 2 && w.zs_note == 2, "zero-shot: 2 units, %d notes of the budget", w.zs_note);
    ad_eval_results_free(r);

    ad_eval_results_free(mem);
    ad_eval_results_free(disk);
    ad_dataset_free(d);
}

/* No allocation failure may drop a unit without saying so. */
static void test_alloc_failures(void)
{
    ad_dataset *d = ad_dataset_open(AD_LAYOUT_MVTEC, root, NULL);
    if (!d) return;
    watch w = {0};
    ad_eval_params p = params(&w);
    p.segmentation = 0;
    p.n_shots = 1;
    p.n_seeds = 1;
    ad_eval_results *r = NULL;
    adi_alloc_fail_at(1 << 30); /* counting on, nothing fails */
    CHECK_OK(ad_eval_run(model, ctx, d, &p, &r));
    long total = adi_alloc_count();
    adi_alloc_fail_at(0);
    ad_eval_results_free(r);
    int runs = 0, failed_calls = 0, reported_units = 0, silent = 0;
    long step = total / 150 > 0 ? total / 150 : 1;
    for (long n = 1; n <= total; n += step) {
        r = NULL;
        adi_alloc_fail_at(n);
        ad_status st = ad_eval_run(model, ctx, d, &p, &r);
        adi_alloc_fail_at(0);
        runs++;
        if (st != AD_OK) {
            failed_calls++;
            CHECK(ad_errmsg()[0] != 0, "failure %ld: a message", n);
        } else {
            ad_eval_summary s = ad_eval_get_summary(r);
            if (s.computed != 2) {
                if (s.n_errors > 0) reported_units++;
                else silent++;
            }
        }
        ad_eval_results_free(r);
    }
    printf("allocation failures: %d runs over %ld allocations: %d calls failed with a message, "
           "%d runs reported a lost unit, %d silent\n", runs, total, failed_calls, reported_units,
           silent);
    CHECK(silent == 0, "%d runs lost a unit without a note", silent);
    CHECK(failed_calls + reported_units > 0, "the injection reached the runner");
    ad_dataset_free(d);
}

static void test_colormap_is_one(void)
{
    int differ = 0;
    for (int i = 0; i <= 1000; i++) {
        float t = i / 1000.0f;
        uint8_t a[3], b[3];
        rep_colormap(t, a);
        adi_colormap_inferno9(t, b);
        differ += memcmp(a, b, 3) != 0;
    }
    /* an overlay at full colour weight is the colour map itself */
    ad_image img = {0};
    CHECK_OK(ad_image_alloc(&img, 9, 1));
    float map[9];
    for (int i = 0; i < 9; i++) map[i] = i / 8.0f * 0.5f;
    adi_overlay_params op = adi_overlay_default_params();
    op.alpha = 1;
    op.vmax = 0.5f;
    ad_image ov = {0};
    CHECK_OK(adi_overlay_heatmap(&img, map, &op, &ov));
    for (int i = 0; ov.data && i < 9; i++) {
        uint8_t c[3];
        rep_colormap(map[i] / 0.5f, c);
        differ += memcmp(c, ov.data + 3 * i, 3) != 0;
    }
    printf("colour maps: report vs overlay, %d of 1010 colours differ\n", differ);
    CHECK(differ == 0, "the report's map and predict's overlay use one colour map");
    ad_image_free(&img);
    ad_image_free(&ov);
}

/* Writers of one path at once: a reader sees one whole version or another, never a mix. */
typedef struct {
    const char *path;
    int id;
    int failures;
    atomic_int *done;
} writer;

static void *write_many(void *arg)
{
    writer *w = arg;
    char buf[64 * 1024];
    memset(buf, 'a' + w->id, sizeof buf);
    for (int i = 0; i < 40; i++)
        if (adi_io_write_file(w->path, buf, sizeof buf) != AD_OK) w->failures++;
    atomic_fetch_add(w->done, 1);
    return NULL;
}

static void test_atomic_writes(void)
{
    const char *path = P("%s/atomic/file.bin", base);
    adi_io_mkdirs(P("%s/atomic", base));
    pthread_t th[4];
    writer w[4];
    atomic_int done = 0;
    for (int i = 0; i < 4; i++) {
        w[i] = (writer){path, i, 0, &done};
        pthread_create(&th[i], NULL, write_many, &w[i]);
    }
    int reads = 0, torn = 0;
    /* read while they write (bounded: the writers end, or a million tries) */
    for (int k = 0; k < 1000000 && (atomic_load(&done) < 4 || reads == 0); k++) {
        size_t len = 0;
        char *t = adi_io_read_file(path, &len);
        if (!t) continue;
        reads++;
        int ok = len == 64 * 1024;
        for (size_t i = 1; ok && i < len; i++) ok = t[i] == t[0];
        torn += !ok;
        free(t);
    }
    int failures = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        failures += w[i].failures;
    }
    char **names = NULL;
    int n = adi_io_list_dir(P("%s/atomic", base), ADI_LIST_ALL, &names);
    printf("atomic writes: 4 threads x 40 writes, %d failed; %d reads, %d torn; %d file(s) left\n",
           failures, reads, torn, n);
    CHECK(failures == 0 && torn == 0 && reads > 0, "every write whole");
    CHECK(n == 1, "no temporary file left (%d entries)", n);
    adi_strv_free(names, n);
    /* a failure names the path and the reason of the call that failed */
    CHECK(adi_io_write_file(P("%s/no/such/dir/x", base), "x", 1) == AD_E_IO &&
          strstr(ad_errmsg(), "No such file or directory"), "%s", ad_errmsg());
}

int main(void)
{
    snprintf(base, sizeof base, "%s", t_tmp("eval_library"));
    snprintf(root, sizeof root, "%s/data", base);
    t_run("rm -rf '%s'", base);
    make_dataset();
    model = ad_model_load(t_data("dinov2/tiny.safetensors"));
    CHECK(model != NULL, "%s", ad_errmsg());
    if (!model) return t_done("test_eval_library");
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = 2;
    ctx = ad_context_new(model, cp);
    test_dataset();
    test_runs();
    test_alloc_failures();
    test_colormap_is_one();
    test_atomic_writes();
    ad_context_free(ctx);
    ad_model_free(model);
    return t_done("test_eval_library");
}
