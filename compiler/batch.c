/* batch.c — the model over B examples at once, for training and scoring.
 *
 * Every value that depends on an input gets a leading batch axis: a scalar
 * becomes [B], a vector [n] becomes [B, n], a [C, H, W] image [B, C, H, W]. Values that depend only on
 * parameters stay as they are and are computed once per batch. The point is
 * speed: x @ W for one example is a matrix-vector product that streams all
 * of W for n multiply-adds; for B examples it is one matrix-matrix product
 * that streams W once for B*n. The batched loss is the sum of the
 * per-example losses, and autodiff runs on it as on any graph.
 *
 * Ops without a batched form (a product of two per-example values) make the
 * model unbatchable; it then trains one example at a time, which is always
 * correct. */
#include <string.h>

#include "bpc.h"

typedef struct Batcher {
  Ctx *c;
  int B;
  Node **map;      /* per original node id: its batched value, or itself */
  char *batched;   /* per original node id: has a batch axis */
  const char *why; /* reason the model cannot be batched */
} Batcher;

void target_per_example(Ctx *c, Target *t) {
  t->batch = 0;
  t->loss = c->loss;
  t->grad_terms = c->grad_terms;
  t->outputs = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(c->outputs.len + 1));
  for (int i = 0; i < c->outputs.len; i++)
    t->outputs[i] = ((Decl *)c->outputs.items[i])->node;
}

/* The shape of a per-example shape with the batch axis in front. */
static int batched_shape(Batcher *b, Shape s, Shape *out) {
  if (s.rank == BPC_MAX_RANK) {
    b->why = "a per-example value has the most axes a tensor can have, and the batch would add one";
    return 0;
  }
  out->rank = s.rank + 1;
  out->dim[0] = b->B;
  for (int k = 0; k < s.rank; k++)
    out->dim[k + 1] = s.dim[k];
  return 1;
}

/* x as an operand of an elementwise op whose per-example result has shape
 * s: a batched x gets 1s after its batch axis, so that numpy's alignment
 * at the right still lines its own axes up with the result's (a view: a
 * per-example scalar is read once per row). */
static Node *spread(Batcher *b, Node *orig, Shape s) {
  Node *x = b->map[orig->id];
  if (!b->batched[orig->id] || orig->shape.rank == s.rank) return x;
  Shape t = {s.rank + 1, {b->B}};
  int pad = s.rank - orig->shape.rank;
  for (int k = 0; k < s.rank; k++)
    t.dim[k + 1] = k < pad ? 1 : orig->shape.dim[k - pad];
  return ir_reshape(b->c, x, t);
}

/* The batched form of a batched value's per-example rows merged: [B, m, k]
 * as [B*m, k], so that a product with a parameter is one product. */
static Node *merged_rows(Batcher *b, Node *orig) {
  int64_t k = orig->shape.dim[orig->shape.rank - 1];
  return ir_reshape(b->c, b->map[orig->id], shape_mat(b->B * shape_numel(orig->shape) / k, k));
}

static Node *batch_matmul(Batcher *b, Node *n) {
  Ctx *c = b->c;
  Node *a = n->args[0], *w = n->args[1];
  int ba = b->batched[a->id], bw = b->batched[w->id];
  if (ba && bw) {
    b->why = "a product of two per-example values";
    return NULL;
  }
  if (ba && a->shape.rank == 1) /* v @ W: the rows of V times W */
    return ir_matmul(c, b->map[a->id], w, n->attr.mm & MM_TB);
  if (bw && w->shape.rank == 1) { /* W @ v: V times W transposed */
    int flags = (n->attr.mm & MM_TA) ? 0 : MM_TB;
    return ir_matmul(c, b->map[w->id], a, flags);
  }
  if (ba && !(n->attr.mm & MM_TA)) { /* X @ W for a per-example matrix X: all the examples' rows at once */
    Shape s;
    batched_shape(b, n->shape, &s);
    return ir_reshape(c, ir_matmul(c, merged_rows(b, a), w, n->attr.mm & MM_TB), s);
  }
  b->why = "a matrix product with a per-example matrix";
  return NULL;
}

