/* test_runtime.c — the runtime: data readers (good files and each kind of
 * bad file), the parameter format, optimiser steps against hand-computed
 * values, the JIT, and a short training run whose loss must fall. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "ad_programs.h"
#include "cli.h"
#include "harness.h"
#include "kernels.h"
#include "runtime.h"

static char dir[64];

/* The path of a file in the test directory; kept for the whole run. */
static const char *path_in_dir(const char *name) {
  static char *paths[64];
  static int n;
  for (int i = 0; i < n; i++)
    if (!strcmp(paths[i] + strlen(dir) + 1, name)) return paths[i];
  assert_true(n < 64);
  paths[n] = malloc(strlen(dir) + strlen(name) + 2);
  sprintf(paths[n], "%s/%s", dir, name);
  return paths[n++];
}

static void write_bytes(const char *name, const void *data, size_t len) {
  FILE *f = fopen(path_in_dir(name), "wb");
  assert_non_null(f);
  fwrite(data, 1, len, f);
  fclose(f);
}

static void write_text(const char *name, const char *text) { write_bytes(name, text, strlen(text)); }

static JitModel *jit_from_source(const char *src, int use_float, int batch) {
  write_text("model.bp", src);
  JitOptions jo = {.use_float = use_float, .batch = batch};
  JitModel *m = jit_load(path_in_dir("model.bp"), NULL, &jo);
  assert_non_null(m);
  return m;
}

