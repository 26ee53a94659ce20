/* The Llama model: weight arena, activation arena, forward, loss and backward; see model.h. */
#include "model.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

int model_config_validate(const model_config *c, char *err, size_t err_size) {
  const struct { const char *name; int value; } sizes[] = {
      {"dim", c->dim},           {"hidden_dim", c->hidden_dim}, {"n_layers", c->n_layers},
      {"n_heads", c->n_heads},   {"n_kv_heads", c->n_kv_heads}, {"head_dim", c->head_dim},
      {"vocab_size", c->vocab_size}, {"max_seq_len", c->max_seq_len}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    if (sizes[i].value <= 0) {
      snprintf(err, err_size, "model config: %s must be > 0, got %d", sizes[i].name, sizes[i].value);
      return -1;
    }
  /* With these bounds the weight count stays below 2^55 floats, so neither it nor its size in bytes
   * can wrap around whatever a file header claims; the largest real models are far inside them. */
  const struct { const char *name; int64_t value, max; } bounded[] = {
      {"dim", c->dim, MODEL_MAX_WIDTH}, {"hidden_dim", c->hidden_dim, MODEL_MAX_WIDTH},
      {"vocab_size", c->vocab_size, MODEL_MAX_WIDTH}, {"n_layers", c->n_layers, MODEL_MAX_LAYERS},
      {"n_heads * head_dim", (int64_t)c->n_heads * c->head_dim, MODEL_MAX_WIDTH},
      {"n_kv_heads * head_dim", (int64_t)c->n_kv_heads * c->head_dim, MODEL_MAX_WIDTH}};
  for (size_t i = 0; i < sizeof bounded / sizeof bounded[0]; i++)
    if (bounded[i].value > bounded[i].max) {
      snprintf(err, err_size, "model config: %s must be at most %lld, got %lld", bounded[i].name,
               (long long)bounded[i].max, (long long)bounded[i].value);
      return -1;
    }
  if (c->n_heads % c->n_kv_heads != 0) {
    snprintf(err, err_size, "model config: n_heads %d is not a multiple of n_kv_heads %d", c->n_heads,
             c->n_kv_heads);
    return -1;
  }
  if (c->head_dim % 2 != 0) {
    snprintf(err, err_size, "model config: head_dim must be even for RoPE, got %d", c->head_dim);
    return -1;
  }
  if (!(c->norm_eps > 0.0f) || !(c->rope_theta > 0.0f)) {
    snprintf(err, err_size, "model config: norm_eps and rope_theta must be > 0, got %g and %g", c->norm_eps,
             c->rope_theta);
    return -1;
  }
  return 0;
}

/* Sizes of the arena's pieces, in file order. */
static void weight_sizes(const model_config *c, size_t sz[12]) {
  size_t D = c->dim, F = c->hidden_dim, L = c->n_layers, V = c->vocab_size;
  size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
  size_t s[12] = {V * D, L * D, L * QD * D, L * KVD * D, L * KVD * D, L * D * QD,
                  L * D, L * F * D, L * D * F, L * F * D, D, c->tied_classifier ? 0 : V * D};
  memcpy(sz, s, sizeof s);
}

size_t model_weights_count(const model_config *c) {
  size_t sz[12], total = 0;
  weight_sizes(c, sz);
  for (int i = 0; i < 12; i++) total += sz[i];
  return total;
}

void model_weights_point(model_weights *w, const model_config *c, float *base) {
  size_t sz[12];
  weight_sizes(c, sz);
  float **slots[12] = {&w->tok_emb, &w->rms_att, &w->wq, &w->wk, &w->wv, &w->wo,
                       &w->rms_ffn, &w->w_gate, &w->w_down, &w->w_up, &w->rms_final, &w->wcls};
  for (int i = 0; i < 12; i++) {
    *slots[i] = base;
    base += sz[i];
  }
  if (c->tied_classifier) w->wcls = w->tok_emb;
}

int model_build(model *m, const model_config *c, char *err, size_t err_size) {
  memset(m, 0, sizeof *m);
  if (model_config_validate(c, err, err_size)) return -1;
  m->config = *c;
  m->num_params = model_weights_count(c);
  m->params = calloc(m->num_params, sizeof(float));
  if (!m->params) {
    snprintf(err, err_size, "model: cannot allocate %zu weights", m->num_params);
    return -1;
  }
  model_weights_point(&m->weights, c, m->params);
  return 0;
}

void model_free(model *m) {
  free(m->params);
  memset(m, 0, sizeof *m);
}

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void model_init_random(model *m, uint64_t seed, float std) {
  uint64_t s = seed;
  for (size_t i = 0; i < m->num_params; i += 2) {
    /* Box-Muller on two uniforms in (0, 1] */
    double u1 = ((rng_next(&s) >> 11) + 1.0) / 9007199254740992.0;
    double u2 = (rng_next(&s) >> 11) / 9007199254740992.0;
    double r = sqrt(-2.0 * log(u1));
    m->params[i] = (float)(std * r * cos(2.0 * M_PI * u2));
    if (i + 1 < m->num_params) m->params[i + 1] = (float)(std * r * sin(2.0 * M_PI * u2));
  }
  const model_config *c = &m->config;
  model_weights *w = &m->weights;
  for (size_t i = 0; i < (size_t)c->n_layers * c->dim; i++) w->rms_att[i] = w->rms_ffn[i] = 1.0f;
  for (int i = 0; i < c->dim; i++) w->rms_final[i] = 1.0f;
}

static void rope_rows_permute(float *w, int n_heads, int head_dim, int cols, int to_internal) {
  int half = head_dim / 2;
  size_t row_bytes = sizeof(float) * (size_t)cols;
  float *tmp = malloc(row_bytes * (size_t)head_dim);
  if (!tmp) abort(); /* a head's rows: at most a few hundred KB */
  for (int h = 0; h < n_heads; h++) {
    float *head = w + (size_t)h * head_dim * cols;
    for (int i = 0; i < half; i++)
      for (int c = 0; c < 2; c++) {
        size_t internal = 2 * (size_t)i + c, hf = (size_t)c * half + i;
        size_t dst = to_internal ? internal : hf, src = to_internal ? hf : internal;
        memcpy(tmp + dst * cols, head + src * cols, row_bytes);
      }
    memcpy(head, tmp, row_bytes * (size_t)head_dim);
  }
  free(tmp);
}

void rope_rows_hf_to_internal(float *w, int n_heads, int head_dim, int cols) {
  rope_rows_permute(w, n_heads, head_dim, cols, 1);
}

void rope_rows_internal_to_hf(float *w, int n_heads, int head_dim, int cols) {
  rope_rows_permute(w, n_heads, head_dim, cols, 0);
}

/* ---- activations ---- */

static int max3(int a, int b, int c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

int activations_build(model_activations *a, const model_config *c, const lora_adapter *lora, int batch,
                      int seq_len, int training, char *err, size_t err_size) {
  memset(a, 0, sizeof *a);
  if (batch <= 0 || seq_len <= 0) {
    snprintf(err, err_size, "activations: batch and seq_len must be > 0, got %d and %d", batch, seq_len);
    return -1;
  }
  size_t B = batch, T = seq_len, N = B * T, L = c->n_layers, D = c->dim, F = c->hidden_dim;
  size_t H = c->n_heads, QD = H * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
  size_t V = c->vocab_size, half = c->head_dim / 2, r = lora ? (size_t)lora->config.rank : 0;
  size_t widest = (size_t)max3(c->dim, c->hidden_dim, (int)QD);
  int dropout = lora && lora->config.dropout > 0.0f;
  model_acts *x = &a->acts;
  struct { float **p; size_t n; } parts[] = {
      {&x->resid, (L + 1) * N * D}, {&x->resid_mid, L * N * D}, {&x->xn_att, L * N * D},
      {&x->rstd_att, L * N},        {&x->q, L * N * QD},        {&x->k, L * N * KVD},
      {&x->v, L * N * KVD},         {&x->att, L * B * H * T * T}, {&x->att_out, L * N * QD},
      {&x->xn_ffn, L * N * D},      {&x->rstd_ffn, L * N},      {&x->gate, L * N * F},
      {&x->up, L * N * F},          {&x->act, L * N * F},       {&x->xn_final, N * D},
      {&x->rstd_final, N},          {&x->lora_xa, L * LORA_NUM_MODULES * N * r},
      {&x->rope_cos, T * half},     {&x->rope_sin, T * half},   {&x->logits, (size_t)LOSS_CHUNK * V},
      {&x->d_resid, training ? N * D : 0}, {&x->d_xn, training ? N * D : 0},
      {&x->d_q, training ? N * QD : 0},    {&x->d_k, training ? N * KVD : 0},
      {&x->d_v, training ? N * KVD : 0},   {&x->d_att, training ? B * H * T * T : 0},
      {&x->d_att_out, training ? N * QD : 0}, {&x->d_gate, training ? N * F : 0},
      {&x->d_up, training ? N * F : 0},    {&x->d_act, training ? N * F : 0},
      {&x->lora_scratch, dropout ? N * widest : 0},
      {&x->lora_d_xa, training ? N * r : 0},
  };
  size_t total = 0, nparts = sizeof parts / sizeof parts[0];
  for (size_t i = 0; i < nparts; i++) total += parts[i].n;
  a->mem = calloc(total, sizeof(float));
  if (!a->mem) {
    snprintf(err, err_size, "activations: cannot allocate %zu floats for batch %d x %d", total, batch, seq_len);
    return -1;
  }
  float *p = a->mem;
  for (size_t i = 0; i < nparts; i++) {
    *parts[i].p = parts[i].n ? p : NULL;
    p += parts[i].n;
  }
  a->mem_floats = total;
  a->batch = a->max_batch = batch;
  a->seq_len = a->max_seq_len = seq_len;
  a->training = training;
  a->lora_rank = (int)r;
  rope_tables(x->rope_cos, x->rope_sin, seq_len, c->head_dim, c->rope_theta);
  return 0;
}

void activations_free(model_activations *a) {
  free(a->mem);
  memset(a, 0, sizeof *a);
}

/* Per-layer views of the activation arena (strides come from the capacity). */
typedef struct {
  float *resid_in, *resid_out, *resid_mid, *xn_att, *rstd_att, *q, *k, *v, *att, *att_out;
  float *xn_ffn, *rstd_ffn, *gate, *up, *act;
} layer_acts;

static layer_acts layer_view(const model_config *c, model_activations *a, int l) {
  size_t N = (size_t)a->max_batch * a->max_seq_len, D = c->dim, F = c->hidden_dim;
  size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
  size_t att = (size_t)a->max_batch * c->n_heads * a->max_seq_len * a->max_seq_len;
  model_acts *x = &a->acts;
  layer_acts v = {
      .resid_in = x->resid + l * N * D, .resid_out = x->resid + (l + 1) * N * D,
      .resid_mid = x->resid_mid + l * N * D, .xn_att = x->xn_att + l * N * D,
      .rstd_att = x->rstd_att + l * N, .q = x->q + l * N * QD, .k = x->k + l * N * KVD,
      .v = x->v + l * N * KVD, .att = x->att + l * att, .att_out = x->att_out + l * N * QD,
      .xn_ffn = x->xn_ffn + l * N * D, .rstd_ffn = x->rstd_ffn + l * N, .gate = x->gate + l * N * F,
      .up = x->up + l * N * F, .act = x->act + l * N * F};
  return v;
}

/* The base weight of module m in layer l. */
static float *module_weight(const model_config *c, const model_weights *w, int l, lora_module m) {
  size_t D = c->dim, F = c->hidden_dim;
  size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
  switch (m) {
    case LORA_Q: return w->wq + l * QD * D;
    case LORA_K: return w->wk + l * KVD * D;
    case LORA_V: return w->wv + l * KVD * D;
    case LORA_O: return w->wo + l * D * QD;
    case LORA_GATE: return w->w_gate + l * F * D;
    case LORA_UP: return w->w_up + l * F * D;
    default: return w->w_down + l * D * F;
  }
}

/* Everything linear_forward/backward need for module m of layer l: the one place a projection's
 * base weight, adapter and gradients are looked up. */
static linear_params module_linear(const model *mdl, const lora_adapter *lora, const model_activations *a,
                                   model_weights *dweights, float *dlora, int l, lora_module m) {
  linear_params p = {.w = module_weight(&mdl->config, &mdl->weights, l, m)};
  if (dweights) p.dw = module_weight(&mdl->config, dweights, l, m);
  if (lora && (p.a = lora_a(lora, lora->params, l, m))) {
    p.b = lora_b(lora, lora->params, l, m);
    if (dlora) {
      p.da = lora->config.freeze_a ? NULL : lora_a(lora, dlora, l, m);
      p.db = lora_b(lora, dlora, l, m);
    }
    p.rank = lora->config.rank;
    p.scale = lora->scale;
    if (a->dropout_on) {
      p.dropout = lora->config.dropout;
      p.dropout_key = a->dropout_seed * 0x100000001b3ull + (uint64_t)(l * LORA_NUM_MODULES + m) + 1;
    }
  }
  return p;
}

static float *module_xa(const model_activations *a, int l, lora_module m) {
  size_t N = (size_t)a->max_batch * a->max_seq_len;
  return a->acts.lora_xa ? a->acts.lora_xa + ((size_t)l * LORA_NUM_MODULES + m) * N * a->lora_rank : NULL;
}

static void add_into(float *dst, const float *src, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

void model_forward(const model *mdl, const lora_adapter *lora, model_activations *a, const int *tokens,
                   uint64_t dropout_seed) {
  const model_config *c = &mdl->config;
  const model_weights *w = &mdl->weights;
  int B = a->batch, T = a->seq_len, N = B * T, D = c->dim, F = c->hidden_dim;
  int QD = c->n_heads * c->head_dim, KVD = c->n_kv_heads * c->head_dim;
  a->dropout_on = lora && dropout_seed != 0 && lora->config.dropout > 0.0f;
  a->dropout_seed = dropout_seed;
  float *scratch = a->acts.lora_scratch;
  embedding_forward(a->acts.resid, w->tok_emb, tokens, N, D);
  for (int l = 0; l < c->n_layers; l++) {
    layer_acts v = layer_view(c, a, l);
    linear_params p;
    rmsnorm_forward(v.xn_att, v.rstd_att, v.resid_in, w->rms_att + (size_t)l * D, N, D, c->norm_eps);
    p = module_linear(mdl, lora, a, NULL, NULL, l, LORA_Q);
    linear_forward(&p, v.q, v.xn_att, module_xa(a, l, LORA_Q), scratch, N, D, QD);
    p = module_linear(mdl, lora, a, NULL, NULL, l, LORA_K);
    linear_forward(&p, v.k, v.xn_att, module_xa(a, l, LORA_K), scratch, N, D, KVD);
    p = module_linear(mdl, lora, a, NULL, NULL, l, LORA_V);
    linear_forward(&p, v.v, v.xn_att, module_xa(a, l, LORA_V), scratch, N, D, KVD);
    rope_forward(v.q, a->acts.rope_cos, a->acts.rope_sin, B, T, c->n_heads, c->head_dim);
    rope_forward(v.k, a->acts.rope_cos, a->acts.rope_sin, B, T, c->n_kv_heads, c->head_dim);
    attention_forward(v.att_out, v.att, v.q, v.k, v.v, B, T, c->n_heads, c->n_kv_heads, c->head_dim);
    p = module_linear(mdl, lora, a, NULL, NULL, l, LORA_O);
    linear_forward(&p, v.resid_mid, v.att_out, module_xa(a, l, LORA_O), scratch, N, QD, D);
    add_into(v.resid_mid, v.resid_in, (size_t)N * D);
    rmsnorm_forward(v.xn_ffn, v.rstd_ffn, v.resid_mid, w->rms_ffn + (size_t)l * D, N, D, c->norm_eps);
    p = module_linear(mdl, lora, a, NULL, NULL, l, LORA_GATE);
    linear_forward(&p, v.gate, v.xn_ffn, module_xa(a, l, LORA_GATE), scratch, N, D, F);
    p = module_linear(mdl, lora, a, NULL, NULL, l, LORA_UP);
    linear_forward(&p, v.up, v.xn_ffn, module_xa(a, l, LORA_UP), scratch, N, D, F);
    swiglu_forward(v.act, v.gate, v.up, (size_t)N * F);
    p = module_linear(mdl, lora, a, NULL, NULL, l, LORA_DOWN);
    linear_forward(&p, v.resid_out, v.act, module_xa(a, l, LORA_DOWN), scratch, N, F, D);
    add_into(v.resid_out, v.resid_mid, (size_t)N * D);
  }
  float *last = a->acts.resid + (size_t)c->n_layers * a->max_batch * a->max_seq_len * D;
  rmsnorm_forward(a->acts.xn_final, a->acts.rstd_final, last, w->rms_final, N, D, c->norm_eps);
}

double loss_count(const int *targets, const float *mask, int n) {
  double count = 0.0;
  for (int i = 0; i < n; i++)
    if (targets[i] >= 0) count += mask ? mask[i] : 1.0f;
  return count;
}

double model_loss(const model *mdl, model_activations *a, const int *targets, const float *mask,
                  float d_scale, model_weights *dweights, double *count) {
  const model_config *c = &mdl->config;
  int N = a->batch * a->seq_len, D = c->dim, V = c->vocab_size;
  double loss = 0.0;
  for (int r0 = 0; r0 < N; r0 += LOSS_CHUNK) {
    int rows = N - r0 < LOSS_CHUNK ? N - r0 : LOSS_CHUNK;
    const float *xn = a->acts.xn_final + (size_t)r0 * D;
    float *logits = a->acts.logits;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, V, D, 1.0f, xn, D, mdl->weights.wcls, D, 0.0f,
                logits, V);
    loss += crossentropy_forward_backward(logits, targets + r0, mask ? mask + r0 : NULL, rows, V, d_scale,
                                          count);
    if (d_scale == 0.0f) continue;
    /* logits now hold dlogits: d_xn = dlogits Wcls, dWcls += dlogits^T xn */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, V, 1.0f, logits, V, mdl->weights.wcls, D,
                0.0f, a->acts.d_xn + (size_t)r0 * D, D);
    if (dweights)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, D, rows, 1.0f, logits, V, xn, D, 1.0f,
                  dweights->wcls, D);
  }
  return loss;
}

