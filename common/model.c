/* The Llama model: weight arena, activation arena, forward, loss and backward; see model.h. */
#include "model.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
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

/* Most slices an arena is built for; more threads than this leave the rest idle. */
#define MAX_SLICES 64

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
  /* Full-parameter training is never sliced (model.h), and its forward stays on the same whole-batch
   * products as its backward: per-thread sgemm calls on fewer rows may take OpenBLAS's small-matrix
   * kernels, whose rounding differs, and recorded pretraining digests depend on those bits. */
  size_t S = training && !lora ? 1 : (size_t)omp_get_max_threads();
  if (S > B) S = B;
  if (S > MAX_SLICES) S = MAX_SLICES;
  model_acts *x = &a->acts;
  struct { float **p; size_t n; } parts[] = {
      {&x->resid, (L + 1) * N * D}, {&x->resid_mid, L * N * D}, {&x->xn, N * D},
      {&x->rstd_att, L * N},        {&x->q, L * N * QD},        {&x->k, L * N * KVD},
      {&x->v, L * N * KVD},         {&x->att, L * B * H * T * T}, {&x->att_out, L * N * QD},
      {&x->rstd_ffn, L * N},        {&x->gate, L * N * F},      {&x->up, L * N * F},
      {&x->act, N * F},             {&x->xn_final, N * D},
      {&x->rstd_final, N},          {&x->lora_xa, L * LORA_NUM_MODULES * N * r},
      {&x->rope_cos, T * half},     {&x->rope_sin, T * half},   {&x->logits, S * LOSS_CHUNK * V},
      {&x->loss_x, S * LOSS_CHUNK * D}, {&x->loss_dx, training ? S * LOSS_CHUNK * D : 0},
      {&x->d_resid, training ? N * D : 0}, {&x->d_xn, training ? N * D : 0},
      {&x->d_q, training ? N * QD : 0},    {&x->d_k, training ? N * KVD : 0},
      {&x->d_v, training ? N * KVD : 0},   {&x->d_att, training ? B * H * T * T : 0},
      {&x->d_att_out, training ? N * QD : 0}, {&x->d_gate, training ? N * F : 0},
      {&x->d_up, training ? N * F : 0},    {&x->d_act, training ? N * F : 0},
      {&x->lora_scratch, dropout ? N * widest : 0},
      {&x->lora_d_xa, training ? N * r : 0},
      {&x->lora_grad, training && lora ? (S - 1) * lora->num_params : 0},
  };
  size_t total = 0, nparts = sizeof parts / sizeof parts[0];
  for (size_t i = 0; i < nparts; i++) total += parts[i].n;
  a->mem = calloc(total, sizeof(float));
  a->loss_rows = malloc(sizeof(int) * N);
  if (!a->mem || !a->loss_rows) {
    snprintf(err, err_size, "activations: cannot allocate %zu floats for batch %d x %d", total, batch, seq_len);
    activations_free(a);
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
  a->max_slices = (int)S;
  rope_tables(x->rope_cos, x->rope_sin, seq_len, c->head_dim, c->rope_theta);
  return 0;
}

void activations_free(model_activations *a) {
  free(a->mem);
  free(a->loss_rows);
  memset(a, 0, sizeof *a);
}

/* Per-layer views of the activation arena (strides come from the capacity). */
typedef struct {
  float *resid_in, *resid_out, *resid_mid, *xn, *rstd_att, *q, *k, *v, *att, *att_out;
  float *rstd_ffn, *gate, *up, *act;
} layer_acts;

/* Layer l's buffers from sequence b0 of the batch on (rows from row0 = b0 * T). */
static layer_acts layer_view(const model_config *c, model_activations *a, int l, int b0) {
  size_t N = (size_t)a->max_batch * a->max_seq_len, D = c->dim, F = c->hidden_dim;
  size_t QD = (size_t)c->n_heads * c->head_dim, KVD = (size_t)c->n_kv_heads * c->head_dim;
  size_t att = (size_t)a->max_batch * c->n_heads * a->max_seq_len * a->max_seq_len;
  size_t T = a->seq_len, r0 = (size_t)b0 * T, att0 = (size_t)b0 * c->n_heads * T * T;
  model_acts *x = &a->acts;
  layer_acts v = {
      .resid_in = x->resid + l * N * D + r0 * D, .resid_out = x->resid + (l + 1) * N * D + r0 * D,
      .resid_mid = x->resid_mid + l * N * D + r0 * D, .xn = x->xn + r0 * D,
      .rstd_att = x->rstd_att + l * N + r0, .q = x->q + l * N * QD + r0 * QD, .k = x->k + l * N * KVD + r0 * KVD,
      .v = x->v + l * N * KVD + r0 * KVD, .att = x->att + l * att + att0,
      .att_out = x->att_out + l * N * QD + r0 * QD, .rstd_ffn = x->rstd_ffn + l * N + r0,
      .gate = x->gate + l * N * F + r0 * F, .up = x->up + l * N * F + r0 * F, .act = x->act + r0 * F};
  return v;
}

