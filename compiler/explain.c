/* explain.c — backpropagation in words and symbols, as the lecture notes
 * derive it: every path from the loss back to a parameter, the local
 * derivative on each edge, their product along a path, the sum over paths
 * (the copy gate), and the simplified result autodiff built. Also the
 * backward sweep step by step (trace) and expressions as text.
 *
 * Printing an expression recurses into its arguments; the depth is capped
 * (deeper parts print as the name of their node), so hostile graphs cannot
 * exhaust the stack. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpc.h"

enum { P_ADD = 1, P_MUL = 2, P_UNARY = 3, P_POW = 4, P_ATOM = 5 };
enum { MAX_PRINT_DEPTH = 24, MAX_PATHS = 16 };

typedef struct Printer {
  Ctx *c;
  Buf *out;
} Printer;

static void expr(Printer *p, const Node *n, int parent, int depth, int expand_named);

static int prec_of(const Node *n) {
  switch (n->op) {
  case OP_ADD:
  case OP_SUB: return P_ADD;
  case OP_MUL:
  case OP_DIV:
  case OP_MATMUL: return P_MUL;
  case OP_NEG: return P_UNARY;
  case OP_POWC: return P_POW;
  case OP_CONST: return n->value < 0 ? P_UNARY : P_ATOM;
  case OP_BCAST: return prec_of(n->args[0]);
  default: return P_ATOM;
  }
}

static void call(Printer *p, const char *fn, const Node *n, int depth) {
  buf_printf(p->out, "%s(", fn);
  for (int k = 0; k < n->nargs; k++) {
    if (k) buf_puts(p->out, ", ");
    expr(p, n->args[k], 0, depth + 1, 0);
  }
  buf_puts(p->out, ")");
}

static void infix(Printer *p, const Node *n, const char *op, int prec, int depth) {
  expr(p, n->args[0], prec, depth + 1, 0);
  buf_printf(p->out, " %s ", op);
  /* a - (b - c), a / (b * c): the right side binds tighter */
  expr(p, n->args[1], (n->op == OP_SUB || n->op == OP_DIV) ? prec + 1 : prec, depth + 1, 0);
}

/* [a > b], written with any constant on the right: [u > 0]. */
static void indicator(Printer *p, const Node *n, int depth) {
  const Node *a = n->args[0], *b = n->args[1];
  const char *op = n->op == OP_GT ? ">" : "<";
  if (a->op == OP_CONST && b->op != OP_CONST) {
    const Node *t = a;
    a = b;
    b = t;
    op = n->op == OP_GT ? "<" : ">";
  }
  buf_puts(p->out, "[");
  expr(p, a, 0, depth + 1, 0);
  buf_printf(p->out, " %s ", op);
  expr(p, b, 0, depth + 1, 0);
  buf_puts(p->out, "]");
}

static void index_expr(Printer *p, const Node *n, int depth) {
  const Node *a = n->args[0];
  expr(p, a, P_ATOM, depth + 1, 0);
  if (a->shape.rank == 2 && n->shape.rank == 1)
    buf_printf(p->out, "[%lld]", (long long)(n->attr / a->shape.dim[1]));
  else if (a->shape.rank == 2)
    buf_printf(p->out, "[%lld, %lld]", (long long)(n->attr / a->shape.dim[1]),
               (long long)(n->attr % a->shape.dim[1]));
  else
    buf_printf(p->out, "[%d]", n->attr);
}

static void matmul_expr(Printer *p, const Node *n, int depth) {
  for (int k = 0; k < 2; k++) {
    if (k) buf_puts(p->out, " @ ");
    int t = n->attr & (k ? MM_TB : MM_TA);
    if (t) buf_puts(p->out, "transpose(");
    expr(p, n->args[k], t ? 0 : P_MUL + 1, depth + 1, 0);
    if (t) buf_puts(p->out, ")");
  }
}

