/* lower.c — gives the AST its meaning: resolves names, checks shapes and
 * builds the IR graph. Every user mistake in a syntactically valid program
 * is reported here, in the user's terms. Expressions are walked with an
 * explicit stack, so a 100,000-term sum cannot overflow the C stack. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpc.h"

typedef enum { B_DIM, B_PARAM, B_INPUT, B_VALUE, B_OUTPUT, B_LOOPVAR, B_FUNC } BindKind;

/* A name's meaning. Scopes nest (a loop's iteration, a function's call):
 * a binding made in one is undone when it ends, bringing back the binding
 * it shadowed, if any. */
typedef struct Binding {
  const char *name;
  BindKind kind;
  Loc loc;
  Node *node;
  int64_t dim;          /* B_DIM, B_LOOPVAR: the value */
  Stmt *def;            /* B_FUNC: the def */
  int order;            /* B_FUNC: its place among the defs, to tell which came first */
  int scope;            /* the scope it was made in (0: the file) */
  int hidden;           /* its scope has ended */
  struct Binding *prev; /* the binding of the same name it shadows */
  uint32_t slot;        /* its place in the table */
} Binding;

struct Frame;

/* Where the statements being lowered stand: the file, a loop's body, a
 * function's body. */
typedef struct Context {
  int loop_scope; /* the scope of the innermost loop iteration (0: not in a loop) */
  int fn_scope;   /* the scope of the innermost function body (0: not in a function) */
  const char *suffix; /* appended to names made here: "_3" in iteration 3 */
  const char *where;  /* the loop variables' values here: "i = 3" (NULL outside loops) */
} Context;

enum { MAX_CALL_DEPTH = 64 };

typedef struct Lowerer {
  Ctx *c;
  Binding **tab; /* open addressing, power-of-two capacity; a name's newest binding */
  uint32_t cap, count;
  PtrVec made;   /* bindings in the order they were made, to undo a scope's */
  int scope;     /* the current scope's depth */
  Context cx;
  Binding *calls[MAX_CALL_DEPTH]; /* the user functions being inlined, outermost first */
  int ncalls, ndefs;
  int64_t unrolled; /* statements lowered so far, each iteration and call counted: bounded like the file's */
  struct Frame *frames; /* lower_expr's stacks, shared by nested calls (a function's body) */
  struct Node **vals;
  int fcap, vcap, nf, nv;
} Lowerer;

/* ---- the symbol table -------------------------------------------------- */

/* The table slot holding name, or the empty one where it would go. */
static uint32_t slot_of(const Lowerer *L, const char *name) {
  uint32_t i = hash_string(name) & (L->cap - 1);
  while (L->tab[i] && strcmp(L->tab[i]->name, name))
    i = (i + 1) & (L->cap - 1);
  return i;
}

static void grow_table(Lowerer *L) {
  uint32_t cap = L->cap ? L->cap * 2 : 256;
  Binding **old = L->tab;
  uint32_t old_cap = L->cap;
  L->tab = arena_alloc(&L->c->arena, sizeof(Binding *) * cap);
  L->cap = cap;
  for (uint32_t i = 0; i < old_cap; i++)
    if (old[i]) {
      uint32_t j = slot_of(L, old[i]->name);
      L->tab[j] = old[i];
      for (Binding *b = old[i]; b; b = b->prev) /* the shadowed ones come back to the same slot */
        b->slot = j;
    }
}

static Binding *lookup(Lowerer *L, const char *name) {
  if (!L->cap) return NULL;
  Binding *b = L->tab[slot_of(L, name)];
  return b && !b->hidden ? b : NULL;
}

/* Whether a function's body may use b: its arguments and own values, dims
 * and functions, loop variables; not the model's parameters, inputs and
 * values, which it must be given as arguments. */
static int visible(const Lowerer *L, const Binding *b) {
  if (!L->cx.fn_scope || b->scope >= L->cx.fn_scope) return 1;
  return b->kind == B_DIM || b->kind == B_FUNC;
}

static const char *kind_word(BindKind k) {
  switch (k) {
  case B_DIM: return "a dim";
  case B_PARAM: return "a parameter";
  case B_INPUT: return "an input";
  case B_OUTPUT: return "an output";
  case B_LOOPVAR: return "a loop variable";
  case B_FUNC: return "a function";
  default: return "a value";
  }
}

static Binding *bind(Lowerer *L, const char *name, Loc loc, BindKind kind) {
  if ((L->count + 1) * 2 > L->cap) grow_table(L);
  uint32_t slot = slot_of(L, name);
  Binding *b = arena_alloc(&L->c->arena, sizeof *b);
  b->name = name;
  b->kind = kind;
  b->loc = loc;
  b->scope = L->scope;
  b->prev = L->tab[slot];
  b->slot = slot;
  if (!b->prev) L->count++;
  L->tab[slot] = b;
  vec_push(&L->c->arena, &L->made, b);
  return b;
}

static int open_scope(Lowerer *L) {
  L->scope++;
  return L->made.len;
}

/* Undoes the bindings made since mark: each name means again what it did. */
static void close_scope(Lowerer *L, int mark) {
  while (L->made.len > mark) {
    Binding *b = L->made.items[--L->made.len];
    if (b->prev)
      L->tab[b->slot] = b->prev;
    else
      b->hidden = 1; /* the slot stays taken: other names probe past it */
  }
  L->scope--;
}

static Binding *define(Lowerer *L, const char *name, Loc loc, BindKind kind) {
  /* C reserves identifiers that begin with '_' for itself */
  if (name[0] == '_') diag_error(L->c, loc, "'%s' cannot be used as a name (names must not start with '_')", name);
  Binding *old = lookup(L, name);
  if (old && visible(L, old)) {
    /* in a loop, a value made before the loop's body is carried to the next iteration */
    if (kind == B_VALUE && old->kind == B_VALUE && L->cx.loop_scope && old->scope < L->cx.loop_scope &&
        old->scope >= L->cx.fn_scope)
      return old;
    if (!strcmp(name, "loss") && old->kind == B_VALUE)
      diag_error(L->c, loc, "the loss is already defined at line %d; a model has exactly one loss",
                 old->loc.line);
    diag_error(L->c, loc, "'%s' is already defined at line %d (as %s)", name, old->loc.line,
               kind_word(old->kind));
  }
  return bind(L, name, loc, kind);
}

/* ---- functions ---------------------------------------------------------- */

typedef enum {
  F_UNARY,
  F_MAX,
  F_MIN,
  F_SUM,
  F_MEAN,
  F_DOT,
  F_TRANSPOSE,
  F_SOFTMAX,
  F_LOG_SOFTMAX,
  F_LSE,
  F_CE,
  F_SCE,
  F_FLATTEN,
  F_LEAKY_RELU,
  F_DROPOUT,
  F_CLIP,
  F_RESHAPE,
  F_CONCAT,
  F_STACK,
  F_CONV2D,
  F_CONV1D,
  F_POOL,
  F_GLOBAL_AVGPOOL
} FnKind;

/* The keyword options a function may take, as bits of FnInfo.options. */
enum { OPT_AXIS, OPT_STRIDE, OPT_PADDING, OPT_DILATION, OPT_GROUPS, NOPTIONS };
static const char *const option_names[NOPTIONS] = {"axis", "stride", "padding", "dilation", "groups"};
#define AXIS (1u << OPT_AXIS)
#define CONV_OPTIONS ((1u << OPT_STRIDE) | (1u << OPT_PADDING) | (1u << OPT_DILATION) | (1u << OPT_GROUPS))

typedef struct FnInfo {
  const char *name;
  FnKind kind;
  Op op;
  int min_args, max_args; /* positional arguments */
  unsigned options;       /* the keywords it takes: bit OPT_* */
} FnInfo;

enum { MAX_JOINED = 1024 }; /* arguments of concat() and stack() */

static const FnInfo functions[] = {
    {"max", F_MAX, OP_MAX2, 1, 2, AXIS},
    {"min", F_MIN, OP_MIN2, 1, 2, AXIS},
    {"sum", F_SUM, OP_SUM, 1, 2, AXIS},
    {"mean", F_MEAN, OP_SUM, 1, 2, AXIS},
    {"dot", F_DOT, OP_DOT, 2, 2, 0},
    {"transpose", F_TRANSPOSE, OP_TRANSPOSE, 1, 2, 0},
    {"softmax", F_SOFTMAX, OP_LSE, 1, 1, AXIS},
    {"log_softmax", F_LOG_SOFTMAX, OP_LSE, 1, 1, AXIS},
    {"logsumexp", F_LSE, OP_LSE, 1, 1, AXIS},
    {"cross_entropy", F_CE, OP_LOG, 2, 2, 0},
    {"softmax_cross_entropy", F_SCE, OP_LSE, 2, 2, AXIS},
    {"flatten", F_FLATTEN, OP_INDEX, 1, 1, 0},
    {"leaky_relu", F_LEAKY_RELU, OP_LEAKY_RELU, 2, 2, 0},
    {"dropout", F_DROPOUT, OP_DROPOUT, 2, 2, 0},
    {"clip", F_CLIP, OP_MAX2, 3, 3, 0},
    {"reshape", F_RESHAPE, OP_INDEX, 2, 2, 0},
    {"concat", F_CONCAT, OP_CONCAT, 1, MAX_JOINED, AXIS},
    {"stack", F_STACK, OP_CONCAT, 1, MAX_JOINED, AXIS},
    {"conv2d", F_CONV2D, OP_CONV2D, 2, 3, CONV_OPTIONS},
    {"conv1d", F_CONV1D, OP_CONV2D, 2, 3, CONV_OPTIONS},
    {"maxpool2d", F_POOL, OP_MAXPOOL2D, 2, 2, 1u << OPT_STRIDE},
    {"avgpool2d", F_POOL, OP_AVGPOOL2D, 2, 2, 1u << OPT_STRIDE},
    {"global_avgpool", F_GLOBAL_AVGPOOL, OP_SUMAX, 1, 1, 0},
};
enum { NFUNCTIONS = sizeof functions / sizeof functions[0] };

