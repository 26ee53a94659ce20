/* Fixed-point encoding, modular sums and ChaCha20 masks for secure aggregation. */
#include "secagg_math.h"

#include <math.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "log.h"

int secagg_fixed_check(double range, double scale, int n_clients) {
  if (!(range > 0.0) || !(scale > 0.0) || !isfinite(range * scale) || n_clients < 1) {
    log_error("secagg: need range > 0, scale > 0 and at least one client, got range=%g scale=%g clients=%d", range,
              scale, n_clients);
    return -1;
  }
  /* Stochastic rounding can round |x|·scale up to its ceiling, never further. */
  double per_client = ceil(range * scale);
  if ((double)n_clients * per_client > (double)INT32_MAX) {
    log_error("secagg: %d clients x ceil(range %g x scale %g) = %.0f overflows the int32 sum (max %d); use scale "
              "<= %g",
              n_clients, range, scale, (double)n_clients * per_client, INT32_MAX,
              floor((double)INT32_MAX / n_clients) / range);
    return -1;
  }
  return 0;
}

/* SplitMix64 at position i of the stream `seed`: a counter-based generator, so the draw for a
 * coordinate does not depend on how the vector is traversed. */
static double uniform_at(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53;  /* [0, 1) */
}

int secagg_quantize(const float *x, size_t d, double range, double scale, uint64_t seed, uint32_t *out) {
  for (size_t i = 0; i < d; i++) {
    if (!isfinite(x[i])) {
      log_error("secagg: coordinate %zu of the update is %f; refusing to encode it", i, (double)x[i]);
      return -1;
    }
    double v = fmin(fmax((double)x[i], -range), range) * scale;
    double low = floor(v);
    int64_t q = (int64_t)low + (uniform_at(seed, i) < v - low);
    out[i] = (uint32_t)q;  /* reduction mod 2^32: the two's complement bit pattern of q */
  }
  return 0;
}

void secagg_decode(const uint32_t *sum, size_t d, double scale, double divisor, float *out) {
  double unit = 1.0 / (scale * divisor);
  for (size_t i = 0; i < d; i++) {
    int64_t s = sum[i] <= INT32_MAX ? (int64_t)sum[i] : (int64_t)sum[i] - 4294967296ll;
    out[i] = (float)((double)s * unit);
  }
}

void secagg_add(uint32_t *acc, const uint32_t *x, size_t d) {
  for (size_t i = 0; i < d; i++) acc[i] += x[i];
}

void secagg_sub(uint32_t *acc, const uint32_t *x, size_t d) {
  for (size_t i = 0; i < d; i++) acc[i] -= x[i];
}

static const uint8_t mask_nonce[CRYPTO_NONCE_BYTES];  /* all zero: each seed masks one vector */

/* Little-endian words from keystream bytes, independent of the host's byte order. */
static uint32_t word_le(const uint8_t *b) {
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

int secagg_mask_expand(const uint8_t seed[SECAGG_SEED_BYTES], uint32_t *mask, size_t d) {
  for (size_t i = 0; i < d; i++) mask[i] = 0;
  return secagg_mask_apply(mask, d, seed, 1);
}

/* The mask is generated in chunks of whole ChaCha20 blocks; chunk c starts at block
 * c × MASK_CHUNK_BLOCKS, so the words are the same as one long keystream. */
#define MASK_CHUNK_BLOCKS 256
#define MASK_CHUNK_WORDS (MASK_CHUNK_BLOCKS * 16)

int secagg_mask_apply(uint32_t *y, size_t d, const uint8_t seed[SECAGG_SEED_BYTES], int sign) {
  uint8_t stream[MASK_CHUNK_WORDS * 4];
  int rc = 0;
  for (size_t start = 0, block = 0; start < d && rc == 0; start += MASK_CHUNK_WORDS, block += MASK_CHUNK_BLOCKS) {
    size_t n = d - start < MASK_CHUNK_WORDS ? d - start : MASK_CHUNK_WORDS;
    if (block > UINT32_MAX || crypto_chacha20(seed, mask_nonce, (uint32_t)block, NULL, stream, n * 4) != 0) {
      log_error("secagg: cannot expand a mask of %zu words", d);
      rc = -1;
      break;
    }
    if (sign > 0)
      for (size_t i = 0; i < n; i++) y[start + i] += word_le(stream + 4 * i);
    else
      for (size_t i = 0; i < n; i++) y[start + i] -= word_le(stream + 4 * i);
  }
  OPENSSL_cleanse(stream, sizeof stream);  /* the keystream reveals the mask, hence the update */
  return rc;
}
