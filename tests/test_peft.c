/* PEFT adapter directories: save -> load is exact; the files follow PEFT's names, shapes, config keys
 * and HF q/k row order; configs and weights that do not fit are rejected, naming what is wrong. */
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#include "fsutil.h"
#include "harness.h"
#include "lora.h"
#include "model.h"
#include "peft.h"
#include "safetensors.h"

static char err[1024];
static const char *dir;
static const model_config cfg_model = {.dim = 32, .hidden_dim = 48, .n_layers = 3, .n_heads = 4, .n_kv_heads = 2,
                                       .head_dim = 8, .vocab_size = 50, .max_seq_len = 64, .norm_eps = 1e-5f,
                                       .rope_theta = 10000.0f, .tied_classifier = 1};

static void fill_random(float *x, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x[i] = (float)((double)(seed >> 40) / 16777216.0 - 0.5);
  }
}

static const char *sub(const char *name) {
  static char paths[8][512];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

/* HF row h*hd + j*hd/2 + i of the saved B holds internal row h*hd + 2i + j (independent of rope_rows_*). */
static int count_rope_mismatches(const float *hf, const float *internal, int heads, int hd, int r) {
  int bad = 0;
  for (int h = 0; h < heads; h++)
    for (int i = 0; i < hd / 2; i++)
      for (int j = 0; j < 2; j++)
        bad += memcmp(hf + (size_t)(h * hd + j * hd / 2 + i) * r, internal + (size_t)(h * hd + 2 * i + j) * r,
                      sizeof(float) * r) != 0;
  return bad;
}

static void check_files(const lora_adapter *ad, const char *out) {
  char path[600];
  snprintf(path, sizeof path, "%s/adapter_config.json", out);
  json_t *c = json_load_file(path, 0, NULL);
  CHECK(c != NULL);
  CHECK_STR_CONTAINS(json_string_value(json_object_get(c, "peft_type")), "LORA");
  CHECK_STR_CONTAINS(json_string_value(json_object_get(c, "task_type")), "CAUSAL_LM");
  CHECK_STR_CONTAINS(json_string_value(json_object_get(c, "bias")), "none");
  CHECK_STR_CONTAINS(json_string_value(json_object_get(c, "base_model_name_or_path")), "stories-test");
  CHECK_EQ_INT(json_integer_value(json_object_get(c, "r")), 4);
  CHECK_EQ_INT(json_integer_value(json_object_get(c, "lora_alpha")), 16); /* integral alpha as an integer */
  CHECK_NEAR(json_real_value(json_object_get(c, "lora_dropout")), 0.05, 1e-12);
  CHECK(json_is_true(json_object_get(c, "use_rslora")));
  CHECK(json_is_false(json_object_get(c, "fan_in_fan_out")));
  CHECK(json_is_true(json_object_get(c, "inference_mode")));
  CHECK(json_is_true(json_object_get(c, "init_lora_weights")));
  CHECK(json_is_null(json_object_get(c, "modules_to_save")));
  CHECK(json_is_null(json_object_get(c, "layers_to_transform")));
  json_t *targets = json_object_get(c, "target_modules");
  CHECK_EQ_INT(json_array_size(targets), 4);
  CHECK_STR_CONTAINS(json_string_value(json_array_get(targets, 0)), "q_proj");
  CHECK_STR_CONTAINS(json_string_value(json_array_get(targets, 3)), "down_proj");
  json_decref(c);

  snprintf(path, sizeof path, "%s/adapter_model.safetensors", out);
  st_file f;
  if (st_file_open(&f, path, err, sizeof err) != 0) {
    CHECK_MSG(0, "%s", err);
    return;
  }
  CHECK_EQ_INT(f.n_tensors, 3 * 4 * 2);
  const st_tensor *qa = st_file_find(&f, "base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight");
  const st_tensor *qb = st_file_find(&f, "base_model.model.model.layers.2.self_attn.q_proj.lora_B.weight");
  const st_tensor *kb = st_file_find(&f, "base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight");
  const st_tensor *vb = st_file_find(&f, "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight");
  const st_tensor *da = st_file_find(&f, "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight");
  CHECK(qa && qa->ndim == 2 && qa->shape[0] == 4 && qa->shape[1] == 32);
  CHECK(qb && qb->shape[0] == 32 && qb->shape[1] == 4);
  CHECK(kb && kb->shape[0] == 16 && kb->shape[1] == 4);
  CHECK(da && da->shape[0] == 4 && da->shape[1] == 48);
  if (qb && kb && vb && qa) {
    float hf[32 * 4];
    st_tensor_to_f32(&f, qb, hf, err, sizeof err);
    CHECK_EQ_INT(count_rope_mismatches(hf, lora_b(ad, ad->params, 2, LORA_Q), 4, 8, 4), 0);
    st_tensor_to_f32(&f, kb, hf, err, sizeof err);
    CHECK_EQ_INT(count_rope_mismatches(hf, lora_b(ad, ad->params, 1, LORA_K), 2, 8, 4), 0);
    /* v is not rotated, A never is: stored as is */
    st_tensor_to_f32(&f, vb, hf, err, sizeof err);
    CHECK(memcmp(hf, lora_b(ad, ad->params, 0, LORA_V), sizeof(float) * 16 * 4) == 0);
    st_tensor_to_f32(&f, qa, hf, err, sizeof err);
    CHECK(memcmp(hf, lora_a(ad, ad->params, 2, LORA_Q), sizeof(float) * 4 * 32) == 0);
  }
  st_file_close(&f);
}

/* A copy of src's adapter with config key set to value (NULL deletes it). */
static const char *with_config_edit(const char *src, const char *name, const char *key, json_t *value) {
  const char *out = sub(name);
  char from[600], to[600];
  fs_mkdir_p(out, 0755, err, sizeof err);
  snprintf(from, sizeof from, "%s/adapter_model.safetensors", src);
  snprintf(to, sizeof to, "%s/adapter_model.safetensors", out);
  CHECK_EQ_INT(symlink(from, to), 0);
  snprintf(from, sizeof from, "%s/adapter_config.json", src);
  json_t *c = json_load_file(from, 0, NULL);
  if (value) json_object_set_new(c, key, value);
  else json_object_del(c, key);
  snprintf(to, sizeof to, "%s/adapter_config.json", out);
  json_dump_file(c, to, JSON_INDENT(2));
  json_decref(c);
  return out;
}

static void expect_error(const model_config *c, const char *adapter_dir, const char *message) {
  lora_adapter ad;
  err[0] = '\0';
  int rc = peft_load(&ad, c, adapter_dir, err, sizeof err);
  CHECK_MSG(rc == -1, "%s: loaded a mismatched adapter", adapter_dir);
  if (rc == 0) lora_free(&ad);
  CHECK_STR_CONTAINS(err, message);
}

int main(void) {
  dir = harness_tmpdir();
  lora_config lc = {.rank = 4, .alpha = 16.0f, .use_rslora = 1, .dropout = 0.05f,
                    .targets = (1u << LORA_Q) | (1u << LORA_K) | (1u << LORA_V) | (1u << LORA_DOWN)};
  lora_adapter ad, back;
  CHECK_EQ_INT(lora_build(&ad, &cfg_model, &lc, err, sizeof err), 0);
  fill_random(ad.params, ad.num_params, 42);

  char saved[512];
  snprintf(saved, sizeof saved, "%s", sub("adapter"));
  int rc = peft_save(&ad, &cfg_model, saved, "stories-test", err, sizeof err);
  CHECK_MSG(rc == 0, "peft_save: %s", err);
  check_files(&ad, saved);

  rc = peft_load(&back, &cfg_model, saved, err, sizeof err);
  CHECK_MSG(rc == 0, "peft_load: %s", err);
  if (rc == 0) {
    CHECK_EQ_INT(back.config.rank, 4);
    CHECK(back.config.alpha == 16.0f && back.config.dropout == 0.05f && back.config.use_rslora == 1);
    CHECK_EQ_INT(back.config.targets, lc.targets);
    CHECK_NEAR(back.scale, 16.0 / 2.0, 1e-7); /* rsLoRA: alpha / sqrt(r) */
    CHECK_EQ_INT(back.num_params, ad.num_params);
    CHECK_MSG(back.num_params == ad.num_params && memcmp(back.params, ad.params, sizeof(float) * ad.num_params) == 0,
              "round trip is not exact");
    lora_free(&back);
  }
  /* a fractional alpha survives too */
  lora_adapter frac;
  lora_config lf = lc;
  lf.alpha = 0.3f;
  lf.use_rslora = 0;
  lf.targets = LORA_TARGETS_ALL;
  CHECK_EQ_INT(lora_build(&frac, &cfg_model, &lf, err, sizeof err), 0);
  fill_random(frac.params, frac.num_params, 7);
  CHECK_EQ_INT(peft_save(&frac, &cfg_model, sub("frac"), NULL, err, sizeof err), 0);
  rc = peft_load(&back, &cfg_model, sub("frac"), err, sizeof err);
  CHECK_MSG(rc == 0, "frac: %s", err);
  if (rc == 0) {
    CHECK(back.config.alpha == 0.3f && back.config.targets == LORA_TARGETS_ALL);
    CHECK(memcmp(back.params, frac.params, sizeof(float) * frac.num_params) == 0);
    lora_free(&back);
  }
  lora_free(&frac);

  /* a different model: shapes do not fit */
  model_config wider = cfg_model;
  wider.dim = 40;
  wider.n_heads = 5;
  expect_error(&wider, saved, "q_proj.lora_A.weight\": shape (4, 32), expected (4, 40)");
  model_config deeper = cfg_model;
  deeper.n_layers = 4;
  expect_error(&deeper, saved, "tensor \"base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight\" is missing");
  model_config shallower = cfg_model;
  shallower.n_layers = 2;
  expect_error(&shallower, saved, "layers.2.self_attn.q_proj.lora_A.weight\" does not belong to this adapter");

  /* config and weights disagree */
  expect_error(&cfg_model, with_config_edit(saved, "r8", "r", json_integer(8)), "shape (4, 32), expected (8, 32)");
  expect_error(&cfg_model, with_config_edit(saved, "fewer", "target_modules", json_pack("[s,s,s]", "q_proj", "k_proj", "down_proj")),
               "v_proj.lora_A.weight\" does not belong to this adapter");
  expect_error(&cfg_model, with_config_edit(saved, "more", "target_modules", json_pack("[s,s,s,s,s]", "q_proj", "k_proj", "v_proj", "down_proj", "o_proj")),
               "o_proj.lora_A.weight\" is missing");

  /* settings we cannot honour are named */
  expect_error(&cfg_model, with_config_edit(saved, "prefix", "peft_type", json_string("PREFIX_TUNING")),
               "field \"peft_type\": \"PREFIX_TUNING\" is not supported");
  expect_error(&cfg_model, with_config_edit(saved, "seq", "task_type", json_string("SEQ_CLS")), "field \"task_type\"");
  expect_error(&cfg_model, with_config_edit(saved, "bias", "bias", json_string("all")), "field \"bias\": only \"none\"");
  expect_error(&cfg_model, with_config_edit(saved, "dora", "use_dora", json_true()), "field \"use_dora\"");
  expect_error(&cfg_model, with_config_edit(saved, "fifo", "fan_in_fan_out", json_true()), "field \"fan_in_fan_out\"");
  expect_error(&cfg_model, with_config_edit(saved, "layers", "layers_to_transform", json_pack("[i]", 0)),
               "field \"layers_to_transform\"");
  expect_error(&cfg_model, with_config_edit(saved, "save", "modules_to_save", json_pack("[s]", "lm_head")),
               "field \"modules_to_save\"");
  expect_error(&cfg_model, with_config_edit(saved, "rankpat", "rank_pattern", json_pack("{s:i}", "q_proj", 8)),
               "field \"rank_pattern\"");
  expect_error(&cfg_model, with_config_edit(saved, "lmhead", "target_modules", json_pack("[s,s]", "q_proj", "lm_head")),
               "field \"target_modules\"[1]: \"lm_head\" is not an adaptable module");
  expect_error(&cfg_model, with_config_edit(saved, "regex", "target_modules", json_string(".*proj")),
               "field \"target_modules\": a regular expression is not supported");
  expect_error(&cfg_model, with_config_edit(saved, "nor", "r", NULL), "field \"r\" is missing");
  expect_error(&cfg_model, with_config_edit(saved, "badr", "r", json_integer(0)), "field \"r\": expected > 0, got 0");
  expect_error(&cfg_model, with_config_edit(saved, "drop", "lora_dropout", json_real(1.5)), "field \"lora_dropout\"");
  expect_error(&cfg_model, sub("absent"), "adapter_config.json");

  /* "all-linear" is PEFT's shorthand for every projection */
  lora_config all;
  const char *al = with_config_edit(saved, "alllinear", "target_modules", json_string("all-linear"));
  CHECK_EQ_INT(peft_config_load(&all, al, err, sizeof err), 0);
  CHECK_EQ_INT(all.targets, LORA_TARGETS_ALL);

  lora_free(&ad);
  if (harness_failures == 0) fs_remove_tree(dir, err, sizeof err);
  return harness_finish();
}
