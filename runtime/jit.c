/* jit.c — compiles a model in memory with TinyCC's libtcc and calls it.
 * tcc compiles the straight-line code in milliseconds; the heavy tensor
 * work goes to kernels.c, compiled into bpc at -O3. */
#include <dlfcn.h>
#include <errno.h>
#include <libtcc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels.h"
#include "runtime.h"

typedef struct TccError {
  char *msg;
} TccError;

static void on_tcc_error(void *opaque, const char *msg) {
  TccError *e = opaque;
  if (!e->msg) e->msg = strdup(msg);
}

/* "<string>:12: error: ..." -> the message followed by line 12 itself. */
static char *with_generated_line(const char *msg, const char *csrc) {
  const char *colon = strchr(msg, ':');
  long line = colon ? strtol(colon + 1, NULL, 10) : 0;
  const char *p = csrc;
  for (long l = 1; l < line && p; l++) {
    p = strchr(p, '\n');
    if (p) p++;
  }
  if (!p || line <= 0) return strdup(msg);
  int len = (int)(strchr(p, '\n') ? strchr(p, '\n') - p : (long)strlen(p));
  return str_printf("%s\n  generated line %ld: %.*s", msg, line, len, p);
}

/* The C library functions generated code calls, bound by address so the
 * JIT needs no libc lookup. */
static const KernelSymbol libm_symbols[] = {
    {"exp", (void *)exp},
    {"expf", (void *)expf},
    {"log", (void *)log},
    {"logf", (void *)logf},
    {"sqrt", (void *)sqrt},
    {"sqrtf", (void *)sqrtf},
    {"fabs", (void *)fabs},
    {"fabsf", (void *)fabsf},
    {"sin", (void *)sin},
    {"sinf", (void *)sinf},
    {"cos", (void *)cos},
    {"cosf", (void *)cosf},
    {"tanh", (void *)tanh},
    {"tanhf", (void *)tanhf},
    {"log1p", (void *)log1p},
    {"log1pf", (void *)log1pf},
    {"expm1", (void *)expm1},
    {"expm1f", (void *)expm1f},
    {"erf", (void *)erf},
    {"erff", (void *)erff},
    {"pow", (void *)pow},
    {"powf", (void *)powf},
    {NULL, NULL},
};

/* tcc with the kernels and libm; linked into memory unless only checking. */
static void *tcc_build(const char *csrc, int link, char **err) {
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
  if (tcc_compile_string(s, csrc) == -1 || (link && tcc_relocate(s, TCC_RELOCATE_AUTO) < 0) ||
      (!link && e.msg)) { /* checking: a warning counts too */
    *err = e.msg ? with_generated_line(e.msg, csrc) : strdup("tcc failed without a message");
    free(e.msg);
    tcc_delete(s);
    return NULL;
  }
  free(e.msg);
  return s;
}

void *jit_compile_c(const char *csrc, char **err) { return tcc_build(csrc, 1, err); }

int jit_check_c(const char *csrc, char **err) {
  void *s = tcc_build(csrc, 0, err);
  if (s) tcc_delete(s);
  return s != NULL;
}

void *jit_symbol(void *tcc, const char *name) { return tcc_get_symbol(tcc, name); }

/* ---- the cc backend: a shared object built once per distinct C text ---------- */

/* Where shared objects are cached: $BPC_CACHE_DIR, $XDG_CACHE_HOME/bpc,
 * ~/.cache/bpc, or a directory of the user's own in /tmp (malloc'd). */
static char *cache_dir(void) {
  const char *env = getenv("BPC_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  if (env && *env) return str_printf("%s", env);
  if (xdg && *xdg) return str_printf("%s/bpc", xdg);
  if (home && *home) return str_printf("%s/.cache/bpc", home);
  return str_printf("/tmp/bpc-cache-%d", (int)getuid());
}

/* mkdir -p: each prefix of the path that is missing, made in turn. */
static int make_dirs(const char *path) {
  char *p = str_printf("%s", path);
  int ok = 1;
  for (char *s = p + 1; ok; s++) {
    int end = *s == '\0';
    if (*s != '/' && !end) continue;
    *s = '\0';
    ok = mkdir(p, 0755) == 0 || errno == EEXIST;
    if (end) break;
    *s = '/';
  }
  free(p);
  return ok;
}

/* Runs a shell command; its output (stdout and stderr) is returned in *out,
 * so that a failing compiler's messages go into the error, not onto the
 * user's terminal. Returns 1 when the command exits 0. */
static int run_captured(const char *cmd, char **out) {
  Buf b = {0};
  FILE *pipe = popen(cmd, "r");
  if (!pipe) return 0;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, pipe)) > 0) buf_append(&b, chunk, n);
  int status = pclose(pipe);
  buf_append(&b, "", 1);
  *out = b.data;
  return status == 0;
}

