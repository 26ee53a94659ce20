/* Weighted mean of deltas and the server optimisers, on inputs small enough to check by hand.
 * Every optimiser is checked twice: against the formulas of server_opt.h evaluated here in double,
 * and against numbers computed independently with python3 (the script is in the comment). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "harness.h"
#include "server_opt.h"

static void test_weighted_mean(void) {
  const float global[3] = {1, -2, 0.5f};
  const float u1[3] = {2, -1, 0.5f};  /* delta (1, 1, 0), weight 3 */
  const float u2[3] = {0, -2, 1.5f};  /* delta (-1, 0, 1), weight 1 */
  const float bad[3] = {0, NAN, 0};
  char err[200];
  agg_accum acc;
  CHECK_EQ_INT(agg_accum_build(&acc, 3, err, sizeof err), 0);
  float delta[3];
  CHECK_EQ_INT(agg_accum_mean(&acc, delta, err, sizeof err), -1);  /* nothing added yet */
  CHECK_STR_CONTAINS(err, "no update");
  CHECK_EQ_INT(agg_accum_add(&acc, u1, global, 3, err, sizeof err), 0);
  /* Refused updates leave the sum untouched: the result below is still (3·d1 + d2) / 4. */
  CHECK_EQ_INT(agg_accum_add(&acc, bad, global, 1, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "parameter 1 of 3 is nan");
  CHECK_EQ_INT(agg_accum_add(&acc, u2, global, 0, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "weight must be finite and > 0");
  CHECK_EQ_INT(agg_accum_add(&acc, u2, global, INFINITY, err, sizeof err), -1);
  CHECK_EQ_INT(agg_accum_add(&acc, u2, global, 1, err, sizeof err), 0);
  CHECK_EQ_INT(acc.count, 2);
  CHECK_NEAR(acc.total_weight, 4, 0);
  CHECK_EQ_INT(agg_accum_mean(&acc, delta, err, sizeof err), 0);
  CHECK_NEAR(delta[0], 0.5, 0);
  CHECK_NEAR(delta[1], 0.75, 0);
  CHECK_NEAR(delta[2], 0.25, 0);

  agg_accum_reset(&acc);
  CHECK_EQ_INT(acc.count, 0);
  CHECK_EQ_INT(agg_accum_add(&acc, u2, global, 5, err, sizeof err), 0);  /* one site: its own delta */
  CHECK_EQ_INT(agg_accum_mean(&acc, delta, err, sizeof err), 0);
  CHECK(delta[0] == -1 && delta[1] == 0 && delta[2] == 1);
  agg_accum_free(&acc);

  const float *ups[2] = {u1, u2};
  const double w[2] = {3, 1};
  float one_shot[3];
  CHECK_EQ_INT(agg_mean_delta(ups, w, 2, global, 3, one_shot, err, sizeof err), 0);
  CHECK(one_shot[0] == 0.5f && one_shot[1] == 0.75f && one_shot[2] == 0.25f);
  const float *with_bad[2] = {u1, bad};
  CHECK_EQ_INT(agg_mean_delta(with_bad, w, 2, global, 3, one_shot, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "update 1 of 2: parameter 1 of 3 is nan");
}

/* Many sites with awkward weights: the double accumulation matches a long-double reference to far
 * below float resolution, whatever the order the updates are added in. */
static void test_mean_many(void) {
  enum { K = 37, N = 101 };
  float *up = malloc(sizeof(float) * K * N), global[N], fwd[N], rev[N];
  const float *ptr[K], *rptr[K];
  double w[K], rw[K];
  uint64_t s = 12345;
  for (int i = 0; i < N; i++) global[i] = (float)i / N - 0.5f;
  for (int k = 0; k < K; k++) {
    for (int i = 0; i < N; i++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      up[k * N + i] = global[i] + (float)((double)(s >> 11) * 0x1.0p-53 - 0.5) * 1e-3f;
    }
    ptr[k] = up + k * N;
    w[k] = 1 + (k * 7919) % 1000;
    rptr[K - 1 - k] = ptr[k];
    rw[K - 1 - k] = w[k];
  }
  char err[200];
  CHECK_EQ_INT(agg_mean_delta(ptr, w, K, global, N, fwd, err, sizeof err), 0);
  CHECK_EQ_INT(agg_mean_delta(rptr, rw, K, global, N, rev, err, sizeof err), 0);
  int worst = 0;
  for (int i = 0; i < N; i++) {
    long double num = 0, den = 0;
    for (int k = 0; k < K; k++) {
      num += (long double)w[k] * ((long double)ptr[k][i] - global[i]);
      den += w[k];
    }
    double want = (double)(num / den);
    if (fabs(fwd[i] - want) > 1e-7 * fabs(want) || fabs(rev[i] - want) > 1e-7 * fabs(want)) worst++;
  }
  CHECK_EQ_INT(worst, 0);
  free(up);
}

/* The one-sweep form against one update at a time, over more than one block of the sweep: the
 * same bits; an update that turns non-finite far into the vector (after earlier blocks were added)
 * is left out exactly; a bad weight too; a non-empty accumulator is refused. */
static void test_add_all(void) {
  enum { K = 4, N = 200003 }; /* three 65536-blocks and a ragged tail */
  float *up = malloc(sizeof(float) * K * N), *global = malloc(sizeof(float) * N);
  const float *ptr[K];
  double w[K] = {3, 0.5, 7, 2};
  uint64_t s = 777;
  for (int i = 0; i < N; i++) global[i] = (float)(i % 1000) / 1000 - 0.5f;
  for (int k = 0; k < K; k++) {
    for (int i = 0; i < N; i++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      up[(size_t)k * N + i] = global[i] + (float)((double)(s >> 11) * 0x1.0p-53 - 0.5);
    }
    ptr[k] = up + (size_t)k * N;
  }
  char err[200];
  agg_accum one, all;
  int accepted[K];
  CHECK_EQ_INT(agg_accum_build(&one, N, err, sizeof err), 0);
  CHECK_EQ_INT(agg_accum_build(&all, N, err, sizeof err), 0);
  for (int k = 0; k < K; k++) CHECK_EQ_INT(agg_accum_add(&one, ptr[k], global, w[k], err, sizeof err), 0);
  CHECK_EQ_INT(agg_accum_add_all(&all, ptr, w, K, global, accepted), K);
  CHECK(memcmp(one.sum, all.sum, sizeof(double) * N) == 0);
  CHECK(one.total_weight == all.total_weight && all.count == K);
  CHECK_EQ_INT(agg_accum_add_all(&all, ptr, w, K, global, accepted), -1); /* not empty */

  up[(size_t)1 * N + 190000] = INFINITY; /* update 1 turns bad in the third block */
  w[3] = NAN;                            /* update 3's weight is unusable */
  agg_accum_reset(&one);
  agg_accum_reset(&all);
  CHECK_EQ_INT(agg_accum_add(&one, ptr[0], global, w[0], err, sizeof err), 0);
  CHECK_EQ_INT(agg_accum_add(&one, ptr[1], global, w[1], err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "parameter 190000 of 200003 is inf");
  CHECK_EQ_INT(agg_accum_add(&one, ptr[2], global, w[2], err, sizeof err), 0);
  CHECK_EQ_INT(agg_accum_add_all(&all, ptr, w, K, global, accepted), 2);
  CHECK(accepted[0] == 1 && accepted[1] == 0 && accepted[2] == 1 && accepted[3] == 0);
  CHECK(memcmp(one.sum, all.sum, sizeof(double) * N) == 0);
  CHECK(one.total_weight == all.total_weight && all.count == 2);
  agg_accum_free(&one);
  agg_accum_free(&all);
  free(up);
  free(global);
}

enum { NP = 3, STEPS = 2 };
static const float x0[NP] = {0.5f, -1.0f, 2.0f};
static const float deltas[STEPS][NP] = {{0.1f, -0.2f, 0.0f}, {0.3f, 0.05f, -0.4f}};

/* The rules of server_opt.h written out per strategy in double, independently of server_opt.c. */
static void reference(const server_opt_config *c, double want[STEPS][NP]) {
  double x[NP], m[NP] = {0}, v[NP];
  for (int i = 0; i < NP; i++) x[i] = x0[i], v[i] = c->tau * c->tau;
  for (int t = 0; t < STEPS; t++) {
    for (int i = 0; i < NP; i++) {
      double d = deltas[t][i], d2 = d * d;
      if (c->strategy == SERVER_OPT_FEDAVG) {
        x[i] += c->server_lr * d;
      } else if (c->strategy == SERVER_OPT_FEDAVGM) {
        m[i] = c->beta1 * m[i] + d;
        x[i] += c->server_lr * m[i];
      } else {
        m[i] = c->beta1 * m[i] + (1 - c->beta1) * d;
        if (c->strategy == SERVER_OPT_FEDADAGRAD) v[i] = v[i] + d2;
        if (c->strategy == SERVER_OPT_FEDADAM) v[i] = c->beta2 * v[i] + (1 - c->beta2) * d2;
        if (c->strategy == SERVER_OPT_FEDYOGI) {
          double sign = v[i] > d2 ? 1 : v[i] < d2 ? -1 : 0;
          v[i] = v[i] - (1 - c->beta2) * d2 * sign;
        }
        x[i] += c->server_lr * m[i] / (sqrt(v[i]) + c->tau);
      }
      want[t][i] = x[i];
    }
  }
}

/* python3: x0, d1, d2 as above; eta 0.1, b1 0.9, b2 0.99, tau 1e-3; m = 0, v = tau**2; then per
 * step and coordinate the update of the strategy, printed with "%.9g" after steps 1 and 2. */
static const double python_x[5][STEPS][NP] = {
    [SERVER_OPT_FEDAVG] = {{0.51, -1.02, 2}, {0.54, -1.015, 1.96}},
    [SERVER_OPT_FEDAVGM] = {{0.51, -1.02, 2}, {0.549, -1.033, 1.96}},
    [SERVER_OPT_FEDADAGRAD] = {{0.5099005, -1.00995012, 2}, {0.522194445, -1.01622554, 1.99002497}},
    [SERVER_OPT_FEDYOGI] = {{0.590498756, -1.09512492, 2}, {0.709989234, -1.1551995, 1.90246875}},
    [SERVER_OPT_FEDADAM] = {{0.590502831, -1.09512605, 2}, {0.710052361, -1.15547285, 1.90246816}},
};

static void test_optimisers(void) {
  for (int s = 0; s < 5; s++) {
    server_opt_config c = {(server_opt_strategy)s, 0.1, 0.9, 0.99, 1e-3};
    char err[200];
    CHECK_EQ_INT(server_opt_check(&c, err, sizeof err), 0);
    size_t nstate = server_opt_state_floats(c.strategy, NP);
    CHECK_EQ_INT(nstate, s == SERVER_OPT_FEDAVG ? 0 : s == SERVER_OPT_FEDAVGM ? NP : 2 * NP);
    float state[2 * NP] = {-7, -7, -7, -7, -7, -7}, x[NP];
    server_opt_state_init(&c, state, NP);
    for (size_t i = 0; i < nstate; i++) CHECK_NEAR(state[i], i < NP ? 0.0 : 1e-6, 1e-12);
    memcpy(x, x0, sizeof x);
    double want[STEPS][NP];
    reference(&c, want);
    for (int t = 0; t < STEPS; t++) {
      server_opt_apply(&c, x, deltas[t], state, NP);
      for (int i = 0; i < NP; i++) {
        CHECK_MSG(fabs(x[i] - want[t][i]) <= 2e-7 * fmax(1, fabs(want[t][i])), "%s step %d x[%d]: %.9g vs %.9g",
                  server_opt_names[s], t + 1, i, (double)x[i], want[t][i]);
        CHECK_MSG(fabs(x[i] - python_x[s][t][i]) <= 2e-7 * fmax(1, fabs(python_x[s][t][i])),
                  "%s step %d x[%d]: %.9g vs python %.9g", server_opt_names[s], t + 1, i, (double)x[i],
                  python_x[s][t][i]);
      }
    }
  }
}

/* Properties that pin the conventions independently of any arithmetic detail. */
static void test_conventions(void) {
  const float g[2] = {1, 2}, d[2] = {0.25f, -0.5f};
  float x[2], state[4];
  /* FedAvg with η = 1 lands on the plain average of the sites. */
  server_opt_config avg = {SERVER_OPT_FEDAVG, 1, 0.9, 0.99, 1e-3};
  memcpy(x, g, sizeof x);
  server_opt_apply(&avg, x, d, NULL, 2);
  CHECK(x[0] == 1.25f && x[1] == 1.5f);
  /* FedAvgM with β1 = 0 is FedAvg; the first FedAvgM step is always FedAvg's. */
  server_opt_config avgm = {SERVER_OPT_FEDAVGM, 1, 0, 0.99, 1e-3};
  memcpy(x, g, sizeof x);
  server_opt_state_init(&avgm, state, 2);
  server_opt_apply(&avgm, x, d, state, 2);
  server_opt_apply(&avgm, x, d, state, 2);
  CHECK(x[0] == 1.5f && x[1] == 1.0f);
  /* Yogi leaves v alone when v = Δ² exactly (sign 0): Δ = τ = 0.5 makes v0 = τ² = Δ². */
  server_opt_config yogi = {SERVER_OPT_FEDYOGI, 1, 0.5, 0.5, 0.5};
  const float half[1] = {0.5f};
  float xy[1] = {0}, sy[2];
  server_opt_state_init(&yogi, sy, 1);
  server_opt_apply(&yogi, xy, half, sy, 1);
  CHECK(sy[1] == 0.25f);
  CHECK_NEAR(xy[0], 0.25 / (0.5 + 0.5), 1e-7);  /* m = 0.5·0.5 */
  /* A zero delta never moves an adaptive optimiser's x (FFA's frozen A sends zeros). */
  server_opt_config adam = {SERVER_OPT_FEDADAM, 1, 0.9, 0.99, 1e-3};
  const float zero[2] = {0, 0};
  memcpy(x, g, sizeof x);
  server_opt_state_init(&adam, state, 2);
  server_opt_apply(&adam, x, zero, state, 2);
  CHECK(x[0] == 1 && x[1] == 2);

  char err[200];
  server_opt_config bad = {SERVER_OPT_FEDADAM, 0, 0.9, 0.99, 1e-3};
  CHECK_EQ_INT(server_opt_check(&bad, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "server_lr");
  bad = (server_opt_config){SERVER_OPT_FEDAVGM, 1, 1.0, 0.99, 1e-3};
  CHECK_EQ_INT(server_opt_check(&bad, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "beta1 must be in [0, 1), got 1");
  bad = (server_opt_config){SERVER_OPT_FEDYOGI, 1, 0.9, 0.99, 0};
  CHECK_EQ_INT(server_opt_check(&bad, err, sizeof err), -1);
  CHECK_STR_CONTAINS(err, "tau must be finite and > 0 for fedyogi");
  for (int s = 0; server_opt_names[s]; s++) CHECK_EQ_INT(server_opt_parse(server_opt_names[s]), s);
  CHECK_EQ_INT(server_opt_parse("FedAvg2"), -1);
}

int main(void) {
  test_weighted_mean();
  test_mean_many();
  test_add_all();
  test_optimisers();
  test_conventions();
  return harness_finish();
}
