#include "secagg_protocol.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "secagg_math.h"

int secagg_default_threshold(int n) { return 2 * n / 3 + 1; }

int secagg_params_check(const secagg_params *p, char *err, size_t errlen) {
  if (p->n < 2 || p->n > SECAGG_MAX_SITES)
    return snprintf(err, errlen, "secagg: %d sites, expected 2..%d", p->n, SECAGG_MAX_SITES), -1;
  if (p->t < 2 || p->t > p->n)
    return snprintf(err, errlen, "secagg: threshold %d outside [2, %d]", p->t, p->n), -1;
  /* Each site reveals one kind of share per peer, so to get both the mask key and the self-mask
   * seed of one site an aggregator lying about the survivors needs 2t reveals of the n sites. */
  if (2 * p->t <= p->n)
    return snprintf(err, errlen,
                    "secagg: threshold %d of %d sites is at most half: an aggregator that names different "
                    "survivors to different sites could rebuild both secrets of one site and unmask its update "
                    "alone; it must be above %d",
                    p->t, p->n, p->n / 2),
           -1;
  for (int k = 1; k < p->n; k++)
    if (strcmp(p->names[k - 1], p->names[k]) >= 0)
      return snprintf(err, errlen, "secagg: site names not sorted and distinct at '%s', '%s'", p->names[k - 1],
                      p->names[k]),
             -1;
  if (secagg_fixed_check(p->range, p->scale, p->n) != 0)
    return snprintf(err, errlen, "secagg: %d sites x range %g x scale %g overflow the 32-bit sum", p->n, p->range,
                    p->scale),
           -1;
  return 0;
}

/* ------------------------------------------------------------------ derivations */

typedef struct {
  uint8_t b[1024];
  size_t len;
} bytes;

static void put(bytes *m, const void *data, size_t len) {
  if (m->len + len > sizeof m->b) len = sizeof m->b - m->len; /* names are bounded: cannot happen */
  memcpy(m->b + m->len, data, len);
  m->len += len;
}
static void put_str(bytes *m, const char *s) { put(m, s, strlen(s) + 1); }
static void put_u32(bytes *m, uint32_t v) {
  uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  put(m, le, 4);
}

/* HKDF(X25519(sk, peer_pk), purpose ‖ run ‖ round ‖ both names in sorted order): the same at both
 * ends of a pair, fresh per round. */
static int pair_key(const secagg_params *p, const char *purpose, const uint8_t sk[CRYPTO_X25519_BYTES],
                    const uint8_t peer_pk[CRYPTO_X25519_BYTES], int i, int j, uint8_t out[CRYPTO_KEY_BYTES]) {
  uint8_t shared[CRYPTO_X25519_BYTES];
  if (crypto_x25519_shared(sk, peer_pk, shared) != 0) return -1;
  bytes info = {.len = 0};
  put_str(&info, purpose);
  put_str(&info, p->run_id);
  put_u32(&info, p->round);
  put_str(&info, p->names[i < j ? i : j]);
  put_str(&info, p->names[i < j ? j : i]);
  int rc = crypto_hkdf(NULL, 0, shared, sizeof shared, info.b, info.len, out, CRYPTO_KEY_BYTES);
  OPENSSL_cleanse(shared, sizeof shared);
  return rc;
}

static void advert_message(const secagg_params *p, int from, const uint8_t *c_pk, const uint8_t *s_pk, bytes *m) {
  m->len = 0;
  put_str(m, "fedlora-secagg-advert");
  put_str(m, p->run_id);
  put_u32(m, p->round);
  put_str(m, p->names[from]);
  put(m, c_pk, CRYPTO_X25519_BYTES);
  put(m, s_pk, CRYPTO_X25519_BYTES);
}

static void share_aad(const secagg_params *p, int from, int to, bytes *m) {
  m->len = 0;
  put_u32(m, p->round);
  put_str(m, p->names[from]);
  put_str(m, p->names[to]);
}

static void share_nonce(int from, uint8_t nonce[CRYPTO_NONCE_BYTES]) {
  /* Both directions of a pair share a key; the sender's index keeps their nonces apart. */
  memset(nonce, 0, CRYPTO_NONCE_BYTES);
  nonce[0] = (uint8_t)from;
}

static int count(const uint8_t *set, int n) {
  int c = 0;
  for (int k = 0; k < n; k++) c += set[k] != 0;
  return c;
}

