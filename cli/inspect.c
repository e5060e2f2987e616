/* inspect.c — seeing backprop: `bpc grad`, `check`, `graph`, `explain` and
 * `trace`. All but check evaluate the graph with the reference interpreter
 * (compiler/eval.c), so they need no compiler and no training; check runs
 * the compiled code through the JIT against finite differences. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "runtime.h"

enum { MAX_SETS = 64 };

typedef struct SetOpt {
  const char *name;
  double *values;
  int n;
  int fill; /* --fill: values[0] into every element */
} SetOpt;

typedef struct InspectOptions {
  const char *command, *model, *wrt, *format, *out, *perturb;
  SetOpt sets[MAX_SETS];
  int nsets;
  DefineOpt defines[64];
  int ndefines;
  int json, points, all_elements, use_cc, batched, summary;
  double tol;
  uint64_t seed;
} InspectOptions;

static const char grad_help[] =
    "usage: bpc grad MODEL.bp [--wrt NAME] [--set NAME=V[,V...]]... [--fill NAME=V]... [--json | --summary]\n"
    "                [-D NAME=INT]\n"
    "Prints the loss and dloss/dparam for every parameter, at the declared initial values or at the\n"
    "values given with --set (parameters and inputs; tensors as comma-separated row-major values) or\n"
    "--fill (one value for every element). Inputs not set are 0. --wrt NAME prints dloss/dNAME alone,\n"
    "for a parameter or an input (an input's gradient: a saliency map). --summary prints one line per\n"
    "parameter instead: the norm of its gradient and its largest element (a vanishing gradient shows\n"
    "as norms falling layer by layer). Dropout is the identity here, as in eval.\n";
static const char check_help[] =
    "usage: bpc check MODEL.bp [--points N] [--tol X] [--all] [--batched] [--set ...] [--seed N]\n"
    "Compares the compiled gradient with finite differences (Richardson-extrapolated, with an error\n"
    "bound of their own) at N random points (default 4): parameters from their initialisers, inputs\n"
    "random unless set. Up to 64 elements per parameter (--all: every element). --batched checks the\n"
    "functions bpc train runs, compiled for a batch of 4 examples, on the summed loss. Exit status 0\n"
    "when all agree within the relative tolerance (default 1e-6) plus the differences' own error.\n";
static const char graph_help[] =
    "usage: bpc graph MODEL.bp [--set ...] [--format dot|svg|png] [-o FILE]\n"
    "The format is taken from -o's extension (.dot, .gv, .svg, .png) when --format is not given.\n"
    "The computational graph: inputs and parameters on the left, the loss on the right. With values\n"
    "(--set, or a model without inputs) each edge shows its forward value above and its gradient below.\n"
    "svg and png need Graphviz's dot program.\n";
static const char explain_help[] =
    "usage: bpc explain MODEL.bp --wrt PARAM [--set ...]\n"
    "The chain rule for dloss/dPARAM: every path from the loss to PARAM, the local derivative on each\n"
    "edge, the product along each path, the sum over paths, and the simplified result.\n";
static const char trace_help[] =
    "usage: bpc trace MODEL.bp [--set ...]\n"
    "The backward sweep step by step: each node, its incoming gradient, each local derivative and the\n"
    "gradient it sends on.\n";

/* --set NAME=V[,V...] gives every element; --fill NAME=V one value for all. */
static void parse_set(InspectOptions *o, const char *opt, const char *arg) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg) cli_usage_error("%s takes NAME=V%s, got '%s'", opt, strcmp(opt, "--set") ? "" : "[,V...]", arg);
  if (o->nsets == MAX_SETS) cli_usage_error("too many --set and --fill options (at most %d)", MAX_SETS);
  SetOpt *s = &o->sets[o->nsets++];
  s->name = strndup(arg, (size_t)(eq - arg));
  s->fill = !strcmp(opt, "--fill");
  int cap = 8;
  s->values = malloc(sizeof(double) * (size_t)cap);
  const char *p = eq + 1;
  for (;;) {
    char *end;
    errno = 0;
    double v = strtod(p, &end);
    if (end == p || (*end && *end != ',') || errno == ERANGE)
      cli_usage_error("%s %s: '%.*s' is not a number", opt, s->name, (int)strcspn(p, ","), p);
    if (s->n == cap) {
      cap *= 2;
      s->values = realloc(s->values, sizeof(double) * (size_t)cap);
    }
    s->values[s->n++] = v;
    if (!*end) break;
    if (s->fill) cli_usage_error("--fill %s takes one value (--set %s=V,V,... gives each element)", s->name, s->name);
    p = end + 1;
  }
}

