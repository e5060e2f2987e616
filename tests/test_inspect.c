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
#include "runtime.h"

static const char *const samples[] = {"xyz",    "apple",     "apple_orange", "toy_net",  "hinge",
                                      "linreg", "two_layer", "mlp",          "logsumexp"};

/* As bpc explain and trace compile: each edge's local derivative recorded. */
static const CompileOptions with_locals = {.record_locals = 1};

static Ctx *compile_file(const char *path) {
  Ctx *c = malloc(sizeof *c);
  char *src = read_text_file(path);
  ctx_init(c, path, src, strlen(src));
  c->owned_text = src;
  if (bpc_compile(c, &with_locals)) fail_msg("%s", c->err.data);
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
  if (bpc_compile(&c, &with_locals)) fail_msg("%s", c.err.data);
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
                            "  d dot(w, phi)/dw = phi = [1, 2, 3]\n"
                            "  product: [1 - margin > 0] * -1 * y * phi = [-1, -2, -3]\n"));
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
  if (bpc_compile(&c, &with_locals)) fail_msg("%s", c.err.data);
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
                         "  dloss/dx = 2 * x = 6\n");
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
                         "  d sum(v * v)/d(v * v) = 1\n"
                         "  d(v * v)/dv (the left v) = v = [1, 2, 3]\n"
                         "  product: 1 * v = [1, 2, 3]\n"
                         "\n"
                         "path 2: loss <- (v * v) <- v (the right v)\n"
                         "  d sum(v * v)/d(v * v) = 1\n"
                         "  d(v * v)/dv (the right v) = v = [1, 2, 3]\n"
                         "  product: 1 * v = [1, 2, 3]\n"
                         "\n"
                         "The paths meet where a value is used more than once; their products add up "
                         "(the copy gate):\n"
                         "  [1, 2, 3] + [1, 2, 3] = [2, 4, 6]\n"
                         "\n"
                         "simplified (as bpc computes it):\n"
                         "  dloss/dv = 2 * v\n"
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

/* ---- issue 10, item 4: the finite-difference estimator of bpc check ---------
 * (runtime/fdcheck.c) on functions whose derivative is known. */

typedef struct Probe {
  int which;   /* the function */
  double kink; /* where the kinked functions bend */
  int calls;
} Probe;

enum { PROBE_SMOOTH = 8 };

/* The function and, in *d, its derivative. Probes 0..7 are smooth; 6 is
 * computed through numbers near 1000 (so it carries their rounding), 7 is
 * large. */
static double probe_value(const Probe *p, double t, double *d) {
  double k = p->kink;
  switch (p->which) {
  case 0: *d = exp(t); return exp(t);
  case 1: *d = 5 * cos(5 * t); return sin(5 * t);
  case 2: *d = 3 * t * t - 2; return t * t * t - 2 * t;
  case 3: *d = 1 / t; return log(t);
  case 4: *d = -1 / (t * t); return 1 / t;
  case 5: *d = 10 / (cosh(10 * t) * cosh(10 * t)); return tanh(10 * t);
  case 6: *d = 1 + cos(t); return ((t + 1000) - 1000) + sin(t);
  case 7: *d = 1e6 * cos(t); return 1e6 * sin(t);
  case 8: *d = t > 0 ? 1 : t < 0 ? -1 : 0; return fabs(t);         /* kink at 0 */
  case 9: *d = t > k ? 1.3 : 0.3; return fmax(0, t - k) + 0.3 * t; /* kink at k */
  case 10: *d = t > 0 ? 1 : 0; return fmax(0, t);                  /* relu */
  default: *d = 300 * cos(300 * t); return sin(300 * t);           /* sharply curved */
  }
}

static double probe(void *ctx, double t) {
  Probe *p = ctx;
  double d;
  p->calls++;
  return probe_value(p, t, &d);
}

/* Richardson-extrapolated differences are accurate to about 1e-10 on
 * smooth functions, and the error they claim is never smaller than the
 * error they make (against the exact derivative). */
