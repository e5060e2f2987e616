/* blas_bench.c — bpc's matrix product (runtime/kernels.c, the path this CPU
 * takes) against Debian's OpenBLAS and BLIS, one thread each, float, on the
 * products one training step of the Fashion MLP and the Fashion CNN runs
 * (the convolutions' per image), in one run: the measurement behind
 * bench/RESULTS.md's choice of kernel (make bench-blas).
 *
 * Each product is timed as the best of 7 runs of ~20 ms of calls (the
 * same operands every call: the caches hold what a training step's would
 * only in part, the same for the three). GFLOP/s are 2 m k n / time. */
#define _POSIX_C_SOURCE 200809L
#include <blis.h>
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels.h"

void openblas_set_num_threads(int);

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct Shape {
  const char *what;
  int m, k, n, ta, tb; /* C[m, n] = op(A) op(B); ta: A stored [k, m]; tb: B stored [n, k] */
} Shape;

enum { OURS, OPENBLAS, BLIS };

static void call(int lib, const Shape *s, const float *A, const float *B, float *C) {
  int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
  if (lib == OURS) {
    bpk_mm_f(A, B, C, (size_t)s->m, (size_t)s->k, (size_t)s->n, s->ta, s->tb, 0);
  } else if (lib == OPENBLAS) {
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, s->m, s->n,
                s->k, 1.0f, A, lda, B, ldb, 0.0f, C, s->n);
  } else {
    float one = 1, zero = 0; /* BLIS's strides: row stride, column stride */
    bli_sgemm(s->ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, s->tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, s->m, s->n,
              s->k, &one, (float *)A, lda, 1, (float *)B, ldb, 1, &zero, C, s->n, 1);
  }
}

static double gflops(int lib, const Shape *s, const float *A, const float *B, float *C) {
  double flops = 2.0 * s->m * s->k * s->n, best = 1e30;
  int reps = (int)(2e9 / flops) + 1; /* ~20 ms at 100 GFLOP/s */
  call(lib, s, A, B, C);
  for (int r = 0; r < 7; r++) {
    double t0 = now();
    for (int i = 0; i < reps; i++)
      call(lib, s, A, B, C);
    double t = (now() - t0) / reps;
    if (t < best) best = t;
  }
  return flops / best / 1e9;
}

int main(void) {
  static const Shape shapes[] = {
      {"MLP X @ W1", 64, 784, 128, 0, 0},
      {"MLP X^T @ G (dW1)", 784, 64, 128, 1, 0},
      {"MLP H @ W2", 64, 128, 10, 0, 0},
      {"MLP G @ W2^T", 64, 10, 128, 0, 1},
      {"MLP H^T @ G (dW2)", 128, 64, 10, 1, 0},
      {"MLP X @ W1, batch 8", 8, 784, 128, 0, 0},
      {"MLP X^T @ G, batch 8", 784, 8, 128, 1, 0},
      {"CNN conv1 K @ col", 16, 25, 784, 0, 0},
      {"CNN conv1 col @ dY^T (dK)", 25, 784, 16, 0, 1},
      {"CNN conv2 K @ col", 32, 400, 196, 0, 0},
      {"CNN conv2 K^T @ dY (dx)", 400, 32, 196, 1, 0},
      {"CNN conv2 col @ dY^T (dK)", 400, 196, 32, 0, 1},
      {"CNN dense X @ W1", 64, 1568, 128, 0, 0},
      {"CNN dense G @ W1^T", 64, 128, 1568, 0, 1},
      {"CNN dense X^T @ G (dW1)", 1568, 64, 128, 1, 0},
  };
  openblas_set_num_threads(1);
  bli_thread_set_num_threads(1);
  printf("%-28s %16s %8s %9s %8s   (GFLOP/s, float, one thread; kernel path: %s)\n", "product", "m x k x n", "bpc",
         "OpenBLAS", "BLIS", bpk_path_names[bpk_path()]);
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    const Shape *s = &shapes[i];
    float *A = malloc(sizeof(float) * (size_t)s->m * (size_t)s->k);
    float *B = malloc(sizeof(float) * (size_t)s->k * (size_t)s->n);
    float *C = malloc(sizeof(float) * (size_t)s->m * (size_t)s->n);
    for (int j = 0; j < s->m * s->k; j++)
      A[j] = (float)((j * 7919) % 1000) / 1000.0f - 0.5f;
    for (int j = 0; j < s->k * s->n; j++)
      B[j] = (float)((j * 104729) % 1000) / 1000.0f - 0.5f;
    char dims[32];
    snprintf(dims, sizeof dims, "%dx%dx%d", s->m, s->k, s->n);
    printf("%-28s %16s %8.1f %9.1f %8.1f\n", s->what, dims, gflops(OURS, s, A, B, C), gflops(OPENBLAS, s, A, B, C),
           gflops(BLIS, s, A, B, C));
    free(A);
    free(B);
    free(C);
  }
  return 0;
}
