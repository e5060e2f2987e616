/* test_dropout.c — issue 14: dropout(x, p) and gradients with respect to
 * the inputs, in the generated C (built by cc and called through dlopen,
 * tests/harness.c) and in the JIT's training functions.
 *
 * Dropout is the identity everywhere but the training functions, which
 * draw its mask from a seed; the gradient multiplies by the mask the
 * forward pass drew (finite differences of the training loss at a fixed
 * seed agree with its gradient only then). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"
#include "harness.h"
#include "runtime.h"

/* A hidden layer of 8 units under dropout, and the same model without it. */
static const char *const with_dropout =
    "param W[3, 8] ~ uniform(-1, 1)\nparam v[8] ~ uniform(-1, 1)\ninput x[3]\n"
    "input t\nh = dropout(tanh(x @ W), 0.5)\ny = dot(h, v)\n"
    "loss = (y - t)^2\noutput out = y\n";
static const char *const without_dropout =
    "param W[3, 8] ~ uniform(-1, 1)\nparam v[8] ~ uniform(-1, 1)\ninput x[3]\n"
    "input t\nh = tanh(x @ W)\ny = dot(h, v)\n"
    "loss = (y - t)^2\noutput out = y\n";
static const double example[4] = {0.5, -1.25, 2, 0.75}; /* x, then t */

/* m_forward, m_backward, m_backward_batch, m_predict and m_backward_inputs
 * of the model with dropout compute exactly what the model without it does. */
static void test_dropout_is_identity_outside_training(void **state) {
  (void)state;
  Model *a = model_from_source("d.bp", with_dropout), *b = model_from_source("n.bp", without_dropout);
  double p[32], ga[32], gb[32], oa[1], ob[1], da[4], db[4], two[8];
  assert_int_equal(a->nparams, 32);
  a->init(p, 3);
  memcpy(two, example, sizeof example);
  memcpy(two + 4, example, sizeof example);
  two[4] = -0.5;
  assert_true(a->forward(p, example) == b->forward(p, example));
  assert_true(a->backward(p, example, ga) == b->backward(p, example, gb));
  assert_memory_equal(ga, gb, sizeof ga);
  assert_true(a->backward_batch(p, two, 2, ga) == b->backward_batch(p, two, 2, gb));
  assert_memory_equal(ga, gb, sizeof ga);
  a->predict(p, example, oa);
  b->predict(p, example, ob);
  assert_true(oa[0] == ob[0]);
  assert_true(a->backward_inputs(p, example, da) == b->backward_inputs(p, example, db));
  assert_memory_equal(da, db, sizeof da);
  model_free(a);
  model_free(b);
}

/* The training loss at seed s as a function of the parameters has the
 * gradient m_backward_train computes at s: the backward pass multiplies by
 * the mask the forward pass drew. Some units are dropped (their column of
 * dW is exactly 0), not all. */
static void test_dropout_gradient_uses_the_forward_mask(void **state) {
  (void)state;
  Model *m = model_from_source("d.bp", with_dropout);
  double p[32], g[32], scratch[32];
  m->init(p, 3);
  int partial = 0; /* seeds that drop some units and keep others */
  for (uint64_t seed = 1; seed <= 4; seed++) {
    double loss = m->backward_train(p, example, g, seed);
    assert_true(loss != m->forward(p, example)); /* some unit is dropped, so the loss changes */
    int dropped = 0;
    for (int j = 0; j < 8; j++) {
      int zero = 1;
      for (int i = 0; i < 3; i++)
        zero &= g[i * 8 + j] == 0;
      dropped += zero;
    }
    partial += dropped > 0 && dropped < 8;
    for (int i = 0; i < 32; i++) {
      double keep = p[i], h = 1e-5;
      p[i] = keep + h;
      double fp = m->backward_train(p, example, scratch, seed);
      p[i] = keep - h;
      double fm = m->backward_train(p, example, scratch, seed);
      p[i] = keep;
      double fd = (fp - fm) / (2 * h);
      if (fabs(fd - g[i]) > 1e-6 * fmax(1, fabs(fd)))
        fail_msg("seed %llu, dloss/dparams[%d]: m_backward_train gives %.12g, finite differences %.12g",
                 (unsigned long long)seed, i, g[i], fd);
    }
  }
  assert_int_equal(partial, 3); /* seed 3 keeps all 8 (a chance of 1 in 256): the scaling alone */
  model_free(m);
}