/* The licence kernels.c is built with: sums may be reassociated, so that
 * gcc vectorises the step's reductions (a bias's gradient sums over every
 * example and pixel: one long chain of dependent adds otherwise, most of
 * the elementwise time of a CNN), the math functions set no errno, nothing
 * traps. NaN and infinities still propagate: no -ffinite-math-only. The
 * cost model is -O3's: -O2's vectorises only loops with no remainder,
 * which left every loop of the team form (over a thread's rows, bounds
 * known only when it runs) scalar: d = g * (h > 0) over 32 rows took 4 us
 * against 0.4 for all 64 in the one-thread step. */
static const char CC_FLAGS[] =
    "-O2 -fvect-cost-model=dynamic -march=native -ffp-contract=fast -fno-math-errno -fno-trapping-math -fassociative-math -fno-signed-zeros "
    "-fPIC -shared -w";

/* Returns a dlopen handle for the C text, compiling it only if no shared
 * object for the same text (and flags) is cached yet. The object is built
 * under a name of this process's own and renamed into place, so that two
 * runs never load each other's half-written file. */
static void *cc_load(const char *csrc, size_t len, char **err) {
  *err = NULL;
  char *dir = cache_dir();
  if (!make_dirs(dir)) {
    *err = str_printf("cannot create the cache directory %s: %s", dir, strerror(errno));
    free(dir);
    return NULL;
  }
  uint64_t h = hash_bytes(CC_FLAGS, sizeof CC_FLAGS, hash_bytes(csrc, len, 0xCBF29CE484222325u));
  char *so = str_printf("%s/%016llx.so", dir, (unsigned long long)h);
  void *dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    char *c_path = str_printf("%s/%016llx.%d.c", dir, (unsigned long long)h, (int)getpid());
    char *tmp_so = str_printf("%s.%d.tmp", so, (int)getpid());
    FILE *f = fopen(c_path, "w");
    int ok = f && fwrite(csrc, 1, len, f) == len;
    if (f && fclose(f)) ok = 0;
    char *cmd = str_printf("cc %s -o '%s' '%s' 2>&1", CC_FLAGS, tmp_so, c_path), *said = NULL;
    if (!ok)
      *err = str_printf("cannot write %s: %s", c_path, strerror(errno));
    else if (!run_captured(cmd, &said))
      *err = str_printf("the system C compiler could not build the model (%s)%s%s", cmd, said && *said ? ":\n" : "",
                        said ? said : "");
    else if (rename(tmp_so, so) != 0)
      *err = str_printf("cannot rename %s to %s: %s", tmp_so, so, strerror(errno));
    ok = ok && !*err;
    unlink(c_path);
    unlink(tmp_so);
    free(said);
    free(cmd);
    free(c_path);
    free(tmp_so);
    dl = ok ? dlopen(so, RTLD_NOW | RTLD_LOCAL) : NULL;
    if (ok && !dl) *err = str_printf("cannot load %s: %s", so, dlerror());
  }
  free(so);
  free(dir);
  return dl;
}

static void *model_symbol(JitModel *m, const char *name) {
  return m->dl ? dlsym(m->dl, name) : jit_symbol(m->tcc, name);
}

JitModel *jit_load_c(const char *csrc, size_t len, ModelInfo *info, const JitOptions *jo, char **err) {
  JitModel *m = calloc(1, sizeof *m);
  if (!m) out_of_memory();
  m->info = *info;
  memset(info, 0, sizeof *info); /* the model owns its arena now */
  if (jo && jo->use_cc > 0)
    m->dl = cc_load(csrc, len, err);
  else
    m->tcc = jit_compile_c(csrc, err);
  if (!m->tcc && !m->dl) { /* cc's message says what failed; tcc's is about the C */
    if (!(jo && jo->use_cc > 0)) {
      char *why = *err;
      *err = str_printf("the generated C did not compile:\n%s", why);
      free(why);
    }
    jit_free(m);
    return NULL;
  }
  m->use_float = jo && jo->use_float;
  m->elem = m->use_float ? sizeof(float) : sizeof(double);
  m->nparams = m->info.params.numel;
  m->ninputs = m->info.inputs.numel;
  m->noutputs = m->info.outputs.numel;
  size_t (*ws_size)(void) = (size_t(*)(void))model_symbol(m, JIT_PREFIX "_workspace_size");
  *(void **)&m->init = model_symbol(m, JIT_PREFIX "_init");
  m->train_batch = model_symbol(m, JIT_PREFIX "_train_batch");
  m->eval_batch = model_symbol(m, JIT_PREFIX "_eval_batch");
  m->predict_ws = model_symbol(m, JIT_PREFIX "_predict_ws");
  if (!ws_size || !m->init || !m->train_batch || !m->eval_batch || !m->predict_ws) {
    *err = str_printf("the generated C lacks its entry points");
    jit_free(m);
    return NULL;
  }
  m->ws_elems = ws_size();
  int (*fixed)(void) = (int (*)(void))model_symbol(m, JIT_PREFIX "_fixed_batch");
  m->fixed = fixed ? fixed() : 0;
  m->train_fixed = model_symbol(m, JIT_PREFIX "_train_fixed");
  m->eval_fixed = model_symbol(m, JIT_PREFIX "_eval_fixed");
  if (!m->train_fixed || !m->eval_fixed) m->fixed = 0;
  m->train_team = m->fixed && jo && jo->team ? model_symbol(m, JIT_PREFIX "_train_team") : NULL;
  size_t (*scratch)(void) =
      m->train_team ? (size_t(*)(void))model_symbol(m, JIT_PREFIX "_team_scratch_size") : NULL;
  if (m->train_team && !scratch) m->train_team = NULL; /* without its size, the team form cannot run */
  m->team_scratch = scratch ? scratch() : 0;
  return m;
}

