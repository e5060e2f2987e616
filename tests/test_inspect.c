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

/* ---- issue 10, items 5 and 6: every edge of the copy gate is a path; paths
 * are counted exactly; a long simplified formula names its parts and is cut
 * with a note. */

/* explain without values (v NULL): the symbols only. */
static char *explained_symbolic(const char *source, const char *wrt) {
  Ctx c;
  ctx_init(&c, "t.bp", source, strlen(source));
  if (bpc_compile(&c, NULL)) fail_msg("%s", c.err.data);
  Buf out = {0};
  assert_int_equal(explain(&c, wrt, NULL, &out), 0);
  ctx_free(&c);
  return out.data;
}

/* "param a0 = 0.5", then steps lines "aI = f(aI-1)" (f a printf format
 * naming the previous value twice), then "loss = aSTEPS" (plus extra). */
static char *chain_source(int steps, const char *f, const char *extra) {
  Buf b = {0};
  buf_puts(&b, "param a0 = 0.5\n");
  for (int i = 1; i <= steps; i++) {
    char prev[16];
    snprintf(prev, sizeof prev, "a%d", i - 1);
    buf_printf(&b, "a%d = ", i);
    buf_printf(&b, f, prev, prev);
    buf_puts(&b, "\n");
  }
  buf_printf(&b, "loss = a%d%s\n", steps, extra);
  return b.data;
}

static void test_explain_square_has_two_paths(void **state) {
  (void)state;
  char *s = explained("param x = 3\nloss = x * x\n", "x", NULL);
  assert_string_equal(s, "dloss/dx by the chain rule, from the loss back to x.\n"
                         "\n"
                         "2 paths lead from the loss back to x.\n"
                         "\n"
                         "where\n"
                         "  loss = x * x\n"
                         "\n"
                         "path 1: loss <- x (the left x)\n"
                         "  d(x * x)/dx (the left x) = x = 3\n"
                         "  product: x = 3\n"
                         "\n"
                         "path 2: loss <- x (the right x)\n"
                         "  d(x * x)/dx (the right x) = x = 3\n"
                         "  product: x = 3\n"
                         "\n"
                         "The paths meet where a value is used more than once; their products add up "
                         "(the copy gate):\n"
                         "  3 + 3 = 6\n"
                         "\n"
                         "simplified (as bpc computes it):\n"
                         "  dloss/dx = x * 2 = 6\n");
  free(s);
}

static void test_explain_sum_of_squares_has_two_paths(void **state) {
  (void)state;
  char *s = explained("param v[3] = [1, 2, 3]\nloss = sum(v * v)\n", "v", NULL);
  assert_string_equal(s, "dloss/dv by the chain rule, from the loss back to v.\n"
                         "\n"
                         "2 paths lead from the loss back to v.\n"
                         "\n"
                         "where\n"
                         "  loss = sum(v * v)\n"
                         "\n"
                         "path 1: loss <- (v * v) <- v (the left v)\n"
                         "  d sum(v * v)/d(v * v) = 1 (each element)\n"
                         "  d(v * v)/dv (the left v) = v = [1, 2, 3]\n"
                         "  product: (1 (each element)) * v = [1, 2, 3]\n"
                         "\n"
                         "path 2: loss <- (v * v) <- v (the right v)\n"
                         "  d sum(v * v)/d(v * v) = 1 (each element)\n"
                         "  d(v * v)/dv (the right v) = v = [1, 2, 3]\n"
                         "  product: (1 (each element)) * v = [1, 2, 3]\n"
                         "\n"
                         "The paths meet where a value is used more than once; their products add up "
                         "(the copy gate):\n"
                         "  [1, 2, 3] + [1, 2, 3] = [2, 4, 6]\n"
                         "\n"
                         "simplified (as bpc computes it):\n"
                         "  dloss/dv = v * 2\n"
                         "  = [2, 4, 6]\n");
  free(s);
}

/* The copy gate's sum with a negative product, on the lecture's network. */
static void test_explain_copy_gate_sum(void **state) {
  (void)state;
  char *src = read_text_file(SAMPLES_DIR "/toy_net.bp");
  char *s = explained(src, "a", NULL);
  assert_non_null(strstr(s, "\n\n2 paths lead from the loss back to a.\n\nwhere\n"));
  assert_non_null(strstr(s, "  product: -1 * 1 * w4 * w2 = 0.375\n"
                            "\n"
                            "The paths meet where a value is used more than once; their products add up "
                            "(the copy gate):\n"
                            "  -1.5 + 0.375 = -1.125\n"));
  free(s);
  free(src);
}

/* 30 steps of a = sin(a) + cos(a): 2^30 paths, counted (not enumerated),
 * and the formula with the adjoints named after the values. */
static void test_explain_counts_paths_exactly(void **state) {
  (void)state;
  char *src = chain_source(30, "sin(%s) + cos(%s)", "");
  char *s = explained_symbolic(src, "a0");
  assert_non_null(
      strstr(s, "\n\n1073741824 paths lead from the loss back to a0; the first 4 are listed.\n\n"));
  assert_non_null(strstr(s, "\n\n... and 1073741820 more paths, not listed.\n\n"));
  assert_null(strstr(s, "path 5:"));
  Buf want = {0};
  buf_puts(&want, "simplified (as bpc computes it):\n"
                  "  dloss/da0 = -sin(a0) * dloss/da1 + cos(a0) * dloss/da1\n"
                  "  where\n");
  for (int i = 1; i < 29; i++)
    buf_printf(&want, "    dloss/da%d = cos(a%d) * dloss/da%d - sin(a%d) * dloss/da%d\n", i, i, i + 1, i,
               i + 1);
  buf_puts(&want, "    dloss/da29 = cos(a29) - sin(a29)\n");
  const char *simplified = strstr(s, "simplified");
  assert_non_null(simplified);
  assert_string_equal(simplified, want.data);
  buf_free(&want);
  free(s);
  free(src);
}

