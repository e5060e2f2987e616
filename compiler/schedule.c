/* schedule.c — decides, for one emitted function, which nodes it computes
 * (those its roots need), how often each value is used, and where each
 * materialised tensor lives in the workspace. Also counts ops and flops for
 * --stats. Nodes are already in a topological order (their ids), so every
 * pass here is a single loop: no recursion. */
#include <string.h>

#include "bpc.h"

/* Tensors that need no storage of their own: constants are literals,
 * parameters and inputs are read in place, and an index is a view. */
int node_is_materialised(const Node *n) {
  if (n->shape.rank == 0) return 0;
  return n->op != OP_CONST && n->op != OP_PARAM && n->op != OP_INPUT && n->op != OP_INDEX;
}

double node_flops(const Node *n) {
  if (op_is_window(n->op)) return window_flops(n);
  double out = (double)shape_numel(n->shape);
  const Node *a = n->args[0];
  switch (n->op) {
  case OP_CONST:
  case OP_PARAM:
  case OP_INPUT:
  case OP_INDEX:
  case OP_BCAST:
  case OP_TRANSPOSE:
  case OP_SCATTER:
  case OP_GATHER:
  case OP_SPREAD:
  case OP_CONCAT: return 0;
  case OP_SUM:
  case OP_SUMAX:
  case OP_MAXALL:
  case OP_MINALL:
  case OP_MAXROW:
  case OP_MINROW:
  case OP_ARGMAXROW:
  case OP_ARGMINROW:
  case OP_ARGMAXMASK:
  case OP_ARGMINMASK: return (double)shape_numel(a->shape);
  case OP_LSE: return 3.0 * (double)shape_numel(a->shape);
  case OP_DOT: return 2.0 * (double)shape_numel(a->shape);
  case OP_MATMUL: {
    int64_t k =
        a->shape.rank == 2 ? ((n->attr.mm & MM_TA) ? a->shape.dim[0] : a->shape.dim[1]) : a->shape.dim[0];
    return 2.0 * out * (double)k;
  }
  default: return out;
  }
}

static void alloc_tables(Ctx *c, Schedule *s) {
  size_t n = (size_t)c->nodes.len + 1;
  s->uses = arena_alloc(&c->arena, sizeof(int) * n);
  s->ws_offset = arena_alloc(&c->arena, sizeof(int64_t) * n);
  s->live = arena_alloc(&c->arena, n);
  s->root = arena_alloc(&c->arena, n);
  s->inlined = arena_alloc(&c->arena, n);
  for (size_t i = 0; i < n; i++)
    s->ws_offset[i] = -1;
}

static void mark_roots(Ctx *c, Schedule *s, Node **roots, int nroots, GradTerm **terms) {
  for (int i = 0; i < nroots; i++) {
    s->live[roots[i]->id] = s->root[roots[i]->id] = 1;
    s->uses[roots[i]->id]++;
  }
  if (!terms) return;
  for (int p = 0; p < c->params.len; p++)
    for (GradTerm *t = terms[p]; t; t = t->next) {
      s->live[t->node->id] = s->root[t->node->id] = 1;
      s->uses[t->node->id]++;
    }
}

Node **model_roots(Ctx *c, int *nroots) {
  Node **roots = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(c->outputs.len + 1));
  roots[0] = c->loss;
  for (int i = 0; i < c->outputs.len; i++)
    roots[i + 1] = ((Decl *)c->outputs.items[i])->node;
  *nroots = c->outputs.len + 1;
  return roots;
}

/* Loop fusion: an elementwise tensor used exactly once, by an elementwise
 * op of the same shape or by a sum, is computed inside that consumer's
 * loop instead of being stored and read back: exp(x - m) summed is one
 * loop, not three passes over memory. Values the user named stay stored
 * under their names, and chains fuse up to a bounded depth, so the emitted
 * code stays readable. */
enum { MAX_FUSED_DEPTH = 6 };

/* Whether x is the vector a matrix-vector product reads once per element,
 * in its outer loop (transpose(A) @ x and x @ B scale and add rows):
 * computed there, it needs no pass of its own. The other forms read the
 * vector once per row and would recompute it. */
static int is_outer_vector_operand(const Node *y, const Node *x) {
  if (y->op != OP_MATMUL || x->shape.rank != 1 || y->args[0] == y->args[1]) return 0;
  if (y->args[1] == x) return y->args[0]->shape.rank == 2 && (y->attr.mm & MM_TA);
  return y->args[0] == x && y->args[1]->shape.rank == 2 && !(y->attr.mm & MM_TB);
}

static int can_consume_inline(const Node *y, const Node *x, int fuse) {
  if (op_is_elementwise(y->op)) return shape_eq(x->shape, y->shape);
  if ((fuse & SCHED_FUSE_PRODUCTS) && is_outer_vector_operand(y, x)) return 1;
  return y->op == OP_SUM;
}

