/* kernel_bench.c — GFLOP/s of the runtime's matrix kernels on the shapes the
 * 784-128-10 MLP uses (make bench-kernels). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
}

static void mm(const char *what, size_t m, size_t k, size_t n, int ta, int tb) {
  float *A = malloc(sizeof(float) * m * k), *B = malloc(sizeof(float) * k * n),
        *C = malloc(sizeof(float) * m * n);
  fill(A, m * k);
  fill(B, k * n);
  int reps = (int)(2e9 / (2.0 * (double)(m * k * n))) + 1;
  double t0 = now();
  for (int r = 0; r < reps; r++)
    bpk_mm_f(A, B, C, m, k, n, ta, tb, 0);
  double t = (now() - t0) / reps;
  printf("%-34s %4zux%4zux%4zu  %8.1f us  %6.2f GFLOP/s\n", what, m, k, n, 1e6 * t,
         2.0 * (double)(m * k * n) / t / 1e9);
  free(A);
  free(B);
  free(C);
}

int main(void) {
  size_t batches[] = {64, 8};
  for (int i = 0; i < 2; i++) {
    size_t b = batches[i];
    mm("X @ W1", b, 784, 128, 0, 0);
    mm("X^T @ G (dW1)", 784, b, 128, 1, 0);
    mm("H @ W2", b, 128, 10, 0, 0);
    mm("G @ W2^T", b, 10, 128, 0, 1);
    mm("H^T @ G (dW2)", 128, b, 10, 1, 0);
  }
  return 0;
}
