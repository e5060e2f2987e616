/* eval.c — a reference interpreter of the IR, in double. It gives every
 * value in the graph, forward and backward, without compiling anything:
 * `bpc grad`, `graph`, `trace` and `explain` show its numbers, and the
 * tests compare it with the generated C. Slow but simple: one loop per op.
 * It computes what eval and predict see: dropout is the identity here (its
 * value column in ops.h), only training draws masks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpc.h"

/* Where element i of shape s lands when the axes in mask are dropped. */
static int64_t kept_index(Shape s, unsigned mask, int64_t i) {
  int64_t at = 0, scale = 1;
  for (int k = s.rank - 1; k >= 0; k--) {
    int64_t coord = i % s.dim[k];
    i /= s.dim[k];
    if (mask & (1u << k)) continue;
    at += coord * scale;
    scale *= s.dim[k];
  }
  return at;
}

/* Where element i of a gathered value (shape part) is in its source. */
static int64_t gathered_index(const Attr *at, Shape part, int64_t i) {
  int64_t src = at->offset;
  for (int k = part.rank - 1; k >= 0; k--) {
    src += (i % part.dim[k]) * at->stride[k];
    i /= part.dim[k];
  }
  return src;
}

/* A(r, c) of a matrix operand read with its transpose flag. */
static double mat(const Node *a, const double *v, int transposed, int64_t r, int64_t c) {
  return transposed ? v[c * a->shape.dim[1] + r] : v[r * a->shape.dim[1] + c];
}

static void eval_matmul(const Node *n, const double *A, const double *B, double *y) {
  const Node *a = n->args[0], *b = n->args[1];
  int ta = n->attr.mm & MM_TA, tb = n->attr.mm & MM_TB;
  if (a->shape.rank == 2 && b->shape.rank == 2) {
    int64_t m = n->shape.dim[0], nn = n->shape.dim[1], k = ta ? a->shape.dim[0] : a->shape.dim[1];
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < nn; j++) {
        double s = 0;
        for (int64_t p = 0; p < k; p++)
          s += mat(a, A, ta, i, p) * mat(b, B, tb, p, j);
        y[i * nn + j] = s;
      }
  } else if (a->shape.rank == 2) {
    int64_t m = n->shape.dim[0], k = b->shape.dim[0];
    for (int64_t i = 0; i < m; i++) {
      double s = 0;
      for (int64_t p = 0; p < k; p++)
        s += mat(a, A, ta, i, p) * B[p];
      y[i] = s;
    }
  } else {
    int64_t nn = n->shape.dim[0], k = a->shape.dim[0];
    for (int64_t j = 0; j < nn; j++) {
      double s = 0;
      for (int64_t p = 0; p < k; p++)
        s += A[p] * mat(b, B, tb, p, j);
      y[j] = s;
    }
  }
}

