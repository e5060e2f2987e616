/* explain.c — backpropagation in words and symbols, as the lecture notes
 * derive it: every path from the loss back to a parameter, the local
 * derivative on each edge, their product along a path, the sum over paths
 * (the copy gate), and the simplified result autodiff built. Also the
 * backward sweep step by step (trace) and expressions as text.
 *
 * An edge is one argument slot: x * x reaches x along two edges, so it has
 * two paths, whose products add up to the derivative. Paths are counted
 * exactly by dynamic programming over the graph (their number can be
 * exponential), and only the first few are listed. The simplified formula
 * is printed with its shared subexpressions named (dloss/dNAME for the
 * adjoint of a value the model names), and cut with a note past a length.
 *
 * Everything here is iterative, or recursion with its depth capped:
 * printing an expression recurses into its arguments at most
 * MAX_PRINT_DEPTH deep (deeper parts print as "..."), and at most
 * EXPR_NODES nodes per expression, so hostile graphs can exhaust neither
 * the stack nor the time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpc.h"

enum { P_LOOSE = 0, P_ADD = 1, P_MUL = 2, P_UNARY = 3, P_POW = 4, P_ATOM = 5 };
enum {
  MAX_PRINT_DEPTH = 24,     /* levels of one expression printed; deeper parts print as "..." */
  EXPR_NODES = 400,         /* nodes of one expression printed; the rest prints as "..." */
  MAX_PATHS = 16,           /* paths listed */
  MAX_PATH_LINES = 240,     /* local derivatives listed over all paths (the first path always is) */
  SHORT_FORMULA = 100,      /* characters: a longer simplified formula names its shared parts */
  DEF_HEIGHT = 10,          /* levels in one line of the simplified formula before a part is named */
  SHARED_SIZE = 3,          /* operations a shared part has before it is named */
  MAX_FORMULA_CHARS = 4000, /* characters of the simplified formula shown; the rest is cut */
  MAX_DEF_LINES = 40,       /* named parts of the simplified formula shown */
};

/* The simplified formula's named parts ("where" lines). */
typedef struct Defs {
  char *def;         /* per node id: printed by its name, defined on a line of its own */
  const char **name; /* per node id: that name, given at its first reference */
  const char **adj;  /* per node id: "dloss/dNAME" where it is the adjoint of a named value */
  PtrVec order;      /* the named nodes, in order of first reference */
  int numbered;      /* names "#1", "#2", ... given so far, for parts without a natural name */
} Defs;

typedef struct Printer {
  Ctx *c;
  Buf *out;
  Defs *defs; /* or NULL */
  long limit; /* nodes per expression (0: no limit) */
  long left;  /* nodes left in the expression being printed */
  int nest;   /* open calls of expr: 0 outside any expression */
  int cut;    /* some part was printed as "..." */
  const char *g; /* what the symbol G (OP_GSYM) prints as: "G", or a path's product so far */
} Printer;

static Printer printer(Ctx *c, Buf *out) {
  Printer p = {c, out, NULL, EXPR_NODES, 0, 0, 0, "G"};
  return p;
}

/* A named part's name, given (and queued for its "where" line) at its
 * first reference. */
static const char *def_name(Printer *p, const Node *n) {
  Defs *d = p->defs;
  if (!d->name[n->id]) {
    d->name[n->id] = d->adj[n->id] ? d->adj[n->id] : arena_printf(&p->c->arena, "#%d", ++d->numbered);
    vec_push(&p->c->arena, &d->order, (void *)n);
  }
  return d->name[n->id];
}

static void expr(Printer *p, const Node *n, int parent, int depth, int expand_named);

/* How a view (or a scatter, its adjoint) of `view` elements at flat offset
 * `at` of `base` reads in the language: all of it (reshape), by leading
 * indices (a row, an element, a matrix of a stack: x[1, 2]), a range of
 * rows (x[2:5]), or only as a block at an offset. */
enum { VIEW_WHOLE, VIEW_INDEX, VIEW_ROWS, VIEW_AT };
static int view_kind(Shape base, Shape view, int64_t at) {
  int64_t size = shape_numel(view);
  int lead = base.rank - view.rank; /* indexed axes, if the view is base's trailing axes */
  int trailing = lead >= 0 && at % (size ? size : 1) == 0;
  for (int k = 0; trailing && k < view.rank; k++)
    trailing = view.dim[k] == base.dim[lead + k];
  if (size == shape_numel(base) && at == 0 && !(trailing && lead > 0)) return VIEW_WHOLE;
  if (trailing && lead > 0) return VIEW_INDEX;
  int64_t row = base.rank ? shape_numel(base) / (base.dim[0] ? base.dim[0] : 1) : 1;
  int rows = view.rank == base.rank && base.rank > 0 && at % (row ? row : 1) == 0;
  for (int k = 1; rows && k < view.rank; k++)
    rows = view.dim[k] == base.dim[k];
  return rows ? VIEW_ROWS : VIEW_AT;
}

/* What a gather of `part` from `base` (offset and strides in attr) is in
 * the language: a permutation of the axes (perm, when asked for), slices
 * (start, when asked for), or neither. */
enum { GATHER_PERM, GATHER_SLICE, GATHER_OTHER };
static int gather_kind(Shape base, Shape part, const Attr *attr, int *perm, int64_t *start) {
  int64_t own[BPC_MAX_RANK];
  shape_strides(base, own);
  int is_perm = attr->offset == 0 && part.rank == base.rank;
  for (int k = 0; k < part.rank && is_perm; k++) {
    int found = -1;
    for (int j = 0; j < base.rank; j++)
      if (attr->stride[k] == own[j] && part.dim[k] == base.dim[j]) found = j;
    if (perm) perm[k] = found;
    is_perm = found >= 0;
  }
  if (is_perm) return GATHER_PERM;
  int is_slice = part.rank == base.rank;
  int64_t at = attr->offset;
  for (int k = 0; k < base.rank && is_slice; k++) {
    if (start) start[k] = at / own[k];
    at %= own[k];
    is_slice = part.dim[k] == 1 || attr->stride[k] % own[k] == 0;
  }
  return is_slice ? GATHER_SLICE : GATHER_OTHER;
}

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
  case OP_ARGMAXMASK: /* onehot_argmax(x) * g */
  case OP_ARGMINMASK:
  case OP_ARGMAXROW:
  case OP_ARGMINROW: return ir_is_const(n->args[1], 1) ? P_ATOM : P_MUL;
  case OP_SCATTER: /* "g at [1, 2], 0 elsewhere" binds loosest: in parentheses inside anything */
    return view_kind(n->shape, n->args[0]->shape, n->attr.offset) == VIEW_WHOLE ? P_ATOM : P_LOOSE;
  case OP_SPREAD: return gather_kind(n->shape, n->args[0]->shape, &n->attr, NULL, NULL) == GATHER_PERM ? P_ATOM : P_LOOSE;
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
  /* a - (b - c), a / (b * c), k * (A @ B): the right side binds tighter (* and @
   * do not associate: k * A @ B is (k * A) @ B) */
  int tighter = n->op == OP_SUB || n->op == OP_DIV || (n->op == OP_MUL && n->args[1]->op == OP_MATMUL);
  expr(p, n->args[1], tighter ? prec + 1 : prec, depth + 1, 0);
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

