/* cli.c — command-line helpers shared by every bpc command. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* "bpc: MESSAGE (see bpc [CMD] --help)" on stderr, then exit 2. */
_Noreturn static void usage_exit(const char *cmd, const char *fmt, va_list ap) {
  fputs("bpc: ", stderr);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (see bpc %s%s--help)\n", cmd ? cmd : "", cmd ? " " : "");
  exit(2);
}

void cli_usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  usage_exit(NULL, fmt, ap);
}

_Noreturn __attribute__((format(printf, 2, 3))) static void command_usage_error(const char *cmd, const char *fmt,
                                                                                ...) {
  va_list ap;
  va_start(ap, fmt);
  usage_exit(cmd, fmt, ap);
}

/* Every option of every command, and what its value is. */
typedef struct CliOption {
  const char *name;
  const char *value; /* a word for the value it takes, or NULL for a flag */
} CliOption;

static const CliOption options[] = {
    {"-o", "FILE"},           {"--prefix", "NAME"},      {"--float", NULL},      {"-D", "NAME=INT"},
    {"--emit", "c|ir|loops|dot"},   {"--stats", NULL},         {"--data", "INPUT=FILE"}, {"--test", "INPUT=FILE"},
    {"--epochs", "N"},        {"--batch", "N"},          {"--lr", "X"},          {"--optim", "NAME"},
    {"--momentum", "X"},      {"--seed", "N"},           {"--threads", "N"},     {"--limit", "N"},
    {"--save", "FILE"},       {"--load", "FILE"},        {"--log", "FILE"},      {"--target", "INPUT"},
    {"--quiet", NULL},        {"--jit", "tcc|cc"},       {"--metric", "NAME"},   {"--classes", NULL},
    {"--set", "NAME=V,..."},  {"--fill", "NAME=V"},      {"--json", NULL},       {"--summary", NULL},    {"--points", "N"},
    {"--tol", "X"},           {"--all", NULL},           {"--batched", NULL},           {"--format", "FORMAT"}, {"--wrt", "NAME"},
    {"--test-perturb-gradient", "PARAM"}, {"--model", "MODEL.bp"}, {"--with-loader", NULL},
    {"--schedule", "constant|step|cosine|linear"}, {"--warmup", "EPOCHS"}, {"--step-every", "EPOCHS"},
    {"--step-gamma", "G"},    {"--weight-decay", "X"},   {"--clip-norm", "X"},   {"--beta1", "X"},
    {"--beta2", "X"},         {"--eps", "X"},            {"--val", "FRACTION|INPUT=FILE"}, {"--early-stop", "N"},
    {"--save-best", NULL},    {"--resume", "FILE"},      {"--shuffle", "none|epoch"},      {"--confusion", NULL},
    {"--test-fail-at", "RANK:STEP"},
};

static const CliOption *find_option(const char *name) {
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
    if (!strcmp(options[i].name, name)) return &options[i];
  return NULL;
}

/* Whether the space-separated list names name. */
static int listed(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; (p = strstr(p, name)); p += n)
    if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return 1;
  return 0;
}

_Noreturn static void unknown_option(const char *cmd, const char *accepted, const char *name) {
  const char *who = cmd ? cmd : "MODEL.bp";
  if (find_option(name)) command_usage_error(cmd, "%s is not an option of bpc %s", name, who);
  char best_name[64] = "";
  int best = 99;
  for (const char *p = accepted; *p;) {
    size_t n = strcspn(p, " ");
    char cand[64];
    if (n < sizeof cand) {
      memcpy(cand, p, n);
      cand[n] = 0;
      if (name_is_closer(name, cand, &best)) strcpy(best_name, cand);
    }
    p += n + (p[n] == ' ');
  }
  if (best_name[0]) command_usage_error(cmd, "unknown option '%s'; did you mean %s?", name, best_name);
  command_usage_error(cmd, "unknown option '%s'", name);
}

int cli_parse(int argc, char **argv, const char *cmd, const char *accepted, const char *help, CliArg *out) {
  int n = 0, options_done = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (options_done || a[0] != '-' || !a[1]) {
      out[n++] = (CliArg){NULL, a};
      continue;
    }
    if (!strcmp(a, "--")) {
      options_done = 1;
      continue;
    }
    if (help && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
      fputs(help, stdout);
      exit(0);
    }
    char name[64];
    const char *value = NULL;
    size_t len = strlen(a);
    if (a[1] == '-' && strchr(a, '=')) { /* --name=value */
      len = (size_t)(strchr(a, '=') - a);
      value = a + len + 1;
    } else if (a[1] == 'D' && a[2]) { /* -DNAME=INT */
      len = 2;
      value = a + 2;
    }
    if (len >= sizeof name) command_usage_error(cmd, "unknown option '%s'", a);
    memcpy(name, a, len);
    name[len] = 0;
    const CliOption *o = find_option(name);
    if (!o || !listed(accepted, name)) unknown_option(cmd, accepted, name);
    if (!o->value && value) command_usage_error(cmd, "%s takes no value (got '%s')", o->name, a);
    if (o->value && !value) {
      if (i + 1 >= argc) command_usage_error(cmd, "%s needs a value (%s %s)", o->name, o->name, o->value);
      value = argv[++i];
    }
    out[n++] = (CliArg){o->name, value};
  }
  return n;
}

long long cli_int(const char *opt, const char *v, long long lo, long long hi) {
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (*end || end == v || errno || x < lo || x > hi)
    cli_usage_error("%s takes a whole number from %lld to %lld, not '%s'", opt, lo, hi, v);
  return x;
}

double cli_real(const char *opt, const char *v, double lo, double hi) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (*end || end == v || errno || !(x >= lo) || x > hi)
    cli_usage_error("%s takes a number from %g to %g, not '%s'", opt, lo, hi, v);
  return x;
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
