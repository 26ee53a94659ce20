/* A site's certificate in operation: [client] cert, key and ca are checked before they are used
 * (cert_check_files: the key belongs to the certificate, which is valid now and, when the CA file
 * holds its issuer, chains to it as a clientAuth certificate); SIGHUP rereads them and, once they
 * check out, the next call goes over a new connection that presents them; the certificate and
 * the CAs are warned about CERT_EXPIRY_WARN_DAYS before they expire, at start, after each reload
 * and every hour. */
#ifndef FEDLORA_SITE_TLS_H
#define FEDLORA_SITE_TLS_H

#include <stddef.h>
#include <time.h>

#include "cert_info.h"
#include "rpc.h"
#include "site_config.h"

enum { SITE_TLS_MAX_CAS = 16 };

typedef struct {
  const site_config *cfg;
  volatile int *reload;            /* set by SIGHUP; NULL: never */
  time_t next_warn;                /* of the hourly expiry warnings */
  cert_info leaf;                  /* the certificate in use */
  cert_info cas[SITE_TLS_MAX_CAS]; /* (n_cas) the CA file's certificates in use */
  int n_cas;
} site_tls;

/* The first connection's client; NULL with the file and the reason in err. */
rpc_client *site_tls_connect(site_tls *t, char *err, size_t errlen);
/* Between two calls: after a SIGHUP, replaces *rpc with a client using the files as they are now,
 * or logs why they do not check out and keeps *rpc. Every hour, the expiry warnings. */
void site_tls_tick(site_tls *t, rpc_client **rpc);

#endif
