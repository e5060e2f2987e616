/* util.c — the small utilities every part of bpc shares, each once:
 * string and byte hashing, the random numbers of tests, checks and
 * shuffling, reading a whole file, formatted strings, the clock and how a
 * shape is written. (The arena and buffers are in arena.c, atomic writes
 * in atomic_write.c.) */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "support.h"

uint32_t hash_string(const char *s) { /* FNV-1a, 32 bits */
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

uint64_t hash_bytes(const void *data, size_t n, uint64_t h) { /* FNV-1a, 64 bits, continuing from h */
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001B3u;
  return h;
}

uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15u);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  return z ^ (z >> 31);
}

double random_normal(uint64_t *state) { /* Box-Muller on two numbers in (0, 1] */
  double u[2];
  for (int i = 0; i < 2; i++)
    u[i] = ((double)(long long)(splitmix64(state) >> 11) + 1.0) / 9007199254740992.0;
  return sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

char *read_whole_file(const char *path, size_t limit, size_t *len, const char **why) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    *why = strerror(errno);
    return NULL;
  }
  size_t cap = 1 << 16, n = 0;
  char *data = malloc(cap + 1);
  for (;;) {
    if (!data) {
      fclose(f);
      *why = "out of memory";
      return NULL;
    }
    size_t got = fread(data + n, 1, cap - n, f);
    n += got;
    if (n > limit) {
      free(data);
      fclose(f);
      *why = "too large";
      return NULL;
    }
    if (got == 0) break;
    if (n == cap) {
      cap *= 2;
      char *d = realloc(data, cap + 1);
      if (!d) free(data);
      data = d;
    }
  }
  int err = ferror(f);
  fclose(f);
  if (err) {
    free(data);
    *why = "read error";
    return NULL;
  }
  data[n] = 0;
  *len = n;
  return data;
}

char *str_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = malloc((size_t)n + 1);
  if (!s) out_of_memory();
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

const char *path_base(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *format_dims(char *out, int rank, const int64_t *dim) {
  if (rank == 0) return strcpy(out, "scalar");
  int len = 0;
  for (int i = 0; i < rank; i++)
    len += snprintf(out + len, BPC_DIMS_TEXT - (size_t)len, "%s%lld", i ? "," : "[", (long long)dim[i]);
  snprintf(out + len, BPC_DIMS_TEXT - (size_t)len, "]");
  return out;
}

/* Huge pages are 2 MiB on x86-64 and arm64; below a few of them the TLB
 * holds the array anyway. */
enum { CACHE_LINE = 64, HUGE_PAGE = 2u << 20, LARGE_ENOUGH = 4 * HUGE_PAGE };
void *calloc_aligned(size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  size_t bytes = n * size;
  if (bytes == 0) bytes = 1;
  void *p = NULL;
  if (posix_memalign(&p, bytes < LARGE_ENOUGH ? CACHE_LINE : HUGE_PAGE, bytes)) return NULL;
#ifdef MADV_HUGEPAGE
  if (bytes >= LARGE_ENOUGH) madvise(p, bytes, MADV_HUGEPAGE); /* advice: refused, the pages are small */
#endif
  return memset(p, 0, bytes);
}
