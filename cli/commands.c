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
  DataBinding data[MAX_BINDINGS], test[MAX_BINDINGS], val[MAX_BINDINGS];
  int ndata, ntest, nval;
  double val_fraction; /* --val FRACTION, or 0 */
  DefineOpt defines[MAX_DEFINES];
  int ndefines;
  int epochs, threads, quiet, use_float, use_cc, classes, confusion;
  size_t batch, limit;
  double lr, momentum, beta1, beta2, eps, weight_decay, clip_norm;
  int lr_given, batch_given, beta1_given, beta2_given, eps_given, threads_given;
  int fail_rank, fail_step; /* --test-fail-at RANK:STEP, the hook of the distributed tests */
  LrSchedule schedule;
  int schedule_given, step_every_given, step_gamma_given;
  ShuffleKind shuffle;
  int early_stop, save_best;
  Metric metric;
  uint64_t seed;
  OptKind optim;
  const char *save, *load, *resume, *log, *target, *out;
} RunOptions;

static const char train_help[] =
    "usage: bpc train MODEL.bp --data INPUT=FILE... [options]\n"
    "Compiles MODEL.bp in memory and minimises its mean loss with minibatch gradient descent.\n"
    "\n"
    "data\n"
    "  --data FILE.csv      one CSV holding every input, columns in declaration order\n"
    "  --data INPUT=FILE    data for one input: .csv, a NumPy .npy file (float32, float64, uint8 or\n"
    "                       int64, C order), or an IDX file (MNIST format); .gz or not; a label\n"
    "                       file bound to an input of shape [K] becomes one-hot, uint8 images\n"
    "                       are scaled to [0, 1]\n"
    "  --test ...           held-out data, bound the same way; evaluated after every epoch\n"
    "  --val FRACTION       hold out this share of the training data (0 < FRACTION < 1, drawn by\n"
    "                       --seed) for validation: its loss and metric after every epoch\n"
    "  --val ...            or validation data of its own, bound like --data (repeat per input)\n"
    "  --limit N            use only the first N examples\n"
    "  --shuffle none|epoch   the examples' order: the file's, or shuffled every epoch (by\n"
    "                       --seed and the epoch's number; the default)\n"
    "\n"
    "steps\n"
    "  --epochs N           the epoch training ends with (default 5; a resumed run counts those done)\n"
    "  --batch N            examples per step (default 32)\n"
    "  --optim sgd|momentum|adam|rmsprop|adagrad   the update rule, PyTorch's (default sgd)\n"
    "  --lr X               learning rate (default 0.01; 0.001 for adam)\n"
    "  --momentum X         for momentum (default 0.9)\n"
    "  --beta1 X, --beta2 X for adam (defaults 0.9, 0.999)\n"
    "  --eps X              for adam and rmsprop (default 1e-8), adagrad (default 1e-10)\n"
    "  --weight-decay X     adam: decoupled, AdamW (p -= lr X p each step); sgd, momentum,\n"
    "                       rmsprop and adagrad: L2, X p added to the gradient (default 0)\n"
    "  --clip-norm X        scale the mean gradient down to norm X when it is longer (the L2 norm\n"
    "                       over all parameters; before weight decay)\n"
    "  --schedule constant|step|cosine|linear   the learning rate over the steps (default constant);\n"
    "                       cosine and linear fall to 0 at the end of --epochs\n"
    "  --warmup EPOCHS      rise linearly to --lr over the first EPOCHS epochs (fractions allowed)\n"
    "  --step-every EPOCHS  step: multiply the rate by --step-gamma every EPOCHS epochs\n"
    "  --step-gamma G       step: the factor (default 0.1)\n"
    "  --seed N             initialisation, shuffling, the --val split and dropout's masks (default 1)\n"
    "  --threads N          worker threads (default: all cores)\n"
    "  --float              compute in float instead of double\n"
    "  -D NAME=INT          override a dim of the model\n"
    "\n"
    "files\n"
    "  --save FILE          save the parameters and the training state after every epoch (atomically)\n"
    "  --save-best          with --save: only after an epoch that improved the validation loss\n"
    "  --early-stop N       stop after N epochs without a better validation loss, keeping (and with\n"
    "                       --save having saved) the best parameters\n"
    "  --load FILE          start from saved parameters (any training state in FILE is ignored)\n"
    "  --resume FILE        continue the training saved in FILE exactly: its parameters, optimiser\n"
    "                       state and position; give the options it was trained with and a larger\n"
    "                       --epochs; it saves only where --save says (which may be FILE)\n"
    "  --log FILE           write per-epoch figures as CSV (last column: the learning rate)\n"
    "\n"
    "reports\n"
    "  --target INPUT       the input to compare the output with (default: the one of its shape)\n"
    "  --metric accuracy|mse|mae|none   what to report besides the loss (default: accuracy when the\n"
    "                       target holds classes -- one-hot rows, labels, or a scalar 0/1 -- else none)\n"
    "  --quiet              print nothing but errors\n"
    "  --jit auto|tcc|cc    compile in memory with TinyCC, or build a shared object with the system\n"
    "                       C compiler (optimised; cached by content in ~/.cache/bpc); auto (the\n"
    "                       default): cc for a model with convolutions or pooling, or a batched\n"
    "                       step of at least a million flops (the Fashion MLP at --batch 8), else tcc\n"
    "See docs/training.md for the formulas.\n";