void jit_free(JitModel *m) {
  if (!m) return;
  if (m->tcc) tcc_delete(m->tcc);
  if (m->dl) dlclose(m->dl);
  arena_free(&m->info.arena);
  free(m);
}

typedef double (*TrainD)(const double *, const double *, size_t, double *, double *, double *, int, int,
                         uint64_t);
typedef float (*TrainF)(const float *, const float *, size_t, float *, float *, float *, int, int, uint64_t);
typedef double (*EvalD)(const double *, const double *, size_t, double *, double *);
typedef float (*EvalF)(const float *, const float *, size_t, float *, float *);

double jit_train_batch(JitModel *m, const void *params, const void *inputs, size_t n, void *grad,
                       void *outputs, void *ws, int acc, int dropout, uint64_t seed) {
  if (m->use_float) return ((TrainF)m->train_batch)(params, inputs, n, grad, outputs, ws, acc, dropout, seed);
  return ((TrainD)m->train_batch)(params, inputs, n, grad, outputs, ws, acc, dropout, seed);
}

double jit_eval_batch(JitModel *m, const void *params, const void *inputs, size_t n, void *outputs,
                      void *ws) {
  if (m->use_float) return ((EvalF)m->eval_batch)(params, inputs, n, outputs, ws);
  return ((EvalD)m->eval_batch)(params, inputs, n, outputs, ws);
}

typedef double (*FixedTrainD)(const double *, const double *, double *, double *, double *, int, int,
                              uint64_t);
typedef float (*FixedTrainF)(const float *, const float *, float *, float *, float *, int, int, uint64_t);
typedef double (*FixedEvalD)(const double *, const double *, double *, double *);
typedef float (*FixedEvalF)(const float *, const float *, float *, float *);

double jit_train_fixed(JitModel *m, const void *params, const void *inputs, void *grad, void *outputs,
                       void *ws, int acc, int dropout, uint64_t seed) {
  if (m->use_float)
    return ((FixedTrainF)m->train_fixed)(params, inputs, grad, outputs, ws, acc, dropout, seed);
  return ((FixedTrainD)m->train_fixed)(params, inputs, grad, outputs, ws, acc, dropout, seed);
}

typedef double (*TeamTrainD)(const double *, const double *, double *, double *, double *, int, int, uint64_t,
                             int, int, void (*)(void *), void *);
typedef float (*TeamTrainF)(const float *, const float *, float *, float *, float *, int, int, uint64_t, int,
                            int, void (*)(void *), void *);

double jit_train_team(JitModel *m, const void *params, const void *inputs, void *grad, void *outputs,
                      void *ws, int acc, int dropout, uint64_t seed, int part, int parts, void (*sync)(void *),
                      void *team) {
  if (m->use_float)
    return ((TeamTrainF)m->train_team)(params, inputs, grad, outputs, ws, acc, dropout, seed, part, parts, sync,
                                       team);
  return ((TeamTrainD)m->train_team)(params, inputs, grad, outputs, ws, acc, dropout, seed, part, parts, sync,
                                     team);
}

double jit_eval_fixed(JitModel *m, const void *params, const void *inputs, void *outputs, void *ws) {
  if (m->use_float) return ((FixedEvalF)m->eval_fixed)(params, inputs, outputs, ws);
  return ((FixedEvalD)m->eval_fixed)(params, inputs, outputs, ws);
}

size_t jit_gathered_at(const JitModel *m, const TensorInfo *t, size_t e) {
  return (size_t)m->fixed * (size_t)t->offset + e * (size_t)t->numel;
}

void jit_gather(JitModel *m, const void *examples, void *out) {
  size_t B = (size_t)m->fixed, width = (size_t)m->ninputs, es = m->elem;
  for (int s = 0; s < m->info.inputs.len; s++) {
    const TensorInfo *t = &m->info.inputs.items[s];
    size_t off = (size_t)t->offset, k = (size_t)t->numel;
    for (size_t e = 0; e < B; e++)
      memcpy((char *)out + jit_gathered_at(m, t, e) * es, (const char *)examples + (e * width + off) * es, k * es);
  }
}