static void test_fd_estimate_is_accurate_and_honest(void **state) {
  (void)state;
  static const double xs[] = {-1.3, -0.2, 0, 0.37, 2.5, 40};
  int compared = 0;
  for (int w = 0; w < PROBE_SMOOTH; w++)
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
      double x = xs[i];
      if ((w == 3 || w == 4) && x <= 0) continue; /* log and 1/x */
      Probe p = {w, 0, 0};
      double exact, fx = probe_value(&p, x, &exact);
      double magnitude = w == 6 ? 1000 + fabs(x) : 0;
      FdEstimate e = fd_estimate(probe, &p, x, fx, magnitude, fd_step(x));
      assert_int_equal(p.calls, 6);
      double err = fabs(e.deriv - exact), size = fmax(1, fabs(exact));
      if (!(err <= e.err))
        fail_msg("probe %d at %g: error %.3g, but the estimate claims at most %.3g", w, x, err, e.err);
      compared++;
      /* at 40 the step is 2^-5: too large for sin(5x), but the claim says so */
      if (x > 10) continue;
      /* useful: far below check's tolerance of 1e-6 (probe 6 carries
       * rounding of 1000 * 2^-53 per value) */
      double claim = w == 6 ? 1e-7 : 1e-9;
      if (!(e.err <= claim * size))
        fail_msg("probe %d at %g: the estimate claims %.3g, more than %.3g", w, x, e.err, claim * size);
      assert_true(err <= 1e-10 * size * (w == 6 ? 100 : 1));
      assert_true(e.kink == 0);
    }
  assert_int_equal(compared, 42);
  /* a step 50 times too large: less accurate, and it says so */
  static const int curved[] = {0, 1, 3, 5};
  for (size_t i = 0; i < sizeof curved / sizeof curved[0]; i++) {
    Probe p = {curved[i], 0, 0};
    double exact, fx = probe_value(&p, 0.37, &exact);
    FdEstimate e = fd_estimate(probe, &p, 0.37, fx, 0, 0.05);
    assert_true(fabs(e.deriv - exact) <= e.err);
    assert_true(e.err > 1e-9);
  }
}

/* A kink inside the step: wherever it lies, the claimed error covers what
 * it does to the estimate (the one-sided slopes give it away). */
static void test_fd_estimate_kink_within_the_step(void **state) {
  (void)state;
  double h = fd_step(0);
  for (int side = -1; side <= 1; side += 2)
    for (int i = 1; i < 76; i++) { /* 36/76 = 9/19: where Q vanishes */
      Probe p = {9, side * h * i / 76, 0};
      double exact, fx = probe_value(&p, 0, &exact);
      FdEstimate e = fd_estimate(probe, &p, 0, fx, 0, h);
      if (!(fabs(e.deriv - exact) <= e.err))
        fail_msg("kink at %g h: error %.3g, claimed %.3g", side * i / 76.0, fabs(e.deriv - exact), e.err);
      if (i == 36) /* Q vanishes; the disagreement of R1 and R2 covers it alone */
        assert_true(fabs(e.deriv - exact) <= e.err - e.rounding - e.kink);
      else
        assert_true(e.kink > 0);
    }
}

/* fd_check's verdicts: the exact derivative agrees, one off by 1e-5 does
 * not, a kink at the point is skipped, a kink near it is stepped past. */