static void eval_node(Ctx *c, const Node *n, double **v, const double *params, const double *inputs) {
  int64_t len = shape_numel(n->shape);
  double *y = v[n->id];
  const Node *a = n->args[0], *b = n->args[1];
  const double *A = a ? v[a->id] : NULL, *B = b ? v[b->id] : NULL;
  int64_t an = a ? shape_numel(a->shape) : 0;
  Shape s = n->shape;
  int64_t rows = s.rank == 2 ? s.dim[0] : len, cols = s.rank == 2 ? s.dim[1] : 1;
  if (op_is_window(n->op)) {
    window_eval(n, A, B, y);
    return;
  }
  switch (n->op) {
  case OP_CONST:
    for (int64_t i = 0; i < len; i++)
      y[i] = n->value;
    return;
  case OP_GSYM: return; /* a symbol for explain's formulas, never a value (calloc'd zeros) */
  case OP_PARAM:
  case OP_INPUT: {
    Decl *d = (n->op == OP_PARAM ? c->params : c->inputs).items[n->attr.slot];
    const double *src = n->op == OP_PARAM ? params : inputs;
    for (int64_t i = 0; i < len; i++)
      y[i] = src ? src[d->offset + i] : 0;
    return;
  }
  case OP_SUM:
  case OP_DOT: {
    double t = 0;
    for (int64_t i = 0; i < an; i++)
      t += n->op == OP_DOT ? A[i] * B[i] : A[i];
    y[0] = t;
    return;
  }
  case OP_SUMAX:
    memset(y, 0, sizeof(double) * (size_t)len);
    for (int64_t i = 0; i < an; i++)
      y[kept_index(a->shape, (unsigned)n->attr.axes, i)] += A[i];
    return;
  case OP_MAXALL:
  case OP_MINALL:
  case OP_ARGMAXMASK:
  case OP_ARGMINMASK: {
    int want_max = n->op == OP_MAXALL || n->op == OP_ARGMAXMASK;
    int64_t best = 0;
    for (int64_t i = 1; i < an; i++)
      if (want_max ? A[i] > A[best] : A[i] < A[best]) best = i;
    if (n->op == OP_MAXALL || n->op == OP_MINALL) {
      y[0] = A[best];
    } else {
      memset(y, 0, sizeof(double) * (size_t)len);
      y[best] = B[0];
    }
    return;
  }
  case OP_MAXROW:
  case OP_MINROW:
  case OP_ARGMAXROW:
  case OP_ARGMINROW: { /* row by row over the last axis; the first extreme of each row */
    int want_max = n->op == OP_MAXROW || n->op == OP_ARGMAXROW, mask = n->op == OP_ARGMAXROW || n->op == OP_ARGMINROW;
    int64_t k = a->shape.dim[a->shape.rank - 1], r = an / k;
    if (mask) memset(y, 0, sizeof(double) * (size_t)len);
    for (int64_t i = 0; i < r; i++) {
      int64_t best = 0;
      for (int64_t j = 1; j < k; j++)
        if (want_max ? A[i * k + j] > A[i * k + best] : A[i * k + j] < A[i * k + best]) best = j;
      if (mask)
        y[i * k + best] = B[b->shape.rank ? i : 0];
      else
        y[i] = A[i * k + best];
    }
    return;
  }
  case OP_LSE: {
    int64_t k = a->shape.dim[a->shape.rank - 1], r = an / k; /* over the last axis */
    for (int64_t i = 0; i < r; i++) {
      double mx = A[i * k], t = 0;
      for (int64_t j = 1; j < k; j++)
        mx = fmax(mx, A[i * k + j]);
      for (int64_t j = 0; j < k; j++)
        t += exp(A[i * k + j] - mx);
      y[i] = mx + log(t);
    }
    return;
  }
  case OP_BCAST:
    for (int64_t i = 0; i < len; i++)
      y[i] = A[kept_index(s, (unsigned)n->attr.axes, i)];
    return;
  case OP_TRANSPOSE:
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++)
        y[i * cols + j] = A[j * rows + i];
    return;
  case OP_INDEX: memcpy(y, A + n->attr.offset, sizeof(double) * (size_t)len); return;
  case OP_GATHER:
    for (int64_t i = 0; i < len; i++)
      y[i] = A[gathered_index(&n->attr, s, i)];
    return;
  case OP_SPREAD:
    memset(y, 0, sizeof(double) * (size_t)len);
    for (int64_t i = 0; i < an; i++)
      y[gathered_index(&n->attr, a->shape, i)] += A[i];
    return;
  case OP_SCATTER:
    memset(y, 0, sizeof(double) * (size_t)len);
    memcpy(y + n->attr.offset, A, sizeof(double) * (size_t)an);
    return;
  case OP_CONCAT: { /* each argument's block after the previous ones', block row by block row */
    int axis = shape_axis_of((unsigned)n->attr.axes);
    int64_t outer = shape_outer(s, axis), row = len / outer, at = 0;
    for (int j = 0; j < n->nargs; j++) {
      const double *X = v[n->args[j]->id];
      int64_t block = shape_numel(n->args[j]->shape) / outer;
      for (int64_t o = 0; o < outer; o++)
        memcpy(y + o * row + at, X + o * block, sizeof(double) * (size_t)block);
      at += block;
    }
    return;
  }
  case OP_MATMUL: eval_matmul(n, A, B, y); return;
  case OP_OUTER:
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++)
        y[i * cols + j] = A[i] * B[j];
    return;
  default: break;
  }
  /* elementwise */
  for (int64_t i = 0; i < len; i++) {
    double x = A[shape_broadcast_index(a->shape, s, i)];
    y[i] = op_scalar(n->op, x, b ? B[shape_broadcast_index(b->shape, s, i)] : 0, n->value);
  }
}

