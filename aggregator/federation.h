/* The aggregator's service: the fedlora.v1.Federation handlers, the round thread that opens,
 * aborts and commits rounds, and the state they share under one lock.
 *
 * One round, from the aggregator's side: a site's update streams into SubmitUpdate, is checked
 * against the plan (payload.h), stored durably as pending (store.h) and recorded in the round
 * machine (round.h); the round thread sees the round ready, adds the pending updates in site-name
 * order (aggregate.h), applies the server optimiser (server_opt.h), commits the new global adapter
 * as a round directory, and AwaitRound wakes the sites for the next round. */
#ifndef FEDLORA_FEDERATION_H
#define FEDLORA_FEDERATION_H

#include <stddef.h>

#include "agg_config.h"

typedef struct federation federation;

/* Loads the base model and durable state, resumes the run, and starts serving.
 * NULL with a message in err on any problem (nothing is left running). */
federation *federation_start(const agg_config *cfg, char *err, size_t errlen);
int federation_port(const federation *f);
/* Blocks until the run has finished (every round committed) or federation_request_stop. */
void federation_wait(federation *f);
/* Safe from a signal handler's thread (uses no locks): asks federation_wait to return. */
void federation_request_stop(federation *f);
/* Safe from a signal handler: asks federation_wait to reread [server] crl (SIGHUP). */
void federation_request_reload(federation *f);
void federation_stop(federation *f);

#endif