/* The form of very long models (scalars in slots, functions cut into parts
 * that get dropout and seed passed on) draws the same masks. */
static void test_dropout_in_parts(void **state) {
  (void)state;
  Model *m = model_from_source("d.bp", with_dropout), *parts = model_from_source_slots("d.bp", with_dropout);
  double p[32], g[32], gp[32];
  m->init(p, 3);
  for (uint64_t seed = 1; seed <= 3; seed++) {
    double l = m->backward_train(p, example, g, seed), lp = parts->backward_train(p, example, gp, seed);
    assert_true(fabs(l - lp) <= 1e-14 * fabs(l));
    for (int i = 0; i < 32; i++)
      assert_true(fabs(g[i] - gp[i]) <= 1e-14 * (1 + fabs(g[i])));
  }
  model_free(m);
  model_free(parts);
}

/* One seed, one mask: the same seed twice gives the same loss and gradient
 * bit for bit, other seeds other masks. The batch form gives example e the
 * masks of seed + e. */
static void test_dropout_is_deterministic_per_seed(void **state) {
  (void)state;
  Model *m = model_from_source("d.bp", with_dropout);
  double p[32], g1[32], g2[32], gb[32], two[8];
  m->init(p, 3);
  double l1 = m->backward_train(p, example, g1, 11), l2 = m->backward_train(p, example, g2, 11);
  assert_true(l1 == l2);
  assert_memory_equal(g1, g2, sizeof g1);
  int differ = 0;
  for (uint64_t seed = 12; seed < 16; seed++)
    differ += m->backward_train(p, example, g2, seed) != l1;
  assert_true(differ >= 3);
  memcpy(two, example, sizeof example);
  memcpy(two + 4, example, sizeof example);
  two[7] = -2;
  l1 = m->backward_train(p, two, g1, 20);
  l2 = m->backward_train(p, two + 4, g2, 21);
  double lb = m->backward_batch_train(p, two, 2, gb, 20);
  assert_true(lb == (l1 + l2) * 0.5);
  for (int i = 0; i < 32; i++)
    assert_true(gb[i] == (g1[i] + g2[i]) * 0.5);
  model_free(m);
}

/* The mask as docs/c-api.md defines it: element i of dropout call `site`
 * of the example with seed s is dropped when the top 53 bits of the
 * second splitmix64 draw are below p 2^53. */
static int documented_drop(uint64_t seed, uint64_t site, uint64_t i, double p) {
  const uint64_t G = 0x9E3779B97F4A7C15u;
  uint64_t state = seed + site * G;
  state = splitmix64(&state) + i * G;
  return (splitmix64(&state) >> 11) < (uint64_t)ceil(p * 9007199254740992.0);
}

/* Over 100,000 elements the share dropped is p within five standard
 * deviations of the binomial, the kept ones are scaled by exactly
 * 1 / (1 - p), and each element is the one the documented formula says. */
