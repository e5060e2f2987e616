/* lower.c — gives the AST its meaning: resolves names, checks shapes and
 * builds the IR graph. Every user mistake in a syntactically valid program
 * is reported here, in the user's terms. Expressions are walked with an
 * explicit stack, so a 100,000-term sum cannot overflow the C stack. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpc.h"

typedef enum { B_DIM, B_PARAM, B_INPUT, B_VALUE, B_OUTPUT } BindKind;

typedef struct Binding {
  const char *name;
  BindKind kind;
  Loc loc;
  Node *node;
  int64_t dim;
} Binding;

struct Frame;

typedef struct Lowerer {
  Ctx *c;
  Binding **tab; /* open addressing, power-of-two capacity */
  uint32_t cap, count;
  struct Frame *frames; /* lower_expr's stacks, kept from one expression to the next */
  struct Node **vals;
  int fcap, vcap;
} Lowerer;

/* ---- the symbol table -------------------------------------------------- */

static Binding *lookup(Lowerer *L, const char *name) {
  if (!L->cap) return NULL;
  for (uint32_t i = hash_string(name) & (L->cap - 1);; i = (i + 1) & (L->cap - 1)) {
    if (!L->tab[i]) return NULL;
    if (!strcmp(L->tab[i]->name, name)) return L->tab[i];
  }
}

static void insert(Lowerer *L, Binding *b) {
  if ((L->count + 1) * 2 > L->cap) {
    uint32_t cap = L->cap ? L->cap * 2 : 256;
    Binding **tab = arena_alloc(&L->c->arena, sizeof(Binding *) * cap);
    for (uint32_t i = 0; i < L->cap; i++) {
      Binding *x = L->tab[i];
      if (!x) continue;
      uint32_t j = hash_string(x->name) & (cap - 1);
      while (tab[j])
        j = (j + 1) & (cap - 1);
      tab[j] = x;
    }
    L->tab = tab;
    L->cap = cap;
  }
  uint32_t j = hash_string(b->name) & (L->cap - 1);
  while (L->tab[j])
    j = (j + 1) & (L->cap - 1);
  L->tab[j] = b;
  L->count++;
}

static const char *kind_word(BindKind k) {
  switch (k) {
  case B_DIM: return "a dim";
  case B_PARAM: return "a parameter";
  case B_INPUT: return "an input";
  case B_OUTPUT: return "an output";
  default: return "a value";
  }
}


static Binding *define(Lowerer *L, const char *name, Loc loc, BindKind kind) {
  /* C reserves identifiers that begin with '_' for itself */
  if (name[0] == '_') diag_error(L->c, loc, "'%s' cannot be used as a name (names must not start with '_')", name);
  Binding *old = lookup(L, name);
  if (old) {
    if (!strcmp(name, "loss") && old->kind == B_VALUE)
      diag_error(L->c, loc, "the loss is already defined at line %d; a model has exactly one loss",
                 old->loc.line);
    diag_error(L->c, loc, "'%s' is already defined at line %d (as %s)", name, old->loc.line,
               kind_word(old->kind));
  }
  Binding *b = arena_alloc(&L->c->arena, sizeof *b);
  b->name = name;
  b->kind = kind;
  b->loc = loc;
  insert(L, b);
  return b;
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
  F_CLIP
} FnKind;

typedef struct FnInfo {
  const char *name;
  FnKind kind;
  Op op;
  int min_args, max_args;
} FnInfo;

static const FnInfo functions[] = {
    {"max", F_MAX, OP_MAX2, 1, 2},
    {"min", F_MIN, OP_MIN2, 1, 2},
    {"sum", F_SUM, OP_SUM, 1, 2},
    {"mean", F_MEAN, OP_SUM, 1, 2},
    {"dot", F_DOT, OP_DOT, 2, 2},
    {"transpose", F_TRANSPOSE, OP_TRANSPOSE, 1, 1},
    {"softmax", F_SOFTMAX, OP_LSE, 1, 1},
    {"log_softmax", F_LOG_SOFTMAX, OP_LSE, 1, 1},
    {"logsumexp", F_LSE, OP_LSE, 1, 1},
    {"cross_entropy", F_CE, OP_LOG, 2, 2},
    {"softmax_cross_entropy", F_SCE, OP_LSE, 2, 2},
    {"flatten", F_FLATTEN, OP_INDEX, 1, 1},
    {"leaky_relu", F_LEAKY_RELU, OP_LEAKY_RELU, 2, 2},
    {"clip", F_CLIP, OP_MAX2, 3, 3},
};
enum { NFUNCTIONS = sizeof functions / sizeof functions[0] };

