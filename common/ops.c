/* Op-level forward/backward pairs; see ops.h. Matrix work goes through cblas_sgemm; per-row loops
 * are OpenMP loops over rows, which share OpenBLAS's pool (sgemm called inside a parallel region
 * runs single-threaded, so the two never oversubscribe the cores). */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

void compute_threads_set(int n) {
  openblas_set_num_threads(n);
  omp_set_num_threads(n);
}

void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int n, int d, float eps) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < n; r++) {
    const float *xr = x + (size_t)r * d;
    float *o = out + (size_t)r * d;
    float ss = 0.0f;
    for (int i = 0; i < d; i++) ss += xr[i] * xr[i];
    ss /= (float)d;
    ss += eps;
    float s = 1.0f / sqrtf(ss);
    rstd[r] = s;
    for (int i = 0; i < d; i++) o[i] = w[i] * (s * xr[i]);
  }
}

void rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                      const float *rstd, int n, int d) {
  /* y_i = w_i x_i s, s = (mean x^2 + eps)^-1/2, ds/dx_j = -s^3 x_j / d, so
   * dx_j = s w_j dy_j - (s^3 / d) x_j sum_i w_i dy_i x_i. */
#pragma omp parallel for schedule(static)
  for (int r = 0; r < n; r++) {
    const float *xr = x + (size_t)r * d, *dy = dout + (size_t)r * d;
    float *dxr = dx + (size_t)r * d;
    float s = rstd[r], dot = 0.0f;
    for (int i = 0; i < d; i++) dot += w[i] * dy[i] * xr[i];
    float c = s * s * s * dot / (float)d;
    for (int i = 0; i < d; i++) dxr[i] += s * w[i] * dy[i] - c * xr[i];
  }
  if (!dw) return;
  /* Column sums over rows: parallel over columns keeps the order of summation fixed. */
#pragma omp parallel for schedule(static)
  for (int i = 0; i < d; i++) {
    float acc = 0.0f;
    for (int r = 0; r < n; r++) acc += dout[(size_t)r * d + i] * x[(size_t)r * d + i] * rstd[r];
    dw[i] += acc;
  }
}

void rope_tables(float *cos_t, float *sin_t, int seq_len, int head_dim, float theta) {
  int half = head_dim / 2;
  for (int t = 0; t < seq_len; t++)
    for (int i = 0; i < half; i++) {
      float freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
      float val = (float)t * freq;
      cos_t[(size_t)t * half + i] = cosf(val);
      sin_t[(size_t)t * half + i] = sinf(val);
    }
}

/* Rotates every head of every row by +angle (sign 1) or -angle (sign -1). */
static void rope_rotate(float *x, const float *cos_t, const float *sin_t, int batch, int seq_len, int heads,
                        int head_dim, float sign) {
  int half = head_dim / 2, width = heads * head_dim;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < batch * seq_len; r++) {
    int t = r % seq_len;
    const float *c = cos_t + (size_t)t * half, *s = sin_t + (size_t)t * half;
    float *xr = x + (size_t)r * width;
    for (int h = 0; h < heads; h++) {
      float *xh = xr + h * head_dim;
      for (int i = 0; i < half; i++) {
        float x0 = xh[2 * i], x1 = xh[2 * i + 1], sn = sign * s[i];
        xh[2 * i] = x0 * c[i] - x1 * sn;
        xh[2 * i + 1] = x0 * sn + x1 * c[i];
      }
    }
  }
}

void rope_forward(float *x, const float *cos_t, const float *sin_t, int batch, int seq_len, int heads,
                  int head_dim) {
  rope_rotate(x, cos_t, sin_t, batch, seq_len, heads, head_dim, 1.0f);
}

