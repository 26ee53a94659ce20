/* PEFT LoRA adapter directories, as `peft` saves and loads them:
 *   adapter_config.json        peft_type "LORA", task_type "CAUSAL_LM", r, lora_alpha,
 *                              target_modules, lora_dropout, bias "none", use_rslora, ...
 *   adapter_model.safetensors  base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight (r, in),
 *                              ...lora_B.weight (out, r), mlp modules under .mlp.
 * q_proj/k_proj lora_B rows are stored in HF's half-split RoPE order (as HF's base weights are) and
 * converted to the internal order on load, back on save.
 * Functions return 0, or -1 with a message in `err` naming the file, tensor or field. */
#ifndef FEDLORA_PEFT_H
#define FEDLORA_PEFT_H

#include <stddef.h>

#include "lora.h"
#include "model.h"

/* Reads <dir>/adapter_config.json into cfg (rank, alpha, use_rslora, dropout, targets; freeze_a = 0).
 * Settings this implementation cannot honour (bias other than "none", DoRA, fan_in_fan_out,
 * layers_to_transform, modules_to_save, rank/alpha patterns, ...) are errors naming the key. */
int peft_config_load(lora_config *cfg, const char *dir, char *err, size_t err_size);

/* Builds ad for the model config c from the directory, checking every tensor's shape against c and
 * rejecting tensors that do not belong to the configured targets. */
int peft_load(lora_adapter *ad, const model_config *c, const char *dir, char *err, size_t err_size);

/* Writes the directory (created if missing; each file atomically). base_model goes to
 * base_model_name_or_path and may be NULL. */
int peft_save(const lora_adapter *ad, const model_config *c, const char *dir, const char *base_model,
              char *err, size_t err_size);

/* Folds the adapter into the base weights: W += scale * B A for every adapted module (PEFT's
 * merge_and_unload). Both are in internal row order, so no RoPE conversion is involved. */
void peft_merge_into(model *m, const lora_adapter *ad);

#endif
