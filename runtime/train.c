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

#include "kernels.h"
#include "runtime.h"

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
    if (p->quit) {
      bpk_thread_done();
      return NULL;
    }
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

EvalResult evaluate(JitModel *m, const void *params, const Dataset *d, const MetricSpec *spec, int threads) {
  enum { CHUNK = 1024 };
  Pool pool;
  pool_init(&pool, m, threads);
  void *outputs = calloc((size_t)CHUNK * (size_t)(m->noutputs + 1), m->elem);
  double loss = 0, metric = 0;
  for (size_t at = 0; at < d->n; at += CHUNK) {
    size_t n = d->n - at < CHUNK ? d->n - at : CHUNK;
    const char *in = (const char *)d->x + at * (size_t)d->width * d->elem;
    pool.training = 0;
    pool.params = params;
    pool.inputs = in;
    pool.outputs = outputs;
    pool.count = n;
    loss += pool_run(&pool);
    metric += metric_sum(m, spec, in, outputs, n);
  }
  free(outputs);
  pool_free(&pool);
  EvalResult r = {loss / (double)d->n, spec->kind != METRIC_NONE ? metric / (double)d->n : -1};
  return r;
}

/* ---- training ----------------------------------------------------------------------- */

/* The signal that asked training to stop (SIGINT from Ctrl-C, SIGTERM from
 * kill, timeout or a batch scheduler), or 0. A handler can only reach a
 * global. */
static volatile sig_atomic_t interrupted;
static void on_stop_signal(int sig) { interrupted = sig; }

/* The order of an epoch's examples: drawn from the seed and the epoch's
 * number, or the data's own. */
static void epoch_order(size_t *idx, size_t n, const TrainOptions *o, int epoch) {
  if (o->shuffle == SHUFFLE_NONE) {
    for (size_t i = 0; i < n; i++)
      idx[i] = i;
    return;
  }
  shuffle_indices(idx, n, epoch_seed(o->seed, epoch));
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
  double train_loss, train_metric, test_loss, test_metric, val_loss, val_metric, seconds, rate, lr;
  int have_test, have_val;
} EpochStats;

/* ", NAME loss X, NAME accuracy Y%" on the epoch's line. */
static void print_figures(const char *set, double loss, double metric, const MetricSpec *spec) {
  printf(", %s loss %.4g", set, loss);
  if (spec->kind == METRIC_NONE) return;
  char *v = metric_format(spec, metric);
  printf(", %s %s %s", set, metric_name(spec->kind), v);
  free(v);
}

/* The log's columns (docs/training.md): those of before, then validation,
 * then the learning rate. */
static void log_header(Buf *log, const MetricSpec *spec) {
  /* the metric's columns are named for it (train_accuracy, train_mse, ...), empty without one */
  const char *mname = spec->kind == METRIC_NONE ? "accuracy" : metric_name(spec->kind);
  buf_printf(log, "epoch,train_loss,train_%s,test_loss,test_%s,seconds,examples_per_second,val_loss,val_%s,lr\n",
             mname, mname, mname);
}

static void report_epoch(const EpochStats *s, const MetricSpec *spec, const TrainOptions *o, Buf *log) {
  char tm[32], tloss[32], tmet[32], vloss[32], vmet[32];
  int have_metric = spec->kind != METRIC_NONE;
  fmt_or_empty(tm, sizeof tm, "%.9g", s->train_metric, have_metric);
  fmt_or_empty(tloss, sizeof tloss, "%.9g", s->test_loss, s->have_test);
  fmt_or_empty(tmet, sizeof tmet, "%.9g", s->test_metric, s->have_test && have_metric);
  fmt_or_empty(vloss, sizeof vloss, "%.9g", s->val_loss, s->have_val);
  fmt_or_empty(vmet, sizeof vmet, "%.9g", s->val_metric, s->have_val && have_metric);
  buf_printf(log, "%d,%.9g,%s,%s,%s,%.3f,%.1f,%s,%s,%.9g\n", s->epoch, s->train_loss, tm, tloss, tmet, s->seconds,
             s->rate, vloss, vmet, s->lr);
  if (o->quiet) return;
  if (o->progress) fputs("\r\033[K", stderr);
  printf("epoch %d: train loss %.4g", s->epoch, s->train_loss);
  if (have_metric) {
    char *v = metric_format(spec, s->train_metric);
    printf(", train %s %s", metric_name(spec->kind), v);
    free(v);
  }
  if (s->have_val) print_figures("val", s->val_loss, s->val_metric, spec);
  if (s->have_test) print_figures("test", s->test_loss, s->test_metric, spec);
  if (o->schedule.kind != LR_CONSTANT || o->schedule.warmup > 0) printf(", lr %.4g", s->lr);
  printf(", %.2f s, %.0f examples/s\n", s->seconds, s->rate);
  fflush(stdout);
}

