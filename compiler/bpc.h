/* bpc.h — every data structure of the compiler, stage by stage.
 *
 * The pipeline, one file per stage, data flowing one way:
 *   grammar/lexer.l, grammar/parser.y   source text  -> AST      (ast.c)
 *   compiler/lower.c                    AST          -> IR graph (ir.c, shape.c; every op: ops.h)
 *   compiler/simplify.c                 rewrite rules applied as nodes are built
 *   compiler/window.c                   convolution and pooling: geometry, shapes, adjoints, meaning
 *   compiler/autodiff.c                 IR           -> IR + adjoint nodes
 *   compiler/batch.c                    IR           -> the same model over B examples
 *   compiler/schedule.c                 roots        -> a Schedule: order, fusion, workspace
 *   compiler/plan.c                     Schedule     -> a loop plan: steps, destinations, slots, parts
 *   compiler/emit_c.c                   Plan         -> C source (backends: plain loops, kernels; parts)
 *   compiler/emit_dot.c, ir.c           IR           -> Graphviz / IR text
 *   compiler/eval.c, explain.c          IR           -> values, the chain rule as text
 *   compiler/driver.c                   the whole pipeline behind one call (diag.c: its messages)
 *   cli/build.c                         .bp file     -> Ctx + C -> a JitModel with a ModelInfo
 *                                       (the one file that hands the compiler's work to the runtime)
 *   runtime/jit.c                       C            -> functions (libtcc, or cc), typed calls
 *   runtime/ (the rest)                 kernels, data, metrics, optimisers, training, parameter files
 *   cli/                                the commands, one option parser (cli.h)
 * Folders and what each may include:
 *   support/   utilities every layer shares (support.h): arena, vectors, buffers, hashing,
 *              random numbers, reading files, atomic writes, str_printf; only the C library
 *   compiler/  this header (and ops.h); support/. Nothing of runtime/ or cli/
 *   runtime/   runtime.h, kernels.h; support/. Nothing of compiler/: what it knows of a
 *              model is runtime.h's ModelInfo, filled in by cli/build.c
 *   cli/       everything
 *
 * All compiler memory comes from one Arena owned by the Ctx; nothing is freed
 * piecemeal. User errors longjmp back to the driver through the Ctx.
 */
#ifndef BPC_H
#define BPC_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "support.h"

#define BPC_VERSION "0.1.0"

/* ---- Limits (documented in docs/language.md; BPC_MAX_IDENT, BPC_MAX_RANK
 * and BPC_MAX_DIM are in support.h, since saved parameter files are checked
 * against them too) ---------------------------------------------------------- */
#define BPC_MAX_SOURCE_BYTES (64u << 20) /* a .bp file larger than this is refused */
#define BPC_MAX_NESTING 256              /* open ( and [ at once */
#define BPC_MAX_PARSE_DEPTH 20000        /* pending operators in one expression */
#define BPC_MAX_STATEMENTS 200000        /* statements in one file */
#define BPC_MAX_NODES 4000000            /* IR nodes, forward and backward */
#define BPC_MAX_ELEMS 100000000LL        /* elements in one tensor */
#define BPC_STACK_BYTES (4u << 20)       /* intermediates above this use workspace */

/* ---- diag.c ------------------------------------------------------------- */
typedef struct Loc {
  int line, col; /* 1-based; line 0 means "no location" */
} Loc;

typedef struct Source {
  const char *name; /* file name as the user gave it */
  const char *text; /* whole file, NUL-terminated (embedded NULs are errors) */
  size_t len;
} Source;

