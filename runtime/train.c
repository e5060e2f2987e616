/* train.c — minibatch gradient descent on a JIT-compiled model.
 *
 * Each epoch shuffles the examples (deterministically from the seed), and
 * for each minibatch: splits its examples over the worker threads, each
 * copying its own and computing their summed gradient into its own buffer;
 * then splits the parameters, each thread adding the others' gradients
 * into the first's over its range, in thread order (so a run repeats
 * exactly for a given thread count), and taking the optimiser's step
 * there. A model with the team form (compiler/emit_c.c) instead has its
 * threads share each step: every thread runs the whole batch's step with
 * its part of each large product and loop, into one gradient, then updates
 * its rows of the parameters. The loss and accuracy reported for an epoch
 * are those seen while training on it. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"
#include "runtime.h"

/* ---- worker threads ----------------------------------------------------------- */

/* A barrier that spins before it sleeps. A step of a small model takes
 * tenths of a millisecond and the threads meet two or three times in it:
 * going to sleep in the kernel and being woken at each meeting would be a
 * noticeable part of the step. The spin is bounded (SPIN_ROUNDS pauses,
 * some 100 us) so that threads sharing a core with others (more threads
 * than cores, mpirun's ranks) sleep instead of taking the time the others
 * need. */
enum { SPIN_ROUNDS = 1 << 12 };
typedef struct Barrier {
  atomic_uint arrived, generation;
  unsigned n;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} Barrier;

static void barrier_init(Barrier *b, unsigned n) {
  atomic_init(&b->arrived, 0);
  atomic_init(&b->generation, 0);
  b->n = n;
  pthread_mutex_init(&b->mu, NULL);
  pthread_cond_init(&b->cv, NULL);
}

