/* A site spread over several MPI ranks (common/dist.h, docs/mpi.md): rank 0 runs the federation
 * protocol of site.c alone (join, await, download, submit, state_dir) and sends the other ranks
 * what they need to train with it: the run plan once, then each round's global adapter and seed.
 * Every rank trains its share of each step's windows (train.h); rank 0 submits the update.
 *
 * Each exchange ends with every rank saying whether its part worked, so a rank that cannot load
 * its data or fails mid-round fails the round on all of them with a message instead of leaving
 * the others waiting. With one rank every function here is a no-op that returns its input. */
#ifndef FEDLORA_SITE_DIST_H
#define FEDLORA_SITE_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "fedlora.pb-c.h"
#include "site_config.h"

/* Rank 0: sends the plan to the other ranks. 0, or -1 with err. */
int site_dist_send_plan(const Fedlora__V1__JoinResponse *plan, char *err, size_t errlen);
/* Rank 0: sends a round's starting adapter (floats) and seed. 0, or -1 with err. */
int site_dist_send_round(const float *global, size_t floats, uint64_t seed, char *err, size_t errlen);
/* Rank 0, once site_run has returned: the other ranks exit with code rc. */
void site_dist_stop(int rc);

/* Every rank, after its part of an exchange: rc (0 or -1) of this rank in, 0 only if every rank
 * succeeded. err is kept when this rank failed and names the failure elsewhere otherwise. */
int site_dist_agree(int rc, char *err, size_t errlen);

/* Ranks > 0: follows rank 0 until it stops; returns the exit code (site.h). */
int site_dist_follow(const site_config *cfg);

#endif
