#include "plan.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int plan_lora_config(const Fedlora__V1__LoraConfig *p, lora_config *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!p) {
    snprintf(err, errlen, "the plan has no lora section");
    return -1;
  }
  for (size_t i = 0; i < p->n_target_modules; i++) {
    int m = lora_module_parse(p->target_modules[i]);
    if (m < 0) {
      snprintf(err, errlen, "plan lora.target_modules: unknown module '%.64s'", p->target_modules[i]);
      return -1;
    }
    out->targets |= 1u << m;
  }
  if (p->rank < 1 || p->rank > 4096) {
    snprintf(err, errlen, "plan lora.rank: %u is outside 1..4096", p->rank);
    return -1;
  }
  if (!isfinite(p->alpha) || p->alpha <= 0) {
    snprintf(err, errlen, "plan lora.alpha: must be positive");
    return -1;
  }
  out->rank = (int)p->rank;
  out->alpha = p->alpha;
  out->use_rslora = p->use_rslora;
  out->dropout = p->dropout;
  out->freeze_a = p->mode == FEDLORA__V1__LORA_MODE__LORA_MODE_FFA;
  return 0;
}

int plan_train_config(const Fedlora__V1__TrainConfig *p, long steps, uint64_t seed, train_config *out, char *err,
                      size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!p) {
    snprintf(err, errlen, "the plan has no train section");
    return -1;
  }
  int kind = optim_kind_parse(p->optimizer ? p->optimizer : "");
  int sched = schedule_kind_parse(p->schedule && p->schedule[0] ? p->schedule : "constant");
  if (kind < 0 || sched < 0) {
    snprintf(err, errlen, "plan train: unknown %s '%.32s'", kind < 0 ? "optimizer" : "schedule",
             kind < 0 ? p->optimizer : p->schedule);
    return -1;
  }
  /* The aggregator's own bounds: the site sizes buffers by batch and seq_len, and turns local_epochs
   * into a step count (epochs x windows / batch) that must fit a long. */
  if (p->batch > 65536 || p->seq_len > (1u << 20) || !(p->local_epochs >= 0 && p->local_epochs <= 1e6)) {
    snprintf(err, errlen, "plan train: batch %u, seq_len %u or local_epochs %g is outside what an aggregator sends "
             "(batch <= 65536, seq_len <= 1048576, local_epochs in [0, 1e6])", p->batch, p->seq_len, p->local_epochs);
    return -1;
  }
  if (p->batch < 1 || p->seq_len < 2 || !(p->lr > 0) || steps < 1) {
    snprintf(err, errlen, "plan train: batch %u, seq_len %u, lr %g and %ld steps are not all usable", p->batch,
             p->seq_len, p->lr, steps);
    return -1;
  }
  out->batch = (int)p->batch;
  out->seq_len = (int)p->seq_len;
  out->grad_accum = 1;
  out->steps = steps;
  out->optim = optim_config_default((optim_kind)kind);
  out->optim.weight_decay = (float)p->weight_decay;
  if (kind == OPTIM_ADAMW) {
    out->optim.beta1 = (float)p->beta1;
    out->optim.beta2 = (float)p->beta2;
    out->optim.eps = (float)p->eps;
  }
  out->schedule = (lr_schedule){(schedule_kind)sched, (float)p->lr, p->warmup, steps};
  out->grad_clip = (float)p->grad_clip;
  out->shuffle = 1;
  out->seed = seed;
  return 0;
}

uint64_t plan_site_seed(uint64_t run_seed, uint32_t round, const char *site) {
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a over the site name */
  for (const char *c = site; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
  uint64_t z = run_seed ^ h ^ ((uint64_t)round * 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
