/* Robust aggregation in the federation: with aggregation.robust or norm_bound set, the round's
 * delta is not the streamed weighted mean but a rule over every accepted update (common/robust.h),
 * so all of them are read back from the round's pending store at once: memory is one float per
 * parameter per site (a 100-site round of a 10M-parameter adapter holds 4 GB). Only with secagg
 * off: secure aggregation hides the individual updates these rules need. */
#ifndef FEDLORA_AGG_ROBUST_H
#define FEDLORA_AGG_ROBUST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "agg_config.h"
#include "store.h"

/* Whether the round's delta comes from agg_robust_delta instead of the weighted mean. */
int agg_robust_active(const agg_config *cfg);

/* delta (n) from the pending updates of `round` (payloads of n floats, stored in st) of the sites
 * named in `sites` (site → its metrics object with "weight"), relative to global (n): each delta
 * u − global is first scaled to norm_bound (when > 0), then combined by the robust rule (the
 * weighted mean when none). Adds "robust" to metrics (the rule, and Krum's choice). 0, or -1 with
 * the reason in err. */
int agg_robust_delta(const agg_config *cfg, const store *st, uint32_t round, const float *global, size_t n,
                     const json_t *sites, float *delta, json_t *metrics, char *err, size_t errlen);

#endif
