/* driver.c — the C side of the differential test (tests/difftest/README.md).
 *
 * For one .bp file and given values of its parameters and of a few
 * examples' inputs, prints the loss, every gradient element and every
 * output as each form of bpc's code computes them:
 *
 *   interp                 the IR interpreter (eval.c), as `bpc grad` uses it
 *   file-{double,float}-{locals,slots,parts}
 *                          the emitted C file form (EmitOptions: scalars as
 *                          locals, in slots, in slots cut into parts of 3
 *                          nodes), compiled in memory by tcc, or by the
 *                          system C compiler with --cc: m_init, m_forward,
 *                          m_backward and m_predict per example,
 *                          m_backward_batch (the mean) over all examples
 *   jit-{double,float}     the training functions `bpc train` uses
 *                          (jit_load with batch = the number of examples,
 *                          tcc, or the system C compiler with --jit-cc):
 *                          m_train_batch and m_eval_batch per example and
 *                          over all examples (stored, then accumulated),
 *                          and m_train_fixed / m_eval_fixed after jit_gather
 *                          when the model can be batched
 *
 * Usage: driver [--cc] [--jit-cc] [--perturb PARAM] MODEL.bp VALUES
 * --perturb compiles every form with CompileOptions.perturb_gradient (one
 * gradient contribution of PARAM scaled by 1.001): difftest.py's check
 * that a wrong gradient does not go unnoticed.
 * VALUES is text: a line "params v0 v1 ..." (all NUM_PARAMS values; left
 * out: the model's own initial values), then one line "example v0 v1 ..."
 * per example (NUM_INPUTS numbers each; at least one line, an empty one
 * for a model without inputs).
 *
 * Output, one record per line, numbers as %.17g (floats widened):
 *   sizes NPARAMS NINPUTS NOUTPUTS NEXAMPLES
 *   form NAME                    what follows comes from this form
 *   init P...                    m_init(params, 0)
 *   fwd E LOSS                   forward loss of example E
 *   bwd E LOSS G...              backward loss and gradient of example E
 *   pred E O...                  outputs of example E
 *   batch LOSS G...              mean loss and gradient over all examples
 *   sum LOSS G...                summed loss and gradient over all examples
 *   accsum LOSS G...             the same added onto the gradient of example 0
 *   evalsum LOSS                 summed loss, forward only
 *   nofixed REASON               no fixed-batch functions for this model
 *   fixed LOSS G...              m_train_fixed: summed loss and gradient
 *   fixedacc LOSS G...           called again with acc 1 (twice the gradient)
 *   fixedpred E O...             its outputs of example E
 *   evalfixed LOSS               m_eval_fixed
 *   error MESSAGE                this form failed (the message on one line)
 *   done                         every form ran
 * A compile error of the model itself prints "compile_error MESSAGE" and
 * exits 1; bad usage or unreadable files exit 2. */
#include <dlfcn.h>
#include <libtcc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpc.h"
#include "cli.h"
#include "runtime.h"

typedef struct Data {
  int64_t nparams, ninputs, noutputs;
  int have_params;
  double *params; /* nparams */
  int nex;
  double *inputs; /* nex * ninputs */
} Data;

typedef struct FileForm {
  const char *name;
  int use_float, slots_above, part_nodes;
} FileForm;

static const FileForm file_forms[] = {
    {"file-double-locals", 0, 0, 0}, {"file-double-slots", 0, -1, -1}, {"file-double-parts", 0, -1, 3},
    {"file-float-locals", 1, 0, 0},  {"file-float-slots", 1, -1, -1},  {"file-float-parts", 1, -1, 3},
};
enum { NFILE_FORMS = sizeof file_forms / sizeof file_forms[0] };

/* ---- output ------------------------------------------------------------------- */

/* tag and message on one line (newlines and tabs become spaces) */
static void print_line(const char *tag, const char *msg) {
  printf("%s ", tag);
  for (const char *p = msg ? msg : "(no message)"; *p; p++)
    putchar(*p == '\n' || *p == '\t' || *p == '\r' ? ' ' : *p);
  putchar('\n');
  fflush(stdout);
}

static void print_reals(const void *v, size_t elem, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    printf(" %.17g", real_get(v, elem, (size_t)i));
}

