/* peak.c — one core's peak multiply-add rate, the anchor the training
 * benchmarks are reported against (bench/RESULTS.md), and the convolution
 * kernels (runtime/conv.c on kernels.c's matrix product) as a fraction of it.
 *
 * Build, with the kernels (make's objects):
 *   make build/runtime/kernels.o build/runtime/conv.o
 *   cc -std=c11 -D_GNU_SOURCE -O2 -ffp-contract=fast -Wall -Wextra -o build/peak bench/peak.c \
 *      build/runtime/kernels.o build/runtime/conv.o
 * Built from bench/peak.c alone it still links (the kernels are weak
 * references) and measures the peak only.
 * Usage: peak                 the peak, f32 and f64, and the conv benchmark
 *        peak --f32-gflops    the sustained f32 peak alone, a number (bench/cnn_bench.sh)
 *        peak --gflops        the sustained f32 and f64 peaks, two numbers (bench/train_bench.sh)
 *
 * The peak: independent chains of fused multiply-adds in the widest vectors
 * this CPU has (on x86-64, AVX-512 where the CPU has it: 16 floats or 8
 * doubles per instruction; else AVX2 + FMA: 8 floats or 4 doubles; chosen
 * at run time, as runtime/kernels.c chooses its path), enough chains to
 * hide the FMA latency. -ffp-contract=fast
 * makes a * m + c one instruction. It is measured two ways because the clock
 * is not constant: sustained (the best of 5 runs of ~15 ms, what a training
 * run of seconds sees) and in bursts (the best of 100 runs of ~1 ms, as long
 * as one kernel call here), which on this VM comes out a few percent higher.
 * The kernels are timed as the best of 20 calls, so they are put against the
 * burst peak: the same method, and the higher, stricter denominator.
 *
 * The conv benchmark: the two convolutions of samples/fashion_cnn.bp at a
 * batch of 64, float: 1 -> 16 channels on 28x28 and 16 -> 32 on 14x14, 5x5
 * kernels, padding 2, stride 1. Each of forward, dx (the image's gradient)
 * and dk (the kernel's) is 2 N O Ho Wo C kh kw flops, padding taps included
 * (the dense count everyone uses). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../runtime/kernels.h"

/* Weak: absent (null) when peak.c is built alone. */
#pragma weak bpk_conv2d_f
#pragma weak bpk_conv2d_dx_f
#pragma weak bpk_conv2d_dk_f
#pragma weak bpk_maxpool2d_f
#pragma weak bpk_maxpool2d_dx_f
#pragma weak bpk_thread_done

#if defined(__x86_64__) && defined(__GNUC__)
#define X86 1
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define AVX2
#define AVX512
#endif

typedef float vf __attribute__((vector_size(32)));
typedef double vd __attribute__((vector_size(32)));
typedef float vf512 __attribute__((vector_size(64)));
typedef double vd512 __attribute__((vector_size(64)));

/* Whether the CPU has AVX-512 (the widest vectors measured). */
static int has_avx512(void) {
#ifdef X86
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* 10 chains in 10 named variables (an array would live in memory): two FMA
 * units with a latency of 4 to 5 cycles need 8 to 10 in flight. Returns a
 * sum so the work cannot be dropped. */
#define FMA_LOOP(V, T, ATTR)                                                                                 \
  ATTR static T fma_loop_##V(long iters, T seed) {                                                           \
    V m, c;                                                                                                  \
    for (int k = 0; k < (int)(sizeof(V) / sizeof(T)); k++) {                                                 \
      m[k] = (T)0.999999;                                                                                    \
      c[k] = seed;                                                                                           \
    }                                                                                                        \
    V a0 = c, a1 = c * 2, a2 = c * 3, a3 = c * 4, a4 = c * 5, a5 = c * 6, a6 = c * 7, a7 = c * 8,            \
      a8 = c * 9, a9 = c * 10;                                                                               \
    for (long i = 0; i < iters; i++) {                                                                       \
      a0 = a0 * m + c;                                                                                       \
      a1 = a1 * m + c;                                                                                       \
      a2 = a2 * m + c;                                                                                       \
      a3 = a3 * m + c;                                                                                       \
      a4 = a4 * m + c;                                                                                       \
      a5 = a5 * m + c;                                                                                       \
      a6 = a6 * m + c;                                                                                       \
      a7 = a7 * m + c;                                                                                       \
      a8 = a8 * m + c;                                                                                       \
      a9 = a9 * m + c;                                                                                       \
    }                                                                                                        \
    V sum = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9;                                                 \
    T s = 0;                                                                                                 \
    for (int k = 0; k < (int)(sizeof(V) / sizeof(T)); k++)                                                   \
      s += sum[k];                                                                                           \
    return s;                                                                                                \
  }
