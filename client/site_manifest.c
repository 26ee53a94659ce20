#include "site_manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "payload.h"
#include "site.h"
#include "site_audit.h"
#include "tls_probe.h"

/* 1 if path holds exactly doc: a task polled again after a retry brings the same document. */
static int already_kept(const char *path, const char *doc, size_t len) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  char *old = malloc(len + 1);
  size_t n = old ? fread(old, 1, len + 1, f) : 0;
  fclose(f);
  int same = n == len && memcmp(old, doc, len) == 0;
  free(old);
  return same;
}

/* state_dir/manifests/round-NNNN-attempt-A.json, or final-round-NNNN.json for the run's final
 * adapter. A different document for the same attempt (the aggregator restarted and signed again)
 * goes beside it, named by its digest, so none is lost. */
static int keep(const site_config *cfg, audit_log *a, const Fedlora__V1__RoundTask *task) {
  const char *doc = task->manifest;
  size_t len = strlen(doc);
  uint8_t sha[32];
  char hex[65], dir[4096], path[4200], err[512];
  sha256_bytes(doc, len, sha);
  sha256_hex(sha, hex);
  snprintf(dir, sizeof dir, "%s/manifests", cfg->client.state_dir);
  char name[64];
  if (task->kind == FEDLORA__V1__ROUND_TASK__KIND__FINISHED)
    snprintf(name, sizeof name, "final-round-%04u", task->round);
  else
    snprintf(name, sizeof name, "round-%04u-attempt-%u", task->round, task->attempt);
  snprintf(path, sizeof path, "%s/%s.json", dir, name);
  if (already_kept(path, doc, len)) return 0;
  if (access(path, F_OK) == 0) {
    snprintf(path, sizeof path, "%s/%s.%.16s.json", dir, name, hex);
    if (already_kept(path, doc, len)) return 0;
  }
  if (fs_mkdir_p(dir, 0700, err, sizeof err) != 0 || fs_write_atomic(path, doc, len, err, sizeof err) != 0) {
    log_error("round %u: cannot keep the round manifest: %s", task->round, err);
    return SITE_EXIT_FAILED;
  }
  site_audit_manifest(a, task->round, task->attempt, sha, path);
  log_info("round %u attempt %u: manifest verified (signed by the aggregator), kept in %s", task->round,
           task->attempt, path);
  return 0;
}

int site_manifest_accept(const site_config *cfg, audit_log *a, const char *run_id, const uint8_t plan_sha[32],
                         const Fedlora__V1__RoundTask *task, manifest *got) {
  char host[256], port[32], err[1024];
  const char *name = cfg->client.server_name;
  if (!name) { /* the name TLS checks: the host of [client] server */
    if (tls_target_split(cfg->client.server, host, sizeof host, port, sizeof port) != 0) host[0] = '\0';
    name = host;
  }
  manifest want;
  memset(&want, 0, sizeof want);
  snprintf(want.run_id, sizeof want.run_id, "%s", run_id);
  want.round = task->round;
  want.attempt = task->attempt;
  want.base_round = task->base_round;
  memcpy(want.plan_sha, plan_sha, 32);
  if (task->adapter_sha256.len == 32) memcpy(want.adapter_sha, task->adapter_sha256.data, 32);
  if (manifest_accept(task->manifest, &want, cfg->client.ca, name, got, err, sizeof err) != 0) {
    log_error("round %u attempt %u: task refused, nothing trained or sent: the round manifest was refused: %s",
              task->round, task->attempt, err);
    site_audit_manifest_refused(a, task->round, task->attempt, err);
    return SITE_EXIT_REFUSED;
  }
  return keep(cfg, a, task);
}