/* The subscript of a view that is not all of base: "[1, 2]", "[2:5]",
 * "[at 7: [3]]". */
static void view_subscript(Printer *p, Shape base, Shape view, int64_t at, int kind) {
  int64_t size = shape_numel(view);
  if (kind == VIEW_ROWS) {
    int64_t row = shape_numel(base) / base.dim[0], first = at / (row ? row : 1);
    buf_printf(p->out, "[%lld:%lld]", (long long)first, (long long)(first + view.dim[0]));
    return;
  }
  if (kind != VIEW_INDEX) {
    buf_printf(p->out, "[at %lld: %s]", (long long)at, shape_str(p->c, view));
    return;
  }
  int lead = base.rank - view.rank;
  int64_t idx[BPC_MAX_RANK], block = at / (size ? size : 1);
  for (int k = lead - 1; k >= 0; k--) {
    idx[k] = block % base.dim[k];
    block /= base.dim[k];
  }
  for (int k = 0; k < lead; k++)
    buf_printf(p->out, "%s%lld", k ? ", " : "[", (long long)idx[k]);
  buf_puts(p->out, "]");
}

/* A view as the language writes it: x[i, j] when it selects by leading
 * indices, x[a:b] a range of rows, reshape(x, [...]) when it is all of x,
 * else the block at a flat offset. */
static void index_expr(Printer *p, const Node *n, int depth) {
  const Node *a = n->args[0];
  int kind = view_kind(a->shape, n->shape, n->attr.offset);
  if (kind == VIEW_WHOLE) {
    buf_puts(p->out, n->shape.rank == 1 ? "flatten(" : "reshape(");
    expr(p, a, 0, depth + 1, 0);
    buf_printf(p->out, n->shape.rank == 1 ? ")" : ", %s)", shape_str(p->c, n->shape));
    return;
  }
  expr(p, a, P_ATOM, depth + 1, 0);
  view_subscript(p, a->shape, n->shape, n->attr.offset, kind);
}

/* A scatter, the adjoint of a view: g placed where the view read, zeros
 * elsewhere ("g at [1, 2], 0 elsewhere"); of a view of all of x, g in x's
 * shape again. */
static void scatter_expr(Printer *p, const Node *n, int depth) {
  const Node *g = n->args[0];
  int kind = view_kind(n->shape, g->shape, n->attr.offset);
  if (kind == VIEW_WHOLE) {
    buf_puts(p->out, n->shape.rank == 1 ? "flatten(" : "reshape(");
    expr(p, g, 0, depth + 1, 0);
    buf_printf(p->out, n->shape.rank == 1 ? ")" : ", %s)", shape_str(p->c, n->shape));
    return;
  }
  expr(p, g, P_MUL + 1, depth + 1, 0);
  buf_puts(p->out, " at ");
  view_subscript(p, n->shape, g->shape, n->attr.offset, kind);
  buf_puts(p->out, ", 0 elsewhere");
}

/* "[0:2, 1:4:2]": a gather's slices, or "[gathered: [2,3]]". */
static void slice_subscript(Printer *p, Shape base, Shape part, const Attr *attr, int kind, const int64_t *start) {
  if (kind != GATHER_SLICE) {
    buf_printf(p->out, "[gathered: %s]", shape_str(p->c, part));
    return;
  }
  int64_t own[BPC_MAX_RANK];
  shape_strides(base, own);
  for (int k = 0; k < part.rank; k++) {
    int64_t step = part.dim[k] == 1 ? 1 : attr->stride[k] / own[k], end = start[k] + step * (part.dim[k] - 1) + 1;
    buf_printf(p->out, "%s%lld:%lld", k ? ", " : "[", (long long)start[k], (long long)end);
    if (step != 1) buf_printf(p->out, ":%lld", (long long)step);
  }
  buf_puts(p->out, "]");
}

/* A gather as the language writes it: transpose(x, [2, 0, 1]) when it
 * permutes the axes, x[a:b:s, ...] when it slices them. */
static void gather_expr(Printer *p, const Node *n, int depth) {
  const Node *a = n->args[0];
  int perm[BPC_MAX_RANK];
  int64_t start[BPC_MAX_RANK];
  int kind = gather_kind(a->shape, n->shape, &n->attr, perm, start);
  if (kind == GATHER_PERM) {
    buf_puts(p->out, "transpose(");
    expr(p, a, 0, depth + 1, 0);
    for (int k = 0; k < n->shape.rank; k++)
      buf_printf(p->out, "%s%d", k ? ", " : ", [", perm[k]);
    buf_puts(p->out, "])");
    return;
  }
  expr(p, a, P_ATOM, depth + 1, 0);
  slice_subscript(p, a->shape, n->shape, &n->attr, kind, start);
}

/* A spread, the adjoint of a gather: of a transpose, g transposed back; of
 * slices, g placed where they read, zeros elsewhere. */
static void spread_expr(Printer *p, const Node *n, int depth) {
  const Node *g = n->args[0];
  int perm[BPC_MAX_RANK], back[BPC_MAX_RANK];
  int64_t start[BPC_MAX_RANK];
  int kind = gather_kind(n->shape, g->shape, &n->attr, perm, start);
  if (kind == GATHER_PERM) {
    for (int k = 0; k < n->shape.rank; k++)
      back[perm[k]] = k;
    buf_puts(p->out, "transpose(");
    expr(p, g, 0, depth + 1, 0);
    for (int k = 0; k < n->shape.rank; k++)
      buf_printf(p->out, "%s%d", k ? ", " : ", [", back[k]);
    buf_puts(p->out, "])");
    return;
  }
  expr(p, g, P_MUL + 1, depth + 1, 0);
  buf_puts(p->out, " at ");
  slice_subscript(p, n->shape, g->shape, &n->attr, kind, start);
  buf_puts(p->out, ", 0 elsewhere");
}

