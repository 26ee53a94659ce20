/* Shamir secret sharing of 32-byte secrets (seeds and keys for secure aggregation).
 *
 * Field: GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1, one polynomial per byte of
 * the secret, shares evaluated at x = 1..n. Chosen over limbs in GF(2^31 − 1) because every
 * byte string is a field element as is: no encoding of a 256-bit secret into limbs, no values
 * that must be rejected or reduced, and each byte is perfectly hidden by any t − 1 shares.
 * The price is n ≤ 255 shares, far above the number of sites in a federation. */
#ifndef FEDLORA_SHAMIR_H
#define FEDLORA_SHAMIR_H

#include <stdint.h>

#define SHAMIR_SECRET_BYTES 32
#define SHAMIR_MAX_SHARES 255

typedef struct {
  uint8_t x;                         /* evaluation point, 1..255; never 0 (that is the secret) */
  uint8_t y[SHAMIR_SECRET_BYTES];    /* the byte polynomials evaluated at x */
} shamir_share;

/* n shares (x = 1..n) of which any t recover the secret and any t − 1 reveal nothing.
 * 1 ≤ t ≤ n ≤ 255. Returns 0, or -1 (logged) for bad n/t or a failing random source. */
int shamir_split(const uint8_t secret[SHAMIR_SECRET_BYTES], int n, int t, shamir_share *shares);

/* Interpolates the k shares given at x = 0. With at least t genuine shares this is the secret;
 * with fewer it is a uniformly random value (nothing here can tell the two apart). Returns -1
 * (logged) if k < 1 or an x is 0 or repeated. */
int shamir_recover(const shamir_share *shares, int k, uint8_t secret[SHAMIR_SECRET_BYTES]);

#endif
