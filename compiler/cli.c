/* cli.c — command-line helpers shared by every bpc command. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("bpc: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs(" (see bpc --help)\n", stderr);
  exit(2);
}

int cli_parse_define(const char *arg, DefineOpt *out) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg) return 0;
  char *end;
  errno = 0;
  long long v = strtoll(eq + 1, &end, 10);
  if (*end || end == eq + 1 || errno) return 0;
  out->name = strndup(arg, (size_t)(eq - arg));
  out->value = v;
  return 1;
}

/* Reads and compiles a model; on a user error prints it and exits 1. */
void cli_compile_or_exit(Ctx *c, const char *path, const CompileOptions *o) {
  size_t len = 0;
  const char *why = NULL;
  char *text = read_source_file(path, &len, &why);
  if (!text) {
    fprintf(stderr, "bpc: cannot read %s: %s\n", path, why);
    exit(1);
  }
  ctx_init(c, path, text, len);
  c->owned_text = text;
  if (bpc_compile(c, o)) {
    fputs(c->err.data, stderr);
    exit(1);
  }
}
