/* test_samples.c — every sample in samples/: the lecture notes' numbers
 * exactly, and every gradient against central finite differences at several
 * random points. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define SAMPLE(name) (SAMPLES_DIR "/" name)

/* "exactly": the lecture's decimal numbers to the last bit that double
 * arithmetic can give (220 = 100 * 2 * 1.1 carries one rounding). */
static void assert_close(double got, double want) {
  if (fabs(got - want) > 1e-12 * fmax(1.0, fabs(want))) fail_msg("got %.17g, want %.17g", got, want);
}

static double grad_of(Model *m, const double *g, const char *name) { return g[model_param_offset(m, name)]; }

/* noise: spread of the random offset added to the initial parameters; large
 * models need small offsets, or the loss grows so large that the finite
 * differences' own rounding error (eps * loss / h) dominates. */
static void check_random_points(Model *m, int npoints, int max_per_param, double noise) {
  uint64_t rng = 12345;
  double *p = malloc(sizeof(double) * (size_t)(m->nparams + 1));
  double *x = malloc(sizeof(double) * (size_t)(m->ninputs + 1));
  for (int k = 0; k < npoints; k++) {
    m->init(p, (uint64_t)k + 1);
    for (int64_t i = 0; i < m->nparams; i++)
      p[i] += noise * test_rand_normal(&rng);
    for (int64_t i = 0; i < m->ninputs; i++)
      x[i] = test_rand_normal(&rng);
    check_gradient_fd(m, p, m->ninputs ? x : NULL, max_per_param, 1e-6);
  }
  free(p);
  free(x);
}

static void test_xyz(void **state) {
  (void)state;
  Model *m = model_from_file(SAMPLE("xyz.bp"));
  double p[3], g[3];
  m->init(p, 0);
  assert_close(m->backward(p, NULL, g), -12);
  assert_close(grad_of(m, g, "x"), -4);
  assert_close(grad_of(m, g, "y"), -4);
  assert_close(grad_of(m, g, "z"), 3);
  /* one step of gradient descent with learning rate 0.1, as in the notes */
  for (int i = 0; i < 3; i++)
    p[i] -= 0.1 * g[i];
  assert_close(m->forward(p, NULL), -16.34);
  check_random_points(m, 4, 0, 0.5);
  model_free(m);
}

static void test_apple(void **state) {
  (void)state;
  Model *m = model_from_file(SAMPLE("apple.bp"));
  double p[3], g[3];
  m->init(p, 0);
  assert_close(m->backward(p, NULL, g), 220);
  assert_close(grad_of(m, g, "apple"), 2.2);
  assert_close(grad_of(m, g, "count"), 110);
  assert_close(grad_of(m, g, "tax"), 200);
  check_random_points(m, 4, 0, 0.5);
  model_free(m);
}

static void test_apple_orange(void **state) {
  (void)state;
  Model *m = model_from_file(SAMPLE("apple_orange.bp"));
  double p[5], g[5];
  m->init(p, 0);
  assert_close(m->backward(p, NULL, g), 715);
  assert_close(grad_of(m, g, "apple"), 2.2);
  assert_close(grad_of(m, g, "apple_count"), 110);
  assert_close(grad_of(m, g, "orange"), 3.3);
  assert_close(grad_of(m, g, "orange_count"), 165);
  assert_close(grad_of(m, g, "tax"), 650);
  check_random_points(m, 4, 0, 0.5);
  model_free(m);
}

static void test_toy_net(void **state) {
  (void)state;
  Model *m = model_from_file(SAMPLE("toy_net.bp"));
  double p[5], g[5];
  m->init(p, 0);
  /* b = 1, c = -3, d = 3 * 1 + 0.25 * -3 = 2.25 */
  assert_close(m->backward(p, NULL, g), 7.75);
  assert_close(grad_of(m, g, "w3"), -1);   /* -b */
  assert_close(grad_of(m, g, "w4"), 3);    /* -c */
  assert_close(grad_of(m, g, "w1"), -6);   /* -w3 a */
  assert_close(grad_of(m, g, "w2"), -0.5); /* -w4 a */
  /* a fans out to b and c: its gradient is the sum of both paths */
  assert_close(grad_of(m, g, "a"), -(3 * 0.5 + 0.25 * -1.5));
  check_random_points(m, 4, 0, 0.5);
  model_free(m);
}

