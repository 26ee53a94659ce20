/* Coordinate-wise median and trimmed mean, (Multi-)Krum, and norm bounding. Distances and
 * sums are accumulated in double: updates are long and their differences small. */
#include "robust.h"

#include <math.h>
#include <stdlib.h>

#include "log.h"

typedef struct {
  float value;
  float weight;
} weighted;

static int weighted_compare(const void *a, const void *b) {
  float x = ((const weighted *)a)->value, y = ((const weighted *)b)->value;
  return (x > y) - (x < y);
}

/* Checks what every rule needs: finite values, non-negative weights with a positive sum. */
static int inputs_check(const char *rule, const float *updates, const float *weights, int n, size_t d) {
  if (n < 1) {
    log_error("robust %s: no updates", rule);
    return -1;
  }
  double total = 0;
  for (int c = 0; c < n; c++) {
    if (weights && !(weights[c] >= 0.0f && isfinite(weights[c]))) {
      log_error("robust %s: client %d has weight %g; weights must be finite and >= 0", rule, c, (double)weights[c]);
      return -1;
    }
    total += weights ? weights[c] : 1.0;
    for (size_t i = 0; i < d; i++)
      if (!isfinite(updates[(size_t)c * d + i])) {
        log_error("robust %s: client %d, coordinate %zu is %f", rule, c, i, (double)updates[(size_t)c * d + i]);
        return -1;
      }
  }
  if (!(total > 0)) {
    log_error("robust %s: the weights sum to zero", rule);
    return -1;
  }
  return 0;
}

/* column (n): coordinate i of every update with its client's weight, sorted by value. */
static void column_sort(const float *updates, const float *weights, int n, size_t d, size_t i, weighted *column) {
  for (int c = 0; c < n; c++) column[c] = (weighted){updates[(size_t)c * d + i], weights ? weights[c] : 1.0f};
  qsort(column, (size_t)n, sizeof *column, weighted_compare);
}

int robust_median(const float *updates, const float *weights, int n, size_t d, float *out) {
  if (inputs_check("median", updates, weights, n, d) != 0) return -1;
  weighted *column = malloc(sizeof *column * (size_t)n);
  if (!column) return -1;
  for (size_t i = 0; i < d; i++) {
    column_sort(updates, weights, n, d, i, column);
    double total = 0, below = 0;
    for (int c = 0; c < n; c++) total += column[c].weight;
    int k = 0;
    while (k < n - 1 && (below + column[k].weight) * 2 < total) below += column[k++].weight;
    double reached = (below + column[k].weight) * 2;
    /* Exactly half: the median lies between this value and the next one that carries weight. */
    int next = k + 1;
    while (next < n && column[next].weight == 0) next++;
    out[i] = reached == total && next < n ? (float)(0.5 * ((double)column[k].value + column[next].value))
                                          : column[k].value;
  }
  free(column);
  return 0;
}

int robust_trimmed_mean(const float *updates, const float *weights, int n, size_t d, double beta, float *out) {
  if (!(beta >= 0.0 && beta < 0.5)) {
    log_error("robust trimmed mean: beta must be in [0, 0.5), got %g", beta);
    return -1;
  }
  if (inputs_check("trimmed mean", updates, weights, n, d) != 0) return -1;
  int trim = (int)floor(beta * n);
  weighted *column = malloc(sizeof *column * (size_t)n);
  if (!column) return -1;
  int rc = 0;
  for (size_t i = 0; i < d && rc == 0; i++) {
    column_sort(updates, weights, n, d, i, column);
    double sum = 0, weight = 0;
    for (int c = trim; c < n - trim; c++) {
      sum += (double)column[c].value * column[c].weight;
      weight += column[c].weight;
    }
    if (weight > 0) out[i] = (float)(sum / weight);
    else {
      log_error("robust trimmed mean: every update kept at coordinate %zu has weight 0", i);
      rc = -1;
    }
  }
  free(column);
  return rc;
}

static double distance_squared(const float *a, const float *b, size_t d) {
  double s = 0;
  for (size_t i = 0; i < d; i++) {
    double diff = (double)a[i] - b[i];
    s += diff * diff;
  }
  return s;
}

static int double_compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int robust_krum_scores(const float *updates, int n, size_t d, int f, double *scores) {
  if (f < 0 || n <= 2 * f + 2) {
    log_error("robust krum: needs n > 2f + 2 updates, got n=%d f=%d", n, f);
    return -1;
  }
  if (inputs_check("krum", updates, NULL, n, d) != 0) return -1;
  double *dist = malloc(sizeof *dist * (size_t)n * (size_t)n);  /* (n, n) pairwise squared distances */
  double *row = malloc(sizeof *row * (size_t)n);                 /* (n − 1) distances from one update */
  if (!dist || !row) {
    free(dist);
    free(row);
    return -1;
  }
  for (int a = 0; a < n; a++)
    for (int b = a + 1; b < n; b++)
      dist[a * n + b] = dist[b * n + a] =
          distance_squared(updates + (size_t)a * d, updates + (size_t)b * d, d);
  int nearest = n - f - 2;
  for (int a = 0; a < n; a++) {
    int k = 0;
    for (int b = 0; b < n; b++)
      if (b != a) row[k++] = dist[a * n + b];
    qsort(row, (size_t)k, sizeof *row, double_compare);
    scores[a] = 0;
    for (int j = 0; j < nearest; j++) scores[a] += row[j];
  }
  free(dist);
  free(row);
  return 0;
}

int robust_multi_krum(const float *updates, const float *weights, int n, size_t d, int f, int m, float *out,
                      int *selected) {
  if (m < 1 || m > n) {
    log_error("robust multi-krum: must select 1..%d updates, got m=%d", n, m);
    return -1;
  }
  if (inputs_check("multi-krum", updates, weights, n, d) != 0) return -1;
  double *scores = malloc(sizeof *scores * (size_t)n);
  int *order = malloc(sizeof *order * (size_t)n);
  double *sum = calloc(d ? d : 1, sizeof *sum);
  int rc = -1;
  if (!scores || !order || !sum || robust_krum_scores(updates, n, d, f, scores) != 0) goto done;
  /* Stable selection of the m lowest scores: ties keep the lower index. */
  for (int c = 0; c < n; c++) order[c] = c;
  for (int c = 1; c < n; c++)
    for (int j = c; j > 0 && scores[order[j]] < scores[order[j - 1]]; j--) {
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  double weight = 0;
  for (int j = 0; j < m; j++) {
    int c = order[j];
    double w = weights ? weights[c] : 1.0;
    weight += w;
    for (size_t i = 0; i < d; i++) sum[i] += w * updates[(size_t)c * d + i];
    if (selected) selected[j] = c;
  }
  if (!(weight > 0)) {
    log_error("robust multi-krum: the %d selected updates all have weight 0", m);
    goto done;
  }
  for (size_t i = 0; i < d; i++) out[i] = (float)(sum[i] / weight);
  rc = 0;
done:
  free(scores);
  free(order);
  free(sum);
  return rc;
}

double robust_norm_bound(float *update, size_t d, double bound) {
  double norm = 0;
  for (size_t i = 0; i < d; i++) norm += (double)update[i] * update[i];
  norm = sqrt(norm);
  if (norm > bound) {
    double scale = bound / norm;
    for (size_t i = 0; i < d; i++) update[i] = (float)(update[i] * scale);
  }
  return norm;
}
