/* Fixed-point encoding and masking: sums decode within the rounding bound, stochastic rounding
 * is unbiased, masks are the RFC 8439 keystream and pairwise masks cancel exactly. */
#include <stdlib.h>

#include "crypto.h"
#include "harness.h"
#include "secagg_math.h"

#define D 1000
#define CLIENTS 7

static float uniform(unsigned *state, float lo, float hi) {
  *state = *state * 1664525u + 1013904223u;
  return lo + (hi - lo) * (float)(*state >> 8) / 16777216.0f;
}

static void test_bound_check(void) {
  CHECK_EQ_INT(secagg_fixed_check(1.0, 1 << 20, 2047), 0);   /* 2047·2^20 = 2^31 − 2^20 */
  CHECK_EQ_INT(secagg_fixed_check(1.0, 1 << 20, 2048), -1);  /* 2^31: one too many */
  CHECK_EQ_INT(secagg_fixed_check(0.5, 4294967294.0, 1), 0); /* 2^31 − 1 exactly */
  CHECK_EQ_INT(secagg_fixed_check(0.5, 4294967296.0, 1), -1);
  /* A fractional range·scale can round up to its ceiling: 1.25·3 = 3.75 counts as 4. */
  CHECK_EQ_INT(secagg_fixed_check(1.25, 3.0, 536870911), 0);  /* 4·536870911 = 2^31 − 4 */
  CHECK_EQ_INT(secagg_fixed_check(1.25, 3.0, 536870912), -1);
  CHECK_EQ_INT(secagg_fixed_check(0.0, 3.0, 2), -1);
  CHECK_EQ_INT(secagg_fixed_check(1.0, 3.0, 0), -1);
}

static void test_sum_decodes(void) {
  static float x[CLIENTS][D], got[D], mean[D];
  static uint32_t q[D], sum[D];
  double range = 1.0, scale = 65536.0, true_sum[D] = {0};
  unsigned state = 12345;
  CHECK_EQ_INT(secagg_fixed_check(range, scale, CLIENTS), 0);
  for (int c = 0; c < CLIENTS; c++) {
    for (int i = 0; i < D; i++) {
      x[c][i] = uniform(&state, -1.5f, 1.5f);  /* a third of them beyond the range: clipped */
      true_sum[i] += fmin(fmax(x[c][i], -range), range);
    }
    CHECK_EQ_INT(secagg_quantize(x[c], D, range, scale, 1000 + c, q), 0);
    secagg_add(sum, q, D);
  }
  secagg_decode(sum, D, scale, 1.0, got);
  secagg_decode(sum, D, scale, CLIENTS, mean);
  /* Each client's rounding moves its value by less than one unit, 1/scale; float output adds
   * at most half an ulp of the sum (|sum| ≤ 7, ulp 2^-21). */
  double bound = CLIENTS / scale + 0x1.0p-21, worst = 0;
  for (int i = 0; i < D; i++) {
    worst = fmax(worst, fabs(got[i] - true_sum[i]));
    CHECK_MSG(fabs(got[i] - true_sum[i]) <= bound, "coordinate %d: decoded %.9g, true %.9g, bound %.3g", i, got[i],
              true_sum[i], bound);
    CHECK_NEAR(mean[i], true_sum[i] / CLIENTS, bound / CLIENTS);
  }
  printf("worst decode error %.3g (bound %.3g)\n", worst, bound);
  CHECK(worst > 0);  /* the rounding really is on a grid */
}

static void test_rounding(void) {
  /* 0.123456·100 = 12.3456: every code is 12 or 13, 13 with probability 0.3456. */
  enum { N = 100000 };
  static float x[N];
  static uint32_t q[N], again[N];
  for (int i = 0; i < N; i++) x[i] = 0.123456f;
  CHECK_EQ_INT(secagg_quantize(x, N, 1.0, 100.0, 77, q), 0);
  long total = 0, bad = 0;
  for (int i = 0; i < N; i++) {
    total += (int32_t)q[i];
    bad += q[i] != 12 && q[i] != 13;
  }
  CHECK_EQ_INT(bad, 0);
  double p = 12.3456 - 12, sigma = sqrt(p * (1 - p) / N);  /* std of the mean of the codes */
  double got = (double)total / N - 12.0;
  double want = (double)0.123456f * 100 - 12;
  CHECK_MSG(fabs(got - want) < 5 * sigma, "rounding up %.5f of the time, want %.5f (sigma %.2g)", got, want, sigma);
  /* Same seed, same codes; another seed, other codes. */
  CHECK_EQ_INT(secagg_quantize(x, N, 1.0, 100.0, 77, again), 0);
  CHECK(memcmp(q, again, sizeof q) == 0);
  CHECK_EQ_INT(secagg_quantize(x, N, 1.0, 100.0, 78, again), 0);
  CHECK(memcmp(q, again, sizeof q) != 0);

  /* Exact grid points need no rounding; negatives are two's complement; clipping. */
  float edges[6] = {-1.0f, 1.0f, -0.25f, 0.0f, 5.0f, -1e30f};
  uint32_t e[6];
  CHECK_EQ_INT(secagg_quantize(edges, 6, 1.0, 4.0, 1, e), 0);
  CHECK_EQ_INT(e[0], 0xFFFFFFFCu);
  CHECK_EQ_INT(e[1], 4);
  CHECK_EQ_INT(e[2], 0xFFFFFFFFu);
  CHECK_EQ_INT(e[3], 0);
  CHECK_EQ_INT(e[4], 4);
  CHECK_EQ_INT(e[5], 0xFFFFFFFCu);
  float bad_x[3] = {0.5f, NAN, 0.1f};
  CHECK_EQ_INT(secagg_quantize(bad_x, 3, 1.0, 4.0, 1, e), -1);
  bad_x[1] = INFINITY;
  CHECK_EQ_INT(secagg_quantize(bad_x, 3, 1.0, 4.0, 1, e), -1);

  /* A negative total wraps mod 2^32 and still decodes: 5 × (−3) = −15. */
  uint32_t acc = 0, minus3 = (uint32_t)-3;
  for (int c = 0; c < 5; c++) secagg_add(&acc, &minus3, 1);
  float out;
  secagg_decode(&acc, 1, 2.0, 1.0, &out);
  CHECK_NEAR(out, -7.5, 0);
  secagg_sub(&acc, &minus3, 1);
  secagg_decode(&acc, 1, 1.0, 1.0, &out);
  CHECK_NEAR(out, -12, 0);
  uint32_t extreme[2] = {0x7FFFFFFFu, 0x80000000u};
  float ext[2];
  secagg_decode(extreme, 2, 1.0, 1.0, ext);
  CHECK_NEAR(ext[0], (float)2147483647.0, 0);  /* the nearest float, 2^31 */
  CHECK_NEAR(ext[1], -2147483648.0, 0);
}