void eval_graph(Ctx *c, const double *params, const double *inputs, Values *out) {
  int nroots;
  Node **roots = model_roots(c, &nroots);
  Schedule s;
  schedule_function(c, roots, nroots, c->grad_terms, 0, &s);
  out->n = c->nodes.len;
  out->v = calloc((size_t)out->n, sizeof(double *));
  /* the adjoint of every live value is wanted too (graph and trace show it) */
  char *want = calloc((size_t)out->n + 1, 1);
  for (int i = 0; i < s.order.len; i++)
    want[((Node *)s.order.items[i])->id] = 1;
  for (int i = 0; c->adjoint && i < c->nforward; i++)
    if (want[i] && c->adjoint[i]) want[c->adjoint[i]->id] = 1;
  for (int i = 0; c->input_grads && i < c->inputs.len; i++) /* grad --wrt INPUT */
    if (c->input_grads[i]) want[c->input_grads[i]->id] = 1;
  for (int i = 0; i < c->edges.len; i++) { /* what explain and trace show of each edge */
    EdgeGrad *e = c->edges.items[i];
    if (e->local && want[e->to->id]) want[e->local->id] = 1;
  }
  for (int i = out->n - 1; i >= 0; i--) { /* arguments of wanted nodes are wanted */
    if (!want[i]) continue;
    Node *n = c->nodes.items[i];
    for (int k = 0; k < n->nargs; k++)
      want[n->args[k]->id] = 1;
  }
  for (int i = 0; i < out->n; i++) {
    if (!want[i]) continue;
    Node *n = c->nodes.items[i];
    out->v[i] = calloc((size_t)shape_numel(n->shape) + 1, sizeof(double));
    eval_node(c, n, out->v, params, inputs);
  }
  free(want);
}

void values_free(Values *v) {
  for (int i = 0; i < v->n; i++)
    free(v->v[i]);
  free(v->v);
  v->v = NULL;
  v->n = 0;
}

void eval_param_grad(Ctx *c, const Values *v, int slot, double *out) {
  Decl *d = c->params.items[slot];
  int64_t len = shape_numel(d->shape);
  memset(out, 0, sizeof(double) * (size_t)len);
  for (GradTerm *t = c->grad_terms[slot]; t; t = t->next) {
    const double *g = v->v[t->node->id];
    for (int64_t i = 0; i < len; i++)
      out[i] += t->node->shape.rank ? g[i] : g[0];
  }
}

void eval_input_grad(Ctx *c, const Values *v, int slot, double *out) {
  Decl *d = c->inputs.items[slot];
  int64_t len = shape_numel(d->shape);
  const Node *g = c->input_grads ? c->input_grads[slot] : NULL;
  for (int64_t i = 0; i < len; i++)
    out[i] = g ? v->v[g->id][g->shape.rank ? i : 0] : 0;
}

/* The same generator and formulas as the emitted init function (emit_c.c),
 * so `bpc grad` sees the parameters the generated code starts from. */
/* In [lo, hi) (uniform and glorot): k / 2^53 for the top 53 bits k is in
 * [0, 1), so the lowest draw is lo; a value that rounds up to hi is lo. */
static double uniform_in(uint64_t *state, double lo, double hi) {
  double u = (double)(long long)(splitmix64(state) >> 11) * (1.0 / 9007199254740992.0);
  double x = lo + (hi - lo) * u;
  return x < hi ? x : lo;
}

void eval_init_params(Ctx *c, double *params, uint64_t seed) {
  for (int p = 0; p < c->params.len; p++) {
    Decl *d = c->params.items[p];
    int64_t n = shape_numel(d->shape);
    double *x = params + d->offset;
    uint64_t state = seed ^ (0xD1B54A32D192ED03u * ((uint64_t)p + 1));
    double lo = d->init_a, hi = d->init_b; /* glorot: the bounds lower.c set */
    for (int64_t i = 0; i < n; i++) {
      switch (d->init) {
      case INIT_VALUE: x[i] = d->init_values ? d->init_values[i] : d->init_a; break;
      case INIT_NORMAL: x[i] = d->init_a + d->init_b * random_normal(&state); break;
      case INIT_UNIFORM:
      case INIT_GLOROT: x[i] = uniform_in(&state, lo, hi); break;
      default: x[i] = 0; break;
      }
    }
  }
}
