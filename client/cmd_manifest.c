/* `fedlora manifest verify FILE --ca CA --server-name NAME`: checks a round manifest a site kept
 * (state_dir/manifests/) as the site did before training, for a security officer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "manifest.h"
#include "payload.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedlora manifest verify FILE --ca CA --server-name NAME\n"
          "  Checks a round manifest (a site keeps one per round in state_dir/manifests/): its certificate\n"
          "  chains to CA (the site's [client] ca), is a TLS server certificate naming NAME (the\n"
          "  aggregator's host or [client] server_name), and its signature covers the body. Prints what\n"
          "  the aggregator vouched for: run, round, attempt, base round, plan and global adapter digests.\n"
          "  Exit status: 0 valid, 1 refused (forged, altered, wrong signer), 2 cannot check or bad usage.\n");
}

static char *read_doc(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *doc = malloc(MANIFEST_MAX_BYTES + 2);
  size_t n = doc ? fread(doc, 1, MANIFEST_MAX_BYTES + 1, f) : 0;
  fclose(f);
  if (!doc || n == 0 || n > MANIFEST_MAX_BYTES) {
    free(doc);
    return NULL;
  }
  doc[n] = '\0';
  return doc;
}

int cmd_manifest(int argc, char **argv) {
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    usage(stdout);
    return 0;
  }
  const char *file = NULL, *ca = NULL, *name = NULL;
  int bad = argc < 2 || strcmp(argv[1], "verify") != 0;
  for (int i = 2; i < argc && !bad; i++) {
    if (!strcmp(argv[i], "--ca") && i + 1 < argc) ca = argv[++i];
    else if (!strcmp(argv[i], "--server-name") && i + 1 < argc) name = argv[++i];
    else if (argv[i][0] != '-' && !file) file = argv[i];
    else bad = 1;
  }
  if (bad || !file || !ca || !name) {
    usage(stderr);
    return 2;
  }
  char *doc = read_doc(file);
  if (!doc) {
    fprintf(stderr, "fedlora manifest: cannot read %s (missing, empty or over %d bytes)\n", file, MANIFEST_MAX_BYTES);
    return 2;
  }
  manifest m;
  char err[1024], plan[65], adapter[65];
  int rc = manifest_verify(doc, ca, name, &m, err, sizeof err);
  free(doc);
  if (rc != 0) {
    if (rc > 0) printf("REFUSED: %s\n", err);
    else fprintf(stderr, "fedlora manifest: %s\n", err);
    return rc > 0 ? 1 : 2;
  }
  sha256_hex(m.plan_sha, plan);
  sha256_hex(m.adapter_sha, adapter);
  printf("OK: signed by the aggregator certificate for %s\n"
         "run_id %s\nround %u\nattempt %u\nbase_round %u\nplan_sha256 %s\nadapter_sha256 %s\n",
         name, m.run_id, m.round, m.attempt, m.base_round, plan, adapter);
  return 0;
}
