/* Windows of an .ids file and the training loop's bookkeeping on a tiny random model: window arithmetic and
 * padding, evaluation counting every target once, determinism for a seed, gradient accumulation
 * equal to one larger batch, frozen A, dropout only in training, full-parameter mode, and the
 * RoPE row permutation being a true inverse pair. */
#include <stdio.h>
#include <stdlib.h>

#include "dataset.h"
#include "harness.h"
#include "llama2c.h"
#include "train.h"

static model_config tiny(void) {
  model_config c = {.dim = 16, .hidden_dim = 24, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 4,
                    .vocab_size = 32, .max_seq_len = 32, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                    .tied_classifier = 0};
  return c;
}

/* n tokens as one stream, every target counted, indexed for windows of 8. */
static dataset make_data(size_t n) {
  dataset d = {0};
  char err[256];
  int *ids = malloc(sizeof(int) * n);
  for (size_t i = 0; i < n; i++) ids[i] = (int)((i * 7 + i / 5) % 32);
  CHECK(dataset_add_tokens(&d, ids, n, 0, err, sizeof err) == 0);
  CHECK(dataset_index(&d, 8, "data", err, sizeof err) == 0);
  free(ids);
  return d;
}

/* A trainer's own draws over d, as the training command builds them. */
static data_mixture mix_of(const dataset *d, const train_config *tc) {
  data_mixture mx;
  char err[256];
  CHECK(mixture_build(&mx, (const dataset *[]){d}, (double[]){1.0}, 1, tc->shuffle, tc->seed, err, sizeof err) == 0);
  return mx;
}

static void test_windows(void) {
  char err[256], path[512];
  snprintf(path, sizeof path, "%s/data.ids", harness_tmpdir());
  FILE *f = fopen(path, "w");
  fprintf(f, "5 6 7\n8\t9 10 11 12\n13 14\n");
  fclose(f);
  record_set s;
  dataset d = {0};
  CHECK(records_read(&s, path, DATA_FORMAT_AUTO, 0, err, sizeof err) == 0);
  CHECK(dataset_add_records(&d, NULL, &s, 0.0, 0, NULL, 32, err, sizeof err) == 0);
  records_free(&s);
  CHECK_EQ_INT(d.n, 10);
  /* T = 4: windows at 0 and 4 are full (5 tokens), the one at 8 has 2 tokens (13 14): kept */
  CHECK(dataset_index(&d, 4, "data", err, sizeof err) == 0);
  CHECK_EQ_INT(d.n_windows, 3);
  int in[4], tg[4];
  float mask[4];
  CHECK_EQ_INT(dataset_window(&d, 1, in, tg, mask), 4);
  CHECK(in[0] == 9 && in[3] == 12 && tg[0] == 10 && tg[3] == 13);
  CHECK_EQ_INT(dataset_window(&d, 2, in, tg, mask), 1);
  CHECK(in[0] == 13 && tg[0] == 14 && tg[1] == -1 && mask[0] == 1.0f && mask[1] == 0.0f);
  /* T = 3: 9 targets = windows at 0, 3, 6 full; the rest is the single token 14: dropped */
  CHECK(dataset_index(&d, 3, "data", err, sizeof err) == 0);
  CHECK_EQ_INT(d.n_windows, 3);
  dataset_free(&d);

  f = fopen(path, "w");
  fprintf(f, "1 2\n3 x4\n");
  fclose(f);
  CHECK(records_read(&s, path, DATA_FORMAT_AUTO, 0, err, sizeof err) == -1);
  CHECK_STR_CONTAINS(err, ":2:3: 'x4'");
  f = fopen(path, "w");
  fprintf(f, "1 2 32\n");
  fclose(f);
  CHECK(records_read(&s, path, DATA_FORMAT_AUTO, 0, err, sizeof err) == 0);
  CHECK(dataset_add_records(&d, NULL, &s, 0.0, 0, NULL, 32, err, sizeof err) == -1);
  CHECK_STR_CONTAINS(err, "[0, 32)");
  records_free(&s);
  dataset_free(&d);

  size_t order[7], seen = 0;
  window_order(order, 7, 0, 0, 1);
  for (int i = 0; i < 7; i++) CHECK_EQ_INT(order[i], i);
  window_order(order, 7, 3, 1, 1);
  for (int i = 0; i < 7; i++) seen |= (size_t)1 << order[i];
  CHECK_EQ_INT(seen, 0x7f);
}

