/* AdamW, SGD, the LR schedules and gradient clipping against torch's formulas: a double-precision
 * re-derivation here, and numbers computed independently in plain Python with the same formulas. */
#include "harness.h"
#include "optim.h"

#define N 4
#define STEPS 3

static const float p0[N] = {0.5f, -1.25f, 2.0f, 0.0f};
static const float grads[STEPS][N] = {
    {0.1f, -0.2f, 0.3f, -0.4f}, {0.05f, 0.5f, -0.25f, 1e-3f}, {-0.3f, 0.0f, 0.7f, 2.0f}};

/* torch.optim.AdamW, amsgrad off, written from the paper's form in double. */
static void adamw_reference(double *p, double *m, double *v, const float *g, int t, double lr, double wd) {
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  for (int i = 0; i < N; i++) {
    p[i] -= lr * wd * p[i];
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * (double)g[i] * g[i];
    double m_hat = m[i] / (1 - pow(b1, t)), v_hat = v[i] / (1 - pow(b2, t));
    p[i] -= lr * m_hat / (sqrt(v_hat) + eps);
  }
}

static void test_adamw(void) {
  /* python3: torch AdamW formulas, lr 0.01, wd 0.1, betas (0.9, 0.999), eps 1e-8 */
  static const double python[STEPS][N] = {
      {0.489500001, -1.23875, 1.988, 0.00999999975},
      {0.479688706, -1.2419334, 1.98563078, 0.0166719484},
      {0.482681252, -1.24410981, 1.97792188, 0.0114029551}};
  optim_config cfg = optim_config_default(OPTIM_ADAMW);
  CHECK(cfg.beta1 == 0.9f && cfg.eps == 1e-8f);
  CHECK(cfg.beta2 == 0.999f && cfg.weight_decay == 0.01f);
  cfg.weight_decay = 0.1f;
  optimizer opt;
  CHECK_EQ_INT(optimizer_build(&opt, &cfg, N), 0);
  float p[N];
  double ref[N], m[N] = {0}, v[N] = {0};
  for (int i = 0; i < N; i++) p[i] = p0[i], ref[i] = p0[i];
  for (int t = 1; t <= STEPS; t++) {
    optimizer_step(&opt, p, grads[t - 1], 0.01f);
    adamw_reference(ref, m, v, grads[t - 1], t, 0.01, 0.1);
    CHECK_EQ_INT(opt.step, t);
    for (int i = 0; i < N; i++) {
      CHECK_NEAR(p[i], ref[i], 2e-6);
      CHECK_NEAR(p[i], python[t - 1][i], 2e-6);
    }
  }
  /* the moments are the exponential averages of g and g^2 */
  CHECK_NEAR(opt.m[3], m[3], 1e-6);
  CHECK_NEAR(opt.v[3], v[3], 1e-7);
  /* after a reset the state matches a fresh optimizer: rerunning the steps gives the same numbers */
  optimizer_reset(&opt);
  CHECK_EQ_INT(opt.step, 0);
  for (int i = 0; i < N; i++) p[i] = p0[i];
  for (int t = 1; t <= STEPS; t++) optimizer_step(&opt, p, grads[t - 1], 0.01f);
  for (int i = 0; i < N; i++) CHECK_NEAR(p[i], python[STEPS - 1][i], 2e-6);
  optimizer_free(&opt);
  /* the first step is lr * sign(g) whatever |g| is, because of the bias correction */
  float q[1] = {1.0f}, g[1] = {-123.0f};
  float qm[1] = {0}, qv[1] = {0};
  optim_config plain = optim_config_default(OPTIM_ADAMW);
  plain.weight_decay = 0.0f;
  adamw_update(q, g, qm, qv, 1, 1, 0.5f, &plain);
  CHECK_NEAR(q[0], 1.5, 1e-6);
}

static void test_sgd(void) {
  /* python3: p -= lr * (g + wd * p), lr 0.1, wd 0.01 */
  static const double python[STEPS][N] = {
      {0.4895, -1.22875, 1.968, 0.04},
      {0.4840105, -1.27752125, 1.991032, 0.03986},
      {0.51352649, -1.27624373, 1.91904097, -0.16017986}};
  optim_config cfg = optim_config_default(OPTIM_SGD);
  CHECK_NEAR(cfg.weight_decay, 0.0, 0);
  cfg.weight_decay = 0.01f;
  optimizer opt;
  CHECK_EQ_INT(optimizer_build(&opt, &cfg, N), 0);
  CHECK(opt.m == NULL);
  float p[N];
  for (int i = 0; i < N; i++) p[i] = p0[i];
  for (int t = 0; t < STEPS; t++) {
    optimizer_step(&opt, p, grads[t], 0.1f);
    for (int i = 0; i < N; i++) CHECK_NEAR(p[i], python[t][i], 1e-6);
  }
  optimizer_free(&opt);
}

static void test_schedule(void) {
  /* python3: transformers' get_cosine_schedule_with_warmup lambda, warmup 2, total 10, times lr 2 */
  static const double python[11] = {0, 0.5, 1, 0.961939766, 0.853553391, 0.691341716,
                                    0.5, 0.308658284, 0.146446609, 0.0380602337, 0};
  lr_schedule s = {SCHEDULE_COSINE, 2.0f, 2, 10};
  for (int i = 0; i <= 10; i++) CHECK_NEAR(lr_schedule_at(&s, i), 2.0 * python[i], 1e-6);
  CHECK_NEAR(lr_schedule_at(&s, 15), 0.0, 0);
  lr_schedule c = {SCHEDULE_CONSTANT, 3e-4f, 4, 100};
  CHECK_NEAR(lr_schedule_at(&c, 0), 0.0, 0);
  CHECK_NEAR(lr_schedule_at(&c, 1), 0.75e-4, 1e-9);
  CHECK_NEAR(lr_schedule_at(&c, 4), 3e-4, 1e-9);
  CHECK_NEAR(lr_schedule_at(&c, 1000), 3e-4, 1e-9);
  lr_schedule nowarm = {SCHEDULE_COSINE, 1.0f, 0, 4};
  CHECK_NEAR(lr_schedule_at(&nowarm, 0), 1.0, 1e-7);
  CHECK_NEAR(lr_schedule_at(&nowarm, 2), 0.5, 1e-7);
  CHECK_EQ_INT(schedule_kind_parse("cosine"), SCHEDULE_COSINE);
  CHECK_EQ_INT(schedule_kind_parse("linear"), -1);
  CHECK_EQ_INT(optim_kind_parse("adamw"), OPTIM_ADAMW);
  CHECK_EQ_INT(optim_kind_parse("adam"), -1);
}

static void test_clip(void) {
  float g[3] = {3.0f, 0.0f, -4.0f};
  CHECK_NEAR(grad_clip_norm(g, 3, 1.0f), 5.0, 1e-7);
  /* torch: coef = max_norm / (norm + 1e-6) */
  CHECK_NEAR(g[0], 3.0 / (5.0 + 1e-6), 1e-7);
  CHECK_NEAR(g[2], -4.0 / (5.0 + 1e-6), 1e-7);
  float h[2] = {0.3f, 0.4f};
  CHECK_NEAR(grad_clip_norm(h, 2, 1.0f), 0.5, 1e-7);
  CHECK(h[0] == 0.3f && h[1] == 0.4f);
  float k[2] = {30.0f, 40.0f};
  CHECK_NEAR(grad_clip_norm(k, 2, 0.0f), 50.0, 1e-7);
  CHECK(k[0] == 30.0f);
}

int main(void) {
  test_adamw();
  test_sgd();
  test_schedule();
  test_clip();
  return harness_finish();
}
