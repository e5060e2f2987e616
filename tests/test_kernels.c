/* test_kernels.c — the convolution and pooling kernels of kernels.h (the
 * im2col + matrix-product versions the JIT calls) against the plainest
 * direct loops written here, in double, independently of the compiler.
 *
 * Each reference loops over the outputs it defines and gathers its terms
 * from the definition (the image gradient and the kernel gradient too, not
 * by scattering as the kernels do), and also returns, per element, the sum
 * of the terms' magnitudes: the error bound is relative to that sum, so an
 * output that cancels to near zero is held to the rounding its terms allow,
 * not to an arbitrary scale. The references are checked against each other
 * first (the adjoint identities) and against a convolution done by hand.
 *
 * Every kernel runs in double and float, storing (into a destination full of
 * NaN, which must not leak through) and adding (into random values), on a
 * table of geometries that covers each option and on random ones. Inputs are
 * rounded to float first, so both precisions see the same numbers and the
 * same maxima. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dense_check.h"
#include "kernels.h"

static size_t pick(uint64_t *s, size_t lo, size_t hi) { return lo + (size_t)(next(s) % (hi - lo + 1)); }

/* ---- geometry ---- */

typedef struct Geo {
  size_t g[BPK_GEOM];
  size_t ho, wo;     /* output size */
  size_t nx, nk, ny; /* element counts of the image, the kernel, the output */
} Geo;

/* PyTorch's output size; 0 when the window does not fit. */
static size_t out_len(size_t in, size_t k, size_t s, size_t p, size_t d) {
  size_t span = d * (k - 1) + 1;
  return in + 2 * p < span ? 0 : (in + 2 * p - span) / s + 1;
}

static Geo geo(const size_t g[BPK_GEOM]) {
  Geo q;
  memcpy(q.g, g, sizeof q.g);
  q.ho = out_len(g[BPK_H], g[BPK_KH], g[BPK_SH], g[BPK_PH], g[BPK_DH]);
  q.wo = out_len(g[BPK_W], g[BPK_KW], g[BPK_SW], g[BPK_PW], g[BPK_DW]);
  q.nx = g[BPK_N] * g[BPK_C] * g[BPK_H] * g[BPK_W];
  q.nk = g[BPK_O] * (g[BPK_C] / g[BPK_G]) * g[BPK_KH] * g[BPK_KW];
  q.ny = g[BPK_N] * g[BPK_O] * q.ho * q.wo;
  return q;
}

/* The pooling geometry that goes with a convolution's: the same window and
 * stride cut to the image, O = C, G = 1, no dilation, and padding at most
 * half the window (PyTorch's rule, which also keeps a real cell in every
 * window). */
static Geo pool_geo(const Geo *c) {
  size_t g[BPK_GEOM];
  memcpy(g, c->g, sizeof g);
  if (g[BPK_KH] > g[BPK_H]) g[BPK_KH] = g[BPK_H];
  if (g[BPK_KW] > g[BPK_W]) g[BPK_KW] = g[BPK_W];
  if (g[BPK_PH] > g[BPK_KH] / 2) g[BPK_PH] = g[BPK_KH] / 2;
  if (g[BPK_PW] > g[BPK_KW] / 2) g[BPK_PW] = g[BPK_KW] / 2;
  g[BPK_O] = g[BPK_C];
  g[BPK_G] = g[BPK_DH] = g[BPK_DW] = 1;
  return geo(g);
}

static void describe(const Geo *q, char *buf, size_t len) {
  const size_t *g = q->g;
  snprintf(buf, len, "n%zu c%zu %zux%zu o%zu k%zux%zu s%zux%zu p%zux%zu d%zux%zu g%zu", g[BPK_N], g[BPK_C],
           g[BPK_H], g[BPK_W], g[BPK_O], g[BPK_KH], g[BPK_KW], g[BPK_SH], g[BPK_SW], g[BPK_PH], g[BPK_PW],
           g[BPK_DH], g[BPK_DW], g[BPK_G]);
}

/* ---- the references: direct loops in double ---- */

/* The image row (or column) an output position's tap reads, or -1 in the padding. */
static long tap(size_t out, size_t k, size_t s, size_t p, size_t d, size_t in) {
  long i = (long)(out * s + k * d) - (long)p;
  return i >= 0 && i < (long)in ? i : -1;
}

/* The other way: the output position whose tap k reads image row (or column) i, or -1. */
static long tapped_by(size_t i, size_t k, size_t s, size_t p, size_t d, size_t out) {
  long at = (long)(i + p) - (long)(k * d); /* = out * s */
  return at >= 0 && at % (long)s == 0 && at / (long)s < (long)out ? at / (long)s : -1;
}

#define G_(f) (q->g[BPK_##f])
#define X_AT(n, c, i, j) (((n)*G_(C) + (c)) * G_(H) * G_(W) + (size_t)(i)*G_(W) + (size_t)(j))
#define Y_AT(n, o, i, j) ((((n)*G_(O) + (o)) * q->ho + (i)) * q->wo + (j))
#define K_AT(o, c, i, j) ((((o) * (G_(C) / G_(G)) + (c)) * G_(KH) + (i)) * G_(KW) + (j))