static void test_fd_check_verdicts(void **state) {
  (void)state;
  static const double xs[] = {-0.7, 0.05, 1.9, 40};
  for (int w = 0; w < PROBE_SMOOTH; w++)
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
      double x = xs[i] + (w == 3 || w == 4 ? 1 : 0), exact;
      Probe p = {w, 0, 0};
      double fx = probe_value(&p, x, &exact), magnitude = w == 6 ? 1001 : 0;
      FdCheck c = fd_check(probe, &p, x, fx, magnitude, exact, 1e-6);
      assert_int_equal(c.verdict, FD_AGREE);
      assert_true(c.rel_err <= 1e-9);
      if (x < 10) assert_int_equal(c.evaluations, 6); /* else a smaller step may be needed */
      double wrong = exact + 1e-5 * fmax(fabs(exact), 1e-3);
      c = fd_check(probe, &p, x, fx, magnitude, wrong, 1e-6);
      assert_int_equal(c.verdict, FD_DISAGREE);
      assert_true(fabs(c.rel_err - 1e-5) < 1e-7);
    }
  /* |x| and relu at 0, whatever the gradient says: skipped */
  for (int w = 8; w <= 10; w += 2)
    for (int g = 0; g <= 1; g++) {
      Probe p = {w, 0, 0};
      FdCheck c = fd_check(probe, &p, 0, 0, 0, g, 1e-6);
      assert_int_equal(c.verdict, FD_KINK);
      assert_int_equal(c.evaluations, 18);
    }
  /* a kink 3e-4 away (within the first step, 2^-10): the second step,
   * 16 times smaller, misses it */
  Probe p = {9, 3e-4, 0};
  FdCheck c = fd_check(probe, &p, 0, 0, 0, 0.3, 1e-6);
  assert_int_equal(c.verdict, FD_AGREE);
  assert_int_equal(c.evaluations, 12);
  assert_true(c.est.step == fd_step(0) / 16);
  c = fd_check(probe, &p, 0, 0, 0, 0.3 * 1.001, 1e-6);
  assert_int_equal(c.verdict, FD_DISAGREE);
  /* sharply curved but smooth: not mistaken for a kink */
  p = (Probe){11, 0, 0};
  double exact, fx = probe_value(&p, 0.01, &exact);
  c = fd_check(probe, &p, 0.01, fx, 0, exact, 1e-6);
  assert_int_equal(c.verdict, FD_AGREE);
  c = fd_check(probe, &p, 0.01, fx, 0, exact * 1.001, 1e-6);
  assert_int_equal(c.verdict, FD_DISAGREE);
}

/* The first step follows the number's magnitude, a power of two. */
static void test_fd_step(void **state) {
  (void)state;
  assert_true(fd_step(0) == ldexp(1, -10));
  assert_true(fd_step(-0.3) == ldexp(1, -10));
  assert_true(fd_step(110) == ldexp(1, -4));
  assert_true(fd_step(-1e6) == ldexp(1, 9));
  assert_true(fd_step(NAN) == ldexp(1, -10));
}
/* ---- end of issue 10, item 4 ---- */

/* ---- issue 11, item 2: explain and trace print the derivative autodiff
 * recorded on each edge, not rules of their own. */

/* explain prints the local derivatives autodiff built (ops.h's column for
 * tanh, 1 - h * h, with h = tanh(a) named; a changed column changes this
 * text), and for a product the gradient it sends back, in G. */
static void test_explain_prints_autodiffs_derivatives(void **state) {
  (void)state;
  const char *src = "param a = 0.5\nparam W[2, 2] = [[1, 2], [3, 4]]\ninput x[2]\nh = tanh(a)\nz = x @ W\n"
                    "loss = h * 3 + sum(z * z)\n";
  double in[2] = {1, 2};
  char *s = explained(src, "a", in);
  assert_non_null(strstr(s, "  d tanh(a)/da = 1 - h * h = 0.786447733\n"
                            "  product: 1 * 3 * (1 - h * h) = 2.359343199\n"));
  free(s);
  s = explained(src, "W", in);
  /* z = x @ W = [7, 10]; dloss/dW = outer(x, 2 z) */
  assert_non_null(strstr(s, "  d(z * z)/dz (the left z) = z = [7, 10]\n"
                            "  d(x @ W)/dW: sends back outer(x, G)\n"
                            "  product: outer(x, 1 * 1 * z)\n"));
  assert_non_null(strstr(s, "  dloss/dW = outer(x, 2 * z)\n  = [14, 20, 28, 40]\n"));
  free(s);
}

/* The last line of path 1 before its product: the derivative at the
 * parameter. */
static char *last_local_line(const char *s) {
  const char *path = strstr(s, "\npath 1:"), *prod = path ? strstr(path, "\n  product: ") : NULL;
  assert_non_null(prod);
  const char *start = prod;
  while (start > path && start[-1] != '\n')
    start--;
  return strndup(start, (size_t)(prod - start));
}

/* The number a derivative's line ends with: "... = s * (1 - s) = 0.25" or
 * "... = 1". */
