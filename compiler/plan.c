/* plan.c — lowers one function's Schedule to a loop plan: the list of
 * steps the function runs, each a loop nest (or one statement) with its
 * bounds, its destination (its own storage or a parameter's gradient),
 * whether it stores or adds, the fused expression it computes, a sum taken
 * in the same loop, the scalar slot of each value, and the part of the
 * function it lands in. Everything here is a decision; emit_c.c only
 * prints it, and `bpc --emit loops` prints it as text (plan_print).
 *
 * The decisions, in the order plan_function takes them:
 *   1. gradient terms written straight into their gradient (fuse_grads)
 *   2. which term writes each gradient first, with = (choose_first_terms)
 *   3. sums taken in the loop of the tensor they sum (plan_fused_sums)
 *   4. A^T v computed in the loop of A x (plan_row_fusion)
 *   5. scalars in reused slots, and cutting into parts (plan_scalar_slots)
 *   6. the steps in order (make_steps) */
#include <string.h>

#include "bpc.h"

/* Ops that can write straight into a gradient with += element by element. */
static int can_accumulate(const Node *n) {
  return op_is_elementwise(n->op) || op_is_window(n->op) || n->op == OP_MATMUL || n->op == OP_OUTER || n->op == OP_BCAST ||
         n->op == OP_TRANSPOSE || n->op == OP_SCATTER || n->op == OP_ARGMAXMASK || n->op == OP_ARGMINMASK ||
         n->op == OP_ARGMAXROW || n->op == OP_ARGMINROW;
}

/* Terms that touch only a few elements are cheapest added, never stored:
 * storing them first would mean zeroing the rest. */
static int is_sparse_term(const Node *n) {
  return n->op == OP_ARGMAXMASK || n->op == OP_ARGMINMASK || n->op == OP_SCATTER || n->op == OP_ARGMAXROW ||
         n->op == OP_ARGMINROW;
}

/* Sparse terms written into their gradient wait until the end of the
 * function, so that a dense term can store first. */
static int deferred(const Plan *p, const Node *n) { return p->grad_fused[n->id] && is_sparse_term(n); }

/* ---- loop nests ------------------------------------------------------------------
 * An elementwise loop over shape `over` reads each operand (broadcast,
 * numpy's rule) at the same element or repeats it along some axes. Axes of
 * size 1 need no loop, and neighbouring axes along which every operand is
 * read alike (all of it, or repeated) are one loop: the same shapes are one
 * flat loop, a row vector over a matrix is rows then columns. */

/* Whether an operand of shape x is repeated along axis k of over. */
static int repeated_along(Shape x, Shape over, int k) {
  int kx = k - (over.rank - x.rank);
  return kx < 0 || x.dim[kx] != over.dim[k];
}

static const char *const loop_vars[BPC_MAX_RANK] = {"i", "j", "i2", "i3", "i4", "i5", "i6", "i7"};

void nest_over(Shape over, const Shape *operands, int n, Nest *nest) {
  memset(nest, 0, sizeof *nest);
  nest->over = over;
  uint64_t prev = 0;
  for (int k = 0; k < over.rank; k++) {
    if (over.dim[k] == 1) continue;
    uint64_t pattern = 0; /* bit j: operand j repeated along axis k */
    for (int j = 0; j < n && j < 64; j++)
      if (operands[j].rank && repeated_along(operands[j], over, k)) pattern |= (uint64_t)1 << j;
    if (nest->n && pattern == prev) {
      nest->axes[nest->n - 1] |= 1u << k;
      nest->dim[nest->n - 1] *= over.dim[k];
    } else {
      nest->axes[nest->n] = 1u << k;
      nest->dim[nest->n++] = over.dim[k];
    }
    prev = pattern;
  }
  if (!nest->n && over.rank) { /* one element: one loop of 1, as a vector's */
    nest->axes[0] = (1u << over.rank) - 1;
    nest->dim[nest->n++] = 1;
  }
  for (int g = 0; g < nest->n; g++)
    nest->var[g] = loop_vars[g];
}

int nest_eq(const Nest *a, const Nest *b) {
  if (a->n != b->n) return 0;
  for (int g = 0; g < a->n; g++)
    if (a->axes[g] != b->axes[g] || a->dim[g] != b->dim[g]) return 0;
  return 1;
}

