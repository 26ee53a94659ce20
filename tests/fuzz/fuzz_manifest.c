/* A round manifest as a site receives it in RoundTask (up to MANIFEST_MAX_BYTES from the network):
 * JSON parsing, hex decoding, the certificate in it, its chain to the CA and the signature check
 * (manifest_verify), then the comparison with a task (manifest_accept). The CA below is a fixed
 * development CA valid until 2126, so the seed in corpus/manifest (signed by a server certificate it
 * issued, for localhost) reaches the signature check and the field comparisons. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "manifest.h"

static const char ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBmzCCAUGgAwIBAgIUErO6/11hkX6NGFHq5o1/YBpNQZUwCgYIKoZIzj0EAwIw\n"
    "GjEYMBYGA1UEAwwPZmVkbG9yYSBmdXp6IENBMCAXDTI2MTEyODA0MDkzMVoYDzIx\n"
    "MjYxMTA0MDQwOTMxWjAaMRgwFgYDVQQDDA9mZWRsb3JhIGZ1enogQ0EwWTATBgcq\n"
    "hkjOPQIBBggqhkjOPQMBBwNCAAQ/og5Z7LdcwmsbFrRDdXfJtNUviNCoIoC36eT6\n"
    "7zYLGU5ytg/V/hOgs60Cfu1y1da3ITQLD9NiOt6BY7y02ZaRo2MwYTAdBgNVHQ4E\n"
    "FgQU4+1ZNRy/pRHCfQhpm43lZP4I1KwwHwYDVR0jBBgwFoAU4+1ZNRy/pRHCfQhp\n"
    "m43lZP4I1KwwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwCgYIKoZI\n"
    "zj0EAwIDSAAwRQIgWT2yOgczYfnMdY3BDzhpsF6ZGvFZqZ4ek+YNhi6/gigCIQCk\n"
    "7erx2L9xBbLMuVRnsy4RJzj07Xm/fcYTI25PWfn0/g==\n"
    "-----END CERTIFICATE-----\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *ca_path;
  if (!ca_path) ca_path = strdup(fuzz_write("ca.pem", (const uint8_t *)ca_pem, sizeof ca_pem - 1));
  if (size > MANIFEST_MAX_BYTES) return 0; /* the site refuses larger ones before parsing */
  char *doc = malloc(size + 1);
  if (!doc) return 0;
  memcpy(doc, data, size);
  doc[size] = 0;
  /* what the seed vouches for, so an unmutated seed is accepted */
  manifest want = {.run_id = "0123456789abcdef", .round = 3, .attempt = 1, .base_round = 2}, got;
  for (int i = 0; i < 32; i++) want.plan_sha[i] = (uint8_t)i, want.adapter_sha[i] = (uint8_t)(255 - i);
  char err[512];
  manifest_accept(doc, &want, ca_path, "localhost", &got, err, sizeof err);
  free(doc);
  return 0;
}