/* ------------------------------------------------------------------ the site */

int secagg_site_advertise(secagg_site *s, const secagg_params *p, int me, EVP_PKEY *key, secagg_advert *out,
                          char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->p = *p;
  s->me = me;
  if (secagg_params_check(p, err, errlen) != 0) return -1;
  if (me < 0 || me >= p->n) return snprintf(err, errlen, "secagg: site index %d of %d", me, p->n), -1;
  memset(out, 0, sizeof *out);
  out->from = me;
  if (crypto_x25519_keygen(s->c_sk, out->c_pk) != 0 || crypto_x25519_keygen(s->s_sk, out->s_pk) != 0)
    return snprintf(err, errlen, "secagg: key generation failed"), -1;
  bytes m;
  advert_message(p, me, out->c_pk, out->s_pk, &m);
  uint8_t *sig = NULL;
  size_t len = 0;
  if (crypto_sign(key, m.b, m.len, &sig, &len) != 0 || len > SECAGG_SIG_MAX) {
    free(sig);
    return snprintf(err, errlen, "secagg: cannot sign the keys with the site's TLS key"), -1;
  }
  memcpy(out->sig, sig, len);
  out->sig_len = len;
  free(sig);
  s->stage = SECAGG_SITE_ADVERTISED;
  return 0;
}

static int advert_verify(const secagg_params *p, const secagg_advert *a, const char *ca_path, char *err,
                         size_t errlen) {
  char cn[SECAGG_NAME_BYTES];
  X509 *cert = a->cert_pem ? crypto_cert_parse(a->cert_pem, strlen(a->cert_pem)) : NULL;
  int rc = -1;
  bytes m;
  if (!cert) {
    snprintf(err, errlen, "secagg: the advert of site #%d carries no readable certificate", a->from);
  } else if (crypto_cert_verify(cert, ca_path, cn, sizeof cn) != 0) {
    snprintf(err, errlen, "secagg: the certificate relayed for '%s' does not chain to %s", p->names[a->from], ca_path);
  } else if (strcmp(cn, p->names[a->from]) != 0) {
    snprintf(err, errlen, "secagg: the advert for '%s' carries the certificate of '%s'", p->names[a->from], cn);
  } else {
    advert_message(p, a->from, a->c_pk, a->s_pk, &m);
    if (crypto_verify(X509_get0_pubkey(cert), m.b, m.len, a->sig, a->sig_len) != 0)
      snprintf(err, errlen, "secagg: the keys relayed for '%s' are not signed by it", p->names[a->from]);
    else
      rc = 0;
  }
  X509_free(cert);
  return rc;
}

