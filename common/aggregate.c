/* Streaming weighted mean of deltas; see aggregate.h. */
#include "aggregate.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_dispatch.h"

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

/* Whether x (n) is all finite: no exponent of all ones. Without a branch per value, so it vectorises
 * (an early-exit isfinite loop costs more than the sum itself). */
static int block_finite(const float *x, size_t n) {
  uint32_t all_ones = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t bits;
    memcpy(&bits, x + i, sizeof bits);
    all_ones |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
  }
  return !all_ones;
}

int agg_update_check(const float *update, size_t n, double weight, char *err, size_t err_size) {
  if (!(weight > 0) || !isfinite(weight)) {
    snprintf(err, err_size, "weight must be finite and > 0, got %g", weight);
    return -1;
  }
  enum { CHECK_BLOCK = 4096 };
  for (size_t i0 = 0; i0 < n; i0 += CHECK_BLOCK) {
    size_t len = n - i0 < CHECK_BLOCK ? n - i0 : CHECK_BLOCK;
    if (block_finite(update + i0, len)) continue;
    for (size_t i = i0; i < i0 + len; i++)
      if (!isfinite(update[i])) {
        snprintf(err, err_size, "parameter %zu of %zu is %g", i, n, (double)update[i]);
        return -1;
      }
  }
  return 0;
}

/* Parameters per block of the sweep: long enough that each update's block is a long stream for the
 * prefetcher, short enough that the block's sum (256 KB of doubles) and the update being checked
 * and added (128 KB) stay in L2. 16384 and 65536 measured a few percent slower (agg_bench). */
enum { ACCUM_BLOCK = 32768 };

/* sum[i0, i0 + len) += Σ over accepted k of w_k (u_k − g). */
static inline __attribute__((always_inline)) int block_add_body(double *sum, const float *const *updates,
                                                                const double *weights, const int *accepted, int count,
                                                                const float *g, size_t i0, size_t len) {
  for (int k = 0; k < count; k++) {
    if (!accepted[k]) continue;
    const float *u = updates[k] + i0;
    double w = weights[k];
    for (size_t i = 0; i < len; i++) sum[i] += w * ((double)u[i] - (double)g[i]);
  }
  return 0;
}
CPU_DISPATCH(static, int, block_add,
             (double *sum, const float *const *updates, const double *weights, const int *accepted, int count,
              const float *g, size_t i0, size_t len),
             (sum, updates, weights, accepted, count, g, i0, len))

int agg_accum_add_all(agg_accum *acc, const float *const *updates, const double *weights, int count,
                      const float *global, int *accepted) {
  if (acc->count != 0) return -1;
  for (int k = 0; k < count; k++) accepted[k] = weights[k] > 0 && isfinite(weights[k]);
restart:
  for (size_t i0 = 0; i0 < acc->n; i0 += ACCUM_BLOCK) {
    size_t len = acc->n - i0 < ACCUM_BLOCK ? acc->n - i0 : ACCUM_BLOCK;
    for (int k = 0; k < count; k++) {
      if (!accepted[k] || block_finite(updates[k] + i0, len)) continue;
      /* Update k was added to the blocks before this one: start again without it (the sum was
       * empty, so this is exact; a bad update reaching this point is rare, since the aggregator
       * already refuses non-finite values when they arrive). */
      accepted[k] = 0;
      memset(acc->sum, 0, acc->n * sizeof *acc->sum);
      goto restart;
    }
    block_add(acc->sum + i0, updates, weights, accepted, count, global + i0, i0, len);
  }
  for (int k = 0; k < count; k++)
    if (accepted[k]) acc->total_weight += weights[k], acc->count++;
  return acc->count;
}

int agg_accum_add(agg_accum *acc, const float *update, const float *global, double weight, char *err,
                  size_t err_size) {
  if (agg_update_check(update, acc->n, weight, err, err_size) != 0) return -1;
  int one = 1;
  for (size_t i0 = 0; i0 < acc->n; i0 += ACCUM_BLOCK)
    block_add(acc->sum + i0, &update, &weight, &one, 1, global + i0, i0,
              acc->n - i0 < ACCUM_BLOCK ? acc->n - i0 : ACCUM_BLOCK);
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
  int *accepted = malloc(sizeof(int) * (size_t)(count + 1));
  if (!accepted || agg_accum_build(&acc, n, err, err_size) != 0) {
    if (!accepted) snprintf(err, err_size, "aggregate: out of memory");
    free(accepted);
    return -1;
  }
  int rc = agg_accum_add_all(&acc, updates, weights, count, global, accepted) == count ? 0 : -1;
  for (int k = 0; k < count && rc != 0; k++) {
    char why[160];
    if (accepted[k] || agg_update_check(updates[k], n, weights[k], why, sizeof why) == 0) continue;
    snprintf(err, err_size, "update %d of %d: %s", k, count, why);
    break;
  }
  if (rc == 0) rc = agg_accum_mean(&acc, delta, err, err_size);
  agg_accum_free(&acc);
  free(accepted);
  return rc;
}
