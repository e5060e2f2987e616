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
#include <assert.h>
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
  /* What explain and trace show of each edge (only with Ctx.record_locals): */
  Node *local[2];   /* elementwise y: d y/d args[k], element by element (ops.h's columns), or NULL */
  Node **formula;   /* per argument of y: what the dry run sent it (from G, or from 1), or NULL */
  int dry;          /* the dry run: send() keeps the contribution in formula[] and adds nothing */
  const char *reach; /* autodiff_inputs: per node id, reached from an input; NULL: from a parameter
                        (needs_grad), the parameters' terms then kept per slot */
} Adjoints;

/* Whether a gradient flows into x in this sweep. */
static int carries(const Adjoints *A, const Node *x) { return A->reach ? A->reach[x->id] : x->needs_grad; }

/* The edge args[k] -> y with what autodiff used along it: the local
 * derivative where it is one number per element (an elementwise y of the
 * argument's shape: the node the incoming gradient is multiplied by; a
 * scalar y: what y sends back from 1, which is the derivative itself),
 * else what y sends back made from the symbol G (a product; a view; an
 * argument broadcast to y's shape, whose elements' gradients add up). */
static void record_edge(Adjoints *A, int k, Node *g) {
  if (!A->edges) return;
  Node *y = A->y, *x = y->args[k], *formula = A->formula ? A->formula[k] : NULL;
  EdgeGrad *e = arena_alloc(&A->c->arena, sizeof *e);
  e->from = x;
  e->to = y;
  e->arg = k;
  e->g = g;
  e->incoming = A->g;
  e->local = e->sends = NULL;
  if (A->c->record_locals) { /* (a one-argument op's local[0] is built anyway: not recorded unasked) */
    if (op_is_elementwise(y->op) && shape_eq(x->shape, y->shape))
      e->local = A->local[k];
    else if (y->shape.rank == 0)
      e->local = formula;
    else
      e->sends = formula;
  }
  vec_push(&A->c->arena, A->edges, e);
}

/* The dry run's start: send() keeps what each argument is sent. */
static void begin_dry_run(Adjoints *A) {
  A->formula = arena_alloc(&A->c->arena, sizeof(Node *) * (size_t)(A->y->nargs + 1));
  A->dry = 1;
}

/* G, the gradient arriving at y, as a symbol (explain prints it as G). */
static Node *gsym(Ctx *c, const Node *y) { return ir_make(c, OP_GSYM, y->shape, NULL, NULL, 0, NO_ATTR); }

