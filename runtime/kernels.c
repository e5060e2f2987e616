/* kernels.c — see kernels.h. Built with -O3 and reassociation allowed, so
 * the compiler vectorises the reductions; x86-64 gets an AVX2+FMA clone
 * chosen at load time. The loop orders keep the innermost loop streaming
 * through contiguous memory. */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* The matrix product's core: C += A B with B row-major [k, n], cut into
 * tiles of up to 6 rows by one or two vectors of C. A tile's accumulators
 * stay in registers over the whole of k, so each vector of B loaded feeds
 * up to 6 multiply-adds and each element of A a whole tile row. Two FMA
 * units of 4 cycles' latency need 8 independent sums in flight: a tile
 * with fewer rows keeps U copies of its accumulators, taking turns over k.
 * AVX2 has 16 vector registers: at most 12 accumulators, the rest for B
 * and the broadcast element of A. */
/* Unaligned vector load, store and add-store, as statements (functions
 * taking or returning vectors would change the ABI between the clones). */
#define VLOAD(v, p) memcpy(&(v), (p), sizeof(v))
#define VSTORE(p, v) memcpy((p), &(v), sizeof(v))
#define VADD_STORE(p, v)                                                                                     \
  do {                                                                                                       \
    __typeof__(v) old_;                                                                                      \
    memcpy(&old_, (p), sizeof old_);                                                                         \
    old_ += (v);                                                                                             \
    memcpy((p), &old_, sizeof old_);                                                                         \
  } while (0)
/* Small loops of constant count, unrolled so their vectors can live in registers */
#define UNROLL _Pragma("GCC unroll 16")
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* One tile, C[R, NV vectors] (+)= A[R, k] B[k, NV vectors]; A(i, p) is
 * A[i * sai + p * sap], whichever way A is stored. add = 0 stores. Inlined
 * into its caller, so it is compiled for the caller's clone's target. */