/* The options each command takes (the parser refuses the others). */
static const char *accepted_options(const char *cmd) {
  if (!strcmp(cmd, "grad")) return "--wrt --set --fill --json --summary -D";
  if (!strcmp(cmd, "check"))
    return "--points --tol --all --batched --set --fill --seed -D --jit --test-perturb-gradient";
  if (!strcmp(cmd, "graph")) return "--set --fill --format -o -D";
  if (!strcmp(cmd, "explain")) return "--wrt --set --fill -D";
  return "--set --fill -D";
}

/* The format from -o's extension when --format is not given; an
 * extension that disagrees with --format is refused. */
static const char *graph_format(const char *format, const char *out) {
  const char *dot = out ? strrchr(out, '.') : NULL, *slash = out ? strrchr(out, '/') : NULL;
  const char *ext = dot && (!slash || dot > slash) ? dot + 1 : NULL;
  int known = ext && (!strcmp(ext, "dot") || !strcmp(ext, "gv") || !strcmp(ext, "svg") || !strcmp(ext, "png"));
  const char *from_ext = !known ? NULL : !strcmp(ext, "gv") ? "dot" : ext;
  if (!format) return from_ext ? from_ext : "dot";
  if (strcmp(format, "dot") && strcmp(format, "svg") && strcmp(format, "png"))
    cli_usage_error("--format takes dot, svg or png, not '%s'", format);
  if (from_ext && strcmp(from_ext, format))
    cli_usage_error("--format %s but -o %s names a .%s file; drop --format or change the name", format, out, ext);
  return format;
}

static void parse(InspectOptions *o, int argc, char **argv, const char *help) {
  memset(o, 0, sizeof *o);
  o->command = argv[0];
  o->points = 4;
  o->use_cc = -1; /* --jit auto */
  o->tol = 1e-6;
  o->seed = 1;
  CliArg *args = malloc(sizeof(CliArg) * (size_t)argc);
  int nargs = cli_parse(argc, argv, o->command, accepted_options(o->command), help, args);
  for (int i = 0; i < nargs; i++) {
    const char *a = args[i].name, *v = args[i].value;
    if (!a) {
      if (o->model) cli_usage_error("%s: more than one model given ('%s' and '%s')", o->command, o->model, v);
      o->model = v;
    } else if (!strcmp(a, "--json"))
      o->json = 1;
    else if (!strcmp(a, "--summary"))
      o->summary = 1;
    else if (!strcmp(a, "--all"))
      o->all_elements = 1;
    else if (!strcmp(a, "--batched"))
      o->batched = 1;
    else if (!strcmp(a, "--set") || !strcmp(a, "--fill"))
      parse_set(o, a, v);
    else if (!strcmp(a, "--format"))
      o->format = v;
    else if (!strcmp(a, "-o"))
      o->out = v;
    else if (!strcmp(a, "--wrt"))
      o->wrt = v;
    else if (!strcmp(a, "--test-perturb-gradient"))
      o->perturb = v;
    else if (!strcmp(a, "--jit")) {
      if (strcmp(v, "tcc") && strcmp(v, "cc") && strcmp(v, "auto"))
        cli_usage_error("--jit takes auto, tcc or cc, not '%s'", v);
      o->use_cc = !strcmp(v, "cc") ? 1 : !strcmp(v, "tcc") ? 0 : -1;
    } else if (!strcmp(a, "-D")) {
      if (o->ndefines == 64 || !cli_parse_define(v, &o->defines[o->ndefines++]))
        cli_usage_error("-D takes NAME=INT, got '%s'", v);
    } else if (!strcmp(a, "--tol")) {
      o->tol = cli_real(a, v, 1e-300, 1);
    } else if (!strcmp(a, "--points")) {
      o->points = (int)cli_int(a, v, 1, 1000000);
    } else {
      o->seed = (uint64_t)cli_int(a, v, 0, 1000000);
    }
  }
  free(args);
  if (!o->model) cli_usage_error("%s: no model given", o->command);
  o->format = graph_format(o->format, o->out);
  if (o->out && strcmp(o->out, "-")) {
    const char *outs[1] = {o->out}, *opts[1] = {"-o"}, *ins[1] = {o->model};
    cli_check_outputs(outs, opts, 1, ins, 1);
  }
}

static void options_free(InspectOptions *o) {
  for (int i = 0; i < o->nsets; i++) {
    free((char *)o->sets[i].name);
    free(o->sets[i].values);
  }
  for (int i = 0; i < o->ndefines; i++)
    free((char *)o->defines[i].name);
}