/* onehot_argmax(x): 1 at x's first largest element (each row's, for a
 * row-by-row max), times the gradient it routes there unless that is 1. */
static void onehot_expr(Printer *p, const Node *n, int depth) {
  buf_printf(p->out, "%s(", op_info[n->op].label);
  expr(p, n->args[0], 0, depth + 1, 0);
  buf_puts(p->out, ")");
  if (ir_is_const(n->args[1], 1)) return;
  buf_puts(p->out, " * ");
  expr(p, n->args[1], P_MUL, depth + 1, 0);
}

static void matmul_expr(Printer *p, const Node *n, int depth) {
  for (int k = 0; k < 2; k++) {
    if (k) buf_puts(p->out, " @ ");
    int t = (int)(n->attr.mm & (k ? MM_TB : MM_TA));
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
  case OP_GSYM: buf_puts(p->out, p->g); return;
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
  case OP_MAXALL:
  case OP_MAXROW: call(p, "max", n, depth); return;
  case OP_MINROW: call(p, "min", n, depth); return;
  case OP_ARGMAXROW:
  case OP_ARGMINROW:
  case OP_ARGMAXMASK:
  case OP_ARGMINMASK: onehot_expr(p, n, depth); return;
  case OP_MINALL: call(p, "min", n, depth); return;
  case OP_CONCAT: call(p, "concat", n, depth); return;
  case OP_SUMAX:
    buf_puts(p->out, "sum(");
    expr(p, n->args[0], 0, depth + 1, 0);
    for (int k = 0, first = 1; k < BPC_MAX_RANK; k++) /* the axis, or [0, 2] for several */
      if (n->attr.axes & (1 << k)) {
        int several = (n->attr.axes & (n->attr.axes - 1)) != 0;
        buf_printf(p->out, "%s%d", first ? (several ? ", [" : ", ") : ", ", k);
        first = 0;
      }
    buf_puts(p->out, (n->attr.axes & (n->attr.axes - 1)) ? "])" : ")");
    return;
  case OP_INDEX: index_expr(p, n, depth); return;
  case OP_GATHER: gather_expr(p, n, depth); return;
  case OP_SCATTER: scatter_expr(p, n, depth); return;
  case OP_SPREAD: spread_expr(p, n, depth); return;
  case OP_MATMUL: matmul_expr(p, n, depth); return;
  default:
    if (op_is_unary_elementwise(n->op) && n->value != 0) { /* its constant too: leaky_relu(x, 0.1) */
      buf_printf(p->out, "%s(", op_name(n->op));
      expr(p, n->args[0], 0, depth + 1, 0);
      buf_printf(p->out, ", %g)", n->value);
      return;
    }
    call(p, op_name(n->op), n, depth);
    return;
  }
}

/* Whether text has a space outside brackets: "a * b" does, "f(a, b)" and
 * "[a > b]" do not; inside an operator it needs parentheses. */
static int spaced(const char *t) {
  int depth = 0;
  for (; t && *t; t++) {
    if (*t == '(' || *t == '[') depth++;
    if (*t == ')' || *t == ']') depth--;
    if (*t == ' ' && depth == 0) return 1;
  }
  return 0;
}

static void expr(Printer *p, const Node *n, int parent, int depth, int expand_named) {
  if (p->defs && !expand_named && p->defs->def[n->id]) {
    buf_puts(p->out, def_name(p, n));
    return;
  }
  int named = n->name && !n->is_backward && n->op != OP_PARAM && n->op != OP_INPUT;
  if (named && !expand_named) {
    buf_puts(p->out, n->name);
    return;
  }
  if (n->op == OP_BCAST) { /* implicit, as numpy writes it: the parentheses are the argument's */
    expr(p, n->args[0], parent, depth, 0);
    return;
  }
  if (n->op == OP_GSYM && parent > P_LOOSE && spaced(p->g)) { /* a product in place of G: W2 @ (a * b) */
    buf_printf(p->out, "(%s)", p->g);
    return;
  }
  if (p->nest == 0) p->left = p->limit;
  if (depth > MAX_PRINT_DEPTH || (p->limit && p->left <= 0)) {
    buf_puts(p->out, "...");
    p->cut = 1;
    return;
  }
  p->left--;
  p->nest++;
  int prec = prec_of(n), paren = prec < parent;
  if (paren) buf_puts(p->out, "(");
  expr_body(p, n, depth);
  if (paren) buf_puts(p->out, ")");
  p->nest--;
}

void expr_string(Ctx *c, const Node *n, int expand_named, Buf *out) {
  Printer p = printer(c, out);
  expr(&p, n, 0, 0, expand_named);
}

/* ---- local derivatives ---------------------------------------------------- */

/* The edge args[k] -> y as autodiff recorded it, or NULL: no gradient
 * flows there (an indicator, a mask, a constant zero). */
static EdgeGrad *edge_of(Ctx *c, const Node *from, const Node *to, int k) {
  for (int i = 0; i < c->edges.len; i++) {
    EdgeGrad *e = c->edges.items[i];
    if (e->from == from && e->to == to && e->arg == k) return e;
  }
  return NULL;
}

/* What explain shows of the edge args[k] -> y: the derivative autodiff
 * used, as it recorded it (explain has no rules of its own). The local
 * derivative (sigmoid's s * (1 - s), mul's other factor, dot's other
 * vector) prints as " = s * (1 - s)"; what a product, view or sum along an
 * axis sends back, made from G, as ": sends back G @ transpose(W)". No
 * edge: " = 0". */
static const Node *recorded(Ctx *c, const Node *y, int k, int *sends) {
  EdgeGrad *e = edge_of(c, y->args[k], y, k);
  *sends = e && !e->local && e->sends;
  return e ? (e->local ? e->local : e->sends) : NULL;
}

static int sends_back(Ctx *c, const Node *y, int k) {
  int sends;
  recorded(c, y, k, &sends);
  return sends;
}

/* The derivative's text alone: "s * (1 - s)", "G @ transpose(W)", "0";
 * "?" if the graph was compiled without recording it (record_locals).
 * parent: the precedence around it (P_ADD puts "1 at [2], 0 elsewhere" in
 * parentheses). */
