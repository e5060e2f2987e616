/* emit_c.c — writes the IR as straight-line C99: forward, backward (which
 * adds every gradient term straight into grad), a batched backward, predict
 * and init. Scalars become local variables, tensors are slices of one
 * workspace and every tensor op is a plain loop nest with constant bounds.
 * No malloc, no globals, only <math.h>, <stddef.h> and <stdint.h>. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bpc.h"

/* A set of C identifiers (open addressing; the strings live in the arena). */
typedef struct NameSet {
  const char **used;
  uint32_t cap;
} NameSet;

typedef struct Emitter {
  Ctx *c;
  const EmitOptions *o;
  Buf *out;
  const char *P;          /* function prefix, e.g. "model" */
  const char *U;          /* macro prefix, e.g. "MODEL" */
  const char **name;      /* per node id: its C name in the function being emitted */
  const char **base_name; /* per node id: its C name outside scalar slots */
  const char **at_name;   /* per max/min node id: the variable holding the position, made on first use */
  const struct Backend *be; /* how products are computed: plain loops or the runtime's kernels */
  const Plan *p;          /* the function being emitted: its steps and every decision about them */
  int split;              /* it is cut into parts: static functions it calls in order */
  int team;               /* it is the team form: threads run it together, each its share (see below) */
  int ranged;             /* the step being written is shared: its outer loop runs over [lo, hi) */
  int ksplit;             /* the product being written is shared over k (TEAM_KSPLIT) */
  int rows;               /* the step being written runs over this thread's rows of the batch (TEAM_ROWS) */
  int64_t team_scratch;   /* the team form: the scratch it needs for each part (team.c; m_team_scratch_size) */
  int64_t team_scratch_partials; /* of which the partial sums' (after the products' partials) */
  ArenaMark scratch;      /* everything allocated while emitting one function is freed after it */
  Buf fn_buf, parts_buf;  /* while split: the function itself, and what must precede it */
  Buf *final_out;         /* while split: where both go when the function is done */
  const char *fn_name;    /* while split: the function's name, for its parts' names */
  const char *part_params, *part_args; /* the function's parameters, passed on to each part */
  const char **at_cur;                 /* while split: per max/min node, its position's element of at[] */
  PtrVec macros;          /* while split: names #defined for the function (tensors and gradients) */
  const char **grad_name; /* per param slot: "grad_w" */
  const char **field[3];  /* per param, input and output decl: its name in the header's structs and macros */
  Target *t;              /* what the functions being emitted compute */
  int indent;             /* extra nesting of the statements being written */
  const char *sfx;        /* function name suffix: "" per example, "_b" batched */
  int has_dropout;        /* the model has dropout: its backward functions take dropout and seed */
  int seeded;             /* the function being emitted trains: dropout draws masks from its seed */
  NameSet locals;         /* the names taken in the generated functions */
} Emitter;

/* ---- names ------------------------------------------------------------------ */

/* Identifiers a name in the generated C must not take: C and C++ keywords
 * (the header is included from C++ too), GNU and C23 keywords, the macros
 * and types of <math.h>, <stdint.h> and <stddef.h> (with the constants
 * glibc and tcc define there), predefined macros of GNU mode, and the
 * prefixes of the generated code's functions and macros. A user's name
 * among them is renamed everywhere (see c_name); docs/c-api.md says how. */
static const char *const reserved_in_c[] = {
    /* C99 keywords, then C11 and C23 ones without a leading underscore */
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
    "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return",
    "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void",
    "volatile", "while", "alignas", "alignof", "bool", "true", "false", "nullptr", "static_assert",
    "thread_local", "constexpr", "typeof", "typeof_unqual", "noreturn", "complex", "imaginary",
    /* GNU keywords and macros of GNU mode */
    "asm", "linux", "unix", "i386",
    /* C++ keywords */
    "and", "and_eq", "bitand", "bitor", "catch", "char8_t", "char16_t", "char32_t", "class", "compl",
    "concept", "consteval", "constinit", "const_cast", "co_await", "co_return", "co_yield", "decltype",
    "delete", "dynamic_cast", "explicit", "export", "friend", "mutable", "namespace", "new", "noexcept",
    "not", "not_eq", "operator", "or", "or_eq", "private", "protected", "public", "reinterpret_cast",
    "requires", "static_cast", "template", "this", "throw", "try", "typeid", "typename", "using",
    "virtual", "wchar_t", "xor", "xor_eq",
    /* <math.h>'s macros */
    "HUGE_VAL", "HUGE_VALF", "HUGE_VALL", "INFINITY", "NAN",
    "FP_INFINITE", "FP_NAN", "FP_NORMAL", "FP_SUBNORMAL", "FP_ZERO", "FP_FAST_FMA", "FP_FAST_FMAF",
    "FP_FAST_FMAL", "FP_ILOGB0", "FP_ILOGBNAN", "FP_INT_UPWARD", "FP_INT_DOWNWARD", "FP_INT_TOWARDZERO",
    "FP_INT_TONEARESTFROMZERO", "FP_INT_TONEAREST", "MATH_ERRNO", "MATH_ERREXCEPT", "math_errhandling",
    "fpclassify", "isfinite", "isinf", "isnan", "isnormal", "signbit", "isgreater", "isgreaterequal",
    "isless", "islessequal", "islessgreater", "isunordered", "issignaling", "issubnormal", "iszero",
    "iscanonical", "M_E", "M_LOG2E", "M_LOG10E", "M_LN2", "M_LN10", "M_PI", "M_PI_2", "M_PI_4", "M_1_PI",
    "M_2_PI", "M_2_SQRTPI", "M_SQRT2", "M_SQRT1_2", "M_El", "M_LOG2El", "M_LOG10El", "M_LN2l", "M_LN10l",
    "M_PIl", "M_PI_2l", "M_PI_4l", "M_1_PIl", "M_2_PIl", "M_2_SQRTPIl", "M_SQRT2l", "M_SQRT1_2l", "MAXFLOAT",
    "HUGE", "DOMAIN", "SING", "OVERFLOW", "UNDERFLOW", "TLOSS", "PLOSS", "X_TLOSS", "FLT_EVAL_METHOD",
    "float_t", "double_t",
    /* <stddef.h> and <stdint.h> */
    "NULL", "offsetof", "size_t", "ptrdiff_t", "max_align_t", "int8_t", "int16_t", "int32_t", "int64_t",
    "uint8_t", "uint16_t", "uint32_t", "uint64_t", "int_least8_t", "int_least16_t", "int_least32_t",
    "int_least64_t", "uint_least8_t", "uint_least16_t", "uint_least32_t", "uint_least64_t", "int_fast8_t",
    "int_fast16_t", "int_fast32_t", "int_fast64_t", "uint_fast8_t", "uint_fast16_t", "uint_fast32_t",
    "uint_fast64_t", "intptr_t", "uintptr_t", "intmax_t", "uintmax_t", "INT8_MIN", "INT16_MIN",
    "INT32_MIN", "INT64_MIN", "INT8_MAX", "INT16_MAX", "INT32_MAX", "INT64_MAX", "UINT8_MAX", "UINT16_MAX",
    "UINT32_MAX", "UINT64_MAX", "INT_LEAST8_MIN", "INT_LEAST16_MIN", "INT_LEAST32_MIN", "INT_LEAST64_MIN",
    "INT_LEAST8_MAX", "INT_LEAST16_MAX", "INT_LEAST32_MAX", "INT_LEAST64_MAX", "UINT_LEAST8_MAX",
    "UINT_LEAST16_MAX", "UINT_LEAST32_MAX", "UINT_LEAST64_MAX", "INT_FAST8_MIN", "INT_FAST16_MIN",
    "INT_FAST32_MIN", "INT_FAST64_MIN", "INT_FAST8_MAX", "INT_FAST16_MAX", "INT_FAST32_MAX",
    "INT_FAST64_MAX", "UINT_FAST8_MAX", "UINT_FAST16_MAX", "UINT_FAST32_MAX", "UINT_FAST64_MAX",
    "INTPTR_MIN", "INTPTR_MAX", "UINTPTR_MAX", "INTMAX_MIN", "INTMAX_MAX", "UINTMAX_MAX", "PTRDIFF_MIN",
    "PTRDIFF_MAX", "SIG_ATOMIC_MIN", "SIG_ATOMIC_MAX", "SIZE_MAX", "WCHAR_MIN", "WCHAR_MAX", "WINT_MIN",
    "WINT_MAX", "INT8_C", "INT16_C", "INT32_C", "INT64_C", "UINT8_C", "UINT16_C", "UINT32_C", "UINT64_C",
    "INTMAX_C", "UINTMAX_C", "INT8_WIDTH", "INT16_WIDTH", "INT32_WIDTH", "INT64_WIDTH", "UINT8_WIDTH",
    "UINT16_WIDTH", "UINT32_WIDTH", "UINT64_WIDTH", "SIZE_WIDTH", "PTRDIFF_WIDTH", "INTPTR_WIDTH",
    "UINTPTR_WIDTH", "INTMAX_WIDTH", "UINTMAX_WIDTH", "WCHAR_WIDTH", "WINT_WIDTH", "SIG_ATOMIC_WIDTH",
};

/* The generated functions' own parameters, locals and types: a local of
 * the user's with one of these names is renamed, but its field in the
 * header keeps its spelling. */
static const char *const generated_locals[] = {
    "exp", "log", "sqrt", "fabs", "sin", "cos", "tanh", "pow", "log1p", "expm1", "erf", "expf", "logf", "sqrtf",
    "fabsf", "sinf", "cosf", "tanhf", "powf", "log1pf", "expm1f", "erff",
    "params", "inputs", "outputs", "grad", "ws", "n", "e", "i", "j", "p", "s", "i0", "i1", "sc", "at",
    "row", "mx", "best", "acc", "loss_sum", "scale", "bp_real", "main", "seed", "state", "i2", "i3", "i4",
    "i5", "i6", "i7", "oc", "ic", "oy", "ox", "ky", "kx", "iy", "ix", "gy", "geom", "dropout", "dinputs",
};

static void names_init(Arena *a, NameSet *set, int64_t count) {
  set->cap = 16;
  while ((int64_t)set->cap < 2 * count)
    set->cap *= 2;
  set->used = arena_alloc(a, sizeof(char *) * set->cap);
}

static int name_taken(const NameSet *set, const char *s) {
  for (uint32_t i = hash_string(s) & (set->cap - 1); set->used[i]; i = (i + 1) & (set->cap - 1))
    if (!strcmp(set->used[i], s)) return 1;
  return 0;
}

static void take_name(NameSet *set, const char *s) {
  uint32_t i = hash_string(s) & (set->cap - 1);
  while (set->used[i])
    i = (i + 1) & (set->cap - 1);
  set->used[i] = s;
}

static int starts_with(const char *s, const char *prefix) { return !strncmp(s, prefix, strlen(prefix)); }

/* Names that begin like the generated functions and macros (m_forward,
 * M_NUM_PARAMS, M_H, bpk_mm_d, BP_NOINLINE) could equal one of them. */
static int has_generated_prefix(Emitter *E, const char *s) {
  size_t n = strlen(E->P);
  return (!strncmp(s, E->P, n) && s[n] == '_') || (!strncmp(s, E->U, n) && s[n] == '_') ||
         starts_with(s, "bpk_") || starts_with(s, "BP_");
}

/* A name ending in '_' never equals a generated identifier (none ends so),
 * whatever it begins with: that is what makes c_name's renaming end. */
static int is_free_name(Emitter *E, const NameSet *set, const char *s) {
  return !name_taken(set, s) && (s[strlen(s) - 1] == '_' || !has_generated_prefix(E, s));
}

/* The C identifier for want in set: want itself when it is free;
 * otherwise want with '_' appended until it is (NAN -> NAN_, and
 * NAN__ when NAN_ is taken too), after 'v_' in front of a name that
 * begins like the generated code's (m_x -> v_m_x; w_ when the prefix is
 * v). None of the generated code's own identifiers ends in '_', so the
 * result never collides with one. */
static const char *c_name(Emitter *E, NameSet *set, const char *want) {
  const char *s = want;
  if (has_generated_prefix(E, s)) {
    s = arena_printf(&E->c->arena, "v_%s", want);
    if (has_generated_prefix(E, s)) s = arena_printf(&E->c->arena, "w_%s", want);
  }
  while (!is_free_name(E, set, s))
    s = arena_printf(&E->c->arena, "%s_", s);
  take_name(set, s);
  return s;
}


#define COUNT_OF(a) ((int64_t)(sizeof(a) / sizeof((a)[0])))

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The header's names for the declared tensors: their own spelling, unless
 * C reserves it (NAN, M_PI, class) or it begins like the generated code's
 * names; then it is renamed by c_name's rule. */
static void name_fields(Emitter *E) {
  Ctx *c = E->c;
  const PtrVec *kinds[3] = {&c->params, &c->inputs, &c->outputs};
  NameSet fields;
  names_init(&c->arena, &fields, COUNT_OF(reserved_in_c) + c->params.len + c->inputs.len + c->outputs.len);
  for (int64_t i = 0; i < COUNT_OF(reserved_in_c); i++)
    take_name(&fields, reserved_in_c[i]);
  for (int k = 0; k < 3; k++) { /* free names first, so that no renamed one takes them */
    E->field[k] = arena_alloc(&c->arena, sizeof(char *) * (size_t)(kinds[k]->len + 1));
    for (int i = 0; i < kinds[k]->len; i++) {
      const char *name = ((Decl *)kinds[k]->items[i])->name;
      if (is_free_name(E, &fields, name)) take_name(&fields, E->field[k][i] = name);
    }
  }
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < kinds[k]->len; i++)
      if (!E->field[k][i]) E->field[k][i] = c_name(E, &fields, ((Decl *)kinds[k]->items[i])->name);
}

