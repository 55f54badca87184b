/* The public header alone compiles as C11 and its basic calls behave. */
#include "anomalydino.h"
#include "core/core.h"
#include "testutil.h"

#include <string.h>

int main(void)
{
    CHECK(strcmp(ad_version(), AD_VERSION_STRING) == 0, "version %s", ad_version());
    ad_status s = adi_fail(AD_E_IO, "x.bin: cannot open\nsecond line");
    CHECK(s == AD_E_IO, "status %d", (int)s);
    CHECK(strchr(ad_errmsg(), '\n') == NULL, "message not one line: %s", ad_errmsg());
    adi_error_prefix("ctx");
    CHECK(strncmp(ad_errmsg(), "ctx: x.bin", 10) == 0, "prefix: %s", ad_errmsg());
    size_t out;
    CHECK(adi_mul_overflow(SIZE_MAX / 2, 3, &out) == 1, "overflow not detected");
    void *p = adi_alloc(SIZE_MAX / 2, 4);
    CHECK(p == NULL, "absurd allocation succeeded");
    return t_done("test_header_c");
}