static int setup(void **state) {
  (void)state;
  strcpy(dir, "/tmp/bpc-runtime-XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd);
}

static const char *const regression_model = "param w[2]\nparam b\ninput x[2]\ninput t\n"
                                            "y = dot(w, x) + b\nloss = 0.5 * (y - t)^2\noutput pred = y\n";

/* Loads data and returns the error message (malloc'd), or NULL. */
static char *load(JitModel *m, Dataset *d, DataBinding *b, int nb) {
  char *err = NULL;
  if (dataset_load(d, m, b, nb, 0, NULL, &err)) return err;
  return NULL;
}

/* ---- CSV ------------------------------------------------------------------- */

static void test_csv_with_header(void **state) {
  (void)state;
  JitModel *m = jit_from_source(regression_model, 0, 0);
  write_text("d.csv", "x0,x1,t\n1,2,3\n\n4, 5.5 ,-6e-1\n");
  DataBinding b = {NULL, path_in_dir("d.csv")};
  Dataset d;
  assert_null(load(m, &d, &b, 1));
  assert_int_equal(d.n, 2);
  const double *x = d.x;
  double want[] = {1, 2, 3, 4, 5.5, -0.6};
  for (int i = 0; i < 6; i++)
    assert_true(x[i] == want[i]);
  dataset_free(&d);
  jit_free(m);
}

static void test_csv_per_input_and_float(void **state) {
  (void)state;
  JitModel *m = jit_from_source(regression_model, 1, 0);
  write_text("x.csv", "1,2\n3,4\n");
  write_text("t.csv", "10\n20\n");
  DataBinding b[2] = {{"t", path_in_dir("t.csv")}, {"x", path_in_dir("x.csv")}};
  Dataset d;
  assert_null(load(m, &d, b, 2));
  const float *x = d.x;
  float want[] = {1, 2, 10, 3, 4, 20};
  for (int i = 0; i < 6; i++)
    assert_true(x[i] == want[i]);
  dataset_free(&d);
  jit_free(m);
}

static void expect_error(JitModel *m, DataBinding *b, int nb, const char *want) {
  Dataset d;
  char *err = load(m, &d, b, nb);
  if (!err) fail_msg("no error; expected: %s", want);
  assert_string_equal(err, want);
  free(err);
}

static void test_csv_errors(void **state) {
  (void)state;
  JitModel *m = jit_from_source(regression_model, 0, 0);
  char want[512];
  DataBinding all = {NULL, path_in_dir("bad.csv")};

  write_text("bad.csv", "1,2,3\n4,5\n");
  snprintf(want, sizeof want, "%s:2: expected 3 columns (x[2], t), found 2", all.path);
  expect_error(m, &all, 1, want);

  write_text("bad.csv", "x0,x1,t\n1,2,3\n4,five,6\n");
  snprintf(want, sizeof want, "%s:3: column 2 is 'five', not a number (reading x[2], t)", all.path);
  expect_error(m, &all, 1, want);

  write_text("bad.csv", "1,2,3\n4,nan,6\n");
  snprintf(want, sizeof want, "%s:2: column 2 is NaN; data must be finite numbers (reading x[2], t)",
           all.path);
  expect_error(m, &all, 1, want);

  write_text("bad.csv", "1,2,3\n4,5,1e999\n");
  snprintf(want, sizeof want, "%s:2: column 3 is infinite; data must be finite numbers (reading x[2], t)",
           all.path);
  expect_error(m, &all, 1, want);

  write_text("bad.csv", "1,2,3\n,5,6\n");
  snprintf(want, sizeof want, "%s:2: column 1 is '', not a number (reading x[2], t)", all.path);
  expect_error(m, &all, 1, want);

  write_text("bad.csv", "x,y,z\n");
  snprintf(want, sizeof want, "%s holds no examples", all.path);
  expect_error(m, &all, 1, want);

  DataBinding wrong = {"z", path_in_dir("bad.csv")};
  snprintf(want, sizeof want, "--data z=%s: the model has no input named 'z' (inputs: x[2], t)", wrong.path);
  expect_error(m, &wrong, 1, want);

  write_text("x.csv", "1,2\n3,4\n");
  DataBinding only_x = {"x", path_in_dir("x.csv")};
  expect_error(m, &only_x, 1, "no data for input t: add --data t=FILE");

  write_text("t.csv", "1\n2\n3\n");
  DataBinding uneven[2] = {{"x", path_in_dir("x.csv")}, {"t", path_in_dir("t.csv")}};
  snprintf(want, sizeof want, "%s has 2 examples but %s has 3", uneven[0].path, uneven[1].path);
  expect_error(m, uneven, 2, want);

  DataBinding missing = {NULL, path_in_dir("nope.csv")};
  snprintf(want, sizeof want, "cannot open %s: No such file or directory", missing.path);
  expect_error(m, &missing, 1, want);
  jit_free(m);
}

/* ---- IDX ------------------------------------------------------------------- */

static size_t idx_bytes(unsigned char *out, int type, int ndims, const unsigned *dims,
                        const unsigned char *data, size_t len) {
  size_t k = 0;
  out[k++] = 0;
  out[k++] = 0;
  out[k++] = (unsigned char)type;
  out[k++] = (unsigned char)ndims;
  for (int i = 0; i < ndims; i++) {
    out[k++] = (unsigned char)(dims[i] >> 24);
    out[k++] = (unsigned char)(dims[i] >> 16);
    out[k++] = (unsigned char)(dims[i] >> 8);
    out[k++] = (unsigned char)dims[i];
  }
  memcpy(out + k, data, len);
  return k + len;
}

static void write_gz(const char *name, const void *data, size_t len) {
  gzFile f = gzopen(path_in_dir(name), "wb");
  assert_non_null(f);
  gzwrite(f, data, (unsigned)len);
  gzclose(f);
}

static JitModel *mnist_like_model(void) {
  return jit_from_source("input img[6]\ninput label[4]\nparam W[6, 4]\n"
                         "scores = img @ W\nloss = softmax_cross_entropy(scores, label)\noutput o = scores\n",
                         0, 0);
}

static void test_idx_images_and_labels(void **state) {
  (void)state;
  JitModel *m = mnist_like_model();
  unsigned char buf[256], pixels[12] = {0, 255, 51, 102, 0, 0, 255, 255, 255, 0, 0, 0}, labels[2] = {3, 0};
  unsigned idims[3] = {2, 2, 3}, ldims[1] = {2};
  write_gz("img.gz", buf, idx_bytes(buf, 0x08, 3, idims, pixels, 12));    /* gzip */
  write_bytes("lab.idx", buf, idx_bytes(buf, 0x08, 1, ldims, labels, 2)); /* plain */
  DataBinding b[2] = {{"img", path_in_dir("img.gz")}, {"label", path_in_dir("lab.idx")}};
  Dataset d;
  assert_null(load(m, &d, b, 2));
  assert_int_equal(d.n, 2);
  const double *x = d.x;
  double want[20] = {0, 1, 0.2, 0.4, 0, 0, 0, 0, 0, 1, /* image 0 scaled, label 3 one-hot */
                     1, 1, 1,   0,   0, 0, 1, 0, 0, 0};
  for (int i = 0; i < 20; i++)
    assert_true(fabs(x[i] - want[i]) < 1e-15);
  dataset_free(&d);
  jit_free(m);
}

static void test_idx_errors(void **state) {
  (void)state;
  JitModel *m = mnist_like_model();
  unsigned char buf[256], pixels[12] = {0}, labels[3] = {3, 4, 0};
  unsigned idims[3] = {2, 2, 3}, ldims[1] = {2}, wrong[3] = {2, 2, 2};
  char want[512];
  size_t n = idx_bytes(buf, 0x08, 3, idims, pixels, 12);
  write_bytes("img.idx", buf, n);
  write_bytes("lab.idx", buf, idx_bytes(buf, 0x08, 1, ldims, labels, 2));
  DataBinding b[2] = {{"img", path_in_dir("img.idx")}, {"label", path_in_dir("lab.idx")}};
  snprintf(want, sizeof want, "%s: label 4 of example 1 is not a class of input label[4] (0 to 3)",
           b[1].path);
  expect_error(m, b, 2, want);

  n = idx_bytes(buf, 0x08, 3, idims, pixels, 12);
  labels[1] = 2;
  write_bytes("lab.idx", buf, idx_bytes(buf, 0x08, 1, ldims, labels, 2));
  write_bytes("img.idx", buf, idx_bytes(buf, 0x08, 3, idims, pixels, 12) - 1);
  snprintf(want, sizeof want, "%s is truncated: its header promises 12 bytes of data, the file has 11",
           b[0].path);
  expect_error(m, b, 2, want);

  write_bytes("img.idx", "P5\n28 28\n", 9);
  snprintf(want, sizeof want,
           "%s is not an IDX file (it should start with two zero bytes, a type and a dimension count)",
           b[0].path);
  expect_error(m, b, 2, want);

  write_bytes("img.idx", buf, idx_bytes(buf, 0x08, 3, wrong, pixels, 8));
  snprintf(want, sizeof want,
           "%s: input img[6] needs 6 values per example, but the file has 2x2 = 4 per example", b[0].path);
  expect_error(m, b, 2, want);

  write_bytes("img.idx", buf, idx_bytes(buf, 0x42, 3, idims, pixels, 12));
  snprintf(want, sizeof want, "%s: unknown IDX element type 0x42", b[0].path);
  expect_error(m, b, 2, want);

  unsigned three[1] = {3};
  write_bytes("img.idx", buf, idx_bytes(buf, 0x08, 3, idims, pixels, 12));
  write_bytes("lab.idx", buf, idx_bytes(buf, 0x08, 1, three, labels, 3));
  snprintf(want, sizeof want, "%s has 2 examples but %s has 3", b[0].path, b[1].path);
  expect_error(m, b, 2, want);
  jit_free(m);
}

/* ---- parameter files ----------------------------------------------------------- */

static void test_params_round_trip(void **state) {
  (void)state;
  JitModel *m = jit_from_source(regression_model, 0, 0);
  double p[3] = {1.5, -2.25, 1e-300}, q[3] = {0};
  char *err = NULL;
  assert_int_equal(params_save(path_in_dir("p.bin"), m, p, &err), 0);
  assert_int_equal(params_load(path_in_dir("p.bin"), m, q, &err), 0);
  assert_memory_equal(p, q, sizeof p);
  /* a float model reads a double file, and the other way round */
  JitModel *f = jit_from_source(regression_model, 1, 0);
  float pf[3];
  assert_int_equal(params_load(path_in_dir("p.bin"), f, pf, &err), 0);
  assert_true(pf[0] == 1.5f && pf[1] == -2.25f);
  assert_int_equal(params_save(path_in_dir("pf.bin"), f, pf, &err), 0);
  assert_int_equal(params_load(path_in_dir("pf.bin"), m, q, &err), 0);
  assert_true(q[0] == 1.5 && q[1] == -2.25);
  jit_free(f);
  jit_free(m);
}

static char *slurp(const char *name, size_t *len) {
  FILE *f = fopen(path_in_dir(name), "rb");
  char *buf = malloc(4096);
  *len = fread(buf, 1, 4096, f);
  fclose(f);
  return buf;
}

static void expect_load_error(JitModel *m, const char *want_fmt) {
  double q[3];
  char *err = NULL, want[512];
  assert_int_equal(params_load(path_in_dir("bad.bin"), m, q, &err), 1);
  snprintf(want, sizeof want, want_fmt, path_in_dir("bad.bin"));
  assert_string_equal(err, want);
  free(err);
}

static void test_params_bad_files(void **state) {
  (void)state;
  JitModel *m = jit_from_source(regression_model, 0, 0);
  double p[3] = {1, 2, 3};
  char *err = NULL;
  assert_int_equal(params_save(path_in_dir("p.bin"), m, p, &err), 0);
  size_t len;
  char *good = slurp("p.bin", &len);

  write_bytes("bad.bin", good, len - 5);
  expect_load_error(
      m, "%s is truncated: expected at least 32 bytes of values, training state and checksum, found 27");

  char *flipped = malloc(len);
  memcpy(flipped, good, len);
  flipped[len - 10] ^= 1;
  write_bytes("bad.bin", flipped, len);
  expect_load_error(m, "%s is damaged: its checksum does not match its contents");

  write_text("bad.bin", "hello, world");
  expect_load_error(m, "%s is not a bpc parameter file (it does not start with BPCPARAM)");

  free(flipped);
  free(good);
  jit_free(m);
}

static void test_params_wrong_model_messages(void **state) {
  (void)state;
  JitModel *m = jit_from_source(regression_model, 0, 0);
  double p[3] = {1, 2, 3}, q[4];
  char *err = NULL, want[512];
  assert_int_equal(params_save(path_in_dir("p.bin"), m, p, &err), 0);
  JitModel *shape = jit_from_source("param w[3]\nparam b\ninput x[3]\nloss = dot(w, x) + b\n", 0, 0);
  assert_int_equal(params_load(path_in_dir("p.bin"), shape, q, &err), 1);
  snprintf(want, sizeof want, "%s does not fit %s: 'w' has shape [2] in the file but [3] in the model",
           path_in_dir("p.bin"), path_in_dir("model.bp"));
  assert_string_equal(err, want);
  free(err);
  JitModel *name = jit_from_source("param v[2]\nparam b\ninput x[2]\nloss = dot(v, x) + b\n", 0, 0);
  assert_int_equal(params_load(path_in_dir("p.bin"), name, q, &err), 1);
  snprintf(want, sizeof want, "%s does not fit %s: tensor 1 is 'w' in the file but 'v' in the model",
           path_in_dir("p.bin"), path_in_dir("model.bp"));
  assert_string_equal(err, want);
  free(err);
  jit_free(shape);
  jit_free(name);
  jit_free(m);
}

static void test_params_failed_save_keeps_old_file(void **state) {
  (void)state;
  JitModel *m = jit_from_source(regression_model, 0, 0);
  double p[3] = {1, 2, 3}, q[3] = {0};
  char *err = NULL;
  mkdir(path_in_dir("ro"), 0755);
  assert_int_equal(params_save(path_in_dir("ro/p.bin"), m, p, &err), 0);
  chmod(path_in_dir("ro"), 0555);
  double p2[3] = {9, 9, 9};
  /* root writes anywhere: as root (CI), the save is tried by a child that
     has become the unprivileged user nobody */
  int as_root = geteuid() == 0, status = 0;
  fflush(NULL);
  pid_t pid = as_root ? fork() : 0;
  if (pid == 0) {
    if (as_root) {
      chmod(dir, 0755);
      if (setgid(65534) || setuid(65534)) _exit(3);
    }
    int rc = params_save(path_in_dir("ro/p.bin"), m, p2, &err);
    int ok = rc == 1 && strstr(err, "(the previous file, if any, is unchanged)");
    if (as_root) _exit(ok ? 0 : 1);
    assert_true(ok);
    free(err);
  } else {
    waitpid(pid, &status, 0);
    chmod(dir, 0700);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
      chmod(path_in_dir("ro"), 0755);
      skip(); /* no unprivileged user to become: reported as skipped, not passed */
    }
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  chmod(path_in_dir("ro"), 0755);
  assert_int_equal(params_load(path_in_dir("ro/p.bin"), m, q, &err), 0);
  assert_true(q[0] == 1 && q[2] == 3);
  err = NULL;
  assert_int_equal(params_save(path_in_dir("missing-dir/p.bin"), m, p, &err), 1);
  assert_non_null(strstr(err, "No such file or directory"));
  free(err);
  jit_free(m);
}

/* A disk that fills up mid-save: the file size limit makes the write fail
 * (EFBIG) even for root, after part of the temporary file is written. The
 * saved file must be the old one, whole. */
static void test_params_write_failure_keeps_old_file(void **state) {
  (void)state;
  JitModel *m = jit_from_source(regression_model, 0, 0);
  double p[3] = {1, 2, 3}, q[3] = {0};
  char *err = NULL;
  assert_int_equal(params_save(path_in_dir("full.bin"), m, p, &err), 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit lim = {40, 40}; /* smaller than the file */
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    double p2[3] = {7, 8, 9};
    char *e = NULL;
    int rc = params_save(path_in_dir("full.bin"), m, p2, &e);
    _exit(rc == 1 && e && strstr(e, "File too large") && strstr(e, "is unchanged") ? 0 : 1);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(params_load(path_in_dir("full.bin"), m, q, &err), 0);
  assert_memory_equal(p, q, sizeof p);
  /* no temporary file is left behind */
  char cmd[300];
  snprintf(cmd, sizeof cmd, "test -z \"$(ls %s | grep tmp)\"", dir);
  assert_int_equal(system(cmd), 0);
  jit_free(m);
}

/* Version 1 files (no training state) still load; version 2 files carry a
 * state that round-trips exactly and that params_load skips. */
static void test_params_versions_and_state(void **state) {
  (void)state;
  JitModel *m = jit_from_source(regression_model, 0, 0);
  double p[3] = {1.5, -2.25, 0.125}, q[3] = {0};
  char *err = NULL;
  assert_int_equal(params_save(path_in_dir("v2.bin"), m, p, &err), 0);
  size_t len;
  unsigned char *v2 = (unsigned char *)slurp("v2.bin", &len);
  /* version 2 without a state: ... data, u32 L = 0, CRC */
  assert_int_equal(v2[8], 2);
  assert_true(v2[len - 8] == 0 && v2[len - 7] == 0 && v2[len - 6] == 0 && v2[len - 5] == 0);
  /* the same file as version 1: no L, version 1, its own CRC */
  unsigned char v1[256];
  memcpy(v1, v2, len - 8);
  v1[8] = 1;
  uint32_t crc = (uint32_t)crc32(0L, v1, (uInt)(len - 8));
  for (int i = 0; i < 4; i++)
    v1[len - 8 + (size_t)i] = (unsigned char)(crc >> (8 * i));
  write_bytes("v1.bin", v1, len - 4);
  assert_int_equal(params_load(path_in_dir("v1.bin"), m, q, &err), 0);
  assert_memory_equal(p, q, sizeof p);
  TrainState st;
  int has = 1;
  assert_int_equal(params_load_state(path_in_dir("v1.bin"), m, q, &st, &has, &err), 0);
  assert_int_equal(has, 0);

  /* a state with Adam's two arrays */
  double mom[3] = {0.1, -0.2, 0.3}, sq[3] = {1e-3, 2e-3, 3e-3};
  TrainState out = {.optim = OPT_ADAM,
                    .shuffle = SHUFFLE_EPOCH,
                    .epochs_done = 3,
                    .batches_done = 2,
                    .batch = 4,
                    .examples = 10,
                    .seed = 77,
                    .steps = 14,
                    .loss_sum = 1.25,
                    .metric_sum = 0.5,
                    .best_val = 0.75,
                    .best_epoch = 2,
                    .since_best = 1,
                    .m = mom,
                    .v = sq};
  assert_int_equal(params_save_state(path_in_dir("st.bin"), m, p, &out, &err), 0);
  unsigned char *stb = (unsigned char *)slurp("st.bin", &len);
  assert_int_equal(len, 46 + 24 + 4 + 92 + 2 * 24 + 4); /* header, data, L, state, CRC */
  memset(q, 0, sizeof q);
  assert_int_equal(params_load(path_in_dir("st.bin"), m, q, &err), 0);
  assert_memory_equal(p, q, sizeof p);
  memset(q, 0, sizeof q);
  assert_int_equal(params_load_state(path_in_dir("st.bin"), m, q, &st, &has, &err), 0);
  assert_int_equal(has, 1);
  assert_memory_equal(p, q, sizeof p);
  assert_true(st.optim == OPT_ADAM && st.shuffle == SHUFFLE_EPOCH && st.epochs_done == 3 &&
              st.batches_done == 2);
  assert_true(st.batch == 4 && st.examples == 10 && st.seed == 77 && st.steps == 14);
  assert_true(st.loss_sum == 1.25 && st.metric_sum == 0.5 && st.best_val == 0.75);
  assert_true(st.best_epoch == 2 && st.since_best == 1);
  assert_memory_equal(st.m, mom, sizeof mom);
  assert_memory_equal(st.v, sq, sizeof sq);
  train_state_free(&st);
  /* a float model takes the arrays in its own type */
  JitModel *f = jit_from_source(regression_model, 1, 0);
  float pf[3];
  assert_int_equal(params_load_state(path_in_dir("st.bin"), f, pf, &st, &has, &err), 0);
  assert_true(((float *)st.m)[1] == -0.2f && ((float *)st.v)[2] == 3e-3f);
  train_state_free(&st);
  jit_free(f);

  /* a state that passes the CRC but names no optimiser */
  unsigned char bad[512];
  memcpy(bad, stb, len);
  bad[46 + 24 + 4 + 4] = 9;
  crc = (uint32_t)crc32(0L, bad, (uInt)(len - 4));
  for (int i = 0; i < 4; i++)
    bad[len - 4 + (size_t)i] = (unsigned char)(crc >> (8 * i));
  write_bytes("bad.bin", bad, len);
  double r[3] = {9, 9, 9};
  assert_int_equal(params_load_state(path_in_dir("bad.bin"), m, r, &st, &has, &err), 1);
  char want[512];
  snprintf(want, sizeof want, "%s: its training state is damaged (unknown optimiser)",
           path_in_dir("bad.bin"));
  assert_string_equal(err, want);
  free(err);
  assert_true(r[0] == 9 && st.m == NULL); /* nothing changed, nothing left allocated */
  /* a state length past the end of the file */
  memcpy(bad, stb, len);
  bad[46 + 24] = 200;
  write_bytes("bad.bin", bad, len);
  expect_load_error(m,
                    "%s is truncated: expected 232 bytes of values, training state and checksum, found 172");
  /* a version from the future */
  memcpy(bad, stb, len);
  bad[8] = 3;
  write_bytes("bad.bin", bad, len);
  expect_load_error(m, "%s has format version 3; this bpc reads versions 1 and 2");
  free(stb);
  free(v2);
  jit_free(m);
}

/* ---- optimisers ------------------------------------------------------------------ */

static void test_optimisers(void **state) {
  (void)state;
  Optimizer o;
  double p[2] = {1, -1}, g[2] = {4, -2};
  /* sgd, lr 0.1, gradient summed over 2 examples: mean = {2, -1} */
  optim_init(&o, OPT_SGD, 0.1, 0, 2, sizeof(double));
  optim_step(&o, p, g, 0.5, o.lr);
  assert_true(fabs(p[0] - 0.8) < 1e-15 && fabs(p[1] + 0.9) < 1e-15);
  assert_true(g[0] == 4 && g[1] == -2); /* read only: the next batch stores its own */
  optim_free(&o);

  /* momentum 0.9: v1 = g1, v2 = 0.9 v1 + g2 */
  double q[1] = {0}, h[1] = {1};
  optim_init(&o, OPT_MOMENTUM, 0.5, 0.9, 1, sizeof(double));
  optim_step(&o, q, h, 1, o.lr);
  assert_true(fabs(q[0] + 0.5) < 1e-15);
  h[0] = 2;
  optim_step(&o, q, h, 1, o.lr);
  assert_true(fabs(q[0] - (-0.5 - 0.5 * (0.9 * 1 + 2))) < 1e-15);
  optim_free(&o);

  /* adam: the first step moves each parameter by lr (m/(1-b1) = g,
   * sqrt(v/(1-b2)) = |g|), the second by hand */
  double r[1] = {1}, k[1] = {0.5};
  optim_init(&o, OPT_ADAM, 0.01, 0, 1, sizeof(double));
  optim_step(&o, r, k, 1, o.lr);
  assert_true(fabs(r[0] - (1 - 0.01 * 0.5 / (0.5 + 1e-8))) < 1e-15);
  k[0] = -1;
  optim_step(&o, r, k, 1, o.lr);
  double m1 = 0.1 * 0.5, v1 = 0.001 * 0.25;
  double m2 = 0.9 * m1 + 0.1 * -1, v2 = 0.999 * v1 + 0.001 * 1;
  double mh = m2 / (1 - 0.81), vh = v2 / (1 - 0.999 * 0.999);
  double want = 1 - 0.01 * 0.5 / (0.5 + 1e-8) - 0.01 * mh / (sqrt(vh) + 1e-8);
  assert_true(fabs(r[0] - want) < 1e-14);
  optim_free(&o);

  /* rmsprop (alpha 0.99, eps 1e-8) and adagrad (eps 1e-10): three steps
   * against their formulas, the gradient summed over 2 examples */
  const double gs[3][2] = {{2, 4}, {1, -2}, {-6, 0.5}};
  for (int kind = 0; kind < 2; kind++) {
    double w[2] = {1, -2}, want_w[2] = {1, -2}, acc[2] = {0, 0};
    double lr = 0.01, a = 0.99, eps = kind == 0 ? 1e-8 : 1e-10;
    optim_init(&o, kind == 0 ? OPT_RMSPROP : OPT_ADAGRAD, lr, 0, 2, sizeof(double));
    assert_true(o.eps == eps && o.alpha == a);
    for (int t = 0; t < 3; t++) {
      optim_step(&o, w, gs[t], 0.5, lr);
      for (int i = 0; i < 2; i++) {
        double gi = gs[t][i] * 0.5;
        acc[i] = kind == 0 ? a * acc[i] + (1 - a) * gi * gi : acc[i] + gi * gi;
        want_w[i] -= lr * gi / (sqrt(acc[i]) + eps);
        assert_true(fabs(w[i] - want_w[i]) < 1e-15);
      }
    }
    optim_free(&o);
  }

  /* weight decay: L2 in the gradient for sgd, momentum, rmsprop (and
   * adagrad), decoupled for adam */
  double d[1] = {2}, dg[1] = {0.5};
  optim_init(&o, OPT_SGD, 0.1, 0, 1, sizeof(double));
  o.weight_decay = 0.01;
  optim_step(&o, d, dg, 1, 0.1);
  assert_true(fabs(d[0] - (2 - 0.1 * (0.5 + 0.01 * 2))) < 1e-15);
  optim_free(&o);
  d[0] = 2;
  optim_init(&o, OPT_MOMENTUM, 0.1, 0.9, 1, sizeof(double));
  o.weight_decay = 0.01;
  optim_step(&o, d, dg, 1, 0.1);
  optim_step(&o, d, dg, 1, 0.1);
  double v1m = 0.5 + 0.01 * 2, d1 = 2 - 0.1 * v1m, v2m = 0.9 * v1m + 0.5 + 0.01 * d1;
  assert_true(fabs(d[0] - (d1 - 0.1 * v2m)) < 1e-15);
  optim_free(&o);
  d[0] = 2;
  optim_init(&o, OPT_RMSPROP, 0.1, 0, 1, sizeof(double));
  o.weight_decay = 0.01;
  optim_step(&o, d, dg, 1, 0.1);
  double gl2 = 0.5 + 0.01 * 2;
  assert_true(fabs(d[0] - (2 - 0.1 * gl2 / (sqrt(0.01 * gl2 * gl2) + 1e-8))) < 1e-14);
  optim_free(&o);
  d[0] = 2;
  optim_init(&o, OPT_ADAM, 0.1, 0, 1, sizeof(double));
  o.weight_decay = 0.01;
  optim_step(&o, d, dg, 1, 0.1);
  /* the first Adam step is g / (|g| + eps) whatever the betas; the decay uses p before it */
  assert_true(fabs(d[0] - (2 - 0.1 * (0.5 / (0.5 + 1e-8) + 0.01 * 2))) < 1e-14);
  optim_free(&o);

  /* clipping the mean gradient: summed {6, 8} over 2 examples is {3, 4},
   * norm 5, clipped to norm 4: {2.4, 3.2} (clipping the sum would give half) */
  double c[2] = {1, -2}, cg[2] = {6, 8};
  optim_init(&o, OPT_SGD, 0.1, 0, 2, sizeof(double));
  o.clip_norm = 4;
  optim_step(&o, c, cg, 0.5, 0.1);
  assert_true(fabs(c[0] - (1 - 0.24)) < 1e-15 && fabs(c[1] - (-2 - 0.32)) < 1e-15);
  optim_step(&o, c, cg, 0.25, 0.1); /* {1.5, 2}: norm 2.5, under 4, unchanged */
  assert_true(fabs(c[0] - (1 - 0.24 - 0.15)) < 1e-15 && fabs(c[1] - (-2 - 0.32 - 0.2)) < 1e-15);
  optim_free(&o);

  /* float: the same sgd step */
  float pf[1] = {1}, gf[1] = {3};
  optim_init(&o, OPT_SGD, 0.25, 0, 1, sizeof(float));
  optim_step(&o, pf, gf, 1, o.lr);
  assert_true(pf[0] == 0.25f);
  optim_free(&o);
}

/* The learning rate at a step: the formulas of schedule.c, value by value. */
static void test_schedules(void **state) {
  (void)state;
  LrSchedule c = {LR_CONSTANT, 0, 0, 0.1}, st = {LR_STEP, 0, 2, 0.5}, cos_s = {LR_COSINE, 0, 0, 0.1},
             lin = {LR_LINEAR, 0, 0, 0.1}, warm = {LR_LINEAR, 0.5, 0, 0.1};
  /* 4 steps an epoch, 4 epochs */
  assert_true(schedule_lr(&c, 0.1, 3, 2, 4, 4) == 0.1);
  assert_true(schedule_lr(&st, 0.1, 1, 0, 4, 4) == 0.1);
  assert_true(schedule_lr(&st, 0.1, 2, 3, 4, 4) == 0.1);
  assert_true(schedule_lr(&st, 0.1, 3, 0, 4, 4) == 0.1 * 0.5);
  assert_true(schedule_lr(&st, 0.1, 4, 3, 4, 4) == 0.1 * 0.5);
  assert_true(schedule_lr(&st, 0.1, 5, 0, 4, 8) == 0.1 * 0.25);
  assert_true(schedule_lr(&cos_s, 0.1, 1, 0, 4, 4) == 0.1);
  assert_true(schedule_lr(&cos_s, 0.1, 3, 0, 4, 4) == 0.1 * 0.5); /* halfway: cos(pi/2) */
  assert_true(schedule_lr(&cos_s, 0.1, 4, 3, 4, 4) == 0.1 * 0.5 * (1 + cos(M_PI * 15 / 16)));
  assert_true(schedule_lr(&lin, 0.1, 2, 0, 4, 4) == 0.1 * 0.75);
  assert_true(schedule_lr(&lin, 0.1, 4, 3, 4, 4) == 0.1 * (1 - 15.0 / 16));
  /* half an epoch of warmup: 2 steps, 1/2 then 1, then linear from there over 3.5 epochs */
  assert_true(schedule_lr(&warm, 0.1, 1, 0, 4, 4) == 0.1 * 0.5);
  assert_true(schedule_lr(&warm, 0.1, 1, 1, 4, 4) == 0.1);
  assert_true(schedule_lr(&warm, 0.1, 1, 2, 4, 4) == 0.1);
  assert_true(schedule_lr(&warm, 0.1, 1, 3, 4, 4) == 0.1 * (1 - 0.25 / 3.5));
  /* warmup with steps: the decay counts from the start */
  LrSchedule wst = {LR_STEP, 1.5, 1, 0.5};
  assert_true(schedule_lr(&wst, 1, 2, 0, 2, 4) == (3.0 / 3) * 0.5); /* step 2 of 3 warmup steps: 3/3 */
  assert_true(schedule_lr(&wst, 1, 1, 1, 2, 4) == 2.0 / 3);
}

/* --val FRACTION: round(f n) examples held out, chosen by the seed, both
 * parts in file order. */
static void test_dataset_split(void **state) {
  (void)state;
  JitModel *m = jit_from_source(regression_model, 0, 0);
  Buf csv = {0};
  for (int i = 0; i < 10; i++)
    buf_printf(&csv, "%d,0,0\n", i);
  write_text("split.csv", csv.data);
  buf_free(&csv);
  DataBinding b = {NULL, path_in_dir("split.csv")};
  int held[2][10];
  for (int r = 0; r < 2; r++) {
    Dataset d, v;
    char *err = NULL;
    assert_null(load(m, &d, &b, 1));
    assert_int_equal(dataset_split(&d, m, 0.3, 5, &v, &err), 0);
    assert_int_equal(d.n, 7);
    assert_int_equal(v.n, 3);
    memset(held[r], 0, sizeof held[r]);
    const double *x = d.x, *y = v.x;
    for (size_t i = 0; i < v.n; i++) {
      held[r][(int)y[i * 3]] = 1;
      if (i) assert_true(y[i * 3] > y[(i - 1) * 3]);
    }
    for (size_t i = 0; i < d.n; i++) {
      assert_int_equal(held[r][(int)x[i * 3]], 0);
      if (i) assert_true(x[i * 3] > x[(i - 1) * 3]);
    }
    dataset_free(&d);
    dataset_free(&v);
  }
  assert_memory_equal(held[0], held[1], sizeof held[0]); /* the same seed holds out the same */
  /* which ones: the first three of the seed's permutation */
  size_t idx[10];
  shuffle_indices(idx, 10, 5);
  for (int i = 0; i < 3; i++)
    assert_int_equal(held[0][idx[i]], 1);
  /* at least one held out, one kept */
  Dataset d, v;
  char *err = NULL;
  assert_null(load(m, &d, &b, 1));
  assert_int_equal(dataset_split(&d, m, 0.01, 5, &v, &err), 0);
  assert_true(d.n == 9 && v.n == 1);
  dataset_free(&d);
  dataset_free(&v);
  jit_free(m);
}

static void test_confusion_format(void **state) {
  (void)state;
  int64_t counts[9] = {1, 1, 0, 1, 1, 1, 0, 0, 12};
  char *text = confusion_format(counts, 3);
  assert_string_equal(text, "confusion matrix (rows: true class, columns: predicted class):\n"
                            "     0   1   2\n"
                            " 0   1   1   0\n"
                            " 1   1   1   1\n"
                            " 2   0   0  12\n");
  free(text);
}

/* ---- JIT ------------------------------------------------------------------------- */

static void test_jit_compile_and_call(void **state) {
  (void)state;
  JitModel *m = jit_from_source("param x = -2\nparam y = 5\nparam z = -4\nloss = (x + y) * z\n", 0, 0);
  double p[3], g[3] = {0}, ws[8];
  m->init(p, 0);
  assert_true(jit_train_batch(m, p, NULL, 1, g, NULL, ws, 0, 0, 0) == -12);
  assert_true(g[0] == -4 && g[1] == -4 && g[2] == 3);
  assert_true(jit_eval_batch(m, p, NULL, 2, NULL, ws) == -24);
  jit_free(m);
}

static void test_jit_error_path(void **state) {
  (void)state;
  char *err = NULL;
  void *s = jit_compile_c("int f(void) {\n  return y;\n}\n", &err);
  assert_null(s);
  assert_non_null(strstr(err, ":2: error: 'y' undeclared"));
  assert_non_null(strstr(err, "generated line 2:   return y;"));
  free(err);
  /* a model with a user error: no JIT, the message printed, NULL back */
  write_text("bad.bp", "param x\nloss = y\n");
  assert_null(jit_load(path_in_dir("bad.bp"), NULL, NULL));
}

/* The batched functions agree with one example at a time. */
static void test_jit_batched_matches_per_example(void **state) {
  (void)state;
  char *src = read_text_file(SAMPLES_DIR "/two_layer.bp");
  JitModel *m = jit_from_source(src, 0, 4);
  free(src);
  assert_int_equal(m->fixed, 4);
  double p[21], g1[21] = {0}, g2[21] = {0}, x[20], soa[20], o1[12], o2[12];
  double *ws = calloc(m->ws_elems + 1, sizeof(double));
  uint64_t rng = 5;
  m->init(p, 3);
  for (int i = 0; i < 20; i++)
    x[i] = test_rand_normal(&rng);
  double l1 = jit_train_batch(m, p, x, 4, g1, o1, ws, 0, 0, 0);
  jit_gather(m, x, soa);
  double l2 = jit_train_fixed(m, p, soa, g2, o2, ws, 0, 0, 0);
  assert_true(fabs(l1 - l2) < 1e-12);
  for (int i = 0; i < 21; i++)
    assert_true(fabs(g1[i] - g2[i]) < 1e-12);
  for (int i = 0; i < 12; i++)
    assert_true(fabs(o1[i] - o2[i]) < 1e-12);
  assert_true(fabs(jit_eval_fixed(m, p, soa, NULL, ws) - l1) < 1e-12);
  free(ws);
  jit_free(m);
}

/* A model long enough for scalar slots (over 8192 scalars), built by gcc
 * (--jit cc), whose functions are then cut into parts: the same loss and
 * gradient as tcc's single functions. */
static void test_jit_cc_parts_match_tcc(void **state) {
  (void)state;
  Buf src = {0};
  buf_puts(&src, "param w[8] ~ uniform(-1, 1)\ninput x[4]\nh0 = w[0] * x[0]\n");
  for (int k = 1; k <= 1800; k++)
    buf_printf(&src, "h%d = tanh(h%d * w[%d] + x[%d]) + 0.1 * h%d\n", k, k - 1, k % 8, k % 4, k - 1);
  buf_puts(&src, "loss = h1800 * h1800\n");
  write_text("long.bp", src.data);
  buf_free(&src);
  setenv("BPC_CACHE_DIR", dir, 1);
  JitOptions tcc_opts = {0}, cc_opts = {.use_cc = 1};
  JitModel *a = jit_load(path_in_dir("long.bp"), NULL, &tcc_opts);
  JitModel *b = jit_load(path_in_dir("long.bp"), NULL, &cc_opts);
  assert_non_null(a);
  assert_non_null(b);
  double p[8], x[4] = {0.3, -0.2, 0.5, 0.1}, ga[8], gb[8];
  double *ws = calloc(a->ws_elems + b->ws_elems + 1, sizeof(double));
  a->init(p, 4);
  double la = jit_train_batch(a, p, x, 1, ga, NULL, ws, 0, 0, 0);
  double lb = jit_train_batch(b, p, x, 1, gb, NULL, ws, 0, 0, 0);
  assert_true(fabs(la - lb) <= 1e-9 * (1 + fabs(la)));
  for (int i = 0; i < 8; i++)
    assert_true(fabs(ga[i] - gb[i]) <= 1e-9 * (1 + fabs(ga[i])));
  free(ws);
  jit_free(a);
  jit_free(b);
}

/* ---- training ---------------------------------------------------------------------- */

/* Noise-free data from t = 2 x0 - 3 x1 + 0.5: training must find it. */
static void test_training_reduces_loss(void **state) {
  (void)state;
  Buf csv = {0};
  uint64_t rng = 11;
  for (int i = 0; i < 512; i++) {
    double a = test_rand_normal(&rng), b = test_rand_normal(&rng);
    buf_printf(&csv, "%.17g,%.17g,%.17g\n", a, b, 2 * a - 3 * b + 0.5);
  }
  write_text("lin.csv", csv.data);
  buf_free(&csv);
  for (int batched = 0; batched < 2; batched++) {
    JitModel *m = jit_from_source(regression_model, 0, batched ? 16 : 0);
    DataBinding b = {NULL, path_in_dir("lin.csv")};
    Dataset d;
    assert_null(load(m, &d, &b, 1));
    double p[3];
    m->init(p, 1);
    Optimizer o;
    optim_init(&o, OPT_SGD, 0.1, 0, 3, sizeof(double));
    TrainOptions to = {.epochs = 20, .batch = 16, .seed = 1, .threads = 2, .quiet = 1, .opt = &o};
    MetricSpec none = {METRIC_NONE, -1, -1, 0, NULL};
    double before = evaluate(m, p, &d, &none, 1, NULL).loss;
    assert_int_equal(train(m, p, &d, NULL, &to), 0);
    double after = evaluate(m, p, &d, &none, 1, NULL).loss;
    assert_true(before > 1);
    assert_true(after < 1e-6);
    assert_true(fabs(p[0] - 2) < 1e-3 && fabs(p[1] + 3) < 1e-3 && fabs(p[2] - 0.5) < 1e-3);
    optim_free(&o);
    dataset_free(&d);
    jit_free(m);
  }
}

/* The regression model trained on lin.csv from the same start (seed 7):
 * the parameters it ends with. */
static void train_lin(OptKind kind, double lr, int epochs, int batch, int threads, double out[3]) {
  JitModel *m = jit_from_source(regression_model, 0, 0);
  DataBinding b = {NULL, path_in_dir("lin.csv")};
  Dataset d;
  assert_null(load(m, &d, &b, 1));
  m->init(out, 7);
  Optimizer o;
  optim_init(&o, kind, lr, 0, 3, sizeof(double));
  TrainOptions to = {.epochs = epochs, .batch = batch, .seed = 3, .threads = threads, .quiet = 1, .opt = &o};
  assert_int_equal(train(m, out, &d, NULL, &to), 0);
  optim_free(&o);
  dataset_free(&d);
  jit_free(m);
}

static void test_training_is_reproducible(void **state) {
  (void)state;
  double runs[2][3];
  for (int r = 0; r < 2; r++)
    train_lin(OPT_ADAM, 0.01, 2, 8, 2, runs[r]);
  assert_memory_equal(runs[0], runs[1], sizeof runs[0]);
}

/* Batches of 511 and 1 on two threads: the second thread has no example
 * in every other batch, and must then add nothing (its gradient buffer is
 * stored afresh each batch, never cleared, so this is the case to get
 * right). Two threads only change the order of the sums. */
static void test_idle_thread_adds_nothing(void **state) {
  (void)state;
  double runs[2][3];
  for (int r = 0; r < 2; r++)
    train_lin(OPT_SGD, 0.05, 3, 511, r + 1, runs[r]);
  for (int i = 0; i < 3; i++)
    assert_true(fabs(runs[0][i] - runs[1][i]) < 1e-12 * (1 + fabs(runs[0][i])));
}

/* A model of 200 parameters, so that each of up to three threads has its
 * own range of them to sum and update (whole cache lines: 16 doubles). */
static const char *const wide_model = "param W[4, 40] ~ normal(0, 0.5)\nparam b[40]\ninput x[4]\ninput t[40]\n"
                                      "y = x @ W + b\nloss = 0.5 * sum((y - t)^2)\n";

/* The wide model's parameters after 2 epochs of Adam, batch 12, on the
 * given number of threads, with or without clipping (which needs the
 * whole gradient before any thread updates its range). */
static void train_wide(int threads, double clip, double *out) {
  JitModel *m = jit_from_source(wide_model, 0, (12 + threads - 1) / threads);
  DataBinding b = {NULL, path_in_dir("wide.csv")};
  Dataset d;
  assert_null(load(m, &d, &b, 1));
  m->init(out, 5);
  Optimizer o;
  optim_init(&o, OPT_ADAM, 0.01, 0, m->nparams, sizeof(double));
  o.clip_norm = clip;
  TrainOptions to = {.epochs = 2, .batch = 12, .seed = 3, .threads = threads, .quiet = 1, .opt = &o};
  assert_int_equal(train(m, out, &d, NULL, &to), 0);
  optim_free(&o);
  dataset_free(&d);
  jit_free(m);
}

/* Threads split the examples, then the parameters (each sums the threads'
 * gradients over its range and updates it): 2 and 3 threads give 1
 * thread's parameters up to the order of the gradient's sums, with and
 * without clipping; and a run repeats exactly. */
static void test_threads_match_one_thread(void **state) {
  (void)state;
  Buf csv = {0};
  uint64_t rng = 21;
  for (int i = 0; i < 96; i++)
    for (int j = 0; j < 44; j++)
      buf_printf(&csv, "%.17g%s", test_rand_normal(&rng), j < 43 ? "," : "\n");
  write_text("wide.csv", csv.data);
  buf_free(&csv);
  for (int c = 0; c < 2; c++) {
    double clip = c ? 0.5 : 0, one[200], again[200], many[200];
    train_wide(1, clip, one);
    train_wide(1, clip, again);
    assert_memory_equal(one, again, sizeof one);
    for (int threads = 2; threads <= 3; threads++) {
      train_wide(threads, clip, many);
      for (int i = 0; i < 200; i++)
        assert_true(fabs(one[i] - many[i]) <= 1e-12 * (1 + fabs(one[i])));
    }
  }
}

/* A model whose training step threads share (the team form): a product of
 * 40 x 70 x 130 (by columns on two threads, by rows on three), a ReLU over
 * 5200 elements (by rows), the gradient of W by rows; the rest is small
 * (part 0 runs it). */
static const char *const team_model = "param W[70, 130] ~ normal(0, 0.1)\nparam b[130]\nparam V[130, 5] ~ normal(0, 0.1)\n"
                                      "input x[70]\ninput t[5]\nh = relu(x @ W + b)\noutput y = h @ V\n"
                                      "loss = 0.5 * sum((y - t)^2)\n";
enum { TEAM_PARAMS = 70 * 130 + 130 + 130 * 5 };

/* The team model's parameters after 2 epochs of Adam on 210 examples in
 * batches of 40 (the last of 10, which the threads split the old way) on
 * the given number of threads; returns the mean squared error of y
 * against t over the last epoch (the log's train_mse), which the team form
 * reads from its own layout of the batch. */
static double train_team(int threads, int use_float, void *out) {
  write_text("model.bp", team_model);
  JitOptions jo = {.use_float = use_float, .batch = 40, .team_batch = threads > 1 ? 40 : 0};
  JitModel *m = jit_load(path_in_dir("model.bp"), NULL, &jo);
  assert_non_null(m);
  assert_int_equal(m->fixed, 40);
  assert_true((m->train_team != NULL) == (threads > 1)); /* the threads share each step */
  assert_int_equal(m->nparams, TEAM_PARAMS);
  DataBinding b = {NULL, path_in_dir("team.csv")};
  Dataset d;
  assert_null(load(m, &d, &b, 1));
  m->init(out, 5);
  Optimizer o;
  optim_init(&o, OPT_ADAM, 0.01, 0, m->nparams, m->elem);
  TrainOptions to = {.epochs = 2,
                     .batch = 40,
                     .seed = 3,
                     .threads = threads,
                     .quiet = 1,
                     .opt = &o,
                     .metric = METRIC_MSE,
                     .log = path_in_dir("team.log")};
  assert_int_equal(train(m, out, &d, NULL, &to), 0);
  optim_free(&o);
  dataset_free(&d);
  jit_free(m);
  char *log = read_text_file(path_in_dir("team.log"));
  assert_non_null(strstr(log, "epoch,train_loss,train_mse,"));
  const char *last = strstr(log, "\n2,"); /* the second epoch's row: epoch, loss, mse */
  assert_non_null(last);
  double mse = strtod(strchr(last + 3, ',') + 1, NULL);
  free(log);
  return mse;
}

/* 2 and 3 threads sharing each step give one thread's parameters up to
 * the order of sums, in double and float; a run repeats exactly (each
 * element is computed by the same thread in the same order every time). */
static void test_team_matches_one_thread(void **state) {
  (void)state;
  Buf csv = {0};
  uint64_t rng = 23;
  for (int i = 0; i < 210; i++)
    for (int j = 0; j < 75; j++)
      buf_printf(&csv, "%.9g%s", test_rand_normal(&rng), j < 74 ? "," : "\n");
  write_text("team.csv", csv.data);
  buf_free(&csv);
  static double one[TEAM_PARAMS], many[TEAM_PARAMS], again[TEAM_PARAMS];
  for (int use_float = 0; use_float < 2; use_float++) {
    double mse_one = train_team(1, use_float, one);
    assert_true(mse_one > 0.1 && mse_one < 10); /* t is normal(0, 1): about 1 */
    for (int threads = 2; threads <= 3; threads++) {
      double mse = train_team(threads, use_float, many);
      assert_true(fabs(mse - mse_one) <= (use_float ? 1e-5 : 1e-12) * mse_one);
      train_team(threads, use_float, again);
      assert_memory_equal(many, again, use_float ? sizeof(float) * TEAM_PARAMS : sizeof many);
      double moved = 0;
      for (int i = 0; i < TEAM_PARAMS; i++) {
        double a = use_float ? (double)((float *)one)[i] : one[i], c = use_float ? (double)((float *)many)[i] : many[i];
        assert_true(fabs(a - c) <= (use_float ? 1e-4 : 1e-12) * (1 + fabs(a)));
        moved += fabs(a);
      }
      assert_true(moved > 1); /* trained parameters, not zeros */
    }
  }
}

/* ---- the team form, its parts run one at a time ----------------------------
 * Between two barriers the parts of a team may run in any order and at any
 * speed. A sequencer runs them one after another, in a given order, each
 * up to its next barrier: if a part reads what another writes between the
 * same two barriers, or overwrites what another still reads (a barrier
 * team.c left out), one of the orders gives another loss or gradient than
 * one thread's batched step. */
typedef struct Sequencer {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int parts, pos;   /* order[pos] runs now */
  const int *order;
} Sequencer;
typedef struct SeqPart {
  Sequencer *s;
  int me;
  JitModel *m;
  const void *params, *inputs;
  void *grad, *outputs, *ws;
  int acc;
  double loss;
} SeqPart;

static void seq_pass(Sequencer *s) { /* with the mutex held: the next part in order runs */
  s->pos = (s->pos + 1) % s->parts;
  pthread_cond_broadcast(&s->cv);
}

static void seq_wait_turn(Sequencer *s, int me) {
  while (s->order[s->pos] != me)
    pthread_cond_wait(&s->cv, &s->mu);
}

static void seq_sync(void *arg) {
  SeqPart *sp = arg;
  pthread_mutex_lock(&sp->s->mu);
  seq_pass(sp->s);
  seq_wait_turn(sp->s, sp->me);
  pthread_mutex_unlock(&sp->s->mu);
}

static void *seq_part_main(void *arg) {
  SeqPart *sp = arg;
  pthread_mutex_lock(&sp->s->mu);
  seq_wait_turn(sp->s, sp->me);
  pthread_mutex_unlock(&sp->s->mu);
  sp->loss = jit_train_team(sp->m, sp->params, sp->inputs, sp->grad, sp->outputs, sp->ws, sp->acc, 0, 0, sp->me,
                            sp->s->parts, seq_sync, sp);
  pthread_mutex_lock(&sp->s->mu);
  seq_pass(sp->s);
  pthread_mutex_unlock(&sp->s->mu);
  bpk_thread_done(); /* the kernels' buffers of this thread, as the pool's workers free them */
  return NULL;
}

static double as_real(const JitModel *m, const void *v, size_t i) {
  return m->use_float ? (double)((const float *)v)[i] : ((const double *)v)[i];
}

/* The team's step in `parts` parts run in `order` against one thread's
 * batched step (train_fixed): the loss, the gradient stored (acc 0) and
 * added to one already there (acc 1), and the outputs, to the order of the
 * sums. The workspace starts as NaN, and garbage between the runs. */
static void check_team_in_order(JitModel *m, const void *params, const void *soa, int parts, const int *order,
                                const char *what) {
  size_t es = m->elem, np = (size_t)m->nparams, no = (size_t)m->noutputs * (size_t)m->fixed;
  size_t wsn = m->ws_elems + (size_t)parts * m->team_scratch + 1;
  char *ws = malloc(es * wsn), *g1 = malloc(es * (np + 1)), *g2 = malloc(es * (np + 1));
  char *o1 = malloc(es * (no + 1)), *o2 = malloc(es * (no + 1));
  double tol = m->use_float ? 2e-4 : 1e-11;
  for (int acc = 0; acc < 2; acc++) {
    for (size_t i = 0; i < np; i++) /* acc 1: added to 0.5, 1.5, ... */
      if (m->use_float)
        ((float *)g1)[i] = ((float *)g2)[i] = acc ? (float)(i % 7) + 0.5f : NAN;
      else
        ((double *)g1)[i] = ((double *)g2)[i] = acc ? (double)(i % 7) + 0.5 : NAN;
    for (size_t i = 0; i < wsn; i++)
      if (m->use_float) ((float *)ws)[i] = NAN; else ((double *)ws)[i] = NAN;
    double want = jit_train_fixed(m, params, soa, g1, o1, ws, acc, 0, 0);
    for (size_t i = 0; i < wsn; i++)
      if (m->use_float) ((float *)ws)[i] = 1e30f; else ((double *)ws)[i] = 1e300;
    Sequencer s = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, parts, 0, order};
    SeqPart sp[3];
    pthread_t th[3];
    for (int q = 0; q < parts; q++) {
      sp[q] = (SeqPart){&s, q, m, params, soa, g2, o2, ws, acc, 0};
      assert_int_equal(pthread_create(&th[q], NULL, seq_part_main, &sp[q]), 0);
    }
    for (int q = 0; q < parts; q++)
      pthread_join(th[q], NULL);
    for (int q = 0; q < parts; q++) /* every part returns the loss */
      if (!(fabs(sp[q].loss - want) <= tol * (1 + fabs(want))))
        fail_msg("%s, %d parts, part %d, acc %d: loss %.17g, want %.17g", what, parts, q, acc, sp[q].loss, want);
    for (size_t i = 0; i < np; i++) {
      double a = as_real(m, g2, i), b = as_real(m, g1, i);
      if (!(fabs(a - b) <= tol * (1 + fabs(b))))
        fail_msg("%s, %d parts in order %d%d%d, acc %d: gradient %zu is %.17g, want %.17g", what, parts, order[0],
                 order[1], parts > 2 ? order[2] : 0, acc, i, a, b);
    }
    for (size_t i = 0; i < no; i++) {
      double a = as_real(m, o2, i), b = as_real(m, o1, i);
      if (!(fabs(a - b) <= tol * (1 + fabs(b))))
        fail_msg("%s, %d parts, acc %d: output %zu is %.17g, want %.17g", what, parts, acc, i, a, b);
    }
  }
  free(ws);
  free(g1);
  free(g2);
  free(o1);
  free(o2);
}

/* Every order of 2 and 3 parts on one model's team form, in double and
 * float; returns 1 if it has one. */
static int team_matches_batched(const char *src, int B, uint64_t seed) {
  int has_team = 0;
  for (int use_float = 0; use_float < 2; use_float++) {
    write_text("model.bp", src);
    JitOptions jo = {.use_float = use_float, .batch = B, .team_batch = B};
    JitModel *m = jit_load(path_in_dir("model.bp"), NULL, &jo);
    assert_non_null(m);
    if (!m->train_team) {
      jit_free(m);
      continue;
    }
    has_team = 1;
    size_t es = m->elem, ni = (size_t)m->ninputs * (size_t)B;
    char *params = malloc(es * ((size_t)m->nparams + 1)), *x = malloc(es * (ni + 1)), *soa = malloc(es * (ni + 1));
    m->init(params, seed);
    uint64_t rng = seed;
    for (size_t i = 0; i < ni; i++)
      if (use_float) ((float *)x)[i] = (float)test_rand_normal(&rng); else ((double *)x)[i] = test_rand_normal(&rng);
    jit_gather(m, x, soa);
    static const int orders[][3] = {{0, 1, 2}, {1, 0, 2}, {2, 1, 0}, {1, 2, 0}, {0, 2, 1}};
    for (int parts = 2; parts <= 3; parts++)
      for (size_t k = 0; k < sizeof orders / sizeof orders[0]; k++) {
        if (parts == 2 && k >= 2) break;
        check_team_in_order(m, params, soa, parts, orders[k], src);
      }
    free(params);
    free(x);
    free(soa);
    jit_free(m);
  }
  return has_team;
}

/* Every model with a team form among the AD programs and the samples,
 * at a batch of 8 (rows shared unevenly by three) and the Fashion MLP at
 * 64 (its product over k, its small weight's gradient summed from parts). */
static void test_team_parts_in_any_order(void **state) {
  (void)state;
  int teams = 0;
  for (int i = 0; i < NUM_AD_PROGRAMS; i++)
    teams += team_matches_batched(ad_programs[i], 8, 31 + (uint64_t)i);
  static const char *const samples[] = {"xyz", "apple", "apple_orange", "toy_net", "hinge", "linreg", "two_layer",
                                        "mlp", "logsumexp", "deep_sigmoid", "deep_relu", "rnn", "residual"};
  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
    char path[256];
    snprintf(path, sizeof path, SAMPLES_DIR "/%s.bp", samples[i]);
    char *src = read_text_file(path);
    teams += team_matches_batched(src, 8, 7);
    free(src);
  }
  char *src = read_text_file(SAMPLES_DIR "/fashion_mlp.bp");
  teams += team_matches_batched(src, 64, 5);
  free(src);
  assert_int_equal(teams, 50);
}