static void assign_names(Emitter *E) {
  Ctx *c = E->c;
  name_fields(E);
  int extremes = 0; /* max and min nodes get a second name, for their position */
  for (int i = 0; i < c->nodes.len; i++) {
    Op op = ((Node *)c->nodes.items[i])->op;
    extremes += op == OP_MAXALL || op == OP_MINALL;
  }
  names_init(&c->arena, &E->locals,
             c->nodes.len + extremes + c->params.len + COUNT_OF(reserved_in_c) + COUNT_OF(generated_locals));
  for (int64_t i = 0; i < COUNT_OF(reserved_in_c); i++)
    take_name(&E->locals, reserved_in_c[i]);
  for (int64_t i = 0; i < COUNT_OF(generated_locals); i++)
    take_name(&E->locals, generated_locals[i]);
  E->name = arena_alloc(&c->arena, sizeof(char *) * (size_t)c->nodes.len);
  /* parameters and inputs are called as in the header where they can be,
     then the user's other names keep their spelling where free, before any
     renamed one can take it; the rest are renamed, in source order */
  const char *want_name;
  for (int pass = 0; pass < 3; pass++)
    for (int i = 0; i < c->nodes.len; i++) {
      Node *n = c->nodes.items[i];
      if (E->name[i] || !n->name || n->is_backward) continue;
      int leaf = n->op == OP_PARAM || n->op == OP_INPUT;
      if (pass == 0 && !leaf) continue;
      want_name = leaf ? E->field[n->op == OP_PARAM ? 0 : 1][n->attr.slot] : n->name;
      if (pass < 2 && is_free_name(E, &E->locals, want_name))
        take_name(&E->locals, E->name[i] = want_name);
      else if (pass == 2)
        E->name[i] = c_name(E, &E->locals, want_name);
    }
  E->grad_name = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->params.len + 1));
  for (int p = 0; p < c->params.len; p++)
    E->grad_name[p] = c_name(E, &E->locals, arena_printf(&c->arena, "grad_%s", E->field[0][p]));
  for (int i = 0; i < c->nodes.len; i++)
    if (!E->name[i])
      E->name[i] = c_name(E, &E->locals,
                          arena_printf(&c->arena, "%s%d", ((Node *)c->nodes.items[i])->is_backward ? "d" : "t", i));
  E->base_name = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->nodes.len + 1));
  memcpy(E->base_name, E->name, sizeof(char *) * (size_t)c->nodes.len);
  E->at_name = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->nodes.len + 1));
  E->at_cur = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->nodes.len + 1));
  for (int i = 0; i < c->nodes.len; i++) { /* where a max or min was found, for its gradient */
    Node *n = c->nodes.items[i];
    if (n->op == OP_MAXALL || n->op == OP_MINALL)
      E->at_name[i] = c_name(E, &E->locals, arena_printf(&c->arena, "%s_at", E->base_name[i]));
  }
}

/* A function's schedule, names and expression strings are scratch: a model
 * of a million nodes would otherwise keep them all. */
static void begin_function(Emitter *E) { E->scratch = arena_mark(&E->c->arena); }

static void end_function(Emitter *E) {
  if (E->p->nslots) memcpy(E->name, E->base_name, sizeof(char *) * (size_t)E->c->nodes.len);
  if (E->split || E->team) { /* the macros and parts, the function, then the macros go */
    buf_append(E->final_out, E->parts_buf.data, E->parts_buf.len);
    buf_append(E->final_out, E->fn_buf.data, E->fn_buf.len);
    for (int i = 0; i < E->macros.len; i++)
      buf_printf(E->final_out, "#undef %s\n", (const char *)E->macros.items[i]);
    if (E->macros.len) buf_puts(E->final_out, "\n");
    buf_free(&E->parts_buf);
    buf_free(&E->fn_buf);
    E->out = E->final_out;
  }
  E->p = NULL;
  E->split = 0;
  arena_release(&E->c->arena, E->scratch);
}

/* ---- literals and math ----------------------------------------------------- */

static const char *format_literal(Arena *a, double v, int use_float);

static const char *literal(Emitter *E, double v) { return format_literal(&E->c->arena, v, E->o->use_float); }

/* Initialisers compute in double and convert once, whatever bp_real is. */
static const char *dliteral(Emitter *E, double v) { return format_literal(&E->c->arena, v, 0); }

static const char *format_literal(Arena *a, double v, int use_float) {
  if (isnan(v)) return "NAN";
  if (isinf(v)) return v > 0 ? "HUGE_VAL" : "(-HUGE_VAL)";
  char buf[64];
  int prec = use_float ? 9 : 17;
  for (int p = use_float ? 6 : 15; p <= prec; p++) {
    snprintf(buf, sizeof buf, "%.*g", p, v);
    if (use_float ? (float)strtod(buf, NULL) == (float)v : strtod(buf, NULL) == v) break;
  }
  if (!strpbrk(buf, ".en")) strcat(buf, ".0");
  const char *suffix = use_float ? "f" : "";
  return v < 0 ? arena_printf(a, "(%s%s)", buf, suffix) : arena_printf(a, "%s%s", buf, suffix);
}

static const char *fn(Emitter *E, const char *name) {
  return E->o->use_float ? arena_printf(&E->c->arena, "%sf", name) : name;
}

/* ---- operand references ------------------------------------------------------ */

/* How an operand is read inside a loop over the result's elements. */

static const char *elem(Emitter *E, Node *n, const char *idx) {
  if (n->op == OP_CONST) return literal(E, n->value);
  if (n->shape.rank == 0) return E->name[n->id];
  return arena_printf(&E->c->arena, "%s[%s]", E->name[n->id], idx);
}

static const char *unary_expr(Emitter *E, Node *n, const char *a, const char *idx);
static const char *binary_expr(Emitter *E, Node *n, const char *a, const char *b);

/* Where an operand of shape x, broadcast over the nest's shape, is read at
 * the nest's loop variables: "i * 10 + j", "j" (a row repeated over the
 * rows), "0" (one element repeated everywhere). */
static const char *nest_index(Emitter *E, const Nest *nest, Shape x) {
  const char *terms[BPC_MAX_RANK];
  int nterms = 0;
  int64_t stride = 1;
  for (int g = nest->n - 1; g >= 0; g--) {
    int64_t size = 1;
    for (int k = 0; k < nest->over.rank; k++) {
      int kx = k - (nest->over.rank - x.rank);
      if ((nest->axes[g] & (1u << k)) && kx >= 0) size *= x.dim[kx];
    }
    if (size == 1) continue; /* repeated along this loop's axes */
    terms[nterms++] = stride == 1 ? nest->var[g]
                                  : arena_printf(&E->c->arena, "%s * %lld", nest->var[g], (long long)stride);
    stride *= size;
  }
  if (!nterms) return "0";
  const char *r = terms[nterms - 1];
  for (int t = nterms - 2; t >= 0; t--)
    r = arena_printf(&E->c->arena, "%s + %s", r, terms[t]);
  return r;
}

/* The operand's element at the loop variables: of the nest (an elementwise
 * loop), or flat_index where nest is NULL (one vector read along a
 * product's loop). A fused (inlined) operand is its whole expression, in
 * parentheses. */
static const char *operand_at(Emitter *E, Node *x, const Nest *nest, const char *flat_index) {
  if (sched_inlined(&E->p->s, x)) {
    const char *a = operand_at(E, x->args[0], nest, flat_index);
    const char *e = x->args[1] ? binary_expr(E, x, a, operand_at(E, x->args[1], nest, flat_index))
                               : unary_expr(E, x, a, nest ? nest_index(E, nest, x->shape) : flat_index);
    return arena_printf(&E->c->arena, "(%s)", e);
  }
  if (x->op == OP_CONST || x->shape.rank == 0) return elem(E, x, "");
  return elem(E, x, nest ? nest_index(E, nest, x->shape) : flat_index);
}

static const char *operand(Emitter *E, Node *x, const Nest *nest) { return operand_at(E, x, nest, "i"); }

/* "for (size_t i = 0; i < 10; i++)": loop g of the nest. */
static const char *for_loop(Emitter *E, const Nest *nest, int g) {
  if (g == 0 && E->ranged) /* a team's shared step: this thread's rows */
    return arena_printf(&E->c->arena, "for (size_t %s = lo; %s < hi; %s++)", nest->var[g], nest->var[g],
                        nest->var[g]);
  return arena_printf(&E->c->arena, "for (size_t %s = 0; %s < %lld; %s++)", nest->var[g], nest->var[g],
                      (long long)nest->dim[g], nest->var[g]);
}

/* "for (size_t i = 0; i < 64; i++)" over a reduction's or broadcast's
 * rows; over [lo, hi) in a team's step by rows. */
static const char *rows_loop(Emitter *E, long long rows) {
  if (E->rows) return "for (size_t i = lo; i < hi; i++)";
  return arena_printf(&E->c->arena, "for (size_t i = 0; i < %lld; i++)", rows);
}

