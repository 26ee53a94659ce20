#include "agg_certs.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

enum { WARN_EVERY_S = 3600, GAUGE_EVERY_S = 60, MAX_CAS = 16 };

/* The client certificate a site presented last. */
typedef struct {
  char site[128];
  cert_info cert;
} site_cert;

struct agg_certs {
  const agg_config *cfg;
  agg_ops *ops;
  time_t next_warn, next_gauge; /* 0: at the next tick */
  pthread_mutex_t mu;           /* sites: the RPC dispatcher adds, the main loop reads */
  site_cert *sites;             /* (n_sites) */
  int n_sites, cap_sites;
};

agg_certs *agg_certs_build(const agg_config *cfg, agg_ops *ops) {
  agg_certs *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->cfg = cfg;
  c->ops = ops;
  pthread_mutex_init(&c->mu, NULL);
  return c;
}

void agg_certs_free(agg_certs *c) {
  if (!c) return;
  pthread_mutex_destroy(&c->mu);
  free(c->sites);
  free(c);
}

static void site_warn(const site_cert *s, time_t now) {
  char what[160];
  snprintf(what, sizeof what, "of site '%s'", s->site);
  cert_info_warn_expiry(&s->cert, what, "presented in the TLS handshake", now);
}

void agg_certs_peer_seen(void *user, const char *site, const cert_info *cert) {
  agg_certs *c = user;
  time_t now = time(NULL);
  pthread_mutex_lock(&c->mu);
  int i = 0;
  while (i < c->n_sites && strcmp(c->sites[i].site, site) != 0) i++;
  if (i == c->n_sites && c->n_sites == c->cap_sites) {
    int cap = c->cap_sites ? 2 * c->cap_sites : 16;
    site_cert *grown = realloc(c->sites, (size_t)cap * sizeof *grown);
    if (!grown) {
      pthread_mutex_unlock(&c->mu);
      return;
    }
    c->sites = grown;
    c->cap_sites = cap;
  }
  int fresh = i == c->n_sites || strcmp(c->sites[i].cert.serial, cert->serial) != 0;
  if (fresh) {
    site_cert *s = &c->sites[i];
    if (i == c->n_sites) c->n_sites++;
    snprintf(s->site, sizeof s->site, "%s", site);
    s->cert = *cert;
    char until[32];
    strftime(until, sizeof until, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&cert->not_after, &(struct tm){0}));
    log_info("site '%s' presents certificate serial %s (%s), valid until %s", site, cert->serial, cert->subject, until);
    site_warn(s, now);
    agg_ops_site_certificate_expiry(c->ops, site, cert_info_seconds_left(cert, now));
  }
  pthread_mutex_unlock(&c->mu);
}

/* The server certificate and the client CA bundle in force: warnings (when warn) and gauges. The
 * client_ca gauge is the CA that expires first: that is when sites start being refused. */
static void own_check(agg_certs *c, rpc_server *server, int warn, time_t now) {
  cert_info leaf, cas[MAX_CAS];
  int n = rpc_server_certificates(server, &leaf, cas, MAX_CAS);
  if (warn) cert_info_warn_expiry(&leaf, "of the aggregator", c->cfg->server.cert, now);
  agg_ops_certificate_expiry(c->ops, "server", cert_info_seconds_left(&leaf, now));
  double first = 0;
  for (int i = 0; i < n; i++) {
    if (warn) cert_info_warn_expiry(&cas[i], "of a client CA", c->cfg->server.client_ca, now);
    double left = cert_info_seconds_left(&cas[i], now);
    if (i == 0 || left < first) first = left;
  }
  if (n > 0) agg_ops_certificate_expiry(c->ops, "client_ca", first);
}

void agg_certs_tick(agg_certs *c, rpc_server *server) {
  time_t now = time(NULL);
  if (now < c->next_gauge) return;
  int warn = now >= c->next_warn;
  own_check(c, server, warn, now);
  pthread_mutex_lock(&c->mu);
  for (int i = 0; i < c->n_sites; i++) {
    if (warn) site_warn(&c->sites[i], now);
    agg_ops_site_certificate_expiry(c->ops, c->sites[i].site, cert_info_seconds_left(&c->sites[i].cert, now));
  }
  pthread_mutex_unlock(&c->mu);
  c->next_gauge = now + GAUGE_EVERY_S;
  if (warn) c->next_warn = now + WARN_EVERY_S;
}

int agg_certs_reload(agg_certs *c, rpc_server *server) {
  char err[1024];
  const agg_config *cfg = c->cfg;
  if (rpc_server_reload(server, err, sizeof err) != 0) {
    log_error("SIGHUP: TLS material not reloaded, the material in force stays: %s", err);
    return -1;
  }
  cert_info leaf, cas[MAX_CAS];
  int n = rpc_server_certificates(server, &leaf, cas, MAX_CAS);
  log_info("SIGHUP: TLS material reloaded: certificate %s (%s, serial %s) with key %s, %d client CA certificate(s) "
           "from %s%s%s; new handshakes use it within a second, connections already up go on",
           cfg->server.cert, leaf.subject, leaf.serial, cfg->server.key, n, cfg->server.client_ca,
           cfg->server.crl ? ", revocation list " : "", cfg->server.crl ? cfg->server.crl : "");
  c->next_warn = c->next_gauge = 0;
  agg_certs_tick(c, server);
  return 0;
}
