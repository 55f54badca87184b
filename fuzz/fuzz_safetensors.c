/* libFuzzer target: Hugging Face .safetensors checkpoints (see fuzz_weights.inc). */
#include "fuzz_weights.inc"
