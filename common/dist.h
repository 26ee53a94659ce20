/* Data-parallel training across the processes of one site (MPI ranks). The trainer and the site
 * call this and nothing else: built without MPI (the default), or started without an MPI launcher,
 * it is one process of rank 0 in a world of size 1 and every call is a no-op, so callers need no
 * #ifdefs. Built with -DFEDLORA_MPI=ON (common/mpi/dist_mpi.c) the world is MPI_COMM_WORLD.
 *
 * Every collective must be entered by every rank in the same order. A failed collective (a rank
 * died, the network broke) returns -1 and keeps a message for dist_error(): MPI's errors are
 * returned, not fatal, so the caller can end its step with that message. */
#ifndef FEDLORA_DIST_H
#define FEDLORA_DIST_H

#include <stddef.h>

/* Joins the MPI world when this process was started by an MPI launcher (mpirun sets
 * OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK); otherwise stays a world of one. 0, or -1 with err. */
int dist_init(int *argc, char ***argv, char *err, size_t err_size);
/* Leaves the world; safe to call when dist_init did not join one. */
void dist_finalize(void);

int dist_rank(void);
int dist_size(void);

/* buf[i] = the sum over ranks of buf[i], in place, identical on every rank. 0 or -1. */
int dist_allreduce_sum(float *buf, size_t n);
/* Rank root's bytes copied into buf on every other rank. 0 or -1. */
int dist_bcast(void *buf, size_t bytes, int root);

/* Why the last collective failed ("" when none did). */
const char *dist_error(void);
/* Wall-clock seconds spent inside dist_allreduce_sum so far (for the scaling figures). */
double dist_allreduce_seconds(void);

#endif
