/* Round manifests on the site (common/manifest.h): before anything of a TRAIN task is used, its
 * manifest must be signed by the aggregator the site's CA certified, under the name the site's TLS
 * expects, and vouch for exactly this task (run, round, attempt, base round, adapter digest) and
 * the plan received at Join. An accepted manifest is kept in state_dir/manifests/ and its digest
 * goes to the audit log, so the chain vouches for the kept file; a refused one is logged with the
 * field at fault and recorded as a refusal. */
#ifndef FEDLORA_SITE_MANIFEST_H
#define FEDLORA_SITE_MANIFEST_H

#include <stdint.h>

#include "audit.h"
#include "fedlora.pb-c.h"
#include "manifest.h"
#include "site_config.h"

/* 0: accepted and kept, *got filled. SITE_EXIT_REFUSED: missing, forged or disagreeing (the task
 * must not be trained). SITE_EXIT_FAILED: valid but it cannot be kept. */
int site_manifest_accept(const site_config *cfg, audit_log *a, const char *run_id, const uint8_t plan_sha[32],
                         const Fedlora__V1__RoundTask *task, manifest *got);

#endif
