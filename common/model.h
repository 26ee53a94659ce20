/* The Llama-family model: configuration, the base-weight arena, and forward/backward over a batch.
 *
 * Per layer: RMSNorm -> attention (RoPE, grouped-query, causal) -> residual -> RMSNorm ->
 * SwiGLU MLP down(silu(gate x) * up x) -> residual; then a final RMSNorm and the classifier
 * (tied to the token embedding or separate).
 *
 * RoPE convention: internally q/k rows are laid out for llama2.c's rotation of ADJACENT pairs
 * (2i, 2i+1) within each head. Hugging Face checkpoints store q_proj/k_proj rows for the half-split
 * rotation (i, i + head_dim/2); loaders call rope_rows_hf_to_internal on q/k weights (and on LoRA B
 * of q/k adapters), savers call rope_rows_internal_to_hf.
 *
 * Functions returning int give 0 on success, -1 with a message in `err`. */
#ifndef FEDLORA_MODEL_H
#define FEDLORA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "lora.h"

typedef struct model_config {
  int dim;          /* D, the residual width */
  int hidden_dim;   /* F, the MLP width */
  int n_layers;     /* L */
  int n_heads;      /* H query heads */
  int n_kv_heads;   /* KV heads; n_heads % n_kv_heads == 0 */
  int head_dim;     /* hd, usually D / H; must be even */
  int vocab_size;   /* V */
  int max_seq_len;  /* longest sequence the model was trained for (RoPE is computed, not tabled) */
  float norm_eps;   /* RMSNorm epsilon, 1e-5 for llama2.c */
  float rope_theta; /* 10000 for llama2.c */
  int tied_classifier; /* 1: the classifier is the token embedding */
} model_config;

/* Pointers into one arena, in llama2.c's file order. Matrices are (out, in), row-major.
 * QD = n_heads * head_dim, KVD = n_kv_heads * head_dim. The same struct describes gradient arenas. */
typedef struct {
  float *tok_emb;   /* (V, D) */
  float *rms_att;   /* (L, D) */
  float *wq;        /* (L, QD, D)  q_proj */
  float *wk;        /* (L, KVD, D) k_proj */
  float *wv;        /* (L, KVD, D) v_proj */
  float *wo;        /* (L, D, QD)  o_proj */
  float *rms_ffn;   /* (L, D) */
  float *w_gate;    /* (L, F, D)  gate_proj, llama2.c w1 */
  float *w_down;    /* (L, D, F)  down_proj, llama2.c w2 */
  float *w_up;      /* (L, F, D)  up_proj, llama2.c w3 */
  float *rms_final; /* (D) */
  float *wcls;      /* (V, D), equal to tok_emb when tied (no storage of its own) */
} model_weights;

typedef struct {
  model_config config;
  model_weights weights; /* pointers into params */
  float *params;         /* (num_params) the base-weight arena */
  size_t num_params;
} model;

/* Largest dim, hidden_dim, vocab_size and attention width (n_heads * head_dim) accepted, and the
 * most layers. */
#define MODEL_MAX_WIDTH (1 << 20)
#define MODEL_MAX_LAYERS (1 << 12)

/* The base weight (out, in) of LoRA module m in layer l, inside w (base weights or a gradient arena). */
float *model_module_weight(const model_config *c, const model_weights *w, int l, lora_module m);

/* Checks every field (positive sizes within the bounds above, head divisibility, even head_dim,
 * eps/theta > 0). */
int model_config_validate(const model_config *c, char *err, size_t err_size);
/* Floats in a weight arena for this config (wcls counted only when not tied). */
size_t model_weights_count(const model_config *c);
/* Points w's members into base, which holds model_weights_count(c) floats. */
void model_weights_point(model_weights *w, const model_config *c, float *base);

/* Allocates a zeroed arena for a validated config. */
int model_build(model *m, const model_config *c, char *err, size_t err_size);
void model_free(model *m);
/* Random weights (normal(0, std), norms = 1) from a seeded RNG, for benchmarks and tests. */
void model_init_random(model *m, uint64_t seed, float std);
/* Opens a llama2.c .bin file or a Hugging Face directory (dispatch on "is a directory"). */
int model_load(model *m, const char *path, char *err, size_t err_size);

/* Permutes the rows of a (n_heads * head_dim, cols) matrix in place between the HF half-split
 * order and the internal adjacent-pair order: internal row 2i+c of a head is HF row c*hd/2 + i. */
void rope_rows_hf_to_internal(float *w, int n_heads, int head_dim, int cols);
void rope_rows_internal_to_hf(float *w, int n_heads, int head_dim, int cols);

/* Everything one forward/backward over a (B, T) batch needs, in one arena allocated once.
 * N = B * T rows. Buffers kept from forward for backward are per layer.
 *
 * Threading: the batch is cut into S slices of whole sequences, one per thread, and each thread
 * runs the whole forward, loss and backward of its slice with single-threaded sgemm; the threads
 * meet once per pass instead of at every product. Every row's values are the same whatever the
 * slicing; only the LoRA gradient (a sum over rows) is summed per slice and then across slices in
 * slice order, so results depend on the thread count, never on timing. Full-parameter training
 * (an arena built with training and no LoRA) is not sliced: its gradient would need a copy of the
 * model per thread; there the threads work inside each product instead. */
