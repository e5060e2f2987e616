/* params.c — `bpc params show` and `bpc params export`: what a saved
 * parameter file holds, tensor by tensor, and the tensors as files Python
 * and spreadsheets read (NumPy .npy, CSV). The file is read and checked by
 * the runtime's reader (runtime/params_file.c), as --load reads it. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "runtime.h"

static const char show_help[] =
    "usage: bpc params show FILE [--model MODEL.bp [-D NAME=INT]...]\n"
    "Prints what a parameter file saved by bpc train --save holds: its format version and element\n"
    "type, and per tensor its name, shape, smallest and largest value, mean and norm (the square root\n"
    "of the sum of squares). --model also checks that the file fits MODEL.bp: the same parameters, in\n"
    "the same order, with the same shapes (exit status 1 with the first difference if not).\n";
static const char export_help[] =
    "usage: bpc params export FILE --format npy|csv -o DIR\n"
    "Writes every tensor of a parameter file to DIR (created if missing; its parent must exist), one\n"
    "file per tensor named after it: NAME.npy (NumPy's format, for numpy.load; the file's element\n"
    "type and the tensor's shape), or NAME.csv (numbers only: a matrix row by row; a vector or a\n"
    "scalar as one line; a tensor of more axes as a matrix whose rows run over all but its last\n"
    "axis, row-major). Values are written exactly (CSV: as many digits as round-trip). A file that\n"
    "exists already is not overwritten: bpc stops before writing anything.\n";
static const char params_help[] =
    "usage: bpc params show FILE [--model MODEL.bp]     the tensors of a parameter file\n"
    "       bpc params export FILE --format npy|csv -o DIR   each tensor as a file\n"
    "(bpc params show --help, bpc params export --help)\n";

typedef struct ParamsOptions {
  const char *file, *model, *format, *dir;
  DefineOpt defines[64];
  int ndefines;
} ParamsOptions;

static void parse_params_options(ParamsOptions *o, int argc, char **argv, const char *cmd,
                                 const char *accepted, const char *help) {
  memset(o, 0, sizeof *o);
  CliArg *args = malloc(sizeof(CliArg) * (size_t)argc);
  int nargs = cli_parse(argc, argv, cmd, accepted, help, args);
  for (int i = 0; i < nargs; i++) {
    const char *a = args[i].name, *v = args[i].value;
    if (!a) {
      if (o->file) cli_usage_error("%s: more than one file given ('%s' and '%s')", cmd, o->file, v);
      o->file = v;
    } else if (!strcmp(a, "--model")) {
      o->model = v;
    } else if (!strcmp(a, "--format")) {
      if (strcmp(v, "npy") && strcmp(v, "csv"))
        cli_usage_error("%s: --format takes npy or csv, not '%s'", cmd, v);
      o->format = v;
    } else if (!strcmp(a, "-o")) {
      o->dir = v;
    } else if (o->ndefines == 64 || !cli_parse_define(v, &o->defines[o->ndefines++])) {
      cli_usage_error("-D takes NAME=INT, got '%s'", v);
    }
  }
  free(args);
  if (!o->file) cli_usage_error("%s: no parameter file given", cmd);
}

static void read_or_exit(const char *path, ParamsFile *f) {
  char *err = NULL;
  if (params_file_read(path, f, &err)) {
    fprintf(stderr, "bpc: %s\n", err);
    exit(1);
  }
}

/* ---- show ------------------------------------------------------------------------ */

typedef struct TensorStats {
  double min, max, mean, norm;
} TensorStats;

static TensorStats tensor_stats(const ParamsFile *f, const TensorInfo *t) {
  TensorStats s = {INFINITY, -INFINITY, 0, 0};
  double sum = 0, squares = 0;
  for (int64_t i = 0; i < t->numel; i++) {
    double v = params_file_value(f, t->offset + i);
    s.min = v < s.min ? v : s.min;
    s.max = v > s.max ? v : s.max;
    sum += v;
    squares += v * v;
  }
  s.mean = sum / (double)t->numel;
  s.norm = sqrt(squares);
  return s;
}