static void test_hinge(void **state) {
  (void)state;
  Model *m = model_from_file(SAMPLE("hinge.bp"));
  double p[3], g[3], out[1];
  m->init(p, 0);
  double in1[4] = {1, 2, 3, 1}; /* phi, y: w.phi = 0.4, margin 0.4 < 1 */
  assert_close(m->backward(p, in1, g), 0.6);
  for (int i = 0; i < 3; i++)
    assert_close(g[i], -in1[i] * 1); /* -phi y */
  m->predict(p, in1, out);
  assert_close(out[0], 0.4);
  double in2[4] = {1, 2, 3, -1}; /* margin -0.4 */
  assert_close(m->backward(p, in2, g), 1.4);
  for (int i = 0; i < 3; i++)
    assert_close(g[i], in2[i]);
  double in3[4] = {4, 0, 0, 1}; /* margin 2 >= 1: no loss, no gradient */
  assert_close(m->backward(p, in3, g), 0);
  for (int i = 0; i < 3; i++)
    assert_close(g[i], 0);
  check_random_points(m, 6, 0, 0.5);
  model_free(m);
}

static void test_linreg(void **state) {
  (void)state;
  Model *m = model_from_file(SAMPLE("linreg.bp"));
  double p[5] = {1, 2, 3, 4, 0.5}, g[5], in[5] = {1, 1, 1, 1, 10}, out[1];
  assert_close(m->backward(p, in, g), 0.125); /* residual 0.5 */
  for (int i = 0; i < 4; i++)
    assert_close(g[i], 0.5);
  assert_close(g[4], 0.5);
  m->predict(p, in, out);
  assert_close(out[0], 10.5);
  /* the batch form is the mean of the per-example forms */
  double in2[10] = {1, 1, 1, 1, 10, 0, 1, 0, 2, 3}, gb[5], g2[5];
  double l1 = m->backward(p, in2, g), l2 = m->backward(p, in2 + 5, g2);
  assert_close(m->backward_batch(p, in2, 2, gb), (l1 + l2) / 2);
  for (int i = 0; i < 5; i++)
    assert_close(gb[i], (g[i] + g2[i]) / 2);
  check_random_points(m, 4, 0, 0.5);
  model_free(m);
}

static void softmax(const double *z, int n, double *y) {
  double mx = z[0], s = 0;
  for (int i = 1; i < n; i++)
    mx = fmax(mx, z[i]);
  for (int i = 0; i < n; i++)
    s += exp(z[i] - mx);
  for (int i = 0; i < n; i++)
    y[i] = exp(z[i] - mx) / s;
}

static void test_two_layer(void **state) {
  (void)state;
  Model *m = model_from_file(SAMPLE("two_layer.bp"));
  double p[21], g[21], probs[3];
  double in[5] = {0.6, 0.9, 0, 0, 1}; /* x, one-hot t = class 2 */
  m->init(p, 7);
  double loss = m->backward(p, in, g);
  m->predict(p, in, probs);
  assert_close(loss, -log(probs[2]));
  /* softmax with cross-entropy: the gradient at the scores is y - t, and b2
   * adds straight into the scores */
  int64_t b2 = model_param_offset(m, "b2");
  for (int i = 0; i < 3; i++)
    assert_close(g[b2 + i], probs[i] - in[2 + i]);
  check_random_points(m, 4, 0, 0.5);
  model_free(m);
}

static void test_mlp(void **state) {
  (void)state;
  Model *m = model_from_file(SAMPLE("mlp.bp"));
  assert_int_equal(m->nparams, 784 * 128 + 128 + 128 * 10 + 10);
  double *p = malloc(sizeof(double) * (size_t)m->nparams), *g = malloc(sizeof(double) * (size_t)m->nparams);
  double in[794] = {0}, scores[10], y[10];
  uint64_t rng = 99;
  for (int i = 0; i < 784; i++)
    in[i] = fabs(test_rand_normal(&rng));
  in[784 + 3] = 1;
  m->init(p, 3);
  double loss = m->backward(p, in, g);
  m->predict(p, in, scores);
  softmax(scores, 10, y);
  assert_close(loss, -log(y[3]));
  int64_t b2 = model_param_offset(m, "b2");
  for (int i = 0; i < 10; i++)
    assert_close(g[b2 + i], y[i] - in[784 + i]);
  free(p);
  free(g);
  check_random_points(m, 2, 25, 0.02);
  model_free(m);
}