static double line_value(const char *line) {
  const char *eq = strrchr(line, '=');
  assert_non_null(eq);
  char *end;
  double x = strtod(eq + 1, &end);
  if (*end) fail_msg("not a number at the end of '%s'", line);
  return x;
}

/* How the language writes each elementwise op with a gradient that is not
 * a one-argument function called by its name (those are name(a)), and the
 * node's constant. A new such op must be added here. */
static const struct {
  Op op;
  const char *text;
  double v;
} spelled[] = {{OP_NEG, "-a", 0},           {OP_POWC, "a ^ 3", 3},        {OP_POWC, "a ^ -1.5", -1.5},
               {OP_LEAKY_RELU, "leaky_relu(a, 0.1)", 0.1}, {OP_DROPOUT, "dropout(a, 0.5)", 0.5},
               {OP_ADD, "a + b", 0},        {OP_SUB, "a - b", 0},         {OP_MUL, "a * b", 0},
               {OP_DIV, "a / b", 0},        {OP_MAX2, "max(a, b)", 0},    {OP_MIN2, "min(a, b)", 0}};

/* For every elementwise op, on both sides of 0 and for each argument: the
 * local derivative explain prints (the one autodiff recorded, from ops.h)
 * equals the derivative of the op's own scalar semantics, by central
 * differences. A wrong derivative column in ops.h, or a wrong one
 * recorded, changes the number. */
static void test_explain_local_derivative_of_every_elementwise_op(void **state) {
  (void)state;
  int checked = 0;
  for (int op = 0; op < OP_COUNT; op++) {
    int classes = op_info[op].classes;
    if (!(classes & OPC_ELEMENTWISE) || (classes & OPC_NO_GRADIENT)) continue;
    int found = 0;
    for (size_t t = 0; t < sizeof spelled / sizeof spelled[0] + 1; t++) {
      char text[64];
      double v = 0;
      if (t == sizeof spelled / sizeof spelled[0]) { /* the functions called by name */
        if (!(classes & OPC_FUNCTION)) break;
        snprintf(text, sizeof text, "%s(a)", op_info[op].name);
      } else {
        if ((int)spelled[t].op != op) continue;
        snprintf(text, sizeof text, "%s", spelled[t].text);
        v = spelled[t].v;
      }
      found = 1;
      for (int side = 0; side < 2; side++) {
        double a = side ? -0.6 : 0.7, b = 0.3;
        if (!isfinite(op_scalar((Op)op, a, b, v))) continue; /* log, sqrt of a negative number */
        for (int k = 0; k < op_info[op].arity; k++) {
          char src[256];
          /* sin(...) so that the simplifier keeps the op as written (3 * -a would become -(3 * a)) */
          snprintf(src, sizeof src, "param a = %g\nparam b = %g\nloss = sin(%s)\n", a, b, text);
          char *s = explained(src, k ? "b" : "a", NULL);
          char *line = last_local_line(s);
          double h = 1e-6, fd;
          if (k)
            fd = (op_scalar((Op)op, a, b + h, v) - op_scalar((Op)op, a, b - h, v)) / (2 * h);
          else
            fd = (op_scalar((Op)op, a + h, b, v) - op_scalar((Op)op, a - h, b, v)) / (2 * h);
          double got = line_value(line);
          if (!(fabs(got - fd) <= 1e-6 * fmax(1, fabs(fd))))
            fail_msg("%s at a = %g, b = %g: explain prints '%s', the derivative is %.10g", text, a, b, line, fd);
          checked++;
          free(line);
          free(s);
        }
      }
    }
    if (!found) fail_msg("op %s: add how the language writes it to spelled[]", op_info[op].name);
  }
  assert_true(checked >= 60);
}