enum { SHOW_COLUMNS = 6 };

/* One table row per tensor (and a header), every column as wide as its
 * widest cell, separated by two spaces. */
static void print_table(const ParamsFile *f) {
  int rows = f->tensors.len + 1;
  char **cell = calloc((size_t)rows * SHOW_COLUMNS, sizeof(char *));
  static const char *const head[SHOW_COLUMNS] = {"tensor", "shape", "min", "max", "mean", "norm"};
  for (int c = 0; c < SHOW_COLUMNS; c++)
    cell[c] = strdup(head[c]);
  for (int r = 1; r < rows; r++) {
    const TensorInfo *t = &f->tensors.items[r - 1];
    TensorStats s = tensor_stats(f, t);
    char dims[BPC_DIMS_TEXT];
    char **row = cell + r * SHOW_COLUMNS;
    row[0] = strdup(t->name);
    row[1] = strdup(format_dims(dims, t->rank, t->dim));
    double v[4] = {s.min, s.max, s.mean, s.norm};
    for (int c = 0; c < 4; c++)
      row[2 + c] = t->numel ? str_printf("%.6g", v[c]) : strdup("-");
  }
  int width[SHOW_COLUMNS] = {0};
  for (int i = 0; i < rows * SHOW_COLUMNS; i++)
    if ((int)strlen(cell[i]) > width[i % SHOW_COLUMNS]) width[i % SHOW_COLUMNS] = (int)strlen(cell[i]);
  for (int r = 0; r < rows; r++) {
    for (int c = 0; c + 1 < SHOW_COLUMNS; c++)
      printf("%-*s  ", width[c], cell[r * SHOW_COLUMNS + c]);
    printf("%s\n", cell[r * SHOW_COLUMNS + SHOW_COLUMNS - 1]);
  }
  for (int i = 0; i < rows * SHOW_COLUMNS; i++)
    free(cell[i]);
  free(cell);
}

/* 0 when the file fits the model (said on stdout), else 1 with the first difference. */
static int check_against_model(const ParamsOptions *o, const ParamsFile *f) {
  Ctx c;
  CompileOptions co = {.defines = (DefineOpt *)o->defines, .ndefines = o->ndefines};
  if (cli_compile(&c, o->model, &co)) return 1;
  ModelInfo info;
  cli_model_info(&c, &info);
  char *err = NULL;
  int bad = params_file_fits(f, o->file, &info, &err);
  if (bad)
    fprintf(stderr, "bpc: %s\n", err);
  else
    printf("%s fits %s: the same parameters with the same shapes\n", o->file, o->model);
  free(err);
  arena_free(&info.arena);
  ctx_free(&c);
  return bad;
}

static int run_show(int argc, char **argv) {
  ParamsOptions o;
  parse_params_options(&o, argc, argv, "params show", "--model -D", show_help);
  if (o.ndefines && !o.model) cli_usage_error("params show: -D changes a model's dims; it needs --model");
  ParamsFile f;
  read_or_exit(o.file, &f);
  printf("%s: format version %u, %s, %d tensor%s, %lld values", o.file, f.version,
         f.is_float ? "float32" : "float64", f.tensors.len, f.tensors.len == 1 ? "" : "s",
         (long long)f.tensors.numel);
  if (f.state) printf(", %zu bytes of training state", f.state_len);
  printf("\n");
  print_table(&f);
  int rc = o.model ? check_against_model(&o, &f) : 0;
  params_file_free(&f);
  for (int i = 0; i < o.ndefines; i++)
    free((char *)o.defines[i].name);
  return rc;
}

/* ---- export ---------------------------------------------------------------------- */

/* A tensor's values as CSV: rows over all axes but the last. */
static void tensor_csv(const ParamsFile *f, const TensorInfo *t, Buf *out) {
  int64_t cols = t->rank ? t->dim[t->rank - 1] : 1;
  const char *fmt = f->is_float ? "%.9g" : "%.17g"; /* digits that round-trip */
  for (int64_t i = 0; i < t->numel; i++) {
    buf_printf(out, fmt, params_file_value(f, t->offset + i));
    buf_puts(out, (i + 1) % cols ? "," : "\n");
  }
}