/* The one-argument elementwise functions (exp, sigmoid, ...) come from the
 * op table (ops.h, OPC_FUNCTION); the others, which lower to several
 * nodes or take options, are listed above. */
static const FnInfo unary_functions[] = {
#define X(E, name, label, arity, classes, flops, value, ctext, d, ga, gb) {name, F_UNARY, OP_##E, 1, 1, 0},
    BPC_OPS(X)
#undef X
};

static int is_function_op(const FnInfo *f) {
  return f->kind != F_UNARY || (op_info[f->op].classes & OPC_FUNCTION) != 0;
}

static const FnInfo *find_function(const char *name) {
  for (size_t i = 0; i < sizeof unary_functions / sizeof unary_functions[0]; i++)
    if (is_function_op(&unary_functions[i]) && !strcmp(unary_functions[i].name, name)) return &unary_functions[i];
  for (int i = 0; i < NFUNCTIONS; i++)
    if (!strcmp(functions[i].name, name)) return &functions[i];
  return NULL;
}

static _Noreturn void unknown_function(Lowerer *L, Ast *a) {
  Binding *b = lookup(L, a->name);
  if (b) diag_error(L->c, a->loc, "'%s' is %s, not a function", a->name, kind_word(b->kind));
  const char *best_name = NULL;
  int best = 99;
  for (int i = 0; i < NFUNCTIONS; i++)
    if (name_is_closer(a->name, functions[i].name, &best)) best_name = functions[i].name;
  for (size_t i = 0; i < sizeof unary_functions / sizeof unary_functions[0]; i++)
    if (is_function_op(&unary_functions[i]) && name_is_closer(a->name, unary_functions[i].name, &best))
      best_name = unary_functions[i].name;
  if (best_name) diag_error(L->c, a->loc, "unknown function '%s'; did you mean '%s'?", a->name, best_name);
  diag_error(L->c, a->loc, "unknown function '%s'", a->name);
}

static _Noreturn void undefined_name(Lowerer *L, Ast *a) {
  const char *best_name = NULL;
  int best = 99;
  for (uint32_t i = 0; i < L->cap; i++) {
    Binding *b = L->tab[i];
    if (b && !b->hidden && visible(L, b) && name_is_closer(a->name, b->name, &best)) best_name = b->name;
  }
  if (find_function(a->name))
    diag_error(L->c, a->loc, "'%s' is a function; call it as %s(...)", a->name, a->name);
  if (best_name) diag_error(L->c, a->loc, "undefined name '%s'; did you mean '%s'?", a->name, best_name);
  diag_error(L->c, a->loc, "undefined name '%s'", a->name);
}

/* A name as a value, where the statements being lowered may see it. */
static Binding *lookup_value(Lowerer *L, Ast *a) {
  Binding *b = lookup(L, a->name);
  if (!b) undefined_name(L, a);
  if (!visible(L, b))
    diag_error(L->c, a->loc,
               "'%s' is %s of the model; a function sees only its arguments, its own values and dims "
               "(pass %s as an argument)",
               a->name, kind_word(b->kind), a->name);
  if (b->kind == B_FUNC) diag_error(L->c, a->loc, "'%s' is a function; call it as %s(...)", a->name, a->name);
  return b;
}

/* ---- constant integers --------------------------------------------------------
 * Indices, slice bounds, loop bounds, sizes and axes: numbers, dims, loop
 * variables, + - * / % and parentheses, / dividing whole numbers (rounding
 * down, as Python's //). Evaluated from the AST, never built as nodes. */
enum { MAX_CONST_DEPTH = 200 };

static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

static int64_t const_int_at(Lowerer *L, Ast *a, const char *what, int depth) {
  Ctx *c = L->c;
  if (depth > MAX_CONST_DEPTH) diag_error(c, a->loc, "%s is nested too deeply", what);
  switch (a->kind) {
  case AST_NUM:
    if (!a->is_int || a->num > 1e15) diag_error(c, a->loc, "%s must be an integer, got %g", what, a->num);
    return (int64_t)a->num;
  case AST_NAME: {
    Binding *b = lookup_value(L, a);
    if (b->kind != B_DIM && b->kind != B_LOOPVAR)
      diag_error(c, a->loc, "%s must be a constant integer (numbers, dims and loop variables), but '%s' is %s",
                 what, a->name, kind_word(b->kind));
    return b->dim;
  }
  case AST_NEG: return -const_int_at(L, a->kids[0], what, depth + 1);
  case AST_BIN: {
    int64_t x = const_int_at(L, a->kids[0], what, depth + 1), y = const_int_at(L, a->kids[1], what, depth + 1);
    switch (a->op) {
    case '+': return x + y;
    case '-': return x - y;
    case '*': return x * y;
    case '/':
    case '%':
      if (y == 0) diag_error(c, a->loc, "%s divides by zero", what);
      return a->op == '/' ? floor_div(x, y) : x - floor_div(x, y) * y;
    default: break;
    }
  }
  /* fall through */
  default: diag_error(c, a->loc, "%s must be a constant integer (numbers, dims and loop variables)", what);
  }
}

static int64_t const_int_ast(Lowerer *L, Ast *a, const char *what) { return const_int_at(L, a, what, 0); }

/* ---- shape checks, in the user's words ------------------------------------ */

static const char *S(Lowerer *L, Node *n) { return shape_str(L->c, n->shape); }

static Node *elementwise(Lowerer *L, Loc loc, Op op, const char *what, Node *a, Node *b) {
  Shape s;
  if (!shape_broadcast(a->shape, b->shape, &s))
    diag_error(L->c, loc,
               "cannot compute %s %s %s: the shapes do not match (shapes are aligned at the right, "
               "and each pair of dimensions must be equal or one of them 1)",
               S(L, a), what, S(L, b));
  return ir_binary(L->c, op, a, b);
}

static Node *matmul(Lowerer *L, Loc loc, Node *a, Node *b, const char *how);

/* The matrix (or vector) of x at batch element e of the broadcast batch
 * shape bs: x's own leading axes index it, 1s repeat it. */
static Node *batch_item(Ctx *c, Node *x, Shape bs, int64_t e) {
  int mrank = x->shape.rank >= 2 ? 2 : 1;
  Shape item = {mrank, {x->shape.dim[x->shape.rank - mrank], mrank == 2 ? x->shape.dim[x->shape.rank - 1] : 0}};
  Shape own = {x->shape.rank - mrank, {0}}; /* x's own batch axes, which bs broadcasts */
  for (int k = 0; k < own.rank; k++)
    own.dim[k] = x->shape.dim[k];
  return ir_index(c, x, shape_broadcast_index(own, bs, e) * shape_numel(item), item);
}

/* numpy's matmul for tensors: the last two axes are matrices (a vector is
 * one), the leading ones a batch, broadcast. [..., m, k] @ [k, n] is one
 * product with the rows merged (a view, the fast kernels); otherwise one
 * product per matrix of the batch, joined. */
static Node *tensor_matmul(Lowerer *L, Loc loc, Node *a, Node *b, const char *how) {
  Ctx *c = L->c;
  Shape sa = a->shape, sb = b->shape;
  int64_t k = sa.dim[sa.rank - 1];
  if (sb.rank <= 2) {
    if (k != sb.dim[0])
      diag_error(c, loc, "cannot compute %s %s %s: inner dimensions %lld and %lld differ", S(L, a), how, S(L, b),
                 (long long)k, (long long)sb.dim[0]);
    Node *rows = ir_reshape(c, a, shape_mat(shape_numel(sa) / k, k));
    Shape out = sa;
    if (sb.rank == 2)
      out.dim[out.rank - 1] = sb.dim[1];
    else
      out.rank--;
    return ir_reshape(c, ir_matmul(c, rows, b, 0), out);
  }
  Shape ba = {sa.rank >= 2 ? sa.rank - 2 : 0, {0}}, bb = {sb.rank - 2, {0}}, bs;
  for (int i = 0; i < ba.rank; i++)
    ba.dim[i] = sa.dim[i];
  for (int i = 0; i < bb.rank; i++)
    bb.dim[i] = sb.dim[i];
  if (!shape_broadcast(ba, bb, &bs))
    diag_error(c, loc, "cannot compute %s %s %s: the leading (batch) dimensions %s and %s do not broadcast",
               S(L, a), how, S(L, b), shape_str(c, ba), shape_str(c, bb));
  int64_t count = shape_numel(bs);
  Node **items = arena_alloc(&c->arena, sizeof(Node *) * (size_t)count);
  Shape item = shape_scalar();
  for (int64_t e = 0; e < count; e++) {
    Node *a_e = batch_item(c, a, bs, e); /* first, so that the node numbers do not depend on the C compiler */
    Node *r = matmul(L, loc, a_e, batch_item(c, b, bs, e), how);
    item = r->shape;
    Shape one = {r->shape.rank + 1, {1}}; /* [1, ...]: joined along a new first axis */
    for (int i = 0; i < r->shape.rank; i++)
      one.dim[i + 1] = r->shape.dim[i];
    items[e] = ir_reshape(c, r, one);
  }
  Shape out = bs;
  for (int i = 0; i < item.rank; i++)
    out.dim[out.rank++] = item.dim[i];
  return ir_reshape(c, ir_concat(c, items, (int)count, 0), out);
}

