/* LoRA adapters and the one linear function every projection goes through.
 *
 * For an adapted module with base weight W (out, in): y = x W^T + scale * (drop(x) A^T) B^T, with
 * A (r, in), B (out, r), scale = alpha / r (alpha / sqrt(r) with rsLoRA). drop() is PEFT's inverted
 * dropout on the LoRA input, active only in training.
 *
 * The trainable adapter is ONE flat float array (`params`): for layer 0..L-1, for each targeted
 * module in lora_module order, A (r, in) then B (out, r). That array is the update that crosses the
 * network; gradients and optimizer moments share its layout. */
#ifndef FEDLORA_LORA_H
#define FEDLORA_LORA_H

#include <stddef.h>
#include <stdint.h>

struct model_config;

typedef enum {
  LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_NUM_MODULES
} lora_module;

#define LORA_TARGETS_ALL ((1u << LORA_NUM_MODULES) - 1u)

typedef struct {
  int rank;         /* r */
  float alpha;
  int use_rslora;   /* scale = alpha / sqrt(r) instead of alpha / r */
  float dropout;    /* probability in [0, 1) */
  unsigned targets; /* bit (1u << lora_module) per adapted module */
  int freeze_a;     /* train only B; A keeps its initial value (its gradient is not computed) */
} lora_config;

typedef struct {
  lora_config config;
  float scale;
  int n_layers;
  size_t *offset_a;  /* (L, LORA_NUM_MODULES) offset of A in params, SIZE_MAX when not adapted */
  size_t *offset_b;  /* (L, LORA_NUM_MODULES) offset of B */
  float *params;     /* (num_params) */
  size_t num_params;
  int out_features[LORA_NUM_MODULES];
  int in_features[LORA_NUM_MODULES];
} lora_adapter;

/* "q_proj", ..., "down_proj" (Hugging Face names). */
const char *lora_module_name(lora_module m);
/* Accepts a short name ("q", "gate") or a Hugging Face one ("q_proj"); -1 if unknown. */
int lora_module_parse(const char *name);
/* Parses a comma-separated list ("q,v" or "q_proj,v_proj" or "all") into a bitmask. */
int lora_targets_parse(const char *list, unsigned *targets, char *err, size_t err_size);
/* (out, in) of module m's base weight. */
void lora_module_shape(const struct model_config *c, lora_module m, int *out_features, int *in_features);
float lora_scale(const lora_config *cfg);

/* Allocates a zeroed adapter laid out for c and cfg (validates rank, dropout, targets). */
int lora_build(lora_adapter *ad, const struct model_config *c, const lora_config *cfg, char *err,
               size_t err_size);
void lora_free(lora_adapter *ad);
/* PEFT's init: A ~ kaiming-uniform, i.e. uniform in +-1/sqrt(in_features), from a seeded RNG; B = 0,
 * so the adapted model starts equal to the base model. */
void lora_init(lora_adapter *ad, uint64_t seed);
/* A (r, in) and B (out, r) of a module inside `base` (ad->params, or a gradient/moment array with
 * the same layout); NULL when the module is not adapted. */
float *lora_a(const lora_adapter *ad, float *base, int layer, lora_module m);
float *lora_b(const lora_adapter *ad, float *base, int layer, lora_module m);

/* One projection y (n, out) = x (n, in) W^T [+ LoRA term]. Members not in use are NULL. */
typedef struct {
  const float *w;  /* (out, in) base weight */
  float *dw;       /* (out, in) its gradient in full-parameter mode, else NULL */
  const float *a;  /* (r, in) or NULL when the module has no adapter */
  const float *b;  /* (out, r) */
  float *da;       /* (r, in) gradient of A, NULL when A is frozen or there is no backward */
  float *db;       /* (out, r) */
  int rank;
  float scale;
  float dropout;         /* 0 outside training */
  uint64_t dropout_key;  /* makes the mask a pure function of (key, element): backward recomputes it */
  size_t dropout_first;  /* element index of x[0] in the whole batch, so a slice of rows draws the same
                            mask as the batch does */
} linear_params;

/* y = x W^T + scale * (drop(x) A^T) B^T. xa (n, r) receives drop(x) A^T for the backward;
 * scratch (n, in) is needed only when dropout > 0. Allocates nothing. */
void linear_forward(const linear_params *p, float *y, const float *x, float *xa, float *scratch, int n,
                    int in, int out);
/* Accumulates dx (n, in) += dy W^T-path and LoRA-path gradients, dw, da, db from dy (n, out).
 * d_xa (n, r) and scratch (n, in) are work space. */
void linear_backward(const linear_params *p, float *dx, const float *dy, const float *x, const float *xa,
                     float *d_xa, float *scratch, int n, int in, int out);

/* The inverted-dropout multiplier (0 or 1/(1-p)) of element i under key: a counter-based hash, so the
 * forward and backward see the same mask without storing it. */
float lora_dropout_factor(uint64_t key, size_t i, float p);

#endif
