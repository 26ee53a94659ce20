/* OpenSSL 3 EVP plumbing behind crypto.h. OpenSSL's errors are drained into our log at the
 * point of failure so that a later, unrelated call does not report them. */
#include "crypto.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509_vfy.h>

#include "log.h"

/* The EVP update calls take int lengths; longer buffers go through in chunks of this size. */
#define EVP_CHUNK (1 << 30)

static void log_openssl(const char *what) {
  unsigned long e = ERR_get_error();
  char reason[256] = "no OpenSSL error recorded";
  if (e) ERR_error_string_n(e, reason, sizeof reason);
  log_error("crypto: %s failed: %s", what, reason);
  ERR_clear_error();
}

int crypto_random(uint8_t *out, size_t len) {
  while (len > 0) {
    int n = len > EVP_CHUNK ? EVP_CHUNK : (int)len;
    if (RAND_bytes(out, n) != 1) {
      log_openssl("RAND_bytes");
      return -1;
    }
    out += n;
    len -= (size_t)n;
  }
  return 0;
}

/* ---- X25519 ---- */

int crypto_x25519_keygen(uint8_t private_key[CRYPTO_X25519_BYTES], uint8_t public_key[CRYPTO_X25519_BYTES]) {
  if (crypto_random(private_key, CRYPTO_X25519_BYTES) != 0) return -1;
  if (crypto_x25519_public(private_key, public_key) != 0) {
    OPENSSL_cleanse(private_key, CRYPTO_X25519_BYTES);
    return -1;
  }
  return 0;
}

int crypto_x25519_public(const uint8_t private_key[CRYPTO_X25519_BYTES], uint8_t public_key[CRYPTO_X25519_BYTES]) {
  EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, private_key, CRYPTO_X25519_BYTES);
  size_t len = CRYPTO_X25519_BYTES;
  int ok = key && EVP_PKEY_get_raw_public_key(key, public_key, &len) == 1 && len == CRYPTO_X25519_BYTES;
  if (!ok) log_openssl("X25519 public key derivation");
  EVP_PKEY_free(key);  /* frees (and wipes) OpenSSL's copy of the private key */
  return ok ? 0 : -1;
}

int crypto_x25519_shared(const uint8_t private_key[CRYPTO_X25519_BYTES],
                         const uint8_t peer_public[CRYPTO_X25519_BYTES], uint8_t shared[CRYPTO_X25519_BYTES]) {
  EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, private_key, CRYPTO_X25519_BYTES);
  EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_public, CRYPTO_X25519_BYTES);
  EVP_PKEY_CTX *ctx = key ? EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL) : NULL;
  size_t len = CRYPTO_X25519_BYTES;
  /* OpenSSL refuses an all-zero result, i.e. a small-order peer key (RFC 7748 §6.1). */
  int ok = ctx && peer && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
           EVP_PKEY_derive(ctx, shared, &len) == 1 && len == CRYPTO_X25519_BYTES;
  if (!ok) {
    log_openssl("X25519 key agreement");
    OPENSSL_cleanse(shared, CRYPTO_X25519_BYTES);
  }
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(peer);
  EVP_PKEY_free(key);
  return ok ? 0 : -1;
}

/* ---- HKDF-SHA256 ---- */

static int hkdf_run(int mode, const uint8_t *key, size_t key_len, const uint8_t *salt, size_t salt_len,
                    const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len) {
  EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
  EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
  OSSL_PARAM params[6], *p = params;
  *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
  *p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
  *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len);
  /* An absent salt is HashLen zero bytes, which HMAC treats exactly like an empty key. */
  if (salt_len > 0) *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
  if (info_len > 0) *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
  *p = OSSL_PARAM_construct_end();
  int ok = ctx && EVP_KDF_derive(ctx, out, out_len, params) == 1;
  if (!ok) log_openssl("HKDF-SHA256");
  EVP_KDF_CTX_free(ctx);
  EVP_KDF_free(kdf);
  return ok ? 0 : -1;
}

int crypto_hkdf_extract(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                        uint8_t prk[CRYPTO_SHA256_BYTES]) {
  return hkdf_run(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, ikm, ikm_len, salt, salt_len, NULL, 0, prk, CRYPTO_SHA256_BYTES);
}

int crypto_hkdf_expand(const uint8_t prk[CRYPTO_SHA256_BYTES], const uint8_t *info, size_t info_len, uint8_t *out,
                       size_t out_len) {
  return hkdf_run(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, CRYPTO_SHA256_BYTES, NULL, 0, info, info_len, out, out_len);
}

int crypto_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len, const uint8_t *info,
                size_t info_len, uint8_t *out, size_t out_len) {
  return hkdf_run(EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, ikm, ikm_len, salt, salt_len, info, info_len, out, out_len);
}