#define BPK_TILE(T, S, R, NV, U)                                                                             \
  ALWAYS_INLINE void tile_##R##x##NV##_##S(const T *restrict A, size_t sai, size_t sap, const T *restrict B, \
                                           size_t ldb, T *restrict C, size_t ldc, size_t k, int add) {       \
    v##S c[U][R][NV];                                                                                        \
    UNROLL for (int u = 0; u < U; u++) UNROLL for (int r = 0; r < R; r++)                                    \
        UNROLL for (int v = 0; v < NV; v++) c[u][r][v] = (v##S){0};                                          \
    size_t p = 0;                                                                                            \
    for (; p + U <= k; p += U)                                                                               \
      UNROLL for (int u = 0; u < U; u++) {                                                                   \
        v##S b[NV];                                                                                          \
        UNROLL for (int v = 0; v < NV; v++) VLOAD(b[v], B + (p + u) * ldb + v * VL_##S);                     \
        UNROLL for (int r = 0; r < R; r++) {                                                                 \
          const T x = A[r * sai + (p + u) * sap];                                                            \
          UNROLL for (int v = 0; v < NV; v++) c[u][r][v] += x * b[v];                                        \
        }                                                                                                    \
      }                                                                                                      \
    for (; p < k; p++) { /* k not a multiple of U */                                                         \
      v##S b[NV];                                                                                            \
      UNROLL for (int v = 0; v < NV; v++) VLOAD(b[v], B + p * ldb + v * VL_##S);                             \
      UNROLL for (int r = 0; r < R; r++) UNROLL for (int v = 0; v < NV; v++) c[0][r][v] +=                   \
          A[r * sai + p * sap] * b[v];                                                                       \
    }                                                                                                        \
    UNROLL for (int r = 0; r < R; r++) UNROLL for (int v = 0; v < NV; v++) {                                 \
      UNROLL for (int u = 1; u < U; u++) c[0][r][v] += c[u][r][v];                                           \
      if (add)                                                                                               \
        VADD_STORE(C + r * ldc + v * VL_##S, c[0][r][v]);                                                    \
      else                                                                                                   \
        VSTORE(C + r * ldc + v * VL_##S, c[0][r][v]);                                                        \
    }                                                                                                        \
  }

/* The tiles of one element type and width, 1 to 6 rows, each with enough
 * copies U of its sums for 8 or more in flight (at most 12). */
#define BPK_TILES(T, S, NV, U1, U2, U3, U4, U5, U6)                                                          \
  BPK_TILE(T, S, 1, NV, U1)                                                                                  \
  BPK_TILE(T, S, 2, NV, U2)                                                                                  \
  BPK_TILE(T, S, 3, NV, U3)                                                                                  \
  BPK_TILE(T, S, 4, NV, U4)                                                                                  \
  BPK_TILE(T, S, 5, NV, U5)                                                                                  \
  BPK_TILE(T, S, 6, NV, U6)                                                                                  \
  /* C[m, NV vectors] (+)= A[m, k] B[k, NV vectors], B's rows ldb apart: the rows are                        \
     shared evenly among the fewest tiles of at most 6 (25 rows: 5 tiles of 5, not 4 of 6 and a skinny one)  \
   */                                                                                                        \
  ALWAYS_INLINE void panel##NV##_##S(const T *restrict A, size_t sai, size_t sap, const T *restrict B,       \
                                     size_t ldb, T *restrict C, size_t ldc, size_t m, size_t k, int add) {   \
    size_t tiles = (m + 5) / 6;                                                                              \
    for (size_t i = 0, t = 0; t < tiles; t++) {                                                              \
      size_t left = tiles - t, rows = (m - i + left - 1) / left;                                             \
      const T *a = A + i * sai;                                                                              \
      T *c = C + i * ldc;                                                                                    \
      switch (rows) {                                                                                        \
      case 1: tile_1x##NV##_##S(a, sai, sap, B, ldb, c, ldc, k, add); break;                                 \
      case 2: tile_2x##NV##_##S(a, sai, sap, B, ldb, c, ldc, k, add); break;                                 \
      case 3: tile_3x##NV##_##S(a, sai, sap, B, ldb, c, ldc, k, add); break;                                 \
      case 4: tile_4x##NV##_##S(a, sai, sap, B, ldb, c, ldc, k, add); break;                                 \
      case 5: tile_5x##NV##_##S(a, sai, sap, B, ldb, c, ldc, k, add); break;                                 \
      default: tile_6x##NV##_##S(a, sai, sap, B, ldb, c, ldc, k, add); break;                                \
      }                                                                                                      \
      i += rows;                                                                                             \
    }                                                                                                        \
  }

/* Transposes a square block of vectors in registers: r[i] becomes column i.
 * The 8 x 8 float one is the usual three rounds (interleave pairs, then
 * pairs of pairs, then the 128-bit halves); 4 x 4 doubles take two. A gcc
 * before 12 lacks __builtin_shufflevector: it goes lane by lane. */
#if defined(__clang__) || __GNUC__ >= 12
#define SHUF __builtin_shufflevector
#define TRANSPOSE_8f(r)                                                                                      \
  do {                                                                                                       \
    __typeof__(r[0]) t_[8], u_[8];                                                                           \
    UNROLL for (int i_ = 0; i_ < 8; i_ += 2) {                                                               \
      t_[i_] = SHUF(r[i_], r[i_ + 1], 0, 8, 1, 9, 4, 12, 5, 13);                                             \
      t_[i_ + 1] = SHUF(r[i_], r[i_ + 1], 2, 10, 3, 11, 6, 14, 7, 15);                                       \
    }                                                                                                        \
    UNROLL for (int i_ = 0; i_ < 8; i_ += 4) {                                                               \
      u_[i_] = SHUF(t_[i_], t_[i_ + 2], 0, 1, 8, 9, 4, 5, 12, 13);                                           \
      u_[i_ + 1] = SHUF(t_[i_], t_[i_ + 2], 2, 3, 10, 11, 6, 7, 14, 15);                                     \
      u_[i_ + 2] = SHUF(t_[i_ + 1], t_[i_ + 3], 0, 1, 8, 9, 4, 5, 12, 13);                                   \
      u_[i_ + 3] = SHUF(t_[i_ + 1], t_[i_ + 3], 2, 3, 10, 11, 6, 7, 14, 15);                                 \
    }                                                                                                        \
    UNROLL for (int i_ = 0; i_ < 4; i_++) {                                                                  \
      r[i_] = SHUF(u_[i_], u_[i_ + 4], 0, 1, 2, 3, 8, 9, 10, 11);                                            \
      r[i_ + 4] = SHUF(u_[i_], u_[i_ + 4], 4, 5, 6, 7, 12, 13, 14, 15);                                      \
    }                                                                                                        \
  } while (0)
#define TRANSPOSE_4d(r)                                                                                      \
  do {                                                                                                       \
    __typeof__(r[0]) t_[4];                                                                                  \
    UNROLL for (int i_ = 0; i_ < 4; i_ += 2) {                                                               \
      t_[i_] = SHUF(r[i_], r[i_ + 1], 0, 4, 2, 6);                                                           \
      t_[i_ + 1] = SHUF(r[i_], r[i_ + 1], 1, 5, 3, 7);                                                       \
    }                                                                                                        \
    UNROLL for (int i_ = 0; i_ < 2; i_++) {                                                                  \
      r[i_] = SHUF(t_[i_], t_[i_ + 2], 0, 1, 4, 5);                                                          \
      r[i_ + 2] = SHUF(t_[i_], t_[i_ + 2], 2, 3, 6, 7);                                                      \
    }                                                                                                        \
  } while (0)
#else
#define TRANSPOSE_8f(r) TRANSPOSE_LANES(float, 8, r)
#define TRANSPOSE_4d(r) TRANSPOSE_LANES(double, 4, r)
#endif
/* Other widths (the generic path's 16 bytes, AVX-512's 64) lane by lane:
 * only the packing of a transposed B uses them. */
#define TRANSPOSE_LANES(T, L, r)                                                                             \
  do {                                                                                                       \
    T m_[L][L];                                                                                              \
    for (int i_ = 0; i_ < L; i_++)                                                                           \
      memcpy(m_[i_], &r[i_], sizeof r[i_]);                                                                  \
    for (int i_ = 0; i_ < L; i_++)                                                                           \
      for (int j_ = 0; j_ < L; j_++)                                                                         \
        r[i_][j_] = m_[j_][i_];                                                                              \
  } while (0)
#define TRANSPOSE_4f(r) TRANSPOSE_LANES(float, 4, r)
#define TRANSPOSE_2d(r) TRANSPOSE_LANES(double, 2, r)
#define TRANSPOSE_16f(r) TRANSPOSE_LANES(float, 16, r)
#define TRANSPOSE_8d(r) TRANSPOSE_LANES(double, 8, r)

/* Per-thread scratch (bpk_thread_done frees it), shared by the paths: the
 * transposed operand packed, a last panel narrower than a tile zero-padded,
 * and a panel of B copied contiguous. */
#define BPK_SCRATCH(T, S)                                                                                    \
  static _Thread_local T *pack_buf_##S, *edge_buf_##S, *panel_buf_##S;                                       \
  static _Thread_local size_t pack_cap_##S, edge_cap_##S, panel_cap_##S;                                     \
  static T *scratch_##S(T **buf, size_t *cap, size_t n) {                                                    \
    if (*cap < n) {                                                                                          \
      free(*buf);                                                                                            \
      *buf = malloc(sizeof(T) * n);                                                                          \
      if (!*buf) abort();                                                                                    \
      *cap = n;                                                                                              \
    }                                                                                                        \
    return *buf;                                                                                             \
  }
BPK_SCRATCH(double, d)
BPK_SCRATCH(float, f)

/* A loop the compiler vectorises itself: the AVX2 clone is enough. */
#define BPK_ADD(T, S)                                                                                        \
  BPK_CLONES void bpk_add_##S(T *restrict y, const T *restrict x, size_t n) {                                \
    for (size_t i = 0; i < n; i++)                                                                           \
      y[i] += x[i];                                                                                          \
  }
BPK_ADD(double, d)
BPK_ADD(float, f)

/* The partials of bpk_mm_ksplit added into C over this part's rows. */
#define BPK_KSUM(T, S)                                                                                       \
  void bpk_mm_ksum_##S(T *C, const T *scratch, size_t m, size_t n, size_t lo, size_t hi, int parts) {         \
    for (int q = 1; q < parts; q++)                                                                          \
      bpk_add_##S(C + lo * n, scratch + (size_t)(q - 1) * m * n + lo * n, (hi - lo) * n);                    \
  }
BPK_KSUM(double, d)
BPK_KSUM(float, f)

void bpk_thread_done(void) {
  bpk_conv_thread_done();
  free(pack_buf_d);
  free(pack_buf_f);
  free(edge_buf_d);
  free(edge_buf_f);
  free(panel_buf_d);
  free(panel_buf_f);
  pack_buf_d = edge_buf_d = panel_buf_d = NULL;
  pack_buf_f = edge_buf_f = panel_buf_f = NULL;
  pack_cap_d = pack_cap_f = edge_cap_d = edge_cap_f = panel_cap_d = panel_cap_f = 0;
}

/* How a product is shared among threads (bpk_mm_part): by columns of C in
 * blocks of BPK_PART_COLUMNS, a multiple of every path's tile width, so a
 * thread's columns are tiled as one thread tiles them, and the threads read
 * disjoint columns of B (a parameter's columns stay in one core's cache from
 * step to step); by rows when C is too narrow for a block each. */
int bpk_mm_by_columns(size_t n, int parts, int by_rows) {
  return !by_rows && n >= (size_t)BPK_PART_COLUMNS * (size_t)parts;
}

void bpk_share_rows(size_t rows, size_t row_bytes, int part, int parts, size_t *lo, size_t *hi) {
  size_t unit = row_bytes >= 64 ? 1 : (64 + row_bytes - 1) / (row_bytes ? row_bytes : 1);
  bpk_share(rows, unit, part, parts, lo, hi);
}

void bpk_share(size_t n, size_t unit, int part, int parts, size_t *lo, size_t *hi) {
  size_t units = n / unit;
  *lo = units * (size_t)part / (size_t)parts * unit;
  *hi = part == parts - 1 ? n : units * (size_t)(part + 1) / (size_t)parts * unit;
}

/* One path: the dense kernels for elements T (kernels.h's suffix S) in
 * vectors of VB bytes, every function compiled for the target ATTR; P names
 * the path's functions (f_avx2), TR transposes a square block of its
 * vectors. The same source for every path: only the width and the
 * instructions the compiler may use differ. */
#define BPK_PATH(T, S, P, VB, TR, ATTR)                                                                      \
  typedef T v##P __attribute__((vector_size(VB)));                                                           \
  enum { VL_##P = VB / sizeof(T) };                                                                          \
  BPK_TILES(T, P, 1, 8, 4, 3, 2, 2, 2) /* one vector wide: a last panel of at most a vector */               \
  BPK_TILES(T, P, 2, 4, 2, 2, 1, 1, 1) /* two: every other panel */                                          \
  /* B [n, k] laid out as [k, n], by blocks of VL x VL transposed in registers */                            \
  ATTR static const T *pack_##P(const T *restrict B, size_t k, size_t n) {                                   \
    T *restrict buf = scratch_##S(&pack_buf_##S, &pack_cap_##S, k * n);                                      \
    size_t nb = n / VL_##P * VL_##P, kb = k / VL_##P * VL_##P;                                               \
    for (size_t j = 0; j < nb; j += VL_##P)                                                                  \
      for (size_t p = 0; p < kb; p += VL_##P) {                                                              \
        v##P r[VL_##P];                                                                                      \
        UNROLL for (int i = 0; i < VL_##P; i++) VLOAD(r[i], B + (j + i) * k + p);                            \
        TR(r);                                                                                               \
        UNROLL for (int i = 0; i < VL_##P; i++) VSTORE(buf + (p + i) * n + j, r[i]);                         \
      }                                                                                                      \
    for (size_t j = 0; j < n; j++) /* what the blocks left: the last columns, the last rows */               \
      for (size_t p = j < nb ? kb : 0; p < k; p++)                                                           \
        buf[p * n + j] = B[j * k + p];                                                                       \
    return buf;                                                                                              \
  }                                                                                                          \
  /* C (+)= A B with B row-major [k, n]; add = 0 overwrites C (no pass to                                    \
   * clear it first). k is cut into blocks so that the part of a B panel in                                  \
   * use stays in the L1 cache while the rows of A pass. The columns past                                    \
   * the last full tile are copied, zero-padded to one or two vectors, and                                   \
   * their results copied back: nothing is read or written outside B and C. */                               \
  ATTR static void mm_nn_##P(const T *restrict A, size_t sai, size_t sap, const T *restrict B, size_t ldb,   \
                             T *restrict C, size_t ldc, size_t m, size_t k, size_t n, int add) {             \
    enum { W = 2 * VL_##P, KC = 8192 / VB };                                                                 \
    size_t full = n / W * W;                                                                                 \
    if (k == 0) { /* an empty sum */                                                                         \
      if (!add)                                                                                              \
        for (size_t i = 0; i < m; i++)                                                                       \
          memset(C + i * ldc, 0, sizeof(T) * n);                                                             \
      return;                                                                                                \
    }                                                                                                        \
    /* B's rows a multiple of 4 cache lines apart fall into a quarter of the L1 cache's sets or fewer, and   \
       a panel of B then pushes itself out of L1 while the row tiles pass over it: copied once contiguous    \
       (when enough row tiles reuse it to pay for the copy), it stays */                                     \
    int contiguous = m > 12 && n > W && (ldb * sizeof(T)) % 256 == 0;                                        \
    T *bpan = contiguous ? scratch_##S(&panel_buf_##S, &panel_cap_##S, KC * W) : NULL;                       \
    for (size_t p0 = 0; p0 < k; p0 += KC) {                                                                  \
      size_t kc = k - p0 < KC ? k - p0 : KC;                                                                 \
      for (size_t j = 0; j < full; j += W) {                                                                 \
        const T *bj = B + p0 * ldb + j;                                                                      \
        size_t ldbj = ldb;                                                                                   \
        if (bpan) {                                                                                          \
          for (size_t p = 0; p < kc; p++)                                                                    \
            memcpy(bpan + p * W, bj + p * ldb, sizeof(T) * W);                                               \
          bj = bpan;                                                                                         \
          ldbj = W;                                                                                          \
        }                                                                                                    \
        panel2_##P(A + p0 * sap, sai, sap, bj, ldbj, C + j, ldc, m, kc, add || p0 > 0);                      \
      }                                                                                                      \
    }                                                                                                        \
    size_t rest = n - full;                                                                                  \
    if (rest == 0) return;                                                                                   \
    size_t w = rest <= VL_##P ? VL_##P : W; /* the padded width */                                           \
    T *bp = scratch_##S(&edge_buf_##S, &edge_cap_##S, (k + m) * w), *cp = bp + k * w;                        \
    for (size_t p = 0; p < k; p++) /* loops, not calls: a few elements a row */                              \
      for (size_t jj = 0; jj < w; jj++)                                                                      \
        bp[p * w + jj] = jj < rest ? B[p * ldb + full + jj] : 0;                                             \
    if (w == VL_##P)                                                                                         \
      panel1_##P(A, sai, sap, bp, w, cp, w, m, k, 0);                                                        \
    else                                                                                                     \
      panel2_##P(A, sai, sap, bp, w, cp, w, m, k, 0);                                                        \
    for (size_t i = 0; i < m; i++)                                                                           \
      for (size_t jj = 0; jj < rest; jj++)                                                                   \
        C[i * ldc + full + jj] = (add ? C[i * ldc + full + jj] : 0) + cp[i * w + jj];                        \
  }                                                                                                          \
  ATTR static void mv_##P(const T *restrict A, const T *restrict x, T *restrict y, size_t m, size_t k,       \
                          int acc) {                                                                         \
    for (size_t i = 0; i < m; i++) {                                                                         \
      const T *restrict row = A + i * k;                                                                     \
      T s = 0;                                                                                               \
      for (size_t p = 0; p < k; p++)                                                                         \
        s += row[p] * x[p];                                                                                  \
      y[i] = acc ? y[i] + s : s;                                                                             \
    }                                                                                                        \
  }                                                                                                          \
  ATTR static void mtv_##P(const T *restrict A, const T *restrict x, T *restrict y, size_t k, size_t m,      \
                           int acc) {                                                                        \
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
  ATTR static void outer_##P(const T *restrict a, const T *restrict b, T *restrict D, size_t m, size_t n,    \
                             int acc) {                                                                      \
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
  ATTR static void mm_##P(const T *restrict A, const T *restrict B, T *restrict C, size_t m, size_t k,       \
                          size_t n, int ta, int tb, int acc) {                                               \
    /* A(i,p) = A[i * sai + p * sap], whichever way A is stored */                                           \
    const size_t sai = ta ? 1 : k, sap = ta ? m : 1;                                                         \
    const T *Bp = B;                                                                                         \
    if (tb) { /* B is stored [n, k]: lay it out as [k, n] for row loads */                                   \
      Bp = pack_##P(B, k, n);                                                                                \
    }                                                                                                        \
    mm_nn_##P(A, sai, sap, Bp, n, C, n, m, k, n, acc);                                                       \
  }                                                                                                          \
  /* One thread's share of C = op(A) op(B) (kernels.h, bpk_mm_part) */                                       \
  ATTR static void mm_part_##P(const T *restrict A, const T *restrict B, T *restrict C, size_t m, size_t k,  \
                               size_t n, int ta, int tb, int acc, int part, int parts, int by_rows) {        \
    const size_t sai = ta ? 1 : k, sap = ta ? m : 1;                                                         \
    size_t lo, hi;                                                                                           \
    if (bpk_mm_by_columns(n, parts, by_rows)) {                                                              \
      bpk_share(n, BPK_PART_COLUMNS, part, parts, &lo, &hi);                                                 \
      if (lo == hi) return;                                                                                  \
      const T *Bp = tb ? pack_##P(B + lo * k, k, hi - lo) : B + lo;                                          \
      mm_nn_##P(A, sai, sap, Bp, tb ? hi - lo : n, C + lo, n, m, k, hi - lo, acc);                           \
    } else {                                                                                                 \
      bpk_share_rows(m, n * sizeof(T), part, parts, &lo, &hi);                                               \
      if (lo == hi) return;                                                                                  \
      const T *Bp = tb ? pack_##P(B, k, n) : B;                                                              \
      mm_nn_##P(A + lo * sai, sai, sap, Bp, n, C + lo * n, n, hi - lo, k, n, acc);                           \
    }                                                                                                        \
  }                                                                                                          \
  /* One thread's share of C = A B over k (kernels.h, bpk_mm_ksplit): an empty range stores zeros */         \
  ATTR static void mm_ksplit_##P(const T *restrict A, const T *restrict B, T *restrict out, size_t m,        \
                                 size_t k, size_t n, int part, int parts) {                                  \
    size_t lo, hi;                                                                                           \
    bpk_share_rows(k, n * sizeof(T), part, parts, &lo, &hi);                                                 \
    mm_nn_##P(A + lo, k, 1, B + lo * n, n, out, n, m, hi - lo, n, 0);                                        \
  }                                                                                                          \
  static const BpkDense_##S dense_##P = {mv_##P, mtv_##P, outer_##P, mm_##P, mm_part_##P, mm_ksplit_##P};

/* BPK_NO_TARGETS (tests/test_kernel_widths.c, which includes this file):
 * every path's code at its width, in the instructions of any CPU, each
 * path usable, so that a machine without AVX-512 still runs its code. */
#if defined(BPK_NO_TARGETS)
#define BPK_X86 1
#define AVX2_TARGET
#define AVX512_TARGET
#elif defined(__x86_64__) && defined(__GNUC__)
#define BPK_X86 1
#define AVX2_TARGET __attribute__((target("avx2,fma")))
#define AVX512_TARGET __attribute__((target("avx512f,avx2,fma")))
#endif

/* Generic: 16-byte vectors, what every x86-64 (SSE2) and arm64 (NEON) has. */
BPK_PATH(double, d, d_generic, 16, TRANSPOSE_2d, )
BPK_PATH(float, f, f_generic, 16, TRANSPOSE_4f, )
#ifdef BPK_X86
BPK_PATH(double, d, d_avx2, 32, TRANSPOSE_4d, AVX2_TARGET)
BPK_PATH(float, f, f_avx2, 32, TRANSPOSE_8f, AVX2_TARGET)
BPK_PATH(double, d, d_avx512, 64, TRANSPOSE_8d, AVX512_TARGET)
BPK_PATH(float, f, f_avx512, 64, TRANSPOSE_16f, AVX512_TARGET)
#endif

const char *const bpk_path_names[BPK_PATHS] = {"generic", "avx2", "avx512"};

static int path_usable(int path) {
  if (path == BPK_PATH_GENERIC) return 1;
#if defined(BPK_NO_TARGETS)
  return path > 0 && path < BPK_PATHS;
#elif defined(BPK_X86)
  if (path == BPK_PATH_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (path == BPK_PATH_AVX512) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
  return 0;
}

int bpk_path(void) {
  for (int p = BPK_PATHS - 1; p > 0; p--)
    if (path_usable(p)) return p;
  return BPK_PATH_GENERIC;
}

#ifdef BPK_X86
#define BPK_PATH_TABLE(S)                                                                                    \
  const BpkDense_##S *bpk_dense_##S(int path) {                                                              \
    static const BpkDense_##S *const all[BPK_PATHS] = {&dense_##S##_generic, &dense_##S##_avx2,              \
                                                       &dense_##S##_avx512};                                 \
    return path >= 0 && path < BPK_PATHS && path_usable(path) ? all[path] : NULL;                            \
  }
#else
#define BPK_PATH_TABLE(S)                                                                                    \
  const BpkDense_##S *bpk_dense_##S(int path) {                                                              \
    return path == BPK_PATH_GENERIC ? &dense_##S##_generic : NULL;                                           \
  }
