/* Every backward op against central finite differences in double precision.
 *
 * Method: inputs are random floats; the library's float forward must match the double reference
 * (ref_llama.h, written independently from the definitions), and the library's float backward,
 * fed dy = g for a random g, must match d(sum g * y)/d(input) taken by central differences of the
 * double reference. Float analytic gradients on these tiny shapes are good to ~1e-6, so a
 * tolerance of 1e-4 passes correct code and fails any wrong term. */
#include <stdint.h>
#include <stdlib.h>

#include "harness.h"
#include "lora.h"
#include "attention.h"
#include "ops.h"
#include "ref_llama.h"

#define TOL 1e-4
#define FD_STEP 1e-5

static uint64_t rng = 12345;
static float frand(void) { /* uniform in [-1, 1) */
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) / 8388608.0 - 1.0);
}
static void fill(float *x, int n, float scale) {
  for (int i = 0; i < n; i++) x[i] = scale * frand();
}
static double *to_double(const float *x, int n) {
  double *d = malloc(sizeof(double) * n);
  for (int i = 0; i < n; i++) d[i] = x[i];
  return d;
}

/* The op under test as a function of the double inputs: returns sum g * y. */
typedef double (*objective)(void);

/* Compares analytic[i] with the central difference of f in param[i], for every stride-th i < n; one
 * CHECK per element, reporting the op's name and index on failure. */
static void check_grad_strided(const char *what, const float *analytic, double *param, int n, int stride,
                               objective f) {
  for (int i = 0; i < n; i += stride) {
    double keep = param[i];
    param[i] = keep + FD_STEP;
    double up = f();
    param[i] = keep - FD_STEP;
    double down = f();
    param[i] = keep;
    double fd = (up - down) / (2 * FD_STEP);
    CHECK_MSG(fabs(analytic[i] - fd) <= TOL * fmax(1.0, fabs(fd)), "%s[%d]: analytic %.8g vs finite difference %.8g",
              what, i, analytic[i], fd);
  }
}

static void check_grad(const char *what, const float *analytic, double *param, int n, objective f) {
  check_grad_strided(what, analytic, param, n, 1, f);
}

static void check_forward(const char *what, const float *y, const double *ref, int n) {
  for (int i = 0; i < n; i++)
    CHECK_MSG(fabs(y[i] - ref[i]) <= 1e-5 * fmax(1.0, fabs(ref[i])), "%s forward[%d]: %.8g vs reference %.8g",
              what, i, y[i], ref[i]);
}

static double dot_g(const double *y, const double *g, int n) {
  double s = 0.0;
  for (int i = 0; i < n; i++) s += y[i] * g[i];
  return s;
}

/* ---- RMSNorm ---- */
enum { RN = 3, RD = 8 };
static double *rn_x, *rn_w, *rn_g;
static double rmsnorm_obj(void) {
  double y[RN * RD];
  ref_rmsnorm(y, rn_x, rn_w, RN, RD, 1e-5);
  return dot_g(y, rn_g, RN * RD);
}
static void test_rmsnorm(void) {
  float x[RN * RD], w[RD], g[RN * RD], y[RN * RD], rstd[RN], dx[RN * RD] = {0}, dw[RD] = {0};
  fill(x, RN * RD, 1.0f);
  fill(w, RD, 1.0f);
  fill(g, RN * RD, 1.0f);
  rn_x = to_double(x, RN * RD), rn_w = to_double(w, RD), rn_g = to_double(g, RN * RD);
  double ref[RN * RD];
  ref_rmsnorm(ref, rn_x, rn_w, RN, RD, 1e-5);
  rmsnorm_forward(y, rstd, x, w, RN, RD, 1e-5f);
  check_forward("rmsnorm", y, ref, RN * RD);
  rmsnorm_backward(dx, dw, g, x, w, rstd, RN, RD);
  check_grad("rmsnorm dx", dx, rn_x, RN * RD, rmsnorm_obj);
  check_grad("rmsnorm dw", dw, rn_w, RD, rmsnorm_obj);
  free(rn_x), free(rn_w), free(rn_g);
}