float *model_module_weight(const model_config *c, const model_weights *w, int l, lora_module m) {
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
                                   model_weights *dweights, float *dlora, int l, lora_module m, size_t row0) {
  linear_params p = {.w = model_module_weight(&mdl->config, &mdl->weights, l, m)};
  if (dweights) p.dw = model_module_weight(&mdl->config, dweights, l, m);
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
      p.dropout_first = row0 * (size_t)lora->in_features[m];
    }
  }
  return p;
}

static float *module_xa(const model_activations *a, int l, lora_module m, size_t row0) {
  size_t N = (size_t)a->max_batch * a->max_seq_len, r = a->lora_rank;
  return a->acts.lora_xa ? a->acts.lora_xa + ((size_t)l * LORA_NUM_MODULES + m) * N * r + row0 * r : NULL;
}

/* Slices for the current batch: one per thread, at most one per sequence and no more than the
 * arena has buffers for. */
static int slice_count(const model_activations *a) {
  int S = omp_get_max_threads();
  if (S > a->batch) S = a->batch;
  if (S > a->max_slices) S = a->max_slices;
  return S < 1 ? 1 : S;
}

/* Sequences [*b0, *b0 + *nb) of slice k of S. */
static void slice_range(int batch, int k, int S, int *b0, int *nb) {
  *b0 = (int)((long long)batch * k / S);
  *nb = (int)((long long)batch * (k + 1) / S) - *b0;
}

/* Runs fn on each of S slices: directly when S is 1 (the ops then thread inside), else in one
 * parallel region where every product runs single-threaded. */
typedef struct slice_job slice_job;
static void slices_run(int S, int batch, void (*fn)(slice_job *, int k, int b0, int nb), slice_job *job) {
  if (S == 1) {
    fn(job, 0, 0, batch);
    return;
  }
#pragma omp parallel num_threads(S)
  {
    int threads = omp_get_num_threads();
    for (int k = omp_get_thread_num(); k < S; k += threads) {
      int b0, nb;
      slice_range(batch, k, S, &b0, &nb);
      fn(job, k, b0, nb);
    }
  }
}

/* What one pass hands each slice. */
struct slice_job {
  const model *mdl;
  const lora_adapter *lora;
  model_activations *a;
  const int *tokens;        /* forward, backward */
  const int *targets;       /* loss */
  const float *mask;        /* loss */
  float d_scale;            /* loss */
  model_weights *dweights;  /* loss, backward */
  float *dlora;             /* backward: slice 0's LoRA gradient */
  double loss[MAX_SLICES], count[MAX_SLICES]; /* loss: per slice */
};

