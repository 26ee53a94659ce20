#include "agg_manifest.h"

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "payload.h"
#include "rpc_wire.h"

static EVP_PKEY *key_parse(const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  return key;
}

/* Sites check the signer's certificate as they check the TLS server's; say so at start rather
 * than have every site refuse every round. */
static void warn_unusable(const char *cert_pem, const char *cert_path) {
  BIO *b = BIO_new_mem_buf(cert_pem, -1);
  X509 *cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  if (cert && X509_check_purpose(cert, X509_PURPOSE_SSL_SERVER, 0) != 1)
    log_warn("round manifests are signed with %s, which is not a TLS server certificate: sites will refuse them",
             cert_path);
  X509_free(cert);
  BIO_free(b);
}

int agg_manifest_load_signer(agg_manifest *m, const agg_config *cfg, char *err, size_t errlen) {
  const char *cert_path = cfg->server.manifest_cert ? cfg->server.manifest_cert : cfg->server.cert;
  const char *key_path = cfg->server.manifest_key ? cfg->server.manifest_key : cfg->server.key;
  char *cert_pem = rpc_read_pem(cert_path, "manifest signing certificate", err, errlen);
  char *key_pem = cert_pem ? rpc_read_pem(key_path, "manifest signing key", err, errlen) : NULL;
  EVP_PKEY *key = NULL;
  if (key_pem && rpc_check_key_pair(cert_pem, key_pem, cert_path, err, errlen) != 0) {
    char why[512];
    snprintf(why, sizeof why, "%s", err);
    snprintf(err, errlen, "manifest signer (key %s): %s", key_path, why);
  } else if (key_pem && !(key = key_parse(key_pem))) {
    snprintf(err, errlen, "manifest signer: cannot read the key %s", key_path);
  }
  if (key_pem) {
    OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
  }
  if (!key) {
    free(cert_pem);
    return -1;
  }
  warn_unusable(cert_pem, cert_path);
  agg_manifest_free(m);
  m->key = key;
  m->cert_pem = cert_pem;
  return 0;
}

const char *agg_manifest_get(agg_manifest *m, const manifest *want, int *signed_now, uint8_t sha[32], char *err,
                             size_t errlen) {
  *signed_now = 0;
  /* Callers build want from a zeroed manifest, so the bytes after run_id's NUL compare too. */
  if (m->doc && memcmp(&m->signed_for, want, sizeof *want) == 0) return m->doc;
  if (!m->key) {
    snprintf(err, errlen, "no manifest signing key is loaded");
    return NULL;
  }
  char *doc = manifest_sign(want, m->key, m->cert_pem, err, errlen);
  if (!doc) return NULL;
  free(m->doc);
  m->doc = doc;
  m->signed_for = *want;
  *signed_now = 1;
  sha256_bytes(doc, strlen(doc), sha);
  return doc;
}

void agg_manifest_free(agg_manifest *m) {
  EVP_PKEY_free(m->key);
  free(m->cert_pem);
  free(m->doc);
  m->key = NULL;
  m->cert_pem = m->doc = NULL;
}
