/* The thread contract of the header: one model and one bank shared read-only by several threads,
 * each with its own context, give results bit-identical to the same predictions run one after
 * another; and no library call changes the host's OpenMP or OpenBLAS thread settings.
 *
 * The host first sets its own OpenMP default to 3 (an odd value no context uses). Then:
 *   1. serial: every image predicted once on one context (2 threads), masked and unmasked;
 *   2. concurrent: THREADS pthreads, each with its own 2-thread context, each predicting every
 *      image ROUNDS times in its own order, while the host thread also scores a zero-shot batch
 *      on a context of its own;
 *   3. every score and grid compared bit for bit with the serial run, the zero-shot grids with a
 *      serial zero-shot, and the host's settings read back.
 * Under ThreadSanitizer (make tsan) the same test must report no race. */
#include "anomalydino.h"
#include "io/io.h"
#include "testutil.h"

#include <omp.h>
#include <pthread.h>
#include <string.h>

extern int openblas_get_num_threads(void) __attribute__((weak));

#define N_IMAGES 4
#define THREADS 4
#define ROUNDS 2
#define CTX_THREADS 2

static const char *image_files[N_IMAGES] = {"good/washer_01.png", "test/good_06.png",
                                            "test/scratch.png", "test/stain.png"};

typedef struct {
    double score;
    ad_verdict verdict;
    size_t n;
    double *grid;
} outcome;

static const ad_model *g_model;
static const ad_bank *g_bank;
static ad_image g_img[N_IMAGES];
static outcome g_serial[N_IMAGES][2]; /* [image][mask] */

typedef struct {
    int id;
    int mismatches;
    int failures;
    char msg[256];
} worker;

static int same(const outcome *ref, const ad_result *r)
{
    size_t n = (size_t)r->grid_h * (size_t)r->grid_w;
    return n == ref->n && memcmp(&r->score, &ref->score, sizeof r->score) == 0 &&
           r->verdict == ref->verdict && memcmp(r->grid, ref->grid, n * sizeof *r->grid) == 0;
}

static void *run_worker(void *arg)
{
    worker *w = arg;
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = CTX_THREADS;
    ad_context *ctx = ad_context_new(g_model, cp);
    if (!ctx) {
        w->failures++;
        snprintf(w->msg, sizeof w->msg, "context: %s", ad_errmsg());
        return NULL;
    }
    for (int round = 0; round < ROUNDS; round++)
        for (int j = 0; j < N_IMAGES * 2; j++) {
            int k = (j + w->id * 3 + round) % (N_IMAGES * 2); /* each thread its own order */
            int img = k / 2, mask = k % 2;
            ad_result r;
            ad_status st = ad_predict(g_bank, ctx, &g_img[img], mask, &r);
            if (st != AD_OK) {
                w->failures++;
                snprintf(w->msg, sizeof w->msg, "predict: %s", ad_errmsg());
                continue;
            }
            if (!same(&g_serial[img][mask], &r)) {
                if (!w->mismatches)
                    snprintf(w->msg, sizeof w->msg, "image %d mask %d: score %.17g vs serial %.17g",
                             img, mask, r.score, g_serial[img][mask].score);
                w->mismatches++;
            }
            ad_result_free(&r);
        }
    ad_context_free(ctx);
    return NULL;
}

/* Zero-shot over the images' features on a context of its own. */
static ad_status zeroshot_grids(ad_context *ctx, double **grids)
{
    ad_features f[N_IMAGES];
    memset(f, 0, sizeof f);
    ad_status st = AD_OK;
    for (int i = 0; i < N_IMAGES && st == AD_OK; i++) st = ad_extract_image(ctx, &g_img[i], 112, &f[i]);
    if (st == AD_OK) st = ad_zeroshot(ctx, f, NULL, N_IMAGES, grids);
    for (int i = 0; i < N_IMAGES; i++) ad_features_free(&f[i]);
    return st;
}