static int write_log(const char *path, Buf *log, char **err) {
  const char *paths[1] = {path};
  Buf *bufs[1] = {log};
  const char *why = NULL;
  if (write_files_atomically(paths, bufs, 1, &why) >= 0) {
    *err = str_printf("cannot write the log %s: %s", path, why);
    return 1;
  }
  return 0;
}

/* A saved state continues this training only with the options it was
 * made with: the same optimiser (its arrays), order of examples and steps.
 * NULL, or what does not fit. */
static char *resume_misfit(const TrainState *st, const TrainOptions *o, size_t n, size_t batch) {
  const char *f = o->resume_path;
  if (st->optim != o->opt->kind)
    return str_printf("%s holds the state of --optim %s; resume it with --optim %s, not %s", f,
                      optim_name(st->optim), optim_name(st->optim), optim_name(o->opt->kind));
  if (st->shuffle != o->shuffle)
    return str_printf("%s was trained with --shuffle %s; resume it with the same", f,
                      st->shuffle == SHUFFLE_NONE ? "none" : "epoch");
  if (st->seed != o->seed)
    return str_printf("%s was trained with --seed %llu; resume it with the same, not --seed %llu", f,
                      (unsigned long long)st->seed, (unsigned long long)o->seed);
  if (st->examples != n)
    return str_printf("%s was trained on %llu examples, but there are %zu now; resume it with the same data, "
                      "--limit and --val",
                      f, (unsigned long long)st->examples, n);
  if (st->batch != batch)
    return str_printf("%s was trained with --batch %llu; resume it with the same, not --batch %zu", f,
                      (unsigned long long)st->batch, batch);
  if (st->epochs_done >= o->epochs)
    return str_printf("%s has done %d epochs already; give --epochs more than %d (it counts them too)", f,
                      st->epochs_done, st->epochs_done);
  return NULL;
}

/* Where the training continues from: the resumed state, with the
 * optimiser's arrays and step count given back to it. */
static void resume_into(TrainState *pos, const TrainState *st, Optimizer *opt) {
  size_t bytes = (size_t)opt->n * opt->elem;
  *pos = *st;
  if (opt->m) memcpy(opt->m, st->m, bytes);
  if (opt->v) memcpy(opt->v, st->v, bytes);
  opt->step = (int64_t)st->steps;
}

