/* The aggregator's side of secure aggregation on the network: the SecAgg* handlers and the stage
 * state of the open round's attempt (common/secagg_protocol.h does the protocol; this file carries
 * it). The federation's round thread drives the stages; the handlers only collect and relay.
 *
 * One attempt of a round, with the site's ordering:
 *   keys    every selected site advertises (the TRAIN task of AwaitRound names the attempt and
 *           the sorted sites); closes when all have, or at privacy.secagg_stage_s.
 *   shares  each site that advertised sends its sealed shares; same close rule.
 *   masked  the sites train, then send their masked vectors; this stage is the round's own open
 *           phase: it closes by the round machine's quorum rules (round.h), and an accepted
 *           masked vector counts as the site's submission.
 *   unmask  the survivors reveal; closes when all have, or at secagg_stage_s; then the sum is
 *           unmasked and the round commits the mean.
 * Fewer than t sites at any close aborts the attempt: the round reopens as attempt + 1 and the
 * sites start again from the key stage with fresh keys.
 *
 * Durability, the simplest correct rule: state.json records the attempt's round, number and stage.
 * An aggregator restarted during a secagg round opens that round as a new attempt and starts its
 * secure aggregation from the key stage with fresh keys; the sites see the new attempt in their
 * next task, keep the update they trained, and go through the stages again. Nothing of an
 * interrupted attempt is needed, so nothing of it is kept but its transcript.
 *
 * What the aggregator holds: public keys, signatures, certificates, sealed shares, masked vectors
 * and their sum, reveals — never a site's unmasked update, nor its losses: those ride masked after
 * the update (common/secagg_metrics.h) and only their pooled means are unmasked. With privacy.secagg_transcript = on it
 * also writes every message it accepted to state_dir/secagg/rNNNN-aA/ (an audit of what it saw).
 *
 * Testing hook: FEDLORA_TEST_SECAGG_CRASH=keys|shares|masked|unmask makes the aggregator SIGKILL
 * itself on the first message of that stage in an attempt 0 (tests kill it during each stage). */
#ifndef FEDLORA_SECAGG_SERVER_H
#define FEDLORA_SECAGG_SERVER_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "agg_config.h"
#include "fedlora.pb-c.h"
#include "round.h"
#include "rpc.h"
#include "secagg_protocol.h"

typedef struct {
  int active;                   /* an attempt is open (or its sum awaits commit) */
  uint32_t round, attempt;
  secagg_server v;
  double stage_opened;          /* monotonic seconds */
  uint64_t weight_scale;        /* w = example_count / weight_scale; 0: w = 1 */
  uint8_t advertised[SECAGG_MAX_SITES];
  uint8_t c_pk[SECAGG_MAX_SITES][CRYPTO_X25519_BYTES], s_pk[SECAGG_MAX_SITES][CRYPTO_X25519_BYTES];
  uint8_t sig[SECAGG_MAX_SITES][SECAGG_SIG_MAX];
  size_t sig_len[SECAGG_MAX_SITES];
  char *cert[SECAGG_MAX_SITES];
  secagg_sealed_share *shares;  /* (n, n): [from·n + to], relayed unread */
  json_t *metrics;              /* site name -> what it measured, but for its losses (masked) */
  float *mean;                  /* (d + SECAGG_METRIC_WORDS) the unmasked mean delta, then the mean
                                 * loss coordinates (common/secagg_metrics.h), once finished */
  double w_sum;
  char dir[2048];               /* transcript directory, "" when off */
} secagg_round;

/* What the handlers share with the federation (all under *mu). */
typedef struct {
  const agg_config *cfg;
  pthread_mutex_t *mu;
  pthread_cond_t *changed;
  atomic_int *stop;
  secagg_round *sr;
  round_machine *rm;
  uint64_t *bytes_in;
  size_t d;                     /* floats of an update */
} secagg_host;

typedef enum { SECAGG_TICK_NONE, SECAGG_TICK_CHANGED, SECAGG_TICK_ABORT, SECAGG_TICK_UNMASKED } secagg_tick;

/* Opens attempt rm->attempt of rm->round for the selected sites. examples[k] is the count the k-th
 * joined site (rm->sites order) declared. 0, or -1 with err (nothing open). */
int secagg_round_open(secagg_host *h, const char *run_id, const char *state_dir, const uint64_t *examples, double now,
                      char *err, size_t errlen);
void secagg_round_close(secagg_round *sr);
/* Closes the key and share stages when due, the unmask stage when every survivor revealed or it
 * is due: SECAGG_TICK_UNMASKED then means sr->mean is ready. ABORT: the attempt failed (logged). */
secagg_tick secagg_round_tick(secagg_host *h, double now);
/* The round machine closed the masked stage. 0, or -1 (logged) when fewer than t sent theirs. */
int secagg_round_close_masked(secagg_host *h, double now);
/* May `site` start the open attempt (it has not advertised and the key stage is open)? */
int secagg_round_may_start(const secagg_round *sr, const char *site);
/* Fills a TRAIN task's secagg fields; names points into rm (valid under the lock). */
void secagg_round_task(const secagg_round *sr, Fedlora__V1__RoundTask *task, char **names);
const char *secagg_stage_name(const secagg_round *sr);

grpc_status_code secagg_handle_advertise(rpc_call *call, secagg_host *h);
grpc_status_code secagg_handle_get_adverts(rpc_call *call, secagg_host *h);
grpc_status_code secagg_handle_share_keys(rpc_call *call, secagg_host *h);
grpc_status_code secagg_handle_get_shares(rpc_call *call, secagg_host *h);
grpc_status_code secagg_handle_submit_masked(rpc_call *call, secagg_host *h);
grpc_status_code secagg_handle_get_survivors(rpc_call *call, secagg_host *h);
grpc_status_code secagg_handle_unmask(rpc_call *call, secagg_host *h);

#endif
