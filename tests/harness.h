/* harness.h — test helpers: compile .bp source through the library, build the
 * emitted C with the system compiler, and call it through dlopen. */
#ifndef BPC_TEST_HARNESS_H
#define BPC_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "bpc.h"

typedef struct Model {
  void *so;
  int64_t nparams, ninputs, noutputs;
  void (*init)(double *params, uint64_t seed);
  double (*forward)(const double *params, const double *inputs);
  double (*backward)(const double *params, const double *inputs, double *grad);
  double (*backward_batch)(const double *params, const double *inputs, size_t n, double *grad);
  void (*predict)(const double *params, const double *inputs, double *outputs);
  double (*backward_train)(const double *params, const double *inputs, double *grad, uint64_t seed);
  double (*backward_batch_train)(const double *params, const double *inputs, size_t n, double *grad,
                                 uint64_t seed);
  double (*backward_inputs)(const double *params, const double *inputs, double *dinputs);
  char dir[64];
  /* per parameter: name, offset, size */
  int ndecls;
  char *names[64];
  int64_t offsets[64], sizes[64];
} Model;

/* Compiles source (or fails the test with the compiler's message). */
Model *model_from_source(const char *name, const char *source);
/* The same with every scalar in emit_c's slot array and every function cut
 * into parts (the form of very long models). */
Model *model_from_source_slots(const char *name, const char *source);
Model *model_from_file(const char *path);
void model_free(Model *m);
int64_t model_param_offset(const Model *m, const char *name);

/* Compiles source expecting a user error; returns the message (malloc'd). */
char *compile_error(const char *source);

/* Checks every gradient element (or up to max_per_param of each tensor)
 * against central differences at the given point. Fails the test with the
 * parameter and element on a relative error above tol. */
void check_gradient_fd(Model *m, const double *params, const double *inputs, int max_per_param, double tol);
/* The same for m_backward_inputs: dloss/dinputs against central
 * differences of m_forward in each input element, and its loss. */
void check_input_gradient_fd(Model *m, const double *params, const double *inputs, double tol);

/* Deterministic pseudo-random numbers for test points. */
double test_rand_normal(uint64_t *state);
char *read_text_file(const char *path);

#endif
