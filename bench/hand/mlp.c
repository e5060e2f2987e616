/* The 784-128-10 ReLU MLP with softmax cross-entropy, by hand: forward,
 * then backward with the usual layer formulas (dscores = softmax - label,
 * dW2 = h^T dscores, dh = dscores W2^T masked by the ReLU, dW1 = x^T dh).
 * Parameters W1[784,128], b1[128], W2[128,10], b2[10]; inputs image[784],
 * label[10]. BATCH examples per call (1, or 64 for the minibatch form). */
#include <math.h>
#include <stddef.h>
#include <string.h>

enum { IN = 784, H = 128, C = 10, P = IN * H + H + H * C + C, X = IN + C };

static double hidden[BATCH][H], scores[BATCH][C], dscores[BATCH][C], dhidden[BATCH][H];

static double forward(const double *restrict p, const double *restrict in) {
  const double *W1 = p, *b1 = p + IN * H, *W2 = b1 + H, *b2 = W2 + H * C;
  double loss = 0;
  for (int e = 0; e < BATCH; e++) {
    const double *x = in + e * X, *t = x + IN;
    for (int j = 0; j < H; j++)
      hidden[e][j] = b1[j];
    for (int i = 0; i < IN; i++) {
      const double xi = x[i];
      for (int j = 0; j < H; j++)
        hidden[e][j] += xi * W1[i * H + j];
    }
    for (int j = 0; j < H; j++)
      hidden[e][j] = hidden[e][j] > 0 ? hidden[e][j] : 0;
    for (int k = 0; k < C; k++)
      scores[e][k] = b2[k];
    for (int j = 0; j < H; j++)
      for (int k = 0; k < C; k++)
        scores[e][k] += hidden[e][j] * W2[j * C + k];
    double m = scores[e][0], s = 0;
    for (int k = 1; k < C; k++)
      m = scores[e][k] > m ? scores[e][k] : m;
    for (int k = 0; k < C; k++)
      s += exp(scores[e][k] - m);
    double lse = m + log(s);
    for (int k = 0; k < C; k++) {
      loss += t[k] * (lse - scores[e][k]);
      dscores[e][k] = exp(scores[e][k] - lse);
    }
  }
  return loss;
}

double hand_objective(const double *restrict p, const double *restrict in) { return forward(p, in) / BATCH; }

double hand_gradient(const double *restrict p, const double *restrict in, double *restrict g) {
  const double *W2 = p + IN * H + H;
  double *gW1 = g, *gb1 = g + IN * H, *gW2 = gb1 + H, *gb2 = gW2 + H * C;
  double loss = forward(p, in);
  memset(g, 0, sizeof(double) * P);
  for (int e = 0; e < BATCH; e++) {
    const double *x = in + e * X, *t = x + IN;
    double tsum = 0;
    for (int k = 0; k < C; k++)
      tsum += t[k];
    for (int k = 0; k < C; k++) {
      dscores[e][k] = dscores[e][k] * tsum - t[k];
      gb2[k] += dscores[e][k];
    }
    for (int j = 0; j < H; j++) {
      double d = 0;
      for (int k = 0; k < C; k++) {
        gW2[j * C + k] += hidden[e][j] * dscores[e][k];
        d += W2[j * C + k] * dscores[e][k];
      }
      dhidden[e][j] = hidden[e][j] > 0 ? d : 0;
      gb1[j] += dhidden[e][j];
    }
    for (int i = 0; i < IN; i++) {
      const double xi = x[i];
      if (xi == 0)
        continue;
      for (int j = 0; j < H; j++)
        gW1[i * H + j] += xi * dhidden[e][j];
    }
  }
  if (BATCH > 1)
    for (int i = 0; i < P; i++)
      g[i] /= BATCH;
  return loss / BATCH;
}