static void local_symbol(Printer *p, const Node *y, int k, int parent) {
  int sends;
  const Node *d = recorded(p->c, y, k, &sends);
  if (!d) {
    buf_puts(p->out, edge_of(p->c, y->args[k], y, k) ? "?" : "0");
    return;
  }
  expr(p, d, parent, 1, 0);
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

/* ---- local derivatives as numbers ------------------------------------------------ */

/* The local derivative along the edge args[k] -> y, one number per element
 * of args[k], where it is that: the recorded local derivative's values
 * (the interpreter evaluated it) when y is elementwise of the argument's
 * own shape (a diagonal Jacobian) or a scalar (the derivative has the
 * argument's shape). Not through a broadcast, nor what a product sends. */
static int local_values(Ctx *c, const Values *v, const Node *y, int k, double *out) {
  if (!v) return 0;
  const Node *x = y->args[k];
  int64_t len = shape_numel(x->shape);
  if (op_is_elementwise(y->op) ? !shape_eq(x->shape, y->shape) : y->shape.rank != 0) return 0;
  EdgeGrad *e = edge_of(c, x, y, k);
  if (!e) { /* no gradient flows */
    for (int64_t i = 0; i < len; i++)
      out[i] = 0;
    return 1;
  }
  const Node *d = e->local;
  if (!d || !v->v[d->id]) return 0;
  for (int64_t i = 0; i < len; i++)
    out[i] = v->v[d->id][shape_broadcast_index(d->shape, x->shape, i)];
  return 1;
}

/* The local derivative of a scalar edge. */
static int local_scalar(Ctx *c, const Values *v, const Node *y, int k, double *out) {
  return shape_numel(y->args[k]->shape) == 1 && local_values(c, v, y, k, out);
}

static void buf_reset(Buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = 0;
}

/* " = 3", " = [1, 2, 3]". */
static void put_values(Buf *o, const double *x, int64_t len) {
  if (len == 1) {
    buf_printf(o, " = %.10g", x[0]);
    return;
  }
  buf_puts(o, " = [");
  for (int64_t i = 0; i < len && i < 6; i++)
    buf_printf(o, "%s%.10g", i ? ", " : "", x[i]);
  buf_puts(o, len > 6 ? ", ...]" : "]");
}

/* ---- the graph as edges ----------------------------------------------------------- */

/* The consumers of every value, one entry per edge: an edge is one argument
 * slot, so x * x gives x two edges into the product (the copy gate). Only
 * values the loss depends on and gradient flows through take part. */
typedef struct Graph {
  int n;              /* forward nodes */
  char *live;         /* per node: the loss depends on it */
  int *ncons;         /* per node: its edges */
  const Node ***cons; /* per node: the consumer at the end of each edge */
  int **cons_arg;     /* per node: which argument of that consumer it is */
} Graph;

static int carries(const Graph *g, const Node *y) { return y->id < g->n && g->live[y->id] && y->needs_grad; }

static void build_graph(Ctx *c, Graph *g) {
  int n = c->nforward;
  g->n = n;
  g->live = arena_alloc(&c->arena, (size_t)n + 1);
  g->ncons = arena_alloc(&c->arena, sizeof(int) * (size_t)(n + 1));
  g->cons = arena_alloc(&c->arena, sizeof(Node **) * (size_t)(n + 1));
  g->cons_arg = arena_alloc(&c->arena, sizeof(int *) * (size_t)(n + 1));
  if (c->loss->id < n) g->live[c->loss->id] = 1;
  for (int i = n - 1; i >= 0; i--) { /* args have smaller ids */
    const Node *y = c->nodes.items[i];
    if (g->live[i])
      for (int k = 0; k < y->nargs; k++)
        g->live[y->args[k]->id] = 1;
  }
  for (int pass = 0; pass < 2; pass++) { /* count, then fill */
    for (int i = 0; i < n; i++) {
      if (pass) {
        g->cons[i] = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(g->ncons[i] + 1));
        g->cons_arg[i] = arena_alloc(&c->arena, sizeof(int) * (size_t)(g->ncons[i] + 1));
      }
      g->ncons[i] = 0;
    }
    for (int i = 0; i < n; i++) {
      const Node *y = c->nodes.items[i];
      if (!carries(g, y)) continue;
      for (int k = 0; k < y->nargs; k++) {
        int x = y->args[k]->id;
        if (pass) {
          g->cons[x][g->ncons[x]] = y;
          g->cons_arg[x][g->ncons[x]] = k;
        }
        g->ncons[x]++;
      }
    }
  }
}

/* ---- counting paths exactly ------------------------------------------------------- */

enum { BIG_WORDS = 16 }; /* 512 bits; a larger count is reported as "at least 2^512" */

typedef struct Big {
  uint32_t w[BIG_WORDS]; /* least significant first; zero past n */
  int n;                 /* words in use */
  int over;              /* 2^512 or more */
} Big;

/* s += the number in w[0..n) (n < 0: 2^512 or more). */
static void big_add(Big *s, const uint32_t *w, int n) {
  if (n < 0) s->over = 1;
  if (s->over) return;
  uint64_t carry = 0;
  int m = n > s->n ? n : s->n;
  for (int i = 0; i < m; i++) {
    uint64_t t = (uint64_t)s->w[i] + (i < n ? w[i] : 0) + carry;
    s->w[i] = (uint32_t)t;
    carry = t >> 32;
  }
  s->n = m;
  if (carry) {
    if (m == BIG_WORDS)
      s->over = 1;
    else
      s->w[s->n++] = (uint32_t)carry;
  }
}

static void big_sub_small(Big *b, uint32_t k) {
  if (b->over) return;
  uint64_t borrow = k;
  for (int i = 0; i < b->n && borrow; i++) {
    uint64_t w = b->w[i];
    b->w[i] = (uint32_t)(w - borrow);
    borrow = w < borrow;
  }
  while (b->n > 0 && !b->w[b->n - 1])
    b->n--;
}

static int big_bits(const Big *b) {
  for (int i = b->n - 1; i >= 0; i--)
    for (int j = 31; j >= 0; j--)
      if (b->w[i] >> j & 1) return 32 * i + j + 1;
  return 0;
}

static int big_equals(const Big *b, uint32_t k) {
  return !b->over && big_bits(b) <= 32 && (b->n ? b->w[0] : 0) == k;
}

/* Exactly, and readable: "1073741824", "2^100", the decimal digits with
 * their size ("... (about 1.27e+30)"), or "at least 2^512". */
