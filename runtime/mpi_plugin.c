/* mpi_plugin.c — bpc's Open MPI plugin, libbpc-mpi.so: the collectives of
 * data-parallel training (runtime/dist.c) on MPI_COMM_WORLD. It is built
 * with mpicc as a shared object of its own and loaded only when mpirun
 * launched bpc, so that bpc never links libmpi. */
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>

#include "runtime.h"

static void plugin_init(int *rank, int *size) {
  int ready = 0;
  MPI_Initialized(&ready);
  if (!ready) MPI_Init(NULL, NULL);
  /* a collective that fails ends the job (the default handler): never a rank left waiting */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  MPI_Comm_size(MPI_COMM_WORLD, size);
}

/* In place, in pieces an int can count. Every rank gets the same bits:
 * MPI's reduction is computed once per element and handed to all. */
static void plugin_sum(void *buf, size_t n, int is_float) {
  size_t elem = is_float ? sizeof(float) : sizeof(double);
  MPI_Datatype t = is_float ? MPI_FLOAT : MPI_DOUBLE;
  for (size_t at = 0; at < n;) {
    size_t piece = n - at < (size_t)INT_MAX ? n - at : (size_t)INT_MAX;
    MPI_Allreduce(MPI_IN_PLACE, (char *)buf + at * elem, (int)piece, t, MPI_SUM, MPI_COMM_WORLD);
    at += piece;
  }
}

static void plugin_bcast(void *buf, size_t bytes) {
  for (size_t at = 0; at < bytes;) {
    size_t piece = bytes - at < (size_t)INT_MAX ? bytes - at : (size_t)INT_MAX;
    MPI_Bcast((char *)buf + at, (int)piece, MPI_BYTE, 0, MPI_COMM_WORLD);
    at += piece;
  }
}

static void plugin_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static void plugin_finalize(void) {
  int done = 0;
  MPI_Finalized(&done);
  if (!done) MPI_Finalize();
}

static const DistOps ops = {DIST_OPS_VERSION, plugin_init, plugin_sum, plugin_bcast, plugin_abort, plugin_finalize};

const DistOps *bpc_mpi_ops(void);
const DistOps *bpc_mpi_ops(void) { return &ops; }
