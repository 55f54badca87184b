/* libFuzzer target: JPEG images (see fuzz_image.inc). */
#include "fuzz_image.inc"
