/* ir.c — the IR graph: typed nodes with static shapes, one node per distinct
 * computation (hash-consing), so the forward pass computes each value once
 * and the backward pass reuses forward values for free. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpc.h"

static int op_is_commutative(Op op) { return (op_info[op].classes & OPC_COMMUTATIVE) != 0; }

/* Ops whose result does not vary smoothly with their inputs carry no
 * gradient: indicators and masks. */
static int op_blocks_gradient(Op op) { return (op_info[op].classes & OPC_NO_GRADIENT) != 0; }

static uint32_t mix(uint32_t h, uint64_t v) {
  h ^= (uint32_t)(v ^ (v >> 32));
  h *= 0x9E3779B1u;
  return h ^ (h >> 15);
}

static uint32_t node_hash(Op op, Shape s, Node *const *args, int nargs, double value, Attr attr) {
  uint64_t vbits;
  memcpy(&vbits, &value, sizeof vbits);
  uint32_t h = mix(2166136261u, (uint64_t)op);
  h = mix(h, (uint64_t)s.rank);
  for (int k = 0; k < s.rank; k++)
    h = mix(h, (uint64_t)s.dim[k]);
  for (int k = 0; k < nargs; k++)
    h = mix(h, args[k] ? (uint64_t)args[k]->id + 1 : 0);
  h = mix(h, vbits);
  return mix(h, hash_bytes(&attr, sizeof attr, 14695981039346656037u));
}

/* Attr hashes and compares as bytes, so no padding may hide in it: its
 * fields are all int64_t (count them here when adding one). */
_Static_assert(sizeof(Attr) == (4 + BPC_MAX_RANK + 9) * sizeof(int64_t), "Attr must be int64_t fields only");

static int same_double(double x, double y) { return memcmp(&x, &y, sizeof x) == 0; }

static void rehash(Ctx *c) {
  uint32_t cap = c->hcap ? c->hcap * 2 : 1024;
  Node **tab = calloc(cap, sizeof *tab);
  if (!tab) {
    fputs("bpc: out of memory\n", stderr);
    exit(3);
  }
  for (int i = 0; i < c->nodes.len; i++) {
    Node *n = c->nodes.items[i];
    uint32_t k = n->hash & (cap - 1);
    n->hnext = tab[k];
    tab[k] = n;
  }
  free(c->htab);
  c->htab = tab;
  c->hcap = cap;
}

/* Where a commutative op's argument goes: a constant first, then by id.
 * Constants must not be ordered by id: C leaves the order in which a
 * call's arguments are evaluated open, so in ops.h's derivative columns
 * (MUL(BIN(GT, X0, K(0)), K(0.9))) gcc and clang make the constant at
 * different times, and "0.9 * [a > 0]" would read differently with each. */
static int arg_goes_after(const Node *a, const Node *b) {
  int a_const = a->op == OP_CONST, b_const = b->op == OP_CONST;
  if (a_const != b_const) return b_const;
  return a->id > b->id;
}

/* The arguments in canonical order, so that a * b and b * a are one node. */
static void order_args(Op op, Node **args, int nargs) {
  if (op_is_commutative(op) && nargs == 2 && args[0] && args[1] && arg_goes_after(args[0], args[1])) {
    Node *t = args[0];
    args[0] = args[1];
    args[1] = t;
  }
}

static Node *find_args(Ctx *c, Op op, Shape s, Node *const *args, int nargs, double value, Attr attr, uint32_t h) {
  if (!c->hcap) return NULL;
  for (Node *n = c->htab[h & (c->hcap - 1)]; n; n = n->hnext) {
    if (n->hash != h || n->op != op || n->nargs != nargs || !shape_eq(n->shape, s) ||
        !same_double(n->value, value) || memcmp(&n->attr, &attr, sizeof attr))
      continue;
    int k = 0;
    while (k < nargs && n->args[k] == args[k])
      k++;
    if (k == nargs) return n;
  }
  return NULL;
}

