/* What a site computes in a round: the base model, the tokenizer and the local data are loaded once;
 * each round starts from the downloaded global adapter, measures it on the validation split,
 * trains the plan's local steps, and hands back the update payload. */
#ifndef FEDLORA_SITE_TRAIN_H
#define FEDLORA_SITE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "fedlora.pb-c.h"
#include "payload.h"
#include "site_config.h"

typedef struct site_trainer site_trainer;

/* Training examples a --simulate site declares (it reads no data). */
enum { SITE_SIMULATED_EXAMPLES = 100 };

/* Loads the base model, its fingerprint, the tokenizer and the site's data. NULL with err. */
site_trainer *site_trainer_build(const site_config *cfg, char *err, size_t errlen);
void site_trainer_free(site_trainer *st);

const char *site_trainer_fingerprint(const site_trainer *st);
/* Fills the dataset counts of a JoinRequest. */
void site_trainer_describe(const site_trainer *st, Fedlora__V1__JoinRequest *req);
uint64_t site_trainer_examples(const site_trainer *st);

/* Adopts the run plan (LoRA shape, training settings); 0, or -1 with err. */
int site_trainer_plan(site_trainer *st, const Fedlora__V1__JoinResponse *plan, char *err, size_t errlen);
const payload_layout *site_trainer_layout(const site_trainer *st);

/* Called after every local step, for the progress line. */
typedef void (*site_progress_fn)(void *user, long step, long steps, double loss, double tokens_per_s);

/* One round: starts from global (layout floats), trains with seed, writes the update (layout
 * floats) and the round's metrics. 0, or -1 with err. */
int site_trainer_round(site_trainer *st, const float *global, uint64_t seed, float *update,
                       Fedlora__V1__SiteMetrics *metrics, site_progress_fn progress, void *user, char *err,
                       size_t errlen);
/* Writes an adapter payload as a PEFT directory (the final adapter). */
int site_trainer_save(site_trainer *st, const float *payload, const char *dir, char *err, size_t errlen);

#endif
