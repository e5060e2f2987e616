/* autodiff.c — reverse mode over the IR, ahead of time.
 *
 * One sweep in reverse topological order. Each node that some parameter
 * reaches receives the sum of its consumers' contributions (fan-out adds up:
 * the copy gate), applies its local derivative, and passes contributions on
 * to its arguments. Local derivatives are written in terms of forward nodes
 * (sigmoid' = y(1-y), exp' = y, tanh' = 1-y^2), and because nodes are
 * hash-consed the backward graph shares every forward value it needs.
 * Contributions to a parameter are kept as a list, so the emitter can add
 * each straight into the gradient array. */
#include <math.h>
#include <string.h>

#include "bpc.h"

typedef struct Adjoints {
  Ctx *c;
  Node **adj;       /* per forward node id: the summed adjoint so far, or NULL */
  GradTerm **terms; /* per param slot */
  GradTerm **last;  /* per param slot: its last term, where the next one goes */
  Node *y;          /* the node whose local derivatives are being applied */
  PtrVec *edges;    /* where to record each contribution, or NULL */
  Node *g;          /* y's adjoint, for the record */
  Node *local;      /* the local derivative of the contribution being made, for the record */
  Node **symbolic;  /* per argument of y: its contribution made from the symbol G (record_locals) */
  int dry;          /* making those: contribute() keeps them and adds nothing */
} Adjoints;

/* Which argument of y x is (the first, when it is several). */
static int arg_index(const Node *y, const Node *x) {
  int k = 0;
  while (k + 1 < y->nargs && y->args[k] != x)
    k++;
  return k;
}

static void record_edge(Adjoints *A, Node *x, Node *g) {
  if (!A->edges || !A->y) return;
  EdgeGrad *e = arena_alloc(&A->c->arena, sizeof *e);
  e->from = x;
  e->to = A->y;
  e->arg = arg_index(A->y, x);
  e->g = g;
  e->incoming = A->g;
  e->local = A->local;
  e->symbolic = A->symbolic ? A->symbolic[e->arg] : NULL;
  vec_push(&A->c->arena, A->edges, e);
}

static void contribute(Adjoints *A, Node *x, Node *g) {
  Ctx *c = A->c;
  if (!x->needs_grad || ir_is_const(g, 0)) return;
  if (!shape_eq(g->shape, x->shape)) g = ir_unbroadcast(c, g, x->shape);
  if (A->dry) { /* the formula only */
    A->symbolic[arg_index(A->y, x)] = g;
    return;
  }
  record_edge(A, x, g);
  if (x->op == OP_PARAM) {
    GradTerm *t = arena_alloc(&c->arena, sizeof *t);
    t->node = g; /* appended: source order, the first use is added first */
    if (A->last[x->attr.slot])
      A->last[x->attr.slot]->next = t;
    else
      A->terms[x->attr.slot] = t;
    A->last[x->attr.slot] = t;
    return;
  }
  A->adj[x->id] = A->adj[x->id] ? ir_binary(c, OP_ADD, A->adj[x->id], g) : g;
}

static Node *k(Ctx *c, double v) { return ir_const(c, v, shape_scalar()); }
static Node *mul(Ctx *c, Node *a, Node *b) { return ir_binary(c, OP_MUL, a, b); }
static Node *sub(Ctx *c, Node *a, Node *b) { return ir_binary(c, OP_SUB, a, b); }
static Node *neg(Ctx *c, Node *a) { return ir_unary(c, OP_NEG, a); }

/* d/dx of y = x ^ v: 2x for squares, v x^(v-1) otherwise. */
static Node *powc_derivative(Ctx *c, Node *y) {
  Node *x = y->args[0];
  if (y->value == 2) return mul(c, k(c, 2), x);
  return mul(c, k(c, y->value), ir_powc(c, x, y->value - 1));
}

