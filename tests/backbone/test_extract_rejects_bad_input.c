/* Bad arguments give a status and a one-line reason, never a crash, and leave the outputs
 * untouched: NULL pointers, sizes that are not multiples of 14, too small inputs, layer indices
 * out of range, missing weights files. */
#include "anomalydino.h"
#include "testutil.h"

#include <string.h>

static int untouched(const ad_features *f)
{
    const unsigned char *p = (const unsigned char *)f;
    for (size_t i = 0; i < sizeof *f; i++)
        if (p[i] != 0xA5) return 0;
    return 1;
}

static void expect_fail(ad_status got, ad_status want, const ad_features *f, const char *what)
{
    const char *msg = ad_errmsg();
    printf("%-40s -> %s: %s\n", what, ad_status_name(got), msg);
    CHECK(got == want, "%s: status %s, expected %s", what, ad_status_name(got),
          ad_status_name(want));
    CHECK(msg && *msg && !strchr(msg, '\n'), "%s: message must be one non-empty line", what);
    if (f) CHECK(untouched(f), "%s: output was modified on failure", what);
}

int main(void)
{
    ad_model *bad = ad_model_load(t_data("dinov2/does_not_exist.pth"));
    CHECK(bad == NULL, "loading a missing file succeeded");
    printf("%-40s -> %s\n", "ad_model_load(missing file)", ad_errmsg());
    CHECK(strstr(ad_errmsg(), "does_not_exist.pth") != NULL, "message must name the file: %s",
          ad_errmsg());
    CHECK(ad_model_load(NULL) == NULL, "ad_model_load(NULL) succeeded");
    CHECK(ad_context_new(NULL, ad_context_default_params()) == NULL, "context without a model");
    ad_model_info zero = ad_model_get_info(NULL);
    CHECK(zero.dim == 0 && zero.name == NULL, "info of NULL model not empty");
    ad_model_free(NULL);
    ad_context_free(NULL);
    ad_features_free(NULL);

    ad_model *m = ad_model_load(t_data("dinov2/tiny.safetensors"));
    CHECK(m != NULL, "tiny.safetensors: %s", ad_errmsg());
    if (!m) return t_done("extract_rejects_bad_input");
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = 2;
    ad_context *ctx = ad_context_new(m, cp);
    CHECK(ctx && ad_context_threads(ctx) == 2, "context threads %d", ad_context_threads(ctx));

    float *buf = calloc(3 * 56 * 56, sizeof(float));
    ad_features f;
    memset(&f, 0xA5, sizeof f);

    ad_input in = {56, 50, buf}; /* 50 is not a multiple of 14 */
    expect_fail(ad_extract(ctx, &in, &f), AD_E_ARG, &f, "height 50");
    in = (ad_input){13, 14, buf};
    expect_fail(ad_extract(ctx, &in, &f), AD_E_ARG, &f, "width 13");
    in = (ad_input){0, 0, buf};
    expect_fail(ad_extract(ctx, &in, &f), AD_E_ARG, &f, "0 x 0");
    in = (ad_input){-14, 14, buf};
    expect_fail(ad_extract(ctx, &in, &f), AD_E_ARG, &f, "negative width");
    in = (ad_input){56, 56, NULL};
    expect_fail(ad_extract(ctx, &in, &f), AD_E_ARG, &f, "NULL data");
    in = (ad_input){56, 56, buf};
    expect_fail(ad_extract(NULL, &in, &f), AD_E_ARG, &f, "NULL context");
    expect_fail(ad_extract(ctx, NULL, &f), AD_E_ARG, &f, "NULL input");
    expect_fail(ad_extract(ctx, &in, NULL), AD_E_ARG, NULL, "NULL output");

    ad_features outs[2];
    memset(outs, 0xA5, sizeof outs);
    int l_hi[2] = {0, 2}, l_lo[1] = {-3}, l_ok[1] = {-1};
    expect_fail(ad_extract_layers(ctx, &in, l_hi, 2, 1, outs), AD_E_ARG, &outs[0],
                "layer 2 of 2 blocks");
    CHECK(untouched(&outs[1]), "second output modified");
    expect_fail(ad_extract_layers(ctx, &in, l_lo, 1, 1, outs), AD_E_ARG, &outs[0],
                "layer -3 of 2 blocks");
    expect_fail(ad_extract_layers(ctx, &in, l_ok, 0, 1, outs), AD_E_ARG, &outs[0], "no layer");
    expect_fail(ad_extract_layers(ctx, &in, NULL, 1, 1, outs), AD_E_ARG, &outs[0],
                "NULL layer list");

    ad_image img = {56, 56, NULL};
    expect_fail(ad_extract_image(ctx, &img, 0, &f), AD_E_ARG, &f, "image without pixels");

    /* the smallest input works: one patch */
    in = (ad_input){14, 14, buf};
    ad_features one = {0};
    CHECK_OK(ad_extract(ctx, &in, &one));
    CHECK(one.grid_h == 1 && one.grid_w == 1 && one.dim == 128, "14x14 -> grid %dx%d dim %d",
          one.grid_h, one.grid_w, one.dim);
    ad_features_free(&one);
    CHECK(one.patch == NULL && one.cls == NULL, "ad_features_free must clear the struct");

    free(buf);
    ad_context_free(ctx);
    ad_model_free(m);
    return t_done("extract_rejects_bad_input");
}
