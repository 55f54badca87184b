/* libFuzzer target: PNG images (see fuzz_image.inc). */
#include "fuzz_image.inc"