/* The non-scalar leaves of n's fused expression, as shapes. */
static int leaf_shapes(const Schedule *S, const Node *n, Shape *out, int count, int depth) {
  for (int k = 0; k < n->nargs && count < 64; k++) {
    const Node *x = n->args[k];
    if (sched_inlined(S, x) && depth < 64)
      count = leaf_shapes(S, x, out, count, depth + 1);
    else if (x->shape.rank)
      out[count++] = x->shape;
  }
  return count;
}

/* The leaves the loop over n's elements reads: the fused expression's for
 * an elementwise or inlined n, else n itself, read whole. */
static int loop_leaves(const Schedule *S, const Node *n, Shape *leaves, int count) {
  if (op_is_elementwise(n->op)) return leaf_shapes(S, n, leaves, count, 0);
  if (n->shape.rank && count < 64) leaves[count++] = n->shape;
  return count;
}

/* The gradient terms written straight into their gradient: those used
 * once, and those whose one other reader is a sum of them, which their
 * loop then takes as it writes (softmax's share in logsumexp's max). */
static void fuse_grads(Ctx *c, const Target *t, Plan *p) {
  const Schedule *s = &p->s;
  char *summed_by = arena_alloc(&c->arena, (size_t)c->nodes.len + 1);
  for (int i = 0; i < s->order.len; i++) {
    Node *y = s->order.items[i];
    if (y->op == OP_SUM) summed_by[y->args[0]->id] = 1;
  }
  for (int k = 0; k < c->params.len; k++) {
    Decl *d = c->params.items[k];
    for (GradTerm *g = t->grad_terms[k]; g; g = g->next) {
      Node *n = g->node;
      if (n->shape.rank == 0 || !can_accumulate(n) || !node_is_materialised(n)) continue;
      int uses = s->uses[n->id];
      int summed = uses == 2 && op_is_elementwise(n->op) && !sched_inlined(s, n) && summed_by[n->id];
      if (uses == 1 || summed) p->grad_fused[n->id] = d->node;
    }
  }
}

/* Per parameter, the gradient term the backward function writes first, in
 * the order it runs them: dense terms stored in place as they are computed,
 * then the terms added at the end, then the deferred sparse ones. With acc
 * 0 that term is stored with `=`, so the gradient needs no zeroing pass;
 * parameters no gradient reaches are zeroed at the start instead. */
static void choose_first_terms(Ctx *c, const Target *t, Plan *p) {
  const Schedule *s = &p->s;
  for (int i = 0; i < s->order.len; i++) {
    Node *n = s->order.items[i], *fused = p->grad_fused[n->id];
    if (fused && !sched_inlined(s, n) && !deferred(p, n) && !p->first_term[fused->attr.slot])
      p->first_term[fused->attr.slot] = n;
  }
  for (int k = 0; k < c->params.len; k++)
    for (GradTerm *g = t->grad_terms[k]; g && !p->first_term[k]; g = g->next)
      if (!p->grad_fused[g->node->id]) p->first_term[k] = g->node;
  for (int i = 0; i < s->order.len; i++) {
    Node *n = s->order.items[i], *fused = p->grad_fused[n->id];
    if (fused && deferred(p, n) && !p->first_term[fused->attr.slot]) p->first_term[fused->attr.slot] = n;
  }
}

/* The leaves of a fused expression: what its loop reads from memory or
 * from scalars. Constants are left out (always ready); parameters and
 * inputs are not: each is declared where the model declares it, so a loop
 * before that may not read it (o = mean(W, 1), then param t, then
 * sum(o * t): the sum cannot be taken in o's loop). Returns the count, or
 * -1 past cap. Recursion is bounded by schedule.c's MAX_FUSED_DEPTH. */
enum { MAX_LEAVES = 64 };

static int collect_leaves(const Schedule *S, Node *x, Node **out, int n, int depth) {
  for (int k = 0; k < x->nargs && n >= 0; k++) {
    Node *a = x->args[k];
    if (sched_inlined(S, a))
      n = depth > 16 ? -1 : collect_leaves(S, a, out, n, depth + 1);
    else if (a->op != OP_CONST)
      n = n < MAX_LEAVES ? (out[n] = a, n + 1) : -1;
  }
  return n;
}

