/* Op-level forward/backward pairs; see ops.h. Matrix work goes through cblas_sgemm; per-row loops
 * are OpenMP loops over rows, which share OpenBLAS's pool (sgemm called inside a parallel region
 * runs single-threaded, so the two never oversubscribe the cores). */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "vexp.h"

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

void swiglu_forward(float *act, const float *gate, const float *up, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    float g = gate[i];
    act[i] = g / (1.0f + vexp(-g)) * up[i];
  }
}

void swiglu_backward(float *dgate, float *dup, const float *dact, const float *gate, const float *up,
                     size_t n) {
  /* silu'(g) = sig(g) (1 + g (1 - sig(g))) */
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    float g = gate[i], sig = 1.0f / (1.0f + vexp(-g));
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
      float mx = vmax(row, vocab);
      float target_logit = row[tgt];
      /* one exp per logit, kept in place for the gradient; the sum in double */
      double sum = vexp_shift_sum(row, vocab, mx);
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