/* What a command leaves to free when it is done. */
static void finish(InspectOptions *o, Ctx *c, double *params, double *inputs, Values *v) {
  values_free(v);
  free(params);
  free(inputs);
  ctx_free(c);
  options_free(o);
}

/* The parameter or input called name: its slot, *is_input saying which;
 * -1 when the model has neither. */
static int find_tensor(Ctx *c, const char *name, int *is_input) {
  for (*is_input = 0; *is_input < 2; ++*is_input) {
    const PtrVec *decls = *is_input ? &c->inputs : &c->params;
    for (int k = 0; k < decls->len; k++)
      if (!strcmp(((Decl *)decls->items[k])->name, name)) return k;
  }
  return -1;
}

/* Applies --set to the flat arrays; marks which inputs were given. */
static void apply_sets(InspectOptions *o, Ctx *c, double *params, double *inputs, char *input_given) {
  for (int i = 0; i < o->nsets; i++) {
    SetOpt *s = &o->sets[i];
    int is_input, slot = find_tensor(c, s->name, &is_input);
    if (slot < 0)
      cli_usage_error("--set %s: the model has no parameter or input named '%s'", s->name, s->name);
    Decl *d = (is_input ? c->inputs : c->params).items[slot];
    double *dst = is_input ? inputs : params;
    if (is_input && input_given) input_given[slot] = 1;
    int64_t n = shape_numel(d->shape);
    if (!s->fill && s->n != n) {
      Buf example = {0};
      for (int64_t k = 0; k < n && k < 4; k++)
        buf_printf(&example, "%s%lld", k ? "," : "", (long long)k + 1);
      cli_usage_error("--set %s: '%s' has shape %s (%lld value%s), but %d value%s given; give all of them "
                      "(--set %s=%s%s) or one for every element (--fill %s=V)",
                      s->name, s->name, shape_str(c, d->shape), (long long)n, n == 1 ? "" : "s", s->n,
                      s->n == 1 ? " was" : "s were", s->name, example.data, n > 4 ? ",..." : "", s->name);
    }
    for (int64_t k = 0; k < n; k++)
      dst[d->offset + k] = s->values[s->fill ? 0 : k];
  }
}

static void compile_or_exit(InspectOptions *o, Ctx *c) {
  /* explain and trace show each edge's local derivative as autodiff built it */
  int locals = !strcmp(o->command, "explain") || !strcmp(o->command, "trace");
  CompileOptions co = {.defines = o->defines, .ndefines = o->ndefines, .record_locals = locals};
  cli_compile_or_exit(c, o->model, &co);
}

/* Parameters from their initialisers, then --set. */
static void point_from_options(InspectOptions *o, Ctx *c, double **params, double **inputs) {
  *params = calloc((size_t)c->num_params + 1, sizeof(double));
  *inputs = calloc((size_t)c->num_inputs + 1, sizeof(double));
  eval_init_params(c, *params, o->seed);
  apply_sets(o, c, *params, *inputs, NULL);
}

/* Warnings for values the math cannot have: log of a non-positive number,
 * division by zero, and results that are no longer finite, with the line. */
static void warn_bad_numbers(Ctx *c, const Values *v) {
  int shown = 0;
  for (int i = 0; i < v->n && shown < 10; i++) {
    Node *n = c->nodes.items[i];
    if (!v->v[i] || n->is_backward) continue;
    int64_t len = shape_numel(n->shape);
    const double *a = n->args[0] ? v->v[n->args[0]->id] : NULL, *b = n->args[1] ? v->v[n->args[1]->id] : NULL;
    const char *what = NULL;
    for (int64_t k = 0; k < len && !what; k++) {
      if (n->op == OP_LOG && a && a[n->args[0]->shape.rank ? k : 0] <= 0)
        what = "log of a number that is not positive";
      else if (n->op == OP_DIV && b && shape_eq(n->args[1]->shape, n->shape) && b[k] == 0)
        what = "division by zero";
      else if (n->op == OP_DIV && b && n->args[1]->shape.rank == 0 && b[0] == 0)
        what = "division by zero";
      else if (n->op == OP_SQRT && a && a[n->args[0]->shape.rank ? k : 0] < 0)
        what = "square root of a negative number";
      else if (!isfinite(v->v[i][k]) && a && (!n->args[0] || isfinite(a[0])))
        what = "the result is not a finite number";
    }
    if (what) {
      fprintf(stderr, "%s:%d:%d: warning: %s\n", c->src.name, n->loc.line, n->loc.col, what);
      shown++;
    }
  }
}

/* Plain output shows 10 significant digits; JSON as many as reading the
 * number back exactly takes (2.2, not 2.2000000000000002, but all 16 of
 * 0.3683903060252159). JSON has no NaN or infinity: those are null. */
