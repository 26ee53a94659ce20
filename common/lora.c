/* LoRA adapter layout and the linear choke point; see lora.h. */
#include "lora.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model.h"

static const char *const module_names[LORA_NUM_MODULES] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
static const char *const module_short[LORA_NUM_MODULES] = {"q", "k", "v", "o", "gate", "up", "down"};

const char *lora_module_name(lora_module m) {
  return (unsigned)m < LORA_NUM_MODULES ? module_names[m] : "?";
}

int lora_module_parse(const char *name) {
  for (int m = 0; m < LORA_NUM_MODULES; m++)
    if (strcmp(name, module_names[m]) == 0 || strcmp(name, module_short[m]) == 0) return m;
  return -1;
}

int lora_targets_parse(const char *list, unsigned *targets, char *err, size_t err_size) {
  if (strcasecmp(list, "all") == 0) {
    *targets = LORA_TARGETS_ALL;
    return 0;
  }
  unsigned bits = 0;
  const char *p = list;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char name[32];
    if (len == 0 || len >= sizeof name) {
      snprintf(err, err_size, "LoRA targets '%s': empty or over-long module name", list);
      return -1;
    }
    memcpy(name, p, len);
    name[len] = '\0';
    int m = lora_module_parse(name);
    if (m < 0) {
      snprintf(err, err_size, "LoRA targets '%s': unknown module '%s' (expected q,k,v,o,gate,up,down "
               "or their *_proj names)", list, name);
      return -1;
    }
    bits |= 1u << m;
    p = end ? end + 1 : p + len;
  }
  if (!bits) {
    snprintf(err, err_size, "LoRA targets '%s': no module named", list);
    return -1;
  }
  *targets = bits;
  return 0;
}

void lora_module_shape(const model_config *c, lora_module m, int *out_features, int *in_features) {
  int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
  switch (m) {
    case LORA_Q: *out_features = qd; *in_features = c->dim; break;
    case LORA_K:
    case LORA_V: *out_features = kvd; *in_features = c->dim; break;
    case LORA_O: *out_features = c->dim; *in_features = qd; break;
    case LORA_GATE:
    case LORA_UP: *out_features = c->hidden_dim; *in_features = c->dim; break;
    case LORA_DOWN: *out_features = c->dim; *in_features = c->hidden_dim; break;
    default: *out_features = *in_features = 0; break;
  }
}

float lora_scale(const lora_config *cfg) {
  return cfg->use_rslora ? cfg->alpha / sqrtf((float)cfg->rank) : cfg->alpha / (float)cfg->rank;
}

int lora_build(lora_adapter *ad, const model_config *c, const lora_config *cfg, char *err, size_t err_size) {
  memset(ad, 0, sizeof *ad);
  if (cfg->rank <= 0) {
    snprintf(err, err_size, "LoRA rank: expected > 0, got %d", cfg->rank);
    return -1;
  }
  if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f)) {
    snprintf(err, err_size, "LoRA dropout: expected in [0, 1), got %g", cfg->dropout);
    return -1;
  }
  if (!cfg->targets || (cfg->targets & ~LORA_TARGETS_ALL)) {
    snprintf(err, err_size, "LoRA targets: expected a non-empty subset of q,k,v,o,gate,up,down (mask 0x%x)",
             cfg->targets);
    return -1;
  }
  ad->config = *cfg;
  ad->scale = lora_scale(cfg);
  ad->n_layers = c->n_layers;
  size_t slots = (size_t)c->n_layers * LORA_NUM_MODULES;
  ad->offset_a = malloc(slots * sizeof(size_t));
  ad->offset_b = malloc(slots * sizeof(size_t));
  if (!ad->offset_a || !ad->offset_b) goto oom;
  for (int m = 0; m < LORA_NUM_MODULES; m++)
    lora_module_shape(c, (lora_module)m, &ad->out_features[m], &ad->in_features[m]);
  size_t off = 0, r = (size_t)cfg->rank;
  for (int l = 0; l < c->n_layers; l++)
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
      size_t s = (size_t)l * LORA_NUM_MODULES + m;
      if (!(cfg->targets & (1u << m))) {
        ad->offset_a[s] = ad->offset_b[s] = SIZE_MAX;
        continue;
      }
      ad->offset_a[s] = off;
      off += r * (size_t)ad->in_features[m];
      ad->offset_b[s] = off;
      off += (size_t)ad->out_features[m] * r;
    }
  ad->num_params = off;
  ad->params = calloc(off, sizeof(float));
  if (!ad->params) goto oom;
  return 0;
