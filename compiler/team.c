/* team.c — how threads share one batched training step (the team form).
 *
 * bpc train --threads N on a dense model runs the batched step on every
 * thread at once, each with its part (0 to N - 1). This file decides, for
 * each step of that function's plan, how it is shared (TeamMode) and where
 * a barrier, sync(team), must stand before it; emit_c.c prints what it
 * decides.
 *
 * The modes:
 *   TEAM_ROWS    each thread its own rows of the batch [rlo, rhi), the same
 *                rows for every such step: a step whose row r reads only row
 *                r of its batched operands (elementwise, a product X @ W, a
 *                row's sum or logsumexp, a broadcast along the row).
 *   TEAM_SHARED  shared another way: a product by columns of its result, a
 *                parameter's gradient by its rows (bpk_mm_part), a loop by
 *                its flat index.
 *   TEAM_KSPLIT  a product A @ W of a parameter W, over k (see team_mode).
 *   TEAM_PARTIAL a small sum over the batch (the loss, a bias's gradient, a
 *                small weight's gradient transpose(h) @ d): each thread its
 *                rows' share into its scratch; part 0 adds the shares in
 *                part order into the destination (a combine), put off until
 *                a step touches what it touches, or to the end, and with it
 *                the scalar steps that read it (the loss's).
 *   TEAM_SERIAL  part 0 alone: scalars, small steps.
 *
 * The barriers follow from what each step reads and writes: the elements
 * of the workspace, the scalars, the gradients and the scratch of the
 * partial products, each access marked by who makes it. A step needs a
 * barrier before it when it touches what a step since the last barrier has
 * touched, one of them writing, unless no element can be touched by two
 * threads: both steps are part 0's, or both go by rows over the same rows
 * of the same array. So a chain of row steps (the forward pass from one
 * product to the next, the loss and its gradient row by row) runs without
 * a barrier between its steps, and the workspace's reuse of a block by a
 * later value is safe: the later write waits until every thread is done
 * reading. */
#include <stdlib.h>
#include <string.h>

#include "bpc.h"

enum { TEAM_MIN_ELEMS = 4096, TEAM_MIN_MACS = 1 << 16, TEAM_KSPLIT_MIN_MACS = 1 << 20, TEAM_PARTIAL_MAX = 4096 };
/* A barrier more is always correct: one stands once this many accesses
 * have piled up since the last, and the deferred items go out once there
 * are this many, so that a model of many thousand steps is planned in
 * linear time. */
enum { TEAM_MAX_SINCE = 4096, TEAM_MAX_DEFERRED = 64 };

/* The address spaces an access can be in, as the high bits of one offset. */
#define SPACE_WS ((int64_t)0)
#define SPACE_SCALARS ((int64_t)1 << 48)
#define SPACE_SCRATCH ((int64_t)2 << 48)
#define SPACE_GRAD ((int64_t)3 << 48)
#define SPACE_END ((int64_t)4 << 48)

typedef enum {
  WHO_ROWS,  /* each thread its rows of the batch: [base + rlo * stride, base + rhi * stride) */
  WHO_PART0, /* part 0 alone */
  WHO_ANY    /* any thread, any of the elements */
} Who;

typedef struct Access {
  int64_t lo, hi;       /* the elements [lo, hi) */
  int64_t base, stride; /* WHO_ROWS: where the array starts, and its elements per row of the batch */
  Who who;
  int write;
} Access;

typedef struct AccessList {
  Access *a;
  int n, cap;
} AccessList;

typedef struct TeamScan {
  Ctx *c;
  const Plan *p;
  int64_t B;        /* the batch */
  int kernels;      /* products are the runtime's kernel calls */
  int64_t ksplit;   /* the scratch of TEAM_KSPLIT's partial products: [0, ksplit) */
  AccessList since; /* everything touched since the last barrier */
  AccessList step;  /* what the step being looked at touches */
  AccessList aux;
  TeamPlan *out;
} TeamScan;

