/* simplify.c — algebraic rewrites applied as each node is built: constant
 * folding, identities (x*1, x+0, x*0, --x, log(exp(x))), transposes folded
 * into matrix products, and broadcasts left implicit where an elementwise
 * op broadcasts anyway. Because every node passes through here and then
 * through hash-consing, the backward graph is simplified and shares common
 * subexpressions with the forward graph as it is built. */
#include <math.h>

#include "bpc.h"

/* Value of an elementwise op on constants; returns 0 if not foldable: a
 * result that is not finite (log 0, 1 / 0) stays an operation, so the
 * program reports it where it happens. */
static int fold_elementwise(Op op, double a, double b, double value, double *out) {
  if (op_info[op].classes & OPC_RANDOM) return 0; /* dropout of a constant is random in training */
  *out = op_scalar(op, a, b, value);
  return isfinite(*out);
}

static Node *fold(Ctx *c, Op op, Shape s, Node *a, Node *b, double value, Attr attr) {
  if (!a || a->op != OP_CONST || (b && b->op != OP_CONST)) return NULL;
  double x = a->value, y = b ? b->value : 0, r;
  if (op_is_elementwise(op)) return fold_elementwise(op, x, y, value, &r) ? ir_const(c, r, s) : NULL;
  switch (op) {
  case OP_SUM: return ir_const(c, x * (double)shape_numel(a->shape), s);
  case OP_SUMAX: return ir_const(c, x * (double)(shape_numel(a->shape) / shape_numel(s)), s);
  case OP_MAXALL:
  case OP_MINALL:
  case OP_MAXROW:
  case OP_MINROW: return ir_const(c, x, s);
  case OP_LSE: {
    int64_t n = a->shape.dim[a->shape.rank - 1]; /* over the last axis */
    return ir_const(c, x + log((double)n), s);
  }
  case OP_BCAST:
  case OP_TRANSPOSE:
  case OP_INDEX: return ir_const(c, x, s);
  case OP_SCATTER: return x == 0 ? ir_const(c, 0, s) : NULL;
  case OP_OUTER: return ir_const(c, x * y, s);
  case OP_DOT: return ir_const(c, x * y * (double)a->shape.dim[0], s);
  case OP_MATMUL: {
    int64_t k = (a->shape.rank == 2) ? ((attr.mm & MM_TA) ? a->shape.dim[0] : a->shape.dim[1]) : a->shape.dim[0];
    return ir_const(c, x * y * (double)k, s);
  }
  default: return NULL;
  }
}

/* x itself when it already has the result's shape, else x broadcast to it. */
static Node *as_shape(Ctx *c, Node *x, Shape s) { return ir_bcast(c, x, s, shape_stretched_axes(x->shape, s)); }

static int is_zero(const Node *n) { return ir_is_const(n, 0); }

static Node *simplify_binary(Ctx *c, Op op, Shape s, Node *a, Node *b) {
  switch (op) {
  case OP_ADD:
    if (is_zero(a)) return as_shape(c, b, s);
    if (is_zero(b)) return as_shape(c, a, s);
    if (a == b) return ir_binary(c, OP_MUL, a, ir_const(c, 2, shape_scalar())); /* fan-out of x * x */
    if (b->op == OP_NEG) return ir_binary(c, OP_SUB, a, b->args[0]);
    if (a->op == OP_NEG) return ir_binary(c, OP_SUB, b, a->args[0]);
    break;
  case OP_SUB:
    if (is_zero(b)) return as_shape(c, a, s);
    if (is_zero(a)) return as_shape(c, ir_unary(c, OP_NEG, b), s);
    if (a == b) return ir_const(c, 0, s);
    if (b->op == OP_NEG) return ir_binary(c, OP_ADD, a, b->args[0]);
    break;
  case OP_MUL:
    if (is_zero(a) || is_zero(b)) return ir_const(c, 0, s);
    if (ir_is_const(a, 1)) return as_shape(c, b, s);
    if (ir_is_const(b, 1)) return as_shape(c, a, s);
    if (ir_is_const(a, -1)) return as_shape(c, ir_unary(c, OP_NEG, b), s);
    if (ir_is_const(b, -1)) return as_shape(c, ir_unary(c, OP_NEG, a), s);
    if (a->op == OP_NEG && b->op == OP_NEG) return ir_binary(c, OP_MUL, a->args[0], b->args[0]);
    /* c1 * (c2 * x) = (c1 c2) * x: constant factors meet and fold */
    for (int k = 0; k < 2; k++) {
      Node *k1 = k ? b : a, *m = k ? a : b;
      if (k1->op == OP_CONST && m->op == OP_MUL) /* constants are uniform, whatever their shape */
        for (int j = 0; j < 2; j++)
          if (m->args[j]->op == OP_CONST)
            return as_shape(c,
                            ir_binary(c, OP_MUL, m->args[1 - j],
                                      ir_const(c, k1->value * m->args[j]->value, shape_scalar())),
                            s);
    }
    if (a->op == OP_NEG) return ir_unary(c, OP_NEG, ir_binary(c, OP_MUL, a->args[0], b));
    if (b->op == OP_NEG) return ir_unary(c, OP_NEG, ir_binary(c, OP_MUL, a, b->args[0]));
    break;
  case OP_DIV:
    if (is_zero(a) && !is_zero(b)) return ir_const(c, 0, s);
    if (ir_is_const(b, 1)) return as_shape(c, a, s);
    if (a->op == OP_NEG) return ir_unary(c, OP_NEG, ir_binary(c, OP_DIV, a->args[0], b));
    break;
  default: break;
  }
  return NULL;
}