/* The one-argument elementwise functions (exp, sigmoid, ...) come from the
 * op table (ops.h, OPC_FUNCTION); the others, which lower to several
 * nodes or take options, are listed above. */
static const FnInfo unary_functions[] = {
#define X(E, name, label, arity, classes, flops, value, ctext, d, ga, gb) {name, F_UNARY, OP_##E, 1, 1},
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
  for (uint32_t i = 0; i < L->cap; i++)
    if (L->tab[i] && name_is_closer(a->name, L->tab[i]->name, &best)) best_name = L->tab[i]->name;
  if (find_function(a->name))
    diag_error(L->c, a->loc, "'%s' is a function; call it as %s(...)", a->name, a->name);
  if (best_name) diag_error(L->c, a->loc, "undefined name '%s'; did you mean '%s'?", a->name, best_name);
  diag_error(L->c, a->loc, "undefined name '%s'", a->name);
}

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
  int mrank = x->shape.rank >= 2 ? 2 : 1, xb = x->shape.rank - mrank;
  Shape item = {mrank, {x->shape.dim[xb], mrank == 2 ? x->shape.dim[xb + 1] : 0}};
  int64_t at = 0, scale = 1;
  for (int k = bs.rank - 1, kx = xb - 1; k >= 0; k--, kx--) { /* e's coordinates, x's own flat index */
    int64_t coord = e % bs.dim[k];
    e /= bs.dim[k];
    if (kx < 0) continue;
    if (x->shape.dim[kx] != 1) at += coord * scale;
    scale *= x->shape.dim[kx];
  }
  return ir_index(c, x, at * shape_numel(item), item);
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
    Node *r = matmul(L, loc, batch_item(c, a, bs, e), batch_item(c, b, bs, e), how);
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