static void add_access(TeamScan *t, AccessList *l, Access a) {
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 32;
    Access *grown = arena_alloc(&t->c->arena, sizeof(Access) * (size_t)cap);
    if (l->n) memcpy(grown, l->a, sizeof(Access) * (size_t)l->n);
    l->a = grown;
    l->cap = cap;
  }
  l->a[l->n++] = a;
}

/* Where x's elements live, as [*at, *at + *len); 0 for what no step of the
 * function writes (parameters, inputs, constants). A view lives in its
 * base's storage; a scalar in its slot. */
static int node_home(const TeamScan *t, const Node *x, int64_t *at, int64_t *len) {
  if (x->op == OP_CONST || x->op == OP_GSYM) return 0;
  if (x->shape.rank == 0) { /* a scalar parameter or input too: the step that loads it writes its slot */
    int64_t slot = t->p->slot[x->id];
    if (slot < 0 && (x->op == OP_PARAM || x->op == OP_INPUT)) return 0; /* read where it is */
    *at = slot >= 0 ? SPACE_SCALARS + slot : SPACE_SCALARS; /* no slot: as if every scalar */
    *len = slot >= 0 ? 1 : SPACE_SCRATCH - SPACE_SCALARS;
    return 1;
  }
  int64_t off = 0;
  *len = shape_numel(x->shape);
  while (x->op == OP_INDEX) {
    off += x->attr.offset;
    x = x->args[0];
  }
  if (x->op == OP_PARAM || x->op == OP_INPUT || x->op == OP_CONST) return 0;
  if (t->p->s.ws_offset[x->id] < 0) { /* not stored where this file can see: as if the whole workspace */
    *at = SPACE_WS;
    *len = SPACE_SCALARS;
    return 1;
  }
  *at = t->p->s.ws_offset[x->id] + off;
  return 1;
}

/* An access to x's storage, by rows (x's row r of the batch) or as who. */
static void touch(TeamScan *t, const Node *x, int by_rows, Who who, int write) {
  int64_t at, len;
  if (!node_home(t, x, &at, &len)) return;
  Access a = {at, at + len, at, 0, who, write};
  if (by_rows) {
    a.who = WHO_ROWS;
    a.stride = len / t->B;
  }
  add_access(t, &t->step, a);
}

static void touch_range(TeamScan *t, int64_t at, int64_t len, Who who, int write) {
  add_access(t, &t->step, (Access){at, at + len, at, 0, who, write});
}

/* Whether x is read at the batch row of the element being computed: it
 * has the nest's axes, the batch first. */
static int row_aligned(const TeamScan *t, const Node *x, const Shape *over) {
  return x->shape.rank >= 1 && x->shape.rank == over->rank && x->shape.dim[0] == t->B;
}

/* The reads of an elementwise loop's operand x, through the operands it
 * is computed from where it is fused into the loop. */
static void touch_operand(TeamScan *t, const Node *x, const Shape *over, int rows, Who who, int depth) {
  if (sched_inlined(&t->p->s, x) && depth < 64) {
    for (int k = 0; k < x->nargs; k++)
      touch_operand(t, x->args[k], over, rows, who, depth + 1);
    return;
  }
  touch(t, x, rows && row_aligned(t, x, over), rows ? WHO_ANY : who, 0);
}

/* TEAM_ROWS: how many of the step's outer-loop iterations make one row of
 * the batch (the emitter runs [rlo, rhi) times it), or 0 when its rows
 * cannot be computed apart: its row r reads only row r of its batched
 * operands and writes only its own row r. */
