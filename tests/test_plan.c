/* The run plan a site receives: a valid plan turns into the engine's settings field by field, and
 * plans no aggregator would send are refused naming the field (fuzz_plan drives the same path). */
#include <math.h>

#include "harness.h"
#include "plan.h"

static Fedlora__V1__TrainConfig train_plan(void) {
  Fedlora__V1__TrainConfig t = FEDLORA__V1__TRAIN_CONFIG__INIT;
  t.optimizer = "adamw";
  t.lr = 3e-4;
  t.local_steps = 20;
  t.batch = 4;
  t.seq_len = 64;
  t.weight_decay = 0.01;
  t.grad_clip = 1.0;
  t.beta1 = 0.9;
  t.beta2 = 0.999;
  t.eps = 1e-8;
  t.warmup = 2;
  t.schedule = "cosine";
  return t;
}

static void expect_train_refused(const Fedlora__V1__TrainConfig *t, const char *needle) {
  train_config tc;
  char err[512] = "";
  CHECK(plan_train_config(t, 1, 0, &tc, err, sizeof err) != 0);
  CHECK_STR_CONTAINS(err, needle);
}

static void test_train(void) {
  Fedlora__V1__TrainConfig t = train_plan();
  train_config tc;
  char err[512] = "";
  CHECK_MSG(plan_train_config(&t, 20, 77, &tc, err, sizeof err) == 0, "%s", err);
  CHECK_EQ_INT(tc.batch, 4);
  CHECK_EQ_INT(tc.seq_len, 64);
  CHECK_EQ_INT(tc.steps, 20);
  CHECK_EQ_INT(tc.seed, 77);
  CHECK_EQ_INT(tc.optim.kind, OPTIM_ADAMW);
  CHECK_NEAR(tc.optim.beta2, 0.999, 1e-7);
  CHECK_NEAR(tc.schedule.lr, 3e-4, 1e-7);
  CHECK_EQ_INT(tc.schedule.kind, SCHEDULE_COSINE);
  CHECK_EQ_INT(tc.schedule.warmup_steps, 2);
  CHECK_EQ_INT(tc.schedule.total_steps, 20);

  Fedlora__V1__TrainConfig bad = t;
  bad.optimizer = "lion";
  expect_train_refused(&bad, "unknown optimizer 'lion'");
  bad = t;
  bad.lr = NAN;
  expect_train_refused(&bad, "lr nan");
  /* Found reviewing fuzz_plan's path: the site computes (long)ceil(local_epochs * windows / batch),
   * undefined for a NaN, infinite or huge local_epochs, and sizes buffers by batch * seq_len. */
  double epochs[] = {NAN, INFINITY, -1, 1e300};
  for (int i = 0; i < 4; i++) {
    bad = t;
    bad.local_epochs = epochs[i];
    expect_train_refused(&bad, "local_epochs");
  }
  bad = t;
  bad.batch = 0x80000000u;
  expect_train_refused(&bad, "batch 2147483648");
  bad = t;
  bad.seq_len = 1u << 30;
  expect_train_refused(&bad, "seq_len 1073741824");
  CHECK(plan_train_config(NULL, 1, 0, &(train_config){0}, err, sizeof err) != 0);
  CHECK_STR_CONTAINS(err, "no train section");
}

static void test_lora(void) {
  Fedlora__V1__LoraConfig l = FEDLORA__V1__LORA_CONFIG__INIT;
  char *targets[] = {"q_proj", "down_proj"};
  l.rank = 8;
  l.alpha = 16;
  l.n_target_modules = 2;
  l.target_modules = targets;
  l.mode = FEDLORA__V1__LORA_MODE__LORA_MODE_FFA;
  lora_config lc;
  char err[512] = "";
  CHECK_MSG(plan_lora_config(&l, &lc, err, sizeof err) == 0, "%s", err);
  CHECK_EQ_INT(lc.rank, 8);
  CHECK_EQ_INT(lc.targets, (1u << LORA_Q) | (1u << LORA_DOWN));
  CHECK_EQ_INT(lc.freeze_a, 1);
  l.rank = 5000;
  CHECK(plan_lora_config(&l, &lc, err, sizeof err) != 0);
  CHECK_STR_CONTAINS(err, "lora.rank: 5000");
}

int main(void) {
  test_train();
  test_lora();
  return harness_finish();
}
