/* outputs.c — the command line's safety checks on output paths: before
 * any work, an output that would overwrite an input or another output, or
 * that cannot be created, is refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* ---- outputs checked before any work ------------------------------------------ */

/* The directory part of path ("." for a bare name), malloc'd. */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

/* The path with its directory resolved (symbolic links, "..", "."), for
 * comparing files that do not exist yet; malloc'd. */
static char *canonical(const char *path) {
  char *dir = dir_of(path), *real = realpath(dir, NULL);
  const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
  size_t n = (real ? strlen(real) : strlen(dir)) + strlen(base) + 2;
  char *r = malloc(n);
  snprintf(r, n, "%s/%s", real ? real : dir, base);
  free(real);
  free(dir);
  return r;
}

int cli_same_file(const char *a, const char *b) {
  struct stat sa, sb;
  int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
  if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  if (ea != eb) return 0;
  char *ca = canonical(a), *cb = canonical(b);
  int same = !strcmp(ca, cb);
  free(ca);
  free(cb);
  return same;
}

/* Whether a new file can be made beside path: the directory exists and
 * takes one (tried for real, so it also holds for root on a read-only
 * file system), and path is not a directory. */
static int can_create(const char *path, const char **why) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    *why = "it is a directory";
    return 0;
  }
  char *dir = dir_of(path);
  size_t n = strlen(dir) + 32;
  char *probe = malloc(n);
  snprintf(probe, n, "%s/.bpc-probe.XXXXXX", dir);
  int fd = mkstemp(probe);
  int ok = fd >= 0;
  if (ok) {
    close(fd);
    unlink(probe);
  } else {
    *why = strerror(errno);
  }
  free(probe);
  free(dir);
  return ok;
}

void cli_check_outputs(const char *const *outs, const char *const *out_opts, int nouts, const char *const *ins,
                       int nins) {
  for (int i = 0; i < nouts; i++) {
    if (!outs[i]) continue;
    for (int k = 0; k < nins; k++)
      if (ins[k] && cli_same_file(outs[i], ins[k]))
        cli_usage_error("%s %s would overwrite the input %s", out_opts[i], outs[i], ins[k]);
    for (int k = 0; k < i; k++)
      if (outs[k] && cli_same_file(outs[i], outs[k]))
        cli_usage_error("%s %s and %s %s are the same file", out_opts[k], outs[k], out_opts[i], outs[i]);
    const char *why = NULL;
    if (!can_create(outs[i], &why)) {
      fprintf(stderr, "bpc: cannot write %s: %s\n", outs[i], why);
      exit(1);
    }
  }
}
