/* optim.c — parameter updates from the mean gradient of a minibatch:
 *   sgd       p -= lr g
 *   momentum  v = mu v + g;  p -= lr v              (PyTorch's form)
 *   adam      m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *             p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 * The loops exist for double and float, in the model's own type. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "runtime.h"

void optim_init(Optimizer *o, OptKind kind, double lr, double momentum, int64_t n, size_t elem) {
  memset(o, 0, sizeof *o);
  o->kind = kind;
  o->lr = lr;
  o->momentum = momentum;
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  o->eps = 1e-8;
  o->n = n;
  o->elem = elem;
  if (kind != OPT_SGD) o->m = calloc((size_t)n + 1, elem);
  if (kind == OPT_ADAM) o->v = calloc((size_t)n + 1, elem);
}

#define DEFINE_STEP(T, S)                                                                                    \
  BPK_CLONES static void step_##S(Optimizer *o, T *restrict p, const T *restrict g, T scale) {               \
    const T lr = (T)o->lr;                                                                                   \
    int64_t n = o->n;                                                                                        \
    if (o->kind == OPT_SGD) {                                                                                \
      const T k = lr * scale;                                                                                \
      for (int64_t i = 0; i < n; i++) {                                                                      \
        p[i] -= k * g[i];                                                                                    \
      }                                                                                                      \
    } else if (o->kind == OPT_MOMENTUM) {                                                                    \
      T *restrict v = o->m;                                                                                  \
      const T mu = (T)o->momentum;                                                                           \
      for (int64_t i = 0; i < n; i++) {                                                                      \
        v[i] = mu * v[i] + g[i] * scale;                                                                     \
        p[i] -= lr * v[i];                                                                                   \
      }                                                                                                      \
    } else {                                                                                                 \
      T *restrict m = o->m, *restrict v = o->v;                                                              \
      const T b1 = (T)o->beta1, b2 = (T)o->beta2, eps = (T)o->eps;                                           \
      o->step++;                                                                                             \
      const T c1 = (T)(1 - pow(o->beta1, (double)o->step));                                                  \
      const T c2 = (T)(1 - pow(o->beta2, (double)o->step));                                                  \
      for (int64_t i = 0; i < n; i++) {                                                                      \
        const T gi = g[i] * scale;                                                                           \
        m[i] = b1 * m[i] + (1 - b1) * gi;                                                                    \
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;                                                               \
        p[i] -= lr * (m[i] / c1) / (sqrt##S(v[i] / c2) + eps);                                               \
      }                                                                                                      \
    }                                                                                                        \
  }

#define sqrtd sqrt
DEFINE_STEP(double, d)
DEFINE_STEP(float, f)

void optim_step(Optimizer *o, void *params, const void *grad, double scale) {
  if (o->elem == sizeof(float))
    step_f(o, params, grad, (float)scale);
  else
    step_d(o, params, grad, scale);
}

void optim_free(Optimizer *o) {
  free(o->m);
  free(o->v);
  memset(o, 0, sizeof *o);
}