static int64_t rows_factor(const TeamScan *t, const Step *st) {
  const Node *n = st->node, *a = n->args[0];
  int64_t B = t->B;
  if (st->kind != STEP_COMPUTE || st->dest != DEST_VALUE || st->write != WRITE_STORE || st->sum || st->partner ||
      n->shape.rank == 0 || n->shape.dim[0] != B)
    return 0;
  if (op_is_elementwise(n->op)) {
    const Nest *nest = &st->nest;
    if (n->op == OP_DROPOUT || nest->n < 1 || !(nest->axes[0] & 1u) || nest->dim[0] % B) return 0;
    return nest->dim[0] / B; /* the outer loop runs over whole rows */
  }
  if (a && sched_inlined(&t->p->s, a)) return 0;
  switch (n->op) {
  case OP_MATMUL:
    return t->kernels && a->shape.rank == 2 && n->args[1]->shape.rank == 2 && !(n->attr.mm & MM_TA) &&
           a->shape.dim[0] == B;
  case OP_LSE:
  case OP_MAXROW:
  case OP_MINROW: {
    int64_t len = shape_numel(a->shape), cols = a->shape.dim[a->shape.rank - 1];
    return a->shape.rank >= 2 && a->shape.dim[0] == B ? len / cols / B : 0;
  }
  case OP_SUMAX: return a->shape.rank == 2 && n->attr.axes == 2 && a->shape.dim[0] == B;
  case OP_BCAST:
    if (a->shape.rank == 0 && n->shape.rank <= 2) return 1;
    if (bcast_of_vector_to_matrix(n)) return 1;
    return st->nest.n >= 1 && (st->nest.axes[0] & 1u) && st->nest.dim[0] % B == 0 ? st->nest.dim[0] / B : 0;
  default: return 0;
  }
}

/* Whether a row step reads its operand k at the row it writes. */
static int arg_by_rows(const TeamScan *t, const Step *st, int k) {
  const Node *n = st->node, *x = n->args[k];
  if (n->op == OP_BCAST) {
    if (x->shape.rank == 0) return 0;
    if (bcast_of_vector_to_matrix(n)) return n->attr.axes == BCAST_COLS && x->shape.dim[0] == t->B;
    return !(n->attr.axes & 1u) && x->shape.rank == n->shape.rank;
  }
  return k == 0; /* a product's rows of A; a row's reduction */
}

/* TEAM_PARTIAL: as rows_factor, for a sum over the batch: the loss (a sum
 * of the examples'), a column sum of [B, n], a product transpose(A) @ D of
 * two batched [B, .] (a weight's gradient); 0 for anything else. */
static int64_t partial_factor(const TeamScan *t, const Step *st) {
  const Node *n = st->node, *a = n->args[0], *b = n->args[1];
  int64_t B = t->B;
  if (st->kind != STEP_COMPUTE || st->sum || st->partner) return 0;
  if (st->dest == DEST_VALUE && (n->shape.rank ? t->p->s.ws_offset[n->id] < 0 : t->p->slot[n->id] < 0))
    return 0; /* its storage is not its own (the sum of the shares needs somewhere to go) */
  const Nest *nest = &st->nest;
  switch (n->op) {
  case OP_SUM:
    if (st->dest != DEST_VALUE || nest->n < 1 || !(nest->axes[0] & 1u) || nest->over.rank < 1 ||
        nest->over.dim[0] != B || nest->dim[0] % B)
      return 0;
    return nest->dim[0] / B;
  case OP_SUMAX:
    return st->dest == DEST_VALUE && st->write == WRITE_STORE && a->shape.rank == 2 && n->attr.axes == 1 &&
           a->shape.dim[0] == B && !sched_inlined(&t->p->s, a);
  case OP_MATMUL: /* a small result: its partials are added up by one thread */
    return t->kernels && (n->attr.mm & MM_TA) && !(n->attr.mm & MM_TB) && a->shape.rank == 2 && b->shape.rank == 2 &&
           shape_numel(n->shape) <= TEAM_PARTIAL_MAX &&
           a->shape.dim[0] == B && b->shape.dim[0] == B && !sched_inlined(&t->p->s, a) &&
           !sched_inlined(&t->p->s, b) && (st->dest == DEST_GRAD || st->write == WRITE_STORE);
  default: return 0;
  }
}

