/* test_window_kernels.c — the convolution and pooling kernels the JIT calls
 * (runtime/conv.c: im2col and the matrix-product kernel) against the
 * direct loops of compiler/window.c (the interpreter's, which the autodiff
 * tests check against finite differences), on fixed geometries that cover
 * each option and on random ones: double and float, storing and adding. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"
#include "kernels.h"

typedef struct Geo {
  int64_t n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, g;
} Geo;

static Shape shape4(int64_t a, int64_t b, int64_t c, int64_t d) { return (Shape){4, {a, b, c, d}}; }

static int64_t out_len(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) { return window_out_size(in, k, s, p, d); }

/* The nodes of one geometry: x, K, y = op(x, K) and the adjoints' shapes. */
typedef struct Nodes {
  Node x, K, y, dy, dx, dk, pool, pool_dx, avg, avg_dx;
  Node *args[10][2];
} Nodes;

static void make_node(Node *n, Op op, Shape s, Node *a, Node *b, Attr attr, Node **slots) {
  memset(n, 0, sizeof *n);
  n->op = op;
  n->shape = s;
  slots[0] = a;
  slots[1] = b;
  n->args = slots;
  n->nargs = b ? 2 : a ? 1 : 0;
  n->attr = attr;
}

static void build(Nodes *N, const Geo *q) {
  int64_t ho = out_len(q->h, q->kh, q->sh, q->ph, q->dh), wo = out_len(q->w, q->kw, q->sw, q->pw, q->dw);
  Attr at = NO_ATTR;
  at.win.size[0] = q->kh;
  at.win.size[1] = q->kw;
  at.win.step[0] = q->sh;
  at.win.step[1] = q->sw;
  at.win.pad[0] = q->ph;
  at.win.pad[1] = q->pw;
  at.win.dilation[0] = q->dh;
  at.win.dilation[1] = q->dw;
  at.win.groups = q->g;
  Shape xs = shape4(q->n, q->c, q->h, q->w), ys = shape4(q->n, q->o, ho, wo);
  make_node(&N->x, OP_INPUT, xs, NULL, NULL, NO_ATTR, N->args[0]);
  make_node(&N->K, OP_PARAM, shape4(q->o, q->c / q->g, q->kh, q->kw), NULL, NULL, NO_ATTR, N->args[1]);
  make_node(&N->y, OP_CONV2D, ys, &N->x, &N->K, at, N->args[2]);
  make_node(&N->dy, OP_INPUT, ys, NULL, NULL, NO_ATTR, N->args[3]);
  make_node(&N->dx, OP_CONV2D_DX, xs, &N->dy, &N->K, at, N->args[4]);
  make_node(&N->dk, OP_CONV2D_DK, N->K.shape, &N->x, &N->dy, at, N->args[5]);
  /* pooling: the same window and stride, no dilation, groups or padding beyond the window */
  Attr pa = at;
  pa.win.dilation[0] = pa.win.dilation[1] = pa.win.groups = 1;
  pa.win.pad[0] = q->ph < q->kh ? q->ph : 0; /* a window of padding alone has no maximum */
  pa.win.pad[1] = q->pw < q->kw ? q->pw : 0;
  int64_t ph = out_len(q->h, q->kh, q->sh, pa.win.pad[0], 1), pw = out_len(q->w, q->kw, q->sw, pa.win.pad[1], 1);
  Shape ps = shape4(q->n, q->c, ph, pw);
  make_node(&N->pool, OP_MAXPOOL2D, ps, &N->x, NULL, pa, N->args[6]);
  make_node(&N->pool_dx, OP_MAXPOOL2D_DX, xs, &N->x, &N->dy, pa, N->args[7]);
  make_node(&N->avg, OP_AVGPOOL2D, ps, &N->x, NULL, pa, N->args[8]);
  make_node(&N->avg_dx, OP_AVGPOOL2D_DX, xs, &N->dy, NULL, pa, N->args[9]);
}

static void geometry_of(const Node *n, size_t g[BPK_GEOM]) {
  Window w = window_of(n);
  size_t v[BPK_GEOM] = {(size_t)w.n,  (size_t)w.c,  (size_t)w.h,  (size_t)w.w,  (size_t)w.o,
                        (size_t)w.kh, (size_t)w.kw, (size_t)w.sh, (size_t)w.sw, (size_t)w.ph,
                        (size_t)w.pw, (size_t)w.dh, (size_t)w.dw, (size_t)w.groups};
  memcpy(g, v, sizeof v);
}

static double *random_array(int64_t n, uint64_t *rng) {
  double *a = malloc(sizeof(double) * (size_t)(n + 1));
  for (int64_t i = 0; i < n; i++)
    a[i] = test_rand_normal(rng);
  return a;
}

