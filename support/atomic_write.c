/* atomic_write.c — files appear whole or not at all: write a temporary file
 * beside the target, fsync it, then rename it into place. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

static char *temp_path_for(const char *path) {
  size_t n = strlen(path);
  char *t = malloc(n + 16);
  if (t) snprintf(t, n + 16, "%s.tmp.XXXXXX", path);
  return t;
}

static int write_all(int fd, const char *data, size_t len) {
  while (len) {
    ssize_t w = write(fd, data, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    data += w;
    len -= (size_t)w;
  }
  return 0;
}

int write_files_atomically(const char **paths, Buf **bufs, int n, const char **why) {
  char *tmps[8] = {0};
  int failed = -1;
  if (n > 8) {
    *why = "too many files";
    return 0;
  }
  for (int i = 0; i < n && failed < 0; i++) {
    tmps[i] = temp_path_for(paths[i]);
    int fd = tmps[i] ? mkstemp(tmps[i]) : -1;
    if (fd < 0) {
      *why = strerror(errno);
      free(tmps[i]);
      tmps[i] = NULL;
      failed = i;
      break;
    }
    if (write_all(fd, bufs[i]->data ? bufs[i]->data : "", bufs[i]->len) || fsync(fd)) {
      *why = strerror(errno);
      failed = i;
    }
    if (close(fd) && failed < 0) {
      *why = strerror(errno);
      failed = i;
    }
    if (failed < 0) (void)chmod(tmps[i], 0644); /* mkstemp makes 0600; generated files are ordinary files */
  }
  for (int i = 0; i < n && failed < 0; i++)
    if (rename(tmps[i], paths[i])) {
      *why = strerror(errno);
      failed = i;
    }
  for (int i = 0; i < n; i++) {
    if (tmps[i] && failed >= 0) unlink(tmps[i]);
    free(tmps[i]);
  }
  return failed;
}