static void test_dropout_drops_a_share_p(void **state) {
  (void)state;
  enum { N = 100000 };
  const double p = 0.3;
  Model *m = model_from_source(
      "share.bp", "param w[100000]\nparam u[3]\nloss = sum(dropout(w, 0.3)) + sum(dropout(u, 0.3))\n");
  double *w = malloc(sizeof(double) * (N + 3)), *g = malloc(sizeof(double) * (N + 3));
  for (int i = 0; i < N + 3; i++)
    w[i] = 1;
  const uint64_t seed = 77;
  double loss = m->backward_train(w, NULL, g, seed);
  const double scale = 1 / (1 - p);
  int dropped = 0, kept = 0, other = 0;
  for (int i = 0; i < N; i++) {
    dropped += g[i] == 0;
    kept += g[i] == scale;
    other += (g[i] == 0) != documented_drop(seed, 0, (uint64_t)i, p);
  }
  assert_int_equal(dropped + kept, N);
  assert_int_equal(other, 0);
  for (int i = 0; i < 3; i++) /* the second call draws from its own stream, site 1 */
    assert_true((g[N + i] == 0) == documented_drop(seed, 1, (uint64_t)i, p));
  double sd = sqrt(N * p * (1 - p));
  assert_true(fabs(dropped - N * p) <= 5 * sd);
  double kept_sum = 0;
  for (int i = 0; i < N + 3; i++)
    kept_sum += g[i];
  assert_true(fabs(loss - kept_sum) <= 1e-9 * kept_sum);
  free(w);
  free(g);
  model_free(m);
}

/* Each call of dropout draws its own mask, also when a function or a loop
 * repeats one: the two masks of 1000 elements agree on about half of them,
 * within five standard deviations. */
static void test_each_dropout_call_has_its_own_mask(void **state) {
  (void)state;
  static const char *const srcs[] = {
      "param w[1000]\nloss = sum(dropout(w, 0.5) + dropout(w, 0.5))\n",
      "param w[1000]\ndef d(v) = dropout(v, 0.5)\nloss = sum(d(w) + d(w))\n",
      "param w[1000]\ns = w * 0\nfor i in 0..2 {\n  s = s + dropout(w, 0.5)\n}\nloss = sum(s)\n",
  };
  for (size_t k = 0; k < sizeof srcs / sizeof srcs[0]; k++) {
    Model *m = model_from_source("two.bp", srcs[k]);
    double w[1000], g[1000];
    for (int i = 0; i < 1000; i++)
      w[i] = 1;
    m->backward_train(w, NULL, g, 5);
    int one_kept = 0;
    for (int i = 0; i < 1000; i++) {
      assert_true(g[i] == 0 || g[i] == 2 || g[i] == 4);
      one_kept += g[i] == 2;
    }
    if (fabs((double)one_kept - 500) > 5 * sqrt(1000 * 0.25))
      fail_msg("%s: %d of 1000 kept by one mask only", srcs[k], one_kept);
    model_free(m);
  }
}

/* f = (x + y) z of the lecture notes with x and y inputs: dloss/dx =
 * dloss/dy = z = -4, from the generated m_backward_inputs and from the
 * interpreter (bpc grad --wrt x); a model without inputs still returns its
 * loss. */
static void test_input_gradients_of_the_lecture_graph(void **state) {
  (void)state;
  const char *src = "input x\ninput y\nparam z = -4\nq = x + y\nloss = q * z\n";
  Model *m = model_from_source("xyz.bp", src);
  double z, x[2] = {-2, 5}, dx[2] = {0, 0};
  m->init(&z, 0);
  assert_true(m->backward_inputs(&z, x, dx) == -12);
  assert_true(dx[0] == -4 && dx[1] == -4);
  model_free(m);
  Ctx c;
  ctx_init(&c, "xyz.bp", src, strlen(src));
  assert_int_equal(bpc_compile(&c, NULL), 0);
  Values v;
  eval_graph(&c, &z, x, &v);
  double g = 0;
  eval_input_grad(&c, &v, 0, &g);
  assert_true(g == -4);
  eval_input_grad(&c, &v, 1, &g);
  assert_true(g == -4);
  values_free(&v);
  ctx_free(&c);
  Model *none = model_from_file(SAMPLES_DIR "/xyz.bp");
  double p[3], g3[3];
  none->init(p, 0);
  assert_true(none->backward_inputs(p, NULL, NULL) == -12);
  assert_true(none->backward_train(p, NULL, g3, 1) == -12); /* no dropout: m_backward itself */
  assert_true(g3[0] == -4 && g3[1] == -4 && g3[2] == 3);
  model_free(none);
}

