/* The site's audit records (common/audit.h), so a hospital can show what left the building: for
 * every update sent its digest, size, example count and round, and the aggregator's answer; the
 * adapters received; joins and refusals. Digests and counts only, never data. Every function is a
 * no-op when [audit] file is unset (a == NULL). */
#ifndef FEDLORA_SITE_AUDIT_H
#define FEDLORA_SITE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"

void site_audit_joined(audit_log *a, const char *run_id, const char *site, const char *server,
                       const char *base_fingerprint);
/* The aggregator refused something (what: "join", "await", "update"): its gRPC status and message. */
void site_audit_refused(audit_log *a, const char *what, uint32_t round, int code, const char *message);
void site_audit_adapter_received(audit_log *a, uint32_t round, const uint8_t sha[32], size_t bytes);
/* status: "accepted", "duplicate", or the refusal's gRPC status name; reason: the message or NULL. */
void site_audit_update_sent(audit_log *a, uint32_t round, const uint8_t sha[32], size_t bytes, uint64_t examples,
                            const char *status, const char *reason);
/* A round manifest verified and kept: the SHA-256 of the kept file's bytes and where it is. */
void site_audit_manifest(audit_log *a, uint32_t round, uint32_t attempt, const uint8_t sha[32], const char *path);
/* A TRAIN task refused because of its manifest (missing, forged, or disagreeing with the task). */
void site_audit_manifest_refused(audit_log *a, uint32_t round, uint32_t attempt, const char *reason);
void site_audit_finished(audit_log *a, uint32_t final_round, const char *final_dir);

#endif
