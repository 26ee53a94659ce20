/* run.c-style generation; see generate.h. Each position re-runs the forward over the whole prefix
 * through the training code path (no separate KV-cache implementation to keep in step with it). */
#include "generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int sample_argmax(const float *p, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (p[i] > p[best]) best = i;
  return best;
}

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Samples from softmax(logits / temperature); logits are overwritten. */
static int sample_softmax(float *logits, int n, float temperature, uint64_t *rng) {
  float mx = logits[0];
  for (int i = 1; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
  double sum = 0.0;
  for (int i = 0; i < n; i++) sum += (logits[i] = expf((logits[i] - mx) / temperature));
  double u = (double)(rng_next(rng) >> 11) / 9007199254740992.0 * sum, acc = 0.0;
  for (int i = 0; i < n; i++) {
    acc += logits[i];
    if (u < acc) return i;
  }
  return n - 1;
}

int generate_ids(const model *m, const lora_adapter *lora, const int *prompt, int n_prompt,
                 const generate_config *cfg, int *out, int *n_out, char *err, size_t err_size) {
  const model_config *c = &m->config;
  *n_out = 0;
  if (n_prompt < 1) {
    snprintf(err, err_size, "generate: the prompt needs at least one token (usually BOS = 1)");
    return -1;
  }
  for (int i = 0; i < n_prompt; i++)
    if (prompt[i] < 0 || prompt[i] >= c->vocab_size) {
      snprintf(err, err_size, "generate: prompt token %d at position %d is outside the vocabulary [0, %d)",
               prompt[i], i, c->vocab_size);
      return -1;
    }
  int steps = cfg->steps < c->max_seq_len ? cfg->steps : c->max_seq_len;
  if (steps < 1) return 0;
  model_activations a;
  int *tokens = malloc(sizeof(int) * (size_t)steps);
  float *logits = malloc(sizeof(float) * (size_t)c->vocab_size);
  if (!tokens || !logits) {
    snprintf(err, err_size, "generate: out of memory");
    free(tokens);
    free(logits);
    return -1;
  }
  if (activations_build(&a, c, lora, 1, steps, 0, err, err_size)) {
    free(tokens);
    free(logits);
    return -1;
  }
  uint64_t rng = cfg->seed;
  tokens[0] = prompt[0];
  for (int pos = 0; pos < steps; pos++) {
    int next;
    if (pos < n_prompt - 1) {
      next = prompt[pos + 1];
    } else {
      a.seq_len = pos + 1;
      model_forward(m, lora, &a, tokens, 0);
      model_logits_row(m, &a, pos, logits);
      next = cfg->temperature <= 0.0f ? sample_argmax(logits, c->vocab_size)
                                      : sample_softmax(logits, c->vocab_size, cfg->temperature, &rng);
    }
    int stop = 0;
    for (int i = 0; i < cfg->n_stop; i++) stop |= next == cfg->stop_ids[i];
    if (stop) break;
    out[(*n_out)++] = next;
    if (pos + 1 < steps) tokens[pos + 1] = next;
  }
  activations_free(&a);
  free(tokens);
  free(logits);
  return 0;
}
