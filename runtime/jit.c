/* jit.c — compiles a model in memory with TinyCC's libtcc and calls it.
 * tcc compiles the straight-line code in milliseconds; the heavy tensor
 * work goes to kernels.c, compiled into bpc at -O3. */
#include <libtcc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "runtime.h"

typedef struct TccError {
  char *msg;
} TccError;

static void on_tcc_error(void *opaque, const char *msg) {
  TccError *e = opaque;
  if (!e->msg)
    e->msg = strdup(msg);
}

/* "<string>:12: error: ..." -> the message followed by line 12 itself. */
static char *with_generated_line(const char *msg, const char *csrc) {
  const char *colon = strchr(msg, ':');
  long line = colon ? strtol(colon + 1, NULL, 10) : 0;
  const char *p = csrc;
  for (long l = 1; l < line && p; l++) {
    p = strchr(p, '\n');
    if (p)
      p++;
  }
  if (!p || line <= 0)
    return strdup(msg);
  int len = (int)(strchr(p, '\n') ? strchr(p, '\n') - p : (long)strlen(p));
  return str_printf("%s\n  generated line %ld: %.*s", msg, line, len, p);
}

/* The C library functions generated code calls, bound by address so the
 * JIT needs no libc lookup. */
static const KernelSymbol libm_symbols[] = {
    {"exp", (void *)exp},     {"expf", (void *)expf},   {"log", (void *)log},       {"logf", (void *)logf},
    {"sqrt", (void *)sqrt},   {"sqrtf", (void *)sqrtf}, {"fabs", (void *)fabs},     {"fabsf", (void *)fabsf},
    {"sin", (void *)sin},     {"sinf", (void *)sinf},   {"cos", (void *)cos},       {"cosf", (void *)cosf},
    {"tanh", (void *)tanh},   {"tanhf", (void *)tanhf}, {"log1p", (void *)log1p},   {"log1pf", (void *)log1pf},
    {"pow", (void *)pow},     {"powf", (void *)powf},   {NULL, NULL},
};

void *jit_compile_c(const char *csrc, char **err) {
  TCCState *s = tcc_new();
  TccError e = {0};
  if (!s) {
    *err = strdup("cannot create a TinyCC compiler state");
    return NULL;
  }
  tcc_set_error_func(s, &e, on_tcc_error);
  tcc_set_options(s, "-nostdlib");
  tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
  for (const KernelSymbol *k = bpk_symbols; k->name; k++)
    tcc_add_symbol(s, k->name, k->fn);
  for (const KernelSymbol *k = libm_symbols; k->name; k++)
    tcc_add_symbol(s, k->name, k->fn);
  if (tcc_compile_string(s, csrc) == -1 || tcc_relocate(s, TCC_RELOCATE_AUTO) < 0) {
    *err = e.msg ? with_generated_line(e.msg, csrc) : strdup("tcc failed without a message");
    free(e.msg);
    tcc_delete(s);
    return NULL;
  }
  free(e.msg);
  return s;
}

void *jit_symbol(void *tcc, const char *name) { return tcc_get_symbol(tcc, name); }

