/* Hugging Face directories: stories260K rewritten with HF names and HF q/k row order loads back to the
 * same weights and logits (single file, sharded, f16, bf16); an untied model keeps lm_head; broken
 * configs and checkpoints are rejected with messages naming the field or tensor. */
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#include "fsutil.h"
#include "half.h"
#include "harness.h"
#include "hf_model.h"
#include "llama2c.h"
#include "model.h"
#include "safetensors.h"

enum { T = 16 };
static char err[1024];
static const char *dir;
static int tokens[T];

/* Logits (T, V) of the model on `tokens`; caller frees. */
static float *logits_of(const model *m) {
  model_activations a;
  if (activations_build(&a, &m->config, NULL, 1, T, 0, err, sizeof err) != 0) {
    CHECK_MSG(0, "activations_build: %s", err);
    return NULL;
  }
  model_forward(m, NULL, &a, tokens, 0);
  int V = m->config.vocab_size;
  float *out = malloc(sizeof(float) * T * V);
  for (int t = 0; t < T; t++) model_logits_row(m, &a, t, out + (size_t)t * V);
  activations_free(&a);
  return out;
}

static void check_logits_match(const float *want, const model *m, const char *what) {
  float *got = logits_of(m);
  if (!got || !want) {
    free(got);
    return;
  }
  double worst = 0;
  for (size_t i = 0; i < (size_t)T * m->config.vocab_size; i++) worst = fmax(worst, fabs(got[i] - want[i]));
  CHECK_MSG(worst <= 1e-5, "%s: logits differ by up to %g", what, worst);
  free(got);
}

