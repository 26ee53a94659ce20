/* Shamir sharing: every t-subset recovers, t − 1 shares do not, and shares are checked with a
 * separate GF(2^8) implementation (log/exp tables over the generator 3) written here. */
#include <openssl/rand.h>

#include "harness.h"
#include "shamir.h"

static uint8_t gf_exp[512], gf_log[256];

static void tables_build(void) {
  uint8_t v = 1;
  for (int i = 0; i < 255; i++) {
    gf_exp[i] = gf_exp[i + 255] = v;
    gf_log[v] = (uint8_t)i;
    /* v·3 = v·2 ⊕ v, with the AES reduction */
    uint8_t doubled = (uint8_t)((v << 1) ^ ((v & 0x80) ? 0x1b : 0));
    v = doubled ^ v;
  }
}

static uint8_t mul(uint8_t a, uint8_t b) { return a && b ? gf_exp[gf_log[a] + gf_log[b]] : 0; }
static uint8_t divide(uint8_t a, uint8_t b) { return a ? gf_exp[gf_log[a] + 255 - gf_log[b]] : 0; }

/* The polynomial through `k` shares, evaluated at x, byte b. */
static uint8_t interpolate(const shamir_share *s, int k, uint8_t x, int b) {
  uint8_t sum = 0;
  for (int i = 0; i < k; i++) {
    uint8_t basis = 1;
    for (int j = 0; j < k; j++)
      if (j != i) basis = mul(basis, divide(x ^ s[j].x, s[i].x ^ s[j].x));
    sum ^= mul(basis, s[i].y[b]);
  }
  return sum;
}

/* Recovers from the subset of `all` selected by the bits of `mask`. */
static int recover_subset(const shamir_share *all, int n, unsigned mask, uint8_t *out) {
  shamir_share pick[SHAMIR_MAX_SHARES];
  int k = 0;
  for (int i = n - 1; i >= 0; i--)  /* reversed order: recovery must not depend on it */
    if (mask & (1u << i)) pick[k++] = all[i];
  return shamir_recover(pick, k, out);
}

int main(void) {
  tables_build();
  CHECK_EQ_INT(mul(0x57, 0x83), 0xc1);  /* FIPS-197 §4.2 */
  CHECK_EQ_INT(mul(0x57, 0x13), 0xfe);

  /* Shares built here from a known polynomial recover to its constant term. */
  uint8_t secret[SHAMIR_SECRET_BYTES], got[SHAMIR_SECRET_BYTES];
  for (int b = 0; b < SHAMIR_SECRET_BYTES; b++) secret[b] = (uint8_t)(b * 37 + 11);
  shamir_share made[4];
  for (int i = 0; i < 4; i++) {
    uint8_t x = (uint8_t)(3 * i + 2);
    made[i].x = x;
    for (int b = 0; b < SHAMIR_SECRET_BYTES; b++)  /* secret + (b+1)·x + 0xa5·x² + 7·x³ */
      made[i].y[b] = secret[b] ^ mul((uint8_t)(b + 1), x) ^ mul(0xa5, mul(x, x)) ^ mul(7, mul(x, mul(x, x)));
  }
  CHECK_EQ_INT(shamir_recover(made, 4, got), 0);
  CHECK(memcmp(got, secret, sizeof secret) == 0);

  /* n = 5, t = 3 over random secrets: all 26 subsets of 3+ shares recover, all 15 of 1-2 do not,
   * and split's shares lie on one polynomial of degree t − 1 with the secret at 0. */
  const int n = 5, t = 3;
  for (int trial = 0; trial < 20; trial++) {
    shamir_share shares[5];
    CHECK(RAND_bytes(secret, sizeof secret) == 1);
    CHECK_EQ_INT(shamir_split(secret, n, t, shares), 0);
    for (int i = 0; i < n; i++) CHECK_EQ_INT(shares[i].x, i + 1);
    for (unsigned mask = 1; mask < (1u << n); mask++) {
      int k = __builtin_popcount(mask);
      CHECK_EQ_INT(recover_subset(shares, n, mask, got), 0);
      if (k >= t) CHECK_MSG(memcmp(got, secret, sizeof secret) == 0, "trial %d: subset %#x did not recover", trial, mask);
      else CHECK_MSG(memcmp(got, secret, sizeof secret) != 0, "trial %d: %d shares (%#x) revealed the secret", trial, k, mask);
    }
    for (int b = 0; b < SHAMIR_SECRET_BYTES; b++) {
      CHECK(interpolate(shares, t, 0, b) == secret[b]);
      for (int m = t; m < n; m++) CHECK(interpolate(shares, t, shares[m].x, b) == shares[m].y[b]);
    }
  }

  /* t − 1 shares carry no information: over many splits of ONE secret, the first share's byte
   * (t = 2) is spread evenly over all 256 values. 25600 samples, 100 expected per value. */
  int counts[256] = {0};
  memset(secret, 0x42, sizeof secret);
  for (int trial = 0; trial < 800; trial++) {
    shamir_share shares[2];
    shamir_split(secret, 2, 2, shares);
    for (int b = 0; b < SHAMIR_SECRET_BYTES; b++) counts[shares[0].y[b]]++;
  }
  double chi2 = 0;
  for (int v = 0; v < 256; v++) chi2 += (counts[v] - 100.0) * (counts[v] - 100.0) / 100.0;
  CHECK_MSG(chi2 < 360, "single shares look biased: chi2 = %.1f over 255 dof", chi2);  /* p ≈ 1e-5 */

  /* Edge cases: t = 1 shares are the secret; t = n = 255; bad arguments. */
  shamir_share big[SHAMIR_MAX_SHARES];
  CHECK_EQ_INT(shamir_split(secret, 3, 1, big), 0);
  CHECK(memcmp(big[2].y, secret, sizeof secret) == 0);
  CHECK_EQ_INT(shamir_split(secret, 255, 255, big), 0);
  CHECK_EQ_INT(shamir_recover(big, 255, got), 0);
  CHECK(memcmp(got, secret, sizeof secret) == 0);
  CHECK_EQ_INT(shamir_recover(big + 1, 254, got), 0);
  CHECK(memcmp(got, secret, sizeof secret) != 0);
  CHECK_EQ_INT(shamir_split(secret, 256, 2, big), -1);
  CHECK_EQ_INT(shamir_split(secret, 3, 4, big), -1);
  CHECK_EQ_INT(shamir_split(secret, 3, 0, big), -1);
  big[1].x = big[0].x;
  CHECK_EQ_INT(shamir_recover(big, 3, got), -1);
  big[1].x = 0;
  CHECK_EQ_INT(shamir_recover(big, 3, got), -1);
  CHECK_EQ_INT(shamir_recover(big, 0, got), -1);
  return harness_finish();
}