/* The stored tensor in whose loop the sum of the fused expression x can be
 * taken: the elementwise tensor of x's shape among x's leaves that is
 * computed last, so that every other leaf is ready by then. */
static Node *find_sum_host(const Plan *p, Node *x, const int *pos) {
  Node *leaf[MAX_LEAVES], *host = NULL;
  int n = collect_leaves(&p->s, x, leaf, 0, 0), ready_at = -1;
  for (int k = 0; k < n; k++) {
    Node *a = leaf[k];
    if (pos[a->id] > ready_at) ready_at = pos[a->id];
    if (op_is_elementwise(a->op) && shape_eq(a->shape, x->shape) && (!host || pos[a->id] > pos[host->id]))
      host = a;
  }
  if (!host || pos[host->id] < ready_at) return NULL;
  if (p->grad_fused[host->id] || p->sum_into[host->id]) return NULL; /* its loop writes no array of its own */
  /* the sum reads x with the host's loop variables: x's leaves must not
     split the host's loops */
  Shape leaves[128];
  Nest alone, both;
  int nh = loop_leaves(&p->s, host, leaves, 0);
  nest_over(host->shape, leaves, nh, &alone);
  int nb = leaf_shapes(&p->s, x, leaves + nh, 0, 0) + nh;
  nest_over(host->shape, leaves, nb, &both);
  return nest_eq(&alone, &both) ? host : NULL;
}

/* A sum of a stored elementwise tensor is computed in the loop that
 * stores it (one pass over memory instead of two); so is a sum of a fused
 * expression, in the loop of the last tensor it reads (r = s - T x and
 * sum(r * r) are one loop). */
static void plan_fused_sums(Plan *p, const int *pos) {
  const Schedule *s = &p->s;
  for (int i = 0; i < s->order.len; i++) {
    Node *y = s->order.items[i];
    Node *x = y->args[0];
    if (y->op != OP_SUM || !x || !op_is_elementwise(x->op) || x->shape.rank == 0) continue;
    Node *host = sched_inlined(s, x) ? find_sum_host(p, x, pos) : x;
    if (host && !p->sum_into[host->id]) {
      p->sum_into[host->id] = y;
      p->done_elsewhere[y->id] = 1;
    }
  }
}

/* For a gradient term g = transpose(A) @ v whose fused vector v reads, row
 * by row, only y = A @ x and values ready before y: the product y that g
 * can be computed with, walking A once instead of twice (least squares,
 * linear and logistic regression). g moves up to y, so it must be the
 * first write of its gradient or come after that write. */
static Node *row_partner_of(const Plan *p, Node *g, const int *pos) {
  Node *A = g->args[0], *v = g->args[1], *param = p->grad_fused[g->id];
  if (g->op != OP_MATMUL || !param || !A || A->shape.rank != 2 || g->attr.mm != MM_TA || !sched_inlined(&p->s, v))
    return NULL;
  Node *leaf[MAX_LEAVES], *y = NULL;
  int n = collect_leaves(&p->s, v, leaf, 0, 0);
  for (int k = 0; k < n; k++) {
    Node *a = leaf[k];
    if (a->op == OP_MATMUL && a->args[0] == A && a->attr.mm == 0 && a->args[1]->shape.rank == 1 &&
        !p->grad_fused[a->id] && !sched_inlined(&p->s, a))
      y = a;
  }
  if (!y) return NULL;
  for (int k = 0; k < n; k++)
    if (leaf[k] != y && pos[leaf[k]->id] > pos[y->id]) return NULL;
  Node *first = p->first_term[param->attr.slot];
  if (first != g && (!first || pos[first->id] > pos[y->id])) return NULL;
  return y;
}

static void plan_row_fusion(Plan *p, const int *pos) {
  const Schedule *s = &p->s;
  for (int i = 0; i < s->order.len; i++) {
    Node *g = s->order.items[i];
    Node *y = g->op == OP_MATMUL ? row_partner_of(p, g, pos) : NULL;
    if (y && !p->row_partner[y->id]) {
      p->row_partner[y->id] = g;
      p->done_elsewhere[g->id] = 1;
    }
  }
}