/* The batched functions `bpc train` runs (one fixed batch, vectors made
 * matrices) against the per-example ones on the same examples: the
 * summed loss, the summed gradient (stored, then added with acc 1) and
 * the outputs, with dropout on (the same seed gives example e the same
 * masks in both), and eval's loss. Returns 1 if the model has batched
 * functions. */
static int batched_matches_per_example(const char *src, uint64_t seed) {
  enum { B = 3 };
  JitModel *m = jit_from_source(src, 0, B);
  int batched = m->fixed == B;
  if (batched) {
    size_t np = (size_t)m->nparams + 1, ni = B * (size_t)m->ninputs + 1, no = B * (size_t)m->noutputs + 1;
    double *p = calloc(np, sizeof(double)), *g1 = calloc(np, sizeof(double)), *gb = calloc(np, sizeof(double));
    double *x = calloc(ni, sizeof(double)), *soa = calloc(ni, sizeof(double)), *ws = calloc(m->ws_elems + 1, sizeof(double));
    double *o1 = calloc(no, sizeof(double)), *ob = calloc(no, sizeof(double));
    uint64_t rng = seed;
    m->init(p, seed);
    for (size_t i = 0; i + 1 < ni; i++)
      x[i] = test_rand_normal(&rng);
    const uint64_t dropout_seed = 0x5EED0000u + seed;
    double l1 = jit_train_batch(m, p, x, B, g1, o1, ws, 0, 1, dropout_seed);
    jit_gather(m, x, soa);
    double lb = jit_train_fixed(m, p, soa, gb, ob, ws, 0, 1, dropout_seed);
    assert_true(fabs(l1 - lb) <= 1e-10 * (1 + fabs(l1)));
    for (size_t i = 0; i + 1 < np; i++)
      assert_true(fabs(g1[i] - gb[i]) <= 1e-10 * (1 + fabs(g1[i])));
    for (size_t i = 0; i + 1 < no; i++)
      assert_true(fabs(o1[i] - ob[i]) <= 1e-10 * (1 + fabs(o1[i])));
    jit_train_fixed(m, p, soa, gb, NULL, ws, 1, 1, dropout_seed); /* acc 1 adds a second copy */
    for (size_t i = 0; i + 1 < np; i++)
      assert_true(fabs(2 * g1[i] - gb[i]) <= 1e-10 * (1 + fabs(g1[i])));
    double l0 = jit_eval_batch(m, p, x, B, NULL, ws); /* no dropout: the same as training with it off */
    assert_true(fabs(jit_eval_fixed(m, p, soa, NULL, ws) - l0) <= 1e-10 * (1 + fabs(l0)));
    assert_true(fabs(jit_train_fixed(m, p, soa, gb, NULL, ws, 0, 0, dropout_seed) - l0) <=
                1e-10 * (1 + fabs(l0)));
    free(p);
    free(g1);
    free(gb);
    free(x);
    free(soa);
    free(ws);
    free(o1);
    free(ob);
  }
  jit_free(m);
  return batched;
}