typedef struct {
  float *resid;     /* (L + 1, N, D) residual stream entering each layer; [L] is the last output */
  float *resid_mid; /* (L, N, D) residual after attention */
  float *xn;        /* (N, D) RMSNorm output feeding the sublayer at hand (attention or MLP);
                       backward recomputes it from the residual rather than keep two per layer */
  float *rstd_att;  /* (L, N) 1 / rms */
  float *q;         /* (L, N, QD) after RoPE */
  float *k;         /* (L, N, KVD) after RoPE */
  float *v;         /* (L, N, KVD) */
  float *att;       /* (L, B, H, T, T) softmax probabilities of row t in columns [0, t] (attention.h) */
  float *att_out;   /* (L, N, QD) heads concatenated, input of o_proj */
  float *rstd_ffn;  /* (L, N) */
  float *gate;      /* (L, N, F) gate_proj output, before SiLU */
  float *up;        /* (L, N, F) up_proj output */
  float *act;       /* (N, F) silu(gate) * up of the layer at hand, input of down_proj; backward
                       recomputes it from gate and up rather than keep one per layer */
  float *xn_final;  /* (N, D) final RMSNorm output, the classifier's input */
  float *rstd_final;/* (N) */
  float *lora_xa;   /* (L, LORA_NUM_MODULES, N, r) dropout(x) A^T per adapted module, or NULL */
  float *rope_cos;  /* (T, hd / 2) */
  float *rope_sin;  /* (T, hd / 2) */
  float *logits;    /* (S, LOSS_CHUNK, V) classifier rows, one chunk at a time per slice */
  float *loss_x;    /* (S, LOSS_CHUNK, D) the chunk's xn_final rows, gathered from the counted positions */
  float *loss_dx;   /* (S, LOSS_CHUNK, D) their gradient, before it is scattered into d_xn */
  /* backward scratch, present only when built for training */
  float *d_resid;   /* (N, D) gradient of the residual stream */
  float *d_xn;      /* (N, D) */
  float *d_q;       /* (N, QD) */
  float *d_k;       /* (N, KVD) */
  float *d_v;       /* (N, KVD) */
  float *d_att;     /* (B, H, T, T) */
  float *d_att_out; /* (N, QD) */
  float *d_gate;    /* (N, F) */
  float *d_up;      /* (N, F) */
  float *d_act;     /* (N, F) */
  float *lora_scratch; /* (N, max(D, F, QD)) dropped-out input or gradient through A; dropout only */
  float *lora_d_xa;    /* (N, r) */
  float *lora_grad;    /* (S - 1, lora params) LoRA gradient of slices 1.., added into slice 0's after
                          backward; NULL with one slice or without LoRA training */
} model_acts;

/* Rows of classifier logits computed at once: sgemm packs W_cls (V x D) once per chunk, and 256 rows
 * measured 20% faster than 64 at V = 32000 (512 no faster), at 32 MB of logits per thread. */
#define LOSS_CHUNK 256

typedef struct {
  int batch, seq_len;   /* B, T of the next forward; callers may lower them to at most the capacity */
  int max_batch, max_seq_len; /* capacity the arena was built for; per-layer strides use it */
  int training;         /* built with backward scratch */
  int lora_rank;        /* r the lora_xa buffer was sized for, 0 without LoRA */
  int max_slices;       /* S: threads the arena has per-thread buffers for (see model_slices) */
  model_acts acts;      /* pointers into mem */
  float *mem;
  size_t mem_floats;
  int *loss_rows;       /* (B * T) positions the loss counts, per slice (model_loss) */
  /* set by model_forward for model_backward */
  int dropout_on;
  uint64_t dropout_seed;
} model_activations;

/* lora may be NULL. training = 1 adds the backward scratch. */
int activations_build(model_activations *a, const model_config *c, const lora_adapter *lora, int batch,
                      int seq_len, int training, char *err, size_t err_size);
void activations_free(model_activations *a);

/* Forward through every layer and the final norm for tokens (B, T). lora may be NULL.
 * dropout_seed != 0 turns LoRA dropout on (training); 0 means evaluation. Allocates nothing. */
void model_forward(const model *m, const lora_adapter *lora, model_activations *a, const int *tokens,
                   uint64_t dropout_seed);

/* Total weight of the counted positions: sum of mask (1 each when NULL) over targets >= 0. The mean
 * loss's gradient is model_loss with d_scale = 1 / this, known before the forward. */
double loss_count(const int *targets, const float *mask, int n);

/* Cross-entropy of next tokens after model_forward: targets (B, T), mask (B, T) weights (1 counts a
 * position, 0 skips it; NULL counts all). Returns the sum of -log p over counted positions and
 * adds their weight to *count. With d_scale != 0 it also writes d_xn (the gradient of the final
 * norm's output) for loss = d_scale * sum, and accumulates the classifier's gradient into dweights
 * when dweights is not NULL (full-parameter mode). Logits exist one LOSS_CHUNK of rows at a time. */
double model_loss(const model *m, model_activations *a, const int *targets, const float *mask,
                  float d_scale, model_weights *dweights, double *count);

/* Backward from d_xn (written by model_loss) to the trainable parameters; gradients accumulate.
 * dweights: every base weight's gradient (full-parameter mode), or NULL.
 * dlora: gradient with lora->params' layout (LoRA mode), or NULL. */
void model_backward(const model *m, const lora_adapter *lora, model_activations *a, const int *tokens,
                    model_weights *dweights, float *dlora);

/* Logits (V) of row `row` (b * T + t) after model_forward, for generation. */
void model_logits_row(const model *m, model_activations *a, int row, float *logits);

#endif