FMA_LOOP(vf, float, AVX2)
FMA_LOOP(vd, double, AVX2)
FMA_LOOP(vf512, float, AVX512)
FMA_LOOP(vd512, double, AVX512)

/* GFLOP/s of the best of `runs` runs of `iters` iterations (2 flops per lane per multiply-add). */
static double gflops(int f32, long iters, int runs) {
  double best = 0, sink = 0;
  int wide = has_avx512(); /* asked once, outside the timed runs */
  for (int run = 0; run < runs; run++) {
    double t0 = now();
    if (wide)
      sink += f32 ? (double)fma_loop_vf512(iters, 1e-3f) : fma_loop_vd512(iters, 1e-3);
    else
      sink += f32 ? (double)fma_loop_vf(iters, 1e-3f) : fma_loop_vd(iters, 1e-3);
    double t = now() - t0;
    double lanes = (f32 ? 8 : 4) * (wide ? 2 : 1), rate = 2.0 * lanes * 10.0 * (double)iters / t / 1e9;
    if (rate > best) best = rate;
  }
  if (sink == 12345.678) printf(" "); /* keeps the result live */
  return best;
}
/* ~15 ms a run at 100 GFLOP/s (AVX2; ~7 ms at 230, AVX-512), and ~1 ms */
static double sustained(int f32) { return gflops(f32, 10000000, 5); }
static double burst(int f32) { return gflops(f32, 600000, 100); }

/* ---- the convolutions ---- */

static float *random_floats(size_t n, unsigned *seed) {
  float *a = malloc(sizeof(float) * n);
  if (!a) abort();
  for (size_t i = 0; i < n; i++) {
    *seed = *seed * 1664525u + 1013904223u;
    a[i] = (float)(*seed >> 8) * 0x1p-24f - 0.5f;
  }
  return a;
}

/* Seconds of the best of 20 calls of one kernel (after one to warm up). */
static double time_op(int op, const float *x, const float *K, float *y, float *dx, float *dK,
                      const size_t *g) {
  double best = 1e30;
  for (int r = 0; r < 21; r++) {
    double t0 = now();
    switch (op) {
    case 0: bpk_conv2d_f(x, K, y, g, 0); break;
    case 1: bpk_conv2d_dx_f(y, K, dx, g, 0); break;
    default: bpk_conv2d_dk_f(x, y, dK, g, 0); break;
    }
    double t = now() - t0;
    if (r > 0 && t < best) best = t;
  }
  return best;
}

/* Milliseconds of the best of 20 calls of 2x2 max pooling (dx: its gradient) on [n, c, h, h]. */
static double time_pool(int dx, size_t n, size_t c, size_t h, unsigned *seed) {
  const size_t g[BPK_GEOM] = {n, c, h, h, c, 2, 2, 2, 2, 0, 0, 1, 1, 1};
  float *x = random_floats(n * c * h * h, seed), *y = random_floats(n * c * h * h / 4, seed);
  float *d = random_floats(n * c * h * h, seed);
  double best = 1e30;
  for (int r = 0; r < 21; r++) {
    double t0 = now();
    if (dx)
      bpk_maxpool2d_dx_f(x, y, d, g, 0);
    else
      bpk_maxpool2d_f(x, y, g, 0);
    double t = now() - t0;
    if (r > 0 && t < best) best = t;
  }
  free(x);
  free(y);
  free(d);
  return best * 1e3;
}