/* Eval counts every target exactly once, whatever the batch size. */
static void test_eval_counts(model *m) {
  char err[256];
  dataset d = make_data(53);
  double l1, t1, l2, t2;
  CHECK(evaluate_loss(m, NULL, &d, 1, &l1, &t1, err, sizeof err) == 0);
  CHECK(evaluate_loss(m, NULL, &d, 3, &l2, &t2, err, sizeof err) == 0);
  CHECK_EQ_INT((long)t1, 52);
  CHECK_EQ_INT((long)t2, 52);
  CHECK_NEAR(l1, l2, 1e-5);
  dataset_free(&d);
}

static train_config base_train(void) {
  train_config tc = {.batch = 4, .seq_len = 8, .grad_accum = 1, .steps = 5,
                     .optim = optim_config_default(OPTIM_ADAMW), .grad_clip = 1.0f, .shuffle = 1, .seed = 9};
  tc.schedule = (lr_schedule){.kind = SCHEDULE_COSINE, .lr = 1e-2f, .warmup_steps = 1, .total_steps = tc.steps};
  return tc;
}

/* Runs `steps` steps from a fresh adapter and returns it in out (caller frees). */
static void run(model *m, const dataset *d, const train_config *tc, const lora_config *lc, lora_adapter *out) {
  char err[256];
  trainer t;
  data_mixture mx = mix_of(d, tc);
  CHECK(lora_build(out, &m->config, lc, err, sizeof err) == 0);
  lora_init(out, 4);
  CHECK(trainer_build(&t, m, out, tc, err, sizeof err) == 0);
  for (long s = 0; s < tc->steps; s++) trainer_step(&t, &mx);
  trainer_free(&t);
  mixture_free(&mx);
}

static void test_determinism_and_freeze(model *m) {
  dataset d = make_data(200);
  train_config tc = base_train();
  lora_config lc = {.rank = 4, .alpha = 8.0f, .dropout = 0.1f, .targets = LORA_TARGETS_ALL};
  lora_adapter a1, a2, a3;
  run(m, &d, &tc, &lc, &a1);
  run(m, &d, &tc, &lc, &a2);
  CHECK(memcmp(a1.params, a2.params, sizeof(float) * a1.num_params) == 0);
  tc.seed = 10;
  run(m, &d, &tc, &lc, &a3);
  CHECK(memcmp(a1.params, a3.params, sizeof(float) * a1.num_params) != 0);
  lora_free(&a2);
  lora_free(&a3);

  /* frozen A: A identical to its init even with weight decay, B trained */
  lc.freeze_a = 1;
  tc.optim.weight_decay = 0.1f;
  run(m, &d, &tc, &lc, &a2);
  char err[256];
  CHECK(lora_build(&a3, &m->config, &lc, err, sizeof err) == 0);
  lora_init(&a3, 4);
  int a_same = 1, b_moved = 0;
  for (int l = 0; l < a2.n_layers; l++)
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
      a_same &= !memcmp(lora_a(&a2, a2.params, l, mod), lora_a(&a3, a3.params, l, mod),
                        sizeof(float) * a2.config.rank * a2.in_features[mod]);
      const float *b = lora_b(&a2, a2.params, l, mod);
      for (int i = 0; i < a2.out_features[mod] * a2.config.rank; i++) b_moved |= b[i] != 0.0f;
    }
  CHECK_MSG(a_same, "frozen A changed during training");
  CHECK_MSG(b_moved, "B did not train with A frozen");
  lora_free(&a1);
  lora_free(&a2);
  lora_free(&a3);
  dataset_free(&d);
}

