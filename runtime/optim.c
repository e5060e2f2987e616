/* optim.c — parameter updates from the mean gradient g of a minibatch, as
 * PyTorch defines them (torch.optim), and the learning-rate schedules.
 *
 *   sgd       p -= lr g
 *   momentum  v = mu v + g;  p -= lr v
 *   adam      m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *             p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 *   rmsprop   v = a v + (1-a) g^2;  p -= lr g / (sqrt(v) + eps)
 *   adagrad   v += g^2;  p -= lr g / (sqrt(v) + eps)
 *
 * Clipping (clip_norm c > 0) comes first: when |g| > c (the L2 norm over
 * all parameters) g becomes g c / |g|, as torch.nn.utils.clip_grad_norm_
 * does before a step (without its 1e-6). Weight decay wd is then, for adam,
 * decoupled (AdamW): p -= lr wd p beside the update, with p before it; for
 * the others L2 regularisation, g += wd p, as their weight_decay does.
 * The loops exist for double and float, in the model's own type. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "runtime.h"

static const char *const optim_names[] = {"sgd", "momentum", "adam", "rmsprop", "adagrad"};

const char *optim_name(OptKind k) { return optim_names[k]; }

int optim_from_name(const char *name) {
  for (int k = 0; k < (int)(sizeof optim_names / sizeof optim_names[0]); k++)
    if (!strcmp(name, optim_names[k])) return k;
  return -1;
}

int optim_uses_array(OptKind k, int which) {
  if (which == 0) return k == OPT_MOMENTUM || k == OPT_ADAM;
  return k == OPT_ADAM || k == OPT_RMSPROP || k == OPT_ADAGRAD;
}

void optim_init(Optimizer *o, OptKind kind, double lr, double momentum, int64_t n, size_t elem) {
  memset(o, 0, sizeof *o);
  o->kind = kind;
  o->lr = lr;
  o->momentum = momentum;
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  o->alpha = 0.99;
  o->eps = kind == OPT_ADAGRAD ? 1e-10 : 1e-8;
  o->n = n;
  o->elem = elem;
  if (optim_uses_array(kind, 0)) o->m = calloc_aligned((size_t)n + 1, elem);
  if (optim_uses_array(kind, 1)) o->v = calloc_aligned((size_t)n + 1, elem);
}

/* The squared norm of the gradient grad * scale, summed in double. */
#define DEFINE_SQNORM(T, S)                                                                                  \
  BPK_CLONES static double sqnorm_##S(const T *restrict g, int64_t n, double scale) {                        \
    double sq = 0;                                                                                           \
    for (int64_t i = 0; i < n; i++) {                                                                        \
      const double gi = (double)g[i] * scale;                                                                \
      sq += gi * gi;                                                                                         \
    }                                                                                                        \
    return sq;                                                                                               \
  }
DEFINE_SQNORM(double, d)
DEFINE_SQNORM(float, f)

/* The factor clipping puts on the gradient grad * scale: 1, or c / |g|. */
static double clip_factor(const Optimizer *o, const void *grad, double scale) {
  if (!(o->clip_norm > 0)) return 1;
  double norm = sqrt(o->elem == sizeof(float) ? sqnorm_f(grad, o->n, scale) : sqnorm_d(grad, o->n, scale));
  return norm > o->clip_norm ? o->clip_norm / norm : 1;
}

#define DEFINE_STEP(T, S)                                                                                    \
  BPK_CLONES static void step_##S(const Optimizer *o, T *restrict p, const T *restrict g, T scale, T lr,     \
                                  int64_t from, int64_t to) {                                                \
    const T wd = (T)o->weight_decay;                                                                         \
    if (o->kind == OPT_SGD) {                                                                                \
      for (int64_t i = from; i < to; i++) {                                                                  \
        const T gi = g[i] * scale + wd * p[i];                                                               \
        p[i] -= lr * gi;                                                                                     \
      }                                                                                                      \
    } else if (o->kind == OPT_MOMENTUM) {                                                                    \
      T *restrict v = o->m;                                                                                  \
      const T mu = (T)o->momentum;                                                                           \
      for (int64_t i = from; i < to; i++) {                                                                  \
        v[i] = mu * v[i] + g[i] * scale + wd * p[i];                                                         \
        p[i] -= lr * v[i];                                                                                   \
      }                                                                                                      \
    } else if (o->kind == OPT_ADAM) {                                                                        \
      T *restrict m = o->m, *restrict v = o->v;                                                              \
      const T b1 = (T)o->beta1, b2 = (T)o->beta2, eps = (T)o->eps;                                           \
      const T c1 = (T)(1 - pow(o->beta1, (double)o->step));                                                  \
      const T c2 = (T)(1 - pow(o->beta2, (double)o->step));                                                  \
      for (int64_t i = from; i < to; i++) {                                                                  \
        const T gi = g[i] * scale;                                                                           \
        m[i] = b1 * m[i] + (1 - b1) * gi;                                                                    \
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;                                                               \
        p[i] -= lr * ((m[i] / c1) / (sqrt##S(v[i] / c2) + eps) + wd * p[i]);                                 \
      }                                                                                                      \
    } else {                                                                                                 \
      T *restrict v = o->v;                                                                                  \
      const T a = (T)o->alpha, eps = (T)o->eps;                                                              \
      const int rms = o->kind == OPT_RMSPROP;                                                                \
      for (int64_t i = from; i < to; i++) {                                                                  \
        const T gi = g[i] * scale + wd * p[i];                                                               \
        v[i] = rms ? a * v[i] + (1 - a) * gi * gi : v[i] + gi * gi;                                          \
        p[i] -= lr * gi / (sqrt##S(v[i]) + eps);                                                             \
      }                                                                                                      \
    }                                                                                                        \
  }

#define sqrtd sqrt
DEFINE_STEP(double, d)
DEFINE_STEP(float, f)

double optim_begin_step(Optimizer *o, const void *grad, double scale) {
  o->step++;
  return scale * clip_factor(o, grad, scale);
}

void optim_apply(const Optimizer *o, void *params, const void *grad, double scale, double lr, int64_t from,
                 int64_t to) {
  if (o->elem == sizeof(float))
    step_f(o, params, grad, (float)scale, (float)lr, from, to);
  else
    step_d(o, params, grad, scale, lr, from, to);
}

void optim_step(Optimizer *o, void *params, const void *grad, double scale, double lr) {
  optim_apply(o, params, grad, optim_begin_step(o, grad, scale), lr, 0, o->n);
}

void optim_free(Optimizer *o) {
  free(o->m);
  free(o->v);
  memset(o, 0, sizeof *o);
}
