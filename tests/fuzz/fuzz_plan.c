/* The run plan a site receives in JoinResponse, as site_trainer_plan takes it: protobuf decoding,
 * plan_lora_config and plan_train_config, then the adapter built from the plan's LoRA settings for
 * a tiny model (lora_build checks what the plan conversion passes through, such as dropout). */
#include "fedlora.pb-c.h"
#include "fuzz_input.h"
#include "plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_dir(); /* quiets the log */
  Fedlora__V1__JoinResponse *plan = fedlora__v1__join_response__unpack(NULL, size, data);
  if (!plan) return 0;
  model_config c = {.dim = 8, .hidden_dim = 16, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .head_dim = 4,
                    .vocab_size = 16, .max_seq_len = 8, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                    .tied_classifier = 1};
  lora_config lc;
  train_config tc;
  lora_adapter ad;
  char err[512];
  if (plan_lora_config(plan->lora, &lc, err, sizeof err) == 0 &&
      plan_train_config(plan->train, 1, 0, &tc, err, sizeof err) == 0 &&
      lora_build(&ad, &c, &lc, err, sizeof err) == 0)
    lora_free(&ad);
  fedlora__v1__join_response__free_unpacked(plan, NULL);
  return 0;
}
