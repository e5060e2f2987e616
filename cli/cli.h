/* cli.h — the command line: one option parser for every command, the
 * commands (compile in main.c; train, eval, predict, bench in commands.c;
 * grad, check, graph, explain, trace in inspect.c; params in params.c), the checks on their
 * output paths (outputs.c), and compiling a model and loading it into the
 * runtime (build.c). It uses the compiler (bpc.h) and the runtime
 * (runtime.h); neither uses it. */
#ifndef BPC_CLI_H
#define BPC_CLI_H

#include <stdarg.h>

#include "bpc.h"
#include "runtime.h"

typedef struct CliCommand {
  const char *name;
  int (*run)(int argc, char **argv); /* argv[0] is the command name */
} CliCommand;

extern const CliCommand cli_commands[];     /* NULL-terminated; commands.c */
extern const CliCommand inspect_commands[]; /* grad, check, graph, explain, trace: inspect.c */
extern const CliCommand params_commands[];  /* params show, params export: params.c */

_Noreturn void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- the one option parser of every command ----------------------------------
 * Options are `--name VALUE`, `--name=VALUE`, flags `--name`, `-o FILE`,
 * `-D NAME=INT` or `-DNAME=INT`; `--` ends them. A command names the
 * options it accepts; anything else is a usage error (exit 2) with a "did
 * you mean", and an option of another command says so rather than being
 * ignored. */
typedef struct CliArg {
  const char *name;  /* "--epochs", or NULL for a positional argument */
  const char *value; /* its value (NULL for a flag), or the positional argument */
} CliArg;

/* Parses argv[1..argc) for the command argv[0] (cmd names it in messages,
 * e.g. "train"; NULL for the compile command). accepted lists the options,
 * separated by spaces. -h and --help print help (when not NULL) and exit 0.
 * Returns the number of arguments stored in out (argc entries). */
int cli_parse(int argc, char **argv, const char *cmd, const char *accepted, const char *help, CliArg *out);
/* Number parsing with range checks (usage errors name the option). */
long long cli_int(const char *opt, const char *v, long long lo, long long hi);
double cli_real(const char *opt, const char *v, double lo, double hi);
int cli_parse_define(const char *arg, DefineOpt *out);

/* ---- build.c: from a .bp file to the compiler's Ctx and the runtime's model -- */
/* Reads and compiles a model into c (which then owns the text). Returns 0,
 * or 1 with the user's error printed and nothing left to free. */
int cli_compile(Ctx *c, const char *path, const CompileOptions *o);
void cli_compile_or_exit(Ctx *c, const char *path, const CompileOptions *o); /* exits 1 on an error */

/* A model compiled and loaded for a command that needs both the compiler's
 * view of it (the graph: stats, the interpreter, which inputs the outputs
 * read) and its compiled functions. */
typedef struct LoadedModel {
  Ctx ctx;
  JitModel *jit; /* self-contained: nothing in it points into ctx */
} LoadedModel;
/* Compiles a .bp file into memory (tcc), or into a cached shared object
 * (cc), with batched functions for jo->batch examples at a time when the
 * model allows it (jo may be NULL). Returns 0, or 1 with the error printed
 * (a user's error; a compiler failure on generated code is an internal
 * error) and nothing left to free. */
int load_model(LoadedModel *lm, const char *path, const CompileOptions *co, const JitOptions *jo);
void unload_model(LoadedModel *lm);
/* The runtime's view of a compiled model's tensors (to check a parameter
 * file against it without loading its functions); free its arena. */
void cli_model_info(const Ctx *c, ModelInfo *mi);
/* The same when only the functions are needed: the compiler's structures
 * are freed once the model is loaded. NULL on an error (printed). */
JitModel *jit_load(const char *path, const CompileOptions *co, const JitOptions *jo);

/* Whether two paths name one file: the same device and inode when both
 * exist, else the same path once its directory is resolved. */
int cli_same_file(const char *a, const char *b);
/* Before any work: refuses an output that would overwrite an input or
 * another output (usage error, exit 2), and one that cannot be created
 * (its directory is missing or read-only, or it is a directory: exit 1).
 * out_opts[i] names the option that gave outs[i] ("-o", "--save"); NULL
 * entries are skipped. */
void cli_check_outputs(const char *const *outs, const char *const *out_opts, int nouts, const char *const *ins,
                       int nins);

#endif