/* y[n, o, oy, ox] = sum over the group's channels and the window of x K */
static void ref_conv(const Geo *q, const double *x, const double *K, double *y, double *mag) {
  size_t cg = G_(C) / G_(G), og = G_(O) / G_(G);
  for (size_t n = 0; n < G_(N); n++)
    for (size_t o = 0; o < G_(O); o++)
      for (size_t oy = 0; oy < q->ho; oy++)
        for (size_t ox = 0; ox < q->wo; ox++) {
          double s = 0, m = 0;
          for (size_t ci = 0; ci < cg; ci++)
            for (size_t ky = 0; ky < G_(KH); ky++)
              for (size_t kx = 0; kx < G_(KW); kx++) {
                long iy = tap(oy, ky, G_(SH), G_(PH), G_(DH), G_(H)),
                     ix = tap(ox, kx, G_(SW), G_(PW), G_(DW), G_(W));
                if (iy < 0 || ix < 0) continue;
                double t = x[X_AT(n, o / og * cg + ci, iy, ix)] * K[K_AT(o, ci, ky, kx)];
                s += t;
                m += fabs(t);
              }
          y[Y_AT(n, o, oy, ox)] = s;
          mag[Y_AT(n, o, oy, ox)] = m;
        }
}

/* dx[n, c, iy, ix] = sum of dy K over every (output, tap) that read pixel (iy, ix) */
static void ref_conv_dx(const Geo *q, const double *dy, const double *K, double *dx, double *mag) {
  size_t cg = G_(C) / G_(G), og = G_(O) / G_(G);
  for (size_t n = 0; n < G_(N); n++)
    for (size_t c = 0; c < G_(C); c++)
      for (size_t iy = 0; iy < G_(H); iy++)
        for (size_t ix = 0; ix < G_(W); ix++) {
          double s = 0, m = 0;
          for (size_t oo = 0; oo < og; oo++) {
            size_t o = c / cg * og + oo;
            for (size_t ky = 0; ky < G_(KH); ky++)
              for (size_t kx = 0; kx < G_(KW); kx++) {
                long oy = tapped_by(iy, ky, G_(SH), G_(PH), G_(DH), q->ho),
                     ox = tapped_by(ix, kx, G_(SW), G_(PW), G_(DW), q->wo);
                if (oy < 0 || ox < 0) continue;
                double t = dy[Y_AT(n, o, (size_t)oy, (size_t)ox)] * K[K_AT(o, c % cg, ky, kx)];
                s += t;
                m += fabs(t);
              }
          }
          dx[X_AT(n, c, iy, ix)] = s;
          mag[X_AT(n, c, iy, ix)] = m;
        }
}

/* dK[o, ci, ky, kx] = sum over the images and outputs of x at the tap times dy */
static void ref_conv_dk(const Geo *q, const double *x, const double *dy, double *dK, double *mag) {
  size_t cg = G_(C) / G_(G), og = G_(O) / G_(G);
  for (size_t o = 0; o < G_(O); o++)
    for (size_t ci = 0; ci < cg; ci++)
      for (size_t ky = 0; ky < G_(KH); ky++)
        for (size_t kx = 0; kx < G_(KW); kx++) {
          double s = 0, m = 0;
          for (size_t n = 0; n < G_(N); n++)
            for (size_t oy = 0; oy < q->ho; oy++)
              for (size_t ox = 0; ox < q->wo; ox++) {
                long iy = tap(oy, ky, G_(SH), G_(PH), G_(DH), G_(H)),
                     ix = tap(ox, kx, G_(SW), G_(PW), G_(DW), G_(W));
                if (iy < 0 || ix < 0) continue;
                double t = x[X_AT(n, o / og * cg + ci, iy, ix)] * dy[Y_AT(n, o, oy, ox)];
                s += t;
                m += fabs(t);
              }
          dK[K_AT(o, ci, ky, kx)] = s;
          mag[K_AT(o, ci, ky, kx)] = m;
        }
}

/* The index in x of window (n, c, oy, ox)'s first maximum, row by row; padding never wins. */
static size_t ref_argmax(const Geo *q, const double *x, size_t n, size_t c, size_t oy, size_t ox) {
  size_t best = (size_t)-1;
  for (size_t ky = 0; ky < G_(KH); ky++)
    for (size_t kx = 0; kx < G_(KW); kx++) {
      long iy = tap(oy, ky, G_(SH), G_(PH), 1, G_(H)), ix = tap(ox, kx, G_(SW), G_(PW), 1, G_(W));
      if (iy < 0 || ix < 0) continue;
      size_t i = X_AT(n, c, iy, ix);
      if (best == (size_t)-1 || x[i] > x[best]) best = i;
    }
  return best;
}

static void ref_maxpool(const Geo *q, const double *x, const double *unused, double *y, double *mag) {
  (void)unused;
  for (size_t n = 0; n < G_(N); n++)
    for (size_t c = 0; c < G_(C); c++)
      for (size_t oy = 0; oy < q->ho; oy++)
        for (size_t ox = 0; ox < q->wo; ox++) {
          size_t at = Y_AT(n, c, oy, ox);
          y[at] = x[ref_argmax(q, x, n, c, oy, ox)];
          mag[at] = fabs(y[at]);
        }
}

