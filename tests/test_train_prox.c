/* FedProx: the proximal term mu/2 ||w - anchor||^2 adds mu (w - anchor) to the gradient, so one SGD
 * step from w with no data gradient lands exactly at w - lr mu (w - anchor); and with data, the
 * term shrinks how far local training drifts from the anchor. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "train.h"

static model tiny_model(void) {
  model_config c = {.dim = 16, .hidden_dim = 24, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .head_dim = 8,
                    .vocab_size = 32, .max_seq_len = 16, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                    .tied_classifier = 1};
  model m;
  char err[256];
  if (model_build(&m, &c, err, sizeof err) != 0) abort();
  model_init_random(&m, 3, 0.1f);
  return m;
}

/* Trains `steps` SGD steps of a q,v adapter from a random start, with the given mu; returns the
 * distance of the result from the start. */
static double drift(model *m, float mu, long steps, int with_data, lora_adapter *out) {
  char err[256];
  lora_config lc = {.rank = 2, .alpha = 4.0f, .targets = (1u << LORA_Q) | (1u << LORA_V)};
  lora_build(out, &m->config, &lc, err, sizeof err);
  lora_init(out, 9);
  for (size_t i = 0; i < out->num_params; i++) out->params[i] += 0.01f * (float)((i * 7919) % 13) - 0.06f;
  float *anchor = malloc(out->num_params * sizeof(float));
  for (size_t i = 0; i < out->num_params; i++) anchor[i] = out->params[i] + 0.5f; /* off to one side */
  train_config tc = {.batch = 2, .seq_len = 8, .grad_accum = 1, .steps = steps,
                     .optim = optim_config_default(OPTIM_SGD), .prox_mu = mu, .prox_anchor = anchor};
  tc.optim.weight_decay = 0.0f;
  tc.schedule = (lr_schedule){.kind = SCHEDULE_CONSTANT, .lr = 0.1f, .total_steps = steps};
  trainer t;
  trainer_build(&t, m, out, &tc, err, sizeof err);
  int ids[17];
  for (int i = 0; i < 17; i++) ids[i] = (i * 5 + 1) % 32;
  float mask[16];
  for (int i = 0; i < 16; i++) mask[i] = 1.0f;
  for (long s = 0; s < steps; s++) {
    if (with_data) trainer_accumulate(&t, ids, ids + 1, mask, 1.0f, 0); /* 2 rows of 8 from one stream */
    trainer_update(&t);
  }
  double d = 0;
  for (size_t i = 0; i < out->num_params; i++) d += pow(out->params[i] - anchor[i], 2);
  trainer_free(&t);
  free(anchor);
  return sqrt(d);
}

int main(void) {
  model m = tiny_model();
  lora_adapter a, b;
  /* No data gradient: one step moves every parameter by lr * mu * (anchor - w) = 0.1 * 2 * 0.5. */
  double after = drift(&m, 2.0f, 1, 0, &a);
  lora_adapter ref;
  char err[256];
  lora_config lc = a.config;
  lora_build(&ref, &m.config, &lc, err, sizeof err);
  lora_init(&ref, 9);
  for (size_t i = 0; i < ref.num_params; i++) ref.params[i] += 0.01f * (float)((i * 7919) % 13) - 0.06f;
  double worst = 0;
  for (size_t i = 0; i < a.num_params; i++) {
    double want = ref.params[i] + 0.1 * 2.0 * 0.5; /* w - lr mu (w - (w + 0.5)) */
    worst = fmax(worst, fabs(a.params[i] - want));
  }
  CHECK_MSG(worst < 1e-6, "one prox step is off by %g", worst);
  CHECK_NEAR(after, 0.4 * sqrt((double)a.num_params), 1e-5); /* distance 0.5 -> 0.4 per parameter */
  /* With data: a strong proximal term keeps the adapter nearer its anchor than none does (the anchor
   * sits 0.5 from the start in every coordinate, so without the term training ignores it). */
  double free_drift = drift(&m, 0.0f, 20, 1, &b);
  lora_free(&b);
  double held = drift(&m, 5.0f, 20, 1, &b);
  CHECK_MSG(held < free_drift, "FedProx did not hold training near the anchor: %g vs %g", held, free_drift);
  lora_free(&a);
  lora_free(&b);
  lora_free(&ref);
  model_free(&m);
  return harness_finish();
}
