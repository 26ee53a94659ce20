#include "site_audit.h"

#include "payload.h"

static json_t *hex(const uint8_t sha[32]) {
  char h[65];
  sha256_hex(sha, h);
  return json_string(h);
}

void site_audit_joined(audit_log *a, const char *run_id, const char *site, const char *server,
                       const char *base_fingerprint) {
  if (!a) return;
  audit_append(a, "join", json_pack("{s:s,s:s,s:s,s:s}", "run_id", run_id, "site", site, "server", server,
                                    "base_fingerprint", base_fingerprint));
}

void site_audit_refused(audit_log *a, const char *what, uint32_t round, int code, const char *message) {
  if (!a) return;
  audit_append(a, "refused", json_pack("{s:s,s:I,s:i,s:s}", "what", what, "round", (json_int_t)round, "status", code,
                                       "reason", message ? message : ""));
}

void site_audit_adapter_received(audit_log *a, uint32_t round, const uint8_t sha[32], size_t bytes) {
  if (!a) return;
  audit_append(a, "adapter_received",
               json_pack("{s:I,s:o,s:I}", "round", (json_int_t)round, "sha256", hex(sha), "bytes", (json_int_t)bytes));
}

void site_audit_update_sent(audit_log *a, uint32_t round, const uint8_t sha[32], size_t bytes, uint64_t examples,
                            const char *status, const char *reason) {
  if (!a) return;
  json_t *o = json_pack("{s:I,s:o,s:I,s:I,s:s}", "round", (json_int_t)round, "sha256", hex(sha), "bytes",
                        (json_int_t)bytes, "example_count", (json_int_t)examples, "status", status);
  if (reason && *reason) json_object_set_new(o, "reason", json_string(reason));
  audit_append(a, "update_sent", o);
}

void site_audit_manifest(audit_log *a, uint32_t round, uint32_t attempt, const uint8_t sha[32], const char *path) {
  if (!a) return;
  audit_append(a, "manifest", json_pack("{s:I,s:I,s:o,s:s}", "round", (json_int_t)round, "attempt",
                                        (json_int_t)attempt, "sha256", hex(sha), "file", path));
}

void site_audit_manifest_refused(audit_log *a, uint32_t round, uint32_t attempt, const char *reason) {
  if (!a) return;
  audit_append(a, "refused", json_pack("{s:s,s:I,s:I,s:s}", "what", "manifest", "round", (json_int_t)round,
                                       "attempt", (json_int_t)attempt, "reason", reason));
}

void site_audit_finished(audit_log *a, uint32_t final_round, const char *final_dir) {
  if (!a) return;
  audit_append(a, "finished", json_pack("{s:I,s:s}", "final_round", (json_int_t)final_round, "final_dir", final_dir));
}
