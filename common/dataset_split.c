/* The content-hashed validation split; see dataset.h. */
#include <math.h>
#include <openssl/evp.h>
#include <string.h>

#include "dataset.h"

static void put_le64(uint8_t out[8], uint64_t v) {
  for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (8 * i));
}

static void digest_field(EVP_MD_CTX *ctx, const void *data, size_t len) {
  uint8_t n[8];
  put_le64(n, len);
  EVP_DigestUpdate(ctx, n, sizeof n);
  EVP_DigestUpdate(ctx, data, len);
}

/* The first 8 bytes of SHA-256(seed || kind || fields), big-endian; ids hash as 4-byte LE each. */
static uint64_t record_hash(const record_set *s, const data_record *r, uint64_t seed) {
  uint8_t head[9], md[EVP_MAX_MD_SIZE];
  put_le64(head, seed);
  head[8] = (uint8_t)r->kind;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  /* Allocation failure here is not recoverable in a useful way; hash 0 sends the record to validation. */
  if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
    EVP_MD_CTX_free(ctx);
    return 0;
  }
  EVP_DigestUpdate(ctx, head, sizeof head);
  if (r->kind == RECORD_IDS) {
    uint8_t n[8], le[4]; /* ids hash as little-endian bytes whatever the host's order */
    put_le64(n, r->body_len * 4);
    EVP_DigestUpdate(ctx, n, sizeof n);
    for (size_t i = 0; i < r->body_len; i++) {
      uint32_t v = (uint32_t)s->ids[r->body + i];
      for (int k = 0; k < 4; k++) le[k] = (uint8_t)(v >> (8 * k));
      EVP_DigestUpdate(ctx, le, sizeof le);
    }
  } else {
    if (r->kind == RECORD_PROMPT) digest_field(ctx, record_prompt(s, r), r->prompt_len);
    digest_field(ctx, record_body(s, r), r->body_len);
  }
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  uint64_t h = 0;
  for (int i = 0; i < 8; i++) h = (h << 8) | md[i];
  return h;
}

int record_in_validation(const record_set *s, size_t i, uint64_t split_seed, double fraction) {
  if (!(fraction > 0.0)) return 0;
  double threshold = ldexp(fraction, 64);
  if (threshold >= ldexp(1.0, 64)) return 1;
  return record_hash(s, &s->records[i], split_seed) < (uint64_t)threshold;
}
