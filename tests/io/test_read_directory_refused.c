/* A directory given where a file is expected is named as such, not as a vague read error. */
#include "io/io.h"
#include "testutil.h"

#include <string.h>

int main(void)
{
    const char *dir = t_tmp("a_directory.png");
    adi_io_mkdirs(dir);
    ad_image img = {0, 0, NULL};
    ad_status st = adi_io_read_image(dir, &img);
    printf("message: %s\n", ad_errmsg());
    CHECK(st == AD_E_IO, "status %s", ad_status_name(st));
    CHECK(strstr(ad_errmsg(), "is a directory") != NULL, "message: %s", ad_errmsg());
    CHECK(img.data == NULL && img.width == 0, "output untouched");
    size_t len = 7;
    CHECK(adi_io_read_file(dir, &len) == NULL && len == 7, "read_file refuses, len untouched");
    return t_done("test_read_directory_refused");
}