int secagg_site_share(secagg_site *s, const secagg_advert *adverts, int n_adverts, const char *ca_path,
                      secagg_sealed_share *out, char *err, size_t errlen) {
  const secagg_params *p = &s->p;
  if (s->stage != SECAGG_SITE_ADVERTISED) return snprintf(err, errlen, "secagg: shares asked out of order"), -1;
  for (int k = 0; k < n_adverts; k++) {
    const secagg_advert *a = &adverts[k];
    if (a->from < 0 || a->from >= p->n || s->in_u1[a->from])
      return snprintf(err, errlen, "secagg: advert #%d names site index %d twice or out of range", k, a->from), -1;
    if (advert_verify(p, a, ca_path, err, errlen) != 0) return -1;
    memcpy(s->peer_c_pk[a->from], a->c_pk, CRYPTO_X25519_BYTES);
    memcpy(s->peer_s_pk[a->from], a->s_pk, CRYPTO_X25519_BYTES);
    s->in_u1[a->from] = 1;
  }
  if (!s->in_u1[s->me] || count(s->in_u1, p->n) < p->t)
    return snprintf(err, errlen, "secagg: %d verified adverts (own %s), threshold %d", count(s->in_u1, p->n),
                    s->in_u1[s->me] ? "included" : "missing", p->t),
           -1;
  shamir_share sk_sh[SECAGG_MAX_SITES], b_sh[SECAGG_MAX_SITES];
  if (crypto_random(s->b, sizeof s->b) != 0 || shamir_split(s->s_sk, p->n, p->t, sk_sh) != 0 ||
      shamir_split(s->b, p->n, p->t, b_sh) != 0)
    return snprintf(err, errlen, "secagg: cannot share the secrets"), -1;
  int rc = 0;
  for (int j = 0; j < p->n && rc == 0; j++) {
    if (j == s->me) {
      memcpy(s->held_s[j], sk_sh[j].y, SHAMIR_SECRET_BYTES);
      memcpy(s->held_b[j], b_sh[j].y, SHAMIR_SECRET_BYTES);
      continue;
    }
    memset(&out[j], 0, sizeof out[j]);
    out[j].from = s->me;
    out[j].to = j;
    if (!s->in_u1[j]) {
      out[j].to = -1; /* no keys from j: nothing to send */
      continue;
    }
    uint8_t plain[SECAGG_SHARE_PLAIN], key[CRYPTO_KEY_BYTES], nonce[CRYPTO_NONCE_BYTES];
    plain[0] = sk_sh[j].x;
    memcpy(plain + 1, sk_sh[j].y, SHAMIR_SECRET_BYTES);
    memcpy(plain + 1 + SHAMIR_SECRET_BYTES, b_sh[j].y, SHAMIR_SECRET_BYTES);
    bytes aad;
    share_aad(p, s->me, j, &aad);
    share_nonce(s->me, nonce);
    rc = pair_key(p, "fedlora-secagg-share", s->c_sk, s->peer_c_pk[j], s->me, j, key) != 0 ||
                 crypto_aead_seal(key, nonce, aad.b, aad.len, plain, sizeof plain, out[j].ct, out[j].tag) != 0
             ? -1
             : 0;
    OPENSSL_cleanse(plain, sizeof plain);
    OPENSSL_cleanse(key, sizeof key);
  }
  OPENSSL_cleanse(sk_sh, sizeof sk_sh);
  OPENSSL_cleanse(b_sh, sizeof b_sh);
  if (rc != 0) return snprintf(err, errlen, "secagg: sealing a share failed"), -1;
  s->stage = SECAGG_SITE_SHARED;
  return 0;
}

int secagg_site_mask(secagg_site *s, const secagg_sealed_share *shares, int n_shares, const float *x, double w,
                     uint64_t rounding_seed, uint32_t *y, char *err, size_t errlen) {
  const secagg_params *p = &s->p;
  if (s->stage != SECAGG_SITE_SHARED) return snprintf(err, errlen, "secagg: masking asked out of order"), -1;
  if (!(w > 0 && w <= 1)) return snprintf(err, errlen, "secagg: weight %g outside (0, 1]", w), -1;
  s->in_u2[s->me] = 1;
  for (int k = 0; k < n_shares; k++) {
    const secagg_sealed_share *c = &shares[k];
    int i = c->from;
    if (c->to != s->me || i < 0 || i >= p->n || i == s->me || !s->in_u1[i] || s->in_u2[i])
      return snprintf(err, errlen, "secagg: relayed share #%d (from %d to %d) is not for this site", k, i, c->to), -1;
    uint8_t plain[SECAGG_SHARE_PLAIN], key[CRYPTO_KEY_BYTES], nonce[CRYPTO_NONCE_BYTES];
    bytes aad;
    share_aad(p, i, s->me, &aad);
    share_nonce(i, nonce);
    int rc = pair_key(p, "fedlora-secagg-share", s->c_sk, s->peer_c_pk[i], s->me, i, key);
    if (rc == 0) rc = crypto_aead_open(key, nonce, aad.b, aad.len, c->ct, sizeof plain, c->tag, plain);
    OPENSSL_cleanse(key, sizeof key);
    if (rc != 0 || plain[0] != s->me + 1) {
      OPENSSL_cleanse(plain, sizeof plain);
      return snprintf(err, errlen, "secagg: the share from '%s' does not open (tampered or misrouted)", p->names[i]),
             -1;
    }
    memcpy(s->held_s[i], plain + 1, SHAMIR_SECRET_BYTES);
    memcpy(s->held_b[i], plain + 1 + SHAMIR_SECRET_BYTES, SHAMIR_SECRET_BYTES);
    OPENSSL_cleanse(plain, sizeof plain);
    s->in_u2[i] = 1;
  }
  if (count(s->in_u2, p->n) < p->t)
    return snprintf(err, errlen, "secagg: shares from %d sites, threshold %d", count(s->in_u2, p->n), p->t), -1;
  /* v = [w·range, w·x]: x clipped first, so every entry stays within ±range. */
  float *v = malloc((p->d + 1) * sizeof *v);
  if (!v) return snprintf(err, errlen, "secagg: out of memory for %zu values", p->d + 1), -1;
  v[0] = (float)(w * p->range);
  for (size_t i = 0; i < p->d; i++) {
    double xi = x[i] > p->range ? p->range : x[i] < -p->range ? -p->range : x[i];
    v[i + 1] = (float)(w * xi);
  }
  int rc = secagg_quantize(v, p->d + 1, p->range, p->scale, rounding_seed, y);
  free(v);
  if (rc != 0) return snprintf(err, errlen, "secagg: the update has a non-finite value"), -1;
  if (secagg_mask_apply(y, p->d + 1, s->b, +1) != 0) return snprintf(err, errlen, "secagg: self mask failed"), -1;
  for (int j = 0; j < p->n; j++) {
    if (j == s->me || !s->in_u2[j]) continue;
    uint8_t seed[SECAGG_SEED_BYTES];
    rc = pair_key(p, "fedlora-secagg-mask", s->s_sk, s->peer_s_pk[j], s->me, j, seed);
    if (rc == 0) rc = secagg_mask_apply(y, p->d + 1, seed, s->me < j ? +1 : -1);
    OPENSSL_cleanse(seed, sizeof seed);
    if (rc != 0) return snprintf(err, errlen, "secagg: the mask shared with '%s' failed", p->names[j]), -1;
  }
  s->stage = SECAGG_SITE_MASKED;
  return 0;
}

