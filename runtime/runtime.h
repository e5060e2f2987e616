/* runtime.h — every data structure of the runtime: the in-memory compiled
 * model (jit.c), data sets (data.c), parameter files (params_file.c),
 * optimisers (optim.c), learning-rate schedules (lr_schedule.c) and the
 * training loop (train.c). The commands that use them are in cli/.
 *
 * The runtime knows nothing of the compiler: it takes C text and a
 * ModelInfo (what the model's tensors are called, their shapes and places)
 * from whoever compiled the model, cli/build.c in bpc, and includes only
 * support.h and the kernels the generated code calls (kernels.h).
 *
 * Numbers live in the model's own element type (double, or float with
 * --float): buffers are void* with an element size, and the few hot loops
 * over them exist for both types. */
#ifndef BPC_RUNTIME_H
#define BPC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "support.h"

/* ---- what the runtime knows of a compiled model ------------------------------ */
/* One parameter, input or output: where its elements are in the flat
 * array the generated functions take, and what to call it in messages. */
typedef struct TensorInfo {
  const char *name;
  int rank;
  int64_t dim[BPC_MAX_RANK]; /* row-major */
  int64_t numel;
  int64_t offset;  /* first element in the flat params/inputs/outputs array */
  int probability; /* an output computed by sigmoid: as a class, 1 above 0.5 (not above 0) */
} TensorInfo;

typedef struct TensorList {
  TensorInfo *items; /* in declaration order, which is the order of the flat array */
  int len;
  int64_t numel; /* elements of them all: the flat array's length */
} TensorList;

typedef struct ModelInfo {
  const char *name; /* the model's file as the user gave it, for messages */
  TensorList params, inputs, outputs;
  const char *unbatched_why; /* a batch asked for and none made: why */
  Arena arena;               /* holds the strings and lists above */
} ModelInfo;

/* Whether t has this shape (util.c). */
int tensor_has_shape(const TensorInfo *t, int rank, const int64_t *dim);
/* How messages name a tensor: "x[2,3]", or "t" for a scalar. out holds
 * TENSOR_DESC_TEXT characters; returns out, or t's name. */
#define TENSOR_DESC_TEXT (BPC_MAX_IDENT + BPC_DIMS_TEXT)
const char *tensor_desc(const TensorInfo *t, char *out);

/* ---- jit.c: a model compiled in memory with libtcc ------------------------- */
/* The generated code's functions are named with this prefix (m_init,
 * m_train_batch, ...); whoever emits the C uses it. */
#define JIT_PREFIX "m"

typedef struct JitModel {
  ModelInfo info; /* the model's tensors */
  void *tcc;      /* TCCState, with the tcc backend */
  void *dl;       /* dlopen handle, with the cc backend */
  int use_float;
  size_t elem;                        /* sizeof(double) or sizeof(float) */
  int64_t nparams, ninputs, noutputs; /* elements of each flat array (info's numel) */
  size_t ws_elems;                    /* workspace each calling thread needs */
  /* generated functions (JIT mode; see emit_c.c's runtime entry points) */
  void (*init)(void *params, uint64_t seed);
  void *train_batch; /* sum of losses; adds summed gradient; optional outputs; dropout from a seed */
  void *eval_batch;  /* sum of losses; optional outputs */
  void *predict_ws;
  int fixed;         /* examples per call of the batched functions, or 0 */
  void *train_fixed; /* like train_batch for exactly `fixed` examples stored input by input */
  void *eval_fixed;
  void *train_team;  /* or NULL: train_fixed by threads together (jit_train_team) */
  size_t team_scratch; /* with train_team: the reals its workspace needs past ws_elems for each part */
  double compile_seconds; /* from the model's text to its functions: set by whoever compiled it */
} JitModel;

typedef struct JitOptions {
  int use_float; /* the C's bp_real is float */
  int batch;     /* also emit functions for this many examples at once (> 1): for whoever emits the C */
  int use_cc;    /* 1: build a shared object with the system C compiler instead of tcc; -1: decide (for
                    whoever emits the C: cli/build.c picks cc for a model with convolutions) */
  int team_batch; /* > 1: threads will train; where the model has a team form (the threads share each
                     step), the batched functions are for this many examples, with the team form */
  int team;       /* the C has the team form (whoever emits it sets this) */
} JitOptions;

