/* The run plan as it travels in JoinResponse: what every site must train, turned back into the
 * engine's settings on the site. The aggregator owns the plan; a site cannot change it. */
#ifndef FEDLORA_PLAN_H
#define FEDLORA_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "fedlora.pb-c.h"
#include "lora.h"
#include "train.h"

/* LoRA settings of the plan; FFA mode freezes A. 0, or -1 naming the bad field. */
int plan_lora_config(const Fedlora__V1__LoraConfig *p, lora_config *out, char *err, size_t errlen);
/* Training settings for one round's local steps (steps given by the caller: local_steps or epochs
 * worth of windows). 0, or -1 naming the bad field. */
int plan_train_config(const Fedlora__V1__TrainConfig *p, long steps, uint64_t seed, train_config *out, char *err,
                      size_t errlen);
/* Local training seed of a site in a round, from the run seed: every site and round differs, a
 * restarted site gets the same one. */
uint64_t plan_site_seed(uint64_t run_seed, uint32_t round, const char *site);

#endif