/* d/dx of gelu(x) = x Phi(x): Phi(x) + x phi(x), with Phi(x) = (1 + erf(x /
 * sqrt 2)) / 2 and phi(x) = exp(-x^2 / 2) / sqrt(2 pi). */
static Node *gelu_derivative(Ctx *c, Node *x) {
  Node *cdf = mul(c, k(c, 0.5), ir_binary(c, OP_ADD, k(c, 1), ir_unary(c, OP_ERF, mul(c, x, k(c, M_SQRT1_2)))));
  Node *pdf = mul(c, k(c, 0.3989422804014327), ir_unary(c, OP_EXP, mul(c, k(c, -0.5), mul(c, x, x))));
  return ir_binary(c, OP_ADD, cdf, mul(c, x, pdf));
}

/* d/dx of y = f(x) for the one-argument elementwise ops: the column d of
 * ops.h, in the words it is written in there. */
#define Y y
#define X0 x
#define K(v) k(c, v)
#define MUL(a, b) mul(c, a, b)
#define SUB(a, b) sub(c, a, b)
#define ADD(a, b) ir_binary(c, OP_ADD, a, b)
#define DIV(a, b) ir_binary(c, OP_DIV, a, b)
#define NEG(a) neg(c, a)
#define UN(op, a) ir_unary(c, OP_##op, a)
#define BIN(op, a, b) ir_binary(c, OP_##op, a, b)
#define POWC_DERIVATIVE powc_derivative(c, y)
#define GELU_DERIVATIVE gelu_derivative(c, x)
static Node *unary_local(Ctx *c, Node *y) {
  Node *x = y->args[0];
  (void)x;
  switch (y->op) {
#define X(E, name, label, arity, classes, flops, value, ctext, d, ga, gb)                                      \
  case OP_##E: return (d);
    BPC_OPS(X)
#undef X
  default: return NULL;
  }
}
#undef Y
#undef X0
#undef K
#undef MUL
#undef SUB
#undef ADD
#undef DIV
#undef NEG
#undef UN
#undef BIN
#undef POWC_DERIVATIVE
#undef GELU_DERIVATIVE

/* What a two-argument elementwise op y = f(a, b) sends back to each
 * argument: the columns ga and gb of ops.h, a's first (the order the
 * nodes are made in is the order the C names them). */
#define G g
#define A a
#define B b
#define Y y
#define K(v) k(c, v)
#define MUL(p, q) mul(c, p, q)
#define SUB(p, q) sub(c, p, q)
#define DIV(p, q) ir_binary(c, OP_DIV, p, q)
#define NEG(p) neg(c, p)
#define BIN(op, p, q) ir_binary(c, OP_##op, p, q)
static void backprop_binary(Adjoints *Adj, Node *y, Node *g_in) {
  Ctx *c = Adj->c;
  Node *a = y->args[0], *b = y->args[1], *g = g_in, *one = c->record_locals ? k(c, 1) : NULL;
  switch (y->op) {
#define X(E, name, label, arity, classes, flops, value, ctext, d, ga, gb)                                      \
  case OP_##E: {                                                                                             \
    /* recording: the local derivatives are the same columns with G = 1 */                                \
    G = one;                                                                                                 \
    Node *local_a = c->record_locals ? (ga) : NULL, *local_b = c->record_locals ? (gb) : NULL;               \
    G = g_in;                                                                                                \
    Node *to_a = (ga);                                                                                       \
    Adj->local = local_a;                                                                                    \
    if (to_a) contribute(Adj, a, to_a);                                                                      \
    Node *to_b = (gb);                                                                                       \
    Adj->local = local_b;                                                                                    \
    if (to_b) contribute(Adj, b, to_b);                                                                      \
    Adj->local = NULL;                                                                                       \
    break;                                                                                                   \
  }
    BPC_OPS(X)
#undef X
  default: break;
  }
}
#undef G
#undef A
#undef B
#undef Y
#undef K
#undef MUL
#undef SUB
#undef DIV
#undef NEG
#undef BIN

