/* commands.c — `bpc train`, `bpc eval` and `bpc predict`: compile a model in
 * memory, bind data to its inputs, and train, score or predict. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "runtime.h"

enum { MAX_BINDINGS = 64, MAX_DEFINES = 64 };

typedef struct RunOptions {
  const char *command;
  const char *model;
  DataBinding data[MAX_BINDINGS], test[MAX_BINDINGS];
  int ndata, ntest;
  DefineOpt defines[MAX_DEFINES];
  int ndefines;
  int epochs, threads, quiet, use_float, use_cc, classes;
  size_t batch, limit;
  double lr, momentum;
  int lr_given, batch_given;
  Metric metric;
  uint64_t seed;
  OptKind optim;
  const char *save, *load, *log, *target, *out;
} RunOptions;

static const char train_help[] =
    "usage: bpc train MODEL.bp --data INPUT=FILE... [options]\n"
    "Compiles MODEL.bp in memory and minimises its mean loss with minibatch gradient descent.\n"
    "\n"
    "  --data FILE.csv      one CSV holding every input, columns in declaration order\n"
    "  --data INPUT=FILE    data for one input: .csv, a NumPy .npy file (float32, float64, uint8 or\n"
    "                       int64, C order), or an IDX file (MNIST format); .gz or not; a label\n"
    "                       file bound to an input of shape [K] becomes one-hot, uint8 images\n"
    "                       are scaled to [0, 1]\n"
    "  --test ...           held-out data, bound the same way; evaluated after every epoch\n"
    "  --epochs N           passes over the data (default 5)\n"
    "  --batch N            examples per step (default 32)\n"
    "  --lr X               learning rate (default 0.01 for sgd and momentum, 0.001 for adam)\n"
    "  --optim sgd|momentum|adam   (default sgd)\n"
    "  --momentum X         for --optim momentum (default 0.9)\n"
    "  --seed N             initialisation, shuffling and dropout's masks (default 1)\n"
    "  --threads N          worker threads (default: all cores)\n"
    "  --limit N            use only the first N examples\n"
    "  --float              compute in float instead of double\n"
    "  -D NAME=INT          override a dim of the model\n"
    "  --save FILE          save the parameters after every epoch (atomically)\n"
    "  --load FILE          start from saved parameters\n"
    "  --log FILE           write per-epoch figures as CSV\n"
    "  --target INPUT       the input to compare the output with (default: the one of its shape)\n"
    "  --metric accuracy|mse|mae|none   what to report besides the loss (default: accuracy when the\n"
    "                       target holds classes -- one-hot rows, labels, or a scalar 0/1 -- else none)\n"
    "  --quiet              print nothing but errors\n"
    "  --jit auto|tcc|cc    compile in memory with TinyCC, or build a shared object with the system\n"
    "                       C compiler (optimised; cached by content in ~/.cache/bpc); auto (the\n"
    "                       default): cc for a model with convolutions or pooling, else tcc\n";

static const char eval_help[] =
    "usage: bpc eval MODEL.bp --load PARAMS --data INPUT=FILE... [--target INPUT] [--metric M] [--threads N]\n"
    "                [--limit N]\n"
    "Prints the mean loss of saved parameters, and the metric bpc train reports (--metric as there).\n";

static const char predict_help[] =
    "usage: bpc predict MODEL.bp --load PARAMS --data INPUT=FILE... [-o OUT.csv] [--limit N] [--classes]\n"
    "Writes the model's outputs for every example as CSV (to stdout without -o). --classes adds, after\n"
    "each vector or scalar output, its class: the arg-max of its scores, or for a scalar 1 when it is\n"
    "above 0.5 (an output computed by sigmoid) or above 0 (a score), else 0.\n"
    "Inputs that no output depends on (targets) need no data.\n";

static void add_binding(DataBinding *list, int *n, const char *v) {
  if (*n == MAX_BINDINGS) cli_usage_error("too many --data/--test files (at most %d)", MAX_BINDINGS);
  const char *eq = strchr(v, '=');
  DataBinding b = {NULL, v};
  if (eq) {
    b.input = strndup(v, (size_t)(eq - v));
    b.path = eq + 1;
  }
  list[(*n)++] = b;
}

static Metric metric_from_name(const char *v) {
  static const Metric kinds[] = {METRIC_ACCURACY, METRIC_MSE, METRIC_MAE, METRIC_NONE};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (!strcmp(v, metric_name(kinds[i]))) return kinds[i];
  cli_usage_error("--metric takes accuracy, mse, mae or none, not '%s'", v);
}

/* Outputs are checked before the model is compiled or any data read: an
 * output may not be an input (the model, a data file; --log not the
 * parameters it loads either), and its directory must take a file. Saving
 * over --load is how training continues, so --save may name it. */