/* dx[pixel] = sum of dy over the windows whose first maximum is that pixel */
static void ref_maxpool_dx(const Geo *q, const double *x, const double *dy, double *dx, double *mag) {
  for (size_t n = 0; n < G_(N); n++)
    for (size_t c = 0; c < G_(C); c++)
      for (size_t iy = 0; iy < G_(H); iy++)
        for (size_t ix = 0; ix < G_(W); ix++) {
          size_t at = X_AT(n, c, iy, ix);
          double s = 0, m = 0;
          for (size_t ky = 0; ky < G_(KH); ky++) /* the windows that hold the pixel */
            for (size_t kx = 0; kx < G_(KW); kx++) {
              long oy = tapped_by(iy, ky, G_(SH), G_(PH), 1, q->ho),
                   ox = tapped_by(ix, kx, G_(SW), G_(PW), 1, q->wo);
              if (oy < 0 || ox < 0 || ref_argmax(q, x, n, c, (size_t)oy, (size_t)ox) != at) continue;
              s += dy[Y_AT(n, c, (size_t)oy, (size_t)ox)];
              m += fabs(dy[Y_AT(n, c, (size_t)oy, (size_t)ox)]);
            }
          dx[at] = s;
          mag[at] = m;
        }
}

/* the mean over kh * kw cells, the padded ones counting as zeros */
static void ref_avgpool(const Geo *q, const double *x, const double *unused, double *y, double *mag) {
  (void)unused;
  for (size_t n = 0; n < G_(N); n++)
    for (size_t c = 0; c < G_(C); c++)
      for (size_t oy = 0; oy < q->ho; oy++)
        for (size_t ox = 0; ox < q->wo; ox++) {
          double s = 0, m = 0;
          for (size_t ky = 0; ky < G_(KH); ky++)
            for (size_t kx = 0; kx < G_(KW); kx++) {
              long iy = tap(oy, ky, G_(SH), G_(PH), 1, G_(H)), ix = tap(ox, kx, G_(SW), G_(PW), 1, G_(W));
              if (iy < 0 || ix < 0) continue;
              s += x[X_AT(n, c, iy, ix)];
              m += fabs(x[X_AT(n, c, iy, ix)]);
            }
          y[Y_AT(n, c, oy, ox)] = s / (double)(G_(KH) * G_(KW));
          mag[Y_AT(n, c, oy, ox)] = m / (double)(G_(KH) * G_(KW));
        }
}

/* dx[pixel] = sum of dy / (kh kw) over the windows that hold the pixel */
static void ref_avgpool_dx(const Geo *q, const double *dy, const double *unused, double *dx, double *mag) {
  (void)unused;
  for (size_t n = 0; n < G_(N); n++)
    for (size_t c = 0; c < G_(C); c++)
      for (size_t iy = 0; iy < G_(H); iy++)
        for (size_t ix = 0; ix < G_(W); ix++) {
          double s = 0, m = 0;
          for (size_t ky = 0; ky < G_(KH); ky++)
            for (size_t kx = 0; kx < G_(KW); kx++) {
              long oy = tapped_by(iy, ky, G_(SH), G_(PH), 1, q->ho),
                   ox = tapped_by(ix, kx, G_(SW), G_(PW), 1, q->wo);
              if (oy < 0 || ox < 0) continue;
              s += dy[Y_AT(n, c, (size_t)oy, (size_t)ox)];
              m += fabs(dy[Y_AT(n, c, (size_t)oy, (size_t)ox)]);
            }
          dx[X_AT(n, c, iy, ix)] = s / (double)(G_(KH) * G_(KW));
          mag[X_AT(n, c, iy, ix)] = m / (double)(G_(KH) * G_(KW));
        }
}

/* ---- the kernels, behind one signature ---- */

typedef void (*RunD)(const double *a, const double *b, double *out, const size_t *g, int acc);
typedef void (*RunF)(const float *a, const float *b, float *out, const size_t *g, int acc);

#define ONE_INPUT(name, S, T)                                                                                \
  static void run_##name##_##S(const T *a, const T *b, T *out, const size_t *g, int acc) {                   \
    (void)b;                                                                                                 \
    bpk_##name##_##S(a, out, g, acc);                                                                        \
  }
ONE_INPUT(maxpool2d, d, double)
ONE_INPUT(maxpool2d, f, float)
ONE_INPUT(avgpool2d, d, double)
ONE_INPUT(avgpool2d, f, float)
ONE_INPUT(avgpool2d_dx, d, double)
ONE_INPUT(avgpool2d_dx, f, float)

typedef enum { SZ_X, SZ_K, SZ_Y, SZ_NONE } Size;

typedef struct Kernel {
  const char *name;
  int pool;       /* reads the pooling geometry */
  Size a, b, out; /* what its inputs and output are */
  void (*ref)(const Geo *, const double *, const double *, double *, double *);
  RunD run_d;
  RunF run_f;
} Kernel;

