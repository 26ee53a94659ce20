/* Certificates as the people running a site or an aggregator need to see them: whom one names, its
 * serial, when it expires, and the warning two weeks ahead. And the checks a new key, certificate
 * and CA must pass before they are put in use (at start and on SIGHUP), so a mistake is reported
 * with the file and the reason while the material in force stays. Used by both binaries. */
#ifndef FEDLORA_CERT_INFO_H
#define FEDLORA_CERT_INFO_H

#include <stddef.h>
#include <time.h>

enum { CERT_EXPIRY_WARN_DAYS = 14 };

typedef struct {
  char subject[256];   /* one line: "/O=fedlora dev/CN=alpha" */
  char serial[72];     /* hex, as `openssl x509 -serial` prints it */
  time_t not_before;   /* unix seconds */
  time_t not_after;
} cert_info;

typedef enum { CERT_FOR_SERVER, CERT_FOR_CLIENT } cert_role;

/* The certificates of a PEM text in order (a chain, or a CA bundle), at most cap of them; returns
 * how many were read (0: none). */
int cert_info_list(const char *pem, cert_info *out, int cap);
/* Seconds from now until notAfter; negative once expired. */
double cert_info_seconds_left(const cert_info *ci, time_t now);
/* Within CERT_EXPIRY_WARN_DAYS of notAfter (or past it), logs a warning
 * "certificate WHAT (subject, serial S, FILE) expires in N days at DATE" and returns 1; else 0. */
int cert_info_warn_expiry(const cert_info *ci, const char *what, const char *file, time_t now);

/* What must hold before a key and certificate go live: both readable, the key belongs to the
 * certificate, the certificate is valid now, and, when its issuer is one of the CAs in ca_pem, it
 * chains to that CA and is meant for role (extended key usage serverAuth or clientAuth). The
 * issuer may be absent from ca_pem: the aggregator's client CA and a site's CA need not be the CA
 * that issued the holder's own certificate. ca_pem must hold at least one certificate. On success
 * fills *leaf (may be NULL); else -1 with the file and the reason in err. */
int cert_check_identity(const char *cert_pem, const char *cert_file, const char *key_pem, const char *key_file,
                        const char *ca_pem, const char *ca_file, cert_role role, cert_info *leaf, char *err,
                        size_t errlen);
/* The same for files: reads them, checks them, and on success fills *leaf and lists the CA file's
 * certificates in cas (at most cap; their number in *n_cas). */
int cert_check_files(const char *cert_file, const char *key_file, const char *ca_file, cert_role role,
                     cert_info *leaf, cert_info *cas, int cap, int *n_cas, char *err, size_t errlen);

#endif