void model_backward(const model *mdl, const lora_adapter *lora, model_activations *a, const int *tokens,
                    model_weights *dweights, float *dlora) {
  const model_config *c = &mdl->config;
  const model_weights *w = &mdl->weights;
  model_acts *x = &a->acts;
  int B = a->batch, T = a->seq_len, N = B * T, D = c->dim, F = c->hidden_dim;
  int QD = c->n_heads * c->head_dim, KVD = c->n_kv_heads * c->head_dim;
  size_t nd = (size_t)N * D, nf = (size_t)N * F;
  float *scratch = x->lora_scratch, *dxa = x->lora_d_xa;
  float *last = x->resid + (size_t)c->n_layers * a->max_batch * a->max_seq_len * D;

  memset(x->d_resid, 0, sizeof(float) * nd);
  rmsnorm_backward(x->d_resid, dweights ? dweights->rms_final : NULL, x->d_xn, last, w->rms_final,
                   x->rstd_final, N, D);
  for (int l = c->n_layers - 1; l >= 0; l--) {
    layer_acts v = layer_view(c, a, l);
    linear_params p;
    /* resid_out = resid_mid + down(act): d_resid flows to resid_mid unchanged, plus the MLP path. */
    memset(x->d_act, 0, sizeof(float) * nf);
    p = module_linear(mdl, lora, a, dweights, dlora, l, LORA_DOWN);
    linear_backward(&p, x->d_act, x->d_resid, v.act, module_xa(a, l, LORA_DOWN), dxa, scratch, N, F, D);
    memset(x->d_gate, 0, sizeof(float) * nf);
    memset(x->d_up, 0, sizeof(float) * nf);
    swiglu_backward(x->d_gate, x->d_up, x->d_act, v.gate, v.up, nf);
    memset(x->d_xn, 0, sizeof(float) * nd);
    p = module_linear(mdl, lora, a, dweights, dlora, l, LORA_GATE);
    linear_backward(&p, x->d_xn, x->d_gate, v.xn_ffn, module_xa(a, l, LORA_GATE), dxa, scratch, N, D, F);
    p = module_linear(mdl, lora, a, dweights, dlora, l, LORA_UP);
    linear_backward(&p, x->d_xn, x->d_up, v.xn_ffn, module_xa(a, l, LORA_UP), dxa, scratch, N, D, F);
    rmsnorm_backward(x->d_resid, dweights ? dweights->rms_ffn + (size_t)l * D : NULL, x->d_xn, v.resid_mid,
                     w->rms_ffn + (size_t)l * D, v.rstd_ffn, N, D);
    /* resid_mid = resid_in + o(att_out) */
    memset(x->d_att_out, 0, sizeof(float) * (size_t)N * QD);
    p = module_linear(mdl, lora, a, dweights, dlora, l, LORA_O);
    linear_backward(&p, x->d_att_out, x->d_resid, v.att_out, module_xa(a, l, LORA_O), dxa, scratch, N, QD, D);
    memset(x->d_q, 0, sizeof(float) * (size_t)N * QD);
    memset(x->d_k, 0, sizeof(float) * (size_t)N * KVD);
    memset(x->d_v, 0, sizeof(float) * (size_t)N * KVD);
    attention_backward(x->d_q, x->d_k, x->d_v, x->d_att, x->d_att_out, v.q, v.k, v.v, v.att, B, T, c->n_heads,
                       c->n_kv_heads, c->head_dim);
    rope_backward(x->d_q, x->rope_cos, x->rope_sin, B, T, c->n_heads, c->head_dim);
    rope_backward(x->d_k, x->rope_cos, x->rope_sin, B, T, c->n_kv_heads, c->head_dim);
    memset(x->d_xn, 0, sizeof(float) * nd);
    p = module_linear(mdl, lora, a, dweights, dlora, l, LORA_Q);
    linear_backward(&p, x->d_xn, x->d_q, v.xn_att, module_xa(a, l, LORA_Q), dxa, scratch, N, D, QD);
    p = module_linear(mdl, lora, a, dweights, dlora, l, LORA_K);
    linear_backward(&p, x->d_xn, x->d_k, v.xn_att, module_xa(a, l, LORA_K), dxa, scratch, N, D, KVD);
    p = module_linear(mdl, lora, a, dweights, dlora, l, LORA_V);
    linear_backward(&p, x->d_xn, x->d_v, v.xn_att, module_xa(a, l, LORA_V), dxa, scratch, N, D, KVD);
    rmsnorm_backward(x->d_resid, dweights ? dweights->rms_att + (size_t)l * D : NULL, x->d_xn, v.resid_in,
                     w->rms_att + (size_t)l * D, v.rstd_att, N, D);
  }
  if (dweights) embedding_backward(dweights->tok_emb, x->d_resid, tokens, N, D);
}

void model_logits_row(const model *mdl, model_activations *a, int row, float *logits) {
  const model_config *c = &mdl->config;
  cblas_sgemv(CblasRowMajor, CblasNoTrans, c->vocab_size, c->dim, 1.0f, mdl->weights.wcls, c->dim,
              a->acts.xn_final + (size_t)row * c->dim, 1, 0.0f, logits, 1);
}