static void big_text(const Big *b, char *buf, size_t size) {
  int bits = big_bits(b), ones = 0;
  if (b->over) {
    snprintf(buf, size, "at least 2^%d", 32 * BIG_WORDS);
    return;
  }
  if (bits <= 64) {
    snprintf(buf, size, "%llu",
             (unsigned long long)(b->n > 1 ? (uint64_t)b->w[1] << 32 : 0) | (b->n ? b->w[0] : 0));
    return;
  }
  for (int i = 0; i < b->n; i++)
    for (int j = 0; j < 32; j++)
      ones += b->w[i] >> j & 1;
  if (ones == 1) {
    snprintf(buf, size, "2^%d", bits - 1);
    return;
  }
  uint32_t t[BIG_WORDS], chunk[BIG_WORDS * 10 / 9 + 2]; /* base 10^9 digits */
  int tn = b->n, nc = 0;
  memcpy(t, b->w, sizeof t);
  while (tn > 0) {
    uint64_t rem = 0;
    for (int i = tn - 1; i >= 0; i--) {
      uint64_t cur = rem << 32 | t[i];
      t[i] = (uint32_t)(cur / 1000000000u);
      rem = cur % 1000000000u;
    }
    chunk[nc++] = (uint32_t)rem;
    while (tn > 0 && !t[tn - 1])
      tn--;
  }
  double approx = 0;
  for (int i = b->n - 1; i >= 0; i--)
    approx = approx * 4294967296.0 + b->w[i];
  size_t len = (size_t)snprintf(buf, size, "%u", chunk[nc - 1]);
  for (int i = nc - 2; i >= 0 && len < size; i--)
    len += (size_t)snprintf(buf + len, size - len, "%09u", chunk[i]);
  if (len < size) snprintf(buf + len, size - len, " (about %.3g)", approx);
}

/* The number of paths from `from` to the loss: per node, the sum of the
 * counts at the other ends of its edges, in topological (id) order. Each
 * count keeps only the words it needs. */
static void count_paths(Ctx *c, const Graph *g, const Node *from, Big *out) {
  static const uint32_t one = 1;
  int n = g->n;
  const uint32_t **w = arena_alloc(&c->arena, sizeof(uint32_t *) * (size_t)(n + 1));
  int *len = arena_alloc(&c->arena, sizeof(int) * (size_t)(n + 1)); /* words; -1: 2^512 or more */
  *out = (Big){{0}, 0, 0};
  if (from->id >= n || !g->live[from->id]) return;
  w[from->id] = &one;
  len[from->id] = 1;
  for (int i = from->id + 1; i < n; i++) {
    const Node *y = c->nodes.items[i];
    if (!carries(g, y)) continue;
    Big s = {{0}, 0, 0};
    for (int k = 0; k < y->nargs; k++) {
      int x = y->args[k]->id;
      if (len[x]) big_add(&s, w[x], len[x]);
    }
    if (s.over) {
      len[i] = -1;
    } else if (s.n) {
      uint32_t *d = arena_alloc(&c->arena, sizeof(uint32_t) * (size_t)s.n);
      memcpy(d, s.w, sizeof(uint32_t) * (size_t)s.n);
      w[i] = d;
      len[i] = s.n;
    }
  }
  if (len[c->loss->id]) big_add(out, w[c->loss->id], len[c->loss->id]);
}

/* ---- paths from the loss to a parameter ----------------------------------------- */

typedef struct Path {
  const Node **nodes; /* from the parameter (0) to the loss */
  int *args;          /* args[i]: which argument nodes[i] is of nodes[i + 1] */
  int len;
} Path;

/* The first paths, depth first over the edges with an explicit stack: at
 * most MAX_PATHS, and no more once their local derivatives would pass
 * MAX_PATH_LINES lines (the first path is always listed). Every live value
 * leads to the loss, so the search never runs into a dead end. */
static int find_paths(Ctx *c, const Graph *g, const Node *from, Path *paths) {
  int n = g->n, depth = 0, found = 0, lines = 0;
  if (from->id >= n || !g->live[from->id]) return 0;
  const Node **stack = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(n + 2));
  int *next = arena_alloc(&c->arena, sizeof(int) * (size_t)(n + 2));
  int *via = arena_alloc(&c->arena, sizeof(int) * (size_t)(n + 2)); /* the argument slot taken */
  stack[0] = from;
  while (depth >= 0 && found < MAX_PATHS) {
    const Node *top = stack[depth];
    if (top == c->loss) {
      if (found && lines + depth > MAX_PATH_LINES) break;
      lines += depth;
      Path *pa = &paths[found++];
      pa->len = depth + 1;
      pa->nodes = arena_alloc(&c->arena, sizeof(Node *) * (size_t)pa->len);
      pa->args = arena_alloc(&c->arena, sizeof(int) * (size_t)pa->len);
      for (int i = 0; i <= depth; i++) {
        pa->nodes[i] = stack[i];
        if (i < depth) pa->args[i] = via[i + 1];
      }
      depth--;
      continue;
    }
    if (next[depth] >= g->ncons[top->id]) {
      depth--;
      continue;
    }
    int e = next[depth]++;
    stack[depth + 1] = g->cons[top->id][e];
    via[depth + 1] = g->cons_arg[top->id][e];
    next[++depth] = 0;
  }
  return found;
}

static void define(Printer *p, const Node *n, char *shown, int *any) {
  buf_printf(p->out, "%s  %s = ", (*any)++ ? "" : "\nwhere\n", n->name);
  shown[n->id] = 1;
  expr(p, n, 0, 0, 1);
  buf_puts(p->out, "\n");
}

/* The named values on the paths, then those the derivatives on them refer
 * to (two_layer's d logsumexp(scores)/dscores = y, y the softmax). */
static void show_definitions(Printer *p, const Path *paths, int npaths) {
  Ctx *c = p->c;
  char *shown = arena_alloc(&c->arena, (size_t)c->nforward + 1);
  int any = 0;
  for (int k = 0; k < npaths; k++)
    for (int i = paths[k].len - 1; i > 0; i--) {
      const Node *n = paths[k].nodes[i];
      if (n->name && !shown[n->id]) define(p, n, shown, &any);
    }
  /* each derivative's nodes down to named values, at most EXPR_NODES of
   * them (as many as it prints) */
  const Node **stack = arena_alloc(&c->arena, sizeof(Node *) * (EXPR_NODES + 2));
  for (int k = 0; k < npaths; k++)
    for (int i = paths[k].len - 2; i >= 0; i--) {
      int sends, sp = 0, visits = 0;
      const Node *d = recorded(c, paths[k].nodes[i + 1], paths[k].args[i], &sends);
      if (d) stack[sp++] = d;
      while (sp && visits++ < EXPR_NODES) {
        const Node *n = stack[--sp];
        if (n->name && !n->is_backward) {
          if (n->op != OP_PARAM && n->op != OP_INPUT && n->id < c->nforward && !shown[n->id]) define(p, n, shown, &any);
          continue;
        }
        for (int j = 0; j < n->nargs && sp < EXPR_NODES; j++)
          stack[sp++] = n->args[j];
      }
    }
}