static void expr_body(Printer *p, const Node *n, int depth) {
  switch (n->op) {
  case OP_CONST: buf_printf(p->out, "%g", n->value); return;
  case OP_PARAM:
  case OP_INPUT: buf_puts(p->out, n->name); return;
  case OP_NEG: /* -(a * b) reads as -a * b */
    buf_puts(p->out, "-");
    expr(p, n->args[0], n->args[0]->op == OP_MUL && !n->args[0]->name ? P_MUL : P_UNARY, depth + 1, 0);
    return;
  case OP_ADD: infix(p, n, "+", P_ADD, depth); return;
  case OP_SUB: infix(p, n, "-", P_ADD, depth); return;
  case OP_MUL: infix(p, n, "*", P_MUL, depth); return;
  case OP_DIV: infix(p, n, "/", P_MUL, depth); return;
  case OP_POWC:
    expr(p, n->args[0], P_POW + 1, depth + 1, 0);
    buf_printf(p->out, n->value < 0 ? "^(%g)" : "^%g", n->value);
    return;
  case OP_GT:
  case OP_LT: indicator(p, n, depth); return;
  case OP_MAX2: call(p, "max", n, depth); return;
  case OP_MIN2: call(p, "min", n, depth); return;
  case OP_MAXALL: call(p, "max", n, depth); return;
  case OP_MINALL: call(p, "min", n, depth); return;
  case OP_ARGMAXMASK: call(p, "onehot_argmax", n, depth); return;
  case OP_ARGMINMASK: call(p, "onehot_argmin", n, depth); return;
  case OP_SUMAX:
    buf_puts(p->out, "sum(");
    expr(p, n->args[0], 0, depth + 1, 0);
    buf_printf(p->out, ", %d)", n->attr);
    return;
  case OP_BCAST: expr(p, n->args[0], prec_of(n->args[0]), depth, 0); return;
  case OP_INDEX: index_expr(p, n, depth); return;
  case OP_SCATTER:
    buf_printf(p->out, "scatter%s(", shape_str(p->c, n->shape));
    expr(p, n->args[0], 0, depth + 1, 0);
    buf_printf(p->out, ", at %d)", n->attr);
    return;
  case OP_MATMUL: matmul_expr(p, n, depth); return;
  default: call(p, op_name(n->op), n, depth); return;
  }
}

static void expr(Printer *p, const Node *n, int parent, int depth, int expand_named) {
  int named = n->name && !n->is_backward && n->op != OP_PARAM && n->op != OP_INPUT;
  if ((named && !expand_named) || depth > MAX_PRINT_DEPTH) {
    if (named)
      buf_puts(p->out, n->name);
    else
      buf_printf(p->out, "t%d", n->id);
    return;
  }
  int prec = prec_of(n), paren = prec < parent;
  if (paren) buf_puts(p->out, "(");
  expr_body(p, n, depth);
  if (paren) buf_puts(p->out, ")");
}

void expr_string(Ctx *c, const Node *n, int expand_named, Buf *out) {
  Printer p = {c, out};
  expr(&p, n, 0, 0, expand_named);
}

/* ---- local derivatives ---------------------------------------------------- */

/* d y / d (argument k of y), in symbols. */
/* open, then x printed whole, then close: "sigmoid(" x ")". */
static void around(Printer *p, const char *open, const Node *x, const char *close) {
  buf_puts(p->out, open);
  expr(p, x, 0, 1, 0);
  buf_puts(p->out, close);
}

static void local_symbol(Printer *p, const Node *y, int k) {
  const Node *a = y->args[0], *b = y->args[1], *x = y->args[k];
  Buf *o = p->out;
  switch (y->op) {
  case OP_ADD: buf_puts(o, "1"); return;
  case OP_SUB: buf_puts(o, k ? "-1" : "1"); return;
  case OP_MUL:
  case OP_DOT: expr(p, y->args[1 - k], P_MUL, 1, 0); return;
  case OP_DIV:
    if (!k) {
      buf_puts(o, "1 / ");
      expr(p, b, P_MUL + 1, 1, 0);
    } else {
      buf_puts(o, "-");
      expr(p, a, P_MUL, 1, 0);
      buf_puts(o, " / ");
      expr(p, b, P_POW + 1, 1, 0);
      buf_puts(o, "^2");
    }
    return;
  case OP_MAX2:
  case OP_MIN2: { /* the router: [x > other] for max, [x < other] for min */
    const char *rel = y->op == OP_MAX2 ? ">" : "<";
    buf_puts(o, "[");
    expr(p, x, 0, 1, 0);
    buf_printf(o, " %s ", rel);
    expr(p, y->args[1 - k], 0, 1, 0);
    buf_puts(o, "]");
    return;
  }
  case OP_NEG: buf_puts(o, "-1"); return;
  case OP_EXP: expr(p, y, 0, 0, 0); return;
  case OP_LOG:
    buf_puts(o, "1 / ");
    expr(p, x, P_MUL + 1, 1, 0);
    return;
  case OP_SQRT: around(p, "1 / (2 sqrt(", x, "))"); return;
  case OP_ABS: around(p, "sign(", x, ")"); return;
  case OP_SIN: around(p, "cos(", x, ")"); return;
  case OP_COS: around(p, "-sin(", x, ")"); return;
  case OP_TANH:
    buf_puts(o, "1 - ");
    expr(p, y, P_POW + 1, 0, 0);
    buf_puts(o, "^2");
    return;
  case OP_SIGMOID:
    expr(p, y, P_MUL, 0, 0);
    buf_puts(o, " * (1 - ");
    expr(p, y, P_ADD + 1, 0, 0);
    buf_puts(o, ")");
    return;
  case OP_RELU: around(p, "[", x, " > 0]"); return;
  case OP_SOFTPLUS: around(p, "sigmoid(", x, ")"); return;
  case OP_POWC:
    buf_printf(o, "%g * ", y->value);
    expr(p, x, P_POW + 1, 1, 0);
    buf_printf(o, y->value - 1 < 0 ? "^(%g)" : "^%g", y->value - 1);
    return;
  case OP_SUM:
  case OP_SUMAX: buf_puts(o, "1 (each element)"); return;
  case OP_MAXALL: buf_puts(o, "1 at the first largest element, 0 elsewhere"); return;
  case OP_MINALL: buf_puts(o, "1 at the first smallest element, 0 elsewhere"); return;
  case OP_LSE: around(p, "softmax(", x, ")"); return;
  case OP_BCAST: buf_puts(o, "1 (the copies' gradients add up)"); return;
  case OP_TRANSPOSE: buf_puts(o, "the gradient transposed"); return;
  case OP_INDEX: buf_puts(o, "1 at the indexed element(s)"); return;
  case OP_OUTER: buf_puts(o, k ? "from the left: a @ G" : "from the right: G @ b"); return;
  case OP_MATMUL:
    if (k == 0) {
      around(p, "from the right: G @ transpose(", b, ")");
    } else {
      around(p, "from the left: transpose(", a, ") @ G");
    }
    return;
  default: buf_puts(o, "0"); return;
  }
}

