/* kernels.c — see kernels.h. Built with -O3 and reassociation allowed, so
 * the compiler vectorises the reductions; x86-64 gets an AVX2+FMA clone
 * chosen at load time. The loop orders keep the innermost loop streaming
 * through contiguous memory. */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* The matrix product's core: C += A B with B row-major [k, n]. A 4-row by
 * two-vector tile of C stays in registers over the whole of k, so each
 * element of B loaded feeds 4 multiply-adds and each element of A feeds
 * two vectors' worth. Edges fall back to plain loops. */
/* Unaligned vector load and add-store, as statements (functions taking
 * or returning vectors would change the ABI between the clones). */
#define VLOAD(v, p) memcpy(&(v), (p), sizeof(v))
#define VADD_STORE(p, v)                                                                                     \
  do {                                                                                                       \
    __typeof__(v) old_;                                                                                      \
    memcpy(&old_, (p), sizeof old_);                                                                         \
    old_ += (v);                                                                                             \
    memcpy((p), &old_, sizeof old_);                                                                         \
  } while (0)

#define BPK_MM_CORE(T, S)                                                                                    \
  typedef T v##S __attribute__((vector_size(32)));                                                           \
  enum { VL_##S = 32 / sizeof(T) };                                                                          \
  static _Thread_local T *pack_buf_##S;                                                                      \
  static _Thread_local size_t pack_cap_##S;                                                                  \
  static const T *pack_##S(const T *B, size_t k, size_t n) {                                                 \
    if (pack_cap_##S < k * n) {                                                                              \
      free(pack_buf_##S);                                                                                    \
      pack_cap_##S = k * n;                                                                                  \
      pack_buf_##S = malloc(sizeof(T) * pack_cap_##S);                                                       \
      if (!pack_buf_##S) abort();                                                                            \
    }                                                                                                        \
    for (size_t j = 0; j < n; j++)                                                                           \
      for (size_t p = 0; p < k; p++)                                                                         \
        pack_buf_##S[p * n + j] = B[j * k + p];                                                              \
    return pack_buf_##S;                                                                                     \
  }                                                                                                          \
  /* C[m, W] += A[m, k] B[k, W]: B is a panel exactly one tile wide, rows ldb apart */                       \
  BPK_CLONES static void mm_panel_##S(const T *restrict A, size_t sai, size_t sap, const T *restrict B,      \
                                      size_t ldb, T *restrict C, size_t ldc, size_t m, size_t k) {           \
    size_t i = 0;                                                                                            \
    for (; i + 4 <= m; i += 4) {                                                                             \
      v##S c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};           \
      const T *a = A + i * sai;                                                                              \
      for (size_t p = 0; p < k; p++) {                                                                       \
        v##S b0, b1;                                                                                         \
        VLOAD(b0, B + p * ldb);                                                                              \
        VLOAD(b1, B + p * ldb + VL_##S);                                                                     \
        const T x0 = a[p * sap], x1 = a[sai + p * sap], x2 = a[2 * sai + p * sap],                           \
                x3 = a[3 * sai + p * sap];                                                                   \
        c00 += x0 * b0;                                                                                      \
        c01 += x0 * b1;                                                                                      \
        c10 += x1 * b0;                                                                                      \
        c11 += x1 * b1;                                                                                      \
        c20 += x2 * b0;                                                                                      \
        c21 += x2 * b1;                                                                                      \
        c30 += x3 * b0;                                                                                      \
        c31 += x3 * b1;                                                                                      \
      }                                                                                                      \
      T *c = C + i * ldc;                                                                                    \
      VADD_STORE(c, c00);                                                                                    \
      VADD_STORE(c + VL_##S, c01);                                                                           \
      VADD_STORE(c + ldc, c10);                                                                              \
      VADD_STORE(c + ldc + VL_##S, c11);                                                                     \
      VADD_STORE(c + 2 * ldc, c20);                                                                          \
      VADD_STORE(c + 2 * ldc + VL_##S, c21);                                                                 \
      VADD_STORE(c + 3 * ldc, c30);                                                                          \
      VADD_STORE(c + 3 * ldc + VL_##S, c31);                                                                 \
    }                                                                                                        \
    for (; i < m; i++) { /* leftover rows */                                                                 \
      v##S c0 = {0}, c1 = {0};                                                                               \
      for (size_t p = 0; p < k; p++) {                                                                       \
        const T x = A[i * sai + p * sap];                                                                    \
        v##S b0, b1;                                                                                         \
        VLOAD(b0, B + p * ldb);                                                                              \
        VLOAD(b1, B + p * ldb + VL_##S);                                                                     \
        c0 += x * b0;                                                                                        \
        c1 += x * b1;                                                                                        \
      }                                                                                                      \
      VADD_STORE(C + i * ldc, c0);                                                                           \
      VADD_STORE(C + i * ldc + VL_##S, c1);                                                                  \
    }                                                                                                        \
  }                                                                                                          \
  /* C += A B with B row-major [k, n]. k is cut into blocks so that the part                                 \
   * of a B panel in use stays in the L1 cache while the rows of A pass. A                                   \
   * last panel narrower than a tile is copied, zero-padded, with its C                                      \
   * columns, so every tile is full width. */                                                                \
  BPK_CLONES static void mm_nn_##S(const T *restrict A, size_t sai, size_t sap, const T *restrict B,         \
                                   T *restrict C, size_t m, size_t k, size_t n) {                            \
    enum { W = 2 * VL_##S, KC = 256 };                                                                       \
    size_t full = n / W * W;                                                                                 \
    for (size_t p0 = 0; p0 < k; p0 += KC) {                                                                  \
      size_t kc = k - p0 < KC ? k - p0 : KC;                                                                 \
      for (size_t j = 0; j < full; j += W)                                                                   \
        mm_panel_##S(A + p0 * sap, sai, sap, B + p0 * n + j, n, C + j, n, m, kc);                            \
    }                                                                                                        \
    if (full == n) return;                                                                                   \
    size_t rest = n - full;                                                                                  \
    T *bp = calloc(k * W + m * W, sizeof(T)), *cp = bp + k * W;                                              \
    if (!bp) abort();                                                                                        \
    for (size_t p = 0; p < k; p++)                                                                           \
      memcpy(bp + p * W, B + p * n + full, sizeof(T) * rest);                                                \
    mm_panel_##S(A, sai, sap, bp, W, cp, W, m, k);                                                           \
    for (size_t i = 0; i < m; i++)                                                                           \
      for (size_t jj = 0; jj < rest; jj++)                                                                   \
        C[i * n + full + jj] += cp[i * W + jj];                                                              \
    free(bp);                                                                                                \
  }

BPK_MM_CORE(double, d)
BPK_MM_CORE(float, f)

void bpk_thread_done(void) {
  bpk_conv_thread_done();
  free(pack_buf_d);
  free(pack_buf_f);
  pack_buf_d = NULL;
  pack_buf_f = NULL;
  pack_cap_d = pack_cap_f = 0;
}

#define BPK_DEFINE(T, S)                                                                                     \
  BPK_CLONES void bpk_mv_##S(const T *restrict A, const T *restrict x, T *restrict y, size_t m, size_t k,    \
                             int acc) {                                                                      \
    for (size_t i = 0; i < m; i++) {                                                                         \
      const T *restrict row = A + i * k;                                                                     \
      T s = 0;                                                                                               \
      for (size_t p = 0; p < k; p++)                                                                         \
        s += row[p] * x[p];                                                                                  \
      y[i] = acc ? y[i] + s : s;                                                                             \
    }                                                                                                        \
  }                                                                                                          \
  BPK_CLONES void bpk_mtv_##S(const T *restrict A, const T *restrict x, T *restrict y, size_t k, size_t m,   \
                              int acc) {                                                                     \
    if (!acc) memset(y, 0, sizeof(T) * m);                                                                   \
    for (size_t p = 0; p < k; p++) {                                                                         \
      const T s = x[p];                                                                                      \
      const T *restrict row = A + p * m;                                                                     \
      if (s == 0) /* ReLU zeros are common: skip their rows */                                               \
        continue;                                                                                            \
      for (size_t i = 0; i < m; i++)                                                                         \
        y[i] += row[i] * s;                                                                                  \
    }                                                                                                        \
  }                                                                                                          \
  BPK_CLONES void bpk_outer_##S(const T *restrict a, const T *restrict b, T *restrict D, size_t m, size_t n, \
                                int acc) {                                                                   \
    for (size_t i = 0; i < m; i++) {                                                                         \
      const T s = a[i];                                                                                      \
      T *restrict row = D + i * n;                                                                           \
      if (acc) {                                                                                             \
        if (s == 0) continue;                                                                                \
        for (size_t j = 0; j < n; j++)                                                                       \
          row[j] += s * b[j];                                                                                \
      } else {                                                                                               \
        for (size_t j = 0; j < n; j++)                                                                       \
          row[j] = s * b[j];                                                                                 \
      }                                                                                                      \
    }                                                                                                        \
  }                                                                                                          \
  BPK_CLONES void bpk_mm_##S(const T *restrict A, const T *restrict B, T *restrict C, size_t m, size_t k,    \
                             size_t n, int ta, int tb, int acc) {                                            \
    /* A(i,p) = A[i * sai + p * sap], whichever way A is stored */                                           \
    const size_t sai = ta ? 1 : k, sap = ta ? m : 1;                                                         \
    const T *Bp = B;                                                                                         \
    if (tb) { /* B is stored [n, k]: lay it out as [k, n] for row loads */                                   \
      Bp = pack_##S(B, k, n);                                                                                \
    }                                                                                                        \
    if (!acc) memset(C, 0, sizeof(T) * m * n);                                                               \
    mm_nn_##S(A, sai, sap, Bp, C, m, k, n);                                                                  \
  }

BPK_DEFINE(double, d)
BPK_DEFINE(float, f)

const KernelSymbol bpk_symbols[] = {
    {"bpk_mv_d", (void *)bpk_mv_d},
    {"bpk_mtv_d", (void *)bpk_mtv_d},
    {"bpk_outer_d", (void *)bpk_outer_d},
    {"bpk_mm_d", (void *)bpk_mm_d},
    {"bpk_mv_f", (void *)bpk_mv_f},
    {"bpk_mtv_f", (void *)bpk_mtv_f},
    {"bpk_outer_f", (void *)bpk_outer_f},
    {"bpk_mm_f", (void *)bpk_mm_f},
#define BPK_WINDOW_SYMBOLS(S)                                                                                \
  {"bpk_conv2d_" #S, (void *)bpk_conv2d_##S}, {"bpk_conv2d_dx_" #S, (void *)bpk_conv2d_dx_##S},              \
      {"bpk_conv2d_dk_" #S, (void *)bpk_conv2d_dk_##S}, {"bpk_maxpool2d_" #S, (void *)bpk_maxpool2d_##S},    \
      {"bpk_maxpool2d_dx_" #S, (void *)bpk_maxpool2d_dx_##S}, {"bpk_avgpool2d_" #S, (void *)bpk_avgpool2d_##S}, \
      {"bpk_avgpool2d_dx_" #S, (void *)bpk_avgpool2d_dx_##S},
    BPK_WINDOW_SYMBOLS(d) BPK_WINDOW_SYMBOLS(f)
#undef BPK_WINDOW_SYMBOLS
    {NULL, NULL},
};