/* The two poolings of the same network (after each convolution and its relu). */
static void pool_benchmark(void) {
  static const size_t layers[2][2] = {{16, 28}, {32, 14}}; /* C, H = W */
  unsigned seed = 2;
  printf("2x2 max pooling, f32, N = 64 (best of 20 calls):\n");
  for (int l = 0; l < 2; l++)
    printf("  %2zu on %zux%zu  forward %7.3f ms  dx %7.3f ms\n", layers[l][0], layers[l][1], layers[l][1],
           time_pool(0, 64, layers[l][0], layers[l][1], &seed),
           time_pool(1, 64, layers[l][0], layers[l][1], &seed));
}

static void conv_benchmark(double peak) {
  static const char *const ops[3] = {"forward", "dx", "dk"};
  static const size_t layers[2][3] = {{1, 16, 28}, {16, 32, 14}}; /* C, O, H = W */
  const size_t n = 64;
  double total_t = 0, total_flops = 0;
  unsigned seed = 1;
  printf("conv kernels, f32, N = %zu, 5x5, padding 2 (best of 20 calls):\n", n);
  for (int l = 0; l < 2; l++) {
    size_t c = layers[l][0], o = layers[l][1], h = layers[l][2];
    const size_t g[BPK_GEOM] = {n, c, h, h, o, 5, 5, 1, 1, 2, 2, 1, 1, 1};
    float *x = random_floats(n * c * h * h, &seed), *K = random_floats(o * c * 25, &seed);
    float *y = random_floats(n * o * h * h, &seed), *dx = random_floats(n * c * h * h, &seed);
    float *dK = random_floats(o * c * 25, &seed);
    double flops = 2.0 * (double)(n * o * h * h * c * 25);
    for (int op = 0; op < 3; op++) {
      double t = time_op(op, x, K, y, dx, dK, g), rate = flops / t / 1e9;
      printf("  %2zu -> %2zu on %zux%zu  %-8s %7.3f ms %6.1f GFLOP/s %4.0f%% of peak\n", c, o, h, h, ops[op],
             t * 1e3, rate, 100 * rate / peak);
      total_t += t;
      total_flops += flops;
    }
    free(x);
    free(K);
    free(y);
    free(dx);
    free(dK);
  }
  double rate = total_flops / total_t / 1e9;
  printf("  all six                  %7.3f ms %6.1f GFLOP/s %4.0f%% of peak\n", total_t * 1e3, rate,
         100 * rate / peak);
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--f32-gflops")) {
    printf("%.1f\n", sustained(1));
    return 0;
  }
  if (argc > 1 && !strcmp(argv[1], "--gflops")) {
    printf("%.1f %.1f\n", sustained(1), sustained(0));
    return 0;
  }
  double f32 = burst(1);
  printf("one core's FMA peak (%s): f32 %.1f GFLOP/s, f64 %.1f GFLOP/s sustained; in ~1 ms bursts f32 %.1f, "
         "f64 %.1f\n",
         has_avx512() ? "AVX-512" : "AVX2", sustained(1), sustained(0), f32, burst(0));
  if (!bpk_conv2d_f || !bpk_conv2d_dx_f || !bpk_conv2d_dk_f || !bpk_thread_done) {
    printf("(the conv kernels are not linked in: see the build command at the top of bench/peak.c)\n");
    return 0;
  }
  conv_benchmark(f32);
  if (bpk_maxpool2d_f && bpk_maxpool2d_dx_f) pool_benchmark();
  bpk_thread_done(); /* the column and packing buffers */
  return 0;
}