JitModel *jit_load(const char *path, const CompileOptions *co, int use_float, int batch) {
  JitModel *m = calloc(1, sizeof *m);
  size_t len = 0;
  const char *why = NULL;
  m->source = read_source_file(path, &len, &why);
  if (!m->source) {
    fprintf(stderr, "bpc: cannot read %s: %s\n", path, why);
    free(m);
    return NULL;
  }
  double t0 = now_seconds();
  ctx_init(&m->ctx, path, m->source, len);
  if (bpc_compile(&m->ctx, co)) {
    fputs(m->ctx.err.data, stderr);
    jit_free(m);
    return NULL;
  }
  Buf text = {0}, header = {0};
  EmitOptions eo = {.prefix = "m", .use_float = use_float, .self_contained = 1, .jit_kernels = 1, .batch = batch};
  emit_c(&m->ctx, &eo, &text, &header);
  char *err = NULL;
  m->tcc = jit_compile_c(text.data, &err);
  buf_free(&text);
  buf_free(&header);
  if (!m->tcc) {
    fprintf(stderr, "bpc: internal error: the generated C did not compile:\n%s\n", err);
    free(err);
    jit_free(m);
    return NULL;
  }
  m->use_float = use_float;
  m->elem = use_float ? sizeof(float) : sizeof(double);
  m->nparams = m->ctx.num_params;
  m->ninputs = m->ctx.num_inputs;
  m->noutputs = m->ctx.num_outputs;
  size_t (*ws_size)(void) = (size_t(*)(void))jit_symbol(m->tcc, "m_workspace_size");
  *(void **)&m->init = jit_symbol(m->tcc, "m_init");
  m->train_batch = jit_symbol(m->tcc, "m_train_batch");
  m->eval_batch = jit_symbol(m->tcc, "m_eval_batch");
  m->predict_ws = jit_symbol(m->tcc, "m_predict_ws");
  if (!ws_size || !m->init || !m->train_batch || !m->eval_batch || !m->predict_ws) {
    fprintf(stderr, "bpc: internal error: the generated C lacks its entry points\n");
    jit_free(m);
    return NULL;
  }
  m->ws_elems = ws_size();
  int (*fixed)(void) = (int (*)(void))jit_symbol(m->tcc, "m_fixed_batch");
  m->fixed = fixed ? fixed() : 0;
  m->train_fixed = jit_symbol(m->tcc, "m_train_fixed");
  m->eval_fixed = jit_symbol(m->tcc, "m_eval_fixed");
  if (!m->train_fixed || !m->eval_fixed)
    m->fixed = 0;
  m->compile_seconds = now_seconds() - t0;
  return m;
}

void jit_free(JitModel *m) {
  if (!m)
    return;
  if (m->tcc)
    tcc_delete(m->tcc);
  ctx_free(&m->ctx);
  free(m->source);
  free(m);
}

typedef double (*TrainD)(const double *, const double *, size_t, double *, double *, double *);
typedef float (*TrainF)(const float *, const float *, size_t, float *, float *, float *);
typedef double (*EvalD)(const double *, const double *, size_t, double *, double *);
typedef float (*EvalF)(const float *, const float *, size_t, float *, float *);

double jit_train_batch(JitModel *m, const void *params, const void *inputs, size_t n, void *grad, void *outputs,
                       void *ws) {
  if (m->use_float)
    return ((TrainF)m->train_batch)(params, inputs, n, grad, outputs, ws);
  return ((TrainD)m->train_batch)(params, inputs, n, grad, outputs, ws);
}

double jit_eval_batch(JitModel *m, const void *params, const void *inputs, size_t n, void *outputs, void *ws) {
  if (m->use_float)
    return ((EvalF)m->eval_batch)(params, inputs, n, outputs, ws);
  return ((EvalD)m->eval_batch)(params, inputs, n, outputs, ws);
}

typedef double (*FixedTrainD)(const double *, const double *, double *, double *, double *);
typedef float (*FixedTrainF)(const float *, const float *, float *, float *, float *);
typedef double (*FixedEvalD)(const double *, const double *, double *, double *);
typedef float (*FixedEvalF)(const float *, const float *, float *, float *);

double jit_train_fixed(JitModel *m, const void *params, const void *inputs, void *grad, void *outputs, void *ws) {
  if (m->use_float)
    return ((FixedTrainF)m->train_fixed)(params, inputs, grad, outputs, ws);
  return ((FixedTrainD)m->train_fixed)(params, inputs, grad, outputs, ws);
}

double jit_eval_fixed(JitModel *m, const void *params, const void *inputs, void *outputs, void *ws) {
  if (m->use_float)
    return ((FixedEvalF)m->eval_fixed)(params, inputs, outputs, ws);
  return ((FixedEvalD)m->eval_fixed)(params, inputs, outputs, ws);
}

void jit_gather(JitModel *m, const void *examples, void *out) {
  size_t B = (size_t)m->fixed, width = (size_t)m->ninputs, es = m->elem;
  for (int s = 0; s < m->ctx.inputs.len; s++) {
    Decl *d = m->ctx.inputs.items[s];
    size_t off = (size_t)d->offset, k = (size_t)shape_numel(d->shape);
    for (size_t e = 0; e < B; e++)
      memcpy((char *)out + (B * off + e * k) * es, (const char *)examples + (e * width + off) * es, k * es);
  }
}