/* For a node that takes one value as both arguments (x * x): which of the
 * two uses argument k is, " (the left x)". */
static void which_use(Printer *p, const Node *y, int k) {
  if (y->nargs < 2 || y->args[0] != y->args[1]) return;
  int infix = y->op == OP_ADD || y->op == OP_SUB || y->op == OP_MUL || y->op == OP_DIV ||
              y->op == OP_MATMUL || y->op == OP_GT || y->op == OP_LT;
  const Node *x = y->args[k];
  buf_printf(p->out, " (the %s ", infix ? (k ? "right" : "left") : (k ? "second" : "first"));
  if (x->op == OP_PARAM || x->op == OP_INPUT || (x->name && !x->is_backward))
    expr(p, x, 0, 0, 0);
  else
    buf_puts(p->out, infix ? "operand" : "argument");
  buf_puts(p->out, ")");
}

/* A path's product, from the loss back: each local derivative multiplied
 * on; where an op sends back a formula in G instead, that formula with the
 * product so far in place of G (outer(x, (W2 @ (-1 * t)) * (s * (1 -
 * s)))). Each such step copies the text, so past MAX_FORMULA_CHARS it is
 * not shown. */
static void path_product(Ctx *c, const Path *pa, Buf *out) {
  if (pa->len == 1) { /* the loss is the parameter */
    buf_puts(out, "1");
    return;
  }
  Buf acc = {0}, f = {0};
  int chain = 0; /* acc is factors joined by " * ": one more joins without parentheses */
  for (int i = pa->len - 2; i >= 0; i--) {
    const Node *y = pa->nodes[i + 1];
    int a = pa->args[i];
    buf_reset(&f);
    Printer q = printer(c, &f);
    if (sends_back(c, y, a)) {
      if (acc.len > MAX_FORMULA_CHARS) {
        buf_reset(&acc);
        buf_printf(&acc, "not shown (longer than %d characters)", MAX_FORMULA_CHARS);
        break;
      }
      q.g = acc.data ? acc.data : "1";
      local_symbol(&q, y, a, 0);
      Buf t = acc;
      acc = f;
      f = t;
      chain = 0;
      continue;
    }
    local_symbol(&q, y, a, 0);
    if (acc.len && !chain && spaced(acc.data)) { /* (W2 @ G) * s, not W2 @ G * s */
      Buf w = {0};
      buf_printf(&w, "(%s)", acc.data);
      buf_free(&acc);
      acc = w;
    }
    if (acc.len) buf_puts(&acc, " * ");
    buf_printf(&acc, spaced(f.data) ? "(%s)" : "%s", f.data ? f.data : "");
    chain = 1;
  }
  buf_puts(out, acc.data ? acc.data : "");
  buf_free(&acc);
  buf_free(&f);
}

/* One path: its edges from the loss back, each local derivative (with its
 * values where they are numbers) and their product. With values, prod
 * receives the product (one number per element of the parameter) and 1 is
 * returned when every factor was a number. */
static int show_path(Printer *p, const Path *pa, int index, const Values *v, int64_t np, double *prod) {
  Ctx *c = p->c;
  Buf *out = p->out;
  buf_printf(out, "\npath %d: loss", index);
  for (int i = pa->len - 2; i >= 0; i--) {
    const Node *x = pa->nodes[i];
    buf_puts(out, " <- ");
    int wrap = prec_of(x) < P_ATOM && !(x->name && !x->is_backward);
    buf_puts(out, wrap ? "(" : "");
    expr(p, x, 0, 0, 0);
    buf_puts(out, wrap ? ")" : "");
    which_use(p, pa->nodes[i + 1], pa->args[i]);
  }
  buf_puts(out, "\n");
  int known = v != NULL;
  for (int64_t j = 0; j < np; j++)
    prod[j] = 1;
  for (int i = pa->len - 2; i >= 0; i--) {
    const Node *y = pa->nodes[i + 1], *x = pa->nodes[i];
    int a = pa->args[i];
    buf_puts(out, "  ");
    derivative_head(p, y, a);
    which_use(p, y, a);
    buf_puts(out, sends_back(c, y, a) ? ": sends back " : " = ");
    size_t start = out->len;
    local_symbol(p, y, a, 0);
    int64_t nx = shape_numel(x->shape);
    double *lv = v ? malloc(sizeof(double) * (size_t)nx) : NULL;
    if (v && local_values(c, v, y, a, lv)) { /* its values, even where the product has none */
      known &= nx == np || nx == 1;
      for (int64_t j = 0; known && j < np; j++)
        prod[j] *= lv[nx == 1 ? 0 : j];
      char *end;
      double same = strtod(out->data + start, &end);
      int says_all = !*end; /* "= 1 = 1" says nothing */
      for (int64_t j = 0; j < nx && says_all; j++)
        says_all = lv[j] == same;
      if (!says_all) put_values(out, lv, nx);
    } else {
      known = 0;
    }
    free(lv);
    buf_puts(out, "\n");
    if (window_sends_back(y, a)) buf_printf(out, "    (%s)\n", window_sends_back(y, a));
  }
  buf_puts(out, "  product: ");
  size_t start = out->len;
  path_product(c, pa, out);
  char *end;
  double same = strtod(out->data + start, &end);
  if (known && !(np == 1 && !*end && same == prod[0])) put_values(out, prod, np); /* not "3 = 3" */
  buf_puts(out, "\n");
  return known;
}

/* "3 + 3 = 6", "[1, 2, 3] + [1, 2, 3] = [2, 4, 6]": the products of the
 * paths and their sum. */
static void show_sum(Buf *out, double **prods, int npaths, int64_t np) {
  double *total = calloc((size_t)np, sizeof(double));
  buf_puts(out, "  ");
  for (int k = 0; k < npaths; k++) {
    for (int64_t j = 0; j < np; j++)
      total[j] += prods[k][j];
    if (np == 1) {
      double x = prods[k][0];
      if (!k)
        buf_printf(out, "%.10g", x);
      else
        buf_printf(out, signbit(x) ? " - %.10g" : " + %.10g", fabs(x));
    } else {
      Buf b = {0};
      put_values(&b, prods[k], np);
      buf_printf(out, "%s%s", k ? " + " : "", b.data + 3); /* past " = " */
      buf_free(&b);
    }
  }
  put_values(out, total, np);
  buf_puts(out, "\n");
  free(total);
}

/* ---- the simplified formula ------------------------------------------------------- */

/* Prints as a name inside a formula: parameters, inputs, constants, values
 * the model names. */
