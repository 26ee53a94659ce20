#include "hf_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "json_util.h"
#include "log.h"

/* ---- config.json ---- */

static int check_architecture(const json_src *s, const json_t *root) {
  const json_t *archs = json_object_get(root, "architectures");
  const char *model_type = NULL;
  if (json_src_string_opt(s, root, "model_type", NULL, &model_type) != 0) return -1;
  if (model_type && strcmp(model_type, "llama") == 0) return 0;
  size_t i;
  const json_t *a;
  json_array_foreach(archs, i, a) {
    if (json_is_string(a) && strcmp(json_string_value(a), "LlamaForCausalLM") == 0) return 0;
  }
  const json_t *first = json_array_get(archs, 0);
  snprintf(s->err, s->err_size,
           "%s: unsupported architecture %s (model_type %s): only LlamaForCausalLM / model_type \"llama\" is supported",
           s->path, json_is_string(first) ? json_string_value(first) : "(none)", model_type ? model_type : "(none)");
  return -1;
}

/* Settings under which the checkpoint's forward pass differs from ours: refuse rather than be wrong. */
static int check_unsupported(const json_src *s, const json_t *root) {
  const json_t *scaling = json_object_get(root, "rope_scaling");
  if (scaling && !json_is_null(scaling)) {
    snprintf(s->err, s->err_size, "%s: field \"rope_scaling\": RoPE scaling is not supported, only null", s->path);
    return -1;
  }
  const char *act;
  if (json_src_string_opt(s, root, "hidden_act", "silu", &act) != 0) return -1;
  if (strcmp(act, "silu") != 0) {
    snprintf(s->err, s->err_size, "%s: field \"hidden_act\": \"%s\" is not supported, only \"silu\"", s->path, act);
    return -1;
  }
  static const char *biases[] = {"attention_bias", "mlp_bias"};
  for (int i = 0; i < 2; i++) {
    int on;
    if (json_src_bool_opt(s, root, biases[i], 0, &on) != 0) return -1;
    if (on) {
      snprintf(s->err, s->err_size, "%s: field \"%s\": biases are not supported", s->path, biases[i]);
      return -1;
    }
  }
  return 0;
}

int hf_config_load(model_config *c, const char *dir, char *err, size_t err_size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  json_src s = {path, err, err_size};
  json_t *root = json_src_load(&s);
  if (!root) return -1;
  memset(c, 0, sizeof *c);
  double eps, theta;
  int rc = -1;
  if (check_architecture(&s, root) || check_unsupported(&s, root) ||
      json_src_int(&s, root, "hidden_size", &c->dim) || json_src_int(&s, root, "intermediate_size", &c->hidden_dim) ||
      json_src_int(&s, root, "num_hidden_layers", &c->n_layers) ||
      json_src_int(&s, root, "num_attention_heads", &c->n_heads) ||
      json_src_int_opt(&s, root, "num_key_value_heads", c->n_heads, &c->n_kv_heads) ||
      json_src_int(&s, root, "vocab_size", &c->vocab_size) ||
      json_src_int(&s, root, "max_position_embeddings", &c->max_seq_len) ||
      json_src_number(&s, root, "rms_norm_eps", &eps) || json_src_number_opt(&s, root, "rope_theta", 10000.0, &theta) ||
      json_src_bool_opt(&s, root, "tie_word_embeddings", 0, &c->tied_classifier))
    goto done;
  /* head_dim may be given explicitly (then heads * head_dim need not equal hidden_size) */
  if (json_src_int_opt(&s, root, "head_dim", 0, &c->head_dim)) goto done;
  if (c->head_dim == 0) {
    if (c->n_heads <= 0 || c->dim % c->n_heads != 0) {
      snprintf(err, err_size, "%s: field \"num_attention_heads\": %d does not divide hidden_size %d", path,
               c->n_heads, c->dim);
      goto done;
    }
    c->head_dim = c->dim / c->n_heads;
  }
  c->norm_eps = (float)eps;
  c->rope_theta = (float)theta;
  char why[512];
  if (model_config_validate(c, why, sizeof why) != 0) {
    snprintf(err, err_size, "%s: %s", path, why);
    goto done;
  }
  rc = 0;
done:
  json_decref(root);
  return rc;
}