int secagg_site_unmask(secagg_site *s, const uint8_t *u3, secagg_reveal *out, char *err, size_t errlen) {
  const secagg_params *p = &s->p;
  if (s->stage == SECAGG_SITE_REVEALED)
    return snprintf(err, errlen, "secagg: this site already revealed its shares for round %u", p->round), -1;
  if (s->stage != SECAGG_SITE_MASKED) return snprintf(err, errlen, "secagg: unmasking asked out of order"), -1;
  for (int k = 0; k < p->n; k++)
    if (u3[k] && !s->in_u2[k])
      return snprintf(err, errlen, "secagg: '%s' is said to have sent its masked input but never sent shares",
                      p->names[k]),
             -1;
  if (!u3[s->me] || count(u3, p->n) < p->t)
    return snprintf(err, errlen, "secagg: %d survivors (this site %s), threshold %d: nothing revealed",
                    count(u3, p->n), u3[s->me] ? "among them" : "not among them", p->t),
           -1;
  memset(out, 0, sizeof *out);
  out->from = s->me;
  for (int i = 0; i < p->n; i++) {
    if (!s->in_u2[i]) continue;
    out->kind[i] = u3[i] ? SECAGG_REVEAL_SELF_SEED : SECAGG_REVEAL_MASK_KEY;
    memcpy(out->y[i], u3[i] ? s->held_b[i] : s->held_s[i], SHAMIR_SECRET_BYTES);
  }
  s->stage = SECAGG_SITE_REVEALED;
  return 0;
}

void secagg_site_clear(secagg_site *s) { OPENSSL_cleanse(s, sizeof *s); }

/* ------------------------------------------------------------------ the aggregator */

int secagg_server_build(secagg_server *v, const secagg_params *p, char *err, size_t errlen) {
  memset(v, 0, sizeof *v);
  if (secagg_params_check(p, err, errlen) != 0) return -1;
  v->p = *p;
  v->sum = calloc(p->d + 1, sizeof *v->sum);
  v->reveals = calloc((size_t)p->n, sizeof *v->reveals);
  if (!v->sum || !v->reveals) {
    secagg_server_free(v);
    return snprintf(err, errlen, "secagg: out of memory for %zu words", p->d + 1), -1;
  }
  return 0;
}

void secagg_server_free(secagg_server *v) {
  free(v->sum);
  if (v->reveals) OPENSSL_cleanse(v->reveals, (size_t)v->p.n * sizeof *v->reveals);
  free(v->reveals);
  v->sum = NULL;
  v->reveals = NULL;
}

static int in_stage(const secagg_server *v, secagg_stage want, char *err, size_t errlen) {
  static const char *const names[] = {"keys", "shares", "masked", "unmask", "done", "aborted"};
  if (v->stage == want) return 0;
  return snprintf(err, errlen, "secagg: the round is in stage %s, not %s", names[v->stage], names[want]), -1;
}