static const char *sub(const char *name) {
  static char paths[8][512];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

/* Independent of rope_rows_*: HF row h*hd + j*hd/2 + i holds internal row h*hd + 2i + j. */
static void check_hf_row_order(const st_file *f, const char *name, const float *internal, int heads, int hd,
                               int cols) {
  const st_tensor *t = st_file_find(f, name);
  CHECK_MSG(t != NULL, "%s missing", name);
  if (!t) return;
  float *hf = malloc(sizeof(float) * (size_t)t->numel);
  CHECK_EQ_INT(st_tensor_to_f32(f, t, hf, err, sizeof err), 0);
  int mismatches = 0;
  for (int h = 0; h < heads; h++)
    for (int i = 0; i < hd / 2; i++)
      for (int j = 0; j < 2; j++)
        mismatches += memcmp(hf + (size_t)(h * hd + j * hd / 2 + i) * cols,
                             internal + (size_t)(h * hd + 2 * i + j) * cols, sizeof(float) * cols) != 0;
  CHECK_MSG(mismatches == 0, "%s: %d rows not in HF half-split order", name, mismatches);
  free(hf);
}

static void check_same_params(const model *a, const model *b, const char *what) {
  CHECK_EQ_INT(a->num_params, b->num_params);
  CHECK_MSG(a->num_params == b->num_params && memcmp(a->params, b->params, sizeof(float) * a->num_params) == 0,
            "%s: weights differ", what);
}

/* A copy of src_dir's checkpoint with config.json's `key` set to value (NULL deletes it). */
static const char *with_config_edit(const char *src_dir, const char *name, const char *key, json_t *value) {
  const char *out = sub(name);
  fs_mkdir_p(out, 0755, err, sizeof err);
  char from[600], to[600];
  snprintf(from, sizeof from, "%s/model.safetensors", src_dir);
  snprintf(to, sizeof to, "%s/model.safetensors", out);
  CHECK_EQ_INT(symlink(from, to), 0);
  snprintf(from, sizeof from, "%s/config.json", src_dir);
  json_t *cfg = json_load_file(from, 0, NULL);
  if (value) json_object_set_new(cfg, key, value);
  else json_object_del(cfg, key);
  snprintf(to, sizeof to, "%s/config.json", out);
  json_dump_file(cfg, to, JSON_INDENT(2));
  json_decref(cfg);
  return out;
}

static void expect_load_error(const char *path, const char *message) {
  model m;
  err[0] = '\0';
  int rc = hf_model_load(&m, path, err, sizeof err);
  CHECK_MSG(rc == -1, "%s: loaded a broken checkpoint", path);
  if (rc == 0) model_free(&m);
  CHECK_STR_CONTAINS(err, message);
}

static void test_stories(void) {
  model base;
  int rc = llama2c_load(&base, harness_shared("stories260K/stories260K.bin"), err, sizeof err);
  CHECK_MSG(rc == 0, "llama2c_load: %s", err);
  if (rc) return;
  const model_config *c = &base.config;
  float *want = logits_of(&base);

  char f32[512]; /* kept: sub()'s buffers rotate */
  snprintf(f32, sizeof f32, "%s", sub("f32"));
  rc = hf_model_save(&base, f32, ST_F32, 0, err, sizeof err);
  CHECK_MSG(rc == 0, "hf_model_save: %s", err);
  st_file f;
  char path[600];
  snprintf(path, sizeof path, "%s/model.safetensors", f32);
  if (st_file_open(&f, path, err, sizeof err) == 0) {
    int D = c->dim, hd = c->head_dim;
    check_hf_row_order(&f, "model.layers.1.self_attn.q_proj.weight", base.weights.wq + (size_t)1 * D * D,
                       c->n_heads, hd, D);
    check_hf_row_order(&f, "model.layers.2.self_attn.k_proj.weight",
                       base.weights.wk + (size_t)2 * c->n_kv_heads * hd * D, c->n_kv_heads, hd, D);
    CHECK(st_file_find(&f, "lm_head.weight") == NULL); /* tied */
    CHECK_EQ_INT(f.n_tensors, 2 + 9 * c->n_layers);
    CHECK_STR_CONTAINS(st_file_metadata(&f, "format"), "pt");
    st_file_close(&f);
  } else {
    CHECK_MSG(0, "%s", err);
  }
  snprintf(path, sizeof path, "%s/config.json", f32);
  json_t *cfg = json_load_file(path, 0, NULL);
  CHECK_STR_CONTAINS(json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0)), "LlamaForCausalLM");
  CHECK_EQ_INT(json_integer_value(json_object_get(cfg, "num_key_value_heads")), 4);
  CHECK_EQ_INT(json_integer_value(json_object_get(cfg, "intermediate_size")), 172);
  CHECK(json_is_true(json_object_get(cfg, "tie_word_embeddings")));
  CHECK_NEAR(json_real_value(json_object_get(cfg, "rms_norm_eps")), 1e-5, 1e-12);
  json_decref(cfg);

  model hf;
  rc = hf_model_load(&hf, f32, err, sizeof err);
  CHECK_MSG(rc == 0, "hf_model_load: %s", err);
  if (rc == 0) {
    CHECK(memcmp(&hf.config, c, sizeof *c) == 0);
    check_same_params(&hf, &base, "f32");
    check_logits_match(want, &hf, "f32");
    model_free(&hf);
  }

  /* sharded: ~100 KB shards give several files and an index */
  char sharded[512];
  snprintf(sharded, sizeof sharded, "%s", sub("sharded"));
  CHECK_EQ_INT(hf_model_save(&base, sharded, ST_F32, 100000, err, sizeof err), 0);
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", sharded);
  json_t *index = json_load_file(path, 0, NULL);
  CHECK_EQ_INT(json_object_size(json_object_get(index, "weight_map")), 2 + 9 * c->n_layers);
  CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(index, "metadata"), "total_size")),
               4 * base.num_params);
  const char *last = json_string_value(json_object_get(json_object_get(index, "weight_map"), "model.norm.weight"));
  CHECK_STR_CONTAINS(last, "model-0001");
  CHECK(last && strcmp(last, "model-00001-of-00011.safetensors") > 0); /* more than one shard */
  snprintf(path, sizeof path, "%s/model.safetensors", sharded);
  CHECK(access(path, F_OK) != 0);
  rc = hf_model_load(&hf, sharded, err, sizeof err);
  CHECK_MSG(rc == 0, "sharded: %s", err);
  if (rc == 0) {
    check_same_params(&hf, &base, "sharded");
    check_logits_match(want, &hf, "sharded");
    model_free(&hf);
  }
  /* a tensor missing from the map, a shard path escaping the directory */
  json_object_del(json_object_get(index, "weight_map"), "model.layers.3.mlp.up_proj.weight");
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", sharded);
  json_dump_file(index, path, 0);
  expect_load_error(sharded, "tensor \"model.layers.3.mlp.up_proj.weight\" is missing from weight_map");
  json_object_set_new(json_object_get(index, "weight_map"), "model.norm.weight", json_string("../x.safetensors"));
  json_dump_file(index, path, 0);
  expect_load_error(sharded, "weight_map[\"model.norm.weight\"] is not a file name in the same directory");
  json_decref(index);

  /* f16 / bf16: the weights come back rounded, and the logits are those of the rounded model */
  const st_dtype halves[2] = {ST_F16, ST_BF16};
  for (int k = 0; k < 2; k++) {
    const char *hdir = sub(k ? "bf16" : "f16");
    CHECK_EQ_INT(hf_model_save(&base, hdir, halves[k], 0, err, sizeof err), 0);
    model rounded;
    CHECK_EQ_INT(llama2c_load(&rounded, harness_shared("stories260K/stories260K.bin"), err, sizeof err), 0);
    for (size_t i = 0; i < rounded.num_params; i++)
      rounded.params[i] = k ? bf16_to_f32(f32_to_bf16(rounded.params[i])) : f16_to_f32(f32_to_f16(rounded.params[i]));
    float *want_rounded = logits_of(&rounded);
    rc = hf_model_load(&hf, hdir, err, sizeof err);
    CHECK_MSG(rc == 0, "%s: %s", st_dtype_name(halves[k]), err);
    if (rc == 0) {
      check_same_params(&hf, &rounded, st_dtype_name(halves[k]));
      check_logits_match(want_rounded, &hf, st_dtype_name(halves[k]));
      /* and the rounding actually happened: the file holds 2-byte weights */
      snprintf(path, sizeof path, "%s/model.safetensors", hdir);
      st_file hf16;
      if (st_file_open(&hf16, path, err, sizeof err) == 0) {
        CHECK(st_file_find(&hf16, "model.norm.weight")->dtype == halves[k]);
        st_file_close(&hf16);
      }
      model_free(&hf);
    }
    free(want_rounded);
    model_free(&rounded);
  }

  /* config problems, each named */
  expect_load_error(with_config_edit(f32, "scaled", "rope_scaling", json_pack("{s:s,s:f}", "type", "linear", "factor", 2.0)),
                    "field \"rope_scaling\": RoPE scaling is not supported");
  json_t *gpt2 = json_pack("[s]", "GPT2LMHeadModel");
  const char *arch = with_config_edit(f32, "gpt2", "architectures", gpt2);
  snprintf(path, sizeof path, "%s/config.json", arch);
  cfg = json_load_file(path, 0, NULL);
  json_object_set_new(cfg, "model_type", json_string("gpt2"));
  json_dump_file(cfg, path, 0);
  json_decref(cfg);
  expect_load_error(arch, "unsupported architecture GPT2LMHeadModel (model_type gpt2)");
  expect_load_error(with_config_edit(f32, "vocab", "vocab_size", json_integer(511)),
                    "tensor \"model.embed_tokens.weight\": shape (512, 64), expected (511, 64)");
  /* num_key_value_heads defaults to the head count: 8 kv heads do not fit stories260K's k_proj */
  expect_load_error(with_config_edit(f32, "nokv", "num_key_value_heads", NULL),
                    "tensor \"model.layers.0.self_attn.k_proj.weight\": shape (32, 64), expected (64, 64)");
  expect_load_error(with_config_edit(f32, "untie", "tie_word_embeddings", json_false()),
                    "tensor \"lm_head.weight\" is missing");
  expect_load_error(with_config_edit(f32, "nohidden", "hidden_size", NULL), "config.json: field \"hidden_size\" is missing");
  expect_load_error(with_config_edit(f32, "act", "hidden_act", json_string("gelu")), "\"hidden_act\": \"gelu\" is not supported");
  expect_load_error(with_config_edit(f32, "eps", "rms_norm_eps", json_string("1e-5")),
                    "field \"rms_norm_eps\": expected a number, got a string");
  expect_load_error(sub("nothing-here"), "config.json");
  free(want);
  model_free(&base);
}

