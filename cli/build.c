/* build.c — where the compiler's work is handed to the runtime: a .bp file
 * is compiled (compiler/), emitted as C in the JIT's form and loaded
 * (runtime/jit.c), with a ModelInfo describing its tensors made from the
 * compiler's declarations. The runtime includes nothing of the compiler;
 * this file is why it need not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_compile(Ctx *c, const char *path, const CompileOptions *o) {
  size_t len = 0;
  const char *why = NULL;
  char *text = read_source_file(path, &len, &why);
  if (!text) {
    fprintf(stderr, "bpc: cannot read %s: %s\n", path, why);
    return 1;
  }
  ctx_init(c, path, text, len);
  c->owned_text = text;
  if (bpc_compile(c, o)) {
    fputs(c->err.data, stderr);
    ctx_free(c);
    return 1;
  }
  return 0;
}

void cli_compile_or_exit(Ctx *c, const char *path, const CompileOptions *o) {
  if (cli_compile(c, path, o)) exit(1);
}

/* The runtime's view of one list of declarations (copied: the model
 * outlives the Ctx when only its functions are kept). */
static TensorList tensor_list(Arena *a, const PtrVec *decls, int64_t numel) {
  TensorList l = {arena_alloc(a, sizeof(TensorInfo) * (size_t)(decls->len + 1)), decls->len, numel};
  for (int i = 0; i < decls->len; i++) {
    const Decl *d = decls->items[i];
    TensorInfo *t = &l.items[i];
    t->name = arena_strndup(a, d->name, strlen(d->name));
    t->rank = d->shape.rank;
    memcpy(t->dim, d->shape.dim, sizeof t->dim);
    t->numel = shape_numel(d->shape);
    t->offset = d->offset;
  }
  return l;
}

static void model_info(const Ctx *c, const char *unbatched_why, ModelInfo *mi) {
  memset(mi, 0, sizeof *mi);
  arena_init(&mi->arena);
  mi->name = arena_strndup(&mi->arena, c->src.name, strlen(c->src.name));
  mi->params = tensor_list(&mi->arena, &c->params, c->num_params);
  mi->inputs = tensor_list(&mi->arena, &c->inputs, c->num_inputs);
  mi->outputs = tensor_list(&mi->arena, &c->outputs, c->num_outputs);
  for (int i = 0; i < c->outputs.len; i++) /* an output's node is its value */
    mi->outputs.items[i].probability = ((const Decl *)c->outputs.items[i])->node->op == OP_SIGMOID;
  if (unbatched_why) mi->unbatched_why = arena_strndup(&mi->arena, unbatched_why, strlen(unbatched_why));
}

void cli_model_info(const Ctx *c, ModelInfo *mi) { model_info(c, NULL, mi); }

/* --jit auto: the system C compiler where the step's elementwise loops are
 * large enough for its vectorising to pay for its ~0.25 s (once: the
 * shared object is cached): a model with convolutions or pooling (biases,
 * relu and their gradients over every pixel of every channel), or one
 * compiled for a batch whose forward pass is at least AUTO_CC_FLOPS (the
 * Fashion MLP at batch 8 and up: 1.4x the examples/s of tcc at batch 64,
 * bench/RESULTS.md). tcc, which starts in milliseconds, for the rest: the
 * lecture notes' graphs and one-example steps. */
enum { AUTO_CC_FLOPS = 1 << 20 };
static int wants_cc(Ctx *c, int batch) {
  for (int i = 0; i < c->nodes.len; i++)
    if (op_is_window(((const Node *)c->nodes.items[i])->op)) return 1;
  if (batch < 2) return 0;
  Stats st;
  compute_stats(c, &st);
  return st.fwd_flops * batch >= AUTO_CC_FLOPS;
}

/* Emits the compiled c in the JIT's form, for tcc or for the system C
 * compiler (cc), and loads it; NULL with *err set when it cannot. */
static JitModel *emit_and_load(Ctx *c, const JitOptions *jo, char **err) {
  const char *unbatched_why = NULL;
  Buf text = {0}, header = {0};
  EmitOptions eo = {.prefix = JIT_PREFIX,
                    .use_float = jo->use_float,
                    .self_contained = 1,
                    .jit_kernels = 1,
                    .batch = jo->batch,
                    .part_nodes = jo->use_cc ? 0 : -1, /* long functions in parts only for gcc */
                    .batch_why = &unbatched_why,
                    .team = jo->team};
  emit_c(c, &eo, &text, &header);
  ModelInfo info;
  model_info(c, unbatched_why, &info);
  JitModel *m = jit_load_c(text.data, text.len, &info, jo, err);
  buf_free(&text);
  buf_free(&header);
  return m;
}

/* Compiles and loads with the compiler asked for. --jit auto that chose cc
 * falls back to tcc when cc cannot build the model (no compiler installed,
 * no writable cache): auto is a choice of speed, never a new way to fail. */
static JitModel *load_compiled(Ctx *c, const JitOptions *asked, double t0) {
  JitOptions jo = asked ? *asked : (JitOptions){0};
  int fallback = jo.use_cc < 0;
  if (jo.team_batch > 1 && team_supported(c)) { /* threads share each step: one batch for all of them */
    jo.batch = jo.team_batch;
    jo.team = 1;
  }
  if (jo.use_cc < 0) jo.use_cc = wants_cc(c, jo.batch);
  char *err = NULL;
  JitModel *m = emit_and_load(c, &jo, &err);
  if (!m && fallback && jo.use_cc) {
    free(err);
    err = NULL;
    jo.use_cc = 0;
    m = emit_and_load(c, &jo, &err);
  }
  if (!m) {
    /* cc can fail for reasons of the machine (none installed, no cache); tcc only on bpc's own C */
    fprintf(stderr, "bpc: %s%s\n", jo.use_cc ? "" : "internal error: ", err);
    free(err);
    return NULL;
  }
  m->compile_seconds = now_seconds() - t0;
  return m;
}

int load_model(LoadedModel *lm, const char *path, const CompileOptions *co, const JitOptions *jo) {
  memset(lm, 0, sizeof *lm);
  double t0 = now_seconds();
  if (cli_compile(&lm->ctx, path, co)) return 1;
  lm->jit = load_compiled(&lm->ctx, jo, t0);
  if (!lm->jit) {
    ctx_free(&lm->ctx);
    return 1;
  }
  return 0;
}

void unload_model(LoadedModel *lm) {
  jit_free(lm->jit);
  ctx_free(&lm->ctx);
  memset(lm, 0, sizeof *lm);
}

JitModel *jit_load(const char *path, const CompileOptions *co, const JitOptions *jo) {
  LoadedModel lm;
  if (load_model(&lm, path, co, jo)) return NULL;
  JitModel *m = lm.jit; /* self-contained: its ModelInfo is its own */
  lm.jit = NULL;
  unload_model(&lm);
  return m;
}
