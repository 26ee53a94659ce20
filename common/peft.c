#include "peft.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "json_util.h"
#include "safetensors.h"

/* ---- adapter_config.json ---- */

static int unsupported(const json_src *s, const char *key, const char *why) {
  snprintf(s->err, s->err_size, "%s: field \"%s\": %s", s->path, key, why);
  return -1;
}

/* target_modules: a list of module names, or PEFT's "all-linear" shorthand. */
static int parse_targets(const json_src *s, const json_t *root, unsigned *targets) {
  const json_t *list = json_object_get(root, "target_modules");
  if (json_is_string(list)) {
    if (strcmp(json_string_value(list), "all-linear") == 0) {
      *targets = LORA_TARGETS_ALL;
      return 0;
    }
    return unsupported(s, "target_modules", "a regular expression is not supported; list the modules");
  }
  if (!json_is_array(list) || json_array_size(list) == 0)
    return unsupported(s, "target_modules", "expected a non-empty list of module names");
  *targets = 0;
  size_t i;
  const json_t *name;
  json_array_foreach(list, i, name) {
    int m = json_is_string(name) ? lora_module_parse(json_string_value(name)) : -1;
    if (m < 0) {
      snprintf(s->err, s->err_size,
               "%s: field \"target_modules\"[%zu]: %s%s%s is not an adaptable module (q_proj, k_proj, v_proj, "
               "o_proj, gate_proj, up_proj, down_proj)",
               s->path, i, json_is_string(name) ? "\"" : "", json_is_string(name) ? json_string_value(name) : "a non-string",
               json_is_string(name) ? "\"" : "");
      return -1;
    }
    *targets |= 1u << m;
  }
  return 0;
}

/* Keys whose non-default values change what the adapter computes; we refuse them rather than
 * silently load something else. */
static int check_defaults(const json_src *s, const json_t *root) {
  const char *bias;
  if (json_src_string_opt(s, root, "bias", "none", &bias) != 0) return -1;
  if (strcmp(bias, "none") != 0) return unsupported(s, "bias", "only \"none\" is supported");
  static const char *const must_be_false[] = {"fan_in_fan_out", "use_dora", "lora_bias"};
  for (size_t i = 0; i < sizeof must_be_false / sizeof *must_be_false; i++) {
    int on;
    if (json_src_bool_opt(s, root, must_be_false[i], 0, &on) != 0) return -1;
    if (on) return unsupported(s, must_be_false[i], "only false is supported");
  }
  static const char *const must_be_null[] = {"layers_to_transform", "layer_replication"};
  for (size_t i = 0; i < sizeof must_be_null / sizeof *must_be_null; i++) {
    const json_t *j = json_object_get(root, must_be_null[i]);
    if (j && !json_is_null(j)) return unsupported(s, must_be_null[i], "only null is supported (every layer adapted)");
  }
  const json_t *save = json_object_get(root, "modules_to_save");
  if (save && !json_is_null(save) && !(json_is_array(save) && json_array_size(save) == 0))
    return unsupported(s, "modules_to_save", "only null is supported (no fully trained modules)");
  static const char *const must_be_empty[] = {"rank_pattern", "alpha_pattern"};
  for (size_t i = 0; i < sizeof must_be_empty / sizeof *must_be_empty; i++) {
    const json_t *j = json_object_get(root, must_be_empty[i]);
    if (j && !json_is_null(j) && !(json_is_object(j) && json_object_size(j) == 0))
      return unsupported(s, must_be_empty[i], "per-module ranks and alphas are not supported");
  }
  return 0;
}

int peft_config_load(lora_config *cfg, const char *dir, char *err, size_t err_size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/adapter_config.json", dir);
  json_src s = {path, err, err_size};
  json_t *root = json_src_load(&s);
  if (!root) return -1;
  memset(cfg, 0, sizeof *cfg);
  const char *peft_type, *task_type;
  double alpha, dropout;
  int rc = -1;
  if (json_src_string(&s, root, "peft_type", &peft_type)) goto done;
  if (strcmp(peft_type, "LORA") != 0) {
    snprintf(err, err_size, "%s: field \"peft_type\": \"%s\" is not supported, only \"LORA\"", path, peft_type);
    goto done;
  }
  if (json_src_string_opt(&s, root, "task_type", "CAUSAL_LM", &task_type)) goto done;
  if (strcmp(task_type, "CAUSAL_LM") != 0) {
    snprintf(err, err_size, "%s: field \"task_type\": \"%s\" is not supported, only \"CAUSAL_LM\"", path, task_type);
    goto done;
  }
  if (json_src_int(&s, root, "r", &cfg->rank) || json_src_number(&s, root, "lora_alpha", &alpha) ||
      json_src_number_opt(&s, root, "lora_dropout", 0.0, &dropout) ||
      json_src_bool_opt(&s, root, "use_rslora", 0, &cfg->use_rslora) || parse_targets(&s, root, &cfg->targets) ||
      check_defaults(&s, root))
    goto done;
  if (cfg->rank <= 0) {
    snprintf(err, err_size, "%s: field \"r\": expected > 0, got %d", path, cfg->rank);
    goto done;
  }
  if (!(dropout >= 0.0 && dropout < 1.0)) {
    snprintf(err, err_size, "%s: field \"lora_dropout\": expected in [0, 1), got %g", path, dropout);
    goto done;
  }
  cfg->alpha = (float)alpha;
  cfg->dropout = (float)dropout;
  rc = 0;
done:
  json_decref(root);
  return rc;
}

