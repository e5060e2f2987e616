/* ad_bench.c — one benchmark problem: bpc's gradient (the emitted C built
 * with gcc -O2, and the JIT path) against a hand-written objective and
 * gradient (also gcc -O2), in one run. Checks first that all three
 * gradients agree, then times each with the median of repeated runs.
 *
 * usage: ad_bench NAME BPC.so HAND.so MODEL.bp BATCH [-D NAME=INT]...
 * BATCH is 1 (per example) or the minibatch size. Prints one line:
 * name, times in microseconds, and the ratios. */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "runtime.h"

typedef double (*Obj)(const double *, const double *);
typedef double (*Grad)(const double *, const double *, double *);
typedef double (*BatchGrad)(const double *, const double *, size_t, double *);
typedef double (*ObjWs)(const double *, const double *, double *);
typedef double (*GradWs)(const double *, const double *, double *, double *);
typedef double (*BatchGradWs)(const double *, const double *, size_t, double *, double *);

typedef struct Bench {
  int batch;
  double *p, *x, *g, *ws, *soa;
  JitModel *jit;
  void *bpc, *hand;
  size_t (*ws_size)(void);
} Bench;

static void *sym(void *so, const char *name) {
  void *f = dlsym(so, name);
  return f;
}

/* The functions under test, behind one signature. */
enum { HAND_F, HAND_G, BPC_F, BPC_G, JIT_F, JIT_G, NFN };
static const char *const fn_names[NFN] = {"hand f", "hand grad", "bpc f", "bpc grad", "jit f", "jit grad"};

