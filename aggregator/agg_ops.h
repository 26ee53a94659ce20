/* What the operator and the security officer see of a run: the audit log ([audit] file) and the
 * Prometheus metrics ([metrics] listen). The federation calls one function per event; each writes
 * the audit record (digests and counts, never data) and moves the metrics. Both are optional: with
 * neither configured every call is a no-op. Safe from several threads. */
#ifndef FEDLORA_AGG_OPS_H
#define FEDLORA_AGG_OPS_H

#include <jansson.h>
#include <stdint.h>

#include "agg_config.h"

typedef struct agg_ops agg_ops;

/* Opens the audit log (refusing one whose chain is broken) and starts the metrics endpoint.
 * NULL with the reason in err. */
agg_ops *agg_ops_start(const agg_config *cfg, char *err, size_t errlen);
void agg_ops_stop(agg_ops *o);
/* The metrics endpoint's port (0 when not serving). */
int agg_ops_metrics_port(const agg_ops *o);

void agg_ops_run_started(agg_ops *o, const char *run_id, const char *fingerprint, uint32_t committed, uint32_t total);
/* A site's Join, with the number of sites joined now. */
void agg_ops_join(agg_ops *o, const char *site, uint64_t train_examples, uint64_t val_examples, int joined);
/* A call refused (any failure status): who, which method, the gRPC status and its message. */
void agg_ops_refused(agg_ops *o, const char *site, const char *method, int code, const char *message);
void agg_ops_round_opened(agg_ops *o, uint32_t round, uint32_t attempt, int selected);
/* The manifest of a round attempt signed (sha: the SHA-256 of the signed document sites keep). */
void agg_ops_manifest_signed(agg_ops *o, uint32_t round, uint32_t attempt, uint32_t base_round,
                             const uint8_t sha[32]);
void agg_ops_round_aborted(agg_ops *o, uint32_t round, uint32_t attempt, const char *reason);
/* metrics: the round's metrics.jsonl line (val_loss, round_seconds, dp.epsilon are read). */
void agg_ops_round_committed(agg_ops *o, uint32_t round, const uint8_t adapter_sha[32], const json_t *metrics);
void agg_ops_update_received(agg_ops *o, const char *site, uint32_t round, const uint8_t sha[32], uint64_t bytes,
                             uint64_t examples);
void agg_ops_adapter_sent(agg_ops *o, const char *site, uint32_t round, const uint8_t sha[32], uint64_t bytes);
/* Gauges: seconds until a certificate expires (agg_certs.h), the aggregator's own ("server",
 * "client_ca") and each site's. */
void agg_ops_certificate_expiry(agg_ops *o, const char *certificate, double seconds);
void agg_ops_site_certificate_expiry(agg_ops *o, const char *site, double seconds);

#endif
