/* train.c — minibatch gradient descent on a JIT-compiled model.
 *
 * Each epoch shuffles the examples (deterministically from the seed), and
 * for each minibatch: gathers its examples into one buffer, computes the
 * summed gradient (split over worker threads, each into its own buffer,
 * then added in thread order so a run is reproducible for a given thread
 * count), turns it into the mean, and takes one optimiser step. The loss and
 * accuracy reported for an epoch are those seen while training on it. */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "runtime.h"

/* ---- accuracy -------------------------------------------------------------- */

int accuracy_spec(JitModel *m, const char *target, AccuracySpec *spec, char **err) {
  Ctx *c = &m->ctx;
  spec->output = spec->input = -1;
  int target_slot = -1;
  if (target) {
    for (int i = 0; i < c->inputs.len; i++)
      if (!strcmp(((Decl *)c->inputs.items[i])->name, target)) target_slot = i;
    if (target_slot < 0) {
      *err = str_printf("--target %s: the model has no input named '%s'", target, target);
      return 1;
    }
  }
  for (int o = 0; o < c->outputs.len; o++) {
    Decl *out = c->outputs.items[o];
    if (out->shape.rank == 0) continue;
    int found = -1, count = 0;
    for (int i = 0; i < c->inputs.len; i++) {
      Decl *in = c->inputs.items[i];
      if (shape_eq(in->shape, out->shape) && (target_slot < 0 || target_slot == i)) {
        found = i;
        count++;
      }
    }
    if (count > 1) {
      *err = str_printf("output '%s' could be compared with more than one input for accuracy; pick one with "
                        "--target NAME",
                        out->name);
      return 1;
    }
    if (count == 1) {
      spec->output = o;
      spec->input = found;
      return 0;
    }
  }
  if (target) {
    *err = str_printf("--target %s: no output has the shape of input '%s'", target, target);
    return 1;
  }
  return 0;
}

static size_t argmax(const void *p, size_t elem, size_t off, int64_t k) {
  size_t best = 0;
  double bv = real_get(p, elem, off);
  for (int64_t j = 1; j < k; j++) {
    double v = real_get(p, elem, off + (size_t)j);
    if (v > bv) {
      bv = v;
      best = (size_t)j;
    }
  }
  return best;
}

/* Examples among n whose output arg-max equals the target's arg-max. */
static size_t count_correct(JitModel *m, const AccuracySpec *acc, const void *inputs, const void *outputs,
                            size_t n) {
  if (acc->output < 0) return 0;
  Decl *out = m->ctx.outputs.items[acc->output], *in = m->ctx.inputs.items[acc->input];
  int64_t k = shape_numel(out->shape);
  size_t correct = 0;
  for (size_t e = 0; e < n; e++) {
    size_t o = argmax(outputs, m->elem, e * (size_t)m->noutputs + (size_t)out->offset, k);
    size_t t = argmax(inputs, m->elem, e * (size_t)m->ninputs + (size_t)in->offset, k);
    correct += o == t;
  }
  return correct;
}

/* ---- worker threads ----------------------------------------------------------- */

typedef struct Pool Pool;
typedef struct Worker {
  Pool *pool;
  int index;
  pthread_t thread;
  void *ws, *grad;
  void *soa; /* one fixed batch rearranged input by input */
  double loss;
} Worker;

struct Pool {
  JitModel *m;
  int n; /* threads, including the caller */
  Worker *w;
  pthread_barrier_t start, done;
  int quit;
  /* the current job */
  int training;
  const void *params, *inputs;
  void *outputs;
  size_t count;
};

/* Thread i's share of the examples: whole fixed batches where possible. */
static void slice(Pool *p, int i, size_t *from, size_t *len) {
  size_t per = (p->count + (size_t)p->n - 1) / (size_t)p->n;
  size_t fixed = (size_t)p->m->fixed;
  if (fixed > 1) per = (per + fixed - 1) / fixed * fixed;
  *from = (size_t)i * per < p->count ? (size_t)i * per : p->count;
  *len = p->count - *from < per ? p->count - *from : per;
}

