/* A context running other weights of the same width must not be used with a bank: its features
 * would be compared with the bank's silently. tiny and tiny_reg are both 128 wide. */
#include "anomalydino.h"
#include "io/io.h"
#include "testutil.h"

#include <string.h>

int main(void)
{
    ad_model *tiny = ad_model_load(t_data("dinov2/tiny.safetensors"));
    ad_model *reg = ad_model_load(t_data("dinov2/tiny_reg.safetensors"));
    CHECK(tiny && reg, "models load: %s", ad_errmsg());
    if (!tiny || !reg) return t_done("test_predict_refuses_other_model");
    ad_context_params cp = ad_context_default_params();
    cp.n_threads = 1;
    ad_context *ctx_tiny = ad_context_new(tiny, cp);
    ad_context *ctx_reg = ad_context_new(reg, cp);
    CHECK(ad_context_model(ctx_tiny) == tiny, "ad_context_model returns the context's model");

    ad_image img = {0};
    CHECK_OK(adi_io_read_image(t_data("pipeline/seed0/ref_0.png"), &img));
    ad_bank_params bp = ad_bank_default_params();
    bp.resolution = 224;
    bp.rotate = 0;
    ad_bank *b = ad_bank_new(tiny, &bp);
    CHECK_OK(ad_bank_add_image(b, ctx_tiny, &img, 0));

    ad_status st = ad_bank_add_image(b, ctx_reg, &img, 1);
    CHECK(st == AD_E_MISMATCH, "add_image with the other model: %s (%s)", ad_status_name(st),
          ad_errmsg());
    CHECK(ad_bank_images(b) == 1, "the refused image was not added (%d images)", ad_bank_images(b));

    ad_result r;
    memset(&r, 0x5a, sizeof r);
    st = ad_predict(b, ctx_reg, &img, 0, &r);
    CHECK(st == AD_E_MISMATCH, "predict with the other model: %s (%s)", ad_status_name(st),
          ad_errmsg());
    CHECK(strstr(ad_errmsg(), "ad_predict") != NULL, "the message names the call: %s", ad_errmsg());
    unsigned char *bytes = (unsigned char *)&r;
    int untouched = 1;
    for (size_t i = 0; i < sizeof r; i++) untouched &= bytes[i] == 0x5a;
    CHECK(untouched, "the result is untouched on failure");

    ad_result ok;
    CHECK_OK(ad_predict(b, ctx_tiny, &img, 0, &ok));
    printf("same image against its own bank: score %.3g (expect ~0)\n", ok.score);
    CHECK(ok.score < 1e-5, "an image scored against itself: %g", ok.score);
    ad_result_free(&ok);

    ad_bank_free(b);
    ad_image_free(&img);
    ad_context_free(ctx_tiny);
    ad_context_free(ctx_reg);
    ad_model_free(tiny);
    ad_model_free(reg);
    return t_done("test_predict_refuses_other_model");
}
