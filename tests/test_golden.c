/* test_golden.c — the emitted C and header for each tests/golden/NAME.bp, and
 * its loop plan (--emit loops), are exactly the reviewed files beside them
 * (`make golden` regenerates them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static void check_golden(const char *base) {
  char path[256], cpath[256], hpath[256], name[64], hname[64];
  snprintf(path, sizeof path, TESTS_DIR "/golden/%s.bp", base);
  snprintf(cpath, sizeof cpath, TESTS_DIR "/golden/%s.c", base);
  snprintf(hpath, sizeof hpath, TESTS_DIR "/golden/%s.h", base);
  snprintf(name, sizeof name, "%s.bp", base);
  snprintf(hname, sizeof hname, "%s.h", base);
  char *src = read_text_file(path);
  Ctx c;
  ctx_init(&c, name, src, strlen(src));
  assert_int_equal(bpc_compile(&c, NULL), 0);
  Buf out = {0}, h = {0};
  EmitOptions eo = {.prefix = base, .header_name = hname};
  emit_c(&c, &eo, &out, &h);
  char *want_c = read_text_file(cpath), *want_h = read_text_file(hpath);
  assert_string_equal(out.data, want_c);
  assert_string_equal(h.data, want_h);
  free(want_c);
  free(want_h);
  buf_free(&out);
  buf_free(&h);
  /* the plan the C was printed from */
  char lpath[256];
  snprintf(lpath, sizeof lpath, TESTS_DIR "/golden/%s.loops", base);
  Buf loops = {0};
  plan_print_model(&c, &loops);
  char *want_loops = read_text_file(lpath);
  assert_string_equal(loops.data, want_loops);
  free(want_loops);
  buf_free(&loops);
  ctx_free(&c);
  free(src);
}

static void test_golden_xyz(void **state) {
  (void)state;
  check_golden("xyz");
}
static void test_golden_hinge(void **state) {
  (void)state;
  check_golden("hinge");
}
static void test_golden_two_layer(void **state) {
  (void)state;
  check_golden("two_layer");
}
static void test_golden_scalar_ops(void **state) {
  (void)state;
  check_golden("scalar_ops");
}
static void test_golden_logsumexp(void **state) {
  (void)state;
  check_golden("logsumexp");
}
static void test_golden_exp_sum(void **state) {
  (void)state;
  check_golden("exp_sum");
}
static void test_golden_least_squares(void **state) {
  (void)state;
  check_golden("least_squares");
}
static void test_golden_rnn_loop(void **state) {
  (void)state;
  check_golden("rnn_loop");
}
static void test_golden_functions(void **state) {
  (void)state;
  check_golden("functions");
}
static void test_golden_row_view(void **state) {
  (void)state;
  check_golden("row_view");
}
static void test_golden_activations(void **state) {
  (void)state;
  check_golden("activations");
}
static void test_golden_conv(void **state) {
  (void)state;
  check_golden("conv");
}

static void test_golden_dropout(void **state) {
  (void)state;
  check_golden("dropout");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden_xyz),           cmocka_unit_test(test_golden_hinge),
      cmocka_unit_test(test_golden_two_layer),     cmocka_unit_test(test_golden_scalar_ops),
      cmocka_unit_test(test_golden_logsumexp),     cmocka_unit_test(test_golden_exp_sum),
      cmocka_unit_test(test_golden_least_squares), cmocka_unit_test(test_golden_row_view),
      cmocka_unit_test(test_golden_rnn_loop),      cmocka_unit_test(test_golden_functions),
      cmocka_unit_test(test_golden_activations),   cmocka_unit_test(test_golden_conv),
      cmocka_unit_test(test_golden_dropout),
  };
  return cmocka_run_group_tests_name("golden", tests, NULL, NULL);
}