/* ---- ChaCha20 and ChaCha20-Poly1305 ---- */

static int cipher_update(EVP_CIPHER_CTX *ctx, const uint8_t *in, uint8_t *out, size_t len) {
  while (len > 0) {
    int n = len > EVP_CHUNK ? EVP_CHUNK : (int)len, written = 0;
    if (EVP_CipherUpdate(ctx, out, &written, in, n) != 1 || written != n) return -1;
    in += n;
    out += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Additional authenticated data goes in through an update with no output buffer. */
static int cipher_aad(EVP_CIPHER_CTX *ctx, const uint8_t *aad, size_t len) {
  while (len > 0) {
    int n = len > EVP_CHUNK ? EVP_CHUNK : (int)len, written = 0;
    if (EVP_CipherUpdate(ctx, NULL, &written, aad, n) != 1) return -1;
    aad += n;
    len -= (size_t)n;
  }
  return 0;
}

int crypto_chacha20(const uint8_t key[CRYPTO_KEY_BYTES], const uint8_t nonce[CRYPTO_NONCE_BYTES], uint32_t counter,
                    const uint8_t *in, uint8_t *out, size_t len) {
  /* OpenSSL carries a block-counter overflow into the nonce words, which would silently leave
   * RFC 8439 ChaCha20; refuse instead. */
  if ((len + 63) / 64 > (size_t)(UINT32_MAX - counter) + 1) {
    log_error("crypto: ChaCha20 request of %zu bytes from block %u would wrap the block counter", len, counter);
    return -1;
  }
  /* OpenSSL's 16-byte ChaCha20 IV is the little-endian block counter followed by the nonce. */
  uint8_t iv[16] = {(uint8_t)counter, (uint8_t)(counter >> 8), (uint8_t)(counter >> 16), (uint8_t)(counter >> 24)};
  memcpy(iv + 4, nonce, CRYPTO_NONCE_BYTES);
  if (!in) {
    memset(out, 0, len);
    in = out;
  }
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int ok = ctx && EVP_EncryptInit_ex2(ctx, EVP_chacha20(), key, iv, NULL) == 1 && cipher_update(ctx, in, out, len) == 0;
  if (!ok) log_openssl("ChaCha20");
  EVP_CIPHER_CTX_free(ctx);  /* wipes the key schedule */
  return ok ? 0 : -1;
}

int crypto_aead_seal(const uint8_t key[CRYPTO_KEY_BYTES], const uint8_t nonce[CRYPTO_NONCE_BYTES], const uint8_t *aad,
                     size_t aad_len, const uint8_t *plaintext, size_t len, uint8_t *ciphertext,
                     uint8_t tag[CRYPTO_TAG_BYTES]) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  uint8_t final_block[16];  /* a stream cipher's final call writes nothing */
  int tail = 0;
  int ok = ctx && EVP_EncryptInit_ex2(ctx, EVP_chacha20_poly1305(), key, nonce, NULL) == 1 &&
           cipher_aad(ctx, aad, aad_len) == 0 && cipher_update(ctx, plaintext, ciphertext, len) == 0 &&
           EVP_EncryptFinal_ex(ctx, final_block, &tail) == 1 && tail == 0 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, CRYPTO_TAG_BYTES, tag) == 1;
  if (!ok) log_openssl("ChaCha20-Poly1305 seal");
  EVP_CIPHER_CTX_free(ctx);
  return ok ? 0 : -1;
}

int crypto_aead_open(const uint8_t key[CRYPTO_KEY_BYTES], const uint8_t nonce[CRYPTO_NONCE_BYTES], const uint8_t *aad,
                     size_t aad_len, const uint8_t *ciphertext, size_t len, const uint8_t tag[CRYPTO_TAG_BYTES],
                     uint8_t *plaintext) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  uint8_t final_block[16];
  int tail = 0;
  int ready = ctx && EVP_DecryptInit_ex2(ctx, EVP_chacha20_poly1305(), key, nonce, NULL) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, CRYPTO_TAG_BYTES, (void *)tag) == 1 &&
              cipher_aad(ctx, aad, aad_len) == 0 && cipher_update(ctx, ciphertext, plaintext, len) == 0;
  int result = -1;
  if (!ready) log_openssl("ChaCha20-Poly1305 open");
  else if (EVP_DecryptFinal_ex(ctx, final_block, &tail) == 1 && tail == 0) result = 0;
  else {
    ERR_clear_error();
    log_warn("crypto: ChaCha20-Poly1305 tag mismatch (%zu bytes of ciphertext, %zu of AAD)", len, aad_len);
    result = 1;
  }
  if (result != 0) OPENSSL_cleanse(plaintext, len);
  EVP_CIPHER_CTX_free(ctx);
  return result;
}

