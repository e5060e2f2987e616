/* util.c — small helpers the runtime shares. */
#include <stdio.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "runtime.h"

void shuffle_indices(size_t *idx, size_t n, uint64_t seed) {
  uint64_t s = seed;
  for (size_t i = 0; i < n; i++)
    idx[i] = i;
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)(splitmix64(&s) % i);
    size_t t = idx[i - 1];
    idx[i - 1] = idx[j];
    idx[j] = t;
  }
}

uint64_t epoch_seed(uint64_t seed, int epoch) { return seed * 1000003u + (uint64_t)epoch; }

int tensor_has_shape(const TensorInfo *t, int rank, const int64_t *dim) {
  if (t->rank != rank) return 0;
  for (int k = 0; k < rank; k++)
    if (t->dim[k] != dim[k]) return 0;
  return 1;
}

const char *tensor_desc(const TensorInfo *t, char *out) {
  if (t->rank == 0) return t->name;
  char dims[BPC_DIMS_TEXT];
  snprintf(out, TENSOR_DESC_TEXT, "%s%s", t->name, format_dims(dims, t->rank, t->dim));
  return out;
}

void flush_subnormals(void) {
#if defined(__x86_64__) || defined(__i386__)
  _mm_setcsr(_mm_getcsr() | 0x8040); /* flush to zero, denormals are zero */
#endif
}
