/* The aggregator's side of round manifests (common/manifest.h): the signing key and certificate,
 * and the open attempt's signed document. A manifest is signed the first time a site is handed a
 * TRAIN task of an attempt and reused for every other task of that attempt, so a long run signs
 * once per (round, attempt), not once per poll. */
#ifndef FEDLORA_AGG_MANIFEST_H
#define FEDLORA_AGG_MANIFEST_H

#include <stddef.h>

#include <openssl/evp.h>

#include "agg_config.h"
#include "manifest.h"

typedef struct {
  EVP_PKEY *key;        /* [server] manifest_key, else key */
  char *cert_pem;       /* [server] manifest_cert, else cert: travels in every manifest */
  char *doc;            /* the signed document of `signed_for`; NULL before the first TRAIN task */
  manifest signed_for;
} agg_manifest;

/* (Re)loads the signer from the configuration: the key must belong to the certificate. On success
 * the previous signer is replaced and the cached document dropped, so the next task is signed with
 * the key now current (call it again after certificates are reloaded, with the federation's lock
 * held). On failure nothing changes: 0, or -1 with the reason in err. */
int agg_manifest_load_signer(agg_manifest *m, const agg_config *cfg, char *err, size_t errlen);
/* The signed manifest vouching for exactly `want`: the cached one, or a new one signed now (then
 * *signed_now = 1 and sha gets its SHA-256, for the audit log). NULL with the reason in err. */
const char *agg_manifest_get(agg_manifest *m, const manifest *want, int *signed_now, uint8_t sha[32], char *err,
                             size_t errlen);
void agg_manifest_free(agg_manifest *m);

#endif