static void add_to(Adjoints *A, Node *x, Node *g) {
  Ctx *c = A->c;
  if (x->op == OP_PARAM && !A->reach) {
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

/* y (A->y) sends g back to its argument k: summed down to the argument's
 * shape where it was broadcast, recorded as an edge, and added to the
 * argument's adjoint (a parameter's: appended to its terms). The slot, not
 * the argument, says which edge it is: x * x has two. */
static void send(Adjoints *A, int k, Node *g) {
  Ctx *c = A->c;
  Node *x = A->y->args[k];
  if (!carries(A, x) || ir_is_const(g, 0)) return;
  if (!shape_eq(g->shape, x->shape)) g = ir_unbroadcast(c, g, x->shape);
  if (A->dry) {
    A->formula[k] = g;
    return;
  }
  record_edge(A, k, g);
  add_to(A, x, g);
}

static Node *k(Ctx *c, double v) { return ir_const(c, v, shape_scalar()); }
static Node *mul(Ctx *c, Node *a, Node *b) { return ir_binary(c, OP_MUL, a, b); }
static Node *sub(Ctx *c, Node *a, Node *b) { return ir_binary(c, OP_SUB, a, b); }
static Node *neg(Ctx *c, Node *a) { return ir_unary(c, OP_NEG, a); }

/* Nodes are numbered in the order they are made, and a product's factors
 * are ordered by number, so every derivative is built one node at a time:
 * in f(c, g(c), h(c)) C leaves open whether g or h runs first, and gcc and
 * clang would build different C from one model. */

/* d/dx of y = x ^ v: 2x for squares, v x^(v-1) otherwise. */
static Node *powc_derivative(Ctx *c, Node *y) {
  Node *x = y->args[0];
  Node *v = k(c, y->value);
  if (y->value == 2) return mul(c, v, x);
  return mul(c, v, ir_powc(c, x, y->value - 1));
}

/* d/dx of gelu(x) = x Phi(x): Phi(x) + x phi(x), with Phi(x) = (1 + erf(x /
 * sqrt 2)) / 2 and phi(x) = exp(-x^2 / 2) / sqrt(2 pi). */
static Node *gelu_derivative(Ctx *c, Node *x) {
  Node *half = k(c, 0.5), *one = k(c, 1), *inv_sqrt2 = k(c, M_SQRT1_2);
  Node *cdf = mul(c, half, ir_binary(c, OP_ADD, one, ir_unary(c, OP_ERF, mul(c, x, inv_sqrt2))));
  Node *inv_sqrt_2pi = k(c, 0.3989422804014327), *minus_half = k(c, -0.5);
  Node *pdf = mul(c, inv_sqrt_2pi, ir_unary(c, OP_EXP, mul(c, minus_half, mul(c, x, x))));
  return ir_binary(c, OP_ADD, cdf, mul(c, x, pdf));
}

/* The mask of dropout y: dropout of ones, with y's site and rate, so each
 * element is the one y's own element was multiplied by (1 outside training). */
static Node *dropout_mask(Ctx *c, Node *y) {
  return ir_dropout(c, ir_const(c, 1, y->shape), y->value, y->attr.slot);
}

/* ops.h's derivative columns nest calls, so their macros evaluate the
 * arguments left to right through a small stack: the comma operator
 * finishes the left argument before the right one starts. */
typedef struct {
  Node *item[16];
  int len;
} Operands;

static Node *push_operand(Operands *s, Node *n) {
  assert(s->len < (int)(sizeof s->item / sizeof s->item[0]) && "an ops.h derivative nests too deep");
  s->item[s->len++] = n;
  return n;
}

static Node *binary_of_operands(Ctx *c, Operands *s, Op op) {
  Node *b = s->item[--s->len];
  Node *a = s->item[--s->len];
  return ir_binary(c, op, a, b);
}

/* d/dx of y = f(x) for the one-argument elementwise ops: the column d of
 * ops.h, in the words it is written in there. */
#define Y y
#define X0 x
#define K(v) k(c, v)
#define BIN(op, a, b) (push_operand(&operands, (a)), push_operand(&operands, (b)), binary_of_operands(c, &operands, OP_##op))
#define MUL(a, b) BIN(MUL, a, b)
#define SUB(a, b) BIN(SUB, a, b)
#define ADD(a, b) BIN(ADD, a, b)
#define DIV(a, b) BIN(DIV, a, b)
#define NEG(a) neg(c, a)
#define UN(op, a) ir_unary(c, OP_##op, a)
#define POWC_DERIVATIVE powc_derivative(c, y)
#define GELU_DERIVATIVE gelu_derivative(c, x)
#define DROPOUT_DERIVATIVE dropout_mask(c, y)
static Node *unary_local(Ctx *c, Node *y) {
  Node *x = y->args[0];
  Operands operands = {.len = 0};
  (void)x;
  (void)operands;
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
#undef DROPOUT_DERIVATIVE

/* What a two-argument elementwise op y = f(a, b) sends back to each
 * argument: the columns ga and gb of ops.h, a's first (the order the
 * nodes are made in is the order the C names them). */
#define G g
#define A a
#define B b
#define Y y
#define K(v) k(c, v)
#define BIN(op, p, q) (push_operand(&operands, (p)), push_operand(&operands, (q)), binary_of_operands(c, &operands, OP_##op))
#define MUL(p, q) BIN(MUL, p, q)
#define SUB(p, q) BIN(SUB, p, q)
#define DIV(p, q) BIN(DIV, p, q)
#define NEG(p) neg(c, p)
static void backprop_binary(Adjoints *Adj, Node *y, Node *g_in) {
  Ctx *c = Adj->c;
  Operands operands = {.len = 0};
  Node *a = y->args[0], *b = y->args[1], *g = g_in;
  int record = c->record_locals && Adj->edges;
  int broadcast = record && !(shape_eq(a->shape, y->shape) && shape_eq(b->shape, y->shape));
  switch (y->op) {
#define X(E, name, label, arity, classes, flops, value, ctext, d, ga, gb)                                      \
  case OP_##E: {                                                                                             \
    if (record) { /* the same columns with G = 1 are the local derivatives */                               \
      G = k(c, 1);                                                                                           \
      Adj->local[0] = (ga);                                                                                  \
      Adj->local[1] = (gb);                                                                                  \
    }                                                                                                        \
    if (broadcast) { /* and with G the symbol, summed by send(): what a broadcast argument gets */          \
      G = gsym(c, y);                                                                                        \
      begin_dry_run(Adj);                                                                                    \
      Node *f_a = (ga), *f_b = (gb);                                                                         \
      if (f_a) send(Adj, 0, f_a);                                                                            \
      if (f_b) send(Adj, 1, f_b);                                                                            \
      Adj->dry = 0;                                                                                          \
    }                                                                                                        \
    G = g_in;                                                                                                \
    Node *to_a = (ga);                                                                                       \
    if (to_a) send(Adj, 0, to_a);                                                                            \
    Node *to_b = (gb);                                                                                       \
    if (to_b) send(Adj, 1, to_b);                                                                            \
    break;                                                                                                   \
  }
    BPC_OPS(X)
#undef X
  default: break;
  }
  Adj->local[0] = Adj->local[1] = NULL;
  Adj->formula = NULL;
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
  send(A, 0, ta ? ir_transpose(c, da) : da);
  send(A, 1, tb ? ir_transpose(c, db) : db);
}

static void backprop_other(Adjoints *A, Node *y, Node *g);

static void backprop_node(Adjoints *A, Node *y, Node *g) {
  Ctx *c = A->c;
  if (op_is_unary_elementwise(y->op)) {
    if (y->op == OP_NEG) { /* -g, not g * -1: the backward graph as it always was */
      A->local[0] = c->record_locals ? unary_local(c, y) : NULL;
      send(A, 0, neg(c, g));
    } else if (y->op == OP_DROPOUT) { /* g times y's mask is dropout of g: the identity outside training */
      A->local[0] = c->record_locals ? unary_local(c, y) : NULL;
      send(A, 0, ir_dropout(c, g, y->value, y->attr.slot));
    } else {
      A->local[0] = unary_local(c, y);
      send(A, 0, mul(c, g, A->local[0]));
    }
    A->local[0] = NULL;
    return;
  }
  if (op_is_elementwise(y->op)) {
    backprop_binary(A, y, g);
    return;
  }
  if (c->record_locals && A->edges) {
    /* A dry run first, which records what y sends back from 1 when y is a
     * scalar (that is its derivative: dot's other vector, a sum's 1s), else
     * from the symbol G, the gradient arriving at y (a product's G @
     * transpose(W)); the same code as the real sweep, so explain shows what
     * that does. */
    begin_dry_run(A);
    backprop_other(A, y, y->shape.rank ? gsym(c, y) : k(c, 1));
    A->dry = 0;
  }
  backprop_other(A, y, g);
  A->formula = NULL;
}

/* Sums, products, views and the other ops that are not elementwise. */
static void backprop_other(Adjoints *A, Node *y, Node *g) {
  Ctx *c = A->c;
  Node *a = y->args[0];
  switch (y->op) {
  case OP_SUM: send(A, 0, ir_bcast(c, g, a->shape, BCAST_ROWS)); break;
  case OP_SUMAX: send(A, 0, ir_bcast(c, g, a->shape, (unsigned)y->attr.axes)); break;
  /* the router: all of g to the first arg-max, as one element, not a dense mask */
  case OP_MAXALL: send(A, 0, ir_onehot(c, OP_ARGMAXMASK, a, g)); break;
  case OP_MAXROW: send(A, 0, ir_onehot(c, OP_ARGMAXROW, a, g)); break; /* each row's to its arg-max */
  case OP_MINROW: send(A, 0, ir_onehot(c, OP_ARGMINROW, a, g)); break;
  case OP_MINALL: send(A, 0, ir_onehot(c, OP_ARGMINMASK, a, g)); break;
  case OP_LSE: { /* d lse / dx = softmax(x) = exp(x - lse) */
    unsigned last = 1u << (a->shape.rank - 1); /* y has one value per row of the last axis */
    Node *p = ir_unary(c, OP_EXP, sub(c, a, ir_bcast(c, y, a->shape, last)));
    send(A, 0, mul(c, p, ir_bcast(c, g, a->shape, last)));
    break;
  }
  case OP_BCAST: send(A, 0, ir_sum_axes(c, g, (unsigned)y->attr.axes, a->shape)); break;
  case OP_TRANSPOSE: send(A, 0, ir_transpose(c, g)); break;
  case OP_INDEX: send(A, 0, ir_scatter(c, g, y->attr.offset, a->shape)); break;
  case OP_SCATTER: send(A, 0, ir_index(c, g, y->attr.offset, a->shape)); break;
  case OP_GATHER: send(A, 0, ir_spread(c, g, &y->attr, a->shape)); break;
  case OP_CONCAT: { /* each argument its own slice of g along the axis */
    int axis = shape_axis_of((unsigned)y->attr.axes);
    int64_t start[BPC_MAX_RANK] = {0}, step[BPC_MAX_RANK];
    for (int k = 0; k < BPC_MAX_RANK; k++)
      step[k] = 1;
    for (int j = 0; j < y->nargs; j++) {
      Node *x = y->args[j];
      if (carries(A, x)) send(A, j, ir_slice(c, g, start, step, x->shape));
      start[axis] += x->shape.dim[axis];
    }
    break;
  }
  case OP_SPREAD: send(A, 0, ir_gather(c, g, y->attr.offset, y->attr.stride, a->shape)); break;
  case OP_MATMUL: backprop_matmul(A, y, g); break;
  case OP_CONV2D: /* x gets the transposed convolution of g, K the correlation of x with g */
    if (carries(A, a)) send(A, 0, ir_conv2d_dx(c, y, g));
    if (carries(A, y->args[1])) send(A, 1, ir_conv2d_dk(c, y, g));
    break;
  case OP_MAXPOOL2D:
  case OP_AVGPOOL2D: send(A, 0, ir_pool2d_dx(c, y, g)); break;
  case OP_OUTER:
    send(A, 0, ir_matmul(c, g, y->args[1], 0));
    send(A, 1, ir_matmul(c, a, g, 0));
    break;
  case OP_DOT:
    send(A, 0, mul(c, g, y->args[1]));
    send(A, 1, mul(c, g, a));
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

/* The reverse sweep from loss over the nodes carries() lets through; the
 * nodes it makes are backward nodes until the caller says otherwise. */
static void sweep(Adjoints *A, Node *loss) {
  Ctx *c = A->c;
  c->building_backward = 1;
  c->cur_loc = loss->loc;
  if (loss->op == OP_PARAM && !A->reach)
    add_to(A, loss, k(c, 1));
  else
    A->adj[loss->id] = k(c, 1);
  for (int i = loss->id; i >= 0; i--) {
    Node *y = c->nodes.items[i];
    Node *g = A->adj[y->id];
    if (!g || !carries(A, y)) continue;
    c->cur_loc = y->loc;
    A->y = y;
    A->g = g;
    backprop_node(A, y, g);
  }
}

GradTerm **autodiff(Ctx *c, Node *loss, Node ***adjoints, PtrVec *edges) {
  int nforward = c->nodes.len;
  Adjoints A = {.c = c,
                .adj = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(nforward + 1)),
                .terms = arena_alloc(&c->arena, sizeof(GradTerm *) * (size_t)(c->params.len + 1)),
                .last = arena_alloc(&c->arena, sizeof(GradTerm *) * (size_t)(c->params.len + 1)),
                .edges = edges};
  sweep(&A, loss);
  merge_repeated_terms(&A);
  c->building_backward = 0;
  if (adjoints) *adjoints = A.adj;
  return A.terms;
}

Node **autodiff_inputs(Ctx *c, Node *loss) {
  int n = loss->id + 1; /* the sweep reads no node made after the loss */
  char *reach = arena_alloc(&c->arena, (size_t)n + 1);
  for (int i = 0; i < n; i++) { /* as needs_grad, from the inputs */
    const Node *y = c->nodes.items[i];
    reach[i] = y->op == OP_INPUT;
    for (int k = 0; k < y->nargs && !(op_info[y->op].classes & OPC_NO_GRADIENT); k++)
      reach[i] |= reach[y->args[k]->id];
  }
  Adjoints A = {.c = c, .adj = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(n + 1)), .reach = reach};
  sweep(&A, loss);
  c->building_backward = 0;
  Node **grads = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(c->inputs.len + 1));
  for (int i = 0; i < c->inputs.len; i++) {
    const Node *x = ((Decl *)c->inputs.items[i])->node;
    grads[i] = x->id < n ? A.adj[x->id] : NULL;
  }
  return grads;
}
