/* test_compiler.c — the stages one by one: parser, shapes, IR sharing and
 * the simplifier, autodiff op by op (finite differences and known values),
 * and the emitter's naming and float mode. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static Ctx *compile_ok(const char *src) {
  Ctx *c = malloc(sizeof *c);
  ctx_init(c, "t.bp", src, strlen(src));
  if (bpc_compile(c, NULL)) fail_msg("%s", c->err.data);
  return c;
}

static void free_ctx(Ctx *c) {
  ctx_free(c);
  free(c);
}

/* ---- parser ---------------------------------------------------------------- */

static void test_parser_precedence(void **state) {
  (void)state;
  Ctx *c = compile_ok("param x = 3\nloss = -x^2 + 2 * x - 8 / 4\n");
  Stmt *s = c->prog.stmts.items[1];
  Ast *e = s->expr; /* ((-(x^2)) + (2*x)) - (8/4) */
  assert_int_equal(e->kind, AST_BIN);
  assert_int_equal(e->op, '-');
  assert_int_equal(e->kids[0]->op, '+');
  assert_int_equal(e->kids[0]->kids[0]->kind, AST_NEG);
  assert_int_equal(e->kids[0]->kids[0]->kids[0]->op, '^');
  assert_int_equal(e->kids[1]->op, '/');
  free_ctx(c);
}

static void test_parser_statements(void **state) {
  (void)state;
  /* ';' separates, '#' comments, newlines inside brackets do not end a
   * statement, and the last line needs no newline */
  Ctx *c = compile_ok("dim N = 2 # two\nparam W[N, 2] = [[1, 2],\n  [3, 4]]; input v[2]\n"
                      "output o = W @ v\nloss = sum(W @ v) + W[1, 0]");
  assert_int_equal(c->prog.stmts.len, 5);
  assert_int_equal(c->params.len, 1);
  assert_int_equal(c->inputs.len, 1);
  assert_int_equal(c->outputs.len, 1);
  Decl *w = c->params.items[0];
  assert_int_equal(w->init, INIT_VALUE);
  assert_true(w->init_values[2] == 3);
  free_ctx(c);
}

static void test_parser_initialisers(void **state) {
  (void)state;
  Ctx *c = compile_ok("param a ~ normal(0, 0.1)\nparam b[2] ~ uniform(-1, 1)\nparam C[2, 2]\n"
                      "param d[2]\nparam e[2] = 0.5\nloss = a + sum(b) + sum(C) + sum(d) + sum(e)\n");
  InitKind want[] = {INIT_NORMAL, INIT_UNIFORM, INIT_GLOROT, INIT_ZEROS, INIT_VALUE};
  for (int i = 0; i < 5; i++)
    assert_int_equal(((Decl *)c->params.items[i])->init, want[i]);
  assert_true(((Decl *)c->params.items[0])->init_b == 0.1);
  assert_true(((Decl *)c->params.items[4])->init_a == 0.5);
  free_ctx(c);
}

/* he and glorot take a matrix's fans, and a convolution kernel's once it is
 * used as one: fan_in = C/G * kh * kw, fan_out = O/G * kh * kw. */
static void test_initialiser_fans(void **state) {
  (void)state;
  Ctx *c = compile_ok("param W[6, 4] ~ he\nparam V[6, 4]\nparam K[8, 2, 3, 5] ~ he\nparam G[8, 2, 3, 5]\n"
                      "input x[4, 7, 7]\n"
                      "loss = sum(W) + sum(V) + sum(conv2d(x, K, groups=2)) + sum(conv2d(x, G, groups=2))\n");
  Decl *W = c->params.items[0], *V = c->params.items[1], *K = c->params.items[2], *G = c->params.items[3];
  assert_int_equal(W->init, INIT_NORMAL); /* he: normal(0, sqrt(2 / fan_in)) */
  assert_true(W->init_a == 0 && fabs(W->init_b - sqrt(2.0 / 6)) < 1e-15);
  assert_int_equal(V->init, INIT_GLOROT); /* uniform(-a, a), a = sqrt(6 / (fan_in + fan_out)) */
  assert_true(fabs(V->init_b - sqrt(6.0 / 10)) < 1e-15 && V->init_a == -V->init_b);
  assert_true(K->init_a == 0 && fabs(K->init_b - sqrt(2.0 / 30)) < 1e-15);      /* 2 * 3 * 5 */
  assert_true(fabs(G->init_b - sqrt(6.0 / (30 + 60))) < 1e-15);                /* + 8 / 2 * 3 * 5 */
  free_ctx(c);
}

/* ---- shapes ---------------------------------------------------------------------- */

static void test_shape_broadcast(void **state) {
  (void)state;
  Shape out;
  assert_true(shape_broadcast(shape_scalar(), shape_mat(2, 3), &out) && shape_eq(out, shape_mat(2, 3)));
  assert_true(shape_broadcast(shape_mat(2, 3), shape_vec(3), &out) && shape_eq(out, shape_mat(2, 3)));
  assert_true(shape_broadcast(shape_vec(3), shape_mat(2, 3), &out) && shape_eq(out, shape_mat(2, 3)));
  assert_false(shape_broadcast(shape_vec(2), shape_mat(2, 3), &out));
  assert_false(shape_broadcast(shape_vec(2), shape_vec(3), &out));
  assert_int_equal(shape_numel(shape_mat(4, 5)), 20);
}

