/* window.c — convolution and pooling: a window slid over [..., C, H, W]
 * images. One place for what these ops are: their geometry (read from a
 * node's shapes and its Attr.win), their result shapes, their flop counts,
 * the nodes autodiff builds for their adjoints, and their meaning, which the
 * interpreter (eval.c) runs. emit_c.c prints the same loops as C, and the
 * JIT calls the runtime's kernels (runtime/kernels.c) instead.
 *
 * The image side is [..., C, H, W] and the output side [..., O, Ho, Wo]:
 * the leading axes (none for one example, the batch when training) are
 * images side by side. Cross-correlation, as PyTorch computes it:
 *   y[n, o, i, j] = sum over c, u, v of
 *       x[n, g*C/G + c, i*sh + u*dh - ph, j*sw + v*dw - pw] * K[o, c, u, v]
 * for the output channel o of group g = o / (O/G), positions outside the
 * image reading zero. */
#include <math.h>
#include <string.h>

#include "bpc.h"

int64_t window_out_size(int64_t in, int64_t size, int64_t step, int64_t pad, int64_t dilation) {
  int64_t span = dilation * (size - 1) + 1;
  if (in + 2 * pad < span) return 0;
  return (in + 2 * pad - span) / step + 1;
}

/* Which side of the window each of a node's shapes is. */
static Shape image_side(const Node *n) {
  return n->op == OP_CONV2D_DX || n->op == OP_AVGPOOL2D_DX ? n->shape : n->args[0]->shape;
}

static Shape output_side(const Node *n) {
  switch (n->op) {
  case OP_CONV2D:
  case OP_MAXPOOL2D:
  case OP_AVGPOOL2D: return n->shape;
  case OP_CONV2D_DK:
  case OP_MAXPOOL2D_DX: return n->args[1]->shape;
  default: return n->args[0]->shape; /* CONV2D_DX, AVGPOOL2D_DX: the gradient */
  }
}

Window window_of(const Node *n) {
  Shape x = image_side(n), y = output_side(n);
  const int r = x.rank;
  Window w = {0};
  w.c = x.dim[r - 3];
  w.h = x.dim[r - 2];
  w.w = x.dim[r - 1];
  w.n = shape_numel(x) / (w.c * w.h * w.w);
  w.o = y.dim[r - 3];
  w.ho = y.dim[r - 2];
  w.wo = y.dim[r - 1];
  w.kh = n->attr.win.size[0];
  w.kw = n->attr.win.size[1];
  w.sh = n->attr.win.step[0];
  w.sw = n->attr.win.step[1];
  w.ph = n->attr.win.pad[0];
  w.pw = n->attr.win.pad[1];
  w.dh = n->attr.win.dilation[0];
  w.dw = n->attr.win.dilation[1];
  w.groups = n->attr.win.groups;
  return w;
}

int op_is_conv(Op op) { return op == OP_CONV2D || op == OP_CONV2D_DX || op == OP_CONV2D_DK; }

double window_flops(const Node *n) {
  Window w = window_of(n);
  double outputs = (double)w.n * (double)w.o * (double)w.ho * (double)w.wo, taps = (double)w.kh * (double)w.kw;
  if (op_is_conv(n->op)) return 2.0 * outputs * (double)(w.c / w.groups) * taps;
  return outputs * taps;
}

/* What a graph shows under the op's name: "kernel [16,1,5,5], stride 1,
 * padding 2" or "window 2x2, stride 2". */
const char *window_caption(Ctx *c, const Node *n) {
  Window w = window_of(n);
  if (op_is_conv(n->op)) {
    const Node *K = n->op == OP_CONV2D_DK ? n : n->args[1];
    const char *s = arena_printf(&c->arena, "kernel %s", shape_str(c, K->shape));
    if (w.sh != 1 || w.sw != 1) s = arena_printf(&c->arena, "%s, stride %lldx%lld", s, (long long)w.sh, (long long)w.sw);
    if (w.ph || w.pw) s = arena_printf(&c->arena, "%s, padding %lldx%lld", s, (long long)w.ph, (long long)w.pw);
    if (w.dh != 1 || w.dw != 1)
      s = arena_printf(&c->arena, "%s, dilation %lldx%lld", s, (long long)w.dh, (long long)w.dw);
    if (w.groups != 1) s = arena_printf(&c->arena, "%s, groups %lld", s, (long long)w.groups);
    return s;
  }
  return arena_printf(&c->arena, "window %lldx%lld, stride %lldx%lld", (long long)w.kh, (long long)w.kw,
                      (long long)w.sh, (long long)w.sw);
}

