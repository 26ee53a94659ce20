/* Client-certificate revocation for the RPC server; see rpc_crl.h. */
#include "rpc_crl.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpc_wire.h"

/* Signed by one of cas, and current. */
static int crl_check_one(X509_CRL *crl, STACK_OF(X509) *cas, const char *path, char *err, size_t errlen) {
  char issuer[256];
  X509_NAME_oneline(X509_CRL_get_issuer(crl), issuer, sizeof issuer);
  int signed_by_ca = 0;
  for (int i = 0; i < sk_X509_num(cas) && !signed_by_ca; i++) {
    X509 *ca = sk_X509_value(cas, i);
    signed_by_ca = X509_NAME_cmp(X509_get_subject_name(ca), X509_CRL_get_issuer(crl)) == 0 &&
                   X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1;
  }
  if (!signed_by_ca) {
    snprintf(err, errlen,
             "the CRL in %s issued by %s is not signed by any CA in the client CA file, so it could never "
             "revoke a client certificate",
             path, issuer);
    return -1;
  }
  const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
  if (next && X509_cmp_current_time(next) <= 0) {
    char when[64] = "?";
    BIO *b = BIO_new(BIO_s_mem());
    ASN1_TIME_print(b, next);
    int n = BIO_read(b, when, sizeof when - 1);
    when[n > 0 ? n : 1] = '\0';
    BIO_free(b);
    snprintf(err, errlen,
             "the CRL in %s issued by %s expired (next update was due %s): every client of that CA would be "
             "refused; issue a fresh CRL",
             path, issuer, when);
    return -1;
  }
  if (X509_cmp_current_time(X509_CRL_get0_lastUpdate(crl)) > 0) {
    snprintf(err, errlen, "the CRL in %s issued by %s is dated in the future; check the clocks", path, issuer);
    return -1;
  }
  return 0;
}

enum { MAX_ISSUERS = 64 };

/* Checks every CRL of the file against the CAs of ca_pem, then links it under
 * <issuer hash>.r<suffix> once per issuer and keeps the CRLs in *kept: all or nothing, so a bad
 * reload leaves the CRLs in use alone. */
static int crl_link(rpc_crl *crl, const char *ca_pem, int suffix, STACK_OF(X509_CRL) **kept, char *err,
                    size_t errlen) {
  char *pem = rpc_read_pem(crl->file, "CRL file", err, errlen);
  if (!pem) return -1;
  STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
  BIO *cb = BIO_new_mem_buf(ca_pem, -1), *lb = BIO_new_mem_buf(pem, -1);
  STACK_OF(X509) *cas = sk_X509_new_null();
  X509 *ca;
  while ((ca = PEM_read_bio_X509(cb, NULL, NULL, NULL))) sk_X509_push(cas, ca);
  unsigned long hashes[MAX_ISSUERS];
  int rc = 0, n = 0;
  X509_CRL *c;
  while (rc == 0 && (c = PEM_read_bio_X509_CRL(lb, NULL, NULL, NULL))) {
    rc = crl_check_one(c, cas, crl->file, err, errlen);
    if (rc == 0 && n == MAX_ISSUERS) {
      snprintf(err, errlen, "the CRL file %s holds more than %d CRLs", crl->file, MAX_ISSUERS);
      rc = -1;
    }
    if (rc == 0) hashes[n++] = X509_NAME_hash_ex(X509_CRL_get_issuer(c), NULL, NULL, NULL);
    sk_X509_CRL_push(crls, c);
  }
  if (rc == 0 && n == 0) {
    snprintf(err, errlen, "the CRL file %s holds no CRL (expected PEM \"-----BEGIN X509 CRL-----\")", crl->file);
    rc = -1;
  }
  for (int i = 0; rc == 0 && i < n; i++) {
    char link[128];
    snprintf(link, sizeof link, "%s/%08lx.r%d", crl->dir, hashes[i], suffix);
    if (symlink(crl->file, link) != 0 && errno != EEXIST) {
      snprintf(err, errlen, "cannot link the CRL file %s into %s: %s", crl->file, crl->dir, strerror(errno));
      rc = -1;
    }
  }
  ERR_clear_error();
  if (rc == 0) {
    *kept = crls;
    crls = NULL;
  }
  sk_X509_CRL_pop_free(crls, X509_CRL_free);
  sk_X509_pop_free(cas, X509_free);
  BIO_free(cb);
  BIO_free(lb);
  free(pem);
  return rc;
}

int rpc_crl_open(rpc_crl *crl, const char *crl_file, const char *ca_pem, char *err, size_t errlen) {
  memset(crl, 0, sizeof *crl);
  char *abs = realpath(crl_file, NULL);
  if (!abs) {
    snprintf(err, errlen, "cannot read the CRL file %s: %s", crl_file, strerror(errno));
    return -1;
  }
  crl->file = abs;
  crl->ca_pem = strdup(ca_pem);
  const char *tmp = getenv("TMPDIR");
  snprintf(crl->dir, sizeof crl->dir, "%s/fedlora-crl-XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
  if (!crl->ca_pem || !mkdtemp(crl->dir)) {
    snprintf(err, errlen, "cannot make a directory for the CRL in %s: %s", crl->dir, strerror(errno));
    crl->dir[0] = '\0';
    rpc_crl_close(crl);
    return -1;
  }
  if (crl_link(crl, ca_pem, crl->next, &crl->crls, err, errlen) != 0) {
    rpc_crl_close(crl);
    return -1;
  }
  crl->next++;
  return 0;
}

int rpc_crl_reload(rpc_crl *crl, const char *ca_pem, char *err, size_t errlen) {
  STACK_OF(X509_CRL) *crls = NULL;
  char *ca = strdup(ca_pem);
  if (!ca || crl_link(crl, ca_pem, crl->next, &crls, err, errlen) != 0) {
    if (!ca) snprintf(err, errlen, "out of memory reloading %s", crl->file);
    free(ca);
    return -1;
  }
  sk_X509_CRL_pop_free(crl->crls, X509_CRL_free);
  crl->crls = crls;
  free(crl->ca_pem);
  crl->ca_pem = ca;
  crl->next++;
  return 0;
}

int rpc_crl_revoked(const rpc_crl *crl, X509 *cert) {
  X509_REVOKED *entry;
  for (int i = 0; i < sk_X509_CRL_num(crl->crls); i++) {
    X509_CRL *c = sk_X509_CRL_value(crl->crls, i);
    if (X509_NAME_cmp(X509_CRL_get_issuer(c), X509_get_issuer_name(cert)) == 0 &&
        X509_CRL_get0_by_cert(c, &entry, cert) == 1)
      return 1;
  }
  return 0;
}

void rpc_crl_close(rpc_crl *crl) {
  if (crl->dir[0]) {
    DIR *d = opendir(crl->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char path[PATH_MAX];
      snprintf(path, sizeof path, "%s/%s", crl->dir, e->d_name);
      unlink(path);
    }
    if (d) closedir(d);
    rmdir(crl->dir);
  }
  sk_X509_CRL_pop_free(crl->crls, X509_CRL_free);
  free(crl->file);
  free(crl->ca_pem);
  memset(crl, 0, sizeof *crl);
}
