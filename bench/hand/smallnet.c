/* 100 layers h = tanh(h W + b) of width 4 and loss sum(h * h), by hand.
 * Parameters per layer: W[4,4] then b[4]; input x[4]. */
#include <math.h>
#include <stddef.h>
#include <string.h>

enum { L = 100, D = 4, PER = D * D + D };
static double h[L + 1][D];

static void forward(const double *restrict p, const double *restrict x) {
  memcpy(h[0], x, sizeof h[0]);
  for (int k = 0; k < L; k++) {
    const double *W = p + k * PER, *b = W + D * D;
    for (int j = 0; j < D; j++) {
      double s = b[j];
      for (int i = 0; i < D; i++)
        s += h[k][i] * W[i * D + j];
      h[k + 1][j] = tanh(s);
    }
  }
}

double hand_objective(const double *restrict p, const double *restrict x) {
  forward(p, x);
  double f = 0;
  for (int j = 0; j < D; j++)
    f += h[L][j] * h[L][j];
  return f;
}

double hand_gradient(const double *restrict p, const double *restrict x, double *restrict g) {
  forward(p, x);
  double d[D], f = 0;
  for (int j = 0; j < D; j++) {
    f += h[L][j] * h[L][j];
    d[j] = 2 * h[L][j];
  }
  for (int k = L - 1; k >= 0; k--) {
    const double *W = p + k * PER;
    double *gW = g + k * PER, *gb = gW + D * D, da[D], dprev[D];
    for (int j = 0; j < D; j++) {
      da[j] = d[j] * (1 - h[k + 1][j] * h[k + 1][j]);
      gb[j] = da[j];
    }
    for (int i = 0; i < D; i++) {
      double s = 0;
      for (int j = 0; j < D; j++) {
        gW[i * D + j] = h[k][i] * da[j];
        s += W[i * D + j] * da[j];
      }
      dprev[i] = s;
    }
    memcpy(d, dprev, sizeof d);
  }
  return f;
}