static void check_outputs(const RunOptions *o) {
  const char *ins[2 * MAX_BINDINGS + 2];
  int n = 0;
  ins[n++] = o->model;
  for (int i = 0; i < o->ndata; i++)
    ins[n++] = o->data[i].path;
  for (int i = 0; i < o->ntest; i++)
    ins[n++] = o->test[i].path;
  const char *outs[2] = {o->save, o->out}, *opts[2] = {"--save", "-o"};
  if (o->out && !strcmp(o->out, "-")) outs[1] = NULL;
  cli_check_outputs(outs, opts, 2, ins, n);
  ins[n++] = o->load;
  const char *log[1] = {o->log}, *log_opt[1] = {"--log"};
  cli_check_outputs(log, log_opt, 1, ins, n);
  if (o->log && o->save && cli_same_file(o->log, o->save))
    cli_usage_error("--log %s and --save %s are the same file", o->log, o->save);
}

/* The options each command takes (the parser refuses the others). */
static const char train_options[] = "--data --test --epochs --batch --lr --optim --momentum --seed --threads "
                                    "--limit --float -D --save --load --log --target --quiet --jit --metric";
static const char eval_options[] = "--load --data --target --threads --limit --float -D --jit --metric";
static const char predict_options[] = "--load --data -o --limit --float -D --jit --classes";
static const char bench_options[] = "--batch --float --jit -D --seed";

