/* The site's side of a federated run: join, wait for a round, download the global adapter, train on
 * local data, submit the update; again until the run is over. Local data never leaves: only the
 * adapter (the plan's tensors) is sent.
 *
 * Restarts: every update is written to state_dir before it is sent, keyed by round and the digest
 * of the global adapter it started from, so a site restarted mid-round resubmits the very same
 * bytes (which the aggregator acknowledges as a duplicate) instead of training again. */
#ifndef FEDLORA_SITE_H
#define FEDLORA_SITE_H

#include "site_config.h"

/* Exit codes of fedlora-client. */
enum {
  SITE_EXIT_DONE = 0,       /* the run finished; the final adapter is in state_dir/final */
  SITE_EXIT_USAGE = 2,      /* bad command line or configuration */
  SITE_EXIT_REFUSED = 3,    /* the aggregator refused this site (TLS, allowed_clients, base model) */
  SITE_EXIT_FAILED = 4,     /* local failure: model, data, disk */
  SITE_EXIT_STOPPED = 5,    /* SIGINT/SIGTERM */
};

/* Runs until the run finishes, the site is refused, or *stop becomes non-zero. When *reload
 * becomes non-zero (SIGHUP) the certificate files are reread before the next call (site_tls.h). */
int site_run(const site_config *cfg, volatile int *stop, volatile int *reload);

#endif
