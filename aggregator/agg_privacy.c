#include "agg_privacy.h"

#include <math.h>
#include <stdio.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "dp.h"
#include "log.h"
#include "secagg_protocol.h"

static const char *const dp_mode_names[] = {"off", "central", "distributed"};

int agg_privacy_available(const agg_config *cfg, char *err, size_t errlen) {
  if (!cfg->privacy.secagg) return 0;
  if (cfg->server.allowed_clients.count > SECAGG_MAX_SITES)
    return snprintf(err, errlen, "[privacy] secagg: %d allowed clients, secure aggregation takes at most %d",
                    cfg->server.allowed_clients.count, SECAGG_MAX_SITES),
           -1;
  if (cfg->privacy.dp == AGG_DP_OFF && cfg->aggregation.weighting == AGG_WEIGHT_TOKENS)
    return snprintf(err, errlen,
                    "[aggregation] weighting = tokens cannot be used with secagg: a round's token count would have to "
                    "be revealed or fixed in advance; use examples or uniform"),
           -1;
  return 0;
}

double agg_privacy_rate(const agg_config *cfg) {
  int sites = cfg->server.allowed_clients.count, per_round = cfg->rounds.clients_per_round;
  return per_round == 0 || per_round >= sites ? 1.0 : (double)per_round / sites;
}

double agg_privacy_weight(const agg_config *cfg, double weight) {
  return cfg->privacy.dp == AGG_DP_OFF ? weight : 1.0;
}

int agg_privacy_round_limit(const agg_config *cfg, char *err, size_t errlen) {
  const double budget = cfg->privacy.dp_epsilon_budget, z = cfg->privacy.dp_noise_multiplier,
               delta = cfg->privacy.dp_delta, q = agg_privacy_rate(cfg);
  if (cfg->privacy.dp != AGG_DP_OFF && cfg->aggregation.weighting != AGG_WEIGHT_UNIFORM)
    log_warn("dp: every site weighs 1 in the mean (aggregation.weighting is ignored: a weight would scale a "
             "site's sensitivity beyond dp_clip)");
  if (cfg->privacy.dp == AGG_DP_OFF || budget <= 0) return cfg->rounds.total;
  int allowed = dp_rounds_within(q, z, delta, budget, cfg->rounds.total);
  if (allowed == 0) {
    snprintf(err, errlen,
             "privacy.dp_epsilon_budget = %g is exceeded by the first round already (epsilon %.4g at q = %g, "
             "noise multiplier %g, delta %g): raise the budget or the noise",
             budget, dp_epsilon(q, z, 1, delta), q, z, delta);
    return 0;
  }
  if (allowed < cfg->rounds.total)
    log_warn("dp: the epsilon budget %g allows %d of the %d rounds (epsilon %.4g after round %d, %.4g after %d); "
             "the run ends after round %d with its adapter as the final one",
             budget, allowed, cfg->rounds.total, dp_epsilon(q, z, allowed, delta), allowed,
             dp_epsilon(q, z, allowed + 1, delta), allowed + 1, allowed);
  return allowed;
}

int agg_privacy_check_update(const agg_config *cfg, const float *update, const float *global, size_t n, char *err,
                             size_t errlen) {
  if (cfg->privacy.dp == AGG_DP_OFF || cfg->privacy.secagg) return 0;
  double norm = dp_delta_norm(update, global, n);
  if (norm <= cfg->privacy.dp_clip) return 0;
  snprintf(err, errlen, "the update's delta has L2 norm %.9g, above privacy.dp_clip = %.9g (sites must clip)", norm,
           cfg->privacy.dp_clip);
  return -1;
}

int agg_privacy_noise(const agg_config *cfg, double *sum, size_t n, char *err, size_t errlen) {
  if (cfg->privacy.dp != AGG_DP_CENTRAL) return 0;
  uint8_t key[DP_KEY_BYTES];
  int rc = crypto_random(key, sizeof key);
  if (rc == 0) rc = dp_noise_add(sum, n, cfg->privacy.dp_noise_multiplier * cfg->privacy.dp_clip, key);
  OPENSSL_cleanse(key, sizeof key);
  if (rc != 0) snprintf(err, errlen, "cannot draw the central DP noise");
  return rc;
}

void agg_privacy_metrics(const agg_config *c, uint32_t rounds, json_t *metrics) {
  if (c->privacy.dp == AGG_DP_OFF) return;
  double q = agg_privacy_rate(c), eps = dp_epsilon(q, c->privacy.dp_noise_multiplier, rounds, c->privacy.dp_delta);
  json_object_set_new(
      metrics, "dp",
      json_pack("{s:s,s:f,s:f,s:f,s:f,s:I,s:o,s:f}", "mode", dp_mode_names[c->privacy.dp], "clip", c->privacy.dp_clip,
                "noise_multiplier", c->privacy.dp_noise_multiplier, "sampling_rate", q, "delta", c->privacy.dp_delta,
                "rounds", (json_int_t)rounds, "epsilon", isfinite(eps) ? json_real(eps) : json_null(), "budget",
                c->privacy.dp_epsilon_budget));
}