/* Counts past 64 bits: a power of two, any other number exactly (with its
 * size), and past 512 bits a bound. */
static void test_explain_counts_big(void **state) {
  (void)state;
  char *src = chain_source(100, "sin(%s) + cos(%s)", "");
  char *s = explained_symbolic(src, "a0");
  assert_non_null(strstr(s, "\n\n2^100 paths lead from the loss back to a0; only the first is listed.\n\n"));
  assert_non_null(
      strstr(s, "\n\n... and 1267650600228229401496703205375 (about 1.27e+30) more paths, not listed.\n"));
  free(s);
  free(src);
  src = chain_source(100, "%s * %s", " + a0");
  s = explained_symbolic(src, "a0");
  assert_non_null(
      strstr(s, "\n\n1267650600228229401496703205377 (about 1.27e+30) paths lead from the loss back to a0; "
                "the first 2 are listed.\n\n"));
  free(s);
  free(src);
  src = chain_source(600, "%s * %s", "");
  s = explained_symbolic(src, "a0");
  assert_non_null(
      strstr(s, "\n\nat least 2^512 paths lead from the loss back to a0; only the first is listed.\n\n"));
  assert_non_null(strstr(s, "\n\n... and the rest, not listed.\n\n"));
  free(s);
  free(src);
}

/* A long formula is cut, and the note says how much: 60 steps give 59
 * named parts, 40 are shown. */
static void test_explain_cuts_long_formula(void **state) {
  (void)state;
  char *src = chain_source(60, "sin(%s) + cos(%s)", "");
  char *s = explained_symbolic(src, "a0");
  const char *tail = strstr(s, "    dloss/da40 =");
  assert_non_null(tail);
  assert_string_equal(tail, "    dloss/da40 = cos(a40) * dloss/da41 - sin(a40) * dloss/da41\n"
                            "  ... cut: 1076 more characters not shown (19 more definitions)\n");
  assert_null(strstr(s, "#")); /* every part has the name of a value */
  free(s);
  free(src);
  /* one line too long: 800 terms */
  Buf b = {0};
  buf_puts(&b, "param x = 1\n");
  for (int i = 1; i <= 800; i++)
    buf_printf(&b, "input u%d\n", i);
  buf_puts(&b, "loss = x * u1");
  for (int i = 2; i <= 800; i++)
    buf_printf(&b, " + x * u%d", i);
  buf_puts(&b, "\n");
  s = explained_symbolic(b.data, "x");
  tail = strstr(s, "simplified (as bpc computes it):\n  dloss/dx = u800 + u799 + ");
  assert_non_null(tail);
  tail = strstr(tail, " + u231 + u230 + ...\n");
  assert_non_null(tail);
  assert_string_equal(tail, " + u231 + u230 + ...\n"
                            "  ... cut: 1493 more characters not shown (the rest of the formula)\n");
  free(s);
  buf_free(&b);
}

/* A chain 20000 values long: one path of 20000 edges, found, printed and
 * simplified without recursion into the depth of the graph. */
static void test_explain_deep_chain(void **state) {
  (void)state;
  char *src = chain_source(20000, "sin(%s)", "");
  char *s = explained_symbolic(src, "a0");
  assert_non_null(strstr(s, "\npath 1: loss <- a19999 <- a19998 <- a19997 <- "));
  assert_non_null(strstr(s, "\n  d sin(a0)/da0 = cos(a0)\n  product: cos(a19999) * cos(a19998) * "));
  assert_non_null(
      strstr(s, "\n  dloss/da0 = dloss/da10 * cos(a9) * cos(a8) * cos(a7) * cos(a6) * cos(a5) * cos(a4) * "
                "cos(a3) * cos(a2) * cos(a1) * cos(a0)\n  where\n"
                "    dloss/da10 = dloss/da20 * cos(a19) * "));
  assert_non_null(strstr(s, "  ... cut: "));
  assert_null(strstr(s, "paths lead"));
  free(s);
  free(src);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_interpreter_matches_generated_code),
      cmocka_unit_test(test_explain_hinge),
      cmocka_unit_test(test_explain_sigmoid_chain),
      cmocka_unit_test(test_explain_copy_gate),
      cmocka_unit_test(test_trace_xyz),
      cmocka_unit_test(test_explain_square_has_two_paths),
      cmocka_unit_test(test_explain_sum_of_squares_has_two_paths),
      cmocka_unit_test(test_explain_copy_gate_sum),
      cmocka_unit_test(test_explain_counts_paths_exactly),
      cmocka_unit_test(test_explain_counts_big),
      cmocka_unit_test(test_explain_cuts_long_formula),
      cmocka_unit_test(test_explain_deep_chain),
  };
  return cmocka_run_group_tests_name("inspect", tests, NULL, NULL);
}