/* Compiles the model and evaluates it at the initial values and --set. */
static void evaluate_model(InspectOptions *o, Ctx *c, double **params, double **inputs, Values *v) {
  compile_or_exit(o, c);
  point_from_options(o, c, params, inputs);
  eval_graph(c, *params, *inputs, v);
  warn_bad_numbers(c, v);
}

/* JSON: the fewest digits (15 to 17) that read back as the same double,
 * so a program reading the numbers gets exactly what bpc computed. */
static void print_number(double x, int json) {
  if (!isfinite(x)) {
    fputs(json ? "null" : isnan(x) ? "nan" : x > 0 ? "inf" : "-inf", stdout);
    return;
  }
  if (x == 0) x = 0; /* no -0 */
  if (!json) {
    printf("%.10g", x);
    return;
  }
  char text[32];
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(text, sizeof text, "%.*g", digits, x);
    if (strtod(text, NULL) == x) break;
  }
  fputs(text, stdout);
}

/* Nested lists following the shape (axis k's lists hold axis k+1's);
 * recursion depth is the rank, at most BPC_MAX_RANK. */
static void print_axis_json(const double *x, Shape s, int k) {
  int64_t inner = 1;
  for (int i = k + 1; i < s.rank; i++)
    inner *= s.dim[i];
  putchar('[');
  for (int64_t r = 0; r < s.dim[k]; r++) {
    if (r) fputs(", ", stdout);
    if (k + 1 < s.rank)
      print_axis_json(x + r * inner, s, k + 1);
    else
      print_number(x[r], 1);
  }
  putchar(']');
}

static void print_tensor_json(const double *x, Shape s) {
  if (s.rank == 0)
    print_number(x[0], 1);
  else
    print_axis_json(x, s, 0);
}

/* A vector on the label's line; a matrix row by row; a higher rank row by
 * row of its last axis, each row after its leading indices. */
static void print_tensor_plain(const char *label, const double *x, Shape s, Ctx *c) {
  if (s.rank == 0) {
    printf("%s = ", label);
    print_number(x[0], 0);
    putchar('\n');
    return;
  }
  int64_t cols = s.dim[s.rank - 1], rows = shape_numel(s) / cols;
  printf("%s %s =%s", label, shape_str(c, s), s.rank >= 2 ? "\n" : " ");
  for (int64_t r = 0; r < rows; r++) {
    if (s.rank >= 2) fputs("  ", stdout);
    if (s.rank > 2) { /* the row's leading indices, "[1,0] " */
      int64_t coord[BPC_MAX_RANK], at = r;
      for (int k = s.rank - 2; k >= 0; k--) {
        coord[k] = at % s.dim[k];
        at /= s.dim[k];
      }
      for (int k = 0; k <= s.rank - 2; k++)
        printf("%s%lld", k ? "," : "[", (long long)coord[k]);
      fputs("] ", stdout);
    }
    putchar('[');
    for (int64_t j = 0; j < cols; j++) {
      if (j) fputs(", ", stdout);
      print_number(x[r * cols + j], 0);
    }
    fputs("]\n", stdout);
  }
}

static void print_norm_line(Ctx *c, int width, const char *label, Shape s, const double *g) {
  double sq = 0, big = 0;
  for (int64_t i = 0; i < shape_numel(s); i++) {
    sq += g[i] * g[i];
    if (fabs(g[i]) > big) big = fabs(g[i]);
  }
  printf("%-*s  %-14s  %-12.4e  %.4e\n", width, label, shape_str(c, s), sqrt(sq), big);
}

/* One line per parameter: the norm of its gradient and its largest
 * element in magnitude, in a table; a stack of matrices (rank 3 or more)
 * also one line per matrix, so layers in a loop can be compared. */
static void print_grad_summary(Ctx *c, const Values *v, double loss) {
  int width = 9; /* "parameter" */
  for (int p = 0; p < c->params.len; p++) {
    Decl *d = c->params.items[p];
    char last[BPC_MAX_IDENT + 32]; /* the widest label: the last matrix of a stack */
    snprintf(last, sizeof last, "  %s[%lld]", d->name, (long long)(d->shape.rank >= 3 ? d->shape.dim[0] - 1 : 0));
    int len = d->shape.rank >= 3 ? (int)strlen(last) : (int)strlen(d->name);
    if (len > width) width = len;
  }
  printf("loss = ");
  print_number(loss, 0);
  printf("\n%-*s  %-14s  %-12s  %s\n", width, "parameter", "shape", "|grad|", "max |g|");
  for (int p = 0; p < c->params.len; p++) {
    Decl *d = c->params.items[p];
    int64_t n = shape_numel(d->shape);
    double *g = calloc((size_t)n + 1, sizeof(double));
    eval_param_grad(c, v, p, g);
    print_norm_line(c, width, d->name, d->shape, g);
    if (d->shape.rank >= 3) { /* a stack of matrices (a layer each): each one's own line */
      Shape item = {d->shape.rank - 1, {0}};
      for (int k = 1; k < d->shape.rank; k++)
        item.dim[k - 1] = d->shape.dim[k];
      for (int64_t i = 0; i < d->shape.dim[0]; i++) {
        char label[BPC_MAX_IDENT + 32];
        snprintf(label, sizeof label, "  %s[%lld]", d->name, (long long)i);
        print_norm_line(c, width, label, item, g + i * shape_numel(item));
      }
    }
    free(g);
  }
}