static int is_leaf(const Node *n) {
  return n->op == OP_CONST || n->op == OP_PARAM || n->op == OP_INPUT || (n->name && !n->is_backward);
}

/* Chooses the named parts of a long formula: a part used more than once
 * (the adjoint of a named value, or more than SHARED_SIZE operations), and
 * a part DEF_HEIGHT levels deep in its line, so that no line nests deeper.
 * Passes over the formula's nodes in id order, which is topological. */
static void plan_defs(Ctx *c, const GradTerm *terms, Defs *d) {
  int n = c->nodes.len;
  d->def = arena_alloc(&c->arena, (size_t)n + 1);
  d->name = arena_alloc(&c->arena, sizeof(char *) * (size_t)(n + 1));
  d->adj = arena_alloc(&c->arena, sizeof(char *) * (size_t)(n + 1));
  /* the adjoint of a value is named after it; where it is the adjoint of
   * several (a1 = b + c passes its own to b and c), after the last */
  for (int i = c->nforward - 1; c->adjoint && i >= 0; i--) {
    const Node *f = c->nodes.items[i], *g = c->adjoint[i];
    if (g && f->name && !f->is_backward && f->op != OP_PARAM && f->op != OP_INPUT && !d->adj[g->id])
      d->adj[g->id] = arena_printf(&c->arena, "dloss/d%s", f->name);
  }
  int *refs = arena_alloc(&c->arena, sizeof(int) * (size_t)(n + 1));
  int *depth = arena_alloc(&c->arena, sizeof(int) * (size_t)(n + 1));
  int *height = arena_alloc(&c->arena, sizeof(int) * (size_t)(n + 1));
  int *size = arena_alloc(&c->arena, sizeof(int) * (size_t)(n + 1));
  char *seen = arena_alloc(&c->arena, (size_t)n + 1), *top = arena_alloc(&c->arena, (size_t)n + 1);
  const Node **stack = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(n + 1));
  int sp = 0;
  for (const GradTerm *t = terms; t; t = t->next) {
    const Node *x = t->node;
    refs[x->id]++;
    top[x->id] = 1; /* printed whole even when named */
    if (!seen[x->id]) {
      seen[x->id] = 1;
      stack[sp++] = x;
    }
  }
  while (sp) {
    const Node *x = stack[--sp];
    if (is_leaf(x) && !top[x->id]) continue;
    for (int k = 0; k < x->nargs; k++) {
      const Node *a = x->args[k];
      refs[a->id]++;
      if (!seen[a->id]) {
        seen[a->id] = 1;
        stack[sp++] = a;
      }
    }
  }
  /* arguments first: the size of each part, and the shared ones named */
  for (int i = 0; i < n; i++) {
    const Node *x = c->nodes.items[i];
    if (!seen[i] || is_leaf(x)) continue;
    int s = 1, h = 1;
    for (int k = 0; k < x->nargs; k++) {
      const Node *a = x->args[k];
      if (is_leaf(a) || d->def[a->id]) continue;
      s = s + size[a->id] > 1000000 ? 1000000 : s + size[a->id];
      h = height[a->id] + 1 > h ? height[a->id] + 1 : h;
    }
    size[i] = s;
    height[i] = h;
    if (refs[i] >= 2 && (d->adj[i] || s > SHARED_SIZE)) d->def[i] = 1;
  }
  /* users first: how deep each part sits in its line; DEF_HEIGHT deep, it
   * is named and starts a line of its own, unless it is as small as cos(a)
   * or a * 2 (then the line ends a level or two deeper) */
  for (int i = n - 1; i >= 0; i--) {
    const Node *x = c->nodes.items[i];
    if (!seen[i] || is_leaf(x)) continue;
    if (depth[i] >= DEF_HEIGHT && height[i] > 2 && !(top[i] && refs[i] == 1)) d->def[i] = 1;
    int below = d->def[i] ? 1 : depth[i] + 1;
    for (int k = 0; k < x->nargs; k++) {
      const Node *a = x->args[k];
      if (depth[a->id] < below) depth[a->id] = below;
    }
  }
}

/* A whole term of the formula, or its name. */
static void expr_top(Printer *p, const Node *n, int parent) {
  expr(p, n, parent, 0, !(p->defs && p->defs->def[n->id]));
}

static void formula(Printer *p, const GradTerm *terms, size_t stop_after) {
  if (!terms) buf_puts(p->out, "0");
  for (const GradTerm *t = terms; t && p->out->len <= stop_after; t = t->next) {
    const Node *term = t->node;
    int first = t == terms;
    if (!first && term->op == OP_NEG && !term->name && !(p->defs && p->defs->def[term->id])) {
      buf_puts(p->out, " - "); /* a + -b reads as a - b */
      expr_top(p, term->args[0], P_ADD + 1);
      continue;
    }
    if (!first) buf_puts(p->out, " + ");
    expr_top(p, term, P_ADD);
  }
}

/* "simplified (as bpc computes it)": the gradient autodiff built, as one
 * line when it is short; else with its shared parts named on "where" lines,
 * and cut past MAX_FORMULA_CHARS characters or MAX_DEF_LINES parts, with a
 * note saying how much was cut. */