/* ---- scalar slots and parts ------------------------------------------------------
 * A model of many thousands of scalar statements would give tcc as many
 * local variables: its identifier table is a fixed-size hash, so compile
 * time grows with the square of the model, and each local takes its own
 * stack slot. Past SLOT_THRESHOLD scalars, a function keeps them in one
 * local array sc[], a slot reused once its value is read for the last
 * time (the way plan_workspace reuses the workspace). gcc optimises sc[k]
 * like a local variable.
 *
 * gcc's time on one function grows faster than its length (three minutes
 * for the 50k statements of a 10k-statement scalar chain). A function
 * with slots and more than part_nodes nodes is cut into parts of that many
 * nodes, which the printer makes static functions called in order. */
enum { SLOT_THRESHOLD = 8192, PART_NODES = 512, READ_AT_END = 0x7fffffff };

static int is_slot_scalar(const Node *n) { return n->shape.rank == 0 && n->op != OP_CONST; }

static void note_scalar_read(const Schedule *S, int *last, Node *x, int at, int depth) {
  if (is_slot_scalar(x) && at > last[x->id]) last[x->id] = at;
  if (sched_inlined(S, x) && depth < 64)
    for (int k = 0; k < x->nargs; k++)
      note_scalar_read(S, last, x->args[k], at, depth + 1);
}

/* Whether the function keeps its scalars in slots, and whether it is cut
 * into parts: from the count of scalars and nodes. */
static void choose_form(Plan *p, const PlanOptions *o) {
  const Schedule *s = &p->s;
  int count = 0;
  for (int i = 0; i < s->order.len; i++)
    count += is_slot_scalar(s->order.items[i]);
  p->use_slots = count > 0 && count > (o->slots_above ? o->slots_above : SLOT_THRESHOLD);
  p->part_nodes = p->use_slots && o->part_nodes >= 0 ? (o->part_nodes ? o->part_nodes : PART_NODES) : 0;
  if (p->part_nodes && s->order.len <= p->part_nodes) p->part_nodes = 0;
}

static void plan_scalar_slots(Ctx *c, Plan *p) {
  const Schedule *s = &p->s;
  if (!p->use_slots) return;
  int count = s->order.len;
  int *last = arena_alloc(&c->arena, sizeof(int) * (size_t)(c->nodes.len + 1));
  int64_t *free_slots = arena_alloc(&c->arena, sizeof(int64_t) * (size_t)(2 * count + 1)), nfree = 0;
  int *dies = arena_alloc(&c->arena, sizeof(int) * (size_t)(s->order.len + 1)); /* per position: a list */
  int *next = arena_alloc(&c->arena, sizeof(int) * (size_t)(c->nodes.len + 1));
  for (int i = 0; i < c->nodes.len; i++)
    last[i] = -1;
  for (int i = 0; i < s->order.len; i++) {
    Node *y = s->order.items[i];
    dies[i] = -1;
    if (s->root[y->id]) note_scalar_read(s, last, y, READ_AT_END, 64);
    if (sched_inlined(s, y)) continue; /* read where its consumer is */
    for (int k = 0; k < y->nargs; k++)
      note_scalar_read(s, last, y->args[k], deferred(p, y) ? READ_AT_END : i, 0);
  }
  for (int i = 0; i < s->order.len; i++) {
    Node *y = s->order.items[i], *defs[2] = {NULL, NULL};
    int ndefs = 0;
    if (is_slot_scalar(y) && !p->done_elsewhere[y->id]) defs[ndefs++] = y;
    if (p->sum_into[y->id]) defs[ndefs++] = p->sum_into[y->id]; /* a sum taken in y's loop */
    for (int k = 0; k < ndefs; k++) {
      Node *d = defs[k];
      p->slot[d->id] = nfree ? free_slots[--nfree] : p->nslots++;
      int at = last[d->id] < i ? i : last[d->id]; /* never read: free at once */
      if (at != READ_AT_END) next[d->id] = dies[at], dies[at] = d->id;
    }
    /* slots free up after this position's own values took theirs: a loop
       writing its result may still read its arguments */
    for (int id = dies[i]; id >= 0; id = next[id])
      free_slots[nfree++] = p->slot[id];
  }
}

/* ---- steps -------------------------------------------------------------------------- */