/* Calls the kernel of n's op in double or float, storing or adding into out. */
static void run_kernel(const Node *n, const double *a, const double *b, double *out, int use_float, int acc) {
  size_t g[BPK_GEOM];
  geometry_of(n, g);
  int64_t na = shape_numel(n->args[0]->shape), nb = n->nargs > 1 ? shape_numel(n->args[1]->shape) : 0,
          no = shape_numel(n->shape);
  if (!use_float) {
    switch (n->op) {
    case OP_CONV2D: bpk_conv2d_d(a, b, out, g, acc); return;
    case OP_CONV2D_DX: bpk_conv2d_dx_d(a, b, out, g, acc); return;
    case OP_CONV2D_DK: bpk_conv2d_dk_d(a, b, out, g, acc); return;
    case OP_MAXPOOL2D: bpk_maxpool2d_d(a, out, g, acc); return;
    case OP_MAXPOOL2D_DX: bpk_maxpool2d_dx_d(a, b, out, g, acc); return;
    case OP_AVGPOOL2D: bpk_avgpool2d_d(a, out, g, acc); return;
    default: bpk_avgpool2d_dx_d(a, out, g, acc); return;
    }
  }
  float *fa = malloc(sizeof(float) * (size_t)(na + 1)), *fb = malloc(sizeof(float) * (size_t)(nb + 1)),
        *fo = malloc(sizeof(float) * (size_t)(no + 1));
  for (int64_t i = 0; i < na; i++)
    fa[i] = (float)a[i];
  for (int64_t i = 0; i < nb; i++)
    fb[i] = (float)b[i];
  for (int64_t i = 0; i < no; i++)
    fo[i] = (float)out[i];
  switch (n->op) {
  case OP_CONV2D: bpk_conv2d_f(fa, fb, fo, g, acc); break;
  case OP_CONV2D_DX: bpk_conv2d_dx_f(fa, fb, fo, g, acc); break;
  case OP_CONV2D_DK: bpk_conv2d_dk_f(fa, fb, fo, g, acc); break;
  case OP_MAXPOOL2D: bpk_maxpool2d_f(fa, fo, g, acc); break;
  case OP_MAXPOOL2D_DX: bpk_maxpool2d_dx_f(fa, fb, fo, g, acc); break;
  case OP_AVGPOOL2D: bpk_avgpool2d_f(fa, fo, g, acc); break;
  default: bpk_avgpool2d_dx_f(fa, fo, g, acc); break;
  }
  for (int64_t i = 0; i < no; i++)
    out[i] = fo[i];
  free(fa);
  free(fb);
  free(fo);
}

static int checked; /* kernel calls compared */

/* The kernel against window_eval, in both precisions, storing and adding. */
static void check_op(const Node *n, const double *a, const double *b, const Geo *q, uint64_t *rng) {
  int64_t no = shape_numel(n->shape);
  double *want = malloc(sizeof(double) * (size_t)(no + 1)), *got = malloc(sizeof(double) * (size_t)(no + 1));
  window_eval(n, a, b, want);
  double scale = 1;
  for (int64_t i = 0; i < no; i++)
    scale = fmax(scale, fabs(want[i]));
  for (int use_float = 0; use_float < 2; use_float++)
    for (int acc = 0; acc < 2; acc++) {
      double *start = random_array(no, rng);
      memcpy(got, start, sizeof(double) * (size_t)no);
      run_kernel(n, a, b, got, use_float, acc);
      double tol = use_float ? 1e-4 : 1e-12;
      for (int64_t i = 0; i < no; i++) {
        double expect = want[i] + (acc ? start[i] : 0);
        if (fabs(got[i] - expect) > tol * (scale + fabs(start[i])))
          fail_msg("%s (%s, %s) at %lld: %.17g, want %.17g; geometry n%lld c%lld %lldx%lld o%lld k%lldx%lld "
                   "s%lldx%lld p%lldx%lld d%lldx%lld g%lld",
                   op_name(n->op), use_float ? "float" : "double", acc ? "adding" : "storing", (long long)i, got[i],
                   expect, (long long)q->n, (long long)q->c, (long long)q->h, (long long)q->w, (long long)q->o,
                   (long long)q->kh, (long long)q->kw, (long long)q->sh, (long long)q->sw, (long long)q->ph,
                   (long long)q->pw, (long long)q->dh, (long long)q->dw, (long long)q->g);
      }
      free(start);
      checked++;
    }
  free(want);
  free(got);
}

static void check_geometry(const Geo *q, uint64_t *rng) {
  Nodes N;
  build(&N, q);
  double *x = random_array(shape_numel(N.x.shape), rng), *K = random_array(shape_numel(N.K.shape), rng);
  double *dy = random_array(shape_numel(N.y.shape), rng);
  check_op(&N.y, x, K, q, rng);
  check_op(&N.dx, dy, K, q, rng);
  check_op(&N.dk, x, dy, q, rng);
  double *pdy = random_array(shape_numel(N.pool.shape), rng);
  N.dy.shape = N.pool.shape; /* the pooling's gradient has the pooling's shape */
  check_op(&N.pool, x, NULL, q, rng);
  check_op(&N.pool_dx, x, pdy, q, rng);
  check_op(&N.avg, x, NULL, q, rng);
  check_op(&N.avg_dx, pdy, NULL, q, rng);
  free(x);
  free(K);
  free(dy);
  free(pdy);
}

