/* targets.h — the fuzzed entry points: each takes arbitrary bytes and must
 * end in a result or an error, never a crash, a hang or a leak. Used by the
 * libFuzzer wrappers (fuzz_*.c) and by test_fuzz_regressions.c, which
 * replays the seeds and every past finding. */
#ifndef BPC_FUZZ_TARGETS_H
#define BPC_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

/* .bp source in: compile, print the IR and the graph, emit C per example
 * and batched (the JIT's form), without running anything. */
void fuzz_compile(const uint8_t *data, size_t size);
/* A CSV file for a model with inputs x[3] and t. */
void fuzz_csv(const uint8_t *data, size_t size);
/* An IDX file bound to an image input img[4] and to a label input lab[3]. */
void fuzz_idx(const uint8_t *data, size_t size);
/* A parameter file for a model with W[2, 3] and b[3]: read on its own
 * (bpc params show and export), then loaded. */
void fuzz_params(const uint8_t *data, size_t size);
/* A .npy file bound to an image input img[4] and to a label input lab[3]. */
void fuzz_npy(const uint8_t *data, size_t size);

#endif
