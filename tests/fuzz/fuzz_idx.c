/* fuzz_idx.c — libFuzzer entry point for fuzz_idx (targets.h). */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_idx(data, size);
  return 0;
}
