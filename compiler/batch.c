/* batch.c — the model over B examples at once, for training and scoring.
 *
 * Every value that depends on an input gets a leading batch axis: a scalar
 * becomes [B], a vector [n] becomes [B, n]. Values that depend only on
 * parameters stay as they are and are computed once per batch. The point is
 * speed: x @ W for one example is a matrix-vector product that streams all
 * of W for n multiply-adds; for B examples it is one matrix-matrix product
 * that streams W once for B*n. The batched loss is the sum of the
 * per-example losses, and autodiff runs on it as on any graph.
 *
 * Values that would need a third axis (a per-example matrix) and ops without
 * a batched form (indexing an example's vector) make the model unbatchable;
 * it then trains one example at a time, which is always correct. */
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
  if (s.rank >= 2) {
    b->why = "a per-example value is a matrix";
    return 0;
  }
  *out = s.rank == 0 ? shape_vec(b->B) : shape_mat(b->B, s.dim[0]);
  return 1;
}

/* x as an operand of an elementwise op whose per-example result has shape
 * s: a batched scalar [B] must be spread along the columns of [B, n]. */
static Node *spread(Batcher *b, Node *orig, Shape s) {
  Node *x = b->map[orig->id];
  if (b->batched[orig->id] && orig->shape.rank == 0 && s.rank == 1)
    return ir_bcast(b->c, x, shape_mat(b->B, s.dim[0]), BCAST_COLS);
  return x;
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
  b->why = "a matrix product with a per-example matrix";
  return NULL;
}

static Node *batch_node(Batcher *b, Node *n) {
  Ctx *c = b->c;
  Node *a = n->args[0], *y = n->args[1];
  Shape s;
  if (!batched_shape(b, n->shape, &s)) return NULL;
  if (op_is_elementwise(n->op)) {
    if (!y) return n->op == OP_POWC ? ir_powc(c, b->map[a->id], n->value) : ir_unary(c, n->op, b->map[a->id]);
    return ir_binary(c, n->op, spread(b, a, n->shape), spread(b, y, n->shape));
  }
  switch (n->op) {
  case OP_SUM: /* of one example's vector: each row of the batch */ return ir_sumax(c, b->map[a->id], 1);
  case OP_LSE: return ir_reduce(c, OP_LSE, b->map[a->id]);
  case OP_BCAST: /* a per-example scalar repeated into a vector */
    if (a->shape.rank == 0 && n->shape.rank == 1) return ir_bcast(c, b->map[a->id], s, BCAST_COLS);
    break;
  case OP_MATMUL: return batch_matmul(b, n);
  case OP_DOT:
    if (b->batched[a->id] && b->batched[y->id])
      return ir_sumax(c, ir_binary(c, OP_MUL, b->map[a->id], b->map[y->id]), 1);
    return ir_matmul(c, b->map[b->batched[a->id] ? a->id : y->id], b->batched[a->id] ? y : a, 0);
  default: break;
  }
  b->why = arena_printf(&c->arena, "'%s' has no batched form", op_name(n->op));
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
    if (!any) {
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
