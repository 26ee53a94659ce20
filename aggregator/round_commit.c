/* The round commit: the open round's updates (or its secure-aggregation sum) averaged, the
 * server optimiser applied, and the new global adapter committed as a round directory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg_privacy.h"
#include "agg_robust.h"
#include "aggregate.h"
#include "federation_state.h"
#include "log.h"
#include "secagg_metrics.h"

typedef struct {
  federation *f;
  agg_accum acc;
  json_t *sites;
  json_t *extra;  /* the privacy and robust reports of the metrics line */
  double weighted_val, weighted_train, val_weight, train_weight;
  char err[512];
} aggregation;

static double json_number_or_nan(const json_t *v) { return json_is_number(v) ? json_number_value(v) : NAN; }

/* Adds the round's pending updates (plain aggregation) in one sweep (agg_accum_add_all); an update
 * that is not finite is left out with the reason logged, so one diverged site does not spoil the
 * round. */
static int aggregate_pending(aggregation *g) {
  federation *f = g->f;
  size_t n = f->layout.floats;
  store_pending_set set;
  if (store_pending_map(&f->st, f->rm.round, payload_bytes(&f->layout), &set, g->err, sizeof g->err) != 0) return -1;
  const float **updates = malloc(sizeof *updates * (size_t)(set.count + 1));
  double *weights = malloc(sizeof *weights * (size_t)(set.count + 1));
  int *accepted = malloc(sizeof *accepted * (size_t)(set.count + 1)), rc = -1;
  if (!updates || !weights || !accepted) {
    snprintf(g->err, sizeof g->err, "out of memory for %d updates", set.count);
    goto done;
  }
  for (int i = 0; i < set.count; i++) {
    const json_t *meta = set.metas[i];
    double examples = (double)json_integer_value(json_object_get(meta, "example_count"));
    double tokens = (double)json_integer_value(json_object_get(meta, "tokens"));
    updates[i] = (const float *)set.payloads[i];
    weights[i] = agg_privacy_weight(f->cfg, f->cfg->aggregation.weighting == AGG_WEIGHT_EXAMPLES ? examples
                                            : f->cfg->aggregation.weighting == AGG_WEIGHT_TOKENS ? tokens
                                                                                                 : 1.0);
  }
  agg_accum_add_all(&g->acc, updates, weights, set.count, f->global_payload, accepted);
  for (int i = 0; i < set.count; i++) {
    const json_t *meta = set.metas[i];
    if (!accepted[i]) {
      char why[160];
      agg_update_check(updates[i], n, weights[i], why, sizeof why);
      log_warn("round %u: the update of %s is left out: %s", f->rm.round, set.sites[i], why);
      continue;
    }
    json_t *s = json_deep_copy(meta);
    json_object_set_new(s, "weight", json_real(weights[i]));
    json_object_set_new(g->sites, set.sites[i], s);
    double examples = (double)json_integer_value(json_object_get(meta, "example_count"));
    double val = json_number_or_nan(json_object_get(meta, "val_loss_before"));
    double train = json_number_or_nan(json_object_get(meta, "train_loss"));
    if (isfinite(val)) g->weighted_val += examples * val, g->val_weight += examples;
    if (isfinite(train)) g->weighted_train += examples * train, g->train_weight += examples;
  }
  rc = 0;
done:
  free(updates);
  free(weights);
  free(accepted);
  store_pending_unmap(&set);
  return rc;
}

/* Under secagg: delta (n) = the unmasked mean of the round's masked updates, with central DP
 * noise added to their sum; the pooled losses are the unmasked means of the loss coordinates
 * that follow the update (weighted like it), and no site's own loss is known. */
static int secagg_mean(federation *f, aggregation *g, float *delta) {
  size_t n = f->layout.floats;
  const secagg_round *sa = &f->sa;
  double *sum = malloc(n * sizeof(double) + 1);
  if (!sum) return snprintf(g->err, sizeof g->err, "out of memory for the sum"), -1;
  for (size_t i = 0; i < n; i++) sum[i] = (double)sa->mean[i] * sa->w_sum;
  int rc = agg_privacy_noise(f->cfg, sum, n, g->err, sizeof g->err);
  for (size_t i = 0; i < n; i++) delta[i] = (float)(sum[i] / sa->w_sum);
  free(sum);
  double val, train;
  secagg_metrics_decode(sa->mean + n, &train, &val);
  if (isfinite(val)) g->weighted_val = val, g->val_weight = 1;
  if (isfinite(train)) g->weighted_train = train, g->train_weight = 1;
  g->acc.count = (int)json_object_size(sa->metrics);
  json_object_update(g->sites, sa->metrics);
  json_object_set_new(g->extra, "secagg", json_pack("{s:I,s:f}", "threshold", (json_int_t)sa->v.p.t, "weight_sum",
                                                    sa->w_sum));
  return rc;
}