Node *ir_make_args(Ctx *c, Op op, Shape s, Node **args, int nargs, double value, Attr attr) {
  order_args(op, args, nargs);
  uint32_t h = node_hash(op, s, args, nargs, value, attr);
  Node *found = find_args(c, op, s, args, nargs, value, attr, h);
  if (found) return found;
  if (c->nodes.len >= c->max_nodes)
    diag_error(c, c->cur_loc, "the model needs more than %d graph nodes (the limit)", c->max_nodes);
  if ((uint32_t)c->nodes.len * 2 >= c->hcap) rehash(c);
  Node *n = arena_alloc(&c->arena, sizeof *n);
  n->id = c->nodes.len;
  n->op = op;
  n->shape = s;
  /* at least two slots, so args[1] of a one-argument op reads NULL */
  n->args = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(nargs > 2 ? nargs : 2));
  memcpy(n->args, args, sizeof(Node *) * (size_t)nargs);
  n->nargs = nargs;
  n->value = value;
  n->attr = attr;
  n->loc = c->cur_loc;
  n->call = c->building_backward ? NULL : c->cur_call;
  n->is_backward = c->building_backward;
  n->hash = h;
  if (op == OP_PARAM)
    n->needs_grad = 1;
  else if (!op_blocks_gradient(op))
    for (int k = 0; k < nargs; k++)
      n->needs_grad |= args[k] && args[k]->needs_grad;
  uint32_t k = h & (c->hcap - 1);
  n->hnext = c->htab[k];
  c->htab[k] = n;
  vec_push(&c->arena, &c->nodes, n);
  return n;
}

/* The one- and two-argument forms most ops use. */
static int pack_args(Node *a, Node *b, Node **args) {
  args[0] = a;
  args[1] = b;
  return b ? 2 : a ? 1 : 0;
}

Node *ir_find(Ctx *c, Op op, Shape s, Node *a, Node *b, double value, Attr attr) {
  Node *args[2];
  int nargs = pack_args(a, b, args);
  order_args(op, args, nargs);
  return find_args(c, op, s, args, nargs, value, attr, node_hash(op, s, args, nargs, value, attr));
}

Node *ir_make(Ctx *c, Op op, Shape s, Node *a, Node *b, double value, Attr attr) {
  Node *args[2];
  int nargs = pack_args(a, b, args);
  return ir_make_args(c, op, s, args, nargs, value, attr);
}

static Node *build(Ctx *c, Op op, Shape s, Node *a, Node *b, double value, Attr attr) {
  if (!c->no_simplify) {
    Node *r = simplify(c, op, s, a, b, value, attr);
    if (r) return r;
  }
  return ir_make(c, op, s, a, b, value, attr);
}

int ir_is_const(const Node *n, double v) { return n->op == OP_CONST && n->value == v; }

Node *ir_const(Ctx *c, double v, Shape s) {
  if (v == 0) v = 0; /* one zero: -0.0 and 0.0 hash alike */
  return ir_make(c, OP_CONST, s, NULL, NULL, v, NO_ATTR);
}

Node *ir_leaf(Ctx *c, Op op, int slot, Shape s) { return ir_make(c, op, s, NULL, NULL, 0, (Attr){.slot = slot}); }

Node *ir_unary(Ctx *c, Op op, Node *a) { return build(c, op, a->shape, a, NULL, 0, NO_ATTR); }

Node *ir_powc(Ctx *c, Node *a, double e) { return build(c, OP_POWC, a->shape, a, NULL, e, NO_ATTR); }

Node *ir_unary_const(Ctx *c, Op op, Node *a, double v) { return build(c, op, a->shape, a, NULL, v, NO_ATTR); }

Node *ir_dropout(Ctx *c, Node *x, double p, int64_t site) {
  return build(c, OP_DROPOUT, x->shape, x, NULL, p, (Attr){.slot = site});
}

Node *ir_binary(Ctx *c, Op op, Node *a, Node *b) {
  Shape s;
  if (!shape_broadcast(a->shape, b->shape, &s))
    diag_error(c, c->cur_loc, "internal error: %s of %s and %s", op_name(op), shape_str(c, a->shape),
               shape_str(c, b->shape));
  return build(c, op, s, a, b, 0, NO_ATTR);
}