static const Kernel kernels[] = {
    {"conv2d", 0, SZ_X, SZ_K, SZ_Y, ref_conv, bpk_conv2d_d, bpk_conv2d_f},
    {"conv2d_dx", 0, SZ_Y, SZ_K, SZ_X, ref_conv_dx, bpk_conv2d_dx_d, bpk_conv2d_dx_f},
    {"conv2d_dk", 0, SZ_X, SZ_Y, SZ_K, ref_conv_dk, bpk_conv2d_dk_d, bpk_conv2d_dk_f},
    {"maxpool2d", 1, SZ_X, SZ_NONE, SZ_Y, ref_maxpool, run_maxpool2d_d, run_maxpool2d_f},
    {"maxpool2d_dx", 1, SZ_X, SZ_Y, SZ_X, ref_maxpool_dx, bpk_maxpool2d_dx_d, bpk_maxpool2d_dx_f},
    {"avgpool2d", 1, SZ_X, SZ_NONE, SZ_Y, ref_avgpool, run_avgpool2d_d, run_avgpool2d_f},
    {"avgpool2d_dx", 1, SZ_Y, SZ_NONE, SZ_X, ref_avgpool_dx, run_avgpool2d_dx_d, run_avgpool2d_dx_f},
};
enum { KCONV, KCONV_DX, KCONV_DK, KMAX, KMAX_DX, KAVG, KAVG_DX, NKERNELS };

static size_t size_of(const Geo *q, Size s) {
  return s == SZ_X ? q->nx : s == SZ_K ? q->nk : s == SZ_Y ? q->ny : 0;
}

/* ---- comparing ---- */

/* Runs kernel k on a, b (doubles; float copies for _f) into out, starting from start. */
static void run(const Kernel *k, const Geo *q, const double *a, const double *b, double *out, int use_float,
                int acc) {
  size_t na = size_of(q, k->a), nb = size_of(q, k->b), no = size_of(q, k->out);
  if (!use_float) {
    k->run_d(a, b, out, q->g, acc);
    return;
  }
  float *fa = malloc(sizeof(float) * (na + 1)), *fb = malloc(sizeof(float) * (nb + 1)),
        *fo = malloc(sizeof(float) * (no + 1));
  for (size_t i = 0; i < na; i++)
    fa[i] = (float)a[i];
  for (size_t i = 0; i < nb; i++)
    fb[i] = (float)b[i];
  for (size_t i = 0; i < no; i++)
    fo[i] = (float)out[i];
  k->run_f(fa, fb, fo, q->g, acc);
  for (size_t i = 0; i < no; i++)
    out[i] = fo[i];
  free(fa);
  free(fb);
  free(fo);
}

/* Kernel k on the geometry against its reference: double and float, storing and adding. */
static void check_kernel(const Kernel *k, const Geo *conv, uint64_t *rng) {
  Geo pq = pool_geo(conv);
  const Geo *q = k->pool ? &pq : conv;
  size_t no = size_of(q, k->out);
  double *a = random_array(size_of(q, k->a), rng), *b = random_array(size_of(q, k->b), rng);
  double *want = malloc(sizeof(double) * (no + 1)), *mag = malloc(sizeof(double) * (no + 1));
  double *got = malloc(sizeof(double) * (no + 1));
  k->ref(q, a, b, want, mag);
  for (int use_float = 0; use_float < 2; use_float++)
    for (int acc = 0; acc < 2; acc++) {
      double *start = random_array(no, rng);
      for (size_t i = 0; i < no; i++)
        got[i] = acc ? start[i] : NAN; /* storing must not read the destination */
      run(k, q, a, b, got, use_float, acc);
      double tol = use_float ? 1e-4 : 1e-12;
      for (size_t i = 0; i < no; i++) {
        double expect = want[i] + (acc ? start[i] : 0), bound = tol * (mag[i] + (acc ? fabs(start[i]) : 0));
        if (!(fabs(got[i] - expect) <= bound)) { /* NaN fails too */
          char d[160];
          describe(q, d, sizeof d);
          fail_msg("%s_%s (%s) at %zu: %.17g, want %.17g (bound %.3g); %s", k->name, use_float ? "f" : "d",
                   acc ? "adding" : "storing", i, got[i], expect, bound, d);
        }
      }
      free(start);
      compared++;
    }
  free(a);
  free(b);
  free(want);
  free(mag);
  free(got);
}

/* ---- the geometries ---- */

#define GEO(n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, g)                                                \
  { n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, g }