static void parse_options(RunOptions *o, int argc, char **argv, const char *accepted, const char *help) {
  memset(o, 0, sizeof *o);
  o->command = argv[0];
  o->epochs = 5;
  o->batch = 32;
  o->lr = 0.01;
  o->momentum = 0.9;
  o->seed = 1;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  o->threads = cores > 0 ? (int)cores : 1;
  o->use_cc = -1; /* --jit auto */
  CliArg *args = malloc(sizeof(CliArg) * (size_t)argc);
  int nargs = cli_parse(argc, argv, o->command, accepted, help, args);
  for (int i = 0; i < nargs; i++) {
    const char *a = args[i].name, *v = args[i].value;
    if (!a) {
      if (o->model) cli_usage_error("%s: more than one model given ('%s' and '%s')", o->command, o->model, v);
      o->model = v;
    } else if (!strcmp(a, "--float"))
      o->use_float = 1;
    else if (!strcmp(a, "--quiet"))
      o->quiet = 1;
    else if (!strcmp(a, "--classes"))
      o->classes = 1;
    else if (!strcmp(a, "--data"))
      add_binding(o->data, &o->ndata, v);
    else if (!strcmp(a, "--test"))
      add_binding(o->test, &o->ntest, v);
    else if (!strcmp(a, "--epochs"))
      o->epochs = (int)cli_int(a, v, 0, 1000000);
    else if (!strcmp(a, "--batch")) {
      o->batch = (size_t)cli_int(a, v, 1, 1 << 24);
      o->batch_given = 1;
    } else if (!strcmp(a, "--lr")) {
      o->lr = cli_real(a, v, 0, 1e6);
      o->lr_given = 1;
    } else if (!strcmp(a, "--momentum"))
      o->momentum = cli_real(a, v, 0, 1e6);
    else if (!strcmp(a, "--seed"))
      o->seed = (uint64_t)cli_int(a, v, 0, (long long)1 << 62);
    else if (!strcmp(a, "--threads"))
      o->threads = (int)cli_int(a, v, 1, 256);
    else if (!strcmp(a, "--limit"))
      o->limit = (size_t)cli_int(a, v, 1, (long long)1 << 40);
    else if (!strcmp(a, "--save"))
      o->save = v;
    else if (!strcmp(a, "--load"))
      o->load = v;
    else if (!strcmp(a, "--log"))
      o->log = v;
    else if (!strcmp(a, "--target"))
      o->target = v;
    else if (!strcmp(a, "--metric"))
      o->metric = metric_from_name(v);
    else if (!strcmp(a, "-o"))
      o->out = v;
    else if (!strcmp(a, "--jit")) {
      if (strcmp(v, "tcc") && strcmp(v, "cc") && strcmp(v, "auto"))
        cli_usage_error("--jit takes auto, tcc or cc, not '%s'", v);
      o->use_cc = !strcmp(v, "cc") ? 1 : !strcmp(v, "tcc") ? 0 : -1;
    } else if (!strcmp(a, "--optim")) {
      if (!strcmp(v, "sgd"))
        o->optim = OPT_SGD;
      else if (!strcmp(v, "momentum"))
        o->optim = OPT_MOMENTUM;
      else if (!strcmp(v, "adam"))
        o->optim = OPT_ADAM;
      else
        cli_usage_error("--optim takes sgd, momentum or adam, not '%s'", v);
    } else if (o->ndefines == MAX_DEFINES || !cli_parse_define(v, &o->defines[o->ndefines++])) {
      cli_usage_error("-D takes NAME=INT, got '%s'", v);
    }
  }
  free(args);
  if (!o->model) cli_usage_error("%s: no model given", o->command);
  if (o->optim == OPT_ADAM && !o->lr_given) o->lr = 0.001;
  check_outputs(o);
}

/* Each thread takes an equal share of a minibatch; the batched functions
 * are compiled for that share. */
static void options_free(RunOptions *o) {
  for (int i = 0; i < o->ndata; i++)
    free((char *)o->data[i].input);
  for (int i = 0; i < o->ntest; i++)
    free((char *)o->test[i].input);
  for (int i = 0; i < o->ndefines; i++)
    free((char *)o->defines[i].name);
}

/* The model's functions, and beside them its graph (predict and bench read it). */
static JitModel *load_model_or_exit(LoadedModel *lm, RunOptions *o) {
  CompileOptions co = {.defines = o->defines, .ndefines = o->ndefines};
  int threads = o->threads < 1 ? 1 : o->threads;
  if ((size_t)threads > o->batch) threads = (int)o->batch;
  int share = (int)((o->batch + (size_t)threads - 1) / (size_t)threads);
  JitOptions jo = {.use_float = o->use_float, .batch = share, .use_cc = o->use_cc};
  if (load_model(lm, o->model, &co, &jo)) exit(1);
  return lm->jit;
}

static void load_data_or_exit(Dataset *d, JitModel *m, DataBinding *b, int nb, size_t limit,
                              const int *required) {
  char *err = NULL;
  if (dataset_load(d, m, b, nb, limit, required, &err)) {
    fprintf(stderr, "bpc: %s\n", err);
    exit(1);
  }
}

static void *params_or_exit(JitModel *m, RunOptions *o) {
  void *params = calloc((size_t)m->nparams + 1, m->elem);
  if (!o->load) {
    m->init(params, o->seed);
    return params;
  }
  char *err = NULL;
  if (params_load(o->load, m, params, &err)) {
    fprintf(stderr, "bpc: %s\n", err);
    exit(1);
  }
  return params;
}