/* "d max(0, m)/dm", "d(a * b)/da": the derivative being taken. */
static void derivative_head(Printer *p, const Node *y, int k) {
  int wrap = prec_of(y) < P_ATOM;
  buf_puts(p->out, wrap ? "d(" : "d ");
  expr(p, y, 0, 0, 1);
  buf_puts(p->out, wrap ? ")/d" : "/d");
  const Node *x = y->args[k];
  int xwrap = prec_of(x) < P_ATOM && !(x->name && !x->is_backward);
  buf_puts(p->out, xwrap ? "(" : "");
  expr(p, x, 0, 0, 0);
  buf_puts(p->out, xwrap ? ")" : "");
}

static void print_value(Buf *o, Ctx *c, const Values *v, const Node *n) {
  if (!v || !v->v[n->id]) return;
  if (n->shape.rank == 0) {
    buf_printf(o, " = %.10g", v->v[n->id][0]);
    return;
  }
  int64_t len = shape_numel(n->shape);
  buf_printf(o, " = %s [", shape_str(c, n->shape));
  for (int64_t i = 0; i < len && i < 6; i++)
    buf_printf(o, "%s%.6g", i ? ", " : "", v->v[n->id][i]);
  buf_puts(o, len > 6 ? ", ...]" : "]");
}

/* The contribution recorded along an edge, for its numeric value. */
static EdgeGrad *edge_of(Ctx *c, const Node *from, const Node *to, int k) {
  for (int i = 0; i < c->edges.len; i++) {
    EdgeGrad *e = c->edges.items[i];
    if (e->from == from && e->to == to && (e->arg == k || to->args[0] == to->args[1])) return e;
  }
  return NULL;
}

/* A local derivative's value for scalar edges: contribution / incoming. */
static int local_value(Ctx *c, const Values *v, const Node *y, int k, double *out) {
  if (!v || y->shape.rank || y->args[k]->shape.rank || !c->adjoint) return 0;
  EdgeGrad *e = edge_of(c, y->args[k], y, k);
  const Node *in = y == c->loss ? NULL : c->adjoint[y->id];
  double g_in = in ? (v->v[in->id] ? v->v[in->id][0] : NAN) : 1;
  if (!e || !v->v[e->g->id] || !(g_in != 0) || !isfinite(g_in)) {
    if (e && v->v[e->g->id] && v->v[e->g->id][0] == 0) { /* a closed gate */
      *out = 0;
      return g_in != 0;
    }
    return 0;
  }
  *out = v->v[e->g->id][0] / g_in;
  return 1;
}

/* ---- paths from the loss to a parameter ----------------------------------------- */

typedef struct Path {
  const Node **nodes; /* from the parameter (0) to the loss */
  int *args;          /* args[i]: which argument nodes[i] is of nodes[i + 1] */
  int len;
} Path;