/* ---- tensor names ---- */

static const char *module_block(lora_module m) { return m <= LORA_O ? "self_attn" : "mlp"; }

static void tensor_name(char *out, size_t size, int layer, lora_module m, char which) {
  snprintf(out, size, "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", layer, module_block(m),
           lora_module_name(m), which);
}

/* Heads whose RoPE row order B's rows follow, 0 for modules whose output is not rotated. */
static int rope_heads(const model_config *c, lora_module m) {
  return m == LORA_Q ? c->n_heads : m == LORA_K ? c->n_kv_heads : 0;
}

/* Every tensor in the file must be one this adapter reads: a stray module or layer means the
 * config and the weights disagree. */
static int check_no_strays(const st_file *f, const lora_adapter *ad, char *err, size_t err_size) {
  for (int i = 0; i < f->n_tensors; i++) {
    const char *name = f->tensors[i].name;
    int layer, end = 0;
    char block[16], module[16], which;
    int ok = sscanf(name, "base_model.model.model.layers.%d.%15[a-z_].%15[a-z_].lora_%c.weight%n", &layer, block,
                    module, &which, &end) == 4 &&
             name[end] == '\0' && (which == 'A' || which == 'B');
    int m = ok ? lora_module_parse(module) : -1;
    ok = ok && m >= 0 && strcmp(module, lora_module_name((lora_module)m)) == 0 &&
         strcmp(block, module_block((lora_module)m)) == 0 && layer >= 0 && layer < ad->n_layers &&
         (ad->config.targets & (1u << m));
    if (!ok) {
      snprintf(err, err_size, "%s: tensor \"%s\" does not belong to this adapter (%d layers, target_modules in "
               "adapter_config.json)", f->path, name, ad->n_layers);
      return -1;
    }
  }
  return 0;
}

int peft_load(lora_adapter *ad, const model_config *c, const char *dir, char *err, size_t err_size) {
  lora_config cfg;
  if (peft_config_load(&cfg, dir, err, err_size) != 0) return -1;
  if (lora_build(ad, c, &cfg, err, err_size) != 0) return -1;
  char path[4096];
  snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
  st_file f;
  if (st_file_open(&f, path, err, err_size) != 0) {
    lora_free(ad);
    return -1;
  }
  int rc = check_no_strays(&f, ad, err, err_size);
  const int64_t r = cfg.rank;
  for (int l = 0; rc == 0 && l < c->n_layers; l++)
    for (int m = 0; rc == 0 && m < LORA_NUM_MODULES; m++) {
      float *a = lora_a(ad, ad->params, l, (lora_module)m), *b = lora_b(ad, ad->params, l, (lora_module)m);
      if (!a) continue;
      char name[128];
      tensor_name(name, sizeof name, l, (lora_module)m, 'A');
      rc = st_file_read_f32(&f, name, 2, (int64_t[]){r, ad->in_features[m]}, a, err, err_size);
      if (rc) break;
      tensor_name(name, sizeof name, l, (lora_module)m, 'B');
      rc = st_file_read_f32(&f, name, 2, (int64_t[]){ad->out_features[m], r}, b, err, err_size);
      if (rc == 0 && rope_heads(c, (lora_module)m))
        rope_rows_hf_to_internal(b, rope_heads(c, (lora_module)m), c->head_dim, cfg.rank);
    }
  st_file_close(&f);
  if (rc != 0) lora_free(ad);
  return rc;
}

/* ---- save ---- */

/* PEFT writes every LoraConfig field; we write the ones readers look at, with PEFT's values for
 * the features we do not implement. Integral alphas are written as integers, as Python would. */