static void mark_inlined(Ctx *c, Schedule *s, int fuse) {
  int *depth = arena_alloc(&c->arena, sizeof(int) * (size_t)(c->nodes.len + 1));
  for (int i = 0; i < c->nodes.len; i++) {
    Node *y = c->nodes.items[i];
    if (!s->live[y->id]) continue;
    for (int k = 0; k < y->nargs; k++) {
      Node *x = y->args[k];
      if (x->shape.rank == 0 || !op_is_elementwise(x->op) || s->uses[x->id] != 1 || s->root[x->id] ||
          s->inlined[x->id] || (x->name && !x->is_backward) || !can_consume_inline(y, x, fuse) ||
          depth[x->id] >= MAX_FUSED_DEPTH)
        continue;
      s->inlined[x->id] = 1;
      if (depth[x->id] + 1 > depth[y->id]) depth[y->id] = depth[x->id] + 1;
    }
  }
}

/* ---- memory planning ----------------------------------------------------------
 * Tensors live in one workspace. A block is reused once the last reader of
 * its tensor has run, and an elementwise op may write over an argument of
 * its own shape that it reads for the last time (element i is read before
 * it is written). Roots and what they read stay until the end: outputs are
 * copied and some gradient terms are added there. */

typedef struct Block {
  int64_t offset, size;
} Block;

typedef struct Planner {
  Ctx *c;
  Schedule *s;
  Node *const *elsewhere; /* per node id: non-NULL when the value is written elsewhere (into grad) */
  int *last;   /* per node id: position of its last reader (AT_END: the end) */
  char *gone;  /* per node id: its block was handed over or freed */
  Block *free; /* free blocks */
  int nfree, cap;
  int64_t top; /* workspace elements in use at the high-water mark */
  int same_size; /* a free block goes only to a tensor of its size */
} Planner;

enum { AT_END = 0x7fffffff };

/* Views (indexing) and fused nodes read their arguments where they are read. */
static void note_read(Planner *p, Node *x, int pos, int depth) {
  if (pos > p->last[x->id]) p->last[x->id] = pos;
  if ((p->s->inlined[x->id] || x->op == OP_INDEX) && depth < 64)
    for (int k = 0; k < x->nargs; k++)
      note_read(p, x->args[k], pos, depth + 1);
}

/* Every block is a whole number of WS_ALIGN elements (64 bytes of floats),
 * so that every tensor starts on a cache line of the (aligned) workspace:
 * threads sharing a tensor by whole lines (the team form) then never write
 * the same line, and a vector loop starts aligned. */