/* "tag [E] LOSS G..." (E left out when e < 0, G when g is NULL) */
static void print_record(const char *tag, int e, double loss, const void *g, size_t elem, int64_t n) {
  if (e >= 0)
    printf("%s %d %.17g", tag, e, loss);
  else
    printf("%s %.17g", tag, loss);
  if (g) print_reals(g, elem, n);
  putchar('\n');
}

static void print_outputs(const char *tag, int e, const void *o, size_t elem, int64_t n) {
  if (n == 0) return;
  printf("%s %d", tag, e);
  print_reals(o, elem, n);
  putchar('\n');
}

/* ---- values --------------------------------------------------------------------- */

static int read_reals(const char *p, double *out, int64_t n) {
  char *end;
  for (int64_t i = 0; i < n; i++) {
    out[i] = strtod(p, &end);
    if (end == p) return 0;
    p = end;
  }
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
    p++;
  return *p == '\0';
}

static int read_values(const char *path, Data *d, char **err) {
  FILE *f = fopen(path, "r");
  if (!f) {
    *err = str_printf("cannot open %s", path);
    return 0;
  }
  char *line = NULL;
  size_t cap = 0;
  int ok = 1, cap_ex = 0;
  while (ok && getline(&line, &cap, f) > 0) {
    if (!strncmp(line, "params", 6)) {
      d->have_params = 1;
      ok = read_reals(line + 6, d->params, d->nparams);
      if (!ok) *err = str_printf("%s: the params line needs %lld numbers", path, (long long)d->nparams);
    } else if (!strncmp(line, "example", 7)) {
      if (d->nex == cap_ex) {
        cap_ex = cap_ex ? 2 * cap_ex : 4;
        d->inputs = realloc(d->inputs, sizeof(double) * (size_t)(cap_ex * d->ninputs + 1));
      }
      ok = read_reals(line + 7, d->inputs + d->nex * d->ninputs, d->ninputs);
      if (!ok) *err = str_printf("%s: an example line needs %lld numbers", path, (long long)d->ninputs);
      d->nex++;
    } else if (line[0] != '\n' && line[0] != '#') {
      ok = 0;
      *err = str_printf("%s: unexpected line: %s", path, line);
    }
  }
  free(line);
  fclose(f);
  if (ok && d->nex == 0) {
    ok = 0;
    *err = str_printf("%s: no example line", path);
  }
  return ok;
}

/* n elements of the given size holding src (one spare, so n may be 0) */
static void *to_reals(const double *src, int64_t n, size_t elem) {
  void *p = calloc((size_t)n + 1, elem);
  for (int64_t i = 0; src && i < n; i++)
    real_set(p, elem, (size_t)i, src[i]);
  return p;
}

static const double *example(const Data *d, int e) { return d->ninputs ? d->inputs + e * d->ninputs : NULL; }

/* ---- the IR interpreter ------------------------------------------------------------ */

static void run_interp(Ctx *c, const Data *d) {
  print_line("form", "interp");
  double *g = calloc((size_t)d->nparams + 1, sizeof(double));
  for (int e = 0; e < d->nex; e++) {
    Values v;
    eval_graph(c, d->params, example(d, e), &v);
    double loss = v.v[c->loss->id][0];
    for (int s = 0; s < c->params.len; s++) {
      Decl *p = c->params.items[s];
      eval_param_grad(c, &v, s, g + p->offset);
    }
    print_record("bwd", e, loss, g, sizeof(double), d->nparams);
    if (d->noutputs) {
      printf("pred %d", e);
      for (int o = 0; o < c->outputs.len; o++) {
        Decl *out = c->outputs.items[o];
        const double *ov = v.v[out->node->id];
        for (int64_t k = 0; k < shape_numel(out->shape); k++)
          printf(" %.17g", ov ? ov[k] : NAN);
      }
      putchar('\n');
    }
    values_free(&v);
  }
  free(g);
}

/* ---- the file form ------------------------------------------------------------------- */

/* The public functions of one compiled file form; ws is NULL unless the
 * model has the workspace forms (then the pointers are the _ws ones). */
typedef struct FileFns {
  int use_float, workspace;
  size_t elem;
  void *init, *forward, *backward, *backward_batch, *predict;
  void *ws;
} FileFns;