typedef struct Ctx Ctx;
/* Reports a user error at loc and jumps back to the driver. */
_Noreturn void diag_error(Ctx *c, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Records a user error without jumping (first one wins): for the parser,
 * which must unwind its own stacks before the driver takes over. */
void diag_record(Ctx *c, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Formats "FILE:LINE:COL: error: MSG", the source line and a caret. */
void diag_format(Buf *out, const Source *src, Loc loc, const char *msg);
/* "Did you mean": the edit distance of two short strings (99 past 64
 * characters), and whether cand is close enough to want and closer than
 * *best so far (then *best is updated). */
int edit_distance(const char *a, const char *b);
int name_is_closer(const char *want, const char *cand, int *best);

/* ---- ast.c: the parse tree ---------------------------------------------- */
typedef enum {
  AST_NUM,   /* num */
  AST_NAME,  /* name */
  AST_NEG,   /* -kids[0] */
  AST_BIN,   /* kids[0] op kids[1]; op is one of + - * / ^ @ */
  AST_CALL,  /* name(kids...) */
  AST_INDEX, /* kids[0][kids[1..]]: each subscript an expression or an AST_SLICE */
  AST_LIST,  /* [kids...]: initialisers, and call arguments such as reshape's sizes */
  AST_SLICE, /* start:stop:step in a subscript; kids[0..2], each NULL when left out */
  AST_KWARG, /* name=kids[0] in a call */
} AstKind;

typedef struct Ast {
  AstKind kind;
  Loc loc;          /* where the construct starts (operator for AST_BIN) */
  char op;          /* AST_BIN operator */
  double num;       /* AST_NUM value */
  int is_int;       /* AST_NUM written without '.' or exponent */
  const char *name; /* AST_NAME, AST_CALL */
  struct Ast **kids;
  int nkids;
} Ast;

typedef enum {
  ST_DIM,    /* dim name = num */
  ST_PARAM,  /* param name[dims] (= init | ~ dist) */
  ST_INPUT,  /* input name[dims] */
  ST_ASSIGN, /* name = expr (loss = expr is the loss) */
  ST_OUTPUT, /* output name = expr */
  ST_FOR,    /* for name in expr..hi { body } */
  ST_DEF,    /* def name(params) = expr, or def name(params) { body } (ending in a return) */
  ST_RETURN, /* return expr (in a def's body) */
} StmtKind;

typedef enum { INIT_DEFAULT, INIT_VALUE, INIT_NORMAL, INIT_UNIFORM, INIT_GLOROT, INIT_ZEROS, INIT_HE } InitKind;

typedef struct Stmt {
  StmtKind kind;
  Loc loc;      /* start of the statement */
  Loc name_loc; /* where the declared name is */
  const char *name;
  Ast **dims; /* ST_PARAM/ST_INPUT: dimension expressions (NUM or NAME) */
  int ndims;
  Ast *expr;       /* ST_ASSIGN/ST_OUTPUT: value; ST_DIM: the number */
  InitKind init;   /* ST_PARAM */
  Ast *init_value; /* INIT_VALUE: NUM, NEG(NUM) or LIST */
  Ast **init_args; /* INIT_NORMAL/INIT_UNIFORM: two numbers */
  int ninit_args;
  Loc init_loc;
  Ast *hi;          /* ST_FOR: the range's end (expr is its start) */
  PtrVec body;      /* ST_FOR, ST_DEF: the statements of the block */
  Ast **params;     /* ST_DEF: the parameters, as AST_NAMEs */
  int nparams;
} Stmt;

typedef struct Program {
  PtrVec stmts; /* Stmt*, in source order */
} Program;

Ast *ast_new(Ctx *c, AstKind kind, Loc loc);
void ast_add_kid(Ctx *c, Ast *parent, Ast *kid);
Stmt *stmt_new(Ctx *c, StmtKind kind, Loc loc);

/* grammar/parser.y */
void parse_program(Ctx *c); /* fills c->prog from c->src */

/* ---- shape.c ------------------------------------------------------------ */
typedef struct Shape {
  int rank;                  /* 0 scalar, 1 vector, 2 matrix, up to BPC_MAX_RANK */
  int64_t dim[BPC_MAX_RANK]; /* row-major: dim[rank-1] varies fastest */
} Shape;

int64_t shape_numel(Shape s);
int shape_eq(Shape a, Shape b);
Shape shape_scalar(void);
Shape shape_vec(int64_t n);
Shape shape_mat(int64_t m, int64_t n);
const char *shape_str(Ctx *c, Shape s); /* "[3,4]", "scalar" */
/* numpy's broadcast of two shapes: aligned at the right, a dimension of 1
 * (or a missing one) stretches. Returns 0 if incompatible. */
int shape_broadcast(Shape a, Shape b, Shape *out);
/* The axes of `to` along which `from` (broadcast to it) is stretched, as a
 * bit mask: bit k for axis k of `to`. */
unsigned shape_stretched_axes(Shape from, Shape to);
/* s without the axes in mask (bit k: axis k), or with them as 1s: a
 * partial sum's result, a broadcast's argument, aligned with s. */
Shape shape_drop_axes(Shape s, unsigned mask);
Shape shape_with_ones(Shape s, unsigned mask);
/* The axis of a one-axis mask; the elements before axis in row-major order
 * (how many blocks a concat along it joins). */
int shape_axis_of(unsigned mask);
int64_t shape_outer(Shape s, int axis);
/* Where element i of shape out reads x, x broadcast to out (numpy's rule). */
int64_t shape_broadcast_index(Shape x, Shape out, int64_t i);
/* Row-major strides: element (k0, k1, ...) is at the sum of k_i * stride[i]. */
void shape_strides(Shape s, int64_t *stride);

/* ---- ir.c: the graph ----------------------------------------------------- */
/* Every op and what it knows of itself: compiler/ops.h. What the
 * arguments and attributes of the non-elementwise ops mean:
 *   CONST every element = value; PARAM, INPUT attr.slot = declaration index;
 *   POWC args[0] ^ value; SIGN -1, 0, 1 (the derivative of abs);
 *   GT, LT 1 where a > b (a < b) else 0;
 *   SUM all elements -> scalar; SUMAX a matrix summed over axis attr -> vector;
 *   MAXALL, MINALL the largest, smallest element; LSE log-sum-exp over the last
 *   axis (vector -> scalar, matrix -> [rows]); ARGMAXMASK, ARGMINMASK args[1]
 *   (a scalar) at the first largest (smallest) element of args[0], 0 elsewhere;
 *   MAXROW, MINROW, ARGMAXROW, ARGMINROW the same over the last axis, row by
 *   row (args[1] of a mask has one value per row);
 *   BCAST args[0] repeated to shape, attr BCAST_ROWS or BCAST_COLS; INDEX the
 *   element (scalar) or row (vector) at flat offset attr; SCATTER zeros of
 *   shape with args[0] at flat offset attr; MATMUL attr MM_TA / MM_TB: an
 *   argument transposed; OUTER a[m], b[n] -> [m,n]; DOT a[n] . b[n]. */
#include "ops.h"
typedef enum {
#define X(E, name, label, arity, classes, flops, value, ctext, d, ga, gb) OP_##E,
  BPC_OPS(X)
#undef X
  OP_COUNT
} Op;

/* The table ops.c expands from ops.h, indexed by Op. */
typedef struct OpInfo {
  const char *name, *label;
  int arity, classes;
  double flops; /* per output element */
  const char *c; /* C text template of an elementwise op */
} OpInfo;
extern const OpInfo op_info[OP_COUNT];
/* The scalar semantics of an elementwise op (constant folding, the
 * interpreter): op applied to a (and b), with the node's constant v. */
double op_scalar(Op op, double a, double b, double v);

enum {
  BCAST_ROWS = 1, /* BCAST's axes for a vector [n] as every row of [m,n] (axis 0 repeated) */
  BCAST_COLS = 2  /* ... for a vector [m] as every column (axis 1 repeated) */
};
enum { MM_TA = 1, MM_TB = 2 };

/* What an op needs beyond its arguments and constant, by name: zero where
 * an op does not use a field, and part of a node's identity (hash-consing
 * compares the whole record). Every field is int64_t so the record has no
 * padding bytes and hashes and compares as plain bytes; an op with more
 * options (strides, padding) adds fields here. */
typedef struct Attr {
  int64_t slot;                /* PARAM, INPUT: declaration index; DROPOUT: which dropout call of the model
                                  (0, 1, ... in the order they are lowered): its mask's own stream */
  int64_t offset;              /* INDEX, SCATTER, GATHER, SPREAD: flat offset of the first element */
  int64_t axes;                /* SUMAX: the argument's axes summed over; BCAST: the result's axes the
                                  argument is repeated along; CONCAT: the one axis joined along (bit k:
                                  axis k) */
  int64_t mm;                  /* MATMUL: MM_TA | MM_TB */
  int64_t stride[BPC_MAX_RANK]; /* GATHER, SPREAD: per axis of the gathered value, the step in its source */
  struct {                      /* window ops (OPC_WINDOW): per image axis (height, width) */
    int64_t size[2];            /* the window: kh, kw */
    int64_t step[2];            /* the stride */
    int64_t pad[2];             /* zeros added on each side */
    int64_t dilation[2];        /* the distance between a kernel's taps */
    int64_t groups;             /* conv2d: channels split into this many independent groups */
  } win;
} Attr;
#define NO_ATTR ((Attr){0})

typedef struct Node {
  int id; /* position in Ctx.nodes: args always have smaller ids */
  Op op;
  Shape shape;
  struct Node **args; /* nargs of them (at least two slots: args[1] of a one-argument op is NULL) */
  int nargs;
  double value;       /* OP_CONST fill value, OP_POWC exponent */
  Attr attr;          /* slot, axis, offset, bcast mode, matmul flags */
  Loc loc;            /* source construct this node computes (or differentiates) */
  int line_stmt;      /* statement index, for comments */
  const char *name;   /* user's name for the value, if any */
  const char *call;   /* made inside a user function's call: "dense(), called at line 17" (not part of
                         the node's identity: a value shared by two calls keeps the first's) */
  int is_backward;    /* created by autodiff */
  int needs_grad;     /* some parameter reaches this node */
  struct Node *hnext; /* hash-cons bucket chain */
  uint32_t hash;
  /* nothing else: what one emitted function decides about a node lives in
     its Schedule, so nodes do not change once built */
} Node;

/* A BCAST of a vector [n] as every row of an [m, n] matrix, or of [m] as
 * every column: the emitter writes it as two plain loops (emit_c.c), which
 * the team form runs row by row (team.c). */
static inline int bcast_of_vector_to_matrix(const Node *n) {
  return n->op == OP_BCAST && n->shape.rank == 2 && n->args[0]->shape.rank == 1 &&
         (n->attr.axes == BCAST_ROWS || n->attr.axes == BCAST_COLS);
}

typedef struct Decl {
  const char *name;
  Loc loc;
  Shape shape;
  int64_t offset; /* first element in the flat params/inputs/outputs array */
  InitKind init;
  double init_a, init_b; /* normal(mean,std) / uniform(lo,hi), glorot's bounds too / constant fill */
  double *init_values;   /* INIT_VALUE with a list: numel values, row-major */
  InitKind fan_rule;     /* INIT_GLOROT or INIT_HE: init_a, init_b follow from the fans (a matrix's, or a
                            convolution kernel's once lower.c sees it used as one); else INIT_DEFAULT */
  Node *node;            /* OP_PARAM / OP_INPUT node, or the output's value */
} Decl;

const char *op_name(Op op);
int op_is_elementwise(Op op);
int op_is_unary_elementwise(Op op);
int op_is_window(Op op); /* OPC_WINDOW: convolution, pooling and their adjoints (window.c) */

/* Node constructors: each applies simplify.c's rules, then hash-conses. */
Node *ir_const(Ctx *c, double v, Shape s);
Node *ir_leaf(Ctx *c, Op op, int slot, Shape s);
Node *ir_unary(Ctx *c, Op op, Node *a);
Node *ir_powc(Ctx *c, Node *a, double exponent);
Node *ir_unary_const(Ctx *c, Op op, Node *a, double v); /* a one-argument op with a constant: leaky_relu */
/* dropout of x with rate p, the mask of dropout call `site` (ops.h: identity outside training) */
Node *ir_dropout(Ctx *c, Node *x, double p, int64_t site);
Node *ir_binary(Ctx *c, Op op, Node *a, Node *b); /* broadcasting elementwise */
Node *ir_reduce(Ctx *c, Op op, Node *a);          /* SUM MAXALL MINALL; LSE MAXROW MINROW over the last axis */
Node *ir_onehot(Ctx *c, Op op, Node *x, Node *g); /* ARGMAXMASK, ARGMINMASK: g at the arg-max of x */
Node *ir_find(Ctx *c, Op op, Shape s, Node *a, Node *b, double value, Attr attr); /* existing node or NULL */
Node *ir_sumax(Ctx *c, Node *a, int axis);
/* a summed over the axes in the mask (bit k: axis k), with the result's
 * shape `to` (those axes dropped, or kept as 1s: the same elements). */
Node *ir_sum_axes(Ctx *c, Node *a, unsigned axes, Shape to);
/* a repeated along the axes of `to` in the mask; a has to's shape without
 * them (or with them as 1s). A scalar is repeated along every axis. */
Node *ir_bcast(Ctx *c, Node *a, Shape to, unsigned axes);
/* The same elements in a new shape of the same size: a view, no copy. */
Node *ir_reshape(Ctx *c, Node *a, Shape to);
/* Element (k0, k1, ...) of the result is element offset + sum of k_i *
 * stride_i of x (flat, row-major). Strides that read a contiguous block
 * make a view (INDEX); others a copy (GATHER): slices with steps,
 * permutations of the axes. */
Node *ir_gather(Ctx *c, Node *x, int64_t offset, const int64_t *stride, Shape out);
/* Element (k0, k1, ...) of the result, which has x's rank, is
 * x[start0 + k0*step0, ...]; out.dim[k] counts the elements taken along
 * axis k. */
Node *ir_slice(Ctx *c, Node *x, const int64_t *start, const int64_t *step, Shape out);
/* The arguments joined along an axis (their other axes equal). */
Node *ir_concat(Ctx *c, Node **args, int nargs, int axis);
/* x with its axes in the order perm (result axis k is x's axis perm[k]). */
Node *ir_permute(Ctx *c, Node *x, const int *perm);
/* The adjoint of a GATHER: zeros of the full shape, plus g at the elements
 * it gathered. */
Node *ir_spread(Ctx *c, Node *g, const Attr *gather, Shape full);
Node *ir_transpose(Ctx *c, Node *a);
Node *ir_index(Ctx *c, Node *a, int64_t offset, Shape s);
Node *ir_scatter(Ctx *c, Node *g, int64_t offset, Shape full);
Node *ir_matmul(Ctx *c, Node *a, Node *b, int flags);
Node *ir_outer(Ctx *c, Node *a, Node *b);
Node *ir_dot(Ctx *c, Node *a, Node *b);
/* The raw constructor used after simplification: finds or makes the node. */
Node *ir_make(Ctx *c, Op op, Shape s, Node *a, Node *b, double value, Attr attr);
/* The same for any number of arguments (reordered in place when the op is
 * commutative). */
Node *ir_make_args(Ctx *c, Op op, Shape s, Node **args, int nargs, double value, Attr attr);
/* Sums a to the given (smaller, broadcast-compatible) shape: the adjoint of
 * a broadcast. */
Node *ir_unbroadcast(Ctx *c, Node *a, Shape to);
int ir_is_const(const Node *n, double v);
void ir_print(Ctx *c, Buf *out); /* --emit ir */
void ir_print_options(const Node *n, Buf *out); /* ", axis=1": constant and attributes */
/* What a drawing shows under an op's name (graph, --emit dot): a window's
 * kernel and padding, dropout's rate; NULL for the rest. */
const char *node_caption(Ctx *c, const Node *n);

/* simplify.c: returns a simpler equivalent node, or NULL to build as asked. */
Node *simplify(Ctx *c, Op op, Shape s, Node *a, Node *b, double value, Attr attr);

/* ---- window.c: convolution and pooling -------------------------------------- */
typedef struct Window {
  int64_t n;               /* images side by side: the product of the leading axes */
  int64_t c, h, w;         /* the image: channels, height, width */
  int64_t o, ho, wo;       /* the output: channels, height, width */
  int64_t kh, kw, sh, sw;  /* the window and its stride */
  int64_t ph, pw, dh, dw;  /* padding and dilation */
  int64_t groups;          /* convolution: independent channel groups */
} Window;
Window window_of(const Node *n); /* any OPC_WINDOW node */
int op_is_conv(Op op);           /* CONV2D and its two adjoints */
/* PyTorch's size formula; 0 when the window does not fit */
int64_t window_out_size(int64_t in, int64_t size, int64_t step, int64_t pad, int64_t dilation);
double window_flops(const Node *n);
Node *ir_conv2d(Ctx *c, Node *x, Node *K, Attr attr); /* attr.win: step, pad, dilation, groups */
Node *ir_pool2d(Ctx *c, Op op, Node *x, Attr attr);   /* MAXPOOL2D, AVGPOOL2D; attr.win with size */
Node *ir_conv2d_dx(Ctx *c, const Node *conv, Node *g);
Node *ir_conv2d_dk(Ctx *c, const Node *conv, Node *g);
Node *ir_pool2d_dx(Ctx *c, const Node *pool, Node *g);
void window_eval(const Node *n, const double *a, const double *b, double *y);
const char *window_caption(Ctx *c, const Node *n); /* "kernel [16,1,5,5], padding 2x2" (graphs) */
const char *window_sends_back(const Node *y, int k); /* the adjoint in words (explain), or NULL */

/* ---- lower.c ------------------------------------------------------------ */
void lower_program(Ctx *c); /* c->prog -> nodes, decls, loss, outputs */

/* ---- autodiff.c --------------------------------------------------------- */
typedef struct GradTerm {
  Node *node; /* a contribution to dloss/dparam */
  struct GradTerm *next;
} GradTerm;
/* One gradient contribution along one edge of the forward graph: what the
 * backward sweep sends from `to` back into its argument `from`. With
 * Ctx.record_locals (explain, trace), also the derivative it used, as
 * nodes (else local and sends are NULL): exactly one of local, sends. */
typedef struct EdgeGrad {
  Node *from, *to;
  int arg;        /* which argument of `to` `from` is (x * x: 0 and 1, two edges) */
  Node *g;        /* the contribution to dloss/dfrom */
  Node *incoming; /* dloss/dto, which the contribution is made from */
  Node *local;    /* the local derivative d to/d from where it is one number per element of
                     `from`: for an elementwise `to` of `from`'s shape, the node autodiff multiplied
                     incoming by (ops.h's column d, or ga/gb with G = 1); for a scalar `to`, what it
                     sends back from 1 (dot's other vector, a sum's 1s) */
  Node *sends;    /* else (products, views, sums along an axis, an argument broadcast to `to`'s
                     shape): what `to` sends back, built by the same code from the symbol G
                     (OP_GSYM, the gradient arriving at `to`) instead of incoming */
} EdgeGrad;

/* Differentiates loss; returns per param slot the list of contributions.
 * With adjoints non-NULL, also stores each forward node's summed adjoint
 * there (indexed by node id; NULL where no gradient reaches); with edges
 * non-NULL, records every contribution (EdgeGrad*) in sweep order. */
GradTerm **autodiff(Ctx *c, Node *loss, Node ***adjoints, PtrVec *edges);
/* dloss/dinput for each input slot (NULL where no gradient reaches it), by
 * the same sweep with the inputs in place of the parameters; the nodes it
 * shares with autodiff's sweep are the same nodes (hash-consed). */
Node **autodiff_inputs(Ctx *c, Node *loss);

/* ---- eval.c: a reference interpreter of the IR ------------------------------ */
typedef struct Values {
  double **v; /* per node id: its elements, or NULL if not evaluated */
  int n;
} Values;
/* Evaluates every node the loss, the outputs and the gradient terms need,
 * in double, at params/inputs (flat arrays; inputs may be NULL). */
void eval_graph(Ctx *c, const double *params, const double *inputs, Values *out);
void values_free(Values *v);
/* dloss/dparam for one parameter slot from evaluated values, into out. */
void eval_param_grad(Ctx *c, const Values *v, int slot, double *out);
/* dloss/dinput for one input slot (c->input_grads), into out. */
void eval_input_grad(Ctx *c, const Values *v, int slot, double *out);
/* The declared initial values, as the generated init function computes them. */
void eval_init_params(Ctx *c, double *params, uint64_t seed);

/* ---- explain.c ------------------------------------------------------------ */
void expr_string(Ctx *c, const Node *n, int expand_named, Buf *out);
/* The chain rule for dloss/dwrt, with values when v is non-NULL. Returns 1
 * if wrt names no parameter. */
int explain(Ctx *c, const char *wrt, const Values *v, Buf *out);
void trace(Ctx *c, const Values *v, Buf *out);

/* ---- batch.c: the model over a fixed-size batch ---------------------------- */
/* What one set of emitted functions computes: the per-example model, or the
 * same model over B examples at once (vectors become [B, n] matrices, so
 * matrix-vector products become matrix-matrix products). */
typedef struct Target {
  int batch;             /* 0: one example; B: B examples, inputs stored input by input */
  Node *loss;            /* scalar; with a batch, the sum over its examples */
  Node **outputs;        /* per output decl: its value (batched: [B] or [B, n]) */
  GradTerm **grad_terms; /* per param slot */
} Target;
void target_per_example(Ctx *c, Target *t);
/* Builds the batched target; returns 0 with *why set when the model has
 * values the batch cannot stack (per-example matrices, indexing). */
int batch_target(Ctx *c, int batch, Target *t, const char **why);

/* ---- schedule.c --------------------------------------------------------- */
/* What one emitted function decides about the graph's nodes: side tables
 * indexed by node id (from the arena; nodes themselves never change). */
typedef struct Schedule {
  PtrVec order;       /* live nodes in evaluation order */
  int64_t ws_elems;   /* workspace elements this function needs */
  int *uses;          /* consumers among live nodes */
  int64_t *ws_offset; /* where a materialised tensor lives, or -1 */
  char *live;         /* reached from the function's roots */
  char *root;         /* a root (loss, output, gradient term) */
  char *inlined;      /* computed inside its only consumer's loop, never stored */
} Schedule;
typedef struct Stats {
  int fwd_ops, bwd_ops;
  double fwd_flops, bwd_flops;
} Stats;
/* The loss and every output: the roots of the whole per-example model. */
Node **model_roots(Ctx *c, int *nroots);
/* What a schedule may fuse beyond elementwise chains and sums. */
enum {
  SCHED_FUSE_PRODUCTS = 1 /* an elementwise vector into the matrix-vector loop that reads it once per
                             element (plain C loops; the JIT's kernels need it stored) */
};
/* roots, plus every gradient term in terms (may be NULL) */
void schedule_function(Ctx *c, Node **roots, int nroots, GradTerm **terms, int fuse, Schedule *out);
/* Places the schedule's stored tensors in the workspace again, leaving out
 * those with elsewhere[id] set (the emitter writes them straight into the
 * gradient); schedule_function has placed every one. With same_size a
 * freed block is taken again only by a tensor of its very size (the team
 * form: a row of the batch then keeps its lines, which stay in the cache of
 * the thread whose row it is). */
void plan_workspace(Ctx *c, Schedule *s, Node *const *elsewhere, int same_size);
void compute_stats(Ctx *c, Stats *st);
int node_is_materialised(const Node *n);
/* Whether the schedule computes n inside its consumer's loop (fused). */
static inline int sched_inlined(const Schedule *s, const Node *n) { return s->inlined[n->id]; }
double node_flops(const Node *n);

/* ---- plan.c: a Schedule lowered to loops ---------------------------------- */
/* How a step writes its destination: store, add, or (the first term of a
 * gradient) store when the caller's acc is 0 and add when it is 1. */
typedef enum { WRITE_STORE, WRITE_ADD, WRITE_FIRST } WriteMode;
typedef enum {
  DEST_VALUE, /* the node's own storage: a scalar (local or slot) or its workspace slice */
  DEST_GRAD   /* a parameter's gradient */
} DestKind;
typedef enum {
  STEP_LEAF,    /* a parameter or input, read in place */
  STEP_VIEW,    /* INDEX: an element or row of a stored tensor, read in place */
  STEP_COMPUTE, /* a loop nest (or one statement) computing node */
  STEP_ADD_TERM /* a stored gradient term added into its gradient */
} StepKind;
/* A loop nest, outermost loop first. An elementwise nest runs over the
 * shape `over`, each loop over a run of its axes (see plan.c). */
typedef struct Nest {
  int n;                         /* loops (0: one statement) */
  int64_t dim[BPC_MAX_RANK];     /* their bounds */
  const char *var[BPC_MAX_RANK]; /* the C's loop variables (i, j, ...; p over a product's shared axis) */
  unsigned axes[BPC_MAX_RANK];   /* elementwise: the axes of `over` each loop runs over */
  Shape over;
} Nest;
/* The nest of an elementwise loop over `over` reading operands of these
 * shapes (broadcast). */
void nest_over(Shape over, const Shape *operands, int n, Nest *nest);
int nest_eq(const Nest *a, const Nest *b);

typedef struct Step {
  StepKind kind;
  Node *node;
  int part;        /* a function in parts: the part it is in (-1: the function itself, after them) */
  DestKind dest;
  int param;       /* DEST_GRAD: the parameter's slot */
  WriteMode write;
  Nest nest;       /* the loops it runs */
  Node *sum;       /* a sum of the values taken in the same loop, or NULL */
  Node *partner;   /* a product's gradient term transpose(A) @ v computed in its loop, or NULL */
} Step;
typedef struct Plan {
  Schedule s;
  Step *steps;
  int nsteps, cap;
  int use_slots;        /* scalars live in sc[0..nslots), slots reused */
  int64_t nslots;
  int64_t *slot;        /* per node id: its slot, or -1 */
  int part_nodes;       /* cut into parts of this many schedule positions (0: one function) */
  Node **grad_fused;    /* per node id: the PARAM node whose gradient it is written into */
  Node **first_term;    /* per param slot: the term that writes its gradient first */
  Node **sum_into;      /* per node id: a sum of it taken in its own loop */
  Node **row_partner;   /* per product A @ x: the gradient term A^T @ f(A @ x) computed with it */
  char *done_elsewhere; /* per node id: computed in another node's loop */
} Plan;
typedef struct PlanOptions {
  int fuse_products; /* plain C loops: a vector may be computed inside the product that reads it */
  int slots_above;   /* as EmitOptions */
  int part_nodes;
  int same_size_blocks; /* the team form: see plan_workspace */
} PlanOptions;
/* Plans one function of target t: the roots, and with with_grads the
 * gradient terms (a backward function). */
void plan_function(Ctx *c, const Target *t, Node **roots, int nroots, int with_grads, const PlanOptions *o,
                   Plan *p);
/* Roots of a function: the loss (unless only outputs), then the outputs. */
Node **plan_roots(Ctx *c, const Target *t, int with_loss, int with_outputs, int *nroots);
void plan_print(Ctx *c, const Plan *p, const char *title, Buf *out);
/* --emit loops: the plans of forward, backward and predict as the file
 * form emits them (per example, plain loops). */
void plan_print_model(Ctx *c, Buf *out);

/* ---- team.c: threads sharing one batched training step ------------------ */
typedef enum { TEAM_NONE, TEAM_SERIAL, TEAM_SHARED, TEAM_KSPLIT, TEAM_ROWS, TEAM_PARTIAL } TeamMode;
/* One thing the team function does, in order: a step of the plan, or the
 * sum of a TEAM_PARTIAL step's parts (combine). */
typedef struct TeamItem {
  int step;         /* index in the plan's steps */
  int combine;      /* the other parts' partials of that step added into its destination (part 0) */
  TeamMode mode;
  int64_t per_row;  /* TEAM_ROWS, TEAM_PARTIAL: the step's outer-loop iterations per row of the batch */
  int64_t scratch;  /* TEAM_PARTIAL: where a part's partial starts in its scratch */
  int sync_before;  /* a barrier stands before it */
} TeamItem;
typedef struct TeamPlan {
  TeamItem *items;
  int nitems;
  int64_t ksplit;   /* TEAM_KSPLIT's partial products: the first (parts - 1) * ksplit reals of the scratch */
  int64_t scratch;  /* the partial sums': (parts - 1) * scratch reals after them (m_team_scratch_size: both) */
} TeamPlan;
/* How each step of p (the batched training step over `batch` examples;
 * kernels: products are the runtime's kernels) is shared, and where the
 * barriers go. */
void team_plan(Ctx *c, const Plan *p, int batch, int kernels, TeamPlan *out);
/* Whether the model has a team form (dense: no windows, extremes or dropout). */
int team_supported(const Ctx *c);

/* ---- emit_c.c ----------------------------------------------------------- */
typedef struct EmitOptions {
  const char *prefix;      /* identifier prefix, e.g. "model" */
  int use_float;           /* bp_real is float */
  int self_contained;      /* header inlined into the .c (stdout, JIT) */
  const char *header_name; /* "model.h", included by the .c otherwise */
  int jit_kernels;         /* call bpk_* kernels for heavy ops (JIT only) */
  int batch;               /* JIT: also emit the functions over this many examples */
  int slots_above;         /* scalars in one function above which they live in an array of slots
                              (0: 8192; -1: always, for tests) */
  int part_nodes;          /* a function with slots and more nodes than this is cut into parts of this
                              many (0: 512; -1: never, for tcc, whose time is linear anyway and whose
                              code is slower in parts) */
  const char **batch_why;  /* if not NULL: why the model has no batched functions (arena text), or NULL */
  int team;                /* JIT, batched: also the team form of the training step, where the model
                              has one (team_supported), for threads that share each batch */
} EmitOptions;
void emit_c(Ctx *c, const EmitOptions *o, Buf *c_out, Buf *h_out);

/* ---- emit_loader.c: the parameter loader of --with-loader ---------------- */
typedef struct LoaderOptions {
  const char *prefix;       /* the model's C prefix: prefix_load_params */
  const char *model_header; /* "model.h", which the loader's header includes */
  const char *header_name;  /* "model_params.h", the loader's header, which its .c includes */
} LoaderOptions;
/* The loader's .c and header: PREFIX_load_params(path, params) and friends
 * (docs/c-api.md), checking a file as runtime/params_file.c does. */
void emit_loader(Ctx *c, const LoaderOptions *o, Buf *c_out, Buf *h_out);

/* ---- emit_dot.c --------------------------------------------------------- */
void emit_dot(Ctx *c, Buf *out);
/* The opening of a left-to-right graph with the parameters and inputs of s
 * in the first rank (shared with `bpc graph`). */
void dot_begin(Ctx *c, const Schedule *s, int fontsize, Buf *out);
/* Each call of a user function as a labelled cluster of the nodes made in it. */
void dot_calls(Ctx *c, const Schedule *s, Buf *out);

/* ---- the compilation context -------------------------------------------- */
typedef struct DimDef {
  const char *name;
  int64_t value;
  int overridden; /* set with -D */
  int used;       /* a -D that names no dim is reported */
} DimDef;

struct Ctx {
  Arena arena;
  Source src;
  char *owned_text; /* freed with the context, if the context owns the source */
  Program prog;
  jmp_buf on_error; /* diag_error jumps here */
  Buf err;          /* the formatted error, for the driver and the tests */
  int nesting;      /* lexer: open brackets */
  int blocks;       /* lexer: open braces */
  int nstatements;  /* parser: statements so far, in blocks too */
  const char *diag_note; /* appended to an error's message: the call or loop iteration it happened in */
  int has_error;    /* an error is recorded in err */

  PtrVec nodes; /* Node*, ids in creation order (a topological order) */
  Node **htab;  /* hash-cons table */
  uint32_t hcap;
  int building_backward;
  Loc cur_loc; /* stamped on new nodes */
  const char *cur_name;
  const char *cur_call; /* stamped on new nodes: the user function call being lowered, or NULL */

  PtrVec dims;    /* DimDef* (from -D first, then the file) */
  PtrVec params;  /* Decl*, declaration order */
  PtrVec inputs;  /* Decl* */
  PtrVec outputs; /* Decl* */
  PtrVec names;   /* NameBinding*, lowering's symbol table */
  int64_t num_params, num_inputs, num_outputs;
  Node *loss;
  Loc loss_loc;
  GradTerm **grad_terms; /* per param slot */
  Node **input_grads;    /* per input slot: dloss/dinput (autodiff_inputs), or NULL where none reaches */
  int64_t dropouts;      /* dropout calls lowered so far: the site of the next one */
  Node **adjoint;        /* per forward node id: its adjoint node (per example) */
  PtrVec edges;          /* EdgeGrad*: the per-example backward sweep, edge by edge */
  int nforward;          /* nodes before autodiff: the length of adjoint */
  int no_simplify;       /* tests: build nodes exactly as asked */
  const char *perturb_gradient; /* test hook (CompileOptions): the parameter whose gradient is made wrong */
  int record_locals;     /* autodiff records each edge's local derivative node (explain, trace) */
  int max_nodes;         /* BPC_MAX_NODES; tests lower it to reach the limit cheaply */
};

void ctx_init(Ctx *c, const char *filename, const char *text, size_t len);
void ctx_free(Ctx *c);

/* ---- driver.c ----------------------------------------------------------- */
typedef struct DefineOpt {
  const char *name;
  int64_t value;
} DefineOpt;

typedef struct CompileOptions {
  DefineOpt *defines;
  int ndefines;
  /* test hook: scale one gradient contribution of this parameter by
   * 1.001, so `bpc check` has a wrong gradient to catch */
  const char *perturb_gradient;
  /* record on each backward edge the local derivative node autodiff used
   * (explain and trace print it); extra nodes, so not for emitting C */
  int record_locals;
} CompileOptions;

/* The test hook: one gradient contribution of parameter name scaled by
 * 1.001 (terms: per-example or batched). */
void perturb_gradient(Ctx *c, GradTerm **terms, const char *name);
/* Runs parse, lower and autodiff. Returns 0 on success; on a user error
 * returns 1 with the message in c->err. */
int bpc_compile(Ctx *c, const CompileOptions *o);
/* Reads a whole file, refusing oversized ones. Returns NULL and sets *why. */
char *read_source_file(const char *path, size_t *len, const char **why);

#endif