static void add_into(float *dst, const float *src, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

/* Row offset of sequence b0 and the lora_scratch rows from there. */
static float *slice_scratch(const model *mdl, model_activations *a, size_t row0) {
  const model_config *c = &mdl->config;
  size_t widest = (size_t)max3(c->dim, c->hidden_dim, c->n_heads * c->head_dim);
  return a->acts.lora_scratch ? a->acts.lora_scratch + row0 * widest : NULL;
}

static void forward_slice(slice_job *job, int k, int b0, int nb) {
  (void)k;
  const model *mdl = job->mdl;
  const lora_adapter *lora = job->lora;
  model_activations *a = job->a;
  const model_config *c = &mdl->config;
  const model_weights *w = &mdl->weights;
  int T = a->seq_len, N = nb * T, D = c->dim, F = c->hidden_dim;
  int QD = c->n_heads * c->head_dim, KVD = c->n_kv_heads * c->head_dim;
  size_t row0 = (size_t)b0 * T;
  float *scratch = slice_scratch(mdl, a, row0);
  embedding_forward(a->acts.resid + row0 * D, w->tok_emb, job->tokens + row0, N, D);
  for (int l = 0; l < c->n_layers; l++) {
    layer_acts v = layer_view(c, a, l, b0);
    linear_params p;
    rmsnorm_forward(v.xn, v.rstd_att, v.resid_in, w->rms_att + (size_t)l * D, N, D, c->norm_eps);
    p = module_linear(mdl, lora, a, NULL, NULL, l, LORA_Q, row0);
    linear_forward(&p, v.q, v.xn, module_xa(a, l, LORA_Q, row0), scratch, N, D, QD);
    p = module_linear(mdl, lora, a, NULL, NULL, l, LORA_K, row0);
    linear_forward(&p, v.k, v.xn, module_xa(a, l, LORA_K, row0), scratch, N, D, KVD);
    p = module_linear(mdl, lora, a, NULL, NULL, l, LORA_V, row0);
    linear_forward(&p, v.v, v.xn, module_xa(a, l, LORA_V, row0), scratch, N, D, KVD);
    rope_forward(v.q, a->acts.rope_cos, a->acts.rope_sin, nb, T, c->n_heads, c->head_dim);
    rope_forward(v.k, a->acts.rope_cos, a->acts.rope_sin, nb, T, c->n_kv_heads, c->head_dim);
    attention_forward(v.att_out, v.att, v.q, v.k, v.v, nb, T, c->n_heads, c->n_kv_heads, c->head_dim);
    p = module_linear(mdl, lora, a, NULL, NULL, l, LORA_O, row0);
    linear_forward(&p, v.resid_mid, v.att_out, module_xa(a, l, LORA_O, row0), scratch, N, QD, D);
    add_into(v.resid_mid, v.resid_in, (size_t)N * D);
    rmsnorm_forward(v.xn, v.rstd_ffn, v.resid_mid, w->rms_ffn + (size_t)l * D, N, D, c->norm_eps);
    p = module_linear(mdl, lora, a, NULL, NULL, l, LORA_GATE, row0);
    linear_forward(&p, v.gate, v.xn, module_xa(a, l, LORA_GATE, row0), scratch, N, D, F);
    p = module_linear(mdl, lora, a, NULL, NULL, l, LORA_UP, row0);
    linear_forward(&p, v.up, v.xn, module_xa(a, l, LORA_UP, row0), scratch, N, D, F);
    swiglu_forward(v.act, v.gate, v.up, (size_t)N * F);
    p = module_linear(mdl, lora, a, NULL, NULL, l, LORA_DOWN, row0);
    linear_forward(&p, v.resid_out, v.act, module_xa(a, l, LORA_DOWN, row0), scratch, N, F, D);
    add_into(v.resid_out, v.resid_mid, (size_t)N * D);
  }
  float *last = a->acts.resid + (size_t)c->n_layers * a->max_batch * a->max_seq_len * D + row0 * D;
  rmsnorm_forward(a->acts.xn_final + row0 * D, a->acts.rstd_final + row0, last, w->rms_final, N, D, c->norm_eps);
}

void model_forward(const model *mdl, const lora_adapter *lora, model_activations *a, const int *tokens,
                   uint64_t dropout_seed) {
  a->dropout_on = lora && dropout_seed != 0 && lora->config.dropout > 0.0f;
  a->dropout_seed = dropout_seed;
  slice_job job = {.mdl = mdl, .lora = lora, .a = a, .tokens = tokens};
  slices_run(slice_count(a), a->batch, forward_slice, &job);
}

double loss_count(const int *targets, const float *mask, int n) {
  double count = 0.0;
  for (int i = 0; i < n; i++)
    if (targets[i] >= 0) count += mask ? mask[i] : 1.0f;
  return count;
}

/* The classifier and cross-entropy over the positions the loss counts only: a position whose
 * target is masked (a prompt token under a completion-only loss, padding) adds nothing to the loss
 * and gets no gradient, so its V logits are not computed at all. The counted rows of xn_final are
 * gathered LOSS_CHUNK at a time and their gradient scattered back; the rest of d_xn is zero. */
static void loss_slice(slice_job *job, int k, int b0, int nb) {
  const model *mdl = job->mdl;
  model_activations *a = job->a;
  int D = mdl->config.dim, V = mdl->config.vocab_size, r_begin = b0 * a->seq_len, end = (b0 + nb) * a->seq_len;
  float *logits = a->acts.logits + (size_t)k * LOSS_CHUNK * V;
  float *x = a->acts.loss_x + (size_t)k * LOSS_CHUNK * D, *dx = a->acts.loss_dx + (size_t)k * LOSS_CHUNK * D;
  int *rows = a->loss_rows + r_begin, counted = 0;
  for (int r = r_begin; r < end; r++) {
    int t = job->targets[r];
    if (t >= 0 && t < V && (!job->mask || job->mask[r] != 0.0f)) rows[counted++] = r;
  }
  if (job->d_scale != 0.0f) memset(a->acts.d_xn + (size_t)r_begin * D, 0, sizeof(float) * (size_t)(end - r_begin) * D);
  double loss = 0.0, count = 0.0;
  for (int c0 = 0; c0 < counted; c0 += LOSS_CHUNK) {
    int n = counted - c0 < LOSS_CHUNK ? counted - c0 : LOSS_CHUNK, targets[LOSS_CHUNK];
    float mask[LOSS_CHUNK];
    for (int i = 0; i < n; i++) {
      int r = rows[c0 + i];
      memcpy(x + (size_t)i * D, a->acts.xn_final + (size_t)r * D, sizeof(float) * (size_t)D);
      targets[i] = job->targets[r];
      mask[i] = job->mask ? job->mask[r] : 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, V, D, 1.0f, x, D, mdl->weights.wcls, D, 0.0f, logits, V);
    loss += crossentropy_forward_backward(logits, targets, mask, n, V, job->d_scale, &count);
    if (job->d_scale == 0.0f) continue;
    /* logits now hold dlogits: d_xn = dlogits Wcls, dWcls += dlogits^T xn */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, V, 1.0f, logits, V, mdl->weights.wcls, D, 0.0f, dx,
                D);
    for (int i = 0; i < n; i++)
      memcpy(a->acts.d_xn + (size_t)rows[c0 + i] * D, dx + (size_t)i * D, sizeof(float) * (size_t)D);
    if (job->dweights)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, D, n, 1.0f, logits, V, x, D, 1.0f, job->dweights->wcls,
                  D);
  }
  job->loss[k] = loss;
  job->count[k] = count;
}