static void line(Emitter *E, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether x (a reduction's result, ones along the reduced axes) is the same
 * at every step of the nest's innermost loop. */
static int innermost_is_reduced(const Nest *nest, Shape x) {
  int g = nest->n - 1;
  for (int k = 0; k < nest->over.rank; k++) {
    int kx = k - (nest->over.rank - x.rank);
    if ((nest->axes[g] & (1u << k)) && kx >= 0 && x.dim[kx] != 1) return 0;
  }
  return 1;
}

/* The nest's loops but the innermost, each on its line, indented. */
static void open_outer_loops(Emitter *E, const Nest *nest) {
  for (int g = 0; g + 1 < nest->n; g++)
    line(E, "%*s%s", 2 * g, "", for_loop(E, nest, g));
}

/* " * m__dropout_mask(dropout, seed, 0, i, 4503599627370496u, 2.0)": the
 * mask factor of element idx of dropout n. An example's masks come from its
 * seed, seed + e for example e of a batch: a batched n ([B, ...]) finds e
 * and the element within the example from idx. */
static const char *dropout_factor(Emitter *E, const Node *n, const char *idx) {
  Arena *ar = &E->c->arena;
  int64_t per = E->t->batch ? shape_numel(n->shape) / E->t->batch : shape_numel(n->shape);
  const char *seed = "seed", *at = idx;
  if (E->t->batch && per == 1) {
    seed = arena_printf(ar, "seed + %s", idx);
    at = "0";
  } else if (E->t->batch) {
    seed = arena_printf(ar, "seed + (%s) / %lld", idx, (long long)per);
    at = arena_printf(ar, "(%s) %% %lld", idx, (long long)per);
  }
  /* kept when the top 53 bits of the draw, k / 2^53 uniform in [0, 1), are at least p */
  unsigned long long keep_from = (unsigned long long)ceil(n->value * 9007199254740992.0);
  return arena_printf(ar, " * %s__dropout_mask(dropout, %s, %lld, %s, %lluu, %s)", E->P, seed,
                      (long long)n->attr.slot, at, keep_from, literal(E, 1 / (1 - n->value)));
}

/* The C text of an elementwise op from its template in ops.h; idx is the
 * element's index in n (dropout's mask needs it). */
static const char *render_op(Emitter *E, const Node *n, const char *a, const char *b, const char *idx) {
  Buf out = {0};
  for (const char *t = op_info[n->op].c; *t; t++) {
    if (*t != '%' || !t[1]) {
      buf_append(&out, t, 1);
      continue;
    }
    switch (*++t) {
    case 'a': buf_puts(&out, a); break;
    case 'b': buf_puts(&out, b); break;
    case 'v': buf_puts(&out, literal(E, n->value)); break;
    case 'f': buf_puts(&out, E->o->use_float ? "f" : ""); break;
    case 'p': buf_puts(&out, E->P); break;
    case 'm':
      if (E->seeded) buf_puts(&out, dropout_factor(E, n, idx));
      break;
    default: buf_append(&out, t - 1, 2); break;
    }
  }
  const char *r = arena_strndup(&E->c->arena, out.data ? out.data : "", out.len);
  buf_free(&out);
  return r;
}

static const char *unary_expr(Emitter *E, Node *n, const char *a, const char *idx) {
  Arena *ar = &E->c->arena;
  if (n->op == OP_POWC) { /* small powers as products: exact, and faster than pow */
    if (n->value == 2) return arena_printf(ar, "%s * %s", a, a);
    if (n->value == 3) return arena_printf(ar, "%s * %s * %s", a, a, a);
    if (n->value == -1) return arena_printf(ar, "1 / %s", a);
    if (n->value == 0.5) return arena_printf(ar, "%s(%s)", fn(E, "sqrt"), a);
  }
  return render_op(E, n, a, NULL, idx);
}

static const char *binary_expr(Emitter *E, Node *n, const char *a, const char *b) {
  return render_op(E, n, a, b, NULL);
}

/* ---- statements ---------------------------------------------------------------- */

/* Where a node's value goes: its own variable, or added into a gradient. */
typedef struct Dest {
  const char *name; /* scalar variable or array */
  int accumulate;   /* += instead of = */
  int declare;      /* scalar: declare the variable here */
  int sum_declared; /* a sum fused into this loop is declared already */
} Dest;

static void line(Emitter *E, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(Emitter *E, const char *fmt, ...) {
  va_list ap;
  char tmp[4096];
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  buf_puts(E->out, "  ");
  for (int i = 0; i < E->indent; i++)
    buf_puts(E->out, "  ");
  if (n < (int)sizeof tmp) {
    buf_puts(E->out, tmp);
  } else { /* very long statements: format again into the buffer */
    char *big = malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_puts(E->out, big);
    free(big);
  }
  buf_puts(E->out, "\n");
}

static const char *assign_op(Dest d) { return d.accumulate ? "+=" : "="; }

/* How a scalar is introduced: a declaration, or nothing when it is a slot. */
static const char *let(const Emitter *E) { return E->p->nslots ? "" : "bp_real "; }
static const char *let_const(const Emitter *E) { return E->p->nslots ? "" : "const bp_real "; }

static const char *at_name(Emitter *E, const Node *n);

static void scalar_set(Emitter *E, Dest d, const char *expr) {
  if (d.declare)
    line(E, "%s%s = %s;", let(E), d.name, expr);
  else
    line(E, "%s %s %s;", d.name, assign_op(d), expr);
}

static void emit_elementwise(Emitter *E, const Step *st, Dest d) {
  Node *n = st->node, *a = n->args[0], *b = n->args[1];
  const Nest *nest = &st->nest;
  const char *ea = operand(E, a, nest), *eb = b ? operand(E, b, nest) : NULL;
  const char *at = n->shape.rank ? nest_index(E, nest, n->shape) : "0";
  const char *expr = b ? binary_expr(E, n, ea, eb) : unary_expr(E, n, ea, at);
  if (n->shape.rank == 0) {
    scalar_set(E, d, expr);
    return;
  }
  const char *inner = for_loop(E, nest, nest->n - 1);
  int depth = 2 * (nest->n - 1); /* the innermost loop's indent */
  Node *sum = st->sum;
  if (!sum) {
    open_outer_loops(E, nest);
    line(E, "%*s%s %s[%s] %s %s;", depth, "", inner, d.name, at, assign_op(d), expr);
    return;
  }
  /* one pass: store each element and add it to the sum (s is a reserved name) */
  const char *S = E->name[sum->id];
  if (!d.sum_declared) line(E, "%s%s = 0;", let(E), S);
  open_outer_loops(E, nest);
  line(E, "%*s%s {", depth, "", inner);
  line(E, "  const bp_real s = %s;", expr);
  line(E, "  %s[%s] %s s;", d.name, at, assign_op(d));
  Node *x = sum->args[0]; /* the tensor itself, or an expression reading it */
  line(E, "  %s += %s;", S, x == n ? "s" : operand(E, x, nest));
  line(E, "%*s}", depth, "");
}

static void zero(Emitter *E, const char *name, int64_t n) {
  line(E, "for (size_t i = 0; i < %lld; i++) %s[i] = 0;", (long long)n, name);
}

/* A team's share of a product (bpk_mm_part's last arguments): a
 * parameter's gradient by rows, as the threads share its update; anything
 * else by columns where it is wide enough. */
static const char *team_mm_split(const Step *st) {
  return st->dest == DEST_GRAD ? ", part, parts, 1" : ", part, parts, 0";
}

/* The kernels backend (JIT): the product goes to the runtime's -O3
 * kernels (kernels.h). */
static void matmul_kernel(Emitter *E, const Step *st, Dest d) {
  Node *n = st->node, *a = n->args[0], *b = n->args[1];
  const char *A = E->name[a->id], *B = E->name[b->id], *S = E->o->use_float ? "f" : "d";
  int ta = n->attr.mm & MM_TA, tb = n->attr.mm & MM_TB, acc = d.accumulate;
  if (E->ksplit) { /* the threads' partial products over k, then each thread's rows of their sum */
    int64_t m = n->shape.dim[0], k = a->shape.dim[1], cols = n->shape.dim[1];
    line(E,
         "bpk_mm_ksplit_%s(%s, %s, part ? team_scratch + (size_t)(part - 1) * %lld : %s, %lld, %lld, %lld, "
         "part, parts);",
         S, A, B, (long long)(m * cols), d.name, (long long)m, (long long)k, (long long)cols);
    line(E, "sync(team);");
    line(E, "bpk_mm_ksum_%s(%s, team_scratch, %lld, %lld, rlo, rhi, parts);", S, d.name, (long long)m,
         (long long)cols);
    return;
  }
  if (E->rows) { /* this thread's rows of the batch, a product of their own (A is [B, k]) */
    int64_t k = a->shape.dim[1], cols = n->shape.dim[1];
    line(E, "if (hi > lo) bpk_mm_%s(%s + lo * %lld, %s, %s + lo * %lld, hi - lo, %lld, %lld, 0, %d, %d);", S, A,
         (long long)k, B, d.name, (long long)cols, (long long)k, (long long)cols, tb != 0, acc);
    return;
  }
  if (a->shape.rank == 2 && b->shape.rank == 2)
    line(E, "bpk_mm%s_%s(%s, %s, %s, %lld, %lld, %lld, %d, %d, %d%s);", E->ranged ? "_part" : "", S, A, B,
         d.name, (long long)n->shape.dim[0], (long long)(ta ? a->shape.dim[0] : a->shape.dim[1]),
         (long long)n->shape.dim[1], ta != 0, tb != 0, acc, E->ranged ? team_mm_split(st) : "");
  else if (a->shape.rank == 2) /* A @ v */
    line(E, "bpk_%s_%s(%s, %s, %s, %lld, %lld, %d);", ta ? "mtv" : "mv", S, A, B, d.name,
         (long long)a->shape.dim[0], (long long)a->shape.dim[1], acc);
  else /* v @ B = B^T v */
    line(E, "bpk_%s_%s(%s, %s, %s, %lld, %lld, %d);", tb ? "mv" : "mtv", S, B, A, d.name,
         (long long)b->shape.dim[0], (long long)b->shape.dim[1], acc);
}

/* The plain backend: the product as loops (with its row partner). */
static void matmul_loops(Emitter *E, const Step *st, Dest d) {
  Node *n = st->node, *a = n->args[0], *b = n->args[1];
  const char *A = E->name[a->id], *B = E->name[b->id], *D = d.name;
  int ta = n->attr.mm & MM_TA, tb = n->attr.mm & MM_TB;
  const char *op = assign_op(d);
  if (a->shape.rank == 2 && b->shape.rank == 2) {
    long long m = n->shape.dim[0], nn = n->shape.dim[1];
    long long k = ta ? a->shape.dim[0] : a->shape.dim[1];
    const char *aik = ta ? arena_printf(&E->c->arena, "%s[p * %lld + i]", A, m)
                         : arena_printf(&E->c->arena, "%s[i * %lld + p]", A, k);
    if (!tb) { /* rows of B stream through the inner loop */
      if (!d.accumulate) zero(E, D, m * nn);
      line(E, "for (size_t i = 0; i < %lld; i++)", m);
      line(E, "  for (size_t p = 0; p < %lld; p++) {", k);
      line(E, "    const bp_real s = %s;", aik);
      line(E, "    for (size_t j = 0; j < %lld; j++) %s[i * %lld + j] += s * %s[p * %lld + j];", nn, D, nn, B,
           nn);
      line(E, "  }");
    } else { /* B is read by rows: dot products */
      line(E, "for (size_t i = 0; i < %lld; i++)", m);
      line(E, "  for (size_t j = 0; j < %lld; j++) {", nn);
      line(E, "    bp_real s = 0;");
      line(E, "    for (size_t p = 0; p < %lld; p++) s += %s * %s[j * %lld + p];", k, aik, B, k);
      line(E, "    %s[i * %lld + j] %s s;", D, nn, op);
      line(E, "  }");
    }
  } else if (a->shape.rank == 2) { /* matrix @ vector */
    long long rows = a->shape.dim[0], cols = a->shape.dim[1];
    Node *g = st->partner;
    if (!ta && g) { /* and transpose(A) @ v into a gradient, a block of rows at a time */
      const char *G = E->grad_name[E->p->grad_fused[g->id]->attr.slot];
      /* a block small enough to stay in L1 between its two passes and long enough that the
         row sums (latency-bound chains) overlap; the order of every sum is the unfused one */
      long long blk = 1024 / cols < 4 ? 4 : 1024 / cols > 64 ? 64 : 1024 / cols;
      if (E->p->first_term[E->p->grad_fused[g->id]->attr.slot] == g)
        line(E, "if (!acc) for (size_t p = 0; p < %lld; p++) %s[p] = 0;", cols, G);
      int blocked = rows > blk;
      if (blocked) {
        line(E, "for (size_t i0 = 0; i0 < %lld; i0 += %lld) {", rows, blk);
        line(E, "  const size_t i1 = i0 + %lld < %lld ? i0 + %lld : %lld;", blk, rows, blk, rows);
      } else {
        line(E, "{");
        line(E, "  const size_t i0 = 0, i1 = %lld;", rows);
      }
      line(E, "  for (size_t i = i0; i < i1; i++) {");
      line(E, "    bp_real s = 0;");
      line(E, "    for (size_t p = 0; p < %lld; p++) s += %s[i * %lld + p] * %s[p];", cols, A, cols, B);
      line(E, "    %s[i] %s s;", D, op);
      line(E, "  }");
      line(E, "  for (size_t i = i0; i < i1; i++) { /* line %d: the rows' share of the gradient */",
           g->loc.line);
      line(E, "    const bp_real s = %s;", operand(E, g->args[1], NULL));
      line(E, "    for (size_t p = 0; p < %lld; p++) %s[p] += %s[i * %lld + p] * s;", cols, G, A, cols);
      line(E, "  }");
      line(E, "}");
    } else if (!ta) {
      line(E, "for (size_t i = 0; i < %lld; i++) {", rows);
      line(E, "  bp_real s = 0;");
      line(E, "  for (size_t p = 0; p < %lld; p++) s += %s[i * %lld + p] * %s[p];", cols, A, cols, B);
      line(E, "  %s[i] %s s;", D, op);
      line(E, "}");
    } else { /* transpose(A) @ v: rows of A scaled and added */
      if (!d.accumulate) zero(E, D, cols);
      line(E, "for (size_t p = 0; p < %lld; p++) {", rows);
      line(E, "  const bp_real s = %s;", operand_at(E, b, NULL, "p"));
      line(E, "  for (size_t i = 0; i < %lld; i++) %s[i] += %s[p * %lld + i] * s;", cols, D, A, cols);
      line(E, "}");
    }
  } else { /* vector @ matrix */
    long long rows = b->shape.dim[0], cols = b->shape.dim[1];
    if (!tb) {
      if (!d.accumulate) zero(E, D, cols);
      line(E, "for (size_t p = 0; p < %lld; p++) {", rows);
      line(E, "  const bp_real s = %s;", operand_at(E, a, NULL, "p"));
      line(E, "  for (size_t j = 0; j < %lld; j++) %s[j] += s * %s[p * %lld + j];", cols, D, B, cols);
      line(E, "}");
    } else { /* v @ transpose(B): one dot product per row of B */
      line(E, "for (size_t j = 0; j < %lld; j++) {", rows);
      line(E, "  bp_real s = 0;");
      line(E, "  for (size_t p = 0; p < %lld; p++) s += %s[p] * %s[j * %lld + p];", cols, A, B, cols);
      line(E, "  %s[j] %s s;", D, op);
      line(E, "}");
    }
  }
}

static void emit_reduction(Emitter *E, const Step *st, Dest d) {
  Node *n = st->node, *a = n->args[0];
  const char *A = E->name[a->id], *D = d.name;
  long long len = shape_numel(a->shape);
  switch (n->op) {
  case OP_SUM: {
    const Nest *nest = &st->nest;
    line(E, "%s%s = 0;", let(E), D);
    open_outer_loops(E, nest);
    line(E, "%*s%s %s += %s;", 2 * (nest->n - 1), "", for_loop(E, nest, nest->n - 1), D, operand(E, a, nest));
    break;
  }
  case OP_DOT:
    line(E, "%s%s = 0;", let(E), D);
    line(E, "for (size_t i = 0; i < %lld; i++) %s += %s[i] * %s[i];", len, D, A, E->name[n->args[1]->id]);
    break;
  case OP_MAXALL:
  case OP_MINALL: /* the position too, for the gradient's router */
    line(E, "%s%s = %s[0];", let(E), D, A);
    line(E, "%s%s = 0;", E->split ? "" : "size_t ", at_name(E, n));
    line(E, "for (size_t i = 1; i < %lld; i++) if (%s[i] %s %s) { %s = %s[i]; %s = i; }", len, A,
         n->op == OP_MAXALL ? ">" : "<", D, D, A, at_name(E, n));
    line(E, "(void)%s;", at_name(E, n));
    break;
  case OP_ARGMAXMASK:
  case OP_ARGMINMASK: { /* g at the first arg-max: reuse the max's position when it was computed */
    Op of = n->op == OP_ARGMAXMASK ? OP_MAXALL : OP_MINALL;
    Node *extreme = ir_find(E->c, of, shape_scalar(), a, NULL, 0, NO_ATTR);
    const char *g = elem(E, n->args[1], "");
    line(E, "{");
    if (extreme && E->p->s.live[extreme->id]) {
      line(E, "  const size_t best = %s;", at_name(E, extreme));
    } else {
      line(E, "  size_t best = 0;");
      line(E, "  for (size_t i = 1; i < %lld; i++) if (%s[i] %s %s[best]) best = i;", len, A,
           n->op == OP_ARGMAXMASK ? ">" : "<", A);
    }
    if (!d.accumulate) line(E, "  for (size_t i = 0; i < %lld; i++) %s[i] = 0;", len, D);
    line(E, "  %s[best] %s %s;", D, d.accumulate ? "+=" : "=", g);
    line(E, "}");
    break;
  }
  case OP_SUMAX: {
    long long m = a->shape.dim[0], nn = a->shape.rank > 1 ? a->shape.dim[1] : 1;
    if (a->shape.rank != 2) { /* over any axes: the result read as an operand repeated along them */
      const Nest *nest = &st->nest;
      Shape kept = shape_with_ones(a->shape, (unsigned)n->attr.axes);
      const char *at = nest_index(E, nest, kept), *from = nest_index(E, nest, a->shape);
      int depth = 2 * (nest->n - 1);
      zero(E, D, shape_numel(n->shape));
      if (nest->n > 0 && innermost_is_reduced(nest, kept)) {
        /* the innermost loop sums into a register, from the element's value and in the same order:
           D[at] += in that loop is a store per term, which the compiler may not keep in a register
           (D and A are both in the workspace) nor vectorise; the block is the last outer loop's body */
        for (int g = 0; g + 1 < nest->n; g++)
          line(E, "%*s%s%s", 2 * g, "", for_loop(E, nest, g), g + 2 == nest->n ? " {" : "");
        int open = depth - (nest->n > 1 ? 2 : 0); /* where the loop (or a bare block) opens */
        if (nest->n == 1) line(E, "{");
        line(E, "%*s  bp_real s = %s[%s];", open, "", D, at);
        line(E, "%*s  %s s += %s[%s];", open, "", for_loop(E, nest, nest->n - 1), A, from);
        line(E, "%*s  %s[%s] = s;", open, "", D, at);
        line(E, "%*s}", open, "");
      } else {
        open_outer_loops(E, nest);
        line(E, "%*s%s %s[%s] += %s[%s];", depth, "", for_loop(E, nest, nest->n - 1), D, at, A, from);
      }
    } else if (n->attr.axes == 1) {
      zero(E, D, nn);
      line(E, "%s", rows_loop(E, m));
      line(E, "  for (size_t j = 0; j < %lld; j++) %s[j] += %s[i * %lld + j];", nn, D, A, nn);
    } else {
      line(E, "%s {", rows_loop(E, m));
      line(E, "  bp_real s = 0;");
      line(E, "  for (size_t j = 0; j < %lld; j++) s += %s[i * %lld + j];", nn, A, nn);
      line(E, "  %s[i] = s;", D);
      line(E, "}");
    }
    break;
  }
  case OP_MAXROW:
  case OP_MINROW:
  case OP_ARGMAXROW:
  case OP_ARGMINROW: { /* over the last axis, row by row: the first extreme of each row */
    long long cols = a->shape.dim[a->shape.rank - 1], rows = len / cols;
    int mask = n->op == OP_ARGMAXROW || n->op == OP_ARGMINROW;
    const char *rel = n->op == OP_MAXROW || n->op == OP_ARGMAXROW ? ">" : "<";
    if (mask && !d.accumulate) zero(E, D, len);
    if (!mask && n->shape.rank == 0 && !E->p->nslots) line(E, "bp_real %s;", D);
    line(E, "%s {", rows_loop(E, rows));
    line(E, "  const bp_real *row = %s + i * %lld;", A, cols);
    line(E, "  size_t best = 0;");
    line(E, "  for (size_t j = 1; j < %lld; j++) if (row[j] %s row[best]) best = j;", cols, rel);
    if (mask) {
      Node *g = n->args[1];
      line(E, "  %s[i * %lld + best] %s %s;", D, cols, assign_op(d), elem(E, g, g->shape.rank ? "i" : ""));
    } else {
      line(E, "  %s%s = row[best];", D, n->shape.rank ? "[i]" : "");
    }
    line(E, "}");
    break;
  }
  case OP_LSE: { /* over the last axis, max first, so exp never overflows */
    int is_mat = a->shape.rank >= 2;
    long long cols = a->shape.dim[a->shape.rank - 1], rows = len / cols;
    if (!is_mat && !E->p->nslots) line(E, "bp_real %s;", D);
    line(E, "%s {", rows_loop(E, rows));
    line(E, "  const bp_real *row = %s + i * %lld;", A, cols);
    line(E, "  bp_real mx = row[0], s = 0;");
    line(E, "  for (size_t j = 1; j < %lld; j++) if (row[j] > mx) mx = row[j];", cols);
    line(E, "  for (size_t j = 0; j < %lld; j++) s += %s(row[j] - mx);", cols, fn(E, "exp"));
    line(E, "  %s%s = mx + %s(s);", D, is_mat ? "[i]" : "", fn(E, "log"));
    line(E, "}");
    break;
  }
  default: break;
  }
}

/* A gather copies the elements it takes (a slice with steps, a
 * permutation of the axes); its adjoint (SPREAD) adds each back where it
 * was taken from, into zeros. One loop per axis of the gathered value. */
static void emit_gather(Emitter *E, const Step *st, Dest d) {
  Node *n = st->node, *a = n->args[0];
  int taking = n->op == OP_GATHER;
  Shape part = taking ? n->shape : a->shape;
  const Nest *nest = &st->nest;
  Arena *ar = &E->c->arena;
  /* an element of the part is at sum of v * (its own stride); in the source,
     at offset + sum of v * stride */
  const char *at_src = n->attr.offset ? arena_printf(ar, "%lld", (long long)n->attr.offset) : NULL;
  const char *at_part = NULL;
  int64_t own = 1;
  for (int k = part.rank - 1; k >= 0; k--) {
    const char *v = nest->var[k];
    long long stride = n->attr.stride[k];
    if (stride) {
      const char *t = stride == 1 ? v : arena_printf(ar, "%s * %lld", v, stride);
      at_src = at_src ? arena_printf(ar, "%s + %s", t, at_src) : t;
    }
    const char *t = own == 1 ? v : arena_printf(ar, "%s * %lld", v, (long long)own);
    at_part = at_part ? arena_printf(ar, "%s + %s", t, at_part) : t;
    own *= part.dim[k];
  }
  if (!at_src) at_src = "0";
  if (!taking && !d.accumulate) zero(E, d.name, shape_numel(n->shape));
  open_outer_loops(E, nest);
  const char *inner = for_loop(E, nest, nest->n - 1);
  int depth = 2 * (nest->n - 1);
  if (taking)
    line(E, "%*s%s %s[%s] %s %s;", depth, "", inner, d.name, at_part, assign_op(d), elem(E, a, at_src));
  else /* the gradient may be a constant (a literal) */
    line(E, "%*s%s %s[%s] += %s;", depth, "", inner, d.name, at_src, elem(E, a, at_part));
}

/* Each argument's block after the previous ones', block row by block row. */
static void emit_concat(Emitter *E, const Step *st, Dest d) {
  Node *n = st->node;
  int axis = shape_axis_of((unsigned)n->attr.axes);
  long long outer = shape_outer(n->shape, axis), row = shape_numel(n->shape) / outer, at = 0;
  for (int j = 0; j < n->nargs; j++) {
    Node *x = n->args[j];
    long long block = shape_numel(x->shape) / outer;
    const char *src = elem(E, x, outer > 1 ? arena_printf(&E->c->arena, "i * %lld + j", block) : "j");
    if (outer > 1) line(E, "for (size_t i = 0; i < %lld; i++)", outer);
    line(E, "%sfor (size_t j = 0; j < %lld; j++) %s[%s%lld + j] %s %s;", outer > 1 ? "  " : "", block, d.name,
         outer > 1 ? arena_printf(&E->c->arena, "i * %lld + ", row) : "", at, assign_op(d), src);
    at += block;
  }
}

/* The plain backend's outer product: a row at a time. */
static void outer_loops(Emitter *E, const Step *st, Dest d) {
  Node *n = st->node, *a = n->args[0];
  long long m = n->shape.dim[0], nn = n->shape.dim[1];
  line(E, "for (size_t i = 0; i < %lld; i++) {", m);
  line(E, "  const bp_real s = %s;", elem(E, a, "i"));
  line(E, "  for (size_t j = 0; j < %lld; j++) %s[i * %lld + j] %s s * %s;", nn, d.name, nn, assign_op(d),
       elem(E, n->args[1], "j"));
  line(E, "}");
}

/* The kernels backend's: the kernel, unless a side is a constant. */
static void outer_kernel(Emitter *E, const Step *st, Dest d) {
  Node *n = st->node, *a = n->args[0], *b = n->args[1];
  if (a->op == OP_CONST || b->op == OP_CONST) {
    outer_loops(E, st, d);
    return;
  }
  line(E, "bpk_outer_%s(%s, %s, %s, %lld, %lld, %d);", E->o->use_float ? "f" : "d", E->name[a->id],
       E->name[b->id], d.name, (long long)n->shape.dim[0], (long long)n->shape.dim[1], d.accumulate);
}

/* ---- convolution and pooling (window.c says what they compute) ---------------
 * The plain backend writes their loops out with constant bounds; positions
 * in the padding are skipped (only checked where there is padding). */

/* Element [n, ch, row, col] of a [.., chans, h, w] operand, as C. */
static const char *at4(Emitter *E, Node *x, int64_t chans, int64_t h, int64_t w, const char *ch, const char *row,
                       const char *col) {
  return elem(E, x,
              arena_printf(&E->c->arena, "((n * %lld + %s) * %lld + %s) * %lld + %s", (long long)chans, ch,
                           (long long)h, row, (long long)w, col));
}

/* "oy * 2 + ky - 1": the image row (or column) tap ky of output row oy reads, with
 * the factors of 1 and the terms of 0 left out. */
static const char *tap_pos(Emitter *E, const char *i, int64_t step, const char *u, int64_t dilation, int64_t pad) {
  Arena *a = &E->c->arena;
  const char *s = step == 1 ? i : arena_printf(a, "%s * %lld", i, (long long)step);
  s = dilation == 1 ? arena_printf(a, "%s + %s", s, u) : arena_printf(a, "%s + %s * %lld", s, u, (long long)dilation);
  return pad ? arena_printf(a, "%s - %lld", s, (long long)pad) : s;
}

/* Opens the loops over the taps (ky, kx) of output (oy, ox) that land in
 * the image: iy, ix the image row and column they read. Returns the braces to
 * close. */
static int open_taps(Emitter *E, const Window *w, int64_t dh, int64_t dw) {
  line(E, "for (long ky = 0; ky < %lld; ky++) {", (long long)w->kh);
  E->indent++;
  line(E, "const long iy = %s;", tap_pos(E, "oy", w->sh, "ky", dh, w->ph));
  if (w->ph) line(E, "if (iy < 0 || iy >= %lld) continue;", (long long)w->h);
  line(E, "for (long kx = 0; kx < %lld; kx++) {", (long long)w->kw);
  E->indent++;
  line(E, "const long ix = %s;", tap_pos(E, "ox", w->sw, "kx", dw, w->pw));
  if (w->pw) line(E, "if (ix < 0 || ix >= %lld) continue;", (long long)w->w);
  return 2;
}

static void close_braces(Emitter *E, int n) {
  while (n-- > 0) {
    E->indent--;
    line(E, "}");
  }
}

/* for (long NAME = 0; NAME < COUNT; NAME++) {, opened */
static int open_for(Emitter *E, const char *name, int64_t count) {
  line(E, "for (long %s = 0; %s < %lld; %s++) {", name, name, (long long)count, name);
  E->indent++;
  return 1;
}

static void conv_loops(Emitter *E, const Step *st, Dest d) {
  Node *n = st->node, *a = n->args[0], *b = n->args[1];
  Window w = window_of(n);
  int64_t cg = w.c / w.groups, og = w.o / w.groups;
  const char *ch = w.groups == 1 ? "ic" : arena_printf(&E->c->arena, "oc / %lld * %lld + ic", (long long)og, (long long)cg);
  const char *tapk = arena_printf(&E->c->arena, "((oc * %lld + ic) * %lld + ky) * %lld + kx", (long long)cg,
                                  (long long)w.kh, (long long)w.kw);
  const char *out = arena_printf(&E->c->arena, "((n * %lld + oc) * %lld + oy) * %lld + ox", (long long)w.o,
                                 (long long)w.ho, (long long)w.wo);
  int open = 0;
  if (n->op == OP_CONV2D_DK) { /* each tap: the image under it times the gradient, over every output */
    open += open_for(E, "oc", w.o) + open_for(E, "ic", cg) + open_for(E, "ky", w.kh) + open_for(E, "kx", w.kw);
    line(E, "bp_real s = 0;");
    open += open_for(E, "n", w.n) + open_for(E, "oy", w.ho);
    line(E, "const long iy = %s;", tap_pos(E, "oy", w.sh, "ky", w.dh, w.ph));
    if (w.ph) line(E, "if (iy < 0 || iy >= %lld) continue;", (long long)w.h);
    open += open_for(E, "ox", w.wo);
    line(E, "const long ix = %s;", tap_pos(E, "ox", w.sw, "kx", w.dw, w.pw));
    if (w.pw) line(E, "if (ix < 0 || ix >= %lld) continue;", (long long)w.w);
    line(E, "s += %s * %s;", at4(E, a, w.c, w.h, w.w, ch, "iy", "ix"), elem(E, b, out));
    close_braces(E, 3);
    line(E, "%s[%s] %s s;", d.name, tapk, assign_op(d));
    close_braces(E, open - 3);
    return;
  }
  if (n->op == OP_CONV2D_DX && !d.accumulate) zero(E, d.name, shape_numel(n->shape));
  open += open_for(E, "n", w.n) + open_for(E, "oc", w.o) + open_for(E, "oy", w.ho) + open_for(E, "ox", w.wo);
  if (n->op == OP_CONV2D) line(E, "bp_real s = 0;");
  else line(E, "const bp_real gy = %s;", elem(E, a, out));
  open += open_for(E, "ic", cg) + open_taps(E, &w, w.dh, w.dw);
  if (n->op == OP_CONV2D)
    line(E, "s += %s * %s;", at4(E, a, w.c, w.h, w.w, ch, "iy", "ix"), elem(E, b, tapk));
  else
    line(E, "%s[((n * %lld + %s) * %lld + iy) * %lld + ix] += gy * %s;", d.name, (long long)w.c, ch, (long long)w.h,
         (long long)w.w, elem(E, b, tapk));
  close_braces(E, 3);
  if (n->op == OP_CONV2D) line(E, "%s[%s] %s s;", d.name, out, assign_op(d));
  close_braces(E, open - 3);
}

/* Pooling, plane by plane (n runs over every image's every channel; oy, ox the output, ky, kx the
 * window's cell, iy, ix the image's). */
static void pool_loops(Emitter *E, const Step *st, Dest d) {
  Node *n = st->node, *a = n->args[0], *b = n->args[1];
  Window w = window_of(n);
  const char *out = arena_printf(&E->c->arena, "(n * %lld + oy) * %lld + ox", (long long)w.ho, (long long)w.wo);
  const char *in = arena_printf(&E->c->arena, "(n * %lld + iy) * %lld + ix", (long long)w.h, (long long)w.w);
  long long count = (long long)(w.kh * w.kw);
  if (n->op != OP_MAXPOOL2D && n->op != OP_AVGPOOL2D && !d.accumulate) zero(E, d.name, shape_numel(n->shape));
  int open = open_for(E, "n", w.n * w.c) + open_for(E, "oy", w.ho) + open_for(E, "ox", w.wo);
  switch (n->op) {
  case OP_AVGPOOL2D_DX:
    line(E, "const bp_real gy = %s / %lld;", elem(E, a, out), count);
    open += open_taps(E, &w, 1, 1);
    line(E, "%s[%s] += gy;", d.name, in);
    break;
  case OP_AVGPOOL2D:
    line(E, "bp_real s = 0;");
    open += open_taps(E, &w, 1, 1);
    line(E, "s += %s;", elem(E, a, in));
    close_braces(E, 2);
    open -= 2;
    line(E, "%s[%s] %s s / %lld;", d.name, out, assign_op(d), count);
    break;
  default: /* the first maximum of the window: its value, or the gradient to it */
    line(E, "long best = -1;");
    line(E, "bp_real mx = 0;");
    open += open_taps(E, &w, 1, 1);
    line(E, "if (best < 0 || %s > mx) {", elem(E, a, in));
    line(E, "  mx = %s;", elem(E, a, in));
    line(E, "  best = %s;", in);
    line(E, "}");
    close_braces(E, 2);
    open -= 2;
    if (n->op == OP_MAXPOOL2D)
      line(E, "%s[%s] %s mx;", d.name, out, assign_op(d));
    else
      line(E, "%s[best] += %s;", d.name, elem(E, b, out));
    break;
  }
  close_braces(E, open);
}

static void window_loops(Emitter *E, const Step *st, Dest d) {
  if (op_is_conv(st->node->op))
    conv_loops(E, st, d);
  else
    pool_loops(E, st, d);
}

/* The kernels backend's: bpk_<op>(arguments..., destination, geometry,
 * acc), the geometry in kernels.h's order (BPK_N ... BPK_G). */
static void window_kernel(Emitter *E, const Step *st, Dest d) {
  Node *n = st->node;
  for (int k = 0; k < n->nargs; k++)
    if (n->args[k]->op == OP_CONST) { /* a constant is a literal, not an array: the loops read it */
      window_loops(E, st, d);
      return;
    }
  Window w = window_of(n);
  line(E, "{");
  line(E, "  static const size_t geom[14] = {%lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, "
          "%lld, %lld};",
       (long long)w.n, (long long)w.c, (long long)w.h, (long long)w.w, (long long)w.o, (long long)w.kh,
       (long long)w.kw, (long long)w.sh, (long long)w.sw, (long long)w.ph, (long long)w.pw, (long long)w.dh,
       (long long)w.dw, (long long)w.groups);
  line(E, "  bpk_%s_%s(%s%s%s, %s, geom, %d);", op_name(n->op), E->o->use_float ? "f" : "d", E->name[n->args[0]->id],
       n->nargs > 1 ? ", " : "", n->nargs > 1 ? E->name[n->args[1]->id] : "", d.name, d.accumulate);
  line(E, "}");
}

/* A backend: how the plan's products become C. Everything else prints
 * the same for every backend. */
typedef struct Backend {
  const char *name;
  int fuse_products; /* computes a vector inside the product that reads it (plan.c) */
  void (*matmul)(Emitter *E, const Step *st, Dest d);
  void (*outer)(Emitter *E, const Step *st, Dest d);
  void (*window)(Emitter *E, const Step *st, Dest d);
} Backend;
static const Backend plain_loops = {"plain C loops", 1, matmul_loops, outer_loops, window_loops};
static const Backend kernel_calls = {"C calling the runtime's kernels", 0, matmul_kernel, outer_kernel, window_kernel};

static void emit_shape_op(Emitter *E, const Step *st, Dest d) {
  Node *n = st->node, *a = n->args[0];
  const char *D = d.name, *op = assign_op(d);
  long long m = n->shape.rank >= 1 ? n->shape.dim[0] : 1, nn = n->shape.rank == 2 ? n->shape.dim[1] : 1;
  switch (n->op) {
  case OP_BCAST: {
    /* a scalar everywhere, or a vector as the rows or columns of a matrix: the loops below; any
       other (a [1] vector, a tensor): a nest over the result, the argument read as an operand
       repeated along the axes */
    int simple = a->shape.rank == 0 || bcast_of_vector_to_matrix(n);
    if (!simple) {
      const Nest *nest = &st->nest;
      const char *src = a->shape.rank == 0 ? elem(E, a, "")
                                           : elem(E, a, nest_index(E, nest, shape_with_ones(n->shape, (unsigned)n->attr.axes)));
      open_outer_loops(E, nest);
      line(E, "%*s%s %s[%s] %s %s;", 2 * (nest->n - 1), "", for_loop(E, nest, nest->n - 1), D,
           nest_index(E, nest, n->shape), op, src);
      break;
    }
    const char *src = a->shape.rank == 0 ? elem(E, a, "") : elem(E, a, n->attr.axes == BCAST_COLS ? "i" : "j");
    if (n->shape.rank == 1) {
      line(E, "%s %s[i] %s %s;", rows_loop(E, m), D, op, elem(E, a, ""));
      break;
    }
    line(E, "%s", rows_loop(E, m));
    line(E, "  for (size_t j = 0; j < %lld; j++) %s[i * %lld + j] %s %s;", nn, D, nn, op, src);
    break;
  }
  case OP_TRANSPOSE:
    line(E, "for (size_t i = 0; i < %lld; i++)", m);
    line(E, "  for (size_t j = 0; j < %lld; j++) %s[i * %lld + j] %s %s[j * %lld + i];", nn, D, nn, op,
         E->name[a->id], m);
    break;
  case OP_OUTER: E->be->outer(E, st, d); break;
  case OP_GATHER:
  case OP_SPREAD: emit_gather(E, st, d); break;
  case OP_CONCAT: emit_concat(E, st, d); break;
  case OP_SCATTER:
    if (!d.accumulate) zero(E, D, shape_numel(n->shape));
    if (a->shape.rank == 0)
      line(E, "%s[%lld] += %s;", D, (long long)n->attr.offset, elem(E, a, ""));
    else
      line(E, "for (size_t i = 0; i < %lld; i++) %s[%lld + i] += %s;", (long long)shape_numel(a->shape), D,
           (long long)n->attr.offset, elem(E, a, "i"));
    break;
  default: break;
  }
}

static void comment(Emitter *E, Node *n) {
  const Node *a = n->args[0];
  (void)a;
  if (n->call) /* made inside a function's body: which call */
    line(E, "/* line %d, in %s: %s%s%s %s */", n->loc.line, n->call, n->name ? n->name : "", n->name ? " = " : "",
         op_name(n->op), shape_str(E->c, n->shape));
  else if (n->name && !n->is_backward)
    line(E, "/* line %d: %s = %s %s */", n->loc.line, n->name, op_name(n->op), shape_str(E->c, n->shape));
  else
    line(E, "/* line %d: %s%s %s */", n->loc.line, n->is_backward ? "backward " : "", op_name(n->op),
         shape_str(E->c, n->shape));
}

static void emit_value(Emitter *E, const Step *st, Dest d) {
  Node *n = st->node;
  if (op_is_elementwise(n->op)) {
    emit_elementwise(E, st, d);
  } else if (n->op == OP_MATMUL) {
    E->be->matmul(E, st, d);
  } else if (op_is_window(n->op)) {
    E->be->window(E, st, d);
  } else if (op_info[n->op].classes & OPC_SHAPE || n->op == OP_OUTER) {
    emit_shape_op(E, st, d);
  } else {
    emit_reduction(E, st, d);
  }
}

/* Where a parameter or input starts in its array. A batched input (its
 * shape has the batch axis in front) is stored whole, input after input,
 * so it starts B times further in. */
static long long leaf_offset(const Node *n, const Decl *d) {
  return (long long)d->offset * (long long)(shape_numel(n->shape) / shape_numel(d->shape));
}

static void emit_add_term(Emitter *E, const Step *st);

/* Prints one step: declares the storage of its node and computes it. */
static void emit_step(Emitter *E, const Step *st) {
  Node *n = st->node;
  const char *N = E->name[n->id];
  switch (st->kind) {
  case STEP_ADD_TERM: emit_add_term(E, st); return;
  case STEP_COMPUTE: break;
  case STEP_LEAF: {
    Decl *d = (n->op == OP_PARAM ? E->c->params : E->c->inputs).items[n->attr.slot];
    const char *base = n->op == OP_PARAM ? "params" : "inputs";
    long long off = leaf_offset(n, d);
    if (n->shape.rank == 0)
      line(E, "%s%s = %s[%lld];", let_const(E), N, base, off);
    else if (!E->split && !E->team) /* split or team: a macro */
      line(E, "const bp_real *const %s = %s + %lld;", N, base, off);
    return;
  }
  case STEP_VIEW:
    comment(E, n);
    if (n->shape.rank == 0)
      line(E, "%s%s = %s[%lld];", let_const(E), N, E->name[n->args[0]->id], (long long)n->attr.offset);
    else if (!E->split && !E->team)
      line(E, "const bp_real *const %s = %s + %lld;", N, E->name[n->args[0]->id], (long long)n->attr.offset);
    return;
  }
  comment(E, n);
  if (st->dest == DEST_GRAD) { /* this value only ever goes into one gradient: write it there */
    const char *g = E->grad_name[st->param];
    if (st->write == WRITE_FIRST) {
      Node *sum = st->sum;
      if (sum) line(E, "%s%s = 0; /* computed in both loops below */", let(E), E->name[sum->id]);
      line(E, "if (acc) {");
      E->indent++;
      emit_value(E, st, (Dest){g, 1, 0, sum != NULL});
      E->indent--;
      line(E, "} else {");
      E->indent++;
      emit_value(E, st, (Dest){g, 0, 0, sum != NULL});
      E->indent--;
      line(E, "}");
    } else {
      emit_value(E, st, (Dest){g, 1, 0, 0});
    }
    return;
  }
  if (n->shape.rank == 0) {
    int is_loop = !op_is_elementwise(n->op);
    emit_value(E, st, (Dest){N, 0, !is_loop, 0});
  } else {
    if (!E->split && !E->team) line(E, "bp_real *const %s = ws + %lld;", N, (long long)E->p->s.ws_offset[n->id]);
    emit_value(E, st, (Dest){N, 0, 0, 0});
  }
}

/* ---- functions ------------------------------------------------------------------- */

/* A stored gradient term added into its gradient (the first with = when
 * acc is 0). */
static void emit_add_term(Emitter *E, const Step *st) {
  Node *g = st->node;
  Decl *d = E->c->params.items[st->param];
  const char *G = E->grad_name[st->param];
  const char *v = g->shape.rank ? elem(E, g, "i") : elem(E, g, "");
  int first = st->write == WRITE_FIRST;
  long long len = (long long)shape_numel(d->shape);
  if (d->shape.rank == 0 && first)
    line(E, "%s[0] = acc ? %s[0] + %s : %s;", G, G, v, v);
  else if (d->shape.rank == 0)
    line(E, "%s[0] += %s;", G, v);
  else if (first) {
    line(E, "if (acc)");
    line(E, "  for (size_t i = 0; i < %lld; i++) %s[i] += %s;", len, G, v);
    line(E, "else");
    line(E, "  for (size_t i = 0; i < %lld; i++) %s[i] = %s;", len, G, v);
  } else
    line(E, "for (size_t i = 0; i < %lld; i++) %s[i] += %s;", len, G, v);
}

static const char *ref_scalar(Emitter *E, Node *n) {
  return n->op == OP_CONST ? literal(E, n->value) : E->name[n->id];
}

static const char *at_name(Emitter *E, const Node *n) {
  return E->split && E->at_cur[n->id] ? E->at_cur[n->id] : E->at_name[n->id];
}

/* ---- long functions in parts ---------------------------------------------------
 * A function the plan cuts into parts (plan.c says when) becomes static
 * parts that it calls in order, passing on its parameters and its sc[]
 * and at[] arrays. Tensors and gradients are then macros, (ws + 12),
 * defined for the parts and the function and undefined after them, so a
 * part needs no declarations of what other parts computed. */

/* Plans the function about to be emitted, names its scalar slots and, if
 * it is cut into parts, makes room for them. */
static void begin_plan(Emitter *E, Plan *p, Node **roots, int nroots, int with_grads, const char *fn_name,
                       const char *params, const char *args) {
  Ctx *c = E->c;
  PlanOptions po = {.fuse_products = E->be->fuse_products,
                    .slots_above = E->team ? -1 : E->o->slots_above, /* a team shares its scalars */
                    .part_nodes = E->team ? -1 : E->o->part_nodes,
                    .same_size_blocks = E->team};
  plan_function(c, E->t, roots, nroots, with_grads, &po, p);
  E->p = p;
  for (int i = 0; i < c->nodes.len; i++)
    if (p->slot[i] >= 0) E->name[i] = arena_printf(&c->arena, "sc[%lld]", (long long)p->slot[i]);
  E->split = p->part_nodes > 0;
  if (!E->split && !E->team) return;
  E->final_out = E->out;
  E->fn_buf = (Buf){0};
  E->parts_buf = (Buf){0};
  E->out = &E->fn_buf;
  E->fn_name = fn_name;
  E->part_params = params;
  E->part_args = args;
  E->macros = (PtrVec){0};
  memset(E->at_cur, 0, sizeof(char *) * (size_t)c->nodes.len);
  /* a part called once would be inlined back, and the function be one again */
  buf_puts(&E->parts_buf,
           "#ifndef BP_NOINLINE\n#if defined(__GNUC__)\n#define BP_NOINLINE __attribute__((noinline))\n"
           "#else\n#define BP_NOINLINE\n#endif\n#endif\n");
}

static void define_macro(Emitter *E, const char *name, const char *value) {
  buf_printf(&E->parts_buf, "#define %s (%s)\n", name, value);
  vec_push(&E->c->arena, &E->macros, (void *)name);
}

/* Where each tensor of the function lives, as a macro. */
static void define_tensor_macros(Emitter *E) {
  Ctx *c = E->c;
  const Schedule *s = &E->p->s;
  for (int i = 0; i < s->order.len; i++) {
    Node *n = s->order.items[i];
    if (n->shape.rank == 0 || n->op == OP_CONST || sched_inlined(s, n) || E->p->grad_fused[n->id]) continue;
    const char *v = NULL;
    if (n->op == OP_PARAM || n->op == OP_INPUT) {
      Decl *d = (n->op == OP_PARAM ? c->params : c->inputs).items[n->attr.slot];
      long long off = leaf_offset(n, d);
      v = arena_printf(&c->arena, "%s + %lld", n->op == OP_PARAM ? "params" : "inputs", off);
    } else if (n->op == OP_INDEX) {
      v = arena_printf(&c->arena, "%s + %lld", E->name[n->args[0]->id], (long long)n->attr.offset);
    } else if (s->ws_offset[n->id] >= 0) {
      v = arena_printf(&c->arena, "ws + %lld", (long long)s->ws_offset[n->id]);
    }
    if (v) define_macro(E, E->name[n->id], v);
  }
}

/* "(void)a; (void)b;" for the arguments "a, b". */
static const char *void_casts(Emitter *E, const char *args) {
  Buf b = {0};
  for (const char *p = args; *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    buf_printf(&b, "(void)%.*s; ", (int)len, p);
    p = end ? end + 2 : p + len;
  }
  const char *r = arena_strndup(&E->c->arena, b.data, b.len);
  buf_free(&b);
  return r;
}

/* The steps of the parts, each part a static function the function calls. */
static void emit_in_parts(Emitter *E) {
  Ctx *c = E->c;
  const Plan *p = E->p;
  int64_t nat = 0;
  for (int i = 0; i < p->s.order.len; i++) {
    Node *n = p->s.order.items[i];
    if (n->op == OP_MAXALL || n->op == OP_MINALL)
      E->at_cur[n->id] = arena_printf(&c->arena, "at[%lld]", (long long)nat++);
  }
  line(E, "bp_real sc[%lld]; /* scalar values, slots reused (see plan.c) */", (long long)p->nslots);
  line(E, "size_t at[%lld]; /* where maxima and minima are */", (long long)(nat ? nat : 1));
  define_tensor_macros(E);
  const char *casts = void_casts(E, E->part_args);
  Buf *fn = E->out;
  int nparts = (p->s.order.len + p->part_nodes - 1) / p->part_nodes, i = 0;
  for (int k = 0; k < nparts; k++) {
    E->out = &E->parts_buf;
    buf_printf(E->out,
               "\nBP_NOINLINE static void %s_part%d(%s, bp_real *restrict sc, size_t *restrict at) {\n",
               E->fn_name, k, E->part_params);
    line(E, "%s(void)sc; (void)at;", casts);
    for (; i < p->nsteps && p->steps[i].part == k; i++)
      emit_step(E, &p->steps[i]);
    buf_puts(E->out, "}\n");
    E->out = fn;
    line(E, "%s_part%d(%s, sc, at);", E->fn_name, k, E->part_args);
  }
  buf_puts(&E->parts_buf, "\n");
}

static void emit_team_body(Emitter *E);

/* Where a team's scalars start in its workspace: past its tensors, on a
 * line of their own. */
static int64_t team_scalars_at(const Plan *p) { return (p->s.ws_elems + 15) / 16 * 16 + 16; }
/* And its scratch past them: parts * m_team_scratch_size() reals the
 * runtime allocates beyond the workspace (TEAM_KSPLIT's partial products,
 * the partial sums: team.c). */
static int64_t team_scratch_at(const Plan *p) { return (team_scalars_at(p) + p->nslots + 15) / 16 * 16; }

/* The function's steps in order, up to those it runs after all the others
 * (part -1: the stored gradient terms and the deferred sparse ones). */
static void body(Emitter *E) {
  const Plan *p = E->p;
  if (E->team) {
    emit_team_body(E);
    return;
  }
  if (E->split) {
    emit_in_parts(E);
    return;
  }
  if (p->nslots) line(E, "bp_real sc[%lld]; /* scalar values, slots reused (see plan.c) */", (long long)p->nslots);
  for (int i = 0; i < p->nsteps && p->steps[i].part >= 0; i++)
    emit_step(E, &p->steps[i]);
}

/* The steps after the body. */
static void body_end(Emitter *E) {
  const Plan *p = E->p;
  if (E->team) return; /* its body had them */
  for (int i = 0; i < p->nsteps; i++)
    if (p->steps[i].part < 0) emit_step(E, &p->steps[i]);
}

/* ---- the team form ---------------------------------------------------------
 * Threads share one batched training step (bpc train --threads on a dense
 * model): each calls the function with its part (0 to parts - 1). team.c
 * decides how each step is shared and where the barriers, sync(team),
 * stand; here it is printed. A step by rows runs over this thread's rows
 * of the batch [rlo, rhi), the same rows for every such step, in blocks of
 * whole cache lines where the batch has enough of them; a shared loop over
 * its outer rows in whole cache lines (team_range); a shared product and a
 * parameter's gradient by bpk_mm_part's split (team_mm_split), the rows of
 * a gradient the same thread then updates, so that they stay in its core's
 * cache. The scalars live in the workspace, past the tensors (sc), where
 * every thread reads them. */
enum { TEAM_LINE = 64 };

/* This thread's rows [lo, hi) of a shared loop: the outer loop's range cut
 * into units of at least a cache line each (the last part takes the rest). */
static void team_range(Emitter *E, const Nest *nest) {
  int64_t inner = 1, elem = E->o->use_float ? (int64_t)sizeof(float) : (int64_t)sizeof(double);
  for (int g = 1; g < nest->n; g++)
    inner *= nest->dim[g];
  int64_t unit = (TEAM_LINE / elem + inner - 1) / inner, units = nest->dim[0] / unit;
  line(E, "lo = (size_t)%lld * (size_t)part / (size_t)parts * %lld;", (long long)units, (long long)unit);
  line(E, "hi = part == parts - 1 ? %lld : (size_t)%lld * (size_t)(part + 1) / (size_t)parts * %lld;",
       (long long)nest->dim[0], (long long)units, (long long)unit);
}

/* rlo, rhi: this thread's rows of the batch. A block of a line's worth of
 * rows (16 floats, 8 doubles) starts every array on a line of its own
 * whatever its row's length, when the batch has a block for each thread. */
static void team_rows(Emitter *E) {
  long long B = E->t->batch, unit = TEAM_LINE / (E->o->use_float ? (long long)sizeof(float) : (long long)sizeof(double));
  line(E, "const size_t row_unit = %lld / %lld >= parts ? %lld : 1, row_units = %lld / row_unit;", B, unit, unit, B);
  line(E, "const size_t rlo = row_units * (size_t)part / (size_t)parts * row_unit;");
  line(E, "const size_t rhi = part == parts - 1 ? %lld : row_units * (size_t)(part + 1) / (size_t)parts * row_unit;", B);
}

/* "lo = rlo * 10; hi = rhi * 10;": a step by rows over this thread's rows. */
static void team_rows_range(Emitter *E, int64_t per_row) {
  if (per_row == 1) {
    line(E, "lo = rlo;");
    line(E, "hi = rhi;");
  } else {
    line(E, "lo = rlo * %lld;", (long long)per_row);
    line(E, "hi = rhi * %lld;", (long long)per_row);
  }
}

/* Where part `q`'s partial sum of an item is (team.c: each part's in its scratch). */
static const char *team_share(Emitter *E, const TeamItem *it, const char *q) {
  return arena_printf(&E->c->arena, "team_partials + (size_t)%s * %lld + %lld", q,
                      (long long)E->team_scratch_partials, (long long)it->scratch);
}

/* TEAM_PARTIAL: this thread's rows' share of a sum over the batch. */
static void emit_team_partial(Emitter *E, const Step *st, const TeamItem *it) {
  Node *n = st->node, *a = n->args[0], *b = n->args[1];
  team_rows_range(E, it->per_row);
  line(E, "{");
  E->indent++;
  line(E, "bp_real *const share = %s;", team_share(E, it, "part"));
  E->ranged = E->rows = 1;
  if (n->op == OP_MATMUL) { /* transpose(A) @ D over this thread's rows */
    long long m = a->shape.dim[1], nn = b->shape.dim[1];
    line(E, "if (hi > lo) bpk_mm_%s(%s + lo * %lld, %s + lo * %lld, share, %lld, hi - lo, %lld, 1, 0, 0);",
         E->o->use_float ? "f" : "d", E->name[a->id], m, E->name[b->id], nn, m, nn);
    line(E, "else for (size_t i = 0; i < %lld; i++) share[i] = 0;", m * nn);
  } else {
    emit_value(E, st, (Dest){n->shape.rank ? "share" : "share[0]", 0, 0, 0});
  }
  E->ranged = E->rows = 0;
  E->indent--;
  line(E, "}");
}

/* Part 0 adds the parts' partial sums into the destination, in part order. */
static void emit_team_combine(Emitter *E, const Step *st, const TeamItem *it) {
  Node *n = st->node;
  int grad = st->dest == DEST_GRAD;
  const char *D = grad ? E->grad_name[st->param] : E->name[n->id];
  long long len = grad ? (long long)shape_numel(((Decl *)E->c->params.items[st->param])->shape)
                       : (long long)shape_numel(n->shape);
  const char *to = !grad || st->write == WRITE_STORE ? "=" : st->write == WRITE_ADD ? "+=" : NULL;
  line(E, "if (part == 0) { /* line %d: %s, the parts' shares added */", n->loc.line, op_name(n->op));
  line(E, "  const bp_real *const share = %s;", team_share(E, it, "0"));
  line(E, "  for (size_t i = 0; i < %lld; i++) {", len);
  line(E, "    bp_real s = share[i];");
  line(E, "    for (int q = 1; q < parts; q++) s += share[(size_t)q * %lld + i];", (long long)E->team_scratch_partials);
  if (!n->shape.rank && !grad)
    line(E, "    %s = s;", D);
  else if (to)
    line(E, "    %s[i] %s s;", D, to);
  else
    line(E, "    %s[i] = acc ? %s[i] + s : s;", D, D);
  line(E, "  }");
  line(E, "}");
}

static void emit_team_step(Emitter *E, const Step *st, const TeamItem *it) {
  switch (it->mode) {
  case TEAM_SERIAL:
    line(E, "if (part == 0) {");
    E->indent++;
    emit_step(E, st);
    E->indent--;
    line(E, "}");
    return;
  case TEAM_PARTIAL:
    comment(E, st->node);
    emit_team_partial(E, st, it);
    return;
  case TEAM_ROWS:
    team_rows_range(E, it->per_row);
    E->ranged = E->rows = 1;
    break;
  case TEAM_SHARED:
  case TEAM_KSPLIT:
    if (st->node->op != OP_MATMUL) team_range(E, &st->nest);
    E->ranged = 1;
    E->ksplit = it->mode == TEAM_KSPLIT;
    break;
  default: break;
  }
  emit_step(E, st);
  E->ranged = E->ksplit = E->rows = 0;
}

static void emit_team_body(Emitter *E) {
  const Plan *p = E->p;
  TeamPlan tp;
  team_plan(E->c, p, E->t->batch, E->be == &kernel_calls, &tp);
  E->team_scratch = tp.ksplit + tp.scratch;
  E->team_scratch_partials = tp.scratch;
  define_tensor_macros(E);
  line(E, "bp_real *const sc = ws + %lld; /* the scalars, shared */", (long long)team_scalars_at(p));
  line(E, "bp_real *const team_scratch = ws + %lld; /* parts 1 and up: their partial products */",
       (long long)team_scratch_at(p));
  line(E, "bp_real *const team_partials = team_scratch + (size_t)(parts - 1) * %lld; /* every part's partial sums */",
       (long long)tp.ksplit);
  team_rows(E);
  line(E, "size_t lo = 0, hi = 0;");
  line(E, "(void)sc; (void)team_scratch; (void)team_partials; (void)rlo; (void)rhi; (void)lo; (void)hi;");
  for (int i = 0; i < tp.nitems; i++) {
    const TeamItem *it = &tp.items[i];
    if (it->sync_before) line(E, "sync(team);");
    if (it->combine)
      emit_team_combine(E, &p->steps[it->step], it);
    else
      emit_team_step(E, &p->steps[it->step], it);
  }
  line(E, "sync(team); /* every gradient and the loss are whole */");
}

/* Outputs go out example after example, even from a batched function. */
static void copy_outputs(Emitter *E, const char *indent) {
  Ctx *c = E->c;
  for (int i = 0; i < c->outputs.len; i++) {
    Decl *d = c->outputs.items[i];
    Node *v = E->t->outputs[i];
    long long k = shape_numel(d->shape), off = d->offset, stride = c->num_outputs;
    if (E->t->batch && v->shape.rank > d->shape.rank) { /* one row (or element) per example */
      line(E, "%sfor (size_t e = 0; e < %d; e++)", indent, E->t->batch);
      if (d->shape.rank == 0)
        line(E, "%s  outputs[e * %lld + %lld] = %s[e];", indent, stride, off, E->name[v->id]);
      else
        line(E, "%s  for (size_t i = 0; i < %lld; i++) outputs[e * %lld + %lld + i] = %s[e * %lld + i];",
             indent, k, stride, off, E->name[v->id], k);
    } else if (E->t->batch) { /* the same for every example */
      line(E, "%sfor (size_t e = 0; e < %d; e++)", indent, E->t->batch);
      line(E, "%s  for (size_t i = 0; i < %lld; i++) outputs[e * %lld + %lld + i] = %s;", indent, k, stride,
           off, d->shape.rank ? elem(E, v, "i") : ref_scalar(E, v));
    } else if (d->shape.rank == 0) {
      line(E, "%soutputs[%lld] = %s;", indent, off, ref_scalar(E, v));
    } else {
      line(E, "%sfor (size_t i = 0; i < %lld; i++) outputs[%lld + i] = %s;", indent, k, off, elem(E, v, "i"));
    }
  }
}

/* The runtime (JIT) forms also hand back the outputs, for accuracy. */
static int64_t emit_forward(Emitter *E) {
  Plan p;
  int jit = E->o->jit_kernels, nroots;
  begin_function(E);
  Node **roots = plan_roots(E->c, E->t, 1, jit, &nroots);
  const char *name = arena_printf(&E->c->arena, "%s__forward%s", E->P, E->sfx);
  const char *params = arena_printf(&E->c->arena,
                                    "const bp_real *restrict params, const bp_real *restrict inputs, "
                                    "bp_real *restrict ws%s",
                                    jit ? ", bp_real *restrict outputs" : "");
  begin_plan(E, &p, roots, nroots, 0, name, params, jit ? "params, inputs, ws, outputs" : "params, inputs, ws");
  buf_printf(E->out, "static bp_real %s(%s) {\n", name, params);
  line(E, "(void)params; (void)inputs; (void)ws;");
  body(E);
  if (jit && E->c->outputs.len) {
    line(E, "if (outputs) {");
    copy_outputs(E, "  ");
    line(E, "}");
  }
  line(E, "return %s;", ref_scalar(E, E->t->loss));
  buf_puts(E->out, "}\n\n");
  end_function(E);
  return p.s.ws_elems;
}

static int64_t emit_backward(Emitter *E) {
  Ctx *c = E->c;
  Plan p;
  int jit = E->o->jit_kernels, nroots;
  begin_function(E);
  Node **roots = plan_roots(c, E->t, 1, jit, &nroots);
  const char *name = arena_printf(&c->arena, "%s__backward_add%s", E->P, E->team ? "_t" : E->sfx);
  const char *params = arena_printf(&c->arena,
                                    "const bp_real *restrict params, const bp_real *restrict inputs, "
                                    "bp_real *restrict grad, bp_real *restrict ws, int acc%s%s%s",
                                    jit ? ", bp_real *restrict outputs" : "",
                                    E->has_dropout ? ", int dropout, uint64_t seed" : "",
                                    E->team ? ", int part, int parts, void (*sync)(void *), void *team" : "");
  const char *args = arena_printf(&c->arena, "params, inputs, grad, ws, acc%s%s", jit ? ", outputs" : "",
                                  E->has_dropout ? ", dropout, seed" : "");
  E->seeded = E->has_dropout;
  begin_plan(E, &p, roots, nroots, 1, name, params, args);
  buf_printf(
      E->out,
      "/* Computes dloss/dparams into grad (acc 0) or adds it to grad (acc 1); returns the loss.%s */\n"
      "static bp_real %s(%s) {\n",
      E->has_dropout ? "\n   With dropout 1, example e's dropout masks are drawn from seed + e; with 0, none "
                       "(eval's loss)."
                     : "",
      name, params);
  line(E, "(void)params; (void)inputs; (void)grad; (void)ws; (void)acc;%s%s",
       E->has_dropout ? " (void)dropout; (void)seed;" : "", E->team ? " (void)part; (void)parts;" : "");
  for (int k = 0; k < c->params.len; k++) {
    Decl *d = c->params.items[k];
    const char *at = arena_printf(&c->arena, "grad + %lld", (long long)d->offset);
    if (E->split || E->team)
      define_macro(E, E->grad_name[k], at);
    else
      line(E, "bp_real *const %s = %s;", E->grad_name[k], at);
  }
  for (int k = 0; k < c->params.len; k++)
    if (!E->t->grad_terms[k])
      line(E, "if (!acc) for (size_t i = 0; i < %lld; i++) %s[i] = 0; /* no gradient reaches it */",
           (long long)shape_numel(((Decl *)c->params.items[k])->shape), E->grad_name[k]);
  body(E);
  if (!E->team) line(E, "/* gradient terms not already added in place */");
  body_end(E);
  if (jit && c->outputs.len) {
    line(E, E->team ? "if (outputs && part == 0) {" : "if (outputs) {");
    copy_outputs(E, "  ");
    line(E, "}");
  }
  line(E, "return %s;", ref_scalar(E, E->t->loss));
  buf_puts(E->out, "}\n\n");
  E->seeded = 0;
  int64_t ws = E->team ? team_scratch_at(&p) : p.s.ws_elems;
  end_function(E);
  return ws;
}

/* dloss/dinputs for one example into dinputs, in the inputs' layout (no
 * dropout): the loss and each input's gradient are the function's roots,
 * copied out at the end. */
static int64_t emit_backward_inputs(Emitter *E) {
  Ctx *c = E->c;
  Plan p;
  int nroots;
  begin_function(E);
  Node **loss = plan_roots(c, E->t, 1, 0, &nroots);
  Node **roots = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(c->inputs.len + 1));
  roots[0] = loss[0];
  for (int i = 0; i < c->inputs.len; i++)
    if (c->input_grads[i]) roots[nroots++] = c->input_grads[i];
  const char *name = arena_printf(&c->arena, "%s__backward_inputs", E->P);
  const char *params = "const bp_real *restrict params, const bp_real *restrict inputs, "
                       "bp_real *restrict dinputs, bp_real *restrict ws";
  begin_plan(E, &p, roots, nroots, 0, name, params, "params, inputs, dinputs, ws");
  buf_printf(E->out, "/* Writes dloss/dinputs into dinputs; returns the loss. */\nstatic bp_real %s(%s) {\n",
             name, params);
  line(E, "(void)params; (void)inputs; (void)dinputs; (void)ws;");
  body(E);
  for (int i = 0; i < c->inputs.len; i++) {
    Decl *d = c->inputs.items[i];
    Node *g = c->input_grads[i];
    long long n = shape_numel(d->shape), off = d->offset;
    if (!g)
      line(E, "for (size_t i = 0; i < %lld; i++) dinputs[%lld + i] = 0; /* %s: no gradient reaches it */", n,
           off, d->name);
    else if (d->shape.rank == 0)
      line(E, "dinputs[%lld] = %s; /* %s */", off, ref_scalar(E, g), d->name);
    else
      line(E, "for (size_t i = 0; i < %lld; i++) dinputs[%lld + i] = %s; /* %s */", n, off,
           g->shape.rank ? elem(E, g, "i") : ref_scalar(E, g), d->name);
  }
  line(E, "return %s;", ref_scalar(E, E->t->loss));
  buf_puts(E->out, "}\n\n");
  end_function(E);
  return p.s.ws_elems;
}

static int64_t emit_predict(Emitter *E) {
  Ctx *c = E->c;
  Plan p;
  int nroots;
  begin_function(E);
  Node **roots = plan_roots(c, E->t, 0, 1, &nroots);
  const char *name = arena_printf(&c->arena, "%s__predict", E->P);
  const char *params = "const bp_real *restrict params, const bp_real *restrict inputs, "
                       "bp_real *restrict outputs, bp_real *restrict ws";
  begin_plan(E, &p, roots, nroots, 0, name, params, "params, inputs, outputs, ws");
  buf_printf(E->out, "static void %s(%s) {\n", name, params);
  line(E, "(void)params; (void)inputs; (void)outputs; (void)ws;");
  body(E);
  copy_outputs(E, "");
  buf_puts(E->out, "}\n\n");
  end_function(E);
  return p.s.ws_elems;
}

/* ---- init ---------------------------------------------------------------------------- */

static void emit_rng(Emitter *E, int normal, int flat) {
  buf_printf(E->out,
             "/* splitmix64: small, fast and the same on every platform. */\n"
             "static uint64_t %s__next(uint64_t *state) {\n"
             "  uint64_t z = (*state += 0x9E3779B97F4A7C15u);\n"
             "  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;\n"
             "  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;\n"
             "  return z ^ (z >> 31);\n"
             "}\n\n",
             E->P);
  if (flat) /* uniform(lo, hi) and glorot: [lo, hi), as eval.c's uniform_in */
    buf_printf(E->out,
               "/* uniform in [lo, hi): k / 2^53 for the top 53 bits k is in [0, 1); a value\n"
               "   that rounds up to hi is lo instead */\n"
               "static bp_real %s__uniform_in(uint64_t *state, double lo, double hi) {\n"
               "  double u = (double)(long long)(%s__next(state) >> 11) * (1.0 / 9007199254740992.0);\n"
               "  bp_real x = (bp_real)(lo + (hi - lo) * u);\n"
               "  return (double)x < hi ? x : (bp_real)lo;\n"
               "}\n\n",
               E->P, E->P);
  if (normal)
    buf_printf(E->out,
               "/* uniform in (0, 1] */\n"
               "static double %s__uniform(uint64_t *state) {\n"
               "  return ((double)(long long)(%s__next(state) >> 11) + 1.0) * (1.0 / 9007199254740992.0);\n"
               "}\n\n"
               "/* standard normal, Box-Muller */\n"
               "static double %s__normal(uint64_t *state) {\n"
               "  double u1 = %s__uniform(state), u2 = %s__uniform(state);\n"
               "  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);\n"
               "}\n\n",
               E->P, E->P, E->P, E->P, E->P);
}

static void emit_init(Emitter *E) {
  Ctx *c = E->c;
  int any_flat = 0, any_normal = 0;
  for (int p = 0; p < c->params.len; p++) {
    Decl *d = c->params.items[p];
    any_flat |= d->init == INIT_UNIFORM || d->init == INIT_GLOROT;
    any_normal |= d->init == INIT_NORMAL;
    if (d->init == INIT_VALUE && d->init_values) {
      int64_t n = shape_numel(d->shape);
      buf_printf(E->out, "static const bp_real %s__init_%s[%lld] = {", E->P, E->name[d->node->id],
                 (long long)n);
      for (int64_t i = 0; i < n; i++)
        buf_printf(E->out, "%s%s", i ? ", " : "", literal(E, d->init_values[i]));
      buf_puts(E->out, "};\n\n");
    }
  }
  if (any_flat || any_normal || E->has_dropout) emit_rng(E, any_normal, any_flat);
  buf_printf(E->out, "void %s_init(bp_real *params, uint64_t seed) {\n", E->P);
  line(E, "(void)params; (void)seed;");
  for (int p = 0; p < c->params.len; p++) {
    Decl *d = c->params.items[p];
    long long off = d->offset, n = shape_numel(d->shape);
    const char *N = E->name[d->node->id];
    switch (d->init) {
    case INIT_ZEROS:
    case INIT_DEFAULT:
      line(E, "for (size_t i = 0; i < %lld; i++) params[%lld + i] = 0; /* %s */", n, off, N);
      break;
    case INIT_VALUE:
      if (n == 1 && !d->init_values)
        line(E, "params[%lld] = %s; /* %s */", off, literal(E, d->init_a), N);
      else if (d->init_values)
        line(E, "for (size_t i = 0; i < %lld; i++) params[%lld + i] = %s__init_%s[i];", n, off, E->P, N);
      else
        line(E, "for (size_t i = 0; i < %lld; i++) params[%lld + i] = %s; /* %s */", n, off,
             literal(E, d->init_a), N);
      break;
    default: {
      line(E, "{ /* %s */", N);
      line(E, "  uint64_t state = seed ^ (0xD1B54A32D192ED03u * %lluu);", (unsigned long long)p + 1);
      if (d->init == INIT_NORMAL) {
        line(
            E,
            "  for (size_t i = 0; i < %lld; i++) params[%lld + i] = (bp_real)(%s + %s * %s__normal(&state));",
            n, off, dliteral(E, d->init_a), dliteral(E, d->init_b), E->P);
      } else {
        double lo = d->init_a, hi = d->init_b; /* glorot: the bounds lower.c set */
        line(E, "  for (size_t i = 0; i < %lld; i++) params[%lld + i] = %s__uniform_in(&state, %s, %s);", n, off,
             E->P, dliteral(E, lo), dliteral(E, hi));
      }
      line(E, "}");
    }
    }
  }
  buf_puts(E->out, "}\n\n");
}

/* ---- header ------------------------------------------------------------------------ */

static int kind_index(Emitter *E, const PtrVec *decls) {
  return decls == &E->c->params ? 0 : decls == &E->c->inputs ? 1 : 2;
}

static void emit_struct(Emitter *E, Buf *h, PtrVec *decls, const char *what) {
  if (!decls->len) return;
  buf_printf(h, "typedef struct %s_%s {\n", E->P, what);
  for (int i = 0; i < decls->len; i++) {
    Decl *d = decls->items[i];
    const char *N = E->field[kind_index(E, decls)][i];
    buf_printf(h, "  bp_real %s", N); /* one array dimension per axis: W[2][3] */
    for (int k = 0; k < d->shape.rank; k++)
      buf_printf(h, "[%lld]", (long long)d->shape.dim[k]);
    buf_puts(h, ";\n");
  }
  buf_printf(h, "} %s_%s;\n\n", E->P, what);
}

static void emit_layout(Emitter *E, Buf *h, PtrVec *decls, const char *kind) {
  for (int i = 0; i < decls->len; i++) {
    Decl *d = decls->items[i];
    const char *N = E->field[kind_index(E, decls)][i];
    buf_printf(h, "#define %s_%s_OFFSET %lld /* %s %s */\n", E->U, N, (long long)d->offset, kind,
               shape_str(E->c, d->shape));
    buf_printf(h, "#define %s_%s_SIZE %lld\n", E->U, N, (long long)shape_numel(d->shape));
    for (int k = 0; k < d->shape.rank; k++) /* the shape, axis by axis */
      buf_printf(h, "#define %s_%s_DIM%d %lld\n", E->U, N, k, (long long)d->shape.dim[k]);
  }
}

/* In memory, tcc needs no headers: the few declarations the code uses are
 * spelled out, which also keeps compile time down. */
static void emit_jit_prelude(Emitter *E, Buf *h) {
  (void)E;
  buf_puts(h,
           "typedef unsigned long size_t;\ntypedef unsigned long long uint64_t;\n#define NULL ((void *)0)\n"
           "#define HUGE_VAL (1e300 * 1e300)\n#define NAN (0.0 / 0.0)\n");
  static const char *const fns[] = {"exp", "log", "sqrt", "fabs", "sin", "cos", "tanh", "log1p", "expm1", "erf"};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
    buf_printf(h, "double %s(double);\nfloat %sf(float);\n", fns[i], fns[i]);
  buf_puts(h, "double pow(double, double);\nfloat powf(float, float);\n");
  for (int f = 0; f < 2; f++) {
    const char *T = f ? "float" : "double", *S = f ? "f" : "d";
    buf_printf(h, "void bpk_mv_%s(const %s *, const %s *, %s *, size_t, size_t, int);\n", S, T, T, T);
    buf_printf(h, "void bpk_mtv_%s(const %s *, const %s *, %s *, size_t, size_t, int);\n", S, T, T, T);
    buf_printf(h, "void bpk_outer_%s(const %s *, const %s *, %s *, size_t, size_t, int);\n", S, T, T, T);
    buf_printf(h, "void bpk_mm_%s(const %s *, const %s *, %s *, size_t, size_t, size_t, int, int, int);\n", S,
               T, T, T);
    buf_printf(h,
               "void bpk_mm_part_%s(const %s *, const %s *, %s *, size_t, size_t, size_t, int, int, int, int, int, "
               "int);\n",
               S, T, T, T);
    buf_printf(h, "void bpk_mm_ksplit_%s(const %s *, const %s *, %s *, size_t, size_t, size_t, int, int);\n", S,
               T, T, T);
    buf_printf(h, "void bpk_mm_ksum_%s(%s *, const %s *, size_t, size_t, size_t, size_t, int);\n", S, T, T);
    static const char *const two_in[] = {"conv2d", "conv2d_dx", "conv2d_dk", "maxpool2d_dx"};
    for (size_t k = 0; k < sizeof two_in / sizeof two_in[0]; k++)
      buf_printf(h, "void bpk_%s_%s(const %s *, const %s *, %s *, const size_t *, int);\n", two_in[k], S, T, T, T);
    static const char *const one_in[] = {"maxpool2d", "avgpool2d", "avgpool2d_dx"};
    for (size_t k = 0; k < sizeof one_in / sizeof one_in[0]; k++)
      buf_printf(h, "void bpk_%s_%s(const %s *, %s *, const size_t *, int);\n", one_in[k], S, T, T);
  }
  buf_puts(h, "\n");
}

static void emit_header(Emitter *E, Buf *h, int workspace, int64_t ws) {
  Ctx *c = E->c;
  const char *R = E->o->use_float ? "float" : "double";
  buf_printf(h,
             "/* Generated by bpc %s from %s. Do not edit: edit the .bp file and run bpc again.\n"
             " * API: docs/c-api.md. */\n",
             BPC_VERSION, c->src.name);
  if (!E->o->self_contained) buf_printf(h, "#ifndef %s_H\n#define %s_H\n\n", E->U, E->U);
  if (E->o->jit_kernels)
    emit_jit_prelude(E, h);
  else
    buf_puts(h, "#include <stddef.h>\n#include <stdint.h>\n\n");
  /* Headers of both precisions in one translation unit would read floats
     as doubles: the second one stops the compilation instead. */
  int fl = E->o->use_float;
  const char *self = E->o->header_name ? E->o->header_name : "this header";
  buf_printf(h,
             "#ifndef BP_REAL_DEFINED\n#define BP_REAL_DEFINED\n#define BP_REAL_IS_FLOAT %d\ntypedef %s bp_real;\n"
             "#elif BP_REAL_IS_FLOAT != %d\n"
             "#error \"%s is for %s but a header for %s was included first, and bp_real cannot be both: "
             "generate the models of one program with the same precision (all with bpc --float, or none)\"\n"
             "#endif\n\n",
             fl, R, fl, self, fl ? "float (bpc --float)" : "double", fl ? "double" : "float");
  if (!E->o->self_contained) buf_puts(h, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
  buf_printf(h, "#define %s_NUM_PARAMS %lld\n#define %s_NUM_INPUTS %lld\n#define %s_NUM_OUTPUTS %lld\n", E->U,
             (long long)c->num_params, E->U, (long long)c->num_inputs, E->U, (long long)c->num_outputs);
  buf_printf(h,
             "#define %s_WORKSPACE %d /* 1: call the _ws functions with a buffer of %s_workspace_size() "
             "reals */\n",
             E->U, workspace, E->P);
  buf_printf(h,
             "#define %s_HAS_DROPOUT %d /* 1: the _train functions draw dropout masks; 0: they ignore the "
             "seed */\n\n",
             E->U, E->has_dropout);
  emit_layout(E, h, &c->params, "param");
  emit_layout(E, h, &c->inputs, "input");
  emit_layout(E, h, &c->outputs, "output");
  buf_puts(h, "\n");
  emit_struct(E, h, &c->params, "params");
  emit_struct(E, h, &c->inputs, "inputs");
  emit_struct(E, h, &c->outputs, "outputs");
  buf_printf(h, "void %s_init(bp_real *params, uint64_t seed);\n", E->P);
  const char *ws_arg = workspace ? ", bp_real *ws" : "";
  const char *ws_sfx = workspace ? "_ws" : "";
  if (workspace) buf_printf(h, "size_t %s_workspace_size(void); /* %lld reals */\n", E->P, (long long)ws);
  buf_printf(h, "bp_real %s_forward%s(const bp_real *params, const bp_real *inputs%s);\n", E->P, ws_sfx,
             ws_arg);
  buf_printf(h, "bp_real %s_backward%s(const bp_real *params, const bp_real *inputs, bp_real *grad%s);\n",
             E->P, ws_sfx, ws_arg);
  buf_printf(h,
             "bp_real %s_backward_batch%s(const bp_real *params, const bp_real *inputs, size_t n, bp_real "
             "*grad%s);\n",
             E->P, ws_sfx, ws_arg);
  buf_printf(h, "void %s_predict%s(const bp_real *params, const bp_real *inputs, bp_real *outputs%s);\n",
             E->P, ws_sfx, ws_arg);
  buf_printf(
      h,
      "bp_real %s_backward_train%s(const bp_real *params, const bp_real *inputs, bp_real *grad, uint64_t "
      "seed%s);\n",
      E->P, ws_sfx, ws_arg);
  buf_printf(h,
             "bp_real %s_backward_batch_train%s(const bp_real *params, const bp_real *inputs, size_t n, "
             "bp_real *grad, uint64_t seed%s);\n",
             E->P, ws_sfx, ws_arg);
  buf_printf(
      h, "bp_real %s_backward_inputs%s(const bp_real *params, const bp_real *inputs, bp_real *dinputs%s);\n",
      E->P, ws_sfx, ws_arg);
  if (!E->o->self_contained) buf_puts(h, "\n#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
}

/* What the runtime calls (JIT mode): whole batches with a caller-owned
 * workspace, sums rather than means so threads can split a batch. */
static void emit_runtime_entry_points(Emitter *E, int64_t ws, int batch) {
  Ctx *c = E->c;
  const char *P = E->P;
  const char *step =
      c->num_inputs ? arena_printf(&c->arena, "inputs + e * %lld", (long long)c->num_inputs) : "inputs";
  const char *ostep =
      arena_printf(&c->arena, "outputs ? outputs + e * %lld : outputs", (long long)c->num_outputs);
  /* dropout 1: example e's masks from seed + e (bpc train); 0: none (check) */
  const char *unused = E->has_dropout ? "" : "  (void)dropout;\n  (void)seed;\n";
  buf_printf(E->out, "size_t %s_workspace_size(void) { return %lld; }\n\n", P, (long long)ws);
  buf_printf(E->out,
             "bp_real %s_train_batch(const bp_real *params, const bp_real *inputs, size_t n, bp_real *grad, "
             "bp_real *outputs, bp_real *ws, int acc, int dropout, uint64_t seed) {\n"
             "  bp_real loss_sum = 0;\n%s"
             "  if (n == 0 && !acc)\n"
             "    for (size_t i = 0; i < %lld; i++) grad[i] = 0;\n"
             "  for (size_t e = 0; e < n; e++)\n"
             "    loss_sum += %s__backward_add(params, %s, grad, ws, acc || e > 0, %s%s);\n"
             "  return loss_sum;\n}\n\n",
             P, unused, (long long)c->num_params, P, step, ostep,
             E->has_dropout ? ", dropout, seed + e" : "");
  buf_printf(E->out,
             "bp_real %s_eval_batch(const bp_real *params, const bp_real *inputs, size_t n, bp_real "
             "*outputs, bp_real *ws) {\n"
             "  bp_real loss_sum = 0;\n"
             "  for (size_t e = 0; e < n; e++)\n"
             "    loss_sum += %s__forward(params, %s, ws, %s);\n"
             "  return loss_sum;\n}\n\n",
             P, P, step, ostep);
  buf_printf(
      E->out,
      "void %s_predict_ws(const bp_real *params, const bp_real *inputs, bp_real *outputs, bp_real *ws) {\n"
      "  %s__predict(params, inputs, outputs, ws);\n}\n\n",
      P, P);
  /* a whole batch of exactly fixed_batch() examples, stored input by input */
  buf_printf(E->out, "int %s_fixed_batch(void) { return %d; }\n\n", P, batch);
  if (!batch) return;
  buf_printf(
      E->out,
      "bp_real %s_train_fixed(const bp_real *params, const bp_real *inputs, bp_real *grad, bp_real *outputs, "
      "bp_real *ws, int acc, int dropout, uint64_t seed) {\n%s"
      "  return %s__backward_add_b(params, inputs, grad, ws, acc, outputs%s);\n}\n\n"
      "bp_real %s_eval_fixed(const bp_real *params, const bp_real *inputs, bp_real *outputs, bp_real *ws) {\n"
      "  return %s__forward_b(params, inputs, ws, outputs);\n}\n",
      P, unused, P, E->has_dropout ? ", dropout, seed" : "", P, P);
  if (!E->team) return;
  buf_printf(E->out,
             "\n/* the same, by threads together: part of parts, sync(team) their barrier */\n"
             "bp_real %s_train_team(const bp_real *params, const bp_real *inputs, bp_real *grad, bp_real *outputs, "
             "bp_real *ws, int acc, int dropout, uint64_t seed, int part, int parts, void (*sync)(void *), "
             "void *team) {\n%s"
             "  return %s__backward_add_t(params, inputs, grad, ws, acc, outputs%s, part, parts, sync, team);\n}\n",
             P, unused, P, E->has_dropout ? ", dropout, seed" : "");
  buf_printf(E->out,
             "\n/* the team's workspace needs this many reals more for each part */\n"
             "size_t %s_team_scratch_size(void) { return %lld; }\n",
             P, (long long)E->team_scratch);
}

/* The public functions: thin wrappers that own (or take) the workspace. */
typedef struct Wrapping {
  const char *sfx, *arg; /* "_ws" and ", bp_real *ws" for the workspace forms, else "" */
  const char *decl_ws;   /* the stack workspace of the other form, declared */
  const char *call_ws;   /* ", ws" to pass the workspace on to another public function, else "" */
} Wrapping;

/* The mean loss and gradient over n examples: the inference form, or with
 * train the one whose example e draws its dropout masks from seed + e. */
static void emit_batch_wrapper(Emitter *E, const Wrapping *w, int train) {
  Ctx *c = E->c;
  Buf *o = E->out;
  const char *P = E->P;
  /* a model without parameters has no gradient to clear or scale (and a
     loop to 0 would warn under -Wextra) */
  long long np = (long long)c->num_params;
  const char *clear = np ? arena_printf(&c->arena, "    for (size_t i = 0; i < %lld; i++) grad[i] = 0;\n", np)
                         : "    (void)grad;\n";
  const char *scale = np ? arena_printf(&c->arena, "    for (size_t i = 0; i < %lld; i++) grad[i] *= scale;\n", np)
                         : "";
  const char *dropout = !E->has_dropout ? "" : train ? ", 1, seed + e" : ", 0, 0";
  if (train)
    buf_printf(
        o,
        "/* The same with dropout, example e's masks drawn from seed + e. */\n"
        "bp_real %s_backward_batch_train%s(const bp_real *params, const bp_real *inputs, size_t n, bp_real "
        "*grad, uint64_t seed%s) {\n",
        P, w->sfx, w->arg);
  else
    buf_printf(o,
               "/* Mean loss and mean gradient over n examples stored one after another. */\n"
               "bp_real %s_backward_batch%s(const bp_real *params, const bp_real *inputs, size_t n, bp_real "
               "*grad%s) {\n",
               P, w->sfx, w->arg);
  if (train && !E->has_dropout) {
    buf_printf(
        o, "  (void)seed; /* no dropout */\n  return %s_backward_batch%s(params, inputs, n, grad%s);\n}\n\n",
        P, w->sfx, w->call_ws);
    return;
  }
  buf_printf(o,
             "%s"
             "  bp_real loss_sum = 0;\n"
             "  if (n == 0) {\n"
             "%s"
             "    return 0;\n"
             "  }\n"
             "  for (size_t e = 0; e < n; e++)\n"
             "    loss_sum += %s__backward_add(params, %s, grad, ws, e > 0%s);\n"
             "  {\n"
             "    const bp_real scale = (bp_real)1 / (bp_real)n;\n"
             "%s"
             "    return loss_sum * scale;\n"
             "  }\n}\n\n",
             w->decl_ws, clear, P,
             c->num_inputs ? arena_printf(&c->arena, "inputs + e * %lld", (long long)c->num_inputs)
                           : "inputs",
             dropout, scale);
}

/* The stack form's workspace of n elements, declared. */
static const char *stack_workspace(Emitter *E, int64_t n) {
  return n ? arena_printf(&E->c->arena, "  bp_real ws[%lld];\n", (long long)n) : "  bp_real *ws = NULL;\n";
}

/* ws: the workspace of every function but m_backward_inputs, which needs
 * ws_inputs (its own, in the stack form). */
static void emit_wrappers(Emitter *E, int workspace, int64_t ws, int64_t ws_inputs) {
  Ctx *c = E->c;
  Buf *o = E->out;
  const char *P = E->P;
  Wrapping w = {workspace ? "_ws" : "", workspace ? ", bp_real *ws" : "", "", workspace ? ", ws" : ""};
  if (!workspace) w.decl_ws = stack_workspace(E, ws);
  const char *no_dropout = E->has_dropout ? ", 0, 0" : "";
  if (workspace)
    buf_printf(o, "size_t %s_workspace_size(void) { return %lld; }\n\n", P, (long long)max64(ws, ws_inputs));
  buf_printf(o,
             "bp_real %s_forward%s(const bp_real *params, const bp_real *inputs%s) {\n%s"
             "  return %s__forward(params, inputs, ws);\n}\n\n",
             P, w.sfx, w.arg, w.decl_ws, P);
  buf_printf(o,
             "bp_real %s_backward%s(const bp_real *params, const bp_real *inputs, bp_real *grad%s) {\n%s"
             "  return %s__backward_add(params, inputs, grad, ws, 0%s);\n}\n\n",
             P, w.sfx, w.arg, w.decl_ws, P, no_dropout);
  emit_batch_wrapper(E, &w, 0);
  buf_printf(o,
             "void %s_predict%s(const bp_real *params, const bp_real *inputs, bp_real *outputs%s) {\n%s"
             "  %s__predict(params, inputs, outputs, ws);\n}\n\n",
             P, w.sfx, w.arg, w.decl_ws, P);
  buf_printf(
      o,
      "/* The gradient with dropout, its masks drawn from seed. */\n"
      "bp_real %s_backward_train%s(const bp_real *params, const bp_real *inputs, bp_real *grad, uint64_t "
      "seed%s) {\n",
      P, w.sfx, w.arg);
  if (E->has_dropout)
    buf_printf(o, "%s  return %s__backward_add(params, inputs, grad, ws, 0, 1, seed);\n}\n\n", w.decl_ws, P);
  else
    buf_printf(o, "  (void)seed; /* no dropout */\n  return %s_backward%s(params, inputs, grad%s);\n}\n\n", P,
               w.sfx, w.call_ws);
  emit_batch_wrapper(E, &w, 1);
  buf_printf(
      o,
      "/* dloss/dinputs into dinputs, in the inputs' layout; returns the loss. */\n"
      "bp_real %s_backward_inputs%s(const bp_real *params, const bp_real *inputs, bp_real *dinputs%s) {\n",
      P, w.sfx, w.arg);
  if (c->num_inputs)
    buf_printf(o, "%s  return %s__backward_inputs(params, inputs, dinputs, ws);\n}\n",
               workspace ? "" : stack_workspace(E, ws_inputs), P);
  else
    buf_printf(o, "  (void)dinputs; /* no inputs */\n  return %s_forward%s(params, inputs%s);\n}\n", P, w.sfx,
               w.call_ws);
}

/* Dropout's mask, counter-based so that any element of any example can be
 * drawn in any order (threads, batches, forward and backward): the stream
 * of dropout call `site` of the example with seed `seed` is splitmix64's
 * draw from the state seed + site G, and element i is kept when the top 53
 * bits of the draw from the state stream + i G reach keep_from = p 2^53. */
static void emit_dropout_mask(Emitter *E) {
  buf_printf(
      E->out,
      "/* Dropout's mask: 1 when off; else 1 / (1 - p) (scale) where element i of dropout call site is\n"
      "   kept, 0 where it is dropped (docs/c-api.md) */\n"
      "static bp_real %s__dropout_mask(int on, uint64_t seed, uint64_t site, uint64_t i, uint64_t keep_from, "
      "bp_real scale) {\n"
      "  uint64_t state;\n"
      "  if (!on) return 1;\n"
      "  state = seed + site * 0x9E3779B97F4A7C15u;\n"
      "  state = %s__next(&state) + i * 0x9E3779B97F4A7C15u;\n"
      "  return %s__next(&state) >> 11 >= keep_from ? scale : 0;\n"
      "}\n",
      E->P, E->P, E->P);
}

static void emit_helpers(Emitter *E, int sigmoid, int softplus, int gelu) {
  const char *R = "bp_real";
  if (E->has_dropout) emit_dropout_mask(E);
  if (gelu) /* x Phi(x); the casts keep float code in float */
    buf_printf(E->out, "static %s %s_gelu(%s x) { return (%s)0.5 * x * (1 + %s(x * (%s)0.70710678118654752440)); }\n",
               R, E->P, R, R, fn(E, "erf"), R);
  if (sigmoid)
    buf_printf(E->out, "static %s %s_sigmoid(%s x) { return 1 / (1 + %s(-x)); }\n", R, E->P, R, fn(E, "exp"));
  if (softplus)
    buf_printf(E->out, "static %s %s_softplus(%s x) { return x > 0 ? x + %s(%s(-x)) : %s(%s(x)); }\n", R,
               E->P, R, fn(E, "log1p"), fn(E, "exp"), fn(E, "log1p"), fn(E, "exp"));
  buf_puts(E->out, "\n");
}

/* Marks in used[] every op that a function emitted for t computes (and,
 * with with_input_grads, the one for dloss/dinputs). */
static void target_ops(Ctx *c, Target *t, int with_input_grads, char *used) {
  ArenaMark scratch = arena_mark(&c->arena);
  Node **roots = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(c->outputs.len + c->inputs.len + 1));
  int nroots = 0;
  roots[nroots++] = t->loss;
  for (int i = 0; i < c->outputs.len; i++)
    roots[nroots++] = t->outputs[i];
  for (int i = 0; with_input_grads && i < c->inputs.len; i++) /* m_backward_inputs (sigmoid for softplus) */
    if (c->input_grads[i]) roots[nroots++] = c->input_grads[i];
  Schedule all;
  schedule_function(c, roots, nroots, t->grad_terms, 0, &all);
  for (int i = 0; i < all.order.len; i++)
    used[((Node *)all.order.items[i])->op] = 1;
  arena_release(&c->arena, scratch);
}

static const char *upper(Arena *a, const char *s) {
  char *u = arena_strndup(a, s, strlen(s));
  for (char *p = u; *p; p++)
    *p = (char)toupper((unsigned char)*p);
  return u;
}

void emit_c(Ctx *c, const EmitOptions *o, Buf *c_out, Buf *h_out) {
  Emitter E = {.c = c,
               .o = o,
               .be = o->jit_kernels ? &kernel_calls : &plain_loops,
               .P = o->prefix,
               .U = upper(&c->arena, o->prefix),
               .sfx = ""};
  Target one, many;
  target_per_example(c, &one);
  const char *why = NULL;
  int batched = o->jit_kernels && o->batch > 1 && batch_target(c, o->batch, &many, &why);
  if (o->batch_why) *o->batch_why = batched ? NULL : why;
  /* every node exists now: name them */
  assign_names(&E);
  /* functions first, into a scratch buffer, to learn the workspace size */
  Buf fns = {0};
  E.out = &fns;
  char used[OP_COUNT] = {0};
  target_ops(c, &one, !o->jit_kernels, used);
  if (batched) target_ops(c, &many, 0, used);
  E.has_dropout = used[OP_DROPOUT];
  if (used[OP_SIGMOID] || used[OP_SOFTPLUS] || used[OP_GELU] || E.has_dropout)
    emit_helpers(&E, used[OP_SIGMOID], used[OP_SOFTPLUS], used[OP_GELU]);
  E.t = &one;
  int64_t ws = emit_forward(&E);
  ws = max64(ws, emit_backward(&E));
  /* (the runtime has no use for dloss/dinputs) */
  int64_t ws_inputs = !o->jit_kernels && c->num_inputs ? emit_backward_inputs(&E) : 0;
  ws = max64(ws, emit_predict(&E));
  if (batched) {
    E.t = &many;
    E.sfx = "_b";
    ws = max64(ws, emit_forward(&E));
    ws = max64(ws, emit_backward(&E));
    if (o->team && team_supported(c)) {
      E.team = 1;
      ws = max64(ws, emit_backward(&E));
    }
    E.t = &one;
    E.sfx = "";
  }
  int64_t ws_all = max64(ws, ws_inputs);
  int workspace =
      ws_all * (int64_t)(o->use_float ? sizeof(float) : sizeof(double)) > (int64_t)BPC_STACK_BYTES;
  E.out = c_out;
  if (o->self_contained) {
    emit_header(&E, c_out, workspace, ws_all);
    buf_puts(c_out, o->jit_kernels ? "\n" : "\n#include <math.h>\n\n");
  } else {
    emit_header(&E, h_out, workspace, ws_all);
    buf_printf(c_out,
               "/* Generated by bpc %s from %s. Do not edit. */\n#include <math.h>\n\n#include \"%s\"\n\n",
               BPC_VERSION, c->src.name, o->header_name);
  }
  emit_init(&E);
  buf_puts(c_out, fns.data ? fns.data : "");
  buf_free(&fns);
  if (o->jit_kernels)
    emit_runtime_entry_points(&E, ws, batched ? o->batch : 0); /* with the team's, if E.team */
  else
    emit_wrappers(&E, workspace, ws, ws_inputs);
}
