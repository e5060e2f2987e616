/* emit_dot.c — the forward and backward graph for Graphviz (--emit dot):
 * parameters and inputs on the left, the loss on the right, backward nodes
 * in blue, and each parameter's gradient as its own node. */
#include "bpc.h"

static void node_label(Ctx *c, Buf *out, const Node *n) {
  switch (n->op) {
  case OP_PARAM: buf_printf(out, "%s\\nparam %s", n->name, shape_str(c, n->shape)); return;
  case OP_INPUT: buf_printf(out, "%s\\ninput %s", n->name, shape_str(c, n->shape)); return;
  case OP_CONST: buf_printf(out, "%g", n->value); return;
  default: break;
  }
  if (n->name && !n->is_backward)
    buf_printf(out, "%s = %s", n->name, op_name(n->op));
  else
    buf_puts(out, op_name(n->op));
  if (n->op == OP_POWC) buf_printf(out, " %g", n->value);
  const char *caption = node_caption(c, n);
  if (caption) buf_printf(out, "\\n%s", caption);
  if (n->shape.rank) buf_printf(out, "\\n%s", shape_str(c, n->shape));
}

void dot_begin(Ctx *c, const Schedule *s, int fontsize, Buf *out) {
  buf_printf(out,
             "digraph \"%s\" {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=%d];\n"
             "  edge [fontname=\"Helvetica\", fontsize=10];\n",
             c->src.name, fontsize);
  buf_puts(out, "  { rank=source;");
  for (int i = 0; i < s->order.len; i++) {
    Node *n = s->order.items[i];
    if (n->op == OP_PARAM || n->op == OP_INPUT) buf_printf(out, " n%d;", n->id);
  }
  buf_puts(out, " }\n");
}

void dot_calls(Ctx *c, const Schedule *s, Buf *out) {
  const char **seen = arena_alloc(&c->arena, sizeof(char *) * (size_t)(s->order.len + 1));
  int nseen = 0;
  for (int i = 0; i < s->order.len; i++) {
    const Node *n = s->order.items[i];
    if (!n->call) continue;
    int k = 0;
    while (k < nseen && seen[k] != n->call) /* one call, one string: compared by address */
      k++;
    if (k < nseen) continue;
    seen[nseen++] = n->call;
    buf_printf(out, "  subgraph cluster_%d {\n    label=\"%s\"; style=rounded; color=\"#888888\";\n   ", k, n->call);
    for (int j = i; j < s->order.len; j++) {
      const Node *m = s->order.items[j];
      if (m->call == n->call) buf_printf(out, " n%d;", m->id);
    }
    buf_puts(out, "\n  }\n");
  }
}

void emit_dot(Ctx *c, Buf *out) {
  int nroots;
  Node **roots = model_roots(c, &nroots);
  Schedule s;
  schedule_function(c, roots, nroots, c->grad_terms, 0, &s);
  dot_begin(c, &s, 11, out);
  for (int i = 0; i < s.order.len; i++) {
    Node *n = s.order.items[i];
    buf_printf(out, "  n%d [label=\"", n->id);
    node_label(c, out, n);
    const char *style = n->op == OP_PARAM   ? "shape=box, style=filled, fillcolor=\"#fde9c9\""
                        : n->op == OP_INPUT ? "shape=box, style=filled, fillcolor=\"#e3eefc\""
                        : n->op == OP_CONST ? "shape=plaintext"
                        : n == c->loss      ? "shape=doublecircle"
                        : n->is_backward    ? "shape=ellipse, color=\"#1f5fbf\", fontcolor=\"#1f5fbf\""
                                            : "shape=ellipse";
    buf_printf(out, "\", %s];\n", style);
    for (int k = 0; k < n->nargs; k++)
      buf_printf(out, "  n%d -> n%d%s;\n", n->args[k]->id, n->id,
                 n->is_backward ? " [color=\"#1f5fbf\"]" : "");
  }
  for (int p = 0; p < c->params.len; p++) {
    Decl *d = c->params.items[p];
    buf_printf(out, "  g%d [label=\"dloss/d%s\", shape=box, color=\"#1f5fbf\", fontcolor=\"#1f5fbf\"];\n", p,
               d->name);
    for (GradTerm *t = c->grad_terms[p]; t; t = t->next)
      buf_printf(out, "  n%d -> g%d [color=\"#1f5fbf\"];\n", t->node->id, p);
  }
  dot_calls(c, &s, out);
  buf_puts(out, "}\n");
}