/* A gather (or a view) of one example's value: the same for each example,
 * one example's size further each time. */
static Node *batch_gather(Batcher *b, Node *n, Shape s, int64_t offset, const int64_t *stride) {
  int64_t st[BPC_MAX_RANK];
  st[0] = shape_numel(n->args[0]->shape);
  for (int k = 0; k < n->shape.rank; k++)
    st[k + 1] = stride[k];
  return ir_gather(b->c, b->map[n->args[0]->id], offset, st, s);
}

static Node *batch_node(Batcher *b, Node *n) {
  Ctx *c = b->c;
  Node *a = n->args[0], *y = n->args[1];
  Shape s;
  if (!batched_shape(b, n->shape, &s)) return NULL;
  if (n->op == OP_DROPOUT) /* each example its own mask, even of a value the same for all of them */
    return ir_dropout(c, b->batched[a->id] ? b->map[a->id] : ir_bcast(c, a, s, 1), n->value, n->attr.slot);
  if (op_is_elementwise(n->op)) {
    if (!y) return ir_unary_const(c, n->op, b->map[a->id], n->value);
    return ir_binary(c, n->op, spread(b, a, n->shape), spread(b, y, n->shape));
  }
  switch (n->op) {
  case OP_SUM: /* each example's own: every axis of the argument but the batch axis */
    return ir_sum_axes(c, b->map[a->id], ((1u << (a->shape.rank + 1)) - 1) & ~1u, s);
  case OP_SUMAX: return ir_sum_axes(c, b->map[a->id], (unsigned)n->attr.axes << 1, s);
  case OP_LSE:
  case OP_MAXROW:
  case OP_MINROW: return ir_reduce(c, n->op, b->map[a->id]); /* row by row already */
  case OP_MAXALL:
  case OP_MINALL: /* each example's elements as one row */
    return ir_reduce(c, n->op == OP_MAXALL ? OP_MAXROW : OP_MINROW,
                     ir_reshape(c, b->map[a->id], shape_mat(b->B, shape_numel(a->shape))));
  case OP_BCAST: return ir_bcast(c, b->map[a->id], s, (unsigned)n->attr.axes << 1);
  case OP_MATMUL: return batch_matmul(b, n);
  case OP_CONV2D: /* the images side by side: the batch is one more leading axis */
    if (b->batched[y->id]) {
      b->why = "a convolution with a per-example kernel";
      return NULL;
    }
    return ir_conv2d(c, b->map[a->id], y, n->attr);
  case OP_MAXPOOL2D:
  case OP_AVGPOOL2D: return ir_pool2d(c, n->op, b->map[a->id], n->attr);
  case OP_DOT:
    if (b->batched[a->id] && b->batched[y->id])
      return ir_sumax(c, ir_binary(c, OP_MUL, b->map[a->id], b->map[y->id]), 1);
    return ir_matmul(c, b->map[b->batched[a->id] ? a->id : y->id], b->batched[a->id] ? y : a, 0);
  case OP_OUTER: { /* a[m] b[n]: a as a column times b as a row, elementwise */
    int64_t m = a->shape.dim[0];
    Node *col = b->batched[a->id] ? ir_reshape(c, b->map[a->id], (Shape){3, {b->B, m, 1}})
                                  : ir_reshape(c, a, shape_mat(m, 1));
    return ir_binary(c, OP_MUL, col, spread(b, y, n->shape));
  }
  case OP_INDEX: {
    int64_t stride[BPC_MAX_RANK];
    shape_strides(n->shape, stride);
    return batch_gather(b, n, s, n->attr.offset, stride);
  }
  case OP_GATHER: return batch_gather(b, n, s, n->attr.offset, n->attr.stride);
  case OP_TRANSPOSE: {
    int perm[3] = {0, 2, 1};
    return ir_permute(c, b->map[a->id], perm);
  }
  case OP_CONCAT: { /* along the next axis; a parameter's part repeated for each example */
    Node **args = arena_alloc(&c->arena, sizeof(Node *) * (size_t)n->nargs);
    for (int j = 0; j < n->nargs; j++) {
      Node *x = n->args[j];
      Shape xs;
      batched_shape(b, x->shape, &xs);
      args[j] = b->batched[x->id] ? b->map[x->id] : ir_bcast(c, x, xs, 1);
    }
    return ir_concat(c, args, n->nargs, shape_axis_of((unsigned)n->attr.axes) + 1);
  }
  default: break;
  }
  b->why = arena_printf(&c->arena, "%s of one example's value", op_name(n->op));
  return NULL;
}