static int run_train(int argc, char **argv) {
  RunOptions o;
  parse_options(&o, argc, argv, train_options, train_help);
  LoadedModel lm;
  JitModel *m = load_model_or_exit(&lm, &o);
  Dataset train_set, test_set;
  load_data_or_exit(&train_set, m, o.data, o.ndata, o.limit, NULL);
  if (o.ntest) load_data_or_exit(&test_set, m, o.test, o.ntest, 0, NULL);
  void *params = params_or_exit(m, &o);
  Optimizer opt;
  optim_init(&opt, o.optim, o.lr, o.momentum, m->nparams, m->elem);
  TrainOptions to = {.epochs = o.epochs,
                     .batch = o.batch,
                     .seed = o.seed,
                     .threads = o.threads,
                     .quiet = o.quiet,
                     .progress = isatty(2),
                     .save = o.save,
                     .log = o.log,
                     .target = o.target,
                     .metric = o.metric,
                     .opt = &opt};
  if (!o.quiet)
    printf("%s: %lld parameters, %zu training examples%s, compiled in %.0f ms\n", o.model,
           (long long)m->nparams, train_set.n, o.ntest ? str_printf(", %zu test examples", test_set.n) : "",
           1000 * m->compile_seconds);
  int rc = train(m, params, &train_set, o.ntest ? &test_set : NULL, &to);
  optim_free(&opt);
  free(params);
  dataset_free(&train_set);
  if (o.ntest) dataset_free(&test_set);
  unload_model(&lm);
  options_free(&o);
  return rc;
}

static int run_eval(int argc, char **argv) {
  RunOptions o;
  parse_options(&o, argc, argv, eval_options, eval_help);
  if (!o.load) cli_usage_error("eval: --load PARAMS is required");
  LoadedModel lm;
  JitModel *m = load_model_or_exit(&lm, &o);
  void *params = params_or_exit(m, &o);
  Dataset d;
  load_data_or_exit(&d, m, o.data, o.ndata, o.limit, NULL);
  MetricSpec spec;
  char *err = NULL;
  if (metric_spec(m, &d, o.metric, o.target, &spec, &err)) {
    fprintf(stderr, "bpc: %s\n", err);
    return 1;
  }
  EvalResult r = evaluate(m, params, &d, &spec, o.threads);
  printf("examples: %zu\nloss: %.6f\n", d.n, r.loss);
  if (spec.kind != METRIC_NONE) {
    char *v = metric_format(&spec, r.metric);
    printf("%s: %s\n", metric_name(spec.kind), v);
    free(v);
  }
  dataset_free(&d);
  free(params);
  unload_model(&lm);
  options_free(&o);
  return 0;
}

/* Inputs the outputs depend on: the others (targets) need no data. */
static int *inputs_needed_by_outputs(Ctx *c) {
  int *need = calloc((size_t)c->inputs.len + 1, sizeof(int));
  Node **roots = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(c->outputs.len + 1));
  for (int i = 0; i < c->outputs.len; i++)
    roots[i] = ((Decl *)c->outputs.items[i])->node;
  Schedule s;
  schedule_function(c, roots, c->outputs.len, NULL, 0, &s);
  for (int i = 0; i < c->inputs.len; i++)
    need[i] = s.live[((Decl *)c->inputs.items[i])->node->id];
  return need;
}

