/* ops.c — the op table and the scalar semantics, both expanded from ops.h. */
#include <math.h>

#include "bpc.h"

const OpInfo op_info[OP_COUNT] = {
#define X(E, name, label, arity, classes, flops, value, ctext, d, ga, gb) [OP_##E] = {name, label, arity, classes, flops, ctext},
    BPC_OPS(X)
#undef X
};

double op_scalar(Op op, double A, double B, double V) {
  (void)B;
  (void)V;
  switch (op) {
#define X(E, name, label, arity, classes, flops, value, ctext, d, ga, gb)                                      \
  case OP_##E: return ((classes)&OPC_ELEMENTWISE) ? (double)(value) : NAN;
    BPC_OPS(X)
#undef X
  default: return NAN;
  }
}

const char *op_name(Op op) { return op_info[op].name; }
int op_is_elementwise(Op op) { return (op_info[op].classes & OPC_ELEMENTWISE) != 0; }
int op_is_window(Op op) { return (op_info[op].classes & OPC_WINDOW) != 0; }
int op_is_unary_elementwise(Op op) { return op_is_elementwise(op) && op_info[op].arity == 1; }
