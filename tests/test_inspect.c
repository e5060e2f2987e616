/* test_inspect.c — seeing backprop: the reference interpreter agrees with
 * the generated C on every sample, init values agree, and explain and trace
 * print the lecture notes' derivations. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static const char *const samples[] = {"xyz",    "apple",     "apple_orange", "toy_net",  "hinge",
                                      "linreg", "two_layer", "mlp",          "logsumexp"};

static Ctx *compile_file(const char *path) {
  Ctx *c = malloc(sizeof *c);
  char *src = read_text_file(path);
  ctx_init(c, path, src, strlen(src));
  c->owned_text = src;
  if (bpc_compile(c, NULL)) fail_msg("%s", c->err.data);
  return c;
}

/* The interpreter and the compiled C compute the same loss, gradients and
 * initial values, at random points of every sample. */
static void test_interpreter_matches_generated_code(void **state) {
  (void)state;
  for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++) {
    char path[256];
    snprintf(path, sizeof path, SAMPLES_DIR "/%s.bp", samples[s]);
    Model *m = model_from_file(path);
    Ctx *c = compile_file(path);
    double *p = calloc((size_t)m->nparams + 1, sizeof(double)),
           *q = calloc((size_t)m->nparams + 1, sizeof(double));
    double *g = calloc((size_t)m->nparams + 1, sizeof(double)),
           *x = calloc((size_t)m->ninputs + 1, sizeof(double));
    uint64_t rng = 3;
    for (uint64_t seed = 1; seed <= 2; seed++) {
      m->init(p, seed);
      eval_init_params(c, q, seed);
      for (int64_t i = 0; i < m->nparams; i++)
        assert_true(p[i] == q[i]);
      for (int64_t i = 0; i < m->ninputs; i++)
        x[i] = test_rand_normal(&rng);
      double loss = m->backward(p, x, g);
      Values v;
      eval_graph(c, p, x, &v);
      assert_true(fabs(v.v[c->loss->id][0] - loss) <= 1e-12 * fmax(1, fabs(loss)));
      for (int d = 0; d < c->params.len; d++) {
        Decl *dc = c->params.items[d];
        int64_t n = shape_numel(dc->shape);
        double *gi = calloc((size_t)n, sizeof(double));
        eval_param_grad(c, &v, d, gi);
        for (int64_t k = 0; k < n; k++)
          if (fabs(gi[k] - g[dc->offset + k]) > 1e-10 * fmax(1, fabs(gi[k])))
            fail_msg("%s: dloss/d%s[%lld]: interpreter %.17g, generated C %.17g", samples[s], dc->name,
                     (long long)k, gi[k], g[dc->offset + k]);
        free(gi);
      }
      values_free(&v);
    }
    free(p);
    free(q);
    free(g);
    free(x);
    ctx_free(c);
    free(c);
    model_free(m);
  }
}

static char *explained(const char *source, const char *wrt, const double *inputs) {
  Ctx c;
  ctx_init(&c, "t.bp", source, strlen(source));
  if (bpc_compile(&c, NULL)) fail_msg("%s", c.err.data);
  double p[16];
  eval_init_params(&c, p, 1);
  Values v;
  eval_graph(&c, p, inputs, &v);
  Buf out = {0};
  assert_int_equal(explain(&c, wrt, &v, &out), 0);
  values_free(&v);
  ctx_free(&c);
  return out.data;
}

static void test_explain_hinge(void **state) {
  (void)state;
  char *src = read_text_file(SAMPLES_DIR "/hinge.bp");
  double in[4] = {1, 2, 3, 1};
  char *s = explained(src, "w", in);
  assert_non_null(strstr(s, "path 1: loss <- (1 - margin) <- margin <- score <- w\n"
                            "  d max(0, 1 - margin)/d(1 - margin) = [1 - margin > 0] = 1\n"
                            "  d(1 - margin)/dmargin = -1\n"
                            "  d(y * score)/dscore = y = 1\n"
                            "  d dot(w, phi)/dw = phi\n"
                            "  product: [1 - margin > 0] * -1 * y * phi\n"));
  assert_non_null(strstr(s, "  dloss/dw = -phi * y * [1 - margin > 0]\n  = [-1, -2, -3]\n"));
  free(s);
  free(src);
}

static void test_explain_sigmoid_chain(void **state) {
  (void)state;
  double in[1] = {2};
  char *s = explained("param w = 0.5\ninput x\na = w * x\ns = sigmoid(a)\nloss = s\n", "w", in);
  assert_non_null(strstr(s, "  d sigmoid(a)/da = s * (1 - s) = 0.1966119332\n"
                            "  d(w * x)/dw = x = 2\n"
                            "  product: (s * (1 - s)) * x = 0.3932238665\n"));
  assert_non_null(strstr(s, "  dloss/dw = x * s * (1 - s) = 0.3932238665\n"));
  free(s);
}

static void test_explain_copy_gate(void **state) {
  (void)state;
  char *src = read_text_file(SAMPLES_DIR "/toy_net.bp");
  char *s = explained(src, "a", NULL);
  assert_non_null(strstr(s, "path 1: loss <- d <- (w3 * b) <- b <- a\n"));
  assert_non_null(strstr(s, "path 2: loss <- d <- (w4 * c) <- c <- a\n"));
  assert_non_null(strstr(s, "their products add up (the copy gate)"));
  assert_non_null(strstr(s, "  dloss/da = -w2 * w4 - w1 * w3 = -1.125\n"));
  free(s);
  free(src);
}

static void test_trace_xyz(void **state) {
  (void)state;
  Ctx *c = compile_file(SAMPLES_DIR "/xyz.bp");
  double p[3];
  eval_init_params(c, p, 1);
  Values v;
  eval_graph(c, p, NULL, &v);
  Buf out = {0};
  trace(c, &v, &out);
  assert_string_equal(out.data, "backward sweep, from the loss (dloss/dloss = 1):\n"
                                "\n"
                                "loss = z * q = -12\n"
                                "  incoming dloss/dloss = 1\n"
                                "  to z: local q = 3, outgoing = 3\n"
                                "  to q: local z = -4, outgoing = -4\n"
                                "\n"
                                "q = x + y = 3\n"
                                "  incoming dloss/dq = -4\n"
                                "  to x: local 1, outgoing = -4\n"
                                "  to y: local 1, outgoing = -4\n");
  buf_free(&out);
  values_free(&v);
  ctx_free(c);
  free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_interpreter_matches_generated_code),
      cmocka_unit_test(test_explain_hinge),
      cmocka_unit_test(test_explain_sigmoid_chain),
      cmocka_unit_test(test_explain_copy_gate),
      cmocka_unit_test(test_trace_xyz),
  };
  return cmocka_run_group_tests_name("inspect", tests, NULL, NULL);
}
