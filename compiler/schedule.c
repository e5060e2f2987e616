/* schedule.c — decides, for one emitted function, which nodes it computes
 * (those its roots need), how often each value is used, and where each
 * materialised tensor lives in the workspace. Also counts ops and flops for
 * --stats. Nodes are already in a topological order (their ids), so every
 * pass here is a single loop: no recursion. */
#include "bpc.h"

/* Tensors that need no storage of their own: constants are literals,
 * parameters and inputs are read in place, and an index is a view. */
int node_is_materialised(const Node *n) {
  if (n->shape.rank == 0)
    return 0;
  return n->op != OP_CONST && n->op != OP_PARAM && n->op != OP_INPUT && n->op != OP_INDEX;
}

double node_flops(const Node *n) {
  double out = (double)shape_numel(n->shape);
  const Node *a = n->args[0];
  switch (n->op) {
  case OP_CONST: case OP_PARAM: case OP_INPUT: case OP_INDEX:
  case OP_BCAST: case OP_TRANSPOSE: case OP_SCATTER:
    return 0;
  case OP_SUM: case OP_SUMAX: case OP_MAXALL: case OP_MINALL:
  case OP_ARGMAXMASK: case OP_ARGMINMASK:
    return (double)shape_numel(a->shape);
  case OP_LSE:
    return 3.0 * (double)shape_numel(a->shape);
  case OP_DOT:
    return 2.0 * (double)shape_numel(a->shape);
  case OP_MATMUL: {
    int64_t k = a->shape.rank == 2 ? ((n->attr & MM_TA) ? a->shape.dim[0] : a->shape.dim[1])
                                   : a->shape.dim[0];
    return 2.0 * out * (double)k;
  }
  default:
    return out;
  }
}

static void clear_marks(Ctx *c) {
  for (int i = 0; i < c->nodes.len; i++) {
    Node *n = c->nodes.items[i];
    n->live = 0;
    n->uses = 0;
    n->ws_offset = -1;
    n->root = 0;
    n->inlined = 0;
  }
}

static void mark_roots(Ctx *c, Node **roots, int nroots, GradTerm **terms) {
  for (int i = 0; i < nroots; i++) {
    roots[i]->live = 1;
    roots[i]->root = 1;
    roots[i]->uses++;
  }
  if (!terms)
    return;
  for (int p = 0; p < c->params.len; p++)
    for (GradTerm *t = terms[p]; t; t = t->next) {
      t->node->live = 1;
      t->node->root = 1;
      t->node->uses++;
    }
}

/* Loop fusion: an elementwise tensor used exactly once, by an elementwise
 * op of the same shape or by a sum, is computed inside that consumer's
 * loop instead of being stored and read back: exp(x - m) summed is one
 * loop, not three passes over memory. Values the user named stay stored
 * under their names, and chains fuse up to a bounded depth, so the emitted
 * code stays readable. */
enum { MAX_FUSED_DEPTH = 6 };

static int can_consume_inline(const Node *y, const Node *x) {
  if (op_is_elementwise(y->op))
    return shape_eq(x->shape, y->shape);
  return y->op == OP_SUM;
}

static void mark_inlined(Ctx *c) {
  int *depth = arena_alloc(&c->arena, sizeof(int) * (size_t)(c->nodes.len + 1));
  for (int i = 0; i < c->nodes.len; i++) {
    Node *y = c->nodes.items[i];
    if (!y->live)
      continue;
    for (int k = 0; k < y->nargs; k++) {
      Node *x = y->args[k];
      if (x->shape.rank == 0 || !op_is_elementwise(x->op) || x->uses != 1 || x->root || x->inlined ||
          (x->name && !x->is_backward) ||
          !can_consume_inline(y, x) || depth[x->id] >= MAX_FUSED_DEPTH)
        continue;
      x->inlined = 1;
      if (depth[x->id] + 1 > depth[y->id])
        depth[y->id] = depth[x->id] + 1;
    }
  }
}

void schedule_function(Ctx *c, Node **roots, int nroots, GradTerm **terms, Schedule *out) {
  clear_marks(c);
  mark_roots(c, roots, nroots, terms);
  for (int i = c->nodes.len - 1; i >= 0; i--) {
    Node *n = c->nodes.items[i];
    if (!n->live)
      continue;
    for (int k = 0; k < n->nargs; k++) {
      n->args[k]->live = 1;
      n->args[k]->uses++;
    }
  }
  mark_inlined(c);
  out->order = (PtrVec){0};
  out->ws_elems = 0;
  for (int i = 0; i < c->nodes.len; i++) {
    Node *n = c->nodes.items[i];
    if (!n->live)
      continue;
    vec_push(&c->arena, &out->order, n);
    if (node_is_materialised(n) && !n->inlined) {
      n->ws_offset = out->ws_elems;
      out->ws_elems += shape_numel(n->shape);
    }
  }
}

static void count(Schedule *s, int backward_only_after, int *ops, double *flops, const char *seen) {
  for (int i = 0; i < s->order.len; i++) {
    Node *n = s->order.items[i];
    if (n->op == OP_CONST || n->op == OP_PARAM || n->op == OP_INPUT)
      continue;
    if (backward_only_after && seen[n->id])
      continue;
    (*ops)++;
    *flops += node_flops(n);
  }
}

void compute_stats(Ctx *c, Stats *st) {
  Schedule fwd, bwd;
  char *seen = arena_alloc(&c->arena, (size_t)c->nodes.len + 1);
  *st = (Stats){0};
  schedule_function(c, &c->loss, 1, NULL, &fwd);
  for (int i = 0; i < fwd.order.len; i++)
    seen[((Node *)fwd.order.items[i])->id] = 1;
  count(&fwd, 0, &st->fwd_ops, &st->fwd_flops, seen);
  schedule_function(c, &c->loss, 1, c->grad_terms, &bwd);
  count(&bwd, 1, &st->bwd_ops, &st->bwd_flops, seen);
  /* adding each gradient term into grad is work too */
  for (int p = 0; p < c->params.len; p++)
    for (GradTerm *t = c->grad_terms[p]; t; t = t->next)
      st->bwd_flops += (double)shape_numel(t->node->shape);
}
