/* common/dp.h: the clipping bound holds exactly for what is sent, the noise has the configured
 * moments, and the accountant wrapper reproduces Opacus' published value. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp.h"
#include "harness.h"

static double uniform(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(*s >> 11) * ldexp(1.0, -53);
}

static void test_clip(void) {
  uint64_t rng = 7;
  enum { N = 4099 };
  float *u = malloc(N * sizeof *u), *g = malloc(N * sizeof *g), *orig = malloc(N * sizeof *orig);
  /* Globals far larger than the bound make float rounding of g + s·d matter. */
  const double scales[] = {1e-3, 1, 100}, clips[] = {1e-4, 0.05, 1, 30};
  for (int a = 0; a < 3; a++)
    for (int c = 0; c < 4; c++) {
      for (int i = 0; i < N; i++) {
        g[i] = (float)((uniform(&rng) - 0.5) * scales[a]);
        u[i] = orig[i] = g[i] + (float)((uniform(&rng) - 0.5) * 0.1);
      }
      double before = dp_delta_norm(u, g, N), had = dp_clip_update(u, g, N, clips[c]);
      CHECK_NEAR(had, before, 0);
      double after = dp_delta_norm(u, g, N);
      CHECK_MSG(after <= clips[c], "scale %g clip %g: norm %.17g after clipping", scales[a], clips[c], after);
      /* Floats near g are spaced ~|g|·2^-24: a bound far below that spacing cannot be met by
       * shrinking, only by sending no change at all, which the bound allows. */
      int representable = scales[a] * ldexp(1.0, -24) * sqrt(N) < clips[c] * 1e-2;
      if (before > clips[c] && representable) {
        CHECK_MSG(after > clips[c] * (1 - 1e-3), "clip %g: clipped far below the bound (%g)", clips[c], after);
        /* Direction kept: the clipped delta is a positive multiple of the original one. */
        double dot = 0;
        for (int i = 0; i < N; i++) dot += ((double)u[i] - g[i]) * ((double)orig[i] - g[i]);
        CHECK_NEAR(dot / (after * before), 1.0, 2e-3);
      } else if (before <= clips[c]) {
        CHECK(memcmp(u, orig, N * sizeof *u) == 0);
      }
    }
  free(u);
  free(g);
  free(orig);
}

static void test_noise(void) {
  enum { N = 1000001 };  /* odd: the last normal is half a pair */
  const double sd = 0.7;
  double *x = calloc(N, sizeof *x), *y = calloc(N, sizeof *y);
  uint8_t key[DP_KEY_BYTES] = {1, 2, 3}, other[DP_KEY_BYTES] = {1, 2, 4};
  CHECK(dp_noise_add(x, N, sd, key) == 0);
  double m = 0, m2 = 0, m4 = 0, within = 0;
  for (int i = 0; i < N; i++) m += x[i];
  m /= N;
  for (int i = 0; i < N; i++) {
    double d = x[i] - m;
    m2 += d * d;
    m4 += d * d * d * d;
    within += fabs(x[i]) < sd;
  }
  m2 /= N;
  m4 /= N;
  double s = sqrt(m2);
  /* Standard errors: mean σ/√N ≈ 7e-4, std σ/√(2N) ≈ 5e-4, kurtosis √(24/N) ≈ 5e-3. */
  CHECK_MSG(fabs(m) < 5 * sd / sqrt(N), "mean %g", m);
  CHECK_MSG(fabs(s / sd - 1) < 4e-3, "std %g, want %g", s, sd);
  CHECK_MSG(fabs(m4 / (m2 * m2) - 3) < 0.03, "kurtosis %g, want 3", m4 / (m2 * m2));
  CHECK_MSG(fabs(within / N - 0.682689492) < 2.5e-3, "P(|x| < σ) = %g", within / N);
  CHECK(x[N - 1] != 0);
  /* A pure function of the key, added on top of what is there. */
  for (int i = 0; i < N; i++) y[i] = 1.0;
  CHECK(dp_noise_add(y, N, sd, key) == 0);
  int same = 1;
  for (int i = 0; i < N && same; i++) same = fabs(y[i] - 1.0 - x[i]) < 1e-12;
  CHECK_MSG(same, "the same key gave other noise (or it was not added)");
  CHECK(dp_noise_add(y, N, sd, other) == 0);
  double corr = 0;
  for (int i = 0; i < N; i++) corr += (y[i] - 1.0 - x[i]) * x[i];
  CHECK_MSG(fabs(corr / N / (sd * sd)) < 0.01, "another key's noise correlates with the first (%g)", corr / N);
  free(x);
  free(y);
}

