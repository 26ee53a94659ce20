/* Byte-wise Shamir sharing over GF(2^8). The field arithmetic runs in constant time (no
 * log/exp tables indexed by secret bytes), so share handling leaks nothing through the cache. */
#include "shamir.h"

#include <openssl/crypto.h>

#include "crypto.h"
#include "log.h"

/* Carry-less multiply reduced by x^8 + x^4 + x^3 + x + 1, branch-free. */
static uint8_t gf_mul(uint8_t a, uint8_t b) {
  uint8_t product = 0;
  for (int bit = 0; bit < 8; bit++) {
    product ^= (uint8_t)(-(b & 1) & a);
    uint8_t overflow = (uint8_t)(-(a >> 7));
    a = (uint8_t)((a << 1) ^ (overflow & 0x1b));
    b >>= 1;
  }
  return product;
}

/* a^254 = a^-1 in GF(2^8) (a^255 = 1 for a ≠ 0); 254 = 0b11111110. */
static uint8_t gf_inv(uint8_t a) {
  uint8_t result = 1, power = a;
  for (int bit = 1; bit < 8; bit++) {
    power = gf_mul(power, power);  /* a^(2^bit) */
    result = gf_mul(result, power);
  }
  return result;
}

int shamir_split(const uint8_t secret[SHAMIR_SECRET_BYTES], int n, int t, shamir_share *shares) {
  if (n < 1 || n > SHAMIR_MAX_SHARES || t < 1 || t > n) {
    log_error("shamir: need 1 <= t <= n <= %d, got n=%d t=%d", SHAMIR_MAX_SHARES, n, t);
    return -1;
  }
  /* coef[k][b]: coefficient of x^(k+1) in the polynomial for byte b; the constant term is the
   * secret byte. Uniform coefficients (a zero leading one included) are what make t − 1 shares
   * independent of the secret. */
  uint8_t coef[SHAMIR_MAX_SHARES - 1][SHAMIR_SECRET_BYTES];
  if (t > 1 && crypto_random(&coef[0][0], (size_t)(t - 1) * SHAMIR_SECRET_BYTES) != 0) return -1;
  for (int i = 0; i < n; i++) {
    uint8_t x = (uint8_t)(i + 1);
    shares[i].x = x;
    for (int b = 0; b < SHAMIR_SECRET_BYTES; b++) {
      uint8_t y = 0;  /* Horner, from the highest coefficient down */
      for (int k = t - 2; k >= 0; k--) y = gf_mul((uint8_t)(y ^ coef[k][b]), x);
      shares[i].y[b] = y ^ secret[b];
    }
  }
  OPENSSL_cleanse(coef, sizeof coef);
  return 0;
}

int shamir_recover(const shamir_share *shares, int k, uint8_t secret[SHAMIR_SECRET_BYTES]) {
  if (k < 1 || k > SHAMIR_MAX_SHARES) {
    log_error("shamir: recover needs 1..%d shares, got %d", SHAMIR_MAX_SHARES, k);
    return -1;
  }
  for (int i = 0; i < k; i++) {
    if (shares[i].x == 0) {
      log_error("shamir: share #%d has x = 0", i + 1);
      return -1;
    }
    for (int j = 0; j < i; j++)
      if (shares[j].x == shares[i].x) {
        log_error("shamir: shares #%d and #%d both have x = %d", j + 1, i + 1, shares[i].x);
        return -1;
      }
  }
  uint8_t acc[SHAMIR_SECRET_BYTES] = {0};
  for (int i = 0; i < k; i++) {
    /* Lagrange basis at 0: Π_{j≠i} x_j / (x_j − x_i), and − is ⊕ in characteristic 2. */
    uint8_t num = 1, den = 1;
    for (int j = 0; j < k; j++) {
      if (j == i) continue;
      num = gf_mul(num, shares[j].x);
      den = gf_mul(den, shares[j].x ^ shares[i].x);
    }
    uint8_t basis = gf_mul(num, gf_inv(den));
    for (int b = 0; b < SHAMIR_SECRET_BYTES; b++) acc[b] ^= gf_mul(basis, shares[i].y[b]);
  }
  for (int b = 0; b < SHAMIR_SECRET_BYTES; b++) secret[b] = acc[b];
  OPENSSL_cleanse(acc, sizeof acc);
  return 0;
}
