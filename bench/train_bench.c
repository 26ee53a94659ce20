/* Training benchmark: LoRA (r 8, alpha 16, all seven targets, AdamW) on a random-weight Llama of a
 * fixed size; prints tokens/s, GFLOP/s, the percentage of the sgemm limit (square sgemm at the same
 * thread count, measured here unless --limit gives it) and peak RSS.
 *
 * FLOPs counted per optimizer step are the useful ones (2 per multiply-add):
 *   every base projection: forward and input gradient (the base is frozen, no weight gradient);
 *   every LoRA module: x A^T, (xA) B^T forward; dB, d(xA), dA, dx backward = 6 N r (in + out);
 *   attention: Q K^T and P V forward, four products backward, over the causal half only
 *     (T (T + 1) / 2 pairs, although the kernel computes the full square);
 *   classifier: forward and input gradient.
 * Element-wise work (norms, RoPE, softmax, SwiGLU, cross-entropy, AdamW) is not counted, nor any
 * product computed but not needed (the masked half of the attention squares). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench_configs.h"
#include "dataset.h"
#include "model.h"
#include "ops.h"
#include "sgemm_rate.h"
#include "train.h"

static double step_flops(const model_config *c, const lora_adapter *ad, int batch, int seq_len) {
  double N = (double)batch * seq_len, r = ad->config.rank, total = 0.0;
  for (int m = 0; m < LORA_NUM_MODULES; m++) {
    double in = ad->in_features[m], out = ad->out_features[m];
    total += 2.0 * (2.0 * N * in * out); /* forward + input gradient (the first layer's is needed too:
                                            a LoRA of q/k/v sits behind it) */
    if (ad->config.targets & (1u << m)) total += 6.0 * N * r * (in + out);
  }
  total *= c->n_layers;
  double pairs = (double)batch * c->n_heads * seq_len * (seq_len + 1) / 2.0;
  total += c->n_layers * (2.0 + 4.0) * 2.0 * pairs * c->head_dim;
  total += 2.0 * (2.0 * N * c->dim * c->vocab_size);
  return total;
}

static void usage(FILE *out) {
  fprintf(out, "usage: train_bench [--config tiny|small|medium] [--threads N] [--steps K] [--limit GFLOPS]\n");
}

int main(int argc, char **argv) {
  const bench_config *bc = &bench_configs[0];
  int threads = 0, steps = 0;
  double limit = 0.0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--config") && i + 1 < argc) {
      const char *name = argv[++i];
      if (!(bc = bench_config_find(name))) {
        fprintf(stderr, "train_bench: unknown --config '%s' (tiny, small or medium)\n", name);
        return 2;
      }
    } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
      steps = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
      limit = atof(argv[++i]);
    } else {
      usage(!strcmp(argv[i], "--help") ? stdout : stderr);
      return !strcmp(argv[i], "--help") ? 0 : 2;
    }
  }
  if (threads > 0) compute_threads_set(threads);
  threads = openblas_get_num_threads();
  if (steps <= 0) steps = bc->steps;
  if (limit <= 0.0) limit = sgemm_limit(0.3, NULL, NULL);

  char err[512];
  model m;
  lora_adapter ad;
  trainer t;
  if (model_build(&m, &bc->model, err, sizeof err)) goto fail;
  model_init_random(&m, 1, 0.02f);
  lora_config lc = {.rank = 8, .alpha = 16.0f, .targets = LORA_TARGETS_ALL};
  if (lora_build(&ad, &m.config, &lc, err, sizeof err)) goto fail;
  lora_init(&ad, 2);
  size_t n_ids = (size_t)bc->batch * bc->seq_len * 4 + 1;
  int *ids = malloc(sizeof(int) * n_ids);
  dataset data = {0};
  data_mixture mx = {0};
  if (!ids) {
    snprintf(err, sizeof err, "out of memory");
    goto fail;
  }
  for (size_t i = 0; i < n_ids; i++) ids[i] = (int)((i * 2654435761u) % (unsigned)bc->model.vocab_size);
  if (dataset_add_tokens(&data, ids, n_ids, 0, err, sizeof err) || dataset_index(&data, bc->seq_len, "bench", err, sizeof err))
    goto fail;
  free(ids);
  train_config tc = {.batch = bc->batch, .seq_len = bc->seq_len, .grad_accum = 1, .steps = steps + 1,
                     .optim = optim_config_default(OPTIM_ADAMW), .grad_clip = 1.0f, .shuffle = 0, .seed = 3};
  tc.schedule = (lr_schedule){.kind = SCHEDULE_CONSTANT, .lr = 1e-4f, .total_steps = tc.steps};
  if (mixture_build(&mx, (const dataset *[]){&data}, (double[]){1.0}, 1, 0, tc.seed, err, sizeof err) ||
      trainer_build(&t, &m, &ad, &tc, err, sizeof err))
    goto fail;
  trainer_step(&t, &mx); /* warm-up: first touch of the arenas, OpenBLAS buffers */
  struct rusage ru0, ru;
  getrusage(RUSAGE_SELF, &ru0);
  double start = bench_seconds();
  step_report r = {0};
  for (int s = 0; s < steps; s++) r = trainer_step(&t, &mx);
  double elapsed = bench_seconds() - start;
  double tokens = (double)steps * bc->batch * bc->seq_len;
  double flops = steps * step_flops(&m.config, &ad, bc->batch, bc->seq_len);
  getrusage(RUSAGE_SELF, &ru);
  /* CPU seconds per wall second: 2 on two idle cores; less means the neighbours had the cores. */
  double cpu = ru.ru_utime.tv_sec - ru0.ru_utime.tv_sec + (ru.ru_utime.tv_usec - ru0.ru_utime.tv_usec) * 1e-6 +
               ru.ru_stime.tv_sec - ru0.ru_stime.tv_sec + (ru.ru_stime.tv_usec - ru0.ru_stime.tv_usec) * 1e-6;
  printf("config %s (dim %d, layers %d, heads %d/%d, hidden %d, vocab %d, batch %dx%d), threads %d, %d steps\n",
         bc->name, bc->model.dim, bc->model.n_layers, bc->model.n_heads, bc->model.n_kv_heads, bc->model.hidden_dim,
         bc->model.vocab_size, bc->batch, bc->seq_len, threads, steps);
  double gflops = flops / elapsed * 1e-9;
  printf("tokens/s %.0f  GFLOP/s %.2f  of limit %.1f%% (%.1f)  step %.1f ms  peak RSS %.1f MB  cores used %.2f"
         "  (loss %.4f)\n", tokens / elapsed, gflops, 100.0 * gflops / limit, limit, elapsed / steps * 1e3,
         ru.ru_maxrss / 1024.0, cpu / elapsed, r.loss);
  trainer_free(&t);
  mixture_free(&mx);
  dataset_free(&data);
  lora_free(&ad);
  model_free(&m);
  return 0;
fail:
  fprintf(stderr, "train_bench: %s\n", err);
  return 1;
}