void rope_backward(float *dx, const float *cos_t, const float *sin_t, int batch, int seq_len, int heads,
                   int head_dim) {
  rope_rotate(dx, cos_t, sin_t, batch, seq_len, heads, head_dim, -1.0f);
}

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int batch,
                       int seq_len, int n_heads, int n_kv_heads, int head_dim) {
  int T = seq_len, qd = n_heads * head_dim, kvd = n_kv_heads * head_dim, group = n_heads / n_kv_heads;
  float scale = 1.0f / sqrtf((float)head_dim);
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < batch * n_heads; bh++) {
    int b = bh / n_heads, h = bh % n_heads, kvh = h / group;
    const float *qb = q + (size_t)b * T * qd + h * head_dim;
    const float *kb = k + (size_t)b * T * kvd + kvh * head_dim;
    const float *vb = v + (size_t)b * T * kvd + kvh * head_dim;
    float *a = att + (size_t)bh * T * T;
    /* The full T x T product costs twice the causal half but runs at sgemm speed. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, head_dim, scale, qb, qd, kb, kvd, 0.0f, a, T);
    for (int t = 0; t < T; t++) {
      float *row = a + (size_t)t * T;
      float mx = row[0];
      for (int j = 1; j <= t; j++) mx = row[j] > mx ? row[j] : mx;
      float sum = 0.0f;
      for (int j = 0; j <= t; j++) {
        row[j] = expf(row[j] - mx);
        sum += row[j];
      }
      for (int j = 0; j <= t; j++) row[j] /= sum;
      memset(row + t + 1, 0, sizeof(float) * (size_t)(T - t - 1));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, head_dim, T, 1.0f, a, T, vb, kvd, 0.0f,
                out + (size_t)b * T * qd + h * head_dim, qd);
  }
}

void attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout, const float *q,
                        const float *k, const float *v, const float *att, int batch, int seq_len,
                        int n_heads, int n_kv_heads, int head_dim) {
  int T = seq_len, qd = n_heads * head_dim, kvd = n_kv_heads * head_dim, group = n_heads / n_kv_heads;
  float scale = 1.0f / sqrtf((float)head_dim);
  /* One task per (batch, kv head): the query heads sharing a kv head all add into its dk/dv, so they
   * run in the same task and no two tasks write the same memory. */
#pragma omp parallel for schedule(static)
  for (int bk = 0; bk < batch * n_kv_heads; bk++) {
    int b = bk / n_kv_heads, kvh = bk % n_kv_heads;
    const float *kb = k + (size_t)b * T * kvd + kvh * head_dim;
    const float *vb = v + (size_t)b * T * kvd + kvh * head_dim;
    float *dkb = dk + (size_t)b * T * kvd + kvh * head_dim;
    float *dvb = dv + (size_t)b * T * kvd + kvh * head_dim;
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
      size_t bh = (size_t)b * n_heads + h;
      const float *a = att + bh * T * T;
      float *da = datt + bh * T * T;
      const float *qb = q + (size_t)b * T * qd + h * head_dim;
      const float *dob = dout + (size_t)b * T * qd + h * head_dim;
      float *dqb = dq + (size_t)b * T * qd + h * head_dim;
      /* dP = dO V^T, dV += P^T dO */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, head_dim, 1.0f, dob, qd, vb, kvd, 0.0f, da, T);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, head_dim, T, 1.0f, a, T, dob, qd, 1.0f, dvb, kvd);
      /* softmax backward: dS = P (dP - sum_j P dP), times the score scale */
      for (int t = 0; t < T; t++) {
        const float *pr = a + (size_t)t * T;
        float *dr = da + (size_t)t * T;
        float dot = 0.0f;
        for (int j = 0; j <= t; j++) dot += pr[j] * dr[j];
        for (int j = 0; j <= t; j++) dr[j] = scale * pr[j] * (dr[j] - dot);
        memset(dr + t + 1, 0, sizeof(float) * (size_t)(T - t - 1));
      }
      /* dQ += dS K, dK += dS^T Q */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, head_dim, T, 1.0f, da, T, kb, kvd, 1.0f, dqb, qd);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, head_dim, T, 1.0f, da, T, qb, qd, 1.0f, dkb, kvd);
    }
  }
}

void swiglu_forward(float *act, const float *gate, const float *up, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    float g = gate[i];
    act[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

void swiglu_backward(float *dgate, float *dup, const float *dact, const float *gate, const float *up,
                     size_t n) {
  /* silu'(g) = sig(g) (1 + g (1 - sig(g))) */
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    float g = gate[i], sig = 1.0f / (1.0f + expf(-g));
    dgate[i] += dact[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
    dup[i] += dact[i] * g * sig;
  }
}

double crossentropy_forward_backward(float *logits, const int *targets, const float *mask, int n,
                                     int vocab, float d_scale, double *count) {
  /* Rows are summed serially in blocks so the total does not depend on the thread count or on the
   * order threads finish (an OpenMP reduction would). */
  enum { BLOCK = 64 };
  double loss = 0.0, weight_sum = 0.0;
  for (int r0 = 0; r0 < n; r0 += BLOCK) {
    int rows = n - r0 < BLOCK ? n - r0 : BLOCK;
    double row_loss[BLOCK], row_weight[BLOCK];
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) {
      float *row = logits + (size_t)(r0 + i) * vocab;
      int tgt = targets[r0 + i];
      float wgt = (tgt < 0 || tgt >= vocab) ? 0.0f : (mask ? mask[r0 + i] : 1.0f);
      row_loss[i] = 0.0;
      row_weight[i] = wgt;
      if (wgt == 0.0f) {
        if (d_scale != 0.0f) memset(row, 0, sizeof(float) * (size_t)vocab);
        continue;
      }
      float mx = row[0];
      for (int j = 1; j < vocab; j++) mx = row[j] > mx ? row[j] : mx;
      float target_logit = row[tgt];
      /* one exp per logit, kept in place for the gradient; the sum in double */
      double sum = 0.0;
      for (int j = 0; j < vocab; j++) sum += (row[j] = expf(row[j] - mx));
      row_loss[i] = wgt * (log(sum) - (double)(target_logit - mx));
      if (d_scale != 0.0f) {
        float c = (float)(d_scale * wgt / sum);
        for (int j = 0; j < vocab; j++) row[j] *= c;
        row[tgt] -= d_scale * wgt;
      }
    }
    for (int i = 0; i < rows; i++) {
      loss += row_loss[i];
      weight_sum += row_weight[i];
    }
  }
  *count += weight_sum;
  return loss;
}

void embedding_forward(float *out, const float *emb, const int *tokens, int n, int d) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < n; r++)
    memcpy(out + (size_t)r * d, emb + (size_t)tokens[r] * d, sizeof(float) * (size_t)d);
}

void embedding_backward(float *demb, const float *dout, const int *tokens, int n, int d) {
  /* Serial over rows: two rows with the same token add into the same embedding row. */
  for (int r = 0; r < n; r++) {
    float *de = demb + (size_t)tokens[r] * d;
    const float *g = dout + (size_t)r * d;
    for (int i = 0; i < d; i++) de[i] += g[i];
  }
}