/* ---- the tensor list shared by load and save ---- */

typedef struct {
  char name[96];
  float *data;        /* into the model's arena */
  int ndim;
  int64_t shape[2];
  int rope_heads;     /* > 0: q/k rows to permute between HF and internal order, for this many heads */
} hf_tensor;

static int hf_tensor_count(const model_config *c) { return 2 + 9 * c->n_layers + !c->tied_classifier; }

static hf_tensor *hf_tensor_add(hf_tensor *t, float *data, int64_t rows, int64_t cols, int rope_heads,
                                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Appends one entry (cols = 0 for a vector) and returns the next slot. */
static hf_tensor *hf_tensor_add(hf_tensor *t, float *data, int64_t rows, int64_t cols, int rope_heads,
                                 const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->name, sizeof t->name, fmt, ap);
  va_end(ap);
  t->data = data;
  t->ndim = cols ? 2 : 1;
  t->shape[0] = rows;
  t->shape[1] = cols;
  t->rope_heads = rope_heads;
  return t + 1;
}

/* Fills list (hf_tensor_count entries) in the order HF writes them. */
static void hf_tensor_list(const model_config *c, const model_weights *w, hf_tensor *list) {
  const int64_t D = c->dim, F = c->hidden_dim, V = c->vocab_size;
  const int64_t QD = (int64_t)c->n_heads * c->head_dim, KVD = (int64_t)c->n_kv_heads * c->head_dim;
  hf_tensor *t = hf_tensor_add(list, w->tok_emb, V, D, 0, "model.embed_tokens.weight");
  for (int l = 0; l < c->n_layers; l++) {
    t = hf_tensor_add(t, w->rms_att + l * D, D, 0, 0, "model.layers.%d.input_layernorm.weight", l);
    t = hf_tensor_add(t, w->wq + l * QD * D, QD, D, c->n_heads, "model.layers.%d.self_attn.q_proj.weight", l);
    t = hf_tensor_add(t, w->wk + l * KVD * D, KVD, D, c->n_kv_heads, "model.layers.%d.self_attn.k_proj.weight", l);
    t = hf_tensor_add(t, w->wv + l * KVD * D, KVD, D, 0, "model.layers.%d.self_attn.v_proj.weight", l);
    t = hf_tensor_add(t, w->wo + l * D * QD, D, QD, 0, "model.layers.%d.self_attn.o_proj.weight", l);
    t = hf_tensor_add(t, w->rms_ffn + l * D, D, 0, 0, "model.layers.%d.post_attention_layernorm.weight", l);
    t = hf_tensor_add(t, w->w_gate + l * F * D, F, D, 0, "model.layers.%d.mlp.gate_proj.weight", l);
    t = hf_tensor_add(t, w->w_up + l * F * D, F, D, 0, "model.layers.%d.mlp.up_proj.weight", l);
    t = hf_tensor_add(t, w->w_down + l * D * F, D, F, 0, "model.layers.%d.mlp.down_proj.weight", l);
  }
  t = hf_tensor_add(t, w->rms_final, D, 0, 0, "model.norm.weight");
  if (!c->tied_classifier) hf_tensor_add(t, w->wcls, V, D, 0, "lm_head.weight");
}

static int64_t hf_tensor_numel(const hf_tensor *t) { return t->ndim == 2 ? t->shape[0] * t->shape[1] : t->shape[0]; }

/* ---- load ---- */

/* The checkpoint's files: one model.safetensors, or the shards an index names. */
typedef struct {
  int n_files;
  st_file *files;     /* (n_files) */
  json_t *weight_map; /* tensor -> shard file name; NULL for a single file */
  char **file_names;  /* (n_files) shard names matching weight_map values */
} hf_files;

static void hf_files_close(hf_files *h) {
  for (int i = 0; i < h->n_files; i++) {
    st_file_close(&h->files[i]);
    free(h->file_names[i]);
  }
  free(h->files);
  free(h->file_names);
  json_decref(h->weight_map);
  memset(h, 0, sizeof *h);
}

