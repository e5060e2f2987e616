/* dist.c — data-parallel training across processes, on Open MPI.
 *
 * bpc itself never links libmpi: a plain `bpc` starts as fast as before
 * and runs on a machine without Open MPI. When mpirun launches it (mpirun
 * sets OMPI_COMM_WORLD_SIZE in every process's environment), it loads its
 * Open MPI plugin, libbpc-mpi.so (runtime/mpi_plugin.c, built with mpicc),
 * from beside the bpc binary or from PREFIX/lib/bpc, and every collective
 * goes through the plugin's table of functions. Without mpirun, a Dist is
 * one process of rank 0 and every collective is a no-op. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"

/* The directory of the running bpc binary (malloc'd), or NULL. */
static char *exe_dir(void) {
  char path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return NULL;
  path[n] = '\0';
  char *slash = strrchr(path, '/');
  if (!slash) return NULL;
  *slash = '\0';
  return str_printf("%s", path);
}

/* The plugin: beside the binary (the build tree: build/bpc and
 * build/libbpc-mpi.so), then where `make install` puts it (PREFIX/bin/bpc
 * and PREFIX/lib/bpc/libbpc-mpi.so). */
static void *open_plugin(char **tried) {
  char *dir = exe_dir();
  if (!dir) return NULL;
  char *beside = str_printf("%s/libbpc-mpi.so", dir), *installed = str_printf("%s/../lib/bpc/libbpc-mpi.so", dir);
  void *dl = dlopen(beside, RTLD_NOW | RTLD_GLOBAL); /* GLOBAL: Open MPI loads its own components after */
  if (!dl) dl = dlopen(installed, RTLD_NOW | RTLD_GLOBAL);
  if (!dl) *tried = str_printf("%s or %s: %s", beside, installed, dlerror());
  free(beside);
  free(installed);
  free(dir);
  return dl;
}

int dist_launched_by_mpirun(void) {
  const char *size = getenv("OMPI_COMM_WORLD_SIZE");
  return size && *size;
}

int dist_init(Dist *d, char **err) {
  memset(d, 0, sizeof *d);
  d->size = d->local_size = 1;
  if (!dist_launched_by_mpirun()) return 0;
  const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (local && atoi(local) > 0) d->local_size = atoi(local);
  char *tried = NULL;
  d->dl = open_plugin(&tried);
  if (!d->dl) {
    *err = str_printf("launched by mpirun, but bpc's Open MPI plugin cannot be loaded (%s); build it with "
                      "`make` on a machine with Open MPI (libopenmpi-dev)",
                      tried ? tried : "no such file");
    free(tried);
    return 1;
  }
  const DistOps *(*ops)(void) = (const DistOps *(*)(void))dlsym(d->dl, "bpc_mpi_ops");
  d->ops = ops ? ops() : NULL;
  if (!d->ops || d->ops->version != DIST_OPS_VERSION) {
    *err = str_printf("bpc's Open MPI plugin is of another version of bpc: rebuild it with `make`");
    dlclose(d->dl);
    d->dl = NULL;
    d->ops = NULL;
    return 1;
  }
  d->ops->init(&d->rank, &d->size);
  return 0;
}

/* A NULL Dist is this process alone, as one of size 1 is. */
int dist_shared(const Dist *d) { return d && d->size > 1; }

void dist_sum(const Dist *d, void *buf, size_t n, size_t elem) {
  if (dist_shared(d)) d->ops->sum(buf, n, elem == sizeof(float));
}

void dist_sum_doubles(const Dist *d, double *v, size_t n) {
  if (dist_shared(d)) d->ops->sum(v, n, 0);
}

void dist_bcast(const Dist *d, void *buf, size_t bytes) {
  if (dist_shared(d)) d->ops->bcast(buf, bytes);
}

int dist_any(const Dist *d, int mine) {
  double v = mine != 0;
  dist_sum_doubles(d, &v, 1);
  return v != 0;
}

void dist_fail(const Dist *d, int code) {
  fflush(stdout);
  fflush(stderr);
  if (d && d->ops) d->ops->abort_all(code); /* ends every rank, and mpirun with code */
  exit(code);
}

void dist_finish(Dist *d) {
  if (d->ops) d->ops->finalize();
  /* the plugin stays loaded: Open MPI's components may still hold atexit handlers in it */
  memset(d, 0, sizeof *d);
  d->size = d->local_size = 1;
}

void dist_share(const Dist *d, size_t n, size_t *from, size_t *len) {
  size_t r = d ? (size_t)d->rank : 0, s = d ? (size_t)d->size : 1;
  *from = n * r / s;
  *len = n * (r + 1) / s - *from;
}