enum { WS_ALIGN = 16 };
static int64_t block_size(int64_t elems) { return (elems + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN; }

static int64_t take_block(Planner *p, int64_t size) {
  size = block_size(size);
  int best = -1;
  for (int i = 0; i < p->nfree; i++) /* the smallest free block that fits */
    if (p->same_size ? p->free[i].size == size
                     : p->free[i].size >= size && (best < 0 || p->free[i].size < p->free[best].size))
      best = i;
  if (best < 0) {
    p->top += size;
    return p->top - size;
  }
  int64_t off = p->free[best].offset;
  p->free[best].offset += size;
  p->free[best].size -= size;
  if (p->free[best].size == 0) p->free[best] = p->free[--p->nfree];
  return off;
}

static void give_block(Planner *p, int64_t offset, int64_t size) {
  if (p->nfree == p->cap) {
    int cap = p->cap ? p->cap * 2 : 16;
    Block *b = arena_alloc(&p->c->arena, sizeof(Block) * (size_t)cap);
    if (p->nfree) memcpy(b, p->free, sizeof(Block) * (size_t)p->nfree);
    p->free = b;
    p->cap = cap;
  }
  p->free[p->nfree++] = (Block){offset, block_size(size)};
}

static int stored(const Planner *p, const Node *n) {
  return node_is_materialised(n) && !p->s->inlined[n->id] && !(p->elsewhere && p->elsewhere[n->id]);
}

/* Whether v is x or a view of x (a row or element of it, or of a view). */
static int is_view_of(const Node *v, const Node *x) {
  while (v->op == OP_INDEX && v != x)
    v = v->args[0];
  return v == x;
}

/* Whether the loop computing y reads x anywhere but at the element it is
 * writing: through a view (d = h - h[0] reads row 0 of h while it writes
 * every row), directly or from a fused argument. Such a y must not take
 * x's storage: the rows it overwrites first would be read again later. */
static int reads_elsewhere(const Schedule *s, const Node *y, const Node *x, int depth) {
  for (int k = 0; k < y->nargs; k++) {
    const Node *a = y->args[k];
    if (a->op == OP_INDEX && is_view_of(a, x)) return 1;
    if (a != x && s->inlined[a->id] && (depth >= 64 || reads_elsewhere(s, a, x, depth + 1))) return 1;
  }
  return 0;
}

void plan_workspace(Ctx *c, Schedule *s, Node *const *elsewhere, int same_size) {
  ArenaMark scratch = arena_mark(&c->arena);
  Planner p = {c,
               s,
               elsewhere,
               arena_alloc(&c->arena, sizeof(int) * (size_t)(c->nodes.len + 1)),
               arena_alloc(&c->arena, (size_t)c->nodes.len + 1),
               NULL,
               0,
               0,
               0,
               same_size};
  for (int i = 0; i < s->order.len; i++) {
    Node *y = s->order.items[i];
    if (s->root[y->id]) note_read(&p, y, AT_END, 0);
    if (s->inlined[y->id]) continue; /* its consumer reads its arguments */
    for (int k = 0; k < y->nargs; k++)
      note_read(&p, y->args[k], s->root[y->id] ? AT_END : i, 0);
  }
  for (int i = 0; i < s->order.len; i++) { /* planned afresh: nothing keeps a block of an earlier plan */
    Node *y = s->order.items[i];
    s->ws_offset[y->id] = -1;
  }
  int64_t used = 0;
  for (int i = 0; i < s->order.len; i++) {
    Node *y = s->order.items[i];
    if (!stored(&p, y)) continue;
    int64_t size = shape_numel(y->shape), *at = &s->ws_offset[y->id];
    if (op_is_elementwise(y->op)) /* in place over an argument read here for the last time */
      for (int k = 0; k < y->nargs && *at < 0; k++) {
        Node *x = y->args[k];
        if (stored(&p, x) && !p.gone[x->id] && p.last[x->id] == i && shape_eq(x->shape, y->shape) &&
            !reads_elsewhere(s, y, x, 0)) {
          *at = s->ws_offset[x->id];
          p.gone[x->id] = 1;
        }
      }
    if (*at < 0) *at = take_block(&p, size);
    if (*at + size > used) used = *at + size; /* the padding past the last tensor is not needed */
    for (int k = 0; k < y->nargs; k++) { /* arguments read here for the last time */
      Node *x = y->args[k];
      if (stored(&p, x) && !p.gone[x->id] && p.last[x->id] == i) {
        give_block(&p, s->ws_offset[x->id], shape_numel(x->shape));
        p.gone[x->id] = 1;
      }
    }
  }
  s->ws_elems = used;
  arena_release(&c->arena, scratch);
}

void schedule_function(Ctx *c, Node **roots, int nroots, GradTerm **terms, int fuse, Schedule *out) {
  *out = (Schedule){0};
  alloc_tables(c, out);
  mark_roots(c, out, roots, nroots, terms);
  for (int i = c->nodes.len - 1; i >= 0; i--) {
    Node *n = c->nodes.items[i];
    if (!out->live[n->id]) continue;
    for (int k = 0; k < n->nargs; k++) {
      out->live[n->args[k]->id] = 1;
      out->uses[n->args[k]->id]++;
    }
  }
  ArenaMark scratch = arena_mark(&c->arena);
  mark_inlined(c, out, fuse);
  arena_release(&c->arena, scratch);
  for (int i = 0; i < c->nodes.len; i++) {
    Node *n = c->nodes.items[i];
    if (out->live[n->id]) vec_push(&c->arena, &out->order, n);
  }
  plan_workspace(c, out, NULL, 0);
}

static void count(Schedule *s, int backward_only_after, int *ops, double *flops, const char *seen) {
  for (int i = 0; i < s->order.len; i++) {
    Node *n = s->order.items[i];
    if (n->op == OP_CONST || n->op == OP_PARAM || n->op == OP_INPUT) continue;
    if (backward_only_after && seen[n->id]) continue;
    (*ops)++;
    *flops += node_flops(n);
  }
}

void compute_stats(Ctx *c, Stats *st) {
  Schedule fwd, bwd;
  char *seen = arena_alloc(&c->arena, (size_t)c->nodes.len + 1);
  *st = (Stats){0};
  schedule_function(c, &c->loss, 1, NULL, 0, &fwd);
  for (int i = 0; i < fwd.order.len; i++)
    seen[((Node *)fwd.order.items[i])->id] = 1;
  count(&fwd, 0, &st->fwd_ops, &st->fwd_flops, seen);
  schedule_function(c, &c->loss, 1, c->grad_terms, 0, &bwd);
  count(&bwd, 1, &st->bwd_ops, &st->bwd_flops, seen);
  /* adding each gradient term into grad is work too: as many additions as
     the term has elements of its own (a slice's term, W[i]'s, is scattered
     into its part of grad and costs that part, not all of W) */
  for (int p = 0; p < c->params.len; p++)
    for (GradTerm *t = c->grad_terms[p]; t; t = t->next) {
      const Node *own = t->node->op == OP_SCATTER || t->node->op == OP_SPREAD ? t->node->args[0] : t->node;
      st->bwd_flops += (double)shape_numel(own->shape);
    }
}
