/* shape.c — static shapes: scalars, vectors and matrices. */
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

Shape shape_scalar(void) { return (Shape){0, {0, 0}}; }
Shape shape_vec(int64_t n) { return (Shape){1, {n, 0}}; }
Shape shape_mat(int64_t m, int64_t n) { return (Shape){2, {m, n}}; }

const char *shape_str(Ctx *c, Shape s) {
  switch (s.rank) {
  case 0: return "scalar";
  case 1: return arena_printf(&c->arena, "[%lld]", (long long)s.dim[0]);
  default: return arena_printf(&c->arena, "[%lld,%lld]", (long long)s.dim[0], (long long)s.dim[1]);
  }
}

int shape_broadcast(Shape a, Shape b, Shape *out) {
  if (shape_eq(a, b) || b.rank == 0) {
    *out = a;
    return 1;
  }
  if (a.rank == 0) {
    *out = b;
    return 1;
  }
  if (a.rank == 2 && b.rank == 1 && a.dim[1] == b.dim[0]) {
    *out = a;
    return 1;
  }
  if (a.rank == 1 && b.rank == 2 && b.dim[1] == a.dim[0]) {
    *out = b;
    return 1;
  }
  return 0;
}