static int expect_stage(secagg_server *v, secagg_stage want, int from, char *err, size_t errlen) {
  if (in_stage(v, want, err, errlen) != 0) return -1;
  if (from < 0 || from >= v->p.n) return snprintf(err, errlen, "secagg: site index %d of %d", from, v->p.n), -1;
  return 0;
}

/* Closes stage `want` when at least t sites are in set; aborts the round otherwise. */
static int close_stage(secagg_server *v, secagg_stage want, const uint8_t *set, const char *what, char *err,
                       size_t errlen) {
  if (in_stage(v, want, err, errlen) != 0) return -1;
  int c = count(set, v->p.n);
  if (c >= v->p.t) return 0;
  v->stage = SECAGG_ABORTED;
  return snprintf(err, errlen, "secagg: %d %s, threshold %d: round aborted", c, what, v->p.t), -1;
}

int secagg_server_add_advert(secagg_server *v, const secagg_advert *a, char *err, size_t errlen) {
  if (expect_stage(v, SECAGG_KEYS, a->from, err, errlen) != 0) return -1;
  memcpy(v->s_pk[a->from], a->s_pk, CRYPTO_X25519_BYTES);
  v->in_u1[a->from] = 1;
  return 0;
}

int secagg_server_close_keys(secagg_server *v, char *err, size_t errlen) {
  if (close_stage(v, SECAGG_KEYS, v->in_u1, "adverts", err, errlen) != 0) return -1;
  v->stage = SECAGG_SHARES;
  return 0;
}

int secagg_server_add_shares(secagg_server *v, int from, char *err, size_t errlen) {
  if (expect_stage(v, SECAGG_SHARES, from, err, errlen) != 0) return -1;
  if (!v->in_u1[from]) return snprintf(err, errlen, "secagg: '%s' sent shares without keys", v->p.names[from]), -1;
  v->in_u2[from] = 1;
  return 0;
}

int secagg_server_close_shares(secagg_server *v, char *err, size_t errlen) {
  if (close_stage(v, SECAGG_SHARES, v->in_u2, "share senders", err, errlen) != 0) return -1;
  v->stage = SECAGG_MASKED;
  return 0;
}

int secagg_server_add_masked(secagg_server *v, int from, const uint32_t *y, char *err, size_t errlen) {
  if (expect_stage(v, SECAGG_MASKED, from, err, errlen) != 0) return -1;
  if (!v->in_u2[from] || v->in_u3[from])
    return snprintf(err, errlen, "secagg: masked input from '%s' not expected", v->p.names[from]), -1;
  secagg_add(v->sum, y, v->p.d + 1);
  v->in_u3[from] = 1;
  return 0;
}

int secagg_server_close_masked(secagg_server *v, char *err, size_t errlen) {
  if (close_stage(v, SECAGG_MASKED, v->in_u3, "masked inputs", err, errlen) != 0) return -1;
  v->stage = SECAGG_UNMASK;
  return 0;
}

int secagg_server_add_reveal(secagg_server *v, const secagg_reveal *r, char *err, size_t errlen) {
  if (expect_stage(v, SECAGG_UNMASK, r->from, err, errlen) != 0) return -1;
  if (!v->in_u3[r->from] || v->revealed[r->from])
    return snprintf(err, errlen, "secagg: reveal from '%s' not expected", v->p.names[r->from]), -1;
  for (int i = 0; i < v->p.n; i++) {
    int want = !v->in_u2[i] ? SECAGG_REVEAL_NONE : v->in_u3[i] ? SECAGG_REVEAL_SELF_SEED : SECAGG_REVEAL_MASK_KEY;
    if (r->kind[i] != want)
      return snprintf(err, errlen, "secagg: '%s' revealed the wrong kind of share for '%s'", v->p.names[r->from],
                      v->p.names[i]),
             -1;
  }
  v->reveals[r->from] = *r;
  v->revealed[r->from] = 1;
  return 0;
}

/* Interpolates site i's secret of the given kind from the first t reveals. */
static int recover(secagg_server *v, int i, uint8_t secret[SHAMIR_SECRET_BYTES]) {
  shamir_share sh[SECAGG_MAX_SITES];
  int k = 0;
  for (int j = 0; j < v->p.n && k < v->p.t; j++) {
    if (!v->revealed[j]) continue;
    sh[k].x = (uint8_t)(j + 1);
    memcpy(sh[k].y, v->reveals[j].y[i], SHAMIR_SECRET_BYTES);
    k++;
  }
  int rc = shamir_recover(sh, k, secret);
  OPENSSL_cleanse(sh, sizeof sh);
  return rc;
}