static void test_shape_inference(void **state) {
  (void)state;
  Ctx *c = compile_ok("param A[2, 3]\nparam B[3, 4]\nparam v[3]\nparam u[2]\n"
                      "p = A @ B\nq = A @ v\nr = u @ A\ns = transpose(A)\nm = sum(A, 0)\nk = mean(A, 1)\n"
                      "loss = sum(p) + sum(q) + sum(r) + sum(s) + sum(m) + sum(k)\n");
  struct {
    const char *name;
    Shape s;
  } want[] = {
      {"p", {2, {2, 4}}}, {"q", {1, {2, 0}}}, {"r", {1, {3, 0}}},
      {"s", {2, {3, 2}}}, {"m", {1, {3, 0}}}, {"k", {1, {2, 0}}},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    int found = 0;
    for (int k = 0; k < c->nodes.len; k++) {
      Node *n = c->nodes.items[k];
      if (n->name && !strcmp(n->name, want[i].name)) {
        assert_true(shape_eq(n->shape, want[i].s));
        found = 1;
      }
    }
    assert_true(found);
  }
  free_ctx(c);
}

/* ---- IR sharing and simplification ------------------------------------------------------ */

static void test_ir_hash_consing(void **state) {
  (void)state;
  Ctx *c = compile_ok("param x\nparam y\na = x * y\nb = y * x\nloss = a + b\n");
  /* x*y and y*x are one node, so a + b is a + a, simplified to a * 2 */
  assert_int_equal(c->loss->op, OP_MUL);
  Node *prod = c->loss->args[0]->op == OP_MUL ? c->loss->args[0] : c->loss->args[1];
  Node *two = c->loss->args[0] == prod ? c->loss->args[1] : c->loss->args[0];
  assert_true(ir_is_const(two, 2));
  assert_string_equal(prod->name, "a");
  free_ctx(c);
}

static void test_simplifier_identities(void **state) {
  (void)state;
  Ctx *c = compile_ok("param x\nparam y\nloss = (x * 1 + 0) * (y - 0) + x * 0 + log(exp(y)) / 1\n");
  /* x*y + y */
  assert_int_equal(c->loss->op, OP_ADD);
  Node *a = c->loss->args[0], *b = c->loss->args[1];
  Node *mul = a->op == OP_MUL ? a : b, *leaf = a->op == OP_MUL ? b : a;
  assert_int_equal(mul->op, OP_MUL);
  assert_int_equal(leaf->op, OP_PARAM);
  free_ctx(c);
}

/* Regression (fuzzing): the sum of two broadcast scalars keeps the
 * broadcast shape; both broadcasts used to be dropped, leaving a scalar. */
static void test_two_broadcasts_keep_shape(void **state) {
  (void)state;
  Ctx *c = compile_ok("param a\nparam b\nparam v[4]\nloss = sum(v) + a + b\n");
  Node *x = ir_bcast(c, ((Decl *)c->params.items[0])->node, shape_vec(4), BCAST_ROWS);
  Node *y = ir_bcast(c, ((Decl *)c->params.items[1])->node, shape_vec(4), BCAST_ROWS);
  Node *sum = ir_binary(c, OP_ADD, x, y);
  assert_true(shape_eq(sum->shape, shape_vec(4)));
  free_ctx(c);
  /* and the batched gradient of a model with only scalars per example */
  Model *m = model_from_source("b.bp", "param a\nparam b = 5\ninput x\nu = sigmoid(b)\nv = max(u, x) / 4\n"
                                       "loss = (exp(u) + 5) * v + (a + 1) * v\n");
  double p[2] = {0.5, 5}, in[1] = {0.2};
  check_gradient_fd(m, p, in, 0, 1e-6);
  model_free(m);
}

/* sum(k * x) = k * sum(x): the sum of a softmax is its normaliser over itself */
static void test_sum_of_scaled_vector(void **state) {
  (void)state;
  Ctx *c = compile_ok("param x[4]\ninput k\nloss = sum(x * k) + sum(x / k) - sum(k * x)\n");
  int sums = 0;
  for (int i = 0; i < c->nodes.len; i++) {
    Node *n = c->nodes.items[i];
    if (n->op == OP_SUM) {
      sums++;
      assert_int_equal(n->args[0]->op, OP_PARAM); /* only ever sum(x) */
    }
  }
  assert_int_equal(sums, 1);
  free_ctx(c);
}

static void test_constant_folding(void **state) {
  (void)state;
  Ctx *c = compile_ok("dim N = 4\nparam x\nloss = x * (2 + 3 * N) + exp(0)\n");
  Node *k = c->loss->args[0]->op == OP_CONST ? c->loss->args[0] : c->loss->args[1];
  assert_int_equal(k->op, OP_CONST);
  assert_true(k->value == 1);
  free_ctx(c);
  /* reductions and products of constant tensors fold to their values */
  static const struct {
    const char *src;
    double value;
  } folds[] = {
      {"param x[3]\nloss = logsumexp(x * 0 + 2)\n", 0}, /* 2 + log(3), below */
      {"param x[4]\nloss = dot(x * 0 + 3, x * 0 + 2)\n", 24},
      {"param x[4]\nloss = sum(x * 0 + 3)\n", 12},
      {"param A[2, 3]\nparam v[3]\nloss = sum((A * 0 + 2) @ (v * 0 + 5))\n", 2 * 5 * 3 * 2},
  };
  for (size_t i = 0; i < sizeof folds / sizeof folds[0]; i++) {
    c = compile_ok(folds[i].src);
    assert_int_equal(c->loss->op, OP_CONST);
    assert_true(fabs(c->loss->value - (i == 0 ? 2 + log(3) : folds[i].value)) < 1e-15);
    free_ctx(c);
  }
}

/* Rewrites keep the values: a - (-b) = a + b, and the sum of a broadcast
 * scalar is the scalar times the element count (gradient: the count). */
static void test_rewrites_keep_values(void **state) {
  (void)state;
  static const struct {
    const char *src;
    double loss, grad0;
  } cases[] = {
      {"param a = 2\nparam b = 3\nloss = a - -b\n", 5, 1},
      {"param s = 2\nparam v[4]\nloss = sum(v * 0 + s)\n", 8, 4},
      {"param s = 2\nparam v[4]\nloss = sum(s - -v)\n", 8, 4},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    Model *m = model_from_source("r.bp", cases[i].src);
    double p[8] = {0}, g[8];
    m->init(p, 0);
    assert_true(m->backward(p, NULL, g) == cases[i].loss);
    assert_true(g[0] == cases[i].grad0);
    model_free(m);
  }
}

