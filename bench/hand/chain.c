/* The deep scalar chain of gen_models.py, by hand: a forward loop that
 * keeps every value, and a reverse loop that sends each adjoint back.
 * Parameters: w[100], x0. NSTMT statements after the first three. */
#include <math.h>
#include <stddef.h>
#include <string.h>

enum { K = 100, LEN = NSTMT + 3 };
static double v[LEN], dv[LEN];

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

static void forward(const double *restrict w, double x0) {
  v[0] = x0;
  v[1] = tanh(x0);
  v[2] = sigmoid(x0);
  for (int i = 3; i < LEN; i++) {
    const double wk = w[i % K];
    switch (i % 4) {
    case 0: v[i] = sigmoid(v[i - 1] * wk + 0.1); break;
    case 1: v[i] = tanh(v[i - 1] + v[i - 2] * wk); break;
    case 2: v[i] = v[i - 1] * v[i - 2] + wk; break;
    default: v[i] = v[i - 1] + 0.5 * v[i - 3]; break;
    }
  }
}

double hand_objective(const double *restrict p, const double *restrict in) {
  (void)in;
  forward(p, p[K]);
  return v[LEN - 1];
}

double hand_gradient(const double *restrict p, const double *restrict in, double *restrict g) {
  (void)in;
  const double *w = p;
  forward(w, p[K]);
  memset(dv, 0, sizeof dv);
  memset(g, 0, sizeof(double) * (K + 1));
  dv[LEN - 1] = 1;
  for (int i = LEN - 1; i >= 3; i--) {
    const double d = dv[i], wk = w[i % K];
    switch (i % 4) {
    case 0: {
      const double s = d * v[i] * (1 - v[i]);
      dv[i - 1] += s * wk;
      g[i % K] += s * v[i - 1];
      break;
    }
    case 1: {
      const double s = d * (1 - v[i] * v[i]);
      dv[i - 1] += s;
      dv[i - 2] += s * wk;
      g[i % K] += s * v[i - 2];
      break;
    }
    case 2:
      dv[i - 1] += d * v[i - 2];
      dv[i - 2] += d * v[i - 1];
      g[i % K] += d;
      break;
    default:
      dv[i - 1] += d;
      dv[i - 3] += 0.5 * d;
      break;
    }
  }
  g[K] = dv[0] + dv[1] * (1 - v[1] * v[1]) + dv[2] * v[2] * (1 - v[2]);
  return v[LEN - 1];
}
