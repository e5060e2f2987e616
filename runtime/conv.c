/* conv.c — convolution and pooling kernels for the JIT (kernels.h declares
 * them; compiler/window.c says what they compute, and its interpreter is
 * the reference the tests hold them to).
 *
 * A convolution is a matrix product once each output's window is laid out
 * as a column (im2col): for one image and one group,
 *   Y[O/G, Ho*Wo] = K[O/G, C/G*kh*kw] @ col[C/G*kh*kw, Ho*Wo]
 * and the product is the tuned kernel the dense layers use (bpk_mm). The
 * adjoints are the same product read the other ways: the image's gradient
 * is col2im of K^T @ dY (each column scattered back onto the pixels its
 * window read), the kernel's is dY @ col^T summed over the images. A 1x1
 * kernel with stride 1 and no padding needs no columns: the image is one.
 * Built with -O3 like kernels.c; the column buffer is per thread. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* The geometry array's fields and what follows from them. */
typedef struct Geom {
  size_t n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, groups;
  size_t ho, wo, cg, og, taps; /* output size, channels per group, rows of a column: cg * kh * kw */
  size_t hp, wp;               /* the image with its padding (the frame of im2col_s1 and col2im_s1) */
} Geom;

static size_t out_size(size_t in, size_t k, size_t step, size_t pad, size_t dil) {
  size_t span = dil * (k - 1) + 1;
  return in + 2 * pad < span ? 0 : (in + 2 * pad - span) / step + 1;
}

static Geom geom_of(const size_t *g) {
  Geom q = {g[BPK_N],  g[BPK_C],  g[BPK_H],  g[BPK_W],  g[BPK_O],  g[BPK_KH], g[BPK_KW],
            g[BPK_SH], g[BPK_SW], g[BPK_PH], g[BPK_PW], g[BPK_DH], g[BPK_DW], g[BPK_G] ? g[BPK_G] : 1,
            0,         0,         0,         0,         0,         0,         0};
  q.ho = out_size(q.h, q.kh, q.sh, q.ph, q.dh);
  q.wo = out_size(q.w, q.kw, q.sw, q.pw, q.dw);
  q.cg = q.c / q.groups;
  q.og = q.o / q.groups;
  q.taps = q.cg * q.kh * q.kw;
  q.hp = q.h + 2 * q.ph;
  q.wp = q.w + 2 * q.pw;
  return q;
}

/* Whether the image itself is its column matrix: [C/G, H*W] = [taps, Ho*Wo]. */
static int is_pointwise(const Geom *q) {
  return q->kh == 1 && q->kw == 1 && q->sh == 1 && q->sw == 1 && q->ph == 0 && q->pw == 0;
}

/* The output columns ox whose tap reads inside the image: [*lo, *hi). */
static void valid_columns(const Geom *q, size_t kx, size_t *lo, size_t *hi) {
  size_t off = kx * q->dw; /* the image column is ox * sw + off - pw */
  *lo = off >= q->pw ? 0 : (q->pw - off + q->sw - 1) / q->sw;
  size_t end = q->w + q->pw; /* ox * sw + off < w + pw */
  *hi = end <= off ? 0 : (end - off - 1) / q->sw + 1;
  if (*hi > q->wo) *hi = q->wo;
  if (*lo > *hi) *lo = *hi;
}

/* Whether each column row is a run of the padded image (im2col_s1). */
static int is_stride1(const Geom *q) { return q->sh == 1 && q->sw == 1 && q->dh == 1 && q->dw == 1; }

/* The scratch the columns of one image's group need beyond the columns:
 * the padded frame of im2col_s1. */
static size_t frame_elems(const Geom *q) { return is_stride1(q) ? q->cg * q->hp * q->wp : 0; }

/* Pooling with 2x2 windows, stride 2 and no padding (max2x2). */
static int is_2x2(const Geom *q) {
  return q->kh == 2 && q->kw == 2 && q->sh == 2 && q->sw == 2 && q->ph == 0 && q->pw == 0;
}

