/* util.c — small helpers the runtime shares. */
#include <stdio.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "runtime.h"

double real_get(const void *p, size_t elem, size_t i) {
  return elem == sizeof(float) ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

void real_set(void *p, size_t elem, size_t i, double v) {
  if (elem == sizeof(float))
    ((float *)p)[i] = (float)v;
  else
    ((double *)p)[i] = v;
}

void flush_subnormals(void) {
#if defined(__x86_64__) || defined(__i386__)
  _mm_setcsr(_mm_getcsr() | 0x8040); /* flush to zero, denormals are zero */
#endif
}