/* The mode of a step before any barrier is placed. */
static TeamMode team_mode(const TeamScan *t, const Step *st, int64_t *per_row) {
  Node *n = st->node;
  *per_row = 0;
  if (st->kind == STEP_LEAF || st->kind == STEP_VIEW) return n->shape.rank ? TEAM_NONE : TEAM_SERIAL;
  if ((*per_row = partial_factor(t, st)) > 0) return TEAM_PARTIAL;
  if (st->kind != STEP_COMPUTE || n->shape.rank == 0) return TEAM_SERIAL;
  int64_t f = rows_factor(t, st);
  if (n->op == OP_MATMUL && t->kernels && n->args[0]->shape.rank == 2 && n->args[1]->shape.rank == 2) {
    const Shape *a = &n->args[0]->shape;
    int64_t macs = shape_numel(n->shape) * a->dim[n->attr.mm & MM_TA ? 0 : 1];
    /* X @ W1: over k, each thread by the rows of W1 whose gradient and update are its own: no
       thread reads a row of W that another has just written (the cores' caches would pass it
       between them, twice a step), at the cost of one barrier more and a sum of the threads'
       partial products. A smaller W is read whole by each thread's rows. */
    int of_param = n->args[1]->op == OP_PARAM && !(n->attr.mm & (MM_TA | MM_TB));
    if (of_param && st->dest == DEST_VALUE && st->write == WRITE_STORE && macs >= TEAM_KSPLIT_MIN_MACS)
      return TEAM_KSPLIT;
    if (f) {
      *per_row = f;
      return TEAM_ROWS;
    }
    return macs < TEAM_MIN_MACS ? TEAM_SERIAL : TEAM_SHARED;
  }
  if (f) {
    *per_row = f;
    return TEAM_ROWS;
  }
  if (op_is_elementwise(n->op))
    return !st->sum && st->nest.n >= 1 && shape_numel(n->shape) >= TEAM_MIN_ELEMS ? TEAM_SHARED : TEAM_SERIAL;
  return TEAM_SERIAL;
}

/* Where a step's destination lives: its node's storage or its gradient. */
static int dest_home(const TeamScan *t, const Step *st, int64_t *at, int64_t *len) {
  if (st->kind == STEP_ADD_TERM || st->dest == DEST_GRAD) {
    const Decl *d = t->c->params.items[st->param];
    *at = SPACE_GRAD + d->offset;
    *len = shape_numel(d->shape);
    return 1;
  }
  return node_home(t, st->node, at, len);
}

/* What the step reads and writes, into t->step. */
static void step_accesses(TeamScan *t, const Step *st, TeamMode mode, int64_t scratch) {
  const Node *n = st->node;
  Who who = mode == TEAM_SERIAL ? WHO_PART0 : WHO_ANY;
  int rows = mode == TEAM_ROWS || mode == TEAM_PARTIAL;
  int64_t at, len;
  t->step.n = 0;
  if (mode == TEAM_PARTIAL) { /* each part's share into its scratch (combine_accesses: their sum) */
    if (!dest_home(t, st, &at, &len)) return;
    touch_range(t, SPACE_SCRATCH + t->ksplit + scratch, len, WHO_ANY, 1);
    if (n->op == OP_SUM)
      touch_operand(t, n->args[0], &st->nest.over, 1, WHO_ANY, 0);
    else
      for (int k = 0; k < n->nargs; k++)
        touch(t, n->args[k], 1, WHO_ANY, 0);
    return;
  }
  if (st->kind == STEP_ADD_TERM || st->dest == DEST_GRAD) {
    dest_home(t, st, &at, &len);
    touch_range(t, at, len, who, 1);
  } else {
    touch(t, n, rows, who, 1);
  }
  if (st->sum) touch(t, st->sum, 0, who, 1);
  if (st->partner) touch_range(t, SPACE_GRAD, SPACE_END - SPACE_GRAD, who, 1);
  if (st->kind == STEP_ADD_TERM) {
    touch(t, n, 0, who, 0);
    return;
  }
  if (op_is_elementwise(n->op)) {
    for (int k = 0; k < n->nargs; k++)
      touch_operand(t, n->args[k], &st->nest.over, rows, who, 0);
    return;
  }
  for (int k = 0; k < n->nargs; k++)
    if (sched_inlined(&t->p->s, n->args[k]))
      touch_operand(t, n->args[k], &n->args[k]->shape, 0, rows ? WHO_ANY : who, 0);
    else
      touch(t, n->args[k], rows && arg_by_rows(t, st, k), rows ? WHO_ANY : who, 0);
}