/* The local derivatives as ops.h writes them, in explain's words. */
static void test_explain_local_derivative_texts(void **state) {
  (void)state;
  static const struct {
    const char *expr, *wrt, *line;
  } cases[] = {
      {"sigmoid(a)", "a", "  d sigmoid(a)/da = sigmoid(a) * (1 - sigmoid(a)) = 0.2217128733"},
      {"tanh(a)", "a", "  d tanh(a)/da = 1 - tanh(a) * tanh(a) = 0.63473959"},
      {"log(a)", "a", "  d log(a)/da = 1 / a = 1.428571429"},
      {"sqrt(a)", "a", "  d sqrt(a)/da = 0.5 / sqrt(a) = 0.5976143047"},
      {"exp(a)", "a", "  d exp(a)/da = exp(a) = 2.013752707"},
      {"relu(a)", "a", "  d relu(a)/da = [relu(a) > 0] = 1"},
      {"abs(a)", "a", "  d abs(a)/da = sign(a) = 1"},
      {"a ^ 3", "a", "  d(a^3)/da = 3 * a^2 = 1.47"},
      {"leaky_relu(a, 0.1)", "a", "  d leaky_relu(a, 0.1)/da = 0.1 + 0.9 * [a > 0] = 1"},
      {"-a", "a", "  d(-a)/da = -1"},
      {"a - b", "b", "  d(a - b)/db = -1"},
      {"a * b", "a", "  d(a * b)/da = b = 0.3"},
      {"a / b", "a", "  d(a / b)/da = 1 / b = 3.333333333"},
      {"a / b", "b", "  d(a / b)/db = -(a / b / b) = -7.777777778"}, /* -y / b, y = a / b */
      {"max(a, b)", "a", "  d max(a, b)/da = [a > b] = 1"},
      {"max(a, b)", "b", "  d max(a, b)/db = [a < b] = 0"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char src[256];
    snprintf(src, sizeof src, "param a = 0.7\nparam b = 0.3\nloss = sin(%s)\n", cases[i].expr);
    double none[1] = {0};
    char *s = explained(src, cases[i].wrt, none);
    char *line = last_local_line(s);
    assert_string_equal(line, cases[i].line);
    free(line);
    free(s);
  }
}

/* Products, views and sums: what each sends back, made from G; a path's
 * product puts the product so far in place of G; scalar results have
 * their local derivative with its values (dot's other vector, max's
 * one-hot). transpose(M) @ M sends each M its own gradient. */
static void test_explain_products_and_views(void **state) {
  (void)state;
  double x[2] = {1, 2};
  char *s = explained("param W[2, 3] = [[0.5, -1, 2], [1, 0.25, -0.5]]\ninput x[2]\nh = x @ W\n"
                      "s = sigmoid(h)\nloss = sum(s)\n",
                      "W", x);
  assert_non_null(strstr(s, "\nWhere a derivative is not one number per element (products, views, sums along an "
                            "axis, a value broadcast\nto a larger shape), the line shows what is sent back, made "
                            "from G, the gradient arriving there;\na path's product puts the product so far in "
                            "place of G.\n"));
  assert_non_null(strstr(s, "path 1: loss <- s <- h <- W\n"
                            "  d sum(s)/ds = 1\n"
                            "  d sigmoid(h)/dh = s * (1 - s) = [0.07010371655, 0.2350037122, 0.1966119332]\n"
                            "  d(x @ W)/dW: sends back outer(x, G)\n"
                            "  product: outer(x, 1 * (s * (1 - s)))\n"));
  free(s);
  /* K picks (transpose(M) @ M)[0, 1] = 14: dloss/dM = [[2, 1], [4, 3]], the left M's
   * M @ transpose(K) = [[2, 0], [4, 0]] plus the right M's M @ K = [[0, 1], [0, 3]] */
  const char *tt = "param M[2, 2] = [[1, 2], [3, 4]]\ninput K[2, 2]\nloss = sum(transpose(M) @ M * K)\n";
  double k[4] = {0, 1, 0, 0};
  s = explained(tt, "M", k);
  assert_non_null(strstr(s, "  d(transpose(M) @ M)/dM (the left M): sends back transpose(G @ transpose(M))\n"
                            "  product: transpose((1 * K) @ transpose(M))\n"));
  assert_non_null(strstr(s, "  d(transpose(M) @ M)/dM (the right M): sends back M @ G\n"
                            "  product: M @ (1 * K)\n"));
  assert_non_null(strstr(s, "  = [2, 1, 4, 3]\n"));
  free(s);
  Ctx c;
  ctx_init(&c, "t.bp", tt, strlen(tt));
  if (bpc_compile(&c, &with_locals)) fail_msg("%s", c.err.data);
  double p[4];
  eval_init_params(&c, p, 1);
  Values v;
  eval_graph(&c, p, k, &v);
  Buf out = {0};
  trace(&c, &v, &out);
  assert_non_null(strstr(out.data, "transpose(M) @ M = [2,2] [10, 14, 14, 20]\n"
                                   "  incoming dloss/d(transpose(M) @ M) = [2,2] [0, 1, 0, 0]\n"
                                   "  to M: outgoing = transpose(incoming @ transpose(M)) = [2,2] [2, 0, 4, 0]\n"
                                   "  to M: outgoing = M @ incoming = [2,2] [0, 1, 0, 3]\n"));
  buf_free(&out);
  values_free(&v);
  ctx_free(&c);
  /* views, a concatenation, max, dot and a sum along an axis */
  const char *views = "param v[3] = [0.5, -1, 2]\nparam M[2, 3] = [[1, -2, 3], [0.5, 4, -1]]\n"
                      "c = concat(v, M[1])\n"
                      "loss = dot(c, c) + max(v) + sum(M[0:2, 1:3]) + M[1, 2] * 3 + sum(sum(M, 1) ^ 2)\n";
  s = explained(views, "v", NULL);
  assert_non_null(strstr(s, "  d dot(c, c)/dc (the first c) = c = [0.5, -1, 2, 0.5, 4, -1]\n"
                            "  d concat(v, M[1])/dv: sends back G[0:3]\n"
                            "  product: (1 * 1 * 1 * 1 * c)[0:3]\n"));
  assert_non_null(strstr(s, "  d max(v)/dv = onehot_argmax(v) = [0, 0, 1]\n"
                            "  product: 1 * 1 * 1 * 1 * onehot_argmax(v) = [0, 0, 1]\n"));
  assert_non_null(strstr(s, "  dloss/dv = onehot_argmax(v) + (2 * c)[0:3]\n  = [1, -2, 5]\n"));
  free(s);
  s = explained(views, "M", NULL);
  assert_non_null(strstr(s, "  d concat(v, M[1])/dM[1]: sends back G[3:6]\n"
                            "  d M[1]/dM: sends back G at [1], 0 elsewhere\n"
                            "  product: (1 * 1 * 1 * 1 * c)[3:6] at [1], 0 elsewhere\n"));
  assert_non_null(strstr(s, "  d M[0:2, 1:3]/dM: sends back G at [0:2, 1:3], 0 elsewhere\n"
                            "  product: (1 * 1 * 1 * 1) at [0:2, 1:3], 0 elsewhere\n"));
  assert_non_null(strstr(s, "  d M[1, 2]/dM = 1 at [1, 2], 0 elsewhere = [0, 0, 0, 0, 0, 1]\n"
                            "  product: 1 * 1 * 3 * (1 at [1, 2], 0 elsewhere) = [0, 0, 0, 0, 0, 3]\n"));
  assert_non_null(strstr(s, "  d(sum(M, 1)^2)/dsum(M, 1) = 2 * sum(M, 1) = [4, 7]\n"
                            "  d sum(M, 1)/dM: sends back G\n"
                            "  product: 1 * 1 * (2 * sum(M, 1))\n"));
  assert_non_null(strstr(s, "  = [4, 5, 5, 8, 16, 9]\n"));
  free(s);
}

/* A value broadcast into a larger one gets the sum of what its elements'
 * copies receive: logsumexp's m = max(x), subtracted from every element,
 * is sent -sum(G), and the path's product says so (it adds up to -1 at the
 * largest element: the softmax sums to 1). */
static void test_explain_broadcast_sums(void **state) {
  (void)state;
  char *src = read_text_file(SAMPLES_DIR "/logsumexp.bp");
  char *s = explained(src, "x", NULL);
  assert_non_null(strstr(s, "  d(x - m)/dm: sends back -sum(G)\n"
                            "  d max(x)/dx = onehot_argmax(x) = [0, 0, 0, 1, 0]\n"
                            "  product: -sum(1 * (1 / sum(exp(x - m))) * 1 * exp(x - m)) * onehot_argmax(x)\n"));
  free(s);
  free(src);
}

/* Every local derivative recorded is the one autodiff multiplied by: along
 * every edge of every sample where it is one number per element, what was
 * sent equals the incoming gradient times it (element by element, or a
 * scalar's incoming times each element), at the interpreter's values. */
static void test_recorded_local_is_what_autodiff_used(void **state) {
  (void)state;
  int checked = 0, total = 0;
  for (size_t si = 0; si < sizeof samples / sizeof samples[0]; si++) {
    char path[256];
    snprintf(path, sizeof path, SAMPLES_DIR "/%s.bp", samples[si]);
    Ctx *c = compile_file(path);
    double *p = calloc((size_t)c->num_params + 1, sizeof(double)), *x = calloc((size_t)c->num_inputs + 1, sizeof(double));
    uint64_t rng = 5;
    eval_init_params(c, p, 1);
    for (int64_t i = 0; i < c->num_inputs; i++)
      x[i] = test_rand_normal(&rng);
    Values v;
    eval_graph(c, p, x, &v);
    for (int i = 0; i < c->edges.len; i++) {
      EdgeGrad *e = c->edges.items[i];
      assert_true((e->local != NULL) + (e->sends != NULL) == 1); /* what explain shows: one of them */
      total += e->local != NULL;
      if (!e->local || !e->incoming || !v.v[e->local->id] || !v.v[e->g->id] || !v.v[e->incoming->id]) continue;
      const double *g = v.v[e->g->id], *in = v.v[e->incoming->id], *d = v.v[e->local->id];
      Shape xs = e->from->shape;
      for (int64_t j = 0; j < shape_numel(xs); j++) {
        double want = in[shape_broadcast_index(e->incoming->shape, xs, j)] * d[shape_broadcast_index(e->local->shape, xs, j)];
        if (!(fabs(g[j] - want) <= 1e-12 * fmax(1, fabs(want))))
          fail_msg("%s: edge %d: sent %.17g, incoming * local = %.17g", samples[si], i, g[j], want);
      }
      checked++;
    }
    values_free(&v);
    free(p);
    free(x);
    ctx_free(c);
    free(c);
  }
  assert_int_equal(checked, total); /* every one had its values */
  assert_true(checked >= 60);
}

/* The normal compile records no derivative (and builds no node for one):
 * the emitted C is that of the golden files. */
static void test_normal_compile_records_nothing(void **state) {
  (void)state;
  char *src = read_text_file(SAMPLES_DIR "/two_layer.bp");
  Ctx plain, recorded;
  ctx_init(&plain, "t.bp", src, strlen(src));
  ctx_init(&recorded, "t.bp", src, strlen(src));
  if (bpc_compile(&plain, NULL)) fail_msg("%s", plain.err.data);
  if (bpc_compile(&recorded, &with_locals)) fail_msg("%s", recorded.err.data);
  assert_int_equal(plain.edges.len, recorded.edges.len);
  assert_true(plain.nodes.len < recorded.nodes.len);
  for (int i = 0; i < plain.edges.len; i++) {
    EdgeGrad *e = plain.edges.items[i];
    assert_null(e->local);
    assert_null(e->sends);
  }
  ctx_free(&plain);
  ctx_free(&recorded);
  free(src);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_interpreter_matches_generated_code),
      cmocka_unit_test(test_explain_hinge),
      cmocka_unit_test(test_explain_prints_autodiffs_derivatives),
      cmocka_unit_test(test_explain_local_derivative_of_every_elementwise_op),
      cmocka_unit_test(test_explain_local_derivative_texts),
      cmocka_unit_test(test_explain_products_and_views),
      cmocka_unit_test(test_explain_broadcast_sums),
      cmocka_unit_test(test_recorded_local_is_what_autodiff_used),
      cmocka_unit_test(test_normal_compile_records_nothing),
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
      cmocka_unit_test(test_fd_estimate_is_accurate_and_honest),
      cmocka_unit_test(test_fd_estimate_kink_within_the_step),
      cmocka_unit_test(test_fd_check_verdicts),
      cmocka_unit_test(test_fd_step),
  };
  return cmocka_run_group_tests_name("inspect", tests, NULL, NULL);
}
