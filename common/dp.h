/* Site-level differential privacy for federated rounds (DP-FedAvg, McMahan et al. 2018).
 *
 * A site's contribution is its delta u − g (its trained adapter minus the round's global one),
 * clipped to L2 norm C = dp_clip. The sum over the round's sites then has sensitivity C to adding or
 * removing one site, and Gaussian noise of std z·C (z = dp_noise_multiplier) on that sum makes the
 * round the sampled Gaussian mechanism the RDP accountant (rdp.h) bounds. Weights would scale a
 * site's sensitivity, so under DP every site weighs 1 and the noisy sum is divided by the number of
 * updates (agg_config refuses any other weighting).
 *
 *   central      the aggregator adds N(0, (z·C)²) to each coordinate of the sum.
 *   distributed  each site adds N(0, (z·C)²/m) to its clipped delta before masking, m =
 *                rounds.min_clients: a committed sum holds k ≥ m shares, so its noise variance is
 *                k/m·(z·C)² ≥ (z·C)². The aggregator, seeing only the masked sum, never holds an
 *                un-noised one. (Dropped sites remove their share; the quorum keeps the bound.)
 *
 * The accountant treats a round as one step with sampling rate q = sites per round / sites
 * (Poisson sampling is its model; the aggregator's fixed-size draw is the usual approximation).
 * Noise comes from a ChaCha20 keystream under a 32-byte key (crypto.h), turned into normals by
 * Box–Muller on 53-bit uniforms. */
#ifndef FEDLORA_DP_H
#define FEDLORA_DP_H

#include <stddef.h>
#include <stdint.h>

#define DP_KEY_BYTES 32

/* ‖update − global‖₂, summed in double in index order (sites and aggregator compute it the same
 * way, so a bound the site enforced is seen exactly by the aggregator). */
double dp_delta_norm(const float *update, const float *global, size_t n);

/* Clips update (n) so that dp_delta_norm(update, global) ≤ clip (> 0), moving it toward global
 * along the delta; unchanged when already within. Returns the norm it had. */
double dp_clip_update(float *update, const float *global, size_t n, double clip);

/* out[i] += N(0, std²) for i < n, from the keystream of key (a pure function of key: the same key
 * gives the same noise). Returns 0, or -1 (logged) if the cipher fails. */
int dp_noise_add(double *out, size_t n, double std, const uint8_t key[DP_KEY_BYTES]);

/* The std each site adds under distributed DP: z·C/√m. */
double dp_site_noise_std(double noise_multiplier, double clip, int min_clients);

/* ε after `rounds` rounds (improved conversion, the accountant's default orders); +inf if unbounded. */
double dp_epsilon(double q, double noise_multiplier, long rounds, double delta);

/* The most rounds r ≤ max_rounds with dp_epsilon(r) ≤ budget (0 if even one round exceeds it). */
int dp_rounds_within(double q, double noise_multiplier, double delta, double budget, int max_rounds);

/* A site's DP step for one round: clip its update, then (distributed) add its noise share from a
 * fresh random key. noise_std 0 means central (the aggregator adds the noise). Returns the delta's
 * norm before clipping, or -1 (logged) on failure. */
double dp_site_apply(float *update, const float *global, size_t n, double clip, double noise_std);

#endif