static int run_grad(int argc, char **argv) {
  InspectOptions o;
  parse(&o, argc, argv, grad_help);
  Ctx c;
  double *params, *inputs;
  Values v;
  evaluate_model(&o, &c, &params, &inputs, &v);
  double loss = v.v[c.loss->id][0];
  if (o.json && o.summary) cli_usage_error("grad: --json and --summary cannot be combined");
  if (o.wrt && o.summary) cli_usage_error("grad: --wrt and --summary cannot be combined");
  int wrt_input = 0, wrt = o.wrt ? find_tensor(&c, o.wrt, &wrt_input) : -1;
  if (o.wrt && wrt < 0) {
    fprintf(stderr, "bpc: grad --wrt %s: the model has no parameter or input named '%s'\n", o.wrt, o.wrt);
    finish(&o, &c, params, inputs, &v);
    return 1;
  }
  if (o.summary) {
    print_grad_summary(&c, &v, loss);
    finish(&o, &c, params, inputs, &v);
    return 0;
  }
  if (o.json) {
    fputs("{\"loss\": ", stdout);
    print_number(loss, 1);
    fputs(", \"grad\": {", stdout);
  } else {
    printf("loss = ");
    print_number(loss, 0);
    putchar('\n');
  }
  /* every parameter's gradient, or with --wrt the one asked for (a parameter's or an input's) */
  int first = o.wrt ? wrt : 0, end = o.wrt ? wrt + 1 : c.params.len;
  for (int p = first; p < end; p++) {
    Decl *d = (wrt_input ? c.inputs : c.params).items[p];
    double *g = calloc((size_t)shape_numel(d->shape) + 1, sizeof(double));
    if (wrt_input)
      eval_input_grad(&c, &v, p, g);
    else
      eval_param_grad(&c, &v, p, g);
    if (o.json) {
      printf("%s\"%s\": ", p > first ? ", " : "", d->name);
      print_tensor_json(g, d->shape);
    } else {
      char label[BPC_MAX_IDENT + 16];
      snprintf(label, sizeof label, "dloss/d%s", d->name);
      print_tensor_plain(label, g, d->shape, &c);
    }
    free(g);
  }
  if (o.json) puts("}}");
  finish(&o, &c, params, inputs, &v);
  return 0;
}

/* ---- check ------------------------------------------------------------------ */


typedef struct CheckState {
  JitModel *m;
  double *ws, *p, *x;
  double *soa; /* --batched: the examples input by input, as the batched functions read them */
  int64_t i;   /* the parameter element fd_check varies */
} CheckState;

/* The loss: of one example, or with --batched the batch's summed loss
 * from the batched function. */
static double f_at(CheckState *s, const double *p, const double *x) {
  if (s->soa) return jit_eval_fixed(s->m, p, s->soa, NULL, s->ws);
  return jit_eval_batch(s->m, p, x, 1, NULL, s->ws);
}

/* The largest magnitude among the forward values: what the loss's
 * rounding is relative to (a small loss can be the difference of large
 * numbers). */
static double largest_value(Ctx *c, const Values *v) {
  double big = 0;
  for (int i = 0; i < v->n; i++) {
    Node *n = c->nodes.items[i];
    if (!v->v[i] || n->is_backward) continue;
    for (int64_t k = 0, len = shape_numel(n->shape); k < len; k++)
      if (isfinite(v->v[i][k])) big = fmax(big, fabs(v->v[i][k]));
  }
  return big;
}

/* The loss as a function of parameter element s->i alone (for fd_check). */
static double loss_of_element(void *ctx, double t) {
  CheckState *s = ctx;
  double keep = s->p[s->i];
  s->p[s->i] = t;
  double f = f_at(s, s->p, s->x);
  s->p[s->i] = keep;
  return f;
}

