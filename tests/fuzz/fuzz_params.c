/* fuzz_params.c — libFuzzer entry point for fuzz_params (targets.h). */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_params(data, size);
  return 0;
}
