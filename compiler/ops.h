/* ops.h — every IR op, defined once. Expanded into the Op enum (bpc.h) and
 * the op table (ops.c) that the stages read: names, classes, flop costs,
 * scalar semantics (constant folding and the interpreter), the C text the
 * emitter writes, and the labels of --emit ir, graphs, explain and trace.
 *
 * X(ENUM, name, label, arity, classes, flops, value, c, d, ga, gb)
 *   name    the IR text (--emit ir) and C comment word
 *   label   what a drawing or formula shows ("+", "@", "sigmoid")
 *   arity   arguments (0 for leaves, -1 for any number)
 *   classes OPC_* flags below
 *   flops   per output element (products and reductions count elsewhere)
 *   value   the scalar semantics of an elementwise op, in A, B (its
 *           arguments) and V (the node's constant): one C expression
 *   c       the C the emitter writes for it: %a %b its operands, %v the
 *           constant, %f the float suffix of a <math.h> function ("f" or
 *           ""), %p the model's prefix (helpers such as %p_sigmoid), %m
 *           dropout's mask factor (" * m__dropout_mask(...)" in a function
 *           that trains, nothing elsewhere: emit_c.c)
 *   d       the local derivative dy/dx of a one-argument elementwise op
 *           y = f(x), built from Y (the node), X0 (its argument), K(v)
 *           (a constant) and the constructors of autodiff.c (MUL, SUB,
 *           DIV, NEG, UN(OP, a), BIN(OP, a, b)); 0 for the other ops
 *   ga, gb  for a two-argument elementwise op y = f(a, b): what the backward
 *           sweep sends to a and to b, given G (y's gradient), in A, B, Y
 *           and the same constructors (the shapes are unbroadcast after);
 *           0 for the other ops, and for those no gradient flows through
 *
 * Adding a one-argument elementwise function: one X line here with the
 * class OPC_FUNCTION (the language then has it as name(x)), and tests
 * (docs/internals.md lists the steps). */
#ifndef BPC_OPS_H
#define BPC_OPS_H

enum {
  OPC_LEAF = 1,          /* constants, parameters, inputs */
  OPC_ELEMENTWISE = 2,   /* element i of the result reads element i of each (broadcast) argument */
  OPC_COMMUTATIVE = 4,   /* f(a, b) = f(b, a): hash-consing orders the arguments */
  OPC_NO_GRADIENT = 8,   /* indicators and masks: piecewise constant, no gradient flows through */
  OPC_REDUCTION = 16,    /* fewer elements out than in */
  OPC_SHAPE = 32,        /* moves or copies elements, computes nothing */
  OPC_PRODUCT = 64,      /* matrix and vector products */
  OPC_FUNCTION = 128,    /* a one-argument function of the language, called by its name: exp(x) */
  OPC_WINDOW = 256,      /* a window slid over an image: convolution, pooling and their adjoints (window.c) */
  OPC_RANDOM = 512,      /* random while training (dropout's mask, drawn from a seed), the identity otherwise:
                            never folded, whatever its argument */
};