static int write_config(const lora_adapter *ad, const char *dir, const char *base_model, char *err, size_t err_size) {
  const lora_config *cfg = &ad->config;
  json_t *targets = json_array();
  for (int m = 0; m < LORA_NUM_MODULES; m++)
    if (cfg->targets & (1u << m)) json_array_append_new(targets, json_string(lora_module_name((lora_module)m)));
  json_t *root = json_object();
  json_object_set_new(root, "alpha_pattern", json_object());
  json_object_set_new(root, "auto_mapping", json_null());
  json_object_set_new(root, "base_model_name_or_path", base_model ? json_string(base_model) : json_null());
  json_object_set_new(root, "bias", json_string("none"));
  json_object_set_new(root, "fan_in_fan_out", json_false());
  json_object_set_new(root, "inference_mode", json_true());
  json_object_set_new(root, "init_lora_weights", json_true());
  json_object_set_new(root, "layer_replication", json_null());
  json_object_set_new(root, "layers_pattern", json_null());
  json_object_set_new(root, "layers_to_transform", json_null());
  json_object_set_new(root, "loftq_config", json_object());
  int integral = fabsf(cfg->alpha) < 1e9f && floorf(cfg->alpha) == cfg->alpha;
  json_object_set_new(root, "lora_alpha", integral ? json_integer((json_int_t)cfg->alpha) : json_float(cfg->alpha));
  json_object_set_new(root, "lora_dropout", json_float(cfg->dropout));
  json_object_set_new(root, "megatron_config", json_null());
  json_object_set_new(root, "megatron_core", json_string("megatron.core"));
  json_object_set_new(root, "modules_to_save", json_null());
  json_object_set_new(root, "peft_type", json_string("LORA"));
  json_object_set_new(root, "r", json_integer(cfg->rank));
  json_object_set_new(root, "rank_pattern", json_object());
  json_object_set_new(root, "revision", json_null());
  json_object_set_new(root, "target_modules", targets);
  json_object_set_new(root, "task_type", json_string("CAUSAL_LM"));
  json_object_set_new(root, "use_dora", json_false());
  json_object_set_new(root, "use_rslora", json_boolean(cfg->use_rslora));
  char path[4096];
  snprintf(path, sizeof path, "%s/adapter_config.json", dir);
  int rc = json_write_atomic(root, path, err, err_size);
  json_decref(root);
  return rc;
}

int peft_save(const lora_adapter *ad, const model_config *c, const char *dir, const char *base_model, char *err,
              size_t err_size) {
  if (fs_mkdir_p(dir, 0755, err, err_size) != 0) return -1;
  int n_mod = 0;
  for (int m = 0; m < LORA_NUM_MODULES; m++) n_mod += (ad->config.targets >> m) & 1;
  int n = 2 * n_mod * c->n_layers;
  size_t r = (size_t)ad->config.rank;
  size_t rope_floats = (size_t)c->n_layers * r *
                       ((ad->config.targets & (1u << LORA_Q) ? (size_t)ad->out_features[LORA_Q] : 0) +
                        (ad->config.targets & (1u << LORA_K) ? (size_t)ad->out_features[LORA_K] : 0));
  st_entry *entries = calloc((size_t)n, sizeof *entries);
  char (*names)[128] = calloc((size_t)n, sizeof *names);
  float *rope_b = malloc((rope_floats ? rope_floats : 1) * sizeof(float)); /* q/k B copies in HF row order */
  int rc = -1;
  if (!entries || !names || !rope_b) {
    snprintf(err, err_size, "%s: out of memory", dir);
    goto done;
  }
  st_entry *e = entries;
  float *next_rope = rope_b;
  for (int l = 0; l < c->n_layers; l++)
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
      float *a = lora_a(ad, ad->params, l, (lora_module)m), *b = lora_b(ad, ad->params, l, (lora_module)m);
      if (!a) continue;
      char *name_a = names[e - entries];
      tensor_name(name_a, sizeof names[0], l, (lora_module)m, 'A');
      *e++ = (st_entry){name_a, ST_F32, 2, {(int64_t)r, ad->in_features[m]}, a};
      if (rope_heads(c, (lora_module)m)) {
        size_t count = (size_t)ad->out_features[m] * r;
        memcpy(next_rope, b, count * sizeof(float));
        rope_rows_internal_to_hf(next_rope, rope_heads(c, (lora_module)m), c->head_dim, (int)r);
        b = next_rope;
        next_rope += count;
      }
      char *name_b = names[e - entries];
      tensor_name(name_b, sizeof names[0], l, (lora_module)m, 'B');
      *e++ = (st_entry){name_b, ST_F32, 2, {ad->out_features[m], (int64_t)r}, b};
    }
  /* weights first, config last: a reader that sees the new config also sees the weights it describes */
  char path[4096];
  snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
  static const char *const metadata[] = {"format", "pt", NULL};
  rc = st_file_write(path, entries, n, metadata, err, err_size);
  if (rc == 0) rc = write_config(ad, dir, base_model, err, err_size);
done:
  free(entries);
  free(names);
  free(rope_b);
  return rc;
}

/* ---- merge ---- */

void peft_merge_into(model *m, const lora_adapter *ad) {
  int r = ad->config.rank;
  for (int l = 0; l < ad->n_layers; l++)
    for (int k = 0; k < LORA_NUM_MODULES; k++) {
      const float *a = lora_a(ad, ad->params, l, (lora_module)k), *b = lora_b(ad, ad->params, l, (lora_module)k);
      if (!a) continue;
      int out = ad->out_features[k], in = ad->in_features[k];
      /* W (out, in) += scale * B (out, r) A (r, in) */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, r, ad->scale, b, r, a, in, 1.0f,
                  model_module_weight(&m->config, &m->weights, l, (lora_module)k), in);
    }
}