double model_loss(const model *mdl, model_activations *a, const int *targets, const float *mask,
                  float d_scale, model_weights *dweights, double *count) {
  slice_job job = {.mdl = mdl, .a = a, .targets = targets, .mask = mask, .d_scale = d_scale, .dweights = dweights};
  /* The classifier's weight gradient is one (V, D) sum over every row: not sliced. */
  int S = dweights ? 1 : slice_count(a);
  slices_run(S, a->batch, loss_slice, &job);
  double loss = 0.0;
  for (int k = 0; k < S; k++) {
    loss += job.loss[k];
    *count += job.count[k];
  }
  return loss;
}

static void backward_slice(slice_job *job, int k, int b0, int nb) {
  const model *mdl = job->mdl;
  const lora_adapter *lora = job->lora;
  model_activations *a = job->a;
  model_weights *dweights = job->dweights;
  const model_config *c = &mdl->config;
  const model_weights *w = &mdl->weights;
  model_acts *x = &a->acts;
  int T = a->seq_len, N = nb * T, D = c->dim, F = c->hidden_dim;
  int QD = c->n_heads * c->head_dim, KVD = c->n_kv_heads * c->head_dim;
  size_t row0 = (size_t)b0 * T, nd = (size_t)N * D, nf = (size_t)N * F;
  size_t att0 = (size_t)b0 * c->n_heads * T * T;
  float *dlora = job->dlora;
  if (k > 0 && dlora) {
    dlora = x->lora_grad + (size_t)(k - 1) * lora->num_params;
    memset(dlora, 0, sizeof(float) * lora->num_params);
  }
  float *scratch = slice_scratch(mdl, a, row0), *dxa = x->lora_d_xa ? x->lora_d_xa + row0 * a->lora_rank : NULL;
  float *d_resid = x->d_resid + row0 * D, *d_xn = x->d_xn + row0 * D, *d_att = x->d_att + att0;
  float *d_q = x->d_q + row0 * QD, *d_k = x->d_k + row0 * KVD, *d_v = x->d_v + row0 * KVD;
  float *d_att_out = x->d_att_out + row0 * QD, *d_gate = x->d_gate + row0 * F, *d_up = x->d_up + row0 * F;
  float *d_act = x->d_act + row0 * F;
  float *last = x->resid + (size_t)c->n_layers * a->max_batch * a->max_seq_len * D + row0 * D;

  memset(d_resid, 0, sizeof(float) * nd);
  rmsnorm_backward(d_resid, dweights ? dweights->rms_final : NULL, d_xn, last, w->rms_final, x->rstd_final + row0,
                   N, D);
  for (int l = c->n_layers - 1; l >= 0; l--) {
    layer_acts v = layer_view(c, a, l, b0);
    linear_params p;
    /* resid_out = resid_mid + down(act): d_resid flows to resid_mid unchanged, plus the MLP path. */
    memset(d_act, 0, sizeof(float) * nf);
    swiglu_forward(v.act, v.gate, v.up, nf); /* act and xn are recomputed, not kept per layer (model.h) */
    p = module_linear(mdl, lora, a, dweights, dlora, l, LORA_DOWN, row0);
    linear_backward(&p, d_act, d_resid, v.act, module_xa(a, l, LORA_DOWN, row0), dxa, scratch, N, F, D);
    rmsnorm_forward(v.xn, v.rstd_ffn, v.resid_mid, w->rms_ffn + (size_t)l * D, N, D, c->norm_eps);
    memset(d_gate, 0, sizeof(float) * nf);
    memset(d_up, 0, sizeof(float) * nf);
    swiglu_backward(d_gate, d_up, d_act, v.gate, v.up, nf);
    memset(d_xn, 0, sizeof(float) * nd);
    p = module_linear(mdl, lora, a, dweights, dlora, l, LORA_GATE, row0);
    linear_backward(&p, d_xn, d_gate, v.xn, module_xa(a, l, LORA_GATE, row0), dxa, scratch, N, D, F);
    p = module_linear(mdl, lora, a, dweights, dlora, l, LORA_UP, row0);
    linear_backward(&p, d_xn, d_up, v.xn, module_xa(a, l, LORA_UP, row0), dxa, scratch, N, D, F);
    rmsnorm_backward(d_resid, dweights ? dweights->rms_ffn + (size_t)l * D : NULL, d_xn, v.resid_mid,
                     w->rms_ffn + (size_t)l * D, v.rstd_ffn, N, D);
    /* resid_mid = resid_in + o(att_out) */
    memset(d_att_out, 0, sizeof(float) * (size_t)N * QD);
    p = module_linear(mdl, lora, a, dweights, dlora, l, LORA_O, row0);
    linear_backward(&p, d_att_out, d_resid, v.att_out, module_xa(a, l, LORA_O, row0), dxa, scratch, N, QD, D);
    memset(d_q, 0, sizeof(float) * (size_t)N * QD);
    memset(d_k, 0, sizeof(float) * (size_t)N * KVD);
    memset(d_v, 0, sizeof(float) * (size_t)N * KVD);
    attention_backward(d_q, d_k, d_v, d_att, d_att_out, v.q, v.k, v.v, v.att, nb, T, c->n_heads, c->n_kv_heads,
                       c->head_dim);
    rope_backward(d_q, x->rope_cos, x->rope_sin, nb, T, c->n_heads, c->head_dim);
    rope_backward(d_k, x->rope_cos, x->rope_sin, nb, T, c->n_kv_heads, c->head_dim);
    memset(d_xn, 0, sizeof(float) * nd);
    rmsnorm_forward(v.xn, v.rstd_att, v.resid_in, w->rms_att + (size_t)l * D, N, D, c->norm_eps);
    p = module_linear(mdl, lora, a, dweights, dlora, l, LORA_Q, row0);
    linear_backward(&p, d_xn, d_q, v.xn, module_xa(a, l, LORA_Q, row0), dxa, scratch, N, D, QD);
    p = module_linear(mdl, lora, a, dweights, dlora, l, LORA_K, row0);
    linear_backward(&p, d_xn, d_k, v.xn, module_xa(a, l, LORA_K, row0), dxa, scratch, N, D, KVD);
    p = module_linear(mdl, lora, a, dweights, dlora, l, LORA_V, row0);
    linear_backward(&p, d_xn, d_v, v.xn, module_xa(a, l, LORA_V, row0), dxa, scratch, N, D, KVD);
    rmsnorm_backward(d_resid, dweights ? dweights->rms_att + (size_t)l * D : NULL, d_xn, v.resid_in,
                     w->rms_att + (size_t)l * D, v.rstd_att, N, D);
  }
  if (dweights) embedding_backward(dweights->tok_emb, d_resid, job->tokens + row0, N, D);
}

void model_backward(const model *mdl, const lora_adapter *lora, model_activations *a, const int *tokens,
                    model_weights *dweights, float *dlora) {
  slice_job job = {.mdl = mdl, .lora = lora, .a = a, .tokens = tokens, .dweights = dweights, .dlora = dlora};
  /* Base-weight gradients are sums over every row: not sliced (see model.h). */
  int S = dweights || (dlora && !a->acts.lora_grad) ? 1 : slice_count(a);
  slices_run(S, a->batch, backward_slice, &job);
  for (int k = 1; k < S && dlora; k++)
    add_into(dlora, a->acts.lora_grad + (size_t)(k - 1) * lora->num_params, lora->num_params);
}

void model_logits_row(const model *mdl, model_activations *a, int row, float *logits) {
  const model_config *c = &mdl->config;
  cblas_sgemv(CblasRowMajor, CblasNoTrans, c->vocab_size, c->dim, 1.0f, mdl->weights.wcls, c->dim,
              a->acts.xn_final + (size_t)row * c->dim, 1, 0.0f, logits, 1);
}
