/* test_errors.c — each kind of user error gives exactly its message:
 * FILE:LINE:COL, the line, a caret, and what is wrong in the user's terms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "harness.h"
#include "error_cases.h"

static void test_error_case(void **state) {
  const ErrorCase *e = *state;
  Ctx c;
  ctx_init(&c, "model.bp", e->source, e->source_len);
  assert_int_equal(bpc_compile(&c, NULL), 1);
  assert_string_equal(c.err.data, e->message);
  ctx_free(&c);
}

/* Through the binary: exit status 1, the same message, and no output file,
 * not even an empty one. */
static void test_error_case_writes_nothing(void **state) {
  const ErrorCase *e = *state;
  char dir[] = "/tmp/bpc-err-XXXXXX", cmd[512], path[256];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/model.bp", dir);
  FILE *f = fopen(path, "wb");
  fwrite(e->source, 1, e->source_len, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "cd %s && %s model.bp -o out.c 2>err.txt", dir, BPC_BIN);
  int rc = system(cmd);
  assert_true(WIFEXITED(rc));
  assert_int_equal(WEXITSTATUS(rc), 1);
  snprintf(path, sizeof path, "%s/err.txt", dir);
  char *err = read_text_file(path);
  assert_string_equal(err, e->message);
  free(err);
  snprintf(cmd, sizeof cmd, "test \"$(ls %s)\" = \"err.txt\nmodel.bp\"", dir);
  assert_int_equal(system(cmd), 0); /* no out.c, out.h or temporary file */
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

static void test_statement_limit(void **state) {
  (void)state;
  Buf b = {0};
  buf_puts(&b, "param x\n");
  for (int i = 0; i < BPC_MAX_STATEMENTS; i++)
    buf_printf(&b, "v%d = x\n", i);
  buf_puts(&b, "loss = x\n");
  char *msg = compile_error(b.data);
  char want[128];
  snprintf(want, sizeof want, "model.bp:%d:1: error: too many statements (the limit is %d)\n",
           BPC_MAX_STATEMENTS + 1, BPC_MAX_STATEMENTS);
  assert_true(!strncmp(msg, want, strlen(want)));
  free(msg);
  buf_free(&b);
}

static void test_node_limit(void **state) {
  (void)state;
  const char *src = "param x\nloss = x * 1.5 + x * 2.5 + x * 3.5 + x * 4.5 + x * 5.5 + x * 6.5\n";
  Ctx c;
  ctx_init(&c, "model.bp", src, strlen(src));
  c.max_nodes = 8;
  assert_int_equal(bpc_compile(&c, NULL), 1);
  assert_non_null(strstr(c.err.data, "error: the model needs more than 8 graph nodes (the limit)"));
  ctx_free(&c);
}

/* A loop that unrolls past the node limit says which loop and where. */
static void test_loop_too_big(void **state) {
  (void)state;
  const char *src = "param W[100, 2, 2]\ninput x[2]\nh = x\nfor i in 0..100 {\n  h = tanh(h @ W[i])\n}\n"
                    "loss = sum(h)\n";
  Ctx c;
  ctx_init(&c, "model.bp", src, strlen(src));
  c.max_nodes = 60;
  assert_int_equal(bpc_compile(&c, NULL), 1);
  assert_non_null(strstr(c.err.data, "error: the model needs more than 60 graph nodes (the limit) (in the loop at "
                                     "line 4, i = "));
  ctx_free(&c);
}

static void test_define_of_unknown_dim(void **state) {
  (void)state;
  const char *src = "dim N = 3\nparam x[N]\nloss = sum(x)\n";
  DefineOpt d = {"M", 4};
  CompileOptions o = {.defines = &d, .ndefines = 1};
  Ctx c;
  ctx_init(&c, "model.bp", src, strlen(src));
  assert_int_equal(bpc_compile(&c, &o), 1);
  assert_string_equal(c.err.data, "model.bp: error: -D M=4: the model declares no dim named 'M'\n");
  ctx_free(&c);
}

static void test_define_overrides_dim(void **state) {
  (void)state;
  const char *src = "dim N = 3\nparam x[N]\nloss = sum(x)\n";
  DefineOpt d = {"N", 7};
  CompileOptions o = {.defines = &d, .ndefines = 1};
  Ctx c;
  ctx_init(&c, "model.bp", src, strlen(src));
  assert_int_equal(bpc_compile(&c, &o), 0);
  assert_int_equal(c.num_params, 7);
  ctx_free(&c);
}

/* Hostile input: a long flat expression compiles (no recursion on its
 * depth), and every case ends in a result or an error, never a crash. */
static void test_hundred_thousand_terms(void **state) {
  (void)state;
  Buf b = {0};
  buf_puts(&b, "param x\nloss = x");
  for (int i = 0; i < 100000; i++)
    buf_printf(&b, " + x * %d", i % 7 + 1);
  buf_puts(&b, "\n");
  Ctx c;
  ctx_init(&c, "big.bp", b.data, b.len);
  assert_int_equal(bpc_compile(&c, NULL), 0);
  assert_non_null(c.grad_terms[0]);
  ctx_free(&c);
  buf_free(&b);
}

static void test_deep_unary_chain_is_an_error(void **state) {
  (void)state;
  Buf b = {0};
  buf_puts(&b, "param x\nloss = ");
  for (int i = 0; i < 50000; i++)
    buf_puts(&b, "-");
  buf_puts(&b, "x\n");
  char *msg = compile_error(b.data);
  assert_non_null(strstr(msg, "error: expression nested too deeply (the limit is 20000 pending operators)"));
  free(msg);
  buf_free(&b);
}

static void test_deep_chain_within_limit_compiles(void **state) {
  (void)state;
  Buf b = {0};
  buf_puts(&b, "param x\nloss = ");
  for (int i = 0; i < 5000; i++)
    buf_puts(&b, "- ");
  buf_puts(&b, "x\n");
  Ctx c;
  ctx_init(&c, "deep.bp", b.data, b.len);
  assert_int_equal(bpc_compile(&c, NULL), 0);
  ctx_free(&c);
  buf_free(&b);
}

/* The documented limit of 20,000 pending operators is exact (issue 10, 0e):
 * in a chain of unary minus signs, a chain of powers inside brackets, and a
 * mix; one more is refused at the operator that goes over it. */
static void deep_source(Buf *b, const char *open, const char *op, int n, const char *close) {
  buf_puts(b, "param w[2]\nloss = ");
  buf_puts(b, open);
  for (int i = 0; i < n; i++)
    buf_puts(b, op);
  buf_puts(b, close);
  buf_puts(b, "\n");
}

/* open holds `before` pending operators, op one more (its operator at
 * column `col` the first time), close the last operand. */
static void expect_depth(const char *open, int before, const char *op, const char *close, int col) {
  int n = BPC_MAX_PARSE_DEPTH - before;
  Buf ok = {0}, over = {0};
  deep_source(&ok, open, op, n, close);
  Ctx c;
  ctx_init(&c, "model.bp", ok.data, ok.len);
  if (bpc_compile(&c, NULL)) fail_msg("%d pending operators: %s", BPC_MAX_PARSE_DEPTH, c.err.data);
  ctx_free(&c);
  deep_source(&over, open, op, n + 1, close);
  char *msg = compile_error(over.data);
  char want[160];
  snprintf(want, sizeof want,
           "model.bp:2:%d: error: expression nested too deeply (the limit is %d pending operators)\n",
           col + n * (int)strlen(op), BPC_MAX_PARSE_DEPTH);
  assert_true(strlen(msg) > strlen(want));
  msg[strlen(want)] = 0; /* the source line and the caret follow */
  assert_string_equal(msg, want);
  free(msg);
  buf_free(&ok);
  buf_free(&over);
}

static void test_parse_depth_limit_is_exact(void **state) {
  (void)state;
  assert_int_equal(BPC_MAX_PARSE_DEPTH, 20000); /* as docs/language.md says */
  expect_depth("", 0, "-", "w[0]", 8);
  expect_depth("", 0, "- ", "w[0]", 8);
  expect_depth("sum(w * (", 1, "1 ^ ", "1))", 19);
  expect_depth("w[0] / (w[1] + ", 2, "-", "w[0])", 23);
}

/* No error points outside its file: every prefix of every sample, and every
 * sample with one character deleted, either compiles or reports a line of
 * the file and a column from 1 to just after that line's end (issue 10: a
 * missing operand was reported at column 0 of the next line). */
static int line_length(const char *src, size_t len, int line) {
  size_t i = 0;
  for (int l = 1; l < line; l++) {
    const char *nl = memchr(src + i, '\n', len - i);
    if (!nl) return -1;
    i = (size_t)(nl - src) + 1;
  }
  const char *nl = memchr(src + i, '\n', len - i);
  return (int)((nl ? (size_t)(nl - src) : len) - i);
}

static void check_location(const char *src, size_t len) {
  Ctx c;
  ctx_init(&c, "model.bp", src, len);
  if (bpc_compile(&c, NULL)) {
    int line = 0, col = 0;
    if (sscanf(c.err.data, "model.bp:%d:%d:", &line, &col) == 2) {
      int n = line_length(src, len, line);
      if (line < 1 || n < 0 || col < 1 || col > n + 1)
        fail_msg("%d:%d is not in the file (source: '%.*s'): %s", line, col, (int)len, src, c.err.data);
    }
  }
  ctx_free(&c);
}

static void test_every_error_points_into_its_line(void **state) {
  (void)state;
  static const char *const samples[] = {"xyz", "hinge", "toy_net", "two_layer", "linreg", "logsumexp"};
  for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++) {
    char path[512];
    snprintf(path, sizeof path, SAMPLES_DIR "/%s.bp", samples[s]);
    char *text = read_text_file(path);
    size_t len = strlen(text);
    char *cut = malloc(len + 1);
    for (size_t i = 0; i <= len; i++)
      check_location(text, i);
    for (size_t i = 0; i < len; i++) {
      memcpy(cut, text, i);
      memcpy(cut + i, text + i + 1, len - i - 1);
      check_location(cut, len - 1);
    }
    free(cut);
    free(text);
  }
}