/* Appends a loop to the step's nest. */
static void loop(Step *st, const char *var, int64_t bound) {
  st->nest.var[st->nest.n] = var;
  st->nest.dim[st->nest.n++] = bound;
}

/* A product's loop nest, in the order the C runs it: p runs over the
 * shared axis. */
static void product_loops(Step *st) {
  const Node *n = st->node, *a = n->args[0], *b = n->args[1];
  int ta = (n->attr.mm & MM_TA) != 0, tb = (n->attr.mm & MM_TB) != 0;
  if (a->shape.rank == 2 && b->shape.rank == 2) {
    int64_t k = ta ? a->shape.dim[0] : a->shape.dim[1];
    loop(st, "i", n->shape.dim[0]);
    if (tb) loop(st, "j", n->shape.dim[1]);
    loop(st, "p", k);
    if (!tb) loop(st, "j", n->shape.dim[1]);
  } else if (a->shape.rank == 2) { /* A @ v: rows of A dotted with v, or (transposed) scaled and added */
    loop(st, ta ? "p" : "i", a->shape.dim[0]);
    loop(st, ta ? "i" : "p", a->shape.dim[1]);
  } else { /* v @ B */
    loop(st, tb ? "j" : "p", b->shape.dim[0]);
    loop(st, tb ? "p" : "j", b->shape.dim[1]);
  }
}

/* A window op's loops, as emit_c.c writes them: a convolution's over the
 * outputs, then a window's taps (its kernel gradient: over the taps, then
 * the outputs); a pooling's over the planes of every image and channel. */
static void window_nest(Step *st) {
  Window w = window_of(st->node);
  int64_t cg = w.c / w.groups;
  if (st->node->op == OP_CONV2D_DK) {
    const char *var[] = {"oc", "ic", "ky", "kx", "n", "oy", "ox"};
    int64_t dim[] = {w.o, cg, w.kh, w.kw, w.n, w.ho, w.wo};
    for (int k = 0; k < 7; k++)
      loop(st, var[k], dim[k]);
  } else if (op_is_conv(st->node->op)) {
    const char *var[] = {"n", "oc", "oy", "ox", "ic", "ky", "kx"};
    int64_t dim[] = {w.n, w.o, w.ho, w.wo, cg, w.kh, w.kw};
    for (int k = 0; k < 7; k++)
      loop(st, var[k], dim[k]);
  } else {
    loop(st, "n", w.n * w.c);
    loop(st, "oy", w.ho);
    loop(st, "ox", w.wo);
    loop(st, "ky", w.kh);
    loop(st, "kx", w.kw);
  }
}

/* The loop nest a step runs, outermost first (none: one statement). */
static void set_loops(const Schedule *S, Step *st) {
  const Node *n = st->node, *a = n->args[0];
  Shape leaves[64];
  memset(&st->nest, 0, sizeof st->nest);
  if (st->kind == STEP_ADD_TERM) {
    if (n->shape.rank) loop(st, "i", shape_numel(n->shape));
    return;
  }
  if (st->kind != STEP_COMPUTE) return;
  if (op_is_elementwise(n->op)) {
    if (n->shape.rank) nest_over(n->shape, leaves, loop_leaves(S, n, leaves, 0), &st->nest);
    return;
  }
  if (op_is_window(n->op)) {
    window_nest(st);
    return;
  }
  switch (n->op) {
  case OP_SUM: { /* over its argument: a fused expression's leaves, or the stored tensor */
    int count = 0;
    if (sched_inlined(S, a))
      count = loop_leaves(S, a, leaves, 0);
    else if (a->shape.rank)
      leaves[count++] = a->shape;
    nest_over(a->shape, leaves, count, &st->nest);
    return;
  }
  case OP_MATMUL: product_loops(st); return;
  case OP_BCAST: /* its argument read as an operand repeated along the axes */
    leaves[0] = shape_with_ones(n->shape, (unsigned)n->attr.axes);
    nest_over(n->shape, leaves, 1, &st->nest);
    return;
  case OP_SUMAX: /* the result is an operand repeated along the summed axes */
    leaves[0] = shape_with_ones(a->shape, (unsigned)n->attr.axes);
    nest_over(a->shape, leaves, 1, &st->nest);
    return;
  case OP_OUTER:
  case OP_TRANSPOSE:
    loop(st, "i", n->shape.dim[0]);
    loop(st, "j", n->shape.dim[1]);
    return;
  case OP_CONCAT: /* per argument: its blocks, then a block's elements */
    loop(st, "i", shape_outer(n->shape, shape_axis_of((unsigned)n->attr.axes)));
    loop(st, "j", shape_numel(n->shape) / st->nest.dim[0]);
    return;
  case OP_GATHER: /* every axis of the result */
  case OP_SPREAD: { /* every axis of the gradient it spreads */
    const Node *x = n->op == OP_GATHER ? n : a;
    for (int k = 0; k < x->shape.rank; k++)
      loop(st, loop_vars[k], x->shape.dim[k]);
    return;
  }
  case OP_MAXROW:
  case OP_MINROW:
  case OP_ARGMAXROW:
  case OP_ARGMINROW:
  case OP_LSE: { /* rows, then the last axis */
    int64_t cols = a->shape.dim[a->shape.rank - 1];
    loop(st, "i", shape_numel(a->shape) / cols);
    loop(st, "j", cols);
    return;
  }
  default: loop(st, "i", shape_numel(a->shape)); return; /* DOT, MAXALL, MINALL, ARG*MASK, SCATTER */
  }
}