static void test_fashion_mlp_matches_mlp(void **state) {
  (void)state;
  /* the demo's model is the 784-128-10 MLP: the same initial values, loss and gradient */
  Model *a = model_from_file(SAMPLE("mlp.bp")), *b = model_from_file(SAMPLE("fashion_mlp.bp"));
  assert_int_equal(a->nparams, b->nparams);
  assert_int_equal(a->ninputs, b->ninputs);
  size_t np = (size_t)a->nparams, ni = (size_t)a->ninputs;
  double *pa = malloc(sizeof(double) * np), *pb = malloc(sizeof(double) * np), *x = calloc(ni, sizeof(double));
  double *ga = malloc(sizeof(double) * np), *gb = malloc(sizeof(double) * np);
  a->init(pa, 5);
  b->init(pb, 5);
  assert_memory_equal(pa, pb, sizeof(double) * np);
  uint64_t rng = 9;
  for (size_t i = 0; i < 784; i++)
    x[i] = fabs(test_rand_normal(&rng));
  x[784 + 3] = 1; /* class 3 */
  double la = a->backward(pa, x, ga), lb = b->backward(pb, x, gb);
  assert_true(la == lb && la > 0);
  assert_memory_equal(ga, gb, sizeof(double) * np);
  free(pa);
  free(pb);
  free(x);
  free(ga);
  free(gb);
  model_free(a);
  model_free(b);
}

static void test_logsumexp(void **state) {
  (void)state;
  Model *m = model_from_file(SAMPLE("logsumexp.bp"));
  double p[5], g[5], want[5];
  m->init(p, 0);
  double s = 0;
  for (int i = 0; i < 5; i++)
    s += exp(p[i]);
  assert_close(m->backward(p, NULL, g), log(s));
  softmax(p, 5, want);
  for (int i = 0; i < 5; i++)
    assert_close(g[i], want[i]);
  check_random_points(m, 4, 0, 0.5);
  model_free(m);
}

/* The norm of layer k's weight gradient in a [10, 32, 32] stack. */
static double layer_norm(const double *g, int k) {
  double s = 0;
  for (int i = 0; i < 32 * 32; i++)
    s += g[k * 32 * 32 + i] * g[k * 32 * 32 + i];
  return sqrt(s);
}

/* The vanishing gradient: through ten sigmoid layers the first layer's
 * weight gradient is more than a thousand times smaller than the last's
 * (each layer multiplies by sigmoid' <= 1/4); with relu it is not (the
 * samples' comments show the numbers: bpc grad --summary). */
static void test_deep_sigmoid_vanishes(void **state) {
  (void)state;
  const char *names[2] = {"deep_sigmoid.bp", "deep_relu.bp"};
  double ratio[2];
  for (int r = 0; r < 2; r++) {
    char path[256];
    snprintf(path, sizeof path, SAMPLES_DIR "/%s", names[r]);
    Model *m = model_from_file(path);
    double *p = malloc(sizeof(double) * (size_t)m->nparams), *g = malloc(sizeof(double) * (size_t)m->nparams);
    double x[64];
    for (int i = 0; i < 64; i++)
      x[i] = i < 32 ? 1 : 0; /* x = 1, t = 0 */
    m->init(p, 0);
    m->backward(p, x, g);
    ratio[r] = layer_norm(g, 0) / layer_norm(g, 9);
    if (r == 0) check_random_points(m, 2, 64, 1e-6);
    free(p);
    free(g);
    model_free(m);
  }
  assert_true(ratio[0] < 1e-3);
  assert_true(ratio[1] > 0.1);
}

/* The RNN over a sequence and the residual blocks: gradients against
 * finite differences at random points. */
static void test_rnn_and_residual(void **state) {
  (void)state;
  Model *m = model_from_file(SAMPLE("rnn.bp"));
  assert_int_equal(m->ninputs, 8 * 4 + 3);
  check_random_points(m, 3, m->ninputs, 1e-6);
  model_free(m);
  m = model_from_file(SAMPLE("residual.bp"));
  check_random_points(m, 3, m->ninputs, 1e-6);
  model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_xyz),
      cmocka_unit_test(test_apple),
      cmocka_unit_test(test_apple_orange),
      cmocka_unit_test(test_toy_net),
      cmocka_unit_test(test_hinge),
      cmocka_unit_test(test_linreg),
      cmocka_unit_test(test_two_layer),
      cmocka_unit_test(test_mlp),
      cmocka_unit_test(test_fashion_mlp_matches_mlp),
      cmocka_unit_test(test_logsumexp),
      cmocka_unit_test(test_deep_sigmoid_vanishes),
      cmocka_unit_test(test_rnn_and_residual),
  };
  return cmocka_run_group_tests_name("samples", tests, NULL, NULL);
}