static void run_slice(Pool *p, Worker *w) {
  size_t from, len;
  slice(p, w->index, &from, &len);
  JitModel *m = p->m;
  size_t in_row = (size_t)m->ninputs * m->elem, out_row = (size_t)m->noutputs * m->elem;
  const char *in = (const char *)p->inputs + from * in_row;
  char *out = p->outputs ? (char *)p->outputs + from * out_row : NULL;
  w->loss = 0;
  size_t fixed = m->fixed > 1 ? (size_t)m->fixed : 0;
  int acc = 0; /* the first call stores this thread's gradient, later ones add */
  for (; fixed && len >= fixed;
       len -= fixed, in += fixed * in_row, out = out ? out + fixed * out_row : NULL) {
    jit_gather(m, in, w->soa);
    if (p->training)
      w->loss += jit_train_fixed(m, p->params, w->soa, w->grad, out, w->ws, acc);
    else
      w->loss += jit_eval_fixed(m, p->params, w->soa, out, w->ws);
    acc = 1;
  }
  if (len == 0 && acc) return;
  /* the rest one example at a time (no examples: a zero gradient) */
  if (p->training)
    w->loss += jit_train_batch(m, p->params, in, len, w->grad, out, w->ws, acc);
  else if (len)
    w->loss += jit_eval_batch(m, p->params, in, len, out, w->ws);
}

static void *worker_main(void *arg) {
  Worker *w = arg;
  Pool *p = w->pool;
  flush_subnormals();
  for (;;) {
    pthread_barrier_wait(&p->start);
    if (p->quit) return NULL;
    run_slice(p, w);
    pthread_barrier_wait(&p->done);
  }
}

static void pool_init(Pool *p, JitModel *m, int threads) {
  memset(p, 0, sizeof *p);
  flush_subnormals();
  p->m = m;
  p->n = threads < 1 ? 1 : threads;
  p->w = calloc((size_t)p->n, sizeof *p->w);
  for (int i = 0; i < p->n; i++) {
    p->w[i].pool = p;
    p->w[i].index = i;
    p->w[i].ws = calloc(m->ws_elems + 1, m->elem);
    p->w[i].grad = calloc((size_t)m->nparams + 1, m->elem);
    p->w[i].soa = calloc((size_t)(m->fixed > 1 ? m->fixed : 1) * (size_t)(m->ninputs + 1), m->elem);
  }
  if (p->n > 1) {
    pthread_barrier_init(&p->start, NULL, (unsigned)p->n);
    pthread_barrier_init(&p->done, NULL, (unsigned)p->n);
    for (int i = 1; i < p->n; i++)
      pthread_create(&p->w[i].thread, NULL, worker_main, &p->w[i]);
  }
}

/* Runs the current job on every thread; returns the summed loss. */
static double pool_run(Pool *p) {
  if (p->n > 1) pthread_barrier_wait(&p->start);
  run_slice(p, &p->w[0]);
  if (p->n > 1) pthread_barrier_wait(&p->done);
  double loss = 0;
  for (int i = 0; i < p->n; i++)
    loss += p->w[i].loss;
  return loss;
}

static void pool_free(Pool *p) {
  if (p->n > 1) {
    p->quit = 1;
    pthread_barrier_wait(&p->start);
    for (int i = 1; i < p->n; i++)
      pthread_join(p->w[i].thread, NULL);
    pthread_barrier_destroy(&p->start);
    pthread_barrier_destroy(&p->done);
  }
  for (int i = 0; i < p->n; i++) {
    free(p->w[i].ws);
    free(p->w[i].grad);
    free(p->w[i].soa);
  }
  free(p->w);
}

/* The batch's summed gradient into the first thread's buffer: the other
 * threads' buffers added in thread order (so a run repeats exactly for a
 * given thread count). Nothing is cleared: each batch stores its gradient
 * afresh (acc 0). */
#define DEFINE_REDUCE(T, S)                                                                                  \
  static void reduce_##S(Pool *p) {                                                                          \
    int64_t n = p->m->nparams;                                                                               \
    T *restrict g0 = p->w[0].grad;                                                                           \
    for (int t = 1; t < p->n; t++) {                                                                         \
      T *restrict gt = p->w[t].grad;                                                                         \
      for (int64_t i = 0; i < n; i++) {                                                                      \
        g0[i] += gt[i];                                                                                      \
      }                                                                                                      \
    }                                                                                                        \
  }
DEFINE_REDUCE(double, d)
DEFINE_REDUCE(float, f)

/* ---- evaluation ----------------------------------------------------------------- */