static int run_check(int argc, char **argv) {
  InspectOptions o;
  parse(&o, argc, argv, check_help);
  CompileOptions co = {.defines = o.defines, .ndefines = o.ndefines, .perturb_gradient = o.perturb};
  enum { CHECK_BATCH = 4 };
  int B = o.batched ? CHECK_BATCH : 1;
  JitOptions jo = {.use_cc = o.use_cc, .batch = o.batched ? CHECK_BATCH : 0};
  LoadedModel lm;
  if (load_model(&lm, o.model, &co, &jo)) return 1;
  JitModel *m = lm.jit;
  if (o.batched && m->fixed != CHECK_BATCH) {
    fprintf(stderr,
            "bpc: %s has no batched form (%s): bpc train runs it one example at a time, which bpc check "
            "without --batched checks\n",
            o.model, m->info.unbatched_why ? m->info.unbatched_why : "unknown reason");
    unload_model(&lm);
    options_free(&o);
    return 1;
  }
  Ctx *c = &lm.ctx;
  double *p = calloc((size_t)m->nparams + 1, sizeof(double)),
         *x = calloc((size_t)B * (size_t)m->ninputs + 1, sizeof(double));
  CheckState st = {m, calloc(m->ws_elems + 1, sizeof(double)), p, x,
                   o.batched ? calloc((size_t)B * (size_t)m->ninputs + 1, sizeof(double)) : NULL, 0};
  double *g = calloc((size_t)m->nparams + 1, sizeof(double));
  char *given = calloc((size_t)c->inputs.len + 1, 1);
  double *max_abs = calloc((size_t)c->params.len + 1, sizeof(double)),
         *max_rel = calloc((size_t)c->params.len + 1, sizeof(double)),
         *max_bound = calloc((size_t)c->params.len + 1, sizeof(double));
  int64_t *checked = calloc((size_t)c->params.len + 1, sizeof(int64_t));
  int skipped = 0, failed = 0;
  uint64_t rng = o.seed * 7919 + 17;
  for (int point = 0; point < o.points && !failed; point++) {
    m->init(p, o.seed + (uint64_t)point);
    double magnitude = 0;
    for (int e = 0; e < B; e++) {
      double *xe = x + (size_t)e * (size_t)m->ninputs;
      for (int64_t i = 0; i < m->ninputs; i++)
        xe[i] = random_normal(&rng);
      apply_sets(&o, c, p, xe, given);
      Values v;
      eval_graph(c, p, xe, &v);
      if (point == 0 && e == 0) warn_bad_numbers(c, &v); /* log of a negative number and friends, with their lines */
      magnitude = fmax(magnitude, largest_value(c, &v));
      values_free(&v);
    }
    if (st.soa) { /* the batch's summed gradient, from the batched function */
      jit_gather(m, x, st.soa);
      jit_train_fixed(m, p, st.soa, g, NULL, st.ws, 0, 0, 0); /* dropout off: the gradient of eval's loss */
    } else {
      jit_train_batch(m, p, x, 1, g, NULL, st.ws, 0, 0, 0);
    }
    double f0 = f_at(&st, p, x);
    for (int d = 0; d < c->params.len && !failed; d++) {
      Decl *dc = c->params.items[d];
      int64_t n = shape_numel(dc->shape), step = 1;
      if (!o.all_elements && n > 64) step = n / 64;
      for (int64_t k = 0; k < n && !failed; k += step) {
        int64_t i = st.i = dc->offset + k;
        FdCheck r = fd_check(loss_of_element, &st, p[i], f0, magnitude, g[i], o.tol);
        /* one-sided slopes that disagree at every step: a kink (relu at 0, a max tie) */
        if (r.verdict == FD_KINK) {
          skipped++;
          continue;
        }
        max_abs[d] = fmax(max_abs[d], r.abs_err);
        max_rel[d] = fmax(max_rel[d], r.rel_err);
        max_bound[d] = fmax(max_bound[d], r.rel_bound);
        checked[d]++;
        if (r.verdict == FD_DISAGREE) {
          char idx[64] = "";
          if (dc->shape.rank == 1)
            snprintf(idx, sizeof idx, "[%lld]", (long long)k);
          else if (dc->shape.rank == 2)
            snprintf(idx, sizeof idx, "[%lld, %lld]", (long long)(k / dc->shape.dim[1]),
                     (long long)(k % dc->shape.dim[1]));
          printf(
              "FAIL: dloss/d%s%s at point %d: the compiled gradient is %.10g, finite differences give %.10g "
              "(relative error %.3g > tolerance %g + finite-difference error %.2g)\n",
              dc->name, idx, point + 1, g[i], r.est.deriv, r.rel_err, o.tol, r.rel_bound);
          failed = 1;
        }
      }
    }
  }
  if (!failed) {
    printf("%-20s %10s %14s %14s %14s\n", "parameter", "checked", "max abs error", "max rel error",
           "fd error bound");
    for (int d = 0; d < c->params.len; d++)
      printf("%-20s %10lld %14.3g %14.3g %14.3g\n", ((Decl *)c->params.items[d])->name, (long long)checked[d],
             max_abs[d], max_rel[d], max_bound[d]);
    if (skipped)
      printf("skipped %d element%s at non-differentiable points (relu at 0, max ties)\n", skipped,
             skipped == 1 ? "" : "s");
    printf("ok: the %sgradient matches finite differences at %d point%s (tolerance %g)\n",
           o.batched ? "batched " : "", o.points, o.points == 1 ? "" : "s", o.tol);
  }
  free(st.ws);
  free(st.soa);
  free(p);
  free(x);
  free(g);
  free(given);
  free(max_abs);
  free(max_rel);
  free(max_bound);
  free(checked);
  unload_model(&lm);
  options_free(&o);
  return failed;
}

