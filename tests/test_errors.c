/* test_errors.c — each kind of user error gives exactly its message:
 * FILE:LINE:COL, the line, a caret, and what is wrong in the user's terms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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

static void test_define_of_unknown_dim(void **state) {
  (void)state;
  const char *src = "dim N = 3\nparam x[N]\nloss = sum(x)\n";
  DefineOpt d = {"M", 4};
  CompileOptions o = {&d, 1};
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
  CompileOptions o = {&d, 1};
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
  struct CMUnitTest tests[N + 5];
  for (int i = 0; i < N; i++)
    tests[i] = (struct CMUnitTest){error_cases[i].name, test_error_case, NULL, NULL, (void *)&error_cases[i]};
  tests[N] = (struct CMUnitTest)cmocka_unit_test(test_define_of_unknown_dim);
  tests[N + 1] = (struct CMUnitTest)cmocka_unit_test(test_define_overrides_dim);
  tests[N + 2] = (struct CMUnitTest)cmocka_unit_test(test_hundred_thousand_terms);
  tests[N + 3] = (struct CMUnitTest)cmocka_unit_test(test_deep_unary_chain_is_an_error);
  tests[N + 4] = (struct CMUnitTest)cmocka_unit_test(test_deep_chain_within_limit_compiles);
  return _cmocka_run_group_tests("errors", tests, N + 5, NULL, NULL);
}