/* Depth-first over consumers with an explicit stack; at most MAX_PATHS. */
static int find_paths(Ctx *c, const Node *from, Path *paths, int *more) {
  int n = c->nforward;
  int *ncons = arena_alloc(&c->arena, sizeof(int) * (size_t)(n + 1));
  const Node ***cons = arena_alloc(&c->arena, sizeof(Node **) * (size_t)(n + 1));
  Schedule s;
  schedule_function(c, &c->loss, 1, NULL, 0, &s);
  char *live = arena_alloc(&c->arena, (size_t)n + 1);
  for (int i = 0; i < s.order.len; i++) {
    const Node *y = s.order.items[i];
    if (y->id < n) live[y->id] = 1;
  }
  /* consumers of every live value that carries gradient, counted first */
  for (int i = 0; i < n; i++) {
    const Node *y = c->nodes.items[i];
    if (!live[i] || !y->needs_grad) continue;
    for (int k = 0; k < y->nargs; k++)
      if (!(k == 1 && y->args[0] == y->args[1])) ncons[y->args[k]->id]++;
  }
  for (int i = 0; i < n; i++) {
    cons[i] = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(ncons[i] + 1));
    ncons[i] = 0;
  }
  for (int i = 0; i < n; i++) {
    const Node *y = c->nodes.items[i];
    if (!live[i] || !y->needs_grad) continue;
    for (int k = 0; k < y->nargs; k++)
      if (!(k == 1 && y->args[0] == y->args[1])) cons[y->args[k]->id][ncons[y->args[k]->id]++] = y;
  }
  /* stack of (node, next consumer index) */
  const Node **stack = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(n + 2));
  int *next = arena_alloc(&c->arena, sizeof(int) * (size_t)(n + 2));
  int depth = 0, found = 0;
  *more = 0;
  stack[0] = from;
  next[0] = 0;
  while (depth >= 0) {
    const Node *top = stack[depth];
    if (top == c->loss) {
      if (found < MAX_PATHS) {
        Path *pa = &paths[found];
        pa->len = depth + 1;
        pa->nodes = arena_alloc(&c->arena, sizeof(Node *) * (size_t)pa->len);
        pa->args = arena_alloc(&c->arena, sizeof(int) * (size_t)pa->len);
        for (int i = 0; i <= depth; i++) {
          pa->nodes[i] = stack[i];
          if (i < depth) pa->args[i] = stack[i + 1]->args[0] == stack[i] ? 0 : 1;
        }
        found++;
      } else {
        (*more)++;
      }
      depth--;
      continue;
    }
    if (next[depth] >= ncons[top->id] || (*more) > 100000) {
      depth--;
      continue;
    }
    const Node *y = cons[top->id][next[depth]++];
    stack[++depth] = y;
    next[depth] = 0;
  }
  return found;
}

static void show_definitions(Printer *p, const Path *paths, int npaths) {
  Ctx *c = p->c;
  char *shown = arena_alloc(&c->arena, (size_t)c->nforward + 1);
  for (int k = 0; k < npaths; k++)
    for (int i = paths[k].len - 1; i > 0; i--) {
      const Node *n = paths[k].nodes[i];
      if (!n->name || shown[n->id]) continue;
      shown[n->id] = 1;
      buf_printf(p->out, "  %s = ", n->name);
      expr(p, n, 0, 0, 1);
      buf_puts(p->out, "\n");
    }
}

