/* 0.5 ||s - T x||^2 and its gradient -T^T (s - T x), by hand. */
#include <stddef.h>

static double r[N];

double hand_objective(const double *restrict x, const double *restrict in) {
  const double *T = in, *s = in + (size_t)N * M;
  double f = 0;
  for (size_t i = 0; i < N; i++) {
    double t = 0;
    for (size_t j = 0; j < M; j++)
      t += T[i * M + j] * x[j];
    double d = s[i] - t;
    f += d * d;
  }
  return 0.5 * f;
}

double hand_gradient(const double *restrict x, const double *restrict in, double *restrict g) {
  const double *T = in, *s = in + (size_t)N * M;
  double f = 0;
  for (size_t j = 0; j < M; j++)
    g[j] = 0;
  for (size_t i = 0; i < N; i++) {
    double t = 0;
    for (size_t j = 0; j < M; j++)
      t += T[i * M + j] * x[j];
    r[i] = s[i] - t;
    f += r[i] * r[i];
  }
  for (size_t i = 0; i < N; i++)
    for (size_t j = 0; j < M; j++)
      g[j] -= T[i * M + j] * r[i];
  return 0.5 * f;
}
