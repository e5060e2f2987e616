/* targets.c — see targets.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpc.h"
#include "cli.h"
#include "runtime.h"
#include "targets.h"

void fuzz_compile(const uint8_t *data, size_t size) {
  for (int batched = 0; batched < 2; batched++) {
    Ctx c;
    ctx_init(&c, "fuzz.bp", (const char *)data, size);
    if (bpc_compile(&c, NULL) == 0) {
      Buf out = {0}, h = {0}, text = {0};
      if (!batched) {
        ir_print(&c, &text);
        emit_dot(&c, &text);
        buf_free(&text);
      }
      EmitOptions eo = {.prefix = "m",
                        .self_contained = 1,
                        .jit_kernels = batched,
                        .batch = batched ? 4 : 0,
                        .slots_above = (int)(size % 3) - 1, /* slots always, never, or past 1 */
                        .part_nodes = (int)(size % 7) + 1};
      emit_c(&c, &eo, &out, &h);
      /* whatever bpc accepts must be C that compiles: a user name once hid a loop local */
      char *err = NULL;
      if (!jit_check_c(out.data, &err)) {
        fprintf(stderr, "generated C does not compile:\n%s\n", err);
        abort();
      }
      buf_free(&out);
      buf_free(&h);
    }
    ctx_free(&c);
  }
}

/* The fuzz input goes to a file: the readers take paths, as bpc does (a
 * .npy file is known by its name). */
static const char *to_named_file(const uint8_t *data, size_t size, const char *suffix) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/bpc-fuzz-%d%s", (int)getpid(), suffix);
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  fwrite(data, 1, size, f);
  fclose(f);
  return path;
}

static const char *to_file(const uint8_t *data, size_t size) { return to_named_file(data, size, ""); }

static JitModel *model(const char *name, const char *source) {
  char path[96];
  snprintf(path, sizeof path, "/tmp/bpc-fuzz-%d-%s.bp", (int)getpid(), name);
  FILE *f = fopen(path, "w");
  if (!f) abort();
  fputs(source, f);
  fclose(f);
  JitModel *m = jit_load(path, NULL, NULL);
  unlink(path);
  if (!m) abort();
  return m;
}

static void load(JitModel *m, const char *input, const char *path) {
  DataBinding b = {input, path};
  Dataset d;
  char *err = NULL;
  if (dataset_load(&d, m, &b, 1, 0, NULL, &err) == 0) dataset_free(&d);
  free(err);
}

void fuzz_csv(const uint8_t *data, size_t size) {
  static JitModel *m;
  if (!m) m = model("csv", "input x[3]\ninput t\nparam w[3]\nloss = (dot(w, x) - t)^2\n");
  load(m, NULL, to_file(data, size));
}

void fuzz_idx(const uint8_t *data, size_t size) {
  static JitModel *images, *labels;
  if (!images) {
    images = model("img", "input img[4]\nparam w[4]\nloss = dot(w, img)\n");
    labels = model("lab", "input lab[3]\nparam w[3]\nloss = dot(w, lab)\n");
  }
  const char *path = to_file(data, size);
  load(images, "img", path);
  load(labels, "lab", path);
}

void fuzz_params(const uint8_t *data, size_t size) {
  static JitModel *m;
  if (!m) m = model("params", "param W[2, 3]\nparam b[3]\ninput x[2]\nloss = sum(x @ W + b)\n");
  double p[9];
  char *err = NULL;
  const char *path = to_file(data, size);
  ParamsFile f;
  if (params_file_read(path, &f, &err) == 0) {
    double sum = 0; /* every value the file claims is read, as bpc params show does */
    for (int64_t i = 0; i < f.tensors.numel; i++)
      sum += params_file_value(&f, i);
    if (params_file_fits(&f, path, &m->info, &err)) free(err);
    err = NULL;
    params_file_free(&f);
    (void)sum;
  }
  free(err);
  err = NULL;
  params_load(path, m, p, &err);
  free(err);
  err = NULL;
  TrainState st;
  int has;
  if (params_load_state(path, m, p, &st, &has, &err) == 0) train_state_free(&st);
  free(err);
}

void fuzz_npy(const uint8_t *data, size_t size) {
  static JitModel *images, *labels;
  if (!images) {
    images = model("npyimg", "input img[4]\nparam w[4]\nloss = dot(w, img)\n");
    labels = model("npylab", "input lab[3]\nparam w[3]\nloss = dot(w, lab)\n");
  }
  const char *path = to_named_file(data, size, ".npy");
  load(images, "img", path);
  load(labels, "lab", path);
}