static Step *add_step(Ctx *c, Plan *p, StepKind kind, Node *n, int part) {
  if (p->nsteps == p->cap) {
    int cap = p->cap ? 2 * p->cap : 64;
    Step *steps = arena_alloc(&c->arena, sizeof(Step) * (size_t)cap);
    if (p->nsteps) memcpy(steps, p->steps, sizeof(Step) * (size_t)p->nsteps);
    p->steps = steps;
    p->cap = cap;
  }
  Step *st = &p->steps[p->nsteps++];
  memset(st, 0, sizeof *st);
  st->kind = kind;
  st->node = n;
  st->part = part;
  st->param = -1;
  return st;
}

/* Where a computed value goes and how. */
static void set_destination(Plan *p, Step *st) {
  Node *n = st->node, *fused = p->grad_fused[n->id];
  if (fused) { /* this value only ever goes into one gradient: write it there */
    st->dest = DEST_GRAD;
    st->param = (int)fused->attr.slot;
    st->write = p->first_term[st->param] == n ? WRITE_FIRST : WRITE_ADD;
  } else {
    st->dest = DEST_VALUE;
    st->write = WRITE_STORE;
  }
}

/* One step per node the function computes itself, in schedule order (a
 * fused node is computed in its consumer's loop, a sum or gradient term
 * done elsewhere in its host's, a deferred term at the end); then the
 * stored gradient terms added into their gradients; then the deferred. */
static void make_steps(Ctx *c, const Target *t, int with_grads, Plan *p) {
  const Schedule *s = &p->s;
  for (int i = 0; i < s->order.len; i++) {
    Node *n = s->order.items[i];
    if (sched_inlined(s, n) || deferred(p, n) || p->done_elsewhere[n->id] || n->op == OP_CONST) continue;
    int part = p->part_nodes ? i / p->part_nodes : 0;
    StepKind kind = n->op == OP_PARAM || n->op == OP_INPUT ? STEP_LEAF : n->op == OP_INDEX ? STEP_VIEW : STEP_COMPUTE;
    Step *st = add_step(c, p, kind, n, part);
    if (kind != STEP_COMPUTE) continue;
    set_destination(p, st);
    st->sum = n->shape.rank ? p->sum_into[n->id] : NULL;
    st->partner = p->row_partner[n->id];
    set_loops(s, st);
  }
  if (!with_grads) return;
  for (int k = 0; k < c->params.len; k++)
    for (GradTerm *g = t->grad_terms[k]; g; g = g->next) {
      if (p->grad_fused[g->node->id]) continue;
      Step *st = add_step(c, p, STEP_ADD_TERM, g->node, -1);
      st->dest = DEST_GRAD;
      st->param = k;
      st->write = p->first_term[k] == g->node ? WRITE_FIRST : WRITE_ADD;
      set_loops(s, st);
    }
  for (int i = 0; i < s->order.len; i++) {
    Node *n = s->order.items[i];
    if (!deferred(p, n)) continue;
    Step *st = add_step(c, p, STEP_COMPUTE, n, -1);
    set_destination(p, st);
    set_loops(s, st);
  }
}