/* ---- RoPE ---- */
enum { PB = 2, PT = 5, PH = 3, PHD = 6, PN = PB * PT * PH * PHD };
static double *rp_x, *rp_g;
static double rope_obj(void) {
  double y[PN];
  memcpy(y, rp_x, sizeof y);
  ref_rope(y, PB, PT, PH, PHD, 10000.0);
  return dot_g(y, rp_g, PN);
}
static void test_rope(void) {
  float x[PN], g[PN], cos_t[PT * PHD / 2], sin_t[PT * PHD / 2];
  fill(x, PN, 1.0f);
  fill(g, PN, 1.0f);
  rp_x = to_double(x, PN), rp_g = to_double(g, PN);
  double ref[PN];
  memcpy(ref, rp_x, sizeof ref);
  ref_rope(ref, PB, PT, PH, PHD, 10000.0);
  rope_tables(cos_t, sin_t, PT, PHD, 10000.0f);
  rope_forward(x, cos_t, sin_t, PB, PT, PH, PHD);
  check_forward("rope", x, ref, PN);
  rope_backward(g, cos_t, sin_t, PB, PT, PH, PHD); /* in place: g becomes dx */
  check_grad("rope dx", g, rp_x, PN, rope_obj);
  free(rp_x), free(rp_g);
}

/* ---- attention: GQA (4 query heads on 2 kv heads), causal ----
 * Two shapes: T = 5 (inside one block of query rows) and T = 150 (two whole blocks and a partial
 * one, so every block boundary of the causal products is crossed); the second checks a strided
 * sample of the gradient to keep the finite differences cheap. */
static int at_b, at_t, at_h, at_kv, at_hd, at_qn;
static double *at_q, *at_k, *at_v, *at_g;
static double attention_obj(void) {
  double *y = malloc(sizeof(double) * at_qn);
  ref_attention(y, at_q, at_k, at_v, at_b, at_t, at_h, at_kv, at_hd);
  double s = dot_g(y, at_g, at_qn);
  free(y);
  return s;
}
static void test_attention(int B, int T, int H, int KV, int HD, int stride) {
  int qn = B * T * H * HD, kn = B * T * KV * HD;
  size_t an = (size_t)B * H * T * T;
  at_b = B, at_t = T, at_h = H, at_kv = KV, at_hd = HD, at_qn = qn;
  float *q = malloc(sizeof(float) * qn), *k = malloc(sizeof(float) * kn), *v = malloc(sizeof(float) * kn);
  float *g = malloc(sizeof(float) * qn), *out = malloc(sizeof(float) * qn);
  float *att = malloc(sizeof(float) * an), *datt = malloc(sizeof(float) * an);
  float *dq = calloc(qn, sizeof(float)), *dk = calloc(kn, sizeof(float)), *dv = calloc(kn, sizeof(float));
  /* garbage where the passes must not look: above the diagonal is scratch */
  for (size_t i = 0; i < an; i++) att[i] = datt[i] = NAN;
  fill(q, qn, 1.5f);
  fill(k, kn, 1.5f);
  fill(v, kn, 1.0f);
  fill(g, qn, 1.0f);
  at_q = to_double(q, qn), at_k = to_double(k, kn), at_v = to_double(v, kn), at_g = to_double(g, qn);
  double *ref = malloc(sizeof(double) * qn);
  ref_attention(ref, at_q, at_k, at_v, B, T, H, KV, HD);
  attention_forward(out, att, q, k, v, B, T, H, KV, HD);
  check_forward("attention", out, ref, qn);
  /* each row's probabilities over the causal prefix sum to one */
  for (int bh = 0; bh < B * H; bh++)
    for (int t = 0; t < T; t++) {
      double s = 0.0;
      for (int j = 0; j <= t; j++) s += att[((size_t)bh * T + t) * T + j];
      CHECK_NEAR(s, 1.0, 1e-5);
    }
  attention_backward(dq, dk, dv, datt, g, q, k, v, att, B, T, H, KV, HD);
  check_grad_strided("attention dq", dq, at_q, qn, stride, attention_obj);
  check_grad_strided("attention dk", dk, at_k, kn, stride, attention_obj);
  check_grad_strided("attention dv", dv, at_v, kn, stride, attention_obj);
  free(at_q), free(at_k), free(at_v), free(at_g), free(ref);
  free(q), free(k), free(v), free(g), free(out), free(att), free(datt), free(dq), free(dk), free(dv);
}