static const char eval_help[] =
    "usage: bpc eval MODEL.bp --load PARAMS --data INPUT=FILE... [--target INPUT] [--metric M]\n"
    "                [--threads N] [--limit N] [--confusion]\n"
    "Prints the mean loss of saved parameters, and the metric bpc train reports (--metric as there).\n"
    "--confusion also prints the confusion matrix of a classifier: a row per true class, a column per\n"
    "predicted class (the arg-max of the scores; a scalar output as for binary accuracy), each cell\n"
    "the number of examples.\n";

static const char predict_help[] =
    "usage: bpc predict MODEL.bp --load PARAMS --data INPUT=FILE... [-o OUT.csv] [--limit N] [--classes]\n"
    "Writes the model's outputs for every example as CSV (to stdout without -o). --classes adds, after\n"
    "each vector or scalar output, its class: the arg-max of its scores, or for a scalar 1 when it is\n"
    "above 0.5 (an output computed by sigmoid) or above 0 (a score), else 0.\n"
    "Inputs that no output depends on (targets) need no data.\n";

static void add_binding(DataBinding *list, int *n, const char *v) {
  if (*n == MAX_BINDINGS) cli_usage_error("too many --data/--test/--val files (at most %d)", MAX_BINDINGS);
  const char *eq = strchr(v, '=');
  DataBinding b = {NULL, v};
  if (eq) {
    b.input = strndup(v, (size_t)(eq - v));
    b.path = eq + 1;
  }
  list[(*n)++] = b;
}

/* --val: a fraction of the training data, or files bound like --data. */
static void add_val(RunOptions *o, const char *v) {
  char *end;
  double f = strtod(v, &end);
  if (end != v && !*end) {
    if (!(f > 0 && f < 1))
      cli_usage_error("--val takes a fraction between 0 and 1 or INPUT=FILE, not '%s'", v);
    if (o->val_fraction > 0 || o->nval) cli_usage_error("--val %s: give one fraction, or files", v);
    o->val_fraction = f;
    return;
  }
  if (o->val_fraction > 0) cli_usage_error("--val %s: give one fraction, or files", v);
  add_binding(o->val, &o->nval, v);
}

/* A number from 0 up to, not including, 1 (Adam's betas). */
static double cli_fraction(const char *opt, const char *v) {
  double x = cli_real(opt, v, 0, 1);
  if (x == 1) cli_usage_error("%s takes a number from 0 up to (not including) 1, not '%s'", opt, v);
  return x;
}

/* A number above 0. */
static double cli_positive(const char *opt, const char *v, double hi) {
  double x = cli_real(opt, v, 0, hi);
  if (x == 0) cli_usage_error("%s takes a number above 0 (up to %g), not '%s'", opt, hi, v);
  return x;
}