static json_t *names_where(const round_machine *rm, int want_selected, int want_submitted) {
  json_t *a = json_array();
  for (int i = 0; i < rm->n_sites; i++) {
    const round_site *s = &rm->sites[i];
    if (want_selected >= 0 && s->selected != want_selected) continue;
    if (want_submitted >= 0 && s->submitted != want_submitted) continue;
    json_array_append_new(a, json_string(s->name));
  }
  return a;
}

/* Aggregates the open round's pending updates and commits it. Lock held. On failure nothing
 * changes: the round stays AGGREGATING and is tried again on the next tick. */
int round_aggregate_commit(federation *f) {
  double t0 = clock_seconds();
  size_t n = f->layout.floats;
  aggregation g = {.f = f, .sites = json_object(), .extra = json_object()};
  float *delta = malloc(n * sizeof(float) + 1), *next = malloc(n * sizeof(float) + 1);
  float *state = malloc(f->n_state * sizeof(float) + 1);
  int rc = -1;
  if (!delta || !next || !state || agg_accum_build(&g.acc, n, g.err, sizeof g.err) != 0) goto done;
  if (f->cfg->privacy.secagg) {
    if (secagg_mean(f, &g, delta) != 0) goto done;
  } else if (aggregate_pending(&g) != 0 ||
             agg_privacy_noise(f->cfg, g.acc.sum, n, g.err, sizeof g.err) != 0 ||
             (agg_robust_active(f->cfg) ? agg_robust_delta(f->cfg, &f->st, f->rm.round, f->global_payload, n, g.sites, delta,
                                                   g.extra, g.err, sizeof g.err) != 0
                                : agg_accum_mean(&g.acc, delta, g.err, sizeof g.err) != 0)) {
    goto done;
  }
  memcpy(next, f->global_payload, n * sizeof(float));
  memcpy(state, f->sopt_state, f->n_state * sizeof(float));
  server_opt_apply(&f->sopt, next, delta, state, n);

  lora_adapter candidate;
  if (lora_build(&candidate, &f->mc, &f->lora, g.err, sizeof g.err) != 0) goto done;
  memcpy(candidate.params, f->global.params, f->global.num_params * sizeof(float));
  payload_unpack(&f->layout, &candidate, next);

  json_t *metrics = json_object();
  json_object_set_new(metrics, "round", json_integer(f->rm.round));
  json_object_set_new(metrics, "attempt", json_integer(f->rm.attempt));
  json_object_set_new(metrics, "selected", names_where(&f->rm, 1, -1));
  json_object_set_new(metrics, "submitted", names_where(&f->rm, 1, 1));
  json_object_set_new(metrics, "missing", names_where(&f->rm, 1, 0));
  json_object_set_new(metrics, "sites", g.sites);
  g.sites = NULL;
  json_object_set_new(metrics, "val_loss", g.val_weight > 0 ? json_real(g.weighted_val / g.val_weight) : json_null());
  json_object_set_new(metrics, "train_loss",
                      g.train_weight > 0 ? json_real(g.weighted_train / g.train_weight) : json_null());
  json_object_set_new(metrics, "delta_norm", json_real(payload_norm(delta, n)));
  json_object_set_new(metrics, "bytes_in", json_integer((json_int_t)f->bytes_in));
  json_object_set_new(metrics, "bytes_out", json_integer((json_int_t)f->bytes_out));
  json_object_set_new(metrics, "round_seconds", json_real(t0 - f->rm.opened_at));
  json_object_set_new(metrics, "aggregate_seconds", json_real(clock_seconds() - t0));
  json_object_set_new(metrics, "committed_unix", json_integer((json_int_t)time(NULL)));
  json_object_update(metrics, g.extra);
  agg_privacy_metrics(f->cfg, f->rm.round, metrics);
  rc = store_round_commit(&f->st, f->rm.round, &candidate, &f->mc, f->cfg->model.base, state, f->n_state, metrics,
                          g.err, sizeof g.err);
  if (rc == 0) {
    lora_free(&f->global);
    f->global = candidate;
    memcpy(f->global_payload, next, n * sizeof(float));
    memcpy(f->sopt_state, state, f->n_state * sizeof(float));
    sha256_bytes(f->global_payload, payload_bytes(&f->layout), f->global_sha);
    agg_ops_round_committed(f->ops, f->rm.round, f->global_sha, metrics);
    json_t *vl = json_object_get(metrics, "val_loss");
    log_info("round %u committed: %d updates, validation loss of the previous global adapter %s%.4f", f->rm.round,
             g.acc.count, json_is_number(vl) ? "" : "n/a ", json_is_number(vl) ? json_number_value(vl) : 0.0);
  } else {
    lora_free(&candidate);
  }
  json_decref(metrics);
done:
  if (rc != 0) log_error("round %u cannot be committed yet: %s (will retry)", f->rm.round, g.err);
  json_decref(g.sites);
  json_decref(g.extra);
  agg_accum_free(&g.acc);
  free(delta);
  free(next);
  free(state);
  return rc;
}