/* ---- graph ------------------------------------------------------------------ */

static const char *op_label(const Node *n) { return op_info[n->op].label; }

static void value_text(Buf *b, const Node *n, const double *x) {
  if (n->shape.rank == 0) {
    buf_printf(b, "%.6g", x[0] == 0 ? 0.0 : x[0]);
    return;
  }
  int64_t len = shape_numel(n->shape);
  buf_puts(b, "[");
  for (int64_t i = 0; i < len && i < 3; i++)
    buf_printf(b, "%s%.4g", i ? ", " : "", x[i] == 0 ? 0.0 : x[i]);
  buf_puts(b, len > 3 ? ", ...]" : "]");
}

/* A tensor of rank 3 or more (an image, a stack of matrices) shows its
 * shape under its name, since its edges show only its first values. */
static const char *shape_caption(const Node *n, char *out) {
  if (n->shape.rank < 3) return "";
  out[0] = '\\', out[1] = 'n';
  format_dims(out + 2, n->shape.rank, n->shape.dim);
  return out;
}

static void dot_graph(Ctx *c, const Values *v, Buf *out) {
  Schedule s;
  schedule_function(c, &c->loss, 1, NULL, 0, &s);
  dot_begin(c, &s, 12, out);
  for (int i = 0; i < s.order.len; i++) {
    Node *n = s.order.items[i];
    if (n->op == OP_CONST) {
      buf_printf(out, "  n%d [label=\"%g\", shape=plaintext];\n", n->id, n->value);
      continue;
    }
    char dims[2 + BPC_DIMS_TEXT];
    if (n->op == OP_PARAM || n->op == OP_INPUT) {
      buf_printf(out, "  n%d [label=\"%s%s\", shape=box, style=filled, fillcolor=\"%s\"];\n", n->id, n->name,
                 shape_caption(n, dims), n->op == OP_PARAM ? "#fde9c9" : "#e3eefc");
      continue;
    }
    int window = op_is_window(n->op);
    const char *caption = node_caption(c, n); /* a kernel or window, dropout's rate, under its name */
    buf_printf(out, "  n%d [label=\"%s%s%s%s%s%s\", shape=%s];\n", n->id, op_label(n), caption ? "\\n" : "",
               caption ? caption : "", n->name ? "\\n" : "", n->name ? n->name : "", shape_caption(n, dims),
               window ? "box, style=rounded" : n == c->loss ? "doublecircle" : "circle");
  }
  /* one edge per argument; values above in black, gradients below in red */
  for (int i = 0; i < s.order.len; i++) {
    Node *n = s.order.items[i];
    for (int k = 0; k < n->nargs; k++) {
      Node *a = n->args[k];
      buf_printf(out, "  n%d -> n%d", a->id, n->id);
      if (v && v->v[a->id] && a->op != OP_CONST) { /* a constant's node already shows it */
        Buf lab = {0};
        buf_puts(&lab, "<font color=\"black\">");
        value_text(&lab, a, v->v[a->id]);
        buf_puts(&lab, "</font>");
        EdgeGrad *e = NULL;
        for (int j = 0; j < c->edges.len && !e; j++) {
          EdgeGrad *x = c->edges.items[j];
          if (x->to == n && x->arg == k) e = x; /* this slot's: transpose(M) @ M sends each M its own */
        }
        if (e && v->v[e->g->id]) {
          buf_puts(&lab, "<br/><font color=\"#c0392b\">");
          value_text(&lab, e->g, v->v[e->g->id]);
          buf_puts(&lab, "</font>");
        }
        buf_printf(out, " [label=<%s>]", lab.data);
        buf_free(&lab);
      }
      buf_puts(out, ";\n");
    }
  }
  if (v && v->v[c->loss->id]) {
    buf_printf(out, "  out [shape=plaintext, label=\"\"];\n  n%d -> out [label=<<font color=\"black\">",
               c->loss->id);
    Buf lab = {0};
    value_text(&lab, c->loss, v->v[c->loss->id]);
    buf_printf(out, "%s</font><br/><font color=\"#c0392b\">1</font>>];\n", lab.data);
    buf_free(&lab);
  }
  dot_calls(c, &s, out); /* a call of a user function as a labelled box */
  buf_puts(out, "}\n");
}