static Node *matmul(Lowerer *L, Loc loc, Node *a, Node *b, const char *how) {
  Ctx *c = L->c;
  if (a->shape.rank == 0 || b->shape.rank == 0)
    diag_error(c, loc, "cannot compute %s %s %s: matrix products need vectors or matrices; use * to scale",
               S(L, a), how, S(L, b));
  if (a->shape.rank > 2 || b->shape.rank > 2) return tensor_matmul(L, loc, a, b, how);
  int64_t ka = a->shape.rank == 2 ? a->shape.dim[1] : a->shape.dim[0];
  int64_t kb = b->shape.dim[0];
  if (ka != kb)
    diag_error(c, loc, "cannot compute %s %s %s: inner dimensions %lld and %lld differ", S(L, a), how,
               S(L, b), (long long)ka, (long long)kb);
  if (a->shape.rank == 1 && b->shape.rank == 1) return ir_dot(c, a, b);
  return ir_matmul(c, a, b, 0);
}


/* ---- calls ---------------------------------------------------------------- */

/* exp(x - logsumexp(x)) row by row: the numerically stable softmax, built
 * from ops autodiff already knows. */
static Node *log_softmax(Ctx *c, Node *x) {
  Node *lse = ir_reduce(c, OP_LSE, x);
  return ir_binary(c, OP_SUB, x, ir_bcast(c, lse, x->shape, 1u << (x->shape.rank - 1)));
}

static void need_tensor(Lowerer *L, Ast *a, Node *x, const char *what) {
  if (x->shape.rank == 0)
    diag_error(L->c, a->loc, "%s() needs a vector or a matrix, but its argument is a scalar", what);
}

static void need_same_shape(Lowerer *L, Ast *a, Node *x, Node *y) {
  if (!shape_eq(x->shape, y->shape))
    diag_error(L->c, a->loc, "%s() needs two arguments of the same shape, got %s and %s", a->name, S(L, x),
               S(L, y));
}

/* The axes a call names (axis=K, axis=[K, ...], or the positional axis of
 * sum and mean), as a mask of x's axes; negative counts from the end. */
static unsigned axes_of(Lowerer *L, Ast *spec, Node *x, const char *fn) {
  Ctx *c = L->c;
  int n = spec->kind == AST_LIST ? spec->nkids : 1;
  unsigned mask = 0;
  if (x->shape.rank == 0) diag_error(c, spec->loc, "%s() over an axis needs a tensor, not a scalar", fn);
  for (int i = 0; i < n; i++) {
    Ast *e = spec->kind == AST_LIST ? spec->kids[i] : spec;
    int64_t k = const_int_ast(L, e, "an axis");
    if (k < -x->shape.rank || k >= x->shape.rank)
      diag_error(c, e->loc, "axis %lld is out of range for shape %s (valid: 0 to %d, or -%d to -1 from the end)",
                 (long long)k, S(L, x), x->shape.rank - 1, x->shape.rank);
    if (k < 0) k += x->shape.rank;
    if (mask & (1u << k)) diag_error(c, e->loc, "axis %lld is named twice", (long long)k);
    mask |= 1u << k;
  }
  return mask;
}

static int one_axis(Lowerer *L, Ast *spec, Node *x, const char *fn) {
  if (spec->kind == AST_LIST) diag_error(L->c, spec->loc, "%s() takes one axis, not a list", fn);
  return shape_axis_of(axes_of(L, spec, x, fn));
}

/* x with the axes in mask moved last, in their order, and merged into one:
 * [kept..., product of the masked]. */
static Node *axes_last(Ctx *c, Node *x, unsigned mask) {
  int perm[BPC_MAX_RANK], n = 0;
  Shape merged = {0, {0}};
  int64_t rows = 1;
  for (int k = 0; k < x->shape.rank; k++)
    if (!(mask & (1u << k))) perm[n++] = k, merged.dim[merged.rank++] = x->shape.dim[k];
  for (int k = 0; k < x->shape.rank; k++)
    if (mask & (1u << k)) perm[n++] = k, rows *= x->shape.dim[k];
  merged.dim[merged.rank++] = rows;
  return ir_reshape(c, ir_permute(c, x, perm), merged);
}

/* The inverse of moving one axis last: the result of a row-by-row op on
 * axes_last(x, axis) put back in x's order. */
static Node *axis_back(Ctx *c, Node *r, int axis) {
  int rank = r->shape.rank, perm[BPC_MAX_RANK];
  for (int k = 0, from = 0; k < rank; k++)
    perm[k] = k == axis ? rank - 1 : from++;
  return ir_permute(c, r, perm);
}

static Node *sum_over(Lowerer *L, Ast *a, Node *x, Ast *spec, int mean) {
  Ctx *c = L->c;
  if (!spec) {
    Node *s = ir_reduce(c, OP_SUM, x);
    return mean ? ir_binary(c, OP_DIV, s, ir_const(c, (double)shape_numel(x->shape), shape_scalar())) : s;
  }
  unsigned mask = axes_of(L, spec, x, a->name);
  Node *s = ir_sum_axes(c, x, mask, shape_drop_axes(x->shape, mask));
  double n = (double)(shape_numel(x->shape) / shape_numel(s->shape));
  return mean ? ir_binary(c, OP_DIV, s, ir_const(c, n, shape_scalar())) : s;
}

static Node *extreme_over(Lowerer *L, Ast *spec, Node *x, int is_max, const char *fn) {
  Ctx *c = L->c;
  unsigned mask = axes_of(L, spec, x, fn);
  int last = x->shape.rank - 1;
  Node *rows = mask == 1u << last ? x : axes_last(c, x, mask);
  return ir_reduce(c, is_max ? OP_MAXROW : OP_MINROW, rows);
}

/* An op over the last axis (logsumexp, log_softmax, softmax) along the
 * axis a call names: that axis moved last, and back for a result of x's
 * shape. */
static Node *along(Lowerer *L, Ast *spec, Node *x, const char *fn, int kind) {
  Ctx *c = L->c;
  int axis = spec ? one_axis(L, spec, x, fn) : x->shape.rank - 1, last = axis == x->shape.rank - 1;
  Node *v = last ? x : axes_last(c, x, 1u << axis);
  if (kind == F_LSE) return ir_reduce(c, OP_LSE, v);
  Node *r = log_softmax(c, v);
  if (kind == F_SOFTMAX) r = ir_unary(c, OP_EXP, r);
  return last ? r : axis_back(c, r, axis);
}

/* reshape(x, [d0, d1, ...]): the same elements; one size may be -1, the
 * rest of them. */
static Node *reshape_to(Lowerer *L, Ast *a, Node *x, Ast *sizes) {
  Ctx *c = L->c;
  if (!sizes || sizes->kind != AST_LIST)
    diag_error(c, a->kids[1]->loc, "reshape() takes the new shape as a list, e.g. reshape(x, [2, 3])");
  if (sizes->nkids > BPC_MAX_RANK)
    diag_error(c, sizes->loc, "a shape has at most %d dimensions", BPC_MAX_RANK);
  Shape to = {sizes->nkids, {0}};
  int free_axis = -1;
  int64_t known = 1;
  for (int k = 0; k < sizes->nkids; k++) {
    int64_t d = const_int_ast(L, sizes->kids[k], "a size");
    if (d == -1 && free_axis < 0) {
      free_axis = k;
      continue;
    }
    if (d <= 0) diag_error(c, sizes->kids[k]->loc, "a size must be positive (or one -1), got %lld", (long long)d);
    to.dim[k] = d;
    known *= d;
  }
  int64_t n = shape_numel(x->shape);
  if (free_axis >= 0) {
    if (n % known) diag_error(c, sizes->loc, "cannot reshape %s (%lld elements) with the sizes given: %lld is not a multiple of %lld", S(L, x), (long long)n, (long long)n, (long long)known);
    to.dim[free_axis] = n / known;
  } else if (known != n) {
    diag_error(c, sizes->loc, "cannot reshape %s (%lld elements) to %s (%lld elements)", S(L, x), (long long)n,
               shape_str(c, to), (long long)known);
  }
  return ir_reshape(c, x, to);
}

/* concat(a, b, ..., axis=K) joins along an existing axis; stack(..., axis=K)
 * along a new one. */