/* The backward pass reuses forward values instead of recomputing them. */
static void test_backward_reuses_forward(void **state) {
  (void)state;
  Ctx *c = compile_ok("param x[3]\nloss = sum(exp(x))\n");
  Node *g = c->grad_terms[0]->node; /* d sum(exp(x))/dx = exp(x), the forward node itself */
  assert_int_equal(g->op, OP_EXP);
  assert_false(g->is_backward);
  free_ctx(c);
  c = compile_ok("param x[3]\nloss = sum(sigmoid(x))\n");
  for (int i = 0; i < c->nodes.len; i++) {
    Node *n = c->nodes.items[i];
    if (n->is_backward) /* sigmoid' = y (1 - y): no new sigmoid or exp */
      assert_true(n->op != OP_SIGMOID && n->op != OP_EXP);
  }
  free_ctx(c);
}

static void test_fan_out_adds_up(void **state) {
  (void)state;
  Ctx *c = compile_ok("param x\nloss = x * x\n");
  /* two contributions, each the other factor x: one term x * 2 */
  GradTerm *t = c->grad_terms[0];
  assert_non_null(t);
  assert_null(t->next);
  assert_int_equal(t->node->op, OP_MUL);
  Node *a = t->node->args[0], *b = t->node->args[1];
  assert_true((a->op == OP_PARAM && ir_is_const(b, 2)) || (b->op == OP_PARAM && ir_is_const(a, 2)));
  free_ctx(c);
  /* terms that differ stay apart, in source order */
  c = compile_ok("param x\nparam y\nloss = x * y + x * x * x\n");
  int n = 0;
  for (t = c->grad_terms[0]; t; t = t->next)
    n++;
  assert_int_equal(n, 2);
  free_ctx(c);
  /* and they add up: dloss/dx = y + 3 x^2 = 5 + 12 at x = 2, y = 5 */
  Model *m = model_from_source("f.bp", "param x = 2\nparam y = 5\nloss = x * y + x * x * x\n");
  double p[2], g[2];
  m->init(p, 0);
  assert_true(m->backward(p, NULL, g) == 10 + 8);
  assert_true(g[0] == 17 && g[1] == 2);
  model_free(m);
}

static void test_softmax_cross_entropy_is_fused(void **state) {
  (void)state;
  Ctx *c = compile_ok("param z[4]\ninput t[4]\nloss = cross_entropy(softmax(z), t)\n");
  for (int i = 0; i < c->nodes.len; i++) {
    Node *n = c->nodes.items[i];
    assert_true(n->op != OP_LOG);                     /* log(softmax) became z - logsumexp(z) */
    if (n->is_backward) assert_true(n->op != OP_DIV); /* no t / p in the gradient */
  }
  free_ctx(c);
}

static void test_cheap_gradient(void **state) {
  (void)state;
  char *src = read_text_file(SAMPLES_DIR "/mlp.bp");
  Ctx *c = compile_ok(src);
  Stats st;
  compute_stats(c, &st);
  assert_true(st.fwd_flops > 200000);
  assert_true(st.bwd_flops <= 3 * st.fwd_flops);
  free_ctx(c);
  free(src);
}

/* A stack of matrices used slice by slice (W[i] in a loop): each slice's
 * gradient is added into its own part of grad, and --stats counts that part,
 * so the backward stays a small multiple of the forward however many layers
 * (when each term counted all of W it grew with L: 5.1x the forward at 8 layers, 16.5x at 32)
 */
static void test_cheap_gradient_of_stacked_layers(void **state) {
  (void)state;
  const char *src = "dim L = 8\ndim H = 16\nparam W[L, H, H] ~ normal(0, 0.1)\nparam b[L, H]\ninput x[H]\n"
                    "input t[H]\ndef dense(v, M, c) = sigmoid(v @ M + c)\nh = x\nfor i in 0..L {\n"
                    "  h = dense(h, W[i], b[i])\n}\nloss = mean((h - t) ^ 2)\n";
  const double want_fwd[2] = {4401, 17457}, want_bwd[2] = {8208, 34320}; /* L = 8, 32 */
  for (int k = 0; k < 2; k++) {
    DefineOpt d = {"L", k ? 32 : 8};
    CompileOptions o = {.defines = &d, .ndefines = 1};
    Ctx c;
    ctx_init(&c, "stack.bp", src, strlen(src));
    assert_int_equal(bpc_compile(&c, &o), 0);
    Stats st;
    compute_stats(&c, &st);
    assert_true(st.fwd_flops == want_fwd[k]);
    assert_true(st.bwd_flops == want_bwd[k]);
    assert_true(st.bwd_flops <= 2 * st.fwd_flops);
    ctx_free(&c);
  }
}

/* ---- autodiff, op by op ------------------------------------------------------------- */

#include "ad_programs.h"

static void test_autodiff_matches_finite_differences(void **state) {
  (void)state;
  for (size_t i = 0; i < 2 * (sizeof ad_programs / sizeof ad_programs[0]); i++) {
    const char *prog = ad_programs[i / 2]; /* each program twice: scalars as locals, then in slots */
    Model *m = i % 2 ? model_from_source_slots("op.bp", prog) : model_from_source("op.bp", prog);
    double *p = malloc(sizeof(double) * (size_t)m->nparams);
    double *x = malloc(sizeof(double) * (size_t)(m->ninputs + 1));
    uint64_t rng = 7 + i / 2;
    for (uint64_t seed = 1; seed <= 3; seed++) {
      m->init(p, seed);
      for (int64_t k = 0; k < m->ninputs; k++)
        x[k] = test_rand_normal(&rng);
      check_gradient_fd(m, p, m->ninputs ? x : NULL, 0, 1e-6);
      if (m->ninputs) check_input_gradient_fd(m, p, x, 1e-6); /* and dloss/dinputs */
    }
    free(p);
    free(x);
    model_free(m);
  }
}

