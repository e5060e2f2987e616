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
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* The geometry array's fields and what follows from them. */
typedef struct Geom {
  size_t n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, groups;
  size_t ho, wo, cg, og, taps; /* output size, channels per group, rows of a column: cg * kh * kw */
} Geom;

static size_t out_size(size_t in, size_t k, size_t step, size_t pad, size_t dil) {
  size_t span = dil * (k - 1) + 1;
  return in + 2 * pad < span ? 0 : (in + 2 * pad - span) / step + 1;
}

static Geom geom_of(const size_t *g) {
  Geom q = {g[BPK_N],  g[BPK_C],  g[BPK_H],  g[BPK_W],  g[BPK_O],  g[BPK_KH], g[BPK_KW],
            g[BPK_SH], g[BPK_SW], g[BPK_PH], g[BPK_PW], g[BPK_DH], g[BPK_DW], g[BPK_G] ? g[BPK_G] : 1,
            0,         0,         0,         0,         0};
  q.ho = out_size(q.h, q.kh, q.sh, q.ph, q.dh);
  q.wo = out_size(q.w, q.kw, q.sw, q.pw, q.dw);
  q.cg = q.c / q.groups;
  q.og = q.o / q.groups;
  q.taps = q.cg * q.kh * q.kw;
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

#define BPK_CONV(T, S)                                                                                       \
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
  /* col[taps, Ho*Wo] of one image's group (x: its first channel), zeros in the padding */                  \
  BPK_CLONES static void im2col_##S(const Geom *q, const T *restrict x, T *restrict col) {                  \
    for (size_t ci = 0; ci < q->cg; ci++)                                                                    \
      for (size_t ky = 0; ky < q->kh; ky++)                                                                  \
        for (size_t kx = 0; kx < q->kw; kx++) {                                                              \
          T *row = col + ((ci * q->kh + ky) * q->kw + kx) * q->ho * q->wo;                                   \
          size_t lo, hi;                                                                                     \
          valid_columns(q, kx, &lo, &hi);                                                                    \
          for (size_t oy = 0; oy < q->ho; oy++) {                                                            \
            T *out = row + oy * q->wo;                                                                       \
            size_t iy = oy * q->sh + ky * q->dh; /* plus ph: unsigned, compared before subtracting */      \
            if (iy < q->ph || iy - q->ph >= q->h) {                                                          \
              for (size_t ox = 0; ox < q->wo; ox++)                                                          \
                out[ox] = 0;                                                                                 \
              continue;                                                                                      \
            }                                                                                                \
            /* rows are short (28 values): plain loops, which the compiler vectorises, beat calls */        \
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
  /* dx += each column scattered back onto the pixels its window read */                                    \
  BPK_CLONES static void col2im_##S(const Geom *q, const T *restrict col, T *restrict dx) {                 \
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
  void bpk_conv2d_##S(const T *x, const T *K, T *y, const size_t *g, int acc) {                              \
    Geom q = geom_of(g);                                                                                     \
    size_t hw = q.ho * q.wo, in_hw = q.h * q.w;                                                              \
    T *col = is_pointwise(&q) ? NULL : col_space_##S(q.taps * hw);                                           \
    for (size_t n = 0; n < q.n; n++)                                                                         \
      for (size_t gr = 0; gr < q.groups; gr++) {                                                             \
        const T *xg = x + (n * q.c + gr * q.cg) * in_hw;                                                     \
        if (col) im2col_##S(&q, xg, col);                                                                    \
        bpk_mm_##S(K + gr * q.og * q.taps, col ? col : xg, y + (n * q.o + gr * q.og) * hw, q.og, q.taps, hw, \
                   0, 0, acc);                                                                               \
      }                                                                                                      \
  }                                                                                                          \
  void bpk_conv2d_dx_##S(const T *dy, const T *K, T *dx, const size_t *g, int acc) {                         \
    Geom q = geom_of(g);                                                                                     \
    size_t hw = q.ho * q.wo, in_hw = q.h * q.w;                                                              \
    int direct = is_pointwise(&q);                                                                           \
    T *col = direct ? NULL : col_space_##S(q.taps * hw);                                                     \
    if (!acc && !direct) memset(dx, 0, sizeof(T) * q.n * q.c * in_hw);                                       \
    for (size_t n = 0; n < q.n; n++)                                                                         \
      for (size_t gr = 0; gr < q.groups; gr++) {                                                             \
        T *dxg = dx + (n * q.c + gr * q.cg) * in_hw;                                                         \
        const T *Kg = K + gr * q.og * q.taps, *dyg = dy + (n * q.o + gr * q.og) * hw;                        \
        if (direct) { /* the columns are the image's gradient itself */                                     \
          bpk_mm_##S(Kg, dyg, dxg, q.taps, q.og, hw, 1, 0, acc);                                             \
          continue;                                                                                          \
        }                                                                                                    \
        bpk_mm_##S(Kg, dyg, col, q.taps, q.og, hw, 1, 0, 0);                                                 \
        col2im_##S(&q, col, dxg);                                                                            \
      }                                                                                                      \
  }                                                                                                          \
  /* dK^T[taps, O/G] = sum over the images of col @ dY^T, one group at a time: the product packs dY,       \
     a few channels of output, rather than the columns; then added into dK transposed */                    \
  void bpk_conv2d_dk_##S(const T *x, const T *dy, T *dK, const size_t *g, int acc) {                         \
    Geom q = geom_of(g);                                                                                     \
    size_t hw = q.ho * q.wo, in_hw = q.h * q.w;                                                              \
    T *col = col_space_##S(q.taps * hw + q.taps * q.og), *dkt = col + q.taps * hw;                           \
    for (size_t gr = 0; gr < q.groups; gr++) {                                                               \
      for (size_t n = 0; n < q.n; n++) {                                                                     \
        const T *xg = x + (n * q.c + gr * q.cg) * in_hw;                                                     \
        if (!is_pointwise(&q)) im2col_##S(&q, xg, col);                                                      \
        bpk_mm_##S(is_pointwise(&q) ? xg : col, dy + (n * q.o + gr * q.og) * hw, dkt, q.taps, hw, q.og, 0, 1, \
                   n > 0);                                                                                   \
      }                                                                                                      \
      T *dkg = dK + gr * q.og * q.taps;                                                                      \
      for (size_t o = 0; o < q.og; o++)                                                                      \
        for (size_t t = 0; t < q.taps; t++)                                                                  \
          dkg[o * q.taps + t] = (acc ? dkg[o * q.taps + t] : 0) + dkt[t * q.og + o];                         \
    }                                                                                                        \
  }                                                                                                          \
  /* Pooling, plane by plane: each window's first maximum (row by row) or its mean; padded cells          \
     never win a maximum and count in the mean's divisor (PyTorch's count_include_pad). */                  \
  BPK_CLONES static void pool_##S(const T *restrict x, T *restrict y, const T *restrict dy, T *restrict dx, \
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
  /* max pooling without padding (the usual case): every window inside the image, no checks */             \
  BPK_CLONES static void max_unpadded_##S(const Geom *q, const T *restrict x, T *restrict y, const T *restrict dy, \
                                          T *restrict dx, int acc) {                                         \
    size_t planes = q->n * q->c, plane = q->h * q->w;                                                        \
    for (size_t p = 0; p < planes; p++)                                                                      \
      for (size_t oy = 0; oy < q->ho; oy++)                                                                  \
        for (size_t ox = 0; ox < q->wo; ox++) {                                                              \
          size_t first = p * plane + oy * q->sh * q->w + ox * q->sw, best = first;                           \
          T m = x[first];                                                                                    \
          for (size_t ky = 0; ky < q->kh; ky++)                                                              \
            for (size_t kx = 0; kx < q->kw; kx++) {                                                          \
              size_t i = first + ky * q->w + kx;                                                             \
              if (x[i] > m) { /* strictly: the first maximum keeps it */                                    \
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
  void bpk_maxpool2d_##S(const T *x, T *y, const size_t *g, int acc) {                                       \
    Geom q = geom_of(g);                                                                                     \
    if (q.ph == 0 && q.pw == 0)                                                                              \
      max_unpadded_##S(&q, x, y, NULL, NULL, acc);                                                           \
    else                                                                                                     \
      pool_##S(x, y, NULL, NULL, g, 0, acc);                                                                 \
  }                                                                                                          \
  void bpk_avgpool2d_##S(const T *x, T *y, const size_t *g, int acc) { pool_##S(x, y, NULL, NULL, g, 1, acc); } \
  void bpk_maxpool2d_dx_##S(const T *x, const T *dy, T *dx, const size_t *g, int acc) {                      \
    if (!acc) memset(dx, 0, sizeof(T) * g[BPK_N] * g[BPK_C] * g[BPK_H] * g[BPK_W]);                         \
    Geom q = geom_of(g);                                                                                     \
    if (q.ph == 0 && q.pw == 0)                                                                              \
      max_unpadded_##S(&q, x, NULL, dy, dx, 1);                                                              \
    else                                                                                                     \
      pool_##S(x, NULL, dy, dx, g, 0, 1);                                                                    \
  }                                                                                                          \
  void bpk_avgpool2d_dx_##S(const T *dy, T *dx, const size_t *g, int acc) {                                  \
    if (!acc) memset(dx, 0, sizeof(T) * g[BPK_N] * g[BPK_C] * g[BPK_H] * g[BPK_W]);                         \
    pool_##S(NULL, NULL, dy, dx, g, 2, 1);                                                                   \
  }

BPK_CONV(double, d)
BPK_CONV(float, f)

void bpk_conv_thread_done(void) {
  free(col_buf_d);
  free(col_buf_f);
  col_buf_d = NULL;
  col_buf_f = NULL;
  col_cap_d = col_cap_f = 0;
}
