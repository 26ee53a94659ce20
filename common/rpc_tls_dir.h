/* Internal to the RPC layer (rpc_server.c): the server's key, certificate and client CA as gRPC
 * reads them, so they can be replaced while the server runs.
 *
 * gRPC core 1.51 cannot push new material into the static-data certificate provider, and its
 * older SSL credentials, which can (a certificate-config fetcher asked at every handshake), have
 * no CRL checking. So the server uses the TLS credentials with gRPC's file-watcher provider, but
 * pointed at a private directory rather than at the configured files: those change only when the
 * operator sends SIGHUP and the new material has been checked, never when an editor half-writes a
 * file. The watcher rereads the directory every RPC_TLS_REFRESH_S seconds; new handshakes use
 * what it read, connections already up keep theirs.
 *
 * The watcher reads the key and the certificate as two files, one after the other, so renaming
 * two files could let it pair a new key with an old certificate. Both therefore live in one file
 * (identity.pem: the key, then the chain; OpenSSL's PEM readers skip blocks of the other type),
 * given to the watcher as both paths. A replacement landing between its two reads of that file is
 * caught by the watcher's own check that the file's modification time did not change while it
 * read, which is why every replacement gets a modification time later (in whole seconds) than the
 * one before. */
#ifndef FEDLORA_RPC_TLS_DIR_H
#define FEDLORA_RPC_TLS_DIR_H

#include <stddef.h>
#include <time.h>

enum { RPC_TLS_REFRESH_S = 1 };

typedef struct {
  char dir[64];
  char identity[96]; /* dir/identity.pem: the private key, then the certificate chain */
  char ca[96];       /* dir/ca.pem: the client CA bundle */
  time_t mtime;      /* given to the last identity.pem written */
} rpc_tls_dir;

/* Makes the directory and writes the first material. 0, or -1 with a message. */
int rpc_tls_dir_open(rpc_tls_dir *d, const char *cert_pem, const char *key_pem, const char *ca_pem, char *err,
                     size_t errlen);
/* Replaces the material: each file is written beside its name, synced and renamed over it. */
int rpc_tls_dir_write(rpc_tls_dir *d, const char *cert_pem, const char *key_pem, const char *ca_pem, char *err,
                      size_t errlen);
/* Removes the directory. */
void rpc_tls_dir_close(rpc_tls_dir *d);

#endif