/* The aliasing case of issue 10 with the numbers PyTorch gives. */
static void test_row_view_keeps_its_base(void **state) {
  (void)state;
  const char *src = "param W[2, 2] = [[1, 2], [3, 4]]\nh = W * 3\nd = h - h[0]\nloss = sum(d * d)\n";
  for (int form = 0; form < 2; form++) {
    Model *m = form ? model_from_source_slots("v.bp", src) : model_from_source("v.bp", src);
    double p[4], g[4];
    m->init(p, 0);
    assert_true(m->forward(p, NULL) == 72);
    assert_true(m->backward(p, NULL, g) == 72);
    assert_true(g[0] == -36 && g[1] == -36 && g[2] == 36 && g[3] == 36);
    model_free(m);
  }
}

/* A window of equal values sends its gradient to the first of them, row by
 * row, as max does (the generated loops; the kernels have their own test). */
static void test_maxpool_ties_go_to_the_first(void **state) {
  (void)state;
  Model *m = model_from_source("p.bp", "param x[1, 2, 4] = [[[3, 3, 1, 5], [3, 3, 5, 5]]]\n"
                                       "param w[1, 1, 2] = [[[2, 7]]]\nloss = sum(maxpool2d(x, 2) * w)\n");
  double p[10], g[10];
  m->init(p, 0);
  assert_true(m->backward(p, NULL, g) == 2 * 3 + 7 * 5);
  const double want[10] = {2, 0, 0, 7, 0, 0, 0, 0, 3, 5};
  assert_memory_equal(g, want, sizeof g);
  model_free(m);
}

static void test_known_local_derivatives(void **state) {
  (void)state;
  Model *m = model_from_source("d.bp", "param x = 0\nparam y = -1\nparam z = 2\nparam v = -3\n"
                                       "loss = sigmoid(x) + tanh(x) + relu(y) + relu(z) + abs(v)\n");
  double p[4], g[4];
  m->init(p, 0);
  m->backward(p, NULL, g);
  assert_true(g[0] == 0.25 + 1); /* sigmoid'(0) + tanh'(0) */
  assert_true(g[1] == 0);        /* relu'(-1) */
  assert_true(g[2] == 1);        /* relu'(2) */
  assert_true(g[3] == -1);       /* abs'(-3) */
  model_free(m);
  /* the max gate at a tie routes nothing: strict indicators [a > b], [a < b] */
  m = model_from_source("t.bp", "param a = 2\nparam b = 2\nloss = max(a, b)\n");
  m->init(p, 0);
  assert_true(m->backward(p, NULL, g) == 2);
  assert_true(g[0] == 0 && g[1] == 0);
  model_free(m);
  /* max over a vector routes the gradient to the first largest element */
  m = model_from_source("m.bp", "param v[4] = [1, 3, 3, 2]\nloss = max(v) * 5\n");
  m->init(p, 0);
  m->backward(p, NULL, g);
  assert_true(g[0] == 0 && g[1] == 5 && g[2] == 0 && g[3] == 0);
  model_free(m);
}

/* ---- random models ----------------------------------------------------------------
 * Programs built at random from smooth ops on scalars, vectors and a
 * matrix, so that the emitter's fusions meet in combinations nobody wrote
 * by hand: each is checked against finite differences as locals and as
 * slots in parts of 3 nodes. Deterministic (seeded). */

typedef struct RandVal {
  char name[16];
  int kind; /* 0 scalar, 1 vector [4], 2 vector [3], 3 matrix [3, 4] */
} RandVal;

static uint64_t rand_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15u);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  return z ^ (z >> 31);
}

static int rand_below(uint64_t *s, int n) { return (int)(rand_next(s) % (uint64_t)n); }

/* A value of the given kind from the pool, or -1. */
static int pick_kind(uint64_t *s, const RandVal *pool, int n, int kind) {
  int idx[64], k = 0;
  for (int i = 0; i < n; i++)
    if (pool[i].kind == kind) idx[k++] = i;
  return k ? idx[rand_below(s, k)] : -1;
}