static void test_batched_functions_match_per_example(void **state) {
  (void)state;
  int batched = 0;
  for (int i = 0; i < NUM_AD_PROGRAMS; i++)
    batched += batched_matches_per_example(ad_programs[i], 11 + (uint64_t)i);
  /* all but the one taking the largest element of an example's value; a
     change in what can be batched must show up here */
  assert_int_equal(batched, NUM_AD_PROGRAMS - 1);
  static const char *const samples[] = {"xyz", "apple", "apple_orange", "toy_net", "hinge", "linreg",
                                        "two_layer", "mlp", "fashion_mlp", "logsumexp", "deep_sigmoid",
                                        "deep_relu", "rnn", "residual", "conv_lecture", "fashion_cnn"};
  int samples_batched = 0;
  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
    char path[256];
    snprintf(path, sizeof path, SAMPLES_DIR "/%s.bp", samples[i]);
    char *src = read_text_file(path);
    samples_batched += batched_matches_per_example(src, 3);
    free(src);
  }
  assert_int_equal(samples_batched, 16);
}

/* The workspace a model declares is the workspace its code uses: filled
 * with a sentinel, then every function run, the highest element written
 * must be the last one declared. Gradients written straight into grad
 * took workspace they never touched (W[784, 700]: 549,500 reals for 700). */