/* Loads generated C (JIT form: self-contained, with kernels, named with
 * JIT_PREFIX) into memory with tcc, or with jo->use_cc into a cached
 * shared object built by the system C compiler, and finds its functions.
 * Takes info over (the model frees it; on failure too): its element
 * counts must be the C's. Returns NULL with *err on a compiler failure,
 * which is an internal error, since bpc wrote the C. (A .bp file is
 * compiled and loaded by jit_load in cli/build.c.) */
JitModel *jit_load_c(const char *csrc, size_t len, ModelInfo *info, const JitOptions *jo, char **err);
void jit_free(JitModel *m);
/* Compiles C source with tcc and the kernels; returns the TCCState or NULL
 * with the tcc message (and the generated line) in *err. */
void *jit_compile_c(const char *csrc, char **err);
/* Compiles without linking (any C bpc writes, JIT form or file form): 1 if
 * tcc accepts it without a warning, else 0 with the message in *err. */
int jit_check_c(const char *csrc, char **err);
void *jit_symbol(void *tcc, const char *name);

/* Typed calls into the generated code. n examples stored one after
 * another. The summed gradient is stored into grad (acc 0: nothing needs
 * clearing first) or added to it (acc 1); outputs may be NULL. With
 * dropout 1 the model's dropout is applied, example e's masks drawn from
 * seed + e (training); with 0 it is the identity, as in eval (check). */
double jit_train_batch(JitModel *m, const void *params, const void *inputs, size_t n, void *grad,
                       void *outputs, void *ws, int acc, int dropout, uint64_t seed);
double jit_eval_batch(JitModel *m, const void *params, const void *inputs, size_t n, void *outputs, void *ws);
/* The same for exactly m->fixed examples, inputs stored input by input
 * (see jit_gather); outputs example by example. */
double jit_train_fixed(JitModel *m, const void *params, const void *inputs, void *grad, void *outputs,
                       void *ws, int acc, int dropout, uint64_t seed);
double jit_eval_fixed(JitModel *m, const void *params, const void *inputs, void *outputs, void *ws);
/* jit_train_fixed by `parts` threads at once, each calling it with its part and
 * the same arguments (one workspace, one gradient): sync(team) must be a
 * barrier of the parts. Every part returns the loss. */
double jit_train_team(JitModel *m, const void *params, const void *inputs, void *grad, void *outputs,
                      void *ws, int acc, int dropout, uint64_t seed, int part, int parts, void (*sync)(void *),
                      void *team);
/* Rearranges m->fixed examples (one after another) into the layout the
 * batched functions read: all of input 0, then all of input 1, ... (the
 * team form lays its batch out so itself: train.c, gather_team_columns) */
void jit_gather(JitModel *m, const void *examples, void *out);
/* Where example e's values of input t start in that layout (elements). */
size_t jit_gathered_at(const JitModel *m, const TensorInfo *t, size_t e);

/* ---- data.c: examples for the model's inputs ------------------------------- */
typedef struct DataBinding {
  const char *input; /* input name, or NULL: a CSV for all inputs */
  const char *path;
} DataBinding;

typedef struct Dataset {
  size_t n;      /* examples */
  int64_t width; /* elements per example (the model's NUM_INPUTS) */
  size_t elem;   /* element size */
  void *x;       /* n * width elements, example after example */
  int *onehot;   /* per input slot: filled from a label file */
} Dataset;

/* Reads the files bound to the model's inputs (required[slot] says which
 * need data; NULL: all; the others are zero). Returns 0, or 1 with a
 * message naming the file, the input and what is wrong in *err. */
int dataset_load(Dataset *d, JitModel *m, const DataBinding *b, int nb, size_t limit, const int *required,
                 char **err);
void dataset_free(Dataset *d);
/* Moves round(fraction * n) examples (at least 1, and 1 fewer than all at
 * most), chosen by the seed, from d into val; both keep their examples in
 * file order. Returns 1 with *err when d has fewer than 2 examples. */
int dataset_split(Dataset *d, JitModel *m, double fraction, uint64_t seed, Dataset *val, char **err);