static void backprop_matmul(Adjoints *A, Node *y, Node *g) {
  Ctx *c = A->c;
  Node *a = y->args[0], *b = y->args[1];
  int ta = y->attr.mm & MM_TA, tb = y->attr.mm & MM_TB;
  /* Work with the operands as the product reads them, then transpose the
   * adjoint back where an operand was read transposed. */
  Node *ea = ta ? ir_transpose(c, a) : a, *eb = tb ? ir_transpose(c, b) : b;
  Node *da, *db;
  if (ea->shape.rank == 2 && eb->shape.rank == 2) { /* [m,k] @ [k,n] */
    da = ir_matmul(c, g, eb, MM_TB);
    db = ir_matmul(c, ea, g, MM_TA);
  } else if (ea->shape.rank == 2) { /* [m,k] @ [k] */
    da = ir_outer(c, g, eb);
    db = ir_matmul(c, ea, g, MM_TA);
  } else { /* [k] @ [k,n] */
    da = ir_matmul(c, eb, g, 0);
    db = ir_outer(c, ea, g);
  }
  contribute(A, a, ta ? ir_transpose(c, da) : da);
  contribute(A, b, tb ? ir_transpose(c, db) : db);
}

static void backprop_other(Adjoints *A, Node *y, Node *g);

static void backprop_node(Adjoints *A, Node *y, Node *g) {
  Ctx *c = A->c;
  Node *a = y->args[0];
  if (op_is_unary_elementwise(y->op)) {
    if (y->op == OP_NEG) {
      A->local = c->record_locals ? k(c, -1) : NULL;
      contribute(A, a, neg(c, g));
    } else {
      A->local = unary_local(c, y);
      contribute(A, a, mul(c, g, A->local));
    }
    A->local = NULL;
    return;
  }
  if (op_is_elementwise(y->op)) {
    backprop_binary(A, y, g);
    return;
  }
  if (c->record_locals && A->edges) {
    /* first, what it sends back made from the symbol G; from a scalar y,
       made from 1: the local derivative itself (dot's other vector) */
    A->symbolic = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(y->nargs + 1));
    A->dry = 1;
    backprop_other(A, y, y->shape.rank ? ir_make(c, OP_GSYM, y->shape, NULL, NULL, 0, NO_ATTR) : k(c, 1));
    A->dry = 0;
  }
  backprop_other(A, y, g);
  A->symbolic = NULL;
}

