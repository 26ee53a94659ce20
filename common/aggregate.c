/* Streaming weighted mean of deltas; see aggregate.h. */
#include "aggregate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const agg_weighting_names[] = {"examples", "tokens", "uniform", NULL};

int agg_accum_build(agg_accum *acc, size_t n, char *err, size_t err_size) {
  memset(acc, 0, sizeof *acc);
  acc->sum = calloc(n ? n : 1, sizeof *acc->sum);
  if (!acc->sum) {
    snprintf(err, err_size, "aggregate: cannot allocate the running sum of %zu parameters (%zu MiB)", n,
             n * sizeof(double) >> 20);
    return -1;
  }
  acc->n = n;
  return 0;
}

void agg_accum_free(agg_accum *acc) {
  free(acc->sum);
  memset(acc, 0, sizeof *acc);
}

void agg_accum_reset(agg_accum *acc) {
  memset(acc->sum, 0, acc->n * sizeof *acc->sum);
  acc->total_weight = 0;
  acc->count = 0;
}

int agg_accum_add(agg_accum *acc, const float *update, const float *global, double weight, char *err,
                  size_t err_size) {
  if (!(weight > 0) || !isfinite(weight)) {
    snprintf(err, err_size, "weight must be finite and > 0, got %g", weight);
    return -1;
  }
  /* Checked before touching the sum, so a refused update leaves no trace. */
  for (size_t i = 0; i < acc->n; i++) {
    if (!isfinite(update[i])) {
      snprintf(err, err_size, "parameter %zu of %zu is %g", i, acc->n, (double)update[i]);
      return -1;
    }
  }
  for (size_t i = 0; i < acc->n; i++) acc->sum[i] += weight * ((double)update[i] - (double)global[i]);
  acc->total_weight += weight;
  acc->count++;
  return 0;
}

int agg_accum_mean(const agg_accum *acc, float *delta, char *err, size_t err_size) {
  if (acc->count == 0) {
    snprintf(err, err_size, "no update to average");
    return -1;
  }
  for (size_t i = 0; i < acc->n; i++) delta[i] = (float)(acc->sum[i] / acc->total_weight);
  return 0;
}

int agg_mean_delta(const float *const *updates, const double *weights, int count, const float *global, size_t n,
                   float *delta, char *err, size_t err_size) {
  agg_accum acc;
  if (agg_accum_build(&acc, n, err, err_size) != 0) return -1;
  int rc = 0;
  char why[160];
  for (int k = 0; k < count && rc == 0; k++) {
    rc = agg_accum_add(&acc, updates[k], global, weights[k], why, sizeof why);
    if (rc != 0) snprintf(err, err_size, "update %d of %d: %s", k, count, why);
  }
  if (rc == 0) rc = agg_accum_mean(&acc, delta, err, err_size);
  agg_accum_free(&acc);
  return rc;
}