/* ---- npy.c: NumPy's .npy files ------------------------------------------------- */
typedef enum { NPY_F32, NPY_F64, NPY_U8, NPY_I64 } NpyType; /* '<f4', '<f8', '|u1', '<i8' */
#define NPY_MAX_AXES (BPC_MAX_RANK + 1) /* examples, then an input's axes */
typedef struct NpyArray {
  NpyType type;
  int ndims; /* at least 1: the first axis counts examples */
  uint64_t dims[NPY_MAX_AXES];
  const unsigned char *data; /* little-endian, C order; points into the bytes parsed */
} NpyArray;
/* Checks a whole .npy file (version 1.0, 2.0 or 3.0, a supported type, C
 * order, the exact size): 0, or 1 with a message naming path in *err. */
int npy_parse(const char *path, const unsigned char *bytes, size_t len, NpyArray *a, char **err);
double npy_value(const NpyArray *a, uint64_t i);
size_t npy_type_size(NpyType t);
/* Appends the version 1.0 header of a C-order array of this type and shape. */
void npy_write_header(Buf *b, NpyType t, int rank, const int64_t *dims);

/* ---- params_file.c: the saved-parameter format ------------------------------- */
/* A parameter file read whole and checked on its own (magic, version 1 or
 * 2, element type, tensor table, sizes, checksum), for params_load and
 * `bpc params`. */
typedef struct ParamsFile {
  unsigned char *bytes; /* the whole file */
  size_t len;
  uint32_t version;
  int is_float;         /* float32 values, else float64 */
  size_t esize;         /* 4 or 8 */
  TensorList tensors;   /* names (identifiers, each once), shapes, offsets of the values */
  const unsigned char *values; /* tensors.numel values, little-endian */
  const unsigned char *state;  /* version 2: the training state block, state_len bytes; else NULL */
  size_t state_len;
  Arena arena;          /* the tensor list */
} ParamsFile;
/* Returns 0, or 1 with a message naming the file in *err (nothing to free). */
int params_file_read(const char *path, ParamsFile *f, char **err);
/* 0 when the file's tensors are the model's parameters (names and shapes,
 * in order), else 1 with the first difference in *err. */
int params_file_fits(const ParamsFile *f, const char *path, const ModelInfo *info, char **err);
double params_file_value(const ParamsFile *f, int64_t i); /* value i of the flat array */
void params_file_free(ParamsFile *f);

/* ---- optim.c ------------------------------------------------------------------- */
/* The update rules, as PyTorch defines them (optim.c's opening comment). */
typedef enum { OPT_SGD, OPT_MOMENTUM, OPT_ADAM, OPT_RMSPROP, OPT_ADAGRAD } OptKind;
typedef struct Optimizer {
  OptKind kind;
  double lr; /* the base learning rate; a schedule scales it (schedule_lr) */
  double momentum, beta1, beta2, alpha, eps;
  double weight_decay; /* adam: decoupled (AdamW); the others: added to the gradient (L2) */
  double clip_norm;    /* > 0: the mean gradient is scaled down to this norm when longer */
  int64_t n;           /* parameters */
  size_t elem;
  void *m, *v;  /* state: velocity or first moment (m); mean square or sum of squares (v) */
  int64_t step; /* steps taken: Adam's t */
} Optimizer;
/* The optimiser's name on the command line ("adam"), and back (-1: none). */
const char *optim_name(OptKind k);
int optim_from_name(const char *name);
/* Whether the kind keeps the array m (which 0) or v (which 1). */
int optim_uses_array(OptKind k, int which);
/* Sets PyTorch's defaults for the kind (beta1 0.9, beta2 0.999, alpha 0.99,
 * eps 1e-8, or 1e-10 for adagrad; no weight decay, no clipping) and clears
 * the state; change the fields after it. */
void optim_init(Optimizer *o, OptKind kind, double lr, double momentum, int64_t n, size_t elem);
/* One update of params from the gradient grad * scale (the summed gradient
 * of a batch times 1/n), at learning rate lr. grad is only read: the next
 * batch's gradient is stored over it (the generated functions' acc 0), so
 * nothing is cleared. */
void optim_step(Optimizer *o, void *params, const void *grad, double scale, double lr);
/* optim_step in parts, for threads that update a range of the parameters
 * each: begin counts the step and returns the scale with clipping's factor
 * (which reads all of grad, so the gradient must be complete), apply
 * updates parameters [from, to). */