typedef void (*InitD)(double *, uint64_t);
typedef void (*InitF)(float *, uint64_t);
typedef double (*FwdD)(const double *, const double *);
typedef float (*FwdF)(const float *, const float *);
typedef double (*FwdWsD)(const double *, const double *, double *);
typedef float (*FwdWsF)(const float *, const float *, float *);
typedef double (*BwdD)(const double *, const double *, double *);
typedef float (*BwdF)(const float *, const float *, float *);
typedef double (*BwdWsD)(const double *, const double *, double *, double *);
typedef float (*BwdWsF)(const float *, const float *, float *, float *);
typedef double (*BatchD)(const double *, const double *, size_t, double *);
typedef float (*BatchF)(const float *, const float *, size_t, float *);
typedef double (*BatchWsD)(const double *, const double *, size_t, double *, double *);
typedef float (*BatchWsF)(const float *, const float *, size_t, float *, float *);
typedef void (*PredD)(const double *, const double *, double *);
typedef void (*PredF)(const float *, const float *, float *);
typedef void (*PredWsD)(const double *, const double *, double *, double *);
typedef void (*PredWsF)(const float *, const float *, float *, float *);

/* Function pointers from data pointers (dlsym and tcc_get_symbol return void *). */
#define FN(type, p) (*(type *)&(p))

static double call_forward(FileFns *f, const void *p, const void *x) {
  if (f->workspace)
    return f->use_float ? FN(FwdWsF, f->forward)(p, x, f->ws) : FN(FwdWsD, f->forward)(p, x, f->ws);
  return f->use_float ? FN(FwdF, f->forward)(p, x) : FN(FwdD, f->forward)(p, x);
}

static double call_backward(FileFns *f, const void *p, const void *x, void *g) {
  if (f->workspace)
    return f->use_float ? FN(BwdWsF, f->backward)(p, x, g, f->ws) : FN(BwdWsD, f->backward)(p, x, g, f->ws);
  return f->use_float ? FN(BwdF, f->backward)(p, x, g) : FN(BwdD, f->backward)(p, x, g);
}

static double call_batch(FileFns *f, const void *p, const void *x, size_t n, void *g) {
  if (f->workspace)
    return f->use_float ? FN(BatchWsF, f->backward_batch)(p, x, n, g, f->ws)
                        : FN(BatchWsD, f->backward_batch)(p, x, n, g, f->ws);
  return f->use_float ? FN(BatchF, f->backward_batch)(p, x, n, g) : FN(BatchD, f->backward_batch)(p, x, n, g);
}

static void call_predict(FileFns *f, const void *p, const void *x, void *o) {
  if (f->workspace) {
    if (f->use_float)
      FN(PredWsF, f->predict)(p, x, o, f->ws);
    else
      FN(PredWsD, f->predict)(p, x, o, f->ws);
  } else if (f->use_float) {
    FN(PredF, f->predict)(p, x, o);
  } else {
    FN(PredD, f->predict)(p, x, o);
  }
}

static void call_init(FileFns *f, void *p) {
  if (f->use_float)
    FN(InitF, f->init)(p, 0);
  else
    FN(InitD, f->init)(p, 0);
}

/* The symbols of a compiled file form from tcc or dlopen. Returns 0 with
 * a message if one is missing. */
typedef struct Loaded {
  void *tcc, *dl;
} Loaded;

static void *loaded_symbol(const Loaded *l, const char *name) {
  return l->dl ? dlsym(l->dl, name) : jit_symbol(l->tcc, name);
}

static int bind_file_fns(const Loaded *l, FileFns *f, char **err) {
  size_t (*ws_size)(void) = NULL;
  void *p = loaded_symbol(l, "m_workspace_size");
  f->workspace = p != NULL;
  const char *sfx = f->workspace ? "_ws" : "";
  char name[64];
  f->init = loaded_symbol(l, "m_init");
  snprintf(name, sizeof name, "m_forward%s", sfx);
  f->forward = loaded_symbol(l, name);
  snprintf(name, sizeof name, "m_backward%s", sfx);
  f->backward = loaded_symbol(l, name);
  snprintf(name, sizeof name, "m_backward_batch%s", sfx);
  f->backward_batch = loaded_symbol(l, name);
  snprintf(name, sizeof name, "m_predict%s", sfx);
  f->predict = loaded_symbol(l, name);
  if (!f->init || !f->forward || !f->backward || !f->backward_batch || !f->predict) {
    *err = str_printf("the generated C lacks one of m_init, m_forward%s, m_backward%s, m_backward_batch%s, "
                      "m_predict%s",
                      sfx, sfx, sfx, sfx);
    return 0;
  }
  if (f->workspace) {
    FN(void *, ws_size) = p;
    f->ws = calloc(ws_size() + 1, f->elem);
  }
  return 1;
}

