/* driver.c — the whole compiler behind one call: parse, lower, differentiate.
 * User errors come back here by longjmp with the message in c->err. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bpc.h"

void ctx_init(Ctx *c, const char *filename, const char *text, size_t len) {
  memset(c, 0, sizeof *c);
  arena_init(&c->arena);
  /* a copy: messages name the file long after the caller's string is gone */
  c->src.name = arena_strndup(&c->arena, filename, strlen(filename));
  c->src.text = text;
  c->src.len = len;
  c->max_nodes = BPC_MAX_NODES;
}

void ctx_free(Ctx *c) {
  free(c->owned_text);
  arena_free(&c->arena);
  free(c->htab);
  buf_free(&c->err);
  memset(c, 0, sizeof *c);
}

static void add_defines(Ctx *c, const CompileOptions *o) {
  for (int i = 0; o && i < o->ndefines; i++) {
    DefineOpt *d = &o->defines[i];
    if (d->value <= 0 || d->value > BPC_MAX_DIM)
      diag_error(c, (Loc){0, 0}, "-D %s=%lld: a dimension must be between 1 and %lld", d->name,
                 (long long)d->value, (long long)BPC_MAX_DIM);
    DimDef *def = arena_alloc(&c->arena, sizeof *def);
    def->name = d->name;
    def->value = d->value;
    def->overridden = 1;
    vec_push(&c->arena, &c->dims, def);
  }
}

void perturb_gradient(Ctx *c, GradTerm **terms, const char *name) {
  for (int i = 0; i < c->params.len; i++) {
    Decl *d = c->params.items[i];
    GradTerm *t = terms[i];
    if (strcmp(d->name, name) || !t) continue;
    c->cur_loc = d->loc;
    t->node = ir_binary(c, OP_MUL, t->node, ir_const(c, 1.001, shape_scalar()));
    return;
  }
  diag_error(c, (Loc){0, 0}, "--test-perturb-gradient %s: no parameter of that name reaches the loss", name);
}

/* The stages, in a frame of their own: bpc_compile's frame holds nothing
 * but the setjmp, so no local of it can be stale when an error jumps back
 * (C leaves such locals indeterminate; a sanitizer's bookkeeping was). */
__attribute__((noinline)) static void run_stages(Ctx *c, const CompileOptions *o) {
  if (memchr(c->src.text, 0, c->src.len)) {
    const char *nul = memchr(c->src.text, 0, c->src.len);
    int line = 1, col = 1;
    for (const char *p = c->src.text; p < nul; p++, col++)
      if (*p == '\n') line++, col = 0;
    diag_error(c, (Loc){line, col}, "unexpected NUL byte (is this a text file?)");
  }
  add_defines(c, o);
  c->record_locals = o && o->record_locals;
  parse_program(c);
  lower_program(c);
  c->nforward = c->nodes.len;
  c->grad_terms = autodiff(c, c->loss, &c->adjoint, &c->edges);
  c->input_grads = autodiff_inputs(c, c->loss); /* grad --wrt INPUT, m_backward_inputs */
  if (o && o->perturb_gradient) {
    c->perturb_gradient = o->perturb_gradient; /* the batched gradient gets it too (batch.c) */
    perturb_gradient(c, c->grad_terms, o->perturb_gradient);
  }
}

int bpc_compile(Ctx *c, const CompileOptions *o) {
  if (setjmp(c->on_error)) return 1;
  run_stages(c, o);
  return 0;
}

char *read_source_file(const char *path, size_t *len, const char **why) {
  char *data = read_whole_file(path, BPC_MAX_SOURCE_BYTES, len, why);
  if (!data && !strcmp(*why, "too large")) *why = "file is larger than the 64 MiB limit for models";
  return data;
}