double optim_begin_step(Optimizer *o, const void *grad, double scale);
void optim_apply(const Optimizer *o, void *params, const void *grad, double scale, double lr, int64_t from,
                 int64_t to);
void optim_free(Optimizer *o);

/* ---- lr_schedule.c: the learning rate over the training (--schedule) --------- */
typedef enum { LR_CONSTANT, LR_STEP, LR_COSINE, LR_LINEAR } LrScheduleKind;
typedef struct LrSchedule {
  LrScheduleKind kind;
  double warmup;     /* epochs (fractional) of linear warmup */
  double step_every; /* LR_STEP: epochs between decays */
  double gamma;      /* LR_STEP: the factor of each decay */
} LrSchedule;
const char *schedule_name(LrScheduleKind k);
int schedule_from_name(const char *name); /* -1: none */
/* The learning rate of step `batch` (0-based) of epoch `epoch` (1-based),
 * with per_epoch steps in an epoch and epochs epochs in the training. */
double schedule_lr(const LrSchedule *s, double lr, int epoch, uint64_t batch, uint64_t per_epoch, int epochs);

/* ---- params_file.c: the saved-parameter format ------------------------------- */
typedef enum { SHUFFLE_NONE, SHUFFLE_EPOCH } ShuffleKind;
/* Where a training run is, saved with the parameters (params_file.c's
 * opening comment lists the bytes). */
typedef struct TrainState {
  OptKind optim;
  ShuffleKind shuffle;
  int epochs_done;             /* epochs completed */
  uint64_t batches_done;       /* batches done of epoch epochs_done + 1 (an interrupt saves mid-epoch) */
  uint64_t batch;              /* examples per step */
  uint64_t examples;           /* training examples */
  uint64_t seed;               /* shuffling (and the --val split) */
  uint64_t steps;              /* optimiser steps: Adam's t */
  double loss_sum, metric_sum; /* summed over the examples done of the partial epoch */
  double best_val;             /* the best validation loss so far, or +inf */
  int best_epoch, since_best;  /* its epoch (0: none), epochs since it */
  void *m, *v;                 /* the optimiser's arrays (optim_uses_array), in the model's type */
} TrainState;

/* Writes all parameters atomically (temporary file, fsync, rename), with a
 * training state, or without one (st NULL: the state block is empty). */
int params_save(const char *path, JitModel *m, const void *params, char **err);
int params_save_state(const char *path, JitModel *m, const void *params, const TrainState *st, char **err);
/* Reads parameters saved for this model (names and shapes must match);
 * format versions 1 and 2, the training state ignored. */
int params_load(const char *path, JitModel *m, void *params, char **err);
/* The same, and the training state into *st (its arrays malloc'd, in the
 * model's type; free them with train_state_free). *has is 0 when the file
 * holds none (version 1, or saved without one). */
int params_load_state(const char *path, JitModel *m, void *params, TrainState *st, int *has, char **err);
void train_state_free(TrainState *st);

/* What is reported besides the loss (--metric; metrics.c). */
typedef enum { METRIC_AUTO, METRIC_NONE, METRIC_ACCURACY, METRIC_MSE, METRIC_MAE } Metric;

typedef struct Dist Dist; /* dist.c, below */

/* ---- train.c --------------------------------------------------------------------- */
typedef struct TrainOptions {
  int epochs; /* the epoch training ends with (a resumed run counts the epochs done before it) */
  size_t batch;
  uint64_t seed;
  int threads;
  int quiet;
  int progress;       /* a progress bar (stderr is a terminal) */
  const char *save;   /* parameter file written after every epoch, with the training state */
  const char *log;    /* CSV log */
  const char *target; /* input compared with the output for the metric */
  Metric metric;
  Optimizer *opt;
  LrSchedule schedule;
  ShuffleKind shuffle;
  const Dataset *val;       /* validation data (loss and metric after every epoch), or NULL */
  int early_stop;           /* > 0: stop after this many epochs without a better validation loss */
  int save_best;            /* save only after an epoch that improved the validation loss */
  const TrainState *resume; /* continue from here (bpc train --resume), or NULL */
  const char *resume_path;  /* its file, for messages */
  const Dist *dist;         /* the processes training together (mpirun), or NULL: this one alone */
  int fail_rank, fail_step; /* a test hook: that rank dies at that step (1-based; 0: never) */
} TrainOptions;