/* A product with a uniform constant c: every entry is c times a row (or
 * column) sum of the other operand. Constants are literals, not arrays, so
 * the product's loops and kernels could not read one. */
static Node *matmul_by_constant(Ctx *c, Shape s, Node *a, Node *b, Attr attr) {
  int ta = (attr.mm & MM_TA) != 0, tb = (attr.mm & MM_TB) != 0;
  Node *k = ir_const(c, (b->op == OP_CONST ? b : a)->value, shape_scalar()), *sums;
  if (b->op == OP_CONST) /* (op(A) c)[i, .] = c * sum_p op(A)[i, p] */
    sums = a->shape.rank == 2 ? ir_sumax(c, a, ta ? 0 : 1) : ir_reduce(c, OP_SUM, a);
  else /* (c op(B))[., j] = c * sum_p op(B)[p, j] */
    sums = b->shape.rank == 2 ? ir_sumax(c, b, tb ? 1 : 0) : ir_reduce(c, OP_SUM, b);
  Node *r = ir_binary(c, OP_MUL, sums, k);
  if (r->shape.rank == s.rank) return r;
  return ir_bcast(c, r, s, b->op == OP_CONST ? BCAST_COLS : BCAST_ROWS);
}

/* An elementwise op broadcasts a scalar or a row vector by itself, so an
 * explicit broadcast of its argument need not be materialised, as long as
 * the other argument still gives the result its shape. */
static Node *unwrap_bcast(Node *x, Node *other, Shape s) {
  if (x->op == OP_BCAST && shape_eq(other->shape, s) &&
      (unsigned)x->attr.axes == shape_stretched_axes(x->args[0]->shape, s))
    return x->args[0];
  return x;
}

Node *simplify(Ctx *c, Op op, Shape s, Node *a, Node *b, double value, Attr attr) {
  Node *r = fold(c, op, s, a, b, value, attr);
  if (r) return r;
  if (op_is_elementwise(op) && b) {
    Node *a2 = unwrap_bcast(a, b, s);
    Node *b2 = unwrap_bcast(b, a2, s); /* only one of two broadcasts may go: one must keep the shape */
    if (a2 != a || b2 != b) return ir_binary(c, op, a2, b2);
    return simplify_binary(c, op, s, a, b);
  }
  switch (op) {
  case OP_NEG:
    if (a->op == OP_NEG) return a->args[0];
    if (a->op == OP_SUB) return ir_binary(c, OP_SUB, a->args[1], a->args[0]);
    break;
  case OP_LOG:
    if (a->op == OP_EXP) return a->args[0];
    break;
  case OP_DROPOUT: /* p = 0 keeps everything, unscaled; zeros stay zeros */
    if (value == 0 || is_zero(a)) return a;
    break;
  case OP_POWC:
    if (value == 1) return a;
    if (value == 0) return ir_const(c, 1, s);
    break;
  case OP_SUM:
  case OP_MAXALL:
  case OP_MINALL:
    if (a->shape.rank == 0) return a;
    if (op == OP_SUM && a->op == OP_BCAST && a->args[0]->shape.rank == 0)
      return ir_binary(c, OP_MUL, a->args[0], ir_const(c, (double)shape_numel(a->shape), shape_scalar()));
    if (op == OP_SUM && a->op == OP_NEG) return ir_unary(c, OP_NEG, ir_reduce(c, OP_SUM, a->args[0]));
    /* sum(k * x) = k * sum(x) for a scalar k: a scalar product instead of a
     * pass, and sum(x) is often computed already (softmax's normaliser) */
    if (op == OP_SUM && (a->op == OP_MUL || a->op == OP_DIV) && a->args[1]->shape.rank == 0 &&
        a->args[0]->shape.rank > 0)
      return ir_binary(c, a->op, ir_reduce(c, OP_SUM, a->args[0]), a->args[1]);
    if (op == OP_SUM && a->op == OP_MUL && a->args[0]->shape.rank == 0 && a->args[1]->shape.rank > 0)
      return ir_binary(c, OP_MUL, a->args[0], ir_reduce(c, OP_SUM, a->args[1]));
    break;
  case OP_TRANSPOSE:
    if (a->op == OP_TRANSPOSE) return a->args[0];
    if (a->op == OP_OUTER) return ir_outer(c, a->args[1], a->args[0]);
    break;
  case OP_MATMUL:
    if (a->op == OP_TRANSPOSE) return ir_matmul(c, a->args[0], b, (int)(attr.mm ^ MM_TA));
    if (b->op == OP_TRANSPOSE) return ir_matmul(c, a, b->args[0], (int)(attr.mm ^ MM_TB));
    if (a->op == OP_CONST || b->op == OP_CONST) return matmul_by_constant(c, s, a, b, attr);
    break;
  case OP_DOT:
    if (a->op == OP_CONST || b->op == OP_CONST) { /* one node at a time: C's argument order is open */
      Node *vector = a->op == OP_CONST ? b : a;
      Node *scale = ir_const(c, (a->op == OP_CONST ? a : b)->value, shape_scalar());
      return ir_binary(c, OP_MUL, ir_reduce(c, OP_SUM, vector), scale);
    }
    break;
  case OP_ARGMAXMASK:
  case OP_ARGMINMASK:
  case OP_ARGMAXROW:
  case OP_ARGMINROW:
    if (is_zero(b)) return ir_const(c, 0, s);
    break;
  case OP_INDEX:
    if (a->op == OP_SCATTER && a->attr.offset == attr.offset && shape_eq(a->args[0]->shape, s)) return a->args[0];
    break;
  default: break;
  }
  return NULL;
}
