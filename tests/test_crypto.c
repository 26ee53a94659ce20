/* crypto.h against the RFC test vectors (X25519: RFC 7748 §6.1; HKDF: RFC 5869 A.1 and A.3;
 * ChaCha20: RFC 8439 §2.4.2 and A.1 #1; AEAD: RFC 8439 §2.8.2), and signatures/certificates with
 * keys and a small PKI made by the openssl command line. */
#include <stdlib.h>

#include "crypto.h"
#include "harness.h"

static size_t unhex(const char *hex, uint8_t *out) {
  size_t n = 0;
  for (const char *p = hex; *p;) {
    if (*p == ' ' || *p == '\n' || *p == ':') {
      p++;
      continue;
    }
    unsigned byte;
    sscanf(p, "%2x", &byte);
    out[n++] = (uint8_t)byte;
    p += 2;
  }
  return n;
}

static void check_bytes(const char *what, const uint8_t *got, const char *want_hex) {
  uint8_t want[512];
  size_t n = unhex(want_hex, want);
  CHECK_MSG(memcmp(got, want, n) == 0, "%s does not match its test vector", what);
}

static const char sunscreen[] =
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be "
    "it.";

static void test_x25519(void) {
  uint8_t a[32], b[32], a_pub[32], b_pub[32], k1[32], k2[32];
  unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a);
  unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", b);
  CHECK_EQ_INT(crypto_x25519_public(a, a_pub), 0);
  CHECK_EQ_INT(crypto_x25519_public(b, b_pub), 0);
  check_bytes("Alice's public key", a_pub, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  check_bytes("Bob's public key", b_pub, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  CHECK_EQ_INT(crypto_x25519_shared(a, b_pub, k1), 0);
  CHECK_EQ_INT(crypto_x25519_shared(b, a_pub, k2), 0);
  check_bytes("shared secret (Alice)", k1, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  check_bytes("shared secret (Bob)", k2, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

  /* Fresh keys agree; a small-order peer point (all zeros) is refused. */
  uint8_t c[32], c_pub[32], d[32], d_pub[32], zero[32] = {0};
  CHECK_EQ_INT(crypto_x25519_keygen(c, c_pub), 0);
  CHECK_EQ_INT(crypto_x25519_keygen(d, d_pub), 0);
  CHECK_EQ_INT(crypto_x25519_shared(c, d_pub, k1), 0);
  CHECK_EQ_INT(crypto_x25519_shared(d, c_pub, k2), 0);
  CHECK(memcmp(k1, k2, 32) == 0);
  CHECK(memcmp(c_pub, d_pub, 32) != 0);
  CHECK_EQ_INT(crypto_x25519_shared(c, zero, k1), -1);
}

static void test_hkdf(void) {
  uint8_t ikm[22], salt[13], info[10], prk[32], okm[42];
  memset(ikm, 0x0b, sizeof ikm);
  unhex("000102030405060708090a0b0c", salt);
  unhex("f0f1f2f3f4f5f6f7f8f9", info);
  CHECK_EQ_INT(crypto_hkdf_extract(salt, sizeof salt, ikm, sizeof ikm, prk), 0);
  check_bytes("HKDF A.1 PRK", prk, "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
  const char *okm1 = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";
  CHECK_EQ_INT(crypto_hkdf_expand(prk, info, sizeof info, okm, sizeof okm), 0);
  check_bytes("HKDF A.1 OKM (expand)", okm, okm1);
  memset(okm, 0, sizeof okm);
  CHECK_EQ_INT(crypto_hkdf(salt, sizeof salt, ikm, sizeof ikm, info, sizeof info, okm, sizeof okm), 0);
  check_bytes("HKDF A.1 OKM (one shot)", okm, okm1);
  /* A.3: no salt, no info. */
  CHECK_EQ_INT(crypto_hkdf_extract(NULL, 0, ikm, sizeof ikm, prk), 0);
  check_bytes("HKDF A.3 PRK", prk, "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04");
  CHECK_EQ_INT(crypto_hkdf(NULL, 0, ikm, sizeof ikm, NULL, 0, okm, sizeof okm), 0);
  check_bytes("HKDF A.3 OKM", okm, "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

static void test_chacha20(void) {
  uint8_t key[32], nonce[12], out[128];
  for (int i = 0; i < 32; i++) key[i] = (uint8_t)i;
  unhex("000000000000004a00000000", nonce);
  size_t n = strlen(sunscreen);
  CHECK_EQ_INT(n, 114);
  CHECK_EQ_INT(crypto_chacha20(key, nonce, 1, (const uint8_t *)sunscreen, out, n), 0);
  check_bytes("RFC 8439 2.4.2 ciphertext", out,
              "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0bf91b65c5524733ab8f593dabcd62b357"
              "1639d624e65152ab8f530c359f0861d807ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
              "5af90bbf74a35be6b40b8eedf2785e42874d");
  /* Decryption is the same operation, in place. */
  CHECK_EQ_INT(crypto_chacha20(key, nonce, 1, out, out, n), 0);
  CHECK(memcmp(out, sunscreen, n) == 0);

  uint8_t zero_key[32] = {0}, zero_nonce[12] = {0};
  CHECK_EQ_INT(crypto_chacha20(zero_key, zero_nonce, 0, NULL, out, 64), 0);
  check_bytes("RFC 8439 A.1 #1 keystream", out,
              "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a37"
              "6a43b8f41518a11cc387b669b2ee6586");
  /* A keystream asked for from block 1 continues the one from block 0. */
  uint8_t two_blocks[128], second[64];
  CHECK_EQ_INT(crypto_chacha20(key, nonce, 0, NULL, two_blocks, 128), 0);
  CHECK_EQ_INT(crypto_chacha20(key, nonce, 1, NULL, second, 64), 0);
  CHECK(memcmp(two_blocks + 64, second, 64) == 0);
  /* The last block before the counter wraps is allowed; one more byte is not. */
  CHECK_EQ_INT(crypto_chacha20(key, nonce, UINT32_MAX, NULL, second, 64), 0);
  CHECK_EQ_INT(crypto_chacha20(key, nonce, UINT32_MAX, NULL, out, 65), -1);
}

static void test_aead(void) {
  uint8_t key[32], nonce[12], aad[12], ct[128], tag[16], pt[128];
  unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f", key);
  unhex("070000004041424344454647", nonce);
  unhex("50515253c0c1c2c3c4c5c6c7", aad);
  size_t n = strlen(sunscreen);
  CHECK_EQ_INT(crypto_aead_seal(key, nonce, aad, sizeof aad, (const uint8_t *)sunscreen, n, ct, tag), 0);
  check_bytes("RFC 8439 2.8.2 ciphertext", ct,
              "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
              "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
              "3ff4def08e4b7a9de576d26586cec64b6116");
  check_bytes("RFC 8439 2.8.2 tag", tag, "1ae10b594f09e26a7e902ecbd0600691");
  CHECK_EQ_INT(crypto_aead_open(key, nonce, aad, sizeof aad, ct, n, tag, pt), 0);
  CHECK(memcmp(pt, sunscreen, n) == 0);
  /* Any change to ciphertext, tag or AAD is caught, and nothing is released. */
  ct[5] ^= 1;
  CHECK_EQ_INT(crypto_aead_open(key, nonce, aad, sizeof aad, ct, n, tag, pt), 1);
  CHECK(pt[0] == 0 && pt[n - 1] == 0);
  ct[5] ^= 1;
  tag[15] ^= 0x80;
  CHECK_EQ_INT(crypto_aead_open(key, nonce, aad, sizeof aad, ct, n, tag, pt), 1);
  tag[15] ^= 0x80;
  aad[0] ^= 1;
  CHECK_EQ_INT(crypto_aead_open(key, nonce, aad, sizeof aad, ct, n, tag, pt), 1);
  aad[0] ^= 1;
  CHECK_EQ_INT(crypto_aead_open(key, nonce, NULL, 0, ct, n, tag, pt), 1);
  CHECK_EQ_INT(crypto_aead_open(key, nonce, aad, sizeof aad, ct, n, tag, pt), 0);
  /* Empty message, no AAD: the tag alone authenticates. */
  CHECK_EQ_INT(crypto_aead_seal(key, nonce, NULL, 0, NULL, 0, ct, tag), 0);
  CHECK_EQ_INT(crypto_aead_open(key, nonce, NULL, 0, ct, 0, tag, pt), 0);
}

static int run(const char *dir, const char *cmd) {
  char line[2048];
  snprintf(line, sizeof line, "cd %s && %s >/dev/null 2>&1", dir, cmd);
  int rc = system(line);
  CHECK_MSG(rc == 0, "command failed (%d): %s", rc, cmd);
  return rc;
}

static const char *path_in(const char *dir, const char *name) {
  static char paths[4][512];
  static int next;
  char *p = paths[next++ % 4];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

/* Signs with the key in key_file, checks with the certificate's public key, and checks that a
 * flipped bit in the signature or the message is rejected. */
static void check_sign_verify(const char *dir, const char *key_file, const char *cert_file) {
  EVP_PKEY *key = crypto_private_key_load(path_in(dir, key_file));
  X509 *cert = crypto_cert_load(path_in(dir, cert_file));
  CHECK_MSG(key && cert, "loading %s / %s", key_file, cert_file);
  if (!key || !cert) return;
  uint8_t msg[] = "round 17: sha256 of the update is 3f...";
  uint8_t *sig;
  size_t sig_len;
  CHECK_EQ_INT(crypto_sign(key, msg, sizeof msg, &sig, &sig_len), 0);
  EVP_PKEY *pub = X509_get0_pubkey(cert);
  CHECK_MSG(crypto_verify(pub, msg, sizeof msg, sig, sig_len) == 0, "%s: genuine signature rejected", key_file);
  CHECK_EQ_INT(crypto_verify(key, msg, sizeof msg, sig, sig_len), 0);
  sig[sig_len / 2] ^= 0x10;
  CHECK_MSG(crypto_verify(pub, msg, sizeof msg, sig, sig_len) == 1, "%s: forged signature accepted", key_file);
  sig[sig_len / 2] ^= 0x10;
  msg[6] ^= 1;
  CHECK_MSG(crypto_verify(pub, msg, sizeof msg, sig, sig_len) == 1, "%s: altered message accepted", key_file);
  CHECK_EQ_INT(crypto_verify(pub, msg, sizeof msg, sig, 3), 1);
  free(sig);
  EVP_PKEY_free(key);
  X509_free(cert);
}

static void test_pki(void) {
  const char *dir = harness_tmpdir();
  const char *ca = "-days 30 -subj '/CN=fedlora test CA' -addext basicConstraints=critical,CA:TRUE "
                   "-addext keyUsage=critical,keyCertSign";
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
                            "-out ca.pem %s", ca);
  run(dir, cmd);
  /* An impostor CA with the same subject name: only the signature can tell the two apart. */
  snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key "
                            "-out other.pem %s", ca);
  run(dir, cmd);
  const struct {
    const char *name, *keygen;
  } sites[] = {
      {"ecdsa", "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ecdsa.key"},
      {"rsa", "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key"},
      {"ed25519", "openssl genpkey -algorithm ED25519 -out ed25519.key"},
  };
  for (int i = 0; i < 3; i++) {
    const char *s = sites[i].name;
    run(dir, sites[i].keygen);
    snprintf(cmd, sizeof cmd, "openssl req -new -key %s.key -subj '/O=Hospital/CN=site-%s' -out %s.csr", s, s, s);
    run(dir, cmd);
    snprintf(cmd, sizeof cmd,
             "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 7 -out %s.pem", s, s);
    run(dir, cmd);
    char key_file[64], cert_file[64], want_cn[64], cn[64] = "";
    snprintf(key_file, sizeof key_file, "%s.key", s);
    snprintf(cert_file, sizeof cert_file, "%s.pem", s);
    snprintf(want_cn, sizeof want_cn, "site-%s", s);
    check_sign_verify(dir, key_file, cert_file);

    X509 *cert = crypto_cert_load(path_in(dir, cert_file));
    CHECK(cert != NULL);
    if (!cert) continue;
    CHECK_EQ_INT(crypto_cert_verify(cert, path_in(dir, "ca.pem"), cn, sizeof cn), 0);
    CHECK_MSG(strcmp(cn, want_cn) == 0, "CN '%s', want '%s'", cn, want_cn);
    CHECK_EQ_INT(crypto_cert_verify(cert, path_in(dir, "other.pem"), cn, sizeof cn), 1);
    char tiny[4];
    CHECK_EQ_INT(crypto_cert_verify(cert, path_in(dir, "ca.pem"), tiny, sizeof tiny), -1);
    X509_free(cert);
  }

  /* The same certificate parsed from memory, as it would arrive in a message. */
  FILE *f = fopen(path_in(dir, "ecdsa.pem"), "r");
  char pem[4096];
  size_t n = f ? fread(pem, 1, sizeof pem, f) : 0;
  if (f) fclose(f);
  X509 *cert = crypto_cert_parse(pem, n);
  char cn[64] = "";
  CHECK(cert && crypto_cert_verify(cert, path_in(dir, "ca.pem"), cn, sizeof cn) == 0);
  CHECK_STR_CONTAINS(cn, "site-ecdsa");
  X509_free(cert);
  CHECK(crypto_cert_parse("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 58) == NULL);
  /* A self-signed leaf is not vouched for by the CA. */
  cert = crypto_cert_load(path_in(dir, "other.pem"));
  CHECK(cert && crypto_cert_verify(cert, path_in(dir, "ca.pem"), cn, sizeof cn) == 1);
  X509_free(cert);
  CHECK(crypto_private_key_load(path_in(dir, "missing.key")) == NULL);

  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK_EQ_INT(system(cmd), 0);
}

int main(void) {
  test_x25519();
  test_hkdf();
  test_chacha20();
  test_aead();
  test_pki();
  return harness_finish();
}
