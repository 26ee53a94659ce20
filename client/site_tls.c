#include "site_tls.h"

#include <stdio.h>

#include "log.h"

enum { WARN_EVERY_S = 3600 };

static void expiry_warn(site_tls *t, time_t now) {
  cert_info_warn_expiry(&t->leaf, "of this site", t->cfg->client.cert, now);
  for (int i = 0; i < t->n_cas; i++) cert_info_warn_expiry(&t->cas[i], "of the aggregator's CA", t->cfg->client.ca, now);
  t->next_warn = now + WARN_EVERY_S;
}

/* Checks the files and builds a client on them; on success they are the ones in use. */
static rpc_client *client_build(site_tls *t, char *err, size_t errlen) {
  const site_config *cfg = t->cfg;
  cert_info leaf, cas[SITE_TLS_MAX_CAS];
  int n = 0;
  if (cert_check_files(cfg->client.cert, cfg->client.key, cfg->client.ca, CERT_FOR_CLIENT, &leaf, cas,
                       SITE_TLS_MAX_CAS, &n, err, errlen) != 0)
    return NULL;
  rpc_client_config rc_cfg = {.target = cfg->client.server, .ca_file = cfg->client.ca, .cert_file = cfg->client.cert,
                              .key_file = cfg->client.key, .server_name = cfg->client.server_name};
  rpc_client *rpc = rpc_client_create(&rc_cfg, err, errlen);
  if (!rpc) return NULL;
  t->leaf = leaf;
  for (int i = 0; i < n; i++) t->cas[i] = cas[i];
  t->n_cas = n;
  expiry_warn(t, time(NULL));
  return rpc;
}

rpc_client *site_tls_connect(site_tls *t, char *err, size_t errlen) {
  rpc_client *rpc = client_build(t, err, errlen);
  if (rpc) log_info("client certificate %s (%s, serial %s)", t->cfg->client.cert, t->leaf.subject, t->leaf.serial);
  return rpc;
}

void site_tls_tick(site_tls *t, rpc_client **rpc) {
  const site_config *cfg = t->cfg;
  if (t->reload && *t->reload) {
    *t->reload = 0;
    char err[1024];
    rpc_client *fresh = client_build(t, err, sizeof err);
    if (!fresh) {
      log_error("SIGHUP: certificate not reloaded, the one in use stays: %s", err);
    } else {
      /* Called between calls, so nothing runs on the old channel any more. */
      rpc_client_free(*rpc);
      *rpc = fresh;
      log_info("SIGHUP: certificate %s (%s, serial %s) with key %s and CA %s reloaded; the next call connects with it",
               cfg->client.cert, t->leaf.subject, t->leaf.serial, cfg->client.key, cfg->client.ca);
    }
  }
  time_t now = time(NULL);
  if (now >= t->next_warn) expiry_warn(t, now);
}