/* ---- SwiGLU ---- */
enum { SN = 17 };
static double *sw_gate, *sw_up, *sw_g;
static double swiglu_obj(void) {
  double y[SN];
  ref_swiglu(y, sw_gate, sw_up, SN);
  return dot_g(y, sw_g, SN);
}
static void test_swiglu(void) {
  float gate[SN], up[SN], g[SN], act[SN], dgate[SN] = {0}, dup[SN] = {0};
  fill(gate, SN, 4.0f);
  fill(up, SN, 2.0f);
  fill(g, SN, 1.0f);
  sw_gate = to_double(gate, SN), sw_up = to_double(up, SN), sw_g = to_double(g, SN);
  double ref[SN];
  ref_swiglu(ref, sw_gate, sw_up, SN);
  swiglu_forward(act, gate, up, SN);
  check_forward("swiglu", act, ref, SN);
  swiglu_backward(dgate, dup, g, gate, up, SN);
  check_grad("swiglu dgate", dgate, sw_gate, SN, swiglu_obj);
  check_grad("swiglu dup", dup, sw_up, SN, swiglu_obj);
  free(sw_gate), free(sw_up), free(sw_g);
}

/* ---- cross-entropy with a mask (weights 1, 0, 0.5, and a negative target) ---- */
enum { CN = 5, CV = 7 };
static double *ce_logits;
static const int ce_targets[CN] = {3, 0, 6, -1, 2};
static const float ce_mask[CN] = {1.0f, 0.0f, 0.5f, 1.0f, 1.0f};
static const float ce_scale = 0.7f;
static double ce_obj(void) {
  double count = 0.0;
  return ce_scale * ref_crossentropy(ce_logits, ce_targets, ce_mask, CN, CV, &count);
}
static void test_crossentropy(void) {
  float logits[CN * CV];
  fill(logits, CN * CV, 3.0f);
  ce_logits = to_double(logits, CN * CV);
  double ref_count = 0.0, count = 0.0;
  double ref = ref_crossentropy(ce_logits, ce_targets, ce_mask, CN, CV, &ref_count);
  double loss = crossentropy_forward_backward(logits, ce_targets, ce_mask, CN, CV, ce_scale, &count);
  CHECK_NEAR(loss, ref, 1e-6);
  CHECK_NEAR(count, 2.5, 0.0);
  CHECK_NEAR(ref_count, 2.5, 0.0);
  /* masked rows carry no gradient */
  for (int j = 0; j < CV; j++) CHECK(logits[1 * CV + j] == 0.0f && logits[3 * CV + j] == 0.0f);
  check_grad("crossentropy dlogits", logits, ce_logits, CN * CV, ce_obj);
  free(ce_logits);
}