/* The metric chosen for a model and its data: which output is compared
 * with which input (the target), and how. */
typedef struct MetricSpec {
  Metric kind;      /* never METRIC_AUTO once chosen */
  int output, input; /* slots, or -1 with METRIC_NONE */
  double threshold; /* binary accuracy (scalar output): 0.5 on a probability, 0 on a score */
  int64_t *confusion; /* accuracy: when not NULL, metric_sum counts each (true, predicted) class
                         pair into confusion[true * metric_classes + predicted] */
} MetricSpec;
/* METRIC_AUTO: accuracy when the target holds classes (one-hot rows, from
 * a label file or not) and an output of the same shape scores them, or
 * the target is a scalar 0/1 with a scalar output; otherwise none. d is
 * the data the targets are read from. Returns 1 with *err on a metric
 * that cannot be had (no output to compare, an ambiguous target). */
int metric_spec(JitModel *m, const Dataset *d, Metric want, const char *target, MetricSpec *spec, char **err);
const char *metric_name(Metric k); /* "accuracy", "mse", "mae" */
/* The metric's value as printed: "86.12%" for accuracy, "0.01234" else. */
char *metric_format(const MetricSpec *spec, double value);
/* The metric summed over n examples (inputs and outputs example by example). */
double metric_sum(JitModel *m, const MetricSpec *spec, const void *inputs, const void *outputs, size_t n);
/* The same with the inputs of one fixed batch laid out input by input, as
 * the batched functions read them (jit_gather). */
double metric_sum_gathered(JitModel *m, const MetricSpec *spec, const void *inputs, const void *outputs, size_t n);
/* The class an output's values say (arg-max; a scalar against the
 * threshold), for accuracy and predict --classes. */
size_t output_class(JitModel *m, const void *outputs, size_t example, int output, double threshold);
/* 0.5 when output slot o is a probability (computed by sigmoid), else 0. */
double output_threshold(JitModel *m, int o);
/* The classes an accuracy metric tells apart: the output's elements, or 2
 * for a scalar (binary). */
int64_t metric_classes(JitModel *m, const MetricSpec *spec);
/* The confusion matrix as bpc eval --confusion prints it: a title line,
 * then a header of predicted classes and a row per true class. */
char *confusion_format(const int64_t *counts, int64_t classes);

typedef struct EvalResult {
  double loss;   /* mean */
  double metric; /* mean over examples (accuracy: share correct), or -1 with METRIC_NONE */
} EvalResult;
/* The mean loss and metric over d; with a Dist (else NULL), each process
 * evaluates its share of the examples and the sums are added. */
EvalResult evaluate(JitModel *m, const void *params, const Dataset *d, const MetricSpec *spec, int threads,
                    const Dist *dist);
/* Returns 0 when training ended (all epochs ran, or early stopping); 1
 * (message printed) on a NaN loss, a failed save, an interrupt or a
 * resumed state that does not fit the options. With early stopping params
 * end as the best ones. */
int train(JitModel *m, void *params, const Dataset *train_set, const Dataset *test_set,
          const TrainOptions *o);

/* ---- dist.c: data-parallel training across processes (Open MPI) ------------- */
/* What the Open MPI plugin (mpi_plugin.c, libbpc-mpi.so) provides. */
enum { DIST_OPS_VERSION = 1 };
typedef struct DistOps {
  int version; /* DIST_OPS_VERSION of the bpc it was built with */
  void (*init)(int *rank, int *size);
  void (*sum)(void *buf, size_t n, int is_float); /* in place, on every rank */
  void (*bcast)(void *buf, size_t bytes);         /* from rank 0 */
  void (*abort_all)(int code);
  void (*finalize)(void);
} DistOps;

/* One process's place in the job: rank 0 of 1 when not launched by mpirun. */
struct Dist {
  int rank, size;
  int local_size;     /* processes on this machine (OMPI_COMM_WORLD_LOCAL_SIZE), 1 alone */
  void *dl;           /* the plugin, under mpirun */
  const DistOps *ops; /* its functions */
};

/* Whether mpirun started this process (OMPI_COMM_WORLD_SIZE is set). */
int dist_launched_by_mpirun(void);
/* Joins the job under mpirun (loads the plugin, initialises MPI); else a
 * single process. Returns 1 with *err when the plugin cannot be loaded. */