/* Whether two accesses can touch one element from two threads, one writing. */
static int accesses_conflict(const Access *x, const Access *y) {
  if (!x->write && !y->write) return 0;
  if (x->hi <= y->lo || y->hi <= x->lo) return 0;
  if (x->who == WHO_PART0 && y->who == WHO_PART0) return 0;
  return !(x->who == WHO_ROWS && y->who == WHO_ROWS && x->base == y->base && x->stride == y->stride);
}

static int step_conflicts(const TeamScan *t) {
  for (int i = 0; i < t->step.n; i++)
    for (int j = 0; j < t->since.n; j++)
      if (accesses_conflict(&t->step.a[i], &t->since.a[j])) return 1;
  return 0;
}

/* The product over k: its partial products (part 0's into C, the others'
 * into the scratch), a barrier (emit_c.c prints it), then each thread its
 * rows of their sum into C. */
static void ksplit_accesses(TeamScan *t, const Step *st, int phase) {
  const Node *n = st->node;
  t->step.n = 0;
  if (phase == 0) {
    touch(t, n->args[0], 0, WHO_ANY, 0);
    touch(t, n, 0, WHO_PART0, 1);
    touch_range(t, SPACE_SCRATCH, t->ksplit, WHO_ANY, 1);
  } else {
    touch_range(t, SPACE_SCRATCH, t->ksplit, WHO_ANY, 0);
    touch(t, n, 1, WHO_ROWS, 1);
  }
}

/* The item whose accesses are in t->step: after a barrier if they touch
 * what the steps since the last one have. */
static void add_item(TeamScan *t, TeamItem it) {
  if (t->since.n > TEAM_MAX_SINCE || step_conflicts(t)) {
    it.sync_before = 1;
    t->since.n = 0;
  }
  for (int i = 0; i < t->step.n; i++)
    add_access(t, &t->since, t->step.a[i]);
  t->out->items[t->out->nitems++] = it;
}

/* What part 0's sum of the parts' partials of a step touches: every
 * part's partial, and the destination. */
static void combine_accesses(TeamScan *t, const Step *st, int64_t scratch) {
  int64_t at, len;
  t->step.n = 0;
  if (dest_home(t, st, &at, &len)) touch_range(t, at, len, WHO_PART0, 1);
  touch_range(t, SPACE_SCRATCH + t->ksplit + scratch, len, WHO_PART0, 0);
}

/* An item put off: a partial sum's combine, and the scalar steps that read
 * what it makes (the loss), until a step touches what they touch. */
typedef struct Deferred {
  TeamItem item;
  AccessList acc;
} Deferred;

static int lists_overlap(const AccessList *x, const AccessList *y) {
  for (int i = 0; i < x->n; i++)
    for (int j = 0; j < y->n; j++)
      if ((x->a[i].write || y->a[j].write) && x->a[i].lo < y->a[j].hi && y->a[j].lo < x->a[i].hi) return 1;
  return 0;
}

static void defer(TeamScan *t, Deferred *d, int *nd, TeamItem it) {
  d[*nd].item = it;
  d[*nd].acc = (AccessList){0};
  for (int k = 0; k < t->step.n; k++)
    add_access(t, &d[*nd].acc, t->step.a[k]);
  (*nd)++;
}

/* The deferred items up to the last that the step's accesses (t->step)
 * touch, or all of them (all_of_them), in their order. */
static void flush_deferred(TeamScan *t, Deferred *d, int *nd, int all_of_them) {
  int upto = all_of_them ? *nd : 0;
  for (int j = 0; j < *nd && !all_of_them; j++)
    if (lists_overlap(&t->step, &d[j].acc)) upto = j + 1;
  if (!upto) return;
  AccessList keep = t->step;
  t->step = t->aux;
  for (int j = 0; j < upto; j++) {
    t->step.n = 0;
    for (int k = 0; k < d[j].acc.n; k++)
      add_access(t, &t->step, d[j].acc.a[k]);
    add_item(t, d[j].item);
  }
  t->aux = t->step;
  t->step = keep;
  memmove(d, d + upto, sizeof(Deferred) * (size_t)(*nd - upto));
  *nd -= upto;
}

