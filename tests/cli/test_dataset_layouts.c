/* Dataset layouts of `anomalydino eval`: which files become references and test images, in
 * which order, with which ground truth, and what is reported as left out - for MVTec AD, VisA
 * (prepared 1cls layout, under ROOT/1cls, and the raw download with split_csv/1cls.csv) and the
 * generic folder layout. File contents do not matter here (nothing is decoded). */
#include "testutil.h"

#include "protocol/dataset.h"
#include "io/io.h"

#include <stdarg.h>
#include <string.h>

static char root_buf[1024];

static void touch(const char *fmt, ...)
{
    char rel[1024], path[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(path, sizeof path, "%s/%s", root_buf, rel);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    *slash = 0;
    adi_io_mkdirs(dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs("x", f);
        fclose(f);
    }
}

static void write_text(const char *rel, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root_buf, rel);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    adi_io_mkdirs(dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void new_root(const char *name)
{
    snprintf(root_buf, sizeof root_buf, "%s", t_tmp(name));
    t_run("rm -rf '%s'", root_buf);
    adi_io_mkdirs(root_buf);
}

static int has_line(const ds_lines *l, const char *a, const char *b)
{
    for (int i = 0; i < l->n; i++)
        if (strstr(l->v[i], a) && (!b || strstr(l->v[i], b))) return 1;
    return 0;
}

static const char *tail(const char *p, int parts)
{
    /* last `parts` components of a path, for comparisons independent of the temp root */
    if (!p) return "(null)";
    const char *s = p + strlen(p);
    while (s > p && parts > 0) {
        s--;
        if (*s == '/') parts--;
    }
    return *s == '/' ? s + 1 : s;
}

static void dump(const ds_dataset *d)
{
    for (int i = 0; i < d->warnings.n; i++) printf("  warning: %s\n", d->warnings.v[i]);
    for (int i = 0; i < d->errors.n; i++) printf("  error: %s\n", d->errors.v[i]);
}

static void test_mvtec(void)
{
    new_root("ds_mvtec");
    /* created out of order: the reference order must be byte order of the names */
    const char *train[] = {"b.png", "10.png", "a.png", "9.png", "B.png"};
    for (int i = 0; i < 5; i++) touch("bottle/train/good/%s", train[i]);
    touch("bottle/train/good/notes.txt");
    touch("bottle/train/good/.hidden.png");
    touch("bottle/test/good/001.png");
    touch("bottle/test/good/000.png");
    touch("bottle/test/good/002.PNG"); /* the original evaluates exactly ".png" */
    touch("bottle/test/scratch/000.png");
    touch("bottle/test/scratch/001.png");
    touch("bottle/ground_truth/scratch/000_mask.png");
    touch("bottle/ground_truth/scratch/001_mask.png");
    touch("bottle/test/broken_large/000.png"); /* no ground truth */
    touch("bottle/test/bad2/000.png");         /* digits: skipped like the original */
    touch("screw/train/good/000.png");
    touch("screw/test/good/000.png");
    touch("screw/test/thread/000.png");
    touch("screw/ground_truth/thread/000_mask.png");
    touch("extra/train/good/000.png"); /* not a standard category */
    touch("extra/test/good/000.png");
    touch("notacategory/readme.png");

    ds_dataset d;
    CHECK_OK(ds_open(DS_MVTEC, root_buf, NULL, 0, &d));
    dump(&d);
    CHECK(d.n_cats == 3, "categories found: %d (want bottle, extra, screw)", d.n_cats);
    if (d.n_cats != 3) { ds_free(&d); return; }
    CHECK(!strcmp(d.cats[0].name, "bottle") && !strcmp(d.cats[1].name, "extra") &&
              !strcmp(d.cats[2].name, "screw"),
          "order %s %s %s", d.cats[0].name, d.cats[1].name, d.cats[2].name);
    const ds_category *b = &d.cats[0];
    const char *want_train[] = {"10.png", "9.png", "B.png", "a.png", "b.png"};
    CHECK(b->n_train == 5, "bottle references %d, want 5 (notes.txt and hidden files ignored)",
          b->n_train);
    for (int i = 0; i < b->n_train && i < 5; i++)
        CHECK(!strcmp(b->train_names[i], want_train[i]), "train[%d] = %s, want %s", i,
              b->train_names[i], want_train[i]);
    CHECK(!strcmp(tail(b->train[0], 4), "bottle/train/good/10.png"), "train path %s", b->train[0]);
    const char *want_test[] = {"good/000.png", "good/001.png", "broken_large/000.png",
                               "scratch/000.png", "scratch/001.png"};
    const int want_defect[] = {0, 0, 1, 1, 1};
    const char *want_gt[] = {NULL, NULL, NULL, "ground_truth/scratch/000_mask.png",
                             "ground_truth/scratch/001_mask.png"};
    CHECK(b->n_test == 5, "bottle test images %d, want 5", b->n_test);
    for (int i = 0; i < b->n_test && i < 5; i++) {
        CHECK(!strcmp(b->test[i].name, want_test[i]), "test[%d] = %s, want %s", i,
              b->test[i].name, want_test[i]);
        CHECK(b->test[i].defect == want_defect[i], "test[%d] defect %d", i, b->test[i].defect);
        const char *gt = b->test[i].mask_path;
        CHECK(want_gt[i] ? gt && !strcmp(tail(gt, 3), want_gt[i]) : gt == NULL,
              "test[%d] ground truth %s, want %s", i, gt ? gt : "(none)",
              want_gt[i] ? want_gt[i] : "(none)");
    }
    CHECK(has_line(&d.warnings, "broken_large/000.png", "no ground truth"),
          "missing ground truth reported with the path");
    CHECK(has_line(&d.warnings, "bad2", "skipped"), "test folder with digits reported");
    CHECK(has_line(&d.warnings, "notes.txt", NULL) || has_line(&d.warnings, "not .png/.jpg", NULL),
          "non-image reference file reported");
    CHECK(has_line(&d.warnings, "extra", "not a standard"), "non-standard category reported");
    CHECK(has_line(&d.warnings, "standard categories not found", "cable"),
          "missing standard categories reported");
    CHECK(d.errors.n == 0, "no errors expected, got %d", d.errors.n);

    /* shot blocks: seed*k .. (seed+1)*k-1, clipped; k < 0 = all */
    int first, n;
    n = ds_select_shots(b, 2, 0, &first);
    CHECK(n == 2 && first == 0, "k2 seed0: first %d n %d", first, n);
    n = ds_select_shots(b, 2, 1, &first);
    CHECK(n == 2 && first == 2, "k2 seed1: first %d n %d", first, n);
    n = ds_select_shots(b, 2, 2, &first);
    CHECK(n == 1 && first == 4, "k2 seed2 (only one left): first %d n %d", first, n);
    n = ds_select_shots(b, 2, 3, &first);
    CHECK(n == 0, "k2 seed3: nothing left, got %d", n);
    n = ds_select_shots(b, 16, 0, &first);
    CHECK(n == 5 && first == 0, "k16 seed0: all 5, got %d", n);
    n = ds_select_shots(b, -1, 2, &first);
    CHECK(n == 5 && first == 0, "full shot: all 5, got %d", n);
    ds_free(&d);

    /* explicit list: order kept, a missing category is an error line */
    char *cats[] = {"screw", "nosuch", "bottle"};
    CHECK_OK(ds_open(DS_MVTEC, root_buf, cats, 3, &d));
    dump(&d);
    CHECK(d.n_cats == 2 && !strcmp(d.cats[0].name, "screw") && !strcmp(d.cats[1].name, "bottle"),
          "explicit categories: %d", d.n_cats);
    CHECK(has_line(&d.errors, "nosuch", "not found"), "missing category reported as an error");
    ds_free(&d);

    char *none[] = {"nosuch"};
    ad_status st = ds_open(DS_MVTEC, root_buf, none, 1, &d);
    CHECK(st != AD_OK, "nothing usable must fail");
    printf("  nothing usable: %s\n", ad_errmsg());
    CHECK(strstr(ad_errmsg(), "nosuch") != NULL, "the reason names the category: %s", ad_errmsg());
    st = ds_open(DS_MVTEC, t_tmp("ds_does_not_exist"), NULL, 0, &d);
    CHECK(st != AD_OK, "missing root must fail");
}

static void test_visa_prepared(void)
{
    new_root("ds_visa/1cls");
    touch("candle/train/good/0002.JPG");
    touch("candle/train/good/0001.JPG");
    touch("candle/test/good/0100.JPG");
    touch("candle/test/good/0101.png"); /* VisA: exactly ".JPG" */
    touch("candle/test/bad/000.JPG");
    touch("candle/test/bad/001.JPG");
    touch("candle/ground_truth/bad/000.png");
    touch("candle/ground_truth/bad/001.png");
    /* the original's data root is VisA_pytorch/1cls; the parent works too */
    char parent[1024];
    snprintf(parent, sizeof parent, "%s", root_buf);
    *strrchr(parent, '/') = 0;
    ds_dataset d;
    CHECK_OK(ds_open(DS_VISA, parent, NULL, 0, &d));
    dump(&d);
    CHECK(d.n_cats == 1 && !d.visa_raw, "visa prepared: %d categories, raw %d", d.n_cats,
          d.visa_raw);
    if (d.n_cats == 1) {
        const ds_category *c = &d.cats[0];
        CHECK(c->n_train == 2 && !strcmp(c->train_names[0], "0001.JPG"), "references %d %s",
              c->n_train, c->n_train ? c->train_names[0] : "");
        CHECK(c->n_test == 3, "test images %d, want 3", c->n_test);
        if (c->n_test == 3) {
            CHECK(!strcmp(c->test[0].name, "good/0100.JPG"), "test[0] %s", c->test[0].name);
            CHECK(!strcmp(c->test[1].name, "bad/000.JPG"), "test[1] %s", c->test[1].name);
            CHECK(c->test[1].mask_path &&
                      !strcmp(tail(c->test[1].mask_path, 3), "ground_truth/bad/000.png"),
                  "VisA ground truth is STEM.png: %s",
                  c->test[1].mask_path ? c->test[1].mask_path : "(none)");
        }
    }
    CHECK(has_line(&d.warnings, "candle", "not .JPG"), "non-.JPG test file reported");
    ds_free(&d);
}

static void test_visa_raw(void)
{
    new_root("ds_visa_raw");
    touch("candle/Data/Images/Normal/0007.JPG");
    touch("candle/Data/Images/Normal/0002.JPG");
    touch("candle/Data/Images/Normal/0005.JPG");
    touch("candle/Data/Images/Normal/0010.JPG");
    touch("candle/Data/Images/Normal/0011.JPG");
    touch("candle/Data/Images/Anomaly/000.JPG");
    touch("candle/Data/Images/Anomaly/001.JPG");
    touch("candle/Data/Masks/Anomaly/000.png");
    touch("pcb1/Data/Images/Normal/0001.JPG");
    touch("pcb1/Data/Images/Normal/0002.JPG");
    touch("pcb1/Data/Images/Anomaly/000.JPG");
    touch("pcb1/Data/Masks/Anomaly/000.png");
    write_text("split_csv/1cls.csv",
               "object,split,label,image,mask\r\n"
               "candle,train,normal,candle/Data/Images/Normal/0007.JPG,\r\n"
               "candle,train,normal,\"candle/Data/Images/Normal/0002.JPG\",\r\n"
               "candle,train,normal,candle/Data/Images/Normal/0005.JPG,\r\n"
               "candle,test,anomaly,candle/Data/Images/Anomaly/001.JPG,"
               "candle/Data/Masks/Anomaly/001.png\r\n"
               "candle,test,normal,candle/Data/Images/Normal/0011.JPG,\r\n"
               "candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,"
               "candle/Data/Masks/Anomaly/000.png\r\n"
               "candle,test,normal,candle/Data/Images/Normal/0010.JPG,\r\n"
               "candle,test,normal,candle/Data/Images/Normal/0099.JPG,\r\n"
               "pcb1,train,normal,pcb1/Data/Images/Normal/0001.JPG,\r\n"
               "pcb1,test,normal,pcb1/Data/Images/Normal/0002.JPG,\r\n"
               "pcb1,test,anomaly,pcb1/Data/Images/Anomaly/000.JPG,pcb1/Data/Masks/Anomaly/000.png\r\n");
    ds_dataset d;
    CHECK_OK(ds_open(DS_VISA, root_buf, NULL, 0, &d));
    dump(&d);
    CHECK(d.visa_raw == 1, "split_csv/1cls.csv recognised");
    CHECK(d.n_cats == 2, "categories %d, want candle and pcb1", d.n_cats);
    if (d.n_cats >= 1) {
        const ds_category *c = &d.cats[0];
        CHECK(!strcmp(c->name, "candle"), "first category %s", c->name);
        const char *want_train[] = {"0002.JPG", "0005.JPG", "0007.JPG"};
        CHECK(c->n_train == 3, "candle references %d, want 3", c->n_train);
        for (int i = 0; i < c->n_train && i < 3; i++)
            CHECK(!strcmp(c->train_names[i], want_train[i]), "train[%d] %s, want %s", i,
                  c->train_names[i], want_train[i]);
        const char *want_test[] = {"good/0010.JPG", "good/0011.JPG", "bad/000.JPG",
                                   "bad/001.JPG"};
        CHECK(c->n_test == 4, "candle test images %d, want 4 (0099 does not exist)", c->n_test);
        for (int i = 0; i < c->n_test && i < 4; i++)
            CHECK(!strcmp(c->test[i].name, want_test[i]), "test[%d] %s, want %s", i,
                  c->test[i].name, want_test[i]);
        if (c->n_test == 4) {
            CHECK(c->test[2].mask_path &&
                      !strcmp(tail(c->test[2].mask_path, 5), "candle/Data/Masks/Anomaly/000.png"),
                  "mask from the CSV: %s", c->test[2].mask_path ? c->test[2].mask_path : "(none)");
            CHECK(c->test[3].mask_path == NULL && c->test[3].defect,
                  "listed mask that does not exist: no ground truth");
            CHECK(!strcmp(tail(c->test[0].path, 5), "candle/Data/Images/Normal/0010.JPG"),
                  "test path %s", c->test[0].path);
        }
    }
    CHECK(has_line(&d.errors, "0099.JPG", "does not exist"), "missing listed file reported");
    CHECK(has_line(&d.warnings, "001.JPG", "no ground truth"), "missing mask reported");
    ds_free(&d);

    char *cats[] = {"pcb1"};
    CHECK_OK(ds_open(DS_VISA, root_buf, cats, 1, &d));
    CHECK(d.n_cats == 1 && !strcmp(d.cats[0].name, "pcb1") && d.cats[0].n_test == 2,
          "--categories pcb1 from the CSV");
    ds_free(&d);

    /* LF line ends, no final newline */
    write_text("split_csv/1cls.csv",
               "object,split,label,image,mask\n"
               "pcb1,train,normal,pcb1/Data/Images/Normal/0001.JPG,\n"
               "pcb1,test,normal,pcb1/Data/Images/Normal/0002.JPG,\n"
               "pcb1,test,anomaly,pcb1/Data/Images/Anomaly/000.JPG,pcb1/Data/Masks/Anomaly/000.png");
    CHECK_OK(ds_open(DS_VISA, root_buf, NULL, 0, &d));
    CHECK(d.n_cats == 1 && d.cats[0].n_train == 1 && d.cats[0].n_test == 2 &&
              d.cats[0].test[1].mask_path != NULL,
          "LF-only CSV: %d categories", d.n_cats);
    ds_free(&d);

    write_text("split_csv/1cls.csv", "a,b,c\n1,2,3\n");
    ad_status st = ds_open(DS_VISA, root_buf, NULL, 0, &d);
    CHECK(st == AD_E_FORMAT, "CSV without the expected columns refused: %s", ad_errmsg());
    printf("  bad CSV header: %s\n", ad_errmsg());
}

static void test_folder(void)
{
    new_root("ds_folder/part");
    touch("train/good/ref1.jpg");
    touch("train/good/ref0.PNG");
    touch("test/good/ok.png");
    touch("test/scratch2/s.jpeg");  /* any name is fine in the folder layout */
    touch("test/dent/d.png");
    touch("ground_truth/scratch2/s.png");   /* STEM.png */
    touch("ground_truth/dent/d_mask.png");  /* STEM_mask.png */
    ds_dataset d;
    /* ROOT itself is one category */
    CHECK_OK(ds_open(DS_FOLDER, root_buf, NULL, 0, &d));
    dump(&d);
    CHECK(d.n_cats == 1 && !strcmp(d.cats[0].name, "part"), "single-category root: %d %s",
          d.n_cats, d.n_cats ? d.cats[0].name : "");
    if (d.n_cats == 1) {
        const ds_category *c = &d.cats[0];
        CHECK(c->n_train == 2 && !strcmp(c->train_names[0], "ref0.PNG"), "references %d",
              c->n_train);
        CHECK(c->n_test == 3, "test images %d", c->n_test);
        if (c->n_test == 3) {
            CHECK(!strcmp(c->test[1].name, "dent/d.png") && c->test[1].mask_path,
                  "dent with STEM_mask.png");
            CHECK(!strcmp(c->test[2].name, "scratch2/s.jpeg") && c->test[2].mask_path,
                  "scratch2 with STEM.png");
        }
    }
    CHECK(d.errors.n == 0 && d.warnings.n == 0, "clean folder: %d errors %d warnings", d.errors.n,
          d.warnings.n);
    ds_free(&d);

    /* parent: categories are sub-folders; one without references is an error line */
    char parent[1024];
    snprintf(parent, sizeof parent, "%s", root_buf);
    *strrchr(parent, '/') = 0;
    snprintf(root_buf, sizeof root_buf, "%s", parent);
    touch("empty/train/good/readme.txt");
    touch("empty/test/good/a.png");
    touch("part/test/dent/e.png"); /* defect without ground truth: optional here */
    CHECK_OK(ds_open(DS_FOLDER, root_buf, NULL, 0, &d));
    dump(&d);
    CHECK(d.n_cats == 1 && !strcmp(d.cats[0].name, "part"), "categories %d", d.n_cats);
    CHECK(has_line(&d.errors, "empty", "no reference images"), "category without references");
    CHECK(has_line(&d.warnings, "part", "without a ground-truth mask"),
          "defects without masks summarised");
    ds_free(&d);
}

int main(void)
{
    ds_kind k;
    CHECK(ds_kind_parse("MVTec", &k) == AD_OK && k == DS_MVTEC, "mvtec");
    CHECK(ds_kind_parse("visa", &k) == AD_OK && k == DS_VISA, "visa");
    CHECK(ds_kind_parse("folder", &k) == AD_OK && k == DS_FOLDER, "folder");
    CHECK(ds_kind_parse("coco", &k) == AD_E_ARG, "unknown dataset kind refused");
    test_mvtec();
    test_visa_prepared();
    test_visa_raw();
    test_folder();
    return t_done("test_dataset_layouts");
}