Node *ir_reduce(Ctx *c, Op op, Node *a) {
  Shape s = shape_scalar();
  if ((op == OP_LSE || op == OP_MAXROW || op == OP_MINROW) && a->shape.rank >= 2)
    s = shape_drop_axes(a->shape, 1u << (a->shape.rank - 1)); /* one per row of the last axis */
  return build(c, op, s, a, NULL, 0, NO_ATTR);
}

Node *ir_onehot(Ctx *c, Op op, Node *x, Node *g) { return build(c, op, x->shape, x, g, 0, NO_ATTR); }

/* Axes of size 1 are left out of a mask: summing or repeating along them
 * moves no element. */
static unsigned real_axes(Shape s, unsigned mask) {
  for (int k = 0; k < s.rank; k++)
    if (s.dim[k] == 1) mask &= ~(1u << k);
  return mask & ((1u << s.rank) - 1);
}

Node *ir_sum_axes(Ctx *c, Node *a, unsigned axes, Shape to) {
  axes = real_axes(a->shape, axes);
  if (!axes) return ir_reshape(c, a, to);
  if (axes == real_axes(a->shape, ~0u)) return ir_reshape(c, ir_reduce(c, OP_SUM, a), to);
  return build(c, OP_SUMAX, to, a, NULL, 0, (Attr){.axes = axes});
}

Node *ir_sumax(Ctx *c, Node *a, int axis) {
  return ir_sum_axes(c, a, 1u << axis, shape_drop_axes(a->shape, 1u << axis));
}

Node *ir_bcast(Ctx *c, Node *a, Shape to, unsigned axes) {
  if (shape_eq(a->shape, to)) return a;
  if (a->shape.rank == 0) axes = ~0u;
  axes = real_axes(to, axes);
  if (!axes) return ir_reshape(c, a, to);
  return build(c, OP_BCAST, to, a, NULL, 0, (Attr){.axes = axes});
}

Node *ir_reshape(Ctx *c, Node *a, Shape to) {
  if (shape_eq(a->shape, to)) return a;
  if (a->op == OP_CONST) return ir_const(c, a->value, to);
  if (a->shape.rank == 0) return build(c, OP_BCAST, to, a, NULL, 0, (Attr){.axes = real_axes(to, ~0u)});
  if (a->op == OP_INDEX) return ir_index(c, a->args[0], a->attr.offset, to); /* a view of the same base */
  return ir_index(c, a, 0, to);
}

Node *ir_gather(Ctx *c, Node *x, int64_t offset, const int64_t *stride, Shape out) {
  /* a block that is contiguous in memory is a view: the result's own
     row-major strides, on every axis longer than 1 */
  int64_t own[BPC_MAX_RANK];
  shape_strides(out, own);
  int contiguous = 1;
  for (int k = 0; k < out.rank; k++)
    contiguous &= out.dim[k] == 1 || stride[k] == own[k];
  if (contiguous) return offset == 0 && shape_eq(out, x->shape) ? x : ir_index(c, x, offset, out);
  Attr at = {.offset = offset};
  for (int k = 0; k < out.rank; k++)
    at.stride[k] = out.dim[k] == 1 ? 0 : stride[k]; /* one identity per gather */
  return build(c, OP_GATHER, out, x, NULL, 0, at);
}

Node *ir_slice(Ctx *c, Node *x, const int64_t *start, const int64_t *step, Shape out) {
  int64_t own[BPC_MAX_RANK], stride[BPC_MAX_RANK], offset = 0;
  shape_strides(x->shape, own);
  for (int k = 0; k < x->shape.rank; k++) {
    offset += start[k] * own[k];
    stride[k] = step[k] * own[k];
  }
  return ir_gather(c, x, offset, stride, out);
}

Node *ir_permute(Ctx *c, Node *x, const int *perm) {
  if (x->shape.rank == 2 && perm[0] == 1) return ir_transpose(c, x); /* folds into products */
  int64_t own[BPC_MAX_RANK], stride[BPC_MAX_RANK];
  Shape out = {x->shape.rank, {0}};
  shape_strides(x->shape, own);
  for (int k = 0; k < x->shape.rank; k++) {
    out.dim[k] = x->shape.dim[perm[k]];
    stride[k] = own[perm[k]];
  }
  return ir_gather(c, x, 0, stride, out);
}