static Node *join(Lowerer *L, Ast *a, Node **args, int n, Ast *spec, int stack) {
  Ctx *c = L->c;
  Node **parts = arena_alloc(&c->arena, sizeof(Node *) * (size_t)n);
  Shape first = args[0]->shape;
  int rank = first.rank + stack;
  int64_t axis = spec ? const_int_ast(L, spec, "an axis") : 0;
  if (axis < -rank || axis >= rank || rank == 0)
    diag_error(c, spec ? spec->loc : a->loc, "axis %lld is out of range for %s() of %s values (valid: 0 to %d)",
               (long long)axis, a->name, S(L, args[0]), rank - 1);
  if (axis < 0) axis += rank;
  for (int j = 0; j < n; j++) {
    Shape s = args[j]->shape;
    int same = s.rank == first.rank;
    for (int k = 0; same && k < s.rank; k++)
      same = s.dim[k] == first.dim[k] || (!stack && k == axis);
    if (!same)
      diag_error(c, a->kids[j]->loc,
                 "%s(): argument %d has shape %s, but the first has %s (%s)", a->name, j + 1, S(L, args[j]),
                 S(L, args[0]), stack ? "all must have the same shape" : "only the joined axis may differ");
    if (stack) { /* a new axis of 1 where they are joined */
      Shape t = {s.rank + 1, {0}};
      for (int k = 0, from = 0; k < t.rank; k++)
        t.dim[k] = k == axis ? 1 : s.dim[from++];
      parts[j] = ir_reshape(c, args[j], t);
    } else {
      parts[j] = args[j];
    }
  }
  return ir_concat(c, parts, n, (int)axis);
}

static Node *call_user(Lowerer *L, Ast *a, Node **args, Binding *f);

/* " (it takes stride=, padding=)": what a function's options are. */
static const char *options_hint(Lowerer *L, const FnInfo *f) {
  if (!f->options) return "";
  Buf b = {0};
  buf_puts(&b, " (it takes ");
  for (int o = 0, n = 0; o < NOPTIONS; o++)
    if (f->options & (1u << o)) buf_printf(&b, "%s%s=", n++ ? ", " : "", option_names[o]);
  buf_puts(&b, ")");
  const char *s = arena_strndup(&L->c->arena, b.data, b.len);
  buf_free(&b);
  return s;
}

/* ---- convolution and pooling ------------------------------------------------
 * Images are [C, H, W] (a signal [C, L] for conv1d), with any leading axes:
 * the batch when training. The shapes are checked here, in the user's
 * words; window.c builds the nodes. */

static void need_image(Lowerer *L, Ast *a, Node *x, const char *fn, const char *what) {
  int need = strstr(what, "[C, L]") ? 2 : 3;
  if (x->shape.rank < need)
    diag_error(L->c, a->loc, "%s: the input must be %s, but it has shape %s", fn, what, S(L, x));
}

/* An option's value for both image axes: a number, or [height, width]. */
static void option_pair(Lowerer *L, Ast *e, const char *fn, const char *name, int64_t least, int dims, int64_t out[2]) {
  Ctx *c = L->c;
  if (!e) return;
  int keyword = strcmp(name, "window") != 0; /* the window is positional: maxpool2d(x, 2) */
  const char *label = keyword ? arena_printf(&c->arena, "%s=", name) : name;
  Ast *parts[2] = {e, e};
  if (e->kind == AST_LIST) {
    if (dims == 1 || e->nkids != 2)
      diag_error(c, e->loc, "%s: %s%s takes a number%s", fn, keyword ? "" : "the ", label, dims == 1 ? "" : " or two, [height, width]");
    parts[0] = e->kids[0];
    parts[1] = e->kids[1];
  }
  char what[64];
  snprintf(what, sizeof what, "%s's %s", fn, name);
  for (int k = 0; k < 2; k++) {
    int64_t v = const_int_ast(L, parts[k], what);
    if (v < least)
      diag_error(c, parts[k]->loc, "%s: %s%s must be at least %lld, got %lld", fn, keyword ? "" : "the ", label,
                 (long long)least, (long long)v);
    out[dims == 1 ? 1 : k] = v;
    if (dims == 1) break;
  }
}

/* "the 5x5 kernel (dilated to 9x9) does not fit in the 3x3 image padded by 1" */
static void need_fit(Lowerer *L, Ast *a, const char *fn, const char *what, Shape x, const Attr *at) {
  int r = x.rank;
  for (int k = 0; k < 2; k++) {
    int64_t in = x.dim[r - 2 + k];
    if (window_out_size(in, at->win.size[k], at->win.step[k], at->win.pad[k], at->win.dilation[k]) > 0) continue;
    char window[64] = "", extra[96] = "";
    snprintf(window, sizeof window, "%lldx%lld", (long long)at->win.size[0], (long long)at->win.size[1]);
    if (at->win.dilation[0] > 1 || at->win.dilation[1] > 1)
      snprintf(extra, sizeof extra, " (dilated to %lldx%lld)", (long long)(at->win.dilation[0] * (at->win.size[0] - 1) + 1),
               (long long)(at->win.dilation[1] * (at->win.size[1] - 1) + 1));
    if (at->win.pad[0] || at->win.pad[1])
      diag_error(L->c, a->loc, "%s: the %s %s%s does not fit in the %lldx%lld image padded by %lld", fn, window, what,
                 extra, (long long)x.dim[r - 2], (long long)x.dim[r - 1], (long long)at->win.pad[k]);
    diag_error(L->c, a->loc, "%s: the %s %s%s does not fit in a %lldx%lld image", fn, window, what, extra,
               (long long)x.dim[r - 2], (long long)x.dim[r - 1]);
  }
}

/* The initialisers that scale with the fans: glorot, uniform(-a, a) with
 * a = sqrt(6 / (fan_in + fan_out)); he, normal(0, sqrt(2 / fan_in)). */
static void set_fan_bounds(Decl *d, double fan_in, double fan_out) {
  if (d->fan_rule == INIT_GLOROT) {
    d->init_b = sqrt(6.0 / (fan_in + fan_out));
    d->init_a = -d->init_b;
  } else if (d->fan_rule == INIT_HE) {
    d->init_a = 0;
    d->init_b = sqrt(2.0 / fan_in);
  }
}

/* A parameter used as a kernel: glorot and he take the kernel's fans,
 * fan_in = C/G * kh * kw and fan_out = O/G * kh * kw. */
static void kernel_fans(Lowerer *L, Node *K, int64_t groups) {
  if (K->op != OP_PARAM) return;
  Decl *d = L->c->params.items[K->attr.slot];
  double taps = (double)(K->shape.dim[2] * K->shape.dim[3]);
  set_fan_bounds(d, (double)K->shape.dim[1] * taps, (double)(K->shape.dim[0] / groups) * taps);
}

/* conv2d(x[C, H, W], K[O, C/G, kh, kw] [, b[O]]) and conv1d(x[C, L], K[O, C/G, k] [, b[O]]),
 * the second as the first over images one row high. */
static Node *conv(Lowerer *L, Ast *a, const FnInfo *f, Node **pos, Ast **pos_ast, int npos, Ast **opt) {
  Ctx *c = L->c;
  int one_d = f->kind == F_CONV1D, dims = one_d ? 1 : 2;
  Node *x = pos[0], *K = pos[1], *bias = npos > 2 ? pos[2] : NULL;
  const char *fn = f->name;
  need_image(L, a, x, fn, one_d ? "a signal [C, L]" : "an image [C, H, W]");
  if (K->shape.rank != dims + 2)
    diag_error(c, pos_ast[1]->loc, "%s: the kernel must be %s, but it has shape %s", fn,
               one_d ? "[O, C, k]" : "[O, C, kh, kw]", S(L, K));
  Attr at = NO_ATTR;
  at.win.step[0] = at.win.step[1] = at.win.dilation[0] = at.win.dilation[1] = at.win.groups = 1;
  option_pair(L, opt[OPT_STRIDE], fn, "stride", 1, dims, at.win.step);
  option_pair(L, opt[OPT_PADDING], fn, "padding", 0, dims, at.win.pad);
  option_pair(L, opt[OPT_DILATION], fn, "dilation", 1, dims, at.win.dilation);
  if (opt[OPT_GROUPS]) {
    int64_t g[2] = {1, 1};
    option_pair(L, opt[OPT_GROUPS], fn, "groups", 1, 1, g);
    at.win.groups = g[1];
  }
  int r = x->shape.rank;
  int64_t C = x->shape.dim[r - dims - 1], O = K->shape.dim[0], G = at.win.groups;
  if (C % G)
    diag_error(c, opt[OPT_GROUPS]->loc, "%s: groups=%lld does not divide the input's %lld channels", fn, (long long)G,
               (long long)C);
  if (O % G)
    diag_error(c, opt[OPT_GROUPS]->loc, "%s: groups=%lld does not divide the kernel's %lld output channels", fn,
               (long long)G, (long long)O);
  if (K->shape.dim[1] * G != C) {
    if (G == 1)
      diag_error(c, a->loc, "%s: input has %lld channel%s but the kernel expects %lld (its shape is %s)", fn,
                 (long long)C, C == 1 ? "" : "s", (long long)K->shape.dim[1], S(L, K));
    diag_error(c, a->loc, "%s: input has %lld channels but the kernel expects %lld per group x %lld groups = %lld", fn,
               (long long)C, (long long)K->shape.dim[1], (long long)G, (long long)(K->shape.dim[1] * G));
  }
  if (bias && !(bias->shape.rank == 1 && bias->shape.dim[0] == O))
    diag_error(c, pos_ast[2]->loc, "%s: the bias must have one value per output channel, [%lld], but it has shape %s",
               fn, (long long)O, S(L, bias));
  if (one_d) { /* [C, L] as [C, 1, L], [O, C, k] as [O, C, 1, k] */
    Shape xs = x->shape, ks = {4, {K->shape.dim[0], K->shape.dim[1], 1, K->shape.dim[2]}};
    xs.rank = r + 1;
    xs.dim[r] = x->shape.dim[r - 1];
    xs.dim[r - 1] = 1;
    x = ir_reshape(c, x, xs);
    K = ir_reshape(c, K, ks);
    at.win.step[0] = at.win.dilation[0] = 1;
  }
  at.win.size[0] = K->shape.dim[2];
  at.win.size[1] = K->shape.dim[3];
  need_fit(L, a, fn, "kernel", x->shape, &at);
  kernel_fans(L, pos[1], G);
  Node *y = ir_conv2d(c, x, K, at);
  if (one_d) {
    Shape ys = y->shape;
    ys.rank--;
    ys.dim[ys.rank - 1] = y->shape.dim[ys.rank];
    y = ir_reshape(c, y, ys);
  }
  if (!bias) return y;
  Shape bs = {dims + 1, {O, 1, 1}}; /* one value per channel, broadcast over the positions */
  return ir_binary(c, OP_ADD, y, ir_reshape(c, bias, bs));
}