/* Compiles a file form with libtcc into memory. Not jit_compile_c: that
 * one links nothing but libm and the kernels (-nostdlib), while the file
 * form may call tcc's own runtime (libtcc1: size_t to double in
 * m_backward_batch). */
typedef struct TccMsg {
  char *msg;
} TccMsg;

static void on_tcc_error(void *opaque, const char *msg) {
  TccMsg *e = opaque;
  if (!e->msg) e->msg = str_printf("tcc: %s", msg);
}

static void *tcc_build(const char *text, char **err) {
  TCCState *s = tcc_new();
  TccMsg e = {0};
  if (!s) {
    *err = str_printf("tcc_new failed");
    return NULL;
  }
  tcc_set_error_func(s, &e, on_tcc_error);
  tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
  if (tcc_compile_string(s, text) == -1 || tcc_add_library(s, "m") < 0 || tcc_relocate(s, TCC_RELOCATE_AUTO) < 0 ||
      e.msg) { /* a warning counts: the generated C promises to compile without one */
    *err = e.msg ? e.msg : str_printf("tcc failed without a message");
    tcc_delete(s);
    return NULL;
  }
  return s;
}

/* Builds C text with the system compiler (warnings are errors: the
 * generated code promises to compile warning-free) and dlopens it. */
static void *cc_build(const char *text, size_t len, const char *tmpdir, const char *form, char **err) {
  char *cpath = str_printf("%s/%s.c", tmpdir, form), *so = str_printf("%s/%s.so", tmpdir, form);
  char *log = str_printf("%s/%s.log", tmpdir, form);
  void *dl = NULL;
  FILE *f = fopen(cpath, "wb");
  int ok = f && fwrite(text, 1, len, f) == len;
  if (f && fclose(f)) ok = 0;
  char *cmd = str_printf("cc -std=c99 -pedantic -Wall -Wextra -Werror -O2 -fPIC -shared -o '%s' '%s' -lm >'%s' 2>&1",
                         so, cpath, log);
  if (!ok)
    *err = str_printf("cannot write %s", cpath);
  else if (system(cmd) != 0) {
    size_t n;
    const char *why;
    char *msg = read_source_file(log, &n, &why);
    *err = str_printf("cc failed on the generated C: %s", msg ? msg : "(no log)");
    free(msg);
  } else if (!(dl = dlopen(so, RTLD_NOW | RTLD_LOCAL)))
    *err = str_printf("dlopen %s: %s", so, dlerror());
  unlink(cpath);
  unlink(so);
  unlink(log);
  free(cmd);
  free(cpath);
  free(so);
  free(log);
  return dl;
}

