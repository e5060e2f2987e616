/* fdcheck.c — the numbers behind `bpc check`: a derivative from finite
 * differences together with an estimate of its own error, and the verdict
 * on a compiled gradient measured against both.
 *
 * The estimate. Central differences D(s) = (f(x+s) - f(x-s)) / 2s at the
 * steps h, h/2 and h/4 err by c2 s^2 + c4 s^4 + ... for a smooth f, so
 * Richardson extrapolation cancels the leading terms: R1 = D(h/2) +
 * (D(h/2) - D(h)) / 3 and R2 = D(h/4) + (D(h/4) - D(h/2)) / 3 err by
 * O(s^4), and R = R2 + (R2 - R1) / 15 by O(h^6). R is the estimate;
 * |R2 - R1|, which is about the error of R1 and so far larger than R's,
 * bounds its truncation error. To that come the rounding of the seven
 * values of f (16 ulps of the largest number computing f passes through,
 * over coefficients that sum to 6.6 / h), and what a kink within the step
 * could do.
 *
 * Kinks. A kink (relu at 0, a tie in max) has one-sided slopes that
 * differ. The gap between them, S(s) = (f(x+s) - f(x)) / s - (f(x) -
 * f(x-s)) / s, is a s + b s^3 + O(s^5) where f is smooth (a = f'', b =
 * f'''' / 12), so Q = S(h) - 10 S(h/2) + 16 S(h/4) cancels both terms and
 * leaves rounding. A kink with slope jump J at distance t < h from x adds
 * J (1 - t/s) to S(s) for the steps s > t: Q is 7 J at t = 0, where R is
 * off by J/2, the worst case. Where Q happens to vanish (t = 9h/19) the
 * kink moves R1 and R2 apart by 7 times what it moves R. So |R2 - R1| +
 * Q / 7 (Q less what rounding explains) bounds the error of R for one
 * kink within the step, with a margin of 2 at least; Q / 7 is the kink's
 * share of the bound. */
#include <float.h>
#include <math.h>

#include "runtime.h"

/* Rounding in one value of f, in units of DBL_EPSILON times the largest
 * number its computation passes through: a loss is a long chain of
 * operations, and nearby points round differently. */
enum { FD_ROUNDING_ULPS = 16 };

double fd_step(double x) {
  double a = isfinite(x) ? fmax(fabs(x), 1) : 1;
  return ldexp(1, ilogb(a) - 10);
}

FdEstimate fd_estimate(FdFunction f, void *ctx, double x, double fx, double magnitude, double h) {
  double d[3], gap[3], fmax_abs = fmax(fabs(fx), magnitude);
  for (int j = 0; j < 3; j++) {
    double s = ldexp(h, -j), xp = x + s, xm = x - s;
    double fp = f(ctx, xp), fm = f(ctx, xm);
    fmax_abs = fmax(fmax_abs, fmax(fabs(fp), fabs(fm)));
    d[j] = (fp - fm) / (xp - xm);
    gap[j] = (fp - fx) / (xp - x) - (fx - fm) / (x - xm);
  }
  double r1 = d[1] + (d[1] - d[0]) / 3, r2 = d[2] + (d[2] - d[1]) / 3;
  FdEstimate e = {.deriv = r2 + (r2 - r1) / 15, .step = h};
  double delta = FD_ROUNDING_ULPS * DBL_EPSILON * fmax_abs;
  /* the |coefficients| of the seven values of f: in R they sum to
   * (2 * 128 + 2 * 20 + 1) / 45 / h, in Q to (4 + 10 * 8 + 16 * 16) / h */
  e.rounding = 297.0 / 45 * delta / h;
  double q = fabs(gap[0] - 10 * gap[1] + 16 * gap[2]);
  e.kink = fmax(0, q - 340 * delta / h) / 7;
  e.err = fabs(r2 - r1) + e.rounding + e.kink;
  return e;
}

/* The scale of a relative error: the larger of the two derivatives, and
 * never below 1e-3, so near-zero derivatives are compared absolutely. */
static double fd_scale(double grad, double deriv) { return fmax(fmax(fabs(grad), fabs(deriv)), 1e-3); }

/* NaN on either side counts as agreement: there is nothing to compare. */
static int fd_agrees(double grad, const FdEstimate *e, double tol) {
  return !(fabs(grad - e->deriv) > tol * fd_scale(grad, e->deriv) + e->err);
}

FdCheck fd_check(FdFunction f, void *ctx, double x, double fx, double magnitude, double grad, double tol) {
  FdCheck c = {0};
  FdEstimate best = {0};
  int kink_every_time = 1;
  double h = fd_step(x);
  for (int attempt = 0; attempt < 3; attempt++, h /= 16) {
    FdEstimate e = fd_estimate(f, ctx, x, fx, magnitude, h);
    c.evaluations += 6;
    if (attempt == 0 || e.err < best.err) best = e;
    if (!(e.kink > e.err - e.kink)) kink_every_time = 0;
    /* conclusive: the estimate's own error is within the tolerance */
    if (e.err <= tol * fd_scale(grad, e.deriv)) break;
    /* rounding dominates: a smaller step would only make it worse */
    if (e.rounding >= e.err - e.rounding) break;
  }
  if (best.err > tol * fd_scale(grad, best.deriv) && kink_every_time)
    c.verdict = FD_KINK; /* a kink within every step tried: no derivative to compare with */
  else if (fd_agrees(grad, &best, tol))
    c.verdict = FD_AGREE;
  else {
    /* Confirmed with a step 16 times smaller before it counts: two kinks
     * within the step can hide from the bound (their gaps cancel). The
     * gradient agrees after all only if the two estimates contradict each
     * other's bounds, the sign that the larger step was misled. */
    FdEstimate e = fd_estimate(f, ctx, x, fx, magnitude, best.step / 16);
    c.evaluations += 6;
    if (fabs(e.deriv - best.deriv) > e.err + best.err && fd_agrees(grad, &e, tol)) {
      best = e;
      c.verdict = FD_AGREE;
    } else
      c.verdict = FD_DISAGREE;
  }
  double scale = fd_scale(grad, best.deriv);
  c.est = best;
  c.abs_err = fabs(grad - best.deriv);
  c.rel_err = c.abs_err / scale;
  c.rel_bound = best.err / scale;
  return c;
}
