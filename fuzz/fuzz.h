/* Shared by the libFuzzer targets (fuzz_*.c) and the replay driver (replay_main.c). Each target
 * defines LLVMFuzzerTestOneInput; it must accept any bytes, return 0, and leave nothing
 * allocated behind. */
#ifndef AD_FUZZ_H
#define AD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* One thread for OpenMP (set before the first parallel region), so that runs are repeatable
 * and the fuzzer's speed is not shared with idle worker threads. */
static inline void fuzz_single_thread(void)
{
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    setenv("OMP_WAIT_POLICY", "passive", 1);
}

#endif
