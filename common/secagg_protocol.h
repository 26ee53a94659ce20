/* Secure aggregation (Bonawitz et al. 2017, "Practical Secure Aggregation for Privacy-Preserving
 * Machine Learning") over the complete graph of one round's sites, as two pure state machines —
 * the site's and the aggregator's — that exchange the structs below. No I/O: the network layer
 * carries the structs, so the protocol is testable in one process.
 *
 * Sites are numbered 0..n−1 in the round's sorted-name order; site k's Shamir shares are
 * evaluated at x = k + 1. The aggregator only relays and sums.
 *
 *   stage 0 keys    each site makes two fresh X25519 pairs (c: encrypts shares, s: pairwise masks)
 *                   and signs both public keys with its mTLS key; the aggregator relays each
 *                   advert with the site's certificate PEM. Sites check the chain to the CA, the CN
 *                   against the name, then the signature: the aggregator cannot substitute keys.
 *   stage 1 shares  each site draws a self-mask seed b, Shamir-splits s_sk and b (threshold t),
 *                   and seals share j for site j with ChaCha20-Poly1305 under
 *                   HKDF(X25519(c_sk, c_pk_j), "fedlora-secagg-share" ‖ run ‖ round ‖ both names),
 *                   nonce = sender index, AAD = round ‖ sender ‖ recipient. U2 = the senders.
 *   stage 2 masked  site i sends y_i = q(v_i) + PRG(b_i) + Σ_{j∈U2, j≠i} ±PRG(s_ij) in Z_2^32,
 *                   + when i < j, −; s_ij = HKDF(X25519(s_sk_i, s_pk_j), "fedlora-secagg-mask" ‖
 *                   run ‖ round ‖ both names). v_i = [w_i·range, w_i·x_i] with x_i clipped to
 *                   [−range, range] and w_i in (0, 1], so the weight travels masked too. U3 = the
 *                   sites whose y arrived.
 *   stage 3 unmask  each survivor reveals, for every site of U2 (itself included), its share of
 *                   s_sk for a dropped one (U2 \ U3) or of b for a surviving one — never both for one site, and
 *                   only once per round. With ≥ t reveals the aggregator rebuilds the dropped
 *                   sites' pairwise masks and the survivors' self masks and removes them:
 *                   Σ_{U3} q(v) remains. Fewer than t survivors at any stage: the round aborts and
 *                   nothing is revealed.
 *
 * All int-returning functions give 0 on success and -1 with the reason in err. */
#ifndef FEDLORA_SECAGG_PROTOCOL_H
#define FEDLORA_SECAGG_PROTOCOL_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "shamir.h"

#define SECAGG_MAX_SITES 100
#define SECAGG_NAME_BYTES 128
#define SECAGG_SIG_MAX 512
/* Sealed share: its x, the s_sk share, the b share. */
#define SECAGG_SHARE_PLAIN (1 + 2 * SHAMIR_SECRET_BYTES)

typedef struct {
  char run_id[64];
  uint32_t round;
  int n;                                          /* sites in the round */
  char names[SECAGG_MAX_SITES][SECAGG_NAME_BYTES]; /* sorted */
  int t;                                          /* Shamir threshold, n/2 < t ≤ n, t ≥ 2 */
  double range, scale;                            /* fixed-point encoding (secagg_math.h) */
  size_t d;                                       /* floats to sum (an update and the loss coordinates of
                                                     secagg_metrics.h); the masked vector has d + 1 words */
} secagg_params;

/* Default threshold: the smallest t > 2n/3. */
int secagg_default_threshold(int n);
/* Checks n, t (n/2 < t ≤ n, so no aggregator can collect both secrets of one site), names sorted
 * and distinct, and the 32-bit sum bound. A site checks the aggregator's parameters with it too. */
int secagg_params_check(const secagg_params *p, char *err, size_t errlen);

typedef struct {
  int from;
  uint8_t c_pk[CRYPTO_X25519_BYTES], s_pk[CRYPTO_X25519_BYTES];
  uint8_t sig[SECAGG_SIG_MAX];
  size_t sig_len;
  const char *cert_pem;  /* borrowed: the sender's certificate as the aggregator relays it */
} secagg_advert;

typedef struct {
  int from, to;
  uint8_t ct[SECAGG_SHARE_PLAIN];
  uint8_t tag[CRYPTO_TAG_BYTES];
} secagg_sealed_share;

typedef enum { SECAGG_REVEAL_NONE, SECAGG_REVEAL_MASK_KEY, SECAGG_REVEAL_SELF_SEED } secagg_reveal_kind;

typedef struct {
  int from;
  uint8_t kind[SECAGG_MAX_SITES];                        /* secagg_reveal_kind per peer */
  uint8_t y[SECAGG_MAX_SITES][SHAMIR_SECRET_BYTES];       /* the share evaluated at from + 1 */
} secagg_reveal;

/* ------------------------------------------------------------------ the site */