/* Opens each distinct shard the index mentions, once. */
static int open_shards(hf_files *h, const char *dir, const char *index_path, char *err, size_t err_size) {
  json_src s = {index_path, err, err_size};
  json_t *root = json_src_load(&s);
  if (!root) return -1;
  json_t *map = json_object_get(root, "weight_map");
  if (!json_is_object(map) || json_object_size(map) == 0) {
    snprintf(err, err_size, "%s: field \"weight_map\" is missing or not a non-empty object", index_path);
    json_decref(root);
    return -1;
  }
  h->weight_map = json_incref(map);
  json_decref(root);
  size_t n = json_object_size(map);
  h->files = calloc(n, sizeof *h->files);
  h->file_names = calloc(n, sizeof *h->file_names);
  if (!h->files || !h->file_names) {
    snprintf(err, err_size, "%s: out of memory", index_path);
    return -1;
  }
  const char *tensor;
  json_t *value;
  json_object_foreach(map, tensor, value) {
    const char *shard = json_string_value(value);
    /* a shard name is a file beside the index, never a path that could leave the directory */
    if (!shard || !*shard || strchr(shard, '/') || strcmp(shard, "..") == 0 || strcmp(shard, ".") == 0) {
      snprintf(err, err_size, "%s: weight_map[\"%s\"] is not a file name in the same directory", index_path, tensor);
      return -1;
    }
    int known = 0;
    for (int i = 0; i < h->n_files && !known; i++) known = strcmp(h->file_names[i], shard) == 0;
    if (known) continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, shard);
    if (!(h->file_names[h->n_files] = strdup(shard))) {
      snprintf(err, err_size, "%s: out of memory", index_path);
      return -1;
    }
    if (st_file_open(&h->files[h->n_files], path, err, err_size) != 0) {
      free(h->file_names[h->n_files]);
      return -1;
    }
    h->n_files++;
  }
  return 0;
}

static int hf_files_open(hf_files *h, const char *dir, char *err, size_t err_size) {
  memset(h, 0, sizeof *h);
  char single[4096], index[4096];
  snprintf(single, sizeof single, "%s/model.safetensors", dir);
  snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
  if (access(single, F_OK) == 0) {
    h->files = calloc(1, sizeof *h->files);
    h->file_names = calloc(1, sizeof *h->file_names);
    if (!h->files || !h->file_names || !(h->file_names[0] = strdup("model.safetensors"))) {
      snprintf(err, err_size, "%s: out of memory", single);
      hf_files_close(h);
      return -1;
    }
    if (st_file_open(&h->files[0], single, err, err_size) != 0) {
      hf_files_close(h);
      return -1;
    }
    h->n_files = 1;
    return 0;
  }
  if (access(index, F_OK) == 0) {
    if (open_shards(h, dir, index, err, err_size) != 0) {
      hf_files_close(h);
      return -1;
    }
    return 0;
  }
  snprintf(err, err_size, "%s: neither model.safetensors nor model.safetensors.index.json is present", dir);
  return -1;
}

/* The file that holds `name`, or NULL with the error set. */
static const st_file *hf_files_find(const hf_files *h, const char *dir, const char *name, char *err, size_t err_size) {
  if (!h->weight_map) {
    if (st_file_find(&h->files[0], name)) return &h->files[0];
    snprintf(err, err_size, "%s: tensor \"%s\" is missing", h->files[0].path, name);
    return NULL;
  }
  const char *shard = json_string_value(json_object_get(h->weight_map, name));
  if (!shard) {
    snprintf(err, err_size, "%s/model.safetensors.index.json: tensor \"%s\" is missing from weight_map", dir, name);
    return NULL;
  }
  for (int i = 0; i < h->n_files; i++)
    if (strcmp(h->file_names[i], shard) == 0) {
      if (st_file_find(&h->files[i], name)) return &h->files[i];
      snprintf(err, err_size, "%s: tensor \"%s\" is missing (the index places it in this shard)", h->files[i].path,
               name);
      return NULL;
    }
  snprintf(err, err_size, "%s: internal error: shard %s not opened", dir, shard);
  return NULL;
}

