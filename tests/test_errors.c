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

int main(void) {
  enum { N = sizeof error_cases / sizeof error_cases[0] };
  struct CMUnitTest tests[2 * N + 7];
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
  return _cmocka_run_group_tests("errors", tests, 2 * N + 7, NULL, NULL);
}
