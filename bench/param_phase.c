/* param_phase.c — what the parameters' phase of a training step costs on
 * one thread and on two (bench/RESULTS.md, issue 16), without the model:
 * the memory traffic of bpc train's step on the MLP's 101,770 floats.
 *
 * Each step has the two phases of runtime/train.c. In the examples phase
 * every thread reads all the parameters (the forward pass's products read
 * every weight) and writes its own gradient buffer (the backward pass's
 * products store it). In the parameters phase thread i, over its half,
 * adds the other threads' gradients into the first's and takes the SGD
 * step there. With one thread the second phase is the step alone. With
 * two, its lines were last touched by the other core: the gradient it
 * sums was written there, and the parameters it updates were read there,
 * so every line crosses between the cores' caches. The time of each phase
 * is each thread's own, between barriers (the best step of STEPS).
 *
 * With two threads or more it first measures what one cache line's trip
 * between two cores costs: a flag passed back and forth, the round trip's
 * time. It depends on where the VM's cores sit on the host's chip (the same
 * core complex, or not): the same machine type has shown 600 ns and far
 * less on different days, and every line the threads share pays it.
 *
 * Build and run: make bench-threads
 * Usage: param_phase [THREADS [N]] */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { STEPS = 400, MAX_THREADS = 8 };

typedef struct Shared {
  int threads;
  long n;
  float *params, *grad[MAX_THREADS];
  pthread_barrier_t bar;
  double best_examples[MAX_THREADS], best_params[MAX_THREADS];
} Shared;

typedef struct Arg {
  Shared *s;
  int index;
} Arg;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Reads every parameter and writes this thread's gradient from them. */
static void examples_phase(Shared *s, int i) {
  float *restrict g = s->grad[i];
  const float *restrict p = s->params;
  for (long k = 0; k < s->n; k++)
    g[k] = p[k] * 0.5f + (float)i;
}

/* Thread i's half: the gradients summed into the first's, then the step. */
static void params_phase(Shared *s, int i) {
  long per = (s->n + s->threads - 1) / s->threads;
  per = (per + 15) / 16 * 16; /* whole cache lines, as train.c's param_range */
  long from = i * per < s->n ? i * per : s->n, to = from + per < s->n ? from + per : s->n;
  float *restrict g0 = s->grad[0], *restrict p = s->params;
  for (int t = 1; t < s->threads; t++) {
    const float *restrict gt = s->grad[t];
    for (long k = from; k < to; k++)
      g0[k] += gt[k];
  }
  for (long k = from; k < to; k++)
    p[k] -= 1e-6f * g0[k];
}

static void *run(void *arg) {
  Arg *a = arg;
  Shared *s = a->s;
  double be = 1e30, bp = 1e30;
  for (int step = 0; step < STEPS; step++) {
    pthread_barrier_wait(&s->bar);
    double t0 = now();
    examples_phase(s, a->index);
    double t1 = now();
    pthread_barrier_wait(&s->bar);
    double t2 = now();
    params_phase(s, a->index);
    double t3 = now();
    if (t1 - t0 < be) be = t1 - t0;
    if (t3 - t2 < bp) bp = t3 - t2;
  }
  s->best_examples[a->index] = be;
  s->best_params[a->index] = bp;
  return NULL;
}

/* ---- one cache line between two cores ---- */
enum { TRIPS = 200000 };
typedef struct PingPong {
  _Alignas(64) atomic_int ball; /* 1: the second thread's turn, 0: the first's */
} PingPong;

static void *pong(void *arg) {
  PingPong *pp = arg;
  for (int i = 0; i < TRIPS; i++) {
    while (atomic_load_explicit(&pp->ball, memory_order_acquire) != 1)
      ;
    atomic_store_explicit(&pp->ball, 0, memory_order_release);
  }
  return NULL;
}

/* Nanoseconds of one round trip of a cache line between two threads. */
static double round_trip_ns(void) {
  PingPong pp;
  atomic_init(&pp.ball, 0);
  pthread_t t;
  pthread_create(&t, NULL, pong, &pp);
  double t0 = now();
  for (int i = 0; i < TRIPS; i++) {
    atomic_store_explicit(&pp.ball, 1, memory_order_release);
    while (atomic_load_explicit(&pp.ball, memory_order_acquire) != 0)
      ;
  }
  double t1 = now();
  pthread_join(t, NULL);
  return 1e9 * (t1 - t0) / TRIPS;
}

int main(int argc, char **argv) {
  Shared s = {.threads = argc > 1 ? atoi(argv[1]) : 2, .n = argc > 2 ? atol(argv[2]) : 101770};
  if (s.threads < 1 || s.threads > MAX_THREADS || s.n < 1) {
    fprintf(stderr, "usage: param_phase [THREADS (1-%d) [N]]\n", MAX_THREADS);
    return 2;
  }
  if (s.threads > 1) printf("a cache line's round trip between two cores: %.0f ns\n", round_trip_ns());
  s.params = calloc((size_t)s.n, sizeof(float));
  for (int t = 0; t < s.threads; t++)
    s.grad[t] = calloc((size_t)s.n, sizeof(float));
  pthread_barrier_init(&s.bar, NULL, (unsigned)s.threads);
  pthread_t th[MAX_THREADS];
  Arg args[MAX_THREADS];
  for (int t = 0; t < s.threads; t++) {
    args[t] = (Arg){&s, t};
    if (t > 0) pthread_create(&th[t], NULL, run, &args[t]);
  }
  run(&args[0]);
  for (int t = 1; t < s.threads; t++)
    pthread_join(th[t], NULL);
  double e = 0, p = 0;
  for (int t = 0; t < s.threads; t++) {
    if (s.best_examples[t] > e) e = s.best_examples[t];
    if (s.best_params[t] > p) p = s.best_params[t];
  }
  printf("%d thread%s, %ld floats: examples phase %.1f us, parameters phase %.1f us (%.2f ns per element "
         "per thread)\n",
         s.threads, s.threads > 1 ? "s" : "", s.n, 1e6 * e, 1e6 * p,
         1e9 * p / (double)((s.n + s.threads - 1) / s.threads));
  for (int t = 0; t < s.threads; t++)
    free(s.grad[t]);
  free(s.params);
  pthread_barrier_destroy(&s.bar);
  return 0;
}