/* A separate classifier is written as lm_head.weight and read back, as is an explicit head_dim. */
static void test_untied(void) {
  /* head_dim 12: heads * head_dim (48) differs from dim (32), so config.json must carry head_dim */
  model_config c = {.dim = 32, .hidden_dim = 48, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 12,
                    .vocab_size = 50, .max_seq_len = 64, .norm_eps = 1e-6f, .rope_theta = 500000.0f,
                    .tied_classifier = 0};
  model m, back;
  CHECK_EQ_INT(model_build(&m, &c, err, sizeof err), 0);
  model_init_random(&m, 7, 0.1f);
  for (int t = 0; t < T; t++) tokens[t] = (t * 13 + 5) % c.vocab_size;
  float *want = logits_of(&m);
  const char *out = sub("untied");
  CHECK_EQ_INT(hf_model_save(&m, out, ST_F32, 0, err, sizeof err), 0);
  int rc = hf_model_load(&back, out, err, sizeof err);
  CHECK_MSG(rc == 0, "untied: %s", err);
  if (rc == 0) {
    CHECK(memcmp(&back.config, &c, sizeof c) == 0);
    CHECK(back.weights.wcls != back.weights.tok_emb);
    check_same_params(&back, &m, "untied");
    check_logits_match(want, &back, "untied");
    model_free(&back);
  }
  free(want);
  model_free(&m);
}

int main(void) {
  dir = harness_tmpdir();
  for (int t = 0; t < T; t++) tokens[t] = t ? (t * 37 + 11) % 512 : 1;
  test_stories();
  test_untied();
  if (harness_failures == 0) fs_remove_tree(dir, err, sizeof err);
  return harness_finish();
}