#endif

/* The kernels.h entry points: the widest path this CPU has. */
#define BPK_DISPATCH(T, S)                                                                                   \
  BPK_PATH_TABLE(S)                                                                                          \
  void bpk_mv_##S(const T *A, const T *x, T *y, size_t m, size_t k, int acc) {                               \
    bpk_dense_##S(bpk_path())->mv(A, x, y, m, k, acc);                                                       \
  }                                                                                                          \
  void bpk_mtv_##S(const T *A, const T *x, T *y, size_t k, size_t m, int acc) {                              \
    bpk_dense_##S(bpk_path())->mtv(A, x, y, k, m, acc);                                                      \
  }                                                                                                          \
  void bpk_outer_##S(const T *a, const T *b, T *D, size_t m, size_t n, int acc) {                            \
    bpk_dense_##S(bpk_path())->outer(a, b, D, m, n, acc);                                                    \
  }                                                                                                          \
  void bpk_mm_##S(const T *A, const T *B, T *C, size_t m, size_t k, size_t n, int ta, int tb, int acc) {     \
    bpk_dense_##S(bpk_path())->mm(A, B, C, m, k, n, ta, tb, acc);                                            \
  }                                                                                                          \
  void bpk_mm_part_##S(const T *A, const T *B, T *C, size_t m, size_t k, size_t n, int ta, int tb, int acc,  \
                       int part, int parts, int by_rows) {                                                   \
    bpk_dense_##S(bpk_path())->mm_part(A, B, C, m, k, n, ta, tb, acc, part, parts, by_rows);                 \
  }                                                                                                          \
  void bpk_mm_ksplit_##S(const T *A, const T *B, T *out, size_t m, size_t k, size_t n, int part,             \
                         int parts) {                                                                        \
    bpk_dense_##S(bpk_path())->mm_ksplit(A, B, out, m, k, n, part, parts);                                   \
  }