int main(void)
{
    omp_set_num_threads(3);
    const int blas_before = openblas_get_num_threads ? openblas_get_num_threads() : -1;

    ad_model *m = ad_model_load(t_data("dinov2/tiny.safetensors"));
    CHECK(m != NULL, "model: %s", ad_errmsg());
    if (!m) return t_done("test_concurrent_predict");
    g_model = m;
    char path[4096];
    for (int i = 0; i < N_IMAGES; i++) {
        snprintf(path, sizeof path, "%s/../../samples/%s", t_data(""), image_files[i]);
        CHECK_OK(adi_io_read_image(path, &g_img[i]));
        if (!g_img[i].data) return t_done("test_concurrent_predict");
    }

    ad_context_params cp = ad_context_default_params();
    cp.n_threads = CTX_THREADS;
    ad_context *ctx = ad_context_new(m, cp);
    ad_bank_params bp = ad_bank_default_params();
    bp.resolution = 112;
    bp.rotate = 1;
    ad_bank *bank = ad_bank_new(m, &bp);
    CHECK(ctx && bank, "context / bank: %s", ad_errmsg());
    if (!ctx || !bank) return t_done("test_concurrent_predict");
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/../../samples/good/washer_0%d.png", t_data(""), i + 2);
        ad_image ref = {0};
        CHECK_OK(adi_io_read_image(path, &ref));
        CHECK_OK(ad_bank_add_image(bank, ctx, &ref, i));
        ad_image_free(&ref);
    }
    CHECK_OK(ad_bank_calibrate_loo(bank, ctx, AD_THRESH_MAX, 0));
    g_bank = bank;
    printf("bank: %zu rows from %d references\n", ad_bank_rows(bank), ad_bank_images(bank));

    for (int i = 0; i < N_IMAGES; i++)
        for (int mask = 0; mask < 2; mask++) {
            ad_result r;
            CHECK_OK(ad_predict(bank, ctx, &g_img[i], mask, &r));
            outcome *o = &g_serial[i][mask];
            o->score = r.score;
            o->verdict = r.verdict;
            o->n = (size_t)r.grid_h * (size_t)r.grid_w;
            o->grid = r.grid; /* kept; r.keep freed */
            r.grid = NULL;
            ad_result_free(&r);
            printf("serial image %d mask %d: score %.9f\n", i, mask, o->score);
        }

    double *zs_serial[N_IMAGES], *zs_conc[N_IMAGES];
    for (int i = 0; i < N_IMAGES; i++) {
        zs_serial[i] = calloc(64 * 64, sizeof(double));
        zs_conc[i] = calloc(64 * 64, sizeof(double));
    }
    CHECK_OK(zeroshot_grids(ctx, zs_serial));

    pthread_t th[THREADS];
    worker w[THREADS];
    memset(w, 0, sizeof w);
    for (int t = 0; t < THREADS; t++) {
        w[t].id = t;
        CHECK(pthread_create(&th[t], NULL, run_worker, &w[t]) == 0, "pthread_create");
    }
    ad_context *zctx = ad_context_new(m, cp); /* the host thread works meanwhile too */
    CHECK_OK(zeroshot_grids(zctx, zs_conc));
    ad_context_free(zctx);
    int mism = 0, fails = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        if (w[t].mismatches || w[t].failures) printf("thread %d: %s\n", t, w[t].msg);
        mism += w[t].mismatches;
        fails += w[t].failures;
    }
    printf("%d threads x %d predictions: %d failed, %d differ from the serial run\n", THREADS,
           ROUNDS * N_IMAGES * 2, fails, mism);
    CHECK(fails == 0, "%d concurrent predictions failed", fails);
    CHECK(mism == 0, "%d concurrent predictions differ from the serial run", mism);
    int zs_diff = 0;
    for (int i = 0; i < N_IMAGES; i++)
        zs_diff += memcmp(zs_serial[i], zs_conc[i], 8 * 8 * sizeof(double)) != 0;
    CHECK(zs_diff == 0, "zero-shot run beside the predictions differs in %d grids", zs_diff);

    CHECK(omp_get_max_threads() == 3, "the host's OpenMP default changed: %d (was 3)",
          omp_get_max_threads());
    if (openblas_get_num_threads) {
        int after = openblas_get_num_threads();
        printf("OpenMP default %d, OpenBLAS threads %d (before %d)\n", omp_get_max_threads(), after,
               blas_before);
        CHECK(after == blas_before, "OpenBLAS thread count changed: %d -> %d", blas_before, after);
    }

    for (int i = 0; i < N_IMAGES; i++) {
        free(g_serial[i][0].grid);
        free(g_serial[i][1].grid);
        free(zs_serial[i]);
        free(zs_conc[i]);
        ad_image_free(&g_img[i]);
    }
    ad_bank_free(bank);
    ad_context_free(ctx);
    ad_model_free(m);
    return t_done("test_concurrent_predict");
}
