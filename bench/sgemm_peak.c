/* OpenBLAS sgemm GFLOP/s at the shapes LoRA training runs (per benchmark configuration) and at large
 * square shapes, whose rate is the machine's limit, at 1 and 2 threads (or --threads N only).
 *
 * Shapes, N = batch x seq_len rows (as linear_forward / linear_backward / attention call them):
 *   proj D->D   N x D x D   x W^T of q/k/v/o
 *   proj D->F   N x F x D   gate/up forward
 *   proj F->D   N x D x F   down forward, and the input gradient of gate/up (dy W)
 *   wgrad       F x D x N   dy^T x: a weight gradient (full-parameter mode only; LoRA's dA/dB are
 *                           the thin r-row version of it)
 *   attn        T x T x hd  Q K^T of one head
 *   classifier  64 x V x D  one row chunk of the logits
 * The output line "limit threads T GFLOP/s X" is what run.sh reads. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_configs.h"
#include "ops.h"
#include "sgemm_rate.h"

typedef struct {
  const char *what;
  int m, n, k, trans_a, trans_b;
} shape;

static void shape_print(const char *config, const shape *s, double min_seconds) {
  double rate = sgemm_rate(s->m, s->n, s->k, s->trans_a, s->trans_b, min_seconds);
  printf("  %-7s %-11s %6d x %6d x %6d  %7.1f GFLOP/s\n", config, s->what, s->m, s->n, s->k, rate);
}

int main(int argc, char **argv) {
  int only = 0;
  double min_seconds = 0.3;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) only = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) min_seconds = atof(argv[++i]);
    else {
      fprintf(stderr, "usage: sgemm_peak [--threads N] [--seconds S per shape]\n");
      return 2;
    }
  }
  for (int threads = only ? only : 1; threads <= (only ? only : 2); threads++) {
    compute_threads_set(threads);
    printf("threads %d (best call of >= %.1f s per shape)\n", threads, min_seconds);
    for (int i = 0; i < bench_config_count; i++) {
      const bench_config *bc = &bench_configs[i];
      const model_config *c = &bc->model;
      int N = bc->batch * bc->seq_len, D = c->dim, F = c->hidden_dim;
      shape shapes[] = {{"proj D->D", N, D, D, 0, 1},  {"proj D->F", N, F, D, 0, 1},
                        {"proj F->D", N, D, F, 0, 0},  {"wgrad", F, D, N, 1, 0},
                        {"attn", bc->seq_len, bc->seq_len, c->head_dim, 0, 1},
                        {"classifier", 64, c->vocab_size, D, 0, 1}};
      for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) shape_print(bc->name, &shapes[s], min_seconds);
    }
    double r1, r2, limit = sgemm_limit(min_seconds, &r1, &r2);
    printf("  %-7s %-11s %6d x %6d x %6d  %7.1f GFLOP/s\n", "square", "", 1024, 1024, 1024, r1);
    printf("  %-7s %-11s %6d x %6d x %6d  %7.1f GFLOP/s\n", "square", "", 2048, 2048, 2048, r2);
    printf("limit threads %d GFLOP/s %.1f\n", threads, limit);
  }
  return 0;
}
