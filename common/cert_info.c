/* Certificate inspection and the checks before new TLS material goes live; see cert_info.h. */
#include "cert_info.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rpc_wire.h"

static time_t asn1_time_unix(const ASN1_TIME *t) {
  struct tm tm;
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return timegm(&tm);
}

static void cert_info_fill(cert_info *ci, X509 *x) {
  memset(ci, 0, sizeof *ci);
  X509_NAME_oneline(X509_get_subject_name(x), ci->subject, sizeof ci->subject);
  /* The same spelling as `openssl x509 -serial`, so a person can compare the two. */
  BIO *b = BIO_new(BIO_s_mem());
  i2a_ASN1_INTEGER(b, X509_get0_serialNumber(x));
  int n = BIO_read(b, ci->serial, sizeof ci->serial - 1);
  ci->serial[n > 0 ? n : 0] = '\0';
  BIO_free(b);
  ci->not_before = asn1_time_unix(X509_get0_notBefore(x));
  ci->not_after = asn1_time_unix(X509_get0_notAfter(x));
}

int cert_info_list(const char *pem, cert_info *out, int cap) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  int n = 0;
  X509 *x;
  while (n < cap && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
    cert_info_fill(&out[n++], x);
    X509_free(x);
  }
  ERR_clear_error(); /* the end of the text reads as "no start line" */
  BIO_free(b);
  return n;
}

double cert_info_seconds_left(const cert_info *ci, time_t now) { return difftime(ci->not_after, now); }

static void format_utc(time_t t, char *out, size_t cap) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

int cert_info_warn_expiry(const cert_info *ci, const char *what, const char *file, time_t now) {
  double left = cert_info_seconds_left(ci, now);
  if (left > CERT_EXPIRY_WARN_DAYS * 86400.0) return 0;
  char when[64];
  format_utc(ci->not_after, when, sizeof when);
  if (left <= 0)
    log_warn("certificate %s (%s, serial %s, %s) has expired at %s", what, ci->subject, ci->serial, file, when);
  else
    log_warn("certificate %s (%s, serial %s, %s) expires in %.1f days at %s", what, ci->subject, ci->serial, file,
             left / 86400.0, when);
  return 1;
}

/* ------------------------------------------------------------------ checks */

static STACK_OF(X509) *pem_certificates(const char *pem) {
  STACK_OF(X509) *sk = sk_X509_new_null();
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *x;
  while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) sk_X509_push(sk, x);
  ERR_clear_error();
  BIO_free(b);
  return sk;
}

/* Is any certificate of chain issued by a CA of cas? Then the chain can be checked here. */
static int issuer_known(STACK_OF(X509) *chain, STACK_OF(X509) *cas) {
  for (int i = 0; i < sk_X509_num(chain); i++)
    for (int j = 0; j < sk_X509_num(cas); j++)
      if (X509_NAME_cmp(X509_get_issuer_name(sk_X509_value(chain, i)), X509_get_subject_name(sk_X509_value(cas, j))) ==
          0)
        return 1;
  return 0;
}

static int chain_verify(STACK_OF(X509) *chain, STACK_OF(X509) *cas, cert_role role, const char *cert_file,
                        const char *ca_file, char *err, size_t errlen) {
  X509_STORE *store = X509_STORE_new();
  for (int j = 0; j < sk_X509_num(cas); j++) X509_STORE_add_cert(store, sk_X509_value(cas, j));
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  int rc = -1;
  if (X509_STORE_CTX_init(ctx, store, sk_X509_value(chain, 0), chain) == 1) {
    X509_STORE_CTX_set_purpose(ctx, role == CERT_FOR_SERVER ? X509_PURPOSE_SSL_SERVER : X509_PURPOSE_SSL_CLIENT);
    if (X509_verify_cert(ctx) == 1)
      rc = 0;
    else
      snprintf(err, errlen, "the certificate %s does not check out against the CA file %s as a %s certificate: %s",
               cert_file, ca_file, role == CERT_FOR_SERVER ? "server (serverAuth)" : "client (clientAuth)",
               X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
  } else {
    snprintf(err, errlen, "cannot check the certificate %s against %s", cert_file, ca_file);
  }
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  ERR_clear_error();
  return rc;
}

int cert_check_identity(const char *cert_pem, const char *cert_file, const char *key_pem, const char *key_file,
                        const char *ca_pem, const char *ca_file, cert_role role, cert_info *leaf, char *err,
                        size_t errlen) {
  STACK_OF(X509) *chain = pem_certificates(cert_pem), *cas = pem_certificates(ca_pem);
  BIO *kb = BIO_new_mem_buf(key_pem, -1);
  EVP_PKEY *key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
  time_t now = time(NULL);
  cert_info ci;
  char after[64], before[64];
  int rc = -1;
  if (sk_X509_num(chain) == 0) {
    snprintf(err, errlen, "%s holds no readable PEM certificate", cert_file);
    goto done;
  }
  cert_info_fill(&ci, sk_X509_value(chain, 0));
  format_utc(ci.not_after, after, sizeof after);
  format_utc(ci.not_before, before, sizeof before);
  if (!key)
    snprintf(err, errlen, "%s is not a readable, unencrypted PEM private key", key_file);
  else if (X509_check_private_key(sk_X509_value(chain, 0), key) != 1)
    snprintf(err, errlen, "the private key %s does not belong to the certificate %s (%s, serial %s)", key_file,
             cert_file, ci.subject, ci.serial);
  else if (sk_X509_num(cas) == 0)
    snprintf(err, errlen, "the CA file %s holds no readable PEM certificate", ca_file);
  else if (ci.not_after <= now)
    snprintf(err, errlen, "the certificate %s (%s, serial %s) expired at %s", cert_file, ci.subject, ci.serial, after);
  else if (ci.not_before > now)
    snprintf(err, errlen, "the certificate %s (%s, serial %s) is not valid before %s", cert_file, ci.subject,
             ci.serial, before);
  else if (issuer_known(chain, cas))
    rc = chain_verify(chain, cas, role, cert_file, ca_file, err, errlen);
  else
    rc = 0;
  if (rc == 0 && leaf) *leaf = ci;
done:
  ERR_clear_error();
  EVP_PKEY_free(key);
  BIO_free(kb);
  sk_X509_pop_free(chain, X509_free);
  sk_X509_pop_free(cas, X509_free);
  return rc;
}

int cert_check_files(const char *cert_file, const char *key_file, const char *ca_file, cert_role role,
                     cert_info *leaf, cert_info *cas, int cap, int *n_cas, char *err, size_t errlen) {
  char *cert = rpc_read_pem(cert_file, "certificate", err, errlen);
  char *key = cert ? rpc_read_pem(key_file, "private key", err, errlen) : NULL;
  char *ca = key ? rpc_read_pem(ca_file, "CA file", err, errlen) : NULL;
  int rc = ca ? cert_check_identity(cert, cert_file, key, key_file, ca, ca_file, role, leaf, err, errlen) : -1;
  if (rc == 0) *n_cas = cert_info_list(ca, cas, cap);
  if (key) {
    memset(key, 0, strlen(key));
    free(key);
  }
  free(cert);
  free(ca);
  return rc;
}