static void barrier_destroy(Barrier *b) {
  pthread_mutex_destroy(&b->mu);
  pthread_cond_destroy(&b->cv);
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static void barrier_wait(Barrier *b) {
  unsigned gen = atomic_load(&b->generation);
  if (atomic_fetch_add(&b->arrived, 1) + 1 == b->n) { /* the last one in lets the others go */
    atomic_store(&b->arrived, 0);
    pthread_mutex_lock(&b->mu);
    atomic_store(&b->generation, gen + 1);
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return;
  }
  for (int i = 0; i < SPIN_ROUNDS; i++) {
    if (atomic_load(&b->generation) != gen) return;
    cpu_relax();
  }
  pthread_mutex_lock(&b->mu); /* the generation changes under the mutex: no wake-up is missed */
  while (atomic_load(&b->generation) == gen)
    pthread_cond_wait(&b->cv, &b->mu);
  pthread_mutex_unlock(&b->mu);
}

typedef struct Pool Pool;
typedef struct Worker {
  Pool *pool;
  int index;
  pthread_t thread;
  void *ws, *grad;
  void *soa; /* one fixed batch rearranged input by input */
  double loss;
} Worker;

/* What the threads do when the pool runs: their share of the batch's
 * examples, or their range of the parameters (the gradient summed over the
 * threads, then, with `step`, the optimiser's update). */
typedef enum { JOB_EXAMPLES, JOB_PARAMS } JobKind;

struct Pool {
  JitModel *m;
  int n; /* threads, including the caller */
  Worker *w;
  Barrier start, done;
  Barrier team; /* the team form's barrier (jit_train_team) */
  int quit;
  JobKind job;
  int teamed; /* the last examples job ran the team form: the gradient is whole in w[0].grad */
  int gathered; /* the last examples job's batch is in w[0].soa (gather_columns), not in inputs */
  int update_in_team; /* a team job ends with the update (step, step_params, ...) where its loss is finite */
  /* JOB_EXAMPLES */
  int training;
  uint64_t dropout_seed; /* training: example j of the job draws its dropout masks from dropout_seed + j */
  const void *params, *inputs;
  void *outputs;
  size_t count;
  const char *rows;    /* non-NULL: each thread first copies its examples, rows[order[e]], into inputs */
  const size_t *order; /* the job's examples in the dataset */
  /* JOB_PARAMS */
  int reduce;            /* add the other threads' gradients into the first's */
  const Optimizer *step; /* non-NULL: then the update of step_params at step_scale and step_lr */
  void *step_params;
  double step_scale, step_lr;
};

/* Thread i's share of the examples: whole fixed batches where possible. */
static void slice(Pool *p, int i, size_t *from, size_t *len) {
  size_t per = (p->count + (size_t)p->n - 1) / (size_t)p->n;
  size_t fixed = (size_t)p->m->fixed;
  if (fixed > 1) per = (per + fixed - 1) / fixed * fixed;
  *from = (size_t)i * per < p->count ? (size_t)i * per : p->count;
  *len = p->count - *from < per ? p->count - *from : per;
}

/* The dataset's rows are read in shuffled order, each from main memory:
 * copied one after the other, every row waits for its own first lines
 * (the prefetchers follow a row, not the jump to the next). Asking for the
 * lines of the row PREFETCH_AHEAD places on while copying this one keeps
 * several rows in flight: the batch's copy took 20-27 us against 25-42
 * (Fashion MLP, batch 64, alternating runs). (Asking for the next job's
 * rows a whole step ahead was measured too: no faster on one thread,
 * slower on two.) */
enum { PREFETCH_AHEAD = 8 };
static void prefetch_bytes(const char *at, size_t n) {
  for (size_t o = 0; o < n; o += 64)
    __builtin_prefetch(at + o);
}

/* Examples [from, to) of the job copied into the batch's buffer. */
static void copy_examples(Pool *p, size_t from, size_t to) {
  size_t in_row = (size_t)p->m->ninputs * p->m->elem;
  char *in = (char *)p->inputs;
  for (size_t e = from; e < to; e++) {
    if (e + PREFETCH_AHEAD < to) prefetch_bytes(p->rows + p->order[e + PREFETCH_AHEAD] * in_row, in_row);
    memcpy(in + e * in_row, p->rows + p->order[e] * in_row, in_row);
  }
}

static void team_sync(void *barrier) { barrier_wait(barrier); }

/* Whether the threads share the job's step (the team form): a training job
 * of exactly one fixed batch, on more than one thread. */
static int team_job(const Pool *p) {
  return p->m->train_team && p->n > 1 && p->training && p->rows && p->count == (size_t)p->m->fixed;
}

/* A training job of exactly one fixed batch from the dataset, on one
 * thread or in the team form: its batch is copied straight from the
 * dataset into the layout the batched step reads (gather_columns), not
 * through inputs. */
static int gathered_job(const Pool *p) {
  return p->training && p->rows && p->count == (size_t)p->m->fixed && p->m->fixed > 1 &&
         (p->n == 1 || team_job(p));
}

/* The batch laid out input by input (jit_gather's layout), straight from
 * the dataset (one copy, where copy_examples and jit_gather make two; the
 * prefetch as in copy_examples, which made no difference measurable here,
 * half a row a thread). In the team form thread `part` copies its columns
 * of each wide input, those of the rows of a parameter it multiplies
 * (TEAM_KSPLIT shares X @ W over the rows of W the same way, bpk_share),
 * for every example; part 0 copies the narrow inputs. Each line of the batch is
 * then in the cache of the core that reads it, and no thread reads what
 * another wrote. (The examples' own rows, p->inputs, are not written: the
 * metric reads the targets from this layout, metric_sum_gathered.) */
static void gather_columns(Pool *p, int part) {
  JitModel *m = p->m;
  size_t B = p->count, width = (size_t)m->ninputs, es = m->elem;
  char *out = p->w[0].soa;
  for (int s = 0; s < m->info.inputs.len; s++) {
    const TensorInfo *t = &m->info.inputs.items[s];
    size_t off = (size_t)t->offset, k = (size_t)t->numel, lo = 0, hi = part == 0 ? k : 0;
    if (k * es >= (size_t)(2 * 64 * p->n)) bpk_share(k, 1, part, p->n, &lo, &hi); /* two lines a part or more */
    for (size_t e = 0; lo < hi && e < B; e++) {
      if (e + PREFETCH_AHEAD < B)
        prefetch_bytes(p->rows + (p->order[e + PREFETCH_AHEAD] * width + off + lo) * es, (hi - lo) * es);
      memcpy(out + (jit_gathered_at(m, t, e) + lo) * es, p->rows + (p->order[e] * width + off + lo) * es,
             (hi - lo) * es);
    }
  }
}

/* After the team form: the update only, each thread over its rows of each
 * parameter (bpk_share_rows), the rows the team's products wrote the
 * gradient of (bpk_mm_part by rows), so that they stay in its core's cache.
 * A thread's rows are contiguous: shared by columns instead, each row's
 * lines would alternate between the cores, and the prefetchers pull in the
 * other core's lines (measured: the update took twice as long). */
static void run_params_owned(Pool *p, int i) {
  const TensorList *ps = &p->m->info.params;
  for (int k = 0; k < ps->len; k++) {
    const TensorInfo *t = &ps->items[k];
    size_t rows = t->rank ? (size_t)t->dim[0] : 1, row = (size_t)t->numel / (rows ? rows : 1), lo, hi;
    bpk_share_rows(rows, row * p->m->elem, i, p->n, &lo, &hi);
    if (lo < hi)
      optim_apply(p->step, p->step_params, p->w[0].grad, p->step_scale, p->step_lr,
                  t->offset + (int64_t)(lo * row), t->offset + (int64_t)(hi * row));
  }
}

/* The team form: each thread copies its share of the batch, then all run
 * the step together, into the first's workspace and gradient. */
static void run_team(Pool *p, Worker *w) {
  JitModel *m = p->m;
  gather_columns(p, w->index);
  barrier_wait(&p->team);
  double loss = jit_train_team(m, p->params, p->w[0].soa, p->w[0].grad, p->outputs, p->w[0].ws, 0, 1,
                               p->dropout_seed, w->index, p->n, team_sync, &p->team);
  w->loss = w->index == 0 ? loss : 0;
  /* every part has the whole loss (the step ends at a barrier): a NaN step updates nothing, as the
     separate update would not have run */
  if (p->update_in_team && isfinite(loss)) run_params_owned(p, w->index);
}

/* One thread, one fixed batch: straight from the dataset into the batch's layout. */
static void run_gathered(Pool *p, Worker *w) {
  gather_columns(p, 0);
  w->loss = jit_train_fixed(p->m, p->params, w->soa, w->grad, p->outputs, w->ws, 0, 1, p->dropout_seed);
}

static void run_slice(Pool *p, Worker *w) {
  if (team_job(p)) {
    run_team(p, w);
    return;
  }
  if (p->gathered) {
    run_gathered(p, w);
    return;
  }
  size_t from, len;
  slice(p, w->index, &from, &len);
  JitModel *m = p->m;
  size_t in_row = (size_t)m->ninputs * m->elem, out_row = (size_t)m->noutputs * m->elem;
  char *in = (char *)p->inputs + from * in_row; /* written only when p->rows is set */
  char *out = p->outputs ? (char *)p->outputs + from * out_row : NULL;
  if (p->rows) copy_examples(p, from, from + len); /* split too: each thread its own examples */
  w->loss = 0;
  size_t fixed = m->fixed > 1 ? (size_t)m->fixed : 0;
  int acc = 0;                            /* the first call stores this thread's gradient, later ones add */
  uint64_t seed = p->dropout_seed + from; /* by the example's place in the batch, not the thread's */
  for (; fixed && len >= fixed;
       len -= fixed, in += fixed * in_row, out = out ? out + fixed * out_row : NULL, seed += fixed) {
    jit_gather(m, in, w->soa);
    if (p->training)
      w->loss += jit_train_fixed(m, p->params, w->soa, w->grad, out, w->ws, acc, 1, seed);
    else
      w->loss += jit_eval_fixed(m, p->params, w->soa, out, w->ws);
    acc = 1;
  }
  if (len == 0 && acc) return;
  /* the rest one example at a time (no examples: a zero gradient) */
  if (p->training)
    w->loss += jit_train_batch(m, p->params, in, len, w->grad, out, w->ws, acc, 1, seed);
  else if (len)
    w->loss += jit_eval_batch(m, p->params, in, len, out, w->ws);
}

/* Thread i's range of the parameters: equal parts, each a whole number of
 * cache lines so that no two threads write the same line. */
static void param_range(const Pool *p, int i, int64_t *from, int64_t *to) {
  int64_t n = p->m->nparams, line = 64 / (int64_t)p->m->elem;
  int64_t per = ((n + p->n - 1) / p->n + line - 1) / line * line;
  *from = (int64_t)i * per < n ? (int64_t)i * per : n;
  *to = *from + per < n ? *from + per : n;
}

/* The threads' gradients summed into the first thread's buffer over
 * [from, to), in thread order for every element (so a run repeats exactly
 * for a given thread count). Nothing is cleared: each batch stores its
 * gradient afresh (acc 0). */
#define DEFINE_PARAMS_JOB(T, S)                                                                              \
  static void params_job_##S(Pool *p, int64_t from, int64_t to) {                                            \
    T *g0 = p->w[0].grad;                                                                                    \
    for (int t = 1; p->reduce && t < p->n; t++) /* a kernel: this file is not compiled to vectorise */       \
      bpk_add_##S(g0 + from, (const T *)p->w[t].grad + from, (size_t)(to - from));                           \
  }