EvalResult evaluate(JitModel *m, const void *params, const Dataset *d, const AccuracySpec *acc, int threads) {
  enum { CHUNK = 1024 };
  Pool pool;
  pool_init(&pool, m, threads);
  void *outputs = calloc((size_t)CHUNK * (size_t)(m->noutputs + 1), m->elem);
  double loss = 0;
  size_t correct = 0;
  for (size_t at = 0; at < d->n; at += CHUNK) {
    size_t n = d->n - at < CHUNK ? d->n - at : CHUNK;
    const char *in = (const char *)d->x + at * (size_t)d->width * d->elem;
    pool.training = 0;
    pool.params = params;
    pool.inputs = in;
    pool.outputs = outputs;
    pool.count = n;
    loss += pool_run(&pool);
    correct += count_correct(m, acc, in, outputs, n);
  }
  free(outputs);
  pool_free(&pool);
  EvalResult r = {loss / (double)d->n, acc->output >= 0 ? (double)correct / (double)d->n : -1};
  return r;
}

/* ---- training ----------------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15u);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  return z ^ (z >> 31);
}

static void shuffle(size_t *idx, size_t n, uint64_t seed) {
  uint64_t s = seed;
  for (size_t i = 0; i < n; i++)
    idx[i] = i;
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)(splitmix(&s) % i);
    size_t t = idx[i - 1];
    idx[i - 1] = idx[j];
    idx[j] = t;
  }
}

static void format_duration(char *buf, size_t len, double s) {
  if (s < 60)
    snprintf(buf, len, "%.0fs", s);
  else
    snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

static void progress(int epoch, int epochs, size_t done, size_t n, double loss, double elapsed) {
  char eta[32];
  double rate = elapsed > 0 ? (double)done / elapsed : 0;
  format_duration(eta, sizeof eta, rate > 0 ? (double)(n - done) / rate : 0);
  int width = 24, filled = (int)((double)width * (double)done / (double)n);
  fprintf(stderr, "\repoch %d/%d [", epoch, epochs);
  for (int i = 0; i < width; i++)
    fputc(i < filled ? '#' : '.', stderr);
  fprintf(stderr, "] %zu/%zu loss %.4f %.0f ex/s ETA %s   ", done, n, loss, rate, eta);
  fflush(stderr);
}

static void fmt_or_empty(char *buf, size_t len, const char *fmt, double v, int have) {
  if (have)
    snprintf(buf, len, fmt, v);
  else
    buf[0] = 0;
}

typedef struct EpochStats {
  int epoch;
  double train_loss, train_acc, test_loss, test_acc, seconds, rate;
  int have_acc, have_test;
} EpochStats;

static void report_epoch(const EpochStats *s, const TrainOptions *o, Buf *log) {
  char tacc[32], vloss[32], vacc[32];
  fmt_or_empty(tacc, sizeof tacc, "%.6f", s->train_acc, s->have_acc);
  fmt_or_empty(vloss, sizeof vloss, "%.9g", s->test_loss, s->have_test);
  fmt_or_empty(vacc, sizeof vacc, "%.6f", s->test_acc, s->have_test && s->have_acc);
  buf_printf(log, "%d,%.9g,%s,%s,%s,%.3f,%.1f\n", s->epoch, s->train_loss, tacc, vloss, vacc, s->seconds,
             s->rate);
  if (o->quiet) return;
  if (o->progress) fputs("\r\033[K", stderr);
  printf("epoch %d: train loss %.4g", s->epoch, s->train_loss);
  if (s->have_acc) printf(", train accuracy %.2f%%", 100 * s->train_acc);
  if (s->have_test) {
    printf(", test loss %.4g", s->test_loss);
    if (s->have_acc) printf(", test accuracy %.2f%%", 100 * s->test_acc);
  }
  printf(", %.2f s, %.0f examples/s\n", s->seconds, s->rate);
  fflush(stdout);
}

static int write_log(const char *path, Buf *log, char **err) {
  const char *paths[1] = {path};
  Buf *bufs[1] = {log};
  const char *why = NULL;
  if (cli_write_files_atomically(paths, bufs, 1, &why) >= 0) {
    *err = str_printf("cannot write the log %s: %s", path, why);
    return 1;
  }
  return 0;
}

int train(JitModel *m, void *params, const Dataset *train_set, const Dataset *test_set,
          const TrainOptions *o) {
  AccuracySpec acc;
  char *err = NULL;
  if (accuracy_spec(m, o->target, &acc, &err)) {
    fprintf(stderr, "bpc: %s\n", err);
    free(err);
    return 1;
  }
  size_t n = train_set->n, batch = o->batch ? o->batch : 32;
  if (batch > n) batch = n;
  int threads = o->threads < 1 ? 1 : o->threads;
  if ((size_t)threads > batch) threads = (int)batch;
  Pool pool;
  pool_init(&pool, m, threads);
  size_t row = (size_t)m->ninputs * m->elem;
  size_t *idx = malloc(sizeof(size_t) * n);
  char *xb = malloc(batch * row);
  void *outputs = calloc(batch * (size_t)(m->noutputs + 1), m->elem);
  Buf log = {0};
  buf_puts(&log, "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds,examples_per_second\n");
  interrupted = 0;
  struct sigaction sa = {0}, old_sa;
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, &old_sa);
  int rc = 0;
  for (int epoch = 1; epoch <= o->epochs && !rc; epoch++) {
    shuffle(idx, n, o->seed * 1000003u + (uint64_t)epoch);
    double t0 = now_seconds(), last_draw = 0, loss_sum = 0;
    size_t correct = 0, done = 0, batch_no = 0;
    for (size_t at = 0; at < n; at += batch) {
      size_t nb = n - at < batch ? n - at : batch;
      batch_no++;
      for (size_t e = 0; e < nb; e++)
        memcpy(xb + e * row, (const char *)train_set->x + idx[at + e] * row, row);
      pool.training = 1;
      pool.params = params;
      pool.inputs = xb;
      pool.outputs = acc.output >= 0 ? outputs : NULL;
      pool.count = nb;
      double loss = pool_run(&pool);
      if (!isfinite(loss)) {
        if (o->progress) fputs("\r\033[K", stderr);
        fprintf(stderr, "bpc: training stopped: the loss became %s in epoch %d, batch %zu%s%s%s\n",
                isnan(loss) ? "NaN" : "infinite", epoch, batch_no,
                o->save && epoch > 1 ? "; the parameters saved after the previous epoch are in " : "",
                o->save && epoch > 1 ? o->save : "", o->save && epoch > 1 ? "" : " (try a smaller --lr)");
        rc = 1;
        break;
      }
      if (m->use_float)
        reduce_f(&pool);
      else
        reduce_d(&pool);
      optim_step(o->opt, params, pool.w[0].grad, 1.0 / (double)nb);
      loss_sum += loss;
      correct += count_correct(m, &acc, xb, outputs, nb);
      done += nb;
      if (o->progress && !o->quiet && now_seconds() - last_draw > 0.1) {
        last_draw = now_seconds();
        progress(epoch, o->epochs, done, n, loss_sum / (double)done, last_draw - t0);
      }
      if (interrupted) break;
    }
    if (rc) break;
    double seconds = now_seconds() - t0;
    if (interrupted) {
      if (o->progress) fputs("\r\033[K", stderr);
      if (o->save && params_save(o->save, m, params, &err) == 0)
        fprintf(stderr, "bpc: interrupted in epoch %d after %zu examples; parameters saved to %s\n", epoch,
                done, o->save);
      else
        fprintf(stderr, "bpc: interrupted in epoch %d after %zu examples%s%s\n", epoch, done, err ? ": " : "",
                err ? err : "");
      rc = 1;
      break;
    }
    EpochStats s = {.epoch = epoch,
                    .train_loss = loss_sum / (double)n,
                    .seconds = seconds,
                    .rate = (double)n / seconds,
                    .have_acc = acc.output >= 0};
    s.train_acc = (double)correct / (double)n;
    if (test_set) {
      EvalResult r = evaluate(m, params, test_set, &acc, threads);
      s.have_test = 1;
      s.test_loss = r.loss;
      s.test_acc = r.accuracy;
    }
    report_epoch(&s, o, &log);
    if (o->save && params_save(o->save, m, params, &err)) {
      fprintf(stderr, "bpc: %s\n", err);
      rc = 1;
    }
    if (o->log && write_log(o->log, &log, &err)) {
      fprintf(stderr, "bpc: %s\n", err);
      rc = 1;
    }
  }
  sigaction(SIGINT, &old_sa, NULL);
  free(err);
  buf_free(&log);
  free(idx);
  free(xb);
  free(outputs);
  pool_free(&pool);
  return rc;
}
