/* Aggregation benchmark (issue 8):
 *   1. FedAvg as the aggregator runs it (agg_accum_add_all over 10 updates of 50 MB: finiteness
 *      checks and the weighted sum in one sweep, then agg_accum_mean) in GB/s of update bytes
 *      consumed, against memcpy of the same bytes on the same buffers;
 *   2. secure aggregation's client cost: secagg_quantize once per update, and per peer one pairwise
 *      mask (secagg_mask_expand + secagg_add, and secagg_mask_apply which never materialises it),
 *      in ms per MB of update;
 *   3. a federated round split, read from the aggregator's metrics.jsonl of a finished run (default
 *      runs/demo/aggregator/metrics.jsonl, made by scripts/demo.sh): the round's time against the
 *      slowest site's training, and against its whole local work (the validation pass of the global
 *      adapter, then training); the sites work at the same time, so the round waits for the slowest.
 * Every timing is the best of --reps runs (the machine is shared: slow runs measure the neighbours). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "secagg_math.h"
#include "sgemm_rate.h"

enum { UPDATES = 10 };

static void fill(float *x, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (float)(seed >> 8) * (1.0f / 16777216.0f) - 0.5f;
  }
}

static double min2(double a, double b) { return a < b ? a : b; }

static int bench_fedavg(size_t n, int reps) {
  double weights[UPDATES];
  for (int k = 0; k < UPDATES; k++) weights[k] = 1.0 + k;
  float *updates[UPDATES], *global = malloc(sizeof(float) * n), *delta = malloc(sizeof(float) * n);
  agg_accum acc = {0};
  char err[256];
  int rc = -1;
  memset(updates, 0, sizeof updates);
  for (int k = 0; k < UPDATES; k++)
    if (!(updates[k] = malloc(sizeof(float) * n))) goto done;
  if (!global || !delta || agg_accum_build(&acc, n, err, sizeof err)) goto done;
  fill(global, n, 99);
  for (int k = 0; k < UPDATES; k++) fill(updates[k], n, (uint32_t)k + 1);
  double t_avg = 1e30, t_copy = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = bench_seconds();
    for (int k = 0; k < UPDATES; k++) memcpy(delta, updates[k], sizeof(float) * n);
    t_copy = min2(t_copy, bench_seconds() - t0);
    agg_accum_reset(&acc);
    t0 = bench_seconds();
    int accepted[UPDATES];
    if (agg_accum_add_all(&acc, (const float *const *)updates, weights, UPDATES, global, accepted) != UPDATES) {
      fprintf(stderr, "agg_bench: an update was refused\n");
      goto done;
    }
    if (agg_accum_mean(&acc, delta, err, sizeof err)) goto done;
    t_avg = min2(t_avg, bench_seconds() - t0);
  }
  double gb = (double)UPDATES * n * sizeof(float) * 1e-9;
  printf("FedAvg   %d updates x %.1f MB: %.3f s, %.2f GB/s of updates; memcpy of the same bytes %.2f GB/s; "
         "ratio %.0f%%\n", UPDATES, n * sizeof(float) * 1e-6, t_avg, gb / t_avg, gb / t_copy, 100.0 * t_copy / t_avg);
  rc = 0;
done:
  if (rc) fprintf(stderr, "agg_bench: out of memory or aggregation refused: %s\n", err);
  for (int k = 0; k < UPDATES; k++) free(updates[k]);
  free(global);
  free(delta);
  agg_accum_free(&acc);
  return rc;
}

static int bench_secagg(size_t n, int reps) {
  float *x = malloc(sizeof(float) * n);
  uint32_t *y = malloc(sizeof(uint32_t) * n), *mask = malloc(sizeof(uint32_t) * n);
  uint8_t seed[SECAGG_SEED_BYTES];
  int rc = -1;
  if (!x || !y || !mask) goto done;
  fill(x, n, 7);
  for (int i = 0; i < SECAGG_SEED_BYTES; i++) seed[i] = (uint8_t)(i * 37 + 1);
  double t_q = 1e30, t_expand = 1e30, t_apply = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = bench_seconds();
    if (secagg_quantize(x, n, 1.0, 1 << 20, 5, y)) goto done;
    double t1 = bench_seconds();
    if (secagg_mask_expand(seed, mask, n)) goto done;
    secagg_add(y, mask, n);
    double t2 = bench_seconds();
    if (secagg_mask_apply(y, n, seed, -1)) goto done;
    double t3 = bench_seconds();
    t_q = min2(t_q, t1 - t0);
    t_expand = min2(t_expand, t2 - t1);
    t_apply = min2(t_apply, t3 - t2);
  }
  double mb = n * sizeof(float) * 1e-6;
  printf("SecAgg   client per MB of update: quantize %.2f ms once; per peer: mask_expand + add %.2f ms, "
         "mask_apply %.2f ms (%.0f MB/s per peer)\n", t_q / mb * 1e3, t_expand / mb * 1e3, t_apply / mb * 1e3,
         mb / t_apply);
  rc = 0;
done:
  if (rc) fprintf(stderr, "agg_bench: secure aggregation step failed or out of memory\n");
  free(x);
  free(y);
  free(mask);
  return rc;
}

/* One line per committed round of metrics.jsonl and the totals. */
static int bench_round(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    printf("Round    %s: not found (run scripts/demo.sh first); skipped\n", path);
    return 0;
  }
  char line[1 << 16];
  double total_round = 0.0, total_train = 0.0, total_local = 0.0;
  int rounds = 0;
  while (fgets(line, sizeof line, f)) {
    json_error_t jerr;
    json_t *j = json_loads(line, 0, &jerr);
    if (!j) {
      fprintf(stderr, "agg_bench: %s:%d: %s\n", path, jerr.line, jerr.text);
      fclose(f);
      return -1;
    }
    /* The sites work at the same time, so the round waits for the slowest: its training, and its
     * whole local work (the validation pass of the global adapter, then training). */
    double round_s = json_real_value(json_object_get(j, "round_seconds")), train_s = 0.0, local_s = 0.0;
    const char *site;
    json_t *m;
    json_object_foreach(json_object_get(j, "sites"), site, m) {
      double s = json_real_value(json_object_get(m, "seconds"));
      double e = json_real_value(json_object_get(m, "eval_seconds"));
      if (s > train_s) train_s = s;
      if (s + e > local_s) local_s = s + e;
    }
    int round = (int)json_integer_value(json_object_get(j, "round"));
    printf("Round    %d: %.2f s; slowest site: training %.2f s, validation + training %.2f s; all but training "
           "%.2f s (%.1f%%), all but the sites' local work %.2f s (%.1f%%)\n",
           round, round_s, train_s, local_s, round_s - train_s, round_s > 0 ? 100.0 * (round_s - train_s) / round_s : 0.0,
           round_s - local_s, round_s > 0 ? 100.0 * (round_s - local_s) / round_s : 0.0);
    total_round += round_s;
    total_train += train_s;
    total_local += local_s;
    rounds++;
    json_decref(j);
  }
  fclose(f);
  if (rounds)
    printf("Round    all %d: %.2f s; all but training %.2f s = %.1f%%; all but the sites' local work %.2f s = %.1f%% "
           "(%s)\n",
           rounds, total_round, total_round - total_train, 100.0 * (total_round - total_train) / total_round,
           total_round - total_local, 100.0 * (total_round - total_local) / total_round, path);
  return 0;
}

int main(int argc, char **argv) {
  const char *metrics = "runs/demo/aggregator/metrics.jsonl";
  double mb = 50.0;
  int reps = 3;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--metrics") && i + 1 < argc) metrics = argv[++i];
    else if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = atof(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: agg_bench [--mb MB per update] [--reps N] [--metrics runs/demo/aggregator/metrics.jsonl]\n");
      return 2;
    }
  }
  if (!(mb > 0.0) || reps < 1) {
    fprintf(stderr, "agg_bench: --mb must be > 0 and --reps >= 1\n");
    return 2;
  }
  size_t n = (size_t)(mb * 1e6 / sizeof(float));
  if (bench_fedavg(n, reps) || bench_secagg(n, reps) || bench_round(metrics)) return 1;
  return 0;
}
