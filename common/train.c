/* Training steps and evaluation; see train.h. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"

int trainer_build(trainer *t, model *m, lora_adapter *lora, const train_config *cfg, char *err, size_t err_size) {
  memset(t, 0, sizeof *t);
  if (cfg->batch <= 0 || cfg->seq_len <= 0 || cfg->grad_accum <= 0) {
    snprintf(err, err_size, "train: batch, seq_len and grad_accum must be > 0, got %d, %d, %d", cfg->batch,
             cfg->seq_len, cfg->grad_accum);
    return -1;
  }
  if (cfg->seq_len > m->config.max_seq_len) {
    snprintf(err, err_size, "train: seq_len %d exceeds the model's max_seq_len %d", cfg->seq_len,
             m->config.max_seq_len);
    return -1;
  }
  t->model = m;
  t->lora = lora;
  t->cfg = *cfg;
  t->params = lora ? lora->params : m->params;
  t->n = lora ? lora->num_params : m->num_params;
  t->rank = dist_rank();
  t->ranks = dist_size();
  size_t bt = (size_t)(cfg->batch + 1) * cfg->seq_len;
  t->grad = calloc(t->n, sizeof(float));
  t->inputs = malloc(sizeof(int) * bt);
  t->targets = malloc(sizeof(int) * bt);
  t->mask = malloc(sizeof(float) * bt);
  if (!t->grad || !t->inputs || !t->targets || !t->mask) {
    snprintf(err, err_size, "train: out of memory for %zu trainable parameters", t->n);
    trainer_free(t);
    return -1;
  }
  if (!lora) model_weights_point(&t->dweights, &m->config, t->grad);
  if (optimizer_build(&t->opt, &cfg->optim, t->n)) {
    snprintf(err, err_size, "train: cannot allocate optimizer state for %zu parameters", t->n);
    trainer_free(t);
    return -1;
  }
  if (activations_build(&t->acts, &m->config, lora, cfg->batch, cfg->seq_len, 1, err, err_size)) {
    trainer_free(t);
    return -1;
  }
  return 0;
}

void trainer_free(trainer *t) {
  free(t->grad);
  free(t->inputs);
  free(t->targets);
  free(t->mask);
  if (t->opt.n) optimizer_free(&t->opt);
  activations_free(&t->acts);
  memset(t, 0, sizeof *t);
}

double trainer_accumulate(trainer *t, const int *inputs, const int *targets, const float *mask, float weight,
                          uint64_t dropout_seed) {
  model_activations *a = &t->acts;
  int n = a->batch * a->seq_len;
  double count = loss_count(targets, mask, n), got = 0.0;
  if (count <= 0.0) return 0.0;
  model_forward(t->model, t->lora, a, inputs, dropout_seed);
  double sum = model_loss(t->model, a, targets, mask, (float)(weight / count), t->lora ? NULL : &t->dweights, &got);
  model_backward(t->model, t->lora, a, inputs, t->lora ? NULL : &t->dweights, t->lora ? t->grad : NULL);
  return sum / count;
}

/* With A frozen only the B blocks are updated: A has no gradient, but decoupled weight decay would
 * still shrink it, and PEFT-style frozen A must stay exactly as initialised. */
static void update_b_only(trainer *t, float lr) {
  const lora_adapter *ad = t->lora;
  optimizer *o = &t->opt;
  o->step++;
  for (int l = 0; l < ad->n_layers; l++)
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
      float *b = lora_b(ad, ad->params, l, m);
      if (!b) continue;
      size_t off = (size_t)(b - ad->params), n = (size_t)ad->out_features[m] * ad->config.rank;
      if (o->cfg.kind == OPTIM_ADAMW)
        adamw_update(b, t->grad + off, o->m + off, o->v + off, n, o->step, lr, &o->cfg);
      else
        sgd_update(b, t->grad + off, n, lr, o->cfg.weight_decay);
    }
}

step_report trainer_update(trainer *t) {
  step_report r = {0};
  if (t->cfg.prox_mu > 0.0f && t->cfg.prox_anchor) {
    const float mu = t->cfg.prox_mu, *anchor = t->cfg.prox_anchor;
    for (size_t i = 0; i < t->n; i++) t->grad[i] += mu * (t->params[i] - anchor[i]);
  }
  r.grad_norm = grad_clip_norm(t->grad, t->n, t->cfg.grad_clip);
  r.lr = lr_schedule_at(&t->cfg.schedule, t->step);
  if (t->lora && t->lora->config.freeze_a) update_b_only(t, r.lr);
  else optimizer_step(&t->opt, t->params, t->grad, r.lr);
  memset(t->grad, 0, sizeof(float) * t->n);
  t->step++;
  return r;
}

static uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Loads this rank's B of the next B * ranks windows of the mixture into t's batch buffers. */
static void batch_load(trainer *t, data_mixture *data) {
  int B = t->cfg.batch, T = t->cfg.seq_len, N = t->ranks;
  for (int j = 0; j < B * N; j++) {
    size_t row = j % N == t->rank ? (size_t)(j / N) : (size_t)B;
    mixture_next(data, t->inputs + row * T, t->targets + row * T, t->mask + row * T);
  }
}

/* The share of a micro-batch's mean loss that this rank's rows carry: its counted targets over
 * those of all ranks. 1 for one rank; -1 when the collective failed. */
static double rank_share(trainer *t) {
  if (t->ranks == 1) return 1.0;
  float count[1] = {(float)loss_count(t->targets, t->mask, t->cfg.batch * t->cfg.seq_len)}, mine = count[0];
  if (dist_allreduce_sum(count, 1) != 0) return -1.0;
  return count[0] > 0.0f ? (double)mine / (double)count[0] : 0.0;
}

step_report trainer_step(trainer *t, data_mixture *data) {
  int accum = t->cfg.grad_accum;
  double loss = 0.0;
  for (int k = 0; k < accum; k++) {
    long micro = t->step * accum + k;
    batch_load(t, data);
    /* a non-zero seed per micro-batch and rank turns dropout on with a fresh mask */
    uint64_t dropout_seed = mix64(t->cfg.seed ^ mix64((uint64_t)micro * t->ranks + t->rank)) | 1u;
    double share = rank_share(t);
    if (share < 0.0) return (step_report){.loss = NAN, .failed = 1};
    loss += share * trainer_accumulate(t, t->inputs, t->targets, t->mask, (float)(share / accum), dropout_seed);
  }
  if (t->ranks > 1) {
    /* the shares already weight each rank's rows by the global count: the sum is the mean */
    float total_loss[1] = {(float)loss};
    if (dist_allreduce_sum(t->grad, t->n) != 0 || dist_allreduce_sum(total_loss, 1) != 0) {
      memset(t->grad, 0, sizeof(float) * t->n);
      return (step_report){.loss = NAN, .failed = 1};
    }
    loss = total_loss[0];
  }
  step_report r = trainer_update(t);
  r.loss = loss / accum;
  return r;
}

int evaluate_loss(const model *m, const lora_adapter *lora, const dataset *data, int batch, double *loss,
                  double *tokens, char *err, size_t err_size) {
  int seq_len = data->seq_len;
  *loss = *tokens = 0.0;
  if (seq_len > m->config.max_seq_len) {
    snprintf(err, err_size, "eval: seq_len %d exceeds the model's max_seq_len %d", seq_len, m->config.max_seq_len);
    return -1;
  }
  size_t windows = data->n_windows, bt = (size_t)batch * seq_len;
  model_activations a;
  int *inputs = malloc(sizeof(int) * bt), *targets = malloc(sizeof(int) * bt);
  float *mask = malloc(sizeof(float) * bt);
  int rc = -1;
  if (!inputs || !targets || !mask) {
    snprintf(err, err_size, "eval: out of memory");
    goto done;
  }
  if (activations_build(&a, &m->config, lora, batch, seq_len, 0, err, err_size)) goto done;
  double sum = 0.0, count = 0.0;
  for (size_t w0 = 0; w0 < windows; w0 += (size_t)batch) {
    int rows = windows - w0 < (size_t)batch ? (int)(windows - w0) : batch;
    for (int b = 0; b < rows; b++)
      dataset_window(data, w0 + b, inputs + (size_t)b * seq_len, targets + (size_t)b * seq_len,
                     mask + (size_t)b * seq_len);
    a.batch = rows;
    model_forward(m, lora, &a, inputs, 0);
    sum += model_loss(m, &a, targets, mask, 0.0f, NULL, &count);
  }
  activations_free(&a);
  *loss = count > 0.0 ? sum / count : 0.0;
  *tokens = count;
  rc = 0;
done:
  free(inputs);
  free(targets);
  free(mask);
  return rc;
}