static const size_t fixed[][BPK_GEOM] = {
    /*  n  c   h   w   o kh kw sh sw ph pw dh dw g */
    GEO(1, 1, 3, 3, 1, 2, 2, 1, 1, 0, 0, 1, 1, 1),     /* the smallest real case */
    GEO(3, 3, 7, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1),     /* odd sizes, padding, N = 3 */
    GEO(2, 2, 9, 8, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1),     /* stride 2 */
    GEO(1, 2, 11, 10, 3, 3, 2, 3, 3, 0, 1, 1, 1, 1),   /* stride 3, rectangular kernel */
    GEO(2, 3, 10, 9, 2, 3, 3, 1, 1, 2, 2, 2, 2, 1),    /* dilation 2 */
    GEO(1, 2, 12, 11, 3, 2, 3, 2, 3, 1, 2, 2, 1, 1),   /* dilation and stride in one, each axis its own */
    GEO(2, 4, 6, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2),     /* groups 2 */
    GEO(1, 8, 5, 7, 8, 3, 3, 1, 1, 1, 1, 1, 1, 4),     /* groups 4 */
    GEO(3, 4, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 4),     /* depthwise: G = C */
    GEO(2, 3, 6, 5, 6, 3, 3, 2, 1, 1, 0, 1, 1, 3),     /* depthwise with two outputs per channel */
    GEO(3, 3, 6, 5, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1),     /* 1x1: the image is its own column matrix */
    GEO(2, 4, 6, 6, 4, 1, 1, 1, 1, 0, 0, 1, 1, 2),     /* 1x1 in groups */
    GEO(1, 3, 7, 6, 2, 1, 1, 2, 2, 1, 1, 1, 1, 1),     /* 1x1 with stride and padding */
    GEO(1, 2, 3, 4, 3, 5, 6, 1, 1, 1, 1, 1, 1, 1),     /* a kernel as big as the padded image */
    GEO(2, 1, 4, 3, 2, 4, 3, 1, 1, 0, 0, 1, 1, 1),     /* a kernel as big as the image, no padding */
    GEO(1, 1, 1, 9, 2, 1, 3, 1, 2, 0, 1, 1, 2, 1),     /* one row: conv1d's form */
    GEO(1, 2, 13, 4, 3, 2, 4, 1, 1, 0, 0, 1, 1, 1),    /* tall image, wide kernel */
    GEO(1, 3, 19, 21, 5, 5, 5, 1, 1, 2, 2, 1, 1, 1),   /* rows longer than a vector, not a multiple of it */
    GEO(3, 1, 28, 28, 16, 5, 5, 1, 1, 2, 2, 1, 1, 1),  /* the Fashion CNN's first layer */
    GEO(2, 16, 14, 14, 32, 5, 5, 1, 1, 2, 2, 1, 1, 1), /* and its second */
    GEO(2, 3, 28, 12, 2, 2, 2, 2, 2, 0, 0, 1, 1,
        1), /* 2x2 windows, stride 2: the usual pooling, tiling the image */
    GEO(1, 2, 7, 9, 2, 2, 2, 2, 2, 0, 0, 1, 1,
        1), /* the same on odd sizes: a row and a column in no window */
};
enum { NFIXED = sizeof fixed / sizeof fixed[0] };
enum { NROW_LENGTHS = 18, NPOOL_WIDTHS = 68 };

/* Small random geometries from a fixed seed; each window fits its image. */
static Geo random_geo(uint64_t *rng) {
  for (;;) {
    size_t g[BPK_GEOM];
    g[BPK_G] = pick(rng, 1, 3);
    g[BPK_C] = g[BPK_G] * pick(rng, 1, 3);
    g[BPK_O] = g[BPK_G] * pick(rng, 1, 3);
    g[BPK_N] = pick(rng, 1, 3);
    g[BPK_H] = pick(rng, 1, 11);
    g[BPK_W] = pick(rng, 1, 11);
    g[BPK_KH] = pick(rng, 1, 4);
    g[BPK_KW] = pick(rng, 1, 4);
    g[BPK_SH] = pick(rng, 1, 3);
    g[BPK_SW] = pick(rng, 1, 3);
    g[BPK_PH] = pick(rng, 0, 2);
    g[BPK_PW] = pick(rng, 0, 2);
    g[BPK_DH] = pick(rng, 1, 2);
    g[BPK_DW] = pick(rng, 1, 2);
    Geo q = geo(g);
    if (q.ho > 0 && q.wo > 0) return q;
  }
}

static void check_all_geometries(int kernel) {
  uint64_t rng = 0x5eed + (uint64_t)kernel;
  compared = 0;
  for (size_t i = 0; i < NFIXED; i++) {
    Geo q = geo(fixed[i]);
    assert_true(q.ho > 0 && q.wo > 0);
    check_kernel(&kernels[kernel], &q, &rng);
  }
  uint64_t shapes = 2026; /* the same random geometries for every kernel */
  for (int i = 0; i < 20; i++) {
    Geo q = random_geo(&shapes);
    check_kernel(&kernels[kernel], &q, &rng);
  }
  /* stride 1, rows of every length from 1 to past two vectors of floats: conv.c copies and adds a row
     of L to 2L values (L a vector) as two vectors, shorter and longer rows otherwise */
  for (size_t w = 1; w <= NROW_LENGTHS; w++) {
    const size_t g[BPK_GEOM] = GEO(1, 2, 3, w, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1);
    Geo q = geo(g);
    check_kernel(&kernels[kernel], &q, &rng);
  }
  /* 2x2 windows, stride 2, on rows of 1 to past four vectors of floats' windows, tiling the image or
     with a column left over: conv.c pools a row in chunks of a vector's lanes, the last one short */
  for (size_t w = 2; w < 2 + NPOOL_WIDTHS; w++) {
    const size_t g[BPK_GEOM] = GEO(2, 2, 4 + w % 2, w, 2, 2, 2, 2, 2, 0, 0, 1, 1, 1);
    Geo q = geo(g);
    check_kernel(&kernels[kernel], &q, &rng);
  }
  assert_int_equal(compared, 4 * (NFIXED + 20 + NROW_LENGTHS + NPOOL_WIDTHS));
}

