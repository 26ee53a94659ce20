/* Optimizers on the flat trainable array (the LoRA adapter is one float array, its gradient and the
 * optimizer moments share its layout, so a step is one loop).
 *
 * AdamW follows torch.optim.AdamW exactly (amsgrad off, maximize off), for step t = 1, 2, ...:
 *   p -= lr * wd * p                       decoupled weight decay, before the Adam update
 *   m  = b1 * m + (1 - b1) * g
 *   v  = b2 * v + (1 - b2) * g^2
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * SGD (torch.optim.SGD without momentum): g' = g + wd * p; p -= lr * g'. */
#ifndef FEDLORA_OPTIM_H
#define FEDLORA_OPTIM_H

#include <stddef.h>

typedef enum { OPTIM_ADAMW, OPTIM_SGD } optim_kind;

typedef struct {
  optim_kind kind;
  float beta1, beta2, eps;  /* AdamW only; torch defaults 0.9, 0.999, 1e-8 */
  float weight_decay;       /* torch defaults: AdamW 0.01, SGD 0 */
} optim_config;

/* torch defaults for `kind`. */
optim_config optim_config_default(optim_kind kind);
/* Parses "adamw" or "sgd"; -1 for anything else. */
int optim_kind_parse(const char *name);

/* One AdamW step on n parameters; t is the 1-based step count after this update. */
void adamw_update(float *params, const float *grads, float *m, float *v, size_t n, long t, float lr,
                  const optim_config *cfg);
void sgd_update(float *params, const float *grads, size_t n, float lr, float weight_decay);

/* Optimizer state in one arena: moments with the parameters' layout. */
typedef struct {
  optim_config cfg;
  size_t n;
  long step;  /* updates done so far */
  float *m;   /* (n) first moment, AdamW only (NULL for SGD) */
  float *v;   /* (n) second moment, AdamW only */
} optimizer;

/* Returns 0, or -1 if the moments cannot be allocated. */
int optimizer_build(optimizer *o, const optim_config *cfg, size_t n);
void optimizer_free(optimizer *o);
/* Zero moments and step count, e.g. when a new federated round starts from the global adapter. */
void optimizer_reset(optimizer *o);
void optimizer_step(optimizer *o, float *params, const float *grads, float lr);

/* Learning-rate schedules, as a function of the 0-based index of the update about to happen
 * (the `current_step` HF's LambdaLR passes after `step` scheduler calls), with w = warmup_steps,
 * T = total_steps:
 *   warmup (s < w):       lr * s / max(1, w)                       (both kinds)
 *   SCHEDULE_CONSTANT:    lr
 *   SCHEDULE_COSINE:      lr * max(0, 0.5 * (1 + cos(pi * (s - w) / max(1, T - w))))
 * which is transformers' get_constant_schedule_with_warmup / get_cosine_schedule_with_warmup with
 * num_cycles = 0.5: the first update runs at lr 0 when w > 0, and the rate reaches 0 at s = T.
 * One deliberate difference: past T the cosine rate stays 0, where HF's would climb back up. */
typedef enum { SCHEDULE_CONSTANT, SCHEDULE_COSINE } schedule_kind;

typedef struct {
  schedule_kind kind;
  float lr;  /* peak */
  long warmup_steps;
  long total_steps;
} lr_schedule;

float lr_schedule_at(const lr_schedule *s, long step);
/* Parses "constant" or "cosine"; -1 for anything else. */
int schedule_kind_parse(const char *name);

/* Global L2-norm clipping like torch.nn.utils.clip_grad_norm_: with norm the L2 norm of all n
 * gradients, multiplies them by max_norm / (norm + 1e-6) when that factor is below 1. Returns the
 * norm before clipping. max_norm <= 0 only measures. */
float grad_clip_norm(float *grads, size_t n, float max_norm);

#endif
