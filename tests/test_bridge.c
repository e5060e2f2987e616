/* test_bridge.c — what crosses to and from other programs: parameter files
 * of format versions 1 and 2 read by the one checker (params_file_read and
 * params_file_fits, which --load, bpc params and, in generated C, the
 * loader follow), NumPy .npy data of every supported type and every kind
 * of bad file, and the .npy headers bpc params export writes. (The
 * generated loader itself is run in tests/e2e.sh, built by cc.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "cli.h"
#include "harness.h"
#include "runtime.h"

static char tmp[64];

static int setup(void **state) {
  (void)state;
  strcpy(tmp, "/tmp/bpc-bridge-XXXXXX");
  return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  return system(cmd);
}

/* A file of the test directory holding these bytes; returns its path (malloc'd). */
static char *file_of(const char *name, const void *data, size_t len) {
  char *path = str_printf("%s/%s", tmp, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
  return path;
}

static JitModel *model_of(const char *source, int use_float) {
  char *path = file_of("model.bp", source, strlen(source));
  JitOptions jo = {.use_float = use_float};
  JitModel *m = jit_load(path, NULL, &jo);
  assert_non_null(m);
  free(path);
  return m;
}

static void expect_message(char *err, const char *fmt, const char *path) {
  char want[1024];
  snprintf(want, sizeof want, fmt, path);
  assert_non_null(err);
  assert_string_equal(err, want);
  free(err);
}

/* ---- parameter files: version 2 and the table's checks ----------------------- */

static const char *const linear = "param w[2]\nparam b\ninput x[2]\nloss = dot(w, x) + b\n";

static void put_le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

/* A version 2 file made from a version 1 file: the version field set, a
 * training-state block of n bytes put before the checksum, which is computed
 * again. Returns the new length. */
static size_t to_version2(unsigned char *b, size_t len, uint32_t n) {
  put_le32(b + 8, 2);
  size_t k = len - 4;
  put_le32(b + k, n);
  k += 4;
  for (uint32_t i = 0; i < n; i++)
    b[k++] = (unsigned char)(0xA0 + i);
  put_le32(b + k, (uint32_t)crc32(0L, b, (uInt)k));
  return k + 4;
}

/* A version 1 file with a hand-made table: (name, rank, dims) per tensor,
 * then `values` doubles (v, or zeros when v is NULL) and a correct checksum. */
static size_t params_bytes(unsigned char *b, int n, const char *const *names, const int *ranks,
                           const uint64_t *dims, size_t values, const double *v) {
  size_t k = 0;
  memcpy(b, "BPCPARAM", 8);
  k = 8;
  put_le32(b + k, 1), k += 4;
  put_le32(b + k, 1), k += 4;
  put_le32(b + k, (uint32_t)n), k += 4;
  for (int i = 0, d = 0; i < n; i++) {
    put_le32(b + k, (uint32_t)strlen(names[i])), k += 4;
    memcpy(b + k, names[i], strlen(names[i])), k += strlen(names[i]);
    put_le32(b + k, (uint32_t)ranks[i]), k += 4;
    for (int r = 0; r < ranks[i]; r++, d++) {
      put_le32(b + k, (uint32_t)dims[d]), k += 4;
      put_le32(b + k, (uint32_t)(dims[d] >> 32)), k += 4;
    }
  }
  for (size_t i = 0; i < values; i++, k += 8) { /* little-endian, as on every machine bpc runs on */
    double x = v ? v[i] : 0;
    memcpy(b + k, &x, 8);
  }
  put_le32(b + k, (uint32_t)crc32(0L, b, (uInt)k));
  return k + 4;
}

/* The file params_save would write for the linear model, made by hand (whatever version params_save
 * writes). */
static size_t linear_file(unsigned char *b, const double *p) {
  static const char *const names[2] = {"w", "b"};
  static const int ranks[2] = {1, 0};
  static const uint64_t dims[1] = {2};
  return params_bytes(b, 2, names, ranks, dims, 3, p);
}

static void test_params_version2_skips_the_training_state(void **state) {
  (void)state;
  JitModel *m = model_of(linear, 0);
  double p[3] = {1.5, -2.25, 0.125}, q[3] = {0};
  unsigned char b[4096];
  size_t len = to_version2(b, linear_file(b, p), 5);
  char *path = file_of("v2.params", b, len), *err = NULL;
  assert_int_equal(params_load(path, m, q, &err), 0);
  assert_memory_equal(p, q, sizeof p);
  ParamsFile f;
  assert_int_equal(params_file_read(path, &f, &err), 0);
  assert_int_equal(f.version, 2);
  assert_int_equal(f.state_len, 5);
  assert_int_equal(f.state[0], 0xA0);
  assert_int_equal(f.state[4], 0xA4);
  assert_int_equal(f.tensors.len, 2);
  assert_string_equal(f.tensors.items[1].name, "b");
  assert_true(params_file_value(&f, 1) == -2.25);
  params_file_free(&f);
  /* a float model reads it too, and an empty block is a block */
  JitModel *fm = model_of(linear, 1);
  float pf[3];
  assert_int_equal(params_load(path, fm, pf, &err), 0);
  assert_true(pf[0] == 1.5f && pf[2] == 0.125f);
  free(path);
  len = to_version2(b, linear_file(b, p), 0);
  path = file_of("v2.params", b, len);
  assert_int_equal(params_load(path, m, q, &err), 0);
  assert_memory_equal(p, q, sizeof p);
  /* cut by 5 bytes: 24 bytes of values, 4 of the block's length, 4 of its 5 bytes (the last 4 are
     taken for the checksum) */
  len = to_version2(b, linear_file(b, p), 5);
  free(path);
  path = file_of("v2.params", b, len - 5);
  assert_int_equal(params_load(path, m, q, &err), 1);
  expect_message(err, "%s is truncated: expected 37 bytes of values, training state and checksum, found 32",
                 path);
  put_le32(b + 8, 3);
  free(path);
  path = file_of("v3.params", b, len);
  assert_int_equal(params_load(path, m, q, &err), 1);
  expect_message(err, "%s has format version 3; this bpc reads versions 1 and 2", path);
  free(path);
  jit_free(fm);
  jit_free(m);
}

static void expect_read_error(const unsigned char *b, size_t len, const char *fmt) {
  char *path = file_of("t.params", b, len), *err = NULL;
  ParamsFile f;
  assert_int_equal(params_file_read(path, &f, &err), 1);
  expect_message(err, fmt, path);
  free(path);
}

/* A whole file that does not fit m: "FILE does not fit MODEL: " and why. */
static void expect_misfit(JitModel *m, const unsigned char *b, size_t len, const char *why) {
  char *path = file_of("t.params", b, len), *err = NULL, want[512];
  ParamsFile f;
  assert_int_equal(params_file_read(path, &f, &err), 0);
  assert_int_equal(params_file_fits(&f, path, &m->info, &err), 1);
  snprintf(want, sizeof want, "%s does not fit %s: %s", path, m->info.name, why);
  assert_string_equal(err, want);
  free(err);
  params_file_free(&f);
  free(path);
}

static void test_params_table_is_checked_on_its_own(void **state) {
  (void)state;
  unsigned char b[4096];
  const char *twice[2] = {"w", "w"}, *path_like[1] = {"../w"};
  int ranks[2] = {1, 0};
  uint64_t dims[2] = {2, 0}, huge[1] = {(uint64_t)1 << 33}, wide[2] = {100000000, 100000000};
  expect_read_error(b, params_bytes(b, 2, twice, ranks, dims, 3, NULL),
                    "%s is damaged: tensor 'w' appears twice");
  expect_read_error(b, params_bytes(b, 1, path_like, ranks, dims, 2, NULL),
                    "%s is damaged: the name of tensor 1 is not an identifier");
  expect_read_error(b, params_bytes(b, 1, twice, ranks, huge, 0, NULL),
                    "%s is damaged: tensor 'w' has a dimension of 8589934592 (at most 100000000)");
  int rank2[1] = {2};
  expect_read_error(
      b, params_bytes(b, 1, twice, rank2, wide, 0, NULL),
      "%s is truncated: tensor 'w' of shape [100000000,100000000] has more values than the rest "
      "of the file holds");
  size_t len = params_bytes(b, 1, twice, ranks, dims, 2, NULL);
  put_le32(b + 16, 1000000); /* the tensor count */
  expect_read_error(b, len,
                    "%s is damaged or truncated: it claims 1000000 tensors, more than its size allows");
  expect_read_error(b, params_bytes(b, 1, twice, ranks, dims, 3, NULL),
                    "%s is longer than its header says: expected 20 bytes of values and checksum, found 28");

  /* against a model: the first difference, in order */
  JitModel *m = model_of(linear, 0);
  const char *one[1] = {"w"}, *three[3] = {"w", "b", "c"};
  int r3[3] = {1, 0, 0};
  expect_misfit(m, b, params_bytes(b, 1, one, ranks, dims, 2, NULL),
                "it holds 1 tensors but the model has 2 parameters ('b' is not in the file)");
  expect_misfit(m, b, params_bytes(b, 3, three, r3, dims, 4, NULL),
                "it holds 3 tensors but the model has 2 parameters ('c' is not in the model)");
  jit_free(m);
}

/* ---- .npy data ------------------------------------------------------------------- */

/* A .npy file as numpy writes it: the magic, the version, the header's
 * length (2 bytes in 1.0, 4 in 2.0 and 3.0), the dict padded with spaces to
 * a multiple of 64 bytes and ended by a newline, the data. */
static size_t npy_bytes(unsigned char *out, int major, const char *dict, const void *data, size_t len) {
  size_t lead = major == 1 ? 10 : 12, hlen = strlen(dict) + 1;
  while ((lead + hlen) % 64)
    hlen++;
  memcpy(out, "\x93NUMPY", 6);
  out[6] = (unsigned char)major;
  out[7] = 0;
  if (major == 1) {
    out[8] = (unsigned char)hlen;
    out[9] = (unsigned char)(hlen >> 8);
  } else {
    put_le32(out + 8, (uint32_t)hlen);
  }
  memset(out + lead, ' ', hlen);
  memcpy(out + lead, dict, strlen(dict));
  out[lead + hlen - 1] = '\n';
  memcpy(out + lead + hlen, data, len);
  return lead + hlen + len;
}

static const char *const classifier =
    "input img[2, 3]\ninput label[4]\nparam W[6, 4]\n"
    "scores = flatten(img) @ W\nloss = softmax_cross_entropy(scores, label)\n";

/* Loads img and label from these files; returns the error (malloc'd) or NULL. */
static char *load_pair(JitModel *m, const char *img, const char *label, Dataset *d) {
  DataBinding b[2] = {{"img", img}, {"label", label}};
  char *err = NULL;
  return dataset_load(d, m, b, 2, 0, NULL, &err) ? err : NULL;
}

static void test_npy_every_type(void **state) {
  (void)state;
  JitModel *m = model_of(classifier, 0);
  unsigned char b[1024];
  double f8[12] = {0.5, -1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1e-300};
  float f4[12] = {0.5f, -1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0.1f};
  unsigned char u1[12] = {0, 255, 51, 102, 0, 0, 255, 255, 255, 0, 0, 0}, lab_u1[2] = {3, 0};
  int64_t lab_i8[2] = {1, 2};
  double lab_f8[2] = {2, 3};
  char *img = file_of(
      "f8.npy", b,
      npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2, 3), }", f8, sizeof f8));
  char *lab = file_of(
      "i8.npy", b,
      npy_bytes(b, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", lab_i8, sizeof lab_i8));
  Dataset d;
  assert_null(load_pair(m, img, lab, &d));
  assert_int_equal(d.n, 2);
  const double *x = d.x;
  double want[20] = {0.5, -1, 2, 3, 4,  5,      0, 1, 0, 0, /* int64 labels: one-hot */
                     6,   7,  8, 9, 10, 1e-300, 0, 0, 1, 0};
  assert_memory_equal(x, want, sizeof want);
  assert_int_equal(d.onehot[1], 1);
  dataset_free(&d);
  free(img);
  free(lab);

  /* float32 in version 2.0, keys in another order and double quotes; labels as uint8 in 3.0 */
  img = file_of(
      "f4.npy", b,
      npy_bytes(b, 2, "{\"shape\": (2, 6), \"fortran_order\": False, \"descr\": \"<f4\"}", f4, sizeof f4));
  lab = file_of("u1.npy", b,
                npy_bytes(b, 3, "{'descr': '|u1', 'fortran_order': False, 'shape': (2,)}", lab_u1, 2));
  assert_null(load_pair(m, img, lab, &d));
  x = d.x;
  assert_true(x[0] == 0.5 && x[11 + 4] == (double)0.1f && x[6 + 3] == 1 && x[10 + 6] == 1);
  dataset_free(&d);
  free(img);
  free(lab);

  /* uint8 images are scaled to [0, 1] as from IDX, read gzip-compressed; float64 labels are classes */
  img = str_printf("%s/u1.npy.gz", tmp);
  gzFile gz = gzopen(img, "wb");
  size_t n = npy_bytes(b, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 3), }", u1, sizeof u1);
  gzwrite(gz, b, (unsigned)n);
  gzclose(gz);
  lab = file_of(
      "f8lab.npy", b,
      npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", lab_f8, sizeof lab_f8));
  assert_null(load_pair(m, img, lab, &d));
  x = d.x;
  double scaled[20] = {0, 1, 0.2, 0.4, 0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1};
  for (int i = 0; i < 20; i++)
    assert_true(fabs(x[i] - scaled[i]) < 1e-15);
  dataset_free(&d);
  free(img);
  free(lab);

  /* into a float model */
  JitModel *fm = model_of(classifier, 1);
  img =
      file_of("f8.npy", b,
              npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 6), }", f8, sizeof f8));
  lab = file_of("i8.npy", b,
                npy_bytes(b, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 4), }",
                          (int64_t[8]){1, 0, 0, 0, 0, 0, 0, 1}, 64));
  assert_null(load_pair(fm, img, lab, &d));
  const float *xf = d.x;
  assert_true(xf[1] == -1.0f && xf[6] == 1.0f && xf[19] == 1.0f && xf[15] == 0.0f);
  dataset_free(&d);
  free(img);
  free(lab);
  jit_free(fm);
  jit_free(m);
}

