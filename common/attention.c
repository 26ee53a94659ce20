/* Causal grouped-query attention; see attention.h. */
#include "attention.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "vexp.h"

/* Query rows per block. Smaller blocks skip more of the masked corner but make thinner products;
 * 64 keeps every product at sgemm speed (T = 256: 62% of the whole square's FLOPs). */
enum { ATT_BLOCK = 64 };

static int block_rows(int t0, int T) { return T - t0 < ATT_BLOCK ? T - t0 : ATT_BLOCK; }

/* Row t of a block spans keys [0, keys); p[j] for j <= t becomes the softmax of the scores, and
 * (t, keys) is zeroed because the block's P·V product reads it. */
static void softmax_causal_row(float *p, int t, int keys) {
  float inv = (float)(1.0 / vexp_shift_sum(p, t + 1, vmax(p, t + 1)));
  for (int j = 0; j <= t; j++) p[j] *= inv;
  memset(p + t + 1, 0, sizeof(float) * (size_t)(keys - t - 1));
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
    float *ob = out + (size_t)b * T * qd + h * head_dim;
    float *a = att + (size_t)bh * T * T; /* (T, T) */
    for (int t0 = 0; t0 < T; t0 += ATT_BLOCK) {
      int rows = block_rows(t0, T), keys = t0 + rows;
      float *ab = a + (size_t)t0 * T; /* (rows, keys) of row stride T */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, head_dim, scale, qb + (size_t)t0 * qd, qd, kb,
                  kvd, 0.0f, ab, T);
      for (int i = 0; i < rows; i++) softmax_causal_row(ab + (size_t)i * T, t0 + i, keys);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, head_dim, keys, 1.0f, ab, T, vb, kvd, 0.0f,
                  ob + (size_t)t0 * qd, qd);
    }
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
      const float *qb = q + (size_t)b * T * qd + h * head_dim;
      const float *dob = dout + (size_t)b * T * qd + h * head_dim;
      float *dqb = dq + (size_t)b * T * qd + h * head_dim;
      for (int t0 = 0; t0 < T; t0 += ATT_BLOCK) {
        int rows = block_rows(t0, T), keys = t0 + rows;
        const float *pb = att + bh * T * T + (size_t)t0 * T; /* (rows, keys) of row stride T */
        float *db = datt + bh * T * T + (size_t)t0 * T;
        const float *qblk = qb + (size_t)t0 * qd, *doblk = dob + (size_t)t0 * qd;
        /* dP = dO V^T, dV += P^T dO */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, head_dim, 1.0f, doblk, qd, vb, kvd, 0.0f, db,
                    T);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, keys, head_dim, rows, 1.0f, pb, T, doblk, qd, 1.0f, dvb,
                    kvd);
        /* softmax backward: dS = P (dP - sum_j P dP), times the score scale; zero where P is */
        for (int i = 0; i < rows; i++) {
          const float *pr = pb + (size_t)i * T;
          float *dr = db + (size_t)i * T;
          int t = t0 + i;
          float dot = vdot(pr, dr, t + 1);
          for (int j = 0; j <= t; j++) dr[j] = scale * pr[j] * (dr[j] - dot);
          memset(dr + t + 1, 0, sizeof(float) * (size_t)(keys - t - 1));
        }
        /* dQ += dS K, dK += dS^T Q */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, head_dim, keys, 1.0f, db, T, kb, kvd, 1.0f,
                    dqb + (size_t)t0 * qd, qd);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, keys, head_dim, rows, 1.0f, db, T, qblk, qd, 1.0f, dkb,
                    kvd);
      }
    }
  }
}