static double call(Bench *b, int which) {
  int B = b->batch;
  switch (which) {
  case HAND_F: return ((Obj)sym(b->hand, "hand_objective"))(b->p, b->x);
  case HAND_G: return ((Grad)sym(b->hand, "hand_gradient"))(b->p, b->x, b->g);
  case BPC_F: { /* the mean over the batch, one example at a time */
    double s = 0;
    for (int e = 0; e < B; e++)
      s += b->ws_size ? ((ObjWs)sym(b->bpc, "m_forward_ws"))(b->p, b->x + e * b->jit->ninputs, b->ws)
                      : ((Obj)sym(b->bpc, "m_forward"))(b->p, b->x + e * b->jit->ninputs);
    return s / B;
  }
  case BPC_G:
    if (B > 1)
      return b->ws_size
                 ? ((BatchGradWs)sym(b->bpc, "m_backward_batch_ws"))(b->p, b->x, (size_t)B, b->g, b->ws)
                 : ((BatchGrad)sym(b->bpc, "m_backward_batch"))(b->p, b->x, (size_t)B, b->g);
    return b->ws_size ? ((GradWs)sym(b->bpc, "m_backward_ws"))(b->p, b->x, b->g, b->ws)
                      : ((Grad)sym(b->bpc, "m_backward"))(b->p, b->x, b->g);
  case JIT_F:
    if (B > 1 && b->jit->fixed == B) {
      jit_gather(b->jit, b->x, b->soa);
      return jit_eval_fixed(b->jit, b->p, b->soa, NULL, b->ws) / B;
    }
    return jit_eval_batch(b->jit, b->p, b->x, (size_t)B, NULL, b->ws) / B;
  default: { /* JIT gradient: the runtime's sum, made a mean as training does */
    double l;
    if (B > 1 && b->jit->fixed == B) {
      jit_gather(b->jit, b->x, b->soa);
      l = jit_train_fixed(b->jit, b->p, b->soa, b->g, NULL, b->ws, 0, 1, 0);
    } else {
      l = jit_train_batch(b->jit, b->p, b->x, (size_t)B, b->g, NULL, b->ws, 0, 1, 0);
    }
    if (B > 1)
      for (int64_t i = 0; i < b->jit->nparams; i++)
        b->g[i] /= B;
    return l / B;
  }
  }
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Calls enough to take about 20 ms. */
static int calibrate(Bench *b, int which) {
  int reps = 1;
  for (;;) {
    double t0 = now_seconds();
    for (int r = 0; r < reps; r++)
      call(b, which);
    if (now_seconds() - t0 > 0.02 || reps > 1 << 24) return reps;
    reps *= 2;
  }
}

/* Median over 9 rounds; each round times every function once, so slow
 * drift in the machine (frequency, other load) touches them alike. */
enum { ROUNDS = 9 };
static void time_all(Bench *b, double *us) {
  int reps[NFN];
  double t[NFN][ROUNDS];
  for (int k = 0; k < NFN; k++)
    reps[k] = calibrate(b, k);
  for (int r = 0; r < ROUNDS; r++)
    for (int k = 0; k < NFN; k++) {
      double t0 = now_seconds();
      for (int i = 0; i < reps[k]; i++)
        call(b, k);
      t[k][r] = (now_seconds() - t0) / reps[k];
    }
  for (int k = 0; k < NFN; k++) {
    qsort(t[k], ROUNDS, sizeof(double), cmp);
    us[k] = 1e6 * t[k][ROUNDS / 2];
  }
}

static int agree(const char *what, const double *a, const double *b, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (fabs(a[i] - b[i]) > 1e-8 * fmax(1, fmax(fabs(a[i]), fabs(b[i])))) {
      fprintf(stderr, "ad_bench: %s disagrees with the hand-written gradient at %lld: %.17g vs %.17g\n", what,
              (long long)i, a[i], b[i]);
      return 0;
    }
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: ad_bench NAME BPC.so HAND.so MODEL.bp BATCH [-D NAME=INT]...\n");
    return 2;
  }
  Bench b = {.batch = atoi(argv[5])};
  DefineOpt defs[16];
  int ndefs = 0;
  for (int i = 6; i + 1 < argc && ndefs < 16; i += 2)
    if (!cli_parse_define(argv[i + 1], &defs[ndefs++])) return 2;
  b.bpc = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
  b.hand = dlopen(argv[3], RTLD_NOW | RTLD_LOCAL);
  if (!b.bpc || !b.hand) {
    fprintf(stderr, "ad_bench: %s\n", dlerror());
    return 1;
  }
  CompileOptions co = {.defines = defs, .ndefines = ndefs};
  JitOptions jo = {.batch = b.batch, .use_cc = getenv("BPC_BENCH_JIT_CC") != NULL};
  b.jit = jit_load(argv[4], &co, &jo);
  if (!b.jit) return 1;
  int64_t np = b.jit->nparams, nx = b.jit->ninputs * b.batch;
  b.ws_size = (size_t(*)(void))sym(b.bpc, "m_workspace_size");
  size_t ws = b.jit->ws_elems;
  if (b.ws_size && b.ws_size() > ws) ws = b.ws_size();
  b.p = calloc((size_t)np + 1, sizeof(double));
  b.g = calloc((size_t)np + 1, sizeof(double));
  b.x = calloc((size_t)nx + 1, sizeof(double));
  b.ws = calloc(ws + 1, sizeof(double));
  b.soa = calloc((size_t)nx + 1, sizeof(double));
  double *ref = calloc((size_t)np + 1, sizeof(double));
  ((void (*)(double *, uint64_t))sym(b.bpc, "m_init"))(b.p, 1);
  uint64_t rng = 42;
  for (int64_t i = 0; i < nx; i++)
    b.x[i] = fabs(random_normal(&rng)) * 0.5;
  double lh = call(&b, HAND_G);
  memcpy(ref, b.g, sizeof(double) * (size_t)np);
  double lb = call(&b, BPC_G);
  int ok = agree("bpc (emitted C)", b.g, ref, np);
  double lj = call(&b, JIT_G);
  ok &= agree("bpc (JIT)", b.g, ref, np);
  if (fabs(lh - lb) > 1e-8 * fmax(1, fabs(lh)) || fabs(lh - lj) > 1e-8 * fmax(1, fabs(lh))) {
    fprintf(stderr, "ad_bench: losses disagree: hand %.17g, bpc %.17g, jit %.17g\n", lh, lb, lj);
    ok = 0;
  }
  if (!ok) return 1;
  double t[NFN];
  time_all(&b, t);
  printf("%-14s", argv[1]);
  for (int k = 0; k < NFN; k++)
    printf(" %10.2f", t[k]);
  printf("   %6.2fx %6.2fx %6.2fx %6.2fx\n", t[BPC_G] / t[HAND_G], t[JIT_G] / t[HAND_G], t[BPC_G] / t[BPC_F],
         t[JIT_G] / t[JIT_F]);
  (void)fn_names;
  jit_free(b.jit);
  return 0;
}
