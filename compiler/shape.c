/* shape.c — static shapes: scalars, vectors, matrices and tensors up to
 * BPC_MAX_RANK axes, row-major, with numpy's broadcasting rules. */
#include "bpc.h"

int64_t shape_numel(Shape s) {
  int64_t n = 1;
  for (int i = 0; i < s.rank; i++)
    n *= s.dim[i];
  return n;
}

int shape_eq(Shape a, Shape b) {
  if (a.rank != b.rank) return 0;
  for (int i = 0; i < a.rank; i++)
    if (a.dim[i] != b.dim[i]) return 0;
  return 1;
}

Shape shape_scalar(void) { return (Shape){0, {0}}; }
Shape shape_vec(int64_t n) { return (Shape){1, {n}}; }
Shape shape_mat(int64_t m, int64_t n) { return (Shape){2, {m, n}}; }

const char *shape_str(Ctx *c, Shape s) {
  if (s.rank == 0) return "scalar";
  char buf[BPC_DIMS_TEXT];
  return arena_printf(&c->arena, "%s", format_dims(buf, s.rank, s.dim));
}

/* Dimension k of s counted from the right (0: the last), 1 past its rank. */
static int64_t dim_from_right(Shape s, int k) { return k < s.rank ? s.dim[s.rank - 1 - k] : 1; }

int shape_broadcast(Shape a, Shape b, Shape *out) {
  Shape r = {a.rank > b.rank ? a.rank : b.rank, {0}};
  for (int k = 0; k < r.rank; k++) {
    int64_t x = dim_from_right(a, k), y = dim_from_right(b, k);
    if (x != y && x != 1 && y != 1) return 0;
    r.dim[r.rank - 1 - k] = x == 1 ? y : x;
  }
  *out = r;
  return 1;
}

unsigned shape_stretched_axes(Shape from, Shape to) {
  unsigned mask = 0;
  for (int k = 0; k < to.rank; k++)
    if (dim_from_right(from, to.rank - 1 - k) != to.dim[k]) mask |= 1u << k;
  return mask;
}

Shape shape_drop_axes(Shape s, unsigned mask) {
  Shape r = {0, {0}};
  for (int k = 0; k < s.rank; k++)
    if (!(mask & (1u << k))) r.dim[r.rank++] = s.dim[k];
  return r;
}

int shape_axis_of(unsigned mask) {
  int k = 0;
  while (mask > 1) {
    mask >>= 1;
    k++;
  }
  return k;
}

int64_t shape_outer(Shape s, int axis) {
  int64_t n = 1;
  for (int k = 0; k < axis; k++)
    n *= s.dim[k];
  return n;
}

Shape shape_with_ones(Shape s, unsigned mask) {
  for (int k = 0; k < s.rank; k++)
    if (mask & (1u << k)) s.dim[k] = 1;
  return s;
}

int64_t shape_broadcast_index(Shape x, Shape out, int64_t i) {
  int64_t at = 0, scale = 1;
  for (int k = out.rank - 1, kx = x.rank - 1; k >= 0; k--, kx--) {
    int64_t coord = i % out.dim[k];
    i /= out.dim[k];
    if (kx < 0) continue;
    if (x.dim[kx] != 1) at += coord * scale;
    scale *= x.dim[kx];
  }
  return at;
}

void shape_strides(Shape s, int64_t *stride) {
  int64_t st = 1;
  for (int k = s.rank - 1; k >= 0; k--) {
    stride[k] = st;
    st *= s.dim[k];
  }
}
