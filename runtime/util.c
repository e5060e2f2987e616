/* util.c — small helpers the runtime shares. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
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

char *str_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = malloc((size_t)n + 1);
  if (!s) {
    fputs("bpc: out of memory\n", stderr);
    exit(3);
  }
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void flush_subnormals(void) {
#if defined(__x86_64__) || defined(__i386__)
  _mm_setcsr(_mm_getcsr() | 0x8040); /* flush to zero, denormals are zero */
#endif
}