int main(void) {
  enum { N = sizeof error_cases / sizeof error_cases[0] };
  struct CMUnitTest tests[2 * N + 10];
  for (int i = 0; i < N; i++) {
    tests[i] = (struct CMUnitTest){error_cases[i].name, test_error_case, NULL, NULL, (void *)&error_cases[i]};
    tests[N + 5 + i] = (struct CMUnitTest){error_cases[i].name, test_error_case_writes_nothing, NULL, NULL,
                                           (void *)&error_cases[i]};
  }
  tests[N] = (struct CMUnitTest)cmocka_unit_test(test_define_of_unknown_dim);
  tests[N + 1] = (struct CMUnitTest)cmocka_unit_test(test_define_overrides_dim);
  tests[N + 2] = (struct CMUnitTest)cmocka_unit_test(test_hundred_thousand_terms);
  tests[N + 3] = (struct CMUnitTest)cmocka_unit_test(test_deep_unary_chain_is_an_error);
  tests[N + 4] = (struct CMUnitTest)cmocka_unit_test(test_deep_chain_within_limit_compiles);
  tests[2 * N + 5] = (struct CMUnitTest)cmocka_unit_test(test_statement_limit);
  tests[2 * N + 6] = (struct CMUnitTest)cmocka_unit_test(test_node_limit);
  tests[2 * N + 7] = (struct CMUnitTest)cmocka_unit_test(test_parse_depth_limit_is_exact);
  tests[2 * N + 8] = (struct CMUnitTest)cmocka_unit_test(test_every_error_points_into_its_line);
  tests[2 * N + 9] = (struct CMUnitTest)cmocka_unit_test(test_loop_too_big);
  return _cmocka_run_group_tests("errors", tests, 2 * N + 10, NULL, NULL);
}
