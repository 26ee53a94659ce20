/* The arithmetic of secure aggregation: float updates become fixed-point integers in Z_2^32,
 * are hidden by pairwise masks that cancel in the sum, and the sum is decoded back to floats.
 *
 * Encoding: x is clipped to [−range, range], multiplied by scale and rounded stochastically
 * (up with probability equal to the fractional part, so the rounding is unbiased), then stored
 * as the two's complement uint32. Sums wrap mod 2^32; as long as the true integer sum stays in
 * [−2^31, 2^31), reading it back as int32 is exact. secagg_fixed_check enforces that bound. */
#ifndef FEDLORA_SECAGG_MATH_H
#define FEDLORA_SECAGG_MATH_H

#include <stddef.h>
#include <stdint.h>

#define SECAGG_SEED_BYTES 32

/* 0 if n_clients vectors clipped to ±range and scaled by scale cannot overflow the int32 sum:
 * n_clients × ceil(range × scale) ≤ 2^31 − 1. Otherwise -1, logged with the largest scale that
 * would fit. */
int secagg_fixed_check(double range, double scale, int n_clients);

/* out[i] = encoding of x[i] (see above). The rounding draws are a pure function of
 * (seed, i), so a client can reproduce its encoding. Returns -1 (logged with the index) if an
 * x[i] is NaN or infinite: an update that has diverged must not be silently clipped. */
int secagg_quantize(const float *x, size_t d, double range, double scale, uint64_t seed, uint32_t *out);

/* out[i] = int32(sum[i]) / (scale × divisor): divisor 1 gives the sum, the number of clients
 * gives the mean. */
void secagg_decode(const uint32_t *sum, size_t d, double scale, double divisor, float *out);

/* acc[i] += x[i] and acc[i] −= x[i], mod 2^32. */
void secagg_add(uint32_t *acc, const uint32_t *x, size_t d);
void secagg_sub(uint32_t *acc, const uint32_t *x, size_t d);

/* The mask of a seed: the ChaCha20 keystream (key = seed, nonce 0, from block 0) read as
 * little-endian uint32 words. A seed must mask only one vector: derive a fresh one per round
 * and per pair (e.g. HKDF of the X25519 secret with the round in `info`). */
int secagg_mask_expand(const uint8_t seed[SECAGG_SEED_BYTES], uint32_t *mask, size_t d);
/* y += mask (sign > 0) or y −= mask (sign < 0), without materialising the mask. */
int secagg_mask_apply(uint32_t *y, size_t d, const uint8_t seed[SECAGG_SEED_BYTES], int sign);

#endif
