/* Two evaluations at once in one process, as a service or a Python program would run them: one
 * model and one opened dataset shared read-only, a context per thread, each thread running the
 * whole protocol in memory while the other runs; every unit's metrics and scores must equal the
 * serial run's bit for bit. Also run under ThreadSanitizer (make tsan). */
#include "testutil.h"

#include "anomalydino_eval.h"
#include "io/io.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>

#define W 42
#define H 42

static char root[1100];

static void image(const char *path, unsigned seed, int defect)
{
    uint8_t rgb[W * H * 3];
    uint32_t s = 2654435761u * (seed + 5);
    for (int i = 0; i < W * H; i++) {
        s = s * 1664525u + 1013904223u;
        int x = i % W, y = i / W;
        for (int c = 0; c < 3; c++) {
            int v = 70 + 40 * c + ((x / 7 + y / 7) % 2) * 60 + (int)(s >> 28) - 8;
            if (defect && x >= 10 && x < 22 && y >= 16 && y < 28) v = 245 - 70 * c;
            rgb[3 * i + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    adi_io_mkdirs(dir);
    CHECK_OK(adi_io_write_png_rgb(path, rgb, W, H));
}

typedef struct {
    const ad_model *model;
    const ad_dataset *d;
    int zeroshot;
    ad_eval_results *r;
    ad_status st;
} job;

static void *run(void *arg)
{
    job *j = arg;
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = 1;
    ad_context *ctx = ad_context_new(j->model, cp);
    if (!ctx) {
        j->st = ad_last_status();
        return NULL;
    }
    ad_eval_params p = ad_eval_default_params();
    p.zeroshot = j->zeroshot;
    p.n_shots = 2;
    p.shots[0] = 1;
    p.shots[1] = 2;
    p.n_seeds = 2;
    p.resolution = 42;
    p.segmentation = 1;
    p.preset = j->zeroshot ? NULL : "force_mask_rotation";
    j->st = ad_eval_run(j->model, ctx, j->d, &p, &j->r);
    ad_context_free(ctx);
    return NULL;
}

static int same(const ad_eval_results *a, const ad_eval_results *b, double *worst)
{
    int bad = ad_eval_unit_count(a) != ad_eval_unit_count(b);
    for (int i = 0; !bad && i < ad_eval_unit_count(a); i++) {
        const ad_eval_unit *x = ad_eval_unit_at(a, i), *y = ad_eval_unit_at(b, i);
        bad += x->n_images != y->n_images || x->metrics_present != y->metrics_present;
        for (int m = 0; m < AD_EVAL_N_METRICS; m++) {
            double dd = fabs(x->metrics[m] - y->metrics[m]);
            if (dd > *worst) *worst = dd;
            bad += memcmp(&x->metrics[m], &y->metrics[m], sizeof(double)) != 0;
        }
        for (int k = 0; k < x->n_images && k < y->n_images; k++)
            bad += memcmp(&x->images[k].score, &y->images[k].score, sizeof(double)) != 0;
    }
    return bad;
}

int main(void)
{
    const char *base = t_tmp("concurrent_eval");
    snprintf(root, sizeof root, "%s/data", base);
    t_run("rm -rf '%s'", base);
    char p[2048];
    unsigned seed = 1;
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/part/train/good/%03d.png", root, i);
        image(p, seed++, 0);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/part/test/good/%03d.png", root, i);
        image(p, seed++, 0);
        snprintf(p, sizeof p, "%s/part/test/dent/%03d.png", root, i);
        image(p, seed++, 1);
    }
    ad_model *model = ad_model_load(t_data("dinov2/tiny.safetensors"));
    ad_dataset *d = ad_dataset_open(AD_LAYOUT_FOLDER, root, NULL);
    CHECK(model && d, "%s", ad_errmsg());
    if (!model || !d) return t_done("test_concurrent_eval");
    job serial[2] = {{model, d, 0, NULL, AD_OK}, {model, d, 1, NULL, AD_OK}};
    for (int k = 0; k < 2; k++) run(&serial[k]);
    job par[4];
    pthread_t th[4];
    for (int k = 0; k < 4; k++) {
        par[k] = (job){model, d, k % 2, NULL, AD_OK};
        pthread_create(&th[k], NULL, run, &par[k]);
    }
    for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
    for (int k = 0; k < 4; k++) {
        double worst = 0;
        CHECK(par[k].st == AD_OK && par[k].r, "thread %d: %s", k, ad_status_name(par[k].st));
        if (!par[k].r || !serial[k % 2].r) continue;
        int bad = same(serial[k % 2].r, par[k].r, &worst);
        printf("thread %d (%s): %d units, largest difference from the serial run %.3g, %d values "
               "differ\n", k, k % 2 ? "zero-shot" : "few-shot", ad_eval_unit_count(par[k].r),
               worst, bad);
        CHECK(bad == 0 && ad_eval_get_summary(par[k].r).computed > 0, "thread %d differs", k);
        ad_eval_results_free(par[k].r);
    }
    for (int k = 0; k < 2; k++) ad_eval_results_free(serial[k].r);
    ad_dataset_free(d);
    ad_model_free(model);
    return t_done("test_concurrent_eval");
}
