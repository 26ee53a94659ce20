/* Training: one optimizer step = grad_accum micro-batches of (B, T) windows, forward + mean masked
 * cross-entropy + backward into one flat gradient, global-norm clipping, then the optimizer at the
 * scheduled learning rate. The trainable array is the LoRA adapter's params, or in full-parameter
 * mode the whole base-weight arena. Nothing is allocated after trainer_build. Results are
 * deterministic given the seed and the thread count.
 *
 * Data parallel (dist.h): with N ranks each micro-batch is N * B windows. Every rank draws all of
 * them from the same seeded mixture and keeps draws r, r + N, r + 2N, ... (its B rows); the
 * gradient is weighted by the micro-batch's token count summed over ranks and then summed with an
 * allreduce, so N ranks with batch B compute the mean loss over the same N * B windows as one
 * process with batch N * B, up to float summation order (LoRA dropout masks differ: they are drawn
 * per rank). Clipping and the optimizer then run on identical gradients on every rank. */
#ifndef FEDLORA_TRAIN_H
#define FEDLORA_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "lora.h"
#include "model.h"
#include "optim.h"

typedef struct {
  int batch, seq_len;   /* B, T of one micro-batch */
  int grad_accum;       /* micro-batches per optimizer step (>= 1) */
  long steps;           /* optimizer steps */
  optim_config optim;
  lr_schedule schedule; /* total_steps = steps */
  float grad_clip;      /* global L2 norm; 0 = off */
  int shuffle;          /* window order for the caller's data_mixture: seeded per epoch, or file order */
  uint64_t seed;        /* the mixture's draws and shuffling, and LoRA dropout */
  /* FedProx (Li et al. 2020): loss + prox_mu/2 * ||params - prox_anchor||^2 keeps a site's local
   * steps near the round's global adapter. 0 (or no anchor) is plain training. */
  float prox_mu;
  const float *prox_anchor; /* (trainable params) the round's starting point */
} train_config;

typedef struct {
  model *model;
  lora_adapter *lora;     /* NULL: full-parameter mode */
  train_config cfg;
  float *params;          /* (n) what the optimizer updates: lora->params or model->params */
  float *grad;            /* (n) same layout */
  size_t n;
  model_weights dweights; /* full-parameter mode: pointers into grad */
  optimizer opt;
  model_activations acts;
  int *inputs, *targets;  /* (B + 1, T) row B is scratch for windows other ranks take */
  float *mask;            /* (B + 1, T) */
  long step;              /* optimizer steps done */
  int rank, ranks;        /* dist_rank(), dist_size() at trainer_build */
} trainer;

/* lora NULL trains every base weight. */
int trainer_build(trainer *t, model *m, lora_adapter *lora, const train_config *cfg, char *err, size_t err_size);
void trainer_free(trainer *t);

typedef struct {
  double loss;      /* mean loss over the step's micro-batches (before the update) */
  float grad_norm;  /* global norm before clipping */
  float lr;
  int failed;       /* a collective across ranks failed (dist_error() says why); nothing was updated */
} step_report;

/* One optimizer step on the next grad_accum * B * ranks windows drawn from data (windows of cfg.seq_len),
 * this rank's share of them computed here. */
step_report trainer_step(trainer *t, data_mixture *data);

/* Forward + loss + backward of one batch, adding weight * d(mean loss) into t->grad. Returns the
 * mean loss. Exposed for tests and callers with their own batches. */
double trainer_accumulate(trainer *t, const int *inputs, const int *targets, const float *mask, float weight,
                          uint64_t dropout_seed);
/* Clips, updates at the scheduled rate and zeroes the gradient. */
step_report trainer_update(trainer *t);

/* Mean next-token loss over every indexed window of data (T = data->seq_len), in batches of B;
 * *tokens gets the number of counted targets. lora may be NULL. */
int evaluate_loss(const model *m, const lora_adapter *lora, const dataset *data, int batch, double *loss,
                  double *tokens, char *err, size_t err_size);

#endif