int explain(Ctx *c, const char *wrt, const Values *v, Buf *out) {
  Decl *param = NULL;
  for (int i = 0; i < c->params.len; i++)
    if (!strcmp(((Decl *)c->params.items[i])->name, wrt)) param = c->params.items[i];
  if (!param) return 1;
  Printer p = {c, out};
  Path paths[MAX_PATHS];
  int more = 0, npaths = find_paths(c, param->node, paths, &more);
  buf_printf(out, "dloss/d%s by the chain rule, from the loss back to %s.\n\n", wrt, wrt);
  if (npaths == 0) {
    buf_printf(out, "No path leads from %s to the loss: dloss/d%s = 0.\n", wrt, wrt);
    return 0;
  }
  buf_puts(out, "where\n");
  show_definitions(&p, paths, npaths);
  for (int k = 0; k < npaths; k++) {
    const Path *pa = &paths[k];
    buf_printf(out, "\npath %d: loss", k + 1);
    for (int i = pa->len - 2; i >= 0; i--) {
      buf_puts(out, " <- ");
      int wrap = prec_of(pa->nodes[i]) < P_ATOM && !(pa->nodes[i]->name && !pa->nodes[i]->is_backward);
      buf_puts(out, wrap ? "(" : "");
      expr(&p, pa->nodes[i], 0, 0, 0);
      buf_puts(out, wrap ? ")" : "");
    }
    buf_puts(out, "\n");
    double product = 1;
    int product_known = 1;
    for (int i = pa->len - 2; i >= 0; i--) {
      const Node *y = pa->nodes[i + 1];
      int a = pa->args[i];
      buf_puts(out, "  ");
      derivative_head(&p, y, a);
      buf_puts(out, " = ");
      size_t start = out->len;
      local_symbol(&p, y, a);
      double lv;
      if (local_value(c, v, y, a, &lv)) {
        product *= lv;
        char *end;
        double same = strtod(out->data + start, &end);
        if (*end || same != lv) /* "= 1 = 1" says nothing */
          buf_printf(out, " = %.10g", lv);
      } else {
        product_known = 0;
      }
      buf_puts(out, "\n");
    }
    buf_puts(out, "  product: ");
    for (int i = pa->len - 2; i >= 0; i--) {
      if (i != pa->len - 2) buf_puts(out, " * ");
      Buf f = {0};
      Printer q = {c, &f};
      local_symbol(&q, pa->nodes[i + 1], pa->args[i]);
      int wrap = strchr(f.data, ' ') && f.data[0] != '[';
      buf_printf(out, wrap ? "(%s)" : "%s", f.data);
      buf_free(&f);
    }
    if (v && product_known) buf_printf(out, " = %.10g", product);
    buf_puts(out, "\n");
  }
  if (more) buf_printf(out, "\n... and %d more path%s.\n", more, more == 1 ? "" : "s");
  if (npaths + more > 1)
    buf_printf(
        out,
        "\nThe paths meet where a value is used more than once; their products add up (the copy gate).\n");
  buf_printf(out, "\nsimplified (as bpc computes it):\n  dloss/d%s = ", wrt);
  if (!c->grad_terms[param->node->slot]) buf_puts(out, "0");
  for (GradTerm *t = c->grad_terms[param->node->slot]; t; t = t->next) {
    const Node *term = t->node;
    int first = t == c->grad_terms[param->node->slot];
    if (!first && term->op == OP_NEG && !term->name) { /* a + -b reads as a - b */
      buf_puts(out, " - ");
      expr(&p, term->args[0], P_ADD + 1, 0, 1);
      continue;
    }
    if (!first) buf_puts(out, " + ");
    expr(&p, term, P_ADD, 0, 1);
  }
  if (v) {
    double *g = calloc((size_t)shape_numel(param->shape), sizeof(double));
    eval_param_grad(c, v, param->node->slot, g);
    int64_t len = shape_numel(param->shape);
    buf_puts(out, len == 1 ? " = " : "\n  = [");
    for (int64_t i = 0; i < len && i < 12; i++)
      buf_printf(out, "%s%.10g", i ? ", " : "", g[i]);
    buf_puts(out, len == 1 ? "" : (len > 12 ? ", ...]" : "]"));
    free(g);
  }
  buf_puts(out, "\n");
  return 0;
}

/* ---- trace: the backward sweep, step by step -------------------------------------- */

void trace(Ctx *c, const Values *v, Buf *out) {
  Printer p = {c, out};
  buf_puts(out, "backward sweep, from the loss (dloss/dloss = 1):\n");
  const Node *current = NULL;
  for (int i = 0; i < c->edges.len; i++) {
    EdgeGrad *e = c->edges.items[i];
    if (e->to != current) {
      current = e->to;
      buf_puts(out, "\n");
      if (current->name && !current->is_backward) buf_printf(out, "%s = ", current->name);
      expr(&p, current, 0, 0, 1);
      print_value(out, c, v, current);
      buf_puts(out, "\n  incoming dloss/d");
      if (current->name)
        buf_puts(out, current->name);
      else
        expr(&p, current, P_ATOM, 0, 0);
      if (current == c->loss)
        buf_puts(out, " = 1");
      else if (c->adjoint && c->adjoint[current->id])
        print_value(out, c, v, c->adjoint[current->id]);
      buf_puts(out, "\n");
    }
    buf_puts(out, "  to ");
    expr(&p, e->from, 0, 0, 0);
    buf_puts(out, ": local ");
    size_t start = out->len;
    local_symbol(&p, e->to, e->arg);
    double lv;
    char *end;
    if (local_value(c, v, e->to, e->arg, &lv) && (strtod(out->data + start, &end) != lv || *end))
      buf_printf(out, " = %.10g", lv);
    buf_puts(out, ", outgoing");
    print_value(out, c, v, e->g);
    if (!v) buf_puts(out, " (symbolic)");
    buf_puts(out, "\n");
  }
}