typedef enum { SECAGG_SITE_NEW, SECAGG_SITE_ADVERTISED, SECAGG_SITE_SHARED, SECAGG_SITE_MASKED, SECAGG_SITE_REVEALED }
    secagg_site_stage;

typedef struct {
  secagg_params p;
  int me;
  secagg_site_stage stage;
  uint8_t c_sk[CRYPTO_X25519_BYTES], s_sk[CRYPTO_X25519_BYTES], b[SHAMIR_SECRET_BYTES];
  uint8_t peer_c_pk[SECAGG_MAX_SITES][CRYPTO_X25519_BYTES], peer_s_pk[SECAGG_MAX_SITES][CRYPTO_X25519_BYTES];
  uint8_t in_u1[SECAGG_MAX_SITES];     /* peer's advert verified */
  uint8_t in_u2[SECAGG_MAX_SITES];     /* peer's share for me arrived and opened (and me) */
  uint8_t held_s[SECAGG_MAX_SITES][SHAMIR_SECRET_BYTES], held_b[SECAGG_MAX_SITES][SHAMIR_SECRET_BYTES];
} secagg_site;

/* Stage 0: fresh keys, signed with key (the site's mTLS private key). `me` is the site's index. */
int secagg_site_advertise(secagg_site *s, const secagg_params *p, int me, EVP_PKEY *key, secagg_advert *out,
                          char *err, size_t errlen);
/* Stage 1: verifies the n_adverts relayed adverts against ca_path (a bad one is an error: the
 * aggregator tampered), then seals shares for every verified peer: out (n) receives them (out[me]
 * unused; to = −1 for a peer without a verified advert). Needs ≥ t verified adverts including its
 * own. */
int secagg_site_share(secagg_site *s, const secagg_advert *adverts, int n_adverts, const char *ca_path,
                      secagg_sealed_share *out, char *err, size_t errlen);
/* Stage 2: opens the shares addressed to this site (from the sites of U2, which must hold me and
 * ≥ t sites), then y (d + 1 words) = masked encoding of x (d floats) with weight w in (0, 1]. */
int secagg_site_mask(secagg_site *s, const secagg_sealed_share *shares, int n_shares, const float *x, double w,
                     uint64_t rounding_seed, uint32_t *y, char *err, size_t errlen);
/* Stage 3: u3[k] = 1 for the sites the aggregator says sent y. Refuses (and reveals nothing) if
 * U3 is not within U2, lacks me, has fewer than t sites, or the site already revealed. */
int secagg_site_unmask(secagg_site *s, const uint8_t *u3, secagg_reveal *out, char *err, size_t errlen);
/* Wipes the secrets. */
void secagg_site_clear(secagg_site *s);

/* ------------------------------------------------------------------ the aggregator */

typedef enum { SECAGG_KEYS, SECAGG_SHARES, SECAGG_MASKED, SECAGG_UNMASK, SECAGG_DONE, SECAGG_ABORTED } secagg_stage;

typedef struct {
  secagg_params p;
  secagg_stage stage;
  uint8_t in_u1[SECAGG_MAX_SITES], in_u2[SECAGG_MAX_SITES], in_u3[SECAGG_MAX_SITES], revealed[SECAGG_MAX_SITES];
  uint8_t s_pk[SECAGG_MAX_SITES][CRYPTO_X25519_BYTES];
  uint32_t *sum;          /* (d + 1) Σ y over U3, mod 2^32 */
  secagg_reveal *reveals; /* (n) kept until the sum is unmasked */
} secagg_server;

int secagg_server_build(secagg_server *v, const secagg_params *p, char *err, size_t errlen);
void secagg_server_free(secagg_server *v);
/* Each stage collects, then closes at its deadline (or when every expected site answered). A close
 * with fewer than t sites moves to SECAGG_ABORTED and returns -1. */
int secagg_server_add_advert(secagg_server *v, const secagg_advert *a, char *err, size_t errlen);
int secagg_server_close_keys(secagg_server *v, char *err, size_t errlen);
/* The site sent its sealed shares (the aggregator relays them to their recipients unread). */
int secagg_server_add_shares(secagg_server *v, int from, char *err, size_t errlen);
int secagg_server_close_shares(secagg_server *v, char *err, size_t errlen);
int secagg_server_add_masked(secagg_server *v, int from, const uint32_t *y, char *err, size_t errlen);
int secagg_server_close_masked(secagg_server *v, char *err, size_t errlen);
int secagg_server_add_reveal(secagg_server *v, const secagg_reveal *r, char *err, size_t errlen);
/* With ≥ t reveals: removes the masks, checks the sum is one honest vectors can make (a wrong
 * share or vector unmasks to noise: refused, SECAGG_ABORTED), decodes, and writes the weight sum
 * *w_sum and mean (d) = Σ w·x / Σ w. */
int secagg_server_finish(secagg_server *v, float *mean, double *w_sum, char *err, size_t errlen);

#endif
