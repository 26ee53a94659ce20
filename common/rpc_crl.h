/* Internal to the RPC layer (rpc_server.c): certificate revocation lists for client certificates.
 *
 * gRPC core (1.51) checks CRLs only through its TLS credentials' crl_directory: an OpenSSL hashed
 * directory whose files are named <issuer name hash>.r<n>. OpenSSL reads such a file the first time a
 * handshake needs that issuer's CRL, and afterwards only files with a higher suffix. So the configured
 * file is linked into a private directory under that name, and a reload links it again under the
 * next suffix: the following handshakes load it and use the newest CRL of each CA. Nothing more is
 * needed to pick up a reissued CRL without restarting.
 *
 * The handshake is the only place gRPC checks, and an HTTP/2 connection outlives a reload: a site
 * revoked while connected would go on calling. So the CRLs in force are also kept parsed here, and
 * the server checks the peer's certificate against them on every call. */
#ifndef FEDLORA_RPC_CRL_H
#define FEDLORA_RPC_CRL_H

#include <openssl/x509.h>
#include <stddef.h>

typedef struct {
  char *file;    /* absolute path of the CRL file */
  char *ca_pem;  /* the client CA bundle its CRLs must be signed by */
  STACK_OF(X509_CRL) *crls; /* the CRLs in force, parsed */
  char dir[64];  /* the private hashed directory handed to gRPC */
  int next;      /* suffix the next links get */
} rpc_crl;

/* Checks the file (PEM CRLs, each signed by a CA of ca_pem, current) and makes the directory.
 * 0, or -1 with a message naming the file. */
int rpc_crl_open(rpc_crl *crl, const char *crl_file, const char *ca_pem, char *err, size_t errlen);
/* Checks the file again, against the CA bundle ca_pem (which may be new too), and links it under
 * the next suffix; on failure the CRLs and CAs in use stay. */
int rpc_crl_reload(rpc_crl *crl, const char *ca_pem, char *err, size_t errlen);
/* 1 if a CRL in force from the certificate's issuer lists it. */
int rpc_crl_revoked(const rpc_crl *crl, X509 *cert);
/* Removes the directory. */
void rpc_crl_close(rpc_crl *crl);

#endif
