/* LoRA fine-tuning of stories260K on a short repeated sequence: the adapted model at step 0 is the
 * base model exactly (B = 0), and training drives the loss near zero. */
#include <stdio.h>
#include <stdlib.h>

#include "dataset.h"
#include "harness.h"
#include "llama2c.h"
#include "train.h"

enum { PERIOD = 12, BATCH = 4, SEQ = 32 };

int main(void) {
  const char *ckpt = harness_shared("stories260K/stories260K.bin");
  char err[512];
  model m;
  int rc = llama2c_load(&m, ckpt, err, sizeof err);
  CHECK_MSG(rc == 0, "%s", err);
  if (rc) return harness_finish();

  /* Distinct tokens, so every next token is determined by the current one and loss 0 is reachable.
   * They are tokens the model uses (from its greedy output): ids it never saw in training share one
   * embedding vector, and with a tied classifier a LoRA cannot tell such targets apart. */
  static const int pattern[PERIOD] = {461, 401, 378, 455, 473, 456, 435, 299, 362, 409, 283, 264};
  int ids[BATCH * SEQ + 1];
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) ids[i] = pattern[i % PERIOD];
  dataset data = {0};
  CHECK(dataset_add_tokens(&data, ids, sizeof ids / sizeof ids[0], 0, err, sizeof err) == 0);
  CHECK(dataset_index(&data, SEQ, "pattern", err, sizeof err) == 0);
  CHECK_EQ_INT(data.n_windows, BATCH);

  double base_loss, base_tokens;
  CHECK(evaluate_loss(&m, NULL, &data, BATCH, &base_loss, &base_tokens, err, sizeof err) == 0);
  CHECK_EQ_INT((long long)base_tokens, (long long)data.n - 1);

  lora_config lc = {.rank = 8, .alpha = 16.0f, .targets = LORA_TARGETS_ALL};
  lora_adapter ad;
  CHECK(lora_build(&ad, &m.config, &lc, err, sizeof err) == 0);
  lora_init(&ad, 42);
  double init_loss, init_tokens;
  CHECK(evaluate_loss(&m, &ad, &data, BATCH, &init_loss, &init_tokens, err, sizeof err) == 0);
  CHECK_MSG(init_loss == base_loss, "adapter at init changes the loss: %.17g vs base %.17g", init_loss, base_loss);

  train_config tc = {.batch = BATCH, .seq_len = SEQ, .grad_accum = 1, .steps = 60,
                     .optim = optim_config_default(OPTIM_ADAMW), .grad_clip = 1.0f, .shuffle = 0, .seed = 1};
  tc.optim.weight_decay = 0.0f;
  tc.schedule = (lr_schedule){.kind = SCHEDULE_CONSTANT, .lr = 1e-2f, .total_steps = tc.steps};
  trainer t;
  data_mixture mx;
  CHECK(mixture_build(&mx, (const dataset *[]){&data}, (double[]){1.0}, 1, tc.shuffle, tc.seed, err, sizeof err) == 0);
  CHECK(trainer_build(&t, &m, &ad, &tc, err, sizeof err) == 0);
  step_report first = trainer_step(&t, &mx), r = first;
  CHECK_MSG(first.loss == base_loss, "step 0 loss %.17g differs from the base model's %.17g", first.loss, base_loss);
  for (long s = 1; s < tc.steps; s++) r = trainer_step(&t, &mx);
  double final_loss, final_tokens;
  CHECK(evaluate_loss(&m, &ad, &data, BATCH, &final_loss, &final_tokens, err, sizeof err) == 0);
  printf("base loss %.4f, step-0 loss %.4f, last step loss %.4f, final eval loss %.4f\n", base_loss, first.loss,
         r.loss, final_loss);
  CHECK_MSG(base_loss > 5.0, "the base model should not know this sequence (loss %.3f)", base_loss);
  CHECK_MSG(final_loss < 0.01, "training did not fit the repeated sequence: loss %.4f", final_loss);

  trainer_free(&t);
  mixture_free(&mx);
  lora_free(&ad);
  dataset_free(&data);
  model_free(&m);
  return harness_finish();
}