/* One number per example for an input of one element is that number, not
 * a class (of one): from .npy and from IDX alike. */
static void test_one_number_per_example_is_a_value(void **state) {
  (void)state;
  JitModel *m = model_of("param w\ninput x\ninput t[1]\nloss = (w * x - t[0])^2\n", 0);
  unsigned char b[256];
  double t[2] = {0.5, -2};
  int64_t x[2] = {3, 4};
  char *xp = file_of("x.npy", b,
                     npy_bytes(b, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", x, 16));
  char *tp = file_of("t.npy", b,
                     npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", t, 16));
  DataBinding bind[2] = {{"x", xp}, {"t", tp}};
  Dataset d;
  char *err = NULL;
  assert_int_equal(dataset_load(&d, m, bind, 2, 0, NULL, &err), 0);
  double want[4] = {3, 0.5, 4, -2};
  assert_memory_equal(d.x, want, sizeof want);
  assert_int_equal(d.onehot[1], 0);
  dataset_free(&d);
  /* an IDX file of bytes {1, 0}: the values 1 and 0 */
  unsigned char idx[10] = {0, 0, 0x08, 1, 0, 0, 0, 2, 1, 0};
  free(tp);
  tp = file_of("t.idx", idx, sizeof idx);
  bind[1].path = tp;
  assert_int_equal(dataset_load(&d, m, bind, 2, 0, NULL, &err), 0);
  double want_idx[4] = {3, 1, 4, 0};
  assert_memory_equal(d.x, want_idx, sizeof want_idx);
  dataset_free(&d);
  free(xp);
  free(tp);
  jit_free(m);
}

/* The image file holds these bytes; the error names it. */
static void expect_npy_error(JitModel *m, const unsigned char *b, size_t len, const char *fmt) {
  static const int64_t labels[2] = {0, 1};
  unsigned char lb[256];
  char *img = file_of("bad.npy", b, len);
  char *lab = file_of(
      "lab.npy", lb,
      npy_bytes(lb, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", labels, sizeof labels));
  Dataset d;
  expect_message(load_pair(m, img, lab, &d), fmt, img);
  free(img);
  free(lab);
}

static void test_npy_refusals(void **state) {
  (void)state;
  JitModel *m = model_of(classifier, 0);
  unsigned char b[1024];
  double v[12] = {0};
  expect_npy_error(
      m, b, npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 6), }", v, sizeof v),
      "%s holds a Fortran-order array (fortran_order True): save it in C order (numpy.ascontiguousarray)");
  expect_npy_error(
      m, b, npy_bytes(b, 1, "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", v, 16),
      "%s holds Python objects (dtype '|O'), not numbers: save a numeric array (float32, float64, uint8 "
      "or int64)");
  expect_npy_error(
      m, b, npy_bytes(b, 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 6), }", v, sizeof v),
      "%s holds big-endian numbers (dtype '>f8'): save them little-endian (array.astype('<f8'))");
  expect_npy_error(
      m, b, npy_bytes(b, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 6), }", v, 48),
      "%s: dtype '<i4' is not supported (float32 '<f4', float64 '<f8', uint8 '|u1' and int64 '<i8' are)");
  expect_npy_error(
      m, b, npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 6), }", v, sizeof v) - 1,
      "%s is truncated: its header promises 96 bytes of data, the file has 95");
  expect_npy_error(
      m, b, npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 6), }", v, sizeof v) + 8,
      "%s is longer than its header says: its header promises 96 bytes of data, the file has 104");
  expect_npy_error(m, b, 40, "%s is truncated: its header needs 128 bytes, the file has 40");
  expect_npy_error(m, b, npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", v, 8),
                   "%s holds a single value (shape ()): its first axis must count the examples");
  expect_npy_error(m, b,
                   npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 5), }", v, 80),
                   "%s: input img[2,3] needs 6 values per example, but the file has 5 = 5 per example");
  expect_npy_error(
      m, b, npy_bytes(b, 1, "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }", v, 16),
      "%s: the .npy header is not one bpc can read (a structured dtype (a list of fields))");
  expect_npy_error(
      m, b, npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 6), 'x': 1}", v, 96),
      "%s: the .npy header is not one bpc can read (a key other than descr, fortran_order and shape)");
  expect_npy_error(m, b, npy_bytes(b, 1, "{'descr': '<f8', 'shape': (2, 6), }", v, 96),
                   "%s: the .npy header is not one bpc can read (descr, fortran_order or shape is missing)");
  expect_npy_error(m, b, npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2 6), }", v, 96),
                   "%s: the .npy header is not one bpc can read (shape is not a tuple of sizes)");
  expect_npy_error(m, b,
                   npy_bytes(b, 1,
                             "{'descr': '<f8', 'fortran_order': False, 'shape': (2,1,1,1,1,1,1,1,1,6), }", v,
                             sizeof v),
                   "%s: arrays of more than 9 axes are not supported");
  expect_npy_error(
      m, b,
      npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 4398046511104), }", v, sizeof v),
      "%s: its shape describes an absurdly large array");
  size_t n = npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 6), }", v, sizeof v);
  b[6] = 4;
  expect_npy_error(m, b, n, "%s: .npy format version 4.0 is not supported (1.0, 2.0 and 3.0 are)");
  expect_npy_error(m, (const unsigned char *)"P5\n2 3\n255\n", 11,
                   "%s is not a NumPy .npy file (it does not start with \\x93NUMPY)");
  v[4] = NAN;
  expect_npy_error(
      m, b, npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 6), }", v, sizeof v),
      "%s: example 0 holds a value that is not finite (input img)");
  jit_free(m);

  /* a label outside the classes, and a .npy file not bound to one input */
  m = model_of(classifier, 0);
  int64_t labels[2] = {1, 4};
  char *img = file_of(
      "img.npy", b,
      npy_bytes(b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 6), }", (double[12]){0}, 96));
  char *lab = file_of(
      "lab.npy", b, npy_bytes(b, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", labels, 16));
  Dataset d;
  expect_message(load_pair(m, img, lab, &d),
                 "%s: label 4 of example 1 is not a class of input label[4] (0 to 3)", lab);
  DataBinding all = {NULL, img};
  char *err = NULL, want[512];
  assert_int_equal(dataset_load(&d, m, &all, 1, 0, NULL, &err), 1);
  snprintf(want, sizeof want, "--data %s: a .npy file holds one input; bind it with --data NAME=%s", img,
           img);
  assert_string_equal(err, want);
  free(err);
  free(img);
  free(lab);
  jit_free(m);
}

/* What bpc params export writes reads back, and looks as numpy's own. */
static void test_npy_header_written(void **state) {
  (void)state;
  Buf b = {0};
  int64_t dims[3] = {2, 3, 4};
  npy_write_header(&b, NPY_F64, 2, dims);
  /* byte for byte what numpy.save writes for a [2, 3] float64 array */
  static const char want[] =
      "\x93NUMPY\x01\x00\x76\x00{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  assert_int_equal(b.len, 128);
  assert_memory_equal(b.data, want, sizeof want - 1);
  for (size_t i = sizeof want - 1; i < 127; i++)
    assert_int_equal(b.data[i], ' ');
  assert_int_equal(b.data[127], '\n');
  double v[6] = {1, 2, 3, 4, 5, 6};
  buf_append(&b, v, sizeof v);
  NpyArray a;
  char *err = NULL;
  assert_int_equal(npy_parse("x.npy", (const unsigned char *)b.data, b.len, &a, &err), 0);
  assert_int_equal(a.type, NPY_F64);
  assert_int_equal(a.ndims, 2);
  assert_true(a.dims[0] == 2 && a.dims[1] == 3 && npy_value(&a, 5) == 6);
  buf_free(&b);
  /* a vector's shape has its comma; a scalar's is () */
  npy_write_header(&b, NPY_F32, 1, dims + 2);
  assert_non_null(strstr(b.data + 10, "'descr': '<f4', 'fortran_order': False, 'shape': (4,), }"));
  buf_free(&b);
  npy_write_header(&b, NPY_F32, 0, dims);
  assert_non_null(strstr(b.data + 10, "'shape': (), }"));
  assert_int_equal(b.len % 64, 0);
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_params_version2_skips_the_training_state),
      cmocka_unit_test(test_params_table_is_checked_on_its_own),
      cmocka_unit_test(test_npy_every_type),
      cmocka_unit_test(test_npy_refusals),
      cmocka_unit_test(test_one_number_per_example_is_a_value),
      cmocka_unit_test(test_npy_header_written),
  };
  return cmocka_run_group_tests_name("bridge", tests, setup, teardown);
}