#define BPK_CONV(T, S, U)                                                                                    \
  static _Thread_local T *col_buf_##S;                                                                       \
  static _Thread_local size_t col_cap_##S;                                                                   \
  static T *col_space_##S(size_t n) {                                                                        \
    if (col_cap_##S < n) {                                                                                   \
      free(col_buf_##S);                                                                                     \
      col_buf_##S = malloc(sizeof(T) * n);                                                                   \
      if (!col_buf_##S) abort();                                                                             \
      col_cap_##S = n;                                                                                       \
    }                                                                                                        \
    return col_buf_##S;                                                                                      \
  }                                                                                                          \
  /* n elements, in vectors of 32 bytes with the last one overlapping the one before (runs are               \
     short: a row of an image). Through a vector variable: gcc expands a plain 32-byte memcpy into two       \
     16-byte moves, which made im2col twice as slow */                                                       \
  typedef T run_vec_##S __attribute__((vector_size(32)));                                                    \
  static inline                                                                                              \
      __attribute__((always_inline)) void copy_run_##S(T *restrict dst, const T *restrict src, size_t n) {   \
    enum { L = 32 / sizeof(T) };                                                                             \
    run_vec_##S v;                                                                                           \
    if (n < L) {                                                                                             \
      for (size_t i = 0; i < n; i++)                                                                         \
        dst[i] = src[i];                                                                                     \
      return;                                                                                                \
    }                                                                                                        \
    /* the last vector moved back to end at n: not an affine loop, which gcc would make a memcpy call */     \
    for (size_t i = 0;;) {                                                                                   \
      memcpy(&v, src + i, sizeof v);                                                                         \
      memcpy(dst + i, &v, sizeof v);                                                                         \
      if (i + L >= n) break;                                                                                 \
      i = i + 2 * L <= n ? i + L : n - L;                                                                    \
    }                                                                                                        \
  }                                                                                                          \
  /* rows runs of n elements, stride apart in src, one after another in dst (a plane of the padded image     \
     into a row of columns). The length decided once, not per run: a run of L to 2L elements (most images'   \
     rows) is two vectors, the second ending at n, with no loop or test of its own */                        \
  static inline __attribute__((always_inline)) void copy_rows_##S(T *restrict dst, const T *restrict src,    \
                                                                  size_t rows, size_t n, size_t stride) {    \
    enum { L = 32 / sizeof(T) };                                                                             \
    if (n < L || n > 2 * L) {                                                                                \
      for (size_t r = 0; r < rows; r++)                                                                      \
        copy_run_##S(dst + r * n, src + r * stride, n);                                                      \
      return;                                                                                                \
    }                                                                                                        \
    for (size_t r = 0; r < rows; r++, src += stride, dst += n) {                                             \
      run_vec_##S v, w;                                                                                      \
      memcpy(&v, src, sizeof v);                                                                             \
      memcpy(&w, src + n - L, sizeof w);                                                                     \
      memcpy(dst, &v, sizeof v);                                                                             \
      memcpy(dst + n - L, &w, sizeof w);                                                                     \
    }                                                                                                        \
  }                                                                                                          \
  /* dst[i] += src[i] for n elements: vectors of 32 bytes, then one of 16, then single values (runs are      \
     short, and the compiler's own loop leaves up to 7 values to a scalar tail) */                           \
  typedef T half_vec_##S __attribute__((vector_size(16)));                                                   \
  static inline                                                                                              \
      __attribute__((always_inline)) void add_run_##S(T *restrict dst, const T *restrict src, size_t n) {    \
    enum { L = 32 / sizeof(T), H = 16 / sizeof(T) };                                                         \
    size_t i = 0;                                                                                            \
    for (; i + L <= n; i += L) {                                                                             \
      run_vec_##S a, b;                                                                                      \
      memcpy(&a, dst + i, sizeof a);                                                                         \
      memcpy(&b, src + i, sizeof b);                                                                         \
      a += b;                                                                                                \
      memcpy(dst + i, &a, sizeof a);                                                                         \
    }                                                                                                        \
    if (i + H <= n) {                                                                                        \
      half_vec_##S a, b;                                                                                     \
      memcpy(&a, dst + i, sizeof a);                                                                         \
      memcpy(&b, src + i, sizeof b);                                                                         \
      a += b;                                                                                                \
      memcpy(dst + i, &a, sizeof a);                                                                         \
      i += H;                                                                                                \
    }                                                                                                        \
    for (; i < n; i++)                                                                                       \
      dst[i] += src[i];                                                                                      \
  }                                                                                                          \
  /* The same for rows runs of n, one after another in src, each added into dst at stride apart. A run of    \
     L to 2L is two vectors, the second ending at n with the lanes the first already added zeroed (a mask    \
     made once); both runs of dst are loaded before either is stored, the second stored first, so that no    \
     load waits on a store it overlaps and the first's store has the last word on the shared lanes */        \
  typedef U run_mask_##S __attribute__((vector_size(32)));                                                   \
  static inline __attribute__((always_inline)) void add_rows_##S(T *restrict dst, const T *restrict src,     \
                                                                 size_t rows, size_t n, size_t stride) {     \
    enum { L = 32 / sizeof(T) };                                                                             \
    if (n < L || n > 2 * L) {                                                                                \
      for (size_t r = 0; r < rows; r++)                                                                      \
        add_run_##S(dst + r * stride, src + r * n, n);                                                       \
      return;                                                                                                \
    }                                                                                                        \
    run_mask_##S keep;                                                                                       \
    for (int i = 0; i < L; i++)                                                                              \
      keep[i] = (size_t)i >= 2 * L - n ? (U)-1 : 0;                                                          \
    for (size_t r = 0; r < rows; r++, dst += stride, src += n) {                                             \
      run_vec_##S d0, d1, s0, s1;                                                                            \
      memcpy(&d0, dst, sizeof d0);                                                                           \
      memcpy(&d1, dst + n - L, sizeof d1);                                                                   \
      memcpy(&s0, src, sizeof s0);                                                                           \
      memcpy(&s1, src + n - L, sizeof s1);                                                                   \
      d1 += (run_vec_##S)((run_mask_##S)s1 & keep);                                                          \
      d0 += s0;                                                                                              \
      memcpy(dst + n - L, &d1, sizeof d1);                                                                   \
      memcpy(dst, &d0, sizeof d0);                                                                           \
    }                                                                                                        \
  }                                                                                                          \
  /* col[taps, Ho*Wo] of one image's group (x: its first channel), zeros in the padding */                   \
  BPK_CLONES static void im2col_##S(const Geom *q, const T *restrict x, T *restrict col) {                   \
    for (size_t ci = 0; ci < q->cg; ci++)                                                                    \
      for (size_t ky = 0; ky < q->kh; ky++)                                                                  \
        for (size_t kx = 0; kx < q->kw; kx++) {                                                              \
          T *row = col + ((ci * q->kh + ky) * q->kw + kx) * q->ho * q->wo;                                   \
          size_t lo, hi;                                                                                     \
          valid_columns(q, kx, &lo, &hi);                                                                    \
          for (size_t oy = 0; oy < q->ho; oy++) {                                                            \
            T *out = row + oy * q->wo;                                                                       \
            size_t iy = oy * q->sh + ky * q->dh; /* plus ph: unsigned, compared before subtracting */        \
            if (iy < q->ph || iy - q->ph >= q->h) {                                                          \
              for (size_t ox = 0; ox < q->wo; ox++)                                                          \
                out[ox] = 0;                                                                                 \
              continue;                                                                                      \
            }                                                                                                \
            /* rows are short (28 values): plain loops, which the compiler vectorises, beat calls */         \
            const T *in = x + (ci * q->h + iy - q->ph) * q->w; /* the row; ox >= lo reads at or after it */  \
            size_t off = kx * q->dw;                                                                         \
            for (size_t ox = 0; ox < lo; ox++)                                                               \
              out[ox] = 0;                                                                                   \
            if (q->sw == 1 && hi > lo) {                                                                     \
              const T *src = in + (lo + off - q->pw); /* column lo's pixel, inside the row */                \
              for (size_t ox = lo; ox < hi; ox++)                                                            \
                out[ox] = src[ox - lo];                                                                      \
            } else {                                                                                         \
              for (size_t ox = lo; ox < hi; ox++)                                                            \
                out[ox] = in[ox * q->sw + off - q->pw];                                                      \
            }                                                                                                \
            for (size_t ox = hi; ox < q->wo; ox++)                                                           \
              out[ox] = 0;                                                                                   \
          }                                                                                                  \
        }                                                                                                    \
  }                                                                                                          \
  /* Stride 1, no dilation (most networks): the image is first copied into a frame of zeros (its             \
     padding), after which each row of a column is one run of Wo pixels of the frame, copied without         \
     a test: im2col's branches and zero fills were most of its time */                                       \
  BPK_CLONES static void im2col_s1_##S(const Geom *q, const T *restrict x, T *restrict col,                  \
                                       T *restrict frame) {                                                  \
    size_t hp = q->hp, wp = q->wp, hw = q->ho * q->wo;                                                       \
    for (size_t ci = 0; ci < q->cg; ci++) { /* each cell of the frame written once: the border zeros */      \
      T *f = frame + ci * hp * wp;                                                                           \
      memset(f, 0, sizeof(T) * q->ph * wp);                                                                  \
      for (size_t iy = 0; iy < q->h; iy++) {                                                                 \
        T *r = f + (iy + q->ph) * wp;                                                                        \
        memset(r, 0, sizeof(T) * q->pw);                                                                     \
        memcpy(r + q->pw, x + (ci * q->h + iy) * q->w, sizeof(T) * q->w);                                    \
        memset(r + q->pw + q->w, 0, sizeof(T) * q->pw);                                                      \
      }                                                                                                      \
      memset(f + (q->ph + q->h) * wp, 0, sizeof(T) * q->ph * wp);                                            \
    }                                                                                                        \
    for (size_t ci = 0; ci < q->cg; ci++)                                                                    \
      for (size_t ky = 0; ky < q->kh; ky++)                                                                  \
        for (size_t kx = 0; kx < q->kw; kx++) {                                                              \
          T *row = col + ((ci * q->kh + ky) * q->kw + kx) * hw;                                              \
          const T *src = frame + (ci * hp + ky) * wp + kx;                                                   \
          copy_rows_##S(row, src, q->ho, q->wo, wp);                                                         \
        }                                                                                                    \
  }                                                                                                          \
  /* col[taps, Ho*Wo] of one image's group; frame: frame_elems(q) of scratch */                              \
  static void columns_##S(const Geom *q, const T *x, T *col, T *frame) {                                     \
    if (is_stride1(q))                                                                                       \
      im2col_s1_##S(q, x, col, frame);                                                                       \
    else                                                                                                     \
      im2col_##S(q, x, col);                                                                                 \
  }                                                                                                          \
  /* dx += each column scattered back onto the pixels its window read */                                     \
  BPK_CLONES static void col2im_##S(const Geom *q, const T *restrict col, T *restrict dx) {                  \
    for (size_t ci = 0; ci < q->cg; ci++)                                                                    \
      for (size_t ky = 0; ky < q->kh; ky++)                                                                  \
        for (size_t kx = 0; kx < q->kw; kx++) {                                                              \
          const T *row = col + ((ci * q->kh + ky) * q->kw + kx) * q->ho * q->wo;                             \
          size_t lo, hi;                                                                                     \
          valid_columns(q, kx, &lo, &hi);                                                                    \
          for (size_t oy = 0; oy < q->ho; oy++) {                                                            \
            size_t iy = oy * q->sh + ky * q->dh;                                                             \
            if (iy < q->ph || iy - q->ph >= q->h) continue;                                                  \
            T *out = dx + (ci * q->h + iy - q->ph) * q->w;                                                   \
            const T *in = row + oy * q->wo;                                                                  \
            size_t off = kx * q->dw;                                                                         \
            for (size_t ox = lo; ox < hi; ox++)                                                              \
              out[ox * q->sw + off - q->pw] += in[ox];                                                       \
          }                                                                                                  \
        }                                                                                                    \
  }                                                                                                          \
  /* col2im for stride 1, no dilation: each row of a column added as one run into a frame of the             \
     padded image, whose inside then goes into dx (stored, or added with acc) */                             \
  BPK_CLONES static void col2im_s1_##S(const Geom *q, const T *restrict col, T *restrict dx,                 \
                                       T *restrict frame, int acc) {                                         \
    size_t hp = q->hp, wp = q->wp, hw = q->ho * q->wo;                                                       \
    memset(frame, 0, sizeof(T) * q->cg * hp * wp); /* the sums start at 0 */                                 \
    for (size_t ci = 0; ci < q->cg; ci++)                                                                    \
      for (size_t ky = 0; ky < q->kh; ky++)                                                                  \
        for (size_t kx = 0; kx < q->kw; kx++) {                                                              \
          const T *row = col + ((ci * q->kh + ky) * q->kw + kx) * hw;                                        \
          T *dst = frame + (ci * hp + ky) * wp + kx;                                                         \
          add_rows_##S(dst, row, q->ho, q->wo, wp);                                                          \
        }                                                                                                    \
    for (size_t ci = 0; ci < q->cg; ci++)                                                                    \
      for (size_t iy = 0; iy < q->h; iy++) {                                                                 \
        const T *restrict src = frame + (ci * hp + iy + q->ph) * wp + q->pw;                                 \
        T *restrict d = dx + (ci * q->h + iy) * q->w;                                                        \
        if (acc)                                                                                             \
          for (size_t ix = 0; ix < q->w; ix++)                                                               \
            d[ix] += src[ix];                                                                                \
        else                                                                                                 \
          memcpy(d, src, sizeof(T) * q->w);                                                                  \
      }                                                                                                      \
  }                                                                                                          \
  void bpk_conv2d_##S(const T *x, const T *K, T *y, const size_t *g, int acc) {                              \
    Geom q = geom_of(g);                                                                                     \
    size_t hw = q.ho * q.wo, in_hw = q.h * q.w;                                                              \
    T *col = is_pointwise(&q) ? NULL : col_space_##S(q.taps * hw + frame_elems(&q));                         \
    for (size_t n = 0; n < q.n; n++)                                                                         \
      for (size_t gr = 0; gr < q.groups; gr++) {                                                             \
        const T *xg = x + (n * q.c + gr * q.cg) * in_hw;                                                     \
        if (col) columns_##S(&q, xg, col, col + q.taps * hw);                                                \
        bpk_mm_##S(K + gr * q.og * q.taps, col ? col : xg, y + (n * q.o + gr * q.og) * hw, q.og, q.taps, hw, \
                   0, 0, acc);                                                                               \
      }                                                                                                      \
  }                                                                                                          \
  void bpk_conv2d_dx_##S(const T *dy, const T *K, T *dx, const size_t *g, int acc) {                         \
    Geom q = geom_of(g);                                                                                     \
    size_t hw = q.ho * q.wo, in_hw = q.h * q.w;                                                              \
    int direct = is_pointwise(&q), framed = !direct && is_stride1(&q);                                       \
    T *col = direct ? NULL : col_space_##S(q.taps * hw + frame_elems(&q));                                   \
    if (!acc && !direct && !framed) memset(dx, 0, sizeof(T) * q.n * q.c * in_hw);                            \
    for (size_t n = 0; n < q.n; n++)                                                                         \
      for (size_t gr = 0; gr < q.groups; gr++) {                                                             \
        T *dxg = dx + (n * q.c + gr * q.cg) * in_hw;                                                         \
        const T *Kg = K + gr * q.og * q.taps, *dyg = dy + (n * q.o + gr * q.og) * hw;                        \
        if (direct) { /* the columns are the image's gradient itself */                                      \
          bpk_mm_##S(Kg, dyg, dxg, q.taps, q.og, hw, 1, 0, acc);                                             \
          continue;                                                                                          \
        }                                                                                                    \
        bpk_mm_##S(Kg, dyg, col, q.taps, q.og, hw, 1, 0, 0);                                                 \
        if (framed)                                                                                          \
          col2im_s1_##S(&q, col, dxg, col + q.taps * hw, acc);                                               \
        else                                                                                                 \
          col2im_##S(&q, col, dxg);                                                                          \
      }                                                                                                      \
  }                                                                                                          \
  /* dK^T[taps, O/G] = sum over the images of col @ dY^T, one group at a time: the product packs dY,         \
     a few channels of output, rather than the columns; then added into dK transposed */                     \
  void bpk_conv2d_dk_##S(const T *x, const T *dy, T *dK, const size_t *g, int acc) {                         \
    Geom q = geom_of(g);                                                                                     \
    size_t hw = q.ho * q.wo, in_hw = q.h * q.w;                                                              \
    T *col = col_space_##S(q.taps * hw + q.taps * q.og + frame_elems(&q)), *dkt = col + q.taps * hw;         \
    for (size_t gr = 0; gr < q.groups; gr++) {                                                               \
      for (size_t n = 0; n < q.n; n++) {                                                                     \
        const T *xg = x + (n * q.c + gr * q.cg) * in_hw;                                                     \
        if (!is_pointwise(&q)) columns_##S(&q, xg, col, dkt + q.taps * q.og);                                \
        bpk_mm_##S(is_pointwise(&q) ? xg : col, dy + (n * q.o + gr * q.og) * hw, dkt, q.taps, hw, q.og, 0,   \
                   1, n > 0);                                                                                \
      }                                                                                                      \
      T *dkg = dK + gr * q.og * q.taps;                                                                      \
      for (size_t o = 0; o < q.og; o++)                                                                      \
        for (size_t t = 0; t < q.taps; t++)                                                                  \
          dkg[o * q.taps + t] = (acc ? dkg[o * q.taps + t] : 0) + dkt[t * q.og + o];                         \
    }                                                                                                        \
  }                                                                                                          \
  /* Pooling, plane by plane: each window's first maximum (row by row) or its mean; padded cells             \
     never win a maximum and count in the mean's divisor (PyTorch's count_include_pad). */                   \
  BPK_CLONES static void pool_##S(const T *restrict x, T *restrict y, const T *restrict dy, T *restrict dx,  \
                                  const size_t *g, int mode, int acc) {                                      \
    Geom q = geom_of(g);                                                                                     \
    size_t planes = q.n * q.c;                                                                               \
    T inv = (T)1 / (T)(q.kh * q.kw);                                                                         \
    for (size_t p = 0; p < planes; p++) {                                                                    \
      const T *xp = x ? x + p * q.h * q.w : NULL;                                                            \
      T *dxp = dx ? dx + p * q.h * q.w : NULL;                                                               \
      for (size_t oy = 0; oy < q.ho; oy++)                                                                   \
        for (size_t ox = 0; ox < q.wo; ox++) {                                                               \
          size_t at = (p * q.ho + oy) * q.wo + ox, best = (size_t)-1;                                        \
          T m = 0, s = 0, gy = dy ? dy[at] : 0;                                                              \
          for (size_t ky = 0; ky < q.kh; ky++) {                                                             \
            size_t iy = oy * q.sh + ky;                                                                      \
            if (iy < q.ph || iy - q.ph >= q.h) continue;                                                     \
            for (size_t kx = 0; kx < q.kw; kx++) {                                                           \
              size_t ix = ox * q.sw + kx;                                                                    \
              if (ix < q.pw || ix - q.pw >= q.w) continue;                                                   \
              size_t i = (iy - q.ph) * q.w + ix - q.pw;                                                      \
              if (mode == 2) {                                                                               \
                dxp[i] += gy * inv;                                                                          \
              } else if (mode == 1) {                                                                        \
                s += xp[i];                                                                                  \
              } else if (best == (size_t)-1 || xp[i] > m) {                                                  \
                m = xp[i];                                                                                   \
                best = i;                                                                                    \
              }                                                                                              \
            }                                                                                                \
          }                                                                                                  \
          if (y) {                                                                                           \
            T v = mode == 1 ? s * inv : m;                                                                   \
            y[at] = acc ? y[at] + v : v;                                                                     \
          } else if (mode == 0 && best != (size_t)-1) {                                                      \
            dxp[best] += gy;                                                                                 \
          }                                                                                                  \
        }                                                                                                    \
    }                                                                                                        \
  }                                                                                                          \
  /* max pooling without padding (the usual case): every window inside the image, no checks */               \
  BPK_CLONES static void max_unpadded_##S(const Geom *q, const T *restrict x, T *restrict y,                 \
                                          const T *restrict dy, T *restrict dx, int acc) {                   \
    size_t planes = q->n * q->c, plane = q->h * q->w;                                                        \
    for (size_t p = 0; p < planes; p++)                                                                      \
      for (size_t oy = 0; oy < q->ho; oy++)                                                                  \
        for (size_t ox = 0; ox < q->wo; ox++) {                                                              \
          size_t first = p * plane + oy * q->sh * q->w + ox * q->sw, best = first;                           \
          T m = x[first];                                                                                    \
          for (size_t ky = 0; ky < q->kh; ky++)                                                              \
            for (size_t kx = 0; kx < q->kw; kx++) {                                                          \
              size_t i = first + ky * q->w + kx;                                                             \
              if (x[i] > m) { /* strictly: the first maximum keeps it */                                     \
                m = x[i];                                                                                    \
                best = i;                                                                                    \
              }                                                                                              \
            }                                                                                                \
          size_t at = (p * q->ho + oy) * q->wo + ox;                                                         \
          if (y)                                                                                             \
            y[at] = acc ? y[at] + m : m;                                                                     \
          else                                                                                               \
            dx[best] += dy[at];                                                                              \
        }                                                                                                    \
  }                                                                                                          \
  /* the value whose bits are b where c is 1, else 0 */                                                      \
  static inline __attribute__((always_inline)) T masked_##S(U b, unsigned c) {                               \
    U r = b & ((U)0 - (U)c);                                                                                 \
    T v;                                                                                                     \
    memcpy(&v, &r, sizeof v);                                                                                \
    return v;                                                                                                \
  }                                                                                                          \
  /* The gradient of 2x2 windows, stride 2, no padding (most networks), stored into all four cells of        \
     each window or added to them: cnt windows of a row pair (a and b its rows from the first window's       \
     cells), cnt a constant after inlining, so that the compiler vectorises the loop (a row's windows        \
     are often fewer than a loop it vectorises by itself would take: 7 on a 14 x 14 image). The same         \
     comparisons, in the same order, as max_unpadded's. No branches: which cell wins is data, and            \
     mispredicted branches were most of the gradient's time (8x the forward's); the gradient goes            \
     through a bit mask, not a product (inf * 0) */                                                          \
  enum { V_##S = 32 / sizeof(T) };                                                                           \
  static inline __attribute__((always_inline)) void max_windows_dx_##S(                                      \
      const T *restrict a, const T *restrict b, const T *restrict g, T *restrict da, T *restrict db,         \
      size_t cnt, int acc) {                                                                                 \
    for (size_t ox = 0; ox < cnt; ox++) {                                                                    \
      T m = a[2 * ox], v1 = a[2 * ox + 1], v2 = b[2 * ox], v3 = b[2 * ox + 1];                               \
      unsigned k = v1 > m;                                                                                   \
      m = v1 > m ? v1 : m;                                                                                   \
      unsigned c2 = v2 > m;                                                                                  \
      k += c2 * (2 - k);                                                                                     \
      m = v2 > m ? v2 : m;                                                                                   \
      unsigned c3 = v3 > m;                                                                                  \
      k += c3 * (3 - k);                                                                                     \
      U bits;                                                                                                \
      memcpy(&bits, &g[ox], sizeof bits);                                                                    \
      T g0 = masked_##S(bits, k == 0), g1 = masked_##S(bits, k == 1), g2 = masked_##S(bits, k == 2),         \
        g3 = masked_##S(bits, k == 3);                                                                       \
      if (acc) {                                                                                             \
        da[2 * ox] += g0, da[2 * ox + 1] += g1, db[2 * ox] += g2, db[2 * ox + 1] += g3;                      \
      } else {                                                                                               \
        da[2 * ox] = g0, da[2 * ox + 1] = g1, db[2 * ox] = g2, db[2 * ox + 1] = g3;                          \
      }                                                                                                      \
    }                                                                                                        \
  }                                                                                                          \
  /* A row pair's wo windows in chunks of c (V or V/2): whole chunks, then, storing, the last c windows      \
     again (the windows done twice get the same values); adding, or with fewer than c windows, the last      \
     ones one at a time. Returns the windows done. */                                                        \
  static inline __attribute__((always_inline))                                                               \
  size_t max_row_dx_##S(const T *a, const T *b, const T *g, T *da, T *db, size_t wo, size_t c, int acc) {    \
    if (wo < c) return 0;                                                                                    \
    size_t ox = 0;                                                                                           \
    for (; ox + c <= wo; ox += c)                                                                            \
      max_windows_dx_##S(a + 2 * ox, b + 2 * ox, g + ox, da + 2 * ox, db + 2 * ox, c, acc);                  \
    if (ox < wo && !acc) {                                                                                   \
      ox = wo - c;                                                                                           \
      max_windows_dx_##S(a + 2 * ox, b + 2 * ox, g + ox, da + 2 * ox, db + 2 * ox, c, 0);                    \
      ox = wo;                                                                                               \
    }                                                                                                        \
    return ox;                                                                                               \
  }                                                                                                          \
  /* 2x2 windows, stride 2, no padding, row pair by row pair (which the compiler vectorises) */              \
  BPK_CLONES static void max2x2_##S(const Geom *q, const T *restrict x, T *restrict y, int acc) {            \
    size_t planes = q->n * q->c;                                                                             \
    for (size_t p = 0; p < planes; p++)                                                                      \
      for (size_t oy = 0; oy < q->ho; oy++) {                                                                \
        const T *restrict a = x + p * q->h * q->w + 2 * oy * q->w, *restrict b = a + q->w;                   \
        T *restrict out = y + (p * q->ho + oy) * q->wo;                                                      \
        for (size_t ox = 0; ox < q->wo; ox++) {                                                              \
          T m = a[2 * ox];                                                                                   \
          m = a[2 * ox + 1] > m ? a[2 * ox + 1] : m;                                                         \
          m = b[2 * ox] > m ? b[2 * ox] : m;                                                                 \
          m = b[2 * ox + 1] > m ? b[2 * ox + 1] : m;                                                         \
          out[ox] = acc ? out[ox] + m : m;                                                                   \
        }                                                                                                    \
      }                                                                                                      \
  }                                                                                                          \
  /* Its gradient, row pair by row pair (the windows tile dx exactly: the caller checks) */                  \
  BPK_CLONES static void max2x2_dx_##S(const Geom *q, const T *restrict x, const T *restrict dy,             \
                                       T *restrict dx, int acc) {                                            \
    size_t planes = q->n * q->c, wo = q->wo;                                                                 \
    for (size_t p = 0; p < planes; p++)                                                                      \
      for (size_t oy = 0; oy < q->ho; oy++) {                                                                \
        size_t top = p * q->h * q->w + 2 * oy * q->w;                                                        \
        const T *a = x + top, *b = a + q->w, *g = dy + (p * q->ho + oy) * wo;                                \
        T *da = dx + top, *db = da + q->w;                                                                   \
        size_t done = wo >= V_##S ? max_row_dx_##S(a, b, g, da, db, wo, V_##S, acc)                          \
                                  : max_row_dx_##S(a, b, g, da, db, wo, V_##S / 2, acc);                     \
        for (size_t ox = done; ox < wo; ox++)                                                                \
          max_windows_dx_##S(a + 2 * ox, b + 2 * ox, g + ox, da + 2 * ox, db + 2 * ox, 1, acc);              \
      }                                                                                                      \
  }                                                                                                          \
  void bpk_maxpool2d_##S(const T *x, T *y, const size_t *g, int acc) {                                       \
    Geom q = geom_of(g);                                                                                     \
    if (is_2x2(&q))                                                                                          \
      max2x2_##S(&q, x, y, acc);                                                                             \
    else if (q.ph == 0 && q.pw == 0)                                                                         \
      max_unpadded_##S(&q, x, y, NULL, NULL, acc);                                                           \
    else                                                                                                     \
      pool_##S(x, y, NULL, NULL, g, 0, acc);                                                                 \
  }                                                                                                          \
  void bpk_avgpool2d_##S(const T *x, T *y, const size_t *g, int acc) {                                       \
    pool_##S(x, y, NULL, NULL, g, 1, acc);                                                                   \
  }                                                                                                          \
  void bpk_maxpool2d_dx_##S(const T *x, const T *dy, T *dx, const size_t *g, int acc) {                      \
    Geom q = geom_of(g);                                                                                     \
    if (is_2x2(&q) && q.h == 2 * q.ho && q.w == 2 * q.wo) { /* every cell in one window */                   \
      max2x2_dx_##S(&q, x, dy, dx, acc);                                                                     \
      return;                                                                                                \
    }                                                                                                        \
    if (!acc) memset(dx, 0, sizeof(T) * g[BPK_N] * g[BPK_C] * g[BPK_H] * g[BPK_W]);                          \
    if (q.ph == 0 && q.pw == 0)                                                                              \
      max_unpadded_##S(&q, x, NULL, dy, dx, 1);                                                              \
    else                                                                                                     \
      pool_##S(x, NULL, dy, dx, g, 0, 1);                                                                    \
  }                                                                                                          \
  void bpk_avgpool2d_dx_##S(const T *dy, T *dx, const size_t *g, int acc) {                                  \
    if (!acc) memset(dx, 0, sizeof(T) * g[BPK_N] * g[BPK_C] * g[BPK_H] * g[BPK_W]);                          \
    pool_##S(NULL, NULL, dy, dx, g, 2, 1);                                                                   \
  }

BPK_CONV(double, d, uint64_t)
BPK_CONV(float, f, uint32_t)

void bpk_conv_thread_done(void) {
  free(col_buf_d);
  free(col_buf_f);
  col_buf_d = NULL;
  col_buf_f = NULL;
  col_cap_d = col_cap_f = 0;
}