/* ---- LoRA linear: scale 2.5, rank 3, with and without dropout ---- */
enum { LN = 4, LIN = 6, LOUT = 5, LR = 3 };
static double *li_x, *li_w, *li_a, *li_b, *li_g, *li_drop;
static const float li_scale = 2.5f;
static double linear_obj(void) {
  double y[LN * LOUT];
  ref_linear(y, li_x, li_w, li_a, li_b, LR, li_scale, li_drop, LN, LIN, LOUT);
  return dot_g(y, li_g, LN * LOUT);
}
static void test_linear(float dropout) {
  float x[LN * LIN], w[LOUT * LIN], a[LR * LIN], b[LOUT * LR], g[LN * LOUT], y[LN * LOUT], xa[LN * LR];
  float dx[LN * LIN] = {0}, dw[LOUT * LIN] = {0}, da[LR * LIN] = {0}, db[LOUT * LR] = {0};
  float dxa[LN * LR], scratch[LN * LIN];
  fill(x, LN * LIN, 1.0f);
  fill(w, LOUT * LIN, 1.0f);
  fill(a, LR * LIN, 1.0f);
  fill(b, LOUT * LR, 1.0f); /* non-zero B so dA is non-zero */
  fill(g, LN * LOUT, 1.0f);
  linear_params p = {.w = w, .dw = dw, .a = a, .b = b, .da = da, .db = db, .rank = LR, .scale = li_scale,
                     .dropout = dropout, .dropout_key = 99};
  li_x = to_double(x, LN * LIN), li_w = to_double(w, LOUT * LIN), li_a = to_double(a, LR * LIN);
  li_b = to_double(b, LOUT * LR), li_g = to_double(g, LN * LOUT);
  li_drop = NULL;
  double drop[LN * LIN];
  int dropped = 0;
  if (dropout > 0.0f) {
    for (int i = 0; i < LN * LIN; i++) {
      drop[i] = lora_dropout_factor(99, i, dropout);
      dropped += drop[i] == 0.0;
      CHECK(drop[i] == 0.0 || fabs(drop[i] - 1.0 / (1.0 - dropout)) < 1e-6);
    }
    CHECK_MSG(dropped > 0 && dropped < LN * LIN, "dropout %g dropped %d of %d", dropout, dropped, LN * LIN);
    li_drop = drop;
  }
  double ref[LN * LOUT];
  ref_linear(ref, li_x, li_w, li_a, li_b, LR, li_scale, li_drop, LN, LIN, LOUT);
  linear_forward(&p, y, x, xa, scratch, LN, LIN, LOUT);
  check_forward(dropout > 0 ? "linear+dropout" : "linear", y, ref, LN * LOUT);
  linear_backward(&p, dx, g, x, xa, dxa, scratch, LN, LIN, LOUT);
  check_grad("linear dx", dx, li_x, LN * LIN, linear_obj);
  check_grad("linear dW", dw, li_w, LOUT * LIN, linear_obj);
  check_grad("linear dA", da, li_a, LR * LIN, linear_obj);
  check_grad("linear dB", db, li_b, LOUT * LR, linear_obj);
  free(li_x), free(li_w), free(li_a), free(li_b), free(li_g);
}

/* ---- embedding: backward is a scatter-add, repeated tokens add up ---- */
static void test_embedding(void) {
  enum { EV = 4, ED = 3, EN = 5 };
  const int tokens[EN] = {2, 0, 2, 3, 2};
  float emb[EV * ED], out[EN * ED], dout[EN * ED], demb[EV * ED] = {0};
  fill(emb, EV * ED, 1.0f);
  fill(dout, EN * ED, 1.0f);
  embedding_forward(out, emb, tokens, EN, ED);
  for (int r = 0; r < EN; r++)
    for (int i = 0; i < ED; i++) CHECK(out[r * ED + i] == emb[tokens[r] * ED + i]);
  embedding_backward(demb, dout, tokens, EN, ED);
  for (int i = 0; i < ED; i++) {
    CHECK_NEAR(demb[2 * ED + i], (double)dout[0 * ED + i] + dout[2 * ED + i] + dout[4 * ED + i], 1e-6);
    CHECK(demb[1 * ED + i] == 0.0f);
  }
}

int main(void) {
  test_rmsnorm();
  test_rope();
  test_attention(2, 5, 4, 2, 4, 1);
  test_attention(1, 150, 4, 2, 4, 7);
  test_swiglu();
  test_crossentropy();
  test_linear(0.0f);
  test_linear(0.3f);
  test_embedding();
  return harness_finish();
}
