/* The weighted mean of the sites' deltas, with memory bounded by one double per parameter.
 *
 * Site k sends its locally trained adapter u_k (n floats, the flat LoRA layout) that started from
 * the global adapter g of the round, with weight w_k > 0 (examples, tokens or 1, see
 * agg_weighting). The mean delta is
 *     Δ = Σ_k w_k (u_k − g) / Σ_k w_k
 * which a server optimiser (server_opt.h) then applies to g.
 *
 * Order and determinism: the running sum is kept in double, so the result depends on the order of
 * the additions only through double rounding (a few units of 2^-53 relative), which is almost
 * always invisible after the final rounding to float — but "almost" is not enough to make a
 * resumed round bit-identical to the original. Rather than pay for exact (order-free) arithmetic,
 * the order is part of the definition: the caller adds the updates in ascending site-name order
 * (reading them back from the round's store one at a time keeps memory bounded).
 * agg_mean_delta does exactly that over arrays already in that order. */
#ifndef FEDLORA_AGGREGATE_H
#define FEDLORA_AGGREGATE_H

#include <stddef.h>

/* What a site's weight counts. Values index agg_weighting_names. */
typedef enum { AGG_WEIGHT_EXAMPLES, AGG_WEIGHT_TOKENS, AGG_WEIGHT_UNIFORM } agg_weighting;
/* "examples", "tokens", "uniform", NULL. */
extern const char *const agg_weighting_names[];

typedef struct {
  double *sum;          /* (n) Σ w_k (u_k − g) */
  size_t n;
  double total_weight;  /* Σ w_k */
  int count;            /* updates added */
} agg_accum;

/* Returns 0, or -1 with the reason in err if the n doubles cannot be allocated. */
int agg_accum_build(agg_accum *acc, size_t n, char *err, size_t err_size);
void agg_accum_free(agg_accum *acc);
/* Forget every update added (for a round that is reopened). */
void agg_accum_reset(agg_accum *acc);

/* Whether an update may be added: weight finite and > 0, every one of its n values finite. 0, or -1
 * with the reason (the first bad coordinate) in err. */
int agg_update_check(const float *update, size_t n, double weight, char *err, size_t err_size);

/* sum += weight · (update − global), after agg_update_check. On refusal returns -1 with the reason
 * and leaves the accumulator unchanged, so one diverged site does not spoil the round. */
int agg_accum_add(agg_accum *acc, const float *update, const float *global, double weight, char *err,
                  size_t err_size);

/* One sweep for a whole round into an empty accumulator: sum = Σ_k weights[k] · (updates[k] − global)
 * over the updates that agg_update_check would accept, k in array order. The same additions in the
 * same order as agg_accum_add one update at a time, so the same bits; but the sum is swept once in
 * blocks that stay in cache while every update is checked and added into them, so each update is
 * read from memory once and the sum and global once for all. accepted (count) gets 1 or 0 per
 * update (agg_update_check tells why one was refused). Returns how many were added, or -1 if the
 * accumulator was not empty. */
int agg_accum_add_all(agg_accum *acc, const float *const *updates, const double *weights, int count,
                      const float *global, int *accepted);

/* delta (n) = sum / total_weight, rounded to float. -1 with the reason in err if nothing was added. */
int agg_accum_mean(const agg_accum *acc, float *delta, char *err, size_t err_size);

/* One-shot form: updates[k] (n each) with weights[k], k = 0..count-1, added in array order
 * (callers pass them sorted by site name, see above). Same refusals as agg_accum_add, with the
 * index of the offending update in err. */
int agg_mean_delta(const float *const *updates, const double *weights, int count, const float *global, size_t n,
                   float *delta, char *err, size_t err_size);

#endif