/* Tensors we do not read are probably a sign of an unsupported variant; say so once. */
static void warn_unused(const hf_files *h, const hf_tensor *list, int n) {
  for (int f = 0; f < h->n_files; f++)
    for (int i = 0; i < h->files[f].n_tensors; i++) {
      const char *name = h->files[f].tensors[i].name;
      if (strstr(name, "rotary_emb.inv_freq")) continue; /* a cached table older exports include */
      if (strcmp(name, "lm_head.weight") == 0) continue;  /* some tied checkpoints still store it */
      int used = 0;
      for (int k = 0; k < n && !used; k++) used = strcmp(list[k].name, name) == 0;
      if (!used) {
        log_warn("%s: ignoring tensor \"%s\", which a Llama model does not use", h->files[f].path, name);
        return;
      }
    }
}

int hf_model_load(model *m, const char *dir, char *err, size_t err_size) {
  model_config c;
  if (hf_config_load(&c, dir, err, err_size) != 0) return -1;
  if (model_build(m, &c, err, err_size) != 0) return -1;
  hf_files h;
  if (hf_files_open(&h, dir, err, err_size) != 0) {
    model_free(m);
    return -1;
  }
  int n = hf_tensor_count(&c);
  hf_tensor *list = malloc((size_t)n * sizeof *list);
  int rc = list ? 0 : -1;
  if (!list) snprintf(err, err_size, "%s: out of memory", dir);
  if (list) hf_tensor_list(&c, &m->weights, list);
  for (int i = 0; rc == 0 && i < n; i++) {
    const hf_tensor *t = &list[i];
    const st_file *f = hf_files_find(&h, dir, t->name, err, err_size);
    rc = f ? st_file_read_f32(f, t->name, t->ndim, t->shape, t->data, err, err_size) : -1;
    if (rc == 0 && t->rope_heads) rope_rows_hf_to_internal(t->data, t->rope_heads, c.head_dim, c.dim);
  }
  if (rc == 0) {
    warn_unused(&h, list, n);
    log_info("%s: loaded Llama model, %d layers, dim %d, %zu weights from %d file(s)", dir, c.n_layers, c.dim,
             m->num_params, h.n_files);
  }
  free(list);
  hf_files_close(&h);
  if (rc != 0) model_free(m);
  return rc;
}

/* ---- save ---- */

static const char *torch_dtype_name(st_dtype d) {
  return d == ST_F16 ? "float16" : d == ST_BF16 ? "bfloat16" : "float32";
}

static int write_config(const model_config *c, const char *dir, st_dtype dtype, char *err, size_t err_size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  json_t *root = json_object();
  json_object_set_new(root, "architectures", json_pack("[s]", "LlamaForCausalLM"));
  json_object_set_new(root, "model_type", json_string("llama"));
  json_object_set_new(root, "hidden_size", json_integer(c->dim));
  json_object_set_new(root, "intermediate_size", json_integer(c->hidden_dim));
  json_object_set_new(root, "num_hidden_layers", json_integer(c->n_layers));
  json_object_set_new(root, "num_attention_heads", json_integer(c->n_heads));
  json_object_set_new(root, "num_key_value_heads", json_integer(c->n_kv_heads));
  json_object_set_new(root, "head_dim", json_integer(c->head_dim));
  json_object_set_new(root, "vocab_size", json_integer(c->vocab_size));
  json_object_set_new(root, "max_position_embeddings", json_integer(c->max_seq_len));
  json_object_set_new(root, "rms_norm_eps", json_float(c->norm_eps));
  json_object_set_new(root, "rope_theta", json_float(c->rope_theta));
  json_object_set_new(root, "rope_scaling", json_null());
  json_object_set_new(root, "tie_word_embeddings", json_boolean(c->tied_classifier));
  json_object_set_new(root, "hidden_act", json_string("silu"));
  json_object_set_new(root, "attention_bias", json_false());
  json_object_set_new(root, "mlp_bias", json_false());
  json_object_set_new(root, "torch_dtype", json_string(torch_dtype_name(dtype)));
  int rc = json_write_atomic(root, path, err, err_size);
  json_decref(root);
  return rc;
}

/* Removes the other layout's entry point so the loader cannot pick up a stale checkpoint. */
static void remove_stale(const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (unlink(path) == 0) log_info("%s: removed the previous %s", dir, name);
}