static void tensor_npy(const ParamsFile *f, const TensorInfo *t, Buf *out) {
  npy_write_header(out, f->is_float ? NPY_F32 : NPY_F64, t->rank, t->dim);
  /* the parameter file's values are little-endian, as .npy's '<f4' and '<f8' */
  buf_append(out, f->values + (size_t)t->offset * f->esize, (size_t)t->numel * f->esize);
}

static int run_export(int argc, char **argv) {
  ParamsOptions o;
  parse_params_options(&o, argc, argv, "params export", "--format -o", export_help);
  if (!o.format) cli_usage_error("params export: --format npy|csv is required");
  if (!o.dir) cli_usage_error("params export: -o DIR is required");
  ParamsFile f;
  read_or_exit(o.file, &f);
  int n = f.tensors.len;
  char **paths = calloc((size_t)n + 1, sizeof(char *));
  const char **opts = calloc((size_t)n + 1, sizeof(char *));
  for (int i = 0; i < n; i++) {
    paths[i] = str_printf("%s/%s.%s", o.dir, f.tensors.items[i].name, o.format);
    opts[i] = "-o";
  }
  /* nothing is overwritten: every name is checked before the first file is written */
  struct stat st;
  for (int i = 0; i < n; i++)
    if (lstat(paths[i], &st) == 0)
      cli_usage_error("params export: %s exists; bpc does not overwrite it (remove it or choose another -o)",
                      paths[i]);
  int made_dir = 0;
  if (stat(o.dir, &st) != 0) {
    if (mkdir(o.dir, 0777) != 0) {
      fprintf(stderr, "bpc: cannot create %s: %s\n", o.dir, strerror(errno));
      exit(1);
    }
    made_dir = 1;
  } else if (!S_ISDIR(st.st_mode)) {
    fprintf(stderr, "bpc: cannot write into %s: it is not a directory\n", o.dir);
    exit(1);
  }
  const char *ins[1] = {o.file};
  cli_check_outputs((const char *const *)paths, opts, n, ins, 1);
  Buf *bufs = calloc((size_t)n + 1, sizeof(Buf));
  Buf **bufp = calloc((size_t)n + 1, sizeof(Buf *));
  for (int i = 0; i < n; i++) {
    bufp[i] = &bufs[i];
    if (!strcmp(o.format, "npy"))
      tensor_npy(&f, &f.tensors.items[i], &bufs[i]);
    else
      tensor_csv(&f, &f.tensors.items[i], &bufs[i]);
  }
  const char *why = NULL;
  int failed = write_files_atomically((const char **)paths, bufp, n, &why);
  if (failed >= 0) {
    fprintf(stderr, "bpc: cannot write %s: %s\n", paths[failed], why);
    if (made_dir) rmdir(o.dir);
  }
  for (int i = 0; i < n; i++) {
    buf_free(&bufs[i]);
    free(paths[i]);
  }
  free(bufs);
  free(bufp);
  free(paths);
  free(opts);
  params_file_free(&f);
  return failed >= 0;
}

static int run_params(int argc, char **argv) {
  const char *sub = argc > 1 ? argv[1] : NULL;
  if (sub && (!strcmp(sub, "-h") || !strcmp(sub, "--help"))) {
    fputs(params_help, stdout);
    return 0;
  }
  if (sub && !strcmp(sub, "show")) return run_show(argc - 1, argv + 1);
  if (sub && !strcmp(sub, "export")) return run_export(argc - 1, argv + 1);
  if (!sub) cli_usage_error("params: say what to do: bpc params show FILE, or bpc params export FILE ...");
  cli_usage_error("params: '%s' is not show or export", sub);
}

const CliCommand params_commands[] = {{"params", run_params}, {NULL, NULL}};