static void check_workspace_is_tight(const char *src, int batch) {
  JitModel *m = jit_from_source(src, 0, batch);
  const size_t margin = 64, n = m->ws_elems + margin;
  const double sentinel = -12345.678;
  double *ws = malloc(sizeof(double) * n), *p = calloc((size_t)m->nparams + 1, sizeof(double));
  double *g = calloc((size_t)m->nparams + 1, sizeof(double)), *out = calloc((size_t)m->noutputs * 64 + 1, sizeof(double));
  size_t B = m->fixed > 1 ? (size_t)m->fixed : 1;
  double *x = malloc(sizeof(double) * (B * (size_t)m->ninputs + 1)), *soa = malloc(sizeof(double) * (B * (size_t)m->ninputs + 1));
  uint64_t rng = 5;
  for (size_t i = 0; i < B * (size_t)m->ninputs; i++)
    x[i] = test_rand_normal(&rng);
  m->init(p, 1);
  for (size_t i = 0; i < n; i++)
    ws[i] = sentinel;
  jit_train_batch(m, p, x, 1, g, out, ws, 0, 0, 0);
  jit_eval_batch(m, p, x, 1, out, ws);
  if (m->fixed > 1) {
    jit_gather(m, x, soa);
    jit_train_fixed(m, p, soa, g, out, ws, 0, 0, 0);
    jit_eval_fixed(m, p, soa, out, ws);
  }
  size_t top = 0;
  for (size_t i = 0; i < n; i++)
    if (ws[i] != sentinel) top = i + 1;
  assert_int_equal(top, m->ws_elems);
  free(ws);
  free(p);
  free(g);
  free(out);
  free(x);
  free(soa);
  jit_free(m);
}

