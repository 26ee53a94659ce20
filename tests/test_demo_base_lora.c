/* The embedded demo base model (models/demo-base): within its size budget, good at the generic text it
 * was pretrained on, new to the departments' records, and LoRA training on one department's records
 * lowers that department's validation loss by a clear margin. Data goes through the same path as
 * `fedlora train`: JSONL files, the model's own tokenizer, site_data_load. Losses are mean
 * cross-entropy in nats per byte over the tokens the dataset layer counts: a site record's
 * completion and EOS (not the prompt), a generic record's text and EOS.
 * FEDLORA_LORA_SITES=all trains one adapter per department instead of cardiology only. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset_site.h"
#include "harness.h"
#include "hf_model.h"
#include "model_tokenizer.h"
#include "synth.h"
#include "train.h"

/* sized to run in well under a minute on 2 threads */
enum { BATCH = 4, EVAL_BATCH = 8, SEQ = 256, STEPS = 40, TRAIN_RECORDS = 300, VAL_RECORDS = 40 };

static const char *records_write(synth_source s, uint64_t seed, long count, const char *dir) {
  static char paths[4][4096];
  static int next;
  char *path = paths[next++ % 4], err[512];
  snprintf(path, sizeof paths[0], "%s/%s-%llu.jsonl", dir, synth_source_name(s), (unsigned long long)seed);
  FILE *f = fopen(path, "w");
  int rc = f ? synth_write(f, s, seed, count, err, sizeof err) : -1;
  if (f) fclose(f);
  CHECK_MSG(rc == 0, "%s: %s", path, f ? err : "cannot create");
  return path;
}

/* Validation records (seed 1000) of one source, packed for the model. */
static int val_load(dataset *d, synth_source s, const tokenizer *tok, const char *dir) {
  char err[512];
  const char *path = records_write(s, 1000, VAL_RECORDS, dir);
  record_set set;
  int rc = records_read(&set, path, DATA_FORMAT_JSONL, 0, err, sizeof err);
  if (rc == 0) {
    rc = dataset_add_records(d, NULL, &set, 0.0, 0, tok, 259, err, sizeof err);
    if (rc == 0) rc = dataset_index(d, SEQ, path, err, sizeof err);
    records_free(&set);
  }
  CHECK_MSG(rc == 0, "%s", err);
  unlink(path);
  return rc;
}

static double loss_of(const model *m, const lora_adapter *ad, const dataset *d) {
  char err[512];
  double loss = 0.0, tokens = 0.0;
  CHECK_MSG(evaluate_loss(m, ad, d, EVAL_BATCH, &loss, &tokens, err, sizeof err) == 0, "%s", err);
  return loss;
}

/* Trains a LoRA adapter on the site's training records (seed 1) as `fedlora train` loads them;
 * returns the loss on val with it. */
static double lora_site_loss(model *m, synth_source site, const tokenizer *tok, const dataset *val, const char *dir) {
  char err[512];
  site_data sd;
  const char *train = records_write(site, 1, TRAIN_RECORDS, dir);
  data_spec spec = {.data = train, .format = DATA_FORMAT_JSONL};
  int rc = site_data_load(&sd, &spec, tok, 259, SEQ, 1, 3, err, sizeof err);
  CHECK_MSG(rc == 0, "%s", err);
  unlink(train);
  if (rc) return 1e9;
  lora_config lc = {.rank = 8, .alpha = 16.0f, .targets = LORA_TARGETS_ALL};
  lora_adapter ad;
  CHECK(lora_build(&ad, &m->config, &lc, err, sizeof err) == 0);
  lora_init(&ad, 7);
  train_config tc = {.batch = BATCH, .seq_len = SEQ, .grad_accum = 1, .steps = STEPS,
                     .optim = optim_config_default(OPTIM_ADAMW), .grad_clip = 1.0f, .shuffle = 1, .seed = 3};
  tc.optim.weight_decay = 0.0f;
  tc.schedule = (lr_schedule){.kind = SCHEDULE_COSINE, .lr = 4e-3f, .warmup_steps = 5, .total_steps = STEPS};
  trainer t;
  CHECK(trainer_build(&t, m, &ad, &tc, err, sizeof err) == 0);
  step_report first = trainer_step(&t, &sd.mix), last = first;
  for (long s = 1; s < STEPS; s++) last = trainer_step(&t, &sd.mix);
  double after = loss_of(m, &ad, val);
  printf("  LoRA r 8 on %s (%d steps of %dx%d): train loss %.4f -> %.4f, val loss %.4f\n", synth_source_name(site),
         STEPS, BATCH, SEQ, first.loss, last.loss, after);
  trainer_free(&t);
  lora_free(&ad);
  site_data_free(&sd);
  return after;
}

int main(void) {
  const char *dir_model = harness_source("models/demo-base");
  char err[512], path[4096];
  snprintf(path, sizeof path, "%s/model.safetensors", dir_model);
  struct stat st;
  CHECK_MSG(stat(path, &st) == 0 && st.st_size <= 4 * 1024 * 1024, "%s must exist and be at most 4 MB", path);
  model m;
  int rc = hf_model_load(&m, dir_model, err, sizeof err);
  CHECK_MSG(rc == 0, "%s", err);
  if (rc) return harness_finish();
  CHECK_EQ_INT(m.config.vocab_size, 259);
  CHECK_EQ_INT(m.config.max_seq_len, SEQ);
  tokenizer *tok = tokenizer_for_model(dir_model, NULL, m.config.vocab_size, err, sizeof err);
  CHECK_MSG(tok != NULL, "%s", err);
  if (!tok) return harness_finish();

  const char *dir = harness_tmpdir();
  dataset val[SYNTH_NUM_SOURCES] = {{0}};
  double base[SYNTH_NUM_SOURCES];
  for (int s = 0; s < SYNTH_NUM_SOURCES; s++) {
    if (val_load(&val[s], s, tok, dir) != 0) return harness_finish();
    base[s] = loss_of(&m, NULL, &val[s]);
    printf("base model: %s val loss %.4f (%zu counted tokens)\n", synth_source_name(s), base[s], val[s].counted_tokens);
  }
  CHECK_MSG(base[SYNTH_GENERIC] < 0.5, "the base model should know the generic text: loss %.4f", base[SYNTH_GENERIC]);
  for (int s = 0; s < SYNTH_GENERIC; s++)
    CHECK_MSG(base[s] > base[SYNTH_GENERIC] + 0.5, "%s should be new to the base model: loss %.4f vs generic %.4f",
              synth_source_name(s), base[s], base[SYNTH_GENERIC]);
  const char *sites = getenv("FEDLORA_LORA_SITES");
  int all = sites && !strcmp(sites, "all");
  for (int s = 0; s < (all ? SYNTH_GENERIC : 1); s++) {
    double after = lora_site_loss(&m, s, tok, &val[s], dir);
    CHECK_MSG(after < 0.4 * base[s] && base[s] - after > 2.0,
              "LoRA on %s moved its val loss only from %.4f to %.4f (want below 40%% and 2 nats lower)",
              synth_source_name(s), base[s], after);
  }
  for (int s = 0; s < SYNTH_NUM_SOURCES; s++) dataset_free(&val[s]);
  tokenizer_free(tok);
  model_free(&m);
  rmdir(dir);
  return harness_finish();
}
