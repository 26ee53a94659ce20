#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

optim_config optim_config_default(optim_kind kind) {
  optim_config c = {kind, 0.9f, 0.999f, 1e-8f, kind == OPTIM_ADAMW ? 0.01f : 0.0f};
  return c;
}

int optim_kind_parse(const char *name) {
  if (strcmp(name, "adamw") == 0) return OPTIM_ADAMW;
  if (strcmp(name, "sgd") == 0) return OPTIM_SGD;
  return -1;
}

void adamw_update(float *params, const float *grads, float *m, float *v, size_t n, long t, float lr,
                  const optim_config *cfg) {
  const float b1 = cfg->beta1, b2 = cfg->beta2, eps = cfg->eps;
  /* torch computes the corrections from Python floats (double) and folds them into a step size
   * and a denominator scale, which is what we do too */
  const double bc1 = 1.0 - pow((double)b1, (double)t);
  const double bc2 = 1.0 - pow((double)b2, (double)t);
  const float step_size = (float)(lr / bc1);
  const float bc2_sqrt = (float)sqrt(bc2);
  const float decay = 1.0f - lr * cfg->weight_decay;
  for (size_t i = 0; i < n; i++) {
    float g = grads[i];
    float p = params[i] * decay;
    m[i] = b1 * m[i] + (1.0f - b1) * g;
    v[i] = b2 * v[i] + (1.0f - b2) * g * g;
    params[i] = p - step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
  }
}

void sgd_update(float *params, const float *grads, size_t n, float lr, float weight_decay) {
  for (size_t i = 0; i < n; i++) params[i] -= lr * (grads[i] + weight_decay * params[i]);
}

int optimizer_build(optimizer *o, const optim_config *cfg, size_t n) {
  memset(o, 0, sizeof *o);
  o->cfg = *cfg;
  o->n = n;
  if (cfg->kind == OPTIM_ADAMW) {
    /* m and v share one allocation, with the parameters' layout each */
    o->m = calloc(2 * (n ? n : 1), sizeof(float));
    if (!o->m) return -1;
    o->v = o->m + n;
  }
  return 0;
}

void optimizer_free(optimizer *o) {
  free(o->m);
  memset(o, 0, sizeof *o);
}

void optimizer_reset(optimizer *o) {
  if (o->m) memset(o->m, 0, 2 * o->n * sizeof(float));
  o->step = 0;
}

void optimizer_step(optimizer *o, float *params, const float *grads, float lr) {
  o->step++;
  if (o->cfg.kind == OPTIM_ADAMW) adamw_update(params, grads, o->m, o->v, o->n, o->step, lr, &o->cfg);
  else sgd_update(params, grads, o->n, lr, o->cfg.weight_decay);
}

float lr_schedule_at(const lr_schedule *s, long step) {
  if (step < s->warmup_steps) return s->lr * (float)((double)step / (double)(s->warmup_steps > 1 ? s->warmup_steps : 1));
  if (s->kind == SCHEDULE_CONSTANT) return s->lr;
  if (step >= s->total_steps) return 0.0f;
  long span = s->total_steps - s->warmup_steps;
  double progress = (double)(step - s->warmup_steps) / (double)(span > 1 ? span : 1);
  double factor = 0.5 * (1.0 + cos(M_PI * progress));
  return s->lr * (float)(factor > 0.0 ? factor : 0.0);
}

int schedule_kind_parse(const char *name) {
  if (strcmp(name, "constant") == 0) return SCHEDULE_CONSTANT;
  if (strcmp(name, "cosine") == 0) return SCHEDULE_COSINE;
  return -1;
}

float grad_clip_norm(float *grads, size_t n, float max_norm) {
  double sumsq = 0.0;
  for (size_t i = 0; i < n; i++) sumsq += (double)grads[i] * grads[i];
  float norm = (float)sqrt(sumsq);
  if (max_norm > 0.0f) {
    float coef = max_norm / (norm + 1e-6f);
    if (coef < 1.0f)
      for (size_t i = 0; i < n; i++) grads[i] *= coef;
  }
  return norm;
}
