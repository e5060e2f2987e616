/* harness.c — see harness.h. */
#include <dlfcn.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

char *read_text_file(const char *path) {
  size_t len;
  const char *why;
  char *t = read_source_file(path, &len, &why);
  if (!t) fail_msg("cannot read %s: %s", path, why);
  return t;
}

static void write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) fail_msg("cannot write %s", path);
  fwrite(data, 1, len, f);
  fclose(f);
}

static Model *build_model(const char *name, const char *source, int slots_above) {
  Ctx c;
  ctx_init(&c, name, source, strlen(source));
  if (bpc_compile(&c, NULL)) fail_msg("compile error:\n%s", c.err.data);
  Model *m = calloc(1, sizeof *m);
  m->nparams = c.num_params;
  m->ninputs = c.num_inputs;
  m->noutputs = c.num_outputs;
  for (int i = 0; i < c.params.len && i < 64; i++) {
    Decl *d = c.params.items[i];
    m->names[i] = strdup(d->name);
    m->offsets[i] = d->offset;
    m->sizes[i] = shape_numel(d->shape);
    m->ndecls++;
  }
  Buf text = {0}, header = {0};
  /* the slot form is also cut into parts of 3 nodes, the most cuts there can be */
  EmitOptions eo = {
      .prefix = "m", .self_contained = 1, .slots_above = slots_above, .part_nodes = slots_above < 0 ? 3 : 0};
  emit_c(&c, &eo, &text, &header);
  ctx_free(&c);
  strcpy(m->dir, "/tmp/bpc-test-XXXXXX");
  if (!mkdtemp(m->dir)) fail_msg("mkdtemp failed");
  char cpath[128], sopath[128], cmd[512];
  snprintf(cpath, sizeof cpath, "%s/m.c", m->dir);
  snprintf(sopath, sizeof sopath, "%s/m.so", m->dir);
  write_file(cpath, text.data, text.len);
  buf_free(&text);
  buf_free(&header);
  /* the generated code must compile without a single warning */
  snprintf(cmd, sizeof cmd, "cc -std=c99 -pedantic -Wall -Wextra -Werror -O1 -fPIC -shared -o %s %s -lm",
           sopath, cpath);
  if (system(cmd) != 0) fail_msg("generated C for %s did not compile cleanly: %s", name, cmd);
  m->so = dlopen(sopath, RTLD_NOW | RTLD_LOCAL);
  if (!m->so) fail_msg("dlopen: %s", dlerror());
  *(void **)&m->init = dlsym(m->so, "m_init");
  *(void **)&m->forward = dlsym(m->so, "m_forward");
  *(void **)&m->backward = dlsym(m->so, "m_backward");
  *(void **)&m->backward_batch = dlsym(m->so, "m_backward_batch");
  *(void **)&m->predict = dlsym(m->so, "m_predict");
  *(void **)&m->backward_train = dlsym(m->so, "m_backward_train");
  *(void **)&m->backward_batch_train = dlsym(m->so, "m_backward_batch_train");
  *(void **)&m->backward_inputs = dlsym(m->so, "m_backward_inputs");
  assert_non_null(m->forward);
  assert_non_null(m->backward);
  assert_non_null(m->backward_train);
  assert_non_null(m->backward_batch_train);
  assert_non_null(m->backward_inputs);
  return m;
}

Model *model_from_source(const char *name, const char *source) { return build_model(name, source, 0); }

Model *model_from_source_slots(const char *name, const char *source) { return build_model(name, source, -1); }

Model *model_from_file(const char *path) {
  char *src = read_text_file(path);
  Model *m = model_from_source(path, src);
  free(src);
  return m;
}

void model_free(Model *m) {
  char cmd[160];
  dlclose(m->so);
  snprintf(cmd, sizeof cmd, "rm -rf %s", m->dir);
  if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", m->dir);
  for (int i = 0; i < m->ndecls; i++)
    free(m->names[i]);
  free(m);
}

int64_t model_param_offset(const Model *m, const char *name) {
  for (int i = 0; i < m->ndecls; i++)
    if (!strcmp(m->names[i], name)) return m->offsets[i];
  fail_msg("no parameter %s", name);
  return -1;
}

