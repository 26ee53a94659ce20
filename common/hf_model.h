/* Hugging Face Llama checkpoints: a directory with config.json and either model.safetensors or a
 * sharded model.safetensors.index.json ({"weight_map": {tensor: shard file}}).
 *
 * config.json must name LlamaForCausalLM in `architectures` or have model_type "llama"; read are
 * hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads
 * (default: num_attention_heads), head_dim (default hidden_size / heads), vocab_size,
 * max_position_embeddings, rms_norm_eps, rope_theta (default 10000), tie_word_embeddings (default
 * false). rope_scaling other than null, hidden_act other than silu and attention/mlp biases are
 * rejected, since the forward pass would silently differ.
 *
 * Tensor names: model.embed_tokens.weight, model.layers.N.input_layernorm.weight,
 * model.layers.N.self_attn.{q,k,v,o}_proj.weight, model.layers.N.post_attention_layernorm.weight,
 * model.layers.N.mlp.{gate,up,down}_proj.weight, model.norm.weight, lm_head.weight (absent when
 * tied). F32, F16 and BF16 are accepted. q_proj/k_proj rows are converted from HF's half-split RoPE
 * order to the internal adjacent-pair order on load, and back on save.
 * Functions return 0, or -1 with a message in `err` naming the file, tensor or field. */
#ifndef FEDLORA_HF_MODEL_H
#define FEDLORA_HF_MODEL_H

#include <stddef.h>

#include "model.h"
#include "safetensors.h"

/* Reads and validates <dir>/config.json. */
int hf_config_load(model_config *c, const char *dir, char *err, size_t err_size);
/* Builds m from the directory (config + every tensor, shapes checked). */
int hf_model_load(model *m, const char *dir, char *err, size_t err_size);

/* Writes config.json and the weights with HF names and q/k row order, stored as dtype (F32, F16,
 * BF16). max_shard_bytes = 0 writes one model.safetensors; otherwise tensors are packed in order
 * into model-0000i-of-0000n.safetensors files of at most that many data bytes (a larger tensor gets
 * a shard of its own) plus model.safetensors.index.json. Each file is written atomically; the
 * directory is created if missing. */
int hf_model_save(const model *m, const char *dir, st_dtype dtype, size_t max_shard_bytes, char *err,
                  size_t err_size);

#endif
