#include "site_dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "log.h"
#include "site.h"
#include "site_train.h"

/* What rank 0 broadcasts before each exchange; `bytes` of payload follow it. */
typedef enum { SITE_DIST_PLAN = 1, SITE_DIST_ROUND, SITE_DIST_STOP } site_dist_kind;
typedef struct {
  uint32_t kind;   /* site_dist_kind */
  int32_t exit_rc; /* SITE_DIST_STOP: the followers' exit code */
  uint64_t seed;   /* SITE_DIST_ROUND */
  uint64_t bytes;  /* PLAN: the packed JoinResponse; ROUND: the adapter's floats * 4 */
} site_dist_header;

static int send_header(site_dist_kind kind, uint64_t seed, uint64_t bytes, int exit_rc, char *err, size_t errlen) {
  site_dist_header h = {.kind = kind, .exit_rc = exit_rc, .seed = seed, .bytes = bytes};
  if (dist_bcast(&h, sizeof h, 0) == 0) return 0;
  snprintf(err, errlen, "cannot reach the other ranks: %s", dist_error());
  return -1;
}

int site_dist_send_plan(const Fedlora__V1__JoinResponse *plan, char *err, size_t errlen) {
  if (dist_size() == 1) return 0;
  size_t bytes = fedlora__v1__join_response__get_packed_size(plan);
  uint8_t *packed = malloc(bytes + 1);
  if (!packed) return snprintf(err, errlen, "out of memory for the plan (%zu bytes)", bytes), -1;
  fedlora__v1__join_response__pack(plan, packed);
  int rc = send_header(SITE_DIST_PLAN, 0, bytes, 0, err, errlen);
  if (rc == 0 && dist_bcast(packed, bytes, 0) != 0) {
    snprintf(err, errlen, "cannot send the plan to the other ranks: %s", dist_error());
    rc = -1;
  }
  free(packed);
  return rc;
}

int site_dist_send_round(const float *global, size_t floats, uint64_t seed, char *err, size_t errlen) {
  if (dist_size() == 1) return 0;
  if (send_header(SITE_DIST_ROUND, seed, floats * sizeof(float), 0, err, errlen) != 0) return -1;
  if (dist_bcast((void *)global, floats * sizeof(float), 0) == 0) return 0;
  snprintf(err, errlen, "cannot send the global adapter to the other ranks: %s", dist_error());
  return -1;
}

void site_dist_stop(int rc) {
  char err[256];
  if (dist_size() > 1 && send_header(SITE_DIST_STOP, 0, 0, rc, err, sizeof err) != 0) log_warn("%s", err);
}

int site_dist_agree(int rc, char *err, size_t errlen) {
  if (dist_size() == 1) return rc;
  float failures[1] = {rc != 0 ? 1.0f : 0.0f};
  if (dist_allreduce_sum(failures, 1) != 0) {
    if (rc == 0) snprintf(err, errlen, "the ranks cannot agree: %s", dist_error());
    return -1;
  }
  if (failures[0] == 0.0f) return 0;
  if (rc == 0) snprintf(err, errlen, "%.0f of %d ranks failed (their logs say why)", failures[0], dist_size());
  return -1;
}

/* A follower's part of one exchange; the payload is received here. */
static int follow_plan(site_trainer *st, size_t bytes, char *err, size_t errlen) {
  uint8_t *packed = malloc(bytes + 1);
  if (!packed || dist_bcast(packed, bytes, 0) != 0) {
    free(packed);
    return snprintf(err, errlen, "cannot receive the plan: %s", packed ? dist_error() : "out of memory"), -2;
  }
  Fedlora__V1__JoinResponse *plan = fedlora__v1__join_response__unpack(NULL, bytes, packed);
  free(packed);
  int rc;
  if (!st || !plan) {
    if (!plan) snprintf(err, errlen, "rank 0 sent a plan that does not unpack");
    rc = site_dist_agree(-1, err, errlen);
  } else {
    rc = site_trainer_plan(st, plan, err, errlen);
  }
  if (plan) fedlora__v1__join_response__free_unpacked(plan, NULL);
  return rc;
}

static int follow_round(site_trainer *st, size_t bytes, uint64_t seed, char *err, size_t errlen) {
  float *global = malloc(bytes + 4), *update = malloc(bytes + 4);
  int rc;
  if (!global || !update || dist_bcast(global, bytes, 0) != 0) {
    snprintf(err, errlen, "cannot receive the global adapter: %s", global ? dist_error() : "out of memory");
    rc = -2;
  } else if (!st || bytes != site_trainer_layout(st)->floats * sizeof(float)) {
    if (st) snprintf(err, errlen, "rank 0 sent %zu adapter bytes, the plan has %zu", bytes,
                     site_trainer_layout(st)->floats * sizeof(float));
    rc = site_dist_agree(-1, err, errlen);
  } else {
    Fedlora__V1__SiteMetrics metrics = FEDLORA__V1__SITE_METRICS__INIT;
    rc = site_trainer_round(st, global, seed, update, &metrics, NULL, NULL, err, errlen);
  }
  free(global);
  free(update);
  return rc;
}

int site_dist_follow(const site_config *cfg) {
  char err[1024] = "";
  /* A rank that cannot load the model or its data still answers every exchange, with a failure,
   * so that rank 0 reports it instead of waiting. */
  site_trainer *st = site_trainer_build(cfg, err, sizeof err);
  if (!st) log_error("rank %d: %s", dist_rank(), err);
  for (;;) {
    site_dist_header h;
    if (dist_bcast(&h, sizeof h, 0) != 0) {
      log_error("rank %d: rank 0 is gone: %s", dist_rank(), dist_error());
      site_trainer_free(st);
      return SITE_EXIT_FAILED;
    }
    if (h.kind == SITE_DIST_STOP) {
      site_trainer_free(st);
      return h.exit_rc;
    }
    err[0] = '\0';
    int rc = h.kind == SITE_DIST_PLAN    ? follow_plan(st, h.bytes, err, sizeof err)
             : h.kind == SITE_DIST_ROUND ? follow_round(st, h.bytes, h.seed, err, sizeof err)
                                         : (snprintf(err, sizeof err, "unknown message %u from rank 0", h.kind), -2);
    if (rc == -2) { /* the link to rank 0 is broken: nothing more can be exchanged */
      log_error("rank %d: %s", dist_rank(), err);
      site_trainer_free(st);
      return SITE_EXIT_FAILED;
    }
    if (rc != 0 && err[0]) log_error("rank %d: %s", dist_rank(), err);
  }
}
