/* test_kernel_widths.c — the dense kernels' code of every path (generic,
 * AVX2, AVX-512) at its own vector width (16, 32 and 64 bytes), compiled
 * here without the paths' instruction sets (runtime/kernels.c included with
 * BPK_NO_TARGETS), against the direct loops of dense_check.h. The paths
 * share one source and differ in width and in the instructions the compiler
 * may use: this checks each width's tiles, blocks, edges and transposes on
 * any machine, the AVX-512 one too where the CPU lacks it (test_kernels.c
 * checks the real paths this CPU has). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define BPK_NO_TARGETS 1
#include "../runtime/kernels.c"

#include "dense_check.h"

static const struct {
  const char *name;
  const BpkDense_d *d;
  const BpkDense_f *f;
  size_t vector_bytes;
} widths[] = {
    {"generic code (16 bytes)", &dense_d_generic, &dense_f_generic, 16},
    {"avx2 code (32 bytes)", &dense_d_avx2, &dense_f_avx2, 32},
    {"avx512 code (64 bytes)", &dense_d_avx512, &dense_f_avx512, 64},
};
enum { WIDTHS = sizeof widths / sizeof widths[0] };

/* The three widths are what the path table hands out here. */
static void test_every_width_is_a_path(void **state) {
  (void)state;
  assert_int_equal(WIDTHS, BPK_PATHS);
  for (int p = 0; p < BPK_PATHS; p++) {
    assert_ptr_equal(bpk_dense_d(p), widths[p].d);
    assert_ptr_equal(bpk_dense_f(p), widths[p].f);
  }
  assert_int_equal(VL_f_generic * sizeof(float), widths[0].vector_bytes);
  assert_int_equal(VL_d_avx2 * sizeof(double), widths[1].vector_bytes);
  assert_int_equal(VL_f_avx512 * sizeof(float), widths[2].vector_bytes);
}

static void test_mm_every_width(void **state) {
  (void)state;
  int first = -1;
  for (int w = 0; w < WIDTHS; w++) {
    int runs = check_mm_sweep(widths[w].d, widths[w].f, widths[w].name);
    if (first < 0) first = runs;
    assert_int_equal(runs, first);
  }
  assert_true(first > 0);
}

/* mm_part at every width: AVX-512's tiles are 32 floats wide, the column
 * blocks 64 */
static void test_mm_part_every_width(void **state) {
  (void)state;
  for (int w = 0; w < WIDTHS; w++)
    assert_true(check_mm_part_sweep(widths[w].d, widths[w].f, widths[w].name) > 0);
}

static void test_mm_ksplit_every_width(void **state) {
  (void)state;
  for (int w = 0; w < WIDTHS; w++)
    assert_true(check_mm_ksplit_sweep(widths[w].d, widths[w].f, widths[w].name) > 0);
}

static void test_vector_kernels_every_width(void **state) {
  (void)state;
  for (int w = 0; w < WIDTHS; w++)
    assert_int_equal(check_vector_kernels(widths[w].d, widths[w].f, widths[w].name), VECTOR_CHECKS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_width_is_a_path),      cmocka_unit_test(test_mm_every_width),
      cmocka_unit_test(test_mm_part_every_width),        cmocka_unit_test(test_mm_ksplit_every_width),
      cmocka_unit_test(test_vector_kernels_every_width),
  };
  return cmocka_run_group_tests_name("kernel widths", tests, NULL, NULL);
}
