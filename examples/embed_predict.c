/* An outside program built against the installed library with nothing but pkg-config:
 *
 *   cc embed_predict.c $(pkg-config --cflags --libs anomalydino) -o embed_predict
 *   ./embed_predict dinov2_vits14_pretrain.pth
 *
 * It fits a bank on two synthetic "good" images (the library never decodes files: pixels are the
 * caller's), then scores a good and a defective image from two threads at once, each thread with
 * its own context on the shared model and bank, and checks that the threads agree with a serial
 * run. Exit 0 on success. */
#include <anomalydino.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int make_part(ad_image *img, unsigned seed, int defect)
{
    if (ad_image_alloc(img, 160, 160) != AD_OK) return -1;
    for (int y = 0; y < 160; y++)
        for (int x = 0; x < 160; x++) {
            uint8_t *p = img->data + ((size_t)y * 160 + x) * 3;
            int v = ((x / 20 + y / 20) % 2) ? 200 : 60; /* a checkerboard part */
            seed = seed * 1103515245u + 12345u;
            v += (int)(seed >> 28) - 8; /* sensor noise */
            if (defect && (x - 100) * (x - 100) + (y - 70) * (y - 70) < 150) v = 255 - v;
            p[0] = p[1] = p[2] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    return 0;
}

typedef struct {
    const ad_model *model;
    const ad_bank *bank;
    const ad_image *img;
    double score;
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
    ad_result r;
    j->st = ad_predict(j->bank, ctx, j->img, -1, &r);
    if (j->st == AD_OK) {
        j->score = r.score;
        ad_result_free(&r);
    }
    ad_context_free(ctx);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s WEIGHTS (.pth or .safetensors)\n", argv[0]);
        return 2;
    }
    printf("libanomalydino %s\n", ad_version());
    ad_model *m = ad_model_load(argv[1]);
    if (!m) {
        fprintf(stderr, "embed_predict: %s (%s)\n", ad_errmsg(), ad_status_name(ad_last_status()));
        return 1;
    }
    ad_model_info info = ad_model_get_info(m);
    printf("model %s, %d blocks, width %d\n", info.name, info.depth, info.dim);

    /* results are bit-identical for the same thread count: the serial run uses the threads' 1 */
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = 1;
    ad_context *ctx = ad_context_new(m, cp);
    ad_bank_params bp = ad_bank_default_params();
    bp.resolution = 112;
    ad_bank *bank = ad_bank_new(m, &bp);
    ad_image good[2], test[2];
    int ok = ctx && bank;
    for (int i = 0; i < 2 && ok; i++) ok = make_part(&good[i], 7u + i, 0) == 0;
    ok = ok && make_part(&test[0], 99u, 0) == 0 && make_part(&test[1], 123u, 1) == 0;
    for (int i = 0; i < 2 && ok; i++) ok = ad_bank_add_image(bank, ctx, &good[i], i) == AD_OK;
    ok = ok && ad_bank_calibrate_loo(bank, ctx, AD_THRESH_MAX, 0) == AD_OK;
    if (!ok) {
        fprintf(stderr, "embed_predict: %s\n", ad_errmsg());
        return 1;
    }
    double thr = 0;
    ad_bank_threshold(bank, &thr);
    printf("bank: %zu rows, threshold %.6f\n", ad_bank_rows(bank), thr);

    double serial[2];
    for (int i = 0; i < 2; i++) {
        ad_result r;
        if (ad_predict(bank, ctx, &test[i], -1, &r) != AD_OK) {
            fprintf(stderr, "embed_predict: %s\n", ad_errmsg());
            return 1;
        }
        serial[i] = r.score;
        printf("%s part: score %.6f, %s\n", i ? "defective" : "good", r.score,
               r.verdict == AD_VERDICT_NG ? "NG" : r.verdict == AD_VERDICT_OK ? "OK" : "-");
        ad_result_free(&r);
    }
    pthread_t th[2];
    job jobs[2];
    for (int i = 0; i < 2; i++) {
        jobs[i] = (job){m, bank, &test[i], 0, AD_OK};
        pthread_create(&th[i], NULL, run, &jobs[i]);
    }
    int bad = 0;
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].st != AD_OK || memcmp(&jobs[i].score, &serial[i], sizeof(double)) != 0) bad++;
    }
    printf("two threads: %s\n", bad ? "DIFFER from the serial run" : "identical to the serial run");
    for (int i = 0; i < 2; i++) {
        ad_image_free(&good[i]);
        ad_image_free(&test[i]);
    }
    ad_bank_free(bank);
    ad_context_free(ctx);
    ad_model_free(m);
    return bad ? 1 : 0;
}
