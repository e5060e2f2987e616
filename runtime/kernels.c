/* kernels.c — see kernels.h. Built with -O3 and reassociation allowed, so
 * the compiler vectorises the reductions; x86-64 gets an AVX2+FMA clone
 * chosen at load time. The loop orders keep the innermost loop streaming
 * through contiguous memory. */
#include <string.h>

#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BPK_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define BPK_CLONES
#endif

#define BPK_DEFINE(T, S)                                                                              \
  BPK_CLONES void bpk_mv_##S(const T *restrict A, const T *restrict x, T *restrict y, size_t m,       \
                              size_t k, int acc) {                                                    \
    for (size_t i = 0; i < m; i++) {                                                                  \
      const T *restrict row = A + i * k;                                                              \
      T s = 0;                                                                                        \
      for (size_t p = 0; p < k; p++)                                                                  \
        s += row[p] * x[p];                                                                           \
      y[i] = acc ? y[i] + s : s;                                                                      \
    }                                                                                                 \
  }                                                                                                   \
  BPK_CLONES void bpk_mtv_##S(const T *restrict A, const T *restrict x, T *restrict y, size_t k,      \
                               size_t m, int acc) {                                                   \
    if (!acc)                                                                                         \
      memset(y, 0, sizeof(T) * m);                                                                    \
    for (size_t p = 0; p < k; p++) {                                                                  \
      const T s = x[p];                                                                               \
      const T *restrict row = A + p * m;                                                              \
      if (s == 0) /* ReLU zeros are common: skip their rows */                                        \
        continue;                                                                                     \
      for (size_t i = 0; i < m; i++)                                                                  \
        y[i] += row[i] * s;                                                                           \
    }                                                                                                 \
  }                                                                                                   \
  BPK_CLONES void bpk_outer_##S(const T *restrict a, const T *restrict b, T *restrict D, size_t m,    \
                                 size_t n, int acc) {                                                 \
    for (size_t i = 0; i < m; i++) {                                                                  \
      const T s = a[i];                                                                               \
      T *restrict row = D + i * n;                                                                    \
      if (acc) {                                                                                      \
        if (s == 0)                                                                                   \
          continue;                                                                                   \
        for (size_t j = 0; j < n; j++)                                                                \
          row[j] += s * b[j];                                                                         \
      } else {                                                                                        \
        for (size_t j = 0; j < n; j++)                                                                \
          row[j] = s * b[j];                                                                          \
      }                                                                                               \
    }                                                                                                 \
  }                                                                                                   \
  BPK_CLONES void bpk_mm_##S(const T *restrict A, const T *restrict B, T *restrict C, size_t m,       \
                              size_t k, size_t n, int ta, int tb, int acc) {                          \
    if (!acc)                                                                                         \
      memset(C, 0, sizeof(T) * m * n);                                                                \
    if (!tb) { /* C[i,:] += A(i,p) B[p,:] */                                                          \
      for (size_t i = 0; i < m; i++) {                                                                \
        T *restrict crow = C + i * n;                                                                 \
        for (size_t p = 0; p < k; p++) {                                                              \
          const T s = ta ? A[p * m + i] : A[i * k + p];                                               \
          if (s == 0)                                                                                 \
            continue;                                                                                 \
          const T *restrict brow = B + p * n;                                                         \
          for (size_t j = 0; j < n; j++)                                                              \
            crow[j] += s * brow[j];                                                                   \
        }                                                                                             \
      }                                                                                               \
    } else if (!ta) { /* C[i,j] += A[i,:] . B[j,:] */                                                 \
      for (size_t i = 0; i < m; i++)                                                                  \
        for (size_t j = 0; j < n; j++) {                                                              \
          const T *restrict arow = A + i * k, *restrict brow = B + j * k;                            \
          T s = 0;                                                                                    \
          for (size_t p = 0; p < k; p++)                                                              \
            s += arow[p] * brow[p];                                                                   \
          C[i * n + j] += s;                                                                          \
        }                                                                                             \
    } else { /* both transposed: C[i,j] += sum_p A[p,i] B[j,p] */                                     \
      for (size_t i = 0; i < m; i++)                                                                  \
        for (size_t j = 0; j < n; j++) {                                                              \
          T s = 0;                                                                                    \
          for (size_t p = 0; p < k; p++)                                                              \
            s += A[p * m + i] * B[j * k + p];                                                         \
          C[i * n + j] += s;                                                                          \
        }                                                                                             \
    }                                                                                                 \
  }

BPK_DEFINE(double, d)
BPK_DEFINE(float, f)

const KernelSymbol bpk_symbols[] = {
    {"bpk_mv_d", (void *)bpk_mv_d},       {"bpk_mtv_d", (void *)bpk_mtv_d},
    {"bpk_outer_d", (void *)bpk_outer_d}, {"bpk_mm_d", (void *)bpk_mm_d},
    {"bpk_mv_f", (void *)bpk_mv_f},       {"bpk_mtv_f", (void *)bpk_mtv_f},
    {"bpk_outer_f", (void *)bpk_outer_f}, {"bpk_mm_f", (void *)bpk_mm_f},
    {NULL, NULL},
};
