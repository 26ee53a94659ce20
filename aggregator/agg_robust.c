#include "agg_robust.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robust.h"

static const char *const rule_names[] = {"none", "median", "trimmed_mean", "krum", "multi_krum"};

int agg_robust_active(const agg_config *cfg) {
  return cfg->aggregation.robust != AGG_ROBUST_NONE || cfg->aggregation.norm_bound > 0;
}

typedef struct {
  const json_t *sites;
  const float *global;
  size_t n;
  int count, cap;
  float *deltas;        /* (cap, n) one site per row, in site-name order */
  float *weights;       /* (cap) */
  const char **names;   /* (cap) borrowed from `sites` */
} collected;

static int collect_one(const char *site, const uint8_t *payload, size_t len, const json_t *meta, void *user) {
  collected *c = user;
  const char *key;
  json_t *s;
  (void)len;
  (void)meta;
  json_object_foreach((json_t *)c->sites, key, s) {
    if (strcmp(key, site) != 0) continue;
    if (c->count == c->cap) return 1;
    const float *u = (const float *)payload;
    float *row = c->deltas + (size_t)c->count * c->n;
    for (size_t i = 0; i < c->n; i++) row[i] = u[i] - c->global[i];
    c->weights[c->count] = (float)json_number_value(json_object_get(s, "weight"));
    c->names[c->count++] = key;
    return 0;
  }
  return 0; /* left out of the mean too (not finite) */
}

int agg_robust_delta(const agg_config *cfg, const store *st, uint32_t round, const float *global, size_t n,
                     const json_t *sites, float *delta, json_t *metrics, char *err, size_t errlen) {
  collected c = {.sites = sites, .global = global, .n = n, .cap = (int)json_object_size(sites)};
  c.deltas = malloc((size_t)c.cap * n * sizeof(float) + 1);
  c.weights = malloc((size_t)c.cap * sizeof(float) + 1);
  c.names = malloc((size_t)c.cap * sizeof *c.names + 1);
  int *selected = malloc((size_t)c.cap * sizeof(int) + 1);
  int rc = -1;
  if (!c.deltas || !c.weights || !c.names || !selected) {
    snprintf(err, errlen, "robust aggregation: cannot hold %d updates of %zu floats in memory", c.cap, n);
    goto done;
  }
  if (store_pending_each(st, round, n * sizeof(float), collect_one, &c, err, errlen) != 0) goto done;
  if (c.count == 0) {
    snprintf(err, errlen, "robust aggregation: no update to aggregate");
    goto done;
  }
  json_t *report = json_pack("{s:s}", "rule", rule_names[cfg->aggregation.robust]);
  if (cfg->aggregation.norm_bound > 0) {
    json_t *scaled = json_array();
    for (int k = 0; k < c.count; k++)
      if (robust_norm_bound(c.deltas + (size_t)k * n, n, cfg->aggregation.norm_bound) > cfg->aggregation.norm_bound)
        json_array_append_new(scaled, json_string(c.names[k]));
    json_object_set_new(report, "norm_bound", json_real(cfg->aggregation.norm_bound));
    json_object_set_new(report, "norm_bounded", scaled);
  }
  int m = cfg->aggregation.krum_m > 0 ? cfg->aggregation.krum_m : c.count - cfg->aggregation.krum_f;
  switch (cfg->aggregation.robust) {
    case AGG_ROBUST_MEDIAN:
      rc = robust_median(c.deltas, c.weights, c.count, n, delta);
      break;
    case AGG_ROBUST_TRIMMED_MEAN:
      rc = robust_trimmed_mean(c.deltas, c.weights, c.count, n, cfg->aggregation.trim_beta, delta);
      json_object_set_new(report, "trim_beta", json_real(cfg->aggregation.trim_beta));
      break;
    case AGG_ROBUST_KRUM:
    case AGG_ROBUST_MULTI_KRUM:
      if (cfg->aggregation.robust == AGG_ROBUST_KRUM) m = 1;
      if (c.count <= 2 * cfg->aggregation.krum_f + 2 || m < 1 || m > c.count) {
        snprintf(err, errlen, "%s with f = %d, m = %d cannot rank %d updates (needs more than 2f + 2 and m in [1, n])",
                 rule_names[cfg->aggregation.robust], cfg->aggregation.krum_f, m, c.count);
        json_decref(report);
        goto done;
      }
      rc = robust_multi_krum(c.deltas, c.weights, c.count, n, cfg->aggregation.krum_f, m, delta, selected);
      if (rc == 0) {
        json_t *chosen = json_array();
        for (int k = 0; k < m; k++) json_array_append_new(chosen, json_string(c.names[selected[k]]));
        json_object_set_new(report, "selected", chosen);
      }
      break;
    default: /* norm bounding alone: the weighted mean of the bounded deltas */
      rc = robust_trimmed_mean(c.deltas, c.weights, c.count, n, 0.0, delta);
      break;
  }
  if (rc != 0) {
    snprintf(err, errlen, "%s failed over %d updates (see the log)", rule_names[cfg->aggregation.robust], c.count);
    json_decref(report);
    goto done;
  }
  json_object_set_new(metrics, "robust", report);
done:
  free(c.deltas);
  free(c.weights);
  free(c.names);
  free(selected);
  return rc;
}
