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
  assert_non_null(strstr(s, "  d(z * z)/dz (the left z) = z\n"
                            "  d(x @ W)/dW = outer(x, G)\n"));
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_interpreter_matches_generated_code),
      cmocka_unit_test(test_explain_hinge),
      cmocka_unit_test(test_explain_prints_autodiffs_derivatives),
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