/* ---- signatures and certificates ---- */

/* Keys on disk are unencrypted; refusing a passphrase stops OpenSSL prompting on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

EVP_PKEY *crypto_private_key_load(const char *pem_path) {
  FILE *f = fopen(pem_path, "r");
  if (!f) {
    log_error("crypto: cannot open private key %s: %m", pem_path);
    return NULL;
  }
  EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
  fclose(f);
  if (!key) {
    char what[4200];
    snprintf(what, sizeof what, "reading a PEM private key from %s", pem_path);
    log_openssl(what);
  }
  return key;
}

/* Ed25519/Ed448 hash internally and take no digest; RSA and ECDSA sign SHA-256. */
static const char *signature_digest(EVP_PKEY *key) {
  return EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448") ? NULL : "SHA256";
}

int crypto_sign(EVP_PKEY *key, const uint8_t *msg, size_t msg_len, uint8_t **sig, size_t *sig_len) {
  *sig = NULL;
  *sig_len = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  size_t cap = 0;
  int ok = ctx && EVP_DigestSignInit_ex(ctx, NULL, signature_digest(key), NULL, NULL, key, NULL) == 1 &&
           EVP_DigestSign(ctx, NULL, &cap, msg, msg_len) == 1 && (*sig = malloc(cap)) != NULL &&
           EVP_DigestSign(ctx, *sig, &cap, msg, msg_len) == 1;
  if (ok) *sig_len = cap;
  else {
    log_openssl("signing");
    free(*sig);
    *sig = NULL;
  }
  EVP_MD_CTX_free(ctx);
  return ok ? 0 : -1;
}

int crypto_verify(EVP_PKEY *key, const uint8_t *msg, size_t msg_len, const uint8_t *sig, size_t sig_len) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || EVP_DigestVerifyInit_ex(ctx, NULL, signature_digest(key), NULL, NULL, key, NULL) != 1) {
    log_openssl("signature verification setup");
    EVP_MD_CTX_free(ctx);
    return -1;
  }
  /* A malformed signature (bad DER, wrong length) is just as invalid as a wrong one. */
  int valid = EVP_DigestVerify(ctx, sig, sig_len, msg, msg_len) == 1;
  ERR_clear_error();
  EVP_MD_CTX_free(ctx);
  return valid ? 0 : 1;
}

X509 *crypto_cert_load(const char *pem_path) {
  FILE *f = fopen(pem_path, "r");
  if (!f) {
    log_error("crypto: cannot open certificate %s: %m", pem_path);
    return NULL;
  }
  X509 *cert = PEM_read_X509(f, NULL, no_passphrase, NULL);
  fclose(f);
  if (!cert) {
    char what[4200];
    snprintf(what, sizeof what, "reading a PEM certificate from %s", pem_path);
    log_openssl(what);
  }
  return cert;
}

X509 *crypto_cert_parse(const char *pem, size_t len) {
  if (len > INT_MAX) {
    log_error("crypto: a %zu-byte certificate is not plausible", len);
    return NULL;
  }
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, no_passphrase, NULL) : NULL;
  if (!cert) log_openssl("parsing a PEM certificate");
  BIO_free(bio);
  return cert;
}

static int cert_common_name(X509 *cert, char *cn, size_t cn_cap) {
  X509_NAME *subject = X509_get_subject_name(cert);
  int at = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
  if (at < 0) {
    log_error("crypto: certificate subject has no CN");
    return -1;
  }
  unsigned char *utf8 = NULL;
  int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
  int ok = n >= 0 && (size_t)n < cn_cap && memchr(utf8, '\0', (size_t)n) == NULL;
  if (ok) {
    memcpy(cn, utf8, (size_t)n);
    cn[n] = '\0';
  } else {
    log_error("crypto: certificate CN is unreadable, contains NUL or exceeds %zu bytes", cn_cap - 1);
  }
  OPENSSL_free(utf8);
  return ok ? 0 : -1;
}

int crypto_cert_verify(X509 *cert, const char *ca_pem_path, char *cn, size_t cn_cap) {
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  int result = -1;
  if (!store || !ctx || X509_STORE_load_file(store, ca_pem_path) != 1) {
    char what[4200];
    snprintf(what, sizeof what, "loading CA certificates from %s", ca_pem_path);
    log_openssl(what);
  } else if (X509_STORE_CTX_init(ctx, store, cert, NULL) != 1) {
    log_openssl("certificate verification setup");
  } else if (X509_verify_cert(ctx) != 1) {
    log_warn("crypto: certificate does not chain to %s: %s", ca_pem_path,
             X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    ERR_clear_error();
    result = 1;
  } else {
    result = cert_common_name(cert, cn, cn_cap) == 0 ? 0 : -1;
  }
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return result;
}
