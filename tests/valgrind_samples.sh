#!/usr/bin/env bash
# valgrind_samples.sh — the C that bpc emits for every sample, compiled
# with a small driver (init, forward, backward, batch backward, predict)
# and run under valgrind: no invalid access, no uninitialised value.
# Usage: tests/valgrind_samples.sh BPC
set -u
BPC=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
for f in "$ROOT"/samples/*.bp; do
  b=$(basename "$f" .bp)
  "$BPC" "$f" -o "$T/m.c" --prefix m || { fail=$((fail + 1)); continue; }
  cat >"$T/main.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include "m.h"
int main(void) {
  bp_real *p = malloc(sizeof(bp_real) * (M_NUM_PARAMS + 1)), *g = malloc(sizeof(bp_real) * (M_NUM_PARAMS + 1));
  bp_real *x = malloc(sizeof(bp_real) * (2 * M_NUM_INPUTS + 1)), *o = malloc(sizeof(bp_real) * (M_NUM_OUTPUTS + 1));
  for (int i = 0; i < 2 * M_NUM_INPUTS; i++) x[i] = (bp_real)((i * 37 % 11) - 5) / 7;
  m_init(p, 42);
#if M_WORKSPACE
  bp_real *ws = malloc(sizeof(bp_real) * (m_workspace_size() + 1));
  double s = m_forward_ws(p, x, ws) + m_backward_ws(p, x, g, ws) + m_backward_batch_ws(p, x, 2, g, ws);
  m_predict_ws(p, x, o, ws);
  free(ws);
#else
  double s = m_forward(p, x) + m_backward(p, x, g) + m_backward_batch(p, x, 2, g);
  m_predict(p, x, o);
#endif
  for (int i = 0; i < M_NUM_PARAMS; i++) s += g[i];
  for (int i = 0; i < M_NUM_OUTPUTS; i++) s += o[i];
  printf("%g\n", s);
  free(p); free(g); free(x); free(o);
  return 0;
}
C
  if cc -std=c99 -O0 -g -o "$T/m" "$T/main.c" "$T/m.c" -I"$T" -lm &&
    valgrind -q --error-exitcode=1 --leak-check=full "$T/m" >/dev/null; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "valgrind FAIL: $b"
  fi
done
echo "valgrind: $pass passed, $fail failed"
test "$fail" -eq 0