static void test_site_apply(void) {
  enum { N = 200000 };
  float *u = malloc(N * sizeof *u), *v = malloc(N * sizeof *v), *g = calloc(N, sizeof *g);
  for (int i = 0; i < N; i++) u[i] = v[i] = i % 2 ? 0.01f : -0.01f; /* norm √N·0.01 ≈ 4.5 */
  double norm = dp_site_apply(u, g, N, 1.0, 0);
  CHECK_NEAR(norm, sqrt((double)N) * 0.01, 1e-4);
  CHECK(dp_delta_norm(u, g, N) <= 1.0);
  double sd = 0.02;
  CHECK(dp_site_apply(v, g, N, 1.0, sd) > 0);
  /* v = clipped (each |value| ≈ 1/√N) + noise: the residual's std is sd. */
  double s2 = 0, cross = 0;
  for (int i = 0; i < N; i++) {
    double r = v[i] - u[i];
    s2 += r * r;
  }
  CHECK_MSG(fabs(sqrt(s2 / N) / sd - 1) < 0.02, "site noise std %g, want %g", sqrt(s2 / N), sd);
  float *w = malloc(N * sizeof *w);
  memcpy(w, u, N * sizeof *w);
  CHECK(dp_site_apply(w, g, N, 1.0, sd) > 0);
  for (int i = 0; i < N; i++) cross += ((double)w[i] - u[i]) * ((double)v[i] - u[i]);
  CHECK_MSG(fabs(cross / N) < 0.02 * sd * sd, "two rounds drew correlated noise (fresh keys expected)");
  CHECK_NEAR(dp_site_noise_std(1.5, 0.4, 4), 0.3, 1e-15);
  free(u);
  free(v);
  free(w);
  free(g);
}

static void test_accountant(void) {
  /* Opacus: z = 1.5, q = 0.04, 2250 steps, δ = 1e-5, improved conversion, default orders. */
  double eps = dp_epsilon(0.04, 1.5, 2250, 1e-5);
  CHECK_MSG(fabs(eps / 7.32911117143 - 1) < 1e-6, "epsilon %.12g", eps);
  CHECK_NEAR(dp_epsilon(0.04, 1.5, 0, 1e-5), 0, 0);
  int r = dp_rounds_within(0.04, 1.5, 1e-5, 7.33, 100000);
  CHECK_MSG(r >= 2250 && dp_epsilon(0.04, 1.5, r, 1e-5) <= 7.33 && dp_epsilon(0.04, 1.5, r + 1, 1e-5) > 7.33,
            "rounds within 7.33: %d", r);
  CHECK_EQ_INT(dp_rounds_within(0.04, 1.5, 1e-5, 7.33, 100), 100);
  CHECK_EQ_INT(dp_rounds_within(1.0, 1.0, 1e-5, 0.01, 100), 0);
  /* Full participation, z = 1: one round is already several ε. */
  double one = dp_epsilon(1.0, 1.0, 1, 1e-5), two = dp_epsilon(1.0, 1.0, 2, 1e-5);
  CHECK(one > 1 && two > one);
  CHECK_EQ_INT(dp_rounds_within(1.0, 1.0, 1e-5, (one + two) / 2, 10), 1);
}

int main(void) {
  test_clip();
  test_noise();
  test_site_apply();
  test_accountant();
  return harness_finish();
}