void team_plan(Ctx *c, const Plan *p, int batch, int kernels, TeamPlan *out) {
  out->items = arena_alloc(&c->arena, sizeof(TeamItem) * (size_t)(2 * p->nsteps + 1)); /* kept for the emitter */
  out->nitems = 0;
  ArenaMark mark = arena_mark(&c->arena);
  TeamScan t = {c, p, batch, kernels, 0, {0}, {0}, {0}, out};
  TeamMode *mode = arena_alloc(&c->arena, sizeof(TeamMode) * (size_t)(p->nsteps + 1));
  int64_t *per_row = arena_alloc(&c->arena, sizeof(int64_t) * (size_t)(p->nsteps + 1));
  int64_t *scratch = arena_alloc(&c->arena, sizeof(int64_t) * (size_t)(p->nsteps + 1));
  Deferred *later = arena_alloc(&c->arena, sizeof(Deferred) * (size_t)(2 * p->nsteps + 1));
  int nlater = 0;
  int64_t partials = 0;
  /* the modes, and the scratch: the products' partials, then every partial sum's own */
  for (int i = 0; i < p->nsteps; i++) {
    const Step *st = &p->steps[i];
    mode[i] = team_mode(&t, st, &per_row[i]);
    if (mode[i] == TEAM_KSPLIT && shape_numel(st->node->shape) > t.ksplit) t.ksplit = shape_numel(st->node->shape);
    if (mode[i] == TEAM_PARTIAL) {
      int64_t at, len;
      scratch[i] = partials;
      partials += dest_home(&t, st, &at, &len) ? (len + 15) / 16 * 16 : 0; /* each on lines of its own */
    }
  }
  out->ksplit = t.ksplit;
  out->scratch = partials;
  for (int pass = 0; pass < 2; pass++) /* the body, then the steps after it (part -1), as emitted */
    for (int i = 0; i < p->nsteps; i++) {
      const Step *st = &p->steps[i];
      if ((st->part < 0) != pass || mode[i] == TEAM_NONE) continue;
      TeamItem it = {i, 0, mode[i], per_row[i], scratch[i], 0};
      if (mode[i] == TEAM_KSPLIT)
        ksplit_accesses(&t, st, 0);
      else
        step_accesses(&t, st, mode[i], scratch[i]);
      /* a scalar made from a deferred sum (the loss from its parts) waits with it */
      int reads_later = 0;
      for (int j = 0; j < nlater; j++)
        reads_later |= lists_overlap(&t.step, &later[j].acc);
      if (reads_later && nlater < TEAM_MAX_DEFERRED && mode[i] == TEAM_SERIAL && st->node->shape.rank == 0 &&
          st->kind == STEP_COMPUTE) {
        defer(&t, later, &nlater, it);
        continue;
      }
      flush_deferred(&t, later, &nlater, nlater >= TEAM_MAX_DEFERRED);
      add_item(&t, it);
      if (mode[i] == TEAM_KSPLIT) { /* its own barrier, then the sum */
        t.since.n = 0;
        ksplit_accesses(&t, st, 1);
        for (int k = 0; k < t.step.n; k++)
          add_access(&t, &t.since, t.step.a[k]);
      }
      if (mode[i] == TEAM_PARTIAL) {
        combine_accesses(&t, st, scratch[i]);
        defer(&t, later, &nlater, (TeamItem){i, 1, TEAM_SERIAL, 0, scratch[i], 0});
      }
    }
  t.step.n = 0;
  flush_deferred(&t, later, &nlater, 1);
  arena_release(&c->arena, mark);
}

/* Whether the team form covers the model: its heavy steps are products and
 * elementwise loops (convolutions and pooling keep per-thread buffers, and
 * the positions of maxima and dropout's draws are not shared out). */
int team_supported(const Ctx *c) {
  for (int i = 0; i < c->nodes.len; i++) {
    Op op = ((const Node *)c->nodes.items[i])->op;
    if (op_is_window(op) || op == OP_MAXALL || op == OP_MINALL || op == OP_DROPOUT) return 0;
  }
  return 1;
}
