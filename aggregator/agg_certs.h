/* The aggregator's certificates in operation: SIGHUP puts a renewed server certificate and key,
 * client CA and CRL in force without stopping the run (rpc_server_reload), and expiry is watched:
 * the server certificate and the client CAs at start, after each reload and every hour, each
 * site's client certificate whenever it presents a new one. Within CERT_EXPIRY_WARN_DAYS the log
 * warns; the gauges fedlora_certificate_expiry_seconds{certificate="server"|"client_ca"} and
 * fedlora_site_certificate_expiry_seconds{site=...} always say how long is left. */
#ifndef FEDLORA_AGG_CERTS_H
#define FEDLORA_AGG_CERTS_H

#include "agg_config.h"
#include "agg_ops.h"
#include "cert_info.h"
#include "rpc.h"

typedef struct agg_certs agg_certs;

agg_certs *agg_certs_build(const agg_config *cfg, agg_ops *ops);
void agg_certs_free(agg_certs *c);
/* For rpc_server_config.on_peer_certificate (user: the agg_certs). */
void agg_certs_peer_seen(void *user, const char *site, const cert_info *cert);
/* SIGHUP: rereads and checks the files, puts them in force or logs why not (the old ones stay),
 * then looks at expiry. 0 once the new material is in force. */
int agg_certs_reload(agg_certs *c, rpc_server *server);
/* From the main loop: the hourly expiry warnings (the first call warns at once) and the gauges,
 * refreshed every minute. */
void agg_certs_tick(agg_certs *c, rpc_server *server);

#endif