/* Writes entries [first, last) to one file. */
static int write_shard(const char *path, const st_entry *entries, int first, int last, char *err, size_t err_size) {
  static const char *const metadata[] = {"format", "pt", NULL};
  return st_file_write(path, entries + first, last - first, metadata, err, err_size);
}

static int write_sharded(const char *dir, const st_entry *entries, int n, size_t max_shard_bytes, char *err,
                         size_t err_size) {
  int *shard_of = malloc((size_t)n * sizeof *shard_of);
  if (!shard_of) {
    snprintf(err, err_size, "%s: out of memory", dir);
    return -1;
  }
  /* greedy packing in order, as transformers' shard_checkpoint does */
  int n_shards = 0;
  size_t in_shard = 0, total = 0;
  for (int i = 0; i < n; i++) {
    size_t bytes = st_dtype_size(entries[i].dtype);
    for (int d = 0; d < entries[i].ndim; d++) bytes *= (size_t)entries[i].shape[d];
    if (n_shards == 0 || (in_shard > 0 && in_shard + bytes > max_shard_bytes)) {
      n_shards++;
      in_shard = 0;
    }
    in_shard += bytes;
    total += bytes;
    shard_of[i] = n_shards - 1;
  }
  json_t *map = json_object();
  int rc = 0;
  for (int s = 0, first = 0; rc == 0 && s < n_shards; s++) {
    int last = first;
    while (last < n && shard_of[last] == s) last++;
    char name[64], path[4096];
    snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    rc = write_shard(path, entries, first, last, err, err_size);
    for (int i = first; i < last; i++) json_object_set_new(map, entries[i].name, json_string(name));
    first = last;
  }
  free(shard_of);
  if (rc == 0) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    json_t *root = json_pack("{s:{s:I}, s:O}", "metadata", "total_size", (json_int_t)total, "weight_map", map);
    rc = json_write_atomic(root, path, err, err_size);
    json_decref(root);
  }
  json_decref(map);
  return rc;
}

int hf_model_save(const model *m, const char *dir, st_dtype dtype, size_t max_shard_bytes, char *err,
                  size_t err_size) {
  const model_config *c = &m->config;
  if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16) {
    snprintf(err, err_size, "%s: cannot save weights as %s (F32, F16 or BF16)", dir, st_dtype_name(dtype));
    return -1;
  }
  if (fs_mkdir_p(dir, 0755, err, err_size) != 0) return -1;
  int n = hf_tensor_count(c);
  size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
  size_t rope_floats = (size_t)c->n_layers * (QD + KVD) * c->dim;
  hf_tensor *list = malloc((size_t)n * sizeof *list);
  st_entry *entries = malloc((size_t)n * sizeof *entries);
  float *rope_rows = malloc(rope_floats * sizeof(float)); /* (L, QD + KVD, D) q/k copies in HF order */
  int rc = -1;
  if (!list || !entries || !rope_rows) {
    snprintf(err, err_size, "%s: out of memory", dir);
    goto done;
  }
  hf_tensor_list(c, &m->weights, list);
  float *next_rope = rope_rows;
  for (int i = 0; i < n; i++) {
    const hf_tensor *t = &list[i];
    entries[i] = (st_entry){.name = t->name, .dtype = dtype, .ndim = t->ndim, .data = t->data};
    memcpy(entries[i].shape, t->shape, sizeof t->shape);
    if (t->rope_heads) {
      /* the model is const: permute a copy */
      size_t count = (size_t)hf_tensor_numel(t);
      memcpy(next_rope, t->data, count * sizeof(float));
      rope_rows_internal_to_hf(next_rope, t->rope_heads, c->head_dim, c->dim);
      entries[i].data = next_rope;
      next_rope += count;
    }
  }
  if (write_config(c, dir, dtype, err, err_size) != 0) goto done;
  if (max_shard_bytes == 0) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rc = write_shard(path, entries, 0, n, err, err_size);
    if (rc == 0) remove_stale(dir, "model.safetensors.index.json");
  } else {
    rc = write_sharded(dir, entries, n, max_shard_bytes, err, err_size);
    if (rc == 0) remove_stale(dir, "model.safetensors");
  }
done:
  free(list);
  free(entries);
  free(rope_rows);
  return rc;
}