static int have_program(const char *name) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
  return system(cmd) == 0;
}

static int run_graph(int argc, char **argv) {
  InspectOptions o;
  parse(&o, argc, argv, graph_help);
  Ctx c;
  compile_or_exit(&o, &c);
  Values v = {0};
  int with_values = o.nsets > 0 || c.num_inputs == 0;
  double *params = NULL, *inputs = NULL;
  if (with_values) {
    point_from_options(&o, &c, &params, &inputs);
    eval_graph(&c, params, inputs, &v);
  }
  Buf dot = {0};
  dot_graph(&c, with_values ? &v : NULL, &dot);
  int rc = 0;
  if (!strcmp(o.format, "dot")) {
    if (o.out && strcmp(o.out, "-")) {
      const char *paths[1] = {o.out};
      Buf *bufs[1] = {&dot};
      const char *why = NULL;
      if (write_files_atomically(paths, bufs, 1, &why) >= 0) {
        fprintf(stderr, "bpc: cannot write %s: %s\n", o.out, why);
        rc = 1;
      }
    } else {
      fwrite(dot.data, 1, dot.len, stdout);
    }
  } else if (!have_program("dot")) {
    fprintf(stderr,
            "bpc: --format %s needs Graphviz's dot program, which is not installed (Debian package "
            "graphviz); --format dot writes the graph without it\n",
            o.format);
    rc = 1;
  } else {
    if (!o.out || !strcmp(o.out, "-")) cli_usage_error("graph: --format %s needs -o FILE", o.format);
    char *tmp = str_printf("%s.tmp.%d", o.out, (int)getpid());
    char *cmd = str_printf("dot -T%s -o '%s'", o.format, tmp);
    FILE *pipe = popen(cmd, "w");
    int ok = pipe && fwrite(dot.data, 1, dot.len, pipe) == dot.len;
    int status = pipe ? pclose(pipe) : -1;
    if (!ok || status != 0 || rename(tmp, o.out)) {
      fprintf(stderr, "bpc: Graphviz could not draw the graph into %s\n", o.out);
      unlink(tmp);
      rc = 1;
    }
    free(tmp);
    free(cmd);
  }
  buf_free(&dot);
  finish(&o, &c, params, inputs, &v);
  return rc;
}

/* ---- explain and trace ---------------------------------------------------------- */

static int run_explain(int argc, char **argv) {
  InspectOptions o;
  parse(&o, argc, argv, explain_help);
  if (!o.wrt) cli_usage_error("explain: --wrt PARAM is required");
  Ctx c;
  compile_or_exit(&o, &c);
  Values v = {0};
  double *params = NULL, *inputs = NULL;
  if (o.nsets > 0 || c.num_inputs == 0) {
    point_from_options(&o, &c, &params, &inputs);
    eval_graph(&c, params, inputs, &v);
  }
  Buf out = {0};
  if (explain(&c, o.wrt, v.v ? &v : NULL, &out)) {
    fprintf(stderr, "bpc: explain --wrt %s: the model has no parameter named '%s'\n", o.wrt, o.wrt);
    return 1;
  }
  fwrite(out.data, 1, out.len, stdout);
  buf_free(&out);
  finish(&o, &c, params, inputs, &v);
  return 0;
}

static int run_trace(int argc, char **argv) {
  InspectOptions o;
  parse(&o, argc, argv, trace_help);
  Ctx c;
  double *params, *inputs;
  Values v;
  evaluate_model(&o, &c, &params, &inputs, &v);
  Buf out = {0};
  trace(&c, &v, &out);
  fwrite(out.data, 1, out.len, stdout);
  buf_free(&out);
  finish(&o, &c, params, inputs, &v);
  return 0;
}

const CliCommand inspect_commands[] = {
    {"grad", run_grad},       {"check", run_check}, {"graph", run_graph},
    {"explain", run_explain}, {"trace", run_trace}, {NULL, NULL},
};
