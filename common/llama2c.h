/* llama2.c checkpoints, legacy version 0: a header of seven little-endian int32 (dim, hidden_dim,
 * n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means a separate
 * classifier), then fp32 tensors: token_embedding (V, D), rms_att (L, D), wq (L, D, D),
 * wk (L, KVD, D), wv (L, KVD, D), wo (L, D, D), rms_ffn (L, D), w1 (L, F, D), w2 (L, D, F),
 * w3 (L, F, D), rms_final (D), two legacy RoPE tables (seq_len, head_size / 2) each (skipped),
 * then wcls (V, D) when not shared. RoPE rotates adjacent pairs, theta 10000, RMSNorm eps 1e-5. */
#ifndef FEDLORA_LLAMA2C_H
#define FEDLORA_LLAMA2C_H

#include <stddef.h>

#include "model.h"

/* Builds m from the file after checking the header and that the file size matches it exactly. */
int llama2c_load(model *m, const char *path, char *err, size_t err_size);
/* Writes m in the same format (atomically is not needed: used for test fixtures and exports). */
int llama2c_save(const model *m, const char *path, char *err, size_t err_size);

#endif