DEFINE_PARAMS_JOB(double, d)
DEFINE_PARAMS_JOB(float, f)

/* Thread i's range of the parameters: the sum, then the update, in chunks
 * of PARAMS_CHUNK elements (a few kilobytes of each array), so that the
 * step reads the sum while it is still in the L1 cache. */
enum { PARAMS_CHUNK = 1024 };
static void run_params(Pool *p, int i) {
  int64_t from, to;
  param_range(p, i, &from, &to);
  int64_t chunk = p->reduce && p->n > 1 ? PARAMS_CHUNK : to - from; /* nothing to sum: one pass */
  for (int64_t a = from; a < to; a += chunk) {
    int64_t b = to - a < chunk ? to : a + chunk;
    if (p->m->use_float)
      params_job_f(p, a, b);
    else
      params_job_d(p, a, b);
    if (p->step) optim_apply(p->step, p->step_params, p->w[0].grad, p->step_scale, p->step_lr, a, b);
  }
}

static void run_job(Pool *p, Worker *w) {
  if (p->job == JOB_PARAMS && p->teamed && p->step)
    run_params_owned(p, w->index);
  else if (p->job == JOB_PARAMS)
    run_params(p, w->index);
  else
    run_slice(p, w);
}

static void *worker_main(void *arg) {
  Worker *w = arg;
  Pool *p = w->pool;
  flush_subnormals();
  for (;;) {
    barrier_wait(&p->start);
    if (p->quit) {
      bpk_thread_done();
      return NULL;
    }
    run_job(p, w);
    barrier_wait(&p->done);
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
    /* the team form runs in the first thread's workspace, with room for every part's partials */
    size_t extra = i == 0 && m->train_team ? (size_t)p->n * m->team_scratch : 0;
    p->w[i].ws = calloc_aligned(m->ws_elems + extra + 1, m->elem);
    p->w[i].grad = calloc_aligned((size_t)m->nparams + 1, m->elem);
    p->w[i].soa = calloc_aligned((size_t)(m->fixed > 1 ? m->fixed : 1) * (size_t)(m->ninputs + 1), m->elem);
  }
  if (p->n > 1) {
    barrier_init(&p->start, (unsigned)p->n);
    barrier_init(&p->done, (unsigned)p->n);
    barrier_init(&p->team, (unsigned)p->n);
    for (int i = 1; i < p->n; i++)
      pthread_create(&p->w[i].thread, NULL, worker_main, &p->w[i]);
  }
}

