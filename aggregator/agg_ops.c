#include "agg_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "log.h"
#include "metrics_http.h"
#include "payload.h"
#include "prom.h"

struct agg_ops {
  audit_log *audit;
  prom_registry *reg;
  metrics_http *http;
  int rounds_committed, rounds_aborted, sites_joined, sites_active, round, bytes_in, bytes_out, updates,
      rejections, refusals, duration, val_loss, epsilon, cert_expiry, site_cert_expiry;
};

/* gRPC status codes as the reason label of a refused update: a short, bounded set. */
static const char *code_name(int code) {
  static const char *names[] = {"ok", "cancelled", "unknown", "invalid_argument", "deadline_exceeded",
                                "not_found", "already_exists", "permission_denied", "resource_exhausted",
                                "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal",
                                "unavailable", "data_loss", "unauthenticated"};
  return code >= 0 && code < (int)(sizeof names / sizeof names[0]) ? names[code] : "unknown";
}

static int define_all(agg_ops *o) {
  /* Rounds last from seconds (a demo) to hours (real sites on CPUs). */
  static const double seconds[] = {1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200};
  prom_registry *r = o->reg;
  o->rounds_committed = prom_define(r, "fedlora_rounds_committed_total", PROM_COUNTER, "Rounds committed", NULL, NULL, 0);
  o->rounds_aborted = prom_define(r, "fedlora_rounds_aborted_total", PROM_COUNTER,
                                  "Round attempts aborted (deadline below quorum)", NULL, NULL, 0);
  o->round = prom_define(r, "fedlora_round", PROM_GAUGE, "The open (or last) round number", NULL, NULL, 0);
  o->sites_joined = prom_define(r, "fedlora_sites_joined", PROM_GAUGE, "Sites that joined the run", NULL, NULL, 0);
  o->sites_active = prom_define(r, "fedlora_sites_active", PROM_GAUGE, "Sites selected for the open round", NULL,
                                NULL, 0);
  o->bytes_in = prom_define(r, "fedlora_received_bytes_total", PROM_COUNTER, "Update bytes accepted from sites",
                            NULL, NULL, 0);
  o->bytes_out = prom_define(r, "fedlora_sent_bytes_total", PROM_COUNTER, "Adapter bytes sent to sites", NULL, NULL, 0);
  o->updates = prom_define(r, "fedlora_updates_accepted_total", PROM_COUNTER, "Updates accepted", NULL, NULL, 0);
  o->rejections = prom_define(r, "fedlora_update_rejections_total", PROM_COUNTER,
                              "Updates refused, by gRPC status of the refusal", "reason", NULL, 0);
  o->refusals = prom_define(r, "fedlora_refused_calls_total", PROM_COUNTER, "Calls that failed, by method", "method",
                            NULL, 0);
  o->duration = prom_define(r, "fedlora_round_duration_seconds", PROM_HISTOGRAM,
                            "Seconds from a round's opening to its commit", NULL, seconds,
                            (int)(sizeof seconds / sizeof seconds[0]));
  o->val_loss = prom_define(r, "fedlora_val_loss", PROM_GAUGE,
                            "Example-weighted validation loss the sites measured in the last committed round (NaN: none)",
                            NULL, NULL, 0);
  o->epsilon = prom_define(r, "fedlora_dp_epsilon", PROM_GAUGE,
                           "Differential privacy epsilon spent so far (0 with dp = off)", NULL, NULL, 0);
  o->cert_expiry = prom_define(r, "fedlora_certificate_expiry_seconds", PROM_GAUGE,
                               "Seconds until the aggregator's certificate (server) or the first of its client CAs "
                               "(client_ca) expires; negative once expired",
                               "certificate", NULL, 0);
  o->site_cert_expiry = prom_define(r, "fedlora_site_certificate_expiry_seconds", PROM_GAUGE,
                                    "Seconds until the client certificate a site presented last expires", "site",
                                    NULL, 0);
  prom_set(r, o->val_loss, NULL, NAN);
  return o->epsilon >= 0 && o->site_cert_expiry >= 0 ? 0 : -1;
}

agg_ops *agg_ops_start(const agg_config *cfg, char *err, size_t errlen) {
  agg_ops *o = calloc(1, sizeof *o);
  if (cfg->audit.file && !(o->audit = audit_open(cfg->audit.file, "fedlora-aggregator", err, errlen))) goto fail;
  o->reg = prom_build();
  if (!o->reg || define_all(o) != 0) {
    snprintf(err, errlen, "cannot define the metrics");
    goto fail;
  }
  if (cfg->metrics.listen) {
    o->http = metrics_http_start(cfg->metrics.listen, o->reg, err, errlen);
    if (!o->http) goto fail;
    log_info("metrics on http://%s/metrics (port %d)", cfg->metrics.listen, metrics_http_port(o->http));
  }
  return o;
fail:
  agg_ops_stop(o);
  return NULL;
}

void agg_ops_stop(agg_ops *o) {
  if (!o) return;
  metrics_http_stop(o->http);
  prom_free(o->reg);
  audit_close(o->audit);
  free(o);
}

int agg_ops_metrics_port(const agg_ops *o) { return o && o->http ? metrics_http_port(o->http) : 0; }

static json_t *hex(const uint8_t sha[32]) {
  char h[65];
  sha256_hex(sha, h);
  return json_string(h);
}