/* What a window op sends back to its argument k, in words (explain). */
const char *window_sends_back(const Node *y, int k) {
  switch (y->op) {
  case OP_CONV2D:
    return k == 0 ? "the transposed convolution: each output's G goes back to the inputs its window read, "
                    "weighted by the kernel taps that read them"
                  : "the input correlated with G: each kernel tap gets the sum over the output positions of "
                    "the input under it times G there";
  case OP_MAXPOOL2D: return "each window's G goes to the window's first maximum, as the max gate; the other cells get 0";
  case OP_AVGPOOL2D: return "each window's G is spread evenly over its cells, G divided by the window's size to each";
  default: return NULL;
  }
}

/* ---- building the nodes ------------------------------------------------------- */

/* The output side's shape: the image's leading axes, then [o, ho, wo]. */
static Shape with_image(Shape like, int64_t ch, int64_t h, int64_t w) {
  Shape s = like;
  s.dim[s.rank - 3] = ch;
  s.dim[s.rank - 2] = h;
  s.dim[s.rank - 1] = w;
  return s;
}

static Shape out_shape(Shape x, int64_t channels, const Attr *a) {
  return with_image(x, channels,
                    window_out_size(x.dim[x.rank - 2], a->win.size[0], a->win.step[0], a->win.pad[0], a->win.dilation[0]),
                    window_out_size(x.dim[x.rank - 1], a->win.size[1], a->win.step[1], a->win.pad[1], a->win.dilation[1]));
}

/* The caller (lower.c) has checked the shapes, in the user's words. */
Node *ir_conv2d(Ctx *c, Node *x, Node *K, Attr attr) {
  attr.win.size[0] = K->shape.dim[2];
  attr.win.size[1] = K->shape.dim[3];
  return ir_make(c, OP_CONV2D, out_shape(x->shape, K->shape.dim[0], &attr), x, K, 0, attr);
}

Node *ir_pool2d(Ctx *c, Op op, Node *x, Attr attr) {
  return ir_make(c, op, out_shape(x->shape, x->shape.dim[x->shape.rank - 3], &attr), x, NULL, 0, attr);
}

/* dloss/dx of y = conv2d(x, K), given g = dloss/dy: each output's gradient
 * goes back to the inputs its window read, weighted by the kernel (the
 * transposed convolution). */
Node *ir_conv2d_dx(Ctx *c, const Node *conv, Node *g) {
  return ir_make(c, OP_CONV2D_DX, conv->args[0]->shape, g, conv->args[1], 0, conv->attr);
}

/* dloss/dK: each tap's gradient is the image correlated with g, summed
 * over the images. */
Node *ir_conv2d_dk(Ctx *c, const Node *conv, Node *g) {
  return ir_make(c, OP_CONV2D_DK, conv->args[1]->shape, conv->args[0], g, 0, conv->attr);
}

/* dloss/dx of a pooling: a window's gradient to its first maximum, or
 * spread evenly over it. */
Node *ir_pool2d_dx(Ctx *c, const Node *pool, Node *g) {
  Node *x = pool->args[0];
  if (pool->op == OP_MAXPOOL2D) return ir_make(c, OP_MAXPOOL2D_DX, x->shape, x, g, 0, pool->attr);
  return ir_make(c, OP_AVGPOOL2D_DX, x->shape, g, NULL, 0, pool->attr);
}

/* ---- what they compute (the interpreter's reference) ------------------------------ */

/* Element [n, ch, i, j] of an image side or output side. */
static int64_t at4(int64_t ch_count, int64_t h, int64_t w, int64_t n, int64_t ch, int64_t i, int64_t j) {
  return ((n * ch_count + ch) * h + i) * w + j;
}

/* The image row or column that tap u of output position i reads, or -1
 * outside the image (padding). */