int dist_init(Dist *d, char **err);
/* Whether other processes share the work (d not NULL, of size > 1). */
int dist_shared(const Dist *d);
/* Collectives; each a no-op in a single process (d NULL, or of size 1). */
void dist_sum(const Dist *d, void *buf, size_t n, size_t elem); /* elem: sizeof(float) or sizeof(double) */
void dist_sum_doubles(const Dist *d, double *v, size_t n);
void dist_bcast(const Dist *d, void *buf, size_t bytes);
int dist_any(const Dist *d, int mine); /* whether any rank says mine != 0 */
/* Ends this process with code, and under mpirun every rank with it
 * (MPI_Abort), after the caller printed its message: no rank is left
 * waiting for one that failed. d may be NULL. */
void dist_fail(const Dist *d, int code) __attribute__((noreturn));
void dist_finish(Dist *d); /* MPI_Finalize under mpirun */
/* This rank's contiguous share [from, from + len) of n items (shares
 * differ by one at most; the first ranks get the smaller ones); all of
 * them when d is NULL. */
void dist_share(const Dist *d, size_t n, size_t *from, size_t *len);

/* ---- fdcheck.c: finite differences for bpc check ---------------------------- */
/* A function of one number: f(ctx, t). */
typedef double (*FdFunction)(void *ctx, double t);

typedef struct FdEstimate {
  double deriv;    /* f'(x): central differences at h, h/2, h/4, Richardson-extrapolated */
  double err;      /* a bound on |deriv - f'(x)|: truncation + rounding + kink */
  double rounding; /* the part of err from rounding in the values of f */
  double kink;     /* the part of err a kink within the step could cause */
  double step;     /* h */
} FdEstimate;

/* The estimate from f at x +- h, x +- h/2 and x +- h/4 (six calls); fx is
 * f(x), magnitude the largest number computing f passes through (its
 * rounding is taken as 16 ulps of that, or of |f| if larger; 0: |f|). */
FdEstimate fd_estimate(FdFunction f, void *ctx, double x, double fx, double magnitude, double h);
/* The first step for a number x: a power of two, about 1e-3 * max(|x|, 1). */
double fd_step(double x);

typedef enum { FD_AGREE, FD_DISAGREE, FD_KINK } FdVerdict;
typedef struct FdCheck {
  FdVerdict verdict;
  FdEstimate est;   /* the most accurate estimate tried */
  double abs_err;   /* |grad - est.deriv| */
  double rel_err;   /* abs_err / max(|grad|, |est.deriv|, 1e-3) */
  double rel_bound; /* est.err on the same scale */
  int evaluations;  /* calls of f */
} FdCheck;
/* Judges a gradient element grad against f'(x): it disagrees when
 * rel_err > tol + rel_bound. An estimate less accurate than tol is tried
 * again with the step / 16 (twice at most) unless rounding dominates; a
 * kink within every step tried gives FD_KINK; a disagreement is confirmed
 * with a step 16 times smaller (a misled estimate is replaced). */
FdCheck fd_check(FdFunction f, void *ctx, double x, double fx, double magnitude, double grad, double tol);

/* ---- shared helpers ---------------------------------------------------------- */
/* Element i of an array of reals of size elem (a float or a double).
 * Inline: the metric reads every output and target of every step. */
static inline double real_get(const void *p, size_t elem, size_t i) {
  return elem == sizeof(float) ? (double)((const float *)p)[i] : ((const double *)p)[i];
}
static inline void real_set(void *p, size_t elem, size_t i, double v) {
  if (elem == sizeof(float))
    ((float *)p)[i] = (float)v;
  else
    ((double *)p)[i] = v;
}
/* idx = a permutation of 0..n-1 drawn from the seed (Fisher-Yates with splitmix64). */
void shuffle_indices(size_t *idx, size_t n, uint64_t seed);
/* The seed of epoch e's shuffle for --seed seed: seed * 1000003 + e (e = 0,
 * which no epoch has, draws the examples --val FRACTION holds out). */
uint64_t epoch_seed(uint64_t seed, int epoch);
/* Training treats subnormal numbers as zero: they carry no useful signal in
 * a gradient step, and on x86 each one costs a slow microcode assist. */
void flush_subnormals(void);

#endif
