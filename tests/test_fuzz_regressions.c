/* test_fuzz_regressions.c — replays the fuzzers' seeds and every past
 * finding (tests/fuzz/regressions/) through the fuzzed entry points: each
 * must end in a result or an error. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "targets.h"

typedef void (*FuzzTarget)(const uint8_t *, size_t);

static int replay_dir(const char *dir, FuzzTarget t) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *buf = malloc(1 << 20);
    size_t len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    t(buf, len);
    free(buf);
    n++;
  }
  closedir(d);
  return n;
}

static void replay(const char *name, FuzzTarget t) {
  char dir[256];
  snprintf(dir, sizeof dir, TESTS_DIR "/fuzz/seeds/%s", name);
  int n = replay_dir(dir, t);
  snprintf(dir, sizeof dir, TESTS_DIR "/fuzz/regressions/%s", name);
  n += replay_dir(dir, t);
  assert_true(n > 0);
}

static void test_compile(void **state) {
  (void)state;
  replay("compile", fuzz_compile);
  assert_true(replay_dir(SAMPLES_DIR, fuzz_compile) >= 10);
}
static void test_csv(void **state) {
  (void)state;
  replay("csv", fuzz_csv);
}
static void test_idx(void **state) {
  (void)state;
  replay("idx", fuzz_idx);
}
static void test_params(void **state) {
  (void)state;
  replay("params", fuzz_params);
}
static void test_npy(void **state) {
  (void)state;
  replay("npy", fuzz_npy);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_compile),
      cmocka_unit_test(test_csv),
      cmocka_unit_test(test_idx),
      cmocka_unit_test(test_params),
      cmocka_unit_test(test_npy),
  };
  return cmocka_run_group_tests_name("fuzz regressions", tests, NULL, NULL);
}