/* Runs the current job on every thread; returns the summed loss. */
static double pool_run(Pool *p) {
  if (p->job == JOB_EXAMPLES) {
    p->teamed = team_job(p);
    p->gathered = gathered_job(p);
  }
  if (p->n > 1) barrier_wait(&p->start);
  run_job(p, &p->w[0]);
  if (p->n > 1) barrier_wait(&p->done);
  double loss = 0;
  for (int i = 0; p->job == JOB_EXAMPLES && i < p->n; i++)
    loss += p->w[i].loss;
  return loss;
}

/* The threads' gradients summed into the first thread's buffer; with opt,
 * the update too, each thread over its range of the parameters. */
static void pool_params(Pool *p, int reduce, const Optimizer *opt, void *params, double scale, double lr) {
  if (p->teamed) reduce = 0; /* the team wrote one gradient */
  if (!(reduce && p->n > 1) && !opt) return;
  p->job = JOB_PARAMS;
  p->reduce = reduce;
  p->step = opt;
  p->step_params = params;
  p->step_scale = scale;
  p->step_lr = lr;
  pool_run(p);
  p->job = JOB_EXAMPLES;
}

static void pool_free(Pool *p) {
  if (p->n > 1) {
    p->quit = 1;
    barrier_wait(&p->start);
    for (int i = 1; i < p->n; i++)
      pthread_join(p->w[i].thread, NULL);
    barrier_destroy(&p->start);
    barrier_destroy(&p->done);
    barrier_destroy(&p->team);
  }
  for (int i = 0; i < p->n; i++) {
    free(p->w[i].ws);
    free(p->w[i].grad);
    free(p->w[i].soa);
  }
  free(p->w);
}