static int build_batched(Ctx *c, int B, Target *t, const char **why);

/* Runs after bpc_compile has returned, so errors (the node limit) need a
 * landing place of their own: the model then runs one example at a time. */
int batch_target(Ctx *c, int B, Target *t, const char **why) {
  jmp_buf saved;
  memcpy(saved, c->on_error, sizeof saved);
  int ok = 0;
  if (setjmp(c->on_error) == 0) {
    ok = build_batched(c, B, t, why);
  } else {
    *why = arena_strndup(&c->arena, c->err.data ? c->err.data : "", c->err.len);
    c->has_error = 0; /* the model itself compiled; only batching failed */
    c->err.len = 0;
  }
  memcpy(c->on_error, saved, sizeof saved);
  return ok;
}

static int build_batched(Ctx *c, int B, Target *t, const char **why) {
  Batcher b = {c, B, arena_alloc(&c->arena, sizeof(Node *) * (size_t)c->nodes.len),
               arena_alloc(&c->arena, (size_t)c->nodes.len), NULL};
  int nroots, n0 = c->nodes.len;
  Node **roots = model_roots(c, &nroots);
  Schedule s;
  schedule_function(c, roots, nroots, NULL, 0, &s);
  for (int i = 0; i < s.order.len; i++) {
    Node *n = s.order.items[i];
    c->cur_loc = n->loc;
    int any = 0;
    for (int k = 0; k < n->nargs; k++)
      any |= b.batched[n->args[k]->id];
    if (n->op == OP_INPUT) {
      Shape bs;
      if (!batched_shape(&b, n->shape, &bs)) break;
      /* the whole batch of this input: its shape has the batch axis */
      Node *leaf = ir_make(c, OP_INPUT, bs, NULL, NULL, 0, n->attr);
      leaf->name = n->name;
      b.map[n->id] = leaf;
      b.batched[n->id] = 1;
      continue;
    }
    if (!any && n->op != OP_DROPOUT) {
      b.map[n->id] = n;
      continue;
    }
    Node *m = batch_node(&b, n);
    if (!m) break;
    if (!m->name && m->id >= n0) m->name = n->name;
    b.map[n->id] = m;
    b.batched[n->id] = 1;
  }
  if (b.why) {
    *why = b.why;
    return 0;
  }
  t->batch = B;
  c->cur_loc = c->loss->loc;
  Node *loss = b.map[c->loss->id];
  t->loss = b.batched[c->loss->id] ? ir_reduce(c, OP_SUM, loss)
                                   : ir_binary(c, OP_MUL, loss, ir_const(c, B, shape_scalar()));
  t->outputs = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(c->outputs.len + 1));
  for (int i = 0; i < c->outputs.len; i++)
    t->outputs[i] = b.map[((Decl *)c->outputs.items[i])->node->id];
  t->grad_terms = autodiff(c, t->loss, NULL, NULL);
  if (c->perturb_gradient) perturb_gradient(c, t->grad_terms, c->perturb_gradient);
  return 1;
}