/* The options that only mean something beside others. */
static void check_combinations(const RunOptions *o) {
  if (o->beta1_given && o->optim != OPT_ADAM) cli_usage_error("--beta1 is for --optim adam");
  if (o->beta2_given && o->optim != OPT_ADAM) cli_usage_error("--beta2 is for --optim adam");
  if (o->eps_given && (o->optim == OPT_SGD || o->optim == OPT_MOMENTUM))
    cli_usage_error("--eps is for --optim adam, rmsprop or adagrad");
  int step = o->schedule.kind == LR_STEP;
  if (o->step_every_given && !step) cli_usage_error("--step-every is for --schedule step");
  if (o->step_gamma_given && !step) cli_usage_error("--step-gamma is for --schedule step");
  if (step && !o->step_every_given) cli_usage_error("--schedule step needs --step-every EPOCHS");
  int val = o->val_fraction > 0 || o->nval;
  if (o->early_stop && !val)
    cli_usage_error("--early-stop needs validation data: --val FRACTION or --val INPUT=FILE");
  if (o->save_best && !val)
    cli_usage_error("--save-best needs validation data: --val FRACTION or --val INPUT=FILE");
  if (o->save_best && !o->save) cli_usage_error("--save-best needs --save FILE");
  if (o->resume && o->load)
    cli_usage_error("--resume %s loads its parameters itself; give --resume or --load, not both", o->resume);
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
 * over --load or --resume is how training continues, so --save may name
 * them. */
static void check_outputs(const RunOptions *o) {
  const char *ins[3 * MAX_BINDINGS + 3];
  int n = 0;
  ins[n++] = o->model;
  for (int i = 0; i < o->ndata; i++)
    ins[n++] = o->data[i].path;
  for (int i = 0; i < o->ntest; i++)
    ins[n++] = o->test[i].path;
  for (int i = 0; i < o->nval; i++)
    ins[n++] = o->val[i].path;
  const char *outs[2] = {o->save, o->out}, *opts[2] = {"--save", "-o"};
  if (o->out && !strcmp(o->out, "-")) outs[1] = NULL;
  cli_check_outputs(outs, opts, 2, ins, n);
  ins[n++] = o->load;
  ins[n++] = o->resume;
  const char *log[1] = {o->log}, *log_opt[1] = {"--log"};
  cli_check_outputs(log, log_opt, 1, ins, n);
  if (o->log && o->save && cli_same_file(o->log, o->save))
    cli_usage_error("--log %s and --save %s are the same file", o->log, o->save);
}

/* The options each command takes (the parser refuses the others). */
static const char train_options[] =
    "--data --test --epochs --batch --lr --optim --momentum --seed --threads "
    "--limit --float -D --save --load --log --target --quiet --jit --metric "
    "--schedule --warmup --step-every --step-gamma --weight-decay --clip-norm "
    "--beta1 --beta2 --eps --val --early-stop --save-best --resume --shuffle --test-fail-at";
static const char eval_options[] =
    "--load --data --target --threads --limit --float -D --jit --metric --confusion";
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
  o->schedule.gamma = 0.1;
  o->shuffle = SHUFFLE_EPOCH;
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
    else if (!strcmp(a, "--confusion"))
      o->confusion = 1;
    else if (!strcmp(a, "--save-best"))
      o->save_best = 1;
    else if (!strcmp(a, "--val"))
      add_val(o, v);
    else if (!strcmp(a, "--beta1")) {
      o->beta1 = cli_fraction(a, v);
      o->beta1_given = 1;
    } else if (!strcmp(a, "--beta2")) {
      o->beta2 = cli_fraction(a, v);
      o->beta2_given = 1;
    } else if (!strcmp(a, "--eps")) {
      o->eps = cli_real(a, v, 0, 1);
      o->eps_given = 1;
    } else if (!strcmp(a, "--weight-decay"))
      o->weight_decay = cli_real(a, v, 0, 1e6);
    else if (!strcmp(a, "--clip-norm"))
      o->clip_norm = cli_positive(a, v, 1e300);
    else if (!strcmp(a, "--schedule")) {
      int k = schedule_from_name(v);
      if (k < 0) cli_usage_error("--schedule takes constant, step, cosine or linear, not '%s'", v);
      o->schedule.kind = (LrScheduleKind)k;
    } else if (!strcmp(a, "--warmup"))
      o->schedule.warmup = cli_real(a, v, 0, 1e6);
    else if (!strcmp(a, "--step-every")) {
      o->schedule.step_every = cli_positive(a, v, 1e6);
      o->step_every_given = 1;
    } else if (!strcmp(a, "--step-gamma")) {
      o->schedule.gamma = cli_real(a, v, 0, 1e6);
      o->step_gamma_given = 1;
    } else if (!strcmp(a, "--shuffle")) {
      if (strcmp(v, "none") && strcmp(v, "epoch"))
        cli_usage_error("--shuffle takes none or epoch, not '%s'", v);
      o->shuffle = !strcmp(v, "none") ? SHUFFLE_NONE : SHUFFLE_EPOCH;
    } else if (!strcmp(a, "--early-stop"))
      o->early_stop = (int)cli_int(a, v, 1, 1000000);
    else if (!strcmp(a, "--resume"))
      o->resume = v;
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
    else if (!strcmp(a, "--threads")) {
      o->threads = (int)cli_int(a, v, 1, 256);
      o->threads_given = 1;
    } else if (!strcmp(a, "--test-fail-at")) { /* not in --help: a rank that dies, for tests/e2e.sh */
      if (sscanf(v, "%d:%d", &o->fail_rank, &o->fail_step) != 2 || o->fail_rank < 0 || o->fail_step < 1)
        cli_usage_error("--test-fail-at takes RANK:STEP, not '%s'", v);
    }
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
      int k = optim_from_name(v);
      if (k < 0) cli_usage_error("--optim takes sgd, momentum, adam, rmsprop or adagrad, not '%s'", v);
      o->optim = (OptKind)k;
    } else if (o->ndefines == MAX_DEFINES || !cli_parse_define(v, &o->defines[o->ndefines++])) {
      cli_usage_error("-D takes NAME=INT, got '%s'", v);
    }
  }
  free(args);
  if (!o->model) cli_usage_error("%s: no model given", o->command);
  if (o->optim == OPT_ADAM && !o->lr_given) o->lr = 0.001;
  check_combinations(o);
  check_outputs(o);
}