static void random_program(uint64_t seed, Buf *out) {
  uint64_t s = seed;
  RandVal pool[64] = {{"a", 0}, {"u", 1}, {"v", 2}, {"A", 3}, {"x", 1}, {"c", 2}, {"B", 3}};
  int n = 7;
  buf_puts(out, "param a ~ uniform(-1, 1)\nparam u[4] ~ uniform(-1, 1)\nparam v[3] ~ uniform(-1, 1)\n"
                "param A[3, 4] ~ uniform(-1, 1)\ninput x[4]\ninput c[3]\ninput B[3, 4]\n");
  static const char *const unary[] = {"sigmoid(%s)", "tanh(%s)", "softplus(%s)", "exp(tanh(%s))",
                                      "sin(%s)",     "(%s)^2",   "cos(%s) * 0.5"};
  static const char *const binary[] = {"%s + %s", "%s - %s", "%s * %s", "%s / (1 + (%s)^2)"};
  int statements = 8 + rand_below(&s, 8);
  for (int stmt = 0; stmt < statements; stmt++) {
    char expr[256];
    int kind, op = rand_below(&s, 7);
    int i = rand_below(&s, n);
    const char *a = pool[i].name;
    if (op == 0) { /* unary, any shape */
      snprintf(expr, sizeof expr, unary[rand_below(&s, 7)], a);
      kind = pool[i].kind;
    } else if (op == 1) { /* binary with a value of the same shape or a scalar */
      int j = rand_below(&s, 2) ? pick_kind(&s, pool, n, pool[i].kind) : pick_kind(&s, pool, n, 0);
      char tmp[256];
      snprintf(tmp, sizeof tmp, binary[rand_below(&s, 4)], a, pool[j].name);
      memcpy(expr, tmp, sizeof expr);
      kind = pool[i].kind;
    } else if (op == 2) { /* products with the matrix */
      int m = pick_kind(&s, pool, n, 3), r = rand_below(&s, 3);
      int w = pick_kind(&s, pool, n, r == 0 ? 1 : 2);
      if (r == 0)
        snprintf(expr, sizeof expr, "%s @ %s", pool[m].name, pool[w].name), kind = 2;
      else if (r == 1)
        snprintf(expr, sizeof expr, "%s @ %s", pool[w].name, pool[m].name), kind = 1;
      else
        snprintf(expr, sizeof expr, "transpose(%s) @ %s", pool[m].name, pool[w].name), kind = 1;
    } else if (op == 3) { /* reductions to a scalar */
      int r = rand_below(&s, 3);
      if (pool[i].kind == 0) i = pick_kind(&s, pool, n, 1), a = pool[i].name;
      if (r == 0)
        snprintf(expr, sizeof expr, "sum(%s)", a);
      else if (r == 1 && pool[i].kind != 3)
        snprintf(expr, sizeof expr, "logsumexp(%s)", a);
      else
        snprintf(expr, sizeof expr, "sum(%s * %s)", a, a);
      kind = 0;
    } else if (op == 4) { /* a dot product of two vectors of one length */
      int k = 1 + rand_below(&s, 2);
      snprintf(expr, sizeof expr, "dot(%s, %s)", pool[pick_kind(&s, pool, n, k)].name,
               pool[pick_kind(&s, pool, n, k)].name);
      kind = 0;
    } else if (op == 5) { /* softmax of a vector */
      int k = 1 + rand_below(&s, 2);
      snprintf(expr, sizeof expr, "softmax(%s)", pool[pick_kind(&s, pool, n, k)].name);
      kind = k;
    } else { /* least squares: A @ w and the gradient through transpose(A) walk A together */
      const char *M = rand_below(&s, 2) ? "B" : pool[pick_kind(&s, pool, n, 3)].name;
      const char *w = rand_below(&s, 2) ? "u" : pool[pick_kind(&s, pool, n, 1)].name;
      snprintf(expr, sizeof expr, "0.5 * sum((%s - %s @ %s)^2)", pool[pick_kind(&s, pool, n, 2)].name, M, w);
      kind = 0;
    }
    snprintf(pool[n].name, sizeof pool[n].name, "r%d", stmt);
    pool[n].kind = kind;
    buf_printf(out, "%s = %s\n", pool[n].name, expr);
    n++;
  }
  buf_puts(out, "loss = 0");
  for (int i = 7; i < n; i++) /* every value reaches the loss, scalars directly */
    buf_printf(out, pool[i].kind == 0 ? " + %s" : " + sum(%s) * 0.3", pool[i].name);
  buf_puts(out, "\n");
}

static void test_random_models(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 12; seed++) {
    Buf src = {0};
    random_program(seed, &src);
    for (int form = 0; form < 2; form++) {
      Model *m =
          form ? model_from_source_slots("random.bp", src.data) : model_from_source("random.bp", src.data);
      double p[64], x[32];
      uint64_t rng = seed;
      m->init(p, seed);
      for (int k = 0; k < 19; k++)
        x[k] = test_rand_normal(&rng);
      check_gradient_fd(m, p, x, 0, 1e-5);
      model_free(m);
    }
    buf_free(&src);
  }
}

/* ---- emitter ------------------------------------------------------------------------------ */

static void test_emitter_names(void **state) {
  (void)state;
  /* names that would clash with C or with the generated code are renamed */
  Ctx *c = compile_ok("param exp = 1\nparam i = 2\ns = exp * i\nloss = exp(s)\n");
  Buf out = {0}, h = {0};
  EmitOptions eo = {.prefix = "m", .self_contained = 1};
  emit_c(c, &eo, &out, &h);
  assert_non_null(strstr(out.data, "const bp_real exp_ = params[0];"));
  assert_non_null(strstr(out.data, "const bp_real i_ = params[1];"));
  assert_non_null(strstr(out.data, "bp_real s_ = exp_ * i_;"));
  /* the header's fields keep those names: only the functions' locals clash */
  assert_non_null(strstr(out.data, "  bp_real exp;\n  bp_real i;\n} m_params;"));
  buf_free(&out);
  buf_free(&h);
  free_ctx(c);
  Model *m = model_from_source("n.bp", "param exp = 1\nparam i = 2\ns = exp * i\nloss = exp(s)\n");
  double p[2], g[2];
  m->init(p, 0);
  assert_true(fabs(m->backward(p, NULL, g) - exp(2)) < 1e-12);
  assert_true(fabs(g[0] - 2 * exp(2)) < 1e-12);
  model_free(m);
}

/* The JIT form with the team form (bpc train --threads 2 on the Fashion
 * MLP) in double and float: it has the team's function, whose products
 * are shared (bpk_mm_part, declared; a product of a parameter over k:
 * bpk_mm_ksplit, then bpk_mm_ksum), whose row steps run over each thread's
 * rows of the batch, with three barriers in all, and gcc and clang compile
 * it without a warning. */