/* maxpool2d(x, k, stride=S) and avgpool2d(x, k, stride=S): k x k windows,
 * S apart (k unless given). */
static Node *pool2d(Lowerer *L, Ast *a, const FnInfo *f, Node *x, Ast *k_ast, Ast *stride) {
  need_image(L, a, x, f->name, "an image [C, H, W]");
  Attr at = NO_ATTR;
  int64_t k[2] = {1, 1};
  option_pair(L, k_ast, f->name, "window", 1, 2, k);
  at.win.size[0] = k[0];
  at.win.size[1] = k[1];
  at.win.step[0] = k[0];
  at.win.step[1] = k[1];
  at.win.dilation[0] = at.win.dilation[1] = at.win.groups = 1;
  option_pair(L, stride, f->name, "stride", 1, 2, at.win.step);
  if (k[0] == k[1] && !(x->shape.dim[x->shape.rank - 2] >= k[0] && x->shape.dim[x->shape.rank - 1] >= k[1]))
    diag_error(L->c, a->loc, "%s: window %lld does not fit in a %lldx%lld image", f->name, (long long)k[0],
               (long long)x->shape.dim[x->shape.rank - 2], (long long)x->shape.dim[x->shape.rank - 1]);
  need_fit(L, a, f->name, "window", x->shape, &at);
  return ir_pool2d(L->c, f->op, x, at);
}

static Node *lower_call(Lowerer *L, Ast *a, Node **args) {
  Ctx *c = L->c;
  Binding *user = lookup(L, a->name);
  if (user && user->kind == B_FUNC) return call_user(L, a, args, user);
  const FnInfo *f = find_function(a->name);
  if (!f) unknown_function(L, a);
  /* positional arguments first, then keywords: each once, where the function takes it */
  Ast *opt[NOPTIONS] = {0}, *last_kw = NULL;
  Node *pos[MAX_JOINED];
  Ast *pos_ast[MAX_JOINED];
  int npos = 0;
  for (int k = 0; k < a->nkids; k++) {
    Ast *kid = a->kids[k];
    if (kid->kind == AST_KWARG) {
      int o = 0;
      while (o < NOPTIONS && (strcmp(kid->name, option_names[o]) || !(f->options & (1u << o))))
        o++;
      if (o == NOPTIONS) diag_error(c, kid->loc, "%s() has no option '%s'%s", f->name, kid->name, options_hint(L, f));
      if (opt[o]) diag_error(c, kid->loc, "%s= is given twice", kid->name);
      opt[o] = kid->kids[0];
      last_kw = kid;
      continue;
    }
    if (last_kw)
      diag_error(c, kid->loc, "%s(): an argument without a name cannot follow %s=", f->name, last_kw->name);
    if (npos == MAX_JOINED) diag_error(c, kid->loc, "%s() takes at most %d arguments", f->name, MAX_JOINED);
    pos_ast[npos] = kid;
    pos[npos++] = args[k];
  }
  if (npos < f->min_args || npos > f->max_args) {
    if (f->min_args == f->max_args)
      diag_error(c, a->loc, "%s() takes %d argument%s, but %d %s given", f->name, f->min_args,
                 f->min_args == 1 ? "" : "s", npos, npos == 1 ? "was" : "were");
    if (f->max_args == MAX_JOINED)
      diag_error(c, a->loc, "%s() takes at least %d argument", f->name, f->min_args);
    diag_error(c, a->loc, "%s() takes %d or %d arguments, but %d %s given", f->name, f->min_args, f->max_args,
               npos, npos == 1 ? "was" : "were");
  }
  for (int k = 0; k < npos; k++) /* only reshape's sizes, transpose's order, an axis and a window may be lists */
    if (!pos[k] && !(k == 1 && (f->kind == F_RESHAPE || f->kind == F_TRANSPOSE || f->kind == F_SUM ||
                               f->kind == F_MEAN || f->kind == F_POOL)))
      diag_error(c, pos_ast[k]->loc, "a list is not a value; %s() takes values here", f->name);
  Node *x = pos[0], *y = npos > 1 ? pos[1] : NULL;
  Ast *axis = opt[OPT_AXIS];
  if (!x) diag_error(c, pos_ast[0]->loc, "a list is not a value; %s() takes a value here", f->name);
  switch (f->kind) {
  case F_CONV2D:
  case F_CONV1D: return conv(L, a, f, pos, pos_ast, npos, opt);
  case F_POOL: return pool2d(L, a, f, x, pos_ast[1], opt[OPT_STRIDE]);
  case F_GLOBAL_AVGPOOL: { /* the mean of each channel's image */
    need_image(L, a, x, f->name, "an image [C, H, W]");
    int r = x->shape.rank;
    Shape to = x->shape;
    to.rank = r - 2;
    Node *sum = ir_sum_axes(c, x, (3u << (r - 2)), to);
    return ir_binary(c, OP_MUL, sum, ir_const(c, 1.0 / (double)(x->shape.dim[r - 2] * x->shape.dim[r - 1]), shape_scalar()));
  }
  case F_UNARY: return ir_unary(c, f->op, x);
  case F_MAX:
  case F_MIN:
    if (y && axis) diag_error(c, axis->loc, "%s(a, b) is elementwise; axis= is for %s(x, axis=K)", f->name, f->name);
    if (y) return elementwise(L, a->loc, f->kind == F_MAX ? OP_MAX2 : OP_MIN2, ",", x, y);
    if (axis) return extreme_over(L, axis, x, f->kind == F_MAX, f->name);
    return ir_reduce(c, f->kind == F_MAX ? OP_MAXALL : OP_MINALL, x);
  case F_SUM:
  case F_MEAN:
    if (npos > 1 && axis) diag_error(c, axis->loc, "the axis is given twice (as the second argument and axis=)");
    return sum_over(L, a, x, npos > 1 ? pos_ast[1] : axis, f->kind == F_MEAN);
  case F_DOT:
    if (x->shape.rank == 1 && y->shape.rank == 1 && x->shape.dim[0] != y->shape.dim[0])
      diag_error(c, a->loc, "cannot compute dot(%s, %s): lengths %lld and %lld differ", S(L, x), S(L, y),
                 (long long)x->shape.dim[0], (long long)y->shape.dim[0]);
    return matmul(L, a->loc, x, y, "dot");
  case F_TRANSPOSE: { /* the axes reversed, or in the order given */
    if (x->shape.rank < 2)
      diag_error(c, a->loc, "transpose() needs a matrix or a tensor, but its argument has shape %s", S(L, x));
    int perm[BPC_MAX_RANK];
    if (npos == 1) {
      for (int k = 0; k < x->shape.rank; k++)
        perm[k] = x->shape.rank - 1 - k;
      return ir_permute(c, x, perm);
    }
    Ast *order = pos_ast[1];
    if (order->kind != AST_LIST || order->nkids != x->shape.rank)
      diag_error(c, order->loc, "transpose(x, [...]) needs the order of all %d axes of %s", x->shape.rank, S(L, x));
    unsigned seen = 0;
    for (int k = 0; k < x->shape.rank; k++) {
      int64_t p = const_int_ast(L, order->kids[k], "an axis");
      if (p < 0 || p >= x->shape.rank || (seen & (1u << p)))
        diag_error(c, order->kids[k]->loc, "transpose(): the order must name each axis 0 to %d once",
                   x->shape.rank - 1);
      seen |= 1u << p;
      perm[k] = (int)p;
    }
    return ir_permute(c, x, perm);
  }
  case F_SOFTMAX:
  case F_LOG_SOFTMAX:
  case F_LSE: need_tensor(L, a, x, f->name); return along(L, axis, x, f->name, f->kind);
  case F_CE:
    need_same_shape(L, a, x, y);
    return ir_unary(c, OP_NEG, ir_reduce(c, OP_SUM, ir_binary(c, OP_MUL, y, ir_unary(c, OP_LOG, x))));
  case F_SCE:
    need_tensor(L, a, x, f->name);
    need_same_shape(L, a, x, y);
    return ir_unary(c, OP_NEG, ir_reduce(c, OP_SUM, ir_binary(c, OP_MUL, y, along(L, axis, x, f->name, F_LOG_SOFTMAX))));
  case F_FLATTEN: return ir_reshape(c, x, shape_vec(shape_numel(x->shape)));
  case F_RESHAPE: return reshape_to(L, a, x, pos_ast[1]);
  case F_CONCAT:
  case F_STACK: return join(L, a, pos, npos, axis, f->kind == F_STACK);
  case F_LEAKY_RELU: { /* x above 0, slope * x at and below */
    if (y->op != OP_CONST || y->shape.rank != 0)
      diag_error(c, pos_ast[1]->loc, "the slope of leaky_relu must be a constant number");
    return ir_unary_const(c, OP_LEAKY_RELU, x, y->value);
  }
  case F_DROPOUT: { /* each call its own mask (a site), even where a function or a loop repeats it */
    if (y->op != OP_CONST || y->shape.rank != 0)
      diag_error(c, pos_ast[1]->loc, "the rate of dropout must be a constant number");
    if (!(y->value >= 0 && y->value < 1))
      diag_error(c, pos_ast[1]->loc, "dropout(x, p) needs 0 <= p < 1 (the share of elements dropped), got %g",
                 y->value);
    return ir_dropout(c, x, y->value, c->dropouts++);
  }
  case F_CLIP: { /* max then min: gradient 1 strictly inside (lo, hi), 0 outside and at the bounds */
    Node *lo = pos[1], *hi = pos[2];
    for (int k = 1; k <= 2; k++)
      if (pos[k]->op != OP_CONST || pos[k]->shape.rank != 0)
        diag_error(c, pos_ast[k]->loc, "the bounds of clip must be constant numbers");
    if (lo->value > hi->value)
      diag_error(c, pos_ast[2]->loc, "clip(x, lo, hi) needs lo <= hi, got %g and %g", lo->value, hi->value);
    return ir_binary(c, OP_MIN2, ir_binary(c, OP_MAX2, x, lo), hi);
  }
  }
  return NULL;
}