/* Each thread takes an equal share of a minibatch; the batched functions
 * are compiled for that share. */
static void options_free(RunOptions *o) {
  for (int i = 0; i < o->ndata; i++)
    free((char *)o->data[i].input);
  for (int i = 0; i < o->ntest; i++)
    free((char *)o->test[i].input);
  for (int i = 0; i < o->nval; i++)
    free((char *)o->val[i].input);
  for (int i = 0; i < o->ndefines; i++)
    free((char *)o->defines[i].name);
}

/* The model's functions, and beside them its graph (predict and bench read it). */
/* The batched functions are compiled for one thread's share of one
 * process's slice of a minibatch (ranks: the processes of an mpirun job),
 * or, for a model whose training step threads can share (team_supported),
 * for the whole slice, with the team form beside them. */
static JitModel *load_model_or_exit(LoadedModel *lm, RunOptions *o, int ranks) {
  CompileOptions co = {.defines = o->defines, .ndefines = o->ndefines};
  size_t slice = (o->batch + (size_t)ranks - 1) / (size_t)ranks;
  int threads = o->threads < 1 ? 1 : o->threads;
  if ((size_t)threads > slice) threads = (int)slice;
  int share = (int)((slice + (size_t)threads - 1) / (size_t)threads);
  JitOptions jo = {.use_float = o->use_float, .batch = share, .use_cc = o->use_cc,
                   .team_batch = threads > 1 ? (int)slice : 0};
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

/* Exits with a failure: under mpirun every process with it (dist NULL: alone). */
static void *params_or_exit(JitModel *m, RunOptions *o, const Dist *dist) {
  void *params = calloc_aligned((size_t)m->nparams + 1, m->elem);
  if (!o->load) {
    m->init(params, o->seed);
    return params;
  }
  char *err = NULL;
  if (params_load(o->load, m, params, &err)) {
    fprintf(stderr, "bpc: %s\n", err);
    dist_fail(dist, 1);
  }
  return params;
}

/* The parameters and training state --resume continues from (exits 1
 * when the file holds no state). */
static void *resume_or_exit(JitModel *m, const RunOptions *o, TrainState *st, const Dist *dist) {
  void *params = calloc_aligned((size_t)m->nparams + 1, m->elem);
  char *err = NULL;
  int has = 0;
  if (params_load_state(o->resume, m, params, st, &has, &err)) {
    fprintf(stderr, "bpc: %s\n", err);
    dist_fail(dist, 1);
  }
  if (!has) {
    fprintf(stderr,
            "bpc: %s holds parameters but no training state to resume (saved by an older bpc); start "
            "from its parameters with --load %s\n",
            o->resume, o->resume);
    dist_fail(dist, 1);
  }
  return params;
}

/* Rank 0's training state on every process: its fields, then its arrays. */
static void share_state(JitModel *m, TrainState *st, const Dist *dist) {
  int had[2] = {st->m != NULL, st->v != NULL};
  void *mine[2] = {st->m, st->v};
  dist_bcast(dist, had, sizeof had);
  dist_bcast(dist, st, sizeof *st); /* its pointers are rank 0's: replaced below */
  for (int k = 0; k < 2; k++) {
    if (!had[k]) continue;
    if (dist->rank) mine[k] = calloc_aligned((size_t)m->nparams + 1, m->elem);
    dist_bcast(dist, mine[k], (size_t)m->nparams * m->elem);
  }
  st->m = had[0] ? mine[0] : NULL;
  st->v = had[1] ? mine[1] : NULL;
}

/* The parameters (and with --resume the state) to start from: rank 0 alone
 * reads a file and sends what it read to the others; initialised
 * parameters are the same everywhere, from the same seed. */
static void *starting_params(JitModel *m, RunOptions *o, TrainState *st, const Dist *dist) {
  void *params;
  if (dist->rank == 0)
    params = o->resume ? resume_or_exit(m, o, st, dist) : params_or_exit(m, o, dist);
  else if (o->resume || o->load)
    params = calloc_aligned((size_t)m->nparams + 1, m->elem);
  else
    params = params_or_exit(m, o, dist);
  if (dist->size > 1 && (o->resume || o->load)) {
    dist_bcast(dist, params, (size_t)m->nparams * m->elem);
    if (o->resume) share_state(m, st, dist);
  }
  return params;
}

/* Under mpirun: rank 0 alone prints, saves and logs; each process takes
 * its share of this machine's cores unless --threads says. */
static void join_job(RunOptions *o, const Dist *dist) {
  if (!o->threads_given) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int per = cores > 0 ? (int)cores / (dist->local_size > 0 ? dist->local_size : 1) : 1;
    o->threads = per > 0 ? per : 1;
  }
  if (dist->rank != 0) {
    o->quiet = 1;
    o->save = NULL;
    o->log = NULL;
  }
}

