/* metrics.c — what `bpc train` and `bpc eval` report besides the loss:
 * accuracy where the targets are classes, mean squared or absolute error
 * when asked for, nothing where no figure would mean anything (an
 * autoencoder's output has its input's shape, but no classes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

const char *metric_name(Metric k) {
  switch (k) {
  case METRIC_ACCURACY: return "accuracy";
  case METRIC_MSE: return "mse";
  case METRIC_MAE: return "mae";
  default: return "none";
  }
}

char *metric_format(const MetricSpec *spec, double value) {
  if (spec->kind == METRIC_ACCURACY) return str_printf("%.2f%%", 100 * value);
  return str_printf("%.6g", value);
}

double output_threshold(JitModel *m, int o) { return m->info.outputs.items[o].probability ? 0.5 : 0.0; }

size_t output_class(JitModel *m, const void *outputs, size_t example, int output, double threshold) {
  const TensorInfo *out = &m->info.outputs.items[output];
  size_t off = example * (size_t)m->noutputs + (size_t)out->offset;
  if (out->rank == 0) return real_get(outputs, m->elem, off) > threshold;
  size_t best = 0;
  double bv = real_get(outputs, m->elem, off);
  for (int64_t j = 1; j < out->numel; j++) {
    double v = real_get(outputs, m->elem, off + (size_t)j);
    if (v > bv) {
      bv = v;
      best = (size_t)j;
    }
  }
  return best;
}

/* Whether every example's values of input slot i are classes: one-hot
 * rows (a vector), or 0 and 1 (a scalar). */
static int holds_classes(JitModel *m, const Dataset *d, int i) {
  const TensorInfo *in = &m->info.inputs.items[i];
  if (d->onehot && d->onehot[i]) return 1;
  int64_t k = in->numel;
  if (in->rank > 1 || d->n == 0) return 0;
  for (size_t e = 0; e < d->n; e++) {
    int ones = 0;
    for (int64_t j = 0; j < k; j++) {
      double v = real_get(d->x, d->elem, e * (size_t)d->width + (size_t)in->offset + (size_t)j);
      if (v != 0 && v != 1) return 0;
      ones += v == 1;
    }
    if (k > 1 && ones != 1) return 0;
  }
  return 1;
}

static int find_input(JitModel *m, const char *name) {
  for (int i = 0; i < m->info.inputs.len; i++)
    if (!strcmp(m->info.inputs.items[i].name, name)) return i;
  return -1;
}

int metric_spec(JitModel *m, const Dataset *d, Metric want, const char *target, MetricSpec *spec, char **err) {
  const ModelInfo *mi = &m->info;
  *spec = (MetricSpec){METRIC_NONE, -1, -1, 0, NULL};
  int target_slot = -1;
  if (target && (target_slot = find_input(m, target)) < 0) {
    *err = str_printf("--target %s: the model has no input named '%s'", target, target);
    return 1;
  }
  if (want == METRIC_NONE) return 0;
  /* the pairs of an output and an input of one shape; for the automatic
     choice only targets that hold classes */
  int pairs = 0;
  for (int o = 0; o < mi->outputs.len; o++) {
    const TensorInfo *out = &mi->outputs.items[o];
    for (int i = 0; i < mi->inputs.len; i++) {
      const TensorInfo *in = &mi->inputs.items[i];
      if (!tensor_has_shape(in, out->rank, out->dim) || (target_slot >= 0 && i != target_slot)) continue;
      int classes = holds_classes(m, d, i);
      if (want == METRIC_AUTO && !classes) continue;
      if (want == METRIC_ACCURACY && out->rank > 1) continue;
      if (pairs++ == 0) {
        spec->output = o;
        spec->input = i;
      } else {
        *err = str_printf("output '%s' and input '%s' could be compared as well as '%s' and '%s'; pick the "
                          "target with --target NAME",
                          out->name, in->name, mi->outputs.items[spec->output].name,
                          mi->inputs.items[spec->input].name);
        return 1;
      }
    }
  }
  if (pairs == 0) {
    if (want == METRIC_AUTO) return 0;
    *err = str_printf("--metric %s needs an output%s of the same shape as %s%s", metric_name(want),
                      want == METRIC_ACCURACY ? " (class scores, or one scalar)" : "",
                      target ? "the input " : "an input", target ? target : "");
    return 1;
  }
  spec->kind = want == METRIC_AUTO ? METRIC_ACCURACY : want;
  spec->threshold = output_threshold(m, spec->output);
  return 0;
}

