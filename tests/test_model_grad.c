/* Whole-model gradients against central finite differences of the independent double reference
 * (ref_llama.h), on a tiny Llama with GQA: every LoRA parameter (all seven targets, non-zero B so
 * A's gradient is non-zero), and every base weight in full-parameter mode, for a tied and a
 * separate classifier, with a position mask. The float forward loss must also match the reference. */
#include <stdint.h>
#include <stdlib.h>

#include "harness.h"
#include "lora.h"
#include "model.h"
#include "ref_llama.h"

#define TOL 2e-4
#define FD_STEP 1e-5

/* N = 80 rows: more than one LOSS_CHUNK of the classifier, and sequences longer than a head. */
enum { B = 4, T = 20, N = B * T };

static int tokens[N], targets[N];
static float mask[N];

/* Random tokens; targets are the next token (the last of each sequence uncounted); a few positions
 * masked out and one at half weight. */
static double make_batch(void) {
  uint64_t s = 5;
  for (int i = 0; i < N; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    tokens[i] = (int)((s >> 33) % 11);
  }
  double count = 0.0;
  for (int i = 0; i < N; i++) {
    targets[i] = (i + 1) % T == 0 ? -1 : tokens[i + 1];
    mask[i] = i % 7 == 3 ? 0.0f : (i == 9 ? 0.5f : 1.0f);
    if (targets[i] >= 0) count += mask[i];
  }
  return count;
}

static model_config tiny_config(int tied) {
  model_config c = {.dim = 8, .hidden_dim = 12, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 2,
                    .vocab_size = 11, .max_seq_len = 16, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                    .tied_classifier = tied};
  return c;
}

static double *to_double(const float *x, size_t n) {
  double *d = malloc(sizeof(double) * n);
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

/* Compares analytic with central differences of the reference loss in each element of `param`. */
static void check_grad(const char *what, const float *analytic, double *param, size_t n, const model *m,
                       const double *wd, const lora_adapter *ad, const double *ld) {
  int bad = 0;
  double worst = 0.0;
  for (size_t i = 0; i < n; i++) {
    double keep = param[i];
    param[i] = keep + FD_STEP;
    double up = ref_model_loss(m, wd, ad, ld, tokens, targets, mask, B, T);
    param[i] = keep - FD_STEP;
    double down = ref_model_loss(m, wd, ad, ld, tokens, targets, mask, B, T);
    param[i] = keep;
    double fd = (up - down) / (2 * FD_STEP), e = fabs(analytic[i] - fd) / fmax(1.0, fabs(fd));
    worst = fmax(worst, e);
    if (e > TOL && bad++ < 5) harness_fail(__FILE__, __LINE__, "%s[%zu]: analytic %.8g vs fd %.8g", what, i, analytic[i], fd);
  }
  harness_checks++;
  if (bad) harness_fail(__FILE__, __LINE__, "%s: %d of %zu gradients off (worst relative error %.3g)", what, bad, n, worst);
  printf("%s: %zu gradients, worst error %.3g\n", what, n, worst);
}

static double float_loss(const model *m, const lora_adapter *ad, model_activations *a, model_weights *dw,
                         float *dlora) {
  double count = 0.0, expected = loss_count(targets, mask, N);
  CHECK_NEAR(expected, make_batch(), 0.0);
  model_forward(m, ad, a, tokens, 0);
  double sum = model_loss(m, a, targets, mask, (float)(1.0 / expected), dw, &count);
  CHECK_NEAR(count, expected, 0.0);
  model_backward(m, ad, a, tokens, dw, dlora);
  return sum / count;
}

static void test_lora(int tied) {
  char err[256];
  model m;
  model_config c = tiny_config(tied);
  CHECK(model_build(&m, &c, err, sizeof err) == 0);
  model_init_random(&m, 7 + tied, 0.5f);
  lora_config lc = {.rank = 2, .alpha = 3.0f, .targets = LORA_TARGETS_ALL};
  lora_adapter ad;
  CHECK(lora_build(&ad, &c, &lc, err, sizeof err) == 0);
  lora_init(&ad, 3);
  /* B = 0 after init would leave dA = 0 and untested; give B values too */
  uint64_t s = 11;
  for (int l = 0; l < c.n_layers; l++)
    for (int mod = 0; mod < LORA_NUM_MODULES; mod++) {
      float *b = lora_b(&ad, ad.params, l, mod);
      for (int i = 0; i < ad.out_features[mod] * lc.rank; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        b[i] = (float)((s >> 40) / 8388608.0 - 1.0) * 0.5f;
      }
    }
  model_activations a;
  CHECK(activations_build(&a, &c, &ad, B, T, 1, err, sizeof err) == 0);
  float *dlora = calloc(ad.num_params, sizeof(float));
  double loss = float_loss(&m, &ad, &a, NULL, dlora);
  double *wd = to_double(m.params, m.num_params), *ld = to_double(ad.params, ad.num_params);
  double ref = ref_model_loss(&m, wd, &ad, ld, tokens, targets, mask, B, T);
  CHECK_NEAR(loss, ref, 1e-5);
  check_grad(tied ? "LoRA grads (tied classifier)" : "LoRA grads (separate classifier)", dlora, ld, ad.num_params,
             &m, wd, &ad, ld);
  free(wd), free(ld), free(dlora);
  activations_free(&a);
  lora_free(&ad);
  model_free(&m);
}

static void test_full(int tied) {
  char err[256];
  model m;
  model_config c = tiny_config(tied);
  CHECK(model_build(&m, &c, err, sizeof err) == 0);
  model_init_random(&m, 21 + tied, 0.5f);
  /* norm weights away from 1 so their gradients are exercised in general position */
  for (int i = 0; i < c.n_layers * c.dim; i++) m.weights.rms_att[i] += 0.1f * (i % 3), m.weights.rms_ffn[i] -= 0.05f * (i % 4);
  model_activations a;
  CHECK(activations_build(&a, &c, NULL, B, T, 1, err, sizeof err) == 0);
  float *grad = calloc(m.num_params, sizeof(float));
  model_weights dw;
  model_weights_point(&dw, &c, grad);
  double loss = float_loss(&m, NULL, &a, &dw, NULL);
  double *wd = to_double(m.params, m.num_params);
  double ref = ref_model_loss(&m, wd, NULL, NULL, tokens, targets, mask, B, T);
  CHECK_NEAR(loss, ref, 1e-5);
  check_grad(tied ? "full grads (tied classifier)" : "full grads (separate classifier)", grad, wd, m.num_params, &m,
             wd, NULL, NULL);
  free(wd), free(grad);
  activations_free(&a);
  model_free(&m);
}

int main(void) {
  make_batch();
  test_lora(1);
  test_lora(0);
  test_full(1);
  test_full(0);
  return harness_finish();
}
