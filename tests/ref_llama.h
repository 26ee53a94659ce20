/* An independent double-precision reference of the Llama forward pass for the gradient tests:
 * plain loops, no BLAS, written from the definitions rather than from ops.c. The tests compare
 * the library's float analytic gradients with central finite differences of these functions
 * (double, so the differences themselves are accurate to ~1e-9). */
#ifndef FEDLORA_TEST_REF_LLAMA_H
#define FEDLORA_TEST_REF_LLAMA_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"
#include "model.h"

/* y (n, d) = w * x / sqrt(mean(x^2) + eps) */
static inline void ref_rmsnorm(double *y, const double *x, const double *w, int n, int d, double eps) {
  for (int r = 0; r < n; r++) {
    double ss = 0.0;
    for (int i = 0; i < d; i++) ss += x[r * d + i] * x[r * d + i];
    double s = 1.0 / sqrt(ss / d + eps);
    for (int i = 0; i < d; i++) y[r * d + i] = w[i] * x[r * d + i] * s;
  }
}

/* In place on x (B, T, heads * hd): pair (2i, 2i+1) of each head turned by t * theta^(-2i/hd). */
static inline void ref_rope(double *x, int batch, int seq_len, int heads, int hd, double theta) {
  for (int b = 0; b < batch; b++)
    for (int t = 0; t < seq_len; t++)
      for (int h = 0; h < heads; h++)
        for (int i = 0; i < hd / 2; i++) {
          double ang = t * pow(theta, -2.0 * i / hd);
          double *p = x + ((size_t)(b * seq_len + t) * heads + h) * hd + 2 * i;
          double x0 = p[0], x1 = p[1];
          p[0] = x0 * cos(ang) - x1 * sin(ang);
          p[1] = x0 * sin(ang) + x1 * cos(ang);
        }
}

/* Causal attention; query head h uses kv head h / (H / KVH). */
static inline void ref_attention(double *out, const double *q, const double *k, const double *v, int batch, int seq_len,
                          int n_heads, int n_kv_heads, int hd) {
  int qd = n_heads * hd, kvd = n_kv_heads * hd, group = n_heads / n_kv_heads;
  double *p = malloc(sizeof(double) * seq_len);
  for (int b = 0; b < batch; b++)
    for (int h = 0; h < n_heads; h++)
      for (int t = 0; t < seq_len; t++) {
        const double *qt = q + (size_t)(b * seq_len + t) * qd + h * hd;
        double mx = -INFINITY, sum = 0.0;
        for (int j = 0; j <= t; j++) {
          const double *kj = k + (size_t)(b * seq_len + j) * kvd + (h / group) * hd;
          double s = 0.0;
          for (int i = 0; i < hd; i++) s += qt[i] * kj[i];
          p[j] = s / sqrt((double)hd);
          mx = fmax(mx, p[j]);
        }
        for (int j = 0; j <= t; j++) sum += (p[j] = exp(p[j] - mx));
        double *o = out + (size_t)(b * seq_len + t) * qd + h * hd;
        for (int i = 0; i < hd; i++) {
          double acc = 0.0;
          for (int j = 0; j <= t; j++) acc += p[j] / sum * v[(size_t)(b * seq_len + j) * kvd + (h / group) * hd + i];
          o[i] = acc;
        }
      }
  free(p);
}

static inline void ref_swiglu(double *act, const double *gate, const double *up, int n) {
  for (int i = 0; i < n; i++) act[i] = gate[i] / (1.0 + exp(-gate[i])) * up[i];
}

/* sum over rows of weight * -log softmax(logits)[target]; negative targets and zero weights skip. */
static inline double ref_crossentropy(const double *logits, const int *targets, const float *mask, int n, int vocab,
                               double *count) {
  double loss = 0.0;
  for (int r = 0; r < n; r++) {
    double w = targets[r] < 0 ? 0.0 : (mask ? mask[r] : 1.0);
    if (w == 0.0) continue;
    double mx = -INFINITY, sum = 0.0;
    for (int j = 0; j < vocab; j++) mx = fmax(mx, logits[r * vocab + j]);
    for (int j = 0; j < vocab; j++) sum += exp(logits[r * vocab + j] - mx);
    loss += w * (log(sum) + mx - logits[r * vocab + targets[r]]);
    *count += w;
  }
  return loss;
}

/* y (n, out) = x W^T + scale * (drop(x) A^T) B^T; drop (n, in) multipliers or NULL; a NULL skips LoRA. */
static inline void ref_linear(double *y, const double *x, const double *w, const double *a, const double *b, int rank,
                       double scale, const double *drop, int n, int in, int out) {
  for (int r = 0; r < n; r++)
    for (int o = 0; o < out; o++) {
      double acc = 0.0;
      for (int i = 0; i < in; i++) acc += x[r * in + i] * w[(size_t)o * in + i];
      if (a)
        for (int k = 0; k < rank; k++) {
          double xa = 0.0;
          for (int i = 0; i < in; i++) xa += x[r * in + i] * (drop ? drop[r * in + i] : 1.0) * a[(size_t)k * in + i];
          acc += scale * xa * b[(size_t)o * rank + k];
        }
      y[r * out + o] = acc;
    }
}

