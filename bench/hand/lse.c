/* logsumexp and its gradient (softmax), written by hand: one pass for the
 * max, one for the sum of exponentials, one for the gradient. */
#include <math.h>
#include <stddef.h>

double hand_objective(const double *restrict x, const double *restrict in) {
  (void)in;
  double m = x[0], s = 0;
  for (size_t i = 1; i < N; i++)
    m = x[i] > m ? x[i] : m;
  for (size_t i = 0; i < N; i++)
    s += exp(x[i] - m);
  return m + log(s);
}

double hand_gradient(const double *restrict x, const double *restrict in, double *restrict g) {
  (void)in;
  double m = x[0], s = 0;
  for (size_t i = 1; i < N; i++)
    m = x[i] > m ? x[i] : m;
  for (size_t i = 0; i < N; i++) {
    g[i] = exp(x[i] - m);
    s += g[i];
  }
  const double inv = 1 / s;
  for (size_t i = 0; i < N; i++)
    g[i] *= inv;
  return m + log(s);
}
