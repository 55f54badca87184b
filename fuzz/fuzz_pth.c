/* libFuzzer target: PyTorch .pth checkpoints, zip + pickle (see fuzz_weights.inc). */
#include "fuzz_weights.inc"
