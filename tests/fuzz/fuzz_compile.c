/* fuzz_compile.c — libFuzzer entry point for fuzz_compile (targets.h). */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_compile(data, size);
  return 0;
}
