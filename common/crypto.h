/* Cryptographic building blocks for secure aggregation and signed messages, all through
 * OpenSSL 3's EVP interface: X25519 key agreement, HKDF-SHA256, the ChaCha20 keystream (for
 * masks), ChaCha20-Poly1305 AEAD, signatures with the site's TLS key, and certificate checks.
 *
 * Every function returns 0 on success and -1 on failure (logged with what failed), except the
 * verifiers, which say "valid" with 0, "invalid" with 1 and "could not check" with -1, so that a
 * caller testing `!= 0` never mistakes a forgery for success. Secret intermediates are wiped
 * with OPENSSL_cleanse before returning; buffers the caller owns are the caller's to wipe. */
#ifndef FEDLORA_CRYPTO_H
#define FEDLORA_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define CRYPTO_X25519_BYTES 32  /* private key, public key and shared secret */
#define CRYPTO_KEY_BYTES 32     /* ChaCha20 and ChaCha20-Poly1305 keys */
#define CRYPTO_NONCE_BYTES 12
#define CRYPTO_TAG_BYTES 16
#define CRYPTO_SHA256_BYTES 32

int crypto_random(uint8_t *out, size_t len);

/* X25519 (RFC 7748). Keys are the raw 32-byte strings of the RFC. */
int crypto_x25519_keygen(uint8_t private_key[CRYPTO_X25519_BYTES], uint8_t public_key[CRYPTO_X25519_BYTES]);
int crypto_x25519_public(const uint8_t private_key[CRYPTO_X25519_BYTES], uint8_t public_key[CRYPTO_X25519_BYTES]);
/* Fails (rather than returning all zeros) if the peer's key is a small-order point. */
int crypto_x25519_shared(const uint8_t private_key[CRYPTO_X25519_BYTES],
                         const uint8_t peer_public[CRYPTO_X25519_BYTES], uint8_t shared[CRYPTO_X25519_BYTES]);

/* HKDF-SHA256 (RFC 5869). salt may be NULL/0 (then HashLen zero bytes), info may be NULL/0. */
int crypto_hkdf_extract(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                        uint8_t prk[CRYPTO_SHA256_BYTES]);
int crypto_hkdf_expand(const uint8_t prk[CRYPTO_SHA256_BYTES], const uint8_t *info, size_t info_len, uint8_t *out,
                       size_t out_len);
int crypto_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len, const uint8_t *info,
                size_t info_len, uint8_t *out, size_t out_len);

/* ChaCha20 (RFC 8439) starting at block `counter`: out = in XOR keystream. in == NULL gives the
 * bare keystream. in and out may be the same buffer. len may exceed what one call of the EVP
 * API takes; the 32-bit block counter must not wrap (len ≤ (2^32 − counter)·64 bytes). */
int crypto_chacha20(const uint8_t key[CRYPTO_KEY_BYTES], const uint8_t nonce[CRYPTO_NONCE_BYTES], uint32_t counter,
                    const uint8_t *in, uint8_t *out, size_t len);

/* ChaCha20-Poly1305 AEAD (RFC 8439 §2.8). A nonce must never repeat under one key. open() returns
 * 1 and leaves `plaintext` zeroed if the tag does not match the ciphertext and AAD. */
int crypto_aead_seal(const uint8_t key[CRYPTO_KEY_BYTES], const uint8_t nonce[CRYPTO_NONCE_BYTES], const uint8_t *aad,
                     size_t aad_len, const uint8_t *plaintext, size_t len, uint8_t *ciphertext,
                     uint8_t tag[CRYPTO_TAG_BYTES]);
int crypto_aead_open(const uint8_t key[CRYPTO_KEY_BYTES], const uint8_t nonce[CRYPTO_NONCE_BYTES], const uint8_t *aad,
                     size_t aad_len, const uint8_t *ciphertext, size_t len, const uint8_t tag[CRYPTO_TAG_BYTES],
                     uint8_t *plaintext);

/* Signatures with the site's TLS key (RSA, ECDSA or Ed25519, whatever the PKI issued). RSA and
 * ECDSA sign SHA-256 of the message (RSA with PKCS#1 v1.5 padding); Ed25519 signs the message
 * itself, as it must. */
EVP_PKEY *crypto_private_key_load(const char *pem_path);
/* *sig is malloc'd; free() it. */
int crypto_sign(EVP_PKEY *key, const uint8_t *msg, size_t msg_len, uint8_t **sig, size_t *sig_len);
/* key may be a private key or a certificate's public key (X509_get0_pubkey). */
int crypto_verify(EVP_PKEY *key, const uint8_t *msg, size_t msg_len, const uint8_t *sig, size_t sig_len);

X509 *crypto_cert_load(const char *pem_path);
X509 *crypto_cert_parse(const char *pem, size_t len);
/* 0 if `cert` chains to a certificate in the CA PEM file (and is within its validity period);
 * then its subject CN goes to cn (truncation is an error). */
int crypto_cert_verify(X509 *cert, const char *ca_pem_path, char *cn, size_t cn_cap);

#endif