int train(JitModel *m, void *params, const Dataset *train_set, const Dataset *test_set,
          const TrainOptions *o) {
  MetricSpec spec;
  char *err = NULL;
  if (metric_spec(m, train_set, o->metric, o->target, &spec, &err)) {
    fprintf(stderr, "bpc: %s\n", err);
    free(err);
    return 1;
  }
  size_t n = train_set->n, batch = o->batch ? o->batch : 32;
  if (batch > n) batch = n;
  uint64_t per_epoch = (n + batch - 1) / batch;
  /* the position, saved with the parameters; the optimiser's arrays are its own */
  TrainState pos = {.optim = o->opt->kind,
                    .shuffle = o->shuffle,
                    .batch = batch,
                    .examples = n,
                    .seed = o->seed,
                    .best_val = INFINITY};
  if (o->resume) {
    if ((err = resume_misfit(o->resume, o, n, batch))) {
      fprintf(stderr, "bpc: %s\n", err);
      free(err);
      return 1;
    }
    resume_into(&pos, o->resume, o->opt);
  }
  pos.m = o->opt->m;
  pos.v = o->opt->v;
  /* with early stopping or --save-best a save is a snapshot of the best epoch */
  int best_only = o->save_best || o->early_stop > 0;
  size_t pbytes = (size_t)m->nparams * m->elem;
  void *best = NULL;
  if (o->early_stop > 0) {
    best = malloc(pbytes + 1);
    memcpy(best, params, pbytes);
  }
  int threads = o->threads < 1 ? 1 : o->threads;
  if ((size_t)threads > batch) threads = (int)batch;
  Pool pool;
  pool_init(&pool, m, threads);
  size_t row = (size_t)m->ninputs * m->elem;
  size_t *idx = malloc(sizeof(size_t) * n);
  char *xb = malloc(batch * row);
  void *outputs = calloc(batch * (size_t)(m->noutputs + 1), m->elem);
  Buf log = {0};
  log_header(&log, &spec);
  interrupted = 0;
  struct sigaction sa = {0}, old_int, old_term;
  sa.sa_handler = on_stop_signal;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  int rc = 0, saved_epoch = 0, stopped_early = 0;
  for (int epoch = pos.epochs_done + 1; epoch <= o->epochs && !rc && !stopped_early; epoch++) {
    epoch_order(idx, n, o, epoch);
    double t0 = now_seconds(), last_draw = 0, loss_sum = pos.loss_sum, metric = pos.metric_sum;
    size_t done = pos.batches_done * batch < n ? pos.batches_done * batch : n, done_before = done;
    for (uint64_t b = pos.batches_done; b < per_epoch; b++) {
      size_t at = b * batch, nb = n - at < batch ? n - at : batch;
      for (size_t e = 0; e < nb; e++)
        memcpy(xb + e * row, (const char *)train_set->x + idx[at + e] * row, row);
      pool.training = 1;
      pool.params = params;
      pool.inputs = xb;
      pool.outputs = spec.kind != METRIC_NONE ? outputs : NULL;
      pool.count = nb;
      double loss = pool_run(&pool);
      if (!isfinite(loss)) {
        if (o->progress) fputs("\r\033[K", stderr);
        char *where = !saved_epoch ? str_printf(" (try a smaller --lr)")
                      : best_only  ? str_printf("; the parameters of epoch %d, the best on validation, are in %s",
                                                saved_epoch, o->save)
                                   : str_printf("; the parameters saved after the previous epoch are in %s", o->save);
        fprintf(stderr, "bpc: training stopped: the loss became %s in epoch %d, batch %llu%s\n",
                isnan(loss) ? "NaN" : "infinite", epoch, (unsigned long long)b + 1, where);
        free(where);
        rc = 1;
        break;
      }
      if (m->use_float)
        reduce_f(&pool);
      else
        reduce_d(&pool);
      double lr = schedule_lr(&o->schedule, o->opt->lr, epoch, b, per_epoch, o->epochs);
      optim_step(o->opt, params, pool.w[0].grad, 1.0 / (double)nb, lr);
      loss_sum += loss;
      metric += metric_sum(m, &spec, xb, outputs, nb);
      done += nb;
      pos.batches_done = b + 1;
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
      const char *by = interrupted == SIGTERM ? "stopped by SIGTERM" : "interrupted";
      pos.loss_sum = loss_sum;
      pos.metric_sum = metric;
      pos.steps = (uint64_t)o->opt->step;
      if (o->save && best_only && saved_epoch) /* the file keeps the best epoch */
        fprintf(stderr, "bpc: %s in epoch %d after %zu examples; the parameters of epoch %d, the best on "
                "validation, are in %s\n", by, epoch, done, saved_epoch, o->save);
      else if (o->save && best_only)
        fprintf(stderr, "bpc: %s in epoch %d after %zu examples; nothing saved (no epoch ended)\n", by, epoch,
                done);
      else if (o->save && params_save_state(o->save, m, params, &pos, &err) == 0)
        fprintf(stderr, "bpc: %s in epoch %d after %zu examples; parameters saved to %s\n", by, epoch, done,
                o->save);
      else
        fprintf(stderr, "bpc: %s in epoch %d after %zu examples%s%s\n", by, epoch, done, err ? ": " : "",
                err ? err : "");
      rc = 1;
      break;
    }
    pos.epochs_done = epoch;
    pos.batches_done = 0;
    pos.loss_sum = pos.metric_sum = 0;
    EpochStats s = {.epoch = epoch,
                    .train_loss = loss_sum / (double)n,
                    .train_metric = metric / (double)n,
                    .seconds = seconds,
                    .rate = (double)(done - done_before) / seconds,
                    .lr = schedule_lr(&o->schedule, o->opt->lr, epoch, per_epoch - 1, per_epoch, o->epochs)};
    int improved = 0;
    if (o->val) {
      EvalResult r = evaluate(m, params, o->val, &spec, threads);
      s.have_val = 1;
      s.val_loss = r.loss;
      s.val_metric = r.metric;
      improved = r.loss < pos.best_val;
      if (improved) {
        pos.best_val = r.loss;
        pos.best_epoch = epoch;
        pos.since_best = 0;
        if (best) memcpy(best, params, pbytes);
      } else {
        pos.since_best++;
      }
    }
    if (test_set) {
      EvalResult r = evaluate(m, params, test_set, &spec, threads);
      s.have_test = 1;
      s.test_loss = r.loss;
      s.test_metric = r.metric;
    }
    report_epoch(&s, &spec, o, &log);
    pos.steps = (uint64_t)o->opt->step;
    if (o->save && (!best_only || improved)) {
      if (params_save_state(o->save, m, params, &pos, &err)) {
        fprintf(stderr, "bpc: %s\n", err);
        rc = 1;
      }
      saved_epoch = epoch;
    }
    if (o->log && write_log(o->log, &log, &err)) {
      fprintf(stderr, "bpc: %s\n", err);
      rc = 1;
    }
    stopped_early = o->early_stop > 0 && pos.since_best >= o->early_stop;
  }
  if (best && pos.best_epoch && !rc) {
    if (stopped_early && !o->quiet)
      printf("early stop after epoch %d: no better validation loss for %d epochs\n", pos.epochs_done,
             o->early_stop);
    /* a resumed run that never improved on the file's best keeps the parameters it started from */
    memcpy(params, best, pbytes);
    if (!o->quiet) printf("kept the parameters of epoch %d (val loss %.4g)\n", pos.best_epoch, pos.best_val);
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  free(err);
  buf_free(&log);
  free(best);
  free(idx);
  free(xb);
  free(outputs);
  pool_free(&pool);
  return rc;
}