static void test_workspace_is_what_the_code_uses(void **state) {
  (void)state;
  check_workspace_is_tight("param W[784, 700]\ninput x[784]\nloss = sum(x @ W)\n", 0);
  check_workspace_is_tight("param W[784, 70]\ninput x[784]\nloss = sum(x @ W)\n", 8);
  check_workspace_is_tight("param W1[20, 16] ~ normal(0, 0.3)\nparam b1[16]\nparam W2[16, 5] ~ normal(0, 0.3)\n"
                           "input x[20]\ninput t[5]\nh = relu(x @ W1 + b1)\ns = h @ W2\n"
                           "loss = softmax_cross_entropy(s, t) + 0.01 * sum(W1 * W1)\noutput scores = s\n",
                           4);
  check_workspace_is_tight("param W[3, 2] ~ normal(0, 1)\nh = exp(W)\nd = h - h[0]\nloss = sum(d * d) + max(h)\n", 0);
}

/* calloc_aligned: zeroed and on a cache line, small or large (huge pages
 * past 8 MiB), and NULL when n * size overflows. */
static void test_calloc_aligned(void **state) {
  (void)state;
  const size_t sizes[] = {1, 3, 1000, 9u << 20};
  for (int k = 0; k < 4; k++) {
    unsigned char *p = calloc_aligned(sizes[k], 1);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    size_t nonzero = 0;
    for (size_t i = 0; i < sizes[k]; i++)
      nonzero += p[i] != 0;
    assert_int_equal(nonzero, 0);
    p[sizes[k] - 1] = 1; /* all of it is ours */
    free(p);
  }
  double *d = calloc_aligned(5, sizeof(double));
  assert_int_equal((uintptr_t)d % 64, 0);
  free(d);
  assert_null(calloc_aligned(SIZE_MAX / 2, 4));
}