static int run_predict(int argc, char **argv) {
  RunOptions o;
  parse_options(&o, argc, argv, predict_options, predict_help);
  if (!o.load) cli_usage_error("predict: --load PARAMS is required");
  LoadedModel lm;
  JitModel *m = load_model_or_exit(&lm, &o);
  if (m->noutputs == 0) {
    fprintf(stderr, "bpc: %s declares no outputs; add a line such as 'output prediction = ...'\n", o.model);
    return 1;
  }
  void *params = params_or_exit(m, &o);
  int *need = inputs_needed_by_outputs(&lm.ctx);
  Dataset d;
  load_data_or_exit(&d, m, o.data, o.ndata, o.limit, need);
  free(need);
  Buf csv = {0};
  const TensorList *outputs = &m->info.outputs;
  for (int i = 0; i < outputs->len; i++) {
    const TensorInfo *t = &outputs->items[i];
    for (int64_t j = 0; j < t->numel; j++)
      buf_printf(&csv, "%s%s", i || j ? "," : "",
                 t->rank ? str_printf("%s[%lld]", t->name, (long long)j) : t->name);
    if (o.classes && t->rank <= 1) buf_printf(&csv, ",%s_class", t->name);
  }
  buf_puts(&csv, "\n");
  void *ws = calloc(m->ws_elems + 1, m->elem);
  void *out = calloc((size_t)m->noutputs, m->elem);
  typedef void (*PredictFn)(const void *, const void *, void *, void *);
  for (size_t e = 0; e < d.n; e++) {
    ((PredictFn)m->predict_ws)(params, (const char *)d.x + e * (size_t)d.width * d.elem, out, ws);
    for (int i = 0; i < outputs->len; i++) {
      const TensorInfo *t = &outputs->items[i];
      for (int64_t j = 0; j < t->numel; j++)
        buf_printf(&csv, "%s%.9g", i || j ? "," : "", real_get(out, m->elem, (size_t)(t->offset + j)));
      /* the arg-max of class scores; a scalar against 0.5 (a probability) or 0 (a score) */
      if (o.classes && t->rank <= 1)
        buf_printf(&csv, ",%zu", output_class(m, out, 0, i, output_threshold(m, i)));
    }
    buf_puts(&csv, "\n");
  }
  int rc = 0;
  if (o.out && strcmp(o.out, "-")) {
    const char *paths[1] = {o.out};
    Buf *bufs[1] = {&csv};
    const char *why = NULL;
    if (write_files_atomically(paths, bufs, 1, &why) >= 0) {
      fprintf(stderr, "bpc: cannot write %s: %s\n", o.out, why);
      rc = 1;
    }
  } else {
    fwrite(csv.data, 1, csv.len, stdout);
  }
  buf_free(&csv);
  free(ws);
  free(out);
  free(params);
  dataset_free(&d);
  unload_model(&lm);
  options_free(&o);
  return rc;
}

static const char bench_help[] =
    "usage: bpc bench MODEL.bp [--batch N] [--float] [--jit auto|tcc|cc] [-D NAME=INT]\n"
    "Times the model's forward, backward and batched backward through the JIT (median of 7 runs,\n"
    "each long enough to measure), at the initial parameters and random inputs, and prints ops,\n"
    "flops and memory per example. --jit cc builds the model with the system C compiler instead.\n";

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct BenchCall {
  JitModel *m;
  void *params, *inputs, *grad, *ws, *soa;
  int kind; /* 0 forward, 1 backward, 2 batched backward */
  size_t batch;
} BenchCall;

static void bench_once(BenchCall *b) {
  if (b->kind == 0) {
    jit_eval_batch(b->m, b->params, b->inputs, 1, NULL, b->ws);
  } else if (b->kind == 1) {
    jit_train_batch(b->m, b->params, b->inputs, 1, b->grad, NULL, b->ws, 0, 1, 0); /* dropout on, as in train */
  } else if (b->m->fixed > 1) {
    jit_gather(b->m, b->inputs, b->soa);
    jit_train_fixed(b->m, b->params, b->soa, b->grad, NULL, b->ws, 0, 1, 0);
  } else {
    jit_train_batch(b->m, b->params, b->inputs, b->batch, b->grad, NULL, b->ws, 0, 1, 0);
  }
}

