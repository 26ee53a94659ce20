/* Signed round manifests: what the aggregator vouches for in one round — the run, the round and
 * attempt, the digest of the run plan and of the global adapter the sites start from — signed with
 * its TLS key, so a site can check before training that the task came from the aggregator its CA
 * certified and keep the proof beside its audit log.
 *
 * The signed document is JSON: {"body":"<canonical JSON of the manifest>","signature":"<hex>",
 * "cert_pem":"<the aggregator's certificate>"}. The signature covers the body's exact bytes, so no
 * re-serialisation is needed to check it. A site accepts a manifest only if the certificate chains
 * to its [client] ca, is a TLS server certificate (serverAuth) for the name it expects the
 * aggregator to have, and the signature over the body verifies with that certificate's key. */
#ifndef FEDLORA_MANIFEST_H
#define FEDLORA_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "fedlora.pb-c.h"

/* A site reads no larger manifest: the document is a few hundred bytes and a certificate. */
#define MANIFEST_MAX_BYTES (64 * 1024)

typedef struct {
  char run_id[64];
  uint32_t round, attempt;
  uint32_t base_round;       /* the committed round whose adapter the sites start from; equal to
                                round for the run's final adapter (a FINISHED task), which no
                                round starts from */
  uint8_t plan_sha[32];      /* SHA-256 of the run plan (manifest_plan_digest) */
  uint8_t adapter_sha[32];   /* SHA-256 of that adapter's payload bytes */
} manifest;

/* The signed document (malloc'd; free() it), or NULL with the reason in err. */
char *manifest_sign(const manifest *m, EVP_PKEY *key, const char *cert_pem, char *err, size_t errlen);
/* 0: valid, *out filled. 1: refused (forged, altered, wrong signer or name, not from the CA) with
 * the reason in err. -1: cannot check (malformed document, unreadable CA). server_name: the name
 * the aggregator's certificate must carry (DNS name or IP address). */
int manifest_verify(const char *doc, const char *ca_path, const char *server_name, manifest *out, char *err,
                    size_t errlen);
/* manifest_verify, then every field compared with what the site expects (want: the task's round,
 * attempt, base round and adapter digest, the run id and plan digest of its Join). A missing (NULL
 * or empty) or oversized document is refused, not skipped: there is no unsigned fallback. 0:
 * accepted, *got filled. 1: refused, err naming the field with the expected and the signed value.
 * -1: cannot check (err says why); a site refuses then too. */
int manifest_accept(const char *doc, const manifest *want, const char *ca_path, const char *server_name,
                    manifest *got, char *err, size_t errlen);
/* SHA-256 of the plan a site follows: the JoinResponse without the per-site `site` and without the
 * round policy (quorum, deadlines, rounds total, selection seed), which only the aggregator applies
 * and an operator may change across a restart (a lower quorum after a site is lost) without any
 * site training differently. Both sides pack the message with protobuf-c, which writes fields in
 * number order, so equal plans give equal bytes. 0, or -1 out of memory. */
int manifest_plan_digest(const Fedlora__V1__JoinResponse *plan, uint8_t out[32]);

#endif