static void run_file_form(const char *path, const char *src, size_t len, const CompileOptions *co,
                          const FileForm *ff, const Data *d, const char *tmpdir) {
  print_line("form", ff->name);
  Ctx c;
  ctx_init(&c, path, src, len);
  if (bpc_compile(&c, co)) { /* compiled once already: cannot differ */
    print_line("error", c.err.data);
    ctx_free(&c);
    return;
  }
  Buf text = {0}, header = {0};
  EmitOptions eo = {.prefix = "m",
                    .use_float = ff->use_float,
                    .self_contained = 1,
                    .slots_above = ff->slots_above,
                    .part_nodes = ff->part_nodes};
  emit_c(&c, &eo, &text, &header);
  ctx_free(&c);
  char *err = NULL;
  Loaded l = {0};
  if (tmpdir)
    l.dl = cc_build(text.data, text.len, tmpdir, ff->name, &err);
  else
    l.tcc = tcc_build(text.data, &err);
  buf_free(&text);
  buf_free(&header);
  FileFns f = {.use_float = ff->use_float, .elem = ff->use_float ? sizeof(float) : sizeof(double)};
  if ((l.tcc || l.dl) && bind_file_fns(&l, &f, &err)) {
    size_t es = f.elem;
    void *p = to_reals(d->params, d->nparams, es), *g = calloc((size_t)d->nparams + 1, es);
    void *x = to_reals(d->inputs, d->nex * d->ninputs, es), *o = calloc((size_t)d->noutputs + 1, es);
    void *init = calloc((size_t)d->nparams + 1, es);
    call_init(&f, init);
    printf("init");
    print_reals(init, es, d->nparams);
    putchar('\n');
    fflush(stdout);
    for (int e = 0; e < d->nex; e++) {
      const void *xe = d->ninputs ? (const char *)x + (size_t)(e * d->ninputs) * es : NULL;
      print_record("fwd", e, call_forward(&f, p, xe), NULL, es, 0);
      fflush(stdout);
      print_record("bwd", e, call_backward(&f, p, xe, g), g, es, d->nparams);
      fflush(stdout);
      call_predict(&f, p, xe, o);
      print_outputs("pred", e, o, es, d->noutputs);
      fflush(stdout);
    }
    print_record("batch", -1, call_batch(&f, p, d->ninputs ? x : NULL, (size_t)d->nex, g), g, es, d->nparams);
    fflush(stdout);
    free(p);
    free(g);
    free(x);
    free(o);
    free(init);
  } else {
    print_line("error", err);
  }
  free(err);
  free(f.ws);
  if (l.tcc) tcc_delete(l.tcc);
  if (l.dl) dlclose(l.dl);
}

/* ---- the JIT's training functions ------------------------------------------------------- */

/* Why the model has no batched functions, from batch.c itself. */
static void print_nofixed(const char *path, const char *src, size_t len, const CompileOptions *co, int batch) {
  Ctx c;
  ctx_init(&c, path, src, len);
  const char *why = NULL;
  Target t;
  if (batch < 2)
    why = "one example only";
  else if (bpc_compile(&c, co))
    why = "the model does not compile";
  else if (batch_target(&c, batch, &t, &why))
    why = "batch_target succeeds, yet jit_load made no fixed-batch functions";
  print_line("nofixed", why ? why : "(no reason given)");
  ctx_free(&c);
}

static void run_jit(const char *path, const char *src, size_t len, const CompileOptions *co, int use_float,
                    int use_cc, const Data *d) {
  print_line("form", use_float ? "jit-float" : "jit-double");
  JitOptions jo = {.use_float = use_float, .batch = d->nex > 1 ? d->nex : 0, .use_cc = use_cc};
  fflush(stderr);
  JitModel *m = jit_load(path, co, &jo);
  if (!m) {
    print_line("error", "jit_load failed (its message is on stderr)");
    return;
  }
  size_t es = m->elem;
  void *p = to_reals(d->params, d->nparams, es), *g = calloc((size_t)d->nparams + 1, es);
  void *x = to_reals(d->inputs, d->nex * d->ninputs, es);
  void *o = calloc((size_t)(d->noutputs * d->nex) + 1, es);
  void *ws = calloc(m->ws_elems + 1, es), *init = calloc((size_t)d->nparams + 1, es);
  m->init(init, 0);
  printf("init");
  print_reals(init, es, d->nparams);
  putchar('\n');
  fflush(stdout);
  for (int e = 0; e < d->nex; e++) {
    const void *xe = d->ninputs ? (const char *)x + (size_t)(e * d->ninputs) * es : NULL;
    print_record("fwd", e, jit_eval_batch(m, p, xe, 1, NULL, ws), NULL, es, 0);
    fflush(stdout);
    print_record("bwd", e, jit_train_batch(m, p, xe, 1, g, o, ws, 0, 0, 0), g, es, d->nparams);
    print_outputs("pred", e, o, es, d->noutputs);
    fflush(stdout);
  }
  const void *xall = d->ninputs ? x : NULL;
  print_record("sum", -1, jit_train_batch(m, p, xall, (size_t)d->nex, g, NULL, ws, 0, 0, 0), g, es,
               d->nparams);
  fflush(stdout);
  /* example 0's gradient stored, then every example's added onto it */
  jit_train_batch(m, p, example(d, 0) ? x : NULL, 1, g, NULL, ws, 0, 0, 0);
  print_record("accsum", -1, jit_train_batch(m, p, xall, (size_t)d->nex, g, NULL, ws, 1, 0, 0), g, es,
               d->nparams);
  print_record("evalsum", -1, jit_eval_batch(m, p, xall, (size_t)d->nex, o, ws), NULL, es, 0);
  fflush(stdout);
  if (m->fixed == d->nex && d->nex > 1) {
    void *gathered = calloc((size_t)(d->nex * d->ninputs) + 1, es);
    jit_gather(m, x, gathered);
    const void *xin = d->ninputs ? gathered : NULL;
    print_record("fixed", -1, jit_train_fixed(m, p, xin, g, o, ws, 0, 0, 0), g, es, d->nparams);
    for (int e = 0; e < d->nex; e++)
      print_outputs("fixedpred", e, (const char *)o + (size_t)(e * d->noutputs) * es, es, d->noutputs);
    fflush(stdout);
    print_record("fixedacc", -1, jit_train_fixed(m, p, xin, g, NULL, ws, 1, 0, 0), g, es, d->nparams);
    print_record("evalfixed", -1, jit_eval_fixed(m, p, xin, NULL, ws), NULL, es, 0);
    fflush(stdout);
    free(gathered);
  } else {
    print_nofixed(path, src, len, co, d->nex);
  }
  free(p);
  free(g);
  free(x);
  free(o);
  free(ws);
  free(init);
  jit_free(m);
}