/* Offsets of each weight in the float arena layout, so a double copy of the arena can be indexed
 * the same way. */
typedef struct {
  size_t tok_emb, rms_att, wq, wk, wv, wo, rms_ffn, w_gate, w_down, w_up, rms_final, wcls;
} ref_offsets;

static inline ref_offsets ref_offsets_of(const model *m) {
  const model_weights *w = &m->weights;
  const float *b = m->params;
  ref_offsets o = {w->tok_emb - b, w->rms_att - b, w->wq - b,     w->wk - b,       w->wv - b,        w->wo - b,
                   w->rms_ffn - b, w->w_gate - b, w->w_down - b, w->w_up - b, w->rms_final - b, w->wcls - b};
  return o;
}

/* Mean masked next-token loss of the model whose weights are `wd` (float arena layout of m, in double)
 * with adapter parameters `ld` (layout of ad, in double; ad NULL for none). */
static inline double ref_model_loss(const model *m, const double *wd, const lora_adapter *ad, const double *ld,
                             const int *tokens, const int *targets, const float *mask, int batch, int seq_len) {
  const model_config *c = &m->config;
  ref_offsets o = ref_offsets_of(m);
  int N = batch * seq_len, D = c->dim, F = c->hidden_dim, hd = c->head_dim;
  int QD = c->n_heads * hd, KVD = c->n_kv_heads * hd, V = c->vocab_size;
  double *x = malloc(sizeof(double) * N * D), *xn = malloc(sizeof(double) * N * D);
  double *q = malloc(sizeof(double) * N * QD), *k = malloc(sizeof(double) * N * KVD);
  double *v = malloc(sizeof(double) * N * KVD), *ao = malloc(sizeof(double) * N * QD);
  double *tmp = malloc(sizeof(double) * N * (D > F ? D : F)), *g = malloc(sizeof(double) * N * F);
  double *u = malloc(sizeof(double) * N * F), *logits = malloc(sizeof(double) * N * V);
  for (int r = 0; r < N; r++)
    for (int i = 0; i < D; i++) x[r * D + i] = wd[o.tok_emb + (size_t)tokens[r] * D + i];
  for (int l = 0; l < c->n_layers; l++) {
#define REF_LIN(mod, wofs, y, in_buf, nin, nout)                                                              \
  ref_linear(y, in_buf, wd + (wofs), ad && lora_a(ad, ad->params, l, mod) ? ld + (lora_a(ad, ad->params, l, mod) - ad->params) : NULL, \
             ad && lora_b(ad, ad->params, l, mod) ? ld + (lora_b(ad, ad->params, l, mod) - ad->params) : NULL,                \
             ad ? ad->config.rank : 0, ad ? ad->scale : 0.0, NULL, N, nin, nout)
    ref_rmsnorm(xn, x, wd + o.rms_att + (size_t)l * D, N, D, c->norm_eps);
    REF_LIN(LORA_Q, o.wq + (size_t)l * QD * D, q, xn, D, QD);
    REF_LIN(LORA_K, o.wk + (size_t)l * KVD * D, k, xn, D, KVD);
    REF_LIN(LORA_V, o.wv + (size_t)l * KVD * D, v, xn, D, KVD);
    ref_rope(q, batch, seq_len, c->n_heads, hd, c->rope_theta);
    ref_rope(k, batch, seq_len, c->n_kv_heads, hd, c->rope_theta);
    ref_attention(ao, q, k, v, batch, seq_len, c->n_heads, c->n_kv_heads, hd);
    REF_LIN(LORA_O, o.wo + (size_t)l * D * QD, tmp, ao, QD, D);
    for (int i = 0; i < N * D; i++) x[i] += tmp[i];
    ref_rmsnorm(xn, x, wd + o.rms_ffn + (size_t)l * D, N, D, c->norm_eps);
    REF_LIN(LORA_GATE, o.w_gate + (size_t)l * F * D, g, xn, D, F);
    REF_LIN(LORA_UP, o.w_up + (size_t)l * F * D, u, xn, D, F);
    ref_swiglu(g, g, u, N * F);
    REF_LIN(LORA_DOWN, o.w_down + (size_t)l * D * F, tmp, g, F, D);
    for (int i = 0; i < N * D; i++) x[i] += tmp[i];
#undef REF_LIN
  }
  ref_rmsnorm(xn, x, wd + o.rms_final, N, D, c->norm_eps);
  ref_linear(logits, xn, wd + o.wcls, NULL, NULL, 0, 0.0, NULL, N, D, V);
  double count = 0.0, loss = ref_crossentropy(logits, targets, mask, N, V, &count);
  free(x); free(xn); free(q); free(k); free(v); free(ao); free(tmp); free(g); free(u); free(logits);
  return loss / count;
}

#endif
