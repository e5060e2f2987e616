/* lr_schedule.c — the learning rate over the training (bpc train --schedule).
 *
 * The training's progress at a step is p = epoch - 1 + batch / per_epoch
 * epochs (0 at the first step), over E = epochs in all. With warmup W
 * epochs the rate rises linearly over the first W * per_epoch steps,
 * (k + 1) / (W per_epoch) at step k (counted from 0 over the training);
 * after it, or without it, the schedule's factor:
 *   constant  1
 *   step      gamma^floor(p / step_every)   (whole decays since the start)
 *   cosine    (1 + cos(pi q)) / 2,  q = (p - W) / (E - W)
 *   linear    1 - q
 * and during warmup the warmup factor times the schedule's at p (cosine
 * and linear at p = W: 1). This file is compiled with the ordinary flags
 * (optim.c's loops are not), so the rates are the formulas' to the last
 * bit. */
#include <math.h>
#include <string.h>

#include "runtime.h"

static const char *const schedule_names[] = {"constant", "step", "cosine", "linear"};

const char *schedule_name(LrScheduleKind k) { return schedule_names[k]; }

int schedule_from_name(const char *name) {
  for (int k = 0; k < (int)(sizeof schedule_names / sizeof schedule_names[0]); k++)
    if (!strcmp(name, schedule_names[k])) return k;
  return -1;
}

double schedule_lr(const LrSchedule *s, double lr, int epoch, uint64_t batch, uint64_t per_epoch,
                   int epochs) {
  double steps = (double)per_epoch;
  double k = (double)(epoch - 1) * steps + (double)batch; /* steps before this one */
  double p = k / steps, w = s->warmup;
  double factor = 1;
  if (w > 0 && k + 1 < w * steps) factor = (k + 1) / (w * steps);
  double q = epochs > w && p > w ? (p - w) / ((double)epochs - w) : 0;
  switch (s->kind) {
  case LR_STEP: factor *= pow(s->gamma, floor(p / s->step_every)); break;
  case LR_COSINE: factor *= 0.5 * (1 + cos(M_PI * q)); break;
  case LR_LINEAR: factor *= 1 - q; break;
  default: break;
  }
  return lr * factor;
}