/* ---- expressions ---------------------------------------------------------- */

/* One subscript along an axis of size n: an index (count 0: the axis goes)
 * or a slice start:stop:step, numpy style (negative counts from the end;
 * a slice's bounds are clipped to the axis, as numpy does). */
static void subscript(Lowerer *L, Ast *k, Node *x, int axis, int64_t *start, int64_t *step, int64_t *count) {
  Ctx *c = L->c;
  int64_t n = x->shape.dim[axis];
  if (k->kind != AST_SLICE) {
    int64_t i = const_int_ast(L, k, "an index");
    if (i < -n || i >= n)
      diag_error(c, k->loc, "index %lld is out of range for axis %d of shape %s (valid: %lld to %lld)",
                 (long long)i, axis, S(L, x), (long long)-n, (long long)n - 1);
    *start = i < 0 ? i + n : i;
    *step = 1;
    *count = 0;
    return;
  }
  int64_t st = k->kids[2] ? const_int_ast(L, k->kids[2], "a slice's step") : 1;
  if (st <= 0) diag_error(c, k->kids[2]->loc, "a slice's step must be positive, got %lld", (long long)st);
  int64_t lo = k->kids[0] ? const_int_ast(L, k->kids[0], "a slice's start") : 0;
  int64_t hi = k->kids[1] ? const_int_ast(L, k->kids[1], "a slice's end") : n;
  if (lo < 0) lo += n;
  if (hi < 0) hi += n;
  lo = lo < 0 ? 0 : lo > n ? n : lo;
  hi = hi < 0 ? 0 : hi > n ? n : hi;
  if (hi <= lo)
    diag_error(c, k->loc, "the slice selects nothing from axis %d of shape %s (from %lld up to %lld)", axis,
               S(L, x), (long long)lo, (long long)hi);
  *start = lo;
  *step = st;
  *count = (hi - lo + st - 1) / st;
}

/* x[...]: the subscripts select a block (a view when it is contiguous, a
 * gather otherwise); indexed axes go, sliced ones stay. */
static Node *lower_index(Lowerer *L, Ast *a, Node **args) {
  Ctx *c = L->c;
  Node *x = args[0];
  int nsub = a->nkids - 1;
  if (x->shape.rank == 0) diag_error(c, a->loc, "cannot index a scalar");
  if (nsub > x->shape.rank)
    diag_error(c, a->loc, "%d subscripts given, but the value has shape %s (%d ax%s)", nsub, S(L, x),
               x->shape.rank, x->shape.rank == 1 ? "is" : "es");
  int64_t start[BPC_MAX_RANK], step[BPC_MAX_RANK];
  Shape taken = x->shape, kept = {0, {0}};
  for (int k = 0; k < x->shape.rank; k++) {
    int64_t count = x->shape.dim[k];
    start[k] = 0;
    step[k] = 1;
    if (k < nsub) subscript(L, a->kids[1 + k], x, k, &start[k], &step[k], &count);
    taken.dim[k] = count ? count : 1;
    if (count) kept.dim[kept.rank++] = count;
  }
  c->cur_loc = a->loc;
  return ir_reshape(c, ir_slice(c, x, start, step, taken), kept);
}

static Node *lower_binary(Lowerer *L, Ast *a, Node *x, Node *y) {
  Ctx *c = L->c;
  switch (a->op) {
  case '+': return elementwise(L, a->loc, OP_ADD, "+", x, y);
  case '-': return elementwise(L, a->loc, OP_SUB, "-", x, y);
  case '*': return elementwise(L, a->loc, OP_MUL, "*", x, y);
  case '/': return elementwise(L, a->loc, OP_DIV, "/", x, y);
  case '@': return matmul(L, a->loc, x, y, "@");
  case '%':
    diag_error(c, a->loc, "'%%' works on constant integers only (indices, slices, sizes and loop bounds)");
  default: /* '^' */
    if (y->op != OP_CONST || y->shape.rank != 0)
      diag_error(c, a->kids[1]->loc, "the exponent of '^' must be a constant number");
    if (!isfinite(y->value)) diag_error(c, a->kids[1]->loc, "the exponent of '^' must be finite");
    return ir_powc(c, x, y->value);
  }
}

static Node *lower_leaf(Lowerer *L, Ast *a) {
  Ctx *c = L->c;
  if (a->kind == AST_NUM) return ir_const(c, a->num, shape_scalar());
  if (a->kind == AST_LIST)
    diag_error(c, a->loc, "a list is only an argument of a function (reshape(x, [2, 3]), sum(x, axis=[0, 1]))");
  if (a->kind == AST_KWARG) diag_error(c, a->loc, "'%s=' is only an argument of a function call", a->name);
  Binding *b = lookup_value(L, a);
  if (b->kind == B_DIM || b->kind == B_LOOPVAR) return ir_const(c, (double)b->dim, shape_scalar());
  return b->node;
}

static Node *lower_node(Lowerer *L, Ast *a, Node **args) {
  L->c->cur_loc = a->loc;
  switch (a->kind) {
  case AST_NEG: return ir_unary(L->c, OP_NEG, args[0]);
  case AST_BIN: return lower_binary(L, a, args[0], args[1]);
  case AST_CALL: return lower_call(L, a, args);
  case AST_INDEX: return lower_index(L, a, args);
  default: return lower_leaf(L, a);
  }
}

typedef struct Frame {
  Ast *ast;
  int next; /* next child to evaluate */
} Frame;

/* Whether kid k of a is a value to lower first: not a subscript (a
 * constant, read from the AST), a keyword or a list argument. */
static int value_kid(const Ast *a, int k) {
  if (a->kind == AST_INDEX) return k == 0;
  if (a->kind == AST_CALL) return a->kids[k]->kind != AST_KWARG && a->kids[k]->kind != AST_LIST;
  return 1;
}

/* Post-order walk with explicit stacks: frames for the AST nodes being
 * evaluated, values for finished children (NULL for the kids that are not
 * values). A call of a user function lowers its body from inside this
 * walk, so the stacks are shared: each walk works above the tops it found. */
static Node *lower_expr(Lowerer *L, Ast *root) {
  Arena *ar = &L->c->arena;
  if (!L->fcap) {
    L->fcap = L->vcap = 64;
    L->frames = arena_alloc(ar, sizeof(Frame) * (size_t)L->fcap);
    L->vals = arena_alloc(ar, sizeof(Node *) * (size_t)L->vcap);
  }
  int nf0 = L->nf, nv0 = L->nv;
  L->frames[L->nf++] = (Frame){root, 0};
  while (L->nf > nf0) {
    Frame *f = &L->frames[L->nf - 1];
    if (f->next < f->ast->nkids) {
      int k = f->next++;
      Ast *kid = f->ast->kids[k];
      if (!kid || !value_kid(f->ast, k)) {
        if (L->nv == L->vcap) {
          Node **nvs = arena_alloc(ar, sizeof(Node *) * (size_t)L->vcap * 2);
          memcpy(nvs, L->vals, sizeof(Node *) * (size_t)L->vcap);
          L->vals = nvs;
          L->vcap *= 2;
        }
        L->vals[L->nv++] = NULL;
        continue;
      }
      if (L->nf == L->fcap) {
        Frame *nfr = arena_alloc(ar, sizeof(Frame) * (size_t)L->fcap * 2);
        memcpy(nfr, L->frames, sizeof(Frame) * (size_t)L->fcap);
        L->frames = nfr;
        L->fcap *= 2;
      }
      L->frames[L->nf++] = (Frame){kid, 0};
      continue;
    }
    Ast *a = f->ast;
    Node *r = lower_node(L, a, L->vals + L->nv - a->nkids);
    L->nv -= a->nkids;
    L->nf--;
    if (L->nv == L->vcap) {
      Node **nvs = arena_alloc(ar, sizeof(Node *) * (size_t)L->vcap * 2);
      memcpy(nvs, L->vals, sizeof(Node *) * (size_t)L->vcap);
      L->vals = nvs;
      L->vcap *= 2;
    }
    L->vals[L->nv++] = r;
  }
  Node *r = L->vals[--L->nv];
  (void)nv0;
  return r;
}

/* ---- declarations ----------------------------------------------------------- */