/* ---- main ---------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  int use_cc = 0, jit_cc = 0, a = 1;
  CompileOptions co = {0};
  for (; a < argc && argv[a][0] == '-'; a++) {
    if (!strcmp(argv[a], "--cc"))
      use_cc = 1;
    else if (!strcmp(argv[a], "--jit-cc"))
      jit_cc = 1;
    else if (!strcmp(argv[a], "--perturb") && a + 1 < argc)
      co.perturb_gradient = argv[++a];
    else
      break;
  }
  if (argc - a != 2) {
    fprintf(stderr, "usage: driver [--cc] [--jit-cc] [--perturb PARAM] MODEL.bp VALUES\n");
    return 2;
  }
  const char *path = argv[a], *values = argv[a + 1];
  size_t len;
  const char *why;
  char *src = read_source_file(path, &len, &why);
  if (!src) {
    fprintf(stderr, "driver: cannot read %s: %s\n", path, why);
    return 2;
  }
  Ctx c;
  ctx_init(&c, path, src, len);
  if (bpc_compile(&c, &co)) {
    print_line("compile_error", c.err.data);
    ctx_free(&c);
    free(src);
    return 1;
  }
  Data d = {.nparams = c.num_params, .ninputs = c.num_inputs, .noutputs = c.num_outputs};
  d.params = calloc((size_t)d.nparams + 1, sizeof(double));
  char *err = NULL;
  int rc = 0;
  if (!read_values(values, &d, &err)) {
    fprintf(stderr, "driver: %s\n", err);
    free(err);
    rc = 2;
  } else {
    if (!d.have_params) eval_init_params(&c, d.params, 0);
    printf("sizes %lld %lld %lld %d\n", (long long)d.nparams, (long long)d.ninputs, (long long)d.noutputs, d.nex);
    run_interp(&c, &d);
    char tmpdir[] = "/tmp/bpc-difftest-XXXXXX";
    int have_tmp = use_cc && mkdtemp(tmpdir) != NULL;
    if (use_cc && !have_tmp) {
      fprintf(stderr, "driver: mkdtemp failed\n");
      rc = 2;
    }
    for (int i = 0; i < NFILE_FORMS && rc == 0; i++)
      run_file_form(path, src, len, &co, &file_forms[i], &d, have_tmp ? tmpdir : NULL);
    if (have_tmp) rmdir(tmpdir);
    if (rc == 0) {
      run_jit(path, src, len, &co, 0, jit_cc, &d);
      run_jit(path, src, len, &co, 1, jit_cc, &d);
      print_line("done", "");
    }
  }
  ctx_free(&c);
  free(src);
  free(d.params);
  free(d.inputs);
  return rc;
}