/* An input no gradient reaches (used only by an output) gets zeros. */
static void test_input_without_gradient_is_zero(void **state) {
  (void)state;
  Model *m = model_from_source("o.bp", "param w = 2\ninput x\ninput u[2]\nloss = w * x\noutput o = sum(u)\n");
  double w = 2, x[3] = {3, 1, 1}, dx[3] = {9, 9, 9};
  assert_true(m->backward_inputs(&w, x, dx) == 6);
  assert_true(dx[0] == 2 && dx[1] == 0 && dx[2] == 0);
  model_free(m);
}

/* The JIT's training functions are the generated C's: with dropout on,
 * example e of a call draws the masks of seed + e, as m_backward_train
 * does for that seed; with it off, they are m_backward. */
static void test_jit_training_draws_the_same_masks(void **state) {
  (void)state;
  char dir[] = "/tmp/bpc-dropout-XXXXXX", path[64];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/d.bp", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(with_dropout, f);
  fclose(f);
  JitOptions jo = {.batch = 2};
  JitModel *jm = jit_load(path, NULL, &jo);
  assert_non_null(jm);
  assert_int_equal(jm->fixed, 2);
  Model *m = model_from_source("d.bp", with_dropout);
  double p[32], g[32], gj[32], ge[32], xs[12], soa[8];
  double *ws = calloc(jm->ws_elems + 1, sizeof(double));
  m->init(p, 3);
  for (int e = 0; e < 3; e++) /* three examples */
    for (int k = 0; k < 4; k++)
      xs[e * 4 + k] = example[k] * (1 + 0.5 * e);
  const uint64_t seed = 1000;
  double want = 0;
  memset(g, 0, sizeof g);
  for (int e = 0; e < 3; e++) {
    want += m->backward_train(p, xs + 4 * e, ge, seed + (uint64_t)e);
    for (int i = 0; i < 32; i++)
      g[i] += ge[i];
  }
  double got = jit_train_batch(jm, p, xs, 3, gj, NULL, ws, 0, 1, seed);
  assert_true(fabs(got - want) <= 1e-12 * fabs(want));
  for (int i = 0; i < 32; i++)
    assert_true(fabs(gj[i] - g[i]) <= 1e-12 * (1 + fabs(g[i])));
  /* the fixed batch of the first two: the same */
  jit_gather(jm, xs, soa);
  want = m->backward_train(p, xs, ge, seed) + m->backward_train(p, xs + 4, g, seed + 1);
  got = jit_train_fixed(jm, p, soa, gj, NULL, ws, 0, 1, seed);
  assert_true(fabs(got - want) <= 1e-12 * fabs(want));
  for (int i = 0; i < 32; i++)
    assert_true(fabs(gj[i] - (ge[i] + g[i])) <= 1e-12 * (1 + fabs(g[i])));
  /* off: the gradient of eval's loss */
  want = m->backward(p, xs, g);
  got = jit_train_batch(jm, p, xs, 1, gj, NULL, ws, 0, 0, seed);
  assert_true(fabs(got - want) <= 1e-12 * fabs(want));
  for (int i = 0; i < 32; i++)
    assert_true(fabs(gj[i] - g[i]) <= 1e-12 * (1 + fabs(g[i])));
  free(ws);
  model_free(m);
  jit_free(jm);
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dropout_is_identity_outside_training),
      cmocka_unit_test(test_dropout_gradient_uses_the_forward_mask),
      cmocka_unit_test(test_dropout_in_parts),
      cmocka_unit_test(test_dropout_is_deterministic_per_seed),
      cmocka_unit_test(test_dropout_drops_a_share_p),
      cmocka_unit_test(test_each_dropout_call_has_its_own_mask),
      cmocka_unit_test(test_input_gradients_of_the_lecture_graph),
      cmocka_unit_test(test_input_without_gradient_is_zero),
      cmocka_unit_test(test_jit_training_draws_the_same_masks),
  };
  return cmocka_run_group_tests_name("dropout and input gradients", tests, NULL, NULL);
}