/* The class the target at io says: its one-hot row's arg-max, or a
 * scalar 0/1 (above 0.5). */
static size_t target_class(JitModel *m, const TensorInfo *in, int64_t k, const void *inputs, size_t io) {
  size_t want = 0;
  if (k == 1 && in->rank == 0) return real_get(inputs, m->elem, io) > 0.5;
  for (int64_t j = 1; j < k; j++)
    if (real_get(inputs, m->elem, io + (size_t)j) > real_get(inputs, m->elem, io + want)) want = (size_t)j;
  return want;
}

int64_t metric_classes(JitModel *m, const MetricSpec *spec) {
  int64_t k = m->info.outputs.items[spec->output].numel;
  return k == 1 ? 2 : k;
}

/* Where example e's values of input `in` start: the inputs example by
 * example, or gathered input by input (jit_gather's layout). */
static size_t input_at(const JitModel *m, const TensorInfo *in, size_t e, int gathered) {
  return gathered ? jit_gathered_at(m, in, e) : e * (size_t)m->ninputs + (size_t)in->offset;
}

static double metric_sum_at(JitModel *m, const MetricSpec *spec, const void *inputs, int gathered,
                            const void *outputs, size_t n) {
  if (spec->kind == METRIC_NONE) return 0;
  const TensorInfo *out = &m->info.outputs.items[spec->output], *in = &m->info.inputs.items[spec->input];
  int64_t k = out->numel;
  double sum = 0;
  for (size_t e = 0; e < n; e++) {
    size_t oo = e * (size_t)m->noutputs + (size_t)out->offset, io = input_at(m, in, e, gathered);
    if (spec->kind == METRIC_ACCURACY) {
      size_t want = target_class(m, in, k, inputs, io);
      size_t got = output_class(m, outputs, e, spec->output, spec->threshold);
      if (spec->confusion) spec->confusion[(int64_t)want * metric_classes(m, spec) + (int64_t)got]++;
      sum += got == want;
      continue;
    }
    double err = 0;
    for (int64_t j = 0; j < k; j++) {
      double diff = real_get(outputs, m->elem, oo + (size_t)j) - real_get(inputs, m->elem, io + (size_t)j);
      err += spec->kind == METRIC_MSE ? diff * diff : fabs(diff);
    }
    sum += err / (double)k;
  }
  return sum;
}

double metric_sum(JitModel *m, const MetricSpec *spec, const void *inputs, const void *outputs, size_t n) {
  return metric_sum_at(m, spec, inputs, 0, outputs, n);
}

double metric_sum_gathered(JitModel *m, const MetricSpec *spec, const void *inputs, const void *outputs, size_t n) {
  return metric_sum_at(m, spec, inputs, 1, outputs, n);
}

/* Every cell right-aligned to the widest number (count or class), two
 * spaces apart; the corner is blank. */
char *confusion_format(const int64_t *counts, int64_t classes) {
  Buf b = {0};
  int w = snprintf(NULL, 0, "%lld", (long long)(classes - 1));
  for (int64_t i = 0; i < classes * classes; i++) {
    int cw = snprintf(NULL, 0, "%lld", (long long)counts[i]);
    if (cw > w) w = cw;
  }
  buf_puts(&b, "confusion matrix (rows: true class, columns: predicted class):\n");
  buf_printf(&b, "%*s", w, "");
  for (int64_t c = 0; c < classes; c++)
    buf_printf(&b, "  %*lld", w, (long long)c);
  buf_puts(&b, "\n");
  for (int64_t r = 0; r < classes; r++) {
    buf_printf(&b, "%*lld", w, (long long)r);
    for (int64_t c = 0; c < classes; c++)
      buf_printf(&b, "  %*lld", w, (long long)counts[r * classes + c]);
    buf_puts(&b, "\n");
  }
  return b.data;
}
