#include "site_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "dataset_site.h"
#include "dist.h"
#include "dp.h"
#include "fingerprint.h"
#include "log.h"
#include "model.h"
#include "model_tokenizer.h"
#include "ops.h"
#include "peft.h"
#include "plan.h"
#include "site_dist.h"
#include "train.h"

struct site_trainer {
  const site_config *cfg;
  model base;
  char fingerprint[65];
  tokenizer *tok;
  uint64_t train_records, val_records; /* counted before the plan fixes the window length */
  /* set by the plan */
  int planned;
  lora_adapter ad;
  payload_layout layout;
  uint64_t init_seed;
  Fedlora__V1__TrainConfig train;     /* copy of the plan's scalars (strings not kept) */
  train_config tcfg;
  site_data data;
  trainer t;
  float *start;                       /* (ad.num_params) the round's starting point, for FedProx */
  double dp_clip, dp_noise_std;       /* the plan's DP: L2 bound of the delta (0: off), this site's noise share */
};

static data_spec site_spec(const site_config *cfg) {
  return (data_spec){.data = cfg->data.train, .val = cfg->data.val, .val_fraction = cfg->data.val_fraction,
                     .format = (data_format)cfg->data.format};
}

/* Record counts for Join, before the plan says how to cut windows. */
static int count_records(site_trainer *st, char *err, size_t errlen) {
  data_spec spec = site_spec(st->cfg);
  record_set s;
  if (records_read(&s, spec.data, spec.format, spec.skip_bad, err, errlen) != 0) return -1;
  for (size_t i = 0; i < s.n; i++) {
    int held_out = !spec.val && spec.val_fraction > 0 && record_in_validation(&s, i, spec.split_seed, spec.val_fraction);
    if (held_out)
      st->val_records++;
    else
      st->train_records++;
  }
  records_free(&s);
  if (spec.val) {
    if (records_read(&s, spec.val, spec.format, spec.skip_bad, err, errlen) != 0) return -1;
    st->val_records = s.n;
    records_free(&s);
  }
  if (st->train_records == 0) {
    snprintf(err, errlen, "%s: no training records (all held out for validation?)", spec.data);
    return -1;
  }
  return 0;
}

