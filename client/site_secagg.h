/* The site's side of secure aggregation on the network (common/secagg_protocol.h does the
 * protocol; aggregator/secagg_server.h the other end). Within one attempt of a round:
 *
 *   site_secagg_begin   stage 0 and 1, before training: fresh keys signed with the site's TLS key,
 *                       the peers' adverts checked against the CA, sealed shares sent.
 *   (local training, or the update kept from before a restart)
 *   site_secagg_finish  stage 2 and 3: the masked delta [w·range, w·(update − global), w·losses]
 *                       sent in chunks (the losses as common/secagg_metrics.h encodes them; in
 *                       the clear only steps and timings), then the site's reveals for the
 *                       survivors the aggregator names.
 *
 * The keys live only in memory: a site restarted during an attempt takes no further part in it
 * (it is recovered as a dropout, or the attempt aborts) and joins the next attempt with the update
 * it kept. Results: 0 done; SITE_SECAGG_GONE when the attempt is over (aborted or superseded):
 * ask AwaitRound again; SITE_SECAGG_REFUSED (begin) when the task's parameters would let the
 * aggregator unmask this site (secagg_params_check; refusal says why); -1 on any other failure
 * (logged).
 *
 * Testing hook: FEDLORA_TEST_SECAGG_CRASH=shares|masked makes the site SIGKILL itself right after
 * the aggregator acknowledged its shares, or its masked vector (a dropout at a known stage). */
#ifndef FEDLORA_SITE_SECAGG_H
#define FEDLORA_SITE_SECAGG_H

#include <stddef.h>
#include <stdint.h>

#include "fedlora.pb-c.h"
#include "rpc.h"
#include "secagg_protocol.h"
#include "site_config.h"

enum { SITE_SECAGG_GONE = 1, SITE_SECAGG_REFUSED = 2 };

typedef struct {
  rpc_client *rpc;
  const site_config *cfg;
  volatile int *stop;
  uint32_t round, attempt;
  uint64_t weight_scale;
  secagg_site s;
  char refusal[512];  /* why site_secagg_begin refused the task */
} site_secagg;

/* plan: the JoinResponse (run id and the fixed-point encoding); task: the TRAIN task; me: this
 * site's name; d: floats of an update. */
int site_secagg_begin(site_secagg *sa, rpc_client *rpc, const site_config *cfg, volatile int *stop,
                      const char *run_id, double range, double scale, const Fedlora__V1__RoundTask *task,
                      const char *me, size_t d);
/* delta (d) = update − global; examples: this site's example count (its weight); metrics: what
 * training measured, its losses NaN when they must not be sent at all. */
int site_secagg_finish(site_secagg *sa, const float *delta, uint64_t examples, uint64_t rounding_seed,
                       const Fedlora__V1__SiteMetrics *metrics);
/* Wipes the keys and shares. */
void site_secagg_clear(site_secagg *sa);

#endif