/* Two micro-batches of 2 give the gradient of one batch of 4 when every window counts the same. */
static void test_accumulation(model *m) {
  char err[256];
  dataset d = make_data(8 * 4 + 1); /* exactly four full windows of 8 */
  train_config tc = base_train();
  tc.shuffle = 0;
  tc.grad_clip = 0.0f;
  lora_config lc = {.rank = 2, .alpha = 4.0f, .targets = LORA_TARGETS_ALL};
  lora_adapter a1, a2;
  trainer t1, t2;
  CHECK(lora_build(&a1, &m->config, &lc, err, sizeof err) == 0);
  CHECK(lora_build(&a2, &m->config, &lc, err, sizeof err) == 0);
  lora_init(&a1, 4);
  lora_init(&a2, 4);
  data_mixture m1 = mix_of(&d, &tc), m2 = mix_of(&d, &tc);
  CHECK(trainer_build(&t1, m, &a1, &tc, err, sizeof err) == 0);
  tc.batch = 2;
  tc.grad_accum = 2;
  CHECK(trainer_build(&t2, m, &a2, &tc, err, sizeof err) == 0);
  step_report r1 = trainer_step(&t1, &m1), r2 = trainer_step(&t2, &m2);
  CHECK_NEAR(r1.loss, r2.loss, 1e-6);
  CHECK_NEAR(r1.grad_norm, r2.grad_norm, 1e-5);
  r1 = trainer_step(&t1, &m1);
  r2 = trainer_step(&t2, &m2);
  CHECK_NEAR(r1.loss, r2.loss, 1e-5);
  double diff = 0.0;
  for (size_t i = 0; i < a1.num_params; i++) diff = fmax(diff, fabs(a1.params[i] - a2.params[i]));
  CHECK_MSG(diff < 1e-5, "accumulated training differs from the larger batch by %g", diff);
  trainer_free(&t1);
  trainer_free(&t2);
  lora_free(&a1);
  lora_free(&a2);
  mixture_free(&m1);
  mixture_free(&m2);
  dataset_free(&d);
}

/* Full-parameter mode goes through the same trainer and lowers the loss. */
static void test_full_params(model *m) {
  char err[256];
  dataset d = make_data(65);
  train_config tc = base_train();
  tc.steps = 30;
  tc.schedule.kind = SCHEDULE_CONSTANT;
  tc.schedule.warmup_steps = 0;
  double before, after, tokens;
  CHECK(evaluate_loss(m, NULL, &d, 4, &before, &tokens, err, sizeof err) == 0);
  trainer t;
  data_mixture mx = mix_of(&d, &tc);
  CHECK(trainer_build(&t, m, NULL, &tc, err, sizeof err) == 0);
  CHECK_EQ_INT(t.n, m->num_params);
  for (long s = 0; s < tc.steps; s++) trainer_step(&t, &mx);
  trainer_free(&t);
  mixture_free(&mx);
  CHECK(evaluate_loss(m, NULL, &d, 4, &after, &tokens, err, sizeof err) == 0);
  CHECK_MSG(after < before - 0.5, "full-parameter training: loss %.4f -> %.4f", before, after);
  dataset_free(&d);
}

/* HF <-> internal q/k row order: inverse pair, and the documented mapping. */
static void test_rope_permutation(void) {
  enum { HEADS = 2, HD = 6, COLS = 3, ROWS = HEADS * HD };
  float w[ROWS * COLS], orig[ROWS * COLS];
  for (int i = 0; i < ROWS * COLS; i++) orig[i] = w[i] = (float)i;
  rope_rows_hf_to_internal(w, HEADS, HD, COLS);
  /* internal row 2i + c of head h is HF row h*HD + c*HD/2 + i */
  for (int h = 0; h < HEADS; h++)
    for (int i = 0; i < HD / 2; i++)
      for (int c = 0; c < 2; c++)
        CHECK(w[(h * HD + 2 * i + c) * COLS] == orig[(h * HD + c * HD / 2 + i) * COLS]);
  rope_rows_internal_to_hf(w, HEADS, HD, COLS);
  CHECK(memcmp(w, orig, sizeof w) == 0);
}

/* llama2c_save then llama2c_load is the identity, and a file with a bad size is refused. */
static void test_llama2c_roundtrip(model *m) {
  char err[512], path[512];
  snprintf(path, sizeof path, "%s/tiny.bin", harness_tmpdir());
  CHECK(llama2c_save(m, path, err, sizeof err) == 0);
  model back;
  CHECK(llama2c_load(&back, path, err, sizeof err) == 0);
  CHECK_EQ_INT(back.config.tied_classifier, 0);
  CHECK(back.num_params == m->num_params && !memcmp(back.params, m->params, sizeof(float) * m->num_params));
  model_free(&back);
  FILE *f = fopen(path, "ab");
  fputc(0, f);
  fclose(f);
  CHECK(llama2c_load(&back, path, err, sizeof err) == -1);
  CHECK_STR_CONTAINS(err, "does not match its header");
}

int main(void) {
  char err[256];
  model m;
  model_config c = tiny();
  CHECK(model_build(&m, &c, err, sizeof err) == 0);
  model_init_random(&m, 5, 0.3f);
  test_windows();
  test_eval_counts(&m);
  test_determinism_and_freeze(&m);
  test_accumulation(&m);
  test_rope_permutation();
  test_llama2c_roundtrip(&m);
  test_full_params(&m); /* last: it changes the model */
  model_free(&m);
  return harness_finish();
}