static const Geo fixed[] = {
    /*  n  c  h  w  o kh kw sh sw ph pw dh dw g */
    {1, 1, 4, 4, 1, 3, 3, 1, 1, 0, 0, 1, 1, 1},  /* the lecture's */
    {3, 3, 7, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1},  /* odd sizes, padding */
    {2, 2, 9, 8, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1},  /* stride 2 */
    {1, 2, 11, 10, 3, 3, 2, 3, 3, 0, 1, 1, 1, 1}, /* stride 3, rectangular kernel */
    {2, 2, 9, 9, 2, 3, 3, 1, 1, 2, 2, 2, 2, 1},  /* dilation 2 */
    {2, 4, 6, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2},  /* groups 2 */
    {1, 8, 5, 7, 8, 3, 3, 1, 1, 1, 1, 1, 1, 4},  /* groups 4 */
    {2, 4, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 4},  /* depthwise */
    {3, 3, 6, 5, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1},  /* 1x1: the image is its own column matrix */
    {2, 4, 6, 6, 4, 1, 1, 1, 1, 0, 0, 1, 1, 2},  /* 1x1 in groups */
    {1, 2, 3, 4, 3, 5, 6, 1, 1, 1, 1, 1, 1, 1},  /* a kernel as big as the padded image */
    {1, 1, 1, 9, 2, 1, 3, 1, 2, 0, 1, 1, 2, 1},  /* one row: conv1d's form */
    {4, 16, 14, 14, 32, 5, 5, 1, 1, 2, 2, 1, 1, 1}, /* the Fashion CNN's second layer, 4 images */
};

static void test_fixed_geometries(void **state) {
  (void)state;
  uint64_t rng = 11;
  checked = 0;
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    check_geometry(&fixed[i], &rng);
  assert_int_equal(checked, 7 * 4 * (int)(sizeof fixed / sizeof fixed[0]));
}

static int64_t pick(uint64_t *rng, int64_t lo, int64_t hi) { return lo + (int64_t)(splitmix64(rng) % (uint64_t)(hi - lo + 1)); }

static void test_random_geometries(void **state) {
  (void)state;
  uint64_t rng = 2026;
  int tried = 0;
  while (tried < 40) {
    Geo q;
    q.g = pick(&rng, 1, 3);
    q.c = q.g * pick(&rng, 1, 3);
    q.o = q.g * pick(&rng, 1, 3);
    q.n = pick(&rng, 1, 3);
    q.h = pick(&rng, 1, 12);
    q.w = pick(&rng, 1, 12);
    q.kh = pick(&rng, 1, 4);
    q.kw = pick(&rng, 1, 4);
    q.sh = pick(&rng, 1, 3);
    q.sw = pick(&rng, 1, 3);
    q.ph = pick(&rng, 0, 2);
    q.pw = pick(&rng, 0, 2);
    q.dh = pick(&rng, 1, 2);
    q.dw = pick(&rng, 1, 2);
    if (out_len(q.h, q.kh, q.sh, q.ph, q.dh) < 1 || out_len(q.w, q.kw, q.sw, q.pw, q.dw) < 1 ||
        out_len(q.h, q.kh, q.sh, q.ph < q.kh ? q.ph : 0, 1) < 1 || out_len(q.w, q.kw, q.sw, q.pw < q.kw ? q.pw : 0, 1) < 1)
      continue;
    check_geometry(&q, &rng);
    tried++;
  }
  assert_int_equal(tried, 40);
}

/* A window of equal values sends its gradient to the first of them. */
static void test_maxpool_gradient_goes_to_the_first_maximum(void **state) {
  (void)state;
  const size_t g[BPK_GEOM] = {1, 1, 2, 4, 1, 2, 2, 2, 2, 0, 0, 1, 1, 1};
  const double x[8] = {5, 5, 1, 7, 5, 5, 7, 2}, dy[2] = {3, 4};
  double dx[8], y[2];
  bpk_maxpool2d_d(x, y, g, 0);
  bpk_maxpool2d_dx_d(x, dy, dx, g, 0);
  const double want_y[2] = {5, 7}, want_dx[8] = {3, 0, 0, 4, 0, 0, 0, 0};
  assert_memory_equal(y, want_y, sizeof y);
  assert_memory_equal(dx, want_dx, sizeof dx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixed_geometries),
      cmocka_unit_test(test_random_geometries),
      cmocka_unit_test(test_maxpool_gradient_goes_to_the_first_maximum),
  };
  return cmocka_run_group_tests_name("window kernels", tests, NULL, NULL);
}