static void test_masks(void) {
  /* The zero seed's mask is the RFC 8439 A.1 #1 keystream, read little-endian. */
  uint8_t zero[32] = {0};
  uint32_t m[4];
  CHECK_EQ_INT(secagg_mask_expand(zero, m, 4), 0);
  CHECK_EQ_INT(m[0], 0xade0b876u);
  CHECK_EQ_INT(m[1], 0x903df1a0u);
  CHECK_EQ_INT(m[2], 0xe56a5d40u);
  CHECK_EQ_INT(m[3], 0x28bd8653u);

  /* Long masks (several internal chunks, a ragged end) equal one long keystream. */
  enum { W = 5003 };
  static uint32_t mask[W];
  static uint8_t stream[W * 4];
  uint8_t seed[32], nonce[12] = {0};
  for (int i = 0; i < 32; i++) seed[i] = (uint8_t)(0xc0 + i);
  CHECK_EQ_INT(secagg_mask_expand(seed, mask, W), 0);
  CHECK_EQ_INT(crypto_chacha20(seed, nonce, 0, NULL, stream, sizeof stream), 0);
  int same = 1;
  for (int i = 0; i < W; i++) {
    uint32_t w = (uint32_t)stream[4 * i] | (uint32_t)stream[4 * i + 1] << 8 | (uint32_t)stream[4 * i + 2] << 16 |
                 (uint32_t)stream[4 * i + 3] << 24;
    same &= mask[i] == w;
  }
  CHECK(same);

  /* Four clients mask pairwise (seed = HKDF of their X25519 secret); the lower index adds the
   * mask, the higher subtracts it. Masked vectors look nothing like the codes, yet the sum of
   * the masked vectors is exactly the sum of the codes. */
  enum { N = 4, L = 3000 };
  uint8_t priv[N][32], pub[N][32];
  static uint32_t codes[N][L], masked[N][L], plain_sum[L], masked_sum[L];
  unsigned state = 99;
  for (int u = 0; u < N; u++) {
    CHECK_EQ_INT(crypto_x25519_keygen(priv[u], pub[u]), 0);
    static float x[L];
    for (int i = 0; i < L; i++) x[i] = uniform(&state, -1, 1);
    CHECK_EQ_INT(secagg_quantize(x, L, 1.0, 1 << 20, u, codes[u]), 0);
    secagg_add(plain_sum, codes[u], L);
  }
  const uint8_t info[] = "fedlora pairwise mask, round 7";
  for (int u = 0; u < N; u++) {
    memcpy(masked[u], codes[u], sizeof codes[u]);
    for (int v = 0; v < N; v++) {
      if (v == u) continue;
      uint8_t shared[32], pair_seed[32];
      CHECK_EQ_INT(crypto_x25519_shared(priv[u], pub[v], shared), 0);
      CHECK_EQ_INT(crypto_hkdf(NULL, 0, shared, 32, info, sizeof info, pair_seed, 32), 0);
      CHECK_EQ_INT(secagg_mask_apply(masked[u], L, pair_seed, u < v ? 1 : -1), 0);
    }
    int equal = 0;
    for (int i = 0; i < L; i++) equal += masked[u][i] == codes[u][i];
    CHECK_MSG(equal < 5, "client %d: %d of %d masked words equal the codes", u, equal, L);
    secagg_add(masked_sum, masked[u], L);
  }
  CHECK(memcmp(masked_sum, plain_sum, sizeof plain_sum) == 0);
  /* Dropping one client's masked vector leaves masks in: the sum is then garbage. */
  secagg_sub(masked_sum, masked[2], L);
  secagg_sub(plain_sum, codes[2], L);
  CHECK(memcmp(masked_sum, plain_sum, sizeof plain_sum) != 0);
}

int main(void) {
  test_bound_check();
  test_sum_decodes();
  test_rounding();
  test_masks();
  return harness_finish();
}