static int64_t const_int(Lowerer *L, Node *n, Loc loc, const char *what) {
  if (n->op != OP_CONST || n->shape.rank != 0) diag_error(L->c, loc, "%s must be a constant integer", what);
  if (n->value != floor(n->value) || fabs(n->value) > 1e15)
    diag_error(L->c, loc, "%s must be an integer, got %g", what, n->value);
  return (int64_t)n->value;
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

static Node *reduce_axis(Lowerer *L, Ast *a, Node *x, Node *axis_node, int mean) {
  Ctx *c = L->c;
  if (!axis_node) {
    Node *s = ir_reduce(c, OP_SUM, x);
    return mean ? ir_binary(c, OP_DIV, s, ir_const(c, (double)shape_numel(x->shape), shape_scalar())) : s;
  }
  int64_t axis = const_int(L, axis_node, a->kids[1]->loc, "the axis");
  if (x->shape.rank == 0)
    diag_error(c, a->kids[1]->loc, "%s() over an axis needs a vector or a matrix, not a scalar", a->name);
  if (axis < 0 || axis >= x->shape.rank)
    diag_error(c, a->kids[1]->loc, "axis %lld is out of range for shape %s (valid: 0 to %d)", (long long)axis,
               S(L, x), x->shape.rank - 1);
  Node *s = ir_sumax(c, x, (int)axis);
  return mean ? ir_binary(c, OP_DIV, s, ir_const(c, (double)x->shape.dim[axis], shape_scalar())) : s;
}

static Node *lower_call(Lowerer *L, Ast *a, Node **args) {
  Ctx *c = L->c;
  const FnInfo *f = find_function(a->name);
  if (!f) unknown_function(L, a);
  if (a->nkids < f->min_args || a->nkids > f->max_args) {
    if (f->min_args == f->max_args)
      diag_error(c, a->loc, "%s() takes %d argument%s, but %d %s given", f->name, f->min_args,
                 f->min_args == 1 ? "" : "s", a->nkids, a->nkids == 1 ? "was" : "were");
    diag_error(c, a->loc, "%s() takes %d or %d arguments, but %d %s given", f->name, f->min_args, f->max_args,
               a->nkids, a->nkids == 1 ? "was" : "were");
  }
  Node *x = args[0], *y = a->nkids > 1 ? args[1] : NULL;
  switch (f->kind) {
  case F_UNARY: return ir_unary(c, f->op, x);
  case F_MAX:
  case F_MIN:
    if (y) return elementwise(L, a->loc, f->kind == F_MAX ? OP_MAX2 : OP_MIN2, ",", x, y);
    return ir_reduce(c, f->kind == F_MAX ? OP_MAXALL : OP_MINALL, x);
  case F_SUM: return reduce_axis(L, a, x, y, 0);
  case F_MEAN: return reduce_axis(L, a, x, y, 1);
  case F_DOT:
    if (x->shape.rank == 1 && y->shape.rank == 1 && x->shape.dim[0] != y->shape.dim[0])
      diag_error(c, a->loc, "cannot compute dot(%s, %s): lengths %lld and %lld differ", S(L, x), S(L, y),
                 (long long)x->shape.dim[0], (long long)y->shape.dim[0]);
    return matmul(L, a->loc, x, y, "dot");
  case F_TRANSPOSE: { /* the axes reversed */
    if (x->shape.rank < 2)
      diag_error(c, a->loc, "transpose() needs a matrix or a tensor, but its argument has shape %s", S(L, x));
    int perm[BPC_MAX_RANK];
    for (int k = 0; k < x->shape.rank; k++)
      perm[k] = x->shape.rank - 1 - k;
    return ir_permute(c, x, perm);
  }
  case F_SOFTMAX: need_tensor(L, a, x, f->name); return ir_unary(c, OP_EXP, log_softmax(c, x));
  case F_LOG_SOFTMAX: need_tensor(L, a, x, f->name); return log_softmax(c, x);
  case F_LSE: need_tensor(L, a, x, f->name); return ir_reduce(c, OP_LSE, x);
  case F_CE:
    need_same_shape(L, a, x, y);
    return ir_unary(c, OP_NEG, ir_reduce(c, OP_SUM, ir_binary(c, OP_MUL, y, ir_unary(c, OP_LOG, x))));
  case F_SCE:
    need_tensor(L, a, x, f->name);
    need_same_shape(L, a, x, y);
    return ir_unary(c, OP_NEG, ir_reduce(c, OP_SUM, ir_binary(c, OP_MUL, y, log_softmax(c, x))));
  case F_FLATTEN: return ir_reshape(c, x, shape_vec(shape_numel(x->shape)));
  case F_LEAKY_RELU: { /* x above 0, slope * x at and below */
    if (y->op != OP_CONST || y->shape.rank != 0)
      diag_error(c, a->kids[1]->loc, "the slope of leaky_relu must be a constant number");
    return ir_unary_const(c, OP_LEAKY_RELU, x, y->value);
  }
  case F_CLIP: { /* max then min: gradient 1 strictly inside (lo, hi), 0 outside and at the bounds */
    Node *lo = args[1], *hi = args[2];
    for (int k = 1; k <= 2; k++)
      if (args[k]->op != OP_CONST || args[k]->shape.rank != 0)
        diag_error(c, a->kids[k]->loc, "the bounds of clip must be constant numbers");
    if (lo->value > hi->value)
      diag_error(c, a->kids[2]->loc, "clip(x, lo, hi) needs lo <= hi, got %g and %g", lo->value, hi->value);
    return ir_binary(c, OP_MIN2, ir_binary(c, OP_MAX2, x, lo), hi);
  }
  }
  return NULL;
}

/* ---- expressions ---------------------------------------------------------- */

static Node *lower_index(Lowerer *L, Ast *a, Node **args) {
  Ctx *c = L->c;
  Node *x = args[0];
  int nidx = a->nkids - 1;
  if (x->shape.rank == 0) diag_error(c, a->loc, "cannot index a scalar");
  if (nidx > x->shape.rank)
    diag_error(c, a->loc, "%d indices given, but the value has shape %s", nidx, S(L, x));
  int64_t offset = 0;
  for (int i = 0; i < nidx; i++) {
    int64_t k = const_int(L, args[1 + i], a->kids[1 + i]->loc, "an index");
    if (k < 0 || k >= x->shape.dim[i])
      diag_error(c, a->kids[1 + i]->loc, "index %lld is out of range for shape %s (valid: 0 to %lld)",
                 (long long)k, S(L, x), (long long)x->shape.dim[i] - 1);
    offset = offset * x->shape.dim[i] + k;
  }
  /* leading indices select a contiguous block: the remaining axes */
  Shape rest = {x->shape.rank - nidx, {0}};
  for (int i = nidx; i < x->shape.rank; i++)
    rest.dim[i - nidx] = x->shape.dim[i];
  return ir_index(c, x, offset * shape_numel(rest), rest);
}

static Node *lower_binary(Lowerer *L, Ast *a, Node *x, Node *y) {
  Ctx *c = L->c;
  switch (a->op) {
  case '+': return elementwise(L, a->loc, OP_ADD, "+", x, y);
  case '-': return elementwise(L, a->loc, OP_SUB, "-", x, y);
  case '*': return elementwise(L, a->loc, OP_MUL, "*", x, y);
  case '/': return elementwise(L, a->loc, OP_DIV, "/", x, y);
  case '@': return matmul(L, a->loc, x, y, "@");
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
  Binding *b = lookup(L, a->name);
  if (!b) undefined_name(L, a);
  if (b->kind == B_DIM) return ir_const(c, (double)b->dim, shape_scalar());
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

/* Post-order walk with explicit stacks: frames for the AST nodes being
 * evaluated, values for finished children. */
static Node *lower_expr(Lowerer *L, Ast *root) {
  Arena *ar = &L->c->arena;
  if (!L->fcap) {
    L->fcap = L->vcap = 64;
    L->frames = arena_alloc(ar, sizeof(Frame) * (size_t)L->fcap);
    L->vals = arena_alloc(ar, sizeof(Node *) * (size_t)L->vcap);
  }
  int nf = 0, nv = 0;
  L->frames[nf++] = (Frame){root, 0};
  while (nf) {
    Frame *f = &L->frames[nf - 1];
    if (f->next < f->ast->nkids) {
      Ast *kid = f->ast->kids[f->next++];
      if (nf == L->fcap) {
        Frame *nfr = arena_alloc(ar, sizeof(Frame) * (size_t)L->fcap * 2);
        memcpy(nfr, L->frames, sizeof(Frame) * (size_t)L->fcap);
        L->frames = nfr;
        L->fcap *= 2;
      }
      L->frames[nf++] = (Frame){kid, 0};
      continue;
    }
    Ast *a = f->ast;
    Node *r = lower_node(L, a, L->vals + nv - a->nkids);
    nv -= a->nkids;
    nf--;
    if (nv == L->vcap) {
      Node **nvs = arena_alloc(ar, sizeof(Node *) * (size_t)L->vcap * 2);
      memcpy(nvs, L->vals, sizeof(Node *) * (size_t)L->vcap);
      L->vals = nvs;
      L->vcap *= 2;
    }
    L->vals[nv++] = r;
  }
  return L->vals[0];
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
  if (s->init == INIT_GLOROT && d->shape.rank < 2)
    diag_error(c, s->init_loc, "glorot initialisation needs a matrix, but '%s' has shape %s", d->name,
               shape_str(c, d->shape));
  if (d->init == INIT_GLOROT) { /* uniform(-a, a), a = sqrt(6 / (fan_in + fan_out)) of each [in, out] matrix */
    int r = d->shape.rank;
    d->init_b = sqrt(6.0 / (double)(d->shape.dim[r - 2] + d->shape.dim[r - 1]));
    d->init_a = -d->init_b;
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

static void assign(Lowerer *L, Stmt *s) {
  Ctx *c = L->c;
  Node *n = lower_expr(L, s->expr);
  int is_loss = s->kind == ST_ASSIGN && !strcmp(s->name, "loss");
  Binding *b = define(L, s->name, s->name_loc, s->kind == ST_OUTPUT ? B_OUTPUT : B_VALUE);
  b->node = n;
  name_value(n, s->name);
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

static Loc end_of_file(Ctx *c) {
  int line = 1;
  for (size_t i = 0; i < c->src.len; i++)
    if (c->src.text[i] == '\n' && i + 1 < c->src.len) line++;
  return (Loc){line, 1};
}

void lower_program(Ctx *c) {
  Lowerer L = {.c = c};
  for (int i = 0; i < c->prog.stmts.len; i++) {
    Stmt *s = c->prog.stmts.items[i];
    c->cur_loc = s->loc;
    switch (s->kind) {
    case ST_DIM: declare_dim(&L, s); break;
    case ST_PARAM:
    case ST_INPUT: declare_leaf(&L, s); break;
    case ST_ASSIGN:
    case ST_OUTPUT: assign(&L, s); break;
    }
  }
  for (int i = 0; i < c->dims.len; i++) {
    DimDef *d = c->dims.items[i];
    if (!d->used)
      diag_error(c, (Loc){0, 0}, "-D %s=%lld: the model declares no dim named '%s'", d->name,
                 (long long)d->value, d->name);
  }
  if (!c->loss) diag_error(c, end_of_file(c), "the model has no loss; add a line such as 'loss = sum(x)'");
}