site_trainer *site_trainer_build(const site_config *cfg, char *err, size_t errlen) {
  site_trainer *st = calloc(1, sizeof *st);
  st->cfg = cfg;
  compute_threads_set(cfg->client.threads > 0 ? cfg->client.threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
  if (model_load(&st->base, cfg->model.base, err, errlen) != 0) {
    free(st);
    return NULL;
  }
  if (cfg->simulate) { /* no tokenizer and no data: only the base model's shape and fingerprint */
    st->train_records = SITE_SIMULATED_EXAMPLES;
    if (model_fingerprint(cfg->model.base, st->fingerprint, err, errlen) == 0) return st;
    site_trainer_free(st);
    return NULL;
  }
  if (model_fingerprint(cfg->model.base, st->fingerprint, err, errlen) != 0 ||
      !(st->tok = tokenizer_for_model(cfg->model.base, cfg->model.tokenizer, st->base.config.vocab_size, err,
                                      errlen)) ||
      count_records(st, err, errlen) != 0) {
    site_trainer_free(st);
    return NULL;
  }
  return st;
}

void site_trainer_free(site_trainer *st) {
  if (!st) return;
  if (st->planned) {
    if (!st->cfg->simulate) {
      trainer_free(&st->t);
      site_data_free(&st->data);
    }
    payload_layout_free(&st->layout);
    lora_free(&st->ad);
    free(st->start);
  }
  tokenizer_free(st->tok);
  model_free(&st->base);
  free(st);
}

const char *site_trainer_fingerprint(const site_trainer *st) { return st->fingerprint; }
uint64_t site_trainer_examples(const site_trainer *st) { return st->train_records; }
const payload_layout *site_trainer_layout(const site_trainer *st) { return &st->layout; }

void site_trainer_describe(const site_trainer *st, Fedlora__V1__JoinRequest *req) {
  req->train_examples = st->train_records;
  req->val_examples = st->val_records;
  req->train_tokens = st->planned && !st->cfg->simulate ? st->data.train[0].counted_tokens : 0;
}

/* The plan's batch is the site's: on several ranks each takes an equal share of every micro-batch. */
static int plan_adopt(site_trainer *st, const Fedlora__V1__JoinResponse *plan, char *err, size_t errlen) {
  lora_config lc;
  if (plan_lora_config(plan->lora, &lc, err, errlen) != 0) return -1;
  if (!plan->train) {
    snprintf(err, errlen, "the plan has no training settings");
    return -1;
  }
  st->train = *plan->train;
  st->init_seed = plan->lora->init_seed;
  const Fedlora__V1__PrivacyConfig *pc = plan->privacy;
  if (pc && pc->dp != FEDLORA__V1__DP_MODE__DP_OFF) {
    st->dp_clip = pc->dp_clip;
    if (pc->dp == FEDLORA__V1__DP_MODE__DP_DISTRIBUTED)
      st->dp_noise_std = dp_site_noise_std(pc->dp_noise_multiplier, pc->dp_clip,
                                           plan->rounds ? (int)plan->rounds->min_clients : 1);
  }
  if (plan_train_config(plan->train, 1, 0, &st->tcfg, err, errlen) != 0) return -1;
  if (lora_build(&st->ad, &st->base.config, &lc, err, errlen) != 0) return -1;
  st->planned = 1;
  st->start = calloc(st->ad.num_params + 1, sizeof(float));
  data_spec spec = site_spec(st->cfg);
  if (payload_layout_build(&st->layout, &st->ad, &st->base.config, lc.freeze_a, err, errlen) != 0) return -1;
  if (st->cfg->simulate) return 0;
  if (site_data_load(&st->data, &spec, st->tok, st->base.config.vocab_size, st->tcfg.seq_len, 1, 0, err, errlen) != 0)
    return -1;
  long steps = st->train.local_steps;
  if (steps <= 0) steps = (long)ceil(st->train.local_epochs * (double)mixture_windows(&st->data.mix) / st->tcfg.batch);
  if (plan_train_config(plan->train, steps > 0 ? steps : 1, 0, &st->tcfg, err, errlen) != 0) return -1;
  if (st->tcfg.batch % dist_size() != 0) {
    snprintf(err, errlen, "the plan's batch %d does not split evenly over %d ranks", st->tcfg.batch, dist_size());
    return -1;
  }
  st->tcfg.batch /= dist_size();
  return trainer_build(&st->t, &st->base, &st->ad, &st->tcfg, err, errlen);
}

int site_trainer_plan(site_trainer *st, const Fedlora__V1__JoinResponse *plan, char *err, size_t errlen) {
  if (dist_rank() == 0 && site_dist_send_plan(plan, err, errlen) != 0) return -1;
  return site_dist_agree(plan_adopt(st, plan, err, errlen), err, errlen);
}

/* splitmix64: the simulated update only needs to be cheap and reproducible from the round's seed. */
static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* --simulate: the global adapter plus uniform noise in [-1e-3, 1e-3), seeded like training. */
static void simulate_round(const site_trainer *st, const float *global, uint64_t seed, float *update,
                           Fedlora__V1__SiteMetrics *metrics) {
  uint64_t state = seed;
  for (size_t i = 0; i < st->layout.floats; i++)
    update[i] = global[i] + 1e-3f * (float)((double)(splitmix64(&state) >> 11) * 0x1.0p-52 - 1.0);
  metrics->train_loss = NAN;
  metrics->val_loss_before = NAN;
}

static int round_train(site_trainer *st, const float *global, uint64_t seed, float *update,
                       Fedlora__V1__SiteMetrics *metrics, site_progress_fn progress, void *user, char *err,
                       size_t errlen) {
  if (st->cfg->simulate) {
    simulate_round(st, global, seed, update, metrics);
    return 0;
  }
  /* Start exactly from the global adapter. With FFA-LoRA only B travels: A is regenerated from the
   * plan's seed, identical at every site. */
  lora_init(&st->ad, st->init_seed);
  payload_unpack(&st->layout, &st->ad, global);
  memcpy(st->start, st->ad.params, st->ad.num_params * sizeof(float));

  double val_loss = NAN, val_tokens = 0, t_eval = clock_seconds();
  if (st->data.has_val &&
      evaluate_loss(&st->base, &st->ad, &st->data.val, st->tcfg.batch, &val_loss, &val_tokens, err, errlen) != 0)
    return -1;

  metrics->eval_seconds = clock_seconds() - t_eval;

  /* A fresh local optimiser every round, seeded from (run, round, site). */
  trainer *t = &st->t;
  optimizer_reset(&t->opt);
  t->step = 0;
  t->cfg.seed = seed;
  t->cfg.prox_mu = (float)st->train.fedprox_mu;
  t->cfg.prox_anchor = st->start;
  memset(t->grad, 0, t->n * sizeof(float));
  data_mixture *mix = &st->data.mix;
  const dataset *sources[16];
  int n_sources = st->data.n < 16 ? st->data.n : 16;
  for (int i = 0; i < n_sources; i++) sources[i] = &st->data.train[i];
  mixture_free(mix);
  if (mixture_build(mix, sources, st->data.weights, n_sources, 1, seed, err, errlen) != 0) return -1;

  double t0 = clock_seconds(), loss_sum = 0;
  long steps = st->tcfg.steps;
  double tokens_per_step = (double)st->tcfg.batch * dist_size() * st->tcfg.seq_len;
  for (long s = 0; s < steps; s++) {
    step_report r = trainer_step(t, mix);
    if (r.failed) {
      snprintf(err, errlen, "local step %ld across %d ranks: %s", s + 1, dist_size(), dist_error());
      return -1;
    }
    if (!isfinite(r.loss)) {
      snprintf(err, errlen, "the training loss became %g at local step %ld", r.loss, s + 1);
      return -1;
    }
    loss_sum += r.loss;
    if (progress) progress(user, s + 1, steps, r.loss, tokens_per_step * (s + 1) / (clock_seconds() - t0 + 1e-9));
  }
  payload_pack(&st->layout, &st->ad, update);
  if (st->dp_clip > 0) {
    double norm = dp_site_apply(update, global, st->layout.floats, st->dp_clip, st->dp_noise_std);
    if (norm < 0) return snprintf(err, errlen, "the DP step failed"), -1;
    log_info("dp: update norm %.4g, bounded by %.4g%s", norm, st->dp_clip,
             st->dp_noise_std > 0 ? ", noise share added" : "");
  }
  metrics->train_loss = loss_sum / (double)steps;
  metrics->val_loss_before = val_loss;
  metrics->tokens = (uint64_t)(tokens_per_step * (double)steps);
  metrics->steps = (uint32_t)steps;
  metrics->seconds = clock_seconds() - t0;
  return 0;
}

int site_trainer_round(site_trainer *st, const float *global, uint64_t seed, float *update,
                       Fedlora__V1__SiteMetrics *metrics, site_progress_fn progress, void *user, char *err,
                       size_t errlen) {
  if (dist_rank() == 0 && site_dist_send_round(global, st->layout.floats, seed, err, errlen) != 0) return -1;
  return site_dist_agree(round_train(st, global, seed, update, metrics, progress, user, err, errlen), err, errlen);
}

int site_trainer_save(site_trainer *st, const float *payload, const char *dir, char *err, size_t errlen) {
  lora_init(&st->ad, st->init_seed);
  payload_unpack(&st->layout, &st->ad, payload);
  return peft_save(&st->ad, &st->base.config, dir, st->cfg->model.base, err, errlen);
}
