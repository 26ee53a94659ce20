/* Window order per epoch, weighted mixtures of sources, and "path:weight" lists; see dataset.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

static uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void window_order(size_t *order, size_t n_windows, long epoch, int shuffle, uint64_t seed) {
  for (size_t i = 0; i < n_windows; i++) order[i] = i;
  if (!shuffle) return;
  uint64_t state = mix64(seed ^ mix64((uint64_t)epoch));
  for (size_t i = n_windows; i > 1; i--) { /* Fisher-Yates */
    state = mix64(state);
    size_t j = (size_t)(state % i);
    size_t tmp = order[i - 1];
    order[i - 1] = order[j];
    order[j] = tmp;
  }
}

int mixture_build(data_mixture *mx, const dataset *const *sources, const double *weights, int n, int shuffle,
                  uint64_t seed, char *err, size_t err_size) {
  memset(mx, 0, sizeof *mx);
  if (n < 1) {
    snprintf(err, err_size, "data mixture: no sources");
    return -1;
  }
  double total = 0.0;
  for (int s = 0; s < n; s++) {
    if (!(weights[s] > 0.0) || !isfinite(weights[s])) {
      snprintf(err, err_size, "data mixture: source %d has weight %g; weights must be finite and > 0", s, weights[s]);
      return -1;
    }
    if (!sources[s]->n_windows || sources[s]->seq_len != sources[0]->seq_len) {
      snprintf(err, err_size, "data mixture: source %d is not indexed for seq_len %d", s, sources[0]->seq_len);
      return -1;
    }
    total += weights[s];
  }
  mx->n = n;
  mx->shuffle = shuffle;
  mx->seed = seed;
  mx->sources = malloc(sizeof(dataset *) * n);
  mx->cumulative = malloc(sizeof(double) * n);
  mx->order = calloc(n, sizeof(size_t *));
  mx->epoch = malloc(sizeof(long) * n);
  mx->drawn = calloc(n, sizeof(uint64_t));
  int ok = mx->sources && mx->cumulative && mx->order && mx->epoch && mx->drawn;
  double run = 0.0;
  for (int s = 0; ok && s < n; s++) {
    mx->sources[s] = sources[s];
    run += weights[s];
    mx->cumulative[s] = s + 1 == n ? 1.0 : run / total;
    mx->epoch[s] = -1;
    ok = (mx->order[s] = malloc(sizeof(size_t) * sources[s]->n_windows)) != NULL;
  }
  if (!ok) {
    mixture_free(mx);
    snprintf(err, err_size, "data mixture: out of memory");
    return -1;
  }
  return 0;
}

void mixture_free(data_mixture *mx) {
  for (int s = 0; mx->order && s < mx->n; s++) free(mx->order[s]);
  free(mx->order);
  free(mx->sources);
  free(mx->cumulative);
  free(mx->epoch);
  free(mx->drawn);
  memset(mx, 0, sizeof *mx);
}

int mixture_source(const data_mixture *mx, uint64_t draw) {
  if (mx->n == 1) return 0;
  double u = (double)(mix64(mix64(mx->seed ^ 0x6d69787475726573ull) + draw) >> 11) * 0x1p-53; /* [0, 1) */
  for (int s = 0; s < mx->n; s++)
    if (u < mx->cumulative[s]) return s;
  return mx->n - 1;
}

int mixture_next(data_mixture *mx, int *inputs, int *targets, float *mask) {
  int s = mixture_source(mx, mx->draws++);
  const dataset *d = mx->sources[s];
  uint64_t k = mx->drawn[s]++;
  long epoch = (long)(k / d->n_windows);
  if (epoch != mx->epoch[s]) {
    /* source 0 keeps the plain seed, so one source shuffles exactly as a lone dataset would */
    window_order(mx->order[s], d->n_windows, epoch, mx->shuffle, mx->seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)s));
    mx->epoch[s] = epoch;
  }
  dataset_window(d, mx->order[s][k % d->n_windows], inputs, targets, mask);
  return s;
}

size_t mixture_windows(const data_mixture *mx) {
  size_t total = 0;
  for (int s = 0; s < mx->n; s++) total += mx->sources[s]->n_windows;
  return total;
}

int source_list_parse(source_list *l, const char *spec, char *err, size_t err_size) {
  memset(l, 0, sizeof *l);
  size_t items = 1;
  for (const char *p = spec; *p; p++) items += *p == ',';
  l->copy = strdup(spec);
  l->paths = malloc(sizeof(char *) * items);
  l->weights = malloc(sizeof(double) * items);
  if (!l->copy || !l->paths || !l->weights) {
    source_list_free(l);
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  char *save = NULL;
  for (char *item = strtok_r(l->copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
    double w = 1.0;
    char *colon = strrchr(item, ':'), *end = NULL;
    if (colon && colon[1]) {
      w = strtod(colon + 1, &end);
      if (*end) w = 1.0; /* not a weight: the colon belongs to the path */
      else *colon = '\0';
    }
    if (!*item || !(w > 0.0) || !isfinite(w)) {
      snprintf(err, err_size, "'%s': %s", spec, *item ? "a weight must be a finite number > 0" : "an empty path");
      source_list_free(l);
      return -1;
    }
    l->paths[l->n] = item;
    l->weights[l->n++] = w;
  }
  if (!l->n) {
    snprintf(err, err_size, "'%s' names no file", spec);
    source_list_free(l);
    return -1;
  }
  return 0;
}

void source_list_free(source_list *l) {
  free(l->copy);
  free(l->paths);
  free(l->weights);
  memset(l, 0, sizeof *l);
}