/* The optimiser with the command line's settings over PyTorch's defaults. */
static void optimizer_from_options(Optimizer *opt, const RunOptions *o, JitModel *m) {
  optim_init(opt, o->optim, o->lr, o->momentum, m->nparams, m->elem);
  if (o->beta1_given) opt->beta1 = o->beta1;
  if (o->beta2_given) opt->beta2 = o->beta2;
  if (o->eps_given) opt->eps = o->eps;
  opt->weight_decay = o->weight_decay;
  opt->clip_norm = o->clip_norm;
}

static int run_train(int argc, char **argv) {
  RunOptions o;
  parse_options(&o, argc, argv, train_options, train_help);
  Dist dist;
  char *err = NULL;
  if (dist_init(&dist, &err)) {
    fprintf(stderr, "bpc: %s\n", err);
    return 1;
  }
  join_job(&o, &dist);
  LoadedModel lm;
  JitModel *m = load_model_or_exit(&lm, &o, dist.size);
  Dataset train_set, test_set, val_set;
  load_data_or_exit(&train_set, m, o.data, o.ndata, o.limit, NULL);
  int have_val = o.val_fraction > 0 || o.nval;
  if (o.val_fraction > 0 &&
      dataset_split(&train_set, m, o.val_fraction, epoch_seed(o.seed, 0), &val_set, &err)) {
    fprintf(stderr, "bpc: %s\n", err);
    return 1;
  }
  if (o.nval) load_data_or_exit(&val_set, m, o.val, o.nval, 0, NULL);
  if (o.ntest) load_data_or_exit(&test_set, m, o.test, o.ntest, 0, NULL);
  TrainState st = {0};
  void *params = starting_params(m, &o, &st, &dist);
  Optimizer opt;
  optimizer_from_options(&opt, &o, m);
  TrainOptions to = {.epochs = o.epochs,
                     .batch = o.batch,
                     .seed = o.seed,
                     .threads = o.threads,
                     .quiet = o.quiet,
                     .progress = isatty(2) && !o.quiet,
                     .save = o.save,
                     .log = o.log,
                     .target = o.target,
                     .metric = o.metric,
                     .opt = &opt,
                     .schedule = o.schedule,
                     .shuffle = o.shuffle,
                     .val = have_val ? &val_set : NULL,
                     .early_stop = o.early_stop,
                     .save_best = o.save_best,
                     .resume = o.resume ? &st : NULL,
                     .resume_path = o.resume,
                     .dist = &dist,
                     .fail_rank = o.fail_rank,
                     .fail_step = o.fail_step};
  if (!o.quiet) {
    printf("%s: %lld parameters, %zu training examples", o.model, (long long)m->nparams, train_set.n);
    if (have_val) printf(", %zu validation examples", val_set.n);
    if (o.ntest) printf(", %zu test examples", test_set.n);
    printf(", compiled in %.0f ms\n", 1000 * m->compile_seconds);
    if (o.resume && st.batches_done)
      printf("resuming %s in epoch %d, after its batch %llu\n", o.resume, st.epochs_done + 1,
             (unsigned long long)st.batches_done);
    else if (o.resume)
      printf("resuming %s after epoch %d\n", o.resume, st.epochs_done);
    fflush(stdout);
  }
  int rc = train(m, params, &train_set, o.ntest ? &test_set : NULL, &to);
  dist_finish(&dist); /* every process got here: they agreed on how training ended */
  train_state_free(&st);
  optim_free(&opt);
  free(params);
  dataset_free(&train_set);
  if (have_val) dataset_free(&val_set);
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
  JitModel *m = load_model_or_exit(&lm, &o, 1);
  void *params = params_or_exit(m, &o, NULL);
  Dataset d;
  load_data_or_exit(&d, m, o.data, o.ndata, o.limit, NULL);
  MetricSpec spec;
  char *err = NULL;
  if (metric_spec(m, &d, o.metric, o.target, &spec, &err)) {
    fprintf(stderr, "bpc: %s\n", err);
    return 1;
  }
  int64_t classes = 0;
  if (o.confusion) {
    if (spec.kind != METRIC_ACCURACY) {
      fprintf(stderr,
              "bpc: --confusion needs classes: targets that hold them and an output that scores them "
              "(the metric here is %s)\n",
              metric_name(spec.kind));
      return 1;
    }
    classes = metric_classes(m, &spec);
    spec.confusion = calloc((size_t)(classes * classes), sizeof(int64_t));
  }
  EvalResult r = evaluate(m, params, &d, &spec, o.threads, NULL);
  printf("examples: %zu\nloss: %.6f\n", d.n, r.loss);
  if (spec.kind != METRIC_NONE) {
    char *v = metric_format(&spec, r.metric);
    printf("%s: %s\n", metric_name(spec.kind), v);
    free(v);
  }
  if (o.confusion) {
    char *text = confusion_format(spec.confusion, classes);
    fputs(text, stdout);
    free(text);
    free(spec.confusion);
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
  JitModel *m = load_model_or_exit(&lm, &o, 1);
  if (m->noutputs == 0) {
    fprintf(stderr, "bpc: %s declares no outputs; add a line such as 'output prediction = ...'\n", o.model);
    return 1;
  }
  void *params = params_or_exit(m, &o, NULL);
  int *need = inputs_needed_by_outputs(&lm.ctx);
  Dataset d;
  load_data_or_exit(&d, m, o.data, o.ndata, o.limit, need);
  free(need);
  Buf csv = {0};
  const TensorList *outputs = &m->info.outputs;
  for (int i = 0; i < outputs->len; i++) {
    const TensorInfo *t = &outputs->items[i];
    for (int64_t j = 0; j < t->numel; j++) {
      char *col = t->rank ? str_printf("%s[%lld]", t->name, (long long)j) : NULL;
      buf_printf(&csv, "%s%s", i || j ? "," : "", col ? col : t->name);
      free(col);
    }
    if (o.classes && t->rank <= 1) buf_printf(&csv, ",%s_class", t->name);
  }
  buf_puts(&csv, "\n");
  void *ws = calloc_aligned(m->ws_elems + 1, m->elem);
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
  JitModel *m = load_model_or_exit(&lm, &o, 1);
  double compile = now_seconds() - t0;
  size_t B = o.batch;
  void *params = calloc_aligned((size_t)m->nparams + 1, m->elem),
       *grad = calloc_aligned((size_t)m->nparams + 1, m->elem);
  void *inputs = calloc(B * (size_t)m->ninputs + 1, m->elem),
       *soa = calloc(B * (size_t)m->ninputs + 1, m->elem);
  void *ws = calloc_aligned(m->ws_elems + 1, m->elem);
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