BPK_DISPATCH(double, d)
BPK_DISPATCH(float, f)

const KernelSymbol bpk_symbols[] = {
    {"bpk_mv_d", (void *)bpk_mv_d},
    {"bpk_mtv_d", (void *)bpk_mtv_d},
    {"bpk_outer_d", (void *)bpk_outer_d},
    {"bpk_mm_d", (void *)bpk_mm_d},
    {"bpk_mv_f", (void *)bpk_mv_f},
    {"bpk_mtv_f", (void *)bpk_mtv_f},
    {"bpk_outer_f", (void *)bpk_outer_f},
    {"bpk_mm_f", (void *)bpk_mm_f},
    {"bpk_mm_part_d", (void *)bpk_mm_part_d},
    {"bpk_mm_part_f", (void *)bpk_mm_part_f},
    {"bpk_mm_ksplit_d", (void *)bpk_mm_ksplit_d},
    {"bpk_mm_ksplit_f", (void *)bpk_mm_ksplit_f},
    {"bpk_mm_ksum_d", (void *)bpk_mm_ksum_d},
    {"bpk_mm_ksum_f", (void *)bpk_mm_ksum_f},
#define BPK_WINDOW_SYMBOLS(S)                                                                                \
  {"bpk_conv2d_" #S, (void *)bpk_conv2d_##S}, {"bpk_conv2d_dx_" #S, (void *)bpk_conv2d_dx_##S},              \
      {"bpk_conv2d_dk_" #S, (void *)bpk_conv2d_dk_##S}, {"bpk_maxpool2d_" #S, (void *)bpk_maxpool2d_##S},    \
      {"bpk_maxpool2d_dx_" #S, (void *)bpk_maxpool2d_dx_##S},                                                \
      {"bpk_avgpool2d_" #S, (void *)bpk_avgpool2d_##S},                                                      \
      {"bpk_avgpool2d_dx_" #S, (void *)bpk_avgpool2d_dx_##S},
    BPK_WINDOW_SYMBOLS(d) BPK_WINDOW_SYMBOLS(f)
#undef BPK_WINDOW_SYMBOLS
        {NULL, NULL},
};