static int64_t dim_value(Lowerer *L, Ast *d) {
  Ctx *c = L->c;
  int64_t v;
  if (d->kind == AST_NAME) {
    Binding *b = lookup(L, d->name);
    if (!b || b->kind != B_DIM) {
      if (b)
        diag_error(c, d->loc, "'%s' is %s, not a dim; a dimension must be a number or a dim name", d->name,
                   kind_word(b->kind));
      diag_error(c, d->loc, "unknown dimension '%s' (declare it first: dim %s = ...)", d->name, d->name);
    }
    v = b->dim;
  } else {
    if (!d->is_int) diag_error(c, d->loc, "a dimension must be a whole number, got %g", d->num);
    if (d->num > (double)BPC_MAX_DIM)
      diag_error(c, d->loc, "dimension %.0f is too large (the limit is %lld)", d->num,
                 (long long)BPC_MAX_DIM);
    v = (int64_t)d->num;
  }
  if (v <= 0) diag_error(c, d->loc, "a dimension must be positive, got %lld", (long long)v);
  return v;
}

static Shape decl_shape(Lowerer *L, Stmt *s) {
  Shape sh = shape_scalar();
  sh.rank = s->ndims;
  for (int i = 0; i < s->ndims; i++)
    sh.dim[i] = dim_value(L, s->dims[i]);
  if (shape_numel(sh) > BPC_MAX_ELEMS)
    diag_error(L->c, s->name_loc, "'%s' would have %lld elements; the limit is %lld", s->name,
               (long long)shape_numel(sh), (long long)BPC_MAX_ELEMS);
  return sh;
}

static void declare_dim(Lowerer *L, Stmt *s) {
  Ctx *c = L->c;
  Binding *b = define(L, s->name, s->name_loc, B_DIM);
  b->dim = dim_value(L, s->expr);
  for (int i = 0; i < c->dims.len; i++) {
    DimDef *d = c->dims.items[i];
    if (!strcmp(d->name, s->name)) {
      d->used = 1;
      b->dim = d->value; /* -D wins over the file */
    }
  }
}

static double init_number(Lowerer *L, Ast *v) {
  if (v->kind != AST_NUM) diag_error(L->c, v->loc, "expected a number here");
  return v->num;
}

/* The values of a nested initialiser along axis k, row-major, into
 * d->init_values from *at. Depth is bounded by the rank (at most 8). */
static void nested_init(Lowerer *L, Decl *d, Ast *list, int k, int64_t *at) {
  Ctx *c = L->c;
  if (list->kind != AST_LIST || list->nkids != d->shape.dim[k]) {
    const char *where = k ? arena_printf(&c->arena, "this part of the initialiser for '%s'", d->name)
                          : arena_printf(&c->arena, "the initialiser for '%s'", d->name);
    diag_error(c, list->loc, "%s must be a list of %lld %s ('%s' has shape %s)", where,
               (long long)d->shape.dim[k], k + 1 < d->shape.rank ? "lists" : "values", d->name,
               shape_str(c, d->shape));
  }
  for (int i = 0; i < list->nkids; i++)
    if (k + 1 < d->shape.rank)
      nested_init(L, d, list->kids[i], k + 1, at);
    else
      d->init_values[(*at)++] = init_number(L, list->kids[i]);
}

/* Accepts a flat list of all values, or lists nested as the shape (one
 * list per row of a matrix, per matrix of a rank-3 tensor, ...). */
static void flatten_init(Lowerer *L, Decl *d, Ast *list) {
  Ctx *c = L->c;
  int64_t n = shape_numel(d->shape);
  d->init_values = arena_alloc(&c->arena, sizeof(double) * (size_t)n);
  int nested = list->nkids > 0 && list->kids[0]->kind == AST_LIST;
  if (nested && d->shape.rank < 2)
    diag_error(c, list->loc, "initialiser for '%s' is nested, but '%s' has shape %s", d->name, d->name,
               shape_str(c, d->shape));
  if (!nested) {
    if (list->nkids != n)
      diag_error(c, list->loc, "initialiser for '%s' has %d value%s, but '%s' has shape %s (%lld values)",
                 d->name, list->nkids, list->nkids == 1 ? "" : "s", d->name, shape_str(c, d->shape),
                 (long long)n);
    for (int i = 0; i < list->nkids; i++)
      d->init_values[i] = init_number(L, list->kids[i]);
    return;
  }
  if (d->shape.rank == 2) { /* the matrix's own messages: rows and their lengths */
    if (list->nkids != d->shape.dim[0])
      diag_error(c, list->loc, "initialiser for '%s' has %d rows, but '%s' has shape %s", d->name, list->nkids,
                 d->name, shape_str(c, d->shape));
    for (int r = 0; r < list->nkids; r++) {
      Ast *row = list->kids[r];
      if (row->kind != AST_LIST || row->nkids != d->shape.dim[1])
        diag_error(c, row->loc, "row %d of the initialiser for '%s' must have %lld values", r, d->name,
                   (long long)d->shape.dim[1]);
    }
  }
  int64_t at = 0;
  nested_init(L, d, list, 0, &at);
}

static void set_initialiser(Lowerer *L, Stmt *s, Decl *d) {
  Ctx *c = L->c;
  d->init = s->init;
  if (s->init == INIT_DEFAULT) d->init = d->shape.rank >= 2 ? INIT_GLOROT : INIT_ZEROS;
  if ((s->init == INIT_GLOROT || s->init == INIT_HE) && d->shape.rank < 2)
    diag_error(c, s->init_loc, "%s initialisation needs a matrix or a kernel, but '%s' has shape %s",
               s->init == INIT_HE ? "he" : "glorot", d->name, shape_str(c, d->shape));
  if (d->init == INIT_GLOROT || d->init == INIT_HE) { /* each [in, out] matrix's fans; a kernel's: conv() */
    int r = d->shape.rank;
    d->fan_rule = d->init;
    set_fan_bounds(d, (double)d->shape.dim[r - 2], (double)d->shape.dim[r - 1]);
    if (d->init == INIT_HE) d->init = INIT_NORMAL;
  }
  if (s->init == INIT_NORMAL || s->init == INIT_UNIFORM) {
    d->init_a = s->init_args[0]->num;
    d->init_b = s->init_args[1]->num;
    if (s->init == INIT_NORMAL && d->init_b < 0)
      diag_error(c, s->init_args[1]->loc, "the standard deviation must not be negative");
    if (s->init == INIT_UNIFORM && d->init_b < d->init_a)
      diag_error(c, s->init_args[1]->loc, "uniform(lo, hi) needs lo <= hi");
  }
  if (s->init == INIT_VALUE) {
    if (s->init_value->kind == AST_LIST)
      flatten_init(L, d, s->init_value);
    else
      d->init_a = s->init_value->num; /* every element */
  }
}

static Decl *new_decl(Lowerer *L, Stmt *s, Shape sh, PtrVec *list, int64_t *total) {
  Decl *d = arena_alloc(&L->c->arena, sizeof *d);
  d->name = s->name;
  d->loc = s->name_loc;
  d->shape = sh;
  d->offset = *total;
  *total += shape_numel(sh);
  vec_push(&L->c->arena, list, d);
  return d;
}

static void declare_leaf(Lowerer *L, Stmt *s) {
  Ctx *c = L->c;
  Binding *b = define(L, s->name, s->name_loc, s->kind == ST_PARAM ? B_PARAM : B_INPUT);
  Shape sh = decl_shape(L, s);
  int is_param = s->kind == ST_PARAM;
  PtrVec *list = is_param ? &c->params : &c->inputs;
  int slot = list->len;
  Decl *d = new_decl(L, s, sh, list, is_param ? &c->num_params : &c->num_inputs);
  if (is_param) set_initialiser(L, s, d);
  c->cur_loc = s->name_loc;
  d->node = ir_leaf(c, is_param ? OP_PARAM : OP_INPUT, slot, sh);
  d->node->name = s->name;
  b->node = d->node;
}

static void name_value(Node *n, const char *name) {
  if (!n->name && n->op != OP_CONST) n->name = name;
}

/* A name as the generated code shows it: h_3 for h in iteration 3. */
static const char *scoped_name(Lowerer *L, const char *name) {
  return L->cx.suffix ? arena_printf(&L->c->arena, "%s%s", name, L->cx.suffix) : name;
}

static void assign(Lowerer *L, Stmt *s) {
  Ctx *c = L->c;
  Node *n = lower_expr(L, s->expr);
  int is_loss = s->kind == ST_ASSIGN && !strcmp(s->name, "loss");
  Binding *b = define(L, s->name, s->name_loc, s->kind == ST_OUTPUT ? B_OUTPUT : B_VALUE);
  b->node = n;
  name_value(n, scoped_name(L, s->name));
  if (s->kind == ST_OUTPUT) {
    Decl *d = new_decl(L, s, n->shape, &c->outputs, &c->num_outputs);
    d->node = n;
  }
  if (is_loss) {
    if (n->shape.rank != 0)
      diag_error(c, s->expr->loc,
                 "the loss must be a scalar, but this expression has shape %s; reduce it with "
                 "sum() or mean()",
                 shape_str(c, n->shape));
    c->loss = n;
    c->loss_loc = s->loc;
  }
}

static void lower_stmts(Lowerer *L, PtrVec *stmts, Node **ret);
static void count_unrolled(Lowerer *L, Loc at);

/* for i in lo..hi { body }: the body once per i, each time in a scope of
 * its own (names first made there are the iteration's), values made
 * before the loop carried from one iteration to the next. */