void plan_function(Ctx *c, const Target *t, Node **roots, int nroots, int with_grads, const PlanOptions *o,
                   Plan *p) {
  memset(p, 0, sizeof *p);
  size_t n = (size_t)c->nodes.len + 1;
  schedule_function(c, roots, nroots, with_grads ? t->grad_terms : NULL, o->fuse_products ? SCHED_FUSE_PRODUCTS : 0,
                    &p->s);
  p->grad_fused = arena_alloc(&c->arena, sizeof(Node *) * n);
  p->first_term = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(c->params.len + 1));
  p->sum_into = arena_alloc(&c->arena, sizeof(Node *) * n);
  p->row_partner = arena_alloc(&c->arena, sizeof(Node *) * n);
  p->done_elsewhere = arena_alloc(&c->arena, n);
  p->slot = arena_alloc(&c->arena, sizeof(int64_t) * n);
  for (size_t i = 0; i < n; i++)
    p->slot[i] = -1;
  if (with_grads) {
    fuse_grads(c, t, p);
    plan_workspace(c, &p->s, p->grad_fused, o->same_size_blocks); /* what goes into grad takes none */
    choose_first_terms(c, t, p);
  }
  int *pos = arena_alloc(&c->arena, sizeof(int) * n);
  for (int i = 0; i < p->s.order.len; i++)
    pos[((Node *)p->s.order.items[i])->id] = i;
  plan_fused_sums(p, pos);
  if (o->fuse_products) plan_row_fusion(p, pos); /* plain loops only: the kernels read stored vectors */
  choose_form(p, o);
  plan_scalar_slots(c, p);
  make_steps(c, t, with_grads, p);
}

/* ---- the plan as text: bpc --emit loops --------------------------------------------- */

static void print_ref(Buf *out, const Plan *p, const Node *x, int depth);

/* A fused expression: the inlined nodes written out, stored ones by id. */
static void print_expr(Buf *out, const Plan *p, const Node *n, int depth) {
  buf_printf(out, "%s(", op_name(n->op));
  for (int k = 0; k < n->nargs; k++) {
    if (k) buf_puts(out, ", ");
    print_ref(out, p, n->args[k], depth + 1);
  }
  ir_print_options(n, out);
  buf_puts(out, ")");
}

static void print_ref(Buf *out, const Plan *p, const Node *x, int depth) {
  if (x->op == OP_CONST)
    buf_printf(out, "%.17g", x->value);
  else if (sched_inlined(&p->s, x) && depth < 64)
    print_expr(out, p, x, depth);
  else if (p->slot[x->id] >= 0)
    buf_printf(out, "%%%d@sc%lld", x->id, (long long)p->slot[x->id]);
  else
    buf_printf(out, "%%%d", x->id);
}

/* "for i<128 p<784: " */
static void print_loops(Buf *out, const Step *st) {
  for (int k = 0; k < st->nest.n; k++)
    buf_printf(out, "%s%s<%lld", k ? " " : "for ", st->nest.var[k], (long long)st->nest.dim[k]);
  if (st->nest.n) buf_puts(out, ": ");
}

static const char *write_word(WriteMode w) {
  return w == WRITE_STORE ? "=" : w == WRITE_ADD ? "+=" : "= (+= when acc)";
}

static void print_dest(Ctx *c, Buf *out, const Plan *p, const Step *st) {
  const Node *n = st->node;
  if (st->dest == DEST_GRAD) {
    buf_printf(out, "grad %s %s", ((Decl *)c->params.items[st->param])->name, write_word(st->write));
  } else if (p->slot[n->id] >= 0) {
    buf_printf(out, "sc%lld =", (long long)p->slot[n->id]);
  } else if (n->shape.rank && p->s.ws_offset[n->id] >= 0) {
    buf_printf(out, "ws[%lld..%lld) =", (long long)p->s.ws_offset[n->id],
               (long long)(p->s.ws_offset[n->id] + shape_numel(n->shape)));
  } else {
    buf_puts(out, "local =");
  }
}