#define BPC_OPS(X)                                                                                           \
  X(CONST, "const", "const", 0, OPC_LEAF, 0, 0, "", 0, 0, 0)                                                          \
  X(PARAM, "param", "param", 0, OPC_LEAF, 0, 0, "", 0, 0, 0)                                                          \
  X(INPUT, "input", "input", 0, OPC_LEAF, 0, 0, "", 0, 0, 0)                                                          \
  /* G, the gradient arriving at an op, as a symbol: explain shows what an op sends back in it */         \
  X(GSYM, "gradient", "G", 0, OPC_LEAF, 0, 0, "", 0, 0, 0)                                                            \
  /* elementwise, one argument */                                                                            \
  X(NEG, "neg", "neg", 1, OPC_ELEMENTWISE, 1, -(A), "-%a", K(-1), 0, 0)                                                   \
  X(EXP, "exp", "exp", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, exp(A), "exp%f(%a)", Y, 0, 0)                                           \
  X(LOG, "log", "log", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, log(A), "log%f(%a)", DIV(K(1), X0), 0, 0)                                           \
  X(SQRT, "sqrt", "sqrt", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, sqrt(A), "sqrt%f(%a)", DIV(K(0.5), Y), 0, 0)                                      \
  X(ABS, "abs", "abs", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, fabs(A), "fabs%f(%a)", UN(SIGN, X0), 0, 0)                                         \
  X(SIN, "sin", "sin", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, sin(A), "sin%f(%a)", UN(COS, X0), 0, 0)                                           \
  X(COS, "cos", "cos", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, cos(A), "cos%f(%a)", NEG(UN(SIN, X0)), 0, 0)                                           \
  X(TANH, "tanh", "tanh", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, tanh(A), "tanh%f(%a)", SUB(K(1), MUL(Y, Y)), 0, 0)                                      \
  X(SIGMOID, "sigmoid", "sigmoid", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, 1 / (1 + exp(-(A))), "%p_sigmoid(%a)", MUL(Y, SUB(K(1), Y)), 0, 0)             \
  X(RELU, "relu", "relu", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, (A) > 0 ? (A) : 0, "(%a > 0 ? %a : 0)", BIN(GT, Y, K(0)), 0, 0)                     \
  X(SOFTPLUS, "softplus", "softplus", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, (A) > 0 ? (A) + log1p(exp(-(A))) : log1p(exp(A)), \
    "%p_softplus(%a)", UN(SIGMOID, X0), 0, 0)                                                                                       \
  X(SQUARE, "square", "square", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, (A) * (A), "%a * %a", MUL(K(2), X0), 0, 0)          \
  X(LOG1P, "log1p", "log1p", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, log1p(A), "log1p%f(%a)", DIV(K(1), ADD(K(1), X0)), 0, 0) \
  X(EXPM1, "expm1", "expm1", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, expm1(A), "expm1%f(%a)", ADD(Y, K(1)), 0, 0)            \
  X(ERF, "erf", "erf", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, erf(A), "erf%f(%a)",                                      \
    MUL(K(1.1283791670955126), UN(EXP, NEG(MUL(X0, X0)))), 0, 0) /* 2/sqrt(pi) exp(-x^2) */                          \
  X(ELU, "elu", "elu", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, (A) > 0 ? (A) : expm1(A), "(%a > 0 ? %a : expm1%f(%a))",  \
    ADD(BIN(GT, X0, K(0)), MUL(SUB(K(1), BIN(GT, X0, K(0))), ADD(Y, K(1)))), 0, 0) /* 1 above 0, e^x at and below */ \
  X(GELU, "gelu", "gelu", 1, OPC_ELEMENTWISE | OPC_FUNCTION, 1, 0.5 * (A) * (1 + erf((A) * M_SQRT1_2)), "%p_gelu(%a)",  \
    GELU_DERIVATIVE, 0, 0) /* x Phi(x), PyTorch's default (erf) form */                                              \
  X(POWC, "pow", "^", 1, OPC_ELEMENTWISE, 1, pow(A, V), "pow%f(%a, %v)", POWC_DERIVATIVE, 0, 0)                                     \
  X(LEAKY_RELU, "leaky_relu", "leaky_relu", 1, OPC_ELEMENTWISE, 1, (A) > 0 ? (A) : (V) * (A), "(%a > 0 ? %a : %v * %a)", \
    ADD(MUL(BIN(GT, X0, K(0)), K(1 - Y->value)), K(Y->value)), 0, 0) /* 1 above 0, the slope V at and below */         \
  /* dropout(x, p): value p, attr.slot which dropout of the model it is (its mask's stream). Training
     keeps each element with probability 1 - p, scaled by 1 / (1 - p), and zeroes the rest (inverted
     dropout, as PyTorch); everything else (eval, predict, grad, check, the interpreter) sees the
     identity, its value column. Its derivative is that mask, dropout of ones: the same site, p and
     element index, so the same mask as the forward pass. autodiff sends back dropout(G), G times it */ \
  X(DROPOUT, "dropout", "dropout", 1, OPC_ELEMENTWISE | OPC_RANDOM, 1, (A), "%a%m", DROPOUT_DERIVATIVE, 0, 0)       \
  X(SIGN, "sign", "sign", 1, OPC_ELEMENTWISE | OPC_NO_GRADIENT, 1, ((A) > 0) - ((A) < 0),                    \
    "(bp_real)((%a > 0) - (%a < 0))", K(0), 0, 0)                                                                        \
  /* elementwise, two arguments, broadcasting */                                                             \
  X(ADD, "add", "+", 2, OPC_ELEMENTWISE | OPC_COMMUTATIVE, 1, (A) + (B), "%a + %b", 0, G, G)                          \
  X(SUB, "sub", "-", 2, OPC_ELEMENTWISE, 1, (A) - (B), "%a - %b", 0, G, NEG(G))                                            \
  X(MUL, "mul", "*", 2, OPC_ELEMENTWISE | OPC_COMMUTATIVE, 1, (A) * (B), "%a * %b", 0, MUL(G, B), MUL(G, A))                          \
  X(DIV, "div", "/", 2, OPC_ELEMENTWISE, 1, (A) / (B), "%a / %b", 0, DIV(G, B), NEG(DIV(MUL(G, Y), B)))                                            \
  X(MAX2, "max", "max", 2, OPC_ELEMENTWISE | OPC_COMMUTATIVE, 1, (A) > (B) ? (A) : (B), "(%a > %b ? %a : %b)", 0, MUL(G, BIN(GT, A, B)), MUL(G, BIN(LT, A, B))) \
  X(MIN2, "min", "min", 2, OPC_ELEMENTWISE | OPC_COMMUTATIVE, 1, (A) < (B) ? (A) : (B), "(%a < %b ? %a : %b)", 0, MUL(G, BIN(LT, A, B)), MUL(G, BIN(GT, A, B))) \
  X(GT, "gt", ">", 2, OPC_ELEMENTWISE | OPC_NO_GRADIENT, 1, (A) > (B), "(bp_real)(%a > %b)", 0, 0, 0)                 \
  X(LT, "lt", "<", 2, OPC_ELEMENTWISE | OPC_NO_GRADIENT, 1, (A) < (B), "(bp_real)(%a < %b)", 0, 0, 0)                 \
  /* reductions (flops: per input element, counted in node_flops) */                                         \
  X(SUM, "sum", "sum", 1, OPC_REDUCTION, 0, 0, "", 0, 0, 0)                                                           \
  X(SUMAX, "sum_axis", "sum", 1, OPC_REDUCTION, 0, 0, "", 0, 0, 0)                                                    \
  X(MAXALL, "max_all", "max", 1, OPC_REDUCTION, 0, 0, "", 0, 0, 0)                                                    \
  X(MINALL, "min_all", "min", 1, OPC_REDUCTION, 0, 0, "", 0, 0, 0)                                                    \
  X(LSE, "logsumexp", "logsumexp", 1, OPC_REDUCTION, 0, 0, "", 0, 0, 0)                                               \
  X(ARGMAXMASK, "onehot_argmax", "onehot_argmax", 2, OPC_NO_GRADIENT, 0, 0, "", 0, 0, 0)                              \
  X(ARGMINMASK, "onehot_argmin", "onehot_argmin", 2, OPC_NO_GRADIENT, 0, 0, "", 0, 0, 0)                              \
  /* the same row by row: over the last axis; args[1] holds one value per row */                             \
  X(MAXROW, "max_rows", "max", 1, OPC_REDUCTION, 0, 0, "", 0, 0, 0)                                                    \
  X(MINROW, "min_rows", "min", 1, OPC_REDUCTION, 0, 0, "", 0, 0, 0)                                                    \
  X(ARGMAXROW, "onehot_argmax_rows", "onehot_argmax", 2, OPC_NO_GRADIENT, 0, 0, "", 0, 0, 0)                            \
  X(ARGMINROW, "onehot_argmin_rows", "onehot_argmin", 2, OPC_NO_GRADIENT, 0, 0, "", 0, 0, 0)                            \
  /* shape */                                                                                                \
  X(BCAST, "broadcast", "broadcast", 1, OPC_SHAPE, 0, 0, "", 0, 0, 0)                                                 \
  X(TRANSPOSE, "transpose", "transpose", 1, OPC_SHAPE, 0, 0, "", 0, 0, 0)                                             \
  X(INDEX, "index", "index", 1, OPC_SHAPE, 0, 0, "", 0, 0, 0)                                                         \
  X(SCATTER, "scatter", "scatter", 1, OPC_SHAPE, 0, 0, "", 0, 0, 0)                                                   \
  X(GATHER, "gather", "gather", 1, OPC_SHAPE, 0, 0, "", 0, 0, 0)                                                      \
  X(SPREAD, "spread", "spread", 1, OPC_SHAPE, 0, 0, "", 0, 0, 0)                                                      \
  X(CONCAT, "concat", "concat", -1, OPC_SHAPE, 0, 0, "", 0, 0, 0)                                                     \
  /* linear algebra */                                                                                       \
  X(MATMUL, "matmul", "@", 2, OPC_PRODUCT, 0, 0, "", 0, 0, 0)                                                         \
  X(OUTER, "outer", "outer", 2, OPC_PRODUCT, 1, 0, "", 0, 0, 0)                                                       \
  X(DOT, "dot", "dot", 2, OPC_PRODUCT, 0, 0, "", 0, 0, 0)                                                            \
  /* windows over [..., C, H, W] images (window.c: geometry, meaning, flops); the _DX and _DK ops are the \
     adjoints autodiff builds, never differentiated themselves */                                            \
  X(CONV2D, "conv2d", "conv2d", 2, OPC_WINDOW, 0, 0, "", 0, 0, 0)           /* (x, K) */                      \
  X(CONV2D_DX, "conv2d_dx", "conv2d_dx", 2, OPC_WINDOW, 0, 0, "", 0, 0, 0)  /* (G, K): the transposed conv */   \
  X(CONV2D_DK, "conv2d_dk", "conv2d_dk", 2, OPC_WINDOW, 0, 0, "", 0, 0, 0)  /* (x, G): x correlated with G */   \
  X(MAXPOOL2D, "maxpool2d", "maxpool2d", 1, OPC_WINDOW, 0, 0, "", 0, 0, 0)  /* (x) */                         \
  X(MAXPOOL2D_DX, "maxpool2d_dx", "maxpool2d_dx", 2, OPC_WINDOW, 0, 0, "", 0, 0, 0) /* (x, G): to the arg-max */ \
  X(AVGPOOL2D, "avgpool2d", "avgpool2d", 1, OPC_WINDOW, 0, 0, "", 0, 0, 0)  /* (x) */                         \
  X(AVGPOOL2D_DX, "avgpool2d_dx", "avgpool2d_dx", 1, OPC_WINDOW, 0, 0, "", 0, 0, 0) /* (G): spread evenly */

#endif