static void test_team_form_compiles_cleanly(void **state) {
  (void)state;
  char *src = read_text_file(SAMPLES_DIR "/fashion_mlp.bp");
  for (int use_float = 0; use_float < 2; use_float++) {
    Ctx *c = compile_ok(src);
    assert_true(team_supported(c));
    Buf out = {0}, h = {0};
    EmitOptions eo = {.prefix = "m", .self_contained = 1, .use_float = use_float, .jit_kernels = 1, .batch = 64,
                      .team = 1};
    emit_c(c, &eo, &out, &h);
    assert_non_null(strstr(out.data, "m_train_team("));
    assert_non_null(strstr(out.data, use_float ? "void bpk_mm_part_f(" : "void bpk_mm_part_d("));
    /* X @ W1 over the threads' rows of W1, then their sum; the gradient of W1 by its rows */
    assert_non_null(strstr(out.data, use_float ? "bpk_mm_ksplit_f(image_, W1, part ? team_scratch + (size_t)(part - 1) * 8192 : t"
                                               : "bpk_mm_ksplit_d(image_, W1, part ? team_scratch + (size_t)(part - 1) * 8192 : t"));
    assert_non_null(strstr(out.data, use_float ? "void bpk_mm_ksum_f(" : "void bpk_mm_ksum_d("));
    /* the products' partials (8192), then every part's partial sums: the loss, the biases' gradients and
       W2's (1 + 10 + 1280 + 128, each rounded up to 16) */
    assert_non_null(strstr(out.data, "m_team_scratch_size(void) { return 9632; }"));
    assert_non_null(strstr(out.data, use_float ? "bpk_mm_ksum_f(t36, team_scratch, 64, 128, rlo, rhi, parts);"
                                               : "bpk_mm_ksum_d(t36, team_scratch, 64, 128, rlo, rhi, parts);"));
    assert_non_null(strstr(out.data, "grad_W1, 784, 64, 128, 1, 0, 0, part, parts, 1);"));
    /* h @ W2 and its gradient to h by this thread's rows of the batch; W2's gradient from the rows' shares */
    assert_non_null(strstr(out.data, use_float ? "if (hi > lo) bpk_mm_f(h_ + lo * 128, W2, t39 + lo * 10, hi - lo, 128, 10, 0, 0, 0);"
                                               : "if (hi > lo) bpk_mm_d(h_ + lo * 128, W2, t39 + lo * 10, hi - lo, 128, 10, 0, 0, 0);"));
    assert_non_null(strstr(out.data, "bp_real *const share = team_partials + (size_t)part * 1440 + 32;"));
    assert_non_null(strstr(out.data, "if (part == 0) {"));
    /* the barriers: inside the product over k, before W1's gradient (all of the batch's rows), and at
       the end; none between the row steps (a freed block of the workspace goes only to a tensor of its
       size, whose rows fall on the same lines) */
    int syncs = 0;
    const char *team_fn = strstr(out.data, "m__backward_add_t(");
    for (const char *q = team_fn; (q = strstr(q, "sync(team);")); q++)
      syncs++;
    assert_int_equal(syncs, 3);
    FILE *f = fopen("/tmp/bpc-team-test.c", "w");
    fwrite(out.data, 1, out.len, f);
    fclose(f);
    assert_int_equal(system("cc -std=c99 -pedantic -Wall -Wextra -Werror -c -o /tmp/bpc-team-test.o "
                            "/tmp/bpc-team-test.c"),
                     0);
    assert_int_equal(system("clang -std=c99 -pedantic -Wall -Wextra -Werror -c -o /tmp/bpc-team-test.o "
                            "/tmp/bpc-team-test.c"),
                     0);
    remove("/tmp/bpc-team-test.c");
    remove("/tmp/bpc-team-test.o");
    buf_free(&out);
    buf_free(&h);
    free_ctx(c);
  }
  /* a model with a convolution has none: its kernels keep per-thread buffers */
  char *cnn = read_text_file(SAMPLES_DIR "/fashion_cnn.bp");
  Ctx *c = compile_ok(cnn);
  assert_false(team_supported(c));
  free_ctx(c);
  free(cnn);
  free(src);
}

static void test_emitter_float_mode(void **state) {
  (void)state;
  char *src = read_text_file(SAMPLES_DIR "/residual.bp");
  Ctx *c = compile_ok(src);
  Buf out = {0}, h = {0};
  EmitOptions eo = {.prefix = "m", .self_contained = 1, .use_float = 1};
  emit_c(c, &eo, &out, &h);
  assert_non_null(strstr(out.data, "typedef float bp_real;"));
  assert_non_null(strstr(out.data, "expf("));
  assert_null(strstr(out.data, " exp("));
  FILE *f = fopen("/tmp/bpc-float-test.c", "w");
  fwrite(out.data, 1, out.len, f);
  fclose(f);
  assert_int_equal(system("cc -std=c99 -pedantic -Wall -Wextra -Werror -Wdouble-promotion -c "
                          "-o /tmp/bpc-float-test.o /tmp/bpc-float-test.c"),
                   0);
  /* clang too: it warns where gcc does not (a float compared with a double in the init's
     uniform draw, which residual's glorot parameters use) */
  assert_int_equal(system("clang -std=c99 -pedantic -Wall -Wextra -Werror -Wdouble-promotion -c "
                          "-o /tmp/bpc-float-test.o /tmp/bpc-float-test.c"),
                   0);
  remove("/tmp/bpc-float-test.c");
  remove("/tmp/bpc-float-test.o");
  buf_free(&out);
  buf_free(&h);
  free_ctx(c);
  free(src);
}

static void test_emitter_workspace_form(void **state) {
  (void)state;
  /* 800k doubles of a named intermediate: more than 4 MiB, so the _ws forms */
  Model *m = NULL;
  Ctx *c = compile_ok("param W[1000, 800]\ninput x[1000]\nV = exp(W)\nloss = sum(relu(transpose(V) @ x)) + sum(V * W)\n");
  Buf out = {0}, h = {0};
  EmitOptions eo = {.prefix = "big", .self_contained = 1};
  emit_c(c, &eo, &out, &h);
  assert_non_null(strstr(out.data, "#define BIG_WORKSPACE 1"));
  assert_non_null(strstr(out.data, "size_t big_workspace_size(void)"));
  assert_non_null(strstr(
      out.data,
      "bp_real big_backward_ws(const bp_real *params, const bp_real *inputs, bp_real *grad, bp_real *ws);"));
  assert_null(strstr(out.data, "bp_real ws["));
  (void)m;
  buf_free(&out);
  buf_free(&h);
  free_ctx(c);
}