static void show_simplified(Ctx *c, const Decl *param, const Values *v, Buf *out) {
  const GradTerm *terms = c->grad_terms[param->node->attr.slot];
  Buf f = {0}, line = {0};
  Printer p = printer(c, &f);
  formula(&p, terms, SHORT_FORMULA);
  Defs d = {0};
  int long_form = p.cut || f.len > SHORT_FORMULA;
  if (long_form) {
    plan_defs(c, terms, &d);
    buf_reset(&f);
    p = printer(c, &f);
    p.defs = &d;
    p.limit = 0; /* named parts keep every line small */
    formula(&p, terms, (size_t)-1);
  }
  buf_printf(out, "\nsimplified (as bpc computes it):\n  dloss/d%s = ", param->name);
  size_t budget = MAX_FORMULA_CHARS, shown = f.len;
  long long cut_chars = 0;
  if (shown > budget) { /* cut at a space, so that no name is cut in two */
    shown = budget;
    while (shown > budget / 2 && f.data[shown] != ' ')
      shown--;
    while (shown > 0 && ((unsigned char)f.data[shown] & 0xC0) == 0x80) /* not inside a UTF-8 character */
      shown--;
    cut_chars += (long long)(f.len - shown);
  }
  buf_append(out, f.data ? f.data : "", shown);
  budget -= shown;
  if (shown < f.len) buf_puts(out, " ...");
  if (v) {
    int64_t len = shape_numel(param->shape);
    double *g = calloc((size_t)len, sizeof(double));
    eval_param_grad(c, v, param->node->attr.slot, g);
    buf_puts(out, len == 1 && shown == f.len ? " = " : "\n  = ");
    if (len == 1)
      buf_printf(out, "%.10g", g[0]);
    else
      buf_puts(out, "[");
    for (int64_t i = 0; len > 1 && i < len && i < 12; i++)
      buf_printf(out, "%s%.10g", i ? ", " : "", g[i]);
    buf_puts(out, len == 1 ? "" : (len > 12 ? ", ...]" : "]"));
    free(g);
  }
  buf_puts(out, "\n");
  int defs_shown = 0, defs_cut = 0;
  for (int i = 0; long_form && i < d.order.len; i++) { /* the list grows as parts name others */
    const Node *n = d.order.items[i];
    buf_reset(&line);
    p.out = &line;
    buf_printf(&line, "%s = ", d.name[n->id]);
    expr(&p, n, 0, 0, 1);
    if (v && v->v[n->id] && shape_numel(n->shape) == 1) buf_printf(&line, " = %.10g", v->v[n->id][0]);
    if (!defs_cut && defs_shown < MAX_DEF_LINES && line.len <= budget) {
      buf_printf(out, "%s    %s\n", defs_shown ? "" : "  where\n", line.data);
      defs_shown++;
      budget -= line.len;
    } else {
      defs_cut++;
      cut_chars += (long long)line.len;
    }
  }
  if (cut_chars)
    buf_printf(out, "  ... cut: %lld more characters not shown (%s%s", cut_chars,
               shown < f.len ? "the rest of the formula" : "", shown < f.len && defs_cut ? " and " : "");
  if (defs_cut) buf_printf(out, "%d more definition%s", defs_cut, defs_cut == 1 ? "" : "s");
  if (cut_chars) buf_puts(out, ")\n");
  buf_free(&f);
  buf_free(&line);
}

/* ---- explain ---------------------------------------------------------------------- */

int explain(Ctx *c, const char *wrt, const Values *v, Buf *out) {
  Decl *param = NULL;
  for (int i = 0; i < c->params.len; i++)
    if (!strcmp(((Decl *)c->params.items[i])->name, wrt)) param = c->params.items[i];
  if (!param) return 1;
  ArenaMark scratch = arena_mark(&c->arena);
  Printer p = printer(c, out);
  Graph g;
  build_graph(c, &g);
  Big total;
  count_paths(c, &g, param->node, &total);
  Path paths[MAX_PATHS];
  int npaths = find_paths(c, &g, param->node, paths);
  buf_printf(out, "dloss/d%s by the chain rule, from the loss back to %s.\n", wrt, wrt);
  if (npaths == 0) {
    buf_printf(out, "\nNo path leads from %s to the loss: dloss/d%s = 0.\n", wrt, wrt);
    arena_release(&c->arena, scratch);
    return 0;
  }
  char count[256];
  big_text(&total, count, sizeof count);
  int all_shown = big_equals(&total, (uint32_t)npaths), several = !big_equals(&total, 1);
  if (several) {
    buf_printf(out, "\n%s paths lead from the loss back to %s", count, wrt);
    if (npaths == 1 && !all_shown)
      buf_puts(out, "; only the first is listed");
    else if (!all_shown)
      buf_printf(out, "; the first %d are listed", npaths);
    buf_puts(out, ".\n");
  }
  show_definitions(&p, paths, npaths);
  int any_sends = 0, any_dropout = 0;
  for (int k = 0; k < npaths; k++)
    for (int i = 0; i < paths[k].len - 1; i++) {
      any_sends |= sends_back(c, paths[k].nodes[i + 1], paths[k].args[i]);
      any_dropout |= paths[k].nodes[i + 1]->op == OP_DROPOUT;
    }
  if (any_dropout)
    buf_puts(out,
             "\ndropout(x, p) is the identity here, as in eval and grad. In training it keeps each element "
             "with\nprobability 1 - p, scaled by 1 / (1 - p), and zeroes the rest; its derivative "
             "dropout(1, p) is that\nmask (1 here).\n");
  if (any_sends)
    buf_puts(out, "\nWhere a derivative is not one number per element (products, views, sums along an axis, "
                  "a value broadcast\nto a larger shape), the line shows what is sent back, made from G, the "
                  "gradient arriving there;\na path's product puts the product so far in place of G.\n");
  int64_t np = shape_numel(param->shape);
  double *prods[MAX_PATHS];
  int all_known = v != NULL;
  for (int k = 0; k < npaths; k++) {
    prods[k] = malloc(sizeof(double) * (size_t)np);
    all_known &= show_path(&p, &paths[k], k + 1, v, np, prods[k]);
  }
  if (!all_shown && total.over) {
    buf_puts(out, "\n... and the rest, not listed.\n");
  } else if (!all_shown) {
    Big rest = total;
    big_sub_small(&rest, (uint32_t)npaths);
    big_text(&rest, count, sizeof count);
    buf_printf(out, "\n... and %s more path%s, not listed.\n", count, big_equals(&rest, 1) ? "" : "s");
  }
  if (several) {
    buf_puts(out,
             "\nThe paths meet where a value is used more than once; their products add up (the copy gate)");
    if (all_shown && all_known) {
      buf_puts(out, ":\n");
      show_sum(out, prods, npaths, np);
    } else {
      buf_puts(out, ".\n");
    }
  }
  for (int k = 0; k < npaths; k++)
    free(prods[k]);
  show_simplified(c, param, v, out);
  arena_release(&c->arena, scratch);
  return 0;
}

/* ---- trace: the backward sweep, step by step -------------------------------------- */

void trace(Ctx *c, const Values *v, Buf *out) {
  Printer p = printer(c, out);
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
    if (e->sends) { /* not one number per element: what it sends, from the incoming */
      buf_puts(out, ": outgoing = ");
      p.g = "incoming";
      local_symbol(&p, e->to, e->arg, 0);
      p.g = "G";
    } else {
      buf_puts(out, ": local ");
      size_t start = out->len;
      local_symbol(&p, e->to, e->arg, P_ADD); /* in a line of commas */
      double lv;
      char *end;
      if (local_scalar(c, v, e->to, e->arg, &lv) && (strtod(out->data + start, &end) != lv || *end))
        buf_printf(out, " = %.10g", lv);
      buf_puts(out, ", outgoing");
    }
    print_value(out, c, v, e->g);
    if (!v) buf_puts(out, " (symbolic)");
    buf_puts(out, "\n");
  }
}