void agg_ops_run_started(agg_ops *o, const char *run_id, const char *fingerprint, uint32_t committed, uint32_t total) {
  prom_set(o->reg, o->round, NULL, committed);
  prom_add(o->reg, o->rounds_committed, NULL, committed);
  audit_append(o->audit, "run_started",
               json_pack("{s:s,s:s,s:I,s:I}", "run_id", run_id, "base_fingerprint", fingerprint, "rounds_committed",
                         (json_int_t)committed, "rounds_total", (json_int_t)total));
}

void agg_ops_join(agg_ops *o, const char *site, uint64_t train_examples, uint64_t val_examples, int joined) {
  prom_set(o->reg, o->sites_joined, NULL, joined);
  audit_append(o->audit, "join",
               json_pack("{s:s,s:I,s:I}", "site", site, "train_examples", (json_int_t)train_examples, "val_examples",
                         (json_int_t)val_examples));
}

void agg_ops_refused(agg_ops *o, const char *site, const char *method, int code, const char *message) {
  const char *short_method = strrchr(method, '/');
  short_method = short_method ? short_method + 1 : method;
  prom_add(o->reg, o->refusals, short_method, 1);
  if (strstr(method, "SubmitUpdate") || strstr(method, "SubmitMasked")) prom_add(o->reg, o->rejections, code_name(code), 1);
  audit_append(o->audit, "refused",
               json_pack("{s:s,s:s,s:s,s:s}", "site", site && *site ? site : "?", "method", short_method, "status",
                         code_name(code), "reason", message ? message : ""));
}

void agg_ops_round_opened(agg_ops *o, uint32_t round, uint32_t attempt, int selected) {
  prom_set(o->reg, o->round, NULL, round);
  prom_set(o->reg, o->sites_active, NULL, selected);
  audit_append(o->audit, "round_opened",
               json_pack("{s:I,s:I,s:i}", "round", (json_int_t)round, "attempt", (json_int_t)attempt, "selected",
                         selected));
}

void agg_ops_manifest_signed(agg_ops *o, uint32_t round, uint32_t attempt, uint32_t base_round,
                             const uint8_t sha[32]) {
  char hex[65];
  sha256_hex(sha, hex);
  audit_append(o->audit, "manifest_signed",
               json_pack("{s:I,s:I,s:I,s:s}", "round", (json_int_t)round, "attempt", (json_int_t)attempt,
                         "base_round", (json_int_t)base_round, "sha256", hex));
}

void agg_ops_round_aborted(agg_ops *o, uint32_t round, uint32_t attempt, const char *reason) {
  prom_add(o->reg, o->rounds_aborted, NULL, 1);
  audit_append(o->audit, "round_aborted",
               json_pack("{s:I,s:I,s:s}", "round", (json_int_t)round, "attempt", (json_int_t)attempt, "reason", reason));
}

void agg_ops_round_committed(agg_ops *o, uint32_t round, const uint8_t adapter_sha[32], const json_t *metrics) {
  json_t *vl = json_object_get(metrics, "val_loss"), *secs = json_object_get(metrics, "round_seconds");
  json_t *eps = json_object_get(json_object_get(metrics, "dp"), "epsilon");
  prom_add(o->reg, o->rounds_committed, NULL, 1);
  if (json_is_number(secs)) prom_observe(o->reg, o->duration, json_number_value(secs));
  prom_set(o->reg, o->val_loss, NULL, json_is_number(vl) ? json_number_value(vl) : NAN);
  if (json_is_number(eps)) prom_set(o->reg, o->epsilon, NULL, json_number_value(eps));
  audit_append(o->audit, "round_committed",
               json_pack("{s:I,s:o,s:O,s:O}", "round", (json_int_t)round, "adapter_sha256", hex(adapter_sha),
                         "submitted", json_object_get(metrics, "submitted") ?: json_null(), "val_loss",
                         vl ? vl : json_null()));
}

void agg_ops_update_received(agg_ops *o, const char *site, uint32_t round, const uint8_t sha[32], uint64_t bytes,
                             uint64_t examples) {
  prom_add(o->reg, o->bytes_in, NULL, (double)bytes);
  prom_add(o->reg, o->updates, NULL, 1);
  audit_append(o->audit, "update_received",
               json_pack("{s:s,s:I,s:o,s:I,s:I}", "site", site, "round", (json_int_t)round, "sha256", hex(sha), "bytes",
                         (json_int_t)bytes, "example_count", (json_int_t)examples));
}

void agg_ops_adapter_sent(agg_ops *o, const char *site, uint32_t round, const uint8_t sha[32], uint64_t bytes) {
  prom_add(o->reg, o->bytes_out, NULL, (double)bytes);
  audit_append(o->audit, "adapter_sent",
               json_pack("{s:s,s:I,s:o,s:I}", "site", site, "round", (json_int_t)round, "sha256", hex(sha), "bytes",
                         (json_int_t)bytes));
}

void agg_ops_certificate_expiry(agg_ops *o, const char *certificate, double seconds) {
  prom_set(o->reg, o->cert_expiry, certificate, seconds);
}

void agg_ops_site_certificate_expiry(agg_ops *o, const char *site, double seconds) {
  prom_set(o->reg, o->site_cert_expiry, site, seconds);
}
