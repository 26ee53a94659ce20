/* The aggregator's side of differential privacy (common/dp.h states the mechanism): it verifies
 * the sites' clipping when it can see the updates, adds the central noise to the round's sum,
 * reports ε in every round's metrics, and caps the run at the rounds the ε budget allows. */
#ifndef FEDLORA_AGG_PRIVACY_H
#define FEDLORA_AGG_PRIVACY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "agg_config.h"

/* Secure aggregation's own start-up limits: at most SECAGG_MAX_SITES allowed clients, and no token
 * weighting (a round's token count would have to travel in the clear). 0, or -1 with the reason. */
int agg_privacy_available(const agg_config *cfg, char *err, size_t errlen);

/* Sampling rate of a round: clients_per_round / allowed sites (1 when every site takes part). */
double agg_privacy_rate(const agg_config *cfg);

/* The number of rounds the run may commit: rounds.total, or fewer when dp_epsilon_budget would be
 * exceeded by the next one. 0 (with the reason in err) if not even one round fits. */
int agg_privacy_round_limit(const agg_config *cfg, char *err, size_t errlen);

/* A site's weight in the mean: `weight` (from aggregation.weighting), or 1 under DP, where a
 * weight would scale the site's sensitivity beyond dp_clip (the start-up log says so). */
double agg_privacy_weight(const agg_config *cfg, double weight);

/* With dp on and secagg off: 0 if ‖update − global‖ ≤ dp_clip, else -1 with both in err. */
int agg_privacy_check_update(const agg_config *cfg, const float *update, const float *global, size_t n, char *err,
                             size_t errlen);

/* Central DP: sum (n) += N(0, (z·C)²) from a fresh random key; nothing otherwise. */
int agg_privacy_noise(const agg_config *cfg, double *sum, size_t n, char *err, size_t errlen);

/* Adds "dp": {mode, clip, noise_multiplier, sampling_rate, delta, rounds, epsilon, budget} to a
 * round's metrics once `rounds` rounds are committed; nothing when dp is off. */
void agg_privacy_metrics(const agg_config *cfg, uint32_t rounds, json_t *metrics);

#endif