/* A data set of n examples from values given example by example. */
static Dataset dataset_of(JitModel *m, size_t n, const double *values) {
  Dataset d = {n, m->ninputs, sizeof(double), malloc(sizeof(double) * n * (size_t)m->ninputs),
               calloc((size_t)m->info.inputs.len + 1, sizeof(int))};
  memcpy(d.x, values, sizeof(double) * n * (size_t)m->ninputs);
  return d;
}

static void test_metric_choice(void **state) {
  (void)state;
  MetricSpec s;
  char *err = NULL;
  /* two one-hot targets of the output's shape: the user must pick one */
  JitModel *m = jit_from_source("input x[3]\ninput a[3]\ninput b[3]\nparam W[3, 3]\n"
                                "output o = x @ W\nloss = softmax_cross_entropy(x @ W, a)\n",
                                0, 0);
  const double two[] = {0.3, -1, 2, 0, 1, 0, 1, 0, 0, 1.5, 0.5, -2, 1, 0, 0, 0, 0, 1};
  Dataset d = dataset_of(m, 2, two);
  assert_int_equal(metric_spec(m, &d, METRIC_AUTO, NULL, &s, &err), 1);
  assert_string_equal(err, "output 'o' and input 'b' could be compared as well as 'o' and 'a'; pick the target "
                           "with --target NAME");
  free(err);
  assert_int_equal(metric_spec(m, &d, METRIC_AUTO, "b", &s, &err), 0);
  assert_true(s.kind == METRIC_ACCURACY && s.output == 0 && s.input == 2);
  dataset_free(&d);
  jit_free(m);
  /* an autoencoder: its output has the input's shape, but the input holds no classes */
  m = jit_from_source("input x[3]\nparam W[3, 3]\noutput r = x @ W\nloss = sum((x @ W - x)^2)\n", 0, 0);
  const double pixels[] = {0.25, 0.5, 0, 1, 0.75, 0.125};
  d = dataset_of(m, 2, pixels);
  assert_int_equal(metric_spec(m, &d, METRIC_AUTO, NULL, &s, &err), 0);
  assert_true(s.kind == METRIC_NONE);
  assert_int_equal(metric_spec(m, &d, METRIC_MSE, NULL, &s, &err), 0);
  assert_true(s.kind == METRIC_MSE && s.output == 0 && s.input == 0);
  /* its mean squared error against known outputs: ((0.25-0.5)^2 + 0 + 0) / 3 and (0 + 0.25^2 + 0) / 3 */
  const double outs[] = {0.5, 0.5, 0, 1, 0.5, 0.125};
  assert_true(fabs(metric_sum(m, &s, d.x, outs, 2) - (0.0625 + 0.0625) / 3) < 1e-15);
  assert_int_equal(metric_spec(m, &d, METRIC_MAE, NULL, &s, &err), 0);
  assert_true(fabs(metric_sum(m, &s, d.x, outs, 2) - (0.25 + 0.25) / 3) < 1e-15);
  dataset_free(&d);
  jit_free(m);
  /* a scalar 0/1 target and a probability: binary accuracy at 0.5; --target y names a scalar input */
  m = jit_from_source("input x[2]\ninput y\nparam w[2]\np = sigmoid(dot(w, x))\noutput prob = p\n"
                      "loss = -(y * log(p) + (1 - y) * log(1 - p))\n",
                      0, 0);
  const double binary[] = {1, 2, 1, -1, 0.5, 0, 3, 1, 1};
  d = dataset_of(m, 3, binary);
  assert_int_equal(metric_spec(m, &d, METRIC_AUTO, "y", &s, &err), 0);
  assert_true(s.kind == METRIC_ACCURACY && s.output == 0 && s.input == 1 && s.threshold == 0.5);
  const double probs[] = {0.75, 0.25, 0.25}; /* right, right, wrong */
  assert_true(metric_sum(m, &s, d.x, probs, 3) == 2);
  /* a scalar target that is not 0/1 is a regression target: no accuracy unless asked */
  const double reals[] = {1, 2, 0.5, -1, 0.5, 0, 3, 1, 1};
  Dataset r = dataset_of(m, 3, reals);
  assert_int_equal(metric_spec(m, &r, METRIC_AUTO, NULL, &s, &err), 0);
  assert_true(s.kind == METRIC_NONE);
  dataset_free(&r);
  dataset_free(&d);
  jit_free(m);
}

/* ---- issue 10: CSV class labels, the CSV header rule, uniform's bounds ------------- */

static const char *const classifier_model = "param W[3, 2]\ninput x[2]\ninput t[3]\nz = W @ x\n"
                                            "loss = softmax_cross_entropy(z, t)\noutput p = softmax(z)\n";

/* A CSV of one integer per line bound to an input [K] holds class labels,
 * read as one-hot rows (as an IDX label file is); a bad label names the
 * file, the line and the column. */
