/* See sgemm_rate.h. */
#include "sgemm_rate.h"

#include <cblas.h>
#include <stdlib.h>
#include <time.h>

double bench_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *random_matrix(size_t count, unsigned seed) {
  float *x = malloc(sizeof(float) * count);
  if (!x) return NULL;
  for (size_t i = 0; i < count; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (float)(seed >> 8) * (1.0f / 16777216.0f) - 0.5f;
  }
  return x;
}

double sgemm_rate(int m, int n, int k, int trans_a, int trans_b, double min_seconds) {
  float *a = random_matrix((size_t)m * k, 1), *b = random_matrix((size_t)k * n, 2);
  float *c = calloc((size_t)m * n, sizeof(float));
  double best = -1.0;
  if (!a || !b || !c) goto done;
  /* Leading dimensions of the stored (not the transposed) matrices. */
  int lda = trans_a ? m : k, ldb = trans_b ? k : n;
  CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  double flops = 2.0 * m * n * k;
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n);
  double start = bench_seconds(), now = start;
  int calls = 0;
  best = 0.0;
  while (now - start < min_seconds || calls < 3) {
    double t0 = bench_seconds();
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n);
    now = bench_seconds();
    double rate = flops / (now - t0) * 1e-9;
    if (rate > best) best = rate;
    calls++;
  }
done:
  free(a);
  free(b);
  free(c);
  return best;
}

double sgemm_limit(double min_seconds, double *r1024, double *r2048) {
  double r1 = sgemm_rate(1024, 1024, 1024, 0, 0, min_seconds);
  double r2 = sgemm_rate(2048, 2048, 2048, 0, 0, min_seconds);
  if (r1024) *r1024 = r1;
  if (r2048) *r2048 = r2;
  return r1 > r2 ? r1 : r2;
}