static int64_t tap(int64_t i, int64_t u, int64_t step, int64_t dilation, int64_t pad, int64_t size) {
  int64_t p = i * step + u * dilation - pad;
  return p >= 0 && p < size ? p : -1;
}

/* Calls visit(x index, y index, K index) for every tap of every output of
 * a convolution's geometry: forward, dx and dK are the same sum read in
 * three ways. */
typedef void (*TapFn)(double *out, const double *a, const double *b, int64_t xi, int64_t yi, int64_t ki);

static void each_conv_tap(const Window *w, TapFn fn, double *out, const double *a, const double *b) {
  int64_t cg = w->c / w->groups, og = w->o / w->groups;
  for (int64_t n = 0; n < w->n; n++)
    for (int64_t o = 0; o < w->o; o++)
      for (int64_t i = 0; i < w->ho; i++)
        for (int64_t j = 0; j < w->wo; j++)
          for (int64_t ci = 0; ci < cg; ci++)
            for (int64_t u = 0; u < w->kh; u++) {
              int64_t h = tap(i, u, w->sh, w->dh, w->ph, w->h);
              if (h < 0) continue;
              for (int64_t v = 0; v < w->kw; v++) {
                int64_t x = tap(j, v, w->sw, w->dw, w->pw, w->w);
                if (x < 0) continue;
                fn(out, a, b, at4(w->c, w->h, w->w, n, o / og * cg + ci, h, x), at4(w->o, w->ho, w->wo, n, o, i, j),
                   ((o * cg + ci) * w->kh + u) * w->kw + v);
              }
            }
}

static void conv_forward(double *y, const double *x, const double *K, int64_t xi, int64_t yi, int64_t ki) {
  y[yi] += x[xi] * K[ki];
}
static void conv_dx(double *dx, const double *g, const double *K, int64_t xi, int64_t yi, int64_t ki) {
  dx[xi] += g[yi] * K[ki];
}
static void conv_dk(double *dK, const double *x, const double *g, int64_t xi, int64_t yi, int64_t ki) {
  dK[ki] += x[xi] * g[yi];
}

/* Every pooling window, cell by cell: its maximum (the first, where cells
 * tie) or its mean, or the gradient sent back to them. A padded cell
 * never wins a maximum and counts in a mean's divisor (PyTorch's
 * count_include_pad). */
static void pool(const Window *w, const Node *n, const double *a, const double *b, double *y) {
  int64_t planes = w->n * w->c;
  double count = (double)(w->kh * w->kw);
  for (int64_t p = 0; p < planes; p++)
    for (int64_t i = 0; i < w->ho; i++)
      for (int64_t j = 0; j < w->wo; j++) {
        int64_t yi = (p * w->ho + i) * w->wo + j, best = -1;
        double sum = 0, m = 0;
        for (int64_t u = 0; u < w->kh; u++) {
          int64_t h = tap(i, u, w->sh, 1, w->ph, w->h);
          for (int64_t v = 0; h >= 0 && v < w->kw; v++) {
            int64_t x = tap(j, v, w->sw, 1, w->pw, w->w);
            if (x < 0) continue;
            int64_t xi = (p * w->h + h) * w->w + x;
            if (n->op == OP_AVGPOOL2D_DX) {
              y[xi] += a[yi] / count;
            } else {
              sum += a[xi];
              if (best < 0 || a[xi] > m) m = a[best = xi]; /* strictly greater: the first maximum */
            }
          }
        }
        if (n->op == OP_MAXPOOL2D) y[yi] = m;
        if (n->op == OP_AVGPOOL2D) y[yi] = sum / count;
        if (n->op == OP_MAXPOOL2D_DX && best >= 0) y[best] += b[yi];
      }
}

void window_eval(const Node *n, const double *a, const double *b, double *y) {
  Window w = window_of(n);
  memset(y, 0, sizeof(double) * (size_t)shape_numel(n->shape));
  switch (n->op) {
  case OP_CONV2D: each_conv_tap(&w, conv_forward, y, a, b); return;
  case OP_CONV2D_DX: each_conv_tap(&w, conv_dx, y, a, b); return;
  case OP_CONV2D_DK: each_conv_tap(&w, conv_dk, y, a, b); return;
  default: pool(&w, n, a, b, y); return;
  }
}