/* Sums, products, views and the other ops that are not elementwise. */
static void backprop_other(Adjoints *A, Node *y, Node *g) {
  Ctx *c = A->c;
  Node *a = y->args[0];
  switch (y->op) {
  case OP_SUM: contribute(A, a, ir_bcast(c, g, a->shape, BCAST_ROWS)); break;
  case OP_SUMAX: contribute(A, a, ir_bcast(c, g, a->shape, (unsigned)y->attr.axes)); break;
  /* the router: all of g to the first arg-max, as one element, not a dense mask */
  case OP_MAXALL: contribute(A, a, ir_onehot(c, OP_ARGMAXMASK, a, g)); break;
  case OP_MAXROW: contribute(A, a, ir_onehot(c, OP_ARGMAXROW, a, g)); break; /* each row's to its arg-max */
  case OP_MINROW: contribute(A, a, ir_onehot(c, OP_ARGMINROW, a, g)); break;
  case OP_MINALL: contribute(A, a, ir_onehot(c, OP_ARGMINMASK, a, g)); break;
  case OP_LSE: { /* d lse / dx = softmax(x) = exp(x - lse) */
    unsigned last = 1u << (a->shape.rank - 1); /* y has one value per row of the last axis */
    Node *p = ir_unary(c, OP_EXP, sub(c, a, ir_bcast(c, y, a->shape, last)));
    contribute(A, a, mul(c, p, ir_bcast(c, g, a->shape, last)));
    break;
  }
  case OP_BCAST: contribute(A, a, ir_sum_axes(c, g, (unsigned)y->attr.axes, a->shape)); break;
  case OP_TRANSPOSE: contribute(A, a, ir_transpose(c, g)); break;
  case OP_INDEX: contribute(A, a, ir_scatter(c, g, y->attr.offset, a->shape)); break;
  case OP_SCATTER: contribute(A, a, ir_index(c, g, y->attr.offset, a->shape)); break;
  case OP_GATHER: contribute(A, a, ir_spread(c, g, &y->attr, a->shape)); break;
  case OP_CONCAT: { /* each argument its own slice of g along the axis */
    int axis = shape_axis_of((unsigned)y->attr.axes);
    int64_t start[BPC_MAX_RANK] = {0}, step[BPC_MAX_RANK];
    for (int k = 0; k < BPC_MAX_RANK; k++)
      step[k] = 1;
    for (int j = 0; j < y->nargs; j++) {
      Node *x = y->args[j];
      if (x->needs_grad) contribute(A, x, ir_slice(c, g, start, step, x->shape));
      start[axis] += x->shape.dim[axis];
    }
    break;
  }
  case OP_SPREAD: contribute(A, a, ir_gather(c, g, y->attr.offset, y->attr.stride, a->shape)); break;
  case OP_MATMUL: backprop_matmul(A, y, g); break;
  case OP_OUTER:
    contribute(A, a, ir_matmul(c, g, y->args[1], 0));
    contribute(A, y->args[1], ir_matmul(c, a, g, 0));
    break;
  case OP_DOT:
    contribute(A, a, mul(c, g, y->args[1]));
    contribute(A, y->args[1], mul(c, g, a));
    break;
  default: /* leaves, indicators and masks */ break;
  }
}

/* x * x gives the parameter x the term x twice: one term x * 2 is added
 * once instead (one pass over the gradient, not two). */
static void merge_repeated_terms(Adjoints *A) {
  Ctx *c = A->c;
  int *count = arena_alloc(&c->arena, sizeof(int) * (size_t)(c->nodes.len + 1));
  for (int p = 0; p < c->params.len; p++) {
    for (GradTerm *t = A->terms[p]; t; t = t->next)
      count[t->node->id]++;
    GradTerm **link = &A->terms[p];
    while (*link) {
      GradTerm *t = *link;
      Node *g = t->node;
      int n = count[g->id];
      if (n == 0) { /* a repeat of a term already merged */
        *link = t->next;
        continue;
      }
      if (n > 1) t->node = ir_binary(c, OP_MUL, g, k(c, n));
      count[g->id] = 0;
      link = &t->next;
    }
  }
}

GradTerm **autodiff(Ctx *c, Node *loss, Node ***adjoints, PtrVec *edges) {
  int nforward = c->nodes.len;
  Adjoints A = {c,
                arena_alloc(&c->arena, sizeof(Node *) * (size_t)(nforward + 1)),
                arena_alloc(&c->arena, sizeof(GradTerm *) * (size_t)(c->params.len + 1)),
                arena_alloc(&c->arena, sizeof(GradTerm *) * (size_t)(c->params.len + 1)),
                NULL,
                edges,
                NULL,
                NULL,
                NULL,
                0};
  c->building_backward = 1;
  c->cur_loc = loss->loc;
  if (loss->op == OP_PARAM)
    contribute(&A, loss, k(c, 1));
  else
    A.adj[loss->id] = k(c, 1);
  for (int i = loss->id; i >= 0; i--) {
    Node *y = c->nodes.items[i];
    Node *g = A.adj[y->id];
    if (!g || !y->needs_grad) continue;
    c->cur_loc = y->loc;
    A.y = y;
    A.g = g;
    backprop_node(&A, y, g);
  }
  merge_repeated_terms(&A);
  c->building_backward = 0;
  if (adjoints) *adjoints = A.adj;
  return A.terms;
}