/* ---- plan ------------------------------------------------------------------ */

/* The backward function's plan as --emit loops prints it, with the options
 * the C emitter passes. */
static char *plan_text(const char *src, PlanOptions o) {
  Ctx *c = compile_ok(src);
  Target t;
  target_per_example(c, &t);
  int nroots;
  Node **roots = plan_roots(c, &t, 1, 0, &nroots);
  Plan p;
  plan_function(c, &t, roots, nroots, 1, &o, &p);
  Buf b = {0};
  plan_print(c, &p, "backward", &b);
  free_ctx(c);
  return b.data;
}

/* Scalars in reused slots and a function cut into parts, decided by the
 * plan: x's slot is free again once q is computed, so the loss takes it;
 * the gradient terms are added after the parts. */
static void test_plan_slots_and_parts(void **state) {
  (void)state;
  char *text = plan_text("param x = -2\nparam y = 5\nparam z = -4\nq = x + y\nloss = q * z\n",
                         (PlanOptions){.slots_above = -1, .part_nodes = 2});
  assert_string_equal(text,
      "function backward: 8 steps, workspace 0 elements, scalars in 4 slots, in parts of 2 nodes\n"
      "  part 0:\n"
      "  %0 x scalar: sc0 = param x\n"
      "  %1 y scalar: sc1 = param y\n"
      "  part 1:\n"
      "  %2 z scalar: sc2 = param z\n"
      "  %3 q scalar: sc3 = add(%0@sc0, %1@sc1)\n"
      "  part 2:\n"
      "  %4 loss scalar: sc0 = mul(%2@sc2, %3@sc3)\n"
      "  end:\n"
      "  %2 z scalar: grad x = (+= when acc) %2@sc2\n"
      "  %2 z scalar: grad y = (+= when acc) %2@sc2\n"
      "  %3 q scalar: grad z = (+= when acc) %3@sc3\n");
  free(text);
}

/* Least squares: plain loops compute the gradient T^T (T x - s) inside the
 * product T x, a block of rows at a time (two fewer steps); the kernels'
 * form stores the residual and calls the product apart. */
static void test_plan_row_fusion_by_backend(void **state) {
  (void)state;
  const char *src = "param x[3]\ninput T[5, 3]\ninput s[5]\nr = s - T @ x\nloss = 0.5 * sum(r * r)\n";
  char *kernels = plan_text(src, (PlanOptions){0}), *loops = plan_text(src, (PlanOptions){.fuse_products = 1});
  assert_string_equal(kernels,
      "function backward: 8 steps, workspace 21 elements\n"
      "  %0 x [3]: param x, read in place\n"
      "  %1 T [5,3]: input T, read in place\n"
      "  %2 s [5]: input s, read in place\n"
      "  %3 [5]: for i<5 p<3: ws[0..5) = matmul(%1, %0)\n"
      "  %4 r [5]: for i<5: ws[16..21) = sub(%2, %3); and %7 = sum(mul(%4, %4))\n"
      "  %8 loss scalar: local = mul(0.5, %7)\n"
      "  %13 [5]: for i<5: ws[0..5) = sub(%3, %2)\n"
      "  %15 [3]: for p<5 i<3: grad x = (+= when acc) matmul(%1, %13, ta)\n");
  assert_string_equal(loops,
      "function backward: 6 steps, workspace 21 elements\n"
      "  %0 x [3]: param x, read in place\n"
      "  %1 T [5,3]: input T, read in place\n"
      "  %2 s [5]: input s, read in place\n"
      "  %3 [5]: for i<5 p<3: ws[0..5) = matmul(%1, %0); and grad x = (+= when acc) matmul(%1, sub(%3, %2), ta), a block of rows at a time\n"
      "  %4 r [5]: for i<5: ws[16..21) = sub(%2, %3); and %7 = sum(mul(%4, %4))\n"
      "  %8 loss scalar: local = mul(0.5, %7)\n");
  free(kernels);
  free(loops);
}

/* Every tensor of the workspace starts on a multiple of 16 elements (a
 * cache line of floats), whatever the sizes before it, so that threads
 * sharing a tensor by whole lines never write the same line; the
 * workspace ends with the last tensor, not with its padding. */
static void test_plan_tensors_start_on_lines(void **state) {
  (void)state;
  Ctx *c = compile_ok("param W1[7, 5] ~ normal(0, 1)\nparam W2[5, 3] ~ normal(0, 1)\ninput x[7]\ninput t[3]\n"
                      "h = tanh(x @ W1)\ns = exp(h) @ W2\nloss = softmax_cross_entropy(s, t) + sum(h * h)\n");
  Target t;
  target_per_example(c, &t);
  int nroots;
  Node **roots = plan_roots(c, &t, 1, 0, &nroots);
  Plan p;
  plan_function(c, &t, roots, nroots, 1, &(PlanOptions){0}, &p);
  int placed = 0;
  int64_t end = 0;
  for (int i = 0; i < c->nodes.len; i++) {
    Node *n = c->nodes.items[i];
    int64_t at = p.s.ws_offset[n->id];
    if (at < 0) continue;
    placed++;
    assert_int_equal(at % 16, 0);
    int64_t e = at + shape_numel(n->shape);
    if (e > end) end = e;
  }
  assert_true(placed >= 3); /* [5] values of h and exp(h), and [3] ones of s */
  assert_int_equal(p.s.ws_elems, end);
  free_ctx(c);
}

/* The elementwise functions of issue 12 against PyTorch (float64, the
 * numbers printed by torch for the same points), as locals and in slots;
 * elu and leaky_relu at 0 take PyTorch's side (1 and the slope), clip's
 * bounds take max and min's (0: see docs/language.md). */
