/* dist.h over MPI_COMM_WORLD; compiled instead of common/dist.c with -DFEDLORA_MPI=ON. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "dist.h"

static int joined, rank, size = 1;
static char last_error[512];
static double allreduce_s;

/* Keeps MPI's own description of rc, with what was being done. */
static int failed(int rc, const char *what) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = snprintf(text, sizeof text, "MPI error %d", rc);
  snprintf(last_error, sizeof last_error, "%s on rank %d of %d failed: %.*s", what, rank, size, len, text);
  return -1;
}

static int launched_by_mpi(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

int dist_init(int *argc, char ***argv, char *err, size_t err_size) {
  if (joined || !launched_by_mpi()) return 0;
  /* Only the main thread calls MPI; gRPC and OpenMP threads never do. */
  int provided, rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  if (rc != MPI_SUCCESS) {
    failed(rc, "MPI_Init_thread");
    snprintf(err, err_size, "%s", last_error);
    return -1;
  }
  joined = 1;
  /* MPI's default handler aborts the whole job on any error; a failed step should instead end
   * with a message and the site's usual restart path. */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return 0;
}

void dist_finalize(void) {
  if (!joined) return;
  MPI_Finalize();
  joined = 0;
  rank = 0;
  size = 1;
}

int dist_rank(void) { return rank; }
int dist_size(void) { return size; }

int dist_allreduce_sum(float *buf, size_t n) {
  if (size == 1) return 0;
  double t0 = clock_seconds();
  for (size_t off = 0; off < n;) { /* MPI counts are ints */
    int count = n - off > (size_t)INT_MAX ? INT_MAX : (int)(n - off);
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return failed(rc, "MPI_Allreduce");
    off += (size_t)count;
  }
  allreduce_s += clock_seconds() - t0;
  return 0;
}

int dist_bcast(void *buf, size_t bytes, int root) {
  if (size == 1) return 0;
  for (size_t off = 0; off < bytes;) {
    int count = bytes - off > (size_t)INT_MAX ? INT_MAX : (int)(bytes - off);
    int rc = MPI_Bcast((char *)buf + off, count, MPI_BYTE, root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return failed(rc, "MPI_Bcast");
    off += (size_t)count;
  }
  return 0;
}

const char *dist_error(void) { return last_error; }
double dist_allreduce_seconds(void) { return allreduce_s; }
