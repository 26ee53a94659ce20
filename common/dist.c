/* The single-process world of dist.h: built when FEDLORA_MPI is off. A sum over one rank is the
 * buffer itself and a broadcast from rank 0 to nobody moves nothing. */
#include "dist.h"

int dist_init(int *argc, char ***argv, char *err, size_t err_size) {
  (void)argc, (void)argv, (void)err, (void)err_size;
  return 0;
}

void dist_finalize(void) {}
int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }

int dist_allreduce_sum(float *buf, size_t n) {
  (void)buf, (void)n;
  return 0;
}

int dist_bcast(void *buf, size_t bytes, int root) {
  (void)buf, (void)bytes, (void)root;
  return 0;
}

const char *dist_error(void) { return ""; }
double dist_allreduce_seconds(void) { return 0.0; }