/* What k honest vectors can sum to, in integers: each site's weight word is round(w·range·scale)
 * with w in (0, 1], and every other word is within ±(w·range·scale + 1) (values clipped to ±range,
 * rounded up or down). So the weight sum S0 lies in [1, k·(ceil(range·scale) + 1)] and every word
 * |S_i| ≤ S0 + 2k. A wrong share, or a vector masked with other keys, unmasks to noise over the
 * whole int32 range, which fails this with near certainty: refused rather than committed. */
static int sum_check(const secagg_server *v, char *err, size_t errlen) {
  const secagg_params *p = &v->p;
  int64_t k = count(v->in_u3, p->n), s0 = (int32_t)v->sum[0];
  int64_t most = k * ((int64_t)ceil(p->range * p->scale) + 1);
  if (s0 < 1 || s0 > most)
    return snprintf(err, errlen,
                    "secagg: the unmasked weight sum %lld is outside what %lld sites can send (1..%lld): a site "
                    "sent a wrong share or vector; nothing is committed",
                    (long long)s0, (long long)k, (long long)most),
           -1;
  for (size_t i = 1; i <= p->d; i++) {
    int64_t s = (int32_t)v->sum[i];
    if (s > s0 + 2 * k || s < -(s0 + 2 * k))
      return snprintf(err, errlen,
                      "secagg: unmasked value %zu (%lld) exceeds the weight sum %lld: a site sent a wrong share or "
                      "vector; nothing is committed",
                      i - 1, (long long)s, (long long)s0),
             -1;
  }
  return 0;
}

int secagg_server_finish(secagg_server *v, float *mean, double *w_sum, char *err, size_t errlen) {
  const secagg_params *p = &v->p;
  if (close_stage(v, SECAGG_UNMASK, v->revealed, "reveals", err, errlen) != 0) return -1;
  int rc = 0;
  for (int i = 0; i < p->n && rc == 0; i++) {
    if (!v->in_u2[i]) continue;
    uint8_t secret[SHAMIR_SECRET_BYTES];
    if (recover(v, i, secret) != 0) {
      rc = -1;
    } else if (v->in_u3[i]) {
      rc = secagg_mask_apply(v->sum, p->d + 1, secret, -1); /* i's self mask */
    } else {
      /* i dropped after sharing: its pairwise masks with every survivor stay in the sum. The
       * recovered key must be the one i advertised, or the shares were forged. */
      uint8_t pk[CRYPTO_X25519_BYTES];
      rc = crypto_x25519_public(secret, pk);
      if (rc == 0 && memcmp(pk, v->s_pk[i], sizeof pk) != 0) {
        snprintf(err, errlen, "secagg: the mask key rebuilt for '%s' is not the one it advertised", p->names[i]);
        OPENSSL_cleanse(secret, sizeof secret);
        v->stage = SECAGG_ABORTED;
        return -1;
      }
      for (int j = 0; j < p->n && rc == 0; j++) {
        if (!v->in_u3[j]) continue;
        uint8_t seed[SECAGG_SEED_BYTES];
        rc = pair_key(p, "fedlora-secagg-mask", secret, v->s_pk[j], i, j, seed);
        /* y_j holds +PRG(s_ij) when j < i, −PRG(s_ij) otherwise: remove it. */
        if (rc == 0) rc = secagg_mask_apply(v->sum, p->d + 1, seed, j < i ? -1 : +1);
        OPENSSL_cleanse(seed, sizeof seed);
      }
    }
    OPENSSL_cleanse(secret, sizeof secret);
  }
  if (rc != 0) {
    v->stage = SECAGG_ABORTED;
    return snprintf(err, errlen, "secagg: unmasking failed"), -1;
  }
  if (sum_check(v, err, errlen) != 0) {
    v->stage = SECAGG_ABORTED;
    return -1;
  }
  float w;
  secagg_decode(v->sum, 1, p->scale, p->range, &w);
  secagg_decode(v->sum + 1, p->d, p->scale, w, mean);
  *w_sum = w;
  v->stage = SECAGG_DONE;
  return 0;
}