oom:
  snprintf(err, err_size, "LoRA adapter: out of memory");
  lora_free(ad);
  return -1;
}

void lora_free(lora_adapter *ad) {
  free(ad->offset_a);
  free(ad->offset_b);
  free(ad->params);
  memset(ad, 0, sizeof *ad);
}

/* splitmix64: a small, well-mixed generator; also the hash behind the dropout masks. */
static uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [0, 1) from the top 24 bits, exactly representable as a float. */
static float unit_float(uint64_t bits) { return (float)(bits >> 40) * (1.0f / 16777216.0f); }

void lora_init(lora_adapter *ad, uint64_t seed) {
  uint64_t state = mix64(seed);
  for (int l = 0; l < ad->n_layers; l++)
    for (int m = 0; m < LORA_NUM_MODULES; m++) {
      float *a = lora_a(ad, ad->params, l, (lora_module)m);
      if (!a) continue;
      size_t n = (size_t)ad->config.rank * ad->in_features[m];
      /* kaiming_uniform_(a=sqrt(5)) as PEFT calls it: bound = sqrt(6 / ((1 + 5) fan_in)). */
      float bound = 1.0f / sqrtf((float)ad->in_features[m]);
      for (size_t i = 0; i < n; i++) {
        state += 0x9e3779b97f4a7c15ull;
        a[i] = bound * (2.0f * unit_float(mix64(state)) - 1.0f);
      }
      memset(lora_b(ad, ad->params, l, (lora_module)m), 0,
             sizeof(float) * (size_t)ad->out_features[m] * ad->config.rank);
    }
}

float *lora_a(const lora_adapter *ad, float *base, int layer, lora_module m) {
  size_t off = ad->offset_a[(size_t)layer * LORA_NUM_MODULES + m];
  return off == SIZE_MAX ? NULL : base + off;
}

float *lora_b(const lora_adapter *ad, float *base, int layer, lora_module m) {
  size_t off = ad->offset_b[(size_t)layer * LORA_NUM_MODULES + m];
  return off == SIZE_MAX ? NULL : base + off;
}

float lora_dropout_factor(uint64_t key, size_t i, float p) {
  return unit_float(mix64(key ^ mix64((uint64_t)i))) < p ? 0.0f : 1.0f / (1.0f - p);
}

/* dst (n, in) = src * dropout mask; src[0] is element `first` of the batch. */
static void dropout_apply(float *dst, const float *src, size_t count, uint64_t key, size_t first, float p) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; i++) dst[i] = src[i] * lora_dropout_factor(key, first + i, p);
}

void linear_forward(const linear_params *p, float *y, const float *x, float *xa, float *scratch, int n,
                    int in, int out) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, p->w, in, 0.0f, y, out);
  if (!p->a) return;
  const float *xin = x;
  if (p->dropout > 0.0f) {
    dropout_apply(scratch, x, (size_t)n * in, p->dropout_key, p->dropout_first, p->dropout);
    xin = scratch;
  }
  int r = p->rank;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, in, 1.0f, xin, in, p->a, in, 0.0f, xa, r);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, r, p->scale, xa, r, p->b, r, 1.0f, y, out);
}

void linear_backward(const linear_params *p, float *dx, const float *dy, const float *x, const float *xa,
                     float *d_xa, float *scratch, int n, int in, int out) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, p->w, in, 1.0f, dx, in);
  if (p->dw)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, x, in, 1.0f, p->dw, in);
  if (!p->a) return;
  int r = p->rank;
  int dropout = p->dropout > 0.0f;
  /* dB += scale dy^T xa;  d_xa = scale dy B */
  if (p->db)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, r, n, p->scale, dy, out, xa, r, 1.0f, p->db, r);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, r, out, p->scale, dy, out, p->b, r, 0.0f, d_xa, r);
  /* dA += d_xa^T drop(x) */
  if (p->da) {
    const float *xin = x;
    if (dropout) {
      dropout_apply(scratch, x, (size_t)n * in, p->dropout_key, p->dropout_first, p->dropout);
      xin = scratch;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, n, 1.0f, d_xa, r, xin, in, 1.0f, p->da, in);
  }
  /* dx += mask * (d_xa A) */
  if (!dropout) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, r, 1.0f, d_xa, r, p->a, in, 1.0f, dx, in);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, r, 1.0f, d_xa, r, p->a, in, 0.0f, scratch, in);
  size_t count = (size_t)n * in;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; i++) dx[i] += scratch[i] * lora_dropout_factor(p->dropout_key, p->dropout_first + i, p->dropout);
}