static void lower_loop(Lowerer *L, Stmt *s) {
  Ctx *c = L->c;
  int64_t lo = const_int_ast(L, s->expr, "the loop's start"), hi = const_int_ast(L, s->hi, "the loop's end");
  if (lo > hi)
    diag_error(c, s->hi->loc, "the range %lld..%lld runs backwards (a loop's start must not be after its end)",
               (long long)lo, (long long)hi);
  Context saved = L->cx;
  const char *note = c->diag_note;
  for (int64_t i = lo; i < hi; i++) {
    int mark = open_scope(L);
    L->cx.loop_scope = L->scope;
    L->cx.suffix = arena_printf(&c->arena, "%s_%lld", saved.suffix ? saved.suffix : "", (long long)i);
    L->cx.where = arena_printf(&c->arena, "%s%s%s = %lld", saved.where ? saved.where : "", saved.where ? ", " : "",
                               s->name, (long long)i);
    c->diag_note = arena_printf(&c->arena, "(in the loop at line %d, %s = %lld)%s%s", s->loc.line, s->name,
                                (long long)i, note ? " " : "", note ? note : "");
    count_unrolled(L, s->loc); /* an empty body's iterations count too */
    define(L, s->name, s->name_loc, B_LOOPVAR)->dim = i;
    lower_stmts(L, &s->body, NULL);
    close_scope(L, mark);
  }
  L->cx = saved;
  c->diag_note = note;
}

static const char *stmt_word(const Stmt *s) {
  switch (s->kind) {
  case ST_DIM: return "'dim'";
  case ST_PARAM: return "'param'";
  case ST_INPUT: return "'input'";
  case ST_OUTPUT: return "'output'";
  case ST_DEF: return "'def'";
  case ST_ASSIGN: return "the loss";
  default: return "this statement";
  }
}

/* Declarations and the loss belong to the model, once: not in a loop's
 * body (which repeats) nor in a function's (which is a template). Checked
 * before anything runs, so a function never called is checked too. */
static void check_block(Lowerer *L, PtrVec *stmts, const char *where) {
  for (int i = 0; i < stmts->len; i++) {
    Stmt *s = stmts->items[i];
    int is_loss = s->kind == ST_ASSIGN && !strcmp(s->name, "loss");
    if (s->kind == ST_DIM || s->kind == ST_PARAM || s->kind == ST_INPUT || s->kind == ST_OUTPUT ||
        s->kind == ST_DEF || is_loss)
      diag_error(L->c, s->loc, "%s cannot be inside %s (%s)", stmt_word(s), where,
                 s->kind == ST_DEF ? "define functions at the top level of the file"
                 : is_loss         ? "define it at the top level of the file, from the values made here"
                 : !strcmp(where, "a function") ? "declare it at the top level and pass it as an argument"
                                   : "declare it before, at the top level of the file");
    if (s->kind == ST_FOR) check_block(L, &s->body, where);
  }
}

/* def NAME(params) ...: checked now, lowered at each call. */
static void declare_function(Lowerer *L, Stmt *s) {
  Ctx *c = L->c;
  if (find_function(s->name))
    diag_error(c, s->name_loc, "'%s' is a built-in function; give yours another name", s->name);
  for (int k = 0; k < s->nparams; k++)
    for (int j = 0; j < k; j++)
      if (!strcmp(s->params[j]->name, s->params[k]->name))
        diag_error(c, s->params[k]->loc, "%s() has two parameters named '%s'", s->name, s->params[k]->name);
  check_block(L, &s->body, "a function");
  Stmt *last = s->body.len ? s->body.items[s->body.len - 1] : NULL;
  for (int i = 0; i + 1 < s->body.len; i++) {
    Stmt *st = s->body.items[i];
    if (st->kind == ST_RETURN)
      diag_error(c, st->loc, "'return' must be the last statement of %s()'s body", s->name);
  }
  if (!last || last->kind != ST_RETURN)
    diag_error(c, s->name_loc, "%s() returns nothing: its body must end with 'return' and a value", s->name);
  Binding *b = define(L, s->name, s->name_loc, B_FUNC);
  b->def = s;
  b->order = L->ndefs++;
}

/* A call of a user function: its body lowered with the parameters bound
 * to the arguments' values (a template: shapes are checked per call). */
static Node *call_user(Lowerer *L, Ast *a, Node **args, Binding *f) {
  Ctx *c = L->c;
  Stmt *d = f->def;
  int n = 0;
  for (int k = 0; k < a->nkids; k++) {
    if (a->kids[k]->kind == AST_KWARG)
      diag_error(c, a->kids[k]->loc, "%s() takes no named arguments ('%s=')", a->name, a->kids[k]->name);
    if (!args[k]) diag_error(c, a->kids[k]->loc, "a list is not a value; %s() takes values", a->name);
    n++;
  }
  if (n != d->nparams)
    diag_error(c, a->loc, "%s() takes %d argument%s, but %d %s given", a->name, d->nparams,
               d->nparams == 1 ? "" : "s", n, n == 1 ? "was" : "were");
  if (L->ncalls) {
    Binding *caller = L->calls[L->ncalls - 1];
    if (caller == f)
      diag_error(c, a->loc, "%s() calls itself: recursion is not allowed (a loop can repeat a layer)", a->name);
    if (f->order > caller->order)
      diag_error(c, a->loc, "%s() calls %s(), which is defined after it (at line %d); define %s() first",
                 caller->name, a->name, f->loc.line, a->name);
  }
  if (L->ncalls == MAX_CALL_DEPTH)
    diag_error(c, a->loc, "functions call each other too deeply (the limit is %d)", MAX_CALL_DEPTH);
  L->calls[L->ncalls++] = f;
  Context saved = L->cx;
  const char *note = c->diag_note;
  int mark = open_scope(L);
  L->cx.fn_scope = L->scope;
  L->cx.loop_scope = 0;
  c->diag_note = arena_printf(&c->arena, "(in %s(), called at %s:%d:%d)%s%s", a->name, c->src.name, a->loc.line,
                              a->loc.col, note ? " " : "", note ? note : "");
  for (int k = 0; k < d->nparams; k++) {
    Binding *old = lookup(L, d->params[k]->name);
    if (old && visible(L, old))
      diag_error(c, d->params[k]->loc, "'%s' is %s; a parameter of %s() needs another name",
                 d->params[k]->name, kind_word(old->kind), d->name);
    bind(L, d->params[k]->name, d->params[k]->loc, B_VALUE)->node = args[k];
  }
  const char *outer_call = c->cur_call;
  c->cur_call = arena_printf(&c->arena, "%s(), called at line %d%s%s%s", a->name, a->loc.line,
                             saved.where ? " (" : "", saved.where ? saved.where : "", saved.where ? ")" : "");
  Node *ret = NULL;
  lower_stmts(L, &d->body, &ret);
  close_scope(L, mark);
  L->cx = saved;
  c->diag_note = note;
  c->cur_call = outer_call;
  L->ncalls--;
  c->cur_loc = a->loc;
  return ret;
}

static void lower_stmt(Lowerer *L, Stmt *s, Node **ret) {
  Ctx *c = L->c;
  c->cur_loc = s->loc;
  switch (s->kind) {
  case ST_DIM: declare_dim(L, s); break;
  case ST_PARAM:
  case ST_INPUT: declare_leaf(L, s); break;
  case ST_ASSIGN:
  case ST_OUTPUT: assign(L, s); break;
  case ST_FOR: check_block(L, &s->body, "a loop"); lower_loop(L, s); break;
  case ST_DEF: declare_function(L, s); break;
  case ST_RETURN:
    if (!ret) diag_error(c, s->loc, "'return' belongs at the end of a function's body");
    *ret = lower_expr(L, s->expr);
    break;
  }
}

/* Statements one after another; nesting (a loop in a loop, a call in a
 * body) is bounded by the parser's brace limit and MAX_CALL_DEPTH. */
/* Loops and calls repeat statements; the program they unroll to is held to
 * the file's own statement limit, so a loop of a billion trivial steps
 * stops with an error instead of running for hours. */
static void count_unrolled(Lowerer *L, Loc at) {
  if (++L->unrolled > BPC_MAX_STATEMENTS)
    diag_error(L->c, at, "the loops and calls unroll to more than %d statements (the limit)", BPC_MAX_STATEMENTS);
}

static void lower_stmts(Lowerer *L, PtrVec *stmts, Node **ret) {
  for (int i = 0; i < stmts->len; i++) {
    count_unrolled(L, ((Stmt *)stmts->items[i])->loc);
    lower_stmt(L, stmts->items[i], ret);
  }
}

static Loc end_of_file(Ctx *c) {
  int line = 1;
  for (size_t i = 0; i < c->src.len; i++)
    if (c->src.text[i] == '\n' && i + 1 < c->src.len) line++;
  return (Loc){line, 1};
}

void lower_program(Ctx *c) {
  Lowerer L = {.c = c};
  lower_stmts(&L, &c->prog.stmts, NULL);
  for (int i = 0; i < c->dims.len; i++) {
    DimDef *d = c->dims.items[i];
    if (!d->used)
      diag_error(c, (Loc){0, 0}, "-D %s=%lld: the model declares no dim named '%s'", d->name,
                 (long long)d->value, d->name);
  }
  if (!c->loss) diag_error(c, end_of_file(c), "the model has no loss; add a line such as 'loss = sum(x)'");
}