Node *ir_concat(Ctx *c, Node **args, int nargs, int axis) {
  if (nargs == 1) return args[0];
  Shape s = args[0]->shape;
  for (int j = 1; j < nargs; j++)
    s.dim[axis] += args[j]->shape.dim[axis];
  Node **copy = arena_alloc(&c->arena, sizeof(Node *) * (size_t)nargs); /* the caller's array is its own */
  memcpy(copy, args, sizeof(Node *) * (size_t)nargs);
  return ir_make_args(c, OP_CONCAT, s, copy, nargs, 0, (Attr){.axes = 1 << axis});
}

Node *ir_spread(Ctx *c, Node *g, const Attr *gather, Shape full) {
  Attr a = {.offset = gather->offset};
  memcpy(a.stride, gather->stride, sizeof a.stride);
  return build(c, OP_SPREAD, full, g, NULL, 0, a);
}

Node *ir_transpose(Ctx *c, Node *a) {
  return build(c, OP_TRANSPOSE, shape_mat(a->shape.dim[1], a->shape.dim[0]), a, NULL, 0, NO_ATTR);
}

Node *ir_index(Ctx *c, Node *a, int64_t offset, Shape s) {
  if (offset == 0 && shape_eq(s, a->shape)) return a; /* all of it */
  return build(c, OP_INDEX, s, a, NULL, 0, (Attr){.offset = offset});
}

Node *ir_scatter(Ctx *c, Node *g, int64_t offset, Shape full) {
  /* g fills all of it (the adjoint of a reshape or flatten): the same
     elements under the other shape, a view, not a cleared copy */
  if (shape_numel(g->shape) == shape_numel(full)) return ir_reshape(c, g, full);
  return build(c, OP_SCATTER, full, g, NULL, 0, (Attr){.offset = offset});
}

/* Shape of a @ b given transpose flags; the operands' own shapes are
 * stored, the flags say how to read them. */
static Shape eff(Shape s, int transposed) {
  return (s.rank == 2 && transposed) ? shape_mat(s.dim[1], s.dim[0]) : s;
}

Node *ir_matmul(Ctx *c, Node *a, Node *b, int flags) {
  Shape sa = eff(a->shape, flags & MM_TA), sb = eff(b->shape, flags & MM_TB), s;
  if (sa.rank == 2 && sb.rank == 2)
    s = shape_mat(sa.dim[0], sb.dim[1]);
  else if (sa.rank == 2)
    s = shape_vec(sa.dim[0]);
  else
    s = shape_vec(sb.dim[1]);
  return build(c, OP_MATMUL, s, a, b, 0, (Attr){.mm = flags});
}

Node *ir_outer(Ctx *c, Node *a, Node *b) {
  return build(c, OP_OUTER, shape_mat(a->shape.dim[0], b->shape.dim[0]), a, b, 0, NO_ATTR);
}

Node *ir_dot(Ctx *c, Node *a, Node *b) { return build(c, OP_DOT, shape_scalar(), a, b, 0, NO_ATTR); }

Node *ir_unbroadcast(Ctx *c, Node *a, Shape to) {
  if (shape_eq(a->shape, to)) return a;
  if (to.rank == 0) return ir_reduce(c, OP_SUM, a);
  /* summed over the axes along which `to` was stretched */
  unsigned axes = shape_stretched_axes(to, a->shape);
  return ir_sum_axes(c, a, axes, to);
}

/* ---- --emit ir ------------------------------------------------------------ */

static void print_ref(Buf *out, const Node *n) {
  if (n->op == OP_CONST && n->shape.rank == 0)
    buf_printf(out, "%.17g", n->value);
  else
    buf_printf(out, "%%%d", n->id);
}

static void print_node(Ctx *c, Buf *out, const Node *n) {
  buf_printf(out, "  %%%d = %s", n->id, op_name(n->op));
  switch (n->op) {
  case OP_CONST: buf_printf(out, " %.17g", n->value); break;
  case OP_PARAM: buf_printf(out, " %s", ((Decl *)c->params.items[n->attr.slot])->name); break;
  case OP_INPUT: buf_printf(out, " %s", ((Decl *)c->inputs.items[n->attr.slot])->name); break;
  default:
    for (int i = 0; i < n->nargs; i++) {
      buf_puts(out, i ? ", " : " ");
      print_ref(out, n->args[i]);
    }
    ir_print_options(n, out);
  }
  buf_printf(out, " : %s", shape_str(c, n->shape));
  if (n->name || n->loc.line) buf_puts(out, "  #");
  if (n->name) buf_printf(out, " %s", n->name);
  if (n->loc.line) buf_printf(out, " line %d", n->loc.line);
  if (n->is_backward) buf_puts(out, " (backward)");
  buf_puts(out, "\n");
}