char *compile_error(const char *source) {
  Ctx c;
  ctx_init(&c, "model.bp", source, strlen(source));
  int rc = bpc_compile(&c, NULL);
  char *msg = strdup(rc ? c.err.data : "(compiled without error)");
  ctx_free(&c);
  return msg;
}

double test_rand_normal(uint64_t *s) { return random_normal(s); }

/* Relative error with a small floor, so that gradients that are zero (a
 * dead ReLU) compare by their tiny absolute difference. */
static double rel_error(double a, double b) {
  double scale = fmax(fmax(fabs(a), fabs(b)), 1e-3);
  return fabs(a - b) / scale;
}

/* The batched gradient of the same example twice is that example's
 * gradient: this runs the backward function's accumulating path (acc 1),
 * which the single-example call does not. */
static void check_batch_agrees(Model *m, const double *p, const double *inputs, const double *g) {
  int64_t ni = m->ninputs;
  double *in2 = malloc(sizeof(double) * (size_t)(2 * ni + 1));
  double *g2 = malloc(sizeof(double) * (size_t)(m->nparams + 1));
  for (int64_t k = 0; k < ni; k++)
    in2[k] = in2[ni + k] = inputs[k];
  m->backward_batch(p, ni ? in2 : NULL, 2, g2);
  for (int64_t i = 0; i < m->nparams; i++)
    if (rel_error(g2[i], g[i]) > 1e-12)
      fail_msg("batched gradient [%lld]: %.17g, one example gives %.17g", (long long)i, g2[i], g[i]);
  free(in2);
  free(g2);
}

/* (f(v + h) - f(v - h)) / 2h for the loss f as a function of element i
 * of vary, which is the caller's copy of params or of inputs. */
static double central_difference(Model *m, const double *params, const double *inputs, double *vary,
                                 int64_t i, double h) {
  double keep = vary[i];
  vary[i] = keep + h;
  double fp = m->forward(params, inputs);
  vary[i] = keep - h;
  double fm = m->forward(params, inputs);
  vary[i] = keep;
  return (fp - fm) / (2 * h);
}

void check_gradient_fd(Model *m, const double *params, const double *inputs, int max_per_param, double tol) {
  double *p = malloc(sizeof(double) * (size_t)(m->nparams + 1));
  double *g = malloc(sizeof(double) * (size_t)(m->nparams + 1));
  memcpy(p, params, sizeof(double) * (size_t)m->nparams);
  m->backward(p, inputs, g);
  check_batch_agrees(m, p, inputs, g);
  for (int d = 0; d < m->ndecls; d++) {
    int64_t n = m->sizes[d], step = 1;
    if (max_per_param > 0 && n > max_per_param) step = n / max_per_param;
    for (int64_t k = 0; k < n; k += step) {
      int64_t i = m->offsets[d] + k;
      double fd = central_difference(m, p, inputs, p, i, 1e-5 * fmax(1.0, fabs(p[i])));
      if (rel_error(g[i], fd) > tol)
        fail_msg("d loss/d %s[%lld]: backward gives %.12g, finite differences %.12g", m->names[d],
                 (long long)k, g[i], fd);
    }
  }
  free(p);
  free(g);
}

void check_input_gradient_fd(Model *m, const double *params, const double *inputs, double tol) {
  int64_t ni = m->ninputs;
  double *x = malloc(sizeof(double) * (size_t)(ni + 1)), *dx = malloc(sizeof(double) * (size_t)(ni + 1));
  memcpy(x, inputs, sizeof(double) * (size_t)ni);
  double loss = m->backward_inputs(params, x, dx);
  if (loss != m->forward(params, x))
    fail_msg("m_backward_inputs returns the loss %.17g, m_forward %.17g", loss, m->forward(params, x));
  for (int64_t i = 0; i < ni; i++) {
    double h = 1e-5 * fmax(1.0, fabs(x[i])), fd = central_difference(m, params, x, x, i, h);
    /* beside the tolerance, the differences' own rounding: a few ulps of the loss, over h */
    double rounding = 16 * DBL_EPSILON * fmax(1, fabs(loss)) / h;
    if (fabs(dx[i] - fd) > tol * fmax(fmax(fabs(dx[i]), fabs(fd)), 1e-3) + rounding)
      fail_msg("d loss/d inputs[%lld]: m_backward_inputs gives %.12g, finite differences %.12g", (long long)i,
               dx[i], fd);
  }
  free(x);
  free(dx);
}
