/* fuzz_csv.c — libFuzzer entry point for fuzz_csv (targets.h). */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_csv(data, size);
  return 0;
}