static void test_csv_class_labels(void **state) {
  (void)state;
  for (int use_float = 0; use_float <= 1; use_float++) {
    JitModel *m = jit_from_source(classifier_model, use_float, 0);
    write_text("lx.csv", "1,0\n0,1\n1,1\n");
    write_text("lt.csv", "label\n2\n0\n\n 1.0 \n");
    DataBinding b[2] = {{"x", path_in_dir("lx.csv")}, {"t", path_in_dir("lt.csv")}};
    Dataset d;
    assert_null(load(m, &d, b, 2));
    assert_int_equal(d.n, 3);
    const double want[] = {1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0};
    for (int i = 0; i < 15; i++)
      assert_true(real_get(d.x, d.elem, (size_t)i) == want[i]);
    assert_int_equal(d.onehot[1], 1);
    assert_int_equal(d.onehot[0], 0);
    MetricSpec spec;
    char *err = NULL;
    assert_int_equal(metric_spec(m, &d, METRIC_AUTO, NULL, &spec, &err), 0);
    assert_true(spec.kind == METRIC_ACCURACY);
    dataset_free(&d);
    jit_free(m);
  }

  JitModel *m = jit_from_source(classifier_model, 0, 0);
  DataBinding b[2] = {{"x", path_in_dir("lx.csv")}, {"t", path_in_dir("lt.csv")}};
  static const struct {
    const char *text;
    int line;
    const char *field;
  } bad[] = {{"0\n3\n1\n", 2, "3"},      {"label\n0\n1\n-1\n", 4, "-1"}, {"0\n1.5\n1\n", 2, "1.5"},
             {"0\nabc\n1\n", 2, "abc"},  {"2\n1\n\n\n\t\n7\n", 6, "7"},  {"0\n1e999\n2\n", 2, "1e999"},
             {"0\n\n2\nnan\n", 4, "nan"}};
  char want[512];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_text("lt.csv", bad[i].text);
    snprintf(
        want, sizeof want,
        "%s:%d: column 1 is '%s', not a class of input t[3] (class labels are whole numbers from 0 to 2)",
        b[1].path, bad[i].line, bad[i].field);
    expect_error(m, b, 2, want);
  }
  write_text("lt.csv", "0\n1,0,0\n1\n");
  snprintf(want, sizeof want,
           "%s:2: expected 1 column (a class label of input t[3], like the first line), found 3", b[1].path);
  expect_error(m, b, 2, want);

  /* one-hot rows written out are read as they are */
  write_text("lt.csv", "0,0,1\n1,0,0\n0,1,0\n");
  Dataset d;
  assert_null(load(m, &d, b, 2));
  assert_true(real_get(d.x, d.elem, 4) == 1 && real_get(d.x, d.elem, 5 + 2) == 1);
  dataset_free(&d);
  jit_free(m);

  /* a scalar target, or a CSV holding every input, is never a label file */
  m = jit_from_source(regression_model, 0, 0);
  write_text("one.csv", "7\n");
  DataBinding all = {NULL, path_in_dir("one.csv")};
  snprintf(want, sizeof want, "%s:1: expected 3 columns (x[2], t), found 1", all.path);
  expect_error(m, &all, 1, want);
  jit_free(m);
}

/* A header is a first line where no field looks like a number; a first line
 * with a number in it is data, and a field of it that is not a number is an
 * error naming the line and the column (it was skipped as a header). */
static void test_csv_header_rule(void **state) {
  (void)state;
  JitModel *m = jit_from_source(regression_model, 0, 0);
  DataBinding all = {NULL, path_in_dir("h.csv")};
  static const struct {
    const char *text;
    int line, col;
    const char *field;
  } bad[] = {{"1.5,2x,3\n1,2,3\n", 1, 2, "2x"},
             {"1.5,x,3\n1,2,3\n", 1, 2, "x"},
             {"x0,2,t\n1,2,3\n", 1, 1, "x0"},
             {"\n\nw,x,-.5\n1,2,3\n", 3, 1, "w"},
             {"a,b,nan\n1,2,3\n", 1, 1, "a"}};
  char want[512];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_text("h.csv", bad[i].text);
    snprintf(want, sizeof want,
             "%s:%d: column %d is '%s', not a number (reading x[2], t; a first line with a number in it is "
             "data, not a header)",
             all.path, bad[i].line, bad[i].col, bad[i].field);
    expect_error(m, &all, 1, want);
  }
  static const char *const headers[] = {"x0,x1,t\n1,2,3\n4,5,6\n",
                                        "\n a , information , t.2 \n1,2,3\n4,5,6\n",
                                        "\"x\",\"y\",\"\"\n1,2,3\n4,5,6\n"};
  for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
    write_text("h.csv", headers[i]);
    Dataset d;
    char *err = load(m, &d, &all, 1);
    if (err) fail_msg("header %zu: %s", i, err);
    assert_int_equal(d.n, 2);
    assert_true(real_get(d.x, d.elem, 0) == 1 && real_get(d.x, d.elem, 5) == 6);
    dataset_free(&d);
  }
  jit_free(m);
}

/* uniform(lo, hi) and glorot draw from [lo, hi) in the generated init (double
 * and float) and in the interpreter's eval_init_params. splitmix64 is a
 * bijection, so undoing it gives the seed whose first draw for parameter 0
 * has chosen raw bits: the lowest (0) must give lo exactly, the highest
 * (all ones) must stay below hi. They gave lo + 2^-53 (hi - lo) and hi. */
static uint64_t undo_xorshift(uint64_t y, int s) {
  uint64_t x = y;
  for (int i = 0; i < 64; i += s)
    x = y ^ (x >> s);
  return x;
}

static uint64_t mul_inverse(uint64_t a) { /* Newton's iteration mod 2^64, a odd */
  uint64_t x = a;
  for (int i = 0; i < 6; i++)
    x *= 2 - a * x;
  return x;
}

static uint64_t seed_for_first_draw(uint64_t raw) {
  uint64_t z = undo_xorshift(raw, 31);
  z *= mul_inverse(0x94D049BB133111EBu);
  z = undo_xorshift(z, 27);
  z *= mul_inverse(0xBF58476D1CE4E5B9u);
  z = undo_xorshift(z, 30);
  uint64_t state = z - 0x9E3779B97F4A7C15u;
  /* the generator's own first step, as emit_c.c and eval.c take it */
  uint64_t check = state + 0x9E3779B97F4A7C15u;
  check = (check ^ (check >> 30)) * 0xBF58476D1CE4E5B9u;
  check = (check ^ (check >> 27)) * 0x94D049BB133111EBu;
  assert_true((check ^ (check >> 31)) == raw);
  return state ^ 0xD1B54A32D192ED03u; /* parameter 0's stream */
}

/* The first parameter element after init with `seed`: [0] the interpreter,
 * [1] generated C in double, [2] generated C in float. */
static void first_element(const char *src, uint64_t seed, double out[3]) {
  for (int use_float = 0; use_float <= 1; use_float++) {
    write_text("model.bp", src);
    JitOptions jo = {.use_float = use_float};
    LoadedModel lm; /* the interpreter needs the compiler's Ctx too */
    assert_int_equal(load_model(&lm, path_in_dir("model.bp"), NULL, &jo), 0);
    JitModel *m = lm.jit;
    void *p = calloc((size_t)m->nparams, m->elem);
    m->init(p, seed);
    out[1 + use_float] = real_get(p, m->elem, 0);
    if (!use_float) {
      double *q = calloc((size_t)m->nparams, sizeof(double));
      eval_init_params(&lm.ctx, q, seed);
      out[0] = q[0];
      free(q);
    }
    free(p);
    unload_model(&lm);
  }
}

static void test_uniform_is_lo_inclusive_hi_exclusive(void **state) {
  (void)state;
  uint64_t lowest = seed_for_first_draw(0), highest = seed_for_first_draw(UINT64_MAX);
  double v[3];

  first_element("param w[2] ~ uniform(-3, 5)\ninput x\nloss = sum(w) * x\n", lowest, v);
  for (int i = 0; i < 3; i++)
    assert_true(v[i] == -3);
  first_element("param W[2, 3]\ninput x[3]\nloss = sum(W @ x)\n", lowest, v); /* glorot: +-sqrt(6/5) */
  assert_true(v[0] == -sqrt(1.2) && v[1] == -sqrt(1.2));
  assert_true(v[2] == (double)(float)-sqrt(1.2));

  /* 1 + (1 - 2^-53) rounds to 2 in double, -1 + 2 (1 - 2^-53) to 1 in float:
     a value that would round up to hi is lo */
  first_element("param w[2] ~ uniform(1, 2)\ninput x\nloss = sum(w) * x\n", highest, v);
  assert_true(v[0] == 1 && v[1] == 1);
  first_element("param w[2] ~ uniform(-1, 1)\ninput x\nloss = sum(w) * x\n", highest, v);
  assert_true(v[0] == 1 - 0x1p-52 && v[1] == 1 - 0x1p-52 && v[2] == -1);
  first_element("param W[2, 3]\ninput x[3]\nloss = sum(W @ x)\n", highest, v);
  assert_true(v[0] == v[1] && v[0] >= -sqrt(1.2) && v[0] < sqrt(1.2));
  assert_true(v[2] == (double)(float)-sqrt(1.2)); /* sqrt(1.2) rounds up in float */

  /* and any seed: every element of a long vector in [lo, hi) */
  JitModel *m = jit_from_source("param w[4096] ~ uniform(0.25, 0.5)\ninput x\nloss = sum(w) * x\n", 1, 0);
  float *p = calloc(4096, sizeof(float));
  m->init(p, 12345);
  for (int i = 0; i < 4096; i++)
    assert_true(p[i] >= 0.25f && p[i] < 0.5f);
  free(p);
  jit_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_csv_with_header),
      cmocka_unit_test(test_csv_per_input_and_float),
      cmocka_unit_test(test_csv_errors),
      cmocka_unit_test(test_idx_images_and_labels),
      cmocka_unit_test(test_idx_errors),
      cmocka_unit_test(test_params_round_trip),
      cmocka_unit_test(test_params_bad_files),
      cmocka_unit_test(test_params_wrong_model_messages),
      cmocka_unit_test(test_params_failed_save_keeps_old_file),
      cmocka_unit_test(test_params_write_failure_keeps_old_file),
      cmocka_unit_test(test_params_versions_and_state),
      cmocka_unit_test(test_optimisers),
      cmocka_unit_test(test_schedules),
      cmocka_unit_test(test_dataset_split),
      cmocka_unit_test(test_confusion_format),
      cmocka_unit_test(test_jit_compile_and_call),
      cmocka_unit_test(test_jit_error_path),
      cmocka_unit_test(test_jit_batched_matches_per_example),
      cmocka_unit_test(test_jit_cc_parts_match_tcc),
      cmocka_unit_test(test_training_reduces_loss),
      cmocka_unit_test(test_training_is_reproducible),
      cmocka_unit_test(test_idle_thread_adds_nothing),
      cmocka_unit_test(test_threads_match_one_thread),
      cmocka_unit_test(test_team_matches_one_thread),
      cmocka_unit_test(test_team_parts_in_any_order),
      cmocka_unit_test(test_metric_choice),
      cmocka_unit_test(test_workspace_is_what_the_code_uses),
      cmocka_unit_test(test_calloc_aligned),
      cmocka_unit_test(test_batched_functions_match_per_example),
      cmocka_unit_test(test_csv_class_labels),
      cmocka_unit_test(test_csv_header_rule),
      cmocka_unit_test(test_uniform_is_lo_inclusive_hi_exclusive),
  };
  return cmocka_run_group_tests_name("runtime", tests, setup, teardown);
}