static void test_conv2d(void **state) {
  (void)state;
  check_all_geometries(KCONV);
}
static void test_conv2d_dx(void **state) {
  (void)state;
  check_all_geometries(KCONV_DX);
}
static void test_conv2d_dk(void **state) {
  (void)state;
  check_all_geometries(KCONV_DK);
}
static void test_maxpool2d(void **state) {
  (void)state;
  check_all_geometries(KMAX);
}
static void test_maxpool2d_dx(void **state) {
  (void)state;
  check_all_geometries(KMAX_DX);
}
static void test_avgpool2d(void **state) {
  (void)state;
  check_all_geometries(KAVG);
}
static void test_avgpool2d_dx(void **state) {
  (void)state;
  check_all_geometries(KAVG_DX);
}

/* ---- the references themselves ---- */

static double dot(const double *a, const double *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

/* The three convolution references are one bilinear form read three ways,
 * <conv(x, K), dy> = <x, conv_dx(dy, K)> = <K, conv_dk(x, dy)>, and average
 * pooling is likewise the adjoint of its gradient: a wrong index in any one
 * of them breaks an equality. */
static void test_references_are_adjoint(void **state) {
  (void)state;
  uint64_t rng = 7, shapes = 2026;
  for (size_t i = 0; i < NFIXED + 20; i++) {
    Geo q = i < NFIXED ? geo(fixed[i]) : random_geo(&shapes), p = pool_geo(&q);
    double *x = random_array(q.nx, &rng), *K = random_array(q.nk, &rng), *dy = random_array(q.ny, &rng);
    double *y = malloc(sizeof(double) * (q.ny + 1)), *dx = malloc(sizeof(double) * (q.nx + 1));
    double *dK = malloc(sizeof(double) * (q.nk + 1));
    double *mag = malloc(sizeof(double) * (q.nx + q.ny + q.nk + 1));
    double *py = malloc(sizeof(double) * (p.ny + 1)), *pdy = random_array(p.ny, &rng),
           *pmag = malloc(sizeof(double) * (p.nx + p.ny + 1));
    ref_conv(&q, x, K, y, mag);
    ref_conv_dx(&q, dy, K, dx, mag);
    ref_conv_dk(&q, x, dy, dK, mag);
    double s1 = dot(y, dy, q.ny), s2 = dot(x, dx, q.nx), s3 = dot(K, dK, q.nk);
    assert_true(fabs(s1 - s2) <= 1e-12 * (1 + fabs(s1)));
    assert_true(fabs(s1 - s3) <= 1e-12 * (1 + fabs(s1)));
    ref_avgpool(&p, x, NULL, py, pmag);
    ref_avgpool_dx(&p, pdy, NULL, dx, pmag); /* p.nx == q.nx: the same image */
    double a1 = dot(py, pdy, p.ny), a2 = dot(x, dx, p.nx);
    assert_true(fabs(a1 - a2) <= 1e-12 * (1 + fabs(a1)));
    free(x);
    free(K);
    free(dy);
    free(y);
    free(dx);
    free(dK);
    free(mag);
    free(py);
    free(pdy);
    free(pmag);
  }
}

/* A convolution worked by hand: the 3x3 image 1..9, the 2x2 kernel
 * [[1, 0], [0, -1]], stride 1, padding 1: each output is the top-left cell
 * of its window minus the bottom-right one, zeros outside. */
static void test_conv2d_by_hand(void **state) {
  (void)state;
  const size_t g[BPK_GEOM] = {1, 1, 3, 3, 1, 2, 2, 1, 1, 1, 1, 1, 1, 1};
  const double x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, K[4] = {1, 0, 0, -1};
  const double want[16] = {-1, -2, -3, 0, -4, -4, -4, 3, -7, -4, -4, 6, 0, 7, 8, 9};
  double y[16], mag[16];
  Geo q = geo(g);
  assert_int_equal(q.ho, 4);
  assert_int_equal(q.wo, 4);
  ref_conv(&q, x, K, y, mag);
  assert_memory_equal(y, want, sizeof y);
  bpk_conv2d_d(x, K, y, g, 0);
  assert_memory_equal(y, want, sizeof y);
  float xf[9], Kf[4], yf[16];
  for (int i = 0; i < 9; i++)
    xf[i] = (float)x[i];
  for (int i = 0; i < 4; i++)
    Kf[i] = (float)K[i];
  bpk_conv2d_f(xf, Kf, yf, g, 0);
  for (int i = 0; i < 16; i++)
    assert_true(yf[i] == (float)want[i]);
}

/* ---- pooling's special cases ---- */

/* Ties: each window's gradient goes to its first maximum in row-major
 * order, and overlapping windows add up on a shared winner. */
static void test_maxpool_gradient_goes_to_the_first_maximum(void **state) {
  (void)state;
  { /* 2x2 windows, stride 2: [1 3 | 3 2] over [3 0 | 1 3]: the winners are (0,1) and (0,2) */
    const size_t g[BPK_GEOM] = {1, 1, 2, 4, 1, 2, 2, 2, 2, 0, 0, 1, 1, 1};
    const double x[8] = {1, 3, 3, 2, 3, 0, 1, 3}, dy[2] = {10, 20};
    const double want_y[2] = {3, 3}, want_dx[8] = {0, 10, 20, 0, 0, 0, 0, 0};
    double y[2], dx[8];
    bpk_maxpool2d_d(x, y, g, 0);
    bpk_maxpool2d_dx_d(x, dy, dx, g, 0);
    assert_memory_equal(y, want_y, sizeof y);
    assert_memory_equal(dx, want_dx, sizeof dx);
    float xf[8], dyf[2] = {10, 20}, dxf[8];
    for (int i = 0; i < 8; i++)
      xf[i] = (float)x[i];
    bpk_maxpool2d_dx_f(xf, dyf, dxf, g, 0);
    for (int i = 0; i < 8; i++)
      assert_true(dxf[i] == (float)want_dx[i]);
  }
  { /* an infinite gradient reaches its winner only: the losers get 0, not inf * 0 (NaN) */
    const size_t g[BPK_GEOM] = {1, 1, 2, 4, 1, 2, 2, 2, 2, 0, 0, 1, 1, 1};
    const float x[8] = {1, 3, 3, 2, 3, 0, 1, 3}, dy[2] = {INFINITY, -INFINITY};
    const float want_dx[8] = {0, INFINITY, -INFINITY, 0, 0, 0, 0, 0};
    float dx[8];
    bpk_maxpool2d_dx_f(x, dy, dx, g, 0);
    assert_memory_equal(dx, want_dx, sizeof dx);
  }
  { /* a constant 3x3 image, 2x2 windows, stride 1: each window's top-left cell wins */
    const size_t g[BPK_GEOM] = {1, 1, 3, 3, 1, 2, 2, 1, 1, 0, 0, 1, 1, 1};
    const double x[9] = {5, 5, 5, 5, 5, 5, 5, 5, 5}, dy[4] = {1, 2, 3, 4};
    const double want_dx[9] = {1, 2, 0, 3, 4, 0, 0, 0, 0};
    double dx[9];
    bpk_maxpool2d_dx_d(x, dy, dx, g, 0);
    assert_memory_equal(dx, want_dx, sizeof dx);
  }
  { /* the same with padding 1: a window's first real cell wins, and the windows
       sharing a winner add up: the top-left cell is the first real cell of four */
    const size_t g[BPK_GEOM] = {1, 1, 3, 3, 1, 2, 2, 1, 1, 1, 1, 1, 1, 1};
    const double x[9] = {5, 5, 5, 5, 5, 5, 5, 5, 5};
    double dy[16], dx[9];
    for (int i = 0; i < 16; i++)
      dy[i] = (double)(1 << i % 8) * (i < 8 ? 1 : 256); /* each window's own bit */
    bpk_maxpool2d_dx_d(x, dy, dx, g, 0);
    /* window (oy, ox) covers rows oy-1..oy, columns ox-1..ox; its first real cell is (max(oy-1,0),
     * max(ox-1,0)) */
    double want[9] = {0};
    for (int oy = 0; oy < 4; oy++)
      for (int ox = 0; ox < 4; ox++) {
        int r = oy - 1 < 0 ? 0 : oy - 1, c = ox - 1 < 0 ? 0 : ox - 1;
        if (r < 3 && c < 3) want[r * 3 + c] += dy[oy * 4 + ox];
      }
    assert_true(want[0] == dy[0] + dy[1] + dy[4] + dy[5]); /* the sums are exact: distinct powers of two */
    assert_memory_equal(dx, want, sizeof dx);
  }
}

/* Padded cells never win a maximum, even over negative values, and count in
 * the average's divisor (PyTorch's count_include_pad). */
static void test_pool_padding(void **state) {
  (void)state;
  const size_t g[BPK_GEOM] = {1, 1, 2, 2, 1, 2, 2, 2, 2, 1, 1, 1, 1, 1};
  const double x[4] = {-1, -2, -3, -4};
  const double want_max[4] = {-1, -2, -3, -4}, want_avg[4] = {-0.25, -0.5, -0.75, -1};
  double y[4];
  bpk_maxpool2d_d(x, y, g, 0);
  assert_memory_equal(y, want_max, sizeof y);
  bpk_avgpool2d_d(x, y, g, 0);
  assert_memory_equal(y, want_avg, sizeof y);
  const double dy[4] = {4, 8, 12, 16}, want_dx[4] = {1, 2, 3, 4};
  double dx[4];
  bpk_avgpool2d_dx_d(dy, dx, g, 0);
  assert_memory_equal(dx, want_dx, sizeof dx);
  float xf[4] = {-1, -2, -3, -4}, yf[4];
  bpk_maxpool2d_f(xf, yf, g, 0);
  for (int i = 0; i < 4; i++)
    assert_true(yf[i] == (float)want_max[i]);
}

/* ---- the dense kernels, every path this CPU has ---- */

/* The paths this CPU has: each one is checked. */
static int usable_paths(void) {
  int n = 0;
  for (int p = 0; p < BPK_PATHS; p++)
    n += bpk_dense_f(p) != NULL && bpk_dense_d(p) != NULL;
  return n;
}

/* The generic path is always there, the widest usable one is what the
 * kernels.h functions take, and on x86-64 a CPU with AVX2 and FMA (every
 * x86-64 this project is measured on) has the AVX2 path: the tests then
 * check at least two paths. Says which paths this run checks (the AVX-512
 * one only where the CPU has it; test_kernel_widths.c checks its code at
 * its width everywhere, in generic instructions). */
static void test_paths(void **state) {
  (void)state;
  assert_non_null(bpk_dense_f(BPK_PATH_GENERIC));
  assert_non_null(bpk_dense_d(BPK_PATH_GENERIC));
  assert_non_null(bpk_dense_f(bpk_path()));
  for (int p = bpk_path() + 1; p < BPK_PATHS; p++)
    assert_null(bpk_dense_f(p));
  assert_null(bpk_dense_f(BPK_PATHS));
  assert_null(bpk_dense_f(-1));
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    assert_non_null(bpk_dense_f(BPK_PATH_AVX2));
#endif
  char names[64] = "";
  for (int p = 0; p < BPK_PATHS; p++)
    if (bpk_dense_f(p))
      snprintf(names + strlen(names), sizeof names - strlen(names), " %s", bpk_path_names[p]);
  print_message("kernel paths checked on this CPU:%s\n", names);
}

static void test_vector_kernels(void **state) {
  (void)state;
  int checked = 0;
  for (int p = 0; p < BPK_PATHS; p++)
    if (bpk_dense_d(p)) checked += check_vector_kernels(bpk_dense_d(p), bpk_dense_f(p), bpk_path_names[p]);
  assert_int_equal(checked, usable_paths() * VECTOR_CHECKS);
}

static void test_mm(void **state) {
  (void)state;
  int first = -1, paths = 0;
  for (int p = 0; p < BPK_PATHS; p++) {
    if (!bpk_dense_d(p)) continue;
    int runs = check_mm_sweep(bpk_dense_d(p), bpk_dense_f(p), bpk_path_names[p]);
    if (first < 0) first = runs;
    assert_int_equal(runs, first); /* every path the whole sweep */
    paths++;
  }
  assert_int_equal(paths, usable_paths());
  assert_true(first > 0);
}

/* mm_ksplit on every path: the parts' partial products summed are the product. */
static void test_mm_ksplit(void **state) {
  (void)state;
  int paths = 0;
  for (int p = 0; p < BPK_PATHS; p++)
    if (bpk_dense_d(p)) paths += check_mm_ksplit_sweep(bpk_dense_d(p), bpk_dense_f(p), bpk_path_names[p]) > 0;
  assert_true(paths >= 2);
}

/* mm_part on every path: the parts together are the product. */
static void test_mm_part(void **state) {
  (void)state;
  int paths = 0;
  for (int p = 0; p < BPK_PATHS; p++)
    if (bpk_dense_d(p)) paths += check_mm_part_sweep(bpk_dense_d(p), bpk_dense_f(p), bpk_path_names[p]) > 0;
  assert_int_equal(paths, usable_paths());
}

/* y += x, every length from 0 to past two vectors of doubles and floats:
 * the vector body and the scalar tail; nothing written past n. */
static void test_add(void **state) {
  (void)state;
  for (size_t n = 0; n <= 37; n++) {
    double yd[40], xd[40];
    float yf[40], xf[40];
    for (size_t i = 0; i < 40; i++) {
      yd[i] = (double)i, xd[i] = 0.5 * (double)(i + 1);
      yf[i] = (float)i, xf[i] = 0.25f * (float)(i + 1);
    }
    bpk_add_d(yd, xd, n);
    bpk_add_f(yf, xf, n);
    for (size_t i = 0; i < 40; i++) {
      assert_true(yd[i] == (i < n ? (double)i + 0.5 * (double)(i + 1) : (double)i));
      assert_true(yf[i] == (i < n ? (float)i + 0.25f * (float)(i + 1) : (float)i));
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_references_are_adjoint),
      cmocka_unit_test(test_conv2d_by_hand),
      cmocka_unit_test(test_conv2d),
      cmocka_unit_test(test_conv2d_dx),
      cmocka_unit_test(test_conv2d_dk),
      cmocka_unit_test(test_maxpool2d),
      cmocka_unit_test(test_maxpool2d_dx),
      cmocka_unit_test(test_avgpool2d),
      cmocka_unit_test(test_avgpool2d_dx),
      cmocka_unit_test(test_maxpool_gradient_goes_to_the_first_maximum),
      cmocka_unit_test(test_pool_padding),
      cmocka_unit_test(test_paths),
      cmocka_unit_test(test_vector_kernels),
      cmocka_unit_test(test_mm),
      cmocka_unit_test(test_mm_part),
      cmocka_unit_test(test_mm_ksplit),
      cmocka_unit_test(test_add),
  };
  return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