void plan_print(Ctx *c, const Plan *p, const char *title, Buf *out) {
  buf_printf(out, "function %s: %d steps, workspace %lld elements", title, p->nsteps, (long long)p->s.ws_elems);
  if (p->use_slots) buf_printf(out, ", scalars in %lld slots", (long long)p->nslots);
  if (p->part_nodes) buf_printf(out, ", in parts of %d nodes", p->part_nodes);
  buf_puts(out, "\n");
  int part = -2; /* none yet */
  for (int i = 0; i < p->nsteps; i++) {
    const Step *st = &p->steps[i];
    const Node *n = st->node;
    if (p->part_nodes && st->part != part) {
      part = st->part;
      buf_printf(out, part < 0 ? "  end:\n" : "  part %d:\n", part);
    }
    buf_printf(out, "  %%%d", n->id);
    if (n->name && !n->is_backward) buf_printf(out, " %s", n->name);
    buf_printf(out, " %s: ", shape_str(c, n->shape));
    switch (st->kind) {
    case STEP_LEAF: {
      const char *name = ((Decl *)(n->op == OP_PARAM ? c->params : c->inputs).items[n->attr.slot])->name;
      if (n->shape.rank) {
        buf_printf(out, "%s %s, read in place\n", op_name(n->op), name);
      } else { /* a scalar is loaded once */
        print_dest(c, out, p, st);
        buf_printf(out, " %s %s\n", op_name(n->op), name);
      }
      continue;
    }
    case STEP_VIEW:
      buf_printf(out, "view of %%%d at %lld\n", n->args[0]->id, (long long)n->attr.offset);
      continue;
    case STEP_ADD_TERM:
      print_loops(out, st);
      print_dest(c, out, p, st);
      buf_puts(out, " ");
      print_ref(out, p, n, 64);
      buf_puts(out, "\n");
      continue;
    case STEP_COMPUTE: break;
    }
    print_loops(out, st);
    print_dest(c, out, p, st);
    buf_puts(out, " ");
    print_expr(out, p, n, 0);
    if (st->sum) { /* and, in the same loop, */
      buf_puts(out, "; and ");
      print_ref(out, p, st->sum, 64);
      buf_puts(out, " = ");
      print_expr(out, p, st->sum, 0);
    }
    if (st->partner) {
      const Node *g = st->partner;
      int k = (int)p->grad_fused[g->id]->attr.slot;
      buf_printf(out, "; and grad %s %s ", ((Decl *)c->params.items[k])->name,
                 write_word(p->first_term[k] == g ? WRITE_FIRST : WRITE_ADD));
      print_expr(out, p, g, 0);
      buf_puts(out, ", a block of rows at a time");
    }
    buf_puts(out, "\n");
  }
}

/* Roots of a function: the loss (unless only outputs), then the outputs. */
Node **plan_roots(Ctx *c, const Target *t, int with_loss, int with_outputs, int *nroots) {
  Node **roots = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(c->outputs.len + 1));
  int n = 0;
  if (with_loss) roots[n++] = t->loss;
  for (int i = 0; with_outputs && i < c->outputs.len; i++)
    roots[n++] = t->outputs[i];
  *nroots = n;
  return roots;
}

/* --emit loops: the plans of the functions `bpc MODEL.bp -o MODEL.c`
 * writes (per example, plain loops), each printed, then freed. */
void plan_print_model(Ctx *c, Buf *out) {
  Target t;
  target_per_example(c, &t);
  static const struct {
    const char *title;
    int with_loss, with_outputs, with_grads;
  } fns[] = {{"forward", 1, 0, 0}, {"backward", 1, 0, 1}, {"predict", 0, 1, 0}};
  PlanOptions o = {.fuse_products = 1};
  for (size_t f = 0; f < sizeof fns / sizeof fns[0]; f++) {
    ArenaMark scratch = arena_mark(&c->arena);
    int nroots;
    Node **roots = plan_roots(c, &t, fns[f].with_loss, fns[f].with_outputs, &nroots);
    Plan p;
    plan_function(c, &t, roots, nroots, fns[f].with_grads, &o, &p);
    if (f) buf_puts(out, "\n");
    plan_print(c, &p, fns[f].title, out);
    arena_release(&c->arena, scratch);
  }
}
