/* One category of a benchmark through the library alone: what a Python or HTTP front end would
 * call to run an evaluation. Built against the installed library with pkg-config:
 *
 *   cc eval_category.c $(pkg-config --cflags --libs anomalydino) -o eval_category
 *   ./eval_category WEIGHTS MVTEC_ROOT CATEGORY [SHOTS [OUT_DIR]]
 *
 * It opens the dataset (MVTec AD layout), runs the protocol for SHOTS (default 1) references
 * and one seed, with a progress callback and a cancel callback (Ctrl-C stops at the next
 * image), prints each unit's image metrics and every test image's score as CSV on stdout, and,
 * given OUT_DIR, writes the report files there (metrics.json, tables.md, report.html, ...).
 * Exit 0 on success. */
#include <anomalydino.h>
#include <anomalydino_eval.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int want_stop(void *user)
{
    (void)user;
    return interrupted;
}

static void on_progress(void *user, const ad_progress *p)
{
    (void)user;
    if (p->kind == AD_PROGRESS_LINE) fprintf(stderr, "%s\n", p->text);
    else if (p->kind == AD_PROGRESS_END) fprintf(stderr, "%s: %d/%d\n", p->text, p->done, p->total);
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: %s WEIGHTS MVTEC_ROOT CATEGORY [SHOTS [OUT_DIR]]\n", argv[0]);
        return 2;
    }
    int shots = argc > 4 ? atoi(argv[4]) : 1;
    signal(SIGINT, on_sigint);

    ad_model *model = ad_model_load(argv[1]);
    if (!model) {
        fprintf(stderr, "%s\n", ad_errmsg());
        return 1;
    }
    ad_context *ctx = ad_context_new(model, ad_context_default_params());
    const char *cats[1] = {argv[3]};
    ad_dataset_params dp = ad_dataset_default_params();
    dp.categories = cats;
    dp.n_categories = 1;
    ad_dataset *d = ctx ? ad_dataset_open(AD_LAYOUT_MVTEC, argv[2], &dp) : NULL;
    if (!d) {
        fprintf(stderr, "%s\n", ad_errmsg());
        ad_context_free(ctx);
        ad_model_free(model);
        return 1;
    }
    const ad_dataset_category *c = ad_dataset_category_at(d, 0);
    fprintf(stderr, "%s: %d references, %d test images\n", c->name, c->n_train, c->n_test);

    ad_eval_params ep = ad_eval_default_params();
    ep.n_shots = 1;
    ep.shots[0] = shots;
    ep.n_seeds = 1;
    ep.n_examples = 0;
    ep.out_dir = argc > 5 ? argv[5] : NULL;   /* NULL: everything in memory */
    ep.progress = on_progress;
    ep.cancel = want_stop;
    ad_eval_results *r = NULL;
    ad_status st = ad_eval_run(model, ctx, d, &ep, &r);
    int rc = st == AD_OK ? 0 : 1;
    if (st != AD_OK) fprintf(stderr, "%s\n", ad_errmsg());
    for (int i = 0; r && i < ad_eval_unit_count(r); i++) {
        const ad_eval_unit *u = ad_eval_unit_at(r, i);
        if (u->state != AD_UNIT_COMPUTED && u->state != AD_UNIT_RESUMED) continue;
        printf("unit,%s,%d,%d", u->category, u->shots, u->seed);
        for (int m = 0; m < AD_EVAL_N_METRICS; m++)
            if (u->metrics_present >> m & 1)
                printf(",%s=%.17g", ad_metric_name((ad_metric)m), u->metrics[m]);
        printf("\n");
        for (int k = 0; k < u->n_images; k++)
            printf("image,%s,%d,%.9g\n", u->images[k].image, u->images[k].label,
                   u->images[k].score);
    }
    for (int i = 0; r && i < ad_eval_note_count(r); i++) {
        int err;
        const char *note = ad_eval_note(r, i, &err);
        fprintf(stderr, "%s: %s\n", err ? "problem" : "warning", note);
    }
    ad_eval_summary s = ad_eval_get_summary(r);
    if (r && (s.computed + s.resumed == 0 || s.failed)) rc = 1;
    if (r && ep.out_dir && ad_report_write(r, ep.out_dir) != AD_OK) {
        fprintf(stderr, "%s\n", ad_errmsg());
        rc = 1;
    }
    ad_eval_results_free(r);
    ad_dataset_free(d);
    ad_context_free(ctx);
    ad_model_free(model);
    return rc;
}