/* Median over 7 samples of the mean time of enough calls to take 20 ms. */
static double bench_seconds(BenchCall *b) {
  int reps = 1;
  for (;;) {
    double t0 = now_seconds();
    for (int r = 0; r < reps; r++)
      bench_once(b);
    if (now_seconds() - t0 > 0.02 || reps >= 1 << 24) break;
    reps *= 2;
  }
  double t[7];
  for (int k = 0; k < 7; k++) {
    double t0 = now_seconds();
    for (int r = 0; r < reps; r++)
      bench_once(b);
    t[k] = (now_seconds() - t0) / reps;
  }
  qsort(t, 7, sizeof t[0], cmp_double);
  return t[3];
}

static void print_bytes(const char *label, double bytes) {
  if (bytes < 1024)
    printf("%s %.0f B", label, bytes);
  else if (bytes < 1024 * 1024)
    printf("%s %.1f KiB", label, bytes / 1024);
  else
    printf("%s %.1f MiB", label, bytes / (1024 * 1024));
}

static int run_bench(int argc, char **argv) {
  RunOptions o;
  parse_options(&o, argc, argv, bench_options, bench_help);
  o.threads = 1;
  if (!o.batch_given) o.batch = 64; /* bench's own default: the batch of the training benchmarks */
  double t0 = now_seconds();
  LoadedModel lm;
  JitModel *m = load_model_or_exit(&lm, &o);
  double compile = now_seconds() - t0;
  size_t B = o.batch;
  void *params = calloc((size_t)m->nparams + 1, m->elem), *grad = calloc((size_t)m->nparams + 1, m->elem);
  void *inputs = calloc(B * (size_t)m->ninputs + 1, m->elem),
       *soa = calloc(B * (size_t)m->ninputs + 1, m->elem);
  void *ws = calloc(m->ws_elems + 1, m->elem);
  m->init(params, o.seed);
  uint64_t s = 12345;
  for (size_t i = 0; i < B * (size_t)m->ninputs; i++) {
    s = s * 6364136223846793005u + 1442695040888963407u;
    real_set(inputs, m->elem, i, (double)(s >> 11) / 9007199254740992.0 - 0.5);
  }
  flush_subnormals();
  BenchCall call = {m, params, inputs, grad, ws, soa, 0, B};
  double t[3];
  for (int k = 0; k < 3; k++) {
    call.kind = k;
    t[k] = bench_seconds(&call);
  }
  Stats st;
  compute_stats(&lm.ctx, &st);
  printf("%s: %lld parameters, %lld inputs per example, %s\n", o.model, (long long)m->nparams,
         (long long)m->ninputs, o.use_float ? "float" : "double");
  printf("compile (bpc and %s):  %8.2f ms\n", m->dl ? "cc " : "tcc", 1000 * compile);
  printf("forward:                %10.3f us per example\n", 1e6 * t[0]);
  printf("backward:               %10.3f us per example (%.2fx forward; it includes the forward)\n",
         1e6 * t[1], t[1] / t[0]);
  printf("batch backward:         %10.3f us per example (batch %zu, %s)\n", 1e6 * t[2] / (double)B, B,
         m->fixed > 1 ? "compiled for the whole batch" : "one example at a time");
  printf("ops per example:        forward %d ops, %.0f flops; backward adds %d ops, %.0f flops\n", st.fwd_ops,
         st.fwd_flops, st.bwd_ops, st.bwd_flops);
  print_bytes("memory:                 inputs per example", (double)m->ninputs * (double)m->elem);
  print_bytes("; workspace per thread", (double)m->ws_elems * (double)m->elem);
  print_bytes("; parameters", (double)m->nparams * (double)m->elem);
  printf(" (and as much for the gradient)\n");
  free(params);
  free(grad);
  free(inputs);
  free(soa);
  free(ws);
  unload_model(&lm);
  options_free(&o);
  return 0;
}

const CliCommand cli_commands[] = {
    {"train", run_train}, {"eval", run_eval}, {"predict", run_predict}, {"bench", run_bench}, {NULL, NULL},
};