static void test_more_functions_match_pytorch(void **state) {
  (void)state;
  static const struct {
    const char *expr;
    double loss, grad[7];
  } cases[] = {
      {"square(x)", 14.489999999999998, {-4, -1.3999999999999999, -0.20000000000000001, 0.40000000000000002, 1.8, 3.3999999999999999, 5}},
      {"log1p(x * x)", 5.9901225481725895, {-0.80000000000000004, -0.93959731543624159, -0.19801980198019803, 0.38461538461538458, 0.99447513812154709, 0.87403598971722374, 0.68965517241379315}},
      {"expm1(x)", 15.874205226811778, {0.1353352832366127, 0.49658530379140953, 0.90483741803595952, 1.2214027581601699, 2.4596031111569499, 5.4739473917271999, 12.182493960703473}},
      {"erf(x)", 1.2174079333319838, {0.020666985354092053, 0.69127486041053865, 1.1171516067889369, 1.084134787104863, 0.50196857424036267, 0.062711040496868403, 0.0021782842303527099}},
      {"elu(x)", 3.8367580050639809, {0.1353352832366127, 0.49658530379140953, 0.90483741803595952, 1, 1, 1, 1}},
      {"gelu(x)", 4.6980203423469664, {-0.085231801078196917, 0.023385898866340155, 0.42047690797526982, 0.65746824823419414, 1.0554165995621199, 1.1153179687821648, 1.0376110859081451}},
      {"leaky_relu(x, 0.1)", 5.0199999999999996, {0.10000000000000001, 0.10000000000000001, 0.10000000000000001, 1, 1, 1, 1}},
      {"clip(x, -1, 1)", 1.3, {0, 1, 1, 1, 1, 0, 0}},
      /* at 0: elu 1, leaky_relu its slope, clip (inside) 1; at clip's bound 0.2: 1 + 1 + 0 */
      {"elu(x) + leaky_relu(x, 0.25) + clip(x, -1, 0.2)", 0, {2.25, 2.25, 2.25, 2, 2, 2, 2}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (int form = 0; form < 2; form++) {
      char src[256];
      int at_zero = i == sizeof cases / sizeof cases[0] - 1; /* the kinks: every element at 0, the bound */
      snprintf(src, sizeof src, "param x[7] = %s\nloss = sum(%s)\n",
               at_zero ? "[0, 0, 0, 0.2, 0.2, 0.2, 0.2]" : "[-2, -0.7, -0.1, 0.2, 0.9, 1.7, 2.5]", cases[i].expr);
      Model *m = form ? model_from_source_slots("f.bp", src) : model_from_source("f.bp", src);
      double p[7], g[7];
      m->init(p, 0);
      double loss = m->backward(p, NULL, g);
      if (!at_zero && fabs(loss - cases[i].loss) > 1e-13 * (1 + fabs(cases[i].loss)))
        fail_msg("%s: loss %.17g, PyTorch %.17g", cases[i].expr, loss, cases[i].loss);
      for (int k = 0; k < 7; k++) {
        double want = cases[i].grad[k];
        if (fabs(g[k] - want) > 1e-13 * (1 + fabs(want))) fail_msg("%s [%d]: %.17g, PyTorch %.17g", cases[i].expr, k, g[k], want);
      }
      model_free(m);
    }
}

/* A loop of 100 layers unrolls, compiles and has the right gradient. */
static void test_loop_of_100_layers(void **state) {
  (void)state;
  const char *src = "dim L = 100\nparam W[L, 3, 3] ~ normal(0, 0.6)\nparam b[L, 3] ~ normal(0, 0.1)\n"
                    "input x[3]\ndef layer(v, M, c) = tanh(v @ M + c)\nh = x\n"
                    "for i in 0..L {\n  h = layer(h, W[i], b[i])\n}\nloss = sum(h * h)\n";
  Model *m = model_from_source("deep.bp", src);
  assert_int_equal(m->nparams, 100 * 12);
  double *p = malloc(sizeof(double) * (size_t)m->nparams), x[3] = {0.5, -1, 2};
  m->init(p, 4);
  check_gradient_fd(m, p, x, 0, 1e-6);
  free(p);
  model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parser_precedence),
      cmocka_unit_test(test_parser_statements),
      cmocka_unit_test(test_parser_initialisers),
      cmocka_unit_test(test_initialiser_fans),
      cmocka_unit_test(test_maxpool_ties_go_to_the_first),
      cmocka_unit_test(test_shape_broadcast),
      cmocka_unit_test(test_shape_inference),
      cmocka_unit_test(test_ir_hash_consing),
      cmocka_unit_test(test_simplifier_identities),
      cmocka_unit_test(test_sum_of_scaled_vector),
      cmocka_unit_test(test_constant_folding),
      cmocka_unit_test(test_rewrites_keep_values),
      cmocka_unit_test(test_two_broadcasts_keep_shape),
      cmocka_unit_test(test_backward_reuses_forward),
      cmocka_unit_test(test_fan_out_adds_up),
      cmocka_unit_test(test_softmax_cross_entropy_is_fused),
      cmocka_unit_test(test_cheap_gradient),
      cmocka_unit_test(test_cheap_gradient_of_stacked_layers),
      cmocka_unit_test(test_autodiff_matches_finite_differences),
      cmocka_unit_test(test_row_view_keeps_its_base),
      cmocka_unit_test(test_known_local_derivatives),
      cmocka_unit_test(test_random_models),
      cmocka_unit_test(test_emitter_names),
      cmocka_unit_test(test_emitter_float_mode),
      cmocka_unit_test(test_team_form_compiles_cleanly),
      cmocka_unit_test(test_emitter_workspace_form),
      cmocka_unit_test(test_more_functions_match_pytorch),
      cmocka_unit_test(test_loop_of_100_layers),
      cmocka_unit_test(test_plan_slots_and_parts),
      cmocka_unit_test(test_plan_row_fusion_by_backend),
      cmocka_unit_test(test_plan_tensors_start_on_lines),
  };
  return cmocka_run_group_tests_name("compiler", tests, NULL, NULL);
}
