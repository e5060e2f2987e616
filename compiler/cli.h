/* cli.h — pieces of the command line shared by the compiler's main and the
 * runtime's commands (train, eval, predict, ...). */
#ifndef BPC_CLI_H
#define BPC_CLI_H

#include <stdarg.h>

#include "bpc.h"

typedef struct CliCommand {
  const char *name;
  int (*run)(int argc, char **argv); /* argv[0] is the command name */
} CliCommand;

extern const CliCommand cli_commands[];     /* NULL-terminated; runtime/commands.c */
extern const CliCommand inspect_commands[]; /* grad, check, graph, explain, trace: runtime/inspect.c */

_Noreturn void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_parse_define(const char *arg, DefineOpt *out);
void cli_compile_or_exit(Ctx *c, const char *path, const CompileOptions *o);

/* Writes each buffer to a temporary file beside its path, fsyncs, then
 * renames all of them into place. Returns -1 on success, or the index of the
 * path that failed (with *why set); nothing is left behind on failure. */
int cli_write_files_atomically(const char **paths, Buf **bufs, int n, const char **why);

#endif