/* ", axis=1", ", ta": what a node's constant and attributes add to its
 * arguments, as --emit ir and --emit loops write it. */
void ir_print_options(const Node *n, Buf *out) {
  if (n->op == OP_POWC) buf_printf(out, ", %.17g", n->value);
  if (n->op == OP_DROPOUT) buf_printf(out, ", p=%.17g, site=%lld", n->value, (long long)n->attr.slot);
  if (n->op == OP_SUMAX || n->op == OP_BCAST) { /* the axes summed over, or repeated along */
    const char *sep = n->op == OP_SUMAX ? ", axis=" : ", along=";
    for (int k = 0; k < BPC_MAX_RANK; k++)
      if (n->attr.axes & (1 << k)) {
        buf_printf(out, "%s%d", sep, k);
        sep = ",";
      }
  }
  if (n->op == OP_INDEX || n->op == OP_SCATTER || n->op == OP_GATHER || n->op == OP_SPREAD)
    buf_printf(out, ", at=%lld", (long long)n->attr.offset);
  if (n->op == OP_GATHER || n->op == OP_SPREAD) {
    const Node *part = n->op == OP_GATHER ? n : n->args[0];
    for (int k = 0; k < part->shape.rank; k++)
      buf_printf(out, "%s%lld", k ? "," : ", strides=", (long long)n->attr.stride[k]);
  }
  if (n->op == OP_MATMUL && n->attr.mm)
    buf_printf(out, ",%s%s", n->attr.mm & MM_TA ? " ta" : "", n->attr.mm & MM_TB ? " tb" : "");
}

const char *node_caption(Ctx *c, const Node *n) {
  if (op_is_window(n->op)) return window_caption(c, n);
  if (n->op == OP_DROPOUT) return arena_printf(&c->arena, "p = %g, in training only", n->value);
  return NULL;
}

void ir_print(Ctx *c, Buf *out) {
  int nroots;
  Node **roots = model_roots(c, &nroots);
  Schedule sch;
  schedule_function(c, roots, nroots, c->grad_terms, 0, &sch);
  buf_printf(out, "# bpc IR: %d nodes\n", sch.order.len);
  for (int i = 0; i < c->params.len; i++) {
    Decl *d = c->params.items[i];
    buf_printf(out, "param %s %s at %lld\n", d->name, shape_str(c, d->shape), (long long)d->offset);
  }
  for (int i = 0; i < c->inputs.len; i++) {
    Decl *d = c->inputs.items[i];
    buf_printf(out, "input %s %s at %lld\n", d->name, shape_str(c, d->shape), (long long)d->offset);
  }
  buf_puts(out, "graph:\n");
  for (int i = 0; i < sch.order.len; i++) {
    const Node *n = sch.order.items[i];
    if (n->op == OP_CONST && n->shape.rank == 0) continue; /* printed inline */
    print_node(c, out, n);
  }
  buf_printf(out, "loss = ");
  print_ref(out, c->loss);
  buf_puts(out, "\n");
  for (int i = 0; i < c->outputs.len; i++) {
    Decl *d = c->outputs.items[i];
    buf_printf(out, "output %s = ", d->name);
    print_ref(out, d->node);
    buf_puts(out, "\n");
  }
  for (int i = 0; i < c->params.len; i++) {
    Decl *d = c->params.items[i];
    buf_printf(out, "grad %s =", d->name);
    if (!c->grad_terms[i]) buf_puts(out, " 0");
    for (GradTerm *t = c->grad_terms[i]; t; t = t->next) {
      buf_puts(out, t == c->grad_terms[i] ? " " : " + ");
      print_ref(out, t->node);
    }
    buf_puts(out, "\n");
  }
}
