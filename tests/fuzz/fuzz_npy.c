/* fuzz_npy.c — libFuzzer entry point for fuzz_npy (targets.h). */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_npy(data, size);
  return 0;
}