/* ---- evaluation ----------------------------------------------------------------- */

EvalResult evaluate(JitModel *m, const void *params, const Dataset *d, const MetricSpec *spec, int threads,
                    const Dist *dist) {
  enum { CHUNK = 1024 };
  Pool pool;
  pool_init(&pool, m, threads);
  void *outputs = calloc((size_t)CHUNK * (size_t)(m->noutputs + 1), m->elem);
  double loss = 0, metric = 0;
  size_t first = 0, mine = d->n; /* this process's share of the examples */
  dist_share(dist, d->n, &first, &mine);
  for (size_t at = first; at < first + mine; at += CHUNK) {
    size_t n = first + mine - at < CHUNK ? first + mine - at : CHUNK;
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
  double sums[2] = {loss, metric};
  dist_sum_doubles(dist, sums, 2);
  loss = sums[0];
  metric = sums[1];
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

/* Where a minibatch's dropout masks come from: --seed, the epoch and the
 * batch's number, so a run repeats exactly, on any number of threads. */
static uint64_t dropout_seed(uint64_t seed, int epoch, size_t batch_no) {
  uint64_t s = seed;
  s = splitmix64(&s) + (uint64_t)epoch;
  s = splitmix64(&s) + (uint64_t)batch_no;
  return splitmix64(&s);
}

static void format_duration(char *buf, size_t len, double s) {
  if (s < 60)
    snprintf(buf, len, "%.0fs", s);
  else
    snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

/* done examples of n, of which before were done by a run this one resumes. */
static void progress(int epoch, int epochs, size_t done, size_t before, size_t n, double loss,
                     double elapsed) {
  char eta[32];
  double rate = elapsed > 0 ? (double)(done - before) / elapsed : 0;
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

/* "SEP SET loss X, SET accuracy Y%" on the epoch's line. */
static void print_figures(const char *sep, const char *set, double loss, double metric,
                          const MetricSpec *spec) {
  printf("%s %s loss %.4g", sep, set, loss);
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
  buf_printf(log,
             "epoch,train_loss,train_%s,test_loss,test_%s,seconds,examples_per_second,val_loss,val_%s,lr\n",
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
  buf_printf(log, "%d,%.9g,%s,%s,%s,%.3f,%.1f,%s,%s,%.9g\n", s->epoch, s->train_loss, tm, tloss, tmet,
             s->seconds, s->rate, vloss, vmet, s->lr);
  if (o->quiet) return;
  if (o->progress) fputs("\r\033[K", stderr);
  printf("epoch %d", s->epoch);
  print_figures(":", "train", s->train_loss, s->train_metric, spec);
  if (s->have_val) print_figures(",", "val", s->val_loss, s->val_metric, spec);
  if (s->have_test) print_figures(",", "test", s->test_loss, s->test_metric, spec);
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

/* One training run: the model, its data, the worker threads and buffers,
 * and where the run is. */
typedef struct Trainer {
  JitModel *m;
  void *params;
  const Dataset *data, *test;
  const TrainOptions *o;
  MetricSpec spec;
  size_t n, batch;
  uint64_t per_epoch;
  int threads;
  Pool pool;
  size_t *idx;     /* the epoch's order */
  char *xb;        /* the batch's examples */
  void *outputs;   /* the batch's outputs, for the metric */
  TrainState pos;  /* saved with the parameters; its arrays are the optimiser's */
  int best_only;   /* --save-best or --early-stop: a save is a snapshot of the best epoch */
  void *best;      /* --early-stop: the best epoch's parameters */
  int saved_epoch; /* the epoch this run last saved, or 0 */
  Buf log;
  uint64_t steps; /* taken by this run (the --test-fail-at hook counts them) */
  int stop;       /* an interrupt reached this process or another: stop after this step */
  /* the current epoch */
  double loss_sum, metric_sum;
  size_t done, done_before; /* examples trained on, and of those by a run this one resumes */
} Trainer;

/* Whether this process speaks for the run: the only one, or rank 0 of
 * those mpirun started (the others print nothing unless they fail alone). */
static int speaks(const TrainOptions *o) { return !o->dist || o->dist->rank == 0; }

/* Everything a run needs before its first step; 1 (message printed) when
 * no metric can be had or a resumed state does not fit. */
static int trainer_init(Trainer *t, JitModel *m, void *params, const Dataset *data, const Dataset *test,
                        const TrainOptions *o) {
  memset(t, 0, sizeof *t);
  char *err = NULL;
  if (metric_spec(m, data, o->metric, o->target, &t->spec, &err)) { /* the same on every process */
    if (speaks(o)) fprintf(stderr, "bpc: %s\n", err);
    free(err);
    return 1;
  }
  t->m = m;
  t->params = params;
  t->data = data;
  t->test = test;
  t->o = o;
  t->n = data->n;
  t->batch = o->batch ? o->batch : 32;
  if (t->batch > t->n) t->batch = t->n;
  t->per_epoch = (t->n + t->batch - 1) / t->batch;
  t->pos = (TrainState){.optim = o->opt->kind,
                        .shuffle = o->shuffle,
                        .batch = t->batch,
                        .examples = t->n,
                        .seed = o->seed,
                        .best_val = INFINITY};
  if (o->resume) {
    if ((err = resume_misfit(o->resume, o, t->n, t->batch))) {
      if (speaks(o)) fprintf(stderr, "bpc: %s\n", err);
      free(err);
      return 1;
    }
    resume_into(&t->pos, o->resume, o->opt);
  }
  t->pos.m = o->opt->m;
  t->pos.v = o->opt->v;
  t->best_only = o->save_best || o->early_stop > 0;
  if (o->early_stop > 0) {
    t->best = malloc((size_t)m->nparams * m->elem + 1);
    memcpy(t->best, params, (size_t)m->nparams * m->elem);
  }
  t->threads = o->threads < 1 ? 1 : o->threads;
  if ((size_t)t->threads > t->batch) t->threads = (int)t->batch;
  pool_init(&t->pool, m, t->threads);
  size_t row = (size_t)m->ninputs * m->elem;
  t->idx = malloc(sizeof(size_t) * t->n);
  t->xb = calloc_aligned(t->batch, row); /* threads write their examples side by side */
  t->outputs = calloc(t->batch * (size_t)(m->noutputs + 1), m->elem);
  log_header(&t->log, &t->spec);
  return 0;
}

static void trainer_free(Trainer *t) {
  buf_free(&t->log);
  free(t->best);
  free(t->idx);
  free(t->xb);
  free(t->outputs);
  pool_free(&t->pool);
}

/* Where the parameters of the last save are, for a message (after "; "). */
static char *saved_where(const Trainer *t) {
  if (t->best_only)
    return str_printf("the parameters of epoch %d, the best on validation, are in %s", t->saved_epoch,
                      t->o->save);
  return str_printf("the parameters saved after the previous epoch are in %s", t->o->save);
}

static void report_bad_loss(const Trainer *t, int epoch, uint64_t b, double loss) {
  if (!speaks(t->o)) return; /* every process sees the same loss */
  if (t->o->progress) fputs("\r\033[K", stderr);
  char *where = t->saved_epoch ? saved_where(t) : NULL;
  fprintf(stderr, "bpc: training stopped: the loss became %s in epoch %d, batch %llu%s%s\n",
          isnan(loss) ? "NaN" : "infinite", epoch, (unsigned long long)b + 1,
          where ? "; " : " (try a smaller --lr)", where ? where : "");
  free(where);
}

/* The epoch's steps from where the run is: 0, or 1 on a NaN or infinite
 * loss (message printed). Stops after the batch an interrupt arrives in. */
static int train_steps(Trainer *t, int epoch) {
  JitModel *m = t->m;
  const TrainOptions *o = t->o;
  double t0 = now_seconds(), last_draw = 0;
  for (uint64_t b = t->pos.batches_done; b < t->per_epoch; b++) {
    size_t at = b * t->batch, nb = t->n - at < t->batch ? t->n - at : t->batch;
    /* this process's contiguous slice of the minibatch (all of it without mpirun) */
    size_t from = 0, len = nb;
    dist_share(o->dist, nb, &from, &len);
    if (o->fail_step && t->steps + 1 == (uint64_t)o->fail_step && o->dist && o->dist->rank == o->fail_rank) {
      fprintf(stderr, "bpc: rank %d dies at step %d (--test-fail-at)\n", o->fail_rank, o->fail_step);
      _exit(3); /* as a crash would: no message to the others, no MPI_Finalize */
    }
    t->pool.training = 1;
    /* example j of the minibatch draws its masks from the batch's seed + j, on whichever rank */
    t->pool.dropout_seed = dropout_seed(o->seed, epoch, (size_t)b + 1) + from;
    t->pool.params = t->params;
    t->pool.inputs = t->xb;
    t->pool.outputs = t->spec.kind != METRIC_NONE ? t->outputs : NULL;
    t->pool.count = len;
    t->pool.rows = t->data->x;
    t->pool.order = t->idx + at + from;
    /* without other processes or clipping, which need the whole gradient first, each thread sums
       and updates its range of the parameters in one pass; threads that share the step (the team
       form) update their rows at its end, without meeting again */
    int fused = !dist_shared(o->dist) && !(o->opt->clip_norm > 0);
    double lr = schedule_lr(&o->schedule, o->opt->lr, epoch, b, t->per_epoch, o->epochs), scale = 0;
    t->pool.update_in_team = fused && team_job(&t->pool);
    if (t->pool.update_in_team) {
      scale = optim_begin_step(o->opt, NULL, 1.0 / (double)nb); /* no clipping: the gradient is not read */
      t->pool.step = o->opt;
      t->pool.step_params = t->params;
      t->pool.step_scale = scale;
      t->pool.step_lr = lr;
    }
    double loss = pool_run(&t->pool);
    t->pool.rows = NULL;
    if (!fused) pool_params(&t->pool, 1, NULL, NULL, 0, 0);
    /* the step's loss, metric and stop request over all the processes, so that every one of them
       sees a NaN, or an interrupt, at the same step */
    double metric = t->pool.gathered ? metric_sum_gathered(m, &t->spec, t->pool.w[0].soa, t->outputs, len)
                                   : metric_sum(m, &t->spec, t->xb, t->outputs, len);
    double sums[3] = {loss, metric, interrupted != 0};
    dist_sum_doubles(o->dist, sums, 3);
    dist_sum(o->dist, t->pool.w[0].grad, (size_t)m->nparams, m->elem);
    t->steps++;
    if (!isfinite(sums[0])) {
      report_bad_loss(t, epoch, b, sums[0]);
      return 1;
    }
    if (!t->pool.update_in_team) {
      scale = optim_begin_step(o->opt, t->pool.w[0].grad, 1.0 / (double)nb);
      pool_params(&t->pool, fused, o->opt, t->params, scale, lr);
    }
    t->loss_sum += sums[0];
    t->metric_sum += sums[1];
    t->done += nb;
    t->pos.batches_done = b + 1;
    if (o->progress && !o->quiet && now_seconds() - last_draw > 0.1) {
      last_draw = now_seconds();
      progress(epoch, o->epochs, t->done, t->done_before, t->n, t->loss_sum / (double)t->done,
               last_draw - t0);
    }
    if (sums[2] != 0) {
      t->stop = 1;
      break;
    }
  }
  return 0;
}

/* Saves mid-epoch (what --resume continues from), except over a best
 * epoch's snapshot, and says so. */
static void save_interrupted(Trainer *t, int epoch) {
  const TrainOptions *o = t->o;
  if (!speaks(o)) return; /* rank 0 saves and says so */
  if (o->progress) fputs("\r\033[K", stderr);
  const char *by = interrupted == SIGTERM ? "stopped by SIGTERM" : "interrupted";
  t->pos.loss_sum = t->loss_sum;
  t->pos.metric_sum = t->metric_sum;
  t->pos.steps = (uint64_t)o->opt->step;
  char *err = NULL, *where = NULL;
  if (o->save && t->best_only)
    where = t->saved_epoch ? saved_where(t) : str_printf("nothing saved (no epoch ended)");
  else if (o->save && params_save_state(o->save, t->m, t->params, &t->pos, &err) == 0)
    where = str_printf("parameters saved to %s", o->save);
  else
    where = err;
  fprintf(stderr, "bpc: %s in epoch %d after %zu examples%s%s\n", by, epoch, t->done,
          !where ? ""
          : err  ? ": "
                 : "; ",
          where ? where : "");
  free(where);
}

/* The epoch's end: validation (and the best so far), test, the report,
 * the save and the log. Returns 1 (message printed) when a file could not
 * be written. */
static int finish_epoch(Trainer *t, int epoch, double seconds) {
  const TrainOptions *o = t->o;
  t->pos.epochs_done = epoch;
  t->pos.batches_done = 0;
  t->pos.loss_sum = t->pos.metric_sum = 0;
  EpochStats s = {
      .epoch = epoch,
      .train_loss = t->loss_sum / (double)t->n,
      .train_metric = t->metric_sum / (double)t->n,
      .seconds = seconds,
      .rate = (double)(t->done - t->done_before) / seconds,
      .lr = schedule_lr(&o->schedule, o->opt->lr, epoch, t->per_epoch - 1, t->per_epoch, o->epochs)};
  int improved = 0;
  if (o->val) {
    EvalResult r = evaluate(t->m, t->params, o->val, &t->spec, t->threads, o->dist);
    s.have_val = 1;
    s.val_loss = r.loss;
    s.val_metric = r.metric;
    improved = r.loss < t->pos.best_val;
    if (improved) {
      t->pos.best_val = r.loss;
      t->pos.best_epoch = epoch;
      t->pos.since_best = 0;
      if (t->best) memcpy(t->best, t->params, (size_t)t->m->nparams * t->m->elem);
    } else {
      t->pos.since_best++;
    }
  }
  if (t->test) {
    EvalResult r = evaluate(t->m, t->params, t->test, &t->spec, t->threads, o->dist);
    s.have_test = 1;
    s.test_loss = r.loss;
    s.test_metric = r.metric;
  }
  report_epoch(&s, &t->spec, o, &t->log);
  t->pos.steps = (uint64_t)o->opt->step;
  int rc = 0;
  char *err = NULL;
  if (o->save && (!t->best_only || improved)) {
    if (params_save_state(o->save, t->m, t->params, &t->pos, &err)) {
      fprintf(stderr, "bpc: %s\n", err);
      free(err);
      err = NULL;
      rc = 1;
    }
    t->saved_epoch = epoch;
  }
  if (o->log && write_log(o->log, &t->log, &err)) {
    fprintf(stderr, "bpc: %s\n", err);
    free(err);
    rc = 1;
  }
  return dist_any(o->dist, rc); /* every process stops at the same point, or the others would wait forever */
}

/* With early stopping the run ends with the best epoch's parameters (a
 * resumed run that never improved on its file's best keeps those it
 * started from). */
static void keep_best(Trainer *t, int stopped_early) {
  if (!t->best || !t->pos.best_epoch) return;
  if (stopped_early && !t->o->quiet)
    printf("early stop after epoch %d: no better validation loss for %d epochs\n", t->pos.epochs_done,
           t->o->early_stop);
  memcpy(t->params, t->best, (size_t)t->m->nparams * t->m->elem);
  if (!t->o->quiet)
    printf("kept the parameters of epoch %d (val loss %.4g)\n", t->pos.best_epoch, t->pos.best_val);
}

int train(JitModel *m, void *params, const Dataset *train_set, const Dataset *test_set,
          const TrainOptions *o) {
  Trainer t;
  if (trainer_init(&t, m, params, train_set, test_set, o)) return 1;
  interrupted = 0;
  struct sigaction sa = {0}, old_int, old_term;
  sa.sa_handler = on_stop_signal;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  int rc = 0, stopped_early = 0;
  for (int epoch = t.pos.epochs_done + 1; epoch <= o->epochs && !rc && !stopped_early; epoch++) {
    epoch_order(t.idx, t.n, o, epoch);
    /* a run resumed mid-epoch goes on with the sums it saved */
    t.loss_sum = t.pos.loss_sum;
    t.metric_sum = t.pos.metric_sum;
    t.done = t.done_before = t.pos.batches_done * t.batch < t.n ? t.pos.batches_done * t.batch : t.n;
    double t0 = now_seconds();
    if ((rc = train_steps(&t, epoch))) break;
    if (t.stop) {
      save_interrupted(&t, epoch);
      rc = 1;
      break;
    }
    rc = finish_epoch(&t, epoch, now_seconds() - t0);
    stopped_early = o->early_stop > 0 && t.pos.since_best >= o->early_stop;
  }
  if (!rc) keep_best(&t, stopped_early);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  trainer_free(&t);
  return rc;
}
